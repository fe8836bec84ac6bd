//! How well a map points at what a person boxed: pointing game, energy inside the boxes, and IoU
//! of the thresholded map.
//!
//! # Conventions
//!
//! * Boxes are in **original image pixels**, `(x, y)` the top-left corner and `width × height`
//!   the size, as in the RSNA Pneumonia Detection Challenge labels (`patientId,x,y,width,height,
//!   Target`). A study may have several boxes; they are used as their union.
//! * A map is a [`Grid`] on the model's input grid (e.g. 224 × 224). The model sees the whole
//!   film squashed to that grid (see `ui::transform`), so cell `(i, j)` covers image pixels
//!   `[i·sx, (i+1)·sx) × [j·sy, (j+1)·sy)` with `sx = W / w`, `sy = H / h`, and stands for its
//!   centre `((i + ½)·sx, (j + ½)·sy)`. A cell is **inside the boxes** when its centre is; with a
//!   224 grid on a 1024 px film a cell is 4.6 px, which bounds the discretisation error of the
//!   box edges.
//! * Only the **positive** part of a map counts (`v⁺ = max(v, 0)`): for Grad-CAM and the MC-dropout
//!   standard deviation that is the whole map; for Integrated Gradients (signed) it is the
//!   evidence *for* the target class, which is what a box of opacity should contain.
//!
//! # Measures
//!
//! * **Pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
//!   2016; used for chest films by Saporta et al., "Benchmarking saliency methods for chest X-ray
//!   interpretation", Nature Machine Intelligence 2022): a hit when the centre of the map's
//!   maximal cell lies within `tolerance` image pixels of a box (Zhang et al. use 15 px). Ties go to
//!   the first maximal cell in row-major order; a map with no positive value (all ≤ 0) has no
//!   point and counts as a miss.
//! * **Energy in boxes** (the "energy-based pointing game" of Wang et al., Score-CAM, CVPR-W
//!   2020): `Σ_{cells in boxes} v⁺ / Σ_{all cells} v⁺`. Undefined (`None`) when the map has no
//!   positive energy.
//! * **IoU**: the map thresholded at `level × max v⁺` (cells with `v⁺ ≥ level·max`, `level` = 0.5
//!   by default; Saporta et al. threshold each map to a binary segmentation before IoU) against
//!   the cells inside the boxes: `|A ∩ B| / |A ∪ B|` counted in cells. `None` when the map has
//!   no positive value or no cell centre falls inside a box.
//!
//! Checked against hand-computed values on small synthetic maps (tests below and
//! `tests/notes_localisation.rs`).

use serde::{Deserialize, Serialize};

use super::Grid;

/// One rectangle in original image pixels: top-left `(x, y)`, size `width × height`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageBox {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl ImageBox {
    pub fn new(x: f32, y: f32, width: f32, height: f32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// From two opposite corners in any order (a drag in any direction).
    pub fn from_corners(a: (f32, f32), b: (f32, f32)) -> Self {
        let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
        let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
        Self::new(x0, y0, x1 - x0, y1 - y0)
    }

    pub fn right(&self) -> f32 {
        self.x + self.width
    }

    pub fn bottom(&self) -> f32 {
        self.y + self.height
    }

    pub fn centre(&self) -> (f32, f32) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }

    /// Half-open, like pixel ranges: `[x, x + width) × [y, y + height)`.
    pub fn contains(&self, px: f32, py: f32) -> bool {
        px >= self.x && px < self.right() && py >= self.y && py < self.bottom()
    }

    /// Euclidean distance from a point to the box (0 inside).
    pub fn distance(&self, px: f32, py: f32) -> f32 {
        let dx = (self.x - px).max(0.0).max(px - self.right());
        let dy = (self.y - py).max(0.0).max(py - self.bottom());
        (dx * dx + dy * dy).sqrt()
    }

    /// Finite, non-negative corner, positive size: what a drawn or imported box must be.
    pub fn is_valid(&self) -> bool {
        [self.x, self.y, self.width, self.height]
            .iter()
            .all(|v| v.is_finite())
            && self.width > 0.0
            && self.height > 0.0
    }

    /// The part inside a `width × height` image; `None` when nothing is left.
    pub fn clamped(&self, image_w: f32, image_h: f32) -> Option<Self> {
        let x0 = self.x.clamp(0.0, image_w);
        let y0 = self.y.clamp(0.0, image_h);
        let x1 = self.right().clamp(0.0, image_w);
        let y1 = self.bottom().clamp(0.0, image_h);
        let b = Self::new(x0, y0, x1 - x0, y1 - y0);
        b.is_valid().then_some(b)
    }
}

