//! The review note of the study on screen: verdict, error categories, zones (clickable on the
//! lung schematic), free text, reviewer, and whether it is saved. Every change goes through
//! [`ViewerApp::note_edited`], which schedules the autosave.

use egui::{Color32, RichText, Sense, Stroke};

use crate::notes::{Agreement, ErrorCategory, Finding, Note, Outcome, Zone};

use super::app::{display_name, ViewerApp};
use super::panels::{lung_sides_ui, lung_zones, LUNGS_SIZE};
use super::reviewing::NotesDb;
use super::worker::PickPurpose;

const ERROR: Color32 = Color32::from_rgb(255, 110, 110);
const WARN: Color32 = Color32::from_rgb(255, 170, 60);
const SELECTED_ZONE: Color32 = Color32::from_rgb(230, 120, 40);

pub fn notes_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("Review note");
        save_state_ui(app, ui);
    });
    match &app.notes.db {
        NotesDb::Closed | NotesDb::Opening(_) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("opening the notes database…");
            });
            return;
        }
        NotesDb::Failed(e) => {
            ui.label(RichText::new(format!("Notes unavailable: {e}")).color(ERROR));
            database_ui(app, ui);
            return;
        }
        NotesDb::Ready(_) => {}
    }
    let truth = truth_facts(app);
    let Some(draft) = app.notes.draft.as_mut() else {
        let text = if app.current.as_ref().is_some_and(|c| c.study.is_some()) {
            "identifying the study…"
        } else {
            "open an image to write a note"
        };
        ui.label(RichText::new(text).weak());
        database_ui(app, ui);
        return;
    };
    // Taken only once the box is there: `T` pressed while the study opens waits for it.
    let focus_text = std::mem::take(&mut app.notes.focus_text);
    let mut edited = false;
    edited |= truth_ui(&truth, &mut draft.note, ui);
    edited |= verdict_ui(&mut draft.note, truth.hidden, ui);
    edited |= categories_ui(&mut draft.note, ui);
    edited |= zones_ui(&mut draft.note, ui);
    edited |= text_ui(&mut draft.note, focus_text, ui);
    if edited {
        app.note_edited();
    }
    times_ui(app, ui);
    reviewer_ui(app, ui);
    database_ui(app, ui);
}

/// What the note pane shows about the study besides the note: the folder's label, the model's
/// answer, and the class names.
struct TruthFacts {
    folder: Option<Finding>,
    prediction: Option<crate::notes::PredictionSnapshot>,
    /// The scope guard hides the model's answer for this image ([`super::scope_banner`]).
    hidden: bool,
    /// Negative, positive.
    names: [String; 2],
}

fn truth_facts(app: &ViewerApp) -> TruthFacts {
    let path = app.notes.draft.as_ref().map(|d| d.path.as_path());
    TruthFacts {
        folder: path.and_then(|p| app.folder_truth(p)),
        prediction: path.and_then(|p| app.live_prediction(p)),
        hidden: super::scope_banner::result_hidden(app),
        names: [
            app.class_name(Finding::Negative),
            app.class_name(Finding::Positive),
        ],
    }
}

/// Ground truth (the folder's unless the reviewer sets one), the model's answer, the outcome.
fn truth_ui(facts: &TruthFacts, note: &mut Note, ui: &mut egui::Ui) -> bool {
    let folder = facts.folder;
    let name = |f: Finding| facts.names[usize::from(f == Finding::Positive)].clone();
    let mut edited = false;
    let set = note.ground_truth;
    let shown = match crate::notes::TruthSource::of(set, folder) {
        Some((f, crate::notes::TruthSource::Folder)) => format!("{} (folder)", name(f)),
        Some((f, _)) => name(f),
        None => "not set".to_string(),
    };
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Ground truth")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                let mut choice = set;
                ui.selectable_value(
                    &mut choice,
                    None,
                    folder.map_or("not set".to_string(), |g| {
                        format!("from folder: {}", name(g))
                    }),
                );
                for f in [Finding::Negative, Finding::Positive] {
                    ui.selectable_value(&mut choice, Some(f), name(f));
                }
                if choice != set {
                    note.ground_truth = choice;
                    edited = true;
                }
            });
    });
    let truth = note.ground_truth.or(folder);
    match facts.prediction {
        Some(_) if facts.hidden => {
            ui.label(RichText::new("Model: hidden (outside the model's scope)").weak());
        }
        Some(p) => {
            let outcome = truth.map(|t| Outcome::of(t, p.predicted));
            let text = format!(
                "Model: {} (P = {:.2}){}",
                name(p.predicted),
                p.probability,
                outcome.map_or(String::new(), |o| format!(" — {}", o.label()))
            );
            let color = if outcome.is_some_and(Outcome::is_error) {
                ERROR
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(text).color(color));
        }
        None => {
            ui.label(RichText::new("Model: not predicted yet").weak());
        }
    }
    edited
}

