//! The body of each wizard screen.

use bty_disk::Classified;
use bty_image::{Progress, Stage};
use bty_source::catalog::CatalogEntry;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Wrap};

use super::app::{App, DONE_CHOICES, DoneChoice, SOURCE_CHOICES, Screen, SourceChoice};
use super::theme::Theme;
use crate::units;

pub fn draw_body(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    match app.screen {
        Screen::Source => source(f, area, app, theme),
        Screen::Images => images(f, area, app, theme),
        Screen::Preparing => preparing(f, area, app, theme),
        Screen::Disks => disks(f, area, app, theme),
        Screen::Confirm => confirm(f, area, app, theme),
        Screen::Flashing => flashing(f, area, app, theme),
        Screen::Done => done(f, area, app, theme),
    }
}

/// `s` cut to `n` characters, with `~` marking the cut (the Linux console may lack `…`).
pub fn fit(s: &str, n: usize) -> String {
    units::fit(s, n, '~')
}

fn cursor(on: bool) -> &'static str {
    if on { "> " } else { "  " }
}

/// The first line to show so that line `at` (of `total`) is visible in `height` lines.
fn scroll(at: usize, height: usize) -> usize {
    if height == 0 || at < height {
        0
    } else {
        at + 1 - height
    }
}

fn source(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut lines = vec![Line::from("")];
    for (i, c) in SOURCE_CHOICES.iter().enumerate() {
        let (name, detail) = match c {
            SourceChoice::Local => ("Image folder only", app.settings.image_root.clone()),
            SourceChoice::Default => ("Default catalog", app.settings.default_catalog.clone()),
            SourceChoice::Custom => (
                "Other catalog...",
                "a path, an http(s):// URL or an oras:// reference".into(),
            ),
            SourceChoice::Server => ("bty-web server...", "its address, host[:port]".into()),
        };
        let on = i == app.source_cursor;
        let width = area.width.saturating_sub(24) as usize;
        let row = format!("{}{name:20}", cursor(on));
        if on {
            lines.push(Line::from(vec![
                Span::styled(row, theme.selected()),
                Span::raw(" "),
                Span::raw(fit(&detail, width)),
            ]));
        } else {
            lines.push(Line::from(vec![
                Span::raw(row),
                Span::raw(" "),
                Span::styled(fit(&detail, width), theme.muted()),
            ]));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "  Images in the folder are always listed first, whatever the catalog.",
        theme.muted(),
    )));
    if let Some((choice, input)) = &app.source_input {
        let label = match choice {
            SourceChoice::Server => "  Server: ",
            _ => "  Catalog: ",
        };
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::styled(label, theme.accent()),
            Span::raw(input.text.clone()),
            Span::styled("_", theme.accent()),
        ]));
    }
    f.render_widget(Paragraph::new(lines), area);
}

/// Where an entry comes from, in a few characters.
fn origin(e: &CatalogEntry) -> String {
    if e.origin.starts_with("image folder") {
        return "local".into();
    }
    let o = e.origin.as_str();
    for scheme in ["https://", "http://", "oras://"] {
        if let Some(rest) = o.strip_prefix(scheme) {
            return rest.split('/').next().unwrap_or(rest).to_string();
        }
    }
    "catalog".into()
}

