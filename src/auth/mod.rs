//! Who may publish: the publish policies of `auth.mode` and the key stores behind `keys` mode.
//! The policy trait and the pure checks are in `relay::auth`; this folder holds what talks to
//! the outside (files, Redis, the cloud).

pub mod cache;
pub mod callback;
pub mod file_store;
pub mod keys;
pub mod redis_store;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use relay::auth::{OpenPolicy, PublishPolicy};

use crate::config::{AuthMode, Config};
use store::KeyStore;

/// Timeout of one key-store command.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the ingest waits for a decision before refusing (`policy_timeout`): more than
/// the policy's own timeouts, so their clearer reasons win.
pub fn decision_budget(cfg: &Config) -> Duration {
    let slack = Duration::from_secs(1);
    match cfg.auth.mode {
        AuthMode::Callback => cfg.auth.callback_timeout + slack,
        // An alias lookup and a record read, each bounded by the store's timeout (plus the
        // connection on first use).
        AuthMode::Keys => STORE_TIMEOUT * 3 + slack,
        AuthMode::Open | AuthMode::Token => slack,
    }
}

/// Opens the configured key store (Redis when `auth.redis_url` is set, else the file).
pub fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(match &cfg.auth.redis_url {
        Some(url) => Arc::new(
            redis_store::RedisStore::new(url, STORE_TIMEOUT)
                .context("opening the Redis key store (auth.redis_url)")?,
        ),
        None => Arc::new(
            file_store::FileStore::open(&cfg.auth.keys_file)
                .context("opening the key file (auth.keys_file)")?,
        ),
    })
}

/// The policy for `auth.mode`. `store` is the key store (used in `keys` mode).
pub fn policy(
    cfg: &Config,
    store: Option<Arc<dyn KeyStore>>,
    cloud_metrics: &relay::cloud::client::CloudMetrics,
) -> anyhow::Result<Arc<dyn PublishPolicy>> {
    Ok(match cfg.auth.mode {
        AuthMode::Open => Arc::new(OpenPolicy),
        AuthMode::Keys => Arc::new(keys::KeysPolicy::new(
            store.context("keys mode needs a key store")?,
        )),
        AuthMode::Token => Arc::new(token::TokenPolicy::new(
            cfg.auth
                .token_secret
                .as_deref()
                .context("token mode needs auth.token_secret")?,
        )),
        AuthMode::Callback => {
            let cloud = cfg
                .cloud
                .as_ref()
                .context("callback mode needs cloud.url")?;
            let client =
                relay::cloud::client::CloudClient::new(relay::cloud::client::CloudConfig {
                    url: cloud.url.clone(),
                    token: cloud.token.clone(),
                    hmac_secret: cloud.hmac_secret.clone(),
                    timeout: cfg.auth.callback_timeout,
                })
                .with_metrics(cloud_metrics.clone());
            Arc::new(callback::CallbackPolicy::new(
                client,
                cache::DecisionCache::new(cfg.auth.cache_allow, cfg.auth.cache_deny, 10_000),
            ))
        }
    })
}
