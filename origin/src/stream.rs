//! The origin's view of one live stream: playlist state, the media bytes it refers to, and
//! the held requests waiting on both. The packager task ([`crate::packager`]) feeds it.
//!
//! HTTP handlers and the packager share a [`OriginStream`] behind a short-held std mutex
//! (never held across an await). Held requests are oneshot channels keyed by waiter id.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use relay::path::StreamPath;
use tokio::sync::{Notify, oneshot};

use crate::cmaf::TrackSet;
use crate::fragmenter::{FragmentEvent, Fragmenter, InitSegment};
use crate::metrics::OriginMetrics;
use crate::naming::{MediaName, Names, TrackKind};
use crate::packager::OriginConfig;
use crate::playlist::{BlockingRequest, Decision, Outcome, PartInfo, Playlist, WaiterId, epoch_ms};

struct State {
    playlist: Playlist,
    inits: HashMap<u32, Arc<InitSegment>>,
    current_init: Option<u32>,
    parts: HashMap<u64, Bytes>,
    /// Complete segments still fetchable: init id and part numbers.
    segments: HashMap<u64, (u32, Vec<u64>)>,
    open_parts: Vec<u64>,
    retired: VecDeque<u64>,
    ast_ms: Option<i64>,
    /// Held requests, answered with the outcome and when it was decided.
    waiters: HashMap<WaiterId, oneshot::Sender<(Outcome, Instant)>>,
    /// Gzipped media playlists [full, delta], with the rendered text they were made from.
    gzipped: [Option<(Bytes, Bytes)>; 2],
}

/// One stream as the origin serves it.
pub struct OriginStream {
    pub path: StreamPath,
    /// Distinguishes this publishing session's file names from any earlier one's.
    pub prefix: String,
    state: Mutex<State>,
    /// Wakes the packager when a held request adds a deadline.
    wake: Notify,
    /// True once the first part exists (or the stream ended).
    playable: tokio::sync::watch::Sender<bool>,
    /// Recent viewer sessions (hash of client address and user agent) and when last seen.
    viewers: Mutex<HashMap<u64, Instant>>,
    next_waiter: AtomicU64,
    extra_segments: usize,
}

/// What a handler should do with a request that may have to wait.
pub enum Wait {
    Now,
    Later(Waiting),
    BadRequest(&'static str),
    NotFound,
}

/// A held request. Dropping it (the client went away) forgets the waiter.
pub struct Waiting {
    stream: Arc<OriginStream>,
    id: WaiterId,
    rx: Option<oneshot::Receiver<(Outcome, Instant)>>,
}

impl Waiting {
    pub async fn outcome(self) -> Outcome {
        self.outcome_at().await.0
    }

