//! AWS IVS as CONTRACTS.md describes it: JSON over HTTPS, SigV4-signed (the `aws-sigv4`
//! crate: ~15 s of build and a few small crates, against minutes for the SDK), `POST
//! /CreateChannel`, `/DeleteChannel`, `/GetStream`, `/GetChannel`, `/ListStreams`,
//! `/ListChannels`. `ChannelNotBroadcasting` means "not live", not an error. IVS has no
//! simulcast outputs: restreaming an IVS stream stays with the relay's own pushers.
//!
//! Channels this relay creates carry the tags `glasscast = <tag>` and `glasscastCreated =
//! <unix seconds>` (IVS reports no creation time), so orphans can be found by age.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::Full;
use relay::cloud::https::Https;
use relay::path::StreamPath;
use serde_json::{Value, json};

use super::retry::{Attempt, RetryPolicy};
use super::{
    LiveState, Platform, PlatformError, PlatformFuture, PlatformOutput, PlatformStatus,
    PlatformStream, Playback,
};

/// The platform's name in messages.
pub const NAME: &str = "AWS IVS";

/// Where and how to reach IVS.
#[derive(Clone)]
pub struct IvsConfig {
    /// `https://ivs.{region}.amazonaws.com`; a local fake in tests.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// The `glasscast` tag of channels this relay creates.
    pub tag: String,
    /// `LOW` or `NORMAL`.
    pub latency_mode: String,
    /// Port of the channel's RTMPS ingest (443 at AWS; a local fake in tests).
    pub ingest_port: u16,
}

impl std::fmt::Debug for IvsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvsConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The IVS client.
#[derive(Clone)]
pub struct Ivs {
    cfg: IvsConfig,
    http: Https,
}

