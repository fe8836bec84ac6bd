//! PNG of the current view (film in its display window with the overlay as drawn) and the
//! analysis report, as JSON or as a page to read (HTML). Both render and write on a worker
//! thread.

use std::path::Path;
use std::sync::Arc;

use image::{Rgb, RgbImage};

use crate::analysis::{Analysis, Prepared, Timings};
use crate::explain::localisation::ImageBox;
use crate::explain::Grid;
use crate::io::{Study, Window};
use crate::overlay::MapScale;
use crate::report::Report;

use super::app::ViewerApp;
use super::render::{contour_segments, map_color, map_scale, shown_grey};
use super::settings::{MapKind, OverlayMode, Settings};
use super::transform::ImageFromModel;

/// The file's stem, and the frame (counted from 1, as on screen) of a multi-frame image: the
/// frames of one file were all offered the same name, each export over the last.
fn stem(app: &ViewerApp) -> String {
    let name = app
        .current
        .as_ref()
        .and_then(|c| c.path.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "study".into());
    match app.current_frames() {
        Some((frames, frame)) if frames > 1 => format!("{name}_frame{}", frame + 1),
        _ => name,
    }
}

pub fn export_png(app: &mut ViewerApp) {
    let Some(current) = app.current.as_ref() else {
        app.set_error("nothing to export: open an image first".into());
        return;
    };
    let Some(study) = current.study.clone() else {
        app.set_error("nothing to export: the image is still loading".into());
        return;
    };
    let view = current.view.clone();
    let gate = super::trust_state::current_gate(app);
    let mut settings = app.settings.clone();
    settings.alpha = crate::trust::gated_opacity(settings.alpha, gate.as_ref());
    // Compare mode shows two panes: the export has both, side by side, as on screen.
    let panes: Vec<Pane> = std::iter::once(app.map)
        .chain(app.compare)
        .map(|kind| Pane::of(app, kind, gate.as_ref()))
        .collect();
    let stem = stem(app);
    let first = &panes[0];
    let (name, mut what) = match panes.get(1) {
        Some(second) => (
            format!(
                "{stem}_{}_vs_{}.png",
                short_name(first.kind),
                short_name(second.kind)
            ),
            format!("side by side: {} | {}", first.what, second.what),
        ),
        None if first.map.is_none() => (format!("{stem}.png"), first.what.clone()),
        None => (
            format!("{stem}_{}.png", short_name(first.kind)),
            first.what.clone(),
        ),
    };
    if let Some((frames, frame)) = app.current_frames().filter(|(frames, _)| *frames > 1) {
        what.push_str(&format!(", frame {} of {frames}", frame + 1));
    }
    // The reviewer's boxes, drawn on screen whatever the map: in the export too (they were
    // only in the report page's pictures).
    let boxes = app.note_boxes().to_vec();
    if !boxes.is_empty() {
        what.push_str(&format!(
            ", {} outlined",
            crate::report_html::count(boxes.len(), "opacity box", "opacity boxes")
        ));
    }
    let render = Box::new(move |path: &Path| {
        let pictures: Vec<RgbImage> = panes
            .into_iter()
            .map(|pane| {
                let mut img = render_view(
                    &study,
                    &view.window,
                    view.invert,
                    pane.map.as_ref(),
                    &settings,
                );
                outline_boxes(&mut img, &boxes);
                img
            })
            .collect();
        let img = side_by_side(pictures);
        // Encoded whole, then written over the old file in one rename: a replaced export is
        // never left half-written (a crash or a full disk keeps the old one).
        let format = image::ImageFormat::from_path(path).map_err(|e| e.to_string())?;
        let bytes = if format == image::ImageFormat::Png {
            // Marked as an export, so a folder review never lists it as a film.
            crate::io::viewer_export::encode_png(&img, &what)?
        } else {
            let mut bytes = std::io::Cursor::new(Vec::new());
            img.write_to(&mut bytes, format)
                .map_err(|e| e.to_string())?;
            bytes.into_inner()
        };
        crate::atomic_file::write_atomic(path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    });
    app.request_save(name, "png", render);
}

/// One pane of the exported view: its map, if drawn, and what the PNG's marker says of it.
struct Pane {
    kind: MapKind,
    map: Option<(Grid, MapScale)>,
    what: String,
}

impl Pane {
    fn of(app: &ViewerApp, kind: MapKind, gate: Option<&crate::trust::Gate>) -> Self {
        // As on screen: no map while an out-of-scope result is hidden, and a dimmed one where
        // the canvas dims it (uncertain, or out of scope and shown anyway). The export drew both
        // at full strength, a tidy heat map on a film the viewer said the model knows nothing
        // of.
        let hidden = super::scope_banner::result_hidden(app);
        let visible = kind != MapKind::None && app.overlay_visible && !hidden;
        let map = if visible { app.map_of(kind) } else { None }.map(|(grid, _, mean)| {
            let scale = map_scale(kind, &grid, mean.as_ref());
            (grid, scale)
        });
        // Which baseline the IG map explains against, as the panel says it: maps from two
        // baselines exported side by side could not be told apart. And one explained against a
        // baseline the model reads as the same class says so in the file too, as the toolbar
        // does on screen.
        let is_ig = kind == MapKind::IntegratedGradients;
        let ig_from = is_ig
            .then(|| {
                let entry = app.current_entry()?;
                let ig = &entry.ig.get(&app.wanted_ig_or_default())?.0;
                Some(format!(" from the {}", ig.baseline_described()))
            })
            .flatten()
            .unwrap_or_default();
        let ig_note = is_ig
            .then(|| super::trust_state::ig_baseline_warning(app))
            .flatten()
            .map(|(class, _)| format!(", IG baseline read as {class}"))
            .unwrap_or_default();
        let what = match (&map, gate) {
            (Some(_), Some(gate)) => format!(
                "film with {} overlay{ig_from}, {}{ig_note}",
                kind.label(),
                gate.short_line()
            ),
            (Some(_), None) => format!("film with {} overlay{ig_from}{ig_note}", kind.label()),
            (None, _) if hidden && kind != MapKind::None => {
                "film as displayed, its map hidden: outside the model's scope".to_string()
            }
            (None, _) => "film as displayed".to_string(),
        };
        Self { kind, map, what }
    }
}

/// `pictures` left to right, a dark gap between them as between the canvas's panes.
fn side_by_side(mut pictures: Vec<RgbImage>) -> RgbImage {
    if pictures.len() <= 1 {
        return pictures.pop().unwrap_or_default();
    }
    let height = pictures.iter().map(RgbImage::height).max().unwrap_or(0);
    let gap = (pictures[0].width() / 100).max(4);
    let width =
        pictures.iter().map(RgbImage::width).sum::<u32>() + gap * (pictures.len() as u32 - 1);
    let mut out = RgbImage::from_pixel(width, height, Rgb([20, 20, 20]));
    let mut x = 0;
    for p in &pictures {
        image::imageops::replace(&mut out, p, i64::from(x), 0);
        x += p.width() + gap;
    }
    out
}

fn short_name(kind: MapKind) -> &'static str {
    match kind {
        MapKind::None => "film",
        MapKind::GradCam => "gradcam",
        MapKind::Uncertainty => "uncertainty",
        MapKind::IntegratedGradients => "ig",
    }
}

