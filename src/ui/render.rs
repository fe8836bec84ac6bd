//! Pixels for the screen (and for the PNG export, so that what is saved is what was seen):
//! the film in its display window, the map colours, threshold masks and contour lines.

use egui::{Color32, ColorImage, Pos2};

use crate::explain::Grid;
use crate::io::{Study, Window};
use crate::overlay::{Colormap, MapScale};

use super::settings::{MapKind, OverlayMode};

/// Largest texture side we upload; GPUs (and llvmpipe) refuse more than 8192–16384, and a
/// screen never shows more detail than this anyway. A larger region is built at a coarser step
/// ([`texture_region`]).
pub const MAX_TEXTURE_SIDE: usize = 4096;

/// The grey level (0..1) pixel `i` (row-major) is shown at: through `window`, optionally
/// inverted. DICOM pixel padding stays black either way: it is background the device asks to be
/// suppressed "when inverting or adjusting the grayscale contrast" (CP 692, PS3.3 C.7.5.1.1.2).
pub fn shown_grey(study: &Study, window: &Window, invert: bool, i: usize) -> f32 {
    windowed_grey(
        (!study.is_padding(i)).then(|| study.pixels[i]),
        window,
        invert,
    )
}

/// A film value through `window`, optionally inverted; `None` (padding) is black either way.
fn windowed_grey(value: Option<f32>, window: &Window, invert: bool) -> f32 {
    let Some(v) = value else {
        return 0.0;
    };
    let g = window.apply(v);
    if invert {
        1.0 - g
    } else {
        g
    }
}

/// Textures at least this large are built on several threads (a thread costs tens of µs).
const PARALLEL_TEXELS: usize = 1 << 20;

/// A texture region's edges fall on multiples of this many texels, so that a pan rebuilds the
/// texture only when the view crosses one of these lines, not every frame.
pub const REGION_BLOCK_TEXELS: usize = 256;

/// One texel per `step` × `step` block of film pixels (at least 1) for a film shown
/// `shown_px` physical pixels along its longer side: the largest power of two that still leaves
/// at least two texels per screen pixel. A screen cannot show more than that, and each
/// window/level drag frame rebuilds the texture: a 3000 × 3600 CR film fitted into the viewer is
/// about 700 px tall, so it gets a quarter of its texels. Powers of two, so zooming rebuilds the
/// texture only when it crosses one. [`texture_region`] may raise it to keep within
/// [`MAX_TEXTURE_SIDE`].
pub fn texture_step(film_side: usize, shown_px: f32) -> usize {
    let spare = film_side as f32 / (2.0 * shown_px.max(1.0));
    let mut step = 1;
    while (step * 2) as f32 <= spare {
        step *= 2;
    }
    step
}

/// Texels above which a texture is built at half resolution while window/level is dragged
/// ([`drag_step`]).
pub const DRAG_MAX_TEXELS: usize = 2 << 20;

/// The step to build the film's texture at while window/level is being dragged: twice `step`
/// when the texture of `region` at `step` holds more than [`DRAG_MAX_TEXELS`], else `step`.
///
/// Why: every drag frame rebuilds the texture, and [`texture_step`] keeps two or more texels per
/// screen pixel, so a large film zoomed in builds up to sixteen texels per screen pixel each
/// frame: on a 9500 × 9500 film at step 2, 35–66 ms a frame (2-core Intel Xeon). At twice the
/// step there is still at least one texel per screen pixel, which is all a moving picture needs;
/// the texture at the full step is built once, on the first frame after the drag. The limit,
/// 2 M texels (about 5 ms a frame there), halves a 3000 × 3600 film fitted into a 700-px-tall
/// canvas too (1500 × 1800 texels), not its part on screen at 1:1 (1536 × 1024).
pub fn drag_step(region: FilmRegion, step: usize) -> usize {
    let step = step.max(1);
    if region.texels(step) > DRAG_MAX_TEXELS {
        step * 2
    } else {
        step
    }
}

/// Physical screen pixels per film pixel from which the film is drawn with hard pixel edges.
pub const PIXEL_EDGES_FROM: f32 = 4.0;

/// The film's rectangle on screen, widened about its centre to at least `min_side` (one
/// physical pixel, in points) on each side: a film of 1 × 5 000 pixels fitted to the window is
/// 0.16 screen pixels wide and was not drawn at all, so the canvas looked empty.
pub fn at_least_visible(film_on_screen: egui::Rect, min_side: f32) -> egui::Rect {
    let size = film_on_screen.size().max(egui::vec2(min_side, min_side));
    egui::Rect::from_center_size(film_on_screen.center(), size)
}

/// How the film's texture is filtered at `screen_px_per_film_px` (physical pixels): blended
/// (linear) below [`PIXEL_EDGES_FROM`], nearest texel from there on. Magnified far enough to
/// inspect single pixels (the zoom goes to 64×), linear blending draws a smooth ramp between
/// pixel centres, so the square the cursor readout describes is nowhere to be seen; at 4× and
/// more each film pixel shows as the square it is, as in other image viewers.
pub fn film_filter(screen_px_per_film_px: f32) -> egui::TextureOptions {
    if screen_px_per_film_px >= PIXEL_EDGES_FROM {
        egui::TextureOptions::NEAREST
    } else {
        egui::TextureOptions::LINEAR
    }
}

