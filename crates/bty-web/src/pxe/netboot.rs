//! The netboot environment the live-environment chain boots: kernel and initrd file names
//! (in the boot folder) and the kernel command line, from `[netboot]` config. Two presets:
//! `bty` (our environment: `bty-netboot-x86_64.vmlinuz` / `.initrd`, the agent reads
//! `bty.server=` and `bty.mac=`) and `upstream-live` (upstream's live-build trio with
//! versioned names and `boot=live fetch=<squashfs>`, so an upstream netboot set can be served
//! unchanged). `kernel`, `initrd` and `cmdline` override the preset; in the command line
//! `{base}` becomes the server's base URL (as the iPXE variable `${bty-base}`), `{mac}` the
//! machine's MAC, `{kernel}` / `{initrd}` the file names and `{version}` the upstream version.
//! Both presets put the monitor and both usual serial ports on the command line and blacklist
//! `nouveau` and `rndis_host`, as upstream 0.77.2 does; the `upstream-live` names and arguments
//! follow `[netboot] upstream_version`.

/// What the live-environment chain loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netboot {
    pub kernel: String,
    pub initrd: String,
    /// With `{base}`, `{mac}`, `{kernel}`, `{initrd}` placeholders.
    pub cmdline: String,
}

pub const PRESETS: [&str; 2] = ["bty", "upstream-live"];

/// The upstream release the `upstream-live` preset names by default: the newest, whose
/// artifact names and kernel arguments an operator downloading an upstream netboot set today
/// gets; an older set is served by setting `[netboot] upstream_version` to its version.
pub const DEFAULT_UPSTREAM_VERSION: &str = "0.77.2";

/// The consoles and driver blacklist of every chain (as upstream 0.77.2): the monitor and both
/// usual serial ports (BMC serial-over-LAN is often ttyS1), the last `console=` being where
/// `/dev/console` points; `nouveau` hangs some GPUs, `rndis_host` is the BMC's USB virtual NIC.
const CONSOLES: &str = "console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 modprobe.blacklist=nouveau,rndis_host";

/// Upstream's live-build arguments after the consoles.
const UPSTREAM_LIVE: &str =
    "plymouth.enable=0 nouveau.modeset=0 systemd.gpt_auto=0 bty.server={base} bty.mac={mac}";

/// `0.55.2` → (0, 55, 2); missing or non-numeric parts count as 0, an unparsable version as
/// the newest layout.
fn version_of(v: &str) -> (u64, u64, u64) {
    let mut parts = v.trim().trim_start_matches('v').split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    let mut next = || parts.next().flatten();
    match (next(), next(), next()) {
        (Some(a), b, c) => (a, b.unwrap_or(0), c.unwrap_or(0)),
        _ => (u64::MAX, 0, 0),
    }
}

/// Upstream's artifact stem and kernel arguments for `version`: the 0.47-era names below
/// 0.53, `bty-netboot-pc-x86_64-v…` from 0.53 (the variant rename), and from 0.55.2 on the
/// serial consoles for BMC serial-over-LAN (0.55.4 added the `rndis_host` blacklist).
fn upstream_layout(version: &str) -> (String, String) {
    let v = version_of(version);
    let stem = if v < (0, 53, 0) {
        format!("bty-netboot-x86_64-v{version}")
    } else {
        format!("bty-netboot-pc-x86_64-v{version}")
    };
    let consoles = if v < (0, 55, 2) {
        "console=tty0 console=ttyS0,115200 modprobe.blacklist=nouveau"
    } else if v < (0, 55, 4) {
        "console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 modprobe.blacklist=nouveau"
    } else {
        CONSOLES
    };
    let cmdline = format!(
        "boot=live fetch={{base}}/boot/{stem}.squashfs components {consoles} {UPSTREAM_LIVE}"
    );
    (stem, cmdline)
}

