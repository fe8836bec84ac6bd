//! `model.json`: everything about a model that is not a tensor.
//!
//! The engine must not know which weights it runs, so class names, input geometry, normalisation,
//! dropout, threshold and temperature all live here and nowhere else.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    /// Path of the safetensors file, relative to the directory of `model.json`.
    pub weights: String,
    pub architecture: Architecture,
    pub classes: Vec<String>,
    /// The class whose probability is compared with `threshold` (the "finding").
    pub positive_class: String,
    pub input: InputSpec,
    /// Drop probability of both dropout layers of the head; also used for MC-dropout sampling.
    pub dropout: f32,
    /// Decision threshold on the calibrated probability of `positive_class`.
    pub threshold: f32,
    /// Temperature applied to the logits before the softmax (calibration).
    pub temperature: f32,
    /// Free-form provenance (training run, metrics); carried into reports untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// Scope-guard statistics (`cxr-viewer scope-fit`), relative to the directory of `model.json`;
    /// fitted on this model's features, so versioned with the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A film the model reads as confidently normal, relative to the directory of `model.json`:
    /// Integrated Gradients' "normal film" baseline ([`crate::explain::integrated_gradients::
    /// Baseline::NormalFilm`]). Chosen from the training split for this model, so versioned with
    /// the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_reference: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Architecture {
    /// Only `resnet-bottleneck` (torchvision's ResNet-50/101/152 family) is supported.
    pub family: String,
    /// Blocks per stage: `[3, 4, 6, 3]` is ResNet-50.
    pub layers: [usize; 4],
    /// Channels of the stem; stage `i` uses `width * 2^i` bottleneck channels, expansion 4.
    pub width: usize,
    /// Hidden units of the classifier head (`fc.1`).
    pub head_hidden: usize,
}

impl Architecture {
    /// Channels of the layer4 activation (2048 for ResNet-50).
    pub fn feature_channels(&self) -> usize {
        self.width * 8 * 4
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// `squash`: the whole film is resized to `width × height` ignoring its aspect ratio, so every
    /// map covers the full image.
    pub resize: String,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.validate().map_err(|reason| ModelError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// Rejects configurations the engine cannot run, with the reason a user can act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.architecture.family != "resnet-bottleneck" {
            return Err(format!(
                "unsupported architecture family '{}' (expected 'resnet-bottleneck')",
                self.architecture.family
            ));
        }
        if self.architecture.width == 0 || self.architecture.head_hidden == 0 {
            return Err("architecture width and head_hidden must be positive".into());
        }
        if self.architecture.layers.contains(&0) {
            return Err("every stage needs at least one block".into());
        }
        if self.classes.len() < 2 {
            return Err("at least two classes are needed".into());
        }
        if !self.classes.contains(&self.positive_class) {
            return Err(format!(
                "positive_class '{}' is not one of the classes {:?}",
                self.positive_class, self.classes
            ));
        }
        let input = &self.input;
        if input.channels != 3 {
            return Err(format!("input.channels must be 3, got {}", input.channels));
        }
        if input.width < 32 || input.height < 32 || input.width > 2048 || input.height > 2048 {
            return Err(format!(
                "input size {}×{} is outside 32..2048",
                input.width, input.height
            ));
        }
        if input.resize != "squash" {
            return Err(format!(
                "unsupported input.resize '{}' (only 'squash')",
                input.resize
            ));
        }
        if input.mean.len() != input.channels || input.std.len() != input.channels {
            return Err("input.mean and input.std need one value per channel".into());
        }
        if input.std.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
            return Err("input.std values must be positive".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {} is outside [0, 1]", self.threshold));
        }
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return Err(format!("temperature {} must be positive", self.temperature));
        }
        Ok(())
    }

    pub fn positive_index(&self) -> usize {
        self.classes
            .iter()
            .position(|c| c == &self.positive_class)
            .unwrap_or(0)
    }

    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }

    /// Spatial size of the layer4 grid (7×7 for a 224 input): stride 32 with ceil rounding, as the
    /// padded convolutions give.
    pub fn feature_grid(&self) -> (usize, usize) {
        let down = |mut n: usize| {
            // stem conv (s2, p3, k7), max-pool (s2, p1, k3), then three stride-2 stages (k3, p1)
            n = (n + 2 * 3 - 7) / 2 + 1;
            n = (n + 2 - 3) / 2 + 1;
            for _ in 0..3 {
                n = (n + 2 - 3) / 2 + 1;
            }
            n
        };
        (down(self.input.height), down(self.input.width))
    }

    /// Where the IG reference film named in `model.json` lives, if it names one.
    pub fn ig_reference_path(&self, config_path: &Path) -> Option<PathBuf> {
        Some(beside(config_path, self.ig_reference.as_ref()?))
    }

    /// Where the scope statistics named in `model.json` live, if any.
    pub fn scope_path(&self, config_path: &Path) -> Option<PathBuf> {
        Some(beside(config_path, self.scope.as_ref()?))
    }

    pub fn weights_path(&self, config_path: &Path) -> PathBuf {
        beside(config_path, &self.weights)
    }
}

/// `name` in the folder of `model.json`: the files it names are relative to it.
fn beside(config_path: &Path, name: &str) -> PathBuf {
    config_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(name)
}