/// An IVS error: its type (`x-amzn-ErrorType`, or `__type` in the body) and message.
fn error_type(headers: &hyper::HeaderMap, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let from_header = headers
        .get("x-amzn-errortype")
        .and_then(|h| h.to_str().ok())
        .map(|t| t.split(':').next().unwrap_or(t).to_string());
    let kind = from_header
        .or_else(|| {
            v["__type"]
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        })
        .unwrap_or_default();
    let message = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .unwrap_or("no error details")
        .to_string();
    (kind, message)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Ivs {
    /// A client; fails when credentials are missing.
    pub fn new(cfg: IvsConfig) -> Result<Self, PlatformError> {
        if cfg.access_key_id.is_empty() || cfg.secret_access_key.is_empty() {
            return Err(PlatformError::Credentials {
                platform: NAME,
                message: "no access key configured (managed.ivs.access_key_id, managed.ivs.secret_access_key)".into(),
            });
        }
        if cfg.region.is_empty() {
            return Err(PlatformError::Unavailable {
                platform: NAME,
                message: "managed.ivs.region is empty".into(),
            });
        }
        Ok(Self {
            cfg,
            http: Https::new(),
        })
    }

    /// A SigV4-signed `POST {endpoint}/{op}` with a JSON body.
    fn request(&self, op: &str, body: &[u8]) -> Result<hyper::Request<Full<Bytes>>, PlatformError> {
        let url = format!("{}/{op}", self.cfg.endpoint.trim_end_matches('/'));
        let uri: hyper::Uri = url.parse().map_err(|e| PlatformError::Unavailable {
            platform: NAME,
            message: format!("managed.ivs.endpoint: {e}"),
        })?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let identity: Identity = Credentials::new(
            &self.cfg.access_key_id,
            &self.cfg.secret_access_key,
            None,
            None,
            "glasscast",
        )
        .into();
        let unsigned = PlatformError::Unavailable {
            platform: NAME,
            message: "could not sign the request".into(),
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.cfg.region)
            .name("ivs")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| unsigned.clone())?
            .into();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|_| unsigned.clone())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|_| unsigned.clone())?
            .into_parts();
        let mut b = hyper::Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", host.as_str())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("glasscast/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in instructions.headers() {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|_| unsigned)
    }

    /// One operation with the retry policy. `Ok(Err(kind))` is an IVS error that callers
    /// may expect (`ChannelNotBroadcasting`, `ResourceNotFoundException`).
    async fn call(&self, op: &str, body: Value) -> Result<Result<Value, String>, PlatformError> {
        let bytes = body.to_string().into_bytes();
        let mut n = 0;
        loop {
            n += 1;
            let reply = self
                .http
                .send(self.request(op, &bytes)?, self.cfg.timeout)
                .await;
            let (attempt, err) = match reply {
                Err(e) => (
                    Attempt::Failed,
                    PlatformError::Unavailable {
                        platform: NAME,
                        message: e.to_string(),
                    },
                ),
                Ok(r) if (200..300).contains(&r.status) => {
                    return Ok(Ok(serde_json::from_slice(&r.body).unwrap_or(Value::Null)));
                }
                Ok(r) => {
                    let (kind, message) = error_type(&r.headers, &r.body);
                    match (r.status, kind.as_str()) {
                        (_, "ChannelNotBroadcasting" | "ResourceNotFoundException") => {
                            return Ok(Err(kind));
                        }
                        (401 | 403, _)
                        | (
                            _,
                            "UnrecognizedClientException"
                            | "InvalidSignatureException"
                            | "AccessDeniedException",
                        ) => (
                            Attempt::Final,
                            PlatformError::Credentials {
                                platform: NAME,
                                message: format!("{kind}: {message}"),
                            },
                        ),
                        (429, _) | (_, "ThrottlingException") => (
                            Attempt::RateLimited(None),
                            PlatformError::RateLimited {
                                platform: NAME,
                                message: format!("{kind}: {message}"),
                            },
                        ),
                        (s, _) if s >= 500 => (
                            Attempt::Failed,
                            PlatformError::Unavailable {
                                platform: NAME,
                                message: format!("HTTP {s}: {kind}: {message}"),
                            },
                        ),
                        (s, _) => (
                            Attempt::Final,
                            PlatformError::Refused {
                                platform: NAME,
                                status: s,
                                message: format!("{kind}: {message}"),
                            },
                        ),
                    }
                }
            };
            match self.cfg.retry.next_delay(n, attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(err),
            }
        }
    }

    fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, PlatformError> {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::Unavailable {
                platform: NAME,
                message: format!("answer lacks {}", path.join(".")),
            })
    }

    fn not_found() -> PlatformError {
        PlatformError::NotFound { platform: NAME }
    }

    async fn create_channel(&self, path: &StreamPath) -> Result<PlatformStream, PlatformError> {
        // Channel names: up to 128 of [a-zA-Z0-9-_].
        let name: String = format!("glasscast-{}-{}", path.user_id, path.stream_id)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(128)
            .collect();
        let body = json!({
            "name": name,
            "latencyMode": self.cfg.latency_mode,
            "type": "STANDARD",
            "tags": {
                "glasscast": self.cfg.tag,
                "glasscastCreated": now_s().to_string(),
                "userId": path.user_id,
                "streamId": path.stream_id,
            },
        });
        let r = self
            .call("CreateChannel", body)
            .await?
            .map_err(|_| Self::not_found())?;
        let arn = Self::field(&r, &["channel", "arn"])?;
        let ingest = Self::field(&r, &["channel", "ingestEndpoint"])?;
        let key = Self::field(&r, &["streamKey", "value"])?;
        Ok(PlatformStream {
            id: arn.to_string(),
            ingest_url: format!("rtmps://{ingest}:{}/app/{key}", self.cfg.ingest_port),
        })
    }

    async fn stream_state(&self, arn: &str) -> Result<PlatformStatus, PlatformError> {
        match self.call("GetStream", json!({ "channelArn": arn })).await? {
            Ok(v) => {
                let state = match v["stream"]["state"].as_str() {
                    Some("LIVE") => LiveState::Connected,
                    Some("OFFLINE") | None => LiveState::Idle,
                    Some(other) => LiveState::Other(other.to_string()),
                };
                Ok(PlatformStatus {
                    state,
                    viewers: v["stream"]["viewerCount"].as_u64(),
                })
            }
            Err(kind) if kind == "ChannelNotBroadcasting" => Ok(PlatformStatus {
                state: LiveState::Idle,
                viewers: Some(0),
            }),
            Err(_) => Err(Self::not_found()),
        }
    }

    async fn orphans(&self, min_age: Duration) -> Result<Vec<String>, PlatformError> {
        let list = self
            .call("ListChannels", json!({}))
            .await?
            .map_err(|_| Self::not_found())?;
        let now = now_s();
        let mut deleted = Vec::new();
        for ch in list["channels"].as_array().into_iter().flatten() {
            let ours = ch["tags"]["glasscast"].as_str() == Some(self.cfg.tag.as_str());
            let old = ch["tags"]["glasscastCreated"]
                .as_str()
                .and_then(|c| c.parse::<u64>().ok())
                .is_some_and(|c| now.saturating_sub(c) >= min_age.as_secs());
            let Some(arn) = ch["arn"].as_str() else {
                continue;
            };
            if ours && old && self.stream_state(arn).await?.state != LiveState::Connected {
                // Gone meanwhile (ResourceNotFoundException) counts as deleted.
                self.call("DeleteChannel", json!({ "arn": arn }))
                    .await?
                    .ok();
                deleted.push(arn.to_string());
            }
        }
        Ok(deleted)
    }
}

