//! The machine around the wizard: whether it runs in a live or netboot environment, and
//! rebooting it.

use std::path::Path;

/// True when booted into a live medium or bty's netboot environment: the kernel command line
/// names `boot=live` or `bty.server=`, or a live medium is mounted where live systems put it.
pub fn live_environment() -> bool {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    cmdline
        .split_whitespace()
        .any(|w| w == "boot=live" || w.starts_with("bty.server=") || w.starts_with("bty.mac="))
        || Path::new("/run/live/medium").is_dir()
}

/// Reboot: `systemctl reboot` under systemd, else the reboot(2) system call after a sync.
pub fn reboot() -> std::io::Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        let status = std::process::Command::new("systemctl")
            .arg("reboot")
            .status()?;
        if status.success() {
            return Ok(());
        }
        return Err(std::io::Error::other(format!("systemctl reboot: {status}")));
    }
    // SAFETY: sync(2) and reboot(2) take no pointers; reboot only returns on failure.
    unsafe {
        libc::sync();
        if libc::reboot(libc::RB_AUTOBOOT) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
