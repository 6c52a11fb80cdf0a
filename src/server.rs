//! Wiring: binds the listeners, connects relay and origin, and shuts everything down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use origin::fragmenter::FragmenterConfig;
use origin::http::HttpState;
use origin::packager::{Origin, OriginConfig};
use origin::playlist::PlaylistConfig;
use relay::ingest::IngestConfig;
use relay::registry::Registry;
use relay::restream::pusher::PushConfig;
use relay::restream::restreamer::Restreamer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::{Config, TlsFiles};

/// A running relay + origin.
pub struct Server {
    pub rtmp_addr: SocketAddr,
    pub rtmps_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The key store (the configured one, whatever the auth mode).
    pub keys: Arc<dyn crate::auth::store::KeyStore>,
    pub registry: Arc<Registry>,
    pub origin: Arc<Origin>,
    pub restreamer: Arc<Restreamer>,
    pub deliveries: Arc<crate::managed::shell::Deliveries>,
    /// This node's fleet membership (with `fleet.redis_url`).
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Drain requests (SIGUSR1, `POST /v1/node/drain`).
    pub drain: Arc<crate::fleet::Drain>,
    drain_timeout: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    http_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
}

fn tls_acceptor(files: &TlsFiles, alpn: &[&[u8]]) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not match")?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

fn attach_control(
    cloud: &crate::config::CloudSettings,
    registry: &Registry,
    parts: crate::control::Parts,
    tasks: &TaskTracker,
    cloud_metrics: &relay::cloud::client::CloudMetrics,
    public_url: &str,
) {
    info!(cloud = %cloud.url, "reporting to the cloud");
    crate::control::attach(
        registry,
        parts,
        crate::control::ControlConfig {
            cloud: relay::cloud::client::CloudConfig {
                url: cloud.url.clone(),
                token: cloud.token.clone(),
                hmac_secret: cloud.hmac_secret.clone(),
                timeout: cloud.timeout,
            },
            poll_interval: cloud.poll_interval,
            heartbeat: cloud.heartbeat,
            outbox: relay::cloud::outbox::OutboxConfig {
                max_age: cloud.max_backlog,
                ..Default::default()
            },
            public_url: public_url.to_string(),
        },
        cloud_metrics.clone(),
        tasks.clone(),
    );
}

