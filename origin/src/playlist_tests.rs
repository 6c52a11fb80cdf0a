use std::collections::HashSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn names() -> Names {
    Names {
        prefix: "abc".into(),
    }
}

fn pl() -> Playlist {
    let mut p = Playlist::new(PlaylistConfig::default(), names());
    p.handle_init(1);
    p
}

/// Adds a segment of `parts` 200 ms parts (90 kHz), starting the segment first.
fn segment(p: &mut Playlist, parts: usize, end: bool) {
    let msn = p.next_msn;
    p.handle_segment_start(
        false,
        1_700_000_000_000 + msn as i64 * 2000,
        msn * 180_000,
        90_000,
    );
    for i in 0..parts {
        p.handle_part(PartInfo {
            duration: 18_000,
            independent: i % 10 == 0,
            bytes: 1000,
            video_samples: 6,
            audio: None,
            audio_bytes: 0,
        });
    }
    if end {
        p.handle_segment_end();
    }
}

#[test]
fn golden_live_playlist() {
    let mut p = pl();
    segment(&mut p, 10, true);
    segment(&mut p, 3, false);
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    let mut expected = String::from(
        "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.600
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-MAP:URI=\"abc-init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
",
    );
    for i in 0..10 {
        expected += &format!(
            "#EXT-X-PART:DURATION=0.20000,URI=\"abc-p{i}.m4s\"{}\n",
            if i == 0 { ",INDEPENDENT=YES" } else { "" }
        );
    }
    expected += "#EXTINF:2.00000,\nabc-s0.m4s\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n";
    for i in 10..13 {
        expected += &format!(
            "#EXT-X-PART:DURATION=0.20000,URI=\"abc-p{i}.m4s\"{}\n",
            if i == 10 { ",INDEPENDENT=YES" } else { "" }
        );
    }
    expected += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc-p13.m4s\"\n";
    assert_eq!(text, expected);

    // m3u8-rs (an independent parser) reads it as a media playlist.
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(parsed.segments.len(), 1);
    assert_eq!(parsed.target_duration, 2);
}

#[test]
fn byterange_parts_are_ranges_of_their_segment() {
    let mut p = Playlist::new(
        PlaylistConfig {
            byterange_parts: true,
            ..PlaylistConfig::default()
        },
        names(),
    );
    p.handle_init(1);
    segment(&mut p, 10, true);
    let between = String::from_utf8(p.render(false).to_vec()).unwrap();
    // A new segment's first part starts at its first byte.
    assert!(
        between.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc-s1.m4s\"\n"),
        "{between}"
    );
    segment(&mut p, 3, false);
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    for (i, line) in text
        .lines()
        .filter(|l| l.contains("URI=\"abc-s0.m4s\""))
        .enumerate()
    {
        let independent = if i == 0 { ",INDEPENDENT=YES" } else { "" };
        assert_eq!(
            line,
            format!(
                "#EXT-X-PART:DURATION=0.20000,URI=\"abc-s0.m4s\",BYTERANGE=\"1000@{}\"{independent}",
                i * 1000
            )
        );
    }
    assert!(text.contains("#EXTINF:2.00000,\nabc-s0.m4s\n"), "{text}");
    assert!(
        text.contains("URI=\"abc-s1.m4s\",BYTERANGE=\"1000@2000\"\n"),
        "{text}"
    );
    assert!(
        text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc-s1.m4s\",BYTERANGE-START=3000\n"),
        "{text}"
    );
    let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(parsed.segments.len(), 1);
}

#[test]
fn ended_playlist_has_endlist_and_no_parts() {
    let mut p = pl();
    segment(&mut p, 10, true);
    segment(&mut p, 4, false);
    p.handle_end();
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    assert!(!text.contains("PRELOAD-HINT"));
    assert!(!text.contains("#EXT-X-PART:"));
    assert_eq!(text.matches("#EXTINF").count(), 2);
}

#[test]
fn window_is_bounded_and_old_parts_disappear() {
    let mut p = pl();
    for _ in 0..30 {
        segment(&mut p, 10, true);
    }
    assert_eq!(p.segments().count(), 12);
    assert_eq!(p.first_msn(), 18);
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:18\n"));
    // Parts only for the last two complete segments: the live edge (preload hint) is the third.
    assert_eq!(text.matches("#EXT-X-PART:").count(), 20);
    segment(&mut p, 2, false);
    // With a segment in progress, still the last two complete ones and the open one.
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    assert_eq!(text.matches("#EXT-X-PART:").count(), 22);
    assert!(!text.contains("abc-p270.m4s\""), "{text}");
}