/// What Y/N/U and the verdict buttons say while the model's answer is hidden.
pub const VERDICT_HIDDEN: &str =
    "the model's answer is hidden (outside its scope): S shows it, then Y / N / U judge it";

/// Agree / disagree / unsure with the model's answer; not while the scope guard hides that
/// answer (`hidden`), since a verdict on an answer the reviewer has not seen is noise in the
/// review data.
fn verdict_ui(note: &mut Note, hidden: bool, ui: &mut egui::Ui) -> bool {
    let mut edited = false;
    ui.add_enabled_ui(!hidden, |ui| {
        ui.horizontal(|ui| {
            ui.label("Verdict:");
            for (a, key) in [
                (Agreement::Agree, "Y"),
                (Agreement::Disagree, "N"),
                (Agreement::Unsure, "U"),
            ] {
                let on = note.agreement == Some(a);
                if ui
                    .selectable_label(on, a.label())
                    .on_hover_text(format!("{key}: agree with the model's output or not"))
                    .on_disabled_hover_text(VERDICT_HIDDEN)
                    .clicked()
                {
                    note.agreement = (!on).then_some(a);
                    edited = true;
                }
            }
        })
    });
    edited
}

fn categories_ui(note: &mut Note, ui: &mut egui::Ui) -> bool {
    let mut edited = false;
    ui.label("Why the model went wrong (any that apply):");
    ui.horizontal_wrapped(|ui| {
        for c in ErrorCategory::ALL {
            let mut on = note.categories.contains(c);
            if ui.checkbox(&mut on, c.label()).changed() {
                set_member(&mut note.categories, *c, on);
                edited = true;
            }
        }
    });
    edited
}

/// The lung schematic as six toggles (checkboxes for screen readers and tests). Zones the note's
/// boxes overlap are outlined in the boxes' colour and listed: Zones vs maps counts them as
/// implicated ([`Note::implicated_zones`]), so a schematic that said "none" would hide what the
/// note claims.
fn zones_ui(note: &mut Note, ui: &mut egui::Ui) -> bool {
    let mut edited = false;
    let from_boxes = note.zones_from_boxes();
    ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(LUNGS_SIZE, Sense::hover());
        let painter = ui.painter_at(rect);
        for (i, ((r, rounding), zone)) in lung_zones(rect).into_iter().zip(Zone::ALL).enumerate() {
            let response = ui
                .interact(r, ui.scope_id().with(("note-zone", i)), Sense::click())
                .on_hover_text(zone.label());
            let on = note.zones.contains(zone);
            response.widget_info(|| {
                egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, zone.label())
            });
            if response.clicked() {
                set_member(&mut note.zones, *zone, !on);
                edited = true;
            }
            let on = note.zones.contains(zone);
            let fill = if on {
                SELECTED_ZONE
            } else if response.hovered() {
                ui.visuals().widgets.hovered.bg_fill
            } else {
                ui.visuals().extreme_bg_color
            };
            painter.rect_filled(r, rounding, fill);
            let outline = if from_boxes.contains(zone) {
                Stroke::new(2.5, super::box_tool::BOX_COLOR)
            } else {
                Stroke::new(1.0, Color32::from_gray(160))
            };
            painter.rect_stroke(r, rounding, outline, egui::StrokeKind::Inside);
        }
        lung_sides_ui(ui, &painter, rect);
        ui.vertical(|ui| {
            ui.label("Zones implicated");
            ui.label(RichText::new("click the schematic").small().weak());
            if note.zones.is_empty() && from_boxes.is_empty() {
                ui.label(RichText::new("none").weak());
            }
            for z in &note.zones {
                ui.label(z.label());
            }
            if !from_boxes.is_empty() {
                let names: Vec<&str> = from_boxes.iter().map(|z| z.label()).collect();
                ui.label(
                    RichText::new(format!("from boxes: {}", names.join(", ")))
                        .small()
                        .color(super::box_tool::BOX_COLOR),
                )
                .on_hover_text(
                    "Zones the note's boxes overlap; Zones vs maps counts them as implicated",
                );
            }
        });
    });
    edited
}

/// The comment box's id, fixed so that `T` can focus it before it is drawn
/// ([`super::shortcuts::split_at_focus_note`]).
pub(super) fn comment_id() -> egui::Id {
    egui::Id::unique("review-note-comment")
}

