//! GStreamer: publishing through librtmp (`rtmpsink`, the client library the glasses use,
//! which splits the URL as app `live/{userId}`, stream `{streamId}`) and through GStreamer's own
//! RTMP client (`rtmp2sink`), and playing the HLS output.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::process::Command;

fn gst_launch(pipeline: &str) -> Command {
    require("gst-launch-1.0");
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-e").args(pipeline.split_whitespace());
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

/// Publishes 5 s at 30 fps, like the glasses (H.264 with a 2 s GOP + AAC mono 44.1 kHz, live
/// sources), through `sink` (`rtmpsink location=URL` or `rtmp2sink location=URL`).
async fn gst_publish(sink: &str, url: &str) {
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers=150 ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! h264parse ! queue ! mux. \
         audiotestsrc is-live=true num-buffers=215 samplesperbuffer=1024 ! audio/x-raw,rate=44100,channels=1 \
         ! audioconvert ! avenc_aac ! aacparse ! queue ! mux. \
         flvmux name=mux streamable=true ! {sink} location={url}"
    );
    let out = gst_launch(&pipeline).output().await.unwrap();
    assert!(
        out.status.success(),
        "gst {sink} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp2sink_publishes() {
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    // GStreamer's own RTMP client (not librtmp): its connect and publish sequence.
    gst_publish(
        "rtmp2sink",
        &format!("rtmp://{}/live/glass2/g2", server.rtmp_addr),
    )
    .await;
    let base = http_url(&server, "live/glass2/g2");
    wait_ended(&base, Duration::from_secs(15)).await;
    let (video, _audio, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", video, 150);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librtmp_publisher_and_gstreamer_player() {
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let url = format!("rtmp://{}/live/glass%40example.com/g1", server.rtmp_addr);
    gst_publish("rtmpsink", &url).await;

    // librtmp split the path differently from ffmpeg; the stream still lands on the decoded
    // user id and stream id.
    let base = http_url(&server, "live/glass%40example.com/g1");
    wait_ended(&base, Duration::from_secs(15)).await;
    let (video, _audio, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", video, 150);

    // GStreamer plays the HLS output to the end without errors.
    let play = format!("playbin3 uri={base}/index.m3u8 video-sink=fakesink audio-sink=fakesink");
    let out = tokio::time::timeout(Duration::from_secs(60), gst_launch(&play).output())
        .await
        .expect("GStreamer finished")
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "GStreamer playback failed:\n{log}");
    assert!(log.contains("Got EOS"), "no EOS:\n{log}");
    assert!(!log.contains("ERROR"), "{log}");
    server.shutdown(Duration::from_secs(5)).await;
}
