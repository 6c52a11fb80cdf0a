//! Who may publish (`auth.*`): the mode and its settings, and the checks that span sections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Who may publish (`auth.*`).
#[derive(Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// HMAC key of publish tokens (`token` mode).
    pub token_secret: Option<String>,
    /// Redis key store; `None` = the file store at `keys_file`.
    pub redis_url: Option<String>,
    pub keys_file: PathBuf,
    /// Timeout of one `authorize` call to the cloud (`callback` mode).
    pub callback_timeout: Duration,
    /// How long an allow / a refusal from the cloud is remembered.
    pub cache_allow: Duration,
    pub cache_deny: Duration,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("keys_file", &self.keys_file)
            .field("redis", &self.redis_url.is_some())
            .finish_non_exhaustive()
    }
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Open,
    Keys,
    Token,
    Callback,
}

impl AuthMode {
    /// The mode as written in the configuration.
    pub fn word(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Keys => "keys",
            AuthMode::Token => "token",
            AuthMode::Callback => "callback",
        }
    }
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(AuthMode::Open),
            "keys" => Ok(AuthMode::Keys),
            "token" => Ok(AuthMode::Token),
            "callback" => Ok(AuthMode::Callback),
            _ => Err("must be one of open, keys, token, callback".into()),
        }
    }
}

/// The auth section's rules that span sections: `open` only on loopback unless allowed,
/// each mode's requirements.
pub(super) fn validate_auth(
    errors: &mut Vec<String>,
    auth: &AuthSettings,
    allow_open: bool,
    has_cloud: bool,
    rtmp_listens: impl Iterator<Item = SocketAddr>,
) {
    match auth.mode {
        AuthMode::Open => {
            if !allow_open {
                for addr in rtmp_listens.filter(|a| !a.ip().is_loopback()) {
                    errors.push(format!(
                        "auth.mode = \"open\" lets anyone publish, and RTMP listens on {addr} (not loopback): \
                         choose auth.mode = keys, token or callback, or set auth.allow_open = true"
                    ));
                }
            }
        }
        AuthMode::Token => match &auth.token_secret {
            None => errors.push("auth.mode = \"token\" needs auth.token_secret".into()),
            Some(s) if s.len() < 16 => {
                errors.push("auth.token_secret must be at least 16 bytes".into())
            }
            Some(_) => {}
        },
        AuthMode::Callback => {
            if !has_cloud {
                errors.push("auth.mode = \"callback\" needs cloud.url".into());
            }
        }
        AuthMode::Keys => {}
    }
    if let Some(url) = &auth.redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        errors.push("auth.redis_url must start with redis:// or rediss://".into());
    }
    if auth.callback_timeout < Duration::from_millis(100) {
        errors.push("auth.callback_timeout_ms must be at least 100".into());
    }
}
