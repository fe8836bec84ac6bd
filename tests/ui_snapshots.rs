//! Pictures of the main screen, compared pixel by pixel with `tests/snapshots/*.png`
//! (egui_kittest + wgpu on a software adapter; see README "Tests" for the backend and for
//! regenerating them with `UPDATE_SNAPSHOTS=1 cargo test --test ui_snapshots`).
//!
//! The screen is made deterministic rather than the comparison made lenient: the tiny reference
//! model, a bundled sample, the whole analysis finished before the picture (no spinner, no
//! progress bar), and the per-stage timings (wall-clock milliseconds, different on every run)
//! pinned to zero in the app's state. Everything else on screen is what the app computed and drew;
//! the comparison uses egui_kittest's default per-pixel tolerance and allows no failing pixel.

// Test helpers outside #[test] functions may panic too: a failed lock or fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cxr_viewer::analysis::Timings;
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::reviewing::NotesDb;
use cxr_viewer::ui::settings::MapKind;
use egui::{Key, Vec2};
use egui_kittest::Harness;
use ui_support::{fast_settings, repo, temp_dir, tiny_model, ScriptedPicker};

/// The bundled pneumonia sample, analysed by the tiny reference model with few MC samples and IG
/// steps (well under a second), on the window size the app opens with.
fn analysed_main_screen() -> Harness<'static, ViewerApp> {
    // An empty scratch notes database: the note pane shows a new, unsaved note.
    let settings = fast_settings(&temp_dir("snapshot-notes").join("notes.sqlite3"));
    let app = ViewerApp::new(
        settings,
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        Some(repo("assets/samples/person45_bacteria_221.jpeg")),
    );
    let mut h = Harness::builder()
        .with_size(Vec2::new(1400.0, 900.0))
        .wgpu()
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui_root(ui), app);

    let deadline = Instant::now() + Duration::from_secs(120);
    while !fully_analysed(h.state()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the analysis and the notes database"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    // Milliseconds measured on this run: the only thing on screen that changes from run to run.
    let key = h.state().current_key().unwrap();
    h.state_mut().cache.get_mut(&key).unwrap().timings = Timings::default();
    settle(&mut h);
    h
}

fn fully_analysed(app: &ViewerApp) -> bool {
    let done = app.current_entry().is_some_and(|e| {
        e.gradcam.is_some()
            && e.uncertainty.is_some()
            && e.ig.contains_key(&app.wanted_ig_or_default())
    });
    // The job also has to have reported that it finished, or its spinner is still shown; and the
    // notes database has to be open with the study's note loaded, or the note pane shows its
    // spinner instead (opened on another thread: a fast analysis can finish first).
    let notes_shown = app.notes.draft.is_some() && matches!(app.notes.db, NotesDb::Ready(_));
    done && !app.jobs.busy() && notes_shown
}

/// Lays out what changed and lets animations (collapsing headers, selection) finish.
fn settle(h: &mut Harness<'_, ViewerApp>) {
    h.step();
    h.run_ok();
    assert!(!h.state().jobs.busy(), "no analysis may run in a snapshot");
}

#[test]
fn main_screen_with_gradcam() {
    let mut h = analysed_main_screen();
    assert_eq!(h.state().map, MapKind::GradCam, "the default overlay");
    h.snapshot("main_screen_gradcam");
}

#[test]
fn main_screen_with_integrated_gradients() {
    let mut h = analysed_main_screen();
    h.key_press(Key::Num3);
    settle(&mut h);
    assert_eq!(h.state().map, MapKind::IntegratedGradients);
    h.snapshot("main_screen_integrated_gradients");
}

#[test]
fn compare_gradcam_with_integrated_gradients() {
    let mut h = analysed_main_screen();
    h.key_press(Key::C);
    settle(&mut h);
    assert_eq!(h.state().compare, Some(MapKind::IntegratedGradients));
    h.snapshot("compare_gradcam_integrated_gradients");
}