    /// The outcome and when it was decided (for a part, right after the part completed).
    pub async fn outcome_at(mut self) -> (Outcome, Instant) {
        let outcome = match self.rx.as_mut() {
            Some(rx) => rx.await.unwrap_or((Outcome::Gone, Instant::now())),
            None => (Outcome::Gone, Instant::now()),
        };
        // Answered: nothing to cancel. (If this future is dropped before, Drop cancels.)
        self.rx = None;
        outcome
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.rx.is_some() {
            let mut st = self.stream.lock();
            st.playlist.cancel(self.id);
            st.waiters.remove(&self.id);
        }
    }
}

/// Media bytes: one buffer, or the parts that make up a segment (served without copying).
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

impl OriginStream {
    pub(crate) fn new(path: StreamPath, prefix: String, cfg: &OriginConfig) -> Self {
        Self {
            path,
            prefix: prefix.clone(),
            state: Mutex::new(State {
                playlist: Playlist::new(cfg.playlist, Names { prefix }),
                inits: HashMap::new(),
                current_init: None,
                parts: HashMap::new(),
                segments: HashMap::new(),
                open_parts: Vec::new(),
                retired: VecDeque::new(),
                ast_ms: None,
                waiters: HashMap::new(),
                gzipped: [None, None],
            }),
            wake: Notify::new(),
            playable: tokio::sync::watch::Sender::new(false),
            viewers: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(1),
            extra_segments: cfg.extra_segments,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold(self: &Arc<Self>, st: &mut State, id: WaiterId) -> Wait {
        let (tx, rx) = oneshot::channel();
        st.waiters.insert(id, tx);
        self.wake.notify_one();
        Wait::Later(Waiting {
            stream: self.clone(),
            id,
            rx: Some(rx),
        })
    }

    /// A media playlist request with `_HLS_msn` / `_HLS_part`.
    pub fn block_for(self: &Arc<Self>, req: BlockingRequest) -> Wait {
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        match st.playlist.handle_blocking_request(id, req, Instant::now()) {
            Decision::Ready => Wait::Now,
            Decision::Wait => self.hold(&mut st, id),
            Decision::BadRequest(r) => Wait::BadRequest(r),
            Decision::NotFound => Wait::NotFound,
        }
    }

    /// Waits for the stream's first part (the multivariant playlist needs codecs).
    pub fn block_for_start(self: &Arc<Self>) -> Wait {
        let first = {
            let st = self.lock();
            if st.playlist.has_parts() || st.playlist.is_ended() {
                return Wait::Now;
            }
            st.playlist.first_msn()
        };
        self.block_for(BlockingRequest {
            msn: first,
            part: Some(0),
        })
    }

    /// A request for a part that may still be in the making (the preload hint).
    pub fn block_for_part(self: &Arc<Self>, index: u64) -> Wait {
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        match st.playlist.handle_part_request(id, index, Instant::now()) {
            Decision::Ready => Wait::Now,
            Decision::Wait => self.hold(&mut st, id),
            Decision::BadRequest(r) => Wait::BadRequest(r),
            Decision::NotFound => Wait::NotFound,
        }
    }

    /// The media playlist text.
    pub fn media_playlist(&self, skip: bool) -> Bytes {
        self.lock().playlist.render(skip)
    }

    /// The media playlist gzipped. Every held request wakes on the same new part and wants
    /// the same bytes, so it is compressed once per playlist change (outside the lock).
    pub fn media_playlist_gzip(&self, skip: bool) -> Bytes {
        let slot = usize::from(skip);
        let plain = {
            let mut st = self.lock();
            let plain = st.playlist.render(skip);
            if let Some((src, gz)) = &st.gzipped[slot]
                && src.as_ptr() == plain.as_ptr()
                && src.len() == plain.len()
            {
                return gz.clone();
            }
            plain
        };
        let gz = crate::http::gzip(&plain);
        self.lock().gzipped[slot] = Some((plain, gz.clone()));
        gz
    }

    /// The multivariant playlist, once the stream has tracks.
    pub fn multivariant(&self, media_uri: &str) -> Option<String> {
        let st = self.lock();
        let tracks = &st.inits.get(&st.current_init?)?.tracks;
        Some(crate::playlist::render_multivariant(
            tracks,
            st.playlist.peak_bandwidth(),
            st.playlist.frame_rate(),
            media_uri,
        ))
    }

    /// The DASH manifest, once a segment is complete.
    pub fn mpd(&self, now: SystemTime) -> Option<String> {
        let st = self.lock();
        st.playlist.segments().next()?;
        let inits: HashMap<u32, TrackSet> = st
            .inits
            .iter()
            .map(|(k, v)| (*k, v.tracks.clone()))
            .collect();
        Some(crate::dash::render_mpd(
            &st.playlist,
            &inits,
            st.ast_ms.unwrap_or(0),
            epoch_ms(now),
        ))
    }
    /// Resolves once the stream has a playable part; false if it ended first.
    pub async fn wait_playable(&self) -> bool {
        let mut rx = self.playable.subscribe();
        let _ = rx.wait_for(|p| *p).await;
        self.lock().playlist.has_parts()
    }

    /// Records a request from a viewer session (client address + user agent).
    pub fn saw_viewer(&self, session: u64, now: Instant) {
        let mut v = self.viewers.lock().unwrap_or_else(|e| e.into_inner());
        v.insert(session, now);
        if v.len() > 4096 {
            // Bound the map under floods: forget sessions idle for a while.
            v.retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(30));
        }
    }

    /// Distinct viewer sessions seen within `window`.
    /// Requests held until a part exists.
    pub fn blocked_requests(&self) -> usize {
        self.lock().waiters.len()
    }

    pub fn viewers(&self, now: Instant, window: Duration) -> u64 {
        let mut v = self.viewers.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|_, t| now.saturating_duration_since(*t) < window);
        v.len() as u64
    }

    /// Requests being held (blocking playlist reloads and hinted-part GETs).
    pub fn held_requests(&self) -> usize {
        self.lock().playlist.waiting()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().playlist.is_ended()
    }

    /// The next part number (what the preload hint names).
    pub fn next_part_index(&self) -> u64 {
        self.lock().playlist.next_part_index()
    }

    /// The bytes of a media file, if it is (still) here.
    pub fn media(&self, name: MediaName) -> Option<MediaBytes> {
        let st = self.lock();
        let chunks = match name {
            MediaName::Init(id) => vec![st.inits.get(&id)?.data.clone()],
            MediaName::Part(i) => vec![st.parts.get(&i)?.clone()],
            MediaName::Segment(msn) => st
                .segments
                .get(&msn)?
                .1
                .iter()
                .map(|i| st.parts.get(i).cloned())
                .collect::<Option<Vec<_>>>()?,
            MediaName::TrackInit(id, kind) => {
                let tracks = &st.inits.get(&id)?.tracks;
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
                let (init_id, parts) = st.segments.get(&msn)?;
                let tracks = &st.inits.get(init_id)?.tracks;
                let track_id = match kind {
                    TrackKind::Video => tracks.video_track_id()?,
                    TrackKind::Audio => tracks.audio_track_id()?,
                };
                let mut chunks = Vec::new();
                for i in parts {
                    let part = st.parts.get(i)?;
                    match crate::cmaf::extract_track(part, track_id, 1) {
                        Ok(Some(pair)) => chunks.extend(pair),
                        Ok(None) => {}
                        Err(_) => return None,
                    }
                }
                if chunks.is_empty() {
                    return None;
                }
                chunks
            }
        };
        Some(MediaBytes { chunks, kind: name })
    }

