//! Heatmaps blended over the film, at the original image size: the pictures the CLI writes and the
//! GUI exports.
//!
//! Scaling is part of honesty: Grad-CAM is shown relative to its own maximum; the uncertainty (std)
//! map relative to the maximum of the *mean* map, so a small spread looks small; Integrated
//! Gradients symmetrically around zero (99th percentile of |value|) on a diverging map, so red is
//! evidence for the target class and blue against it.

use image::{Rgb, RgbImage};

use crate::explain::Grid;
use crate::io::{Study, Window};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    /// Perceptually uniform, sequential.
    Inferno,
    Viridis,
    Turbo,
    /// Diverging, for signed maps.
    RedBlue,
}

impl Colormap {
    fn gradient(self) -> colorous::Gradient {
        match self {
            Colormap::Inferno => colorous::INFERNO,
            Colormap::Viridis => colorous::VIRIDIS,
            Colormap::Turbo => colorous::TURBO,
            Colormap::RedBlue => colorous::RED_BLUE,
        }
    }

    /// Colour at `t` ∈ [0, 1].
    pub fn color(self, t: f32) -> [u8; 3] {
        let t = t.clamp(0.0, 1.0) as f64;
        // colorous' RED_BLUE runs red → blue; show positive (t > 0.5) as red.
        let t = if self == Colormap::RedBlue {
            1.0 - t
        } else {
            t
        };
        let c = self.gradient().eval_continuous(t);
        [c.r, c.g, c.b]
    }
}

/// How map values become [0, 1] (sequential) or [−1, 1] (signed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MapScale {
    /// `value / max`, clamped to [0, 1].
    Sequential { max: f32 },
    /// `value / limit`, clamped to [−1, 1].
    Signed { limit: f32 },
}

impl MapScale {
    pub fn own_max(map: &Grid) -> Self {
        MapScale::Sequential {
            max: map.max().max(f32::MIN_POSITIVE),
        }
    }

    /// Symmetric limit at the 99th percentile of |value|, so a few extreme pixels don't wash out
    /// the rest.
    pub fn signed_percentile(map: &Grid) -> Self {
        let mut abs: Vec<f32> = map.values.iter().map(|v| v.abs()).collect();
        abs.sort_by(|a, b| a.total_cmp(b));
        let idx = ((abs.len() as f32 - 1.0) * 0.99).round() as usize;
        let limit = abs.get(idx).copied().unwrap_or(0.0).max(f32::MIN_POSITIVE);
        MapScale::Signed { limit }
    }
}

impl MapScale {
    /// The value scaled to [0, 1] (sequential) or [−1, 1] (signed).
    pub fn normalise(self, v: f32) -> f32 {
        match self {
            MapScale::Sequential { max } => (v / max).clamp(0.0, 1.0),
            MapScale::Signed { limit } => (v / limit).clamp(-1.0, 1.0),
        }
    }
}

/// Colour and opacity of one map value — the one blending rule of the CLI's PNGs and the viewer:
/// sequential maps fade with √value (weak evidence fades into the film instead of tinting all of
/// it), signed maps with |value| on the diverging `colormap` centred at zero.
pub fn map_color(v: f32, scale: MapScale, colormap: Colormap, alpha: f32) -> ([u8; 3], f32) {
    let n = scale.normalise(v);
    match scale {
        MapScale::Sequential { .. } => (colormap.color(n), alpha * n.sqrt()),
        MapScale::Signed { .. } => (colormap.color(0.5 + 0.5 * n), alpha * n.abs()),
    }
}

/// The film in its window, with `map` (any grid covering the whole film) blended on top.
/// Sequential maps are blended with `alpha·√t` (t the scaled value), signed maps with `alpha·|v|`,
/// so that where there is no evidence the film stays visible.
pub fn render_overlay(
    study: &Study,
    window: &Window,
    map: &Grid,
    scale: MapScale,
    colormap: Colormap,
    alpha: f32,
) -> RgbImage {
    let (w, h) = (study.width, study.height);
    let map = map.resized(w, h);
    let unit = study.to_unit(window);
    let alpha = alpha.clamp(0.0, 1.0);
    let mut out = RgbImage::new(w as u32, h as u32);
    for (i, pixel) in out.pixels_mut().enumerate() {
        let gray = unit[i] * 255.0;
        let (color, a) = map_color(map.values[i], scale, colormap, alpha);
        let blend = |c: u8| ((1.0 - a) * gray + a * c as f32).round().clamp(0.0, 255.0) as u8;
        *pixel = Rgb([blend(color[0]), blend(color[1]), blend(color[2])]);
    }
    out
}

/// One of a study's standard overlays: the picture `analyze` writes as `file_name` and the HTML
/// report shows, and what it is (the PNG's description, the report's caption).
pub struct StudyOverlay {
    pub file_name: &'static str,
    pub what: String,
    pub image: RgbImage,
}

/// Grad-CAM, the MC-dropout spread and (when computed) Integrated Gradients over the film in its
/// default window, each scaled as the module doc says and dimmed by `gate` as the viewer dims
/// them (an uncertain or out-of-scope study), the reason then part of `what`. `analyze`'s PNGs
/// and the HTML report draw the same pictures from here.
pub fn study_overlays(
    study: &Study,
    analysis: &crate::analysis::Analysis,
    gate: Option<&crate::trust::Gate>,
) -> Vec<StudyOverlay> {
    let window = study.default_window;
    let opacity = |a: f32| crate::trust::gated_opacity(a, gate);
    let what = |what: String| match gate {
        Some(g) => format!("{what}, {}", g.short_line()),
        None => what,
    };
    let std_scale = MapScale::Sequential {
        max: analysis.uncertainty.cam_mean.max().max(f32::MIN_POSITIVE),
    };
    let mut out = vec![
        StudyOverlay {
            file_name: crate::io::OVERLAY_GRADCAM,
            what: what("film with Grad-CAM overlay".into()),
            image: render_overlay(
                study,
                &window,
                &analysis.gradcam.map,
                MapScale::own_max(&analysis.gradcam.map),
                Colormap::Inferno,
                opacity(0.45),
            ),
        },
        StudyOverlay {
            file_name: crate::io::OVERLAY_UNCERTAINTY,
            what: what("film with MC-dropout uncertainty overlay".into()),
            image: render_overlay(
                study,
                &window,
                &analysis.uncertainty.cam_std,
                std_scale,
                Colormap::Viridis,
                opacity(0.45),
            ),
        },
    ];
    if let Some(ig) = &analysis.ig {
        out.push(StudyOverlay {
            file_name: crate::io::OVERLAY_IG,
            what: what(format!(
                "film with Integrated Gradients overlay from the {}",
                ig.baseline_described()
            )),
            image: render_overlay(
                study,
                &window,
                &ig.map,
                MapScale::signed_percentile(&ig.map),
                Colormap::RedBlue,
                opacity(0.8),
            ),
        });
    }
    out
}
