//! Recording: every broadcast's segments, as the origin completes them, kept beside the live
//! stream (`record.enabled`). This first part writes to a local directory ([`local`]) with a
//! playlist per recording ([`vod`]); the origin hands segments over through
//! [`origin::recording::SegmentSink`] and never waits: a bounded queue sits between them, and
//! a segment that does not fit is counted as dropped, never a stall of the live stream.

pub mod local;
pub mod vod;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    /// Recordings that lost a segment to a full queue: the next one they get starts after a
    /// gap, so it is marked as a discontinuity.
    gaps: Mutex<HashSet<(StreamPath, String)>>,
}

impl Recorder {
    fn new(tx: mpsc::Sender<Job>, metrics: RecordMetrics) -> Self {
        Self {
            tx,
            metrics,
            gaps: Mutex::new(HashSet::new()),
        }
    }
}

impl SegmentSink for Recorder {
    fn segment(&self, path: &StreamPath, session: &str, mut segment: CompletedSegment) {
        let msn = segment.msn;
        let key = (path.clone(), session.to_string());
        let mut gaps = self.gaps.lock().unwrap_or_else(|e| e.into_inner());
        let after_gap = gaps.contains(&key);
        segment.discontinuity |= after_gap;
        match self
            .tx
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
        self.gaps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(path.clone(), session.to_string()));
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
    Ok(Arc::new(Recorder::new(tx, metrics)))
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
        }
    }

    /// A segment that does not fit in the queue is dropped, never waited for, and the next
    /// one recorded is marked as a discontinuity (the recording skips time there).
    #[tokio::test]
    async fn a_dropped_segment_leaves_a_marked_gap() {
        let (tx, mut rx) = mpsc::channel(1);
        let rec = Recorder::new(tx, RecordMetrics::default());
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
