//! The server's own base URL for links handed to machines (iPXE scripts, catalogs): the
//! configured `[server] public_url`, else the request's `Host` header — only when it parses as
//! `host[:port]` (a DNS name or an IP literal), so a forged header cannot inject script text.

use axum::http::{HeaderMap, header};

/// Whether `h` is `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 literal, with
/// an optional port 1-65535.
pub fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0))
    {
        return false;
    }
    bty_proto::machine::valid_hostname(host)
}

/// The base URL, without a trailing slash; `None` when there is no usable one.
pub fn base_url(public_url: Option<&str>, headers: &HeaderMap) -> Option<String> {
    if let Some(u) = public_url {
        return Some(u.trim_end_matches('/').to_string());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    valid_host(host).then(|| format!("http://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers() {
        for ok in [
            "lab",
            "bty.lab.example:8080",
            "10.0.2.2:41234",
            "[::1]:8080",
            "[fe80::1]",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "lab:0",
            "lab:70000",
            "lab:80x",
            "a b",
            "lab/evil",
            "x\n#!ipxe",
            "[::1",
            "[zz]:80",
            "-lab",
            "lab..example",
            "user@lab",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "lab:8080".parse().unwrap());
        assert_eq!(base_url(None, &h).as_deref(), Some("http://lab:8080"));
        assert_eq!(
            base_url(Some("https://bty.example/"), &h).as_deref(),
            Some("https://bty.example")
        );
        h.insert(header::HOST, "lab;chain http://evil".parse().unwrap());
        assert_eq!(base_url(None, &h), None);
    }
}
