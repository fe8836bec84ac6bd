//! How far each map can be trusted, for one analysed study: faithfulness (deletion/insertion
//! against random orderings, [`crate::explain::faithfulness`]), agreement between the methods
//! ([`crate::explain::agreement`]), the model-randomisation sanity check
//! ([`crate::explain::sanity`]), and whether the overlays should be drawn dimmed (gating).
//!
//! This is the analysis-level glue: it takes the maps an [`crate::analysis::Analysis`] already has,
//! runs the checks and turns them into the `report.json` sections `faithfulness`, `agreement` and
//! `sanity`. The maths lives in the explain modules.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::analysis::{AnalysisError, Prepared};
use crate::explain::agreement::{agreement, Agreement, Method};
use crate::explain::faithfulness::{
    faithfulness, Faithfulness, FaithfulnessOptions, MapFaithfulness, ModelScorer,
};
use crate::explain::integrated_gradients::IgOptions;
use crate::explain::sanity::{sanity_check, MethodSanity, Sanity, SanityOptions};
use crate::explain::{Control, Grid};
use crate::model::Classifier;

/// The checks of one study; each is `None` until computed.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub faithfulness: Option<StudyFaithfulness>,
    pub agreement: Option<Agreement>,
    pub sanity: Option<Sanity>,
}

/// Faithfulness of the study's maps, with the method of each entry of `result.maps`.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyFaithfulness {
    pub methods: Vec<Method>,
    pub result: Faithfulness,
}

impl StudyFaithfulness {
    pub fn get(&self, method: Method) -> Option<&MapFaithfulness> {
        self.methods
            .iter()
            .position(|m| *m == method)
            .and_then(|i| self.result.maps.get(i))
    }
}

/// The maps of one study, as the checks see them.
pub struct StudyMaps<'a> {
    pub gradcam: &'a Grid,
    /// Signed IG on the model input grid, if computed.
    pub ig: Option<&'a Grid>,
    /// Mean of the MC-dropout Grad-CAMs.
    pub uncertainty: &'a Grid,
}

impl<'a> StudyMaps<'a> {
    /// In report order: Grad-CAM, IG (if any), MC-mean Grad-CAM.
    pub fn list(&self) -> Vec<(Method, &'a Grid)> {
        let mut out = vec![(Method::GradCam, self.gradcam)];
        if let Some(ig) = self.ig {
            out.push((Method::Ig, ig));
        }
        out.push((Method::Uncertainty, self.uncertainty));
        out
    }
}

/// Deletion/insertion curves of every map against one shared random reference. IG is ranked by
/// its positive part (evidence for the class), as in the agreement.
pub fn study_faithfulness(
    model: &Classifier,
    prepared: &Prepared,
    target: usize,
    maps: &StudyMaps,
    opts: &FaithfulnessOptions,
    control: &Control,
) -> Result<StudyFaithfulness, AnalysisError> {
    let list = maps.list();
    let ig_positive = maps.ig.map(|ig| {
        Grid::new(
            ig.width,
            ig.height,
            ig.values.iter().map(|v| v.max(0.0)).collect(),
        )
    });
    let grids: Vec<&Grid> = list
        .iter()
        .map(|(m, g)| match (m, &ig_positive) {
            (Method::Ig, Some(p)) => p,
            _ => *g,
        })
        .collect();
    let scorer = ModelScorer { model, target };
    let result = faithfulness(&scorer, &prepared.gray, &grids, opts, control)?;
    Ok(StudyFaithfulness {
        methods: list.iter().map(|(m, _)| *m).collect(),
        result,
    })
}

/// Agreement of the study's maps on the faithfulness grid (14×14 by default).
pub fn study_agreement(model: &Classifier, maps: &StudyMaps, grid: usize) -> Agreement {
    let spec = &model.config.input;
    agreement(&maps.list(), grid, (spec.width, spec.height))
}

