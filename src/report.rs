//! `report.json`: the machine-readable contract of `cxr-viewer analyze` (field names are relied on
//! by other tools; add fields, never rename). No patient identifiers unless explicitly asked.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::analysis::{uncertainty_flag, Analysis, Prediction, Timings};
use crate::explain::zones::{ZoneScore, ZONE_CONVENTION};
use crate::io::{Study, StudyMetadata, Window};
use crate::model::Classifier;

/// Zones as a JSON object keyed by zone name, in anatomical order.
#[derive(Clone, Debug)]
pub struct Zones(pub Vec<ZoneScore>);

impl Serialize for Zones {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for z in &self.0 {
            map.serialize_entry(z.name, &ZoneEntry(z))?;
        }
        map.end()
    }
}

struct ZoneEntry<'a>(&'a ZoneScore);

impl Serialize for ZoneEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("mean", &self.0.mean)?;
        map.serialize_entry("max", &self.0.max)?;
        map.serialize_entry("box_in_model", &self.0.box_in_model)?;
        map.serialize_entry("box_in_image", &self.0.box_in_image)?;
        map.end()
    }
}

#[derive(Serialize)]
pub struct Report {
    pub input: InputInfo,
    pub prediction: Prediction,
    /// Whether the film is inside the model's scope ([`crate::scope`]); read this before
    /// `prediction`.
    pub scope: crate::scope::ScopeCheck,
    pub uncertainty: UncertaintyReport,
    pub gradcam: GradCamReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ig: Option<IgReport>,
    pub zone_convention: &'static str,
    pub model: ModelInfo,
    pub device: String,
    pub timings_ms: Timings,
    /// Deletion/insertion faithfulness of each map ([`crate::trust::FaithfulnessReport`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faithfulness: Option<serde_json::Value>,
    /// Agreement between the maps ([`crate::trust::AgreementReport`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<serde_json::Value>,
    /// Model-randomisation sanity check, with `--sanity-check` ([`crate::trust::SanityReport`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity: Option<serde_json::Value>,
    /// Identifiers, only when the user asked for them (`--include-identifiers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<BTreeMap<String, String>>,
    /// The reviewer's note on the film: from the viewer's export, or `analyze --notes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewReport>,
}

#[derive(Serialize)]
pub struct InputInfo {
    /// File name only: directories may carry identifiers.
    pub file: String,
    pub width: usize,
    pub height: usize,
    pub window: Window,
    pub metadata: StudyMetadata,
    /// Model input grid `[height, width]`.
    pub model_input: [usize; 2],
}

#[derive(Serialize)]
pub struct UncertaintyReport {
    pub samples: usize,
    pub mean: f32,
    pub std: f32,
    pub interval: [f32; 2],
    pub entropy: f32,
    pub expected_entropy: f32,
    pub mutual_information: f32,
    pub class_mean: BTreeMap<String, f32>,
    /// Why this result deserves caution, if it does.
    pub warning: Option<String>,
    pub uncertain: bool,
    /// Zones of the per-cell standard deviation of the sampled Grad-CAMs.
    pub zones: Zones,
}

#[derive(Serialize)]
pub struct GradCamReport {
    pub target: String,
    pub target_index: usize,
    pub layer: &'static str,
    /// `[height, width]` of the raw map (`gradcam.npy`).
    pub grid: [usize; 2],
    pub max: f32,
    pub zones: Zones,
}

#[derive(Serialize)]
pub struct IgReport {
    pub target: String,
    /// The baseline the map starts from.
    pub baseline: crate::explain::integrated_gradients::Baseline,
    /// What `--ig-baseline` asked for: "auto" when `baseline` was chosen per film
    /// ([`crate::explain::integrated_gradients::IgBaseline::Auto`]), else `baseline` again.
    pub baseline_requested: &'static str,
    pub steps: usize,
    pub quadrature: &'static str,
    /// Σ attributions − (F(x) − F(x′)), F = target logit.
    pub delta: f32,
    pub relative_delta: f32,
    pub f_input: f32,
    pub f_baseline: f32,
    /// How the model reads the baseline image itself ([`crate::analysis::BaselineReading`]):
    /// its class, and the explained class's probability there.
    pub baseline_label: Option<String>,
    pub baseline_target_probability: Option<f32>,
    /// Set when the baseline is itself read as the explained class: the map then explains
    /// the film against an image the model already reads that way.
    pub warning: Option<String>,
    pub zones: Zones,
}

