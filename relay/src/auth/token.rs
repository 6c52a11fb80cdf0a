//! Publish tokens the cloud mints without calling the relay (CONTRACTS.md, "Publish token"):
//! `base64url(claims) "." base64url(HMAC-SHA256(secret, base64url(claims)))`, no padding, where
//! claims is compact JSON `{"u":userId,"s":streamId,"exp":unixSeconds}` plus an optional
//! `"ip"`. The MAC is computed over the claims exactly as they arrived, so the minting side
//! may order the JSON fields as it likes.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::DenyReason;
use crate::path::StreamPath;

/// Longest token accepted. ffmpeg refuses RTMP URLs over 1024 bytes; a token for a 64-char
/// email, a 36-char stream id and an IPv6 address is about 260 bytes.
pub const MAX_TOKEN_LEN: usize = 600;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub u: String,
    pub s: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

fn mac(secret: &[u8], signed: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(signed);
    m
}

/// Mints a token (what the cloud does; used by the CLI and the tests).
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_else(|_| unreachable!("plain struct"));
    let body = URL_SAFE_NO_PAD.encode(json);
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, body.as_bytes()).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// Checks a token for a publish to `path` from `client` at `now` (unix seconds). The MAC is
/// compared in constant time, before anything in the claims is trusted.
pub fn verify(
    secret: &[u8],
    token: &str,
    path: &StreamPath,
    client: IpAddr,
    now: u64,
) -> Result<Claims, DenyReason> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(DenyReason::TokenTooLong);
    }
    let (body, sig) = token.split_once('.').ok_or(DenyReason::BadToken)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| DenyReason::BadToken)?;
    mac(secret, body.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| DenyReason::BadToken)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| DenyReason::BadToken)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| DenyReason::BadToken)?;
    if claims.exp <= now {
        return Err(DenyReason::TokenExpired);
    }
    if claims.u != path.user_id || claims.s != path.stream_id {
        return Err(DenyReason::WrongStream);
    }
    if let Some(ip) = &claims.ip {
        let want: IpAddr = ip.parse().map_err(|_| DenyReason::BadToken)?;
        if super::canonical_ip(want) != super::canonical_ip(client) {
            return Err(DenyReason::IpNotAllowed);
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"test-secret";

    fn path(u: &str, s: &str) -> StreamPath {
        StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        }
    }

    fn claims(exp: u64, ip: Option<&str>) -> Claims {
        Claims {
            u: "alice@example.com".into(),
            s: "m1".into(),
            exp,
            ip: ip.map(String::from),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_contract_format() {
        let t = mint(SECRET, &claims(2_000_000_000, None));
        let (body, sig) = t.split_once('.').unwrap();
        assert!(!t.contains('='), "no padding");
        let json = URL_SAFE_NO_PAD.decode(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"u":"alice@example.com","s":"m1","exp":2000000000}"#
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap().len(), 32);
    }

    #[test]
    fn a_token_minted_by_other_code_verifies() {
        // Minted independently (Python: hmac.new(b"test-secret", body, sha256)), with the
        // fields in another order and an ip claim.
        let body = URL_SAFE_NO_PAD
            .encode(r#"{"exp":2000000000,"ip":"127.0.0.1","s":"m1","u":"alice@example.com"}"#);
        let sig = URL_SAFE_NO_PAD.encode(mac(SECRET, body.as_bytes()).finalize().into_bytes());
        let t = format!("{body}.{sig}");
        let c = verify(
            SECRET,
            &t,
            &path("alice@example.com", "m1"),
            ip("127.0.0.1"),
            1,
        )
        .unwrap();
        assert_eq!(c.ip.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn refusals() {
        let p = path("alice@example.com", "m1");
        let local = ip("127.0.0.1");
        let good = mint(SECRET, &claims(100, None));
        assert!(verify(SECRET, &good, &p, local, 99).is_ok());
        assert_eq!(
            verify(SECRET, &good, &p, local, 100),
            Err(DenyReason::TokenExpired)
        );
        assert_eq!(
            verify(b"other", &good, &p, local, 1),
            Err(DenyReason::BadToken)
        );
        assert_eq!(
            verify(SECRET, &good, &path("alice@example.com", "m2"), local, 1),
            Err(DenyReason::WrongStream)
        );
        assert_eq!(
            verify(SECRET, &good, &path("bob@example.com", "m1"), local, 1),
            Err(DenyReason::WrongStream)
        );
        let pinned = mint(SECRET, &claims(100, Some("10.0.0.1")));
        assert_eq!(
            verify(SECRET, &pinned, &p, local, 1),
            Err(DenyReason::IpNotAllowed)
        );
        assert!(verify(SECRET, &pinned, &p, ip("::ffff:10.0.0.1"), 1).is_ok());
        for bad in ["", ".", "abc", "abc.def", "a.b.c", "!!!.???"] {
            assert_eq!(
                verify(SECRET, bad, &p, local, 1),
                Err(DenyReason::BadToken),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            verify(SECRET, &long, &p, local, 1),
            Err(DenyReason::TokenTooLong)
        );
        // A realistic worst case stays well under ffmpeg's 1024-byte URL limit.
        let big = mint(
            SECRET,
            &Claims {
                u: format!("{}@example.com", "x".repeat(52)),
                s: "0".repeat(36),
                exp: u64::from(u32::MAX),
                ip: Some("2001:db8:1234:5678:9abc:def0:1234:5678".into()),
            },
        );
        assert!(big.len() < 300, "{}", big.len());
    }

    proptest! {
        /// Flipping any byte of a valid token makes it invalid (never accepted as another
        /// stream's or a longer-lived token).
        #[test]
        fn tampering_is_detected(pos in 0usize..200, byte in any::<u8>()) {
            let p = path("alice@example.com", "m1");
            let t = mint(SECRET, &claims(1000, None));
            let mut b = t.clone().into_bytes();
            let i = pos % b.len();
            prop_assume!(b[i] != byte);
            b[i] = byte;
            let Ok(tampered) = String::from_utf8(b) else { return Ok(()); };
            let r = verify(SECRET, &tampered, &p, ip("127.0.0.1"), 1);
            // Base64 padding bits may absorb a change to the last character without
            // changing the decoded bytes; then it is the same token.
            if r.is_ok() {
                let (b1, s1) = t.split_once('.').unwrap();
                let (b2, s2) = tampered.split_once('.').unwrap();
                prop_assert_eq!(URL_SAFE_NO_PAD.decode(s1).ok(), URL_SAFE_NO_PAD.decode(s2).ok());
                prop_assert_eq!(b1, b2);
            }
        }

        #[test]
        fn round_trip(u in "[a-z0-9@.+-]{1,40}", s in "[A-Za-z0-9_-]{1,36}", exp in 1u64..u64::from(u32::MAX)) {
            let c = Claims { u: u.clone(), s: s.clone(), exp, ip: None };
            let t = mint(SECRET, &c);
            prop_assert_eq!(verify(SECRET, &t, &path(&u, &s), ip("127.0.0.1"), exp - 1), Ok(c));
        }
    }
}
