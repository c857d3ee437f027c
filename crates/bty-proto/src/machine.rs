//! Machines: the PUT body (`MachineUpsert`, full replace, unknown fields refused), the
//! response (`Machine`), boot modes, and the inventory disk record.

use serde::{Deserialize, Serialize};

/// What a machine does when it PXE-boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum BootMode {
    /// Boot the local disk.
    #[default]
    IpxeExit,
    /// Flash the bound image on every boot.
    BtyFlashAlways,
    /// Flash once, then boot the disk.
    BtyFlashOnce,
    /// The interactive wizard.
    BtyTui,
    /// Report disks and hardware, then reboot.
    BtyInventory,
}

impl BootMode {
    pub const ALL: [BootMode; 5] = [
        BootMode::IpxeExit,
        BootMode::BtyFlashAlways,
        BootMode::BtyFlashOnce,
        BootMode::BtyTui,
        BootMode::BtyInventory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::IpxeExit => "ipxe-exit",
            BootMode::BtyFlashAlways => "bty-flash-always",
            BootMode::BtyFlashOnce => "bty-flash-once",
            BootMode::BtyTui => "bty-tui",
            BootMode::BtyInventory => "bty-inventory",
        }
    }

    pub fn parse(s: &str) -> Option<BootMode> {
        BootMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Why `s` is not a mode: upstream 0.77's diskless mode gets its own answer.
    pub fn refusal(s: &str) -> String {
        if s == RAMBOOT {
            "boot_mode \"ramboot\" (upstream 0.77's diskless boot over NBD) is not supported by this \
             server yet: use bty-flash-once to write the image to the machine's disk and boot it, or \
             bty-tui to choose at the machine"
                .to_string()
        } else {
            let all: Vec<&str> = BootMode::ALL.iter().map(|m| m.as_str()).collect();
            format!("unknown boot_mode {s:?}; one of {}", all.join(", "))
        }
    }

    /// Modes that write a disk, and so need a target serial.
    pub fn flashes(self) -> bool {
        matches!(self, BootMode::BtyFlashAlways | BootMode::BtyFlashOnce)
    }
}

/// Upstream 0.77's diskless boot mode, which this server refuses with a reason.
pub const RAMBOOT: &str = "ramboot";

impl TryFrom<String> for BootMode {
    type Error = String;
    fn try_from(s: String) -> Result<BootMode, String> {
        BootMode::parse(&s).ok_or_else(|| BootMode::refusal(&s))
    }
}

/// One validation failure, named by field (upstream's 422 `detail` items carry `loc` and `msg`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl ValidationError {
    pub fn new(field: &str, msg: impl Into<String>) -> ValidationError {
        ValidationError {
            loc: vec!["body".into(), field.into()],
            msg: msg.into(),
            kind: "value_error",
        }
    }
}

/// The body of `PUT /machines/{mac}`: the machine's whole binding. Omitted fields take their
/// defaults (full replace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineUpsert {
    #[serde(default)]
    pub bty_image_ref: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub boot_mode: BootMode,
    #[serde(default)]
    pub sanboot_drive: Option<String>,
    #[serde(default)]
    pub target_disk_serial: Option<String>,
}

