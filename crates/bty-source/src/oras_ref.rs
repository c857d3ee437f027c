//! `oras://` references: `oras://registry[:port]/repo[/…]:tag` or `…@sha256:<64 hex>` (a
//! manifest digest). Registry and repository are case-insensitive (kept lower-case); the tag
//! keeps its case. There is no implicit `:latest`.

use std::fmt;

use crate::error::SourceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    /// `sha256:<hex>` of a manifest.
    Digest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrasRef {
    /// `host` or `host:port`, lower-case.
    pub registry: String,
    /// Repository path, lower-case, one or more `/`-separated segments.
    pub repository: String,
    pub reference: Reference,
}

fn err(src: &str, why: &str) -> SourceError {
    SourceError::Catalog(format!(
        "{src:?} is not an oras:// reference ({why}); expected oras://REGISTRY[:PORT]/REPO:TAG or oras://REGISTRY/REPO@sha256:DIGEST"
    ))
}

fn valid_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

fn valid_repo(r: &str) -> bool {
    !r.is_empty()
        && r.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl OrasRef {
    pub fn parse(src: &str) -> Result<OrasRef, SourceError> {
        let rest = match src.split_once("://") {
            Some((s, r)) if s.eq_ignore_ascii_case("oras") => r,
            _ => return Err(err(src, "it does not start with oras://")),
        };
        let (path, reference) = if let Some((p, d)) = rest.rsplit_once('@') {
            let hex = d
                .strip_prefix("sha256:")
                .ok_or_else(|| err(src, "only sha256 digests are supported"))?;
            if hex.len() != 64
                || !hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            {
                return Err(err(
                    src,
                    "the digest must be sha256: and 64 lower-case hex digits",
                ));
            }
            (p, Reference::Digest(format!("sha256:{hex}")))
        } else {
            let (p, t) = rest
                .rsplit_once(':')
                .ok_or_else(|| err(src, "no tag or digest"))?;
            if t.contains('/') || !valid_tag(t) {
                return Err(err(src, "no valid tag (there is no implicit :latest)"));
            }
            (p, Reference::Tag(t.to_string()))
        };
        let (registry, repository) = path
            .split_once('/')
            .ok_or_else(|| err(src, "no repository"))?;
        let (registry, repository) = (
            registry.to_ascii_lowercase(),
            repository.to_ascii_lowercase(),
        );
        if !valid_host(&registry) {
            return Err(err(src, "bad registry host"));
        }
        if !valid_repo(&repository) {
            return Err(err(src, "bad repository name"));
        }
        Ok(OrasRef {
            registry,
            repository,
            reference,
        })
    }

    /// The tag or digest as it appears in a manifest URL.
    pub fn reference_str(&self) -> &str {
        match &self.reference {
            Reference::Tag(t) | Reference::Digest(t) => t,
        }
    }

    /// Host name without the port.
    pub fn host(&self) -> &str {
        self.registry
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.registry)
    }

    /// The same reference pinned to a manifest digest.
    pub fn pinned(&self, digest: &str) -> OrasRef {
        OrasRef {
            reference: Reference::Digest(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for OrasRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "oras://{}/{}:{t}", self.registry, self.repository),
            Reference::Digest(d) => write!(f, "oras://{}/{}@{d}", self.registry, self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_and_digests() {
        let r = OrasRef::parse("oras://GHCR.io/Safl/nosi/debian:Trixie-1").unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "safl/nosi/debian");
        assert_eq!(r.reference, Reference::Tag("Trixie-1".into()));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = OrasRef::parse(&format!("oras://127.0.0.1:5000/img@{d}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.reference, Reference::Digest(d.clone()));
        assert_eq!(r.to_string(), format!("oras://127.0.0.1:5000/img@{d}"));
    }

    #[test]
    fn refuses_malformed_references() {
        for bad in [
            "oras://host/repo",
            "oras://host:5000/repo",
            "oras://host",
            "oras:///repo:tag",
            "http://host/repo:tag",
            "oras://host/repo@sha256:ABC",
            "oras://host/repo@md5:aaaa",
            "oras://host/re po:tag",
            "oras://host/repo:-tag",
            "oras://-host/repo:tag",
        ] {
            assert!(OrasRef::parse(bad).is_err(), "{bad}");
        }
    }
}
