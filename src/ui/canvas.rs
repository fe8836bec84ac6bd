//! The film with its overlay: fit / zoom / pan / window-level interaction and drawing. The
//! overlay quad is the model grid mapped through `screen_from_image ∘ image_from_model`, so it
//! stays registered at any zoom and covers exactly what the model analysed: the whole film.

use std::sync::Arc;

use egui::{
    Align2, Color32, FontId, Id, PointerButton, Pos2, Rect, Sense, Stroke, TextureOptions, Vec2,
};

use super::app::{image_size, FilmKey, OverlayKey, ViewerApp};
use super::film_levels::FilmLevels;
use super::render::{
    at_least_visible, contour_segments, drag_step, film_filter, film_image, map_scale,
    overlay_image, texture_region, texture_step, FilmSource, MAX_TEXTURE_SIDE,
};
use super::settings::{MapKind, OverlayMode};
use super::transform::{screen_from_model, ImageFromModel, ScreenFromImage};

fn canvas_id() -> Id {
    Id::unique("cxr_viewer_canvas_rect")
}

/// The canvas rectangle of the last frame, for keyboard zoom around its centre.
pub fn last_canvas(ctx: &egui::Context) -> Option<Rect> {
    ctx.data(|d| d.get_temp::<Rect>(canvas_id()))
}

fn readouts_id() -> Id {
    Id::unique("cxr_viewer_cursor_readouts")
}

/// The plates of the last frame's cursor readouts (one per pane under the cursor), so a test can
/// check they fit their pane.
pub fn last_cursor_readouts(ctx: &egui::Context) -> Vec<Rect> {
    ctx.data(|d| d.get_temp::<Vec<Rect>>(readouts_id()))
        .unwrap_or_default()
}

