//! `bty flash SOURCE TARGET`: inspect, open the target, confirm, flash with progress, report.

use bty_image::digest::Sha256Digest;
use bty_image::flash::preflight;
use bty_image::target::TargetError;
use bty_image::{
    CancelToken, FlashError, FlashOptions, FlashReport, ImageInfo, Target, ZeroMode, flash, inspect,
};
use serde_json::json;
use std::path::PathBuf;

use crate::cli::FlashArgs;
use crate::cmd_inspect::report_error;
use crate::confirm::{self, Confirmation};
use crate::exit;
use crate::output::{ProgressView, json_line};
use crate::pick::pick;
use crate::units;

/// A refusal before anything was written: message, exit 2.
fn refuse(args: &FlashArgs, message: &str) -> u8 {
    if args.json {
        json_line(
            "error",
            json!({ "message": message, "write_began": false, "target_wiped": false, "exit_code": exit::REFUSED }),
        );
    } else {
        eprintln!("bty: {message}; the target was not modified");
    }
    exit::REFUSED
}

pub fn run(args: FlashArgs) -> u8 {
    let given = match args.sha256.as_deref().map(Sha256Digest::parse).transpose() {
        Ok(d) => d,
        Err(e) => return refuse(&args, &e.to_string()),
    };
    let (source_arg, target_path) = match (args.select.image.is_some(), args.args.as_slice()) {
        (true, [t]) => (None, PathBuf::from(t)),
        (false, [s, t]) => (Some(s.clone()), PathBuf::from(t)),
        (true, _) => return refuse(&args, "with --image, give only the TARGET"),
        (false, _) => return refuse(&args, "give SOURCE and TARGET (or --image NAME and TARGET)"),
    };
    let label = source_arg
        .clone()
        .or(args.select.image.clone())
        .unwrap_or_default();
    if let Some(src) = &source_arg
        && let Some(why) = endless_source(src, args.allow_char_device)
    {
        return refuse(&args, &why);
    }
    let resolved = match pick(source_arg.as_deref(), &args.select) {
        Ok(r) => r,
        Err(e) => {
            report_error(&label, &e, args.json);
            return exit::REFUSED;
        }
    };
    let expected = match (given, resolved.expected_sha256) {
        (Some(g), Some(r)) if g != r => {
            let from = resolved.digest_from.clone().unwrap_or_default();
            return refuse(
                &args,
                &format!("--sha256 {g} differs from {r} given by {from}"),
            );
        }
        (g, r) => g.or(r),
    };
    let source = resolved.source;
    let info = match inspect(source.as_ref()) {
        Ok(i) => i,
        Err(e) => {
            report_error(&label, &e, args.json);
            return exit::REFUSED;
        }
    };
    let target = match Target::open(&target_path) {
        Ok(t) => t,
        Err(e) => return refuse(&args, &target_message(&e)),
    };
    if let Err(f) = preflight(source.as_ref(), &info, &target) {
        target.abandon();
        return refuse(&args, &f.to_string());
    }
    if !args.yes {
        match confirm::ask(&info, &target) {
            Confirmation::Confirmed => {}
            Confirmation::Declined(why) => {
                target.abandon();
                return refuse(&args, &format!("not confirmed ({why})"));
            }
            Confirmation::NoTerminal => {
                target.abandon();
                return refuse(
                    &args,
                    &format!(
                        "refusing to overwrite {} without confirmation: no terminal to ask on; pass --yes",
                        target_path.display()
                    ),
                );
            }
        }
    }

    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || handler_token.cancel()) {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
    if !args.json {
        eprintln!(
            "Writing {} ({}) to {}",
            info.source,
            info.layer_chain(),
            confirm::describe_target(&target)
        );
    }
    let opts = FlashOptions {
        expected_sha256: expected,
        verify: args.verify,
        zeroes: ZeroMode::from(args.zeroes),
        ..FlashOptions::default()
    };
    let view = ProgressView::new(args.json);
    let result = flash(&source, &info, &target, &opts, &view, &cancel);
    view.finish();
    match result {
        Ok(report) => {
            if args.json {
                json_line(
                    "result",
                    json!({ "ok": true, "image": &info, "flash": &report }),
                );
            } else {
                print!("{}", render_report(&info, &report, expected.is_some()));
            }
            exit::OK
        }
        Err(e) => {
            let code = if e.write_began {
                exit::FAILED_AFTER_WRITE
            } else {
                exit::REFUSED
            };
            // A file bty created holds nothing worth keeping after a failure (and a wipe that
            // failed too, as on a full disk, would leave half an image): remove it.
            target.discard_created();
            report_failure(&args, &e, code);
            code
        }
    }
}

/// A local character device other than standard input (`/dev/zero`, `/dev/urandom`, a tty)
/// is refused unless allowed: it has no end, and a flash from it never finishes.
fn endless_source(src: &str, allowed: bool) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    if allowed || src == "-" || src == "/dev/stdin" || src.contains("://") {
        return None;
    }
    let meta = std::fs::metadata(src).ok()?;
    meta.file_type().is_char_device().then(|| {
        format!(
            "{src} is a character device, which has no end; pass --allow-char-device if you mean it"
        )
    })
}

fn target_message(e: &TargetError) -> String {
    format!("cannot use the target: {e}")
}

fn report_failure(args: &FlashArgs, e: &FlashError, code: u8) {
    if args.json {
        json_line(
            "error",
            json!({
                "message": e.to_string(),
                "write_began": e.write_began,
                "target_wiped": matches!(e.wipe, Some(Ok(()))),
                "exit_code": code,
            }),
        );
    } else {
        eprintln!("bty: flash failed: {e}");
    }
}

fn render_report(info: &ImageInfo, r: &FlashReport, sha_checked: bool) -> String {
    let mut s = format!(
        "Flashed {} ({}) onto {}\n",
        info.source,
        info.layer_chain(),
        r.target
    );
    s.push_str(&format!(
        "  image:     {} bytes ({}), digest {}:{}\n",
        r.image_bytes,
        units::bytes(r.image_bytes),
        r.image_digest_algorithm,
        r.image_digest
    ));
    if sha_checked && let Some(d) = &r.source_sha256 {
        s.push_str(&format!("  source:    sha256 {d} matches --sha256\n"));
    }
    s.push_str(&format!(
        "  written:   {} of data",
        units::bytes(r.stats.data_bytes)
    ));
    if r.stats.zeroed_bytes > 0 {
        s.push_str(&format!(
            ", {} of zeros made to read as zero without writing them",
            units::bytes(r.stats.zeroed_bytes)
        ));
    }
    s.push('\n');
    if r.stats.skipped_bytes > 0 {
        s.push_str(&format!(
            "  skipped:   {} of zero runs left as they were on the target (--zeroes=skip)\n",
            units::bytes(r.stats.skipped_bytes)
        ));
    }
    if r.verified {
        s.push_str("  verified:  read back bypassing the page cache; matches the image\n");
    }
    let rate = if r.elapsed_secs > 0.0 {
        r.image_bytes as f64 / r.elapsed_secs
    } else {
        0.0
    };
    s.push_str(&format!(
        "  time:      {} ({}/s)\n",
        units::duration(r.elapsed_secs),
        units::bytes(rate as u64)
    ));
    s
}
