//! The three coordinate spaces of the viewer and the maps between them.
//!
//! * **image**: original film pixels, `(0, 0)` top-left, `(width, height)` bottom-right.
//! * **model**: the network's input grid (e.g. 224 × 224). The model sees the *whole* film
//!   squashed (not cropped, not letter-boxed) to this grid, so a map cell covers the same
//!   fraction of the film as of the grid. Any map that disagrees with this would be drawn in the
//!   wrong place, which is why the map is written down once here.
//! * **screen**: egui points.
//!
//! Names follow `target_from_source` so that `screen_from_image.apply(point_in_image)` reads
//! like a type check.

use egui::{Pos2, Rect, Vec2};

/// Scale-and-translate between image pixels and screen points: `screen = image · zoom + offset`.
/// No rotation or flip, so rectangles stay rectangles and the overlay can be drawn as one quad.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScreenFromImage {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// Screen position of the image's top-left corner.
    pub offset: Vec2,
}

/// Smallest and largest zoom (points per image pixel): far enough out to see a 16k film in a
/// small window, far enough in to inspect single pixels.
pub const MIN_ZOOM: f32 = 1.0 / 64.0;
pub const MAX_ZOOM: f32 = 64.0;

impl ScreenFromImage {
    /// Whole image centred in `canvas`, as large as fits.
    pub fn fit(image_size: Vec2, canvas: Rect) -> Self {
        let zoom = if image_size.x > 0.0 && image_size.y > 0.0 {
            (canvas.width() / image_size.x)
                .min(canvas.height() / image_size.y)
                .clamp(MIN_ZOOM, MAX_ZOOM)
        } else {
            1.0
        };
        let offset = canvas.center().to_vec2() - image_size * zoom * 0.5;
        Self { zoom, offset }
    }

    /// One image pixel per *physical* screen pixel (not per point), centred on what was at the
    /// canvas centre before (to within half a physical pixel), so toggling 1:1 does not jump
    /// elsewhere on the film.
    ///
    /// The image's corner lands on a physical pixel's corner: the film texture is filtered
    /// linearly, so an offset of half a pixel spread every film pixel over two screen pixels at
    /// half contrast (a one-pixel line on a 1.75× display showed two pixels wide, at half its
    /// brightness). Panning moves by whole pointer steps, which keeps the alignment.
    pub fn one_to_one(self, pixels_per_point: f32, canvas: Rect) -> Self {
        let ppp = pixels_per_point.max(f32::MIN_POSITIVE);
        let t = self.zoomed_around(canvas.center(), 1.0 / ppp / self.zoom);
        Self {
            offset: (t.offset * ppp).round() / ppp,
            ..t
        }
    }

    pub fn apply(&self, point_in_image: Pos2) -> Pos2 {
        (point_in_image.to_vec2() * self.zoom + self.offset).to_pos2()
    }

    pub fn inverse(&self, point_on_screen: Pos2) -> Pos2 {
        ((point_on_screen.to_vec2() - self.offset) / self.zoom).to_pos2()
    }

    pub fn apply_rect(&self, rect_in_image: Rect) -> Rect {
        Rect::from_min_max(self.apply(rect_in_image.min), self.apply(rect_in_image.max))
    }

    /// Multiplies the zoom by `factor` (clamped) keeping the image point under `anchor_on_screen`
    /// fixed: the wheel zooms where the user is looking, not into the corner.
    pub fn zoomed_around(self, anchor_on_screen: Pos2, factor: f32) -> Self {
        let zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let anchor_in_image = self.inverse(anchor_on_screen);
        let offset = anchor_on_screen.to_vec2() - anchor_in_image.to_vec2() * zoom;
        Self { zoom, offset }
    }

    pub fn panned(self, delta_on_screen: Vec2) -> Self {
        Self {
            offset: self.offset + delta_on_screen,
            ..self
        }
    }
}

/// Model grid → image pixels: an axis-aligned stretch (the squash the preprocessing did, undone).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageFromModel {
    pub scale: Vec2,
}

impl ImageFromModel {
    pub fn new(model_size: (usize, usize), image_size: (usize, usize)) -> Self {
        let (mw, mh) = model_size;
        let (iw, ih) = image_size;
        Self {
            scale: Vec2::new(
                iw as f32 / (mw.max(1) as f32),
                ih as f32 / (mh.max(1) as f32),
            ),
        }
    }

    pub fn apply(&self, point_in_model: Pos2) -> Pos2 {
        Pos2::new(
            point_in_model.x * self.scale.x,
            point_in_model.y * self.scale.y,
        )
    }

    pub fn inverse(&self, point_in_image: Pos2) -> Pos2 {
        Pos2::new(
            point_in_image.x / self.scale.x,
            point_in_image.y / self.scale.y,
        )
    }

    pub fn apply_rect(&self, rect_in_model: Rect) -> Rect {
        Rect::from_min_max(self.apply(rect_in_model.min), self.apply(rect_in_model.max))
    }
}

