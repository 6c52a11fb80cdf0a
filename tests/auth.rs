//! Publish authorization with real ffmpeg publishers: stream keys (query and stream-name forms,
//! aliases, expiry, revocation, IP allowlists), signed tokens, and the cloud's authorize
//! callback (including a cloud that times out). A refused ffmpeg exits non-zero and prints the
//! relay's status.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use glasscast::server::Server;
use relay::path::StreamPath;
use serde_json::json;

const SHORT: f64 = 1.0;

/// Publishes for a second; `Ok(())` when accepted, `Err(ffmpeg's stderr)` when refused.
async fn try_publish(server: &Server, path: &str) -> Result<(), String> {
    let (ok, err) = publish_output(&Source::normal(SHORT), &rtmp_url(server, path)).await;
    if ok { Ok(()) } else { Err(err) }
}

async fn refused(server: &Server, path: &str, why: &str) {
    let err = try_publish(server, path)
        .await
        .expect_err(&format!("{path} should be refused ({why})"));
    assert!(
        err.contains("publish refused"),
        "ffmpeg should print the relay's refusal for {why}:\n{err}"
    );
}

async fn create_key(server: &Server, body: serde_json::Value) -> (String, String) {
    let (s, v) = request_json("POST", &admin_url(server, "v1/keys"), &[], Some(body)).await;
    assert_eq!(s, 201, "{v}");
    (
        v["key"].as_str().unwrap().to_string(),
        v["keyId"].as_str().unwrap().to_string(),
    )
}

/// A server in `keys` mode with its own key file (in the returned directory).
async fn keys_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    let server = start(&[
        ("GLASSCAST_AUTH_MODE", "keys"),
        ("GLASSCAST_AUTH_KEYS_FILE", file.to_str().unwrap()),
    ])
    .await;
    (server, dir)
}

