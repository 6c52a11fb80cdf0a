//! `record.retention_days`: recordings whose broadcast ended longer ago than that are
//! deleted, from the recording directory and from object storage, at start and then every
//! [`INTERVAL`]. A live recording is never deleted.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::catalog::{Catalog, Info, State};
use super::{RecordMetrics, Store};

/// How often retention looks for expired recordings.
pub const INTERVAL: Duration = Duration::from_secs(600);

/// The recordings to delete at `now_ms`: ended, and ended more than `keep` ago. Pure.
pub fn expired(recordings: &[Info], now_ms: i64, keep: Duration) -> Vec<String> {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    recordings
        .iter()
        .filter(|i| i.state != State::Recording)
        .filter(|i| {
            let ended_ms = i.started_ms + (i.duration_s * 1000.0) as i64;
            now_ms.saturating_sub(ended_ms) > keep_ms
        })
        .map(|i| i.id.clone())
        .collect()
}

/// Deletes expired recordings now and every [`INTERVAL`] until `shutdown`.
pub async fn run(
    catalog: Arc<Catalog>,
    store: Store,
    keep: Duration,
    metrics: RecordMetrics,
    shutdown: CancellationToken,
) {
    loop {
        sweep(&catalog, &store, keep, &metrics).await;
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass: deletes what has expired.
pub async fn sweep(catalog: &Catalog, store: &Store, keep: Duration, metrics: &RecordMetrics) {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for id in expired(&catalog.list(None, None), now_ms, keep) {
        match store.delete(catalog, &id).await {
            Ok(_) => info!(recording = %id, "recording deleted: older than record.retention_days"),
            Err(e) => {
                metrics.failure("delete");
                warn!(recording = %id, error = format!("{e:#}"), "deleting an expired recording failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::path::StreamPath;

    fn rec(id: &str, started_ms: i64, duration_s: f64, state: State) -> Info {
        Info {
            id: id.into(),
            path: StreamPath {
                user_id: "u".into(),
                stream_id: "s".into(),
            },
            dir: format!("u/s/{id}"),
            started_ms,
            duration_s,
            state,
        }
    }

    #[test]
    fn only_ended_recordings_older_than_the_retention_go() {
        let day = 86_400_000i64;
        let now = 100 * day;
        let keep = Duration::from_secs(7 * 86_400);
        let all = [
            rec("old", now - 30 * day, 60.0, State::Complete),
            rec("old-uploading", now - 30 * day, 60.0, State::Uploading),
            // Started long ago but still live: never.
            rec("live", now - 30 * day, 30.0 * 86_400.0, State::Recording),
            rec("old-live", now - 30 * day, 60.0, State::Recording),
            // Ended 7 days and 1 ms ago: goes; ended exactly 7 days ago: stays.
            rec("edge-out", now - 7 * day - 61_001, 60.0, State::Complete),
            rec("edge-in", now - 7 * day - 60_000, 60.0, State::Complete),
            // Started 8 days ago, lasted 2 days: ended 6 days ago, stays.
            rec("long", now - 8 * day, 2.0 * 86_400.0, State::Complete),
            rec("new", now - day, 60.0, State::Complete),
        ];
        assert_eq!(
            expired(&all, now, keep),
            ["old", "old-uploading", "edge-out"]
        );
    }
}
