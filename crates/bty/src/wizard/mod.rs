//! The terminal wizard (`bty` with no command): source → image → disk → typed confirmation →
//! flash with live progress → done. ratatui on crossterm; the state machine in [`app`] is pure
//! and rendered by [`view`], so tests drive it and snapshot each screen without a terminal.

pub mod app;
mod jobs;
pub mod screens;

pub mod theme;
pub mod view;

#[cfg(test)]
mod render_tests;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use bty_source::HttpClient;
use bty_source::folder::image_root;
use bty_source::resolve::ResolveOptions;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};

use self::app::{App, Settings, Update, server_catalog};
use self::jobs::Jobs;
use self::theme::Theme;
use crate::exit;

/// The catalog offered as "default" (upstream's), unless `BTY_DEFAULT_CATALOG` names another.
pub const DEFAULT_CATALOG: &str =
    "https://github.com/safl/nosi/releases/latest/download/catalog.toml";

/// How the wizard was started.
#[derive(Debug, Default)]
pub struct WizardArgs {
    pub catalog: Option<String>,
    pub server: Option<String>,
    pub all_disks: bool,
    pub insecure_registries: Vec<String>,
}

pub fn default_catalog() -> String {
    std::env::var("BTY_DEFAULT_CATALOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_CATALOG.to_string())
}

pub fn run(args: WizardArgs) -> u8 {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!(
            "bty: the wizard needs a terminal; for scripts use `bty flash SOURCE TARGET` (see `bty --help`)"
        );
        return exit::REFUSED;
    }
    let settings = Settings {
        version: env!("CARGO_PKG_VERSION").to_string(),
        image_root: image_root().display().to_string(),
        default_catalog: default_catalog(),
        show_all_disks: args.all_disks,
        live: crate::system::live_environment(),
    };
    let (tx, rx) = channel();
    let jobs = Jobs {
        tx,
        client: HttpClient::default(),
        resolve: ResolveOptions {
            platform: None,
            insecure_registries: args.insecure_registries.clone(),
        },
    };
    let mut app = App::new(settings);
    let start = match (&args.catalog, &args.server) {
        (Some(c), _) => app.start_with_catalog(Some(c.clone())),
        (None, Some(s)) => app.start_with_catalog(Some(server_catalog(s))),
        (None, None) => Vec::new(),
    };
    jobs.run(&mut app, start);

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        tracing::warn!("cannot install the interrupt handler: {e}");
    }
    let theme = Theme::from_env();
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bty: cannot set up the terminal: {e}");
            return exit::REFUSED;
        }
    };
    let result = event_loop(&mut terminal, &mut app, &jobs, &rx, &interrupted, &theme);
    ratatui::restore();
    if let Err(e) = result {
        eprintln!("bty: terminal error: {e}");
        return exit::FAILED_AFTER_WRITE;
    }
    let code = summary(&app);
    if app.reboot_requested {
        eprintln!("bty: rebooting now ...");
        if let Err(e) = crate::system::reboot() {
            eprintln!("bty: reboot failed: {e}");
        }
    }
    code
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    jobs: &Jobs,
    rx: &Receiver<Update>,
    interrupted: &AtomicBool,
    theme: &Theme,
) -> std::io::Result<()> {
    loop {
        terminal.draw(|f| view::draw(f, app, theme))?;
        if app.quit {
            return Ok(());
        }
        if interrupted.swap(false, Ordering::SeqCst) {
            app.interrupted();
            continue;
        }
        if event::poll(Duration::from_millis(100))?
            && let Event::Key(k) = event::read()?
            && k.kind == KeyEventKind::Press
        {
            let effects = app.on_key(k);
            jobs.run(app, effects);
        }
        while let Ok(u) = rx.try_recv() {
            let effects = app.apply(u);
            jobs.run(app, effects);
        }
    }
}

/// After the terminal is restored: say how the last flash ended; its exit code.
fn summary(app: &App) -> u8 {
    let Some(o) = &app.outcome else {
        return exit::OK;
    };
    match &o.result {
        Ok(r) => {
            println!(
                "bty: wrote {} onto {}: {} bytes, digest {}:{}{}",
                o.image,
                o.target,
                r.image_bytes,
                r.image_digest_algorithm,
                r.image_digest,
                if r.verified { ", verified" } else { "" }
            );
            exit::OK
        }
        Err(e) => {
            // The error's message says what became of the disk (wiped, untouched, …).
            println!(
                "bty: flash of {} onto {} did not complete: {e}",
                o.image, o.target
            );
            if e.write_began {
                exit::FAILED_AFTER_WRITE
            } else {
                exit::REFUSED
            }
        }
    }
}
