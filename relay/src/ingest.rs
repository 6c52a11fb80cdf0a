//! RTMP (and RTMPS) ingest: a tokio shell around `rml_rtmp`'s server session.
//!
//! One task per connection, each in its own tracing span. Anything a client can do wrong —
//! garbage bytes, a handshake that never ends, a stalled publisher, a message that makes the
//! RTMP library panic — ends only that connection. Media is handed to the stream's hub
//! without ever waiting on a consumer.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as Metrics;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::flv::{FlvError, TagParser};
use crate::path::PublishTarget;
use crate::registry::{PublishError, Publisher, Registry};

/// Ingest settings.
#[derive(Clone)]
pub struct IngestConfig {
    /// A connection that sends nothing for this long is closed.
    pub read_timeout: Duration,
    /// When set, connections are RTMPS (TLS) and this terminates TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Ingest counters, registered in the process's Prometheus registry.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    pub connections: Counter,
    pub active_connections: Gauge,
    pub bytes_in: Counter,
    pub rejected_publishes: Counter,
    pub protocol_errors: Counter,
    pub active_streams: Gauge,
}

impl IngestMetrics {
    pub fn register(&self, reg: &mut Metrics) {
        reg.register(
            "glasscast_rtmp_connections",
            "RTMP connections accepted",
            self.connections.clone(),
        );
        reg.register(
            "glasscast_rtmp_active_connections",
            "RTMP connections open now",
            self.active_connections.clone(),
        );
        reg.register(
            "glasscast_ingest_bytes",
            "Media payload bytes received from publishers",
            self.bytes_in.clone(),
        );
        reg.register(
            "glasscast_rtmp_rejected_publishes",
            "Publish requests refused (bad path, path already live, shutting down)",
            self.rejected_publishes.clone(),
        );
        reg.register(
            "glasscast_rtmp_protocol_errors",
            "Connections closed because of malformed or unsupported input",
            self.protocol_errors.clone(),
        );
        reg.register(
            "glasscast_active_streams",
            "Streams being published now",
            self.active_streams.clone(),
        );
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("no data for {0:?}")]
    Timeout(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("rtmp session: {0:?}")]
    Session(rml_rtmp::sessions::ServerSessionError),
    #[error("the RTMP library panicked on this client's input")]
    Panic,
    #[error("publish rejected: {0}")]
    Rejected(String),
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
                metrics.connections.inc();
                metrics.active_connections.inc();
                let result = match cfg.tls.clone() {
                    Some(acceptor) => {
                        match tokio::time::timeout(cfg.read_timeout, acceptor.accept(socket)).await
                        {
                            Ok(Ok(tls)) => {
                                run_connection(tls, peer, &registry, &cfg, &metrics, &shutdown)
                                    .await
                            }
                            Ok(Err(e)) => Err(ConnError::Io(e)),
                            Err(_) => Err(ConnError::Timeout(cfg.read_timeout)),
                        }
                    }
                    None => {
                        run_connection(socket, peer, &registry, &cfg, &metrics, &shutdown).await
                    }
                };
                metrics.active_connections.dec();
                match result {
                    Ok(()) => debug!("connection closed"),
                    Err(ConnError::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::BrokenPipe
                                | std::io::ErrorKind::UnexpectedEof
                        ) =>
                    {
                        debug!(error = %e, "connection dropped")
                    }
                    Err(e) => {
                        if matches!(
                            e,
                            ConnError::Handshake(_) | ConnError::Session(_) | ConnError::Panic
                        ) {
                            metrics.protocol_errors.inc();
                        }
                        warn!(error = %e, "connection closed")
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Per-connection state between RTMP events.
struct Conn<'a> {
    registry: &'a Arc<Registry>,
    metrics: &'a IngestMetrics,
    peer: SocketAddr,
    publisher: Option<Publisher>,
    parser: TagParser,
    warned_video: bool,
    warned_audio: bool,
    /// Set when the connection must end after the pending output is written.
    closing: Option<String>,
}

async fn read_some<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<usize, ConnError> {
    match tokio::time::timeout(timeout, io.read(buf)).await {
        Ok(Ok(0)) => Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ConnError::Timeout(timeout)),
    }
}

async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: SocketAddr,
    registry: &Arc<Registry>,
    cfg: &IngestConfig,
    metrics: &IngestMetrics,
    shutdown: &CancellationToken,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut handshake = Handshake::new(PeerType::Server);
    let leftover = loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = read_some(&mut io, &mut buf, cfg.read_timeout) => r?,
        };
        match handshake
            .process_bytes(&buf[..n])
            .map_err(ConnError::Handshake)?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                io.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                io.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };

    let (mut session, initial) =
        ServerSession::new(ServerSessionConfig::new()).map_err(ConnError::Session)?;
    let mut conn = Conn {
        registry,
        metrics,
        peer,
        publisher: None,
        parser: TagParser::new(),
        warned_video: false,
        warned_audio: false,
        closing: None,
    };
    let mut out = Vec::new();
    conn.handle_results(&mut session, initial, &mut out)?;
    // Bytes that arrived with the end of the handshake first, then whatever each read brings.
    feed(&mut session, &mut conn, &mut out, &leftover)?;
    loop {
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        if let Some(reason) = conn.closing.take() {
            let _ = io.shutdown().await;
            return Err(ConnError::Rejected(reason));
        }
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = read_some(&mut io, &mut buf, cfg.read_timeout) => r?,
        };
        feed(&mut session, &mut conn, &mut out, &buf[..n])?;
    }
}

