//! Catalogs: TOML files listing named images (upstream's `version = 1` schema exactly:
//! `[[images]]` with `name`, `src`, optional `sha256`, `format`, `size_bytes`, `description`,
//! `ref`, and 0.53's `arch`, guessed from the name when absent). Loaded from a path, an http(s) URL (a bty-web's `/catalog.toml` is one) — capped at
//! 4 MiB, counted as the bytes are read — and validated with errors that name the entry and the
//! field. [`parse_untrusted`] and [`load_published`] are for a server reading text it does not
//! own: their errors give the line, column and what was expected, never the text itself.

use std::collections::HashSet;
use std::io::Read;

use std::path::Path;

use serde::Serialize;

use sha2::Digest;

use crate::canonical::image_ref;
use crate::error::SourceError;
use crate::http::HttpClient;

/// Largest catalog accepted.
pub const MAX_CATALOG_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub name: String,
    pub src: String,
    /// Lower-case hex sha256 of the image as published; verified when flashing.
    pub sha256: Option<String>,
    /// Format hint (`img.zst`, `qcow2`, …); bty recognises formats from content anyway.
    pub format: Option<String>,
    pub size_bytes: Option<u64>,
    pub description: Option<String>,
    /// The CPU architecture: the entry's `arch` (canonical spelling when known), else a guess
    /// from its name or src.
    pub arch: Option<String>,
    /// Whether a bty-web may cache the image (the entry's `cache`, default true; `false` for
    /// an origin already on the LAN).
    pub cache: bool,
    /// `sha256(canonical src)`.
    #[serde(rename = "ref")]
    pub image_ref: String,
    /// Where the entry came from (the catalog's path or URL, or the image folder).
    pub origin: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub source: String,
    pub entries: Vec<CatalogEntry>,
}

/// The architecture an entry's name or, failing that, its src names.
pub fn guess_arch(name: &str, src: &str) -> Option<String> {
    bty_proto::arch::guess_from_name(name)
        .or_else(|| bty_proto::arch::guess_from_name(src))
        .map(str::to_string)
}

fn err(origin: &str, msg: String) -> SourceError {
    SourceError::Catalog(format!("catalog {origin}: {msg}"))
}

fn string_field(
    t: &toml::Table,
    key: &str,
    origin: &str,
    at: &str,
) -> Result<Option<String>, SourceError> {
    // The type name only: never the value.
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(err(
            origin,
            format!(
                "{at}: field '{key}' must be a string, got {}",
                other.type_str()
            ),
        )),
    }
}

fn show(v: &toml::Value, quote: bool) -> String {
    match v {
        toml::Value::Integer(i) if quote => i.to_string(),
        toml::Value::String(s) if quote => format!("{s:?}"),
        other => format!("a {}", other.type_str()),
    }
}

