//! One study in, one [`Analysis`] out: prediction, Grad-CAM, MC-dropout uncertainty, Integrated
//! Gradients, zone scores and per-stage timings.
//!
//! The stages are also public one by one ([`Engine::prepare`], [`Engine::grad_cam`], …) so the GUI
//! can show results progressively; [`Engine::analyze`] runs them all in the cheap-first order and
//! is what the CLI, the benchmark and the tests use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use serde::Serialize;

use crate::explain::faithfulness::FaithfulnessOptions;
use crate::explain::gradcam::{grad_cam, GradCam};
use crate::explain::integrated_gradients::{
    baseline_tensor, integrated_gradients, integrated_gradients_with_ends, Baseline, IgBaseline,
    IgOptions, IgRule, IntegratedGradients, PathEnds, AUTO_ORDER,
};
use crate::explain::uncertainty::{mc_dropout, McDropout, McOptions};
use crate::explain::zones::{zone_scores, ZoneScore};
use crate::explain::{Control, ExplainError, Grid};
use crate::io::{Study, Window};
use crate::model::preprocess::{input_tensor, model_gray};
use crate::model::resnet::global_avg_pool;
use crate::model::{device::device_name, Classifier, ModelError};
use crate::scope::{ScopeCheck, ScopeStats};
use crate::trust::{study_agreement, study_faithfulness, study_sanity, StudyMaps, Trust};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cancelled")]
    Cancelled,
    #[error("unknown target class '{0}' (the model's classes are {1})")]
    UnknownClass(String, String),
}

impl From<ExplainError> for AnalysisError {
    fn from(e: ExplainError) -> Self {
        match e {
            ExplainError::Cancelled => AnalysisError::Cancelled,
            ExplainError::Model(m) => AnalysisError::Model(m),
        }
    }
}

impl From<candle_core::Error> for AnalysisError {
    fn from(e: candle_core::Error) -> Self {
        AnalysisError::Model(e.into())
    }
}

/// What to compute; `Default` is what the CLI does without flags.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AnalysisOptions {
    pub mc_samples: usize,
    pub ig_steps: usize,
    /// The baseline asked for; black by default ([`IgBaseline`]).
    pub ig_baseline: IgBaseline,
    /// Path points per IG batch.
    pub ig_batch: usize,
    /// IG sub-batches computed at once ([`IgOptions::lanes`]).
    pub ig_lanes: usize,
    /// How IG chooses its path points (`ig_steps` is then the most gradients it may spend).
    pub ig_rule: IgRule,
    /// Class explained by Grad-CAM and IG; `None`: the predicted class.
    pub target: Option<String>,
    /// Seed of the dropout masks.
    pub seed: u64,
    pub integrated_gradients: bool,
    /// Deletion/insertion faithfulness of every map (`None`: skip, the default here; the CLI and
    /// the viewer turn it on), see [`crate::trust`].
    pub faithfulness: Option<FaithfulnessOptions>,
    /// The model-randomisation sanity check (slow: Grad-CAM and IG once per randomised stage).
    pub sanity_check: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            mc_samples: 20,
            ig_steps: 36,
            ig_baseline: IgBaseline::Black,
            ig_batch: 8,
            ig_lanes: crate::explain::integrated_gradients::CPU_LANES,
            ig_rule: IgRule::default(),
            target: None,
            seed: 0,
            integrated_gradients: true,
            faithfulness: None,
            sanity_check: false,
        }
    }
}

