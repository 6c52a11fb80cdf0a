//! One RTMP connection: bytes from the socket into the session, its replies back out, its
//! events into the stream. A `publish` is answered only after the policy decided; until then
//! nothing after it is handled (the session holds it).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{ConnError, IngestConfig, IngestMetrics};
use crate::auth::{Decision, DenyReason, PublishName, PublishRequest};
use crate::flv::{FlvError, TagParser};
use crate::path::PublishTarget;
use crate::registry::{PublishError, Publisher, Registry};
use crate::rtmp::session::{Event, ServerSession, SessionConfig};

/// Read buffer per connection: a publisher's frames arrive a few KiB at a time, and an idle
/// connection should cost little.
const READ_BUFFER: usize = 16 * 1024;

/// Per-connection state between session events.
struct Conn<'a> {
    registry: &'a Arc<Registry>,
    metrics: &'a IngestMetrics,
    peer: SocketAddr,
    publisher: Option<Publisher>,
    parser: TagParser,
    warned_video: bool,
    warned_audio: bool,
    /// Set when the connection must end after the pending output is written.
    closing: Option<ConnError>,
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

/// Hands received bytes to the session; a panic in it costs this connection only.
fn feed(session: &mut ServerSession, input: &[u8]) -> Result<(), ConnError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(input)))
        .map_err(|_| ConnError::Panic)?
        .map_err(ConnError::Session)
}

pub(super) async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    registry: &Arc<Registry>,
    cfg: &IngestConfig,
    metrics: &IngestMetrics,
    shutdown: &CancellationToken,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut session = ServerSession::new(SessionConfig {
        seed: u64::from(peer.port()) << 32 | u64::from(std::process::id()),
        ..Default::default()
    });
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
    loop {
        let deadline = conn.publisher.is_none().then_some(deadline);
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = read_bounded(&mut io, &mut buf, cfg, deadline) => r?,
        };
        metrics.bytes_in.inc_by(n as u64);
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
        feed(&mut session, &buf[..n])?;
        loop {
            let out = session.poll_transmit();
            if !out.is_empty() {
                io.write_all(&out).await?;
            }
            if let Some(e) = conn.closing.take() {
                let _ = io.shutdown().await;
                return Err(e);
            }
            let Some(event) = session.poll_event() else {
                break;
            };
            match event {
                Event::PublishRequested {
                    request_id,
                    app,
                    name,
                } => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        r = conn.decide(&mut session, request_id, &app, &name, cfg) => r?,
                    }
                }
                other => conn.handle_event(&mut session, other)?,
            }
        }
    }
}

impl Conn<'_> {
    fn handle_event(&mut self, session: &mut ServerSession, ev: Event) -> Result<(), ConnError> {
        match ev {
            Event::PlayRequested { request_id } => {
                // Playback is served over HLS/DASH, not RTMP.
                session.reject_play(
                    request_id,
                    "this relay does not serve RTMP playback; use HLS or DASH",
                )?;
            }
            Event::PublishFinished => {
                if let Some(p) = self.publisher.take() {
                    // The stream now waits out its grace period without this connection.
                    info!(stream = %p.stream().path, "publisher finished");
                    self.metrics.active_streams.dec();
                }
            }
            Event::Video { timestamp, data } => {
                if let Some(p) = &self.publisher {
                    match self.parser.handle_video(data, timestamp) {
                        Ok(Some(msg)) => p.send(msg),
                        Ok(None) => {}
                        // A codec we cannot package would make a stream without picture:
                        // refuse it, naming the codec, rather than serve broken output.
                        Err(e) if e.is_unsupported_video_codec() => {
                            warn!(error = %e, "refusing the publisher's video codec");
                            session.fail_publish(&e.to_string());
                            self.closing = Some(ConnError::UnsupportedCodec(e.to_string()));
                        }
                        Err(e) => warn_once(&mut self.warned_video, &e),
                    }
                }
            }
            Event::Audio { timestamp, data } => {
                if let Some(p) = &self.publisher {
                    match self.parser.handle_audio(data, timestamp) {
                        Ok(Some(msg)) => p.send(msg),
                        Ok(None) => {}
                        Err(e) => warn_once(&mut self.warned_audio, &e),
                    }
                }
            }
            Event::Connected { .. } | Event::Metadata(_) | Event::PublishRequested { .. } => {}
        }
        Ok(())
    }

    /// Asks the policy about a publish, then claims the stream or refuses.
    async fn decide(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app: &str,
        name: &str,
        cfg: &IngestConfig,
    ) -> Result<(), ConnError> {
        if self.publisher.is_some() {
            // The publish in progress goes on; only the second one is refused.
            self.metrics
                .publish_attempts
                .get_or_create(&[("status", "already_publishing")])
                .inc();
            session.reject_publish(
                request_id,
                "NetStream.Publish.BadName",
                "this connection is already publishing a stream",
            )?;
            return Ok(());
        }
        let target = match PublishTarget::from_rtmp(app, name) {
            Ok(t) => t,
            // The raw names may hold a stream key: log only the reason.
            Err(e) => {
                self.reject(
                    session,
                    request_id,
                    "bad_path",
                    format!("bad publish path: {e}"),
                );
                return Ok(());
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
                self.reject(
                    session,
                    request_id,
                    reason.label(),
                    format!("publish refused: {reason}"),
                );
                return Ok(());
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
                session.accept_publish(request_id)?;
            }
            Err(e @ PublishError::AlreadyPublishing(_)) => {
                warn!(stream = %path, "rejected second publisher: path is already live");
                self.reject(session, request_id, "already_publishing", e.to_string());
            }
            Err(e @ PublishError::ShuttingDown) => {
                self.reject(session, request_id, "shutting_down", e.to_string());
            }
        }
        Ok(())
    }

    /// Queues the refusal for the client; the connection closes once it is written.
    fn reject(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        label: &'static str,
        reason: String,
    ) {
        self.metrics
            .publish_attempts
            .get_or_create(&[("status", label)])
            .inc();
        // Nothing after a refused publish matters: the connection closes once this is sent.
        let _ = session.reject_publish(request_id, "NetStream.Publish.BadName", &reason);
        self.closing = Some(ConnError::Rejected(reason));
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
