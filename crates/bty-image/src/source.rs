//! Where the engine reads an image from. A source can be opened as a sequential stream any
//! number of times (sniffing, flashing and locating a verify mismatch each open it anew), and
//! may offer cheap positional reads, which size probes (xz index, zstd frames) and the qcow2
//! reader use. This crate implements local files and block devices; `bty-source` adds network
//! sources behind the same trait.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// Positional reads.
pub trait ReadAt: Send + Sync {
    /// Read up to `buf.len()` bytes at `offset`; 0 means end of data.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fill `buf` from `offset` or fail with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("unexpected end of data at byte {offset}"),
                    ));
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An image's bytes as published.
pub trait ImageSource: Send + Sync {
    /// For messages: a path or URL.
    fn describe(&self) -> String;
    /// Size in bytes when known.
    fn size(&self) -> Option<u64>;
    /// A fresh sequential stream from byte 0.
    fn open_stream(&self) -> io::Result<Box<dyn Read + Send>>;
    /// A stream of the image's start for sniffing. Sources that can be read only once return
    /// their buffered head, ending in [`HeadExhausted`] when more exists.
    fn open_head(&self) -> io::Result<Box<dyn Read + Send>> {
        self.open_stream()
    }
    /// Positional reads, when they are cheap (a local file: yes; a web server: see bty-source).
    fn random_access(&self) -> Option<&dyn ReadAt>;
    /// Whether positional reads are cheap enough for many small ones (walking every zstd frame
    /// header to learn the size): true for local files, false over a network.
    fn cheap_random_access(&self) -> bool {
        true
    }
    /// The path of a local regular file, whose holes can be found without reading them.
    fn local_file(&self) -> Option<&Path> {
        None
    }
    /// Device and inode of a local source, to refuse flashing a file onto itself.
    fn identity(&self) -> Option<(u64, u64)> {
        None
    }
}

/// A local regular file or block device.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    file: File,
    size: u64,
    identity: (u64, u64),
    regular: bool,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource, ImageError> {
        let io_err = |e: io::Error| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::NotFound(path.to_path_buf())
            } else {
                ImageError::Io {
                    what: path.display().to_string(),
                    source: e,
                }
            }
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(ImageError::IsDirectory(path.to_path_buf()));
        }
        let regular = meta.is_file();
        let (size, identity) = if meta.file_type().is_block_device() {
            let size = bty_disk::ioctl::size_bytes(&file).map_err(io_err)?;
            (size, (u64::MAX, meta.rdev()))
        } else {
            (meta.len(), (meta.dev(), meta.ino()))
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            file,
            size,
            identity,
            regular,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ReadAt for FileSource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }
}

impl ImageSource for FileSource {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn open_stream(&self) -> io::Result<Box<dyn Read + Send>> {
        // An independent handle with its own offset, so streams never disturb each other.
        let f = File::open(&self.path)?;
        Ok(Box::new(f.take(self.size)))
    }

    fn random_access(&self) -> Option<&dyn ReadAt> {
        Some(self)
    }

    fn identity(&self) -> Option<(u64, u64)> {
        Some(self.identity)
    }

    fn local_file(&self) -> Option<&Path> {
        self.regular.then_some(self.path.as_path())
    }
}

/// A source held in memory; for tests and small generated images.
#[derive(Debug, Clone)]
pub struct MemorySource {
    pub name: String,
    pub data: std::sync::Arc<Vec<u8>>,
}

impl MemorySource {
    pub fn new(name: &str, data: Vec<u8>) -> MemorySource {
        MemorySource {
            name: name.to_string(),
            data: std::sync::Arc::new(data),
        }
    }
}

impl ReadAt for MemorySource {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= self.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
}

impl ImageSource for MemorySource {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn size(&self) -> Option<u64> {
        Some(self.data.len() as u64)
    }
    fn open_stream(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(SharedBytes(self.data.clone()))))
    }
    fn random_access(&self) -> Option<&dyn ReadAt> {
        Some(self)
    }
}