impl AnalysisOptions {
    pub fn with_mc_samples(mut self, n: usize) -> Self {
        self.mc_samples = n.max(1);
        self
    }
    pub fn with_ig_steps(mut self, n: usize) -> Self {
        self.ig_steps = n.max(1);
        self
    }
    pub fn with_ig_baseline(mut self, b: impl Into<IgBaseline>) -> Self {
        self.ig_baseline = b.into();
        self
    }
    pub fn with_ig_batch(mut self, n: usize) -> Self {
        self.ig_batch = n.max(1);
        self
    }
    pub fn with_ig_lanes(mut self, n: usize) -> Self {
        self.ig_lanes = n.max(1);
        self
    }
    pub fn with_ig_rule(mut self, rule: IgRule) -> Self {
        self.ig_rule = rule;
        self
    }
    pub fn with_target(mut self, class: Option<String>) -> Self {
        self.target = class;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_integrated_gradients(mut self, on: bool) -> Self {
        self.integrated_gradients = on;
        self
    }
    pub fn with_faithfulness(mut self, opts: Option<FaithfulnessOptions>) -> Self {
        self.faithfulness = opts;
        self
    }
    pub fn with_sanity_check(mut self, on: bool) -> Self {
        self.sanity_check = on;
        self
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub label: String,
    pub class_index: usize,
    /// Calibrated (temperature-scaled) softmax probabilities, deterministic pass.
    pub probabilities: BTreeMap<String, f32>,
    pub positive_class: String,
    pub positive_probability: f32,
    pub threshold: f32,
    pub temperature: f32,
    pub logits: Vec<f32>,
}

/// How the model reads Integrated Gradients' baseline image itself (an all-black or all-white
/// film).
///
/// IG apportions F(x) − F(x′) over the pixels, so its map explains the film *relative to the
/// baseline*; the baseline is meant to stand for the absence of what is explained, a reading
/// near zero for the explained class (Sundararajan et al. 2017, §3; Sturmfels, Lundberg & Lee
/// 2020, "Visualizing the impact of feature attribution baselines", Distill). A model trained
/// from scratch need not oblige: the shipped one reads both the black and the white image as
/// PNEUMONIA (P ≈ 0.96 and 0.90). Explaining PNEUMONIA from such a baseline splits only the
/// small difference between two PNEUMONIA readings (F(x) − F(x′) can even be negative), and the
/// map then says little about why the film reads as pneumonia; the completeness gap, relative to
/// that small difference, reads in the hundreds of per cent. Said beside the map instead of
/// letting it pass as an explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BaselineReading {
    /// The class the model answers for the baseline image.
    pub label: String,
    /// Calibrated probability of the explained class at the baseline.
    pub target_probability: f32,
    /// The baseline is itself read as the explained class.
    pub read_as_target: bool,
}

/// [`BaselineReading`] of `ig`: the model's prediction for its baseline's logits, by the same
/// [`prediction_from_logits`] as for a film; `None` when `ig` does not carry them.
pub fn baseline_reading(
    cfg: &crate::model::config::ModelConfig,
    ig: &IntegratedGradients,
) -> Option<BaselineReading> {
    let logits = &ig.baseline_logits;
    if logits.len() != cfg.classes.len() || ig.target >= logits.len() {
        return None;
    }
    let prediction = prediction_from_logit_values(cfg, logits).ok()?;
    Some(BaselineReading {
        target_probability: prediction.probabilities[&cfg.classes[ig.target]],
        read_as_target: prediction.class_index == ig.target,
        label: prediction.label,
    })
}

/// "black baseline is itself read as PNEUMONIA (P = 0.96)", when it is read as the explained
/// class (see [`BaselineReading`]): the start of [`baseline_warning`] and of `analyze`'s note.
pub fn baseline_read_as_target(
    ig: &IntegratedGradients,
    reading: &BaselineReading,
) -> Option<String> {
    reading.read_as_target.then(|| {
        format!(
            "{} baseline is itself read as {} (P = {:.2}){}",
            ig.baseline.name(),
            reading.label,
            reading.target_probability,
            // `auto` falls back to black only when every baseline offered is read so.
            if ig.baseline_auto {
                ", as is every other baseline the model offers"
            } else {
                ""
            }
        )
    })
}

/// One line for the user when the baseline is itself read as the explained class (see
/// [`BaselineReading`]): "The black baseline is itself read as PNEUMONIA (P = 0.96): …".
pub fn baseline_warning(ig: &IntegratedGradients, reading: &BaselineReading) -> Option<String> {
    baseline_read_as_target(ig, reading).map(|read| {
        format!(
            "The {read}: this IG map shows what separates the film from that image, not why the \
             film reads as {}",
            reading.label
        )
    })
}

/// [`prediction_from_logits`] of one image's logits kept as values (an IG baseline's).
fn prediction_from_logit_values(
    cfg: &crate::model::config::ModelConfig,
    logits: &[f32],
) -> Result<Prediction, AnalysisError> {
    let logits = Tensor::from_slice(logits, (1, logits.len()), &Device::Cpu)?;
    prediction_from_logits(cfg, &logits)
}

/// The prediction of `logits` `[1, classes]`: temperature-scaled softmax, and in a binary model
/// the calibrated threshold on the positive class decides, not the argmax.
pub fn prediction_from_logits(
    cfg: &crate::model::config::ModelConfig,
    logits: &Tensor,
) -> Result<Prediction, AnalysisError> {
    let raw: Vec<f32> = logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    let probs: Vec<f32> = candle_nn::ops::softmax(&(logits / cfg.temperature as f64)?, D::Minus1)?
        .flatten_all()?
        .to_vec1()?;
    let positive = cfg.positive_index();
    let p_pos = probs[positive];
    let class_index = if cfg.classes.len() == 2 {
        if p_pos >= cfg.threshold {
            positive
        } else {
            1 - positive
        }
    } else {
        probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
    };
    Ok(Prediction {
        label: cfg.classes[class_index].clone(),
        class_index,
        probabilities: cfg
            .classes
            .iter()
            .cloned()
            .zip(probs.iter().copied())
            .collect(),
        positive_class: cfg.positive_class.clone(),
        positive_probability: p_pos,
        threshold: cfg.threshold,
        temperature: cfg.temperature,
        logits: raw,
    })
}

/// Milliseconds per stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub load: f64,
    pub preprocess: f64,
    pub forward: f64,
    pub gradcam: f64,
    pub uncertainty: f64,
    pub ig: f64,
    /// Scope guard on top of the forward pass (header rules, pooling, distances).
    pub scope: f64,
    /// Deletion/insertion curves of all maps and the random reference.
    pub faithfulness: f64,
    pub sanity: f64,
    pub total: f64,
}

