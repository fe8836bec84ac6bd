//! The scope guard: header rules on real DICOM headers (fixtures edited in place with
//! dicom-object), colour photographs, the pixel detector with the shipped statistics on committed
//! in-scope and out-of-scope images, and the `report.json` / CLI contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use common::{fixture, scratch};
use cxr_viewer::analysis::Engine;
use cxr_viewer::io::load_study;
use cxr_viewer::scope::ScopeCheck;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// One header element to set (`Some`) or remove (`None`).
type Edit = (Tag, VR, Option<&'static str>);

/// A copy of a real chest CR fixture with some elements replaced (or removed when `None`).
fn edited_chest(dir: &Path, name: &str, edits: &[(Tag, VR, Option<&str>)]) -> PathBuf {
    let mut obj =
        dicom_object::open_file(fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"))
            .unwrap();
    for (tag, vr, value) in edits {
        match value {
            Some(v) => {
                obj.put(DataElement::new(*tag, *vr, PrimitiveValue::from(*v)));
            }
            None => {
                obj.remove_element(*tag);
            }
        }
    }
    let path = dir.join(name);
    obj.write_to_file(&path).unwrap();
    path
}

fn header_check(path: &Path) -> ScopeCheck {
    ScopeCheck::from_header(&load_study(path).unwrap().metadata)
}

/// The base film's own header says nothing against it once its age is removed; each edit then
/// triggers exactly its rule, with the reason naming the value.
#[test]
fn each_header_rule_fires_on_a_real_dicom_header() {
    let tmp = scratch("scope-header");
    let dir = tmp.path();
    let clean: Vec<Edit> = vec![
        (tags::PATIENT_AGE, VR::AS, None),
        (tags::PATIENT_BIRTH_DATE, VR::DA, None),
        (tags::BODY_PART_EXAMINED, VR::CS, None),
        (tags::VIEW_POSITION, VR::CS, None),
        (tags::MODALITY, VR::CS, Some("CR")),
    ];
    let base = edited_chest(dir, "base.dcm", &clean);
    let c = header_check(&base);
    assert!(
        c.in_scope && c.reasons.is_empty() && c.warnings.is_empty(),
        "{c:?}"
    );

    let cases: Vec<(&str, Vec<Edit>, &str)> = vec![
        (
            "ct",
            vec![(tags::MODALITY, VR::CS, Some("CT"))],
            "not a projection radiograph (Modality CT)",
        ),
        (
            "hip",
            vec![(tags::BODY_PART_EXAMINED, VR::CS, Some("HIP"))],
            "body part HIP",
        ),
        (
            "lateral",
            vec![(tags::VIEW_POSITION, VR::CS, Some("LL"))],
            "lateral view (ViewPosition LL)",
        ),
        (
            "adult",
            vec![(tags::PATIENT_AGE, VR::AS, Some("058Y"))],
            "adult (PatientAge 058Y)",
        ),
        (
            "adult_bare",
            vec![(tags::PATIENT_AGE, VR::AS, Some("58"))],
            "adult (PatientAge 58)",
        ),
        (
            "adult_dates",
            vec![
                (tags::PATIENT_BIRTH_DATE, VR::DA, Some("19600101")),
                (tags::STUDY_DATE, VR::DA, Some("20200601")),
            ],
            "adult (60 y from PatientBirthDate and StudyDate)",
        ),
    ];
    for (name, edits, reason) in cases {
        let mut all = clean.clone();
        all.extend(edits);
        let c = header_check(&edited_chest(dir, &format!("{name}.dcm"), &all));
        assert!(!c.in_scope, "{name}: {c:?}");
        assert_eq!(c.reasons, [reason], "{name}");
    }

    // 6–17 years: analysed, with a warning; a chest body part is fine.
    let mut all = clean.clone();
    all.push((tags::PATIENT_AGE, VR::AS, Some("012Y")));
    all.push((tags::BODY_PART_EXAMINED, VR::CS, Some("CHEST")));
    let c = header_check(&edited_chest(dir, "older_child.dcm", &all));
    assert!(c.in_scope, "{c:?}");
    assert_eq!(
        c.warnings,
        ["older than the training population of 1–5 year olds (PatientAge 012Y)"]
    );
    // A DX "For Processing" image (the detector's raw signal): analysed, with a warning.
    let mut all = clean.clone();
    all.push((
        tags::PRESENTATION_INTENT_TYPE,
        VR::CS,
        Some("FOR PROCESSING"),
    ));
    let c = header_check(&edited_chest(dir, "for_processing.dcm", &all));
    assert!(c.in_scope, "{c:?}");
    assert_eq!(
        c.warnings,
        [
            "raw detector image, not processed for display as the training films were \
          (PresentationIntentType FOR PROCESSING)"
        ]
    );
    // The birth date is an identifier: it never reaches the serialised metadata.
    let study = load_study(&edited_chest(
        dir,
        "dates.dcm",
        &[(tags::PATIENT_BIRTH_DATE, VR::DA, Some("19600101"))],
    ))
    .unwrap();
    assert!(!serde_json::to_string(&study.metadata)
        .unwrap()
        .contains("19600101"));
}

/// Real DICOMs from other modalities (pydicom's MIT test files) are out by their header.
#[test]
fn other_modalities_are_out_by_header() {
    for (file, modality) in [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")] {
        let c = header_check(&fixture(&format!("scope/pydicom/{file}")));
        assert_eq!(
            c.reasons,
            [format!("not a projection radiograph (Modality {modality})")],
            "{file}"
        );
    }
}

/// Colour DICOMs are out, and the reason quotes the header: JPEG baseline in YBR_FULL_422 (which
/// the decoder returns as RGB) and a palette-colour image (read through its lookup tables).
#[test]
fn a_colour_dicom_is_out_naming_its_header_value() {
    let study = load_study(&fixture("scope/pydicom/examples_ybr_color.dcm")).unwrap();
    let c = ScopeCheck::from_header(&study.metadata);
    assert!(!c.in_scope);
    assert!(
        c.reasons
            .contains(&"colour image (PhotometricInterpretation YBR_FULL_422)".to_string()),
        "{:?}",
        c.reasons
    );
    let palette = load_study(&repo(
        "tests/fixtures/dicom/pydicom_us_palette_8bit_800x350.dcm",
    ));
    let c = ScopeCheck::from_header(&palette.unwrap().metadata);
    assert_eq!(
        c.reasons,
        [
            "not a projection radiograph (Modality US)",
            "colour image (PhotometricInterpretation PALETTE COLOR)"
        ]
    );
}

/// A colour photograph (saturated colour gradient) is out; the same picture stored grey in RGB
/// is not, and its colourfulness is exactly 0.
#[test]
fn colour_photographs_are_out_grey_rgb_is_not() {
    let tmp = scratch("scope-colour");
    let colour = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, (255 - x * 3) as u8])
    });
    let grey = image::RgbImage::from_fn(64, 48, |x, y| {
        let v = ((x + y) * 2) as u8;
        image::Rgb([v, v, v])
    });
    let (pc, pg) = (tmp.path().join("colour.png"), tmp.path().join("grey.png"));
    colour.save(&pc).unwrap();
    grey.save(&pg).unwrap();
    let c = load_study(&pc).unwrap();
    let m = c.metadata.colourfulness.unwrap();
    assert!(m > 15.0, "{m}");
    let check = ScopeCheck::from_header(&c.metadata);
    assert!(!check.in_scope);
    assert!(check.reasons[0].starts_with("colour photograph (colourfulness"));
    let g = load_study(&pg).unwrap();
    assert_eq!(g.metadata.colourfulness, Some(0.0));
    assert!(ScopeCheck::from_header(&g.metadata).in_scope);
    assert_eq!(g.metadata.coloured_share, Some(0.0));
    // Grey JPEGs have no colour channel at all.
    let film = load_study(&repo("assets/samples/person45_bacteria_221.jpeg")).unwrap();
    assert_eq!(film.metadata.colourfulness, None);
    assert_eq!(film.metadata.coloured_share, None);
}

