//! What each configuration key means, one line per key (the README's reference and the
//! tests that keep it complete read it); the keys and their defaults are in [`super::sections`].

/// What each key means, in README order (the defaults come from the section structs).
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
        "http",
        "player",
        "serve a public hls.js player page at /live/{userId}/{streamId}/ (cacheable)",
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
        "directory of the recordings: {userId}/{streamId}/{recordingId}/index.m3u8; with s3_url, the spool",
    ),
    (
        "record",
        "prefixes",
        "per-path rules over `enabled`: `live/alice/ -> on; live/test/ -> off` (longest prefix wins; the cloud's `record` wins over both)",
    ),
    (
        "record",
        "s3_url",
        "`s3://BUCKET/PREFIX`: recordings go to S3-compatible storage (empty: the local directory only)",
    ),
    (
        "record",
        "s3_endpoint",
        "endpoint of R2, MinIO, … (empty: AWS S3)",
    ),
    (
        "record",
        "s3_region",
        "region of the bucket (`auto` for R2)",
    ),
    (
        "record",
        "s3_access_key_id",
        "access key id (empty: the environment's AWS credentials)",
    ),
    ("record", "s3_secret_access_key", "secret access key"),
    (
        "record",
        "spool_max_bytes",
        "most media waiting on disk for the bucket; beyond it the oldest recording's waiting files are given up",
    ),
    (
        "record",
        "retention_days",
        "delete recordings older than this, locally and in the bucket (0: keep)",
    ),
    (
        "record",
        "dash_files",
        "also store the per-track segments `index.mpd` names, so it plays straight from the directory or bucket (twice the bytes); off: it plays through the origin",
    ),
    (
        "node",
        "id",
        "this node's name in the fleet (empty: the host name)",
    ),
    (
        "node",
        "rtmp_url",
        "where publishers reach this node, `rtmp://host:port` (empty: the RTMP listen address)",
    ),
    (
        "node",
        "rtmps_url",
        "the same over TLS, `rtmps://host:port` (empty: none, or the RTMPS listen address)",
    ),
    (
        "node",
        "http_url",
        "where the other nodes reach this node's origin (empty: the HTTP listen address)",
    ),
    (
        "fleet",
        "redis_url",
        "Redis shared by the fleet (membership, stream directory); empty = a single node",
    ),
    (
        "fleet",
        "max_streams",
        "streams placement sends here at most (0 = no cap)",
    ),
    (
        "fleet",
        "heartbeat_ms",
        "how often the node announces itself and its streams (entries live three times this)",
    ),
    (
        "fleet",
        "drain_timeout_s",
        "a draining node (SIGUSR1) stops this long after draining began even if streams remain",
    ),
    ("log", "level", "tracing filter (RUST_LOG wins when set)"),
    (
        "log",
        "format",
        "`text` (human-readable) or `json` (one object per event with its span fields, for Loki or Elasticsearch)",
    ),
];
