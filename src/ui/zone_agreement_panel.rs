//! Zones against maps across the reviewed folder: for the studies of the study list that have a
//! note, how often the reviewer's implicated zones (ticked, or overlapped by a box) contain each
//! map's top zone ([`crate::notes::zone_agreement`]); and recording, with each edit of a note,
//! the facts that comparison needs (each map's top zone and the film's size), and, for a note that
//! lacks them, as soon as its film is opened and its maps computed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use egui::RichText;

use crate::explain::zones::ZoneScore;
use crate::notes::zone_agreement::{zone_agreement, ZoneAgreementRow};
use crate::notes::{Note, Saliency, Zone};

use super::app::ViewerApp;
use super::panels::fitted_label;

/// The zone with the highest mean (ties: the first in zone order).
pub fn top_zone(zones: &[ZoneScore]) -> Option<Zone> {
    let mut best: Option<&ZoneScore> = None;
    for z in zones {
        if z.mean.is_finite() && best.is_none_or(|b| z.mean > b.mean) {
            best = Some(z);
        }
    }
    Zone::parse(best?.name).ok()
}

impl ViewerApp {
    /// Each map's top zone for the study on screen, from the analysis already computed.
    pub fn live_top_zones(&self) -> BTreeMap<Saliency, Zone> {
        let mut out = BTreeMap::new();
        let Some(entry) = self.current_entry() else {
            return out;
        };
        let maps = [
            (Saliency::GradCam, entry.gradcam.as_ref().map(|g| &g.1)),
            (
                Saliency::Uncertainty,
                entry.uncertainty.as_ref().map(|u| &u.1),
            ),
            (
                Saliency::IntegratedGradients,
                entry.ig.get(&self.wanted_ig_or_default()).map(|i| &i.1),
            ),
        ];
        for (kind, zones) in maps {
            if let Some(z) = zones.and_then(|z| top_zone(z)) {
                out.insert(kind, z);
            }
        }
        out
    }

    /// Called with every edit of the note on screen: what the maps showed and the film's size,
    /// kept with the note (like the prediction) for zone agreement and box-to-zone mapping.
    pub(super) fn record_map_facts(&mut self) {
        let Some((path, size)) = self.film_on_screen() else {
            return;
        };
        let tops = self.live_top_zones();
        let Some(d) = self.notes.draft.as_mut().filter(|d| d.path == path) else {
            return;
        };
        if size.is_some() {
            d.note.image_size = size;
        }
        d.note.map_top_zones.extend(tops);
    }

    /// Each frame: a note that implicates zones (ticked, or boxes) but lacks a map's top zone,
    /// as every note made by importing labels does, takes it once its film is open and that map
    /// computed (hidden or not, as an edit records it), without waiting for an edit; so Zones vs
    /// maps counts each labelled study the reviewer has opened, not only those touched since.
    /// Only missing tops are added (what an edit recorded stays), and the reviewer's name is left
    /// alone: nobody edited the note.
    pub(super) fn fill_missing_map_facts(&mut self, now: Instant) {
        let Some((path, Some(size))) = self.film_on_screen() else {
            return;
        };
        let tops = self.live_top_zones();
        let Some(d) = self.notes.draft.as_mut().filter(|d| d.path == path) else {
            return;
        };
        // Most drafts are empty notes of unlabelled studies: nothing to implicate, nothing to fill.
        if d.note.zones.is_empty() && d.note.boxes.is_empty() {
            return;
        }
        let missing: Vec<(Saliency, Zone)> = tops
            .into_iter()
            .filter(|(map, _)| !d.note.map_top_zones.contains_key(map))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut note = d.note.clone();
        note.image_size.get_or_insert(size);
        if note.implicated_zones().is_empty() {
            return;
        }
        note.map_top_zones.extend(missing);
        d.note = note;
        d.edited(now);
    }

    /// The film on screen, once loaded: its path and, where it has pixels, its size (what a note
    /// keeps to map its boxes to zones).
    fn film_on_screen(&self) -> Option<(PathBuf, Option<(u32, u32)>)> {
        let c = self.current.as_ref()?;
        let s = c.study.as_ref()?;
        let size = (s.width > 0 && s.height > 0).then_some((s.width as u32, s.height as u32));
        Some((c.path.clone(), size))
    }