/// Hands received bytes to the RTMP session and handles what it raises.
fn feed(
    session: &mut ServerSession,
    conn: &mut Conn<'_>,
    out: &mut Vec<u8>,
    input: &[u8],
) -> Result<(), ConnError> {
    if input.is_empty() {
        return Ok(());
    }
    conn.metrics.bytes_in.inc_by(input.len() as u64);
    // rml_rtmp panics on some legal-but-unusual and on some malformed input; a panic must
    // cost this connection only.
    let results = std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(input)))
        .map_err(|_| ConnError::Panic)?
        .map_err(ConnError::Session)?;
    conn.handle_results(session, results, out)
}

impl Conn<'_> {
    fn handle_results(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(r) = queue.pop_front() {
            match r {
                ServerSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
                ServerSessionResult::RaisedEvent(ev) => {
                    let more = self.handle_event(session, ev)?;
                    queue.extend(more);
                }
            }
        }
        Ok(())
    }

    fn handle_event(
        &mut self,
        session: &mut ServerSession,
        ev: ServerSessionEvent,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        match ev {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => session
                .accept_request(request_id)
                .map_err(ConnError::Session),
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => self.publish(session, request_id, &app_name, &stream_key),
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                // Playback is served over HLS/DASH, not RTMP.
                let r = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "this relay does not serve RTMP playback; use HLS or DASH",
                    )
                    .map_err(ConnError::Session)?;
                Ok(r)
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                if let Some(p) = self.publisher.take() {
                    info!(stream = %p.stream().path, "publisher finished");
                    self.metrics.active_streams.dec();
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = &self.publisher {
                    match self.parser.handle_video(data, timestamp.value) {
                        Ok(Some(msg)) => p.send(msg),
                        Ok(None) => {}
                        Err(e) => warn_once(&mut self.warned_video, &e),
                    }
                }
                Ok(Vec::new())
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if let Some(p) = &self.publisher {
                    match self.parser.handle_audio(data, timestamp.value) {
                        Ok(Some(msg)) => p.send(msg),
                        Ok(None) => {}
                        Err(e) => warn_once(&mut self.warned_audio, &e),
                    }
                }
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app_name: &str,
        stream_key: &str,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        if self.publisher.is_some() {
            return self.reject(
                session,
                request_id,
                "this connection is already publishing".into(),
            );
        }
        let target = match PublishTarget::from_rtmp(app_name, stream_key) {
            Ok(t) => t,
            // The raw names may hold a stream key: log only the reason.
            Err(e) => return self.reject(session, request_id, format!("bad publish path: {e}")),
        };
        match self.registry.publish(target.path.clone()) {
            Ok(p) => {
                info!(
                    stream = %target.path,
                    client = %self.peer.ip(),
                    resumed = p.resumed(),
                    "publishing"
                );
                self.publisher = Some(p);
                self.metrics.active_streams.inc();
                session
                    .accept_request(request_id)
                    .map_err(ConnError::Session)
            }
            Err(e @ PublishError::AlreadyPublishing(_)) => {
                warn!(stream = %target.path, "rejected second publisher: path is already live");
                self.reject(session, request_id, e.to_string())
            }
            Err(e) => self.reject(session, request_id, e.to_string()),
        }
    }

    /// Queues the refusal for the client; the connection closes once it is written.
    fn reject(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        reason: String,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        self.metrics.rejected_publishes.inc();
        let results = session
            .reject_request(request_id, "NetStream.Publish.BadName", &reason)
            .unwrap_or_default();
        self.closing = Some(reason);
        Ok(results)
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.publisher.take() {
            info!(stream = %p.stream().path, "publisher disconnected");
            self.metrics.active_streams.dec();
        }
    }
}

fn warn_once(warned: &mut bool, e: &FlvError) {
    if !*warned {
        *warned = true;
        warn!(error = %e, "dropping media this relay cannot package");
    }
}
