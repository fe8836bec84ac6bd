//! The viewer's side of "how far can each map be trusted": results per image, the one background
//! job (faithfulness after IG, or the sanity check on demand), and the overlay gate.
//!
//! Plain data plus a worker function; drawing is in `faithfulness_panel.rs` and `sanity_view.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crate::analysis::{AnalysisError, Engine, Prepared, SANITY_IG_STEPS};
use crate::explain::agreement::{Agreement, Method};
use crate::explain::faithfulness::FaithfulnessOptions;
use crate::explain::integrated_gradients::{Baseline, IgOptions};
use crate::explain::sanity::Sanity;
use crate::explain::{Control, Grid};
use crate::trust::{
    overlay_gate, study_agreement, study_faithfulness, study_sanity, Gate, StudyFaithfulness,
    StudyMaps,
};

use super::app::ViewerApp;
use super::cache::{AnalysisKey, IgKey};
use super::settings::MapKind;
use super::worker::{Msg, Outbox};

/// Results are per image and per IG options (IG is one of the maps).
pub type TrustKey = (AnalysisKey, Option<IgKey>);

#[derive(Default)]
pub struct TrustEntry {
    pub faithfulness: Option<Arc<StudyFaithfulness>>,
    pub agreement: Option<Arc<Agreement>>,
    pub sanity: Option<Arc<Sanity>>,
    /// How long the faithfulness curves and the sanity check took, in ms (report.json's
    /// `timings_ms`).
    pub faithfulness_ms: f64,
    pub sanity_ms: f64,
    pub error: Option<String>,
    /// The user cancelled: no automatic restart for this image.
    pub cancelled: bool,
}

/// The results of a [`TrustEntry`], without its state.
type TrustResults = (
    Option<Arc<StudyFaithfulness>>,
    Option<Arc<Agreement>>,
    Option<Arc<Sanity>>,
);

impl TrustEntry {
    fn results(&self) -> TrustResults {
        (
            self.faithfulness.clone(),
            self.agreement.clone(),
            self.sanity.clone(),
        )
    }