fn images(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut notes: Vec<Line> = Vec::new();
    if app.filtering || !app.filter.text.is_empty() {
        let mut spans = vec![
            Span::styled(" Filter: ", theme.accent()),
            Span::raw(app.filter.text.clone()),
        ];
        if app.filtering {
            spans.push(Span::styled("_", theme.accent()));
        }
        notes.push(Line::from(spans));
    }
    if app.images_loading {
        notes.push(Line::from(Span::styled(
            match &app.catalog {
                Some(c) => format!(" loading {} ...", fit(c, 60)),
                None => " scanning the image folder ...".into(),
            },
            theme.accent(),
        )));
    }
    if let Some(e) = &app.local_error {
        notes.push(Line::from(Span::styled(
            format!(" image folder: {e}"),
            theme.danger(),
        )));
    }
    if let Some(e) = &app.catalog_error {
        notes.push(Line::from(Span::styled(
            format!(" catalog failed to load: {e}"),
            theme.danger(),
        )));
        notes.push(Line::from(Span::styled(
            " the image folder is still listed; r retries, Esc picks another source",
            theme.muted(),
        )));
    }
    // Notes wrap; count the rows they take.
    let width = usize::from(area.width.max(1));
    let note_rows: usize = notes.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    let [notes_area, table, detail] = Layout::vertical([
        Constraint::Length(note_rows as u16),
        Constraint::Min(3),
        Constraint::Length(4),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(notes).wrap(Wrap { trim: false }), notes_area);

    let list = app.visible_images();
    let w = table.width as usize;
    let name_w = w
        .saturating_sub(2 + 1 + 16 + 1 + 7 + 1 + 10 + 1 + 14)
        .max(10);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {:name_w$} {:16} {:7} {:>10} {:14}",
            "NAME", "FORMAT", "ARCH", "SIZE", "FROM"
        ),
        theme.muted(),
    ))];
    if list.is_empty() && !app.images_loading {
        lines.push(Line::from(""));
        lines.push(Line::from(if app.filter.text.is_empty() {
            format!(
                "  No images. Put image files into {} or pick a catalog (Esc).",
                app.settings.image_root
            )
        } else {
            "  No image matches the filter (Esc clears it).".to_string()
        }));
    }
    let height = (table.height as usize).saturating_sub(1);
    let first = scroll(app.image_cursor, height);
    for (i, e) in list.iter().enumerate().skip(first).take(height) {
        let on = i == app.image_cursor;
        let size = e.size_bytes.map(units::bytes).unwrap_or_else(|| "-".into());
        let row = format!(
            "{}{:name_w$} {:16} {:7} {:>10} {:14}",
            cursor(on),
            fit(&e.name, name_w),
            fit(e.format.as_deref().unwrap_or("?"), 16),
            fit(e.arch.as_deref().unwrap_or("-"), 7),
            size,
            fit(&origin(e), 14)
        );
        lines.push(Line::from(Span::styled(
            row,
            if on { theme.selected() } else { Style::new() },
        )));
    }
    f.render_widget(Paragraph::new(lines), table);

    if let Some(e) = list.get(app.image_cursor) {
        let mut d = vec![Line::from(Span::styled(
            format!(" {}", "-".repeat(w.saturating_sub(2))),
            theme.muted(),
        ))];
        d.push(Line::from(vec![
            Span::styled(" src    ", theme.muted()),
            Span::raw(fit(&e.src, w.saturating_sub(9))),
        ]));
        if let Some(desc) = &e.description {
            d.push(Line::from(vec![
                Span::styled(" about  ", theme.muted()),
                Span::raw(fit(desc, w.saturating_sub(9))),
            ]));
        }
        d.push(Line::from(vec![
            Span::styled(" sha256 ", theme.muted()),
            Span::raw(match &e.sha256 {
                Some(s) => fit(s, w.saturating_sub(9)),
                None => "not published (the written bytes are still digested)".into(),
            }),
        ]));
        f.render_widget(Paragraph::new(d), detail);
    }
}

