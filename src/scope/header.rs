//! The scope rules that read only the DICOM header (and, for raster images, the colour measured
//! at load time). Cheap, so they run before anything looks at the pixels.
//!
//! A missing or unparseable field never counts against a film: only a value that is present and
//! says "not a frontal chest radiograph of a young child" does.

use crate::io::StudyMetadata;

/// Modalities that are projection radiographs: computed and digital radiography, and the retired
/// `RG` (radiographic imaging) some older archives still write.
const PROJECTION_MODALITIES: [&str; 3] = ["CR", "DX", "RG"];

/// Age (years) from which a film is outside the training population (children aged 1–5).
pub const ADULT_YEARS: f64 = 18.0;
/// Age (years) from which a film gets a warning but is still analysed.
pub const OLDER_CHILD_YEARS: f64 = 6.0;

/// Hasler & Süsstrunk colourfulness above which a raster image counts as a colour photograph.
/// Their scale calls 15 "slightly colourful"; a grey film saved as RGB (or with a faint tint from
/// JPEG chroma) measures 0–3.
pub const COLOURFUL: f32 = 15.0;

/// Share of strongly coloured pixels above which a raster image that is not colourful as a whole
/// counts as a film with colour drawn over it: the pixels under a heat map are not the film's,
/// and the model reads the overlay's brightness as anatomy. The IG overlays `analyze` writes
/// have 2–4 % such pixels at colourfulness 3–4 (below [`COLOURFUL`]), and the model gave one
/// "PNEUMONIA 0.920" in scope; a grey film has none, and a small coloured marker or arrow stays
/// well under 1 %.
pub const DRAWN_COLOUR_SHARE: f32 = 0.01;

/// What one header rule found.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Outside the scope; the reason as a short phrase ("body part HIP").
    Out(String),
    /// Inside the scope but worth a visible warning.
    Warn(String),
}

/// Every header rule, in a fixed order; empty when the header says nothing against the film.
pub fn header_findings(meta: &StudyMetadata) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(m) = present(meta.modality.as_deref()) {
        let upper = m.to_ascii_uppercase();
        if !PROJECTION_MODALITIES.contains(&upper.as_str()) {
            out.push(Finding::Out(format!(
                "not a projection radiograph (Modality {upper})"
            )));
        }
    }
    if let Some(part) = present(meta.tag_value("BodyPartExamined")) {
        let upper = part.to_ascii_uppercase();
        let chest = ["CHEST", "THORAX", "TORAX", "LUNG"]
            .iter()
            .any(|c| upper.contains(c));
        if !chest {
            out.push(Finding::Out(format!("body part {upper}")));
        }
    }
    if let Some(view) = present(meta.view_position.as_deref()) {
        let upper = view.to_ascii_uppercase();
        if is_lateral(&upper) {
            out.push(Finding::Out(format!("lateral view (ViewPosition {upper})")));
        } else if ["LAO", "RAO", "LPO", "RPO"].contains(&upper.as_str()) {
            out.push(Finding::Out(format!("oblique view (ViewPosition {upper})")));
        }
    }
    if let Some((years, source)) = age_of(meta) {
        if years >= ADULT_YEARS {
            out.push(Finding::Out(format!("adult ({source})")));
        } else if years >= OLDER_CHILD_YEARS {
            out.push(Finding::Warn(format!(
                "older than the training population of 1–5 year olds ({source})"
            )));
        }
    }
    // A DX "For Processing" image is the detector's raw signal, before the manufacturer's
    // processing (contrast curve, edge enhancement) that every training film went through. It is
    // still a chest film, so a warning rather than a verdict; the pixel detector judges the rest.
    if let Some(intent) = present(meta.tag_value("PresentationIntentType")) {
        let upper = intent.to_ascii_uppercase();
        if upper == "FOR PROCESSING" {
            out.push(Finding::Warn(
                "raw detector image, not processed for display as the training films were \
                 (PresentationIntentType FOR PROCESSING)"
                    .into(),
            ));
        }
    }
    if let Some(pi) = present(meta.photometric_interpretation.as_deref()) {
        let upper = pi.to_ascii_uppercase();
        if upper.starts_with("RGB") || upper.starts_with("YBR") || upper == "PALETTE COLOR" {
            out.push(Finding::Out(format!(
                "colour image (PhotometricInterpretation {upper})"
            )));
        }
    }
    if let Some(what) = &meta.viewer_export {
        out.push(Finding::Out(format!(
            "an image exported by cxr-viewer ({what}), not a film"
        )));
        return out;
    }
    match (meta.colourfulness, meta.coloured_share) {
        (Some(c), _) if c > COLOURFUL => out.push(Finding::Out(format!(
            "colour photograph (colourfulness {c:.0} > {COLOURFUL:.0})"
        ))),
        (_, Some(share)) if share > DRAWN_COLOUR_SHARE => out.push(Finding::Out(format!(
            "colour drawn over the image ({:.1} % of it strongly coloured: a heat map, \
             markings or a tint)",
            100.0 * share
        ))),
        _ => {}
    }
    out
}

