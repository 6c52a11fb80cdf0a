//! Recording: every broadcast's segments, as the origin completes them, kept beside the live
//! stream. The origin hands segments over through [`origin::recording::SegmentSink`] and never
//! waits: a bounded queue sits between it and the writer, and a segment that does not fit is
//! counted as dropped, never a stall of the live stream.
//!
//! - [`local`] writes each recording to the recording directory (crash-safe), with its
//!   playlist ([`vod`]);
//! - with object storage, that directory is the spool: [`s3`] uploads each file in order
//!   ([`spool`]) and removes the local copy of media once it is in the bucket;
//! - [`catalog`] knows every recording (the management API, the origin's `/recordings/` and
//!   retention read it).

pub mod catalog;
pub mod local;
pub mod mpd;
mod policy;
pub mod retention;
pub mod s3;
pub mod serve;
pub mod spool;
pub mod vod;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use origin::recording::{CompletedSegment, SegmentSink};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use relay::path::StreamPath;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

use crate::config::record::RecordSettings;
use catalog::{Catalog, Info, State};
pub use policy::Policy;
use spool::RecKey;
use writer::Writer;

/// Segments waiting for each writer: each is a few hundred kB (shared with the live stream's
/// store while it is in the window), so this bounds the memory a slow disk can take.
const QUEUE: usize = 256;
/// Writers side by side. A recording always goes to the same one, so its files are written in
/// order; recordings on different writers wait for each other's syncs no more. One writer
/// kept up with 100 streams and fell behind at 200 (a sync takes milliseconds).
const WRITERS: usize = 4;

/// Told of each recording whose last file is safely stored.
pub type Ready = Arc<dyn Fn(Info) + Send + Sync>;

/// The recording metrics.
#[derive(Clone)]
pub struct RecordMetrics {
    /// By result: `ok`, `failed` (the write failed), `dropped` (the queue was full).
    pub segments: Family<Vec<(String, String)>, Counter>,
    pub bytes: Counter,
    /// Media bytes waiting on local disk for object storage.
    pub spool_bytes: Gauge,
    /// `record.spool_max_bytes` (set when uploads run), so alerts can compare against it.
    pub spool_limit_bytes: Gauge,
    /// Time to upload one file.
    pub upload_seconds: Histogram,
    /// By kind: `write`, `upload`, `spool_full`, `delete`.
    pub failures: Family<Vec<(String, String)>, Counter>,
}

impl Default for RecordMetrics {
    fn default() -> Self {
        Self {
            segments: Family::default(),
            bytes: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_limit_bytes: Gauge::default(),
            upload_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            failures: Family::default(),
        }
    }
}

impl RecordMetrics {
    pub fn register(&self, reg: &mut Registry) {
        reg.register(
            "record_segments",
            "Recorded segments by result (ok, failed, dropped)",
            self.segments.clone(),
        );
        reg.register(
            "record_bytes",
            "Bytes of media recorded",
            self.bytes.clone(),
        );
        reg.register(
            "record_spool_bytes",
            "Media bytes waiting on local disk for object storage",
            self.spool_bytes.clone(),
        );
        reg.register(
            "record_spool_limit_bytes",
            "The spool's cap (record.spool_max_bytes); past it the oldest waiting files are given up",
            self.spool_limit_bytes.clone(),
        );
        reg.register(
            "record_upload_seconds",
            "Time to upload one recorded file to object storage",
            self.upload_seconds.clone(),
        );
        reg.register(
            "record_failures",
            "Recording failures by kind (write, upload, spool_full, delete)",
            self.failures.clone(),
        );
    }

    fn segment(&self, result: &str) {
        self.segments
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }

    fn failure(&self, kind: &str) {
        self.failures
            .get_or_create(&vec![("kind".into(), kind.into())])
            .inc();
    }
}

pub(crate) enum Job {
    Segment(StreamPath, String, CompletedSegment),
    Ended(StreamPath, String),
}

/// The origin's segment sink: queues the segments of recorded broadcasts for the writer.
pub struct Recorder {
    /// One queue per writer.
    tx: Vec<mpsc::Sender<Job>>,
    metrics: RecordMetrics,
    policy: Arc<Policy>,
    /// The decision for each live broadcast, made at its first segment.
    recorded: Mutex<HashMap<(StreamPath, String), bool>>,
    /// Recordings that lost a segment to a full queue: the next one they get starts after a
    /// gap, so it is marked as a discontinuity.
    gaps: Mutex<HashSet<(StreamPath, String)>>,
}

