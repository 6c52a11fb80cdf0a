//! The platforms this relay has credentials for, built from `managed.*`: looked up by kind,
//! checked at start (rejected credentials stop the start with the platform named), and swept
//! for orphans left by an earlier crash.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::cloudflare::{Cloudflare, CloudflareConfig};
use super::ivs::{Ivs, IvsConfig};
use super::mode::PlatformKind;
use super::retry::RetryPolicy;
use super::{Platform, PlatformError};
use crate::config::delivery::ManagedSettings;

/// The configured platforms.
#[derive(Clone, Default)]
pub struct Platforms {
    cloudflare: Option<Arc<dyn Platform>>,
    ivs: Option<Arc<dyn Platform>>,
}

impl std::fmt::Debug for Platforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platforms")
            .field("cloudflare", &self.cloudflare.is_some())
            .field("ivs", &self.ivs.is_some())
            .finish()
    }
}

impl Platforms {
    /// Clients for every platform with credentials in `m`.
    pub fn from_settings(m: &ManagedSettings) -> Result<Self, PlatformError> {
        let cloudflare = match &m.cloudflare {
            Some(c) => Some(Arc::new(Cloudflare::new(CloudflareConfig {
                api_url: c.api_url.clone(),
                api_token: c.api_token.clone(),
                timeout: m.timeout,
                retry: RetryPolicy::default(),
                tag: m.tag.clone(),
            })?) as Arc<dyn Platform>),
            None => None,
        };
        let ivs = match &m.ivs {
            Some(i) => Some(Arc::new(Ivs::new(IvsConfig {
                endpoint: i.endpoint.clone(),
                region: i.region.clone(),
                access_key_id: i.access_key_id.clone(),
                secret_access_key: i.secret_access_key.clone(),
                timeout: m.timeout,
                retry: RetryPolicy::default(),
                tag: m.tag.clone(),
                latency_mode: i.latency_mode.clone(),
                ingest_port: i.ingest_port,
            })?) as Arc<dyn Platform>),
            None => None,
        };
        Ok(Self { cloudflare, ivs })
    }

    /// The platform of `kind`, or an error naming it and the settings it needs.
    pub fn get(&self, kind: PlatformKind) -> Result<Arc<dyn Platform>, PlatformError> {
        let (p, platform, keys) = match kind {
            PlatformKind::Cloudflare => (
                &self.cloudflare,
                super::cloudflare::NAME,
                "managed.cloudflare.api_url and managed.cloudflare.api_token",
            ),
            PlatformKind::Ivs => (
                &self.ivs,
                super::ivs::NAME,
                "managed.ivs.access_key_id and managed.ivs.secret_access_key",
            ),
        };
        p.clone().ok_or(PlatformError::NotConfigured {
            platform,
            settings: keys,
        })
    }

    fn all(&self) -> impl Iterator<Item = &Arc<dyn Platform>> {
        self.cloudflare.iter().chain(self.ivs.iter())
    }

    /// Asks every configured platform whether it accepts our credentials, each within
    /// `timeout`. Rejected credentials are an error (the relay should not start); a platform
    /// that cannot be reached only gets a warning, since streams fall back or retry later.
    pub async fn check(&self, timeout: Duration) -> Result<(), PlatformError> {
        for p in self.all() {
            match tokio::time::timeout(timeout, p.health()).await {
                Ok(Ok(())) => info!(platform = p.name(), "managed platform reachable"),
                Ok(Err(e @ PlatformError::Credentials { .. })) => return Err(e),
                Ok(Err(e)) => {
                    warn!(platform = p.name(), error = %e, "managed platform not usable at start")
                }
                Err(_) => warn!(
                    platform = p.name(),
                    "managed platform did not answer within {timeout:?} at start"
                ),
            }
        }
        Ok(())
    }

    /// In the background: deletes our platform streams older than `age` that receive nothing.
    pub fn clean_orphans(&self, age: Duration, tasks: &TaskTracker) {
        for p in self.all() {
            let p = p.clone();
            tasks.spawn(async move {
                match p.cleanup_orphans(age).await {
                    Ok(gone) if gone.is_empty() => {}
                    Ok(gone) => info!(
                        platform = p.name(),
                        deleted = gone.len(),
                        "deleted orphaned platform streams"
                    ),
                    Err(e) => warn!(platform = p.name(), error = %e, "orphan cleanup failed"),
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfigured_platform_is_named_with_its_settings() {
        let p = Platforms::default();
        let e = p.get(PlatformKind::Ivs).err().unwrap().to_string();
        assert_eq!(
            e,
            "AWS IVS is not configured (set managed.ivs.access_key_id and managed.ivs.secret_access_key)"
        );
        let e = p.get(PlatformKind::Cloudflare).err().unwrap().to_string();
        assert!(e.starts_with("Cloudflare Stream is not configured"), "{e}");
    }
}