struct SharedBytes(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The error a [`PipeSource`] head gives when a reader wants more than was buffered: sniffing
/// stops there instead of mistaking the end of the buffer for the end of the image.
#[derive(Debug, thiserror::Error)]
#[error("the buffered start of the stream is exhausted")]
pub struct HeadExhausted;

/// Whether `e` is [`HeadExhausted`].
pub fn is_head_exhausted(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<HeadExhausted>())
}

/// How much of a pipe is buffered for sniffing.
pub const PIPE_HEAD: usize = 1 << 20;

/// A stream that can be read once (stdin, a FIFO). Its first MiB is buffered so the image can
/// be sniffed; the flash then reads that buffer followed by the rest of the stream.
pub struct PipeSource {
    name: String,
    head: std::sync::Arc<Vec<u8>>,
    complete: bool,
    rest: std::sync::Mutex<Option<Box<dyn Read + Send>>>,
}

impl PipeSource {
    pub fn new(name: &str, mut stream: Box<dyn Read + Send>) -> io::Result<PipeSource> {
        let mut head = vec![0u8; PIPE_HEAD];
        let n = crate::decode::read_full(&mut stream, &mut head)?;
        head.truncate(n);
        Ok(PipeSource {
            name: name.to_string(),
            head: std::sync::Arc::new(head),
            complete: n < PIPE_HEAD,
            rest: std::sync::Mutex::new(Some(stream)),
        })
    }
}

/// A stream over a buffered start of an image: it ends cleanly when `complete` (the buffer is
/// the whole image), else with [`HeadExhausted`].
pub fn head_reader(head: std::sync::Arc<Vec<u8>>, complete: bool) -> Box<dyn Read + Send> {
    Box::new(HeadReader {
        head: SharedBytes(head),
        pos: 0,
        complete,
    })
}

struct HeadReader {
    head: SharedBytes,
    pos: usize,
    complete: bool,
}

impl Read for HeadReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.head.as_ref();
        if self.pos >= data.len() {
            return if self.complete {
                Ok(0)
            } else {
                Err(io::Error::other(HeadExhausted))
            };
        }
        let n = buf.len().min(data.len() - self.pos);
        buf[..n].copy_from_slice(&data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl ImageSource for PipeSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> Option<u64> {
        self.complete.then_some(self.head.len() as u64)
    }

    fn open_stream(&self) -> io::Result<Box<dyn Read + Send>> {
        let rest = self.rest.lock().ok().and_then(|mut g| g.take());
        let Some(rest) = rest else {
            return Err(io::Error::other(format!(
                "{} can be read only once",
                self.name
            )));
        };
        Ok(Box::new(
            io::Cursor::new(SharedBytes(self.head.clone())).chain(rest),
        ))
    }

    fn open_head(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(HeadReader {
            head: SharedBytes(self.head.clone()),
            pos: 0,
            complete: self.complete,
        }))
    }

    fn random_access(&self) -> Option<&dyn ReadAt> {
        None
    }
}

/// Open a local image: `-` is standard input; FIFOs and character devices are read once as
/// pipes; regular files and block devices support re-reading and positional reads.
pub fn open_local(path: &Path) -> Result<Box<dyn ImageSource>, ImageError> {
    let io_err = |e: io::Error| ImageError::Io {
        what: path.display().to_string(),
        source: e,
    };
    if path == Path::new("-") {
        let stdin: Box<dyn Read + Send> = Box::new(io::stdin());
        return Ok(Box::new(
            PipeSource::new("standard input", stdin).map_err(io_err)?,
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() || m.file_type().is_char_device() => {
            let f = File::open(path).map_err(io_err)?;
            Ok(Box::new(
                PipeSource::new(&path.display().to_string(), Box::new(f)).map_err(io_err)?,
            ))
        }
        _ => Ok(Box::new(FileSource::open(path)?)),
    }
}