/// Whether a URL is fit for a catalog: no whitespace, no control characters.
pub fn url_is_clean(url: &str) -> bool {
    !url.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Line and column (1-based) of byte `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parse catalog text from `origin` (for messages). Errors may quote the text (a user's own
/// file): use [`parse_untrusted`] for text from elsewhere.
pub fn parse(text: &str, origin: &str) -> Result<Catalog, SourceError> {
    parse_inner(text, origin, true)
}

/// Parse catalog text that came from elsewhere (a server's fetch): errors name the line and
/// column, the entry number and the field, and what was expected — never bytes of the text.
pub fn parse_untrusted(text: &str, origin: &str) -> Result<Catalog, SourceError> {
    parse_inner(text, origin, false)
}

fn parse_inner(text: &str, origin: &str, quote: bool) -> Result<Catalog, SourceError> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        if quote {
            return err(origin, format!("not valid TOML: {e}"));
        }
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!(" at line {l}, column {c}")
            })
            .unwrap_or_default();
        // toml's message says what was expected; it does not quote the input.
        let what = e.message().lines().collect::<Vec<_>>().join("; ");
        err(origin, format!("not valid TOML{at}: {what}"))
    })?;
    match doc.get("version") {
        Some(toml::Value::Integer(1)) => {}
        Some(v) => {
            return Err(err(
                origin,
                format!(
                    "version = {}, but this bty understands version = 1",
                    show(v, quote)
                ),
            ));
        }
        None => return Err(err(origin, "missing 'version = 1'".into())),
    }
    let images = match doc.get("images") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) => a.clone(),
        Some(other) => {
            return Err(err(
                origin,
                format!(
                    "'images' must be an array of tables ([[images]]), got {}",
                    other.type_str()
                ),
            ));
        }
    };
    let mut entries: Vec<CatalogEntry> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    for (i, item) in images.iter().enumerate() {
        let toml::Value::Table(t) = item else {
            return Err(err(
                origin,
                format!("images entry {} must be a table", i + 1),
            ));
        };
        let label = |name: Option<&str>| match name {
            Some(n) if quote => format!("entry {} ({n:?})", i + 1),
            _ => format!("entry {}", i + 1),
        };
        let name = string_field(t, "name", origin, &label(None))?
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                err(
                    origin,
                    format!("{}: missing required field 'name'", label(None)),
                )
            })?;
        let at = label(Some(&name));
        if !names.insert(name.clone()) {
            return Err(err(origin, format!("{at}: duplicate image name")));
        }
        let src = string_field(t, "src", origin, &at)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| err(origin, format!("{at}: missing required field 'src'")))?;
        let shown = if quote {
            format!(" {src:?}")
        } else {
            String::new()
        };
        if src.to_ascii_lowercase().starts_with("file://") {
            return Err(err(
                origin,
                format!(
                    "{at}: src{shown}: file:// is not allowed in a catalog (it is published; put local files in the image folder)"
                ),
            ));
        }
        if !url_is_clean(&src) {
            return Err(err(
                origin,
                format!("{at}: src{shown}: a URL has no spaces or control characters"),
            ));
        }
        let image_ref = image_ref(&src).map_err(|e| {
            if quote {
                err(origin, format!("{at}: {e}"))
            } else {
                err(
                    origin,
                    format!("{at}: field 'src' is not an http(s):// or oras:// URL"),
                )
            }
        })?;
        let sha256 = match string_field(t, "sha256", origin, &at)? {
            None => None,
            Some(s) => {
                let s = s.trim().to_ascii_lowercase();
                let s = s.strip_prefix("sha256:").unwrap_or(&s).to_string();
                if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(err(
                        origin,
                        format!("{at}: field 'sha256' must be 64 hex digits"),
                    ));
                }
                Some(s)
            }
        };
        let size_bytes = match t.get("size_bytes") {
            None => None,
            Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n as u64),
            Some(other) => {
                return Err(err(
                    origin,
                    format!(
                        "{at}: field 'size_bytes' must be a non-negative integer, got {}",
                        show(other, quote)
                    ),
                ));
            }
        };
        if let Some(r) = string_field(t, "ref", origin, &at)?
            && r.to_ascii_lowercase() != image_ref
        {
            let detail = if quote {
                format!("{at}: field 'ref' is {r} but the src's reference is {image_ref}")
            } else {
                format!("{at}: field 'ref' is not the src's reference")
            };
            return Err(err(origin, detail));
        }
        let arch = match string_field(t, "arch", origin, &at)? {
            Some(a) if !bty_proto::arch::is_valid(&a) => {
                return Err(err(
                    origin,
                    format!("{at}: field 'arch' must be 1-32 letters, digits or underscores"),
                ));
            }
            Some(a) => Some(bty_proto::arch::canonical(&a).map_or(a, str::to_string)),
            None => guess_arch(&name, &src),
        };
        let cache = match t.get("cache") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(other) => {
                return Err(err(
                    origin,
                    format!(
                        "{at}: field 'cache' must be true or false, got {}",
                        show(other, quote)
                    ),
                ));
            }
        };
        entries.push(CatalogEntry {
            cache,
            name,
            src,
            sha256,
            format: string_field(t, "format", origin, &at)?,
            size_bytes,
            description: string_field(t, "description", origin, &at)?,
            arch,
            image_ref,
            origin: origin.to_string(),
        });
    }
    Ok(Catalog {
        source: origin.to_string(),
        entries,
    })
}

/// A catalog published as an OCI artifact: its blob, read whole (capped) and checked against
/// the layer digest.
fn load_oras(source: &str, client: &HttpClient) -> Result<Vec<u8>, SourceError> {
    let r = crate::oras_ref::OrasRef::parse(source)?;
    let blob = crate::oci::OciClient::new(client.clone(), None, Vec::new()).resolve(&r)?;
    let too_big = || {
        err(
            source,
            format!("larger than {MAX_CATALOG_BYTES} bytes; refusing to parse"),
        )
    };
    if blob.layer_size.is_some_and(|n| n > MAX_CATALOG_BYTES) {
        return Err(too_big());
    }
    let mut data = Vec::new();
    let io = |e| SourceError::Io {
        what: format!("catalog {source}"),
        source: e,
    };
    let stream = bty_image::ImageSource::open_stream(blob.source.as_ref()).map_err(io)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(stream, MAX_CATALOG_BYTES + 1),
        &mut data,
    )
    .map_err(io)?;
    if data.len() as u64 > MAX_CATALOG_BYTES {
        return Err(too_big());
    }
    let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
    if got != blob.layer_digest {
        return Err(err(
            source,
            format!("the blob's digest is {got}, not {}", blob.layer_digest),
        ));
    }
    Ok(data)
}

/// The bytes of a published catalog.
fn fetch(source: &str, client: &HttpClient) -> Result<Vec<u8>, SourceError> {
    let lower = source.to_ascii_lowercase();
    Ok(
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let (parts, data) = client
                .get_small(source, &[], MAX_CATALOG_BYTES)
                .map_err(|e| match e {
                    SourceError::Protocol { detail, .. } if detail.contains("exceeds") => err(
                        source,
                        format!("larger than {MAX_CATALOG_BYTES} bytes; refusing to parse"),
                    ),
                    other => other,
                })?;
            match parts.status.as_u16() {
                200 => data,
                404 => {
                    return Err(SourceError::NotFound {
                        url: source.to_string(),
                    });
                }
                s => {
                    return Err(SourceError::Status {
                        url: source.to_string(),
                        status: s,
                    });
                }
            }
        } else if lower.starts_with("oras://") {
            load_oras(source, client)?
        } else {
            let path = Path::new(source.strip_prefix("file://").unwrap_or(source));
            let io = |e| SourceError::Io {
                what: format!("catalog {source}"),
                source: e,
            };
            // The cap counts bytes as they are read: a FIFO or a device has no length to check.
            let mut data = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_CATALOG_BYTES + 1).read_to_end(&mut data))
                .map_err(io)?;
            if data.len() as u64 > MAX_CATALOG_BYTES {
                return Err(err(
                    source,
                    format!("larger than {MAX_CATALOG_BYTES} bytes; refusing to parse"),
                ));
            }
            data
        },
    )
}

/// Load a catalog from a path, an http(s) URL or an oras:// reference.
pub fn load(source: &str, client: &HttpClient) -> Result<Catalog, SourceError> {
    let bytes = fetch(source, client)?;
    let text = String::from_utf8(bytes).map_err(|_| err(source, "not UTF-8 text".into()))?;
    parse(&text, source)
}

/// Whether `source` names a published catalog (http(s) or oras://), as opposed to a local path.
pub fn is_published(source: &str) -> bool {
    let lower = source.trim_start().to_ascii_lowercase();
    ["http://", "https://", "oras://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// Whether a server may fetch `source`: published (http(s) or oras://) and a clean URL.
pub fn fetchable(source: &str) -> bool {
    is_published(source) && url_is_clean(source)
}

/// Load a published catalog (http(s) or oras:// only) for a server: local paths are refused,
/// and errors never quote what was fetched.
pub fn load_published(source: &str, client: &HttpClient) -> Result<Catalog, SourceError> {
    if !fetchable(source) {
        return Err(err(
            source,
            "only http(s):// and oras:// catalogs are read here, not local paths".into(),
        ));
    }
    let bytes = fetch(source, client)?;
    let text = String::from_utf8(bytes).map_err(|_| err(source, "not UTF-8 text".into()))?;
    parse_untrusted(&text, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
[[images]]
name = "debian"
src = "https://Example.com:443/debian.img.zst"
sha256 = "SHA256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
format = "img.zst"
size_bytes = 123
description = "Debian"
[[images]]
name = "fedora"
src = "oras://ghcr.io/acme/fedora:42"
"#;

    #[test]
    fn parses_the_v1_schema() {
        let c = parse(GOOD, "test").unwrap();
        assert_eq!(c.entries.len(), 2);
        let d = &c.entries[0];
        assert_eq!(d.sha256.as_deref(), Some(&"ab".repeat(32)[..]));
        assert_eq!(d.size_bytes, Some(123));
        assert_eq!(
            d.image_ref,
            image_ref("https://example.com/debian.img.zst").unwrap()
        );
        assert_eq!(c.entries[1].sha256, None);
        assert!(c.entries.iter().all(|e| e.cache), "cache defaults to true");
        assert!(parse("version = 1\n", "t").unwrap().entries.is_empty());
        let lan = parse(
            "version = 1\n[[images]]\nname='a'\nsrc='http://nas/a.img'\ncache = false",
            "t",
        )
        .unwrap();
        assert!(!lan.entries[0].cache);
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let cases = [
            (
                "[[images]]\nname='a'\nsrc='https://x/a'",
                "missing 'version = 1'",
            ),
            ("version = 2", "version = 2"),
            ("version = 1\nimages = 3", "array of tables"),
            (
                "version = 1\n[[images]]\nsrc='https://x/a'",
                "entry 1: missing required field 'name'",
            ),
            (
                "version = 1\n[[images]]\nname='a'",
                "entry 1 (\"a\"): missing required field 'src'",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\n[[images]]\nname='a'\nsrc='https://x/b'",
                "entry 2 (\"a\"): duplicate image name",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\nsha256='xyz'",
                "field 'sha256' must be 64 hex digits",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='file:///x'",
                "file:// is not allowed",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\nsize_bytes='big'",
                "size_bytes",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\nref='00'",
                "field 'ref'",
            ),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='gopher://x/a'",
                "src",
            ),
            ("version = ", "not valid TOML"),
            (
                "version = 1\n[[images]]\nname='a'\nsrc='https://x/a'\ncache='no'",
                "field 'cache' must be true or false",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn untrusted_errors_quote_nothing() {
        let secret = "root:$6$hash:19000:0:99999:7:::";
        for text in [
            secret.to_string(),
            format!("version = 1\n{secret}"),
            format!("version = \"{secret}\""),
            format!("version = 1\n[[images]]\nname = \"{secret}\"\nsrc = \"file:///{secret}\""),
            format!(
                "version = 1\n[[images]]\nname = \"{secret}\"\nsrc = \"https://x/{secret}\"\nref = \"{secret}\""
            ),
        ] {
            let e = parse_untrusted(&text, "t").unwrap_err().to_string();
            assert!(!e.contains("19000") && !e.contains("hash"), "{e}");
            // The user's own file may still be quoted by the CLI's parse.
            assert!(parse(&text, "t").is_err());
        }
        let e = parse_untrusted("version = 1\nthis is not toml\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, column"), "{e}");
        assert!(!e.contains("this is"), "{e}");
    }

    #[test]
    fn urls_with_spaces_or_controls_are_refused() {
        for src in [
            "https://x/a b.img",
            "https://x/a\\nb.img",
            "https://x/\\u0007.img",
        ] {
            let text = format!("version = 1\n[[images]]\nname = 'a'\nsrc = \"{src}\"");
            let e = parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains("no spaces or control"), "{src}: {e}");
        }
        assert!(url_is_clean("https://x/a.img"));
        assert!(!is_published("/etc/shadow"));
        assert!(!is_published("file:///etc/shadow"));
        assert!(is_published("oras://r/x:1") && is_published("HTTPS://x/y"));
    }

    #[test]
    fn many_entries_parse_in_linear_time() {
        let mut text = String::from("version = 1\n");
        for i in 0..20_000 {
            text.push_str(&format!(
                "[[images]]\nname = 'n{i}'\nsrc = 'https://x/{i}.img'\n"
            ));
        }
        assert_eq!(parse_untrusted(&text, "t").unwrap().entries.len(), 20_000);
    }

    #[test]
    fn published_loads_refuse_local_paths() {
        let c = HttpClient::default();
        for p in ["/etc/shadow", "file:///etc/shadow", "relative.toml"] {
            let e = load_published(p, &c).unwrap_err().to_string();
            assert!(e.contains("not local paths"), "{e}");
        }
    }

    #[test]
    fn the_local_cap_counts_bytes_read_from_a_fifo() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let w = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(w).unwrap();
            let chunk = vec![b'#'; 1 << 20];
            for _ in 0..6 {
                if f.write_all(&chunk).is_err() {
                    break; // the reader stopped at the cap
                }
            }
        });
        let e = load(fifo.to_str().unwrap(), &HttpClient::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
        writer.join().unwrap();
    }
}
