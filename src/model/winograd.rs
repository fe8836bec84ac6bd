//! 3×3, stride-1, padding-1 convolutions by Winograd's minimal filtering F(4×4, 3×3) (issue 13).
//!
//! Why: the 3×3 convolutions of ResNet-50's bottlenecks are about half of its multiplications,
//! and im2col + gemm spends 9 multiply-adds per tap and output. Winograd's algorithm (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) computes a 4×4 block of
//! outputs from a 6×6 block of inputs with 36 multiplications per input and output channel
//! instead of 144:
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ) ] A`
//!
//! with `g` the 3×3 kernel, `d` a 6×6 input tile (tiles overlap by two rows and columns), the
//! interpolation points 0, ±1, ±2, ∞ and
//!
//! ```text
//! Bᵀ = [ 4  0 −5  0  1  0 ]   G = [  1/4     0     0  ]   Aᵀ = [ 1  1  1  1  1  0 ]
//!      [ 0 −4 −4  1  1  0 ]       [ −1/6  −1/6  −1/6  ]        [ 0  1 −1  2 −2  0 ]
//!      [ 0  4 −4 −1  1  0 ]       [ −1/6   1/6  −1/6  ]        [ 0  1  1  4  4  0 ]
//!      [ 0 −2 −1  2  1  0 ]       [  1/24  1/12  1/6  ]        [ 0  1 −1  8 −8  1 ]
//!      [ 0  2 −1 −2  1  0 ]       [  1/24 −1/12  1/6  ]
//!      [ 0  4  0 −5  0  1 ]       [  0     0     1    ]
//! ```
//!
//! Summed over input channels, the element-wise product becomes 36 independent matrix products,
//! one per position (ξ, ν) of the 6×6 transformed tile: `M_ξν = U_ξν · V_ξν` with
//! `U_ξν = [c_out × c_in]` (the transformed kernels, computed once per layer) and
//! `V_ξν = [c_in × tiles]` (the transformed input tiles of the whole batch side by side), so the
//! work goes to `gemm` as for im2col but with 36/144 of the multiplications (less where a plane
//! is not a multiple of 4 and the last tiles hang over its edge: 14² and 7² planes compute
//! 16² and 8² outputs). The input gradient of such a convolution is again one (with the
//! flipped, transposed kernel), so the backward pass uses the same routine.
//!
//! Rounding: the transforms' constants (up to 8 and 1/24) amplify rounding, so F(4×4, 3×3) in
//! f32 is a few times less exact than direct summation (relative errors ~1e-6 instead of ~1e-7
//! per layer); the model-level tests (logits within 1e-4 of PyTorch's) bound its effect.

use std::sync::Arc;

use candle_core::{bail, DType, Result, Tensor};
use rayon::prelude::*;

use super::fused::{self, PlaneOrder};

/// Side of the output block one tile computes.
const M: usize = 4;
/// Side of a transformed tile (`M + 3 − 1`).
const A: usize = 6;
/// Positions of a transformed tile.
const POS: usize = A * A;

/// Fewest tiles (over the batch) a call needs to take this path. Why: with fewer, each of the 36
/// products has only a handful of columns, `gemm` runs them nearly as matrix–vector products
/// reading the transformed kernels (4× the kernel's size) for little work, and im2col is as fast
/// or faster. The single film's layer4 (4 tiles) stays on im2col; its layer2 (49) and layer3
/// (16) come here since the twelfth session's faster transforms: forward 5 % faster in four
/// alternating pairs of `cxr-viewer bench --runs 15` (medians 50.4 / 52.3, 51.6 / 57.8,
/// 50.1 / 52.9, 54.2 / 57.1 ms, 2-core AMD EPYC), where the eighth session (Intel Xeon, the old
/// transforms) had found them slower than im2col and set 64; layer4 from 4 tiles was slower
/// again (3 of 4 pairs). An IG lane's 4 path points give layer4 16 tiles: each of its 36
/// products still has a depth of 512, and the multiplications saved (36 instead of 9 · 16 = 144
/// per tile and channel pair, 49 of 64 outputs used) outweigh the transformed kernels' reading
/// (IG 1.5–4.6 % faster than with layer4 on im2col, eleventh session).
const MIN_TILES: usize = 16;

