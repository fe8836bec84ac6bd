//! Convolutions on the GPU through cuDNN (`--features cudnn`): the forward pass and the input
//! gradient (cuDNN's "backward data") of every convolution that is not a plain 1×1 product.
//!
//! Why: without it the CUDA build runs candle's generic convolution, im2col into a buffer nine
//! (or 49) times the input and one cuBLAS SGEMM, and the input gradient of a strided convolution
//! as a chain of element-wise kernels (polyphase col2im). On an H200 that gave about 2 ms per
//! Integrated-Gradients gradient, an eighth of the card's f32 rate (docs/performance-log.md, "On a GPU").
//!
//! Why our own two operations and not candle's `cudnn` feature: candle's covers the forward only,
//! and it leaves cuDNN's default math type, which on Ampere and later lets f32 convolutions run on
//! TF32 tensor cores (10-bit mantissas). That moved the IG maps 3–6 % away from the CPU's f32 maps
//! when cuBLAS was allowed the same. Here every convolution descriptor asks for
//! `CUDNN_FMA_MATH` (plain f32 FMA), so the GPU's maps stay those of the CPU.
//!
//! cuDNN's algorithm heuristics are a host-side query that is not free; the choice and the
//! workspace size are cached per shape. Handles are per thread (they are neither `Send` nor
//! `Sync`), all on the one stream `select_device` creates, so the order of work is the host's.
//!
//! Sources: cuDNN API reference (cudnnConvolutionForward, cudnnConvolutionBackwardData,
//! cudnnSetConvolutionMathType); cudarc's `cudnn::safe` wrappers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Shape, Tensor};
use cudarc::cudnn::sys::{
    cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionFwdAlgo_t, cudnnConvolutionMode_t,
    cudnnMathType_t, cudnnTensorFormat_t,
};
use cudarc::cudnn::{ConvBackwardData, ConvForward, Cudnn};
use cudarc::driver::{CudaSlice, CudaView};

/// `x ⋆ W` (cross-correlation, as candle's `conv2d`) on cuDNN; `None` unless `x` is on a CUDA
/// device and both tensors are f32.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Option<Tensor>> {
    let op = Conv {
        direction: Direction::Forward,
        stride,
        padding,
        input_hw: (0, 0),
    };
    op.run(x, weight)
}

/// `∂L/∂x` of `y = x ⋆ W` from `grad` = `∂L/∂y`, for an input of `input_hw` (a stride can drop
/// rows and columns, so the output's size does not fix the input's); `None` unless `grad` is on a
/// CUDA device and both tensors are f32.
pub fn conv2d_input_gradient(
    grad: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
    input_hw: (usize, usize),
) -> candle_core::Result<Option<Tensor>> {
    let op = Conv {
        direction: Direction::InputGradient,
        stride,
        padding,
        input_hw,
    };
    op.run(grad, weight)
}

/// `CXR_VIEWER_CUDNN=0` turns these convolutions off (candle's own kernels run, as in a
/// `--features cuda` build): the baseline for a side by side on one card, and a way around a
/// cuDNN fault without another build.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("CXR_VIEWER_CUDNN").map_or(true, |v| v.trim() != "0"))
}

fn applies(x: &Tensor, weight: &Tensor) -> bool {
    enabled()
        && x.device().is_cuda()
        && x.dtype() == candle_core::DType::F32
        && weight.dtype() == candle_core::DType::F32
        && x.rank() == 4
        && weight.rank() == 4
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Direction {
    Forward,
    InputGradient,
}

struct Conv {
    direction: Direction,
    stride: usize,
    padding: usize,
    /// The input's spatial size (input gradient only).
    input_hw: (usize, usize),
}

impl Conv {
    /// This convolution of `a` (the input, or the output's gradient) with `weight`; `None`
    /// unless `a` is on a CUDA device and both tensors are f32.
    fn run(&self, a: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if !applies(a, weight) {
            return Ok(None);
        }
        Ok(Some(
            a.contiguous()?
                .apply_op2_no_bwd(&weight.contiguous()?, self)?,
        ))
    }
}

/// What fixes cuDNN's choice: the direction, the four shapes' numbers, stride and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    direction: Direction,
    /// `[n, c_in, h, w]` of the convolution's input.
    input: [usize; 4],
    /// `[c_out, c_in, k_h, k_w]`.
    filter: [usize; 4],
    stride: usize,
    padding: usize,
}

