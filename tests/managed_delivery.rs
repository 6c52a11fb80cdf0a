//! Delivery modes end to end with real ffmpeg publishing and fake platforms that receive the
//! forwarded RTMPS stream for real: Cloudflare's ingest is a second Glasscast (it serves HLS
//! of what it received), IVS's is nginx-rtmp behind nginx's TLS. Checked: the platform gets
//! the video byte for byte, outputs go to the platform with url and key split, `hls-ready`
//! carries the platform's URLs only once it serves the stream, one live input across a
//! publisher reconnect, deletion at the end, `ab` mode with a `--compare` run, IVS with
//! `ChannelNotBroadcasting`, and a platform failing everything falling back to our origin.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cloud::FakeCloud;
use common::cloudflare::FakeCloudflare;
use common::ivs::FakeIvs;
use common::media::*;
use common::nginx_rtmp::{NginxRtmp, recorded_video};
use common::*;
use glasscast::server::Server;
use serde_json::{Value, json};

const CF_TOKEN: &str = "cf-token-SECRET";
const YT_URL: &str = "rtmp://a.rtmp.youtube.com/live2/yt-SECRET-KEY";

/// The fake Cloudflare with a real ingest: a second Glasscast taking RTMPS at
/// `rtmps://localhost:PORT/live/cf/{streamKey}` with a certificate the relay trusts through
/// `restream.ca_file`.
struct CfPlatform {
    fake: FakeCloudflare,
    ingest: Server,
    /// Every video tag the platform's ingest received.
    received: std::sync::Arc<std::sync::Mutex<Vec<bytes::Bytes>>>,
    ca: String,
    _dir: tempfile::TempDir,
}

impl CfPlatform {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path());
        let ingest = start(&[
            ("GLASSCAST_RTMPS_LISTEN", "127.0.0.1:0"),
            ("GLASSCAST_RTMPS_CERT", &cert),
            ("GLASSCAST_RTMPS_KEY", &key),
            ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
            ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
        ])
        .await;
        let port = ingest.rtmps_addr.unwrap().port();
        let fake =
            FakeCloudflare::start(CF_TOKEN, &format!("rtmps://localhost:{port}/live/cf/")).await;
        fake.serve_from(&ingest, "cf");
        let received = record_video_tags(&ingest);
        Self {
            fake,
            ingest,
            received,
            ca: cert,
            _dir: dir,
        }
    }

    /// The relay settings that point at this platform.
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "GLASSCAST_MANAGED_CLOUDFLARE_API_URL",
                self.fake.url.clone(),
            ),
            ("GLASSCAST_MANAGED_CLOUDFLARE_API_TOKEN", CF_TOKEN.into()),
            ("GLASSCAST_RESTREAM_CA_FILE", self.ca.clone()),
            ("GLASSCAST_DELIVERY_POLL_INTERVAL_MS", "200".into()),
        ]
    }
}

async fn relay_with(settings: Vec<(&'static str, String)>) -> Server {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start(&pairs).await
}

fn cloud_settings(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GLASSCAST_CLOUD_URL", url.into()),
        ("GLASSCAST_CLOUD_POLL_INTERVAL_MS", "500".into()),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "500".into()),
    ]
}

async fn first_post(
    cloud: &FakeCloud,
    endpoint: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, Duration::from_secs(40), || async {
        cloud
            .posts(endpoint)
            .into_iter()
            .map(|(_, v)| v)
            .find(|v| f(v))
    })
    .await
}

