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
        ("GLASSCAST_ADMIN_TOKEN", "rec-token"),
        ("GLASSCAST_RECORD_DASH_FILES", "true"),
    ])
    .await;
    let url = rtmp_url(&server, "live/rec%40example.com/s");
    let src = Source::normal(10.0);
    publish_through(&src, &url).await;
    // While the broadcast lasts (within the grace period) the recording is an open EVENT list.
    let open = playlists(&root);
    assert_eq!(open.len(), 1, "{open:?}");
    let text = std::fs::read_to_string(&open[0]).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    publish_through(&src, &url).await;
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
    // The static DASH manifest, over per-track views of the same segments.
    let (status, headers, mpd) = get(&format!("{base}/index.mpd")).await;
    assert_eq!(status, 200);
    assert_eq!(headers[hyper::header::CONTENT_TYPE], "application/dash+xml");
    let mpd = String::from_utf8_lossy(&mpd);
    assert!(mpd.contains(r#"type="static""#), "{mpd}");
    assert_eq!(
        mpd.matches("<Period ").count(),
        2,
        "one period per publisher: {mpd}"
    );
    // ffmpeg's DASH demuxer reads the first Period only: the first publisher's frames.
    let (v, a, errors) = decode(&format!("{base}/index.mpd")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct(
        "video frames via DASH (first period)",
        v,
        src.video_frames(),
    );
    within_2pct(
        "audio frames via DASH (first period)",
        a,
        src.audio_frames(),
    );
    let (status, headers, mp4) = get(&format!("{base}/download.mp4")).await;
    assert_eq!(status, 200);
    assert_eq!(headers[hyper::header::CONTENT_TYPE], "video/mp4");
    assert_eq!(
        headers[hyper::header::CONTENT_LENGTH].to_str().unwrap(),
        mp4.len().to_string()
    );
    assert_eq!(headers[hyper::header::ACCEPT_RANGES], "bytes");
    // Ranges (what a <video> asks for when it seeks): the same bytes as the whole file.
    for (from, to) in [
        (0u64, 99u64),
        (1000, 250_000),
        (mp4.len() as u64 - 10, mp4.len() as u64 - 1),
    ] {
        let (status, headers, part) = get_with(
            &format!("{base}/download.mp4"),
            &[("range", &format!("bytes={from}-{to}"))],
        )
        .await;
        assert_eq!(status, 206);
        assert_eq!(
            headers[hyper::header::CONTENT_RANGE].to_str().unwrap(),
            format!("bytes {from}-{to}/{}", mp4.len())
        );
        assert_eq!(&part[..], &mp4[from as usize..=to as usize]);
    }
    let (status, _, _) = get_with(
        &format!("{base}/download.mp4"),
        &[("range", &format!("bytes={}-", mp4.len() + 5))],
    )
    .await;
    assert_eq!(status, 416);
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
    // The management API knows it, and deletes it everywhere.
    let auth = [("authorization", "Bearer rec-token")];
    let (status, list) = request_json(
        "GET",
        &admin_url(&server, "v1/recordings?userId=rec%40example.com"),
        &auth,
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let recs = list["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{list}");
    let r = &recs[0];
    assert_eq!(r["recordingId"], id);
    assert_eq!(r["userId"], "rec@example.com");
    assert_eq!(r["streamId"], "s");
    assert_eq!(r["state"], "complete");
    assert_eq!(r["hlsUrl"].as_str().unwrap(), format!("{base}/index.m3u8"));
    assert_eq!(
        r["mp4Url"].as_str().unwrap(),
        format!("{base}/download.mp4")
    );
    let d = r["durationS"].as_f64().unwrap();
    assert!((d - 2.0 * src.seconds).abs() < 2.0, "duration {d}");
    let (status, other) = request_json(
        "GET",
        &admin_url(&server, "v1/recordings?streamId=other"),
        &auth,
        None,
    )
    .await;
    assert_eq!(
        (status, other["recordings"].as_array().unwrap().len()),
        (200, 0)
    );
    let one = admin_url(&server, &format!("v1/recordings/{id}"));
    let (status, got) = request_json("GET", &one, &auth, None).await;
    assert_eq!((status, &got), (200, r));
    // The directory as it is, behind a plain web server (nginx, static files): HLS and the
    // DASH manifest play without the origin. (Directory names are percent-encoded, so the
    // URL escapes the `%`.)
    let web = StaticSite::start(&root).await;
    let static_base = format!("{}/rec%2540example.com/s/{id}", web.url());
    let (v, a, errors) = decode(&format!("{static_base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames from the directory", v, 2 * src.video_frames());
    within_2pct("audio frames from the directory", a, 2 * src.audio_frames());

    // Real players in Chromium play it to the end: the MP4 as a plain <video src>, the VOD
    // playlist in hls.js, the static MPD (both periods) in dash.js.
    for (player, url) in [
        ("mp4", format!("{base}/download.mp4")),
        ("hlsjs", format!("{base}/index.m3u8")),
        ("dashjs", format!("{base}/index.mpd")),
        // Straight from the directory: the per-track files were written (record.dash_files).
        ("dashjs", format!("{static_base}/index.mpd")),
    ] {
        let r = node_script("vod.mjs", &[player.into(), url]).await;
        eprintln!("{player}: {r}");
        assert_eq!(
            r["errors"].as_array().map(Vec::len),
            Some(0),
            "{player}: {r}"
        );
        assert_eq!(
            r["pageErrors"].as_array().map(Vec::len),
            Some(0),
            "{player}: {r}"
        );
        assert_eq!(r["ended"], true, "{player} did not play to the end: {r}");
        let duration = r["duration"].as_f64().unwrap_or(0.0);
        assert!(
            (duration - 2.0 * src.seconds).abs() < 2.0,
            "{player}: duration {duration}: {r}"
        );
        let frames = r["frames"].as_u64().unwrap_or(0);
        assert!(
            frames as f64 > 0.8 * (2 * src.video_frames()) as f64,
            "{player}: {frames} frames: {r}"
        );
    }
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
    let (status, _) = request("DELETE", &one, &auth, None).await;
    assert_eq!(status, 204);
    assert!(
        !open[0].parent().unwrap().exists(),
        "deleted from the directory"
    );
    let (status, body) = request_json("GET", &one, &auth, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("RECORDING_NOT_FOUND"))
    );
    let (status, _, _) = get(&format!("{base}/index.m3u8")).await;
    assert_eq!(status, 404);
    server.shutdown(Duration::from_secs(5)).await;
}

/// A recording as an earlier run would have left it: `segments` two-second segments from
/// `started_ms`, ended or not.
fn plant(root: &Path, dir: &str, started_ms: i64, segments: u64, ended: bool) -> PathBuf {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"x-init1.mp4\"\n",
    );
    for i in 0..segments {
        let pdt = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + Duration::from_millis((started_ms + i as i64 * 2000) as u64),
        );
        text.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{pdt}\n#EXTINF:2.00000,\nx-s{i}.m4s\n"
        ));
        std::fs::write(d.join(format!("x-s{i}.m4s")), b"media").unwrap();
    }
    if ended {
        text = text.replace("EVENT", "VOD") + "#EXT-X-ENDLIST\n";
    }
    std::fs::write(d.join("index.m3u8"), text).unwrap();
    d
}