/// The stated parameters of the measures. `Default` is what the viewer and `eval` report.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LocalisationOptions {
    /// Pointing-game tolerance in image pixels (Zhang et al. 2016: 15 px).
    pub tolerance_px: f32,
    /// IoU threshold as a fraction of the map's positive maximum.
    pub iou_level: f32,
}

impl Default for LocalisationOptions {
    fn default() -> Self {
        Self {
            tolerance_px: 15.0,
            iou_level: 0.5,
        }
    }
}

impl LocalisationOptions {
    /// What the three measures are, for a reader of the viewer's table or the report page.
    pub fn legend(&self) -> String {
        format!(
            "Pointing: the map's maximum within {:.0} px of a box (Zhang et al. 2016). Energy: \
             share of the positive map inside the boxes. IoU: map ≥ {:.0} % of its maximum vs \
             the boxes. Positive values only (IG: evidence for the class shown).",
            self.tolerance_px,
            100.0 * self.iou_level
        )
    }

    /// [`Self::legend`], and where the boxes' chance is known ([`uniform_energy_in_boxes`]),
    /// what a flat map would score for energy, in the table's unit (the viewer's results panel,
    /// report.html).
    pub fn legend_with_chance(&self, energy_in_boxes_uniform: Option<f64>) -> String {
        let mut legend = self.legend();
        if let Some(chance) = energy_in_boxes_uniform {
            legend.push_str(&format!(
                " A flat map would put {:.0} % of its energy in these boxes (the share of the \
                 film they cover): a map's energy beats chance only above it.",
                100.0 * chance
            ));
        }
        legend
    }

    pub fn with_tolerance_px(mut self, px: f32) -> Self {
        self.tolerance_px = px;
        self
    }

    pub fn with_iou_level(mut self, level: f32) -> Self {
        self.iou_level = level;
        self
    }
}

/// The three measures for one map and one study.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Localisation {
    pub pointing_hit: bool,
    pub energy_in_boxes: Option<f64>,
    pub iou: Option<f64>,
}

impl Localisation {
    /// The three measures as the viewer's table and the report page write them: "hit"/"miss",
    /// energy in percent, IoU to two decimals ("—" where not defined).
    pub fn cells(&self) -> [String; 3] {
        let dash = || "—".to_string();
        [
            if self.pointing_hit { "hit" } else { "miss" }.to_string(),
            self.energy_in_boxes
                .map_or_else(dash, |v| format!("{:.0} %", 100.0 * v)),
            self.iou.map_or_else(dash, |v| format!("{v:.2}")),
        ]
    }
}

/// Centre of cell `(i, j)` in image pixels.
fn cell_centre(map: &Grid, image_size: (usize, usize), i: usize, j: usize) -> (f32, f32) {
    let sx = image_size.0 as f32 / map.width.max(1) as f32;
    let sy = image_size.1 as f32 / map.height.max(1) as f32;
    ((i as f32 + 0.5) * sx, (j as f32 + 0.5) * sy)
}

/// Which cells have their centre inside a box, row-major.
fn cells_in_boxes(map: &Grid, image_size: (usize, usize), boxes: &[ImageBox]) -> Vec<bool> {
    let mut inside = Vec::with_capacity(map.values.len());
    for j in 0..map.height {
        for i in 0..map.width {
            let (cx, cy) = cell_centre(map, image_size, i, j);
            inside.push(boxes.iter().any(|b| b.contains(cx, cy)));
        }
    }
    inside
}

/// Pointing game: the first maximal cell's centre within `tolerance_px` of a box.
pub fn pointing_game(
    map: &Grid,
    image_size: (usize, usize),
    boxes: &[ImageBox],
    tolerance_px: f32,
) -> bool {
    let mut best: Option<(usize, f32)> = None;
    for (k, &v) in map.values.iter().enumerate() {
        if v > 0.0 && v.is_finite() && best.is_none_or(|(_, b)| v > b) {
            best = Some((k, v));
        }
    }
    let Some((k, _)) = best else {
        return false;
    };
    let (cx, cy) = cell_centre(map, image_size, k % map.width, k / map.width);
    boxes.iter().any(|b| b.distance(cx, cy) <= tolerance_px)
}

