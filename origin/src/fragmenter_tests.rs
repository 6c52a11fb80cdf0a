use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mp4_atom::{Decode, Moof};
use proptest::prelude::*;
use relay::media::{AudioFrame, MediaMessage, VideoFrame};

use super::*;
use crate::cmaf::tests::{aac, avc};

#[derive(Debug, Clone)]
struct Synth {
    video: bool,
    audio: bool,
    fps: u32,
    gop: u32,
    bframes: bool,
    start_ms: u32,
    seconds: u32,
}

fn video_frame(i: u32, dts: u32, idr: bool, cts: i32) -> MediaMessage {
    let nal = if idr { 0x65 } else { 0x41 };
    let idx = i.to_be_bytes();
    let data = Bytes::from(vec![0, 0, 0, 5, nal, idx[0], idx[1], idx[2], idx[3]]);
    MediaMessage::Video(VideoFrame {
        dts,
        cts,
        idr,
        data,
        tag: Bytes::new(),
    })
}

fn audio_frame(k: u32, dts: u32) -> MediaMessage {
    MediaMessage::Audio(AudioFrame {
        dts,
        data: Bytes::from(k.to_be_bytes().to_vec()),
        tag: Bytes::new(),
    })
}

/// Messages in arrival order with their wall-clock arrival time (ms).
fn synth(p: &Synth) -> Vec<(MediaMessage, i64)> {
    let mut out = Vec::new();
    if p.video {
        out.push((MediaMessage::VideoConfig(avc()), 0));
    }
    if p.audio {
        out.push((MediaMessage::AudioConfig(aac()), 0));
    }
    let mut frames: Vec<(u64, MediaMessage)> = Vec::new();
    if p.video {
        for i in 0..p.seconds * p.fps {
            let t = u64::from(i) * 1000 / u64::from(p.fps);
            let interval = (1000 / p.fps) as i32;
            let cts = if p.bframes {
                [2 * interval, 0, -interval + interval][i as usize % 3]
            } else {
                0
            };
            let dts = p.start_ms.wrapping_add(t as u32);
            frames.push((t, video_frame(i, dts, i % p.gop == 0, cts)));
        }
    }
    if p.audio {
        let n = u64::from(p.seconds) * 44100 / 1024;
        for k in 0..n as u32 {
            let t = u64::from(k) * 1024 * 1000 / 44100;
            frames.push((t, audio_frame(k, p.start_ms.wrapping_add(t as u32))));
        }
    }
    frames.sort_by_key(|(t, _)| *t);
    out.extend(
        frames
            .into_iter()
            .map(|(t, m)| (m, 1_700_000_000_000 + t as i64)),
    );
    out
}

#[derive(Debug, Default)]
struct Seg {
    start: Option<SegmentStart>,
    /// Each part and the `moof` of each of its chunks.
    parts: Vec<(Part, Vec<Moof>)>,
    /// Chunk bytes emitted since the last part.
    chunks: Vec<u8>,
    complete: bool,
}

/// The `moof` of every chunk (`moof` + `mdat`) of a part.
fn moofs(data: &[u8]) -> Vec<Moof> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let mut cursor = rest;
        out.push(Moof::decode(&mut cursor).expect("a chunk starts with a moof"));
        let mdat = u32::from_be_bytes(cursor[..4].try_into().unwrap()) as usize;
        assert_eq!(&cursor[4..8], b"mdat");
        rest = &cursor[mdat..];
    }
    out
}

