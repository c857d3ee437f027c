//! How commands talk back: a progress bar and sentences on a terminal, or one JSON document per
//! line (`--json`), each carrying `"schema_version": 1`.

use std::io::{IsTerminal, Write};

use bty_image::progress::{Progress, ProgressSink, Stage};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};

use crate::units;

pub const SCHEMA_VERSION: u32 = 1;

/// Print one JSON document on its own line, with `schema_version` and `type` first.
pub fn json_line(kind: &str, body: impl Serialize) {
    let mut doc = serde_json::Map::new();
    doc.insert("schema_version".into(), json!(SCHEMA_VERSION));
    doc.insert("type".into(), json!(kind));
    match serde_json::to_value(body) {
        Ok(Value::Object(fields)) => doc.extend(fields),
        Ok(other) => {
            doc.insert("value".into(), other);
        }
        Err(e) => {
            doc.insert("serialization_error".into(), json!(e.to_string()));
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &Value::Object(doc));
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Consumes the engine's progress events.
pub enum ProgressView {
    /// NDJSON on stdout.
    Json,
    /// A bar on stderr (hidden when stderr is not a terminal).
    Bar(ProgressBar),
}

impl ProgressView {
    pub fn new(json: bool) -> ProgressView {
        if json {
            return ProgressView::Json;
        }
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(8)
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:32}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        ProgressView::Bar(bar)
    }

    pub fn finish(&self) {
        if let ProgressView::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn bar_message(p: &Progress) -> String {
    let done = if p.stage == Stage::Verifying {
        p.bytes_verified
    } else {
        p.bytes_written
    };
    let total = p.total.map(units::bytes).unwrap_or_else(|| "?".into());
    let mut msg = format!("{} / {}", units::bytes(done), total);
    if p.rate > 0.0 {
        msg.push_str(&format!("  {}/s", units::bytes(p.rate as u64)));
    }
    if let Some(eta) = p.eta_secs {
        msg.push_str(&format!("  ETA {}", units::duration(eta)));
    }
    msg
}

impl ProgressSink for ProgressView {
    fn progress(&self, p: &Progress) {
        match self {
            ProgressView::Json => json_line("progress", p),
            ProgressView::Bar(bar) => {
                bar.set_prefix(p.stage.label());
                match (p.stage, p.total, p.source_size) {
                    (Stage::Verifying, Some(t), _) => {
                        bar.set_length(t);
                        bar.set_position(p.bytes_verified);
                    }
                    (_, Some(t), _) => {
                        bar.set_length(t);
                        bar.set_position(p.bytes_written);
                    }
                    // Decoded size unknown: show how much of the source has been read.
                    (_, None, Some(s)) => {
                        bar.set_length(s);
                        bar.set_position(p.bytes_read);
                    }
                    _ => {}
                }
                bar.set_message(bar_message(p));
            }
        }
    }
}
