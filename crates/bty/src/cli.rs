//! The command-line grammar (clap).

use bty_image::ZeroMode;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "bty",
    version,
    about = "Write pre-built disk images onto disks — exactly, fast, and never onto the wrong disk",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Wizard: start at the image list with this catalog (a path, an http(s) URL, an oras://
    /// reference, or a bty-web's /catalog.toml).
    #[arg(long, value_name = "SOURCE", conflicts_with = "server")]
    pub catalog: Option<String>,
    /// Wizard: start at the image list with this bty-web server's catalog (a bare host gets
    /// http://). With --mac: server-driven mode.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Server-driven mode: this machine's MAC address (the server defaults to bty-server).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Wizard: also list the disks hidden by default (loop devices, zram, optical, ...), still
    /// under every safety check.
    #[arg(long)]
    pub all_disks: bool,
    /// Server-driven mode: do not reboot when done (for tests and running by hand).
    #[arg(long, requires = "mac")]
    pub no_reboot: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write an image onto a block device or into a file.
    ///
    /// The image format is recognised from its content: raw, gzip, xz, zstd or bzip2
    /// (multi-member/stream/frame included). The first MiB is written last and the target is
    /// flushed before success is reported; if anything fails after writing began, the target's
    /// first and last MiB are wiped so it cannot boot a partial image.
    ///
    /// Exit codes: 0 success; 1 failed after writing began (target wiped); 2 usage error or
    /// refused before writing (target untouched).
    Flash(FlashArgs),
    /// Show what an image is: layers, sizes, partition table, qcow2 details.
    Inspect(InspectArgs),
    /// List the disks: size, transport, model, serial, and whether bty may write them (and why
    /// not).
    Disks(DisksArgs),
    /// List the images of a catalog (a path, an http(s) URL, or a bty-web's /catalog.toml),
    /// merged with the local image folder (BTY_IMAGE_ROOT, default /var/lib/bty/images).
    Catalog(CatalogArgs),
    /// Server-driven mode with the server and MAC from the kernel command line (`bty.server=`,
    /// `bty.mac=`), as the netboot environment starts it: post the inventory, get the plan,
    /// carry it out, reboot.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server (default: bty.server= from /proc/cmdline).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// This machine's MAC (default: bty.mac= from /proc/cmdline).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Do not reboot when done.
    #[arg(long)]
    pub no_reboot: bool,
    /// Flash attempts after the first before waiting for the operator.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub retries: u32,
    /// Seconds to keep trying while the server cannot be reached.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub wait: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZeroesArg {
    /// Make zero runs read as zero without writing them (BLKZEROOUT on devices, holes in files).
    Auto,
    /// Write every zero byte.
    Write,
    /// Leave zero runs untouched, keeping what the target held there (only for targets known to
    /// be zeroed); --verify then compares only the non-zero ranges.
    Skip,
}

impl From<ZeroesArg> for ZeroMode {
    fn from(z: ZeroesArg) -> ZeroMode {
        match z {
            ZeroesArg::Auto => ZeroMode::Auto,
            ZeroesArg::Write => ZeroMode::Write,
            ZeroesArg::Skip => ZeroMode::Skip,
        }
    }
}

/// Choosing an image from a catalog, and how registries are reached.
#[derive(Debug, Args)]
pub struct ImageSelection {
    /// Take the image from this catalog (path, URL or oras:// reference); use with --image.
    #[arg(long, value_name = "CATALOG", requires = "image")]
    pub catalog: Option<String>,
    /// The catalog entry to use (by name); its sha256 is verified automatically. Without
    /// --catalog, the local image folder and its catalog.toml are searched.
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// For oras:// image indexes: the platform to pick, as os/arch[/variant] (default: this
    /// machine's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Allow plain HTTP to this registry (host[:port]); loopback registries always may.
    /// Also from BTY_INSECURE_REGISTRIES (comma-separated).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FlashArgs {
    /// SOURCE TARGET, or only TARGET with --catalog/--image. SOURCE is a local file, a block
    /// device, a FIFO, - for standard input, file://PATH, an http(s):// URL or an oras://
    /// reference. TARGET is a
    /// whole block device (e.g. /dev/sdb) or a file path.
    #[arg(value_name = "SOURCE] [TARGET", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    #[command(flatten)]
    pub select: ImageSelection,
    /// Expected sha256 of SOURCE as published (the compressed file), as HEX or sha256:HEX.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Read the written range back, bypassing the page cache, and compare it with the image.
    #[arg(long)]
    pub verify: bool,
    /// What to do with runs of zeros in the image.
    #[arg(long, value_enum, default_value_t = ZeroesArg::Auto, value_name = "MODE")]
    pub zeroes: ZeroesArg,
    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Read SOURCE even when it is a character device other than standard input (such as
    /// /dev/zero or /dev/urandom, which never end).
    #[arg(long)]
    pub allow_char_device: bool,
    /// Machine-readable output: one JSON document per line (progress events, then a result or
    /// an error), each with "schema_version": 1.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: a local file, a block device, a FIFO, - for standard input, file://PATH, an
    /// http(s):// URL or an oras:// reference. Omit it with --catalog/--image.
    pub source: Option<String>,
    #[command(flatten)]
    pub select: ImageSelection,
    /// Print one JSON document with "schema_version": 1.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DisksArgs {
    /// Also list the kinds hidden by default: loop, zram and RAM disks, optical drives, eMMC
    /// boot partitions, device-mapper and md devices.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON document with "schema_version": 1.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// The catalog: a path, an http(s) URL, an oras:// reference, or a bty-web's
    /// /catalog.toml. Without it, only the local image folder is listed.
    pub source: Option<String>,
    /// Leave out the local image folder.
    #[arg(long)]
    pub no_local: bool,
    /// Print one JSON document with "schema_version": 1.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wizard_flags_parse() {
        let cli = Cli::try_parse_from(["bty", "--catalog", "c.toml", "--all-disks"]).unwrap();
        assert!(cli.command.is_none() && cli.all_disks);
        assert_eq!(cli.catalog.as_deref(), Some("c.toml"));
        assert!(Cli::try_parse_from(["bty", "--no-reboot"]).is_err());
        assert!(Cli::try_parse_from(["bty", "--mac", "aa:bb", "--no-reboot"]).is_ok());
        assert!(Cli::try_parse_from(["bty", "--server", "s", "--mac", "aa:bb"]).is_ok());
    }

    #[test]
    fn flash_takes_its_options() {
        let cli = Cli::try_parse_from([
            "bty",
            "flash",
            "a.img.zst",
            "/dev/sdb",
            "--sha256",
            "sha256:ab",
            "--verify",
            "--zeroes",
            "skip",
            "--yes",
            "--json",
        ])
        .unwrap();
        let Some(Command::Flash(f)) = cli.command else {
            panic!("expected flash")
        };
        assert_eq!(f.zeroes, ZeroesArg::Skip);
        assert!(f.verify && f.yes && f.json);
        assert_eq!(f.sha256.as_deref(), Some("sha256:ab"));
    }
}
