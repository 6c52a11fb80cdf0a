//! Shared helpers for whole-program tests: an in-process server on port 0, real ffmpeg
//! publishers and readers, a small HTTP client, and polling with deadlines.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glasscast::config::{self, Overrides};
use glasscast::server::Server;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::{Child, Command};

pub mod cloud;
pub mod cloudflare;
pub mod ivs;
pub mod media;
pub mod moto;
pub mod netns;
pub mod nginx_rtmp;
pub mod rtmp_script;

/// Fails loudly when a tool the tests need is missing (never skips).
pub fn require(tool: &str) {
    require_any(tool, "-version");
}

/// Starts the server in-process on 127.0.0.1 port 0 with the given env-style settings.
pub async fn start(settings: &[(&str, &str)]) -> Server {
    require("ffmpeg");
    let mut env: Vec<(String, String)> = vec![
        ("GLASSCAST_RTMP_LISTEN".into(), "127.0.0.1:0".into()),
        ("GLASSCAST_HTTP_LISTEN".into(), "127.0.0.1:0".into()),
        ("GLASSCAST_ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
    ];
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let cfg = config::load(None, env, &Overrides::default()).expect("valid test config");
    init_tracing();
    Server::start(&cfg).await.expect("server starts")
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// What ffmpeg should publish.
#[derive(Debug, Clone)]
pub struct Source {
    pub video: Option<(u32, u32, u32)>, // width, height, fps
    pub audio: bool,
    /// Keyframe interval in frames (1 = all-intra).
    pub gop: u32,
    pub bframes: u32,
    pub seconds: f64,
    /// Video bitrate cap (kbit/s); `None` = the encoder's choice.
    pub video_kbps: Option<u32>,
}

impl Source {
    pub fn normal(seconds: f64) -> Self {
        Self {
            video: Some((640, 360, 30)),
            audio: true,
            gop: 60,
            bframes: 0,
            seconds,
            video_kbps: None,
        }
    }

    /// Frames of video this source produces.
    pub fn video_frames(&self) -> u64 {
        self.video.map_or(0, |(_, _, fps)| {
            (self.seconds * f64::from(fps)).round() as u64
        })
    }

    /// AAC frames this source produces (44.1 kHz, 1024 samples each).
    pub fn audio_frames(&self) -> u64 {
        if self.audio {
            (self.seconds * 44100.0 / 1024.0).round() as u64
        } else {
            0
        }
    }
}

/// Starts `ffmpeg -re` publishing `src` to `url`.
pub fn publish(src: &Source, url: &str) -> Child {
    publish_command(src, url).spawn().expect("ffmpeg starts")
}

/// Publishes `src` to `url` with ffmpeg to the end, and asserts it succeeded.
pub async fn publish_through(src: &Source, url: &str) {
    let status = publish(src, url).wait().await.expect("ffmpeg runs");
    assert!(status.success(), "publishing to {url} failed: {status}");
}

/// Publishes `src` to `url` with ffmpeg to the end; returns whether ffmpeg succeeded and
/// what it printed (errors only).
pub async fn publish_output(src: &Source, url: &str) -> (bool, String) {
    let out = publish_command(src, url)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .output()
        .await
        .expect("ffmpeg runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn publish_command(src: &Source, url: &str) -> Command {
    publish_args(Command::new("ffmpeg"), src, url)
}

/// Starts `ffmpeg -re` publishing `src` to `url` through `ffmpeg` (a command that runs
/// ffmpeg, e.g. inside a network namespace).
pub fn publish_via(ffmpeg: Command, src: &Source, url: &str) -> Child {
    publish_args(ffmpeg, src, url)
        .spawn()
        .expect("ffmpeg starts")
}

fn publish_args(mut c: Command, src: &Source, url: &str) -> Command {
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"]);
    if let Some((w, h, fps)) = src.video {
        c.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={w}x{h}:rate={fps}"),
        ]);
    }
    if src.audio {
        c.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
    }
    c.args(["-t", &src.seconds.to_string()]);
    if src.video.is_some() {
        c.args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &src.gop.to_string(),
            "-bf",
            &src.bframes.to_string(),
        ]);
        if let Some(k) = src.video_kbps {
            c.args([
                "-b:v",
                &format!("{k}k"),
                "-maxrate",
                &format!("{k}k"),
                "-bufsize",
                &format!("{k}k"),
            ]);
        }
        if src.bframes > 0 {
            // zerolatency disables B-frames; turn them back on explicitly.
            c.args([
                "-x264-params",
                &format!("bframes={}:b-adapt=0", src.bframes),
            ]);
        }
    } else {
        c.arg("-vn");
    }
    if src.audio {
        c.args(["-c:a", "aac", "-b:a", "64k", "-ac", "1"]);
    } else {
        c.arg("-an");
    }
    c.args(["-f", "flv", url]);
    c.stdin(Stdio::null()).kill_on_drop(true);
    c
}

