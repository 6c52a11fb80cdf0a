//! A real S3-compatible server for the tests: `moto` in server mode (PyPI `moto[server]`) on a
//! free loopback port. It keeps objects in memory, so an outage is simulated by stopping the
//! process (SIGSTOP: connections hang, as with a stalled store) rather than restarting it.

use std::process::Stdio;
use std::time::Duration;

use super::{eventually, require_any};

/// The credentials the tests configure (moto accepts any).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing-secret";

pub struct Moto {
    pub port: u16,
    child: std::process::Child,
}

impl Moto {
    pub async fn start() -> Self {
        Self::start_on(super::free_port()).await
    }

    /// On `port` (a store that comes up where a relay already points).
    pub async fn start_on(port: u16) -> Self {
        require_any("moto_server", "-h");
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let me = Self { port, child };
        eventually("moto answers", Duration::from_secs(30), || async {
            let out = tokio::process::Command::new("curl")
                .args(["-sf", "-o", "/dev/null", &me.url()])
                .output()
                .await
                .ok()?;
            out.status.success().then_some(())
        })
        .await;
        me
    }

    /// `http://127.0.0.1:PORT`, the endpoint to configure.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto does not check signatures).
    pub async fn create_bucket(&self, name: &str) {
        let out = tokio::process::Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{name}", self.url())])
            .output()
            .await
            .expect("curl runs");
        assert!(out.status.success(), "creating bucket {name}: {out:?}");
    }

    /// Every key under `prefix`, with its size.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.url());
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={t}"));
            }
            let (status, _, body) = super::get(&url).await;
            assert_eq!(status, 200, "listing {bucket}");
            let xml = String::from_utf8_lossy(&body).into_owned();
            for c in xml.split("<Contents>").skip(1) {
                let key = between(c, "<Key>", "</Key>").unwrap_or_default();
                let size = between(c, "<Size>", "</Size>")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                keys.push((key.replace("&amp;", "&"), size));
            }
            token = between(&xml, "<NextContinuationToken>", "</NextContinuationToken>").map(|t| {
                t.replace('+', "%2B")
                    .replace('=', "%3D")
                    .replace('/', "%2F")
            });
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// An object's bytes, fetched with a signed request (objects are private).
    pub async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = tokio::process::Command::new("curl")
            .args([
                "-sf",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                &format!("{ACCESS_KEY}:{SECRET_KEY}"),
                &format!("{}/{bucket}/{key}", self.url()),
            ])
            .output()
            .await
            .expect("curl runs");
        assert!(out.status.success(), "GET {key}: {out:?}");
        out.stdout
    }

    /// Stops the process: every request hangs until [`Moto::resume`].
    pub fn pause(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
