//! Fused element-wise passes of the CPU forward and input-gradient passes (issue 13).
//!
//! Why: every candle element-wise op allocates a fresh tensor and walks memory once, so a
//! convolution followed by `+ bias` and `relu` walks its output three times and page-faults two
//! fresh buffers; the ReLU gradient `∂y ⊙ [y > 0]` took three ops (compare, cast, multiply), and
//! the stride-2 input gradient was a polyphase interleave of dozens of small pad/add/stack ops.
//! On ResNet-50 these passes cost about as much as the convolutions' gemms of the backward.
//! Here each is one pass:
//!
//! * [`bias_act`]: `y ← y + b` (per channel), optionally `y ← max(y, 0)`, on the fresh
//!   output of a convolution's gemm;
//! * [`bias_add_relu_in_place`]: `y ← max(y + r + b, 0)` (the residual join, both branches'
//!   biases added here rather than in passes of their own), and [`add_in_place`];
//! * [`lerp_bias_relu`]: the stem's output at a batch of points on a straight path, from its
//!   output at both ends (Integrated Gradients);
//! * [`weighted_row_sum`]: a weighted sum of a batch of gradients;
//! * [`relu_backward`]: `∂x = ∂y ⊙ [y > 0]`, one output buffer, from the byte mask
//!   [`relu_mask`] kept of `y`;
//! * [`col2im`]: the input gradient of a strided convolution from the per-tap products
//!   `T[(c·k + ky)·k + kx, i·w + j] = Σ_co W[co, c, ky, kx] ∂y[co, i, j]`:
//!   `∂x[c, s·i + ky − p, s·j + kx − p] += T[(c·k + ky)·k + kx, i·w + j]`, one plane per task.
//!
//! [`weight_matmul`] multiplies every image of a batch by one weight matrix without copying it.
//!
//! In-place passes only ever run on tensors the caller has just created and holds alone (a gemm's
//! output, a gradient computed a line earlier); they apply to contiguous f32 tensors on the CPU
//! that autograd does not track ([`applies`]). Everywhere else (CUDA, the autograd tests) the
//! callers use candle's own ops, which compute the same values.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, DType, InplaceOp1, InplaceOp2, Layout, Result, Shape,
    Tensor,
};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The order of an activation's `n·C` planes in memory.
///
/// `ImageMajor` is NCHW, candle's layout: image `b`'s channel `c` is plane `b·C + c`.
/// `ChannelMajor` is CNHW, a tensor of shape `[C, n, h, w]`: plane `c·n + b`, so that one
/// channel's planes of every image are adjacent and `[C, n·h·w]` is one matrix. Why: a 1×1
/// convolution is then one product over the whole batch instead of one per image. For layer4's
/// 49 positions per image `gemm` runs its 64-row kernels with 15 rows idle, and for layer3's 196
/// its 16-row edge kernel with 12 idle; a lane's four images side by side fill them (one
/// product instead of four: layer4's 2048 × 512 products at 49 columns 4.80 against 3.88 ms for
/// four images, layer3's 1024 × 256 at 196 columns 3.86 against 3.61 ms, single-threaded, best
/// of 30, 2-core AMD EPYC). Gathering the columns of NCHW images into one matrix for each product
/// (the seventh session) cost more than it saved; here the activations stay in this order from
/// layer to layer, and only the stage where the order changes copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlaneOrder {
    ImageMajor,
    ChannelMajor,
}

impl PlaneOrder {
    /// Where image `image`'s channel `channel` lies among `images` × `channels` planes.
    pub(crate) fn plane(
        self,
        image: usize,
        channel: usize,
        images: usize,
        channels: usize,
    ) -> usize {
        match self {
            Self::ImageMajor => image * channels + channel,
            Self::ChannelMajor => channel * images + image,
        }
    }

    /// `(images, channels, h, w)` of a 4-d tensor laid out in this order.
    pub(crate) fn dims(self, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
        let (a, b, h, w) = x.dims4()?;
        Ok(match self {
            Self::ImageMajor => (a, b, h, w),
            Self::ChannelMajor => (b, a, h, w),
        })
    }

    /// The shape of `images` × `channels` planes of `h × w` laid out in this order.
    pub(crate) fn shape(self, images: usize, channels: usize, h: usize, w: usize) -> Shape {
        match self {
            Self::ImageMajor => Shape::from((images, channels, h, w)),
            Self::ChannelMajor => Shape::from((channels, images, h, w)),
        }
    }

    /// `(image, channel)` of plane `index` among `images` × `channels` planes.
    pub(crate) fn image_channel(
        self,
        index: usize,
        images: usize,
        channels: usize,
    ) -> (usize, usize) {
        match self {
            Self::ImageMajor => (index / channels, index % channels),
            Self::ChannelMajor => (index % images, index / images),
        }
    }
}

/// Elements per parallel task at least (small planes are grouped so a task is worth scheduling).
const MIN_TASK: usize = 1 << 14;

/// Whether the fused CPU passes apply to `t`.
pub(crate) fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() && !t.track_op()
}

pub(super) fn slice_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused op: non-contiguous tensor")
    };
    match storage {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => bail!("fused op: not f32"),
    }
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused op: non-contiguous tensor")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// Runs `f` on `t`'s values in memory order (NCHW for an activation): borrowed through [`slice`]
/// when `t` is a contiguous f32 CPU tensor (a forward pass's own output), otherwise a copy. For
/// plain loops over activations outside the model (the scope guard's features).
pub(crate) fn with_f32_values<T>(t: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
    if t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(cpu) = &*storage {
            return Ok(f(slice(cpu, layout)?));
        }
    }
    let values = t
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_device(&candle_core::Device::Cpu)?
        .to_vec1::<f32>()?;
    Ok(f(&values))
}

/// Planes per task so that a task holds at least [`MIN_TASK`] elements.
pub(super) fn planes_per_task(plane: usize) -> usize {
    MIN_TASK.div_ceil(plane.max(1)).max(1)
}

/// Where a pass that ends in a ReLU also writes `[y > 0]` ([`relu_mask`]'s bytes): handed to
/// the op, which takes it out when it writes every element of it.
type MaskOut<'a> = std::sync::Mutex<Option<&'a mut [MaybeUninit<u8>]>>;