impl Platform for Ivs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self, path: &StreamPath) -> PlatformFuture<'_, PlatformStream> {
        let path = path.clone();
        Box::pin(async move { self.create_channel(&path).await })
    }

    fn end(&self, id: &str) -> PlatformFuture<'_, ()> {
        let body = json!({ "arn": id });
        Box::pin(async move {
            // A channel already gone is fine.
            self.call("DeleteChannel", body).await.map(|_| ())
        })
    }

    fn playback(&self, id: &str) -> PlatformFuture<'_, Option<Playback>> {
        let id = id.to_string();
        Box::pin(async move {
            if self.stream_state(&id).await?.state != LiveState::Connected {
                return Ok(None);
            }
            let ch = self
                .call("GetChannel", json!({ "arn": id }))
                .await?
                .map_err(|_| Self::not_found())?;
            Ok(Some(Playback {
                hls: Self::field(&ch, &["channel", "playbackUrl"])?.to_string(),
                dash: None,
                webrtc: None,
            }))
        })
    }

    fn status(&self, id: &str) -> PlatformFuture<'_, PlatformStatus> {
        let id = id.to_string();
        Box::pin(async move { self.stream_state(&id).await })
    }

    fn health(&self) -> PlatformFuture<'_, ()> {
        Box::pin(async move {
            self.call("ListStreams", json!({}))
                .await?
                .map(|_| ())
                .map_err(|_| Self::not_found())
        })
    }

    fn has_outputs(&self) -> bool {
        false
    }

    fn add_output(&self, _id: &str, _url: &str) -> PlatformFuture<'_, PlatformOutput> {
        Box::pin(std::future::ready(Err(PlatformError::Unsupported {
            platform: NAME,
            what: "simulcast outputs",
        })))
    }

    fn set_output_enabled(&self, _: &str, _: &str, _: bool) -> PlatformFuture<'_, ()> {
        Box::pin(std::future::ready(Err(PlatformError::Unsupported {
            platform: NAME,
            what: "simulcast outputs",
        })))
    }

    fn remove_output(&self, _: &str, _: &str) -> PlatformFuture<'_, ()> {
        Box::pin(std::future::ready(Err(PlatformError::Unsupported {
            platform: NAME,
            what: "simulcast outputs",
        })))
    }

    fn outputs(&self, _: &str) -> PlatformFuture<'_, Vec<PlatformOutput>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn cleanup_orphans(&self, min_age: Duration) -> PlatformFuture<'_, Vec<String>> {
        Box::pin(self.orphans(min_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_from_header_or_body() {
        let mut h = hyper::HeaderMap::new();
        h.insert(
            "x-amzn-errortype",
            "ChannelNotBroadcasting:http://internal.amazon.com/"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            error_type(&h, br#"{"message":"not live"}"#),
            ("ChannelNotBroadcasting".into(), "not live".into())
        );
        let h = hyper::HeaderMap::new();
        assert_eq!(
            error_type(
                &h,
                br#"{"__type":"com.amazonaws#ThrottlingException","Message":"slow down"}"#
            ),
            ("ThrottlingException".into(), "slow down".into())
        );
    }

    #[test]
    fn missing_credentials_name_the_platform() {
        let e = Ivs::new(IvsConfig {
            endpoint: "https://ivs.us-west-2.amazonaws.com".into(),
            region: "us-west-2".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            latency_mode: "LOW".into(),
            ingest_port: 443,
            tag: "t".into(),
        })
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .starts_with("AWS IVS rejected the credentials"),
            "{e}"
        );
    }
}
