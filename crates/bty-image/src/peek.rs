//! A buffered reader that can look ahead a few bytes without consuming them and knows its
//! position in the underlying stream; the concatenated-stream decoder uses both to tell the
//! next member's magic from trailing garbage, and to say where the garbage starts.

use std::io::{self, BufRead, Read};

pub struct PeekReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Bytes pulled from `inner` so far.
    pulled: u64,
}

impl<R: Read> PeekReader<R> {
    pub fn with_capacity(cap: usize, inner: R) -> PeekReader<R> {
        PeekReader {
            inner,
            buf: vec![0u8; cap.max(64)].into_boxed_slice(),
            pos: 0,
            end: 0,
            pulled: 0,
        }
    }

    /// Offset of the next unconsumed byte in the underlying stream.
    pub fn position(&self) -> u64 {
        self.pulled - (self.end - self.pos) as u64
    }

    /// Up to `n` upcoming bytes (fewer only at end of stream), without consuming them.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let n = n.min(self.buf.len());
        while self.end - self.pos < n {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(k) => {
                    self.end += k;
                    self.pulled += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let avail = (self.end - self.pos).min(n);
        Ok(&self.buf[self.pos..self.pos + avail])
    }

    /// Consume and discard `n` bytes; returns how many were there.
    pub fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let mut skipped = 0;
        while n > 0 {
            let avail = self.fill_buf()?.len();
            if avail == 0 {
                break;
            }
            let k = avail.min(usize::try_from(n).unwrap_or(usize::MAX));
            self.consume(k);
            n -= k as u64;
            skipped += k as u64;
        }
        Ok(skipped)
    }
}

impl<R: Read> Read for PeekReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // Large reads bypass the buffer when it is empty.
        if self.pos == self.end && out.len() >= self.buf.len() {
            let k = self.inner.read(out)?;
            self.pulled += k as u64;
            return Ok(k);
        }
        let avail = self.fill_buf()?;
        let k = avail.len().min(out.len());
        out[..k].copy_from_slice(&avail[..k]);
        self.consume(k);
        Ok(k)
    }
}

impl<R: Read> BufRead for PeekReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            loop {
                match self.inner.read(&mut self.buf) {
                    Ok(k) => {
                        self.end = k;
                        self.pulled += k as u64;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per call, to exercise refills.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let k = self.0.len().min(self.1).min(out.len());
            out[..k].copy_from_slice(&self.0[..k]);
            self.0 = &self.0[k..];
            Ok(k)
        }
    }

    #[test]
    fn peeks_across_refills_and_tracks_position() {
        let data: Vec<u8> = (0..200u8).collect();
        let mut r = PeekReader::with_capacity(64, Trickle(&data, 7));
        assert_eq!(r.peek(10).unwrap(), &data[..10]);
        assert_eq!(r.position(), 0);
        r.consume(5);
        assert_eq!(r.position(), 5);
        assert_eq!(r.peek(20).unwrap(), &data[5..25]);
        assert_eq!(r.skip(100).unwrap(), 100);
        assert_eq!(r.position(), 105);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &data[105..]);
        assert_eq!(r.peek(4).unwrap(), &[] as &[u8]);
        assert_eq!(r.position(), 200);
    }
}