impl Timings {
    /// Every stage's time added up: the viewer's `total`, whose stages run when asked for (IG
    /// when its map is wanted, the checks later still), so the wall time from first to last
    /// would count the reader's pauses as analysis.
    pub fn sum_of_stages(&self) -> f64 {
        self.load
            + self.preprocess
            + self.forward
            + self.scope
            + self.gradcam
            + self.uncertainty
            + self.ig
            + self.faithfulness
            + self.sanity
    }

    /// What issue 13's "prediction + Grad-CAM on screen after decode" counts.
    pub fn prediction_with_gradcam(&self) -> f64 {
        self.preprocess + self.forward + self.gradcam
    }
}

/// The model input and the layer4 activation: everything the explanations start from.
pub struct Prepared {
    /// Gray input grid in [0, 1] (before normalisation), model input size.
    pub gray: Grid,
    /// Normalised `[1, 3, H, W]`.
    pub input: Tensor,
    /// layer4 activation `[1, C, h, w]`.
    pub features: Tensor,
    pub prediction: Prediction,
    pub image_size: (usize, usize),
    /// Header rules and pixel detector ([`crate::scope`]), from this same forward pass.
    pub scope: ScopeCheck,
    /// Milliseconds the scope guard took on top of the forward pass (pooling + distances).
    pub scope_ms: f64,
}

/// Which stage is running, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Preprocess,
    Forward,
    GradCam,
    Uncertainty,
    IntegratedGradients,
    Faithfulness,
    SanityCheck,
}

pub struct Analysis {
    pub prepared: Prepared,
    pub gradcam: GradCam,
    pub gradcam_zones: Vec<ZoneScore>,
    pub uncertainty: McDropout,
    pub uncertainty_zones: Vec<ZoneScore>,
    pub ig: Option<IntegratedGradients>,
    pub ig_zones: Option<Vec<ZoneScore>>,
    pub timings: Timings,
    pub device: String,
    /// Faithfulness, agreement and sanity check of the maps.
    pub trust: Trust,
}

pub struct Engine {
    pub model: Classifier,
    /// Scope statistics named in `model.json`, if it names any.
    pub scope: Option<ScopeStats>,
    /// The logits of each Integrated Gradients baseline image, per baseline and input size: the
    /// same for every film, so its forward pass runs once per engine rather than once per study.
    baseline_logits: BaselineLogits,
}