fn run(
    cfg: FragmenterConfig,
    msgs: Vec<(MediaMessage, i64)>,
) -> (Vec<Arc<InitSegment>>, Vec<Seg>, Fragmenter) {
    let mut f = Fragmenter::new(cfg);
    let mut inits = Vec::new();
    let mut segs: Vec<Seg> = Vec::new();
    let drain = |f: &mut Fragmenter, inits: &mut Vec<Arc<InitSegment>>, segs: &mut Vec<Seg>| {
        while let Some(ev) = f.poll_event() {
            match ev {
                FragmentEvent::Init(i) => inits.push(i),
                FragmentEvent::SegmentStart(s) => segs.push(Seg {
                    start: Some(s),
                    ..Default::default()
                }),
                FragmentEvent::PdtRevised(pdt) => {
                    let seg = segs.last_mut().expect("revision inside a segment");
                    let start = seg.start.as_mut().expect("started");
                    assert!(pdt < start.pdt_ms, "a revision moves PDT earlier");
                    start.pdt_ms = pdt;
                    assert!(!seg.complete, "only the open segment is revised");
                }
                FragmentEvent::Chunk(c) => {
                    let seg = segs.last_mut().expect("chunk inside a segment");
                    assert!(!seg.complete, "chunk after segment end");
                    seg.chunks.extend_from_slice(&c);
                }
                FragmentEvent::Part(p) => {
                    let seg = segs.last_mut().expect("part inside a segment");
                    assert_eq!(
                        std::mem::take(&mut seg.chunks),
                        p.chunks.concat(),
                        "a part is exactly the chunks emitted before it"
                    );
                    let moof = moofs(&p.chunks.concat());
                    assert_eq!(moof.len(), p.chunks.len(), "a moof per chunk");
                    assert!(!seg.complete, "part after segment end");
                    seg.parts.push((p, moof));
                }
                FragmentEvent::SegmentEnd => {
                    let seg = segs.last_mut().expect("segment end without start");
                    assert!(!seg.complete, "segment ended twice");
                    seg.complete = true;
                }
            }
        }
    };
    for (m, wall) in msgs {
        f.handle_message(m, wall).unwrap();
        drain(&mut f, &mut inits, &mut segs);
    }
    f.handle_end().unwrap();
    drain(&mut f, &mut inits, &mut segs);
    (inits, segs, f)
}

/// (track id, dts, duration, sync) of every sample in a part, chunk after chunk.
fn samples(moofs: &[Moof]) -> Vec<(u32, u64, u32, bool)> {
    let mut v = Vec::new();
    for traf in moofs.iter().flat_map(|m| &m.traf) {
        let mut dts = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        for e in traf.trun[0].samples.iter() {
            let d = e.duration.unwrap();
            v.push((traf.tfhd.track_id, dts, d, e.flags.unwrap() == 0x0200_0000));
            dts += u64::from(d);
        }
    }
    v
}

/// Invariants every fragmenter output must keep.
fn check_invariants(cfg: &FragmenterConfig, segs: &[Seg], video_master: bool) {
    let mut last_dts: std::collections::HashMap<u32, u64> = Default::default();
    for (si, seg) in segs.iter().enumerate() {
        assert!(seg.complete, "segment {si} not completed");
        assert!(!seg.parts.is_empty(), "segment {si} has no parts");
        let start = seg.start.as_ref().unwrap();
        let ts = u64::from(start.timescale);
        // The first part is independent and starts with a sync sample of the master track.
        assert!(
            seg.parts[0].0.independent,
            "segment {si} does not start independent"
        );
        let master_id = 1;
        let first = samples(&seg.parts[0].1);
        let m0 = first.iter().find(|s| s.0 == master_id).unwrap();
        assert!(m0.3, "segment {si} starts with a non-sync sample");
        assert_eq!(m0.1, start.start, "segment start time");
        let mut expected = start.start;
        for (pi, (part, moof)) in seg.parts.iter().enumerate() {
            let ss = samples(moof);
            let master: Vec<_> = ss.iter().filter(|s| s.0 == master_id).collect();
            // Parts are contiguous on the master track and durations add up.
            assert_eq!(
                master[0].1, expected,
                "segment {si} part {pi} not contiguous"
            );
            let dur: u64 = master.iter().map(|s| u64::from(s.2)).sum();
            assert_eq!(dur, part.duration);
            expected += dur;
            // No part longer than the target, unless it is a single sample.
            let target = cfg.part_target.as_micros() as u64 * ts / 1_000_000;
            assert!(
                part.duration <= target || master.len() == 1,
                "part {pi} of segment {si} is {} > {target}",
                part.duration
            );
            assert_eq!(part.independent, master[0].3);
            // Per-track DTS strictly increasing across everything.
            for s in &ss {
                if let Some(prev) = last_dts.get(&s.0) {
                    assert!(s.1 > *prev, "track {} dts went from {prev} to {}", s.0, s.1);
                }
                last_dts.insert(s.0, s.1);
            }
        }
        // Segments are cut at the first sync sample at/after the target, so only the last
        // may be shorter than the target.
        let seg_dur: u64 = seg.parts.iter().map(|p| p.0.duration).sum();
        let seg_target = cfg.segment_target.as_micros() as u64 * ts / 1_000_000;
        if si + 1 < segs.len() && !segs[si + 1].start.as_ref().unwrap().discontinuity {
            assert!(seg_dur >= seg_target, "segment {si} cut early: {seg_dur}");
        }
        let _ = video_master;
    }
}

