//! `bty`: write pre-built disk images onto disks. This binary holds the command line; the bytes
//! engine lives in `bty-image` and block-device handling in `bty-disk`.

mod cli;
mod cmd_catalog;
mod cmd_disks;
mod cmd_flash;
mod cmd_inspect;
mod confirm;
mod output;
mod pick;
mod units;
mod wizard;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit codes shared by every command.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The flash failed after writing began (the target was wiped).
    pub const FAILED_AFTER_WRITE: u8 = 1;
    /// Usage error, or refused before writing (the target is untouched).
    pub const REFUSED: u8 = 2;
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BTY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Flash(args)) => cmd_flash::run(args),
        Some(Command::Inspect(args)) => cmd_inspect::run(args),
        Some(Command::Catalog(args)) => cmd_catalog::run(args),
        Some(Command::Disks(args)) => cmd_disks::run(args),
        None if cli.mac.is_some() => {
            eprintln!(
                "bty: server-driven mode (--server with --mac) is not available in this build yet; without --mac, --server opens the wizard on the server's catalog"
            );
            exit::REFUSED
        }
        None => wizard::run(wizard::WizardArgs {
            catalog: cli.catalog,
            server: cli.server,
            all_disks: cli.all_disks,
            insecure_registries: Vec::new(),
        }),
    };
    ExitCode::from(code)
}
