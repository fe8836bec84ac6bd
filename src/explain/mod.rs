//! Explanations of one prediction. Each module states its maths; all work on tensors produced by
//! [`crate::model`] and return plain [`Grid`]s so the CLI, the GUI and the tests share them.

pub mod agreement;
pub mod faithfulness;
pub mod gradcam;
pub mod integrated_gradients;
pub mod localisation;
pub mod quadrature;
pub mod sanity;
pub mod similarity;
pub mod uncertainty;
pub mod zones;

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<candle_core::Error> for ExplainError {
    fn from(e: candle_core::Error) -> Self {
        ExplainError::Model(e.into())
    }
}

/// A scalar map on a regular grid, row-major.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Grid {
    pub width: usize,
    pub height: usize,
    #[serde(skip)]
    pub values: Vec<f32>,
}

impl Grid {
    pub fn new(width: usize, height: usize, values: Vec<f32>) -> Self {
        debug_assert_eq!(values.len(), width * height);
        Self {
            width,
            height,
            values,
        }
    }

    pub fn max(&self) -> f32 {
        self.values
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max)
    }

    pub fn min(&self) -> f32 {
        self.values.iter().copied().fold(f32::INFINITY, f32::min)
    }

    /// Bilinear resampling with pixel-centre alignment (`align_corners = false`, like OpenCV's and
    /// PyTorch's default), with antialiasing when shrinking; done by the `image` crate's triangle
    /// filter.
    pub fn resized(&self, width: usize, height: usize) -> Grid {
        self.clone().into_resized(width, height)
    }

    /// [`Grid::resized`] without a copy of the source: a film's unit grid is tens of megabytes
    /// (a 3000 × 3600 CR film: 43 MB), and copying it cost the preprocessing a few milliseconds
    /// and as much memory again.
    pub fn into_resized(self, width: usize, height: usize) -> Grid {
        if width == self.width && height == self.height {
            return self;
        }
        let (w, h) = (self.width as u32, self.height as u32);
        let buffer: image::ImageBuffer<image::Luma<f32>, Vec<f32>> =
            image::ImageBuffer::from_raw(w, h, self.values)
                .unwrap_or_else(|| image::ImageBuffer::new(w, h));
        let out = image::imageops::resize(
            &buffer,
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        );
        Grid::new(width, height, out.into_raw())
    }
}

/// Cooperative cancellation and progress for long computations.
pub struct Control<'a> {
    pub cancel: &'a AtomicBool,
    /// Called with (done, total) units of the current stage.
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
}

impl Control<'_> {
    pub fn check(&self) -> Result<(), ExplainError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(ExplainError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A control that never cancels and reports nowhere, for tests and one-shot callers.
pub fn no_control() -> Control<'static> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    Control {
        cancel: &NEVER,
        progress: &|_, _| {},
    }
}
