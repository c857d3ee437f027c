//! What the pages show, made from stored rows: a machine's state badge and table row, the
//! catalog names by ref, the hardware summary read out of an lshw tree, the disk choices.

use std::collections::HashMap;

use bty_proto::catalog::CatalogEntry;
use bty_proto::{BootMode, Machine};
use serde::Serialize;
use serde_json::Value as Json;

use super::templates::human_bytes;

/// A machine's state as the tables badge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Flashing,
    Failed,
    Discovered,
    Idle,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Flashing,
        State::Failed,
        State::Discovered,
        State::Idle,
    ];

    pub fn of(m: &Machine) -> State {
        if m.flash_progress.is_some() {
            State::Flashing
        } else if m
            .last_failed_at
            .as_deref()
            .is_some_and(|f| m.last_flashed_at.as_deref().is_none_or(|d| f > d))
        {
            State::Failed
        } else if m.bty_image_ref.is_none() && m.boot_mode == BootMode::BtyInventory {
            State::Discovered
        } else {
            State::Idle
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Flashing => "flashing",
            State::Failed => "failed",
            State::Discovered => "discovered",
            State::Idle => "idle",
        }
    }
}

/// One row of the machines table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub mac: String,
    pub hostname: Option<String>,
    pub labels: Vec<String>,
    pub boot_mode: &'static str,
    pub image: Option<String>,
    pub image_ref: Option<String>,
    pub target_disk: Option<String>,
    pub last_seen: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_flashed: Option<String>,
    pub state: &'static str,
    /// Percent done while flashing, when the total is known.
    pub percent: Option<u64>,
    pub stage: Option<String>,
}

/// Catalog names by ref.
pub fn names(entries: &[CatalogEntry]) -> HashMap<String, String> {
    entries
        .iter()
        .map(|e| (e.bty_image_ref.clone(), e.name.clone()))
        .collect()
}

/// Entries an operator may bind: not the archives (netboot bundles) that cannot be flashed.
pub fn bindable(entries: Vec<CatalogEntry>) -> Vec<CatalogEntry> {
    entries
        .into_iter()
        .filter(|e| e.unflashable().is_none())
        .collect()
}

/// A warning for a machine bound to an image built for a known architecture while the
/// machine's own is unknown (no inventory yet, or an upstream agent that does not say).
pub fn arch_note(m: &Machine, entries: &[CatalogEntry]) -> Option<String> {
    if m.arch.is_some() {
        return None;
    }
    let bound = m.bty_image_ref.as_ref()?;
    let e = entries.iter().find(|e| &e.bty_image_ref == bound)?;
    let arch = e.arch.as_ref()?;
    Some(format!(
        "{} is built for {arch}, and this machine has not reported its CPU architecture (no inventory from a bty agent yet): the binding could not be checked",
        e.name
    ))
}

pub fn row(m: &Machine, names: &HashMap<String, String>) -> Row {
    let state = State::of(m);
    let percent = m.flash_progress.as_ref().and_then(|p| {
        p.bytes_total
            .filter(|t| *t > 0)
            .map(|t| (p.bytes_done.min(t) * 100) / t)
    });
    Row {
        mac: m.mac.clone(),
        hostname: m.hostname.clone(),
        labels: m.labels.clone(),
        boot_mode: m.boot_mode.as_str(),
        image: m.bty_image_ref.as_ref().map(|r| {
            names
                .get(r)
                .cloned()
                .unwrap_or_else(|| format!("{}… (not in catalog)", &r[..r.len().min(12)]))
        }),
        image_ref: m.bty_image_ref.clone(),
        target_disk: m.target_disk_serial.clone(),
        last_seen: m.last_seen_at.clone(),
        last_seen_ip: m.last_seen_ip.clone(),
        last_flashed: m.last_flashed_at.clone(),
        state: state.as_str(),
        percent,
        stage: m.flash_progress.as_ref().and_then(|p| p.stage.clone()),
    }
}

