//! Every wizard screen rendered at 80×24 into ratatui's TestBackend and compared with a
//! reviewed snapshot (`snapshots/`); plus checks that what colour shows is also in the text
//! and that unsafe disks are never under the cursor.

use std::path::PathBuf;
use std::sync::Arc;

use bty_disk::{SystemRoot, classify};
use bty_image::error::FlashFailure;
use bty_image::source::MemorySource;
use bty_image::target::TargetKind;
use bty_image::writer::WriteStats;
use bty_image::{CancelToken, FlashError, FlashReport, Progress, Stage, ZeroMode, inspect};
use bty_source::catalog::CatalogEntry;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Modifier;

use super::app::{App, Outcome, Prepared, Screen, Settings, Update};
use super::theme::Theme;
use super::view;

fn settings() -> Settings {
    Settings {
        version: "0.1.0".into(),
        image_root: "/var/lib/bty/images".into(),
        default_catalog: "https://github.com/safl/nosi/releases/latest/download/catalog.toml"
            .into(),
        show_all_disks: false,
        live: true,
    }
}

fn render(app: &App, theme: Theme) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    t.draw(|f| view::draw(f, app, &theme)).expect("draw");
    t
}

fn snap(app: &App) -> String {
    render(app, Theme { colour: false }).backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn entry(name: &str, src: &str, origin: &str, size: u64, desc: Option<&str>) -> CatalogEntry {
    CatalogEntry {
        name: name.into(),
        src: src.into(),
        sha256: src
            .starts_with("https")
            .then(|| "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
        format: Some(if name.ends_with("qcow2") {
            "qcow2".into()
        } else {
            "zstd → raw".into()
        }),
        size_bytes: Some(size),
        description: desc.map(str::to_string),
        arch: bty_source::catalog::guess_arch(name, src),
        cache: true,
        image_ref: format!("ref-{name}"),
        origin: origin.into(),
    }
}

fn with_images() -> App {
    let mut app = App::new(settings());
    app.start_with_catalog(Some("https://lab.example/catalog.toml".into()));
    app.apply(Update::Images {
        generation: app.images_generation,
        local: Ok(vec![entry(
            "debian-13-lab.img.zst",
            "file:///var/lib/bty/images/debian-13-lab.img.zst",
            "image folder /var/lib/bty/images",
            4 << 30,
            None,
        )]),
        catalog: Some(Ok(vec![
            entry(
                "ubuntu-24.04-server",
                "https://lab.example/img/ubuntu-24.04.img.zst",
                "https://lab.example/catalog.toml",
                8 << 30,
                Some("Ubuntu 24.04 LTS, cloud-init, serial console on ttyS0"),
            ),
            entry(
                "fedora-41.qcow2",
                "https://lab.example/img/fedora-41.qcow2",
                "https://lab.example/catalog.toml",
                20 << 30,
                Some("Fedora 41 Server"),
            ),
            // A netboot bundle beside the images (as nosi publishes): never offered.
            CatalogEntry {
                format: Some("tar.gz".into()),
                ..entry(
                    "ubuntu-24.04-netboot",
                    "https://lab.example/img/ubuntu-24.04-netboot.tar.gz",
                    "https://lab.example/catalog.toml",
                    1 << 30,
                    None,
                )
            },
        ])),
    });
    app
}

#[test]
fn archives_are_not_offered() {
    let app = with_images();
    let names: Vec<&str> = app
        .visible_images()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "debian-13-lab.img.zst",
            "ubuntu-24.04-server",
            "fedora-41.qcow2"
        ]
    );
}

fn fixture_disks(image_size: Option<u64>) -> Vec<bty_disk::Classified> {
    let root = SystemRoot::at(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bty-disk/tests/fixtures/workstation"),
    );
    classify(&root, root.disks(), image_size)
}

