//! The built-in TFTP server (`[tftp] enabled`): read-only RFC 1350 with option negotiation
//! (RFC 2347 blksize, tsize; RFC 7440 windowsize; RFC 2349 timeout declined) from async-tftp,
//! concurrent transfers, for the iPXE binaries legacy PXE firmware loads (`undionly.kpxe`, `ipxe.efi`).
//! Names are confined to the root: `..` is refused, and so is any name whose real path (after
//! symlinks) leaves it; only regular files with a single link are served. Missing files get a
//! "file not found" error packet.
//!
//! TFTP is UDP, so any host can send requests with a spoofed source. What one request can
//! cost is bounded: a block is sent at most [`RETRIES`]` + 1` times, [`TIMEOUT`] apart (the
//! client's `timeout` option is declined: RFC 2349 allows no clamping, and the server's short
//! timer is what keeps unanswered transfers brief); `windowsize` is capped at [`MAX_WINDOW`];
//! transfers are capped globally and per source address (`[limits] tftp_transfers`,
//! `tftp_per_client`); and no file stays open while a transfer waits: each read opens the
//! file (without blocking, so a FIFO cannot hang it), checks it, reads a chunk and closes it.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_tftp::packet;
use async_tftp::server::{Handler, TftpServerBuilder};
use blocking::Unblock;

/// Retransmissions of an unacknowledged block before the transfer is dropped.
pub const RETRIES: u32 = 4;
/// Wait for an acknowledgement before retransmitting.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `windowsize` granted (RFC 7440).
pub const MAX_WINDOW: u16 = 8;
/// Bytes read from the file per open.
const CHUNK: usize = 64 << 10;

/// Files legacy firmware commonly asks for; bty-web reports which are present.
pub const IPXE_FILES: [&str; 3] = ["undionly.kpxe", "ipxe.efi", "snponly.efi"];

pub struct ReadOnlyRoot {
    root: PathBuf,
    slots: Arc<Slots>,
}

/// Transfers in progress, in all and per source address.
pub struct Slots {
    total: usize,
    per_client: usize,
    used: Mutex<HashMap<IpAddr, usize>>,
}

impl Slots {
    pub fn new(total: usize, per_client: usize) -> Arc<Slots> {
        Arc::new(Slots {
            total,
            per_client,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or why not.
    fn take(self: &Arc<Slots>, ip: IpAddr) -> Result<Slot, packet::Error> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| packet::Error::Msg("server error".into()))?;
        let all: usize = used.values().sum();
        let mine = used.get(&ip).copied().unwrap_or(0);
        if all >= self.total || mine >= self.per_client {
            return Err(packet::Error::Msg("server busy; try again".into()));
        }
        used.insert(ip, mine + 1);
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// Released when its transfer ends (the reader is dropped).
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut used) = self.slots.used.lock()
            && let Some(n) = used.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                used.remove(&self.ip);
            }
        }
    }
}

/// Open `path` for reading without blocking (a FIFO or device cannot hang the open) and
/// only if it is a regular file with a single link (a hard link can carry any file of the
/// same filesystem into the folder). Used by TFTP and by HTTP `/boot`.
pub fn open_boot_file(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "not a regular file with a single link",
        ));
    }
    Ok((f, meta))
}

/// A file read chunk by chunk, opened for each chunk and closed again, so a waiting transfer
/// holds no descriptor.
pub struct ChunkedFile {
    path: PathBuf,
    offset: u64,
    buf: Vec<u8>,
    at: usize,
    _slot: Slot,
}

