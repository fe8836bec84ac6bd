//! The viewer's state and what happens to it: messages from workers, opening files, starting
//! and cancelling analyses, shortcuts. Drawing lives in `panels.rs` and `canvas.rs`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use egui::{Key, Modifiers, TextureHandle};

use crate::analysis::{uncertainty_flag, Engine};
use crate::explain::zones::ZoneScore;
use crate::explain::Grid;
use crate::io::{Study, Window};
use crate::notes::Agreement;

use super::cache::{AnalysisKey, Entry, IgKey, JobStage, Jobs, Lru};
use super::export::ReportFormat;
use super::frames;
use super::render::{Percentiles, WindowPreset};
use super::reviewing::{EarlyTyping, NotesDb};
use super::settings::{BaselineChoice, MapKind, Settings};
use super::transform::ScreenFromImage;
use super::worker::{self, FilePicker, JobSpec, JobUpdate, Msg, Outbox, PickPurpose};

/// Images (decoded films) kept in memory for instant back-and-forth.
const STUDY_CACHE: usize = 6;
/// Analyses kept; each is small (maps and a layer4 activation) next to a film.
const ANALYSIS_CACHE: usize = 64;

pub enum EngineState {
    Loading,
    Ready(Arc<Engine>),
    /// One readable line; the viewer still shows images.
    Failed(String),
}

/// A message for the status bar; errors stay until replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub text: String,
    pub is_error: bool,
}

/// How the film is shown. `transform: None` means "fit", recomputed every frame so that a
/// window resize keeps the whole film visible.
#[derive(Clone, Debug)]
pub struct ViewState {
    pub transform: Option<ScreenFromImage>,
    pub window: Window,
    /// `None` after a manual right-drag.
    pub preset: Option<WindowPreset>,
    pub invert: bool,
}

pub struct Current {
    pub path: PathBuf,
    pub study: Option<Arc<Study>>,
    pub error: Option<String>,
    pub view: ViewState,
    pub hist: Option<Percentiles>,
    /// The frame asked for and not yet shown: the next frame step starts from it, and a frame
    /// that arrives after another was asked for is dropped.
    pub frame_requested: Option<u32>,
}

/// Identity of an uploaded texture: rebuilt only when one of these changes.
#[derive(Clone, Debug, PartialEq)]
pub struct FilmKey {
    pub path: PathBuf,
    pub window: [u32; 2],
    pub invert: bool,
    /// Film pixels per texel along each side ([`super::render::texture_region`]).
    pub step: usize,
    /// The part of the film the texture covers (what is on screen, in whole blocks).
    pub region: super::render::FilmRegion,
    /// [`super::render::film_filter`] at the zoom it was drawn for.
    pub filter: egui::TextureOptions,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OverlayKey {
    pub key: AnalysisKey,
    pub kind: MapKind,
    pub ig: Option<IgKey>,
    pub style: [u32; 3],
    pub mode: super::settings::OverlayMode,
    pub colormap: super::settings::ColormapChoice,
}

pub struct ViewerApp {
    pub settings: Settings,
    pub(super) picker: Arc<dyn FilePicker>,
    model_path: PathBuf,
    pub engine: EngineState,
    /// Why the device is not the one asked for (e.g. no GPU).
    pub device_note: Option<String>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    pub(super) ctx: Option<egui::Context>,
    initial_file: Option<PathBuf>,
    /// [`ViewerApp::with_initial_set`].
    initial_set: Vec<PathBuf>,
    studies: Lru<PathBuf, Arc<Study>>,
    pub current: Option<Current>,
    pub cache: Lru<AnalysisKey, Entry>,
    pub jobs: Jobs,
    /// Images of the current folder, sorted; next/previous walk it.
    pub folder: Vec<PathBuf>,
    pub map: MapKind,
    pub overlay_visible: bool,
    pub status: Option<Status>,
    pub show_help: bool,
    pub reveal_identifiers: bool,
    pub export_identifiers: bool,
    pub tag_filter: String,
    /// The system file dialog being waited for ([`super::system_dialog`]).
    pub system_dialog: Option<super::system_dialog::Waiting>,
    /// The last token handed to a system dialog request.
    pub(super) dialog_tokens: u64,
    /// The viewer's own file dialog, while one is open ([`super::file_dialog`]).
    pub file_dialog: Option<super::file_dialog::InAppDialog>,
    /// The system dialog answered at once with nothing (none can be shown), or
    /// `CXR_VIEWER_FILE_DIALOG=builtin`: ask with the viewer's own from now on.
    pub(super) no_system_dialog: bool,
    /// The folder of the last file or folder chosen or saved in this run: dialogs start there.
    pub(super) last_dialog_dir: Option<PathBuf>,
    pub(super) film_tex: Option<(FilmKey, TextureHandle)>,
    /// The current film averaged for the texture steps it has been shown at (with its path).
    pub(super) film_levels: Option<super::film_levels::FilmLevels>,
    /// One per canvas pane (two in compare mode).
    pub(super) overlay_tex: [Option<(OverlayKey, TextureHandle)>; 2],
    pub(super) contours: [Option<(OverlayKey, Vec<[egui::Pos2; 2]>)>; 2],
    /// Second map shown side by side with `map`, same view; `None`: one pane.
    pub compare: Option<MapKind>,
    /// Held-space state, read by the canvas.
    pub(super) overlay_held_hidden: bool,
    /// The folder under review (study list), if one is open.
    pub review: Option<super::review::Review>,
    pub(super) next_scan_id: u64,
    /// A folder to review as soon as the model has loaded.
    pub(super) pending_review: Option<(PathBuf, Option<Vec<PathBuf>>)>,
    pub notes: super::reviewing::NotesState,
    /// Notes exports include file paths (identifiers) only when asked.
    pub export_note_paths: bool,
    /// Notes exports write only the boxes, as an RSNA labels file.
    pub export_rsna_labels: bool,
    /// Position of the study on screen in the list when the list last scrolled to it.
    pub(super) list_scrolled_to: Option<usize>,
    /// Positions of the study list's rows laid out in the last frame (first, last).
    pub(super) list_rows_drawn: Option<(usize, usize)>,
    /// Whole-frame times, when `CXR_VIEWER_FRAME_STATS` asks for them.
    frame_stats: Option<super::frame_stats::FrameStats>,
    /// The window's title as last sent ([`Self::window_title`]).
    sent_title: String,
    /// `on_exit` ran: the closing saves are done and `Drop` has nothing left to do.
    exited: bool,
    /// Where settings are written as they change; `None` (tests): only eframe's storage.
    settings_file: Option<super::settings_file::SettingsFile>,
    /// `--db` / `$CXR_VIEWER_DB`: this run's notes database, ahead of the remembered one and not
    /// remembered itself.
    pub(super) notes_db_override: Option<PathBuf>,
    /// Where folder predictions are kept between sessions ([`super::prediction_cache`]);
    /// `None` (tests, or turned off): every folder is predicted in full.
    pub(super) prediction_cache: Option<PathBuf>,
    /// When the window was last seen going hidden (minimised or covered).
    hidden_since: Option<Instant>,
    /// The study [`Self::prefetch_next`] asked to be read, so it is asked once.
    prefetch_loading: Option<PathBuf>,
    /// The study on screen when the reviewer stopped the analysis: nothing is analysed in
    /// advance while it stays on screen.
    prefetch_held_on: Option<PathBuf>,
    /// The way the reviewer last stepped through the list (`1` Next, `-1` Previous): the study
    /// analysed in advance is the next one that way ([`Self::prefetch_next`]).
    travel: isize,
    /// The widget with the keyboard focus as the last frame ended ([`Self::handle_shortcuts`]).
    focused_last_frame: Option<egui::Id>,
    /// Keys typed after the Esc or Tab that left the comment box, in the same frame: at the
    /// next frame, once the box has taken the letters before it, shortcuts (after Esc) or the
    /// next field's typing (after Tab) ([`super::shortcuts::typing_after_leaving`]).
    keys_after_leaving: Vec<egui::Event>,
    /// The text field an Esc left this frame, given the focus back until its letters are read.
    refocused_for_escape: Option<egui::Id>,
    /// Drawing opacity boxes into the note (`D`).
    pub box_tool: super::box_tool::BoxTool,
    /// The out-of-scope image whose result the user asked to see anyway ([`super::scope_banner`]);
    /// any other image starts hidden again.
    pub scope_shown_anyway: Option<PathBuf>,
    /// Faithfulness, agreement and sanity-check results and their background job.
    pub trust: super::trust_state::TrustState,
}

impl ViewerApp {
    /// `initial_file` opens on the first frame; the model loads in the background meanwhile.
    pub fn new(
        settings: Settings,
        picker: Arc<dyn FilePicker>,
        model_path: PathBuf,
        initial_file: Option<PathBuf>,
    ) -> Self {
        let (tx, rx) = channel();
        Self {
            map: settings.default_map,
            settings,
            picker,
            model_path,
            engine: EngineState::Loading,
            device_note: None,
            tx,
            rx,
            ctx: None,
            initial_file,
            initial_set: Vec::new(),
            studies: Lru::new(STUDY_CACHE),
            current: None,
            cache: Lru::new(ANALYSIS_CACHE),
            jobs: Jobs::default(),
            folder: Vec::new(),
            overlay_visible: true,
            status: None,
            show_help: false,
            reveal_identifiers: false,
            export_identifiers: false,
            tag_filter: String::new(),
            system_dialog: None,
            dialog_tokens: 0,
            file_dialog: None,
            no_system_dialog: super::file_dialog::builtin_requested(
                std::env::var(super::file_dialog::ENV_BUILTIN)
                    .ok()
                    .as_deref(),
            ),
            last_dialog_dir: None,
            film_tex: None,
            film_levels: None,
            overlay_tex: [None, None],
            contours: [None, None],
            compare: None,
            overlay_held_hidden: false,
            review: None,
            next_scan_id: 0,
            pending_review: None,
            notes: super::reviewing::NotesState::new(),
            export_note_paths: false,
            export_rsna_labels: false,
            list_scrolled_to: None,
            list_rows_drawn: None,
            frame_stats: None,
            sent_title: super::WINDOW_TITLE.to_string(),
            exited: false,
            settings_file: None,
            notes_db_override: None,
            prediction_cache: None,
            hidden_since: None,
            prefetch_loading: None,
            prefetch_held_on: None,
            travel: 1,
            focused_last_frame: None,
            keys_after_leaving: Vec::new(),
            refocused_for_escape: None,
            box_tool: super::box_tool::BoxTool::default(),
            scope_shown_anyway: None,
            trust: Default::default(),
        }
    }

