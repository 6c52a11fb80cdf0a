//! A publisher on a bad cellular link, for real: ffmpeg in a network namespace whose packets
//! this test delays, jitters and drops (150 ms RTT with 30 ms jitter, 1% loss towards the
//! relay, and a 3 s total outage in the middle; see `common::netns`), beside a publisher on a
//! clean path. The impaired stream must go on
//! as one playlist without a discontinuity (the outage is shorter than the read timeout), its
//! live edge back within 1.5 s of the wall clock after recovery, every frame there in the end;
//! the clean stream must not notice. Needs root and iproute2 (`scripts/test` installs it).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::netns::{ImpairedPath, Impairment};
use common::*;
use origin::stream::OriginStream;
use relay::path::StreamPath;

fn sp(u: &str) -> StreamPath {
    StreamPath {
        user_id: u.into(),
        stream_id: "s".into(),
    }
}

/// The largest gap between two new parts of `os` until `until`.
async fn largest_part_gap(os: Arc<OriginStream>, until: Instant) -> Duration {
    let (mut last, mut at, mut worst) = (os.next_part_index(), Instant::now(), Duration::ZERO);
    while Instant::now() < until {
        let i = os.next_part_index();
        if i != last {
            worst = worst.max(at.elapsed());
            (last, at) = (i, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cellular_link_with_an_outage_keeps_one_stream() {
    let way = |loss| Impairment {
        delay: Duration::from_millis(60),
        jitter: Duration::from_millis(30),
        loss,
    };
    // 60 ms + up to 30 ms each way: 150 ms RTT on average, 30 ms of jitter per direction.
    let path = ImpairedPath::create(way(0.0), way(0.01));
    let listen = format!("{}:0", path.host_ip);
    let server = start(&[
        ("GLASSCAST_RTMP_LISTEN", &listen),
        ("GLASSCAST_AUTH_ALLOW_OPEN", "true"),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "2000"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    // Glasses-like: 800 kbit/s video, 64 kbit/s AAC, 30 s.
    let src = Source {
        video_kbps: Some(800),
        ..Source::normal(30.0)
    };
    let url = |u: &str| format!("rtmp://{}/live/{u}/s", server.rtmp_addr);
    let mut glass = publish_via(path.command("ffmpeg"), &src, &url("glass"));
    let mut clean = publish(&src, &url("clean"));
    let ready = |u: &'static str| {
        let server = &server;
        async move {
            eventually(u, Duration::from_secs(20), || async {
                server
                    .origin
                    .get(&sp(u))
                    .filter(|os| os.next_part_index() > 3)
            })
            .await
        }
    };
    let clean_os = ready("clean").await;
    ready("glass").await;

    let watch = tokio::spawn(largest_part_gap(
        clean_os,
        Instant::now() + Duration::from_secs(14),
    ));
    // The outage: every packet dropped both ways for 3 s (the scenario, not a wait).
    tokio::time::sleep(Duration::from_secs(3)).await;
    path.outage(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    path.outage(false);
    let lifted = Instant::now();
    let base = http_url(&server, "live/glass/s");
    let lag = eventually(
        "the live edge back within 1.5 s of the wall clock",
        Duration::from_secs(20),
        || async {
            let (s, text) = get_text(&format!("{base}/media.m3u8")).await;
            let edge = (s == 200)
                .then(|| parse_live(&text).edge_pdt_ms)
                .flatten()?;
            let lag = now_ms() - edge;
            (lag.abs() < 1500).then_some(lag)
        },
    )
    .await;
    let recovered = lifted.elapsed();
    // And it stays there: sampled for 3 s after it came back.
    let mut worst_lag = lag;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let (s, text) = get_text(&format!("{base}/media.m3u8")).await;
        if s == 200
            && let Some(edge) = parse_live(&text).edge_pdt_ms
        {
            worst_lag = worst_lag.max(now_ms() - edge);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "live edge back within 1.5 s {recovered:?} after the outage ended ({lag} ms); \
         worst lag over the next 3 s: {worst_lag} ms"
    );
    assert!(
        worst_lag < 1500,
        "the live edge fell behind again: {worst_lag} ms"
    );
    let worst = watch.await.unwrap();
    assert!(
        worst < Duration::from_millis(700),
        "the clean stream stalled for {worst:?}"
    );

    assert!(glass.wait().await.unwrap().success(), "the glasses' ffmpeg");
    assert!(clean.wait().await.unwrap().success());
    let text = wait_ended(&base, Duration::from_secs(20)).await;
    let pl = parse_live(&text);
    assert_eq!(pl.discontinuities, 0, "one unbroken stream:\n{text}");
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames over the bad link", v, src.video_frames());
    within_2pct("audio frames over the bad link", a, src.audio_frames());
    server.shutdown(Duration::from_secs(5)).await;
}
