//! The origin's metrics: counters the packager and the HTTP handlers update, and gauges read
//! from the streams at scrape time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as Metrics;

use crate::packager::Origin;

/// Origin counters.
#[derive(Clone)]
pub struct OriginMetrics {
    pub parts_produced: Counter,
    pub segments_produced: Counter,
    pub packaging_errors: Counter,
    pub http_requests: Family<Vec<(String, String)>, Counter>,
    pub media_bytes_out: Counter,
    pub limit_hits: Family<Vec<(String, String)>, Counter>,
    pub playlist_requests: Family<Vec<(String, String)>, Counter>,
    pub blocking_wake: Histogram,
}

impl Default for OriginMetrics {
    fn default() -> Self {
        Self {
            parts_produced: Counter::default(),
            segments_produced: Counter::default(),
            packaging_errors: Counter::default(),
            http_requests: Family::default(),
            media_bytes_out: Counter::default(),
            limit_hits: Family::default(),
            playlist_requests: Family::default(),
            // 1 ms to ~4 s.
            blocking_wake: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
        }
    }
}

impl OriginMetrics {
    pub fn register(&self, reg: &mut Metrics) {
        reg.register(
            "hls_parts",
            "LL-HLS parts produced",
            self.parts_produced.clone(),
        );
        reg.register(
            "hls_segments",
            "Segments produced",
            self.segments_produced.clone(),
        );
        reg.register(
            "glasscast_packaging_errors",
            "Media the packager could not write",
            self.packaging_errors.clone(),
        );
        reg.register(
            "glasscast_http_requests",
            "HTTP requests by kind and result",
            self.http_requests.clone(),
        );
        reg.register(
            "glasscast_media_bytes_out",
            "Media bytes served",
            self.media_bytes_out.clone(),
        );
        reg.register(
            "hls_playlist_requests",
            "LL-HLS media playlist requests by result (ok, fresh_ok, fresh_late, blocked_ok, bad_request, timeout, not_found)",
            self.playlist_requests.clone(),
        );
        reg.register(
            "hls_blocking_wake_seconds",
            "Time from a part's completion to the answer of a playlist request blocked on it",
            self.blocking_wake.clone(),
        );
        reg.register(
            "http_limit_hits",
            "HTTP connections or requests stopped by a limit (max_connections, header_timeout, url_too_long)",
            self.limit_hits.clone(),
        );
    }

    /// Counts one request by kind (`playlist`, `media`, …) and result.
    pub fn request(&self, kind: &str, result: &str) {
        let labels = vec![
            ("kind".into(), kind.into()),
            ("result".into(), result.into()),
        ];
        self.http_requests.get_or_create(&labels).inc();
        if kind == "playlist" {
            self.playlist_requests
                .get_or_create(&vec![("result".into(), result.into())])
                .inc();
        }
    }

    pub fn limit_hit(&self, limit: &str) {
        self.limit_hits
            .get_or_create(&vec![("limit".into(), limit.into())])
            .inc();
    }
}

/// Gauges read at scrape time: requests blocked on a part (`hls_blocking_waiters`) and viewer
/// sessions seen in the last 30 s (`hls_sessions`), over all streams.
#[derive(Debug)]
pub struct OriginCollector(pub Arc<Origin>);

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for OriginCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::gauge::ConstGauge;
        let streams = self.0.streams();
        let now = Instant::now();
        let waiters: usize = streams.iter().map(|s| s.blocked_requests()).sum();
        let sessions: u64 = streams
            .iter()
            .map(|s| s.viewers(now, Duration::from_secs(30)))
            .sum();
        for (name, help, v) in [
            (
                "hls_blocking_waiters",
                "Playlist and part requests held until their part exists",
                waiters as i64,
            ),
            (
                "hls_sessions",
                "Distinct HLS/DASH viewer sessions seen in the last 30 s",
                sessions as i64,
            ),
        ] {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)?;
        }
        Ok(())
    }
}
