//! LL-HLS media playlist state for one stream: the segment window, parts, the preload hint,
//! and blocking-reload waiters.
//!
//! Sans-IO. The packager feeds it with `handle_*`; HTTP handlers register waiters (plain ids,
//! which the shell maps to its own channels) with [`Playlist::handle_blocking_request`], then
//! pull answers with [`Playlist::poll_ready`]. (A GET for the hinted part is not held here:
//! the part is streamed while it is being made, see [`crate::store`].) Timers:
//! call [`Playlist::handle_timeout`] at [`Playlist::poll_timeout`]. It never does I/O and never
//! reads a clock: every time is passed in.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::naming::Names;
use crate::text::Rendered;

/// Playlist settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistConfig {
    pub part_target: Duration,
    pub segment_target: Duration,
    /// Complete segments kept in the playlist (at least 6).
    pub window_segments: usize,
    /// `PART-HOLD-BACK`: how far behind the newest part a player should play. `None`: three
    /// part targets (the specification's SHOULD; its MUST is two).
    pub part_hold_back: Option<Duration>,
    /// Answer a media playlist request without `_HLS_msn` when the part being made completes
    /// (at most one and a half part targets later) rather than at once.
    pub fresh_playlist: bool,
    /// List parts as byte ranges of their segment (`BYTERANGE`, and a `BYTERANGE-START`
    /// preload hint) instead of as files of their own.
    pub byterange_parts: bool,
}

impl PlaylistConfig {
    /// The `PART-HOLD-BACK` in effect.
    pub fn part_hold_back(&self) -> Duration {
        self.part_hold_back.unwrap_or(3 * self.part_target)
    }
}

impl Default for PlaylistConfig {
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(2),
            window_segments: 12,
            part_hold_back: None,
            fresh_playlist: true,
            byterange_parts: false,
        }
    }
}

/// One part as listed in the playlist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartEntry {
    /// Global part number (never reused within the playlist).
    pub index: u64,
    pub duration: f64,
    pub independent: bool,
    pub bytes: u64,
}

/// What the packager reports for a new part.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PartInfo {
    /// Duration in the segment's timescale.
    pub duration: u64,
    pub independent: bool,
    pub bytes: u64,
    pub video_samples: u64,
    /// First audio decode time and audio duration (audio timescale), if the part has audio.
    pub audio: Option<(u64, u64)>,
    pub audio_bytes: u64,
}

/// A segment (complete or in progress).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub msn: u64,
    pub discontinuity: bool,
    pub init_id: u32,
    pub pdt_ms: i64,
    /// Start on the master track timeline, in `timescale` units (for DASH).
    pub start: u64,
    pub timescale: u32,
    /// Sum of part durations, in `timescale` units.
    pub duration_ticks: u64,
    pub parts: Vec<PartEntry>,
    pub video_samples: u64,
    /// Audio track timing (audio timescale), for DASH's separate audio timeline.
    pub audio_start: Option<u64>,
    pub audio_duration: u64,
    pub audio_bytes: u64,
    /// Where the run of segments this one belongs to began (the stream's start or the last
    /// discontinuity): a DASH Period, whose id, start and offset must not change while the
    /// window slides past its first segment.
    pub period: PeriodOrigin,
}

/// The first segment of a run without discontinuity (a DASH Period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodOrigin {
    pub msn: u64,
    pub pdt_ms: i64,
    /// Start on the master track timeline, in the segment's `timescale` units.
    pub start: u64,
}

impl SegmentEntry {
    pub fn duration(&self) -> f64 {
        self.duration_ticks as f64 / f64::from(self.timescale)
    }
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// An opaque waiter id chosen by the shell.
pub type WaiterId = u64;

/// A `_HLS_msn` / `_HLS_part` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockingRequest {
    pub msn: u64,
    pub part: Option<u64>,
}

/// What a new request should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer now.
    Ready,
    /// Hold; the waiter id will come out of `poll_ready`.
    Wait,
    /// Answer 400 with this reason.
    BadRequest(&'static str),
    /// Answer 404 (part that will never exist here).
    NotFound,
}

