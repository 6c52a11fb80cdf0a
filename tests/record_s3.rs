//! Recording to S3-compatible storage (a real `moto` server): a broadcast lands in the bucket
//! with the files the playlist lists; a store that stops answering for 10 s mid-broadcast loses
//! nothing, the uploads resume, and the live stream's parts keep their cadence throughout.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::moto::{self, Moto};
use common::*;

const BUCKET: &str = "glass-rec";

/// Files of a recording directory that are media (the spool's content).
fn spooled_media(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".m4s") || n.ends_with(".mp4"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_loses_nothing_and_never_stalls_the_live_stream() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let s3_url = format!("s3://{BUCKET}/rec");
    let endpoint = moto.url();
    let server = start(&[
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_RECORD_S3_URL", &s3_url),
        ("GLASSCAST_RECORD_S3_ENDPOINT", &endpoint),
        ("GLASSCAST_RECORD_S3_ACCESS_KEY_ID", moto::ACCESS_KEY),
        ("GLASSCAST_RECORD_S3_SECRET_ACCESS_KEY", moto::SECRET_KEY),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "1000"),
    ])
    .await;
    let url = rtmp_url(&server, "live/s3%40example.com/cam");
    let src = Source::normal(20.0);
    let mut ffmpeg = publish(&src, &url);
    let base = http_url(&server, "live/s3%40example.com/cam");
    let text = eventually("the stream is live", Duration::from_secs(20), || async {
        let (status, text) = get_text(&format!("{base}/media.m3u8")).await;
        (status == 200 && parse_live(&text).complete_segments >= 1).then_some(text)
    })
    .await;

    // Follow the live stream part by part with blocking reloads, as a player does, and note
    // the longest wait for a part; the store goes down for 10 s meanwhile.
    let follower = {
        let base = base.clone();
        tokio::spawn(async move {
            let mut live = parse_live(&text);
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            let mut parts = 0u32;
            while !live.ended {
                let (status, text) = get_text(&format!(
                    "{base}/media.m3u8?_HLS_msn={}&_HLS_part={}",
                    live.open_msn(),
                    live.open_parts
                ))
                .await;
                if status != 200 {
                    break;
                }
                let now = Instant::now();
                live = parse_live(&text);
                // The last answer waits for the end of the broadcast, not for a part.
                if !live.ended {
                    longest = longest.max(now - last);
                    parts += 1;
                }
                last = now;
            }
            (longest, parts)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    moto.pause();
    let paused = Instant::now();
    // The spool takes what the store cannot: watch it grow for the 10 s.
    let mut spooled = 0.0f64;
    while paused.elapsed() < Duration::from_secs(10) {
        let (_, m) = get_text(&admin_url(&server, "metrics")).await;
        spooled = spooled.max(metric(&m, "record_spool_bytes"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    moto.resume();
    assert!(
        spooled > 1_000_000.0,
        "10 s of segments waited in the spool, peak {spooled} bytes"
    );
    assert!(ffmpeg.wait().await.unwrap().success());
    let (longest, parts) = follower.await.unwrap();
    assert!(parts > 50, "followed only {parts} parts");
    assert!(
        longest < Duration::from_millis(1500),
        "a part took {longest:?} to come while the store was down (200 ms parts)"
    );

    // Everything reaches the bucket once the broadcast has ended.
    let rec_dir = eventually(
        "the recording is stored",
        Duration::from_secs(60),
        || async {
            let found = std::fs::read_dir(root.join("s3%40example.com").join("cam"))
                .ok()?
                .flatten()
                .next()?
                .path();
            found.join(".stored").exists().then_some(found)
        },
    )
    .await;
    let id = rec_dir.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        spooled_media(&rec_dir).is_empty(),
        "uploaded media leaves the spool: {:?}",
        spooled_media(&rec_dir)
    );
    // Keys are what URL paths name: the userId decoded.
    let prefix = format!("rec/s3@example.com/cam/{id}/");
    let objects = moto.list(BUCKET, &prefix.replace('@', "%40")).await;
    let playlist = std::fs::read_to_string(rec_dir.join("index.m3u8")).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert_eq!(
        moto.object(BUCKET, &format!("{prefix}index.m3u8").replace('@', "%40"))
            .await,
        playlist.as_bytes(),
        "the bucket has the final playlist"
    );
    let mut listed: Vec<String> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(String::from)
        .collect();
    for l in playlist.lines() {
        if let Some(uri) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            let init = uri.trim_end_matches('"');
            listed.push(init.to_string());
            // The DASH manifest's per-track inits.
            for track in ["v", "a"] {
                listed.push(init.replace(".mp4", &format!("{track}.mp4")));
            }
        }
    }
    listed.push("index.m3u8".into());
    listed.push("index.mpd".into());
    listed.sort();
    listed.dedup();
    let mut stored: Vec<String> = objects
        .iter()
        .map(|(k, _)| k.strip_prefix(&prefix).unwrap().to_string())
        .collect();
    stored.sort();
    assert_eq!(
        stored, listed,
        "the bucket holds exactly what the playlist lists"
    );
    assert!(objects.iter().all(|(_, size)| *size > 0));

    // Played back through the origin (media now from the bucket): nothing was lost.
    let rec = http_url(&server, &format!("recordings/s3%40example.com/cam/{id}"));
    let (v, a, errors) = decode(&format!("{rec}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, src.video_frames());
    within_2pct("audio frames", a, src.audio_frames());
    let (v, a, errors) = decode(&format!("{rec}/index.mpd")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames via DASH", v, src.video_frames());
    within_2pct("audio frames via DASH", a, src.audio_frames());
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert_eq!(metric(&m, "record_spool_bytes"), 0.0, "the spool drained");
    assert!(metric(&m, "record_upload_seconds_count") > 10.0, "{m}");
    eprintln!(
        "outage: spool peaked at {spooled} bytes; longest wait for a live part {longest:?} over {parts} parts; {} uploads took {:.1} s in all",
        metric(&m, "record_upload_seconds_count"),
        metric(&m, "record_upload_seconds_sum"),
    );
    server.shutdown(Duration::from_secs(5)).await;
}
