//! Faithfulness of a map: does deleting what the map calls relevant change the prediction more
//! than deleting at random?
//!
//! **Grid and ordering.** The model input (`H×W`, 224×224) is cut into a `g×g` grid of cells
//! (default 14×14, so 16×16 pixels per cell at 224). A map is brought to that grid
//! ([`Grid::resized`]: bilinear when enlarging Grad-CAM's 7×7, antialiased area filter when
//! shrinking IG's 224×224) and its cells are sorted by decreasing value (ties: lower index first).
//! This is the MoRF order ("most relevant first", Samek et al. 2017).
//!
//! **Baseline.** A removed cell is replaced by the same cell of a Gaussian-blurred copy of the
//! model input (σ = 8 model pixels by default, edges clamped), as in the RISE deletion/insertion
//! metrics (Petsiuk et al., BMVC 2018). Blurring removes the cell's detail but keeps its mean
//! brightness, so the model is not shown black holes it never saw in training.
//!
//! **Curves.** With `S` steps (default 4), deletion step `k = 0…S` affects the first
//! `n_k = round(k·N/S)` cells of the ordering (`N = g²`); insertion step `k` puts back all but the
//! last `n_{S−k}` cells (the same count whenever `n_k + n_{S−k} = N`, as on 14×14 with 4 or 8
//! steps). `f` is the calibrated probability of the explained class (softmax of logits / T, the
//! number the viewer shows):
//!
//! ```text
//! deletion   d_k = f(x with the first n_k cells replaced by the baseline)    d_0 = f(x), d_S = f(blur)
//! insertion  i_k = f(blur with the first N − n_{S−k} cells put back from x)  i_0 = f(blur), i_S = f(x)
//! AOPC       = 1/S · Σ_{k=0..S−1} (d_0 − d_k)        (Samek et al. 2017, eq. 12, with L = S − 1)
//! deletion AUC  = Σ_{k=1..S} (d_{k−1} + d_k) / (2S)     (trapezoid on x = k/S; lower is better)
//! insertion AUC = Σ_{k=1..S} (i_{k−1} + i_k) / (2S)     (higher is better)
//! ```
//!
//! **Why AOPC stops at L = S − 1.** Samek et al. average the MoRF curve over its first `L`
//! perturbation steps and perturb only part of the image (100 regions of 9×9 pixels in their
//! experiments; Quantus' `RegionPerturbation` also stops after 100 regions by default): the fully
//! perturbed image is not among them. Here the last step is the whole blurred film, which
//! every ordering (map or random) reaches alike: the term `d_0 − d_S` says nothing about the
//! ordering and would only pull every ratio towards 1, the more so the fewer the steps. The curves
//! and both areas (RISE) still run over the whole range.
//!
//! **Reference.** `K` orderings drawn uniformly at random (seeded, seed + j for the j-th) give the
//! same curves for a map that knows nothing; `random_aopc` is their mean AOPC and
//! `ratio = AOPC(map) / random_aopc` (undefined when `random_aopc ≤ 1e-6`: deleting at random
//! does not move the prediction, so there is nothing to beat). The random reference does not
//! depend on the map, so one reference is shared by all maps of a study.
//!
//! **Cost.** Insertion along an ordering `π` blurs exactly the cells that deletion along the
//! reversed ordering `π̄` blurs at step `S − k`, so `i_k(π) = d_{S−k}(π̄)`: every perturbed image is
//! a deletion image. Each map costs `2(S − 1)` images (its ordering and the reversal); a random
//! ordering `S − 1`, because the reversal of a uniformly random ordering is itself uniformly
//! random, so the reference's insertion curves are its deletion curves read backwards (orderings
//! `π̄_j`). With the endpoints, `2 + (2M + K)(S − 1)` images in batches: 29 for three maps at the
//! defaults (it was `2 + 2(M + K)(S − 1)` = 86 with 8 steps before these two savings).
//!
//! Checked by `tests/trust.rs`: AOPC and both areas against hand-computed values; on a logistic
//! "network" whose relevant pixels are known by construction, the true map beats random while a
//! shuffled map does not; insertion images are the reversed orderings' deletion images and both
//! insertion curves (map and reference) equal a direct evaluation.

