//! The origin's `/recordings/{userId}/{streamId}/{recordingId}/{file}`: a recording's files from
//! the recording directory, or from object storage once uploaded, and `download.mp4`, one
//! progressive MP4 assembled on the fly from its segments ([`origin::progressive`]).

use std::sync::Arc;

use bytes::Bytes;
use origin::body::{Aborted, Body};
use origin::naming::{MediaName, Names, TrackKind};
use origin::progressive::Builder;
use origin::recording::{BoxFuture, RecordedFile, RecordingFiles, Served};
use origin::request::{RangeReq, parse_range, slice_chunks};
use relay::path::StreamPath;
use tracing::warn;

use super::Store;
use super::catalog::{Catalog, Info, State};
use super::local::PLAYLIST;

/// Name of the progressive MP4 of a recording.
pub const DOWNLOAD: &str = "download.mp4";

/// Serves recordings for the origin.
pub struct Files {
    pub store: Store,
    pub catalog: Arc<Catalog>,
}

impl RecordingFiles for Files {
    fn get<'a>(
        &'a self,
        path: &'a StreamPath,
        id: &'a str,
        file: &'a str,
        range: Option<&'a hyper::header::HeaderValue>,
    ) -> BoxFuture<'a, Option<RecordedFile>> {
        Box::pin(async move {
            let info = self.catalog.get(id).filter(|i| i.path == *path)?;
            if file == DOWNLOAD {
                return self.download(&info, range).await;
            }
            let (content_type, immutable) = match file.rsplit('.').next() {
                Some("m3u8") => (
                    "application/vnd.apple.mpegurl",
                    info.state != State::Recording,
                ),
                Some("mpd") => ("application/dash+xml", info.state != State::Recording),
                Some("mp4") => ("video/mp4", true),
                Some("m4s") => ("video/iso.segment", true),
                _ => return None,
            };
            let chunks = match MediaName::parse(&info.id, file) {
                // DASH's per-track view: cut from the muxed segment (audio and video, so video
                // is track 1 and audio track 2), as the live origin does; the pieces are slices
                // of the segment, never copied.
                Some(MediaName::TrackSegment(msn, kind)) => {
                    let names = Names {
                        prefix: info.id.clone(),
                    };
                    let muxed = self.store.read(&info.dir, &names.segment(msn)).await?;
                    let track = match kind {
                        TrackKind::Video => 1,
                        TrackKind::Audio => 2,
                    };
                    let pieces = origin::cmaf::extract_track(&muxed, track, 1).ok()?;
                    if pieces.is_empty() {
                        return None;
                    }
                    pieces
                }
                _ => vec![self.store.read(&info.dir, file).await?],
            };
            let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            let (body, range) = match parse_range(range, len) {
                RangeReq::Full => (Body::from_chunks(chunks), None),
                RangeReq::Partial(start, end) => (
                    Body::from_chunks(slice_chunks(&chunks, start, end)),
                    Some(Served::Partial { start, end, len }),
                ),
                RangeReq::Unsatisfiable => (Body::empty(), Some(Served::Unsatisfiable { len })),
            };
            Some(RecordedFile {
                body,
                content_type,
                immutable,
                range,
            })
        })
    }
}

impl Store {
    /// A file of the recording directory `dir`: the local copy, else the bucket's.
    pub async fn read(&self, dir: &str, file: &str) -> Option<Bytes> {
        match tokio::fs::read(self.root.join(dir).join(file)).await {
            Ok(b) => return Some(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(recording = %dir, file, error = %e, "reading a recorded file");
                return None;
            }
        }
        let remote = self.remote.as_ref()?;
        match remote.get(&remote.key(dir, file)).await {
            Ok(b) => Some(b),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                warn!(recording = %dir, file, error = %e, "reading a recorded file from the bucket");
                None
            }
        }
    }
}

