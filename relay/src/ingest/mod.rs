//! RTMP (and RTMPS) ingest: a tokio shell around our own sans-IO server session
//! ([`crate::rtmp::session`]).
//!
//! One task per connection, each in its own tracing span. Anything a client can do wrong —
//! garbage bytes, a handshake that never ends, a connection that never publishes, a stalled
//! publisher, a message over the session's bounds — ends only that connection.
//! Connections over the caps are closed at accept. A `publish` is accepted only after the
//! [`PublishPolicy`] allowed it (awaited here, bounded in time). Media is handed to the
//! stream's hub without ever waiting on a consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::{OpenPolicy, PublishPolicy};
use crate::limits::ConnLimiter;
use crate::registry::Registry;
use crate::rtmp::session::SessionError;

mod conn;
mod metrics;
use conn::run_connection;
pub use metrics::IngestMetrics;

/// Ingest settings.
#[derive(Clone)]
pub struct IngestConfig {
    /// A connection that sends nothing for this long is closed.
    pub read_timeout: Duration,
    /// A connection that has not started publishing this long after it was accepted is
    /// closed (handshake, connect and publish included).
    pub publish_deadline: Duration,
    /// Longest wait for the publish policy's decision; past it the publish is refused.
    pub policy_timeout: Duration,
    /// When set, connections are RTMPS (TLS) and this terminates TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Who may publish.
    pub policy: Arc<dyn PublishPolicy>,
    /// Concurrent connection caps (shared by the RTMP and RTMPS listeners).
    pub limiter: ConnLimiter,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(10),
            publish_deadline: Duration::from_secs(10),
            policy_timeout: Duration::from_secs(5),
            tls: None,
            policy: Arc::new(OpenPolicy),
            limiter: ConnLimiter::new(0, 0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("no data for {0:?}")]
    Timeout(Duration),
    #[error("did not start publishing within {0:?}")]
    PublishDeadline(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("rtmp: {0}")]
    Session(#[from] SessionError),
    #[error("the RTMP session panicked on this client's input")]
    Panic,
    #[error("publish refused: {0}")]
    Rejected(String),
    #[error("stream ended by the operator")]
    Kicked,
    #[error("{0}")]
    UnsupportedCodec(String),
}

impl ConnError {
    /// `rtmp_errors_total{kind}` label; `None` for ordinary ends.
    fn kind(&self) -> Option<&'static str> {
        match self {
            ConnError::Timeout(_) => Some("timeout"),
            ConnError::PublishDeadline(_) => Some("publish_deadline"),
            ConnError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                None
            }
            ConnError::Io(_) => Some("io"),
            ConnError::Session(e) => Some(e.kind()),
            ConnError::Panic => Some("panic"),
            ConnError::UnsupportedCodec(_) => Some("unsupported_codec"),
            ConnError::Rejected(_) | ConnError::Kicked => None,
        }
    }
}

/// Accepts connections until `shutdown` is cancelled. Connection tasks are tracked by
/// `tasks` so the caller can wait for them to finish.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    cfg: IngestConfig,
    metrics: IngestMetrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let next_id = AtomicU64::new(1);
    loop {
        let Some((socket, peer)) = crate::net::accept(&listener, &shutdown, "rtmp").await else {
            break;
        };
        let permit = match cfg.limiter.try_open(peer.ip()) {
            Ok(p) => p,
            Err(hit) => {
                metrics
                    .connection_attempts
                    .get_or_create(&[("status", hit.label())])
                    .inc();
                if metrics.should_log(peer.ip()) {
                    warn!(peer = %peer, "refusing RTMP connection: {hit}");
                }
                // Dropping the socket closes it: a refused client costs no task.
                drop(socket);
                continue;
            }
        };
        metrics
            .connection_attempts
            .get_or_create(&[("status", "accepted")])
            .inc();
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("rtmp", conn = id, peer = %peer);
        let (registry, cfg, metrics, shutdown) = (
            registry.clone(),
            cfg.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.spawn(
            async move {
                let _permit = permit;
                metrics.connections.inc();
                metrics.active_connections.inc();
                let deadline = tokio::time::Instant::now() + cfg.publish_deadline;
                let result = match cfg.tls.clone() {
                    Some(acceptor) => {
                        match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
                            Ok(Ok(tls)) => {
                                run_connection(
                                    tls, peer, deadline, &registry, &cfg, &metrics, &shutdown,
                                )
                                .await
                            }
                            Ok(Err(e)) => Err(ConnError::Io(e)),
                            Err(_) => Err(ConnError::PublishDeadline(cfg.publish_deadline)),
                        }
                    }
                    None => {
                        run_connection(socket, peer, deadline, &registry, &cfg, &metrics, &shutdown)
                            .await
                    }
                };
                metrics.active_connections.dec();
                match result {
                    Ok(()) => debug!("connection closed"),
                    Err(e) => match e.kind() {
                        None if matches!(e, ConnError::Io(_)) => {
                            debug!(error = %e, "connection dropped")
                        }
                        None => info!(error = %e, "connection closed"),
                        Some(kind) => {
                            metrics.errors.get_or_create(&[("kind", kind)]).inc();
                            if metrics.should_log(peer.ip()) {
                                warn!(error = %e, "connection closed");
                            } else {
                                debug!(error = %e, "connection closed");
                            }
                        }
                    },
                }
            }
            .instrument(span),
        );
    }
}
