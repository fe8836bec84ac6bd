//! Toolbar, results, settings, DICOM tags, status bar and help: the panels around the canvas.

use std::path::{Path, PathBuf};

use egui::{Color32, RichText, Sense, Stroke, Vec2};

use crate::explain::zones::ZoneScore;
use crate::text::score_column;

use super::app::{display_name, Action, EngineState, ViewerApp};
use super::cache::JobStage;
use super::render::WindowPreset;
use super::settings::{BaselineChoice, ColormapChoice, MapKind, OverlayMode};
use super::shortcuts::SHORTCUTS;

pub const RESEARCH_NOTICE: &str = "Research use only — not for diagnosis";
const WARN: Color32 = Color32::from_rgb(255, 170, 60);
const ERROR: Color32 = Color32::from_rgb(255, 110, 110);

pub fn frame_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    egui::Panel::top("toolbar").show(ui, |ui| {
        toolbar_ui(app, ui);
        study_header_ui(app, ui);
    });
    egui::Panel::bottom("status").show(ui, |ui| status_bar_ui(app, ui));
    let layout = SideLayout::for_window(ui.available_size());
    if let (Some(review), false) = (app.review.as_mut(), app.settings.show_study_list) {
        review.hold_order = false;
    }
    if app.review.is_some() && app.settings.show_study_list {
        egui::Panel::left("studies")
            .resizable(true)
            .default_size(560.0)
            .size_range(layout.study_list)
            .show(ui, |ui| super::study_list::study_list_ui(app, ui));
    }
    egui::Panel::right("side")
        .resizable(true)
        .default_size(380.0)
        .size_range(layout.side)
        .show(ui, |ui| {
            // The note stays in view (its own pane) however long the results get, but never
            // takes the whole column: the result above it keeps a share of the height.
            let note = SideLayout::note_pane(ui.available_height());
            egui::Panel::bottom("review-note")
                .resizable(true)
                .default_size(note.max.min(360.0))
                .size_range(note)
                .show(ui, |ui| {
                    // Not shrunk to its first frame's content, which would pin the pane small.
                    egui::ScrollArea::vertical()
                        .id_salt("review-note-scroll")
                        .auto_shrink([false, false])
                        .show(ui, |ui| {
                            ui.add_space(4.0);
                            super::notes_panel::notes_ui(app, ui);
                        });
                });
            egui::ScrollArea::vertical().show(ui, |ui| {
                results_ui(app, ui);
                ui.separator();
                egui::CollapsingHeader::new("Display & analysis settings")
                    .default_open(true)
                    .show(ui, |ui| settings_ui(app, ui));
                egui::CollapsingHeader::new("DICOM tags")
                    .default_open(false)
                    .show(ui, |ui| tags_ui(app, ui));
            });
        });
    egui::CentralPanel::no_frame().show(ui, |ui| super::canvas::canvas_ui(app, ui));
    if app.show_help {
        help_ui(app, ui.ctx());
    }
    super::trust_state::sanity_window(app, ui.ctx());
    if let Some(outcome) = super::file_dialog::show(&mut app.file_dialog, ui.ctx()) {
        app.file_dialog_done(outcome);
    }
}

/// Why a baseline read as the explained class makes an IG map say little (hover text), and
/// which other baseline to try where the model has a normal film.
fn ig_baseline_reasoning(app: &ViewerApp, class: &str) -> String {
    let other = match app.wanted_ig_or_default().baseline {
        BaselineChoice::Auto => {
            " Auto tried black, the normal film where the model has one, and white: the model \
             reads every one of them as this class."
        }
        BaselineChoice::NormalFilm => {
            " For a NORMAL film, the black baseline (B) starts from an image read as the other \
             class."
        }
        _ if app.has_normal_film() => {
            " The normal-film baseline (B) starts from a film the model reads as NORMAL, but its \
             map mostly shows where the two films differ (it failed the sanity check, K, on \
             every PNEUMONIA film measured)."
        }
        _ => "",
    };
    format!(
        "Integrated Gradients explains F(film) − F(baseline). The baseline should stand for the \
         absence of what is explained; the model reads this one as {class} itself, so the map \
         splits only the difference between two {class} readings, and the completeness gap is \
         relative to that difference. Grad-CAM does not depend on a baseline.{other}"
    )
}

/// Width ranges of the panels beside the film, from the window's size. The film is what the
/// user came for: the study list and the side column never leave it less than 240 pixels (at
/// the 800-pixel minimum window the fixed ranges had left it 10, and the side column overflowed
/// the window) and take at most 36 % and 34 % of a wider window. From about 2,500 pixels up the
/// ranges are the fixed ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SideLayout {
    pub study_list: egui::Rangef,
    pub side: egui::Rangef,
}

impl SideLayout {
    pub fn for_window(size: egui::Vec2) -> Self {
        let w = size.x.max(1.0);
        // The side column's result (zone schematic beside its table) needs 300 px; below that
        // it was cut off on the left. The study list gives way instead: its names shorten and
        // its table scrolls sideways.
        let side_max = 640f32.min(0.34 * w).max(300.0);
        let list_max = 900f32.min(0.36 * w).min(w - 300.0 - 240.0).max(160.0);
        Self {
            study_list: egui::Rangef::new(280f32.min(0.22 * w).min(list_max), list_max),
            side: egui::Rangef::new(300.0, side_max),
        }
    }

    /// Height range of the review-note pane in a side column `height` tall: at most 60 % of it,
    /// so the result (label, probability) above it always keeps 40 %.
    pub fn note_pane(height: f32) -> egui::Rangef {
        let max = (0.6 * height).max(120f32.min(height));
        egui::Rangef::new(120f32.min(max), max.min(900.0))
    }
}

/// A short warning in the toolbar, kept in one piece: the wrapped row split such tags ("IG
/// baseline read as" / "PNEUMONIA", "hidden: out of" / "scope"), the end starting the next row.
fn warning_tag(ui: &mut egui::Ui, text: &str) -> egui::Response {
    ui.add(
        egui::Label::new(RichText::new(text).color(WARN).small())
            .wrap_mode(egui::TextWrapMode::Extend),
    )
}

