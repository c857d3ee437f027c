//! The bytes engine of bty: it turns an image source into exactly the bytes it describes and
//! lays them onto a target disk or file, fast and fail-safe.
//!
//! Data flows one way: [`source`] (a byte stream, optionally with positional reads) → a digest
//! tap ([`digest`]) → decoders chosen by sniffing content ([`format`], [`decode`]) → the writer
//! ([`writer`]: zero runs, held-back first MiB) → a [`target`] (block device or regular file).
//! Decoding, hashing and writing run on separate threads joined by bounded queues of large
//! aligned buffers ([`flash`]). Progress is a stream of [`progress::Progress`] events; a
//! [`cancel::CancelToken`] stops work safely.
//!
//! Not here: where bytes come from over the network (`bty-source`), disk discovery and safety
//! classification (`bty-disk`), and anything about terminals.

pub mod buffer;
pub mod cancel;
pub mod decode;
pub mod digest;
pub mod disarm;
mod emit;
pub mod error;
pub mod flash;
pub mod format;
pub mod inspect;
pub mod peek;
pub mod produce;
pub mod progress;
pub mod qcow2;
pub mod size;
pub mod source;
pub mod target;
pub mod tree;
pub mod verify;
pub mod writer;
pub mod zeroscan;

pub use cancel::CancelToken;
pub use error::{FlashError, ImageError};
pub use flash::{FlashOptions, FlashReport, flash};
pub use format::{Compression, Layer, PartitionTable};
pub use inspect::{ImageInfo, inspect};
pub use progress::{Progress, Stage};
pub use source::{FileSource, ImageSource, PipeSource, ReadAt, open_local};
pub use target::{Target, TargetKind, ZeroMode};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