/// Takes the mask out of `slot` if there is one; it must then be `len` long.
fn take_mask<'a>(slot: &MaskOut<'a>, len: usize) -> Result<Option<&'a mut [MaybeUninit<u8>]>> {
    let mask = slot
        .lock()
        .map_err(|_| candle_core::Error::Msg("relu mask: poisoned".into()))?
        .take();
    match mask {
        Some(m) if m.len() != len => bail!("relu mask: {} values for {len}", m.len()),
        m => Ok(m),
    }
}

/// `v ← max(f(v, o), 0)` for each value `v` and its `o` from `others`, with the mask `[v > 0]`
/// written in the same pass when there is one.
fn relu_values<T>(
    values: &mut [f32],
    others: impl Iterator<Item = T>,
    mask: Option<&mut [MaybeUninit<u8>]>,
    f: impl Fn(f32, T) -> f32,
) {
    match mask {
        Some(mask) => values
            .iter_mut()
            .zip(others)
            .zip(mask)
            .for_each(|((v, o), m)| {
                *v = f(*v, o).max(0.0);
                m.write(u8::from(*v > 0.0));
            }),
        None => values
            .iter_mut()
            .zip(others)
            .for_each(|(v, o)| *v = f(*v, o).max(0.0)),
    }
}

/// `f(index, plane, its part of the mask)` for each `plane`-long plane of `values`, on the pool.
fn for_each_plane(
    values: &mut [f32],
    mask: Option<&mut [MaybeUninit<u8>]>,
    plane: usize,
    f: impl Fn(usize, &mut [f32], Option<&mut [MaybeUninit<u8>]>) + Sync + Send,
) {
    let per_task = planes_per_task(plane);
    match mask {
        Some(mask) => values
            .par_chunks_mut(plane)
            .zip(mask.par_chunks_mut(plane))
            .enumerate()
            .with_min_len(per_task)
            .for_each(|(index, (values, mask))| f(index, values, Some(mask))),
        None => values
            .par_chunks_mut(plane)
            .enumerate()
            .with_min_len(per_task)
            .for_each(|(index, values)| f(index, values, None)),
    }
}

/// Runs `op` (an in-place pass handed the mask slot) and returns the mask it wrote, `y`'s
/// shape. Why in the same pass: a separate pass over each ReLU's output to make the mask cost
/// 1–3 % of the IG time (alternating `cxr-viewer bench` runs, 2-core AMD EPYC).
fn with_mask_written(y: &Tensor, op: impl FnOnce(&MaskOut<'_>) -> Result<()>) -> Result<Tensor> {
    // SAFETY: the slot is handed to `op`; an op takes the mask out of it only on the path where
    // it then writes every element (`relu_values` over every plane: the ops check that the
    // planes cover the tensor, and `take_mask` that the mask is the tensor's length). If the
    // mask is still in the slot after `op`, it was not written: that is an error, and the
    // buffer is dropped unread.
    #[allow(unsafe_code)]
    let mask = unsafe {
        written_by(y.elem_count(), |mask| {
            let slot: MaskOut<'_> = std::sync::Mutex::new(Some(mask));
            op(&slot)?;
            let untaken = slot
                .into_inner()
                .map_err(|_| candle_core::Error::Msg("relu mask: poisoned".into()))?
                .is_some();
            if untaken {
                bail!("relu mask: not written")
            }
            Ok(())
        })?
    };
    Tensor::from_vec(mask, y.shape(), y.device())
}

struct BiasAct<'a, 'm> {
    bias: &'a [f32],
    plane: usize,
    relu: bool,
    mask: Option<&'a MaskOut<'m>>,
}

impl InplaceOp1 for BiasAct<'_, '_> {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = slice_mut(storage, layout)?;
        let (c, plane, relu) = (self.bias.len(), self.plane, self.relu);
        if c == 0 || plane == 0 || data.len() % (c * plane) != 0 {
            bail!("bias-act: shape does not match the bias")
        }
        let mask = match (relu, self.mask) {
            (true, Some(slot)) => take_mask(slot, data.len())?,
            _ => None,
        };
        for_each_plane(data, mask, plane, |index, values, mask| {
            let b = self.bias[index % c];
            if relu {
                relu_values(values, std::iter::repeat(()), mask, |v, ()| v + b);
            } else {
                values.iter_mut().for_each(|v| *v += b);
            }
        });
        Ok(())
    }
}

