//! Integrated Gradients (Sundararajan et al., ICML 2017) with respect to the model input.
//!
//! For input x, baseline x′ and the target logit F:
//!
//! ```text
//! IGᵢ(x) = (xᵢ − x′ᵢ) ∫₀¹ ∂F/∂xᵢ (x′ + α(x − x′)) dα  ≈  (xᵢ − x′ᵢ) Σₘ wₘ ∂F/∂xᵢ (x′ + αₘ(x − x′))
//! ```
//!
//! with nodes αₘ and weights wₘ on [0, 1] ([`super::quadrature`]). Completeness says
//! Σᵢ IGᵢ = F(x) − F(x′) exactly; the *gap* `Σ IG − (F(x) − F(x′))` (captum's convergence delta)
//! measures the quadrature error and is reported with every result.
//!
//! **Choosing the path points.** [`IgRule::Graded`] (the default) evaluates the centres of
//! `steps` panels that are narrow where a film's map moves fast along the path and wide near the
//! black baseline, where it hardly moves (the profile and the maths: [`super::quadrature`]; 36
//! graded gradients are on average more accurate than 40 equal panels, and on the bundled sample
//! within 1.3 % of captum's 50 Gauss–Legendre nodes); [`IgRule::Midpoint`] evaluates the centres
//! of `steps` equal panels; [`IgRule::GaussLegendre`] uses `steps` Gauss–Legendre nodes on [0, 1]
//! (why the midpoint rule is the more accurate of the two here: [`super::quadrature`]).
//! [`IgRule::Guided`] (opt-in: `--ig-rule guided`) spends gradients where the integrand moves: the
//! integrand of a ReLU network is piecewise constant in α with many kinks, so Gauss–Legendre's
//! high order buys little and its nodes, bunched at both ends, are often where F(α) is flat. The
//! guided rule (in the spirit of RiemannOpt, Swain & Singhi 2024, which places IG's sample points
//! to cut the number of gradients up to 4×):
//!
//! 1. evaluates F(α) = F(x′ + α(x − x′)) at `probes + 1` uniform points ([`GuidedPlan`]) with forward passes only
//!    (a third of a gradient step each; the two ends are F(x′) and F(x), needed anyway);
//! 2. cuts [0, 1] into panels of equal *variation* ∫ (|F′(α)| + floor) dα (F′ from the probes,
//!    piecewise linear; the floor keeps flat stretches covered), evaluates F at the new panel
//!    ends (forward only) and integrates each panel with 2-point Gauss–Legendre;
//! 3. estimates the error from the **panel completeness gaps**: on a panel [a, b] the exact
//!    attributions sum to F(b) − F(a), so eₚ = Σᵢ IGᵢ|ₚ − (F(b) − F(a)) is that panel's quadrature
//!    error in the direction of x − x′; the estimate Σₚ |eₚ| / |F(x) − F(x′)| bounds the relative
//!    completeness gap and, unlike the total gap, cannot cancel between panels;
//! 4. bisects the panels with the largest |eₚ| (one forward probe at the midpoint, fresh nodes on
//!    both halves) until the estimate is under `tolerance` or `steps` gradients are spent, and
//!    reports the gradients and probes used.
//!
//! Its accuracy is checked the way the issue defines it: relative L2 distance of the map to a
//! 256-node Gauss–Legendre reference of the same model, film and baseline (`cxr-viewer bench
//! --ig-reference-steps 256`; `--ig-sweep` tabulates error against gradients for both rules).
//!
//! Baselines are defined in pixel space and normalised like the input: black = an all-0 image,
//! white = an all-1 image. Path points are evaluated in batches; each batch is one forward pass
//! keeping activations and one explicit input-gradient pass (no weight gradients).
//!
//! The map sums the attributions over the input channels. When x − x′ repeats one plane in all
//! three channels (a greyscale film: the preprocessing uses equal means and deviations), that sum
//! is `(x₀ − x′₀) · Σₘ wₘ Σ_c ∂F/∂x_c`, and `Σ_c ∂F/∂x_c` comes out of the stem with the three
//! kernels summed ([`crate::model::resnet::Backbone::backward_input_channel_sum`]): exact, and a
//! third of the stem's input-gradient work and of the element-wise passes here.
//!
//! The stem convolution is linear, so it is not run per path point at all
//! ([`crate::model::resnet::Backbone::stem_path`]): its output at x′ + α(x − x′) is
//! `W ⋆ x′ + α · W ⋆ (x − x′)` from two convolutions per film, and since its input gradient is
//! linear too, `Σₘ wₘ Wᵀ ⋆ gₘ = Wᵀ ⋆ Σₘ wₘ gₘ`, the weighted gradients are summed at the stem's
//! output and go through its input gradient once. Exact up to float rounding (which can flip a
//! unit sitting on a ReLU kink at a node, as any change of summation order can).

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::Serialize;

