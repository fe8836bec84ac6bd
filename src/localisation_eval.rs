//! `cxr-viewer eval --boxes`: the localisation measures of [`crate::explain::localisation`] for
//! every film that has boxes in an RSNA labels file, whatever the model predicted.
//!
//! Each map explains the model's **positive class** (e.g. PNEUMONIA), not the predicted one: a
//! box marks an opacity, and the question is whether the evidence for that finding lies in it,
//! including on films the model called negative (those are the ones a reviewer most wants to
//! see). The maps are taken at the model's input resolution, as the viewer draws them
//! (Grad-CAM upsampled from the layer-4 grid; uncertainty = the MC-dropout standard deviation of
//! the CAM; IG summed over channels). Each film's prediction is reported alongside, because a
//! film outside the model's training population (the RSNA films are adults; the model was
//! trained on paediatric films) may be scored, but its scores say little about the model's
//! intended use.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::analysis::{AnalysisError, AnalysisOptions, Engine};
use crate::explain::localisation::{
    localise, ImageBox, Localisation, LocalisationOptions, LocalisationSummary,
};
use crate::explain::Grid;
use crate::notes::rsna::{patient_id_of_file, RsnaLabels};

/// One film's scores.
#[derive(Clone, Debug, Serialize)]
pub struct FilmLocalisation {
    /// Relative to the data folder.
    pub file: String,
    pub boxes: usize,
    pub predicted: String,
    pub positive_probability: f32,
    pub gradcam: Localisation,
    pub ig: Localisation,
    pub uncertainty: Localisation,
    /// What a uniform map would put inside the boxes: the share of the map's cells they cover.
    /// A map's `energy_in_boxes` means something only above it (a box over a quarter of the
    /// film gets a quarter of any flat map's energy).
    pub energy_in_boxes_uniform: Option<f64>,
}

/// What goes under `localisation` in metrics.json.
#[derive(Clone, Debug, Serialize)]
pub struct LocalisationReport {
    pub gradcam: LocalisationSummary,
    pub ig: LocalisationSummary,
    pub uncertainty: LocalisationSummary,
    /// The stated parameters.
    pub tolerance_px: f32,
    pub iou_level: f32,
    /// The class every map explains.
    pub target: String,
    pub ig_steps: usize,
    /// The films' mean [`FilmLocalisation::energy_in_boxes_uniform`]: chance for the maps'
    /// `energy_in_boxes`.
    pub energy_in_boxes_uniform: Option<f64>,
    /// Films with boxes that could not be read or analysed, with the reason.
    pub skipped: Vec<(String, String)>,
    pub films: Vec<FilmLocalisation>,
}

/// Scores every file of `files` whose stem has boxes in `labels`. `on_film` is called after each
/// film (progress).
pub fn evaluate(
    engine: &Engine,
    data: &Path,
    files: &[PathBuf],
    labels: &RsnaLabels,
    options: &LocalisationOptions,
    on_film: &dyn Fn(&str),
) -> LocalisationReport {
    let cfg = &engine.model.config;
    let analysis = AnalysisOptions::default().with_target(Some(cfg.positive_class.clone()));
    let mut films = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        let Some(boxes) = labels.boxes_of(&patient_id_of_file(path)) else {
            continue;
        };
        let rel = crate::cli::relative_name(path, data);
        match film(engine, path, boxes, &analysis, options) {
            Ok(mut f) => {
                f.file = rel.clone();
                films.push(f);
            }
            Err(e) => skipped.push((rel.clone(), crate::text::one_line(&e))),
        }
        on_film(&rel);
    }
    let summary = |pick: fn(&FilmLocalisation) -> Localisation| {
        LocalisationSummary::of(&films.iter().map(pick).collect::<Vec<_>>())
    };
    let uniform: Vec<f64> = films
        .iter()
        .filter_map(|f| f.energy_in_boxes_uniform)
        .collect();
    LocalisationReport {
        gradcam: summary(|f| f.gradcam),
        ig: summary(|f| f.ig),
        uncertainty: summary(|f| f.uncertainty),
        tolerance_px: options.tolerance_px,
        iou_level: options.iou_level,
        target: cfg.positive_class.clone(),
        ig_steps: analysis.ig_steps,
        energy_in_boxes_uniform: (!uniform.is_empty())
            .then(|| uniform.iter().sum::<f64>() / uniform.len() as f64),
        skipped,
        films,
    }
}

