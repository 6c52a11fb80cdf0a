//! The media bytes of one stream: init segments, the parts and segments in the window, and
//! the part being made, chunk by chunk, so it can be served while it is being made.
//!
//! Pure and synchronous: the packager feeds it the fragmenter's output, HTTP handlers read
//! it. It never decides what is listed in a playlist (that is [`crate::playlist`]); it keeps
//! bytes for what the playlist lists plus `extra_segments` retired segments, for players that
//! are a little behind.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::cmaf::TrackSet;
use crate::fragmenter::InitSegment;
use crate::naming::{MediaName, TrackKind};

/// Media bytes: one buffer, or the pieces that make up a part or segment (served without
/// copying).
#[derive(Debug, Clone)]
pub struct MediaBytes {
    pub chunks: Vec<Bytes>,
    pub kind: MediaName,
}

impl MediaBytes {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A media file as far as it exists now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Complete: these are all its bytes.
    Complete(Vec<Bytes>),
    /// Being made: these bytes so far (maybe none yet); more follow.
    Partial(Vec<Bytes>),
    /// Not here and never will be (retired, unknown, or the stream ended first).
    Absent,
}

/// The part or segment being made, as the playlist numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Making {
    /// Number of the part the next chunk belongs to (the preload hint).
    pub part: u64,
    /// The open segment, if one is open.
    pub segment: Option<u64>,
    /// The number the next segment to open will get.
    pub next_segment: u64,
    /// The stream ended: nothing more will be made.
    pub ended: bool,
}

/// Media of one stream (see the module documentation).
#[derive(Debug)]
pub struct MediaStore {
    inits: HashMap<u32, Arc<InitSegment>>,
    current_init: Option<u32>,
    /// Complete parts, each as its chunks.
    parts: HashMap<u64, Vec<Bytes>>,
    /// Complete segments still fetchable: init id and part numbers.
    segments: HashMap<u64, (u32, Vec<u64>)>,
    /// Complete parts of the open segment.
    open_parts: Vec<u64>,
    /// Init of the open segment.
    open_init: u32,
    /// Chunks of the part being made.
    open_chunks: Vec<Bytes>,
    /// The chunks of the open segment so far (the same buffers as its parts).
    open_segment_chunks: Vec<Bytes>,
    /// DASH's single-track views, [video, audio], made only when DASH asks: of the open
    /// segment, extracted up to `open_tracks_done` of its chunks and extended as more are
    /// asked for (streaming it never re-extracts), and of complete segments, on first request.
    /// An HLS-only stream never pays for them.
    open_tracks: [Vec<Bytes>; 2],
    open_tracks_done: usize,
    track_segments: HashMap<u64, [Vec<Bytes>; 2]>,
    retired: VecDeque<u64>,
    extra_segments: usize,
}

impl MediaStore {
    pub fn new(extra_segments: usize) -> Self {
        Self {
            inits: HashMap::new(),
            current_init: None,
            parts: HashMap::new(),
            segments: HashMap::new(),
            open_parts: Vec::new(),
            open_init: 0,
            open_chunks: Vec::new(),
            open_segment_chunks: Vec::new(),
            open_tracks: Default::default(),
            open_tracks_done: 0,
            track_segments: HashMap::new(),
            retired: VecDeque::new(),
            extra_segments,
        }
    }

    pub fn handle_init(&mut self, init: Arc<InitSegment>) {
        self.current_init = Some(init.id);
        self.inits.insert(init.id, init);
    }

    pub fn handle_segment_start(&mut self, init_id: u32) {
        self.open_init = init_id;
        self.open_parts.clear();
        self.open_chunks.clear();
        self.open_segment_chunks.clear();
        self.open_tracks = Default::default();
        self.open_tracks_done = 0;
    }

    /// The next chunk of the part being made.
    pub fn handle_chunk(&mut self, chunk: Bytes) {
        self.open_segment_chunks.push(chunk.clone());
        self.open_chunks.push(chunk);
    }

    /// Extends the open segment's single-track views over the chunks not yet extracted.
    fn extract_open_tracks(&mut self) {
        let new = &self.open_segment_chunks[self.open_tracks_done..];
        extract_into(&self.inits, self.open_init, new, &mut self.open_tracks);
        self.open_tracks_done = self.open_segment_chunks.len();
    }

    /// The part being made is complete (`chunks`, the ones fed one by one) and listed as
    /// `index`.
    pub fn handle_part(&mut self, index: u64, chunks: Vec<Bytes>) {
        debug_assert_eq!(self.open_chunks, chunks, "a part is its chunks");
        self.open_chunks.clear();
        self.parts.insert(index, chunks);
        self.open_parts.push(index);
    }

    /// The open segment is complete as `msn`; `evicted` left the playlist's window. Keeps
    /// the bytes of at most `extra_segments` segments beyond the window.
    pub fn handle_segment_end(&mut self, msn: u64, evicted: impl IntoIterator<Item = u64>) {
        let parts = std::mem::take(&mut self.open_parts);
        self.open_chunks.clear();
        self.segments.insert(msn, (self.open_init, parts));
        // Views someone began to stream are finished and kept; others are made on request.
        if self.open_tracks_done > 0 {
            self.extract_open_tracks();
            let tracks = std::mem::take(&mut self.open_tracks);
            self.track_segments.insert(msn, tracks);
        }
        self.open_segment_chunks.clear();
        self.open_tracks = Default::default();
        self.open_tracks_done = 0;
        self.retired.extend(evicted);
        while self.retired.len() > self.extra_segments {
            if let Some(old) = self.retired.pop_front()
                && let Some((_, parts)) = self.segments.remove(&old)
            {
                self.track_segments.remove(&old);
                for p in parts {
                    self.parts.remove(&p);
                }
            }
        }
    }

