//! Restream to real nginx-rtmp destinations (Debian `nginx` + `libnginx-mod-rtmp`, started by
//! the test on a free loopback port, recording what they receive).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::media::*;
use common::nginx_rtmp::*;
use common::*;
use relay::restream::destination::Destination;
use relay::restream::pusher::{self, PushConfig, Pusher};
use relay::restream::supervisor::DestState;
use tokio::process::Command;
use tokio_util::task::TaskTracker;

/// Pushes every new stream of `server` to `urls`; returns the pushers as they are created.
fn restream_to(server: &glasscast::server::Server, urls: Vec<String>) -> Arc<Mutex<Vec<Pusher>>> {
    let tasks = TaskTracker::new();
    let mut cfg = PushConfig::new(&[]).unwrap();
    // Fast retries so the tests do not wait for production backoff.
    cfg.backoff.initial = Duration::from_millis(200);
    cfg.backoff.max = Duration::from_secs(1);
    cfg.write_timeout = Duration::from_secs(3);
    // A short queue so a slow destination starts losing frames quickly.
    cfg.queue_capacity = 64;
    let cfg = Arc::new(cfg);
    let pushers: Arc<Mutex<Vec<Pusher>>> = Arc::default();
    let list = pushers.clone();
    server.registry.on_new_stream(move |stream| {
        for (i, url) in urls.iter().enumerate() {
            let dest = Destination::parse(url).unwrap();
            let p = pusher::spawn(
                stream,
                dest,
                format!("dest-{i}"),
                cfg.clone(),
                i as u64,
                &tasks,
            );
            list.lock().unwrap().push(p);
        }
    });
    pushers
}

fn statuses(p: &Arc<Mutex<Vec<Pusher>>>) -> Vec<relay::restream::pusher::DestinationStatus> {
    p.lock().unwrap().iter().map(Pusher::status).collect()
}

