//! `bty`: write pre-built disk images onto disks. This binary holds the command line; the bytes
//! engine lives in `bty-image` and block-device handling in `bty-disk`.

mod agent;
mod cli;
mod cmd_catalog;
mod cmd_disks;
mod cmd_flash;
mod cmd_inspect;
mod confirm;
mod output;
mod pick;
mod system;
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
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BTY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
        Some(Command::Agent(a)) => {
            let (server, mac) = agent::from_cmdline(&agent::kernel_cmdline());
            match (a.server.or(server), a.mac.or(mac)) {
                (Some(server), Some(mac)) => agent::run(agent::AgentArgs {
                    server,
                    mac,
                    no_reboot: a.no_reboot,
                    retries: a.retries,
                    wait: std::time::Duration::from_secs(a.wait),
                }),
                _ => {
                    eprintln!(
                        "bty agent: no bty.server= and bty.mac= on the kernel command line; pass --server and --mac"
                    );
                    exit::REFUSED
                }
            }
        }
        None if cli.mac.is_some() => agent::run(agent::AgentArgs {
            server: cli.server.unwrap_or_else(|| "bty-server".into()),
            mac: cli.mac.unwrap_or_default(),
            no_reboot: cli.no_reboot,
            retries: 2,
            wait: std::time::Duration::from_secs(300),
        }),
        None => wizard::run(wizard::WizardArgs {
            catalog: cli.catalog,
            server: cli.server,
            all_disks: cli.all_disks,
            insecure_registries: Vec::new(),
        }),
    };
    ExitCode::from(code)
}