/// Largest kernel (`c_out · c_in`) transformed: all of ResNet-50's. The transformed kernels take
/// 4× the kernel's memory, for the forward and again for the input gradient: layer1–layer3 (up to
/// 256 × 256) add 112 MB and layer4's two stride-1 512 × 512 convolutions 150 MB more. Until the
/// eleventh session layer4 stayed on im2col because those 150 MB would have taken Integrated
/// Gradients over the 1 GiB budget of issue 13 (1 046–1 066 MiB measured); since its tape keeps
/// byte masks instead of activations (`fused::relu_mask`) the whole of it peaks at 828–838 MiB.
/// Layer4 on Winograd: IG 1.5–4.6 % faster than on im2col in three alternating pairs of
/// `cxr-viewer bench --runs 5 --ig-steps 40` (2-core AMD EPYC).
pub(crate) const MAX_KERNEL_PAIRS: usize = 512 * 512;

/// The kernels of one 3×3 convolution transformed once (`U = G g Gᵀ`): 36 row-major matrices
/// `[c_out × c_in]`, one per position of the 6×6 transformed tile.
#[derive(Clone)]
pub(crate) struct WinogradKernel {
    u: Arc<[f32]>,
    c_out: usize,
    c_in: usize,
}

impl std::fmt::Debug for WinogradKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WinogradKernel({}×{}×3×3)", self.c_out, self.c_in)
    }
}

impl WinogradKernel {
    /// From `weight` = `[c_out, c_in, 3, 3]` (computed in f64, stored in f32).
    pub(crate) fn new(weight: &Tensor) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        if (kh, kw) != (3, 3) {
            bail!("winograd: a 3×3 kernel is needed, got {kh}×{kw}")
        }
        let g: Vec<f64> = weight
            .to_dtype(DType::F64)?
            .to_device(&candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1()?;
        let pairs = c_out * c_in;
        let mut u = vec![0f32; POS * pairs];
        // One position's matrix per task: every pair's transform is recomputed 36 times, which
        // is cheaper than a scattered write of all 36 values per pair.
        u.par_chunks_mut(pairs)
            .enumerate()
            .for_each(|(position, u)| {
                let (xi, nu) = (position / A, position % A);
                for (value, g) in u.iter_mut().zip(g.chunks_exact(9)) {
                    *value = transform_kernel_at(g, xi, nu) as f32;
                }
            });
        Ok(Self {
            u: u.into(),
            c_out,
            c_in,
        })
    }
}

/// Entry (ξ, ν) of `G g Gᵀ` for one 3×3 kernel `g` (row-major): `Σ_a Σ_b G[ξ][a] g[a][b] G[ν][b]`.
fn transform_kernel_at(g: &[f64], xi: usize, nu: usize) -> f64 {
    const G: [[f64; 3]; A] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    (0..3)
        .map(|a| {
            let row: f64 = (0..3).map(|b| g[a * 3 + b] * G[nu][b]).sum();
            G[xi][a] * row
        })
        .sum()
}

/// `Bᵀ d` along one axis: six inputs spaced `stride` apart in `d` to six outputs.
#[inline(always)]
fn input_1d(d: [f32; A]) -> [f32; A] {
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
    ]
}

/// `Aᵀ m` along one axis: six transformed values to four outputs.
#[inline(always)]
fn output_1d(m: [f32; A]) -> [f32; M] {
    let (s12, d12) = (m[1] + m[2], m[1] - m[2]);
    let (s34, d34) = (m[3] + m[4], m[3] - m[4]);
    [
        m[0] + s12 + s34,
        d12 + 2.0 * d34,
        s12 + 4.0 * s34,
        d12 + 8.0 * d34 + m[5],
    ]
}

/// Tiles along one axis of a plane of `size` outputs.
fn tiles(size: usize) -> usize {
    size.div_ceil(M)
}

/// `W ⋆ x` (3×3, stride 1, padding 1, no bias) for `x` = `[n, c_in, h, w]`, or `None` where this
/// path does not apply (not a contiguous f32 CPU tensor, autograd tracking it, or a channel count
/// other than the kernel's).
pub(crate) fn conv3x3(x: &Tensor, kernel: &WinogradKernel) -> Result<Option<Tensor>> {
    conv3x3_ordered(x, kernel, PlaneOrder::ImageMajor)
}

/// [`conv3x3`] for a channel-major batch `x` = `[c_in, n, h, w]` ([`PlaneOrder::ChannelMajor`]),
/// the result `[c_out, n, h, w]` likewise.
pub(crate) fn conv3x3_channel_major(x: &Tensor, kernel: &WinogradKernel) -> Result<Option<Tensor>> {
    conv3x3_ordered(x, kernel, PlaneOrder::ChannelMajor)
}

