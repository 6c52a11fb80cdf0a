use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use relay::media::{AudioFrame, MediaMessage, VideoFrame};

use super::*;
use crate::cmaf::tests::{aac, avc};
use crate::fragmenter::{FragmentEvent, Fragmenter, FragmenterConfig};

/// Drives a store the way the origin does, with the playlist's numbering reduced to counters.
struct Harness {
    store: MediaStore,
    making: Making,
    next_msn: u64,
}

impl Harness {
    fn new(extra: usize) -> Self {
        Self {
            store: MediaStore::new(extra),
            making: Making {
                part: 0,
                segment: None,
                next_segment: 0,
                ended: false,
            },
            next_msn: 0,
        }
    }

    fn apply(&mut self, ev: FragmentEvent) {
        match ev {
            FragmentEvent::Init(i) => self.store.handle_init(i),
            FragmentEvent::SegmentStart(s) => {
                self.making.segment = Some(self.next_msn);
                self.store.handle_segment_start(s.init_id);
            }
            FragmentEvent::Chunk(c) => self.store.handle_chunk(c),
            FragmentEvent::PdtRevised(_) => {}
            FragmentEvent::Part(p) => {
                self.store.handle_part(self.making.part, p.chunks);
                self.making.part += 1;
            }
            FragmentEvent::SegmentEnd => {
                let msn = self.next_msn;
                self.next_msn += 1;
                self.making.segment = None;
                self.making.next_segment = self.next_msn;
                // A window of two segments.
                let evicted = msn.checked_sub(2);
                self.store.handle_segment_end(msn, evicted);
            }
        }
    }

    fn progress(&mut self, name: MediaName) -> Progress {
        self.store.progress(name, self.making)
    }
}

fn messages(seconds: u32, fps: u32, audio: bool) -> Vec<(MediaMessage, i64)> {
    let mut out = vec![(MediaMessage::VideoConfig(avc()), 0)];
    if audio {
        out.push((MediaMessage::AudioConfig(aac()), 0));
    }
    let mut timed: Vec<(u64, MediaMessage)> = Vec::new();
    for i in 0..seconds * fps {
        let t = u64::from(i) * 1000 / u64::from(fps);
        let idr = i % (2 * fps) == 0;
        let data = Bytes::from(vec![
            0,
            0,
            0,
            5,
            if idr { 0x65 } else { 0x41 },
            1,
            2,
            3,
            i as u8,
        ]);
        timed.push((
            t,
            MediaMessage::Video(VideoFrame {
                dts: t as u32,
                cts: 0,
                idr,
                data,
                tag: Bytes::new(),
            }),
        ));
    }
    if audio {
        for k in 0..u64::from(seconds) * 44100 / 1024 {
            let t = k * 1024 * 1000 / 44100;
            timed.push((
                t,
                MediaMessage::Audio(AudioFrame {
                    dts: t as u32,
                    data: Bytes::from(vec![k as u8; 7]),
                    tag: Bytes::new(),
                }),
            ));
        }
    }
    timed.sort_by_key(|(t, _)| *t);
    out.extend(timed.into_iter().map(|(t, m)| (m, t as i64)));
    out
}