/// Film pixels `[x0, x1) × [y0, y1)` that a film texture covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilmRegion {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl FilmRegion {
    pub fn whole(width: usize, height: usize) -> Self {
        Self {
            x0: 0,
            y0: 0,
            x1: width,
            y1: height,
        }
    }

    /// Texels of this region's texture at `step` (film pixels per texel along each side).
    pub fn texels(&self, step: usize) -> usize {
        (self.x1 - self.x0).div_ceil(step) * (self.y1 - self.y0).div_ceil(step)
    }

    /// Where the texture is drawn, in image (film pixel) coordinates.
    pub fn rect_in_image(&self) -> egui::Rect {
        egui::Rect::from_min_max(
            Pos2::new(self.x0 as f32, self.y0 as f32),
            Pos2::new(self.x1 as f32, self.y1 as f32),
        )
    }
}

/// The part of a `width` × `height` film that the texture covers, and the step it is built at.
/// Only what is on screen (`visible_in_image`, film pixel coordinates, may reach past the film)
/// is built, widened to whole blocks of [`REGION_BLOCK_TEXELS`] texels and clipped to the film;
/// `step` is doubled until no side is over `max_side` texels: [`MAX_TEXTURE_SIDE`], or less
/// where the graphics backend allows less (egui's `max_texture_side`; a texture over it is
/// refused, and egui's test harness allows 2048).
///
/// Why: a window/level drag rebuilds the texture every frame. At 1:1 a 3000 × 3600 film fills
/// the screen with a tenth of its pixels, but the whole film's texture took 34–42 ms a frame;
/// a film larger than 4096 px a side was shown downsampled even at 1:1. Fitted into the window,
/// the region is the whole film, as before.
pub fn texture_region(
    (width, height): (usize, usize),
    visible_in_image: egui::Rect,
    step: usize,
    max_side: usize,
) -> (FilmRegion, usize) {
    let max_side = max_side.max(REGION_BLOCK_TEXELS);
    let mut step = step.max(1);
    loop {
        let block = step * REGION_BLOCK_TEXELS;
        let span = |lo: f32, hi: f32, len: usize| -> (usize, usize) {
            if len == 0 {
                return (0, 0);
            }
            let lo = (lo.max(0.0).floor() as usize).min(len - 1);
            let hi = (hi.max(0.0).ceil() as usize).clamp(lo + 1, len);
            let start = lo / block * block;
            (start, hi.div_ceil(block).saturating_mul(block).min(len))
        };
        let (x0, x1) = span(visible_in_image.min.x, visible_in_image.max.x, width);
        let (y0, y1) = span(visible_in_image.min.y, visible_in_image.max.y, height);
        let region = FilmRegion { x0, y0, x1, y1 };
        let side = (x1 - x0).max(y1 - y0).div_ceil(step);
        if side <= max_side {
            return (region, step);
        }
        step *= 2;
    }
}

/// The film averaged over blocks of `step` × `step` pixels: what a texture one texel per block
/// shows when the film is drawn smaller than its pixels.
///
/// Why averages and not one pixel per block: taking each block's first pixel drops three pixels
/// of four at step 2, so thin bright structures (a grid line, a wire, a fine trabecular pattern)
/// vanish or reappear in a moiré as the zoom changes. The means are of the raw values, built once
/// per film and step (the window is applied per frame, to `step`² fewer values than the film
/// has); on a 3000 × 3600 film, step 2 takes 5.1 ms (`cargo bench --bench film_texture`, 2-core
/// AMD EPYC).
pub struct FilmLevel {
    pub step: usize,
    pub width: usize,
    pub height: usize,
    /// The mean of each block's film pixels (DICOM padding and NaN left out); NaN where the
    /// whole block is padding.
    means: Vec<f32>,
}

impl FilmLevel {
    /// The block means, row-major (NaN for a block of padding only).
    pub fn means(&self) -> &[f32] {
        &self.means
    }

    pub fn new(study: &Study, step: usize) -> Self {
        let step = step.max(1);
        let (w, h) = (study.width, study.height);
        let (lw, lh) = (w.div_ceil(step), h.div_ceil(step));
        let mut means = vec![f32::NAN; lw * lh];
        // One block, pixel by pixel: padding and NaN left out.
        let block_mean = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            let (mut sum, mut n) = (0f64, 0u32);
            for y in rows {
                for i in y * w + cols.start..y * w + cols.end {
                    let v = study.pixels[i];
                    if !v.is_nan() && !study.is_padding(i) {
                        sum += f64::from(v);
                        n += 1;
                    }
                }
            }
            (n > 0).then(|| (sum / f64::from(n)) as f32)
        };
        let level_row = |ly: usize, row: &mut [f32]| {
            let rows = ly * step..((ly + 1) * step).min(h);
            if study.padding.is_some() {
                for (lx, out) in row.iter_mut().enumerate() {
                    let cols = lx * step..((lx + 1) * step).min(w);
                    *out = block_mean(rows.clone(), cols).unwrap_or(f32::NAN);
                }
                return;
            }
            // Without padding (most films): the block rows summed column by column, whole rows
            // at a time (a loop the compiler vectorises), then each block's columns; a NaN in a
            // block sends that block alone through `block_mean`. On a 3000 × 3600 film this took
            // step 2 from 7.8 to 5.1 ms and step 4 from 5.1 to 2.1 ms (`cargo bench --bench
            // film_texture`, 2-core AMD EPYC).
            let mut columns = vec![0f32; w];
            for y in rows.clone() {
                for (c, &v) in columns.iter_mut().zip(&study.pixels[y * w..(y + 1) * w]) {
                    *c += v;
                }
            }
            let count = rows.len();
            for (lx, out) in row.iter_mut().enumerate() {
                let cols = lx * step..((lx + 1) * step).min(w);
                let n = (count * cols.len()) as f32;
                let sum: f32 = columns[cols.clone()].iter().sum();
                *out = if sum.is_nan() {
                    block_mean(rows.clone(), cols).unwrap_or(f32::NAN)
                } else {
                    sum / n
                };
            }
        };
        in_row_bands(&mut means, lw, w * h, &level_row);
        Self {
            step,
            width: lw,
            height: lh,
            means,
        }
    }
}