use super::quadrature::{gauss_legendre, graded_midpoint, midpoint};
use super::{Control, ExplainError, Grid};
use crate::model::resnet::{global_avg_pool, StemPath};
use crate::model::Classifier;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    #[default]
    Black,
    White,
    /// The film `model.json` names as `ig_reference`: one the model reads as confidently
    /// normal. The shipped model reads the black and the white image as PNEUMONIA
    /// ([`crate::analysis::BaselineReading`]), so from them IG explains a PNEUMONIA film only
    /// against another PNEUMONIA reading; from a normal film it explains the whole step from
    /// NORMAL to PNEUMONIA (on six training-folder films, F(x) − F(x′) of 3.96–4.10 logits against
    /// −0.02–0.12 from black, `scripts/ig_baseline_experiment.py`). The price: the map also marks
    /// where the two children's anatomy differs.
    #[value(name = "normal")]
    #[serde(rename = "normal")]
    NormalFilm,
}

impl Baseline {
    /// Pixel value in [0, 1] before normalisation of a uniform baseline; `None` for a film.
    pub fn pixel_value(self) -> Option<f32> {
        match self {
            Baseline::Black => Some(0.0),
            Baseline::White => Some(1.0),
            Baseline::NormalFilm => None,
        }
    }

    /// "black", "white" or "normal", as `report.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Black => "black",
            Baseline::White => "white",
            Baseline::NormalFilm => "normal",
        }
    }

    /// As the viewer's radios and the overlays' markers name it.
    pub fn label(self) -> &'static str {
        match self {
            Baseline::NormalFilm => "normal film",
            b => b.name(),
        }
    }
}

/// The baseline asked for: one of the [`Baseline`]s, or `auto`, chosen per film and class by
/// [`crate::analysis::Engine::choose_baseline`].
///
/// Why `auto`: IG explains F(x) − F(x′), so its baseline should be an image the model does not
/// read as the class explained (Sundararajan et al. 2017, §3; Sturmfels, Lundberg & Lee 2020,
/// Distill). No one image serves every film here: the shipped model reads black as PNEUMONIA, the
/// right start for a NORMAL film and the wrong one for a PNEUMONIA film, and its normal film the
/// other way round. `auto` takes the first of black, the model's normal film and white that the
/// model reads as another class, from the baseline logits the engine keeps anyway.
///
/// Why black stays the default: from the normal film the map fails the model-randomisation
/// sanity check (Adebayo et al. 2018) on every PNEUMONIA film measured (10 of 10, SSIM 0.61–0.75
/// after randomising head + layer4, against 0.18–0.49 from black): (x − x′) of two real films has
/// edges wherever the children differ, and they dominate |IG| whatever the weights. A complete
/// map the model does not shape is no better than an incomplete one it does, and the black
/// baseline's shortcoming is warned of on screen ([`crate::analysis::BaselineReading`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IgBaseline {
    /// A uniform black film (captum's reference setting).
    #[default]
    Black,
    /// A uniform white film.
    White,
    // Baseline::NormalFilm. The doc comments here are `--help` text: no rustdoc links.
    /// The film `model.json` names as `ig_reference`, one the model reads as confidently NORMAL.
    #[value(name = "normal")]
    #[serde(rename = "normal")]
    Normal,
    /// The first of black, the normal film (where `model.json` names one) and white that the
    /// model does not read as the class explained; black when it reads every one so.
    Auto,
}

impl IgBaseline {
    /// The one baseline asked for; `None` for `auto`.
    pub fn fixed(self) -> Option<Baseline> {
        match self {
            IgBaseline::Auto => None,
            IgBaseline::Black => Some(Baseline::Black),
            IgBaseline::White => Some(Baseline::White),
            IgBaseline::Normal => Some(Baseline::NormalFilm),
        }
    }

    /// As `--ig-baseline` spells it: "auto", "black", "white" or "normal".
    pub fn name(self) -> &'static str {
        self.fixed().map_or("auto", Baseline::name)
    }
}

impl From<Baseline> for IgBaseline {
    fn from(b: Baseline) -> Self {
        match b {
            Baseline::Black => IgBaseline::Black,
            Baseline::White => IgBaseline::White,
            Baseline::NormalFilm => IgBaseline::Normal,
        }
    }
}

/// The order `auto` tries the baselines in: black first, captum's reference setting.
pub const AUTO_ORDER: [Baseline; 3] = [Baseline::Black, Baseline::NormalFilm, Baseline::White];

