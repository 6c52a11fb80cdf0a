//! Configuration: built-in defaults, then the TOML file, then `GLASSCAST_<SECTION>_<KEY>`
//! environment variables, then command-line flags. Every problem is collected so the user
//! sees all of them at once.

mod auth;
pub mod delivery;
pub mod docs;
pub mod fleet;
mod layers;
pub mod prefix_rules;
pub mod record;
pub mod sections;

use auth::validate_auth;
pub use auth::{AuthMode, AuthSettings};

use std::net::SocketAddr;
use std::path::PathBuf;

pub use layers::Layered;
pub use sections::Sections;
use std::time::Duration;

/// Everything `glasscast serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub rtmp_listen: SocketAddr,
    pub rtmp_read_timeout: Duration,
    /// RTMPS listener; present when a certificate and key are configured.
    pub rtmps: Option<TlsListen>,
    pub http_listen: SocketAddr,
    pub http_tls: Option<TlsFiles>,
    /// Base of the absolute URLs given to the cloud; defaults to `http://{http_listen}`.
    pub public_url: Option<String>,
    pub part_target: Duration,
    pub segment_target: Duration,
    /// `PART-HOLD-BACK`; `None` = three part targets.
    pub part_hold_back: Option<Duration>,
    /// Hold plain media playlist requests for the part being made (`hls.fresh_playlist`).
    pub fresh_playlist: bool,
    /// Parts as byte ranges of their segment (`hls.byterange_parts`).
    pub byterange_parts: bool,
    pub window_segments: usize,
    pub ended_retention: Duration,
    pub reconnect_grace: Duration,
    pub restream_rules: Vec<relay::restream::restreamer::StaticRule>,
    /// Extra CA certificates (DER) for rtmps:// destinations.
    pub restream_ca: Vec<Vec<u8>>,
    pub restream_silent_audio: bool,
    /// What is recorded and where (`record.*`).
    pub record: record::RecordSettings,
    /// This node and its fleet (`node.*`, `fleet.*`).
    pub fleet: fleet::FleetSettings,
    /// Hosts the management API may add outputs to; empty = any.
    pub restream_allowed_hosts: Vec<String>,
    /// Present when `cloud.url` is set.
    pub cloud: Option<CloudSettings>,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub limits: Limits,
    pub delivery: delivery::DeliverySettings,
    pub managed: delivery::ManagedSettings,
    /// Label per-stream metrics with the stream path (unbounded label sets; off by default).
    pub per_stream_labels: bool,
    pub log_level: String,
    /// `log.format = "json"`: one JSON object per event.
    pub log_json: bool,
    /// `http.player`: the public player page.
    pub http_player: bool,
}

/// The admin listener (`admin.*`).
#[derive(Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// Bearer token of the management API; `None` = API on a loopback listener only.
    pub token: Option<String>,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Abuse limits (`rtmp.*` and `http.*` caps). `0` means no cap where noted.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rtmp_publish_deadline: Duration,
    pub rtmp_max_connections: usize,
    pub rtmp_max_connections_per_ip: usize,
    pub http_max_connections: usize,
    pub http_header_timeout: Duration,
    pub http_max_url_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct TlsListen {
    pub listen: SocketAddr,
    pub files: TlsFiles,
}

/// Control-plane settings (secrets are never logged).
#[derive(Clone)]
pub struct CloudSettings {
    pub url: String,
    pub token: Option<String>,
    pub hmac_secret: Option<String>,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub max_backlog: Duration,
}

impl std::fmt::Debug for CloudSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudSettings")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Values set on the command line (they win over everything else).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub rtmp_listen: Option<String>,
    pub http_listen: Option<String>,
    pub admin_listen: Option<String>,
    pub public_url: Option<String>,
}

