//! Real players in real Chromium (Debian `chromium`, driven by `playwright-core`): hls.js and
//! Shaka in low-latency mode play the live LL-HLS stream (200 ms parts, and hls.js at 100 ms
//! parts) under a second behind, dash.js in low-latency mode plays the LL-DASH manifest and
//! keeps playing across a publisher reconnect (a new Period), and hls-parser in strict mode
//! accepts every playlist shape the origin serves. The bounds here are generous (a loaded
//! 2-core CI machine); the performance figures are in BENCHMARKS.md (`scripts/bench-players`).
//! The npm packages live in `tests/browser` (`npm ci` there; `scripts/test` does it).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_players_and_strict_playlists() {
    let server = start(&[]).await;
    let _ff = publish(
        &Source::normal(60.0),
        &rtmp_url(&server, "live/viewer%40example.com/ll"),
    );
    let base = http_url(&server, "live/viewer%40example.com/ll");
    eventually("two segments", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= 2).then_some(())
    })
    .await;

    // hls-parser (strict) accepts the multivariant, full, delta and blocking playlists.
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    let live = parse_live(&text);
    let urls = vec![
        format!("{base}/index.m3u8"),
        format!("{base}/media.m3u8"),
        format!("{base}/media.m3u8?_HLS_skip=YES"),
        format!(
            "{base}/media.m3u8?_HLS_msn={}&_HLS_part={}",
            live.open_msn(),
            live.open_parts
        ),
    ];
    let lint = node_script("lint.mjs", &urls).await;
    for r in lint.as_array().expect("array") {
        assert_eq!(r["ok"], true, "hls-parser rejected a playlist: {r}");
    }

    // hls.js and Shaka play the LL-HLS stream live; dash.js plays the LL-DASH manifest.
    for (player, manifest, max_p50) in [
        ("hlsjs", "index.m3u8", 2.0),
        ("shaka", "index.m3u8", 2.0),
        ("dashjs", "index.mpd", 3.0),
    ] {
        play_live(player, &format!("{base}/{manifest}"), 12, max_p50).await;
    }
    server.shutdown(Duration::from_secs(5)).await;
}

/// Plays `url` for `seconds` and checks what every live player must do: no fatal or page
/// error, frames decoded at (at least a third of) the frame rate, latency samples, and a p50
/// latency under `max_p50` seconds. Returns the player's result.
async fn play_live(player: &str, url: &str, seconds: u64, max_p50: f64) -> serde_json::Value {
    let r = run_player(player, url, seconds).await;
    assert!(r["fatal"].is_null(), "{player} fatal error: {r}");
    assert_eq!(
        r["pageErrors"].as_array().map(Vec::len),
        Some(0),
        "{player}: {r}"
    );
    let decoded = r["decodedFrames"].as_u64().unwrap_or(0);
    assert!(
        decoded > seconds * 30 / 3,
        "{player} decoded only {decoded} frames: {r}"
    );
    let lat = player_latencies(&r);
    assert!(lat.len() > 10, "{player}: too few latency samples: {r}");
    let p50 = lat[lat.len() / 2];
    let p95 = lat[lat.len() * 95 / 100];
    eprintln!(
        "{player} {url}: latency p50 {p50:.3} s, p95 {p95:.3} s, {decoded} frames decoded, {} stalls, {} SourceBuffer aborts",
        r["stalls"], r["mse"]["aborts"]
    );
    assert!(
        p50 < max_p50,
        "{player} plays {p50:.2} s behind (p95 {p95:.2} s)"
    );
    r
}

