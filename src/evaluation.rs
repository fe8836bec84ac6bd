//! Binary classification metrics for `cxr-viewer eval`.
//!
//! All metrics treat the model's positive class (pneumonia) as positive and use the calibrated
//! probability of that class with the model's decision threshold. AUC is the Mann–Whitney
//! statistic (ties count ½), so it equals the area under the empirical ROC curve.
//!
//! Two calibration errors, both with 15 equal-width bins weighted by each bin's share of cases:
//! `ece` is the usual top-label ECE (Guo et al., 2017): confidence max(p, 1 − p) of the argmax
//! prediction against its accuracy — comparable with the literature and the training recipe.
//! `ece_positive_class` bins P(pneumonia) itself against the observed pneumonia rate (what the
//! reliability diagram shows); it is stricter, because over- and under-confidence on the two sides
//! of ½ cannot cancel in one bin.
//!
//! Every headline number comes with a 95 % confidence interval (`ci95`), because the data sets
//! people evaluate on are small (the official Kermany val set has 16 films, its test set 624):
//! Wilson score intervals for accuracy, sensitivity and specificity (well behaved near 0 and 1,
//! where the normal approximation breaks), and a stratified percentile bootstrap for the AUC
//! (positives and negatives resampled separately, so every resample has both classes; seeded, so
//! the interval is reproducible).

use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One evaluated case.
#[derive(Clone, Debug)]
pub struct Case {
    pub file: String,
    /// Ground truth: true = positive class.
    pub positive: bool,
    pub probability: f32,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub precision: f64,
    pub f1: f64,
    pub auc: f64,
    pub kappa: f64,
    pub mcc: f64,
    pub ece: f64,
    pub ece_positive_class: f64,
    pub brier: f64,
    pub threshold: f32,
    pub confusion: Confusion,
    pub ci95: Intervals,
}

/// 95 % confidence intervals `[low, high]`; `None` where the metric is undefined (no positives,
/// no negatives).
#[derive(Clone, Debug, Serialize)]
pub struct Intervals {
    pub accuracy: Option<[f64; 2]>,
    pub sensitivity: Option<[f64; 2]>,
    pub specificity: Option<[f64; 2]>,
    pub auc: Option<[f64; 2]>,
    pub auc_bootstrap_resamples: usize,
}

/// Resamples of the AUC bootstrap: enough for stable 2.5/97.5 percentiles, about 0.2 s for a few
/// hundred cases.
pub const AUC_BOOTSTRAP_RESAMPLES: usize = 2000;
const Z_95: f64 = 1.959_963_984_540_054;

pub const ECE_BINS: usize = 15;

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

pub fn confusion(cases: &[Case], threshold: f32) -> Confusion {
    let mut c = Confusion::default();
    for case in cases {
        match (case.positive, case.probability >= threshold) {
            (true, true) => c.tp += 1,
            (false, true) => c.fp += 1,
            (false, false) => c.tn += 1,
            (true, false) => c.fn_ += 1,
        }
    }
    c
}

/// Mann–Whitney AUC: P(score of a random positive > score of a random negative), ties ½.
pub fn auc(cases: &[Case]) -> f64 {
    let mut scored: Vec<(f32, bool)> = cases.iter().map(|c| (c.probability, c.positive)).collect();
    mann_whitney_auc(&mut scored)
}

