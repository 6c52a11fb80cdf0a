//! A fleet of relays sharing one Redis (`fleet.redis_url`): each node announces itself and its
//! load ([`placement::NodeInfo`]) under `glasscast:node:{id}`, and each live stream under
//! `glasscast:stream:{userId}/{streamId}` (its [`DirectoryEntry`]), both refreshed every
//! heartbeat with a TTL of three, so a node that dies disappears from both within seconds.
//! Placement ([`placement`]) answers where a publisher should go; the proxy ([`proxy`])
//! answers viewers of streams held by another node.
//!
//! Redis being down never stops media: the node keeps its streams and serves them, placement
//! answers from the last membership it read, and everything is announced again as soon as
//! Redis answers.

pub mod placement;
pub mod proxy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use relay::path::StreamPath;
use relay::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::fleet::FleetSettings;
use crate::redis_conn::{RedisConn, Unavailable};
use placement::{NodeInfo, NodeState};

const NODE_PREFIX: &str = "glasscast:node:";
const STREAM_PREFIX: &str = "glasscast:stream:";
/// A directory answer is reused this long (viewers' requests must not each ask Redis).
const DIRECTORY_CACHE: Duration = Duration::from_millis(500);
/// "Nowhere" is reused for less: a stream that just started must be found quickly.
const DIRECTORY_MISS_CACHE: Duration = Duration::from_millis(150);

/// Where a live stream is: what the directory holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub node_id: String,
    /// The owner's origin, for proxying.
    pub http_url: String,
    /// The publishing session (file names are unique per session).
    pub session: u64,
    /// Where its playlist's numbering stood at the last heartbeat (next msn, next part, newest
    /// discontinuity number): a node taking the stream over numbers on from there.
    #[serde(default)]
    pub next_msn: u64,
    #[serde(default)]
    pub next_part: u64,
    #[serde(default)]
    pub discontinuity: u64,
}

/// Parts a node taking a stream over skips past the last announced one: the old owner may
/// have made a heartbeat's worth more (five a second at the default part target) before it
/// stopped. Numbers only have to grow.
const PART_MARGIN: u64 = 50;

/// Takes the directory entry of `KEYS[1]` for ARGV[1] (node id) unless another node holds
/// it: a node refreshing its streams never overwrites a node that took one over. Returns 1
/// when written, 0 when another node holds the stream.
const REFRESH: &str = r"local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).nodeId ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1";

/// Deletes `KEYS[1]` if node ARGV[1] holds it.
const FORGET: &str = r"local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).nodeId == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

type Pending = tokio::sync::watch::Sender<Option<Option<origin::elsewhere::Continuation>>>;

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

