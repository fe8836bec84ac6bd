//! Pixels for the screen (and for the PNG export, so that what is saved is what was seen):
//! the film in its display window, the map colours, threshold masks and contour lines.

use egui::{Color32, ColorImage, Pos2};

use crate::explain::Grid;
use crate::io::{Study, Window};
use crate::overlay::{Colormap, MapScale};

use super::settings::{MapKind, OverlayMode};

/// Largest texture side we upload; GPUs (and llvmpipe) refuse more than 8192–16384, and a
/// screen never shows more detail than this anyway. Larger films are box-downsampled.
pub const MAX_TEXTURE_SIDE: usize = 4096;

/// The grey level (0..1) pixel `i` (row-major) is shown at: through `window`, optionally
/// inverted. DICOM pixel padding stays black either way: it is background the device asks to be
/// suppressed "when inverting or adjusting the grayscale contrast" (CP 692, PS3.3 C.7.5.1.1.2).
pub fn shown_grey(study: &Study, window: &Window, invert: bool, i: usize) -> f32 {
    if study.is_padding(i) {
        return 0.0;
    }
    let g = window.apply(study.pixels[i]);
    if invert {
        1.0 - g
    } else {
        g
    }
}

/// Textures at least this large are built on several threads (a thread costs tens of µs).
const PARALLEL_TEXELS: usize = 1 << 20;

/// One texel per `step` × `step` block of film pixels (at least 1) for a film shown
/// `shown_px` physical pixels along its longer side: the largest power of two that still leaves
/// at least two texels per screen pixel, and never a texture side above [`MAX_TEXTURE_SIDE`].
/// A screen cannot show more than that, and each window/level drag frame rebuilds the texture:
/// a 3000 × 3600 CR film fitted into the viewer is about 700 px tall, so it gets a quarter of its
/// texels. Powers of two, so zooming rebuilds the texture only when it crosses one.
pub fn texture_step(film_side: usize, shown_px: f32) -> usize {
    let cap = film_side.div_ceil(MAX_TEXTURE_SIDE).max(1);
    let spare = film_side as f32 / (2.0 * shown_px.max(1.0));
    let mut step = 1;
    while (step * 2) as f32 <= spare {
        step *= 2;
    }
    step.max(cap)
}

