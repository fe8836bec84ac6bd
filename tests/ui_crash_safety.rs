//! What a crash may take from a reviewer: nothing typed more than the autosave delay ago, in any
//! window state. eframe skips the drawing pass while the window is minimised or covered and
//! calls only `App::logic`; these tests drive exactly that (`Context::run_logic`, the call eframe
//! makes then) and read the results from disk while the viewer is still running, as a crash
//! would leave them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxr_viewer::notes::{Filter, NotesStore};
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::notes_draft::{IDLE, MAX_DELAY};
use cxr_viewer::ui::reviewing::NotesDb;
use cxr_viewer::ui::settings::Settings;
use cxr_viewer::ui::settings_file;
use egui::accesskit::Role;
use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ui_support::*;

const SAMPLE: &str = "assets/samples/person45_bacteria_221.jpeg";
const TEXT: &str = "typed, then the window was covered";

fn viewer(settings: Settings, picker: ScriptedPicker) -> ViewerApp {
    ViewerApp::new(settings, Arc::new(picker), tiny_model(), Some(repo(SAMPLE)))
}

fn ready_for_notes(h: &mut Harness<'_, ViewerApp>) {
    wait_until(h, "the note of the sample", |a| {
        a.notes.draft.is_some() && matches!(a.notes.db, NotesDb::Ready(_))
    });
}

fn type_into(h: &mut Harness<'_, ViewerApp>, role: Role, label: &str, text: &str) {
    h.get_by_role_and_label(role, label).scroll_to_me();
    h.step();
    h.get_by_role_and_label(role, label).focus();
    h.step();
    h.get_by_role_and_label(role, label).type_text(text);
    h.step();
}

/// One tick of a hidden window: `App::logic` only, no UI pass, no input.
fn hidden_tick(h: &mut Harness<'_, ViewerApp>) {
    let ctx = h.ctx.clone();
    let app = h.state_mut();
    let _ = ctx.run_logic(&egui::RawInput::default(), |ctx| app.logic_root(ctx));
}

/// The comment saved in `db`, read with a connection of its own.
fn stored_text(db: &Path) -> Option<String> {
    let store = NotesStore::open(db).ok()?;
    store
        .list(Filter::All)
        .ok()?
        .into_iter()
        .map(|n| n.text)
        .find(|t| !t.is_empty())
}

fn hidden_until<T>(h: &mut Harness<'_, ViewerApp>, what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        hidden_tick(h);
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_note_typed_before_the_window_is_covered_is_saved_without_any_painting() {
    let db = temp_dir("hidden-db").join("notes.sqlite3");
    let mut h = harness(viewer(fast_settings(&db), ScriptedPicker::default()));
    ready_for_notes(&mut h);
    type_into(&mut h, Role::MultilineTextInput, "Comment", TEXT);
    assert!(
        !h.state().notes.all_saved(),
        "the edit waits for a pause in typing"
    );

    // Covered now: no frame is drawn. Time alone saves nothing (the save is sent by the app)…
    std::thread::sleep(IDLE + Duration::from_millis(100));
    assert_eq!(stored_text(&db), None);
    // …but eframe still calls `App::logic`, and that sends it.
    let text = hidden_until(&mut h, "the note on disk", || stored_text(&db));
    assert_eq!(text, TEXT);
    // The reply from the notes thread is taken in too, still without painting.
    let deadline = Instant::now() + MAX_DELAY + Duration::from_secs(20);
    while !h.state().notes.all_saved() {
        assert!(Instant::now() < deadline, "the save was never confirmed");
        hidden_tick(&mut h);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_panic_in_the_window_loop_still_saves_the_note_being_typed() {
    // winit unwraps X11 replies, so a window destroyed under the viewer panics inside eframe and
    // `on_exit` never runs (rust-windowing/winit#3686); what unwinds past it drops the app.
    let db = temp_dir("panic-db").join("notes.sqlite3");
    let mut h = harness(viewer(fast_settings(&db), ScriptedPicker::default()));
    ready_for_notes(&mut h);
    type_into(&mut h, Role::MultilineTextInput, "Comment", TEXT);
    assert!(
        !h.state().notes.all_saved(),
        "the edit waits for a pause in typing"
    );
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _window_loop = h;
        panic!("X11Error {{ error_kind: Window, request_name: Some(\"TranslateCoordinates\") }}");
    }));
    assert!(unwound.is_err());
    // Read at once: no autosave pause has passed, and no thread of the viewer is left to save.
    assert_eq!(stored_text(&db).as_deref(), Some(TEXT));
}

