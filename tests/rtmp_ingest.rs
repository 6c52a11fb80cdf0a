//! Legal RTMP that real encoders send and that must publish (issue 10), played by a scripted
//! client byte for byte: chunks of audio and video interleaved mid-message, chunk sizes 1 and
//! 65536, extended timestamps (with type 3 continuations), every AMF0 type in `connect` and in
//! metadata, AMF3-switched `@setDataFrame`, `onMetaData` without `@setDataFrame`, `FCPublish`
//! before `createStream` without `releaseStream`, and a first video frame that is not a
//! keyframe. Each must give a playlist with every frame of the fixture.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::rtmp_script::*;
use common::*;
use relay::rtmp::amf0::Value;

/// Plays `script` to a fresh server as `live/script/{name}` and checks the HLS it makes.
async fn publishes(script: RtmpScript, name: &str, video: u64, audio: u64) {
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "300")]).await;
    let replies = script.play(server.rtmp_addr).await;
    assert!(
        replies.len() > 3073,
        "the server answered the handshake and commands"
    );
    let base = http_url(&server, &format!("live/script/{name}"));
    wait_ended(&base, Duration::from_secs(20)).await;
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{name}: {errors}");
    within_2pct(&format!("{name}: video frames"), v, video);
    within_2pct(&format!("{name}: audio frames"), a, audio);
    server.shutdown(Duration::from_secs(5)).await;
}

fn ffmpeg_like(name: &str) -> RtmpScript {
    let mut s = RtmpScript::new();
    s.ffmpeg_like("live", &format!("script/{name}"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_chunks_interleaved_mid_message() {
    let mut s = ffmpeg_like("interleaved");
    s.media_interleaved(&fixture_media(0));
    publishes(s, "interleaved", 120, 174).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_one() {
    let mut s = RtmpScript::new();
    s.set_chunk_size(1);
    s.ffmpeg_like("live", "script/c1");
    s.media_interleaved(&fixture_media(0));
    publishes(s, "c1", 120, 174).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_size_65536() {
    let mut s = RtmpScript::new();
    s.set_chunk_size(65536);
    s.ffmpeg_like("live", "script/c65536");
    s.media(&fixture_media(0));
    publishes(s, "c65536", 120, 174).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_timestamps_across_the_24_bit_boundary() {
    // Timestamps start 1 s before 0xFFFFFF and cross it; continuations repeat the field.
    let mut s = ffmpeg_like("extended");
    s.media_interleaved(&fixture_media(0xff_ffff - 1000));
    publishes(s, "extended", 120, 174).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_amf0_type_amf3_metadata_and_an_obs_like_command_order() {
    let exotic = vec![
        ("date".to_string(), Value::Date { ms: 1.7e12, tz: 0 }),
        ("long".into(), Value::LongString("y".repeat(70_000))),
        (
            "strict".into(),
            Value::StrictArray(vec![Value::Number(1.0), Value::Null, Value::Undefined]),
        ),
        (
            "typed".into(),
            Value::TypedObject {
                class: "flash.Whatever".into(),
                properties: vec![("a".into(), Value::Boolean(true))],
            },
        ),
        (
            "ecma".into(),
            Value::EcmaArray(vec![("b".into(), Value::String("c".into()))]),
        ),
        ("xml".into(), Value::XmlDocument("<x/>".into())),
    ];
    let mut s = RtmpScript::new();
    s.set_chunk_size(4096);
    s.connect("live", exotic.clone());
    // OBS: FCPublish before createStream, never releaseStream.
    s.call("FCPublish", 2.0, Some(Value::String("script/amf".into())));
    s.create_stream();
    s.publish("script/amf");
    s.metadata(exotic);
    // onMetaData without @setDataFrame, and an AMF3-switched @setDataFrame.
    let plain = relay::rtmp::amf0::encode_all(&[
        Value::String("onMetaData".into()),
        Value::Object(vec![("width".into(), Value::Number(1280.0))]),
    ]);
    s.message(4, DATA_AMF0, 1, 0, Bytes::from(plain));
    let mut amf3 = vec![0u8];
    amf3.extend(relay::rtmp::amf0::encode_all(&[
        Value::String("@setDataFrame".into()),
        Value::String("onMetaData".into()),
    ]));
    amf3.extend([0x11, 0x0a, 0x0b, 0x01, 0x01]);
    s.message(4, DATA_AMF3, 1, 0, Bytes::from(amf3));
    s.media(&fixture_media(0));
    publishes(s, "amf", 120, 174).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_video_frame_that_is_not_a_keyframe() {
    let mut media = fixture_media(0);
    // A copy of the first inter frame, sent before the first keyframe (after the sequence
    // headers): dropped, the rest plays.
    let inter = media
        .iter()
        .find(|(t, _, b)| *t == VIDEO && b.first() == Some(&0x27))
        .cloned()
        .expect("an inter frame");
    let first_key = media
        .iter()
        .position(|(t, _, b)| *t == VIDEO && b.first() == Some(&0x17) && b.get(1) == Some(&1))
        .expect("a keyframe");
    media.insert(first_key, (VIDEO, 0, inter.2));
    let mut s = ffmpeg_like("interfirst");
    s.media(&media);
    publishes(s, "interfirst", 120, 174).await;
}