/// The cascading randomisation check; IG is recomputed only when the study has an IG map.
pub fn study_sanity(
    model: &Classifier,
    prepared: &Prepared,
    target: usize,
    maps: &StudyMaps,
    ig: Option<IgOptions>,
    seed: u64,
    control: &Control,
) -> Result<Sanity, AnalysisError> {
    let ig = ig.filter(|_| maps.ig.is_some());
    let opts = SanityOptions::new(ig).with_seed(seed);
    Ok(sanity_check(
        model,
        &prepared.input,
        target,
        maps.gradcam,
        maps.ig,
        &opts,
        control,
    )?)
}

// ---- gating ----------------------------------------------------------------------------------

/// Opacity multiplier of a gated (dimmed) overlay.
pub const GATED_OPACITY: f32 = 0.3;

/// Whether overlays are drawn dimmed, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub reasons: Vec<String>,
}

impl Gate {
    /// "dimmed: uncertain (…); out of scope (…)".
    pub fn line(&self) -> String {
        format!("dimmed: {}", self.reasons.join("; "))
    }

    /// The reasons without their details ("dimmed: uncertain; out of scope"), for a toolbar
    /// that has room for one short line; [`Self::line`] goes in the hover text.
    pub fn short_line(&self) -> String {
        let short: Vec<String> = self
            .reasons
            .iter()
            .map(|r| r.split(" (").next().unwrap_or(r).to_lowercase())
            .collect();
        format!("dimmed: {}", short.join("; "))
    }
}

/// The gate for a list of reasons (e.g. "uncertain: …", "out of scope: …"): dimmed when there is
/// any reason and gating is on. Callers add reasons; this decides nothing else.
pub fn overlay_gate(reasons: Vec<String>, gating_enabled: bool) -> Option<Gate> {
    (gating_enabled && !reasons.is_empty()).then_some(Gate { reasons })
}

/// Why a study's overlays are dimmed: its uncertainty flag ([`crate::analysis::uncertainty_flag`])
/// and its scope verdict. The viewer's canvas and export and `analyze`'s overlays all ask this.
pub fn gate_reasons(
    uncertain: Option<String>,
    scope: Option<&crate::scope::ScopeCheck>,
) -> Vec<String> {
    let out_of_scope = scope
        .filter(|s| !s.in_scope)
        .map(|s| match s.reasons.first() {
            Some(r) => format!("out of scope ({r})"),
            None => "out of scope".to_string(),
        });
    uncertain_reason(uncertain)
        .into_iter()
        .chain(out_of_scope)
        .collect()
}

/// The reason the uncertainty flag gives, phrased for the gate.
pub fn uncertain_reason(flag: Option<String>) -> Option<String> {
    flag.map(|why| format!("UNCERTAIN ({why})"))
}

/// Opacity actually used for an overlay under `gate`.
pub fn gated_opacity(opacity: f32, gate: Option<&Gate>) -> f32 {
    if gate.is_some() {
        opacity * GATED_OPACITY
    } else {
        opacity
    }
}

// ---- report sections -------------------------------------------------------------------------

/// `faithfulness.{gradcam,ig,uncertainty}.{aopc,random_aopc,ratio,deletion_auc,insertion_auc}`,
/// the curves, and how they were made.
pub struct FaithfulnessReport<'a>(pub &'a StudyFaithfulness);

struct MapEntry<'a>(&'a MapFaithfulness);

impl Serialize for MapEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("aopc", &m.curves.aopc)?;
        map.serialize_entry("random_aopc", &m.random_aopc)?;
        map.serialize_entry("ratio", &m.ratio)?;
        map.serialize_entry("deletion_auc", &m.curves.deletion_auc)?;
        map.serialize_entry("insertion_auc", &m.curves.insertion_auc)?;
        map.serialize_entry("deletion_curve", &m.curves.deletion)?;
        map.serialize_entry("insertion_curve", &m.curves.insertion)?;
        map.end()
    }
}

