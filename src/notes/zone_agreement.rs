//! Zones against maps across reviewed studies: how often the zones a reviewer implicated contain
//! each map's top zone.
//!
//! For each map `m` and each note that has (a) at least one implicated zone — the zones ticked
//! on the schematic together with the zones the note's boxes overlap
//! ([`Note::implicated_zones`]) — and (b) a recorded top zone of `m` (the zone with the highest
//! mean of the map when the note was saved): a hit when the top zone is implicated.
//! `rate = hits / studies`. A map that points at random zones would score, on average,
//! `chance = mean(k / 6)` where `k` is the number of zones implicated in each note; the table
//! reports it alongside, because a reviewer who ticks five zones agrees with almost anything.

use serde::Serialize;

use super::model::{Note, Saliency};

/// One map's line of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZoneAgreementRow {
    /// `gradcam`, `ig` or `uncertainty`.
    pub map: &'static str,
    /// Notes with implicated zones and a recorded top zone for this map.
    pub studies: usize,
    /// Of those, how many implicate the map's top zone.
    pub hits: usize,
    /// `hits / studies`; `None` without studies.
    pub rate: Option<f64>,
    /// 95 % Wilson interval of `rate`: with a dozen notes, 58 % against a chance of 33 % may be
    /// luck, and the table should say so.
    pub rate_ci95: Option<[f64; 2]>,
    /// Expected rate of a map whose top zone is uniformly random over the six zones.
    pub chance: Option<f64>,
}

/// The table over `notes` (one row per map, in [`Saliency::ALL`] order).
pub fn zone_agreement<'a>(notes: impl IntoIterator<Item = &'a Note>) -> Vec<ZoneAgreementRow> {
    let notes: Vec<&Note> = notes.into_iter().collect();
    Saliency::ALL
        .iter()
        .map(|&map| {
            let (mut studies, mut hits, mut chance_sum) = (0usize, 0usize, 0f64);
            for n in &notes {
                let Some(top) = n.map_top_zones.get(&map) else {
                    continue;
                };
                let implicated = n.implicated_zones();
                if implicated.is_empty() {
                    continue;
                }
                studies += 1;
                hits += usize::from(implicated.contains(top));
                chance_sum += implicated.len() as f64 / super::Zone::ALL.len() as f64;
            }
            ZoneAgreementRow {
                map: map.as_str(),
                studies,
                hits,
                rate: (studies > 0).then(|| hits as f64 / studies as f64),
                rate_ci95: crate::evaluation::wilson_interval(hits, studies),
                chance: (studies > 0).then(|| chance_sum / studies as f64),
            }
        })
        .collect()
}

/// The table as plain text (CLI output, logs).
pub fn format_table(rows: &[ZoneAgreementRow]) -> String {
    let mut out =
        String::from("map          studies  top zone implicated  rate   chance  rate 95 % CI\n");
    for r in rows {
        let pct = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.0} %", 100.0 * v));
        out.push_str(&format!(
            "{:<12} {:>7}  {:>20}  {:>5}  {:>6}  {}\n",
            r.map,
            r.studies,
            r.hits,
            pct(r.rate),
            pct(r.chance),
            interval_text(r.rate_ci95)
        ));
    }
    out
}

/// "32–81 %", or "—" without studies.
pub fn interval_text(interval: Option<[f64; 2]>) -> String {
    interval.map_or("—".to_string(), |[lo, hi]| {
        format!("{:.0}–{:.0} %", 100.0 * lo, 100.0 * hi)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::{ImageBox, StudyId, Zone};

    #[test]
    fn hits_count_zones_and_boxes_and_chance_counts_zones() {
        let mut a = Note::new(StudyId::sha256(&[1; 32]));
        a.zones.insert(Zone::RightLower);
        a.map_top_zones.insert(Saliency::GradCam, Zone::RightLower);
        a.map_top_zones
            .insert(Saliency::IntegratedGradients, Zone::LeftUpper);
        // b implicates a zone only through a box: left lower third of a 100 × 90 film.
        let mut b = Note::new(StudyId::sha256(&[2; 32]));
        b.image_size = Some((100, 90));
        b.boxes.push(ImageBox::new(60.0, 70.0, 10.0, 10.0));
        b.map_top_zones.insert(Saliency::GradCam, Zone::LeftLower);
        // c has no implicated zone: not counted.
        let mut c = Note::new(StudyId::sha256(&[3; 32]));
        c.map_top_zones.insert(Saliency::GradCam, Zone::LeftLower);
        let rows = zone_agreement([&a, &b, &c]);
        assert_eq!(rows[0].map, "gradcam");
        assert_eq!((rows[0].studies, rows[0].hits), (2, 2));
        assert_eq!(rows[0].rate, Some(1.0));
        // Wilson at z = 1.96 for 2 of 2, by hand: [2/(2 + z²), 1] = [0.3424, 1].
        let [lo, hi] = rows[0].rate_ci95.unwrap();
        assert!((lo - 0.3424).abs() < 1e-4 && hi == 1.0, "{lo} {hi}");
        assert_eq!(interval_text(rows[0].rate_ci95), "34–100 %");
        assert_eq!(interval_text(rows[2].rate_ci95), "—");
        assert!((rows[0].chance.unwrap() - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!((rows[1].studies, rows[1].hits), (1, 0));
        assert_eq!(rows[2].studies, 0);
        assert_eq!(rows[2].rate, None);
        assert_eq!(rows[2].rate_ci95, None);
    }
}
