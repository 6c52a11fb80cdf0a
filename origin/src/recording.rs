//! The seam through which a broadcast's completed segments leave the origin for whoever keeps
//! it (recording, in the binary's `record` module): the same CMAF bytes the live playlist
//! lists, never packaged a second time.
//!
//! A sink is called under the stream's lock, right after a segment completes: it must hand
//! the segment on (a bounded queue) and return, never wait for storage.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use relay::path::StreamPath;

use crate::fragment::InitSegment;

/// One completed segment of a broadcast.
#[derive(Debug, Clone)]
pub struct CompletedSegment {
    /// Its media sequence number in the live playlist (its file name).
    pub msn: u64,
    /// The first segment after a publisher change or a codec change.
    pub discontinuity: bool,
    /// The init segment it needs.
    pub init: Arc<InitSegment>,
    pub duration_s: f64,
    /// PROGRAM-DATE-TIME of its first frame (ms since the Unix epoch).
    pub pdt_ms: i64,
    /// Its bytes: the concatenation of these.
    pub chunks: Vec<Bytes>,
    /// Its timing on the tracks' own timelines (for a DASH manifest).
    pub timing: SegmentTiming,
}

/// A segment's place on its tracks' timelines, as the live MPD has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentTiming {
    /// Start and length on the master track (video if any), in `timescale` units.
    pub start: u64,
    pub timescale: u32,
    pub duration: u64,
    /// Start and length of its audio, in the audio sample rate's units.
    pub audio_start: Option<u64>,
    pub audio_duration: u64,
    pub audio_bytes: u64,
    pub video_samples: u64,
}

/// Receives the segments of every broadcast as they complete.
pub trait SegmentSink: Send + Sync {
    /// A segment of `path`'s broadcast `session` (a name that stays the same across
    /// reconnects within the grace period) completed. Must not block.
    fn segment(&self, path: &StreamPath, session: &str, segment: CompletedSegment);
    /// The broadcast ended: no segment follows.
    fn ended(&self, path: &StreamPath, session: &str);
}

/// A file of a recording, as the origin serves it.
pub struct RecordedFile {
    pub body: crate::body::Body,
    pub content_type: &'static str,
    /// Whether it never changes (media, the playlist of an ended recording): cached for a
    /// year by CDNs. Otherwise `no-cache`.
    pub immutable: bool,
    /// What part of the file the body is, when a `Range` was asked for.
    pub range: Option<Served>,
}

/// The answer to a `Range` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Bytes `start..=end` of a file of `len` bytes (206).
    Partial { start: u64, end: u64, len: u64 },
    /// The range is outside the file of `len` bytes (416).
    Unsatisfiable { len: u64 },
}

/// A boxed future (the origin has no async-trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the origin finds recordings for `GET /recordings/{userId}/{streamId}/{id}/{file}`:
/// implemented by the binary over its recording directory and object storage. The origin
/// checks nothing but the URL's shape: the implementation decides what exists.
pub trait RecordingFiles: Send + Sync {
    /// The file, or `None` when there is no such recording or file; `range` is the request's
    /// `Range` header, if any (resolve it with [`crate::request::parse_range`]).
    fn get<'a>(
        &'a self,
        path: &'a StreamPath,
        id: &'a str,
        file: &'a str,
        range: Option<&'a http::HeaderValue>,
    ) -> BoxFuture<'a, Option<RecordedFile>>;
}
