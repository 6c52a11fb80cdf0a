//! Publish authorization: the [`PublishPolicy`] the ingest shell consults (and awaits) before
//! it accepts a publish, and the pure checks behind it: stream keys ([`key`]), signed tokens
//! ([`token`]) and IP allowlists.
//!
//! Policies that talk to the outside (key stores, the cloud's authorize callback) live in the
//! binary; everything here is synchronous and free of I/O, clocks and randomness.

pub mod key;
pub mod token;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::path::{Credential, StreamPath};

/// What the client asked to publish to, after the app and stream name were joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishName {
    /// `live/{userId}/{streamId}`.
    Stream(StreamPath),
    /// `live/{name}`: a stream key or an alias standing for the whole path. Secret: its
    /// `Debug` form is masked.
    Bare(BareName),
}

/// The single name of a `live/{name}` publish (a key or an alias). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BareName(pub String);

impl std::fmt::Debug for BareName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BareName(***)")
    }
}

/// One publish attempt, as a policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    pub name: PublishName,
    pub credential: Option<Credential>,
    /// The client's address (IPv4-mapped IPv6 addresses are given as IPv4).
    pub client_ip: IpAddr,
}

/// Why a publish was refused. Each reason has a short, bounded label for logs and metrics;
/// none of them carries the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DenyReason {
    #[error("no key or token in the publish URL")]
    MissingCredential,
    #[error("the publish path is not live/{{userId}}/{{streamId}} (or live/{{key}} in keys mode)")]
    BadPath,
    #[error("unknown or revoked stream key")]
    UnknownKey,
    #[error("the stream key has expired")]
    KeyExpired,
    #[error("the key or token is for another stream")]
    WrongStream,
    #[error("this client address may not use the key or token")]
    IpNotAllowed,
    #[error("the token is malformed or its signature does not match")]
    BadToken,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token is longer than allowed")]
    TokenTooLong,
    #[error("the key is not bound to a stream; publish to live/{{userId}}/{{streamId}}?key=...")]
    KeyNeedsPath,
    #[error("the control plane refused this publish")]
    CallbackDenied,
    #[error("the control plane did not give a usable answer")]
    CallbackFailed,
    #[error("the key store is unavailable")]
    StoreUnavailable,
    #[error("no decision in time")]
    PolicyTimeout,
}

impl DenyReason {
    /// Label for metrics and logs (bounded set).
    pub fn label(self) -> &'static str {
        match self {
            DenyReason::MissingCredential => "missing_credential",
            DenyReason::BadPath => "bad_path",
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::KeyExpired => "key_expired",
            DenyReason::WrongStream => "wrong_stream",
            DenyReason::IpNotAllowed => "ip_not_allowed",
            DenyReason::BadToken => "bad_token",
            DenyReason::TokenExpired => "token_expired",
            DenyReason::TokenTooLong => "token_too_long",
            DenyReason::KeyNeedsPath => "key_needs_path",
            DenyReason::CallbackDenied => "callback_denied",
            DenyReason::CallbackFailed => "callback_failed",
            DenyReason::StoreUnavailable => "store_unavailable",
            DenyReason::PolicyTimeout => "policy_timeout",
        }
    }

    /// Every reason, for pre-registering metric label values.
    pub const ALL: [DenyReason; 14] = [
        DenyReason::MissingCredential,
        DenyReason::BadPath,
        DenyReason::UnknownKey,
        DenyReason::KeyExpired,
        DenyReason::WrongStream,
        DenyReason::IpNotAllowed,
        DenyReason::BadToken,
        DenyReason::TokenExpired,
        DenyReason::TokenTooLong,
        DenyReason::KeyNeedsPath,
        DenyReason::CallbackDenied,
        DenyReason::CallbackFailed,
        DenyReason::StoreUnavailable,
        DenyReason::PolicyTimeout,
    ];
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish to this stream (for a bare key, the path comes from the key's metadata).
    Allow(StreamPath),
    Deny(DenyReason),
}

/// A future a policy returns.
pub type DecisionFuture<'a> = Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

/// Decides whether a publish may go ahead. Consulted by the ingest shell after the client
/// sent `publish` and before the publish is accepted, on every attempt (a reconnect within the
/// grace period is decided again). A policy never sees media and never blocks other
/// connections; the shell bounds how long it waits.
pub trait PublishPolicy: Send + Sync + 'static {
    /// `open`, `keys`, `token` or `callback` (a metric label).
    fn mode(&self) -> &'static str;

    fn authorize<'a>(&'a self, req: &'a PublishRequest) -> DecisionFuture<'a>;
}

/// Anyone may publish to `live/{userId}/{streamId}`; a bare `live/{name}` is refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenPolicy;

impl PublishPolicy for OpenPolicy {
    fn mode(&self) -> &'static str {
        "open"
    }

    fn authorize<'a>(&'a self, req: &'a PublishRequest) -> DecisionFuture<'a> {
        let d = match &req.name {
            PublishName::Stream(p) => Decision::Allow(p.clone()),
            PublishName::Bare(_) => Decision::Deny(DenyReason::BadPath),
        };
        Box::pin(std::future::ready(d))
    }
}

/// `ip` with an IPv4-mapped IPv6 address turned into the IPv4 address, so allowlists and
/// tokens written with IPv4 addresses match clients of a dual-stack listener.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses an allowlist entry: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
}

/// True when `nets` is empty (no restriction) or one of them contains `ip`.
pub fn ip_allowed(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    nets.is_empty() || nets.iter().any(|n| n.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists() {
        let nets: Vec<_> = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
            .iter()
            .map(|s| parse_net(s).unwrap())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_allowed(&nets, ip("10.1.2.3")));
        assert!(ip_allowed(&nets, ip("192.168.1.7")));
        assert!(!ip_allowed(&nets, ip("192.168.1.8")));
        assert!(ip_allowed(&nets, ip("2001:db8::1")));
        assert!(!ip_allowed(&nets, ip("2001:db9::1")));
        // A dual-stack listener reports IPv4 clients as mapped addresses.
        assert!(ip_allowed(&nets, ip("::ffff:10.9.9.9")));
        assert!(ip_allowed(&[], ip("1.2.3.4")));
        // Host bits are ignored rather than refused.
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("example.com").is_err());
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = DenyReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), DenyReason::ALL.len());
    }

    #[test]
    fn bare_names_are_not_printed() {
        let r = PublishRequest {
            name: PublishName::Bare(BareName("sekrit".into())),
            credential: Some(Credential::Key("sekrit2".into())),
            client_ip: "127.0.0.1".parse().unwrap(),
        };
        assert!(!format!("{r:?}").contains("sekrit"));
    }
}