use candle_core::{Tensor, D};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::{Control, ExplainError, Grid};
use crate::model::preprocess::input_tensor;
use crate::model::Classifier;

/// What to compute; `Default` is what the viewer and `analyze` use.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FaithfulnessOptions {
    /// Cells per side of the perturbation grid.
    pub grid: usize,
    /// Steps `S` of each curve.
    pub steps: usize,
    /// Random orderings `K` of the reference.
    pub random_orderings: usize,
    pub seed: u64,
    /// σ of the blurred baseline, in model-input pixels.
    pub blur_sigma: f32,
    /// Images per forward pass.
    pub batch: usize,
    /// Also compute the insertion curve (doubles the cost).
    pub insertion: bool,
}

impl Default for FaithfulnessOptions {
    fn default() -> Self {
        Self {
            grid: 14,
            steps: 4,
            random_orderings: 3,
            seed: 0,
            blur_sigma: 8.0,
            batch: 8,
            insertion: true,
        }
    }
}

impl FaithfulnessOptions {
    pub fn with_grid(mut self, g: usize) -> Self {
        self.grid = g.max(1);
        self
    }
    pub fn with_steps(mut self, s: usize) -> Self {
        self.steps = s.max(1);
        self
    }
    pub fn with_random_orderings(mut self, k: usize) -> Self {
        self.random_orderings = k.max(1);
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_blur_sigma(mut self, sigma: f32) -> Self {
        self.blur_sigma = sigma.max(0.0);
        self
    }
    pub fn with_batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }
    pub fn with_insertion(mut self, on: bool) -> Self {
        self.insertion = on;
        self
    }

    /// How the baseline and grid are described in reports, plots and the viewer (the same words
    /// as [`Faithfulness::describe`] gives for a result computed with these options).
    pub fn describe(&self) -> String {
        describe(
            self.grid,
            self.steps,
            &baseline_name(self.blur_sigma),
            self.random_orderings,
        )
    }
}

/// The `baseline` field of a result (a report key's value, so kept as it is).
fn baseline_name(blur_sigma: f32) -> String {
    format!("gaussian blur sigma {blur_sigma} px")
}

fn describe(grid: usize, steps: usize, baseline: &str, random_orderings: usize) -> String {
    format!(
        "{grid}×{grid} grid, {steps} steps, baseline: {baseline}, {random_orderings} random orderings"
    )
}

/// The probability of the explained class for a batch of gray model-size images in [0, 1].
pub trait Scorer {
    fn probabilities(&self, images: &[Grid]) -> Result<Vec<f32>, ExplainError>;
}

/// The real classifier: calibrated softmax probability of `target`.
pub struct ModelScorer<'a> {
    pub model: &'a Classifier,
    pub target: usize,
}

impl Scorer for ModelScorer<'_> {
    fn probabilities(&self, images: &[Grid]) -> Result<Vec<f32>, ExplainError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.model.config.input;
        let tensors = images
            .iter()
            .map(|g| input_tensor(g, spec, &self.model.device))
            .collect::<candle_core::Result<Vec<Tensor>>>()?;
        let batch = Tensor::cat(&tensors, 0)?;
        let logits = self.model.logits(&batch)?;
        let t = self.model.config.temperature as f64;
        let probs = candle_nn::ops::softmax(&(logits / t)?, D::Minus1)?;
        Ok(probs
            .narrow(1, self.target, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}

/// One ordering's curves and their summaries.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Curves {
    /// `d_0 … d_S`.
    pub deletion: Vec<f32>,
    /// `i_0 … i_S`; empty when insertion was not computed.
    pub insertion: Vec<f32>,
    pub aopc: f32,
    pub deletion_auc: f32,
    pub insertion_auc: Option<f32>,
}