pub fn rtmp_url(server: &Server, path: &str) -> String {
    format!("rtmp://{}/{path}", server.rtmp_addr)
}

pub fn http_url(server: &Server, path: &str) -> String {
    format!("http://{}/{path}", server.http_addr)
}

/// A URL on the admin listener (`/metrics`, `/v1/...`).
pub fn admin_url(server: &Server, path: &str) -> String {
    format!("http://{}/{path}", server.admin_addr)
}

/// The value of the first sample line of `metric` (exact name with labels) in `text`, or the
/// sum over its label sets when `metric` has no `{`.
pub fn metric(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(metric)
                && (metric.contains('{') || l[metric.len()..].starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A free loopback port: bound, read, released, for a server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (a server it started).
pub async fn wait_listening(what: &str, port: u16) {
    eventually(what, Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// A plain HTTP/1.1 GET.
pub async fn get(url: &str) -> (u16, hyper::HeaderMap, Bytes) {
    get_with(url, &[]).await
}

/// A keep-alive HTTP client, as a player holds one.
#[derive(Clone)]
pub struct Http(Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>);

impl Http {
    pub fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    pub async fn get(&self, url: &str) -> (u16, Bytes) {
        let req = hyper::Request::get(url)
            .body(Empty::new())
            .expect("request");
        let resp = self
            .0
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        (
            status,
            resp.into_body().collect().await.expect("body").to_bytes(),
        )
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, hyper::HeaderMap, Bytes) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, body)
}

/// A GET that keeps each body frame with the moment it arrived (for responses streamed while
/// the media is being made).
pub async fn get_frames(url: &str) -> (u16, hyper::HeaderMap, Vec<(std::time::Instant, Bytes)>) {
    get_frames_with(url, &[]).await
}

/// [`get_frames`] with request headers.
pub async fn get_frames_with(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Vec<(std::time::Instant, Bytes)>) {
    fetch_frames(url, headers, false).await
}

/// [`get_frames`] over HTTP/2 without TLS (prior knowledge, h2c): the body's DATA frames.
pub async fn get_frames_h2(url: &str) -> (u16, hyper::HeaderMap, Vec<(std::time::Instant, Bytes)>) {
    fetch_frames(url, &[], true).await
}

async fn fetch_frames(
    url: &str,
    headers: &[(&str, &str)],
    http2: bool,
) -> (u16, hyper::HeaderMap, Vec<(std::time::Instant, Bytes)>) {
    use http_body_util::BodyExt as _;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http();
    let mut req = hyper::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::new()).expect("request");
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            frames.push((std::time::Instant::now(), data));
        }
    }
    (status, headers, frames)
}

/// Any request with an optional JSON body; returns the status and the body as text.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> (u16, String) {
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let resp = client
        .request(req.body(http_body_util::Full::new(body)).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A request whose answer must be JSON.
pub async fn request_json(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (status, text) = request(method, url, headers, body).await;
    let v = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"))
    };
    (status, v)
}

pub async fn get_text(url: &str) -> (u16, String) {
    let (s, _, b) = get(url).await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// Waits until the media playlist at `base` has EXT-X-ENDLIST.
pub async fn wait_ended(base: &str, timeout: Duration) -> String {
    eventually("EXT-X-ENDLIST", timeout, || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && t.contains("#EXT-X-ENDLIST")).then_some(t)
    })
    .await
}

/// Decodes `url` with ffmpeg and counts decoded frames per stream type.
/// Returns (video frames, audio frames, stderr).
pub async fn decode(url: &str) -> (u64, u64, String) {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-i",
            url,
            "-map",
            "0",
            "-f",
            "framecrc",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffmpeg failed on {url}: {stderr}");
    // framecrc lines: "stream_index, dts, pts, duration, size, crc"; stream types from ffprobe.
    let kinds = stream_kinds(url).await;
    let (mut v, mut a) = (0, 0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(idx) = line
            .split(',')
            .next()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            continue;
        };
        match kinds.get(idx).map(String::as_str) {
            Some("video") => v += 1,
            Some("audio") => a += 1,
            _ => {}
        }
    }
    (v, a, stderr)
}

