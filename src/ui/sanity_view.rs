//! The model-randomisation sanity check, drawn: the real maps beside the maps of the cascading
//! randomised models (head, then layer4, …), each with its Spearman ρ and SSIM to the real map,
//! and the "not sensitive to the model" verdict. A window opened by the button or `K`.

use egui::{Color32, ColorImage, RichText, TextureOptions};

use crate::explain::sanity::{Sanity, FLAG_STAGE};
use crate::explain::similarity::min_max_normalised;
use crate::explain::Grid;
use crate::overlay::Colormap;

use super::trust_state::TrustState;

/// Side of a thumbnail in pixels.
const THUMB: usize = 96;

/// A min–max scaled map in the inferno colormap (IG as |IG|, as compared).
fn thumbnail(map: &Grid, absolute: bool) -> ColorImage {
    let map = if absolute {
        Grid::new(
            map.width,
            map.height,
            map.values.iter().map(|v| v.abs()).collect(),
        )
    } else {
        map.clone()
    };
    let g = min_max_normalised(&map.resized(THUMB, THUMB));
    let pixels: Vec<Color32> = g
        .values
        .iter()
        .map(|v| {
            let [r, gg, b] = Colormap::Inferno.color(*v);
            Color32::from_rgb(r, gg, b)
        })
        .collect();
    ColorImage::new([THUMB, THUMB], pixels)
}

/// `real`: the real model's Grad-CAM and IG maps, for the first column. `hidden`: the film is
/// out of scope and its result hidden ([`super::scope_banner`]); the check waits for "Show
/// anyway".
pub fn sanity_window_ui(
    ctx: &egui::Context,
    state: &mut TrustState,
    sanity: Option<&Sanity>,
    real: (Option<&Grid>, Option<&Grid>),
    running: Option<(usize, usize)>,
    hidden: bool,
) {
    let mut open = state.sanity_open;
    egui::Window::new("Sanity check: model randomisation")
        .open(&mut open)
        .resizable(true)
        .default_width(760.0)
        .show(ctx, |ui| {
            ui.label(
                RichText::new(
                    "Weights re-initialised from the top (head, then layer4, … down to the stem), cumulatively, \
                     on a copy of the model; maps recomputed (Adebayo et al. 2018). A map that \
                     explains the model must change. Flag: SSIM > 0.5 after head + layer4.",
                )
                .small(),
            );
            if let Some((done, total)) = running {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("randomised stages computed: {done}/{total}"));
                });
            }
            let Some(sanity) = sanity else {
                if hidden {
                    ui.label(RichText::new(
                        "The film is outside the model's scope and its result hidden: the check \
                         runs, and its maps show, after Show anyway (S).",
                    ));
                } else if running.is_none() {
                    ui.label(RichText::new("not run for this image yet").weak());
                }
                return;
            };
            let identity = sanity as *const Sanity as usize;
            if state
                .thumbnails
                .as_ref()
                .is_none_or(|(id, _)| *id != identity)
            {
                let mut textures = Vec::new();
                let mut add = |name: String, image: ColorImage| {
                    textures.push(ctx.load_texture(name, image, TextureOptions::LINEAR));
                };
                if let Some(g) = real.0 {
                    add("sanity-real-gradcam".into(), thumbnail(g, false));
                }
                for (i, s) in sanity.stages.iter().enumerate() {
                    add(format!("sanity-gc-{i}"), thumbnail(&s.gradcam_map, false));
                }
                if let Some(g) = real.1 {
                    add("sanity-real-ig".into(), thumbnail(g, true));
                }
                for (i, s) in sanity.stages.iter().enumerate() {
                    if let Some(m) = &s.ig_map {
                        add(format!("sanity-ig-{i}"), thumbnail(m, true));
                    }
                }
                state.thumbnails = Some((identity, textures));
            }
            let Some((_, textures)) = &state.thumbnails else {
                return;
            };
            let mut tex = textures.iter();
            let size = egui::vec2(THUMB as f32, THUMB as f32);
            egui::ScrollArea::horizontal().show(ui, |ui| {
                egui::Grid::new("sanity_grid")
                    .spacing([6.0, 4.0])
                    .show(ui, |ui| {
                        ui.label("");
                        ui.label(RichText::new("real model").strong());
                        for s in &sanity.stages {
                            ui.label(RichText::new(format!("+ {}", s.randomised)).strong());
                        }
                        ui.end_row();
                        let rows: [(&str, bool); 2] = [
                            ("Grad-CAM", real.0.is_some()),
                            ("|IG|", real.1.is_some() && sanity.stages.iter().any(|s| s.ig.is_some())),
                        ];
                        for (row, (name, present)) in rows.iter().enumerate() {
                            if !present {
                                continue;
                            }
                            let verdict = if row == 0 {
                                sanity.gradcam()
                            } else {
                                sanity.ig()
                            };
                            ui.vertical(|ui| {
                                ui.strong(*name);
                                if let Some(v) = &verdict {
                                    let (text, color) = if v.not_sensitive_to_model {
                                        ("not sensitive\nto the model", Color32::from_rgb(230, 160, 40))
                                    } else {
                                        ("changes with\nthe model", Color32::from_rgb(120, 200, 120))
                                    };
                                    ui.label(RichText::new(text).color(color).small());
                                }
                            });
                            if let Some(t) = tex.next() {
                                ui.image((t.id(), size));
                            }
                            for (i, s) in sanity.stages.iter().enumerate() {
                                let sim = if row == 0 { Some(&s.gradcam) } else { s.ig.as_ref() };
                                ui.vertical(|ui| {
                                    if let Some(t) = tex.next() {
                                        ui.image((t.id(), size));
                                    }
                                    if let Some(sim) = sim {
                                        let rho = sim
                                            .spearman
                                            .map_or("ρ –".to_string(), |r| format!("ρ {r:.2}"));
                                        let text = format!("SSIM {:.2} · {rho}", sim.ssim);
                                        let t = if i == FLAG_STAGE {
                                            RichText::new(text).small().strong()
                                        } else {
                                            RichText::new(text).small()
                                        };
                                        ui.label(t);
                                    }
                                });
                            }
                            ui.end_row();
                        }
                    });
            });
        });
    state.sanity_open = open;
}
