//! One flash, start to finish: checks that need no write (same file, size fits), then three
//! threads joined by bounded queues of aligned buffers — decode (source → digest tap →
//! decoders), hash (decoded sha256 and per-MiB fingerprints) and write (the caller's thread) —
//! then the source digest check, the held-back first MiB, flushes, optional read-back, and on
//! any failure after the first write, the wipe.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::buffer::AlignedBuf;
use crate::cancel::CancelToken;
use crate::decode::{decoded_stream, into_image_error, read_full};
use crate::digest::{CountingReader, HashingReader, Sha256Digest};
use crate::error::{FlashError, FlashFailure, ImageError};
use crate::inspect::ImageInfo;
use crate::progress::{ProgressMeter, ProgressSink, Stage};
use crate::source::ImageSource;
use crate::target::{Target, TargetKind, ZeroMode};
use crate::verify::{self, Expected, Mismatch, VERIFY_BLOCK, block_fingerprint};
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
    /// Size of each buffer in the pipeline; a multiple of 1 MiB.
    pub buffer_size: usize,
    /// Buffers in flight between the threads.
    pub buffers: usize,
    /// Zero runs are detected in units of this many bytes.
    pub zero_granule: usize,
}

impl Default for FlashOptions {
    fn default() -> Self {
        FlashOptions {
            expected_sha256: None,
            verify: false,
            zeroes: ZeroMode::Auto,
            buffer_size: 4 << 20,
            buffers: 6,
            zero_granule: 64 << 10,
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
    /// sha256 of the decoded image, always computed.
    pub image_sha256: String,
    pub zeroes: ZeroMode,
    #[serde(flatten)]
    pub stats: WriteStats,
    pub verified: bool,
    pub elapsed_secs: f64,
}

enum Msg {
    Data(AlignedBuf),
    /// The stream ended cleanly.
    End {
        source_digest: Option<Sha256Digest>,
    },
    Failed(FlashFailure),
}

fn read_failure(source: &dyn ImageSource, e: std::io::Error) -> FlashFailure {
    match into_image_error(e) {
        Ok(img) => FlashFailure::Image(img),
        Err(e) => FlashFailure::Io {
            what: format!("reading {}", source.describe()),
            source: e,
        },
    }
}

/// Decode thread: fill buffers from the free pool and send them on.
fn decode_loop(
    source: &dyn ImageSource,
    info: &ImageInfo,
    hash_source: bool,
    read_count: Arc<AtomicU64>,
    free: Receiver<AlignedBuf>,
    out: SyncSender<Msg>,
    cancel: &CancelToken,
) {
    let run = || -> Result<Option<Sha256Digest>, FlashFailure> {
        let raw = source.open_stream().map_err(|e| read_failure(source, e))?;
        let counted = CountingReader::new(raw, read_count);
        let (raw, handle): (Box<dyn Read + Send>, _) = if hash_source {
            let (r, h) = HashingReader::new(counted);
            (Box::new(r), Some(h))
        } else {
            (Box::new(counted), None)
        };
        let mut stream = decoded_stream(raw, &info.compression);
        loop {
            if cancel.is_cancelled() {
                return Err(FlashFailure::Cancelled);
            }
            // The writer dropped the pool: it failed and has its own error to report.
            let Ok(mut buf) = free.recv() else {
                return Err(FlashFailure::Cancelled);
            };
            buf.set_len(buf.capacity());
            let n =
                read_full(&mut stream, buf.as_full_mut()).map_err(|e| read_failure(source, e))?;
            buf.set_len(n);
            let last = n < buf.capacity();
            if n > 0 && out.send(Msg::Data(buf)).is_err() {
                return Err(FlashFailure::Cancelled);
            }
            if last {
                return Ok(handle.and_then(|h| h.finish()));
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
    digest: Option<Sha256Digest>,
    blocks: Vec<u64>,
}

/// Hash thread: sha256 of the decoded stream, plus per-MiB fingerprints when verifying.
fn hash_loop(input: Receiver<Msg>, out: SyncSender<Msg>, fingerprints: bool) -> Decoded {
    let mut sha = Sha256::new();
    let mut decoded = Decoded::default();
    for msg in input {
        match msg {
            Msg::Data(buf) => {
                sha.update(buf.as_slice());
                if fingerprints {
                    decoded.blocks.extend(
                        buf.as_slice()
                            .chunks(VERIFY_BLOCK as usize)
                            .map(block_fingerprint),
                    );
                }
                if out.send(Msg::Data(buf)).is_err() {
                    return decoded;
                }
            }
            end @ Msg::End { .. } => {
                decoded.digest = Some(Sha256Digest::from_hasher(sha));
                let _ = out.send(end);
                return decoded;
            }
            failed @ Msg::Failed(_) => {
                let _ = out.send(failed);
                return decoded;
            }
        }
    }
    decoded
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
    meter.stage(Stage::Preparing);
    let fail = |failure: FlashFailure| {
        let write_began = target.modified();
        let wipe = write_began.then(|| target.wipe().map_err(|e| e.to_string()));
        FlashError {
            failure,
            write_began,
            wipe,
        }
    };
    preflight(source.as_ref(), info, target).map_err(fail)?;
    if cancel.is_cancelled() {
        return Err(fail(FlashFailure::Cancelled));
    }

    let buffer_size = opts
        .buffer_size
        .max(VERIFY_BLOCK as usize)
        .div_ceil(VERIFY_BLOCK as usize)
        * VERIFY_BLOCK as usize;
    let buffers = opts.buffers.max(3);
    let read_count = Arc::new(AtomicU64::new(0));
    let mut writer = Writer::new(target, opts.zeroes, opts.zero_granule);
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
        std::thread::Builder::new()
            .name("bty-decode".into())
            .spawn(move || {
                decode_loop(
                    source.as_ref(),
                    &info,
                    hash_source,
                    rc,
                    free_rx,
                    dec_tx,
                    &cancel,
                )
            })
            .map_err(|e| {
                fail(FlashFailure::Io {
                    what: "starting the decoder".into(),
                    source: e,
                })
            })?;
    }
    let fingerprints = opts.verify;
    let hasher = std::thread::Builder::new()
        .name("bty-hash".into())
        .spawn(move || hash_loop(dec_rx, hash_tx, fingerprints))
        .map_err(|e| {
            fail(FlashFailure::Io {
                what: "starting the hasher".into(),
                source: e,
            })
        })?;
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
    let image_digest = decoded.digest.ok_or_else(|| {
        fail(FlashFailure::Io {
            what: "hashing".into(),
            source: std::io::Error::other("no digest computed"),
        })
    })?;
    if writer.offset() < crate::inspect::MIN_IMAGE_BYTES {
        return Err(fail(FlashFailure::Image(ImageError::Tiny {
            size: writer.offset(),
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
                let offset = verify::first_difference(
                    source.as_ref(),
                    &info.compression,
                    target,
                    idx,
                    &expected,
                )
                .ok()
                .flatten()
                .unwrap_or(idx * VERIFY_BLOCK);
                return Err(fail(FlashFailure::VerifyMismatch { offset }));
            }
            Err(Mismatch::Digest(actual)) => {
                return Err(fail(FlashFailure::VerifyDigest {
                    expected: image_digest,
                    actual,
                }));
            }
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
        image_sha256: image_digest.hex(),
        zeroes: opts.zeroes,
        stats: writer.stats(),
        verified: opts.verify,
        elapsed_secs: meter.elapsed().as_secs_f64(),
    })
}
