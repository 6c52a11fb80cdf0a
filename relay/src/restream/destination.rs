//! Restream destination URLs: `rtmp[s]://host[:port]/app[/more]/streamKey`.
//!
//! The stream key is a secret: it never appears in `Debug`, in [`Destination::masked_url`] or
//! in any error message from here.

use std::fmt;

/// Parsed destination.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// RTMP application, e.g. `live2` (YouTube) or `app` (Twitch).
    pub app: String,
    /// The stream name sent in `publish`, usually the stream key. Secret.
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("destination URL must start with rtmp:// or rtmps://")]
    Scheme,
    #[error("destination URL has no host")]
    Host,
    #[error("destination URL has an invalid port")]
    Port,
    #[error("destination URL must be rtmp[s]://host/app/streamKey (no app or no stream key)")]
    Path,
}

impl Destination {
    pub fn parse(url: &str) -> Result<Self, DestinationError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("rtmps://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("rtmp://") {
            (false, r)
        } else {
            return Err(DestinationError::Scheme);
        };
        let (authority, path) = rest.split_once('/').ok_or(DestinationError::Path)?;
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(DestinationError::Host)?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(DestinationError::Host);
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| DestinationError::Port)?,
            None if tls => 443,
            None => 1935,
        };
        let (app, key) = path.rsplit_once('/').ok_or(DestinationError::Path)?;
        if app.is_empty() || key.is_empty() {
            return Err(DestinationError::Path);
        }
        Ok(Self {
            tls,
            host,
            port,
            app: app.to_string(),
            key: key.to_string(),
        })
    }

    /// The stream key (for the `publish` command only).
    pub fn key(&self) -> &str {
        &self.key
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "rtmps" } else { "rtmp" }
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `tcUrl` sent in `connect`: everything but the stream key.
    pub fn tc_url(&self) -> String {
        format!("{}://{}/{}", self.scheme(), self.authority(), self.app)
    }

    /// A stable identifier for this destination (scheme, address, app and key): 12 hex digits
    /// of a SHA-256, so two destinations differing only in their keys get different ids while
    /// the key cannot be recovered from it.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(self.tc_url().as_bytes())
            .chain_update(b"/")
            .chain_update(self.key.as_bytes())
            .finalize();
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The URL with the stream key replaced by `***`, safe for logs, metrics and APIs.
    pub fn masked_url(&self) -> String {
        format!("{}/***", self.tc_url())
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn youtube_twitch_and_friends() {
        let yt = Destination::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl").unwrap();
        assert_eq!(
            (yt.host.as_str(), yt.port, yt.app.as_str(), yt.key()),
            ("a.rtmp.youtube.com", 1935, "live2", "abcd-efgh-ijkl")
        );
        assert_eq!(yt.tc_url(), "rtmp://a.rtmp.youtube.com:1935/live2");
        assert_eq!(yt.masked_url(), "rtmp://a.rtmp.youtube.com:1935/live2/***");
        let yts = Destination::parse("rtmps://a.rtmps.youtube.com:443/live2/KEY").unwrap();
        assert!(yts.tls);
        assert_eq!(yts.port, 443);
        let tw = Destination::parse("rtmps://live.twitch.tv/app/live_123_abc?bandwidthtest=true")
            .unwrap();
        assert_eq!(
            (tw.port, tw.app.as_str(), tw.key()),
            (443, "app", "live_123_abc?bandwidthtest=true")
        );
        let nested = Destination::parse("rtmp://127.0.0.1:19350/live/u/key").unwrap();
        assert_eq!((nested.app.as_str(), nested.key()), ("live/u", "key"));
        let v6 = Destination::parse("rtmp://[::1]:1935/live/k").unwrap();
        assert_eq!(v6.tc_url(), "rtmp://[::1]:1935/live");
    }

    #[test]
    fn errors_and_secrecy() {
        assert_eq!(
            Destination::parse("http://x/a/k"),
            Err(DestinationError::Scheme)
        );
        assert_eq!(
            Destination::parse("rtmp:///a/k"),
            Err(DestinationError::Host)
        );
        assert_eq!(
            Destination::parse("rtmp://x:99999/a/k"),
            Err(DestinationError::Port)
        );
        assert_eq!(
            Destination::parse("rtmp://x/onlyapp"),
            Err(DestinationError::Path)
        );
        assert_eq!(
            Destination::parse("rtmp://x/app/"),
            Err(DestinationError::Path)
        );
        let d = Destination::parse("rtmp://x/app/SECRET").unwrap();
        assert!(!format!("{d:?}").contains("SECRET"));
        let other = Destination::parse("rtmp://x/app/OTHER").unwrap();
        assert_eq!(d.masked_url(), other.masked_url());
        assert_ne!(
            d.id(),
            other.id(),
            "same masked URL, different keys: different ids"
        );
        assert_eq!(d.id().len(), 12);
        assert!(!d.masked_url().contains("SECRET"));
    }
}
