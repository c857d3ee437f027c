//! bty-web for the agent tests: the real binary (built beside `bty`; built on demand when a
//! test runs alone) on 127.0.0.1, with a signed-in JSON client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;

pub fn web_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_bty")).with_file_name("bty-web");
    BUILD.call_once(|| {
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-p", "bty-web"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "building bty-web for the agent tests failed");
        }
    });
    bin
}

/// Sign in with the default password; the agent and the session cookie.
fn sign_in(base: &str) -> (ureq::Agent, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent
        .post(&format!("{base}/ui/login"))
        .send_form([("password", "bty-lab")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "sign-in at {base}");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    (agent, cookie)
}

/// A free port on 127.0.0.1 for a server that cannot be told to take port 0 (upstream's).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The venv with upstream's bty-lab `version` (made once, cached outside the clone).
pub fn upstream_venv(version: &str) -> PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/venv.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg(version)
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/upstream/venv.sh");
    assert!(
        out.status.success(),
        "making the bty-lab {version} venv failed"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub struct Web {
    pub base: String,
    pub state: tempfile::TempDir,
    child: Child,
    cookie: String,
    agent: ureq::Agent,
}

impl Web {
    /// Upstream's bty-web of `version` from PyPI, on 127.0.0.1 with fresh state, signed in.
    pub fn upstream(version: &str) -> Web {
        let venv = upstream_venv(version);
        let state = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(venv.join("bin/bty-web"))
            .arg("--config")
            .arg(state.path().join("none.toml"))
            .env("BTY_SERVER_HOST", "127.0.0.1")
            .env("BTY_SERVER_PORT", port.to_string())
            .env("BTY_PATHS_STATE_DIR", state.path())
            .env_remove("BTY_ADMIN_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start upstream bty-web");
        let base = format!("http://127.0.0.1:{port}");
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        // Bounds a hang at start-up (Python imports), does not measure speed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while probe.get(&format!("{base}/healthz")).call().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "upstream bty-web {version} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let (agent, cookie) = sign_in(&base);
        Web {
            base,
            state,
            child,
            cookie,
            agent,
        }
    }

    /// Start on `port` (0: any free port).
    pub fn start(port: u16) -> Web {
        Web::start_with(port, &[])
    }

    /// Start on `port` with extra environment variables.
    pub fn start_with(port: u16, env: &[(&str, &str)]) -> Web {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(web_bin())
            .envs(env.iter().copied())
            .arg("--config")
            .arg(state.path().join("none.toml"))
            .env("BTY_SERVER_HOST", "127.0.0.1")
            .env("BTY_SERVER_PORT", port.to_string())
            .env("BTY_PATHS_STATE_DIR", state.path())
            .env("BTY_LOG", "warn")
            .env_remove("BTY_ADMIN_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bty-web");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("bty-web exited").unwrap();
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let (agent, cookie) = sign_in(&base);
        Web {
            base,
            state,
            child,
            cookie,
            agent,
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("cookie", &self.cookie);
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                b.to_string().into_bytes()
            }
            None => Vec::new(),
        };
        let mut resp = self.agent.run(req.body(bytes).unwrap()).unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn metrics(&self) -> String {
        let mut r = self
            .agent
            .get(&format!("{}/metrics", self.base))
            .call()
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
