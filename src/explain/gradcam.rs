//! Grad-CAM (Selvaraju et al., ICCV 2017) at layer4.
//!
//! For target class c with logit yᶜ and layer4 activation maps Aᵏ (k channels, h×w grid):
//!
//! ```text
//! αₖ = (1/hw) Σᵢⱼ ∂yᶜ/∂Aᵏᵢⱼ          L = ReLU(Σₖ αₖ Aᵏ)
//! ```
//!
//! Layer4 is followed only by global average pooling and the head, so ∂yᶜ/∂Aᵏᵢⱼ = (1/hw)·∂yᶜ/∂pₖ
//! with p the pooled features: α needs the head's gradient only, never a pass through the backbone.
//! The raw map `L` lives on the layer4 grid (7×7 for a 224 input), unnormalised, as
//! pytorch-grad-cam computes it before its min–max scaling.

use candle_core::{Tensor, D};

use super::{ExplainError, Grid};
use crate::model::resnet::{global_avg_pool, DropoutMasks, Head};

#[derive(Clone, Debug)]
pub struct GradCam {
    pub target: usize,
    /// Channel weights αₖ.
    pub alpha: Vec<f32>,
    /// ReLU(Σₖ αₖ Aᵏ) on the layer4 grid.
    pub map: Grid,
}

/// Grad-CAM for one image; `features` is the layer4 activation `[1, C, h, w]`.
pub fn grad_cam(head: &Head, features: &Tensor, target: usize) -> Result<GradCam, ExplainError> {
    let (_, _, h, w) = features.dims4()?;
    let alpha = channel_weights(head, &global_avg_pool(features)?, None, target, h * w)?;
    let map = cams(&alpha, features)?;
    Ok(GradCam {
        target,
        alpha: alpha.flatten_all()?.to_vec1()?,
        map: Grid::new(w, h, map.flatten_all()?.to_vec1()?),
    })
}

/// αₖ for each row of `pooled` `[n, C]` (one dropout sample per row when `masks` is given).
pub fn channel_weights(
    head: &Head,
    pooled: &Tensor,
    masks: Option<&DropoutMasks>,
    target: usize,
    cells: usize,
) -> candle_core::Result<Tensor> {
    head.grad_pooled(pooled, masks, target)? / cells as f64
}

/// ReLU(Σₖ αₖ Aᵏ) for each row of `alpha` `[n, C]` against one activation `[1, C, h, w]`: `[n, h·w]`.
pub fn cams(alpha: &Tensor, features: &Tensor) -> candle_core::Result<Tensor> {
    let (_, c, h, w) = features.dims4()?;
    alpha
        .matmul(&features.reshape((c, h * w))?)?
        .relu()?
        .reshape((alpha.dim(0)?, h * w))
}

/// Sum of each row, used to check maps are not all zero.
pub fn row_sums(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.sum(D::Minus1)?.to_vec1()
}