    /// The tracks of the newest init segment.
    /// An init segment by id.
    pub fn init(&self, id: u32) -> Option<Arc<InitSegment>> {
        self.inits.get(&id).cloned()
    }

    pub fn current_tracks(&self) -> Option<&TrackSet> {
        Some(&self.inits.get(&self.current_init?)?.tracks)
    }

    /// Every init's tracks (the DASH manifest describes each period's).
    pub fn all_tracks(&self) -> HashMap<u32, TrackSet> {
        self.inits
            .iter()
            .map(|(k, v)| (*k, v.tracks.clone()))
            .collect()
    }

    /// The bytes of a complete media file, if it is (still) here.
    pub fn complete(&mut self, name: MediaName) -> Option<MediaBytes> {
        let chunks = match name {
            MediaName::Init(id) => vec![self.inits.get(&id)?.data.clone()],
            MediaName::Part(i) => self.parts.get(&i)?.clone(),
            MediaName::Segment(msn) => {
                let mut chunks = Vec::new();
                for i in &self.segments.get(&msn)?.1 {
                    chunks.extend(self.parts.get(i)?.iter().cloned());
                }
                chunks
            }
            MediaName::TrackInit(id, kind) => {
                let tracks = &self.inits.get(&id)?.tracks;
                let single = match kind {
                    TrackKind::Video => TrackSet {
                        video: tracks.video.clone(),
                        audio: None,
                    },
                    TrackKind::Audio => TrackSet {
                        video: None,
                        audio: tracks.audio.clone(),
                    },
                };
                if single.video.is_none() && single.audio.is_none() {
                    return None;
                }
                vec![crate::cmaf::write_init(&single).ok()?]
            }
            MediaName::TrackSegment(msn, kind) => {
                if !self.track_segments.contains_key(&msn) {
                    let (init_id, parts) = self.segments.get(&msn)?;
                    let chunks: Vec<Bytes> = parts
                        .iter()
                        .filter_map(|i| self.parts.get(i))
                        .flatten()
                        .cloned()
                        .collect();
                    let mut views: [Vec<Bytes>; 2] = Default::default();
                    extract_into(&self.inits, *init_id, &chunks, &mut views);
                    self.track_segments.insert(msn, views);
                }
                let chunks = self.track_segments.get(&msn)?[slot(kind)].clone();
                if chunks.is_empty() {
                    return None;
                }
                chunks
            }
        };
        Some(MediaBytes { chunks, kind: name })
    }

    /// A media file as far as it exists, including the part or segment being made.
    pub fn progress(&mut self, name: MediaName, making: Making) -> Progress {
        if let Some(m) = self.complete(name) {
            return Progress::Complete(m.chunks);
        }
        if making.ended {
            return Progress::Absent;
        }
        match name {
            MediaName::Part(i) if i == making.part => Progress::Partial(self.open_chunks.clone()),
            MediaName::Segment(msn) if self.is_open_or_next(msn, making) => {
                Progress::Partial(self.open_segment_pieces(msn, making))
            }
            MediaName::TrackSegment(msn, kind) if self.is_open_or_next(msn, making) => {
                let tracks = self.inits.get(&self.open_init).map(|i| &i.tracks);
                let has = match kind {
                    TrackKind::Video => tracks.and_then(TrackSet::video_track_id),
                    TrackKind::Audio => tracks.and_then(TrackSet::audio_track_id),
                };
                if has.is_none() {
                    return Progress::Absent;
                }
                if making.segment != Some(msn) {
                    return Progress::Partial(Vec::new());
                }
                self.extract_open_tracks();
                Progress::Partial(self.open_tracks[slot(kind)].clone())
            }
            _ => Progress::Absent,
        }
    }

    /// The open segment (or, between two segments, the one about to open) or the one after it:
    /// an LL-DASH player asks for the next segment when the MPD predicts it, which an encoder
    /// running late has not reached yet.
    fn is_open_or_next(&self, msn: u64, making: Making) -> bool {
        let base = making.segment.unwrap_or(making.next_segment);
        msn == base || msn == base + 1
    }

    fn open_segment_pieces(&self, msn: u64, making: Making) -> Vec<Bytes> {
        if making.segment != Some(msn) {
            return Vec::new();
        }
        let mut pieces: Vec<Bytes> = self
            .open_parts
            .iter()
            .filter_map(|i| self.parts.get(i))
            .flatten()
            .cloned()
            .collect();
        pieces.extend(self.open_chunks.iter().cloned());
        pieces
    }
}

/// Appends each track's single-track fragments cut from `chunks` to `views` [video, audio].
/// Our own fragments always parse; a failure would leave DASH's view short, never the muxed
/// one.
fn extract_into(
    inits: &HashMap<u32, Arc<InitSegment>>,
    init_id: u32,
    chunks: &[Bytes],
    views: &mut [Vec<Bytes>; 2],
) {
    let Some(tracks) = inits.get(&init_id).map(|i| &i.tracks) else {
        return;
    };
    for (slot, id) in [tracks.video_track_id(), tracks.audio_track_id()]
        .into_iter()
        .enumerate()
    {
        let Some(id) = id else { continue };
        for chunk in chunks {
            if let Ok(pieces) = crate::cmaf::extract_track(chunk, id, 1) {
                views[slot].extend(pieces);
            }
        }
    }
}

/// Where a track's view is kept: [video, audio].
fn slot(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
    }
}

/// The bytes of `pieces` after the first `offset`, as slices of the same buffers.
pub fn after(pieces: &[Bytes], mut offset: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    for p in pieces {
        let len = p.len() as u64;
        if offset >= len {
            offset -= len;
            continue;
        }
        out.push(p.slice(offset as usize..));
        offset = 0;
    }
    out
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