impl ChunkedFile {
    fn refill(&mut self) -> std::io::Result<()> {
        let (mut f, _) = open_boot_file(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        self.buf.resize(CHUNK, 0);
        let mut n = 0;
        while n < CHUNK {
            match f.read(&mut self.buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        self.buf.truncate(n);
        self.at = 0;
        self.offset += n as u64;
        Ok(())
    }
}

impl futures_io::AsyncRead for ChunkedFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        // One small positional read from the page cache: done inline rather than on a thread.
        if self.at >= self.buf.len()
            && let Err(e) = self.refill()
        {
            return Poll::Ready(Err(e));
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Poll::Ready(Ok(n))
    }
}

/// The file `name` under `root`, if it is a regular file that stays inside it.
pub fn confined(root: &Path, name: &Path) -> Result<PathBuf, packet::Error> {
    let rel = name.strip_prefix("/").unwrap_or(name);
    if rel.as_os_str().is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(packet::Error::PermissionDenied);
    }
    let path = root.join(rel);
    let real = std::fs::canonicalize(&path).map_err(|_| packet::Error::FileNotFound)?;
    let real_root = std::fs::canonicalize(root).map_err(|_| packet::Error::FileNotFound)?;
    if !real.starts_with(&real_root) {
        return Err(packet::Error::PermissionDenied);
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() && m.nlink() == 1 => Ok(real),
        Ok(m) if m.is_file() => Err(packet::Error::PermissionDenied),
        _ => Err(packet::Error::FileNotFound),
    }
}

impl Handler for ReadOnlyRoot {
    type Reader = ChunkedFile;
    type Writer = Unblock<std::fs::File>;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let slot = self.slots.take(client.ip()).inspect_err(|_| {
            tracing::warn!("tftp: {client}: too many transfers; refused");
        })?;
        let file = confined(&self.root, path).inspect_err(|e| {
            tracing::info!("tftp: {client} asked for {}: {e:?}", path.display());
        })?;
        let len = std::fs::metadata(&file).ok().map(|m| m.len());
        tracing::info!("tftp: sending {} to {client}", path.display());
        Ok((
            ChunkedFile {
                path: file,
                offset: 0,
                buf: Vec::new(),
                at: 0,
                _slot: slot,
            },
            len,
        ))
    }

    async fn write_req_open(
        &mut self,
        _client: &SocketAddr,
        _path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        Err(packet::Error::IllegalOperation)
    }
}

/// Bind and serve in the background; the bound address, or why it could not start.
pub async fn start(
    bind: SocketAddr,
    root: PathBuf,
    slots: Arc<Slots>,
) -> Result<SocketAddr, String> {
    let server = TftpServerBuilder::with_handler(ReadOnlyRoot { root, slots })
        .bind(bind)
        .timeout(TIMEOUT)
        .max_send_retries(RETRIES)
        .ignore_client_timeout()
        .window_size_limit(MAX_WINDOW)
        .build()
        .await
        .map_err(|e| format!("tftp: cannot listen on udp {bind}: {e}"))?;
    let addr = server.listen_addr().map_err(|e| format!("tftp: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = server.serve().await {
            tracing::error!("tftp: stopped: {e}");
        }
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ipxe.efi"), b"x").unwrap();
        std::fs::create_dir(d.path().join("efi")).unwrap();
        std::fs::write(d.path().join("efi/snp.efi"), b"y").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("out")).unwrap();
        assert!(confined(d.path(), Path::new("ipxe.efi")).is_ok());
        assert!(confined(d.path(), Path::new("/efi/snp.efi")).is_ok());
        std::fs::hard_link(d.path().join("ipxe.efi"), d.path().join("linked")).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(d.path().join("fifo"))
                .status()
                .unwrap()
                .success()
        );
        for bad in [
            "../etc/passwd",
            "efi/../../x",
            "out",
            "missing",
            "efi",
            "",
            "linked",
            "fifo",
        ] {
            assert!(confined(d.path(), Path::new(bad)).is_err(), "{bad}");
        }
        // A FIFO is refused without hanging the open.
        assert!(open_boot_file(&d.path().join("fifo")).is_err());
        assert!(open_boot_file(&d.path().join("linked")).is_err());
    }

    #[test]
    fn slots_cap_transfers_in_all_and_per_address() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_err(), "per address");
        let _b1 = slots.take(b).unwrap();
        assert!(slots.take(b).is_err(), "in all");
        drop(a1);
        assert!(slots.take(b).is_ok(), "released with the transfer");
    }
}
