//! A recording as one progressive MP4 (`ftyp` + `moov` + `mdat`), built from its CMAF
//! fragments without touching a sample: the sample tables come from the fragments' `trun`s
//! and the `mdat` is the fragments' media data, in order. Pure: the caller feeds each segment
//! (once, in order) and gets the file's header plus the byte ranges of the segments that
//! follow it, so a server streams the file without holding it.
//!
//! Timing is the fragments' own: every sample keeps its duration and composition offset. A
//! gap in a track's decode timeline (a publisher reconnect) lengthens the sample before it,
//! so audio and video stay where they were in time. A track an init segment adds later, and
//! a fragment timeline that goes backwards, are not representable in one `moov`: the former
//! is left out, the latter continues from where the track was.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Co64, Ctts, CttsEntry, Decode, Encode, Ftyp, Moof, Moov, Stco, Stsc, StscEntry, Stss, Stsz,
    StszSamples, Stts, SttsEntry,
};

/// What cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("bad init segment: {0}")]
    Init(#[source] mp4_atom::Error),
    #[error("segment {segment}: bad fragment: {source}")]
    Fragment {
        segment: usize,
        #[source]
        source: mp4_atom::Error,
    },
    #[error("segment {segment}: {what}")]
    Malformed { segment: usize, what: &'static str },
    #[error("writing the movie header: {0}")]
    Encode(#[source] mp4_atom::Error),
}

/// A byte range of one of the segments fed in, to be sent as part of the `mdat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The segment's index, in the order fed.
    pub segment: usize,
    pub start: u64,
    pub end: u64,
}

/// The progressive file: `header` then each piece, in order; `len` bytes in all.
#[derive(Debug, Clone)]
pub struct Progressive {
    pub header: Bytes,
    pub pieces: Vec<Piece>,
    pub len: u64,
}

impl Progressive {
    /// Bytes `start..=end` of the file (a `Range` request, already checked against
    /// [`Progressive::len`]): the part of the header they cover, and the parts of the pieces.
    pub fn range(&self, start: u64, end: u64) -> (Bytes, Vec<Piece>) {
        let header_len = self.header.len() as u64;
        let header = if start < header_len {
            self.header
                .slice(start as usize..(end + 1).min(header_len) as usize)
        } else {
            Bytes::new()
        };
        let mut pieces = Vec::new();
        let mut pos = header_len;
        for p in &self.pieces {
            let len = p.end - p.start;
            let (from, to) = (pos, pos + len);
            pos = to;
            if to <= start || from > end {
                continue;
            }
            pieces.push(Piece {
                segment: p.segment,
                start: p.start + start.saturating_sub(from),
                end: p.start + (end + 1).min(to) - from,
            });
        }
        (header, pieces)
    }
}

/// One sample, as the tables list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    pub duration: u32,
    pub size: u32,
    pub cts: i64,
    pub sync: bool,
}

struct Track {
    id: u32,
    samples: Vec<SampleInfo>,
    /// (offset in the mdat payload, sample count, sample description index).
    chunks: Vec<(u64, u32, u32)>,
    /// Decode time the next sample starts at, in the track's timescale.
    next_dts: Option<u64>,
    /// Sample descriptions: the first init's, then any that differ.
    stsd: Vec<mp4_atom::Codec>,
    /// Sample description index (1-based) per init id fed so far.
    current_sdi: u32,
    trex: Option<mp4_atom::Trex>,
}

/// Builds a [`Progressive`] from one init segment's `moov` and the segments after it.
pub struct Builder {
    moov: Moov,
    tracks: Vec<Track>,
    payload: u64,
    pieces: Vec<Piece>,
}

const SYNC_FLAG_NON_SYNC: u32 = 0x0001_0000;

