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
    pub node: Node,
    pub fleet: Fleet,
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
    pub player: bool,
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
            player: false,
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
    pub prefixes: String,
    pub s3_url: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
    pub spool_max_bytes: u64,
    pub retention_days: u64,
    pub dash_files: bool,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            enabled: false,
            path: "./recordings".into(),
            prefixes: String::new(),
            s3_url: String::new(),
            s3_endpoint: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            spool_max_bytes: 2 << 30,
            retention_days: 0,
            dash_files: false,
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    pub id: String,
    pub rtmp_url: String,
    pub rtmps_url: String,
    pub http_url: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fleet {
    pub redis_url: String,
    pub max_streams: u64,
    pub heartbeat_ms: u64,
    pub drain_timeout_s: u64,
}

impl Default for Fleet {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            max_streams: 0,
            heartbeat_ms: 1000,
            drain_timeout_s: 3600,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    pub level: String,
    pub format: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