pub fn canvas_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    let (canvas, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    ui.ctx().data_mut(|d| d.insert_temp(canvas_id(), canvas));
    let painter = ui.painter_at(canvas);
    painter.rect_filled(canvas, 0.0, Color32::BLACK);

    let Some(current) = app.current.as_ref() else {
        painter.text(
            canvas.center(),
            Align2::CENTER_CENTER,
            "Open an image: Ctrl+O, drag and drop, or `cxr-viewer FILE`",
            FontId::proportional(16.0),
            Color32::GRAY,
        );
        return;
    };
    let Some(study) = current.study.clone() else {
        let text = match &current.error {
            Some(e) => e.clone(),
            None => format!("Loading {}…", super::app::display_name(&current.path)),
        };
        let color = if current.error.is_some() {
            Color32::from_rgb(255, 120, 120)
        } else {
            Color32::GRAY
        };
        // Wrapped to the canvas: a load error names the file and the reason, often wider than
        // the canvas, and both ends matter.
        let wrap = (canvas.width() - 40.0).max(80.0);
        let galley = painter.layout(text, FontId::proportional(15.0), color, wrap);
        painter.galley(canvas.center() - galley.size() / 2.0, galley, color);
        return;
    };

    // ---- panes: one, or two side by side sharing one view (compare mode) ----
    let panes: Vec<(Rect, MapKind)> = match app.compare {
        Some(other) => {
            let half = (canvas.width() - 4.0) / 2.0;
            let left = Rect::from_min_size(canvas.min, Vec2::new(half, canvas.height()));
            let right = Rect::from_min_size(
                Pos2::new(canvas.max.x - half, canvas.min.y),
                Vec2::new(half, canvas.height()),
            );
            vec![(left, app.map), (right, other)]
        }
        None => vec![(canvas, app.map)],
    };
    let primary = panes[0].0;
    // A point in any pane, expressed in the primary pane: the view transform lives there.
    let to_primary = |p: Pos2| {
        panes
            .iter()
            .find(|(r, _)| r.contains(p))
            .map_or(p, |(r, _)| p - (r.min - primary.min))
    };

    // ---- interaction ----
    let size_in_image = image_size(&study);
    let mut screen_from_image = current
        .view
        .transform
        .unwrap_or_else(|| ScreenFromImage::fit(size_in_image, primary));
    let mut moved = false;
    if let Some(hover) = response.hover_pos() {
        let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta().y, i.zoom_delta()));
        let factor = (scroll / 300.0).exp() * zoom;
        if (factor - 1.0).abs() > 1e-4 {
            screen_from_image = screen_from_image.zoomed_around(to_primary(hover), factor);
            moved = true;
        }
    }
    // The box tool takes the primary drag while it is on; a middle drag always pans.
    app.box_tool
        .follow(app.notes.draft.as_ref().map(|d| &d.note.study));
    let (box_drag, box_edit) = if app.notes.draft.is_some() {
        let boxes = app.note_boxes().to_vec();
        super::box_tool::interact(
            &mut app.box_tool,
            &boxes,
            &response,
            &screen_from_image,
            size_in_image,
            &to_primary,
        )
    } else {
        (false, None)
    };
    if app.box_tool.active && response.hovered() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::Crosshair);
    }
    if (response.dragged_by(PointerButton::Primary) && !box_drag && !app.box_tool.active)
        || response.dragged_by(PointerButton::Middle)
    {
        screen_from_image = screen_from_image.panned(response.drag_delta());
        moved = true;
    }
    let mut window = current.view.window;
    let mut window_changed = false;
    if response.dragged_by(PointerButton::Secondary) {
        // Horizontal: width (log scale, so it feels the same at any width); vertical: level,
        // proportional to the width so a drag across the canvas moves a sensible amount.
        let d = response.drag_delta();
        let width = (window.high - window.low).max(1e-3) * (d.x / 200.0).exp();
        let center = 0.5 * (window.low + window.high) - d.y * width / 400.0;
        window.low = center - width / 2.0;
        window.high = center + width / 2.0;
        window_changed = true;
    }
    if let Some(super::box_tool::BoxEdit(boxes)) = box_edit {
        app.set_note_boxes(boxes);
    }
    let double_clicked = response.double_clicked() && !app.box_tool.active;
    if let Some(c) = app.current.as_mut() {
        if moved {
            c.view.transform = Some(screen_from_image);
        }
        if double_clicked {
            c.view.transform = None;
            screen_from_image = ScreenFromImage::fit(size_in_image, primary);
        }
        if window_changed {
            c.view.window = window;
            c.view.preset = None;
        }
    }
    let Some(current) = app.current.as_ref() else {
        return;
    };
    let view = current.view.clone();

    // ---- film ----
    let film_side = study.width.max(study.height);
    let screen_px_per_film_px = screen_from_image.zoom * ui.ctx().pixels_per_point();
    let shown_px = screen_px_per_film_px * film_side as f32;
    // Every pane shows the same part of the film (compare mode pans each by its own corner).
    let visible_in_image = Rect::from_two_pos(
        screen_from_image.inverse(primary.min),
        screen_from_image.inverse(primary.max),
    );
    let size = (study.width, study.height);
    let max_side = MAX_TEXTURE_SIDE.min(ui.input(|i| i.max_texture_side));
    let (mut region, mut step) = texture_region(
        size,
        visible_in_image,
        texture_step(film_side, shown_px),
        max_side,
    );
    // A large texture at half resolution while window/level is dragged ([`drag_step`]).
    if response.dragged_by(PointerButton::Secondary) {
        let coarser = drag_step(region, step);
        if coarser != step {
            (region, step) = texture_region(size, visible_in_image, coarser, max_side);
        }
    }
    // The film's level for that step, or a coarser one standing in while a large film's level is
    // built in the background ([`FilmLevels`]); the texture is then laid out for that one.
    let level = if step > 1 {
        let ctx = ui.ctx().clone();
        let level =
            FilmLevels::of(&mut app.film_levels, &current.path)
                .level(&study, step, move || ctx.request_repaint());
        if level.step != step {
            // Coarser, so its texture is smaller: the side limit cannot raise the step again.
            region = texture_region(size, visible_in_image, level.step, max_side).0;
            step = level.step;
        }
        Some(level)
    } else {
        None
    };
    let film_key = FilmKey {
        path: current.path.clone(),
        window: [view.window.low.to_bits(), view.window.high.to_bits()],
        invert: view.invert,
        step,
        region,
        filter: film_filter(screen_px_per_film_px),
    };
    if app.film_tex.as_ref().is_none_or(|(k, _)| *k != film_key) {
        let source = match level {
            Some(level) => FilmSource::Level(level),
            None => FilmSource::Full(&study),
        };
        let image = film_image(source, &view.window, view.invert, region);
        let filter = film_key.filter;
        match app.film_tex.as_mut() {
            Some((k, tex)) => {
                tex.set(image, filter);
                *k = film_key;
            }
            None => {
                let tex = ui.ctx().load_texture("film", image, filter);
                app.film_tex = Some((film_key, tex));
            }
        }
    }
    let hover = response.hover_pos();
    let mut readouts = Vec::new();
    for (slot, (rect, kind)) in panes.iter().enumerate() {
        let screen_from_image = screen_from_image.panned(rect.min - primary.min);
        let painter = ui.painter_at(*rect);
        let hover = hover.filter(|h| rect.contains(*h));
        readouts.extend(pane_ui(
            app,
            ui,
            &painter,
            slot,
            *kind,
            &study,
            screen_from_image,
            hover,
        ));
        if app.compare.is_some() {
            let state = pane_state(
                *kind,
                super::scope_banner::result_hidden(app),
                app.has_map(*kind),
            );
            // A drawn map says which class it explains, as the zone table does: side by side
            // on a film read as NORMAL, both panes show evidence for NORMAL.
            let class = app.explained_class(*kind);
            text_with_backdrop(
                &painter,
                rect.left_top() + Vec2::new(8.0, 8.0),
                Align2::LEFT_TOP,
                fitting(&painter, *kind, rect.width() - 16.0, |label| {
                    match (state, &class) {
                        (Some(state), _) => format!("{label}: {state}"),
                        (None, Some(class)) => format!("{label} for {class}"),
                        (None, None) => label.to_string(),
                    }
                }),
            );
        }
    }
    if panes.len() == 2 {
        painter.rect_filled(
            Rect::from_min_max(
                Pos2::new(panes[0].0.max.x, canvas.min.y),
                Pos2::new(panes[1].0.min.x, canvas.max.y),
            ),
            0.0,
            Color32::from_gray(90),
        );
    }
    let wl = format!(
        "W {:.0}  L {:.0}{}  zoom {:.0} %",
        view.window.width(),
        view.window.center(),
        if view.invert { "  inverted" } else { "" },
        screen_from_image.zoom * ui.ctx().pixels_per_point() * 100.0
    );
    ui.ctx()
        .data_mut(|d| d.insert_temp(readouts_id(), readouts.clone()));
    // In a narrow canvas the cursor readout (bottom left) reaches under this one: stack them.
    let wl = readout_galley(&painter, wl);
    let corner = canvas.right_bottom() + Vec2::new(-8.0, -8.0);
    let beside = Align2::RIGHT_BOTTOM
        .anchor_size(corner, wl.size())
        .expand(3.0);
    let corner = match readouts.iter().find(|r| r.intersects(beside)) {
        Some(r) => Pos2::new(corner.x, r.min.y - 4.0),
        None => corner,
    };
    galley_with_backdrop(&painter, corner, Align2::RIGHT_BOTTOM, wl);
    if !app.overlay_visible && (app.map != MapKind::None || app.compare.is_some()) {
        text_with_backdrop(
            &painter,
            canvas.right_top() + Vec2::new(-8.0, 8.0),
            Align2::RIGHT_TOP,
            "overlay hidden (H)".into(),
        );
    }
}

