//! Publishers: the built-in one replays an FLV file over RTMP in real time (cheap: thousands
//! per process), looping with continuous timestamps; `--ffmpeg` runs `ffmpeg -re -c copy`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use relay::flv::{FileTag, TagKind};
use relay::restream::destination::Destination;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn write(sock: &mut TcpStream, results: Vec<ClientSessionResult>) -> anyhow::Result<()> {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            sock.write_all(&p.bytes).await?;
        }
    }
    Ok(())
}

/// Publishes `tags` (an FLV file's) to `url` in real time until `until`. Returns bytes sent.
pub async fn publish_flv(
    url: &str,
    tags: Arc<Vec<FileTag>>,
    until: Instant,
) -> anyhow::Result<u64> {
    let dest = Destination::parse(url).context("publish URL")?;
    let mut sock = TcpStream::connect((dest.host.as_str(), dest.port)).await?;
    sock.set_nodelay(true)?;
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(
        &hs.generate_outbound_p0_and_p1()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )
    .await?;
    let mut buf = vec![0u8; 8192];
    let mut input = loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("closed during handshake");
        }
        match hs
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut cfg = ClientSessionConfig::new();
    cfg.tc_url = Some(dest.tc_url());
    let (mut session, initial) = ClientSession::new(cfg).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    write(&mut sock, initial).await?;
    let r = session
        .request_connection(dest.app.clone())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    write(&mut sock, vec![r]).await?;
    loop {
        let results = session
            .handle_input(&input)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut out = Vec::new();
        let mut publishing = false;
        for r in results {
            match r {
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    out.push(
                        session
                            .request_publishing(dest.key().to_string(), PublishRequestType::Live)
                            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    );
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    publishing = true
                }
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestRejected { description },
                ) => {
                    bail!("connect rejected: {description}")
                }
                other => out.push(other),
            }
        }
        write(&mut sock, out).await?;
        if publishing {
            break;
        }
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("publish refused (connection closed)");
        }
        input = buf[..n].to_vec();
    }
    let (mut reader, mut writer) = sock.into_split();
    // Drain what the server sends (acks, pings); nothing of it matters here.
    let drain = tokio::spawn(async move {
        let mut b = vec![0u8; 4096];
        while matches!(reader.read(&mut b).await, Ok(n) if n > 0) {}
    });
    let media: Vec<&FileTag> = tags.iter().filter(|t| t.kind != TagKind::Script).collect();
    // Loop after the latest timestamp of any track (audio often runs past the last video
    // frame), plus about a frame, so timestamps keep increasing on every track.
    let Some(max_ts) = media.iter().map(|t| t.timestamp).max() else {
        bail!("the FLV file has no media");
    };
    let loop_ms = u64::from(max_ts) + 40;
    let start = Instant::now();
    let mut sent = 0u64;
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
                sent += p.bytes.len() as u64;
            }
        }
    }
    let _ = writer.shutdown().await;
    drain.abort();
    Ok(sent)
}

/// Publishes `file` with `ffmpeg -re -stream_loop -1 -c copy` until `until`.
pub async fn publish_ffmpeg(url: &str, file: &str, until: Instant) -> anyhow::Result<u64> {
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
    Ok(0)
}
