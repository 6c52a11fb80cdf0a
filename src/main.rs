//! `glasscast serve`: RTMP in; LL-HLS and DASH out.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use glasscast::config::{self, Overrides};
use glasscast::server::Server;

#[derive(Parser)]
#[command(
    name = "glasscast",
    version,
    about = "Live-video relay: RTMP in, LL-HLS and DASH out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay and the HTTP origin.
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// RTMP listen address (port 0 picks a free port).
        #[arg(long)]
        rtmp_listen: Option<String>,
        /// HTTP listen address (port 0 picks a free port).
        #[arg(long)]
        http_listen: Option<String>,
        /// Absolute base URL that viewers use to reach the origin.
        #[arg(long)]
        public_url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve {
        config: file,
        rtmp_listen,
        http_listen,
        public_url,
    } = cli.command;
    let text = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("configuration error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let name = file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let cfg = match config::load(
        text.as_deref().map(|t| (name.as_str(), t)),
        std::env::vars(),
        &Overrides {
            rtmp_listen,
            http_listen,
            public_url,
        },
    ) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("configuration error ({} problem(s)):", errors.len());
            for e in errors {
                eprintln!("  - {e}");
            }
            return ExitCode::from(2);
        }
    };

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Panics inside connection tasks (e.g. in the RTMP library) are contained; log them
    // through tracing so they carry the connection's span.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "task panicked");
    }));

    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match Server::start(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("startup failed: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        server.shutdown(Duration::from_secs(10)).await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
