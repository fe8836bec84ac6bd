//! Everything slow runs here, on worker threads: loading the model, decoding images, every
//! analysis stage, file dialogs and exports. Workers own a [`Sender`], send one message per
//! finished piece and wake the UI with `request_repaint`, so results appear progressively and a
//! frame never waits for the network.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::analysis::{AnalysisError, Engine, Prepared};
use crate::explain::gradcam::GradCam;
use crate::explain::integrated_gradients::{
    Baseline, IgBaseline, IgOptions, IgRule, IntegratedGradients,
};
use crate::explain::uncertainty::McDropout;
use crate::explain::zones::ZoneScore;
use crate::explain::Control;
use crate::io::{load_study, Study};
use crate::model::{select_device, DeviceChoice};

use super::cache::{AnalysisKey, IgKey, Needs};
use super::prediction_cache::{self, PredictionCache};
use super::review::{self, StudyRow};
use crate::notes::PredictionSnapshot;

/// Where the viewer asks the user for a path. Behind a trait so tests inject answers instead
/// of opening a real dialog (which would block or hang without a display).
pub trait FilePicker: Send + Sync {
    fn pick_file(&self) -> Option<PathBuf>;
    /// Open… : one file or several (a multiple selection opens as a set, as dropped files do);
    /// empty when cancelled. Pickers without multiple selection answer [`Self::pick_file`]'s.
    fn pick_files(&self) -> Vec<PathBuf> {
        self.pick_file().into_iter().collect()
    }
    fn pick_folder(&self) -> Option<PathBuf>;
    fn save_file(&self, suggested_name: &str, extension: &str) -> Option<PathBuf>;
}

/// The platform dialog through `rfd` (xdg-desktop-portal, or zenity). Blocking: call it only from
/// a worker thread.
pub struct NativePicker;

/// The desktop's open dialog for studies, with the image filter first.
fn open_study_dialog(title: &str) -> rfd::FileDialog {
    rfd::FileDialog::new()
        .set_title(title)
        .add_filter(
            "Images (DICOM, PNG, JPEG)",
            &["dcm", "dicom", "png", "jpg", "jpeg"],
        )
        .add_filter("All files", &["*"])
}

impl FilePicker for NativePicker {
    fn pick_file(&self) -> Option<PathBuf> {
        open_study_dialog("Open chest X-ray").pick_file()
    }

    fn pick_files(&self) -> Vec<PathBuf> {
        open_study_dialog("Open chest X-ray (one, or several to walk as a set)")
            .pick_files()
            .unwrap_or_default()
    }

    fn pick_folder(&self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open folder of studies")
            .pick_folder()
    }

    fn save_file(&self, suggested_name: &str, extension: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Export")
            .set_file_name(suggested_name)
            .add_filter(extension, &[extension])
            .save_file()
    }
}

/// What a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickPurpose {
    OpenFile,
    OpenFolder,
    /// Where the notes database lives (an existing file or a new one).
    NotesDb,
    ExportNotes,
    ImportNotes,
}

pub type Zoned<T> = (T, Vec<ZoneScore>);

/// One finished piece of background work.
pub enum Msg {
    EngineLoaded {
        result: Result<Arc<Engine>, String>,
        /// Why the device is not the one asked for, if it is not.
        note: Option<String>,
    },
    StudyLoaded {
        path: PathBuf,
        result: Result<Arc<Study>, String>,
        /// Notes key of the study, when it could be computed.
        id: Option<crate::notes::StudyId>,
    },
    /// The system dialog asked for with `token` ([`pick`], [`ask_save`]) has answered. An
    /// answer whose token is no longer awaited is dropped: the user gave up waiting for it and
    /// asked with the viewer's own dialog.
    Answered {
        token: u64,
        path: Option<PathBuf>,
        /// The rest of a multiple selection (Open… only), after `path`.
        more: Vec<PathBuf>,
        /// No path and back faster than a person can cancel: most likely no dialog could be
        /// shown at all (no xdg-desktop-portal, no zenity).
        no_dialog: bool,
    },
    Job {
        id: u64,
        key: AnalysisKey,
        update: JobUpdate,
    },
    /// Another frame of a multi-frame study ([`load_frame`]).
    FrameLoaded {
        path: PathBuf,
        result: Result<Arc<Study>, String>,
    },
    /// An export finished: `Ok(path)` or a readable error.
    Exported(Result<PathBuf, String>),
    Review(ReviewMsg),
    Notes(super::notes_service::NotesReply),
    /// Faithfulness, agreement, sanity check ([`super::trust_state`]).
    Trust(super::trust_state::TrustMsg),
}

