//! `bty-web`: the fleet controller. With no command it serves (UI, JSON API) on
//! `[server] host:port` with state in `[paths] state_dir`; `show-config` prints the effective
//! configuration with where each value came from.

mod app;
mod auth;
mod cache;
mod config;
mod db;
mod error;
mod fetch;
mod guard;
mod init;
mod ops;
mod portability;
mod pxe;
mod retention;
mod routes;
mod serve;
mod state;
mod tftp;
mod ui;
mod urls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::state::AppState;

#[derive(Debug, Parser)]
#[command(name = "bty-web", version, about = "The bty fleet controller")]
struct Cli {
    /// Configuration file(s), read in order instead of the default search list.
    #[arg(long, value_name = "PATH", global = true)]
    config: Vec<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Print each effective configuration key, its value (secrets masked) and its source.
    ShowConfig,
    /// Write machines (inventory and bindings) and catalog entries to DIR/inventory.json
    /// (upstream's bundle format, version 3).
    Export { dir: PathBuf },
    /// Read DIR/inventory.json (version 3) into the state.
    Import { dir: PathBuf },
    /// Write DIR/bty.toml (commented, with a fresh admin password and session secret) and the
    /// service files for one way of running bty-web. Nothing else is touched.
    Init {
        dir: PathBuf,
        /// A native systemd unit (the default).
        #[arg(long, group = "style")]
        unit: bool,
        /// A Podman Quadlet unit (bty-web.container).
        #[arg(long, group = "style")]
        quadlet: bool,
        /// A compose file (compose.yaml).
        #[arg(long, group = "style")]
        compose: bool,
        /// Replace files that exist (with new secrets).
        #[arg(long)]
        force: bool,
    },
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let files = if cli.config.is_empty() {
        config::default_files(&env)
    } else {
        cli.config.clone()
    };
    Ok(Config::load(&files, &env)?)
}

/// Create the state folder, private to bty-web (it holds the password hash, the sessions and
/// the session key).
fn state_folder(cfg: &Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("creating the state folder {}", cfg.state_dir.display()))?;
    db::set_mode(&cfg.state_dir, 0o700);
    Ok(())
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    state_folder(&cfg)?;
    std::fs::create_dir_all(&cfg.boot_dir)
        .with_context(|| format!("creating the boot folder {}", cfg.boot_dir.display()))?;
    let db = db::Db::open(&cfg.state_dir.join("state.db")).context("opening the state database")?;
    let keys = auth::Keys::load(cfg.session_secret.as_deref(), &cfg.state_dir)
        .context("loading the session key")?;
    if cfg.default_password() {
        tracing::warn!(
            "the admin password is the default (bty-lab): anyone on the network can sign in; set [admin] password or BTY_ADMIN_PASSWORD"
        );
    }
    let ipxe_root = cfg.tftp_root();
    for f in tftp::IPXE_FILES {
        if !ipxe_root.join(f).is_file() {
            tracing::info!(
                "{f} is not in {} (Debian's ipxe package has it under /usr/lib/ipxe)",
                ipxe_root.display()
            );
        }
    }
    let mut tftp_addr = None;
    if let Some((bind, root)) = cfg.tftp.clone() {
        let slots = tftp::Slots::new(cfg.limits.tftp_transfers, cfg.limits.tftp_per_client);
        match tftp::start(bind, root.clone(), slots).await {
            Ok(a) => {
                eprintln!("bty-web tftp on udp {a} (root {})", root.display());
                tftp_addr = Some(a);
            }
            // HTTP keeps serving: PXE by HTTP or another TFTP server still works.
            Err(e) => eprintln!("bty-web: {e}"),
        }
    }
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let mut visit = local;
    if visit.ip().is_unspecified() {
        visit.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    eprintln!(
        "bty-web {} serving on http://{local} (state {}); sign in at http://{visit}/ui/login",
        env!("CARGO_PKG_VERSION"),
        cfg.state_dir.display()
    );
    let mut state = AppState::new(cfg, db, keys);
    state.tftp_addr = tftp_addr;
    if state.cfg.cache.enabled {
        state.cache.reconcile().await.with_context(|| {
            format!(
                "opening the image cache in {}",
                state.cfg.cache.dir.display()
            )
        })?;
        eprintln!(
            "bty-web image cache in {} (cap {} bytes)",
            state.cfg.cache.dir.display(),
            state.cache.cap
        );
    }
    retention::prune_once(&state).await;
    retention::spawn(state.clone());
    let conns = state.conns.clone();
    let app = app::router(state);
    serve::serve(listener, app, conns, async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("stopping");
    })
    .await?;
    Ok(())
}

/// Run `f` on the state database without serving (export, import).
fn offline<F, Fut>(cfg: Config, f: F) -> ExitCode
where
    F: FnOnce(db::Db) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let run = async {
        state_folder(&cfg)?;
        let db =
            db::Db::open(&cfg.state_dir.join("state.db")).context("opening the state database")?;
        f(db).await
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bty-web: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs for a service: colour only on a terminal (never ANSI codes in files or the journal),
/// and `BTY_LOG_FORMAT=json` for log collectors (one JSON object a line).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BTY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = std::env::var("BTY_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format.trim().to_ascii_lowercase().as_str() {
        "json" => builder.json().try_init(),
        "" | "text" => builder.try_init(),
        other => {
            eprintln!("bty-web: BTY_LOG_FORMAT={other:?} is not text or json; logging text");
            builder.try_init()
        }
    };
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    // `init` needs no configuration: it writes one.
    if let Some(Command::Init {
        dir,
        quadlet,
        compose,
        force,
        ..
    }) = &cli.command
    {
        let style = if *quadlet {
            init::Style::Quadlet
        } else if *compose {
            init::Style::Compose
        } else {
            init::Style::Unit
        };
        return match init::run(dir, style, *force) {
            Ok(files) => {
                for f in &files {
                    println!("wrote {}", f.display());
                }
                println!(
                    "the admin password is in {} ([admin] password); keep that file private",
                    dir.join("bty.toml").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bty-web init: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bty-web: configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::ShowConfig) => {
            println!(
                "# files read: {}",
                if cfg.files.is_empty() {
                    "none".to_string()
                } else {
                    cfg.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            for (k, v, origin) in cfg.describe() {
                println!("{k} = {v:?}  # {origin}");
            }
            ExitCode::SUCCESS
        }
        // Answered before the configuration was loaded.
        Some(Command::Init { .. }) => ExitCode::SUCCESS,
        Some(Command::Export { dir }) => offline(cfg, |db| async move {
            let n = portability::export(&db, &dir).await?;
            println!(
                "exported {n} machines to {}",
                dir.join("inventory.json").display()
            );
            Ok(())
        }),
        Some(Command::Import { dir }) => offline(cfg, |db| async move {
            let (m, c) = portability::import(&db, &dir).await?;
            println!("imported {m} machines and {c} new catalog entries");
            Ok(())
        }),
        Some(Command::Serve) | None => {
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("bty-web: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bty-web: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