/// A film with colour drawn over part of it (as an IG overlay: red and blue blended over a few
/// percent of the pixels) is out, though not colourful as a whole; the same film with a small red marker,
/// or saved as RGB JPEG, is in. Before, `analyze` rated its own IG overlay "PNEUMONIA 0.920" in
/// scope.
#[test]
fn colour_drawn_over_a_film_is_out_a_small_marker_is_not() {
    let tmp = scratch("scope-drawn");
    let film = image::open(repo("assets/samples/person45_bacteria_221.jpeg"))
        .unwrap()
        .to_rgb8();
    let (w, h) = film.dimensions();
    // Blobs of red and blue over `share` of the film, as an IG overlay's strongest attributions.
    let drawn = |share: f64| {
        let mut img = film.clone();
        let side = ((share * f64::from(w) * f64::from(h) / 2.0).sqrt()) as u32;
        for (i, (x0, y0)) in [(w / 3, h / 3), (w / 2, h / 2)].into_iter().enumerate() {
            for y in y0..y0 + side {
                for x in x0..x0 + side {
                    // Pure red or blue blended at 25 % over the grey film.
                    let grey = 0.75 * f32::from(img.get_pixel(x, y).0[0]);
                    let (v, c) = (grey as u8, (grey + 0.25 * 255.0) as u8);
                    let colour = if i == 0 { [c, v, v] } else { [v, v, c] };
                    img.put_pixel(x, y, image::Rgb(colour));
                }
            }
        }
        img
    };
    let check = |img: &image::RgbImage, name: &str| {
        let path = tmp.path().join(name);
        img.save(&path).unwrap();
        let study = load_study(&path).unwrap();
        (
            study.metadata.clone(),
            ScopeCheck::from_header(&study.metadata),
        )
    };
    let (meta, overlay) = check(&drawn(0.03), "overlay.png");
    assert!(meta.colourfulness.unwrap() < 15.0, "{meta:?}");
    let share = meta.coloured_share.unwrap();
    assert!((0.027..0.031).contains(&share), "{meta:?}");
    assert!(!overlay.in_scope);
    assert_eq!(
        overlay.reasons,
        [format!(
            "colour drawn over the image ({:.1} % of it strongly coloured: a heat map, markings \
             or a tint)",
            100.0 * share
        )]
    );
    let (meta, marker) = check(&drawn(0.004), "marker.png");
    assert!(marker.in_scope, "{meta:?} {:?}", marker.reasons);
    let (meta, rgb) = check(&film, "film-rgb.jpeg");
    assert!(rgb.in_scope, "{meta:?}");
    assert!(meta.coloured_share.unwrap() < 0.001, "{meta:?}");
}

