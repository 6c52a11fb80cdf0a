//! Secrets audit: the real binary at `trace` log level goes through everything that handles a
//! secret (publishing with a stream key and with a token, restreaming to destinations whose
//! URLs carry keys — from a static rule, the cloud and the API —, signed cloud calls with a
//! bearer token, API calls with the admin token, key creation, `ab` delivery to a fake
//! Cloudflare with its API token and a forward whose URL carries the live input's stream key,
//! recording to object storage with its credentials, every upload failing and logged),
//! then no secret may appear in
//! the log, in `/metrics`, in any API answer or in anything sent to the cloud except where the
//! contract puts it (the authorize callback carries the credential it asks about).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "ADMINTOKEN-7f3a";
const CLOUD_TOKEN: &str = "CLOUDTOKEN-91bc";
const HMAC_SECRET: &str = "HMACSECRET-44de";
const TOKEN_SECRET: &str = "TOKENSECRET-0123456789abcdef";
const RULE_KEY: &str = "RULEDESTKEY-5521";
const CLOUD_KEY: &str = "CLOUDDESTKEY-8812";
const API_KEY: &str = "APIDESTKEY-3307";
const CF_TOKEN: &str = "CFAPITOKEN-6a2c";
/// Object storage credentials of recording (a store that refuses, so every upload fails and
/// is logged).
const S3_KEY_ID: &str = "S3KEYID-72ea";
const S3_SECRET: &str = "S3SECRET-19f0";
/// The fake Cloudflare's stream key of its first live input.
const CF_STREAM_KEY: &str = "key-abc00001";

struct Audit {
    /// Every body the fake cloud received, by path.
    cloud: Arc<Mutex<Vec<(String, String)>>>,
    /// Every API answer and metrics text.
    seen: Vec<String>,
}

