use super::*;
use crate::cmaf::tests::{aac, avc};
use crate::cmaf::{Sample, TrackRun, TrackSet, write_fragment, write_init};
use proptest::prelude::*;

fn tracks() -> TrackSet {
    TrackSet {
        video: Some(avc()),
        audio: Some(aac()),
    }
}

/// Samples of one track: (duration, cts, sync, size), laid end to end from `dts`.
fn samples(dts: u64, spec: &[(u32, i32, bool, usize)], tag: u8) -> Vec<Sample> {
    let mut t = dts;
    spec.iter()
        .enumerate()
        .map(|(i, &(duration, cts, sync, size))| {
            let s = Sample {
                dts: t,
                duration,
                cts,
                sync,
                data: Bytes::from(vec![tag.wrapping_add(i as u8); size]),
            };
            t += u64::from(duration);
            s
        })
        .collect()
}

/// Reads an MP4 back with the `mp4` crate (an independent implementation): per track id,
/// (duration, rendering offset, sync, bytes) of every sample.
type Samples = std::collections::BTreeMap<u32, Vec<(u32, i32, bool, Vec<u8>)>>;

fn read_back(file: &[u8]) -> Samples {
    let mut r = mp4::Mp4Reader::read_header(std::io::Cursor::new(file), file.len() as u64)
        .expect("the mp4 crate reads the file");
    let ids: Vec<u32> = r.tracks().keys().copied().collect();
    let mut out = std::collections::BTreeMap::new();
    for id in ids {
        let n = r.sample_count(id).unwrap();
        let mut v = Vec::new();
        for i in 1..=n {
            let s = r.read_sample(id, i).unwrap().unwrap();
            v.push((s.duration, s.rendering_offset, s.is_sync, s.bytes.to_vec()));
        }
        out.insert(id, v);
    }
    out
}

fn assemble(p: &Progressive, segments: &[Bytes]) -> Vec<u8> {
    let mut out = p.header.to_vec();
    for piece in &p.pieces {
        out.extend_from_slice(&segments[piece.segment][piece.start as usize..piece.end as usize]);
    }
    assert_eq!(out.len() as u64, p.len);
    out
}

proptest! {
    /// Every sample of every fragment is in the file once, in order, with its duration,
    /// composition offset, sync flag and bytes.
    #[test]
    fn sample_tables_are_the_fragments(
        segs in proptest::collection::vec(
            proptest::collection::vec(
                (
                    proptest::collection::vec((1u32..6000, -3000i32..6000, any::<bool>(), 1usize..64), 1..6),
                    proptest::collection::vec((1u32..2048, Just(0i32), Just(true), 1usize..32), 0..6),
                ),
                1..4,
            ),
            1..4,
        )
    ) {
        let init = write_init(&tracks()).unwrap();
        let mut b = Builder::new(&init).unwrap();
        let (mut vt, mut at, mut seq) = (0u64, 0u64, 1u32);
        let mut want_v = Vec::new();
        let mut want_a = Vec::new();
        let mut segments = Vec::new();
        for (i, fragments) in segs.iter().enumerate() {
            let mut seg = BytesMut::new();
            for (v, a) in fragments {
                let vs = samples(vt, v, 1);
                let as_ = samples(at, a, 101);
                vt += vs.iter().map(|s| u64::from(s.duration)).sum::<u64>();
                at += as_.iter().map(|s| u64::from(s.duration)).sum::<u64>();
                want_v.extend(vs.iter().map(|s| (s.duration, s.cts, s.sync, s.data.to_vec())));
                want_a.extend(as_.iter().map(|s| (s.duration, s.cts, s.sync, s.data.to_vec())));
                let f = write_fragment(seq, &[
                    TrackRun { track_id: 1, samples: &vs },
                    TrackRun { track_id: 2, samples: &as_ },
                ]).unwrap();
                seq += 1;
                seg.extend_from_slice(&f);
            }
            let seg = seg.freeze();
            b.add_segment(i, &seg).unwrap();
            segments.push(seg);
        }
        let p = b.finish().unwrap();
        let got = read_back(&assemble(&p, &segments));
        prop_assert_eq!(&got[&1], &want_v);
        prop_assert_eq!(got.get(&2).cloned().unwrap_or_default(), want_a);
    }
}

/// A gap in the decode timeline (a reconnect) lengthens the sample before it: every later
/// sample keeps its place in time.
#[test]
fn a_gap_lengthens_the_sample_before_it() {
    let init = write_init(&tracks()).unwrap();
    let mut b = Builder::new(&init).unwrap();
    let spec = [(3000, 0, true, 10), (3000, 0, false, 10)];
    let first = samples(0, &spec, 1);
    let second = samples(6000 + 90_000, &spec, 1); // one second missing
    let f1 = write_fragment(
        1,
        &[TrackRun {
            track_id: 1,
            samples: &first,
        }],
    )
    .unwrap();
    let f2 = write_fragment(
        2,
        &[TrackRun {
            track_id: 1,
            samples: &second,
        }],
    )
    .unwrap();
    b.add_segment(0, &f1).unwrap();
    b.add_segment(1, &f2).unwrap();
    let durations: Vec<u32> = b.samples()[0].1.iter().map(|s| s.duration).collect();
    assert_eq!(durations, [3000, 93_000, 3000, 3000]);
    let p = b.finish().unwrap();
    let got = read_back(&assemble(&p, &[f1, f2]));
    assert_eq!(got[&1].len(), 4);
    assert_eq!(got[&1][1].0, 93_000);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(Builder::new(b"not an init segment").is_err());
    let init = write_init(&tracks()).unwrap();
    let mut b = Builder::new(&init).unwrap();
    assert!(
        b.add_segment(0, &[0, 0, 0, 200, b'm', b'o', b'o', b'f', 1, 2])
            .is_err()
    );
    assert!(
        b.add_segment(
            0,
            &[0, 0, 0, 16, b'm', b'o', b'o', b'f', 0, 0, 0, 0, 0, 0, 0, 0]
        )
        .is_err()
    );
}

proptest! {
    /// Any byte range of the file is those bytes of the assembled file.
    #[test]
    fn a_range_is_those_bytes(a in 0u64..4000, b in 0u64..4000) {
        let init = write_init(&tracks()).unwrap();
        let mut builder = Builder::new(&init).unwrap();
        let mut segments = Vec::new();
        for i in 0..3u64 {
            let vs = samples(i * 9000, &[(3000, 0, true, 300), (3000, 0, false, 200), (3000, 0, false, 100)], i as u8);
            let f = write_fragment(i as u32 + 1, &[TrackRun { track_id: 1, samples: &vs }]).unwrap();
            builder.add_segment(i as usize, &f).unwrap();
            segments.push(f);
        }
        let p = builder.finish().unwrap();
        let whole = assemble(&p, &segments);
        let (start, end) = (a.min(b) % p.len, a.max(b) % p.len);
        let (start, end) = (start.min(end), start.max(end));
        let (header, pieces) = p.range(start, end);
        let mut got = header.to_vec();
        for piece in pieces {
            got.extend_from_slice(&segments[piece.segment][piece.start as usize..piece.end as usize]);
        }
        prop_assert_eq!(&got[..], &whole[start as usize..=end as usize]);
    }
}
