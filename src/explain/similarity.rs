//! How alike two maps are: Spearman rank correlation and SSIM, as used by the sanity checks of
//! Adebayo et al. (NeurIPS 2018) and the agreement between methods.
//!
//! **Spearman ρ** is the Pearson correlation of the ranks, ties given their average rank
//! (`scipy.stats.spearmanr`'s convention). Undefined (`NaN`) when either map is constant.
//!
//! **SSIM** (Wang et al., 2004) exactly as `skimage.metrics.structural_similarity` computes it with
//! its defaults (`win_size = 7`, `K1 = 0.01`, `K2 = 0.03`, uniform window, sample covariance
//! `N/(N−1)`) and a given `data_range` `L`:
//!
//! ```text
//! μx, μy = window means; vx, vy, vxy = window (co)variances × N/(N−1)
//! S = (2μxμy + C1)(2vxy + C2) / ((μx² + μy² + C1)(vx + vy + C2)),  C1 = (K1 L)², C2 = (K2 L)²
//! SSIM = mean of S over the pixels at least 3 from every edge
//! ```
//!
//! Only windows that lie wholly inside the image are averaged, so skimage's reflect padding never
//! enters the result. Both are checked against scipy/scikit-image values committed in
//! `tests/fixtures/trust/similarity.json`.

use super::Grid;

/// Average ranks (1-based), ties sharing the mean of their positions.
pub fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = rank;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

/// Spearman's ρ of two equally long value lists.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    pearson(&ranks(a), &ranks(b))
}

/// SSIM with skimage's defaults (7×7 uniform window); `NaN` for images under 7×7 or of
/// different sizes.
pub fn ssim(a: &Grid, b: &Grid, data_range: f64) -> f64 {
    const WIN: usize = 7;
    if a.width != b.width || a.height != b.height || a.width < WIN || a.height < WIN {
        return f64::NAN;
    }
    let (w, h) = (a.width, a.height);
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    let pad = (WIN - 1) / 2;
    let mut total = 0.0;
    let mut count = 0usize;
    for cy in pad..h - pad {
        for cx in pad..w - pad {
            let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in cy - pad..=cy + pad {
                for x in cx - pad..=cx + pad {
                    let (u, v) = (a.values[y * w + x] as f64, b.values[y * w + x] as f64);
                    sx += u;
                    sy += v;
                    sxx += u * u;
                    syy += v * v;
                    sxy += u * v;
                }
            }
            let (ux, uy) = (sx / np, sy / np);
            let vx = cov_norm * (sxx / np - ux * ux);
            let vy = cov_norm * (syy / np - uy * uy);
            let vxy = cov_norm * (sxy / np - ux * uy);
            let s = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2))
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
            total += s;
            count += 1;
        }
    }
    total / count as f64
}

/// The map scaled to [0, 1] by its minimum and maximum (all zeros when constant).
pub fn min_max_normalised(map: &Grid) -> Grid {
    let (lo, hi) = (map.min(), map.max());
    let span = hi - lo;
    let values = map
        .values
        .iter()
        .map(|v| {
            if span > 0.0 && span.is_finite() {
                (v - lo) / span
            } else {
                0.0
            }
        })
        .collect();
    Grid::new(map.width, map.height, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_of_a_monotone_transform_is_one() {
        let a = [0.1, 0.5, 0.2, 0.9, 0.3];
        let b: Vec<f32> = a.iter().map(|v: &f32| v.powi(3) + 2.0).collect();
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        let c: Vec<f32> = a.iter().map(|v| -v).collect();
        assert!((spearman(&a, &c) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ssim_of_an_image_with_itself_is_one() {
        let g = Grid::new(9, 8, (0..72).map(|i| (i % 7) as f32 / 7.0).collect());
        assert!((ssim(&g, &g, 1.0) - 1.0).abs() < 1e-12);
    }
}