fn is_hex64_lower(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A DNS host name: dot-separated labels of letters, digits and inner hyphens, each at most
/// 63 characters, 253 in all.
pub fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_label(l: &str) -> bool {
    let mut bytes = l.bytes();
    (1..=64).contains(&l.len())
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-'))
}

fn valid_sanboot_drive(s: &str) -> bool {
    s.strip_prefix("0x").is_some_and(|hex| {
        (1..=2).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

impl MachineUpsert {
    /// Check every field; all failures at once.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errs = Vec::new();
        if let Some(r) = &self.bty_image_ref
            && !is_hex64_lower(r)
        {
            errs.push(ValidationError::new(
                "bty_image_ref",
                "must be 64 lower-case hex characters",
            ));
        }
        if let Some(h) = &self.hostname
            && !valid_hostname(h)
        {
            errs.push(ValidationError::new(
                "hostname",
                "must be 1-253 characters of dot-separated labels (letters, digits, inner hyphens; each at most 63)",
            ));
        }
        if let Some(labels) = &self.labels {
            if labels.len() > 16 {
                errs.push(ValidationError::new("labels", "at most 16 labels"));
            }
            if let Some(bad) = labels.iter().find(|l| !valid_label(l)) {
                errs.push(ValidationError::new(
                    "labels",
                    format!(
                        "{bad:?}: 1-64 characters, starting with a letter or digit, then letters, digits, space, '.', '_' or '-'"
                    ),
                ));
            }
        }
        if let Some(d) = &self.sanboot_drive
            && !valid_sanboot_drive(d)
        {
            errs.push(ValidationError::new(
                "sanboot_drive",
                "must look like 0x80 (0x and one or two hex digits)",
            ));
        }
        match &self.target_disk_serial {
            Some(s) if s.chars().count() > 128 => {
                errs.push(ValidationError::new(
                    "target_disk_serial",
                    "at most 128 characters",
                ));
            }
            s if self.boot_mode.flashes() && s.as_deref().is_none_or(|s| s.trim().is_empty()) => {
                errs.push(ValidationError::new(
                    "target_disk_serial",
                    format!(
                        "required for boot_mode {}: the serial of the disk to overwrite",
                        self.boot_mode.as_str()
                    ),
                ));
            }
            _ => {}
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Labels trimmed, de-duplicated case-insensitively (first spelling kept), sorted.
    pub fn normalised_labels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in self.labels.iter().flatten() {
            let l = l.trim();
            if !out.iter().any(|o| o.eq_ignore_ascii_case(l)) {
                out.push(l.to_string());
            }
        }
        out.sort();
        out
    }
}

/// One disk as the agent reports it (unknown keys are dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryDisk {
    pub path: String,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub tran: Option<String>,
    #[serde(default)]
    pub removable: bool,
    #[serde(default)]
    pub readonly: bool,
}

/// A machine as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub mac: String,
    pub bty_image_ref: Option<String>,
    pub hostname: Option<String>,
    pub labels: Vec<String>,
    pub discovered_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub last_seen_ip: Option<String>,
    pub boot_mode: BootMode,
    pub sanboot_drive: Option<String>,
    pub last_flashed_at: Option<String>,
    pub known_disks: Option<Vec<serde_json::Value>>,
    pub known_disks_at: Option<String>,
    pub target_disk_serial: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The running flash's last progress report (kept in memory by the server), if any.
    #[serde(default)]
    pub flash_progress: Option<FlashProgress>,
    /// When the last flash attempt reported a failure (cleared in effect by a later flash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<String>,
    /// The CPU architecture its last inventory reported (ours; unknown for upstream agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

/// What the agent reports while it writes (`POST /pxe/{mac}/progress`). Unknown fields are
/// ignored, so a newer agent's additions reach an older server harmlessly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlashProgress {
    /// Image bytes handed to the writer (the write side).
    pub bytes_done: u64,
    #[serde(default)]
    pub bytes_total: Option<u64>,
    /// Bytes per second.
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub stage: Option<String>,
    /// Bytes read from the source so far (the download side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// The source's size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_total: Option<u64>,
    /// When the server received it (set by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl FlashProgress {
    /// Without the fields servers before them refuse (bty-web before `bytes_read`).
    pub fn without_download_side(&self) -> FlashProgress {
        FlashProgress {
            bytes_read: None,
            read_total: None,
            ..self.clone()
        }
    }
}

/// How a flash ended, as `POST /pxe/{mac}/status` (upstream 0.61+) says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminalStatus {
    Done,
    Failed,
}

/// The body of `POST /pxe/{mac}/status`: exactly these two keys, `reason` at most
/// [`PxeStatus::MAX_REASON`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PxeStatus {
    pub status: TerminalStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PxeStatus {
    pub const MAX_REASON: usize = 500;

    /// A failure whose `stage` is folded into the reason (`"writing: …"`), cut to
    /// [`PxeStatus::MAX_REASON`] characters on a character boundary.
    pub fn failed(stage: &str, reason: &str) -> PxeStatus {
        let text = if stage.is_empty() {
            reason.to_string()
        } else {
            format!("{stage}: {reason}")
        };
        PxeStatus {
            status: TerminalStatus::Failed,
            reason: Some(text.chars().take(Self::MAX_REASON).collect()),
        }
    }

    pub fn done() -> PxeStatus {
        PxeStatus {
            status: TerminalStatus::Done,
            reason: None,
        }
    }

    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        match &self.reason {
            Some(r) if r.chars().count() > Self::MAX_REASON => Err(vec![ValidationError::new(
                "reason",
                format!("at most {} characters", Self::MAX_REASON),
            )]),
            _ => Ok(()),
        }
    }
}

