//! `auth.mode = "callback"`: the cloud decides. `POST {cloud.url}/api/rtmp-relay/authorize`
//! `{"userId","streamId","clientIp","key"|"token"}` with a short timeout: 2xx allows, 401/403
//! refuses, anything else (other statuses, timeouts, no answer) refuses with its own reason.
//! Decisions are cached briefly per stream, credential and address.

use std::sync::Mutex;
use std::time::Instant;

use relay::auth::{
    Decision, DecisionFuture, DenyReason, PublishName, PublishPolicy, PublishRequest,
};
use relay::cloud::client::{CloudClient, CloudError};
use relay::path::Credential;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::cache::DecisionCache;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeBody<'a> {
    user_id: &'a str,
    stream_id: &'a str,
    client_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

/// Asks the cloud, with a decision cache in front.
pub struct CallbackPolicy {
    client: CloudClient,
    cache: Mutex<DecisionCache>,
}

impl CallbackPolicy {
    /// `client` must have the authorize timeout as its timeout.
    pub fn new(client: CloudClient, cache: DecisionCache) -> Self {
        Self {
            client,
            cache: Mutex::new(cache),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn decide(&self, req: &PublishRequest) -> Decision {
        let PublishName::Stream(path) = &req.name else {
            return Decision::Deny(DenyReason::BadPath);
        };
        let (key, token) = match &req.credential {
            Some(Credential::Key(k)) => (Some(k.as_str()), None),
            Some(Credential::Token(t)) => (None, Some(t.as_str())),
            None => (None, None),
        };
        // The cache key is a digest: the credential is never kept in memory longer than the
        // request.
        let mut h = Sha256::new();
        for part in [
            path.user_id.as_str(),
            path.stream_id.as_str(),
            &req.client_ip.to_string(),
            key.map_or("-", |_| "k"),
            key.or(token).unwrap_or(""),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let cache_key: [u8; 32] = h.finalize().into();
        if let Some(d) = self.cache().get(&cache_key, Instant::now()) {
            return d;
        }
        let body = AuthorizeBody {
            user_id: &path.user_id,
            stream_id: &path.stream_id,
            client_ip: req.client_ip.to_string(),
            key,
            token,
        };
        let decision = match self.client.post("/api/rtmp-relay/authorize", &body).await {
            Ok(()) => Decision::Allow(path.clone()),
            Err(CloudError::Status(401 | 403)) => Decision::Deny(DenyReason::CallbackDenied),
            Err(e) => {
                warn!(stream = %path, error = %e, "authorize callback failed; refusing the publish");
                // Cached like a refusal: a publisher retrying in a loop against a dead cloud
                // asks at most once per refusal TTL.
                Decision::Deny(DenyReason::CallbackFailed)
            }
        };
        self.cache()
            .insert(cache_key, decision.clone(), Instant::now());
        decision
    }
}

impl PublishPolicy for CallbackPolicy {
    fn mode(&self) -> &'static str {
        "callback"
    }

    fn authorize<'a>(&'a self, req: &'a PublishRequest) -> DecisionFuture<'a> {
        Box::pin(self.decide(req))
    }
}
