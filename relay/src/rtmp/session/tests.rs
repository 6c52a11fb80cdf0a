use super::*;
use crate::rtmp::handshake::PACKET;
use crate::rtmp::script::RtmpScript;
use proptest::prelude::*;

fn cmd(values: &[Value]) -> Bytes {
    Bytes::from(amf0::encode_all(values))
}

/// Metadata, then five video and five audio messages.
fn media(c: &mut RtmpScript) {
    let meta = cmd(&[
        Value::String("@setDataFrame".into()),
        Value::String("onMetaData".into()),
        Value::EcmaArray(vec![
            ("width".into(), Value::Number(1280.0)),
            ("creationdate".into(), Value::Date { ms: 1.7e12, tz: 0 }),
            ("encoder".into(), Value::LongString("x".repeat(10))),
        ]),
    ]);
    c.message(4, ty::DATA_AMF0, 1, 0, meta);
    for i in 0..5u32 {
        let video: Vec<u8> = (0..700).map(|b| (b + i) as u8).collect();
        c.message(6, ty::VIDEO, 1, i * 33, Bytes::from(video));
        c.message(4, ty::AUDIO, 1, i * 23, Bytes::from(vec![0xaf, 1, i as u8]));
    }
}

/// Runs `input` through a session in pieces of `cuts`, accepting the first publish; returns
/// the events and everything the server sent.
fn run(input: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<u8>) {
    let mut s = ServerSession::new(SessionConfig::default());
    let (mut events, mut sent) = (Vec::new(), Vec::new());
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = cuts
            .get(i % cuts.len().max(1))
            .copied()
            .unwrap_or(input.len())
            .max(1);
        i += 1;
        let end = (pos + n).min(input.len());
        s.handle_input(&input[pos..end]).unwrap();
        pos = end;
        while let Some(e) = s.poll_event() {
            if let Event::PublishRequested { request_id, .. } = &e {
                s.accept_publish(*request_id).unwrap();
            }
            events.push(e);
        }
        sent.extend(s.poll_transmit());
    }
    (events, sent)
}

/// The server's replies as AMF0 commands (after S0-S2).
fn replies(sent: &[u8]) -> Vec<Vec<Value>> {
    let mut r = ChunkReader::new(ChunkLimits::default());
    r.push(&sent[1 + 2 * PACKET..]);
    let mut out = Vec::new();
    while let Some(m) = r.next_message().unwrap() {
        match m.type_id {
            ty::SET_CHUNK_SIZE => r
                .set_chunk_size(u32::from_be_bytes(m.payload[..4].try_into().unwrap()))
                .unwrap(),
            ty::COMMAND_AMF0 => out.push(amf0::decode_all(&m.payload).unwrap()),
            _ => {}
        }
    }
    out
}

fn ffmpeg_like() -> Vec<u8> {
    let mut c = RtmpScript::new();
    c.set_chunk_size(4096);
    c.connect("live", Vec::new());
    c.call("releaseStream", 2.0, Some(Value::String("u/s".into())));
    c.call("FCPublish", 3.0, Some(Value::String("u/s".into())));
    c.call("createStream", 4.0, None);
    c.publish("u/s");
    media(&mut c);
    c.bytes
}

#[test]
fn an_ffmpeg_like_publisher_gets_the_replies_it_waits_for() {
    let (events, sent) = run(&ffmpeg_like(), &[usize::MAX]);
    assert_eq!(events[0], Event::Connected { app: "live".into() });
    assert_eq!(
        events[1],
        Event::PublishRequested {
            request_id: 1,
            app: "live".into(),
            name: "u/s".into()
        }
    );
    assert!(matches!(&events[2], Event::Metadata(v) if v[0].as_str() == Some("onMetaData")));
    let videos = events
        .iter()
        .filter(|e| matches!(e, Event::Video { .. }))
        .count();
    let audios = events
        .iter()
        .filter(|e| matches!(e, Event::Audio { .. }))
        .count();
    assert_eq!((videos, audios), (5, 5));
    let r = replies(&sent);
    let code = |v: &Vec<Value>| {
        v.iter()
            .find_map(|x| x.get("code").and_then(Value::as_str).map(String::from))
    };
    assert_eq!(r[0][0].as_str(), Some("_result"));
    assert_eq!(
        code(&r[0]).as_deref(),
        Some("NetConnection.Connect.Success")
    );
    // releaseStream and FCPublish are answered (onFCPublish, _result), createStream gives 1.
    assert!(r.iter().any(|v| v[0].as_str() == Some("onFCPublish")));
    let create = r
        .iter()
        .find(|v| v[0].as_str() == Some("_result") && v[1].as_number() == Some(4.0))
        .expect("createStream answered");
    assert_eq!(create[3].as_number(), Some(1.0));
    assert_eq!(
        code(r.last().unwrap()).as_deref(),
        Some("NetStream.Publish.Start")
    );
}