fn cfg(part_ms: u64, seg_ms: u64) -> FragmenterConfig {
    FragmenterConfig {
        part_target: Duration::from_millis(part_ms),
        segment_target: Duration::from_millis(seg_ms),
        max_gap: Duration::from_secs(5),
    }
}

fn count_samples(segs: &[Seg], track: u32) -> usize {
    segs.iter()
        .flat_map(|s| &s.parts)
        .map(|(_, m)| samples(m).iter().filter(|s| s.0 == track).count())
        .sum()
}

#[test]
fn glasses_stream_720p30_with_audio() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: 0,
        seconds: 10,
    };
    let c = cfg(200, 2000);
    let (inits, segs, f) = run(c, synth(&p));
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].tracks.codecs(), "avc1.64001f,mp4a.40.2");
    check_invariants(&c, &segs, true);
    assert_eq!(segs.len(), 5);
    // 2 s segments of ten 200 ms parts.
    // The last segment's last frame has no successor, so it only estimates its duration.
    for seg in &segs[..4] {
        assert_eq!(seg.parts.len(), 10);
        assert_eq!(seg.parts.iter().map(|p| p.0.duration).sum::<u64>(), 180_000);
    }
    assert_eq!(count_samples(&segs, 1), 300, "every video frame packaged");
    assert_eq!(count_samples(&segs, 2) as u64, f.stats().audio_frames);
    // PDT of each segment follows media time from the first arrival.
    let pdts: Vec<i64> = segs
        .iter()
        .map(|s| s.start.as_ref().unwrap().pdt_ms)
        .collect();
    assert_eq!(pdts[1] - pdts[0], 2000);
}

#[test]
fn all_intra_segments_keep_target_length() {
    let p = Synth {
        video: true,
        audio: false,
        fps: 14,
        gop: 1,
        bframes: false,
        start_ms: 0,
        seconds: 10,
    };
    let c = cfg(200, 2000);
    let (_, segs, _) = run(c, synth(&p));
    check_invariants(&c, &segs, true);
    for seg in &segs[..segs.len() - 1] {
        let d: u64 = seg.parts.iter().map(|p| p.0.duration).sum();
        assert!((180_000..=180_000 + 90_000 / 14 + 90).contains(&d), "{d}");
        // Every part starts with a keyframe.
        assert!(seg.parts.iter().all(|p| p.0.independent));
    }
}

#[test]
fn long_gop_gives_long_segments_but_short_parts() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 300,
        bframes: true,
        start_ms: 0,
        seconds: 25,
    };
    let c = cfg(200, 2000);
    let (_, segs, _) = run(c, synth(&p));
    check_invariants(&c, &segs, true);
    assert_eq!(segs.len(), 3);
    assert_eq!(
        segs[0].parts.iter().map(|p| p.0.duration).sum::<u64>(),
        900_000
    );
    assert!(!segs[0].parts[1].0.independent);
}

#[test]
fn timestamp_wrap_is_continuous() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: u32::MAX - 3000,
        seconds: 8,
    };
    let c = cfg(200, 2000);
    let (_, segs, f) = run(c, synth(&p));
    check_invariants(&c, &segs, true);
    assert_eq!(f.stats().discontinuities, 0);
    assert!(
        segs.iter()
            .all(|s| !s.start.as_ref().unwrap().discontinuity)
    );
    assert_eq!(count_samples(&segs, 1), 240);
}

