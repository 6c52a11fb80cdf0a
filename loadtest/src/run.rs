//! One load-test run: publishers, viewers, and the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

use crate::compare::{Comparison, Side, probe};
use crate::report::{PublisherReport, Report, TargetReport};
use crate::viewer::{Http, ViewerStats, legacy_viewer, ll_viewer};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// One RTMP URL per publisher (stream).
    pub publish: Vec<String>,
    /// The FLV publishers replay; `None` = the built-in clip ([`crate::BUILTIN_FLV`]).
    pub flv: Option<std::path::PathBuf>,
    pub ffmpeg: bool,
    /// Playback URLs to watch (one per stream).
    pub play: Vec<String>,
    /// Two sides to compare (after `play`): probed from the start for their first playable
    /// playlist, then watched like `play`.
    pub compare: Option<[Side; 2]>,
    pub viewers: usize,
    /// LL viewers fetch every hinted part; without it they only make the blocking playlist
    /// requests (what measures wake-up when part bytes would saturate the generator).
    pub fetch_parts: bool,
    pub legacy_viewers: usize,
    pub duration: Duration,
    /// Time for publishers to start before viewers join.
    pub warmup: Duration,
}

/// The built-in clip written to a temporary file (for `ffmpeg -i`), removed when dropped.
struct TempClip(std::path::PathBuf);

impl TempClip {
    fn write(bytes: &[u8]) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("glasscast-loadtest-{}.flv", std::process::id()));
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write the clip for ffmpeg to {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempClip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs publishers and viewers; `progress` is called about once a second with elapsed time.
pub async fn run(
    cfg: RunConfig,
    progress: impl Fn(Duration) + Send + 'static,
) -> anyhow::Result<Report> {
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let start = Instant::now();
    // Publishers outlive the viewers a little, so the viewers' last blocking requests are
    // answered instead of timing out when the streams stop.
    let publish_until = start + cfg.warmup + cfg.duration + Duration::from_secs(3);
    let mut publishers = Vec::new();
    // Keeps the built-in clip on disk while ffmpeg publishers read it.
    let mut _clip = None;
    if !cfg.publish.is_empty() {
        let (data, name) = match &cfg.flv {
            Some(p) => (
                Bytes::from(
                    std::fs::read(p)
                        .with_context(|| format!("cannot read the FLV {}", p.display()))?,
                ),
                p.display().to_string(),
            ),
            None => (
                Bytes::from_static(crate::BUILTIN_FLV),
                "the built-in clip".into(),
            ),
        };
        let tags = Arc::new(
            relay::flv::read_file(&data).with_context(|| format!("{name} is not a usable FLV"))?,
        );
        let file = match &cfg.flv {
            Some(p) => p.display().to_string(),
            None if cfg.ffmpeg => {
                let clip = TempClip::write(crate::BUILTIN_FLV)?;
                let path = clip.0.display().to_string();
                _clip = Some(clip);
                path
            }
            None => String::new(),
        };
        for url in &cfg.publish {
            let (url, tags, file, ffmpeg) = (url.clone(), tags.clone(), file.clone(), cfg.ffmpeg);
            publishers.push(tokio::spawn(async move {
                if ffmpeg {
                    crate::publisher::publish_ffmpeg(&url, &file, publish_until).await
                } else {
                    crate::publisher::publish_flv(&url, tags, publish_until).await
                }
            }));
        }
    }
    let http = Http::new();
    let probes = cfg.compare.clone().map(|sides| {
        let deadline = start + cfg.warmup + cfg.duration.max(Duration::from_secs(60));
        sides.map(|side| tokio::spawn(probe(http.clone(), side, start, deadline)))
    });
    tokio::time::sleep(cfg.warmup).await;
    let mut play = cfg.play.clone();
    let mut sides = None;
    if let Some([a, b]) = probes {
        let (a, b) = (a.await?, b.await?);
        for p in [&a, &b] {
            // A side that never appeared is still reported (with its errors).
            play.push(
                p.url
                    .clone()
                    .unwrap_or_else(|| format!("unavailable: {}", p.label)),
            );
        }
        sides = Some([a, b]);
    }
    let until = Instant::now() + cfg.duration;
    let ticker = tokio::spawn(async move {
        let mut i = tokio::time::interval(Duration::from_secs(1));
        loop {
            i.tick().await;
            progress(start.elapsed());
        }
    });
    // One keep-alive pool for all viewers: every in-flight request still has a connection of
    // its own, and thousands of viewers do not each build a TLS configuration.
    let mut groups = Vec::new();
    for url in &play {
        let mut handles = Vec::new();
        for _ in 0..cfg.viewers {
            handles.push(tokio::spawn(ll_viewer(
                http.clone(),
                url.clone(),
                cfg.fetch_parts,
                start,
                until,
            )));
        }
        for _ in 0..cfg.legacy_viewers {
            handles.push(tokio::spawn(legacy_viewer(
                http.clone(),
                url.clone(),
                start,
                until,
            )));
        }
        groups.push((url.clone(), handles));
    }
    let mut targets = Vec::new();
    for (url, handles) in groups {
        let mut stats: Vec<ViewerStats> = Vec::new();
        for h in handles {
            stats.push(h.await?);
        }
        targets.push(TargetReport::from_viewers(&url, &stats));
    }
    ticker.abort();
    let mut stats = Vec::new();
    let mut errors = Vec::new();
    for p in publishers {
        match p.await? {
            Ok(s) => stats.push(s),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let comparison = sides.map(|sides| {
        let n = targets.len();
        Comparison::new(sides, &targets[n - 2], &targets[n - 1])
    });
    Ok(Report {
        started,
        duration_s: cfg.duration.as_secs_f64(),
        publishers: PublisherReport::from_publishers(&stats, &errors),
        targets,
        comparison,
    })
}