/// How the path points are chosen (see the module documentation). The midpoint rule is the
/// default: on the films measured its map error against the 256-node reference is 0.3–0.9× (median 0.68×) that
/// of Gauss–Legendre at the same number of gradients, and the guided rule's is worse than both
/// (`cxr-viewer bench --ig-sweep`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
#[non_exhaustive]
pub enum IgRule {
    /// `steps` panels of [0, 1] with widths ∝ (how fast the map moves there)^{−2/3}, each
    /// evaluated at its centre ([`super::quadrature::graded_midpoint`]).
    #[default]
    Graded,
    /// `steps` equal panels of [0, 1], each evaluated at its centre (captum's
    /// `method="riemann_middle"`; [`super::quadrature::midpoint`]).
    Midpoint,
    /// `steps` Gauss–Legendre nodes on [0, 1] (captum's `method="gausslegendre"`).
    GaussLegendre,
    /// Probe-guided composite Gauss–Legendre, refined until Σ|panel gap| ≤ `tolerance` ·
    /// |F(x) − F(x′)| or `steps` gradients are spent.
    Guided { tolerance: f32 },
}

impl IgRule {
    /// The rule's name as `--ig-rule` spells it, also `report.json`'s `ig.quadrature`.
    pub fn name(self) -> &'static str {
        match self {
            IgRule::Graded => "graded",
            IgRule::Midpoint => "midpoint",
            IgRule::GaussLegendre => "gauss-legendre",
            IgRule::Guided { .. } => "guided",
        }
    }
}

/// Default error target of [`IgRule::Guided`] (summed |panel gap| relative to |F(x) − F(x′)|).
pub const DEFAULT_TOLERANCE: f32 = 0.01;
/// The guided rule's fixed choices; [`GuidedPlan::default`] is what [`IgRule::Guided`] uses
/// (chosen with `cxr-viewer bench --ig-sweep`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuidedPlan {
    /// Uniform forward-only probes of F(α) before the panels are placed (intervals; +1 points).
    pub probes: usize,
    /// Gauss–Legendre nodes per panel.
    pub panel_nodes: usize,
    /// Share of the gradient budget spent on the first set of panels (the rest refines).
    pub first_share: f64,
}

impl Default for GuidedPlan {
    fn default() -> Self {
        Self {
            probes: 8,
            panel_nodes: 2,
            first_share: 0.5,
        }
    }
}

#[derive(Clone, Debug)]
pub struct IgOptions {
    /// Gauss–Legendre: the number of nodes. Guided: the most gradients it may spend.
    pub steps: usize,
    pub baseline: Baseline,
    pub target: usize,
    /// Path points in flight at once.
    pub batch: usize,
    /// Sub-batches of `batch` computed at the same time (each at most `⌈batch / lanes⌉` points,
    /// see `balanced_sub_batches`). Why:
    /// one pass over a batch has stretches where one core waits (a serial copy, the end of a
    /// parallel loop whose last chunk is long, the hand-over between layers); a second pass
    /// running beside it takes that core. On the 2-core CPU two lanes of 4 ran IG 10–16 % faster
    /// than one batch of 8 at the same peak memory (docs/performance-log.md); a GPU runs its kernels
    /// one after another anyway, so it keeps 1.
    pub lanes: usize,
    pub rule: IgRule,
}

/// [`IgOptions::lanes`] on the CPU.
pub const CPU_LANES: usize = 2;

/// [`IgOptions::lanes`] for a device: [`CPU_LANES`] on the CPU, 1 elsewhere.
pub fn lanes_for(device: &candle_core::Device) -> usize {
    if device.is_cpu() {
        CPU_LANES
    } else {
        1
    }
}

#[derive(Clone, Debug)]
pub struct IntegratedGradients {
    pub baseline: Baseline,
    /// `baseline` was chosen by [`IgBaseline::Auto`], not asked for.
    pub baseline_auto: bool,
    /// Gradient evaluations used (path points with a backward pass).
    pub steps: usize,
    /// Forward-only evaluations of F along the path (the guided rule's probes).
    pub probes: usize,
    pub rule: IgRule,
    pub target: usize,
    /// Attributions summed over the input channels, on the model input grid (signed).
    pub map: Grid,
    /// F(x) and F(x′): the target logit at the input and at the baseline.
    pub f_input: f32,
    pub f_baseline: f32,
    /// Σ IG − (F(x) − F(x′)).
    pub delta: f32,
    /// Every class's logit at the baseline, when the analysis has them (it keeps them per
    /// baseline, [`crate::analysis::Engine::integrated_gradients`]); empty otherwise. They say how
    /// the model reads the baseline image itself ([`crate::analysis::baseline_reading`]).
    pub baseline_logits: Vec<f32>,
}

impl IntegratedGradients {
    /// The baseline asked for: `auto` where [`Self::baseline`] was chosen by it.
    pub fn requested(&self) -> IgBaseline {
        if self.baseline_auto {
            IgBaseline::Auto
        } else {
            self.baseline.into()
        }
    }

    /// The baseline the map started from, and whether `auto` chose it, as the viewer's panel
    /// and the overlays' markers say it: "normal film baseline (auto)", "black baseline".
    pub fn baseline_described(&self) -> String {
        let auto = if self.baseline_auto { " (auto)" } else { "" };
        format!("{} baseline{auto}", self.baseline.label())
    }

