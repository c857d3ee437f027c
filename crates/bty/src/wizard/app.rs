//! The wizard's state and what each key does. Pure: keys and background results go in, state
//! changes and [`Effect`]s (work for the event loop) come out, so every screen can be driven
//! and rendered in tests without a terminal.

use std::sync::Arc;

use bty_disk::{Classified, Transport};
use bty_image::digest::Sha256Digest;
use bty_image::{CancelToken, FlashError, FlashReport, ImageInfo, ImageSource, Progress, Target};
use bty_source::catalog::CatalogEntry;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The screens, in the order the operator meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Source,
    Images,
    Preparing,
    Disks,
    Confirm,
    Flashing,
    Done,
}

/// The entries of the source screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceChoice {
    Local,
    Default,
    Custom,
    Server,
}

pub const SOURCE_CHOICES: [SourceChoice; 4] = [
    SourceChoice::Local,
    SourceChoice::Default,
    SourceChoice::Custom,
    SourceChoice::Server,
];

/// Work the event loop does for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Scan the image folder and load the active catalog (in the background).
    LoadImages,
    /// Resolve and inspect the chosen image (in the background).
    Prepare,
    /// Discover and classify the disks.
    ScanDisks,
    /// Open the disk under the cursor exclusively and run the pre-flight checks.
    OpenTarget,
    /// Start writing.
    StartFlash,
    Reboot,
}

/// An image resolved and inspected, ready to be written.
pub struct Prepared {
    pub entry: CatalogEntry,
    pub source: Arc<dyn ImageSource>,
    pub info: ImageInfo,
    pub expected_sha256: Option<Sha256Digest>,
}

/// How a flash ended.
pub struct Outcome {
    pub image: String,
    pub target: String,
    pub result: Result<FlashReport, FlashError>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Results of background work.
pub enum Update {
    Images {
        generation: u64,
        local: Result<Vec<CatalogEntry>, String>,
        catalog: Option<Result<Vec<CatalogEntry>, String>>,
    },
    Prepared {
        generation: u64,
        result: Result<Box<Prepared>, String>,
    },
    Progress(Progress),
    Finished(Outcome),
}

/// A one-line text field.
#[derive(Debug, Default, Clone)]
pub struct TextInput {
    pub text: String,
}

impl TextInput {
    /// Apply an editing key; true when the key was consumed.
    fn edit(&mut self, key: &KeyEvent) -> bool {
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                true
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if self.text.chars().count() < 512 {
                    self.text.push(c);
                }
                true
            }
            KeyCode::Backspace => {
                self.text.pop();
                true
            }
            _ => false,
        }
    }
}

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub version: String,
    pub image_root: String,
    pub default_catalog: String,
    pub show_all_disks: bool,
    /// Whether this looks like a live or netboot environment (the done screen then offers
    /// reboot first).
    pub live: bool,
}

pub struct App {
    pub settings: Settings,
    pub screen: Screen,
    pub help: bool,
    pub quit: bool,
    /// The operator chose to reboot (done after the terminal is restored).
    pub reboot_requested: bool,
    /// Quit once the running flash has ended (an interrupt from outside arrived).
    pub quit_after_flash: bool,
    /// A message for the operator on the status line (errors in red).
    pub status: Option<(String, bool)>,

    pub source_cursor: usize,
    /// Editing a custom catalog or server address.
    pub source_input: Option<(SourceChoice, TextInput)>,
    /// The active catalog (path, URL or oras://); `None`: the image folder only.
    pub catalog: Option<String>,

    pub images_loading: bool,
    pub images_generation: u64,
    pub local_images: Vec<CatalogEntry>,
    pub local_error: Option<String>,
    pub catalog_images: Vec<CatalogEntry>,
    pub catalog_error: Option<String>,
    pub filter: TextInput,
    pub filtering: bool,
    pub image_cursor: usize,

    pub chosen: Option<CatalogEntry>,
    pub prepare_generation: u64,
    pub prepared: Option<Prepared>,