fn path(user: &str, stream: &str) -> relay::path::StreamPath {
    relay::path::StreamPath {
        user_id: user.into(),
        stream_id: stream.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_mode_forwards_byte_for_byte_and_announces_the_platform() {
    let cf = CfPlatform::start().await;
    let (cloud, cloud_url) = FakeCloud::start().await;
    cloud
        .destinations
        .lock()
        .unwrap()
        .push(("YouTube".into(), YT_URL.into()));
    cloud
        .directives
        .lock()
        .unwrap()
        .insert("mode".into(), json!("cloudflare"));
    let mut settings = cf.settings();
    settings.extend(cloud_settings(&cloud_url));
    settings.push(("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "3000".into()));
    let relay = relay_with(settings).await;

    // Two publishing sessions back to back: a glasses reconnect inside the grace period.
    let status = spawn_fixture(&relay, "live/alice/m1", 0).await.unwrap();
    assert!(status.success());
    let ready = first_post(&cloud, "/api/rtmp-relay/hls-ready", "hls-ready", |_| true).await;
    let status = spawn_fixture(&relay, "live/alice/m1", 0).await.unwrap();
    assert!(status.success());

    // hls-ready carries the platform's URLs, which the fake gives out only once live.
    let ingest_base = format!("http://{}/live/cf/key-", cf.ingest.http_addr);
    let hls = ready["hlsUrl"].as_str().unwrap().to_string();
    assert!(hls.starts_with(&ingest_base), "{ready}");
    assert!(ready["dashUrl"].as_str().unwrap().ends_with("/index.mpd"));
    assert_eq!(cloud.posts("/api/rtmp-relay/hls-ready").len(), 1);

    // The destination became a platform output, url and key split; no pusher of ours.
    let input = cf.fake.inputs().pop().expect("one live input");
    assert_eq!(input.meta["userId"], "alice");
    assert_eq!(input.outputs.len(), 1, "{:?}", input.outputs);
    assert_eq!(input.outputs[0]["url"], "rtmp://a.rtmp.youtube.com/live2");
    assert_eq!(input.outputs[0]["streamKey"], "yt-SECRET-KEY");
    assert!(relay.restreamer.statuses(&path("alice", "m1")).is_empty());
    let reported = first_post(
        &cloud,
        "/api/rtmp-relay/stream-status",
        "a status with the platform output",
        |v| {
            v["delivery"]["serving"] == "cloudflare"
                && v["outputs"].as_array().is_some_and(|o| !o.is_empty())
        },
    )
    .await;
    assert_eq!(reported["delivery"]["requested"], "cloudflare");
    assert_eq!(
        reported["outputs"][0]["url"],
        "rtmp://a.rtmp.youtube.com:1935/live2/***"
    );
    assert_eq!(reported["outputs"][0]["status"], "active");

    // The stream ends after the grace period: the live input is deleted, and there was one.
    eventually("live input deleted", Duration::from_secs(20), || async {
        cf.fake.inputs().is_empty().then_some(())
    })
    .await;
    let creates = cf
        .fake
        .calls()
        .iter()
        .filter(|(m, p)| m == "POST" && p.ends_with("/live_inputs"))
        .count();
    assert_eq!(
        creates, 1,
        "a reconnect must not create a second live input"
    );

    // What the platform received is the source, twice, tag for tag, byte for byte; and it
    // serves it (its HLS decodes to every frame).
    wait_ended(hls.trim_end_matches("/index.m3u8"), Duration::from_secs(20)).await;
    let source = fixture_video_tags();
    let got = cf.received.lock().unwrap().clone();
    assert_eq!(got.len(), 2 * source.len(), "every frame of both sessions");
    assert!(
        got[..source.len()] == source[..],
        "first session byte for byte"
    );
    assert!(
        got[source.len()..] == source[..],
        "second session byte for byte"
    );
    let (v, _, errors) = decode(&hls).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct(
        "video frames the platform serves",
        v,
        2 * source.len() as u64,
    );

    for (call, _) in cloud.posts("/api/rtmp-relay/stream-status") {
        let body = String::from_utf8_lossy(&call.body);
        assert!(!body.contains("SECRET"), "a key leaked: {body}");
    }
    relay.shutdown(Duration::from_secs(5)).await;
    cf.ingest.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_mode_serves_both_and_compare_reports_both_sides() {
    let cf = CfPlatform::start().await;
    let (cloud, cloud_url) = FakeCloud::start().await;
    let mut settings = cf.settings();
    settings.extend(cloud_settings(&cloud_url));
    settings.push(("GLASSCAST_DELIVERY_MODE", "ab".into()));
    settings.push(("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500".into()));
    let relay = relay_with(settings).await;

    // The load generator publishes (its real-time publisher) and compares both sides, timing
    // each side's first playable playlist from the publish start.
    let status_url = admin_url(&relay, "v1/streams/bob/ab1");
    let report = glasscast_loadtest::run::run(
        glasscast_loadtest::run::RunConfig {
            publish: vec![rtmp_url(&relay, "live/bob/ab1")],
            flv: Some(FIXTURE.into()),
            ffmpeg: false,
            play: Vec::new(),
            compare: Some(glasscast_loadtest::compare::Side::ab_pair(
                &status_url,
                None,
            )),
            viewers: 2,
            fetch_parts: true,
            legacy_viewers: 0,
            duration: Duration::from_secs(5),
            warmup: Duration::ZERO,
        },
        |_| {},
    )
    .await
    .unwrap();
    eprintln!("{}", report.markdown());
    let c = report.comparison.as_ref().expect("a comparison");
    for (side, t) in c.sides.iter().zip(&report.targets) {
        assert!(side.first_playable_ms.is_some(), "{side:?}");
        assert!(
            t.parts > 0 && t.latency_ms.count > 0,
            "{}: {t:?}",
            side.label
        );
        assert_eq!(t.errors, 0, "{}", side.label);
    }
    assert!(
        c.sides[0]
            .url
            .as_ref()
            .unwrap()
            .contains(&relay.http_addr.to_string())
    );
    assert!(
        c.sides[1]
            .url
            .as_ref()
            .unwrap()
            .contains(&cf.ingest.http_addr.to_string())
    );
    assert!(report.markdown().contains("| latency p50 |"));

    // hls-ready is ours; stream-status carries the platform as the alternate.
    let ready = first_post(&cloud, "/api/rtmp-relay/hls-ready", "hls-ready", |_| true).await;
    assert!(
        ready["hlsUrl"]
            .as_str()
            .unwrap()
            .contains(&relay.http_addr.to_string())
    );
    let s = first_post(
        &cloud,
        "/api/rtmp-relay/stream-status",
        "a status with the live alternate",
        |v| v["alternate"]["status"] == "active",
    )
    .await;
    assert_eq!(s["alternate"]["platform"], "cloudflare");
    assert_eq!(
        s["alternate"]["hlsUrl"],
        json!(c.sides[1].url.clone().unwrap())
    );
    assert_eq!(s["status"], "active");
    assert_eq!(report.publishers.errors, 0);
    let stopped = first_post(
        &cloud,
        "/api/rtmp-relay/stream-status",
        "the stopped report",
        |v| v["status"] == "stopped",
    )
    .await;
    assert_eq!(stopped["alternate"]["status"], "stopped", "{stopped}");
    relay.shutdown(Duration::from_secs(5)).await;
    cf.ingest.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ivs_mode_forwards_to_the_channel_and_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let nginx = NginxRtmp::start_tls(&cert, &key).await;
    let ivs = FakeIvs::start("AKIDTEST", "ivs-SECRET", "us-west-2", "localhost").await;
    ivs.serve_from(
        nginx.dir().join("hls"),
        format!("http://127.0.0.1:{}", nginx.http_port),
    );
    let (cloud, cloud_url) = FakeCloud::start().await;
    let mut settings = cloud_settings(&cloud_url);
    settings.extend([
        ("GLASSCAST_DELIVERY_MODE", "ivs".to_string()),
        ("GLASSCAST_DELIVERY_POLL_INTERVAL_MS", "200".into()),
        ("GLASSCAST_MANAGED_IVS_ENDPOINT", ivs.url.clone()),
        ("GLASSCAST_MANAGED_IVS_REGION", "us-west-2".into()),
        ("GLASSCAST_MANAGED_IVS_ACCESS_KEY_ID", "AKIDTEST".into()),
        (
            "GLASSCAST_MANAGED_IVS_SECRET_ACCESS_KEY",
            "ivs-SECRET".into(),
        ),
        (
            "GLASSCAST_MANAGED_IVS_INGEST_PORT",
            nginx.tls_port.unwrap().to_string(),
        ),
        ("GLASSCAST_RESTREAM_CA_FILE", cert.clone()),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500".into()),
    ]);
    let relay = relay_with(settings).await;
    let publisher = spawn_fixture(&relay, "live/carol/i1", 1);

    let ready = first_post(&cloud, "/api/rtmp-relay/hls-ready", "hls-ready", |_| true).await;
    let channel = ivs.channels().pop().expect("a channel");
    assert_eq!(channel.tags["glasscast"], "glasscast");
    let stream_key = ivs.stream_key(&channel.arn);
    assert_eq!(
        ready["hlsUrl"],
        format!("http://127.0.0.1:{}/hls/{stream_key}.m3u8", nginx.http_port)
    );
    // IVS has no DASH: apps get ours beside the platform's HLS.
    assert_eq!(
        ready["dashUrl"],
        format!("http://{}/live/carol/i1/index.mpd", relay.http_addr)
    );
    assert!(
        ivs.not_broadcasting() >= 1,
        "polled through ChannelNotBroadcasting until live"
    );
    assert!(publisher.await.unwrap().success());
    eventually("channel deleted", Duration::from_secs(20), || async {
        ivs.channels().is_empty().then_some(())
    })
    .await;
    let source = packet_hashes(Path::new(FIXTURE), "v").await;
    let got = recorded_video(&nginx, &stream_key, 2 * source.len()).await;
    assert_eq!(
        got[..source.len()],
        source[..],
        "byte for byte at the platform"
    );
    relay.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_failing_everything_falls_back_to_our_origin() {
    let cf = CfPlatform::start().await;
    cf.fake.fail(u32::MAX);
    let mirror = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    let (cloud, cloud_url) = FakeCloud::start().await;
    cloud.destinations.lock().unwrap().push((
        "Mirror".into(),
        format!("rtmp://{}/live/mirror/fb", mirror.rtmp_addr),
    ));
    let mut settings = cf.settings();
    settings.extend(cloud_settings(&cloud_url));
    settings.push(("GLASSCAST_DELIVERY_MODE", "cloudflare".into()));
    settings.push(("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500".into()));
    // The platform answering 500 at start does not stop the relay.
    let relay = relay_with(settings).await;
    let publisher = spawn_fixture(&relay, "live/dave/f1", 1);

    let ready = first_post(&cloud, "/api/rtmp-relay/hls-ready", "hls-ready", |_| true).await;
    let ours = format!("http://{}/live/dave/f1/index.m3u8", relay.http_addr);
    assert_eq!(ready["hlsUrl"], ours);
    let s = first_post(
        &cloud,
        "/api/rtmp-relay/stream-status",
        "a status saying why",
        |v| v["delivery"]["serving"] == "self",
    )
    .await;
    assert_eq!(s["status"], "active");
    assert_eq!(s["delivery"]["requested"], "cloudflare");
    let why = s["delivery"]["error"].as_str().unwrap();
    assert!(why.contains("Cloudflare Stream"), "{why}");
    // The cloud's destination went to our own pushers instead.
    eventually("the mirror receives", Duration::from_secs(20), || async {
        mirror.registry.get(&path("mirror", "fb")).map(|_| ())
    })
    .await;
    assert!(publisher.await.unwrap().success());
    wait_ended(&ours.replace("/index.m3u8", ""), Duration::from_secs(20)).await;
    let (v, a, errors) = decode(&ours).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames from our origin", v, 240);
    within_2pct("audio frames from our origin", a, 348);
    assert!(cf.fake.inputs().is_empty());
    relay.shutdown(Duration::from_secs(5)).await;
    mirror.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_platform_credentials_stop_the_start_naming_the_platform() {
    let fake = FakeCloudflare::start(CF_TOKEN, "rtmps://localhost:1/live/cf/").await;
    let env: Vec<(String, String)> = [
        ("GLASSCAST_RTMP_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_HTTP_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_ADMIN_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_MANAGED_CLOUDFLARE_API_URL", fake.url.as_str()),
        ("GLASSCAST_MANAGED_CLOUDFLARE_API_TOKEN", "wrong-SECRET"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = glasscast::config::load(None, env, &Default::default()).unwrap();
    let err = match Server::start(&cfg).await {
        Ok(_) => panic!("started with rejected credentials"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("Cloudflare Stream rejected the credentials"),
        "{err}"
    );
    assert!(!err.contains("wrong-SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_idle_old_platform_streams_are_deleted_at_start() {
    let fake = FakeCloudflare::start(CF_TOKEN, "rtmps://localhost:1/live/cf/").await;
    let ours = json!({"glasscast": "glasscast", "userId": "u", "streamId": "s"});
    let old = fake.insert(ours.clone(), "2026-01-01T00:00:00Z", false);
    let live = fake.insert(ours.clone(), "2026-01-01T00:00:00Z", true);
    let young = fake.insert(
        ours,
        &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        false,
    );
    let foreign = fake.insert(
        json!({"name": "someone else's"}),
        "2026-01-01T00:00:00Z",
        false,
    );
    let relay = relay_with(vec![
        ("GLASSCAST_MANAGED_CLOUDFLARE_API_URL", fake.url.clone()),
        ("GLASSCAST_MANAGED_CLOUDFLARE_API_TOKEN", CF_TOKEN.into()),
    ])
    .await;
    eventually("the orphan deleted", Duration::from_secs(10), || async {
        (!fake.inputs().iter().any(|i| i.uid == old)).then_some(())
    })
    .await;
    let left: Vec<String> = fake.inputs().into_iter().map(|i| i.uid).collect();
    for kept in [&live, &young, &foreign] {
        assert!(left.contains(kept), "{kept} must stay: {left:?}");
    }
    relay.shutdown(Duration::from_secs(5)).await;
}
