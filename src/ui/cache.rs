//! Results kept per image so that going back to an image is instant, and the bookkeeping that
//! makes switching images cancel work nobody is waiting for any more.
//!
//! Plain data, no egui, no threads: unit-testable on its own.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::analysis::{Prepared, Timings};
use crate::explain::gradcam::GradCam;
use crate::explain::integrated_gradients::{Baseline, IntegratedGradients};
use crate::explain::uncertainty::McDropout;
use crate::explain::zones::ZoneScore;
use crate::io::Window;

use super::settings::BaselineChoice;

/// Everything the prediction, Grad-CAM and uncertainty depend on. The display window is *not*
/// part of it: the model always sees the analysis window (the study default), so dragging
/// window/level never re-runs the network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnalysisKey {
    pub path: PathBuf,
    /// `Window::low` / `high` as bits: exact, hashable, no float comparison surprises.
    pub window: [u32; 2],
    pub mc_samples: usize,
    pub seed: u64,
    /// Frame of a multi-frame study (0-based); each frame has its own results.
    pub frame: u32,
}

impl AnalysisKey {
    pub fn new(path: PathBuf, window: &Window, mc_samples: usize, seed: u64) -> Self {
        Self {
            path,
            window: [window.low.to_bits(), window.high.to_bits()],
            mc_samples,
            seed,
            frame: 0,
        }
    }

    /// The same key for frame `frame` of a multi-frame study.
    pub fn with_frame(mut self, frame: u32) -> Self {
        self.frame = frame;
        self
    }
}

/// Integrated Gradients options on top of an [`AnalysisKey`]: changing the baseline re-runs IG
/// only, and switching back finds the previous result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IgKey {
    pub steps: usize,
    pub baseline: BaselineChoice,
}

pub type Zoned<T> = Arc<(T, Vec<ZoneScore>)>;

/// Results of one image, filled stage by stage as they arrive.
#[derive(Default)]
pub struct Entry {
    pub prepared: Option<Arc<Prepared>>,
    /// Class explained by Grad-CAM and IG (the predicted one).
    pub target: usize,
    pub gradcam: Option<Zoned<GradCam>>,
    pub uncertainty: Option<Zoned<McDropout>>,
    pub ig: HashMap<IgKey, Zoned<IntegratedGradients>>,
    pub timings: Timings,
    /// The first line of the error that stopped the analysis; no automatic retry.
    pub error: Option<String>,
    /// The user pressed cancel: don't restart by itself, offer "resume".
    pub user_cancelled: bool,
}

impl Entry {
    /// The analysis failed or the user stopped it: nothing is started for it by itself.
    pub fn halted(&self) -> bool {
        self.error.is_some() || self.user_cancelled
    }

    /// The prediction judged the film outside the model's scope ([`crate::scope`]); `false`
    /// until the prediction is in.
    pub fn out_of_scope(&self) -> bool {
        self.prepared.as_ref().is_some_and(|p| !p.scope.in_scope)
    }

    /// Keeps the IG result of `key`. A result `auto` chose is also the map of the baseline it
    /// chose (the same path integral), so it is kept under that baseline's key too, unless one
    /// is there: switching from `auto` to that baseline then finds it.
    pub fn insert_ig(&mut self, key: IgKey, result: Zoned<IntegratedGradients>) {
        if key.baseline == BaselineChoice::Auto {
            let fixed = IgKey {
                baseline: result.0.baseline.into(),
                ..key
            };
            self.ig
                .entry(fixed)
                .or_insert_with(|| with_auto(&result, false));
        }
        self.ig.insert(key, result);
    }

    /// `auto`'s result for `key` is the map kept for `chosen`, the baseline `auto` chose
    /// (the worker chose it and found that map kept: [`Self::kept_fixed_baselines`]).
    pub fn take_auto_from(&mut self, key: IgKey, chosen: Baseline) {
        let fixed = IgKey {
            baseline: chosen.into(),
            ..key
        };
        if let Some(result) = self.ig.get(&fixed) {
            let result = with_auto(result, true);
            self.ig.insert(key, result);
        }
    }

    /// The fixed baselines whose IG maps at `steps` are kept here: an `auto` IG that chooses one
    /// of them is taken from it instead of being computed again.
    pub fn kept_fixed_baselines(&self, steps: usize) -> Vec<Baseline> {
        self.ig
            .iter()
            .filter(|(k, _)| k.steps == steps && k.baseline != BaselineChoice::Auto)
            .map(|(_, r)| r.0.baseline)
            .collect()
    }

