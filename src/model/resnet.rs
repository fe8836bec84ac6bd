//! torchvision's ResNet (bottleneck family) with BatchNorm folded into the convolutions, and an
//! explicit input-gradient pass.
//!
//! Why not candle's autograd for the input gradient: candle's backward of `conv2d` always computes
//! the weight gradient as well and uses the naive CPU `conv_transpose2d`, which makes
//! forward+backward 3–5× a forward. Integrated Gradients only needs `∂logit/∂input`, so
//! [`Backbone::backward_input`] walks the recorded activations backwards with three rules:
//!
//! * convolution `y = W ⋆ x + b`: `∂x = Wᵀ ⋆ ∂y`. Stride 1: a convolution of `∂y` with the flipped,
//!   transposed kernel (fast im2col + gemm path). Stride 2: one gemm `Wᵀ·∂y` giving the
//!   per-tap contributions, then col2im by polyphase interleaving (no zero-stuffed convolutions).
//! * ReLU: `∂x = ∂y ⊙ [y > 0]`.
//! * stem max-pool (3×3, stride 2, pad 1) computed separably as two 1-D "max of three, stride 2"
//!   passes; the gradient goes to the first maximal tap of each window in row-major order, as in
//!   PyTorch (candle's autograd would split ties, which real images with flat regions have).
//!
//! After ReLU every value is ≥ 0, so zero padding in the max-pool equals PyTorch's −∞ padding.
//! The forward is made of ordinary candle ops, so candle's autograd can still differentiate it; the
//! tests use that and finite differences to check the explicit pass.

use std::borrow::Cow;

use candle_core::{DType, IndexOp, Tensor, D};

use super::config::Architecture;
use super::fused::{self, PlaneOrder};
use super::im2col;
use super::weights::WeightStore;
use super::winograd::{self, WinogradKernel};
use super::ModelError;

/// BatchNorm epsilon used by torchvision.
const BN_EPS: f64 = 1e-5;