impl Builder {
    /// Starts from the recording's first init segment.
    pub fn new(init: &[u8]) -> Result<Self, ExportError> {
        let moov = find_moov(init)?;
        let tracks = moov
            .trak
            .iter()
            .map(|t| Track {
                id: t.tkhd.track_id,
                samples: Vec::new(),
                chunks: Vec::new(),
                next_dts: None,
                stsd: t.mdia.minf.stbl.stsd.codecs.clone(),
                current_sdi: 1,
                trex: trex_of(&moov, t.tkhd.track_id),
            })
            .collect();
        Ok(Self {
            moov,
            tracks,
            payload: 0,
            pieces: Vec::new(),
        })
    }

    /// The init segment changed (a codec change): the segments after this use its sample
    /// descriptions.
    pub fn switch_init(&mut self, init: &[u8]) -> Result<(), ExportError> {
        let moov = find_moov(init)?;
        for t in &mut self.tracks {
            let Some(new) = moov.trak.iter().find(|n| n.tkhd.track_id == t.id) else {
                continue;
            };
            let codecs = &new.mdia.minf.stbl.stsd.codecs;
            let Some(codec) = codecs.first() else {
                continue;
            };
            let idx = match t.stsd.iter().position(|c| c == codec) {
                Some(i) => i,
                None => {
                    t.stsd.push(codec.clone());
                    t.stsd.len() - 1
                }
            };
            t.current_sdi = idx as u32 + 1;
            if let Some(trex) = trex_of(&moov, t.id) {
                t.trex = Some(trex);
            }
        }
        Ok(())
    }

    /// Adds the segment `index` (its whole bytes: `moof` + `mdat` pairs).
    pub fn add_segment(&mut self, index: usize, data: &[u8]) -> Result<(), ExportError> {
        let mut pos = 0usize;
        while pos + 8 <= data.len() {
            let (size, kind, header) = box_header(&data[pos..]).ok_or(ExportError::Malformed {
                segment: index,
                what: "truncated box header",
            })?;
            let end = pos
                .checked_add(size)
                .filter(|e| *e <= data.len() && size >= header)
                .ok_or(ExportError::Malformed {
                    segment: index,
                    what: "box runs past the segment",
                })?;
            if &kind == b"moof" {
                let mut cursor = &data[pos..end];
                let moof = Moof::decode(&mut cursor).map_err(|source| ExportError::Fragment {
                    segment: index,
                    source,
                })?;
                self.add_moof(index, pos as u64, &moof, data.len() as u64)?;
            }
            pos = end;
        }
        Ok(())
    }

    fn add_moof(
        &mut self,
        index: usize,
        moof_start: u64,
        moof: &Moof,
        seg_len: u64,
    ) -> Result<(), ExportError> {
        let bad = |what| ExportError::Malformed {
            segment: index,
            what,
        };
        for traf in &moof.traf {
            let Some(track) = self.tracks.iter_mut().find(|t| t.id == traf.tfhd.track_id) else {
                continue; // a track the first init does not have
            };
            let tfhd = &traf.tfhd;
            let trex = track.trex.as_ref();
            let base = tfhd.base_data_offset.unwrap_or(moof_start);
            let mut data_pos = base;
            if let Some(tfdt) = &traf.tfdt {
                let t = tfdt.base_media_decode_time;
                match track.next_dts {
                    // A gap: the sample before it lasts until this fragment starts.
                    Some(next) if t > next => {
                        if let Some(last) = track.samples.last_mut() {
                            let gap = u32::try_from(t - next).unwrap_or(u32::MAX);
                            last.duration = last.duration.saturating_add(gap);
                        }
                        track.next_dts = Some(t);
                    }
                    Some(_) => {}
                    None => track.next_dts = Some(t),
                }
            }
            for trun in &traf.trun {
                if let Some(off) = trun.data_offset {
                    data_pos = base
                        .checked_add_signed(i64::from(off))
                        .ok_or(bad("data offset out of range"))?;
                }
                let start = data_pos;
                let mut count = 0u32;
                for (i, e) in trun.samples.iter().enumerate() {
                    let duration = e
                        .duration
                        .or(tfhd.default_sample_duration)
                        .or(trex.map(|t| t.default_sample_duration))
                        .unwrap_or(0);
                    let size = e
                        .size
                        .or(tfhd.default_sample_size)
                        .or(trex.map(|t| t.default_sample_size))
                        .unwrap_or(0);
                    let flags = e
                        .flags
                        .or(tfhd.default_sample_flags)
                        .or(trex.map(|t| t.default_sample_flags))
                        .unwrap_or(0);
                    let _ = i;
                    track.samples.push(SampleInfo {
                        duration,
                        size,
                        cts: e.cts.unwrap_or(0),
                        sync: flags & SYNC_FLAG_NON_SYNC == 0,
                    });
                    track.next_dts = track.next_dts.map(|d| d + u64::from(duration));
                    data_pos += u64::from(size);
                    count += 1;
                }
                if count == 0 {
                    continue;
                }
                if data_pos > seg_len {
                    return Err(bad("sample data runs past the segment"));
                }
                track.chunks.push((self.payload, count, track.current_sdi));
                self.payload += data_pos - start;
                match self.pieces.last_mut() {
                    Some(p) if p.segment == index && p.end == start => p.end = data_pos,
                    _ => self.pieces.push(Piece {
                        segment: index,
                        start,
                        end: data_pos,
                    }),
                }
            }
        }
        Ok(())
    }