/// What a film texture is built from: the film itself (one texel per pixel) or one of its
/// averaged levels.
#[derive(Clone, Copy)]
pub enum FilmSource<'a> {
    Full(&'a Study),
    Level(&'a FilmLevel),
}

impl FilmSource<'_> {
    fn step(&self) -> usize {
        match self {
            Self::Full(_) => 1,
            Self::Level(level) => level.step,
        }
    }

    fn size(&self) -> (usize, usize) {
        match self {
            Self::Full(study) => (study.width, study.height),
            Self::Level(level) => (level.width, level.height),
        }
    }

    /// [`shown_grey`] of texel `i` (row-major in this source's grid); a block of padding is black.
    fn shown_grey(&self, window: &Window, invert: bool, i: usize) -> f32 {
        match self {
            Self::Full(study) => shown_grey(study, window, invert, i),
            Self::Level(level) => {
                let v = level.means[i];
                windowed_grey((!v.is_nan()).then_some(v), window, invert)
            }
        }
    }
}

/// Fills `out` (rows of `row_len`) with `fill_row(row index, row)`, in bands of rows on scoped
/// threads of our own when `work` (the values read) is large, not on rayon's pool: that pool runs
/// the analysis (IG keeps it busy for seconds), and a frame waiting for it would stall until it
/// let go.
fn in_row_bands<T: Send>(
    out: &mut [T],
    row_len: usize,
    work: usize,
    fill_row: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let rows = out.len() / row_len.max(1);
    let bands = if work >= PARALLEL_TEXELS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let rows_per_band = rows.div_ceil(bands).max(1);
    let last_band = rows.div_ceil(rows_per_band).saturating_sub(1);
    std::thread::scope(|scope| {
        for (band, chunk) in out.chunks_mut(rows_per_band * row_len.max(1)).enumerate() {
            let mut work = move || {
                for (k, row) in chunk.chunks_mut(row_len.max(1)).enumerate() {
                    fill_row(band * rows_per_band + k, row);
                }
            };
            if band == last_band {
                work(); // the last band on this thread
            } else {
                scope.spawn(work);
            }
        }
    });
}

/// The film's `region` (film pixels) in `window`, optionally inverted, one texel per pixel of
/// `source` (the film, or its level at the step [`texture_step`] and [`texture_region`] chose),
/// so a region's texels are those of the whole film's texture.
///
/// A window/level drag rebuilds this every frame, so it stays a single pass of [`shown_grey`]
/// over the texels, in bands of rows on every core, rounded to bytes by `unit_to_u8`: for a
/// 3000 × 3600 CR film at full resolution the single-threaded loop with `f32::round` took 66 ms
/// on two cores of an AMD EPYC, so a drag ran under 15 frames a second.
pub fn film_image(
    source: FilmSource<'_>,
    window: &Window,
    invert: bool,
    region: FilmRegion,
) -> ColorImage {
    let step = source.step();
    let (sw, sh) = source.size();
    // The region in the source's grid (its edges are multiples of the step, or the film's edge).
    let x1 = region.x1.div_ceil(step).min(sw);
    let y1 = region.y1.div_ceil(step).min(sh);
    let (x0, y0) = ((region.x0 / step).min(x1), (region.y0 / step).min(y1));
    let (tw, th) = (x1 - x0, y1 - y0);
    let mut pixels = vec![Color32::BLACK; tw * th];
    let texel_row = |ty: usize, row: &mut [Color32]| {
        let start = (y0 + ty) * sw + x0;
        for (k, out) in row.iter_mut().enumerate() {
            *out = Color32::from_gray(unit_to_u8(source.shown_grey(window, invert, start + k)));
        }
    };
    in_row_bands(&mut pixels, tw, tw * th, &texel_row);
    ColorImage::new([tw, th], pixels)
}

