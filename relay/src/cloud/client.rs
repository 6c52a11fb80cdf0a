//! HTTP client for the control plane, exactly as CONTRACTS.md describes it: JSON bodies,
//! `Authorization: Bearer <token>` when a token is configured, and
//! `X-Glasscast-Signature: sha256=<hex HMAC-SHA256 of the raw body>` when a secret is.
//! Short timeouts; retrying is the caller's job (see [`super::outbox`]).

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use percent_encoding::utf8_percent_encode;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::path::StreamPath;
use crate::restream::pusher::DestinationStatus;
use crate::restream::restreamer::DestinationSpec;

/// Where and how to reach the cloud.
#[derive(Clone)]
pub struct CloudConfig {
    /// Base URL, e.g. `https://api.example.com` (no trailing slash needed).
    pub url: String,
    pub token: Option<String>,
    pub hmac_secret: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("cloud did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cloud unreachable: {0}")]
    Transport(String),
    #[error("cloud answered HTTP {0}")]
    Status(u16),
    #[error("cloud answer not understood: {0}")]
    Body(String),
}

impl CloudError {
    /// Worth retrying (network trouble, timeouts, 5xx, 429); a 4xx is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
            _ => true,
        }
    }
}

/// `POST /api/rtmp-relay/hls-ready`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HlsReady {
    pub user_id: String,
    pub stream_id: String,
    pub hls_url: String,
    pub dash_url: String,
}

/// One restream output in a status report (stream key masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputStatus {
    pub id: String,
    pub name: String,
    pub url: String,
    pub status: String,
    pub error: Option<String>,
}

impl OutputStatus {
    /// From a destination's status (its id is stable and reveals nothing of its key).
    pub fn from_destination(d: &DestinationStatus) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            url: d.masked_url.clone(),
            status: d.state.status().to_string(),
            error: d.last_error.clone(),
        }
    }
}

/// A recording's URLs and length: `recording` on a `stopped` report, and the body of
/// `POST /api/rtmp-relay/recording-ready` (with the stream's ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReport {
    pub recording_id: String,
    pub hls_url: String,
    pub dash_url: String,
    pub mp4_url: String,
    pub duration_s: f64,
}

/// `POST /api/rtmp-relay/recording-ready`: the recording's last segment is safely stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReady {
    pub user_id: String,
    pub stream_id: String,
    #[serde(flatten)]
    pub recording: RecordingReport,
}

/// `POST /api/rtmp-relay/stream-status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    pub user_id: String,
    pub stream_id: String,
    /// `active`, `error` or `stopped`.
    pub status: String,
    pub viewers: u64,
    /// Ingest bitrate, bits per second.
    pub bitrate: u64,
    pub outputs: Vec<OutputStatus>,
    /// The managed platform serving the same broadcast (`ab` mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alternate: Option<Alternate>,
    /// How the stream is delivered when that is not simply what was asked (a fallback to our
    /// own origin, a platform error).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivery: Option<DeliveryReport>,
    /// The broadcast's recording, on the `stopped` report when it was recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recording: Option<RecordingReport>,
}

/// `alternate` in a status report: the platform side of an A/B delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alternate {
    /// `cloudflare` or `ivs`.
    pub platform: String,
    /// Empty until the platform serves the stream.
    pub hls_url: String,
    pub dash_url: String,
    /// `connecting`, `active`, `error` or `stopped`.
    pub status: String,
    pub viewers: Option<u64>,
}

/// `delivery` in a status report: the mode asked for, the one serving, and why they differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    /// `self`, `cloudflare`, `ivs` or `ab`.
    pub requested: String,
    /// What serves viewers now (`self`, `cloudflare`, `ivs`, `ab`).
    pub serving: String,
    /// Why `serving` is not `requested`, or what is wrong with the platform.
    pub error: Option<String>,
}

/// The control plane's answer for one stream: where to restream and, optionally, how to
/// deliver and whether to record (absent = the relay's configuration decides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDirectives {
    pub destinations: Vec<DestinationSpec>,
    /// `self`, `cloudflare`, `ivs` or `ab`, as sent (checked by the binary).
    pub mode: Option<String>,
    pub record: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct DestinationsBody {
    #[serde(default)]
    destinations: Vec<DestinationEntry>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    record: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct DestinationEntry {
    url: String,
    #[serde(default)]
    name: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex HMAC-SHA256(body, secret)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

/// `cloud_requests_total{endpoint,result}`.
pub type CloudMetrics = prometheus_client::metrics::family::Family<
    [(&'static str, &'static str); 2],
    prometheus_client::metrics::counter::Counter,
>;

/// A cheap, cloneable client.
#[derive(Clone)]
pub struct CloudClient {
    cfg: CloudConfig,
    http: super::https::Https,
    metrics: Option<CloudMetrics>,
}

impl CloudError {
    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CloudError::Timeout(_) => "timeout",
            CloudError::Transport(_) => "unreachable",
            CloudError::Status(s) if *s >= 500 => "http_5xx",
            CloudError::Status(_) => "http_4xx",
            CloudError::Body(_) => "bad_body",
        }
    }
}

/// The endpoint label of a request path.
fn endpoint(path: &str) -> &'static str {
    const KNOWN: [&str; 5] = [
        "restream-destinations",
        "hls-ready",
        "stream-status",
        "authorize",
        "recording-ready",
    ];
    let name = path
        .trim_start_matches("/api/rtmp-relay/")
        .split('/')
        .next()
        .unwrap_or("");
    KNOWN.into_iter().find(|k| *k == name).unwrap_or("other")
}

