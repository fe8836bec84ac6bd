//! Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps",
//! NeurIPS 2018): a map that explains the model must change when the model's weights are
//! destroyed.
//!
//! **Cascade.** Starting from the top, the weights are re-initialised stage by stage and kept
//! randomised: head (`fc.*`) → `layer4` → `layer3` → `layer2` → `layer1` → stem (`conv1`, `bn1`).
//! After each stage Grad-CAM and Integrated Gradients are recomputed for the same input and class.
//! Re-initialisation draws from the distribution the layers are created with (torchvision's
//! ResNet and `nn.Linear`), from a generator seeded with `seed`:
//!
//! ```text
//! conv weight  ~ N(0, 2 / (c_out · k_h · k_w))       (Kaiming normal, fan-out, as torchvision)
//! BatchNorm    γ = 1, β = 0, running mean 0, running variance 1
//! linear W, b  ~ U(−1/√fan_in, 1/√fan_in)
//! ```
//!
//! The weights are read again from the checkpoint file into a private store and a separate
//! [`Classifier`] is built from it: the loaded model is never touched (tested).
//!
//! **Comparison** (Adebayo et al. §3): each map and its randomised counterpart are brought to a
//! `c×c` grid (default 56×56; [`Grid::resized`]), IG as its absolute value (their "absolute
//! value" variant: a sign flip alone is not a change of the explanation), Grad-CAM as is; both
//! are min–max scaled to [0, 1]; then Spearman ρ and SSIM (data range 1) of the pair, see
//! [`super::similarity`].
//!
//! **Flag.** A method whose map still has SSIM > 0.5 to the original after the head and layer4
//! are randomised is "not sensitive to the model" for this study.

use std::path::Path;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::gradcam::grad_cam;
use super::integrated_gradients::{integrated_gradients, IgOptions};
use super::similarity::{min_max_normalised, spearman, ssim};
use super::{Control, ExplainError, Grid};
use crate::model::resnet::{Backbone, Head};
use crate::model::weights::WeightStore;
use crate::model::{Classifier, ModelError};

/// SSIM above which a map "did not change" after randomising head + layer4.
pub const INSENSITIVE_SSIM: f64 = 0.5;

/// Names of the cascade's stages, top first.
pub const STAGES: [&str; 6] = ["head", "layer4", "layer3", "layer2", "layer1", "stem"];

/// Index in [`STAGES`] of the stage after which the flag is decided (head + layer4).
pub const FLAG_STAGE: usize = 1;

#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SanityOptions {
    pub seed: u64,
    /// Cascade stages to run (1 ..= 6).
    pub stages: usize,
    /// IG settings for the randomised models (the target is that of the check).
    pub ig: Option<IgOptions>,
    /// Side of the comparison grid.
    pub compare_grid: usize,
}

impl SanityOptions {
    pub fn new(ig: Option<IgOptions>) -> Self {
        Self {
            seed: 0,
            stages: STAGES.len(),
            ig,
            compare_grid: 56,
        }
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_stages(mut self, n: usize) -> Self {
        self.stages = n.clamp(1, STAGES.len());
        self
    }
}

/// Similarity of one randomised map to the real one.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Similarity {
    /// `None` when either map is constant (e.g. a Grad-CAM that is zero everywhere).
    pub spearman: Option<f64>,
    pub ssim: f64,
}

#[derive(Clone, Debug)]
pub struct SanityStage {
    /// Name of the last stage randomised (all stages above it are randomised too).
    pub randomised: &'static str,
    pub gradcam: Similarity,
    pub ig: Option<Similarity>,
    /// Grad-CAM of the randomised model, layer4 grid.
    pub gradcam_map: Grid,
    /// IG of the randomised model, model input grid.
    pub ig_map: Option<Grid>,
}

/// Per method: the similarity after each stage, and the flag.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MethodSanity {
    pub stages: Vec<&'static str>,
    pub spearman: Vec<Option<f64>>,
    pub ssim: Vec<f64>,
    /// SSIM > 0.5 after randomising head + layer4.
    pub not_sensitive_to_model: bool,
}

#[derive(Clone, Debug)]
pub struct Sanity {
    pub seed: u64,
    pub target: usize,
    pub stages: Vec<SanityStage>,
}

impl Sanity {
    fn method(&self, pick: impl Fn(&SanityStage) -> Option<&Similarity>) -> Option<MethodSanity> {
        let sims: Vec<&Similarity> = self.stages.iter().filter_map(&pick).collect();
        if sims.is_empty() {
            return None;
        }
        let flag_at = FLAG_STAGE.min(sims.len() - 1);
        Some(MethodSanity {
            stages: self.stages.iter().map(|s| s.randomised).collect(),
            spearman: sims.iter().map(|s| s.spearman).collect(),
            ssim: sims.iter().map(|s| s.ssim).collect(),
            not_sensitive_to_model: sims[flag_at].ssim > INSENSITIVE_SSIM,
        })
    }
    pub fn gradcam(&self) -> Option<MethodSanity> {
        self.method(|s| Some(&s.gradcam))
    }
    pub fn ig(&self) -> Option<MethodSanity> {
        self.method(|s| s.ig.as_ref())
    }