/// A convolution with its BatchNorm folded in: `y = W' ⋆ x + b'`, `W' = W·γ/σ`, `b' = β − μγ/σ`.
#[derive(Clone, Debug)]
pub struct ConvBn {
    weight: Tensor,
    bias: Tensor,
    /// The bias on the host, for the fused bias + ReLU pass ([`fused::bias_act`]).
    bias_host: Vec<f32>,
    /// Stride 1: `Wᵀ` flipped in both spatial axes (`[c_in, c_out, k, k]`). Stride > 1: `Wᵀ` as a
    /// matrix `[c_in·k·k, c_out]`.
    backward_kernel: Tensor,
    /// 1×1 kernels: `W` as a matrix `[c_out, c_in]` and its transpose `[c_in, c_out]`, so forward
    /// and backward are one gemm per image on the NCHW data (no im2col copy), or one gemm for the
    /// whole batch on channel-major data ([`PlaneOrder`]).
    pointwise: Option<(Tensor, Tensor)>,
    /// The image convolution (3 input channels): `Σ_c W[:, c]` as a matrix `[c_out, k·k]` and its
    /// transpose. A greyscale film repeats one plane in all three channels (the preprocessing
    /// uses equal means and deviations), and then `W ⋆ x = (Σ_c W_c) ⋆ x₀` exactly: a third of
    /// the stem's im2col copy and gemm ([`im2col::shared_channel`] checks the planes are equal,
    /// bit for bit). Likewise `Σ_c ∂L/∂x_c = (Σ_c W_c)ᵀ ⋆ ∂L/∂y` for any input
    /// ([`Self::backward_input_channel_sum`]), which is all Integrated Gradients needs when the
    /// input and the baseline repeat one plane.
    channel_sum: Option<(Tensor, Tensor)>,
    /// 3×3, stride 1, padding 1 on the CPU: the kernels Winograd-transformed for the forward and
    /// for the input gradient (`winograd::conv3x3`, 4× fewer multiplications than im2col).
    winograd: Option<(WinogradKernel, WinogradKernel)>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        store: &WeightStore,
        conv: &str,
        bn: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self, ModelError> {
        let w = store.get(&format!("{conv}.weight"), &[c_out, c_in, kernel, kernel])?;
        let gamma = store.get(&format!("{bn}.weight"), &[c_out])?;
        let beta = store.get(&format!("{bn}.bias"), &[c_out])?;
        let mean = store.get(&format!("{bn}.running_mean"), &[c_out])?;
        let var = store.get(&format!("{bn}.running_var"), &[c_out])?;
        // Fold in f64 so the folded weights are as close to PyTorch's unfolded arithmetic as f32 allows.
        let f64t = |t: &Tensor| t.to_dtype(DType::F64);
        let scale = f64t(&gamma)?.div(&(f64t(&var)? + BN_EPS)?.sqrt()?)?;
        let weight = f64t(&w)?
            .broadcast_mul(&scale.reshape((c_out, 1, 1, 1))?)?
            .to_dtype(DType::F32)?;
        let bias = (f64t(&beta)? - f64t(&mean)?.mul(&scale)?)?.to_dtype(DType::F32)?;
        let pointwise = pointwise_matrices(&weight, kernel, padding)?;
        let backward_kernel = backward_kernel(&weight, stride, pointwise.as_ref())?;
        let channel_sum = channel_sum_matrix(&weight)?;
        let winograd = winograd_kernels(&weight, &backward_kernel, stride, padding)?;
        Ok(Self {
            weight,
            bias_host: bias.to_device(&candle_core::Device::Cpu)?.to_vec1()?,
            bias: bias.reshape((1, c_out, 1, 1))?,
            backward_kernel,
            pointwise,
            channel_sum,
            winograd,
            c_in,
            c_out,
            kernel,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        fused::bias_act(self.convolve(x)?, &self.bias_host, &self.bias, false)
    }

    /// `relu(W ⋆ x + b)`, bias and ReLU in one pass over the gemm's output on the CPU.
    pub fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        fused::bias_act(self.convolve(x)?, &self.bias_host, &self.bias, true)
    }

    /// `relu(s + αᵢ·d + b)` for each αᵢ, where `s = W ⋆ x′` and `d = W ⋆ (x − x′)` (`[1, C, h, w]`,
    /// from [`Self::convolve`]): this layer's output at the path points x′ + αᵢ(x − x′) without
    /// convolving them, since the convolution is linear in its input.
    fn forward_relu_on_path(
        &self,
        s: &Tensor,
        d: &Tensor,
        alphas: &[f32],
    ) -> candle_core::Result<Tensor> {
        if let Some(y) = fused::lerp_bias_relu(s, d, alphas, &self.bias_host)? {
            return Ok(y);
        }
        let alpha = Tensor::from_vec(alphas.to_vec(), (alphas.len(), 1, 1, 1), s.device())?;
        let y = s.broadcast_add(&d.broadcast_mul(&alpha)?)?;
        fused::bias_act(y, &self.bias_host, &self.bias, true)
    }

    /// `W ⋆ x` without the bias: a fresh tensor the caller holds alone.
    fn convolve(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        #[cfg(feature = "cudnn")]
        if self.pointwise.is_none() {
            if let Some(y) = super::cudnn::conv2d(x, &self.weight, self.stride, self.padding)? {
                return Ok(y);
            }
        }
        if let Some((matrix, _)) = &self.pointwise {
            let x = subsample(x, self.stride)?;
            let (n, c, h, w) = x.dims4()?;
            return fused::weight_matmul(matrix, &x.reshape((n, c, h * w))?)?
                .reshape((n, self.c_out, h, w));
        }
        if let Some((summed, _)) = &self.channel_sum {
            if let Some(plane) = im2col::shared_channel(x)? {
                if let Some(y) =
                    im2col::conv2d(&plane, summed, self.kernel, self.stride, self.padding)?
                {
                    return Ok(y);
                }
            }
        }
        if let Some((forward, _)) = &self.winograd {
            if let Some(y) = winograd::conv3x3(x, forward)? {
                return Ok(y);
            }
        }
        let matrix = self.weight_matrix()?;
        if let Some(y) = im2col::conv2d(x, &matrix, self.kernel, self.stride, self.padding)? {
            return Ok(y);
        }
        x.conv2d(&self.weight, self.padding, self.stride, 1, 1)
    }

    /// [`Self::convolve`] for a channel-major batch ([`PlaneOrder::ChannelMajor`]: `x` is
    /// `[c_in, n, h, w]`, the result `[c_out, n, oh, ow]`): 1×1 and strided convolutions as one
    /// product over the batch, 3×3 stride-1 ones on Winograd's channel-major path. Where none of
    /// these applies, the batch goes through [`Self::convolve`] in NCHW and back.
    fn convolve_channel_major(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if fused::applies(x) {
            if let Some((matrix, _)) = &self.pointwise {
                let x = subsample(x, self.stride)?;
                let (c, n, h, w) = x.dims4()?;
                return fused::weight_matmul_columns(matrix, &x.reshape((c, n * h * w))?)?
                    .reshape((self.c_out, n, h, w));
            }
            if self.stride == 1 {
                if let Some((forward, _)) = &self.winograd {
                    if let Some(y) = winograd::conv3x3_channel_major(x, forward)? {
                        return Ok(y);
                    }
                }
            }
            if self.channel_sum.is_none() {
                let matrix = self.weight_matrix()?;
                if let Some(y) = im2col::conv2d_ordered(
                    x,
                    &matrix,
                    self.kernel,
                    self.stride,
                    self.padding,
                    PlaneOrder::ChannelMajor,
                )? {
                    return Ok(y);
                }
            }
        }
        swap_images_and_channels(&self.convolve(&swap_images_and_channels(x)?)?)
    }

    /// [`Self::backward_input`] for a channel-major batch: `grad` is `[c_out, n, h, w]`, the
    /// result `[c_in, n, H, W]`.
    fn backward_input_channel_major(
        &self,
        grad: &Tensor,
        input_hw: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        if fused::applies(grad) {
            let s = self.stride;
            let (c_out, n, h, w) = grad.dims4()?;
            let columns = grad.reshape((c_out, n * h * w))?;
            if let (Some((_, transposed)), 1) = (&self.pointwise, s) {
                return fused::weight_matmul_columns(transposed, &columns)?
                    .reshape((self.c_in, n, h, w));
            }
            if s == 1 {
                if let Some((_, backward)) = &self.winograd {
                    if let Some(g) = winograd::conv3x3_channel_major(grad, backward)? {
                        return Ok(g);
                    }
                }
            } else if self.channel_sum.is_none() {
                // One product for every image's taps, `[c_in·k·k, n·h·w]`, then col2im.
                let taps = fused::weight_matmul_columns(self.strided_backward_kernel(), &columns)?;
                let geometry =
                    self.col2im_geometry(self.c_in, (h, w), input_hw, PlaneOrder::ChannelMajor);
                if let Some(g) = fused::col2im(&taps, geometry)? {
                    return Ok(g);
                }
            }
        }
        swap_images_and_channels(&self.backward_input(&swap_images_and_channels(grad)?, input_hw)?)
    }

    /// `Σ_c ∂L/∂x_c` as `[n, 1, H, W]`: the input gradient summed over the input channels. With
    /// the summed kernel (the image convolution, stride > 1 as in the stem) this is the strided
    /// input gradient of a one-channel convolution; otherwise the per-channel gradient, summed.
    pub fn backward_input_channel_sum(
        &self,
        grad: &Tensor,
        input_hw: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        #[cfg(feature = "cudnn")]
        if let (Some((summed, _)), true) = (&self.channel_sum, self.stride > 1) {
            let kernel = summed.reshape((self.c_out, 1, self.kernel, self.kernel))?;
            if let Some(g) = super::cudnn::conv2d_input_gradient(
                grad,
                &kernel,
                self.stride,
                self.padding,
                input_hw,
            )? {
                return Ok(g);
            }
        }
        match &self.channel_sum {
            Some((_, transposed)) if self.stride > 1 => {
                self.strided_backward_input(transposed, 1, grad, input_hw)
            }
            _ => self.backward_input(grad, input_hw)?.sum_keepdim(1),
        }
    }

    /// `∂L/∂x` from `∂L/∂y`; `input_hw` is the spatial size of `x` (needed when the stride
    /// dropped a row or column).
    pub fn backward_input(
        &self,
        grad: &Tensor,
        input_hw: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        let (k, p, s) = (self.kernel, self.padding, self.stride);
        if let (Some((_, transposed)), 1) = (&self.pointwise, s) {
            let (n, c_out, h, w) = grad.dims4()?;
            return fused::weight_matmul(transposed, &grad.reshape((n, c_out, h * w))?)?
                .reshape((n, self.c_in, h, w));
        }
        #[cfg(feature = "cudnn")]
        if let Some(g) = super::cudnn::conv2d_input_gradient(grad, &self.weight, s, p, input_hw)? {
            return Ok(g);
        }
        if s == 1 {
            if let Some((_, backward)) = &self.winograd {
                if let Some(g) = winograd::conv3x3(grad, backward)? {
                    return Ok(g);
                }
            }
            let matrix = self
                .backward_kernel
                .reshape((self.c_in, self.c_out * k * k))?;
            if let Some(g) = im2col::conv2d(grad, &matrix, k, 1, k - 1 - p)? {
                return Ok(g);
            }
            return grad.conv2d(&self.backward_kernel, k - 1 - p, 1, 1, 1);
        }
        self.strided_backward_input(self.strided_backward_kernel(), self.c_in, grad, input_hw)
    }

    /// `W` as the matrix `[c_out, c_in·k·k]` of an im2col product.
    fn weight_matrix(&self) -> candle_core::Result<Tensor> {
        self.weight
            .reshape((self.c_out, self.c_in * self.kernel * self.kernel))
    }

    /// The kernel whose product gives a strided convolution's per-tap input gradients: the
    /// transposed 1×1 weights, or `backward_kernel`.
    fn strided_backward_kernel(&self) -> &Tensor {
        match &self.pointwise {
            Some((_, transposed)) => transposed,
            None => &self.backward_kernel,
        }
    }

    /// Where this convolution's per-tap input-gradient contributions land: `grid` is its output
    /// grid, `input_hw` its input's.
    fn col2im_geometry(
        &self,
        c_in: usize,
        grid: (usize, usize),
        input_hw: (usize, usize),
        order: PlaneOrder,
    ) -> fused::Col2Im {
        fused::Col2Im {
            c_in,
            k: self.kernel,
            stride: self.stride,
            padding: self.padding,
            grid,
            input: input_hw,
            order,
        }
    }

    /// The input gradient of this convolution (stride > 1) with `backward_kernel` = `Wᵀ` as
    /// `[c_in·k·k, c_out]`: one gemm for the per-tap contributions, then col2im. `c_in` is 1 for
    /// the channel-summed kernel.
    fn strided_backward_input(
        &self,
        backward_kernel: &Tensor,
        c_in: usize,
        grad: &Tensor,
        input_hw: (usize, usize),
    ) -> candle_core::Result<Tensor> {
        let (k, p, s) = (self.kernel, self.padding, self.stride);
        let (n, c_out, h, w) = grad.dims4()?;
        debug_assert_eq!(c_out, self.c_out);
        // taps[n, ci, ky, kx, i, j] = Σ_co W[co, ci, ky, kx] ∂y[n, co, i, j]; it lands on input
        // pixel (s·i + ky − p, s·j + kx − p).
        let taps = fused::weight_matmul(backward_kernel, &grad.reshape((n, c_out, h * w))?)?;
        let geometry = self.col2im_geometry(c_in, (h, w), input_hw, PlaneOrder::ImageMajor);
        if let Some(g) = fused::col2im(&taps, geometry)? {
            return Ok(g);
        }
        let taps = taps.reshape((n, c_in, k, k, h, w))?;
        // Polyphase col2im: tap (ky, kx) = (s·qy + py, s·qx + px) adds to phase (py, px) at
        // low-resolution offset (qy, qx); the s×s phases are then interleaved once.
        let q = k.div_ceil(s);
        let (ph, pw) = (h + q - 1, w + q - 1);
        let mut phase_rows = Vec::with_capacity(s);
        for py in 0..s {
            let mut phase_cols = Vec::with_capacity(s);
            for px in 0..s {
                let mut acc: Option<Tensor> = None;
                for qy in 0..q {
                    for qx in 0..q {
                        let (ky, kx) = (s * qy + py, s * qx + px);
                        if ky >= k || kx >= k {
                            continue;
                        }
                        let tap = taps
                            .i((.., .., ky, kx))?
                            .pad_with_zeros(2, qy, q - 1 - qy)?
                            .pad_with_zeros(3, qx, q - 1 - qx)?;
                        acc = Some(match acc {
                            Some(a) => (a + tap)?,
                            None => tap,
                        });
                    }
                }
                let acc = match acc {
                    Some(a) => a,
                    None => Tensor::zeros((n, c_in, ph, pw), grad.dtype(), grad.device())?,
                };
                phase_cols.push(acc);
            }
            // [n, c, ph, pw, s] → [n, c, ph, pw·s]: column phases interleaved.
            phase_rows.push(Tensor::stack(&phase_cols, 4)?.reshape((n, c_in, ph, pw * s))?);
        }
        // [n, c, ph, s, pw·s] → [n, c, ph·s, pw·s]: row phases interleaved.
        let canvas = Tensor::stack(&phase_rows, 3)?.reshape((n, c_in, ph * s, pw * s))?;
        crop_padded(&canvas, p, input_hw)
    }
}

/// `Σ_c W[:, c]` for the image convolution (`c_in` = 3, `k` > 1) as `[c_out, k·k]` (forward)
/// and its transpose `[k·k, c_out]` (input gradient), else `None`.
fn channel_sum_matrix(weight: &Tensor) -> candle_core::Result<Option<(Tensor, Tensor)>> {
    let (c_out, c_in, k, _) = weight.dims4()?;
    if c_in != 3 || k == 1 {
        return Ok(None);
    }
    let summed = weight.sum_keepdim(1)?.reshape((c_out, k * k))?;
    let transposed = summed.t()?.contiguous()?;
    Ok(Some((summed, transposed)))
}

/// The Winograd-transformed forward and input-gradient kernels of a 3×3, stride-1, padding-1
/// convolution whose weights are on the CPU and not larger than `winograd::MAX_KERNEL_PAIRS`,
/// else `None`.
fn winograd_kernels(
    weight: &Tensor,
    backward_kernel: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Option<(WinogradKernel, WinogradKernel)>> {
    let (c_out, c_in, k, _) = weight.dims4()?;
    if k != 3
        || stride != 1
        || padding != 1
        || !weight.device().is_cpu()
        || c_out * c_in > winograd::MAX_KERNEL_PAIRS
    {
        return Ok(None);
    }
    Ok(Some((
        WinogradKernel::new(weight)?,
        WinogradKernel::new(backward_kernel)?,
    )))
}

/// [`ConvBn::backward_kernel`]. A 1×1 kernel's is the transposed matrix of `pointwise` itself
/// (the flip of a 1×1 kernel changes nothing), not a copy: the copy held another 48 MB, the size
/// of every 1×1 weight of ResNet-50.
fn backward_kernel(
    weight: &Tensor,
    stride: usize,
    pointwise: Option<&(Tensor, Tensor)>,
) -> candle_core::Result<Tensor> {
    let (c_out, c_in, k, _) = weight.dims4()?;
    if let Some((_, transposed)) = pointwise {
        return if stride == 1 {
            transposed.reshape((c_in, c_out, 1, 1))
        } else {
            Ok(transposed.clone())
        };
    }
    if stride == 1 {
        let reversed: Vec<u32> = (0..k as u32).rev().collect();
        let rev = Tensor::from_vec(reversed, k, weight.device())?;
        weight
            .transpose(0, 1)?
            .contiguous()?
            .index_select(&rev, 2)?
            .index_select(&rev, 3)?
            .contiguous()
    } else {
        weight.reshape((c_out, c_in * k * k))?.t()?.contiguous()
    }
}

/// `[c_out, c_in]` and `[c_in, c_out]` for a 1×1 kernel without padding.
fn pointwise_matrices(
    weight: &Tensor,
    kernel: usize,
    padding: usize,
) -> candle_core::Result<Option<(Tensor, Tensor)>> {
    if kernel != 1 || padding != 0 {
        return Ok(None);
    }
    let (c_out, c_in, _, _) = weight.dims4()?;
    let matrix = weight.reshape((c_out, c_in))?.contiguous()?;
    let transposed = matrix.t()?.contiguous()?;
    Ok(Some((matrix, transposed)))
}

/// `[a, b, h, w]` → `[b, a, h, w]`, contiguous: NCHW to channel-major and back
/// ([`PlaneOrder`]).
fn swap_images_and_channels(x: &Tensor) -> candle_core::Result<Tensor> {
    x.transpose(0, 1)?.contiguous()
}

/// `y` viewed as one image `[1, C, n·h, w]` (no copy): the per-channel passes
/// ([`fused::bias_act`], the residual join) see each channel's planes of all images as one plane.
fn as_one_image(y: &Tensor) -> candle_core::Result<Tensor> {
    let (c, n, h, w) = y.dims4()?;
    y.reshape((1, c, n * h, w))
}

/// Every `stride`-th row and column starting at 0 (the pixels a padding-0, 1×1 convolution of that
/// stride reads), contiguous.
fn subsample(x: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    if let Some(y) = fused::subsample(x, stride)? {
        return Ok(y);
    }
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    x.pad_with_zeros(2, 0, oh * stride - h)?
        .pad_with_zeros(3, 0, ow * stride - w)?
        .reshape((n, c, oh, stride, ow, stride))?
        .narrow(5, 0, 1)?
        .narrow(3, 0, 1)?
        .reshape((n, c, oh, ow))
}

/// Rows/columns `[p, p + size)` of a canvas whose index 0 is input coordinate −p; pads with zeros
/// where the canvas is too short (its last row never received a tap).
fn crop_padded(canvas: &Tensor, p: usize, (h, w): (usize, usize)) -> candle_core::Result<Tensor> {
    let (_, _, ch, cw) = canvas.dims4()?;
    let canvas = canvas.pad_with_zeros(2, 0, (p + h).saturating_sub(ch))?;
    let canvas = canvas.pad_with_zeros(3, 0, (p + w).saturating_sub(cw))?;
    canvas.narrow(2, p, h)?.narrow(3, p, w)
}

/// 1-D "max of three taps, stride 2" along `dim` of a zero-padded tensor: `m[i] = max(a[2i],
/// a[2i+1], a[2i+2])`, `out` outputs.
fn max3_stride2(a: &Tensor, dim: usize, out: usize) -> candle_core::Result<Tensor> {
    let (t0, t1, t2) = three_taps(a, dim, out)?;
    t0.maximum(&t1)?.maximum(&t2)
}

fn three_taps(a: &Tensor, dim: usize, out: usize) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let tap = |start: usize| -> candle_core::Result<Tensor> {
        let t = a.narrow(dim, start, 2 * out)?;
        let mut shape = t.dims().to_vec();
        shape[dim] = out;
        shape.insert(dim + 1, 2);
        t.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
    };
    Ok((tap(0)?, tap(1)?, tap(2)?))
}

/// Gradient of [`max3_stride2`]: each output's gradient goes to its first maximal tap.
fn max3_stride2_backward(
    a: &Tensor,
    m: &Tensor,
    grad: &Tensor,
    dim: usize,
) -> candle_core::Result<Tensor> {
    let out = m.dim(dim)?;
    let (t0, t1, t2) = three_taps(a, dim, out)?;
    let e0 = t0.eq(m)?;
    let not0 = e0.ones_like()?.sub(&e0)?;
    let e1 = t1.eq(m)?.mul(&not0)?;
    let e2 = t2.eq(m)?.mul(&not0)?.mul(&e1.ones_like()?.sub(&e1)?)?;
    let g = |mask: &Tensor| grad.mul(&mask.to_dtype(grad.dtype())?);
    let (g0, g1, g2) = (g(&e0)?, g(&e1)?, g(&e2)?);
    // even positions 2i receive g0[i] and g2[i−1]; odd positions 2i+1 receive g1[i].
    let even = (g0.pad_with_zeros(dim, 0, 1)? + g2.pad_with_zeros(dim, 1, 0)?)?;
    let odd = g1.pad_with_zeros(dim, 0, 1)?;
    let mut shape = even.dims().to_vec();
    shape[dim] = 2 * (out + 1);
    let interleaved = Tensor::stack(&[even, odd], dim + 1)?.reshape(shape)?;
    interleaved.narrow(dim, 0, a.dim(dim)?)
}

/// The stem max-pool (3×3, stride 2, padding 1).
#[derive(Clone, Debug)]
struct StemPool;

enum PoolTape {
    /// The fused CPU pass: the flat index of each window's maximum in its input plane.
    Fused { argmax: Vec<u32> },
    /// Candle ops (autograd, other devices).
    Ops {
        padded: Tensor,
        cols: Tensor,
        out: Tensor,
    },
}

impl StemPool {
    fn out_size(n: usize) -> usize {
        (n + 2 - 3) / 2 + 1
    }

