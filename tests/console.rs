//! The operator console and the public player page, in real Chromium: an operator signs in
//! (a wrong token is refused), sees a stream appear as it is published, plays it with its
//! latency shown, adds an output to a real nginx-rtmp and sees it become active, removes it,
//! kicks the publisher, creates and revokes a key; no page or API answer shows a stream key
//! or a destination key. Screenshots of every page go to `$CONSOLE_SHOTS_DIR` (default: the
//! test's target directory); the README's are made this way into `docs/`.

mod common;

use std::time::{Duration, Instant};

use common::nginx_rtmp::{NginxRtmp, recorded_video};
use common::*;
use serde_json::json;

const TOKEN: &str = "CONSOLETOKEN-5b1e";
const DEST_KEY: &str = "CONSOLEDESTKEY-90af";
const STEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_stream_from_the_console() {
    let nginx = NginxRtmp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    let recordings = dir.path().join("recordings");
    let server = start(&[
        ("GLASSCAST_AUTH_MODE", "keys"),
        ("GLASSCAST_AUTH_KEYS_FILE", keys.to_str().unwrap()),
        ("GLASSCAST_ADMIN_TOKEN", TOKEN),
        ("GLASSCAST_HTTP_PLAYER", "true"),
        ("GLASSCAST_RECORD_ENABLED", "true"),
        ("GLASSCAST_RECORD_PATH", recordings.to_str().unwrap()),
    ])
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    // The publisher's key, made through the API: the console must never show it.
    let (s, k) = request_json(
        "POST",
        &admin_url(&server, "v1/keys"),
        &auth,
        Some(json!({"userId": "alice@example.com", "streamId": "m1"})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let publish_key = k["key"].as_str().unwrap().to_string();

    let shots = std::env::var("CONSOLE_SHOTS_DIR")
        .unwrap_or_else(|_| format!("{}/console-shots", env!("CARGO_TARGET_TMPDIR")));
    let cfg = json!({
        "url": admin_url(&server, ""),
        "token": TOKEN,
        "userId": "alice@example.com",
        "streamId": "m1",
        "dest": nginx.url(DEST_KEY),
        "secrets": [publish_key, DEST_KEY, TOKEN],
        "shots": shots,
    });
    let mut browser = NodeSession::start("console.mjs", &[cfg.to_string()]);
    browser.step("ready", STEP).await;

    let url = format!(
        "{}?key={publish_key}",
        rtmp_url(&server, "live/alice%40example.com/m1")
    );
    let mut publisher = publish(&Source::normal(300.0), &url);
    // The clock of "appears within 2 s of publish" starts when the relay accepts the publish
    // (not when ffmpeg starts, which takes its own time on a busy machine).
    let path = relay::path::StreamPath {
        user_id: "alice@example.com".into(),
        stream_id: "m1".into(),
    };
    eventually("the publish accepted", Duration::from_secs(20), || async {
        server.registry.get(&path).map(|_| ())
    })
    .await;
    browser.send("published").await;

    browser.step("output-active", STEP).await;
    // The destination really receives the stream.
    recorded_video(&nginx, DEST_KEY, 30).await;
    browser.send("go").await;

    browser.step("output-removed", STEP).await;
    let (_, outs) = request_json(
        "GET",
        &admin_url(&server, "v1/streams/alice%40example.com/m1/outputs"),
        &auth,
        None,
    )
    .await;
    assert_eq!(outs["total"], 0, "{outs}");
    browser.send("go").await;

    browser.step("kicked", STEP).await;
    let kicked = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), publisher.wait())
        .await
        .expect("the kicked publisher is disconnected");
    eprintln!(
        "publisher gone {:?} after the kick ({status:?})",
        kicked.elapsed()
    );
    let (code, _) = request_json(
        "GET",
        &admin_url(&server, "v1/streams/alice%40example.com/m1"),
        &auth,
        None,
    )
    .await;
    assert_eq!(code, 404);
    browser.send("go").await;

    let r = browser.next(STEP).await;
    eprintln!("{r:#}");
    assert_eq!(r["step"], "done", "{r}");
    assert!(
        r["error"].is_null(),
        "the console run failed: {}",
        r["error"]
    );
    assert!(r["wrongToken"].as_str().unwrap().contains("refused"), "{r}");
    assert_eq!(r["streamsShownToWrongToken"], false);
    let appear = r["appearMs"].as_u64().unwrap();
    // From starting ffmpeg (its connect and first keyframe included) to the row on screen.
    assert!(
        appear <= 2000,
        "the stream appeared {appear} ms after publish"
    );
    assert!(r["framesAdvanced"].as_u64().unwrap() >= 30, "{r}");
    let latencies: Vec<f64> = r["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        latencies.iter().all(|l| *l > 0.0 && *l < 2.0),
        "latency shown: {latencies:?}"
    );
    assert!(
        r["outputRow"].as_str().unwrap().contains("***"),
        "masked: {r}"
    );
    assert_eq!(r["outputRemoved"], true);
    assert_eq!(r["kicked"], true);
    assert_eq!(r["recordingPlayed"], true, "{r}");
    assert!(
        r["recordingMp4"]
            .as_str()
            .unwrap()
            .ends_with("/download.mp4"),
        "{r}"
    );
    assert_eq!(r["revoked"], true);
    assert_eq!(
        r["keysShownAfterCreation"], 0,
        "the new key was shown again"
    );
    assert_eq!(r["leaks"], json!([]), "secrets on the console: {r}");
    assert!(r["searched"].as_u64().unwrap() > 20, "{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    // The revoked key is gone from the store; the publisher's is still there.
    let (_, list) = request_json("GET", &admin_url(&server, "v1/keys"), &auth, None).await;
    let ids: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyId"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&r["createdKeyId"].as_str().unwrap()),
        "{list}"
    );
    assert_eq!(ids.len(), 1, "{list}");
    for page in [
        "login",
        "streams",
        "stream",
        "stream-output",
        "stream-ended",
        "streams-ended",
        "keys",
    ] {
        let shot = std::path::Path::new(&shots).join(format!("console-{page}.png"));
        assert!(
            std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
            "{}",
            shot.display()
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// The static files load without the token (they hold none); the API behind them does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_on_the_admin_listener_only() {
    let server = start(&[("GLASSCAST_ADMIN_TOKEN", TOKEN)]).await;
    let (code, headers, body) = get(&admin_url(&server, "")).await;
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("/console/console.js"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for asset in [
        "console/console.js",
        "console/console.css",
        "console/hls.light.min.js",
    ] {
        assert_eq!(get(&admin_url(&server, asset)).await.0, 200, "{asset}");
    }
    assert_eq!(get_text(&admin_url(&server, "v1/info")).await.0, 401);
    // Not on the viewer-facing listener.
    assert_eq!(get(&http_url(&server, "")).await.0, 404);
    assert_eq!(get(&http_url(&server, "console/console.js")).await.0, 404);
    server.shutdown(Duration::from_secs(5)).await;
}

/// `http.player = true`: the origin serves a page at `/live/{userId}/{streamId}/` that plays the
/// stream in Chromium (hls.js, served by the origin too), cacheable by a CDN; off by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_player_page_plays_and_is_off_by_default() {
    let on = start(&[("GLASSCAST_HTTP_PLAYER", "true")]).await;
    let off = start(&[]).await;
    let page = "live/alice%40example.com/m1/";
    // The page exists before the stream does (it waits for it); the CDN may cache it.
    let (code, headers, body) = get(&http_url(&on, page)).await;
    assert_eq!(code, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let html = String::from_utf8_lossy(&body).into_owned();
    let script = html
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page loads hls.js");
    let (code, headers, js) = get(&http_url(&on, script.trim_start_matches('/'))).await;
    assert_eq!(code, 200);
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(js.len() > 100_000);
    // Off: neither the page nor hls.js.
    assert_eq!(get(&http_url(&off, page)).await.0, 404);
    assert_eq!(
        get(&http_url(&off, script.trim_start_matches('/'))).await.0,
        404
    );

    let mut publisher = publish(
        &Source::normal(60.0),
        &rtmp_url(&on, "live/alice%40example.com/m1"),
    );
    let r = node_script("page.mjs", &[http_url(&on, page)]).await;
    eprintln!("{r}");
    assert!(r["error"].is_null(), "{r}");
    assert!(r["framesAdvanced"].as_u64().unwrap() >= 30, "{r}");
    assert_eq!(r["usedHlsJs"], true, "{r}");
    assert!(r["statusLine"].as_str().unwrap().contains("behind"), "{r}");
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    let _ = publisher.kill().await;
    on.shutdown(Duration::from_secs(5)).await;
    off.shutdown(Duration::from_secs(5)).await;
}
