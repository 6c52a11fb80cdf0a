//! The origin: every stream it serves, and the packager task per stream that turns the
//! relay's media messages into an [`OriginStream`] (fragments, playlist, held requests
//! answered). A thin shell: the work is in the fragmenter and the stream's state.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use relay::media::MediaMessage;
use relay::path::StreamPath;
use relay::registry::{Registry, Stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::fragmenter::{Fragmenter, FragmenterConfig};
use crate::metrics::OriginMetrics;
use crate::playlist::{PlaylistConfig, epoch_ms};
use crate::recording::SegmentSink;
use crate::stream::OriginStream;

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub fragmenter: FragmenterConfig,
    pub playlist: PlaylistConfig,
    /// How long an ended stream's playlist (with ENDLIST) and media stay available.
    pub ended_retention: Duration,
    /// Segments kept fetchable after they leave the playlist window.
    pub extra_segments: usize,
    /// Media messages buffered between the relay and the packager.
    pub queue_capacity: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            fragmenter: FragmenterConfig::default(),
            playlist: PlaylistConfig::default(),
            ended_retention: Duration::from_secs(120),
            extra_segments: 6,
            queue_capacity: 2048,
        }
    }
}

/// How long a new stream waits to learn where its playlist left off on another node.
const CONTINUATION_WAIT: Duration = Duration::from_secs(1);

/// All streams the origin serves, fed by the relay's registry.
pub struct Origin {
    streams: RwLock<HashMap<StreamPath, Arc<OriginStream>>>,
    /// Where every stream's completed segments go (recording), once set.
    sink: RwLock<Option<Arc<dyn SegmentSink>>>,
    /// Where `/recordings/` is served from, once set.
    recordings: RwLock<Option<Arc<dyn crate::recording::RecordingFiles>>>,
    /// Who answers for streams other nodes hold (fleet mode), once set.
    elsewhere: RwLock<Option<Arc<dyn crate::elsewhere::Elsewhere>>>,
    cfg: OriginConfig,
    pub metrics: OriginMetrics,
}

impl Origin {
    pub fn new(cfg: OriginConfig, metrics: OriginMetrics) -> Arc<Self> {
        Arc::new(Self {
            streams: RwLock::new(HashMap::new()),
            sink: RwLock::new(None),
            recordings: RwLock::new(None),
            elsewhere: RwLock::new(None),
            cfg,
            metrics,
        })
    }

    /// Serves `/recordings/` from `files`.
    pub fn set_recording_files(&self, files: Arc<dyn crate::recording::RecordingFiles>) {
        *self.recordings.write().unwrap_or_else(|e| e.into_inner()) = Some(files);
    }

    /// Where `/recordings/` is served from, if recording is on.
    pub fn recording_files(&self) -> Option<Arc<dyn crate::recording::RecordingFiles>> {
        self.recordings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops serving `path` here at once (another node took the stream over): requests for
    /// it are then answered by that node. The packager still ends on its own.
    pub fn release(&self, path: &StreamPath) {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// Answers requests for streams held by other nodes of a fleet through `e`.
    pub fn set_elsewhere(&self, e: Arc<dyn crate::elsewhere::Elsewhere>) {
        *self.elsewhere.write().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }

    /// Who answers for streams held elsewhere, if this origin is part of a fleet.
    pub fn elsewhere(&self) -> Option<Arc<dyn crate::elsewhere::Elsewhere>> {
        self.elsewhere
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Hands every stream started from now on to `sink` as its segments complete.
    pub fn set_segment_sink(&self, sink: Arc<dyn SegmentSink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    pub fn config(&self) -> &OriginConfig {
        &self.cfg
    }

    /// Every stream served now (live or recently ended).
    pub fn streams(&self) -> Vec<Arc<OriginStream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, path: &StreamPath) -> Option<Arc<OriginStream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }

    /// Packages every stream the registry starts from now on. After `shutdown`, ended
    /// streams are no longer kept for late viewers, so the packager tasks finish at once.
    pub fn attach(
        self: &Arc<Self>,
        registry: &Registry,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) {
        let origin = Arc::downgrade(self);
        registry.on_new_stream(move |stream| {
            if let Some(origin) = origin.upgrade() {
                origin.start_packager(stream, &tasks, shutdown.clone());
            }
        });
    }

    fn start_packager(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let rx = stream.subscribe(self.cfg.queue_capacity);
        let os = Arc::new(OriginStream::new(
            stream.path.clone(),
            format!("{:x}", stream.session_id),
            &self.cfg,
            self.sink.read().unwrap_or_else(|e| e.into_inner()).clone(),
        ));
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.path.clone(), os.clone());
        // Its own root span: the packager outlives the connection that started the stream.
        let span = info_span!(parent: None, "packager", stream = %stream.path);
        let origin = self.clone();
        tasks.spawn(
            async move {
                // A stream that moved here from another node continues its playlist there.
                // Media waits in the queue meanwhile; the answer is bounded.
                if let Some(e) = origin.elsewhere()
                    && let Ok(Some(c)) =
                        tokio::time::timeout(CONTINUATION_WAIT, e.continuation(&os.path)).await
                {
                    info!(
                        next_msn = c.next_msn,
                        next_part = c.next_part,
                        "continuing the playlist the stream had on another node"
                    );
                    os.continue_from(c);
                }
                run_packager(&os, rx, &origin.cfg, &origin.metrics).await;
                // Keep the ended playlist (ENDLIST) and its media around for late viewers.
                tokio::select! {
                    _ = tokio::time::sleep(origin.cfg.ended_retention) => {}
                    _ = shutdown.cancelled() => return,
                }
                let mut streams = origin.streams.write().unwrap_or_else(|e| e.into_inner());
                if streams.get(&os.path).is_some_and(|s| Arc::ptr_eq(s, &os)) {
                    streams.remove(&os.path);
                }
            }
            .instrument(span),
        );
    }
}

async fn run_packager(
    os: &Arc<OriginStream>,
    mut rx: mpsc::Receiver<MediaMessage>,
    cfg: &OriginConfig,
    metrics: &OriginMetrics,
) {
    let mut frag = Fragmenter::new(cfg.fragmenter);
    loop {
        let deadline = os.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                if let Err(e) = frag.handle_message(msg, epoch_ms(SystemTime::now())) {
                    metrics.packaging_errors.inc();
                    warn!(error = %e, "packaging failed");
                }
                if os.take_fragments(&mut frag, metrics) {
                    info!("first part ready");
                }
            }
            _ = sleep => os.handle_timeout(Instant::now()),
            _ = os.woken() => {}
        }
    }
    if let Err(e) = frag.handle_end() {
        warn!(error = %e, "packaging failed at end of stream");
    }
    os.handle_end(&mut frag, metrics);
    let s = frag.stats();
    info!(
        video_frames = s.video_frames,
        audio_frames = s.audio_frames,
        dropped_waiting = s.dropped_waiting,
        discontinuities = s.discontinuities,
        "stream ended, playlist closed"
    );
}