/// How a held request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    /// Not satisfied within three target durations: 503.
    TimedOut,
    /// The awaited part will never exist (stream ended): 404.
    Gone,
}

/// A part's position in the playlist: (msn, part index within the segment).
type Position = (u64, u64);

/// LL-HLS media playlist state.
#[derive(Debug)]
pub struct Playlist {
    cfg: PlaylistConfig,
    names: Names,
    segments: VecDeque<SegmentEntry>,
    open: Option<SegmentEntry>,
    next_msn: u64,
    next_part: u64,
    /// Discontinuities that have left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
    current_init: Option<u32>,
    ended: bool,
    /// Largest rounded segment duration seen; never decreases.
    target_duration: u64,
    /// Held blocking requests.
    waiters: Waiters,
    /// Rendered playlists for the current state: [full, delta].
    cache: [Option<Arc<Rendered>>; 2],
    /// Bumped at every change (what a cached rendering of this state is keyed on).
    version: u64,
}

impl Playlist {
    pub fn new(cfg: PlaylistConfig, names: Names) -> Self {
        let target_duration = cfg.segment_target.as_secs_f64().ceil().max(1.0) as u64;
        Self {
            cfg: PlaylistConfig {
                window_segments: cfg.window_segments.max(6),
                ..cfg
            },
            names,
            segments: VecDeque::new(),
            open: None,
            next_msn: 0,
            next_part: 0,
            discontinuity_sequence: 0,
            current_init: None,
            ended: false,
            target_duration,
            waiters: Waiters::default(),
            cache: [None, None],
            version: 0,
        }
    }

    /// Where numbering stands: the next segment's msn, the next part's number, and the
    /// discontinuity sequence number of the newest segment. Another node taking the stream
    /// over continues after these ([`Playlist::continue_from`]).
    pub fn position(&self) -> (u64, u64, u64) {
        let tags = self
            .segments
            .iter()
            .chain(self.open.as_ref())
            .filter(|s| s.discontinuity)
            .count() as u64;
        (
            self.next_msn,
            self.next_part,
            self.discontinuity_sequence + tags,
        )
    }

    /// Numbers this playlist on from another one of the same stream (a publisher that moved
    /// to this node): the first segment gets `next_msn`, the first part `next_part`, and
    /// `discontinuity_sequence` (a new timeline, so one more than the other playlist's newest
    /// segment). Only before the first segment; later it is ignored.
    /// Returns whether it was applied.
    pub fn continue_from(
        &mut self,
        next_msn: u64,
        next_part: u64,
        discontinuity_sequence: u64,
    ) -> bool {
        if self.open.is_some() || !self.segments.is_empty() {
            return false;
        }
        self.next_msn = next_msn;
        self.next_part = next_part;
        self.discontinuity_sequence = discontinuity_sequence;
        self.changed();
        true
    }