/// `y + b` (then ReLU when `relu`) for `y: [n, C, h, w]`, `bias`: C values; in place when
/// [`applies`], else with candle ops (`bias_tensor`: `[1, C, 1, 1]`).
pub(crate) fn bias_act(
    y: Tensor,
    bias: &[f32],
    bias_tensor: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    if applies(&y) && y.rank() == 4 {
        let (_, _, h, w) = y.dims4()?;
        y.inplace_op1(&BiasAct {
            bias,
            plane: h * w,
            relu,
            mask: None,
        })?;
        return Ok(y);
    }
    let y = y.broadcast_add(bias_tensor)?;
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// `y` after a pass ending in a ReLU, with the ReLU's mask ([`relu_mask`]): when `fused` and the
/// fused passes apply to `y` (`[n, C, h, w]`), `pass(&y, slot, h·w)` writes both at once;
/// otherwise `fallback` takes `y` through candle's ops and the mask is made from its result.
fn relu_pass_with_mask(
    y: Tensor,
    fused: bool,
    pass: impl FnOnce(&Tensor, &MaskOut<'_>, usize) -> Result<()>,
    fallback: impl FnOnce(Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Tensor)> {
    if fused && applies(&y) && y.rank() == 4 {
        let (_, _, h, w) = y.dims4()?;
        let mask = with_mask_written(&y, |slot| pass(&y, slot, h * w))?;
        return Ok((y, mask));
    }
    let y = fallback(y)?;
    let mask = relu_mask(&y)?;
    Ok((y, mask))
}

/// [`bias_act`] with the ReLU, and its mask ([`relu_mask`]) written in the same pass.
pub(crate) fn bias_relu_with_mask(
    y: Tensor,
    bias: &[f32],
    bias_tensor: &Tensor,
) -> Result<(Tensor, Tensor)> {
    relu_pass_with_mask(
        y,
        true,
        |y, slot, plane| {
            y.inplace_op1(&BiasAct {
                bias,
                plane,
                relu: true,
                mask: Some(slot),
            })
        },
        |y| bias_act(y, bias, bias_tensor, true),
    )
}

/// `y ← y + r`, or with a per-channel bias `y ← max(y + r + b, 0)` (the residual join).
struct Join<'a, 'm> {
    bias: Option<&'a [f32]>,
    plane: usize,
    mask: Option<&'a MaskOut<'m>>,
}

impl InplaceOp2 for Join<'_, '_> {
    fn name(&self) -> &'static str {
        "join"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let dst = slice_mut(s1, l1)?;
        let src = slice(s2, l2)?;
        if dst.len() != src.len() {
            bail!("join: shapes differ")
        }
        let Some(bias) = self.bias else {
            dst.par_chunks_mut(MIN_TASK)
                .zip(src.par_chunks(MIN_TASK))
                .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
            return Ok(());
        };
        let (c, plane) = (bias.len(), self.plane);
        if c == 0 || plane == 0 || dst.len() % (c * plane) != 0 {
            bail!("join: shape does not match the bias")
        }
        let mask = match self.mask {
            Some(slot) => take_mask(slot, dst.len())?,
            None => None,
        };
        for_each_plane(dst, mask, plane, |index, d, m| {
            let (s, b) = (&src[index * plane..][..plane], bias[index % c]);
            relu_values(d, s.iter(), m, |d, s| d + s + b);
        });
        Ok(())
    }
}

/// `y + r`, in `y`'s buffer when [`applies`] (`y` must be held by the caller alone).
pub(crate) fn add_in_place(y: Tensor, r: &Tensor) -> Result<Tensor> {
    if applies(&y) && applies(r) && y.shape() == r.shape() {
        y.inplace_op2(
            r,
            &Join {
                bias: None,
                plane: 0,
                mask: None,
            },
        )?;
        return Ok(y);
    }
    y + r
}

/// `max(y + r + b, 0)` (`b` per channel) in `y`'s buffer when [`applies`] (`y` must be held by
/// the caller alone), else with candle ops (`bias_tensor`: `[1, C, 1, 1]`): a residual join
/// whose branches come straight from their products without their biases. Why: adding a
/// convolution's bias in a pass of its own walked layer1's largest outputs once more per block
/// (1.4 % of the IG samples in `perf`).
pub(crate) fn bias_add_relu_in_place(
    y: Tensor,
    r: &Tensor,
    bias: &[f32],
    bias_tensor: &Tensor,
) -> Result<Tensor> {
    if applies(&y) && applies(r) && y.shape() == r.shape() && y.rank() == 4 {
        let (_, _, h, w) = y.dims4()?;
        let join = Join {
            bias: Some(bias),
            plane: h * w,
            mask: None,
        };
        y.inplace_op2(r, &join)?;
        return Ok(y);
    }
    (y + r)?.broadcast_add(bias_tensor)?.relu()
}

/// [`bias_add_relu_in_place`] and its ReLU's mask ([`relu_mask`]) written in the same pass.
pub(crate) fn bias_add_relu_with_mask(
    y: Tensor,
    r: &Tensor,
    bias: &[f32],
    bias_tensor: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let fused = applies(r) && y.shape() == r.shape();
    relu_pass_with_mask(
        y,
        fused,
        |y, slot, plane| {
            y.inplace_op2(
                r,
                &Join {
                    bias: Some(bias),
                    plane,
                    mask: Some(slot),
                },
            )
        },
        |y| bias_add_relu_in_place(y, r, bias, bias_tensor),
    )
}

/// Every `stride`-th row and column of each plane of `x` (`[n, C, h, w]`), starting at 0, one
/// plane per task. `None` when the fused passes do not apply. Why: candle's strided copy gathers
/// element by element on one thread (1.4 % of the IG samples in `perf`, for the three strided
/// projections).
pub(crate) fn subsample(x: &Tensor, stride: usize) -> Result<Option<Tensor>> {
    if !applies(x) || x.rank() != 4 || stride == 0 {
        return Ok(None);
    }
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h.div_ceil(stride), w.div_ceil(stride));
    if oh * ow == 0 {
        return Ok(None);
    }
    let out = with_f32_values(x, |x| {
        // SAFETY: `dst` is one plane of ⌈h/stride⌉·⌈w/stride⌉ values, and the rows picked
        // (every `stride`-th of h) times the values picked in each (every `stride`-th of w) are
        // exactly that many: each element is written once, and every plane is visited.
        #[allow(unsafe_code)]
        unsafe {
            written_by(n * c * oh * ow, |out| {
                out.par_chunks_mut(oh * ow)
                    .zip(x.par_chunks(h * w))
                    .with_min_len(planes_per_task(h * w))
                    .for_each(|(dst, plane)| {
                        // ⌈h/stride⌉ rows of ⌈w/stride⌉ values: every element of `dst`, once.
                        let picked = plane
                            .chunks(w)
                            .step_by(stride)
                            .flat_map(|row| row.iter().step_by(stride));
                        for (d, v) in dst.iter_mut().zip(picked) {
                            d.write(*v);
                        }
                    });
                Ok(())
            })
        }
    })??;
    Ok(Some(Tensor::from_vec(out, (n, c, oh, ow), x.device())?))
}

struct ReluMask;

/// `g ⊙ [m ≠ 0]`, as a select (no multiplication: a masked-out infinity stays out).
fn masked(g: f32, m: u8) -> f32 {
    if m != 0 {
        g
    } else {
        0.0
    }
}

/// The mask's bytes, checked against the gradient's length.
fn mask_bytes<'a>(storage: &'a CpuStorage, layout: &Layout, len: usize) -> Result<&'a [u8]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("relu-backward: non-contiguous mask")
    };
    let mask = &storage.as_slice::<u8>()?[start..end];
    if mask.len() != len {
        bail!("relu-backward: shapes differ")
    }
    Ok(mask)
}

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = slice(s1, l1)?;
        let mask = mask_bytes(s2, l2, grad.len())?;
        // Written straight into the result (no zero-filled buffer first: that `memset` ran on
        // one thread while the other waited), in chunks of plain loops like the other passes
        // rather than through rayon's element-wise `collect`.
        // SAFETY: the chunks of `out` cover all `grad.len()` elements, each written once.
        #[allow(unsafe_code)]
        let result = unsafe {
            written_by(grad.len(), |out| {
                out.par_chunks_mut(MIN_TASK)
                    .zip(grad.par_chunks(MIN_TASK).zip(mask.par_chunks(MIN_TASK)))
                    .for_each(|(out, (g, m))| {
                        for ((out, g), m) in out.iter_mut().zip(g).zip(m) {
                            out.write(masked(*g, *m));
                        }
                    });
                Ok(())
            })?
        };
        Ok((CpuStorage::F32(result), l1.shape().clone()))
    }
}

