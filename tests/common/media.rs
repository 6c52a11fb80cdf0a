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

/// The fixture's coded video frames as FLV tag bodies (sequence headers left out): what a
/// byte-for-byte forward must deliver, tag for tag.
pub fn fixture_video_tags() -> Vec<bytes::Bytes> {
    let data = bytes::Bytes::from(std::fs::read(FIXTURE).expect("fixture"));
    relay::flv::read_file(&data)
        .expect("fixture parses")
        .into_iter()
        .filter(|t| t.kind == relay::flv::TagKind::Video && t.body.get(1) == Some(&1))
        .map(|t| t.body)
        .collect()
}

/// Collects the video tag bodies of every stream `server` receives, as they arrive.
pub fn record_video_tags(
    server: &glasscast::server::Server,
) -> std::sync::Arc<std::sync::Mutex<Vec<bytes::Bytes>>> {
    let got: std::sync::Arc<std::sync::Mutex<Vec<bytes::Bytes>>> = Default::default();
    let sink = got.clone();
    server.registry.on_new_stream(move |stream| {
        // Subscribed before the first frame, with room for the whole test.
        let mut rx = stream.subscribe(100_000);
        let sink = sink.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let relay::media::MediaMessage::Video(f) = m {
                    sink.lock().unwrap().push(f.tag);
                }
            }
        });
    });
    got
}