proptest! {
    /// However the bytes arrive, the same events in the same order.
    #[test]
    fn any_split_gives_the_same_events(cuts in proptest::collection::vec(1usize..3000, 1..40)) {
        let input = ffmpeg_like();
        let (want, _) = run(&input, &[usize::MAX]);
        let (got, _) = run(&input, &cuts);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut s = ServerSession::new(SessionConfig::default());
        let mut input = ffmpeg_like()[..1 + 2 * PACKET].to_vec();
        input.extend(data);
        let _ = s.handle_input(&input);
        while s.poll_event().is_some() {}
    }
}

#[test]
fn obs_and_librtmp_like_flows_publish() {
    // OBS: FCPublish before createStream, no releaseStream; librtmp: chunk size 128 and audio
    // interleaved into video chunks.
    let mut c = RtmpScript::new();
    c.connect("live", Vec::new());
    c.call("FCPublish", 2.0, Some(Value::String("s".into())));
    c.call("createStream", 3.0, None);
    c.publish("s");
    let video: Vec<u8> = (0..300).map(|b| b as u8).collect();
    // Hand-interleave: video chunk, audio message, video chunks.
    let mut v = Vec::new();
    ChunkWriter::new(c.chunk_size()).write(
        &mut v,
        &Message {
            csid: 6,
            type_id: ty::VIDEO,
            stream_id: 1,
            timestamp: 0,
            payload: Bytes::from(video.clone()),
        },
    );
    let mut a = Vec::new();
    ChunkWriter::new(c.chunk_size()).write(
        &mut a,
        &Message {
            csid: 4,
            type_id: ty::AUDIO,
            stream_id: 1,
            timestamp: 0,
            payload: Bytes::from_static(&[0xaf, 1, 9]),
        },
    );
    // The first video chunk is the 12-byte header and 128 bytes.
    c.bytes.extend_from_slice(&v[..12 + 128]);
    c.bytes.extend_from_slice(&a);
    c.bytes.extend_from_slice(&v[12 + 128..]);
    let (events, _) = run(&c.bytes, &[usize::MAX]);
    assert!(matches!(&events[1], Event::PublishRequested { name, .. } if name == "s"));
    assert!(matches!(&events[2], Event::Audio { .. }));
    assert!(matches!(&events[3], Event::Video { data, .. } if data[..] == video[..]));
}

#[test]
fn media_before_publish_is_dropped_and_pings_are_answered() {
    let mut c = RtmpScript::new();
    c.connect("live", Vec::new());
    c.message(6, ty::VIDEO, 1, 0, Bytes::from_static(&[0x17, 1, 0, 0, 0]));
    // PingRequest with timestamp 0x01020304.
    c.message(
        2,
        ty::USER_CONTROL,
        0,
        0,
        Bytes::from_static(&[0, 6, 1, 2, 3, 4]),
    );
    let mut s = ServerSession::new(SessionConfig::default());
    s.handle_input(&c.bytes).unwrap();
    assert_eq!(s.early_media, 1);
    let sent = s.poll_transmit();
    let mut r = ChunkReader::new(ChunkLimits::default());
    r.push(&sent[1 + 2 * PACKET..]);
    let mut pong = false;
    while let Some(m) = r.next_message().unwrap() {
        if m.type_id == ty::SET_CHUNK_SIZE {
            r.set_chunk_size(4096).unwrap();
        }
        pong |= m.type_id == ty::USER_CONTROL && m.payload[..] == [0, 7, 1, 2, 3, 4];
    }
    assert!(pong);
}

#[test]
fn acknowledgements_are_cumulative() {
    let mut c = RtmpScript::new();
    c.connect("live", Vec::new());
    c.message(
        2,
        ty::WINDOW_ACK_SIZE,
        0,
        0,
        Bytes::copy_from_slice(&5000u32.to_be_bytes()),
    );
    let mut s = ServerSession::new(SessionConfig::default());
    s.handle_input(&c.bytes).unwrap();
    s.poll_transmit();
    let mut total = c.bytes.len() as u64;
    let mut acks = Vec::new();
    for _ in 0..10 {
        // Same chunk size as the session's reader (128): write with 128.
        let mut m = Vec::new();
        ChunkWriter::new(128).write(
            &mut m,
            &Message {
                csid: 6,
                type_id: ty::VIDEO,
                stream_id: 1,
                timestamp: 0,
                payload: Bytes::from(vec![0u8; 2000]),
            },
        );
        total += m.len() as u64;
        s.handle_input(&m).unwrap();
        let sent = s.poll_transmit();
        // Our chunk size is 4096 after connect.
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.set_chunk_size(4096).unwrap();
        r.push(&sent);
        while let Some(m) = r.next_message().unwrap() {
            if m.type_id == ty::ACK {
                acks.push(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
            }
        }
    }
    assert!(acks.len() >= 3, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] > w[0]), "cumulative: {acks:?}");
    assert!(u64::from(*acks.last().unwrap()) <= total);
}

