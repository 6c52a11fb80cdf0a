//! The Cloudflare Stream client against a fake that follows CONTRACTS.md: live inputs created
//! (recording automatic, tagged as ours), read in both status shapes, deleted; outputs with url
//! and key split; playback URLs only once live; 429 honoured after `Retry-After`; 500 retried
//! then surfaced; a bad token named as Cloudflare's; orphan cleanup touching only our idle,
//! old inputs.

mod common;

use std::time::{Duration, Instant};

use common::cloudflare::FakeCloudflare;
use glasscast::managed::cloudflare::{Cloudflare, CloudflareConfig};
use glasscast::managed::retry::RetryPolicy;
use glasscast::managed::{LiveState, Platform, PlatformError};
use relay::path::StreamPath;
use serde_json::json;

const TOKEN: &str = "cf-token-SECRET";

fn client(fake: &FakeCloudflare, token: &str) -> Cloudflare {
    Cloudflare::new(CloudflareConfig {
        api_url: fake.url.clone(),
        api_token: token.into(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            ..Default::default()
        },
        tag: "glasscast-test".into(),
    })
    .unwrap()
}

fn path() -> StreamPath {
    StreamPath {
        user_id: "alice@example.com".into(),
        stream_id: "m1".into(),
    }
}

#[tokio::test]
async fn live_input_lifecycle_and_outputs() {
    let fake = FakeCloudflare::start(TOKEN, "rtmps://127.0.0.1:4443/live/").await;
    let cf = client(&fake, TOKEN);
    cf.health().await.unwrap();
    let s = cf.create(&path()).await.unwrap();
    let input = &fake.inputs()[0];
    assert_eq!(input.meta["userId"], "alice@example.com");
    assert_eq!(input.meta["streamId"], "m1");
    assert_eq!(input.meta["glasscast"], "glasscast-test");
    assert!(
        s.ingest_url.starts_with("rtmps://127.0.0.1:4443/live/key-"),
        "{}",
        s.ingest_url
    );
    assert!(
        !format!("{s:?}").contains("key-"),
        "the ingest key is not printed"
    );

    // Status in both shapes; playback only once the input's video is live.
    assert_eq!(cf.status(&s.id).await.unwrap().state, LiveState::Idle);
    fake.set_connected(&s.id, true);
    assert_eq!(cf.status(&s.id).await.unwrap().state, LiveState::Connected);
    fake.status_as_object(true);
    assert_eq!(cf.status(&s.id).await.unwrap().state, LiveState::Connected);
    fake.set_connected(&s.id, false);
    assert_eq!(cf.status(&s.id).await.unwrap().state, LiveState::Idle);
    assert_eq!(cf.playback(&s.id).await.unwrap(), None);
    fake.set_live(&s.id, true);
    let p = cf
        .playback(&s.id)
        .await
        .unwrap()
        .expect("playback once live");
    assert!(p.hls.ends_with("/manifest/video.m3u8"), "{p:?}");
    assert!(p.dash.unwrap().ends_with("/manifest/video.mpd"));

    // Outputs: url and streamKey sent apart; enable/disable; delete.
    let o = cf
        .add_output(&s.id, "rtmp://a.rtmp.youtube.com/live2/yt-KEY-123")
        .await
        .unwrap();
    assert_eq!(o.url, "rtmp://a.rtmp.youtube.com/live2");
    let stored = &fake.inputs()[0].outputs[0];
    assert_eq!(stored["url"], "rtmp://a.rtmp.youtube.com/live2");
    assert_eq!(stored["streamKey"], "yt-KEY-123");
    cf.set_output_enabled(&s.id, &o.id, false).await.unwrap();
    assert!(!cf.outputs(&s.id).await.unwrap()[0].enabled);
    cf.remove_output(&s.id, &o.id).await.unwrap();
    assert!(cf.outputs(&s.id).await.unwrap().is_empty());
    let bad = cf
        .add_output(&s.id, "https://x/app/SECRET")
        .await
        .unwrap_err();
    assert!(!bad.to_string().contains("SECRET"), "{bad}");

    cf.end(&s.id).await.unwrap();
    assert!(fake.inputs().is_empty());
    cf.end(&s.id).await.expect("ending twice is fine");
    assert!(matches!(
        cf.status(&s.id).await,
        Err(PlatformError::NotFound { .. })
    ));
}

#[tokio::test]
async fn rate_limits_failures_and_credentials() {
    let fake = FakeCloudflare::start(TOKEN, "rtmps://127.0.0.1:4443/live/").await;
    let cf = client(&fake, TOKEN);
    // 429 with Retry-After: 1 -> waited for, then answered.
    fake.rate_limit(1);
    let t0 = Instant::now();
    cf.health().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    // Two 500s then success: retried within the three attempts.
    fake.fail(2);
    let before = fake.calls().len();
    cf.create(&path()).await.unwrap();
    assert_eq!(fake.calls().len() - before, 3);
    // Three 500s: surfaced after the third attempt, naming the platform.
    fake.fail(3);
    let before = fake.calls().len();
    let e = cf.create(&path()).await.unwrap_err();
    assert_eq!(fake.calls().len() - before, 3);
    assert!(matches!(e, PlatformError::Unavailable { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("Cloudflare Stream is unavailable"),
        "{e}"
    );
    // A rejected token: not retried, a clear error with Cloudflare's message, no token.
    let wrong = client(&fake, "wrong-token-SECRET");
    let before = fake.calls().len();
    let e = wrong.health().await.unwrap_err();
    assert_eq!(fake.calls().len() - before, 1);
    assert_eq!(
        e.to_string(),
        "Cloudflare Stream rejected the credentials: 10000: Authentication error"
    );
    assert!(!e.to_string().contains("SECRET"));
}

#[tokio::test]
async fn orphan_cleanup_deletes_only_our_idle_old_inputs() {
    let fake = FakeCloudflare::start(TOKEN, "rtmps://127.0.0.1:4443/live/").await;
    let cf = client(&fake, TOKEN);
    let old = "2026-01-01T00:00:00Z";
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let ours = json!({"glasscast": "glasscast-test"});
    let orphan = fake.insert(ours.clone(), old, false);
    let live = fake.insert(ours.clone(), old, true);
    let young = fake.insert(ours, &now, false);
    let other_relay = fake.insert(json!({"glasscast": "another-node"}), old, false);
    let not_ours = fake.insert(json!({"name": "made by hand"}), old, false);
    let deleted = cf.cleanup_orphans(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(deleted, vec![orphan]);
    let left: Vec<String> = fake.inputs().into_iter().map(|i| i.uid).collect();
    for uid in [live, young, other_relay, not_ours] {
        assert!(left.contains(&uid));
    }
}
