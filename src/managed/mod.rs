//! Managed streaming platforms (Option B, `seeds/002_*` and `seeds/004_*`): one interface,
//! [`Platform`], with Cloudflare Stream and AWS IVS behind it. A platform takes a publisher's
//! stream on its own RTMPS ingest and serves HLS/DASH from its CDN; the relay creates the
//! platform stream, forwards to it, and reports its URLs.
//!
//! Secrets (API tokens, stream keys) never appear in errors, `Debug` output or logs: an ingest
//! URL with its key is a [`relay::restream::destination::Destination`] once parsed.

pub mod cloudflare;
pub mod delivery;
pub mod ivs;
pub mod mode;
pub mod outputs;
pub mod platforms;
pub mod retry;
pub mod shell;
pub mod view;

use std::future::Future;
use std::pin::Pin;

use relay::path::StreamPath;

/// A stream created on a platform.
#[derive(Clone)]
pub struct PlatformStream {
    /// The platform's id (Cloudflare live input uid, IVS channel ARN).
    pub id: String,
    /// Where to push: `rtmps://host:port/app/STREAMKEY`. Secret.
    pub ingest_url: String,
}

impl std::fmt::Debug for PlatformStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Playback URLs of a live platform stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playback {
    pub hls: String,
    pub dash: Option<String>,
    pub webrtc: Option<String>,
}

/// Whether the platform receives the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveState {
    /// The platform receives media.
    Connected,
    /// Created, nothing arriving (yet, or any more).
    Idle,
    /// A state this relay does not know, as the platform named it.
    Other(String),
}

/// A platform stream's state and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformStatus {
    pub state: LiveState,
    /// Viewers, where the platform reports them.
    pub viewers: Option<u64>,
}

/// A simulcast output the platform pushes to (its key is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformOutput {
    pub id: String,
    /// The destination URL without its stream key.
    pub url: String,
    pub enabled: bool,
}

/// What went wrong talking to a platform. Messages name the platform and never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("{platform} rejected the credentials: {message}")]
    Credentials {
        platform: &'static str,
        message: String,
    },
    #[error("{platform} is not configured (set {settings})")]
    NotConfigured {
        platform: &'static str,
        settings: &'static str,
    },
    #[error("{platform}: not found")]
    NotFound { platform: &'static str },
    #[error("{platform} is rate limiting this relay: {message}")]
    RateLimited {
        platform: &'static str,
        message: String,
    },
    #[error("{platform} refused the request (HTTP {status}): {message}")]
    Refused {
        platform: &'static str,
        status: u16,
        message: String,
    },
    #[error("{platform} is unavailable: {message}")]
    Unavailable {
        platform: &'static str,
        message: String,
    },
    #[error("{platform} does not support {what}")]
    Unsupported {
        platform: &'static str,
        what: &'static str,
    },
}

pub type PlatformFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, PlatformError>> + Send + 'a>>;

/// One managed streaming platform.
pub trait Platform: Send + Sync + 'static {
    /// `Cloudflare Stream`, `AWS IVS`: for messages.
    fn name(&self) -> &'static str;
    /// Creates the platform stream for `path`, marked as this relay's.
    fn create(&self, path: &StreamPath) -> PlatformFuture<'_, PlatformStream>;
    /// Deletes it (an already deleted stream is not an error).
    fn end(&self, id: &str) -> PlatformFuture<'_, ()>;
    /// Playback URLs, once the platform serves the stream (`None` before).
    fn playback(&self, id: &str) -> PlatformFuture<'_, Option<Playback>>;
    fn status(&self, id: &str) -> PlatformFuture<'_, PlatformStatus>;
    /// True when the platform answers with these credentials.
    fn health(&self) -> PlatformFuture<'_, ()>;
    /// True when the platform pushes to simulcast outputs itself (Cloudflare); otherwise our
    /// own pushers carry the stream's destinations (IVS).
    fn has_outputs(&self) -> bool;
    /// Simulcast: the platform pushes the stream to `url` (`rtmp[s]://host/app/KEY`).
    fn add_output(&self, id: &str, url: &str) -> PlatformFuture<'_, PlatformOutput>;
    fn set_output_enabled(&self, id: &str, output: &str, enabled: bool) -> PlatformFuture<'_, ()>;
    fn remove_output(&self, id: &str, output: &str) -> PlatformFuture<'_, ()>;
    fn outputs(&self, id: &str) -> PlatformFuture<'_, Vec<PlatformOutput>>;
    /// Deletes streams this relay created that are older than `min_age` and idle (left over
    /// by a crash); returns their ids.
    fn cleanup_orphans(&self, min_age: std::time::Duration) -> PlatformFuture<'_, Vec<String>>;
}

/// Splits `rtmp[s]://host[:port]/app/KEY` into the URL without the key and the key, as the
/// platforms want them (Cloudflare: separate `url` and `streamKey`).
pub fn split_key(url: &str) -> Result<(String, String), String> {
    relay::restream::destination::Destination::parse(url).map_err(|e| e.to_string())?;
    let (base, key) = url
        .rsplit_once('/')
        .ok_or_else(|| "destination URL has no stream key".to_string())?;
    Ok((base.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_split_off() {
        assert_eq!(
            super::split_key("rtmp://a.rtmp.youtube.com/live2/abcd-efgh").unwrap(),
            ("rtmp://a.rtmp.youtube.com/live2".into(), "abcd-efgh".into())
        );
        assert_eq!(
            super::split_key("rtmps://live.twitch.tv:443/app/live_123").unwrap(),
            ("rtmps://live.twitch.tv:443/app".into(), "live_123".into())
        );
        let e = super::split_key("http://x/app/SECRET").unwrap_err();
        assert!(!e.contains("SECRET"));
    }
}