    /// Every track's samples so far (for tests and checks), by track id.
    pub fn samples(&self) -> Vec<(u32, &[SampleInfo])> {
        self.tracks
            .iter()
            .map(|t| (t.id, t.samples.as_slice()))
            .collect()
    }

    /// The file: its header (`ftyp`, `moov` with the sample tables, `mdat`'s header) and the
    /// pieces of the segments that make the `mdat`'s payload.
    pub fn finish(self) -> Result<Progressive, ExportError> {
        let large = self.payload > u64::from(u32::MAX) - 16;
        let mdat_header: u64 = if large { 16 } else { 8 };
        let ftyp = Ftyp {
            major_brand: b"isom".into(),
            minor_version: 512,
            compatible_brands: vec![
                b"isom".into(),
                b"iso2".into(),
                b"avc1".into(),
                b"mp41".into(),
            ],
        };
        let mut ftyp_bytes = Vec::new();
        ftyp.encode(&mut ftyp_bytes).map_err(ExportError::Encode)?;
        // Offsets have a fixed width, so the moov's size does not depend on them: size it
        // with the payload at 0, then write it with the real base.
        let sized = self.moov_with_tables(0, large)?;
        let base = ftyp_bytes.len() as u64 + sized.len() as u64 + mdat_header;
        let moov = self.moov_with_tables(base, large)?;
        let mut header = BytesMut::with_capacity(base as usize);
        header.extend_from_slice(&ftyp_bytes);
        header.extend_from_slice(&moov);
        if large {
            header.put_u32(1);
            header.extend_from_slice(b"mdat");
            header.put_u64(16 + self.payload);
        } else {
            header.put_u32(8 + self.payload as u32);
            header.extend_from_slice(b"mdat");
        }
        Ok(Progressive {
            len: header.len() as u64 + self.payload,
            header: header.freeze(),
            pieces: self.pieces,
        })
    }

