//! One tokio task per destination: connects over TCP or TLS, publishes with the shared
//! [`crate::rtmp::client`], and forwards the stream's FLV payloads byte for byte, supervised by
//! [`Supervisor`]. It reads the stream from its own bounded hub queue, so a slow destination
//! loses frames (resynced at the next keyframe, counted) and never slows anything else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rml_rtmp::sessions::{ClientSession, ClientSessionResult, StreamMetadata};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use super::destination::Destination;
use super::forwarder::{Forwarder, Outgoing};
use super::supervisor::{Action, BackoffConfig, DestState, Failure, Supervisor};
use crate::media::MediaMessage;
use crate::registry::Stream;
use crate::rtmp::client::ClientError;

/// Pusher settings shared by every destination.
#[derive(Clone)]
pub struct PushConfig {
    pub connect_timeout: Duration,
    /// A write that makes no progress for this long means the destination is gone.
    pub write_timeout: Duration,
    /// Media messages buffered for the destination before it starts losing frames.
    pub queue_capacity: usize,
    /// Kernel send buffer of the destination socket. Bounded so a slow destination turns into
    /// backpressure (and dropped frames at keyframe boundaries) within about a second instead
    /// of megabytes of stale video queueing in the kernel.
    pub send_buffer: u32,
    pub backoff: BackoffConfig,
    /// Roots for `rtmps://` destinations.
    pub tls: Arc<ClientConfig>,
    /// Give video-only sources a silent AAC-LC track.
    pub silent_audio: bool,
}

impl PushConfig {
    /// Defaults (10 s timeouts, 1024-message queue, default backoff) with TLS verification
    /// against the webpki (Mozilla) roots plus `extra_ca` (DER certificates, e.g. a test CA).
    pub fn new(extra_ca: &[Vec<u8>]) -> Result<Self, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for der in extra_ca {
            roots.add(der.clone().into())?;
        }
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            // ~2.5 s of a 30 fps stream with audio.
            queue_capacity: 512,
            send_buffer: 256 * 1024,
            backoff: BackoffConfig::default(),
            tls: Arc::new(tls),
            silent_audio: true,
        })
    }
}

/// A destination's state as reported to logs, metrics and the cloud (key masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    /// Stable id (see [`Destination::id`]); never the key.
    pub id: String,
    pub name: String,
    pub masked_url: String,
    pub state: DestState,
    pub last_error: Option<String>,
    pub bytes_sent: u64,
    pub reconnects: u64,
    /// Messages dropped because the destination was slower than the stream.
    pub dropped: u64,
}

/// Handle to a running destination task.
pub struct Pusher {
    status: Arc<Mutex<DestinationStatus>>,
    dropped: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Pusher {
    pub fn status(&self) -> DestinationStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.dropped = self.dropped.load(Ordering::Relaxed);
        s
    }