    /// Settings written to `path` as soon as they change (see [`super::settings_file`]).
    pub fn with_settings_file(mut self, path: PathBuf) -> Self {
        self.settings_file = Some(super::settings_file::SettingsFile::new(
            path,
            &self.settings,
        ));
        self
    }

    /// Opens `db` as the notes database for this run (`--db`), whatever the settings name.
    pub fn with_notes_db(mut self, db: Option<PathBuf>) -> Self {
        self.notes_db_override = db;
        self
    }

    /// Files to open on the first frame as a set that Next / Previous walk, as if dropped
    /// together (`cxr-viewer a.dcm b.dcm …`).
    pub fn with_initial_set(mut self, files: Vec<PathBuf>) -> Self {
        self.initial_set = files;
        self
    }

    /// Keeps folder predictions in `path` between sessions.
    pub fn with_prediction_cache(mut self, path: Option<PathBuf>) -> Self {
        self.prediction_cache = path;
        self
    }

    /// eframe entry: settings from `settings.json` (written on every change), else from
    /// eframe's storage (written at exit), else the defaults; the real file dialog.
    pub fn from_creation_context(
        cc: &eframe::CreationContext<'_>,
        model_path: PathBuf,
        initial_file: Option<PathBuf>,
        notes_db: Option<PathBuf>,
    ) -> Self {
        let settings_path = super::settings_file::default_path();
        let (from_file, load_error) = match settings_path.as_deref().map(super::settings_file::load)
        {
            Some(Ok(s)) => (s, None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let settings = from_file
            .or_else(|| {
                cc.storage
                    .and_then(|s| eframe::get_value::<Settings>(s, eframe::APP_KEY))
            })
            .unwrap_or_default();
        let mut app = Self::new(
            settings,
            Arc::new(worker::NativePicker),
            model_path,
            initial_file,
        )
        .with_notes_db(notes_db)
        .with_prediction_cache(super::prediction_cache::default_path());
        if let Some(path) = settings_path {
            app = app.with_settings_file(path);
        }
        if let Some(e) = load_error {
            app.set_error(e);
        }
        app.frame_stats = super::frame_stats::FrameStats::from_env();
        app
    }

    /// Hands changed settings to the writer (debounced; see [`super::settings_file`]).
    fn persist_settings(&mut self, ctx: &egui::Context, now: Instant) {
        let Some(file) = self.settings_file.as_mut() else {
            return;
        };
        let (wait, error) = file.tick(&self.settings, now);
        if let Some(wait) = wait {
            ctx.request_repaint_after(wait);
        }
        if let Some(e) = error {
            self.set_error(e);
        }
    }

    fn persist_settings_now(&mut self) {
        if let Some(file) = self.settings_file.as_mut() {
            if let Err(e) = file.write_now(&self.settings) {
                tracing::error!("{e}");
            }
        }
    }

    pub(super) fn outbox(&self) -> Option<Outbox> {
        self.ctx.as_ref().map(|ctx| Outbox {
            tx: self.tx.clone(),
            ctx: ctx.clone(),
        })
    }

    /// One whole frame as a test harness drives it: [`Self::logic_root`] then
    /// [`Self::draw_root`], in the order eframe calls `App::logic` and `App::ui`.
    pub fn ui_root(&mut self, ui: &mut egui::Ui) {
        self.logic_root(ui.ctx());
        self.draw_root(ui);
    }

    /// What must happen whether or not the window is painted: first-frame start-up, worker and
    /// notes-thread messages, analysis scheduling, the notes autosave and writing changed
    /// settings. eframe skips the drawing pass while the window is minimised or covered and
    /// then calls only `App::logic`; anything done only while painting would wait, unsaved,
    /// until the reviewer looked again (or be lost at a crash). Reads no input: while the window
    /// is hidden the input is that of the last shown frame.
    pub fn logic_root(&mut self, ctx: &egui::Context) {
        if self.ctx.is_none() {
            self.ctx = Some(ctx.clone());
            if let Some(out) = self.outbox() {
                worker::load_engine(out, self.model_path.clone());
            }
            self.start_notes();
            if let Some(path) = self.initial_file.take() {
                if path.is_dir() {
                    self.open_folder(&path);
                } else {
                    self.open(path);
                }
            }
            let set = std::mem::take(&mut self.initial_set);
            if !set.is_empty() {
                self.open_dropped_files(set);
            }
        }
        let now = Instant::now();
        let hidden = ctx.input(|i| i.viewport().visible() == Some(false));
        if paint_while_hidden(&mut self.hidden_since, hidden, now) {
            ctx.send_viewport_cmd(egui::ViewportCommand::RequestPaintWhileHidden);
            ctx.request_repaint_after(std::time::Duration::from_millis(50));
        }
        self.drain_messages();
        let title = self.window_title();
        if title != self.sent_title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.sent_title = title;
        }
        self.ensure_analysis();
        super::trust_state::ensure_trust(self);
        self.prefetch_next();
        self.pace_review();
        self.sync_draft();
        self.fill_missing_map_facts(now);
        self.autosave(ctx);
        self.persist_settings(ctx, now);
        if self.jobs.busy() || matches!(self.engine, EngineState::Loading) {
            // Keeps the spinner turning even between worker messages.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// The window's title: the film on screen first, so that two viewer windows, or the viewer
    /// among other windows, are told apart in the task bar and the window switcher (every one
    /// read "cxr-viewer — research use only…"). Its file name only, as the header shows it; no
    /// patient identifier.
    pub fn window_title(&self) -> String {
        match &self.current {
            Some(c) => format!("{} — {}", display_name(&c.path), super::WINDOW_TITLE),
            None => super::WINDOW_TITLE.to_string(),
        }
    }

    /// The drawing pass: input, then the panels. What the panels changed (a note, a setting)
    /// is sent on at once rather than at the next frame.
    pub fn draw_root(&mut self, ui: &mut egui::Ui) {
        let frame_started = Instant::now();
        self.handle_dropped_files(ui.ctx());
        self.handle_shortcuts(ui.ctx());
        self.ensure_analysis();
        self.sync_draft();
        super::panels::frame_ui(self, ui);
        if let Some(id) = self.refocused_for_escape.take() {
            // Its letters read, the field the Esc left lets go ([`Self::handle_shortcuts`]).
            ui.ctx().memory_mut(|m| m.surrender_focus(id));
        }
        self.focused_last_frame = ui.ctx().memory(|m| m.focused());
        self.autosave(ui.ctx());
        self.persist_settings(ui.ctx(), Instant::now());
        let frame_ms = frame_started.elapsed().as_secs_f64() * 1e3;
        if frame_ms > 50.0 {
            // The UI thread must never wait for the network; a slow frame is a bug to find.
            tracing::debug!("slow frame: {frame_ms:.1} ms");
        }
    }

    // ---- messages ----------------------------------------------------------------------

    pub fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::EngineLoaded { result, note } => {
                self.device_note = note;
                self.engine = match result {
                    Ok(engine) => EngineState::Ready(engine),
                    Err(e) => {
                        self.set_error(e.clone());
                        EngineState::Failed(e)
                    }
                };
                if let Some((dir, files)) = self.pending_review.take() {
                    self.start_review_of(&dir, files);
                }
            }
            Msg::StudyLoaded { path, result, id } => {
                if let Some(id) = id {
                    self.notes.ids.insert(path.clone(), id);
                }
                if let Ok(study) = &result {
                    self.studies.get_or_insert_with(&path, || study.clone());
                }
                let Some(current) = self.current.as_mut().filter(|c| c.path == path) else {
                    return;
                };
                match result {
                    Ok(study) => {
                        current.view = ViewState::for_study(&study);
                        current.hist = Some(Percentiles::new(&study));
                        current.study = Some(study);
                    }
                    Err(text) => {
                        // The load error already reads "cannot open NAME: reason".
                        current.error = Some(text.clone());
                        self.set_error(text);
                    }
                }
            }
            Msg::Answered {
                token,
                path,
                more,
                no_dialog,
            } => self.system_dialog_answered(token, path, more, no_dialog),
            Msg::FrameLoaded { path, result } => self.frame_loaded(&path, result),
            Msg::Exported(result) => match result {
                Ok(path) => {
                    self.remember_dialog_dir(&path);
                    self.set_info(format!("saved {}", path.display()));
                }
                Err(e) => self.set_error(format!("export failed: {e}")),
            },
            Msg::Job { id, key, update } => self.handle_job(id, &key, update),
            Msg::Review(msg) => self.handle_review(msg),
            Msg::Notes(reply) => self.handle_notes(reply),
            Msg::Trust(msg) => self.trust.handle(msg),
        }
    }

    fn handle_job(&mut self, id: u64, key: &AnalysisKey, update: JobUpdate) {
        if let JobUpdate::Started(stage) = update {
            self.jobs.set_stage(id, stage);
            return;
        }
        if let JobUpdate::IgProgress { done, total } = update {
            self.jobs
                .set_stage(id, JobStage::IntegratedGradients { done, total });
            return;
        }
        if let JobUpdate::Finished { .. } = update {
            self.jobs.finish(id);
            return;
        }
        // Partial results of a cancelled job are still right: keep them for when the user
        // comes back. Results for an evicted entry are dropped.
        let Some(entry) = self.cache.get_mut(key) else {
            return;
        };
        match update {
            JobUpdate::Prepared {
                prepared,
                target,
                preprocess_ms,
                forward_ms,
            } => {
                entry.timings.scope = prepared.scope_ms;
                entry.prepared = Some(prepared);
                entry.target = target;
                entry.timings.preprocess = preprocess_ms;
                entry.timings.forward = forward_ms;
            }
            JobUpdate::GradCam(result, ms) => {
                entry.gradcam = Some(Arc::new(*result));
                entry.timings.gradcam = ms;
            }
            JobUpdate::Uncertainty(result, ms) => {
                entry.uncertainty = Some(Arc::new(*result));
                entry.timings.uncertainty = ms;
            }
            JobUpdate::Ig(ig_key, result, ms) => {
                entry.insert_ig(ig_key, Arc::new(*result));
                entry.timings.ig = ms;
            }
            JobUpdate::AutoChosen(ig_key, chosen) => entry.take_auto_from(ig_key, chosen),
            JobUpdate::Failed(e) => {
                entry.error = Some(e.clone());
                // A study analysed in advance shows its error when it is opened.
                if self.current_key().as_ref() == Some(key) {
                    self.set_error(format!("analysis failed: {e}"));
                }
            }
            JobUpdate::Started(_) | JobUpdate::IgProgress { .. } | JobUpdate::Finished { .. } => {}
        }
    }

    pub fn set_error(&mut self, text: String) {
        tracing::warn!("{text}");
        self.status = Some(Status {
            text,
            is_error: true,
        });
    }

    pub fn set_info(&mut self, text: String) {
        self.status = Some(Status {
            text,
            is_error: false,
        });
    }

    // ---- opening -----------------------------------------------------------------------

    /// Shows `path` (from the cache at once if it was seen recently) and cancels the analysis of
    /// any other image.
    pub fn open(&mut self, path: PathBuf) {
        // A DICOMDIR is an index of images: it opens as a folder of the images it lists.
        if crate::io::is_dicomdir(&path) {
            self.open_folder(&path);
            return;
        }
        let path = self.absolute_study_path(path);
        if self.current.as_ref().is_some_and(|c| c.path == path) {
            return;
        }
        // `T` was for the study being left.
        self.drop_early_typing();
        self.jobs.cancel_all_but_path(&path);
        self.trust.stop_unless_for(&path);
        let in_review = self
            .review
            .as_ref()
            .is_some_and(|r| r.row_index(&path).is_some());
        // A film of the folder under review is reached through the folder, which Recent holds;
        // remembered one by one, ten films pushed everything else out of the list. A set of
        // files opened together is remembered as a set and by its first film, when it is opened
        // ([`Self::open_dropped_files`]), for the same reason.
        // Not a path that is not there (a typo): it would only take a line of Recent, disabled.
        if !in_review && path.exists() {
            self.settings.remember(&path);
        }
        // Where a folder opened again resumes (a set reopens on its first film, as picked).
        if let Some(r) = self
            .review
            .as_ref()
            .filter(|r| in_review && r.files.is_none())
        {
            self.settings.left_at(&r.root, &path);
        }
        if !in_review && !self.folder.contains(&path) {
            self.folder = path
                .parent()
                .map(list_images)
                .filter(|f| f.contains(&path))
                .unwrap_or_default();
        }
        let study = self.studies.get(&path).cloned();
        let (view, hist) = match &study {
            Some(s) => (ViewState::for_study(s), Some(Percentiles::new(s))),
            None => (ViewState::default(), None),
        };
        self.current = Some(Current {
            path: path.clone(),
            study: study.clone(),
            error: None,
            view,
            hist,
            frame_requested: None,
        });
        self.film_tex = None;
        self.film_levels = None;
        self.overlay_tex = [None, None];
        self.contours = [None, None];
        if self
            .status
            .as_ref()
            .is_some_and(|s| s.is_error && !matches!(self.engine, EngineState::Failed(_)))
        {
            self.status = None;
        }
        if study.is_none() {
            if let Some(out) = self.outbox() {
                worker::load_image(out, path);
            }
        }
    }

    /// The path a study is known by: a study-list row's path as listed (already absolute), else
    /// the path made absolute, so that recent files still work from another working directory,
    /// with its folders resolved but not a link in the file's own name. Resolving the whole path
    /// turned a row that is a link (a labelled folder of links into an archive) into its target,
    /// which no row has: the list lost the study on screen, and Next walked the archive's folder.
    fn absolute_study_path(&self, path: PathBuf) -> PathBuf {
        if self
            .review
            .as_ref()
            .is_some_and(|r| r.row_index(&path).is_some())
        {
            return path;
        }
        let in_resolved_folder = || {
            let name = path.file_name()?;
            let folder = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Some(std::fs::canonicalize(folder).ok()?.join(name))
        };
        in_resolved_folder()
            .or_else(|| std::fs::canonicalize(&path).ok())
            .unwrap_or(path)
    }

    /// (frame count, frame shown) of the study on screen.
    pub fn current_frames(&self) -> Option<(u32, u32)> {
        let m = &self.current.as_ref()?.study.as_ref()?.metadata;
        Some((m.frames, m.frame))
    }

    /// (frame count, frame the next step starts from): the frame still loading if one was asked
    /// for, so that two quick steps move two frames even when the first has not arrived.
    fn frame_target(&self) -> Option<(u32, u32)> {
        let (frames, shown) = self.current_frames()?;
        let requested = self.current.as_ref()?.frame_requested;
        Some((frames, requested.unwrap_or(shown)))
    }

    /// Loads frame `frame` (0-based) of the multi-frame study on screen; the view (zoom, window)
    /// stays, the analysis follows the frame (each frame has its own cache entry).
    pub fn show_frame(&mut self, frame: u32) {
        let Some((frames, shown)) = self.current_frames() else {
            return;
        };
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if frame >= frames || frame == current.frame_requested.unwrap_or(shown) {
            return;
        }
        current.frame_requested = (frame != shown).then_some(frame);
        if current.frame_requested.is_none() {
            // Back to the frame on screen before the other one arrived: nothing to load.
            return;
        }
        let path = current.path.clone();
        self.jobs.cancel_all_except(None);
        if let Some(out) = self.outbox() {
            worker::load_frame(out, path, frame);
        }
    }

    fn frame_loaded(&mut self, path: &Path, result: Result<Arc<Study>, String>) {
        let Some(current) = self.current.as_mut().filter(|c| c.path == path) else {
            return;
        };
        match result {
            Ok(study) if current.frame_requested != Some(study.metadata.frame) => {
                // A frame asked for before the latest request (or after the user came back to
                // the frame on screen): showing it now would undo that step.
            }
            Ok(study) => {
                current.frame_requested = None;
                *self
                    .studies
                    .get_or_insert_with(&current.path, || study.clone()) = study.clone();
                current.hist = Some(Percentiles::new(&study));
                current.study = Some(study);
                self.film_tex = None;
                self.film_levels = None;
                self.overlay_tex = [None, None];
                self.contours = [None, None];
            }
            Err(e) => {
                current.frame_requested = None;
                self.set_error(e);
            }
        }
    }

    /// Opens `dir` for review: recursive study list, background predictions, notes.
    pub fn open_folder(&mut self, dir: &Path) {
        self.start_review(dir);
    }

    /// Browses the images directly in `dir` without a review (no model to predict with).
    pub(super) fn open_folder_plain(&mut self, dir: &Path) {
        let images = list_images(dir);
        match images.first().cloned() {
            Some(first) => {
                self.folder = images;
                self.open(first);
            }
            None => self.set_error(format!("no images in {}", dir.display())),
        }
    }

    /// Position of the image on screen in what next/previous walk, and that list's length.
    pub fn folder_position(&self) -> Option<(usize, usize)> {
        let current = &self.current.as_ref()?.path;
        // Drawn every frame: positions, not a list of paths.
        if let Some(r) = self.reviewing_current() {
            let visible = self.review_visible();
            let here = r.row_index(current)?;
            return visible
                .iter()
                .position(|&i| i == here)
                .map(|i| (i, visible.len()));
        }
        let i = self.folder.iter().position(|p| p == current)?;
        Some((i, self.folder.len()))
    }

    /// How many studies the list shows, when the one on screen is not among them (the filter
    /// hides it): Next and Previous then go to the nearest shown study.
    pub fn hidden_by_filter(&self) -> Option<usize> {
        let current = &self.current.as_ref()?.path;
        let r = self.reviewing_current()?;
        let here = r.row_index(current)?;
        let visible = self.review_visible();
        (!visible.is_empty() && !visible.contains(&here)).then_some(visible.len())
    }

    /// Next (`+1`) or previous (`-1`) image of the study list (as filtered and sorted) or of the
    /// folder, stopping at the ends. From an image the filter hides, the nearest one shown
    /// ([`super::review::Review::step_from`]).
    pub fn step_image(&mut self, delta: isize) {
        if let Some(path) = self.step_target(delta) {
            self.travel = delta.signum();
            self.open(path);
        }
    }

    /// The study Next (`delta` 1) or Previous (−1) opens.
    pub fn step_target(&self, delta: isize) -> Option<PathBuf> {
        if let Some(r) = self.reviewing_current() {
            let here = self
                .current
                .as_ref()
                .map_or_else(PathBuf::new, |c| c.path.clone());
            let i = r.step_from(&here, delta, self.notes.all(), self.notes.revision())?;
            return Some(r.rows[i].path.clone());
        }
        let list = self.navigation();
        let current = self.current.as_ref().map(|c| &c.path);
        let target = match current.and_then(|c| list.iter().position(|p| p == c)) {
            Some(i) => {
                let j = i as isize + delta;
                (j >= 0).then(|| list.get(j as usize)).flatten()
            }
            None => list.first(),
        };
        target.cloned()
    }

    /// Analyses the study Next opens while the reviewer reads this one, so that Next shows it
    /// complete, Integrated Gradients included, instead of waiting seconds for IG each time; the
    /// one Previous opens when the reviewer is going back up the list (entered from its end,
    /// or in a new session, each study there waited for its IG).
    /// Only when the viewer is otherwise idle: the study on screen fully analysed (or stopped),
    /// no job and no faithfulness check running. The job is an ordinary analysis job for the
    /// next study's key, so opening that study adopts it ([`Jobs::cancel_all_but_path`]) and
    /// opening any other cancels it.
    fn prefetch_next(&mut self) {
        if !self.settings.prefetch_next
            || self.jobs.busy()
            || self.trust.job.is_some()
            || self.current.as_ref().map(|c| &c.path) == self.prefetch_held_on.as_ref()
        {
            return;
        }
        let Some(key) = self.current_key() else {
            return;
        };
        let settled = self
            .cache
            .peek(&key)
            .is_some_and(|e| !e.missing(self.ig_wanted_for(&key)).any() || e.halted());
        if !settled {
            return;
        }
        let Some(next) = self.step_target(self.travel).filter(|p| *p != key.path) else {
            return;
        };
        let Some(study) = self.studies.get(&next).cloned() else {
            if self.prefetch_loading.as_ref() != Some(&next) {
                if let Some(out) = self.outbox() {
                    self.prefetch_loading = Some(next.clone());
                    worker::load_image(out, next);
                }
            }
            return;
        };
        let next_key = self.analysis_key(next, &study);
        self.cache.get_or_insert_with(&next_key, Entry::default);
        self.share_auto_checks(&next_key);
        let ig = self.ig_wanted_for(&next_key);
        let Some(entry) = self.cache.peek(&next_key) else {
            return;
        };
        let needs = entry.missing(ig);
        if entry.halted() {
            return;
        }
        if !needs.any() {
            // Its maps are there: its faithfulness check next.
            super::trust_state::start_in_advance(self, (next_key, self.wanted_ig()));
            return;
        }
        self.start_job(next_key, study, needs);
    }

    /// Starts the analysis job of `key` (of `study`) for what its cache entry still `needs`,
    /// cancelling the jobs of other keys.
    fn start_job(&mut self, key: AnalysisKey, study: Arc<Study>, needs: super::cache::Needs) {
        let Some(entry) = self.cache.peek(&key) else {
            return;
        };
        let (prepared, target) = (entry.prepared.clone(), entry.target);
        let ig_kept = needs
            .ig
            .map(|k| entry.kept_fixed_baselines(k.steps))
            .unwrap_or_default();
        let (Some(engine), Some(out)) = (self.engine().cloned(), self.outbox()) else {
            return;
        };
        let ig_in_scope_only = !self.out_of_scope_in_full(&key);
        let (id, cancel) = self.jobs.start(key.clone(), needs.ig, ig_in_scope_only);
        worker::run_job(
            out,
            JobSpec {
                id,
                window: study.default_window,
                key,
                engine,
                study,
                prepared,
                target,
                needs,
                ig_in_scope_only,
                ig_kept,
                ig_batch: 8,
                cancel,
            },
        );
    }

    pub fn request_pick(&mut self, purpose: PickPurpose) {
        self.ask(super::system_dialog::Asked::Pick(purpose));
    }

    /// Asks where to write an export, then writes it on a worker thread.
    pub(super) fn request_save(
        &mut self,
        suggested_name: String,
        extension: &'static str,
        render: super::file_dialog::Render,
    ) {
        self.ask(super::system_dialog::Asked::Save {
            suggested_name,
            extension,
            render,
        });
    }

    /// One dialog at a time: the system's (on a worker thread, answered by token) unless it
    /// cannot be shown, else the viewer's own.
    fn ask(&mut self, asked: super::system_dialog::Asked) {
        use super::system_dialog::{Asked, Waiting, OFFER_OWN_AFTER};
        if self.system_dialog.is_some() || self.file_dialog.is_some() {
            return;
        }
        if self.no_system_dialog {
            self.ask_own(asked);
            return;
        }
        let Some(out) = self.outbox() else {
            return;
        };
        self.dialog_tokens += 1;
        let token = self.dialog_tokens;
        match &asked {
            Asked::Pick(purpose) => worker::pick(out, self.picker.clone(), *purpose, token),
            Asked::Save {
                suggested_name,
                extension,
                ..
            } => worker::ask_save(
                out,
                self.picker.clone(),
                suggested_name.clone(),
                extension,
                token,
            ),
        }
        self.system_dialog = Some(Waiting {
            token,
            since: std::time::Instant::now(),
            asked,
        });
        // The offer of the viewer's own dialog appears without input.
        if let Some(ctx) = &self.ctx {
            ctx.request_repaint_after(OFFER_OWN_AFTER);
        }
    }

    fn ask_own(&mut self, asked: super::system_dialog::Asked) {
        use super::file_dialog::InAppDialog;
        let start = self.dialog_start_dir();
        self.open_own_dialog(match asked {
            super::system_dialog::Asked::Pick(purpose) => InAppDialog::pick(purpose, &start),
            super::system_dialog::Asked::Save {
                suggested_name,
                extension,
                render,
            } => InAppDialog::save(&suggested_name, extension, render, &start),
        });
    }

    fn system_dialog_answered(
        &mut self,
        token: u64,
        path: Option<PathBuf>,
        more: Vec<PathBuf>,
        no_dialog: bool,
    ) {
        use super::system_dialog::Asked;
        let Some(waiting) = self.system_dialog.take_if(|w| w.token == token) else {
            tracing::info!(
                "a system file dialog answered after the viewer's own was used: ignored"
            );
            return;
        };
        match (waiting.asked, path) {
            // Several files chosen in Open…: a set, as when dropped together.
            (Asked::Pick(PickPurpose::OpenFile), Some(path)) if !more.is_empty() => {
                self.remember_dialog_dir(&path);
                self.open_dropped_files(std::iter::once(path).chain(more).collect());
            }
            (Asked::Pick(purpose), Some(path)) => self.picked(purpose, path),
            (Asked::Save { render, .. }, Some(path)) => {
                if let Some(out) = self.outbox() {
                    worker::export_to(out, path, render);
                }
            }
            (asked, None) if no_dialog => {
                self.no_system_dialog_seen();
                self.ask_own(asked);
            }
            // Cancelled.
            (_, None) => {}
        }
    }

    /// The user gave up waiting for the system dialog ([`super::system_dialog`]): ask with the
    /// viewer's own, now and for the rest of the run.
    pub fn use_own_dialog(&mut self) {
        let Some(waiting) = self.system_dialog.take() else {
            return;
        };
        tracing::warn!(
            "the system file dialog did not answer: the viewer asks with its own from now on"
        );
        self.no_system_dialog = true;
        self.ask_own(waiting.asked);
    }

    fn picked(&mut self, purpose: PickPurpose, path: PathBuf) {
        self.remember_dialog_dir(&path);
        match purpose {
            PickPurpose::OpenFile => self.open(path),
            PickPurpose::OpenFolder => self.open_folder(&path),
            PickPurpose::NotesDb => {
                self.settings.notes_db = Some(path.clone());
                self.notes_db_override = None;
                self.open_notes_db(path);
            }
            PickPurpose::ExportNotes => self.export_notes(path),
            PickPurpose::ImportNotes => self.import_notes(path),
        }
    }

    /// Applies what the viewer's own dialog came to ([`super::file_dialog::show`]).
    pub(super) fn file_dialog_done(&mut self, outcome: super::file_dialog::Outcome) {
        use super::file_dialog::Outcome;
        match outcome {
            Outcome::Picked(purpose, path) => self.picked(purpose, path),
            Outcome::PickedFiles(files) => {
                if let Some(first) = files.first() {
                    self.remember_dialog_dir(first);
                }
                self.open_dropped_files(files);
            }
            Outcome::Save(path, render) => {
                if let Some(out) = self.outbox() {
                    worker::export_to(out, path, render);
                }
            }
            Outcome::Cancelled => {}
        }
    }

    fn no_system_dialog_seen(&mut self) {
        if !self.no_system_dialog {
            tracing::warn!(
                "no system file dialog could be shown (it needs xdg-desktop-portal or zenity): \
                 the viewer asks with its own from now on"
            );
        }
        self.no_system_dialog = true;
    }

    fn open_own_dialog(&mut self, dialog: super::file_dialog::InAppDialog) {
        if self.file_dialog.is_none() {
            self.file_dialog = Some(dialog);
        }
    }

    fn remember_dialog_dir(&mut self, chosen: &Path) {
        let dir = if chosen.is_dir() {
            Some(chosen)
        } else {
            chosen.parent()
        };
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            self.last_dialog_dir = Some(dir.to_path_buf());
        }
    }

