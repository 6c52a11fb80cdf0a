//! Publishers: the built-in one replays an FLV file over RTMP in real time (cheap: thousands
//! per process), looping with continuous timestamps; `--ffmpeg` runs `ffmpeg -re -c copy`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use relay::flv::{FileTag, TagKind};
use relay::restream::destination::Destination;
use rml_rtmp::sessions::ClientSessionResult;
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one publisher managed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PublisherStats {
    pub bytes: u64,
    /// The most a tag's write completed after its real-time due moment, ms. It grows without
    /// bound when the server stops reading in real time (TCP backpressure); it also grows when
    /// the publishing process itself is short of CPU, so read it next to that process's load.
    pub max_lag_ms: f64,
    /// The lag of the last tag sent: a server that fell behind and stayed behind shows here,
    /// a moment of backpressure (a connection storm at start) does not.
    pub final_lag_ms: f64,
}

/// Publishes `tags` (an FLV file's) to `url` in real time until `until`.
pub async fn publish_flv(
    url: &str,
    tags: Arc<Vec<FileTag>>,
    until: Instant,
) -> anyhow::Result<PublisherStats> {
    let dest = Destination::parse(url).context("publish URL")?;
    let mut sock = TcpStream::connect((dest.host.as_str(), dest.port)).await?;
    sock.set_nodelay(true)?;
    let mut session = relay::rtmp::client::connect_and_publish(
        &mut sock,
        &dest.app,
        dest.key(),
        &dest.tc_url(),
        Duration::from_secs(10),
    )
    .await?;
    let (mut reader, mut writer) = sock.into_split();
    // Drain what the server sends (acks, pings); nothing of it matters here.
    let drain = tokio::spawn(async move {
        let mut b = vec![0u8; 4096];
        while matches!(reader.read(&mut b).await, Ok(n) if n > 0) {}
    });
    let Some((media, loop_ms)) = loop_plan(&tags) else {
        bail!("the FLV file has no media");
    };
    let start = Instant::now();
    let mut st = PublisherStats::default();
    'outer: for round in 0u64.. {
        for t in &media {
            let ts = round * loop_ms + u64::from(t.timestamp);
            let due = start + Duration::from_millis(ts);
            if due > until {
                break 'outer;
            }
            tokio::time::sleep_until(due.into()).await;
            let r = match t.kind {
                TagKind::Video => {
                    session.publish_video_data(t.body.clone(), RtmpTimestamp::new(ts as u32), false)
                }
                _ => {
                    session.publish_audio_data(t.body.clone(), RtmpTimestamp::new(ts as u32), false)
                }
            }
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if let ClientSessionResult::OutboundResponse(p) = r {
                writer.write_all(&p.bytes).await?;
                st.bytes += p.bytes.len() as u64;
            }
            let lag = Instant::now().saturating_duration_since(due);
            st.final_lag_ms = lag.as_secs_f64() * 1000.0;
            st.max_lag_ms = st.max_lag_ms.max(st.final_lag_ms);
        }
    }
    let _ = writer.shutdown().await;
    drain.abort();
    Ok(st)
}

/// How to loop a file's media tags seamlessly: the tags to send each round and the round's
/// length (ms). The round ends one frame after the last frame of the pacing track (video if
/// there is any), so that track keeps its cadence across the loop; tags of other tracks at or
/// past that point are dropped, so no track steps back. Without this, audio running past
/// the last video frame left a gap in the video at every loop, which made that part late.
pub fn loop_plan(tags: &[FileTag]) -> Option<(Vec<&FileTag>, u64)> {
    let media: Vec<&FileTag> = tags.iter().filter(|t| t.kind != TagKind::Script).collect();
    let has_video = media.iter().any(|t| t.kind == TagKind::Video);
    let pacing: Vec<u64> = media
        .iter()
        .filter(|t| (t.kind == TagKind::Video) == has_video)
        .map(|t| u64::from(t.timestamp))
        .collect();
    let last = *pacing.iter().max()?;
    // The frame interval: the last step between distinct timestamps, or 40 ms if unknown.
    let mut distinct = pacing.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let interval = match distinct.as_slice() {
        [.., a, b] => b - a,
        _ => 40,
    };
    let period = last + interval;
    let media = media
        .into_iter()
        .filter(|t| u64::from(t.timestamp) < period)
        .collect();
    Some((media, period))
}

/// Publishes `file` with `ffmpeg -re -stream_loop -1 -c copy` until `until`.
/// ffmpeg paces itself (`-re`), so no lag is measured for it.
pub async fn publish_ffmpeg(
    url: &str,
    file: &str,
    until: Instant,
) -> anyhow::Result<PublisherStats> {
    let mut child = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            file,
            "-c",
            "copy",
            "-f",
            "flv",
            url,
        ])
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required for --ffmpeg")?;
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => { let _ = child.kill().await; }
        s = child.wait() => { let s = s?; if !s.success() { bail!("ffmpeg exited with {s}"); } }
    }
    Ok(PublisherStats::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(kind: TagKind, timestamp: u32) -> FileTag {
        FileTag {
            kind,
            timestamp,
            body: Bytes::new(),
        }
    }

    #[test]
    fn loop_keeps_video_cadence_and_drops_audio_past_it() {
        let mut tags = vec![tag(TagKind::Script, 0)];
        for i in 0..60u32 {
            tags.push(tag(TagKind::Video, i * 1000 / 30));
        }
        for i in 0..90u32 {
            tags.push(tag(TagKind::Audio, 44 + i * 23));
        }
        let (media, period) = loop_plan(&tags).unwrap();
        // Last video frame at 1966 ms, one frame (33 ms) later the next round starts.
        assert_eq!(period, 1999);
        assert!(media.iter().all(|t| t.kind != TagKind::Script));
        assert_eq!(
            media.iter().filter(|t| t.kind == TagKind::Video).count(),
            60
        );
        let audio: Vec<u32> = media
            .iter()
            .filter(|t| t.kind == TagKind::Audio)
            .map(|t| t.timestamp)
            .collect();
        assert!(audio.iter().all(|ts| u64::from(*ts) < period));
        // The first audio tag of the next round comes after the last one of this round.
        assert!(period + 44 > u64::from(*audio.last().unwrap()));
    }

    #[test]
    fn audio_only_paces_on_audio_and_empty_has_no_plan() {
        let tags: Vec<FileTag> = (0..10u32).map(|i| tag(TagKind::Audio, i * 23)).collect();
        let (media, period) = loop_plan(&tags).unwrap();
        assert_eq!((media.len(), period), (10, 230));
        assert!(loop_plan(&[tag(TagKind::Script, 0)]).is_none());
    }
}
