//! The pixel half of the scope guard: a Mahalanobis distance between a film's pooled network
//! features and the training films', at several depths (see the maths in [`crate::scope`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::model::with_f32_values;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Format tag written into the statistics file; bump when the feature definition changes.
/// `/2` added the region depths (`layerN.regionsR`); `/1` files (pooled depths only) still load.
pub const FORMAT: &str = "cxr-viewer-scope/2";
const FORMATS_READ: [&str; 2] = ["cxr-viewer-scope/1", FORMAT];

/// Statistics of one depth (one ResNet stage).
#[derive(Clone, Debug)]
pub struct DepthStats {
    /// "layer1" … "layer4".
    pub name: String,
    /// Feature mean `μ` (length `D = 2·C`: spatial means, then spatial standard deviations).
    pub mean: Vec<f32>,
    /// Per-feature scale `s` (training standard deviation, floored).
    pub scale: Vec<f32>,
    /// Top-`k` principal directions of the standardised features, `k × D` row-major, orthonormal.
    pub components: Vec<f32>,
    /// Their variances `λ_j`.
    pub eigenvalues: Vec<f32>,
    /// Mean variance of the remaining `D − k` directions, `σ²`.
    pub residual_variance: f32,
}

impl DepthStats {
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `d²/D` for one feature vector: ≈ 1 on average for training films.
    pub fn distance(&self, x: &[f32]) -> f32 {
        let d = self.dim();
        let std: Vec<f32> = x
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((&v, &m), &s)| (v - m) / s)
            .collect();
        let total = dot(&std, &std);
        let mut explained = 0.0;
        let mut d2 = 0.0;
        for (row, &lambda) in self.components.chunks_exact(d).zip(&self.eigenvalues) {
            let z = dot(row, &std);
            explained += z * z;
            d2 += z * z / f64::from(lambda);
        }
        let residual = (total - explained).max(0.0);
        d2 += residual / f64::from(self.residual_variance);
        (d2 / d as f64) as f32
    }
}

/// `a·b` with eight f32 partial sums (vectorised; the region depths have up to 18,432 features ×
/// 32 directions, and the guard's budget is 5 ms), added up in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| f64::from(x * y))
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += xa[i] * xb[i];
        }
    }
    lanes.iter().map(|v| f64::from(*v)).sum::<f64>() + tail
}

/// The shipped statistics: one [`DepthStats`] per depth and the decision threshold on the score.
#[derive(Clone, Debug)]
pub struct ScopeStats {
    pub depths: Vec<DepthStats>,
    /// Films with a score above this are out of scope.
    pub threshold: f32,
    /// Provenance (model name, counts, threshold rule), written into the file's metadata.
    pub info: HashMap<String, String>,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot load scope statistics {path}: {reason}")]
pub struct ScopeStatsError {
    pub path: PathBuf,
    pub reason: String,
}

/// What one depth's feature vector is, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthKind {
    /// `layerN`: spatial mean and standard deviation of each channel of stage `N` (`2C` values).
    Pooled { stage: usize },
    /// `layerN.regionsR`: mean of each channel over each cell of an `R×R` grid of regions of stage
    /// `N` (`C·R²` values, region by region). Region `i` of `R` along a side of `h` covers rows
    /// `⌊i·h/R⌋ … ⌈(i+1)·h/R⌉ − 1`, as PyTorch's adaptive average pooling; it keeps where on the
    /// film things are, which the pooled statistics throw away.
    Regions { stage: usize, regions: usize },
}

impl DepthKind {
    pub fn parse(name: &str) -> Option<Self> {
        let (layer, rest) = match name.split_once('.') {
            Some((l, r)) => (l, Some(r)),
            None => (name, None),
        };
        let stage: usize = layer.strip_prefix("layer")?.parse().ok()?;
        if stage == 0 {
            return None;
        }
        match rest {
            None => Some(Self::Pooled { stage }),
            Some(r) => {
                let regions: usize = r.strip_prefix("regions")?.parse().ok()?;
                (regions > 0).then_some(Self::Regions { stage, regions })
            }
        }
    }