fn text_ui(note: &mut Note, focus: bool, ui: &mut egui::Ui) -> bool {
    let label = ui.label("Comment");
    let edit = egui::TextEdit::multiline(&mut note.text)
        .id(comment_id())
        .hint_text("What did the model get wrong, and why? (T)")
        .desired_rows(4)
        .desired_width(f32::INFINITY);
    // Esc is the box's own: left to egui, it drops the focus before the box reads the letters
    // typed in the same frame ([`super::shortcuts::typing_after_leaving`]).
    let filter = egui::EventFilter {
        escape: true,
        ..edit.get_event_filter()
    };
    let response = ui.add(edit.event_filter(filter));
    let response = response.labelled_by(label.id);
    if focus {
        // `T` from anywhere: the reviewer must see what they type, even when the pane is
        // scrolled or the window small.
        response.request_focus();
        response.scroll_to_me(Some(egui::Align::Center));
    }
    if response.has_focus()
        && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape))
    {
        response.surrender_focus();
    }
    response.changed()
}

fn reviewer_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        let label = ui.label("Reviewer");
        ui.add(
            egui::TextEdit::singleline(&mut app.settings.reviewer)
                .hint_text("your name or initials")
                .desired_width(160.0),
        )
        .labelled_by(label.id)
        .on_hover_text("Recorded in every note you edit; remembered between runs");
    });
}

/// Next to the heading: whether what is on screen is on disk.
fn save_state_ui(app: &ViewerApp, ui: &mut egui::Ui) {
    let Some(draft) = &app.notes.draft else {
        return;
    };
    if let Some(e) = &draft.error {
        ui.label(RichText::new("not saved, retrying").color(ERROR))
            .on_hover_text(e.as_str());
    } else if !draft.is_saved() {
        ui.label(RichText::new("saving…").color(WARN));
    } else if app.notes.all().contains_key(&draft.note.study) {
        ui.label(RichText::new("saved").weak());
    } else {
        ui.label(RichText::new("saved as you type").weak());
    }
}

/// Who wrote the stored note and when, and which study it belongs to.
fn times_ui(app: &ViewerApp, ui: &mut egui::Ui) {
    let Some(draft) = &app.notes.draft else {
        return;
    };
    if let Some(e) = &draft.error {
        ui.label(RichText::new(format!("Not saved yet: {e}")).color(ERROR));
    }
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    if let Some(n) = app.notes.all().get(&draft.note.study) {
        let by = if n.reviewer.is_empty() {
            String::new()
        } else {
            format!("by {} · ", n.reviewer)
        };
        ui.label(
            RichText::new(format!(
                "{by}created {} · updated {}",
                local(n.created_at),
                local(n.updated_at)
            ))
            .small(),
        );
    }
    ui.label(
        RichText::new(format!("Study {}", short_id(draft.note.study.as_str())))
            .small()
            .weak(),
    )
    .on_hover_text(draft.note.study.as_str());
}

fn short_id(id: &str) -> String {
    if id.chars().count() > 28 {
        format!("{}…", id.chars().take(27).collect::<String>())
    } else {
        id.to_string()
    }
}

fn database_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        let (name, full) = match &app.notes.db {
            NotesDb::Ready(p) | NotesDb::Opening(p) => (display_name(p), p.display().to_string()),
            _ => ("none".to_string(), String::new()),
        };
        ui.label(RichText::new(format!("Database: {name}")).small())
            .on_hover_text(full);
        if ui
            .small_button("Change…")
            .on_hover_text("Open or create another notes database")
            .clicked()
        {
            app.request_pick(PickPurpose::NotesDb);
        }
        let ready = matches!(app.notes.db, NotesDb::Ready(_));
        ui.add_enabled_ui(ready, |ui| {
            if ui
                .small_button("Export notes…")
                .on_hover_text("CSV or JSON by extension; no file paths unless ticked")
                .clicked()
            {
                app.request_pick(PickPurpose::ExportNotes);
            }
            if ui
                .small_button("Import notes…")
                .on_hover_text(
                    "Merge an export: the later edit of each study wins. \
                     An RSNA labels file (patientId,x,y,width,height,Target) gives \
                     the open folder's films its boxes and ground truth",
                )
                .clicked()
            {
                app.request_pick(PickPurpose::ImportNotes);
            }
        });
        // An RSNA labels file has no paths: the file stem is its patientId.
        ui.add_enabled(
            !app.export_rsna_labels,
            egui::Checkbox::new(&mut app.export_note_paths, "with file paths"),
        );
        ui.checkbox(&mut app.export_rsna_labels, "as RSNA labels")
            .on_hover_text(
                "Export only the boxes and negative ground truths, as \
                 patientId,x,y,width,height,Target (patientId: the file name without its \
                 extension), as notes export --rsna does",
            );
    });
}

fn set_member<T: Ord>(set: &mut std::collections::BTreeSet<T>, item: T, member: bool) {
    if member {
        set.insert(item);
    } else {
        set.remove(&item);
    }
}
