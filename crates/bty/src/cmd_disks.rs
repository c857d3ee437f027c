//! `bty disks`: the machine's disks, what they are, and whether bty may write them.

use bty_disk::{Classified, SystemRoot, classify};

use crate::cli::DisksArgs;
use crate::exit;
use crate::output::json_line;
use crate::units;

/// The system root to read: `/`, or in debug and test builds `BTY_TEST_SYSROOT` (a captured
/// sysfs tree).
pub fn system_root() -> SystemRoot {
    #[cfg(debug_assertions)]
    if let Some(root) = std::env::var_os("BTY_TEST_SYSROOT") {
        return SystemRoot::at(std::path::Path::new(&root));
    }
    SystemRoot::default()
}

pub fn run(args: DisksArgs) -> u8 {
    let root = system_root();
    let list: Vec<Classified> = classify(&root, root.disks(), None)
        .into_iter()
        .filter(|c| args.all || c.hidden.is_none())
        .collect();
    if args.json {
        json_line("disks", serde_json::json!({ "disks": list }));
        return exit::OK;
    }
    if list.is_empty() {
        println!(
            "no disks{}",
            if args.all {
                ""
            } else {
                " (--all shows loop, zram, optical and other hidden devices)"
            }
        );
        return exit::OK;
    }
    println!(
        "{:14} {:>10}  {:9} {:28} {:22} STATUS",
        "PATH", "SIZE", "TRANSPORT", "MODEL", "SERIAL"
    );
    for c in &list {
        let d = &c.disk;
        let mut flags = Vec::new();
        if d.removable {
            flags.push("removable");
        }
        if d.rotational {
            flags.push("rotational");
        }
        let status = if c.writable() {
            "ok".to_string()
        } else {
            format!("UNSAFE: {}", c.unsafe_reasons.join("; "))
        };
        let status = match &c.hidden {
            Some(h) => format!("[{h}] {status}"),
            None => status,
        };
        println!(
            "{:14} {:>10}  {:9} {:28} {:22} {}{}",
            d.path.display(),
            units::bytes(d.size_bytes),
            d.transport.name(),
            units::fit(&d.vendor_model(), 28, '…'),
            units::fit(d.serial.as_deref().unwrap_or("-"), 22, '…'),
            status,
            if flags.is_empty() {
                String::new()
            } else {
                format!(" ({})", flags.join(", "))
            }
        );
    }
    exit::OK
}