    /// |gap| relative to |F(x) − F(x′)|.
    pub fn relative_delta(&self) -> f32 {
        self.delta.abs() / (self.f_input - self.f_baseline).abs().max(1e-12)
    }
}

/// The normalised baseline image for `input` `[1, 3, H, W]`.
pub fn baseline_tensor(
    model: &Classifier,
    input: &Tensor,
    baseline: Baseline,
) -> candle_core::Result<Tensor> {
    let spec = &model.config.input;
    let Some(v) = baseline.pixel_value() else {
        let film = model.ig_reference.as_ref().ok_or_else(|| {
            candle_core::Error::Msg(
                "the normal-film baseline needs a reference film: this model.json names no \
                 ig_reference"
                    .into(),
            )
        })?;
        if film.dims()[1..] != input.dims()[1..] {
            return Err(candle_core::Error::Msg(format!(
                "the reference film's input {:?} does not match the film's {:?}",
                film.dims(),
                input.dims()
            )));
        }
        return film
            .to_device(input.device())?
            .to_dtype(input.dtype())?
            .broadcast_as(input.shape())?
            .contiguous();
    };
    let per_channel: Vec<f32> = spec
        .mean
        .iter()
        .zip(&spec.std)
        .map(|(m, s)| (v - m) / s)
        .collect();
    let c = per_channel.len();
    Tensor::from_vec(per_channel, (1, c, 1, 1), input.device())?
        .broadcast_as(input.shape())?
        .contiguous()
}

/// `∂logit_target/∂x` for a batch `[n, 3, H, W]`, and the target logits `[n]`.
pub fn input_gradients(
    model: &Classifier,
    batch: &Tensor,
    target: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (tape, g_features, logits) = layer4_gradient(model, batch, target)?;
    let grad = model.backbone.backward_input(&tape, &g_features)?;
    Ok((grad, logits))
}

/// [`input_gradients`] summed over the input channels, `[n, 1, H, W]`.
pub fn input_gradients_channel_sum(
    model: &Classifier,
    batch: &Tensor,
    target: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (tape, g_features, logits) = layer4_gradient(model, batch, target)?;
    let grad = model
        .backbone
        .backward_input_channel_sum(&tape, &g_features)?;
    Ok((grad, logits))
}

/// The forward with its tape, `∂logit_target/∂layer4` and the target logits.
fn layer4_gradient(
    model: &Classifier,
    batch: &Tensor,
    target: usize,
) -> candle_core::Result<(crate::model::resnet::Tape, Tensor, Tensor)> {
    let (features, tape) = model.backbone.forward_with_tape(batch)?;
    let (g_features, logits) = head_gradient(model, &features, target)?;
    Ok((tape, g_features, logits))
}

/// `∂logit_target/∂layer4` and the target logits `[n]` from the layer4 activation.
fn head_gradient(
    model: &Classifier,
    features: &Tensor,
    target: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (n, c, h, w) = features.dims4()?;
    let pooled = global_avg_pool(features)?;
    let logits = model.head.forward(&pooled, None)?;
    let g_pooled = (model.head.grad_pooled(&pooled, None, target)? / (h * w) as f64)?;
    let g_features = g_pooled
        .reshape((n, c, 1, 1))?
        .broadcast_as((n, c, h, w))?
        .contiguous()?;
    Ok((g_features, logits.narrow(1, target, 1)?.squeeze(1)?))
}

/// `Σᵢ wᵢ · g[i]` over the first axis, `[1, …]`.
fn weighted_row_sum(g: &Tensor, weights: &[f32]) -> candle_core::Result<Tensor> {
    if let Some(sum) = crate::model::weighted_row_sum(g, weights)? {
        return Ok(sum);
    }
    let w = Tensor::from_vec(weights.to_vec(), (weights.len(), 1, 1, 1), g.device())?;
    g.broadcast_mul(&w)?.sum_keepdim(0)
}

/// Index ranges of `n` path points cut into sub-batches of at most `⌈batch / lanes⌉` points,
/// `lanes` per round, as many rounds as full batches would need, and sizes differing by at most
/// one. Why: the lanes of one round wait for the longest, so a round of 4 + 2 points costs what
/// 4 + 4 cost; with even sizes each round's lanes finish together and the cost follows the
/// number of points (38 gradients took as long as 40 with plain `chunks`). No sub-batch grows.
/// When `n` is a multiple of the lane size the plain cut is kept (36 = 9 × 4: a lone last
/// sub-batch runs on the whole pool, as fast as two of 3 beside each other): buffers of one size
/// only, whereas a second size kept ~45 MiB more of them (column pool, heap) at 36 gradients.
fn balanced_sub_batches(n: usize, batch: usize, lanes: usize) -> Vec<std::ops::Range<usize>> {
    let batch = batch.max(1);
    let lanes = lanes.clamp(1, batch);
    let lane_size = batch.div_ceil(lanes);
    if n.is_multiple_of(lane_size) {
        return (0..n / lane_size)
            .map(|i| i * lane_size..(i + 1) * lane_size)
            .collect();
    }
    let count = (n.div_ceil(batch) * lanes).min(n);
    let mut ranges = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let len = n / count + usize::from(i < n % count);
        ranges.push(start..start + len);
        start += len;
    }
    ranges
}