    /// Where the viewer's own dialog opens: the folder last used in this run, else the current
    /// study's or the reviewed folder, else the working folder.
    pub(super) fn dialog_start_dir(&self) -> PathBuf {
        let study_dir = self
            .current
            .as_ref()
            .and_then(|c| c.path.parent().map(Path::to_path_buf));
        let review_dir = self.review.as_ref().map(|r| r.root.clone());
        [self.last_dialog_dir.clone(), study_dir, review_dir]
            .into_iter()
            .flatten()
            .find(|d| d.is_dir())
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        let files: Vec<PathBuf> = dropped.iter().filter(|p| !p.is_dir()).cloned().collect();
        if files.len() > 1 {
            self.open_dropped_files(files);
            return;
        }
        if let Some(path) = dropped.into_iter().next() {
            if path.is_dir() {
                self.open_folder(&path);
            } else {
                self.open(path);
            }
        }
    }

    /// Several files dropped at once (a selection in the file manager) or named on the command
    /// line: Next and Previous walk those, sorted by path, not the folder of the first, which
    /// opened the first alone and left the rest for the reviewer to find; files that are not
    /// studies, and folders among them, are said in the status bar and left out.
    pub fn open_dropped_files(&mut self, files: Vec<PathBuf>) {
        self.open_files_together(files, true);
    }

