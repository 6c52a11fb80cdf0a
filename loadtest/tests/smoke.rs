//! A short load run against the in-process server: built-in publishers replaying the fixture,
//! LL-HLS and legacy viewers; the report must hold sane numbers.

use std::time::Duration;

mod common;

use common::start_server;
use glasscast_loadtest::run::{RunConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_run_reports_sane_numbers() {
    let server = start_server().await;
    let report = run(
        RunConfig {
            publish: (0..2)
                .map(|i| format!("rtmp://{}/live/load/s{i}", server.rtmp_addr))
                .collect(),
            flv: None,
            ffmpeg: false,
            play: (0..2)
                .map(|i| format!("http://{}/live/load/s{i}/index.m3u8", server.http_addr))
                .collect(),
            compare: None,
            viewers: 3,
            fetch_parts: true,
            legacy_viewers: 1,
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(3),
        },
        |_| {},
    )
    .await
    .expect("run");
    let p = &report.publishers;
    assert_eq!((p.count, p.errors, p.behind), (2, 0, 0), "{p:?}");
    assert!(p.bytes > 500_000, "{p:?}");
    assert_eq!(report.targets.len(), 2);
    for t in &report.targets {
        eprintln!("{}", report.markdown());
        assert_eq!(t.viewers, 4);
        assert_eq!(t.errors, 0, "{t:?}");
        // 3 LL viewers x ~5 parts/s x 6 s, plus a few segments for the legacy one.
        assert!(t.parts > 40, "{} parts", t.parts);
        assert!(t.latency_ms.count > 40);
        // PDT is stamped from frame arrival, so a part answered at once can read a few ms
        // below 0; far below would be a wrong clock.
        assert!(
            t.latency_ms.p50 > -100.0 && t.latency_ms.p50 < 2000.0,
            "{:?}",
            t.latency_ms
        );
        // Blocking requests are held at most about a part duration, and answered soon after
        // the awaited part exists (generous: CI machines are shared).
        assert!(t.held_ms.p50 < 400.0, "{:?}", t.held_ms);
        assert!(t.wakeup_ms.count > 40, "{:?}", t.wakeup_ms);
        assert!(
            t.wakeup_ms.p50 > -100.0 && t.wakeup_ms.p50 < 500.0,
            "{:?}",
            t.wakeup_ms
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// `--playlist-only` viewers make only blocking reloads: wake-up is measured, part latency
/// is not (no part bytes were fetched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlist_only_viewers_measure_wakeup() {
    let server = start_server().await;
    let report = run(
        RunConfig {
            publish: vec![format!("rtmp://{}/live/po/s0", server.rtmp_addr)],
            flv: None,
            ffmpeg: false,
            play: vec![format!("http://{}/live/po/s0/index.m3u8", server.http_addr)],
            compare: None,
            viewers: 5,
            fetch_parts: false,
            legacy_viewers: 0,
            duration: Duration::from_secs(4),
            warmup: Duration::from_secs(3),
        },
        |_| {},
    )
    .await
    .expect("run");
    let t = &report.targets[0];
    assert_eq!(t.errors, 0, "{t:?}");
    // 5 viewers x ~5 playlist updates/s x 4 s.
    assert!(t.parts > 40, "{} updates", t.parts);
    assert_eq!(t.latency_ms.count, 0, "no part was fetched");
    assert_eq!(t.wakeup_ms.count as u64, t.parts);
    assert!(
        t.wakeup_ms.p50 > -100.0 && t.wakeup_ms.p50 < 500.0,
        "{:?}",
        t.wakeup_ms
    );
    server.shutdown(Duration::from_secs(5)).await;
}