    fn stage(self) -> usize {
        match self {
            Self::Pooled { stage } | Self::Regions { stage, .. } => stage,
        }
    }
}

/// Spatial mean and standard deviation (population, `√max(E[x²] − E[x]², 0)`) of each channel,
/// means first, per sample. Plain loops over the activation's own buffer, like [`region_means`]: the
/// chain of small candle ops it replaces spiked to 5 ms right after a forward pass.
fn channel_mean_std(stage: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let (n, c, h, w) = stage.dims4()?;
    let count = (h * w) as f32;
    with_f32_values(stage, |values| {
        (0..n)
            .map(|sample| {
                let mut out = vec![0f32; 2 * c];
                for ch in 0..c {
                    let plane = &values[(sample * c + ch) * h * w..][..h * w];
                    let (sum, sq) = sum_and_squares(plane);
                    let mean = sum / count;
                    out[ch] = mean;
                    out[c + ch] = (sq / count - mean * mean).max(0.0).sqrt();
                }
                out
            })
            .collect()
    })
}

/// `(Σv, Σv²)` with eight partial sums each, so the loop vectorises.
fn sum_and_squares(values: &[f32]) -> (f32, f32) {
    let (mut sums, mut squares) = ([0f32; 8], [0f32; 8]);
    let chunks = values.chunks_exact(8);
    let (mut sum, mut sq) = chunks
        .remainder()
        .iter()
        .fold((0f32, 0f32), |(s, q), &v| (s + v, q + v * v));
    for chunk in chunks {
        for i in 0..8 {
            sums[i] += chunk[i];
            squares[i] += chunk[i] * chunk[i];
        }
    }
    sum += sums.iter().sum::<f32>();
    sq += squares.iter().sum::<f32>();
    (sum, sq)
}

/// Mean of each channel over each region of an `r×r` grid ([`DepthKind::Regions`]), region by
/// region, per sample. A plain loop over the activation's own buffer: candle's reductions over the 41
/// strided sub-views took ~10 ms, the scope guard's whole budget twice over.
fn region_means(stage: &Tensor, r: usize) -> candle_core::Result<Vec<Vec<f32>>> {
    let (n, c, h, w) = stage.dims4()?;
    let bounds = |i: usize, len: usize| (i * len / r, ((i + 1) * len).div_ceil(r));
    with_f32_values(stage, |values| {
        let mut out = vec![Vec::with_capacity(c * r * r); n];
        for (sample, features) in out.iter_mut().enumerate() {
            let mut sums = vec![0f32; c * r * r];
            for ch in 0..c {
                let plane = &values[(sample * c + ch) * h * w..][..h * w];
                for ry in 0..r {
                    let (y0, y1) = bounds(ry, h);
                    for rx in 0..r {
                        let (x0, x1) = bounds(rx, w);
                        let total: f32 = (y0..y1)
                            .map(|y| plane[y * w + x0..y * w + x1].iter().sum::<f32>())
                            .sum();
                        sums[(ry * r + rx) * c + ch] = total / ((y1 - y0) * (x1 - x0)) as f32;
                    }
                }
            }
            *features = sums;
        }
        out
    })
}

/// The features of each named depth (see [`DepthKind`]) for a batch of stage activations
/// (`stages[0]` = layer1). Returns `[sample][depth] → features`; an unknown name or a stage the
/// network does not have is an error.
pub fn stage_features(
    stages: &[Tensor],
    names: &[String],
) -> candle_core::Result<Vec<Vec<Vec<f32>>>> {
    let mut per_depth = Vec::with_capacity(names.len());
    for name in names {
        let kind = DepthKind::parse(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("unknown scope depth '{name}'")))?;
        let stage = stages.get(kind.stage() - 1).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "scope depth '{name}': the network has no such stage"
            ))
        })?;
        per_depth.push(match kind {
            DepthKind::Pooled { .. } => channel_mean_std(stage)?,
            DepthKind::Regions { regions, .. } => region_means(stage, regions)?,
        });
    }
    let n = per_depth.first().map_or(0, Vec::len);
    Ok((0..n)
        .map(|i| per_depth.iter().map(|d| d[i].clone()).collect())
        .collect())
}

