//! The `glasscast-loadtest` binary as an operator runs it: from any directory (the default
//! clip is built in), and with errors on one line naming the file, without a backtrace even
//! when `RUST_BACKTRACE` is set for panics.

use std::process::Command;
use std::time::Duration;

mod common;

use common::start_server;

fn loadtest(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_glasscast-loadtest"));
    c.current_dir(dir)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_from_any_directory_with_the_built_in_clip() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = loadtest(dir.path());
    cmd.args([
        "--publish",
        &format!("rtmp://{}/live/cli", server.rtmp_addr),
        "--play",
        &format!("http://{}/live/cli", server.http_addr),
        "--viewers",
        "2",
        "--warmup",
        "3",
        "--duration",
        "3",
        "--out",
        "report",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["publishers"]["errors"], 0, "{report}");
    assert!(
        report["targets"][0]["parts"].as_u64().unwrap() > 10,
        "{report}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn an_error_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadtest(dir.path())
        .args([
            "--publish",
            "rtmp://127.0.0.1:9/live",
            "--flv",
            "missing.flv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "glasscast-loadtest: cannot read the FLV missing.flv: No such file or directory (os error 2)"
    );
    let out = loadtest(dir.path())
        .args([
            "--play",
            "http://127.0.0.1:9/x",
            "--out",
            "/proc/no/such/dir",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        last.starts_with("glasscast-loadtest: cannot write the report to /proc/no/such/dir: "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("  0: "),
        "{stderr}"
    );
}