fn toolbar_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Open…")
            .on_hover_text("Ctrl+O — or drop a file on the window")
            .clicked()
        {
            app.apply(Action::OpenFile, &ctx);
        }
        if ui
            .button("Open folder…")
            .on_hover_text("Ctrl+Shift+O")
            .clicked()
        {
            app.apply(Action::OpenFolder, &ctx);
        }
        let recent = app.settings.recent.clone();
        let recent_sets = app.settings.recent_sets.clone();
        ui.menu_button("Recent", |ui| {
            if recent.is_empty() && recent_sets.is_empty() {
                ui.label("nothing yet");
            }
            // Checked only while the menu is open (ten entries at most): a file moved or deleted
            // since, or on a share not mounted now, is shown but cannot be picked.
            let entries: Vec<(PathBuf, bool)> =
                recent.iter().map(|p| (p.clone(), p.is_dir())).collect();
            for ((path, folder), label) in entries.iter().zip(recent_labels(&entries)) {
                let (found, folder) = (path.exists(), *folder);
                let button = ui
                    .add_enabled(found, egui::Button::new(label))
                    .on_hover_text(path.display().to_string())
                    .on_disabled_hover_text(format!("not found: {}", path.display()));
                if button.clicked() {
                    if folder {
                        app.open_folder(path);
                    } else {
                        app.open(path.clone());
                    }
                    ui.close();
                }
            }
            if !recent_sets.is_empty() {
                ui.separator();
                ui.label(RichText::new("Files opened together").small().weak());
            }
            for set in recent_sets {
                // Those moved or deleted since are named when the set is opened again.
                let found = set.iter().filter(|f| f.exists()).count();
                let button = ui
                    .add_enabled(found > 0, egui::Button::new(recent_set_label(&set)))
                    .on_hover_text(recent_set_hover(&set, found))
                    .on_disabled_hover_text(format!(
                        "none of these {} files is found now",
                        set.len()
                    ));
                if button.clicked() {
                    app.reopen_set(set);
                    ui.close();
                }
            }
            if !recent.is_empty() || !app.settings.recent_sets.is_empty() {
                ui.separator();
                if ui.button("Clear list").clicked() {
                    app.settings.recent.clear();
                    app.settings.recent_sets.clear();
                    ui.close();
                }
            }
        });
        let pos = app.folder_position();
        let hidden = app.hidden_by_filter();
        ui.add_enabled_ui(hidden.is_some() || pos.is_some_and(|(i, _)| i > 0), |ui| {
            if ui
                .button("< Previous")
                .on_hover_text("Left arrow / Page Up")
                .clicked()
            {
                app.apply(Action::Previous, &ctx);
            }
        });
        if let Some((i, n)) = pos {
            ui.label(format!("{}/{n}", i + 1));
        } else if let Some(n) = hidden {
            ui.label(format!("–/{n}")).on_hover_text(
                "This study is not in the list as filtered; Next and Previous go to the nearest \
                 study it shows",
            );
        }
        ui.add_enabled_ui(
            hidden.is_some() || pos.is_some_and(|(i, n)| i + 1 < n),
            |ui| {
                if ui
                    .button("Next >")
                    .on_hover_text("Right arrow / Page Down")
                    .clicked()
                {
                    app.apply(Action::Next, &ctx);
                }
            },
        );
        if let Some((frames, frame)) = app.current_frames() {
            if let Some(action) = super::frames::frame_selector_ui(ui, frames, frame) {
                app.apply(action, &ctx);
            }
        }
        ui.separator();
        for (i, kind) in MapKind::ALL.iter().enumerate() {
            let available = app.has_map(*kind);
            let text = if available {
                RichText::new(kind.label())
            } else {
                RichText::new(kind.label()).weak()
            };
            if ui
                .selectable_label(app.map == *kind, text)
                .on_hover_text(format!("{i}  (M cycles)"))
                .clicked()
            {
                app.map = *kind;
            }
        }
        let compare_label = app.compare.map_or("Compare: off".to_string(), |k| {
            format!("Compare: {}", k.label())
        });
        egui::ComboBox::from_id_salt("compare")
            .selected_text(compare_label)
            .show_ui(ui, |ui| {
                if ui.selectable_label(app.compare.is_none(), "off").clicked() {
                    app.compare = None;
                }
                for k in MapKind::ALL {
                    if ui
                        .selectable_label(app.compare == Some(k), k.label())
                        .clicked()
                    {
                        app.compare = Some(k);
                    }
                }
            })
            .response
            .on_hover_text("C: a second map side by side, same zoom and pan");
        let mut alpha = app.settings.alpha;
        // The slider, its value and its label are one widget that the wrapped row cannot break:
        // start a new row when they would run past the window's edge (they were cut off there
        // at 1,024 px).
        let opacity_width = ui.spacing().slider_width + ui.spacing().interact_size.x + 70.0;
        if ui.available_size_before_wrap().x < opacity_width {
            ui.end_row();
        }
        if ui
            .add(egui::Slider::new(&mut alpha, 0.0..=1.0).text("Opacity"))
            .on_hover_text("[ and ]")
            .changed()
        {
            app.settings.set_alpha(alpha);
        }
        if super::scope_banner::result_hidden(app) {
            // Not "dimmed": nothing is drawn until Show anyway.
            warning_tag(ui, "hidden: out of scope").on_hover_text(
                    "The film is outside the model's scope: its maps are drawn only after \
                     \"Show anyway\" in the result panel, and then dimmed",
                );
        } else if let Some(gate) = super::trust_state::current_gate(app) {
            warning_tag(ui, &gate.short_line()).on_hover_text(format!(
                    "{}\nSettings: \"Dim overlays when uncertain or out of scope\"",
                    gate.line()
                ));
        }
        // The IG map on screen explains the film against a baseline read as the same class:
        // said where the map is chosen, not only in the result panel below the fold.
        let ig_shown = app.map == MapKind::IntegratedGradients
            || app.compare == Some(MapKind::IntegratedGradients);
        if let (true, false, Some((class, warning))) = (
            ig_shown,
            super::scope_banner::result_hidden(app),
            super::trust_state::ig_baseline_warning(app),
        ) {
            warning_tag(ui, &format!("IG baseline read as {class}")).on_hover_text(format!(
                "{warning}.\n{}",
                ig_baseline_reasoning(app, &class)
            ));
        }
        ui.separator();
        if ui.button("Fit").on_hover_text("F, double-click").clicked() {
            app.apply(Action::Fit, &ctx);
        }
        if ui.button("1:1").on_hover_text("Z").clicked() {
            app.apply(Action::OneToOne, &ctx);
        }
        let inverted = app.current.as_ref().is_some_and(|c| c.view.invert);
        if ui
            .selectable_label(inverted, "Invert")
            .on_hover_text("I")
            .clicked()
        {
            app.apply(Action::Invert, &ctx);
        }
        let preset = app.current.as_ref().and_then(|c| c.view.preset);
        egui::ComboBox::from_id_salt("window_preset")
            .selected_text(preset.map_or("Window: manual", |p| p.label()))
            .show_ui(ui, |ui| {
                for p in WindowPreset::ALL {
                    if ui.selectable_label(preset == Some(p), p.label()).clicked() {
                        app.set_preset(p);
                    }
                }
            })
            .response
            .on_hover_text("W cycles presets; right-drag on the image for window/level");
        if ui.button("Reset").on_hover_text("R").clicked() {
            app.apply(Action::Reset, &ctx);
        }
        if ui
            .selectable_label(app.box_tool.active, "Box tool")
            .on_hover_text("D: drag on the film to box an opacity into the review note")
            .clicked()
        {
            app.apply(Action::ToggleBoxTool, &ctx);
        }
        ui.separator();
        if ui.button("Export PNG…").on_hover_text("Ctrl+S").clicked() {
            app.apply(Action::ExportPng, &ctx);
        }
        let report = ui.button("Export report…").on_hover_text(
            "Ctrl+E: report.json, for tools. Right-click or Ctrl+Shift+E: a page to read or \
                 print (HTML), with the review note and its boxes; a name ending in .html gives \
                 the page too",
        );
        if report.clicked() {
            app.apply(Action::ExportJson, &ctx);
        }
        report.context_menu(|ui| {
            if ui.button("As JSON (for tools)…").clicked() {
                app.apply(Action::ExportJson, &ctx);
            }
            if ui.button("As a page to read (HTML)…").clicked() {
                app.apply(Action::ExportHtml, &ctx);
            }
        });
        ui.checkbox(&mut app.export_identifiers, "identifiers in report")
            .on_hover_text("Patient name/ID and the full path go into the report (JSON or page) only if ticked");
        if ui
            .button("?")
            .on_hover_text("Keyboard shortcuts (? or F1)")
            .clicked()
        {
            app.apply(Action::Help, &ctx);
        }
    });
}

