//! All destinations of all streams: applies a desired destination list per stream in place
//! (new ones start, removed ones stop cleanly, the rest and the publisher are untouched).
//! Static rules from the configuration apply to every new stream whose path matches; the
//! control plane can replace a stream's list at any time with [`Restreamer::set_destinations`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::task::TaskTracker;
use tracing::warn;

use super::destination::{Destination, DestinationError};
use super::pusher::{self, DestinationStatus, PushConfig, Pusher};
use crate::path::StreamPath;
use crate::registry::{Registry, Stream};

/// A destination as configured or as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    pub name: String,
    pub url: String,
}

/// "Every stream whose path starts with `prefix` also goes to `destination`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRule {
    /// Matched against `live/{userId}/{streamId}`, decoded or percent-encoded.
    pub prefix: String,
    pub destination: DestinationSpec,
}

impl StaticRule {
    /// Parses `PREFIX -> URL` (the name is the URL's host).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (prefix, url) = text
            .split_once("->")
            .ok_or_else(|| "a rule is `PATH_PREFIX -> rtmp[s]://host/app/key`".to_string())?;
        let url = url.trim().to_string();
        let dest = Destination::parse(&url).map_err(|e: DestinationError| e.to_string())?;
        Ok(Self {
            prefix: prefix.trim().to_string(),
            destination: DestinationSpec {
                name: dest.host.clone(),
                url,
            },
        })
    }

    /// Matches the decoded path (`live/alice@example.com/…`) or the URL form
    /// (`live/alice%40example.com/…`), whichever the rule was written in.
    fn matches(&self, path: &StreamPath) -> bool {
        format!("live/{}/{}", path.user_id, path.stream_id).starts_with(&self.prefix)
            || path.url_path().starts_with(&self.prefix)
    }
}

struct StreamEntry {
    stream: Arc<Stream>,
    /// By destination URL (the identity of a destination).
    pushers: HashMap<String, Pusher>,
    /// Destinations whose URL could not be used, with the reason (reported, never retried).
    invalid: Vec<DestinationStatus>,
}

/// The restreaming side of the relay.
pub struct Restreamer {
    cfg: Arc<PushConfig>,
    rules: Vec<StaticRule>,
    tasks: TaskTracker,
    streams: Mutex<HashMap<StreamPath, StreamEntry>>,
    seed: AtomicU64,
}

impl Restreamer {
    pub fn new(
        cfg: PushConfig,
        rules: Vec<StaticRule>,
        tasks: TaskTracker,
        seed: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            cfg: Arc::new(cfg),
            rules,
            tasks,
            streams: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(seed),
        })
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<StreamPath, StreamEntry>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the static rules' destinations for every new stream, and forgets streams when
    /// they end.
    pub fn attach(self: &Arc<Self>, registry: &Registry) {
        let me = Arc::downgrade(self);
        registry.on_new_stream(move |stream| {
            if let Some(me) = me.upgrade() {
                let dests = me.static_for(&stream.path);
                me.set_destinations(stream, dests);
            }
        });
        let me = Arc::downgrade(self);
        registry.on_stream_ended(move |stream| {
            if let Some(me) = me.upgrade() {
                let mut streams = me.streams();
                if streams
                    .get(&stream.path)
                    .is_some_and(|e| Arc::ptr_eq(&e.stream, stream))
                {
                    streams.remove(&stream.path);
                }
            }
        });
    }
    /// The static rules' destinations for `path`.
    pub fn static_for(&self, path: &StreamPath) -> Vec<DestinationSpec> {
        self.rules
            .iter()
            .filter(|r| r.matches(path))
            .map(|r| r.destination.clone())
            .collect()
    }

    /// Makes `dests` the stream's destination list: starts new URLs, stops removed ones,
    /// leaves the others connected.
    pub fn set_destinations(&self, stream: &Arc<Stream>, dests: Vec<DestinationSpec>) {
        let mut streams = self.streams();
        let entry = streams
            .entry(stream.path.clone())
            .or_insert_with(|| StreamEntry {
                stream: stream.clone(),
                pushers: HashMap::new(),
                invalid: Vec::new(),
            });
        if !Arc::ptr_eq(&entry.stream, stream) {
            // A new session on the same path: the old one's pushers end with their stream.
            *entry = StreamEntry {
                stream: stream.clone(),
                pushers: HashMap::new(),
                invalid: Vec::new(),
            };
        }
        let wanted: HashMap<&str, &DestinationSpec> =
            dests.iter().map(|d| (d.url.as_str(), d)).collect();
        entry.pushers.retain(|url, p| {
            let keep = wanted.contains_key(url.as_str());
            if !keep {
                p.stop();
            }
            keep
        });
        entry.invalid.clear();
        for d in &dests {
            if entry.pushers.contains_key(&d.url) {
                continue;
            }
            match Destination::parse(&d.url) {
                Ok(dest) => {
                    let seed = self.seed.fetch_add(0x9E37_79B9, Ordering::Relaxed);
                    let p = pusher::spawn(
                        stream,
                        dest,
                        d.name.clone(),
                        self.cfg.clone(),
                        seed,
                        &self.tasks,
                    );
                    entry.pushers.insert(d.url.clone(), p);
                }
                Err(e) => {
                    warn!(stream = %stream.path, destination = %d.name, error = %e, "unusable destination");
                    entry.invalid.push(DestinationStatus {
                        id: format!("invalid-{}", entry.invalid.len()),
                        name: d.name.clone(),
                        masked_url: "***".into(),
                        state: super::supervisor::DestState::Failed {
                            reason: e.to_string(),
                        },
                        last_error: Some(e.to_string()),
                        bytes_sent: 0,
                        reconnects: 0,
                        dropped: 0,
                    });
                }
            }
        }
    }

    /// Every live stream's destinations (keys masked).
    pub fn all_statuses(&self) -> Vec<(StreamPath, DestinationStatus)> {
        let paths: Vec<StreamPath> = self.streams().keys().cloned().collect();
        paths
            .into_iter()
            .flat_map(|p| self.statuses(&p).into_iter().map(move |s| (p.clone(), s)))
            .collect()
    }

    /// The destinations of a live stream, keys masked, sorted by name.
    pub fn statuses(&self, path: &StreamPath) -> Vec<DestinationStatus> {
        let streams = self.streams();
        let Some(e) = streams.get(path) else {
            return Vec::new();
        };
        let mut v: Vec<DestinationStatus> = e.pushers.values().map(Pusher::status).collect();
        v.extend(e.invalid.iter().cloned());
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.masked_url.cmp(&b.masked_url)));
        v
    }
}