    /// The notes of the studies in the study list.
    fn reviewed_notes(&self) -> Vec<&Note> {
        let Some(review) = self.review.as_ref() else {
            return Vec::new();
        };
        review
            .rows
            .iter()
            .filter_map(|r| self.notes.all().get(r.id.as_ref()?))
            .collect()
    }
}

/// The table, folded away by default (it walks every note of the folder).
pub fn zone_agreement_ui(app: &ViewerApp, ui: &mut egui::Ui) {
    egui::CollapsingHeader::new("Zones vs maps")
        .default_open(false)
        .show(ui, |ui| {
            let rows = zone_agreement(app.reviewed_notes());
            table_ui(ui, &rows);
        });
}

fn table_ui(ui: &mut egui::Ui, rows: &[ZoneAgreementRow]) {
    ui.label(
        RichText::new(
            "Studies with a note: how often the implicated zones (ticked or under a box) \
             contain the map's top zone, with its 95 % interval. Chance: a random top zone.",
        )
        .small()
        .weak(),
    );
    let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.0} %", 100.0 * v));
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let label = Saliency::parse(r.map).map_or(r.map, Saliency::label);
            [
                label.to_string(),
                format!("{} of {}", r.hits, r.studies),
                pct(r.rate),
                crate::notes::zone_agreement::interval_text(r.rate_ci95),
                pct(r.chance),
            ]
        })
        .collect();
    const HEADERS: [&str; 5] = ["map", "top zone implicated", "rate", "95 % CI", "chance"];
    let mut columns: Vec<Vec<String>> = (0..5)
        .map(|i| {
            std::iter::once(HEADERS[i].to_string())
                .chain(cells.iter().map(|c| c[i].clone()))
                .collect()
        })
        .collect();
    // "Uncertainty (MC-dropout CAM std)" and "top zone implicated" ran under the film in the
    // 800-px window's side column: where the table does not fit, the maps get short names; where
    // it still does not, the header one word too, the full ones on hover; narrower still, the
    // table scrolls sideways.
    let short_maps = !super::panels::grid_fits(ui, &columns);
    let short_maps_of = |r: &ZoneAgreementRow| Saliency::parse(r.map).ok().filter(|_| short_maps);
    for (cell, r) in columns[0][1..].iter_mut().zip(rows) {
        if let Some(kind) = short_maps_of(r) {
            *cell = short_name(kind).to_string();
        }
    }
    let short_header = short_maps && !super::panels::grid_fits(ui, &columns);
    egui::ScrollArea::horizontal()
        .id_salt("zone-agreement-sideways")
        .show(ui, |ui| {
            egui::Grid::new("zone-agreement")
                .striped(true)
                .num_columns(5)
                .show(ui, |ui| {
                    for h in HEADERS {
                        let hits = (short_header && h == HEADERS[1]).then_some("hits");
                        fitted_label(ui, h, hits, true);
                    }
                    ui.end_row();
                    for (r, c) in rows.iter().zip(&cells) {
                        fitted_label(ui, &c[0], short_maps_of(r).map(short_name), false);
                        let count = ui.label(&c[1]);
                        if r.studies == 0 {
                            count.on_hover_text(NO_STUDIES_WHY);
                        }
                        for text in &c[2..] {
                            ui.label(text);
                        }
                        ui.end_row();
                    }
                });
        });
}

/// Why a map's row reads "0 of 0" (IG's, typically, on out-of-scope films).
const NO_STUDIES_WHY: &str = "No note that implicates zones has this map's top zone yet. A note \
    takes it when its film is opened and the map computed: Integrated Gradients runs while \
    \"Run Integrated Gradients automatically\" is on, and on a film outside the model's scope \
    only after Show anyway.";

/// A map's name where the full one does not fit.
fn short_name(kind: Saliency) -> &'static str {
    match kind {
        Saliency::GradCam => "Grad-CAM",
        Saliency::IntegratedGradients => "IG",
        Saliency::Uncertainty => "Uncertainty",
    }
}
