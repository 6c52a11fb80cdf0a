//! The publishing side of RTMP, written once for everything that publishes: restream pushers,
//! the load generator and tests. A sans-IO core around `rml_rtmp`'s client session (which
//! serves well on this side) runs handshake, `connect` and `publish`, contains that library's
//! panics, and classifies failures: a refusal (bad key, bad app; not worth retrying) against
//! trouble on the way (retry). [`connect_and_publish`] is the one async driver.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why publishing did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server refused `connect` or `publish` (bad key, bad app, forbidden).
    #[error("refused: {0}")]
    Refused(String),
    /// The server closed the connection after accepting `connect` and before accepting
    /// `publish`: how nginx-rtmp refuses a key, but a network fault looks the same.
    #[error("{0}")]
    ClosedBeforePublish(String),
    /// Anything on the way: I/O, timeouts, a protocol error, a panic in the RTMP library.
    #[error("{0}")]
    Network(String),
}

/// Where publishing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    Publishing,
    Published,
}

/// The client from handshake to an accepted publish.
pub struct PublishClient {
    handshake: Handshake,
    session: Option<ClientSession>,
    app: String,
    /// The stream name sent in `publish` (a stream key: secret).
    key: String,
    tc_url: String,
    state: State,
    out: Vec<u8>,
}

impl std::fmt::Debug for PublishClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishClient")
            .field("app", &self.app)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Runs an `rml_rtmp` call; its panics become network errors of this connection only.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, ClientError> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ClientError::Network(format!("{what}: {e}"))),
        Err(_) => Err(ClientError::Network(format!(
            "{what}: the RTMP client library panicked"
        ))),
    }
}

/// Status codes that mean "no" rather than "not now".
fn is_refusal(code: &str) -> bool {
    [
        "BadName",
        "Denied",
        "Rejected",
        "Failed",
        "Unauthorized",
        "Forbidden",
    ]
    .iter()
    .any(|w| code.contains(w))
}

impl PublishClient {
    /// A client that will publish `key` on `app` (`tc_url` is sent in `connect`).
    pub fn new(app: &str, key: &str, tc_url: &str) -> Result<Self, ClientError> {
        let mut handshake = Handshake::new(PeerType::Client);
        let p0p1 = guarded("handshake", || {
            handshake
                .generate_outbound_p0_and_p1()
                .map_err(|e| format!("{e:?}"))
        })?;
        Ok(Self {
            handshake,
            session: None,
            app: app.to_string(),
            key: key.to_string(),
            tc_url: tc_url.to_string(),
            state: State::Handshake,
            out: p0p1,
        })
    }

    /// Bytes to send now.
    pub fn poll_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn is_published(&self) -> bool {
        self.state == State::Published
    }

