//! "Can this map be trusted?": the deletion and insertion curves of the map on screen against
//! random orderings (egui_plot), the one-line verdict, the agreement between the maps, and the
//! sanity-check button. Reads plain results; returns what the user asked for.

use egui::{Color32, RichText};
use egui_plot::{Line, LineStyle, Plot, PlotPoints};

use crate::explain::agreement::{Agreement, Method};
use crate::explain::faithfulness::{Curves, MapFaithfulness};
use crate::explain::sanity::Sanity;

use super::trust_state::TrustJobKind;

/// What the panel needs, borrowed from the app state.
pub struct FaithfulnessView<'a> {
    pub method: Method,
    pub map: Option<&'a MapFaithfulness>,
    pub random: Option<&'a Curves>,
    pub describe: Option<String>,
    pub agreement: Option<&'a Agreement>,
    pub sanity: Option<&'a Sanity>,
    /// The running job of this image: kind, done, total.
    pub running: Option<(TrustJobKind, usize, usize)>,
    pub error: Option<&'a str>,
    pub cancelled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaithfulnessAction {
    Cancel,
    Run,
    SanityCheck,
}

const MAP_COLOR: Color32 = Color32::from_rgb(230, 90, 60);
const RANDOM_COLOR: Color32 = Color32::from_rgb(150, 150, 150);
const INSERT_COLOR: Color32 = Color32::from_rgb(80, 160, 230);

fn points(curve: &[f32]) -> PlotPoints<'static> {
    let s = curve.len().saturating_sub(1).max(1) as f64;
    curve
        .iter()
        .enumerate()
        .map(|(k, v)| [k as f64 / s, *v as f64])
        .collect()
}

/// A short stroke as the plot draws the curve, then its name: one widget, so a wrapping row
/// never parts the stroke from its name or breaks the name.
fn legend_entry(ui: &mut egui::Ui, color: Color32, dashed: bool, text: &str) {
    const STROKE_WIDTH: f32 = 18.0;
    let gap = ui.spacing().item_spacing.x / 2.0;
    let font = egui::TextStyle::Small.resolve(ui.style());
    let galley = ui
        .painter()
        .layout_no_wrap(text.to_string(), font, ui.visuals().text_color());
    let size = egui::vec2(STROKE_WIDTH + gap + galley.size().x, galley.size().y);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, ui.is_enabled(), text));
    let y = rect.center().y;
    let (a, b) = (
        egui::pos2(rect.left(), y),
        egui::pos2(rect.left() + STROKE_WIDTH, y),
    );
    let stroke = egui::Stroke::new(2.0, color);
    if dashed {
        ui.painter()
            .extend(egui::Shape::dashed_line(&[a, b], stroke, 4.0, 3.0));
    } else {
        ui.painter().line_segment([a, b], stroke);
    }
    let text_pos = egui::pos2(rect.left() + STROKE_WIDTH + gap, rect.top());
    ui.painter()
        .galley(text_pos, galley, ui.visuals().text_color());
}

pub fn faithfulness_ui(ui: &mut egui::Ui, view: &FaithfulnessView) -> Option<FaithfulnessAction> {
    let mut action = None;
    ui.strong(format!("Can the {} map be trusted?", view.method.label()));
    if let Some(a) = view.agreement.and_then(Agreement::summary) {
        ui.label(a);
    }
    match (view.map, view.running) {
        (Some(m), _) => {
            ui.label(RichText::new(m.summary(view.method.label())).strong());
        }
        (None, Some((TrustJobKind::Faithfulness, done, total))) => {
            ui.horizontal_wrapped(|ui| {
                ui.spinner();
                ui.label(format!("faithfulness: {done}/{total} perturbed images"));
                if ui.small_button("Cancel").clicked() {
                    action = Some(FaithfulnessAction::Cancel);
                }
            });
        }
        (None, _) if view.cancelled || view.error.is_some() => {
            if let Some(e) = view.error {
                ui.label(RichText::new(format!("faithfulness failed: {e}")).color(Color32::RED));
            }
            if ui.button("Run faithfulness check").clicked() {
                action = Some(FaithfulnessAction::Run);
            }
        }
        (None, _) => {
            ui.label(RichText::new("faithfulness: after the maps are done").weak());
        }
    }
    if let (Some(m), Some(r)) = (view.map, view.random) {
        Plot::new("faithfulness_curves")
            .height(150.0)
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .x_axis_label("fraction of cells (most relevant first)")
            .y_axis_label("P(class)")
            .show(ui, |plot| {
                plot.line(
                    Line::new("deletion: map", points(&m.curves.deletion))
                        .color(MAP_COLOR)
                        .width(2.0),
                );
                plot.line(
                    Line::new("deletion: random", points(&r.deletion))
                        .color(RANDOM_COLOR)
                        .width(2.0),
                );
                if !m.curves.insertion.is_empty() {
                    plot.line(
                        Line::new("insertion: map", points(&m.curves.insertion))
                            .color(INSERT_COLOR)
                            .width(2.0)
                            .style(LineStyle::dashed_loose()),
                    );
                    plot.line(
                        Line::new("insertion: random", points(&r.insertion))
                            .color(RANDOM_COLOR)
                            .style(LineStyle::dashed_loose()),
                    );
                }
            });
        // The key goes under the plot, not in it: in a plot this small, egui_plot's legend
        // covered most of the data area, in any corner, and a faithful map's deletion curve
        // falls through the bottom left, where it sat.
        ui.horizontal_wrapped(|ui| {
            legend_entry(ui, MAP_COLOR, false, "deletion: map");
            legend_entry(ui, RANDOM_COLOR, false, "deletion: random");
            if !m.curves.insertion.is_empty() {
                legend_entry(ui, INSERT_COLOR, true, "insertion: map");
                legend_entry(ui, RANDOM_COLOR, true, "insertion: random");
            }
        });
        let ins = m
            .curves
            .insertion_auc
            .map_or(String::new(), |a| format!(", insertion AUC {a:.2}"));
        ui.label(
            RichText::new(format!(
                "deletion AUC {:.2} (random {:.2}){ins}",
                m.curves.deletion_auc, r.deletion_auc
            ))
            .small(),
        );
        if let Some(d) = &view.describe {
            ui.label(RichText::new(d).small().weak());
        }
    }
    ui.horizontal_wrapped(|ui| {
        let running_sanity = matches!(view.running, Some((TrustJobKind::Sanity, _, _)));
        if running_sanity {
            ui.spinner();
            if let Some((_, done, total)) = view.running {
                ui.label(format!("sanity check: stage {done}/{total}"));
            }
            if ui.small_button("Cancel").clicked() {
                action = Some(FaithfulnessAction::Cancel);
            }
        } else if ui
            .button("Sanity check")
            .on_hover_text("K: randomise the model layer by layer and recompute the maps")
            .clicked()
        {
            action = Some(FaithfulnessAction::SanityCheck);
        }
    });
    if let Some(s) = view.sanity {
        for line in s.summary() {
            let color = if line.contains("NOT SENSITIVE") {
                Color32::from_rgb(230, 160, 40)
            } else {
                ui.visuals().text_color()
            };
            ui.label(RichText::new(line).color(color).small());
        }
    }
    action
}