impl std::fmt::Debug for Restreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restreamer")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// Per-destination metrics, read at scrape time. Labels: the stream path, the destination's
/// name and its masked URL; never a stream key, never an error text (unbounded).
#[derive(Debug)]
pub struct RestreamCollector(pub Arc<Restreamer>);

impl prometheus_client::collector::Collector for RestreamCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;

        let all = self.0.all_statuses();
        let labels = |p: &StreamPath, s: &DestinationStatus| -> Vec<(String, String)> {
            vec![
                (
                    "stream".into(),
                    format!("live/{}/{}", p.user_id, p.stream_id),
                ),
                ("destination".into(), s.name.clone()),
                ("url".into(), s.masked_url.clone()),
            ]
        };
        {
            let mut m = encoder.encode_descriptor(
                "glasscast_restream_destination_state",
                "1 for the state each restream destination is in (active, connecting, error, stopped)",
                None,
                MetricType::Gauge,
            )?;
            for (p, s) in &all {
                let mut l = labels(p, s);
                l.push(("state".into(), s.state.status().into()));
                ConstGauge::new(1i64).encode(m.encode_family(&l)?)?;
            }
        }
        type Field = fn(&DestinationStatus) -> u64;
        let counters: [(&str, &str, Field); 3] = [
            (
                "glasscast_restream_bytes_sent",
                "Bytes written to the destination",
                |s| s.bytes_sent,
            ),
            (
                "glasscast_restream_reconnects",
                "Connections opened after the first",
                |s| s.reconnects,
            ),
            (
                "glasscast_restream_dropped_frames",
                "Media messages dropped because the destination was slower than the stream",
                |s| s.dropped,
            ),
        ];
        for (name, help, field) in counters {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (p, s) in &all {
                ConstCounter::new(field(s)).encode(m.encode_family(&labels(p, s))?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_rules_parse_and_match() {
        let r =
            StaticRule::parse(" live/alice@example.com/ -> rtmp://a.rtmp.youtube.com/live2/KEY ")
                .unwrap();
        assert_eq!(r.prefix, "live/alice@example.com/");
        assert_eq!(r.destination.name, "a.rtmp.youtube.com");
        let p = |u: &str, s: &str| StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        };
        assert!(r.matches(&p("alice@example.com", "m1")));
        assert!(!r.matches(&p("bob@example.com", "m1")));
        let encoded = StaticRule::parse("live/alice%40example.com/ -> rtmp://x/a/k").unwrap();
        assert!(encoded.matches(&p("alice@example.com", "m1")));
        assert!(StaticRule::parse("live/ rtmp://x/a/k").is_err());
        let err = StaticRule::parse("live/ -> http://x/a/SECRET").unwrap_err();
        assert!(!err.contains("SECRET"));
    }
}
