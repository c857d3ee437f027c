//! Sessions and passwords. The cookie `bty-token` carries a random session id and an
//! HMAC-SHA256 of it under the server's key (`<state_dir>/session-secret`, 32 random bytes,
//! mode 0600, made on first start; or `[server] session_secret`). A cookie counts only while
//! its session row exists and has not expired, so logout and a password change revoke it.
//! The admin password is `[admin] password` (plain text or an argon2 PHC string); a password
//! set through the API is stored as an argon2 hash in the state and wins over the config.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "bty-token";

pub struct Keys {
    key: Vec<u8>,
}

fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

impl Keys {
    /// The configured secret, else the key file (created when missing).
    pub fn load(configured: Option<&str>, state_dir: &Path) -> std::io::Result<Keys> {
        if let Some(s) = configured {
            return Ok(Keys {
                key: s.as_bytes().to_vec(),
            });
        }
        let path = state_dir.join("session-secret");
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => {
                return Ok(Keys {
                    key: s.trim().as_bytes().to_vec(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let secret = hex::encode(random::<32>()?);
        let tmp = state_dir.join(".session-secret.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(secret.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(Keys {
            key: secret.into_bytes(),
        })
    }

    fn mac(&self, purpose: &str, data: &str) -> Hmac<Sha256> {
        // new_from_slice accepts keys of any length for HMAC.
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(purpose.as_bytes());
        m.update(b"\0");
        m.update(data.as_bytes());
        m
    }

    /// A new session id.
    pub fn new_session_id() -> std::io::Result<String> {
        Ok(URL_SAFE_NO_PAD.encode(random::<24>()?))
    }

    /// The cookie value for a session.
    pub fn sign(&self, session: &str) -> String {
        let tag = self.mac("session", session).finalize().into_bytes();
        format!("{session}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session id in a cookie value, if its signature holds.
    pub fn verify(&self, cookie: &str) -> Option<String> {
        let (session, tag) = cookie.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac("session", session).verify_slice(&tag).ok()?;
        Some(session.to_string())
    }

    /// The CSRF token of a session (sent back in forms).
    pub fn csrf(&self, session: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("csrf", session).finalize().into_bytes())
    }

    pub fn csrf_ok(&self, session: &str, token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|t| self.mac("csrf", session).verify_slice(&t).is_ok())
    }

    /// Constant-time equality of two strings (through their HMACs).
    pub fn same(&self, a: &str, b: &str) -> bool {
        let tag = self.mac("compare", b).finalize().into_bytes();
        self.mac("compare", a).verify_slice(&tag).is_ok()
    }
}

/// Whether `given` is the admin password: the stored hash if there is one, else the config
/// value (an argon2 PHC string, or plain text compared in constant time).
pub fn password_ok(keys: &Keys, given: &str, stored_hash: Option<&str>, configured: &str) -> bool {
    let check_hash = |h: &str| {
        PasswordHash::new(h).is_ok_and(|p| {
            Argon2::default()
                .verify_password(given.as_bytes(), &p)
                .is_ok()
        })
    };
    match stored_hash {
        Some(h) => check_hash(h),
        None if configured.starts_with("$argon2") => check_hash(configured),
        None => keys.same(given, configured),
    }
}

pub fn hash_password(p: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(p.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// `Set-Cookie` for a session (sliding 7 days), or one that deletes the cookie.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            crate::db::sessions::TTL_SECS
        ),
        None => format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// The `bty-token` value in a Cookie header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|kv| kv.strip_prefix(COOKIE)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_signed_and_tamper_evident() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keys::load(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("session-secret")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let c = k.sign("abc");
        assert_eq!(k.verify(&c).as_deref(), Some("abc"));
        assert_eq!(k.verify(&c.replace("abc", "abd")), None);
        let other = Keys::load(Some("another"), dir.path()).unwrap();
        assert_eq!(other.verify(&c), None);
        // The key file is reused.
        let again = Keys::load(None, dir.path()).unwrap();
        assert_eq!(again.verify(&c).as_deref(), Some("abc"));
        assert!(k.csrf_ok("abc", &k.csrf("abc")));
        assert!(!k.csrf_ok("abd", &k.csrf("abc")));
    }

    #[test]
    fn passwords() {
        let dir = tempfile::tempdir().unwrap();
        let k = Keys::load(None, dir.path()).unwrap();
        assert!(password_ok(&k, "bty-lab", None, "bty-lab"));
        assert!(!password_ok(&k, "bty-la", None, "bty-lab"));
        let h = hash_password("s3cret").unwrap();
        assert!(password_ok(&k, "s3cret", None, &h));
        assert!(password_ok(&k, "s3cret", Some(&h), "bty-lab"));
        assert!(!password_ok(&k, "bty-lab", Some(&h), "bty-lab"));
        assert_eq!(cookie_value("a=b; bty-token=x.y; c=d"), Some("x.y"));
    }
}
