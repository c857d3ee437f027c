//! Where a cached blob comes from: an http(s) URL, or an `oras://` entry's layer (opened by
//! its digest with a freshly minted token on every open, so a fill that resumes after an hour
//! is not stopped by an expired token or pre-signed redirect). Also the conditional request
//! that revalidates a digest-less blob, and ranged reads passed straight through.

use std::io::Read;

use bty_source::SourceError;
use bty_source::http::HttpSource;
use bty_source::oci::OciClient;
use bty_source::oras_ref::OrasRef;

/// An origin as the cache needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub src: String,
    /// The digest the bytes must have (hex), when known.
    pub digest: Option<String>,
}

/// What a revalidation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidation {
    Unchanged,
    /// The origin now has another version (its validator, if it sent one).
    Changed(Option<String>),
}

impl Origin {
    pub fn is_oras(&self) -> bool {
        self.src.to_ascii_lowercase().starts_with("oras://")
    }

    /// Open the origin (one small probe request; for `oras://`, a token first). Blocking.
    pub fn open(&self) -> Result<HttpSource, SourceError> {
        let client = crate::fetch::proxy();
        if self.is_oras() {
            let r = OrasRef::parse(&self.src)?;
            let oci = OciClient::new(client, None, Vec::new());
            return match &self.digest {
                Some(d) => oci.open_blob(&r, &format!("sha256:{d}")),
                None => {
                    let blob = oci.resolve(&r)?;
                    std::sync::Arc::try_unwrap(blob.source).map_err(|_| SourceError::Protocol {
                        url: self.src.clone(),
                        detail: "the resolved blob is shared".into(),
                    })
                }
            };
        }
        HttpSource::open(client, &self.src, Vec::new())
    }

    /// Bytes `start..end` (end exclusive) straight from the origin, not stored. Blocking.
    pub fn range(&self, start: u64, end: u64) -> Result<Box<dyn Read + Send>, SourceError> {
        Ok(self.open()?.stream_range(start, Some(end)))
    }

    /// Ask an http(s) origin whether `validator` is still current: a conditional request for
    /// one byte (`If-None-Match` for an ETag, `If-Modified-Since` for a date). Blocking.
    pub fn revalidate(&self, validator: Option<&str>) -> Result<Revalidation, SourceError> {
        let client = crate::fetch::proxy();
        let mut headers = vec![("Range".to_string(), "bytes=0-0".to_string())];
        match validator {
            Some(v) if v.starts_with('"') => headers.push(("If-None-Match".into(), v.into())),
            Some(v) => headers.push(("If-Modified-Since".into(), v.into())),
            None => {}
        }
        let resp = client.get(&self.src, &headers)?;
        let status = resp.status().as_u16();
        let header = |k: &str| {
            resp.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let seen = header("etag")
            .filter(|e| !e.starts_with("W/"))
            .or_else(|| header("last-modified"));
        match status {
            304 => Ok(Revalidation::Unchanged),
            // No validator on either side: nothing says it changed; such an origin is
            // cached as immutable (the docs say so).
            200 | 206 if seen.as_deref() == validator => Ok(Revalidation::Unchanged),
            200 | 206 => Ok(Revalidation::Changed(seen)),
            404 => Err(SourceError::NotFound {
                url: self.src.clone(),
            }),
            s => Err(SourceError::Status {
                url: self.src.clone(),
                status: s,
            }),
        }
    }
}