/// `(g * 255).round()` clamped to 0..=255, for `g` in [0, 1]; exactly the same bytes, without
/// `f32::round`, which on the baseline x86-64 this crate is built for is a call into libm per
/// texel (a `roundss` needs SSE4.1). For x ≥ 0, truncation and the exact fraction x − ⌊x⌋ give
/// round-half-away-from-zero.
fn unit_to_u8(g: f32) -> u8 {
    let x = (g * 255.0).clamp(0.0, 255.0);
    let whole = x as u8;
    if x - f32::from(whole) >= 0.5 {
        whole + 1
    } else {
        whole
    }
}

/// How `kind` is normalised, matching the CLI's overlay PNGs: Grad-CAM to its own maximum, the
/// uncertainty std to the maximum of the *mean* CAM (so a small spread looks small), IG
/// symmetrically at the 99th percentile of |value|.
pub fn map_scale(kind: MapKind, map: &Grid, mean_for_std: Option<&Grid>) -> MapScale {
    match kind {
        MapKind::IntegratedGradients => MapScale::signed_percentile(map),
        MapKind::Uncertainty => match mean_for_std {
            Some(mean) => MapScale::Sequential {
                max: mean.max().max(f32::MIN_POSITIVE),
            },
            None => MapScale::own_max(map),
        },
        _ => MapScale::own_max(map),
    }
}

/// Normalised value: [0, 1] for sequential maps, [−1, 1] for signed ones.
pub fn normalised(v: f32, scale: MapScale) -> f32 {
    scale.normalise(v)
}

/// Colour and opacity of one map value, the same blend as the CLI's overlay PNGs: sequential maps
/// fade with √value, signed maps with |value|, so "no evidence" leaves the film visible;
/// threshold mode hides everything below the level.
pub fn map_color(
    v: f32,
    scale: MapScale,
    colormap: Colormap,
    alpha: f32,
    mode: OverlayMode,
    threshold: f32,
) -> ([u8; 3], f32) {
    let n = normalised(v, scale);
    // Signed maps (IG) always use the diverging map, whatever the sequential choice.
    let colormap = match scale {
        MapScale::Sequential { .. } => colormap,
        MapScale::Signed { .. } => Colormap::RedBlue,
    };
    let (color, a) = crate::overlay::map_color(v, scale, colormap, alpha);
    let a = match mode {
        OverlayMode::Blend => a,
        OverlayMode::Threshold if n.abs() >= threshold => a,
        OverlayMode::Threshold | OverlayMode::Contour => 0.0,
    };
    (color, a.clamp(0.0, 1.0))
}

/// The overlay texture at the map's own resolution (the caller resizes the grid to the model
/// input first); drawn stretched over the whole film.
pub fn overlay_image(
    map: &Grid,
    scale: MapScale,
    colormap: Colormap,
    alpha: f32,
    mode: OverlayMode,
    threshold: f32,
) -> ColorImage {
    let pixels = map
        .values
        .iter()
        .map(|&v| {
            let (c, a) = map_color(v, scale, colormap, alpha, mode, threshold);
            Color32::from_rgba_unmultiplied(c[0], c[1], c[2], (a * 255.0).round() as u8)
        })
        .collect();
    ColorImage::new([map.width, map.height], pixels)
}

/// Iso-line segments of |normalised value| = `level` by marching squares, in model-grid
/// coordinates (cell centres at `i + 0.5`).
pub fn contour_segments(map: &Grid, scale: MapScale, level: f32) -> Vec<[Pos2; 2]> {
    let (w, h) = (map.width, map.height);
    let value = |x: usize, y: usize| normalised(map.values[y * w + x], scale).abs();
    let mut out = Vec::new();
    if w < 2 || h < 2 {
        return out;
    }
    for y in 0..h - 1 {
        for x in 0..w - 1 {
            // Corners clockwise from top-left.
            let c = [
                value(x, y),
                value(x + 1, y),
                value(x + 1, y + 1),
                value(x, y + 1),
            ];
            let p = [
                Pos2::new(x as f32 + 0.5, y as f32 + 0.5),
                Pos2::new(x as f32 + 1.5, y as f32 + 0.5),
                Pos2::new(x as f32 + 1.5, y as f32 + 1.5),
                Pos2::new(x as f32 + 0.5, y as f32 + 1.5),
            ];
            let mut crossings = Vec::with_capacity(4);
            for e in 0..4 {
                let (a, b) = (c[e], c[(e + 1) % 4]);
                if (a >= level) != (b >= level) {
                    let t = (level - a) / (b - a);
                    crossings.push(p[e] + (p[(e + 1) % 4] - p[e]) * t);
                }
            }
            // 2 crossings: one segment; 4 (saddle): pair them in edge order.
            for pair in crossings.chunks_exact(2) {
                out.push([pair[0], pair[1]]);
            }
        }
    }
    out
}

/// Display-window presets. Projection radiographs have no Hounsfield scale, so CT presets
/// (lung −600/1500 HU …) would be meaningless; these are percentiles of the film's own
/// histogram, named after what they emphasise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowPreset {
    /// The study's default: DICOM header VOI, else the analysis window.
    Auto,
    FullRange,
    /// Dark range widened: lung parenchyma and vessels.
    Lung,
    /// Narrow mid-range: mediastinum and soft tissue.
    SoftTissue,
    /// Bright range: ribs, clavicles, spine.
    Bone,
}