type BaselineLogits = Mutex<HashMap<(Baseline, Vec<usize>), Vec<f32>>>;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A batch for [`Engine::prepare_many`] ends once its films hold this many pixels, so four or
/// eight large DICOMs (a 90 MP film is 360 MB as f32) are never read into memory at once.
pub const BATCH_PIXELS: usize = 24_000_000;

/// Reads the next batch from `pending`: up to `films` items, fewer once those read hold
/// [`BATCH_PIXELS`] (`pixels` of each; 0 for one that failed to read).
pub fn take_batch<T, R>(
    pending: &mut impl Iterator<Item = T>,
    films: usize,
    mut read: impl FnMut(T) -> R,
    pixels: impl Fn(&R) -> usize,
) -> Vec<R> {
    let mut batch = Vec::new();
    let mut held = 0;
    while batch.len() < films && held < BATCH_PIXELS {
        let Some(item) = pending.next() else {
            break;
        };
        let read = read(item);
        held += pixels(&read);
        batch.push(read);
    }
    batch
}

impl Engine {
    /// Without scope statistics; [`Self::load`] reads those named in `model.json`.
    pub fn new(model: Classifier) -> Self {
        Self {
            model,
            scope: None,
            baseline_logits: BaselineLogits::default(),
        }
    }

    pub fn load(config_path: &Path, device: &Device) -> Result<Self, ModelError> {
        let model = Classifier::load(config_path, device)?;
        let scope = match model.config.scope_path(config_path) {
            Some(p) => Some(ScopeStats::load(&p).map_err(|e| ModelError::Weights {
                path: p.clone(),
                reason: e.reason,
            })?),
            None => None,
        };
        Ok(Self {
            model,
            scope,
            baseline_logits: BaselineLogits::default(),
        })
    }

    pub fn with_scope(mut self, scope: Option<ScopeStats>) -> Self {
        self.scope = scope;
        self
    }

