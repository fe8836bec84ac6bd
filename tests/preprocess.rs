//! Preprocessing against Pillow (the training recipe's `convert("L").resize(BILINEAR) / 255`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use cxr_viewer::io::load_study;
use cxr_viewer::model::preprocess::{input_tensor, model_gray};

#[test]
fn model_input_matches_pillow_within_one_gray_level() {
    let model = tiny_model();
    let study = load_study(&fixture("reference/person45_bacteria_221.jpeg")).unwrap();
    let gray = model_gray(&study, &study.default_window, &model.config.input);
    assert_eq!((gray.width, gray.height), (224, 224));
    let pillow = npy_vec("reference/preprocessed_sample_gray.npy");
    let mean_abs = gray
        .values
        .iter()
        .zip(&pillow)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / pillow.len() as f32;
    assert!(mean_abs < 0.5 / 255.0, "mean |diff| {mean_abs}");
    assert!(max_abs_diff(&gray.values, &pillow) <= 1.0 / 255.0 + 1e-6);
    // Normalisation and channel replication are exactly those of the fixture input.
    let pillow_grid = cxr_viewer::explain::Grid::new(224, 224, pillow);
    let tensor =
        input_tensor(&pillow_grid, &model.config.input, &candle_core::Device::Cpu).unwrap();
    let expected = npy_vec("reference/input_sample.npy");
    let got = values(&tensor);
    assert!(max_abs_diff(&got, &expected) < 1e-5);
}