fn conv3x3_ordered(
    x: &Tensor,
    kernel: &WinogradKernel,
    order: PlaneOrder,
) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.track_op() {
        return Ok(None);
    }
    let (n, c, h, w) = order.dims(x)?;
    if c != kernel.c_in || n == 0 || h == 0 || w == 0 {
        return Ok(None);
    }
    if n * tiles(h) * tiles(w) < MIN_TILES {
        return Ok(None);
    }
    conv3x3_any_size(x, kernel, order).map(Some)
}

/// [`conv3x3`] for a CPU f32 input with the kernel's channel count, however few its tiles.
fn conv3x3_any_size(x: &Tensor, kernel: &WinogradKernel, order: PlaneOrder) -> Result<Tensor> {
    let (n, _, h, w) = order.dims(x)?;
    let x = x.contiguous()?;
    let out = fused::with_f32_values(&x, |data| convolve(data, kernel, (n, h, w), order))??;
    Tensor::from_vec(out, order.shape(n, kernel.c_out, h, w), x.device())
}

/// The three steps on plain buffers: input transform `V`, 36 products `M`, output transform.
fn convolve(
    data: &[f32],
    kernel: &WinogradKernel,
    (n, h, w): (usize, usize, usize),
    order: PlaneOrder,
) -> Result<Vec<f32>> {
    let (c_in, c_out) = (kernel.c_in, kernel.c_out);
    let (th, tw) = (tiles(h), tiles(w));
    let t = n * th * tw;
    if data.len() != n * c_in * h * w {
        bail!("winograd: input does not match its shape")
    }
    // V: [c_in][36][t], one channel per task (its 36 rows of transformed tiles).
    let mut v_buffer = take_scratch(c_in * POS * t);
    let v = &mut v_buffer[..c_in * POS * t];
    v.par_chunks_mut(POS * t)
        .enumerate()
        .for_each_init(Vec::new, |scratch, (channel, v)| {
            for image in 0..n {
                let plane = &data[order.plane(image, channel, n, c_in) * h * w..][..h * w];
                transform_input_plane(plane, (h, w), v, (t, image * th * tw), scratch);
            }
        });
    // M: [36][c_out][t], one product per position.
    let mut m_buffer = take_scratch(POS * c_out * t);
    let m = &mut m_buffer[..POS * c_out * t];
    let u = &kernel.u;
    m.par_chunks_mut(c_out * t)
        .enumerate()
        .try_for_each(|(position, m)| {
            fused::gemm_strided(
                m,
                t,
                &u[position * c_out * c_in..][..c_out * c_in],
                c_in,
                &v[position * t..],
                POS * t,
                (c_out, c_in, t),
                false,
            )
        })?;
    give_back_scratch(v_buffer);
    // Y: [n][c_out][h][w]; a task per output channel and run of images (see
    // `TILES_PER_OUTPUT_TASK`).
    let per_image = th * tw;
    let images_per_task = (TILES_PER_OUTPUT_TASK / per_image).clamp(1, n);
    let runs = n.div_ceil(images_per_task);
    // SAFETY: the groups below hold every one of the `n·c_out` planes of `h·w` values once,
    // and `transform_output_planes` writes every value of each plane it is given.
    #[allow(unsafe_code)]
    let y = unsafe {
        fused::written_by(n * c_out * h * w, |y| {
            let mut groups: Vec<Vec<&mut [std::mem::MaybeUninit<f32>]>> =
                (0..c_out * runs).map(|_| Vec::new()).collect();
            for (index, plane) in y.chunks_exact_mut(h * w).enumerate() {
                let (image, channel) = order.image_channel(index, n, c_out);
                groups[channel * runs + image / images_per_task].push(plane);
            }
            groups.par_iter_mut().enumerate().for_each_init(
                Vec::new,
                |scratch, (group, planes)| {
                    let (channel, run) = (group / runs, group % runs);
                    let at = channel * t + run * images_per_task * per_image;
                    transform_output_planes(&m[at..], c_out * t, (h, w), planes, scratch);
                },
            );
            Ok(())
        })?
    };
    give_back_scratch(m_buffer);
    Ok(y)
}