impl ScopeStats {
    /// The depths' names, in the order [`Self::score`] expects their features.
    pub fn depth_names(&self) -> Vec<String> {
        self.depths.iter().map(|d| d.name.clone()).collect()
    }

    /// Mean over depths of `d²_l / D_l`; larger = further from the training films.
    pub fn score(&self, features: &[Vec<f32>]) -> f32 {
        self.score_of(&self.per_depth(features))
    }

    /// [`Self::score`] from distances [`Self::per_depth`] already computed.
    pub fn score_of(&self, per_depth: &[f32]) -> f32 {
        per_depth.iter().sum::<f32>() / self.depths.len().max(1) as f32
    }

    pub fn per_depth(&self, features: &[Vec<f32>]) -> Vec<f32> {
        self.depths
            .iter()
            .zip(features)
            .map(|(s, x)| {
                if x.len() == s.dim() {
                    s.distance(x)
                } else {
                    f32::NAN
                }
            })
            .collect()
    }

    pub fn load(path: &Path) -> Result<Self, ScopeStatsError> {
        let err = |reason: String| ScopeStatsError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
        let info: HashMap<String, String> = meta.metadata().clone().unwrap_or_default();
        if !info
            .get("format")
            .is_some_and(|f| FORMATS_READ.contains(&f.as_str()))
        {
            return Err(err(format!("not a {FORMAT} file")));
        }
        let get = |name: &str| -> Result<(Vec<f32>, Vec<usize>), ScopeStatsError> {
            let t = st.tensor(name).map_err(|e| err(format!("{name}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(err(format!("{name}: expected F32")));
            }
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok((v, t.shape().to_vec()))
        };
        let names: Vec<String> = info
            .get("depths")
            .ok_or_else(|| err("no 'depths' in the metadata".into()))?
            .split(',')
            .map(str::to_string)
            .collect();
        let mut depths = Vec::new();
        for name in names {
            if DepthKind::parse(&name).is_none() {
                return Err(err(format!("unknown depth '{name}'")));
            }
            let (mean, _) = get(&format!("{name}.mean"))?;
            let (scale, _) = get(&format!("{name}.scale"))?;
            let (components, shape) = get(&format!("{name}.components"))?;
            let (eigenvalues, _) = get(&format!("{name}.eigenvalues"))?;
            let (residual, _) = get(&format!("{name}.residual_variance"))?;
            let d = mean.len();
            let ok = scale.len() == d
                && shape.len() == 2
                && shape[1] == d
                && shape[0] == eigenvalues.len()
                && residual.len() == 1
                && eigenvalues
                    .iter()
                    .chain(&scale)
                    .chain(&residual)
                    .all(|v| *v > 0.0);
            if !ok {
                return Err(err(format!("{name}: inconsistent shapes or values")));
            }
            depths.push(DepthStats {
                name,
                mean,
                scale,
                components,
                eigenvalues,
                residual_variance: residual[0],
            });
        }
        let threshold: f32 = info
            .get("threshold")
            .and_then(|t| t.parse().ok())
            .filter(|t: &f32| t.is_finite())
            .ok_or_else(|| err("no numeric 'threshold' in the metadata".into()))?;
        Ok(Self {
            depths,
            threshold,
            info,
            path: path.to_path_buf(),
        })
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for s in &self.depths {
            let d = s.dim();
            let k = s.eigenvalues.len();
            tensors.push((format!("{}.mean", s.name), vec![d], bytes(&s.mean)));
            tensors.push((format!("{}.scale", s.name), vec![d], bytes(&s.scale)));
            tensors.push((
                format!("{}.components", s.name),
                vec![k, d],
                bytes(&s.components),
            ));
            tensors.push((
                format!("{}.eigenvalues", s.name),
                vec![k],
                bytes(&s.eigenvalues),
            ));
            tensors.push((
                format!("{}.residual_variance", s.name),
                vec![1],
                bytes(&[s.residual_variance]),
            ));
        }
        let mut info = self.info.clone();
        info.insert("format".into(), FORMAT.into());
        info.insert("threshold".into(), format!("{}", self.threshold));
        info.insert(
            "depths".into(),
            self.depths
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, shape, data)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let out = safetensors::tensor::serialize(views, Some(info))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        crate::atomic_file::write_atomic(path, &out)
    }
}

/// Fits one depth: standardise each feature (`s = max(σ, 0.1·median σ)`, so channels that never
/// fire in training do not divide by ~0), then the top `k` principal directions of the
/// standardised features by randomised subspace iteration (Halko, Martinsson & Tropp 2011,
/// algorithm 4.4, 8 power iterations, 10 extra directions) and a Rayleigh–Ritz step solved with
/// cyclic Jacobi; `σ²` is the mean variance left over.
pub fn fit_depth(
    name: &str,
    rows: &[Vec<f32>],
    k: usize,
    seed: u64,
) -> candle_core::Result<DepthStats> {
    let n = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    if n < 2 || d == 0 {
        candle_core::bail!("need at least two feature vectors to fit {name}");
    }
    let k = k.min(d).min(n - 1);
    let mut mean = vec![0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0f64; d];
    for r in rows {
        for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let mut sd: Vec<f64> = var.iter().map(|v| (v / (n - 1) as f64).sqrt()).collect();
    let mut sorted = sd.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = (0.1 * sorted[d / 2]).max(1e-6);
    sd.iter_mut().for_each(|s| *s = s.max(floor));
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.iter()
                .zip(&mean)
                .zip(&sd)
                .map(|((&v, m), s)| ((f64::from(v) - m) / s) as f32)
        })
        .collect();
    let trace: f64 = x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n as f64;
    let x = Tensor::from_vec(x, (n, d), &Device::Cpu)?;
    let m = (k + 10).min(d);
    let mut rng = StdRng::seed_from_u64(seed);
    let q0: Vec<f32> = (0..d * m).map(|_| rng.random::<f32>() - 0.5).collect();
    let mut q = orthonormal_columns(Tensor::from_vec(q0, (d, m), &Device::Cpu)?)?;
    for _ in 0..8 {
        let y = x.matmul(&q)?;
        q = orthonormal_columns(x.t()?.matmul(&y)?)?;
    }
    let y = x.matmul(&q)?; // n × m
    let b: Vec<Vec<f32>> = (y.t()?.matmul(&y)? / n as f64)?.to_vec2()?;
    let b: Vec<Vec<f64>> = b
        .iter()
        .map(|r| r.iter().map(|v| f64::from(*v)).collect())
        .collect();
    let (values, vectors) = jacobi_eigen(b);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| values[j].total_cmp(&values[i]));
    let order = &order[..k];
    let w: Vec<f32> = (0..m)
        .flat_map(|r| order.iter().map(move |&c| (r, c)))
        .map(|(r, c)| vectors[r][c] as f32)
        .collect();
    let w = Tensor::from_vec(w, (m, k), &Device::Cpu)?;
    let components = q.matmul(&w)?.t()?.contiguous()?; // k × d
    let eigenvalues: Vec<f64> = order.iter().map(|&i| values[i].max(1e-6)).collect();
    let left = (trace - eigenvalues.iter().sum::<f64>()).max(1e-6 * trace);
    let residual_variance = (left / (d - k).max(1) as f64).max(1e-6);
    Ok(DepthStats {
        name: name.to_string(),
        mean: mean.iter().map(|v| *v as f32).collect(),
        scale: sd.iter().map(|v| *v as f32).collect(),
        components: components.flatten_all()?.to_vec1()?,
        eigenvalues: eigenvalues.iter().map(|v| *v as f32).collect(),
        residual_variance: residual_variance as f32,
    })
}

