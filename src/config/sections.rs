//! The configuration file's shape: one serde struct per `[section]`, each field with its
//! default. These are raw values (addresses and modes as text, durations in ms); turning them
//! into a [`super::Config`] and checking them is [`super::validate`]'s job.

use serde::{Deserialize, Serialize};

/// Every section. `Debug` is not derived: sections hold secrets.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sections {
    pub rtmp: Rtmp,
    pub rtmps: Rtmps,
    pub http: Http,
    pub admin: Admin,
    pub auth: Auth,
    pub metrics: Metrics,
    pub hls: Hls,
    pub stream: Stream,
    pub restream: Restream,
    pub cloud: Cloud,
    pub delivery: Delivery,
    pub managed: Managed,
    pub record: Record,
    pub log: Log,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtmp {
    pub listen: String,
    pub read_timeout_ms: u64,
    pub publish_deadline_ms: u64,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
}

impl Default for Rtmp {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:1935".into(),
            read_timeout_ms: 10_000,
            publish_deadline_ms: 10_000,
            max_connections: 1000,
            max_connections_per_ip: 50,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rtmps {
    pub listen: String,
    pub cert: String,
    pub key: String,
}

impl Default for Rtmps {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:1936".into(),
            cert: String::new(),
            key: String::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub listen: String,
    pub public_url: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub max_connections: u64,
    pub header_timeout_ms: u64,
    pub max_url_bytes: u64,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8888".into(),
            public_url: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_connections: 10_000,
            header_timeout_ms: 10_000,
            max_url_bytes: 4096,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    pub listen: String,
    pub token: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9997".into(),
            token: String::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub mode: String,
    pub allow_open: bool,
    pub token_secret: String,
    pub redis_url: String,
    pub keys_file: String,
    pub callback_timeout_ms: u64,
    pub cache_allow_ms: u64,
    pub cache_deny_ms: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            mode: "open".into(),
            allow_open: false,
            token_secret: String::new(),
            redis_url: String::new(),
            keys_file: "glasscast-keys.json".into(),
            callback_timeout_ms: 2000,
            cache_allow_ms: 30_000,
            cache_deny_ms: 5000,
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    pub per_stream_labels: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hls {
    pub part_target_ms: u64,
    pub segment_target_ms: u64,
    pub window_segments: u64,
    pub ended_retention_s: u64,
    pub part_hold_back_ms: u64,
    pub fresh_playlist: bool,
    pub byterange_parts: bool,
}

impl Default for Hls {
    fn default() -> Self {
        Self {
            part_target_ms: 200,
            segment_target_ms: 2000,
            window_segments: 12,
            ended_retention_s: 120,
            part_hold_back_ms: 0,
            fresh_playlist: true,
            byterange_parts: false,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stream {
    pub reconnect_grace_ms: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            reconnect_grace_ms: 30_000,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Restream {
    pub rules: String,
    pub silent_audio: bool,
    pub ca_file: String,
    pub allowed_hosts: String,
}

impl Default for Restream {
    fn default() -> Self {
        Self {
            rules: String::new(),
            silent_audio: true,
            ca_file: String::new(),
            allowed_hosts: String::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cloud {
    pub url: String,
    pub token: String,
    pub hmac_secret: String,
    pub timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub heartbeat_ms: u64,
    pub max_backlog_s: u64,
}

impl Default for Cloud {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: String::new(),
            hmac_secret: String::new(),
            timeout_ms: 3000,
            poll_interval_ms: 15_000,
            heartbeat_ms: 10_000,
            max_backlog_s: 300,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delivery {
    pub mode: String,
    pub fallback_to_self: bool,
    pub prefixes: String,
    pub ab_platform: String,
    pub poll_interval_ms: u64,
    pub live_timeout_s: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            mode: "self".into(),
            fallback_to_self: true,
            prefixes: String::new(),
            ab_platform: "cloudflare".into(),
            poll_interval_ms: 2000,
            live_timeout_s: 60,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Managed {
    pub tag: String,
    pub timeout_ms: u64,
    pub orphan_age_s: u64,
    pub cloudflare: ManagedCloudflare,
    pub ivs: ManagedIvs,
}

impl Default for Managed {
    fn default() -> Self {
        Self {
            tag: "glasscast".into(),
            timeout_ms: 10_000,
            orphan_age_s: 3600,
            cloudflare: ManagedCloudflare::default(),
            ivs: ManagedIvs::default(),
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagedCloudflare {
    pub api_url: String,
    pub api_token: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagedIvs {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub latency_mode: String,
    pub ingest_port: u64,
}

impl Default for ManagedIvs {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            latency_mode: "LOW".into(),
            ingest_port: 443,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Record {
    pub enabled: bool,
    pub path: String,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "./recordings".into(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// What each key means, in README order (the defaults come from the structs above).
pub const DOCS: &[(&str, &str, &str)] = &[
    (
        "rtmp",
        "listen",
        "RTMP listen address (port 0 picks a free port)",
    ),
    (
        "rtmp",
        "read_timeout_ms",
        "close a connection that sends nothing for this long",
    ),
    (
        "rtmp",
        "publish_deadline_ms",
        "close a connection that has not started publishing this long after connecting",
    ),
    (
        "rtmp",
        "max_connections",
        "concurrent RTMP(S) connections in total (0 = no cap)",
    ),
    (
        "rtmp",
        "max_connections_per_ip",
        "concurrent RTMP(S) connections from one client address (0 = no cap)",
    ),
    (
        "rtmps",
        "listen",
        "RTMPS listen address (only with cert and key)",
    ),
    ("rtmps", "cert", "PEM certificate chain for RTMPS ingest"),
    ("rtmps", "key", "PEM private key for RTMPS ingest"),
    ("http", "listen", "HTTP origin listen address"),
    (
        "http",
        "public_url",
        "absolute base URL viewers use (default http://LISTEN)",
    ),
    (
        "http",
        "tls_cert",
        "PEM certificate chain: serve HTTPS with HTTP/2 (ALPN)",
    ),
    ("http", "tls_key", "PEM private key for HTTPS"),
    (
        "http",
        "max_connections",
        "concurrent HTTP connections (0 = no cap)",
    ),
    (
        "http",
        "header_timeout_ms",
        "a request whose headers take longer than this is dropped (slowloris)",
    ),
    (
        "http",
        "max_url_bytes",
        "longest request target (path and query) accepted; longer gets 414",
    ),
    (
        "admin",
        "listen",
        "admin listener: /metrics, /healthz, the management API under /v1",
    ),
    (
        "admin",
        "token",
        "bearer token of the management API (empty: API only on a loopback admin listener)",
    ),
    (
        "auth",
        "mode",
        "who may publish: `open`, `keys`, `token` or `callback`",
    ),
    (
        "auth",
        "allow_open",
        "allow `open` mode on a non-loopback RTMP address",
    ),
    (
        "auth",
        "token_secret",
        "HMAC-SHA256 secret of publish tokens (`token` mode; at least 16 bytes)",
    ),
    (
        "auth",
        "redis_url",
        "Redis key store (`redis://host:port/db`); empty = the file store",
    ),
    ("auth", "keys_file", "file key store (written atomically)"),
    (
        "auth",
        "callback_timeout_ms",
        "timeout of one authorize call to the cloud (`callback` mode)",
    ),
    (
        "auth",
        "cache_allow_ms",
        "how long the cloud's allow is remembered for the same stream, credential and address",
    ),
    (
        "auth",
        "cache_deny_ms",
        "how long the cloud's refusal is remembered",
    ),
    (
        "metrics",
        "per_stream_labels",
        "label per-destination restream metrics with the stream path",
    ),
    ("hls", "part_target_ms", "LL-HLS part target duration"),
    (
        "hls",
        "part_hold_back_ms",
        "PART-HOLD-BACK; 0 = three part targets (at least two)",
    ),
    (
        "hls",
        "fresh_playlist",
        "answer a playlist request without _HLS_msn when the part being made completes",
    ),
    (
        "hls",
        "byterange_parts",
        "list parts as byte ranges of their segment instead of files of their own",
    ),
    (
        "hls",
        "segment_target_ms",
        "segment target (cut at the first IDR after it)",
    ),
    (
        "hls",
        "window_segments",
        "segments listed in the playlist (at least 6)",
    ),
    (
        "hls",
        "ended_retention_s",
        "how long an ended stream stays fetchable",
    ),
    (
        "stream",
        "reconnect_grace_ms",
        "a publisher reconnecting within this continues the same stream",
    ),
    (
        "restream",
        "rules",
        "static destinations, `PATH_PREFIX -> rtmp[s]://host/app/key`, separated by `;`",
    ),
    (
        "restream",
        "silent_audio",
        "give video-only sources a silent AAC track at destinations (YouTube flags streams without audio)",
    ),
    (
        "restream",
        "ca_file",
        "extra PEM CA trusted for rtmps:// destinations (besides the webpki roots)",
    ),
    (
        "restream",
        "allowed_hosts",
        "hosts apps may add outputs to through the API, comma-separated (`.example.com` = its subdomains); empty = any",
    ),
    (
        "cloud",
        "url",
        "control-plane base URL; empty = no cloud (static restream rules only)",
    ),
    ("cloud", "token", "bearer token sent to the cloud"),
    (
        "cloud",
        "hmac_secret",
        "key for X-Glasscast-Signature (HMAC-SHA256 of each body)",
    ),
    ("cloud", "timeout_ms", "timeout of one cloud request"),
    (
        "cloud",
        "poll_interval_ms",
        "how often a live stream's destinations are re-read",
    ),
    (
        "cloud",
        "heartbeat_ms",
        "stream-status heartbeat while live",
    ),
    (
        "cloud",
        "max_backlog_s",
        "reports older than this are dropped while the cloud is down",
    ),
    (
        "delivery",
        "mode",
        "who serves viewers: `self` (our origin), `cloudflare`, `ivs`, or `ab` (ours and a platform side by side); the cloud's `mode` wins per stream",
    ),
    (
        "delivery",
        "fallback_to_self",
        "serve from our origin when the platform stream cannot be created (said in stream-status)",
    ),
    (
        "delivery",
        "prefixes",
        "per path prefix modes, `PATH_PREFIX -> MODE`, separated by `;` (longest prefix wins)",
    ),
    (
        "delivery",
        "ab_platform",
        "the platform of `ab` mode: `cloudflare` or `ivs`",
    ),
    (
        "delivery",
        "poll_interval_ms",
        "how often a new platform stream is asked whether it serves playback",
    ),
    (
        "delivery",
        "live_timeout_s",
        "report an error when the platform serves no playback this long after forwarding began",
    ),
    (
        "managed",
        "tag",
        "marks platform streams this relay creates (orphan cleanup touches only these)",
    ),
    (
        "managed",
        "timeout_ms",
        "timeout of one platform API request",
    ),
    (
        "managed",
        "orphan_age_s",
        "at start, delete our idle platform streams older than this (left by a crash)",
    ),
    (
        "managed.cloudflare",
        "api_url",
        "Stream API base, `https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID/stream`",
    ),
    (
        "managed.cloudflare",
        "api_token",
        "Cloudflare API token with Stream edit permission",
    ),
    (
        "managed.ivs",
        "endpoint",
        "IVS API endpoint; empty = `https://ivs.REGION.amazonaws.com`",
    ),
    ("managed.ivs", "region", "AWS region of the IVS channels"),
    ("managed.ivs", "access_key_id", "AWS access key id (SigV4)"),
    ("managed.ivs", "secret_access_key", "AWS secret access key"),
    (
        "managed.ivs",
        "latency_mode",
        "`LOW` or `NORMAL` (IVS channel latency mode)",
    ),
    (
        "managed.ivs",
        "ingest_port",
        "port of the channel's RTMPS ingest endpoint",
    ),
    (
        "record",
        "enabled",
        "record every broadcast (its HLS segments, as made)",
    ),
    (
        "record",
        "path",
        "directory of the recordings: {userId}/{streamId}/{session}/index.m3u8",
    ),
    ("log", "level", "tracing filter (RUST_LOG wins when set)"),
];