/// The body of `POST /pxe/{mac}/inventory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryPost {
    #[serde(default)]
    pub disks: Vec<InventoryDisk>,
    #[serde(default)]
    pub lshw: Option<serde_json::Value>,
    /// The machine's CPU architecture as the kernel names it (`x86_64`, `aarch64`; ours:
    /// upstream servers refuse the key, and the agent then sends the inventory without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl InventoryPost {
    /// Upstream's limits: at most 64 disks, field lengths, lshw an object or array.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errs = Vec::new();
        if self.disks.len() > 64 {
            errs.push(ValidationError::new("disks", "at most 64 disks"));
        }
        for (i, d) in self.disks.iter().enumerate() {
            let checks: [(&str, Option<&str>, usize); 6] = [
                ("path", Some(d.path.as_str()), 255),
                ("size", d.size.as_deref(), 32),
                ("vendor", d.vendor.as_deref(), 64),
                ("model", d.model.as_deref(), 128),
                ("serial", d.serial.as_deref(), 128),
                ("tran", d.tran.as_deref(), 32),
            ];
            for (field, v, max) in checks {
                if v.is_some_and(|v| v.chars().count() > max) {
                    errs.push(ValidationError::new(
                        &format!("disks.{i}.{field}"),
                        format!("at most {max} characters"),
                    ));
                }
            }
        }
        if let Some(l) = &self.lshw
            && !(l.is_object() || l.is_array() || l.is_null())
        {
            errs.push(ValidationError::new("lshw", "an object or an array"));
        }
        if let Some(a) = &self.arch
            && !crate::arch::is_valid(a)
        {
            errs.push(ValidationError::new(
                "arch",
                "1-32 letters, digits or underscores",
            ));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}

/// The body of `POST /pxe/{mac}/failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashFailed {
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(json: &str) -> Result<MachineUpsert, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn terminal_status_wire() {
        let long = "ü".repeat(600);
        let f = PxeStatus::failed("writing", &long);
        let reason = f.reason.clone().unwrap();
        assert_eq!(reason.chars().count(), PxeStatus::MAX_REASON);
        assert!(reason.starts_with("writing: üü"));
        assert!(f.validate().is_ok());
        assert_eq!(
            serde_json::to_value(PxeStatus::done()).unwrap(),
            serde_json::json!({"status": "done"})
        );
        assert!(serde_json::from_str::<PxeStatus>(r#"{"status":"done","stage":"x"}"#).is_err());
        assert!(serde_json::from_str::<PxeStatus>(r#"{"status":"ok"}"#).is_err());
        let too_long = PxeStatus {
            status: TerminalStatus::Failed,
            reason: Some("x".repeat(501)),
        };
        assert!(too_long.validate().is_err());
        // Progress: unknown fields ignored; the download side dropped on request.
        let p: FlashProgress =
            serde_json::from_str(r#"{"bytes_done":1,"bytes_read":2,"read_total":3,"new":4}"#)
                .unwrap();
        assert_eq!((p.bytes_read, p.read_total), (Some(2), Some(3)));
        let lean = serde_json::to_value(p.without_download_side()).unwrap();
        assert!(lean.get("bytes_read").is_none() && lean.get("read_total").is_none());
        let err = serde_json::from_str::<MachineUpsert>(r#"{"boot_mode":"ramboot"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("diskless") && err.contains("bty-flash-once"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let m = upsert("{}").unwrap();
        assert_eq!(m.boot_mode, BootMode::IpxeExit);
        assert!(m.validate().is_ok());
        assert!(upsert(r#"{"bogus": 1}"#).is_err());
        assert!(upsert(r#"{"boot_mode": "ramboot"}"#).is_err());
    }

    #[test]
    fn flash_modes_need_a_serial() {
        let m = upsert(r#"{"boot_mode": "bty-flash-once"}"#).unwrap();
        let e = m.validate().unwrap_err();
        assert_eq!(e[0].loc, ["body", "target_disk_serial"]);
        let m = upsert(r#"{"boot_mode": "bty-flash-once", "target_disk_serial": "S1"}"#).unwrap();
        assert!(m.validate().is_ok());
    }

    #[test]
    fn field_rules() {
        let m = MachineUpsert {
            bty_image_ref: Some("AB".repeat(32)),
            hostname: Some("bad_host".into()),
            labels: Some(vec!["-x".into()]),
            sanboot_drive: Some("0X80".into()),
            ..MachineUpsert::default()
        };
        assert_eq!(m.validate().unwrap_err().len(), 4);
        let m = MachineUpsert {
            bty_image_ref: Some("ab".repeat(32)),
            hostname: Some("node-1.lab".into()),
            labels: Some(vec!["rack 3".into(), "GPU".into(), "gpu".into()]),
            sanboot_drive: Some("0x81".into()),
            ..MachineUpsert::default()
        };
        assert!(m.validate().is_ok());
        assert_eq!(m.normalised_labels(), ["GPU", "rack 3"]);
    }
}
