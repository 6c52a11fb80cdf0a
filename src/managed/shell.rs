//! The thin tokio shell around [`super::delivery::Delivery`]: one task per stream decides the
//! stream's delivery mode (configuration, then the cloud's answer), creates the platform
//! stream, forwards to it through the restreamer's pushers, routes the cloud's destinations
//! (to the platform's outputs in `cloudflare` mode, to our pushers otherwise), and deletes the
//! platform stream when ours ends. [`Deliveries`] is what the control task and the admin API
//! read: which URLs to announce, and the delivery's state for `stream-status`.
//!
//! A platform that fails never touches our origin or the other destinations: its calls run in
//! their own tasks, and their answers only change this stream's delivery state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use origin::packager::Origin;
use relay::cloud::client::{HlsReady, StreamDirectives};
use relay::path::StreamPath;
use relay::registry::{Registry, Stream};
use relay::restream::restreamer::{DestinationSpec, Restreamer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use super::delivery::{Action, Delivery, DeliveryConfig};
use super::mode::{DeliveryMode, PlatformKind};
use super::outputs::{OutputSync, sync_outputs};
use super::platforms::Platforms;
pub use super::view::{DeliveryView, Phase};
use super::{LiveState, PlatformError, Playback};
use crate::config::delivery::DeliverySettings;

/// The cloud's latest answer for one stream.
#[derive(Debug, Clone, Default)]
struct Directives {
    /// The cloud answered, or failed to (either way, stop waiting for it).
    heard: bool,
    mode: Option<DeliveryMode>,
    /// The latest list; `None` until one arrived.
    destinations: Option<Vec<DestinationSpec>>,
}

struct Entry {
    stream: Arc<Stream>,
    view: watch::Sender<DeliveryView>,
    directives: watch::Sender<Directives>,
}

/// Every stream's delivery.
pub struct Deliveries {
    settings: DeliverySettings,
    platforms: Platforms,
    restreamer: Arc<Restreamer>,
    origin: Arc<Origin>,
    /// Base of our playback URLs (no trailing slash).
    public_url: String,
    /// How long a new stream waits for the cloud's first answer; `None` without a cloud.
    cloud_wait: Option<Duration>,
    tasks: TaskTracker,
    streams: Mutex<HashMap<StreamPath, Arc<Entry>>>,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("platforms", &self.platforms)
            .finish_non_exhaustive()
    }
}

type Job<T> = Option<JoinHandle<Result<T, PlatformError>>>;

/// Awaits a job (pending forever when there is none; guard the `select!` branch).
async fn join<T>(job: &mut Job<T>, platform: &'static str) -> Result<T, PlatformError> {
    match job.as_mut() {
        Some(h) => h.await.unwrap_or_else(|e| {
            Err(PlatformError::Unavailable {
                platform,
                message: format!("request task failed: {e}"),
            })
        }),
        None => std::future::pending().await,
    }
}

fn spawn<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, PlatformError>> + Send + 'static,
) -> Job<T> {
    Some(tokio::spawn(f))
}

