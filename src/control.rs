//! The per-stream conversation with the control plane: ask where to restream (at start, then
//! every poll interval, handed to the stream's delivery, which applies it in place), say
//! `hls-ready` once the announced URLs are playable (ours, or a managed platform's), and report
//! `stream-status` on every change and as a heartbeat, finishing with `stopped`.
//! Delivery goes through an [`Outbox`], so a cloud that is down or slow never delays media and
//! the latest state reaches it when it is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use origin::packager::Origin;
use relay::cloud::client::{
    CloudClient, CloudConfig, CloudError, HlsReady, OutputStatus, RecordingReady, RecordingReport,
    StreamDirectives, StreamStatus,
};
use relay::cloud::outbox::{Event, Outbox, OutboxConfig};
use relay::registry::{Registry, Stream};
use relay::restream::restreamer::Restreamer;

use crate::managed::shell::Deliveries;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

/// A report on its way to the cloud.
type Request = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CloudError>> + Send>>;

/// Control-plane settings.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub cloud: CloudConfig,
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub outbox: OutboxConfig,
    /// Base of playback URLs (no trailing slash), for recordings' URLs.
    pub public_url: String,
}

/// What the control tasks read from and act on.
pub struct Parts {
    pub origin: Arc<Origin>,
    pub restreamer: Arc<Restreamer>,
    pub deliveries: Arc<Deliveries>,
    pub recording: Option<Recordings>,
}

/// Starts a control task for every new stream.
pub fn attach(
    registry: &Registry,
    parts: Parts,
    cfg: ControlConfig,
    metrics: relay::cloud::client::CloudMetrics,
    tasks: TaskTracker,
) {
    let Parts {
        origin,
        restreamer,
        deliveries,
        recording,
    } = parts;
    let client = CloudClient::new(cfg.cloud.clone()).with_metrics(metrics);
    let cfg = Arc::new(cfg);
    let recording = recording.map(|r| {
        let (client, cfg, tasks2) = (client.clone(), cfg.clone(), tasks.clone());
        let mut ready = r.ready;
        tasks.spawn(async move {
            while let Some(info) = ready.recv().await {
                let body = RecordingReady {
                    user_id: info.path.user_id.clone(),
                    stream_id: info.path.stream_id.clone(),
                    recording: report(&info, &cfg.public_url),
                };
                let span =
                    info_span!(parent: None, "cloud", stream = %info.path, recording = %info.id);
                tasks2.spawn(send_recording_ready(client.clone(), body).instrument(span));
            }
        });
        r.recording
    });
    registry.on_new_stream(move |stream| {
        let span = info_span!(parent: None, "cloud", stream = %stream.path);
        tasks.spawn(
            run(
                stream.clone(),
                origin.clone(),
                restreamer.clone(),
                deliveries.clone(),
                recording.clone(),
                client.clone(),
                cfg.clone(),
            )
            .instrument(span),
        );
    });
}

/// Recording, as the control plane sees it: the recordings, for `stopped` reports and the
/// cloud's `record` word, and the recordings that are safely stored (`recording-ready`).
pub struct Recordings {
    pub recording: Arc<crate::record::Recording>,
    /// One message per recording made, so unbounded is bounded by the recordings.
    pub ready: tokio::sync::mpsc::UnboundedReceiver<crate::record::catalog::Info>,
}

fn report(info: &crate::record::catalog::Info, public_url: &str) -> RecordingReport {
    let urls = info.urls(public_url);
    RecordingReport {
        recording_id: info.id.clone(),
        hls_url: urls.hls,
        dash_url: urls.dash,
        mp4_url: urls.mp4,
        duration_s: (info.duration_s * 1000.0).round() / 1000.0,
    }
}

/// Tells the cloud a recording is safely stored; retried with backoff (up to a minute
/// apart) for an hour while the cloud is unreachable or failing.
async fn send_recording_ready(client: CloudClient, body: RecordingReady) {
    let give_up = Instant::now() + Duration::from_secs(3600);
    let mut delay = Duration::from_secs(1);
    loop {
        match client.post("/api/rtmp-relay/recording-ready", &body).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && Instant::now() + delay < give_up => {
                warn!(error = %e, retry_in_s = delay.as_secs(), "recording-ready failed, will retry");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
            Err(e) => {
                warn!(error = %e, "the cloud was not told the recording is ready");
                return;
            }
        }
    }
}