fn preparing(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let (name, src) = app
        .chosen
        .as_ref()
        .map(|e| (e.name.clone(), e.src.clone()))
        .unwrap_or_default();
    let lines = vec![
        Line::from(""),
        Line::from(vec![
            Span::raw(" Opening "),
            Span::styled(name, theme.title()),
        ]),
        Line::from(Span::styled(format!(" {src}"), theme.muted())),
        Line::from(""),
        Line::from(" Resolving the source and reading its headers to learn the image's size..."),
    ];
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn disk_lines(c: &Classified, on: bool, width: usize, theme: &Theme) -> [Line<'static>; 2] {
    let d = &c.disk;
    let model_w = width
        .saturating_sub(2 + 16 + 1 + 10 + 2 + 8 + 1 + 12)
        .max(8);
    let mut badges = Vec::new();
    if d.removable {
        badges.push("removable");
    }
    if c.hidden.is_some() {
        badges.push("special");
    }
    let top = format!(
        "{}{:16} {:>10}  {:8} {:model_w$} {}",
        cursor(on),
        fit(&d.path.display().to_string(), 16),
        units::bytes(d.size_bytes),
        d.transport.name(),
        fit(&d.vendor_model(), model_w),
        badges
            .iter()
            .map(|b| format!("[{b}]"))
            .collect::<Vec<_>>()
            .join("")
    );
    let serial = d.serial.clone().or(d.wwid.clone());
    if c.writable() {
        let mut second = format!(
            "    serial {}",
            serial.unwrap_or_else(|| "(none reported)".into())
        );
        if !d.partitions.is_empty() {
            second.push_str(&format!(
                "  partitions {}",
                d.partitions
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        [
            Line::from(Span::styled(
                top,
                if on { theme.selected() } else { Style::new() },
            )),
            Line::from(Span::styled(fit(&second, width), theme.muted())),
        ]
    } else {
        let why = format!("    not writable: {}", c.unsafe_reasons.join("; "));
        [
            Line::from(Span::styled(top, theme.unavailable())),
            Line::from(Span::styled(fit(&why, width), theme.unavailable())),
        ]
    }
}

fn disks(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let w = area.width as usize;
    let model_w = w.saturating_sub(2 + 16 + 1 + 10 + 2 + 8 + 1 + 12).max(8);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {:16} {:>10}  {:8} {:model_w$}",
            "DISK", "SIZE", "BUS", "MODEL"
        ),
        theme.muted(),
    ))];
    if app.disks.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from(if app.show_all_disks {
            "  No disks found."
        } else {
            "  No disks found; a shows loop devices and other special kinds."
        }));
    } else if app.selectable_disks().is_empty() {
        lines.push(Line::from(Span::styled(
            "  No disk can be written; each says why.",
            theme.danger(),
        )));
    }
    let height = (area.height as usize).saturating_sub(lines.len()) / 2;
    let first = scroll(app.disk_cursor, height);
    for (i, c) in app.disks.iter().enumerate().skip(first).take(height) {
        let on = i == app.disk_cursor && c.writable();
        lines.extend(disk_lines(c, on, w, theme));
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn kv(k: &str, v: impl Into<String>, theme: &Theme) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!(" {k:9}"), theme.muted()),
        Span::raw(v.into()),
    ])
}