impl WindowPreset {
    pub const ALL: [WindowPreset; 5] = [
        WindowPreset::Auto,
        WindowPreset::FullRange,
        WindowPreset::Lung,
        WindowPreset::SoftTissue,
        WindowPreset::Bone,
    ];

    pub fn label(self) -> &'static str {
        match self {
            WindowPreset::Auto => "Auto (study default)",
            WindowPreset::FullRange => "Full range",
            WindowPreset::Lung => "Lung",
            WindowPreset::SoftTissue => "Soft tissue",
            WindowPreset::Bone => "Bone",
        }
    }

    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    pub fn window(self, study: &Study, hist: &Percentiles) -> Window {
        let (lo, hi) = match self {
            WindowPreset::Auto => return study.default_window,
            WindowPreset::FullRange => (0.0, 1.0),
            WindowPreset::Lung => (0.01, 0.70),
            WindowPreset::SoftTissue => (0.35, 0.85),
            WindowPreset::Bone => (0.55, 0.995),
        };
        let (low, high) = (hist.at(lo), hist.at(hi));
        if high > low {
            Window { low, high }
        } else {
            study.default_window
        }
    }
}

/// Sorted sample of the film's pixel values, computed once per study for the presets; DICOM pixel
/// padding is not film and is left out (unless there is nothing else).
pub struct Percentiles {
    sorted: Vec<f32>,
}

impl Percentiles {
    pub fn new(study: &Study) -> Self {
        let step = (study.pixels.len() / 200_000).max(1);
        let sample = |skip_padding: bool| -> Vec<f32> {
            (0..study.pixels.len())
                .step_by(step)
                .filter(|&i| !(skip_padding && study.is_padding(i)))
                .map(|i| study.pixels[i])
                .collect()
        };
        let mut sorted = sample(true);
        if sorted.is_empty() {
            sorted = sample(false);
        }
        sorted.sort_by(|a, b| a.total_cmp(b));
        Self { sorted }
    }

