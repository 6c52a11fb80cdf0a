//! Recording to a local directory: `{record.path}/{userId}/{streamId}/{session}/` holds the
//! init segments, the segments (named as the live playlist named them) and `index.m3u8`.
//!
//! Crash-safe: every file is written under a temporary name and renamed into place, and the
//! playlist is rewritten only after the media it lists exists. A recording left open by a
//! relay that died is closed (`ENDLIST`) when the next one starts ([`close_unfinished`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use origin::cmaf::TrackSet;
use origin::naming::{Names, TrackKind};
use origin::recording::CompletedSegment;
use relay::path::StreamPath;

use super::mpd;
use super::vod::{self, Entry};

/// Name of a recording's playlist.
pub const PLAYLIST: &str = "index.m3u8";

/// One recording being written.
struct Recording {
    dir: PathBuf,
    names: Names,
    inits: HashSet<u32>,
    entries: Vec<Entry>,
    /// The playlist file's `EXT-X-TARGETDURATION`; 0 makes the next segment rewrite the
    /// playlist whole (after a failed append, whose torn bytes must not be appended to).
    target: u64,
    /// A segment was lost (a failed write): the next one is a discontinuity.
    gap: bool,
}

/// Writes recordings under one root directory. Owned by the writer task: calls are in order.
pub struct LocalDir {
    root: PathBuf,
    open: HashMap<(StreamPath, String), Recording>,
    /// Also write the per-track segments the DASH manifest names (`record.dash_files`).
    dash_files: bool,
}

impl LocalDir {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            open: HashMap::new(),
            dash_files: false,
        }
    }

    /// Writes the per-track segments the DASH manifest names beside the muxed ones, so the
    /// manifest plays from the directory or the bucket without the origin (twice the bytes).
    pub fn with_dash_files(mut self, on: bool) -> Self {
        self.dash_files = on;
        self
    }

    /// The directory of a broadcast's recording; `None` for a path that cannot name one
    /// safely (a `.` or `..` component).
    pub fn dir_of(&self, path: &StreamPath, session: &str) -> Option<PathBuf> {
        rel_dir(path, session).map(|rel| self.root.join(rel))
    }

    /// Whether the recording of `path`'s broadcast `session` is open (has a stored segment).
    pub fn is_open(&self, path: &StreamPath, session: &str) -> bool {
        self.open.contains_key(&(path.clone(), session.to_string()))
    }

    /// Stores one segment (its init first, once), then the playlist that lists it. Returns
    /// the files written, in order.
    pub async fn segment(
        &mut self,
        path: &StreamPath,
        session: &str,
        seg: CompletedSegment,
    ) -> anyhow::Result<Vec<Written>> {
        let key = (path.clone(), session.to_string());
        if !self.open.contains_key(&key) {
            let dir = self
                .dir_of(path, session)
                .with_context(|| format!("{path} cannot name a directory"))?;
            tokio::fs::create_dir_all(&dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
            let names = Names {
                prefix: session.to_string(),
            };
            self.open.insert(
                key.clone(),
                Recording {
                    dir,
                    names,
                    inits: HashSet::new(),
                    entries: Vec::new(),
                    target: 0,
                    gap: false,
                },
            );
        }
        let rec = self.open.get_mut(&key).expect("inserted above");
        let mut written = Vec::new();
        let stored = store(rec, &seg, self.dash_files, &mut written).await;
        if stored.is_err() {
            rec.gap = true;
            rec.target = 0;
        }
        stored?;
        rec.gap = false;
        Ok(written)
    }
}

/// A recording's directory relative to the recording root, `{userId}/{streamId}/{session}`
/// percent-encoded as in URLs; `None` when a component is `.` or `..` (which percent-encoding
/// leaves as they are).
pub fn rel_dir(path: &StreamPath, session: &str) -> Option<String> {
    let url = path.url_path();
    let parts: Vec<&str> = url.split('/').skip(1).chain([session]).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return None;
    }
    Some(parts.join("/"))
}

/// A file a recording wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub file: String,
    pub bytes: u64,
    /// A playlist (rewritten as the recording grows), not media.
    pub manifest: bool,
}