fn path(u: &str, s: &str) -> StreamPath {
    StreamPath {
        user_id: u.into(),
        stream_id: s.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_mode() {
    let (server, _dir) = keys_server().await;
    let u = "alice%40example.com";
    let (key, _) = create_key(
        &server,
        json!({"userId": "alice@example.com", "streamId": "m1", "alias": "alice-preview"}),
    )
    .await;
    let (any_key, _) = create_key(&server, json!({"userId": "alice@example.com"})).await;
    let (pinned_out, _) = create_key(
        &server,
        json!({"userId": "alice@example.com", "streamId": "m5", "allowIps": ["10.0.0.0/8"]}),
    )
    .await;
    let (pinned_in, _) = create_key(
        &server,
        json!({"userId": "alice@example.com", "streamId": "m6", "allowIps": ["127.0.0.1/32"]}),
    )
    .await;

    // Accepted: ?key=, the key as the stream name, the alias, a user-wide key, an allowed IP.
    let accepted = [
        format!("live/{u}/m1?key={key}"),
        format!("live/{key}"),
        "live/alice-preview".to_string(),
        format!("live/{u}/m4?key={any_key}"),
        format!("live/{u}/m6?key={pinned_in}"),
    ];
    for p in &accepted {
        try_publish(&server, p)
            .await
            .unwrap_or_else(|e| panic!("{p} should be accepted: {e}"));
    }
    assert!(
        server
            .registry
            .get(&path("alice@example.com", "m1"))
            .is_some()
    );
    assert!(
        server
            .registry
            .get(&path("alice@example.com", "m4"))
            .is_some()
    );

    // Refused: no key, an unknown key, another stream, another user, an address outside the
    // allowlist, a user-wide key as the bare name (no stream to publish to).
    refused(&server, &format!("live/{u}/m2"), "no key").await;
    refused(&server, &format!("live/{u}/m2?key=nope"), "unknown key").await;
    refused(&server, "live/not-a-key", "unknown bare name").await;
    refused(&server, &format!("live/{u}/m2?key={key}"), "other stream").await;
    refused(
        &server,
        &format!("live/bob%40example.com/m1?key={key}"),
        "other user",
    )
    .await;
    refused(
        &server,
        &format!("live/{u}/m5?key={pinned_out}"),
        "wrong IP",
    )
    .await;
    refused(&server, &format!("live/{any_key}"), "user-wide key as name").await;

    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    for (label, n) in [
        ("missing_credential", 1.0),
        ("unknown_key", 2.0),
        ("wrong_stream", 2.0),
        ("ip_not_allowed", 1.0),
        ("key_needs_path", 1.0),
    ] {
        assert_eq!(
            metric(
                &m,
                &format!("auth_decisions_total{{mode=\"keys\",result=\"{label}\"}}")
            ),
            n,
            "{label}:\n{m}"
        );
    }
    assert_eq!(
        metric(&m, "auth_decisions_total{mode=\"keys\",result=\"allow\"}"),
        5.0
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_keys_stop_working() {
    let (server, _dir) = keys_server().await;
    let u = "alice%40example.com";
    let (short, _) = create_key(
        &server,
        json!({"userId": "alice@example.com", "streamId": "e1", "ttlSeconds": 2}),
    )
    .await;
    let (key, key_id) = create_key(
        &server,
        json!({"userId": "alice@example.com", "streamId": "r1"}),
    )
    .await;
    try_publish(&server, &format!("live/{u}/r1?key={key}"))
        .await
        .expect("valid key");

    // Revoked: the publisher reconnecting within the grace period is authorized again, and
    // refused.
    assert!(
        server
            .registry
            .get(&path("alice@example.com", "r1"))
            .is_some(),
        "stream in its grace period"
    );
    let (s, _) = request(
        "DELETE",
        &admin_url(&server, &format!("v1/keys/{key_id}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204);
    refused(&server, &format!("live/{u}/r1?key={key}"), "revoked key").await;

    // Expired: wait for the clock (not a fixed sleep), then it is refused.
    let expires = std::time::SystemTime::now() + Duration::from_secs(3);
    eventually("the key's expiry", Duration::from_secs(10), || async {
        (std::time::SystemTime::now() > expires).then_some(())
    })
    .await;
    refused(&server, &format!("live/{u}/e1?key={short}"), "expired key").await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cli_and_file_store_reach_a_running_server() {
    let (server, dir) = keys_server().await;
    let file = dir.path().join("keys.json");
    let bin = env!("CARGO_BIN_EXE_glasscast");
    let out = tokio::process::Command::new(bin)
        .args([
            "keys",
            "create",
            "--user",
            "cli@example.com",
            "--stream",
            "c1",
            "--alias",
            "cli-alias",
        ])
        .env("GLASSCAST_AUTH_KEYS_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["key"].as_str().unwrap();
    assert_eq!(key.len(), 43);
    try_publish(&server, &format!("live/cli%40example.com/c1?key={key}"))
        .await
        .expect("a key made by the CLI works on the running server");
    let list = tokio::process::Command::new(bin)
        .args(["keys", "list"])
        .env("GLASSCAST_AUTH_KEYS_FILE", &file)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("cli@example.com") && !text.contains(key),
        "{text}"
    );
    let id = created["keyId"].as_str().unwrap();
    // A new alias replaces the old one.
    let alias = tokio::process::Command::new(bin)
        .args(["keys", "alias", id, "cli-renamed"])
        .env("GLASSCAST_AUTH_KEYS_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(
        alias.status.success(),
        "{}",
        String::from_utf8_lossy(&alias.stderr)
    );
    try_publish(&server, "live/cli-renamed")
        .await
        .expect("the new alias works");
    refused(&server, "live/cli-alias", "the replaced alias").await;
    let revoke = tokio::process::Command::new(bin)
        .args(["keys", "revoke", id])
        .env("GLASSCAST_AUTH_KEYS_FILE", &file)
        .output()
        .await
        .unwrap();
    assert!(revoke.status.success());
    refused(&server, "live/cli-renamed", "revoked through the CLI").await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mode() {
    const SECRET: &str = "a-token-secret-of-32-bytes-long!";
    let server = start(&[
        ("GLASSCAST_AUTH_MODE", "token"),
        ("GLASSCAST_AUTH_TOKEN_SECRET", SECRET),
    ])
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mint = |s: &str, exp: u64, ip: Option<&str>| {
        relay::auth::token::mint(
            SECRET.as_bytes(),
            &relay::auth::token::Claims {
                u: "alice@example.com".into(),
                s: s.into(),
                exp,
                ip: ip.map(String::from),
            },
        )
    };
    let u = "alice%40example.com";
    let good = mint("t1", now + 600, Some("127.0.0.1"));
    try_publish(&server, &format!("live/{u}/t1?token={good}"))
        .await
        .expect("minted token accepted");
    // Tampered: claims for another stream under the original signature.
    let (_, sig) = good.split_once('.').unwrap();
    let (other_claims, _) = mint("t2", now + 600, None)
        .split_once('.')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap();
    refused(
        &server,
        &format!("live/{u}/t2?token={other_claims}.{sig}"),
        "tampered",
    )
    .await;
    refused(
        &server,
        &format!("live/{u}/t1?token={}", mint("t1", now - 1, None)),
        "expired",
    )
    .await;
    refused(
        &server,
        &format!("live/{u}/t3?token={good}"),
        "wrong stream",
    )
    .await;
    refused(
        &server,
        &format!(
            "live/{u}/t4?token={}",
            mint("t4", now + 600, Some("10.1.1.1"))
        ),
        "wrong IP",
    )
    .await;
    refused(&server, &format!("live/{u}/t5"), "no token").await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_mode_follows_the_cloud_and_survives_its_timeouts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let cloud = fake_http(move |req| {
        let c = c.clone();
        async move {
            if req.path != "/api/rtmp-relay/authorize" {
                return (404, "{}".into());
            }
            c.fetch_add(1, Ordering::Relaxed);
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["userId"], "alice@example.com");
            assert_eq!(body["clientIp"], "127.0.0.1");
            match body["key"].as_str() {
                Some("good") => (200, "{}".into()),
                Some("bad") => (403, "{}".into()),
                Some("broken") => (500, "{}".into()),
                Some("slow") => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    (200, "{}".into())
                }
                _ => (401, "{}".into()),
            }
        }
    })
    .await;
    let server = start(&[
        ("GLASSCAST_AUTH_MODE", "callback"),
        ("GLASSCAST_CLOUD_URL", &cloud),
        ("GLASSCAST_AUTH_CALLBACK_TIMEOUT_MS", "500"),
    ])
    .await;
    let u = "alice%40example.com";
    // A publisher waiting on a cloud that does not answer must not hold up another one.
    let slow = {
        let url = rtmp_url(&server, &format!("live/{u}/slow?key=slow"));
        tokio::spawn(async move { publish_output(&Source::normal(SHORT), &url).await })
    };
    try_publish(&server, &format!("live/{u}/c1?key=good"))
        .await
        .expect("the cloud allows");
    let (ok, err) = slow.await.unwrap();
    assert!(!ok && err.contains("publish refused"), "{err}");
    refused(
        &server,
        &format!("live/{u}/c2?key=bad"),
        "the cloud refuses",
    )
    .await;
    refused(
        &server,
        &format!("live/{u}/c3?key=broken"),
        "the cloud fails",
    )
    .await;
    refused(&server, &format!("live/{u}/c4"), "no credential").await;
    // The allow is cached: reconnecting within the grace period asks the cloud no more.
    let before = calls.load(Ordering::Relaxed);
    try_publish(&server, &format!("live/{u}/c1?key=good"))
        .await
        .expect("cached allow");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "allow served from the cache"
    );
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    for (label, n) in [
        ("allow", 2.0),
        ("callback_denied", 2.0),
        ("callback_failed", 2.0),
    ] {
        assert_eq!(
            metric(
                &m,
                &format!("auth_decisions_total{{mode=\"callback\",result=\"{label}\"}}")
            ),
            n,
            "{label}:\n{m}"
        );
    }
    assert!(
        metric(
            &m,
            "cloud_requests_total{endpoint=\"authorize\",result=\"timeout\"}"
        ) >= 1.0,
        "{m}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