impl Curves {
    pub fn new(deletion: Vec<f32>, insertion: Vec<f32>) -> Self {
        Self {
            aopc: aopc(&deletion),
            deletion_auc: trapezoid_area(&deletion),
            insertion_auc: (!insertion.is_empty()).then(|| trapezoid_area(&insertion)),
            deletion,
            insertion,
        }
    }
}

/// The random reference: mean curves over `K` orderings, and each ordering's AOPC.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RandomReference {
    pub mean: Curves,
    pub aopcs: Vec<f32>,
}

impl RandomReference {
    /// Mean AOPC over the random orderings (the AOPC of the mean curve, as AOPC is linear).
    pub fn aopc(&self) -> f32 {
        self.mean.aopc
    }
}

/// Below this mean random AOPC (a drop of one percentage point) the summary line calls the ratio
/// unstable.
pub const SMALL_AOPC: f32 = 0.01;

/// One map's curves against the shared random reference.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MapFaithfulness {
    pub curves: Curves,
    pub random_aopc: f32,
    /// `AOPC(map) / mean AOPC(random)`; `None` when the reference AOPC is ≤ 1e-6.
    pub ratio: Option<f32>,
}

impl MapFaithfulness {
    pub fn new(curves: Curves, random: &RandomReference) -> Self {
        let random_aopc = random.aopc();
        Self {
            ratio: (random_aopc > 1e-6).then(|| curves.aopc / random_aopc),
            curves,
            random_aopc,
        }
    }

    /// "Grad-CAM: deletion AOPC 0.41, 4.8× random".
    pub fn summary(&self, method: &str) -> String {
        match self.ratio {
            // A ratio of two tiny numbers says little: on a confident film neither ordering moves
            // the probability, and "7.5× random" would overstate a 0.02 drop against 0.003.
            Some(r) if self.random_aopc < SMALL_AOPC => format!(
                "{method}: deletion AOPC {:.2}, {r:.1}× random, but random deletion barely moves \
                 the prediction (AOPC {:.3}): the ratio is unstable",
                self.curves.aopc, self.random_aopc
            ),
            Some(r) => format!(
                "{method}: deletion AOPC {:.2}, {r:.1}× random",
                self.curves.aopc
            ),
            None => format!(
                "{method}: deletion AOPC {:.2}; random deletion does not move the prediction (AOPC {:.3})",
                self.curves.aopc, self.random_aopc
            ),
        }
    }
}

/// `1/S Σ_{k=0..S−1} (d_0 − d_k)`: the curve up to, not including, the fully perturbed image
/// (module doc); a single point gives 0.
pub fn aopc(deletion: &[f32]) -> f32 {
    let Some(first) = deletion.first() else {
        return f32::NAN;
    };
    let used = &deletion[..deletion.len().saturating_sub(1).max(1)];
    used.iter().map(|d| first - d).sum::<f32>() / used.len() as f32
}

/// Trapezoid area under `y_0 … y_S` on equally spaced x in [0, 1].
pub fn trapezoid_area(curve: &[f32]) -> f32 {
    if curve.len() < 2 {
        return f32::NAN;
    }
    let s = (curve.len() - 1) as f32;
    curve.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f32>() / s
}

/// Cells of a `g×g` grid in decreasing order of the map's value on that grid.
pub fn morf_ordering(map: &Grid, g: usize) -> Vec<usize> {
    let on_grid = map.resized(g, g);
    let mut order: Vec<usize> = (0..g * g).collect();
    // NaN sorts last so a broken map cannot claim the top cells.
    order.sort_by(|&a, &b| {
        let (va, vb) = (on_grid.values[a], on_grid.values[b]);
        match (va.is_nan(), vb.is_nan()) {
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => vb.total_cmp(&va),
        }
        .then(a.cmp(&b))
    });
    order
}

/// A uniformly random ordering of `n` cells from a seeded generator.
pub fn random_ordering(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    order
}

