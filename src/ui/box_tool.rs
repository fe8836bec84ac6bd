//! The box tool: where the opacity is, drawn on the film into the review note.
//!
//! `D` or the toolbar's "Box tool" turns it on; then a primary drag on the film draws a box (it
//! no longer pans: the wheel still zooms, a middle drag pans), a click selects a box, dragging a
//! selected box moves it, dragging one of its corners resizes it, `Delete`/`Backspace` removes
//! it and `Ctrl+Z` undoes the last change. Boxes are kept in **image pixels** (RSNA convention:
//! top-left corner and size), so they stay on the same anatomy at any zoom, pan or window, and
//! are drawn whether or not the tool is on.
//!
//! The geometry (hit testing, moving, resizing) is plain functions of image-space points;
//! screen points are converted once through [`ScreenFromImage`], which is what the tests check.

use egui::{Color32, PointerButton, Pos2, Rect, Stroke, StrokeKind, Vec2};

use crate::notes::{ImageBox, StudyId, MAX_BOXES};

use super::app::ViewerApp;
use super::transform::ScreenFromImage;

/// Handles are this many screen points from a corner, whatever the zoom.
const HANDLE_POINTS: f32 = 7.0;
/// A drag shorter than this (screen points) on either side is a click, not a box.
const MIN_BOX_POINTS: f32 = 4.0;
/// Undo steps kept.
const UNDO_DEPTH: usize = 50;

pub(super) const BOX_COLOR: Color32 = Color32::from_rgb(80, 220, 255);
const SELECTED_COLOR: Color32 = Color32::from_rgb(255, 230, 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    fn of(self, b: &ImageBox) -> Pos2 {
        match self {
            Corner::TopLeft => Pos2::new(b.x, b.y),
            Corner::TopRight => Pos2::new(b.right(), b.y),
            Corner::BottomLeft => Pos2::new(b.x, b.bottom()),
            Corner::BottomRight => Pos2::new(b.right(), b.bottom()),
        }
    }

    /// The corner that stays put while this one is dragged.
    fn opposite(self) -> Corner {
        match self {
            Corner::TopLeft => Corner::BottomRight,
            Corner::TopRight => Corner::BottomLeft,
            Corner::BottomLeft => Corner::TopRight,
            Corner::BottomRight => Corner::TopLeft,
        }
    }
}

/// What is under the pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    Corner(usize, Corner),
    Inside(usize),
    Nothing,
}

/// The selected box's corners first (so a small box stays resizable), then the most recently
/// drawn box containing the point.
pub fn hit_test(
    boxes: &[ImageBox],
    selected: Option<usize>,
    point_in_image: Pos2,
    handle_radius_in_image: f32,
) -> Hit {
    if let Some(i) = selected.filter(|&i| i < boxes.len()) {
        for c in Corner::ALL {
            if c.of(&boxes[i]).distance(point_in_image) <= handle_radius_in_image {
                return Hit::Corner(i, c);
            }
        }
    }
    boxes
        .iter()
        .rposition(|b| b.contains(point_in_image.x, point_in_image.y))
        .map_or(Hit::Nothing, Hit::Inside)
}

/// `original` with `corner` dragged to `point_in_image` (the opposite corner fixed), kept inside
/// the image; dragging past the opposite corner flips the box rather than inverting it.
pub fn resized(
    original: &ImageBox,
    corner: Corner,
    point_in_image: Pos2,
    image_size: Vec2,
) -> Option<ImageBox> {
    let fixed = corner.opposite().of(original);
    ImageBox::from_corners((fixed.x, fixed.y), (point_in_image.x, point_in_image.y))
        .clamped(image_size.x, image_size.y)
}

/// `original` moved by `delta_in_image`, stopped at the image's edges (its size unchanged).
pub fn moved(original: &ImageBox, delta_in_image: Vec2, image_size: Vec2) -> ImageBox {
    let x = (original.x + delta_in_image.x).clamp(0.0, (image_size.x - original.width).max(0.0));
    let y = (original.y + delta_in_image.y).clamp(0.0, (image_size.y - original.height).max(0.0));
    ImageBox::new(x, y, original.width, original.height)
}