fn present(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn is_lateral(upper: &str) -> bool {
    matches!(upper, "LL" | "RL" | "LATERAL" | "LAT") || upper.contains("LAT")
}

/// The patient's age in years and where it came from ("PatientAge 058Y", "PatientBirthDate vs
/// StudyDate"): PatientAge first, else the two dates.
pub fn age_of(meta: &StudyMetadata) -> Option<(f64, String)> {
    if let Some(a) = present(meta.patient_age.as_deref()) {
        if let Some(y) = parse_age(a) {
            return Some((y, format!("PatientAge {a}")));
        }
    }
    let birth = parse_date(present(meta.tag_value("PatientBirthDate"))?)?;
    let study = parse_date(present(meta.study_date.as_deref())?)?;
    let years = years_between(birth, study)?;
    // The birth date itself is an identifier: the reason names only the age.
    Some((
        years,
        format!("{years:.0} y from PatientBirthDate and StudyDate"),
    ))
}

/// DICOM Age String `nnnD|W|M|Y` (PS3.5 table 6.2-1), or a bare number of years as some
/// anonymisers write it (`58`, `58.0`); `None` for anything else or a negative value.
pub fn parse_age(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'Y'),
    };
    let n: f64 = num.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let years = match unit {
        'Y' => n,
        'M' => n / 12.0,
        'W' => n * 7.0 / 365.25,
        'D' => n / 365.25,
        _ => return None,
    };
    Some(years)
}

