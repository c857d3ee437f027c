//! The server-driven agent: `bty --server S --mac M`, or `bty agent` (reads `bty.server=` and
//! `bty.mac=` from the kernel command line). It posts the machine's inventory, asks for the
//! plan and carries it out with no human: `flash` (the disk with the plan's serial, the image's
//! sha256 verified, progress reported about once a second, `done` posted, reboot),
//! `interactive` (the wizard on the server's catalog), `inventory` (reboot), `exit`.
//!
//! On a failed flash it posts `failed` with the stage and reason, shows the error, and tries
//! again up to `--retries` times; then, at a terminal, it waits for the operator instead of
//! rebooting into another attempt (no reboot loops); without a terminal it exits 1.
//!
//! Its screen is where the netboot `init` put it (the monitor, tty1, unless `bty.console=`
//! names a port); every other serial console gets line markers (see [`markers`]).

mod inventory;
pub mod markers;
mod server;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bty_image::digest::Sha256Digest;
use bty_image::flash::preflight;
use bty_image::{CancelToken, FlashOptions, Progress, Stage, Target, ZeroMode, flash, inspect};
use bty_proto::plan::Plan;
use bty_proto::{FlashProgress, InventoryPost, Mac};
use bty_source::HttpClient;
use bty_source::resolve::{ResolveOptions, resolve};

use self::markers::{Markers, Measure};
use self::server::Server;
use crate::exit;

pub struct AgentArgs {
    pub server: String,
    pub mac: String,
    pub no_reboot: bool,
    pub retries: u32,
    pub wait: Duration,
}

/// `bty.server=` and `bty.mac=` from a kernel command line.
pub fn from_cmdline(cmdline: &str) -> (Option<String>, Option<String>) {
    let mut server = None;
    let mut mac = None;
    for w in cmdline.split_whitespace() {
        if let Some(v) = w.strip_prefix("bty.server=") {
            server.get_or_insert_with(|| v.to_string());
        } else if let Some(v) = w.strip_prefix("bty.mac=") {
            mac.get_or_insert_with(|| v.to_string());
        }
    }
    (server, mac)
}

/// The terminal the agent's screen is on: `bty.console=ttyS0` names one, else the monitor.
pub fn screen_tty(cmdline: &str) -> std::path::PathBuf {
    let name = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bty.console="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("tty1");
    std::path::Path::new("/dev").join(name)
}

/// The kernel command line (in debug and test builds `BTY_TEST_CMDLINE` may replace it).
pub fn kernel_cmdline() -> String {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("BTY_TEST_CMDLINE") {
        return v;
    }
    std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
}

fn say(msg: &str) {
    eprintln!("bty agent: {msg}");
}

pub fn run(args: AgentArgs) -> u8 {
    let mac = match Mac::parse(&args.mac) {
        Ok(m) => m.to_string(),
        Err(e) => {
            say(&format!("{e}"));
            return exit::REFUSED;
        }
    };
    let server = Server::new(&args.server, &mac, args.wait);
    let cmdline = kernel_cmdline();
    let markers = Markers::for_this_machine(&cmdline, &screen_tty(&cmdline));
    markers.say(&format!("start v{} mac {mac}", env!("CARGO_PKG_VERSION")));
    say(&format!("server {} mac {mac}", server.base));
    markers.say("stage inventory");

    let disks = inventory::disks();
    let body = InventoryPost {
        disks: inventory::wire_disks(&disks),
        lshw: Some(inventory::hardware()),
        arch: Some(bty_proto::arch::this_machine().to_string()),
    };
    let mut posted = server.post_inventory(&body);
    if let Err(server::CallError::Status(404, _)) = posted {
        // The server has not met this MAC yet (booted by hand, not by PXE): asking for the
        // plan introduces it, then the inventory is accepted.
        say("the server does not know this machine yet; introducing it");
        let _ = server.get_plan();
        posted = server.post_inventory(&body);
    }
    if let Err(e) = posted {
        say(&format!("posting the inventory failed: {e}"));
        return operator_or_exit(&args, "inventory", &e.to_string());
    }
    markers.say("stage plan");
    let plan = match server.get_plan().map(test_plan) {
        Ok(p) => p,
        Err(e) => {
            say(&format!("getting the plan failed: {e}"));
            markers.say(&format!("failed: plan: {e}"));
            return operator_or_exit(&args, "plan", &e.to_string());
        }
    };
    match plan {
        Plan::Exit => {
            say("plan: exit");
            markers.say("done (plan: exit)");
            exit::OK
        }
        Plan::Inventory => {
            say("plan: inventory (posted)");
            markers.say("done (inventory posted)");
            finish(&args)
        }
        Plan::Interactive { catalog } => {
            say(&format!("plan: interactive, catalog {catalog}"));
            markers.say("stage wizard");
            crate::wizard::run(crate::wizard::WizardArgs {
                catalog: Some(catalog),
                ..Default::default()
            })
        }
        Plan::Flash {
            image,
            target_disk_serial,
            name,
            disk_image_sha,
            arch,
            ..
        } => {
            say(&format!(
                "plan: flash {name} ({image}) onto the disk with serial {target_disk_serial}"
            ));
            markers.say(&format!("stage flash {name}"));
            if let Some(why) = arch_mismatch(arch.as_deref()) {
                say(&format!("FLASH REFUSED: {why}; nothing was written"));
                markers.say(&format!("failed: checking the image: {why}"));
                server.report_failed("checking the image", &why);
                return operator_or_exit(&args, "checking the image", &why);
            }
            let job = FlashJob {
                image,
                serial: target_disk_serial,
                sha: disk_image_sha,
            };
            let mut attempt = 0;
            loop {
                attempt += 1;
                match job.run(&server, &markers) {
                    Ok(summary) => {
                        say(&summary);
                        // `done` on the serial line once the server has been told (or failed to be).
                        match server.report_done() {
                            Ok(()) => markers.say("done"),
                            Err(e) => {
                                say(&format!("reporting done failed: {e}"));
                                markers.say(&format!("done (reporting it failed: {e})"))
                            }
                        };
                        return finish(&args);
                    }
                    Err((stage, reason)) => {
                        say(&format!("FLASH FAILED while {stage}: {reason}"));
                        markers.say(&format!("failed: {stage}: {reason}"));
                        server.report_failed(stage, &reason);
                        if attempt > args.retries {
                            return operator_or_exit(&args, stage, &reason);
                        }
                        say(&format!("trying again ({} of {})", attempt, args.retries));
                        std::thread::sleep(Duration::from_secs(2));
                    }
                }
            }
        }
    }
}