impl Recorder {
    fn new(tx: Vec<mpsc::Sender<Job>>, metrics: RecordMetrics, policy: Arc<Policy>) -> Self {
        Self {
            tx,
            metrics,
            policy,
            recorded: Mutex::new(HashMap::new()),
            gaps: Mutex::new(HashSet::new()),
        }
    }
}

impl Recorder {
    /// The queue of the writer that writes `key`'s recording.
    fn queue(&self, key: &(StreamPath, String)) -> &mpsc::Sender<Job> {
        use std::hash::{BuildHasher as _, BuildHasherDefault};
        let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(key);
        &self.tx[(h % self.tx.len() as u64) as usize]
    }
}

impl SegmentSink for Recorder {
    fn segment(&self, path: &StreamPath, session: &str, mut segment: CompletedSegment) {
        let key = (path.clone(), session.to_string());
        let on = *self
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_insert_with(|| self.policy.decide(path));
        if !on {
            return;
        }
        let msn = segment.msn;
        let mut gaps = self.gaps.lock().unwrap_or_else(|e| e.into_inner());
        let after_gap = gaps.contains(&key);
        segment.discontinuity |= after_gap;
        match self
            .queue(&key)
            .try_send(Job::Segment(path.clone(), session.to_string(), segment))
        {
            Ok(()) if after_gap => {
                gaps.remove(&key);
            }
            Ok(()) => {}
            Err(_) => {
                gaps.insert(key);
                self.metrics.segment("dropped");
                warn!(stream = %path, msn, "recording queue full: segment not recorded");
            }
        }
    }

    fn ended(&self, path: &StreamPath, session: &str) {
        let key = (path.clone(), session.to_string());
        self.gaps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let on = self
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.policy.handle_ended(path);
        if on != Some(true) {
            return;
        }
        // The end must not be lost to a full queue: it waits its turn, off the caller.
        let tx = self.queue(&key).clone();
        let job = Job::Ended(path.clone(), session.to_string());
        tokio::spawn(async move {
            let _ = tx.send(job).await;
        });
    }
}

/// Recording, started: the origin's sink, the policy (for the cloud's word) and the catalog.
pub struct Recording {
    pub recorder: Arc<Recorder>,
    pub policy: Arc<Policy>,
    pub catalog: Arc<Catalog>,
    pub store: Store,
}

/// Where recordings live, for readers (the origin's `/recordings/`, deletion).
#[derive(Clone)]
pub struct Store {
    pub root: PathBuf,
    pub remote: Option<s3::Remote>,
    /// Weak: the uploader stops once the writer (the one strong sender) is done.
    uploader: Option<mpsc::WeakSender<s3::Msg>>,
}

impl Store {
    /// Deletes a recording everywhere. A live one cannot be deleted.
    pub async fn delete(&self, catalog: &Catalog, id: &str) -> anyhow::Result<bool> {
        let Some(info) = catalog.get(id) else {
            return Ok(false);
        };
        anyhow::ensure!(
            info.state != State::Recording,
            "recording {id} is live: end its broadcast first"
        );
        catalog.remove(id);
        if let Some(up) = self.uploader.as_ref().and_then(mpsc::WeakSender::upgrade) {
            let _ = up.send(s3::Msg::Removed(rec_key(&info))).await;
        }
        if let Some(remote) = &self.remote {
            remote.delete_dir(&info.dir).await?;
        }
        match tokio::fs::remove_dir_all(self.root.join(&info.dir)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow::Error::new(e).context(format!("deleting recording {id}")))
            }
            _ => Ok(true),
        }
    }
}

pub(crate) fn rec_key(info: &Info) -> RecKey {
    RecKey {
        seq: info.seq(),
        dir: info.dir.clone(),
    }
}

