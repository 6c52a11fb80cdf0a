//! Limits that keep one abuser from hurting everyone: the total and per-address RTMP
//! connection caps (another address still publishes), the publish deadline (silent and
//! dribbling clients are closed), and HTTP header timeouts (a slowloris client does not block
//! viewers), URL length and the HTTP connection cap.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection from `from` (a loopback address) to `to`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Waits until the server closes `s` (EOF or reset), at most `within`; returns how long it
/// took.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((t0 + within).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t0.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_cap_and_publish_deadline() {
    let server = start(&[
        ("GLASSCAST_RTMP_MAX_CONNECTIONS_PER_IP", "3"),
        ("GLASSCAST_RTMP_PUBLISH_DEADLINE_MS", "1500"),
    ])
    .await;
    // 127.0.0.2 holds its three connections (they send the RTMP C0+C1 and wait).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from([127, 0, 0, 2], server.rtmp_addr).await;
        s.write_all(&[3u8]).await.unwrap();
        held.push(s);
    }
    // The fourth from the same address is closed at once.
    let mut fourth = connect_from([127, 0, 0, 2], server.rtmp_addr).await;
    let took = closed_within(&mut fourth, Duration::from_secs(1)).await;
    assert!(took < Duration::from_millis(900), "{took:?}");
    // Another address publishes meanwhile.
    let (ok, err) = publish_output(&Source::normal(1.0), &rtmp_url(&server, "live/u/limits")).await;
    assert!(ok, "{err}");
    // The held ones never published: the deadline closes them (not the 10 s idle timeout).
    for mut s in held {
        let took = closed_within(&mut s, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
    // A client that keeps sending a byte at a time, never publishing, is closed too.
    let mut dribbler = connect_from([127, 0, 0, 3], server.rtmp_addr).await;
    dribbler.write_all(&[3u8]).await.unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let mut closed = false;
    while t0.elapsed() < Duration::from_secs(5) {
        if dribbler.write_all(&[0u8]).await.is_err() {
            closed = true;
            break;
        }
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(200), dribbler.read(&mut buf)).await
            && matches!(r, Ok(0) | Err(_))
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dribbling client outlived the publish deadline");
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert_eq!(
        metric(
            &m,
            "rtmp_connection_attempts_total{status=\"over_ip_limit\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "rtmp_errors_total{kind=\"publish_deadline\"}"),
        4.0,
        "{m}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_connection_cap() {
    let server = start(&[("GLASSCAST_RTMP_MAX_CONNECTIONS", "2")]).await;
    let mut held = Vec::new();
    for from in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        let mut s = connect_from(from, server.rtmp_addr).await;
        s.write_all(&[3u8]).await.unwrap();
        held.push(s);
    }
    // A third address, under its own per-address cap, is refused: the server is full.
    let mut third = connect_from([127, 0, 0, 4], server.rtmp_addr).await;
    let took = closed_within(&mut third, Duration::from_secs(1)).await;
    assert!(took < Duration::from_millis(900), "{took:?}");
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert_eq!(
        metric(
            &m,
            "rtmp_connection_attempts_total{status=\"over_total_limit\"}"
        ),
        1.0,
        "{m}"
    );
    drop(held);
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_block_viewers() {
    let server = start(&[
        ("GLASSCAST_HTTP_HEADER_TIMEOUT_MS", "1000"),
        ("GLASSCAST_HTTP_MAX_CONNECTIONS", "60"),
    ])
    .await;
    let mut publisher = publish(&Source::normal(8.0), &rtmp_url(&server, "live/u/slow"));
    let playlist = http_url(&server, "live/u/slow/media.m3u8");
    eventually("playlist", Duration::from_secs(10), || async {
        (get_text(&playlist).await.0 == 200).then_some(())
    })
    .await;
    // 40 clients send headers one byte at a time and never finish.
    let mut slow = Vec::new();
    for i in 0..40u8 {
        let mut s = connect_from([127, 0, 0, 10 + i % 4], server.http_addr).await;
        s.write_all(b"GET /live/u/slow/media.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // Viewers are served meanwhile, quickly.
    for _ in 0..10 {
        let t0 = Instant::now();
        let (s, _) = get_text(&playlist).await;
        assert_eq!(s, 200);
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
    }
    // And the slow ones are dropped by the header timeout.
    for s in &mut slow {
        let took = closed_within(s, Duration::from_secs(4)).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    // An overlong URL is refused without touching the stream.
    let long = format!("{playlist}?{}", "x".repeat(5000));
    assert_eq!(get_text(&long).await.0, 414);
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert!(
        metric(&m, "http_limit_hits_total{limit=\"header_timeout\"}") >= 40.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "http_limit_hits_total{limit=\"url_too_long\"}"),
        1.0
    );
    let _ = publisher.kill().await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connection_cap() {
    let server = start(&[("GLASSCAST_HTTP_MAX_CONNECTIONS", "5")]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 1], server.http_addr).await);
    }
    // The listener accepts in order, so these five hold every slot when the sixth arrives.
    let mut sixth = connect_from([127, 0, 0, 1], server.http_addr).await;
    closed_within(&mut sixth, Duration::from_secs(2)).await;
    let (_, m) = get_text(&admin_url(&server, "metrics")).await;
    assert_eq!(
        metric(&m, "http_limit_hits_total{limit=\"max_connections\"}"),
        1.0,
        "{m}"
    );
    drop(held);
    eventually("a slot is free again", Duration::from_secs(5), || async {
        let addr = server.http_addr;
        tokio::time::timeout(Duration::from_millis(500), async move {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            String::from_utf8_lossy(&out)
                .contains("200 OK")
                .then_some(())
        })
        .await
        .ok()
        .flatten()
    })
    .await;
    server.shutdown(Duration::from_secs(5)).await;
}