#[test]
fn reviewer_and_database_are_on_disk_as_soon_as_they_change() {
    let dir = temp_dir("settings-on-change");
    let settings_path = dir.join("config/settings.json");
    let first_db = dir.join("first.sqlite3");
    let chosen_db = dir.join("chosen.sqlite3");
    let picker = ScriptedPicker::default().saving(std::slice::from_ref(&chosen_db));
    let app = viewer(fast_settings(&first_db), picker).with_settings_file(settings_path.clone());
    let mut h = harness(app);
    ready_for_notes(&mut h);
    // Opening the sample put it first among the recent files: that change is on disk a moment
    // later too (how soon depends on how long the analysis took, so wait for it, not assume).
    let sample = std::fs::canonicalize(repo(SAMPLE)).unwrap();
    let on_disk = hidden_until(
        &mut h,
        "the opened file among the recent ones on disk",
        || {
            settings_file::load(&settings_path)
                .ok()
                .flatten()
                .filter(|s| s.recent.first() == Some(&sample))
        },
    );
    assert_eq!(on_disk.reviewer, "", "no reviewer typed yet");

    type_into(&mut h, Role::TextInput, "Reviewer", "AB");
    let on_disk = hidden_until(&mut h, "the reviewer on disk", || {
        settings_file::load(&settings_path)
            .ok()
            .flatten()
            .filter(|s| s.reviewer == "AB")
    });
    assert_eq!(on_disk.notes_db.as_deref(), Some(first_db.as_path()));

    click_in_view(&mut h, "Change…");
    let on_disk = hidden_until(&mut h, "the chosen database on disk", || {
        settings_file::load(&settings_path)
            .ok()
            .flatten()
            .filter(|s| s.notes_db.as_deref() == Some(chosen_db.as_path()))
    });
    assert_eq!(on_disk.reviewer, "AB");
    wait_until(
        &mut h,
        "the chosen database",
        |a| matches!(&a.notes.db, NotesDb::Ready(p) if *p == chosen_db),
    );
    // The viewer is still running: this is what a crash now would leave.
    assert_eq!(h.state().settings, on_disk);
}

#[test]
fn db_option_opens_that_database_for_this_run_only() {
    let dir = temp_dir("db-option");
    let remembered = dir.join("remembered.sqlite3");
    let given = dir.join("given/notes.sqlite3");
    let settings_path = dir.join("settings.json");
    let app = viewer(fast_settings(&remembered), ScriptedPicker::default())
        .with_notes_db(Some(given.clone()))
        .with_settings_file(settings_path.clone());
    let mut h = harness(app);
    ready_for_notes(&mut h);
    assert!(matches!(&h.state().notes.db, NotesDb::Ready(p) if *p == given));
    type_into(&mut h, Role::MultilineTextInput, "Comment", TEXT);
    let text = hidden_until(&mut h, "the note in the given database", || {
        stored_text(&given)
    });
    assert_eq!(text, TEXT);
    assert!(
        !remembered.exists(),
        "the remembered database is left alone"
    );
    assert_eq!(
        h.state().settings.notes_db.as_deref(),
        Some(remembered.as_path()),
        "--db is not remembered"
    );
    // Opening the sample is remembered (recent files); the database given for this run is not.
    let on_disk = settings_file::load(&settings_path).unwrap().unwrap();
    assert_eq!(on_disk.notes_db.as_deref(), Some(remembered.as_path()));
}

#[test]
fn t_brings_the_comment_box_into_view_and_focuses_it() {
    let db = temp_dir("t-key").join("notes.sqlite3");
    // The window's default size (`ui::run`).
    let size = egui::vec2(1400.0, 900.0);
    let mut h = Harness::builder().with_size(size).build_ui_state(
        |ui, app: &mut ViewerApp| app.ui_root(ui),
        viewer(fast_settings(&db), ScriptedPicker::default()),
    );
    ready_for_notes(&mut h);
    wait_until(&mut h, "the analysis", |a| !a.jobs.busy());
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
    let comment = h.get_by_role_and_label(Role::MultilineTextInput, "Comment");
    assert!(
        !screen.contains_rect(comment.rect()),
        "premise: at this size the comment box starts out of view ({:?})",
        comment.rect()
    );
    h.key_press(Key::T);
    h.run_ok();
    let comment = h.get_by_role_and_label(Role::MultilineTextInput, "Comment");
    assert!(comment.is_focused());
    assert!(
        screen.contains_rect(comment.rect()),
        "the comment box is on screen: {:?}",
        comment.rect()
    );
    comment.type_text("seen");
    h.step();
    assert_eq!(h.state().notes.draft.as_ref().unwrap().note.text, "seen");
}