impl Server {
    /// Binds every listener and starts serving.
    pub async fn start(cfg: &Config) -> anyhow::Result<Server> {
        let metrics = crate::metrics::Metrics::default();
        let ingest_metrics = metrics.ingest.clone();

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let registry = Registry::new(cfg.reconnect_grace);
        let origin = Origin::new(
            OriginConfig {
                fragmenter: FragmenterConfig {
                    part_target: cfg.part_target,
                    segment_target: cfg.segment_target,
                    ..Default::default()
                },
                playlist: PlaylistConfig {
                    part_target: cfg.part_target,
                    segment_target: cfg.segment_target,
                    window_segments: cfg.window_segments,
                    part_hold_back: cfg.part_hold_back,
                    fresh_playlist: cfg.fresh_playlist,
                    byterange_parts: cfg.byterange_parts,
                },
                ended_retention: cfg.ended_retention,
                ..Default::default()
            },
            metrics.origin.clone(),
        );
        // The cloud may ask for any stream to be recorded, so recording runs with a cloud too.
        // Recordings safely stored, for the cloud (`recording-ready`), when there is one.
        let (ready_tx, ready_rx) = tokio::sync::mpsc::unbounded_channel();
        let recording = if cfg.record.any() || cfg.cloud.is_some() {
            let ready: crate::record::Ready = Arc::new(move |info| {
                let _ = ready_tx.send(info);
            });
            let r = crate::record::start(
                cfg.record.clone(),
                metrics.record.clone(),
                ready,
                &tasks,
                shutdown.clone(),
            )
            .await
            .context("recording")?;
            origin.set_segment_sink(r.recorder.clone());
            origin.set_recording_files(Arc::new(crate::record::serve::Files {
                store: r.store.clone(),
                catalog: r.catalog.clone(),
            }));
            info!(path = %cfg.record.path.display(), s3 = cfg.record.s3.is_some(), "recording");
            Some(Arc::new(r))
        } else {
            None
        };
        origin.attach(&registry, tasks.clone(), shutdown.clone());
        let mut push = PushConfig::new(&cfg.restream_ca).context("restream TLS roots")?;
        push.silent_audio = cfg.restream_silent_audio;
        let restreamer = Restreamer::new(
            push,
            cfg.restream_rules.clone(),
            tasks.clone(),
            std::process::id().into(),
        );
        restreamer.attach(&registry);
        let metrics_registry = metrics.registry(&origin, &restreamer, cfg.per_stream_labels);

        let rtmp = TcpListener::bind(cfg.rtmp_listen)
            .await
            .with_context(|| format!("binding RTMP on {}", cfg.rtmp_listen))?;
        let rtmp_addr = rtmp.local_addr()?;
        let http = TcpListener::bind(cfg.http_listen)
            .await
            .with_context(|| format!("binding HTTP on {}", cfg.http_listen))?;
        let http_addr = http.local_addr()?;
        let admin = TcpListener::bind(cfg.admin.listen)
            .await
            .with_context(|| format!("binding the admin listener on {}", cfg.admin.listen))?;
        let admin_addr = admin.local_addr()?;
        let scheme = if cfg.http_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let public_url = cfg
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{http_addr}"));
        info!(public_url = %public_url, "playback URLs");
        let platforms = crate::managed::platforms::Platforms::from_settings(&cfg.managed)?;
        platforms.check(cfg.managed.timeout).await?;
        platforms.clean_orphans(cfg.managed.orphan_age, &tasks);
        let deliveries = crate::managed::shell::Deliveries::new(
            cfg.delivery.clone(),
            platforms,
            restreamer.clone(),
            origin.clone(),
            public_url.clone(),
            // The cloud's first answer may name the mode: wait for it a little longer than
            // one request may take.
            cfg.cloud
                .as_ref()
                .map(|c| c.timeout + Duration::from_secs(1)),
            tasks.clone(),
        );
        deliveries.attach(&registry);
        if let Some(cloud) = &cfg.cloud {
            let parts = crate::control::Parts {
                origin: origin.clone(),
                restreamer: restreamer.clone(),
                deliveries: deliveries.clone(),
                recording: recording
                    .clone()
                    .map(|recording| crate::control::Recordings {
                        recording,
                        ready: ready_rx,
                    }),
            };
            attach_control(cloud, &registry, parts, &tasks, &metrics.cloud, &public_url);
        }
        let http_tls = match &cfg.http_tls {
            Some(files) => Some(tls_acceptor(files, &[b"h2", b"http/1.1"])?),
            None => None,
        };
        let keys = crate::auth::open_store(cfg)?;
        let policy = crate::auth::policy(cfg, Some(keys.clone()), &metrics.cloud)?;
        info!(mode = policy.mode(), store = %keys.describe(), "publish authorization");
        let ingest_cfg = IngestConfig {
            read_timeout: cfg.rtmp_read_timeout,
            publish_deadline: cfg.limits.rtmp_publish_deadline,
            policy_timeout: crate::auth::decision_budget(cfg),
            tls: None,
            policy,
            limiter: relay::limits::ConnLimiter::new(
                cfg.limits.rtmp_max_connections,
                cfg.limits.rtmp_max_connections_per_ip,
            ),
        };
        let mut rtmps_addr = None;
        if let Some(rtmps) = &cfg.rtmps {
            let acceptor = tls_acceptor(&rtmps.files, &[])?;
            let l = TcpListener::bind(rtmps.listen)
                .await
                .with_context(|| format!("binding RTMPS on {}", rtmps.listen))?;
            let addr = l.local_addr()?;
            info!("rtmps listening on {addr}");
            rtmps_addr = Some(addr);
            tasks.spawn(relay::ingest::serve(
                l,
                registry.clone(),
                IngestConfig {
                    tls: Some(acceptor),
                    ..ingest_cfg.clone()
                },
                ingest_metrics.clone(),
                shutdown.clone(),
                tasks.clone(),
            ));
        }
        info!("rtmp listening on {rtmp_addr}");
        tasks.spawn(relay::ingest::serve(
            rtmp,
            registry.clone(),
            ingest_cfg,
            ingest_metrics,
            shutdown.clone(),
            tasks.clone(),
        ));
        info!(
            "http listening on {http_addr}{}",
            if http_tls.is_some() {
                " (https, h2)"
            } else {
                ""
            }
        );
        let mut state = HttpState::new(
            origin.clone(),
            origin::http::HttpLimits {
                max_connections: cfg.limits.http_max_connections,
                header_timeout: cfg.limits.http_header_timeout,
                max_url_bytes: cfg.limits.http_max_url_bytes,
            },
        );
        state.player = cfg.http_player;
        let state = Arc::new(state);
        let http_task = tokio::spawn(origin::http::serve(http, state, http_tls, shutdown.clone()));

        let loopback = admin_addr.ip().is_loopback();
        if cfg.admin.token.is_none() && !loopback {
            tracing::warn!(
                "the admin listener is not on loopback and admin.token is not set: the management API refuses every request"
            );
        }
        let me = crate::fleet::placement::NodeInfo {
            id: crate::fleet::node_id(&cfg.fleet.node_id),
            rtmp_url: non_empty(&cfg.fleet.rtmp_url)
                .unwrap_or_else(|| format!("rtmp://{rtmp_addr}")),
            rtmps_url: non_empty(&cfg.fleet.rtmps_url)
                .or(rtmps_addr.map(|a| format!("rtmps://{a}"))),
            http_url: non_empty(&cfg.fleet.http_url)
                .unwrap_or_else(|| format!("{scheme}://{http_addr}")),
            state: crate::fleet::placement::NodeState::Active,
            max_streams: cfg.fleet.max_streams,
            streams: 0,
            ingest_bps: 0,
            viewers: 0,
        };
        let fleet = match &cfg.fleet.redis_url {
            Some(url) => {
                let fleet = crate::fleet::Fleet::new(
                    cfg.fleet.clone(),
                    me.clone(),
                    url,
                    cfg.reconnect_grace,
                )
                .context("fleet.redis_url")?;
                fleet.attach(&registry);
                origin.set_elsewhere(Arc::new(crate::fleet::proxy::Proxy::new(fleet.clone())));
                tasks.spawn(
                    fleet
                        .clone()
                        .run(registry.clone(), origin.clone(), shutdown.clone()),
                );
                info!(node = %me.id, redis = %crate::redis_conn::display_url(url), "fleet member");
                Some(fleet)
            }
            None => None,
        };
        let drain = Arc::new(crate::fleet::Drain::default());
        let public_url_for_info = public_url.clone();
        let outputs = Arc::new(crate::admin::ApiOutputs::default());
        outputs.attach(&registry);
        let admin_state = Arc::new(crate::admin::AdminState {
            registry: registry.clone(),
            origin: origin.clone(),
            restreamer: restreamer.clone(),
            outputs,
            keys: keys.clone(),
            metrics: Arc::new(metrics_registry),
            token: cfg.admin.token.clone(),
            loopback,
            public_url,
            deliveries: deliveries.clone(),
            allowed_hosts: cfg.restream_allowed_hosts.clone(),
            recordings: recording.clone(),
            ended: Default::default(),
            info: crate::admin::RelayInfo {
                version: env!("CARGO_PKG_VERSION"),
                auth_mode: cfg.auth.mode.word(),
                recording: recording.is_some(),
                player: cfg.http_player,
                public_url: public_url_for_info,
                rtmp_url: me.rtmp_url.clone(),
                rtmps_url: me.rtmps_url.clone(),
            },
            node: me,
            fleet: fleet.clone(),
            drain: drain.clone(),
        });
        crate::admin::EndedStreams::attach(&admin_state, &registry);
        info!("admin listening on {admin_addr}");
        let admin_task = tokio::spawn(crate::admin::serve(admin, admin_state, shutdown.clone()));
        Ok(Server {
            rtmp_addr,
            rtmps_addr,
            http_addr,
            admin_addr,
            keys,
            registry,
            origin,
            restreamer,
            deliveries,
            shutdown,
            tasks,
            http_task,
            admin_task,
            fleet,
            drain,
            drain_timeout: cfg.fleet.drain_timeout,
        })
    }

    /// Starts draining (SIGUSR1): placement skips this node from now on.
    pub fn start_drain(&self) {
        self.drain.request(self.fleet.as_ref());
    }

    /// Resolves when a requested drain is over: every stream ended, or `fleet.drain_timeout_s`
    /// passed. Never resolves if no drain is requested.
    pub async fn drained(&self) {
        self.drain
            .finished(&self.registry, self.drain_timeout)
            .await;
    }

    /// Stops accepting, ends every stream (playlists get EXT-X-ENDLIST and held requests are
    /// answered), then waits for connections and packagers to finish, at most `drain`.
    pub async fn shutdown(self, drain: Duration) {
        info!("shutting down");
        self.registry.shutdown();
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(drain, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish in {drain:?}");
        }
        let _ = tokio::time::timeout(drain, self.http_task).await;
        let _ = tokio::time::timeout(drain, self.admin_task).await;
        info!("shutdown complete");
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