    fn apply(&self, st: &mut State, ev: FragmentEvent, metrics: &OriginMetrics) {
        match ev {
            FragmentEvent::Init(init) => {
                st.playlist.handle_init(init.id);
                st.current_init = Some(init.id);
                st.inits.insert(init.id, init);
            }
            FragmentEvent::SegmentStart(s) => {
                let start_ms = (s.start as f64 * 1000.0 / f64::from(s.timescale)) as i64;
                st.ast_ms.get_or_insert(s.pdt_ms - start_ms);
                st.playlist
                    .handle_segment_start(s.discontinuity, s.pdt_ms, s.start, s.timescale);
            }
            FragmentEvent::Part(p) => {
                let len = p.data.len() as u64;
                if let Some(idx) = st.playlist.handle_part(PartInfo {
                    duration: p.duration,
                    independent: p.independent,
                    bytes: len,
                    video_samples: u64::from(p.video_samples),
                    audio: p.audio,
                    audio_bytes: p.audio_bytes,
                }) {
                    st.parts.insert(idx, p.data);
                    st.open_parts.push(idx);
                    metrics.parts_produced.inc();
                }
            }
            FragmentEvent::SegmentEnd => {
                let init_id = st.playlist.open_segment().map(|s| s.init_id);
                if let Some((msn, evicted)) = st.playlist.handle_segment_end() {
                    let parts = std::mem::take(&mut st.open_parts);
                    st.segments.insert(msn, (init_id.unwrap_or(0), parts));
                    metrics.segments_produced.inc();
                    st.retired.extend(evicted);
                    while st.retired.len() > self.extra_segments {
                        if let Some(old) = st.retired.pop_front()
                            && let Some((_, parts)) = st.segments.remove(&old)
                        {
                            for p in parts {
                                st.parts.remove(&p);
                            }
                        }
                    }
                }
            }
        }
    }

    fn dispatch(st: &mut State) {
        let now = Instant::now();
        while let Some((id, outcome)) = st.playlist.poll_ready() {
            if let Some(tx) = st.waiters.remove(&id) {
                let _ = tx.send((outcome, now));
            }
        }
    }

    /// When the playlist next needs [`OriginStream::handle_timeout`] (a part or segment to
    /// close, a held request to give up on).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.lock().playlist.poll_timeout()
    }

    /// Takes what the fragmenter produced and answers the held requests it satisfies; true
    /// when this made the stream playable (its first part).
    pub(crate) fn take_fragments(&self, frag: &mut Fragmenter, metrics: &OriginMetrics) -> bool {
        let mut st = self.lock();
        while let Some(ev) = frag.poll_event() {
            self.apply(&mut st, ev, metrics);
        }
        Self::dispatch(&mut st);
        let first = st.playlist.has_parts() && !*self.playable.borrow();
        if first {
            self.playable.send_replace(true);
        }
        first
    }

    pub(crate) fn handle_timeout(&self, now: Instant) {
        let mut st = self.lock();
        st.playlist.handle_timeout(now);
        Self::dispatch(&mut st);
    }

    /// The stream ended: the fragmenter's last output, then ENDLIST, and every held request
    /// answered.
    pub(crate) fn handle_end(&self, frag: &mut Fragmenter, metrics: &OriginMetrics) {
        let mut st = self.lock();
        while let Some(ev) = frag.poll_event() {
            self.apply(&mut st, ev, metrics);
        }
        st.playlist.handle_end();
        Self::dispatch(&mut st);
        self.playable.send_replace(true);
    }

    /// Completes when a handler asks the packager to look again (see `wake`).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        assert_eq!(
            MediaName::parse("ab", "ab-init3.mp4"),
            Some(MediaName::Init(3))
        );
        assert_eq!(
            MediaName::parse("ab", "ab-p17.m4s"),
            Some(MediaName::Part(17))
        );
        assert_eq!(
            MediaName::parse("ab", "ab-s5.m4s"),
            Some(MediaName::Segment(5))
        );
        assert_eq!(MediaName::parse("ab", "cd-s5.m4s"), None);
        assert_eq!(MediaName::parse("ab", "ab-s5.mp4"), None);
        assert_eq!(MediaName::parse("ab", "ab-x5.m4s"), None);
        assert_eq!(MediaName::parse("ab", "ab-p-1.m4s"), None);
        assert_eq!(MediaName::parse("ab", "ab-s.m4s"), None);
        assert_eq!(
            MediaName::parse("ab", "ab-init2v.mp4"),
            Some(MediaName::TrackInit(2, TrackKind::Video))
        );
        assert_eq!(
            MediaName::parse("ab", "ab-a9.m4s"),
            Some(MediaName::TrackSegment(9, TrackKind::Audio))
        );
        assert_eq!(MediaName::parse("ab", "ab-initv.mp4"), None);
        assert_eq!(MediaName::parse("ab", "ab-init2x.mp4"), None);
        assert_eq!(MediaName::parse("ab", "ab-s+5.m4s"), None);
    }
}
