//! How far the maps can be trusted: faithfulness (deletion/insertion, AOPC), similarity measures
//! against scipy/scikit-image, the model-randomisation sanity check, and the report contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use cxr_viewer::analysis::{AnalysisOptions, Engine};
use cxr_viewer::explain::faithfulness::{
    aopc, cells_at_step, cells_inserted_at_step, deletion_image, faithfulness, gaussian_blur,
    insertion_image, random_ordering, trapezoid_area, Curves, FaithfulnessOptions, ModelScorer,
    Scorer,
};
use cxr_viewer::explain::sanity::{sanity_check, SanityOptions, STAGES};
use cxr_viewer::explain::similarity::{spearman, ssim};
use cxr_viewer::explain::{no_control, Control, ExplainError, Grid};
use cxr_viewer::io::load_study;

// ---- hand-computed curve summaries ---------------------------------------------------------

#[test]
fn aopc_and_areas_match_hand_computed_values() {
    // d = 0.9, 0.5, 0.3, 0.2, 0.1 (S = 4), AOPC over k = 0…S−1 (the fully blurred d_4 left out):
    // AOPC = (0 + 0.4 + 0.6 + 0.7) / 4 = 0.425
    // deletion AUC = (0.7 + 0.4 + 0.25 + 0.15) / 4 = 0.375
    // insertion 0.1, 0.6, 0.8, 0.85, 0.9: (0.35 + 0.7 + 0.825 + 0.875) / 4 = 0.6875
    let deletion = vec![0.9, 0.5, 0.3, 0.2, 0.1];
    let insertion = vec![0.1, 0.6, 0.8, 0.85, 0.9];
    assert!((aopc(&deletion) - 0.425).abs() < 1e-6);
    // The last point does not count: only d_0…d_{S−1} matter.
    assert!((aopc(&[0.9, 0.5, 0.3, 0.2, 0.9]) - 0.425).abs() < 1e-6);
    assert_eq!(aopc(&[0.7]), 0.0);
    assert!((trapezoid_area(&deletion) - 0.375).abs() < 1e-6);
    assert!((trapezoid_area(&insertion) - 0.6875).abs() < 1e-6);
    let c = Curves::new(deletion, insertion);
    assert!((c.insertion_auc.unwrap() - 0.6875).abs() < 1e-6);
    // A curve that never drops has AOPC 0; one that rises has a negative AOPC.
    assert_eq!(aopc(&[0.4, 0.4, 0.4]), 0.0);
    assert!(aopc(&[0.2, 0.5, 0.8]) < 0.0);
}

// ---- a network whose relevant pixels are known by construction -----------------------------

/// p = σ(w·Σ_{relevant pixels} x + b): only the pixels of `relevant` cells (8×8 pixel cells of a
/// 32×32 image, 4×4 grid) matter.
struct Logistic {
    relevant: Vec<usize>,
    calls: std::cell::Cell<usize>,
}

impl Logistic {
    fn cell(x: usize, y: usize) -> usize {
        (y / 8) * 4 + x / 8
    }
}

impl Scorer for Logistic {
    fn probabilities(&self, images: &[Grid]) -> Result<Vec<f32>, ExplainError> {
        self.calls.set(self.calls.get() + 1);
        Ok(images
            .iter()
            .map(|img| {
                let mut sum = 0f32;
                for y in 0..32 {
                    for x in 0..32 {
                        if self.relevant.contains(&Self::cell(x, y)) {
                            sum += img.values[y * 32 + x];
                        }
                    }
                }
                let z = 6.0 / 64.0 * sum - 9.0;
                1.0 / (1.0 + (-z).exp())
            })
            .collect())
    }
}

/// A dark film with bright relevant cells (5 and 10) and a few bright irrelevant ones.
fn constructed_image() -> Grid {
    let bright = [5usize, 10, 0, 15, 3];
    let mut v = vec![0.1f32; 32 * 32];
    for y in 0..32 {
        for x in 0..32 {
            if bright.contains(&Logistic::cell(x, y)) {
                v[y * 32 + x] = 1.0;
            }
        }
    }
    Grid::new(32, 32, v)
}

/// A 4×4 map with values 16, 15, … 1 on the cells of `order`, first to last.
fn map_from_order(order: &[usize]) -> Grid {
    let mut v = vec![0f32; 16];
    for (rank, c) in order.iter().enumerate() {
        v[*c] = 16.0 - rank as f32;
    }
    Grid::new(4, 4, v)
}

