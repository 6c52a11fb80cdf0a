//! A real nginx-rtmp server (Debian `nginx` + `libnginx-mod-rtmp`) on a free loopback port,
//! recording every stream it receives; optionally behind TLS (nginx's stream module) with an
//! `app` application serving HLS, which is how the fake AWS IVS ingest is made.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::eventually;
use super::media::packet_hashes;

/// A real nginx-rtmp server recording every stream published to `live/` into its directory.
pub struct NginxRtmp {
    pub port: u16,
    /// nginx's HTTP port: `/hls/{key}.m3u8` serves the `app` application's HLS.
    pub http_port: u16,
    /// The TLS port in front of the RTMP port (with [`NginxRtmp::start_tls`]).
    pub tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Child,
}

impl NginxRtmp {
    pub async fn start() -> Self {
        Self::start_on(None, None).await
    }

    /// With RTMPS on `tls_port` (nginx's stream module terminating TLS with this certificate
    /// and key, then passing the bytes to nginx-rtmp).
    pub async fn start_tls(cert: &str, key: &str) -> Self {
        Self::start_on(None, Some((cert, key))).await
    }

    /// Starts on `port` (a restart on the same address), or on a free port.
    async fn start_on(reuse: Option<(u16, tempfile::TempDir)>, tls: Option<(&str, &str)>) -> Self {
        let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
        assert!(
            module.exists(),
            "nginx-rtmp is required (Debian: nginx libnginx-mod-rtmp; scripts/test installs them)"
        );
        let (port, dir) =
            reuse.unwrap_or_else(|| (super::free_port(), tempfile::tempdir().unwrap()));
        let http_port = super::free_port();
        let d = dir.path().display();
        let (stream, tls_port) = match tls {
            Some((cert, key)) => {
                let stream_module = Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
                assert!(
                    stream_module.exists(),
                    "nginx's stream module is required (Debian: libnginx-mod-stream; scripts/test installs it)"
                );
                let tls_port = super::free_port();
                (
                    format!(
                        "stream {{ server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {cert}; \
                         ssl_certificate_key {key}; proxy_pass 127.0.0.1:{port}; }} }}\n"
                    ),
                    Some(tls_port),
                )
            }
            None => (String::new(), None),
        };
        let load_stream = if tls.is_some() {
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
        } else {
            ""
        };
        // `live` records everything (appending across restarts); `deny` refuses every publish
        // through on_publish -> 403, which is how nginx-rtmp rejects a bad stream key; `app`
        // (the IVS ingest's application) records and serves HLS at /hls/.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             load_module {};\n{load_stream}events {{}}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{http_port};\n\
               location /hls/ {{ alias {d}/hls/; add_header Cache-Control no-cache; }}\n\
               location / {{ return 403; }} }} }}\n\
             {stream}\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; meta copy; record all; record_path {d}; record_unique off; record_append on; }}\n\
               application app {{ live on; meta copy; record all; record_path {d}; record_unique off; record_append on;\n\
                 hls on; hls_path {d}/hls; hls_fragment 1s; hls_playlist_length 60s; }}\n\
               application deny {{ live on; on_publish http://127.0.0.1:{http_port}/auth; }} }} }}\n",
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
        for p in std::iter::once(port).chain(tls_port) {
            super::wait_listening("nginx-rtmp listening", p).await;
        }
        Self {
            port,
            http_port,
            tls_port,
            dir,
            child,
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// Stops nginx and starts it again on the same port and directory.
    pub async fn restart_after(mut self, down: Duration) -> Self {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        tokio::time::sleep(down).await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_on(Some((self.port, dir)), None).await
    }

    /// Where nginx records (`{key}.flv`) and writes HLS (`hls/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn recording(&self, key: &str) -> PathBuf {
        self.dir.path().join(format!("{key}.flv"))
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        if std::env::var_os("GLASSCAST_TEST_NGINX_LOG").is_some() {
            eprintln!(
                "{}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
        }
        let _ = self.child.start_kill();
    }
}

pub async fn recorded_video(nginx: &NginxRtmp, key: &str, frames: usize) -> Vec<String> {
    let rec = nginx.recording(key);
    eventually("recording complete", Duration::from_secs(15), || async {
        if !rec.exists() {
            return None;
        }
        let h = packet_hashes(&rec, "v").await;
        (h.len() >= frames).then_some(h)
    })
    .await
}
