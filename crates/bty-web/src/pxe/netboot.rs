//! The netboot environment the live-environment chain boots: kernel and initrd file names
//! (in the boot folder) and the kernel command line, from `[netboot]` config. Two presets:
//! `bty` (our environment: `bty-netboot-x86_64.vmlinuz` / `.initrd`, the agent reads
//! `bty.server=` and `bty.mac=`) and `upstream-live` (upstream's live-build trio with
//! versioned names and `boot=live fetch=<squashfs>`, so an upstream netboot set can be served
//! unchanged). `kernel`, `initrd` and `cmdline` override the preset; in the command line
//! `{base}` becomes the server's base URL (as the iPXE variable `${bty-base}`), `{mac}` the
//! machine's MAC, `{kernel}` / `{initrd}` the file names and `{version}` the upstream version.

/// What the live-environment chain loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netboot {
    pub kernel: String,
    pub initrd: String,
    /// With `{base}`, `{mac}`, `{kernel}`, `{initrd}` placeholders.
    pub cmdline: String,
}

pub const PRESETS: [&str; 2] = ["bty", "upstream-live"];

const BTY_CMDLINE: &str = "console=tty0 console=ttyS0,115200 bty.server={base} bty.mac={mac}";
const UPSTREAM_CMDLINE: &str = "boot=live fetch={base}/boot/bty-netboot-x86_64-v{version}.squashfs components console=tty0 console=ttyS0,115200 plymouth.enable=0 modprobe.blacklist=nouveau nouveau.modeset=0 systemd.gpt_auto=0 bty.server={base} bty.mac={mac}";

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
                BTY_CMDLINE.to_string(),
            ),
            "upstream-live" => (
                format!("bty-netboot-x86_64-v{upstream_version}.vmlinuz"),
                format!("bty-netboot-x86_64-v{upstream_version}.initrd"),
                UPSTREAM_CMDLINE.replace("{version}", upstream_version),
            ),
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
            "console=tty0 console=ttyS0,115200 bty.server=${bty-base} bty.mac=aa:bb:cc:dd:ee:ff"
        );
        let u = Netboot::new("upstream-live", "0.47.0", None, None, None).unwrap();
        assert_eq!(u.initrd, "bty-netboot-x86_64-v0.47.0.initrd");
        assert!(u.cmdline_for("m").starts_with(
            "boot=live fetch=${bty-base}/boot/bty-netboot-x86_64-v0.47.0.squashfs components "
        ));
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
}
