//! Recording: every broadcast's segments, as the origin completes them, kept beside the live
//! stream (`record.enabled`). This first part writes to a local directory ([`local`]) with a
//! playlist per recording ([`vod`]); the origin hands segments over through
//! [`origin::recording::SegmentSink`] and never waits: a bounded queue sits between them, and
//! a segment that does not fit is counted as dropped, never a stall of the live stream.

pub mod local;
pub mod vod;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use origin::recording::{CompletedSegment, SegmentSink};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use relay::path::StreamPath;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

/// Segments waiting for the writer: each is a few hundred kB, so this bounds the memory a slow
/// disk can take.
const QUEUE: usize = 64;

/// The recording metrics.
#[derive(Clone, Default)]
pub struct RecordMetrics {
    /// By result: `ok`, `failed` (the write failed), `dropped` (the queue was full).
    pub segments: Family<Vec<(String, String)>, Counter>,
    pub bytes: Counter,
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
    }

    fn segment(&self, result: &str) {
        self.segments
            .get_or_create(&vec![("result".into(), result.into())])
            .inc();
    }
}

enum Job {
    Segment(StreamPath, String, CompletedSegment),
    Ended(StreamPath, String),
}

/// The origin's segment sink when recording is on: queues segments for the writer task.
pub struct Recorder {
    tx: mpsc::Sender<Job>,
    metrics: RecordMetrics,
}

impl SegmentSink for Recorder {
    fn segment(&self, path: &StreamPath, session: &str, segment: CompletedSegment) {
        let msn = segment.msn;
        if self
            .tx
            .try_send(Job::Segment(path.clone(), session.to_string(), segment))
            .is_err()
        {
            self.metrics.segment("dropped");
            warn!(stream = %path, msn, "recording queue full: segment not recorded");
        }
    }

    fn ended(&self, path: &StreamPath, session: &str) {
        // The end must not be lost to a full queue: it waits its turn, off the caller.
        let tx = self.tx.clone();
        let job = Job::Ended(path.clone(), session.to_string());
        tokio::spawn(async move {
            let _ = tx.send(job).await;
        });
    }
}

/// Closes recordings a previous run left open, then starts the writer for `root`. On
/// `shutdown` the writer stores what is queued, closes every open recording and stops.
pub async fn start(
    root: PathBuf,
    metrics: RecordMetrics,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Recorder>> {
    tokio::fs::create_dir_all(&root)
        .await
        .with_context(|| format!("creating the recording directory {}", root.display()))?;
    let closed = local::close_unfinished(&root).await?;
    if closed > 0 {
        info!(closed, "closed recordings left open by an earlier run");
    }
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let writer_metrics = metrics.clone();
    tasks.spawn(
        async move {
            let mut dir = local::LocalDir::new(root);
            loop {
                let job = tokio::select! {
                    job = rx.recv() => job,
                    _ = shutdown.cancelled() => rx.try_recv().ok(),
                };
                let Some(job) = job else { break };
                match job {
                    Job::Segment(path, session, seg) => {
                        match dir.segment(&path, &session, seg).await {
                            Ok(bytes) => {
                                writer_metrics.segment("ok");
                                writer_metrics.bytes.inc_by(bytes);
                            }
                            Err(e) => {
                                writer_metrics.segment("failed");
                                warn!(stream = %path, error = format!("{e:#}"), "recording a segment failed");
                            }
                        }
                    }
                    Job::Ended(path, session) => {
                        if let Err(e) = dir.ended(&path, &session).await {
                            warn!(stream = %path, error = format!("{e:#}"), "closing a recording failed");
                        }
                    }
                }
            }
            if let Err(e) = dir.close_all().await {
                warn!(error = format!("{e:#}"), "closing recordings at shutdown failed");
            }
        }
        .instrument(info_span!("recorder")),
    );
    Ok(Arc::new(Recorder { tx, metrics }))
}