    /// True once `connect` was accepted (a close after it is [`ClientError::ClosedBeforePublish`]).
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Publishing | State::Published)
    }

    /// The session, for sending media once published.
    pub fn into_session(self) -> Option<ClientSession> {
        self.session.filter(|_| self.state == State::Published)
    }

    fn push_results(&mut self, results: Vec<ClientSessionResult>) -> Vec<ClientSessionEvent> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ClientSessionResult::RaisedEvent(e) => events.push(e),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        events
    }

    /// Handles received bytes; queues replies.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), ClientError> {
        let mut input = input.to_vec();
        if self.state == State::Handshake {
            let hs = &mut self.handshake;
            match guarded("handshake", || {
                hs.process_bytes(&input).map_err(|e| format!("{e:?}"))
            })? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(());
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.out.extend_from_slice(&response_bytes);
                    input = remaining_bytes;
                    let mut config = ClientSessionConfig::new();
                    config.tc_url = Some(self.tc_url.clone());
                    let (mut session, initial) = guarded("session", || {
                        ClientSession::new(config).map_err(|e| format!("{e:?}"))
                    })?;
                    let app = self.app.clone();
                    let connect = guarded("connect", || {
                        session
                            .request_connection(app)
                            .map_err(|e| format!("{e:?}"))
                    })?;
                    self.push_results(initial);
                    self.push_results(vec![connect]);
                    self.session = Some(session);
                    self.state = State::Connecting;
                }
            }
        }
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let results = guarded("rtmp", || {
            session.handle_input(&input).map_err(|e| format!("{e:?}"))
        })?;
        for e in self.push_results(results) {
            match e {
                ClientSessionEvent::ConnectionRequestAccepted
                    if self.state == State::Connecting =>
                {
                    let key = self.key.clone();
                    let Some(session) = self.session.as_mut() else {
                        break;
                    };
                    let r = guarded("publish", || {
                        session
                            .request_publishing(key, PublishRequestType::Live)
                            .map_err(|e| format!("{e:?}"))
                    })?;
                    self.push_results(vec![r]);
                    self.state = State::Publishing;
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    return Err(ClientError::Refused(format!(
                        "connect rejected: {description}"
                    )));
                }
                ClientSessionEvent::PublishRequestAccepted => self.state = State::Published,
                ClientSessionEvent::UnhandleableOnStatusCode { code } if is_refusal(&code) => {
                    return Err(ClientError::Refused(format!("publish rejected: {code}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

async fn within<T>(
    t: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, ClientError> {
    crate::net::within(t, what, f)
        .await
        .map_err(ClientError::Network)
}

/// Handshakes, connects and publishes on `io`, each read and write bounded by `timeout`;
/// returns the session to send media with.
pub async fn connect_and_publish<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    app: &str,
    key: &str,
    tc_url: &str,
    timeout: Duration,
) -> Result<ClientSession, ClientError> {
    let mut c = PublishClient::new(app, key, tc_url)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let out = c.poll_transmit();
        if !out.is_empty() {
            within(timeout, "write", io.write_all(&out)).await?;
        }
        if c.is_published() {
            return c
                .into_session()
                .ok_or_else(|| ClientError::Network("no session".into()));
        }
        let n = within(timeout, "waiting for the server", io.read(&mut buf)).await?;
        if n == 0 {
            return Err(if c.is_connected() {
                ClientError::ClosedBeforePublish(
                    "the server closed the connection before accepting publish".into(),
                )
            } else {
                ClientError::Network("the server closed the connection".into())
            });
        }
        c.handle_input(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::session::{Event, ServerSession, SessionConfig};

    /// Runs a client against our server session in memory; `answer` decides the publish.
    fn against_server(answer: Option<&str>) -> Result<bool, ClientError> {
        let mut c = PublishClient::new("live", "u/s", "rtmp://h/live")?;
        let mut s = ServerSession::new(SessionConfig::default());
        for _ in 0..20 {
            let to_server = c.poll_transmit();
            if !to_server.is_empty() {
                s.handle_input(&to_server).unwrap();
            }
            while let Some(e) = s.poll_event() {
                if let Event::PublishRequested {
                    request_id, name, ..
                } = e
                {
                    assert_eq!(name, "u/s");
                    match answer {
                        None => s.accept_publish(request_id).unwrap(),
                        Some(why) => s
                            .reject_publish(request_id, "NetStream.Publish.BadName", why)
                            .unwrap(),
                    }
                }
            }
            let to_client = s.poll_transmit();
            if !to_client.is_empty() {
                c.handle_input(&to_client)?;
            }
            if c.is_published() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    #[test]
    fn publishes_against_our_server_session() {
        assert_eq!(against_server(None), Ok(true));
    }

    #[test]
    fn a_refused_publish_is_a_refusal_not_a_network_error() {
        match against_server(Some("bad key")) {
            Err(ClientError::Refused(m)) => assert!(m.contains("BadName"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_from_the_server_is_a_network_error_never_a_panic() {
        let mut c = PublishClient::new("live", "k", "rtmp://h/live").unwrap();
        c.poll_transmit();
        // A plausible S0+S1+S2, then noise where chunks should be.
        let mut input = vec![3u8];
        input.extend(vec![0u8; 3072]);
        let _ = c.handle_input(&input);
        let noise: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for piece in noise.chunks(97) {
            if let Err(e) = c.handle_input(piece) {
                assert!(matches!(e, ClientError::Network(_)), "{e:?}");
                return;
            }
        }
    }
}
