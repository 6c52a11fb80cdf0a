//! A fleet of relays sharing one Redis (`fleet.redis_url`): each node announces itself and its
//! load ([`placement::NodeInfo`]) under `glasscast:node:{id}`, and each live stream under
//! `glasscast:stream:{userId}/{streamId}` (its [`DirectoryEntry`]), both refreshed every
//! heartbeat. A node's entry lives three heartbeats, so a dead node leaves the fleet within
//! seconds; its streams' entries live the reconnect grace period longer, to be taken over.
//! Placement ([`placement`]) answers where a publisher should go; the proxy ([`proxy`])
//! answers viewers of streams held by another node.
//!
//! Redis being down never stops media: the node keeps its streams and serves them, placement
//! answers from the last membership it read, and everything is announced again as soon as
//! Redis answers.

mod directory;
mod drain;
pub mod placement;
pub mod proxy;

pub use directory::DirectoryEntry;
pub use drain::Drain;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use relay::path::StreamPath;
use relay::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::fleet::FleetSettings;
use crate::redis_conn::{RedisConn, Unavailable};
use directory::Pending;
use placement::{NodeInfo, NodeState};

const NODE_PREFIX: &str = "glasscast:node:";
/// This node's membership in the fleet.
pub struct Fleet {
    redis: RedisConn,
    settings: FleetSettings,
    /// The reconnect grace period: a stream's entry outlives its node by this much, so a
    /// publisher reconnecting to another node within it continues the stream.
    grace: Duration,
    me: Mutex<NodeInfo>,
    /// The fleet as last read from Redis (this node included).
    nodes: RwLock<Vec<NodeInfo>>,
    /// Recent directory answers: path -> (entry, when asked).
    directory: Mutex<HashMap<StreamPath, (Option<DirectoryEntry>, Instant)>>,
    /// Whether the last Redis call failed (to log an outage once, and its end).
    down: Mutex<bool>,
    /// Streams that just started here: where their playlist left off elsewhere, once known.
    pending: Mutex<HashMap<StreamPath, Pending>>,
}

fn node_key(id: &str) -> String {
    format!("{NODE_PREFIX}{id}")
}

impl Fleet {
    /// This node (`me`, its URLs resolved) in the fleet of `settings.redis_url`.
    pub fn new(
        settings: FleetSettings,
        me: NodeInfo,
        url: &str,
        grace: Duration,
    ) -> Result<Arc<Self>, Unavailable> {
        Ok(Arc::new(Self {
            redis: RedisConn::new(url, Duration::from_secs(1))?,
            settings,
            grace,
            nodes: RwLock::new(vec![me.clone()]),
            me: Mutex::new(me),
            directory: Mutex::new(HashMap::new()),
            down: Mutex::new(false),
            pending: Mutex::new(HashMap::new()),
        }))
    }

    fn ttl_ms(&self) -> u64 {
        self.settings.heartbeat.as_millis() as u64 * 3
    }

    /// A stream's directory entry lives past its node's for the grace period.
    fn stream_ttl_ms(&self) -> u64 {
        self.ttl_ms() + self.grace.as_millis() as u64
    }

    /// True when `id` is in the membership as last read (or is this node).
    fn is_member(&self, id: &str) -> bool {
        self.nodes().iter().any(|n| n.id == id)
    }

    pub fn node_id(&self) -> String {
        self.me().id
    }