impl Netboot {
    /// From a preset name and optional overrides; `None` for an unknown preset.
    pub fn new(
        preset: &str,
        upstream_version: &str,
        kernel: Option<&str>,
        initrd: Option<&str>,
        cmdline: Option<&str>,
    ) -> Option<Netboot> {
        let (k, i, c) = match preset {
            "bty" => (
                "bty-netboot-x86_64.vmlinuz".to_string(),
                "bty-netboot-x86_64.initrd".to_string(),
                format!("{CONSOLES} bty.server={{base}} bty.mac={{mac}}"),
            ),
            "upstream-live" => {
                let (stem, cmdline) = upstream_layout(upstream_version);
                (format!("{stem}.vmlinuz"), format!("{stem}.initrd"), cmdline)
            }
            _ => return None,
        };
        Some(Netboot {
            kernel: kernel.map(str::to_string).unwrap_or(k),
            initrd: initrd.map(str::to_string).unwrap_or(i),
            cmdline: cmdline
                .map(|c| c.replace("{version}", upstream_version))
                .unwrap_or(c),
        })
    }

    /// The command line for `mac` (the base stays the iPXE variable).
    pub fn cmdline_for(&self, mac: &str) -> String {
        self.cmdline
            .replace("{base}", "${bty-base}")
            .replace("{mac}", mac)
            .replace("{kernel}", &self.kernel)
            .replace("{initrd}", &self.initrd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_overrides() {
        let n = Netboot::new("bty", "0.47.0", None, None, None).unwrap();
        assert_eq!(n.kernel, "bty-netboot-x86_64.vmlinuz");
        assert_eq!(
            n.cmdline_for("aa:bb:cc:dd:ee:ff"),
            "console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200 \
             modprobe.blacklist=nouveau,rndis_host bty.server=${bty-base} bty.mac=aa:bb:cc:dd:ee:ff"
        );
        let o = Netboot::new(
            "bty",
            "x",
            Some("k"),
            None,
            Some("quiet bty.mac={mac} k={kernel}"),
        )
        .unwrap();
        assert_eq!(o.cmdline_for("m"), "quiet bty.mac=m k=k");
        assert!(Netboot::new("nope", "x", None, None, None).is_none());
    }

    #[test]
    fn upstream_live_follows_the_version() {
        let old = Netboot::new("upstream-live", "0.47.0", None, None, None).unwrap();
        assert_eq!(old.initrd, "bty-netboot-x86_64-v0.47.0.initrd");
        assert_eq!(
            old.cmdline_for("m"),
            "boot=live fetch=${bty-base}/boot/bty-netboot-x86_64-v0.47.0.squashfs components \
             console=tty0 console=ttyS0,115200 modprobe.blacklist=nouveau plymouth.enable=0 \
             nouveau.modeset=0 systemd.gpt_auto=0 bty.server=${bty-base} bty.mac=m"
        );
        let renamed = Netboot::new("upstream-live", "0.53.0", None, None, None).unwrap();
        assert_eq!(renamed.kernel, "bty-netboot-pc-x86_64-v0.53.0.vmlinuz");
        assert!(!renamed.cmdline.contains("ttyS1"));
        let sol = Netboot::new("upstream-live", "0.55.2", None, None, None).unwrap();
        assert!(
            sol.cmdline
                .contains("console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0,115200")
        );
        assert!(!sol.cmdline.contains("rndis_host"));
        let new =
            Netboot::new("upstream-live", DEFAULT_UPSTREAM_VERSION, None, None, None).unwrap();
        assert_eq!(new.initrd, "bty-netboot-pc-x86_64-v0.77.2.initrd");
        assert!(new.cmdline.contains(
            "/boot/bty-netboot-pc-x86_64-v0.77.2.squashfs components console=tty0 console=ttyS1,115200"
        ));
        assert!(
            new.cmdline
                .contains("modprobe.blacklist=nouveau,rndis_host")
        );
        assert_eq!(version_of("0.55.10"), (0, 55, 10));
        assert!(version_of("0.55.10") > version_of("0.55.2"));
        assert_eq!(version_of("garbage").0, u64::MAX);
    }
}
