//! What recordings exist: one entry per recording, kept in memory, rebuilt from the recording
//! directory at start (each recording's playlist stays there even when its media lives in
//! object storage) and updated by the writer and the uploader. The management API, the origin's
//! `/recordings/` routes and retention read it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use relay::path::StreamPath;

use super::local::PLAYLIST;

/// Marker file in a recording's directory: every file of the ended recording is in object
/// storage.
pub const STORED_MARKER: &str = ".stored";

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its broadcast is live.
    Recording,
    /// Ended; files still wait for object storage.
    Uploading,
    /// Ended and safely stored.
    Complete,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Recording => "recording",
            State::Uploading => "uploading",
            State::Complete => "complete",
        }
    }
}

/// One recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    /// Its id: the broadcast's session name, also its directory's name.
    pub id: String,
    pub path: StreamPath,
    /// Its directory relative to the recording root: `{userId}/{streamId}/{id}` as in URLs.
    pub dir: String,
    /// PROGRAM-DATE-TIME of its first segment, ms since the epoch.
    pub started_ms: i64,
    pub duration_s: f64,
    pub state: State,
}

/// A recording's playback URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    pub hls: String,
    pub dash: String,
    pub mp4: String,
}

impl Info {
    /// Its URLs on the origin at `public_url` (no trailing slash).
    pub fn urls(&self, public_url: &str) -> Urls {
        let base = format!("{public_url}/recordings/{}", self.dir);
        Urls {
            hls: format!("{base}/index.m3u8"),
            dash: format!("{base}/index.mpd"),
            mp4: format!("{base}/{}", super::serve::DOWNLOAD),
        }
    }

    /// The recording's order among recordings: its session id is a counter seeded from the
    /// clock, so it grows with time.
    pub fn seq(&self) -> u64 {
        u64::from_str_radix(&self.id, 16).unwrap_or(0)
    }
}

/// The recordings, by id.
#[derive(Default)]
pub struct Catalog {
    map: Mutex<BTreeMap<String, Info>>,
}

impl Catalog {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Info>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, info: Info) {
        self.map().insert(info.id.clone(), info);
    }

    pub fn get(&self, id: &str) -> Option<Info> {
        self.map().get(id).cloned()
    }

    /// Applies `f` to the recording `id`, if it exists.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Info)) {
        if let Some(info) = self.map().get_mut(id) {
            f(info);
        }
    }

    pub fn remove(&self, id: &str) -> Option<Info> {
        self.map().remove(id)
    }

    /// Every recording, oldest first, optionally of one user or one stream.
    pub fn list(&self, user_id: Option<&str>, stream_id: Option<&str>) -> Vec<Info> {
        let mut all: Vec<Info> = self
            .map()
            .values()
            .filter(|i| user_id.is_none_or(|u| i.path.user_id == u))
            .filter(|i| stream_id.is_none_or(|s| i.path.stream_id == s))
            .cloned()
            .collect();
        all.sort_by_key(|i| (i.started_ms, i.seq()));
        all
    }

    /// Rebuilds the catalog from `root` (`{userId}/{streamId}/{id}/index.m3u8`). Runs after
    /// unfinished recordings were closed, so every recording found has ended.
    pub async fn scan(&self, root: &Path, remote: bool) -> anyhow::Result<usize> {
        let mut found = 0;
        for (rel, dir) in recording_dirs(root).await? {
            let Ok(text) = tokio::fs::read_to_string(dir.join(PLAYLIST)).await else {
                continue;
            };
            let Some(info) = info_of(&rel, &text) else {
                continue;
            };
            let stored = tokio::fs::try_exists(dir.join(STORED_MARKER))
                .await
                .unwrap_or(false);
            let state = if remote && !stored {
                State::Uploading
            } else {
                State::Complete
            };
            self.insert(Info { state, ..info });
            found += 1;
        }
        Ok(found)
    }
}

/// Every recording directory under `root`: (`{userId}/{streamId}/{id}`, its path).
pub async fn recording_dirs(root: &Path) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, rel, depth)) = dirs.pop() {
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        while let Some(entry) = rd.next_entry().await? {
            if !entry.file_type().await?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if depth < 2 {
                dirs.push((entry.path(), rel, depth + 1));
            } else {
                out.push((rel, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A recording's entry from its directory (`{userId}/{streamId}/{id}`) and playlist.
pub fn info_of(rel: &str, playlist: &str) -> Option<Info> {
    let mut parts = rel.split('/');
    let (user, stream, id) = (parts.next()?, parts.next()?, parts.next()?);
    let path = StreamPath::from_url_segments("live", user, stream).ok()?;
    let mut duration_s = 0.0;
    let mut started_ms = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration_s += d.trim_end_matches(',').parse::<f64>().unwrap_or(0.0);
        } else if let Some(t) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:")
            && started_ms.is_none()
        {
            started_ms = humantime::parse_rfc3339(t.trim())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
        }
    }
    let ended = playlist.lines().any(|l| l.trim() == "#EXT-X-ENDLIST");
    Some(Info {
        id: id.to_string(),
        path,
        dir: rel.to_string(),
        started_ms: started_ms.unwrap_or(0),
        duration_s,
        state: if ended {
            State::Complete
        } else {
            State::Recording
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::vod::{self, Entry};

    #[test]
    fn an_entry_is_read_back_from_its_playlist() {
        let entries: Vec<Entry> = (0..3)
            .map(|i| Entry {
                segment: format!("a-s{i}.m4s"),
                init: "a-init1.mp4".into(),
                duration_s: 2.5,
                pdt_ms: 1_700_000_000_000 + i * 2500,
                discontinuity: false,
            })
            .collect();
        let info = info_of("alice%40x.com/cam/18c3f", &vod::render(&entries, true)).unwrap();
        assert_eq!(info.path.user_id, "alice@x.com");
        assert_eq!(info.path.stream_id, "cam");
        assert_eq!(info.id, "18c3f");
        assert_eq!(info.seq(), 0x18c3f);
        assert_eq!(info.started_ms, 1_700_000_000_000);
        assert!((info.duration_s - 7.5).abs() < 1e-6);
        assert_eq!(info.state, State::Complete);
        let open = info_of("u/s/1", &vod::render(&entries, false)).unwrap();
        assert_eq!(open.state, State::Recording);
        assert_eq!(info_of("u/s", "#EXTM3U"), None);
    }
}