impl Deliveries {
    pub fn new(
        settings: DeliverySettings,
        platforms: Platforms,
        restreamer: Arc<Restreamer>,
        origin: Arc<Origin>,
        public_url: String,
        cloud_wait: Option<Duration>,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            settings,
            platforms,
            restreamer,
            origin,
            public_url,
            cloud_wait,
            tasks,
            streams: Mutex::new(HashMap::new()),
        })
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<StreamPath, Arc<Entry>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a delivery task for every new stream. Attach before the control task so the
    /// cloud's answers find their stream.
    pub fn attach(self: &Arc<Self>, registry: &Registry) {
        let me = Arc::downgrade(self);
        registry.on_new_stream(move |stream| {
            let Some(me) = me.upgrade() else { return };
            let mode = me.settings.rules.for_path(&stream.path);
            let entry = Arc::new(Entry {
                stream: stream.clone(),
                view: watch::channel(DeliveryView::new(mode)).0,
                directives: watch::channel(Directives::default()).0,
            });
            me.streams().insert(stream.path.clone(), entry.clone());
            let span = info_span!(parent: None, "delivery", stream = %stream.path);
            me.tasks.spawn(me.clone().run(entry).instrument(span));
        });
    }

    fn entry(&self, stream: &Arc<Stream>) -> Option<Arc<Entry>> {
        self.streams()
            .get(&stream.path)
            .filter(|e| Arc::ptr_eq(&e.stream, stream))
            .cloned()
    }

    /// The cloud's answer for `stream`: its destinations, and maybe its mode (used only when
    /// it arrives before the stream's delivery started).
    pub fn handle_directives(&self, stream: &Arc<Stream>, d: StreamDirectives) {
        let mode = d.mode.as_deref().and_then(|m| {
            m.parse::<DeliveryMode>()
                .map_err(|e| warn!(stream = %stream.path, "the cloud's mode is ignored: {e}"))
                .ok()
        });
        match self.entry(stream) {
            Some(e) => e.directives.send_modify(|x| {
                x.heard = true;
                x.mode = mode;
                x.destinations = Some(d.destinations);
            }),
            // Not attached (a test wiring control alone): the destinations still go out.
            None => self
                .restreamer
                .set_cloud_destinations(stream, d.destinations),
        }
    }

    /// The cloud could not be asked: stop waiting for its mode (the destinations stay).
    pub fn handle_directives_failed(&self, stream: &Arc<Stream>) {
        if let Some(e) = self.entry(stream) {
            e.directives.send_modify(|x| x.heard = true);
        }
    }

    /// The delivery of a stream (live or ended less than a moment ago).
    pub fn view(&self, path: &StreamPath) -> Option<DeliveryView> {
        self.streams().get(path).map(|e| e.view.borrow().clone())
    }

    fn ours(&self, path: &StreamPath) -> HlsReady {
        let base = format!("{}/{}", self.public_url, path.url_path());
        HlsReady {
            user_id: path.user_id.clone(),
            stream_id: path.stream_id.clone(),
            hls_url: format!("{base}/index.m3u8"),
            dash_url: format!("{base}/index.mpd"),
        }
    }

    /// The URLs to announce in `hls-ready`, once they are playable: ours (modes `self` and
    /// `ab`, or after a fallback) when our first part is, or the platform's when it says it
    /// serves the stream. A platform without DASH (IVS) gets our DASH URL beside its HLS, since
    /// apps want both. `None` when there will be nothing to announce.
    pub async fn ready(&self, stream: &Arc<Stream>) -> Option<HlsReady> {
        let ours = self.ours(&stream.path);
        let Some(entry) = self.entry(stream) else {
            return self.ours_when_playable(&stream.path, ours).await;
        };
        let mut rx = entry.view.subscribe();
        loop {
            let v = rx.borrow_and_update().clone();
            match (v.mode, v.phase) {
                (_, Phase::Deciding) => {}
                (DeliveryMode::Platform(_), Phase::Live) => {
                    let p = v.playback?;
                    return Some(HlsReady {
                        hls_url: p.hls,
                        dash_url: p.dash.unwrap_or(ours.dash_url.clone()),
                        ..ours
                    });
                }
                (DeliveryMode::Platform(_), Phase::FellBack)
                | (DeliveryMode::Origin | DeliveryMode::Ab, _) => {
                    return self.ours_when_playable(&stream.path, ours).await;
                }
                (DeliveryMode::Platform(_), Phase::Failed | Phase::NotServed | Phase::Ended) => {
                    return None;
                }
                (DeliveryMode::Platform(_), _) => {}
            }
            rx.changed().await.ok()?;
        }
    }

    async fn ours_when_playable(&self, path: &StreamPath, ours: HlsReady) -> Option<HlsReady> {
        let os = self.origin.get(path)?;
        os.wait_playable().await.then_some(ours)
    }

    /// Waits for the mode: the configuration's, unless the cloud names one in its first
    /// answer (waited for at most `cloud_wait`). `None` when the stream ended first.
    async fn decide(&self, entry: &Entry) -> Option<DeliveryMode> {
        let configured = entry.view.borrow().mode;
        let Some(wait) = self.cloud_wait else {
            return Some(configured);
        };
        let mut rx = entry.directives.subscribe();
        let heard = rx.wait_for(|d| d.heard);
        let mode = tokio::select! {
            r = tokio::time::timeout(wait, heard) => match r {
                Ok(Ok(d)) => d.mode,
                _ => {
                    warn!("no answer from the cloud within {wait:?}: delivery mode {configured} from the configuration");
                    None
                }
            },
            _ = entry.stream.wait_ended() => return None,
        };
        Some(mode.unwrap_or(configured))
    }

    /// The cloud's current list goes to our pushers.
    fn route_to_pushers(&self, entry: &Entry) {
        // Cloned out first: the watch's read lock is not held while the restreamer works.
        let list = entry.directives.borrow().destinations.clone();
        if let Some(list) = list {
            self.restreamer.set_cloud_destinations(&entry.stream, list);
        }
    }

    async fn run(self: Arc<Self>, entry: Arc<Entry>) {
        if let Some(mode) = self.decide(&entry).await {
            let platform = self.settings.platform_of(mode);
            entry.view.send_modify(|v| {
                v.mode = mode;
                v.platform = platform;
                v.phase = if platform.is_some() {
                    Phase::Creating
                } else {
                    Phase::Origin
                };
            });
            match platform {
                None => self.route_only(&entry).await,
                Some(kind) => {
                    info!(mode = %mode, "delivering through {}", kind.word());
                    self.deliver(&entry, mode, kind).await
                }
            }
        }
        entry.view.send_modify(|v| v.phase = Phase::Ended);
        let mut streams = self.streams();
        if streams
            .get(&entry.stream.path)
            .is_some_and(|e| Arc::ptr_eq(e, &entry))
        {
            streams.remove(&entry.stream.path);
        }
    }

    /// Mode `self`: the cloud's lists go to our pushers until the stream ends.
    async fn route_only(&self, entry: &Entry) {
        let mut rx = entry.directives.subscribe();
        rx.mark_changed();
        loop {
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() {
                        break;
                    }
                    self.route_to_pushers(entry);
                }
                _ = entry.stream.wait_ended() => break,
            }
        }
    }

    /// Modes `cloudflare`, `ivs` and `ab`: drives the delivery core until the platform stream
    /// is deleted after ours ended.
    async fn deliver(&self, entry: &Entry, mode: DeliveryMode, kind: PlatformKind) {
        let platform = self.platforms.get(kind);
        let name = platform.as_ref().map_or(kind.word(), |p| p.name());
        // Only the platform alone takes over the destinations, and only if it has outputs.
        let mut on_platform = mode == DeliveryMode::Platform(kind)
            && platform.as_ref().is_ok_and(|p| p.has_outputs());
        let stream = &entry.stream;
        let mut core = Delivery::new(DeliveryConfig {
            poll_interval: self.settings.poll_interval,
            live_timeout: self.settings.live_timeout,
            fallback_to_self: self.settings.fallback_to_self,
        });
        let mut create: Job<super::PlatformStream> = None;
        let mut poll: Job<Option<Playback>> = None;
        let mut status: Job<super::PlatformStatus> = None;
        let mut sync: Job<OutputSync> = None;
        let mut outputs: HashMap<String, String> = HashMap::new();
        let mut outputs_dirty = on_platform;
        let mut directives = entry.directives.subscribe();
        let mut status_tick = tokio::time::interval(self.settings.poll_interval * 5);
        let ended = stream.wait_ended();
        tokio::pin!(ended);
        let mut is_ended = false;
        if !on_platform {
            self.route_to_pushers(entry);
        }
        loop {
            let now = Instant::now();
            while let Some(action) = core.poll_action(now) {
                match action {
                    Action::Create => match &platform {
                        Ok(p) => {
                            let (p, path) = (p.clone(), stream.path.clone());
                            create = spawn(async move { p.create(&path).await });
                        }
                        Err(e) => core.handle_created(Err(e.clone()), now),
                    },
                    Action::Forward(url) => {
                        entry.view.send_modify(|v| v.phase = Phase::Waiting);
                        self.restreamer.set_platform_forward(
                            stream,
                            Some(DestinationSpec {
                                name: name.to_string(),
                                url,
                            }),
                        );
                    }
                    Action::PollPlayback(id) => {
                        if let Ok(p) = &platform {
                            let p = p.clone();
                            poll = spawn(async move { p.playback(&id).await });
                        }
                    }
                    Action::Announce(playback) => {
                        info!(hls = %playback.hls, "{name} serves the stream");
                        entry.view.send_modify(|v| {
                            v.phase = Phase::Live;
                            v.playback = Some(playback);
                        });
                    }
                    Action::FallBack(reason) => {
                        warn!(error = %reason, "{name} unusable: our origin serves the stream");
                        on_platform = false;
                        self.route_to_pushers(entry);
                        entry.view.send_modify(|v| {
                            v.phase = Phase::FellBack;
                            v.error = Some(reason);
                        });
                    }
                    Action::ReportError(e) => {
                        warn!(error = %e, "delivery through {name} failed");
                        entry.view.send_modify(|v| {
                            v.phase = if v.phase == Phase::Creating {
                                Phase::Failed
                            } else {
                                Phase::NotServed
                            };
                            v.error = Some(e);
                        });
                    }
                    Action::End(id) => {
                        self.restreamer.set_platform_forward(stream, None);
                        if let Ok(p) = &platform {
                            let p = p.clone();
                            self.tasks.spawn(
                                async move {
                                    match p.end(&id).await {
                                        Ok(()) => info!("{} stream deleted", p.name()),
                                        Err(e) => warn!(error = %e, "could not delete the platform stream (orphan cleanup will)"),
                                    }
                                }
                                .in_current_span(),
                            );
                        }
                    }
                }
            }
            if core.is_finished() {
                return;
            }
            if on_platform
                && outputs_dirty
                && sync.is_none()
                && !is_ended
                && let (Some(id), Ok(p)) = (core.platform_id(), &platform)
            {
                outputs_dirty = false;
                let want = entry
                    .directives
                    .borrow()
                    .destinations
                    .clone()
                    .unwrap_or_default();
                sync = spawn(sync_outputs(
                    p.clone(),
                    id.to_string(),
                    want,
                    outputs.clone(),
                ));
            }
            let wake = core.poll_timeout();
            let live = entry.view.borrow().phase == Phase::Live;
            tokio::select! {
                r = join(&mut create, name) => { create = None; core.handle_created(r, Instant::now()); }
                r = join(&mut poll, name) => { poll = None; core.handle_playback(r, Instant::now()); }
                r = join(&mut status, name) => {
                    status = None;
                    match r {
                        Ok(s) => entry.view.send_modify(|v| {
                            v.viewers = s.viewers;
                            if s.state != LiveState::Connected && v.phase == Phase::Live {
                                v.error = Some(format!("{name} reports the stream as {:?}", s.state));
                            } else if v.phase == Phase::Live {
                                v.error = None;
                            }
                        }),
                        Err(e) => warn!(error = %e, "could not read the platform stream's status"),
                    }
                }
                r = join(&mut sync, name) => {
                    sync = None;
                    if let Ok(s) = r {
                        outputs = s.outputs;
                        entry.view.send_modify(|v| v.outputs = s.statuses);
                    }
                }
                _ = async { tokio::time::sleep_until(wake.expect("guarded").into()).await }, if wake.is_some() => {}
                _ = &mut ended, if !is_ended => {
                    is_ended = true;
                    core.handle_stream_ended();
                    if let Some(s) = sync.take() {
                        // Deleting the platform stream deletes its outputs.
                        s.abort();
                    }
                }
                r = directives.changed(), if !is_ended => {
                    if r.is_ok() {
                        if on_platform {
                            outputs_dirty = true;
                        } else {
                            self.route_to_pushers(entry);
                        }
                    }
                }
                _ = status_tick.tick(), if live && status.is_none() && !is_ended => {
                    if let (Some(id), Ok(p)) = (core.platform_id(), &platform) {
                        let (p, id) = (p.clone(), id.to_string());
                        status = spawn(async move { p.status(&id).await });
                    }
                }
            }
        }
    }
}