#[test]
fn delta_update_skips_old_segments() {
    let mut p = pl();
    for _ in 0..12 {
        segment(&mut p, 10, true);
    }
    let text = String::from_utf8(p.render(true).to_vec()).unwrap();
    // 24 s listed, CAN-SKIP-UNTIL 12 s: the first 6 segments are skipped.
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n"), "{text}");
    assert_eq!(text.matches("#EXTINF").count(), 6);
    assert!(text.contains("abc-s6.m4s"));
    assert!(!text.contains("abc-s5.m4s"));
    // The map is repeated for the first listed segment.
    assert!(text.contains("#EXT-X-MAP"));
}

#[test]
fn discontinuity_and_new_map() {
    let mut p = pl();
    segment(&mut p, 10, true);
    p.handle_init(2);
    p.handle_segment_start(true, 1_700_000_010_000, 180_000, 90_000);
    p.handle_part(PartInfo {
        duration: 18_000,
        independent: true,
        bytes: 10,
        video_samples: 6,
        audio: None,
        audio_bytes: 0,
    });
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    let disc = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
    let map2 = text.find("#EXT-X-MAP:URI=\"abc-init2.mp4\"").unwrap();
    assert!(disc < map2);
    for _ in 0..20 {
        segment(&mut p, 10, true);
    }
    // The discontinuity left the window and is counted.
    let text = String::from_utf8(p.render(false).to_vec()).unwrap();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
}

#[test]
fn blocking_request_waits_for_the_part() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 3, false);
    // Existing part: answer at once.
    assert_eq!(
        p.handle_blocking_request(
            1,
            BlockingRequest {
                msn: 0,
                part: Some(2)
            },
            now
        ),
        Decision::Ready
    );
    // Next part: hold.
    assert_eq!(
        p.handle_blocking_request(
            2,
            BlockingRequest {
                msn: 0,
                part: Some(3)
            },
            now
        ),
        Decision::Wait
    );
    // Whole segment: hold until it completes.
    assert_eq!(
        p.handle_blocking_request(3, BlockingRequest { msn: 0, part: None }, now),
        Decision::Wait
    );
    assert_eq!(p.poll_ready(), None);
    p.handle_part(PartInfo {
        duration: 18_000,
        independent: false,
        bytes: 1,
        video_samples: 6,
        audio: None,
        audio_bytes: 0,
    });
    assert_eq!(p.poll_ready(), Some((2, Outcome::Ready)));
    assert_eq!(p.poll_ready(), None);
    p.handle_segment_end();
    assert_eq!(p.poll_ready(), Some((3, Outcome::Ready)));
    assert_eq!(p.waiting(), 0);
}

#[test]
fn part_beyond_a_finished_segment_means_next_segment() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 10, true);
    // hls.js may ask for part 10 of segment 0 (it guessed another part would come).
    assert_eq!(
        p.handle_blocking_request(
            1,
            BlockingRequest {
                msn: 0,
                part: Some(10)
            },
            now
        ),
        Decision::Wait
    );
    segment(&mut p, 1, false);
    assert_eq!(p.poll_ready(), Some((1, Outcome::Ready)));
}

#[test]
fn far_future_msn_is_400_and_timeouts_are_503() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 10, true);
    segment(&mut p, 1, false);
    // Last msn is 1: 3 is allowed (two ahead), 4 is not.
    assert!(matches!(
        p.handle_blocking_request(1, BlockingRequest { msn: 4, part: None }, now),
        Decision::BadRequest(_)
    ));
    assert_eq!(
        p.handle_blocking_request(2, BlockingRequest { msn: 3, part: None }, now),
        Decision::Wait
    );
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_secs(6)));
    p.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(p.poll_ready(), None);
    p.handle_timeout(now + Duration::from_secs(6));
    assert_eq!(p.poll_ready(), Some((2, Outcome::TimedOut)));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn after_the_end_directives_are_ignored() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 2, false);
    p.handle_end();
    assert_eq!(
        p.handle_blocking_request(
            5,
            BlockingRequest {
                msn: 99,
                part: Some(0)
            },
            now
        ),
        Decision::Ready
    );
}