/// `YYYYMMDD` (DICOM DA; the old `YYYY.MM.DD` form too) → (year, month, day).
pub fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 8 {
        return None;
    }
    let y: i32 = digits[0..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Whole years between two dates (birthday reached or not), as a float; `None` if `to` is before
/// `from`.
pub fn years_between(from: (i32, u32, u32), to: (i32, u32, u32)) -> Option<f64> {
    let mut years = to.0 - from.0;
    if (to.1, to.2) < (from.1, from.2) {
        years -= 1;
    }
    (years >= 0).then_some(f64::from(years))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_every_unit_and_bare_numbers() {
        assert_eq!(parse_age("058Y"), Some(58.0));
        assert_eq!(parse_age("58"), Some(58.0));
        assert_eq!(parse_age("006M"), Some(0.5));
        assert_eq!(parse_age("052W"), Some(52.0 * 7.0 / 365.25));
        assert_eq!(parse_age("365D"), Some(365.0 / 365.25));
        assert_eq!(parse_age("abc"), None);
        assert_eq!(parse_age(""), None);
        assert_eq!(parse_age("-3Y"), None);
        assert_eq!(parse_age("12X"), None);
    }

    #[test]
    fn years_between_counts_the_birthday() {
        assert_eq!(years_between((2000, 5, 10), (2018, 5, 9)), Some(17.0));
        assert_eq!(years_between((2000, 5, 10), (2018, 5, 10)), Some(18.0));
        assert_eq!(years_between((2010, 1, 1), (2009, 1, 1)), None);
        assert_eq!(parse_date("20180510"), Some((2018, 5, 10)));
        assert_eq!(parse_date("2018.05.10"), Some((2018, 5, 10)));
        assert_eq!(parse_date("2018"), None);
        assert_eq!(parse_date("20181310"), None);
    }

    fn meta() -> StudyMetadata {
        StudyMetadata {
            format: "DICOM".into(),
            ..Default::default()
        }
    }

    fn outs(m: &StudyMetadata) -> Vec<String> {
        header_findings(m)
            .into_iter()
            .filter_map(|f| match f {
                Finding::Out(s) => Some(s),
                Finding::Warn(_) => None,
            })
            .collect()
    }

    #[test]
    fn an_empty_header_says_nothing() {
        assert!(header_findings(&meta()).is_empty());
        let mut m = meta();
        m.modality = Some("  ".into());
        m.patient_age = Some("unknown".into());
        assert!(header_findings(&m).is_empty());
    }

    #[test]
    fn each_rule_fires_on_its_field() {
        let mut m = meta();
        m.modality = Some("CT".into());
        assert_eq!(outs(&m), ["not a projection radiograph (Modality CT)"]);
        m.modality = Some("dx".into());
        assert!(outs(&m).is_empty());

        let mut m = meta();
        m.tags.push((
            "(0018,0015)".into(),
            "BodyPartExamined".into(),
            "HIP".into(),
        ));
        assert_eq!(outs(&m), ["body part HIP"]);
        m.tags[0].2 = "Chest".into();
        assert!(outs(&m).is_empty());

        let mut m = meta();
        m.view_position = Some("LL".into());
        assert_eq!(outs(&m), ["lateral view (ViewPosition LL)"]);
        m.view_position = Some("PA".into());
        assert!(outs(&m).is_empty());

        let mut m = meta();
        m.patient_age = Some("058Y".into());
        assert_eq!(outs(&m), ["adult (PatientAge 058Y)"]);
        m.patient_age = Some("12".into());
        assert_eq!(
            header_findings(&m),
            [Finding::Warn(
                "older than the training population of 1–5 year olds (PatientAge 12)".into()
            )]
        );
        m.patient_age = Some("003Y".into());
        assert!(header_findings(&m).is_empty());

        let mut m = meta();
        m.tags.push((
            "(0010,0030)".into(),
            "PatientBirthDate".into(),
            "19600101".into(),
        ));
        m.study_date = Some("20200601".into());
        assert_eq!(
            outs(&m),
            ["adult (60 y from PatientBirthDate and StudyDate)"]
        );

        let mut m = meta();
        m.photometric_interpretation = Some("YBR_FULL_422".into());
        assert_eq!(
            outs(&m),
            ["colour image (PhotometricInterpretation YBR_FULL_422)"]
        );

        let mut m = meta();
        m.tags.push((
            "(0008,0068)".into(),
            "PresentationIntentType".into(),
            "FOR PROCESSING".into(),
        ));
        assert!(outs(&m).is_empty());
        assert!(matches!(
            &header_findings(&m)[..],
            [Finding::Warn(w)] if w.starts_with("raw detector image")
        ));
        m.tags[0].2 = "FOR PRESENTATION".into();
        assert!(header_findings(&m).is_empty());

        let mut m = StudyMetadata {
            format: "JPEG".into(),
            colourfulness: Some(40.0),
            ..Default::default()
        };
        assert_eq!(outs(&m), ["colour photograph (colourfulness 40 > 15)"]);
        m.colourfulness = Some(2.0);
        assert!(outs(&m).is_empty());
        // Colour drawn over a grey film: low colourfulness, but a share of strong colour. A
        // colour photograph is said once, as a photograph.
        m.coloured_share = Some(0.035);
        assert_eq!(
            outs(&m),
            [
                "colour drawn over the image (3.5 % of it strongly coloured: a heat map, markings \
              or a tint)"
            ]
        );
        m.coloured_share = Some(0.009);
        assert!(outs(&m).is_empty());
        m.colourfulness = Some(40.0);
        m.coloured_share = Some(0.5);
        assert_eq!(outs(&m), ["colour photograph (colourfulness 40 > 15)"]);
        // One of the viewer's own exports is said as such, whatever its colours.
        m.viewer_export = Some("film with Grad-CAM overlay".into());
        assert_eq!(
            outs(&m),
            ["an image exported by cxr-viewer (film with Grad-CAM overlay), not a film"]
        );
    }
}