/// `record.retention_days`: recordings that ended longer ago are deleted (at start, then
/// periodically); newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_old_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    let old = plant(&root, "u/s/1", now - 10 * day, 3, true);
    // Left open by a crash 9 days ago: closed at start, then expired too.
    let crashed = plant(&root, "u/s/2", now - 9 * day, 2, false);
    let recent = plant(&root, "u/s/3", now - 6 * day, 3, true);
    let other = plant(&root, "v%40x.com/t/4", now - day, 1, true);
    let server = start(&[
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_RECORD_RETENTION_DAYS", "7"),
    ])
    .await;
    eventually(
        "old recordings deleted",
        Duration::from_secs(10),
        || async { (!old.exists() && !crashed.exists()).then_some(()) },
    )
    .await;
    assert!(recent.join("x-s2.m4s").exists());
    assert!(other.join("index.m3u8").exists());
    let (status, list) = request_json("GET", &admin_url(&server, "v1/recordings"), &[], None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordingId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["3", "4"], "{list}");
    assert_eq!(list["recordings"][1]["userId"], "v@x.com");
    server.shutdown(Duration::from_secs(5)).await;
}

/// The relay killed with SIGKILL mid-broadcast: the next start closes the recording, which
/// plays up to at most one segment before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_survives_a_crash() {
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let env = [
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
    ];
    let mut relay = Binary::start(&[], &env).await;
    let url = format!("rtmp://{}/live/crash/s", relay.rtmp);
    let mut ffmpeg = publish(&Source::normal(30.0), &url);
    let live = format!("http://{}/live/crash/s/media.m3u8", relay.http);
    // Wait for four complete segments, then kill the relay at once.
    let segments_at_kill = eventually("four segments", Duration::from_secs(30), || async {
        let (status, text) = get_text(&live).await;
        let n = parse_live(&text).complete_segments;
        (status == 200 && n >= 4).then_some(n)
    })
    .await;
    relay.child.kill().await.unwrap();
    let _ = ffmpeg.kill().await;
    let rec_dir = playlists(&root)[0].parent().unwrap().to_path_buf();
    let before = std::fs::read_to_string(rec_dir.join("index.m3u8")).unwrap();
    assert!(!before.contains("#EXT-X-ENDLIST"), "{before}");

    let relay = Binary::start(&[], &env).await;
    let text = std::fs::read_to_string(rec_dir.join("index.m3u8")).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "closed at start: {text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    let recorded = text.lines().filter(|l| l.ends_with(".m4s")).count() as u64;
    assert!(
        recorded + 1 >= segments_at_kill,
        "the recording lists {recorded} segments; the live playlist had {segments_at_kill} at the kill"
    );
    let id = rec_dir.file_name().unwrap().to_str().unwrap();
    let (status, list) = request_json(
        "GET",
        &format!("http://{}/v1/recordings", relay.admin),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["recordings"][0]["recordingId"], id);
    assert_eq!(list["recordings"][0]["state"], "complete");
    let (v, _, errors) = decode(&format!(
        "http://{}/recordings/crash/s/{id}/index.m3u8",
        relay.http
    ))
    .await;
    assert!(errors.trim().is_empty(), "{errors}");
    // Two-second segments at 30 fps.
    assert!(
        v + 60 >= recorded * 60 && v <= recorded * 60 + 60,
        "{v} frames for {recorded} segments"
    );
    let (code, _) = relay.stop().await;
    assert_eq!(code, Some(0));
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

