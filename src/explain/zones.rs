//! Six lung zones: upper / middle / lower thirds × patient-right / patient-left halves.
//!
//! On a standard frontal film (PA or AP, displayed in the usual orientation) the patient's right
//! is on the image's **left**: columns `[0, W/2)` are `right_*`. Zones are fixed fractions of the
//! model's input grid; because the model sees the whole film squashed to that grid, the same
//! fractions of the original image give each zone's box in image pixels. Scores are the mean and
//! the maximum of a map inside each zone.

use serde::Serialize;

use super::Grid;

pub const ZONE_NAMES: [&str; 6] = [
    "right_upper",
    "right_middle",
    "right_lower",
    "left_upper",
    "left_middle",
    "left_lower",
];

/// Said in every report so nobody has to guess the laterality convention.
pub const ZONE_CONVENTION: &str =
    "zones are thirds (upper/middle/lower) × halves of the whole film; \
patient-right is the image's left half (standard frontal PA/AP display)";

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ZoneScore {
    pub name: &'static str,
    pub mean: f32,
    pub max: f32,
    /// `[x0, y0, x1, y1)` on the model input grid.
    pub box_in_model: [usize; 4],
    /// `[x0, y0, x1, y1)` in original image pixels.
    pub box_in_image: [usize; 4],
}

/// Zone boxes on a `width × height` grid: `(name, [x0, y0, x1, y1))`.
pub fn zone_boxes(width: usize, height: usize) -> Vec<(&'static str, [usize; 4])> {
    let rows = [
        0,
        (height as f32 / 3.0).round() as usize,
        (2.0 * height as f32 / 3.0).round() as usize,
        height,
    ];
    let mid = width / 2;
    // image-left half = patient right
    let cols = [(0, mid), (mid, width)];
    let mut out = Vec::with_capacity(6);
    for (side, (x0, x1)) in cols.iter().enumerate() {
        for band in 0..3 {
            out.push((
                ZONE_NAMES[side * 3 + band],
                [*x0, rows[band], *x1, rows[band + 1]],
            ));
        }
    }
    out
}

/// Zone scores of `map` (on the model input grid) for an original image of `image_w × image_h`.
pub fn zone_scores(map: &Grid, image_w: usize, image_h: usize) -> Vec<ZoneScore> {
    let sx = image_w as f64 / map.width as f64;
    let sy = image_h as f64 / map.height as f64;
    zone_boxes(map.width, map.height)
        .into_iter()
        .map(|(name, [x0, y0, x1, y1])| {
            let mut sum = 0f64;
            let mut max = f32::NEG_INFINITY;
            let mut count = 0usize;
            for y in y0..y1 {
                for &v in &map.values[y * map.width + x0..y * map.width + x1] {
                    sum += v as f64;
                    max = max.max(v);
                    count += 1;
                }
            }
            let scale = |v: usize, s: f64| (v as f64 * s).round() as usize;
            ZoneScore {
                name,
                mean: if count > 0 {
                    (sum / count as f64) as f32
                } else {
                    0.0
                },
                max: if count > 0 { max } else { 0.0 },
                box_in_model: [x0, y0, x1, y1],
                box_in_image: [scale(x0, sx), scale(y0, sy), scale(x1, sx), scale(y1, sy)],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_left_half_is_patient_right() {
        // A hot spot in the image's upper-left corner is the patient's right upper zone.
        let mut values = vec![0.0; 12 * 9];
        values[0] = 5.0;
        let zones = zone_scores(&Grid::new(12, 9, values), 1200, 900);
        let hot: Vec<_> = zones.iter().filter(|z| z.max > 0.0).collect();
        assert_eq!(hot.len(), 1);
        assert_eq!(hot[0].name, "right_upper");
        assert_eq!(hot[0].box_in_image, [0, 0, 600, 300]);
        assert!((hot[0].mean - 5.0 / 18.0).abs() < 1e-6);
    }

    #[test]
    fn zones_tile_the_grid_exactly_once() {
        let mut seen = vec![0u8; 224 * 224];
        for (_, [x0, y0, x1, y1]) in zone_boxes(224, 224) {
            for y in y0..y1 {
                for x in x0..x1 {
                    seen[y * 224 + x] += 1;
                }
            }
        }
        assert!(seen.iter().all(|c| *c == 1));
    }
}