    fn forward(x: &Tensor) -> candle_core::Result<(Tensor, PoolTape)> {
        let (_, _, h, w) = x.dims4()?;
        let (oh, ow) = (Self::out_size(h), Self::out_size(w));
        if let Some((out, argmax)) = fused::max_pool_3x3_s2(x, (oh, ow))? {
            return Ok((out, PoolTape::Fused { argmax }));
        }
        // One zero row/column in front (padding 1), enough behind for the last window's third tap.
        let padded = x
            .pad_with_zeros(2, 1, (2 * oh + 1).saturating_sub(h))?
            .pad_with_zeros(3, 1, (2 * ow + 1).saturating_sub(w))?;
        // Columns first, rows second: the backward then sends each gradient to the first maximum
        // in row-major order inside the window, which is PyTorch's tie rule.
        let cols = max3_stride2(&padded, 3, ow)?;
        let out = max3_stride2(&cols, 2, oh)?;
        Ok((out.clone(), PoolTape::Ops { padded, cols, out }))
    }

    fn backward(
        tape: &PoolTape,
        grad: &Tensor,
        (h, w): (usize, usize),
    ) -> candle_core::Result<Tensor> {
        match tape {
            PoolTape::Fused { argmax } => fused::max_pool_3x3_s2_backward(grad, argmax, (h, w)),
            PoolTape::Ops { padded, cols, out } => {
                let g_cols = max3_stride2_backward(cols, out, grad, 2)?;
                let g_padded = max3_stride2_backward(padded, cols, &g_cols, 3)?;
                g_padded.narrow(2, 1, h)?.narrow(3, 1, w)
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Bottleneck {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    downsample: Option<ConvBn>,
}

/// What a block's input gradient needs of its forward pass: where each of its three ReLUs was
/// positive ([`fused::relu_mask`], `u8`), and the sizes a strided convolution's gradient needs.
struct BlockTape {
    /// How the block's activations (and so its gradients) are laid out.
    order: PlaneOrder,
    input_hw: (usize, usize),
    mid_hw: (usize, usize),
    relu1: Tensor,
    relu2: Tensor,
    out: Tensor,
}

impl Bottleneck {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_keeping(x, false, PlaneOrder::ImageMajor)?.0)
    }

    /// The block's output and tape for `x` laid out in `order` (`[n, C, h, w]` or
    /// `[C, n, h, w]`); the output is laid out the same way.
    fn forward_with_tape(
        &self,
        x: &Tensor,
        order: PlaneOrder,
    ) -> candle_core::Result<(Tensor, BlockTape)> {
        let (y, tape) = self.forward_keeping(x, true, order)?;
        match tape {
            Some(tape) => Ok((y, tape)),
            None => candle_core::bail!("bottleneck: no tape kept"),
        }
    }

    /// Output plane (`h·w`) of the block for an input of `h × w`.
    fn output_plane(&self, (h, w): (usize, usize)) -> usize {
        let s = self.conv2.stride;
        h.div_ceil(s) * w.div_ceil(s)
    }

    /// The block's output, and its tape when `keep`. Each activation is dropped as soon as the
    /// next convolution has read it, so a batch's tape holds masks only.
    fn forward_keeping(
        &self,
        x: &Tensor,
        keep: bool,
        order: PlaneOrder,
    ) -> candle_core::Result<(Tensor, Option<BlockTape>)> {
        let (_, _, h, w) = x.dims4()?;
        let convolve = |conv: &ConvBn, x: &Tensor| match order {
            PlaneOrder::ImageMajor => conv.convolve(x),
            PlaneOrder::ChannelMajor => conv.convolve_channel_major(x),
        };
        // The per-channel passes take `[n, C, h, w]`: channel-major data goes in as one image.
        let per_channel = |y: Tensor| match order {
            PlaneOrder::ImageMajor => Ok(y),
            PlaneOrder::ChannelMajor => as_one_image(&y),
        };
        let relu = |conv: &ConvBn, x: &Tensor| -> candle_core::Result<(Tensor, Option<Tensor>)> {
            let y = convolve(conv, x)?;
            let shape = y.shape().clone();
            let y = per_channel(y)?;
            if keep {
                let (y, mask) = fused::bias_relu_with_mask(y, &conv.bias_host, &conv.bias)?;
                Ok((y.reshape(&shape)?, Some(mask.reshape(&shape)?)))
            } else {
                let y = fused::bias_act(y, &conv.bias_host, &conv.bias, true)?;
                Ok((y.reshape(&shape)?, None))
            }
        };
        let (relu1, mask1) = relu(&self.conv1, x)?;
        let mid_hw = (relu1.dim(2)?, relu1.dim(3)?);
        let (relu2, mask2) = relu(&self.conv2, &relu1)?;
        drop(relu1);
        // Both branches without their biases; the join adds them (one pass less over the
        // block's largest output, and over the projection's).
        let main = convolve(&self.conv3, &relu2)?;
        drop(relu2);
        let (identity, bias_host, bias) = match &self.downsample {
            Some(ds) => (
                convolve(ds, x)?,
                Cow::Owned(
                    self.conv3
                        .bias_host
                        .iter()
                        .zip(&ds.bias_host)
                        .map(|(a, b)| a + b)
                        .collect(),
                ),
                (&self.conv3.bias + &ds.bias)?,
            ),
            None => (
                x.clone(),
                Cow::Borrowed(&self.conv3.bias_host[..]),
                self.conv3.bias.clone(),
            ),
        };
        // `main` is conv3's fresh output: the residual join writes into it.
        let shape = main.shape().clone();
        let (main, identity) = (per_channel(main)?, per_channel(identity)?);
        let (out, mask3) = if keep {
            let (y, mask) = fused::bias_add_relu_with_mask(main, &identity, &bias_host, &bias)?;
            (y.reshape(&shape)?, Some(mask.reshape(&shape)?))
        } else {
            (
                fused::bias_add_relu_in_place(main, &identity, &bias_host, &bias)?
                    .reshape(&shape)?,
                None,
            )
        };
        let tape = match (mask1, mask2, mask3) {
            (Some(relu1), Some(relu2), Some(out)) => Some(BlockTape {
                order,
                input_hw: (h, w),
                mid_hw,
                relu1,
                relu2,
                out,
            }),
            _ => None,
        };
        Ok((out, tape))
    }

    /// The block's input gradient from its output's, both laid out as the tape's activations.
    fn backward(&self, tape: &BlockTape, grad: &Tensor) -> candle_core::Result<Tensor> {
        let backward = |conv: &ConvBn, g: &Tensor, hw: (usize, usize)| match tape.order {
            PlaneOrder::ImageMajor => conv.backward_input(g, hw),
            PlaneOrder::ChannelMajor => conv.backward_input_channel_major(g, hw),
        };
        let g_sum = fused::relu_backward(grad, &tape.out)?;
        let (h2, w2) = (tape.relu2.dim(2)?, tape.relu2.dim(3)?);
        // Each convolution's input gradient is fresh: the ReLU's gradient is taken in its buffer.
        let g = backward(&self.conv3, &g_sum, (h2, w2))?;
        let g = fused::relu_backward_in_place(g, &tape.relu2)?;
        let g = backward(&self.conv2, &g, tape.mid_hw)?;
        let g = fused::relu_backward_in_place(g, &tape.relu1)?;
        let g_main = backward(&self.conv1, &g, tape.input_hw)?;
        let g_identity = match &self.downsample {
            Some(ds) => backward(ds, &g_sum, tape.input_hw)?,
            None => g_sum,
        };
        // `g_main` is conv1's fresh input gradient: the sum is written into it.
        fused::add_in_place(g_main, &g_identity)
    }
}

/// What [`Backbone::backward_input`] needs of [`Backbone::forward_with_tape`]: ReLU masks
/// (`fused::relu_mask`) rather than activations, the max-pool's choices, and sizes.
pub struct Tape {
    input_hw: (usize, usize),
    stem_hw: (usize, usize),
    /// The stem ReLU's mask.
    stem_relu: Tensor,
    pool: PoolTape,
    blocks: Vec<BlockTape>,
}

/// The stem convolution (without its bias) at both ends of a straight path x′ + α(x − x′): at x′
/// and on x − x′. See [`Backbone::stem_path`].
pub struct StemPath {
    start: Tensor,
    step: Tensor,
    input_hw: (usize, usize),
}

/// Blocks of a batch's tape pass whose output planes have at most this many positions run
/// channel-major ([`PlaneOrder`]): layer3 (14 × 14) and layer4 (7 × 7) at 224 px.
const CHANNEL_MAJOR_MAX_PLANE: usize = 14 * 14;

/// Whether a batch pass still in NCHW (`order`) turns channel-major at `block` (input `x`):
/// batches of more than one image on the fused CPU passes, from the first block whose output
/// plane is small enough.
fn channel_major_from(
    block: &Bottleneck,
    x: &Tensor,
    order: PlaneOrder,
) -> candle_core::Result<bool> {
    let (n, _, h, w) = x.dims4()?;
    Ok(order == PlaneOrder::ImageMajor
        && n > 1
        && fused::applies(x)
        && block.output_plane((h, w)) <= CHANNEL_MAJOR_MAX_PLANE)
}

/// Everything up to and including layer4 (the Grad-CAM layer).
#[derive(Clone, Debug)]
pub struct Backbone {
    stem: ConvBn,
    blocks: Vec<Bottleneck>,
}

impl Backbone {
    pub(crate) fn load(store: &WeightStore, arch: &Architecture) -> Result<Self, ModelError> {
        let w = arch.width;
        let stem = ConvBn::load(store, "conv1", "bn1", 3, w, 7, 2, 3)?;
        let mut blocks = Vec::new();
        let mut in_ch = w;
        for (stage, &count) in arch.layers.iter().enumerate() {
            let planes = w << stage;
            let out_ch = planes * 4;
            for i in 0..count {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let p = format!("layer{}.{i}", stage + 1);
                let downsample = if i == 0 && (stride != 1 || in_ch != out_ch) {
                    Some(ConvBn::load(
                        store,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        in_ch,
                        out_ch,
                        1,
                        stride,
                        0,
                    )?)
                } else {
                    None
                };
                blocks.push(Bottleneck {
                    conv1: ConvBn::load(
                        store,
                        &format!("{p}.conv1"),
                        &format!("{p}.bn1"),
                        in_ch,
                        planes,
                        1,
                        1,
                        0,
                    )?,
                    conv2: ConvBn::load(
                        store,
                        &format!("{p}.conv2"),
                        &format!("{p}.bn2"),
                        planes,
                        planes,
                        3,
                        stride,
                        1,
                    )?,
                    conv3: ConvBn::load(
                        store,
                        &format!("{p}.conv3"),
                        &format!("{p}.bn3"),
                        planes,
                        out_ch,
                        1,
                        1,
                        0,
                    )?,
                    downsample,
                });
                in_ch = out_ch;
            }
        }
        Ok(Self { stem, blocks })
    }

    /// layer4 activation `[n, C, h, w]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        super::on_compute_pool(|| {
            let x = self.stem.forward_relu(x)?;
            let (x, _) = StemPool::forward(&x)?;
            self.through_blocks(x, |block, x, order| {
                Ok(block.forward_keeping(x, false, order)?.0)
            })
        })
    }