/// Whether a machine matches the table's filter: free text over MAC, host name, labels, image
/// and address, and one label (case-insensitive).
pub fn matches(r: &Row, q: &str, label: &str) -> bool {
    let q = q.trim().to_lowercase();
    let label = label.trim();
    if !label.is_empty() && !r.labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
        return false;
    }
    if q.is_empty() {
        return true;
    }
    let mac_plain = r.mac.replace(':', "");
    [
        Some(&r.mac),
        Some(&mac_plain),
        r.hostname.as_ref(),
        r.image.as_ref(),
        r.last_seen_ip.as_ref(),
        r.target_disk.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(r.labels.iter())
    .any(|s| s.to_lowercase().contains(&q))
        || r.boot_mode.contains(&q)
        || r.state.contains(&q)
}

/// A disk the target picker offers.
#[derive(Debug, Serialize)]
pub struct DiskChoice {
    pub serial: Option<String>,
    pub label: String,
}

pub fn disk_choices(m: Option<&Machine>) -> Vec<DiskChoice> {
    let Some(disks) = m.and_then(|m| m.known_disks.as_ref()) else {
        return Vec::new();
    };
    disks
        .iter()
        .map(|d| {
            let s = |k: &str| d.get(k).and_then(Json::as_str).map(str::trim).unwrap_or("");
            let size = match d.get("size") {
                Some(Json::Number(n)) => n.as_u64().map(human_bytes).unwrap_or_default(),
                Some(Json::String(v)) => v
                    .parse::<u64>()
                    .map(human_bytes)
                    .unwrap_or_else(|_| v.clone()),
                _ => String::new(),
            };
            let serial = Some(s("serial").to_string()).filter(|v| !v.is_empty());
            let parts: Vec<&str> = [s("path"), s("vendor"), s("model"), size.as_str(), s("tran")]
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect();
            DiskChoice {
                label: format!(
                    "{} — serial {}",
                    parts.join(" · "),
                    serial.as_deref().unwrap_or("none (cannot be targeted)")
                ),
                serial,
            }
        })
        .collect()
}

/// The hardware summary shown on a machine's page.
#[derive(Debug, Default, Serialize)]
pub struct Hardware {
    pub cpu: Option<String>,
    pub cores: Option<String>,
    pub memory: Option<String>,
    pub nics: Vec<Nic>,
}

#[derive(Debug, Serialize)]
pub struct Nic {
    pub mac: String,
    pub name: String,
    pub product: String,
    pub this_machine: bool,
}

fn walk<'a>(node: &'a Json, out: &mut Vec<&'a Json>) {
    out.push(node);
    if let Some(children) = node.get("children").and_then(Json::as_array) {
        for c in children {
            walk(c, out);
        }
    }
}

