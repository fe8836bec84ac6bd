//! The classifier: a torchvision-named ResNet with a dropout head, configured by `model.json`.
//!
//! ```no_run
//! # use cxr_viewer::model::Classifier;
//! let model = Classifier::load(std::path::Path::new("weights/model.json"), &candle_core::Device::Cpu)?;
//! println!("{} classes: {:?}", model.config.name, model.config.classes);
//! # Ok::<(), cxr_viewer::model::ModelError>(())
//! ```

pub mod config;
pub mod device;
mod fused;
pub(crate) use fused::with_f32_values;
mod im2col;
pub(crate) use im2col::shared_channel;
pub mod preprocess;
pub mod resnet;
pub mod weights;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

pub use config::ModelConfig;
pub use device::{select_device, DeviceChoice};
use resnet::{expected_parameters, Backbone, Head};
use weights::WeightStore;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("cannot load weights {path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("model computation failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Compute(weights::first_line(&e.to_string()).to_string())
    }
}

/// A loaded model: configuration, backbone up to layer4, and the classifier head.
pub struct Classifier {
    pub config: ModelConfig,
    pub config_path: PathBuf,
    /// sha256 of the safetensors file, so reports say exactly which weights produced them.
    pub sha256: String,
    pub backbone: Backbone,
    pub head: Head,
    pub device: Device,
}

impl Classifier {
    pub fn load(config_path: &Path, device: &Device) -> Result<Self, ModelError> {
        let config = ModelConfig::from_file(config_path)?;
        let weights_path = config.weights_path(config_path);
        let (store, sha256) = WeightStore::load(&weights_path, device)?;
        let expected = expected_parameters(&config.architecture, config.classes.len());
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let unexpected: Vec<&String> = store
            .names()
            .filter(|n| !known.contains(n.as_str()) && !n.ends_with("num_batches_tracked"))
            .collect();
        if let Some(name) = unexpected.first() {
            return Err(ModelError::Weights {
                path: weights_path,
                reason: format!(
                    "unexpected tensor '{name}' ({} in all): the checkpoint does not match model.json's architecture",
                    unexpected.len()
                ),
            });
        }
        let backbone = Backbone::load(&store, &config.architecture)?;
        let head = Head::load(&store, &config.architecture, config.classes.len())?;
        Ok(Self {
            config,
            config_path: config_path.to_path_buf(),
            sha256,
            backbone,
            head,
            device: device.clone(),
        })
    }

    /// Deterministic logits `[n, classes]` (dropout off), no temperature.
    pub fn logits(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        let features = self.backbone.forward(input)?;
        let pooled = resnet::global_avg_pool(&features)?;
        Ok(self.head.forward(&pooled, None)?)
    }
}
