//! CPU architectures: one spelling for each (the kernel's, `uname -m`), from the names catalogs,
//! file names and distributions use (`amd64`, `arm64`, …), and a guess from an image's file
//! name when its catalog entry names none.

/// The canonical name for `s` (case-insensitive), or `None` when it names no architecture
/// this knows.
pub fn canonical(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    Some(match s.as_str() {
        "x86_64" | "amd64" | "x64" | "x86-64" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        "armv7" | "armv7l" | "armhf" | "arm32" => "armv7",
        "i686" | "i386" | "x86" | "i586" => "i686",
        "riscv64" => "riscv64",
        "ppc64le" | "ppc64el" => "ppc64le",
        "s390x" => "s390x",
        "loongarch64" | "loong64" => "loongarch64",
        _ => return None,
    })
}

/// The architecture a file name or URL names, if exactly one: `debian-12-arm64.img.zst` →
/// `aarch64`. Words are split on `-`, `.`, `/`, `+`, `:` and spaces (not `_`: `x86_64`).
pub fn guess_from_name(name: &str) -> Option<&'static str> {
    let mut found: Option<&'static str> = None;
    for word in name.split(['-', '.', '/', '+', ':', ' ']) {
        if let Some(a) = canonical(word) {
            match found {
                Some(f) if f != a => return None,
                _ => found = Some(a),
            }
        }
    }
    found
}

/// Whether `s` is acceptable as an architecture name on the wire: 1–32 characters of letters,
/// digits and `_`.
pub fn is_valid(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The running machine's architecture.
pub fn this_machine() -> &'static str {
    canonical(std::env::consts::ARCH).unwrap_or(std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_guesses() {
        assert_eq!(canonical("AMD64"), Some("x86_64"));
        assert_eq!(canonical("arm64"), Some("aarch64"));
        assert_eq!(canonical("sparc"), None);
        assert_eq!(
            guess_from_name("debian-12-generic-amd64.img.zst"),
            Some("x86_64")
        );
        assert_eq!(
            guess_from_name("bty-netboot-pc-x86_64-v0.77.2.img"),
            Some("x86_64")
        );
        assert_eq!(
            guess_from_name("oras://ghcr.io/x/ubuntu-arm64:24.04"),
            Some("aarch64")
        );
        assert_eq!(guess_from_name("rpi.aarch64.raw.xz"), Some("aarch64"));
        assert_eq!(guess_from_name("disk.img"), None);
        // Two different architectures named: no guess.
        assert_eq!(guess_from_name("multi-amd64-arm64.img"), None);
        assert_eq!(
            this_machine(),
            canonical(std::env::consts::ARCH).unwrap_or("?")
        );
        assert!(is_valid("x86_64") && !is_valid("") && !is_valid("x 86"));
    }
}