/// Separable Gaussian blur with clamped edges (radius ⌈3σ⌉); σ = 0 returns a copy.
pub fn gaussian_blur(image: &Grid, sigma: f32) -> Grid {
    if sigma <= 0.0 {
        return image.clone();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let (w, h) = (image.width as isize, image.height as isize);
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0f32;
                for (j, k) in kernel.iter().enumerate() {
                    let o = j as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x + o).clamp(0, w - 1), y)
                    } else {
                        (x, (y + o).clamp(0, h - 1))
                    };
                    acc += k * src[(sy * w + sx) as usize];
                }
                out[(y * w + x) as usize] = acc;
            }
        }
        out
    };
    let horizontal = pass(&image.values, true);
    Grid::new(image.width, image.height, pass(&horizontal, false))
}

/// Index of the grid cell of every pixel of a `width×height` image on a `g×g` grid.
fn cell_of_pixel(width: usize, height: usize, g: usize) -> Vec<usize> {
    let mut cells = Vec::with_capacity(width * height);
    for y in 0..height {
        let cy = (y * g / height.max(1)).min(g - 1);
        for x in 0..width {
            let cx = (x * g / width.max(1)).min(g - 1);
            cells.push(cy * g + cx);
        }
    }
    cells
}

/// Cells removed after step `k` of `steps` out of `n`.
pub fn cells_at_step(k: usize, steps: usize, n: usize) -> usize {
    ((k as f64 * n as f64 / steps.max(1) as f64).round() as usize).min(n)
}

/// Cells put back after step `k` of an insertion curve: all but the last `n_{S−k}` cells of the
/// ordering. Equal to [`cells_at_step`] whenever `n_k + n_{S−k} = N` (e.g. 14×14 with 4 or 8
/// steps); defined this way so that insertion along an ordering is exactly deletion along the
/// reversed ordering read backwards, for any grid.
pub fn cells_inserted_at_step(k: usize, steps: usize, n: usize) -> usize {
    n - cells_at_step(steps.max(1) - k.min(steps.max(1)), steps, n)
}

/// The model input after deletion step `k` along `ordering`: its first `n_k` cells taken from
/// `baseline`, the rest from `image`. Out-of-grid indices are ignored.
pub fn deletion_image(
    image: &Grid,
    baseline: &Grid,
    ordering: &[usize],
    k: usize,
    opts: &FaithfulnessOptions,
) -> Grid {
    let g = opts.grid.max(1);
    let n = g * g;
    let blurred = first_cells(ordering, cells_at_step(k, opts.steps, n), n);
    compose(image, baseline, &blurred, g)
}

/// The model input after insertion step `k` along `ordering`: the blurred baseline with the
/// ordering's first [`cells_inserted_at_step`] cells put back from `image`.
pub fn insertion_image(
    image: &Grid,
    baseline: &Grid,
    ordering: &[usize],
    k: usize,
    opts: &FaithfulnessOptions,
) -> Grid {
    let g = opts.grid.max(1);
    let n = g * g;
    let kept = first_cells(ordering, cells_inserted_at_step(k, opts.steps, n), n);
    let blurred: Vec<bool> = kept.iter().map(|k| !k).collect();
    compose(image, baseline, &blurred, g)
}

/// Marks the first `count` cells of `ordering` on a grid of `n` cells (indices ≥ `n` ignored).
fn first_cells(ordering: &[usize], count: usize, n: usize) -> Vec<bool> {
    let mut marked = vec![false; n];
    for &c in ordering.iter().take(count) {
        if c < n {
            marked[c] = true;
        }
    }
    marked
}

/// `image` with the cells marked in `from_baseline` replaced by the same cells of `baseline`.
fn compose(image: &Grid, baseline: &Grid, from_baseline: &[bool], g: usize) -> Grid {
    let cells = cell_of_pixel(image.width, image.height, g);
    let values = cells
        .iter()
        .enumerate()
        .map(|(p, &c)| {
            if from_baseline[c] {
                baseline.values[p]
            } else {
                image.values[p]
            }
        })
        .collect();
    Grid::new(image.width, image.height, values)
}

