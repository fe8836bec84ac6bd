//! The shipped weights against the training recipe's own reference logits (PyTorch, float32 with
//! the float16-rounded weights), and the engine's preprocessing against the recipe's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::{max_abs_diff, values};
use cxr_viewer::analysis::Engine;
use cxr_viewer::explain::Grid;
use cxr_viewer::io::load_study;
use cxr_viewer::model::preprocess::{input_tensor, model_gray};

fn weights_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights")
}

fn reference_image(stem: &str) -> PathBuf {
    let dir = weights_dir().join("reference");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_stem().is_some_and(|s| s == stem)
                && p.extension().is_some_and(|e| e != "npy" && e != "json")
        })
        .unwrap_or_else(|| panic!("no reference image for {stem} in {}", dir.display()))
}

#[test]
fn shipped_weights_reproduce_the_recipes_logits_and_preprocessing() {
    let engine =
        Engine::load(&weights_dir().join("model.json"), &Device::Cpu).expect("shipped model loads");
    let spec = engine.model.config.input.clone();
    let text =
        std::fs::read_to_string(weights_dir().join("reference/reference_logits.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = reference.as_object().unwrap();
    assert!(cases.len() >= 4, "at least four reference images");
    for (stem, expected) in cases {
        let gray = values(
            &Tensor::read_npy(weights_dir().join(format!("reference/{stem}_gray.npy"))).unwrap(),
        );
        let grid = Grid::new(spec.width, spec.height, gray);
        let input = input_tensor(&grid, &spec, &Device::Cpu).unwrap();
        let logits = values(&engine.model.logits(&input).unwrap());
        let want: Vec<f32> = serde_json::from_value(expected["logits"].clone()).unwrap();
        assert!(
            max_abs_diff(&logits, &want) < 1e-3,
            "{stem}: {logits:?} vs {want:?}"
        );

        // The engine's own preprocessing of the original file sees the same image.
        let study = load_study(&reference_image(stem)).unwrap();
        let ours = model_gray(&study, &study.default_window, &spec);
        assert!(
            max_abs_diff(&ours.values, &grid.values) <= 1.0 / 255.0 + 1e-6,
            "{stem}: preprocessing"
        );
        let (prepared, _, _) = engine.prepare(&study).unwrap();
        let p_ref = expected["prob_pneumonia_calibrated"].as_f64().unwrap() as f32;
        assert!(
            (prepared.prediction.positive_probability - p_ref).abs() < 0.02,
            "{stem}: calibrated P {} vs {p_ref}",
            prepared.prediction.positive_probability
        );
    }
}