    /// Takes the results this entry lacks.
    fn fill(&mut self, (faithfulness, agreement, sanity): TrustResults) {
        self.faithfulness = self.faithfulness.take().or(faithfulness);
        self.agreement = self.agreement.take().or(agreement);
        self.sanity = self.sanity.take().or(sanity);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustJobKind {
    Faithfulness,
    Sanity,
}

pub struct TrustJob {
    pub key: TrustKey,
    pub kind: TrustJobKind,
    /// Started for the study Next opens ([`start_in_advance`]), not the one on screen.
    pub in_advance: bool,
    pub done: usize,
    pub total: usize,
    pub cancel: Arc<AtomicBool>,
}

pub enum TrustMsg {
    Progress {
        key: TrustKey,
        done: usize,
        total: usize,
    },
    Agreement(TrustKey, Agreement),
    /// The result and its time in ms.
    Faithfulness(TrustKey, StudyFaithfulness, f64),
    Sanity(TrustKey, Sanity, f64),
    Failed(TrustKey, String),
    Finished {
        key: TrustKey,
        cancelled: bool,
    },
}

#[derive(Default)]
pub struct TrustState {
    pub entries: HashMap<TrustKey, TrustEntry>,
    pub job: Option<TrustJob>,
    /// A sanity check asked for while another job ran.
    pub sanity_requested: Option<TrustKey>,
    /// The sanity-check window is open.
    pub sanity_open: bool,
    /// Thumbnails of the sanity view, rebuilt when the result changes.
    pub(super) thumbnails: Option<(usize, Vec<egui::TextureHandle>)>,
}

impl TrustState {
    pub fn entry(&self, key: &TrustKey) -> Option<&TrustEntry> {
        self.entries.get(key)
    }

    /// `a` and `b` check the same maps (an `auto` IG result and the fixed baseline it chose): each
    /// takes the results the other has and it lacks.
    pub fn share(&mut self, a: &TrustKey, b: &TrustKey) {
        let results = |k| {
            let r = self.entries.get(k).map(TrustEntry::results)?;
            (r.0.is_some() || r.1.is_some() || r.2.is_some()).then_some(r)
        };
        let (from_a, from_b) = (results(a), results(b));
        if let Some(r) = from_a {
            self.entries.entry(b.clone()).or_default().fill(r);
        }
        if let Some(r) = from_b {
            self.entries.entry(a.clone()).or_default().fill(r);
        }
    }

    /// Stops the job unless it is for `path` (the study being opened), without marking it
    /// cancelled by the user: it starts again when its study is on screen.
    pub fn stop_unless_for(&self, path: &std::path::Path) {
        if let Some(job) = self.job.as_ref().filter(|j| j.key.0.path != path) {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The user stopped the check: it is not started again by itself for that study, except
    /// one run in advance for the next study (not `on_screen`), which that study starts afresh
    /// when opened.
    pub fn cancel(&mut self, on_screen: Option<&TrustKey>) {
        if let Some(job) = &self.job {
            job.cancel.store(true, Ordering::Relaxed);
            if !job.in_advance || Some(&job.key) == on_screen {
                let key = job.key.clone();
                self.entries.entry(key).or_default().cancelled = true;
            }
        }
        self.sanity_requested = None;
    }

    pub fn handle(&mut self, msg: TrustMsg) {
        match msg {
            TrustMsg::Progress { key, done, total } => {
                if let Some(job) = self.job.as_mut().filter(|j| j.key == key) {
                    job.done = done;
                    job.total = total;
                }
            }
            TrustMsg::Agreement(key, a) => {
                self.entries.entry(key).or_default().agreement = Some(Arc::new(a));
            }
            TrustMsg::Faithfulness(key, f, ms) => {
                let e = self.entries.entry(key).or_default();
                e.faithfulness = Some(Arc::new(f));
                e.faithfulness_ms = ms;
            }
            TrustMsg::Sanity(key, s, ms) => {
                let e = self.entries.entry(key).or_default();
                e.sanity = Some(Arc::new(s));
                e.sanity_ms = ms;
                self.thumbnails = None;
            }
            TrustMsg::Failed(key, e) => {
                self.entries.entry(key).or_default().error = Some(e);
            }
            TrustMsg::Finished { key, .. } => {
                if self.job.as_ref().is_some_and(|j| j.key == key) {
                    self.job = None;
                }
            }
        }
    }
}

/// The map kind on screen as a method of the checks.
pub fn method_of(kind: MapKind) -> Method {
    match kind {
        MapKind::IntegratedGradients => Method::Ig,
        MapKind::Uncertainty => Method::Uncertainty,
        MapKind::GradCam | MapKind::None => Method::GradCam,
    }
}

/// The key of what is on screen.
pub fn current_trust_key(app: &ViewerApp) -> Option<TrustKey> {
    Some((app.current_key()?, app.wanted_ig()))
}

/// Reasons to dim the overlays of the image on screen: an uncertain answer, and a film outside
/// the model's scope (whose maps are drawn at all only after "Show anyway").
pub fn gate_reasons(app: &ViewerApp) -> Vec<String> {
    crate::trust::gate_reasons(
        app.uncertain_reason(),
        super::scope_banner::current_scope(app),
    )
}

/// The gate of the image on screen (`None`: draw at full opacity).
pub fn current_gate(app: &ViewerApp) -> Option<Gate> {
    overlay_gate(gate_reasons(app), app.settings.gate_overlays)
}

/// The IG result on screen, when its baseline is itself read as the class explained
/// ([`crate::analysis::BaselineReading`]): that class's name and the one-line warning.
pub fn ig_baseline_warning(app: &ViewerApp) -> Option<(String, String)> {
    let cfg = &app.engine()?.model.config;
    let key = app.wanted_ig_or_default();
    let entry = app.current_entry()?;
    let ig = &entry.ig.get(&key)?.0;
    let reading = crate::analysis::baseline_reading(cfg, ig)?;
    let warning = crate::analysis::baseline_warning(ig, &reading)?;
    Some((reading.label, warning))
}

/// What a job needs, taken from the cache on the UI thread.
struct JobInput {
    engine: Arc<Engine>,
    prepared: Arc<Prepared>,
    target: usize,
    gradcam: Grid,
    /// The IG map with its steps and the baseline it started from (an `auto` choice is not made
    /// again for the randomised models).
    ig: Option<(Grid, IgKey, Baseline)>,
    uncertainty: Grid,
}

fn job_input(app: &ViewerApp, key: &TrustKey) -> Option<JobInput> {
    let engine = app.engine()?.clone();
    let entry = app.cache.peek(&key.0)?;
    let ig = match key.1 {
        Some(k) => {
            let ig = &entry.ig.get(&k)?.0;
            Some((ig.map.clone(), k, ig.baseline))
        }
        None => None,
    };
    Some(JobInput {
        engine,
        prepared: entry.prepared.clone()?,
        target: entry.target,
        gradcam: entry.gradcam.as_ref()?.0.map.clone(),
        ig,
        uncertainty: entry.uncertainty.as_ref()?.0.cam_mean.clone(),
    })
}

/// Per frame: cancels a job for another image; starts faithfulness once the image's maps are all
/// there and its analysis job has finished (it runs after IG), or a requested sanity check;
/// neither while an out-of-scope result is hidden (a requested sanity check waits for "Show
/// anyway").
pub fn ensure_trust(app: &mut ViewerApp) {
    let key = current_trust_key(app);
    if let Some(job) = &app.trust.job {
        // A job for the next study goes on (opening another study stops it) unless the study
        // on screen wants a sanity check.
        let keep = job.in_advance && app.trust.sanity_requested.is_none();
        if Some(&job.key) != key.as_ref() && !keep {
            job.cancel.store(true, Ordering::Relaxed);
        }
        return;
    }
    let Some(key) = key else {
        return;
    };
    if app.jobs.active_for(&key.0).is_some() {
        return;
    }
    let hidden = app.slow_stages_wait(&key.0);
    let entry = app.trust.entries.get(&key);
    if entry.is_some_and(|e| e.error.is_some()) {
        return;
    }
    let kind = if !hidden
        && app.trust.sanity_requested.as_ref() == Some(&key)
        && entry.is_none_or(|e| e.sanity.is_none())
    {
        TrustJobKind::Sanity
    } else if !hidden && entry.is_none_or(|e| e.faithfulness.is_none() && !e.cancelled) {
        TrustJobKind::Faithfulness
    } else {
        return;
    };
    if start_job(app, key, kind, false) && kind == TrustJobKind::Sanity {
        app.trust.sanity_requested = None;
    }
}

/// The faithfulness check of the study Next opens, once its maps are there
/// (`ViewerApp::prefetch_next`), unless it has one, failed, was cancelled or waits for "Show
/// anyway" (`ViewerApp::slow_stages_wait`). Returns whether a job started.
pub fn start_in_advance(app: &mut ViewerApp, key: TrustKey) -> bool {
    if app.trust.job.is_some() || app.slow_stages_wait(&key.0) {
        return false;
    }
    let entry = app.trust.entries.get(&key);
    if entry.is_some_and(|e| e.error.is_some() || e.cancelled || e.faithfulness.is_some()) {
        return false;
    }
    start_job(app, key, TrustJobKind::Faithfulness, true)
}

fn start_job(app: &mut ViewerApp, key: TrustKey, kind: TrustJobKind, in_advance: bool) -> bool {
    let (Some(input), Some(out)) = (job_input(app, &key), app.outbox()) else {
        return false;
    };
    let cancel = Arc::new(AtomicBool::new(false));
    app.trust.entries.entry(key.clone()).or_default().cancelled = false;
    app.trust.job = Some(TrustJob {
        key: key.clone(),
        kind,
        in_advance,
        done: 0,
        total: 0,
        cancel: cancel.clone(),
    });
    let seed = key.0.seed;
    let spawned = thread::Builder::new()
        .name("trust".into())
        .spawn(move || run_trust_job(out, key, kind, input, seed, cancel));
    if let Err(e) = spawned {
        tracing::error!("cannot start a worker thread: {e}");
        app.trust.job = None;
        return false;
    }
    true
}

/// Asks for the sanity check of the image on screen (button, shortcut) and opens its view.
pub fn request_sanity(app: &mut ViewerApp) {
    app.trust.sanity_open = true;
    if let Some(key) = current_trust_key(app) {
        let has = app
            .trust
            .entries
            .get(&key)
            .is_some_and(|e| e.sanity.is_some());
        if !has {
            if let Some(e) = app.trust.entries.get_mut(&key) {
                e.error = None;
            }
            // A running faithfulness job finishes first; the sanity check starts after it.
            app.trust.sanity_requested = Some(key);
        }
    }
}

fn elapsed_ms(since: std::time::Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn run_trust_job(
    out: Outbox,
    key: TrustKey,
    kind: TrustJobKind,
    input: JobInput,
    seed: u64,
    cancel: Arc<AtomicBool>,
) {
    let send = |m: TrustMsg| out.send(Msg::Trust(m));
    let progress = |done: usize, total: usize| {
        send(TrustMsg::Progress {
            key: key.clone(),
            done,
            total,
        })
    };
    let control = Control {
        cancel: &cancel,
        progress: &progress,
    };
    let maps = StudyMaps {
        gradcam: &input.gradcam,
        ig: input.ig.as_ref().map(|(g, _, _)| g),
        uncertainty: &input.uncertainty,
    };
    let model = &input.engine.model;
    let result: Result<(), AnalysisError> = (|| {
        match kind {
            TrustJobKind::Faithfulness => {
                let opts = FaithfulnessOptions::default();
                send(TrustMsg::Agreement(
                    key.clone(),
                    study_agreement(model, &maps, opts.grid),
                ));
                let t = std::time::Instant::now();
                let f = study_faithfulness(
                    model,
                    &input.prepared,
                    input.target,
                    &maps,
                    &opts,
                    &control,
                )?;
                send(TrustMsg::Faithfulness(key.clone(), f, elapsed_ms(t)));
            }
            TrustJobKind::Sanity => {
                let ig = input.ig.as_ref().map(|(_, k, baseline)| IgOptions {
                    steps: k.steps.min(SANITY_IG_STEPS),
                    baseline: *baseline,
                    target: input.target,
                    batch: 8,
                    lanes: crate::explain::integrated_gradients::lanes_for(&model.device),
                    rule: crate::explain::integrated_gradients::IgRule::GaussLegendre,
                });
                let t = std::time::Instant::now();
                let s = study_sanity(
                    model,
                    &input.prepared,
                    input.target,
                    &maps,
                    ig,
                    seed,
                    &control,
                )?;
                send(TrustMsg::Sanity(key.clone(), s, elapsed_ms(t)));
            }
        }
        Ok(())
    })();
    let cancelled = match result {
        Ok(()) => false,
        Err(AnalysisError::Cancelled) => true,
        Err(e) => {
            send(TrustMsg::Failed(
                key.clone(),
                super::worker::first_line(&e.to_string()),
            ));
            false
        }
    };
    send(TrustMsg::Finished { key, cancelled });
}

/// The results panel's trust section for the image on screen: builds the panel's view, draws it
/// and applies what the user asked for.
pub fn trust_section_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    use super::faithfulness_panel::{faithfulness_ui, FaithfulnessAction, FaithfulnessView};
    let Some(key) = current_trust_key(app) else {
        return;
    };
    let method = method_of(app.map);
    let entry = app.trust.entries.get(&key);
    let faithfulness = entry.and_then(|e| e.faithfulness.clone());
    let running = app
        .trust
        .job
        .as_ref()
        .filter(|j| j.key == key)
        .map(|j| (j.kind, j.done, j.total));
    let view = FaithfulnessView {
        method,
        map: faithfulness.as_ref().and_then(|f| f.get(method)),
        random: faithfulness.as_ref().map(|f| &f.result.random.mean),
        describe: faithfulness.as_ref().map(|f| f.result.describe()),
        agreement: entry.and_then(|e| e.agreement.as_deref()),
        sanity: entry.and_then(|e| e.sanity.as_deref()),
        running,
        error: entry.and_then(|e| e.error.as_deref()),
        cancelled: entry.is_some_and(|e| e.cancelled),
    };
    let action = faithfulness_ui(ui, &view);
    match action {
        Some(FaithfulnessAction::Cancel) => app.trust.cancel(Some(&key)),
        Some(FaithfulnessAction::Run) => {
            if let Some(e) = app.trust.entries.get_mut(&key) {
                e.cancelled = false;
                e.error = None;
            }
        }
        Some(FaithfulnessAction::SanityCheck) => request_sanity(app),
        None => {}
    }
}

/// The sanity-check window, when open.
pub fn sanity_window(app: &mut ViewerApp, ctx: &egui::Context) {
    if !app.trust.sanity_open {
        return;
    }
    let key = current_trust_key(app);
    // Its maps are the result's: hidden with it.
    let hidden = super::scope_banner::result_hidden(app);
    let sanity = key
        .as_ref()
        .and_then(|k| app.trust.entries.get(k))
        .and_then(|e| e.sanity.clone())
        .filter(|_| !hidden);
    let running = app
        .trust
        .job
        .as_ref()
        .filter(|j| Some(&j.key) == key.as_ref() && j.kind == TrustJobKind::Sanity)
        .map(|j| (j.done, j.total));
    let entry = app.current_entry().filter(|_| !hidden);
    let gradcam = entry
        .and_then(|e| e.gradcam.as_ref())
        .map(|g| g.0.map.clone());
    let ig = entry
        .and_then(|e| e.ig.get(&app.wanted_ig_or_default()))
        .map(|g| g.0.map.clone());
    super::sanity_view::sanity_window_ui(
        ctx,
        &mut app.trust,
        sanity.as_deref(),
        (gradcam.as_ref(), ig.as_ref()),
        running,
        hidden,
    );
}

/// The checks of the image on screen, as the report wants them.
/// The faithfulness and sanity-check times of the image on screen, in ms (0 when not run).
pub fn current_trust_ms(app: &ViewerApp) -> (f64, f64) {
    current_trust_key(app)
        .and_then(|k| app.trust.entries.get(&k))
        .map_or((0.0, 0.0), |e| (e.faithfulness_ms, e.sanity_ms))
}

pub fn current_trust(app: &ViewerApp) -> crate::trust::Trust {
    let entry = current_trust_key(app).and_then(|k| app.trust.entries.get(&k));
    crate::trust::Trust {
        faithfulness: entry.and_then(|e| e.faithfulness.as_deref().cloned()),
        agreement: entry.and_then(|e| e.agreement.as_deref().cloned()),
        sanity: entry.and_then(|e| e.sanity.as_deref().cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> TrustKey {
        let window = crate::io::Window {
            low: 0.0,
            high: 255.0,
        };
        (
            AnalysisKey::new(name.into(), &window, 20, 0),
            Some(IgKey {
                steps: 36,
                baseline: crate::ui::settings::BaselineChoice::Black,
            }),
        )
    }

    fn running(key: &TrustKey, in_advance: bool) -> TrustState {
        TrustState {
            job: Some(TrustJob {
                key: key.clone(),
                kind: TrustJobKind::Faithfulness,
                in_advance,
                done: 0,
                total: 0,
                cancel: Arc::new(AtomicBool::new(false)),
            }),
            ..Default::default()
        }
    }

    /// Stopping the analysis (Esc) while the next study is checked in advance stops that job but
    /// leaves the next study free to be checked when it is opened; the study on screen stays
    /// stopped, as before.
    #[test]
    fn stopping_a_check_run_in_advance_does_not_mark_the_next_study_cancelled() {
        let (here, next) = (key("here.png"), key("next.png"));
        let mut state = running(&next, true);
        state.cancel(Some(&here));
        assert!(state.job.as_ref().unwrap().cancel.load(Ordering::Relaxed));
        assert!(state.entry(&next).is_none_or(|e| !e.cancelled));

        // Once the next study is on screen, its check is the one the user stops.
        let mut state = running(&next, true);
        state.cancel(Some(&next));
        assert!(state.entry(&next).is_some_and(|e| e.cancelled));
        let mut state = running(&here, false);
        state.cancel(Some(&here));
        assert!(state.entry(&here).is_some_and(|e| e.cancelled));
    }
}