    /// A set kept in Recent, opened again as [`Self::open_dropped_files`] does and moved to the
    /// top of Recent as it was kept, even where some of its files are gone now (those are named
    /// in the status bar; keeping the smaller set as well would list one set twice).
    pub fn reopen_set(&mut self, set: Vec<PathBuf>) {
        self.open_files_together(set.clone(), false);
        self.settings.remember_set(&set);
    }

    /// [`Self::open_dropped_files`]; `remember`: keep the studies found in Recent as a set.
    fn open_files_together(&mut self, mut files: Vec<PathBuf>, remember: bool) {
        files.sort();
        files.dedup();
        let mut others = crate::io::OtherFormats::default();
        let (mut skipped, mut folders) = (0, 0);
        let mut missing: Vec<String> = Vec::new();
        let mut studies: Vec<PathBuf> = Vec::new();
        for f in files {
            if f.is_dir() {
                folders += 1;
            } else if !f.exists() {
                // A name mistyped on the command line, or a file moved since it was picked.
                missing.push(display_name(&f));
            } else if others.study_or_note(&f) {
                studies.push(self.absolute_study_path(f));
            } else {
                skipped += 1;
            }
        }
        // Sorted again: a path made absolute may sort elsewhere.
        studies.sort();
        studies.dedup();
        let missing = match missing.as_slice() {
            [] => String::new(),
            [one] => format!("; not found: {one}"),
            several => format!("; not found: {}", several.join(", ")),
        };
        let Some(first) = studies.first().cloned() else {
            self.set_error(match others.summary() {
                Some(left_out) => format!("none of these files is an image: {left_out}{missing}"),
                None => format!("none of these files is a DICOM, PNG or JPEG image{missing}"),
            });
            return;
        };
        let count = studies.len();
        // `open` keeps this list since the film is in it; once the study list of the set is
        // there, Next and Previous walk that, as for a folder, in its order and filter.
        self.folder = studies.clone();
        if count > 1 {
            if remember {
                self.settings.remember_set(&studies);
            }
            self.start_review_of_set(studies);
        }
        self.open(first);
        let mut not_images = match (skipped, others.summary()) {
            (0, _) => String::new(),
            (_, Some(left_out)) => format!("; {left_out}"),
            (1, None) => "; 1 other file left out".to_string(),
            (n, None) => format!("; {n} other files left out"),
        };
        if folders > 0 {
            not_images.push_str("; folders left out (open one folder at a time to review it)");
        }
        not_images.push_str(&missing);
        self.set_info(format!(
            "{count} images opened together: Next and Previous walk them{not_images}"
        ));
    }

