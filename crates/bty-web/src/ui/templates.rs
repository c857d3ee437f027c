//! The page templates, compiled into the binary, and the filters they use.

use std::sync::LazyLock;

use minijinja::{Environment, Value};

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../../templates/layout.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    (
        "dashboard_live.html",
        include_str!("../../templates/dashboard_live.html"),
    ),
    (
        "dashboard_failures.html",
        include_str!("../../templates/dashboard_failures.html"),
    ),
    (
        "machines.html",
        include_str!("../../templates/machines.html"),
    ),
    (
        "machine_activity.html",
        include_str!("../../templates/machine_activity.html"),
    ),
    (
        "machine_rows.html",
        include_str!("../../templates/machine_rows.html"),
    ),
    ("machine.html", include_str!("../../templates/machine.html")),
    (
        "machine_status.html",
        include_str!("../../templates/machine_status.html"),
    ),
    ("images.html", include_str!("../../templates/images.html")),
    ("cache.html", include_str!("../../templates/cache.html")),
    (
        "image_delete.html",
        include_str!("../../templates/image_delete.html"),
    ),
    ("events.html", include_str!("../../templates/events.html")),
    ("netboot.html", include_str!("../../templates/netboot.html")),
    (
        "settings.html",
        include_str!("../../templates/settings.html"),
    ),
    ("account.html", include_str!("../../templates/account.html")),
];

static ENV: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.add_filter("bytes", bytes);
    env.add_filter("ts", timestamp);
    env.add_filter("short", short);
    for (name, src) in TEMPLATES {
        env.add_template(name, src)?;
    }
    Ok(env)
});

pub fn render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    let env = ENV.as_ref().map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    env.get_template(name)?.render(ctx)
}

/// A byte count for people: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

fn bytes(v: Value) -> String {
    if let Some(n) = v.as_i64().and_then(|n| u64::try_from(n).ok()) {
        human_bytes(n)
    } else if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok()) {
        human_bytes(n)
    } else if v.is_undefined() || v.is_none() {
        "—".into()
    } else {
        v.to_string()
    }
}

/// `2026-11-26T04:27:57.123456+00:00` → `2026-11-26 04:27:57` (UTC).
fn timestamp(v: Value) -> String {
    match v.as_str() {
        Some(s) if s.len() >= 19 && s.is_char_boundary(19) => s[..19].replacen('T', " ", 1),
        Some(s) => s.to_string(),
        None => "—".into(),
    }
}

fn short(v: Value, n: Option<usize>) -> String {
    let s = v.as_str().map(str::to_string).unwrap_or_default();
    s.chars().take(n.unwrap_or(12)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = ENV.as_ref().expect("templates parse");
        for (name, _) in TEMPLATES {
            env.get_template(name).expect(name);
        }
    }

    #[test]
    fn every_template_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut known: Vec<String> = TEMPLATES.iter().map(|(n, _)| n.to_string()).collect();
        known.sort();
        assert_eq!(files, known);
    }

    #[test]
    fn filters() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8 << 30), "8.0 GiB");
        assert_eq!(
            timestamp(Value::from("2026-11-26T04:27:57.123456+00:00")),
            "2026-11-26 04:27:57"
        );
        assert_eq!(timestamp(Value::from(())), "—");
        assert_eq!(short(Value::from("abcdef"), Some(3)), "abc");
    }

    #[test]
    fn escapes_html() {
        let out = render(
            "error.html",
            minijinja::context! { message => "<script>x</script>", status => 404 },
        )
        .unwrap();
        assert!(out.contains("&lt;script&gt;x&lt;"), "{out}");
        assert!(!out.contains("<script>x"));
    }
}