/// The AUC of `(score, positive)` pairs from the rank sum of the positives; sorts in place.
fn mann_whitney_auc(scored: &mut [(f32, bool)]) -> f64 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        // Average rank (1-based) of the tied block.
        let rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += rank * scored[i..j].iter().filter(|c| c.1).count() as f64;
        i = j;
    }
    let pos = scored.iter().filter(|c| c.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Wilson score interval of a proportion `successes / n` at the 95 % level.
pub fn wilson_interval(successes: usize, n: usize) -> Option<[f64; 2]> {
    if n == 0 || successes > n {
        return None;
    }
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

/// Stratified percentile bootstrap of the AUC: `resamples` draws of as many positives and as many
/// negatives as there are, with replacement, from each class; the 2.5th and 97.5th percentiles.
pub fn auc_bootstrap_interval(cases: &[Case], resamples: usize, seed: u64) -> Option<[f64; 2]> {
    let (positives, negatives): (Vec<&Case>, Vec<&Case>) = cases.iter().partition(|c| c.positive);
    if positives.is_empty() || negatives.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut scored = Vec::with_capacity(cases.len());
    let mut aucs: Vec<f64> = (0..resamples)
        .map(|_| {
            scored.clear();
            for class in [&positives, &negatives] {
                for _ in 0..class.len() {
                    let case = class[rng.random_range(0..class.len())];
                    scored.push((case.probability, case.positive));
                }
            }
            mann_whitney_auc(&mut scored)
        })
        .collect();
    aucs.sort_by(f64::total_cmp);
    let at = |q: f64| aucs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Some([at(0.025), at(0.975)])
}

/// ROC points (false-positive rate, true-positive rate) from the highest threshold down.
pub fn roc_curve(cases: &[Case]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<&Case> = cases.iter().collect();
    sorted.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    let pos = cases.iter().filter(|c| c.positive).count().max(1) as f64;
    let neg = (cases.len() - cases.iter().filter(|c| c.positive).count()).max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < sorted.len() {
        let p = sorted[i].probability;
        while i < sorted.len() && sorted[i].probability == p {
            if sorted[i].positive {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / neg, tp / pos));
    }
    points
}

/// Per bin of predicted probability: (mean predicted, observed positive rate, count).
pub fn reliability(cases: &[Case], bins: usize) -> Vec<(f64, f64, usize)> {
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for c in cases {
        let b = ((c.probability as f64 * bins as f64) as usize).min(bins - 1);
        acc[b].0 += c.probability as f64;
        acc[b].1 += if c.positive { 1.0 } else { 0.0 };
        acc[b].2 += 1;
    }
    acc.into_iter()
        .map(|(p, y, n)| {
            if n == 0 {
                (f64::NAN, f64::NAN, 0)
            } else {
                (p / n as f64, y / n as f64, n)
            }
        })
        .collect()
}

pub fn expected_calibration_error(cases: &[Case], bins: usize) -> f64 {
    let n = cases.len().max(1) as f64;
    reliability(cases, bins)
        .into_iter()
        .filter(|(_, _, count)| *count > 0)
        .map(|(p, y, count)| (count as f64 / n) * (p - y).abs())
        .sum()
}

/// Top-label ECE: confidence max(p, 1 − p) of the argmax prediction against its accuracy; bins
/// are (lo, hi] like the training recipe's.
pub fn top_label_calibration_error(cases: &[Case], bins: usize) -> f64 {
    let mut acc = vec![(0.0f64, 0.0f64, 0usize); bins];
    for c in cases {
        let p = c.probability as f64;
        let predicted_positive = p >= 0.5;
        let confidence = if predicted_positive { p } else { 1.0 - p };
        let correct = if predicted_positive == c.positive {
            1.0
        } else {
            0.0
        };
        let b = ((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        acc[b].0 += confidence;
        acc[b].1 += correct;
        acc[b].2 += 1;
    }
    let n = cases.len().max(1) as f64;
    acc.into_iter()
        .filter(|(_, _, count)| *count > 0)
        .map(|(conf, correct, count)| (count as f64 / n) * ((conf - correct) / count as f64).abs())
        .sum()
}

pub fn metrics(cases: &[Case], threshold: f32) -> Metrics {
    let c = confusion(cases, threshold);
    let n = cases.len();
    let accuracy = ratio(c.tp + c.tn, n);
    let sensitivity = ratio(c.tp, c.tp + c.fn_);
    let specificity = ratio(c.tn, c.tn + c.fp);
    let precision = ratio(c.tp, c.tp + c.fp);
    let f1 = 2.0 * precision * sensitivity / (precision + sensitivity);
    // Cohen's kappa: agreement beyond chance between prediction and truth.
    let nf = n as f64;
    let p_yes = ((c.tp + c.fp) as f64 / nf) * ((c.tp + c.fn_) as f64 / nf);
    let p_no = ((c.tn + c.fn_) as f64 / nf) * ((c.tn + c.fp) as f64 / nf);
    let chance = p_yes + p_no;
    let kappa = (accuracy - chance) / (1.0 - chance);
    let (tp, fp, tn, fn_) = (c.tp as f64, c.fp as f64, c.tn as f64, c.fn_ as f64);
    let mcc = (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    let brier = cases
        .iter()
        .map(|k| (k.probability as f64 - if k.positive { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / nf.max(1.0);
    Metrics {
        n,
        accuracy,
        sensitivity,
        specificity,
        precision,
        f1,
        auc: auc(cases),
        kappa,
        mcc,
        ece: top_label_calibration_error(cases, ECE_BINS),
        ece_positive_class: expected_calibration_error(cases, ECE_BINS),
        brier,
        threshold,
        confusion: c,
        ci95: Intervals {
            accuracy: wilson_interval(c.tp + c.tn, n),
            sensitivity: wilson_interval(c.tp, c.tp + c.fn_),
            specificity: wilson_interval(c.tn, c.tn + c.fp),
            auc: auc_bootstrap_interval(cases, AUC_BOOTSTRAP_RESAMPLES, 0),
            auc_bootstrap_resamples: AUC_BOOTSTRAP_RESAMPLES,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(v: &[(bool, f32)]) -> Vec<Case> {
        v.iter()
            .enumerate()
            .map(|(i, (p, s))| Case {
                file: format!("{i}"),
                positive: *p,
                probability: *s,
            })
            .collect()
    }

    #[test]
    fn auc_counts_ties_as_half_and_matches_the_roc_area() {
        let c = cases(&[
            (true, 0.9),
            (false, 0.8),
            (true, 0.7),
            (false, 0.3),
            (true, 0.3),
        ]);
        // Pairs (pos > neg): 0.9 beats both, 0.7 beats 0.3 only, 0.3 ties 0.3 → (2 + 1 + 0.5) / 6.
        assert!((auc(&c) - 3.5 / 6.0).abs() < 1e-12);
        let roc = roc_curve(&c);
        let trapezoid: f64 = roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((trapezoid - auc(&c)).abs() < 1e-12);
    }

    #[test]
    fn confusion_based_metrics_match_hand_computation() {
        // tp=3 fn=1 tn=4 fp=2 at threshold 0.5
        let c = cases(&[
            (true, 0.9),
            (true, 0.8),
            (true, 0.6),
            (true, 0.2),
            (false, 0.1),
            (false, 0.2),
            (false, 0.3),
            (false, 0.4),
            (false, 0.7),
            (false, 0.55),
        ]);
        let m = metrics(&c, 0.5);
        assert_eq!(
            m.confusion,
            Confusion {
                tp: 3,
                fp: 2,
                tn: 4,
                fn_: 1
            }
        );
        assert!((m.accuracy - 0.7).abs() < 1e-12);
        assert!((m.sensitivity - 0.75).abs() < 1e-12);
        assert!((m.specificity - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.precision - 0.6).abs() < 1e-12);
        // kappa: po=0.7, pe=0.5·0.4+0.5·0.6=0.5 → 0.4; MCC = (12−2)/√(5·4·6·5)
        assert!((m.kappa - 0.4).abs() < 1e-12);
        assert!((m.mcc - 10.0 / 600f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn wilson_interval_matches_closed_forms() {
        // 0 of n: [0, z²/n / (1 + z²/n)]; for n = 10 that is 0.27753.
        let [lo, hi] = wilson_interval(0, 10).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - 0.277_532).abs() < 1e-5, "{hi}");
        // ½ of 16 is symmetric around ½: ½ ± z/(1+z²/n)·√(1/4n + z²/4n²) = [0.28000, 0.72000].
        let [lo, hi] = wilson_interval(8, 16).unwrap();
        assert!(
            (lo - 0.28).abs() < 1e-4 && (hi - 0.72).abs() < 1e-4,
            "{lo} {hi}"
        );
        // n of n mirrors 0 of n.
        let [lo, hi] = wilson_interval(10, 10).unwrap();
        assert!((lo - (1.0 - 0.277_532)).abs() < 1e-5 && (hi - 1.0).abs() < 1e-12);
        assert_eq!(wilson_interval(0, 0), None);
    }

    #[test]
    fn auc_bootstrap_interval_brackets_the_auc_and_narrows_with_more_data() {
        // Overlapping classes: positives ~ i/40 + 0.3, negatives ~ i/40, 40 each.
        let small: Vec<(bool, f32)> = (0..40)
            .flat_map(|i| [(true, i as f32 / 40.0 + 0.3), (false, i as f32 / 40.0)])
            .collect();
        let big: Vec<(bool, f32)> = small
            .iter()
            .cycle()
            .take(small.len() * 16)
            .copied()
            .collect();
        let (small, big) = (cases(&small), cases(&big));
        let point = auc(&small);
        assert!((auc(&big) - point).abs() < 1e-12);
        let [lo, hi] = auc_bootstrap_interval(&small, 2000, 0).unwrap();
        assert!(lo < point && point < hi && hi <= 1.0, "{lo} {point} {hi}");
        let [blo, bhi] = auc_bootstrap_interval(&big, 2000, 0).unwrap();
        // 16× the cases: the interval is about 4× narrower.
        let ratio = (hi - lo) / (bhi - blo);
        assert!((3.0..5.5).contains(&ratio), "width ratio {ratio}");
        // Seeded: the same interval every time; another seed moves it only a little.
        assert_eq!(auc_bootstrap_interval(&small, 2000, 0), Some([lo, hi]));
        let [lo2, hi2] = auc_bootstrap_interval(&small, 2000, 1).unwrap();
        assert!((lo2 - lo).abs() < 0.02 && (hi2 - hi).abs() < 0.02);
        // Perfect separation stays at 1; one class only has no AUC.
        let separated = cases(&[(true, 0.9), (true, 0.8), (false, 0.2), (false, 0.1)]);
        assert_eq!(auc_bootstrap_interval(&separated, 100, 0), Some([1.0, 1.0]));
        assert_eq!(auc_bootstrap_interval(&cases(&[(true, 0.9)]), 100, 0), None);
    }

    #[test]
    fn perfectly_calibrated_bins_have_zero_ece() {
        let mut v = Vec::new();
        for i in 0..10 {
            v.push((i < 2, 0.2)); // 20 % positives at p = 0.2
            v.push((i < 8, 0.8));
        }
        assert!(expected_calibration_error(&cases(&v), 15) < 1e-7);
        let overconfident = cases(&[(false, 0.95), (true, 0.95)]);
        assert!((expected_calibration_error(&overconfident, 15) - 0.45).abs() < 1e-6);
        // Top-label: both predicted positive with confidence 0.95, half correct → |0.95 − 0.5|.
        assert!((top_label_calibration_error(&overconfident, 15) - 0.45).abs() < 1e-6);
        // A confident correct negative (p = 0.1 → confidence 0.9) counts like a positive at 0.9.
        let mirrored = cases(&[(false, 0.1), (true, 0.9)]);
        assert!((top_label_calibration_error(&mirrored, 15) - 0.1).abs() < 1e-6);
    }
}
