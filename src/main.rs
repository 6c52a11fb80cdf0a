//! `glasscast serve`: RTMP in; LL-HLS and DASH out. `glasscast check` validates a
//! configuration; `glasscast keys` manages publish keys in the configured store.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use glasscast::config::{self, Config, Overrides};
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

#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay, the HTTP origin and the admin listener.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// RTMP listen address (port 0 picks a free port).
        #[arg(long)]
        rtmp_listen: Option<String>,
        /// HTTP listen address (port 0 picks a free port).
        #[arg(long)]
        http_listen: Option<String>,
        /// Admin listen address: /metrics, /healthz, the management API (port 0 picks one).
        #[arg(long)]
        admin_listen: Option<String>,
        /// Absolute base URL that viewers use to reach the origin.
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Validate the configuration (file, environment) and exit: 0 if valid, 2 if not.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage publish keys in the configured store (auth.keys_file or auth.redis_url).
    Keys {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (the only time it is shown) as JSON.
    Create {
        /// The user the key publishes as.
        #[arg(long)]
        user: String,
        /// The stream it may publish; without it, any stream of the user.
        #[arg(long)]
        stream: Option<String>,
        /// Lifetime in seconds (default 30 days).
        #[arg(long)]
        ttl: Option<u64>,
        /// Client address or CIDR allowed to use it (repeatable; default any).
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
        /// Human-readable name that stands for the key.
        #[arg(long)]
        alias: Option<String>,
    },
    /// List keys (ids and metadata, never the keys).
    List,
    /// Revoke a key by its id.
    Revoke { key_id: String },
    /// Give a key an alias (replacing its previous one).
    Alias { key_id: String, alias: String },
}

/// Loads the configuration or prints every problem; `Err` is the exit code.
fn load_config(args: &ConfigArgs, flags: Overrides) -> Result<Config, ExitCode> {
    let text = match &args.config {
        Some(path) => match config::read_small_file(&path.to_string_lossy())
            .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
        {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("configuration error: cannot read {}: {e}", path.display());
                return Err(ExitCode::from(2));
            }
        },
        None => None,
    };
    let name = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    config::load(
        text.as_deref().map(|t| (name.as_str(), t)),
        std::env::vars(),
        &flags,
    )
    .map_err(|errors| {
        eprintln!("configuration error ({} problem(s)):", errors.len());
        for e in errors {
            eprintln!("  - {e}");
        }
        ExitCode::from(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("cannot start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            rtmp_listen,
            http_listen,
            admin_listen,
            public_url,
        } => load_config(
            &config,
            Overrides {
                rtmp_listen,
                http_listen,
                admin_listen,
                public_url,
            },
        )
        .and_then(serve),
        Command::Check { config } => load_config(&config, Overrides::default()).map(|_| {
            println!("configuration is valid");
            ExitCode::SUCCESS
        }),
        Command::Keys { config, command } => {
            load_config(&config, Overrides::default()).and_then(|cfg| keys(&cfg, command))
        }
    };
    result.unwrap_or_else(|code| code)
}

fn serve(cfg: Config) -> Result<ExitCode, ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log_json {
        // One object per line: the event's fields, its span chain (connection, stream,
        // destination) and the current span, as Loki and Elasticsearch ingest them.
        fmt.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    // Panics inside connection tasks (e.g. in the RTMP library) are contained; log them
    // through tracing so they carry the connection's span.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "task panicked");
    }));

    let rt = runtime()?;
    Ok(rt.block_on(async move {
        let server = match Server::start(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("startup failed: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        // SIGUSR1 drains: placement skips this node, then it stops once its streams end.
        let usr1 = async {
            #[cfg(unix)]
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
            {
                while s.recv().await.is_some() {
                    server.start_drain();
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = server.drained() => {}
            _ = usr1 => {}
        }
        server.shutdown(Duration::from_secs(10)).await;
        ExitCode::SUCCESS
    }))
}

fn keys(cfg: &Config, command: KeysCommand) -> Result<ExitCode, ExitCode> {
    use glasscast::auth::store;
    let rt = runtime()?;
    rt.block_on(async move {
        let fail = |e: &dyn std::fmt::Display| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        };
        let st = glasscast::auth::open_store(cfg).map_err(|e| fail(&format!("{e:#}")))?;
        // Every store error names the store (`redis://…` without its password, or the file).
        let fail = |e: &dyn std::fmt::Display| fail(&format!("{}: {e}", st.describe()));
        match command {
            KeysCommand::Create {
                user,
                stream,
                ttl,
                allow_ips,
                alias,
            } => {
                let spec = relay::auth::key::KeySpec {
                    user_id: user,
                    stream_id: stream,
                    ttl_s: ttl,
                    allow_ips,
                    alias,
                };
                let new = store::create(st.as_ref(), &spec)
                    .await
                    .map_err(|e| fail(&e))?;
                let out = serde_json::json!({
                    "keyId": new.record.key_id,
                    "key": new.key,
                    "expiresAt": humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_secs(new.record.expires_at)
                    )
                    .to_string(),
                    "userId": new.record.user_id,
                    "streamId": new.record.stream_id,
                    "alias": new.record.alias,
                });
                println!("{out}");
            }
            KeysCommand::List => {
                for r in st.list().await.map_err(|e| fail(&e))? {
                    println!("{}", serde_json::to_string(&r).map_err(|e| fail(&e))?);
                }
            }
            KeysCommand::Revoke { key_id } => {
                st.revoke(&key_id).await.map_err(|e| fail(&e))?;
                println!("revoked {key_id}");
            }
            KeysCommand::Alias { key_id, alias } => {
                st.set_alias(&key_id, &alias).await.map_err(|e| fail(&e))?;
                println!("{alias} -> {key_id}");
            }
        }
        Ok(ExitCode::SUCCESS)
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
