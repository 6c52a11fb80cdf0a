//! What the CMAF fragmenter produces: init segments, segment boundaries, the chunks of the part
//! being made and the complete parts, in order; and its counters. Plain data, never media logic.

use std::sync::Arc;

use bytes::Bytes;

use crate::cmaf::TrackSet;

/// An init segment and the tracks it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSegment {
    /// Increases by one every time the codec configuration changes.
    pub id: u32,
    pub data: Bytes,
    pub tracks: TrackSet,
}

/// What the fragmenter produces, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FragmentEvent {
    /// A new init segment; the following segments refer to it.
    Init(Arc<InitSegment>),
    /// A segment begins; its parts follow.
    SegmentStart(SegmentStart),
    /// The open segment's PROGRAM-DATE-TIME (ms since the Unix epoch) is revised earlier
    /// (only while the first segment after a start is open: an encoder bursts its first frames).
    PdtRevised(i64),
    /// The next CMAF chunk (`moof` + `mdat`) of the part being made. The part that follows
    /// is exactly its chunks, concatenated.
    Chunk(Bytes),
    /// A complete part of the current segment.
    Part(Part),
    /// The current segment is complete.
    SegmentEnd,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentStart {
    pub discontinuity: bool,
    pub init_id: u32,
    /// Wall-clock time of the first sample, in milliseconds since the Unix epoch.
    pub pdt_ms: i64,
    /// Start on the master track's timeline, in `timescale` units.
    pub start: u64,
    pub timescale: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Its chunks (`moof` + `mdat` each), in order: the part's bytes are their concatenation
    /// (kept apart, so the part shares the buffers the chunks were served from).
    pub chunks: Vec<Bytes>,
    /// Duration in master-track timescale units.
    pub duration: u64,
    pub timescale: u32,
    /// The part starts with a sync sample, so a player can start decoding here.
    pub independent: bool,
    pub video_samples: u32,
    pub audio_samples: u32,
    /// First audio decode time and total audio duration in this part (audio timescale),
    /// when it has audio: DASH describes the audio track on its own timeline.
    pub audio: Option<(u64, u64)>,
    /// Bytes of audio samples in this part.
    pub audio_bytes: u64,
}

impl Part {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn duration_secs(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale)
    }
}

/// Counters for what the fragmenter had to drop or repair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmenterStats {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Frames dropped while waiting for an IDR (start, after a discontinuity) or for a config.
    pub dropped_waiting: u64,
    /// Audio frames dropped because the sample counter ran ahead of their timestamps.
    pub dropped_audio_overlap: u64,
    pub discontinuities: u64,
    pub audio_resyncs: u64,
}
