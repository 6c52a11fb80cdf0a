//! LL-HLS behaviour against a live ffmpeg publisher: PDT, blocking reload timing, the 400/503
//! rules, the hinted part, caching headers, reconnect grace, shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use relay::path::StreamPath;

fn sp(user: &str, stream: &str) -> StreamPath {
    StreamPath {
        user_id: user.into(),
        stream_id: stream.into(),
    }
}

/// Waits until the stream has `n` complete segments and returns the playlist text.
async fn wait_segments(base: &str, n: u64) -> String {
    eventually("segments", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= n).then_some(t)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdt_tracks_wall_clock_and_blocking_reload_is_prompt() {
    let server = start(&[]).await;
    let _ff = publish(&Source::normal(30.0), &rtmp_url(&server, "live/pdt/s1"));
    let base = http_url(&server, "live/pdt/s1");
    wait_segments(&base, 1).await;

    // PDT of the live edge stays within 1 s of the wall clock.
    for _ in 0..10 {
        let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
        let edge = parse_live(&text).edge_pdt_ms.expect("playlist has PDT");
        let lag = now_ms() - edge;
        assert!(
            lag.abs() < 1000,
            "live edge PDT is {lag} ms from the wall clock"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // A blocking request for the next part returns only once it exists, and promptly.
    let os = server.origin.get(&sp("pdt", "s1")).expect("stream");
    for _ in 0..5 {
        let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
        let live = parse_live(&text);
        let hint = live.preload_hint.clone().expect("preload hint");
        let (_, hinted) = live.hinted_part().expect("hint names a part");
        // Watch the packager in-process to learn when the hinted part came to exist.
        let appeared = Arc::new(std::sync::Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (os, appeared, stop) = (os.clone(), appeared.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    // Check once more after being told to stop: the response may have won the race.
                    let stopping = stop.load(Ordering::Relaxed);
                    if os.next_part_index() > hinted {
                        *appeared.lock().unwrap() = Some(Instant::now());
                        return;
                    }
                    if stopping {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let url = format!(
            "{base}/media.m3u8?_HLS_msn={}&_HLS_part={}",
            live.open_msn(),
            live.open_parts
        );
        let (status, blocked) = get_text(&url).await;
        let answered = Instant::now();
        stop.store(true, Ordering::Relaxed);
        let _ = watcher.await;
        assert_eq!(status, 200);
        assert!(
            blocked.contains(&hint),
            "blocked response lacks the awaited part {hint}:\n{blocked}"
        );
        let appeared = appeared
            .lock()
            .unwrap()
            .expect("part appeared while we waited");
        let late = answered.saturating_duration_since(appeared);
        assert!(
            late < Duration::from_millis(200),
            "answered {late:?} after the part existed"
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// A plain playlist request (what a joining player sends first) is answered once the part
/// being made when it arrived is complete, so the player starts from a part that has just
/// closed; with no part being made (the publisher gone, within the grace period) it is
/// answered after at most one and a half part targets, never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_playlist_request_gets_the_part_being_made() {
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "20000")]).await;
    let mut ff = publish(&Source::normal(12.0), &rtmp_url(&server, "live/fresh/s"));
    let base = http_url(&server, "live/fresh/s");
    wait_segments(&base, 1).await;
    let os = server.origin.get(&sp("fresh", "s")).expect("stream");
    for _ in 0..3 {
        // Ask in the middle of a segment: at a segment's end the next one opens with its
        // first frame's successor, and a request in that instant (a playlist not one frame
        // old) is answered at once.
        let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
        let next = parse_live(&text).open_msn() + 1;
        let (status, _) = get_text(&format!("{base}/media.m3u8?_HLS_msn={next}&_HLS_part=2")).await;
        assert_eq!(status, 200);
        let making = os.next_part_index();
        let (status, text) = get_text(&format!("{base}/media.m3u8")).await;
        assert_eq!(status, 200);
        let (_, hinted) = parse_live(&text).hinted_part().expect("a hint");
        assert!(
            hinted > making,
            "part {making} was being made when asked, yet the answer hints part {hinted}:\n{text}"
        );
    }
    assert!(ff.wait().await.unwrap().success());
    // Within the grace period: nothing is being made, the playlist is answered at once.
    let asked = Instant::now();
    let (status, text) = get_text(&format!("{base}/media.m3u8")).await;
    assert_eq!(status, 200);
    assert!(!parse_live(&text).ended, "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "held {:?} with nothing being made",
        asked.elapsed()
    );
    let (_, metrics) = get_text(&admin_url(&server, "metrics")).await;
    assert!(
        metrics.contains(r#"hls_playlist_requests_total{result="fresh_ok"} "#),
        "{metrics}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directive_errors_hinted_part_and_headers() {
    let server = start(&[]).await;
    let _ff = publish(&Source::normal(30.0), &rtmp_url(&server, "live/rules/s1"));
    let base = http_url(&server, "live/rules/s1");
    let text = wait_segments(&base, 1).await;
    let live = parse_live(&text);

    // msn far in the future: 400 at once.
    let t0 = Instant::now();
    let (s, _) = get_text(&format!(
        "{base}/media.m3u8?_HLS_msn={}",
        live.open_msn() + 5
    ))
    .await;
    assert_eq!(s, 400);
    assert!(t0.elapsed() < Duration::from_secs(1));
    // _HLS_part without _HLS_msn: 400.
    let (s, _) = get_text(&format!("{base}/media.m3u8?_HLS_part=1")).await;
    assert_eq!(s, 400);

    // The hinted part streams while it is being made (no length known yet); once complete it
    // is served with its length, the same bytes.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let hint = parse_live(&text).preload_hint.expect("hint");
    let (s, h, streamed) = get(&format!("{base}/{hint}")).await;
    assert_eq!(s, 200);
    assert!(h.get("content-length").is_none(), "streamed: {h:?}");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    let (s, h, body) = get(&format!("{base}/{hint}")).await;
    assert_eq!(s, 200);
    assert_eq!(body, streamed, "the streamed part is the complete part");
    assert_eq!(&body[4..8], b"moof", "a complete part starts with moof");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["content-length"], body.len().to_string().as_str());

    // Range as ffmpeg and Varnish send it.
    let (s, h, ranged) = get_with(&format!("{base}/{hint}"), &[("range", "bytes=0-")]).await;
    assert_eq!(s, 206);
    assert_eq!(ranged, body);
    assert_eq!(
        h["content-range"],
        format!("bytes 0-{}/{}", body.len() - 1, body.len()).as_str()
    );
    let (s, _, ranged) = get_with(&format!("{base}/{hint}"), &[("range", "bytes=4-7")]).await;
    assert_eq!((s, &ranged[..]), (206, &b"moof"[..]));

    // Playlists: no-cache without directives, gzip when asked, never for media.
    let (_, h, _) = get(&format!("{base}/media.m3u8")).await;
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["content-type"], "application/vnd.apple.mpegurl");
    let (_, h, _) = get_with(
        &format!("{base}/media.m3u8"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(h["content-encoding"], "gzip");
    let (_, h, _) = get_with(&format!("{base}/{hint}"), &[("accept-encoding", "gzip")]).await;
    assert!(h.get("content-encoding").is_none());
    let (_, h, _) = get(&format!(
        "{base}/media.m3u8?_HLS_msn={}",
        live.open_msn().saturating_sub(1)
    ))
    .await;
    assert_eq!(h["cache-control"], "public, max-age=2");

    // Unknown things: 404 no-store, including other sessions' file names.
    for path in [
        "live/rules/nope/index.m3u8",
        "live/rules/s1/deadbeef-s0.m4s",
        "etc/passwd",
        "live/rules/s1/../../x",
    ] {
        let (s, h, _) = get(&http_url(&server, path)).await;
        assert_eq!(s, 404, "{path}");
        assert_eq!(h["cache-control"], "no-store");
    }

    // Multivariant playlist.
    let (s, mv) = get_text(&format!("{base}/index.m3u8")).await;
    assert_eq!(s, 200);
    assert!(
        mv.contains("CODECS=\"avc1.")
            && mv.contains("mp4a.40.2")
            && mv.contains("RESOLUTION=640x360"),
        "{mv}"
    );
    assert!(mv.contains("\nmedia.m3u8\n"));

    let (s, t) = get_text(&http_url(&server, "healthz")).await;
    assert_eq!((s, t.as_str()), (200, "ok\n"));
    // The viewer-facing listener serves only media: metrics and the API are on the admin one.
    assert_eq!(get_text(&http_url(&server, "metrics")).await.0, 404);
    assert_eq!(get_text(&http_url(&server, "v1/streams")).await.0, 404);
    let (s, m) = get_text(&admin_url(&server, "metrics")).await;
    assert_eq!(s, 200);
    for name in [
        "rtmp_connections_total",
        "rtmp_active_streams",
        "rtmp_bandwidth_bytes_total",
        "rtmp_publish_attempts_total{status=\"accepted\"}",
        "rtmp_connection_attempts_total{status=\"accepted\"}",
        "auth_decisions_total{mode=\"open\",result=\"allow\"}",
        "hls_parts_total",
        "hls_playlist_requests_total{result=\"bad_request\"}",
        "hls_blocking_waiters",
        "hls_blocking_wake_seconds_bucket",
        "hls_sessions",
        "restream_destinations{state=\"active\"}",
        "restream_bytes_total",
        "glasscast_http_requests_total{kind=\"playlist\",result=\"bad_request\"}",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_grace_is_one_playlist_with_a_discontinuity() {
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "5000"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let url = rtmp_url(&server, "live/glasses%40example.com/cell");
    let base = http_url(&server, "live/glasses%40example.com/cell");
    let src = Source::normal(4.0);
    assert!(publish(&src, &url).wait().await.unwrap().success());
    // The publisher is gone; within the grace period the playlist stays open.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    assert!(
        !parse_live(&text).ended,
        "ended during the grace period:\n{text}"
    );
    assert!(publish(&src, &url).wait().await.unwrap().success());
    let text = wait_ended(&base, Duration::from_secs(15)).await;
    // The (cached) gzipped playlist is the same playlist.
    for _ in 0..2 {
        let (_, h, gz) = get_with(
            &format!("{base}/media.m3u8"),
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(h["content-encoding"], "gzip");
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
    }
    let live = parse_live(&text);
    assert_eq!(live.discontinuities, 1, "{text}");
    assert_eq!(live.media_sequence, 0);
    // One stream, both publishes, decodable end to end.
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct("video frames", v, 2 * src.video_frames());
    within_2pct("audio frames", a, 2 * src.audio_frames());
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_rejected_and_first_continues() {
    let server = start(&[]).await;
    let url = rtmp_url(&server, "live/dup/s");
    let _first = publish(&Source::normal(20.0), &url);
    let base = http_url(&server, "live/dup/s");
    wait_segments(&base, 1).await;
    let second = publish(&Source::normal(3.0), &url).wait().await.unwrap();
    assert!(!second.success(), "the second publisher must be refused");
    let before = parse_live(&get_text(&format!("{base}/media.m3u8")).await.1);
    wait_segments(&base, before.complete_segments + 1).await;
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_playlists() {
    let server = start(&[]).await;
    let _ff = publish(&Source::normal(30.0), &rtmp_url(&server, "live/bye/s"));
    let base = http_url(&server, "live/bye/s");
    wait_segments(&base, 1).await;
    let origin = server.origin.clone();
    // A blocked request is answered by the shutdown, not left hanging.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let url = format!(
        "{base}/media.m3u8?_HLS_msn={}",
        parse_live(&text).open_msn() + 1
    );
    let blocked = tokio::spawn(async move { get_text(&url).await });
    let os = origin.get(&sp("bye", "s")).expect("stream");
    eventually("the request to be held", Duration::from_secs(5), || async {
        (os.held_requests() > 0).then_some(())
    })
    .await;
    server.shutdown(Duration::from_secs(5)).await;
    let os = origin.get(&sp("bye", "s")).expect("stream kept");
    assert!(os.is_ended());
    assert!(String::from_utf8_lossy(&os.media_playlist(false)).ends_with("#EXT-X-ENDLIST\n"));
    let (s, t) = tokio::time::timeout(Duration::from_secs(5), blocked)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(s, 200);
    assert!(t.contains("#EXT-X-ENDLIST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_updates_parts_equal_segments_head_and_preflight() {
    // 1 s segments so CAN-SKIP-UNTIL (6 target durations) is reached quickly.
    let server = start(&[("GLASSCAST_HLS_SEGMENT_TARGET_MS", "1000")]).await;
    let _ff = publish(
        &Source {
            gop: 30,
            ..Source::normal(30.0)
        },
        &rtmp_url(&server, "live/delta/s"),
    );
    let base = http_url(&server, "live/delta/s");
    let full = wait_segments(&base, 9).await;
    assert!(full.contains("CAN-SKIP-UNTIL=6.0"), "{full}");

    let (s, delta) = get_text(&format!("{base}/media.m3u8?_HLS_skip=YES")).await;
    assert_eq!(s, 200);
    let skipped: u64 = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .expect("delta update has EXT-X-SKIP")
        .parse()
        .unwrap();
    assert!(skipped >= 2, "{delta}");
    let d = parse_live(&delta);
    let f = parse_live(&full);
    assert_eq!(d.media_sequence, f.media_sequence);
    assert!(d.complete_segments + skipped >= f.complete_segments);
    let (s, v2) = get_text(&format!("{base}/media.m3u8?_HLS_skip=v2")).await;
    assert_eq!(s, 200);
    assert!(v2.contains("#EXT-X-SKIP:"));

    // The parts listed for a complete segment, concatenated, are that segment, byte for byte.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let mut parts = Vec::new();
    let mut checked = 0;
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            parts.push(attr(line, "URI").unwrap().to_string());
        } else if line.ends_with(".m4s") && !line.starts_with('#') {
            if !parts.is_empty() {
                let mut joined = Vec::new();
                for p in &parts {
                    joined.extend_from_slice(&get(&format!("{base}/{p}")).await.2);
                }
                let (s, _, seg) = get(&format!("{base}/{line}")).await;
                assert_eq!(s, 200);
                assert_eq!(seg.len(), joined.len(), "{line}");
                assert!(seg[..] == joined[..], "{line} differs from its parts");
                checked += 1;
            }
            parts.clear();
        }
    }
    assert!(checked >= 2, "checked {checked} segments:\n{text}");

    // HEAD: headers and length, no body.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = hyper::Request::head(format!("{base}/media.m3u8"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    use http_body_util::BodyExt;
    assert!(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    // CORS preflight from a browser player.
    let req = hyper::Request::options(format!("{base}/media.m3u8"))
        .header("origin", "https://player.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(
        resp.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Range")
    );
    server.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_new_resolution_gets_a_new_map() {
    let server = start(&[
        ("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "5000"),
        ("GLASSCAST_HLS_WINDOW_SEGMENTS", "100"),
    ])
    .await;
    let url = rtmp_url(&server, "live/resize/s");
    let base = http_url(&server, "live/resize/s");
    let small = Source::normal(4.0);
    let large = Source {
        video: Some((1280, 720, 30)),
        ..Source::normal(4.0)
    };
    assert!(publish(&small, &url).wait().await.unwrap().success());
    assert!(publish(&large, &url).wait().await.unwrap().success());
    let text = wait_ended(&base, Duration::from_secs(15)).await;
    let maps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MAP:"))
        .collect();
    assert_eq!(maps.len(), 2, "{text}");
    assert_ne!(maps[0], maps[1]);
    let disc = text.find("#EXT-X-DISCONTINUITY\n").expect("discontinuity");
    assert!(
        disc < text.find(maps[1]).unwrap(),
        "the new map follows the discontinuity"
    );
    let (v, a, errors) = decode(&format!("{base}/index.m3u8")).await;
    assert!(errors.trim().is_empty(), "{errors}");
    within_2pct(
        "video frames",
        v,
        small.video_frames() + large.video_frames(),
    );
    within_2pct(
        "audio frames",
        a,
        small.audio_frames() + large.audio_frames(),
    );
    server.shutdown(Duration::from_secs(5)).await;
}

/// The preload-hinted part and the open segment are served while they are being made: the
/// first bytes arrive before the part (segment) is complete, frame after frame (chunks on
/// HTTP/1.1, DATA frames on HTTP/2), and the streamed bytes equal the complete file fetched
/// afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_served_while_it_is_being_made() {
    let server = start(&[]).await;
    let _ff = publish(&Source::normal(30.0), &rtmp_url(&server, "live/making/s1"));
    let base = http_url(&server, "live/making/s1");
    wait_segments(&base, 1).await;
    let os = server.origin.get(&sp("making", "s1")).expect("stream");

    for _ in 0..3 {
        let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
        let live = parse_live(&text);
        let hint = live.preload_hint.clone().expect("preload hint");
        let (prefix, hinted) = live.hinted_part().expect("hint names a part");
        let segment_name = origin::naming::Names { prefix }.segment(live.open_msn());
        // Learn in-process when the part and the segment are complete.
        let done = {
            let os = os.clone();
            let msn = live.open_msn();
            tokio::spawn(async move {
                let mut progress = os.watch_progress();
                let (mut part_done, mut seg_done) = (None, None);
                while part_done.is_none() || seg_done.is_none() {
                    progress.changed().await.expect("stream lives");
                    if part_done.is_none() && os.next_part_index() > hinted {
                        part_done = Some(Instant::now());
                    }
                    if seg_done.is_none()
                        && os.media(origin::naming::MediaName::Segment(msn)).is_some()
                    {
                        seg_done = Some(Instant::now());
                    }
                }
                (part_done.unwrap(), seg_done.unwrap())
            })
        };
        let (part_url, segment_url) = (format!("{base}/{hint}"), format!("{base}/{segment_name}"));
        // The part over HTTP/1.1 (chunked) and over HTTP/2 (DATA frames), the segment over 1.1.
        let (part, part_h2, segment) = tokio::join!(
            get_frames(&part_url),
            get_frames_h2(&part_url),
            get_frames(&segment_url)
        );
        let (part_done, seg_done) = done.await.unwrap();
        for ((status, headers, frames), done, what) in [
            (&part, part_done, "part"),
            (&part_h2, part_done, "part over HTTP/2"),
            (&segment, seg_done, "segment"),
        ] {
            assert_eq!(*status, 200, "{what}");
            assert!(
                headers.get("content-length").is_none(),
                "{what} was not streamed"
            );
            assert!(
                frames.len() >= 2,
                "{what} came in {} frame(s)",
                frames.len()
            );
            assert!(
                frames[0].0 < done,
                "the {what}'s first bytes came {:?} after it was complete",
                frames[0].0 - done
            );
        }
        let streamed = |f: &[(Instant, bytes::Bytes)]| -> Vec<u8> {
            f.iter().flat_map(|(_, b)| b.to_vec()).collect()
        };
        let (s, _, complete) = get(&format!("{base}/{hint}")).await;
        assert_eq!(s, 200);
        assert_eq!(streamed(&part.2), complete.to_vec(), "part bytes differ");
        assert_eq!(
            streamed(&part_h2.2),
            complete.to_vec(),
            "part bytes differ over HTTP/2"
        );
        let (s, _, complete) = get(&format!("{base}/{segment_name}")).await;
        assert_eq!(s, 200);
        assert_eq!(
            streamed(&segment.2),
            complete.to_vec(),
            "segment bytes differ"
        );
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// Byte-range-addressed parts (`hls.byterange_parts`): each part is a range of its segment and
/// the preload hint an open-ended range of the segment being made. Asked for as Shaka does
/// (`bytes=N-9007199254740991`, RFC 8673), that range answers 206 at once, streams before the
/// hinted part is complete and ends with the segment; `bytes=N-` gets what exists now; every
/// range is the same bytes as the complete segment's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byterange_parts_stream_from_the_segment_being_made() {
    let server = start(&[("GLASSCAST_HLS_BYTERANGE_PARTS", "true")]).await;
    let _ff = publish(&Source::normal(20.0), &rtmp_url(&server, "live/ranges/s"));
    let base = http_url(&server, "live/ranges/s");
    wait_segments(&base, 1).await;
    let os = server.origin.get(&sp("ranges", "s")).expect("stream");
    // Mid-segment, so the hint starts past the segment's first byte.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let msn = parse_live(&text).open_msn() + 1;
    let (_, text) = get_text(&format!("{base}/media.m3u8?_HLS_msn={msn}&_HLS_part=2")).await;
    let hint = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .expect("a hint");
    let uri = parse_live(&text).preload_hint.expect("a hint");
    let start: u64 = attr(hint, "BYTERANGE-START")
        .expect("BYTERANGE-START")
        .parse()
        .unwrap();
    assert!(
        text.contains(&format!(r#"URI="{uri}",BYTERANGE=""#)),
        "parts are ranges of the segment:\n{text}"
    );
    let making = os.next_part_index();
    let done = {
        let os = os.clone();
        tokio::spawn(async move {
            let mut progress = os.watch_progress();
            loop {
                if os.next_part_index() > making {
                    return Instant::now();
                }
                progress.changed().await.expect("stream lives");
            }
        })
    };
    let far = 9_007_199_254_740_991u64;
    let range = format!("bytes={start}-{far}");
    let (status, headers, frames) =
        get_frames_with(&format!("{base}/{uri}"), &[("range", &range)]).await;
    let part_done = done.await.unwrap();
    assert_eq!(status, 206);
    assert_eq!(headers["content-range"], format!("bytes {start}-{far}/*"));
    assert_eq!(
        headers["cache-control"], "no-store",
        "a range of unknown length"
    );
    assert!(frames.len() >= 2, "came in {} frame(s)", frames.len());
    assert!(
        frames[0].0 < part_done,
        "the first bytes came {:?} after the hinted part was complete",
        frames[0].0 - part_done
    );
    let streamed: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let (s, _, complete) = get(&format!("{base}/{uri}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        streamed,
        complete[start as usize..].to_vec(),
        "bytes differ"
    );
    // Every part listed for that segment is its range of the complete segment.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let mut parts = 0;
    for line in text
        .lines()
        .filter(|l| l.contains(&format!(r#"URI="{uri}""#)))
    {
        let range = attr(line, "BYTERANGE").expect("BYTERANGE");
        let (len, off) = range.split_once('@').expect("len@offset");
        let (len, off): (usize, usize) = (len.parse().unwrap(), off.parse().unwrap());
        let asked = format!("bytes={off}-{}", off + len - 1);
        let (s, _, part) = get_with(&format!("{base}/{uri}"), &[("range", &asked)]).await;
        assert_eq!(s, 206);
        assert_eq!(part, complete[off..off + len], "part at {off}");
        parts += 1;
    }
    assert!(parts >= 3, "{parts} parts listed:\n{text}");
    // `bytes=N-` of the segment being made: what exists now, length unknown.
    let (_, text) = get_text(&format!(
        "{base}/media.m3u8?_HLS_msn={}&_HLS_part=1",
        msn + 1
    ))
    .await;
    let uri = parse_live(&text).preload_hint.expect("a hint");
    let (s, h, now) = get_with(&format!("{base}/{uri}"), &[("range", "bytes=0-")]).await;
    assert_eq!(s, 206);
    assert_eq!(
        h["content-range"],
        format!("bytes 0-{}/*", now.len() - 1),
        "{h:?}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
