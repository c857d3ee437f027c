//! The flash cycle and the plan, as pure functions of a machine's state.
//!
//! A cycle is *armed* when the flasher's kernel or initrd is fetched with `?mac=` (proof that
//! the netboot environment is booting). Only a completion **in that cycle** — `done` for the
//! flash modes, an inventory for `bty-inventory` — lets the next PXE contact boot the disk. A
//! cycle that ends without one (crash, power loss, `failed`) re-offers the flasher, never the
//! disk. `bty-flash-always` clears the cycle when it boots the disk, so the next contact
//! flashes again; `bty-flash-once` stays done until the operator changes its binding.

use bty_proto::BootMode;
use bty_proto::plan::Plan;

/// A catalog entry as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub name: String,
    pub format: Option<String>,
    pub src: String,
    pub resolved_src: Option<String>,
    pub disk_image_sha: Option<String>,
    pub arch: Option<String>,
    /// Served through bty-web's image cache (enabled, and the entry allows it).
    pub cache: bool,
}

/// A machine's state as the decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PxeState {
    pub mac: String,
    pub boot_mode: String,
    pub image_ref: Option<String>,
    pub target_disk_serial: Option<String>,
    pub sanboot_drive: Option<String>,
    pub armed: bool,
    pub cycle_done: bool,
    pub entry: Option<EntryInfo>,
}

/// Which script `/pxe/{mac}` serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Boot the netboot environment (flasher, wizard or inventory).
    LiveChain,
    /// Boot the local disk: `exit` on EFI, `sanboot` of this BIOS drive otherwise.
    LocalDisk { drive: String },
    /// Hand back to the firmware.
    Exit,
    /// An unusable binding: boot the first disk after a pause.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub script: Script,
    /// For the audit log (upstream's names).
    pub offer_kind: String,
    /// End the cycle (flash-always and inventory after their disk boot).
    pub clear_cycle: bool,
    /// Why a fallback was chosen.
    pub reason: Option<&'static str>,
    /// Armed without a completion: the previous attempt died; offered again.
    pub retry: bool,
}

fn serial_set(s: &PxeState) -> bool {
    s.target_disk_serial
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty())
}

fn drive(s: &PxeState) -> String {
    s.sanboot_drive.clone().unwrap_or_else(|| "0x80".into())
}

fn offer(script: Script, kind: impl Into<String>) -> Offer {
    Offer {
        script,
        offer_kind: kind.into(),
        clear_cycle: false,
        reason: None,
        retry: false,
    }
}

/// What `/pxe/{mac}` answers.
pub fn pxe(s: &PxeState) -> Offer {
    let mode = BootMode::parse(&s.boot_mode);
    match mode {
        Some(BootMode::BtyTui) => offer(Script::LiveChain, "bty-tui"),
        Some(BootMode::BtyInventory) if s.armed && s.cycle_done => Offer {
            clear_cycle: true,
            ..offer(
                Script::LocalDisk { drive: drive(s) },
                "bty-inventory-sanboot",
            )
        },
        Some(BootMode::BtyInventory) => Offer {
            retry: s.armed,
            ..offer(Script::LiveChain, "bty-inventory")
        },
        Some(BootMode::IpxeExit) => offer(Script::LocalDisk { drive: drive(s) }, "ipxe-exit"),
        Some(m @ (BootMode::BtyFlashAlways | BootMode::BtyFlashOnce)) if s.image_ref.is_some() => {
            let policy = m.as_str();
            match (&s.entry, serial_set(s)) {
                (None, _) => Offer {
                    reason: Some("orphan_ref"),
                    ..offer(Script::Exit, "exit-fallback")
                },
                (Some(_), false) => Offer {
                    reason: Some("no_target_disk"),
                    ..offer(Script::Exit, "exit-fallback")
                },
                (Some(_), true) if s.armed && s.cycle_done => Offer {
                    clear_cycle: m == BootMode::BtyFlashAlways,
                    ..offer(
                        Script::LocalDisk { drive: drive(s) },
                        format!("{policy}-sanboot"),
                    )
                },
                (Some(_), true) => Offer {
                    retry: s.armed,
                    ..offer(Script::LiveChain, policy)
                },
            }
        }
        _ => offer(Script::Unknown, "unknown"),
    }
}

const KNOWN_EXTENSIONS: [&str; 6] = [
    ".img.zst", ".img.xz", ".img.gz", ".img.bz2", ".qcow2", ".img",
];

