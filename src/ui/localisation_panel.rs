//! How well each map points at the boxes of the note on screen: pointing game, energy inside
//! the boxes and IoU of the thresholded map ([`crate::explain::localisation`]), shown in the
//! results panel once the note has boxes.
//!
//! The maps are the ones on screen: they explain the class shown by the analysis (the predicted
//! class unless a target was chosen), at the model's input resolution, exactly as drawn.

use egui::RichText;

use crate::explain::localisation::{localise, LocalisationOptions};

use super::app::ViewerApp;
use super::settings::MapKind;

pub fn localisation_ui(app: &ViewerApp, ui: &mut egui::Ui) {
    let boxes = app.note_boxes();
    if boxes.is_empty() {
        return;
    }
    let Some(study) = app.current.as_ref().and_then(|c| c.study.clone()) else {
        return;
    };
    let options = LocalisationOptions::default();
    ui.add_space(6.0);
    ui.strong(format!(
        "Localisation against {} box{}",
        boxes.len(),
        if boxes.len() == 1 { "" } else { "es" }
    ));
    // Short headers (the note below says what each is): with "energy in boxes" the table was
    // wider than the 300-px side column of a small window, which then slid past the window's
    // edge. Should it still not fit (a larger font), it scrolls sideways instead.
    egui::ScrollArea::horizontal()
        .id_salt("localisation-scroll")
        .show(ui, |ui| localisation_grid(app, ui, &study, boxes, &options));
    // The maps are drawn at the model's input size; a flat map there is chance for "energy".
    let chance = app.engine().and_then(|engine| {
        let input = &engine.model.config.input;
        crate::explain::localisation::uniform_energy_in_boxes(
            (input.width, input.height),
            (study.width, study.height),
            boxes,
        )
    });
    ui.label(
        RichText::new(options.legend_with_chance(chance))
            .small()
            .weak(),
    );
}

fn localisation_grid(
    app: &ViewerApp,
    ui: &mut egui::Ui,
    study: &crate::io::Study,
    boxes: &[crate::notes::ImageBox],
    options: &LocalisationOptions,
) {
    egui::Grid::new("localisation")
        .striped(true)
        .num_columns(4)
        .show(ui, |ui| {
            for (h, hover) in [
                ("map", "the map scored"),
                (
                    "pointing",
                    "the map's maximum within the tolerance of a box: hit or miss",
                ),
                (
                    "energy",
                    "share of the map's positive values inside the boxes",
                ),
                (
                    "IoU",
                    "the map thresholded against the boxes: intersection over union",
                ),
            ] {
                ui.label(RichText::new(h).strong()).on_hover_text(hover);
            }
            ui.end_row();
            for kind in [
                MapKind::GradCam,
                MapKind::IntegratedGradients,
                MapKind::Uncertainty,
            ] {
                ui.label(kind.label());
                match app.map_of(kind) {
                    Some((grid, _, _)) => {
                        let l = localise(&grid, (study.width, study.height), boxes, options);
                        for cell in l.cells() {
                            ui.label(cell);
                        }
                    }
                    None => {
                        ui.label(RichText::new("not computed").weak());
                        ui.label("");
                        ui.label("");
                    }
                }
                ui.end_row();
            }
        });
}
