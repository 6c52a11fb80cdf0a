//! Cloudflare Stream as CONTRACTS.md describes its API, awkward parts included: every answer
//! is an envelope `{"result","success","errors":[{code,message}],"messages"}`; a live input's
//! `status` is `null`, a string, or an object with `current.state`; an output's `url` and
//! `streamKey` are separate fields; playback URLs come from the input's videos and only once
//! one is `live-inprogress`; 429 carries `Retry-After`.
//!
//! Live inputs this relay creates carry `meta.glasscast = <tag>`, so orphans left by a crash
//! can be found and deleted, and nothing else is ever touched.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use relay::cloud::https::{Https, HttpsError};
use relay::path::StreamPath;
use serde::Deserialize;
use serde_json::{Value, json};

use super::retry::{Attempt, RetryPolicy, parse_retry_after};
use super::{
    LiveState, Platform, PlatformError, PlatformFuture, PlatformOutput, PlatformStatus,
    PlatformStream, Playback,
};

/// The platform's name in messages.
pub const NAME: &str = "Cloudflare Stream";

/// Where and how to reach the Stream API.
#[derive(Clone)]
pub struct CloudflareConfig {
    /// `https://api.cloudflare.com/client/v4/accounts/{account_id}/stream` (no trailing
    /// slash needed); a local fake in tests.
    pub api_url: String,
    pub api_token: String,
    /// One request's timeout.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// `meta.glasscast` of the live inputs this relay creates (e.g. the node id).
    pub tag: String,
}

impl std::fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_url", &self.api_url)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// The Cloudflare Stream client.
#[derive(Clone)]
pub struct Cloudflare {
    cfg: CloudflareConfig,
    http: Https,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: Value,
    #[serde(default)]
    message: String,
}