    // ---- analysis ----------------------------------------------------------------------

    pub fn engine(&self) -> Option<&Arc<Engine>> {
        match &self.engine {
            EngineState::Ready(e) => Some(e),
            _ => None,
        }
    }

    /// The cache key of what is on screen, once both the image and the model are there.
    pub fn current_key(&self) -> Option<AnalysisKey> {
        let current = self.current.as_ref()?;
        let study = current.study.as_ref()?;
        self.engine()?;
        Some(self.analysis_key(current.path.clone(), study))
    }

    /// The cache key of `study` (read from `path`) under the current settings: the one on
    /// screen, or the one analysed in advance ([`Self::prefetch_next`]).
    fn analysis_key(&self, path: PathBuf, study: &Study) -> AnalysisKey {
        AnalysisKey::new(path, &study.default_window, self.settings.mc_samples, 0)
            .with_frame(study.metadata.frame)
    }

    pub fn wanted_ig(&self) -> Option<IgKey> {
        self.settings.run_ig.then(|| self.wanted_ig_or_default())
    }

    /// The baseline chosen, or black where the normal film was chosen (kept in the settings)
    /// but the model loaded now names none.
    fn ig_baseline(&self) -> BaselineChoice {
        match self.settings.ig_baseline {
            BaselineChoice::NormalFilm if !self.has_normal_film() => BaselineChoice::Black,
            b => b,
        }
    }

    /// The IG wanted for `key`: none while its slow stages wait ([`Self::slow_stages_wait`]);
    /// [`Self::wanted_ig`] otherwise.
    pub fn ig_wanted_for(&self, key: &AnalysisKey) -> Option<IgKey> {
        self.wanted_ig().filter(|_| !self.slow_stages_wait(key))
    }

    /// The slow stages of `key` (IG, the faithfulness check) wait for "Show anyway": its
    /// prediction found the film out of scope and nobody is looking at its result
    /// ([`Self::out_of_scope_in_full`]). They are seconds of CPU for a map nothing shows, and
    /// the study analysed in advance would wait on them.
    pub fn slow_stages_wait(&self, key: &AnalysisKey) -> bool {
        self.cache.peek(key).is_some_and(Entry::out_of_scope) && !self.out_of_scope_in_full(key)
    }

    /// `key` is analysed in full even if its film is out of scope: the user asked to see its
    /// result, or it is the study analysed in advance while the result on screen is out of scope
    /// and shown anyway. An annotator going through adult films (the RSNA boxes) with Show
    /// anyway (`S`) then finds the next one complete, as for films in scope.
    pub fn out_of_scope_in_full(&self, key: &AnalysisKey) -> bool {
        if self.shown_anyway(&key.path) {
            return true;
        }
        self.current_key().is_some_and(|current| {
            current.path != key.path
                && self.shown_anyway(&current.path)
                && self.cache.peek(&current).is_some_and(Entry::out_of_scope)
        })
    }

    /// The user asked to see the result of `path` although it is out of scope.
    pub fn shown_anyway(&self, path: &Path) -> bool {
        self.scope_shown_anyway.as_deref() == Some(path)
    }

    pub fn current_entry(&self) -> Option<&Entry> {
        self.cache.peek(&self.current_key()?)
    }

    /// What the film's texture was last built from (its step and region).
    pub fn film_texture_key(&self) -> Option<&FilmKey> {
        self.film_tex.as_ref().map(|(key, _)| key)
    }

    /// The texture step whose film level is being built in the background, if any
    /// ([`super::film_levels::FilmLevels`]).
    pub fn film_level_building(&self) -> Option<usize> {
        self.film_levels.as_ref().and_then(|l| l.building())
    }