/// Read CPU, memory and NICs out of `lshw -json` (an object or a one-element list).
pub fn hardware(lshw: &Json, own_mac: &str) -> Hardware {
    let root = match lshw {
        Json::Array(v) => v.first().unwrap_or(lshw),
        other => other,
    };
    let mut nodes = Vec::new();
    walk(root, &mut nodes);
    let text = |n: &Json, k: &str| n.get(k).and_then(Json::as_str).map(str::to_string);
    let mut hw = Hardware::default();
    if let Some(cpu) = nodes
        .iter()
        .find(|n| n.get("class").and_then(Json::as_str) == Some("processor"))
    {
        hw.cpu = text(cpu, "product");
        hw.cores = cpu
            .get("configuration")
            .and_then(|c| c.get("cores"))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or(v.as_u64().map(|n| n.to_string()))
            });
    }
    // Memory: the system memory node's size, else the sum of its banks.
    if let Some(mem) = nodes.iter().find(|n| {
        n.get("class").and_then(Json::as_str) == Some("memory")
            && n.get("id").and_then(Json::as_str) == Some("memory")
    }) {
        let size = mem.get("size").and_then(Json::as_u64).or_else(|| {
            let banks: u64 = mem
                .get("children")
                .and_then(Json::as_array)
                .map(|b| {
                    b.iter()
                        .filter_map(|b| b.get("size").and_then(Json::as_u64))
                        .sum()
                })
                .unwrap_or(0);
            (banks > 0).then_some(banks)
        });
        hw.memory = size.map(human_bytes);
    }
    for n in nodes
        .iter()
        .filter(|n| n.get("class").and_then(Json::as_str) == Some("network"))
    {
        let mac = text(n, "serial").unwrap_or_default();
        hw.nics.push(Nic {
            this_machine: !mac.is_empty() && mac.eq_ignore_ascii_case(own_mac),
            mac,
            name: text(n, "logicalname").unwrap_or_default(),
            product: [text(n, "vendor"), text(n, "product")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    hw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        serde_json::from_value(serde_json::json!({
            "mac": "52:54:00:12:34:56", "bty_image_ref": null, "hostname": null, "labels": ["rack-1"],
            "discovered_at": null, "last_seen_at": null, "last_seen_ip": "10.0.0.9",
            "boot_mode": "bty-inventory", "sanboot_drive": null, "last_flashed_at": null,
            "known_disks": [{"path": "/dev/vda", "size": 1073741824u64, "model": "QEMU", "serial": "S1"},
                            {"path": "/dev/vdb", "size": "2048", "serial": ""}],
            "known_disks_at": null, "target_disk_serial": null,
            "created_at": "x", "updated_at": "x"
        }))
        .unwrap()
    }

    #[test]
    fn states() {
        let mut m = machine();
        assert_eq!(State::of(&m), State::Discovered);
        m.boot_mode = BootMode::IpxeExit;
        assert_eq!(State::of(&m), State::Idle);
        m.last_failed_at = Some("2026-11-26T01:00:00".into());
        assert_eq!(State::of(&m), State::Failed);
        m.last_flashed_at = Some("2026-11-26T02:00:00".into());
        assert_eq!(
            State::of(&m),
            State::Idle,
            "a later flash clears the failure"
        );
        m.flash_progress = Some(bty_proto::FlashProgress {
            bytes_done: 50,
            bytes_total: Some(200),
            rate: None,
            stage: Some("writing".into()),
            bytes_read: None,
            read_total: None,
            at: None,
        });
        assert_eq!(State::of(&m), State::Flashing);
        let r = row(&m, &HashMap::new());
        assert_eq!((r.state, r.percent), ("flashing", Some(25)));
    }

    #[test]
    fn filtering() {
        let r = row(&machine(), &HashMap::new());
        assert!(matches(&r, "", ""));
        assert!(matches(&r, "525400", ""));
        assert!(matches(&r, "RACK", ""));
        assert!(matches(&r, "10.0.0", ""));
        assert!(matches(&r, "", "Rack-1"));
        assert!(!matches(&r, "", "rack-2"));
        assert!(!matches(&r, "nothing", ""));
    }

    #[test]
    fn disks_and_hardware() {
        let d = disk_choices(Some(&machine()));
        assert_eq!(d[0].serial.as_deref(), Some("S1"));
        assert!(d[0].label.contains("1.0 GiB"), "{}", d[0].label);
        assert_eq!(d[1].serial, None);
        let lshw = serde_json::json!({"class": "system", "children": [
            {"class": "bus", "children": [
                {"class": "processor", "product": "Xeon", "configuration": {"cores": "8"}},
                {"class": "memory", "id": "memory", "children": [{"size": 1073741824u64}, {"size": 1073741824u64}]},
                {"class": "network", "serial": "52:54:00:12:34:56", "logicalname": "eth0", "vendor": "Red Hat", "product": "Virtio"}
            ]}
        ]});
        let hw = hardware(&lshw, "52:54:00:12:34:56");
        assert_eq!(hw.cpu.as_deref(), Some("Xeon"));
        assert_eq!(hw.cores.as_deref(), Some("8"));
        assert_eq!(hw.memory.as_deref(), Some("2.0 GiB"));
        assert!(hw.nics[0].this_machine);
        assert_eq!(hw.nics[0].product, "Red Hat Virtio");
        assert!(hardware(&serde_json::json!("junk"), "x").nics.is_empty());
    }
}
