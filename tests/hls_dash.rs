//! Publish real ffmpeg streams of every shape and decode the HLS and DASH output with ffmpeg.

mod common;

use std::time::Duration;

use common::*;

/// Publishes `src`, waits for the stream to end, then decodes HLS and DASH and compares
/// frame counts with what was published.
async fn round_trip(src: Source, user: &str, stream: &str) {
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "1000"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let path = format!("live/{user}/{stream}");
    let status = publish(&src, &rtmp_url(&server, &path))
        .wait()
        .await
        .expect("ffmpeg ran");
    assert!(status.success(), "publisher failed: {status}");
    let base = http_url(&server, &path);
    wait_ended(&base, Duration::from_secs(15)).await;

    for manifest in ["index.m3u8", "index.mpd"] {
        let (v, a, errors) = decode(&format!("{base}/{manifest}")).await;
        assert!(
            errors.trim().is_empty(),
            "{manifest}: decoder errors:\n{errors}"
        );
        within_2pct(&format!("{manifest} video frames"), v, src.video_frames());
        within_2pct(&format!("{manifest} audio frames"), a, src.audio_frames());
    }
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_stream_720p30_with_audio() {
    let src = Source {
        video: Some((1280, 720, 30)),
        ..Source::normal(6.0)
    };
    round_trip(src, "alice%40example.com", "m1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_frame_stream() {
    let src = Source {
        bframes: 2,
        ..Source::normal(6.0)
    };
    round_trip(src, "bob", "bframes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_intra_stream() {
    // The old glasses firmware: every frame a keyframe, 540x960 at 14 fps.
    let src = Source {
        video: Some((540, 960, 14)),
        gop: 1,
        ..Source::normal(6.0)
    };
    round_trip(src, "carol", "intra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_stream() {
    let src = Source {
        video: None,
        ..Source::normal(6.0)
    };
    round_trip(src, "dave", "audio").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_stream() {
    let src = Source {
        audio: false,
        ..Source::normal(6.0)
    };
    round_trip(src, "erin", "video").await;
}
