//! The AWS IVS client against a fake that checks SigV4 signatures: channel created (tagged as
//! ours, LOW latency), `ChannelNotBroadcasting` read as "not live", viewers reported when live,
//! playback once live, deleted (twice is fine); 500 retried; wrong credentials named as AWS
//! IVS's; no simulcast outputs; orphans by tag and age.

mod common;

use std::time::Duration;

use common::ivs::FakeIvs;
use glasscast::managed::ivs::{Ivs, IvsConfig};
use glasscast::managed::retry::RetryPolicy;
use glasscast::managed::{LiveState, Platform, PlatformError};
use relay::path::StreamPath;
use serde_json::json;

const KEY_ID: &str = "AKIDGLASSCASTTEST";
const SECRET: &str = "ivs-secret-SECRET";

fn client(fake: &FakeIvs, key_id: &str, secret: &str) -> Ivs {
    Ivs::new(IvsConfig {
        endpoint: fake.url.clone(),
        region: "us-west-2".into(),
        access_key_id: key_id.into(),
        secret_access_key: secret.into(),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            base: Duration::from_millis(50),
            ..Default::default()
        },
        latency_mode: "LOW".into(),
        ingest_port: 443,
        tag: "glasscast-test".into(),
    })
    .unwrap()
}

#[tokio::test]
async fn channel_lifecycle() {
    let fake = FakeIvs::start(KEY_ID, SECRET, "us-west-2", "127.0.0.1").await;
    let ivs = client(&fake, KEY_ID, SECRET);
    ivs.health().await.unwrap();
    let path = StreamPath {
        user_id: "alice@example.com".into(),
        stream_id: "m1".into(),
    };
    let s = ivs.create(&path).await.unwrap();
    assert!(s.id.starts_with("arn:aws:ivs:us-west-2:"), "{}", s.id);
    assert!(
        s.ingest_url
            .starts_with("rtmps://127.0.0.1:443/app/sk_us-west-2_"),
        "{}",
        s.ingest_url
    );
    let ch = &fake.channels()[0];
    assert_eq!(ch.tags["glasscast"], "glasscast-test");
    assert_eq!(ch.tags["userId"], "alice@example.com");
    assert!(
        ch.name.starts_with("glasscast-alice_example_com-m1"),
        "{}",
        ch.name
    );

    // Not broadcasting is "idle", not an error; live reports viewers and playback.
    let st = ivs.status(&s.id).await.unwrap();
    assert_eq!((st.state, st.viewers), (LiveState::Idle, Some(0)));
    assert_eq!(ivs.playback(&s.id).await.unwrap(), None);
    fake.set_live(&s.id, true, 42);
    let st = ivs.status(&s.id).await.unwrap();
    assert_eq!((st.state, st.viewers), (LiveState::Connected, Some(42)));
    let p = ivs.playback(&s.id).await.unwrap().unwrap();
    assert!(p.hls.ends_with(".m3u8"), "{p:?}");

    assert!(matches!(
        ivs.add_output(&s.id, "rtmp://a.rtmp.youtube.com/live2/KEY")
            .await,
        Err(PlatformError::Unsupported { .. })
    ));
    // A 500 is retried.
    fake.fail(1);
    ivs.health().await.unwrap();

    ivs.end(&s.id).await.unwrap();
    assert!(fake.channels().is_empty());
    ivs.end(&s.id).await.expect("ending twice is fine");
}

#[tokio::test]
async fn credentials_and_orphans() {
    let fake = FakeIvs::start(KEY_ID, SECRET, "us-west-2", "127.0.0.1").await;
    for (key_id, secret, kind) in [
        ("AKIDWRONG", SECRET, "UnrecognizedClientException"),
        (KEY_ID, "wrong-SECRET", "InvalidSignatureException"),
    ] {
        let e = client(&fake, key_id, secret).health().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("AWS IVS rejected the credentials"),
            "{text}"
        );
        assert!(text.contains(kind) && !text.contains("SECRET"), "{text}");
    }
    let ivs = client(&fake, KEY_ID, SECRET);
    let long_ago = "1700000000";
    let orphan = fake.insert(
        json!({"glasscast": "glasscast-test", "glasscastCreated": long_ago}),
        false,
    );
    let live = fake.insert(
        json!({"glasscast": "glasscast-test", "glasscastCreated": long_ago}),
        true,
    );
    let young = fake.insert(
        json!({"glasscast": "glasscast-test", "glasscastCreated": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string()}),
        false,
    );
    let other = fake.insert(
        json!({"glasscast": "another-node", "glasscastCreated": long_ago}),
        false,
    );
    let untagged = fake.insert(json!({}), false);
    let deleted = ivs
        .cleanup_orphans(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(deleted, vec![orphan]);
    let left: Vec<String> = fake.channels().into_iter().map(|c| c.arn).collect();
    for arn in [live, young, other, untagged] {
        assert!(left.contains(&arn));
    }
}
