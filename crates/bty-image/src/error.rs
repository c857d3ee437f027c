//! Errors of the engine. [`ImageError`] says what is wrong with an image (found before or while
//! decoding); [`FlashError`] wraps every way a flash can fail, with whether writing had begun
//! and what became of the target, because that decides the exit code and what the operator
//! must do next.

use std::io;
use std::path::PathBuf;

use crate::digest::Sha256Digest;
use crate::format::Compression;

/// Something is wrong with the image itself.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read {what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error("{0} is a directory, not an image")]
    IsDirectory(PathBuf),
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error(
        "the image is implausibly tiny: {size} bytes{inner}; a disk image holds at least one 512-byte sector"
    )]
    Tiny { size: u64, inner: String },
    #[error("this is a tar archive{}, not a disk image: extract it first (tar -xf) and flash the image file inside", in_layers(.layers))]
    Tar { layers: Vec<Compression> },
    #[error(
        "this is a {kind} archive, not a disk image: extract it first and flash the image file inside"
    )]
    Archive { kind: &'static str },
    #[error("qcow2 inside {}: qcow2 needs random access, which a compressed stream cannot give; decompress it first ({}), or convert it to a compressed raw image (qemu-img convert -O raw, then zstd)", describe_layers(.layers), decompress_hint(.layers))]
    Qcow2Compressed { layers: Vec<Compression> },
    #[error("invalid qcow2 image: {detail}")]
    Qcow2Invalid { detail: String },
    #[error(
        "qcow2 needs random access, which this source cannot give (a pipe, or a web server without byte ranges); save it to a file first"
    )]
    Qcow2NeedsRandomAccess,
    #[error("{what} is not supported: {advice}")]
    Unsupported {
        what: &'static str,
        advice: &'static str,
    },
    #[error(
        "trailing data after the {layer} stream at byte {offset} of the {layer} data: the file is corrupt or has something appended; refusing to guess"
    )]
    TrailingData { layer: Compression, offset: u64 },
    #[error("the {layer} stream is corrupt or truncated: {detail}")]
    Corrupt { layer: Compression, detail: String },
    #[error("not a sha256 digest: {0:?} (expected 64 hex digits, optionally prefixed by sha256:)")]
    BadDigest(String),
}

fn in_layers(layers: &[Compression]) -> String {
    if layers.is_empty() {
        String::new()
    } else {
        format!(" (inside {})", describe_layers(layers))
    }
}

fn describe_layers(layers: &[Compression]) -> String {
    let names: Vec<&str> = layers.iter().map(|c| c.name()).collect();
    names.join(" inside ")
}

fn decompress_hint(layers: &[Compression]) -> String {
    layers
        .first()
        .map(|c| c.decompress_command())
        .unwrap_or("decompress")
        .to_string()
}

/// The ways a flash fails. See [`FlashError`] for the target's state.
#[derive(Debug, thiserror::Error)]
pub enum FlashFailure {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Target(String),
    #[error("the image ({image} bytes) does not fit on the target ({target} bytes)")]
    TooSmall { image: u64, target: u64 },
    #[error(
        "the image continues past the end of the target ({target} bytes); the target is too small for it"
    )]
    RanPastEnd { target: u64 },
    #[error("source and target are the same file")]
    SameFile,
    #[error("sha256 mismatch for the source: expected {expected}, got {actual}")]
    DigestMismatch {
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
    #[error("read-back verification failed: the target differs from the image at byte {offset}")]
    VerifyMismatch { offset: u64 },
    #[error(
        "read-back verification failed: the digest of what the target holds differs from the image's"
    )]
    VerifyDigest,
    #[error("cancelled")]
    Cancelled,
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

/// A failed flash: what went wrong, whether any byte of the target had been changed, and the
/// outcome of wiping the target's first and last MiB afterwards.
#[derive(Debug)]
pub struct FlashError {
    pub failure: FlashFailure,
    /// True once the target was modified; the exit code and the wipe depend on it.
    pub write_began: bool,
    /// `Some(Ok)` when the target was wiped, `Some(Err)` when wiping failed too.
    pub wipe: Option<Result<(), String>>,
}

impl FlashError {
    pub fn before_write(failure: impl Into<FlashFailure>) -> FlashError {
        FlashError {
            failure: failure.into(),
            write_began: false,
            wipe: None,
        }
    }
}

impl std::fmt::Display for FlashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.failure)?;
        match (&self.wipe, self.write_began) {
            (Some(Ok(())), _) => write!(
                f,
                "; the target's first and last MiB were wiped so it cannot boot a partial image"
            ),
            (Some(Err(e)), _) => write!(
                f,
                "; WIPING THE TARGET FAILED TOO ({e}): it may hold a partial image, do not boot it"
            ),
            (None, false) => write!(f, "; the target was not modified"),
            (None, true) => Ok(()),
        }
    }
}

impl std::error::Error for FlashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.failure)
    }
}
