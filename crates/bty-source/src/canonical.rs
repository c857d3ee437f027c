//! The canonical form of an image's `src`, and its reference: `sha256(canonical src)`, the
//! identity upstream uses to de-duplicate catalog entries and bind machines to images.
//!
//! - `file://`: the path without empty and `.` segments (`..` and NUL refused), case kept;
//! - `http(s)://`: scheme and host lower-cased, the default port dropped, the rest literal;
//! - `oras://`: everything before the tag or digest lower-cased, the tag's case kept.

use sha2::{Digest, Sha256};

use crate::error::SourceError;

fn bad(src: &str, why: &str) -> SourceError {
    SourceError::Catalog(format!("src {src:?}: {why}"))
}

fn scheme(src: &str) -> Option<(String, &str)> {
    let (s, rest) = src.split_once("://")?;
    Some((s.to_ascii_lowercase(), rest))
}

/// The canonical form of `src`.
pub fn canonical_src(src: &str) -> Result<String, SourceError> {
    let Some((scheme, rest)) = scheme(src) else {
        return Err(bad(src, "expected file://, http://, https:// or oras://"));
    };
    match scheme.as_str() {
        "file" => {
            if rest.contains('\0') {
                return Err(bad(src, "contains a NUL byte"));
            }
            let segments: Vec<&str> = rest
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            if segments.contains(&"..") {
                return Err(bad(src, "contains a .. segment"));
            }
            if segments.is_empty() {
                return Err(bad(src, "has no path"));
            }
            Ok(format!("file://{}", segments.join("/")))
        }
        "http" | "https" => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let (userinfo, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p))
                    if !p.is_empty()
                        && p.chars().all(|c| c.is_ascii_digit())
                        && !h.ends_with(':') =>
                {
                    (h, Some(p))
                }
                _ => (hostport, None),
            };
            if host.is_empty() {
                return Err(bad(src, "has no host"));
            }
            let default = if scheme == "http" { "80" } else { "443" };
            let mut out = format!("{scheme}://");
            if let Some(u) = userinfo {
                out.push_str(u);
                out.push('@');
            }
            out.push_str(&host.to_ascii_lowercase());
            if let Some(p) = port.filter(|p| p.trim_start_matches('0') != default) {
                out.push(':');
                out.push_str(p);
            }
            out.push_str(tail);
            Ok(out)
        }
        "oras" => {
            let r = crate::oras_ref::OrasRef::parse(src)?;
            Ok(r.to_string())
        }
        _ => Err(bad(src, "expected file://, http://, https:// or oras://")),
    }
}

/// `sha256(canonical src)` in lower-case hex.
pub fn image_ref(src: &str) -> Result<String, SourceError> {
    Ok(hex::encode(Sha256::digest(canonical_src(src)?.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let cases = [
            ("file:///a//./b", "file://a/b"),
            ("FILE:///Images/Disk.IMG", "file://Images/Disk.IMG"),
            (
                "HTTP://Example.COM:80/Path/To.img?x=1#f",
                "http://example.com/Path/To.img?x=1#f",
            ),
            ("https://example.com:443/a/", "https://example.com/a/"),
            (
                "https://example.com:8443/a%20b",
                "https://example.com:8443/a%20b",
            ),
            ("http://example.com:443/a", "http://example.com:443/a"),
            (
                "oras://GHCR.io/Safl/Nosi/debian:Latest-AMD64",
                "oras://ghcr.io/safl/nosi/debian:Latest-AMD64",
            ),
            (
                "oras://localhost:5000/team/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "oras://localhost:5000/team/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(canonical_src(src).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn bad_srcs_are_refused() {
        for src in [
            "",
            "/plain/path",
            "ftp://x/y",
            "file:///a/../b",
            "file:///",
            "http:///path",
            "oras://host",
        ] {
            assert!(canonical_src(src).is_err(), "{src}");
        }
    }

    #[test]
    fn refs_are_sha256_of_the_canonical_form() {
        assert_eq!(
            image_ref("HTTP://Example.COM:80/x").unwrap(),
            image_ref("http://example.com/x").unwrap()
        );
        assert_eq!(
            image_ref("http://example.com/x").unwrap(),
            hex::encode(Sha256::digest(b"http://example.com/x"))
        );
    }
}
