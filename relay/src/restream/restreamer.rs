//! All destinations of all streams: applies a desired destination list per stream in place
//! (new ones start, removed ones stop cleanly, the rest and the publisher are untouched).
//! A stream's list merges three sources: static rules from the configuration (every stream
//! whose path matches), the control plane's list ([`Restreamer::set_cloud_destinations`]) and
//! outputs added through the management API ([`Restreamer::set_extra_destinations`]). A
//! fourth, the forward to a managed platform's ingest ([`Restreamer::set_platform_forward`]),
//! uses the same pushers but is not one of the stream's outputs: [`Restreamer::statuses`]
//! leaves it out and [`Restreamer::forward_status`] reports it.

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
    /// The control plane's list (replaced on every poll).
    cloud: Vec<DestinationSpec>,
    /// Outputs added through the management API.
    extra: Vec<DestinationSpec>,
    /// The managed platform's ingest (Option B).
    forward: Option<DestinationSpec>,
    /// By destination URL (the identity of a destination).
    pushers: HashMap<String, Pusher>,
    /// Destinations whose URL could not be used, with the reason (reported, never retried).
    invalid: Vec<DestinationStatus>,
}

impl StreamEntry {
    fn new(stream: &Arc<Stream>) -> Self {
        Self {
            stream: stream.clone(),
            cloud: Vec::new(),
            extra: Vec::new(),
            forward: None,
            pushers: HashMap::new(),
            invalid: Vec::new(),
        }
    }
}