fn confirm(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [boxes, rest] = Layout::vertical([Constraint::Length(8), Constraint::Min(4)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(boxes);
    let half = left.width.saturating_sub(12) as usize;
    let mut img = Vec::new();
    if let Some(p) = &app.prepared {
        img.push(kv("name", fit(&p.entry.name, half), theme));
        img.push(kv("format", fit(&p.info.layer_chain(), half), theme));
        img.push(kv(
            "size",
            p.info
                .output_size
                .map(|s| format!("{} decoded", units::bytes(s)))
                .unwrap_or_else(|| "unknown until written".into()),
            theme,
        ));
        img.push(kv(
            "download",
            p.info
                .source_size
                .map(units::bytes)
                .unwrap_or_else(|| "-".into()),
            theme,
        ));
        img.push(kv(
            "sha256",
            if p.expected_sha256.is_some() {
                "published; checked while writing"
            } else {
                "not published"
            },
            theme,
        ));
    }
    f.render_widget(
        Paragraph::new(img).block(
            Block::new()
                .borders(Borders::ALL)
                .title(Span::styled(" Image ", theme.title())),
        ),
        left,
    );
    let mut disk = Vec::new();
    if let Some(c) = &app.target_disk {
        let d = &c.disk;
        disk.push(kv("disk", d.path.display().to_string(), theme));
        disk.push(kv("size", units::bytes(d.size_bytes), theme));
        disk.push(kv("model", fit(&d.vendor_model(), half), theme));
        disk.push(kv(
            "serial",
            fit(
                d.serial.as_deref().or(d.wwid.as_deref()).unwrap_or("-"),
                half,
            ),
            theme,
        ));
        let mut bus = d.transport.name().to_string();
        if d.removable {
            bus.push_str(", removable");
        }
        disk.push(kv("bus", bus, theme));
        if !d.partitions.is_empty() {
            let parts = d
                .partitions
                .iter()
                .map(|p| format!("{} {}", p.name, units::bytes(p.size_bytes)))
                .collect::<Vec<_>>()
                .join(", ");
            disk.push(kv("holds", fit(&parts, half), theme));
        }
    }
    f.render_widget(
        Paragraph::new(disk).block(
            Block::new()
                .borders(Borders::ALL)
                .title(Span::styled(" Disk (overwritten) ", theme.danger())),
        ),
        right,
    );
    let word = app.confirm_word();
    let lines = vec![
        Line::from(Span::styled(
            format!(" Everything on /dev/{word} will be replaced by the image."),
            theme.danger(),
        )),
        Line::from(format!(
            " [{}] read the disk back and compare after writing (Tab)",
            if app.verify { "x" } else { " " }
        )),
        Line::from(""),
        Line::from(vec![
            Span::raw(" Type "),
            Span::styled(word.clone(), theme.accent()),
            Span::raw(" to write it: "),
            Span::styled(app.confirm_input.text.clone(), theme.title()),
            Span::styled("_", theme.accent()),
        ]),
    ];
    f.render_widget(Paragraph::new(lines), rest);
}

fn stage_label(app: &App, p: &Progress) -> String {
    match p.stage {
        Stage::Preparing => "preparing".into(),
        Stage::Writing => {
            let remote = app
                .prepared
                .as_ref()
                .is_some_and(|p| !p.entry.src.starts_with("file://"));
            let compressed = app
                .prepared
                .as_ref()
                .is_some_and(|p| !p.info.compression.is_empty());
            match (remote, compressed) {
                (true, true) => "downloading, decoding, writing".into(),
                (true, false) => "downloading, writing".into(),
                (false, true) => "decoding, writing".into(),
                (false, false) => "writing".into(),
            }
        }
        Stage::Syncing => "flushing to the disk".into(),
        Stage::Verifying => "verifying (reading the disk back)".into(),
        Stage::Done => "done".into(),
    }
}

/// Fraction done of the current stage, when it can be told.
pub fn ratio(p: &Progress) -> Option<f64> {
    let (done, total) = match p.stage {
        Stage::Verifying => (p.bytes_verified, p.total?),
        Stage::Syncing | Stage::Done => return Some(1.0),
        _ => match (p.total, p.source_size) {
            (Some(t), _) => (p.bytes_written, t),
            (None, Some(s)) => (p.bytes_read, s),
            (None, None) => return None,
        },
    };
    (total > 0).then(|| (done as f64 / total as f64).clamp(0.0, 1.0))
}

fn flashing(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let [top, gauge, rest] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(3),
    ])
    .areas(area);
    let name = app
        .prepared
        .as_ref()
        .map(|p| p.entry.name.clone())
        .unwrap_or_default();
    let disk = app
        .target_disk
        .as_ref()
        .map(|d| d.disk.path.display().to_string())
        .unwrap_or_default();
    let stage = match (&app.progress, app.cancelling) {
        (_, true) => "cancelling: stopping and wiping the disk".to_string(),
        (Some(p), false) => stage_label(app, p),
        (None, false) => "starting".into(),
    };
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::raw(" Writing "),
                Span::styled(name, theme.title()),
                Span::raw(" onto "),
                Span::styled(disk, theme.danger()),
            ]),
            Line::from(""),
            kv("stage", stage, theme),
        ]),
        top,
    );
    let r = app.progress.as_ref().and_then(ratio);
    let label = r
        .map(|r| format!("{:.0} %", r * 100.0))
        .unwrap_or_else(|| "-".into());
    f.render_widget(
        Gauge::default()
            .ratio(r.unwrap_or(0.0))
            .label(label)
            .gauge_style(theme.gauge()),
        gauge.inner(ratatui::layout::Margin {
            horizontal: 1,
            vertical: 0,
        }),
    );
    let mut lines = vec![Line::from("")];
    if let Some(p) = &app.progress {
        let total = p
            .total
            .map(units::bytes)
            .unwrap_or_else(|| "unknown".into());
        lines.push(kv(
            "written",
            format!("{} of {total}", units::bytes(p.bytes_written)),
            theme,
        ));
        let src = p
            .source_size
            .map(units::bytes)
            .unwrap_or_else(|| "?".into());
        lines.push(kv(
            "read",
            format!("{} of {src} from the source", units::bytes(p.bytes_read)),
            theme,
        ));
        if p.stage == Stage::Verifying {
            lines.push(kv("verified", units::bytes(p.bytes_verified), theme));
        }
        lines.push(kv(
            "rate",
            format!("{}/s", units::bytes(p.rate as u64)),
            theme,
        ));
        lines.push(kv(
            "time",
            format!(
                "{} elapsed, {}",
                units::duration(p.elapsed_secs),
                p.eta_secs
                    .map(|e| format!("about {} left", units::duration(e)))
                    .unwrap_or_else(|| "time left unknown".into())
            ),
            theme,
        ));
    }
    f.render_widget(Paragraph::new(lines), rest);
}