fn shipped_engine() -> Engine {
    Engine::load(&repo("weights/model.json"), &Device::Cpu).unwrap()
}

fn pixel_check(engine: &Engine, path: &Path) -> ScopeCheck {
    let study = load_study(path).unwrap();
    engine.prepare(&study).unwrap().0.scope
}

/// The shipped statistics: the committed paediatric films are inside, the committed photographs
/// and other-modality images are outside, from the pixels alone (raster files, no header).
#[test]
fn the_pixel_detector_separates_committed_films_from_out_of_scope_images() {
    let engine = shipped_engine();
    let stats = engine
        .scope
        .as_ref()
        .expect("model.json names scope statistics");
    assert!(stats.threshold.is_finite() && stats.threshold > 0.0);
    for film in [
        "assets/samples/person45_bacteria_221.jpeg",
        "assets/samples/NORMAL2-IM-0912-0001.jpeg",
    ] {
        let c = pixel_check(&engine, &repo(film));
        assert!(c.in_scope, "{film}: {c:?}");
        assert!(c.score.unwrap() < stats.threshold, "{film}: {c:?}");
    }
    for dir in ["scope/skimage"] {
        for entry in std::fs::read_dir(fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "jpg") {
                continue;
            }
            let c = pixel_check(&engine, &path);
            assert!(!c.in_scope, "{}: {c:?}", path.display());
            assert!(
                c.reasons
                    .iter()
                    .any(|r| r.starts_with("image unlike the training films (score")),
                "{}: {c:?}",
                path.display()
            );
        }
    }
}

