//! Hostile and broken clients cost only their own connection: a concurrent stream keeps
//! producing parts on time while they misbehave.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use origin::stream::OriginStream;
use relay::path::StreamPath;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Records when each new part of `os` appears, until `until`; returns the largest gap.
async fn largest_part_gap(os: Arc<OriginStream>, until: Instant) -> (Duration, u64) {
    let mut last_index = os.next_part_index();
    let mut last_at = Instant::now();
    let mut worst = Duration::ZERO;
    let start_index = last_index;
    while Instant::now() < until {
        let i = os.next_part_index();
        if i != last_index {
            worst = worst.max(last_at.elapsed());
            last_index = i;
            last_at = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worst = worst.max(last_at.elapsed());
    (worst, last_index - start_index)
}

/// Reads until the server closes the connection; panics if it stays open past `timeout`.
async fn expect_closed(sock: &mut TcpStream, timeout: Duration) {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("server kept the connection open for {timeout:?}"),
        }
    }
}

/// Performs the RTMP handshake and `connect` (the scripted client), and waits for the answer.
async fn connected_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut s = common::rtmp_script::RtmpScript::new();
    s.connect("live", Vec::new());
    sock.write_all(&s.bytes).await.unwrap();
    // S0-S2, then the connect replies (which end with `_result`).
    let mut got = Vec::new();
    let mut buf = vec![0u8; 8192];
    while !got.windows(7).any(|w| w == b"_result") {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed before accepting connect");
        got.extend_from_slice(&buf[..n]);
    }
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_disturb_a_live_stream() {
    let server = start(&[("GLASSCAST_RTMP_READ_TIMEOUT_MS", "1500")]).await;
    let _ff = publish(&Source::normal(40.0), &rtmp_url(&server, "live/good/s"));
    let path = StreamPath {
        user_id: "good".into(),
        stream_id: "s".into(),
    };
    let os = eventually("the good stream", Duration::from_secs(20), || async {
        server
            .origin
            .get(&path)
            .filter(|os| os.next_part_index() > 5)
    })
    .await;

    let watch = tokio::spawn(largest_part_gap(
        os.clone(),
        Instant::now() + Duration::from_secs(4),
    ));

    // 1. Garbage instead of a handshake.
    let mut garbage = TcpStream::connect(server.rtmp_addr).await.unwrap();
    let noise: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = garbage.write_all(&noise).await;
    expect_closed(&mut garbage, Duration::from_secs(3)).await;

    // 2. A valid handshake followed by garbage chunks.
    let mut after_hs = connected_client(server.rtmp_addr).await;
    let _ = after_hs.write_all(&noise).await;
    expect_closed(&mut after_hs, Duration::from_secs(3)).await;

    // 3. `@setDataFrame` with no arguments (made rml_rtmp 0.8 index out of bounds): ignored,
    // and the silent connection is closed by the read timeout.
    let mut bad_meta = connected_client(server.rtmp_addr).await;
    let mut meta = common::rtmp_script::RtmpScript::new();
    meta.bytes.clear();
    meta.message(
        4,
        common::rtmp_script::DATA_AMF0,
        0,
        0,
        bytes::Bytes::from(relay::rtmp::amf0::encode_all(&[
            relay::rtmp::amf0::Value::String("@setDataFrame".into()),
        ])),
    );
    bad_meta.write_all(&meta.bytes).await.unwrap();
    expect_closed(&mut bad_meta, Duration::from_secs(3)).await;

    // 4. A client that connects and then goes silent is dropped after the read timeout.
    let mut silent = connected_client(server.rtmp_addr).await;
    expect_closed(&mut silent, Duration::from_secs(4)).await;

    let (worst_gap, parts) = watch.await.unwrap();
    assert!(
        worst_gap < Duration::from_millis(700),
        "the good stream stalled for {worst_gap:?} while hostile clients were served"
    );
    assert!(parts >= 12, "only {parts} parts in 4 s");

    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    let errors = metric(&m, "rtmp_errors_total") as u64;
    assert!(
        errors >= 3,
        "expected the hostile connections counted, got {errors}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publish_paths_are_refused() {
    let server = start(&[]).await;
    for path in ["live/only-one-segment", "other/u/s", "live/a/b/c"] {
        let status = publish(&Source::normal(1.0), &rtmp_url(&server, path))
            .wait()
            .await
            .unwrap();
        assert!(!status.success(), "{path} should be refused");
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// Connects and completes the handshake (C0-C2 and S0-S2), nothing more.
async fn handshaken(addr: std::net::SocketAddr) -> TcpStream {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let hs = common::rtmp_script::RtmpScript::new();
    sock.write_all(&hs.bytes).await.unwrap();
    let mut s = vec![0u8; 1 + 2 * 1536];
    sock.read_exact(&mut s).await.unwrap();
    sock
}

/// Writes `bytes` one at a time every `every`, for at most `for_`, stopping when the server
/// closes; returns true when it did.
async fn trickle(sock: &mut TcpStream, byte: u8, every: Duration, for_: Duration) -> bool {
    let until = Instant::now() + for_;
    while Instant::now() < until {
        if sock.write_all(&[byte]).await.is_err() {
            return true;
        }
        let mut b = [0u8; 1024];
        match tokio::time::timeout(every, sock.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            _ => {}
        }
    }
    false
}

/// The issue 10 table: each hostile client at once, beside a healthy stream whose part
/// cadence must not change, and each ending (or harmless) with its reason counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_table_costs_only_its_own_connections() {
    use common::rtmp_script::*;
    use relay::rtmp::amf0::Value;
    let server = start(&[
        ("GLASSCAST_RTMP_READ_TIMEOUT_MS", "1500"),
        ("GLASSCAST_RTMP_PUBLISH_DEADLINE_MS", "3000"),
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "300"),
    ])
    .await;
    let addr = server.rtmp_addr;
    let _ff = publish(&Source::normal(40.0), &rtmp_url(&server, "live/good/s"));
    let os = eventually("the good stream", Duration::from_secs(20), || async {
        server
            .origin
            .get(&StreamPath {
                user_id: "good".into(),
                stream_id: "s".into(),
            })
            .filter(|os| os.next_part_index() > 5)
    })
    .await;
    let watch = tokio::spawn(largest_part_gap(
        os.clone(),
        Instant::now() + Duration::from_secs(6),
    ));

    // The largest length RTMP allows, then a trickle: refused at the header.
    let huge = async {
        let mut sock = handshaken(addr).await;
        sock.write_all(&[0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0])
            .await
            .unwrap();
        assert!(
            trickle(
                &mut sock,
                0,
                Duration::from_millis(50),
                Duration::from_secs(3)
            )
            .await,
            "a 16 MiB message header must close the connection"
        );
    };
    // 10,000 chunk stream ids.
    let many_ids = async {
        let mut sock = handshaken(addr).await;
        let mut b = Vec::new();
        for i in 0..10_000u32 {
            let v = i.to_le_bytes();
            // Three-byte basic header (csid 64 + n), a one-byte message.
            b.extend([0x01, v[0], v[1], 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0xaa]);
        }
        let _ = sock.write_all(&b).await;
        expect_closed(&mut sock, Duration::from_secs(3)).await;
    };
    // A chunk size of 0x7FFFFFFF, a 4 MiB message, then a trickle: memory holds only what
    // arrived, and the publish deadline ends it.
    let big_chunks = async {
        let mut sock = handshaken(addr).await;
        let mut s = RtmpScript::new();
        s.bytes.clear();
        s.set_chunk_size(0x7fff_ffff);
        s.bytes.extend([0x06, 0, 0, 0, 0x40, 0, 0, 9, 1, 0, 0, 0]);
        sock.write_all(&s.bytes).await.unwrap();
        assert!(
            trickle(
                &mut sock,
                0,
                Duration::from_millis(50),
                Duration::from_secs(6)
            )
            .await,
            "the publish deadline must end a trickle"
        );
    };
    // Publishes, then only metadata: harmless.
    let only_meta = async {
        let mut s = RtmpScript::new();
        s.ffmpeg_like("live", "hostile/meta");
        for _ in 0..50 {
            s.metadata(vec![("width".into(), Value::Number(1.0))]);
        }
        s.play(addr).await;
    };
    // Stalls mid-message after publishing: the read timeout ends it.
    let stall = async {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let mut s = RtmpScript::new();
        s.ffmpeg_like("live", "hostile/stall");
        s.bytes
            .extend([0x06, 0, 0, 0, 0, 0x03, 0xe8, 9, 1, 0, 0, 0]);
        s.bytes.extend(vec![0x17; 100]);
        sock.write_all(&s.bytes).await.unwrap();
        expect_closed(&mut sock, Duration::from_secs(4)).await;
    };
    // Media before publish is ignored; the publish after it works.
    let early = async {
        let mut s = RtmpScript::new();
        s.connect("live", Vec::new());
        s.media(&fixture_media(0)[..20]);
        s.create_stream();
        s.publish("hostile/early");
        s.media(&fixture_media(0));
        s.play(addr).await;
    };
    // Two streams on one connection: the second is refused, the first goes on.
    let two = async {
        let mut s = RtmpScript::new();
        s.ffmpeg_like("live", "hostile/first");
        s.create_stream();
        s.command(
            2,
            &[
                Value::String("publish".into()),
                Value::Number(6.0),
                Value::Null,
                Value::String("hostile/second".into()),
                Value::String("live".into()),
            ],
        );
        s.media(&fixture_media(0));
        s.play(addr).await;
    };
    tokio::join!(huge, many_ids, big_chunks, only_meta, stall, early, two);

    let (worst_gap, parts) = watch.await.unwrap();
    assert!(
        worst_gap < Duration::from_millis(700),
        "the good stream stalled for {worst_gap:?} while hostile clients were served"
    );
    assert!(parts >= 18, "only {parts} parts in 6 s");
    for (path, video) in [("hostile/early", 120), ("hostile/first", 120)] {
        let base = http_url(&server, &format!("live/{path}"));
        wait_ended(&base, Duration::from_secs(10)).await;
        let (v, _, errors) = decode(&format!("{base}/index.m3u8")).await;
        assert!(errors.trim().is_empty(), "{path}: {errors}");
        within_2pct(path, v, video);
    }
    let (s, _) = get_text(&http_url(&server, "live/hostile/second/index.m3u8")).await;
    assert_eq!(s, 404, "the second publish on one connection was refused");
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    for kind in [
        "message_too_large",
        "too_many_chunk_streams",
        "publish_deadline",
        "timeout",
    ] {
        let n = metric(&m, &format!("rtmp_errors_total{{kind=\"{kind}\"}}"));
        assert!(n >= 1.0, "{kind} not counted:\n{m}");
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// Enhanced RTMP with HEVC: refused with a status naming the codec, never broken output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hevc_publisher_is_refused_naming_the_codec() {
    use common::rtmp_script::*;
    let server = start(&[]).await;
    let mut s = RtmpScript::new();
    s.connect(
        "live",
        vec![(
            "fourCcList".into(),
            relay::rtmp::amf0::Value::StrictArray(vec![relay::rtmp::amf0::Value::String(
                "hvc1".into(),
            )]),
        )],
    );
    s.create_stream();
    s.publish("hevc/s");
    // ExVideoTagHeader: IsExHeader | keyframe, PacketTypeSequenceStart, FourCC "hvc1".
    let mut tag = vec![0x90, b'h', b'v', b'c', b'1'];
    tag.extend([1, 1, 0x60, 0, 0, 0]);
    s.media(&[(VIDEO, 0, bytes::Bytes::from(tag))]);
    let replies = s.play(server.rtmp_addr).await;
    let text = String::from_utf8_lossy(&replies);
    assert!(text.contains("NetStream.Publish.Rejected"), "{text}");
    assert!(text.contains("HEVC"), "the refusal names the codec: {text}");
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert!(metric(&m, "rtmp_errors_total{kind=\"unsupported_codec\"}") >= 1.0);
    server.shutdown(Duration::from_secs(5)).await;
}