fn film(
    engine: &Engine,
    path: &Path,
    boxes: &[ImageBox],
    analysis: &AnalysisOptions,
    options: &LocalisationOptions,
) -> Result<FilmLocalisation, String> {
    let study = crate::io::load_study(path).map_err(|e| e.to_string())?;
    let cancel = AtomicBool::new(false);
    let a = engine
        .analyze(&study, analysis, &|_| {}, &cancel, &|_, _| {})
        .map_err(|e: AnalysisError| e.to_string())?;
    let spec = &engine.model.config.input;
    let scores = score_maps(
        &a,
        (spec.width, spec.height),
        (study.width, study.height),
        boxes,
        options,
    );
    let p = &a.prepared.prediction;
    Ok(FilmLocalisation {
        file: String::new(),
        boxes: boxes.len(),
        predicted: p.label.clone(),
        positive_probability: p.positive_probability,
        gradcam: scores.gradcam,
        ig: scores.ig.unwrap_or(Localisation {
            pointing_hit: false,
            energy_in_boxes: None,
            iou: None,
        }),
        uncertainty: scores.uncertainty,
        energy_in_boxes_uniform: scores.energy_in_boxes_uniform,
    })
}

/// What [`score_maps`] gives.
pub struct MapScores {
    pub gradcam: Localisation,
    /// `None` when IG was not computed.
    pub ig: Option<Localisation>,
    /// The MC-dropout standard deviation of the CAM.
    pub uncertainty: Localisation,
    /// Chance for the maps' `energy_in_boxes`, on the same grid
    /// ([`crate::explain::localisation::uniform_energy_in_boxes`]).
    pub energy_in_boxes_uniform: Option<f64>,
}

/// Each map of `a` scored against `boxes` on a film of `image_size` (width, height), the maps
/// at the model's `input_size` as the viewer draws them, with chance for their energy on that
/// grid; `eval --boxes` and a report's review score the same way.
pub fn score_maps(
    a: &crate::analysis::Analysis,
    input_size: (usize, usize),
    image_size: (usize, usize),
    boxes: &[ImageBox],
    options: &LocalisationOptions,
) -> MapScores {
    let score = |g: &Grid| {
        localise(
            &g.resized(input_size.0, input_size.1),
            image_size,
            boxes,
            options,
        )
    };
    MapScores {
        gradcam: score(&a.gradcam.map),
        ig: a.ig.as_ref().map(|ig| score(&ig.map)),
        uncertainty: score(&a.uncertainty.cam_std),
        energy_in_boxes_uniform: crate::explain::localisation::uniform_energy_in_boxes(
            input_size, image_size, boxes,
        ),
    }
}

/// Per-film rows for `localisation.csv`.
pub fn films_csv(report: &LocalisationReport) -> String {
    let mut out = String::from(
        "file,boxes,predicted,positive_probability,map,pointing_hit,energy_in_boxes,iou,\
         energy_in_boxes_uniform\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    for f in &report.films {
        for (name, l) in [
            ("gradcam", &f.gradcam),
            ("ig", &f.ig),
            ("uncertainty", &f.uncertainty),
        ] {
            let file = if f.file.contains([',', '"', '\n']) {
                format!("\"{}\"", f.file.replace('"', "\"\""))
            } else {
                f.file.clone()
            };
            out.push_str(&format!(
                "{file},{},{},{:.6},{name},{},{},{},{}\n",
                f.boxes,
                f.predicted,
                f.positive_probability,
                u8::from(l.pointing_hit),
                opt(l.energy_in_boxes),
                opt(l.iou),
                opt(f.energy_in_boxes_uniform)
            ));
        }
    }
    out
}

/// The summary as plain text, for `eval --boxes` to print under its metrics (before, it printed
/// only a progress line per film, and the figures were in `metrics.json` alone).
pub fn format_table(report: &LocalisationReport) -> String {
    let n = report.films.len();
    let mut out = format!(
        "localisation: {n} film{} with boxes, maps explaining {} (pointing game: the map's \
         maximum within {} px of a box; IoU: the map above {:.0} % of its maximum)\n",
        if n == 1 { "" } else { "s" },
        report.target,
        report.tolerance_px,
        100.0 * report.iou_level
    );
    out.push_str(
        "map          pointing game   rate  rate 95 % CI  energy in boxes  uniform map   IoU\n",
    );
    let num = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
    let uniform = num(report.energy_in_boxes_uniform);
    for (name, s) in [
        ("gradcam", &report.gradcam),
        ("ig", &report.ig),
        ("uncertainty", &report.uncertainty),
    ] {
        let hits = s
            .pointing_game
            .map_or(0, |r| (r * s.n as f64).round() as usize);
        out.push_str(&format!(
            "{name:<12} {:>13}  {:>5}  {:>12}  {:>15}  {uniform:>11}  {:>4}\n",
            format!("{hits} of {}", s.n),
            s.pointing_game
                .map_or("—".to_string(), |r| format!("{:.0} %", 100.0 * r)),
            crate::notes::zone_agreement::interval_text(s.pointing_game_ci95),
            num(s.energy_in_boxes),
            num(s.iou)
        ));
    }
    out.push_str(
        "uniform map: the energy a flat map would put in the boxes (the share of the film they \
         cover); a map's energy in boxes beats chance only above it\n",
    );
    out
}
