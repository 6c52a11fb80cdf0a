//! Restream to real nginx-rtmp destinations (Debian `nginx` + `libnginx-mod-rtmp`, started by
//! the test on a free loopback port, recording what they receive).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use relay::restream::destination::Destination;
use relay::restream::pusher::{self, PushConfig, Pusher};
use relay::restream::supervisor::DestState;
use tokio::process::{Child, Command};
use tokio_util::task::TaskTracker;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/origin/benches/fixtures/glasses-720p30.flv"
);

/// A real nginx-rtmp server recording every stream published to `live/` into its directory.
struct NginxRtmp {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl NginxRtmp {
    async fn start() -> Self {
        let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
        assert!(
            module.exists(),
            "nginx-rtmp is required (Debian: nginx libnginx-mod-rtmp; scripts/test installs them)"
        );
        let dir = tempfile::tempdir().unwrap();
        // A free port: bind, read it, release, hand it to nginx.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             load_module {};\nevents {{}}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record all; record_path {d}; record_unique off; }} }} }}\n",
            module.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx starts");
        eventually("nginx-rtmp listening", Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { port, dir, child }
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    fn recording(&self, key: &str) -> PathBuf {
        self.dir.path().join(format!("{key}.flv"))
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Per-packet MD5s of one stream type (`v` or `a`), payload only (timestamps are rebased).
async fn packet_hashes(file: &Path, kind: &str) -> Vec<String> {
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

async fn packet_dts(file: &Path) -> Vec<i64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_destinations_receive_the_stream_bit_identical() {
    let nginx = NginxRtmp::start().await;
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    let tasks = TaskTracker::new();
    let cfg = Arc::new(PushConfig::new(&[]).unwrap());
    let pushers: Arc<Mutex<Vec<Pusher>>> = Arc::default();
    {
        let (pushers, tasks, cfg) = (pushers.clone(), tasks.clone(), cfg.clone());
        let urls = [nginx.url("dest-a"), nginx.url("dest-b")];
        server.registry.on_new_stream(move |stream| {
            for (i, url) in urls.iter().enumerate() {
                let dest = Destination::parse(url).unwrap();
                let p = pusher::spawn(
                    stream,
                    dest,
                    format!("nginx-{i}"),
                    cfg.clone(),
                    i as u64,
                    &tasks,
                );
                pushers.lock().unwrap().push(p);
            }
        });
    }
    // Publish the committed fixture byte for byte (-c copy): it is the reference.
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
            FIXTURE,
            "-c",
            "copy",
            "-f",
            "flv",
        ])
        .arg(rtmp_url(&server, "live/restream/s"))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    // The stream ends after the grace period; the pushers close their connections cleanly.
    eventually("pushers stopped", Duration::from_secs(15), || async {
        let p = pushers.lock().unwrap();
        (p.len() == 2 && p.iter().all(|p| p.status().state == DestState::Stopped)).then_some(())
    })
    .await;
    for p in pushers.lock().unwrap().iter() {
        let s = p.status();
        assert!(s.bytes_sent > 500_000, "{s:?}");
        assert_eq!(s.reconnects, 0, "{s:?}");
        assert_eq!(s.dropped, 0, "{s:?}");
        assert!(
            !s.masked_url.contains("dest-"),
            "key leaked: {}",
            s.masked_url
        );
    }

    let source_video = packet_hashes(Path::new(FIXTURE), "v").await;
    let source_audio = packet_hashes(Path::new(FIXTURE), "a").await;
    assert_eq!(source_video.len(), 120);
    for key in ["dest-a", "dest-b"] {
        let rec = nginx.recording(key);
        eventually("recording closed", Duration::from_secs(10), || async {
            (rec.exists() && packet_hashes(&rec, "v").await.len() == source_video.len())
                .then_some(())
        })
        .await;
        assert_eq!(
            packet_hashes(&rec, "v").await,
            source_video,
            "{key}: video differs from the source"
        );
        let audio = packet_hashes(&rec, "a").await;
        // Audio is forwarded from the first keyframe on; the fixture starts with one.
        assert_eq!(audio, source_audio, "{key}: audio differs from the source");
        let dts = packet_dts(&rec).await;
        assert!(
            dts.windows(2).all(|w| w[0] <= w[1]),
            "{key}: timestamps go backwards"
        );
        assert_eq!(dts.first(), Some(&0), "{key}: timestamps rebased to 0");
        let (v, _, errors) = decode(rec.to_str().unwrap()).await;
        assert!(errors.trim().is_empty(), "{key}: {errors}");
        assert_eq!(v, 120);
    }
    server.shutdown(Duration::from_secs(5)).await;
}
