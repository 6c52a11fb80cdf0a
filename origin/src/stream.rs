//! The origin's view of one live stream: playlist state, the media bytes it refers to, and
//! the held requests waiting on both. The packager task ([`crate::packager`]) feeds it.
//!
//! HTTP handlers and the packager share a [`OriginStream`] behind a short-held std mutex
//! (never held across an await). Held requests are oneshot channels keyed by waiter id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use relay::path::StreamPath;
use tokio::sync::{Notify, oneshot};

use crate::fragmenter::{FragmentEvent, Fragmenter};
use crate::metrics::OriginMetrics;
use crate::naming::{MediaName, Names};
use crate::packager::OriginConfig;
use crate::playlist::{BlockingRequest, Decision, Outcome, WaiterId, epoch_ms};
use crate::recording::SegmentSink;
pub use crate::store::MediaBytes;
use crate::store::Progress;
use crate::stream_core::StreamCore;
use crate::text::Rendered;

struct State {
    core: StreamCore,
    /// Held requests, answered with the outcome and when it was decided.
    waiters: HashMap<WaiterId, oneshot::Sender<(Outcome, Instant)>>,
    /// The multivariant playlist and the MPD as last rendered, with the playlist version (and,
    /// for the MPD, the time endpoint URL) they were made for.
    multivariant: Option<(u64, Arc<Rendered>)>,
    mpd: Option<(u64, Option<String>, Arc<Rendered>)>,
}

/// Parts the cadence in [`StreamSummary`] is measured over (about 6 s at the default target).
const PART_CADENCE_WINDOW: usize = 30;

/// A stream's tracks and part cadence, as [`OriginStream::summary`] reads them.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    pub video: Option<Arc<relay::media::AvcConfig>>,
    pub audio: Option<Arc<relay::media::AacConfig>>,
    /// Frames per second over the playlist's segments.
    pub frame_rate: Option<f64>,
    pub part_target: Duration,
    /// Mean and longest of the recent parts' durations.
    pub part_mean: Option<Duration>,
    pub part_max: Option<Duration>,
    /// The media sequence number of the segment being made.
    pub next_msn: u64,
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
    /// Bumped whenever media bytes are added (a chunk, a part) or the stream ends: wakes
    /// responses that stream media while it is being made.
    progress: tokio::sync::watch::Sender<u64>,
    /// Recent viewer sessions (hash of client address and user agent) and when last seen.
    viewers: Mutex<HashMap<u64, Instant>>,
    next_waiter: AtomicU64,
    /// Set when the playlist continues another node's ([`OriginStream::continue_from`]).
    continued: std::sync::atomic::AtomicBool,
    /// Where completed segments go (recording), if anywhere.
    sink: Option<Arc<dyn SegmentSink>>,
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
            st.core.playlist.cancel(self.id);
            st.waiters.remove(&self.id);
        }
    }
}