    pub fn device_name(&self) -> &'static str {
        device_name(&self.model.device)
    }

    /// Resolves a class name (case-insensitive) or the predicted class.
    pub fn target_index(
        &self,
        target: Option<&str>,
        prediction: &Prediction,
    ) -> Result<usize, AnalysisError> {
        match target {
            None => Ok(prediction.class_index),
            Some(name) => self.model.config.class_index(name).ok_or_else(|| {
                AnalysisError::UnknownClass(name.to_string(), self.model.config.classes.join(", "))
            }),
        }
    }

    /// Preprocessing with the study's default window, one forward pass, the prediction.
    pub fn prepare(&self, study: &Study) -> Result<(Prepared, f64, f64), AnalysisError> {
        self.prepare_with_window(study, &study.default_window)
    }

    /// As [`Self::prepare`]; returns the preprocessing and forward times in ms too.
    pub fn prepare_with_window(
        &self,
        study: &Study,
        window: &Window,
    ) -> Result<(Prepared, f64, f64), AnalysisError> {
        let cfg = &self.model.config;
        let t = Instant::now();
        let gray = model_gray(study, window, &cfg.input);
        let input = input_tensor(&gray, &cfg.input, &self.model.device)?;
        let preprocess_ms = ms(t);
        let t = Instant::now();
        let (features, stages) = self.model.backbone.forward_with_stages(&input)?;
        let pooled = crate::model::resnet::global_avg_pool(&features)?;
        let logits = self.model.head.forward(&pooled, None)?;
        let prediction = prediction_from_logits(&self.model.config, &logits)?;
        let forward_ms = ms(t);
        let t = Instant::now();
        let scope = self.scope_check(study, &stages)?;
        let scope_ms = ms(t);
        Ok((
            Prepared {
                gray,
                input,
                features,
                prediction,
                image_size: (study.width, study.height),
                scope,
                scope_ms,
            },
            preprocess_ms,
            forward_ms,
        ))
    }

    /// [`Self::prepare`] of several studies (each in its default window) with one forward pass
    /// for all: the folder scans of the viewer and `eval` predict films by the thousand, and a
    /// batch costs less per film (the shipped model on a 2-core Intel Xeon: 47 ms for one film,
    /// 36 ms each for 4, 32 ms each for 8). Results equal [`Self::prepare`]'s up to float
    /// rounding. When the batch fails, each study is prepared alone, so each gets its own
    /// error.
    pub fn prepare_many(&self, studies: &[&Study]) -> Vec<Result<Prepared, AnalysisError>> {
        let one_by_one = || {
            studies
                .iter()
                .map(|s| self.prepare(s).map(|(p, _, _)| p))
                .collect()
        };
        if studies.len() < 2 {
            return one_by_one();
        }
        let cfg = &self.model.config;
        let batched = || -> Result<Vec<Prepared>, AnalysisError> {
            let grays: Vec<Grid> = studies
                .iter()
                .map(|s| model_gray(s, &s.default_window, &cfg.input))
                .collect();
            let inputs = grays
                .iter()
                .map(|g| input_tensor(g, &cfg.input, &self.model.device))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let (features, stages) = self
                .model
                .backbone
                .forward_with_stages(&Tensor::cat(&inputs, 0)?)?;
            let pooled = global_avg_pool(&features)?;
            let logits = self.model.head.forward(&pooled, None)?;
            let t = Instant::now();
            let pixel = self.pixel_features(&stages)?;
            let scope_ms = ms(t) / studies.len() as f64;
            let mut prepared = Vec::with_capacity(studies.len());
            for (i, (study, (gray, input))) in studies
                .iter()
                .zip(grays.into_iter().zip(inputs))
                .enumerate()
            {
                let t = Instant::now();
                let scope =
                    self.scope_from(study, pixel.as_ref().and_then(|f| f.get(i)).map(|f| &f[..]));
                prepared.push(Prepared {
                    gray,
                    input,
                    features: features.narrow(0, i, 1)?,
                    prediction: prediction_from_logits(
                        &self.model.config,
                        &logits.narrow(0, i, 1)?,
                    )?,
                    image_size: (study.width, study.height),
                    scope,
                    scope_ms: scope_ms + ms(t),
                });
            }
            Ok(prepared)
        };
        match batched() {
            Ok(prepared) => prepared.into_iter().map(Ok).collect(),
            Err(e) => {
                tracing::debug!("batch of {} failed ({e}); one by one", studies.len());
                one_by_one()
            }
        }
    }

    /// [`Self::prepare_many`] of a batch read from files, some of which may not have loaded:
    /// one result per file, in order; a file that did not load keeps its error, a study's own
    /// failure becomes `error(e)`. The folder scans of the viewer and `eval` both read so.
    pub fn prepare_loaded<E>(
        &self,
        loaded: Vec<Result<Study, E>>,
        error: impl Fn(AnalysisError) -> E,
    ) -> Vec<Result<Prepared, E>> {
        let prepared: Vec<_> = {
            let studies: Vec<&Study> = loaded.iter().filter_map(|s| s.as_ref().ok()).collect();
            self.prepare_many(&studies)
        };
        let mut prepared = prepared.into_iter();
        loaded
            .into_iter()
            .map(|study| {
                study.and_then(|_| {
                    // prepare_many gives one result per study.
                    let p = prepared.next().unwrap_or_else(|| {
                        Err(ModelError::Compute("no result for this study".into()).into())
                    });
                    p.map_err(&error)
                })
            })
            .collect()
    }

    /// Header rules first, then the pixel score from the stage activations of the forward pass.
    pub fn scope_check(
        &self,
        study: &Study,
        stages: &[Tensor],
    ) -> Result<ScopeCheck, AnalysisError> {
        let pixel = self.pixel_features(stages)?;
        Ok(self.scope_from(
            study,
            pixel.as_ref().and_then(|f| f.first()).map(|f| &f[..]),
        ))
    }

    /// Per film of the batch, the scope detector's features; `None` without scope statistics.
    fn pixel_features(
        &self,
        stages: &[Tensor],
    ) -> Result<Option<Vec<Vec<Vec<f32>>>>, AnalysisError> {
        let Some(stats) = &self.scope else {
            return Ok(None);
        };
        Ok(Some(crate::scope::detector::stage_features(
            stages,
            &stats.depth_names(),
        )?))
    }

    fn scope_from(&self, study: &Study, pixel: Option<&[Vec<f32>]>) -> ScopeCheck {
        let check = ScopeCheck::from_header(&study.metadata);
        match &self.scope {
            Some(stats) => {
                let score = pixel.map_or(f32::NAN, |f| stats.score(f));
                check.with_pixel_score(score, stats.threshold)
            }
            None => check,
        }
    }

    pub fn grad_cam(
        &self,
        prepared: &Prepared,
        target: usize,
    ) -> Result<(GradCam, Vec<ZoneScore>), AnalysisError> {
        let cam = grad_cam(&self.model.head, &prepared.features, target)?;
        let zones = self.zones_of_feature_map(&cam.map, prepared);
        Ok((cam, zones))
    }

    pub fn uncertainty(
        &self,
        prepared: &Prepared,
        target: usize,
        samples: usize,
        seed: u64,
    ) -> Result<(McDropout, Vec<ZoneScore>), AnalysisError> {
        let cfg = &self.model.config;
        let mc = mc_dropout(
            &self.model.head,
            &prepared.features,
            &McOptions {
                samples,
                dropout: cfg.dropout,
                temperature: cfg.temperature,
                positive: cfg.positive_index(),
                target,
                seed,
            },
        )?;
        let zones = self.zones_of_feature_map(&mc.cam_std, prepared);
        Ok((mc, zones))
    }

    pub fn integrated_gradients(
        &self,
        prepared: &Prepared,
        opts: &IgOptions,
        control: &Control,
    ) -> Result<(IntegratedGradients, Vec<ZoneScore>), AnalysisError> {
        let ig = match self.path_ends(prepared, opts)? {
            Some((ends, baseline_logits)) => IntegratedGradients {
                baseline_logits,
                ..integrated_gradients_with_ends(&self.model, &prepared.input, opts, ends, control)?
            },
            None => integrated_gradients(&self.model, &prepared.input, opts, control)?,
        };
        let (w, h) = prepared.image_size;
        let zones = zone_scores(&ig.map, w, h);
        Ok((ig, zones))
    }

    /// The logits of `baseline`'s image for `input`'s size: computed once per baseline and size
    /// (the same for every film), then kept.
    fn baseline_logits_of(
        &self,
        baseline: Baseline,
        input: &Tensor,
    ) -> Result<Vec<f32>, AnalysisError> {
        let key = (baseline, input.dims().to_vec());
        let cached = self
            .baseline_logits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(logits) = cached {
            return Ok(logits);
        }
        let image = baseline_tensor(&self.model, input, baseline).map_err(ModelError::from)?;
        let logits: Vec<f32> = self
            .model
            .logits(&image)?
            .flatten_all()
            .and_then(|l| l.to_dtype(DType::F32)?.to_vec1())
            .map_err(ModelError::from)?;
        self.baseline_logits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, logits.clone());
        Ok(logits)
    }

    /// The baseline IG starts from when `request` is asked for, explaining class `target`: the
    /// baseline asked for, or for [`IgBaseline::Auto`] the first of [`AUTO_ORDER`] the model
    /// has and does not itself read as `target` (by [`prediction_from_logits`], as a film), so
    /// that the map explains the step from another reading to this film's. Black when the model
    /// reads every one as `target`; the IG warning then says so. Costs at most one forward pass per
    /// baseline and input size, once per engine.
    pub fn choose_baseline(
        &self,
        prepared: &Prepared,
        request: IgBaseline,
        target: usize,
    ) -> Result<Baseline, AnalysisError> {
        if let Some(fixed) = request.fixed() {
            return Ok(fixed);
        }
        let offered = AUTO_ORDER
            .into_iter()
            .filter(|&b| self.model.offers(b.into()));
        for baseline in offered {
            let logits = self.baseline_logits_of(baseline, &prepared.input)?;
            if prediction_from_logit_values(&self.model.config, &logits)?.class_index != target {
                return Ok(baseline);
            }
        }
        Ok(Baseline::Black)
    }

    /// Integrated Gradients from the baseline `request` asks for ([`Self::choose_baseline`];
    /// `opts.baseline` is replaced by it).
    pub fn integrated_gradients_asked(
        &self,
        prepared: &Prepared,
        request: IgBaseline,
        opts: &IgOptions,
        control: &Control,
    ) -> Result<(IntegratedGradients, Vec<ZoneScore>), AnalysisError> {
        let baseline = self.choose_baseline(prepared, request, opts.target)?;
        let (mut ig, zones) = self.integrated_gradients(
            prepared,
            &IgOptions {
                baseline,
                ..opts.clone()
            },
            control,
        )?;
        ig.baseline_auto = request == IgBaseline::Auto;
        Ok((ig, zones))
    }

    /// F(x) from the prediction's own layer4 features (the head alone) and F(x′) from the baseline's
    /// logits, computed once per baseline and input size, with those logits; `None` for a target
    /// the head does not have (IG then reports its own error).
    fn path_ends(
        &self,
        prepared: &Prepared,
        opts: &IgOptions,
    ) -> Result<Option<(PathEnds, Vec<f32>)>, AnalysisError> {
        let classes = self.model.config.classes.len();
        if opts.target >= classes {
            return Ok(None);
        }
        let pooled = global_avg_pool(&prepared.features).map_err(ModelError::from)?;
        let input_logits: Vec<f32> = self
            .model
            .head
            .forward(&pooled, None)
            .and_then(|l| l.flatten_all()?.to_dtype(DType::F32)?.to_vec1())
            .map_err(ModelError::from)?;
        let baseline_logits = self.baseline_logits_of(opts.baseline, &prepared.input)?;
        match (
            input_logits.get(opts.target),
            baseline_logits.get(opts.target),
        ) {
            (Some(&f_input), Some(&f_baseline)) => Ok(Some((
                PathEnds {
                    f_input,
                    f_baseline,
                },
                baseline_logits,
            ))),
            _ => Ok(None),
        }
    }

    /// Zone scores of a layer4-grid map, upsampled to the model input grid first so the thirds
    /// fall between input pixels rather than splitting 7 cells.
    fn zones_of_feature_map(&self, map: &Grid, prepared: &Prepared) -> Vec<ZoneScore> {
        let spec = &self.model.config.input;
        let (w, h) = prepared.image_size;
        zone_scores(&map.resized(spec.width, spec.height), w, h)
    }

    /// All stages; `on_stage` is called as each starts, IG progress goes through `control`.
    pub fn analyze(
        &self,
        study: &Study,
        opts: &AnalysisOptions,
        on_stage: &dyn Fn(Stage),
        cancel: &AtomicBool,
        ig_progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Analysis, AnalysisError> {
        let started = Instant::now();
        let control = Control {
            cancel,
            progress: ig_progress,
        };
        let mut timings = Timings::default();
        on_stage(Stage::Preprocess);
        let (prepared, preprocess_ms, forward_ms) = self.prepare(study)?;
        timings.preprocess = preprocess_ms;
        timings.forward = forward_ms;
        timings.scope = prepared.scope_ms;
        control.check()?;
        let target = self.target_index(opts.target.as_deref(), &prepared.prediction)?;

        on_stage(Stage::GradCam);
        let t = Instant::now();
        let (gradcam, gradcam_zones) = self.grad_cam(&prepared, target)?;
        timings.gradcam = ms(t);
        control.check()?;

        on_stage(Stage::Uncertainty);
        let t = Instant::now();
        let (uncertainty, uncertainty_zones) =
            self.uncertainty(&prepared, target, opts.mc_samples, opts.seed)?;
        timings.uncertainty = ms(t);
        control.check()?;

        let (ig, ig_zones) = if opts.integrated_gradients {
            on_stage(Stage::IntegratedGradients);
            let t = Instant::now();
            let (ig, zones) = self.integrated_gradients_asked(
                &prepared,
                opts.ig_baseline,
                &IgOptions {
                    steps: opts.ig_steps,
                    // Replaced by the baseline asked for.
                    baseline: Baseline::Black,
                    target,
                    batch: opts.ig_batch,
                    lanes: opts.ig_lanes,
                    rule: opts.ig_rule,
                },
                &control,
            )?;
            timings.ig = ms(t);
            (Some(ig), Some(zones))
        } else {
            (None, None)
        };
        let trust = self.trust_checks(
            &prepared,
            target,
            ig.as_ref().map(|i| i.baseline),
            &StudyMaps {
                gradcam: &gradcam.map,
                ig: ig.as_ref().map(|i| &i.map),
                uncertainty: &uncertainty.cam_mean,
            },
            opts,
            on_stage,
            &control,
            &mut timings,
        )?;
        timings.total = ms(started);
        Ok(Analysis {
            prepared,
            gradcam,
            gradcam_zones,
            uncertainty,
            uncertainty_zones,
            ig,
            ig_zones,
            timings,
            device: self.device_name().to_string(),
            trust,
        })
    }

    /// Agreement always (cheap); faithfulness and the sanity check as `opts` asks.
    #[allow(clippy::too_many_arguments)]
    pub fn trust_checks(
        &self,
        prepared: &Prepared,
        target: usize,
        ig_baseline: Option<Baseline>,
        maps: &StudyMaps,
        opts: &AnalysisOptions,
        on_stage: &dyn Fn(Stage),
        control: &Control,
        timings: &mut Timings,
    ) -> Result<Trust, AnalysisError> {
        let grid = opts.faithfulness.as_ref().map_or(14, |f| f.grid);
        let mut trust = Trust {
            agreement: Some(study_agreement(&self.model, maps, grid)),
            ..Trust::default()
        };
        if let Some(f_opts) = &opts.faithfulness {
            on_stage(Stage::Faithfulness);
            let t = Instant::now();
            trust.faithfulness = Some(study_faithfulness(
                &self.model,
                prepared,
                target,
                maps,
                f_opts,
                control,
            )?);
            timings.faithfulness = ms(t);
            control.check()?;
        }
        if opts.sanity_check {
            on_stage(Stage::SanityCheck);
            let t = Instant::now();
            // From the real map's own baseline: an `auto` choice is not made again per stage.
            let ig = ig_baseline.map(|baseline| IgOptions {
                // IG once per stage: fewer nodes than the real map (the comparison is coarse).
                steps: opts.ig_steps.min(SANITY_IG_STEPS),
                baseline,
                target,
                batch: opts.ig_batch,
                lanes: opts.ig_lanes,
                // A fixed node count per stage, so every stage is compared alike.
                rule: crate::explain::integrated_gradients::IgRule::GaussLegendre,
            });
            trust.sanity = Some(study_sanity(
                &self.model,
                prepared,
                target,
                maps,
                ig,
                opts.seed,
                control,
            )?);
            timings.sanity = ms(t);
        }
        Ok(trust)
    }
}