/// Share of the map's positive energy whose cells lie inside the boxes.
pub fn energy_in_boxes(map: &Grid, image_size: (usize, usize), boxes: &[ImageBox]) -> Option<f64> {
    let inside = cells_in_boxes(map, image_size, boxes);
    let (mut total, mut within) = (0f64, 0f64);
    for (&v, &inb) in map.values.iter().zip(&inside) {
        let e = if v.is_finite() {
            f64::from(v.max(0.0))
        } else {
            0.0
        };
        total += e;
        if inb {
            within += e;
        }
    }
    (total > 0.0).then(|| within / total)
}

/// Chance for [`energy_in_boxes`]: what a flat map on a `grid` (width, height) puts inside the
/// boxes, i.e. the share of its cells they cover. A box over a quarter of the film holds a
/// quarter of any map's energy by itself, so a map's energy says something only beside this.
pub fn uniform_energy_in_boxes(
    grid: (usize, usize),
    image_size: (usize, usize),
    boxes: &[ImageBox],
) -> Option<f64> {
    let flat = Grid::new(grid.0, grid.1, vec![1.0; grid.0 * grid.1]);
    energy_in_boxes(&flat, image_size, boxes)
}

/// IoU of `{v⁺ ≥ level · max v⁺}` with the cells inside the boxes.
pub fn iou(map: &Grid, image_size: (usize, usize), boxes: &[ImageBox], level: f32) -> Option<f64> {
    let max = map
        .values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0f32, f32::max);
    if max <= 0.0 {
        return None;
    }
    let inside = cells_in_boxes(map, image_size, boxes);
    if !inside.iter().any(|&b| b) {
        return None;
    }
    let cut = level * max;
    let (mut inter, mut union) = (0usize, 0usize);
    for (&v, &inb) in map.values.iter().zip(&inside) {
        let on = v.is_finite() && v > 0.0 && v >= cut;
        inter += usize::from(on && inb);
        union += usize::from(on || inb);
    }
    Some(inter as f64 / union as f64)
}

/// All three measures of one map against `boxes` on an image of `image_size` (width, height).
pub fn localise(
    map: &Grid,
    image_size: (usize, usize),
    boxes: &[ImageBox],
    options: &LocalisationOptions,
) -> Localisation {
    Localisation {
        pointing_hit: pointing_game(map, image_size, boxes, options.tolerance_px),
        energy_in_boxes: energy_in_boxes(map, image_size, boxes),
        iou: iou(map, image_size, boxes, options.iou_level),
    }
}

/// Means over studies: pointing-game hit rate, mean energy share, mean IoU (each over the
/// studies where it is defined), and the number of studies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LocalisationSummary {
    pub pointing_game: Option<f64>,
    /// 95 % Wilson interval of the pointing-game hit rate: boxed films are few (six in the
    /// shipped RSNA sample), and 2 hits of 3 says little.
    pub pointing_game_ci95: Option<[f64; 2]>,
    pub energy_in_boxes: Option<f64>,
    pub iou: Option<f64>,
    pub n: usize,
}

impl LocalisationSummary {
    pub fn of(results: &[Localisation]) -> Self {
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let n = results.len();
        let hits = results.iter().filter(|r| r.pointing_hit).count();
        Self {
            pointing_game: (n > 0).then(|| hits as f64 / n as f64),
            pointing_game_ci95: crate::evaluation::wilson_interval(hits, n),
            energy_in_boxes: mean(results.iter().filter_map(|r| r.energy_in_boxes).collect()),
            iou: mean(results.iter().filter_map(|r| r.iou).collect()),
            n,
        }
    }
}

