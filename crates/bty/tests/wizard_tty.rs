//! The wizard in a real terminal: tmux runs `bty` in an 80×24 pseudo-terminal, the test sends
//! keys and reads the screen back. One run flashes a zstd image from the image folder onto a
//! loop device (and cannot pick a mounted one); another cancels a stalled download mid-flash
//! and checks the wipe.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::server::{Faults, TestServer};
use common::{LoopDev, MIB, assert_same, compress, sample_image, sh, write};

/// Generous limits for slow CI machines; they bound a hang, they do not measure speed.
const WAIT: Duration = Duration::from_secs(90);

/// A tmux server of our own (its own socket) with one 80×24 window running a command.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "bty-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let t = Tmux { socket };
        let ok = t
            .cmd(&["new-session", "-d", "-x", "80", "-y", "24", command])
            .status()
            .expect("tmux (the test command installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]).args(args);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            assert!(
                self.cmd(&["send-keys", k]).status().unwrap().success(),
                "send-keys {k}"
            );
        }
    }

    fn type_text(&self, text: &str) {
        assert!(
            self.cmd(&["send-keys", "-l", text])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Wait until the screen shows `text`; the screen so far on timeout.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {text:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// On the disk screen: move the cursor down until it rests on `dev`. Every row the cursor
    /// passes must be a writable disk.
    fn select_disk(&self, dev: &Path) {
        let want = format!("> {} ", dev.display());
        for _ in 0..64 {
            let s = self.screen();
            if s.contains(&want) {
                return;
            }
            self.keys(&["j"]);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cursor never reached {}:\n{}", dev.display(), self.screen());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// The command tmux runs: bty with `env`, then its exit code on the screen.
fn wizard_command(env: &[(&str, &str)], args: &str) -> String {
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
    format!(
        "env TERM=xterm NO_COLOR=1 BTY_LOG=off {} '{}' {args}; echo \"EXIT=$?\"; sleep 600",
        vars.join(" "),
        common::bty_bin()
    )
}

#[test]
fn the_wizard_flashes_a_folder_image_onto_a_loop_device() {
    let image = sample_image(6 * MIB + 12_345, 41);
    let folder = tempfile::tempdir().unwrap();
    let raw = folder.path().join("raw.tmp");
    write(&raw, &image);
    let zst = compress("zstd", &raw);
    std::fs::remove_file(&raw).unwrap();
    write(&folder.path().join("lab-image.img.zst"), &zst);

    let disk = LoopDev::new(16 * MIB, 7);
    // A second loop device with a mounted filesystem: listed, never selectable.
    let mounted = LoopDev::new(16 * MIB, 8);
    let mnt = tempfile::tempdir().unwrap();
    sh(&format!(
        "mkfs.ext4 -q -F '{}' && mount '{}' '{}'",
        mounted.path.display(),
        mounted.path.display(),
        mnt.path().display()
    ));

    let root = folder.path().display().to_string();
    let t = Tmux::start(&wizard_command(&[("BTY_IMAGE_ROOT", &root)], "--all-disks"));
    t.wait_for("Where is the image?");
    t.keys(&["Enter"]);
    t.wait_for("lab-image.img.zst");
    t.keys(&["Enter"]);
    let disks = t.wait_for("Pick the disk to overwrite");
    // The mounted device says why it cannot be picked.
    let name = mounted.path.display().to_string();
    if disks.contains(&format!(" {name} ")) {
        let after = disks.split(&format!(" {name} ")).nth(1).unwrap_or_default();
        assert!(after.contains("not writable"), "screen:\n{disks}");
    }
    t.select_disk(&disk.path);
    assert!(!t.screen().contains(&format!("> {name} ")));
    t.keys(&["Enter"]);
    t.wait_for("Type ");
    // Enter alone does not confirm.
    t.keys(&["Enter"]);
    t.wait_for("and press Enter to write");
    let dev_name = disk
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    t.type_text(&dev_name);
    t.keys(&["Enter"]);
    let done = t.wait_for("Flash complete.");
    assert!(
        done.contains("identical to the image"),
        "verify ran:\n{done}"
    );
    t.keys(&["q"]);
    let end = t.wait_for("EXIT=");
    assert!(end.contains("EXIT=0"), "exit code:\n{end}");
    assert_same(
        &disk.read(0, image.len()),
        &image,
        "loop device after the wizard",
    );

    let _ = Command::new("umount").arg(mnt.path()).status();
}

#[test]
fn cancelling_in_the_wizard_wipes_the_disk() {
    // Random data: the stream cannot outrun the stall, and the held-back first MiB and the
    // tail stay unwritten until the end.
    let image = common::random_bytes(24 * MIB, 99);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    write(&raw, &image);
    let zst = compress("zstd", &raw);
    let server = TestServer::start();
    server.put_with(
        "/big.img.zst",
        zst.clone(),
        Faults {
            stall_at: Some(zst.len() / 2),
            ..Faults::default()
        },
    );
    let catalog = format!(
        "version = 1\n[[images]]\nname = \"stalling-image\"\nsrc = \"{}\"\nformat = \"img.zst\"\n",
        server.url("/big.img.zst")
    );
    server.put("/catalog.toml", catalog.into_bytes());
    let empty = tempfile::tempdir().unwrap();
    let disk = LoopDev::new(32 * MIB, 5);
    let before = disk.read(0, disk.size);

    let root = empty.path().display().to_string();
    let t = Tmux::start(&wizard_command(
        &[("BTY_IMAGE_ROOT", &root)],
        &format!("--all-disks --catalog '{}'", server.url("/catalog.toml")),
    ));
    // --catalog starts at the image list.
    t.wait_for("stalling-image");
    t.keys(&["Enter"]);
    t.wait_for("Pick the disk to overwrite");
    t.select_disk(&disk.path);
    t.keys(&["Enter"]);
    t.wait_for("Type ");
    t.type_text(&disk.path.file_name().unwrap().to_string_lossy());
    t.keys(&["Enter"]);
    t.wait_for("Writing stalling-image");
    let start = Instant::now();
    while server.stalled() == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the download never reached the stall"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Writing began: the screen shows more than 1 MiB written.
    let start = Instant::now();
    loop {
        let s = t.screen();
        if s.lines()
            .any(|l| l.contains("written") && l.contains("MiB of") && !l.contains(" 0 B"))
        {
            break;
        }
        assert!(start.elapsed() < WAIT, "no progress shown:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t.keys(&["Escape"]);
    t.wait_for("Cancel the flash?");
    t.keys(&["y"]);
    let done = t.wait_for("Flash cancelled.");
    assert!(done.contains("was wiped"), "wipe reported:\n{done}");
    t.keys(&["q"]);
    let end = t.wait_for("EXIT=");
    assert!(
        end.contains("EXIT=1"),
        "exit code after a cancelled flash:\n{end}"
    );

    let after = disk.read(0, disk.size);
    assert!(after[..MIB].iter().all(|&b| b == 0), "first MiB wiped");
    assert!(
        after[disk.size - MIB..].iter().all(|&b| b == 0),
        "last MiB wiped"
    );
    // Writing really began: part of the image past the first MiB is on the disk.
    assert_eq!(&after[MIB..2 * MIB], &image[MIB..2 * MIB]);
    assert_ne!(&after[MIB..2 * MIB], &before[MIB..2 * MIB]);
}