/// The straight path x′ + α(x − x′) of one film, evaluated in batches.
struct PathEval<'a> {
    model: &'a Classifier,
    baseline: Tensor,
    diff: Tensor,
    /// The one plane of `diff` when every channel repeats it: then the gradients are summed over
    /// the channels in the backward pass and this plane multiplies them.
    shared_plane: Option<Tensor>,
    /// The stem convolution at x′ and on x − x′: each path point's stem output is computed from
    /// these, and the gradients are summed at the stem's output (see
    /// [`crate::model::resnet::Backbone::stem_path`]).
    stem: StemPath,
    target: usize,
    batch: usize,
    lanes: usize,
}

impl PathEval<'_> {
    /// What multiplies the gradient sums: `diff`, or its shared plane.
    fn grad_diff(&self) -> &Tensor {
        self.shared_plane.as_ref().unwrap_or(&self.diff)
    }

    fn points(&self, alphas: &[f64]) -> candle_core::Result<Tensor> {
        let alpha = Tensor::from_vec(
            alphas.iter().map(|a| *a as f32).collect::<Vec<_>>(),
            (alphas.len(), 1, 1, 1),
            self.diff.device(),
        )?;
        self.baseline
            .broadcast_add(&self.diff.broadcast_mul(&alpha)?)
    }

    /// F(α) for each α, forward passes only.
    fn logits(&self, alphas: &[f64], control: &Control) -> Result<Vec<f64>, ExplainError> {
        let mut out = Vec::with_capacity(alphas.len());
        for chunk in alphas.chunks(self.batch) {
            control.check()?;
            let logits = self
                .model
                .logits(&self.points(chunk)?)?
                .narrow(1, self.target, 1)?
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            out.extend(logits.iter().map(|v| *v as f64));
        }
        Ok(out)
    }

    /// Σ wᵢ ∇F(αᵢ) for each group of nodes (`[1, 3, H, W]` per group, `[1, 1, H, W]` summed over
    /// the channels with a shared plane); groups share batches. The sums are taken at the stem's
    /// output and go through the stem's input gradient once per group.
    fn gradient_sums(
        &self,
        groups: &[(Vec<f64>, Vec<f64>)],
        control: &Control,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Tensor>, ExplainError> {
        // Flatten (group, α, w) so every batch is full.
        let flat: Vec<(usize, f64, f64)> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, (nodes, weights))| {
                nodes.iter().zip(weights).map(move |(a, w)| (g, *a, *w))
            })
            .collect();
        let mut sums: Vec<Option<Tensor>> = vec![None; groups.len()];
        // `lanes` sub-batches at a time, summed in path order afterwards (the same sums, in the
        // same order, whatever runs first).
        let chunks: Vec<&[(usize, f64, f64)]> =
            balanced_sub_batches(flat.len(), self.batch, self.lanes)
                .into_iter()
                .map(|r| &flat[r])
                .collect();
        let backbone = &self.model.backbone;
        // Each group's weighted sum of one sub-batch's gradients at the stem's output, in path
        // order: `(group, sum)` for each run of consecutive rows of one group.
        let gradients = |chunk: &[(usize, f64, f64)]| -> candle_core::Result<Vec<(usize, Tensor)>> {
            let alphas: Vec<f32> = chunk.iter().map(|c| c.1 as f32).collect();
            let (features, tape) = backbone.forward_with_tape_on_path(&self.stem, &alphas)?;
            let (g_features, _) = head_gradient(self.model, &features, self.target)?;
            let grads = backbone.backward_to_stem(&tape, &g_features)?;
            drop(tape);
            let weights: Vec<f32> = chunk.iter().map(|c| c.2 as f32).collect();
            let mut parts = Vec::new();
            let mut start = 0;
            while start < chunk.len() {
                let g = chunk[start].0;
                let len = chunk[start..].iter().take_while(|c| c.0 == g).count();
                parts.push((
                    g,
                    weighted_row_sum(&grads.narrow(0, start, len)?, &weights[start..start + len])?,
                ));
                start += len;
            }
            Ok(parts)
        };
        for lane_chunks in chunks.chunks(self.lanes) {
            control.check()?;
            // Each lane's products on its own thread (`serial_products`): the lanes keep the
            // cores busy, and a product split over the pool would add a fork and a join per
            // depth block of `gemm` (IG 2.45-2.48 -> 2.28-2.42 s in alternating runs, 2-core Xeon).
            let results: Vec<candle_core::Result<Vec<(usize, Tensor)>>> = lane_chunks
                .par_iter()
                .map(|c| {
                    if lane_chunks.len() > 1 {
                        crate::model::serial_products(|| gradients(c))
                    } else {
                        gradients(c)
                    }
                })
                .collect();
            for parts in results {
                for (g, part) in parts? {
                    sums[g] = Some(match sums[g].take() {
                        Some(acc) => crate::model::add_in_place(acc, &part)?,
                        None => part,
                    });
                }
            }
            // One report per batch, whatever the number of lanes it was split into.
            on_batch(lane_chunks.iter().map(|c| c.len()).sum());
        }
        sums.into_iter()
            .map(|s| {
                let s = s.ok_or(ExplainError::Cancelled)?;
                Ok(backbone.stem_backward_input(&self.stem, &s, self.shared_plane.is_some())?)
            })
            .collect()
    }

    /// Σᵢ (x − x′)ᵢ · Sᵢ: what a partial gradient sum contributes to the total attribution.
    fn attribution_total(&self, sum: &Tensor) -> candle_core::Result<f64> {
        Ok(self
            .grad_diff()
            .mul(sum)?
            .sum_all()?
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()? as f64)
    }
}