#[derive(Clone, Copy)]
enum Algorithm {
    Forward(cudnnConvolutionFwdAlgo_t),
    InputGradient(cudnnConvolutionBwdDataAlgo_t),
}

fn chosen() -> &'static Mutex<HashMap<Key, (Algorithm, usize)>> {
    static CHOSEN: OnceLock<Mutex<HashMap<Key, (Algorithm, usize)>>> = OnceLock::new();
    CHOSEN.get_or_init(Default::default)
}

thread_local! {
    static HANDLES: RefCell<HashMap<candle_core::cuda_backend::DeviceId, Arc<Cudnn>>> =
        RefCell::new(HashMap::new());
}

fn cudnn_error(e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN: {e:?}"))
}

fn handle(device: &candle_core::CudaDevice) -> candle_core::Result<Arc<Cudnn>> {
    HANDLES.with(|handles| {
        if let Some(h) = handles.borrow().get(&device.id()) {
            return Ok(h.clone());
        }
        let h = Cudnn::new(device.cuda_stream()).map_err(cudnn_error)?;
        handles.borrow_mut().insert(device.id(), h.clone());
        Ok(h)
    })
}

/// The contiguous f32 data of a storage seen through `layout`.
fn view<'a>(storage: &'a CudaStorage, layout: &Layout) -> candle_core::Result<CudaView<'a, f32>> {
    if !layout.is_contiguous() {
        candle_core::bail!("cuDNN convolution: operand is not contiguous");
    }
    let start = layout.start_offset();
    let slice: &CudaSlice<f32> = storage.as_cuda_slice::<f32>()?;
    Ok(slice.slice(start..start + layout.shape().elem_count()))
}

fn dims4(shape: &Shape) -> candle_core::Result<[usize; 4]> {
    let (a, b, c, d) = shape.dims4()?;
    Ok([a, b, c, d])
}