/// IG steps of each randomised model in the sanity check.
pub const SANITY_IG_STEPS: usize = 16;

/// Whether a result should carry an "uncertain" warning, and why: the MC-dropout 95 % interval
/// contains the decision threshold, or the predictive entropy exceeds 80 % of its maximum ln C.
pub fn uncertainty_flag(mc: &McDropout, threshold: f32, classes: usize) -> Option<String> {
    let [lo, hi] = mc.interval;
    if lo < threshold && threshold < hi {
        return Some(format!(
            "the 95 % MC-dropout interval [{lo:.2}, {hi:.2}] contains the threshold {threshold:.2}"
        ));
    }
    let limit = 0.8 * (classes.max(2) as f32).ln();
    if mc.entropy > limit {
        return Some(format!(
            "predictive entropy {:.2} nats exceeds {limit:.2} (80 % of the maximum)",
            mc.entropy
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_ends_at_its_film_count_or_once_its_films_are_large() {
        // Pixels per film: small films fill a batch of 4; the bound (24 MP) is checked before
        // each read, so a batch holds less than 24 MP plus its last film.
        let sizes = [1, 1, 1, 1, 1, 20_000_000, 5_000_000, 1, 30_000_000, 1];
        let mut pending = sizes.iter().copied();
        let mut batches = Vec::new();
        loop {
            let batch = take_batch(&mut pending, 4, |p| p, |&p| p);
            if batch.is_empty() {
                break;
            }
            batches.push(batch);
        }
        assert_eq!(
            batches,
            [
                vec![1, 1, 1, 1],
                vec![1, 20_000_000, 5_000_000],
                vec![1, 30_000_000],
                vec![1],
            ]
        );
    }
}
