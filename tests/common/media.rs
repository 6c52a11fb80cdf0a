//! The recorded fixture and what tests do with it: publish it with `-c copy`, and hash its
//! packets to check that media arrives byte for byte.

use std::path::Path;

use tokio::process::Command;

use super::rtmp_url;

pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/origin/benches/fixtures/glasses-720p30.flv"
);

/// Starts publishing the fixture `loops + 1` times back to back with `-c copy`.
pub fn spawn_fixture(
    server: &glasscast::server::Server,
    path: &str,
    loops: u32,
) -> tokio::task::JoinHandle<std::process::ExitStatus> {
    let url = rtmp_url(server, path);
    tokio::spawn(async move {
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-re",
                "-stream_loop",
                &loops.to_string(),
                "-i",
                FIXTURE,
                "-c",
                "copy",
                "-f",
                "flv",
                &url,
            ])
            .status()
            .await
            .expect("ffmpeg runs")
    })
}

/// Publishes the fixture `loops + 1` times back to back with `-c copy`.
pub async fn publish_fixture(server: &glasscast::server::Server, path: &str, loops: u32) {
    let status = spawn_fixture(server, path, loops)
        .await
        .expect("publisher task");
    assert!(status.success());
}

/// Per-packet MD5s of one stream type (`v` or `a`), payload only (timestamps are rebased).
pub async fn packet_hashes(file: &Path, kind: &str) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-map",
            &format!("0:{kind}"),
            "-c",
            "copy",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "framemd5 of {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        // stream, dts, pts, duration, size, hash[, S=n, side-data size, side-data hash]
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect()
}