/// The film at full resolution with the overlay blended exactly as on screen (same colours,
/// alpha, threshold and contour), so an exported picture never says more than the viewer did.
pub fn render_view(
    study: &Study,
    window: &Window,
    invert: bool,
    map: Option<&(Grid, MapScale)>,
    settings: &Settings,
) -> RgbImage {
    let (w, h) = (study.width, study.height);
    let mut out = RgbImage::new(w as u32, h as u32);
    let full = map.map(|(grid, _)| grid.resized(w, h));
    for (i, pixel) in out.pixels_mut().enumerate() {
        let gray = shown_grey(study, window, invert, i) * 255.0;
        let (color, a) = match (&full, map) {
            (Some(full), Some((_, scale))) => map_color(
                full.values[i],
                *scale,
                settings.colormap.colormap(),
                settings.alpha,
                settings.mode,
                settings.threshold,
            ),
            _ => ([0, 0, 0], 0.0),
        };
        let blend = |c: u8| ((1.0 - a) * gray + a * c as f32).round().clamp(0.0, 255.0) as u8;
        *pixel = Rgb([blend(color[0]), blend(color[1]), blend(color[2])]);
    }
    if let (Some((grid, scale)), OverlayMode::Contour) = (map, settings.mode) {
        let image_from_model = ImageFromModel::new((grid.width, grid.height), (w, h));
        let c = settings
            .colormap
            .colormap()
            .color(settings.threshold.max(0.6));
        let radius = (w.max(h) / 800).max(1) as i64;
        for [a, b] in contour_segments(grid, *scale, settings.threshold) {
            let (a, b) = (image_from_model.apply(a), image_from_model.apply(b));
            let steps = ((b - a).length().ceil() as usize).max(1);
            for s in 0..=steps {
                let p = a + (b - a) * (s as f32 / steps as f32);
                let (x, y) = (p.x as i64, p.y as i64);
                fill(
                    &mut out,
                    (x - radius, x + radius),
                    (y - radius, y + radius),
                    |_| Rgb(c),
                );
            }
        }
    }
    out
}

