//! The staged engine: cancellation, progress, MC-dropout behaviour, zone conventions in reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use cxr_viewer::analysis::{AnalysisError, AnalysisOptions, Engine, Stage};
use cxr_viewer::io::load_study;

fn engine() -> Engine {
    Engine::new(tiny_model())
}

#[test]
fn cancelling_stops_integrated_gradients_between_batches() {
    let engine = engine();
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let cancel = AtomicBool::new(false);
    let batches = AtomicUsize::new(0);
    let progress = |done: usize, _total: usize| {
        if done > 0 {
            batches.fetch_add(1, Ordering::SeqCst);
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let opts = AnalysisOptions::default()
        .with_ig_steps(64)
        .with_ig_batch(4);
    let result = engine.analyze(&study, &opts, &|_| {}, &cancel, &progress);
    assert!(matches!(result, Err(AnalysisError::Cancelled)));
    assert_eq!(
        batches.load(Ordering::SeqCst),
        1,
        "stopped after the first batch of 4"
    );
}

#[test]
fn stages_run_cheap_first_and_report_progress_to_the_end() {
    let engine = engine();
    let study = load_study(&fixture(
        "dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm",
    ))
    .unwrap();
    let stages = std::sync::Mutex::new(Vec::new());
    let last = std::sync::Mutex::new((0, 0));
    let cancel = AtomicBool::new(false);
    let opts = AnalysisOptions::default()
        .with_ig_steps(6)
        .with_ig_batch(4)
        .with_mc_samples(9);
    let analysis = engine
        .analyze(
            &study,
            &opts,
            &|s| stages.lock().unwrap().push(s),
            &cancel,
            &|d, t| *last.lock().unwrap() = (d, t),
        )
        .unwrap();
    assert_eq!(
        *stages.lock().unwrap(),
        [
            Stage::Preprocess,
            Stage::GradCam,
            Stage::Uncertainty,
            Stage::IntegratedGradients
        ]
    );
    assert_eq!(*last.lock().unwrap(), (6, 6));
    assert_eq!(analysis.uncertainty.samples, 9);
    assert_eq!(analysis.uncertainty.sample_probabilities.len(), 9);
    let p = analysis.prepared.prediction.positive_probability;
    let [lo, hi] = analysis.uncertainty.interval;
    assert!(lo <= hi && (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
    assert!(
        analysis.uncertainty.std > 0.0,
        "dropout p = 0.25 must spread the samples"
    );
    assert!(analysis.uncertainty.mutual_information >= 0.0);
    assert!(analysis.uncertainty.entropy <= 2f32.ln() + 1e-6);
    assert!((0.0..=1.0).contains(&p));
    // Zone boxes in image pixels cover the 440×440 film.
    let right_lower = analysis
        .gradcam_zones
        .iter()
        .find(|z| z.name == "right_lower")
        .unwrap();
    assert_eq!(right_lower.box_in_image, [0, 293, 220, 440]);
}

#[test]
fn same_seed_same_uncertainty_other_seed_other_samples() {
    let engine = engine();
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let (prepared, _, _) = engine.prepare(&study).unwrap();
    let (a, _) = engine.uncertainty(&prepared, 1, 30, 7).unwrap();
    let (b, _) = engine.uncertainty(&prepared, 1, 30, 7).unwrap();
    let (c, _) = engine.uncertainty(&prepared, 1, 30, 8).unwrap();
    assert_eq!(a.sample_probabilities, b.sample_probabilities);
    assert_ne!(a.sample_probabilities, c.sample_probabilities);
    assert_eq!(a.cam_std.values, b.cam_std.values);
}

#[test]
fn engine_integrated_gradients_take_the_path_ends_from_the_prediction_and_a_kept_baseline() {
    // The engine gives IG F(x) from the prediction's features and F(x′) from logits it keeps per
    // baseline and input size; the result must be the one IG computes with its own forward
    // passes at both ends, for the first film, for a second film (the baseline's logits reused)
    // and for the other baseline and another target (kept separately).
    use cxr_viewer::explain::integrated_gradients::{
        integrated_gradients, Baseline, IgOptions, IgRule,
    };
    use cxr_viewer::explain::no_control;
    let engine = engine();
    let films = [
        "reference/person45_bacteria_221.jpeg",
        "dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm",
    ];
    for (film, baseline, target) in [
        (films[0], Baseline::Black, 1),
        (films[1], Baseline::Black, 1),
        (films[1], Baseline::White, 0),
        (films[0], Baseline::White, 0),
    ] {
        let study = load_study(&fixture(film)).unwrap();
        let (prepared, _, _) = engine.prepare(&study).unwrap();
        let opts = IgOptions {
            steps: 3,
            baseline,
            target,
            batch: 2,
            lanes: 2,
            rule: IgRule::Midpoint,
        };
        let (ig, _) = engine
            .integrated_gradients(&prepared, &opts, &no_control())
            .unwrap();
        let own =
            integrated_gradients(&engine.model, &prepared.input, &opts, &no_control()).unwrap();
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        assert!(
            close(ig.f_input, own.f_input),
            "{film}: F(x) {} vs {}",
            ig.f_input,
            own.f_input
        );
        assert!(
            close(ig.f_baseline, own.f_baseline),
            "{film} {baseline:?}: F(x′) {} vs {}",
            ig.f_baseline,
            own.f_baseline
        );
        assert!(
            close(ig.delta, own.delta),
            "{film}: gap {} vs {}",
            ig.delta,
            own.delta
        );
        assert_eq!(ig.map.values, own.map.values);
    }
}

/// How the model reads IG's baseline image itself (`analysis::baseline_reading`): the same
/// answer it gives an all-black or all-white film opened as a study, through the whole
/// pipeline; the warning is set exactly when that answer is the class explained, and names the
/// baseline.
#[test]
fn the_baseline_is_read_as_a_film_of_that_colour_is() {
    use cxr_viewer::analysis::{baseline_reading, baseline_warning};
    use cxr_viewer::explain::integrated_gradients::{Baseline, IgOptions, IgRule};
    use cxr_viewer::explain::no_control;
    let engine = engine();
    let cfg = &engine.model.config;
    let tmp = scratch("baseline-reading");
    let film = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let (prepared, _, _) = engine.prepare(&film).unwrap();
    for (baseline, grey) in [(Baseline::Black, 0u8), (Baseline::White, 255u8)] {
        let path = tmp.path().join(format!("{grey}.png"));
        image::GrayImage::from_pixel(
            cfg.input.width as u32,
            cfg.input.height as u32,
            image::Luma([grey]),
        )
        .save(&path)
        .unwrap();
        let (plain, _, _) = engine.prepare(&load_study(&path).unwrap()).unwrap();
        let as_film = &plain.prediction;
        let mut labels = Vec::new();
        for target in 0..cfg.classes.len() {
            let opts = IgOptions {
                steps: 2,
                baseline,
                target,
                batch: 2,
                lanes: 1,
                rule: IgRule::Midpoint,
            };
            let (ig, _) = engine
                .integrated_gradients(&prepared, &opts, &no_control())
                .unwrap();
            let reading = baseline_reading(cfg, &ig).expect("the engine keeps the logits");
            assert_eq!(reading.label, as_film.label, "{baseline:?}");
            let p = as_film.probabilities[&cfg.classes[target]];
            assert!(
                (reading.target_probability - p).abs() < 1e-4,
                "{baseline:?} target {target}: {} vs {p}",
                reading.target_probability
            );
            assert_eq!(reading.read_as_target, as_film.class_index == target);
            let warning = baseline_warning(&ig, &reading);
            assert_eq!(warning.is_some(), reading.read_as_target);
            if let Some(w) = warning {
                assert!(
                    w.starts_with(&format!(
                        "The {} baseline is itself read as {}",
                        baseline.name(),
                        as_film.label
                    )),
                    "{w}"
                );
            }
            labels.push(reading.read_as_target);
        }
        // Read as exactly one of the two classes.
        assert_eq!(labels.iter().filter(|&&r| r).count(), 1);
    }
}

/// `auto` starts IG from the first of black, the model's normal film and white
/// that the model does not itself read as the class explained: checked against each baseline's
/// own reading (`baseline_reading` of a fixed-baseline run, itself checked above against a film
/// of that colour), for both targets, with and without a normal film. The map is the one the
/// chosen baseline gives when asked for by name; a named baseline is used as asked.
#[test]
fn auto_starts_ig_from_the_first_baseline_read_as_another_class() {
    use cxr_viewer::analysis::baseline_reading;
    use cxr_viewer::explain::integrated_gradients::{
        Baseline, IgBaseline, IgOptions, IgRule, AUTO_ORDER,
    };
    use cxr_viewer::explain::no_control;
    let with_film = Engine::new(
        cxr_viewer::model::Classifier::load(
            &fixture("reference/model-normal-film.json"),
            &candle_core::Device::Cpu,
        )
        .unwrap(),
    );
    assert_eq!(
        AnalysisOptions::default().ig_baseline,
        IgBaseline::Black,
        "the default"
    );
    let film = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let mut chosen = Vec::new();
    for engine in [engine(), with_film] {
        let cfg = engine.model.config.clone();
        let (prepared, _, _) = engine.prepare(&film).unwrap();
        for target in 0..cfg.classes.len() {
            let opts = |baseline| IgOptions {
                steps: 3,
                baseline,
                target,
                batch: 2,
                lanes: 1,
                rule: IgRule::Midpoint,
            };
            let offered: Vec<Baseline> = AUTO_ORDER
                .into_iter()
                .filter(|b| *b != Baseline::NormalFilm || engine.model.ig_reference.is_some())
                .collect();
            let mut expected = None;
            let mut fixed_maps = Vec::new();
            for &b in &offered {
                let (ig, _) = engine
                    .integrated_gradients_asked(&prepared, b.into(), &opts(b), &no_control())
                    .unwrap();
                assert_eq!(ig.baseline, b, "a named baseline is used as asked");
                assert!(!ig.baseline_auto);
                let reading = baseline_reading(&cfg, &ig).unwrap();
                if !reading.read_as_target && expected.is_none() {
                    expected = Some(b);
                }
                fixed_maps.push((b, ig.map.values));
            }
            let expected = expected.unwrap_or(Baseline::Black);
            let (auto, _) = engine
                .integrated_gradients_asked(
                    &prepared,
                    IgBaseline::Auto,
                    &opts(Baseline::White),
                    &no_control(),
                )
                .unwrap();
            assert_eq!(auto.baseline, expected, "{} target {target}", cfg.name);
            assert!(auto.baseline_auto);
            let fixed = &fixed_maps.iter().find(|(b, _)| *b == expected).unwrap().1;
            assert_eq!(&auto.map.values, fixed);
            chosen.push(expected);
        }
    }
    // The cases above reach past black (the tiny model reads black as PNEUMONIA), to white
    // without a normal film and to the film where there is one.
    assert!(chosen.contains(&Baseline::Black), "{chosen:?}");
    assert!(chosen.contains(&Baseline::White), "{chosen:?}");
    assert!(chosen.contains(&Baseline::NormalFilm), "{chosen:?}");
}

/// The sanity check recomputes IG on the randomised models from the baseline the real map
/// started from: with `auto` (white for this film with the tiny model, which reads black as the
/// class explained) its IG maps are those of the randomised models from white, not from black,
/// which `auto` would have been taken for had the check asked again.
#[test]
fn the_sanity_check_keeps_the_baseline_auto_chose() {
    use cxr_viewer::analysis::SANITY_IG_STEPS;
    use cxr_viewer::explain::integrated_gradients::{Baseline, IgBaseline, IgOptions, IgRule};
    use cxr_viewer::explain::no_control;
    use cxr_viewer::trust::{study_sanity, StudyMaps};
    let engine = engine();
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let opts = AnalysisOptions::default()
        .with_ig_steps(4)
        .with_ig_batch(2)
        .with_mc_samples(3)
        .with_ig_baseline(IgBaseline::Auto)
        .with_sanity_check(true);
    let cancel = AtomicBool::new(false);
    let analysis = engine
        .analyze(&study, &opts, &|_| {}, &cancel, &|_, _| {})
        .unwrap();
    let ig = analysis.ig.as_ref().unwrap();
    assert_eq!(ig.baseline, Baseline::White, "auto's choice for this film");
    let sanity = analysis.trust.sanity.as_ref().unwrap();
    let maps = StudyMaps {
        gradcam: &analysis.gradcam.map,
        ig: Some(&ig.map),
        uncertainty: &analysis.uncertainty.cam_mean,
    };
    let from = |baseline| {
        study_sanity(
            &engine.model,
            &analysis.prepared,
            ig.target,
            &maps,
            Some(IgOptions {
                steps: opts.ig_steps.min(SANITY_IG_STEPS),
                baseline,
                target: ig.target,
                batch: opts.ig_batch,
                lanes: opts.ig_lanes,
                rule: IgRule::GaussLegendre,
            }),
            opts.seed,
            &no_control(),
        )
        .unwrap()
    };
    let ig_maps = |s: &cxr_viewer::explain::sanity::Sanity| -> Vec<Vec<f32>> {
        s.stages
            .iter()
            .map(|st| st.ig_map.as_ref().unwrap().values.clone())
            .collect()
    };
    assert_eq!(ig_maps(sanity), ig_maps(&from(Baseline::White)));
    assert_ne!(ig_maps(sanity), ig_maps(&from(Baseline::Black)));
}
