//! The real binary: exit codes, the logged listen addresses, SIGTERM.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
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
    let server = Binary::start(&[], &[]).await;
    let (rtmp, http, admin) = (
        server.rtmp.clone(),
        server.http.clone(),
        server.admin.clone(),
    );
    assert!(!rtmp.ends_with(":0") && !http.ends_with(":0") && !admin.ends_with(":0"));
    let (s, body) = get_text(&format!("http://{http}/healthz")).await;
    assert_eq!((s, body.as_str()), (200, "ok\n"));
    let (s, _) = get_text(&format!("http://{admin}/metrics")).await;
    assert_eq!(s, 200);

    let _ff = publish(&Source::normal(20.0), &format!("rtmp://{rtmp}/live/bin/s"));
    let base = format!("http://{http}/live/bin/s");
    eventually("first part", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && t.contains("#EXT-X-PART:")).then_some(())
    })
    .await;
    let (code, log) = server.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        log.contains("shutting down") && log.contains("shutdown complete"),
        "{log}"
    );
    assert!(log.contains("stream ended, playlist closed"), "{log}");
}

#[tokio::test]
async fn check_validates_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[auth]\nmode = \"keys\"\n[rtmp]\nlisten = \"0.0.0.0:1935\"\n",
    )
    .unwrap();
    let out = glasscast()
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Open mode on a public address without the explicit opt-in, and token mode without a
    // secret: both reported at once.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rtmp]\nlisten = \"0.0.0.0:1935\"\n").unwrap();
    let out = glasscast()
        .args(["check", "--config"])
        .arg(&bad)
        .env("GLASSCAST_RTMPS_LISTEN", "0.0.0.0:1936")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.allow_open"), "{err}");
    let out = glasscast()
        .args(["check"])
        .env("GLASSCAST_AUTH_MODE", "token")
        .env("GLASSCAST_ADMIN_LISTEN", "nonsense")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 problem(s)")
            && err.contains("auth.token_secret")
            && err.contains("admin.listen"),
        "{err}"
    );
    // A device named as the config file is refused, not read forever.
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        glasscast()
            .args(["check", "--config", "/dev/zero"])
            .output(),
    )
    .await
    .expect("check returns")
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file"), "{err}");
}

/// Runtime errors (not configuration problems, which exit 2 with their list) are one line
/// naming the setting, address or store, with no backtrace even with `RUST_BACKTRACE=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_naming_what_they_are_about() {
    let listen = |c: &mut Command| {
        c.args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_BACKTRACE", "1");
    };
    // An address in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut c = glasscast();
    listen(&mut c);
    let out = c.args(["--rtmp-listen", &addr]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains(&format!("startup failed: binding RTMP on {addr}: ")),
        "{err}"
    );
    // A recording directory that cannot be made.
    let mut c = glasscast();
    listen(&mut c);
    let out = c
        .args(["--rtmp-listen", "127.0.0.1:0"])
        .env("GLASSCAST_RECORD_ENABLED", "true")
        .env("GLASSCAST_RECORD_PATH", "/proc/glasscast/recordings")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.contains(
            "startup failed: recording: record.path /proc/glasscast/recordings is not a writable directory: "
        )),
        "{err}"
    );
    // A key store that is down. The port stays bound (and never answers) so that no other
    // test's server can take it meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap().port();
    let out = glasscast()
        .args(["keys", "list"])
        .env(
            "GLASSCAST_AUTH_REDIS_URL",
            format!("redis://127.0.0.1:{dead}"),
        )
        .env("RUST_BACKTRACE", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: redis 127.0.0.1:{dead}: key store unavailable"
        )),
        "{err}"
    );
    assert!(
        !err.contains("backtrace") && !err.contains("panicked"),
        "{err}"
    );
}
