//! Recording settings (`record.*`), checked as a whole.

use std::path::PathBuf;
use std::time::Duration;

use super::layers::Layered;

/// Where and what to record.
#[derive(Clone, Debug)]
pub struct RecordSettings {
    /// Record streams no rule names (`record.enabled`).
    pub enabled: bool,
    /// The recording directory; with object storage, the spool.
    pub path: PathBuf,
    /// `(path prefix, record?)`: the longest matching prefix decides over `enabled`.
    pub prefixes: Vec<(String, bool)>,
    pub s3: Option<S3Settings>,
    /// Most media bytes waiting for object storage before the oldest recording is given up.
    pub spool_max_bytes: u64,
    /// Recordings older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
    /// Also store the per-track segments the DASH manifest names (`record.dash_files`).
    pub dash_files: bool,
}

impl RecordSettings {
    /// Whether any stream may be recorded without the cloud asking.
    pub fn any(&self) -> bool {
        self.enabled || self.prefixes.iter().any(|(_, on)| *on)
    }

    /// Whether `path` is recorded by the configuration (the cloud may overrule it).
    pub fn for_path(&self, path: &relay::path::StreamPath) -> bool {
        super::prefix_rules::lookup(&self.prefixes, path)
            .copied()
            .unwrap_or(self.enabled)
    }
}

/// An S3-compatible bucket (`record.s3_*`). Secrets are never logged.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix inside the bucket, without slashes at either end ("" = the bucket's root).
    pub prefix: String,
    /// Empty = AWS; otherwise the endpoint of R2, MinIO, …
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

pub fn validate(layered: &Layered, errors: &mut Vec<String>) -> RecordSettings {
    let r = &layered.sections.record;
    let mut prefixes = Vec::new();
    for rule in r
        .prefixes
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        match rule.split_once("->").map(|(p, v)| (p.trim(), v.trim())) {
            Some((p, "on")) => prefixes.push((p.to_string(), true)),
            Some((p, "off")) => prefixes.push((p.to_string(), false)),
            _ => errors.push(format!(
                "record.prefixes: {rule:?} is not `PATH_PREFIX -> on` or `PATH_PREFIX -> off`"
            )),
        }
    }
    let s3 = if r.s3_url.is_empty() {
        None
    } else {
        match r.s3_url.strip_prefix("s3://") {
            Some(rest) if !rest.trim_matches('/').is_empty() => {
                let rest = rest.trim_matches('/');
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if r.s3_access_key_id.is_empty() != r.s3_secret_access_key.is_empty() {
                    errors.push(
                        "record.s3_access_key_id and record.s3_secret_access_key must be set together"
                            .into(),
                    );
                }
                let e = &r.s3_endpoint;
                if !(e.is_empty() || e.starts_with("https://") || e.starts_with("http://")) {
                    errors.push(format!(
                        "{}: must start with https:// or http://",
                        layered.describe("record", "s3_endpoint", &r.s3_endpoint)
                    ));
                }
                Some(S3Settings {
                    bucket: bucket.to_string(),
                    prefix: prefix.trim_matches('/').to_string(),
                    endpoint: r.s3_endpoint.trim_end_matches('/').to_string(),
                    region: r.s3_region.clone(),
                    access_key_id: r.s3_access_key_id.clone(),
                    secret_access_key: r.s3_secret_access_key.clone(),
                })
            }
            _ => {
                errors.push(format!(
                    "{}: must be s3://BUCKET or s3://BUCKET/PREFIX",
                    layered.describe("record", "s3_url", &r.s3_url)
                ));
                None
            }
        }
    };
    if r.path.is_empty() {
        errors.push("record.path must not be empty".into());
    }
    if r.spool_max_bytes < 16 << 20 {
        errors.push(format!(
            "record.spool_max_bytes must be at least 16 MiB (16777216), got {}",
            r.spool_max_bytes
        ));
    }
    RecordSettings {
        enabled: r.enabled,
        path: PathBuf::from(&r.path),
        prefixes,
        s3,
        spool_max_bytes: r.spool_max_bytes,
        retention: (r.retention_days > 0)
            .then(|| Duration::from_secs(r.retention_days.saturating_mul(86_400))),
        dash_files: r.dash_files,
    }
}