/// The file name a served image goes by: the origin's file name for http(s) (it carries the
/// extension live environments read the format from), else the entry's name, else
/// `image.<format>`.
pub fn file_name(name: &str, src: &str, format: Option<&str>) -> String {
    let lower = src.to_ascii_lowercase();
    if !lower.starts_with("oras://") {
        let path = src.split(['?', '#']).next().unwrap_or("");
        let last = path
            .splitn(4, '/')
            .nth(3)
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("");
        if !last.is_empty() {
            return percent_encoding::percent_decode_str(last)
                .decode_utf8_lossy()
                .into_owned();
        }
    }
    let lower = name.to_ascii_lowercase();
    match format {
        Some(f) if !KNOWN_EXTENSIONS.iter().any(|x| lower.ends_with(x)) => format!("image.{f}"),
        _ if name.is_empty() => "image".into(),
        _ => name.to_string(),
    }
}

/// Where the image cache serves an entry: keyed by its digest, else by its ref.
pub fn cache_url(base: &str, image_ref: &str, digest: Option<&str>, file: &str) -> String {
    format!(
        "{base}/cache/sha256/{}/{}",
        digest.unwrap_or(image_ref),
        bty_source::oci::urlencode(file)
    )
}

/// The URL the agent downloads: through bty-web's image cache when it serves the entry;
/// otherwise http(s) entries straight from their origin and `oras://` ones through this
/// server's blob proxy (the agent then needs no registry token).
pub fn image_url(base: &str, image_ref: &str, e: &EntryInfo) -> String {
    let lower = e.src.to_ascii_lowercase();
    let oras = lower.starts_with("oras://");
    let file = file_name(&e.name, &e.src, e.format.as_deref());
    if e.cache && (oras || lower.starts_with("http://") || lower.starts_with("https://")) {
        cache_url(base, image_ref, e.disk_image_sha.as_deref(), &file)
    } else if oras {
        format!(
            "{base}/images/{image_ref}/{}",
            bty_source::oci::urlencode(&file)
        )
    } else {
        e.resolved_src.clone().unwrap_or_else(|| e.src.clone())
    }
}