#[test]
fn the_true_map_beats_random_and_a_shuffled_map_does_not() {
    let scorer = Logistic {
        relevant: vec![5, 10],
        calls: Default::default(),
    };
    let opts = FaithfulnessOptions::default()
        .with_grid(4)
        .with_steps(8)
        .with_random_orderings(8)
        .with_blur_sigma(4.0)
        .with_batch(5);
    let truth = map_from_order(&[5, 10, 0, 15, 3, 12, 1, 2, 4, 6, 7, 8, 9, 11, 13, 14]);
    // The same 16 values shuffled over the cells so that the two relevant cells come last.
    let shuffled = map_from_order(&[0, 15, 3, 12, 1, 2, 4, 6, 7, 8, 9, 11, 13, 14, 5, 10]);
    let image = constructed_image();
    let f = faithfulness(&scorer, &image, &[&truth, &shuffled], &opts, &no_control()).unwrap();
    let (t, s) = (&f.maps[0], &f.maps[1]);
    // Sanity of the construction: the film is confidently positive, the blur is not.
    assert!(t.curves.deletion[0] > 0.9, "{:?}", t.curves.deletion);
    assert!(*t.curves.deletion.last().unwrap() < 0.2);
    let (rt, rs) = (t.ratio.unwrap(), s.ratio.unwrap());
    assert!(
        rt > 2.0,
        "true map AOPC {} vs random {}",
        t.curves.aopc,
        t.random_aopc
    );
    assert!(rs < 1.0, "shuffled map ratio {rs}");
    // Insertion: the true map brings the probability back fastest.
    assert!(t.curves.insertion_auc.unwrap() > f.random.mean.insertion_auc.unwrap());
    assert!(s.curves.insertion_auc.unwrap() < f.random.mean.insertion_auc.unwrap());
    // The two shared endpoints, then 7 interior points for each of 2 maps' orderings, their 2
    // reversals (insertion) and 8 random orderings (whose reversals give the reference's
    // insertion curves for free), all in one queue in batches of 5: ceil(86 / 5) = 18 calls.
    assert_eq!(scorer.calls.get(), 18);
    // The random reference is the same for both maps.
    assert_eq!(t.random_aopc, s.random_aopc);
}

#[test]
fn insertion_along_an_ordering_is_deletion_along_its_reversal() {
    // Odd grids and step counts where round(k·N/S) is not symmetric included.
    let image = constructed_image();
    let baseline = gaussian_blur(&image, 4.0);
    for (grid, steps) in [(4, 8), (4, 32), (5, 4), (7, 3), (3, 2)] {
        let n = grid * grid;
        let opts = FaithfulnessOptions::default()
            .with_grid(grid)
            .with_steps(steps);
        let order = random_ordering(n, 7);
        let reversed: Vec<usize> = order.iter().rev().copied().collect();
        for k in 0..=steps {
            assert_eq!(
                insertion_image(&image, &baseline, &order, k, &opts),
                deletion_image(&image, &baseline, &reversed, steps - k, &opts),
                "grid {grid}, steps {steps}, k {k}"
            );
            assert!(cells_inserted_at_step(k, steps, n) <= n);
            assert!(cells_inserted_at_step(k, steps, n).abs_diff(cells_at_step(k, steps, n)) <= 1);
        }
        assert_eq!(cells_inserted_at_step(0, steps, n), 0);
        assert_eq!(cells_inserted_at_step(steps, steps, n), n);
    }
}

#[test]
fn insertion_curves_match_direct_evaluation_for_maps_and_the_random_reference() {
    let scorer = Logistic {
        relevant: vec![5, 10],
        calls: Default::default(),
    };
    let opts = FaithfulnessOptions::default()
        .with_grid(4)
        .with_steps(32) // 16·k/32 hits x.5: the asymmetric rounding case
        .with_random_orderings(3)
        .with_seed(11)
        .with_blur_sigma(4.0);
    let image = constructed_image();
    let map = map_from_order(&[5, 10, 0, 15, 3, 12, 1, 2, 4, 6, 7, 8, 9, 11, 13, 14]);
    let f = faithfulness(&scorer, &image, &[&map], &opts, &no_control()).unwrap();
    let baseline = gaussian_blur(&image, 4.0);
    let direct = |order: &[usize]| -> Vec<f32> {
        let images: Vec<Grid> = (0..=32)
            .map(|k| insertion_image(&image, &baseline, order, k, &opts))
            .collect();
        scorer.probabilities(&images).unwrap()
    };
    let order = cxr_viewer::explain::faithfulness::morf_ordering(&map, 4);
    assert!(max_abs_diff(&f.maps[0].curves.insertion, &direct(&order)) < 1e-6);
    // The reference's insertion curves are those of the reversed random orderings.
    let mut mean = vec![0f32; 33];
    for j in 0..3 {
        let rev: Vec<usize> = random_ordering(16, 11 + j).into_iter().rev().collect();
        for (m, v) in mean.iter_mut().zip(direct(&rev)) {
            *m += v / 3.0;
        }
    }
    assert!(max_abs_diff(&f.random.mean.insertion, &mean) < 1e-6);
}

