//! The Candle engine against PyTorch + pytorch-grad-cam + captum on committed fixtures
//! (made by `scripts/make_reference_fixtures.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use cxr_viewer::explain::gradcam::grad_cam;
use cxr_viewer::explain::integrated_gradients::{
    integrated_gradients, Baseline, IgOptions, IgRule,
};
use cxr_viewer::explain::no_control;
use cxr_viewer::model::resnet::expected_parameters;

#[test]
fn resnet50_parameter_names_and_shapes_match_torchvision() {
    let text = std::fs::read_to_string(fixture("reference/resnet50_param_names.json")).unwrap();
    let torch: Vec<(String, Vec<usize>)> = serde_json::from_str(&text).unwrap();
    let arch = cxr_viewer::model::config::Architecture {
        family: "resnet-bottleneck".into(),
        layers: [3, 4, 6, 3],
        width: 64,
        head_hidden: 256,
    };
    assert_eq!(expected_parameters(&arch, 2), torch);
}

#[test]
fn logits_and_layer4_match_pytorch() {
    let model = tiny_model();
    let reference = reference();
    for name in ["sample", "random"] {
        let input = npy(&format!("reference/input_{name}.npy"));
        let logits = values(&model.logits(&input).unwrap());
        let expected: Vec<f32> =
            serde_json::from_value(reference["inputs"][name]["logits"].clone()).unwrap();
        assert!(
            max_abs_diff(&logits, &expected) < 1e-4,
            "{name}: {logits:?} vs {expected:?}"
        );
        let layer4 = values(&model.backbone.forward(&input).unwrap());
        let expected = npy_vec(&format!("reference/{name}_layer4.npy"));
        assert!(max_abs_diff(&layer4, &expected) < 1e-4, "{name} layer4");
    }
}

#[test]
fn grad_cam_matches_pytorch_grad_cam() {
    let model = tiny_model();
    for name in ["sample", "random"] {
        let input = npy(&format!("reference/input_{name}.npy"));
        let features = model.backbone.forward(&input).unwrap();
        for class in [0usize, 1] {
            let cam = grad_cam(&model.head, &features, class).unwrap();
            assert_eq!((cam.map.width, cam.map.height), (7, 7));
            let expected = npy_vec(&format!("reference/{name}_gradcam_c{class}.npy"));
            let r = pearson(&cam.map.values, &expected);
            assert!(r >= 0.999, "{name} c{class}: r = {r}");
            assert!(
                max_abs_diff(&cam.map.values, &expected) < 1e-4,
                "{name} c{class}: raw values differ"
            );
            if class == 1 {
                let alpha = npy_vec(&format!("reference/{name}_gradcam_alpha_c1.npy"));
                assert!(max_abs_diff(&cam.alpha, &alpha) < 1e-6, "{name}: alpha");
            }
        }
    }
}

#[test]
fn integrated_gradients_match_captum() {
    let model = tiny_model();
    let reference = reference();
    for name in ["sample", "random"] {
        let input = npy(&format!("reference/input_{name}.npy"));
        for (baseline, tag) in [(Baseline::Black, "black"), (Baseline::White, "white")] {
            for steps in [8usize, 32] {
                let opts = IgOptions {
                    steps,
                    baseline,
                    target: 1,
                    batch: 8,
                    lanes: cxr_viewer::explain::integrated_gradients::CPU_LANES,
                    rule: IgRule::GaussLegendre,
                };
                let ig = integrated_gradients(&model, &input, &opts, &no_control()).unwrap();
                let expected = npy_vec(&format!("reference/{name}_ig_{tag}_{steps}.npy"));
                let r = pearson(&ig.map.values, &expected);
                let meta = &reference["inputs"][name]["ig"][format!("{tag}_{steps}")];
                let delta = meta["delta"].as_f64().unwrap() as f32;
                let f_base = meta["f_baseline"].as_f64().unwrap() as f32;
                assert!(r >= 0.99, "{name} {tag} {steps}: r = {r}");
                assert!(
                    (ig.f_baseline - f_base).abs() < 1e-3,
                    "{name} {tag}: F(baseline)"
                );
                // The random-weight net's integrand jumps at ReLU kinks, so f32 rounding can move a
                // few path points across one; 2 % of F(x) − F(x′) bounds that, a wrong rule is far off.
                let span = (ig.f_input - ig.f_baseline).abs();
                assert!(
                    (ig.delta - delta).abs() < 0.02 * span,
                    "{name} {tag} {steps}: delta {} vs captum {delta}",
                    ig.delta
                );
            }
        }
    }
}

/// IG from the normal-film baseline (`model.json`'s `ig_reference`, preprocessed as any film)
/// against captum with that film's model input as the baseline
/// (`scripts/make_normal_film_fixture.py`), for both targets: the map, F(x′) and the gap.
#[test]
fn integrated_gradients_from_the_normal_film_match_captum() {
    let model = cxr_viewer::model::Classifier::load(
        &fixture("reference/model-normal-film.json"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert!(model.ig_reference.is_some());
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("reference/normal_film.json")).unwrap(),
    )
    .unwrap();
    let input = npy("reference/input_sample.npy");
    for target in [0usize, 1] {
        let opts = IgOptions {
            steps: 32,
            baseline: Baseline::NormalFilm,
            target,
            batch: 8,
            lanes: cxr_viewer::explain::integrated_gradients::CPU_LANES,
            rule: IgRule::GaussLegendre,
        };
        let ig = integrated_gradients(&model, &input, &opts, &no_control()).unwrap();
        let expected = npy_vec(&format!("reference/sample_ig_normal_32_c{target}.npy"));
        let r = pearson(&ig.map.values, &expected);
        assert!(r >= 0.99, "target {target}: r = {r}");
        let m = &meta[format!("c{target}")];
        let f_base = m["f_baseline"].as_f64().unwrap() as f32;
        assert!(
            (ig.f_baseline - f_base).abs() < 1e-3 * f_base.abs().max(1.0),
            "target {target}: F(baseline) {} vs captum {f_base}",
            ig.f_baseline
        );
        let delta = m["delta"].as_f64().unwrap() as f32;
        let span = (ig.f_input - ig.f_baseline).abs();
        assert!(
            (ig.delta - delta).abs() < 0.02 * span,
            "target {target}: delta {} vs captum {delta}",
            ig.delta
        );
    }
    // A model that names no reference film refuses the baseline in one line.
    let plain = tiny_model();
    let opts = IgOptions {
        steps: 2,
        baseline: Baseline::NormalFilm,
        target: 1,
        batch: 2,
        lanes: 1,
        rule: IgRule::Midpoint,
    };
    let err = integrated_gradients(&plain, &input, &opts, &no_control()).unwrap_err();
    assert!(err.to_string().contains("names no ig_reference"), "{err}");
}