    /// One line per method for the results panel and the CLI.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (label, m) in [("Grad-CAM", self.gradcam()), ("IG", self.ig())] {
            let Some(m) = m else { continue };
            let at = FLAG_STAGE.min(m.ssim.len().saturating_sub(1));
            let verdict = if m.not_sensitive_to_model {
                "NOT SENSITIVE TO THE MODEL"
            } else {
                "changes with the model"
            };
            out.push(format!(
                "{label}: SSIM {:.2} after randomising head…{}: {verdict}",
                m.ssim[at], m.stages[at]
            ));
        }
        out
    }
}

fn stage_of(name: &str) -> Option<usize> {
    if name.starts_with("fc.") {
        Some(0)
    } else if name.starts_with("conv1.") || name.starts_with("bn1.") {
        Some(5)
    } else {
        (1..=4).find(|i| name.starts_with(&format!("layer{}.", 5 - i)))
    }
}

/// Standard normal from two uniforms (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Re-initialises every tensor of `stage` in `store` (see the module doc for the distributions).
fn randomise_stage(
    store: &mut WeightStore,
    stage: usize,
    rng: &mut impl Rng,
    device: &candle_core::Device,
) -> Result<(), ModelError> {
    let mut names: Vec<String> = store
        .names()
        .filter(|n| stage_of(n) == Some(stage) && !n.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    // A fixed order, so the seed alone decides the weights.
    names.sort();
    for name in names {
        let Some(dims) = store.dims(&name) else {
            continue;
        };
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if dims.len() == 4 {
            let std = (2.0 / (dims[0] * dims[2] * dims[3]) as f32).sqrt();
            (0..count).map(|_| std * normal(rng)).collect()
        } else if stage == 0 {
            // Linear layer: fan-in from the weight of the same layer.
            let prefix = name.rsplit_once('.').map_or("", |p| p.0);
            let fan_in = store
                .dims(&format!("{prefix}.weight"))
                .and_then(|d| d.get(1).copied())
                .unwrap_or(1)
                .max(1);
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        } else if name.ends_with("running_var") || name.ends_with(".weight") {
            vec![1.0; count]
        } else {
            // BatchNorm bias and running mean.
            vec![0.0; count]
        };
        store.replace(&name, Tensor::from_vec(values, dims, device)?);
    }
    Ok(())
}

/// The cascading randomisation check for one normalised input `[1, 3, H, W]` and class `target`;
/// `reference_gradcam` (layer4 grid) and `reference_ig` (input grid) are the real model's maps.
/// Progress counts stages.
pub fn sanity_check(
    model: &Classifier,
    input: &Tensor,
    target: usize,
    reference_gradcam: &Grid,
    reference_ig: Option<&Grid>,
    opts: &SanityOptions,
    control: &Control,
) -> Result<Sanity, ExplainError> {
    let weights_path = model.config.weights_path(&model.config_path);
    let (mut store, _) = WeightStore::load(Path::new(&weights_path), &model.device)?;
    let arch = &model.config.architecture;
    let classes = model.config.classes.len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let c = opts.compare_grid.max(7);
    let compare = |a: &Grid, b: &Grid| -> Similarity {
        let a = min_max_normalised(&a.resized(c, c));
        let b = min_max_normalised(&b.resized(c, c));
        let rho = spearman(&a.values, &b.values);
        Similarity {
            spearman: rho.is_finite().then_some(rho),
            ssim: ssim(&a, &b, 1.0),
        }
    };
    let absolute = |g: &Grid| {
        Grid::new(
            g.width,
            g.height,
            g.values.iter().map(|v| v.abs()).collect(),
        )
    };
    let reference_ig_abs = reference_ig.map(absolute);
    let total = opts.stages.clamp(1, STAGES.len());
    let mut stages = Vec::with_capacity(total);
    (control.progress)(0, total);
    for (stage, name) in STAGES.iter().enumerate().take(total) {
        control.check()?;
        randomise_stage(&mut store, stage, &mut rng, &model.device)?;
        let randomised = Classifier {
            config: model.config.clone(),
            config_path: model.config_path.clone(),
            sha256: format!("{} with {name} and above randomised", model.sha256),
            backbone: Backbone::load(&store, arch)?,
            head: Head::load(&store, arch, classes)?,
            device: model.device.clone(),
            ig_reference: model.ig_reference.clone(),
        };
        let features = randomised.backbone.forward(input)?;
        let cam = grad_cam(&randomised.head, &features, target)?;
        let (ig_map, ig_similarity) = match (&opts.ig, &reference_ig_abs) {
            (Some(ig_opts), Some(reference)) => {
                let ig_opts = IgOptions {
                    target,
                    ..ig_opts.clone()
                };
                let quiet = Control {
                    cancel: control.cancel,
                    progress: &|_, _| {},
                };
                let ig = integrated_gradients(&randomised, input, &ig_opts, &quiet)?;
                let similarity = compare(reference, &absolute(&ig.map));
                (Some(ig.map), Some(similarity))
            }
            _ => (None, None),
        };
        stages.push(SanityStage {
            randomised: name,
            gradcam: compare(reference_gradcam, &cam.map),
            ig: ig_similarity,
            gradcam_map: cam.map,
            ig_map,
        });
        (control.progress)(stage + 1, total);
    }
    Ok(Sanity {
        seed: opts.seed,
        target,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_map_to_stages() {
        assert_eq!(stage_of("fc.1.weight"), Some(0));
        assert_eq!(stage_of("layer4.0.conv1.weight"), Some(1));
        assert_eq!(stage_of("layer1.2.bn3.running_var"), Some(4));
        assert_eq!(stage_of("conv1.weight"), Some(5));
        assert_eq!(stage_of("bn1.bias"), Some(5));
    }
}
