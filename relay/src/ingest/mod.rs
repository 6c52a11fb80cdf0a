//! RTMP (and RTMPS) ingest: a tokio shell around `rml_rtmp`'s server session.
//!
//! One task per connection, each in its own tracing span. Anything a client can do wrong —
//! garbage bytes, a handshake that never ends, a connection that never publishes, a stalled
//! publisher, a message that makes the RTMP library panic — ends only that connection.
//! Connections over the caps are closed at accept. A `publish` is accepted only after the
//! [`PublishPolicy`] allowed it (awaited here, bounded in time). Media is handed to the
//! stream's hub without ever waiting on a consumer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::{Decision, DenyReason, OpenPolicy, PublishName, PublishPolicy, PublishRequest};
use crate::flv::{FlvError, TagParser};
use crate::limits::ConnLimiter;

mod metrics;
use crate::path::PublishTarget;
use crate::registry::{PublishError, Publisher, Registry};
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
    #[error("handshake: {0:?}")]
    Handshake(rml_rtmp::handshake::HandshakeError),
    #[error("rtmp session: {0:?}")]
    Session(rml_rtmp::sessions::ServerSessionError),
    #[error("the RTMP library panicked on this client's input")]
    Panic,
    #[error("publish refused: {0}")]
    Rejected(String),
    #[error("stream ended by the operator")]
    Kicked,
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
            ConnError::Handshake(_) => Some("handshake"),
            ConnError::Session(_) => Some("protocol"),
            ConnError::Panic => Some("panic"),
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

/// A `publish` waiting for the policy's decision.
struct PendingPublish {
    request_id: u32,
    app: String,
    name: String,
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
    /// A publish the policy has not decided yet; nothing after it is handled until then.
    pending: Option<PendingPublish>,
    /// Session results held back behind a pending publish.
    backlog: VecDeque<ServerSessionResult>,
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

/// Reads with the idle timeout and, until publishing starts, the publish deadline.
async fn read_bounded<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut [u8],
    cfg: &IngestConfig,
    deadline: Option<tokio::time::Instant>,
) -> Result<usize, ConnError> {
    match deadline {
        None => read_some(io, buf, cfg.read_timeout).await,
        Some(d) => tokio::time::timeout_at(d, read_some(io, buf, cfg.read_timeout))
            .await
            .map_err(|_| ConnError::PublishDeadline(cfg.publish_deadline))?,
    }
}

async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
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
            r = read_bounded(&mut io, &mut buf, cfg, Some(deadline)) => r?,
        };
        metrics.bytes_in.inc_by(n as u64);
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
        pending: None,
        backlog: VecDeque::new(),
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
        if let Some(p) = conn.pending.take() {
            let results = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = conn.decide(&mut session, p, cfg) => r?,
            };
            conn.handle_results(&mut session, results, &mut out)?;
            continue;
        }
        let deadline = conn.publisher.is_none().then_some(deadline);
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = read_bounded(&mut io, &mut buf, cfg, deadline) => r?,
        };
        // A stream ended under its publisher was kicked by the operator. Checked per read (a
        // publisher sends continuously; an idle one meets the read timeout) rather than by a
        // third future in the select, which cost measurable CPU per read at hundreds of streams.
        if conn
            .publisher
            .as_ref()
            .is_some_and(|p| p.stream().has_ended())
        {
            info!("the stream was ended by the operator; closing the publisher");
            let _ = io.shutdown().await;
            return Err(ConnError::Kicked);
        }
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
    /// Queues `results` behind anything held back, then handles them in order until a
    /// publish needs a decision.
    fn handle_results(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        self.backlog.extend(results);
        while self.pending.is_none() {
            let Some(r) = self.backlog.pop_front() else {
                break;
            };
            match r {
                ServerSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
                ServerSessionResult::RaisedEvent(ev) => {
                    let more = self.handle_event(session, ev)?;
                    // Results of an event come before what was already queued after it.
                    for m in more.into_iter().rev() {
                        self.backlog.push_front(m);
                    }
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
            } => {
                if self.publisher.is_some() || self.pending.is_some() {
                    return self.reject(
                        session,
                        request_id,
                        "already_publishing",
                        "this connection is already publishing".into(),
                    );
                }
                self.pending = Some(PendingPublish {
                    request_id,
                    app: app_name,
                    name: stream_key,
                });
                Ok(Vec::new())
            }
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
                    // The stream now waits out its grace period without this connection.
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

    /// Asks the policy about a publish, then claims the stream or refuses.
    async fn decide(
        &mut self,
        session: &mut ServerSession,
        p: PendingPublish,
        cfg: &IngestConfig,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        let target = match PublishTarget::from_rtmp(&p.app, &p.name) {
            Ok(t) => t,
            // The raw names may hold a stream key: log only the reason.
            Err(e) => {
                return self.reject(
                    session,
                    p.request_id,
                    "bad_path",
                    format!("bad publish path: {e}"),
                );
            }
        };
        let client_ip = crate::auth::canonical_ip(self.peer.ip());
        let req = PublishRequest {
            name: target.name,
            credential: target.credential,
            client_ip,
        };
        let mode = cfg.policy.mode();
        let decision = tokio::time::timeout(cfg.policy_timeout, cfg.policy.authorize(&req))
            .await
            .unwrap_or(Decision::Deny(DenyReason::PolicyTimeout));
        let path = match decision {
            Decision::Allow(path) => {
                self.metrics
                    .auth_decisions
                    .get_or_create(&[("mode", mode), ("result", "allow")])
                    .inc();
                path
            }
            Decision::Deny(reason) => {
                self.metrics
                    .auth_decisions
                    .get_or_create(&[("mode", mode), ("result", reason.label())])
                    .inc();
                // The requested path is logged only when the client named one: a bare name
                // is a key or an alias. A client retrying in a loop (or guessing keys) is
                // logged at warn once a minute, at debug otherwise; every refusal is counted.
                let stream = match &req.name {
                    PublishName::Stream(s) => s.to_string(),
                    PublishName::Bare(_) => "-".into(),
                };
                if self.metrics.should_log(client_ip) {
                    warn!(stream, client = %client_ip, mode, reason = reason.label(), "publish refused: {reason}");
                } else {
                    debug!(stream, client = %client_ip, mode, reason = reason.label(), "publish refused: {reason}");
                }
                return self.reject(
                    session,
                    p.request_id,
                    reason.label(),
                    format!("publish refused: {reason}"),
                );
            }
        };
        match self.registry.publish(path.clone()) {
            Ok(publisher) => {
                info!(
                    stream = %path,
                    client = %client_ip,
                    resumed = publisher.resumed(),
                    mode,
                    "publishing"
                );
                publisher.set_client_ip(client_ip);
                self.publisher = Some(publisher);
                self.metrics.active_streams.inc();
                self.metrics
                    .publish_attempts
                    .get_or_create(&[("status", "accepted")])
                    .inc();
                session
                    .accept_request(p.request_id)
                    .map_err(ConnError::Session)
            }
            Err(e @ PublishError::AlreadyPublishing(_)) => {
                warn!(stream = %path, "rejected second publisher: path is already live");
                self.reject(session, p.request_id, "already_publishing", e.to_string())
            }
            Err(e @ PublishError::ShuttingDown) => {
                self.reject(session, p.request_id, "shutting_down", e.to_string())
            }
        }
    }

    /// Queues the refusal for the client; the connection closes once it is written.
    fn reject(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        label: &'static str,
        reason: String,
    ) -> Result<Vec<ServerSessionResult>, ConnError> {
        self.metrics
            .publish_attempts
            .get_or_create(&[("status", label)])
            .inc();
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