/// The box drawn by dragging from `start_on_screen` to `end_on_screen`, in image pixels and
/// inside the image; `None` for a drag too small to be meant as a box.
pub fn drawn(
    screen_from_image: &ScreenFromImage,
    start_on_screen: Pos2,
    end_on_screen: Pos2,
    image_size: Vec2,
) -> Option<ImageBox> {
    let d = end_on_screen - start_on_screen;
    if d.x.abs() < MIN_BOX_POINTS || d.y.abs() < MIN_BOX_POINTS {
        return None;
    }
    let a = screen_from_image.inverse(start_on_screen);
    let b = screen_from_image.inverse(end_on_screen);
    ImageBox::from_corners((a.x, a.y), (b.x, b.y)).clamped(image_size.x, image_size.y)
}

/// The screen rectangle of a box.
pub fn box_on_screen(screen_from_image: &ScreenFromImage, b: &ImageBox) -> Rect {
    screen_from_image.apply_rect(Rect::from_min_max(
        Pos2::new(b.x, b.y),
        Pos2::new(b.right(), b.bottom()),
    ))
}

#[derive(Clone, Debug, PartialEq)]
enum Drag {
    New {
        start_on_screen: Pos2,
    },
    Move {
        index: usize,
        start_in_image: Pos2,
        original: ImageBox,
    },
    Resize {
        index: usize,
        corner: Corner,
        original: ImageBox,
    },
}

/// The tool's state; the boxes themselves live in the note being edited.
#[derive(Clone, Debug, Default)]
pub struct BoxTool {
    pub active: bool,
    pub selected: Option<usize>,
    drag: Option<Drag>,
    /// Boxes before each change, newest last, with the study they belong to.
    undo: Vec<(StudyId, Vec<ImageBox>)>,
    /// The box being drawn, moved or resized (and which one), for the preview and for the
    /// release frame, where the pointer position may be gone.
    preview: Option<(Option<usize>, ImageBox)>,
    /// The study whose boxes `selected` and a drag in progress refer to.
    study: Option<StudyId>,
}

impl BoxTool {
    /// Forgets the selection and any drag when the note on screen changes study, so an index
    /// never selects a box of another film.
    pub fn follow(&mut self, study: Option<&StudyId>) {
        if self.study.as_ref() != study {
            self.study = study.cloned();
            self.selected = None;
            self.drag = None;
            self.preview = None;
        }
    }

    pub fn can_undo(&self, study: &StudyId) -> bool {
        self.undo.last().is_some_and(|(s, _)| s == study)
    }
}

/// What the canvas asks the note to become.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxEdit(pub Vec<ImageBox>);

/// The tool's part of the canvas interaction. Returns whether it used the primary drag (so the
/// canvas does not also pan) and the new boxes if they changed (applied at drag end).
pub fn interact(
    tool: &mut BoxTool,
    boxes: &[ImageBox],
    response: &egui::Response,
    screen_from_image: &ScreenFromImage,
    image_size: Vec2,
    to_primary: &dyn Fn(Pos2) -> Pos2,
) -> (bool, Option<BoxEdit>) {
    if !tool.active {
        tool.drag = None;
        tool.preview = None;
        return (false, None);
    }
    let handle_in_image = HANDLE_POINTS / screen_from_image.zoom.max(f32::MIN_POSITIVE);
    let pointer = response.interact_pointer_pos().map(to_primary);
    let mut edit = None;
    if response.drag_started_by(PointerButton::Primary) {
        // Where the press was, not where the pointer is once the drag is recognised.
        let press = response
            .ctx
            .input(|i| i.pointer.press_origin())
            .map(to_primary)
            .or(pointer);
        if let Some(p) = press {
            let in_image = screen_from_image.inverse(p);
            tool.drag = Some(
                match hit_test(boxes, tool.selected, in_image, handle_in_image) {
                    Hit::Corner(index, corner) => Drag::Resize {
                        index,
                        corner,
                        original: boxes[index],
                    },
                    Hit::Inside(index) if tool.selected == Some(index) => Drag::Move {
                        index,
                        start_in_image: in_image,
                        original: boxes[index],
                    },
                    _ => Drag::New { start_on_screen: p },
                },
            );
        }
    }
    let mut candidate: Option<(Option<usize>, ImageBox)> = None;
    if let (Some(drag), Some(p)) = (&tool.drag, pointer) {
        let in_image = screen_from_image.inverse(p);
        candidate = match drag {
            Drag::New { start_on_screen } => {
                drawn(screen_from_image, *start_on_screen, p, image_size).map(|b| (None, b))
            }
            Drag::Move {
                index,
                start_in_image,
                original,
            } => Some((
                Some(*index),
                moved(original, in_image - *start_in_image, image_size),
            )),
            Drag::Resize {
                index,
                corner,
                original,
            } => resized(original, *corner, in_image, image_size).map(|b| (Some(*index), b)),
        };
    }
    let used = tool.drag.is_some();
    if candidate.is_some() || pointer.is_none() {
        tool.preview = candidate.or(tool.preview);
    } else {
        tool.preview = None;
    }
    if response.drag_stopped_by(PointerButton::Primary) {
        let last = tool.preview.take();
        tool.drag = None;
        if let Some((index, b)) = last {
            let mut next = boxes.to_vec();
            match index {
                Some(i) if i < next.len() => {
                    next[i] = b;
                    tool.selected = Some(i);
                }
                _ if next.len() < MAX_BOXES => {
                    next.push(b);
                    tool.selected = Some(next.len() - 1);
                }
                _ => {}
            }
            if next != boxes {
                edit = Some(BoxEdit(next));
            }
        }
    } else if response.clicked_by(PointerButton::Primary) {
        if let Some(p) = pointer {
            let in_image = screen_from_image.inverse(p);
            tool.selected = match hit_test(boxes, tool.selected, in_image, handle_in_image) {
                Hit::Corner(i, _) | Hit::Inside(i) => Some(i),
                Hit::Nothing => None,
            };
        }
    }
    (used, edit)
}

