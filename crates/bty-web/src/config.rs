//! Configuration: built-in defaults, then TOML files (later files win), then per-key
//! environment variables `BTY_<SECTION>_<KEY>` (empty values ignored). Every effective value
//! remembers where it came from, for `bty-web show-config`.
//!
//! Files, when `--config` is not given: `/etc/bty/conf.d/*.toml` (sorted), `/etc/bty/bty.toml`,
//! `$BTY_CONFIG_DIR/*.toml`, `$BTY_CONFIG_FILE`, `<state_dir>/bty.toml`. Missing files are
//! skipped; a file that does not parse stops the start. Unknown keys are warned about.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A key: section, name, default, and whether its value is a secret.
struct KeyDef {
    section: &'static str,
    key: &'static str,
    default: &'static str,
    secret: bool,
    /// One line for a commented configuration file.
    help: &'static str,
}

const KEYS: &[KeyDef] = &[
    KeyDef {
        section: "admin",
        key: "password",
        default: "bty-lab",
        secret: true,
        help: "plain text or an argon2 PHC string ($argon2id$...)",
    },
    KeyDef {
        section: "server",
        key: "host",
        default: "0.0.0.0",
        secret: false,
        help: "the address to listen on",
    },
    KeyDef {
        section: "server",
        key: "port",
        default: "8080",
        secret: false,
        help: "0: any free port (the start line says which)",
    },
    KeyDef {
        section: "server",
        key: "public_url",
        default: "",
        secret: false,
        help: "the base URL handed to machines; else a request's Host header",
    },
    KeyDef {
        section: "server",
        key: "trusted_proxy",
        default: "",
        secret: false,
        help: "comma-separated proxy addresses whose X-Forwarded-For is read",
    },
    KeyDef {
        section: "server",
        key: "session_secret",
        default: "",
        secret: true,
        help: "signs session cookies; else <state_dir>/session-secret",
    },
    KeyDef {
        section: "paths",
        key: "state_dir",
        default: "./bty-state",
        secret: false,
        help: "state.db, the session key, boot/ and cache/",
    },
    KeyDef {
        section: "paths",
        key: "boot_dir",
        default: "",
        secret: false,
        help: "boot files (default <state_dir>/boot)",
    },
    KeyDef {
        section: "paths",
        key: "catalog_file",
        default: "",
        secret: false,
        help: "default <state_dir>/catalog.toml",
    },
    KeyDef {
        section: "tuning",
        key: "max_body_bytes",
        default: "1048576",
        secret: false,
        help: "larger request bodies get 413",
    },
    KeyDef {
        section: "tuning",
        key: "max_upload_bytes",
        default: "214748364800",
        secret: false,
        help: "cap of PUT /boot/{name} and the UI's boot-file upload",
    },
    KeyDef {
        section: "netboot",
        key: "preset",
        default: "bty",
        secret: false,
        help: "what the live-environment chain boots: bty or upstream",
    },
    KeyDef {
        section: "netboot",
        key: "kernel",
        default: "",
        secret: false,
        help: "a file name in the boot folder (default: the preset's)",
    },
    KeyDef {
        section: "netboot",
        key: "initrd",
        default: "",
        secret: false,
        help: "a file name in the boot folder (default: the preset's)",
    },
    KeyDef {
        section: "netboot",
        key: "cmdline",
        default: "",
        secret: false,
        help: "the kernel command line ({base}, {mac} are filled in)",
    },
    KeyDef {
        section: "netboot",
        key: "upstream_version",
        default: crate::pxe::netboot::DEFAULT_UPSTREAM_VERSION,
        secret: false,
        help: "the upstream live environment's release, for its file names",
    },
    KeyDef {
        section: "events",
        key: "retention_days",
        default: "365",
        secret: false,
        help: "events older than this are deleted; 0 keeps every event",
    },
    KeyDef {
        section: "tftp",
        key: "enabled",
        default: "false",
        secret: false,
        help: "serve iPXE over TFTP (port 69 needs CAP_NET_BIND_SERVICE)",
    },
    KeyDef {
        section: "tftp",
        key: "bind",
        default: "0.0.0.0:69",
        secret: false,
        help: "the TFTP address",
    },
    KeyDef {
        section: "tftp",
        key: "root",
        default: "",
        secret: false,
        help: "the TFTP folder (default: the boot folder)",
    },
    KeyDef {
        section: "limits",
        key: "header_timeout_secs",
        default: "30",
        secret: false,
        help: "a request's headers must arrive within this",
    },
    KeyDef {
        section: "limits",
        key: "body_timeout_secs",
        default: "60",
        secret: false,
        help: "a request body idle this long is cut",
    },
    KeyDef {
        section: "limits",
        key: "idle_timeout_secs",
        default: "60",
        secret: false,
        help: "a connection idle this long is cut",
    },
    KeyDef {
        section: "limits",
        key: "max_connections",
        default: "1024",
        secret: false,
        help: "open HTTP connections",
    },
    KeyDef {
        section: "limits",
        key: "max_streams",
        default: "512",
        secret: false,
        help: "live streams (SSE)",
    },
    KeyDef {
        section: "limits",
        key: "max_discovered",
        default: "5000",
        secret: false,
        help: "machines unknown PXE clients may create",
    },
    KeyDef {
        section: "limits",
        key: "discover_per_minute",
        default: "120",
        secret: false,
        help: "new machines per source address per minute",
    },
    KeyDef {
        section: "limits",
        key: "lshw_max_bytes",
        default: "1048576",
        secret: false,
        help: "a larger inventory lshw is dropped (the disks are kept)",
    },
    KeyDef {
        section: "limits",
        key: "tftp_transfers",
        default: "64",
        secret: false,
        help: "TFTP transfers at once",
    },
    KeyDef {
        section: "limits",
        key: "tftp_per_client",
        default: "8",
        secret: false,
        help: "TFTP transfers at once per address",
    },
    KeyDef {
        section: "pxe",
        key: "strict_reports",
        default: "false",
        secret: false,
        help: "refuse reports from an address other than the one that armed the cycle",
    },
    KeyDef {
        section: "cache",
        key: "enabled",
        default: "true",
        secret: false,
        help: "the image cache; false hands machines each image's origin URL",
    },
    KeyDef {
        section: "cache",
        key: "dir",
        default: "",
        secret: false,
        help: "default <state_dir>/cache",
    },
    KeyDef {
        section: "cache",
        key: "max_bytes",
        default: "",
        secret: false,
        help: "empty: the smaller of 50 GiB and half the filesystem",
    },
    KeyDef {
        section: "cache",
        key: "min_free_bytes",
        default: "1073741824",
        secret: false,
        help: "a fill never leaves less free than this",
    },
    KeyDef {
        section: "cache",
        key: "max_concurrent_fills",
        default: "4",
        secret: false,
        help: "origin fetches at once",
    },
    KeyDef {
        section: "cache",
        key: "origin_bytes_per_sec",
        default: "0",
        secret: false,
        help: "origin bandwidth cap over all fills; 0: none",
    },
    KeyDef {
        section: "cache",
        key: "revalidate_secs",
        default: "60",
        secret: false,
        help: "how long a blob without a digest is served before its origin is asked again",
    },
];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key} = {value:?}: {message}")]
    Value {
        key: String,
        value: String,
        message: String,
    },
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<String, (String, Origin)>,
    pub files: Vec<PathBuf>,
    pub admin_password: String,
    pub host: IpAddr,
    pub port: u16,
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub session_secret: Option<String>,
    pub state_dir: PathBuf,
    pub boot_dir: PathBuf,
    pub max_body_bytes: usize,
    pub max_upload_bytes: u64,
    /// Events older than this many days are deleted (0: never).
    pub event_retention_days: u32,
    pub netboot: crate::pxe::netboot::Netboot,
    /// The TFTP server, when enabled: bind address and root folder.
    pub tftp: Option<(std::net::SocketAddr, PathBuf)>,
    pub limits: Limits,
    /// `[pxe] strict_reports`: refuse (403) reports and armings that come from another address
    /// than the one that armed the cycle, instead of only warning.
    pub strict_reports: bool,
    pub cache: CacheConfig,
}