/// `boxes` (film pixels) outlined as the canvas draws them: the box colour over a dark halo,
/// the strokes widened with the film so that they read alike at any size.
pub fn outline_boxes(img: &mut RgbImage, boxes: &[ImageBox]) {
    let side = img.width().max(img.height()) as i64;
    let core = (side / 1000).max(1);
    let halo = 2 * core;
    let [r, g, b, _] = super::box_tool::BOX_COLOR.to_array();
    for bx in boxes {
        // Film pixels: the box's edges on the pixels its sides run through.
        let (left, top) = (bx.x.round() as i64, bx.y.round() as i64);
        let (right, bottom) = (
            (bx.x + bx.width).round() as i64,
            (bx.y + bx.height).round() as i64,
        );
        // The halo first (the film darkened to 40 %), then the colour inside it.
        for (radius, core_pass) in [(halo, false), (core, true)] {
            let colour = |p: Rgb<u8>| {
                if core_pass {
                    Rgb([r, g, b])
                } else {
                    Rgb(p.0.map(|c| (f32::from(c) * 0.4) as u8))
                }
            };
            // Left and right edges, each a band `radius` wide on either side, then the top and
            // bottom between them (the halo darkens each pixel once).
            let (inner_left, inner_right) = (left + radius + 1, right - radius - 1);
            for (x0, x1, y0, y1) in [
                (left - radius, left + radius, top - radius, bottom + radius),
                (
                    right - radius,
                    right + radius,
                    top - radius,
                    bottom + radius,
                ),
                (inner_left, inner_right, top - radius, top + radius),
                (inner_left, inner_right, bottom - radius, bottom + radius),
            ] {
                fill(img, (x0, x1), (y0, y1), colour);
            }
        }
    }
}

/// Applies `colour` to the pixels of the inclusive ranges inside `img`.
fn fill(
    img: &mut RgbImage,
    (x0, x1): (i64, i64),
    (y0, y1): (i64, i64),
    colour: impl Fn(Rgb<u8>) -> Rgb<u8>,
) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in y0.max(0)..=y1.min(h - 1) {
        for x in x0.max(0)..=x1.min(w - 1) {
            let p = img.get_pixel_mut(x as u32, y as u32);
            *p = colour(*p);
        }
    }
}

/// What Export report… writes: `report.json` for tools, or the page of
/// [`crate::report_html`] for people. The name the user gives decides in the end (`.html` or
/// `.htm` → the page), so either dialog can switch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Html,
}

impl ReportFormat {
    fn extension(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
        }
    }

    fn of_path(path: &Path) -> Self {
        let html = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
        if html {
            ReportFormat::Html
        } else {
            ReportFormat::Json
        }
    }
}