fn joined(p: &Progress) -> Vec<u8> {
    match p {
        Progress::Complete(c) | Progress::Partial(c) => c.concat(),
        Progress::Absent => panic!("absent"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// What a reader sees of a part, a segment or one track of a segment while it is being
    /// made is always a prefix of the complete file, and the complete file is exactly what was
    /// streamed.
    #[test]
    fn media_in_progress_is_a_prefix_of_the_complete_file(
        fps in prop::sample::select(vec![24u32, 30, 60]),
        part_ms in prop::sample::select(vec![100u64, 200, 500]),
        audio in any::<bool>(),
    ) {
        let cfg = FragmenterConfig {
            part_target: std::time::Duration::from_millis(part_ms),
            ..FragmenterConfig::default()
        };
        let mut f = Fragmenter::new(cfg);
        let mut h = Harness::new(1);
        // Every file ever seen in progress and the bytes seen last.
        let mut seen: HashMap<MediaName, Vec<u8>> = HashMap::new();
        let mut chunks = 0;
        for (m, wall) in messages(7, fps, audio) {
            f.handle_message(m, wall).unwrap();
            while let Some(ev) = f.poll_event() {
                chunks += u32::from(matches!(ev, FragmentEvent::Chunk(_)));
                h.apply(ev);
                let mut names = vec![MediaName::Part(h.making.part)];
                if let Some(msn) = h.making.segment {
                    names.push(MediaName::Segment(msn));
                    names.push(MediaName::TrackSegment(msn, TrackKind::Video));
                    if audio {
                        names.push(MediaName::TrackSegment(msn, TrackKind::Audio));
                    }
                }
                for name in names {
                    if let p @ Progress::Partial(_) = h.progress(name) {
                        let now = joined(&p);
                        if let Some(before) = seen.get(&name) {
                            prop_assert!(now.starts_with(before), "{name:?} shrank or changed");
                        }
                        seen.insert(name, now);
                    }
                }
            }
        }
        f.handle_end().unwrap();
        while let Some(ev) = f.poll_event() {
            h.apply(ev);
        }
        prop_assert!(chunks > h.making.part as u32, "parts are made of several chunks");
        let mut checked = 0;
        for (name, partial) in &seen {
            match h.store.complete(*name) {
                Some(done) => {
                    prop_assert!(done.chunks.concat().starts_with(partial), "{name:?}");
                    checked += 1;
                }
                // Retired since.
                None => prop_assert!(matches!(name, MediaName::Part(_) | MediaName::Segment(_) | MediaName::TrackSegment(..))),
            }
        }
        prop_assert!(checked > 3);
    }
}

#[test]
fn hinted_part_and_next_segment_wait_then_fill() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    let mut h = Harness::new(0);
    assert_eq!(h.progress(MediaName::Part(0)), Progress::Partial(vec![]));
    assert_eq!(h.progress(MediaName::Segment(0)), Progress::Partial(vec![]));
    assert_eq!(h.progress(MediaName::Part(1)), Progress::Absent);
    for (m, wall) in messages(5, 30, true) {
        f.handle_message(m, wall).unwrap();
        while let Some(ev) = f.poll_event() {
            h.apply(ev);
        }
    }
    // Two complete segments (0, 1) and segment 2 open: its parts stream, segment 3 waits
    // (the player asked early), segment 4 does not exist.
    assert!(matches!(h.progress(MediaName::Segment(2)), Progress::Partial(p) if !p.is_empty()));
    assert_eq!(h.progress(MediaName::Segment(3)), Progress::Partial(vec![]));
    assert_eq!(
        h.progress(MediaName::TrackSegment(3, TrackKind::Video)),
        Progress::Partial(vec![])
    );
    assert_eq!(h.progress(MediaName::Segment(4)), Progress::Absent);
    assert!(matches!(
        h.progress(MediaName::Segment(1)),
        Progress::Complete(_)
    ));
    // Between two segments (the next not open yet), that next one and the one after it wait.
    let between = Making {
        segment: None,
        next_segment: 3,
        ..h.making
    };
    assert_eq!(
        h.store.progress(MediaName::Segment(3), between),
        Progress::Partial(vec![])
    );
    assert_eq!(
        h.store.progress(MediaName::Segment(4), between),
        Progress::Partial(vec![])
    );
    assert_eq!(
        h.store.progress(MediaName::Segment(5), between),
        Progress::Absent
    );
    // With no extra segments kept, what left the two-segment window is gone.
    assert!(h.store.complete(MediaName::Segment(0)).is_some());
    h.making.ended = true;
    assert_eq!(h.progress(MediaName::Part(h.making.part)), Progress::Absent);
}

#[test]
fn retention_keeps_extra_segments_beyond_the_window() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    let mut h = Harness::new(1);
    for (m, wall) in messages(11, 30, false) {
        f.handle_message(m, wall).unwrap();
        while let Some(ev) = f.poll_event() {
            h.apply(ev);
        }
    }
    // Segments 0..=4 complete; window {3, 4}; evicted 0, 1, 2; one extra kept: 2.
    assert_eq!(h.next_msn, 5);
    assert!(h.store.complete(MediaName::Segment(1)).is_none());
    assert!(h.store.complete(MediaName::Segment(2)).is_some());
    assert!(h.store.complete(MediaName::Segment(4)).is_some());
}

#[test]
fn after_skips_whole_and_partial_pieces() {
    let pieces = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
    assert_eq!(after(&pieces, 0).concat(), b"abcdefg");
    assert_eq!(after(&pieces, 2).concat(), b"cdefg");
    assert_eq!(after(&pieces, 3).concat(), b"defg");
    assert_eq!(after(&pieces, 5).concat(), b"fg");
    assert!(after(&pieces, 7).is_empty());
    assert!(after(&pieces, 9).is_empty());
}

#[test]
fn a_track_the_stream_does_not_have_is_absent_not_awaited() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    let mut h = Harness::new(1);
    for (m, wall) in messages(3, 30, false) {
        f.handle_message(m, wall).unwrap();
        while let Some(ev) = f.poll_event() {
            h.apply(ev);
        }
    }
    let open = h.making.segment.expect("a segment is open");
    assert!(matches!(
        h.progress(MediaName::TrackSegment(open, TrackKind::Video)),
        Progress::Partial(p) if !p.is_empty()
    ));
    assert_eq!(
        h.progress(MediaName::TrackSegment(open, TrackKind::Audio)),
        Progress::Absent
    );
}

/// DASH's single-track view of a segment is the same whether it was streamed while being made
/// (extracted chunk by chunk) or only asked for once complete (extracted then, from its parts).
#[test]
fn track_views_made_late_equal_views_streamed() {
    let mut f = Fragmenter::new(FragmenterConfig::default());
    let (mut streamed, mut late) = (Harness::new(1), Harness::new(1));
    for (m, wall) in messages(7, 30, true) {
        f.handle_message(m, wall).unwrap();
        while let Some(ev) = f.poll_event() {
            streamed.apply(ev.clone());
            late.apply(ev);
            if let Some(open) = streamed.making.segment {
                for kind in [TrackKind::Video, TrackKind::Audio] {
                    let _ = streamed.progress(MediaName::TrackSegment(open, kind));
                }
            }
        }
    }
    assert_eq!(streamed.next_msn, 3);
    for msn in 0..3 {
        for kind in [TrackKind::Video, TrackKind::Audio] {
            let name = MediaName::TrackSegment(msn, kind);
            let a = streamed.store.complete(name).expect("kept").chunks.concat();
            let b = late
                .store
                .complete(name)
                .expect("made on request")
                .chunks
                .concat();
            assert!(!a.is_empty());
            assert_eq!(a, b, "{name:?}");
        }
    }
}
