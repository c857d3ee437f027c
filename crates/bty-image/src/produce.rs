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

/// The producer for an image: the qcow2 reader or the decoder stream.
pub fn open_producer(
    source: Arc<dyn ImageSource>,
    info: &ImageInfo,
    hash_source: bool,
    read_count: Arc<AtomicU64>,
) -> Result<Box<dyn Producer>, FlashFailure> {
    match info.payload {
        Layer::Qcow2 => Ok(Box::new(crate::qcow2::Qcow2Producer::open(
            source,
            info.qcow2_map.clone(),
            hash_source,
            read_count,
        )?)),
        _ => Ok(Box::new(StreamProducer::open(
            source,
            info,
            hash_source,
            read_count,
        )?)),
    }
}
