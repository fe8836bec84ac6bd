//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use cxr_viewer::model::Classifier;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A scratch folder, removed when the returned guard drops (pass or fail), so test runs leave
/// nothing behind in the temp dir.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cxr-{name}-"))
        .tempdir()
        .unwrap()
}

pub fn tiny_model() -> Classifier {
    Classifier::load(&fixture("reference/model.json"), &Device::Cpu)
        .expect("tiny fixture model loads")
}

pub fn npy(rel: &str) -> Tensor {
    Tensor::read_npy(fixture(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

pub fn npy_vec(rel: &str) -> Vec<f32> {
    values(&npy(rel))
}

/// Every element, flattened, as f32.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let n = a.len() as f64;
    let ma = a.iter().map(|v| *v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|v| *v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (*x as f64 - ma, *y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa.sqrt() * sbb.sqrt())
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A command that must have succeeded, its stderr shown when it did not.
pub fn assert_ran(result: &std::process::Output) {
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}