/// What a status report is made of.
struct Sources<'a> {
    stream: &'a Stream,
    restreamer: &'a Restreamer,
    origin: &'a Origin,
    deliveries: &'a Deliveries,
    recording: Option<&'a crate::record::Recording>,
    public_url: &'a str,
    /// The delivery as last seen: its task may be gone by the `stopped` report.
    last_delivery: Option<crate::managed::shell::DeliveryView>,
}

impl Sources<'_> {
    /// The report now; `word` is `active` or `stopped` (`active` turns into `error` when the
    /// platform that alone should serve the stream does not).
    fn status(&mut self, word: &str, bitrate: u64) -> StreamStatus {
        let path = &self.stream.path;
        let viewers = self
            .origin
            .get(path)
            .map_or(0, |os| os.viewers(Instant::now(), Duration::from_secs(30)));
        let delivery = self
            .deliveries
            .view(path)
            .or_else(|| self.last_delivery.take());
        self.last_delivery.clone_from(&delivery);
        let mut outputs: Vec<OutputStatus> = self
            .restreamer
            .statuses(path)
            .iter()
            .map(OutputStatus::from_destination)
            .collect();
        let mut status = word.to_string();
        if let Some(d) = &delivery {
            outputs.extend(d.outputs.iter().cloned());
            if word == "active" && d.is_error() {
                status = "error".into();
            }
        }
        let mut alternate = delivery.as_ref().and_then(|d| d.alternate());
        if word == "stopped"
            && let Some(a) = &mut alternate
        {
            a.status = "stopped".into();
        }
        // The broadcast's recording: its id is the publishing session's name.
        let recording = (word == "stopped")
            .then_some(self.recording)
            .flatten()
            .and_then(|r| r.catalog.get(&format!("{:x}", self.stream.session_id)))
            .filter(|i| i.path == *path)
            .map(|i| report(&i, self.public_url));
        StreamStatus {
            recording,
            user_id: path.user_id.clone(),
            stream_id: path.stream_id.clone(),
            status,
            viewers,
            bitrate,
            outputs,
            alternate,
            delivery: delivery.and_then(|d| d.report()),
        }
    }
}

/// What changes a report: the stream word, each output's status (not counters) and the
/// delivery's state.
fn fingerprint(s: &StreamStatus) -> Vec<String> {
    let mut v = vec![s.status.clone()];
    v.extend(
        s.outputs
            .iter()
            .map(|o| format!("{} {} {}", o.id, o.status, o.error.is_some())),
    );
    if let Some(a) = &s.alternate {
        v.push(format!("alternate {} {}", a.status, a.hls_url));
    }
    if let Some(d) = &s.delivery {
        v.push(format!("delivery {} {:?}", d.serving, d.error));
    }
    v
}

async fn send(
    client: &CloudClient,
    event: &Event<StreamStatus>,
    ready: Option<&HlsReady>,
) -> Result<(), CloudError> {
    match (event, ready) {
        (Event::HlsReady, Some(ready)) => client.post("/api/rtmp-relay/hls-ready", ready).await,
        // Only queued once the URLs are known.
        (Event::HlsReady, None) => Ok(()),
        (Event::Status(s), _) => client.post("/api/rtmp-relay/stream-status", s).await,
    }
}