    /// `x` (NCHW) through every block with `pass`, each block's input laid out in the order
    /// `pass` is given; the result NCHW. A batch turns channel-major at the first block whose
    /// output plane is small enough ([`channel_major_from`]) and back after the last.
    fn through_blocks(
        &self,
        mut x: Tensor,
        mut pass: impl FnMut(&Bottleneck, &Tensor, PlaneOrder) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut order = PlaneOrder::ImageMajor;
        for block in &self.blocks {
            if channel_major_from(block, &x, order)? {
                x = swap_images_and_channels(&x)?;
                order = PlaneOrder::ChannelMajor;
            }
            x = pass(block, &x, order)?;
        }
        match order {
            PlaneOrder::ImageMajor => Ok(x),
            PlaneOrder::ChannelMajor => swap_images_and_channels(&x),
        }
    }

    /// Like [`Self::forward`], also returning the activation at the end of every stage (layer1 …
    /// layer4, `[n, C_l, h_l, w_l]`; the last one is the layer4 activation itself). The scope
    /// guard pools these; they are the tensors the forward computes anyway, so this costs no
    /// extra pass.
    pub fn forward_with_stages(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        super::on_compute_pool(|| self.forward_with_stages_here(x))
    }

    fn forward_with_stages_here(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let x = self.stem.forward_relu(x)?;
        let (mut x, _) = StemPool::forward(&x)?;
        let mut stages = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            // A stage starts at each block with a projection shortcut (every first block).
            if i > 0 && block.downsample.is_some() {
                stages.push(x.clone());
            }
            x = block.forward(&x)?;
        }
        stages.push(x.clone());
        Ok((x, stages))
    }

    /// Like [`Self::forward`], keeping what [`Self::backward_input`] needs.
    pub fn forward_with_tape(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tape)> {
        super::on_compute_pool(|| self.forward_with_tape_here(x))
    }

    fn forward_with_tape_here(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tape)> {
        let (_, _, h, w) = x.dims4()?;
        self.forward_with_tape_from_stem(self.stem.forward_relu(x)?, (h, w))
    }

    /// The stem convolution of the path x′ + α(x − x′) at its start x′ and on its step x − x′
    /// (`[1, 3, H, W]` each), for [`Self::forward_with_tape_on_path`] and
    /// [`Self::stem_backward_input`].
    ///
    /// Why: the stem convolution is linear, `W ⋆ (x′ + α(x − x′)) = W ⋆ x′ + α · W ⋆ (x − x′)`,
    /// so Integrated Gradients needs it twice per film rather than once per path point; and its
    /// input gradient is linear in the output gradient, `Σᵢ wᵢ Wᵀ ⋆ gᵢ = Wᵀ ⋆ Σᵢ wᵢ gᵢ`, so the
    /// weighted sum of the path's gradients can be taken at the stem's output and sent through the
    /// transposed convolution once. Both are exact up to float rounding; together they remove the
    /// stem's convolution and its input gradient (an im2col copy, a gemm with 49 rows and a
    /// col2im scatter, per film and per pass) from every IG step.
    pub fn stem_path(&self, start: &Tensor, step: &Tensor) -> candle_core::Result<StemPath> {
        let (_, _, h, w) = start.dims4()?;
        super::on_compute_pool(|| {
            Ok(StemPath {
                start: self.stem.convolve(start)?,
                step: self.stem.convolve(step)?,
                input_hw: (h, w),
            })
        })
    }

    /// [`Self::forward_with_tape`] at the path points x′ + αᵢ(x − x′), the stem's output taken
    /// from `path` ([`Self::stem_path`]).
    pub fn forward_with_tape_on_path(
        &self,
        path: &StemPath,
        alphas: &[f32],
    ) -> candle_core::Result<(Tensor, Tape)> {
        super::on_compute_pool(|| {
            let stem_relu = self
                .stem
                .forward_relu_on_path(&path.start, &path.step, alphas)?;
            self.forward_with_tape_from_stem(stem_relu, path.input_hw)
        })
    }

    fn forward_with_tape_from_stem(
        &self,
        stem_relu: Tensor,
        (h, w): (usize, usize),
    ) -> candle_core::Result<(Tensor, Tape)> {
        let stem_hw = (stem_relu.dim(2)?, stem_relu.dim(3)?);
        let (x, pool) = StemPool::forward(&stem_relu)?;
        let stem_relu = fused::relu_mask(&stem_relu)?;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let x = self.through_blocks(x, |block, x, order| {
            let (y, tape) = block.forward_with_tape(x, order)?;
            blocks.push(tape);
            Ok(y)
        })?;
        Ok((
            x,
            Tape {
                input_hw: (h, w),
                stem_hw,
                stem_relu,
                pool,
                blocks,
            },
        ))
    }

    /// `∂L/∂input` given `∂L/∂layer4`.
    pub fn backward_input(&self, tape: &Tape, grad_layer4: &Tensor) -> candle_core::Result<Tensor> {
        super::on_compute_pool(|| {
            let g = self.stem_output_gradient(tape, grad_layer4)?;
            self.stem.backward_input(&g, tape.input_hw)
        })
    }

    /// `∂L/∂(W ⋆ x)` given `∂L/∂layer4`: the gradient at the stem convolution's output, which
    /// [`Self::stem_backward_input`] turns into the input gradient (see [`Self::stem_path`]).
    pub fn backward_to_stem(
        &self,
        tape: &Tape,
        grad_layer4: &Tensor,
    ) -> candle_core::Result<Tensor> {
        super::on_compute_pool(|| self.stem_output_gradient(tape, grad_layer4))
    }

    /// `∂L/∂x` from `∂L/∂(W ⋆ x)` (`[n, C, h, w]`, [`Self::backward_to_stem`]) for inputs of the
    /// size `path` was made for; summed over the input channels (`[n, 1, H, W]`, as
    /// [`Self::backward_input_channel_sum`]) when `channel_sum`.
    pub fn stem_backward_input(
        &self,
        path: &StemPath,
        grad_stem: &Tensor,
        channel_sum: bool,
    ) -> candle_core::Result<Tensor> {
        super::on_compute_pool(|| {
            if channel_sum {
                self.stem
                    .backward_input_channel_sum(grad_stem, path.input_hw)
            } else {
                self.stem.backward_input(grad_stem, path.input_hw)
            }
        })
    }

    /// `∂L/∂(stem convolution's output)`: everything of the input gradient but the stem's own
    /// convolution.
    fn stem_output_gradient(
        &self,
        tape: &Tape,
        grad_layer4: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let mut g = grad_layer4.clone();
        let mut order = PlaneOrder::ImageMajor;
        for (block, block_tape) in self.blocks.iter().zip(&tape.blocks).rev() {
            if block_tape.order != order {
                g = swap_images_and_channels(&g)?;
                order = block_tape.order;
            }
            g = block.backward(block_tape, &g)?;
        }
        if order == PlaneOrder::ChannelMajor {
            g = swap_images_and_channels(&g)?;
        }
        let g = StemPool::backward(&tape.pool, &g, tape.stem_hw)?;
        // The max-pool's gradient is a fresh tensor: the ReLU's is taken in its buffer.
        fused::relu_backward_in_place(g, &tape.stem_relu)
    }

    /// [`Self::backward_input`] summed over the input channels, `[n, 1, H, W]`: a third of the
    /// stem's input-gradient work ([`ConvBn::backward_input_channel_sum`]).
    pub fn backward_input_channel_sum(
        &self,
        tape: &Tape,
        grad_layer4: &Tensor,
    ) -> candle_core::Result<Tensor> {
        super::on_compute_pool(|| {
            let g = self.stem_output_gradient(tape, grad_layer4)?;
            self.stem.backward_input_channel_sum(&g, tape.input_hw)
        })
    }
}

