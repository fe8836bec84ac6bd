//! The scope banner above the result: when the film is outside the model's scope
//! ([`crate::scope`]) the label, the probability and the maps stay hidden until the user clicks
//! "Show anyway"; then they are shown dimmed, with the banner kept.

use egui::{Color32, RichText, Stroke};

use crate::scope::ScopeCheck;

use super::app::{Action, ViewerApp};

/// Banner colour: louder than the UNCERTAIN frame, because nothing below it is meaningful.
pub const OUT_OF_SCOPE: Color32 = Color32::from_rgb(255, 105, 70);
const WARN: Color32 = Color32::from_rgb(255, 170, 60);
/// Opacity of a result shown anyway.
pub const DIMMED: f32 = 0.45;

/// The scope verdict of the image on screen, once its prediction is in.
pub fn current_scope(app: &ViewerApp) -> Option<&ScopeCheck> {
    app.current_entry()?.prepared.as_ref().map(|p| &p.scope)
}

/// The user clicked "Show anyway" for the image on screen.
pub fn shown_anyway(app: &ViewerApp) -> bool {
    app.current
        .as_ref()
        .is_some_and(|c| app.shown_anyway(&c.path))
}

/// Whether the label, probability and maps of the image on screen are hidden. The canvas and the
/// result panel both ask this; the overlay gating of other flags can combine with it.
pub fn result_hidden(app: &ViewerApp) -> bool {
    current_scope(app).is_some_and(|s| !s.in_scope) && !shown_anyway(app)
}

/// The banner (out of scope) or the warning frame (in scope with warnings); returns what its
/// button asks for.
pub fn scope_banner_ui(ui: &mut egui::Ui, scope: &ScopeCheck, shown: bool) -> Option<Action> {
    let mut action = None;
    if !scope.in_scope {
        egui::Frame::new()
            .fill(OUT_OF_SCOPE.gamma_multiply(0.18))
            .stroke(Stroke::new(2.0, OUT_OF_SCOPE))
            .inner_margin(8.0)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(scope.headline())
                        .color(OUT_OF_SCOPE)
                        .strong()
                        .size(16.0),
                );
                for r in scope.reasons.iter().skip(1) {
                    ui.label(RichText::new(format!("also: {r}")).color(OUT_OF_SCOPE));
                }
                ui.label(RichText::new(crate::scope::OUTSIDE_SCOPE_MEANING).small());
                let text = if shown {
                    "Hide the result"
                } else {
                    "Show anyway"
                };
                if ui.button(text).on_hover_text("S").clicked() {
                    action = Some(Action::ShowOutOfScope(!shown));
                }
            });
    }
    if let Some(note) = scope.pixels_only_note() {
        ui.label(RichText::new(note).small().weak());
    }
    if !scope.warnings.is_empty() {
        egui::Frame::new()
            .stroke(Stroke::new(1.5, WARN))
            .inner_margin(6.0)
            .show(ui, |ui| {
                for w in &scope.warnings {
                    ui.label(RichText::new(format!("Scope: {w}")).color(WARN));
                }
            });
    }
    action
}

/// The banner for the image on screen. Returns whether the rest of the result must stay hidden,
/// and the action of the banner's button for the caller to apply; dims `ui` when the user chose
/// to see an out-of-scope result.
pub fn results_gate_ui(
    ui: &mut egui::Ui,
    scope: &ScopeCheck,
    shown: bool,
) -> (bool, Option<Action>) {
    let action = scope_banner_ui(ui, scope, shown);
    if scope.in_scope {
        return (false, action);
    }
    if shown {
        ui.multiply_opacity(DIMMED);
    }
    (!shown, action)
}