/// The cloud decides per stream (`"record"` in its destinations answer, over the
/// configuration), hears of the recording on the `stopped` report, and gets `recording-ready`
/// once its last segment is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_chooses_and_hears_of_recordings() {
    let (cloud, cloud_url) = common::cloud::FakeCloud::start().await;
    cloud
        .directives
        .lock()
        .unwrap()
        .insert("record".into(), serde_json::Value::Bool(true));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let server = start(&[
        // Recording is off, except where the prefix rule says otherwise.
        ("GLASSCAST_RECORD_PATH", root.to_str().unwrap()),
        ("GLASSCAST_RECORD_PREFIXES", "live/ruled/ -> on"),
        ("GLASSCAST_CLOUD_URL", &cloud_url),
        ("GLASSCAST_CLOUD_POLL_INTERVAL_MS", "300"),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "1000"),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
    ])
    .await;
    // The cloud says record: recorded although the configuration does not.
    let src = Source::normal(5.0);
    publish_through(&src, &rtmp_url(&server, "live/asked/s")).await;
    let ready = eventually("recording-ready", Duration::from_secs(20), || async {
        cloud.posts("/api/rtmp-relay/recording-ready").pop()
    })
    .await
    .1;
    assert_eq!(ready["userId"], "asked");
    assert_eq!(ready["streamId"], "s");
    let id = ready["recordingId"].as_str().unwrap().to_string();
    let base = http_url(&server, &format!("recordings/asked/s/{id}"));
    assert_eq!(
        ready["hlsUrl"].as_str().unwrap(),
        format!("{base}/index.m3u8")
    );
    assert_eq!(
        ready["dashUrl"].as_str().unwrap(),
        format!("{base}/index.mpd")
    );
    assert_eq!(
        ready["mp4Url"].as_str().unwrap(),
        format!("{base}/download.mp4")
    );
    let d = ready["durationS"].as_f64().unwrap();
    assert!((d - src.seconds).abs() < 2.5, "durationS {d}");
    assert!(root.join("asked/s").join(&id).join("index.m3u8").exists());
    let stopped = eventually("the stopped report", Duration::from_secs(10), || async {
        cloud
            .posts("/api/rtmp-relay/stream-status")
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| b["status"] == "stopped" && b["userId"] == "asked")
    })
    .await;
    assert_eq!(
        stopped["recording"]["recordingId"],
        id.as_str(),
        "{stopped}"
    );
    assert_eq!(stopped["recording"]["mp4Url"], ready["mp4Url"]);
    let (status, _, _) = get(ready["hlsUrl"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    // The cloud says no: not recorded although the prefix rule says so.
    cloud
        .directives
        .lock()
        .unwrap()
        .insert("record".into(), serde_json::Value::Bool(false));
    publish_through(&src, &rtmp_url(&server, "live/ruled/s")).await;
    let stopped = eventually("the stopped report", Duration::from_secs(10), || async {
        cloud
            .posts("/api/rtmp-relay/stream-status")
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| b["status"] == "stopped" && b["userId"] == "ruled")
    })
    .await;
    assert!(stopped.get("recording").is_none(), "{stopped}");
    assert!(!root.join("ruled").exists());

    // The cloud leaves it to the configuration: the prefix rule records it.
    cloud.directives.lock().unwrap().remove("record");
    publish_through(&src, &rtmp_url(&server, "live/ruled/t")).await;
    eventually(
        "the ruled recording is ready",
        Duration::from_secs(20),
        || async {
            cloud
                .posts("/api/rtmp-relay/recording-ready")
                .into_iter()
                .find(|(_, b)| b["userId"] == "ruled" && b["streamId"] == "t")
        },
    )
    .await;
    assert_eq!(cloud.posts("/api/rtmp-relay/recording-ready").len(), 2);
    server.shutdown(Duration::from_secs(5)).await;
}

/// nginx serving a directory as static files, with CORS (as a CDN in front of a bucket would).
struct StaticSite {
    port: u16,
    _dir: tempfile::TempDir,
    child: std::process::Child,
}

impl StaticSite {
    async fn start(root: &Path) -> Self {
        require_any("nginx", "-v");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             types {{ application/vnd.apple.mpegurl m3u8; application/dash+xml mpd; video/mp4 mp4 m4s; }}\n\
             server {{ listen 127.0.0.1:{port}; root {}; add_header Access-Control-Allow-Origin * always; }} }}\n",
            root.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new("nginx")
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let me = Self {
            port,
            _dir: dir,
            child,
        };
        eventually("nginx listens", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", me.port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        me
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
