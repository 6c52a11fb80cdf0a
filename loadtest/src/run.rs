//! One load-test run: publishers, viewers, and the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::report::{Report, TargetReport};
use crate::viewer::{Http, ViewerStats, legacy_viewer, ll_viewer};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// RTMP base for publishers: stream `i` is published to `{publish}/s{i}`.
    pub publish: Option<String>,
    pub streams: usize,
    pub flv: String,
    pub ffmpeg: bool,
    /// Playback URLs to watch (one per stream, or the two of `--compare`).
    pub play: Vec<String>,
    pub viewers: usize,
    pub legacy_viewers: usize,
    pub duration: Duration,
    /// Time for publishers to start before viewers join.
    pub warmup: Duration,
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
    if let Some(base) = &cfg.publish {
        let data = Bytes::from(std::fs::read(&cfg.flv)?);
        let tags = Arc::new(relay::flv::read_file(&data)?);
        for i in 0..cfg.streams {
            let url = format!("{}/s{i}", base.trim_end_matches('/'));
            let (tags, file, ffmpeg) = (tags.clone(), cfg.flv.clone(), cfg.ffmpeg);
            publishers.push(tokio::spawn(async move {
                if ffmpeg {
                    crate::publisher::publish_ffmpeg(&url, &file, publish_until).await
                } else {
                    crate::publisher::publish_flv(&url, tags, publish_until).await
                }
            }));
        }
        tokio::time::sleep(cfg.warmup).await;
    }
    let until = Instant::now() + cfg.duration;
    let ticker = tokio::spawn(async move {
        let mut i = tokio::time::interval(Duration::from_secs(1));
        loop {
            i.tick().await;
            progress(start.elapsed());
        }
    });
    let mut groups = Vec::new();
    for url in &cfg.play {
        let mut handles = Vec::new();
        for _ in 0..cfg.viewers {
            handles.push(tokio::spawn(ll_viewer(
                Http::new(),
                url.clone(),
                start,
                until,
            )));
        }
        for _ in 0..cfg.legacy_viewers {
            handles.push(tokio::spawn(legacy_viewer(
                Http::new(),
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
    for p in publishers {
        p.await??;
    }
    Ok(Report {
        started,
        duration_s: cfg.duration.as_secs_f64(),
        publishers: cfg.streams * usize::from(cfg.publish.is_some()),
        targets,
    })
}