/// `Dropout(p) → Linear(C, hidden) → ReLU → Dropout(p) → Linear(hidden, classes)` on the pooled
/// layer4 features (`fc.1`, `fc.4` in the checkpoint).
#[derive(Clone, Debug)]
pub struct Head {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

/// Dropout masks for a batch of head evaluations, already scaled by `1/(1−p)`.
pub struct DropoutMasks {
    pub features: Tensor,
    pub hidden: Tensor,
}

impl Head {
    pub(crate) fn load(
        store: &WeightStore,
        arch: &Architecture,
        classes: usize,
    ) -> Result<Self, ModelError> {
        let c = arch.feature_channels();
        let hdn = arch.head_hidden;
        Ok(Self {
            w1: store.get("fc.1.weight", &[hdn, c])?,
            b1: store.get("fc.1.bias", &[hdn])?,
            w2: store.get("fc.4.weight", &[classes, hdn])?,
            b2: store.get("fc.4.bias", &[classes])?,
        })
    }

    pub fn hidden_units(&self) -> usize {
        self.w1.dim(0).unwrap_or(0)
    }

    /// Logits `[n, classes]` from pooled features `[n, C]`; with masks, one dropout sample per row.
    pub fn forward(
        &self,
        pooled: &Tensor,
        masks: Option<&DropoutMasks>,
    ) -> candle_core::Result<Tensor> {
        let (_, hidden) = self.hidden(pooled, masks)?;
        hidden.matmul(&self.w2.t()?)?.broadcast_add(&self.b2)
    }