/// The deletion curve `d_0 … d_S` of each ordering: the two shared endpoints `f(image)` and
/// `f(baseline)` and every interior point go through the scorer in one queue of batches;
/// `image` and the baseline are gray model inputs in [0, 1]. Progress counts images.
fn deletion_curves(
    scorer: &dyn Scorer,
    image: &Grid,
    baseline: &Grid,
    orderings: &[Vec<usize>],
    opts: &FaithfulnessOptions,
    control: &Control,
) -> Result<Vec<Vec<f32>>, ExplainError> {
    let steps = opts.steps.max(1);
    // `None`: an endpoint (0: the image, 1: the baseline).
    let mut jobs: Vec<(Option<usize>, usize)> = vec![(None, 0), (None, 1)];
    jobs.extend((0..orderings.len()).flat_map(|o| (1..steps).map(move |k| (Some(o), k))));
    let total = jobs.len();
    (control.progress)(0, total);
    let mut values = Vec::with_capacity(total);
    for chunk in jobs.chunks(opts.batch.max(1)) {
        control.check()?;
        let images: Vec<Grid> = chunk
            .iter()
            .map(|&(o, k)| match o {
                Some(o) => deletion_image(image, baseline, &orderings[o], k, opts),
                None if k == 0 => image.clone(),
                None => baseline.clone(),
            })
            .collect();
        values.extend(scorer.probabilities(&images)?);
        (control.progress)(values.len(), total);
    }
    let (f_image, f_baseline) = (values[0], values[1]);
    let interior = steps - 1;
    Ok((0..orderings.len())
        .map(|o| {
            let mut curve = Vec::with_capacity(steps + 1);
            curve.push(f_image);
            curve.extend_from_slice(&values[2 + o * interior..2 + (o + 1) * interior]);
            curve.push(f_baseline);
            curve
        })
        .collect())
}

fn reversed(ordering: &[usize]) -> Vec<usize> {
    ordering.iter().rev().copied().collect()
}

fn backwards(curve: &[f32]) -> Vec<f32> {
    curve.iter().rev().copied().collect()
}

/// Faithfulness of several maps of one image against one shared random reference.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Faithfulness {
    pub grid: usize,
    pub steps: usize,
    pub random_orderings: usize,
    pub seed: u64,
    pub baseline: String,
    pub random: RandomReference,
    /// One entry per map, in the order given.
    pub maps: Vec<MapFaithfulness>,
}

impl Faithfulness {
    /// The settings this result was computed with, in the words of
    /// [`FaithfulnessOptions::describe`].
    pub fn describe(&self) -> String {
        describe(self.grid, self.steps, &self.baseline, self.random_orderings)
    }
}