    /// This node as it announces itself now.
    pub fn me(&self) -> NodeInfo {
        self.me.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The fleet as last read (this node always included, with its current state).
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let me = self.me();
        let mut nodes: Vec<NodeInfo> = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|n| n.id != me.id)
            .cloned()
            .collect();
        nodes.push(me);
        nodes
    }

    /// Puts this node in `draining`: placement skips it from the next announcement on (made
    /// at once).
    pub async fn drain(&self) {
        self.me.lock().unwrap_or_else(|e| e.into_inner()).state = NodeState::Draining;
        info!("draining: placement sends no new streams here");
        let me = self.me();
        let _ = self.announce(&me).await;
    }

    pub fn is_draining(&self) -> bool {
        self.me().state == NodeState::Draining
    }

    fn outage(&self, r: &Result<(), Unavailable>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Err(e) if !*down => {
                warn!(redis = %self.redis.display(), error = %e, "fleet: Redis unavailable; serving on, placement from the last membership read");
                *down = true;
            }
            Ok(()) if *down => {
                info!(redis = %self.redis.display(), "fleet: Redis is back; membership and directory announced again");
                *down = false;
            }
            _ => {}
        }
    }

    async fn announce(&self, me: &NodeInfo) -> Result<(), Unavailable> {
        let json = serde_json::to_string(me).map_err(|e| Unavailable(e.to_string()))?;
        let (key, ttl) = (node_key(&me.id), self.ttl_ms());
        self.redis
            .run(async |c| c.pset_ex::<_, _, ()>(&key, &json, ttl).await)
            .await
    }

    async fn read_nodes(&self) -> Result<Vec<NodeInfo>, Unavailable> {
        let keys: Vec<String> = self
            .redis
            .run(async |c| {
                let mut it = c.scan_match::<_, String>(format!("{NODE_PREFIX}*")).await?;
                let mut keys = Vec::new();
                while let Some(k) = futures_util::StreamExt::next(&mut it).await {
                    keys.push(k?);
                }
                Ok(keys)
            })
            .await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = self.redis.run(async |c| c.mget(&keys).await).await?;
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|j| serde_json::from_str(&j).ok())
            .collect())
    }

    /// Where a publisher of `path` should connect: the node holding it now if that node is a
    /// member taking streams (a reconnect returns to its stream), else the rendezvous choice.
    pub async fn place(&self, path: &StreamPath) -> Option<NodeInfo> {
        let nodes = self.nodes();
        if let Some(owner) = self.owner(path).await
            && let Some(n) = nodes
                .iter()
                .find(|n| n.id == owner.node_id && n.state == NodeState::Active)
        {
            return Some(n.clone());
        }
        placement::place(&nodes, &format!("{}/{}", path.user_id, path.stream_id)).cloned()
    }

    /// Announces this node and its streams every heartbeat until `shutdown`, then leaves the
    /// fleet (its entry and its streams' entries are removed). A stream another node has taken
    /// over stops being served here, so its viewers are sent to the new owner.
    pub async fn run(
        self: Arc<Self>,
        registry: Arc<Registry>,
        origin: Arc<origin::packager::Origin>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.settings.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let l = Load::now(&registry, &origin);
            let me = {
                let mut me = self.me.lock().unwrap_or_else(|e| e.into_inner());
                (me.streams, me.ingest_bps, me.viewers) = (l.streams, l.ingest_bps, l.viewers);
                me.clone()
            };
            let live = registry.list();
            let streams: Vec<(StreamPath, u64, (u64, u64, u64))> = live
                .iter()
                .map(|s| {
                    let position = origin.get(&s.path).map_or((0, 0, 0), |os| os.position());
                    (s.path.clone(), s.session_id, position)
                })
                .collect();
            let r = async {
                self.announce(&me).await?;
                let lost = self.announce_streams(&streams).await?;
                for path in lost {
                    if let Some(s) = live.iter().find(|s| s.path == path) {
                        info!(stream = %path, "another node took this stream over; ending it here");
                        origin.release(&path);
                        registry.end(s);
                    }
                }
                let nodes = self.read_nodes().await?;
                *self.nodes.write().unwrap_or_else(|e| e.into_inner()) = nodes;
                Ok(())
            }
            .await;
            self.outage(&r);
        }
        let key = node_key(&self.node_id());
        let _ = self.redis.run(async |c| c.del::<_, ()>(&key).await).await;
        info!("left the fleet");
    }

    /// Records new streams in the directory at once (taking over the entry of a stream
    /// that moved here, and learning where its playlist left off), and removes ended ones.
    pub fn attach(self: &Arc<Self>, registry: &Registry) {
        let me = Arc::downgrade(self);
        registry.on_new_stream(move |s| {
            let Some(me) = me.upgrade() else { return };
            let (path, session) = (s.path.clone(), s.session_id);
            let pending = me.pending(&path);
            tokio::spawn(async move {
                let c = me.take_over(&path, session).await.unwrap_or_else(|e| {
                    warn!(stream = %path, error = %e, "could not record the stream in the fleet directory");
                    None
                });
                pending.send_replace(Some(c));
            });
        });
        let me = Arc::downgrade(self);
        registry.on_stream_ended(move |s| {
            let Some(me) = me.upgrade() else { return };
            let path = s.path.clone();
            me.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&path);
            tokio::spawn(async move {
                let _ = me.forget_stream(&path).await;
            });
        });
    }
}

/// A node's load as it announces it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub streams: u64,
    pub ingest_bps: u64,
    pub viewers: u64,
}

impl Load {
    /// This node's load now: its streams, their ingest, their viewers of the last 30 s.
    pub fn now(registry: &Registry, origin: &origin::packager::Origin) -> Self {
        let now = Instant::now();
        let streams = registry.list();
        Self {
            streams: streams.len() as u64,
            ingest_bps: streams.iter().map(|s| s.ingest_bitrate(now)).sum(),
            viewers: origin
                .streams()
                .iter()
                .map(|s| s.viewers(now, Duration::from_secs(30)))
                .sum(),
        }
    }
}

/// `node.id`, or the host name when it is empty.
pub fn node_id(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "glasscast".into())
}
