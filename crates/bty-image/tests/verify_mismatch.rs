//! Read-back verification finds a difference and names its exact offset, and a cancelled flash
//! through the engine API wipes the target.

use std::sync::Arc;

use bty_image::progress::{NoProgress, Progress};
use bty_image::source::MemorySource;
use bty_image::tree::{BLOCK as VERIFY_BLOCK, TreeHasher};
use bty_image::verify::{Expected, Mismatch, first_difference, read_back};
use bty_image::{CancelToken, FlashOptions, ImageSource, Target, flash, inspect};

fn image(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + i / 4096) % 251) as u8)
        .collect()
}

#[test]
fn a_corrupted_byte_is_found_at_its_exact_offset() {
    let dir = tempfile::tempdir().unwrap();
    let data = image(5 * VERIFY_BLOCK as usize + 700);
    let source: Arc<dyn ImageSource> = Arc::new(MemorySource::new("mem", data.clone()));
    let info = inspect(source.as_ref()).unwrap();
    let path = dir.path().join("out.img");
    let target = Target::open(&path).unwrap();
    let opts = FlashOptions {
        verify: true,
        ..FlashOptions::default()
    };
    let report = flash(
        &source,
        &info,
        &target,
        &opts,
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert!(report.verified);
    assert_eq!(
        report.image_digest,
        hex::encode(bty_image::tree::digest(&data))
    );

    // Damage one byte behind the engine's back, then verify again.
    let bad_at = 3 * VERIFY_BLOCK + 12_345;
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[bad_at as usize] ^= 0xff;
    std::fs::write(&path, &on_disk).unwrap();
    let target = Target::open(&path).unwrap();
    let mut tree = TreeHasher::new(true);
    tree.update(&data);
    let (digest, blocks) = tree.finish();
    let expected = Expected {
        len: data.len() as u64,
        digest,
        blocks: &blocks,
        skipped: None,
    };
    let outcome = read_back(&target, &expected, &CancelToken::new(), &mut |_| {}).unwrap();
    let Err(Mismatch::Block(idx)) = outcome else {
        panic!("expected a block mismatch, got {outcome:?}")
    };
    assert_eq!(idx, 3);
    let at = first_difference(&source, &info, &target, idx, &expected).unwrap();
    assert_eq!(at, Some(bad_at));
}

/// A source that serves `data` up to `stall_at` bytes and then blocks until `release` is
/// cancelled, like a network stream that stalls.
struct StallingSource {
    data: Arc<Vec<u8>>,
    stall_at: usize,
    release: CancelToken,
}

struct StallingStream {
    data: Arc<Vec<u8>>,
    pos: usize,
    stall_at: usize,
    release: CancelToken,
}

impl std::io::Read for StallingStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.stall_at {
            while !self.release.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            return Err(std::io::Error::other("stream closed"));
        }
        let n = buf.len().min(self.stall_at - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ImageSource for StallingSource {
    fn describe(&self) -> String {
        "stalling".into()
    }
    fn size(&self) -> Option<u64> {
        Some(self.data.len() as u64)
    }
    fn open_stream(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(StallingStream {
            data: self.data.clone(),
            pos: 0,
            stall_at: self.stall_at,
            release: self.release.clone(),
        }))
    }
    fn random_access(&self) -> Option<&dyn bty_image::ReadAt> {
        None
    }
}

#[test]
fn cancelling_a_stalled_flash_after_writing_began_wipes_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(image(40 * VERIFY_BLOCK as usize));
    let cancel = CancelToken::new();
    let source: Arc<dyn ImageSource> = Arc::new(StallingSource {
        data: data.clone(),
        stall_at: 16 << 20,
        release: cancel.clone(),
    });
    let info = inspect(source.as_ref()).unwrap();
    let path = dir.path().join("out.img");
    std::fs::write(&path, vec![0xaau8; 41 << 20]).unwrap();
    let target = Target::open(&path).unwrap();
    let trigger = cancel.clone();
    // Cancel from the progress stream once the writer is past the held-back first MiB; the
    // writer keeps reporting while the source is stalled, so this event always comes.
    let sink = move |p: &Progress| {
        if p.bytes_written > 8 << 20 {
            trigger.cancel();
        }
    };
    let err = flash(
        &source,
        &info,
        &target,
        &FlashOptions::default(),
        &sink,
        &cancel,
    )
    .unwrap_err();
    assert!(err.write_began);
    assert!(matches!(err.wipe, Some(Ok(()))), "{err}");
    assert!(err.to_string().contains("cancelled"), "{err}");
    let after = std::fs::read(&path).unwrap();
    assert!(after[..1 << 20].iter().all(|&b| b == 0), "first MiB wiped");
    assert!(
        after[after.len() - (1 << 20)..].iter().all(|&b| b == 0),
        "last MiB wiped"
    );
    assert!(
        after[2 << 20..3 << 20] == data[2 << 20..3 << 20],
        "data past the first MiB had been written"
    );
}