/// Tiles an output task transforms at once: one channel's tiles of as many images as give at most
/// this many (at least one image). Why: a task per plane spends most of its time on loop and
/// task overhead for layer3's 16 and layer4's 4 tiles per plane, while long runs push the task's
/// intermediate rows (96 bytes per tile) out of the L1 cache. The transform alone, IG lanes of 4
/// images, 2-core AMD EPYC: a task per channel of all four images took 0.16 instead of 0.28 ms
/// (a task per plane) for layer4, 0.20–0.26 instead of 0.31–0.33 ms for layer3, but 0.60–0.62
/// instead of 0.50–0.53 ms for layer1's 4 × 196 tiles.
const TILES_PER_OUTPUT_TASK: usize = 128;

/// Scratch buffers for `V` and `M` kept between calls. Why: every element of both is written
/// before it is read, so a reused buffer needs no zeroing, while a fresh one must be zeroed
/// first (a pass over up to 14 MB each, for layer1 at a batch of 8). At most four are kept (a
/// call holds two while its products run, and IG runs two lanes at once), the largest, so every
/// call's fit.
static SCRATCH: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// A buffer of at least `len` values, whose first `len` the caller overwrites before reading.
fn take_scratch(len: usize) -> Vec<f32> {
    let kept = {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        let fitting = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(at, _)| at);
        fitting.map(|at| pool.swap_remove(at))
    };
    // A fresh buffer is zeroed on the pool *after* the lock is released: a pool thread waiting
    // for its half of that parallel fill could otherwise take a task that wants the lock (a
    // deadlock the fresh-clone CI ran into with the tests' parallel passes).
    kept.unwrap_or_else(|| fused::zeroed(len))
}

fn give_back_scratch(buffer: Vec<f32>) {
    let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    pool.push(buffer);
    pool.sort_by_key(|b| std::cmp::Reverse(b.len()));
    pool.truncate(4);
}

/// Writes `Bᵀ d B` for every tile of one input plane (`h × w`, zero outside) into `v`:
/// `v[position · t + first + tile]`.
///
/// One tile at a time, from a zero-padded copy of the plane: the tile's 6 × 6 inputs are six
/// contiguous runs of it, both 1-D transforms run on values held in registers, and each of the 36
/// results goes to its own row of `v`, which every tile of the plane extends by one. Why not
/// vectors over a row of tiles (the first version): for layer2–layer4 a row has only 7, 4 or 2
/// tiles, and the per-row bookkeeping and 36 short copies per row cost more than the arithmetic:
/// 1.9–3.7× this one's time for those layers and 1.65× for layer1 (the transform alone, IG lanes
/// of 4 images, 2-core AMD EPYC, best of 15 interleaved runs; bit-identical results).
fn transform_input_plane(
    plane: &[f32],
    (h, w): (usize, usize),
    v: &mut [f32],
    (t, first): (usize, usize),
    scratch: &mut Vec<f32>,
) {
    let (th, tw) = (tiles(h), tiles(w));
    // Padding: one row and column before the plane, and after it up to the last tile's end.
    let (ph, pw) = (M * th + 2, M * tw + 2);
    scratch.resize(ph * pw, 0.0);
    let padded = &mut scratch[..ph * pw];
    padded.fill(0.0);
    for (y, row) in plane.chunks_exact(w).enumerate() {
        padded[(y + 1) * pw + 1..][..w].copy_from_slice(row);
    }
    let v = &mut v[..POS * t];
    for ty in 0..th {
        for tx in 0..tw {
            let tile = first + ty * tw + tx;
            let mut d = [[0f32; A]; A];
            for (r, d) in d.iter_mut().enumerate() {
                d.copy_from_slice(&padded[(M * ty + r) * pw + M * tx..][..A]);
            }
            // Along y (each column), then along x (each row of the result).
            let mut e = [[0f32; A]; A];
            for s in 0..A {
                let o = input_1d([d[0][s], d[1][s], d[2][s], d[3][s], d[4][s], d[5][s]]);
                for (e, o) in e.iter_mut().zip(o) {
                    e[s] = o;
                }
            }
            for (xi, e) in e.iter().enumerate() {
                for (nu, o) in input_1d(*e).into_iter().enumerate() {
                    v[(xi * A + nu) * t + tile] = o;
                }
            }
        }
    }
}

