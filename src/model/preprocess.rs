//! Study → model input, exactly as in training: window to [0, 1] (for 8-bit raster images that is
//! v/255), squash the whole film to the input size with antialiased bilinear resampling (Pillow's
//! `BILINEAR` in the training recipe), replicate gray to the 3 channels, normalise with the
//! per-channel mean/std of `model.json`.

use candle_core::{Device, Tensor};

use super::config::InputSpec;
use crate::explain::Grid;
use crate::io::{Study, Window};

/// The gray input grid in [0, 1] before normalisation (what the overlays are registered to).
///
/// For 8-bit sources the resized values are rounded to 8 bits again, as Pillow does for the
/// training images, so the network sees the same value grid it was trained on.
pub fn model_gray(study: &Study, window: &Window, spec: &InputSpec) -> Grid {
    let unit = Grid::new(study.width, study.height, study.to_unit(window));
    let mut gray = unit.into_resized(spec.width, spec.height);
    if study.metadata.bits_stored <= 8 {
        for v in &mut gray.values {
            *v = (*v * 255.0).round() / 255.0;
        }
    }
    gray
}

/// `[1, 3, H, W]` normalised input tensor from the gray grid.
pub fn input_tensor(gray: &Grid, spec: &InputSpec, device: &Device) -> candle_core::Result<Tensor> {
    let plane = gray.width * gray.height;
    let mut data = Vec::with_capacity(spec.channels * plane);
    for c in 0..spec.channels {
        let (m, s) = (spec.mean[c], spec.std[c]);
        data.extend(gray.values.iter().map(|v| (v - m) / s));
    }
    Tensor::from_vec(data, (1, spec.channels, gray.height, gray.width), device)
}