/// A piece [a, b] of the path with F at its ends and its gradient sum Σ wᵢ ∇F(αᵢ).
struct Panel {
    a: f64,
    b: f64,
    fa: f64,
    fb: f64,
    sum: Tensor,
    /// Σ IG over the panel − (F(b) − F(a)).
    gap: f64,
}

/// `nodes` Gauss–Legendre nodes and weights on [a, b].
fn panel_rule(nodes: usize, a: f64, b: f64) -> (Vec<f64>, Vec<f64>) {
    let (x, w) = gauss_legendre(nodes);
    (
        x.iter().map(|x| a + (b - a) * x).collect(),
        w.iter().map(|w| (b - a) * w).collect(),
    )
}

/// Panel ends that split [0, 1] into `panels` pieces of equal variation, from F at uniform probes.
///
/// The variation density on probe interval k is |F(αₖ₊₁) − F(αₖ)| plus a floor of a quarter of the
/// mean, so a flat stretch still gets a share of the nodes.
pub fn equal_variation_ends(probe_f: &[f64], panels: usize) -> Vec<f64> {
    let intervals = probe_f.len().saturating_sub(1).max(1);
    let change: Vec<f64> = probe_f.windows(2).map(|p| (p[1] - p[0]).abs()).collect();
    let mean = change.iter().sum::<f64>() / intervals as f64;
    let floor = 0.25 * mean.max(1e-12);
    let density: Vec<f64> = if change.is_empty() {
        vec![1.0]
    } else {
        change.iter().map(|c| c + floor).collect()
    };
    let total: f64 = density.iter().sum();
    let h = 1.0 / intervals as f64;
    let mut ends = vec![0.0];
    let (mut k, mut below) = (0usize, 0.0f64);
    for i in 1..panels.max(1) {
        let level = total * i as f64 / panels as f64;
        while k + 1 < density.len() && below + density[k] < level {
            below += density[k];
            k += 1;
        }
        let t = ((level - below) / density[k]).clamp(0.0, 1.0);
        ends.push((k as f64 + t) * h);
    }
    ends.push(1.0);
    ends
}

pub fn integrated_gradients(
    model: &Classifier,
    input: &Tensor,
    opts: &IgOptions,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    integrated_gradients_with_plan(model, input, opts, GuidedPlan::default(), None, control)
}

/// The target logit at both ends of the path, F(x) and F(x′), when the caller has them: the
/// analysis knows F(x) from its prediction's forward pass and keeps F(x′) per baseline and input
/// size ([`crate::analysis::Engine`]), which saves the fixed rules a forward pass of two images
/// (2–3 % of IG's time at 40 steps on the 2-core CPU).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathEnds {
    pub f_input: f32,
    pub f_baseline: f32,
}

/// [`integrated_gradients`] with F at the path's ends already known.
pub fn integrated_gradients_with_ends(
    model: &Classifier,
    input: &Tensor,
    opts: &IgOptions,
    ends: PathEnds,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    integrated_gradients_with_plan(
        model,
        input,
        opts,
        GuidedPlan::default(),
        Some(ends),
        control,
    )
}

