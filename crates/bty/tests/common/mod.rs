//! Helpers shared by the `bty` end-to-end tests: running the binary, deterministic sample
//! images, the system compressors, and loop devices (the tests run as root).

#![allow(dead_code)]

pub mod registry;
pub mod server;
pub mod web;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const MIB: usize = 1 << 20;

pub fn bty_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bty")
}

/// Result of one `bty` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The JSON documents printed on stdout (one per line).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// The last JSON document (the result or the error).
    pub fn last_json(&self) -> serde_json::Value {
        self.json_lines()
            .pop()
            .unwrap_or_else(|| panic!("no JSON output; stderr: {}", self.stderr))
    }
}

/// Run `bty` with `args`, stdin closed (so no terminal).
pub fn bty<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(bty_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run bty");
    Run::from(out)
}

/// `bty flash SOURCE TARGET --yes EXTRA…`, stdin closed.
pub fn flash_yes(source: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "flash".as_ref(),
        source.as_os_str(),
        target.as_os_str(),
        "--yes".as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    bty(args)
}

/// A deterministic pseudo-random generator (xorshift64*), so images are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// A disk-like image: an MBR-ish first sector, random data, long zero runs (aligned and not),
/// compressible text and a non-zero tail. `len` need not be a multiple of 512.
pub fn sample_image(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut img = vec![0u8; len];
    let mut pos = 0usize;
    let mut turn = 0;
    while pos < len {
        let kind = turn % 4;
        turn += 1;
        let run = match kind {
            0 => 64 * 1024 + (rng.next() % (512 * 1024)) as usize,
            1 => 100 * 1024 + (rng.next() % (1536 * 1024)) as usize + 333,
            2 => 32 * 1024 + (rng.next() % (256 * 1024)) as usize,
            _ => 4096 + (rng.next() % 8192) as usize,
        };
        let end = (pos + run).min(len);
        match kind {
            0 => rng.fill(&mut img[pos..end]),
            1 => {} // zeros
            2 => {
                for (i, b) in img[pos..end].iter_mut().enumerate() {
                    *b = b"the quick brown fox jumps over the lazy dog\n"[i % 44];
                }
            }
            _ => {
                // Sparse bytes inside a mostly-zero block: zero runs shorter than a granule.
                for i in (pos..end).step_by(1500) {
                    img[i] = (rng.next() | 1) as u8;
                }
            }
        }
        pos = end;
    }
    if len >= 512 {
        img[510] = 0x55;
        img[511] = 0xaa;
    }
    if let Some(last) = img.last_mut() {
        *last = 0x42;
    }
    img
}

/// Run a shell pipeline; panics with its stderr on failure.
pub fn sh(script: &str) {
    shell_output(script, &format!("`{script}`"));
}

/// Run a shell command line and return its standard output; panics with its stderr on failure.
fn shell_output(script: &str, what: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Compress `input` with a system tool reading stdin and writing stdout (e.g. `zstd -q -c`).
pub fn compress(tool: &str, input: &Path) -> Vec<u8> {
    shell_output(&format!("({tool}) < '{}'", input.display()), tool)
}

/// Compress a file by name (so the tool knows its size, as an operator would).
pub fn compress_file(tool: &str, input: &Path) -> Vec<u8> {
    shell_output(&format!("{tool} '{}'", input.display()), tool)
}

/// Decompress with the system tool: the reference the flashed bytes must equal.
pub fn decompress(tool: &str, input: &Path) -> Vec<u8> {
    compress(tool, input)
}

pub fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn read_range(path: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(off)).unwrap();
    let mut v = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut v).unwrap();
    v
}

/// The first differing offset of two byte strings, for readable assertion messages.
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[track_caller]
pub fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if let Some(at) = first_diff(actual, expected) {
        panic!(
            "{what}: differs at byte {at} (lengths {} vs {})",
            actual.len(),
            expected.len()
        );
    }
}

/// A loop device over a backing file in a temporary folder; detached on drop.
pub struct LoopDev {
    pub path: PathBuf,
    pub backing: PathBuf,
    pub size: usize,
    _dir: tempfile::TempDir,
}

impl LoopDev {
    /// A loop device of `size` bytes whose contents are random (seeded).
    pub fn new(size: usize, seed: u64) -> LoopDev {
        Self::with_options(size, seed, &[])
    }

    pub fn with_options(size: usize, seed: u64, losetup_args: &[&str]) -> LoopDev {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing.img");
        write(&backing, &random_bytes(size, seed));
        let out = Command::new("losetup")
            .args(losetup_args)
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
            .expect("losetup (the tests need root and util-linux)");
        assert!(
            out.status.success(),
            "losetup failed (are we root?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        LoopDev {
            path,
            backing,
            size,
            _dir: dir,
        }
    }

    /// Overwrite the device with random bytes again.
    pub fn refill(&self, seed: u64) {
        let mut f = fs::OpenOptions::new().write(true).open(&self.path).unwrap();
        f.write_all(&random_bytes(self.size, seed)).unwrap();
        f.sync_all().unwrap();
    }

    pub fn read(&self, off: u64, len: usize) -> Vec<u8> {
        // Through the device node, after dropping its cache, as a reader would see it.
        let _ = Command::new("blockdev")
            .arg("--flushbufs")
            .arg(&self.path)
            .status();
        read_range(&self.path, off, len)
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}