async fn run(
    stream: Arc<Stream>,
    origin: Arc<Origin>,
    restreamer: Arc<Restreamer>,
    deliveries: Arc<Deliveries>,
    recording: Option<Arc<crate::record::Recording>>,
    client: CloudClient,
    cfg: Arc<ControlConfig>,
) {
    let mut src = Sources {
        stream: &stream,
        restreamer: &restreamer,
        origin: &origin,
        deliveries: &deliveries,
        recording: recording.as_deref(),
        public_url: &cfg.public_url,
        last_delivery: None,
    };
    let mut ready: Option<HlsReady> = None;
    let mut outbox: Outbox<StreamStatus> = Outbox::new(cfg.outbox);
    let playable = deliveries.ready(&stream);
    tokio::pin!(playable);
    let mut announced = false;
    let ended = stream.wait_ended();
    tokio::pin!(ended);
    let mut poll = tokio::time::interval(cfg.poll_interval);
    let mut heartbeat = tokio::time::interval(cfg.heartbeat);
    let mut watch = tokio::time::interval(Duration::from_millis(500));
    let mut bitrate = 0u64;
    let mut last_reported: Option<Vec<String>> = None;
    let mut in_flight: Option<Request> = None;
    let mut destinations: Option<tokio::task::JoinHandle<Result<StreamDirectives, CloudError>>> =
        None;
    let mut is_ended = false;

    loop {
        if in_flight.is_none()
            && let Some(event) = outbox.poll_request(Instant::now())
        {
            let (client, ready) = (client.clone(), ready.clone());
            in_flight = Some(Box::pin(async move {
                send(&client, &event, ready.as_ref()).await
            }));
        }
        if is_ended && outbox.is_idle() {
            return;
        }
        let retry = outbox.poll_timeout();
        tokio::select! {
            r = async { in_flight.as_mut().expect("guarded").await }, if in_flight.is_some() => {
                in_flight = None;
                match r {
                    Ok(()) => outbox.handle_delivered(),
                    Err(e) if e.is_retryable() => {
                        warn!(error = %e, "cloud request failed, will retry");
                        outbox.handle_failed(Instant::now());
                    }
                    Err(e) => {
                        warn!(error = %e, "cloud refused a report");
                        outbox.handle_rejected();
                    }
                }
            }
            _ = async { tokio::time::sleep_until(retry.expect("guarded").into()).await }, if retry.is_some() => {}
            urls = &mut playable, if !announced => {
                announced = true;
                if urls.is_some() {
                    ready = urls;
                    // A stream that moved here from another node of the fleet continues the
                    // broadcast the cloud already knows: one hls-ready per broadcast.
                    if origin.get(&stream.path).is_some_and(|os| os.is_continued()) {
                        tracing::info!("the stream continues from another node: no second hls-ready");
                    } else {
                        outbox.handle_hls_ready(Instant::now());
                    }
                }
            }
            _ = poll.tick(), if !is_ended && destinations.is_none() => {
                let (client, path) = (client.clone(), stream.path.clone());
                destinations = Some(tokio::spawn(async move { client.destinations(&path).await }));
            }
            r = async { destinations.as_mut().expect("guarded").await }, if destinations.is_some() => {
                destinations = None;
                match r {
                    Ok(Ok(d)) => {
                        if let Some(r) = &recording {
                            r.policy.handle_cloud(&stream.path, d.record);
                        }
                        deliveries.handle_directives(&stream, d);
                    }
                    // Keep the current destinations: a flaky cloud must not stop restreams.
                    Ok(Err(e)) => {
                        warn!(error = %e, "could not fetch restream destinations");
                        deliveries.handle_directives_failed(&stream);
                    }
                    Err(e) => {
                        warn!(error = %e, "destination poll task failed");
                        deliveries.handle_directives_failed(&stream);
                    }
                }
            }
            _ = heartbeat.tick(), if !is_ended => {
                let now = Instant::now();
                bitrate = stream.ingest_bitrate(now);
                let s = src.status("active", bitrate);
                last_reported = Some(fingerprint(&s));
                outbox.handle_status(s, now);
            }
            _ = watch.tick(), if !is_ended => {
                let s = src.status("active", bitrate);
                let f = fingerprint(&s);
                if last_reported.as_ref() != Some(&f) {
                    last_reported = Some(f);
                    outbox.handle_status(s, Instant::now());
                }
            }
            _ = &mut ended, if !is_ended => {
                is_ended = true;
                let s = src.status("stopped", 0);
                outbox.handle_status(s, Instant::now());
            }
        }
    }
}