impl OriginStream {
    pub(crate) fn new(
        path: StreamPath,
        prefix: String,
        cfg: &OriginConfig,
        sink: Option<Arc<dyn SegmentSink>>,
    ) -> Self {
        Self {
            path,
            prefix: prefix.clone(),
            state: Mutex::new(State {
                core: StreamCore::new(cfg.playlist, Names { prefix }, cfg.extra_segments),
                waiters: HashMap::new(),
                multivariant: None,
                mpd: None,
            }),
            wake: Notify::new(),
            playable: tokio::sync::watch::Sender::new(false),
            progress: tokio::sync::watch::Sender::new(0),
            viewers: Mutex::new(HashMap::new()),
            next_waiter: AtomicU64::new(1),
            continued: Default::default(),
            sink,
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
        match st
            .core
            .playlist
            .handle_blocking_request(id, req, Instant::now())
        {
            Decision::Ready => Wait::Now,
            Decision::Wait => self.hold(&mut st, id),
            Decision::BadRequest(r) => Wait::BadRequest(r),
            Decision::NotFound => Wait::NotFound,
        }
    }

    /// Waits for the part being made to complete, so a plain playlist request gets a fresh
    /// playlist; `Wait::Now` when nothing is being made.
    pub fn block_for_next_part(self: &Arc<Self>) -> Wait {
        let next = self.lock().core.playlist.next_position();
        match next {
            Some(req) => self.block_for(req),
            None => Wait::Now,
        }
    }

    /// Waits for the stream's first part (the multivariant playlist needs codecs).
    pub fn block_for_start(self: &Arc<Self>) -> Wait {
        let first = {
            let st = self.lock();
            if st.core.playlist.has_parts() || st.core.playlist.is_ended() {
                return Wait::Now;
            }
            st.core.playlist.first_msn()
        };
        self.block_for(BlockingRequest {
            msn: first,
            part: Some(0),
        })
    }

    /// How long a plain media playlist request may be held for the part being made, if at all.
    pub fn fresh_hold(&self) -> Option<Duration> {
        self.lock().core.playlist.fresh_hold()
    }

    /// How long a request may wait for something to appear (a blocking reload, the first
    /// bytes of the hinted part).
    pub fn hold_limit(&self) -> Duration {
        self.lock().core.playlist.blocking_timeout()
    }

    /// The media playlist, rendered once per change and shared (with its gzip) by every
    /// response until the next.
    pub fn media_playlist(&self, skip: bool) -> Arc<Rendered> {
        self.lock().core.playlist.render(skip)
    }

    /// The multivariant playlist, once the stream has tracks; rendered once per playlist
    /// change (its bandwidth and frame rate follow the segments).
    pub fn multivariant(&self, media_uri: &str) -> Option<Arc<Rendered>> {
        let mut st = self.lock();
        let version = st.core.playlist.version();
        if let Some((v, r)) = &st.multivariant
            && *v == version
        {
            return Some(r.clone());
        }
        let tracks = st.core.store.current_tracks()?;
        let r = Rendered::new(crate::playlist::render_multivariant(
            tracks,
            st.core.playlist.peak_bandwidth(),
            st.core.playlist.frame_rate(),
            media_uri,
        ));
        st.multivariant = Some((version, r.clone()));
        Some(r)
    }

    /// The DASH manifest, once a segment is complete. `time_url` is the absolute URL of the
    /// origin's time endpoint as the client reaches it (for `UTCTiming`). Rendered once per
    /// playlist change (and time URL); its publishTime is when that version was first asked
    /// for.
    pub fn mpd(&self, now: SystemTime, time_url: Option<String>) -> Option<Arc<Rendered>> {
        let mut st = self.lock();
        st.core.playlist.segments().next()?;
        let version = st.core.playlist.version();
        if let Some((v, url, r)) = &st.mpd
            && *v == version
            && *url == time_url
        {
            return Some(r.clone());
        }
        let clock = crate::dash::LiveClock {
            ast_ms: st.core.ast_ms().unwrap_or(0),
            now_ms: epoch_ms(now),
            time_url: time_url.clone(),
        };
        let r = Rendered::new(crate::dash::render_mpd(
            &st.core.playlist,
            &st.core.store.all_tracks(),
            &clock,
        ));
        st.mpd = Some((version, time_url, r.clone()));
        Some(r)
    }

    /// Resolves once the stream has a playable part; false if it ended first.
    pub async fn wait_playable(&self) -> bool {
        let mut rx = self.playable.subscribe();
        let _ = rx.wait_for(|p| *p).await;
        self.lock().core.playlist.has_parts()
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

    /// Requests held until a part exists.
    pub fn blocked_requests(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Distinct viewer sessions seen within `window`.
    pub fn viewers(&self, now: Instant, window: Duration) -> u64 {
        let mut v = self.viewers.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|_, t| now.saturating_duration_since(*t) < window);
        v.len() as u64
    }

    /// What the stream carries and how its parts come (for the management API): read off
    /// the current init and the playlist, never computed from the media again.
    pub fn summary(&self) -> StreamSummary {
        let st = self.lock();
        let tracks = st.core.store.current_tracks();
        let cadence = st.core.playlist.part_cadence(PART_CADENCE_WINDOW);
        StreamSummary {
            video: tracks.and_then(|t| t.video.clone()),
            audio: tracks.and_then(|t| t.audio.clone()),
            frame_rate: st.core.playlist.frame_rate(),
            part_target: st.core.playlist.config().part_target,
            part_mean: cadence.map(|c| Duration::from_secs_f64(c.0)),
            part_max: cadence.map(|c| Duration::from_secs_f64(c.1)),
            next_msn: st.core.playlist.next_msn(),
        }
    }

    /// Where numbering stands (next msn, next part, newest discontinuity number).
    pub fn position(&self) -> (u64, u64, u64) {
        self.lock().core.playlist.position()
    }

    /// Numbers the playlist on from another node's (before the first segment only).
    pub fn continue_from(&self, c: crate::elsewhere::Continuation) {
        let applied = self.lock().core.playlist.continue_from(
            c.next_msn,
            c.next_part,
            c.discontinuity_sequence,
        );
        self.continued.store(applied, Ordering::Relaxed);
    }

    /// True when this playlist continues one the stream had on another node (the cloud has
    /// been told about the stream already).
    pub fn is_continued(&self) -> bool {
        self.continued.load(Ordering::Relaxed)
    }

    /// Blocking playlist reloads being held.
    pub fn held_requests(&self) -> usize {
        self.lock().core.playlist.waiting()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().core.playlist.is_ended()
    }

    /// The next part number (what the preload hint names).
    pub fn next_part_index(&self) -> u64 {
        self.lock().core.playlist.next_part_index()
    }

    /// The bytes of a complete media file, if it is (still) here.
    pub fn media(&self, name: MediaName) -> Option<MediaBytes> {
        self.lock().core.store.complete(name)
    }

    /// A media file as far as it exists now, including a part or segment being made.
    pub fn progress(&self, name: MediaName) -> Progress {
        self.lock().core.progress(name)
    }

    /// Changes whenever media bytes are added or the stream ends.
    pub fn watch_progress(&self) -> tokio::sync::watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn apply(&self, st: &mut State, ev: FragmentEvent, metrics: &OriginMetrics) {
        let applied = st.core.handle_event(ev);
        if applied.part {
            metrics.parts_produced.inc();
        }
        if applied.segment {
            metrics.segments_produced.inc();
            if let Some(sink) = &self.sink
                && let Some(segment) = st.core.completed_segment()
            {
                sink.segment(&self.path, &self.prefix, segment);
            }
        }
        if applied.media {
            self.progress.send_modify(|n| *n += 1);
        }
    }

    fn dispatch(st: &mut State) {
        let now = Instant::now();
        while let Some((id, outcome)) = st.core.playlist.poll_ready() {
            if let Some(tx) = st.waiters.remove(&id) {
                let _ = tx.send((outcome, now));
            }
        }
    }

    /// When the playlist next needs [`OriginStream::handle_timeout`] (a part or segment to
    /// close, a held request to give up on).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.lock().core.playlist.poll_timeout()
    }

    /// Takes what the fragmenter produced and answers the held requests it satisfies; true
    /// when this made the stream playable (its first part).
    pub(crate) fn take_fragments(&self, frag: &mut Fragmenter, metrics: &OriginMetrics) -> bool {
        let mut st = self.lock();
        while let Some(ev) = frag.poll_event() {
            self.apply(&mut st, ev, metrics);
        }
        Self::dispatch(&mut st);
        let first = st.core.playlist.has_parts() && !*self.playable.borrow();
        if first {
            self.playable.send_replace(true);
        }
        first
    }

    pub(crate) fn handle_timeout(&self, now: Instant) {
        let mut st = self.lock();
        st.core.playlist.handle_timeout(now);
        Self::dispatch(&mut st);
    }

    /// The stream ended: the fragmenter's last output, then ENDLIST, and every held request
    /// answered.
    pub(crate) fn handle_end(&self, frag: &mut Fragmenter, metrics: &OriginMetrics) {
        let mut st = self.lock();
        while let Some(ev) = frag.poll_event() {
            self.apply(&mut st, ev, metrics);
        }
        st.core.handle_end();
        if let Some(sink) = &self.sink {
            sink.ended(&self.path, &self.prefix);
        }
        Self::dispatch(&mut st);
        self.playable.send_replace(true);
        self.progress.send_modify(|n| *n += 1);
    }

    /// Completes when a handler asks the packager to look again (see `wake`).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }
}