    pub disks: Vec<Classified>,
    pub disk_cursor: usize,
    pub show_all_disks: bool,

    pub target: Option<Target>,
    pub target_disk: Option<Classified>,
    pub confirm_input: TextInput,
    pub verify: bool,

    pub progress: Option<Progress>,
    pub cancel: CancelToken,
    pub asking_cancel: bool,
    pub cancelling: bool,

    pub outcome: Option<Outcome>,
    pub done_cursor: usize,
}

/// The choices of the done screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneChoice {
    Reboot,
    Another,
    Quit,
}

pub const DONE_CHOICES: [DoneChoice; 3] =
    [DoneChoice::Reboot, DoneChoice::Another, DoneChoice::Quit];

fn is_ctrl_c(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}

fn is_up(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Up | KeyCode::Char('k'))
}

fn is_down(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Down | KeyCode::Char('j'))
}

/// `server` as a catalog URL: a bare host gets `http://`, then `/catalog.toml`.
pub fn server_catalog(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    let base = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    format!("{base}/catalog.toml")
}

impl App {
    pub fn new(settings: Settings) -> App {
        let show_all_disks = settings.show_all_disks;
        App {
            settings,
            screen: Screen::Source,
            help: false,
            quit: false,
            reboot_requested: false,
            quit_after_flash: false,
            status: None,
            source_cursor: 0,
            source_input: None,
            catalog: None,
            images_loading: false,
            images_generation: 0,
            local_images: Vec::new(),
            local_error: None,
            catalog_images: Vec::new(),
            catalog_error: None,
            filter: TextInput::default(),
            filtering: false,
            image_cursor: 0,
            chosen: None,
            prepare_generation: 0,
            prepared: None,
            disks: Vec::new(),
            disk_cursor: 0,
            show_all_disks,
            target: None,
            target_disk: None,
            confirm_input: TextInput::default(),
            verify: true,
            progress: None,
            cancel: CancelToken::new(),
            asking_cancel: false,
            cancelling: false,
            outcome: None,
            done_cursor: 0,
        }
    }

    /// Start at the image list with `catalog` active (`bty --catalog`).
    pub fn start_with_catalog(&mut self, catalog: Option<String>) -> Vec<Effect> {
        self.catalog = catalog;
        self.enter_images()
    }

    fn error(&mut self, msg: impl Into<String>) {
        self.status = Some((msg.into(), true));
    }

    fn info(&mut self, msg: impl Into<String>) {
        self.status = Some((msg.into(), false));
    }

    fn enter_images(&mut self) -> Vec<Effect> {
        self.screen = Screen::Images;
        self.images_loading = true;
        self.images_generation += 1;
        self.image_cursor = 0;
        vec![Effect::LoadImages]
    }