/// In debug and test builds, `BTY_TEST_PLAN` (JSON) replaces the server's plan after it was
/// fetched: a test can drive the flash and its reports against a server that would not serve
/// that plan itself (upstream 0.77 serves flash plans only for images its cache holds).
fn test_plan(plan: Plan) -> Plan {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var("BTY_TEST_PLAN") {
        match serde_json::from_str(&v) {
            Ok(p) => return p,
            Err(e) => say(&format!("BTY_TEST_PLAN ignored: {e}")),
        }
    }
    plan
}

/// Why an image built for `image_arch` must not go onto this machine, if it must not.
fn arch_mismatch(image_arch: Option<&str>) -> Option<String> {
    let image = image_arch?;
    let here = bty_proto::arch::this_machine();
    let wanted = bty_proto::arch::canonical(image).unwrap_or(image);
    (wanted != here).then(|| format!("the image is built for {wanted}, this machine is {here}"))
}

/// The image size the write markers count against: the known one; once writing ended, what
/// was written; while a compressed stream of unknown decoded size is written, an estimate
/// from the download's share so far, kept above what was written (100 % is said only at the
/// end).
fn write_total(p: &Progress) -> Option<u64> {
    if p.total.is_some() {
        return p.total;
    }
    if matches!(p.stage, Stage::Syncing | Stage::Verifying | Stage::Done) {
        return Some(p.bytes_written);
    }
    let read = p.bytes_read.max(1);
    let est = (u128::from(p.bytes_written) * u128::from(p.source_size?) / u128::from(read)) as u64;
    Some(est.max(p.bytes_written + 1))
}

/// Done: reboot (unless `--no-reboot`).
fn finish(args: &AgentArgs) -> u8 {
    if args.no_reboot {
        say("not rebooting (--no-reboot)");
        return exit::OK;
    }
    say("rebooting");
    match crate::system::reboot() {
        Ok(()) => exit::OK,
        Err(e) => {
            say(&format!("reboot failed: {e}"));
            exit::FAILED_AFTER_WRITE
        }
    }
}

/// Out of retries: at a terminal, wait for the operator; otherwise exit 1.
fn operator_or_exit(args: &AgentArgs, stage: &str, reason: &str) -> u8 {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return exit::FAILED_AFTER_WRITE;
    }
    eprintln!(
        "\nbty agent stopped while {stage}: {reason}\nThe machine will not reboot on its own. Type 'reboot' to reboot, or 'shell' to exit to a shell."
    );
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
            return exit::FAILED_AFTER_WRITE;
        }
        match line.trim() {
            "reboot" if !args.no_reboot => {
                let _ = crate::system::reboot();
            }
            "shell" | "exit" => return exit::FAILED_AFTER_WRITE,
            _ => eprintln!("type 'reboot' or 'shell'"),
        }
    }
}

struct FlashJob {
    image: String,
    serial: String,
    sha: Option<String>,
}