/// The folder scans predict films in batches ([`Engine::prepare_many`]): each film's
/// prediction, scope verdict and layer4 features are those of preparing it alone, up to float
/// rounding, for in-scope films, an out-of-scope photograph and a DICOM with its header rules.
#[test]
fn a_batch_of_films_is_prepared_as_each_film_alone() {
    let engine = shipped_engine();
    let studies: Vec<_> = [
        repo("assets/samples/person45_bacteria_221.jpeg"),
        fixture("scope/skimage/camera.jpg"),
        repo("assets/samples/NORMAL2-IM-0912-0001.jpeg"),
        fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"),
    ]
    .iter()
    .map(|p| load_study(p).unwrap())
    .collect();
    let batch = engine.prepare_many(&studies.iter().collect::<Vec<_>>());
    assert_eq!(batch.len(), studies.len());
    let mut flagged = 0;
    for (study, batched) in studies.iter().zip(batch) {
        let batched = batched.unwrap();
        let alone = engine.prepare(study).unwrap().0;
        let name = study.source.display();
        assert_eq!(batched.prediction.label, alone.prediction.label, "{name}");
        let dp = batched.prediction.positive_probability - alone.prediction.positive_probability;
        assert!(dp.abs() < 1e-5, "{name}: {dp}");
        let (a, b) = (batched.scope.score.unwrap(), alone.scope.score.unwrap());
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{name}: {a} vs {b}"
        );
        assert_eq!(batched.scope.in_scope, alone.scope.in_scope, "{name}");
        assert_eq!(
            batched.scope.reasons.len(),
            alone.scope.reasons.len(),
            "{name}"
        );
        assert_eq!(batched.features.dims(), alone.features.dims());
        let max_abs = |t: &candle_core::Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let diff = max_abs(&(&batched.features - &alone.features).unwrap());
        let scale = max_abs(&alone.features);
        assert!(diff <= 1e-4 * scale, "{name}: {diff} of {scale}");
        assert_eq!(batched.image_size, (study.width, study.height));
        flagged += usize::from(!batched.scope.in_scope);
    }
    assert!(flagged >= 1, "the photograph is out of scope");
}

/// `report.json` carries `scope.{in_scope, score, threshold, reasons}` and the CLI summary line
/// starts with "OUT OF SCOPE:" for a flagged film.
#[test]
fn report_and_summary_carry_the_scope() {
    let tmp = scratch("scope-cli");
    let photo = fixture("scope/skimage/camera.jpg");
    let film = repo("assets/samples/person45_bacteria_221.jpeg");
    let out = Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
        .arg("analyze")
        .arg(&photo)
        .arg(&film)
        .arg("--out")
        .arg(tmp.path())
        .arg("--model")
        .arg(repo("weights/model.json"))
        .args(["--device", "cpu", "--no-ig", "--mc-samples", "4"])
        .output()
        .unwrap();
    common::assert_ran(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains(": OUT OF SCOPE: image unlike the training films (score"),
        "{stdout}"
    );
    assert!(!lines[1].contains("OUT OF SCOPE"), "{stdout}");
    // The JPEG film was judged in scope with no age to check: said once, after the summaries
    // (the photograph is out of scope, so it is not counted).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(
        notes,
        [
            "note: in scope with no age in the file: 1 of 2 films; their scope was checked \
             from the image alone, which misses some adult chest films (report.json: \
             scope.age_known false); confirm the patients are young children"
        ],
        "{stderr}"
    );
    let read = |stem: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(stem).join("report.json")).unwrap(),
        )
        .unwrap()
    };
    let r = read("camera");
    let scope = &r["scope"];
    assert_eq!(scope["in_scope"], false);
    let (score, threshold) = (
        scope["score"].as_f64().unwrap(),
        scope["threshold"].as_f64().unwrap(),
    );
    assert!(score > threshold);
    let reason = scope["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("image unlike the training films (score ") && reason.contains(" > "),
        "{reason}"
    );
    let r = read("person45_bacteria_221");
    assert_eq!(r["scope"]["in_scope"], true);
    assert_eq!(r["scope"]["reasons"].as_array().unwrap().len(), 0);
    assert!(r["timings_ms"]["scope"].as_f64().unwrap() >= 0.0);
}