impl InplaceOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "relu-backward-in-place"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let grad = slice_mut(s1, l1)?;
        let mask = mask_bytes(s2, l2, grad.len())?;
        grad.par_chunks_mut(MIN_TASK)
            .zip(mask.par_chunks(MIN_TASK))
            .for_each(|(g, m)| g.iter_mut().zip(m).for_each(|(g, m)| *g = masked(*g, *m)));
        Ok(())
    }
}

/// `[y > 0]` as a `u8` tensor of `y`'s shape: what the ReLU's gradient needs of its output.
/// Why not keep `y` itself: Integrated Gradients keeps every ReLU's output of a batch of path
/// points for the backward pass, hundreds of MB in f32 and a quarter of that as bytes; the
/// saving pays for layer4's Winograd kernels within the 1 GiB budget (see `winograd`).
pub(crate) fn relu_mask(y: &Tensor) -> Result<Tensor> {
    if applies(y) {
        let mut mask = Vec::with_capacity(y.elem_count());
        with_f32_values(y, |y| {
            y.par_iter()
                .with_min_len(MIN_TASK)
                .map(|v| u8::from(*v > 0.0))
                .collect_into_vec(&mut mask)
        })?;
        return Tensor::from_vec(mask, y.shape(), y.device());
    }
    y.gt(0f32)
}

/// Whether the fused ReLU-gradient pass applies: `grad` as for every fused pass ([`applies`]),
/// and a contiguous CPU byte mask of its shape.
fn mask_pass_applies(grad: &Tensor, mask: &Tensor) -> bool {
    applies(grad)
        && mask.device().is_cpu()
        && mask.dtype() == DType::U8
        && mask.is_contiguous()
        && grad.shape() == mask.shape()
}

/// `∂x = ∂y ⊙ [y > 0]` given the ReLU's output mask [`relu_mask`] (`u8`, 1 where `y > 0`).
pub(crate) fn relu_backward(grad: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if mask_pass_applies(grad, mask) {
        return grad.apply_op2_no_bwd(mask, &ReluMask);
    }
    grad.mul(&mask.to_dtype(grad.dtype())?)
}

/// [`relu_backward`] in `grad`'s buffer when the fused passes apply (`grad` must be held by the
/// caller alone, as a convolution's fresh input gradient is). Why: writing into the buffer just
/// read spares a fresh one per pass (its page faults, and a second stream of writes).
pub(crate) fn relu_backward_in_place(grad: Tensor, mask: &Tensor) -> Result<Tensor> {
    if mask_pass_applies(&grad, mask) {
        grad.inplace_op2(mask, &ReluMask)?;
        return Ok(grad);
    }
    relu_backward(&grad, mask)
}

/// `W · x[b]` for every image `b`: `w` is `[m, k]`, `x` is `[n, k, cols]`, the result
/// `[n, m, cols]`.
///
/// Why not `broadcast_matmul`: it copies `w` once per image (`broadcast_as(..).contiguous()`)
/// before the gemm, which for layer4's 3×3 convolution is 9 MB per image and per pass, a sixth of
/// the whole IG time. Candle's CPU gemm loop accepts a zero batch stride on the left operand, so on
/// the CPU the broadcast view goes to the gemm as it is.
pub(crate) fn weight_matmul(w: &Tensor, x: &Tensor) -> Result<Tensor> {
    if w.device().is_cpu() && w.is_contiguous() && x.rank() == 3 && w.rank() == 2 {
        let (n, k_x, cols) = x.dims3()?;
        let (m, k) = w.dims2()?;
        let x = x.contiguous()?;
        if applies(w) && applies(&x) && k == k_x && m > 0 && k > 0 && cols > 0 {
            // Both operands are borrowed in place (`applies`): no copy.
            let out = with_f32_values(w, |w| {
                with_f32_values(&x, |x| products(w, x, (n, m, k, cols)))
            })???;
            return Tensor::from_vec(out, (n, m, cols), w.device());
        }
        return w.broadcast_as((n, m, k))?.matmul(&x);
    }
    w.broadcast_matmul(x)
}

/// `W · x[b]` for each of `n` images with `gemm` writing into a buffer the pool's threads zeroed.
/// Why not candle's `matmul`: it zero-fills its output with one `memset` on the calling thread
/// while the other cores wait (4 % of an IG pass's samples in `perf`, for layer1's 26 MB outputs).
fn products(
    w: &[f32],
    x: &[f32],
    (n, m, k, cols): (usize, usize, usize, usize),
) -> Result<Vec<f32>> {
    if x.len() != n * k * cols {
        bail!("weight-matmul: operands do not match their shapes")
    }
    // SAFETY: `x` holds exactly `n` images of `k·cols` (checked above), so the `n` chunks of
    // `m·cols` cover `out` whole, and `gemm_into` writes all of its `dst` when it returns `Ok`
    // (`read_dst` false; see there). An error returns before the buffer is read.
    #[allow(unsafe_code)]
    unsafe {
        written_by(n * m * cols, |out| {
            for (dst, x) in out.chunks_exact_mut(m * cols).zip(x.chunks_exact(k * cols)) {
                gemm_into(dst, w, x, (m, k, cols))?;
            }
            Ok(())
        })
    }
}

/// A buffer of `len` values that `fill` writes, each of them, with no zeroing first: a product's
/// output, which `gemm` writes whole without reading it (`read_dst` false). Why: zeroing every
/// fresh output first was one more pass over memory per convolution, 3.5–4 % of the IG time
/// (alternating `cxr-viewer bench` runs, 2-core Intel Xeon).
///
/// # Safety
/// When `fill` returns `Ok`, it must have written every element of the slice it was given; the
/// values are then read as initialised `T`s. On an error the buffer is dropped unread, so a
/// partly written slice is fine then.
#[allow(unsafe_code)]
pub(super) unsafe fn written_by<T>(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<T>]) -> Result<()>,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len])?;
    // SAFETY: `fill` returned `Ok`, so by this function's contract it wrote all `len` elements,
    // and `with_capacity(len)` reserved them.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// `W · C` for every image from one column matrix `C` = `columns`: `[k, n·cols]`, image `b`'s