impl CloudClient {
    pub fn new(cfg: CloudConfig) -> Self {
        Self {
            cfg,
            http: super::https::Https::new(),
            metrics: None,
        }
    }

    /// Counts every request in `metrics` by endpoint and result.
    pub fn with_metrics(mut self, metrics: CloudMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count<T>(&self, path: &str, r: &Result<T, CloudError>) {
        if let Some(m) = &self.metrics {
            let result = r.as_ref().map_or_else(CloudError::label, |_| "ok");
            m.get_or_create(&[("endpoint", endpoint(path)), ("result", result)])
                .inc();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.url.trim_end_matches('/'))
    }

    async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), CloudError> {
        use super::https::HttpsError;
        match self.http.send(req, self.cfg.timeout).await {
            Ok(r) => Ok((r.status, r.body)),
            Err(HttpsError::Timeout(t)) => Err(CloudError::Timeout(t)),
            Err(HttpsError::Transport(e)) => Err(CloudError::Transport(e)),
        }
    }

    fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Request<Full<Bytes>>, CloudError> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header(
                "user-agent",
                concat!("glasscast/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = &self.cfg.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        if let Some(secret) = &self.cfg.hmac_secret {
            b = b.header("x-glasscast-signature", signature(secret, &body));
        }
        b.body(Full::new(body))
            .map_err(|e| CloudError::Transport(format!("bad request: {e}")))
    }

    /// `GET /api/rtmp-relay/restream-destinations/{userId}/{streamId}`; 404 means none (and
    /// no directives).
    pub async fn destinations(&self, path: &StreamPath) -> Result<StreamDirectives, CloudError> {
        let seg = |s: &str| utf8_percent_encode(s, crate::path::SEGMENT).to_string();
        let p = format!(
            "/api/rtmp-relay/restream-destinations/{}/{}",
            seg(&path.user_id),
            seg(&path.stream_id)
        );
        let r = self.get_destinations(&p).await;
        self.count(&p, &r);
        r
    }

    async fn get_destinations(&self, p: &str) -> Result<StreamDirectives, CloudError> {
        let (status, body) = self
            .send(self.request(hyper::Method::GET, p, Bytes::new())?)
            .await?;
        match status {
            404 => Ok(StreamDirectives::default()),
            200..=299 => {
                let parsed: DestinationsBody =
                    serde_json::from_slice(&body).map_err(|e| CloudError::Body(e.to_string()))?;
                Ok(StreamDirectives {
                    destinations: parsed
                        .destinations
                        .into_iter()
                        .map(|d| DestinationSpec {
                            name: d.name.unwrap_or_else(|| "destination".into()),
                            url: d.url,
                        })
                        .collect(),
                    mode: parsed.mode,
                    record: parsed.record,
                })
            }
            s => Err(CloudError::Status(s)),
        }
    }

    /// POSTs a JSON body to `path` (`/api/rtmp-relay/...`).
    pub async fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<(), CloudError> {
        let r = self.post_json(path, body).await;
        self.count(path, &r);
        r
    }

    async fn post_json<T: Serialize>(&self, path: &str, body: &T) -> Result<(), CloudError> {
        let json = serde_json::to_vec(body).map_err(|e| CloudError::Body(e.to_string()))?;
        let (status, _) = self
            .send(self.request(hyper::Method::POST, path, Bytes::from(json))?)
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(CloudError::Status(status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn payloads_use_the_contract_field_names() {
        let v = serde_json::to_value(HlsReady {
            user_id: "a@b.c".into(),
            stream_id: "s".into(),
            hls_url: "h".into(),
            dash_url: "d".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"userId":"a@b.c","streamId":"s","hlsUrl":"h","dashUrl":"d"})
        );
        let d = DestinationStatus {
            id: "0123456789ab".into(),
            name: "YouTube".into(),
            masked_url: "rtmp://a.rtmp.youtube.com:1935/live2/***".into(),
            state: crate::restream::supervisor::DestState::Live,
            last_error: None,
            bytes_sent: 1,
            reconnects: 0,
            dropped: 0,
        };
        let o = OutputStatus::from_destination(&d);
        assert_eq!(o.status, "active");
        assert_eq!(o.id.len(), 12);
        let v = serde_json::to_value(StreamStatus {
            user_id: "u".into(),
            stream_id: "s".into(),
            status: "active".into(),
            viewers: 3,
            bitrate: 2_000_000,
            outputs: vec![o],
            alternate: None,
            delivery: None,
            recording: None,
        })
        .unwrap();
        for k in [
            "userId", "streamId", "status", "viewers", "bitrate", "outputs",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v.get("alternate").is_none(), "optional fields are left out");
        assert!(v.get("recording").is_none(), "optional fields are left out");
        assert_eq!(
            v["outputs"][0]["url"],
            "rtmp://a.rtmp.youtube.com:1935/live2/***"
        );
    }

    #[test]
    fn alternate_uses_the_contract_field_names() {
        let v = serde_json::to_value(Alternate {
            platform: "cloudflare".into(),
            hls_url: "h".into(),
            dash_url: "d".into(),
            status: "active".into(),
            viewers: Some(2),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"platform":"cloudflare","hlsUrl":"h","dashUrl":"d","status":"active","viewers":2})
        );
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let c = CloudConfig {
            url: "http://x".into(),
            token: Some("tok-SECRET".into()),
            hmac_secret: Some("hmac-SECRET".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