/// Draws `boxes` (and the tool's preview) in one pane.
pub fn boxes_ui(
    painter: &egui::Painter,
    tool: &BoxTool,
    boxes: &[ImageBox],
    screen_from_image: &ScreenFromImage,
) {
    let replaced = tool.preview.and_then(|(i, _)| i);
    for (i, b) in boxes.iter().enumerate() {
        if replaced == Some(i) {
            continue;
        }
        let selected = tool.active && tool.selected == Some(i);
        let r = box_on_screen(screen_from_image, b);
        let color = if selected { SELECTED_COLOR } else { BOX_COLOR };
        // A dark outline under the colour keeps the box visible on white and on the overlay.
        painter.rect_stroke(
            r,
            0.0,
            Stroke::new(3.5, Color32::from_black_alpha(160)),
            StrokeKind::Middle,
        );
        painter.rect_stroke(r, 0.0, Stroke::new(1.5, color), StrokeKind::Middle);
        if selected {
            for c in Corner::ALL {
                let p = screen_from_image.apply(c.of(b));
                painter.rect_filled(Rect::from_center_size(p, Vec2::splat(7.0)), 1.0, color);
            }
        }
    }
    if let Some((_, b)) = &tool.preview {
        let r = box_on_screen(screen_from_image, b);
        painter.rect_stroke(
            r,
            0.0,
            Stroke::new(1.5, SELECTED_COLOR.gamma_multiply(0.8)),
            StrokeKind::Middle,
        );
    }
}

impl ViewerApp {
    /// The boxes of the note on screen (empty without a note).
    pub fn note_boxes(&self) -> &[ImageBox] {
        self.notes
            .draft
            .as_ref()
            .map_or(&[], |d| d.note.boxes.as_slice())
    }

    /// Replaces the boxes of the note on screen (one undo step) and schedules the autosave.
    pub fn set_note_boxes(&mut self, boxes: Vec<ImageBox>) {
        let size = self
            .current
            .as_ref()
            .and_then(|c| c.study.as_ref())
            .map(|s| (s.width as u32, s.height as u32));
        let Some(d) = self.notes.draft.as_mut() else {
            return;
        };
        if d.note.boxes == boxes {
            return;
        }
        self.box_tool.undo.push((
            d.note.study.clone(),
            std::mem::replace(&mut d.note.boxes, boxes),
        ));
        if self.box_tool.undo.len() > UNDO_DEPTH {
            self.box_tool.undo.remove(0);
        }
        if let Some(size) = size.filter(|(w, h)| *w > 0 && *h > 0) {
            d.note.image_size = Some(size);
        }
        self.note_edited();
    }

    pub fn toggle_box_tool(&mut self) {
        self.box_tool.active = !self.box_tool.active;
        self.box_tool.drag = None;
        self.box_tool.preview = None;
    }

    /// Removes the selected box.
    pub fn delete_selected_box(&mut self) {
        let Some(i) = self.box_tool.selected.take() else {
            return;
        };
        let mut boxes = self.note_boxes().to_vec();
        if i < boxes.len() {
            boxes.remove(i);
            self.set_note_boxes(boxes);
        }
    }

