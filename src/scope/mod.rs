//! Scope guard: is this film inside what the model knows (a frontal chest radiograph of a child
//! aged 1–5, the Kermany 2018 training population)? Every analysis answers this first.
//!
//! # Two halves, cheap first
//!
//! 1. **Header rules** ([`header`]): Modality not CR/DX, BodyPartExamined present and not chest,
//!    ViewPosition lateral or oblique, age ≥ 18 y (PatientAge `nnnY/M/W/D` or a bare number;
//!    else PatientBirthDate vs StudyDate) → out; 6–17 y → warning only; colour images
//!    (PhotometricInterpretation RGB/YBR/PALETTE COLOR, or a raster image whose Hasler–Süsstrunk
//!    colourfulness exceeds 15, or over 1 % of whose pixels are strongly coloured: a heat map or
//!    markings drawn over a grey film) → out. A field that is absent or unreadable never counts
//!    against a film.
//! 2. **Pixel detector** ([`detector`]): a Mahalanobis distance of pooled intermediate network
//!    features to the training films, computed on the activations the prediction's forward pass
//!    produced anyway (no extra pass).
//!
//! # The pixel score
//!
//! The shipped statistics have seven "depths" `l`, two views of the ResNet stage outputs:
//! * `layer1` … `layer4`: per channel, the spatial mean and the spatial standard deviation of the
//!   activation (`D_l = 2·C_l` values: 512, 1024, 2048, 4096);
//! * `layer2.regions4`, `layer3.regions4`, `layer4.regions3`: per channel, the mean over each cell
//!   of a 4×4 (layer2: 28², layer3: 14²) or 3×3 (layer4: 7²) grid of regions (`D_l = C_l·R²`:
//!   8192, 16384, 18432). The pooled statistics say *what* the network sees, the regions also
//!   *where*: the layout of a film (how much of it the thorax fills, what lies above and below).
//!
//! The training films give a mean `μ_l` and a
//! per-feature scale `s_l`; in standardised coordinates `u = (x − μ)/s` the covariance is
//! modelled as probabilistic PCA (Tipping & Bishop 1999): the top `k` principal directions `v_j`
//! with their variances `λ_j`, and one variance `σ²` for everything else. The squared Mahalanobis
//! distance under that covariance is
//!
//! ```text
//! d²_l = Σ_j (v_jᵀu)² / λ_j  +  (‖u‖² − Σ_j (v_jᵀu)²) / σ²
//! ```
//!
//! and the score is the mean over depths of `d²_l / D_l` (≈ 1 on average for a training film;
//! dividing by `D_l` puts depths of different width on one scale). A film is out of scope when
//! the score exceeds the threshold shipped with the statistics, set on the validation split (the
//! rule is written into the file's metadata, see `cxr-viewer scope-fit`).
//!
//! Why this shape:
//! * Lee et al. 2018 (*A simple unified framework for detecting out-of-distribution samples and
//!   adversarial attacks*, NeurIPS): class-conditional Gaussians on intermediate features with a
//!   Mahalanobis distance, combined over layers.
//! * Çallı et al. 2019 (*FRODO: Free rejection of out-of-distribution samples: application to
//!   chest x-ray analysis*, arXiv:1907.01253): the same on a chest-X-ray ResNet, pooled features
//!   at several depths averaged; AUC ≈ 0.99 for wrong anatomy or orientation.
//! * Anthony & Kamnitsas 2023 (*On the use of Mahalanobis distance for out-of-distribution
//!   detection with neural networks for medical imaging*, UNSURE): the best depth depends on the
//!   kind of outlier, so several depths are combined rather than one chosen.
//! * A full covariance of 4096 features from a few thousand films is singular and would take
//!   64 MB (18432 region features: 1.3 GB); the PPCA form needs `k·D` numbers per depth and
//!   stays invertible. The spatial standard
//!   deviation is pooled as well as the mean because texture and contrast (bone density, film
//!   size of the thorax) separate adult films from children's more than average activation does.
//! * The region depths were added after the pooled ones missed the adult target: on the same
//!   fit they raise adult frontal films from 65 % to about 80 % flagged and lateral films from
//!   95 % to 100 % (README, scope guard), with the same equal-weight mean over depths and the same
//!   threshold rule, nothing weighted on the out-of-scope images.
//!
//! Checked against: hand-computed eigenpairs and a synthetic subspace (unit tests in
//! [`detector`]), committed in-scope and out-of-scope images (`tests/scope.rs`), and the
//! `cxr-viewer scope-report` table on `../shared/ood` (README).

pub mod detector;
pub mod header;

use serde::{Deserialize, Serialize};

pub use detector::ScopeStats;
use header::Finding;

/// What an out-of-scope verdict means for the answer, as the viewer's banner and the HTML
/// report say it under the reasons.
pub const OUTSIDE_SCOPE_MEANING: &str = "The model was trained only on frontal chest films of \
children aged 1–5; its answer for this image is not meaningful.";

/// The scope verdict shown with every result (`report.json` key `scope`). Read back by the
/// viewer's prediction cache (`ui::prediction_cache`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ScopeCheck {
    /// `false` when any header rule or the pixel detector says the film is outside the model's
    /// scope. The overlay gating reads this.
    pub in_scope: bool,
    /// Pixel score (larger = further from the training films); `None` when the model ships no
    /// scope statistics.
    pub score: Option<f32>,
    /// The shipped threshold on `score`.
    pub threshold: Option<f32>,
    /// Why the film is out of scope, as short phrases; empty when in scope.
    pub reasons: Vec<String>,
    /// Inside the scope, but worth saying (e.g. an older child).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whether the header gave an age (PatientAge, or the birth and study dates). Without one
    /// only the pixel detector can catch an adult film, and it misses some (README: about one in
    /// five of the adult films tested), so an in-scope verdict says so ([`Self::pixels_only_note`]).
    pub age_known: bool,
}