/// columns at `b·cols`; the result `[n, m, cols]`. Both must be tensors the fused passes apply
/// to ([`applies`]); the caller lays out the columns this way only then.
/// Why: for layer2–layer4's small planes (784, 196, 49 positions) one product per image gives
/// `gemm` few columns per packed block of `W` and packs `W` again for every image; one product
/// over all images' columns ran at 331–354 instead of 248–249 GFLOP/s for layer3's and layer4's
/// 3×3 convolutions (batch of 8, 2-core Intel Xeon). The result is regrouped per image after.
pub(crate) fn weight_matmul_image_columns(
    w: &Tensor,
    columns: &Tensor,
    n: usize,
) -> Result<Tensor> {
    let (m, _) = w.dims2()?;
    let (_, all_cols) = columns.dims2()?;
    if n == 0 || all_cols % n != 0 {
        bail!("weight-matmul: side-by-side columns do not match the weights")
    }
    let cols = all_cols / n;
    let all = matmul_values(w, columns)?;
    // SAFETY: `n·m` rows of `cols` values, each copied whole from `all`.
    #[allow(unsafe_code)]
    let out = unsafe {
        written_by(n * m * cols, |out| {
            out.par_chunks_mut(cols)
                .enumerate()
                .with_min_len(planes_per_task(cols))
                .for_each(|(index, row)| {
                    let (image, channel) = (index / m, index % m);
                    let from = channel * all_cols + image * cols;
                    row.write_copy_of_slice(&all[from..from + cols]);
                });
            Ok(())
        })?
    };
    Tensor::from_vec(out, (n, m, cols), w.device())
}

/// `W · C` as one product: `w` `[m, k]`, `columns` `[k, cols]`, the result `[m, cols]`; both
/// must be tensors the fused passes apply to ([`applies`]). A 1×1 convolution of a
/// channel-major batch ([`PlaneOrder::ChannelMajor`], `[k, n·h·w]`), whose result is again
/// channel-major.
pub(crate) fn weight_matmul_columns(w: &Tensor, columns: &Tensor) -> Result<Tensor> {
    let (m, _) = w.dims2()?;
    let (_, cols) = columns.dims2()?;
    Tensor::from_vec(matmul_values(w, columns)?, (m, cols), w.device())
}

fn matmul_values(w: &Tensor, columns: &Tensor) -> Result<Vec<f32>> {
    let (m, k) = w.dims2()?;
    let (k_c, cols) = columns.dims2()?;
    if !(applies(w) && applies(columns)) || k != k_c {
        bail!("weight-matmul: columns do not match the weights")
    }
    // SAFETY: one product of `[m, k]` by `[k, cols]` into all `m·cols` values; `gemm_into`
    // writes its whole `dst` when it returns `Ok` (`read_dst` false).
    #[allow(unsafe_code)]
    unsafe {
        written_by(m * cols, |all| {
            with_f32_values(w, |w| {
                with_f32_values(columns, |c| gemm_into(all, w, c, (m, k, cols)))
            })??
        })
    }
}

/// `dst = W · x` for row-major `W` `[m, k]`, `x` `[k, cols]`, `dst` `[m, cols]`, on the pool.
fn gemm_into(
    dst: &mut [MaybeUninit<f32>],
    w: &[f32],
    x: &[f32],
    (m, k, cols): (usize, usize, usize),
) -> Result<()> {
    if dst.len() != m * cols || w.len() != m * k || x.len() != k * cols {
        bail!("weight-matmul: operands do not match their shapes")
    }
    gemm_strided_uninit(dst, cols, w, k, x, cols, (m, k, cols), true)
}

/// `dst = W · x` for row-major operands with row strides `dst_rs`, `w_rs`, `x_rs` (elements;
/// each row's values contiguous): `W` `[m, k]`, `x` `[k, cols]`, `dst` `[m, cols]`. `parallel`:
/// split the product over the pool's threads (else it runs on the calling thread, for callers
/// that run several products in parallel themselves).
#[allow(unsafe_code, clippy::too_many_arguments)]
pub(super) fn gemm_strided(
    dst: &mut [f32],
    dst_rs: usize,
    w: &[f32],
    w_rs: usize,
    x: &[f32],
    x_rs: usize,
    shape: (usize, usize, usize),
    parallel: bool,
) -> Result<()> {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and `gemm` writes only initialised values.
    let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
    gemm_strided_uninit(dst, dst_rs, w, w_rs, x, x_rs, shape, parallel)
}