async fn stream_kinds(url: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .await
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Asserts `got` is within 2% of `want`.
pub fn within_2pct(what: &str, got: u64, want: u64) {
    let tol = (want as f64 * 0.02).ceil() as u64;
    assert!(
        got.abs_diff(want) <= tol,
        "{what}: decoded {got}, published {want} (tolerance {tol})"
    );
}

/// Parsed facts about a live media playlist.
#[derive(Debug, Default, Clone)]
pub struct LivePlaylist {
    pub media_sequence: u64,
    pub complete_segments: u64,
    /// Parts listed after the last complete segment (the open segment).
    pub open_parts: u64,
    /// Wall-clock time (ms since epoch) at the end of the newest part or segment.
    pub edge_pdt_ms: Option<i64>,
    pub preload_hint: Option<String>,
    pub discontinuities: usize,
    pub ended: bool,
}

impl LivePlaylist {
    /// msn of the segment in progress.
    pub fn open_msn(&self) -> u64 {
        self.media_sequence + self.complete_segments
    }

    /// The preload hint read as the origin names parts: (session prefix, part number).
    pub fn hinted_part(&self) -> Option<(String, u64)> {
        let (prefix, rest) = self.preload_hint.as_deref()?.rsplit_once("-p")?;
        Some((prefix.to_string(), rest.strip_suffix(".m4s")?.parse().ok()?))
    }
}

pub fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

pub fn parse_live(text: &str) -> LivePlaylist {
    let mut p = LivePlaylist::default();
    let mut pdt: Option<i64> = None;
    let mut since_pdt = 0.0f64;
    let mut parts_since_inf = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = humantime::parse_rfc3339(v.trim()).expect("PDT is RFC 3339");
            pdt = Some(
                t.duration_since(std::time::UNIX_EPOCH)
                    .expect("after epoch")
                    .as_millis() as i64,
            );
            since_pdt = 0.0;
        } else if line.starts_with("#EXT-X-PART:") {
            since_pdt += attr(line, "DURATION")
                .and_then(|d| d.parse::<f64>().ok())
                .unwrap_or(0.0);
            parts_since_inf += 1;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            p.complete_segments += 1;
            parts_since_inf = 0;
            let d: f64 = v.trim_end_matches(',').parse().unwrap_or(0.0);
            // The segment's parts (if listed) already counted its duration.
            since_pdt = d.max(since_pdt);
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = attr(line, "URI").map(str::to_string);
        } else if line == "#EXT-X-DISCONTINUITY" {
            p.discontinuities += 1;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        }
        p.edge_pdt_ms = pdt.map(|t| t + (since_pdt * 1000.0).round() as i64);
    }
    p.open_parts = parts_since_inf;
    p
}

/// ms since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_millis() as i64
}

/// Writes a self-signed certificate for localhost and 127.0.0.1 into `dir`; returns the
/// (certificate, key) PEM paths.
pub fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).expect("write certificate");
    std::fs::write(&k, cert.signing_key.serialize_pem()).expect("write key");
    (c.display().to_string(), k.display().to_string())
}

/// Runs one of the `tests/browser` Node scripts (real Chromium via playwright-core, or
/// hls-parser) and returns the JSON it prints. Fails loudly when Node, Chromium or the npm
/// packages are missing.
pub async fn node_script(script: &str, args: &[String]) -> serde_json::Value {
    let dir = browser_dir();
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PLAYER_CONSOLE=1 (see player.mjs) is for reading the player's own log.
    if std::env::var_os("PLAYER_CONSOLE").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A `tests/browser` Node script the test talks to while it runs: it prints one JSON object
/// per line (a step reached, or its result) and reads one line per step the test takes.
pub struct NodeSession {
    child: Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    script: String,
}

impl NodeSession {
    pub fn start(script: &str, args: &[String]) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let mut child = Command::new("node")
            .arg(browser_dir().join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdin,
            lines,
            script: script.into(),
        }
    }

    /// The next object the script prints (within `timeout`).
    pub async fn next(&mut self, timeout: Duration) -> serde_json::Value {
        let line = tokio::time::timeout(timeout, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing printed within {timeout:?}", self.script))
            .expect("stdout readable");
        let Some(line) = line else {
            let status = self.child.wait().await;
            panic!("{} exited ({status:?}); its stderr is above", self.script);
        };
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {line}", self.script))
    }

    /// Waits for the step `name` (a `{"step": name, …}` line) and returns it.
    pub async fn step(&mut self, name: &str, timeout: Duration) -> serde_json::Value {
        let v = self.next(timeout).await;
        assert_eq!(
            v["step"], name,
            "{}: expected step {name}, got {v}",
            self.script
        );
        v
    }

    /// Tells the script to go on.
    pub async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt as _;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("script reads stdin");
    }
}

/// `tests/browser`, after checking that Node, Chromium and the npm packages are there (fails
/// loudly when they are not).
fn browser_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ok = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        ok("node"),
        "`node` is required (Debian: nodejs; scripts/test installs it)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is required at {chromium} (Debian: chromium; scripts/test installs it)"
    );
    for pkg in [
        "hls.js",
        "shaka-player",
        "dashjs",
        "playwright-core",
        "hls-parser",
    ] {
        assert!(
            dir.join("node_modules").join(pkg).exists(),
            "npm package {pkg} missing: run `npm ci --prefix tests/browser` (scripts/test does)"
        );
    }
    dir
}