/// Closes recordings a previous run left open, rebuilds the catalog, starts the uploader (with
/// object storage) and the writer. On `shutdown` the writer stores what is queued, closes
/// every open recording and stops; the uploader goes on for a few seconds, and what is left
/// waits in the spool for the next start.
pub async fn start(
    settings: RecordSettings,
    metrics: RecordMetrics,
    ready: Ready,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Recording> {
    let root = settings.path.clone();
    // A directory that cannot be made or written is a startup error naming the setting, not
    // a recording lost at the first broadcast.
    let probe = root.join(".glasscast-write-test");
    let writable = async {
        tokio::fs::create_dir_all(&root).await?;
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await
    };
    anyhow::Context::with_context(writable.await, || {
        format!("record.path {} is not a writable directory", root.display())
    })?;
    let closed = local::close_unfinished(&root).await?;
    if closed > 0 {
        info!(closed, "closed recordings left open by an earlier run");
    }
    let catalog = Arc::new(Catalog::default());
    catalog.scan(&root, settings.s3.is_some()).await?;
    let (remote, uploader) = match &settings.s3 {
        Some(s) => {
            let remote = s3::Remote::new(s)?;
            let tx = s3::start(
                remote.clone(),
                root.clone(),
                settings.spool_max_bytes,
                catalog.clone(),
                metrics.clone(),
                ready.clone(),
                tasks,
                shutdown.clone(),
            )
            .await?;
            (Some(remote), Some(tx))
        }
        None => (None, None),
    };
    let store = Store {
        root: root.clone(),
        remote,
        uploader: uploader.as_ref().map(mpsc::Sender::downgrade),
    };
    if let Some(keep) = settings.retention {
        tasks.spawn(retention::run(
            catalog.clone(),
            store.clone(),
            keep,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut queues = Vec::with_capacity(WRITERS);
    for i in 0..WRITERS {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            dir: local::LocalDir::new(root.clone()).with_dash_files(settings.dash_files),
            catalog: catalog.clone(),
            metrics: metrics.clone(),
            uploader: uploader.clone(),
            ready: ready.clone(),
        };
        tasks.spawn(
            writer
                .run(rx, shutdown.clone())
                .instrument(info_span!("recorder", writer = i)),
        );
        queues.push(tx);
    }
    let policy = Arc::new(Policy::new(settings));
    Ok(Recording {
        recorder: Arc::new(Recorder::new(queues, metrics, policy.clone())),
        policy,
        catalog,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use origin::cmaf::TrackSet;
    use origin::fragment::InitSegment;

    fn seg(msn: u64) -> CompletedSegment {
        CompletedSegment {
            msn,
            discontinuity: false,
            init: Arc::new(InitSegment {
                id: 1,
                data: bytes::Bytes::new(),
                tracks: TrackSet {
                    video: None,
                    audio: None,
                },
            }),
            duration_s: 2.0,
            pdt_ms: 0,
            chunks: Vec::new(),
            timing: Default::default(),
        }
    }

    fn always() -> Arc<Policy> {
        Arc::new(Policy::new(RecordSettings {
            enabled: true,
            path: PathBuf::from("/unused"),
            prefixes: Vec::new(),
            s3: None,
            spool_max_bytes: 1 << 30,
            retention: None,
            dash_files: false,
        }))
    }

    /// A segment that does not fit in the queue is dropped, never waited for, and the next
    /// one recorded is marked as a discontinuity (the recording skips time there).
    #[tokio::test]
    async fn a_dropped_segment_leaves_a_marked_gap() {
        let (tx, mut rx) = mpsc::channel(1);
        let rec = Recorder::new(vec![tx], RecordMetrics::default(), always());
        let path = StreamPath {
            user_id: "u".into(),
            stream_id: "s".into(),
        };
        rec.segment(&path, "a", seg(0));
        rec.segment(&path, "a", seg(1)); // the queue is full: dropped
        let mut got = Vec::new();
        while let Ok(Job::Segment(_, _, s)) = rx.try_recv() {
            got.push((s.msn, s.discontinuity));
        }
        rec.segment(&path, "a", seg(2));
        rec.segment(&path, "b", seg(0)); // full again, another recording
        while let Ok(Job::Segment(_, _, s)) = rx.try_recv() {
            got.push((s.msn, s.discontinuity));
        }
        rec.segment(&path, "a", seg(3));
        while let Ok(Job::Segment(_, _, s)) = rx.try_recv() {
            got.push((s.msn, s.discontinuity));
        }
        assert_eq!(got, vec![(0, false), (2, true), (3, false)]);
        let dropped = rec
            .metrics
            .segments
            .get_or_create(&vec![("result".into(), "dropped".into())])
            .get();
        assert_eq!(dropped, 2);
    }
}