/// Which of the six lung zones ([`super::zones::ZONE_NAMES`] order) a box overlaps, by area in
/// image pixels: any overlap counts, so a box across the midline implicates both sides.
pub fn zones_of_box(b: &ImageBox, image_size: (usize, usize)) -> Vec<&'static str> {
    let (w, h) = (image_size.0 as f32, image_size.1 as f32);
    let rows = [0.0, h / 3.0, 2.0 * h / 3.0, h];
    let cols = [0.0, w / 2.0, w];
    let mut out = Vec::new();
    for side in 0..2 {
        for band in 0..3 {
            let ox = b.right().min(cols[side + 1]) - b.x.max(cols[side]);
            let oy = b.bottom().min(rows[band + 1]) - b.y.max(rows[band]);
            if ox > 0.0 && oy > 0.0 {
                out.push(super::zones::ZONE_NAMES[side * 3 + band]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 × 4 map on a 40 × 40 image: cells are 10 px, centres at 5, 15, 25, 35.
    fn map(values: [f32; 16]) -> Grid {
        Grid::new(4, 4, values.to_vec())
    }

    #[test]
    fn pointing_game_uses_the_maximal_cell_centre_and_the_tolerance() {
        let mut v = [0.0; 16];
        v[4 + 2] = 1.0; // cell (2, 1): centre (25, 15)
        let m = map(v);
        let inside = ImageBox::new(20.0, 10.0, 10.0, 10.0);
        assert!(pointing_game(&m, (40, 40), &[inside], 0.0));
        // A box whose nearest edge is 5 px from the centre: a miss at 4 px, a hit at 5 px.
        let near = ImageBox::new(30.0, 0.0, 10.0, 10.0); // distance to (25, 15): sqrt(25+25)=7.07
        assert!(!pointing_game(&m, (40, 40), &[near], 7.0));
        assert!(pointing_game(&m, (40, 40), &[near], 7.1));
        // All-zero map: no point, a miss.
        assert!(!pointing_game(&map([0.0; 16]), (40, 40), &[inside], 100.0));
    }

    #[test]
    fn energy_and_iou_match_hand_counts() {
        // Left half 1, right half 3, one negative cell (ignored).
        let mut v = [0.0; 16];
        for j in 0..4 {
            for i in 0..4 {
                v[j * 4 + i] = if i < 2 { 1.0 } else { 3.0 };
            }
        }
        v[0] = -5.0;
        let m = map(v);
        // Box over the right half: 8 cells of 3 = 24 of total 7·1 + 8·3 = 31.
        let right = ImageBox::new(20.0, 0.0, 20.0, 40.0);
        let e = energy_in_boxes(&m, (40, 40), &[right]).unwrap();
        assert!((e - 24.0 / 31.0).abs() < 1e-12, "{e}");
        // Threshold 0.5 · 3 = 1.5: the right half exactly; IoU 1.
        assert_eq!(iou(&m, (40, 40), &[right], 0.5), Some(1.0));
        // Threshold 0.3 · 3 = 0.9: 15 positive cells on, box 8: IoU 8/15.
        let i = iou(&m, (40, 40), &[right], 0.3).unwrap();
        assert!((i - 8.0 / 15.0).abs() < 1e-12);
        // Overlapping boxes count once (union).
        let e2 = energy_in_boxes(&m, (40, 40), &[right, right]).unwrap();
        assert_eq!(e, e2);
    }

    #[test]
    fn boxes_map_to_the_zones_they_overlap() {
        // 100 × 90 image: halves at x = 50, thirds at y = 30, 60.
        let b = ImageBox::new(10.0, 40.0, 20.0, 10.0);
        assert_eq!(zones_of_box(&b, (100, 90)), ["right_middle"]);
        let across = ImageBox::new(45.0, 55.0, 10.0, 10.0);
        assert_eq!(
            zones_of_box(&across, (100, 90)),
            ["right_middle", "right_lower", "left_middle", "left_lower"]
        );
    }

    #[test]
    fn summary_averages_where_defined() {
        let r = [
            Localisation {
                pointing_hit: true,
                energy_in_boxes: Some(0.5),
                iou: None,
            },
            Localisation {
                pointing_hit: false,
                energy_in_boxes: Some(0.25),
                iou: Some(0.2),
            },
        ];
        let s = LocalisationSummary::of(&r);
        assert_eq!(s.n, 2);
        assert_eq!(s.pointing_game, Some(0.5));
        // Wilson at z = 1.96 for 1 of 2, by hand: centre ½, half-width
        // z·√(p(1 − p)/n + z²/4n²) / (1 + z²/n) = 0.4055: [0.0945, 0.9055].
        let [lo, hi] = s.pointing_game_ci95.unwrap();
        assert!(
            (lo - 0.0945).abs() < 1e-4 && (hi - 0.9055).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(LocalisationSummary::of(&[]).pointing_game_ci95, None);
        assert_eq!(s.energy_in_boxes, Some(0.375));
        assert_eq!(s.iou, Some(0.2));
    }
}
