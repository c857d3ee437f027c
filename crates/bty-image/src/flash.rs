//! One flash, start to finish: checks that need no write (same file, size fits), then three
//! threads joined by bounded queues of aligned buffers — decode (a [`Producer`]: source →
//! digest tap → decoders, or the qcow2 reader), hash (the image's tree digest) and write (the
//! caller's thread) — then the source digest check, the held-back ends, flushes, optional
//! read-back, and on any failure after the first write, the wipe. The first write clears the
//! layout the target held (see [`crate::disarm`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use serde::Serialize;

use crate::buffer::AlignedBuf;
use crate::cancel::CancelToken;
use crate::digest::Sha256Digest;
use crate::disarm::disarm;
use crate::error::{FlashError, FlashFailure, ImageError};
use crate::inspect::ImageInfo;
use crate::produce::{Produced, Producer, open_producer};
use crate::progress::{ProgressMeter, ProgressSink, Stage};
use crate::source::ImageSource;
use crate::target::{Target, TargetKind, ZeroMode};
use crate::tree::{self, TreeHasher};
use crate::verify::{self, Expected, Mismatch};
use crate::writer::{WriteStats, Writer};

/// How often the writer wakes up while waiting, to notice cancellation and report progress.
const TICK: Duration = Duration::from_millis(100);

/// Choices for one flash.
#[derive(Debug, Clone)]
pub struct FlashOptions {
    /// Expected sha256 of the source as published (e.g. the compressed file).
    pub expected_sha256: Option<Sha256Digest>,
    /// Read the target back and compare after writing.
    pub verify: bool,
    pub zeroes: ZeroMode,
    /// Size of each buffer in the pipeline (rounded up to a multiple of 1 MiB).
    pub buffer_size: usize,
    /// Buffers in flight between the threads.
    pub buffers: usize,
}

impl Default for FlashOptions {
    fn default() -> Self {
        FlashOptions {
            expected_sha256: None,
            verify: false,
            zeroes: ZeroMode::Auto,
            buffer_size: 4 << 20,
            buffers: 6,
        }
    }
}

/// What a successful flash did.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    pub target: String,
    pub target_kind: TargetKind,
    /// Bytes of the decoded image now on the target.
    pub image_bytes: u64,
    pub source_bytes: u64,
    /// sha256 of the source as published, when it was checked.
    pub source_sha256: Option<String>,
    /// Digest of the decoded image (see [`crate::tree`]), always computed.
    pub image_digest: String,
    pub image_digest_algorithm: &'static str,
    pub zeroes: ZeroMode,
    #[serde(flatten)]
    pub stats: WriteStats,
    pub verified: bool,
    pub elapsed_secs: f64,
}

enum Msg {
    Data(AlignedBuf),
    Zeros(u64),
    /// The image ended cleanly.
    End {
        source_digest: Option<Sha256Digest>,
    },
    Failed(FlashFailure),
}

/// Decode thread: pull pieces from the producer into buffers from the free pool, send them on.
fn decode_loop(
    open: impl FnOnce() -> Result<Box<dyn Producer>, FlashFailure>,
    free: Receiver<AlignedBuf>,
    out: SyncSender<Msg>,
    cancel: &CancelToken,
) {
    let run = || -> Result<Option<Sha256Digest>, FlashFailure> {
        let mut producer = open()?;
        let mut spare: Option<AlignedBuf> = None;
        loop {
            if cancel.is_cancelled() {
                return Err(FlashFailure::Cancelled);
            }
            let mut buf = match spare.take() {
                Some(b) => b,
                // The writer dropped the pool: it failed and reports its own error.
                None => free.recv().map_err(|_| FlashFailure::Cancelled)?,
            };
            let msg = match producer.next(&mut buf)? {
                Some(Produced::Data) => Msg::Data(buf),
                Some(Produced::Zeros(n)) => {
                    spare = Some(buf);
                    Msg::Zeros(n)
                }
                None => return producer.source_digest(),
            };
            if out.send(msg).is_err() {
                return Err(FlashFailure::Cancelled);
            }
        }
    };
    let msg = match run() {
        Ok(source_digest) => Msg::End { source_digest },
        Err(f) => Msg::Failed(f),
    };
    let _ = out.send(msg);
}