/// A Recent entry's name: a folder (reopened as a review) reads "name/", and a DICOMDIR, whose
/// name every disc shares, "folder/DICOMDIR".
fn recent_label(path: &Path, is_dir: bool) -> String {
    let name = display_name(path);
    if is_dir {
        return format!("{name}/");
    }
    match path.parent().and_then(Path::file_name) {
        Some(parent) if name.eq_ignore_ascii_case("DICOMDIR") => {
            format!("{}/{name}", parent.to_string_lossy())
        }
        _ => name,
    }
}

/// Recent's entries' names ([`recent_label`], for `(path, is a folder)`): where two would read
/// alike, each of them also names its folder ("samples/person45_bacteria_221.jpeg" and
/// "PN/person45_bacteria_221.jpeg"), instead of two identical lines told apart only by hovering.
fn recent_labels(entries: &[(PathBuf, bool)]) -> Vec<String> {
    let names: Vec<String> = entries
        .iter()
        .map(|(path, folder)| recent_label(path, *folder))
        .collect();
    names
        .iter()
        .zip(entries)
        .map(|(name, (path, _))| {
            let shared = names.iter().filter(|n| *n == name).count() > 1;
            match path.parent().and_then(Path::file_name) {
                Some(parent) if shared => format!("{}/{name}", parent.to_string_lossy()),
                _ => name.clone(),
            }
        })
        .collect()
}

/// "12 files in train/": a set of files opened together, named by its deepest common folder.
fn recent_set_label(set: &[PathBuf]) -> String {
    let folder = super::review::common_folder(set);
    format!("{} files in {}/", set.len(), display_name(&folder))
}

/// The set's folder and files (the first ten), and how many are missing now.
fn recent_set_hover(set: &[PathBuf], found: usize) -> String {
    let folder = super::review::common_folder(set);
    let mut lines: Vec<String> = set
        .iter()
        .take(10)
        .map(|f| f.strip_prefix(&folder).unwrap_or(f).display().to_string())
        .collect();
    if set.len() > 10 {
        lines.push(format!("… and {} more", set.len() - 10));
    }
    if found < set.len() {
        lines.push(format!("{} not found now", set.len() - found));
    }
    format!("{}\n{}", folder.display(), lines.join("\n"))
}

/// One line a radiologist reads first: what, which view, how old, when.
fn study_header_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let Some(current) = app.current.as_ref() else {
        return;
    };
    // A film of the folder under review by its path in that folder: two films may share a name
    // (a DICOMDIR's IM000000 of each patient), and the class folder is part of what it is.
    let name = app
        .review
        .as_ref()
        .and_then(|r| Some(r.rows[r.row_index(&current.path)?].relative.clone()))
        .unwrap_or_else(|| display_name(&current.path));
    let mut parts = vec![name];
    if let Some(study) = &current.study {
        let m = &study.metadata;
        parts.push(m.modality.clone().unwrap_or_else(|| m.format.clone()));
        if let Some(v) = &m.view_position {
            parts.push(format!("view {v}"));
        }
        if let Some(a) = &m.patient_age {
            parts.push(format!("age {a}"));
        }
        if let Some(s) = &m.patient_sex {
            parts.push(format!("sex {s}"));
        }
        if let Some(d) = &m.study_date {
            parts.push(crate::text::format_date(d));
        }
        parts.push(format!("{}×{}", study.width, study.height));
    }
    let has_ids = current
        .study
        .as_ref()
        .is_some_and(|s| s.metadata.patient_name.is_some() || s.metadata.patient_id.is_some());
    // Wrapped: on one line a long name, the demographics and the revealed identifiers ran the
    // Reveal / Hide button past a narrow window's edge.
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(parts.join("  ·  ")).strong());
        if has_ids {
            ui.separator();
            if app.reveal_identifiers {
                if let Some(study) = &current.study {
                    let m = &study.metadata;
                    ui.label(format!(
                        "Patient: {}  ID: {}",
                        m.patient_name.as_deref().unwrap_or("—"),
                        m.patient_id.as_deref().unwrap_or("—")
                    ));
                }
                if ui.button("Hide").clicked() {
                    app.reveal_identifiers = false;
                }
            } else {
                ui.label(RichText::new("Patient: hidden").weak());
                if ui
                    .button("Reveal")
                    .on_hover_text("Show patient name and ID (not exported unless asked)")
                    .clicked()
                {
                    app.reveal_identifiers = true;
                }
            }
        }
    });
}