pub fn export_report(app: &mut ViewerApp, format: ReportFormat) {
    let (Some(engine), Some(entry)) = (app.engine().cloned(), app.current_entry()) else {
        app.set_error("no analysis to export yet".into());
        return;
    };
    let (Some(prepared), Some(gradcam), Some(uncertainty)) = (
        entry.prepared.clone(),
        entry.gradcam.clone(),
        entry.uncertainty.clone(),
    ) else {
        app.set_error(
            "the report needs the prediction, Grad-CAM and uncertainty: wait for them".into(),
        );
        return;
    };
    let ig = entry.ig.get(&app.wanted_ig_or_default()).cloned();
    // The stages' own times, the checks' included: the viewer runs them as they are asked for.
    // report.json's timings_ms.total, scope, faithfulness and sanity (and the page's "analysed
    // in") were 0 before.
    let (faithfulness, sanity) = super::trust_state::current_trust_ms(app);
    let mut timings = Timings {
        faithfulness,
        sanity,
        ..entry.timings.clone()
    };
    timings.total = timings.sum_of_stages();
    let trust = super::trust_state::current_trust(app);
    // The page's pictures are dimmed as the canvas dims them (the gating setting included).
    let gate = super::trust_state::current_gate(app);
    let Some(study) = app.current.as_ref().and_then(|c| c.study.clone()) else {
        return;
    };
    let include_identifiers = app.export_identifiers;
    // The note as it stands in the pane (saved or not), with the folder's label.
    let note = app.current.as_ref().and_then(|c| {
        let draft = app.notes.draft.as_ref().filter(|d| d.path == c.path)?;
        Some((draft.note.clone(), app.folder_truth(&c.path)))
    });
    let name = format!("{}_report.{}", stem(app), format.extension());
    let render = Box::new(move |path: &Path| {
        let analysis = Analysis {
            prepared: clone_prepared(&prepared),
            gradcam: gradcam.0.clone(),
            gradcam_zones: gradcam.1.clone(),
            uncertainty: uncertainty.0.clone(),
            uncertainty_zones: uncertainty.1.clone(),
            ig: ig.as_ref().map(|i| i.0.clone()),
            ig_zones: ig.as_ref().map(|i| i.1.clone()),
            timings,
            device: engine.device_name().to_string(),
            trust,
        };
        // Its boxes scored on these maps, the ones the results panel scores.
        let review = note.as_ref().and_then(|(note, folder_truth)| {
            crate::report::ReviewReport::of_analysis(
                note,
                *folder_truth,
                &engine.model.config,
                &analysis,
                (study.width, study.height),
            )
        });
        let report =
            Report::new(&study, &analysis, &engine.model, include_identifiers).with_review(review);
        let bytes = match ReportFormat::of_path(path) {
            ReportFormat::Json => serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?,
            ReportFormat::Html => {
                let overlays = crate::overlay::study_overlays(&study, &analysis, gate.as_ref());
                crate::report_html::page(&study, &report, &overlays)?.into_bytes()
            }
        };
        crate::atomic_file::write_atomic(path, &bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    });
    app.request_save(name, format.extension(), render);
}

/// `Prepared` holds tensors (reference-counted) and is not `Clone`; a report needs it owned.
fn clone_prepared(p: &Arc<Prepared>) -> Prepared {
    Prepared {
        gray: p.gray.clone(),
        input: p.input.clone(),
        features: p.features.clone(),
        prediction: p.prediction.clone(),
        image_size: p.image_size,
        scope: p.scope.clone(),
        scope_ms: p.scope_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The box's edges in the box colour, a darkened halo either side, the film inside and
    /// outside untouched, and the corners darkened once like the sides.
    #[test]
    fn a_box_is_outlined_on_its_edges_with_a_halo() {
        let grey = Rgb([200, 200, 200]);
        let mut img = RgbImage::from_pixel(100, 80, grey);
        outline_boxes(&mut img, &[ImageBox::new(20.0, 10.0, 40.0, 30.0)]);
        let [r, g, b, _] = super::super::box_tool::BOX_COLOR.to_array();
        let colour = Rgb([r, g, b]);
        let halo = Rgb([80, 80, 80]);
        // Core: one pixel either side of each edge on a film under 1,000 px.
        for (x, y) in [
            (20, 25),
            (60, 25),
            (40, 10),
            (40, 40),
            (19, 25),
            (61, 25),
            (20, 10),
        ] {
            assert_eq!(*img.get_pixel(x, y), colour, "({x}, {y})");
        }
        // Halo: the next pixel out and in.
        for (x, y) in [
            (18, 25),
            (22, 25),
            (62, 25),
            (40, 8),
            (40, 12),
            (40, 42),
            (18, 8),
        ] {
            assert_eq!(*img.get_pixel(x, y), halo, "({x}, {y})");
        }
        for (x, y) in [
            (17, 25),
            (23, 25),
            (40, 25),
            (40, 7),
            (0, 0),
            (99, 79),
            (63, 25),
        ] {
            assert_eq!(*img.get_pixel(x, y), grey, "({x}, {y})");
        }
        // A box past the film's edge is clipped, not a panic.
        outline_boxes(&mut img, &[ImageBox::new(90.0, 70.0, 40.0, 40.0)]);
        assert_eq!(*img.get_pixel(90, 75), colour);
    }
}