/// Writes a segment (its init first, once), then the playlist that lists it. The recording's
/// state changes only with what reached the disk; `written` gets what did.
async fn store(
    rec: &mut Recording,
    seg: &CompletedSegment,
    dash_files: bool,
    written: &mut Vec<Written>,
) -> anyhow::Result<()> {
    // Everything this segment writes goes to one blocking thread in one go: the files are
    // written straight from the segment's buffers (no copy), with one thread hop per segment.
    let mut ops = Vec::new();
    let init_name = rec.names.init(seg.init.id);
    let new_init = !rec.inits.contains(&seg.init.id);
    if new_init {
        ops.push(Op::Atomic(
            rec.dir.join(&init_name),
            vec![seg.init.data.clone()],
        ));
        written.push(Written {
            file: init_name.clone(),
            bytes: seg.init.data.len() as u64,
            manifest: false,
        });
        // DASH's per-track view needs an init segment per track.
        let tracks = &seg.init.tracks;
        if let (Some(v), Some(a)) = (&tracks.video, &tracks.audio) {
            for (kind, single) in [
                (
                    TrackKind::Video,
                    TrackSet {
                        video: Some(v.clone()),
                        audio: None,
                    },
                ),
                (
                    TrackKind::Audio,
                    TrackSet {
                        video: None,
                        audio: Some(a.clone()),
                    },
                ),
            ] {
                let data = origin::cmaf::write_init(&single)
                    .context("writing a per-track init segment")?;
                let name = rec.names.track_init(seg.init.id, kind);
                written.push(Written {
                    file: name.clone(),
                    bytes: data.len() as u64,
                    manifest: false,
                });
                ops.push(Op::Atomic(rec.dir.join(name), vec![data]));
            }
        }
        ops.push(Op::Append {
            path: rec.dir.join(mpd::SIDECAR),
            bytes: sidecar_line(&mpd::Line::Init(mpd::InitInfo::of(seg))),
            sync: false,
        });
    }
    let name = rec.names.segment(seg.msn);
    ops.push(Op::Atomic(rec.dir.join(&name), seg.chunks.clone()));
    written.push(Written {
        file: name.clone(),
        bytes: seg.chunks.iter().map(|c| c.len() as u64).sum(),
        manifest: false,
    });
    let tracks = &seg.init.tracks;
    if let (true, Some(v), Some(a)) = (dash_files, tracks.video_track_id(), tracks.audio_track_id())
    {
        // DASH's per-track views, as the origin cuts them: new headers, the same samples.
        for (kind, id) in [(TrackKind::Video, v), (TrackKind::Audio, a)] {
            let mut pieces = Vec::new();
            for chunk in &seg.chunks {
                pieces.extend(
                    origin::cmaf::extract_track(chunk, id, 1)
                        .context("cutting a per-track view of a segment")?,
                );
            }
            let file = rec.names.track_segment(seg.msn, kind);
            written.push(Written {
                file: file.clone(),
                bytes: pieces.iter().map(|p| p.len() as u64).sum(),
                manifest: false,
            });
            ops.push(Op::Atomic(rec.dir.join(file), pieces));
        }
    }
    let entry = Entry {
        segment: name,
        init: init_name,
        duration_s: seg.duration_s,
        pdt_ms: seg.pdt_ms,
        discontinuity: seg.discontinuity || rec.gap,
    };
    let playlist = rec.dir.join(PLAYLIST);
    let appended =
        !rec.entries.is_empty() && vod::target_duration(std::slice::from_ref(&entry)) <= rec.target;
    let mut entries = rec.entries.clone();
    if appended {
        // Appended, not rewritten: a long broadcast's playlist is not written over and
        // over. An append cut short by a crash is dropped when the recording is closed.
        let lines = vod::entry_lines(&rec.entries, &entry);
        ops.push(Op::Append {
            path: playlist,
            bytes: lines.into_bytes(),
            sync: true,
        });
        entries.push(entry);
    } else {
        entries.push(entry);
        ops.push(Op::Atomic(
            playlist,
            vec![vod::render(&entries, false).into()],
        ));
    }
    written.push(Written {
        file: PLAYLIST.into(),
        bytes: 0,
        manifest: true,
    });
    // Not synced: the manifest is made from it only when the recording ends or is closed
    // after a crash, and a process crash keeps what was written.
    ops.push(Op::Append {
        path: rec.dir.join(mpd::SIDECAR),
        bytes: sidecar_line(&mpd::Line::Segment(mpd::SegmentInfo::of(seg))),
        sync: false,
    });
    run(ops).await?;
    // Only what reached the disk changes the recording's state.
    if new_init {
        rec.inits.insert(seg.init.id);
    }
    if !appended {
        rec.target = vod::target_duration(&entries);
    }
    rec.entries = entries;
    Ok(())
}

