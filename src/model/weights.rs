//! Reading a safetensors checkpoint and checking it against the architecture in `model.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::ModelError;

/// Named tensors of one checkpoint, converted to f32 on the target device.
pub struct WeightStore {
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
}

impl WeightStore {
    /// Reads the whole file (so the sha256 and the tensors come from the same bytes).
    pub fn load(path: &Path, device: &Device) -> Result<(Self, String), ModelError> {
        let err = |reason: String| ModelError::Weights {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let raw = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            err(format!(
                "not a readable safetensors file ({})",
                first_line(&e.to_string())
            ))
        })?;
        if raw.is_empty() {
            return Err(err("the file holds no tensors".into()));
        }
        let mut tensors = HashMap::with_capacity(raw.len());
        for (name, t) in raw {
            let t = match t.dtype() {
                DType::F32 | DType::F16 | DType::BF16 | DType::F64 => t
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_device(device))
                    .map_err(|e| err(format!("tensor {name}: {}", first_line(&e.to_string()))))?,
                other => {
                    return Err(err(format!(
                        "tensor {name} has unsupported dtype {other:?}"
                    )))
                }
            };
            tensors.insert(name, t);
        }
        Ok((
            Self {
                tensors,
                path: path.to_path_buf(),
            },
            sha256,
        ))
    }

    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self.tensors.get(name).ok_or_else(|| ModelError::Weights {
            path: self.path.clone(),
            reason: format!(
                "missing tensor '{name}' (is this a checkpoint of the architecture in model.json?)"
            ),
        })?;
        if t.dims() != shape {
            return Err(ModelError::Weights {
                path: self.path.clone(),
                reason: format!(
                    "tensor '{name}' has shape {:?}, model.json's architecture needs {shape:?}",
                    t.dims()
                ),
            });
        }
        Ok(t.clone())
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// Replaces one tensor of this store (the sanity check's private copy of the weights; a
    /// loaded [`super::Classifier`] never shares its store).
    pub(crate) fn replace(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    /// The dims of a stored tensor.
    pub(crate) fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.dims().to_vec())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Candle errors may carry a backtrace after the first line; users need only the first.
pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
