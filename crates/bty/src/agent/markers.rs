//! Line-based markers on every serial console, for operators watching a BMC's serial-over-LAN
//! while the agent's screen is on the monitor: `bty: start v…`, each stage, 25/50/75/100 % of
//! download and write, and `bty: done` or `bty: failed: <reason>`. Each console is opened
//! `O_NONBLOCK`: a marker that cannot be written at once is dropped, so a stuck or absent
//! serial line never stalls a flash.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The serial consoles: those the command line names (`console=ttyS1,115200`) and those the
/// kernel writes to (`/sys/class/tty/console/active`, e.g. `tty0 ttyS1`) — not the same set,
/// as the kernel can drive only one console per serial driver — except `screen`, which shows
/// the agent's own output.
pub fn serial_consoles(cmdline: &str, active: &str, screen: &Path) -> Vec<PathBuf> {
    let named = cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("console="))
        .map(|c| c.split(',').next().unwrap_or(c));
    let mut out: Vec<PathBuf> = Vec::new();
    for n in named.chain(active.split_whitespace()) {
        let serial = ["ttyS", "ttyAMA", "ttyUSB", "hvc"].iter().any(|p| {
            n.strip_prefix(p)
                .is_some_and(|i| i.bytes().all(|b| b.is_ascii_digit()))
        });
        let p = Path::new("/dev").join(n);
        if serial && p != screen && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

pub struct Markers {
    outs: Vec<Mutex<File>>,
    /// Last quarter reported per measure (download, write), so each is said once.
    said: Mutex<[u8; 2]>,
}

/// Which progress a marker counts.
#[derive(Clone, Copy)]
pub enum Measure {
    Download = 0,
    Write = 1,
}

impl Measure {
    fn word(self) -> &'static str {
        match self {
            Measure::Download => "download",
            Measure::Write => "write",
        }
    }
}

impl Markers {
    /// Open each of `paths` for non-blocking writes; those that cannot be opened are left out.
    pub fn open(paths: &[PathBuf]) -> Markers {
        let outs = paths
            .iter()
            .filter_map(|p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(p)
                    .map_err(|e| tracing::debug!("marker console {}: {e}", p.display()))
                    .ok()
            })
            .map(Mutex::new)
            .collect();
        Markers {
            outs,
            said: Mutex::new([0; 2]),
        }
    }

    /// The running machine's serial consoles, apart from the screen.
    pub fn for_this_machine(cmdline: &str, screen: &Path) -> Markers {
        let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
        Markers::open(&serial_consoles(cmdline, &active, screen))
    }

    /// Write `bty: <text>` as one line to every console; how many took it whole.
    pub fn say(&self, text: &str) -> usize {
        let one_line: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line = format!("bty: {one_line}\r\n");
        let mut took = 0;
        for out in &self.outs {
            let Ok(mut f) = out.lock() else { continue };
            // One write: a full or stalled line refuses with EAGAIN, and the marker is gone.
            if matches!(f.write(line.as_bytes()), Ok(n) if n == line.len()) {
                took += 1;
            }
        }
        took
    }

    /// Report `done` of `total` for `m` at each quarter passed (25, 50, 75, 100 %), once each.
    pub fn progress(&self, m: Measure, done: u64, total: Option<u64>) {
        let Some(total) = total.filter(|t| *t > 0) else {
            return;
        };
        let quarter = ((done.min(total) as u128 * 4) / total as u128) as u8;
        let last = {
            let Ok(mut said) = self.said.lock() else {
                return;
            };
            let last = said[m as usize];
            if quarter <= last {
                return;
            }
            said[m as usize] = quarter;
            last
        };
        for q in last + 1..=quarter {
            self.say(&format!("{} {}%", m.word(), u32::from(q) * 25));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_from_the_active_list() {
        let cmdline =
            "quiet console=tty0 console=ttyS1,115200 console=ttyS0,115200 earlyprintk=ttyS0";
        let got = serial_consoles(cmdline, "tty0 ttyS1\n", Path::new("/dev/tty1"));
        assert_eq!(
            got,
            vec![PathBuf::from("/dev/ttyS1"), PathBuf::from("/dev/ttyS0")]
        );
        // The screen moved to a serial port is left out of the markers.
        let got = serial_consoles("console=ttyS0", "tty0 ttyS0", Path::new("/dev/ttyS0"));
        assert!(got.is_empty());
        assert!(serial_consoles("console=ttyS0/../x", "", Path::new("/dev/tty1")).is_empty());
    }

    #[test]
    fn quarters_are_said_once_and_a_full_line_drops_markers() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("console");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A reader that never reads: the pipe fills, as a stalled serial line would.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let m = Markers::open(std::slice::from_ref(&fifo));
        m.progress(Measure::Write, 10, Some(100));
        m.progress(Measure::Write, 60, Some(100));
        m.progress(Measure::Write, 60, Some(100));
        m.progress(Measure::Download, 100, Some(100));
        let mut text = vec![0u8; 4096];
        let n = std::io::Read::read(&mut &reader, &mut text).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&text[..n]),
            "bty: write 25%\r\nbty: write 50%\r\nbty: download 25%\r\nbty: download 50%\r\n\
             bty: download 75%\r\nbty: download 100%\r\n"
        );
        // Fill the pipe: every later marker is dropped at once, none blocks.
        let mut dropped = 0;
        for i in 0..100_000 {
            if m.say(&format!("filler {i} {}", "x".repeat(200))) == 0 {
                dropped += 1;
            }
        }
        assert!(dropped > 90_000, "only {dropped} dropped");
        // A console that cannot be opened (no reader on a FIFO) is left out.
        drop(reader);
        drop(m);
        assert_eq!(Markers::open(&[fifo]).say("x"), 0);
    }
}
