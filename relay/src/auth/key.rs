//! Stream keys (`seeds/003_*`): 32 random bytes, URL-safe base64 (43 characters), stored only
//! as their SHA-256 (hex, which is also the key's public id) next to JSON metadata. A key may
//! be bound to one stream or to any stream of its user, may be limited to client addresses,
//! always expires, and may have a human-readable alias that stands for it.
//!
//! The randomness comes from the caller (a CSPRNG in the binary), so this stays pure.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{DenyReason, ip_allowed, parse_net};
use crate::path::StreamPath;

/// Default lifetime of a key: 30 days.
pub const DEFAULT_TTL_S: u64 = 30 * 24 * 3600;

/// What is stored for a key (never the key itself). Field names are the API's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Hex SHA-256 of the key: its identity in stores and in the API.
    pub key_id: String,
    pub user_id: String,
    /// `None`: any stream of the user (only usable with a full publish path).
    #[serde(default)]
    pub stream_id: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// CIDRs or addresses; empty means any address.
    #[serde(default)]
    pub allow_ips: Vec<String>,
}

/// Invalid key metadata (from the API or the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("userId must not be empty")]
    NoUser,
    #[error("streamId must not be empty when given")]
    EmptyStream,
    #[error("{0}")]
    BadNet(String),
    #[error("alias must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadAlias,
    #[error("ttlSeconds must be between 1 and 315360000 (10 years)")]
    BadTtl,
}

/// A freshly made key: the secret (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: String,
    pub record: KeyRecord,
}

/// What the creator of a key asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    pub user_id: String,
    pub stream_id: Option<String>,
    pub ttl_s: Option<u64>,
    pub allow_ips: Vec<String>,
    pub alias: Option<String>,
}