/// Readouts sit on top of the film and a bright overlay: give them a dark plate to stay legible.
/// Returns the plate's rectangle.
fn text_with_backdrop(painter: &egui::Painter, pos: Pos2, align: Align2, text: String) -> Rect {
    galley_with_backdrop(painter, pos, align, readout_galley(painter, text))
}

/// What a compare pane's caption adds to its map's name when the map is not drawn: side by
/// side, "Grad-CAM" over a bare film read as a flat map, while the result was hidden out of scope
/// or the map not computed yet (IG deferred or still running).
fn pane_state(kind: MapKind, result_hidden: bool, has_map: bool) -> Option<&'static str> {
    match kind {
        MapKind::None => None,
        _ if result_hidden => Some("hidden (out of scope)"),
        _ if !has_map => Some("not computed yet"),
        _ => None,
    }
}

/// `text` of the map's name, or of its short form where that would not fit `max_width`.
fn fitting(
    painter: &egui::Painter,
    kind: MapKind,
    max_width: f32,
    text: impl Fn(&str) -> String,
) -> String {
    let full = text(kind.label());
    if readout_galley(painter, full.clone()).size().x <= max_width {
        full
    } else {
        text(kind.short_label())
    }
}

/// A readout laid out in its font, so its size is known before it is placed.
fn readout_galley(painter: &egui::Painter, text: String) -> Arc<egui::Galley> {
    painter.layout_no_wrap(text, FontId::monospace(12.0), Color32::from_gray(230))
}

