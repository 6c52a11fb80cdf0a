//! The real binary: exit codes, the logged listen addresses, SIGTERM.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn glasscast() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_glasscast"));
    c.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn bad_configuration_exits_2_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("glasscast.toml");
    std::fs::write(&file, "[hls]\nwindow_segments = 3\ntypo = 1\n").unwrap();
    let out = glasscast()
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--http-listen", "nonsense"])
        .env("GLASSCAST_HLS_PART_TARGET_MS", "5")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["window_segments", "typo", "http.listen", "part_target_ms"] {
        assert!(err.contains(needle), "stderr lacks {needle}:\n{err}");
    }
    assert!(err.contains("4 problem(s)"), "{err}");

    let out = glasscast()
        .args(["serve", "--config", "/nonexistent/glasscast.toml"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_logged_ports_and_exits_0_on_sigterm() {
    require("ffmpeg");
    let mut child = glasscast()
        .args([
            "serve",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut rtmp, mut http) = (None, None);
    while rtmp.is_none() || http.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("listen lines logged")
            .unwrap()
            .expect("stderr open");
        let addr = |tag: &str| {
            line.split(tag)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
        };
        rtmp = rtmp.or(addr("rtmp listening on "));
        http = http.or(addr("http listening on "));
    }
    let (rtmp, http) = (rtmp.unwrap(), http.unwrap());
    assert!(!rtmp.ends_with(":0") && !http.ends_with(":0"));
    // Keep draining the log so the server never blocks on a full pipe.
    let log = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let (s, body) = get_text(&format!("http://{http}/healthz")).await;
    assert_eq!((s, body.as_str()), (200, "ok\n"));

    let _ff = publish(&Source::normal(20.0), &format!("rtmp://{rtmp}/live/bin/s"));
    let base = format!("http://{http}/live/bin/s");
    eventually("first part", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && t.contains("#EXT-X-PART:")).then_some(())
    })
    .await;

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let log = log.await.unwrap();
    assert!(
        log.contains("shutting down") && log.contains("shutdown complete"),
        "{log}"
    );
    assert!(log.contains("stream ended, playlist closed"), "{log}");
}