fn stream_key(path: &StreamPath) -> String {
    format!("{STREAM_PREFIX}{}/{}", path.user_id, path.stream_id)
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

    fn entry(&self, session: u64, position: (u64, u64, u64)) -> DirectoryEntry {
        let me = self.me();
        DirectoryEntry {
            node_id: me.id,
            http_url: me.http_url,
            session,
            next_msn: position.0,
            next_part: position.1,
            discontinuity: position.2,
        }
    }

    /// Refreshes this node's live streams in the directory; returns those another node has
    /// taken over (their publisher moved there).
    async fn announce_streams(
        &self,
        streams: &[(StreamPath, u64, (u64, u64, u64))],
    ) -> Result<Vec<StreamPath>, Unavailable> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let (id, ttl) = (self.node_id(), self.stream_ttl_ms());
        // EVAL, not EVALSHA: a pipeline cannot load a script Redis has forgotten (restarted).
        let mut pipe = redis::pipe();
        for (path, session, position) in streams {
            let json = serde_json::to_string(&self.entry(*session, *position))
                .map_err(|e| Unavailable(e.to_string()))?;
            pipe.cmd("EVAL")
                .arg(REFRESH)
                .arg(1)
                .arg(stream_key(path))
                .arg(&id)
                .arg(json)
                .arg(ttl);
        }
        let written: Vec<i64> = self.redis.run(async |c| pipe.query_async(c).await).await?;
        Ok(streams
            .iter()
            .zip(written)
            .filter(|(_, w)| *w == 0)
            .map(|((p, _, _), _)| p.clone())
            .collect())
    }

    /// Writes the directory entry of a stream that just started here, whoever held it, and
    /// returns where its playlist left off if another node held it (a publisher that moved).
    async fn take_over(
        &self,
        path: &StreamPath,
        session: u64,
    ) -> Result<Option<origin::elsewhere::Continuation>, Unavailable> {
        let json = serde_json::to_string(&self.entry(session, (0, 0, 0)))
            .map_err(|e| Unavailable(e.to_string()))?;
        let (key, ttl, me) = (stream_key(path), self.stream_ttl_ms(), self.node_id());
        let old: Option<String> = self
            .redis
            .run(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&json)
                    .arg("PX")
                    .arg(ttl)
                    .arg("GET")
                    .query_async(c)
                    .await
            })
            .await?;
        let old: Option<DirectoryEntry> = old.and_then(|j| serde_json::from_str(&j).ok());
        Ok(old.filter(|o| o.node_id != me).map(|o| {
            info!(stream = %path, from = %o.node_id, next_msn = o.next_msn, "took the stream over from another node");
            origin::elsewhere::Continuation {
                // Exactly where the old playlist stood, not past it: a gap in media sequence
                // numbers left hls.js waiting for a segment that never came (it plays on when
                // the new segment follows the last one it knew). The old owner may have
                // started one more segment after its last heartbeat; that number is then used
                // twice, by the old timeline and the new one.
                next_msn: o.next_msn,
                next_part: o.next_part + PART_MARGIN,
                discontinuity_sequence: o.discontinuity + 1,
            }
        }))
    }

    fn pending(&self, path: &StreamPath) -> Pending {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.clone())
            .or_insert_with(|| tokio::sync::watch::Sender::new(None))
            .clone()
    }

    /// Removes `path` from the directory if this node still holds it there.
    async fn forget_stream(&self, path: &StreamPath) -> Result<(), Unavailable> {
        // Compare and delete: a publisher that already moved to another node keeps its entry.
        let script = redis::Script::new(FORGET);
        let (key, id) = (stream_key(path), self.node_id());
        self.redis
            .run(async |c| script.key(&key).arg(&id).invoke_async::<()>(c).await)
            .await
    }

    /// Who holds `path` and can serve it: the directory's owner, if that node is a member
    /// (an entry outlives a dead node for the grace period, to be taken over).
    pub async fn owner(&self, path: &StreamPath) -> Option<DirectoryEntry> {
        self.directory_entry(path)
            .await
            .filter(|e| self.is_member(&e.node_id))
    }

    /// The directory's entry for `path` (answers are reused for half a second).
    async fn directory_entry(&self, path: &StreamPath) -> Option<DirectoryEntry> {
        let now = Instant::now();
        if let Some((entry, at)) = self
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            && now.duration_since(*at)
                < if entry.is_some() {
                    DIRECTORY_CACHE
                } else {
                    DIRECTORY_MISS_CACHE
                }
        {
            return entry.clone();
        }
        let key = stream_key(path);
        let entry = match self
            .redis
            .run(async |c| c.get::<_, Option<String>>(&key).await)
            .await
        {
            Ok(json) => json.and_then(|j| serde_json::from_str(&j).ok()),
            // Redis down: the last answer, however old, beats none.
            Err(_) => {
                return self
                    .directory
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(path)
                    .and_then(|(e, _)| e.clone());
            }
        };
        let mut dir = self.directory.lock().unwrap_or_else(|e| e.into_inner());
        if dir.len() > 10_000 {
            dir.retain(|_, (_, at)| now.duration_since(*at) < DIRECTORY_CACHE);
        }
        dir.insert(path.clone(), (entry.clone(), now));
        entry
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

    /// Where the playlist of a stream that just started here left off on another node.
    pub async fn continuation(&self, path: &StreamPath) -> Option<origin::elsewhere::Continuation> {
        let mut rx = self.pending(path).subscribe();
        let c = rx
            .wait_for(|c| c.is_some())
            .await
            .ok()
            .and_then(|c| c.flatten());
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
        c
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

/// A request to drain (SIGUSR1 or `POST /v1/node/drain`): stop taking new streams, let the
/// live ones end (at most `fleet.drain_timeout_s`), then stop as on SIGTERM.
#[derive(Debug)]
pub struct Drain {
    requested: tokio::sync::watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            requested: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Drain {
    /// Asks for draining (again is harmless); the fleet stops placing streams here at once.
    pub fn request(&self, fleet: Option<&Arc<Fleet>>) {
        if self.requested.send_replace(true) {
            return;
        }
        info!("drain requested: live streams continue, then the node stops");
        if let Some(f) = fleet {
            let f = f.clone();
            tokio::spawn(async move { f.drain().await });
        }
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once draining was asked for and the node's streams have all ended, or
    /// `timeout` after it was asked for.
    pub async fn finished(&self, registry: &Registry, timeout: Duration) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|r| *r).await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = registry.list().len();
            if left == 0 {
                info!("drained: no stream left");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    streams = left,
                    "drain timeout: stopping with streams still live"
                );
                return;
            }
            // Streams end on their own schedule; look again shortly.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
