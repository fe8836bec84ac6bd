//! Do the three maps point at the same place?
//!
//! The maps live on different grids (Grad-CAM and the MC-mean Grad-CAM on layer4's 7×7, IG on the
//! 224×224 input), with different signs. Each is brought to one `g×g` grid (default 14×14) with
//! [`Grid::resized`]; IG contributes its **positive part** max(IG, 0) (evidence *for* the explained
//! class, the part the other two maps show), taken before pooling. For each pair:
//!
//! ```text
//! ρ = Spearman rank correlation of the g² cell values (ties: average ranks)
//! top zone = the lung zone (thirds × halves, see `zones`) with the highest mean on the grid,
//!            after resizing to the model input so zone borders fall between pixels
//! ```
//!
//! A rank correlation ignores the maps' different scales; the top zone is what a reader takes
//! from a map at a glance. Neither says which map is right, only whether they tell the same story.

use serde::Serialize;

use super::similarity::spearman;
use super::zones::zone_scores;
use super::Grid;

/// A method whose map takes part in the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    GradCam,
    Ig,
    Uncertainty,
}

impl Method {
    pub fn key(self) -> &'static str {
        match self {
            Method::GradCam => "gradcam",
            Method::Ig => "ig",
            Method::Uncertainty => "uncertainty",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Method::GradCam => "Grad-CAM",
            Method::Ig => "IG",
            Method::Uncertainty => "MC-mean Grad-CAM",
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PairAgreement {
    pub a: Method,
    pub b: Method,
    /// Spearman ρ on the shared grid; `None` when a map is constant.
    pub spearman: Option<f64>,
    pub top_zone_a: &'static str,
    pub top_zone_b: &'static str,
    pub same_top_zone: bool,
}

impl PairAgreement {
    /// "Grad-CAM and IG agree on the top zone: right lower, ρ = 0.62".
    pub fn summary(&self) -> String {
        let rho = self
            .spearman
            .map_or("ρ undefined (a constant map)".to_string(), |r| {
                format!("ρ = {r:.2}")
            });
        if self.same_top_zone {
            format!(
                "{} and {} agree on the top zone: {}, {rho}",
                self.a.label(),
                self.b.label(),
                zone_words(self.top_zone_a)
            )
        } else {
            format!(
                "{} and {} differ on the top zone ({} vs {}), {rho}",
                self.a.label(),
                self.b.label(),
                zone_words(self.top_zone_a),
                zone_words(self.top_zone_b)
            )
        }
    }
}

/// "right_lower" → "right lower".
pub fn zone_words(name: &str) -> String {
    name.replace('_', " ")
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Agreement {
    pub grid: usize,
    /// Top zone of each map, keyed by method.
    pub top_zones: Vec<(Method, &'static str)>,
    pub pairs: Vec<PairAgreement>,
}

impl Agreement {
    /// The Grad-CAM–IG pair's line if IG was computed, else the first pair's.
    pub fn summary(&self) -> Option<String> {
        self.pairs
            .iter()
            .find(|p| p.a == Method::GradCam && p.b == Method::Ig)
            .or_else(|| self.pairs.first())
            .map(PairAgreement::summary)
    }
}

/// The map as compared: IG's positive part, every map on the `g×g` grid.
pub fn on_grid(method: Method, map: &Grid, g: usize) -> Grid {
    let map = if method == Method::Ig {
        Grid::new(
            map.width,
            map.height,
            map.values.iter().map(|v| v.max(0.0)).collect(),
        )
    } else {
        map.clone()
    };
    map.resized(g, g)
}

/// The zone with the highest mean of a map on the shared grid.
pub fn top_zone(map_on_grid: &Grid, model_w: usize, model_h: usize) -> &'static str {
    zone_scores(&map_on_grid.resized(model_w, model_h), model_w, model_h)
        .into_iter()
        .max_by(|a, b| a.mean.total_cmp(&b.mean))
        .map_or("none", |z| z.name)
}

/// Agreement of every pair of `maps`, on a `g×g` grid; `model` = the model input size `(w, h)`.
pub fn agreement(maps: &[(Method, &Grid)], g: usize, model: (usize, usize)) -> Agreement {
    let pooled: Vec<(Method, Grid)> = maps
        .iter()
        .map(|(m, map)| (*m, on_grid(*m, map, g.max(1))))
        .collect();
    let top_zones: Vec<(Method, &'static str)> = pooled
        .iter()
        .map(|(m, grid)| (*m, top_zone(grid, model.0, model.1)))
        .collect();
    let mut pairs = Vec::new();
    for i in 0..pooled.len() {
        for j in i + 1..pooled.len() {
            let rho = spearman(&pooled[i].1.values, &pooled[j].1.values);
            pairs.push(PairAgreement {
                a: pooled[i].0,
                b: pooled[j].0,
                spearman: rho.is_finite().then_some(rho),
                top_zone_a: top_zones[i].1,
                top_zone_b: top_zones[j].1,
                same_top_zone: top_zones[i].1 == top_zones[j].1,
            });
        }
    }
    Agreement {
        grid: g.max(1),
        top_zones,
        pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_maps_agree_and_opposite_maps_do_not() {
        // A hot spot in the image's lower-left: the patient's right lower zone.
        let mut hot = vec![0.0f32; 14 * 14];
        for y in 10..14 {
            for x in 0..4 {
                hot[y * 14 + x] = 1.0 + (x + y) as f32;
            }
        }
        let a = Grid::new(14, 14, hot.clone());
        let cold = Grid::new(14, 14, hot.iter().map(|v| 20.0 - v).collect());
        let r = agreement(
            &[(Method::GradCam, &a), (Method::Uncertainty, &a)],
            14,
            (224, 224),
        );
        assert_eq!(r.pairs[0].top_zone_a, "right_lower");
        assert!(r.pairs[0].same_top_zone);
        assert!((r.pairs[0].spearman.unwrap_or(0.0) - 1.0).abs() < 1e-9);
        assert_eq!(
            r.summary().unwrap_or_default(),
            "Grad-CAM and MC-mean Grad-CAM agree on the top zone: right lower, ρ = 1.00"
        );
        let r = agreement(
            &[(Method::GradCam, &a), (Method::Uncertainty, &cold)],
            14,
            (224, 224),
        );
        assert!(!r.pairs[0].same_top_zone);
        assert!(r.pairs[0].spearman.unwrap_or(0.0) < -0.99);
    }
}