/// Progress of a folder scan ([`scan_folder`]); `scan_id` tells stale scans apart.
pub enum ReviewMsg {
    Listed {
        scan_id: u64,
        rows: Vec<StudyRow>,
        truncated: bool,
        /// Images left out for their format.
        other_formats: crate::io::OtherFormats,
    },
    Row {
        scan_id: u64,
        path: PathBuf,
        id: Option<crate::notes::StudyId>,
        result: Result<PredictionSnapshot, String>,
        /// The scope guard's verdict, when the prediction succeeded.
        scope: Option<crate::scope::ScopeCheck>,
        /// The file as it was predicted.
        stamp: Option<review::FileStamp>,
    },
    Finished {
        scan_id: u64,
    },
}

pub enum JobUpdate {
    Prepared {
        prepared: Arc<Prepared>,
        target: usize,
        preprocess_ms: f64,
        forward_ms: f64,
    },
    /// A stage started (for the progress line).
    Started(super::cache::JobStage),
    GradCam(Box<Zoned<GradCam>>, f64),
    Uncertainty(Box<Zoned<McDropout>>, f64),
    IgProgress {
        done: usize,
        total: usize,
    },
    Ig(IgKey, Box<Zoned<IntegratedGradients>>, f64),
    /// `auto` chose a baseline whose map is kept ([`JobSpec::ig_kept`]): that map is its result.
    AutoChosen(IgKey, Baseline),
    Failed(String),
    /// Last message of every job, cancelled or not.
    Finished {
        cancelled: bool,
    },
}

/// Sends and wakes the UI; a closed channel means the app is gone, which is fine to ignore.
#[derive(Clone)]
pub struct Outbox {
    pub tx: Sender<Msg>,
    pub ctx: egui::Context,
}

impl Outbox {
    pub fn send(&self, msg: Msg) {
        let _ = self.tx.send(msg);
        self.ctx.request_repaint();
    }
}

/// Error text for the status bar, one line each (shared with the CLI's error lines).
pub(crate) use crate::text::{chain_line, first_line};

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    // If the OS refuses a thread the work is lost; say so in the log rather than crash the UI.
    if let Err(e) = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
    {
        tracing::error!("cannot start a worker thread: {e}");
    }
}

pub fn load_engine(out: Outbox, model_path: PathBuf) {
    spawn("load-model", move || {
        let (device, note) = select_device(DeviceChoice::Auto);
        let result = Engine::load(&model_path, &device)
            .map(Arc::new)
            .map_err(|e| {
                format!(
                    "cannot load the model {}: {}",
                    model_path.display(),
                    first_line(&e.to_string())
                )
            });
        out.send(Msg::EngineLoaded { result, note });
    });
}

/// Loads frame `frame` (0-based) of a multi-frame study that is already on screen.
pub fn load_frame(out: Outbox, path: PathBuf, frame: u32) {
    spawn("load-frame", move || {
        let result = crate::io::load_study_frame(&path, frame)
            .map(Arc::new)
            .map_err(|e| chain_line(&e));
        out.send(Msg::FrameLoaded { path, result });
    });
}

pub fn load_image(out: Outbox, path: PathBuf) {
    spawn("load-image", move || {
        let result = load_study(&path).map(Arc::new).map_err(|e| chain_line(&e));
        // The notes key; a raster study is identified by its bytes, read again here (fast, and
        // off the UI thread).
        let id = result
            .as_ref()
            .ok()
            .and_then(|study| crate::notes::identity::study_id(&path, study).ok());
        out.send(Msg::StudyLoaded { path, result, id });
    });
}

/// No path, and back faster than a person can cancel: most likely no dialog could be shown at
/// all (rfd then logs why and returns `None`, as for a cancel).
fn no_dialog_shown(path: Option<&PathBuf>, started: Instant) -> bool {
    path.is_none() && started.elapsed() < Duration::from_millis(150)
}

/// Asks the system dialog for a path for `purpose`; the answer comes back as
/// [`Msg::Answered`] with `token`.
pub fn pick(out: Outbox, picker: Arc<dyn FilePicker>, purpose: PickPurpose, token: u64) {
    ask(out, token, move || match purpose {
        PickPurpose::OpenFile => picker.pick_files(),
        PickPurpose::ImportNotes => picker.pick_file().into_iter().collect(),
        PickPurpose::OpenFolder => picker.pick_folder().into_iter().collect(),
        PickPurpose::NotesDb => picker
            .save_file("notes.sqlite3", "sqlite3")
            .into_iter()
            .collect(),
        PickPurpose::ExportNotes => picker
            .save_file("cxr-notes.csv", "csv")
            .into_iter()
            .collect(),
    });
}