    /// `auto` and the fixed baseline it chose give one map, so they share its checks
    /// (faithfulness, agreement, sanity) whichever computed them. Runs every frame; hash
    /// lookups only.
    fn share_auto_checks(&mut self, key: &AnalysisKey) {
        let auto = IgKey {
            steps: self.settings.ig_steps,
            baseline: BaselineChoice::Auto,
        };
        let chosen = self.cache.peek(key).and_then(|e| e.ig.get(&auto));
        if let Some(chosen) = chosen.map(|r| r.0.baseline) {
            let fixed = IgKey {
                baseline: chosen.into(),
                ..auto
            };
            self.trust
                .share(&(key.clone(), Some(auto)), &(key.clone(), Some(fixed)));
        }
    }

    /// Starts (or restarts) whatever the image on screen still lacks. Runs every frame; cheap
    /// when there is nothing to do.
    pub fn ensure_analysis(&mut self) {
        let Some(key) = self.current_key() else {
            return;
        };
        self.cache.get_or_insert_with(&key, Entry::default);
        self.share_auto_checks(&key);
        let wanted_ig = self.ig_wanted_for(&key);
        let Some(entry) = self.cache.peek(&key) else {
            return;
        };
        let needs = entry.missing(wanted_ig);
        if !needs.any() || entry.halted() {
            return;
        }
        if let Some(job) = self.jobs.active_for(&key) {
            // A job computing IG with other options is wasted CPU: stop it, restart next frame.
            // One that leaves IG out, or goes on with it after "Hide the result", finishes
            // first (the reviewer may show the result again).
            let computing = job.computes_ig(entry.out_of_scope());
            if computing.is_some() && computing != self.wanted_ig() && !needs.prepare {
                job.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return;
        }
        if let Some(study) = self.current.as_ref().and_then(|c| c.study.clone()) {
            self.start_job(key, study, needs);
        }
    }

    /// Stops the analysis of the current image and keeps it stopped until "resume".
    pub fn cancel_analysis(&mut self) {
        // Stopping means stop: nothing is analysed in advance until another study is opened.
        self.prefetch_held_on = self.current.as_ref().map(|c| c.path.clone());
        if let Some(key) = self.current_key() {
            if self.jobs.active_for(&key).is_some() {
                if let Some(entry) = self.cache.get_mut(&key) {
                    entry.user_cancelled = true;
                }
                self.set_info("analysis cancelled".into());
            }
        }
        self.jobs.cancel_all_except(None);
        let on_screen = super::trust_state::current_trust_key(self);
        self.trust.cancel(on_screen.as_ref());
    }

    pub fn resume_analysis(&mut self) {
        if let Some(key) = self.current_key() {
            if let Some(entry) = self.cache.get_mut(&key) {
                entry.user_cancelled = false;
                entry.error = None;
            }
        }
    }

    /// The class the map of `kind` on screen explains (its target), by name: a heat map on a
    /// film read as NORMAL shows evidence for NORMAL, which a reader must not take for disease.
    pub fn explained_class(&self, kind: MapKind) -> Option<String> {
        let entry = self.current_entry()?;
        let target = match kind {
            MapKind::None => return None,
            // The MC-dropout maps sample the Grad-CAM of the same target (worker's analysis job).
            MapKind::GradCam | MapKind::Uncertainty => entry.gradcam.as_ref()?.0.target,
            MapKind::IntegratedGradients => entry.ig.get(&self.wanted_ig_or_default())?.0.target,
        };
        self.engine()?.model.config.classes.get(target).cloned()
    }

    /// The map of `kind` for the current image at the model input resolution, its zone scores,
    /// and the mean CAM that scales the uncertainty map.
    pub fn map_of(&self, kind: MapKind) -> Option<(Grid, Vec<ZoneScore>, Option<Grid>)> {
        let entry = self.current_entry()?;
        let prepared = entry.prepared.as_ref()?;
        let (mw, mh) = (prepared.gray.width, prepared.gray.height);
        match kind {
            MapKind::None => None,
            MapKind::GradCam => {
                let g = entry.gradcam.as_ref()?;
                Some((g.0.map.resized(mw, mh), g.1.clone(), None))
            }
            MapKind::Uncertainty => {
                let u = entry.uncertainty.as_ref()?;
                Some((
                    u.0.cam_std.resized(mw, mh),
                    u.1.clone(),
                    Some(u.0.cam_mean.clone()),
                ))
            }
            MapKind::IntegratedGradients => {
                let ig = entry.ig.get(&self.wanted_ig_or_default())?;
                Some((ig.0.map.resized(mw, mh), ig.1.clone(), None))
            }
        }
    }

    /// Whether `kind` can be shown now; cheap, for per-frame checks (no resizing).
    pub fn has_map(&self, kind: MapKind) -> bool {
        let Some(entry) = self.current_entry() else {
            return kind == MapKind::None;
        };
        match kind {
            MapKind::None => true,
            MapKind::GradCam => entry.gradcam.is_some(),
            MapKind::Uncertainty => entry.uncertainty.is_some(),
            MapKind::IntegratedGradients => entry.ig.contains_key(&self.wanted_ig_or_default()),
        }
    }

    /// The IG result to show: the current options even when automatic IG is off (run on demand).
    pub fn wanted_ig_or_default(&self) -> IgKey {
        IgKey {
            steps: self.settings.ig_steps,
            baseline: self.ig_baseline(),
        }
    }

    /// The uncertainty warning of the current image, if any.
    pub fn uncertain_reason(&self) -> Option<String> {
        let entry = self.current_entry()?;
        let engine = self.engine()?;
        let mc = &entry.uncertainty.as_ref()?.0;
        let cfg = &engine.model.config;
        uncertainty_flag(mc, cfg.threshold, cfg.classes.len())
    }

    // ---- view actions ------------------------------------------------------------------

    pub fn view_mut(&mut self) -> Option<&mut ViewState> {
        self.current.as_mut().map(|c| &mut c.view)
    }

    /// Replaces the current view's transform by `f(transform, canvas)`, starting from the fitted
    /// view when the image has not been zoomed yet; nothing happens before the first paint.
    fn update_transform(
        &mut self,
        ctx: &egui::Context,
        f: impl FnOnce(ScreenFromImage, egui::Rect) -> ScreenFromImage,
    ) {
        let canvas = super::canvas::last_canvas(ctx);
        if let (Some(canvas), Some(c)) = (canvas, self.current.as_mut()) {
            if let Some(study) = &c.study {
                let t = c
                    .view
                    .transform
                    .unwrap_or_else(|| ScreenFromImage::fit(image_size(study), canvas));
                c.view.transform = Some(f(t, canvas));
            }
        }
    }

    pub fn set_preset(&mut self, preset: WindowPreset) {
        if let Some(c) = self.current.as_mut() {
            if let (Some(study), Some(hist)) = (&c.study, &c.hist) {
                c.view.window = preset.window(study, hist);
                c.view.preset = Some(preset);
            }
        }
    }

    pub fn reset_view(&mut self) {
        if let Some(c) = self.current.as_mut() {
            if let Some(study) = &c.study {
                c.view = ViewState::for_study(study);
            }
        }
    }

    pub fn set_baseline(&mut self, baseline: BaselineChoice) {
        self.settings.ig_baseline = baseline;
    }

    /// Whether the model names a reference normal film, IG's third baseline.
    pub fn has_normal_film(&self) -> bool {
        self.engine().is_some_and(|e| {
            e.model
                .offers(crate::explain::integrated_gradients::IgBaseline::Normal)
        })
    }

    // ---- keyboard ----------------------------------------------------------------------

    fn handle_shortcuts(&mut self, ctx: &egui::Context) {
        use super::shortcuts::{is_typing, split_at_focus_note, typing_after_leaving};
        let comment_id = super::notes_panel::comment_id();
        let focused_last_frame = std::mem::take(&mut self.focused_last_frame);
        let held = std::mem::take(&mut self.keys_after_leaving);
        if !held.is_empty() {
            ctx.input_mut(|i| drop(i.events.splice(0..0, held)));
        }
        // An Esc takes the focus from a text field as the frame begins (egui), before the
        // field reads the frame's letters: "AB" and Esc typed fast into the reviewer field set
        // the auto window and the IG baseline instead, and the Esc went on to stop the
        // analysis. The field gets the focus back for this frame and lets go after the panels
        // are drawn ([`Self::draw_root`]); the comment box keeps Esc for itself, except in the
        // frame after it got the focus (egui applies its filter one frame later).
        let left_by_escape = focused_last_frame.filter(|_| {
            ctx.memory(|m| m.focused().is_none()) && ctx.input(|i| i.key_pressed(Key::Escape))
        });
        if let Some(id) = left_by_escape {
            self.refocused_for_escape = Some(id);
            ctx.memory_mut(|m| m.request_focus(id));
        }
        let in_field = left_by_escape.is_some() || ctx.memory(|m| m.has_focus(comment_id));
        // Typing in the tag search must not flip overlays; while the file dialog is open, its
        // keys (Escape, Enter, letters) are its own.
        if (ctx.egui_wants_keyboard_input() && !in_field) || self.file_dialog.is_some() {
            self.overlay_held_hidden = false;
            return;
        }
        let cmd_shift = Modifiers::COMMAND | Modifiers::SHIFT;
        let mut actions: Vec<Action> = Vec::new();
        let shown = self.comment_box_shown();
        let coming = !shown && self.comment_box_coming();
        if self
            .notes
            .typed_early
            .as_ref()
            .is_some_and(|e| !(shown || coming && e.since.elapsed() < EarlyTyping::LIMIT))
        {
            self.drop_early_typing();
        }
        let mut question = false;
        // Typing for the comment box, taken from the shortcuts.
        let mut comment: Option<Vec<egui::Event>> = None;
        let mut only_typing = false;
        let notes = &mut self.notes;
        let mut after_leaving = Vec::new();
        ctx.input_mut(|i| {
            if in_field {
                // The field's typing, up to an Esc or a Tab that leaves it; what follows waits
                // a frame and is then shortcuts after Esc (a Down among them must not carry
                // these letters into the next study's note), the next field's after Tab.
                after_leaving = typing_after_leaving(&mut i.events);
                only_typing = true;
                return;
            }
            // Only the keys before `T` are shortcuts; the rest of the frame is the comment,
            // kept until the box is there if the study is still opening.
            comment = match notes.typed_early.take() {
                // Esc gives up waiting, as it leaves the box.
                Some(_) if !shown && i.consume_key(Modifiers::NONE, Key::Escape) => None,
                Some(mut early) if !shown => {
                    early
                        .events
                        .extend(i.events.extract_if(.., |e| is_typing(e)));
                    notes.typed_early = Some(early);
                    only_typing = true;
                    return;
                }
                Some(early) => {
                    let mut comment = early.events;
                    comment.extend(i.events.extract_if(.., |e| is_typing(e)));
                    Some(comment)
                }
                None if shown || coming => split_at_focus_note(&mut i.events),
                None => None,
            };
            // Every press counts: two arrows pressed within one frame (a slow frame while a
            // film opens, or B B B to reach auto) are two steps, not one.
            let mut key = |m: Modifiers, k: Key, a: Action| {
                let presses = i.count_and_consume_key(m, k);
                actions.extend(std::iter::repeat_n(a, presses));
            };
            key(cmd_shift, Key::O, Action::OpenFolder);
            key(Modifiers::COMMAND, Key::O, Action::OpenFile);
            key(Modifiers::COMMAND, Key::S, Action::ExportPng);
            key(cmd_shift, Key::E, Action::ExportHtml);
            key(Modifiers::COMMAND, Key::E, Action::ExportJson);
            key(Modifiers::COMMAND, Key::Z, Action::UndoBox);
            key(Modifiers::NONE, Key::D, Action::ToggleBoxTool);
            key(Modifiers::NONE, Key::Delete, Action::DeleteBox);
            key(Modifiers::NONE, Key::Backspace, Action::DeleteBox);
            key(Modifiers::NONE, Key::ArrowRight, Action::Next);
            key(Modifiers::NONE, Key::ArrowDown, Action::Next);
            key(Modifiers::NONE, Key::PageDown, Action::Next);
            key(Modifiers::NONE, Key::ArrowLeft, Action::Previous);
            key(Modifiers::NONE, Key::ArrowUp, Action::Previous);
            key(Modifiers::NONE, Key::PageUp, Action::Previous);
            key(Modifiers::NONE, Key::L, Action::ToggleStudyList);
            key(Modifiers::NONE, Key::F5, Action::Rescan);
            key(Modifiers::NONE, Key::Comma, Action::FrameStep(-1));
            key(Modifiers::NONE, Key::Period, Action::FrameStep(1));
            key(Modifiers::NONE, Key::Y, Action::Verdict(Agreement::Agree));
            key(
                Modifiers::NONE,
                Key::N,
                Action::Verdict(Agreement::Disagree),
            );
            key(Modifiers::NONE, Key::U, Action::Verdict(Agreement::Unsure));
            key(Modifiers::NONE, Key::T, Action::FocusNote); // no comment box shown
            key(Modifiers::NONE, Key::M, Action::CycleMap);
            key(Modifiers::NONE, Key::Num0, Action::Map(MapKind::None));
            key(Modifiers::NONE, Key::Num1, Action::Map(MapKind::GradCam));
            key(
                Modifiers::NONE,
                Key::Num2,
                Action::Map(MapKind::Uncertainty),
            );
            key(
                Modifiers::NONE,
                Key::Num3,
                Action::Map(MapKind::IntegratedGradients),
            );
            key(Modifiers::NONE, Key::H, Action::ToggleOverlay);
            key(Modifiers::NONE, Key::C, Action::ToggleCompare);
            key(Modifiers::NONE, Key::CloseBracket, Action::Alpha(0.05));
            key(Modifiers::NONE, Key::OpenBracket, Action::Alpha(-0.05));
            key(Modifiers::NONE, Key::Plus, Action::Zoom(1.25));
            key(Modifiers::NONE, Key::Equals, Action::Zoom(1.25));
            key(Modifiers::NONE, Key::Minus, Action::Zoom(0.8));
            key(Modifiers::NONE, Key::F, Action::Fit);
            key(Modifiers::NONE, Key::Z, Action::OneToOne);
            key(Modifiers::NONE, Key::I, Action::Invert);
            key(Modifiers::NONE, Key::W, Action::NextPreset);
            key(Modifiers::NONE, Key::A, Action::AutoWindow);
            key(Modifiers::NONE, Key::R, Action::Reset);
            key(Modifiers::NONE, Key::B, Action::ToggleBaseline);
            key(Modifiers::NONE, Key::K, Action::SanityCheck);
            key(Modifiers::NONE, Key::S, Action::ToggleOutOfScope);
            key(Modifiers::NONE, Key::Escape, Action::Escape);
            key(Modifiers::NONE, Key::F1, Action::Help);
            key(Modifiers::SHIFT, Key::Questionmark, Action::Help);
            key(Modifiers::NONE, Key::Questionmark, Action::Help);
            // Some layouts deliver "?" only as text.
            question = i
                .events
                .iter()
                .any(|e| matches!(e, egui::Event::Text(t) if t == "?"));
            if comment.is_some() {
                // The keys before `T` were shortcuts, not text for the box.
                i.events.retain(|e| !is_typing(e));
            }
        });
        if only_typing {
            self.keys_after_leaving = after_leaving;
            self.overlay_held_hidden = false;
            if self.notes.typed_early.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(50));
            } else if !self.keys_after_leaving.is_empty() {
                ctx.request_repaint();
            }
            return;
        }
        if question && !actions.contains(&Action::Help) {
            actions.push(Action::Help);
        }
        // A space typed into the comment does not hide the overlay.
        self.overlay_held_hidden = comment.is_none() && ctx.input(|i| i.key_down(Key::Space));
        for action in actions {
            self.apply(action, ctx);
        }
        if let Some(comment) = comment {
            self.take_comment(comment, ctx);
        }
    }