/// `[limits]`: what one client, or all unauthenticated clients together, can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this (also the keep-alive wait).
    pub header_timeout: std::time::Duration,
    /// A request body that sends nothing for this long is cut.
    pub body_timeout: std::time::Duration,
    /// A connection that moves no byte for this long (outside a handler) is closed.
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    /// Live streams (SSE), which are exempt from the idle timeout.
    pub max_streams: usize,
    /// Machines that unknown PXE clients may create; beyond it, unknown MACs are not recorded.
    pub max_discovered: u64,
    /// New machines per source address per minute.
    pub discover_per_minute: u32,
    /// An `lshw` document larger than this is dropped (the disks are still kept).
    pub lshw_max_bytes: usize,
    pub tftp_transfers: usize,
    pub tftp_per_client: usize,
}

/// `[cache]`: bty-web's image cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Where blobs live (`<state_dir>/cache` by default).
    pub dir: PathBuf,
    /// The cap on the bytes kept; `None`: the smaller of 50 GiB and half the filesystem,
    /// decided at start.
    pub max_bytes: Option<u64>,
    /// A fill never leaves less than this free on the cache's filesystem.
    pub min_free_bytes: u64,
    pub max_concurrent_fills: usize,
    /// Origin bandwidth cap over all fills, bytes per second (0: none).
    pub origin_bytes_per_sec: u64,
    /// A blob without a known digest is checked with its origin when last checked longer ago
    /// than this (0: on every request).
    pub revalidate_secs: u64,
}