/// Asks the system dialog where to save an export; the answer comes back as [`Msg::Answered`]
/// with `token`, and the UI thread, which keeps the export's renderer, writes it
/// ([`export_to`]) or asks with the viewer's own dialog.
pub fn ask_save(
    out: Outbox,
    picker: Arc<dyn FilePicker>,
    suggested_name: String,
    extension: &'static str,
    token: u64,
) {
    ask(out, token, move || {
        picker
            .save_file(&suggested_name, extension)
            .into_iter()
            .collect()
    });
}

/// Off the UI thread: rfd blocks until the dialog closes (or, with a desktop portal that never
/// answers, until it gives up).
fn ask(out: Outbox, token: u64, dialog: impl FnOnce() -> Vec<PathBuf> + Send + 'static) {
    spawn("file-dialog", move || {
        let started = Instant::now();
        let mut paths = dialog().into_iter();
        let path = paths.next();
        let no_dialog = no_dialog_shown(path.as_ref(), started);
        out.send(Msg::Answered {
            token,
            path,
            more: paths.collect(),
            no_dialog,
        });
    });
}

/// Writes an export to a path already chosen (in the viewer's own dialog), on a worker thread.
pub fn export_to(out: Outbox, path: PathBuf, render: super::file_dialog::Render) {
    spawn("export", move || write_export(&out, &path, render));
}

fn write_export(out: &Outbox, path: &Path, render: super::file_dialog::Render) {
    let result = render(path).map(|()| path.to_path_buf());
    out.send(Msg::Exported(result));
}

/// Inputs of one analysis job.
pub struct JobSpec {
    pub id: u64,
    pub key: AnalysisKey,
    pub engine: Arc<Engine>,
    pub study: Arc<Study>,
    pub window: crate::io::Window,
    /// Reused when only later stages are missing (e.g. the IG baseline changed).
    pub prepared: Option<Arc<Prepared>>,
    pub target: usize,
    pub needs: Needs,
    /// Leave IG out if the prediction finds the film out of scope: its result stays hidden
    /// until "Show anyway" ([`super::scope_banner`]), and IG is the seconds of CPU that a
    /// hidden map would waste (the study analysed in advance waits on them).
    pub ig_in_scope_only: bool,
    /// The fixed baselines whose IG maps at these steps are kept already
    /// ([`super::cache::Entry::kept_fixed_baselines`]): an `auto` IG that chooses one of them
    /// is answered with [`JobUpdate::AutoChosen`] instead of the same map computed again.
    pub ig_kept: Vec<Baseline>,
    pub ig_batch: usize,
    pub cancel: Arc<AtomicBool>,
}

