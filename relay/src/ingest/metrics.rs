//! Ingest and publish-authorization metrics, and the gate that keeps offenders' log lines to
//! one a minute per address.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as Metrics;

use crate::limits::LogGate;

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];

/// Ingest and publish-authorization metrics (names from `seeds/003_*`).
#[derive(Clone)]
pub struct IngestMetrics {
    pub connections: Counter,
    pub active_connections: Gauge,
    pub bytes_in: Counter,
    pub errors: Family<Labels1, Counter>,
    pub connection_attempts: Family<Labels1, Counter>,
    pub publish_attempts: Family<Labels1, Counter>,
    pub auth_decisions: Family<Labels2, Counter>,
    pub active_streams: Gauge,
    /// Offenders (by address) are logged at most once a minute.
    log_gate: Arc<Mutex<LogGate<IpAddr>>>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self {
            connections: Counter::default(),
            active_connections: Gauge::default(),
            bytes_in: Counter::default(),
            errors: Family::default(),
            connection_attempts: Family::default(),
            publish_attempts: Family::default(),
            auth_decisions: Family::default(),
            active_streams: Gauge::default(),
            log_gate: Arc::new(Mutex::new(LogGate::new(Duration::from_secs(60), 4096))),
        }
    }
}

impl IngestMetrics {
    pub fn register(&self, reg: &mut Metrics) {
        reg.register(
            "rtmp_connections",
            "RTMP connections accepted (after the connection caps)",
            self.connections.clone(),
        );
        reg.register(
            "rtmp_active_connections",
            "RTMP connections open now",
            self.active_connections.clone(),
        );
        reg.register(
            "rtmp_bandwidth_bytes",
            "Bytes received from RTMP clients",
            self.bytes_in.clone(),
        );
        reg.register(
            "rtmp_errors",
            "RTMP connections ended by an error, by kind",
            self.errors.clone(),
        );
        reg.register(
            "rtmp_connection_attempts",
            "RTMP connection attempts by outcome (accepted, over_total_limit, over_ip_limit)",
            self.connection_attempts.clone(),
        );
        reg.register(
            "rtmp_publish_attempts",
            "Publish requests by outcome (accepted or the refusal reason)",
            self.publish_attempts.clone(),
        );
        reg.register(
            "auth_decisions",
            "Publish authorization decisions by mode and result (allow or the refusal reason)",
            self.auth_decisions.clone(),
        );
        reg.register(
            "rtmp_active_streams",
            "Streams being published now",
            self.active_streams.clone(),
        );
    }

    /// True when something about `ip` should be logged now (at most once a minute each).
    pub(super) fn should_log(&self, ip: IpAddr) -> bool {
        self.log_gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&ip, std::time::Instant::now())
            .is_some()
    }
}