    /// Undoes the last box change of the study on screen.
    pub fn undo_box(&mut self) {
        let Some(d) = self.notes.draft.as_mut() else {
            return;
        };
        if !self.box_tool.can_undo(&d.note.study) {
            return;
        }
        if let Some((_, previous)) = self.box_tool.undo.pop() {
            d.note.boxes = previous;
            self.box_tool.selected = None;
            self.note_edited();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn a_box_drawn_on_screen_is_the_same_film_region_at_any_zoom_and_pan() {
        let image = Vec2::new(1000.0, 800.0);
        let canvas = Rect::from_min_size(Pos2::new(50.0, 30.0), Vec2::new(640.0, 480.0));
        let fit = ScreenFromImage::fit(image, canvas);
        // Image box (200, 100)-(500, 400) drawn on the fitted view.
        let (a, b) = (Pos2::new(200.0, 100.0), Pos2::new(500.0, 400.0));
        let drawn_fit = drawn(&fit, fit.apply(a), fit.apply(b), image).unwrap();
        assert!(close(drawn_fit.x, 200.0) && close(drawn_fit.y, 100.0));
        assert!(close(drawn_fit.width, 300.0) && close(drawn_fit.height, 300.0));
        // The same drag, backwards, on a zoomed and panned view gives the same box.
        let zoomed = fit
            .zoomed_around(Pos2::new(300.0, 200.0), 3.7)
            .panned(Vec2::new(-120.0, 45.0));
        let drawn_zoomed = drawn(&zoomed, zoomed.apply(b), zoomed.apply(a), image).unwrap();
        assert!(close(drawn_zoomed.x, 200.0) && close(drawn_zoomed.bottom(), 400.0));
        // And it is drawn over the same film pixels: its screen corners are the image corners'.
        let on_screen = box_on_screen(&zoomed, &drawn_fit);
        assert!((on_screen.min - zoomed.apply(a)).length() < 1e-2);
        assert!((on_screen.max - zoomed.apply(b)).length() < 1e-2);
        assert!(close(on_screen.width(), 300.0 * zoomed.zoom));
    }

    #[test]
    fn drags_are_clamped_to_the_film_and_tiny_drags_are_clicks() {
        let image = Vec2::new(100.0, 100.0);
        let t = ScreenFromImage {
            zoom: 2.0,
            offset: Vec2::new(10.0, 10.0),
        };
        // From outside the film (screen 0,0 = image -5,-5) to image (40, 30).
        let b = drawn(&t, Pos2::ZERO, t.apply(Pos2::new(40.0, 30.0)), image).unwrap();
        assert_eq!(b, ImageBox::new(0.0, 0.0, 40.0, 30.0));
        assert_eq!(
            drawn(&t, Pos2::new(50.0, 50.0), Pos2::new(52.0, 80.0), image),
            None
        );
        // Moving stops at the edge; size kept.
        let m = moved(
            &ImageBox::new(80.0, 10.0, 15.0, 10.0),
            Vec2::new(30.0, -20.0),
            image,
        );
        assert_eq!(m, ImageBox::new(85.0, 0.0, 15.0, 10.0));
    }

    #[test]
    fn corners_resize_and_the_selected_box_wins_hit_tests() {
        let image = Vec2::new(100.0, 100.0);
        let boxes = [
            ImageBox::new(10.0, 10.0, 50.0, 50.0),
            ImageBox::new(20.0, 20.0, 10.0, 10.0),
        ];
        // Inside both: the later (top) box.
        assert_eq!(
            hit_test(&boxes, None, Pos2::new(25.0, 25.0), 2.0),
            Hit::Inside(1)
        );
        // Near the selected first box's corner: its handle, even though box 1 is on top.
        assert_eq!(
            hit_test(&boxes, Some(0), Pos2::new(11.0, 11.0), 2.0),
            Hit::Corner(0, Corner::TopLeft)
        );
        assert_eq!(
            hit_test(&boxes, None, Pos2::new(90.0, 90.0), 2.0),
            Hit::Nothing
        );
        // Dragging the bottom-right corner past the top-left flips the box around the fixed corner.
        let r = resized(&boxes[0], Corner::BottomRight, Pos2::new(5.0, 70.0), image).unwrap();
        assert_eq!(r, ImageBox::new(5.0, 10.0, 5.0, 60.0));
    }

    #[test]
    fn the_selection_does_not_follow_into_another_study() {
        let (a, b) = (StudyId::sha256(&[1; 32]), StudyId::sha256(&[2; 32]));
        let mut tool = BoxTool::default();
        tool.follow(Some(&a));
        tool.selected = Some(1);
        tool.follow(Some(&a));
        assert_eq!(tool.selected, Some(1));
        tool.follow(Some(&b));
        assert_eq!(tool.selected, None);
    }
}
