//! The typed confirmation on a real terminal (a pseudo-terminal made by `script`): the prompt
//! shows what will be overwritten, typing the device name proceeds, anything else — Enter
//! alone included — refuses and leaves the device untouched.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// Run `bty args…` on a pseudo-terminal, typing `typed`; returns (exit code, terminal output).
fn on_a_terminal(args: &[&str], typed: &str) -> (i32, String) {
    let cmd = std::iter::once(bty_bin())
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_device_name_must_be_typed() {
    let dev = LoopDev::new(8 * MIB, 91);
    let name = dev.path.file_name().unwrap().to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("img.raw");
    let img = sample_image(3 * MIB, 92);
    write(&src, &img);
    let before = dev.read(0, 8 * MIB);
    let args = ["flash", src.to_str().unwrap(), dev.path.to_str().unwrap()];

    for typed in ["\n", "y\n", "sda\n"] {
        let (code, screen) = on_a_terminal(&args, typed);
        assert_eq!(code, 2, "typed {typed:?}: {screen}");
        assert!(screen.contains("not confirmed"), "{screen}");
        assert_same(&dev.read(0, 8 * MIB), &before, "declined: untouched");
    }

    let (code, screen) = on_a_terminal(&args, &format!("{name}\n"));
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains(&format!("Type '{name}' to continue")),
        "{screen}"
    );
    assert!(
        screen.contains("8.0 MiB"),
        "the prompt shows the size: {screen}"
    );
    assert!(
        screen.contains("EVERYTHING ON THE TARGET WILL BE OVERWRITTEN"),
        "{screen}"
    );
    assert_same(&dev.read(0, img.len()), &img, "confirmed: flashed");
}