fn status_bar_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label(
            RichText::new(RESEARCH_NOTICE.to_string())
                .color(WARN)
                .strong(),
        );
        ui.separator();
        let key = app.current_key();
        let job = key.as_ref().and_then(|k| app.jobs.active_for(k));
        if let Some(job) = job {
            ui.spinner();
            match job.stage {
                JobStage::IntegratedGradients { done, total } if total > 0 => {
                    ui.label("Integrated Gradients");
                    ui.add(
                        egui::ProgressBar::new(done as f32 / total as f32)
                            .desired_width(160.0)
                            .text(format!("{done}/{total}")),
                    );
                }
                stage => {
                    ui.label(stage_label(stage));
                }
            }
            if ui.button("Cancel").on_hover_text("Esc").clicked() {
                app.cancel_analysis();
            }
        } else if app.current_entry().is_some_and(|e| e.user_cancelled) {
            ui.label("analysis stopped");
            if ui.button("Resume analysis").clicked() {
                app.resume_analysis();
            }
        }
        let now = std::time::Instant::now();
        if app.system_dialog.as_ref().is_some_and(|w| w.offer_own(now)) {
            ui.separator();
            if super::system_dialog::waiting_ui(ui) {
                app.use_own_dialog();
            }
        }
        if let Some(status) = &app.status {
            ui.separator();
            let color = if status.is_error {
                ERROR
            } else {
                ui.visuals().text_color()
            };
            // One line: a long message (an import naming the notes it did not take) ends in
            // "…" at the window's edge instead of running past it, and reads whole on hover.
            ui.add(egui::Label::new(RichText::new(&status.text).color(color)).truncate())
                .on_hover_text(&status.text);
        }
    });
}

fn stage_label(stage: JobStage) -> String {
    match stage {
        JobStage::Queued => "starting…".into(),
        JobStage::Prediction => "prediction…".into(),
        JobStage::GradCam => "Grad-CAM…".into(),
        JobStage::Uncertainty => "MC-dropout uncertainty…".into(),
        JobStage::IntegratedGradients { done, total } => {
            format!("Integrated Gradients {done}/{total}")
        }
    }
}

fn zone_label(name: &str) -> String {
    let (side, band) = name.split_once('_').unwrap_or((name, ""));
    format!("{} {}", if side == "right" { "R" } else { "L" }, band)
}

pub fn results_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.heading("Result");
    match &app.engine {
        EngineState::Loading => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("loading model…");
            });
        }
        EngineState::Failed(e) => {
            ui.label(RichText::new(format!("Model unavailable: {e}")).color(ERROR));
            return;
        }
        EngineState::Ready(_) => {}
    }
    let Some(engine) = app.engine().cloned() else {
        return;
    };
    let cfg = &engine.model.config;
    let Some(entry) = app.current_entry() else {
        ui.label(RichText::new("no image").weak());
        model_info_ui(app, ui);
        return;
    };
    if let Some(e) = &entry.error {
        ui.label(RichText::new(format!("Analysis failed: {e}")).color(ERROR));
    }
    let Some(prepared) = entry.prepared.clone() else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("prediction…");
        });
        model_info_ui(app, ui);
        return;
    };
    let shown = super::scope_banner::shown_anyway(app);
    let (hidden, action) = super::scope_banner::results_gate_ui(ui, &prepared.scope, shown);
    if let Some(a) = action {
        let ctx = ui.ctx().clone();
        app.apply(a, &ctx);
        ctx.request_repaint();
        return;
    }
    if hidden {
        model_info_ui(app, ui);
        return;
    }
    let p = &prepared.prediction;
    let positive = p.label == p.positive_class;
    let color = if positive {
        WARN
    } else {
        Color32::from_rgb(120, 200, 120)
    };
    ui.label(
        RichText::new(p.label.to_uppercase())
            .size(22.0)
            .strong()
            .color(color),
    );
    ui.label(format!(
        "P({}) = {:.3}   (threshold {:.2})",
        p.positive_class, p.positive_probability, p.threshold
    ));
    match &entry.uncertainty {
        Some(u) => {
            let mc = &u.0;
            ui.label(format!(
                "MC dropout ({} samples): mean {:.3}, 95 % interval [{:.3}, {:.3}]",
                mc.samples, mc.mean, mc.interval[0], mc.interval[1]
            ));
        }
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("uncertainty…");
            });
        }
    }
    if let Some(reason) = app.uncertain_reason() {
        egui::Frame::new()
            .stroke(Stroke::new(1.5, WARN))
            .inner_margin(6.0)
            .show(ui, |ui| {
                ui.label(RichText::new("UNCERTAIN").color(WARN).strong());
                ui.label(reason);
            });
    }

    // Zones of the map being viewed (Grad-CAM when no overlay is shown).
    let kind = if app.map == MapKind::None {
        MapKind::GradCam
    } else {
        app.map
    };
    ui.add_space(6.0);
    match app.explained_class(kind) {
        Some(class) => {
            ui.strong(format!("Zones — {} for {class}", kind.label()))
                .on_hover_text(format!(
                    "The map explains the class the model chose, {class}: where it is high is \
                     evidence for {class}{}",
                    if kind == MapKind::Uncertainty {
                        " (here: how much that evidence varies across MC-dropout samples)"
                    } else {
                        ""
                    }
                ));
        }
        None => {
            ui.strong(format!("Zones — {}", kind.label()));
        }
    }
    match app.map_of(kind) {
        Some((_, zones, _)) => {
            ui.horizontal(|ui| {
                lungs_ui(ui, &zones, kind, app.settings.colormap);
                zones_table_ui(ui, &zones);
            });
            ui.label(
                RichText::new(
                    "Patient's right is drawn on the image's left (standard PA/AP display). \
                     Zones are thirds × halves of the whole film.",
                )
                .small()
                .weak(),
            );
        }
        None => {
            ui.label(RichText::new("not computed yet").weak());
        }
    }

    super::localisation_panel::localisation_ui(app, ui);

    // Integrated Gradients: completeness tells whether the attribution sums add up.
    ui.add_space(6.0);
    ui.strong("Integrated Gradients: baseline and completeness");
    // Wrapped: with the "normal film" choice the row is wider than a 300-px side column, which
    // then slid over the window's edge and let the film cover the result's left edge.
    ui.horizontal_wrapped(|ui| {
        ui.label("baseline");
        let mut b = app.settings.ig_baseline;
        ui.radio_value(&mut b, BaselineChoice::Black, "black");
        ui.radio_value(&mut b, BaselineChoice::White, "white");
        // From a real film the map mostly shows where the two films differ: measured, it fails
        // the sanity check (IgBaseline's documentation), so the hover says so before it is chosen.
        const FROM_A_FILM: &str = "From a film, the map also marks wherever the two children's \
             anatomy differs: with the shipped model, on 10 of 10 PNEUMONIA films measured, it \
             stayed alike after the model's top layers were randomised (the sanity check, K, \
             flags it as not sensitive to the model); from black it changed with the model on \
             all 10.";
        if app.has_normal_film() {
            ui.radio_value(&mut b, BaselineChoice::NormalFilm, "normal film")
                .on_hover_text(format!(
                    "A film the model reads as confidently NORMAL (model.json's ig_reference): \
                     IG then explains the whole step from NORMAL to this film's reading. \
                     {FROM_A_FILM}"
                ));
        }
        ui.radio_value(&mut b, BaselineChoice::Auto, "auto")
            .on_hover_text(format!(
                "Per film: the first of black, the normal film and white that the model does not \
                 itself read as the class explained, so that the map explains the step from \
                 another reading to this film's (black for a film read as NORMAL; with the \
                 shipped model, the normal film for one read as PNEUMONIA). {FROM_A_FILM}"
            ));
        if b != app.settings.ig_baseline {
            app.set_baseline(b);
        }
    });
    let ig_key = app.wanted_ig_or_default();
    match app.current_entry().and_then(|e| e.ig.get(&ig_key).cloned()) {
        Some(ig) => {
            let ig = &ig.0;
            ui.label(format!(
                "{} steps, {}: completeness gap {:+.4} ({:.2} % of F(input) − F(baseline))",
                ig.steps,
                ig.baseline_described(),
                ig.delta,
                100.0 * ig.relative_delta()
            ));
            // The baseline itself read as the explained class ([`crate::analysis::BaselineReading`]).
            if let Some((class, warning)) = super::trust_state::ig_baseline_warning(app) {
                ui.label(RichText::new(warning).color(WARN).small())
                    .on_hover_text(ig_baseline_reasoning(app, &class));
            }
        }
        None if !app.settings.run_ig => {
            if ui.button("Run Integrated Gradients").clicked() {
                app.settings.run_ig = true;
            }
        }
        None => {
            ui.label(RichText::new("running or queued…").weak());
        }
    }

    ui.add_space(6.0);
    super::trust_state::trust_section_ui(app, ui);

    ui.add_space(6.0);
    if let Some(entry) = app.current_entry() {
        let t = &entry.timings;
        ui.label(
            RichText::new(format!(
                "timings (ms): preprocess {:.0} · forward {:.0} · Grad-CAM {:.0} · uncertainty {:.0} · IG {:.0}",
                t.preprocess, t.forward, t.gradcam, t.uncertainty, t.ig
            ))
            .small(),
        );
    }
    let _ = cfg;
    model_info_ui(app, ui);
}

