//! Positional reads of the source for the qcow2 reader, counted for progress and — when a
//! digest of the file was given — hashed in file order. Bytes at the next unhashed offset are
//! hashed as they go by, a read that jumps ahead first reads and hashes the gap, and reads
//! behind are already covered. Reading metadata first and data in ascending file order keeps
//! the extra reads to the gaps (refcount tables and such); `finish` hashes whatever was never
//! read. The result is the sha256 of the whole file as published, however the reader moved.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::digest::Sha256Digest;
use crate::source::{ImageSource, ReadAt};

pub struct SourceReader {
    source: Arc<dyn ImageSource>,
    len: u64,
    count: Arc<AtomicU64>,
    /// Next unhashed offset and the running hash, when hashing.
    hash: Option<Mutex<(u64, Sha256)>>,
}

const GAP_CHUNK: usize = 1 << 20;

fn no_random_access(source: &dyn ImageSource) -> io::Error {
    io::Error::other(format!(
        "{} does not allow positional reads",
        source.describe()
    ))
}

impl SourceReader {
    pub fn new(
        source: Arc<dyn ImageSource>,
        len: u64,
        count: Arc<AtomicU64>,
        hash: bool,
    ) -> SourceReader {
        SourceReader {
            source,
            len,
            count,
            hash: hash.then(|| Mutex::new((0, Sha256::new()))),
        }
    }

    fn raw(&self) -> io::Result<&dyn ReadAt> {
        self.source
            .random_access()
            .ok_or_else(|| no_random_access(self.source.as_ref()))
    }

    fn hash_gap(&self, next: &mut u64, sha: &mut Sha256, until: u64) -> io::Result<()> {
        let raw = self.raw()?;
        let mut buf = vec![0u8; GAP_CHUNK];
        while *next < until {
            let n = ((until - *next) as usize).min(GAP_CHUNK);
            raw.read_exact_at(&mut buf[..n], *next)?;
            self.count.fetch_add(n as u64, Ordering::Relaxed);
            sha.update(&buf[..n]);
            *next += n as u64;
        }
        Ok(())
    }

    /// Hash the rest of the file and return the digest of all of it (`None` when not hashing).
    pub fn finish(&self) -> io::Result<Option<Sha256Digest>> {
        let Some(m) = &self.hash else { return Ok(None) };
        let mut g = m.lock().map_err(|_| io::Error::other("hasher poisoned"))?;
        let (next, sha) = &mut *g;
        self.hash_gap(next, sha, self.len)?;
        Ok(Some(Sha256Digest::from_hasher(std::mem::take(sha))))
    }
}

impl ReadAt for SourceReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(m) = &self.hash else {
            let n = self.raw()?.read_at(buf, offset)?;
            self.count.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(n);
        };
        let mut g = m.lock().map_err(|_| io::Error::other("hasher poisoned"))?;
        let (next, sha) = &mut *g;
        if offset > *next {
            self.hash_gap(next, sha, offset.min(self.len))?;
        }
        let n = self.raw()?.read_at(buf, offset)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        let end = offset + n as u64;
        if offset <= *next && end > *next {
            sha.update(&buf[(*next - offset) as usize..n]);
            *next = end;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;

    #[test]
    fn any_read_order_hashes_the_whole_file_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let want = Sha256Digest::from_hasher(Sha256::new_with_prefix(&data));
        let src: Arc<dyn ImageSource> = Arc::new(MemorySource::new("m", data));
        let r = SourceReader::new(src, 3_000_000, Arc::new(AtomicU64::new(0)), true);
        let mut b = vec![0u8; 1000];
        for off in [2_000_000u64, 10, 5, 1_500_000, 2_999_000, 0] {
            r.read_exact_at(&mut b, off).unwrap();
        }
        assert_eq!(r.finish().unwrap(), Some(want));
    }
}
