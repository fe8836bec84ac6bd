//! Helpers for the tests that drive the viewer through egui_kittest.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::settings::Settings;
use cxr_viewer::ui::FilePicker;
use egui::Vec2;
use egui_kittest::Harness;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The tiny reference network: a whole analysis takes well under a second.
pub fn tiny_model() -> PathBuf {
    repo("tests/fixtures/reference/model.json")
}

/// A fresh directory, unique per call. It must outlive the app that uses it, so it is not a
/// self-removing guard; it lives in cargo's scratch folder for tests (`target/tmp`), never in
/// the system temp dir, and goes with `cargo clean`.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cxr-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Answers dialogs from a script instead of asking a person.
#[derive(Default)]
pub struct ScriptedPicker {
    pub open: Mutex<VecDeque<PathBuf>>,
    pub save: Mutex<VecDeque<PathBuf>>,
    /// Multiple selections for Open…, answered before `open`.
    pub together: Mutex<VecDeque<Vec<PathBuf>>>,
    /// The names the viewer suggested to Save dialogs, in order.
    pub suggested: Mutex<Vec<String>>,
}

impl ScriptedPicker {
    pub fn opening(paths: &[PathBuf]) -> Self {
        Self {
            open: Mutex::new(paths.iter().cloned().collect()),
            ..Self::default()
        }
    }

    /// Open… answers these files at once, as a multiple selection.
    pub fn opening_together(self, paths: &[PathBuf]) -> Self {
        self.together.lock().unwrap().push_back(paths.to_vec());
        self
    }

    pub fn saving(self, paths: &[PathBuf]) -> Self {
        *self.save.lock().unwrap() = paths.iter().cloned().collect();
        self
    }
}

impl FilePicker for ScriptedPicker {
    fn pick_file(&self) -> Option<PathBuf> {
        self.open.lock().unwrap().pop_front()
    }
    fn pick_files(&self) -> Vec<PathBuf> {
        match self.together.lock().unwrap().pop_front() {
            Some(paths) => paths,
            None => self.pick_file().into_iter().collect(),
        }
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        self.open.lock().unwrap().pop_front()
    }
    fn save_file(&self, suggested: &str, _ext: &str) -> Option<PathBuf> {
        self.suggested.lock().unwrap().push(suggested.to_string());
        self.save.lock().unwrap().pop_front()
    }
}

/// Few MC samples and IG steps, and notes in `notes_db` (never the user's own database).
pub fn fast_settings(notes_db: &Path) -> Settings {
    Settings {
        mc_samples: 5,
        ig_steps: 4,
        notes_db: Some(notes_db.to_path_buf()),
        ..Settings::default()
    }
}

pub fn harness(app: ViewerApp) -> Harness<'static, ViewerApp> {
    Harness::builder()
        .with_size(Vec2::new(1500.0, 950.0))
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui_root(ui), app)
}

/// Steps frames until `cond` holds; worker threads deliver between frames.
pub fn wait_until(h: &mut Harness<'_, ViewerApp>, what: &str, cond: impl Fn(&ViewerApp) -> bool) {
    step_until(h, what, |h| cond(h.state()));
}

/// Steps frames until `cond` holds of the harness (what is on screen, not only the app's state).
/// Stepped, not run to rest: the model may still be loading, and its spinner keeps repainting.
pub fn step_until(
    h: &mut Harness<'_, ViewerApp>,
    what: &str,
    cond: impl Fn(&Harness<'_, ViewerApp>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond(h) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    // Two more frames: one to apply, one to lay out what changed.
    h.step();
    h.step();
}

pub fn current_path(app: &ViewerApp) -> Option<PathBuf> {
    app.current.as_ref().map(|c| c.path.clone())
}

/// Scrolls the widget into view first, as a person would, then clicks it.
pub fn click_in_view(h: &mut Harness<'_, ViewerApp>, label: &str) {
    use egui_kittest::kittest::Queryable;
    h.get_by_label(label).scroll_to_me();
    h.run_ok();
    h.get_by_label(label).click();
    h.run_ok();
}

/// The table cell labelled `label` is at least as wide as its text in the body font: a cell that
/// truncates would show "di…" or "(0…" instead.
pub fn assert_cell_not_cut(h: &Harness<'_, ViewerApp>, label: &str) {
    use egui_kittest::kittest::Queryable;
    let font = egui::TextStyle::Body.resolve(&h.ctx.global_style());
    let text_width = h.ctx.fonts_mut(|f| {
        f.layout_no_wrap(label.to_string(), font, egui::Color32::WHITE)
            .size()
            .x
    });
    let cell = h.get_by_label(label).rect();
    assert!(
        cell.width() + 0.5 >= text_width,
        "the cell is {} wide, the text {text_width}",
        cell.width()
    );
}

/// The study on screen has its prediction, Grad-CAM, uncertainty and the IG it asks for: all a
/// report needs.
pub fn analysed(app: &ViewerApp) -> bool {
    app.current_entry().is_some_and(|e| {
        e.gradcam.is_some()
            && e.uncertainty.is_some()
            && e.ig.contains_key(&app.wanted_ig_or_default())
    })
}