/// The envelope's errors as one line (`10000: Authentication error; …`).
fn messages(body: &[u8]) -> String {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|m| format!("{}: {}", m.code, m.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no error details".into(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// A live input's `status` in either shape.
pub fn live_state(status: &Value) -> LiveState {
    let word = match status {
        Value::Null => return LiveState::Idle,
        Value::String(s) => s.as_str(),
        other => match str_at(other, &["current", "state"]) {
            Some(s) => s,
            None => return LiveState::Idle,
        },
    };
    match word {
        "connected" => LiveState::Connected,
        "disconnected" | "" => LiveState::Idle,
        other => LiveState::Other(other.to_string()),
    }
}

impl Cloudflare {
    /// A client; fails when the configuration cannot work (no token, no URL).
    pub fn new(cfg: CloudflareConfig) -> Result<Self, PlatformError> {
        if cfg.api_token.is_empty() {
            return Err(PlatformError::Credentials {
                platform: NAME,
                message: "no API token configured (managed.cloudflare.api_token)".into(),
            });
        }
        if !(cfg.api_url.starts_with("https://") || cfg.api_url.starts_with("http://")) {
            return Err(PlatformError::Unavailable {
                platform: NAME,
                message: "managed.cloudflare.api_url must be an http(s) URL".into(),
            });
        }
        Ok(Self {
            cfg,
            http: Https::new(),
        })
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.cfg.api_url.trim_end_matches('/')))
            .header("authorization", format!("Bearer {}", self.cfg.api_token))
            .header(
                "user-agent",
                concat!("glasscast/", env!("CARGO_PKG_VERSION")),
            );
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        b.body(Full::new(body))
            .unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
    }

    /// One API call with the retry policy; returns the envelope's `result`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, PlatformError> {
        let mut n = 0;
        loop {
            n += 1;
            let reply = self
                .http
                .send(self.request(method, path, body.as_ref()), self.cfg.timeout)
                .await;
            let (attempt, err) = match reply {
                Err(e @ (HttpsError::Timeout(_) | HttpsError::Transport(_))) => (
                    Attempt::Failed,
                    PlatformError::Unavailable {
                        platform: NAME,
                        message: e.to_string(),
                    },
                ),
                Ok(r) if (200..300).contains(&r.status) => {
                    match serde_json::from_slice::<Envelope>(&r.body) {
                        Ok(e) if e.success => return Ok(e.result),
                        Ok(_) => (
                            Attempt::Final,
                            PlatformError::Refused {
                                platform: NAME,
                                status: r.status,
                                message: messages(&r.body),
                            },
                        ),
                        Err(e) => (
                            Attempt::Final,
                            PlatformError::Unavailable {
                                platform: NAME,
                                message: format!("answer not understood: {e}"),
                            },
                        ),
                    }
                }
                Ok(r) => match r.status {
                    401 | 403 => (
                        Attempt::Final,
                        PlatformError::Credentials {
                            platform: NAME,
                            message: messages(&r.body),
                        },
                    ),
                    404 => (Attempt::Final, PlatformError::NotFound { platform: NAME }),
                    429 => {
                        let after = r
                            .headers
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_retry_after);
                        (
                            Attempt::RateLimited(after),
                            PlatformError::RateLimited {
                                platform: NAME,
                                message: messages(&r.body),
                            },
                        )
                    }
                    s if s >= 500 => (
                        Attempt::Failed,
                        PlatformError::Unavailable {
                            platform: NAME,
                            message: format!("HTTP {s}: {}", messages(&r.body)),
                        },
                    ),
                    s => (
                        Attempt::Final,
                        PlatformError::Refused {
                            platform: NAME,
                            status: s,
                            message: messages(&r.body),
                        },
                    ),
                },
            };
            match self.cfg.retry.next_delay(n, attempt) {
                Some(wait) => {
                    tracing::debug!(platform = NAME, attempt = n, ?wait, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(err),
            }
        }
    }

    fn unexpected(what: &str) -> PlatformError {
        PlatformError::Unavailable {
            platform: NAME,
            message: format!("answer lacks {what}"),
        }
    }

    async fn create_input(&self, path: &StreamPath) -> Result<PlatformStream, PlatformError> {
        let body = json!({
            "meta": {
                "name": format!("glasscast {path}"),
                "userId": path.user_id,
                "streamId": path.stream_id,
                "glasscast": self.cfg.tag,
            },
            "recording": {"mode": "automatic", "timeoutSeconds": 0, "requireSignedURLs": false},
        });
        let r = self.call("POST", "/live_inputs", Some(body)).await?;
        let uid = str_at(&r, &["uid"]).ok_or_else(|| Self::unexpected("result.uid"))?;
        let url =
            str_at(&r, &["rtmps", "url"]).ok_or_else(|| Self::unexpected("result.rtmps.url"))?;
        let key = str_at(&r, &["rtmps", "streamKey"])
            .ok_or_else(|| Self::unexpected("result.rtmps.streamKey"))?;
        let ingest_url = format!("{}/{key}", url.trim_end_matches('/'));
        Ok(PlatformStream {
            id: uid.to_string(),
            ingest_url,
        })
    }

    fn output(v: &Value) -> Result<PlatformOutput, PlatformError> {
        Ok(PlatformOutput {
            id: str_at(v, &["uid"])
                .ok_or_else(|| Self::unexpected("output uid"))?
                .to_string(),
            url: str_at(v, &["url"]).unwrap_or_default().to_string(),
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        })
    }

    async fn orphans(&self, min_age: Duration) -> Result<Vec<String>, PlatformError> {
        let list = self.call("GET", "/live_inputs", None).await?;
        let now = SystemTime::now();
        let mut deleted = Vec::new();
        for input in list.as_array().into_iter().flatten() {
            let ours = str_at(input, &["meta", "glasscast"]) == Some(self.cfg.tag.as_str());
            let old = str_at(input, &["created"])
                .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
                .and_then(|c| now.duration_since(c).ok())
                .is_some_and(|age| age >= min_age);
            let idle =
                live_state(input.get("status").unwrap_or(&Value::Null)) != LiveState::Connected;
            let Some(uid) = str_at(input, &["uid"]) else {
                continue;
            };
            if ours && old && idle {
                match self
                    .call("DELETE", &format!("/live_inputs/{uid}"), None)
                    .await
                {
                    Ok(_) | Err(PlatformError::NotFound { .. }) => deleted.push(uid.to_string()),
                    Err(e) => {
                        tracing::warn!(platform = NAME, input = uid, error = %e, "could not delete an orphaned live input")
                    }
                }
            }
        }
        Ok(deleted)
    }
}

