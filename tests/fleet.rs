//! A fleet of three relay processes on 127.0.0.2–4 sharing one real Redis: membership,
//! placement (stable, even, moving only a lost node's share), any node serving any stream
//! (playlists, blocking reloads and parts proxied to the owner), drain, and Redis restarted
//! under live streams.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Announcements every 200 ms: entries live 600 ms, so a dead node is gone within a second.
const HEARTBEAT_MS: &str = "200";

async fn node_with(i: usize, redis: &str, extra: &[(&str, &str)]) -> Binary {
    let id = format!("node-{}", i + 1);
    let mut env = vec![
        ("GLASSCAST_NODE_ID", id.as_str()),
        ("GLASSCAST_FLEET_REDIS_URL", redis),
        ("GLASSCAST_FLEET_HEARTBEAT_MS", HEARTBEAT_MS),
    ];
    env.extend_from_slice(extra);
    Binary::start_on(&format!("127.0.0.{}", i + 2), &[], &env).await
}

async fn api(node: &Binary, path: &str) -> Value {
    let (code, v) = request_json(
        "GET",
        &format!("http://{}/v1/{path}", node.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(code, 200, "{path}: {v}");
    v
}

async fn node_ids(node: &Binary) -> Vec<String> {
    let v = api(node, "nodes").await;
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

/// Where each of `streams` is placed, asked on `node`.
async fn placements(node: &Binary, streams: &[String]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for s in streams {
        let v = api(node, &format!("placement/{s}")).await;
        out.insert(s.clone(), v["nodeId"].as_str().unwrap().to_string());
    }
    out
}

/// Three nodes on 127.0.0.2–4 with `extra` settings, once each sees all three.
async fn three_nodes(redis: &str, extra: &[(&str, &str)]) -> Vec<Binary> {
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node_with(i, redis, extra).await);
    }
    eventually("three members", Duration::from_secs(10), || async {
        (node_ids(&nodes[0]).await.len() == 3).then_some(())
    })
    .await;
    nodes
}

fn synthetic(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("user{i}%40example.com/glasses"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_place_serve_drain_and_survive_redis() {
    require("ffmpeg");
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let mut nodes = three_nodes(&url, &[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "1000")]).await;

    // Placement: even over three nodes, the same answer on every node.
    let streams = synthetic(300);
    let placed = placements(&nodes[0], &streams).await;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for n in placed.values() {
        *count.entry(n).or_default() += 1;
    }
    eprintln!("300 streams: {count:?}");
    for id in ["node-1", "node-2", "node-3"] {
        let c = count.get(id).copied().unwrap_or(0);
        assert!((75..=125).contains(&c), "{id}: {c} of 300");
    }
    assert_eq!(
        placements(&nodes[2], &streams[..30]).await,
        placements(&nodes[0], &streams[..30]).await
    );

    // A stream published where placement says; every node serves it.
    let p = api(&nodes[0], "placement/alice%40example.com/m1").await;
    let owner_id = p["nodeId"].as_str().unwrap().to_string();
    let owner = nodes
        .iter()
        .position(|n| node_ids_sync(&owner_id, n))
        .unwrap();
    let mut publisher = publish(&Source::normal(120.0), p["rtmpUrl"].as_str().unwrap());
    let others: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    let live = |n: usize| format!("http://{}/live/alice%40example.com/m1", nodes[n].http);
    eventually("playable on the owner", Duration::from_secs(15), || async {
        (get(&format!("{}/media.m3u8", live(owner))).await.0 == 200).then_some(())
    })
    .await;
    for &o in &others {
        let (code, headers, body) = get(&format!("{}/index.m3u8", live(o))).await;
        assert_eq!(code, 200, "node {o}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["x-glasscast-node"], owner_id.as_str());
        // A blocking reload through a non-owner waits on the owner and comes back with the
        // awaited part.
        let (_, media) = get_text(&format!("{}/media.m3u8", live(o))).await;
        let pl = parse_live(&media);
        let hint = pl.preload_hint.clone().expect("a preload hint");
        let (code, _, blocked) = get(&format!(
            "{}/media.m3u8?_HLS_msn={}&_HLS_part={}",
            live(o),
            pl.open_msn(),
            pl.open_parts
        ))
        .await;
        assert_eq!(code, 200);
        let blocked = String::from_utf8_lossy(&blocked).into_owned();
        assert!(
            blocked.contains(&format!("URI=\"{hint}\"")),
            "the hinted part is listed:\n{blocked}"
        );
        // The part itself, byte for byte as the owner serves it.
        let (code, _, via) = get(&format!("{}/{hint}", live(o))).await;
        let (_, _, direct) = get(&format!("{}/{hint}", live(owner))).await;
        assert_eq!(code, 200);
        assert_eq!(via, direct);
    }
    // Many viewers' identical blocking reload through one non-owner is one request to the
    // owner.
    let blocked_on_owner = || async {
        let (_, text) = get_text(&format!("http://{}/metrics", nodes[owner].admin)).await;
        // Every media playlist request the owner answered, whatever the result.
        metric(&text, "hls_playlist_requests_total")
    };
    let (_, media) = get_text(&format!("{}/media.m3u8", live(owner))).await;
    let pl = parse_live(&media);
    let next = format!(
        "{}/media.m3u8?_HLS_msn={}&_HLS_part={}",
        live(others[0]),
        pl.open_msn(),
        // The part after the one being made: every request waits.
        pl.open_parts + 1
    );
    let before = blocked_on_owner().await;
    let answers = futures_util::future::join_all((0..20).map(|_| get(&next))).await;
    assert!(answers.iter().all(|(code, _, _)| *code == 200));
    let upstream = blocked_on_owner().await - before;
    assert!(
        (1.0..=2.0).contains(&upstream),
        "20 identical blocking reloads made {upstream} requests to the owner"
    );
    // A stream that exists nowhere is still 404, on every node.
    for n in &nodes {
        let url = format!("http://{}/live/nobody/none/index.m3u8", n.http);
        assert_eq!(get(&url).await.0, 404);
    }

    // Redis restarted under a live stream: it keeps playing, and membership and the directory
    // are announced again within seconds.
    redis.kill();
    let (code, _, _) = get(&format!("{}/index.m3u8", live(others[0]))).await;
    assert_eq!(
        code, 200,
        "the directory answer is remembered while Redis is down"
    );
    redis.spawn().await;
    eventually("membership rebuilt", Duration::from_secs(10), || async {
        (node_ids(&nodes[others[1]]).await.len() == 3).then_some(())
    })
    .await;
    eventually("directory rebuilt", Duration::from_secs(10), || async {
        redis
            .cmd(&["GET", "glasscast:stream:alice@example.com/m1"])
            .await
            .filter(|v| v.contains(&owner_id))
    })
    .await;

    // Drain the owner: placement sends nothing new there, its stream goes on, and once the
    // publisher leaves (and the grace period passes) it exits by itself.
    let (code, _) = request_json(
        "POST",
        &format!("http://{}/v1/node/drain", nodes[owner].admin),
        &[],
        None,
    )
    .await;
    assert_eq!(code, 202);
    eventually(
        "draining seen by the others",
        Duration::from_secs(5),
        || async {
            let v = api(&nodes[others[0]], "nodes").await;
            v["nodes"]
                .as_array()?
                .iter()
                .any(|n| n["id"] == owner_id.as_str() && n["state"] == "draining")
                .then_some(())
        },
    )
    .await;
    let after = placements(&nodes[others[0]], &streams).await;
    assert!(
        after.values().all(|n| *n != owner_id),
        "a draining node got a placement"
    );
    let moved = streams.iter().filter(|s| placed[*s] != after[*s]).count();
    assert_eq!(
        moved,
        count[owner_id.as_str()],
        "only the draining node's share moves"
    );
    assert_eq!(get(&format!("{}/media.m3u8", live(owner))).await.0, 200);
    let _ = publisher.kill().await;
    let mut drained = nodes.remove(owner);
    let status = tokio::time::timeout(Duration::from_secs(20), drained.child.wait())
        .await
        .expect("the drained node exits once its stream ended")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    // It left the fleet.
    eventually("the drained node gone", Duration::from_secs(5), || async {
        (!node_ids(&nodes[0]).await.contains(&owner_id)).then_some(())
    })
    .await;
    // SIGUSR1 drains too: a node without streams stops at once, exit 0, and leaves the fleet.
    let mut idle = nodes.pop().unwrap();
    let pid = idle.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), idle.child.wait())
        .await
        .expect("a drained idle node exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    eventually("only one node left", Duration::from_secs(5), || async {
        (node_ids(&nodes[0]).await.len() == 1).then_some(())
    })
    .await;
}