/// A write of the recording directory, done on a blocking thread.
enum Op {
    /// The file whole or not at all: a temporary file beside it, synced, then renamed.
    Atomic(PathBuf, Vec<bytes::Bytes>),
    /// Appended to (created if missing), synced when `sync`.
    Append {
        path: PathBuf,
        bytes: Vec<u8>,
        sync: bool,
    },
}

/// Runs `ops` in order on a blocking thread; stops at the first failure.
async fn run(ops: Vec<Op>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        for op in ops {
            match op {
                Op::Atomic(path, chunks) => write_atomic_blocking(&path, &chunks)?,
                Op::Append { path, bytes, sync } => append_blocking(&path, &bytes, sync)?,
            }
        }
        Ok(())
    })
    .await
    .context("the recording writer's thread")?
}

fn write_atomic_blocking(path: &Path, chunks: &[bytes::Bytes]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    write_chunks(&mut f, chunks).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_data()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// Writes every chunk, in order, with as few system calls as the kernel allows (`writev`): a
/// segment is a hundred or more chunks, one per frame, and a write each cost more than all
/// the rest of recording it.
fn write_chunks(f: &mut std::fs::File, chunks: &[bytes::Bytes]) -> std::io::Result<()> {
    use std::io::{IoSlice, Write as _};
    /// IOV_MAX on Linux.
    const MAX_SLICES: usize = 1024;
    let mut slices: Vec<IoSlice<'_>> = chunks
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| IoSlice::new(c))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = rest.len().min(MAX_SLICES);
        let written = f.write_vectored(&rest[..n])?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

fn append_blocking(path: &Path, bytes: &[u8], sync: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("appending to {}", path.display()))?;
    if sync {
        f.sync_data()
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    Ok(())
}

fn sidecar_line(line: &mpd::Line) -> Vec<u8> {
    let mut v = serde_json::to_vec(line).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Writes the recording's final playlist and its DASH manifest.
async fn finish(rec: &Recording) -> anyhow::Result<()> {
    let text = vod::render(&rec.entries, true);
    write_atomic(&rec.dir.join(PLAYLIST), &[text.clone().into()]).await?;
    write_manifest(&rec.dir, &rec.names.prefix, &text).await
}

/// Writes `index.mpd` for the recording in `dir` over what `playlist` lists.
async fn write_manifest(dir: &Path, id: &str, playlist: &str) -> anyhow::Result<()> {
    if let Some(mpd) = mpd::for_dir(dir, id, playlist).await {
        write_atomic(&dir.join(mpd::MANIFEST), &[mpd.into()]).await?;
    }
    Ok(())
}

impl LocalDir {
    /// The broadcast ended: its playlist becomes VOD.
    /// Returns false when nothing was recorded (no segment completed).
    pub async fn ended(&mut self, path: &StreamPath, session: &str) -> anyhow::Result<bool> {
        let Some(rec) = self.open.remove(&(path.clone(), session.to_string())) else {
            return Ok(false);
        };
        finish(&rec).await?;
        Ok(true)
    }

    /// Closes every recording still open (the relay is stopping); returns which.
    pub async fn close_all(&mut self) -> anyhow::Result<Vec<(StreamPath, String)>> {
        let mut closed = Vec::new();
        for (key, rec) in self.open.drain() {
            finish(&rec).await?;
            closed.push(key);
        }
        Ok(closed)
    }
}

/// Writes `path` whole or not at all: a temporary file beside it, then a rename.
async fn write_atomic(path: &Path, chunks: &[bytes::Bytes]) -> anyhow::Result<()> {
    run(vec![Op::Atomic(path.to_path_buf(), chunks.to_vec())]).await
}

/// Closes every recording under `root` whose playlist has no `ENDLIST` (its relay died):
/// it becomes a VOD playlist of what was stored. Returns how many were closed.
pub async fn close_unfinished(root: &Path) -> anyhow::Result<usize> {
    let mut closed = 0;
    for (_, dir) in super::catalog::recording_dirs(root).await? {
        let playlist = dir.join(PLAYLIST);
        let Ok(text) = tokio::fs::read_to_string(&playlist).await else {
            continue;
        };
        if let Some(text) = vod::close(&text) {
            write_atomic(&playlist, &[text.clone().into()]).await?;
            let id = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            write_manifest(&dir, &id.unwrap_or_default(), &text).await?;
            closed += 1;
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unfinished_recordings_are_closed_and_finished_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let open = root.join("u").join("s").join("a1");
        let done = root.join("u").join("s").join("b2");
        for d in [&open, &done] {
            std::fs::create_dir_all(d).unwrap();
        }
        let entry = Entry {
            segment: "a1-s0.m4s".into(),
            init: "a1-init1.mp4".into(),
            duration_s: 2.0,
            pdt_ms: 0,
            discontinuity: false,
        };
        std::fs::write(
            open.join(PLAYLIST),
            vod::render(std::slice::from_ref(&entry), false),
        )
        .unwrap();
        let finished = vod::render(std::slice::from_ref(&entry), true);
        std::fs::write(done.join(PLAYLIST), &finished).unwrap();
        assert_eq!(close_unfinished(root).await.unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(open.join(PLAYLIST)).unwrap(),
            finished
        );
        assert_eq!(
            std::fs::read_to_string(done.join(PLAYLIST)).unwrap(),
            finished
        );
        assert_eq!(close_unfinished(root).await.unwrap(), 0, "idempotent");
        assert_eq!(close_unfinished(&root.join("missing")).await.unwrap(), 0);
    }

    fn seg(msn: u64) -> CompletedSegment {
        CompletedSegment {
            msn,
            discontinuity: false,
            init: std::sync::Arc::new(origin::fragment::InitSegment {
                id: 1,
                data: bytes::Bytes::from_static(b"init"),
                tracks: origin::cmaf::TrackSet {
                    video: None,
                    audio: None,
                },
            }),
            duration_s: 2.0,
            pdt_ms: 0,
            chunks: vec![bytes::Bytes::from(vec![msn as u8; 4])],
            timing: Default::default(),
        }
    }

    /// A segment whose write fails is not listed, and the next one is a discontinuity; the
    /// playlist is then rewritten whole (a failed append may have left torn bytes).
    #[tokio::test]
    async fn a_failed_write_leaves_a_marked_gap() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = LocalDir::new(tmp.path().to_path_buf());
        let path = StreamPath {
            user_id: "u".into(),
            stream_id: "s".into(),
        };
        let rec_dir = dir.dir_of(&path, "a").unwrap();
        dir.segment(&path, "a", seg(0)).await.unwrap();
        // A directory where segment 1's temporary file goes makes that one write fail.
        std::fs::create_dir(rec_dir.join("a-s1.tmp")).unwrap();
        assert!(dir.segment(&path, "a", seg(1)).await.is_err());
        dir.segment(&path, "a", seg(2)).await.unwrap();
        dir.segment(&path, "a", seg(3)).await.unwrap();
        dir.ended(&path, "a").await.unwrap();
        let text = std::fs::read_to_string(rec_dir.join(PLAYLIST)).unwrap();
        let listed: Vec<&str> = text.lines().filter(|l| l.ends_with(".m4s")).collect();
        assert_eq!(listed, ["a-s0.m4s", "a-s2.m4s", "a-s3.m4s"], "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert!(
            text.contains("a-s0.m4s\n#EXT-X-DISCONTINUITY\n"),
            "the gap is where segment 1 was lost: {text}"
        );
        assert!(!rec_dir.join("a-s1.m4s").exists());
        assert_eq!(std::fs::read(rec_dir.join("a-s2.m4s")).unwrap(), [2u8; 4]);
    }

    #[test]
    fn a_path_that_cannot_name_a_directory_is_refused() {
        let dir = LocalDir::new(PathBuf::from("/rec"));
        let path = |u: &str, s: &str| StreamPath {
            user_id: u.into(),
            stream_id: s.into(),
        };
        assert_eq!(
            dir.dir_of(&path("a@b.c", "s1"), "ff"),
            Some(PathBuf::from("/rec/a%40b.c/s1/ff"))
        );
        assert_eq!(dir.dir_of(&path("..", "s1"), "ff"), None);
        assert_eq!(dir.dir_of(&path("u", "."), "ff"), None);
    }
}
