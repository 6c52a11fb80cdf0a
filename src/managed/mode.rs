//! Delivery modes: who serves a stream's viewers. `self` is our origin; `cloudflare` and `ivs`
//! hand the stream to that platform; `ab` does both (ours is announced, the platform's is the
//! `alternate`). The mode comes from configuration (globally and per path prefix) and, per
//! stream, from the cloud's destinations answer.

use std::fmt;
use std::str::FromStr;

/// A managed platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformKind {
    Cloudflare,
    Ivs,
}

impl PlatformKind {
    /// The word used in configuration and in `alternate.platform`.
    pub fn word(self) -> &'static str {
        match self {
            PlatformKind::Cloudflare => "cloudflare",
            PlatformKind::Ivs => "ivs",
        }
    }
}

impl FromStr for PlatformKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "cloudflare" => Ok(PlatformKind::Cloudflare),
            "ivs" => Ok(PlatformKind::Ivs),
            other => Err(format!(
                "unknown platform {other:?} (expected cloudflare or ivs)"
            )),
        }
    }
}

/// Who serves a stream's viewers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Our origin (the default).
    Origin,
    /// The platform alone: its URLs are announced.
    Platform(PlatformKind),
    /// Our origin and `delivery.ab_platform` side by side: ours announced, the platform's
    /// reported as the alternate.
    Ab,
}

impl DeliveryMode {
    /// The word used in configuration and in the cloud's answer.
    pub fn word(self) -> &'static str {
        match self {
            DeliveryMode::Origin => "self",
            DeliveryMode::Platform(p) => p.word(),
            DeliveryMode::Ab => "ab",
        }
    }
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for DeliveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "self" => Ok(DeliveryMode::Origin),
            "ab" => Ok(DeliveryMode::Ab),
            other => other.parse().map(DeliveryMode::Platform).map_err(|_| {
                format!("unknown delivery mode {other:?} (expected self, cloudflare, ivs or ab)")
            }),
        }
    }
}

/// The configured modes: a default and per path prefix overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeRules {
    pub default: DeliveryMode,
    /// `(prefix, mode)`; the longest matching prefix wins.
    pub prefixes: Vec<(String, DeliveryMode)>,
}

impl ModeRules {
    /// Parses `PREFIX -> MODE; PREFIX -> MODE`.
    pub fn parse_prefixes(text: &str) -> Result<Vec<(String, DeliveryMode)>, String> {
        crate::config::prefix_rules::parse(text, "MODE", str::parse)
    }

    /// The mode of `path` (`live/{userId}/{streamId}`, decoded or percent-encoded) before the
    /// cloud has its say.
    pub fn for_path(&self, path: &relay::path::StreamPath) -> DeliveryMode {
        crate::config::prefix_rules::lookup(&self.prefixes, path)
            .copied()
            .unwrap_or(self.default)
    }

    /// Every mode the configuration can produce.
    pub fn modes(&self) -> impl Iterator<Item = DeliveryMode> + '_ {
        std::iter::once(self.default).chain(self.prefixes.iter().map(|(_, m)| *m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay::path::StreamPath;

    #[test]
    fn words_round_trip() {
        for w in ["self", "cloudflare", "ivs", "ab"] {
            assert_eq!(w.parse::<DeliveryMode>().unwrap().word(), w);
        }
        assert!("youtube".parse::<DeliveryMode>().is_err());
    }

    #[test]
    fn longest_prefix_wins() {
        let rules = ModeRules {
            default: DeliveryMode::Origin,
            prefixes: ModeRules::parse_prefixes(
                "live/alice@example.com/ -> cloudflare; live/alice%40example.com/ab -> ab",
            )
            .unwrap(),
        };
        let p = |u: &str, s: &str| StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        };
        assert_eq!(
            rules.for_path(&p("alice@example.com", "m1")),
            DeliveryMode::Platform(PlatformKind::Cloudflare)
        );
        assert_eq!(
            rules.for_path(&p("alice@example.com", "ab1")),
            DeliveryMode::Ab
        );
        assert_eq!(rules.for_path(&p("bob", "m1")), DeliveryMode::Origin);
        assert!(ModeRules::parse_prefixes("live/ cloudflare").is_err());
        assert!(ModeRules::parse_prefixes("live/ -> vimeo").is_err());
    }
}