#[test]
fn backward_jump_is_a_discontinuity() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: 50_000,
        seconds: 4,
    };
    let mut msgs = synth(&p);
    let mut again = synth(&Synth {
        start_ms: 1000,
        ..p.clone()
    });
    again.drain(..2); // configs unchanged
    msgs.extend(again);
    let c = cfg(200, 2000);
    let (inits, segs, f) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert_eq!(inits.len(), 1, "same codec config, same init");
    assert_eq!(f.stats().discontinuities, 1);
    let disc: Vec<bool> = segs
        .iter()
        .map(|s| s.start.as_ref().unwrap().discontinuity)
        .collect();
    assert_eq!(disc, vec![false, false, true, false]);
}

#[test]
fn audio_stepping_back_a_little_is_not_a_discontinuity() {
    // A looped file whose audio runs 100 ms past its video: at the loop, audio timestamps step
    // back by about 50 ms. That must not close the segment (it would stall video for a GOP).
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: 0,
        seconds: 4,
    };
    let mut msgs = synth(&p);
    msgs.push((audio_frame(9999, 4010), 0));
    msgs.push((audio_frame(9998, 4033), 0));
    let mut again = synth(&Synth {
        start_ms: 3990,
        ..p.clone()
    });
    again.drain(..2);
    msgs.extend(again);
    let c = cfg(200, 2000);
    let (_, segs, f) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert_eq!(f.stats().discontinuities, 0);
    assert!(
        f.stats().dropped_audio_overlap > 0,
        "overlapping audio is dropped instead"
    );
    assert_eq!(
        count_samples(&segs, 1),
        240,
        "no video waits for a later keyframe"
    );
}

#[test]
fn forward_gap_is_a_discontinuity() {
    let p = Synth {
        video: true,
        audio: false,
        fps: 30,
        gop: 30,
        bframes: false,
        start_ms: 0,
        seconds: 3,
    };
    let mut msgs = synth(&p);
    let mut later = synth(&Synth {
        start_ms: 60_000,
        ..p.clone()
    });
    later.drain(..1);
    msgs.extend(later);
    let c = cfg(200, 1000);
    let (_, segs, _) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert!(segs[3].start.as_ref().unwrap().discontinuity);
    // Output time continues where it stopped instead of jumping a minute ahead.
    let end_of_2 = segs[2].start.as_ref().unwrap().start
        + segs[2].parts.iter().map(|p| p.0.duration).sum::<u64>();
    assert_eq!(segs[3].start.as_ref().unwrap().start, end_of_2);
}

#[test]
fn config_change_gives_new_init_and_discontinuity() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 30,
        bframes: false,
        start_ms: 0,
        seconds: 3,
    };
    let mut msgs = synth(&p);
    let mut changed = avc().as_ref().clone();
    let mut rec = changed.record.to_vec();
    rec[3] = 40; // level 4.0
    changed.record = Bytes::from(rec);
    changed.level = 40;
    msgs.push((MediaMessage::VideoConfig(Arc::new(changed)), 0));
    let mut more = synth(&Synth {
        start_ms: 3000,
        ..p.clone()
    });
    more.drain(..2);
    msgs.extend(more);
    let c = cfg(200, 1000);
    let (inits, segs, _) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert_eq!(inits.len(), 2);
    assert_eq!(inits[1].tracks.codecs(), "avc1.640028,mp4a.40.2");
    let firsts: Vec<(bool, u32)> = segs
        .iter()
        .map(|s| {
            let st = s.start.as_ref().unwrap();
            (st.discontinuity, st.init_id)
        })
        .collect();
    assert_eq!(
        firsts,
        vec![
            (false, 1),
            (false, 1),
            (false, 1),
            (true, 2),
            (false, 2),
            (false, 2)
        ]
    );
}

#[test]
fn publisher_reconnect_continues_timeline() {
    let p = Synth {
        video: true,
        audio: true,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: 0,
        seconds: 4,
    };
    let mut msgs = synth(&p);
    msgs.push((MediaMessage::PublisherLeft, 0));
    msgs.push((MediaMessage::PublisherResumed, 0));
    // The new connection starts at timestamp 0 again and resends configs.
    msgs.extend(synth(&p));
    let c = cfg(200, 2000);
    let (inits, segs, _) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert_eq!(inits.len(), 1);
    assert_eq!(segs.len(), 4);
    assert!(segs[2].start.as_ref().unwrap().discontinuity);
    assert_eq!(segs[2].start.as_ref().unwrap().start, 4 * 90_000 - 90);
}

