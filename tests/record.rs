//! Recording to a local directory (`record.enabled`): a broadcast with a publisher reconnect
//! inside the grace period is one recording with a discontinuity, its playlist becomes VOD when
//! the broadcast ends, and ffmpeg decodes it with the frames that were published, from the
//! directory and from the origin's `/recordings/`, and as one progressive `download.mp4`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The recordings' playlists under `root` ({userId}/{streamId}/{session}/index.m3u8).
fn playlists(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if depth == 3 && p.file_name().is_some_and(|n| n == "index.m3u8") {
                found.push(p);
            } else if p.is_dir() {
                dirs.push((p, depth + 1));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_with_a_reconnect_is_one_recording_that_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let server = start(&[
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "5000"),
    ])
    .await;
    let url = rtmp_url(&server, "live/rec%40example.com/s");
    let src = Source::normal(10.0);
    assert!(publish(&src, &url).wait().await.unwrap().success());
    // While the broadcast lasts (within the grace period) the recording is an open EVENT list.
    let open = playlists(&root);
    assert_eq!(open.len(), 1, "{open:?}");
    let text = std::fs::read_to_string(&open[0]).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert!(publish(&src, &url).wait().await.unwrap().success());
    // The grace period passes: the broadcast ends and its recording becomes VOD.
    let text = eventually("the recording closed", Duration::from_secs(20), || async {
        let text = std::fs::read_to_string(&open[0]).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(text)
    })
    .await;
    assert_eq!(playlists(&root), open, "one recording for both publishers");
    assert!(
        open[0].starts_with(root.join("rec%40example.com").join("s")),
        "{open:?}"
    );
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    // No half-written file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(open[0].parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (v, a, errors) = decode(open[0].to_str().unwrap()).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, 2 * src.video_frames());
    within_2pct("audio frames", a, 2 * src.audio_frames());
    // The same recording through the origin, and as one MP4.
    let id = open[0]
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let base = http_url(&server, &format!("recordings/rec%40example.com/s/{id}"));
    let (status, headers, body) = get(&format!("{base}/index.m3u8")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        text.as_bytes(),
        "the origin serves the recording's playlist"
    );
    assert!(
        headers[hyper::header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames via the origin", v, 2 * src.video_frames());
    within_2pct("audio frames via the origin", a, 2 * src.audio_frames());
    let (status, headers, mp4) = get(&format!("{base}/download.mp4")).await;
    assert_eq!(status, 200);
    assert_eq!(headers[hyper::header::CONTENT_TYPE], "video/mp4");
    assert_eq!(
        headers[hyper::header::CONTENT_LENGTH].to_str().unwrap(),
        mp4.len().to_string()
    );
    let file = dir.path().join("download.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        probe_frames(file, "v").await,
        2 * src.video_frames(),
        "ffprobe counts every published video frame in download.mp4"
    );
    let (v, a, errors) = decode(file).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames of download.mp4", v, 2 * src.video_frames());
    within_2pct("audio frames of download.mp4", a, 2 * src.audio_frames());
    for missing in ["nope/index.m3u8", "../index.m3u8"] {
        let (status, _, _) = get(&format!("{base}/../{missing}")).await;
        assert_eq!(status, 404, "{missing}");
    }
    let (status, _, _) = get(&http_url(
        &server,
        "recordings/rec%40example.com/s/ffff/index.m3u8",
    ))
    .await;
    assert_eq!(status, 404);
    let (_, metrics) = get_text(&admin_url(&server, "metrics")).await;
    assert!(
        metrics.contains(r#"record_segments_total{result="ok"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"result="dropped""#), "{metrics}");
    server.shutdown(Duration::from_secs(5)).await;
}

/// Frames of the first stream of `kind` (`v`, `a`) as ffprobe counts them by decoding.
async fn probe_frames(file: &str, kind: &str) -> u64 {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            &format!("{kind}:0"),
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            file,
        ])
        .output()
        .await
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe said {text:?}"))
}