fn prepared() -> Prepared {
    let data = vec![0x5au8; 3 << 20];
    let source = Arc::new(MemorySource::new("debian-13-lab.img", data));
    let info = inspect(source.as_ref()).expect("inspect");
    Prepared {
        entry: entry(
            "debian-13-lab.img.zst",
            "file:///var/lib/bty/images/debian-13-lab.img.zst",
            "image folder /var/lib/bty/images",
            3 << 20,
            None,
        ),
        source,
        info,
        expected_sha256: None,
    }
}

/// The app on the disk screen with the fixture's disks.
fn at_disks(all: bool) -> App {
    let mut app = with_images();
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::Preparing);
    let g = app.prepare_generation;
    let effects = app.apply(Update::Prepared {
        generation: g,
        result: Ok(Box::new(prepared())),
    });
    assert_eq!(effects, vec![super::app::Effect::ScanDisks]);
    app.show_all_disks = all;
    app.set_disks(fixture_disks(Some(3 << 20)));
    app
}

fn at_confirm() -> App {
    let mut app = at_disks(false);
    let sdc = app
        .disks
        .iter()
        .find(|d| d.disk.name == "sdc")
        .cloned()
        .expect("sdc");
    app.screen = Screen::Confirm;
    app.target_disk = Some(sdc);
    app
}

fn progress(stage: Stage, written: u64, verified: u64) -> Progress {
    Progress {
        stage,
        bytes_read: written / 3,
        source_size: Some(1 << 30),
        bytes_written: written,
        total: Some(3 << 30),
        bytes_verified: verified,
        rate: 187.0 * 1048576.0,
        eta_secs: Some(6.5),
        elapsed_secs: 5.2,
    }
}

fn at_flashing() -> App {
    let mut app = at_confirm();
    app.flash_started(CancelToken::new());
    app.apply(Update::Progress(progress(Stage::Writing, 1 << 30, 0)));
    app
}

fn report() -> FlashReport {
    FlashReport {
        target: "/dev/sdc".into(),
        target_kind: TargetKind::BlockDevice,
        image_bytes: 3 << 30,
        source_bytes: 1 << 30,
        source_sha256: Some("ab".repeat(32)),
        image_digest: "4f".repeat(32),
        image_digest_algorithm: "sha256-tree-v1",
        zeroes: ZeroMode::Auto,
        stats: WriteStats {
            data_bytes: 2 << 30,
            zeroed_bytes: 1 << 30,
            skipped_bytes: 0,
        },
        verified: true,
        elapsed_secs: 17.5,
    }
}

#[test]
fn source_screen() {
    let mut app = App::new(settings());
    insta::assert_snapshot!("source", snap(&app));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Enter);
    for c in "oras://registry.lab:5000/images/catalog:latest".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    insta::assert_snapshot!("source_custom", snap(&app));
}

#[test]
fn image_screen() {
    let mut app = with_images();
    key(&mut app, KeyCode::Char('j'));
    insta::assert_snapshot!("images", snap(&app));
    key(&mut app, KeyCode::Char('/'));
    for c in "fedora".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    insta::assert_snapshot!("images_filtered", snap(&app));
    assert_eq!(app.visible_images().len(), 1);
}

#[test]
fn image_screen_with_a_failed_catalog_keeps_local_images() {
    let mut app = App::new(settings());
    app.start_with_catalog(Some("https://lab.example/catalog.toml".into()));
    insta::assert_snapshot!("images_loading", snap(&app));
    app.apply(Update::Images {
        generation: app.images_generation,
        local: Ok(vec![entry(
            "debian-13-lab.img.zst",
            "file:///var/lib/bty/images/debian-13-lab.img.zst",
            "image folder /var/lib/bty/images",
            4 << 30,
            None,
        )]),
        catalog: Some(Err(
            "http GET https://lab.example/catalog.toml: connection refused".into(),
        )),
    });
    insta::assert_snapshot!("images_catalog_failed", snap(&app));
    assert_eq!(app.visible_images().len(), 1);
}

