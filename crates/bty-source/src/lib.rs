//! Where image bytes come from, beyond local files: `http(s)://` with resumable streaming and
//! Range reads (so qcow2 works over the network with no temporary file), TOML catalogs
//! (upstream's `version = 1` schema) and local image folders.
//!
//! Every source implements `bty_image::ImageSource`, so the engine streams, verifies and
//! writes them like a local file. Not here: decoding and writing (that is `bty-image`).

pub mod canonical;
pub mod catalog;
pub mod error;
pub mod folder;
pub mod http;
pub mod oci;
pub mod oras_ref;
pub mod resolve;

pub use error::SourceError;
pub use http::{HttpClient, HttpSource};
pub use resolve::{Resolved, resolve};

/// The User-Agent sent with every request.
pub fn user_agent() -> String {
    format!("bty/{}", env!("CARGO_PKG_VERSION"))
}