/// The files a recording's playlist lists, in order: `(init, segment)` per segment.
pub fn listed(playlist: &str) -> Vec<(String, String)> {
    let mut init = String::new();
    let mut out = Vec::new();
    for line in playlist.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            if let Some(uri) = attrs.split(',').find_map(|a| a.trim().strip_prefix("URI=")) {
                init = uri.trim_matches('"').to_string();
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push((init.clone(), line.trim().to_string()));
        }
    }
    out
}

impl Files {
    /// The recording as one MP4: its header is built from every segment first (read once,
    /// not kept), then the file is streamed segment by segment.
    async fn download(
        &self,
        info: &Info,
        range: Option<&hyper::header::HeaderValue>,
    ) -> Option<RecordedFile> {
        let playlist = self.store.read(&info.dir, PLAYLIST).await?;
        let files = listed(std::str::from_utf8(&playlist).ok()?);
        let (first_init, _) = files.first()?;
        let mut builder = match Builder::new(&self.store.read(&info.dir, first_init).await?) {
            Ok(b) => b,
            Err(e) => {
                warn!(recording = %info.id, error = %e, "download.mp4: bad init segment");
                return None;
            }
        };
        let mut current = first_init.clone();
        for (i, (init, seg)) in files.iter().enumerate() {
            if *init != current {
                let data = self.store.read(&info.dir, init).await?;
                if let Err(e) = builder.switch_init(&data) {
                    warn!(recording = %info.id, error = %e, "download.mp4: bad init segment");
                    return None;
                }
                current = init.clone();
            }
            let data = self.store.read(&info.dir, seg).await?;
            if let Err(e) = builder.add_segment(i, &data) {
                warn!(recording = %info.id, error = %e, "download.mp4: bad segment");
                return None;
            }
        }
        let file = match builder.finish() {
            Ok(f) => f,
            Err(e) => {
                warn!(recording = %info.id, error = %e, "download.mp4");
                return None;
            }
        };
        let len = file.len;
        let (header, pieces, served) = match parse_range(range, len) {
            RangeReq::Full => (file.header, file.pieces, None),
            RangeReq::Partial(start, end) => {
                let (header, pieces) = file.range(start, end);
                (header, pieces, Some(Served::Partial { start, end, len }))
            }
            RangeReq::Unsatisfiable => {
                return Some(RecordedFile {
                    body: Body::empty(),
                    content_type: "video/mp4",
                    immutable: false,
                    range: Some(Served::Unsatisfiable { len }),
                });
            }
        };
        let body_len = header.len() as u64 + pieces.iter().map(|p| p.end - p.start).sum::<u64>();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let store = self.store.clone();
        let dir = info.dir.clone();
        tokio::spawn(async move {
            if !header.is_empty() && tx.send(Ok(header)).await.is_err() {
                return;
            }
            let mut loaded: Option<(usize, Bytes)> = None;
            for piece in pieces {
                if loaded.as_ref().is_none_or(|(i, _)| *i != piece.segment) {
                    let Some(data) = store.read(&dir, &files[piece.segment].1).await else {
                        let _ = tx.send(Err(Aborted)).await;
                        return;
                    };
                    loaded = Some((piece.segment, data));
                }
                let Some((_, data)) = &loaded else { return };
                let Some(slice) = (piece.end as usize <= data.len())
                    .then(|| data.slice(piece.start as usize..piece.end as usize))
                else {
                    // The file changed under us: cut the response off rather than end it.
                    let _ = tx.send(Err(Aborted)).await;
                    return;
                };
                if tx.send(Ok(slice)).await.is_err() {
                    return;
                }
            }
        });
        Some(RecordedFile {
            body: Body::streaming_sized(rx, body_len),
            content_type: "video/mp4",
            immutable: info.state != State::Recording,
            range: served,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_playlist_lists_its_segments_with_their_inits() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"a-init1.mp4\"\n#EXTINF:2.0,\na-s0.m4s\n\
                    #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"a-init2.mp4\"\n#EXTINF:2.0,\na-s5.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(
            listed(text),
            [
                ("a-init1.mp4".to_string(), "a-s0.m4s".to_string()),
                ("a-init2.mp4".to_string(), "a-s5.m4s".to_string())
            ]
        );
    }
}
