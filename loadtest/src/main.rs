//! `glasscast-loadtest`: publishers, LL-HLS viewers, and a latency report.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use glasscast_loadtest::compare::Side;
use glasscast_loadtest::run::{RunConfig, run};
use indicatif::{ProgressBar, ProgressStyle};

// glibc's malloc was a fifth of the generator's CPU with thousands of viewers.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "glasscast-loadtest",
    about = "Publishers + LL-HLS viewers + publish-to-viewer latency",
    after_help = "Errors are printed on one line; RUST_LIB_BACKTRACE=1 adds where they came from."
)]
struct Cli {
    /// RTMP base to publish to: stream i goes to {publish}/s{i}.
    #[arg(long)]
    publish: Option<String>,
    /// Number of publishers (streams).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Publish to the RTMP URLs in this file instead, one per line (one stream each), e.g.
    /// one listening `ffmpeg -listen 1` per stream.
    #[arg(long, conflicts_with = "publish")]
    publish_urls: Option<std::path::PathBuf>,
    /// FLV file the publishers replay in real time (default: a built-in 4 s 720p30 clip, looped).
    #[arg(long)]
    flv: Option<std::path::PathBuf>,
    /// Publish with `ffmpeg -re -c copy` processes instead of the built-in publisher.
    #[arg(long)]
    ffmpeg: bool,
    /// HTTP base to watch: viewers of stream i open {play}/s{i}/index.m3u8.
    #[arg(long)]
    play: Option<String>,
    /// Watch these playlist URLs instead (any server: Glasscast, a CDN, Cloudflare, ...).
    #[arg(long, num_args = 1..)]
    url: Vec<String>,
    /// Compare two playlist URLs side by side (same viewers on each): time to first playable
    /// playlist, latency, stalls and errors, with the winner of each.
    #[arg(long, num_args = 2, value_names = ["URL_A", "URL_B"])]
    compare: Vec<String>,
    /// Compare our origin with the managed platform of a stream in `ab` delivery mode, both
    /// URLs read from its status on the admin API:
    /// `http://127.0.0.1:9997/v1/streams/{userId}/{streamId}`.
    #[arg(long, conflicts_with = "compare")]
    compare_stream: Option<String>,
    /// Bearer token for `--compare-stream` (the relay's `admin.token`).
    #[arg(long)]
    admin_token: Option<String>,
    /// LL-HLS viewers per stream (or per URL).
    #[arg(long, default_value_t = 10)]
    viewers: usize,
    /// LL-HLS viewers make only the blocking playlist requests, not the part GETs: measures
    /// blocking-reload wake-up for more viewers than the generator could feed part bytes to.
    #[arg(long)]
    playlist_only: bool,
    /// Legacy viewers (whole segments) per stream (or per URL).
    #[arg(long, default_value_t = 0)]
    legacy_viewers: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds for publishers to start before viewers join.
    #[arg(long, default_value_t = 4)]
    warmup: u64,
    /// Run on one thread (tokio's current-thread runtime). On one core it turns over more
    /// playlist-only viewers per second (5,000: ~4.2 updates/s each against ~2.9), while the
    /// default multi-threaded runtime gave full viewers lower tail latency.
    #[arg(long)]
    single_thread: bool,
    /// Where to write report.json, report.md and the SVG charts.
    #[arg(long, default_value = "loadtest-report")]
    out: std::path::PathBuf,
}

/// Errors are one line naming what they are about (the causes joined with `: `); the
/// backtrace only when asked for with `RUST_LIB_BACKTRACE=1` (`RUST_BACKTRACE` is often set
/// for panics and is not taken as asking).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = if cli.single_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .context("cannot start the runtime")
    .and_then(|runtime| runtime.block_on(run_cli(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glasscast-loadtest: {e:#}");
            if std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    let mut play: Vec<String> = Vec::new();
    if let Some(base) = &cli.play {
        play.extend(
            (0..cli.streams).map(|i| format!("{}/s{i}/index.m3u8", base.trim_end_matches('/'))),
        );
    }
    play.extend(cli.url.iter().cloned());
    let compare = match (&cli.compare_stream, cli.compare.as_slice()) {
        (Some(status), _) => Some(Side::ab_pair(status, cli.admin_token.clone())),
        (None, [a, b]) => Some([Side::Url(a.clone()), Side::Url(b.clone())]),
        _ => None,
    };
    let publish: Vec<String> = match (&cli.publish, &cli.publish_urls) {
        (Some(base), _) => (0..cli.streams)
            .map(|i| format!("{}/s{i}", base.trim_end_matches('/')))
            .collect(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("reading {}", file.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        (None, None) => Vec::new(),
    };
    if play.is_empty() && publish.is_empty() && compare.is_none() {
        bail!("nothing to do: give --publish and/or --play, --url or --compare");
    }
    let total = cli.warmup + cli.duration;
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} s {msg}",
    )?);
    let b = bar.clone();
    let report = run(
        RunConfig {
            flv: cli.flv.clone(),
            ffmpeg: cli.ffmpeg,
            play,
            compare,
            viewers: cli.viewers,
            fetch_parts: !cli.playlist_only,
            legacy_viewers: cli.legacy_viewers,
            duration: Duration::from_secs(cli.duration),
            warmup: Duration::from_secs(if publish.is_empty() { 0 } else { cli.warmup }),
            publish,
        },
        move |elapsed| b.set_position(elapsed.as_secs().min(total)),
    )
    .await?;
    bar.finish_and_clear();
    report
        .write(&cli.out)
        .with_context(|| format!("cannot write the report to {}", cli.out.display()))?;
    println!("{}", report.markdown());
    println!("report written to {}", cli.out.display());
    Ok(())
}