    /// The stages that are still missing for `ig` (None: IG not wanted).
    pub fn missing(&self, ig: Option<IgKey>) -> Needs {
        Needs {
            prepare: self.prepared.is_none(),
            gradcam: self.gradcam.is_none(),
            uncertainty: self.uncertainty.is_none(),
            ig: ig.filter(|k| !self.ig.contains_key(k)),
        }
    }
}

/// `result` as chosen by `auto` or not ([`IntegratedGradients::baseline_auto`]).
fn with_auto(result: &Zoned<IntegratedGradients>, auto: bool) -> Zoned<IntegratedGradients> {
    let (ig, zones) = &**result;
    Arc::new((
        IntegratedGradients {
            baseline_auto: auto,
            ..ig.clone()
        },
        zones.clone(),
    ))
}

/// Which stages a job has to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    pub prepare: bool,
    pub gradcam: bool,
    pub uncertainty: bool,
    pub ig: Option<IgKey>,
}

impl Needs {
    pub fn any(&self) -> bool {
        self.prepare || self.gradcam || self.uncertainty || self.ig.is_some()
    }
}

/// A small least-recently-used map: images are big, a review session visits many of them.
pub struct Lru<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Clone + Eq + Hash, V> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn touch(&mut self, key: &K) {
        if let Some(i) = self.order.iter().position(|k| k == key) {
            if let Some(k) = self.order.remove(i) {
                self.order.push_back(k);
            }
        }
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.touch(key);
        self.map.get(key)
    }

    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// The entry for `key`, created with `make` if absent (evicting the oldest one if full).
    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        if self.map.contains_key(key) {
            self.touch(key);
        } else {
            while self.map.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(key.clone());
            self.map.insert(key.clone(), make());
        }
        // The key was inserted just above if it was missing.
        match self.map.get_mut(key) {
            Some(v) => v,
            None => unreachable!("entry inserted above"),
        }
    }

    /// Mutable access without creating; results of an evicted entry are dropped on arrival.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Stage of a running job, for the progress line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStage {
    Queued,
    Prediction,
    GradCam,
    Uncertainty,
    IntegratedGradients { done: usize, total: usize },
}

pub struct RunningJob {
    pub id: u64,
    pub key: AnalysisKey,
    pub cancel: Arc<AtomicBool>,
    pub stage: JobStage,
    /// The IG options this job computes, if any.
    pub ig: Option<IgKey>,
    /// The job leaves IG out for a film its prediction finds out of scope (`JobSpec`).
    pub ig_in_scope_only: bool,
}

impl RunningJob {
    /// The IG this job will compute, now that the film is known to be `out_of_scope` or not.
    pub fn computes_ig(&self, out_of_scope: bool) -> Option<IgKey> {
        self.ig.filter(|_| !(self.ig_in_scope_only && out_of_scope))
    }
}

/// The analysis jobs in flight. At most one job per key; starting work for another image cancels
/// every job of other images (their partial results stay cached).
#[derive(Default)]
pub struct Jobs {
    next_id: u64,
    pub running: Vec<RunningJob>,
}

impl Jobs {
    /// Registers a job for `key`, cancelling all jobs of other keys. Returns its id and the flag
    /// the worker polls.
    pub fn start(
        &mut self,
        key: AnalysisKey,
        ig: Option<IgKey>,
        ig_in_scope_only: bool,
    ) -> (u64, Arc<AtomicBool>) {
        self.cancel_all_except(Some(&key));
        self.next_id += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        self.running.push(RunningJob {
            id: self.next_id,
            key,
            cancel: cancel.clone(),
            stage: JobStage::Queued,
            ig,
            ig_in_scope_only,
        });
        (self.next_id, cancel)
    }