/// Modified Gram–Schmidt on the columns of `a` (`d × m`), in f64.
fn orthonormal_columns(a: Tensor) -> candle_core::Result<Tensor> {
    let (d, m) = a.dims2()?;
    let cols: Vec<Vec<f32>> = a.t()?.contiguous()?.to_vec2()?;
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(m);
    for c in cols {
        let mut v: Vec<f64> = c.iter().map(|x| f64::from(*x)).collect();
        for _ in 0..2 {
            for u in &out {
                let dot: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(x, y)| *x -= dot * y);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-12 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        out.push(v);
    }
    let flat: Vec<f32> = out.iter().flatten().map(|v| *v as f32).collect();
    Tensor::from_vec(flat, (m, d), &Device::Cpu)?
        .t()?
        .contiguous()
}

/// Eigenvalues and eigenvectors (columns) of a small symmetric matrix by cyclic Jacobi rotations.
// Index loops: each rotation reads and writes two rows (or columns) of the same matrix at once.
#[allow(clippy::needless_range_loop)]
pub fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let scale: f64 = (0..n).map(|i| a[i][i] * a[i][i]).sum::<f64>().max(1e-300);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

/// The `q`-quantile (0..1) of `values` by linear interpolation between order statistics (numpy's
/// default), ignoring NaN.
pub fn quantile(values: &[f32], q: f64) -> Option<f32> {
    let mut v: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| f64::from(*x))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some((v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)) as f32)
}