    /// Pre-activation and (masked) hidden activation of the head.
    fn hidden(
        &self,
        pooled: &Tensor,
        masks: Option<&DropoutMasks>,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let x = match masks {
            Some(m) => pooled.mul(&m.features)?,
            None => pooled.clone(),
        };
        let z1 = x.matmul(&self.w1.t()?)?.broadcast_add(&self.b1)?;
        let mut h = z1.relu()?;
        if let Some(m) = masks {
            h = h.mul(&m.hidden)?;
        }
        Ok((z1, h))
    }

    /// `∂logit_target/∂pooled` for each row `[n, C]` (with the same masks as the forward).
    pub fn grad_pooled(
        &self,
        pooled: &Tensor,
        masks: Option<&DropoutMasks>,
        target: usize,
    ) -> candle_core::Result<Tensor> {
        let (z1, _) = self.hidden(pooled, masks)?;
        let n = pooled.dim(0)?;
        // ∂logit_c/∂h = W2[c]; through dropout-2, ReLU, Linear-1, dropout-1.
        let w2c = self
            .w2
            .i(target)?
            .unsqueeze(0)?
            .broadcast_as((n, self.hidden_units()))?;
        let mut g = w2c.mul(&z1.gt(0f32)?.to_dtype(DType::F32)?)?;
        if let Some(m) = masks {
            g = g.mul(&m.hidden)?;
        }
        let mut g = g.matmul(&self.w1)?;
        if let Some(m) = masks {
            g = g.mul(&m.features)?;
        }
        Ok(g)
    }
}

/// Global average pooling `[n, C, h, w] → [n, C]`.
pub fn global_avg_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    x.flatten_from(2)?.mean(D::Minus1)
}