/// Writes `Aᵀ m A` for every tile of `planes` (one channel's planes of consecutive images, each
/// `h × w`, every value of each; outputs past the edge dropped), reading position `p` of the
/// run's tile `k` at `m[p · stride + k]`. The transform along ξ runs element-wise over the whole
/// run of tiles, whose values at one position are contiguous in `m`; the one along ν per tile,
/// into the plane.
fn transform_output_planes(
    m: &[f32],
    stride: usize,
    (h, w): (usize, usize),
    planes: &mut [&mut [std::mem::MaybeUninit<f32>]],
    scratch: &mut Vec<f32>,
) {
    let (th, tw) = (tiles(h), tiles(w));
    let per_image = th * tw;
    let t = planes.len() * per_image;
    // After the transform along ξ: [4][6][t].
    scratch.resize(M * A * t, 0.0);
    let half = &mut scratch[..M * A * t];
    for nu in 0..A {
        let seg = |xi: usize| &m[(xi * A + nu) * stride..][..t];
        let (s0, s1, s2, s3, s4, s5) = (seg(0), seg(1), seg(2), seg(3), seg(4), seg(5));
        let (h0, rest) = half.split_at_mut(A * t);
        let (h1, rest) = rest.split_at_mut(A * t);
        let (h2, h3) = rest.split_at_mut(A * t);
        let (h0, h1, h2, h3) = (
            &mut h0[nu * t..][..t],
            &mut h1[nu * t..][..t],
            &mut h2[nu * t..][..t],
            &mut h3[nu * t..][..t],
        );
        for k in 0..t {
            let o = output_1d([s0[k], s1[k], s2[k], s3[k], s4[k], s5[k]]);
            (h0[k], h1[k], h2[k], h3[k]) = (o[0], o[1], o[2], o[3]);
        }
    }
    for (image, plane) in planes.iter_mut().enumerate() {
        for ty in 0..th {
            let first = image * per_image + ty * tw;
            for (i, hi) in half.chunks_exact(A * t).enumerate() {
                let y = M * ty + i;
                if y >= h {
                    break;
                }
                // Rows 0..h, each whole (⌈w/4⌉ = tw chunks): every element of the plane once.
                for (tx, out) in plane[y * w..(y + 1) * w].chunks_mut(M).enumerate() {
                    let at = |nu: usize| hi[nu * t + first + tx];
                    let o = output_1d([at(0), at(1), at(2), at(3), at(4), at(5)]);
                    for (value, o) in out.iter_mut().zip(o) {
                        value.write(o);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::Device;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let len: usize = shape.iter().product();
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let values: Vec<f32> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    /// Against candle's direct convolution, on planes that are and are not multiples of 4 (the
    /// last tiles then hang over the edge), for one image and a batch.
    #[test]
    fn matches_candle_conv2d() {
        for (n, c_in, c_out, h, w) in [
            (1, 3, 5, 8, 8),
            (2, 4, 3, 7, 7),
            (3, 8, 16, 14, 14),
            (1, 2, 2, 1, 1),
            (2, 5, 7, 9, 13),
            (1, 16, 8, 56, 56),
            // Output tasks of two images, the last of one.
            (5, 3, 4, 28, 28),
        ] {
            let x = random(&[n, c_in, h, w], (n * h + w) as u64);
            let weight = random(&[c_out, c_in, 3, 3], (c_in * c_out) as u64);
            let kernel = WinogradKernel::new(&weight).unwrap();
            let ours = conv3x3_any_size(&x, &kernel, PlaneOrder::ImageMajor).unwrap();
            let reference = x.conv2d(&weight, 1, 1, 1, 1).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            let max_diff = super::super::im2col::max_abs_diff;
            let diff = max_diff(&ours, &reference);
            let scale = max_diff(&reference, &reference.zeros_like().unwrap());
            assert!(
                diff <= 1e-5 * scale.max(1.0),
                "{n}×{c_in}→{c_out} on {h}×{w}: max |Δ| {diff} against max |y| {scale}"
            );
        }
    }

    #[test]
    fn other_kernel_sizes_are_refused() {
        let weight = random(&[2, 2, 5, 5], 1);
        let err = WinogradKernel::new(&weight).unwrap_err().to_string();
        assert!(err.contains("3×3 kernel is needed"), "{err}");
    }

    #[test]
    fn inputs_with_another_channel_count_take_another_path() {
        let kernel = WinogradKernel::new(&random(&[2, 3, 3, 3], 2)).unwrap();
        assert!(conv3x3(&random(&[1, 4, 8, 8], 3), &kernel)
            .unwrap()
            .is_none());
    }
}