/// The film in `window`, optionally inverted, one texel per `step` × `step` block (see
/// [`texture_step`]; raised where the texture would exceed [`MAX_TEXTURE_SIDE`]).
///
/// A window/level drag rebuilds this every frame. Each texel is [`shown_grey`] of its block's
/// first pixel (nearest sample), computed in bands of rows on every core and rounded to bytes by
/// [`unit_to_u8`]: for a 3000 × 3600 CR film at full resolution the single-threaded loop with
/// `f32::round` took 66 ms on two cores of an AMD EPYC, so a drag ran under 15 frames a second.
pub fn film_image(study: &Study, window: &Window, invert: bool, step: usize) -> ColorImage {
    let (w, h) = (study.width, study.height);
    let step = step.max(w.max(h).div_ceil(MAX_TEXTURE_SIDE)).max(1);
    let (tw, th) = (w.div_ceil(step), h.div_ceil(step));
    let mut pixels = vec![Color32::BLACK; tw * th];
    let texel_row = |ty: usize, row: &mut [Color32]| {
        let start = ty * step * w;
        for (out, x) in row.iter_mut().zip((0..w).step_by(step)) {
            *out = Color32::from_gray(unit_to_u8(shown_grey(study, window, invert, start + x)));
        }
    };
    // Bands of rows on scoped threads of our own, not rayon's pool: that pool runs the analysis
    // (IG keeps it busy for seconds), and a frame waiting for it would stall until it let go.
    let bands = if tw * th >= PARALLEL_TEXELS {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    };
    let rows_per_band = th.div_ceil(bands).max(1);
    let last_band = th.div_ceil(rows_per_band).saturating_sub(1);
    std::thread::scope(|scope| {
        for (band, chunk) in pixels.chunks_mut(rows_per_band * tw.max(1)).enumerate() {
            let texel_row = &texel_row;
            let mut work = move || {
                for (k, row) in chunk.chunks_mut(tw.max(1)).enumerate() {
                    texel_row(band * rows_per_band + k, row);
                }
            };
            if band == last_band {
                work(); // the last band on this thread
            } else {
                scope.spawn(work);
            }
        }
    });
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

    /// The presets' percentiles come from the film: DICOM padding (here 40 of 100 pixels at the
    /// range's low end) would otherwise set the "Full range" and "Lung" low ends.
    #[test]
    fn padding_is_left_out_of_presets_and_shown_black() {
        let pixels: Vec<f32> = (0..100)
            .map(|i| if i < 40 { -1000.0 } else { i as f32 })
            .collect();
        let study = |padding: Option<Vec<bool>>| Study {
            source: "padded.dcm".into(),
            width: 10,
            height: 10,
            pixels: pixels.clone(),
            default_window: Window {
                low: 40.0,
                high: 99.0,
            },
            window_source: crate::io::WindowSource::Percentile,
            metadata: Default::default(),
            padding,
        };
        let padded = study(Some((0..100).map(|i| i < 40).collect()));
        assert_eq!(Percentiles::new(&padded).range(), (40.0, 99.0));
        let full = WindowPreset::FullRange.window(&padded, &Percentiles::new(&padded));
        assert_eq!((full.low, full.high), (40.0, 99.0));
        // Without the mask the same values are film.
        assert_eq!(Percentiles::new(&study(None)).range(), (-1000.0, 99.0));
        // All padding: the presets still get the values (nothing else to use).
        let all = study(Some(vec![true; 100]));
        assert_eq!(Percentiles::new(&all).range(), (-1000.0, 99.0));

        // Padding shows black, inverted or not; the film inverts.
        let window = Window {
            low: 40.0,
            high: 99.0,
        };
        for invert in [false, true] {
            let image = film_image(&padded, &window, invert, 1);
            assert!(image.pixels[..40].iter().all(|&p| p == Color32::BLACK));
            let film_end = if invert { 255 } else { 0 };
            assert_eq!(image.pixels[40], Color32::from_gray(film_end), "{invert}");
        }
        // Without the mask the same pixels are film and turn white when inverted.
        let image = film_image(&study(None), &window, true, 1);
        assert_eq!(image.pixels[0], Color32::WHITE);
    }

    /// Every texel of the film's texture is `shown_grey` of its block's first pixel, as the
    /// per-pixel loop gave it, at full resolution and coarser, padding and inversion included, on
    /// films whose rows are not a multiple of the step; the two large ones at step 1 (over
    /// PARALLEL_TEXELS) are built in bands on several threads.
    #[test]
    fn film_texture_samples_shown_grey() {
        for (w, h, steps) in [
            (9, 7, &[1, 2, 4][..]),
            (1031, 1019, &[1, 2][..]),
            (4001, 263, &[1][..]),
        ] {
            let study = Study {
                source: "odd.dcm".into(),
                width: w,
                height: h,
                pixels: (0..w * h).map(|i| (i * 37 % 101) as f32).collect(),
                default_window: Window {
                    low: 10.0,
                    high: 90.0,
                },
                window_source: crate::io::WindowSource::Percentile,
                metadata: Default::default(),
                padding: Some((0..w * h).map(|i| i % 11 == 0).collect()),
            };
            let window = study.default_window;
            for invert in [false, true] {
                for &step in steps {
                    let image = film_image(&study, &window, invert, step);
                    let (tw, th) = (w.div_ceil(step), h.div_ceil(step));
                    assert_eq!(image.size, [tw, th]);
                    for ty in 0..th {
                        for tx in 0..tw {
                            let g = shown_grey(&study, &window, invert, ty * step * w + tx * step);
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
        // A 16384-px film stays within the texture limit even at full zoom.
        assert_eq!(texture_step(16_384, 100_000.0), 4);
        assert_eq!(texture_step(100, 0.0), 32);
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
