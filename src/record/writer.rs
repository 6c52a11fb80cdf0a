//! The tasks that write recordings: each owns the recordings the recorder routes to it and
//! writes their files in order, then tells the uploader (object storage) or the cloud (ready).

use std::sync::Arc;

use origin::recording::CompletedSegment;
use relay::path::StreamPath;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::catalog::{Catalog, Info, State};
use super::spool::{Item, Kind};
use super::{Job, Ready, RecordMetrics, local, mpd, rec_key, s3};

/// The task that writes recordings, in order.
pub(super) struct Writer {
    pub(super) dir: local::LocalDir,
    pub(super) catalog: Arc<Catalog>,
    pub(super) metrics: RecordMetrics,
    pub(super) uploader: Option<mpsc::Sender<s3::Msg>>,
    pub(super) ready: Ready,
}

impl Writer {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                _ = shutdown.cancelled() => rx.try_recv().ok(),
            };
            let Some(job) = job else { break };
            match job {
                Job::Segment(path, session, seg) => self.segment(path, session, seg).await,
                Job::Ended(path, session) => match self.dir.ended(&path, &session).await {
                    Ok(true) => self.ended(&path, &session).await,
                    Ok(false) => {}
                    Err(e) => {
                        self.metrics.failure("write");
                        warn!(stream = %path, error = format!("{e:#}"), "closing a recording failed");
                    }
                },
            }
        }
        match self.dir.close_all().await {
            Ok(closed) => {
                for (path, session) in closed {
                    self.ended(&path, &session).await;
                }
            }
            Err(e) => {
                self.metrics.failure("write");
                warn!(
                    error = format!("{e:#}"),
                    "closing recordings at shutdown failed"
                );
            }
        }
    }

    async fn segment(&mut self, path: StreamPath, session: String, seg: CompletedSegment) {
        let (duration_s, pdt_ms) = (seg.duration_s, seg.pdt_ms);
        let first = !self.dir.is_open(&path, &session);
        let written = match self.dir.segment(&path, &session, seg).await {
            Ok(w) => w,
            Err(e) => {
                self.metrics.segment("failed");
                self.metrics.failure("write");
                warn!(stream = %path, error = format!("{e:#}"), "recording a segment failed");
                return;
            }
        };
        self.metrics.segment("ok");
        let media: u64 = written
            .iter()
            .filter(|w| !w.manifest)
            .map(|w| w.bytes)
            .sum();
        self.metrics.bytes.inc_by(media);
        if first && let Some(dir) = local::rel_dir(&path, &session) {
            self.catalog.insert(Info {
                id: session.clone(),
                path: path.clone(),
                dir,
                started_ms: pdt_ms,
                duration_s: 0.0,
                state: State::Recording,
            });
        }
        self.catalog
            .update(&session, |i| i.duration_s += duration_s);
        let Some(up) = &self.uploader else { return };
        let Some(info) = self.catalog.get(&session) else {
            return;
        };
        for w in written {
            let item = Item {
                rec: rec_key(&info),
                file: w.file,
                bytes: if w.manifest { 0 } else { w.bytes },
                kind: if w.manifest {
                    Kind::Manifest
                } else {
                    Kind::Media
                },
            };
            let _ = up.send(s3::Msg::Stored(item)).await;
        }
    }

    /// A recording's playlist is final: it is complete here, or once uploaded.
    async fn ended(&mut self, _path: &StreamPath, session: &str) {
        let Some(info) = self.catalog.get(session) else {
            return;
        };
        match &self.uploader {
            Some(up) => {
                self.catalog.update(session, |i| i.state = State::Uploading);
                let rec = rec_key(&info);
                for file in [local::PLAYLIST, mpd::MANIFEST] {
                    let _ = up
                        .send(s3::Msg::Stored(Item {
                            rec: rec.clone(),
                            file: file.into(),
                            bytes: 0,
                            kind: Kind::Manifest,
                        }))
                        .await;
                }
                let _ = up.send(s3::Msg::Ended(rec)).await;
            }
            None => {
                self.catalog.update(session, |i| i.state = State::Complete);
                if let Some(info) = self.catalog.get(session) {
                    (self.ready)(info);
                }
            }
        }
    }
}