    /// The settings it was made with (window at least 6).
    pub fn config(&self) -> PlaylistConfig {
        self.cfg
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn target_duration(&self) -> u64 {
        self.target_duration
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// True once at least one part exists (the stream is playable).
    pub fn has_parts(&self) -> bool {
        self.next_part > 0
    }

    /// Complete segments in the window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &SegmentEntry> {
        self.segments.iter()
    }

    /// The segment in progress, if any.
    pub fn open_segment(&self) -> Option<&SegmentEntry> {
        self.open.as_ref()
    }

    /// The global number the next part will get (the preload hint).
    pub fn next_part_index(&self) -> u64 {
        self.next_part
    }

    /// The msn the next segment to open will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// Oldest msn still listed.
    pub fn first_msn(&self) -> u64 {
        self.segments
            .front()
            .or(self.open.as_ref())
            .map_or(self.next_msn, |s| s.msn)
    }

    /// Peak bits per second over the listed segments (or the open one when none is complete).
    pub fn peak_bandwidth(&self) -> u64 {
        let rate = |s: &SegmentEntry| {
            let d = s.duration();
            if d > 0.0 {
                (s.bytes() as f64 * 8.0 / d) as u64
            } else {
                0
            }
        };
        let peak = self.segments.iter().map(rate).max().unwrap_or(0);
        if peak > 0 {
            peak
        } else {
            self.open.as_ref().map_or(0, rate)
        }
    }

    /// Frames per second measured over the listed segments, if there is video.
    pub fn frame_rate(&self) -> Option<f64> {
        let (frames, secs) = self
            .segments
            .iter()
            .chain(self.open.as_ref())
            .fold((0u64, 0.0f64), |(f, d), s| {
                (f + s.video_samples, d + s.duration())
            });
        (frames > 0 && secs > 0.0).then(|| frames as f64 / secs)
    }

    /// Mean and longest duration in seconds of the last `n` parts (listed or in the open
    /// segment), newest last; `None` before the first part.
    pub fn part_cadence(&self, n: usize) -> Option<(f64, f64)> {
        let recent: Vec<f64> = self
            .segments
            .iter()
            .chain(self.open.as_ref())
            .rev()
            .flat_map(|s| s.parts.iter().rev())
            .take(n)
            .map(|p| p.duration)
            .collect();
        if recent.is_empty() {
            return None;
        }
        let max = recent.iter().copied().fold(0.0, f64::max);
        Some((recent.iter().sum::<f64>() / recent.len() as f64, max))
    }

    /// How long a held request may wait.
    pub fn blocking_timeout(&self) -> Duration {
        Duration::from_secs(3 * self.target_duration)
    }

    fn changed(&mut self) {
        self.cache = [None, None];
        self.version += 1;
    }

    /// Changes whenever the playlist does (segments, parts, end).
    pub fn version(&self) -> u64 {
        self.version
    }

    // ---- inputs from the packager ----

    pub fn handle_init(&mut self, id: u32) {
        self.current_init = Some(id);
    }

    /// The open segment's PROGRAM-DATE-TIME was revised (see the fragmenter's anchor).
    pub fn handle_pdt_revised(&mut self, pdt_ms: i64) {
        if let Some(open) = self.open.as_mut() {
            open.pdt_ms = pdt_ms;
            if open.period.msn == open.msn {
                open.period.pdt_ms = pdt_ms;
            }
            self.changed();
        }
    }

    pub fn handle_segment_start(
        &mut self,
        discontinuity: bool,
        pdt_ms: i64,
        start: u64,
        timescale: u32,
    ) {
        // A segment left open (should not happen) is closed as it is.
        if self.open.is_some() {
            self.handle_segment_end();
        }
        let discontinuity = discontinuity && (self.next_msn > 0);
        let period = match self.segments.back() {
            Some(prev) if !discontinuity => prev.period,
            _ => PeriodOrigin {
                msn: self.next_msn,
                pdt_ms,
                start,
            },
        };
        self.open = Some(SegmentEntry {
            msn: self.next_msn,
            discontinuity,
            period,
            init_id: self.current_init.unwrap_or(0),
            pdt_ms,
            start,
            timescale,
            duration_ticks: 0,
            parts: Vec::new(),
            video_samples: 0,
            audio_start: None,
            audio_duration: 0,
            audio_bytes: 0,
        });
        self.next_msn += 1;
        self.changed();
    }

    /// Adds a complete part to the open segment and returns its global index.
    /// Returns `None` (and ignores the part) when no segment is open.
    pub fn handle_part(&mut self, part: PartInfo) -> Option<u64> {
        let seg = self.open.as_mut()?;
        let index = self.next_part;
        self.next_part += 1;
        seg.duration_ticks += part.duration;
        seg.video_samples += part.video_samples;
        if let Some((start, duration)) = part.audio {
            seg.audio_start.get_or_insert(start);
            seg.audio_duration += duration;
        }
        seg.audio_bytes += part.audio_bytes;
        seg.parts.push(PartEntry {
            index,
            duration: part.duration as f64 / f64::from(seg.timescale),
            independent: part.independent,
            bytes: part.bytes,
        });
        let pos = (seg.msn, seg.parts.len() as u64 - 1);
        self.changed();
        self.waiters.release_positions_through(pos);
        Some(index)
    }

    /// Completes the open segment; returns its msn and the msns that left the window.
    pub fn handle_segment_end(&mut self) -> Option<(u64, Vec<u64>)> {
        let seg = self.open.take()?;
        let msn = seg.msn;
        let rounded = seg.duration().round() as u64;
        self.target_duration = self.target_duration.max(rounded);
        self.segments.push_back(seg);
        let mut evicted = Vec::new();
        while self.segments.len() > self.cfg.window_segments {
            if let Some(old) = self.segments.pop_front() {
                evicted.push(old.msn);
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        self.changed();
        self.waiters.release_segments_through(msn);
        Some((msn, evicted))
    }

    /// The stream ended: the playlist gets EXT-X-ENDLIST and every waiter is answered.
    pub fn handle_end(&mut self) {
        if self.open.as_ref().is_some_and(|s| s.parts.is_empty()) {
            self.open = None;
            self.next_msn -= 1;
        }
        self.handle_segment_end();
        self.ended = true;
        self.changed();
        self.waiters.release_all();
    }

    // ---- requests ----

    /// Position of the newest part.
    fn last_part(&self) -> Option<Position> {
        self.open
            .iter()
            .chain(self.segments.back())
            .find(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() as u64 - 1))
    }

    /// How long a plain playlist request may wait for the part being made: `None` when
    /// `fresh_playlist` is off or no part is being made (before the first, between a
    /// publisher leaving and the next one, ended).
    pub fn fresh_hold(&self) -> Option<Duration> {
        (self.cfg.fresh_playlist && self.open.is_some() && self.next_position().is_some())
            .then(|| self.cfg.part_target * 3 / 2)
    }

    /// The position of the part after the newest one listed (what the preload hint names),
    /// or `None` before the first part and once the stream has ended.
    pub fn next_position(&self) -> Option<BlockingRequest> {
        if self.ended {
            return None;
        }
        self.last_part().map(|(msn, p)| BlockingRequest {
            msn,
            part: Some(p + 1),
        })
    }

    /// A playlist request with `_HLS_msn` (and maybe `_HLS_part`).
    pub fn handle_blocking_request(
        &mut self,
        id: WaiterId,
        req: BlockingRequest,
        now: Instant,
    ) -> Decision {
        if self.ended {
            return Decision::Ready;
        }
        // The msn of the last segment in the playlist is next_msn - 1; more than two ahead is
        // an error the client must see at once.
        let last = self.next_msn.saturating_sub(1);
        if req.msn > last + 2 {
            return Decision::BadRequest(
                "_HLS_msn is more than two segments ahead of the playlist",
            );
        }
        // A part index past the end of a segment is satisfied by the next segment's first
        // part: positions compare as (msn, part) pairs. A segment completing is not a part.
        let deadline = now + self.blocking_timeout();
        match req.part {
            Some(p) => {
                if self.last_part().is_some_and(|have| have >= (req.msn, p)) {
                    return Decision::Ready;
                }
                self.waiters.hold_position(id, (req.msn, p), deadline);
            }
            None => {
                if self.segments.back().is_some_and(|s| s.msn >= req.msn) {
                    return Decision::Ready;
                }
                self.waiters.hold_segment(id, req.msn, deadline);
            }
        }
        Decision::Wait
    }

    /// The client went away; forget its waiter.
    pub fn cancel(&mut self, id: WaiterId) {
        self.waiters.cancel(id);
    }

    /// Earliest deadline among held requests.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiters.poll_timeout()
    }

    /// Expires held requests whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.waiters.handle_timeout(now);
    }

    /// Next held request that can be answered.
    pub fn poll_ready(&mut self) -> Option<(WaiterId, Outcome)> {
        self.waiters.poll_ready()
    }

    /// Number of requests being held.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn format_pdt(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch of a wall-clock time.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[path = "playlist_render.rs"]
mod render;
#[path = "playlist_waiters.rs"]
mod waiters;
pub use render::render_multivariant;
use waiters::Waiters;

#[cfg(test)]
#[path = "playlist_tests.rs"]
mod tests;
