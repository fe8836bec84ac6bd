//! Integrated Gradients (Sundararajan et al., ICML 2017) with respect to the model input.
//!
//! For input x, baseline x′ and the target logit F:
//!
//! ```text
//! IGᵢ(x) = (xᵢ − x′ᵢ) ∫₀¹ ∂F/∂xᵢ (x′ + α(x − x′)) dα  ≈  (xᵢ − x′ᵢ) Σₘ wₘ ∂F/∂xᵢ (x′ + αₘ(x − x′))
//! ```
//!
//! with Gauss–Legendre nodes αₘ and weights wₘ on [0, 1] ([`super::quadrature`]). Completeness says
//! Σᵢ IGᵢ = F(x) − F(x′) exactly; the *gap* `Σ IG − (F(x) − F(x′))` (captum's convergence delta)
//! measures the quadrature error and is reported with every result.
//!
//! Baselines are defined in pixel space and normalised like the input: black = an all-0 image,
//! white = an all-1 image. Path points are evaluated in batches; each batch is one forward pass
//! keeping activations and one explicit input-gradient pass (no weight gradients).

use candle_core::{DType, Tensor};
use serde::Serialize;

use super::quadrature::gauss_legendre;
use super::{Control, ExplainError, Grid};
use crate::model::resnet::global_avg_pool;
use crate::model::Classifier;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    #[default]
    Black,
    White,
}

impl Baseline {
    /// Pixel value in [0, 1] before normalisation.
    pub fn pixel_value(self) -> f32 {
        match self {
            Baseline::Black => 0.0,
            Baseline::White => 1.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct IgOptions {
    pub steps: usize,
    pub baseline: Baseline,
    pub target: usize,
    /// Path points per forward/backward batch.
    pub batch: usize,
}

#[derive(Clone, Debug)]
pub struct IntegratedGradients {
    pub baseline: Baseline,
    pub steps: usize,
    pub target: usize,
    /// Attributions summed over the input channels, on the model input grid (signed).
    pub map: Grid,
    /// Attributions per channel `[3, H, W]`, flattened.
    pub per_channel: Vec<f32>,
    /// F(x) and F(x′): the target logit at the input and at the baseline.
    pub f_input: f32,
    pub f_baseline: f32,
    /// Σ IG − (F(x) − F(x′)).
    pub delta: f32,
}

impl IntegratedGradients {
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
    let v = baseline.pixel_value();
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
    let (features, tape) = model.backbone.forward_with_tape(batch)?;
    let (n, c, h, w) = features.dims4()?;
    let pooled = global_avg_pool(&features)?;
    let logits = model.head.forward(&pooled, None)?;
    let g_pooled = (model.head.grad_pooled(&pooled, None, target)? / (h * w) as f64)?;
    let g_features = g_pooled
        .reshape((n, c, 1, 1))?
        .broadcast_as((n, c, h, w))?
        .contiguous()?;
    let grad = model.backbone.backward_input(&tape, &g_features)?;
    Ok((grad, logits.narrow(1, target, 1)?.squeeze(1)?))
}

pub fn integrated_gradients(
    model: &Classifier,
    input: &Tensor,
    opts: &IgOptions,
    control: &Control,
) -> Result<IntegratedGradients, ExplainError> {
    let (_, _, height, width) = input.dims4()?;
    let baseline = baseline_tensor(model, input, opts.baseline)?;
    let diff = (input - &baseline)?;
    let (nodes, weights) = gauss_legendre(opts.steps.max(1));
    let batch = opts.batch.max(1);
    let total = nodes.len();
    let mut weighted_sum: Option<Tensor> = None;
    (control.progress)(0, total);
    for (chunk_index, (alphas, ws)) in nodes.chunks(batch).zip(weights.chunks(batch)).enumerate() {
        control.check()?;
        let n = alphas.len();
        let alpha = Tensor::from_vec(
            alphas.iter().map(|a| *a as f32).collect::<Vec<_>>(),
            (n, 1, 1, 1),
            input.device(),
        )?;
        let points = baseline.broadcast_add(&diff.broadcast_mul(&alpha)?)?;
        let (grads, _) = input_gradients(model, &points, opts.target)?;
        let w = Tensor::from_vec(
            ws.iter().map(|w| *w as f32).collect::<Vec<_>>(),
            (n, 1, 1, 1),
            input.device(),
        )?;
        let part = grads.broadcast_mul(&w)?.sum_keepdim(0)?;
        weighted_sum = Some(match weighted_sum {
            Some(acc) => (acc + part)?,
            None => part,
        });
        (control.progress)((chunk_index * batch + n).min(total), total);
    }
    let weighted_sum = weighted_sum.ok_or(ExplainError::Cancelled)?;
    let attributions = diff.mul(&weighted_sum)?;
    // F at both ends in one batch of two.
    let ends = Tensor::cat(&[input, &baseline], 0)?;
    let end_logits = model
        .logits(&ends)?
        .narrow(1, opts.target, 1)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?;
    let (f_input, f_baseline) = (end_logits[0], end_logits[1]);
    let total_attribution: f32 = attributions.sum_all()?.to_dtype(DType::F32)?.to_scalar()?;
    let map = attributions.sum(1)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(IntegratedGradients {
        baseline: opts.baseline,
        steps: total,
        target: opts.target,
        map: Grid::new(width, height, map),
        per_channel: attributions.flatten_all()?.to_vec1::<f32>()?,
        f_input,
        f_baseline,
        delta: total_attribution - (f_input - f_baseline),
    })
}