/// Parameter names and shapes a torchvision checkpoint of this architecture holds, in state_dict
/// order (without `num_batches_tracked`).
pub fn expected_parameters(arch: &Architecture, classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
        for suffix in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{name}.{suffix}"), vec![c]));
        }
    };
    let w = arch.width;
    out.push(("conv1.weight".into(), vec![w, 3, 7, 7]));
    bn(&mut out, "bn1", w);
    let mut in_ch = w;
    for (stage, &count) in arch.layers.iter().enumerate() {
        let planes = w << stage;
        let out_ch = planes * 4;
        for i in 0..count {
            let p = format!("layer{}.{i}", stage + 1);
            out.push((format!("{p}.conv1.weight"), vec![planes, in_ch, 1, 1]));
            bn(&mut out, &format!("{p}.bn1"), planes);
            out.push((format!("{p}.conv2.weight"), vec![planes, planes, 3, 3]));
            bn(&mut out, &format!("{p}.bn2"), planes);
            out.push((format!("{p}.conv3.weight"), vec![out_ch, planes, 1, 1]));
            bn(&mut out, &format!("{p}.bn3"), out_ch);
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            if i == 0 && (stride != 1 || in_ch != out_ch) {
                out.push((
                    format!("{p}.downsample.0.weight"),
                    vec![out_ch, in_ch, 1, 1],
                ));
                bn(&mut out, &format!("{p}.downsample.1"), out_ch);
            }
            in_ch = out_ch;
        }
    }
    let c = arch.feature_channels();
    out.push(("fc.1.weight".into(), vec![arch.head_hidden, c]));
    out.push(("fc.1.bias".into(), vec![arch.head_hidden]));
    out.push(("fc.4.weight".into(), vec![classes, arch.head_hidden]));
    out.push(("fc.4.bias".into(), vec![classes]));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Var};

    impl ConvBn {
        fn from_weight(weight: Tensor, stride: usize, padding: usize) -> Self {
            let (c_out, c_in, k, _) = weight.dims4().unwrap();
            let bias = Tensor::zeros((1, c_out, 1, 1), DType::F32, weight.device()).unwrap();
            let pointwise = pointwise_matrices(&weight, k, padding).unwrap();
            let backward_kernel = backward_kernel(&weight, stride, pointwise.as_ref()).unwrap();
            let channel_sum = channel_sum_matrix(&weight).unwrap();
            let winograd = winograd_kernels(&weight, &backward_kernel, stride, padding).unwrap();
            Self {
                weight,
                bias_host: vec![0.0; c_out],
                bias,
                backward_kernel,
                pointwise,
                channel_sum,
                winograd,
                c_in,
                c_out,
                kernel: k,
                stride,
                padding,
            }
        }
    }

    /// Σ (y ⊙ r) for a fixed random r, differentiated by autograd and by the explicit rule.
    fn check(x: Tensor, f: impl Fn(&Tensor) -> Tensor, backward: impl Fn(&Tensor) -> Tensor) {
        let var = Var::from_tensor(&x).unwrap();
        let y = f(var.as_tensor());
        let r = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
        let grads = y.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
        let auto: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let explicit: Vec<f32> = backward(&r).flatten_all().unwrap().to_vec1().unwrap();
        let diff = auto
            .iter()
            .zip(&explicit)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Relative to the gradient's size: both are f32 sums of up to hundreds of products in
        // different orders (and Winograd's transforms amplify rounding a few times), so a fixed
        // 1e-4 failed about one random draw in ten (gradients up to ~30).
        let scale = auto.iter().fold(0f32, |m, a| m.max(a.abs()));
        // Measured over 220 draws: at most 6e-6 of the largest gradient; a wrong tap or mask
        // is off by a share of order one.
        assert!(
            diff <= 2e-5 * scale.max(1.0),
            "max diff {diff} for gradients up to {scale}"
        );
    }

    #[test]
    fn conv_input_gradient_matches_autograd_for_every_shape() {
        for (k, s, p, h) in [
            (1, 1, 0, 9),
            (3, 1, 1, 9),
            // Two 30² or 29² planes: 128 tiles of 4², so the explicit pass takes the Winograd
            // path (`winograd::conv3x3`); 9² takes im2col.
            (3, 1, 1, 30),
            (3, 1, 1, 29),
            (3, 2, 1, 10),
            (3, 2, 1, 9),
            (1, 2, 0, 10),
            (7, 2, 3, 16),
            (7, 2, 3, 15),
        ] {
            let conv = ConvBn::from_weight(
                Tensor::randn(0f32, 1.0, (5, 3, k, k), &Device::Cpu).unwrap(),
                s,
                p,
            );
            assert_eq!(conv.winograd.is_some(), (k, s) == (3, 1));
            let x = Tensor::randn(0f32, 1.0, (2, 3, h, h), &Device::Cpu).unwrap();
            check(
                x,
                |x| conv.forward(x).unwrap(),
                |g| conv.backward_input(g, (h, h)).unwrap(),
            );
        }
    }

    /// A 1×1 convolution's backward kernel is the pointwise transpose itself, not a copy of it
    /// (the copies held 48 MB of the shipped model), and still `Wᵀ` in the layout each stride's
    /// path reads.
    #[test]
    fn a_pointwise_backward_kernel_is_the_transpose_not_a_copy() {
        for stride in [1, 2] {
            let weight = Tensor::randn(0f32, 1.0, (5, 3, 1, 1), &Device::Cpu).unwrap();
            let conv = ConvBn::from_weight(weight.clone(), stride, 0);
            let (_, transposed) = conv.pointwise.as_ref().unwrap();
            let (shared, _) = transposed.storage_and_layout();
            let (own, _) = conv.backward_kernel.storage_and_layout();
            assert!(std::ptr::eq(&*shared, &*own), "stride {stride}: a copy");
            drop((shared, own));
            let expected = weight.transpose(0, 1).unwrap();
            let expected = if stride == 1 {
                expected
            } else {
                expected.reshape((3, 5)).unwrap()
            };
            assert_eq!(conv.backward_kernel.dims(), expected.dims());
            let diff = (&conv.backward_kernel - &expected)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0, "stride {stride}");
        }
    }

    /// The fused CPU forward (gemm, then bias and ReLU in one pass; residual join in place)
    /// against candle's own `conv2d`, `broadcast_add` and `relu` with a non-zero bias.
    #[test]
    fn fused_forward_matches_candle_ops() {
        let max_diff = super::im2col::max_abs_diff;
        for (k, s, p, h) in [
            (1, 1, 0, 9),
            (3, 1, 1, 9),
            (3, 1, 1, 30),
            (3, 2, 1, 9),
            (1, 2, 0, 10),
            (1, 2, 0, 9),
            (7, 2, 3, 15),
        ] {
            let mut conv = ConvBn::from_weight(
                Tensor::randn(0f32, 1.0, (5, 3, k, k), &Device::Cpu).unwrap(),
                s,
                p,
            );
            let bias = Tensor::randn(0f32, 1.0, 5, &Device::Cpu).unwrap();
            conv.bias_host = bias.to_vec1().unwrap();
            conv.bias = bias.reshape((1, 5, 1, 1)).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, 3, h, h), &Device::Cpu).unwrap();
            let reference = x
                .conv2d(&conv.weight, p, s, 1, 1)
                .unwrap()
                .broadcast_add(&conv.bias)
                .unwrap();
            // Relative to the outputs' size: a 3×3 stride-1 convolution of a batch with 16 tiles
            // or more runs on Winograd, whose rounding reached 1.2e-4 in absolute terms and at
            // most 5.8e-6 of the largest output in 800 random draws of the 9 × 9 and 30 × 30 cases.
            let tolerance = 2e-5 * max_diff(&reference, &reference.zeros_like().unwrap()).max(1.0);
            assert!(max_diff(&conv.forward(&x).unwrap(), &reference) < tolerance);
            let relu = conv.forward_relu(&x).unwrap();
            assert!(max_diff(&relu, &reference.relu().unwrap()) < tolerance);
            let other = Tensor::randn(0f32, 1.0, relu.shape(), &Device::Cpu).unwrap();
            // The residual join adds the bias itself, to the product without it.
            let joined = fused::bias_add_relu_in_place(
                conv.convolve(&x).unwrap(),
                &other,
                &conv.bias_host,
                &conv.bias,
            )
            .unwrap();
            let expected = (&reference + &other).unwrap().relu().unwrap();
            assert!(max_diff(&joined, &expected) < tolerance + 1e-5);
        }
    }

    /// The fused max-pool against the candle-op path: same values, and on ties (a film's flat
    /// regions) the gradient goes to the first maximum in row-major order, as in PyTorch.
    #[test]
    fn fused_stem_pool_matches_the_candle_path() {
        // Even and odd sides, square or not: the fused pass has an unrolled path for the windows
        // inside the plane and a generic one for the border.
        for (h, w) in [
            (8, 8),
            (9, 9),
            (16, 16),
            (9, 12),
            (12, 9),
            (1, 5),
            (3, 2),
            (11, 7),
        ] {
            // Quantised values 1…4 make ties common; they stay above the candle path's zero
            // padding, which would otherwise win an all-zero border window there (never in
            // PyTorch or the fused pass: after the stem's ReLU such a window's gradient is lost
            // either way).
            let x = ((Tensor::rand(0f32, 4.0, (2, 3, h, w), &Device::Cpu).unwrap())
                .floor()
                .unwrap()
                + 1.0)
                .unwrap();
            let (fused_out, fused_tape) = StemPool::forward(&x).unwrap();
            assert!(matches!(fused_tape, PoolTape::Fused { .. }));
            let var = Var::from_tensor(&x).unwrap();
            let (ops_out, ops_tape) = StemPool::forward(var.as_tensor()).unwrap();
            assert!(matches!(ops_tape, PoolTape::Ops { .. }));
            let ops_out = ops_out.detach();
            assert_eq!(super::im2col::max_abs_diff(&fused_out, &ops_out), 0.0);
            // With ties both paths pick the first maximum in row-major order.
            let g = Tensor::randn(0f32, 1.0, fused_out.shape(), &Device::Cpu).unwrap();
            let a = StemPool::backward(&fused_tape, &g, (h, w)).unwrap();
            let b = StemPool::backward(&ops_tape, &g, (h, w)).unwrap();
            assert!(super::im2col::max_abs_diff(&a, &b) < 1e-6, "{h}×{w}");
        }
    }

    #[test]
    fn stem_pool_gradient_matches_autograd() {
        for h in [8, 9, 16] {
            let x = Tensor::rand(0f32, 1.0, (2, 3, h, h), &Device::Cpu).unwrap();
            let (_, tape) = StemPool::forward(&x).unwrap();
            check(
                x,
                |x| StemPool::forward(x).unwrap().0,
                |g| StemPool::backward(&tape, g, (h, h)).unwrap(),
            );
        }
    }

    /// `max |a − b|` relative to `max |b|` (or absolute below 1).
    fn relative_max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let max_abs = |t: &Tensor| {
            let m = t.abs().unwrap().max_all().unwrap();
            m.to_scalar::<f32>().unwrap()
        };
        max_abs(&(a - b).unwrap()) / max_abs(b).max(1.0)
    }

    fn random_kernel(c_out: usize, c_in: usize, k: usize) -> Tensor {
        Tensor::randn(0f32, 0.5, (c_out, c_in, k, k), &Device::Cpu).unwrap()
    }

    /// A random bottleneck `c_in → 4 → 8` whose 3×3 convolution has `stride`; with a projection
    /// when `stride` > 1 or `c_in` ≠ 8.
    fn random_block(c_in: usize, stride: usize) -> Bottleneck {
        let w = random_kernel;
        Bottleneck {
            conv1: ConvBn::from_weight(w(4, c_in, 1), 1, 0),
            conv2: ConvBn::from_weight(w(4, 4, 3), stride, 1),
            conv3: ConvBn::from_weight(w(8, 4, 1), 1, 0),
            downsample: (stride > 1 || c_in != 8)
                .then(|| ConvBn::from_weight(w(8, c_in, 1), stride, 0)),
        }
    }

    #[test]
    fn bottleneck_gradient_matches_autograd() {
        let block = random_block(6, 2);
        let x = Tensor::randn(0f32, 1.0, (2, 6, 10, 10), &Device::Cpu).unwrap();
        let (y, tape) = block.forward_with_tape(&x, PlaneOrder::ImageMajor).unwrap();
        let plain = block.forward(&x).unwrap();
        let diff = (&y - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(
            diff.to_scalar::<f32>().unwrap(),
            0.0,
            "the tape changes nothing"
        );
        check(
            x,
            |x| block.forward(x).unwrap(),
            |g| block.backward(&tape, g).unwrap(),
        );
    }

    /// The channel-major block pass (the tape path of a batch's layer3 and layer4) computes what
    /// the NCHW pass does, forward and backward: for a strided block with a projection (one
    /// product per convolution over the batch, col2im of channel-major taps), and stride-1
    /// blocks whose 3×3 convolution takes Winograd's channel-major path (4 images of 8×8 and of
    /// 7×7: 16 tiles) or channel-major im2col (2 images: too few tiles).
    #[test]
    fn channel_major_blocks_match_the_nchw_pass() {
        let strided = random_block(6, 2);
        let plain = random_block(8, 1);
        assert!(plain.downsample.is_none());
        assert!(plain.conv2.winograd.is_some());
        let cases = [
            (&strided, (3, 6, 10, 10)),
            (&strided, (2, 6, 7, 9)),
            (&plain, (4, 8, 8, 8)),
            (&plain, (4, 8, 7, 7)),
            (&plain, (2, 8, 7, 7)),
        ];
        for (block, shape) in cases {
            let x = Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap();
            let (y, tape) = block.forward_with_tape(&x, PlaneOrder::ImageMajor).unwrap();
            let x_cm = swap_images_and_channels(&x).unwrap();
            let (y_cm, tape_cm) = block
                .forward_with_tape(&x_cm, PlaneOrder::ChannelMajor)
                .unwrap();
            assert_eq!(tape_cm.order, PlaneOrder::ChannelMajor);
            let y_back = swap_images_and_channels(&y_cm).unwrap();
            assert_eq!(y_back.dims(), y.dims());
            assert!(
                relative_max_diff(&y_back, &y) < 1e-5,
                "{shape:?}: forward differs"
            );
            let g = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
            let dx = block.backward(&tape, &g).unwrap();
            let g_cm = swap_images_and_channels(&g).unwrap();
            let dx_cm = block.backward(&tape_cm, &g_cm).unwrap();
            let dx_back = swap_images_and_channels(&dx_cm).unwrap();
            assert_eq!(dx_back.dims(), x.dims());
            assert!(
                relative_max_diff(&dx_back, &dx) < 1e-5,
                "{shape:?}: input gradient differs"
            );
        }
    }

    /// A batch's passes turn channel-major at the first small-plane block and back at the end:
    /// the batch's forward, and its input gradient through the tape, equal each image's alone
    /// (a single image never changes order). 64 × 64 inputs give 16 × 16 planes after the stem
    /// (256 positions, more than the limit), so the switch falls between the first block and the
    /// strided second (8 × 8).
    #[test]
    fn batch_passes_that_turn_channel_major_match_single_images() {
        let backbone = Backbone {
            stem: ConvBn::from_weight(random_kernel(6, 3, 7), 2, 3),
            blocks: vec![random_block(6, 1), random_block(8, 2), random_block(8, 1)],
        };
        // 40 × 40: 10 × 10 after the stem, so the whole batch runs channel-major.
        for (side, first) in [(64, PlaneOrder::ImageMajor), (40, PlaneOrder::ChannelMajor)] {
            let x = Tensor::randn(0f32, 1.0, (5, 3, side, side), &Device::Cpu).unwrap();
            let y = backbone.forward(&x).unwrap();
            let (y_tape, tape) = backbone.forward_with_tape(&x).unwrap();
            assert!(tape.blocks[0].order == first);
            assert!(tape.blocks[1].order == PlaneOrder::ChannelMajor);
            let g = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
            let dx = backbone.backward_input(&tape, &g).unwrap();
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let d = relative_max_diff(a, b);
                assert!(d <= 1e-5, "{what}: max diff {d} of the largest value");
            };
            close(&y_tape, &y, "tape forward");
            for i in 0..5 {
                let xi = x.narrow(0, i, 1).unwrap();
                let yi = backbone.forward(&xi).unwrap();
                close(&y.narrow(0, i, 1).unwrap(), &yi, "forward");
                let (_, tape_i) = backbone.forward_with_tape(&xi).unwrap();
                assert!(tape_i.blocks[1].order == PlaneOrder::ImageMajor);
                let gi = g.narrow(0, i, 1).unwrap();
                let dxi = backbone.backward_input(&tape_i, &gi).unwrap();
                close(&dx.narrow(0, i, 1).unwrap(), &dxi, "input gradient");
            }
        }
    }
}
