//! The typed confirmation before anything is overwritten: the operator sees what will be lost
//! and types the device's name. Enter alone never confirms; without a terminal, `--yes` is
//! required.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use bty_image::{ImageInfo, Target, TargetKind};

use crate::units;

/// Outcome of asking.
pub enum Confirmation {
    Confirmed,
    Declined(String),
    NoTerminal,
}

/// The word the operator must type: the kernel name of a device (`sdb`), or the file name.
pub fn expected_answer(target: &Target) -> String {
    match (target.kind(), target.device()) {
        (TargetKind::BlockDevice, Some(d)) if !d.name.is_empty() => d.name.clone(),
        _ => target
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| target.path().display().to_string()),
    }
}

/// Whether `answer` confirms: the expected word, or the full path given on the command line.
pub fn answer_matches(answer: &str, expected: &str, path: &Path) -> bool {
    let a = answer.trim();
    !a.is_empty() && (a == expected || Path::new(a) == path)
}

/// A description of the target for the prompt.
pub fn describe_target(target: &Target) -> String {
    let mut parts = vec![target.path().display().to_string()];
    if let Some(cap) = target.capacity() {
        parts.push(units::bytes(cap));
    }
    if let Some(d) = target.device() {
        let model: Vec<&str> = [d.vendor.as_deref(), d.model.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !model.is_empty() {
            parts.push(model.join(" "));
        }
        if let Some(s) = &d.serial {
            parts.push(format!("serial {s}"));
        }
    }
    parts.join(", ")
}

/// Ask on the terminal. Regular files that do not exist yet need no confirmation.
pub fn ask(info: &ImageInfo, target: &Target) -> Confirmation {
    if target.kind() == TargetKind::File && !target.existed() {
        return Confirmation::Confirmed;
    }
    if !std::io::stdin().is_terminal() {
        return Confirmation::NoTerminal;
    }
    let expected = expected_answer(target);
    let image_size = info
        .output_size
        .map(units::bytes)
        .unwrap_or_else(|| "size unknown".into());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "Image:  {} ({}, {})",
        info.source,
        info.layer_chain(),
        image_size
    );
    let _ = writeln!(err, "Target: {}", describe_target(target));
    let _ = writeln!(err, "EVERYTHING ON THE TARGET WILL BE OVERWRITTEN.");
    let _ = write!(err, "Type '{expected}' to continue: ");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Confirmation::Declined("could not read the answer".into());
    }
    if answer_matches(&line, &expected, target.path()) {
        Confirmation::Confirmed
    } else {
        Confirmation::Declined(format!("you typed {:?}, not {expected:?}", line.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_name_or_path_confirms() {
        let p = Path::new("/dev/sdb");
        assert!(answer_matches("sdb\n", "sdb", p));
        assert!(answer_matches("/dev/sdb", "sdb", p));
        assert!(!answer_matches("\n", "sdb", p));
        assert!(!answer_matches("y", "sdb", p));
        assert!(!answer_matches("sda", "sdb", p));
    }
}
