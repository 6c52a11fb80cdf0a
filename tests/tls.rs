//! RTMPS ingest and HTTPS with HTTP/2 (ALPN), plus h2c, against real ffmpeg and curl.

mod common;

use std::time::Duration;

use common::*;
use tokio::process::Command;

/// The HTTP version curl negotiated for `url` ("2", "1.1").
async fn curl_version(args: &[&str], url: &str) -> (String, String) {
    require("curl");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args(args)
        .arg(url)
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (v, c) = text.split_once(' ').unwrap_or(("", ""));
    (v.to_string(), c.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_on_plain_http() {
    let server = start(&[]).await;
    let (v, code) = curl_version(&["--http2-prior-knowledge"], &http_url(&server, "healthz")).await;
    assert_eq!((v.as_str(), code.as_str()), ("2", "200"));
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_ingest_and_https_h2_playback() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let server = start(&[
        ("GLASSCAST_RTMPS_LISTEN", "127.0.0.1:0"),
        ("GLASSCAST_RTMPS_CERT", &cert),
        ("GLASSCAST_RTMPS_KEY", &key),
        ("GLASSCAST_HTTP_TLS_CERT", &cert),
        ("GLASSCAST_HTTP_TLS_KEY", &key),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let rtmps = server.rtmps_addr.expect("rtmps listener");
    let src = Source::normal(5.0);
    let status = publish(&src, &format!("rtmps://{rtmps}/live/tls%40example.com/s"))
        .wait()
        .await
        .unwrap();
    assert!(status.success(), "publishing over RTMPS failed");
    let base = format!("https://{}/live/tls%40example.com/s", server.http_addr);

    let (v, code) = curl_version(&["-k", "--http2"], &format!("{base}/media.m3u8")).await;
    assert_eq!(
        (v.as_str(), code.as_str()),
        ("2", "200"),
        "HTTPS must negotiate h2 via ALPN"
    );

    // ffmpeg does not verify certificates unless asked, so it reads the self-signed origin.
    eventually("ENDLIST over https", Duration::from_secs(15), || async {
        let out = Command::new("curl")
            .args(["-sk", &format!("{base}/media.m3u8")])
            .output()
            .await
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .contains("#EXT-X-ENDLIST")
            .then_some(())
    })
    .await;
    let (video, audio, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", video, src.video_frames());
    within_2pct("audio frames", audio, src.audio_frames());
    server.shutdown(Duration::from_secs(5)).await;
}