/// [`integrated_gradients`] with the guided rule's choices spelled out (for tuning them).
pub fn integrated_gradients_with_plan(
    model: &Classifier,
    input: &Tensor,
    opts: &IgOptions,
    plan: GuidedPlan,
    ends: Option<PathEnds>,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    let baseline = baseline_tensor(model, input, opts.baseline)?;
    let diff = (input - &baseline)?;
    let shared_plane = crate::model::shared_channel(&diff)?;
    let stem = model.backbone.stem_path(&baseline, &diff)?;
    let path = PathEval {
        model,
        baseline,
        diff,
        shared_plane,
        stem,
        target: opts.target,
        batch: opts.batch.max(1),
        lanes: opts.lanes.clamp(1, opts.batch.max(1)),
    };
    // The whole loop on the pool, not only each network pass: the path points, the head's
    // gradient and the running sum then run there too (see `model::on_compute_pool`).
    let steps = opts.steps.max(1);
    crate::model::on_compute_pool(|| match opts.rule {
        IgRule::Graded => fixed_rule_ig(&path, input, opts, graded_midpoint(steps), ends, control),
        IgRule::Midpoint => fixed_rule_ig(&path, input, opts, midpoint(steps), ends, control),
        IgRule::GaussLegendre => {
            fixed_rule_ig(&path, input, opts, gauss_legendre(steps), ends, control)
        }
        IgRule::Guided { tolerance } => guided_ig(&path, opts, tolerance, plan, control),
    })
}

/// IG with the given nodes and weights on [0, 1] (one gradient per node).
fn fixed_rule_ig(
    path: &PathEval,
    input: &Tensor,
    opts: &IgOptions,
    (nodes, weights): (Vec<f64>, Vec<f64>),
    ends: Option<PathEnds>,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    let total = nodes.len();
    (control.progress)(0, total);
    let mut done = 0;
    let sums = path.gradient_sums(&[(nodes, weights)], control, |n| {
        done += n;
        (control.progress)(done, total);
    })?;
    let ends = match ends {
        Some(ends) => (ends.f_input, ends.f_baseline),
        None => {
            // F at both ends in one batch of two.
            let both = Tensor::cat(&[input, &path.baseline], 0)?;
            let end_logits = path
                .model
                .logits(&both)?
                .narrow(1, opts.target, 1)?
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            (end_logits[0], end_logits[1])
        }
    };
    finish(path, opts, &sums[0], ends, (total, 0))
}

fn guided_ig(
    path: &PathEval,
    opts: &IgOptions,
    tolerance: f32,
    plan: GuidedPlan,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    let (probe_count, nodes) = (plan.probes.max(1), plan.panel_nodes.max(1));
    let budget = opts.steps.max(nodes);
    let mut used = 0usize;
    (control.progress)(0, budget);
    // 1. Uniform forward-only probes; the ends are F(x′) and F(x).
    let probe_alphas: Vec<f64> = (0..=probe_count)
        .map(|j| j as f64 / probe_count as f64)
        .collect();
    let probe_f = path.logits(&probe_alphas, control)?;
    let mut probes = probe_alphas.len();
    let (f_baseline, f_input) = (probe_f[0], probe_f[probe_count]);
    let span = (f_input - f_baseline).abs().max(1e-12);
    // 2. Part of the budget on equal-variation panels, the rest for refinement.
    let first = ((budget as f64 * plan.first_share) as usize).max(nodes);
    let count = (first / nodes).max(1);
    let ends = equal_variation_ends(&probe_f, count);
    let interior = path.logits(&ends[1..count], control)?;
    probes += interior.len();
    let mut f_ends = vec![f_baseline];
    f_ends.extend(interior);
    f_ends.push(f_input);
    let report = |n: usize, used: &mut usize| {
        *used += n;
        (control.progress)((*used).min(budget), budget);
    };
    let groups: Vec<_> = ends
        .windows(2)
        .map(|e| panel_rule(nodes, e[0], e[1]))
        .collect();
    let sums = path.gradient_sums(&groups, control, |n| report(n, &mut used))?;
    let mut panels = Vec::with_capacity(count);
    for (i, sum) in sums.into_iter().enumerate() {
        let (fa, fb) = (f_ends[i], f_ends[i + 1]);
        let gap = path.attribution_total(&sum)? - (fb - fa);
        panels.push(Panel {
            a: ends[i],
            b: ends[i + 1],
            fa,
            fb,
            sum,
            gap,
        });
    }
    // 3–4. Bisect the worst panels while the error estimate is above the target.
    let per_split = 2 * nodes;
    loop {
        let estimate: f64 = panels.iter().map(|p| p.gap.abs()).sum::<f64>() / span;
        let room = budget.saturating_sub(used) / per_split;
        if estimate <= tolerance as f64 || room == 0 {
            break;
        }
        // As many splits as fill one batch (at least one), worst first.
        let splits = (path.batch / per_split).max(1).min(room).min(panels.len());
        let mut order: Vec<usize> = (0..panels.len()).collect();
        order.sort_by(|&i, &j| panels[j].gap.abs().total_cmp(&panels[i].gap.abs()));
        let mut chosen: Vec<usize> = order[..splits].to_vec();
        chosen.sort_unstable();
        let mids: Vec<f64> = chosen
            .iter()
            .map(|&i| 0.5 * (panels[i].a + panels[i].b))
            .collect();
        let f_mid = path.logits(&mids, control)?;
        probes += mids.len();
        let mut groups = Vec::with_capacity(2 * splits);
        for (&i, &m) in chosen.iter().zip(&mids) {
            groups.push(panel_rule(nodes, panels[i].a, m));
            groups.push(panel_rule(nodes, m, panels[i].b));
        }
        let sums = path.gradient_sums(&groups, control, |n| report(n, &mut used))?;
        let mut sums = sums.into_iter();
        let mut halves = Vec::with_capacity(2 * splits);
        for (&i, (&m, &fm)) in chosen.iter().zip(mids.iter().zip(&f_mid)) {
            let p = &panels[i];
            for (a, b, fa, fb) in [(p.a, m, p.fa, fm), (m, p.b, fm, p.fb)] {
                let sum = sums.next().ok_or(ExplainError::Cancelled)?;
                let gap = path.attribution_total(&sum)? - (fb - fa);
                halves.push((
                    i,
                    Panel {
                        a,
                        b,
                        fa,
                        fb,
                        sum,
                        gap,
                    },
                ));
            }
        }
        // Replace each chosen panel by its two halves, keeping the path order.
        let mut next = Vec::with_capacity(panels.len() + splits);
        let mut halves = halves.into_iter().peekable();
        for (i, p) in panels.into_iter().enumerate() {
            let mut split = false;
            while let Some((_, h)) = halves.next_if(|(j, _)| *j == i) {
                next.push(h);
                split = true;
            }
            if !split {
                next.push(p);
            }
        }
        panels = next;
    }
    let mut total: Option<Tensor> = None;
    for p in &panels {
        total = Some(match total {
            Some(acc) => (acc + &p.sum)?,
            None => p.sum.clone(),
        });
    }
    let total = total.ok_or(ExplainError::Cancelled)?;
    finish(
        path,
        opts,
        &total,
        (f_input as f32, f_baseline as f32),
        (used, probes),
    )
}