    pub fn at(&self, q: f32) -> f32 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let i = ((self.sorted.len() - 1) as f32 * q.clamp(0.0, 1.0)).round() as usize;
        self.sorted[i]
    }

    pub fn range(&self) -> (f32, f32) {
        (self.at(0.0), self.at(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::PaddingMask;

    #[test]
    fn a_film_thinner_than_a_pixel_on_screen_is_drawn_one_pixel_wide() {
        let thin = egui::Rect::from_min_max(egui::pos2(10.0, 0.0), egui::pos2(10.16, 800.0));
        let shown = at_least_visible(thin, 1.0);
        assert_eq!(shown.center(), thin.center());
        assert_eq!(shown.size(), egui::vec2(1.0, 800.0));
        // A film of normal size is left as it is.
        let film = egui::Rect::from_min_max(egui::pos2(3.0, 4.0), egui::pos2(300.0, 200.0));
        assert_eq!(at_least_visible(film, 1.0), film);
    }

    /// A `w` × `h` test film of `value(i)` (row-major index), windowed `low..high`.
    fn film(
        w: usize,
        h: usize,
        value: impl Fn(usize) -> f32,
        (low, high): (f32, f32),
        padding: Option<PaddingMask>,
    ) -> Study {
        Study {
            source: "test.dcm".into(),
            width: w,
            height: h,
            pixels: (0..w * h).map(value).collect(),
            default_window: Window { low, high },
            window_source: crate::io::WindowSource::Percentile,
            metadata: Default::default(),
            padding,
        }
    }

    /// The presets' percentiles come from the film: DICOM padding (here 40 of 100 pixels at the
    /// range's low end) would otherwise set the "Full range" and "Lung" low ends.
    #[test]
    fn padding_is_left_out_of_presets_and_shown_black() {
        let study = |padding: Option<PaddingMask>| {
            let value = |i| if i < 40 { -1000.0 } else { i as f32 };
            film(10, 10, value, (40.0, 99.0), padding)
        };
        let padded = study(Some(PaddingMask::from_fn(100, |i| i < 40)));
        assert_eq!(Percentiles::new(&padded).range(), (40.0, 99.0));
        let full = WindowPreset::FullRange.window(&padded, &Percentiles::new(&padded));
        assert_eq!((full.low, full.high), (40.0, 99.0));
        // Without the mask the same values are film.
        assert_eq!(Percentiles::new(&study(None)).range(), (-1000.0, 99.0));
        // All padding: the presets still get the values (nothing else to use).
        let all = study(Some(PaddingMask::from_fn(100, |_| true)));
        assert_eq!(Percentiles::new(&all).range(), (-1000.0, 99.0));

        // Padding shows black, inverted or not; the film inverts.
        let window = Window {
            low: 40.0,
            high: 99.0,
        };
        for invert in [false, true] {
            let image = film_image(
                FilmSource::Full(&padded),
                &window,
                invert,
                FilmRegion::whole(10, 10),
            );
            assert!(image.pixels[..40].iter().all(|&p| p == Color32::BLACK));
            let film_end = if invert { 255 } else { 0 };
            assert_eq!(image.pixels[40], Color32::from_gray(film_end), "{invert}");
        }
        // Without the mask the same pixels are film and turn white when inverted.
        let image = film_image(
            FilmSource::Full(&study(None)),
            &window,
            true,
            FilmRegion::whole(10, 10),
        );
        assert_eq!(image.pixels[0], Color32::WHITE);
    }

    /// Every texel of the film's texture is, at step 1, `shown_grey` of its pixel, and at coarser
    /// steps the windowed mean of its block's film pixels (padding left out, a block of padding
    /// black), computed here pixel by pixel; padding and inversion included, on films whose rows
    /// are not a multiple of the step. The two large ones at step 1 (over PARALLEL_TEXELS) are
    /// built in bands on several threads.
    #[test]
    fn film_texture_shows_each_blocks_mean() {
        for (w, h, steps) in [
            (9, 7, &[1, 2, 4][..]),
            (1031, 1019, &[1, 2][..]),
            (4001, 263, &[1][..]),
        ] {
            // Padding: every 11th pixel, and all of the first row (so some blocks are all padding).
            let padding = PaddingMask::from_fn(w * h, |i| i % 11 == 0 || i < w);
            let study = film(w, h, |i| (i * 37 % 101) as f32, (10.0, 90.0), Some(padding));
            let window = study.default_window;
            for &step in steps {
                let level = FilmLevel::new(&study, step);
                let source = if step == 1 {
                    FilmSource::Full(&study)
                } else {
                    FilmSource::Level(&level)
                };
                for invert in [false, true] {
                    let image = film_image(source, &window, invert, FilmRegion::whole(w, h));
                    let (tw, th) = (w.div_ceil(step), h.div_ceil(step));
                    assert_eq!(image.size, [tw, th]);
                    for ty in 0..th {
                        for tx in 0..tw {
                            let (mut sum, mut n) = (0.0, 0);
                            for y in ty * step..((ty + 1) * step).min(h) {
                                for x in tx * step..((tx + 1) * step).min(w) {
                                    if !study.is_padding(y * w + x) {
                                        sum += f64::from(study.pixels[y * w + x]);
                                        n += 1;
                                    }
                                }
                            }
                            let g = if n == 0 {
                                0.0
                            } else {
                                let g = window.apply((sum / f64::from(n)) as f32);
                                if invert {
                                    1.0 - g
                                } else {
                                    g
                                }
                            };
                            let want = (g * 255.0).round().clamp(0.0, 255.0) as u8;
                            assert_eq!(
                                image.pixels[ty * tw + tx],
                                Color32::from_gray(want),
                                "{w}x{h}, step {step}, invert {invert}, texel ({tx}, {ty})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The means of a film without padding (summed row by row in f32) are those of the pixel by
    /// pixel loop that serves padded films (f64 sums), to f32 rounding; a NaN pixel is left out of
    /// its block on both paths, and a block of NaN alone is shown as padding.
    #[test]
    fn block_means_agree_with_and_without_a_padding_mask() {
        let (w, h) = (203, 151);
        let value = |i: usize| match i {
            1234 | 5000 | 5001 | 5203 | 5204 => f32::NAN,
            _ => 1000.0 + (i * 7919 % 4093) as f32,
        };
        let plain = film(w, h, value, (0.0, 5000.0), None);
        let masked = film(
            w,
            h,
            value,
            (0.0, 5000.0),
            Some(PaddingMask::from_fn(w * h, |_| false)),
        );
        for step in [2, 4, 8] {
            let (a, b) = (FilmLevel::new(&plain, step), FilmLevel::new(&masked, step));
            assert_eq!((a.width, a.height), (b.width, b.height));
            for (i, (x, y)) in a.means.iter().zip(&b.means).enumerate() {
                if y.is_nan() {
                    assert!(x.is_nan(), "step {step}, block {i}: {x}");
                } else {
                    assert!(
                        (x - y).abs() <= y.abs() * 1e-6,
                        "step {step}, block {i}: {x} vs {y}"
                    );
                }
            }
        }
        // Pixels 5000, 5001, 5203 and 5204 are (128, 24), (129, 24), (128, 25), (129, 25): the
        // whole step-2 block (64, 12), which is left black like padding; at step 4 the block
        // around them has other pixels, and their mean.
        let level = FilmLevel::new(&plain, 2);
        assert!(level.means[12 * level.width + 64].is_nan());
        let level = FilmLevel::new(&plain, 4);
        assert!(!level.means[6 * level.width + 32].is_nan());
    }

    /// A one-pixel bright line in a dark film stays visible in the texture at every step (at
    /// its share of the block), wherever it falls in a block; one sample per block lost it at
    /// every odd column at step 2.
    #[test]
    fn thin_lines_survive_coarser_textures() {
        let (w, h) = (64, 16);
        for line_x in [5, 6, 33] {
            let value = |i| if i % w == line_x { 1000.0 } else { 0.0 };
            let study = film(w, h, value, (0.0, 1000.0), None);
            for step in [2, 4, 8] {
                let level = FilmLevel::new(&study, step);
                let image = film_image(
                    FilmSource::Level(&level),
                    &study.default_window,
                    false,
                    FilmRegion::whole(w, h),
                );
                let tw = w / step;
                let want = Color32::from_gray(unit_to_u8(1.0 / step as f32));
                for ty in 0..h / step {
                    for tx in 0..tw {
                        let lit = tx == line_x / step;
                        let got = image.pixels[ty * tw + tx];
                        assert_eq!(
                            got,
                            if lit { want } else { Color32::BLACK },
                            "x {line_x}, step {step}"
                        );
                    }
                }
            }
        }
    }

    /// Only a texture over DRAG_MAX_TEXELS is built at twice the step while dragging.
    #[test]
    fn a_window_drag_halves_only_large_textures() {
        // The 9500 × 9500 film fitted (step 4: 2375² texels) and zoomed in (step 2).
        assert_eq!(drag_step(FilmRegion::whole(9500, 9500), 4), 8);
        let zoomed = FilmRegion::whole(8704, 8192);
        assert_eq!(
            drag_step(
                FilmRegion {
                    x0: 512,
                    y0: 1536,
                    ..zoomed
                },
                2
            ),
            4
        );
        // A CR film fitted (step 2: 1500 × 1800) is halved; its part on screen at 1:1 is not.
        assert_eq!(drag_step(FilmRegion::whole(3000, 3600), 2), 4);
        assert_eq!(drag_step(FilmRegion::whole(1536, 1024), 1), 1);
        // Just over the limit at step 1 (1449 × 1448 texels), and just under it.
        assert_eq!(drag_step(FilmRegion::whole(1449, 1448), 1), 2);
        assert_eq!(drag_step(FilmRegion::whole(1448, 1448), 1), 1);
    }

    /// At least two texels per screen pixel along the film's longer side, in powers of two, and
    /// never a side above MAX_TEXTURE_SIDE.
    #[test]
    fn texture_steps_leave_two_texels_per_screen_pixel() {
        // A 3600-px CR film fitted into a 700-px-high canvas: 2 (1800 texels for 700 px).
        assert_eq!(texture_step(3600, 700.0), 2);
        assert_eq!(texture_step(3600, 900.0), 2);
        assert_eq!(texture_step(3600, 901.0), 1);
        // At 1:1 and beyond, every pixel.
        assert_eq!(texture_step(3600, 3600.0), 1);
        assert_eq!(texture_step(3600, 14_400.0), 1);
        // Far out: 3600 / 200 = 18 → 16.
        assert_eq!(texture_step(3600, 100.0), 16);
        // The bundled sample at its usual size.
        assert_eq!(texture_step(808, 1020.0), 1);
        assert_eq!(texture_step(16_384, 100_000.0), 1);
        assert_eq!(texture_step(100, 0.0), 32);
    }

    /// Blended below 4 screen pixels per film pixel, hard pixel edges from there.
    #[test]
    fn film_pixels_get_hard_edges_when_magnified() {
        for (zoom, want) in [
            (0.2, egui::TextureOptions::LINEAR),
            (1.0, egui::TextureOptions::LINEAR),
            (3.99, egui::TextureOptions::LINEAR),
            (4.0, egui::TextureOptions::NEAREST),
            (64.0, egui::TextureOptions::NEAREST),
        ] {
            assert_eq!(film_filter(zoom), want, "{zoom}");
        }
    }

    /// The texture covers what is on screen in whole blocks, clipped to the film; fitted, the
    /// whole film; never a side over MAX_TEXTURE_SIDE; never empty, even panned off the film.
    #[test]
    fn texture_regions_cover_the_visible_film_in_blocks() {
        let rect = |x0: f32, y0: f32, x1: f32, y1: f32| {
            egui::Rect::from_min_max(Pos2::new(x0, y0), Pos2::new(x1, y1))
        };
        let region = |x0, y0, x1, y1| FilmRegion { x0, y0, x1, y1 };
        let b = REGION_BLOCK_TEXELS;
        // Fitted (the film and some background visible): all of it, at the step asked for.
        let whole = texture_region(
            (3000, 3600),
            rect(-500.0, -10.0, 3500.0, 3610.0),
            2,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!(whole, (FilmRegion::whole(3000, 3600), 2));
        // 1:1 in a 1400 × 900 canvas, somewhere inside: the blocks of 256 pixels it touches.
        let (r, step) = texture_region(
            (3000, 3600),
            rect(1000.5, 2000.5, 2400.5, 2900.5),
            1,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!((r, step), (region(3 * b, 7 * b, 10 * b, 12 * b), 1));
        assert!(r.x0 as f32 <= 1000.5 && r.x1 as f32 >= 2400.5);
        assert!(r.y0 as f32 <= 2000.5 && r.y1 as f32 >= 2900.5);
        // At step 2 the blocks are 512 film pixels.
        let (r, _) = texture_region(
            (3000, 3600),
            rect(1000.0, 2000.0, 2400.0, 2900.0),
            2,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!(r, region(512, 1536, 2560, 3072));
        // At the film's right and bottom edges, clipped to it.
        let (r, _) = texture_region(
            (3000, 3600),
            rect(2500.0, 3300.0, 3900.0, 4200.0),
            1,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!(r, region(2304, 3072, 3000, 3600));
        // A 16384-px film at 1:1: every pixel on screen at full resolution.
        let (r, step) = texture_region(
            (16_384, 16_384),
            rect(8000.0, 8000.0, 9400.0, 8900.0),
            1,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!((r, step), (region(31 * b, 31 * b, 37 * b, 35 * b), 1));
        // The same film fitted: the step rises until a side fits the texture limit.
        let (r, step) = texture_region(
            (16_384, 16_384),
            rect(0.0, 0.0, 16_384.0, 16_384.0),
            1,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!((r, step), (FilmRegion::whole(16_384, 16_384), 4));
        // Panned right off the film: one block at the nearest corner, not an empty texture.
        let (r, _) = texture_region(
            (3000, 3600),
            rect(5000.0, -900.0, 6400.0, 0.0),
            1,
            MAX_TEXTURE_SIDE,
        );
        assert_eq!(r, region(2816, 0, 3000, 256));
    }

    /// A region's texels are the whole film's texels at the same step (same grid, same values),
    /// including a region that ends at the film's ragged edge.
    #[test]
    fn region_textures_are_cut_from_the_whole_texture() {
        let (w, h) = (1100, 700);
        let study = film(w, h, |i| (i * 13 % 97) as f32, (5.0, 80.0), None);
        let window = study.default_window;
        for step in [1, 2, 4] {
            let level = FilmLevel::new(&study, step);
            let source = if step == 1 {
                FilmSource::Full(&study)
            } else {
                FilmSource::Level(&level)
            };
            let whole = film_image(source, &window, false, FilmRegion::whole(w, h));
            let tw = w.div_ceil(step);
            let block = step * REGION_BLOCK_TEXELS;
            let region = FilmRegion {
                x0: block,
                y0: block.min(h - 1) / block * block,
                x1: w,
                y1: h,
            };
            let part = film_image(source, &window, false, region);
            let (pw, ph) = (
                (w - region.x0).div_ceil(step),
                (h - region.y0).div_ceil(step),
            );
            assert_eq!(part.size, [pw, ph], "step {step}");
            for ty in 0..ph {
                for tx in 0..pw {
                    let (gx, gy) = (region.x0 / step + tx, region.y0 / step + ty);
                    assert_eq!(
                        part.pixels[ty * pw + tx],
                        whole.pixels[gy * tw + gx],
                        "step {step}, texel ({tx}, {ty})"
                    );
                }
            }
        }
    }

    /// Byte for byte what `(g * 255).round().clamp(0, 255) as u8` gives, on a dense sweep of
    /// [0, 1], the values just either side of each half-step, and out-of-range and NaN inputs.
    #[test]
    fn unit_to_u8_is_rounding_to_bytes() {
        let reference = |g: f32| (g * 255.0).round().clamp(0.0, 255.0) as u8;
        let mut inputs: Vec<f32> = (0..=2_000_000).map(|i| i as f32 / 2_000_000.0).collect();
        for k in 0..=255 {
            let half = (k as f32 + 0.5) / 255.0;
            let mut g = half;
            for _ in 0..4 {
                inputs.push(g);
                g = f32::from_bits(g.to_bits() + 1);
            }
            let mut g = half;
            for _ in 0..4 {
                g = f32::from_bits(g.to_bits() - 1);
                inputs.push(g);
            }
        }
        inputs.extend([-1.0, -0.0, 1.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        for g in inputs {
            assert_eq!(unit_to_u8(g), reference(g), "{g:e}");
        }
    }

    #[test]
    fn threshold_mode_hides_low_values() {
        let scale = MapScale::Sequential { max: 1.0 };
        let (_, a) = map_color(
            0.2,
            scale,
            Colormap::Inferno,
            0.5,
            OverlayMode::Threshold,
            0.5,
        );
        assert_eq!(a, 0.0);
        let (_, a) = map_color(
            0.7,
            scale,
            Colormap::Inferno,
            0.5,
            OverlayMode::Threshold,
            0.5,
        );
        assert!((a - 0.5 * 0.7f32.sqrt()).abs() < 1e-6);
        let (_, a) = map_color(
            0.7,
            scale,
            Colormap::Inferno,
            0.5,
            OverlayMode::Contour,
            0.5,
        );
        assert_eq!(a, 0.0);
    }

    #[test]
    fn signed_maps_fade_at_zero_and_are_red_for_positive() {
        let scale = MapScale::Signed { limit: 2.0 };
        let (_, a) = map_color(0.0, scale, Colormap::Inferno, 0.8, OverlayMode::Blend, 0.5);
        assert_eq!(a, 0.0);
        let (c, a) = map_color(2.0, scale, Colormap::Inferno, 0.8, OverlayMode::Blend, 0.5);
        assert!((a - 0.8).abs() < 1e-6);
        assert!(c[0] > c[2], "positive evidence is red: {c:?}");
    }

    #[test]
    fn contour_of_a_bump_is_closed_around_it() {
        // 5×5 map with a peak in the middle: the 0.5 iso-line surrounds the centre.
        let mut values = vec![0.0; 25];
        values[12] = 1.0;
        let map = Grid::new(5, 5, values);
        let segs = contour_segments(&map, MapScale::Sequential { max: 1.0 }, 0.5);
        assert_eq!(segs.len(), 4);
        for s in &segs {
            for p in s {
                let d = (*p - Pos2::new(2.5, 2.5)).length();
                assert!(d > 0.2 && d < 1.0, "{p:?}");
            }
        }
    }
}