    /// Gives the typing after `T` to the comment box of the study on screen once the shortcuts
    /// before it have acted (a Down among them opened another study: the comment is for that
    /// one), or holds it while that study opens.
    fn take_comment(&mut self, mut comment: Vec<egui::Event>, ctx: &egui::Context) {
        self.keys_after_leaving = super::shortcuts::typing_after_leaving(&mut comment);
        if !self.keys_after_leaving.is_empty() {
            ctx.request_repaint();
        }
        if self.comment_box_shown() {
            ctx.input_mut(|i| i.events.extend(comment));
            self.apply(Action::FocusNote, ctx);
            return;
        }
        self.notes.typed_early = Some(EarlyTyping {
            since: Instant::now(),
            events: comment,
        });
        if self.comment_box_coming() {
            ctx.request_repaint_after(std::time::Duration::from_millis(50));
        } else {
            self.drop_early_typing();
        }
    }

    /// Whether the note pane draws its comment box this frame ([`super::notes_panel`]): the
    /// draft `sync_draft` makes for the study on screen, even if a shortcut just opened it.
    fn comment_box_shown(&self) -> bool {
        matches!(self.notes.db, NotesDb::Ready(_))
            && self
                .current
                .as_ref()
                .is_some_and(|c| self.notes.ids.contains_key(&c.path))
    }

    /// Whether the comment box is about to be shown: the study on screen is still opening (its
    /// id, and so its note, comes with it) or the notes database is.
    fn comment_box_coming(&self) -> bool {
        !matches!(self.notes.db, NotesDb::Failed(_))
            && self.current.as_ref().is_some_and(|c| c.error.is_none())
    }

    /// Gives up on typing held for a comment box that did not come, and says so.
    fn drop_early_typing(&mut self) {
        self.notes.focus_text = false;
        if let Some(early) = self.notes.typed_early.take() {
            let letters = early.letters();
            if letters > 0 {
                self.set_error(format!(
                    "the review note was not open yet; {letters} typed characters were not kept"
                ));
            }
        }
    }

