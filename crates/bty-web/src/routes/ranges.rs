//! Single byte-range answers for the routes that serve image bytes (the cache's blob route and
//! the `/images` registry proxy; boot files use the parser with their own `If-Range` rules):
//! what was asked for, the status and headers that answer it.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

/// The byte range asked for, against a file of `len` bytes: `Ok(None)` for the whole file,
/// `Err(())` when it cannot be satisfied.
pub fn parse_range(v: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole file is a valid answer
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse().map_err(|_| ())?
        };
        if start >= len || end < start {
            return Err(());
        }
        (start, end.min(len - 1))
    };
    Ok(Some(range))
}

/// `application/octet-stream` with byte ranges, and the digest as the ETag when known.
pub fn octet_headers(digest: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(d) = digest
        && let Ok(v) = HeaderValue::from_str(&format!("\"sha256:{d}\""))
    {
        h.insert(header::ETAG, v);
    }
    h
}

/// The range the request asks for of `size` bytes: `Ok(None)` for the whole (also when the
/// size is unknown); `Err` when it cannot be satisfied, with the 416's Content-Range set in
/// `h`.
pub fn requested(
    headers: &HeaderMap,
    size: Option<u64>,
    h: &mut HeaderMap,
) -> Result<Option<(u64, u64)>, ()> {
    let (Some(r), Some(len)) = (
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    ) else {
        return Ok(None);
    };
    parse_range(r, len).inspect_err(|()| {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    })
}

/// Status, first byte and length of the answer, with Content-Range and Content-Length set.
pub fn shape(
    range: Option<(u64, u64)>,
    size: Option<u64>,
    h: &mut HeaderMap,
) -> (StatusCode, u64, Option<u64>) {
    let (status, start, count) = match (range, size) {
        (Some((a, b)), Some(len)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, a, Some(b - a + 1))
        }
        _ => (StatusCode::OK, 0, size),
    };
    if let Some(n) = count
        && let Ok(v) = HeaderValue::from_str(&n.to_string())
    {
        h.insert(header::CONTENT_LENGTH, v);
    }
    (status, start, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=9-3", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Err(()));
    }

    #[test]
    fn answers() {
        let mut asked = HeaderMap::new();
        asked.insert(header::RANGE, HeaderValue::from_static("bytes=10-19"));
        let mut h = octet_headers(Some("ab"));
        assert_eq!(h[header::ETAG], "\"sha256:ab\"");
        assert_eq!(requested(&asked, Some(100), &mut h), Ok(Some((10, 19))));
        assert_eq!(requested(&asked, None, &mut h), Ok(None));
        assert_eq!(
            shape(Some((10, 19)), Some(100), &mut h),
            (StatusCode::PARTIAL_CONTENT, 10, Some(10))
        );
        assert_eq!(h[header::CONTENT_RANGE], "bytes 10-19/100");
        assert_eq!(h[header::CONTENT_LENGTH], "10");
        let mut h = HeaderMap::new();
        assert_eq!(requested(&asked, Some(5), &mut h), Err(()));
        assert_eq!(h[header::CONTENT_RANGE], "bytes */5");
        assert_eq!(shape(None, None, &mut h), (StatusCode::OK, 0, None));
        assert!(h.get(header::CONTENT_LENGTH).is_none());
    }
}