fn model_info_ui(app: &ViewerApp, ui: &mut egui::Ui) {
    if let Some(engine) = app.engine() {
        let cfg = &engine.model.config;
        let hash: String = engine.model.sha256.chars().take(12).collect();
        ui.label(
            RichText::new(format!(
                "model {} · sha256 {hash} · device {}",
                cfg.name,
                engine.device_name()
            ))
            .small()
            .weak(),
        );
    }
    if let Some(note) = &app.device_note {
        ui.label(RichText::new(note).small().color(WARN));
    }
}

fn zones_table_ui(ui: &mut egui::Ui, zones: &[ZoneScore]) {
    egui::Grid::new("zones")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.label(RichText::new("zone").strong());
            ui.label(RichText::new("mean").strong());
            ui.label(RichText::new("max").strong());
            ui.end_row();
            let means = score_column(&zones.iter().map(|z| z.mean).collect::<Vec<_>>());
            let maxima = score_column(&zones.iter().map(|z| z.max).collect::<Vec<_>>());
            for ((z, mean), max) in zones.iter().zip(means).zip(maxima) {
                ui.label(zone_label(z.name));
                ui.label(mean);
                ui.label(max);
                ui.end_row();
            }
        });
}

/// Two lungs in three bands each, coloured by the zone mean relative to the largest zone of
/// this map; patient-right on the left like the film.
fn lungs_ui(ui: &mut egui::Ui, zones: &[ZoneScore], kind: MapKind, colormap: ColormapChoice) {
    let (rect, _) = ui.allocate_exact_size(LUNGS_SIZE, Sense::hover());
    let painter = ui.painter_at(rect);
    let max_abs = zones
        .iter()
        .map(|z| z.mean.abs())
        .fold(f32::MIN_POSITIVE, f32::max);
    let color_of = |v: f32| {
        let c = if kind.is_signed() {
            crate::overlay::Colormap::RedBlue.color(0.5 + 0.5 * v / max_abs)
        } else {
            colormap.colormap().color(v / max_abs)
        };
        Color32::from_rgb(c[0], c[1], c[2])
    };
    for ((r, rounding), z) in lung_zones(rect).into_iter().zip(zones) {
        painter.rect_filled(r, rounding, color_of(z.mean));
        painter.rect_stroke(
            r,
            rounding,
            Stroke::new(1.0, Color32::from_gray(160)),
            egui::StrokeKind::Inside,
        );
    }
    lung_sides_ui(ui, &painter, rect);
}

pub const LUNGS_SIZE: Vec2 = Vec2::new(110.0, 120.0);

/// The six zones of the lung schematic inside `rect` ([`LUNGS_SIZE`]), in the order of
/// [`crate::explain::zones::ZONE_NAMES`] and [`crate::notes::Zone::ALL`]: patient-right upper,
/// middle, lower, then left; patient-right is drawn on the left like the film.
pub fn lung_zones(rect: egui::Rect) -> Vec<(egui::Rect, egui::CornerRadius)> {
    let lung_w = 42.0;
    let top = rect.top() + 14.0;
    let band_h = (rect.height() - 18.0) / 3.0;
    let mut out = Vec::with_capacity(6);
    for x0 in [rect.left() + 8.0, rect.right() - 8.0 - lung_w] {
        for band in 0..3 {
            let r = egui::Rect::from_min_size(
                egui::pos2(x0, top + band as f32 * band_h),
                Vec2::new(lung_w, band_h - 2.0),
            );
            // Rounded apex and base suggest a lung without pretending to be anatomy.
            let rounding = match band {
                0 => egui::CornerRadius {
                    nw: 18,
                    ne: 18,
                    sw: 0,
                    se: 0,
                },
                2 => egui::CornerRadius {
                    nw: 0,
                    ne: 0,
                    sw: 8,
                    se: 8,
                },
                _ => egui::CornerRadius::ZERO,
            };
            out.push((r, rounding));
        }
    }
    out
}

