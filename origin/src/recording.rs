//! The seam through which a broadcast's completed segments leave the origin for whoever keeps
//! it (recording, in the binary's `record` module): the same CMAF bytes the live playlist
//! lists, never packaged a second time.
//!
//! A sink is called under the stream's lock, right after a segment completes: it must hand
//! the segment on (a bounded queue) and return, never wait for storage.

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
}

/// Receives the segments of every broadcast as they complete.
pub trait SegmentSink: Send + Sync {
    /// A segment of `path`'s broadcast `session` (a name that stays the same across
    /// reconnects within the grace period) completed. Must not block.
    fn segment(&self, path: &StreamPath, session: &str, segment: CompletedSegment);
    /// The broadcast ended: no segment follows.
    fn ended(&self, path: &StreamPath, session: &str);
}
