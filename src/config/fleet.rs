//! This node's identity (`node.*`) and the fleet it belongs to (`fleet.*`), checked as a
//! whole. Without `fleet.redis_url` the node is on its own, exactly as before fleets existed.

use std::time::Duration;

use super::layers::Layered;

/// Who this node is and how it joins the fleet.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    /// `node.id`; empty = the host name.
    pub node_id: String,
    /// `node.rtmp_url`, `node.rtmps_url`, `node.http_url`: where publishers and other nodes
    /// reach this one; empty = the listen addresses.
    pub rtmp_url: String,
    pub rtmps_url: String,
    pub http_url: String,
    /// `fleet.redis_url`; `None` = a single node.
    pub redis_url: Option<String>,
    /// `fleet.max_streams` (0 = no cap).
    pub max_streams: u64,
    /// How often the node announces itself and its streams; entries live three times this.
    pub heartbeat: Duration,
    /// `fleet.drain_timeout_s`: how long a draining node waits for its streams to end.
    pub drain_timeout: Duration,
}

fn url_ok(v: &str, schemes: &[&str]) -> bool {
    v.is_empty() || schemes.iter().any(|s| v.starts_with(s))
}

pub fn validate(layered: &Layered, errors: &mut Vec<String>) -> FleetSettings {
    let n = &layered.sections.node;
    let f = &layered.sections.fleet;
    for (key, value, schemes) in [
        ("rtmp_url", &n.rtmp_url, &["rtmp://"][..]),
        ("rtmps_url", &n.rtmps_url, &["rtmps://"][..]),
        ("http_url", &n.http_url, &["http://", "https://"][..]),
    ] {
        if !url_ok(value, schemes) {
            errors.push(format!(
                "{}: must start with {}",
                layered.describe("node", key, value),
                schemes.join(" or ")
            ));
        }
    }
    if n.id.contains(|c: char| c.is_whitespace() || c == '/') {
        errors.push(format!(
            "{}: no spaces or slashes",
            layered.describe("node", "id", &n.id)
        ));
    }
    let redis_url = (!f.redis_url.is_empty()).then(|| f.redis_url.clone());
    if let Some(u) = &redis_url
        && !(u.starts_with("redis://") || u.starts_with("rediss://"))
    {
        errors.push("fleet.redis_url must start with redis:// or rediss://".into());
    }
    if redis_url.is_some() && n.http_url.starts_with("https://") {
        errors.push(
            "node.http_url: nodes of a fleet reach each other over plain http:// (an https:// origin cannot be proxied to yet)"
                .into(),
        );
    }
    if f.heartbeat_ms < 100 {
        errors.push(format!(
            "fleet.heartbeat_ms must be at least 100, got {}",
            f.heartbeat_ms
        ));
    }
    FleetSettings {
        node_id: n.id.clone(),
        rtmp_url: n.rtmp_url.trim_end_matches('/').to_string(),
        rtmps_url: n.rtmps_url.trim_end_matches('/').to_string(),
        http_url: n.http_url.trim_end_matches('/').to_string(),
        redis_url,
        max_streams: f.max_streams,
        heartbeat: Duration::from_millis(f.heartbeat_ms),
        drain_timeout: Duration::from_secs(f.drain_timeout_s),
    }
}
