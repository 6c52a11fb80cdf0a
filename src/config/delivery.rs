//! The `delivery` and `managed.*` sections: which platform serves which streams, and how to
//! reach the platforms. A mode that needs a platform without credentials is a configuration
//! error; a platform named only by the cloud's answer fails at first use instead, by name.

use std::time::Duration;

use super::Layered;
use crate::managed::mode::{DeliveryMode, ModeRules, PlatformKind};

/// `delivery.*`, validated.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub rules: ModeRules,
    pub fallback_to_self: bool,
    /// The platform of `ab` mode.
    pub ab_platform: PlatformKind,
    pub poll_interval: Duration,
    pub live_timeout: Duration,
}

impl Default for DeliverySettings {
    /// Our origin serves everything.
    fn default() -> Self {
        Self {
            rules: ModeRules {
                default: DeliveryMode::Origin,
                prefixes: Vec::new(),
            },
            fallback_to_self: true,
            ab_platform: PlatformKind::Cloudflare,
            poll_interval: Duration::from_secs(2),
            live_timeout: Duration::from_secs(60),
        }
    }
}

impl DeliverySettings {
    /// The platform a mode uses, if any.
    pub fn platform_of(&self, mode: DeliveryMode) -> Option<PlatformKind> {
        match mode {
            DeliveryMode::Origin => None,
            DeliveryMode::Platform(p) => Some(p),
            DeliveryMode::Ab => Some(self.ab_platform),
        }
    }
}

/// `managed.cloudflare.*` when a token is set.
#[derive(Clone)]
pub struct CloudflareSettings {
    pub api_url: String,
    pub api_token: String,
}

/// `managed.ivs.*` when an access key is set.
#[derive(Clone)]
pub struct IvsSettings {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub latency_mode: String,
    pub ingest_port: u16,
}

/// `managed.*`, validated. `Debug` shows no secret.
#[derive(Clone)]
pub struct ManagedSettings {
    pub tag: String,
    pub timeout: Duration,
    pub orphan_age: Duration,
    pub cloudflare: Option<CloudflareSettings>,
    pub ivs: Option<IvsSettings>,
}

impl std::fmt::Debug for ManagedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedSettings")
            .field("tag", &self.tag)
            .field("cloudflare", &self.cloudflare.as_ref().map(|c| &c.api_url))
            .field("ivs", &self.ivs.as_ref().map(|i| &i.endpoint))
            .finish_non_exhaustive()
    }
}

impl ManagedSettings {
    pub fn has(&self, p: PlatformKind) -> bool {
        match p {
            PlatformKind::Cloudflare => self.cloudflare.is_some(),
            PlatformKind::Ivs => self.ivs.is_some(),
        }
    }
}

pub fn validate(
    layered: &Layered,
    errors: &mut Vec<String>,
) -> (DeliverySettings, ManagedSettings) {
    let d = &layered.sections.delivery;
    let m = &layered.sections.managed;
    let default = d.mode.parse().unwrap_or_else(|e| {
        errors.push(format!(
            "{}: {e}",
            layered.describe("delivery", "mode", &d.mode)
        ));
        DeliveryMode::Origin
    });
    let prefixes = ModeRules::parse_prefixes(&d.prefixes).unwrap_or_else(|e| {
        errors.push(format!("delivery.prefixes: {e}"));
        Vec::new()
    });
    let ab_platform = d.ab_platform.parse().unwrap_or_else(|e| {
        errors.push(format!(
            "{}: {e}",
            layered.describe("delivery", "ab_platform", &d.ab_platform)
        ));
        PlatformKind::Cloudflare
    });
    if d.poll_interval_ms < 100 {
        errors.push(format!(
            "delivery.poll_interval_ms must be at least 100, got {}",
            d.poll_interval_ms
        ));
    }
    if d.live_timeout_s == 0 {
        errors.push("delivery.live_timeout_s must be at least 1".into());
    }
    let delivery = DeliverySettings {
        rules: ModeRules { default, prefixes },
        fallback_to_self: d.fallback_to_self,
        ab_platform,
        poll_interval: Duration::from_millis(d.poll_interval_ms),
        live_timeout: Duration::from_secs(d.live_timeout_s),
    };

    let cf = &m.cloudflare;
    let cloudflare = match (cf.api_url.is_empty(), cf.api_token.is_empty()) {
        (true, true) => None,
        (false, false) => {
            if !(cf.api_url.starts_with("https://") || cf.api_url.starts_with("http://")) {
                errors.push(format!(
                    "managed.cloudflare.api_url must start with https://, got {:?}",
                    cf.api_url
                ));
            }
            Some(CloudflareSettings {
                api_url: cf.api_url.trim_end_matches('/').to_string(),
                api_token: cf.api_token.clone(),
            })
        }
        _ => {
            errors.push(
                "managed.cloudflare.api_url and managed.cloudflare.api_token must be set together"
                    .into(),
            );
            None
        }
    };
    let ivs = &m.ivs;
    let ivs = match (
        ivs.access_key_id.is_empty(),
        ivs.secret_access_key.is_empty(),
    ) {
        (true, true) => None,
        (false, false) => {
            if !matches!(ivs.latency_mode.as_str(), "LOW" | "NORMAL") {
                errors.push(format!(
                    "managed.ivs.latency_mode must be LOW or NORMAL, got {:?}",
                    ivs.latency_mode
                ));
            }
            if ivs.region.is_empty() {
                errors.push("managed.ivs.region must not be empty".into());
            }
            let ingest_port = u16::try_from(ivs.ingest_port)
                .ok()
                .filter(|p| *p > 0)
                .unwrap_or_else(|| {
                    errors.push(format!(
                        "managed.ivs.ingest_port must be 1-65535, got {}",
                        ivs.ingest_port
                    ));
                    443
                });
            let endpoint = if ivs.endpoint.is_empty() {
                format!("https://ivs.{}.amazonaws.com", ivs.region)
            } else {
                ivs.endpoint.trim_end_matches('/').to_string()
            };
            Some(IvsSettings {
                endpoint,
                region: ivs.region.clone(),
                access_key_id: ivs.access_key_id.clone(),
                secret_access_key: ivs.secret_access_key.clone(),
                latency_mode: ivs.latency_mode.clone(),
                ingest_port,
            })
        }
        _ => {
            errors.push(
                "managed.ivs.access_key_id and managed.ivs.secret_access_key must be set together"
                    .into(),
            );
            None
        }
    };
    let managed = ManagedSettings {
        tag: m.tag.clone(),
        timeout: Duration::from_millis(m.timeout_ms.max(100)),
        orphan_age: Duration::from_secs(m.orphan_age_s),
        cloudflare,
        ivs,
    };
    let mut missing: Vec<PlatformKind> = Vec::new();
    for p in delivery
        .rules
        .modes()
        .filter_map(|m| delivery.platform_of(m))
    {
        if !managed.has(p) && !missing.contains(&p) {
            missing.push(p);
        }
    }
    for p in missing {
        errors.push(match p {
            PlatformKind::Cloudflare => "delivery uses cloudflare: set managed.cloudflare.api_url and managed.cloudflare.api_token".to_string(),
            PlatformKind::Ivs => "delivery uses ivs: set managed.ivs.access_key_id and managed.ivs.secret_access_key".to_string(),
        });
    }
    (delivery, managed)
}