    pub fn apply(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::OpenFile => self.request_pick(PickPurpose::OpenFile),
            Action::OpenFolder => self.request_pick(PickPurpose::OpenFolder),
            Action::Next => self.step_image(1),
            Action::Previous => self.step_image(-1),
            Action::Frame(n) => self.show_frame(n),
            Action::FrameStep(d) => {
                let target = self.frame_target().and_then(|(n, k)| frames::step(n, k, d));
                if let Some(k) = target {
                    self.show_frame(k);
                }
            }
            Action::CycleMap => self.map = self.map.next(),
            Action::SanityCheck => super::trust_state::request_sanity(self),
            Action::Map(kind) => self.map = kind,
            Action::ToggleOverlay => self.overlay_visible = !self.overlay_visible,
            Action::ToggleCompare => {
                self.compare = match self.compare {
                    Some(_) => None,
                    // Grad-CAM next to IG is the most telling pair; else next to Grad-CAM.
                    None if self.map == MapKind::GradCam => Some(MapKind::IntegratedGradients),
                    None => Some(MapKind::GradCam),
                };
            }
            Action::Alpha(d) => {
                let a = self.settings.alpha + d;
                self.settings.set_alpha(a);
            }
            Action::Zoom(factor) => {
                self.update_transform(ctx, |t, canvas| t.zoomed_around(canvas.center(), factor));
            }
            Action::Fit => {
                if let Some(v) = self.view_mut() {
                    v.transform = None;
                }
            }
            Action::OneToOne => {
                let ppp = ctx.pixels_per_point();
                self.update_transform(ctx, |t, canvas| t.one_to_one(ppp, canvas));
            }
            Action::Invert => {
                if let Some(v) = self.view_mut() {
                    v.invert = !v.invert;
                }
            }
            Action::NextPreset => {
                let next = self
                    .current
                    .as_ref()
                    .and_then(|c| c.view.preset)
                    .map_or(WindowPreset::Auto, WindowPreset::next);
                self.set_preset(next);
            }
            Action::AutoWindow => self.set_preset(WindowPreset::Auto),
            Action::Reset => self.reset_view(),
            Action::ToggleBaseline => {
                let b = self.settings.ig_baseline.next(self.has_normal_film());
                self.set_baseline(b);
            }
            Action::ExportPng => super::export::export_png(self),
            Action::ExportJson => super::export::export_report(self, ReportFormat::Json),
            Action::ExportHtml => super::export::export_report(self, ReportFormat::Html),
            Action::Escape => {
                if self.show_help {
                    self.show_help = false;
                } else {
                    self.cancel_analysis();
                }
            }
            Action::Help => self.show_help = !self.show_help,
            Action::ToggleStudyList => {
                self.settings.show_study_list = !self.settings.show_study_list;
            }
            Action::Rescan => {
                if let Some((root, files)) = self
                    .review
                    .as_ref()
                    .filter(|r| r.listed)
                    .map(|r| (r.root.clone(), r.files.clone()))
                {
                    self.start_review_of(&root, files);
                }
            }
            Action::Verdict(_) if super::scope_banner::result_hidden(self) => {
                self.set_info(super::notes_panel::VERDICT_HIDDEN.into());
            }
            Action::Verdict(a) => {
                if let Some(d) = self.notes.draft.as_mut() {
                    // The same key again takes the verdict back.
                    d.note.agreement = (d.note.agreement != Some(a)).then_some(a);
                    self.note_edited();
                }
            }
            Action::FocusNote => {
                self.notes.focus_text = true;
                if self.comment_box_shown() {
                    // Before the box is drawn, so that it takes this frame's typing too.
                    ctx.memory_mut(|m| m.request_focus(super::notes_panel::comment_id()));
                }
            }
            Action::ToggleBoxTool => self.toggle_box_tool(),
            Action::DeleteBox => self.delete_selected_box(),
            Action::UndoBox => self.undo_box(),
            Action::ToggleOutOfScope => {
                if super::scope_banner::current_scope(self).is_some_and(|s| !s.in_scope) {
                    let shown = super::scope_banner::shown_anyway(self);
                    self.apply(Action::ShowOutOfScope(!shown), ctx);
                }
            }
            Action::ShowOutOfScope(show) => {
                self.scope_shown_anyway = show
                    .then(|| self.current.as_ref().map(|c| c.path.clone()))
                    .flatten();
            }
        }
    }
}

/// Everything a shortcut or a button can do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    OpenFile,
    OpenFolder,
    Next,
    Previous,
    CycleMap,
    Map(MapKind),
    ToggleOverlay,
    ToggleCompare,
    Alpha(f32),
    Zoom(f32),
    Fit,
    OneToOne,
    Invert,
    NextPreset,
    AutoWindow,
    Reset,
    ToggleBaseline,
    ExportPng,
    ExportJson,
    /// The report as a page to read ([`crate::report_html`]).
    ExportHtml,
    Escape,
    Help,
    ToggleStudyList,
    /// Lists the folder under review again (new and changed files predicted).
    Rescan,
    /// The reviewer's agreement with the model, into the note of the study on screen.
    Verdict(Agreement),
    FocusNote,
    /// The box tool on or off (`D`).
    ToggleBoxTool,
    /// Removes the selected box.
    DeleteBox,
    /// Undoes the last box change.
    UndoBox,
    /// Show frame `n` (0-based) of a multi-frame study.
    Frame(u32),
    /// Previous (`-1`) or next (`+1`) frame of a multi-frame study.
    FrameStep(i32),
    /// Show (or hide again) the result of an out-of-scope image on screen.
    ShowOutOfScope(bool),
    /// `S`: Show anyway, or hide again, the result of a film outside the model's scope.
    ToggleOutOfScope,
    /// Model-randomisation sanity check of the image on screen (opens its view).
    SanityCheck,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            transform: None,
            window: Window {
                low: 0.0,
                high: 1.0,
            },
            preset: Some(WindowPreset::Auto),
            invert: false,
        }
    }
}

impl ViewState {
    pub fn for_study(study: &Study) -> Self {
        Self {
            window: study.default_window,
            ..Self::default()
        }
    }
}

impl eframe::App for ViewerApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_root(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let busy = self.jobs.busy();
        if let Some(stats) = self.frame_stats.as_mut() {
            stats.frame_started(std::time::Instant::now(), busy);
            // The previous frame, painting included; repaint continuously to measure.
            if let Some(seconds) = frame.info().cpu_usage {
                stats.record(seconds * 1e3, busy);
            }
            if stats.analysis_ended(busy) {
                eprint!("{}", stats.summary());
            }
            ui.ctx().request_repaint();
        }
        self.draw_root(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.close();
        if let Some(stats) = &self.frame_stats {
            eprint!("{}", stats.summary());
        }
    }
}

impl ViewerApp {
    /// The closing saves: settings, and the note being typed (autosaved only after a pause).
    fn close(&mut self) {
        if std::mem::replace(&mut self.exited, true) {
            return;
        }
        self.persist_settings_now();
        self.jobs.cancel_all_except(None);
        if let Some(r) = &self.review {
            r.stop();
        }
        self.flush_notes_blocking();
    }
}

/// A panic in the window loop skips `on_exit`: winit unwraps X11 replies, so a window destroyed
/// under it (killed, or the X server gone: rust-windowing/winit#3686) panics inside eframe. The
/// unwinding still drops the app, and the saves `on_exit` would have made happen here, so the
/// last second of typing is not lost.
impl Drop for ViewerApp {
    fn drop(&mut self) {
        self.close();
    }
}

/// How long after the window goes hidden its ui still runs.
const HIDDEN_INPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Keystrokes are applied only by a drawing pass. Those typed just before the window was
/// covered, not yet handled (a busy machine lags behind the keyboard), would otherwise wait
/// unsaved in the input queue until the window is shown again: so for a moment after it goes
/// hidden, ask eframe to run the ui anyway.
fn paint_while_hidden(hidden_since: &mut Option<Instant>, hidden: bool, now: Instant) -> bool {
    if !hidden {
        *hidden_since = None;
        return false;
    }
    let since = *hidden_since.get_or_insert(now);
    now.saturating_duration_since(since) < HIDDEN_INPUT_GRACE
}

pub fn image_size(study: &Study) -> egui::Vec2 {
    egui::vec2(study.width as f32, study.height as f32)
}

pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Image files of `dir`, sorted by name: DICOM/PNG/JPEG extensions, plus extension-less files
/// (common for DICOM).
pub fn list_images(dir: &Path) -> Vec<PathBuf> {
    if crate::io::is_dicomdir(dir) {
        return crate::io::dicomdir_images(dir).unwrap_or_default();
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !crate::io::is_dicomdir(p))
        .filter(|p| match p.extension().and_then(|e| e.to_str()) {
            Some(ext) => crate::io::IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
            None => !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.')),
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ui_runs_for_a_moment_after_the_window_goes_hidden_then_stops() {
        let t0 = Instant::now();
        let mut since = None;
        assert!(
            !paint_while_hidden(&mut since, false, t0),
            "visible: eframe paints anyway"
        );
        assert!(paint_while_hidden(&mut since, true, t0));
        assert!(paint_while_hidden(
            &mut since,
            true,
            t0 + HIDDEN_INPUT_GRACE / 2
        ));
        assert!(!paint_while_hidden(
            &mut since,
            true,
            t0 + HIDDEN_INPUT_GRACE
        ));
        // Shown and hidden again: a new grace period.
        let t1 = t0 + HIDDEN_INPUT_GRACE * 4;
        assert!(!paint_while_hidden(&mut since, false, t1));
        assert!(paint_while_hidden(&mut since, true, t1));
    }
}