fn galley_with_backdrop(
    painter: &egui::Painter,
    pos: Pos2,
    align: Align2,
    galley: Arc<egui::Galley>,
) -> Rect {
    let rect = align.anchor_size(pos, galley.size());
    let plate = rect.expand(3.0);
    painter.rect_filled(plate, 3.0, Color32::from_black_alpha(170));
    painter.galley(rect.min, galley, Color32::from_gray(230));
    plate
}

/// One pane: the film, `kind`'s overlay through `screen_from_image ∘ image_from_model`, and the
/// cursor readout (its plate's rectangle is returned). `slot` picks the texture cache, so two
/// panes don't rebuild each other's.
#[allow(clippy::too_many_arguments)]
fn pane_ui(
    app: &mut ViewerApp,
    ui: &egui::Ui,
    painter: &egui::Painter,
    slot: usize,
    kind: MapKind,
    study: &crate::io::Study,
    screen_from_image: ScreenFromImage,
    hover: Option<Pos2>,
) -> Option<Rect> {
    let full_uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    if let Some((key, tex)) = &app.film_tex {
        let one_pixel = 1.0 / ui.ctx().pixels_per_point();
        painter.image(
            tex.id(),
            at_least_visible(
                screen_from_image.apply_rect(key.region.rect_in_image()),
                one_pixel,
            ),
            full_uv,
            Color32::WHITE,
        );
    }

    let map = if kind == MapKind::None {
        None
    } else {
        app.map_of(kind)
    };
    let show_overlay =
        app.overlay_visible && !app.overlay_held_hidden && !super::scope_banner::result_hidden(app);
    if let (true, Some((grid, _, mean)), Some(key)) =
        (show_overlay, map.as_ref(), app.current_key())
    {
        let mut s = app.settings.clone();
        s.alpha =
            crate::trust::gated_opacity(s.alpha, super::trust_state::current_gate(app).as_ref());
        let overlay_key = OverlayKey {
            key,
            kind,
            ig: (kind == MapKind::IntegratedGradients).then(|| app.wanted_ig_or_default()),
            style: [s.alpha.to_bits(), s.threshold.to_bits(), 0],
            mode: s.mode,
            colormap: s.colormap,
        };
        let scale = map_scale(kind, grid, mean.as_ref());
        let image_from_model =
            ImageFromModel::new((grid.width, grid.height), (study.width, study.height));
        if s.mode == OverlayMode::Contour {
            let cached = &mut app.contours[slot];
            if cached.as_ref().is_none_or(|(k, _)| *k != overlay_key) {
                *cached = Some((overlay_key, contour_segments(grid, scale, s.threshold)));
            }
            let color = if kind.is_signed() {
                Color32::from_rgb(255, 60, 60)
            } else {
                let c = s.colormap.colormap().color(s.threshold.max(0.6));
                Color32::from_rgb(c[0], c[1], c[2])
            };
            let stroke = Stroke::new(2.0, color.gamma_multiply(s.alpha.max(0.2)));
            if let Some((_, segs)) = cached {
                for [a, b] in segs.iter() {
                    painter.line_segment(
                        [
                            screen_from_model(&screen_from_image, &image_from_model, *a),
                            screen_from_model(&screen_from_image, &image_from_model, *b),
                        ],
                        stroke,
                    );
                }
            }
        } else {
            let cached = &mut app.overlay_tex[slot];
            if cached.as_ref().is_none_or(|(k, _)| *k != overlay_key) {
                let image = overlay_image(
                    grid,
                    scale,
                    s.colormap.colormap(),
                    s.alpha,
                    s.mode,
                    s.threshold,
                );
                let tex =
                    ui.ctx()
                        .load_texture(format!("overlay{slot}"), image, TextureOptions::LINEAR);
                *cached = Some((overlay_key, tex));
            }
            if let Some((_, tex)) = cached {
                let model_rect = Rect::from_min_size(
                    Pos2::ZERO,
                    Vec2::new(grid.width as f32, grid.height as f32),
                );
                let on_screen =
                    screen_from_image.apply_rect(image_from_model.apply_rect(model_rect));
                painter.image(tex.id(), on_screen, full_uv, Color32::WHITE);
            }
        }
    }

    super::box_tool::boxes_ui(painter, &app.box_tool, app.note_boxes(), &screen_from_image);

    // Where the cursor is, in image pixels, and what is there.
    let hover = hover?;
    let point_in_image = screen_from_image.inverse(hover);
    let (x, y) = (point_in_image.x.floor(), point_in_image.y.floor());
    if x < 0.0 || y < 0.0 || x as usize >= study.width || y as usize >= study.height {
        return None;
    }
    let i = y as usize * study.width + x as usize;
    let mut parts = vec![
        format!("x {x:.0}  y {y:.0}"),
        if study.is_padding(i) {
            // Not film: its value was replaced by the range's low end.
            "padding".to_string()
        } else {
            format!("value {:.1}", study.pixels[i])
        },
    ];
    // An out-of-scope result stays hidden in the readout too until "Show anyway".
    let readout_map = map
        .as_ref()
        .filter(|_| !super::scope_banner::result_hidden(app));
    if let Some((grid, _, _)) = readout_map {
        let point_in_model =
            ImageFromModel::new((grid.width, grid.height), (study.width, study.height))
                .inverse(point_in_image);
        let (mx, my) = (point_in_model.x as usize, point_in_model.y as usize);
        if mx < grid.width && my < grid.height {
            let score = crate::text::format_score(grid.values[my * grid.width + mx]);
            parts.push(fitting(
                painter,
                kind,
                painter.clip_rect().width() - 16.0,
                |name| format!("{name} {score}"),
            ));
        }
    }
    let pane = painter.clip_rect();
    Some(galley_with_backdrop(
        painter,
        pane.left_bottom() + Vec2::new(8.0, -8.0),
        Align2::LEFT_BOTTOM,
        packed_readout(painter, &parts, pane.width() - 16.0),
    ))
}