/// "R" and "L" over the two lungs of the schematic.
pub fn lung_sides_ui(ui: &egui::Ui, painter: &egui::Painter, rect: egui::Rect) {
    let font = egui::FontId::proportional(11.0);
    let text = ui.visuals().text_color();
    for (zone, side) in lung_zones(rect).iter().step_by(3).zip(["R", "L"]) {
        painter.text(
            egui::pos2(zone.0.center().x, rect.top() + 6.0),
            egui::Align2::CENTER_CENTER,
            side,
            font.clone(),
            text,
        );
    }
}

fn settings_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let s = &mut app.settings;
    labelled_combo(ui, "Colormap", &mut s.colormap, ColormapChoice::ALL, |c| {
        c.label()
    });
    ui.label(
        RichText::new("Integrated Gradients always uses red (for) / blue (against).")
            .small()
            .weak(),
    );
    ui.horizontal(|ui| {
        ui.label("Mode");
        ui.radio_value(&mut s.mode, OverlayMode::Blend, "blend");
        ui.radio_value(&mut s.mode, OverlayMode::Threshold, "threshold");
        ui.radio_value(&mut s.mode, OverlayMode::Contour, "contour");
    });
    ui.add_enabled(
        s.mode != OverlayMode::Blend,
        egui::Slider::new(&mut s.threshold, 0.05..=0.95).text("Threshold"),
    );
    labelled_combo(
        ui,
        "Default overlay",
        &mut s.default_map,
        MapKind::ALL,
        |k| k.label(),
    );
    ui.add(egui::Slider::new(&mut s.mc_samples, 2..=100).text("MC samples"));
    ui.add(egui::Slider::new(&mut s.ig_steps, 4..=128).text("IG steps"));
    ui.checkbox(&mut s.run_ig, "Run Integrated Gradients automatically")
        .on_hover_text("IG takes seconds on a CPU: about 3 s for the default 36 steps on a 2-core machine with nothing else running");
    ui.checkbox(
        &mut s.gate_overlays,
        "Dim overlays when uncertain or out of scope",
    )
    .on_hover_text("The reason is shown next to the opacity slider");
    ui.checkbox(&mut s.prefetch_next, "Analyse the next study in advance")
        .on_hover_text(
            "While you read a study whose analysis is done, the one Next opens is analysed in \
             the background (Integrated Gradients included), so it appears complete",
        );
}

fn tags_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let Some(study) = app.current.as_ref().and_then(|c| c.study.clone()) else {
        ui.label(RichText::new("no image").weak());
        return;
    };
    if study.metadata.tags.is_empty() {
        ui.label(RichText::new(format!("{} file: no DICOM tags", study.metadata.format)).weak());
        if let Some(o) = study.metadata.exif_orientation {
            ui.label(RichText::new(format!("EXIF Orientation {o} applied: shown upright")).weak());
        }
        return;
    }
    if let Some(n) = study.metadata.padding_pixels {
        ui.label(
            RichText::new(format!(
                "{n} pixels of padding (PixelPaddingValue): shown black, left out of the window"
            ))
            .weak(),
        );
    }
    ui.horizontal(|ui| {
        // Labelled for screen readers (and the UI tests' accessibility check), not just placed
        // next to a text.
        let label = ui.label("Search");
        ui.text_edit_singleline(&mut app.tag_filter)
            .labelled_by(label.id);
    });
    let filter = app.tag_filter.to_lowercase();
    let reveal = app.reveal_identifiers;
    // Rows rather than a grid: the value gets whatever width is left and is cut with "…"
    // (full text on hover) instead of widening the panel.
    for (tag, keyword, value) in &study.metadata.tags {
        let hidden = !reveal && is_identifier(tag, keyword);
        let shown = if hidden { "(hidden)" } else { value.as_str() };
        if !filter.is_empty()
            && ![tag.as_str(), keyword.as_str(), shown]
                .iter()
                .any(|s| s.to_lowercase().contains(&filter))
        {
            continue;
        }
        ui.horizontal(|ui| {
            fixed_width_ui(ui, 78.0, |ui| {
                ui.label(RichText::new(tag).monospace().small().weak());
            });
            fixed_width_ui(ui, 150.0, |ui| {
                ui.add(egui::Label::new(keyword.as_str()).truncate());
            });
            let text = if hidden {
                RichText::new(shown).weak().italics()
            } else {
                RichText::new(shown)
            };
            ui.add(egui::Label::new(text).truncate());
        });
    }
}

/// A combo box choosing `value` among `choices`, its label after it. The label goes to the next
/// line as a whole where the box leaves no room for it (with `ComboBox::from_label` the 800-px
/// window's side column broke "Colormap" as "Colorm / ap"), and it names the box for assistive
/// technology.
fn labelled_combo<T: Copy + PartialEq>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut T,
    choices: impl IntoIterator<Item = T>,
    name: impl Fn(T) -> &'static str,
) {
    ui.horizontal_wrapped(|ui| {
        let combo = egui::ComboBox::from_id_salt(label)
            .selected_text(name(*value))
            .show_ui(ui, |ui| {
                for choice in choices {
                    ui.selectable_value(value, choice, name(choice));
                }
            });
        let label = ui.add(egui::Label::new(label).extend());
        combo.response.labelled_by(label.id);
    });
}

/// The width of `text` in the body font on one line.
pub(crate) fn text_width(ui: &egui::Ui, text: &str) -> f32 {
    ui.painter()
        .layout_no_wrap(
            text.to_string(),
            egui::TextStyle::Body.resolve(ui.style()),
            Color32::WHITE,
        )
        .size()
        .x
}