impl ScopeCheck {
    /// The header rules alone (before any pixel has been looked at).
    pub fn from_header(meta: &crate::io::StudyMetadata) -> Self {
        let mut check = ScopeCheck {
            in_scope: true,
            ..Default::default()
        };
        for f in header::header_findings(meta) {
            match f {
                Finding::Out(r) => check.reasons.push(r),
                Finding::Warn(w) => check.warnings.push(w),
            }
        }
        check.in_scope = check.reasons.is_empty();
        check.age_known = header::age_of(meta).is_some();
        check
    }

    /// For an in-scope verdict that rests on the pixels alone (no age in the header): the one
    /// limit of the guard a reader must know, since adult frontal films are the outliers it
    /// misses most. `None` when out of scope, when the age is known, or when nothing looked at
    /// the pixels.
    pub fn pixels_only_note(&self) -> Option<&'static str> {
        (self.in_scope && !self.age_known && self.score.is_some()).then_some(
            "No age in the file: the scope was checked from the image alone, which misses some \
             adult chest films. Confirm the patient is a young child.",
        )
    }

    /// Adds the pixel score; a score above the threshold makes the film out of scope.
    pub fn with_pixel_score(mut self, score: f32, threshold: f32) -> Self {
        self.score = Some(score);
        self.threshold = Some(threshold);
        if !score.is_finite() || score > threshold {
            // One decimal as a rule, more when one would print "2.3 > 2.3".
            let places = (1..=4)
                .find(|&p| format!("{score:.p$}") != format!("{threshold:.p$}"))
                .unwrap_or(4);
            self.reasons.push(format!(
                "image unlike the training films (score {score:.places$} > {threshold:.places$})"
            ));
            self.in_scope = false;
        }
        self
    }

    /// One line for summaries: "OUT OF SCOPE: adult (PatientAge 058Y); …"; in scope but with
    /// warnings (an older child, a raw detector image), "WARNING: …", which the viewer shows too;
    /// `None` when in scope without warnings.
    pub fn summary(&self) -> Option<String> {
        if !self.in_scope {
            Some(format!("OUT OF SCOPE: {}", self.reasons.join("; ")))
        } else if !self.warnings.is_empty() {
            Some(format!("WARNING: {}", self.warnings.join("; ")))
        } else {
            None
        }
    }

    /// A short headline for the GUI banner: the first reason, phrased for a reader.
    pub fn headline(&self) -> String {
        match self.reasons.first() {
            Some(r) => format!("Outside the model's scope: {r}"),
            None => "Inside the model's scope".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::StudyMetadata;

    #[test]
    fn header_and_pixels_combine() {
        let meta = StudyMetadata {
            patient_age: Some("058Y".into()),
            ..Default::default()
        };
        let c = ScopeCheck::from_header(&meta).with_pixel_score(41.25, 18.0);
        assert!(!c.in_scope);
        assert_eq!(
            c.reasons,
            [
                "adult (PatientAge 058Y)",
                "image unlike the training films (score 41.2 > 18.0)"
            ]
        );
        assert_eq!(
            c.summary().unwrap(),
            "OUT OF SCOPE: adult (PatientAge 058Y); image unlike the training films (score 41.2 > 18.0)"
        );
        // Just above the threshold: as many decimals as it takes to show the difference.
        let close = ScopeCheck::default().with_pixel_score(2.3184, 2.3152);
        assert_eq!(
            close.reasons,
            ["image unlike the training films (score 2.318 > 2.315)"]
        );
        let ok = ScopeCheck::from_header(&StudyMetadata::default()).with_pixel_score(1.0, 18.0);
        assert!(ok.in_scope && ok.reasons.is_empty() && ok.summary().is_none());
        // No age anywhere: the in-scope verdict says it rests on the pixels alone.
        assert!(!ok.age_known);
        assert!(ok.pixels_only_note().unwrap().contains("image alone"));
        // Not before the pixels were scored, not when out of scope, not with an age.
        assert!(ScopeCheck::from_header(&StudyMetadata::default())
            .pixels_only_note()
            .is_none());
        assert!(c.pixels_only_note().is_none());
        let child = StudyMetadata {
            patient_age: Some("003Y".into()),
            ..Default::default()
        };
        let child = ScopeCheck::from_header(&child).with_pixel_score(1.0, 18.0);
        assert!(child.in_scope && child.age_known && child.pixels_only_note().is_none());
        // In scope with a warning: the summary line carries it (the CLI printed nothing).
        let older = StudyMetadata {
            patient_age: Some("012Y".into()),
            ..Default::default()
        };
        let older = ScopeCheck::from_header(&older).with_pixel_score(1.0, 18.0);
        assert!(older.in_scope);
        assert_eq!(
            older.summary().unwrap(),
            "WARNING: older than the training population of 1–5 year olds (PatientAge 012Y)"
        );
        let nan =
            ScopeCheck::from_header(&StudyMetadata::default()).with_pixel_score(f32::NAN, 1.0);
        assert!(!nan.in_scope);
    }
}