/// What the hash thread learned about the decoded image.
#[derive(Default)]
struct Decoded {
    digest: Option<[u8; 32]>,
    blocks: Vec<[u8; 32]>,
}

/// Hash thread: the image's tree digest, keeping block digests when verifying; `threads` is
/// how many cores may hash leaves at once.
fn hash_loop(
    input: Receiver<Msg>,
    out: SyncSender<Msg>,
    keep_blocks: bool,
    threads: usize,
) -> Decoded {
    let mut tree = TreeHasher::new(keep_blocks);
    for msg in input {
        match &msg {
            Msg::Data(buf) => tree.update_parallel(buf.as_slice(), threads),
            Msg::Zeros(n) => tree.update_zeros(*n),
            Msg::End { .. } => {
                let (digest, blocks) = tree.finish();
                let _ = out.send(msg);
                return Decoded {
                    digest: Some(digest),
                    blocks,
                };
            }
            Msg::Failed(_) => {
                let _ = out.send(msg);
                return Decoded::default();
            }
        }
        if out.send(msg).is_err() {
            return Decoded::default();
        }
    }
    Decoded::default()
}

/// Checks that must pass before anything is written.
pub fn preflight(
    source: &dyn ImageSource,
    info: &ImageInfo,
    target: &Target,
) -> Result<(), FlashFailure> {
    if source.identity() == Some(target.identity()) {
        return Err(FlashFailure::SameFile);
    }
    if let (Some(image), Some(cap)) = (info.output_size, target.capacity())
        && image > cap
    {
        return Err(FlashFailure::TooSmall { image, target: cap });
    }
    Ok(())
}