/// AUROC of `positives` (out of scope) against `negatives` (in scope) with ties counted as half:
/// the Mann–Whitney U statistic divided by `n₊·n₋`.
pub fn auroc(negatives: &[f32], positives: &[f32]) -> Option<f64> {
    if negatives.is_empty() || positives.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for &p in positives {
        for &n in negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (negatives.len() * positives.len()) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_matches_a_hand_computed_2x2() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with vectors (1, −1)/√2 and (1, 1)/√2.
        let (vals, vecs) = jacobi_eigen(vec![vec![2.0, 1.0], vec![1.0, 2.0]]);
        let mut pairs: Vec<(f64, [f64; 2])> = vals
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, [vecs[0][i], vecs[1][i]]))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!((pairs[0].0 - 1.0).abs() < 1e-12 && (pairs[1].0 - 3.0).abs() < 1e-12);
        let v = pairs[1].1;
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
    }

    #[test]
    fn quantile_and_auroc_match_hand_values() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.99), Some(4.96));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 2.0]), Some(0.875));
    }

    /// Data on a known 2-D plane in 6-D plus small isotropic noise: the fit recovers the two
    /// variances, the residual variance, and the distance equals the hand formula.
    #[test]
    fn fit_recovers_a_known_subspace() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut gauss = || {
            // Box–Muller.
            let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        };
        let rows: Vec<Vec<f32>> = (0..4000)
            .map(|_| {
                let (a, b) = (3.0 * gauss(), 2.0 * gauss());
                let noise: Vec<f32> = (0..4).map(|_| 0.1 * gauss()).collect();
                vec![
                    a + noise[0],
                    a + noise[1],
                    b + noise[2],
                    b + noise[3],
                    gauss(),
                    gauss(),
                ]
            })
            .collect();
        let s = fit_depth("t", &rows, 2, 1).unwrap();
        // Standardised: the first two features are ~perfectly correlated, so one direction
        // carries variance ≈ 2 (both pairs), leaving ≈ 0 and 1 + 1 for the noise-only features.
        assert!((s.eigenvalues[0] - 2.0).abs() < 0.15, "{:?}", s.eigenvalues);
        assert!((s.eigenvalues[1] - 2.0).abs() < 0.15, "{:?}", s.eigenvalues);
        // Remaining 4 directions: two of variance ≈ 1 (noise-only features), two ≈ 0.001.
        assert!(
            (s.residual_variance - 0.5).abs() < 0.05,
            "{}",
            s.residual_variance
        );
        // The distance of the mean is 0; a point far along a residual direction is far.
        assert!(s.distance(&s.mean.clone()) < 1e-6);
        let mut far = s.mean.clone();
        far[4] += 10.0 * s.scale[4];
        let expected = 100.0 / s.residual_variance / 6.0;
        assert!((s.distance(&far) - expected).abs() < 0.01 * expected);
    }

    #[test]
    fn save_and_load_round_trip() {
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| (0..5).map(|j| ((i * 7 + j * 3) % 11) as f32).collect())
            .collect();
        let depth = fit_depth("layer1", &rows, 2, 3).unwrap();
        let stats = ScopeStats {
            depths: vec![depth],
            threshold: 1.5,
            info: HashMap::from([("model".to_string(), "m".to_string())]),
            path: PathBuf::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        stats.save(&path).unwrap();
        let back = ScopeStats::load(&path).unwrap();
        assert_eq!(back.threshold, 1.5);
        assert_eq!(back.depths[0].components, stats.depths[0].components);
        assert_eq!(back.info["model"], "m");
        let x = &rows[3];
        assert_eq!(
            back.score(std::slice::from_ref(x)),
            stats.score(std::slice::from_ref(x))
        );
        std::fs::write(&path, b"nonsense").unwrap();
        let e = ScopeStats::load(&path).unwrap_err().to_string();
        assert!(e.starts_with("cannot load scope statistics"), "{e}");
        // A depth whose features this build cannot compute is refused by name.
        let mut odd = stats.clone();
        odd.depths[0].name = "layer1.median".into();
        odd.save(&path).unwrap();
        let e = ScopeStats::load(&path).unwrap_err().to_string();
        assert!(e.ends_with("unknown depth 'layer1.median'"), "{e}");
    }

    #[test]
    fn depth_names_parse() {
        assert_eq!(
            DepthKind::parse("layer3"),
            Some(DepthKind::Pooled { stage: 3 })
        );
        assert_eq!(
            DepthKind::parse("layer4.regions3"),
            Some(DepthKind::Regions {
                stage: 4,
                regions: 3
            })
        );
        for bad in [
            "layer0",
            "conv1",
            "layer2.regions0",
            "layer2.foo",
            "layer",
            "",
        ] {
            assert_eq!(DepthKind::parse(bad), None, "{bad}");
        }
    }

    /// Region means against hand values (PyTorch's `adaptive_avg_pool2d` gives the same on a 3×3
    /// input pooled to 2×2: regions overlap in the middle row and column), pooled mean/std against
    /// hand values too, and an unknown stage is an error.
    #[test]
    fn stage_features_match_hand_values() {
        // One sample, one channel, 3×3 values 0…8.
        let x = Tensor::arange(0f32, 9.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 3))
            .unwrap();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = stage_features(
            std::slice::from_ref(&x),
            &names(&["layer1.regions2", "layer1"]),
        )
        .unwrap();
        // Rows/cols of region 0: 0…1, region 1: 1…2. (0+1+3+4)/4 = 2, (1+2+4+5)/4 = 3, …
        assert_eq!(f[0][0], vec![2.0, 3.0, 5.0, 6.0]);
        // Mean 4; population std √(60/9).
        assert_eq!(f[0][1][0], 4.0);
        assert!((f[0][1][1] - (60f32 / 9.0).sqrt()).abs() < 1e-5);
        // More regions than rows: every region still covers at least one row.
        let g = stage_features(std::slice::from_ref(&x), &names(&["layer1.regions4"])).unwrap();
        assert_eq!(g[0][0].len(), 16);
        assert!(g[0][0].iter().all(|v| v.is_finite()));
        let e = stage_features(std::slice::from_ref(&x), &names(&["layer2"])).unwrap_err();
        assert!(e.to_string().contains("no such stage"), "{e}");
    }
}
