//! The classifier: a torchvision-named ResNet with a dropout head, configured by `model.json`.
//!
//! ```no_run
//! # use cxr_viewer::model::Classifier;
//! let model = Classifier::load(std::path::Path::new("weights/model.json"), &candle_core::Device::Cpu)?;
//! println!("{} classes: {:?}", model.config.name, model.config.classes);
//! # Ok::<(), cxr_viewer::model::ModelError>(())
//! ```

pub mod config;
#[cfg(feature = "cudnn")]
pub mod cudnn;
pub mod device;
mod fused;
pub(crate) use fused::serial_products;
pub(crate) use fused::with_f32_values;
pub(crate) use fused::{add_in_place, weighted_row_sum};
mod im2col;
mod winograd;
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
    #[error("cannot load the IG reference film {path} (model.json's ig_reference): {reason}")]
    IgReference { path: PathBuf, reason: String },
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        ModelError::Compute(weights::first_line(&e.to_string()).to_string())
    }
}

/// Runs a network pass on a thread of rayon's global pool (inline when already on one).
///
/// Why: the `gemm` crate under every convolution forks and joins the pool once per depth block of
/// each matrix product, hundreds of times per pass. Called from a thread outside the pool (the CLI's
/// main thread, the viewer's analysis thread) each fork is a cross-thread injection: the caller
/// sleeps on a futex and a worker is woken, 8–10 % of a forward pass in `perf`. From a pool thread
/// it is a plain join in which the caller does half the work. Measured with `cxr-viewer bench`
/// (docs/performance-log.md): forward 69–90 → 60–66 ms.
pub(crate) fn on_compute_pool<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| pass())
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
    /// The model input `[1, 3, H, W]` of the film `model.json` names as `ig_reference`,
    /// preprocessed as any film is; `None` when it names none.
    pub ig_reference: Option<Tensor>,
}

/// The model input of the reference film at `path`, preprocessed as a film opened in the viewer.
fn reference_input(
    path: &Path,
    spec: &config::InputSpec,
    device: &Device,
) -> Result<Tensor, ModelError> {
    let failed = |reason: String| ModelError::IgReference {
        path: path.to_path_buf(),
        reason,
    };
    let study = crate::io::load_study(path).map_err(|e| failed(e.to_string()))?;
    let gray = preprocess::model_gray(&study, &study.default_window, spec);
    preprocess::input_tensor(&gray, spec, device).map_err(|e| failed(e.to_string()))
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
        let ig_reference = match config.ig_reference_path(config_path) {
            Some(path) => Some(reference_input(&path, &config.input, device)?),
            None => None,
        };
        Ok(Self {
            config,
            config_path: config_path.to_path_buf(),
            sha256,
            backbone,
            head,
            device: device.clone(),
            ig_reference,
        })
    }

    /// Whether Integrated Gradients can start from `baseline` with this model: every baseline
    /// but the normal film, which needs the film `model.json` names as `ig_reference`; `auto`
    /// always (it skips the film where there is none).
    pub fn offers(&self, baseline: crate::explain::integrated_gradients::IgBaseline) -> bool {
        baseline != crate::explain::integrated_gradients::IgBaseline::Normal
            || self.ig_reference.is_some()
    }

    /// Deterministic logits `[n, classes]` (dropout off), no temperature.
    pub fn logits(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        let features = self.backbone.forward(input)?;
        let pooled = resnet::global_avg_pool(&features)?;
        Ok(self.head.forward(&pooled, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_passes_run_on_a_pool_thread() {
        // The test harness's thread is outside the pool; the pass must move onto it, and a pass
        // already on the pool must stay where it is (no second hop, no deadlock).
        assert_eq!(rayon::current_thread_index(), None);
        let (outer, inner) = on_compute_pool(|| {
            let outer = rayon::current_thread_index();
            (outer, on_compute_pool(rayon::current_thread_index))
        });
        assert!(outer.is_some());
        assert_eq!(inner, outer);
    }
}