    /// Images in display order: the image folder's first, then the catalog's (entries the
    /// folder already has are left out, and archives such as netboot bundles, which cannot be
    /// flashed), filtered.
    pub fn visible_images(&self) -> Vec<&CatalogEntry> {
        let f = self.filter.text.to_lowercase();
        let local_srcs: std::collections::HashSet<&str> = self
            .local_images
            .iter()
            .map(|e| e.image_ref.as_str())
            .collect();
        self.local_images
            .iter()
            .chain(
                self.catalog_images
                    .iter()
                    .filter(|e| !local_srcs.contains(e.image_ref.as_str()))
                    .filter(|e| bty_proto::catalog::unflashable(e.format.as_deref()).is_none()),
            )
            .filter(|e| {
                f.is_empty()
                    || e.name.to_lowercase().contains(&f)
                    || e.description
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(&f))
                    || e.format
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().contains(&f))
            })
            .collect()
    }

    /// Indexes of the disks the cursor may rest on (writable ones).
    pub fn selectable_disks(&self) -> Vec<usize> {
        self.disks
            .iter()
            .enumerate()
            .filter(|(_, d)| d.writable())
            .map(|(i, _)| i)
            .collect()
    }

    /// The disks listed on the disk screen.
    pub fn set_disks(&mut self, disks: Vec<Classified>) {
        let keep = self
            .disks
            .get(self.disk_cursor)
            .map(|d| d.disk.path.clone());
        self.disks = disks
            .into_iter()
            .filter(|d| self.show_all_disks || d.hidden.is_none())
            // Unattached loop devices are slots, not disks.
            .filter(|d| !(d.disk.transport == Transport::Loop && d.disk.size_bytes == 0))
            .collect();
        let selectable = self.selectable_disks();
        self.disk_cursor = keep
            .and_then(|p| {
                selectable
                    .iter()
                    .copied()
                    .find(|&i| self.disks[i].disk.path == p)
            })
            .or_else(|| selectable.first().copied())
            .unwrap_or(0);
    }

    /// The target was opened and passed the checks: ask for the typed confirmation.
    pub fn target_opened(&mut self, target: Target, disk: Classified) {
        self.target = Some(target);
        self.target_disk = Some(disk);
        self.confirm_input = TextInput::default();
        self.status = None;
        self.screen = Screen::Confirm;
    }

    pub fn target_refused(&mut self, why: String) {
        self.error(why);
    }

    /// What the operator must type to confirm: the disk's kernel name.
    pub fn confirm_word(&self) -> String {
        self.target_disk
            .as_ref()
            .map(|d| d.disk.name.clone())
            .unwrap_or_default()
    }

    /// Writing started; the flash thread owns the target now.
    pub fn flash_started(&mut self, cancel: CancelToken) {
        self.cancel = cancel;
        self.progress = None;
        self.asking_cancel = false;
        self.cancelling = false;
        self.screen = Screen::Flashing;
        self.status = None;
    }

    /// A background result arrived.
    pub fn apply(&mut self, update: Update) -> Vec<Effect> {
        match update {
            Update::Images {
                generation,
                local,
                catalog,
            } => {
                if generation != self.images_generation {
                    return Vec::new();
                }
                self.images_loading = false;
                match local {
                    Ok(l) => {
                        self.local_images = l;
                        self.local_error = None;
                    }
                    Err(e) => {
                        self.local_images.clear();
                        self.local_error = Some(e);
                    }
                }
                match catalog {
                    None => {
                        self.catalog_images.clear();
                        self.catalog_error = None;
                    }
                    Some(Ok(c)) => {
                        self.catalog_images = c;
                        self.catalog_error = None;
                    }
                    Some(Err(e)) => {
                        self.catalog_images.clear();
                        self.catalog_error = Some(e);
                    }
                }
                let n = self.visible_images().len();
                if self.image_cursor >= n {
                    self.image_cursor = n.saturating_sub(1);
                }
                Vec::new()
            }
            Update::Prepared { generation, result } => {
                if generation != self.prepare_generation || self.screen != Screen::Preparing {
                    return Vec::new();
                }
                match result {
                    Ok(p) => {
                        self.prepared = Some(*p);
                        self.status = None;
                        self.screen = Screen::Disks;
                        vec![Effect::ScanDisks]
                    }
                    Err(e) => {
                        self.screen = Screen::Images;
                        self.error(e);
                        Vec::new()
                    }
                }
            }
            Update::Progress(p) => {
                self.progress = Some(p);
                Vec::new()
            }
            Update::Finished(outcome) => {
                self.asking_cancel = false;
                self.done_cursor = if outcome.ok() && self.settings.live {
                    0
                } else if outcome.ok() {
                    2
                } else {
                    1
                };
                self.outcome = Some(outcome);
                self.screen = Screen::Done;
                self.quit = self.quit_after_flash;
                Vec::new()
            }
        }
    }

    /// A key was pressed.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if self.screen == Screen::Flashing {
            return self.key_flashing(&key);
        }
        if self.help {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
            ) || key.code == KeyCode::Enter
            {
                self.help = false;
            }
            if is_ctrl_c(&key) {
                self.quit = true;
            }
            return Vec::new();
        }
        if is_ctrl_c(&key) {
            self.quit = true;
            return Vec::new();
        }
        let typing = self.source_input.is_some()
            || (self.screen == Screen::Images && self.filtering)
            || self.screen == Screen::Confirm;
        if !typing {
            match key.code {
                KeyCode::Char('?') => {
                    self.help = true;
                    return Vec::new();
                }
                KeyCode::Char('q') => {
                    self.quit = true;
                    return Vec::new();
                }
                _ => {}
            }
        }
        match self.screen {
            Screen::Source => self.key_source(&key),
            Screen::Images => self.key_images(&key),
            Screen::Preparing => {
                if key.code == KeyCode::Esc {
                    self.prepare_generation += 1;
                    self.screen = Screen::Images;
                    self.info("stopped opening the image");
                }
                Vec::new()
            }
            Screen::Disks => self.key_disks(&key),
            Screen::Confirm => self.key_confirm(&key),
            Screen::Flashing => Vec::new(),
            Screen::Done => self.key_done(&key),
        }
    }

    fn key_source(&mut self, key: &KeyEvent) -> Vec<Effect> {
        if let Some((choice, input)) = &mut self.source_input {
            let choice = *choice;
            if input.edit(key) {
                return Vec::new();
            }
            match key.code {
                KeyCode::Esc => self.source_input = None,
                KeyCode::Enter => {
                    let text = input.text.trim().to_string();
                    if text.is_empty() {
                        self.error("type a catalog location, or Esc to go back");
                        return Vec::new();
                    }
                    self.source_input = None;
                    self.status = None;
                    self.catalog = Some(match choice {
                        SourceChoice::Server => server_catalog(&text),
                        _ => text,
                    });
                    return self.enter_images();
                }
                _ => {}
            }
            return Vec::new();
        }
        let n = SOURCE_CHOICES.len();
        if is_up(key) {
            self.source_cursor = (self.source_cursor + n - 1) % n;
        } else if is_down(key) {
            self.source_cursor = (self.source_cursor + 1) % n;
        } else if key.code == KeyCode::Enter {
            self.status = None;
            match SOURCE_CHOICES[self.source_cursor] {
                SourceChoice::Local => {
                    self.catalog = None;
                    return self.enter_images();
                }
                SourceChoice::Default => {
                    self.catalog = Some(self.settings.default_catalog.clone());
                    return self.enter_images();
                }
                c @ (SourceChoice::Custom | SourceChoice::Server) => {
                    let mut input = TextInput::default();
                    if c == SourceChoice::Custom
                        && let Some(cur) = &self.catalog
                    {
                        input.text = cur.clone();
                    }
                    self.source_input = Some((c, input));
                }
            }
        }
        Vec::new()
    }

    fn key_images(&mut self, key: &KeyEvent) -> Vec<Effect> {
        if self.filtering {
            if self.filter.edit(key) {
                self.image_cursor = 0;
                return Vec::new();
            }
            match key.code {
                KeyCode::Esc => {
                    self.filter = TextInput::default();
                    self.filtering = false;
                }
                KeyCode::Enter | KeyCode::Down | KeyCode::Up | KeyCode::Tab => {
                    self.filtering = false;
                    if key.code == KeyCode::Enter {
                        return self.pick_image();
                    }
                }
                _ => {}
            }
            return Vec::new();
        }
        let n = self.visible_images().len();
        if is_up(key) {
            self.image_cursor = self.image_cursor.saturating_sub(1);
        } else if is_down(key) {
            if self.image_cursor + 1 < n {
                self.image_cursor += 1;
            }
        } else {
            match key.code {
                KeyCode::PageUp => self.image_cursor = self.image_cursor.saturating_sub(10),
                KeyCode::PageDown => {
                    self.image_cursor = (self.image_cursor + 10).min(n.saturating_sub(1))
                }
                KeyCode::Home | KeyCode::Char('g') => self.image_cursor = 0,
                KeyCode::End | KeyCode::Char('G') => self.image_cursor = n.saturating_sub(1),
                KeyCode::Char('/') => self.filtering = true,
                KeyCode::Char('r') => {
                    self.status = None;
                    return self.enter_images();
                }
                KeyCode::Esc => {
                    if !self.filter.text.is_empty() {
                        self.filter = TextInput::default();
                        self.image_cursor = 0;
                    } else {
                        self.status = None;
                        self.screen = Screen::Source;
                    }
                }
                KeyCode::Enter => return self.pick_image(),
                _ => {}
            }
        }
        Vec::new()
    }

    fn pick_image(&mut self) -> Vec<Effect> {
        let Some(entry) = self
            .visible_images()
            .get(self.image_cursor)
            .map(|e| (*e).clone())
        else {
            self.error("no image to pick");
            return Vec::new();
        };
        self.chosen = Some(entry);
        self.prepare()
    }

    fn prepare(&mut self) -> Vec<Effect> {
        self.prepared = None;
        self.prepare_generation += 1;
        self.screen = Screen::Preparing;
        self.status = None;
        vec![Effect::Prepare]
    }

    fn key_disks(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let selectable = self.selectable_disks();
        let pos = selectable.iter().position(|&i| i == self.disk_cursor);
        if is_up(key) {
            if let Some(p) = pos
                && p > 0
            {
                self.disk_cursor = selectable[p - 1];
            }
        } else if is_down(key) {
            match pos {
                Some(p) if p + 1 < selectable.len() => self.disk_cursor = selectable[p + 1],
                None => {
                    if let Some(&f) = selectable.first() {
                        self.disk_cursor = f;
                    }
                }
                _ => {}
            }
        } else {
            match key.code {
                KeyCode::Char('a') => {
                    self.show_all_disks = !self.show_all_disks;
                    self.info(if self.show_all_disks {
                        "showing every disk, loop devices and other hidden kinds included"
                    } else {
                        "hiding loop, zram, optical and other special devices"
                    });
                    return vec![Effect::ScanDisks];
                }
                KeyCode::Char('r') => {
                    self.status = None;
                    return vec![Effect::ScanDisks];
                }
                KeyCode::Esc => {
                    self.status = None;
                    self.screen = Screen::Images;
                }
                KeyCode::Enter => {
                    if pos.is_some() {
                        self.status = None;
                        return vec![Effect::OpenTarget];
                    }
                    self.error("no disk can be written: each one listed says why");
                }
                _ => {}
            }
        }
        Vec::new()
    }

    fn key_confirm(&mut self, key: &KeyEvent) -> Vec<Effect> {
        match key.code {
            KeyCode::Esc => {
                // Dropping the target closes it and releases the exclusive hold.
                self.target = None;
                self.target_disk = None;
                self.status = None;
                self.screen = Screen::Disks;
                return vec![Effect::ScanDisks];
            }
            KeyCode::Tab => {
                self.verify = !self.verify;
                return Vec::new();
            }
            KeyCode::Enter => {
                let word = self.confirm_word();
                let typed = self.confirm_input.text.trim();
                let full = format!("/dev/{word}");
                if !word.is_empty() && (typed == word || typed == full) {
                    self.status = None;
                    return vec![Effect::StartFlash];
                }
                if typed.is_empty() {
                    self.error(format!(
                        "type {word} and press Enter to write; Esc goes back"
                    ));
                } else {
                    self.error(format!("{typed:?} is not {word}; nothing was written"));
                }
                return Vec::new();
            }
            _ => {}
        }
        self.confirm_input.edit(key);
        Vec::new()
    }

    fn key_flashing(&mut self, key: &KeyEvent) -> Vec<Effect> {
        if self.cancelling {
            return Vec::new();
        }
        if self.asking_cancel {
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.asking_cancel = false;
                    self.cancelling = true;
                    self.cancel.cancel();
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Enter => {
                    self.asking_cancel = false;
                }
                _ => {}
            }
            return Vec::new();
        }
        if is_ctrl_c(key) || matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
            self.asking_cancel = true;
        }
        Vec::new()
    }

    /// An interrupt from outside (SIGINT/SIGTERM): cancel a running flash, else quit.
    pub fn interrupted(&mut self) {
        if self.screen == Screen::Flashing {
            self.asking_cancel = false;
            self.cancelling = true;
            self.quit_after_flash = true;
            self.cancel.cancel();
        } else {
            self.quit = true;
        }
    }

    fn key_done(&mut self, key: &KeyEvent) -> Vec<Effect> {
        let n = DONE_CHOICES.len();
        let choice = if is_up(key) {
            self.done_cursor = (self.done_cursor + n - 1) % n;
            None
        } else if is_down(key) {
            self.done_cursor = (self.done_cursor + 1) % n;
            None
        } else {
            match key.code {
                KeyCode::Enter => Some(DONE_CHOICES[self.done_cursor]),
                KeyCode::Char('r') => Some(DoneChoice::Reboot),
                KeyCode::Char('a') => Some(DoneChoice::Another),
                _ => None,
            }
        };
        match choice {
            Some(DoneChoice::Reboot) => vec![Effect::Reboot],
            Some(DoneChoice::Another) => {
                self.target = None;
                self.target_disk = None;
                self.progress = None;
                self.prepare()
            }
            Some(DoneChoice::Quit) => {
                self.quit = true;
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn settings() -> Settings {
        Settings {
            version: "0.0.0".into(),
            image_root: "/var/lib/bty/images".into(),
            default_catalog: "https://example.test/catalog.toml".into(),
            show_all_disks: false,
            live: false,
        }
    }

    #[test]
    fn server_addresses_become_catalog_urls() {
        assert_eq!(
            server_catalog("bty-server"),
            "http://bty-server/catalog.toml"
        );
        assert_eq!(
            server_catalog(" https://lab:8443/ "),
            "https://lab:8443/catalog.toml"
        );
    }

    #[test]
    fn source_choices_lead_to_the_image_list() {
        let mut app = App::new(settings());
        assert_eq!(app.on_key(key(KeyCode::Down)), vec![]);
        assert_eq!(app.on_key(key(KeyCode::Enter)), vec![Effect::LoadImages]);
        assert_eq!(app.screen, Screen::Images);
        assert_eq!(
            app.catalog.as_deref(),
            Some("https://example.test/catalog.toml")
        );
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.screen, Screen::Source);
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Enter));
        for c in "lab:8080".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        // Typing 'q' into the address does not quit.
        assert!(!app.quit);
        assert_eq!(app.on_key(key(KeyCode::Enter)), vec![Effect::LoadImages]);
        assert_eq!(app.catalog.as_deref(), Some("http://lab:8080/catalog.toml"));
    }

    #[test]
    fn enter_alone_never_confirms() {
        let mut app = App::new(settings());
        app.screen = Screen::Confirm;
        app.target_disk = None;
        assert_eq!(app.on_key(key(KeyCode::Enter)), vec![]);
        assert!(app.status.as_ref().is_some_and(|(_, err)| *err));
    }

    #[test]
    fn cancelling_asks_first() {
        let mut app = App::new(settings());
        app.flash_started(CancelToken::new());
        app.on_key(key(KeyCode::Esc));
        assert!(app.asking_cancel && !app.cancel.is_cancelled());
        app.on_key(key(KeyCode::Char('n')));
        assert!(!app.asking_cancel && !app.cancel.is_cancelled());
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        app.on_key(key(KeyCode::Char('y')));
        assert!(app.cancel.is_cancelled() && app.cancelling);
        // q during a flash never quits.
        assert!(!app.quit);
    }

    #[test]
    fn stale_background_results_are_ignored() {
        let mut app = App::new(settings());
        app.start_with_catalog(None);
        let g = app.images_generation;
        app.on_key(key(KeyCode::Char('r')));
        app.apply(Update::Images {
            generation: g,
            local: Err("old".into()),
            catalog: None,
        });
        assert!(app.images_loading && app.local_error.is_none());
    }
}
