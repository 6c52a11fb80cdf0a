//! Stream keys in a real Redis shared by two relays: a key made through one is accepted by the
//! other, the seed's layout (`stream:key:<hash>`, `stream:alias:<name>`) with Redis TTLs,
//! revocation reaches both, expired and wrong-address keys are refused, and a Redis that dies
//! refuses new publishes while a live stream keeps producing parts, and once it is back the
//! relays reconnect on their own.

mod common;

use std::time::Duration;

use common::*;
use glasscast::server::Server;
use serde_json::json;

async fn relay(redis: &RedisServer) -> Server {
    start(&[
        ("GLASSCAST_AUTH_MODE", "keys"),
        ("GLASSCAST_AUTH_REDIS_URL", &redis.url()),
    ])
    .await
}

async fn publishes(server: &Server, path: &str) -> Result<(), String> {
    let (ok, err) = publish_output(&Source::normal(1.0), &rtmp_url(server, path)).await;
    if ok { Ok(()) } else { Err(err) }
}

async fn parts(server: &Server) -> f64 {
    let (_, m) = get_text(&admin_url(server, "metrics")).await;
    metric(&m, "hls_parts_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_keys_in_redis() {
    let mut redis = RedisServer::start().await;
    let a = relay(&redis).await;
    let b = relay(&redis).await;
    let (s, k) = request_json(
        "POST",
        &admin_url(&a, "v1/keys"),
        &[],
        Some(json!({"userId": "alice@example.com", "streamId": "m1", "alias": "alice-cam", "ttlSeconds": 3600})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let (key, id) = (k["key"].as_str().unwrap(), k["keyId"].as_str().unwrap());

    // The seed's layout, with Redis TTLs, and no key in Redis.
    let record = redis
        .cmd(&["GET", &format!("stream:key:{id}")])
        .await
        .unwrap();
    assert!(
        record.contains("alice@example.com") && !record.contains(key),
        "{record}"
    );
    let ttl: i64 = redis
        .cmd(&["TTL", &format!("stream:key:{id}")])
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    assert_eq!(
        redis.cmd(&["GET", "stream:alias:alice-cam"]).await.unwrap(),
        id
    );

    // Made through A, accepted by B (query form, name form, alias); listed by both.
    publishes(&b, &format!("live/alice%40example.com/m1?key={key}"))
        .await
        .expect("B accepts A's key");
    publishes(&b, &format!("live/{key}"))
        .await
        .expect("bare key on B");
    publishes(&a, "live/alice-cam").await.expect("alias on A");
    let (_, listed) = request_json("GET", &admin_url(&b, "v1/keys"), &[], None).await;
    assert_eq!(listed["keys"][0]["keyId"], id);

    // Wrong address and expiry, enforced by the metadata and by Redis' TTL.
    let (_, pinned) = request_json(
        "POST",
        &admin_url(&b, "v1/keys"),
        &[],
        Some(json!({"userId": "alice@example.com", "streamId": "m2", "allowIps": ["10.0.0.0/8"]})),
    )
    .await;
    let err = publishes(
        &a,
        &format!(
            "live/alice%40example.com/m2?key={}",
            pinned["key"].as_str().unwrap()
        ),
    )
    .await
    .expect_err("wrong address");
    assert!(err.contains("publish refused"), "{err}");
    let (_, short) = request_json(
        "POST",
        &admin_url(&a, "v1/keys"),
        &[],
        Some(json!({"userId": "alice@example.com", "streamId": "m3", "ttlSeconds": 1})),
    )
    .await;
    let short_id = short["keyId"].as_str().unwrap().to_string();
    eventually(
        "Redis expires the short key",
        Duration::from_secs(10),
        || async {
            (redis
                .cmd(&["EXISTS", &format!("stream:key:{short_id}")])
                .await
                .as_deref()
                == Some("0"))
            .then_some(())
        },
    )
    .await;
    publishes(
        &b,
        &format!(
            "live/alice%40example.com/m3?key={}",
            short["key"].as_str().unwrap()
        ),
    )
    .await
    .expect_err("expired");

    // Revoked through B: refused on both, alias gone too.
    let (s, _) = request(
        "DELETE",
        &admin_url(&b, &format!("v1/keys/{id}")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        redis
            .cmd(&["EXISTS", "stream:alias:alice-cam"])
            .await
            .unwrap(),
        "0"
    );
    for server in [&a, &b] {
        publishes(server, &format!("live/alice%40example.com/m1?key={key}"))
            .await
            .expect_err("revoked");
    }

    // Redis dies while A has a live stream: the stream keeps producing parts, new publishes
    // are refused with a reason, and the API says the store is unavailable.
    let (_, live_key) = request_json(
        "POST",
        &admin_url(&a, "v1/keys"),
        &[],
        Some(json!({"userId": "alice@example.com", "streamId": "live"})),
    )
    .await;
    let mut live = publish(
        &Source::normal(20.0),
        &rtmp_url(
            &a,
            &format!(
                "live/alice%40example.com/live?key={}",
                live_key["key"].as_str().unwrap()
            ),
        ),
    );
    eventually("live stream producing", Duration::from_secs(10), || async {
        (parts(&a).await > 10.0).then_some(())
    })
    .await;
    let (_, other_key) = request_json(
        "POST",
        &admin_url(&a, "v1/keys"),
        &[],
        Some(json!({"userId": "alice@example.com", "streamId": "other"})),
    )
    .await;
    redis.kill();
    let before = parts(&a).await;
    let err = publishes(
        &a,
        &format!(
            "live/alice%40example.com/other?key={}",
            other_key["key"].as_str().unwrap()
        ),
    )
    .await
    .expect_err("Redis down refuses");
    assert!(err.contains("key store is unavailable"), "{err}");
    eventually(
        "parts keep coming without Redis",
        Duration::from_secs(10),
        || async { (parts(&a).await >= before + 10.0).then_some(()) },
    )
    .await;
    let (s, v) = request_json("GET", &admin_url(&a, "v1/keys"), &[], None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (503, Some("STORE_UNAVAILABLE")),
        "{v}"
    );
    let (_, m) = get_text(&admin_url(&a, "metrics")).await;
    assert_eq!(
        metric(
            &m,
            "auth_decisions_total{mode=\"keys\",result=\"store_unavailable\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        live.try_wait().unwrap().is_none(),
        "the live publisher was never disturbed"
    );
    let _ = live.kill().await;
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}
