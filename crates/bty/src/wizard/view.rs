//! The frame around every screen: the step line, what is chosen so far, the status line, the
//! key guide, and the help and cancel pop-ups. Laid out for 80×24 and wider.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, Screen};
use super::screens;
use super::theme::Theme;
use crate::units;

const STEPS: [(&str, &[Screen]); 5] = [
    ("Source", &[Screen::Source]),
    ("Image", &[Screen::Images, Screen::Preparing]),
    ("Disk", &[Screen::Disks]),
    ("Confirm", &[Screen::Confirm]),
    ("Flash", &[Screen::Flashing, Screen::Done]),
];

/// Draw the whole wizard.
pub fn draw(f: &mut Frame, app: &App, theme: &Theme) {
    let [header, context, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(step_line(app, theme)), header);
    f.render_widget(Paragraph::new(context_lines(app, theme)), context);
    let block = Block::new().borders(Borders::ALL).title(Span::styled(
        format!(" {} ", screen_title(app)),
        theme.title(),
    ));
    let inner = block.inner(body);
    f.render_widget(block, body);
    screens::draw_body(f, inner, app, theme);
    if let Some((msg, is_error)) = &app.status {
        let style = if *is_error {
            theme.danger()
        } else {
            theme.accent()
        };
        f.render_widget(
            Paragraph::new(Span::styled(format!(" {msg}"), style)),
            status,
        );
    }
    f.render_widget(
        Paragraph::new(Span::styled(key_guide(app), theme.muted())),
        keys,
    );
    if app.help {
        help_popup(f, body, theme);
    }
    if app.screen == Screen::Flashing && app.asking_cancel {
        cancel_popup(f, body, app, theme);
    }
}

fn step_line(app: &App, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(
        format!(" bty {} ", app.settings.version),
        theme.title(),
    )];
    for (i, (name, screens)) in STEPS.iter().enumerate() {
        spans.push(Span::raw(if i == 0 { " " } else { " > " }));
        let label = format!("{}.{name}", i + 1);
        if screens.contains(&app.screen) {
            spans.push(Span::styled(label, theme.active_step()));
        } else {
            spans.push(Span::styled(label, theme.muted()));
        }
    }
    Line::from(spans)
}

fn context_lines(app: &App, theme: &Theme) -> Vec<Line<'static>> {
    let catalog = app
        .catalog
        .clone()
        .unwrap_or_else(|| "none (image folder only)".into());
    let first = Line::from(vec![
        Span::styled(" catalog ", theme.muted()),
        Span::raw(catalog),
        Span::styled("  folder ", theme.muted()),
        Span::raw(app.settings.image_root.clone()),
    ]);
    let mut second = vec![Span::styled(" image ", theme.muted())];
    match (&app.chosen, &app.prepared) {
        (_, Some(p)) => {
            second.push(Span::raw(p.entry.name.clone()));
            if let Some(size) = p.info.output_size {
                second.push(Span::styled(
                    format!(" ({}, {})", units::bytes(size), p.info.layer_chain()),
                    theme.muted(),
                ));
            }
        }
        (Some(e), None) => second.push(Span::raw(e.name.clone())),
        (None, None) => second.push(Span::styled("-", theme.muted())),
    }
    if let Some(d) = &app.target_disk {
        second.push(Span::styled("  disk ", theme.muted()));
        second.push(Span::raw(d.disk.path.display().to_string()));
    }
    vec![first, Line::from(second)]
}

fn screen_title(app: &App) -> &'static str {
    match app.screen {
        Screen::Source => "Where is the image?",
        Screen::Images => "Pick an image",
        Screen::Preparing => "Opening the image",
        Screen::Disks => "Pick the disk to overwrite",
        Screen::Confirm => "Confirm",
        Screen::Flashing => "Flashing",
        Screen::Done => "Finished",
    }
}

fn key_guide(app: &App) -> String {
    let s = match app.screen {
        Screen::Source if app.source_input.is_some() => "type, Enter use it, Esc back",
        Screen::Source => "up/down j/k move  Enter choose  ? help  q quit",
        Screen::Images if app.filtering => "type to filter  Enter pick  Esc clear",
        Screen::Images => "j/k move  Enter pick  / filter  r reload  Esc back  ? help  q quit",
        Screen::Preparing => "Esc stop  q quit",
        Screen::Disks => "j/k move  Enter pick  a all disks  r rescan  Esc back  ? help  q quit",
        Screen::Confirm => "type the disk name, Enter write  Tab verify on/off  Esc back",
        Screen::Flashing => "Esc or Ctrl-C cancel (the disk is then wiped)",
        Screen::Done => "j/k move  Enter choose  r reboot  a another disk  q quit",
    };
    format!(" {s}")
}

/// A rectangle of `w`×`h` centred in `area` (clamped to it).
fn centred(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

const HELP: &[(&str, &str)] = &[
    ("up/down, j/k", "move"),
    ("PgUp/PgDn, g/G", "jump (image list)"),
    ("Enter", "choose"),
    ("Esc", "back (cancel while flashing)"),
    ("/", "filter the image list"),
    ("r", "reload images / rescan disks"),
    ("a", "show every disk, loop devices too"),
    ("Tab", "verify on/off (confirm screen)"),
    ("q, Ctrl-C", "quit (while flashing: cancel)"),
    ("?", "this help"),
];

fn help_popup(f: &mut Frame, area: Rect, theme: &Theme) {
    let r = centred(area, 60, HELP.len() as u16 + 4);
    f.render_widget(Clear, r);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:16}"), theme.accent()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        " Disks are never written without typing their name.",
        theme.muted(),
    )));
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(Span::styled(" Keys (Esc closes) ", theme.title())),
        ),
        r,
    );
}

fn cancel_popup(f: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let r = centred(area, 56, 7);
    f.render_widget(Clear, r);
    let disk = app
        .target_disk
        .as_ref()
        .map(|d| d.disk.path.display().to_string())
        .unwrap_or_default();
    let text = vec![
        Line::from(Span::styled(" Cancel the flash?", theme.danger())),
        Line::from(format!(" {disk} is then wiped (first and last MiB zeroed)")),
        Line::from(" so it cannot boot a half-written image."),
        Line::from(""),
        Line::from(Span::styled(" y cancel   n keep writing", theme.accent())),
    ];
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL)),
        r,
    );
}