fn flag(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

impl Default for Limits {
    fn default() -> Limits {
        let secs = std::time::Duration::from_secs;
        Limits {
            header_timeout: secs(30),
            body_timeout: secs(60),
            idle_timeout: secs(60),
            max_connections: 1024,
            max_streams: 512,
            max_discovered: 5000,
            discover_per_minute: 120,
            lshw_max_bytes: 1 << 20,
            tftp_transfers: 64,
            tftp_per_client: 8,
        }
    }
}

fn env_name(section: &str, key: &str) -> String {
    format!("BTY_{}_{}", section.to_uppercase(), key.to_uppercase())
}

fn toml_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The default file list (see the module doc).
pub fn default_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = toml_files_in(Path::new("/etc/bty/conf.d"));
    files.push(PathBuf::from("/etc/bty/bty.toml"));
    if let Some(d) = env("BTY_CONFIG_DIR") {
        files.extend(toml_files_in(Path::new(&d)));
    }
    if let Some(f) = env("BTY_CONFIG_FILE") {
        files.push(PathBuf::from(f));
    }
    let state = env("BTY_PATHS_STATE_DIR").unwrap_or_else(|| "./bty-state".into());
    files.push(Path::new(&state).join("bty.toml"));
    files
}

impl Config {
    /// Load from `files` (missing ones skipped) and the environment as `env` reports it.
    pub fn load(
        files: &[PathBuf],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<String, (String, Origin)> = KEYS
            .iter()
            .map(|k| {
                (
                    format!("{}.{}", k.section, k.key),
                    (k.default.to_string(), Origin::Default),
                )
            })
            .collect();
        let mut used = Vec::new();
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ConfigError::File {
                        path: path.clone(),
                        message: e.to_string(),
                    });
                }
            };
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            used.push(path.clone());
            for (section, v) in &table {
                let Some(t) = v.as_table() else {
                    tracing::warn!("{}: [{section}] is not a table; ignored", path.display());
                    continue;
                };
                for (key, val) in t {
                    let name = format!("{section}.{key}");
                    if !values.contains_key(&name) {
                        tracing::warn!("{}: unknown key {name}; ignored", path.display());
                        continue;
                    }
                    let s = match val {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        other => {
                            return Err(ConfigError::Value {
                                key: name,
                                value: other.type_str().to_string(),
                                message: format!(
                                    "in {}: expected a string or number",
                                    path.display()
                                ),
                            });
                        }
                    };
                    values.insert(name, (s, Origin::File(path.clone())));
                }
            }
        }
        for k in KEYS {
            let var = env_name(k.section, k.key);
            if let Some(v) = env(&var).filter(|v| !v.trim().is_empty()) {
                values.insert(format!("{}.{}", k.section, k.key), (v, Origin::Env(var)));
            }
        }
        Config::from_values(values, used)
    }

    fn from_values(
        values: BTreeMap<String, (String, Origin)>,
        files: Vec<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| {
            values
                .get(k)
                .map(|(v, _)| v.trim().to_string())
                .unwrap_or_default()
        };
        let bad = |k: &str, message: &str| ConfigError::Value {
            key: k.to_string(),
            value: get(k),
            message: message.to_string(),
        };
        let password = get("admin.password");
        let host: IpAddr = get("server.host")
            .parse()
            .map_err(|_| bad("server.host", "not an IP address"))?;
        let port: u16 = get("server.port")
            .parse()
            .ok()
            .ok_or_else(|| bad("server.port", "must be 0-65535 (0: any free port)"))?;
        let public_url = Some(get("server.public_url"))
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_string());
        if let Some(u) = &public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
        let mut trusted_proxies = Vec::new();
        for p in get("server.trusted_proxy")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            trusted_proxies.push(p.parse().map_err(|_| {
                bad(
                    "server.trusted_proxy",
                    "a comma-separated list of IP addresses",
                )
            })?);
        }
        let state_dir = PathBuf::from(get("paths.state_dir"));
        let boot_dir = match get("paths.boot_dir") {
            s if s.is_empty() => state_dir.join("boot"),
            s => PathBuf::from(s),
        };
        let max_body_bytes = get("tuning.max_body_bytes")
            .parse()
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| bad("tuning.max_body_bytes", "a byte count of at least 1024"))?;
        let max_upload_bytes = get("tuning.max_upload_bytes")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("tuning.max_upload_bytes", "a positive byte count"))?;
        let opt = |k: &str| Some(get(k)).filter(|v| !v.is_empty());
        let netboot = crate::pxe::netboot::Netboot::new(
            &get("netboot.preset"),
            &get("netboot.upstream_version"),
            opt("netboot.kernel").as_deref(),
            opt("netboot.initrd").as_deref(),
            opt("netboot.cmdline").as_deref(),
        )
        .ok_or_else(|| {
            bad(
                "netboot.preset",
                &format!("one of {}", crate::pxe::netboot::PRESETS.join(", ")),
            )
        })?;
        for k in ["netboot.kernel", "netboot.initrd"] {
            if opt(k).is_some_and(|v| v.contains('/') || v.contains(char::is_whitespace)) {
                return Err(bad(k, "a bare file name in the boot folder"));
            }
        }
        let tftp = match get("tftp.enabled").to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => {
                let bind = get("tftp.bind")
                    .parse()
                    .map_err(|_| bad("tftp.bind", "an address:port such as 0.0.0.0:69"))?;
                let root = match get("tftp.root") {
                    r if r.is_empty() => boot_dir.clone(),
                    r => PathBuf::from(r),
                };
                Some((bind, root))
            }
            "false" | "0" | "no" | "off" | "" => None,
            _ => return Err(bad("tftp.enabled", "true or false")),
        };
        let event_retention_days: u32 =
            get("events.retention_days").parse().ok().ok_or_else(|| {
                bad(
                    "events.retention_days",
                    "a whole number of days (0: keep every event)",
                )
            })?;
        let num = |k: &str, min: u64, what: &str| -> Result<u64, ConfigError> {
            get(k)
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| bad(k, what))
        };
        let secs = |k: &str| {
            num(k, 1, "a whole number of seconds, at least 1").map(std::time::Duration::from_secs)
        };
        let count = |k: &str| num(k, 1, "a whole number, at least 1");
        let limits = Limits {
            header_timeout: secs("limits.header_timeout_secs")?,
            body_timeout: secs("limits.body_timeout_secs")?,
            idle_timeout: secs("limits.idle_timeout_secs")?,
            max_connections: count("limits.max_connections")? as usize,
            max_streams: count("limits.max_streams")? as usize,
            max_discovered: num("limits.max_discovered", 0, "a whole number (0: none)")?,
            discover_per_minute: count("limits.discover_per_minute")?.min(u32::MAX as u64) as u32,
            lshw_max_bytes: num("limits.lshw_max_bytes", 1024, "a byte count, at least 1024")?
                .min(crate::routes::pxe::MAX_LSHW as u64) as usize,
            tftp_transfers: count("limits.tftp_transfers")? as usize,
            tftp_per_client: count("limits.tftp_per_client")? as usize,
        };
        let strict_reports = match get("pxe.strict_reports").to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            _ => return Err(bad("pxe.strict_reports", "true or false")),
        };
        let cache = CacheConfig {
            enabled: flag(&get("cache.enabled"))
                .ok_or_else(|| bad("cache.enabled", "true or false"))?,
            dir: match get("cache.dir") {
                d if d.is_empty() => state_dir.join("cache"),
                d => PathBuf::from(d),
            },
            max_bytes: match get("cache.max_bytes") {
                v if v.is_empty() => None,
                _ => Some(num(
                    "cache.max_bytes",
                    1 << 20,
                    "a byte count of at least 1048576 (empty: automatic)",
                )?),
            },
            min_free_bytes: num("cache.min_free_bytes", 0, "a byte count")?,
            max_concurrent_fills: count("cache.max_concurrent_fills")? as usize,
            origin_bytes_per_sec: num(
                "cache.origin_bytes_per_sec",
                0,
                "bytes per second (0: no cap)",
            )?,
            revalidate_secs: num("cache.revalidate_secs", 0, "a whole number of seconds")?,
        };
        Ok(Config {
            cache,
            limits,
            strict_reports,
            tftp,
            event_retention_days,
            max_upload_bytes,
            netboot,
            admin_password: if password.is_empty() {
                "bty-lab".into()
            } else {
                password
            },
            host,
            port,
            public_url,
            trusted_proxies,
            session_secret: Some(get("server.session_secret")).filter(|s| !s.is_empty()),
            state_dir,
            boot_dir,
            max_body_bytes,
            values,
            files,
        })
    }

    /// Where TFTP serves from (and where the iPXE binaries belong): `[tftp] root`, else the
    /// boot folder.
    pub fn tftp_root(&self) -> &std::path::Path {
        self.tftp.as_ref().map_or(&self.boot_dir, |(_, r)| r)
    }

    /// Whether the admin password is still the default.
    pub fn default_password(&self) -> bool {
        self.admin_password == "bty-lab"
    }

    /// Each key as `(section, name, default, secret, help)`, in the order of the manual.
    pub fn keys()
    -> impl Iterator<Item = (&'static str, &'static str, &'static str, bool, &'static str)> {
        KEYS.iter()
            .map(|k| (k.section, k.key, k.default, k.secret, k.help))
    }

    /// Each key with its effective value (secrets masked) and where it came from.
    pub fn describe(&self) -> Vec<(String, String, String)> {
        KEYS.iter()
            .map(|k| {
                let name = format!("{}.{}", k.section, k.key);
                let (v, origin) = self
                    .values
                    .get(&name)
                    .cloned()
                    .unwrap_or((String::new(), Origin::Default));
                let shown = if k.secret && !v.is_empty() {
                    "********".to_string()
                } else {
                    v
                };
                (name, shown, origin.to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn layering_files_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(
            &a,
            "[server]\nport = 9000\nhost = \"127.0.0.1\"\n[admin]\npassword = \"one\"\n",
        )
        .unwrap();
        std::fs::write(&b, "[server]\nport = 9001\n[bogus]\nx = 1\n").unwrap();
        let env = env_of(&[("BTY_ADMIN_PASSWORD", "two"), ("BTY_SERVER_HOST", "")]);
        let c = Config::load(
            &[a.clone(), b.clone(), dir.path().join("missing.toml")],
            &env,
        )
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.admin_password, "two");
        assert_eq!(c.files, [a.clone(), b.clone()]);
        let d = c.describe();
        let row = |k: &str| d.iter().find(|r| r.0 == k).cloned().unwrap();
        assert_eq!(row("admin.password").1, "********");
        assert_eq!(row("admin.password").2, "env BTY_ADMIN_PASSWORD");
        assert_eq!(row("server.port").2, format!("file {}", b.display()));
        assert_eq!(
            row("paths.state_dir"),
            (
                "paths.state_dir".into(),
                "./bty-state".into(),
                "default".into()
            )
        );
        assert_eq!(c.boot_dir, PathBuf::from("./bty-state/boot"));
        assert_eq!(c.limits, Limits::default());
        assert!(!c.strict_reports);
        assert!(c.cache.enabled);
        assert_eq!(c.cache.dir, PathBuf::from("./bty-state/cache"));
        assert_eq!(c.cache.max_bytes, None);
    }

    #[test]
    fn bad_values_stop_the_start() {
        let env = env_of(&[("BTY_SERVER_PORT", "70000")]);
        assert!(Config::load(&[], &env).is_err());
        let env = env_of(&[("BTY_SERVER_PORT", "http")]);
        assert!(Config::load(&[], &env).is_err());
        let env = env_of(&[("BTY_SERVER_PUBLIC_URL", "lab:8080")]);
        assert!(Config::load(&[], &env).is_err());
        for (k, v) in [
            ("BTY_LIMITS_IDLE_TIMEOUT_SECS", "0"),
            ("BTY_LIMITS_MAX_CONNECTIONS", "many"),
            ("BTY_PXE_STRICT_REPORTS", "maybe"),
            ("BTY_CACHE_ENABLED", "sometimes"),
            ("BTY_CACHE_MAX_BYTES", "12"),
            ("BTY_CACHE_MAX_CONCURRENT_FILLS", "0"),
        ] {
            assert!(Config::load(&[], &env_of(&[(k, v)])).is_err(), "{k}={v}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.toml");
        std::fs::write(&f, "[server\n").unwrap();
        assert!(Config::load(&[f], &env_of(&[])).is_err());
    }
}