async fn run(
    mode: &str,
    log_format: &str,
    dest_rtmp: &str,
    secrets: &mut Vec<String>,
) -> (String, Audit) {
    let cloud_bodies: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let cb = cloud_bodies.clone();
    let dest = dest_rtmp.to_string();
    let cloud = fake_http(move |req| {
        let cb = cb.clone();
        let dest = dest.clone();
        async move {
            cb.lock().unwrap().push((
                req.path.clone(),
                String::from_utf8_lossy(&req.body).into_owned(),
            ));
            if req
                .path
                .starts_with("/api/rtmp-relay/restream-destinations/")
            {
                let url = format!("rtmp://{dest}/live/d/{CLOUD_KEY}");
                return (
                    200,
                    json!({"destinations": [{"name": "cloud", "url": url}]}).to_string(),
                );
            }
            (200, "{}".into())
        }
    })
    .await;
    // The platform of `ab` mode; its ingest is the destination relay (plain RTMP).
    let cf = common::cloudflare::FakeCloudflare::start(
        CF_TOKEN,
        &format!("rtmp://{dest_rtmp}/live/cf/"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.json");
    let rule = format!("live/ -> rtmp://{dest_rtmp}/live/d/{RULE_KEY}");
    let recordings = dir.path().join("recordings");
    let dead_store = format!("http://127.0.0.1:{}", free_port());
    let server = Binary::start(
        &[],
        &[
            ("RUST_LOG", "trace"),
            ("GLASSCAST_LOG_FORMAT", log_format),
            ("GLASSCAST_AUTH_MODE", mode),
            ("GLASSCAST_AUTH_KEYS_FILE", keys_file.to_str().unwrap()),
            ("GLASSCAST_AUTH_TOKEN_SECRET", TOKEN_SECRET),
            ("GLASSCAST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GLASSCAST_CLOUD_URL", &cloud),
            ("GLASSCAST_CLOUD_TOKEN", CLOUD_TOKEN),
            ("GLASSCAST_CLOUD_HMAC_SECRET", HMAC_SECRET),
            ("GLASSCAST_CLOUD_HEARTBEAT_MS", "300"),
            ("GLASSCAST_RESTREAM_RULES", &rule),
            ("GLASSCAST_METRICS_PER_STREAM_LABELS", "true"),
            ("GLASSCAST_DELIVERY_MODE", "ab"),
            ("GLASSCAST_MANAGED_CLOUDFLARE_API_URL", &cf.url),
            ("GLASSCAST_MANAGED_CLOUDFLARE_API_TOKEN", CF_TOKEN),
            ("GLASSCAST_RECORD_ENABLED", "true"),
            ("GLASSCAST_RECORD_PATH", recordings.to_str().unwrap()),
            ("GLASSCAST_RECORD_S3_URL", "s3://audit-bucket/rec"),
            ("GLASSCAST_RECORD_S3_ENDPOINT", &dead_store),
            ("GLASSCAST_RECORD_S3_ACCESS_KEY_ID", S3_KEY_ID),
            ("GLASSCAST_RECORD_S3_SECRET_ACCESS_KEY", S3_SECRET),
        ],
    )
    .await;
    let admin = |p: &str| format!("http://{}/{p}", server.admin);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let hs = [
        ("authorization", auth.as_str()),
        ("x-package-name", "com.example.app"),
    ];
    let mut seen = Vec::new();
    let mut answer = |v: &Value| seen.push(v.to_string());

    // A credential for the publish: a key made through the API, or a minted token.
    let credential = if mode == "keys" {
        let (s, k) = request_json(
            "POST",
            &admin("v1/keys"),
            &hs,
            Some(json!({"userId": "alice@example.com", "streamId": "m1", "alias": "alias-x"})),
        )
        .await;
        assert_eq!(s, 201, "{k}");
        let key = k["key"].as_str().unwrap().to_string();
        // The creation answer is the one place the key may appear.
        let mut shown = k.clone();
        shown["key"] = Value::Null;
        answer(&shown);
        secrets.push(key.clone());
        format!("key={key}")
    } else {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let token = relay::auth::token::mint(
            TOKEN_SECRET.as_bytes(),
            &relay::auth::token::Claims {
                u: "alice@example.com".into(),
                s: "m1".into(),
                exp,
                ip: None,
            },
        );
        secrets.push(token.clone());
        format!("token={token}")
    };
    // A refused attempt with a wrong credential is logged too.
    let wrong = "WRONGCREDENTIAL-6d1e".to_string();
    secrets.push(wrong.clone());
    let url = |q: &str| format!("rtmp://{}/live/alice%40example.com/m1?{q}", server.rtmp);
    let (ok, _) = publish_output(&Source::normal(1.0), &url(&format!("key={wrong}"))).await;
    assert!(!ok);
    let mut publisher = publish(&Source::normal(30.0), &url(&credential));
    let stream = admin("v1/streams/alice%40example.com/m1");
    eventually("stream live", Duration::from_secs(10), || async {
        (request_json("GET", &stream, &hs, None).await.0 == 200).then_some(())
    })
    .await;
    // An output added by an app, with a key in its URL.
    let (s, v) = request_json(
        "POST",
        &format!("{stream}/outputs"),
        &hs,
        Some(json!({"url": format!("rtmp://{dest_rtmp}/live/d/{API_KEY}"), "name": "api"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    answer(&v);
    // All three destinations connect and publish (the destination is a real relay).
    eventually("three outputs active", Duration::from_secs(15), || async {
        let (_, v) = request_json("GET", &format!("{stream}/outputs"), &hs, None).await;
        let active = v["outputs"]
            .as_array()
            .map_or(0, |o| o.iter().filter(|o| o["status"] == "active").count());
        (active == 3).then_some(())
    })
    .await;
    // The forward to the platform is up (its URL holds the live input's key).
    eventually("forward active", Duration::from_secs(15), || async {
        let (_, v) = request_json("GET", &stream, &hs, None).await;
        (v["delivery"]["forwardStatus"] == "active").then_some(())
    })
    .await;
    for p in [
        "v1/streams".to_string(),
        "v1/streams/alice%40example.com/m1".into(),
        "v1/streams/alice%40example.com/m1/outputs".into(),
        "v1/keys".into(),
    ] {
        let (_, v) = request_json("GET", &admin(&p), &hs, None).await;
        answer(&v);
    }
    eventually(
        "a status report with the outputs",
        Duration::from_secs(10),
        || async {
            cloud_bodies
                .lock()
                .unwrap()
                .iter()
                .any(|(p, b)| p.ends_with("stream-status") && b.contains("api"))
                .then_some(())
        },
    )
    .await;
    seen.push(get_text(&admin("metrics")).await.1);
    let _ = publisher.kill().await;
    let (code, log) = server.stop().await;
    assert_eq!(code, Some(0));
    (
        log,
        Audit {
            cloud: cloud_bodies,
            seen,
        },
    )
}

/// Every line of a `log.format = "json"` log is one JSON object, and events carry their span
/// chain: the connection, the stream and the destination.
fn json_log_has_span_fields(log: &str) {
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.len() > 50, "{} events", events.len());
    for e in &events {
        assert!(
            e["timestamp"].is_string() && e["level"].is_string() && e["fields"].is_object(),
            "{e}"
        );
    }
    let in_span = |name: &str, field: &str| {
        events.iter().any(|e| {
            e["spans"].as_array().is_some_and(|spans| {
                spans
                    .iter()
                    .any(|s| s["name"] == name && (s[field].is_string() || s[field].is_number()))
            })
        })
    };
    assert!(in_span("rtmp", "conn"), "no event in a connection's span");
    assert!(in_span("packager", "stream"), "no event in a stream's span");
    assert!(
        in_span("restream", "destination"),
        "no event in a destination's span"
    );
    assert!(
        events.iter().any(|e| e["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rtmp listening on"))),
        "the listening lines tools look for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_api_or_status() {
    require("ffmpeg");
    // A real RTMP destination for the restreams: another relay, in-process.
    let dest = start(&[]).await;
    let dest_rtmp = dest.rtmp_addr.to_string();
    // Text logs with keys, JSON logs (`log.format = "json"`) with tokens.
    for (mode, log_format) in [("keys", "text"), ("token", "json")] {
        let mut secrets: Vec<String> = [
            ADMIN_TOKEN,
            CLOUD_TOKEN,
            HMAC_SECRET,
            TOKEN_SECRET,
            RULE_KEY,
            CLOUD_KEY,
            API_KEY,
            CF_TOKEN,
            CF_STREAM_KEY,
            S3_KEY_ID,
            S3_SECRET,
        ]
        .map(String::from)
        .to_vec();
        let (log, audit) = run(mode, log_format, &dest_rtmp, &mut secrets).await;
        // Everything down to trace is on (our DEBUG lines are there).
        assert!(
            log.contains(" DEBUG ") || log.contains("\"level\":\"DEBUG\""),
            "the audit needs a debug/trace log:\n{log}"
        );
        if log_format == "json" {
            json_log_has_span_fields(&log);
        }
        assert!(
            log.contains("upload failed"),
            "the audit needs recording's failing uploads:\n{log}"
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{mode}: {secret} in the log"
            );
            for text in &audit.seen {
                assert!(
                    !text.contains(secret.as_str()),
                    "{mode}: {secret} in {text}"
                );
            }
            for (path, body) in audit.cloud.lock().unwrap().iter() {
                assert!(
                    !body.contains(secret.as_str()),
                    "{mode}: {secret} sent to the cloud's {path}"
                );
            }
        }
    }
    dest.shutdown(Duration::from_secs(5)).await;
}
