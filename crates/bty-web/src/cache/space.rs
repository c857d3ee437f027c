//! The cache's space: the effective cap (the smaller of 50 GiB and half the filesystem unless
//! configured), free space on the cache's filesystem, which blobs are pinned, and
//! least-recently-used eviction that never removes a blob being served, filled or pinned.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::db::cache::{BlobRow, COMPLETE};

/// The default cap's upper bound.
pub const DEFAULT_CAP: u64 = 50 << 30;

/// Bytes available to bty-web on the filesystem holding `dir` (its nearest existing ancestor).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = statvfs(dir)?;
    Some(s.0)
}

/// The filesystem's total size.
pub fn total_bytes(dir: &Path) -> Option<u64> {
    Some(statvfs(dir)?.1)
}

fn statvfs(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = dir;
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((
        (st.f_bavail as u64).saturating_mul(frsize),
        (st.f_blocks as u64).saturating_mul(frsize),
    ))
}

/// The cap in effect: the configured one, else the smaller of 50 GiB and half the filesystem.
pub fn effective_cap(configured: Option<u64>, dir: &Path) -> u64 {
    configured.unwrap_or_else(|| {
        total_bytes(dir)
            .map(|t| (t / 2).min(DEFAULT_CAP))
            .unwrap_or(DEFAULT_CAP)
    })
}

/// Bytes a row holds on disk.
pub fn held(b: &BlobRow) -> u64 {
    if b.state == COMPLETE {
        b.size.unwrap_or(b.filled)
    } else {
        b.filled
    }
}

/// Which rows are pinned, given the refs and digests of entries bound in a flash mode: a
/// digest-keyed blob of such an entry, or the newest blob of a digest-less one.
pub fn pinned_keys(rows: &[BlobRow], bound: &[(String, Option<String>)]) -> HashSet<String> {
    let digests: HashSet<&str> = bound.iter().filter_map(|(_, d)| d.as_deref()).collect();
    let refs: HashSet<&str> = bound
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(r, _)| r.as_str())
        .collect();
    let mut newest: HashMap<&str, &BlobRow> = HashMap::new();
    for b in rows.iter().filter(|b| b.expected_sha.is_none()) {
        let e = newest.entry(b.image_ref.as_str()).or_insert(b);
        if b.created_at > e.created_at {
            *e = b;
        }
    }
    let mut out: HashSet<String> = rows
        .iter()
        .filter(|b| {
            b.expected_sha
                .as_deref()
                .is_some_and(|d| digests.contains(d))
        })
        .map(|b| b.key.clone())
        .collect();
    for (r, b) in newest {
        if refs.contains(r) {
            out.insert(b.key.clone());
        }
    }
    out
}

/// The complete rows to evict, oldest use first, so that `need` more bytes fit under `cap`;
/// rows in `keep` (served, filling, pinned) are never chosen. Also whether the cap is then met.
pub fn choose_evictions(
    rows: &[BlobRow],
    keep: &HashSet<String>,
    cap: u64,
    need: u64,
) -> (Vec<BlobRow>, bool) {
    let mut total: u64 = rows.iter().map(held).sum();
    let mut candidates: Vec<&BlobRow> = rows
        .iter()
        .filter(|b| b.state == COMPLETE && !keep.contains(&b.key))
        .collect();
    candidates.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.key.cmp(&b.key)));
    let mut out = Vec::new();
    for b in candidates {
        if total.saturating_add(need) <= cap {
            break;
        }
        total = total.saturating_sub(held(b));
        out.push(b.clone());
    }
    (out, total.saturating_add(need) <= cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::cache::FILLING;

    fn row(key: &str, size: u64, used: i64, state: &str, sha: Option<&str>) -> BlobRow {
        BlobRow {
            key: key.into(),
            image_ref: format!("ref-{key}"),
            src: String::new(),
            expected_sha: sha.map(str::to_string),
            sha256: None,
            validator: None,
            size: Some(size),
            filled: if state == COMPLETE { size } else { size / 2 },
            state: state.into(),
            created_at: format!("2026-01-0{used}"),
            last_used: used,
            hits: 0,
            validated_at: 0,
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_kept_rows_stay() {
        let rows = vec![
            row("a", 40, 1, COMPLETE, Some("a")),
            row("b", 40, 2, COMPLETE, Some("b")),
            row("c", 40, 3, COMPLETE, Some("c")),
            row("f", 40, 0, FILLING, Some("f")),
        ];
        // 140 held; room for 30 more under 100 means 70 must go.
        let keep = HashSet::from(["a".to_string()]);
        let (gone, fits) = choose_evictions(&rows, &keep, 100, 30);
        assert_eq!(
            gone.iter().map(|b| b.key.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(fits);
        // Everything kept: nothing goes, and the cap is not met.
        let keep: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (gone, fits) = choose_evictions(&rows, &keep, 100, 0);
        assert!(gone.is_empty());
        assert!(!fits);
    }

    #[test]
    fn pins_follow_bound_entries() {
        let mut old = row("src-1", 10, 1, COMPLETE, None);
        old.image_ref = "r".into();
        let mut new = row("src-2", 10, 2, COMPLETE, None);
        new.image_ref = "r".into();
        let rows = vec![row("d1", 10, 1, COMPLETE, Some("d1")), old, new];
        let bound = vec![
            ("x".to_string(), Some("d1".to_string())),
            ("r".to_string(), None),
        ];
        let pins = pinned_keys(&rows, &bound);
        assert_eq!(pins, HashSet::from(["d1".to_string(), "src-2".to_string()]));
    }

    #[test]
    fn the_default_cap_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cap = effective_cap(None, &dir.path().join("not/yet"));
        assert!(cap > 0 && cap <= DEFAULT_CAP);
        assert_eq!(effective_cap(Some(5 << 20), dir.path()), 5 << 20);
        assert!(free_bytes(dir.path()).is_some());
    }
}
