//! What keeps one HTTP client from hurting the others: the limits, and the log that names an
//! offending client at most once a minute.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use relay::limits::LogGate;

/// Limits that keep one client from hurting the others.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Concurrent connections (0 = no cap); connections over it are closed at accept.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive (HTTP/1.1; slowloris).
    pub header_timeout: Duration,
    /// Longest request target (path and query); longer gets 414.
    pub max_url_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            max_url_bytes: 4096,
        }
    }
}

/// Logs clients that hit a limit, each at most once a minute (4096 addresses remembered).
#[derive(Debug)]
pub struct OffenderLog(Mutex<LogGate<IpAddr>>);

impl Default for OffenderLog {
    fn default() -> Self {
        Self(Mutex::new(LogGate::new(Duration::from_secs(60), 4096)))
    }
}

impl OffenderLog {
    pub fn report(&self, limit: &'static str, peer: SocketAddr) {
        let held = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&peer.ip(), Instant::now());
        if let Some(held) = held {
            tracing::warn!(client = %peer.ip(), limit, also_since_last_report = held, "http client stopped by a limit");
        }
    }
}

/// True when a connection ended because its request headers did not arrive in time.
pub fn is_header_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}
