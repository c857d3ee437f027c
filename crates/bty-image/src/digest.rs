//! Digests: parsing an expected sha256 given by the user or a catalog, a hashing read tap for the
//! source's bytes as published, and a byte counter the progress reporter reads.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::ImageError;

/// A sha256 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parse `HEX` or `sha256:HEX` (64 hex digits, any case).
    pub fn parse(text: &str) -> Result<Sha256Digest, ImageError> {
        let t = text.trim();
        let hex_part = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let bad = || ImageError::BadDigest(text.to_string());
        if hex_part.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad())?;
        Ok(Sha256Digest(out))
    }

    pub fn from_hasher(h: Sha256) -> Sha256Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.finalize());
        Sha256Digest(out)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Counts the bytes read through it into a shared counter (for progress).
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Hashes every byte read through it. The hasher is shared so the caller can take the digest
/// after the reader has been moved into a decoder chain.
pub struct HashingReader<R> {
    inner: R,
    hasher: Arc<std::sync::Mutex<Option<Sha256>>>,
}

/// Handle to take the digest out of a [`HashingReader`] once the stream is consumed.
#[derive(Clone)]
pub struct HashHandle(Arc<std::sync::Mutex<Option<Sha256>>>);

impl HashHandle {
    /// The digest of everything read so far; `None` if already taken.
    pub fn finish(&self) -> Option<Sha256Digest> {
        let h = self.0.lock().ok()?.take()?;
        Some(Sha256Digest::from_hasher(h))
    }
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> (Self, HashHandle) {
        let hasher = Arc::new(std::sync::Mutex::new(Some(Sha256::new())));
        (
            HashingReader {
                inner,
                hasher: hasher.clone(),
            },
            HashHandle(hasher),
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Ok(mut g) = self.hasher.lock()
            && let Some(h) = g.as_mut()
        {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_plain_and_prefixed_digests() {
        let a = Sha256Digest::parse(EMPTY).unwrap();
        let b = Sha256Digest::parse(&format!("sha256:{}", EMPTY.to_uppercase())).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), format!("sha256:{EMPTY}"));
        assert!(Sha256Digest::parse("abc").is_err());
        assert!(Sha256Digest::parse(&"g".repeat(64)).is_err());
        assert!(Sha256Digest::parse("md5:abc").is_err());
    }

    #[test]
    fn hashing_reader_hashes_what_passes() {
        let (mut r, h) = HashingReader::new(&b"hello"[..]);
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        assert_eq!(
            h.finish().unwrap().hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
