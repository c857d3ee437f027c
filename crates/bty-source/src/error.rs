//! Errors of sources, worded for the operator: what happened, to what, and what to do.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{url}: cannot resolve the host name {host:?} (check the name and the DNS settings)")]
    HostNotFound { url: String, host: String },
    #[error("{url}: connection refused or failed ({detail}); is the server running and reachable?")]
    ConnectionFailed { url: String, detail: String },
    #[error("{url}: timed out ({detail})")]
    Timeout { url: String, detail: String },
    #[error("{url}: TLS error: {detail}")]
    Tls { url: String, detail: String },
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: access denied (HTTP {status}); credentials missing or not allowed")]
    Denied { url: String, status: u16 },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {detail}")]
    Protocol { url: String, detail: String },
    #[error("{url}: refused: {detail}")]
    Refused { url: String, detail: String },
    #[error(
        "{url}: the object changed on the server during the download ({detail}); nothing consistent can be written from it"
    )]
    Changed { url: String, detail: String },
    #[error("{url}: the connection dropped at byte {at} and the server cannot resume ({detail})")]
    CannotResume {
        url: String,
        at: u64,
        detail: String,
    },
    #[error("{url}: gave up after {attempts} attempts at byte {at}: {last}")]
    GaveUp {
        url: String,
        at: u64,
        attempts: u32,
        last: String,
    },
    #[error("{0}")]
    Catalog(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(transparent)]
    Image(#[from] bty_image::ImageError),
}

impl SourceError {
    /// Carry this error through an `io::Error` (the engine's source trait speaks io).
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}
