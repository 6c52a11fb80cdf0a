//! The relay and a fake control plane that follows CONTRACTS.md: destinations served from the
//! cloud's list (changes applied live), hls-ready once with both URLs, signed stream-status
//! heartbeats, and no final state lost while the cloud fails for a while.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::cloud::{Call, FakeCloud};
use common::*;

const TOKEN: &str = "cloud-token-123";
const SECRET: &str = "hmac-secret-456";

fn hmac_hex(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let out = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_drives_destinations_and_hears_everything() {
    let (cloud, cloud_url) = FakeCloud::start().await;
    let dest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The destination for this test is a second relay: no extra tools needed.
    drop(dest);
    let target = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500")]).await;
    cloud.destinations.lock().unwrap().push((
        "Mirror".into(),
        format!("rtmp://{}/live/mirror/a", target.rtmp_addr),
    ));
    let server = start(&[
        ("GLASSCAST_CLOUD_URL", &cloud_url),
        ("GLASSCAST_CLOUD_TOKEN", TOKEN),
        ("GLASSCAST_CLOUD_HMAC_SECRET", SECRET),
        ("GLASSCAST_CLOUD_POLL_INTERVAL_MS", "300"),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "1000"),
        ("GLASSCAST_HTTP_PUBLIC_URL", "https://live.example.com"),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "500"),
    ])
    .await;
    let publisher = tokio::spawn({
        let url = rtmp_url(&server, "live/cloud%40example.com/s1");
        async move { publish(&Source::normal(10.0), &url).wait().await.unwrap() }
    });
    let mirror_a = relay::path::StreamPath {
        user_id: "mirror".into(),
        stream_id: "a".into(),
    };
    eventually(
        "the cloud's destination receives",
        Duration::from_secs(15),
        || async {
            target
                .origin
                .get(&mirror_a)
                .filter(|o| o.next_part_index() > 3)
                .map(|_| ())
        },
    )
    .await;
    // The cloud swaps the destination while live: b added, a removed.
    *cloud.destinations.lock().unwrap() = vec![(
        "Mirror B".into(),
        format!("rtmp://{}/live/mirror/b", target.rtmp_addr),
    )];
    let mirror_b = relay::path::StreamPath {
        user_id: "mirror".into(),
        stream_id: "b".into(),
    };
    eventually(
        "the new destination receives",
        Duration::from_secs(15),
        || async {
            target
                .origin
                .get(&mirror_b)
                .filter(|o| o.next_part_index() > 3)
                .map(|_| ())
        },
    )
    .await;
    assert!(
        publisher.await.unwrap().success(),
        "the publisher was never disturbed"
    );
    eventually("final stopped status", Duration::from_secs(15), || async {
        cloud
            .posts("/api/rtmp-relay/stream-status")
            .last()
            .filter(|(_, v)| v["status"] == "stopped")
            .map(|_| ())
    })
    .await;

    // hls-ready exactly once, both URLs absolute from the public URL.
    let ready = cloud.posts("/api/rtmp-relay/hls-ready");
    assert_eq!(ready.len(), 1, "{ready:?}");
    let v = &ready[0].1;
    assert_eq!(v["userId"], "cloud@example.com");
    assert_eq!(v["streamId"], "s1");
    assert_eq!(
        v["hlsUrl"],
        "https://live.example.com/live/cloud%40example.com/s1/index.m3u8"
    );
    assert_eq!(
        v["dashUrl"],
        "https://live.example.com/live/cloud%40example.com/s1/index.mpd"
    );

    // Heartbeats: active, plausible ingest bitrate, outputs with masked URLs.
    let statuses = cloud.posts("/api/rtmp-relay/stream-status");
    let active: Vec<&serde_json::Value> = statuses
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["status"] == "active")
        .collect();
    assert!(active.len() >= 5, "only {} active reports", active.len());
    let rates: Vec<u64> = active
        .iter()
        .filter_map(|v| v["bitrate"].as_u64())
        .filter(|b| *b > 0)
        .collect();
    assert!(!rates.is_empty());
    let median = {
        let mut r = rates.clone();
        r.sort();
        r[r.len() / 2]
    };
    assert!(
        (300_000..5_000_000).contains(&median),
        "ingest bitrate {median} b/s"
    );
    let outputs: Vec<&serde_json::Value> = active
        .iter()
        .flat_map(|v| v["outputs"].as_array().unwrap())
        .collect();
    assert!(
        outputs
            .iter()
            .any(|o| o["name"] == "Mirror" && o["status"] == "active")
    );
    assert!(
        outputs
            .iter()
            .any(|o| o["name"] == "Mirror B" && o["status"] == "active")
    );
    assert!(outputs.iter().all(|o| {
        let u = o["url"].as_str().unwrap();
        u.ends_with("/***") && !u.contains("/a/") && !u.ends_with("/a") && !u.ends_with("/b")
    }));

    // Every call carried the token, every body its signature, and no stream key leaked.
    for c in cloud.calls.lock().unwrap().iter() {
        assert_eq!(
            c.auth.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{} {}",
            c.method,
            c.path
        );
        if c.method == "POST" {
            assert_eq!(c.signature.as_deref(), Some(hmac_hex(&c.body).as_str()));
            let text = String::from_utf8_lossy(&c.body);
            assert!(
                !text.contains("mirror/a") && !text.contains("mirror/b"),
                "key leaked: {text}"
            );
        }
    }
    let gets: Vec<String> = cloud
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.path.clone())
        .collect();
    assert!(
        gets.iter()
            .all(|p| p == "/api/rtmp-relay/restream-destinations/cloud%40example.com/s1"),
        "{gets:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
    target.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cloud_loses_no_final_state() {
    let (cloud, cloud_url) = FakeCloud::start().await;
    cloud.fail_posts.store(true, Ordering::Relaxed);
    let server = start(&[
        ("GLASSCAST_CLOUD_URL", &cloud_url),
        ("GLASSCAST_CLOUD_HEARTBEAT_MS", "300"),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "300"),
    ])
    .await;
    let base = http_url(&server, "live/outage/s");
    assert!(
        publish(&Source::normal(3.0), &rtmp_url(&server, "live/outage/s"))
            .wait()
            .await
            .unwrap()
            .success()
    );
    // Media never waited for the cloud: the stream played and ended normally.
    wait_ended(&base, Duration::from_secs(10)).await;
    let failed = cloud.posts("/api/rtmp-relay/hls-ready").len()
        + cloud.posts("/api/rtmp-relay/stream-status").len();
    assert!(failed >= 2, "the relay kept trying ({failed} attempts)");
    cloud.fail_posts.store(false, Ordering::Relaxed);
    let n_before = cloud.calls.lock().unwrap().len();
    eventually(
        "delivery after the outage",
        Duration::from_secs(20),
        || async {
            let calls = cloud.calls.lock().unwrap();
            let after: Vec<&Call> = calls[n_before..]
                .iter()
                .filter(|c| c.method == "POST")
                .collect();
            let ready = after.iter().any(|c| c.path == "/api/rtmp-relay/hls-ready");
            let stopped = after.iter().any(|c| {
                c.path == "/api/rtmp-relay/stream-status"
                    && serde_json::from_slice::<serde_json::Value>(&c.body).unwrap()["status"]
                        == "stopped"
            });
            (ready && stopped).then_some(())
        },
    )
    .await;
    // Latest state wins: once recovered, the backlog is not replayed report by report.
    let after = cloud.calls.lock().unwrap()[n_before..]
        .iter()
        .filter(|c| c.method == "POST")
        .count();
    assert!(after <= 3, "{after} reports replayed after the outage");
    server.shutdown(Duration::from_secs(5)).await;
}