/// The restreaming side of the relay.
pub struct Restreamer {
    cfg: Arc<PushConfig>,
    rules: Vec<StaticRule>,
    tasks: TaskTracker,
    streams: Mutex<HashMap<StreamPath, StreamEntry>>,
    seed: AtomicU64,
    /// Bytes, reconnects and dropped frames of destinations that are gone, so the process
    /// totals never go down.
    retired: [AtomicU64; 3],
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
            retired: Default::default(),
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
                me.update(stream, |_| {});
            }
        });
        let me = Arc::downgrade(self);
        registry.on_stream_ended(move |stream| {
            if let Some(me) = me.upgrade() {
                let mut streams = me.streams();
                if streams
                    .get(&stream.path)
                    .is_some_and(|e| Arc::ptr_eq(&e.stream, stream))
                    && let Some(e) = streams.remove(&stream.path)
                {
                    e.pushers.values().for_each(|p| me.retire(p));
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

    /// Replaces the control plane's destinations of `stream` (static rules and API outputs
    /// stay): new URLs start, removed ones stop, the others stay connected.
    pub fn set_cloud_destinations(&self, stream: &Arc<Stream>, dests: Vec<DestinationSpec>) {
        self.update(stream, |e| e.cloud = dests);
    }

    /// Replaces the management API's outputs of `stream` (static rules and the cloud's list
    /// stay).
    pub fn set_extra_destinations(&self, stream: &Arc<Stream>, dests: Vec<DestinationSpec>) {
        self.update(stream, |e| e.extra = dests);
    }

    /// Starts (or with `None` stops) forwarding `stream` to a managed platform's ingest, with
    /// the same reconnecting pusher as a restream destination.
    pub fn set_platform_forward(&self, stream: &Arc<Stream>, forward: Option<DestinationSpec>) {
        self.update(stream, |e| e.forward = forward);
    }

    /// The platform forward's state (key masked), while there is one.
    pub fn forward_status(&self, path: &StreamPath) -> Option<DestinationStatus> {
        let streams = self.streams();
        let e = streams.get(path)?;
        let url = &e.forward.as_ref()?.url;
        e.pushers.get(url).map(Pusher::status)
    }

    /// Every destination `stream` has now, from all sources (static rules, cloud, API), once
    /// per URL; the platform forward is not one of them.
    pub fn wanted(&self, path: &StreamPath) -> Vec<DestinationSpec> {
        match self.streams().get(path) {
            Some(e) => self.merged(path, e),
            None => self.static_for(path),
        }
    }

    fn merged(&self, path: &StreamPath, e: &StreamEntry) -> Vec<DestinationSpec> {
        let mut all = self.static_for(path);
        for d in e.cloud.iter().chain(&e.extra) {
            if !all.iter().any(|a| a.url == d.url) {
                all.push(d.clone());
            }
        }
        all
    }

    /// What the pushers must carry: the outputs plus the platform forward.
    fn pushed(&self, path: &StreamPath, e: &StreamEntry) -> Vec<DestinationSpec> {
        let mut all = self.merged(path, e);
        if let Some(f) = &e.forward
            && !all.iter().any(|a| a.url == f.url)
        {
            all.push(f.clone());
        }
        all
    }

    /// Changes the stream's sources with `f`, then applies the merged list in place.
    fn update(&self, stream: &Arc<Stream>, f: impl FnOnce(&mut StreamEntry)) {
        // One lock for the change and its application, so concurrent updates from the cloud
        // task and the API cannot apply stale merges over each other.
        let mut streams = self.streams();
        let entry = streams
            .entry(stream.path.clone())
            .or_insert_with(|| StreamEntry::new(stream));
        if !Arc::ptr_eq(&entry.stream, stream) {
            // A new session on the same path: the old one's pushers end with their stream.
            let old = std::mem::replace(entry, StreamEntry::new(stream));
            old.pushers.values().for_each(|p| self.retire(p));
        }
        f(entry);
        let dests = self.pushed(&stream.path, entry);
        let wanted: HashMap<&str, &DestinationSpec> =
            dests.iter().map(|d| (d.url.as_str(), d)).collect();
        entry.pushers.retain(|url, p| {
            let keep = wanted.contains_key(url.as_str());
            if !keep {
                p.stop();
                self.retire(p);
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

    fn retire(&self, p: &Pusher) {
        let s = p.status();
        for (total, v) in self
            .retired
            .iter()
            .zip([s.bytes_sent, s.reconnects, s.dropped])
        {
            total.fetch_add(v, Ordering::Relaxed);
        }
    }

    /// Every live stream's pushers, the platform forwards included (keys masked).
    pub fn all_statuses(&self) -> Vec<(StreamPath, DestinationStatus)> {
        let paths: Vec<StreamPath> = self.streams().keys().cloned().collect();
        paths
            .into_iter()
            .flat_map(|p| {
                let mut v = self.statuses(&p);
                v.extend(self.forward_status(&p));
                v.into_iter().map(move |s| (p.clone(), s))
            })
            .collect()
    }

    /// The outputs of a live stream (not its platform forward), keys masked, sorted by name.
    pub fn statuses(&self, path: &StreamPath) -> Vec<DestinationStatus> {
        let streams = self.streams();
        let Some(e) = streams.get(path) else {
            return Vec::new();
        };
        let forward = e.forward.as_ref().map(|f| f.url.as_str());
        let mut v: Vec<DestinationStatus> = e
            .pushers
            .iter()
            .filter(|(url, _)| Some(url.as_str()) != forward)
            .map(|(_, p)| p.status())
            .collect();
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

/// Restream metrics, read at scrape time: `restream_destinations{state}` (how many
/// destinations are in each state) and the process totals `restream_bytes`,
/// `restream_reconnects`, `restream_dropped_frames`. With `per_stream` the totals are instead
/// given per destination, labelled with the stream path, the destination's name and its masked
/// URL. Never a stream key, never an error text (unbounded).
#[derive(Debug)]
pub struct RestreamCollector {
    pub restreamer: Arc<Restreamer>,
    pub per_stream: bool,
}

impl prometheus_client::collector::Collector for RestreamCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;

        let all = self.restreamer.all_statuses();
        {
            let mut m = encoder.encode_descriptor(
                "restream_destinations",
                "Restream destinations by state (active, connecting, error, stopped)",
                None,
                MetricType::Gauge,
            )?;
            for state in ["active", "connecting", "error", "stopped"] {
                let n = all
                    .iter()
                    .filter(|(_, s)| s.state.status() == state)
                    .count();
                ConstGauge::new(n as i64).encode(m.encode_family(&[("state", state)])?)?;
            }
        }
        type Field = fn(&DestinationStatus) -> u64;
        let counters: [(&str, &str, Field); 3] = [
            (
                "restream_bytes",
                "Bytes written to restream destinations",
                |s| s.bytes_sent,
            ),
            (
                "restream_reconnects",
                "Destination connections opened after the first",
                |s| s.reconnects,
            ),
            (
                "restream_dropped_frames",
                "Media messages dropped because a destination was slower than the stream",
                |s| s.dropped,
            ),
        ];
        for (i, (name, help, field)) in counters.into_iter().enumerate() {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            if self.per_stream {
                for (p, s) in &all {
                    let labels = [
                        ("stream", format!("live/{}/{}", p.user_id, p.stream_id)),
                        ("destination", s.name.clone()),
                        ("url", s.masked_url.clone()),
                    ];
                    ConstCounter::new(field(s)).encode(m.encode_family(&labels)?)?;
                }
            } else {
                let live: u64 = all.iter().map(|(_, s)| field(s)).sum();
                let total = live + self.restreamer.retired[i].load(Ordering::Relaxed);
                ConstCounter::new(total).encode(m)?;
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