/// Runs the missing stages cheap-first: prediction, Grad-CAM, uncertainty, then IG (unless
/// [`JobSpec::ig_in_scope_only`] and the film is out of scope). Each result is sent as soon as
/// it exists; the cancel flag is checked between stages and inside IG.
pub fn run_job(out: Outbox, spec: JobSpec) {
    spawn("analysis", move || {
        let id = spec.id;
        let key = spec.key.clone();
        let send = |update: JobUpdate| {
            out.send(Msg::Job {
                id,
                key: key.clone(),
                update,
            })
        };
        let cancelled = match job_stages(&spec, &send) {
            Ok(()) => false,
            Err(AnalysisError::Cancelled) => true,
            Err(e) => {
                send(JobUpdate::Failed(first_line(&e.to_string())));
                false
            }
        };
        send(JobUpdate::Finished { cancelled });
    });
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn job_stages(spec: &JobSpec, send: &(dyn Fn(JobUpdate) + Sync)) -> Result<(), AnalysisError> {
    use super::cache::JobStage;
    let check = || {
        if spec.cancel.load(Ordering::Relaxed) {
            Err(AnalysisError::Cancelled)
        } else {
            Ok(())
        }
    };
    check()?;
    let engine = &spec.engine;
    let (prepared, target) = match &spec.prepared {
        Some(p) if !spec.needs.prepare => (p.clone(), spec.target),
        _ => {
            send(JobUpdate::Started(JobStage::Prediction));
            let (prepared, preprocess_ms, forward_ms) =
                engine.prepare_with_window(&spec.study, &spec.window)?;
            let target = engine.target_index(None, &prepared.prediction)?;
            let prepared = Arc::new(prepared);
            send(JobUpdate::Prepared {
                prepared: prepared.clone(),
                target,
                preprocess_ms,
                forward_ms,
            });
            (prepared, target)
        }
    };
    check()?;
    if spec.needs.gradcam {
        send(JobUpdate::Started(JobStage::GradCam));
        let t = Instant::now();
        let result = engine.grad_cam(&prepared, target)?;
        send(JobUpdate::GradCam(Box::new(result), ms(t)));
    }
    check()?;
    if spec.needs.uncertainty {
        send(JobUpdate::Started(JobStage::Uncertainty));
        let t = Instant::now();
        let result = engine.uncertainty(&prepared, target, spec.key.mc_samples, spec.key.seed)?;
        send(JobUpdate::Uncertainty(Box::new(result), ms(t)));
    }
    check()?;
    let ig = spec
        .needs
        .ig
        .filter(|_| prepared.scope.in_scope || !spec.ig_in_scope_only);
    if let Some(ig_key) = ig {
        let request = ig_key.baseline.baseline();
        if request == IgBaseline::Auto {
            // The baseline logits it needs are kept by the engine: one forward pass per
            // baseline the first time, nothing after.
            let chosen = engine.choose_baseline(&prepared, request, target)?;
            if spec.ig_kept.contains(&chosen) {
                send(JobUpdate::AutoChosen(ig_key, chosen));
                return Ok(());
            }
        }
        send(JobUpdate::Started(JobStage::IntegratedGradients {
            done: 0,
            total: ig_key.steps,
        }));
        let t = Instant::now();
        let progress = |done: usize, total: usize| send_progress(send, done, total);
        let control = Control {
            cancel: &spec.cancel,
            progress: &progress,
        };
        let result = engine.integrated_gradients_asked(
            &prepared,
            request,
            &IgOptions {
                steps: ig_key.steps,
                // Replaced by the baseline asked for.
                baseline: Baseline::Black,
                target,
                batch: spec.ig_batch,
                lanes: crate::explain::integrated_gradients::lanes_for(&engine.model.device),
                rule: IgRule::default(),
            },
            &control,
        )?;
        send(JobUpdate::Ig(ig_key, Box::new(result), ms(t)));
    }
    Ok(())
}

fn send_progress(send: &(dyn Fn(JobUpdate) + Sync), done: usize, total: usize) {
    send(JobUpdate::IgProgress { done, total });
}

/// What a folder scan needs.
pub struct ScanSpec {
    pub scan_id: u64,
    pub root: PathBuf,
    pub engine: Arc<Engine>,
    pub mc_samples: usize,
    pub cancel: Arc<AtomicBool>,
    pub pause: Arc<AtomicBool>,
    /// A rescan: the previous scan's predicted rows, kept where the file is unchanged
    /// ([`review::carry_over`]).
    pub known: std::collections::HashMap<PathBuf, review::StudyRow>,
    /// Predictions kept between sessions ([`super::prediction_cache`]); `None`: off.
    pub cache: Option<PathBuf>,
    /// Files opened together: listed instead of `root`'s files ([`review::list_set`]).
    pub files: Option<Vec<PathBuf>>,
}

/// Lists the folder, then predicts every study in list order (prediction and MC-dropout flag
/// only: the maps are computed when a study is opened). Waits while `pause` is set, so the
/// image on screen gets the CPU first, and stops at `cancel`.
pub fn scan_folder(out: Outbox, spec: ScanSpec) {
    spawn("review-scan", move || {
        let scan_id = spec.scan_id;
        let (files, truncated, other_formats) = match &spec.files {
            Some(set) => {
                let (files, truncated) = review::list_set(set);
                (files, truncated, Default::default())
            }
            None => review::list_studies_and_others(&spec.root, &spec.cancel),
        };
        let mut rows = review::rows_for(&spec.root, files, &spec.engine.model.config);
        let paths = review::carry_over(&mut rows, &spec.known);
        let mut cache = spec.cache.as_deref().and_then(|path| {
            let context = prediction_cache::Context::of(&spec.engine, spec.mc_samples);
            PredictionCache::open(path, context)
                .map_err(|e| tracing::warn!("{e}; folders are predicted in full"))
                .ok()
        });
        let paths = match &cache {
            Some(c) => {
                let started = Instant::now();
                let asked = paths.len();
                let missing = c.fill(&mut rows, paths.clone()).unwrap_or_else(|e| {
                    tracing::warn!("{e}");
                    paths
                });
                tracing::info!(
                    "{} of {asked} predictions taken from the cache in {:.0} ms",
                    asked - missing.len(),
                    started.elapsed().as_secs_f64() * 1e3
                );
                missing
            }
            None => paths,
        };
        out.send(Msg::Review(ReviewMsg::Listed {
            scan_id,
            rows,
            truncated,
            other_formats,
        }));
        let started = Instant::now();
        let to_predict = paths.len();
        let mut pending = paths.into_iter().peekable();
        while pending.peek().is_some() {
            while spec.pause.load(Ordering::Relaxed) && !spec.cancel.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            if spec.cancel.load(Ordering::Relaxed) {
                return;
            }
            for film in predict_batch(&spec, &mut pending) {
                let (result, scope) = match film.result {
                    Ok((p, s)) => (Ok(p), Some(s)),
                    Err(e) => (Err(e), None),
                };
                if let (Some(c), Some(stamp), Ok(p), Some(s)) =
                    (&cache, film.stamp, &result, &scope)
                {
                    if let Err(e) = c.put(&film.path, stamp, film.id.as_ref(), p, s) {
                        // Said once: a read-only or full disk fails every write alike.
                        tracing::warn!("{e}; this folder's predictions are not kept");
                        cache = None;
                    }
                }
                out.send(Msg::Review(ReviewMsg::Row {
                    scan_id,
                    path: film.path,
                    id: film.id,
                    result,
                    scope,
                    stamp: film.stamp,
                }));
            }
        }
        tracing::info!(
            "predicted {to_predict} films in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        out.send(Msg::Review(ReviewMsg::Finished { scan_id }));
    });
}

/// Films predicted together by the folder scan: one forward pass for up to this many
/// ([`Engine::prepare_many`]; 4 films cost 36 ms each instead of 47 ms alone on a 2-core Intel
/// Xeon), few enough that the study the reviewer opens waits at most one batch for the CPU.
const SCAN_BATCH: usize = 4;

/// One film of a scan batch, as the study list takes it.
struct ScannedFilm {
    path: PathBuf,
    /// Taken before reading: a file changed while it is read is predicted again next time.
    stamp: Option<review::FileStamp>,
    id: Option<crate::notes::StudyId>,
    result: Result<(PredictionSnapshot, crate::scope::ScopeCheck), String>,
}

/// Reads the next films of `pending` (up to [`SCAN_BATCH`], fewer when large:
/// [`crate::analysis::take_batch`]) and predicts them with one forward pass, each with its
/// MC-dropout flag.
fn predict_batch(spec: &ScanSpec, pending: &mut impl Iterator<Item = PathBuf>) -> Vec<ScannedFilm> {
    let read = |path: PathBuf| {
        let stamp = review::FileStamp::of(&path);
        let (id, study) = match load_study(&path) {
            Ok(study) => (
                crate::notes::identity::study_id(&path, &study).ok(),
                Ok(study),
            ),
            Err(e) => (
                // Unreadable files still get an id (their bytes), so a note can say why.
                crate::notes::identity::file_sha256(&path)
                    .ok()
                    .map(|d| crate::notes::StudyId::sha256(&d)),
                Err(chain_line(&e)),
            ),
        };
        (
            ScannedFilm {
                path,
                stamp,
                id,
                result: Err(String::new()),
            },
            study,
        )
    };
    let batch = crate::analysis::take_batch(pending, SCAN_BATCH, read, |(_, s)| {
        s.as_ref().map_or(0, |s| s.width * s.height)
    });
    let (mut films, loaded): (Vec<ScannedFilm>, Vec<_>) = batch.into_iter().unzip();
    let engine = &spec.engine;
    let error = |e: AnalysisError| first_line(&e.to_string());
    for (film, prepared) in films.iter_mut().zip(engine.prepare_loaded(loaded, error)) {
        film.result = prepared.and_then(|prepared| {
            let flagged = || -> Result<bool, AnalysisError> {
                let target = engine.target_index(None, &prepared.prediction)?;
                // Same samples and seed as the viewer's own analysis, so the list and the
                // result panel agree about the uncertainty flag (the batch's features are the
                // single pass's up to float rounding: tests/scope.rs).
                let (mc, _) = engine.uncertainty(&prepared, target, spec.mc_samples, 0)?;
                let cfg = &engine.model.config;
                Ok(
                    crate::analysis::uncertainty_flag(&mc, cfg.threshold, cfg.classes.len())
                        .is_some(),
                )
            };
            let uncertain = flagged().map_err(error)?;
            Ok((
                PredictionSnapshot::from_prediction(
                    &prepared.prediction,
                    uncertain,
                    prepared.scope.in_scope,
                ),
                prepared.scope,
            ))
        });
    }
    films
}