    /// Closes the connection cleanly and stops retrying.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Starts pushing `stream` to `dest`. `seed` drives the backoff jitter.
pub fn spawn(
    stream: &Arc<Stream>,
    dest: Destination,
    name: String,
    cfg: Arc<PushConfig>,
    seed: u64,
    tasks: &TaskTracker,
) -> Pusher {
    let (rx, dropped) = stream.subscribe_counted(cfg.queue_capacity);
    let status = Arc::new(Mutex::new(DestinationStatus {
        id: dest.id(),
        name: name.clone(),
        masked_url: dest.masked_url(),
        state: DestState::Idle,
        last_error: None,
        bytes_sent: 0,
        reconnects: 0,
        dropped: 0,
    }));
    let stop = CancellationToken::new();
    let span = info_span!(parent: None, "restream", stream = %stream.path, destination = %name, url = %dest.masked_url());
    tasks.spawn(run(dest, rx, cfg, seed, status.clone(), stop.clone()).instrument(span));
    Pusher {
        status,
        dropped,
        stop,
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Ended {
    /// Told to stop, or the stream ended: close cleanly.
    Stop,
    Failed(Failure),
}

async fn run(
    dest: Destination,
    mut rx: mpsc::Receiver<MediaMessage>,
    cfg: Arc<PushConfig>,
    seed: u64,
    status: Arc<Mutex<DestinationStatus>>,
    stop: CancellationToken,
) {
    let mut sup = Supervisor::new(cfg.backoff, seed);
    let mut fwd = Forwarder::new(cfg.silent_audio);
    let set = |sup: &Supervisor, bytes: u64| {
        let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
        s.state = sup.state().clone();
        s.last_error = sup.last_error().map(str::to_string);
        s.reconnects = sup.reconnects();
        s.bytes_sent += bytes;
    };
    sup.handle_start(Instant::now());
    loop {
        while let Some(action) = sup.poll_action() {
            let Action::Connect { attempt } = action else {
                continue;
            };
            set(&sup, 0);
            let ended = match connect(&dest, &cfg).await {
                Ok((io, session)) => {
                    info!(attempt, "publishing to destination");
                    sup.handle_connected(Instant::now());
                    set(&sup, 0);
                    fwd.handle_connected();
                    forward(io, session, &mut rx, &mut fwd, &cfg, &stop, |n| {
                        set(&sup, n)
                    })
                    .await
                }
                Err(f) => Ended::Failed(f),
            };
            match ended {
                Ended::Stop => {
                    sup.handle_stop(Instant::now());
                    set(&sup, 0);
                    info!("destination stopped");
                    return;
                }
                Ended::Failed(f) => {
                    warn!(attempt, error = ?f, "destination failed");
                    sup.handle_failure(Instant::now(), f);
                    set(&sup, 0);
                }
            }
        }
        if matches!(sup.state(), DestState::Failed { .. } | DestState::Stopped) {
            warn!(state = ?sup.state(), "destination given up");
            return;
        }
        let Some(deadline) = sup.poll_timeout() else {
            return;
        };
        // Backing off: keep the codec configs current, drop media.
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => sup.handle_timeout(Instant::now()),
            _ = stop.cancelled() => {
                sup.handle_stop(Instant::now());
                set(&sup, 0);
                return;
            }
            msg = rx.recv() => match msg {
                Some(m @ (MediaMessage::VideoConfig(_) | MediaMessage::AudioConfig(_))) => {
                    fwd.handle_message(m);
                }
                Some(_) => {}
                None => {
                    sup.handle_stop(Instant::now());
                    set(&sup, 0);
                    return;
                }
            },
        }
    }
}

async fn io_timeout<T>(
    d: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Failure> {
    crate::net::within(d, what, f)
        .await
        .map_err(Failure::Network)
}

/// Resolves and connects, with a bounded send buffer and TCP_NODELAY.
async fn connect_tcp(host: &str, port: u16, send_buffer: u32) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_send_buffer_size(send_buffer)?;
        socket.set_nodelay(true)?;
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects, handshakes, and gets the publish accepted.
async fn connect(
    dest: &Destination,
    cfg: &PushConfig,
) -> Result<(Box<dyn Io>, ClientSession), Failure> {
    let t = cfg.connect_timeout;
    let tcp = io_timeout(
        t,
        "connect",
        connect_tcp(&dest.host, dest.port, cfg.send_buffer),
    )
    .await?;
    let mut io: Box<dyn Io> = if dest.tls {
        let name = rustls::pki_types::ServerName::try_from(dest.host.clone())
            .map_err(|e| Failure::Rejected(format!("invalid TLS server name: {e}")))?;
        let tls = io_timeout(
            t,
            "tls",
            TlsConnector::from(cfg.tls.clone()).connect(name, tcp),
        )
        .await?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };

    let session =
        crate::rtmp::client::connect_and_publish(&mut io, &dest.app, dest.key(), &dest.tc_url(), t)
            .await
            .map_err(|e| match e {
                ClientError::Refused(m) => Failure::Rejected(m),
                ClientError::ClosedBeforePublish(m) => Failure::ClosedBeforePublish(m),
                ClientError::Network(m) => Failure::Network(m),
            })?;
    Ok((io, session))
}

fn metadata(m: &super::forwarder::Metadata) -> StreamMetadata {
    let mut s = StreamMetadata::new();
    s.video_width = m.width;
    s.video_height = m.height;
    s.video_codec_id = m.width.map(|_| 7);
    s.audio_codec_id = m.audio_sample_rate.map(|_| 10);
    s.audio_sample_rate = m.audio_sample_rate;
    s.audio_channels = m.audio_channels;
    s.audio_is_stereo = m.audio_channels.map(|c| c > 1);
    s.encoder = Some("glasscast".into());
    s
}

/// Forwards until stopped, the stream ends, or the destination fails.
async fn forward(
    io: Box<dyn Io>,
    mut session: ClientSession,
    rx: &mut mpsc::Receiver<MediaMessage>,
    fwd: &mut Forwarder,
    cfg: &PushConfig,
    stop: &CancellationToken,
    mut sent: impl FnMut(u64),
) -> Ended {
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut buf = vec![0u8; 16 * 1024];
    let t = cfg.write_timeout;
    loop {
        let mut out: Vec<u8> = Vec::new();
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = writer.shutdown().await;
                return Ended::Stop;
            }
            msg = rx.recv() => {
                let Some(msg) = msg else {
                    let _ = writer.shutdown().await;
                    return Ended::Stop;
                };
                for o in fwd.handle_message(msg) {
                    let r = match o {
                        Outgoing::Metadata(m) => session.publish_metadata(&metadata(&m)),
                        Outgoing::Video { timestamp, data } => session.publish_video_data(data, RtmpTimestamp::new(timestamp), false),
                        Outgoing::Audio { timestamp, data } => session.publish_audio_data(data, RtmpTimestamp::new(timestamp), false),
                    };
                    match r {
                        Ok(ClientSessionResult::OutboundResponse(p)) => out.extend_from_slice(&p.bytes),
                        Ok(_) => {}
                        Err(e) => return Ended::Failed(Failure::Network(format!("rtmp: {e:?}"))),
                    }
                }
            }
            n = reader.read(&mut buf) => {
                match n {
                    Ok(0) => return Ended::Failed(Failure::Network("destination closed the connection".into())),
                    Err(e) => return Ended::Failed(Failure::Network(format!("read: {e}"))),
                    Ok(n) => match session.handle_input(&buf[..n]) {
                        Ok(results) => {
                            for r in results {
                                if let ClientSessionResult::OutboundResponse(p) = r {
                                    out.extend_from_slice(&p.bytes);
                                }
                            }
                        }
                        Err(e) => return Ended::Failed(Failure::Network(format!("rtmp: {e:?}"))),
                    },
                }
            }
        }
        if !out.is_empty() {
            if let Err(f) = io_timeout(t, "write", writer.write_all(&out)).await {
                return Ended::Failed(f);
            }
            sent(out.len() as u64);
        }
    }
}