/// Runs a web player (`hlsjs`, `shaka`, `dashjs`) on `url` in headless Chromium for `seconds`.
pub async fn run_player(player: &str, url: &str, seconds: u64) -> serde_json::Value {
    node_script(
        "player.mjs",
        &[player.to_string(), url.to_string(), seconds.to_string()],
    )
    .await
}

/// Sorted latency samples (seconds) from a `run_player` result.
pub fn player_latencies(r: &serde_json::Value) -> Vec<f64> {
    let mut lat: Vec<f64> = r["samples"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["latency"].as_f64()).collect())
        .unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    lat
}

/// A request as a fake HTTP service sees it.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Serves HTTP/1.1 on a free loopback port, answering each request with `f`'s status and JSON
/// body (the stand-in for a SaaS we cannot reach). Returns the base URL.
pub async fn fake_http<F, Fut>(f: F) -> String
where
    F: Fn(FakeRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, String)> + Send + 'static,
{
    let f = std::sync::Arc::new(f);
    fake_http_with(move |req| {
        let f = f.clone();
        async move {
            let (status, body) = f(req).await;
            (status, Vec::new(), body)
        }
    })
    .await
}

/// Like [`fake_http`], with response headers.
pub async fn fake_http_with<F, Fut>(f: F) -> String
where
    F: Fn(FakeRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, Vec<(String, String)>, String)> + Send + 'static,
{
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = std::sync::Arc::new(f);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let f = f.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, headers, json) = f(FakeRequest {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                        })
                        .await;
                        let mut resp = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json");
                        for (k, v) in headers {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, std::convert::Infallible>(
                            resp.body(http_body_util::Full::new(Bytes::from(json)))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), svc)
                    .await;
            });
        }
    });
    url
}

/// A real `redis-server` (Debian) on a free loopback port, without persistence; killed on
/// drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        require_any("redis-server", "--version");
        let port = free_port();
        let mut me = Self { port, child: None };
        me.spawn().await;
        me
    }

    /// Starts (again) on this server's port and waits until it answers.
    pub async fn spawn(&mut self) {
        let port = self.port;
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        eventually("redis answers PING", Duration::from_secs(10), || async {
            self.cmd(&["PING"]).await.filter(|r| r == "PONG")
        })
        .await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs one command with `redis-cli`; `None` when Redis does not answer.
    pub async fn cmd(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Like [`require`], for tools that take another version flag.
pub fn require_any(tool: &str, version_flag: &str) {
    // CI=true never skips either: a missing tool fails here, loudly.
    let ok = std::process::Command::new(tool)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "`{tool}` is required by this test and was not found; install it (Debian: apt-get install ffmpeg) \
         or run the README's test command, which installs it"
    );
}

/// The real `glasscast` binary, started with `args` and `env`, its addresses read from the
/// log lines it prints; the whole log is collected until it exits.
pub struct Binary {
    pub child: Child,
    pub rtmp: String,
    pub http: String,
    pub admin: String,
    log: tokio::task::JoinHandle<String>,
}

impl Binary {
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1", args, env).await
    }

    /// Like [`Binary::start`], listening on `host` (another loopback address: a fleet node).
    pub async fn start_on(host: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let any = format!("{host}:0");
        let mut c = Command::new(env!("CARGO_BIN_EXE_glasscast"));
        c.env_remove("RUST_LOG")
            .args(["serve", "--rtmp-listen", &any, "--http-listen", &any])
            .args(["--admin-listen", &any])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c.spawn().expect("glasscast starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut rtmp, mut http, mut admin) = (None, None, None);
        let mut head = String::new();
        while rtmp.is_none() || http.is_none() || admin.is_none() {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("listen lines logged; got:\n{head}"))
                .expect("stderr readable")
                .unwrap_or_else(|| panic!("glasscast exited:\n{head}"));
            head.push_str(&line);
            head.push('\n');
            let addr = |tag: &str| {
                // In a JSON log the address ends at the message's closing quote.
                line.split(tag)
                    .nth(1)
                    .and_then(|r| r.split(|c: char| c.is_whitespace() || c == '"').next())
                    .map(str::to_string)
            };
            rtmp = rtmp.or(addr("rtmp listening on "));
            http = http.or(addr("http listening on "));
            admin = admin.or(addr("admin listening on "));
        }
        // Keep draining the log so the server never blocks on a full pipe.
        let log = tokio::spawn(async move {
            let mut all = head;
            while let Ok(Some(l)) = lines.next_line().await {
                all.push_str(&l);
                all.push('\n');
            }
            all
        });
        Self {
            child,
            rtmp: rtmp.unwrap_or_default(),
            http: http.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
            log,
        }
    }

    /// SIGTERM, wait for the exit, and return the exit code and the whole log.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait");
        (status.code(), self.log.await.unwrap_or_default())
    }
}
