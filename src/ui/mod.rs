//! The desktop viewer (eframe/egui). The only layer that knows about a UI toolkit: it drives the
//! [`crate::analysis::Engine`] from worker threads and shows the results as they arrive.
//!
//! * `app`: state and actions (one source of truth, plain data, drivable from tests)
//! * `panels`, `canvas`: drawing, functions named `*_ui`
//! * `transform`: image ↔ model ↔ screen coordinates
//! * `box_tool`, `localisation_panel`, `zone_agreement_panel`: opacity boxes in the note, how
//!   well each map points at them, and zones against maps across a reviewed folder
//! * `cache`: per-image results and job cancellation
//! * `worker`: threads, channels, the [`worker::FilePicker`] seam
//! * `render`, `export`: pixels for the screen and for PNG/JSON export
//! * `review`, `reviewing`, `study_list`: a folder under review (study list, filters, outcomes)
//! * `notes_service`, `notes_draft`, `notes_panel`: review notes, saved as the reviewer types
//! * `settings`, `settings_file`: what the user chose, on disk as soon as it changes
//! * `scope_banner`: a film outside the model's scope, its result hidden until "Show anyway"
//! * `trust_state`, `faithfulness_panel`, `sanity_view`: how far each map can be trusted
//! * `frames`: the frame selector of a multi-frame study

pub mod app;
pub mod box_tool;
pub mod cache;
pub mod canvas;
pub mod export;
pub mod faithfulness_panel;
pub mod file_dialog;
pub mod film_levels;
pub mod frame_stats;
pub mod frames;
pub mod localisation_panel;
pub mod notes_draft;
pub mod notes_panel;
pub mod notes_service;
pub mod panels;
pub mod prediction_cache;
pub mod render;
pub mod review;
pub mod reviewing;
pub mod sanity_view;
pub mod scope_banner;
pub mod settings;
pub mod settings_file;
pub mod shortcuts;
pub mod study_list;
pub mod system_dialog;
pub mod transform;
pub mod trust_state;
pub mod worker;
pub mod zone_agreement_panel;

use std::path::PathBuf;

pub use app::ViewerApp;
pub use worker::FilePicker;

/// The window's title with no film open ([`ViewerApp::window_title`] puts the film's name first).
pub const WINDOW_TITLE: &str = "cxr-viewer — research use only, not for diagnosis";

/// Opens the viewer window and blocks until it is closed.
/// `notes_db`: `--db`, this run's notes database.
/// `initial`: one file or folder to open, or several files to open as a set (as if dropped
/// together: [`ViewerApp::open_dropped_files`]).
pub fn run(
    initial: Vec<PathBuf>,
    model_path: PathBuf,
    notes_db: Option<PathBuf>,
) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(WINDOW_TITLE)
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    // A panic inside the window loop (see `ViewerApp`'s `Drop`) ends the run as an error with one
    // line, after the panic hook's message, instead of a second trace from `main`.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eframe::run_native(
            "cxr-viewer",
            options,
            Box::new(move |cc| {
                let (initial_file, initial_set) = match <[PathBuf; 1]>::try_from(initial) {
                    Ok([one]) => (Some(one), Vec::new()),
                    Err(several) => (None, several),
                };
                Ok(Box::new(
                    ViewerApp::from_creation_context(cc, model_path, initial_file, notes_db)
                        .with_initial_set(initial_set),
                ))
            }),
        )
    }));
    match run {
        Ok(result) => result.map_err(|e| anyhow::anyhow!("cannot open the viewer window: {e}")),
        Err(panic) => Err(anyhow::anyhow!(
            "the viewer window stopped unexpectedly ({}); the open note and the settings were \
             saved as on a normal exit, unless an error above says otherwise",
            panic_message(panic.as_ref())
        )),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}