fn done(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(o) = &app.outcome else {
        return;
    };
    let w = area.width as usize;
    let mut lines = Vec::new();
    match &o.result {
        Ok(r) => {
            lines.push(Line::from(Span::styled(" Flash complete.", theme.ok())));
            lines.push(kv(
                "wrote",
                fit(&format!("{} onto {}", o.image, o.target), w - 11),
                theme,
            ));
            lines.push(kv(
                "image",
                format!(
                    "{} in {} ({}/s)",
                    units::bytes(r.image_bytes),
                    units::duration(r.elapsed_secs),
                    units::bytes(if r.elapsed_secs > 0.0 {
                        (r.image_bytes as f64 / r.elapsed_secs) as u64
                    } else {
                        0
                    })
                ),
                theme,
            ));
            lines.push(kv("digest", r.image_digest_algorithm, theme));
            lines.push(kv("", fit(&r.image_digest, w - 11), theme));
            lines.push(kv(
                "sha256",
                match &r.source_sha256 {
                    Some(_) => "the source matched its published sha256",
                    None => "none published for this source",
                },
                theme,
            ));
            lines.push(kv(
                "verify",
                if r.verified {
                    "read back from the disk: identical to the image"
                } else {
                    "not done (Tab on the confirm screen turns it on)"
                },
                theme,
            ));
        }
        Err(e) => {
            let cancelled = matches!(e.failure, bty_image::error::FlashFailure::Cancelled);
            lines.push(Line::from(Span::styled(
                if cancelled {
                    " Flash cancelled."
                } else {
                    " Flash FAILED."
                },
                theme.danger(),
            )));
            lines.push(kv("image", fit(&o.image, w - 11), theme));
            lines.push(kv("disk", o.target.clone(), theme));
            if !cancelled {
                lines.push(Line::from(""));
                lines.push(Line::from(Span::raw(format!(" {}", e.failure))));
            }
            lines.push(Line::from(""));
            let wiped = match (&e.wipe, e.write_began) {
                (_, false) => " The disk was not modified.".to_string(),
                (Some(Ok(())), true) => format!(
                    " {} was wiped (first and last MiB zeroed),\n so it cannot boot a half-written image.",
                    o.target
                ),
                (Some(Err(w)), true) => {
                    format!(" Wiping {} FAILED: {w}. Do not boot from it.", o.target)
                }
                (None, true) => format!(" {} was left partly written.", o.target),
            };
            for l in wiped.lines() {
                lines.push(Line::from(Span::styled(l.to_string(), theme.accent())));
            }
        }
    }
    lines.push(Line::from(""));
    for (i, c) in DONE_CHOICES.iter().enumerate() {
        let on = i == app.done_cursor;
        let label = match c {
            DoneChoice::Reboot => "Reboot now",
            DoneChoice::Another => "Flash another disk with this image",
            DoneChoice::Quit => "Quit",
        };
        lines.push(Line::from(Span::styled(
            format!(" {}{label}", cursor(on)),
            if on { theme.selected() } else { Style::new() },
        )));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}