/// Write `source` (inspected as `info`) onto `target`.
pub fn flash(
    source: &Arc<dyn ImageSource>,
    info: &ImageInfo,
    target: &Target,
    opts: &FlashOptions,
    sink: &dyn ProgressSink,
    cancel: &CancelToken,
) -> Result<FlashReport, FlashError> {
    let mut meter = ProgressMeter::new(sink, source.size(), info.output_size);
    let fail = |failure: FlashFailure| {
        let write_began = target.modified();
        let wipe = write_began.then(|| target.wipe().map_err(|e| e.to_string()));
        FlashError {
            failure,
            write_began,
            wipe,
        }
    };
    let spawn_failed = |e: std::io::Error| FlashFailure::Io {
        what: "starting a worker thread".into(),
        source: e,
    };
    preflight(source.as_ref(), info, target).map_err(fail)?;
    if cancel.is_cancelled() {
        return Err(fail(FlashFailure::Cancelled));
    }
    // The first write, after every refusal: the old layout goes, flushed, before any progress
    // is reported — whoever sees the flash under way may cut the power.
    let disarmed = disarm(target).map_err(|e| {
        fail(FlashFailure::Io {
            what: format!(
                "clearing the old partition tables of {}",
                target.path().display()
            ),
            source: e,
        })
    })?;
    if let Some(at) = disarmed.alternate_at {
        tracing::debug!("cleared the old backup GPT header at byte {at}");
    }
    meter.stage(Stage::Preparing);

    let block = tree::BLOCK as usize;
    let buffer_size = opts.buffer_size.max(block).div_ceil(block) * block;
    let buffers = opts.buffers.max(3);
    let read_count = Arc::new(AtomicU64::new(0));
    let mut writer = Writer::new(target, opts.zeroes);
    meter.stage(Stage::Writing);

    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(buffers);
    for _ in 0..buffers {
        let _ = free_tx.send(AlignedBuf::new(buffer_size));
    }
    let (dec_tx, dec_rx) = sync_channel::<Msg>(buffers);
    let (hash_tx, hash_rx) = sync_channel::<Msg>(buffers);

    // The decode and hash threads are not joined on failure: a decode thread blocked in a read
    // from a stalled pipe or network must not keep a cancelled flash from wiping and returning.
    // They end on their own when their channels close or their read returns.
    {
        let (source, info, cancel) = (source.clone(), info.clone(), cancel.clone());
        let rc = read_count.clone();
        let hash_source = opts.expected_sha256.is_some();
        let open = move || open_producer(source, &info, hash_source, rc);
        std::thread::Builder::new()
            .name("bty-decode".into())
            .spawn(move || decode_loop(open, free_rx, dec_tx, &cancel))
            .map_err(|e| fail(spawn_failed(e)))?;
    }
    let keep_blocks = opts.verify;
    // Leaves are hashed on every core: for cheap sources (raw, qcow2) hashing is otherwise the
    // limit; with a decompressor busy on one core the scheduler shares (measured onto tmpfs:
    // no difference for zstd images either way).
    let hash_threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let hasher = std::thread::Builder::new()
        .name("bty-hash".into())
        .spawn(move || hash_loop(dec_rx, hash_tx, keep_blocks, hash_threads))
        .map_err(|e| fail(spawn_failed(e)))?;
    let write_result = (|| -> Result<Option<Sha256Digest>, FlashFailure> {
        loop {
            if cancel.is_cancelled() {
                return Err(FlashFailure::Cancelled);
            }
            match hash_rx.recv_timeout(TICK) {
                Ok(Msg::Data(buf)) => {
                    writer.push(buf.as_slice())?;
                    let _ = free_tx.send(buf);
                }
                Ok(Msg::Zeros(n)) => writer.push_zeros(n)?,
                Ok(Msg::End { source_digest }) => return Ok(source_digest),
                Ok(Msg::Failed(f)) => return Err(f),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(FlashFailure::Io {
                        what: "decoding".into(),
                        source: std::io::Error::other("the decoder stopped without a result"),
                    });
                }
            }
            // Also while stalled, so a consumer sees the rate fall instead of silence.
            meter.update(read_count.load(Ordering::Relaxed), writer.offset(), 0);
        }
    })();
    drop(free_tx);
    drop(hash_rx);
    let decoded = match &write_result {
        Ok(_) => hasher.join().unwrap_or_default(),
        Err(_) => Decoded::default(),
    };

    let source_digest = write_result.map_err(fail)?;
    if let (Some(expected), Some(actual)) = (opts.expected_sha256, source_digest)
        && expected != actual
    {
        return Err(fail(FlashFailure::DigestMismatch { expected, actual }));
    }
    if opts.expected_sha256.is_some() && source_digest.is_none() {
        return Err(fail(FlashFailure::Io {
            what: "checking the source digest".into(),
            source: std::io::Error::other("the source was not hashed"),
        }));
    }
    let image_digest = decoded.digest.ok_or_else(|| {
        fail(FlashFailure::Io {
            what: "hashing".into(),
            source: std::io::Error::other("no digest computed"),
        })
    })?;
    if writer.offset() < crate::inspect::MIN_IMAGE_BYTES {
        let size = writer.offset();
        return Err(fail(FlashFailure::Image(ImageError::Tiny {
            size,
            inner: String::new(),
        })));
    }
    if cancel.is_cancelled() {
        return Err(fail(FlashFailure::Cancelled));
    }
    meter.stage(Stage::Syncing);
    let image_bytes = writer.finish().map_err(fail)?;

    if opts.verify {
        meter.stage(Stage::Verifying);
        let expected = Expected {
            len: image_bytes,
            digest: image_digest,
            blocks: &decoded.blocks,
            skipped: writer.skipped_map(),
        };
        let read = read_count.load(Ordering::Relaxed);
        let outcome = verify::read_back(target, &expected, cancel, &mut |done| {
            meter.update(read, image_bytes, done)
        })
        .map_err(fail)?;
        match outcome {
            Ok(()) => {}
            Err(Mismatch::Block(idx)) => {
                let offset = verify::first_difference(source, info, target, idx, &expected)
                    .ok()
                    .flatten()
                    .unwrap_or(idx * tree::BLOCK);
                return Err(fail(FlashFailure::VerifyMismatch { offset }));
            }
            Err(Mismatch::Digest) => return Err(fail(FlashFailure::VerifyDigest)),
        }
    }
    target.reread_partitions();
    meter.stage(Stage::Done);
    Ok(FlashReport {
        target: target.path().display().to_string(),
        target_kind: target.kind(),
        image_bytes,
        source_bytes: read_count.load(Ordering::Relaxed),
        source_sha256: source_digest.map(|d| d.hex()),
        image_digest: hex::encode(image_digest),
        image_digest_algorithm: tree::ALGORITHM,
        zeroes: opts.zeroes,
        stats: writer.stats(),
        verified: opts.verify,
        elapsed_secs: meter.elapsed().as_secs_f64(),
    })
}