impl Platform for Cloudflare {
    fn name(&self) -> &'static str {
        NAME
    }

    fn create(&self, path: &StreamPath) -> PlatformFuture<'_, PlatformStream> {
        let path = path.clone();
        Box::pin(async move { self.create_input(&path).await })
    }

    fn end(&self, id: &str) -> PlatformFuture<'_, ()> {
        let p = format!("/live_inputs/{id}");
        Box::pin(async move {
            match self.call("DELETE", &p, None).await {
                Ok(_) | Err(PlatformError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn playback(&self, id: &str) -> PlatformFuture<'_, Option<Playback>> {
        let p = format!("/live_inputs/{id}/videos");
        Box::pin(async move {
            let videos = self.call("GET", &p, None).await?;
            Ok(videos
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|v| {
                    (str_at(v, &["status", "state"]) == Some("live-inprogress")).then(|| Playback {
                        hls: str_at(v, &["playback", "hls"])
                            .unwrap_or_default()
                            .to_string(),
                        dash: str_at(v, &["playback", "dash"]).map(String::from),
                        webrtc: None,
                    })
                })
                .filter(|p| !p.hls.is_empty()))
        })
    }

    fn status(&self, id: &str) -> PlatformFuture<'_, PlatformStatus> {
        let p = format!("/live_inputs/{id}");
        Box::pin(async move {
            let input = self.call("GET", &p, None).await?;
            Ok(PlatformStatus {
                state: live_state(input.get("status").unwrap_or(&Value::Null)),
                // Live inputs report no audience; Cloudflare's analytics are a separate API.
                viewers: None,
            })
        })
    }

    fn health(&self) -> PlatformFuture<'_, ()> {
        Box::pin(async move { self.call("GET", "/live_inputs", None).await.map(|_| ()) })
    }

    fn has_outputs(&self) -> bool {
        true
    }

    fn add_output(&self, id: &str, url: &str) -> PlatformFuture<'_, PlatformOutput> {
        let p = format!("/live_inputs/{id}/outputs");
        let split = super::split_key(url);
        Box::pin(async move {
            let (base, key) = split.map_err(|message| PlatformError::Refused {
                platform: NAME,
                status: 400,
                message,
            })?;
            let body = json!({"url": base, "streamKey": key, "enabled": true});
            Self::output(&self.call("POST", &p, Some(body)).await?)
        })
    }

    fn set_output_enabled(&self, id: &str, output: &str, enabled: bool) -> PlatformFuture<'_, ()> {
        let p = format!("/live_inputs/{id}/outputs/{output}");
        Box::pin(async move {
            self.call("PUT", &p, Some(json!({ "enabled": enabled })))
                .await
                .map(|_| ())
        })
    }

    fn remove_output(&self, id: &str, output: &str) -> PlatformFuture<'_, ()> {
        let p = format!("/live_inputs/{id}/outputs/{output}");
        Box::pin(async move { self.call("DELETE", &p, None).await.map(|_| ()) })
    }

    fn outputs(&self, id: &str) -> PlatformFuture<'_, Vec<PlatformOutput>> {
        let p = format!("/live_inputs/{id}/outputs");
        Box::pin(async move {
            let list = self.call("GET", &p, None).await?;
            list.as_array()
                .into_iter()
                .flatten()
                .map(Self::output)
                .collect()
        })
    }

    fn cleanup_orphans(&self, min_age: Duration) -> PlatformFuture<'_, Vec<String>> {
        Box::pin(self.orphans(min_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_status_shapes() {
        assert_eq!(live_state(&Value::Null), LiveState::Idle);
        assert_eq!(live_state(&json!("connected")), LiveState::Connected);
        assert_eq!(
            live_state(&json!({"current": {"state": "connected"}})),
            LiveState::Connected
        );
        assert_eq!(
            live_state(&json!({"current": {"state": "disconnected"}})),
            LiveState::Idle
        );
        assert_eq!(
            live_state(&json!("reconnecting")),
            LiveState::Other("reconnecting".into())
        );
    }

    #[test]
    fn envelope_messages() {
        let body = br#"{"result":null,"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[]}"#;
        assert_eq!(messages(body), "10000: Authentication error");
        assert_eq!(messages(b"<html>"), "no error details");
    }

    #[test]
    fn configuration_is_checked_and_secret() {
        let cfg = CloudflareConfig {
            api_url: "https://api.cloudflare.com/client/v4/accounts/A/stream".into(),
            api_token: String::new(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            tag: "glasscast".into(),
        };
        let e = Cloudflare::new(cfg.clone()).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("Cloudflare Stream rejected the credentials")
        );
        let with_token = CloudflareConfig {
            api_token: "tok-SECRET".into(),
            ..cfg
        };
        assert!(!format!("{with_token:?}").contains("SECRET"));
    }
}