#[derive(Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub sha256: String,
    pub classes: Vec<String>,
    pub input_size: [usize; 2],
    pub threshold: f32,
    pub temperature: f32,
}

impl Report {
    pub fn new(
        study: &Study,
        analysis: &Analysis,
        model: &Classifier,
        include_identifiers: bool,
    ) -> Self {
        let cfg = &model.config;
        let class = |i: usize| cfg.classes.get(i).cloned().unwrap_or_default();
        let mc = &analysis.uncertainty;
        let warning = uncertainty_flag(mc, cfg.threshold, cfg.classes.len());
        let identifiers = include_identifiers.then(|| {
            let mut m = BTreeMap::new();
            if let Some(v) = &study.metadata.patient_name {
                m.insert("patient_name".into(), v.clone());
            }
            if let Some(v) = &study.metadata.patient_id {
                m.insert("patient_id".into(), v.clone());
            }
            m.insert("path".into(), study.source.display().to_string());
            m
        });
        Report {
            input: InputInfo {
                file: study
                    .source
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                width: study.width,
                height: study.height,
                window: study.default_window,
                metadata: study.metadata.clone(),
                model_input: [cfg.input.height, cfg.input.width],
            },
            prediction: analysis.prepared.prediction.clone(),
            scope: analysis.prepared.scope.clone(),
            uncertainty: UncertaintyReport {
                samples: mc.samples,
                mean: mc.mean,
                std: mc.std,
                interval: mc.interval,
                entropy: mc.entropy,
                expected_entropy: mc.expected_entropy,
                mutual_information: mc.mutual_information,
                class_mean: cfg
                    .classes
                    .iter()
                    .cloned()
                    .zip(mc.class_mean.iter().copied())
                    .collect(),
                uncertain: warning.is_some(),
                warning,
                zones: Zones(analysis.uncertainty_zones.clone()),
            },
            gradcam: GradCamReport {
                target: class(analysis.gradcam.target),
                target_index: analysis.gradcam.target,
                layer: "layer4",
                grid: [analysis.gradcam.map.height, analysis.gradcam.map.width],
                max: analysis.gradcam.map.max(),
                zones: Zones(analysis.gradcam_zones.clone()),
            },
            ig: analysis.ig.as_ref().map(|ig| {
                let reading = crate::analysis::baseline_reading(cfg, ig);
                IgReport {
                    target: class(ig.target),
                    baseline: ig.baseline,
                    baseline_requested: ig.requested().name(),
                    steps: ig.steps,
                    quadrature: ig.rule.name(),
                    delta: ig.delta,
                    relative_delta: ig.relative_delta(),
                    f_input: ig.f_input,
                    f_baseline: ig.f_baseline,
                    baseline_label: reading.as_ref().map(|r| r.label.clone()),
                    baseline_target_probability: reading.as_ref().map(|r| r.target_probability),
                    warning: reading
                        .as_ref()
                        .and_then(|r| crate::analysis::baseline_warning(ig, r)),
                    zones: Zones(analysis.ig_zones.clone().unwrap_or_default()),
                }
            }),
            zone_convention: ZONE_CONVENTION,
            model: ModelInfo {
                name: cfg.name.clone(),
                sha256: model.sha256.clone(),
                classes: cfg.classes.clone(),
                input_size: [cfg.input.height, cfg.input.width],
                threshold: cfg.threshold,
                temperature: cfg.temperature,
            },
            device: analysis.device.clone(),
            timings_ms: analysis.timings.clone(),
            faithfulness: analysis
                .trust
                .faithfulness
                .as_ref()
                .and_then(|f| serde_json::to_value(crate::trust::FaithfulnessReport(f)).ok()),
            agreement: analysis
                .trust
                .agreement
                .as_ref()
                .and_then(|a| serde_json::to_value(crate::trust::AgreementReport(a)).ok()),
            sanity: analysis
                .trust
                .sanity
                .as_ref()
                .and_then(|s| serde_json::to_value(crate::trust::SanityReport::new(s)).ok()),
            identifiers,
            review: None,
        }
    }

    /// With the reviewer's note, which report.html then shows from here (the page shows nothing
    /// the JSON lacks).
    pub fn with_review(mut self, review: Option<ReviewReport>) -> Self {
        self.review = review;
        self
    }
}

