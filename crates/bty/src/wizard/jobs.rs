//! The wizard's work outside the key handler: loading image lists and opening images on
//! background threads (so the screen never freezes on a slow catalog), scanning disks, opening
//! the target exclusively, and the flash thread whose progress streams back as updates.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use bty_disk::classify;
use bty_image::flash::preflight;
use bty_image::{CancelToken, FlashOptions, Progress, Target, ZeroMode, flash, inspect};
use bty_source::HttpClient;
use bty_source::folder::{self, image_root};
use bty_source::resolve::{ResolveOptions, resolve_entry};

use super::app::{App, Effect, Outcome, Prepared, Update};
use crate::cmd_disks::system_root;

/// Runs effects; background results come back on `tx`.
pub struct Jobs {
    pub tx: Sender<Update>,
    pub client: HttpClient,
    pub resolve: ResolveOptions,
}

impl Jobs {
    /// Carry out `effects` (and any effects they lead to).
    pub fn run(&self, app: &mut App, effects: Vec<Effect>) {
        let mut todo = effects;
        while !todo.is_empty() {
            let mut next = Vec::new();
            for e in todo {
                next.extend(self.one(app, e));
            }
            todo = next;
        }
    }

    fn one(&self, app: &mut App, effect: Effect) -> Vec<Effect> {
        match effect {
            Effect::LoadImages => {
                self.load_images(app);
                Vec::new()
            }
            Effect::Prepare => {
                self.prepare(app);
                Vec::new()
            }
            Effect::ScanDisks => {
                let root = system_root();
                let size = app.prepared.as_ref().and_then(|p| p.info.output_size);
                app.set_disks(classify(&root, root.disks(), size));
                Vec::new()
            }
            Effect::OpenTarget => {
                self.open_target(app);
                Vec::new()
            }
            Effect::StartFlash => {
                self.start_flash(app);
                Vec::new()
            }
            Effect::Reboot => {
                app.quit = true;
                app.reboot_requested = true;
                Vec::new()
            }
        }
    }

    fn load_images(&self, app: &App) {
        let tx = self.tx.clone();
        let client = self.client.clone();
        let generation = app.images_generation;
        let catalog = app.catalog.clone();
        std::thread::spawn(move || {
            let local = folder::scan(&image_root(), &client)
                .map(|c| c.entries)
                .map_err(|e| e.to_string());
            let catalog = catalog.map(|c| {
                bty_source::catalog::load(&c, &client)
                    .map(|c| c.entries)
                    .map_err(|e| e.to_string())
            });
            let _ = tx.send(Update::Images {
                generation,
                local,
                catalog,
            });
        });
    }

    fn prepare(&self, app: &App) {
        let Some(entry) = app.chosen.clone() else {
            return;
        };
        let tx = self.tx.clone();
        let client = self.client.clone();
        let opts = self.resolve.clone();
        let generation = app.prepare_generation;
        std::thread::spawn(move || {
            let result = resolve_entry(&entry, &client, &opts)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    let info =
                        inspect(r.source.as_ref()).map_err(|e| format!("{}: {e}", entry.name))?;
                    Ok(Box::new(Prepared {
                        entry,
                        source: r.source,
                        info,
                        expected_sha256: r.expected_sha256,
                    }))
                });
            let _ = tx.send(Update::Prepared { generation, result });
        });
    }

    fn open_target(&self, app: &mut App) {
        let Some(disk) = app.disks.get(app.disk_cursor).cloned() else {
            return;
        };
        if !disk.writable() {
            app.target_refused(format!(
                "{} cannot be written: {}",
                disk.disk.path.display(),
                disk.unsafe_reasons.join("; ")
            ));
            return;
        }
        let Some(p) = &app.prepared else {
            return;
        };
        let target = match Target::open(&disk.disk.path) {
            Ok(t) => t,
            Err(e) => {
                app.target_refused(format!("cannot use {}: {e}", disk.disk.path.display()));
                return;
            }
        };
        if let Err(e) = preflight(p.source.as_ref(), &p.info, &target) {
            target.abandon();
            app.target_refused(e.to_string());
            return;
        }
        app.target_opened(target, disk);
    }

    fn start_flash(&self, app: &mut App) {
        let (Some(target), Some(p)) = (app.target.take(), &app.prepared) else {
            return;
        };
        let source = Arc::clone(&p.source);
        let info = p.info.clone();
        let image = p.entry.name.clone();
        let opts = FlashOptions {
            expected_sha256: p.expected_sha256,
            verify: app.verify,
            zeroes: ZeroMode::Auto,
            ..FlashOptions::default()
        };
        let cancel = CancelToken::new();
        app.flash_started(cancel.clone());
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let progress_tx = tx.clone();
            let sink = move |p: &Progress| {
                let _ = progress_tx.send(Update::Progress(p.clone()));
            };
            let result = flash(&source, &info, &target, &opts, &sink, &cancel);
            let target_name = target.path().display().to_string();
            if result.as_ref().is_err_and(|e| !e.write_began) {
                target.abandon();
            } else {
                drop(target);
            }
            let _ = tx.send(Update::Finished(Outcome {
                image,
                target: target_name,
                result,
            }));
        });
    }
}
