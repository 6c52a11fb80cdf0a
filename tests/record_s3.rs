//! Recording to S3-compatible storage (a real `moto` server): a 20 s broadcast with a publisher
//! reconnect lands in the bucket with the files the playlist lists; a store that stops
//! answering for 10 s mid-broadcast loses nothing, the uploads resume, and the live stream's
//! parts keep their cadence throughout; deleting the recording empties its prefix. Large files
//! go up as multipart uploads, and uploads a stopped relay left in its spool resume at the
//! next start.

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
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "3000"),
        ("GLASSCAST_ADMIN_TOKEN", "s3-token"),
        ("GLASSCAST_RECORD_DASH_FILES", "true"),
    ])
    .await;
    let url = rtmp_url(&server, "live/s3%40example.com/cam");
    // Two publishers of 10 s each, the second reconnecting within the grace period: one
    // broadcast, one recording with a discontinuity.
    let src = Source::normal(10.0);
    let publishers = {
        let (src, url) = (Source::normal(10.0), url.clone());
        tokio::spawn(async move {
            for _ in 0..2 {
                publish_through(&src, &url).await;
            }
        })
    };
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
    publishers.await.unwrap();
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
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{playlist}"
    );
    assert_eq!(
        moto.object(BUCKET, &format!("{prefix}index.m3u8").replace('@', "%40"))
            .await,
        playlist.as_bytes(),
        "the bucket has the final playlist"
    );
    let mut listed: Vec<String> = Vec::new();
    for seg in playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        listed.push(seg.to_string());
        // The per-track views the DASH manifest names (record.dash_files).
        for track in ["v", "a"] {
            listed.push(seg.replace("-s", &format!("-{track}")));
        }
    }
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
        "the bucket holds exactly what the playlist and the manifest list"
    );
    assert!(objects.iter().all(|(_, size)| *size > 0));

    // Played back through the origin (media now from the bucket): nothing was lost.
    let rec = http_url(&server, &format!("recordings/s3%40example.com/cam/{id}"));
    let (v, a, errors) = decode(&format!("{rec}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, 2 * src.video_frames());
    within_2pct("audio frames", a, 2 * src.audio_frames());
    // ffmpeg reads the first Period of the manifest: the first publisher's frames.
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
    // Deleted through the API: gone from the bucket and the spool.
    let auth = [("authorization", "Bearer s3-token")];
    let one = admin_url(&server, &format!("v1/recordings/{id}"));
    let (status, _) = request("DELETE", &one, &auth, None).await;
    assert_eq!(status, 204);
    assert!(
        moto.list(BUCKET, &prefix.replace('@', "%40"))
            .await
            .is_empty()
    );
    assert!(!rec_dir.exists());
    server.shutdown(Duration::from_secs(5)).await;
}

fn s3_settings(moto: &Moto, prefix: &str) -> glasscast::config::record::S3Settings {
    glasscast::config::record::S3Settings {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        endpoint: moto.url(),
        region: "us-east-1".into(),
        access_key_id: moto::ACCESS_KEY.into(),
        secret_access_key: moto::SECRET_KEY.into(),
    }
}

/// A file of 8 MiB or more goes up as a multipart upload, and arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_files_go_up_in_parts() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let remote = glasscast::record::s3::Remote::new(&s3_settings(&moto, "big")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.m4s");
    let data: Vec<u8> = (0..13 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let key = remote.key("u/s/r1", "large.m4s");
    assert_eq!(remote.upload(&file, &key).await.unwrap(), data.len() as u64);
    let back = moto.object(BUCKET, "big/u/s/r1/large.m4s").await;
    assert!(back == data, "the object differs ({} bytes)", back.len());
    // Multipart objects carry the part count in their ETag ("…-2").
    let out = tokio::process::Command::new("curl")
        .args([
            "-sfI",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{}:{}", moto::ACCESS_KEY, moto::SECRET_KEY),
            &format!("{}/{BUCKET}/big/u/s/r1/large.m4s", moto.url()),
        ])
        .output()
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let etag = head
        .lines()
        .find(|l| l.starts_with("etag:"))
        .unwrap_or_default()
        .to_string();
    assert!(etag.contains("-2"), "not a two-part upload: {etag}");
}

/// A relay stopped while the store is down leaves its uploads in the spool; the next start
/// uploads them, in order, and tells the catalog (and the cloud) the recording is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_left_in_the_spool_resume_at_the_next_start() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let endpoint = moto.url();
    let env = [
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_RECORD_S3_URL", "s3://glass-rec/resume"),
        ("GLASSCAST_RECORD_S3_ENDPOINT", endpoint.as_str()),
        ("GLASSCAST_RECORD_S3_ACCESS_KEY_ID", moto::ACCESS_KEY),
        ("GLASSCAST_RECORD_S3_SECRET_ACCESS_KEY", moto::SECRET_KEY),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
    ];
    let relay = Binary::start(&[], &env).await;
    moto.pause();
    let src = Source::normal(6.0);
    let url = format!("rtmp://{}/live/resume/cam", relay.rtmp);
    publish_through(&src, &url).await;
    let rec_dir = eventually("the recording ended", Duration::from_secs(20), || async {
        let d = std::fs::read_dir(root.join("resume/cam"))
            .ok()?
            .flatten()
            .next()?
            .path();
        let text = std::fs::read_to_string(d.join("index.m3u8")).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(d)
    })
    .await;
    let (code, _) = relay.stop().await;
    assert_eq!(code, Some(0));
    let waiting = spooled_media(&rec_dir);
    assert!(waiting.len() >= 3, "media waits in the spool: {waiting:?}");
    assert!(!rec_dir.join(".stored").exists());
    moto.resume();

    let relay = Binary::start(&[], &env).await;
    eventually("the spool drained", Duration::from_secs(30), || async {
        rec_dir.join(".stored").exists().then_some(())
    })
    .await;
    assert!(
        spooled_media(&rec_dir).is_empty(),
        "{:?}",
        spooled_media(&rec_dir)
    );
    let id = rec_dir.file_name().unwrap().to_str().unwrap();
    let objects = moto.list(BUCKET, &format!("resume/resume/cam/{id}/")).await;
    for f in &waiting {
        assert!(
            objects.iter().any(|(k, _)| k.ends_with(f.as_str())),
            "{f} not uploaded: {objects:?}"
        );
    }
    let (status, list) = request_json(
        "GET",
        &format!("http://{}/v1/recordings", relay.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["recordings"][0]["state"], "complete", "{list}");
    let (v, _, errors) = decode(&format!(
        "http://{}/recordings/resume/cam/{id}/index.m3u8",
        relay.http
    ))
    .await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, src.video_frames());
    let (code, _) = relay.stop().await;
    assert_eq!(code, Some(0));
}