    fn moov_with_tables(&self, base: u64, large: bool) -> Result<Bytes, ExportError> {
        let mut moov = self.moov.clone();
        moov.mvex = None;
        let movie_scale = u64::from(moov.mvhd.timescale.max(1));
        let mut movie_duration = 0u64;
        for trak in &mut moov.trak {
            let Some(t) = self.tracks.iter().find(|t| t.id == trak.tkhd.track_id) else {
                continue;
            };
            let duration: u64 = t.samples.iter().map(|s| u64::from(s.duration)).sum();
            let scale = u64::from(trak.mdia.mdhd.timescale.max(1));
            trak.mdia.mdhd.duration = duration;
            trak.tkhd.duration = duration * movie_scale / scale;
            movie_duration = movie_duration.max(trak.tkhd.duration);
            let stbl = &mut trak.mdia.minf.stbl;
            stbl.stsd.codecs = t.stsd.clone();
            stbl.stts = Stts {
                entries: run_lengths(t.samples.iter().map(|s| s.duration))
                    .map(|(n, d)| SttsEntry {
                        sample_count: n,
                        sample_delta: d,
                    })
                    .collect(),
            };
            stbl.ctts = t.samples.iter().any(|s| s.cts != 0).then(|| Ctts {
                entries: run_lengths(t.samples.iter().map(|s| s.cts))
                    .map(|(n, o)| CttsEntry {
                        sample_count: n,
                        sample_offset: o,
                    })
                    .collect(),
            });
            stbl.stss = t.samples.iter().any(|s| !s.sync).then(|| Stss {
                entries: t
                    .samples
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.sync)
                    .map(|(i, _)| i as u32 + 1)
                    .collect(),
            });
            stbl.stsz = Stsz {
                samples: StszSamples::Different {
                    sizes: t.samples.iter().map(|s| s.size).collect(),
                },
            };
            let mut stsc = Vec::new();
            for (i, (_, n, sdi)) in t.chunks.iter().enumerate() {
                let same = stsc.last().is_some_and(|e: &StscEntry| {
                    e.samples_per_chunk == *n && e.sample_description_index == *sdi
                });
                if !same {
                    stsc.push(StscEntry {
                        first_chunk: i as u32 + 1,
                        samples_per_chunk: *n,
                        sample_description_index: *sdi,
                    });
                }
            }
            stbl.stsc = Stsc { entries: stsc };
            let offsets = t.chunks.iter().map(|(o, _, _)| base + o);
            if large {
                stbl.stco = None;
                stbl.co64 = Some(Co64 {
                    entries: offsets.collect(),
                });
            } else {
                stbl.co64 = None;
                stbl.stco = Some(Stco {
                    entries: offsets.map(|o| o as u32).collect(),
                });
            }
        }
        moov.mvhd.duration = movie_duration;
        let mut out = Vec::new();
        moov.encode(&mut out).map_err(ExportError::Encode)?;
        Ok(Bytes::from(out))
    }
}

/// (run length, value) of consecutive equal values.
fn run_lengths<T: PartialEq + Copy>(
    values: impl Iterator<Item = T>,
) -> impl Iterator<Item = (u32, T)> {
    let mut runs: Vec<(u32, T)> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    runs.into_iter()
}

fn trex_of(moov: &Moov, track_id: u32) -> Option<mp4_atom::Trex> {
    moov.mvex
        .as_ref()?
        .trex
        .iter()
        .find(|t| t.track_id == track_id)
        .cloned()
}

/// (size, type, header length) of the box at the start of `b`; `None` if truncated.
fn box_header(b: &[u8]) -> Option<(usize, [u8; 4], usize)> {
    let size = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
    match size {
        0 => Some((b.len(), kind, 8)),
        1 => {
            let large = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
            Some((usize::try_from(large).ok()?, kind, 16))
        }
        n => Some((n as usize, kind, 8)),
    }
}

fn find_moov(init: &[u8]) -> Result<Moov, ExportError> {
    let mut pos = 0usize;
    while pos + 8 <= init.len() {
        let Some((size, kind, header)) = box_header(&init[pos..]) else {
            break;
        };
        let end = pos.saturating_add(size).min(init.len());
        if size < header {
            break;
        }
        if &kind == b"moov" {
            let mut cursor = &init[pos..end];
            return Moov::decode(&mut cursor).map_err(ExportError::Init);
        }
        pos = end;
    }
    Err(ExportError::Init(mp4_atom::Error::MissingBox(
        b"moov".into(),
    )))
}

#[cfg(test)]
#[path = "progressive_tests.rs"]
mod tests;