/// Byte-range-addressed parts (`hls.byterange_parts`): Shaka fetches the segment being made as
/// a stream and appends it chunk by chunk, so it never re-aligns a part (`abort()`, which makes
/// MSE drop everything up to the next keyframe) after its start: with parts as files of their
/// own Shaka 5.2.12 does that on most parts (BENCHMARKS.md). hls.js plays the same playlist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byterange_parts_play_in_shaka_without_dropped_parts_and_in_hls_js() {
    let server = start(&[("GLASSCAST_HLS_BYTERANGE_PARTS", "true")]).await;
    let _ff = publish(&Source::normal(45.0), &rtmp_url(&server, "live/ranges/s"));
    let base = http_url(&server, "live/ranges/s");
    // Shaka 5.2.12 fails to load a live LL-HLS playlist with fewer than three segments.
    eventually("three segments", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= 3).then_some(())
    })
    .await;
    let r = play_live("shaka", &format!("{base}/index.m3u8"), 12, 2.0).await;
    let aborts = r["mse"]["aborts"].as_u64().expect("abort count");
    // Two at start (attaching, and the first offset); with file parts it is one per part.
    assert!(
        aborts <= 4,
        "Shaka aborted its SourceBuffer {aborts} times: {r}"
    );
    play_live("hlsjs", &format!("{base}/index.m3u8"), 12, 2.0).await;
    server.shutdown(Duration::from_secs(5)).await;
}

/// 100 ms parts end to end: hls.js plays them (PART-HOLD-BACK 0.3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_plays_100_ms_parts() {
    let server = start(&[("GLASSCAST_HLS_PART_TARGET_MS", "100")]).await;
    let _ff = publish(&Source::normal(40.0), &rtmp_url(&server, "live/fast/p100"));
    let base = http_url(&server, "live/fast/p100");
    eventually("a segment", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= 1).then_some(())
    })
    .await;
    let (_, text) = get_text(&format!("{base}/media.m3u8")).await;
    assert!(text.contains("PART-TARGET=0.100"), "{text}");
    assert!(text.contains("PART-HOLD-BACK=0.300"), "{text}");
    play_live("hlsjs", &format!("{base}/index.m3u8"), 12, 1.5).await;
    server.shutdown(Duration::from_secs(5)).await;
}

/// dash.js keeps playing when the publisher reconnects within the grace period: the MPD gets
/// a second Period, and playback crosses into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_js_plays_across_a_reconnect() {
    let server = start(&[("GLASSCAST_STREAM_RECONNECT_GRACE_MS", "10000")]).await;
    let url = rtmp_url(&server, "live/periods/s");
    let base = http_url(&server, "live/periods/s");
    let mut first = publish(&Source::normal(9.0), &url);
    eventually("a segment", Duration::from_secs(20), || async {
        let (s, t) = get_text(&format!("{base}/media.m3u8")).await;
        (s == 200 && parse_live(&t).complete_segments >= 1).then_some(())
    })
    .await;
    let player = tokio::spawn({
        let url = format!("{base}/index.mpd");
        async move { run_player("dashjs", &url, 22).await }
    });
    // The first publisher ends, a second one takes over the same stream.
    assert!(first.wait().await.unwrap().success());
    let _second = publish(&Source::normal(30.0), &url);
    eventually("a second Period", Duration::from_secs(20), || async {
        let (_, mpd) = get_text(&format!("{base}/index.mpd")).await;
        (mpd.matches("<Period").count() >= 2).then_some(())
    })
    .await;
    let r = player.await.unwrap();
    assert!(r["fatal"].is_null(), "dash.js fatal error: {r}");
    assert_eq!(r["pageErrors"].as_array().map(Vec::len), Some(0), "{r}");
    // Playing in the second Period: media time beyond the first publisher's 9 s, and frames
    // decoded from both.
    let current = r["currentTime"].as_f64().unwrap_or(0.0);
    let decoded = r["decodedFrames"].as_u64().unwrap_or(0);
    eprintln!(
        "dash.js across a reconnect: currentTime {current:.1} s, {decoded} frames, {} stalls",
        r["stalls"]
    );
    assert!(
        current > 11.0,
        "dash.js did not cross into the second Period: {r}"
    );
    assert!(
        decoded > 15 * 30 / 3,
        "dash.js decoded only {decoded} frames: {r}"
    );
    server.shutdown(Duration::from_secs(5)).await;
}