/// Scores `maps` (any grid; higher = more relevant) on `image` (gray model input in [0, 1]).
pub fn faithfulness(
    scorer: &dyn Scorer,
    image: &Grid,
    maps: &[&Grid],
    opts: &FaithfulnessOptions,
    control: &Control,
) -> Result<Faithfulness, ExplainError> {
    let g = opts.grid.max(1);
    let k = opts.random_orderings.max(1);
    let baseline = gaussian_blur(image, opts.blur_sigma);
    let map_orderings: Vec<Vec<usize>> = maps.iter().map(|m| morf_ordering(m, g)).collect();
    let random_orderings: Vec<Vec<usize>> = (0..k)
        .map(|j| random_ordering(g * g, opts.seed.wrapping_add(j as u64)))
        .collect();
    // One batch queue: the maps' deletion orderings, their reversals (insertion), then the random
    // orderings. A random ordering's reversal is as random as it is, so the reference's insertion
    // curves are its deletion curves read backwards (orderings π̄_j): no extra images.
    let mut all = map_orderings.clone();
    if opts.insertion {
        all.extend(map_orderings.iter().map(|o| reversed(o)));
    }
    all.extend(random_orderings);
    let d = deletion_curves(scorer, image, &baseline, &all, opts, control)?;
    let m = maps.len();
    let map_curves: Vec<Curves> = (0..m)
        .map(|i| {
            let insertion = if opts.insertion {
                backwards(&d[m + i])
            } else {
                Vec::new()
            };
            Curves::new(d[i].clone(), insertion)
        })
        .collect();
    let random_deletion = &d[all.len() - k..];
    let random_curves: Vec<Curves> = random_deletion
        .iter()
        .map(|c| {
            let insertion = if opts.insertion {
                backwards(c)
            } else {
                Vec::new()
            };
            Curves::new(c.clone(), insertion)
        })
        .collect();
    let random = RandomReference {
        mean: Curves::new(
            mean_curve(random_curves.iter().map(|c| &c.deletion)),
            mean_curve(random_curves.iter().map(|c| &c.insertion)),
        ),
        aopcs: random_curves.iter().map(|c| c.aopc).collect(),
    };
    Ok(Faithfulness {
        grid: g,
        steps: opts.steps.max(1),
        random_orderings: k,
        seed: opts.seed,
        baseline: baseline_name(opts.blur_sigma),
        maps: map_curves
            .iter()
            .map(|c| MapFaithfulness::new(c.clone(), &random))
            .collect(),
        random,
    })
}

/// Point-wise mean of equally long curves (empty when there are none or they are empty).
pub fn mean_curve<'a>(curves: impl Iterator<Item = &'a Vec<f32>>) -> Vec<f32> {
    let mut sum: Vec<f64> = Vec::new();
    let mut count = 0usize;
    for c in curves {
        if sum.is_empty() {
            sum = vec![0.0; c.len()];
        }
        for (s, v) in sum.iter_mut().zip(c) {
            *s += *v as f64;
        }
        count += 1;
    }
    sum.iter()
        .map(|s| (*s / count.max(1) as f64) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_at_step_covers_all_cells() {
        assert_eq!(cells_at_step(0, 8, 196), 0);
        assert_eq!(cells_at_step(1, 8, 196), 25); // 24.5 rounds away from zero
        assert_eq!(cells_at_step(8, 8, 196), 196);
    }

    #[test]
    fn summary_calls_a_ratio_of_tiny_aopcs_unstable() {
        let curves = Curves::new(vec![0.98, 0.97, 0.95, 0.94, 0.9], Vec::new());
        let reference = |d: Vec<f32>| RandomReference {
            mean: Curves::new(d, Vec::new()),
            aopcs: Vec::new(),
        };
        // Map AOPC (0 + 0.01 + 0.03 + 0.04) / 4 = 0.02; random (0 + 0 + 0.01 + 0.01) / 4 = 0.005:
        // ratio 4, unstable.
        let tiny = MapFaithfulness::new(
            curves.clone(),
            &reference(vec![0.98, 0.98, 0.97, 0.97, 0.9]),
        );
        assert_eq!(
            tiny.summary("Grad-CAM"),
            "Grad-CAM: deletion AOPC 0.02, 4.0× random, but random deletion barely moves the \
             prediction (AOPC 0.005): the ratio is unstable"
        );
        // Random (0 + 0 + 0 + 0.08) / 4 = 0.02: ratio 1, stated plainly.
        let clear = MapFaithfulness::new(curves, &reference(vec![0.98, 0.98, 0.98, 0.9, 0.9]));
        assert_eq!(
            clear.summary("Grad-CAM"),
            "Grad-CAM: deletion AOPC 0.02, 1.0× random"
        );
    }

    #[test]
    fn blur_keeps_a_constant_image() {
        let g = Grid::new(9, 7, vec![0.25; 63]);
        let b = gaussian_blur(&g, 2.0);
        assert!(b.values.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn morf_orders_by_decreasing_value_nan_last() {
        let g = Grid::new(2, 2, vec![0.1, f32::NAN, 0.9, 0.5]);
        assert_eq!(morf_ordering(&g, 2), vec![2, 3, 0, 1]);
    }
}