#[test]
fn cancelled_waiters_are_forgotten() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 1, false);
    assert_eq!(
        p.handle_blocking_request(
            1,
            BlockingRequest {
                msn: 0,
                part: Some(1)
            },
            now
        ),
        Decision::Wait
    );
    p.cancel(1);
    p.handle_part(PartInfo {
        duration: 18_000,
        independent: false,
        bytes: 1,
        video_samples: 6,
        audio: None,
        audio_bytes: 0,
    });
    assert_eq!(p.poll_ready(), None);
    assert_eq!(p.poll_timeout(), None);
}

#[derive(Debug, Clone)]
enum Op {
    Part,
    EndSegment,
    Request { ahead_msn: i8, part: Option<u8> },
    Advance(u16),
    Cancel(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Part),
        1 => Just(Op::EndSegment),
        3 => (-3i8..4, proptest::option::of(0u8..12)).prop_map(|(ahead_msn, part)| Op::Request { ahead_msn, part }),
        2 => (0u16..3000).prop_map(Op::Advance),
        1 => any::<u8>().prop_map(Op::Cancel),
    ]
}

proptest! {
    #[test]
    fn waiters_are_answered_exactly_once(ops in proptest::collection::vec(op(), 1..300)) {
        let mut p = pl();
        let t0 = Instant::now();
        let mut now = t0;
        let mut next_id = 0u64;
        let mut held = HashSet::new();
        let mut answered = HashSet::new();
        let mut last_first_msn = 0;
        for op in ops {
            match op {
                Op::Part => {
                    if p.open_segment().is_none() {
                        let msn = p.next_msn;
                        p.handle_segment_start(false, 0, msn * 180_000, 90_000);
                    }
                    p.handle_part(PartInfo { duration: 18_000, independent: false, bytes: 100, video_samples: 6, audio: None, audio_bytes: 0 });
                }
                Op::EndSegment => { p.handle_segment_end(); }
                Op::Request { ahead_msn, part } => {
                    next_id += 1;
                    let msn = (p.next_msn as i64 - 1 + i64::from(ahead_msn)).max(0) as u64;
                    let d = p.handle_blocking_request(next_id, BlockingRequest { msn, part: part.map(u64::from) }, now);
                    let last = p.next_msn.saturating_sub(1);
                    prop_assert_eq!(matches!(d, Decision::BadRequest(_)), msn > last + 2);
                    if d == Decision::Wait { held.insert(next_id); }
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    if p.poll_timeout().is_some_and(|t| t <= now) { p.handle_timeout(now); }
                }
                Op::Cancel(k) => {
                    if let Some(id) = held.iter().copied().nth(usize::from(k) % held.len().max(1)) {
                        p.cancel(id);
                        held.remove(&id);
                    }
                }
            }
            while let Some((id, _)) = p.poll_ready() {
                prop_assert!(held.remove(&id), "answered a request not held: {}", id);
                prop_assert!(answered.insert(id), "answered twice: {}", id);
            }
            prop_assert!(p.segments().count() <= 12);
            prop_assert!(p.first_msn() >= last_first_msn, "media sequence went backwards");
            last_first_msn = p.first_msn();
            prop_assert_eq!(p.waiting(), held.len());
        }
        // Every held request ends by the deadline at the latest.
        now += Duration::from_secs(3 * p.target_duration());
        p.handle_timeout(now);
        while let Some((id, _)) = p.poll_ready() {
            prop_assert!(held.remove(&id));
        }
        prop_assert!(held.is_empty(), "unanswered: {:?}", held);
    }
}

#[test]
fn multivariant_lists_codecs_resolution_and_rate() {
    use crate::cmaf::tests::{aac, avc};
    let tracks = crate::cmaf::TrackSet {
        video: Some(avc()),
        audio: Some(aac()),
    };
    let text = render_multivariant(&tracks, 2_100_000, Some(29.97), "media.m3u8");
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=2100000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970\nmedia.m3u8\n"
    );
    let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(parsed.variants[0].bandwidth, 2_100_000);
}