#[test]
fn preparing_screen() {
    let mut app = with_images();
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("preparing", snap(&app));
}

#[test]
fn disk_screen_and_unsafe_disks() {
    let app = at_disks(false);
    insta::assert_snapshot!("disks", snap(&app));
    let all = at_disks(true);
    insta::assert_snapshot!("disks_all", snap(&all));
}

#[test]
fn the_cursor_never_rests_on_an_unsafe_disk() {
    let mut app = at_disks(true);
    let writable: Vec<String> = app
        .disks
        .iter()
        .filter(|d| d.writable())
        .map(|d| d.disk.name.clone())
        .collect();
    assert_eq!(writable, ["loop0", "mmcblk0", "sdc", "vda"]);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let d = &app.disks[app.disk_cursor];
        assert!(d.writable(), "cursor on unsafe {}", d.disk.name);
        if !seen.contains(&d.disk.name) {
            seen.push(d.disk.name.clone());
        }
        key(&mut app, KeyCode::Down);
    }
    assert_eq!(seen, writable);
    for _ in 0..20 {
        key(&mut app, KeyCode::Char('k'));
        assert!(app.disks[app.disk_cursor].writable());
    }
    // The mounted and root-holding disks are dimmed, and say why in words.
    let t = render(&at_disks(false), Theme { colour: true });
    let text = t.backend().to_string();
    assert!(text.contains("not writable: sda1 is mounted at /mnt/my data"));
    let buf = t.backend().buffer();
    let row = (0..buf.area.height)
        .find(|&y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .contains("/dev/sda ")
        })
        .expect("sda row");
    assert!(buf[(3, row)].modifier.contains(Modifier::DIM));
}

#[test]
fn confirm_screen() {
    let mut app = at_confirm();
    for c in "sdb".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::Confirm, "a wrong name must not confirm");
    insta::assert_snapshot!("confirm_wrong_name", snap(&app));
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Char('c'));
    key(&mut app, KeyCode::Tab);
    insta::assert_snapshot!("confirm_typed", snap(&app));
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        vec![super::app::Effect::StartFlash]
    );
    assert!(!app.verify);
}

#[test]
fn flash_screen() {
    let mut app = at_flashing();
    insta::assert_snapshot!("flashing", snap(&app));
    app.apply(Update::Progress(progress(
        Stage::Verifying,
        3 << 30,
        2 << 30,
    )));
    insta::assert_snapshot!("verifying", snap(&app));
    key(&mut app, KeyCode::Esc);
    insta::assert_snapshot!("cancel_asked", snap(&app));
}

#[test]
fn done_screens() {
    let mut app = at_flashing();
    app.apply(Update::Finished(Outcome {
        image: "debian-13-lab.img.zst".into(),
        target: "/dev/sdc".into(),
        result: Ok(report()),
    }));
    insta::assert_snapshot!("done", snap(&app));
    let mut app = at_flashing();
    app.apply(Update::Finished(Outcome {
        image: "debian-13-lab.img.zst".into(),
        target: "/dev/sdc".into(),
        result: Err(FlashError {
            failure: FlashFailure::Cancelled,
            write_began: true,
            wipe: Some(Ok(())),
        }),
    }));
    insta::assert_snapshot!("done_cancelled", snap(&app));
}

#[test]
fn help_overlay() {
    let mut app = with_images();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help", snap(&app));
    key(&mut app, KeyCode::Esc);
    assert!(!app.help);
}

#[test]
fn without_colour_the_cursor_is_reverse_video() {
    let app = with_images();
    let t = render(&app, Theme { colour: false });
    let buf = t.backend().buffer();
    let mut saw_reversed = false;
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            assert_eq!(c.fg, ratatui::style::Color::Reset, "colour at {x},{y}");
            assert_eq!(c.bg, ratatui::style::Color::Reset, "colour at {x},{y}");
            saw_reversed |= c.modifier.contains(Modifier::REVERSED);
        }
    }
    assert!(saw_reversed);
}
