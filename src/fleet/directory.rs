//! The stream directory: `glasscast:stream:{userId}/{streamId}` names the node holding a live
//! stream, its session and where its playlist's numbering stands. Written when the stream
//! starts (taking over the entry of a stream that moved here), refreshed every heartbeat
//! without overwriting a node that took the stream over, removed when it ends; it outlives a
//! dead owner by the reconnect grace period, so a publisher moving within it continues.

use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use relay::path::StreamPath;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Fleet;

const STREAM_PREFIX: &str = "glasscast:stream:";
use crate::redis_conn::Unavailable;

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

pub(super) type Pending =
    tokio::sync::watch::Sender<Option<Option<origin::elsewhere::Continuation>>>;

fn stream_key(path: &StreamPath) -> String {
    format!("{STREAM_PREFIX}{}/{}", path.user_id, path.stream_id)
}

impl Fleet {
    pub(super) fn entry(&self, session: u64, position: (u64, u64, u64)) -> DirectoryEntry {
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
    pub(super) async fn announce_streams(
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
    pub(super) async fn take_over(
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

    pub(super) fn pending(&self, path: &StreamPath) -> Pending {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.clone())
            .or_insert_with(|| tokio::sync::watch::Sender::new(None))
            .clone()
    }

    /// Removes `path` from the directory if this node still holds it there.
    pub(super) async fn forget_stream(&self, path: &StreamPath) -> Result<(), Unavailable> {
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
    pub(super) async fn directory_entry(&self, path: &StreamPath) -> Option<DirectoryEntry> {
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