/// A store that refuses connections (down, not just slow): every upload fails, is counted and
/// retried with backoff, the spool holds the recording, and everything goes up once the store
/// is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_refuses_is_retried_until_it_is_there() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("spool");
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = start(&[
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_RECORD_S3_URL", "s3://glass-rec/down"),
        ("GLASSCAST_RECORD_S3_ENDPOINT", &endpoint),
        ("GLASSCAST_RECORD_S3_ACCESS_KEY_ID", moto::ACCESS_KEY),
        ("GLASSCAST_RECORD_S3_SECRET_ACCESS_KEY", moto::SECRET_KEY),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
    ])
    .await;
    let src = Source::normal(6.0);
    publish_through(&src, &rtmp_url(&server, "live/down/cam")).await;
    let failures = eventually(
        "uploads fail and are retried",
        Duration::from_secs(20),
        || async {
            let (_, m) = get_text(&admin_url(&server, "metrics")).await;
            let f = metric(&m, "record_failures_total{kind=\"upload\"}");
            (f >= 2.0 && metric(&m, "record_spool_bytes") > 0.0).then_some(f)
        },
    )
    .await;
    let moto = Moto::start_on(port).await;
    moto.create_bucket(BUCKET).await;
    let rec_dir = eventually(
        "the recording is stored",
        Duration::from_secs(30),
        || async {
            let d = std::fs::read_dir(root.join("down/cam"))
                .ok()?
                .flatten()
                .next()?
                .path();
            d.join(".stored").exists().then_some(d)
        },
    )
    .await;
    assert!(spooled_media(&rec_dir).is_empty());
    let id = rec_dir.file_name().unwrap().to_str().unwrap();
    let (v, _, errors) = decode(&http_url(
        &server,
        &format!("recordings/down/cam/{id}/index.m3u8"),
    ))
    .await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, src.video_frames());
    eprintln!("store down: {failures} failed uploads before it came up");
    server.shutdown(Duration::from_secs(5)).await;
}
