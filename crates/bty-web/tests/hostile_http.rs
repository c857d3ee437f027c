//! bty-web against hostile and careless HTTP clients on loopback: local files never read
//! through the API and nothing fetched quoted back; server-side fetches kept off link-local
//! and metadata addresses (redirects included); password attempts counted before they are
//! verified, per address, with argon2's memory bounded under 200 concurrent posts; half-sent
//! requests closed after the header timeout and displaced at the connection cap while
//! `/healthz` keeps answering; moving uploads and live streams never cut for idling;
//! concurrent uploads each landing whole; boot files only as single-link regular files; the
//! state folder private.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Server, file_mode, http_from, metric};

/// An HTTP server on 127.0.0.1 answering every request with `reply` (raw, status line
/// included); its base URL.
fn raw_server(reply: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// `POST /catalog/import?source=SRC`.
fn import(c: &mut common::Client, src: &str) -> common::Resp {
    let q = format!("/catalog/import?source={}", common::urlencode(src));
    c.request("POST", &q, &[], None)
}

#[test]
fn local_files_are_never_read_and_fetched_bodies_never_quoted() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let secret = std::fs::read_to_string(s.state_dir().join("session-secret")).unwrap();
    let state = s.state_dir().display().to_string();
    for src in [
        "/etc/shadow".to_string(),
        "/proc/self/environ".to_string(),
        format!("{state}/session-secret"),
        format!("file://{state}/session-secret"),
        "relative/catalog.toml".to_string(),
        "https://example.test/a b.toml".to_string(),
    ] {
        let r = import(&mut c, &src);
        assert_eq!(r.status, 422, "{src}: {}", r.body);
        assert!(!r.body.contains(secret.trim()), "{src}: {}", r.body);
        assert!(!r.body.contains("root:"), "{src}: {}", r.body);
    }
    // A fetched body that is not a catalog: the error names line and column, never its text.
    let origin = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nConnection: close\r\n\r\nTOPSECRET=hunter2-value-from-a-lan-service"
            .into(),
    );
    let r = import(&mut c, &format!("{origin}/metrics"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("line 1"), "{}", r.body);
    assert!(
        !r.body.contains("TOPSECRET") && !r.body.contains("hunter2"),
        "{}",
        r.body
    );
    // The UI's upload of a catalog does not quote it either.
    let events = c.get("/events?limit=50").body;
    assert!(!events.contains("hunter2"), "{events}");
}

#[test]
fn server_side_fetches_stay_off_link_local_and_metadata_addresses() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    // Straight at the metadata address, and through a redirect from a LAN service: refused
    // on the address resolved for the connection (nothing is sent there).
    let redirect = raw_server(
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .into(),
    );
    for src in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fe80::1]/catalog.toml".to_string(),
        format!("{redirect}/catalog.toml"),
    ] {
        let t = Instant::now();
        let r = import(&mut c, &src);
        assert_eq!(r.status, 400, "{src}: {}", r.body);
        assert!(r.body.contains("link-local"), "{src}: {}", r.body);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "refused, not timed out"
        );
    }
    // The same for an entry's sha_url, and a URL with a space is refused as input.
    let r = c.json(
        "POST",
        "/catalog/entries",
        &serde_json::json!({"image_url": "http://127.0.0.1:9/disk.img.zst", "sha_url": "http://169.254.169.254/sums"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("link-local"), "{}", r.body);
    let r = c.json(
        "POST",
        "/catalog/entries",
        &serde_json::json!({"image_url": "http://127.0.0.1/a b.img"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // A chain longer than 5 redirects is not followed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, mut st) in listener.incoming().flatten().enumerate() {
            let mut buf = [0u8; 2048];
            let _ = st.read(&mut buf);
            let _ = write!(
                st,
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                n + 1
            );
        }
    });
    let r = import(&mut c, &format!("http://127.0.0.1:{port}/0"));
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn password_attempts_are_counted_before_verification_per_address() {
    use argon2::PasswordHasher;
    let hash = argon2::Argon2::default()
        .hash_password(b"right-password")
        .unwrap()
        .to_string();
    let s = Server::start_with(&[("BTY_ADMIN_PASSWORD", &hash)]);
    // Signed in before the storm (a success clears the address's count).
    let mut c = s.signed_in("right-password");
    let before = s.peak_rss_kib();
    let addr = s.addr();
    let posts: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                http_from(
                    "127.0.0.1",
                    addr,
                    "POST",
                    "/ui/login",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    b"password=wrong",
                )
                .0
            })
        })
        .collect();
    let codes: Vec<u16> = posts.into_iter().map(|h| h.join().unwrap()).collect();
    let answered = codes.iter().filter(|c| **c == 200).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(answered + limited, 200, "{codes:?}");
    assert!(answered <= 5, "at most 5 verified, {answered} were");
    let peak = s.peak_rss_kib();
    eprintln!(
        "200 concurrent wrong logins: {answered} verified, {limited} refused; peak RSS {before} KiB before, {peak} KiB after"
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // The right password from the flooded address waits out the window too.
    assert_eq!(s.client().login("right-password").status, 429);
    // An attempt at the limit from 127.0.0.1 does not lock out another address.
    let (code, _) = http_from(
        "127.0.0.2",
        addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"password=right-password",
    );
    assert_eq!(code, 303);
    let failed = c.event_kinds("kind=auth.login.failed&limit=200").len();
    assert_eq!(failed, answered, "each verified wrong attempt audited");
}