impl Serialize for FaithfulnessReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = &self.0.result;
        let mut map = s.serialize_map(None)?;
        for (method, entry) in self.0.methods.iter().zip(&f.maps) {
            map.serialize_entry(method.key(), &MapEntry(entry))?;
        }
        map.serialize_entry(
            "random",
            &serde_json::json!({
                "aopc": f.random.aopc(),
                "aopc_each": f.random.aopcs,
                "deletion_auc": f.random.mean.deletion_auc,
                "insertion_auc": f.random.mean.insertion_auc,
                "deletion_curve": f.random.mean.deletion,
                "insertion_curve": f.random.mean.insertion,
            }),
        )?;
        map.serialize_entry("grid", &[f.grid, f.grid])?;
        map.serialize_entry("steps", &f.steps)?;
        map.serialize_entry("random_orderings", &f.random_orderings)?;
        map.serialize_entry("seed", &f.seed)?;
        map.serialize_entry("baseline", &f.baseline)?;
        map.serialize_entry("probability", "calibrated softmax of the explained class")?;
        let summaries: Vec<String> = self
            .0
            .methods
            .iter()
            .zip(&f.maps)
            .map(|(m, e)| e.summary(m.label()))
            .collect();
        map.serialize_entry("summary", &summaries)?;
        map.end()
    }
}

/// `agreement.{gradcam_ig, gradcam_uncertainty, ig_uncertainty}.{spearman, same_top_zone, …}`,
/// `agreement.top_zone.{method}`, `agreement.summary`.
pub struct AgreementReport<'a>(pub &'a Agreement);

impl Serialize for AgreementReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("grid", &[a.grid, a.grid])?;
        for p in &a.pairs {
            map.serialize_entry(
                &format!("{}_{}", p.a.key(), p.b.key()),
                &serde_json::json!({
                    "spearman": p.spearman,
                    "same_top_zone": p.same_top_zone,
                    "top_zones": [p.top_zone_a, p.top_zone_b],
                }),
            )?;
        }
        let top: serde_json::Map<String, serde_json::Value> = a
            .top_zones
            .iter()
            .map(|(m, z)| (m.key().to_string(), serde_json::Value::from(*z)))
            .collect();
        map.serialize_entry("top_zone", &top)?;
        map.serialize_entry(
            "all_top_zones_agree",
            &a.top_zones.windows(2).all(|w| w[0].1 == w[1].1),
        )?;
        map.serialize_entry("summary", &a.summary())?;
        map.end()
    }
}

/// `sanity.{gradcam,ig}.{spearman,ssim,stages,not_sensitive_to_model}`.
#[derive(Serialize)]
pub struct SanityReport {
    pub seed: u64,
    pub gradcam: Option<MethodSanity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ig: Option<MethodSanity>,
    pub flag_rule: &'static str,
    pub summary: Vec<String>,
}

impl SanityReport {
    pub fn new(s: &Sanity) -> Self {
        Self {
            seed: s.seed,
            gradcam: s.gradcam(),
            ig: s.ig(),
            flag_rule: "not sensitive to the model: SSIM > 0.5 after randomising head and layer4",
            summary: s.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_dims_only_with_reasons_and_gating_on() {
        assert_eq!(overlay_gate(vec![], true), None);
        assert_eq!(overlay_gate(vec!["UNCERTAIN (x)".into()], false), None);
        let g = overlay_gate(
            vec!["UNCERTAIN (x)".into(), "out of scope (y)".into()],
            true,
        );
        assert_eq!(
            g.as_ref().map(Gate::line).unwrap_or_default(),
            "dimmed: UNCERTAIN (x); out of scope (y)"
        );
        assert_eq!(
            g.as_ref().map(Gate::short_line).unwrap_or_default(),
            "dimmed: uncertain; out of scope"
        );
        assert!((gated_opacity(0.5, g.as_ref()) - 0.5 * GATED_OPACITY).abs() < 1e-7);
        assert_eq!(gated_opacity(0.5, None), 0.5);
    }
}