type Failure = (&'static str, String);

impl FlashJob {
    /// Find the disk, write the image, verify the published digest; a summary line.
    fn run(&self, server: &Server, markers: &Markers) -> Result<String, Failure> {
        let all = inventory::disks();
        let matching: Vec<_> = all
            .iter()
            .filter(|c| c.disk.serial.as_deref() == Some(self.serial.as_str()))
            .collect();
        let seen = || {
            let mut s: Vec<String> = all.iter().filter_map(|c| c.disk.serial.clone()).collect();
            s.sort();
            if s.is_empty() {
                "none".to_string()
            } else {
                s.join(", ")
            }
        };
        let disk = match matching.as_slice() {
            [one] => *one,
            [] => {
                return Err((
                    "finding the disk",
                    format!(
                        "no disk has serial {:?} (serials seen: {})",
                        self.serial,
                        seen()
                    ),
                ));
            }
            many => {
                let paths: Vec<String> = many
                    .iter()
                    .map(|c| c.disk.path.display().to_string())
                    .collect();
                return Err((
                    "finding the disk",
                    format!(
                        "{} disks have serial {:?} ({}); refusing to guess",
                        many.len(),
                        self.serial,
                        paths.join(", ")
                    ),
                ));
            }
        };
        let expected = match &self.sha {
            Some(h) => Some(
                Sha256Digest::parse(h)
                    .map_err(|e| ("reading the plan", format!("disk_image_sha: {e}")))?,
            ),
            None => None,
        };
        let resolved = resolve(
            &self.image,
            &HttpClient::default(),
            &ResolveOptions::default(),
        )
        .map_err(|e| ("downloading", e.to_string()))?;
        let source = resolved.source;
        let info = inspect(source.as_ref()).map_err(|e| ("reading the image", e.to_string()))?;
        let target =
            Target::open(&disk.disk.path).map_err(|e| ("opening the disk", e.to_string()))?;
        if let Err(e) = preflight(source.as_ref(), &info, &target) {
            target.abandon();
            return Err(("checking the disk", e.to_string()));
        }
        say(&format!(
            "writing {} onto {} (serial {})",
            info.layer_chain(),
            disk.disk.path.display(),
            self.serial
        ));
        let latest: Mutex<Option<Progress>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let stage = Mutex::new(None);
        let sink = |p: &Progress| {
            if let Ok(mut s) = stage.lock()
                && *s != Some(p.stage)
            {
                *s = Some(p.stage);
                markers.say(&format!("stage {}", p.stage.label()));
            }
            markers.progress(Measure::Download, p.bytes_read, p.source_size);
            markers.progress(Measure::Write, p.bytes_written, write_total(p));
            if let Ok(mut l) = latest.lock() {
                *l = Some(p.clone());
            }
        };
        let opts = FlashOptions {
            expected_sha256: expected,
            verify: false,
            zeroes: ZeroMode::Auto,
            ..FlashOptions::default()
        };
        let result = std::thread::scope(|scope| {
            // The reporter: about once a second while writing, and once more at the end.
            scope.spawn(|| {
                let mut last_round = false;
                while !last_round {
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            last_round = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let p = latest.lock().ok().and_then(|mut l| l.take());
                    if let Some(p) = p {
                        server.post_progress(&FlashProgress {
                            bytes_done: p.bytes_written,
                            bytes_total: p.total,
                            rate: Some(p.rate),
                            stage: Some(p.stage.label().to_string()),
                            bytes_read: Some(p.bytes_read),
                            read_total: p.source_size,
                            at: None,
                        });
                    }
                }
            });
            let result = flash(&source, &info, &target, &opts, &sink, &CancelToken::new());
            stop.store(true, Ordering::Relaxed);
            result
        });
        match result {
            Ok(r) => Ok(format!(
                "wrote {} bytes onto {}, digest {}:{}{}",
                r.image_bytes,
                r.target,
                r.image_digest_algorithm,
                r.image_digest,
                if r.source_sha256.is_some() {
                    ", published sha256 verified"
                } else {
                    ""
                }
            )),
            Err(e) => {
                if !e.write_began {
                    target.abandon();
                }
                // The error's message says what became of the disk (wiped, untouched, …).
                Err(("writing", e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_arguments() {
        let (s, m) = from_cmdline(
            "quiet bty.server=http://10.0.2.2:8080 console=ttyS0 bty.mac=52:54:00:12:34:56 bty.mac=x",
        );
        assert_eq!(s.as_deref(), Some("http://10.0.2.2:8080"));
        assert_eq!(m.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(from_cmdline("quiet"), (None, None));
    }

    #[test]
    fn the_screen_is_the_monitor_unless_named() {
        assert_eq!(
            screen_tty("quiet console=ttyS0"),
            std::path::Path::new("/dev/tty1")
        );
        assert_eq!(
            screen_tty("bty.console=ttyS1 console=ttyS0"),
            std::path::Path::new("/dev/ttyS1")
        );
        // Nothing but a device name is taken.
        assert_eq!(
            screen_tty("bty.console=../sda"),
            std::path::Path::new("/dev/tty1")
        );
    }

    #[test]
    fn architecture_checks() {
        let here = bty_proto::arch::this_machine();
        assert_eq!(arch_mismatch(None), None);
        assert_eq!(arch_mismatch(Some(here)), None);
        let other = if here == "x86_64" { "arm64" } else { "amd64" };
        assert!(arch_mismatch(Some(other)).is_some());
    }
}