#[test]
fn faithfulness_reports_progress_and_stops_when_cancelled() {
    let scorer = Logistic {
        relevant: vec![5],
        calls: Default::default(),
    };
    let cancel = AtomicBool::new(false);
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |done: usize, total: usize| {
        seen.lock().unwrap().push((done, total));
        if done > 0 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let control = Control {
        cancel: &cancel,
        progress: &progress,
    };
    let opts = FaithfulnessOptions::default()
        .with_grid(4)
        .with_steps(4)
        .with_random_orderings(2)
        .with_batch(2);
    let result = faithfulness(
        &scorer,
        &constructed_image(),
        &[&map_from_order(&[
            5, 10, 0, 15, 3, 12, 1, 2, 4, 6, 7, 8, 9, 11, 13, 14,
        ])],
        &opts,
        &control,
    );
    assert!(matches!(result, Err(ExplainError::Cancelled)));
    // 2 endpoints + (1 map ordering, its reversal, 2 random orderings) × 3 interior steps = 14
    // images; stopped after the first batch.
    assert_eq!(*seen.lock().unwrap(), [(0, 14), (2, 14)]);
}

// ---- similarity against scipy / scikit-image ------------------------------------------------

#[test]
fn spearman_and_ssim_match_scipy_and_scikit_image() {
    let text = std::fs::read_to_string(fixture("trust/similarity.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in json["cases"].as_array().unwrap() {
        let (w, h) = (
            case["width"].as_u64().unwrap() as usize,
            case["height"].as_u64().unwrap() as usize,
        );
        let read = |k: &str| -> Vec<f32> {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let (a, b) = (read("a"), read("b"));
        let rho = spearman(&a, &b);
        let expected = case["spearman"].as_f64().unwrap();
        assert!(
            (rho - expected).abs() < 1e-9,
            "{}: {rho} vs {expected}",
            case["kind"]
        );
        let s = ssim(&Grid::new(w, h, a), &Grid::new(w, h, b), 1.0);
        let expected = case["ssim"].as_f64().unwrap();
        assert!(
            (s - expected).abs() < 1e-6,
            "{}: {s} vs {expected}",
            case["kind"]
        );
    }
}

// ---- the real model path (tiny fixture network) --------------------------------------------

#[test]
fn model_scorer_agrees_with_the_prediction_and_does_not_depend_on_batching() {
    let engine = Engine::new(tiny_model());
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let opts = AnalysisOptions::default()
        .with_ig_steps(4)
        .with_mc_samples(5)
        .with_faithfulness(Some(
            FaithfulnessOptions::default()
                .with_steps(4)
                .with_random_orderings(2)
                .with_batch(3),
        ));
    let cancel = AtomicBool::new(false);
    let a = engine
        .analyze(&study, &opts, &|_| {}, &cancel, &|_, _| {})
        .unwrap();
    let f = a.trust.faithfulness.as_ref().unwrap();
    assert_eq!(f.result.maps.len(), 3);
    let target = a.gradcam.target;
    let p_target = a.prepared.prediction.probabilities[&engine.model.config.classes[target]];
    for m in &f.result.maps {
        assert_eq!(m.curves.deletion.len(), 5);
        assert!((m.curves.deletion[0] - p_target).abs() < 1e-5);
        assert!(m.curves.deletion.iter().all(|v| v.is_finite()));
    }
    // The same curves one image at a time.
    let scorer = ModelScorer {
        model: &engine.model,
        target,
    };
    let maps: Vec<&Grid> = vec![&a.gradcam.map];
    let batched = faithfulness(
        &scorer,
        &a.prepared.gray,
        &maps,
        &FaithfulnessOptions::default()
            .with_steps(4)
            .with_random_orderings(2)
            .with_batch(7),
        &no_control(),
    )
    .unwrap();
    let single = faithfulness(
        &scorer,
        &a.prepared.gray,
        &maps,
        &FaithfulnessOptions::default()
            .with_steps(4)
            .with_random_orderings(2)
            .with_batch(1),
        &no_control(),
    )
    .unwrap();
    assert!(
        max_abs_diff(
            &batched.maps[0].curves.deletion,
            &single.maps[0].curves.deletion
        ) < 1e-5
    );
    assert!(
        max_abs_diff(
            &batched.maps[0].curves.insertion,
            &single.maps[0].curves.insertion
        ) < 1e-5
    );
    let agreement = a.trust.agreement.as_ref().unwrap();
    assert_eq!(agreement.pairs.len(), 3);
}

#[test]
fn the_sanity_check_randomises_a_copy_and_leaves_the_loaded_model_untouched() {
    let engine = Engine::new(tiny_model());
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let (prepared, _, _) = engine.prepare(&study).unwrap();
    let before = values(&engine.model.logits(&prepared.input).unwrap());
    let (cam, _) = engine.grad_cam(&prepared, 1).unwrap();
    let ig_opts = cxr_viewer::explain::integrated_gradients::IgOptions {
        steps: 4,
        baseline: Default::default(),
        target: 1,
        batch: 4,
        lanes: 1,
        rule: cxr_viewer::explain::integrated_gradients::IgRule::GaussLegendre,
    };
    let (ig, _) = engine
        .integrated_gradients(&prepared, &ig_opts, &no_control())
        .unwrap();
    let sanity = sanity_check(
        &engine.model,
        &prepared.input,
        1,
        &cam.map,
        Some(&ig.map),
        &SanityOptions::new(Some(ig_opts.clone())).with_seed(7),
        &no_control(),
    )
    .unwrap();
    // The loaded model computes exactly what it did, and what a fresh load computes.
    let after = values(&engine.model.logits(&prepared.input).unwrap());
    assert_eq!(before, after);
    let fresh = values(&tiny_model().logits(&prepared.input).unwrap());
    assert_eq!(before, fresh);
    let (cam_again, _) = engine.grad_cam(&prepared, 1).unwrap();
    assert_eq!(cam.map, cam_again.map);

    assert_eq!(sanity.stages.len(), STAGES.len());
    let names: Vec<&str> = sanity.stages.iter().map(|s| s.randomised).collect();
    assert_eq!(names, STAGES);
    // Randomising everything changes both maps.
    let last = sanity.stages.last().unwrap();
    assert_ne!(last.gradcam_map, cam.map);
    assert!(last.gradcam.ssim < 0.999);
    assert!(last.ig.as_ref().unwrap().ssim < 0.999);
    let g = sanity.gradcam().unwrap();
    assert_eq!(g.ssim.len(), STAGES.len());
    assert_eq!(g.not_sensitive_to_model, g.ssim[1] > 0.5);
    // Seeded: the same seed gives the same randomised maps.
    let again = sanity_check(
        &engine.model,
        &prepared.input,
        1,
        &cam.map,
        None,
        &SanityOptions::new(None).with_seed(7).with_stages(2),
        &no_control(),
    )
    .unwrap();
    assert_eq!(again.stages.len(), 2);
    assert_eq!(again.stages[1].gradcam_map, sanity.stages[1].gradcam_map);
    assert!(again.stages[1].ig.is_none());
}

/// `cxr-viewer analyze` of the reference sample with the tiny reference model on the CPU.
fn analyze_sample(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
        .args(["analyze"])
        .arg(fixture("reference/person45_bacteria_221.jpeg"))
        .arg("--out")
        .arg(out)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args(["--device", "cpu"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn analyze_writes_faithfulness_agreement_and_sanity_to_the_report() {
    let tmp = scratch("trust-cli");
    let out = tmp.path().join("results");
    let status = analyze_sample(
        &out,
        &["--mc-samples", "5", "--ig-steps", "4", "--sanity-check"],
    );
    assert!(status.status.success(), "{status:?}");
    let text = std::fs::read_to_string(out.join("person45_bacteria_221/report.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    for m in ["gradcam", "ig", "uncertainty"] {
        for k in [
            "aopc",
            "random_aopc",
            "ratio",
            "deletion_auc",
            "insertion_auc",
        ] {
            assert!(
                r["faithfulness"][m].get(k).is_some(),
                "faithfulness.{m}.{k} missing"
            );
        }
        assert!(r["faithfulness"][m]["aopc"].is_number());
    }
    assert!(r["agreement"]["gradcam_ig"]["spearman"].is_number());
    assert!(r["agreement"]["summary"].is_string());
    for m in ["gradcam", "ig"] {
        for k in ["spearman", "ssim", "stages"] {
            assert_eq!(
                r["sanity"][m][k].as_array().map(Vec::len),
                Some(6),
                "sanity.{m}.{k}"
            );
        }
    }
    // Without the flag there is no sanity section; --no-faithfulness drops that one.
    let out2 = tmp.path().join("plain");
    let status = analyze_sample(&out2, &["--no-ig", "--no-faithfulness"]);
    assert!(status.status.success());
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out2.join("person45_bacteria_221/report.json")).unwrap(),
    )
    .unwrap();
    assert!(r.get("sanity").is_none());
    assert!(r.get("faithfulness").is_none());
    assert!(
        r["agreement"]["gradcam_uncertainty"]["spearman"].is_number()
            || r["agreement"]["gradcam_uncertainty"]["spearman"].is_null()
    );
}