#[test]
fn password_changes_are_limited_too() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let token = c.csrf();
    let mut last = 0;
    for _ in 0..6 {
        last = c
            .form(
                "/ui/account/password",
                &[
                    ("csrf", &token),
                    ("current", "not-it"),
                    ("new", "another-password-1"),
                    ("confirm", "another-password-1"),
                ],
            )
            .status;
    }
    assert_eq!(last, 429);
}

/// A connection that sent part of a request's headers.
fn half_sent(s: &Server) -> std::net::TcpStream {
    let mut t = std::net::TcpStream::connect(s.addr()).unwrap();
    t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    t
}

/// Whether the server closed `t` within `within`.
fn closed_within(t: &mut std::net::TcpStream, within: Duration) -> bool {
    t.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match t.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // an error answer (408) may come first
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_clients_cannot_hold_the_server() {
    let s = Server::start_with(&[
        ("BTY_LIMITS_HEADER_TIMEOUT_SECS", "2"),
        ("BTY_LIMITS_BODY_TIMEOUT_SECS", "2"),
        ("BTY_LIMITS_IDLE_TIMEOUT_SECS", "2"),
        ("BTY_LIMITS_MAX_CONNECTIONS", "30"),
    ]);
    let mut c = s.client();
    // More half-sent requests than the cap: service goes on (the oldest are displaced).
    let mut held: Vec<_> = (0..60).map(|_| half_sent(&s)).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        assert_eq!(c.get("/healthz").status, 200);
    }
    // Every half-sent connection is closed by the header timeout.
    for t in &mut held {
        assert!(closed_within(t, Duration::from_secs(15)), "still open");
    }
    let m = c.get("/metrics").body;
    assert!(metric(&m, "bty_http_connections_evicted_total") > 0, "{m}");
    // A request body that stops moving is cut; one that keeps moving is not, however long.
    let mut admin = s.signed_in("bty-lab");
    let cookie = admin.cookie.clone().unwrap();
    let mut t = std::net::TcpStream::connect(s.addr()).unwrap();
    write!(
        t,
        "PUT /boot/stalled.bin HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 100\r\n\r\nabc"
    )
    .unwrap();
    assert!(closed_within(&mut t, Duration::from_secs(15)));
    let mut t = std::net::TcpStream::connect(s.addr()).unwrap();
    write!(
        t,
        "PUT /boot/slow.bin HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(600));
        t.write_all(b"x").unwrap();
    }
    let mut answer = String::new();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = t.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        std::fs::read(s.state_dir().join("boot/slow.bin")).unwrap(),
        b"xxxxxxxxxx"
    );
    // A live stream is exempt from the idle timeout: still open after 5 s of silence, and it
    // still delivers.
    let mut sse = std::net::TcpStream::connect(s.addr()).unwrap();
    write!(
        sse,
        "GET /events/machines HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
    )
    .unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = sse.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("text/event-stream"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    std::thread::sleep(Duration::from_secs(5));
    let r = admin.json(
        "PUT",
        "/machines/52:54:00:aa:bb:01",
        &serde_json::json!({"boot_mode": "ipxe-exit"}),
    );
    assert!(r.status < 300, "{}", r.body);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("52:54:00:aa:bb:01") && Instant::now() < deadline {
        match sse.read(&mut buf) {
            Ok(0) => panic!("the live stream was closed"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    assert!(seen.contains("52:54:00:aa:bb:01"), "{seen}");
}

#[test]
fn uploads_and_boot_files() {
    let s = Server::start();
    let mut c = s.signed_in("bty-lab");
    let boot = s.state_dir().join("boot");
    // Two uploads of the same name at once: both land whole, the file is one of them.
    let bodies: Vec<Vec<u8>> = (0..2u8).map(|i| vec![b'a' + i; 6 << 20]).collect();
    let handles: Vec<_> = bodies
        .iter()
        .cloned()
        .map(|b| {
            let mut cl = s.client();
            cl.cookie = c.cookie.clone();
            std::thread::spawn(move || {
                cl.request(
                    "PUT",
                    "/boot/vmlinuz",
                    &[],
                    Some(("application/octet-stream", b)),
                )
                .status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    let got = std::fs::read(boot.join("vmlinuz")).unwrap();
    assert!(bodies.contains(&got), "the file is one whole upload");
    let leftovers: Vec<_> = std::fs::read_dir(&boot)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A hard link into the boot folder and a FIFO are not served (and do not hang).
    std::fs::hard_link(s.state_dir().join("session-secret"), boot.join("linked")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(boot.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    for name in ["linked", "fifo"] {
        let t = Instant::now();
        let r = c.get(&format!("/boot/{name}"));
        assert_eq!(r.status, 404, "{name}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name} answered at once"
        );
    }
    // Multipart text parts are capped before they are buffered: a 64 MiB `name` part costs
    // the server no 64 MiB.
    let token = c.csrf();
    let before = s.peak_rss_kib();
    let mut t = std::net::TcpStream::connect(s.addr()).unwrap();
    let head = format!(
        "--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n"
    );
    let cookie = c.cookie.clone().unwrap();
    let _ = write!(
        t,
        "POST /ui/netboot/upload HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n{head}",
        head.len() + (64 << 20)
    );
    let chunk = vec![b'n'; 1 << 20];
    for _ in 0..64 {
        if t.write_all(&chunk).is_err() {
            break; // the server stopped reading: that is the point
        }
    }
    let mut answer = String::new();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = t.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    let grew = s.peak_rss_kib().saturating_sub(before);
    assert!(grew < 32 * 1024, "peak RSS grew by {grew} KiB");
}

#[test]
fn state_is_private_and_odd_input_is_refused_cleanly() {
    let s = Server::start();
    let dir = s.state_dir();
    assert_eq!(file_mode(&dir), 0o700);
    assert_eq!(file_mode(&dir.join("state.db")), 0o600);
    let mut c = s.signed_in("bty-lab");
    for ext in ["state.db-wal", "state.db-shm"] {
        if dir.join(ext).exists() {
            assert_eq!(file_mode(&dir.join(ext)), 0o600, "{ext}");
        }
    }
    // A `back=` with CR/LF falls back to the events page.
    let token = c.csrf();
    let r = c.form(
        "/ui/events/ack",
        &[
            ("csrf", &token),
            ("ids", "1"),
            ("back", "/ui/events\r\nX: y"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/ui/events"));
    // The login page says nothing about the password to strangers.
    let page = s.client().get("/ui/login").body;
    assert!(
        !page.contains("bty-lab") && !page.contains("default"),
        "{page}"
    );
}