/// Loads and validates: defaults, then `file` (name and TOML text, when a file was given),
/// then `env` (the process environment), then `flags`. Returns every problem found.
pub fn load(
    file: Option<(&str, &str)>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<Config, Vec<String>> {
    let (layered, mut errors) = layers::layer(
        file,
        env,
        &[
            ("rtmp", "listen", flags.rtmp_listen.as_ref()),
            ("http", "listen", flags.http_listen.as_ref()),
            ("admin", "listen", flags.admin_listen.as_ref()),
            ("http", "public_url", flags.public_url.as_ref()),
        ],
    );
    match validate(&layered) {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// Layers a configuration file's text alone (no environment, no flags); returns the layers and
/// the problems found.
pub fn layer_text(text: &str) -> (Layered, Vec<String>) {
    layers::layer(Some(("config", text)), std::iter::empty(), &[])
}

/// Parses a configuration file alone (no environment, no flags) into its sections.
pub fn from_str(text: &str) -> Result<Sections, Vec<String>> {
    let (layered, errors) = layer_text(text);
    if errors.is_empty() {
        Ok(layered.sections)
    } else {
        Err(errors)
    }
}

/// Turns sections into a [`Config`], checking every value and the rules between them (pure:
/// reads only the certificate and CA files it must check). Returns every problem at once.
pub fn validate(layered: &Layered) -> Result<Config, Vec<String>> {
    let mut errors = Vec::new();
    let c = &layered.sections;
    let addr = |errors: &mut Vec<String>, section: &str, key: &str, v: &str| -> SocketAddr {
        v.trim().parse().unwrap_or_else(|e| {
            errors.push(format!("{}: {e}", layered.describe(section, key, v)));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    };
    let count = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let rtmp_listen = addr(&mut errors, "rtmp", "listen", &c.rtmp.listen);
    let rtmp_read_timeout = Duration::from_millis(c.rtmp.read_timeout_ms);
    let rtmps_listen = addr(&mut errors, "rtmps", "listen", &c.rtmps.listen);
    let (rtmps_cert, rtmps_key) = (c.rtmps.cert.clone(), c.rtmps.key.clone());
    let http_listen = addr(&mut errors, "http", "listen", &c.http.listen);
    let public_url = c.http.public_url.clone();
    let (http_cert, http_key) = (c.http.tls_cert.clone(), c.http.tls_key.clone());
    let part_ms = c.hls.part_target_ms;
    let segment_ms = c.hls.segment_target_ms;
    let hold_back_ms = c.hls.part_hold_back_ms;
    let window_segments = count(c.hls.window_segments);
    let ended_retention_s = c.hls.ended_retention_s;
    let grace_ms = c.stream.reconnect_grace_ms;
    let rules_text = c.restream.rules.clone();
    let ca_file = c.restream.ca_file.clone();
    let restream_silent_audio = c.restream.silent_audio;
    let allowed_hosts = c.restream.allowed_hosts.clone();
    let cloud_url = c.cloud.url.clone();
    let cloud_token = c.cloud.token.clone();
    let cloud_secret = c.cloud.hmac_secret.clone();
    let cloud_timeout = c.cloud.timeout_ms;
    let cloud_poll = c.cloud.poll_interval_ms;
    let cloud_heartbeat = c.cloud.heartbeat_ms;
    let cloud_backlog = c.cloud.max_backlog_s;
    let log_level = c.log.level.clone();
    let log_json = match c.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            errors.push(format!(
                "log.format must be `text` or `json`, got `{other}`"
            ));
            false
        }
    };
    let http_player = c.http.player;
    let publish_deadline_ms = c.rtmp.publish_deadline_ms;
    let rtmp_max_connections = count(c.rtmp.max_connections);
    let rtmp_max_per_ip = count(c.rtmp.max_connections_per_ip);
    let http_max_connections = count(c.http.max_connections);
    let http_header_timeout_ms = c.http.header_timeout_ms;
    let http_max_url_bytes = count(c.http.max_url_bytes);
    let admin_listen = addr(&mut errors, "admin", "listen", &c.admin.listen);
    let admin_token = c.admin.token.clone();
    let auth_mode: AuthMode = c.auth.mode.parse().unwrap_or_else(|e| {
        errors.push(format!(
            "{}: {e}",
            layered.describe("auth", "mode", &c.auth.mode)
        ));
        AuthMode::Open
    });
    let allow_open = c.auth.allow_open;
    let token_secret = c.auth.token_secret.clone();
    let redis_url = c.auth.redis_url.clone();
    let keys_file = c.auth.keys_file.clone();
    let callback_timeout_ms = c.auth.callback_timeout_ms;
    let cache_allow_ms = c.auth.cache_allow_ms;
    let cache_deny_ms = c.auth.cache_deny_ms;
    let per_stream_labels = c.metrics.per_stream_labels;
    let (delivery, managed) = delivery::validate(layered, &mut errors);
    let record = record::validate(layered, &mut errors);
    let fleet = fleet::validate(layered, &mut errors);

    if !(50..=5000).contains(&part_ms) {
        errors.push(format!(
            "hls.part_target_ms must be between 50 and 5000, got {part_ms}"
        ));
    }
    if segment_ms < part_ms.saturating_mul(2) {
        errors.push(format!(
            "hls.segment_target_ms ({segment_ms}) must be at least twice hls.part_target_ms ({part_ms})"
        ));
    }
    if hold_back_ms != 0 && hold_back_ms < part_ms.saturating_mul(2) {
        errors.push(format!(
            "hls.part_hold_back_ms ({hold_back_ms}) must be at least twice hls.part_target_ms ({part_ms}), as LL-HLS requires (0 = three part targets)"
        ));
    }
    if segment_ms > 60_000 {
        errors.push(format!(
            "hls.segment_target_ms must be at most 60000, got {segment_ms}"
        ));
    }
    if window_segments < 6 {
        errors.push(format!(
            "hls.window_segments must be at least 6, got {window_segments}"
        ));
    }
    if rtmp_read_timeout < Duration::from_secs(1) {
        errors.push("rtmp.read_timeout_ms must be at least 1000".into());
    }
    let public_url = if public_url.is_empty() {
        None
    } else if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        errors.push(format!(
            "http.public_url must start with http:// or https://, got {public_url:?}"
        ));
        None
    } else {
        Some(public_url.trim_end_matches('/').to_string())
    };
    let rtmps = tls_pair(
        &mut errors,
        "rtmps.cert",
        &rtmps_cert,
        "rtmps.key",
        &rtmps_key,
    )
    .map(|files| TlsListen {
        listen: rtmps_listen,
        files,
    });
    let http_tls = tls_pair(
        &mut errors,
        "http.tls_cert",
        &http_cert,
        "http.tls_key",
        &http_key,
    );
    let cloud = if cloud_url.is_empty() {
        None
    } else {
        if !(cloud_url.starts_with("http://") || cloud_url.starts_with("https://")) {
            errors.push(format!(
                "cloud.url must start with http:// or https://, got {cloud_url:?}"
            ));
        }
        for (name, v, min) in [
            ("cloud.timeout_ms", cloud_timeout, 100),
            ("cloud.poll_interval_ms", cloud_poll, 100),
            ("cloud.heartbeat_ms", cloud_heartbeat, 100),
        ] {
            if v < min {
                errors.push(format!("{name} must be at least {min}, got {v}"));
            }
        }
        let opt = |s: String| (!s.is_empty()).then_some(s);
        Some(CloudSettings {
            url: cloud_url.trim_end_matches('/').to_string(),
            token: opt(cloud_token),
            hmac_secret: opt(cloud_secret),
            timeout: Duration::from_millis(cloud_timeout),
            poll_interval: Duration::from_millis(cloud_poll),
            heartbeat: Duration::from_millis(cloud_heartbeat),
            max_backlog: Duration::from_secs(cloud_backlog),
        })
    };
    let mut restream_rules = Vec::new();
    for (i, rule) in rules_text
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .enumerate()
    {
        match relay::restream::restreamer::StaticRule::parse(rule) {
            Ok(r) => restream_rules.push(r),
            // The rule text holds a stream key: report its position, not its content.
            Err(e) => errors.push(format!("restream.rules: rule {}: {e}", i + 1)),
        }
    }
    let mut restream_ca = Vec::new();
    if !ca_file.is_empty() {
        use rustls_pki_types::pem::PemObject;
        match read_small_file(&ca_file) {
            Ok(pem) => {
                for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                    match c {
                        Ok(c) => restream_ca.push(c.to_vec()),
                        Err(e) => errors.push(format!("restream.ca_file: {ca_file}: {e}")),
                    }
                }
            }
            Err(e) => errors.push(format!("restream.ca_file: cannot read {ca_file}: {e}")),
        }
    }

    let auth = AuthSettings {
        mode: auth_mode,
        token_secret: (!token_secret.is_empty()).then_some(token_secret),
        redis_url: (!redis_url.is_empty()).then_some(redis_url),
        keys_file: keys_file.into(),
        callback_timeout: Duration::from_millis(callback_timeout_ms),
        cache_allow: Duration::from_millis(cache_allow_ms),
        cache_deny: Duration::from_millis(cache_deny_ms),
    };
    validate_auth(
        &mut errors,
        &auth,
        allow_open,
        cloud.is_some(),
        std::iter::once(rtmp_listen).chain(rtmps.as_ref().map(|t| t.listen)),
    );
    if publish_deadline_ms < 1000 {
        errors.push("rtmp.publish_deadline_ms must be at least 1000".into());
    }
    if http_header_timeout_ms < 100 {
        errors.push("http.header_timeout_ms must be at least 100".into());
    }
    if http_max_url_bytes < 256 {
        errors.push(format!(
            "http.max_url_bytes must be at least 256, got {http_max_url_bytes}"
        ));
    }
    let admin = AdminSettings {
        listen: admin_listen,
        token: (!admin_token.is_empty()).then_some(admin_token),
    };
    let limits = Limits {
        rtmp_publish_deadline: Duration::from_millis(publish_deadline_ms),
        rtmp_max_connections,
        rtmp_max_connections_per_ip: rtmp_max_per_ip,
        http_max_connections,
        http_header_timeout: Duration::from_millis(http_header_timeout_ms),
        http_max_url_bytes,
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        rtmp_listen,
        rtmp_read_timeout,
        rtmps,
        http_listen,
        http_tls,
        public_url,
        part_target: Duration::from_millis(part_ms),
        segment_target: Duration::from_millis(segment_ms),
        part_hold_back: (hold_back_ms != 0).then(|| Duration::from_millis(hold_back_ms)),
        fresh_playlist: c.hls.fresh_playlist,
        byterange_parts: c.hls.byterange_parts,
        window_segments,
        ended_retention: Duration::from_secs(ended_retention_s),
        reconnect_grace: Duration::from_millis(grace_ms),
        restream_rules,
        restream_ca,
        restream_silent_audio,
        record,
        fleet,
        restream_allowed_hosts: allowed_hosts
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        cloud,
        auth,
        admin,
        limits,
        delivery,
        managed,
        per_stream_labels,
        log_level,
        log_json,
        http_player,
    })
}

/// Largest file the configuration reads (a CA bundle is tens of KiB).
const MAX_CONFIG_FILE: u64 = 4 << 20;

/// Reads a regular file of at most [`MAX_CONFIG_FILE`] bytes: a device or a pipe named by
/// mistake (`/dev/zero`) is an error, not a hang.
pub fn read_small_file(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut data = Vec::new();
    f.take(MAX_CONFIG_FILE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_CONFIG_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_CONFIG_FILE} bytes"
        )));
    }
    Ok(data)
}

fn tls_pair(
    errors: &mut Vec<String>,
    cn: &str,
    cert: &str,
    kn: &str,
    key: &str,
) -> Option<TlsFiles> {
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => None,
        (false, false) => {
            for (n, p) in [(cn, cert), (kn, key)] {
                if let Err(e) = std::fs::metadata(p) {
                    errors.push(format!("{n}: cannot read {p}: {e}"));
                }
            }
            Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            })
        }
        _ => {
            errors.push(format!("{cn} and {kn} must be set together"));
            None
        }
    }
}

#[cfg(test)]
mod tests;