/// What `/pxe/{mac}/plan` answers, and its `offer_kind`.
pub fn plan(s: &PxeState, base: &str) -> (Plan, String) {
    let catalog = format!("{base}/catalog.toml");
    match BootMode::parse(&s.boot_mode) {
        Some(m @ (BootMode::BtyFlashAlways | BootMode::BtyFlashOnce)) => {
            let policy = m.as_str();
            match (&s.image_ref, &s.entry, serial_set(s)) {
                (None, _, _) => (Plan::Exit, format!("plan:exit:{policy}")),
                (Some(r), Some(e), true) => (
                    Plan::Flash {
                        image: image_url(base, r, e),
                        target_disk_serial: s.target_disk_serial.clone().unwrap_or_default(),
                        name: e.name.clone(),
                        format: e.format.clone(),
                        disk_image_sha: e.disk_image_sha.clone(),
                        arch: e.arch.clone(),
                    },
                    format!("plan:flash:{policy}"),
                ),
                (Some(_), _, _) => (
                    Plan::Interactive { catalog },
                    "plan:interactive:flash-unresolved".into(),
                ),
            }
        }
        Some(BootMode::BtyTui) => (Plan::Interactive { catalog }, "plan:interactive:tui".into()),
        Some(BootMode::BtyInventory) => (Plan::Inventory, "plan:inventory".into()),
        Some(BootMode::IpxeExit) | None => (Plan::Exit, format!("plan:exit:{}", s.boot_mode)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(mode: &str) -> PxeState {
        PxeState {
            mac: "aa:bb:cc:dd:ee:ff".into(),
            boot_mode: mode.into(),
            image_ref: Some("ab".repeat(32)),
            target_disk_serial: Some("S1".into()),
            sanboot_drive: None,
            armed: false,
            cycle_done: false,
            entry: Some(EntryInfo {
                name: "debian.img.zst".into(),
                format: Some("img.zst".into()),
                src: "https://h/debian.img.zst".into(),
                resolved_src: None,
                disk_image_sha: Some("cd".repeat(32)),
                arch: None,
                cache: false,
            }),
        }
    }

    #[test]
    fn pxe_decision_table() {
        let chain = Script::LiveChain;
        let disk = Script::LocalDisk {
            drive: "0x80".into(),
        };
        // (mode, armed, done) -> (script, clear)
        let rows: [(&str, bool, bool, Script, bool); 12] = [
            ("bty-flash-once", false, false, chain.clone(), false),
            ("bty-flash-once", true, false, chain.clone(), false),
            ("bty-flash-once", true, true, disk.clone(), false),
            ("bty-flash-always", false, false, chain.clone(), false),
            ("bty-flash-always", true, false, chain.clone(), false),
            ("bty-flash-always", true, true, disk.clone(), true),
            ("bty-inventory", false, false, chain.clone(), false),
            ("bty-inventory", true, false, chain.clone(), false),
            ("bty-inventory", true, true, disk.clone(), true),
            ("bty-tui", true, true, chain.clone(), false),
            ("ipxe-exit", false, false, disk.clone(), false),
            ("ramboot", false, false, Script::Unknown, false),
        ];
        for (mode, armed, done, script, clear) in rows {
            let s = PxeState {
                armed,
                cycle_done: done,
                ..state(mode)
            };
            let o = pxe(&s);
            assert_eq!(
                (o.script.clone(), o.clear_cycle),
                (script, clear),
                "{mode} armed={armed} done={done}"
            );
            let expect_retry = o.script == Script::LiveChain && mode != "bty-tui" && armed && !done;
            assert_eq!(o.retry, expect_retry, "{mode} armed={armed} done={done}");
        }
        let s = PxeState {
            entry: None,
            ..state("bty-flash-once")
        };
        assert_eq!(
            (pxe(&s).script, pxe(&s).reason),
            (Script::Exit, Some("orphan_ref"))
        );
        let s = PxeState {
            target_disk_serial: Some(" ".into()),
            ..state("bty-flash-always")
        };
        assert_eq!(
            (pxe(&s).script, pxe(&s).reason),
            (Script::Exit, Some("no_target_disk"))
        );
        let s = PxeState {
            image_ref: None,
            ..state("bty-flash-always")
        };
        assert_eq!(pxe(&s).script, Script::Unknown);
        let s = PxeState {
            sanboot_drive: Some("0x81".into()),
            ..state("ipxe-exit")
        };
        assert_eq!(
            pxe(&s).script,
            Script::LocalDisk {
                drive: "0x81".into()
            }
        );
    }

    #[test]
    fn plans() {
        let base = "http://srv:8080";
        let (p, kind) = plan(&state("bty-flash-once"), base);
        assert_eq!(kind, "plan:flash:bty-flash-once");
        assert_eq!(
            p,
            Plan::Flash {
                image: "https://h/debian.img.zst".into(),
                target_disk_serial: "S1".into(),
                name: "debian.img.zst".into(),
                format: Some("img.zst".into()),
                disk_image_sha: Some("cd".repeat(32)),
                arch: None,
            }
        );
        let mut oras = state("bty-flash-always");
        if let Some(e) = oras.entry.as_mut() {
            e.src = "oras://reg/lab/debian:13".into();
            e.name = "debian 13".into();
        }
        let Plan::Flash { image, .. } = plan(&oras, base).0 else {
            panic!("flash")
        };
        assert_eq!(
            image,
            format!("{base}/images/{}/image.img.zst", "ab".repeat(32))
        );
        // Through the cache: keyed by the digest, else the ref; the name keeps the extension.
        let mut cached = state("bty-flash-once");
        if let Some(e) = cached.entry.as_mut() {
            e.cache = true;
        }
        let Plan::Flash { image, .. } = plan(&cached, base).0 else {
            panic!("flash")
        };
        assert_eq!(
            image,
            format!("{base}/cache/sha256/{}/debian.img.zst", "cd".repeat(32))
        );
        if let Some(e) = cached.entry.as_mut() {
            e.disk_image_sha = None;
            e.src = "https://h/a%20b/x.qcow2?sig=1".into();
        }
        let Plan::Flash { image, .. } = plan(&cached, base).0 else {
            panic!("flash")
        };
        assert_eq!(
            image,
            format!("{base}/cache/sha256/{}/x.qcow2", "ab".repeat(32))
        );
        if let Some(e) = oras.entry.as_mut() {
            e.cache = true;
        }
        let Plan::Flash { image, .. } = plan(&oras, base).0 else {
            panic!("flash")
        };
        assert_eq!(
            image,
            format!("{base}/cache/sha256/{}/image.img.zst", "cd".repeat(32))
        );
        let (p, k) = plan(
            &PxeState {
                entry: None,
                ..state("bty-flash-once")
            },
            base,
        );
        assert_eq!(
            (p, k.as_str()),
            (
                Plan::Interactive {
                    catalog: format!("{base}/catalog.toml")
                },
                "plan:interactive:flash-unresolved"
            )
        );
        assert_eq!(
            plan(
                &PxeState {
                    image_ref: None,
                    ..state("bty-flash-once")
                },
                base
            )
            .0,
            Plan::Exit
        );
        assert_eq!(plan(&state("bty-inventory"), base).0, Plan::Inventory);
        assert_eq!(
            plan(&state("bty-tui"), base).0,
            Plan::Interactive {
                catalog: format!("{base}/catalog.toml")
            }
        );
        assert_eq!(plan(&state("ipxe-exit"), base).0, Plan::Exit);
    }
}