fn node_ids_sync(id: &str, node: &Binary) -> bool {
    // node-N listens on 127.0.0.(N+1).
    let n: usize = id.trim_start_matches("node-").parse().unwrap();
    node.admin.starts_with(&format!("127.0.0.{}:", n + 1))
}

/// The node holding a live stream is killed; the publisher, reconnecting to where placement
/// now says, lands on another node, which continues the stream's playlist: the same URL on any
/// node, media sequence and part numbers going on, one more discontinuity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_continues_on_another_node_when_its_node_dies() {
    require("ffmpeg");
    let redis = RedisServer::start().await;
    let url = redis.url();
    // The cloud restreams the stream to a real nginx-rtmp.
    let nginx = common::nginx_rtmp::NginxRtmp::start().await;
    let (cloud, cloud_url) = common::cloud::FakeCloud::start().await;
    cloud
        .destinations
        .lock()
        .unwrap()
        .push(("nginx".into(), nginx.url("fleetdest")));
    let mut nodes = three_nodes(
        &url,
        &[
            ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "5000"),
            ("GLASSCAST_CLOUD_URL", &cloud_url),
            ("GLASSCAST_CLOUD_HEARTBEAT_MS", "300"),
            ("GLASSCAST_CLOUD_POLL_INTERVAL_MS", "500"),
        ],
    )
    .await;
    let stream = "placement/bob%40example.com/g1";
    let p = api(&nodes[0], stream).await;
    let first_owner = p["nodeId"].as_str().unwrap().to_string();
    let owner = nodes
        .iter()
        .position(|n| node_ids_sync(&first_owner, n))
        .unwrap();
    let watcher = (owner + 1) % 3;
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}/live/bob%40example.com/g1/media.m3u8", n.http))
        .collect();
    let playlist = |n: usize| urls[n].clone();
    let mut publisher = publish(&Source::normal(120.0), p["rtmpUrl"].as_str().unwrap());
    // A few segments in, seen through another node.
    let before = eventually("three segments", Duration::from_secs(20), || async {
        let (code, text) = get_text(&playlist(watcher)).await;
        (code == 200)
            .then(|| parse_live(&text))
            .filter(|p| p.open_msn() >= 3)
    })
    .await;
    let last_hint = before.hinted_part().unwrap().1;
    // hls.js watches through a node that will survive, for the whole move.
    let watched = urls[watcher].replace("media.m3u8", "index.m3u8");
    let player = tokio::spawn(async move { run_player("hlsjs", &watched, 30).await });
    let proxied = || async {
        let (_, text) = get_text(&format!("http://{}/metrics", nodes[watcher].admin)).await;
        metric(&text, "glasscast_http_requests_total")
    };
    let base = proxied().await;
    eventually("hls.js playing", Duration::from_secs(20), || async {
        (proxied().await > base + 30.0).then_some(())
    })
    .await;
    let recorded = nginx.recording("fleetdest");
    eventually(
        "the destination receives",
        Duration::from_secs(20),
        || async {
            std::fs::metadata(&recorded)
                .ok()
                .filter(|m| m.len() > 100_000)
        },
    )
    .await;

    // The owner dies.
    nodes[owner].child.start_kill().unwrap();
    let _ = nodes[owner].child.wait().await;
    let _ = publisher.kill().await;
    // Placement, asked on a survivor, now names another node.
    let p = eventually("a new placement", Duration::from_secs(10), || async {
        let p = api(&nodes[watcher], stream).await;
        (p["nodeId"] != first_owner.as_str()).then_some(p)
    })
    .await;
    let killed = std::time::SystemTime::now();
    let mut publisher = publish(&Source::normal(120.0), p["rtmpUrl"].as_str().unwrap());
    let survivors: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    for &n in &survivors {
        let after = eventually(
            "the playlist continued",
            Duration::from_secs(20),
            || async {
                let (code, text) = get_text(&playlist(n)).await;
                (code == 200)
                    .then(|| parse_live(&text))
                    .filter(|p| p.open_msn() > before.open_msn() && p.preload_hint.is_some())
            },
        )
        .await;
        assert!(
            after.media_sequence > before.open_msn(),
            "{after:?} after {before:?}"
        );
        assert!(
            after.hinted_part().unwrap().1 > last_hint,
            "part numbers go on"
        );
        let (_, text) = get_text(&playlist(n)).await;
        let seq: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
            .map_or(0, |v| v.parse().unwrap());
        assert!(seq >= 1, "a new timeline is a new discontinuity:\n{text}");
    }
    // The destination gets the stream again, from the new owner (nginx-rtmp starts a new
    // recording of the key).
    eventually(
        "the destination receives again",
        Duration::from_secs(20),
        || async {
            std::fs::metadata(&recorded)
                .ok()
                .filter(|m| m.modified().is_ok_and(|t| t > killed) && m.len() > 100_000)
        },
    )
    .await;
    // The cloud saw one broadcast: the new owner reports it active, and never says hls-ready
    // again.
    let reports =
        |cloud: &common::cloud::FakeCloud| cloud.posts("/api/rtmp-relay/stream-status").len();
    let seen = reports(&cloud);
    eventually("the new owner reports", Duration::from_secs(10), || async {
        (reports(&cloud) >= seen + 3).then_some(())
    })
    .await;
    // hls.js played on across the move: no fatal error, at most one stall beyond starting,
    // and frames still presented at the end.
    let r = player.await.unwrap();
    assert!(r["fatal"].is_null(), "hls.js gave up: {r}");
    let presented: Vec<(f64, f64)> = r["presented"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let late: Vec<&(f64, f64)> = presented.iter().filter(|(t, _)| *t > 24_000.0).collect();
    assert!(
        late.len() >= 2 && late.last().unwrap().1 > late[0].1 + 30.0,
        "hls.js is not playing at the end: {presented:?} ({} stalls at {}; errors {}; buffers {})",
        r["stalls"],
        r["stallTimes"],
        r["errors"],
        r["stallBuffers"]
    );
    eprintln!(
        "hls.js across the move: {} stalls at {} ms, latency p50 {:?}",
        r["stalls"],
        r["stallTimes"],
        player_latencies(&r).get(player_latencies(&r).len() / 2)
    );
    // One outage: hls.js reports it as the stall at the move and, when it seeks over the
    // hole the move left, a second `waiting`, close behind (seen 3.4 s and 5.7 s in).
    let outages: Vec<f64> = r["stallTimes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .filter(|t| *t > 1000.0)
        .collect();
    assert!(
        outages.len() <= 2 && outages.windows(2).all(|w| w[1] - w[0] < 5000.0),
        "more than one outage: {outages:?}"
    );
    let ready: Vec<_> = cloud
        .posts("/api/rtmp-relay/hls-ready")
        .into_iter()
        .filter(|(_, b)| b["streamId"] == "g1")
        .collect();
    assert_eq!(ready.len(), 1, "one hls-ready per broadcast: {ready:?}");
    let _ = publisher.kill().await;
}

/// Varnish (`cdn-config/varnish/fleet.vcl`) in front of all three nodes, round robin: hls.js
/// plays a stream published to one node through it, every node answers part of the requests,
/// the latency stays within 150 ms of playing straight from the owner, and the owner sees no
/// more than one blocking reload per part from the edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_through_varnish_over_three_nodes() {
    require("ffmpeg");
    let redis = RedisServer::start().await;
    let url = redis.url();
    let nodes = three_nodes(&url, &[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "1000")]).await;
    let varnish = FleetEdge::start(&nodes).await;
    let p = api(&nodes[0], "placement/carol%40example.com/v1").await;
    let owner_id = p["nodeId"].as_str().unwrap().to_string();
    let owner = nodes
        .iter()
        .position(|n| node_ids_sync(&owner_id, n))
        .unwrap();
    let _publisher = publish(&Source::normal(120.0), p["rtmpUrl"].as_str().unwrap());
    let path = "live/carol%40example.com/v1/index.m3u8";
    let direct = format!("http://{}/{path}", nodes[owner].http);
    let edge = format!("http://127.0.0.1:{}/{path}", varnish.port);
    eventually(
        "playable through the edge",
        Duration::from_secs(20),
        || async { (get(&edge).await.0 == 200).then_some(()) },
    )
    .await;

    let owner_metrics = || async {
        let (_, text) = get_text(&format!("http://{}/metrics", nodes[owner].admin)).await;
        (
            metric(&text, "hls_playlist_requests_total"),
            metric(&text, "hls_parts_total"),
        )
    };
    let direct_run = run_player("hlsjs", &direct, 15).await;
    let (requests0, parts0) = owner_metrics().await;
    let served0: Vec<f64> = served_by_each(&nodes).await;
    let edge_run = run_player("hlsjs", &edge, 15).await;
    let (requests1, parts1) = owner_metrics().await;
    let served1: Vec<f64> = served_by_each(&nodes).await;

    let median = |r: &Value| {
        let l = player_latencies(r);
        assert!(l.len() > 10, "too few samples: {r}");
        l[l.len() / 2]
    };
    let (d, e) = (median(&direct_run), median(&edge_run));
    eprintln!(
        "hls.js latency: direct from the owner {d:.3} s, through Varnish over three nodes {e:.3} s"
    );
    assert!(edge_run["fatal"].is_null(), "{edge_run}");
    assert!(
        e - d <= 0.150,
        "through the fleet {e:.3} s, direct {d:.3} s"
    );
    // Varnish spread the requests: every node answered some.
    for (i, (a, b)) in served0.iter().zip(&served1).enumerate() {
        assert!(b > a, "node {i} answered nothing through the edge");
    }
    // The edge's blocking reloads reach the owner once per part (Varnish coalesces, the
    // non-owners coalesce again); plain reloads and the start add a few.
    let (requests, parts) = (requests1 - requests0, parts1 - parts0);
    eprintln!("owner: {requests} playlist requests for {parts} parts during the edge run");
    assert!(
        requests <= parts * 1.2 + 10.0,
        "{requests} requests for {parts} parts"
    );
}

