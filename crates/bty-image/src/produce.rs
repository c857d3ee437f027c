//! Producers of the decoded image, in image order, for the decode thread. A streamed format
//! (raw or compressed) fills every buffer from its decoder; a qcow2 image fills buffers with
//! data clusters and reports unallocated or zero clusters as zero extents, which cost no reads,
//! no hashing and no writes downstream.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::buffer::AlignedBuf;
use crate::decode::{decoded_stream, into_image_error, read_full};
use crate::digest::{CountingReader, HashHandle, HashingReader, Sha256Digest};
use crate::error::FlashFailure;
use crate::format::Layer;
use crate::inspect::ImageInfo;
use crate::source::ImageSource;

/// What one call produced.
pub enum Produced {
    /// The buffer holds the next bytes of the image (its length is set).
    Data,
    /// The next `n` bytes of the image are zero.
    Zeros(u64),
}

pub trait Producer: Send {
    /// Produce the next piece: fill `buf` (and return `Data`), report a zero extent, or `None`
    /// at the end of the image.
    fn next(&mut self, buf: &mut AlignedBuf) -> Result<Option<Produced>, FlashFailure>;

    /// After the end: the sha256 of the source as published, when it was asked for.
    fn source_digest(&mut self) -> Result<Option<Sha256Digest>, FlashFailure>;
}

pub(crate) fn read_failure(source: &dyn ImageSource, e: std::io::Error) -> FlashFailure {
    match into_image_error(e) {
        Ok(img) => FlashFailure::Image(img),
        Err(e) => FlashFailure::Io {
            what: format!("reading {}", source.describe()),
            source: e,
        },
    }
}

/// Raw and compressed images: one sequential stream through the decoders.
pub struct StreamProducer {
    source: Arc<dyn ImageSource>,
    stream: Box<dyn Read + Send>,
    hash: Option<HashHandle>,
    done: bool,
}

impl StreamProducer {
    pub fn open(
        source: Arc<dyn ImageSource>,
        info: &ImageInfo,
        hash_source: bool,
        read_count: Arc<AtomicU64>,
    ) -> Result<StreamProducer, FlashFailure> {
        let raw = source
            .open_stream()
            .map_err(|e| read_failure(source.as_ref(), e))?;
        let counted = CountingReader::new(raw, read_count);
        let (raw, hash): (Box<dyn Read + Send>, _) = if hash_source {
            let (r, h) = HashingReader::new(counted);
            (Box::new(r), Some(h))
        } else {
            (Box::new(counted), None)
        };
        Ok(StreamProducer {
            stream: decoded_stream(raw, &info.compression),
            source,
            hash,
            done: false,
        })
    }
}

impl Producer for StreamProducer {
    fn next(&mut self, buf: &mut AlignedBuf) -> Result<Option<Produced>, FlashFailure> {
        if self.done {
            return Ok(None);
        }
        buf.set_len(buf.capacity());
        let n = read_full(&mut self.stream, buf.as_full_mut())
            .map_err(|e| read_failure(self.source.as_ref(), e))?;
        buf.set_len(n);
        if n < buf.capacity() {
            self.done = true;
        }
        Ok((n > 0).then_some(Produced::Data))
    }

    fn source_digest(&mut self) -> Result<Option<Sha256Digest>, FlashFailure> {
        Ok(self.hash.as_ref().and_then(|h| h.finish()))
    }
}

/// A raw image in a local sparse file: holes (found with `SEEK_DATA`/`SEEK_HOLE`) become zero
/// extents without being read, as `qemu-img` does; data is read straight into the buffers.
pub struct SparseFileProducer {
    file: std::fs::File,
    len: u64,
    pos: u64,
    read_count: Arc<AtomicU64>,
    hash: Option<sha2::Sha256>,
    what: String,
}

impl SparseFileProducer {
    pub fn open(
        path: &std::path::Path,
        len: u64,
        hash_source: bool,
        read_count: Arc<AtomicU64>,
    ) -> Result<Self, FlashFailure> {
        let what = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| FlashFailure::Io {
            what: format!("opening {what}"),
            source: e,
        })?;
        use sha2::Digest;
        Ok(SparseFileProducer {
            file,
            len,
            pos: 0,
            read_count,
            hash: hash_source.then(sha2::Sha256::new),
            what,
        })
    }

    /// Where the data region containing or following `pos` starts (`len` when none).
    fn next_data(&self, pos: u64) -> u64 {
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(pos)) {
            Ok(off) => off.min(self.len),
            // ENXIO: no data after pos. Other errors (no SEEK_DATA support): treat as data.
            Err(rustix::io::Errno::NXIO) => self.len,
            Err(_) => pos,
        }
    }

    fn next_hole(&self, pos: u64) -> u64 {
        rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Hole(pos))
            .map(|h| h.min(self.len))
            .unwrap_or(self.len)
    }
}

impl Producer for SparseFileProducer {
    fn next(&mut self, buf: &mut AlignedBuf) -> Result<Option<Produced>, FlashFailure> {
        use sha2::Digest;
        if self.pos >= self.len {
            return Ok(None);
        }
        let data = self.next_data(self.pos);
        if data > self.pos {
            let n = data - self.pos;
            if let Some(h) = self.hash.as_mut() {
                let zeros = [0u8; 64 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(zeros.len() as u64) as usize;
                    h.update(&zeros[..k]);
                    left -= k as u64;
                }
            }
            self.pos = data;
            self.read_count
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            return Ok(Some(Produced::Zeros(n)));
        }
        let hole = self.next_hole(self.pos);
        let want = (hole - self.pos).min(buf.capacity() as u64) as usize;
        let want = want.max(1).min((self.len - self.pos) as usize);
        let dst = &mut buf.as_full_mut()[..want];
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < want {
            match self.file.read_at(&mut dst[done..], self.pos + done as u64) {
                Ok(0) => {
                    return Err(FlashFailure::Io {
                        what: format!("reading {}", self.what),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file shrank while being read",
                        ),
                    });
                }
                Ok(k) => done += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(FlashFailure::Io {
                        what: format!("reading {}", self.what),
                        source: e,
                    });
                }
            }
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&dst[..want]);
        }
        buf.set_len(want);
        self.pos += want as u64;
        self.read_count
            .fetch_add(want as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(Produced::Data))
    }

    fn source_digest(&mut self) -> Result<Option<Sha256Digest>, FlashFailure> {
        Ok(self.hash.take().map(Sha256Digest::from_hasher))
    }
}

/// The producer for an image: the qcow2 reader, a sparse local raw file, or the decoder stream.
pub fn open_producer(
    source: Arc<dyn ImageSource>,
    info: &ImageInfo,
    hash_source: bool,
    read_count: Arc<AtomicU64>,
) -> Result<Box<dyn Producer>, FlashFailure> {
    if info.payload == Layer::Qcow2 {
        let map = info.qcow2_map.clone();
        return Ok(Box::new(crate::qcow2::Qcow2Producer::open(
            source,
            map,
            hash_source,
            read_count,
        )?));
    }
    if info.compression.is_empty()
        && let (Some(path), Some(len)) = (source.local_file(), source.size())
    {
        let path = path.to_path_buf();
        return Ok(Box::new(SparseFileProducer::open(
            &path,
            len,
            hash_source,
            read_count,
        )?));
    }
    Ok(Box::new(StreamProducer::open(
        source,
        info,
        hash_source,
        read_count,
    )?))
}