/// A file name as the study list shows it in `max_width` (body font): whole where it fits;
/// else without the start it shares with other listed names (`shared` characters,
/// [`crate::ui::review::shared_name_prefixes`]), keeping as many of its first words as fit
/// ("wg04_…rle_2140x1760.dcm"); and where the rest is still too wide, without its middle too
/// ("…jpegls_n…2140x1760.dcm"). Films of one folder often share a long start and differ
/// further on (a transfer syntax, a series number, a date), which egui's cut at the end hid:
/// the four hip films of a folder all read "wg04_RG2_cr_hip_mono…".
pub(crate) fn elided_name(ui: &egui::Ui, name: &str, shared: usize, max_width: f32) -> String {
    let fits = |s: &str| text_width(ui, s) <= max_width;
    if fits(name) {
        return name.to_string();
    }
    let chars: Vec<char> = name.chars().collect();
    let shared = shared.min(chars.len());
    let rest: String = chars[shared..].iter().collect();
    if shared > 0 && fits(&format!("…{rest}")) {
        // The most whole words of the shared start that still fit before the "…".
        let head = (1..shared)
            .rev()
            .filter(|&k| super::review::ends_word(chars[k - 1]))
            .find(|&k| fits(&format!("{}…{rest}", String::from_iter(&chars[..k]))))
            .unwrap_or(0);
        return format!("{}…{rest}", String::from_iter(&chars[..head]));
    }
    let lead = if shared > 0 { "…" } else { "" };
    let rest: Vec<char> = rest.chars().collect();
    let shortened = |kept: usize| {
        // The end keeps a little more than the start: the extension and what tells files apart.
        let tail = (kept * 3).div_ceil(5);
        let mut s = String::from(lead);
        s.extend(&rest[..kept - tail]);
        s.push('…');
        s.extend(&rest[rest.len() - tail..]);
        s
    };
    // The most characters that fit, by bisection: widths grow with the characters kept.
    let (mut kept, mut too_many) = (0, rest.len());
    while too_many - kept > 1 {
        let mid = (kept + too_many) / 2;
        if fits(&shortened(mid)) {
            kept = mid;
        } else {
            too_many = mid;
        }
    }
    shortened(kept)
}

/// Whether a grid whose columns hold these texts fits the width left in `ui`. The side columns
/// are ~245 px wide at the 800-px window, where grids with long headers ran under the film and
/// were cut; they switch to short labels instead. A column is as wide as its widest text but no
/// narrower than egui's Grid makes any column (`interact_size.x`): counted at their texts' width,
/// short columns ("rate", "67 %") made Zones vs maps look 60 px narrower than it was laid out.
pub(crate) fn grid_fits(ui: &egui::Ui, columns: &[Vec<String>]) -> bool {
    let narrowest = ui.spacing().interact_size.x;
    let widths: f32 = columns
        .iter()
        .map(|texts| {
            texts
                .iter()
                .map(|t| text_width(ui, t))
                .fold(narrowest, f32::max)
        })
        .sum();
    let gaps = columns.len().saturating_sub(1) as f32 * ui.spacing().item_spacing.x;
    widths + gaps <= ui.available_width()
}

/// `full`, or `short` with `full` on hover where a short form is given (a grid that
/// [`grid_fits`] says is too wide for its full labels).
pub(crate) fn fitted_label(ui: &mut egui::Ui, full: &str, short: Option<&str>, strong: bool) {
    let text = |t: &str| {
        let t = RichText::new(t);
        if strong {
            t.strong()
        } else {
            t
        }
    };
    match short {
        Some(short) => ui.label(text(short)).on_hover_text(full),
        None => ui.label(text(full)),
    };
}

/// A left-aligned column of fixed width inside a horizontal row.
fn fixed_width_ui(ui: &mut egui::Ui, width: f32, add: impl FnOnce(&mut egui::Ui)) {
    ui.allocate_ui_with_layout(
        Vec2::new(width, 16.0),
        egui::Layout::left_to_right(egui::Align::Center),
        |ui| {
            ui.set_width(width);
            add(ui);
        },
    );
}

/// Tags that identify a person: the whole patient group (0010) except age, sex, size and weight,
/// and names/numbers that point at one.
pub fn is_identifier(tag: &str, keyword: &str) -> bool {
    const KEEP: &[&str] = &["PatientAge", "PatientSex", "PatientSize", "PatientWeight"];
    const ALSO: &[&str] = &[
        "AccessionNumber",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "InstitutionName",
        "InstitutionAddress",
        "StudyID",
        "OtherPatientIDsSequence",
    ];
    (tag.starts_with("(0010,") && !KEEP.contains(&keyword)) || ALSO.contains(&keyword)
}