async fn packet_dts(file: &Path) -> Vec<i64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_destinations_receive_the_stream_bit_identical() {
    let nginx = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    let pushers = restream_to(&server, vec![nginx.url("dest-a"), nginx.url("dest-b")]);
    // Publish the committed fixture byte for byte (-c copy): it is the reference.
    publish_fixture(&server, "live/restream/s", 0).await;
    // The stream ends after the grace period; the pushers close their connections cleanly.
    eventually("pushers stopped", Duration::from_secs(15), || async {
        let p = pushers.lock().unwrap();
        (p.len() == 2 && p.iter().all(|p| p.status().state == DestState::Stopped)).then_some(())
    })
    .await;
    for p in pushers.lock().unwrap().iter() {
        let s = p.status();
        assert!(s.bytes_sent > 500_000, "{s:?}");
        assert_eq!(s.reconnects, 0, "{s:?}");
        assert_eq!(s.dropped, 0, "{s:?}");
        assert!(
            !s.masked_url.contains("dest-"),
            "key leaked: {}",
            s.masked_url
        );
    }

    let source_video = packet_hashes(Path::new(FIXTURE), "v").await;
    let source_audio = packet_hashes(Path::new(FIXTURE), "a").await;
    assert_eq!(source_video.len(), 120);
    for key in ["dest-a", "dest-b"] {
        let rec = nginx.recording(key);
        eventually("recording closed", Duration::from_secs(10), || async {
            (rec.exists() && packet_hashes(&rec, "v").await.len() == source_video.len())
                .then_some(())
        })
        .await;
        assert_eq!(
            packet_hashes(&rec, "v").await,
            source_video,
            "{key}: video differs from the source"
        );
        let audio = packet_hashes(&rec, "a").await;
        // Audio is forwarded from the first keyframe on; the fixture starts with one.
        assert_eq!(audio, source_audio, "{key}: audio differs from the source");

        let dts = packet_dts(&rec).await;
        assert!(
            dts.windows(2).all(|w| w[0] <= w[1]),
            "{key}: timestamps go backwards"
        );
        assert_eq!(dts.first(), Some(&0), "{key}: timestamps rebased to 0");
        let (v, _, errors) = decode(rec.to_str().unwrap()).await;
        assert!(errors.trim().is_empty(), "{key}: {errors}");
        assert_eq!(v, 120);
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// Waits until every pusher has stopped (the stream ended) and returns their final status.
async fn wait_stopped(
    p: &Arc<Mutex<Vec<Pusher>>>,
    n: usize,
) -> Vec<relay::restream::pusher::DestinationStatus> {
    eventually("pushers finished", Duration::from_secs(30), || async {
        let s = statuses(p);
        (s.len() == n
            && s.iter()
                .all(|s| matches!(s.state, DestState::Stopped | DestState::Failed { .. })))
        .then_some(s)
    })
    .await
}

/// Waits until the recording for `key` holds `frames` video packets, then returns its hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_destination_is_reconnected_and_the_other_misses_nothing() {
    let flaky = NginxRtmp::start().await;
    let steady = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    let pushers = restream_to(&server, vec![flaky.url("k"), steady.url("k")]);
    let publisher = spawn_fixture(&server, "live/flaky/s", 2);
    eventually(
        "both destinations live",
        Duration::from_secs(10),
        || async {
            let s = statuses(&pushers);
            (s.len() == 2
                && s.iter()
                    .all(|s| s.state == DestState::Live && s.bytes_sent > 100_000))
            .then_some(())
        },
    )
    .await;
    let flaky = flaky.restart_after(Duration::from_millis(1500)).await;
    eventually(
        "flaky destination back",
        Duration::from_secs(10),
        || async {
            let s = statuses(&pushers);
            (s[0].state == DestState::Live && s[0].reconnects >= 1).then_some(())
        },
    )
    .await;
    assert!(publisher.await.unwrap().success());
    let s = wait_stopped(&pushers, 2).await;
    assert!(s[0].last_error.is_some(), "{:?}", s[0]);
    assert_eq!(s[1].reconnects, 0, "{:?}", s[1]);
    assert_eq!(s[1].dropped, 0);
    // The steady destination got every frame of the three loops, byte for byte.
    let source = packet_hashes(Path::new(FIXTURE), "v").await;
    let expected: Vec<String> = source.iter().cycle().take(360).cloned().collect();
    assert_eq!(recorded_video(&steady, "k", 360).await, expected);
    // The flaky one resumed: its recording holds frames from after the restart.
    assert!(flaky.recording("k").exists());
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_fails_without_retry_loops() {
    let nginx = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    let bad = format!("rtmp://127.0.0.1:{}/deny/wrong-key", nginx.port);
    let pushers = restream_to(&server, vec![bad, nginx.url("good")]);
    publish_fixture(&server, "live/reject/s", 0).await;
    let s = wait_stopped(&pushers, 2).await;
    assert!(matches!(s[0].state, DestState::Failed { .. }), "{:?}", s[0]);
    assert!(s[0].reconnects <= 1, "retried {} times", s[0].reconnects);
    assert!(
        !format!("{:?}", s[0]).contains("wrong-key"),
        "key leaked: {:?}",
        s[0]
    );
    assert_eq!(s[1].state, DestState::Stopped);
    assert_eq!(recorded_video(&nginx, "good", 120).await.len(), 120);
    server.shutdown(Duration::from_secs(5)).await;
}

/// A TCP proxy that forwards client->upstream at most `bytes_per_sec`.
async fn throttling_proxy(upstream: u16, bytes_per_sec: u64) -> u16 {
    // A small receive buffer so the throttle is felt at once, as over a real slow link.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = up.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut ur, &mut cw).await;
                });
                let mut buf = vec![0u8; 4096];
                let start = tokio::time::Instant::now();
                let mut sent = 0u64;
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if uw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    sent += n as u64;
                    // Pace to the rate (this is the throttle itself, not test synchronization).
                    let due = start + Duration::from_secs_f64(sent as f64 / bytes_per_sec as f64);
                    tokio::time::sleep_until(due).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_destination_loses_frames_alone() {
    let nginx = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    // The fixture is ~1.5 Mbit/s; allow a third of it.
    let proxy = throttling_proxy(nginx.port, 60_000).await;
    let slow = format!("rtmp://127.0.0.1:{proxy}/live/slow");
    let pushers = restream_to(&server, vec![slow, nginx.url("fast")]);
    let publisher = spawn_fixture(&server, "live/throttle/s", 2);
    // Meanwhile the HLS output keeps its part cadence.
    let os = eventually("packager", Duration::from_secs(10), || async {
        server
            .origin
            .get(&relay::path::StreamPath {
                user_id: "throttle".into(),
                stream_id: "s".into(),
            })
            .filter(|o| o.next_part_index() > 0)
    })
    .await;
    let mut worst = Duration::ZERO;
    let (mut last, mut last_at) = (os.next_part_index(), std::time::Instant::now());
    while !publisher.is_finished() {
        let i = os.next_part_index();
        if i != last {
            worst = worst.max(last_at.elapsed());
            (last, last_at) = (i, std::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(publisher.await.unwrap().success());
    assert!(
        worst < Duration::from_millis(700),
        "HLS parts stalled for {worst:?}"
    );
    let s = wait_stopped(&pushers, 2).await;
    assert!(
        s[0].dropped > 0,
        "the throttled destination should have lost frames: {:?}",
        s[0]
    );
    assert_eq!(s[1].dropped, 0, "{:?}", s[1]);
    let source = packet_hashes(Path::new(FIXTURE), "v").await;
    let expected: Vec<String> = source.iter().cycle().take(360).cloned().collect();
    assert_eq!(
        recorded_video(&nginx, "fast", 360).await,
        expected,
        "the fast destination missed frames"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_stay_connected_through_a_publisher_reconnect() {
    let nginx = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "3000")]).await;
    let pushers = restream_to(&server, vec![nginx.url("grace")]);
    publish_fixture(&server, "live/grace/s", 0).await;
    assert_eq!(
        statuses(&pushers)[0].state,
        DestState::Live,
        "still connected during the grace period"
    );
    publish_fixture(&server, "live/grace/s", 0).await;
    let s = wait_stopped(&pushers, 1).await;
    assert_eq!(
        s[0].reconnects, 0,
        "the destination connection was kept: {:?}",
        s[0]
    );
    let source = packet_hashes(Path::new(FIXTURE), "v").await;
    let expected: Vec<String> = source.iter().cycle().take(240).cloned().collect();
    assert_eq!(recorded_video(&nginx, "grace", 240).await, expected);
    let dts = packet_dts(&nginx.recording("grace")).await;
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "timestamps must keep increasing across the reconnect"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_rule_and_destinations_changed_in_place() {
    use relay::restream::restreamer::DestinationSpec;
    let nginx = NginxRtmp::start().await;
    let rule = format!("live/rules%40example.com/ -> {}", nginx.url("from-rule"));
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_RESTREAM_RULES", &rule),
        ("GLASSCAST_METRICS_PER_STREAM_LABELS", "true"),
    ])
    .await;
    let path = relay::path::StreamPath {
        user_id: "rules@example.com".into(),
        stream_id: "s".into(),
    };
    let publisher = spawn_fixture(&server, "live/rules%40example.com/s", 2);
    let live = |n: usize| {
        let (server, path) = (&server, &path);
        async move {
            let s = server.restreamer.statuses(path);
            (s.len() == n
                && s.iter()
                    .all(|s| s.state == DestState::Live && s.bytes_sent > 0))
            .then_some(s)
        }
    };
    let s = eventually(
        "the rule's destination live",
        Duration::from_secs(10),
        || live(1),
    )
    .await;
    // Per-destination metrics (metrics.per_stream_labels), with the key masked.
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    let url = format!("rtmp://127.0.0.1:{}/live/***", nginx.port);
    assert_eq!(
        metric(&m, "restream_destinations{state=\"active\"}"),
        1.0,
        "{m}"
    );
    for name in [
        "restream_bytes_total{",
        "restream_reconnects_total{",
        "restream_dropped_frames_total{",
    ] {
        let line = m
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{m}"));
        assert!(line.contains(&format!("url=\"{url}\"")), "{line}");
        assert!(
            line.contains("stream=\"live/rules@example.com/s\""),
            "{line}"
        );
    }
    assert!(m.contains("state=\"active\""));
    // A player reading the destination live sees the onMetaData we sent (nginx: `meta copy`),
    // and the sequence headers (it can tell the codecs and size).
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags=encoder:stream=codec_name,width,height",
            "-of",
            "default=nw=1",
        ])
        .arg(nginx.url("from-rule"))
        .output()
        .await
        .unwrap();
    let probe = String::from_utf8_lossy(&out.stdout);
    for want in [
        "TAG:encoder=glasscast",
        "codec_name=h264",
        "width=1280",
        "height=720",
        "codec_name=aac",
    ] {
        assert!(
            probe.contains(want),
            "{want} missing from the destination's live stream:\n{probe}"
        );
    }
    assert!(!m.contains("from-rule"), "stream key in metrics");
    assert_eq!(
        s[0].masked_url,
        format!("rtmp://127.0.0.1:{}/live/***", nginx.port)
    );
    // The cloud (here: the test) adds a destination, then removes it again; the static rule's
    // destination stays connected throughout (rules always apply).
    let stream = server.registry.get(&path).expect("stream");
    let added = DestinationSpec {
        name: "added".into(),
        url: nginx.url("added"),
    };
    server
        .restreamer
        .set_cloud_destinations(&stream, vec![added]);
    eventually("both live", Duration::from_secs(10), || live(2)).await;
    server.restreamer.set_cloud_destinations(&stream, vec![]);
    let s = eventually("only the rule's", Duration::from_secs(10), || live(1)).await;
    assert_eq!(s[0].name, "127.0.0.1");
    assert_eq!(
        s[0].reconnects, 0,
        "the rule's destination was never disturbed"
    );
    assert!(publisher.await.unwrap().success());
    assert_eq!(stream.publishes(), 1, "the publisher was never disturbed");
    // The removed destination's connection was closed cleanly: nginx finalized its recording
    // with a partial stream that decodes; the rule's one got everything.
    let added_frames = recorded_video(&nginx, "added", 1).await.len();
    assert!(
        added_frames < 360,
        "added kept receiving after removal: {added_frames}"
    );
    eventually("recordings done", Duration::from_secs(15), || async {
        server.restreamer.statuses(&path).is_empty().then_some(())
    })
    .await;
    let (v, _, errors) = decode(nginx.recording("from-rule").to_str().unwrap()).await;
    assert!(errors.trim().is_empty(), "{errors}");
    assert!(v > 60, "{v}");
    let (_, _, errors) = decode(nginx.recording("added").to_str().unwrap()).await;
    assert!(
        errors.trim().is_empty(),
        "the removed one decodes: {errors}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_destination_with_verified_certificate() {
    // The destination: a second Glasscast with RTMPS ingest and a certificate for "localhost".
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = self_signed(dir.path());
    let dest_server = start(&[
        ("GLASSCAST_RTMPS_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_RTMPS_CERT", &c),
        ("GLASSCAST_RTMPS_KEY", &k),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let rtmps = dest_server.rtmps_addr.unwrap();
    // The relay trusts that certificate as an extra CA and verifies the name.
    let rule = format!("live/ -> rtmps://localhost:{}/live/mirror/s", rtmps.port());
    let relay = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_RESTREAM_RULES", &rule),
        ("GLASSCAST_RESTREAM_CA_FILE", &c),
    ])
    .await;
    publish_fixture(&relay, "live/origin/s", 0).await;
    let base = http_url(&dest_server, "live/mirror/s");
    wait_ended(&base, Duration::from_secs(20)).await;
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames through rtmps", v, 120);
    within_2pct("audio frames through rtmps", a, 174);
    relay.shutdown(Duration::from_secs(5)).await;
    dest_server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_destination_with_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = self_signed(dir.path());
    let dest_server = start(&[
        ("GLASSCAST_RTMPS_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_RTMPS_CERT", &c),
        ("GLASSCAST_RTMPS_KEY", &k),
    ])
    .await;
    let rule = format!(
        "live/ -> rtmps://localhost:{}/live/mirror/s",
        dest_server.rtmps_addr.unwrap().port()
    );
    // No extra CA: the self-signed certificate must not be accepted.
    let relay = start(&[("GLASSCAST_RESTREAM_RULES", &rule)]).await;
    let _ff = publish(&Source::normal(10.0), &rtmp_url(&relay, "live/origin/s"));
    let path = relay::path::StreamPath {
        user_id: "origin".into(),
        stream_id: "s".into(),
    };
    let s = eventually(
        "a TLS failure reported",
        Duration::from_secs(15),
        || async {
            let s = relay.restreamer.statuses(&path);
            s.first()
                .filter(|s| s.last_error.as_deref().is_some_and(|e| e.contains("tls")))
                .cloned()
        },
    )
    .await;
    assert_ne!(s.state, DestState::Live);
    assert!(
        dest_server.registry.list().is_empty(),
        "nothing must be published over an unverified TLS link"
    );
    relay.shutdown(Duration::from_secs(5)).await;
    dest_server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_only_source_arrives_with_a_silent_aac_track() {
    let nginx = NginxRtmp::start().await;
    let rule = format!("live/ -> {}", nginx.url("silent"));
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_RESTREAM_RULES", &rule),
    ])
    .await;
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
            FIXTURE,
            "-an",
            "-c",
            "copy",
            "-f",
            "flv",
        ])
        .arg(rtmp_url(&server, "live/videoonly/s"))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let path = relay::path::StreamPath {
        user_id: "videoonly".into(),
        stream_id: "s".into(),
    };
    eventually("destination done", Duration::from_secs(15), || async {
        server.restreamer.statuses(&path).is_empty().then_some(())
    })
    .await;
    let rec = nginx.recording("silent");
    let video = recorded_video(&nginx, "silent", 120).await;
    assert_eq!(
        video,
        packet_hashes(Path::new(FIXTURE), "v").await,
        "video still byte for byte"
    );
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels",
            "-of",
            "csv=p=0",
        ])
        .arg(&rec)
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "aac,LC,44100,1"
    );
    let (v, a, errors) = decode(rec.to_str().unwrap()).await;
    assert!(
        errors.trim().is_empty(),
        "the silent track must decode cleanly: {errors}"
    );
    assert_eq!(v, 120);
    // 4 s of video, 4 s of silence (43.07 frames/s).
    assert!((170..=174).contains(&a), "{a} silent frames");
    server.shutdown(Duration::from_secs(5)).await;
}
