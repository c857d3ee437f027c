//! Human-readable byte counts and durations.

/// `52428800` → `50.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// Seconds → `1m 05s` / `3.2 s`.
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        let s = secs.round() as u64;
        if s < 3600 {
            format!("{}m {:02}s", s / 60, s % 60)
        } else {
            format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

/// `s` cut to `n` characters, the last replaced by `mark` when anything was cut.
pub fn fit(s: &str, n: usize, mark: char) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else if n == 0 {
        String::new()
    } else {
        s.chars().take(n - 1).chain(std::iter::once(mark)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(52_428_800), "50.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(3.21), "3.2 s");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(7322.0), "2h 02m");
        assert_eq!(fit("abcdef", 4, '~'), "abc~");
        assert_eq!(fit("abc", 4, '~'), "abc");
        assert_eq!(fit("abc", 0, '~'), "");
    }
}