#[test]
fn bandwidth_and_frame_rate_are_measured() {
    let mut p = pl();
    segment(&mut p, 10, true);
    // 10 parts of 1000 bytes over 2 s = 40 kbit/s; 60 frames over 2 s.
    assert_eq!(p.peak_bandwidth(), 40_000);
    assert_eq!(p.frame_rate(), Some(30.0));
}

#[test]
fn segment_end_does_not_release_a_part_waiter() {
    let mut p = pl();
    let now = Instant::now();
    segment(&mut p, 3, false);
    // Waiting for part 3 of segment 0; the segment then closes with only 3 parts.
    assert_eq!(
        p.handle_blocking_request(
            1,
            BlockingRequest {
                msn: 0,
                part: Some(3)
            },
            now
        ),
        Decision::Wait
    );
    p.handle_segment_end();
    assert_eq!(p.poll_ready(), None, "no new part exists yet");
    segment(&mut p, 1, false);
    assert_eq!(p.poll_ready(), Some((1, Outcome::Ready)));
}

#[test]
fn a_plain_request_waits_for_the_part_being_made_only_while_one_is() {
    let mut p = pl();
    p.handle_init(1);
    assert_eq!(p.fresh_hold(), None, "nothing listed yet");
    segment(&mut p, 3, false);
    assert_eq!(p.fresh_hold(), Some(Duration::from_millis(300)));
    assert_eq!(
        p.next_position(),
        Some(BlockingRequest {
            msn: 0,
            part: Some(3)
        })
    );
    // That position is what a blocking request for the hinted part waits on.
    assert_eq!(
        p.handle_blocking_request(7, p.next_position().unwrap(), Instant::now()),
        Decision::Wait
    );
    p.handle_part(PartInfo {
        duration: 18_000,
        independent: false,
        bytes: 1000,
        video_samples: 6,
        audio: None,
        audio_bytes: 0,
    });
    assert_eq!(p.poll_ready(), Some((7, Outcome::Ready)));
    // The publisher left (segment closed, stream not ended): nothing is being made.
    p.handle_segment_end();
    assert_eq!(p.fresh_hold(), None);
    segment(&mut p, 1, false);
    assert!(p.fresh_hold().is_some());
    p.handle_end();
    assert_eq!(p.fresh_hold(), None, "ended");
    let mut off = Playlist::new(
        PlaylistConfig {
            fresh_playlist: false,
            ..PlaylistConfig::default()
        },
        names(),
    );
    off.handle_init(1);
    segment(&mut off, 3, false);
    assert_eq!(off.fresh_hold(), None, "switched off");
}

#[test]
fn part_hold_back_is_three_parts_unless_configured() {
    let mut p = pl();
    segment(&mut p, 3, false);
    assert!(String::from_utf8_lossy(&p.render(false)).contains("PART-HOLD-BACK=0.600"));
    let cfg = PlaylistConfig {
        part_hold_back: Some(Duration::from_millis(450)),
        ..PlaylistConfig::default()
    };
    let mut p = Playlist::new(cfg, names());
    p.handle_init(1);
    segment(&mut p, 3, false);
    assert!(String::from_utf8_lossy(&p.render(false)).contains("PART-HOLD-BACK=0.450"));
}

#[test]
fn a_playlist_continues_another_nodes_numbering() {
    // The stream's playlist on the node it left: a segment, then one after a discontinuity.
    let mut old = pl();
    segment(&mut old, 10, true);
    old.handle_segment_start(true, 1_700_000_002_000, 180_000, 90_000);
    old.handle_part(PartInfo {
        duration: 18_000,
        independent: true,
        bytes: 10,
        video_samples: 6,
        audio: None,
        audio_bytes: 0,
    });
    let (msn, part, disc) = old.position();
    assert_eq!((msn, part, disc), (2, 11, 1));
    // The node taking it over numbers on, on a new timeline.
    let mut new = Playlist::new(PlaylistConfig::default(), names());
    new.continue_from(msn + 1, part + 20, disc + 1);
    new.handle_init(1);
    segment(&mut new, 3, false);
    let text = String::from_utf8(new.render(false).to_vec()).unwrap();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"), "{text}");
    assert!(text.contains("abc-p31.m4s"), "{text}");
    assert_eq!(new.position(), (4, 34, 2));
    // Once media has come, it is too late to renumber.
    new.continue_from(100, 100, 100);
    assert_eq!(new.position(), (4, 34, 2));
}