#[test]
fn amf3_commands_and_data_are_understood() {
    let mut c = RtmpScript::new();
    let mut connect = vec![0u8];
    connect.extend(amf0::encode_all(&[
        Value::String("connect".into()),
        Value::Number(1.0),
        Value::Object(vec![("app".into(), Value::String("live".into()))]),
    ]));
    c.message(3, ty::COMMAND_AMF3, 0, 0, Bytes::from(connect));
    c.call("createStream", 2.0, None);
    c.publish("u/s");
    let mut data = vec![0u8];
    data.extend(amf0::encode_all(&[
        Value::String("@setDataFrame".into()),
        Value::String("onMetaData".into()),
    ]));
    data.extend([0x11, 0x0a, 0x0b, 0x01, 0x01]);
    c.message(4, ty::DATA_AMF3, 1, 0, Bytes::from(data));
    let (events, _) = run(&c.bytes, &[usize::MAX]);
    assert_eq!(events[0], Event::Connected { app: "live".into() });
    assert!(matches!(&events[2], Event::Metadata(v) if matches!(v[1], Value::Amf3(_))));
}

#[test]
fn a_refused_publish_gets_an_error_status_and_no_media_flows() {
    let mut s = ServerSession::new(SessionConfig::default());
    s.handle_input(&ffmpeg_like()).unwrap();
    let mut refused = false;
    while let Some(e) = s.poll_event() {
        if let Event::PublishRequested { request_id, .. } = e {
            s.reject_publish(request_id, "NetStream.Publish.BadName", "no")
                .unwrap();
            refused = true;
        }
        assert!(!matches!(e, Event::Video { .. }), "no media before accept");
    }
    assert!(refused);
    assert!(!s.is_publishing());
}

#[test]
fn a_second_publish_on_a_publishing_connection_can_be_refused_alone() {
    let mut c = RtmpScript::new();
    c.connect("live", Vec::new());
    c.call("createStream", 2.0, None);
    c.publish("a");
    c.call("createStream", 3.0, None);
    c.command(
        2,
        &[
            Value::String("publish".into()),
            Value::Number(6.0),
            Value::Null,
            Value::String("b".into()),
        ],
    );
    c.message(6, ty::VIDEO, 1, 0, Bytes::from_static(&[0x17, 1, 0, 0, 0]));
    let mut s = ServerSession::new(SessionConfig::default());
    s.handle_input(&c.bytes).unwrap();
    let mut media = 0;
    while let Some(e) = s.poll_event() {
        match e {
            Event::PublishRequested {
                request_id, name, ..
            } if name == "a" => s.accept_publish(request_id).unwrap(),
            Event::PublishRequested { request_id, .. } => s
                .reject_publish(
                    request_id,
                    "NetStream.Publish.BadName",
                    "one per connection",
                )
                .unwrap(),
            Event::Video { .. } => media += 1,
            _ => {}
        }
    }
    assert_eq!(media, 1, "the first publish goes on");
    assert!(s.is_publishing());
}

/// Real publishers' byte streams, recorded through a proxy (`tests/fixtures/*-session.bin`,
/// what the client sent, handshake included): ffmpeg, librtmp (GStreamer `rtmpsink`) and
/// GStreamer's `rtmp2sink`, each publishing 1 s of 320x240 video and AAC.
const RECORDED: [(&str, &[u8]); 3] = [
    (
        "ffmpeg",
        include_bytes!("../../../tests/fixtures/ffmpeg-session.bin"),
    ),
    (
        "librtmp",
        include_bytes!("../../../tests/fixtures/librtmp-session.bin"),
    ),
    (
        "rtmp2",
        include_bytes!("../../../tests/fixtures/rtmp2-session.bin"),
    ),
];

#[test]
fn recorded_sessions_publish() {
    for (name, bytes) in RECORDED {
        let (events, _) = run(bytes, &[usize::MAX]);
        let published = events.iter().find_map(|e| match e {
            Event::PublishRequested { app, name, .. } => Some(format!("{app}/{name}")),
            _ => None,
        });
        assert_eq!(
            published.as_deref(),
            Some(&*format!("live/rec/{name}")),
            "{name}"
        );
        let video = events
            .iter()
            .filter(|e| matches!(e, Event::Video { .. }))
            .count();
        let audio = events
            .iter()
            .filter(|e| matches!(e, Event::Audio { .. }))
            .count();
        // 30 frames and ~43 AAC frames, plus their sequence headers.
        assert!(
            video >= 30 && audio >= 40,
            "{name}: {video} video, {audio} audio"
        );
    }
}

proptest! {
    /// However a real publisher's bytes arrive, the same events in the same order.
    #[test]
    fn recorded_sessions_split_anyhow_give_the_same_events(
        which in 0usize..3,
        cuts in proptest::collection::vec(1usize..5000, 1..60),
    ) {
        let (_, bytes) = RECORDED[which];
        let (want, _) = run(bytes, &[usize::MAX]);
        let (got, _) = run(bytes, &cuts);
        prop_assert_eq!(got, want);
    }
}
