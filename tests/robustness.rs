//! Hostile and broken clients cost only their own connection: a concurrent stream keeps
//! producing parts on time while they misbehave.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use origin::stream::OriginStream;
use relay::path::StreamPath;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
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

/// Performs the RTMP handshake and `connect` with rml_rtmp's client session.
async fn connected_client(addr: std::net::SocketAddr) -> (TcpStream, ClientSession) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let leftover = loop {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed during handshake");
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await.unwrap()
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await.unwrap();
                break remaining_bytes;
            }
        }
    };
    let (mut session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    send(&mut sock, initial).await;
    let r = session.request_connection("live".into()).unwrap();
    send(&mut sock, vec![r]).await;
    let mut input = leftover;
    loop {
        let results = session.handle_input(&input).unwrap();
        let accepted = results.iter().any(|r| {
            matches!(
                r,
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted)
            )
        });
        send(&mut sock, results).await;
        if accepted {
            return (sock, session);
        }
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "server closed before accepting connect");
        input = buf[..n].to_vec();
    }
}

async fn send(sock: &mut TcpStream, results: Vec<ClientSessionResult>) {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            sock.write_all(&p.bytes).await.unwrap();
        }
    }
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
    let (mut after_hs, _) = connected_client(server.rtmp_addr).await;
    let _ = after_hs.write_all(&noise).await;
    expect_closed(&mut after_hs, Duration::from_secs(3)).await;

    // 3. `@setDataFrame` with no arguments: makes rml_rtmp 0.8 index out of bounds.
    let (mut bad_meta, _session) = connected_client(server.rtmp_addr).await;
    let payload = RtmpMessage::Amf0Data {
        values: vec![Amf0Value::Utf8String("@setDataFrame".into())],
    }
    .into_message_payload(RtmpTimestamp::new(0), 0)
    .unwrap();
    let mut ser = ChunkSerializer::new();
    let packet = ser.serialize(&payload, true, false).unwrap();
    bad_meta.write_all(&packet.bytes).await.unwrap();
    expect_closed(&mut bad_meta, Duration::from_secs(3)).await;

    // 4. A client that connects and then goes silent is dropped after the read timeout.
    let (mut silent, _) = connected_client(server.rtmp_addr).await;
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
