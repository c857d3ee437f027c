//! MAC addresses as upstream normalises them: any case, `:` or `-` between six two-digit hex
//! groups; stored and shown as `aa:bb:cc:dd:ee:ff`.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid MAC: {0:?}")]
pub struct MacError(pub String);

impl Mac {
    pub fn parse(raw: &str) -> Result<Mac, MacError> {
        let bad = || MacError(raw.to_string());
        let lower = raw.to_ascii_lowercase().replace('-', ":");
        let mut out = [0u8; 6];
        let mut n = 0;
        for group in lower.split(':') {
            if n == 6 || group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            out[n] = u8::from_str_radix(group, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(Mac(out))
    }

    /// `aa-bb-cc-dd-ee-ff`, for file names.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        Mac::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_upstream() {
        for ok in [
            "AA-BB-CC-DD-EE-FF",
            "aa:bb:cc:dd:ee:ff",
            "Aa:bB-cc:DD-ee:ff",
        ] {
            assert_eq!(Mac::parse(ok).unwrap().to_string(), "aa:bb:cc:dd:ee:ff");
        }
        for bad in [
            "aabbccddeeff",
            "aabb.ccdd.eeff",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:fg",
            "a:bb:cc:dd:ee:ff",
            "",
            "aa::bb:cc:dd:ee",
        ] {
            assert!(Mac::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Mac::parse("aa:bb:cc:dd:ee:ff").unwrap().hyphenated(),
            "aa-bb-cc-dd-ee-ff"
        );
    }
}
