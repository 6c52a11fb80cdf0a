use super::*;
use proptest::prelude::*;

fn msg(csid: u32, type_id: u8, ts: u32, len: usize, fill: u8) -> Message {
    Message {
        csid,
        type_id,
        stream_id: 1,
        timestamp: ts,
        payload: Bytes::from(
            (0..len)
                .map(|i| fill.wrapping_add(i as u8))
                .collect::<Vec<u8>>(),
        ),
    }
}

/// Reads messages until more input is needed (`None`) or an error.
fn first_error(r: &mut ChunkReader) -> Option<ChunkError> {
    loop {
        match r.next_message() {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fn read_all(r: &mut ChunkReader) -> Vec<Message> {
    std::iter::from_fn(|| r.next_message().unwrap()).collect()
}

proptest! {
    /// Any chunk size and any way the bytes arrive: the same messages come out.
    #[test]
    fn round_trips_at_any_chunk_size_and_split(
        chunk_size in prop_oneof![1usize..300, Just(4096usize), Just(65536usize)],
        lens in proptest::collection::vec(0usize..5000, 1..8),
        cuts in proptest::collection::vec(1usize..700, 1..50),
        big_ts in any::<bool>(),
    ) {
        let w = ChunkWriter::new(chunk_size);
        let msgs: Vec<Message> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let base = if big_ts { 0x0100_0000 } else { 0 };
                msg(3 + (i as u32 % 3) * 61, 9, base + i as u32 * 33, l, i as u8)
            })
            .collect();
        let mut bytes = Vec::new();
        for m in &msgs {
            w.write(&mut bytes, m);
        }
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.set_chunk_size(chunk_size as u32).unwrap();
        let mut got = Vec::new();
        let mut pos = 0;
        for c in cuts.iter().cycle() {
            if pos >= bytes.len() {
                break;
            }
            let end = (pos + c).min(bytes.len());
            r.push(&bytes[pos..end]);
            pos = end;
            got.extend(read_all(&mut r));
        }
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&data);
        while let Ok(Some(_)) = r.next_message() {}
    }
}

/// A chunk with a full (type 0) header.
fn type0(csid: u8, ts: u32, len: usize, type_id: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![csid];
    v.extend_from_slice(&ts.min(0xff_ffff).to_be_bytes()[1..]);
    v.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&1u32.to_le_bytes());
    if ts >= 0xff_ffff {
        v.extend_from_slice(&ts.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

fn type3(csid: u8, ext: Option<u32>, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xc0 | csid];
    if let Some(t) = ext {
        v.extend_from_slice(&t.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

#[test]
fn interleaved_chunk_streams_mid_message() {
    // Chunk size 128: video on csid 6 (300 bytes) and audio on csid 4 (200 bytes), their
    // chunks alternating.
    let video: Vec<u8> = (0..300).map(|i| i as u8).collect();
    let audio: Vec<u8> = (0..200).map(|i| (i * 3) as u8).collect();
    let mut bytes = type0(6, 40, 300, 9, &video[..128]);
    bytes.extend(type0(4, 41, 200, 8, &audio[..128]));
    bytes.extend(type3(6, None, &video[128..256]));
    bytes.extend(type3(4, None, &audio[128..]));
    bytes.extend(type3(6, None, &video[256..]));
    let mut r = ChunkReader::new(ChunkLimits::default());
    r.push(&bytes);
    let got = read_all(&mut r);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].csid, &got[0].payload[..]), (4, &audio[..]));
    assert_eq!((got[1].csid, &got[1].payload[..]), (6, &video[..]));
    assert_eq!((got[0].timestamp, got[1].timestamp), (41, 40));
}

#[test]
fn extended_timestamps_with_and_without_repeats_on_type3() {
    let body: Vec<u8> = vec![7; 200];
    let ts = 0x0123_4567;
    // ffmpeg style: the extended field repeated on the continuation.
    let mut a = type0(6, ts, 200, 9, &body[..128]);
    a.extend(type3(6, Some(ts), &body[128..]));
    // Without the repeat.
    let mut b = type0(6, ts, 200, 9, &body[..128]);
    b.extend(type3(6, None, &body[128..]));
    for bytes in [a, b] {
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.push(&bytes);
        let got = read_all(&mut r);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, ts);
        assert_eq!(&got[0].payload[..], &body[..]);
    }
}

#[test]
fn type3_and_type2_headers_start_messages_with_deltas() {
    let mut r = ChunkReader::new(ChunkLimits::default());
    // Type 0 at 1000, then a type 1 with delta 33, a type 2 with delta 34, then a type 3
    // repeating delta 34.
    let mut bytes = type0(4, 1000, 2, 8, &[1, 2]);
    bytes.extend([0x44, 0, 0, 33, 0, 0, 2, 8, 3, 4]);
    bytes.extend([0x84, 0, 0, 34, 5, 6]);
    bytes.extend([0xc4, 7, 8]);
    r.push(&bytes);
    let ts: Vec<u32> = read_all(&mut r).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![1000, 1033, 1067, 1101]);
}

#[test]
fn a_partial_chunk_is_read_again_without_double_counting() {
    let mut r = ChunkReader::new(ChunkLimits::default());
    let mut bytes = type0(4, 1000, 2, 8, &[1, 2]);
    bytes.extend([0x84, 0, 0, 34, 5, 6]);
    for b in &bytes {
        r.push(&[*b]);
        while let Some(_m) = r.next_message().unwrap() {}
    }
    let mut r2 = ChunkReader::new(ChunkLimits::default());
    r2.push(&bytes);
    let ts: Vec<u32> = read_all(&mut r2).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![1000, 1034]);
    // The byte-at-a-time reader agrees.
    let mut r3 = ChunkReader::new(ChunkLimits::default());
    let mut got = Vec::new();
    for b in &bytes {
        r3.push(&[*b]);
        got.extend(read_all(&mut r3).into_iter().map(|m| m.timestamp));
    }
    assert_eq!(got, vec![1000, 1034]);
}

#[test]
fn declared_lengths_and_ids_are_bounded() {
    // The largest length RTMP allows is refused at the header, before any byte is held.
    let mut r = ChunkReader::new(ChunkLimits::default());
    r.push(&type0(4, 0, 0xff_ffff, 9, &[]));
    assert_eq!(
        r.next_message(),
        Err(ChunkError::MessageTooLarge(0xff_ffff))
    );
    // Chunk stream ids past the bound.
    let mut r = ChunkReader::new(ChunkLimits::default());
    let mut bytes = Vec::new();
    for csid in 0..100u8 {
        // Two-byte basic headers: csid 64 + n.
        bytes.extend([0x00, csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0xaa]);
    }
    r.push(&bytes);
    let err = first_error(&mut r);
    assert_eq!(err, Some(ChunkError::TooManyChunkStreams(64)));
    // Partial messages past the reassembly bound.
    let mut r = ChunkReader::new(ChunkLimits {
        max_message: 1 << 20,
        max_reassembly: 1000,
        max_chunk_streams: 64,
    });
    let mut bytes = Vec::new();
    for csid in 3..20u8 {
        bytes.extend(type0(csid, 0, 100_000, 9, &[0; 128]));
    }
    r.push(&bytes);
    let err = first_error(&mut r);
    assert_eq!(err, Some(ChunkError::ReassemblyMemory(1000)));
    // A huge chunk size is accepted (and allocates nothing).
    let mut r = ChunkReader::new(ChunkLimits::default());
    r.set_chunk_size(0x7fff_ffff).unwrap();
    assert_eq!(r.set_chunk_size(0), Err(ChunkError::ChunkSize(0)));
}