fn as_c_int(v: [usize; 4]) -> [std::ffi::c_int; 4] {
    v.map(|x| x as std::ffi::c_int)
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Forward => "cudnn-conv2d",
            Direction::InputGradient => "cudnn-conv2d-input-gradient",
        }
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on a CUDA device only", self.name())
    }

    // SAFETY (the three `unsafe` blocks): `result` is allocated with the element count of the
    // descriptor it is written through, and cuDNN writes every element (beta = 0) before anything
    // reads it; the operands are contiguous f32 views of exactly their descriptors' sizes (checked
    // above); the workspace has the size cuDNN asked for this algorithm.
    #[allow(unsafe_code)]
    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        a_layout: &Layout,
        filter: &CudaStorage,
        filter_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let device = a.device().clone();
        let (s, p) = (self.stride, self.padding);
        let filter_dims = dims4(filter_layout.shape())?;
        let [c_out, c_in, kh, kw] = filter_dims;
        let a_dims = dims4(a_layout.shape())?;
        let n = a_dims[0];
        // `input` is the convolution's input, `output` its output, in either direction.
        let (input, output) = match self.direction {
            Direction::Forward => {
                let [_, c, h, w] = a_dims;
                if c != c_in || h + 2 * p < kh || w + 2 * p < kw {
                    candle_core::bail!("cudnn-conv2d: input {a_dims:?} for filter {filter_dims:?}");
                }
                let (oh, ow) = ((h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1);
                ([n, c_in, h, w], [n, c_out, oh, ow])
            }
            Direction::InputGradient => {
                let (h, w) = self.input_hw;
                let [_, c, gh, gw] = a_dims;
                let fits = h + 2 * p >= kh
                    && w + 2 * p >= kw
                    && (h + 2 * p - kh) / s + 1 == gh
                    && (w + 2 * p - kw) / s + 1 == gw;
                if c != c_out || !fits {
                    candle_core::bail!(
                        "cudnn-conv2d-input-gradient: gradient {a_dims:?} for filter \
                         {filter_dims:?} and input {h}×{w}"
                    );
                }
                ([n, c_in, h, w], [n, c_out, gh, gw])
            }
        };
        let result_dims = match self.direction {
            Direction::Forward => output,
            Direction::InputGradient => input,
        };
        let a_view = view(a, a_layout)?;
        let filter_view = view(filter, filter_layout)?;
        // Every element is written by cuDNN (beta = 0), so the buffer need not be zeroed.
        let mut result: CudaSlice<f32> =
            unsafe { device.alloc::<f32>(result_dims.iter().product())? };

        let cudnn = handle(&device)?;
        let mut conv = cudnn
            .create_conv2d::<f32>(
                [p as i32; 2],
                [s as i32; 2],
                [1; 2],
                cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            )
            .map_err(cudnn_error)?;
        conv.set_math_type(cudnnMathType_t::CUDNN_FMA_MATH)
            .map_err(cudnn_error)?;
        let nchw = cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let x_desc = cudnn
            .create_4d_tensor::<f32>(nchw, as_c_int(input))
            .map_err(cudnn_error)?;
        let w_desc = cudnn
            .create_4d_filter::<f32>(nchw, as_c_int(filter_dims))
            .map_err(cudnn_error)?;
        let y_desc = cudnn
            .create_4d_tensor::<f32>(nchw, as_c_int(output))
            .map_err(cudnn_error)?;
        let key = Key {
            direction: self.direction,
            input,
            filter: filter_dims,
            stride: s,
            padding: p,
        };
        let forward = ConvForward {
            conv: &conv,
            x: &x_desc,
            w: &w_desc,
            y: &y_desc,
        };
        let input_gradient = ConvBackwardData {
            conv: &conv,
            dx: &x_desc,
            w: &w_desc,
            dy: &y_desc,
        };
        let pick = || -> Result<(Algorithm, usize), cudarc::cudnn::CudnnError> {
            Ok(match self.direction {
                Direction::Forward => {
                    let a = forward.pick_algorithm()?;
                    (Algorithm::Forward(a), forward.get_workspace_size(a)?)
                }
                Direction::InputGradient => {
                    let a = input_gradient.pick_algorithm()?;
                    (
                        Algorithm::InputGradient(a),
                        input_gradient.get_workspace_size(a)?,
                    )
                }
            })
        };
        // The key holds the direction, so a cached choice is of this direction's kind.
        let (algorithm, bytes) = match chosen().lock().ok().and_then(|m| m.get(&key).copied()) {
            Some(choice) => choice,
            None => {
                let choice = pick().map_err(cudnn_error)?;
                if let Ok(mut m) = chosen().lock() {
                    m.insert(key, choice);
                }
                choice
            }
        };
        let mut workspace = workspace(&device, bytes)?;
        let scale = (1f32, 0f32); // alpha, beta: result = 1·conv + 0·result
        match algorithm {
            Algorithm::Forward(a) => unsafe {
                let ws = workspace.as_mut();
                forward.launch(a, ws, scale, &a_view, &filter_view, &mut result)
            },
            Algorithm::InputGradient(a) => unsafe {
                let ws = workspace.as_mut();
                input_gradient.launch(a, ws, scale, &mut result, &filter_view, &a_view)
            },
        }
        .map_err(cudnn_error)?;
        let shape = Shape::from(result_dims.to_vec());
        Ok((CudaStorage::wrap_cuda_slice(result, device), shape))
    }
}

// SAFETY: cuDNN's workspace is scratch it writes before reading; no one else sees it.
#[allow(unsafe_code)]
fn workspace(
    device: &candle_core::CudaDevice,
    bytes: usize,
) -> candle_core::Result<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Ok(None);
    }
    Ok(Some(unsafe { device.alloc::<u8>(bytes)? }))
}