/// Attributions (x − x′) ⊙ Σ wᵢ ∇F(αᵢ) and the completeness gap.
fn finish(
    path: &PathEval,
    opts: &IgOptions,
    weighted_sum: &Tensor,
    (f_input, f_baseline): (f32, f32),
    (steps, probes): (usize, usize),
) -> Result<IntegratedGradients, ExplainError> {
    let (_, _, height, width) = path.diff.dims4()?;
    let attributions = path.grad_diff().mul(weighted_sum)?;
    let total_attribution: f32 = attributions.sum_all()?.to_dtype(DType::F32)?.to_scalar()?;
    let map = attributions.sum(1)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(IntegratedGradients {
        baseline: opts.baseline,
        baseline_auto: false,
        steps,
        probes,
        rule: opts.rule,
        target: opts.target,
        map: Grid::new(width, height, map),
        f_input,
        f_baseline,
        delta: total_attribution - (f_input - f_baseline),
        baseline_logits: Vec::new(),
    })
}

/// Relative L2 distance ‖a − b‖ / ‖b‖ of a map to a reference map (the accuracy measure of the
/// issue: a map against a 256-node Gauss–Legendre reference).
pub fn relative_l2_error(map: &[f32], reference: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (a, b) in map.iter().zip(reference) {
        num += (*a as f64 - *b as f64).powi(2);
        den += (*b as f64).powi(2);
    }
    (num / den.max(1e-300)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::balanced_sub_batches;

    fn sizes(n: usize, batch: usize, lanes: usize) -> Vec<usize> {
        balanced_sub_batches(n, batch, lanes)
            .iter()
            .map(|r| r.len())
            .collect()
    }

    #[test]
    fn sub_batches_are_even_and_never_larger_than_a_lane() {
        // 38 points, batch 8 in 2 lanes: 5 rounds of two, sizes 4 or 3, the 3s at the end.
        assert_eq!(sizes(38, 8, 2), [4, 4, 4, 4, 4, 4, 4, 4, 3, 3]);
        assert_eq!(sizes(37, 8, 2), [4, 4, 4, 4, 4, 4, 4, 3, 3, 3]);
        // A multiple of the lane size keeps one size of sub-batch (the last runs alone).
        assert_eq!(sizes(36, 8, 2), [4; 9]);
        assert_eq!(sizes(40, 8, 2), [4; 10]);
        // One lane: plain batches, as even as they can be.
        assert_eq!(sizes(19, 8, 1), [7, 6, 6]);
        // Fewer points than lanes × rounds: one point each, nothing empty.
        assert_eq!(sizes(3, 8, 4), [1, 1, 1]);
        assert!(sizes(0, 8, 2).is_empty());
        for n in 0..100 {
            for batch in 1..12 {
                for lanes in 1..4 {
                    let ranges = balanced_sub_batches(n, batch, lanes);
                    // Contiguous, covering 0..n, in order.
                    let mut next = 0;
                    for r in &ranges {
                        assert_eq!(r.start, next);
                        assert!(!r.is_empty());
                        assert!(r.len() <= batch.div_ceil(lanes.min(batch)));
                        next = r.end;
                    }
                    assert_eq!(next, n);
                }
            }
        }
    }
}