/// The public id of `key`: hex SHA-256.
pub fn key_id(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// True for names usable as an alias.
pub fn valid_alias(alias: &str) -> bool {
    (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl KeySpec {
    /// Checks the spec and makes the key from 32 random bytes at `now` (unix seconds).
    pub fn make(&self, random: [u8; 32], now: u64) -> Result<NewKey, KeyError> {
        if self.user_id.is_empty() {
            return Err(KeyError::NoUser);
        }
        if self.stream_id.as_deref() == Some("") {
            return Err(KeyError::EmptyStream);
        }
        let ttl = self.ttl_s.unwrap_or(DEFAULT_TTL_S);
        if ttl == 0 || ttl > 10 * 365 * 24 * 3600 {
            return Err(KeyError::BadTtl);
        }
        let mut allow_ips = Vec::new();
        for n in &self.allow_ips {
            allow_ips.push(parse_net(n).map_err(KeyError::BadNet)?.to_string());
        }
        if let Some(a) = &self.alias
            && !valid_alias(a)
        {
            return Err(KeyError::BadAlias);
        }
        let key = URL_SAFE_NO_PAD.encode(random);
        Ok(NewKey {
            record: KeyRecord {
                key_id: key_id(&key),
                user_id: self.user_id.clone(),
                stream_id: self.stream_id.clone(),
                alias: self.alias.clone(),
                created_at: now,
                expires_at: now.saturating_add(ttl),
                allow_ips,
            },
            key,
        })
    }
}

impl KeyRecord {
    /// Seconds until the key expires at `now` (at least 1), for store TTLs.
    pub fn ttl_at(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now).max(1)
    }

    /// Decides a publish with this key. `presented` is what the client sent (the key, or
    /// `None` when it used the alias), `requested` the path it asked for (`None` for a bare
    /// `live/{key}`). Returns the stream to publish to.
    pub fn check(
        &self,
        presented: Option<&str>,
        requested: Option<&StreamPath>,
        client: IpAddr,
        now: u64,
    ) -> Result<StreamPath, DenyReason> {
        if let Some(key) = presented {
            // The store found this record by the hash; compare the whole hash in constant
            // time anyway, so a store that matches loosely cannot let a wrong key through.
            let ok: bool = key_id(key).as_bytes().ct_eq(self.key_id.as_bytes()).into();
            if !ok {
                return Err(DenyReason::UnknownKey);
            }
        }
        if self.expires_at <= now {
            return Err(DenyReason::KeyExpired);
        }
        let nets: Vec<ipnet::IpNet> = self
            .allow_ips
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect();
        if nets.len() != self.allow_ips.len() {
            // Unreadable restrictions must not turn into "no restriction".
            return Err(DenyReason::IpNotAllowed);
        }
        if !ip_allowed(&nets, client) {
            return Err(DenyReason::IpNotAllowed);
        }
        match requested {
            Some(p) => {
                let stream_ok = self.stream_id.as_ref().is_none_or(|s| *s == p.stream_id);
                if p.user_id != self.user_id || !stream_ok {
                    return Err(DenyReason::WrongStream);
                }
                Ok(p.clone())
            }
            None => match &self.stream_id {
                Some(s) => Ok(StreamPath {
                    user_id: self.user_id.clone(),
                    stream_id: s.clone(),
                }),
                None => Err(DenyReason::KeyNeedsPath),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> KeySpec {
        KeySpec {
            user_id: "alice@example.com".into(),
            stream_id: Some("m1".into()),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn path(u: &str, s: &str) -> StreamPath {
        StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        }
    }

    #[test]
    fn generation() {
        let k = spec().make([7; 32], 1000).unwrap();
        assert_eq!(k.key.len(), 43);
        assert!(
            k.key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(k.record.key_id, key_id(&k.key));
        assert_eq!(k.record.key_id.len(), 64);
        assert_eq!(k.record.expires_at, 1000 + DEFAULT_TTL_S);
        assert!(!serde_json::to_string(&k.record).unwrap().contains(&k.key));
        let other = spec().make([8; 32], 1000).unwrap();
        assert_ne!(other.key, k.key);
    }

    #[test]
    fn spec_errors() {
        let bad = |f: fn(&mut KeySpec)| {
            let mut s = spec();
            f(&mut s);
            s.make([0; 32], 0).unwrap_err()
        };
        assert_eq!(bad(|s| s.user_id.clear()), KeyError::NoUser);
        assert_eq!(
            bad(|s| s.stream_id = Some(String::new())),
            KeyError::EmptyStream
        );
        assert_eq!(bad(|s| s.ttl_s = Some(0)), KeyError::BadTtl);
        assert_eq!(
            bad(|s| s.alias = Some("has space".into())),
            KeyError::BadAlias
        );
        assert!(matches!(
            bad(|s| s.allow_ips = vec!["nope".into()]),
            KeyError::BadNet(_)
        ));
    }

    #[test]
    fn checks() {
        let mut s = spec();
        s.ttl_s = Some(60);
        s.allow_ips = vec!["10.0.0.0/8".into()];
        let k = s.make([1; 32], 1000).unwrap();
        let r = &k.record;
        let p = path("alice@example.com", "m1");
        let good_ip = ip("10.2.3.4");
        assert_eq!(
            r.check(Some(&k.key), Some(&p), good_ip, 1001),
            Ok(p.clone())
        );
        // Bare key: the metadata supplies the path; alias: no key presented.
        assert_eq!(r.check(Some(&k.key), None, good_ip, 1001), Ok(p.clone()));
        assert_eq!(r.check(None, None, good_ip, 1001), Ok(p.clone()));
        assert_eq!(
            r.check(Some("wrong"), Some(&p), good_ip, 1001),
            Err(DenyReason::UnknownKey)
        );
        assert_eq!(
            r.check(Some(&k.key), Some(&p), good_ip, 1060),
            Err(DenyReason::KeyExpired)
        );
        assert_eq!(
            r.check(Some(&k.key), Some(&p), ip("11.0.0.1"), 1001),
            Err(DenyReason::IpNotAllowed)
        );
        assert_eq!(
            r.check(
                Some(&k.key),
                Some(&path("alice@example.com", "m2")),
                good_ip,
                1001
            ),
            Err(DenyReason::WrongStream)
        );
        assert_eq!(
            r.check(
                Some(&k.key),
                Some(&path("bob@example.com", "m1")),
                good_ip,
                1001
            ),
            Err(DenyReason::WrongStream)
        );
        // A key for any stream of the user needs the full path.
        let any = KeySpec {
            stream_id: None,
            ..spec()
        }
        .make([2; 32], 0)
        .unwrap();
        let p2 = path("alice@example.com", "whatever");
        assert_eq!(
            any.record.check(Some(&any.key), Some(&p2), good_ip, 1),
            Ok(p2)
        );
        assert_eq!(
            any.record.check(Some(&any.key), None, good_ip, 1),
            Err(DenyReason::KeyNeedsPath)
        );
        // A corrupted allowlist refuses rather than allowing everyone.
        let mut broken = any.record.clone();
        broken.allow_ips = vec!["garbage".into()];
        assert_eq!(
            broken.check(Some(&any.key), Some(&p), good_ip, 1),
            Err(DenyReason::IpNotAllowed)
        );
    }

    #[test]
    fn aliases() {
        assert!(valid_alias("preview"));
        assert!(valid_alias("glasses-01.dev_x"));
        assert!(!valid_alias(""));
        assert!(!valid_alias("a/b"));
        assert!(!valid_alias(&"a".repeat(65)));
    }

    proptest! {
        /// Only the key itself passes; any other string is an unknown key.
        #[test]
        fn only_the_key_matches(seed in any::<[u8; 32]>(), other in "[A-Za-z0-9_-]{0,60}") {
            let k = spec().make(seed, 0).unwrap();
            let p = path("alice@example.com", "m1");
            let local = ip("127.0.0.1");
            prop_assert!(k.record.check(Some(&k.key), Some(&p), local, 1).is_ok());
            if other != k.key {
                prop_assert_eq!(k.record.check(Some(&other), Some(&p), local, 1), Err(DenyReason::UnknownKey));
            }
        }
    }
}