/// Where a model-grid point lands on screen: the composition the overlay is drawn with.
pub fn screen_from_model(
    screen_from_image: &ScreenFromImage,
    image_from_model: &ImageFromModel,
    point_in_model: Pos2,
) -> Pos2 {
    screen_from_image.apply(image_from_model.apply(point_in_model))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Pos2, b: Pos2) -> bool {
        (a - b).length() < 1e-3
    }

    #[test]
    fn fit_centres_and_fills_the_limiting_side() {
        let canvas = Rect::from_min_size(Pos2::new(100.0, 50.0), Vec2::new(800.0, 400.0));
        let t = ScreenFromImage::fit(Vec2::new(1000.0, 2000.0), canvas);
        assert!((t.zoom - 0.2).abs() < 1e-6);
        let on_screen = t.apply_rect(Rect::from_min_size(Pos2::ZERO, Vec2::new(1000.0, 2000.0)));
        assert!(close(on_screen.center(), canvas.center()));
        assert!((on_screen.height() - canvas.height()).abs() < 1e-3);
        assert!(on_screen.width() <= canvas.width());
    }

    #[test]
    fn inverse_undoes_apply() {
        let t = ScreenFromImage {
            zoom: 2.5,
            offset: Vec2::new(-30.0, 12.0),
        };
        let p = Pos2::new(123.4, 567.8);
        assert!(close(t.inverse(t.apply(p)), p));
    }

    #[test]
    fn wheel_zoom_keeps_the_point_under_the_cursor() {
        let t = ScreenFromImage {
            zoom: 0.5,
            offset: Vec2::new(10.0, 20.0),
        };
        let cursor = Pos2::new(300.0, 200.0);
        let before = t.inverse(cursor);
        let z = t.zoomed_around(cursor, 3.0);
        assert!((z.zoom - 1.5).abs() < 1e-6);
        assert!(close(z.inverse(cursor), before));
    }

    #[test]
    fn zoom_is_clamped() {
        let t = ScreenFromImage {
            zoom: 1.0,
            offset: Vec2::ZERO,
        };
        assert_eq!(t.zoomed_around(Pos2::ZERO, 1e6).zoom, MAX_ZOOM);
        assert_eq!(t.zoomed_around(Pos2::ZERO, 1e-6).zoom, MIN_ZOOM);
    }

    #[test]
    fn one_to_one_uses_physical_pixels_and_keeps_the_centre() {
        let canvas = Rect::from_min_size(Pos2::ZERO, Vec2::new(400.0, 300.0));
        let t = ScreenFromImage::fit(Vec2::new(2000.0, 1500.0), canvas);
        let centre_before = t.inverse(canvas.center());
        let o = t.one_to_one(2.0, canvas);
        assert!((o.zoom - 0.5).abs() < 1e-6);
        assert!(close(o.inverse(canvas.center()), centre_before));
        // On a 1.75× display, from a fit that leaves the image corner between physical pixels:
        // the corner moves onto one, and the centre stays within half a physical pixel.
        for (ppp, size) in [
            (1.75, Vec2::new(801.3, 577.9)),
            (1.0, Vec2::new(997.5, 703.25)),
        ] {
            let canvas = Rect::from_min_size(Pos2::new(13.1, 71.7), size);
            let t = ScreenFromImage::fit(Vec2::new(3001.0, 3599.0), canvas);
            let centre_before = t.inverse(canvas.center());
            let o = t.one_to_one(ppp, canvas);
            assert!((o.zoom * ppp - 1.0).abs() < 1e-6, "{ppp}");
            for corner in [o.offset.x * ppp, o.offset.y * ppp] {
                assert!(
                    (corner - corner.round()).abs() < 1e-3,
                    "{ppp}: corner at {corner}"
                );
            }
            let moved = (o.inverse(canvas.center()) - centre_before) * o.zoom * ppp;
            assert!(
                moved.x.abs() <= 0.5 + 1e-3 && moved.y.abs() <= 0.5 + 1e-3,
                "{moved:?}"
            );
        }
    }

    #[test]
    fn pan_moves_by_screen_delta() {
        let t = ScreenFromImage {
            zoom: 4.0,
            offset: Vec2::ZERO,
        };
        let p = Pos2::new(5.0, 5.0);
        let moved = t.panned(Vec2::new(7.0, -3.0));
        assert!(close(moved.apply(p), t.apply(p) + Vec2::new(7.0, -3.0)));
    }

    #[test]
    fn model_grid_covers_the_whole_film() {
        // A non-square film squashed to 224 × 224: the grid's corners are the film's corners.
        let m = ImageFromModel::new((224, 224), (2000, 1600));
        assert!(close(m.apply(Pos2::ZERO), Pos2::ZERO));
        assert!(close(
            m.apply(Pos2::new(224.0, 224.0)),
            Pos2::new(2000.0, 1600.0)
        ));
        // Centre of the first model cell is at half a cell in image pixels on each axis.
        assert!(close(
            m.apply(Pos2::new(0.5, 0.5)),
            Pos2::new(2000.0 / 448.0, 1600.0 / 448.0)
        ));
        let p = Pos2::new(37.0, 190.0);
        assert!(close(m.inverse(m.apply(p)), p));
    }

    #[test]
    fn overlay_stays_registered_under_zoom_and_pan() {
        // The image point under a model cell must stay under it whatever the view does.
        let m = ImageFromModel::new((7, 7), (1000, 1400));
        let cell = Pos2::new(3.5, 2.0);
        let canvas = Rect::from_min_size(Pos2::ZERO, Vec2::new(640.0, 480.0));
        let mut t = ScreenFromImage::fit(Vec2::new(1000.0, 1400.0), canvas);
        for step in 0..5 {
            t = t
                .zoomed_around(Pos2::new(100.0 + step as f32 * 50.0, 200.0), 1.7)
                .panned(Vec2::new(-13.0, 29.0));
            let via_model = screen_from_model(&t, &m, cell);
            let via_image = t.apply(Pos2::new(500.0, 400.0));
            assert!(
                close(via_model, via_image),
                "{via_model:?} vs {via_image:?}"
            );
        }
    }
}