#[test]
fn audio_only_and_video_only() {
    for (video, audio) in [(false, true), (true, false)] {
        let p = Synth {
            video,
            audio,
            fps: 30,
            gop: 60,
            bframes: false,
            start_ms: 0,
            seconds: 6,
        };
        let c = cfg(200, 2000);
        let (inits, segs, _) = run(c, synth(&p));
        assert_eq!(inits.len(), 1);
        assert_eq!(inits[0].tracks.video.is_some(), video);
        assert_eq!(inits[0].tracks.audio.is_some(), audio);
        check_invariants(&c, &segs, video);
        assert!(segs.len() >= 2);
        if !video {
            assert_eq!(segs[0].start.as_ref().unwrap().timescale, 44100);
            assert!(segs.iter().flat_map(|s| &s.parts).all(|p| p.0.independent));
        }
    }
}

#[test]
fn frames_before_the_first_idr_are_dropped() {
    let p = Synth {
        video: true,
        audio: false,
        fps: 30,
        gop: 60,
        bframes: false,
        start_ms: 0,
        seconds: 4,
    };
    let mut msgs = synth(&p);
    // Remove the first IDR: the stream starts at the second GOP.
    msgs.remove(1);
    let c = cfg(200, 2000);
    let (_, segs, f) = run(c, msgs);
    check_invariants(&c, &segs, true);
    assert_eq!(count_samples(&segs, 1), 60);
    assert_eq!(f.stats().dropped_waiting, 59);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn invariants_hold_for_any_stream(
        fps in 5u32..=60,
        gop_s in prop::sample::select(vec![0u32, 1, 2, 4, 10]),
        video in any::<bool>(),
        audio in any::<bool>(),
        bframes in any::<bool>(),
        start_ms in any::<u32>(),
        part_ms in 100u64..=1000,
        seg_ms in 1000u64..=4000,
    ) {
        prop_assume!(video || audio);
        let p = Synth {
            video,
            audio,
            fps,
            gop: (gop_s * fps).max(1),
            bframes,
            start_ms,
            seconds: 12,
        };
        let c = cfg(part_ms, seg_ms);
        let (_, segs, f) = run(c, synth(&p));
        check_invariants(&c, &segs, video);
        if video {
            // Everything after the first IDR is packaged.
            prop_assert_eq!(count_samples(&segs, 1) as u32, p.seconds * fps);
        } else {
            prop_assert_eq!(count_samples(&segs, 1) as u64, f.stats().audio_frames);
        }
    }
}

/// An encoder bursts after its handshake: its first frames arrive late, later ones on time.
/// The first segment's PDT follows the earliest arrival, later segments continue from it,
/// and nothing after the first segment moves.
#[test]
fn pdt_follows_the_earliest_arrival_in_the_first_segment() {
    let p = Synth {
        video: true,
        audio: false,
        fps: 30,
        gop: 30,
        bframes: false,
        start_ms: 0,
        seconds: 7,
    };
    let mut msgs = synth(&p);
    let base = 1_700_000_000_000;
    for (m, wall) in msgs.iter_mut() {
        if let MediaMessage::Video(f) = m {
            // The first ten frames arrive in a burst 80 ms late; from then on, on time. And
            // one frame in the third second arrives 50 ms early (must not move anything).
            *wall = match f.dts {
                0..300 => base + 380,
                2500 => base + 2450,
                t => base + i64::from(t),
            };
        }
    }
    let (_, segs, _) = run(FragmenterConfig::default(), msgs);
    let pdts: Vec<i64> = segs
        .iter()
        .map(|s| s.start.as_ref().unwrap().pdt_ms)
        .collect();
    assert_eq!(
        pdts[0], base,
        "first segment revised to the on-time mapping"
    );
    assert_eq!(pdts[1], base + 2000);
    assert_eq!(
        pdts[2],
        base + 4000,
        "an early frame after the first segment moves nothing"
    );
}
