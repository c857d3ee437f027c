//! The built-in TFTP server (`[tftp] enabled`): read-only RFC 1350 with option negotiation
//! (RFC 2347 blksize, tsize, timeout; RFC 7440 windowsize) from async-tftp, concurrent
//! transfers, for the iPXE binaries legacy PXE firmware loads (`undionly.kpxe`, `ipxe.efi`).
//! Names are confined to the root: `..` is refused, and so is any name whose real path (after
//! symlinks) leaves it. Missing files get a "file not found" error packet.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use async_tftp::packet;
use async_tftp::server::{Handler, TftpServerBuilder};
use blocking::Unblock;

/// Files legacy firmware commonly asks for; bty-web reports which are present.
pub const IPXE_FILES: [&str; 3] = ["undionly.kpxe", "ipxe.efi", "snponly.efi"];

pub struct ReadOnlyRoot {
    root: PathBuf,
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
    if !real.is_file() {
        return Err(packet::Error::FileNotFound);
    }
    Ok(real)
}

impl Handler for ReadOnlyRoot {
    type Reader = Unblock<std::fs::File>;
    type Writer = Unblock<std::fs::File>;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let file = confined(&self.root, path).inspect_err(|e| {
            tracing::info!("tftp: {client} asked for {}: {e:?}", path.display());
        })?;
        let f = std::fs::File::open(&file).map_err(|_| packet::Error::FileNotFound)?;
        let len = f.metadata().ok().map(|m| m.len());
        tracing::info!("tftp: sending {} to {client}", path.display());
        Ok((Unblock::new(f), len))
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
pub async fn start(bind: SocketAddr, root: PathBuf) -> Result<SocketAddr, String> {
    let server = TftpServerBuilder::with_handler(ReadOnlyRoot { root })
        .bind(bind)
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
        for bad in ["../etc/passwd", "efi/../../x", "out", "missing", "efi", ""] {
            assert!(confined(d.path(), Path::new(bad)).is_err(), "{bad}");
        }
    }
}