/// `review` in report.json: the reviewer's note as the note pane shows it, the outcome against
/// this report's answer, and the boxes scored on this report's maps. Vocabulary fields carry the
/// tokens of a notes export (`agreement`, `categories`, `zones`), so one parser reads both.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewReport {
    /// The key of the note (SOPInstanceUID, or `sha256:` of the file), as in a notes export.
    pub study_id: String,
    pub agreement: Option<crate::notes::Agreement>,
    /// A class name, as `prediction.label`: the reviewer's, else the folder's.
    pub ground_truth: Option<String>,
    pub ground_truth_source: Option<crate::notes::TruthSource>,
    /// TP, FP, TN or FN: `ground_truth` against `prediction.label` (report.html leaves it out
    /// outside the model's scope, where it would give the hidden answer away).
    pub outcome: Option<crate::notes::Outcome>,
    pub categories: std::collections::BTreeSet<crate::notes::ErrorCategory>,
    /// Ticked by the reviewer.
    pub zones: std::collections::BTreeSet<crate::notes::Zone>,
    /// Overlapped by the boxes and not ticked, as the note pane lists them.
    pub zones_from_boxes: std::collections::BTreeSet<crate::notes::Zone>,
    /// Opacity boxes in the film's pixels: `{x, y, width, height}`, top-left corner and size.
    pub boxes: Vec<crate::notes::ImageBox>,
    pub text: String,
    pub reviewer: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "rfc3339_millis")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Each map (`gradcam`, `ig`, `uncertainty`) against the boxes, as the viewer's results
    /// panel scores it (`pointing_hit`, `energy_in_boxes`, `iou`); `null`: the map was not
    /// computed. Empty without boxes.
    pub localisation:
        BTreeMap<crate::notes::Saliency, Option<crate::explain::localisation::Localisation>>,
    /// Chance for `localisation`'s `energy_in_boxes`: what a flat map puts in the boxes (the
    /// share of the model grid's cells they cover), as `eval --boxes` gives it; `null` without
    /// boxes.
    pub energy_in_boxes_uniform: Option<f64>,
}

fn rfc3339_millis<S: Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::notes::format_time(t))
}

impl ReviewReport {
    /// The note on an analysed film, with `folder_truth` (the label its class folder gives),
    /// its boxes scored on the analysis's maps at the model's input size, as the viewer's results
    /// panel scores them; `None` for a note with nothing of the reviewer's in it
    /// ([`crate::notes::Note::has_review`]).
    pub fn of_analysis(
        note: &crate::notes::Note,
        folder_truth: Option<crate::notes::Finding>,
        config: &crate::model::ModelConfig,
        analysis: &Analysis,
        image_size: (usize, usize),
    ) -> Option<Self> {
        use crate::notes::Saliency;
        let answer = crate::notes::Finding::of_prediction(&analysis.prepared.prediction);
        let mut review = Self::of_note(note, folder_truth, config, answer)?;
        if !note.boxes.is_empty() {
            let scores = crate::localisation_eval::score_maps(
                analysis,
                (config.input.width, config.input.height),
                image_size,
                &note.boxes,
                &crate::explain::localisation::LocalisationOptions::default(),
            );
            review.localisation = BTreeMap::from([
                (Saliency::GradCam, Some(scores.gradcam)),
                (Saliency::IntegratedGradients, scores.ig),
                (Saliency::Uncertainty, Some(scores.uncertainty)),
            ]);
            review.energy_in_boxes_uniform = scores.energy_in_boxes_uniform;
        }
        Some(review)
    }

    /// The note against the model's `answer`, without scoring its boxes.
    pub fn of_note(
        note: &crate::notes::Note,
        folder_truth: Option<crate::notes::Finding>,
        config: &crate::model::ModelConfig,
        answer: crate::notes::Finding,
    ) -> Option<Self> {
        if !note.has_review() {
            return None;
        }
        let truth = crate::notes::TruthSource::of(note.ground_truth, folder_truth);
        Some(ReviewReport {
            study_id: note.study.to_string(),
            agreement: note.agreement,
            ground_truth: truth.map(|(t, _)| crate::notes::class_name(config, t)),
            ground_truth_source: truth.map(|(_, source)| source),
            outcome: truth.map(|(t, _)| crate::notes::Outcome::of(t, answer)),
            categories: note.categories.clone(),
            zones: note.zones.clone(),
            zones_from_boxes: note.zones_from_boxes(),
            boxes: note.boxes.clone(),
            text: note.text.clone(),
            reviewer: note.reviewer.clone(),
            created_at: note.created_at,
            updated_at: note.updated_at,
            localisation: BTreeMap::new(),
            energy_in_boxes_uniform: None,
        })
    }
}
