//! The CDN configurations in `cdn-config/`, run for real in front of the origin: LL-HLS still
//! works through the cache (blocking reload, preload hints, hls.js), LL-DASH too (a segment
//! being made streams through the edge chunk by chunk, the time endpoint passes, dash.js
//! plays), media is served from the cache, and 100 viewers cost the origin about one request
//! per part, not one per viewer.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use glasscast::server::Server;
use tokio::process::{Child, Command};

/// Each test of this file runs alone: the crowd tests count what 100 viewers receive against a
/// real-time encoder, and a web player that stalls or starts late on a starved 2-core machine
/// (four Chromiums, four encoders and four edges at once) never catches up and raises its
/// target latency, which then says nothing about the edge.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nginx,
    Varnish,
}

/// A real nginx or Varnish running the file from `cdn-config/` in front of `origin`.
struct Edge {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Edge {
    async fn start(kind: Kind, origin: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cdn-config");
        let mut cmd = match kind {
            Kind::Nginx => {
                let site = std::fs::read_to_string(root.join("nginx/glasscast.conf"))
                    .unwrap()
                    .replace("@ORIGIN@", &origin.to_string())
                    .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
                    .replace("@CACHE_DIR@", &format!("{d}/cache"));
                std::fs::write(dir.path().join("site.conf"), site).unwrap();
                std::fs::write(
                    dir.path().join("nginx.conf"),
                    format!(
                        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                         events {{ worker_connections 4096; }}\n\
                         http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                         include {d}/site.conf; }}\n"
                    ),
                )
                .unwrap();
                let mut c = Command::new("nginx");
                c.arg("-c")
                    .arg(dir.path().join("nginx.conf"))
                    .arg("-p")
                    .arg(dir.path());
                c
            }
            Kind::Varnish => {
                let vcl = std::fs::read_to_string(root.join("varnish/glasscast.vcl"))
                    .unwrap()
                    .replace("@ORIGIN_HOST@", &origin.ip().to_string())
                    .replace("@ORIGIN_PORT@", &origin.port().to_string());
                std::fs::write(dir.path().join("glasscast.vcl"), vcl).unwrap();
                std::fs::copy(
                    root.join("varnish/glasscast-rules.vcl"),
                    dir.path().join("glasscast-rules.vcl"),
                )
                .unwrap();
                let mut c = Command::new("varnishd");
                c.args(["-F", "-j", "none", "-T", "none", "-s", "malloc,128m"])
                    .arg("-a")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("-f")
                    .arg(dir.path().join("glasscast.vcl"))
                    .arg("-n")
                    .arg(dir.path().join("varnish"));
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{kind:?} is required (Debian: nginx, varnish; scripts/test installs them): {e}"
                )
            });
        wait_listening("the edge listening", port).await;
        Self {
            port,
            _dir: dir,
            child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Origin HTTP requests so far, by kind (from the origin's own metrics).
async fn origin_requests(server: &Server, kind: &str) -> u64 {
    let (_, m) = get_text(&admin_url(server, "metrics")).await;
    m.lines()
        .filter(|l| {
            l.starts_with("glasscast_http_requests_total{")
                && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One simulated LL-HLS viewer, like hls.js: a blocking reload for the next part and a GET of
/// the preload-hinted part, in parallel, over and over. Returns parts received.
async fn viewer(base: String, until: Instant) -> u64 {
    let http = Http::new();
    let text_of = |b: bytes::Bytes| String::from_utf8_lossy(&b).into_owned();
    let mut text = text_of(http.get(&format!("{base}/media.m3u8")).await.1);
    let mut parts = 0;
    while Instant::now() < until {
        let live = parse_live(&text);
        let Some(hint) = live.preload_hint.clone() else {
            break;
        };
        let playlist = format!(
            "{base}/media.m3u8?_HLS_msn={}&_HLS_part={}",
            live.open_msn(),
            live.open_parts
        );
        let part = format!("{base}/{hint}");
        let ((s1, t), (s2, body)) = tokio::join!(http.get(&playlist), http.get(&part));
        assert_eq!((s1, s2), (200, 200), "viewer request failed");
        assert!(!body.is_empty());
        parts += 1;
        text = text_of(t);
    }
    parts
}

async fn ll_hls_through(kind: Kind) {
    let _alone = ALONE.lock().await;
    let server = start(&[]).await;
    let cdn = Edge::start(kind, server.http_addr).await;
    let _ff = publish(
        &Source::normal(40.0),
        &rtmp_url(&server, "live/cdn%40example.com/s"),
    );
    let base = cdn.url("live/cdn%40example.com/s");
    let text = eventually(
        "a segment through the CDN",
        Duration::from_secs(20),
        || async {
            let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
            (s == 200 && parse_live(&t).complete_segments >= 2).then_some(t)
        },
    )
    .await;
    let live = parse_live(&text);

    // Blocking reload works through the cache and returns the awaited part.
    let hint = live.preload_hint.clone().unwrap();
    let (s, blocked) = get_text(&format!(
        "{base}/media.m3u8?_HLS_msn={}&_HLS_part={}",
        live.open_msn(),
        live.open_parts
    ))
    .await;
    assert_eq!(s, 200);
    assert!(blocked.contains(&hint), "{blocked}");
    // The preload-hinted part streams through the edge while it is being made (its first
    // bytes before it is complete at the origin), and is the complete part, which the edge
    // then serves from its cache.
    let after = parse_live(&blocked);
    let (_, hinted) = after.hinted_part().expect("hint");
    let os = server
        .origin
        .get(&relay::path::StreamPath {
            user_id: "cdn@example.com".into(),
            stream_id: "s".into(),
        })
        .unwrap();
    let done = tokio::spawn(async move {
        let mut progress = os.watch_progress();
        while os.next_part_index() <= hinted {
            progress.changed().await.expect("stream lives");
        }
        Instant::now()
    });
    let url = format!("{base}/{}", after.preload_hint.unwrap());
    let (s, h, frames) = get_frames(&url).await;
    let done = done.await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert!(
        frames[0].0 < done,
        "{kind:?}: the hinted part's first bytes came {:?} after it was complete",
        frames[0].0 - done
    );
    let body: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    assert_eq!(&body[4..8], b"moof");
    let (_, _, cached) = get(&url).await;
    assert_eq!(
        cached.to_vec(),
        body,
        "{kind:?}: the streamed part is the complete part"
    );

    // Media: a miss, then a hit.
    let seg = text
        .lines()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap();
    let (_, h1, b1) = get(&format!("{base}/{seg}")).await;
    let (_, h2, b2) = get(&format!("{base}/{seg}")).await;
    assert_eq!(b1, b2);
    let cache = |h: &hyper::HeaderMap| {
        h.get("x-cache-status")
            .or(h.get("x-cache"))
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(
        cache(&h2).as_deref(),
        Some("HIT"),
        "first was {:?}",
        cache(&h1)
    );
    // Range as ffmpeg sends it, from the cache.
    let (s, _, ranged) = get_with(&format!("{base}/{seg}"), &[("range", "bytes=0-")]).await;
    assert!(s == 206 || s == 200);
    assert_eq!(ranged, b1);
    // Plain playlists are never served stale from the cache.
    let (_, h, _) = get(&format!("{base}/media.m3u8")).await;
    assert_ne!(cache(&h).as_deref(), Some("HIT"));

    // hls.js in Chromium plays through the CDN with low latency.
    let r = run_player("hlsjs", &format!("{base}/index.m3u8"), 10).await;
    assert!(r["fatal"].is_null(), "{r}");
    let lat = player_latencies(&r);
    assert!(lat.len() > 5, "{r}");
    let p50 = lat[lat.len() / 2];
    let mut edge: Vec<f64> = r["samples"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["edge"].as_f64()).collect())
        .unwrap_or_default();
    edge.sort_by(f64::total_cmp);
    let seen = format!(
        "hls.js through {kind:?}: latency p50 {p50:.3} s, behind its live edge p50 {:.3} s, \
         stalls {} at {} ms, target at the end {} s, first playlist {}, first frame {}",
        edge.get(edge.len() / 2).copied().unwrap_or(f64::NAN),
        r["stalls"],
        r["stallTimes"],
        r["samples"]
            .as_array()
            .and_then(|s| s.last())
            .map_or(serde_json::Value::Null, |s| s["target"].clone()),
        r["firstPlaylist"],
        r["firstPlaying"],
    );
    eprintln!("{seen}");
    assert!(p50 < 3.0, "{seen}");
    server.shutdown(Duration::from_secs(5)).await;
}

/// LL-DASH through the edge: the MPD names the edge's time endpoint, which passes uncached;
/// the next segment, asked for before it exists (as dash.js does), streams through the edge
/// chunk by chunk before it is complete, to every viewer asking for it on Varnish and to the
/// first on nginx (whose cache lock holds the others until it is complete); the bytes are the
/// complete segment's; and dash.js plays through the edge.
async fn ll_dash_through(kind: Kind) {
    let _alone = ALONE.lock().await;
    let server = start(&[]).await;
    let cdn = Edge::start(kind, server.http_addr).await;
    let _ff = publish(&Source::normal(40.0), &rtmp_url(&server, "live/dash/s"));
    let base = cdn.url("live/dash/s");
    eventually("two segments", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= 2).then_some(())
    })
    .await;
    let (s, mpd) = get_text(&format!("{base}/index.mpd")).await;
    assert_eq!(s, 200);
    assert!(mpd.contains(r#"availabilityTimeComplete="false""#), "{mpd}");
    let time_url = format!("http://127.0.0.1:{}/time", cdn.port);
    assert!(mpd.contains(&format!(r#"value="{time_url}""#)), "{mpd}");
    for _ in 0..2 {
        let (s, h, t) = get(&time_url).await;
        assert_eq!(s, 200);
        assert!(h.get("x-cache").is_none_or(|v| v != "HIT"), "{h:?}");
        let t = humantime::parse_rfc3339(String::from_utf8_lossy(&t).trim()).expect("a time");
        let skew = t
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(2), "{skew:?}");
    }

    let os = server
        .origin
        .get(&relay::path::StreamPath {
            user_id: "dash".into(),
            stream_id: "s".into(),
        })
        .unwrap();
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let live = parse_live(&text);
    let (prefix, _) = live.hinted_part().expect("hint");
    let next = live.open_msn() + 1;
    let name =
        origin::naming::Names { prefix }.track_segment(next, origin::naming::TrackKind::Video);
    let done = tokio::spawn({
        let os = os.clone();
        async move {
            let mut progress = os.watch_progress();
            let kind =
                origin::naming::MediaName::TrackSegment(next, origin::naming::TrackKind::Video);
            while os.media(kind).is_none() {
                progress.changed().await.expect("stream lives");
            }
            Instant::now()
        }
    });
    let url = format!("{base}/{name}");
    let viewers = if kind == Kind::Varnish { 2 } else { 1 };
    let fetches: Vec<_> = (0..viewers)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get_frames(&url).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for f in fetches {
        bodies.push(f.await.unwrap());
    }
    let done = done.await.unwrap();
    let (_, _, complete) = get(&url).await;
    for (status, _, frames) in &bodies {
        assert_eq!(*status, 200, "{url}");
        assert!(frames.len() >= 2, "{kind:?}: {} frame(s)", frames.len());
        assert!(
            frames[0].0 < done,
            "{kind:?}: first bytes {:?} after the segment was complete",
            frames[0].0 - done
        );
        let streamed: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
        assert_eq!(streamed, complete.to_vec(), "{kind:?}: bytes differ");
    }

    let r = run_player("dashjs", &format!("{base}/index.mpd"), 10).await;
    assert!(r["fatal"].is_null(), "{r}");
    let lat = player_latencies(&r);
    assert!(lat.len() > 5, "{r}");
    let p50 = lat[lat.len() / 2];
    eprintln!(
        "dash.js through {kind:?}: latency p50 {p50:.3} s, {} stalls",
        r["stalls"]
    );
    assert!(p50 < 4.0, "{p50}");
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_dash_through_nginx() {
    ll_dash_through(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_dash_through_varnish() {
    ll_dash_through(Kind::Varnish).await;
}

async fn crowd_through(kind: Kind) -> (f64, f64, u64) {
    let _alone = ALONE.lock().await;
    let server = start(&[]).await;
    let cdn = Arc::new(Edge::start(kind, server.http_addr).await);
    let _ff = publish(&Source::normal(40.0), &rtmp_url(&server, "live/crowd/s"));
    let base = cdn.url("live/crowd/s");
    eventually(
        "a segment through the CDN",
        Duration::from_secs(20),
        || async {
            let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
            (s == 200 && parse_live(&t).complete_segments >= 1).then_some(())
        },
    )
    .await;
    let os = server
        .origin
        .get(&relay::path::StreamPath {
            user_id: "crowd".into(),
            stream_id: "s".into(),
        })
        .unwrap();
    let until = Instant::now() + Duration::from_secs(9);
    let viewers: Vec<_> = (0..100)
        .map(|_| tokio::spawn(viewer(base.clone(), until)))
        .collect();
    // Let every viewer get past its first (uncacheable) plain playlist request.
    tokio::time::sleep_until((Instant::now() + Duration::from_secs(2)).into()).await;
    let (p0, m0, parts0) = (
        origin_requests(&server, "playlist").await,
        origin_requests(&server, "media").await,
        os.next_part_index(),
    );
    tokio::time::sleep_until((Instant::now() + Duration::from_secs(5)).into()).await;
    let (p1, m1, parts1) = (
        origin_requests(&server, "playlist").await,
        origin_requests(&server, "media").await,
        os.next_part_index(),
    );
    let mut received = 0;
    for v in viewers {
        received += v.await.unwrap();
    }
    let parts = (parts1 - parts0).max(1) as f64;
    let per_part_playlist = (p1 - p0) as f64 / parts;
    let per_part_media = (m1 - m0) as f64 / parts;
    eprintln!(
        "100 viewers through {kind:?}: {parts} parts, origin playlist requests/part {per_part_playlist:.2}, media requests/part {per_part_media:.2}, parts received by viewers {received}"
    );
    server.shutdown(Duration::from_secs(5)).await;
    (per_part_playlist, per_part_media, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_through_nginx() {
    ll_hls_through(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_through_varnish() {
    ll_hls_through(Kind::Varnish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_viewers_through_nginx_cost_one_origin_request_per_part() {
    let (playlist, media, received) = crowd_through(Kind::Nginx).await;
    // nginx wakes requests waiting on a cache lock every 500 ms (hard-coded), so coalesced
    // viewers advance one to two parts per second instead of five: they keep playing, behind.
    // How many they get depends on how that timer falls against part production: 669-1544
    // parts in all over the 9 s run on the 2-core VM, the same range with the hinted part held
    // until complete (before issue 11) and streamed while it is made (after). Moving at all
    // (half a part per second each) is what this asserts; Varnish below keeps up.
    assert!(received > 100 * 4, "viewers stalled: {received} parts");
    // About one origin request per part for the whole crowd, not one per viewer. Viewers that
    // drift apart ask for a few distinct URLs, hence the margin.
    assert!(
        playlist < 6.0,
        "{playlist} origin playlist requests per part"
    );
    assert!(media < 2.0, "{media} origin media requests per part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_viewers_through_varnish_cost_one_origin_request_per_part() {
    let (playlist, media, received) = crowd_through(Kind::Varnish).await;
    // Varnish wakes waiters when the object arrives: viewers keep up with the stream.
    assert!(received > 100 * 30, "viewers fell behind: {received} parts");
    assert!(
        playlist < 3.0,
        "{playlist} origin playlist requests per part"
    );
    assert!(media < 2.0, "{media} origin media requests per part");
}

#[test]
fn cloudflare_rules_cover_every_case() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cdn-config/cloudflare/cache-rules.json"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let rules = v["rules"].as_array().unwrap();
    let find = |needle: &str| {
        rules
            .iter()
            .find(|r| r["expression"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no rule mentions {needle}"))
    };
    // Directive playlists: cached, whole query in the key, after the plain-playlist bypass.
    let directive = find("_HLS_");
    assert_eq!(directive["action_parameters"]["cache"], true);
    assert_eq!(
        directive["action_parameters"]["cache_key"]["custom_key"]["query_string"]["include"],
        "*"
    );
    let idx = |r: &serde_json::Value| rules.iter().position(|x| x == r).unwrap();
    let plain = find(".mpd");
    assert_eq!(plain["action_parameters"]["cache"], false);
    assert!(
        idx(plain) < idx(directive),
        "the directive rule must come after (and override) the bypass"
    );
    // Media cached per origin headers; errors never cached.
    assert_eq!(
        find(".m4s")["action_parameters"]["edge_ttl"]["mode"],
        "respect_origin"
    );
    let errors = rules
        .iter()
        .find(|r| r["action_parameters"]["edge_ttl"]["status_code_ttl"].is_array())
        .unwrap();
    assert_eq!(
        errors["action_parameters"]["edge_ttl"]["status_code_ttl"][0]["value"],
        0
    );
}