    /// Sets the cancel flag of every job whose key differs from `keep` (all jobs for `None`).
    /// Cancelled jobs stay listed until their worker says it stopped: the CPU is still busy.
    pub fn cancel_all_except(&mut self, keep: Option<&AnalysisKey>) {
        for job in &self.running {
            if Some(&job.key) != keep {
                job.cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Sets the cancel flag of every job for another file than `path`: opening `path` keeps
    /// the job that analyses it in advance (`ViewerApp::prefetch_next`).
    pub fn cancel_all_but_path(&mut self, path: &std::path::Path) {
        for job in &self.running {
            if job.key.path != path {
                job.cancel.store(true, Ordering::Relaxed);
            }
        }
    }

    pub fn finish(&mut self, id: u64) {
        self.running.retain(|j| j.id != id);
    }

    pub fn set_stage(&mut self, id: u64, stage: JobStage) {
        if let Some(job) = self.running.iter_mut().find(|j| j.id == id) {
            job.stage = stage;
        }
    }

    /// The live (not cancelled) job of `key`.
    pub fn active_for(&self, key: &AnalysisKey) -> Option<&RunningJob> {
        self.running
            .iter()
            .find(|j| &j.key == key && !j.cancel.load(Ordering::Relaxed))
    }

    /// A live job is still computing what the reviewer looks at first (prediction, Grad-CAM,
    /// uncertainty); a folder scan waits meanwhile but may share the CPU with IG.
    pub fn interactive(&self) -> bool {
        self.running.iter().any(|j| {
            !j.cancel.load(Ordering::Relaxed)
                && !matches!(j.stage, JobStage::IntegratedGradients { .. })
        })
    }

    /// Whether any job (even a cancelled one still winding down) uses the CPU.
    pub fn busy(&self) -> bool {
        !self.running.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AnalysisKey {
        AnalysisKey::new(
            PathBuf::from(name),
            &Window {
                low: 0.0,
                high: 255.0,
            },
            20,
            0,
        )
    }

    #[test]
    fn key_distinguishes_window_and_options() {
        let a = key("a.png");
        let mut b = a.clone();
        assert_eq!(a, b);
        b.window[1] = 254.0f32.to_bits();
        assert_ne!(a, b);
        let mut c = a.clone();
        c.mc_samples = 30;
        assert_ne!(a, c);
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.get_or_insert_with(&"a", || 1);
        lru.get_or_insert_with(&"b", || 2);
        assert_eq!(lru.get(&"a"), Some(&1)); // a is now the most recent
        lru.get_or_insert_with(&"c", || 3);
        assert!(lru.contains(&"a"));
        assert!(!lru.contains(&"b"));
        assert!(lru.contains(&"c"));
        assert_eq!(lru.len(), 2);
        // An existing entry is returned, not rebuilt.
        *lru.get_or_insert_with(&"a", || 100) += 10;
        assert_eq!(lru.peek(&"a"), Some(&11));
    }

    #[test]
    fn starting_another_image_cancels_stale_jobs_only() {
        let mut jobs = Jobs::default();
        let (id_a, cancel_a) = jobs.start(key("a.png"), None, false);
        let (_, cancel_a_again) = jobs.start(key("a.png"), None, false);
        assert!(!cancel_a.load(Ordering::Relaxed), "same image: keep going");
        let (_, cancel_b) = jobs.start(key("b.png"), None, false);
        assert!(cancel_a.load(Ordering::Relaxed));
        assert!(cancel_a_again.load(Ordering::Relaxed));
        assert!(!cancel_b.load(Ordering::Relaxed));
        assert!(jobs.active_for(&key("a.png")).is_none());
        assert!(jobs.active_for(&key("b.png")).is_some());
        // The cancelled job is still winding down until its worker reports.
        assert!(jobs.busy());
        jobs.finish(id_a);
        assert_eq!(jobs.running.len(), 2);
    }

    #[test]
    fn cancel_all_stops_everything() {
        let mut jobs = Jobs::default();
        let (_, c) = jobs.start(key("a.png"), None, false);
        jobs.cancel_all_except(None);
        assert!(c.load(Ordering::Relaxed));
        assert!(jobs.active_for(&key("a.png")).is_none());
    }

    #[test]
    fn entry_reports_missing_stages() {
        let mut e = Entry::default();
        let ig = IgKey {
            steps: 8,
            baseline: BaselineChoice::Black,
        };
        let n = e.missing(Some(ig));
        assert!(n.prepare && n.gradcam && n.uncertainty && n.ig == Some(ig));
        assert!(n.any());
        assert!(e.missing(None).ig.is_none());
        e.error = Some("x".into());
        // Missing is about results; whether to retry is the caller's decision.
        assert!(e.missing(None).any());
    }
}
