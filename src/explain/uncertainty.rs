//! Monte-Carlo dropout (Gal & Ghahramani, 2016) on the classifier head.
//!
//! The backbone runs once; its pooled layer4 features are fed S times through the head with fresh
//! dropout masks (both dropout layers, as in training), in one batch. With pₛ the softmax of the
//! temperature-scaled logits of sample s and p̄ = (1/S) Σ pₛ:
//!
//! ```text
//! predictive entropy   H[p̄]            = −Σ_c p̄_c ln p̄_c
//! expected entropy     E[H]             = (1/S) Σₛ −Σ_c pₛ,c ln pₛ,c
//! mutual information   I = H[p̄] − E[H]  (the part of the uncertainty that is the model's own)
//! ```
//!
//! The mean and standard deviation of the positive-class probability give the interval shown to
//! the user. Each sample also has its own Grad-CAM (its masks change αₖ, not the activations); the
//! per-cell mean and standard deviation of those maps are the "uncertainty maps".
//! Masks come from a seeded generator so a report can be reproduced exactly.

use candle_core::{DType, Tensor, D};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::gradcam::{cams, channel_weights};
use super::{ExplainError, Grid};
use crate::model::resnet::{global_avg_pool, DropoutMasks, Head};

#[derive(Clone, Debug, Serialize)]
pub struct McDropout {
    pub samples: usize,
    /// Mean over samples of the positive-class probability.
    pub mean: f32,
    /// Standard deviation over samples of the positive-class probability.
    pub std: f32,
    /// 2.5 % and 97.5 % quantiles of the positive-class probability over samples.
    pub interval: [f32; 2],
    /// Predictive entropy H[p̄], nats.
    pub entropy: f32,
    /// Expected entropy E\[H\[pₛ\]\], nats.
    pub expected_entropy: f32,
    /// H\[p̄\] − E\[H\[pₛ\]\], nats.
    pub mutual_information: f32,
    /// Mean probability of every class.
    pub class_mean: Vec<f32>,
    /// The positive-class probability of each sample.
    pub sample_probabilities: Vec<f32>,
    #[serde(skip)]
    pub cam_mean: Grid,
    #[serde(skip)]
    pub cam_std: Grid,
}

pub struct McOptions {
    pub samples: usize,
    pub dropout: f32,
    pub temperature: f32,
    pub positive: usize,
    /// Class whose Grad-CAM is sampled.
    pub target: usize,
    pub seed: u64,
}

/// Bernoulli(1 − p) masks scaled by 1/(1 − p), one row per sample.
pub fn dropout_masks(
    samples: usize,
    features: usize,
    hidden: usize,
    p: f32,
    seed: u64,
    device: &candle_core::Device,
) -> candle_core::Result<DropoutMasks> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keep = 1.0 - p;
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect()
    };
    let features_mask = Tensor::from_vec(draw(samples * features), (samples, features), device)?;
    let hidden_mask = Tensor::from_vec(draw(samples * hidden), (samples, hidden), device)?;
    Ok(DropoutMasks {
        features: features_mask,
        hidden: hidden_mask,
    })
}

/// MC dropout from the layer4 activation `[1, C, h, w]` of one image.
pub fn mc_dropout(
    head: &Head,
    features: &Tensor,
    opts: &McOptions,
) -> Result<McDropout, ExplainError> {
    let (_, c, h, w) = features.dims4()?;
    let s = opts.samples.max(1);
    let pooled = global_avg_pool(features)?
        .broadcast_as((s, c))?
        .contiguous()?;
    let masks = dropout_masks(
        s,
        c,
        head.hidden_units(),
        opts.dropout,
        opts.seed,
        features.device(),
    )?;
    let logits = head.forward(&pooled, Some(&masks))?;
    let probs = candle_nn::ops::softmax(&(logits / opts.temperature as f64)?, D::Minus1)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?;
    let alpha = channel_weights(head, &pooled, Some(&masks), opts.target, h * w)?;
    let maps = cams(&alpha, features)?.to_vec2::<f32>()?;

    let classes = probs.first().map_or(0, Vec::len);
    let class_mean: Vec<f32> = (0..classes)
        .map(|k| probs.iter().map(|p| p[k]).sum::<f32>() / s as f32)
        .collect();
    let entropy = |p: &[f32]| -> f32 { p.iter().filter(|v| **v > 0.0).map(|v| -v * v.ln()).sum() };
    let predictive = entropy(&class_mean);
    let expected = probs.iter().map(|p| entropy(p)).sum::<f32>() / s as f32;
    let positive: Vec<f32> = probs.iter().map(|p| p[opts.positive]).collect();
    let (mean, std) = mean_std(&positive);
    let cells = h * w;
    let mut cam_mean = vec![0f32; cells];
    let mut cam_std = vec![0f32; cells];
    for cell in 0..cells {
        let column: Vec<f32> = maps.iter().map(|m| m[cell]).collect();
        let (m, sd) = mean_std(&column);
        cam_mean[cell] = m;
        cam_std[cell] = sd;
    }
    Ok(McDropout {
        samples: s,
        mean,
        std,
        interval: [quantile(&positive, 0.025), quantile(&positive, 0.975)],
        entropy: predictive,
        expected_entropy: expected,
        // Clamp tiny negative values that are rounding, not information.
        mutual_information: (predictive - expected).max(0.0),
        class_mean,
        sample_probabilities: positive,
        cam_mean: Grid::new(w, h, cam_mean),
        cam_std: Grid::new(w, h, cam_std),
    })
}

/// Mean and population standard deviation.
fn mean_std(v: &[f32]) -> (f32, f32) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt() as f32)
}

/// Linear-interpolated quantile (numpy's default).
fn quantile(v: &[f32], q: f32) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (sorted.len() - 1) as f32;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_numpy_linear() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-6);
        assert!((quantile(&v, 0.025) - 1.075).abs() < 1e-6);
    }

    #[test]
    fn masks_keep_the_expected_fraction_and_scale() {
        let m = dropout_masks(200, 50, 10, 0.25, 7, &candle_core::Device::Cpu).unwrap();
        let v: Vec<f32> = m.features.flatten_all().unwrap().to_vec1().unwrap();
        let kept = v.iter().filter(|x| **x > 0.0).count() as f32 / v.len() as f32;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(v
            .iter()
            .all(|x| *x == 0.0 || (*x - 1.0 / 0.75).abs() < 1e-6));
        let again = dropout_masks(200, 50, 10, 0.25, 7, &candle_core::Device::Cpu).unwrap();
        assert_eq!(
            v,
            again
                .features
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
    }
}