fn help_ui(app: &mut ViewerApp, ctx: &egui::Context) {
    let mut open = true;
    egui::Window::new("Keyboard shortcuts")
        .open(&mut open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, Vec2::ZERO)
        .show(ctx, |ui| {
            // Taller than a small window (36 rows): scroll inside it, title bar and close
            // button in view (at 800 × 500 both were above the window's top edge).
            let height = (ctx.content_rect().height() - 90.0).max(120.0);
            egui::ScrollArea::vertical()
                .max_height(height)
                .show(ui, |ui| {
                    egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                        for (keys, action) in SHORTCUTS {
                            ui.monospace(*keys);
                            ui.label(*action);
                            ui.end_row();
                        }
                    });
                    ui.add_space(6.0);
                    ui.label(RichText::new(RESEARCH_NOTICE).color(WARN));
                });
        });
    if !open {
        app.show_help = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `grid_fits` says a grid fits, egui's Grid lays it out within the width: columns of
    /// short texts ("rate", "67 %") are as wide as a grid's minimum column, not as their text, and
    /// the Zones vs maps table, said to fit a 1,400-px window's study list, was cut after "chanc".
    #[test]
    fn a_grid_said_to_fit_lays_out_within_the_width() {
        let columns: Vec<Vec<String>> = [
            ["map", "Grad-CAM"],
            ["rate", "67 %"],
            ["CI", "—"],
            ["n", "2"],
            ["chance", "56 %"],
        ]
        .iter()
        .map(|c| c.iter().map(|t| t.to_string()).collect())
        .collect();
        let ctx = egui::Context::default();
        let mut said_to_fit = 0;
        for width in (150..=400).step_by(5).map(|w| w as f32) {
            let mut verdict = (false, 0.0);
            // Two passes: a grid sizes its columns on its first.
            for _ in 0..2 {
                let mut output = ctx.run_ui(egui::RawInput::default(), |ui| {
                    ui.allocate_ui(egui::vec2(width, 400.0), |ui| {
                        ui.set_max_width(width);
                        let fits = grid_fits(ui, &columns);
                        let grid = egui::Grid::new("g").show(ui, |ui| {
                            for row in 0..2 {
                                for column in &columns {
                                    ui.label(&column[row]);
                                }
                                ui.end_row();
                            }
                        });
                        verdict = (fits, grid.response.rect.width());
                    });
                });
                output.textures_delta.clear();
            }
            let (fits, laid_out) = verdict;
            if fits {
                said_to_fit += 1;
                assert!(
                    laid_out <= width,
                    "said to fit {width} px, laid out {laid_out} px"
                );
            }
        }
        assert!(said_to_fit > 0, "never said to fit");
    }

    /// The hip films of `../shared/dicom`, two RSNA films and a training film: at every
    /// width of the study list's file column, each shortened name fits it and the names stay
    /// apart. egui's cut at the end made the four hip films read alike ("wg04_RG2_cr_hip_mono…"),
    /// as `end_cut` below, which the test also checks, so that it would see the old way fail.
    #[test]
    fn names_shortened_for_the_study_list_fit_and_stay_apart() {
        let names = [
            "wg04_RG2_cr_hip_mono2_10bit_jpeg_extended_fixed.dcm",
            "wg04_RG2_cr_hip_mono2_10bit_jpeg_lossless_sv1_2140x1760.dcm",
            "wg04_RG2_cr_hip_mono2_10bit_jpegls_nearlossless_2140x1760.dcm",
            "wg04_RG2_cr_hip_mono2_10bit_rle_2140x1760.dcm",
            "0c0181c0-c009-4387-b087-d314a4ffcba2.dcm",
            "0c89ca38-27ca-4cd0-88cb-18093fdcb04b.dcm",
            "IM-0176-0001.jpeg",
        ];
        let relatives: Vec<std::path::PathBuf> = names.iter().map(Into::into).collect();
        let shared = crate::ui::review::shared_name_prefixes(&relatives);
        let ctx = egui::Context::default();
        for width in (100..=300).step_by(10).map(|w| w as f32) {
            let mut output = ctx.run_ui(egui::RawInput::default(), |ui| {
                let shown: Vec<String> = names
                    .iter()
                    .zip(&shared)
                    .map(|(name, &shared)| elided_name(ui, name, shared, width))
                    .collect();
                for (name, s) in names.iter().zip(&shown) {
                    assert!(
                        text_width(ui, s) <= width,
                        "{width} px: '{s}' is {} px wide",
                        text_width(ui, s)
                    );
                    assert!(s == name || s.contains('…'), "{s}");
                }
                let distinct: std::collections::BTreeSet<&String> = shown.iter().collect();
                assert_eq!(distinct.len(), names.len(), "{width} px: {shown:?}");
                if width == 160.0 {
                    // The study list's column in a 1,400-px window, where egui cut at the end.
                    let end_cut: std::collections::BTreeSet<String> = names
                        .iter()
                        .map(|n| {
                            let mut cut = String::new();
                            for c in n.chars() {
                                if text_width(ui, &format!("{cut}{c}…")) > width {
                                    break;
                                }
                                cut.push(c);
                            }
                            cut
                        })
                        .collect();
                    assert!(end_cut.len() < names.len(), "{end_cut:?}");
                    assert!(shown[3].ends_with("…rle_2140x1760.dcm"), "{shown:?}");
                }
            });
            output.textures_delta.clear();
        }
    }

    #[test]
    fn identifiers_are_recognised() {
        assert!(is_identifier("(0010,0010)", "PatientName"));
        assert!(is_identifier("(0010,0020)", "PatientID"));
        assert!(is_identifier("(0010,0030)", "PatientBirthDate"));
        assert!(is_identifier("(0008,0050)", "AccessionNumber"));
        assert!(!is_identifier("(0010,1010)", "PatientAge"));
        assert!(!is_identifier("(0008,0060)", "Modality"));
    }

    #[test]
    fn zones_read_naturally() {
        assert_eq!(zone_label("right_upper"), "R upper");
        assert_eq!(zone_label("left_lower"), "L lower");
    }

    #[test]
    fn recent_names_folders_and_dicomdirs_apart() {
        assert_eq!(recent_label(Path::new("/data/study1"), true), "study1/");
        assert_eq!(
            recent_label(Path::new("/media/cd2/DICOMDIR"), false),
            "cd2/DICOMDIR"
        );
        assert_eq!(recent_label(Path::new("/data/a.png"), false), "a.png");
        // The same name twice: each says which folder it is in; a name of its own stays short.
        let entries = [
            (PathBuf::from("/repo/samples/p45.jpeg"), false),
            (PathBuf::from("/tmp/PN/p45.jpeg"), false),
            (PathBuf::from("/data/a.png"), false),
            (PathBuf::from("/x/sub"), true),
            (PathBuf::from("/y/sub"), true),
        ];
        assert_eq!(
            recent_labels(&entries),
            [
                "samples/p45.jpeg",
                "PN/p45.jpeg",
                "a.png",
                "x/sub/",
                "y/sub/"
            ]
        );
    }
}

#[cfg(test)]
mod layout_tests {
    use super::SideLayout;

    #[test]
    fn the_film_keeps_its_share_and_wide_windows_keep_the_fixed_ranges() {
        for w in [800.0f32, 1024.0, 1280.0, 1400.0, 1920.0, 2560.0] {
            let l = SideLayout::for_window(egui::vec2(w, 900.0));
            assert!(l.study_list.max + l.side.max <= w - 240.0, "{w}: {l:?}");
            assert!(l.study_list.min <= l.study_list.max && l.side.min <= l.side.max);
            assert_eq!(l.side.min, 300.0, "{w}: the result needs 300 px");
        }
        // 1400 px (the default window): the side column's default 380 and the list's 500 fit.
        let l = SideLayout::for_window(egui::vec2(1400.0, 900.0));
        assert!(
            l.side.contains(380.0) && l.study_list.contains(500.0),
            "{l:?}"
        );
        let l = SideLayout::for_window(egui::vec2(2560.0, 1440.0));
        assert_eq!((l.study_list.max, l.side.max), (900.0, 640.0));
        // The note pane: at most 60 % of the column, at least 120 px where there is room.
        let n = SideLayout::note_pane(375.0);
        assert_eq!(n.min, 120.0);
        assert!((n.max - 225.0).abs() < 1e-3, "{n:?}");
        assert_eq!(SideLayout::note_pane(2000.0).max, 900.0);
        let tiny = SideLayout::note_pane(100.0);
        assert!(tiny.min <= tiny.max && tiny.max <= 100.0, "{tiny:?}");
    }
}