/// The parts on one line, or on as many lines as `max_width` needs, a part never split: at the
/// 240-px film of a small window one line ran under the side column and was cut after "Grad-",
/// losing the map's value.
fn packed_readout(painter: &egui::Painter, parts: &[String], max_width: f32) -> Arc<egui::Galley> {
    let mut lines: Vec<String> = Vec::new();
    for part in parts {
        match lines.last_mut() {
            Some(line)
                if readout_galley(painter, format!("{line}  {part}")).size().x <= max_width =>
            {
                line.push_str("  ");
                line.push_str(part);
            }
            _ => lines.push(part.clone()),
        }
    }
    readout_galley(painter, lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compare_pane_says_why_its_map_is_not_drawn() {
        use MapKind::*;
        assert_eq!(pane_state(GradCam, false, true), Option::None);
        assert_eq!(
            pane_state(GradCam, true, true),
            Some("hidden (out of scope)"),
            "hidden even when computed"
        );
        assert_eq!(
            pane_state(IntegratedGradients, false, false),
            Some("not computed yet")
        );
        assert_eq!(
            pane_state(IntegratedGradients, true, false),
            Some("hidden (out of scope)"),
            "IG waits for Show anyway: the reason is the scope"
        );
        assert_eq!(pane_state(None, true, false), Option::None, "no map named");
    }
}