/// HTTP requests each node's origin answered (its own and proxied).
async fn served_by_each(nodes: &[Binary]) -> Vec<f64> {
    let mut out = Vec::new();
    for n in nodes {
        let (_, text) = get_text(&format!("http://{}/metrics", n.admin)).await;
        out.push(metric(&text, "glasscast_http_requests_total"));
    }
    out
}

/// varnishd running `cdn-config/varnish/fleet.vcl` in front of the nodes.
struct FleetEdge {
    port: u16,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl FleetEdge {
    async fn start(nodes: &[Binary]) -> Self {
        require_any("varnishd", "-V");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cdn-config/varnish");
        let dir = tempfile::tempdir().unwrap();
        let mut vcl = std::fs::read_to_string(root.join("fleet.vcl")).unwrap();
        for (i, n) in nodes.iter().enumerate() {
            let (host, port) = n.http.rsplit_once(':').unwrap();
            vcl = vcl
                .replace(&format!("@NODE{}_HOST@", i + 1), host)
                .replace(&format!("@NODE{}_PORT@", i + 1), port);
        }
        std::fs::write(dir.path().join("fleet.vcl"), vcl).unwrap();
        std::fs::copy(
            root.join("glasscast-rules.vcl"),
            dir.path().join("glasscast-rules.vcl"),
        )
        .unwrap();
        let port = free_port();
        let child = tokio::process::Command::new("varnishd")
            .args(["-F", "-j", "none", "-T", "none", "-s", "malloc,128m"])
            .arg("-a")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-f")
            .arg(dir.path().join("fleet.vcl"))
            .arg("-n")
            .arg(dir.path().join("varnish"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("varnishd starts");
        wait_listening("varnish listening", port).await;
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for FleetEdge {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