/// [`gemm_strided`] into memory that may be uninitialised: `gemm` with read_dst false writes
/// every element of the `[m, cols]` block at row stride `dst_rs` and reads none of it (its
/// first depth block stores `W·x` with `alpha` = 0; later blocks read what the first wrote; with
/// `k` = 0 it stores zeros).
#[allow(unsafe_code, clippy::too_many_arguments)]
fn gemm_strided_uninit(
    dst: &mut [MaybeUninit<f32>],
    dst_rs: usize,
    w: &[f32],
    w_rs: usize,
    x: &[f32],
    x_rs: usize,
    (m, k, cols): (usize, usize, usize),
    parallel: bool,
) -> Result<()> {
    // The last element each operand's layout reaches must lie inside its slice.
    let fits = |len: usize, rows: usize, rs: usize, row_len: usize| {
        rows == 0 || row_len == 0 || (rs >= row_len && (rows - 1) * rs + row_len <= len)
    };
    if !(fits(dst.len(), m, dst_rs, cols)
        && fits(w.len(), m, w_rs, k)
        && fits(x.len(), k, x_rs, cols))
    {
        bail!("weight-matmul: operands do not match their shapes")
    }
    if m == 0 || cols == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 && !SERIAL_PRODUCTS.with(|s| s.get()) {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: row-major operands with the row strides given and unit column strides; the check
    // above keeps every element the layouts reach inside the slices: `w` rows 0..m of k values at
    // stride w_rs, `x` rows 0..k of cols values at stride x_rs, `dst` rows 0..m of cols values at
    // stride dst_rs (rs ≥ row length, so rows do not overlap). `dst` is borrowed mutably here
    // alone; with `read_dst` false `gemm` only writes it (see the doc comment); the operands are
    // shared borrows that outlive the call, and `gemm` returns only when every thread it used is
    // done.
    unsafe {
        gemm::gemm(
            m,
            cols,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            dst_rs as isize,
            false,
            w.as_ptr(),
            1,
            w_rs as isize,
            x.as_ptr(),
            1,
            x_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

thread_local! {
    /// Set by [`serial_products`]: this thread's products run on it alone.
    static SERIAL_PRODUCTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every product it starts on the calling thread alone. Why: Integrated
/// Gradients' lanes already keep every core busy with one sub-batch each; a product split over
/// the pool then only adds a fork and a join per depth block of `gemm`. Other passes (im2col, the
/// element-wise ones) still split: their tasks fill the gaps between one lane's products.
pub(crate) fn serial_products<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL_PRODUCTS.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL_PRODUCTS.with(|s| s.replace(true)));
    f()
}

/// `len` zeros written by the pool's threads (`vec![0.0; len]` would `memset` on one thread).
pub(super) fn zeroed(len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    (0..len)
        .into_par_iter()
        .with_min_len(MIN_TASK)
        .map(|_| 0f32)
        .collect_into_vec(&mut out);
    out
}

/// Geometry of [`col2im`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Col2Im {
    pub c_in: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    /// Output (gradient) grid `h × w` of the convolution.
    pub grid: (usize, usize),
    /// Input grid `H × W` of the convolution: the result's spatial size.
    pub input: (usize, usize),
    /// `ImageMajor`: the taps are `[n, c_in·k·k, h·w]` and the result `[n, c_in, H, W]`;
    /// `ChannelMajor`: one product's taps `[c_in·k·k, n·h·w]` and the result `[c_in, n, H, W]`.
    pub order: PlaneOrder,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let taps = slice(storage, layout)?;
        let Col2Im {
            c_in,
            k,
            stride: s,
            padding: p,
            grid: (h, w),
            input: (ih, iw),
            order,
        } = *self;
        let per_channel = k * k * h * w;
        if per_channel == 0 || taps.len() % (c_in * per_channel) != 0 {
            bail!("col2im: taps do not match the geometry")
        }
        let n = taps.len() / (c_in * per_channel);
        let mut out = vec![0f32; n * c_in * ih * iw];
        out.par_chunks_mut(ih * iw)
            .enumerate()
            .with_min_len(planes_per_task(ih * iw))
            .for_each(|(index, plane)| {
                let (image, channel) = order.image_channel(index, n, c_in);
                // Tap `t` of this plane: its own run of the image's taps, or a stretch of the
                // row of channel-major taps that all images share.
                let tap_at = |t: usize| match order {
                    PlaneOrder::ImageMajor => (index * k * k + t) * h * w,
                    PlaneOrder::ChannelMajor => ((channel * k * k + t) * n + image) * h * w,
                };
                for ky in 0..k {
                    for kx in 0..k {
                        let tap = &taps[tap_at(ky * k + kx)..][..h * w];
                        // Grid columns j whose input column s·j + kx − p lies in [0, iw).
                        let columns = super::im2col::valid_outputs(iw, w, kx, s, p);
                        for i in 0..h {
                            let y = (s * i + ky) as isize - p as isize;
                            if y < 0 || y >= ih as isize {
                                continue;
                            }
                            let row = &mut plane[y as usize * iw..(y as usize + 1) * iw];
                            let src = &tap[i * w..(i + 1) * w];
                            for j in columns.clone() {
                                row[s * j + kx - p] += src[j];
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), order.shape(n, c_in, ih, iw)))
    }
}

/// The input gradient `[n, c_in, H, W]` from the per-tap products `[n, c_in·k·k, h·w]`, or `None`
/// where the fused pass does not apply.
pub(crate) fn col2im(taps: &Tensor, geometry: Col2Im) -> Result<Option<Tensor>> {
    if !applies(taps) {
        return Ok(None);
    }
    Ok(Some(taps.apply_op1_no_bwd(&geometry)?))
}

/// The stem max-pool (3×3, stride 2, padding 1) in one pass, with the index of each window's
/// first maximum in row-major order (PyTorch's tie rule; padding never wins, as with PyTorch's −∞
/// padding), so that the gradient is one scatter. Replaces a separable pass of a dozen candle ops
/// and their temporaries (about 5 % of the IG time). `None` where the fused passes do not apply.
pub(crate) fn max_pool_3x3_s2(
    x: &Tensor,
    (oh, ow): (usize, usize),
) -> Result<Option<(Tensor, Vec<u32>)>> {
    if !applies(x) {
        return Ok(None);
    }
    let (n, c, h, w) = x.dims4()?;
    let mut out = vec![0f32; n * c * oh * ow];
    let mut argmax = vec![0u32; n * c * oh * ow];
    {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        let data = slice(cpu, layout)?;
        out.par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(data.par_chunks(h * w))
            .with_min_len(planes_per_task(h * w))
            .for_each(|((out, argmax), plane)| {
                for oy in 0..oh {
                    let rows = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h);
                    // Outputs whose window lies wholly inside the plane (all but the first row and
                    // column) take the unrolled path: the generic one's range bookkeeping made
                    // this pool cost as much as the stem convolution.
                    let inner = if rows.len() == 3 {
                        1..ow.min(w / 2)
                    } else {
                        0..0
                    };
                    for ox in (0..ow).filter(|ox| !inner.contains(ox)) {
                        let cols = (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w);
                        let mut best = f32::NEG_INFINITY;
                        let mut at = 0usize;
                        for y in rows.clone() {
                            for x in cols.clone() {
                                keep_first_max(&mut best, &mut at, plane[y * w + x], y * w + x);
                            }
                        }
                        out[oy * ow + ox] = best;
                        argmax[oy * ow + ox] = at as u32;
                    }
                    if inner.is_empty() {
                        continue;
                    }
                    let top = (2 * oy - 1) * w;
                    let window = &plane[top..top + 3 * w];
                    for ox in inner {
                        let x0 = 2 * ox - 1;
                        let mut best = f32::NEG_INFINITY;
                        let mut at = 0usize;
                        for dy in 0..3 {
                            let row = &window[dy * w + x0..dy * w + x0 + 3];
                            for (dx, &v) in row.iter().enumerate() {
                                keep_first_max(&mut best, &mut at, v, dy * w + dx);
                            }
                        }
                        out[oy * ow + ox] = best;
                        argmax[oy * ow + ox] = (top + x0 + at) as u32;
                    }
                }
            });
    }
    let out = Tensor::from_vec(out, (n, c, oh, ow), x.device())?;
    Ok(Some((out, argmax)))
}

/// One step of a window's scan in row-major order: a value replaces the maximum only when larger
/// (or NaN), so ties keep the first maximum (PyTorch's rule) and a NaN wins as in PyTorch.
#[inline(always)]
fn keep_first_max(best: &mut f32, at: &mut usize, v: f32, index: usize) {
    if v > *best || v.is_nan() {
        *best = v;
        *at = index;
    }
}

/// Gradient of [`max_pool_3x3_s2`]: each output's gradient added at its window's maximum.
pub(crate) fn max_pool_3x3_s2_backward(
    grad: &Tensor,
    argmax: &[u32],
    (h, w): (usize, usize),
) -> Result<Tensor> {
    let (n, c, oh, ow) = grad.dims4()?;
    let device = grad.device();
    let grad = grad.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    if grad.len() != argmax.len() {
        bail!("max-pool backward: gradient does not match the pool's indices")
    }
    let mut out = vec![0f32; n * c * h * w];
    out.par_chunks_mut(h * w)
        .zip(grad.par_chunks(oh * ow).zip(argmax.par_chunks(oh * ow)))
        .for_each(|(plane, (g, at))| {
            for (g, &at) in g.iter().zip(at) {
                plane[at as usize] += g;
            }
        });
    Tensor::from_vec(out, (n, c, h, w), device)
}

/// `max(s + αᵢ·d + b_c, 0)` for each αᵢ: `s` and `d` are `[1, C, h, w]`, `bias` C values, the
/// result `[αs, C, h, w]`. A linear layer's output at the points x′ + αᵢ(x − x′) of a straight
/// path, from its output at x′ (`s`) and on x − x′ (`d`, without the bias), then bias and ReLU:
/// one pass that writes each value once. `None` when the fused passes do not apply.
#[allow(unsafe_code)]
pub(crate) fn lerp_bias_relu(
    s: &Tensor,
    d: &Tensor,
    alphas: &[f32],
    bias: &[f32],
) -> Result<Option<Tensor>> {
    if !(applies(s) && applies(d) && s.shape() == d.shape() && s.rank() == 4 && s.dim(0)? == 1) {
        return Ok(None);
    }
    let (_, c, h, w) = s.dims4()?;
    let plane = h * w;
    if c != bias.len() || plane == 0 {
        bail!("lerp-bias-relu: shape does not match the bias")
    }
    let total = alphas.len() * c * plane;
    let out = with_f32_values(s, |s| {
        with_f32_values(d, |d| {
            // SAFETY: the chunks cover all `total` elements (`total` is a multiple of `plane`),
            // and each element of each chunk is written once.
            unsafe {
                written_by(total, |out| {
                    out.par_chunks_mut(plane)
                        .enumerate()
                        .with_min_len(planes_per_task(plane))
                        .for_each(|(index, dst)| {
                            let (alpha, ch) = (alphas[index / c], index % c);
                            let (s, d, b) = (
                                &s[ch * plane..][..plane],
                                &d[ch * plane..][..plane],
                                bias[ch],
                            );
                            for ((dst, s), d) in dst.iter_mut().zip(s).zip(d) {
                                dst.write((s + alpha * d + b).max(0.0));
                            }
                        });
                    Ok(())
                })
            }
        })
    })???;
    Ok(Some(Tensor::from_vec(
        out,
        (alphas.len(), c, h, w),
        s.device(),
    )?))
}

/// `Σᵢ wᵢ · g[i]` over the first axis of `g` (`[n, …]`), as `[1, …]`: a weighted sum of a batch
/// of gradients, one pass, split over the pool by position. `None` when the fused passes do not
/// apply.
pub(crate) fn weighted_row_sum(g: &Tensor, weights: &[f32]) -> Result<Option<Tensor>> {
    if !applies(g) || g.rank() == 0 || g.dim(0)? != weights.len() || weights.is_empty() {
        return Ok(None);
    }
    let mut dims = g.dims().to_vec();
    let row = g.elem_count() / weights.len();
    dims[0] = 1;
    let mut out = Vec::with_capacity(row);
    with_f32_values(g, |g| {
        (0..row)
            .into_par_iter()
            .with_min_len(MIN_TASK)
            .map(|p| {
                weights
                    .iter()
                    .enumerate()
                    .fold(0f32, |acc, (i, w)| acc + w * g[i * row + p])
            })
            .collect_into_vec(&mut out);
    })?;
    Ok(Some(Tensor::from_vec(out, dims, g.device())?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    /// `(y, mask)` of a fused pass against candle's ops: the values equal, the mask `[y > 0]`.
    fn assert_relu_with_mask(got: (Tensor, Tensor), expected: &Tensor) {
        let (y, mask) = got;
        let want = expected.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        assert_eq!(mask.dtype(), DType::U8);
        assert_eq!(mask.dims(), expected.dims());
        let want_mask: Vec<u8> = want.iter().map(|v| u8::from(*v > 0.0)).collect();
        assert_eq!(
            mask.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
            want_mask
        );
    }

    #[test]
    fn passes_ending_in_a_relu_write_its_mask_in_the_same_pass() {
        // Planes that are not a multiple of a task, several tasks, about half of them negative.
        let dims = (3, 5, 61, 67);
        let y = Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap();
        let r = Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap();
        let bias: Vec<f32> = (0..5).map(|c| c as f32 * 0.3 - 0.6).collect();
        let bias_t = Tensor::from_vec(bias.clone(), (1, 5, 1, 1), &Device::Cpu).unwrap();
        let copy = |t: &Tensor| t.copy().unwrap();

        let expected = y.broadcast_add(&bias_t).unwrap().relu().unwrap();
        assert_relu_with_mask(
            bias_relu_with_mask(copy(&y), &bias, &bias_t).unwrap(),
            &expected,
        );
        let expected = (&y + &r)
            .unwrap()
            .broadcast_add(&bias_t)
            .unwrap()
            .relu()
            .unwrap();
        let got = bias_add_relu_with_mask(copy(&y), &r, &bias, &bias_t).unwrap();
        assert_relu_with_mask(got, &expected);

        // Under autograd (the tests' path) candle's ops give the same.
        let tracked = candle_core::Var::from_tensor(&y).unwrap();
        let got = bias_relu_with_mask(tracked.as_tensor().clone(), &bias, &bias_t).unwrap();
        assert_relu_with_mask(got, &y.broadcast_add(&bias_t).unwrap().relu().unwrap());

        // A bias of the wrong length is an error, not a mask left unwritten.
        let err = bias_relu_with_mask(copy(&y), &bias[..4], &bias_t).unwrap_err();
        assert!(err.to_string().contains("does not match the bias"), "{err}");
        let err = bias_add_relu_with_mask(copy(&y), &r, &bias[..4], &bias_t).unwrap_err();
        assert!(err.to_string().contains("does not match the bias"), "{err}");
    }

    #[test]
    fn relu_backward_keeps_the_gradient_where_the_output_is_positive() {
        // Longer than two tasks and not a multiple of one; a third of the outputs exactly zero
        // (a ReLU's output is never negative, but the mask must not pass zeros either).
        let len = 2 * MIN_TASK + 37;
        let y: Vec<f32> = (0..len)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    (i % 7) as f32 * 0.5 - 1.0
                }
            })
            .collect();
        let grad = Tensor::randn(0f32, 1.0, (1, 1, 1, len), &Device::Cpu).unwrap();
        let relu_out = Tensor::from_vec(y.clone(), (1, 1, 1, len), &Device::Cpu).unwrap();
        let mask = relu_mask(&relu_out).unwrap();
        assert_eq!(mask.dtype(), DType::U8);
        // The candle path (other devices, autograd) gives the same mask and gradient.
        assert_eq!(
            mask.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
            relu_out
                .gt(0f32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<u8>()
                .unwrap()
        );
        let got = relu_backward(&grad, &mask).unwrap();
        // A gradient autograd tracks takes candle's ops instead of the fused pass.
        let tracked = candle_core::Var::from_tensor(&grad).unwrap();
        let by_candle = relu_backward(tracked.as_tensor(), &mask).unwrap();
        let g = grad.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let expected: Vec<f32> = g
            .iter()
            .zip(&y)
            .map(|(g, y)| if *y > 0.0 { *g } else { 0.0 })
            .collect();
        assert_eq!(got.dims(), grad.dims());
        assert_eq!(
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected
        );
        assert_eq!(
            by_candle.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected
        );
        // In the gradient's own buffer: the same values, and the buffer is the one given.
        let owned = grad.copy().unwrap();
        let address = |t: &Tensor| match &*t.storage_and_layout().0 {
            candle_core::Storage::Cpu(CpuStorage::F32(values)) => values.as_ptr() as usize,
            _ => unreachable!("a CPU f32 tensor"),
        };
        let before = address(&owned);
        let in_place = relu_backward_in_place(owned, &mask).unwrap();
        assert_eq!(address(&in_place), before);
        assert_eq!(
            in_place.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected
        );
        // A mask of another shape is refused by both, never read out of bounds.
        let short = mask.narrow(3, 0, len - 1).unwrap().contiguous().unwrap();
        assert!(relu_backward(&grad, &short).is_err());
        assert!(relu_backward_in_place(grad.copy().unwrap(), &short).is_err());
    }

    #[test]
    fn weight_matmul_matches_candle_for_edge_shapes() {
        // Sizes off the micro-kernel's tiles (rows and columns not multiples of 16 or 6), one
        // image and several, a depth of one.
        for (n, m, k, cols) in [
            (1, 5, 7, 3),
            (3, 33, 17, 49),
            (2, 64, 1, 13),
            (4, 20, 300, 197),
        ] {
            let w = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let x = Tensor::randn(0f32, 1.0, (n, k, cols), &Device::Cpu).unwrap();
            let got = weight_matmul(&w, &x).unwrap();
            let expected = w.broadcast_matmul(&x).unwrap();
            assert_eq!(got.dims(), &[n, m, cols]);
            let diff = crate::model::im2col::max_abs_diff(&got, &expected);
            assert!(diff < 1e-4, "{n}×{m}×{k}×{cols}: {diff}");
        }
    }

    /// The path points' stem output against candle's ops: `relu(s + α·d + b)` per channel, for
    /// α at both ends, inside and outside [0, 1], planes not a multiple of a task.
    #[test]
    fn lerp_bias_relu_matches_candle_ops() {
        let (c, h, w) = (5, 7, 9);
        let s = Tensor::randn(0f32, 1.0, (1, c, h, w), &Device::Cpu).unwrap();
        let d = Tensor::randn(0f32, 1.0, (1, c, h, w), &Device::Cpu).unwrap();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.3 - 0.6).collect();
        let alphas = [0.0f32, 0.25, 1.0, -0.5, 1.5];
        let got = lerp_bias_relu(&s, &d, &alphas, &bias).unwrap().unwrap();
        assert_eq!(got.dims(), [alphas.len(), c, h, w]);
        let alpha =
            Tensor::from_vec(alphas.to_vec(), (alphas.len(), 1, 1, 1), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(bias, (1, c, 1, 1), &Device::Cpu).unwrap();
        let expected = s
            .broadcast_add(&d.broadcast_mul(&alpha).unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            .relu()
            .unwrap();
        assert!(crate::model::im2col::max_abs_diff(&got, &expected) < 1e-6);
        // A bias of the wrong length is an error, not a wrong answer.
        assert!(lerp_bias_relu(&s, &d, &alphas, &[0.0; 4]).is_err());
    }

    #[test]
    fn weighted_row_sum_matches_candle_ops() {
        // Rows longer than one task and not a multiple of it.
        let g = Tensor::randn(0f32, 1.0, (3, 2, MIN_TASK + 5), &Device::Cpu).unwrap();
        let weights = [0.5f32, -2.0, 0.125];
        let got = weighted_row_sum(&g, &weights).unwrap().unwrap();
        let w = Tensor::from_vec(weights.to_vec(), (3, 1, 1), &Device::Cpu).unwrap();
        let expected = g.broadcast_mul(&w).unwrap().sum_keepdim(0).unwrap();
        assert_eq!(got.dims(), [1, 2, MIN_TASK + 5]);
        assert!(crate::model::im2col::max_abs_diff(&got, &expected) < 1e-5);
        // One weight per row, or the fused pass does not apply.
        assert!(weighted_row_sum(&g, &weights[..2]).unwrap().is_none());
    }
}
