//! DICOM loading against pydicom reference values (tests/fixtures/dicom/reference.json, made by
//! scripts/make_dicom_fixtures.py). References are *before* MONOCHROME1 inversion, so the tests
//! undo the inversion with the stored-bits range and check the inversion separately.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cxr_viewer::io::{
    dicomdir_images, is_dicomdir, load_study, load_study_frame, LoadErrorKind, Study, Window,
    WindowSource,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An entry of voi_reference.json (scripts/make_voi_fixtures.py).
fn voi_reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("voi_reference.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

/// A reference entry's sampled pixels: `((row, column), value)`.
fn sampled(r: &Value) -> impl Iterator<Item = ((usize, usize), f64)> + '_ {
    r["coords"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["values"].as_array().unwrap())
        .map(|(rc, v)| {
            let at = |i: usize| rc[i].as_u64().unwrap() as usize;
            ((at(0), at(1)), v.as_f64().unwrap())
        })
}

/// A lookup table's output range, `(table_min, table_max)`, from its voi_reference.json entry.
fn table_range(r: &Value) -> (f32, f32) {
    let v = |k: &str| r[k].as_f64().unwrap() as f32;
    (v("table_min"), v("table_max"))
}

fn load(name: &str) -> Study {
    load_study(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn err_text(path: &Path) -> (LoadErrorKind, String) {
    let e = load_study(path).expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
    assert!(msg.starts_with("cannot open "), "{msg}");
    (e.kind(), msg)
}

/// Post-rescale range of the stored bits (what the loader mirrors MONOCHROME1 in).
fn stored_range(study: &Study, signed: bool) -> (f64, f64) {
    let bits = i32::from(study.metadata.bits_stored);
    let (lo, hi) = if signed {
        (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
    } else {
        (0.0, 2f64.powi(bits) - 1.0)
    };
    let slope = study.metadata.rescale_slope.unwrap_or(1.0);
    let icpt = study.metadata.rescale_intercept.unwrap_or(0.0);
    let (a, b) = (slope * lo + icpt, slope * hi + icpt);
    (a.min(b), a.max(b))
}

/// The study's pixels as pydicom reports them (MONOCHROME1 inversion undone).
fn pre_inversion(study: &Study, reference: &Value) -> Vec<f64> {
    let mono1 = reference["photometric_interpretation"] == "MONOCHROME1";
    let signed = reference["pixel_representation"] == 1;
    let (min, max) = stored_range(study, signed);
    study
        .pixels
        .iter()
        .map(|&v| {
            if mono1 {
                max + min - f64::from(v)
            } else {
                f64::from(v)
            }
        })
        .collect()
}

fn is_lossy(ts: &str) -> bool {
    [
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
    ]
    .contains(&ts)
}

/// Compare a decoded study with its reference entry; exact for lossless codecs, two grey levels
/// per pixel for lossy ones, where decoders may round the inverse DCT differently (observed: at
/// most 1 level on the JPEG baseline files, mean off by < 0.03; JPEG 2000 is exact).
fn assert_matches_reference(label: &str, study: &Study, r: &Value) {
    let shape = [study.height as u64, study.width as u64];
    assert_eq!(
        [
            r["shape"][0].as_u64().unwrap(),
            r["shape"][1].as_u64().unwrap()
        ],
        shape,
        "{label}: shape"
    );
    assert_eq!(study.pixels.len(), study.width * study.height, "{label}");
    let vals = pre_inversion(study, r);
    let ts = r["transfer_syntax"].as_str().unwrap();
    let (tol_px, tol_mean) = if is_lossy(ts) {
        (2.0, 0.1)
    } else {
        (1e-3, 1e-3)
    };
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let close = |a: f64, b: f64, t: f64| (a - b).abs() <= t;
    assert!(
        close(min, r["min"].as_f64().unwrap(), tol_px),
        "{label}: min {min} vs {}",
        r["min"]
    );
    assert!(
        close(max, r["max"].as_f64().unwrap(), tol_px),
        "{label}: max {max} vs {}",
        r["max"]
    );
    assert!(
        close(mean, r["mean"].as_f64().unwrap(), tol_mean),
        "{label}: mean {mean} vs {}",
        r["mean"]
    );
    for ((row, col), want) in sampled(r) {
        let got = vals[row * study.width + col];
        assert!(
            close(got, want, tol_px),
            "{label}: pixel ({row},{col}) {got} vs {want}"
        );
    }
}

#[test]
fn committed_fixtures_match_pydicom() {
    let reference = reference();
    for name in [
        "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm",
        "cr_chest_pa_mono1_10bit_explicit_le_440.dcm",
        "siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm",
        "siim_cr_chest_pa_jpegbaseline_FAKE_mono1_header.dcm",
        "wg04_RG3_cr_extremity_mono1_10bit_j2k_lossy_1760.dcm",
        "wg04_RG2_rle_crop_192x160.dcm",
        // JPEG-LS (CharLS): lossless 10-bit CR, lossless 16-bit MR, near-lossless 16-bit.
        "wg04_RG3_cr_extremity_mono1_10bit_jpegls_lossless_1760.dcm",
        "pydicom_mr_jpegls_lossless_16bit_64.dcm",
        "pydicom_jpegls_nearlossless_16bit_10x50.dcm",
        // 12-bit JPEG Extended (libjpeg-turbo).
        "wg04_RG2_cr_hip_mono2_10bit_jpeg_extended_fixed.dcm",
        "pydicom_nm_jpeg_extended_12bit_1024x256.dcm",
        // Data sets without preamble and File Meta.
        "no_meta_implicit_16x16.dcm",
        "no_meta_explicit_16x16.dcm",
        // Multi-frame: frame 1 by default.
        "multiframe_3x16x16.dcm",
        "multiframe_jpegls_3x16x16.dcm",
        // Small JPEG 2000 films (OpenJPEG encoder): lossless and lossy.
        "j2k_lossless_64x64.dcm",
        "j2k_lossy_64x64.dcm",
    ] {
        let study = load(name);
        let r = &reference[format!("fixtures/{name}")];
        assert_matches_reference(name, &study, r);
        assert_eq!(study.metadata.format, "DICOM");
        assert_eq!(
            study.metadata.photometric_interpretation.as_deref(),
            r["photometric_interpretation"].as_str()
        );
    }
}

#[test]
fn fake_mono1_is_the_inverse_of_its_mono2_twin() {
    let mono2 = load("siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm");
    let mono1 = load("siim_cr_chest_pa_jpegbaseline_FAKE_mono1_header.dcm");
    assert_eq!(mono1.pixels.len(), mono2.pixels.len());
    // 8 stored bits, no rescale: max + min = 255.
    for (a, b) in mono1.pixels.iter().zip(&mono2.pixels) {
        assert_eq!(*a, 255.0 - *b);
    }
    // Without a header window both use percentiles, which mirror as well.
    assert_eq!(mono1.window_source, WindowSource::Percentile);
    assert_eq!(mono2.window_source, WindowSource::Percentile);
    assert!((mono1.default_window.low - (255.0 - mono2.default_window.high)).abs() <= 1.0);
    assert!((mono1.default_window.high - (255.0 - mono2.default_window.low)).abs() <= 1.0);
}

#[test]
fn mono1_header_window_is_mirrored_with_the_pixels() {
    let study = load("cr_chest_pa_mono1_10bit_explicit_le_440.dcm");
    assert_eq!(study.window_source, WindowSource::Header);
    let header = Window::from_center_width(550.0, 1024.0);
    // 10-bit unsigned, slope 1: s = 1023 + 0.
    assert_eq!(study.default_window.low, 1023.0 - header.high);
    assert_eq!(study.default_window.high, 1023.0 - header.low);
    let r = &reference()["fixtures/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"];
    let raw = pre_inversion(&study, r);
    let unit = study.to_unit(&study.default_window);
    for (u, v) in unit.iter().zip(&raw) {
        // Displayed value is the complement of the header window on the stored value.
        assert!((u + header.apply(*v as f32) - 1.0).abs() < 1e-5);
    }
}

#[test]
fn rescale_slope_and_intercept_are_applied() {
    let study = load("pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm");
    assert_eq!(study.metadata.rescale_slope, Some(0.684));
    assert_eq!(study.metadata.rescale_intercept, Some(200.0));
    assert_eq!(study.metadata.bits_stored, 12);
    // Post-rescale range of 12 stored bits is 200..=0.684*4095+200; MONOCHROME1 mirrors in it.
    let s = (200.0 + 0.684 * 4095.0 + 200.0) as f32;
    let header = Window::from_center_width(1600.0, 2800.0);
    assert!((study.default_window.low - (s - header.high)).abs() < 1e-2);
    assert!((study.default_window.high - (s - header.low)).abs() < 1e-2);
    // Values are not integers: the rescale was applied at full precision.
    assert!(study.pixels.iter().any(|v| v.fract() != 0.0));
}

#[test]
fn percentile_window_when_header_has_none() {
    let study = load("siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm");
    assert_eq!(study.window_source, WindowSource::Percentile);
    let w = study.default_window;
    let n = study.pixels.len() as f64;
    let below = study.pixels.iter().filter(|&&v| v < w.low).count() as f64 / n;
    let above = study.pixels.iter().filter(|&&v| v > w.high).count() as f64 / n;
    assert!(
        below <= 0.005 + 1e-6 && above <= 0.005 + 1e-6,
        "{w:?} {below} {above}"
    );
    assert!(w.low < w.high && w.low >= 0.0 && w.high <= 255.0);
}

#[test]
fn metadata_is_read() {
    let study = load("siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm");
    let m = &study.metadata;
    assert_eq!(m.modality.as_deref(), Some("CR"));
    assert_eq!(m.view_position.as_deref(), Some("PA"));
    assert_eq!(m.patient_age.as_deref(), Some("62"));
    assert_eq!(m.patient_sex.as_deref(), Some("M"));
    assert_eq!(m.pixel_spacing, Some([0.168, 0.168]));
    assert_eq!(m.study_date.as_deref(), Some("19010101"));
    assert_eq!(
        m.sop_instance_uid.as_deref(),
        Some("1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819")
    );
    assert_eq!(m.bits_stored, 8);
    let ts = m.transfer_syntax.as_deref().unwrap();
    assert!(
        ts.starts_with("1.2.840.10008.1.2.4.50 (JPEG Baseline"),
        "{ts}"
    );
    assert_eq!(
        m.patient_id.as_deref(),
        Some("16d7f894-55d7-4d95-8957-d18987f0e981")
    );
    let rows = m.tags.iter().find(|t| t.0 == "(0028,0010)").unwrap();
    assert_eq!((rows.1.as_str(), rows.2.as_str()), ("Rows", "1024"));
    assert!(
        m.tags.iter().all(|t| t.0 != "(7FE0,0010)"),
        "pixel data listed"
    );
    assert!(m.tags.iter().any(|t| t.1 == "PatientName"));

    // Identifiers never reach an export.
    let json = serde_json::to_string(m).unwrap();
    assert!(!json.contains("16d7f894"), "{json}");
    assert!(json.contains("\"modality\":\"CR\""));

    let small = load("pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm");
    assert_eq!(small.metadata.imager_pixel_spacing, Some([0.1, 0.1]));
    assert_eq!(small.metadata.patient_sex, None, "empty value is None");
    assert_eq!(
        small.metadata.patient_name.as_deref(),
        Some("Doe^Archibald")
    );
}

#[test]
fn file_without_preamble_loads() {
    let stripped = load("no_preamble_16x16.dcm");
    let full = load("pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm");
    assert_eq!(stripped.pixels, full.pixels);
    assert_eq!(stripped.default_window, full.default_window);
}

#[test]
fn truncated_files_give_a_clear_error() {
    let (kind, msg) = err_text(&fixture("truncated_pixeldata.dcm"));
    assert_eq!(kind, LoadErrorKind::Corrupt);
    assert!(
        msg.starts_with("cannot open truncated_pixeldata.dcm: truncated or corrupt DICOM file ("),
        "{msg}"
    );
    let (kind, msg) = err_text(&fixture("truncated_header.dcm"));
    assert_eq!(kind, LoadErrorKind::Corrupt, "{msg}");
    assert!(msg.contains("truncated or corrupt DICOM file"), "{msg}");
}

#[test]
fn garbage_gives_a_clear_error() {
    let (kind, msg) = err_text(&fixture("garbage.dcm"));
    assert_eq!(kind, LoadErrorKind::UnknownFormat);
    assert!(msg.contains("not a DICOM, PNG or JPEG file"), "{msg}");
    let (kind, msg) = err_text(&fixture("garbage_with_dicm.dcm"));
    assert_eq!(kind, LoadErrorKind::Corrupt, "{msg}");

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let empty = dir.join("io_dicom_empty.dcm");
    std::fs::write(&empty, b"").unwrap();
    let (kind, msg) = err_text(&empty);
    assert_eq!(kind, LoadErrorKind::UnknownFormat);
    assert!(msg.ends_with("the file is empty"), "{msg}");

    let (kind, _) = err_text(&dir.join("io_dicom_does_not_exist.dcm"));
    assert_eq!(kind, LoadErrorKind::Io);
    let (kind, msg) = err_text(dir);
    assert_eq!(kind, LoadErrorKind::Io, "{msg}");
}

#[test]
fn jpeg_ls_and_12_bit_jpeg_name_their_transfer_syntax() {
    let ls = load("wg04_RG3_cr_extremity_mono1_10bit_jpegls_lossless_1760.dcm");
    assert_eq!(
        ls.metadata.transfer_syntax.as_deref(),
        Some("1.2.840.10008.1.2.4.80 (JPEG-LS Lossless Image Compression)")
    );
    let ext = load("wg04_RG2_cr_hip_mono2_10bit_jpeg_extended_fixed.dcm");
    let ts = ext.metadata.transfer_syntax.as_deref().unwrap();
    assert!(
        ts.starts_with("1.2.840.10008.1.2.4.51 (JPEG Extended"),
        "{ts}"
    );
    assert_eq!(ext.metadata.bits_stored, 10);
    // 10 stored bits in a 12-bit JPEG: values beyond 8 bits survive the decoder.
    assert!(ext.pixels.iter().any(|&v| v > 255.0));
    assert!(ext.pixels.iter().all(|&v| (0.0..=1023.0).contains(&v)));
}

/// The 12-bit JPEG path decodes outside dicom-pixeldata, so it reads the rescale itself: at the
/// top level, or in an enhanced image's functional groups (Pixel Value Transformation Sequence,
/// per frame or shared, PS3.3 C.7.6.16.2.9), where it used to miss it and show the stored values.
#[test]
fn twelve_bit_jpeg_rescale_is_read_from_the_functional_groups_too() {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::InMemDicomObject;
    let name = "pydicom_nm_jpeg_extended_12bit_1024x256.dcm";
    let rescale = |slope: &str, intercept: &str| {
        [
            DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from(slope)),
            DataElement::new(
                tags::RESCALE_INTERCEPT,
                VR::DS,
                PrimitiveValue::from(intercept),
            ),
        ]
    };
    // A functional group holding only the rescale: `group_sequence` -> item -> PVT Sequence.
    let in_group = |group_sequence, slope: &'static str, intercept: &'static str| {
        move |o: &mut dicom_object::DefaultDicomObject| {
            let pvt = InMemDicomObject::from_element_iter(rescale(slope, intercept));
            let group = InMemDicomObject::from_element_iter([DataElement::new(
                tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                VR::SQ,
                DataSetSequence::from(vec![pvt]),
            )]);
            o.put(DataElement::new(
                group_sequence,
                VR::SQ,
                DataSetSequence::from(vec![group]),
            ));
        }
    };
    let plain = load(name);
    assert_eq!(plain.metadata.rescale_slope, None);
    let top = load_study(&edited(name, "rescale_top", &|o| {
        for e in rescale("2", "-100") {
            o.put(e);
        }
    }))
    .unwrap();
    let shared = load_study(&edited(
        name,
        "rescale_shared",
        &in_group(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, "2", "-100"),
    ))
    .unwrap();
    let per_frame = load_study(&edited(
        name,
        "rescale_per_frame",
        &in_group(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, "0.5", "10"),
    ))
    .unwrap();
    for (study, slope, intercept, what) in [
        (&top, 2.0, -100.0, "top level"),
        (&shared, 2.0, -100.0, "shared groups"),
        (&per_frame, 0.5, 10.0, "per-frame groups"),
    ] {
        assert_eq!(study.metadata.rescale_slope, Some(slope), "{what}");
        assert_eq!(study.metadata.rescale_intercept, Some(intercept), "{what}");
        assert_eq!(study.pixels.len(), plain.pixels.len(), "{what}");
        for (i, (&got, &stored)) in study.pixels.iter().zip(&plain.pixels).enumerate() {
            let want = (slope * f64::from(stored) + intercept) as f32;
            assert_eq!(got, want, "{what}: pixel {i}");
        }
    }
    // The stored values span more than one level, so a missed rescale cannot pass the check.
    assert!(plain.pixels.iter().any(|&v| v != plain.pixels[0]));
}

/// Copy of `name` whose single JPEG / JPEG-LS fragment is replaced by `edit(fragment)`.
fn with_fragment(name: &str, tag: &str, edit: impl Fn(&[u8]) -> Vec<u8>) -> PathBuf {
    use dicom_core::value::{PixelFragmentSequence, Value as DicomValue};
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(fixture(name)).unwrap();
    let frags: Vec<Vec<u8>> = match obj.element(tags::PIXEL_DATA).unwrap().value() {
        DicomValue::PixelSequence(seq) => seq.fragments().to_vec(),
        _ => panic!("{name}: not encapsulated"),
    };
    let edited: Vec<Vec<u8>> = frags.iter().map(|f| edit(f)).collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        DicomValue::PixelSequence(PixelFragmentSequence::new(Vec::<u32>::new(), edited)),
    ));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("io_dicom_{tag}_{name}"));
    obj.write_to_file(&path).unwrap();
    path
}

#[test]
fn damaged_jpeg_ls_and_12_bit_jpeg_fail_in_one_line() {
    for name in [
        "pydicom_mr_jpegls_lossless_16bit_64.dcm",
        "pydicom_jpegls_nearlossless_16bit_10x50.dcm",
        "pydicom_nm_jpeg_extended_12bit_1024x256.dcm",
    ] {
        // Cut in the middle of the entropy-coded data.
        let truncated = with_fragment(name, "truncated", |f| f[..f.len() / 2].to_vec());
        let (kind, msg) = err_text(&truncated);
        assert_eq!(kind, LoadErrorKind::Decode, "{msg}");
        assert!(msg.contains("cannot decode"), "{msg}");
        // Start-of-image marker destroyed: the codec must refuse the stream.
        let corrupt = with_fragment(name, "corrupt", |f| {
            let mut f = f.to_vec();
            f[..4].copy_from_slice(b"junk");
            f
        });
        let (kind, msg) = err_text(&corrupt);
        assert_eq!(kind, LoadErrorKind::Decode, "{msg}");
        std::fs::remove_file(truncated).unwrap();
        std::fs::remove_file(corrupt).unwrap();
    }
}

#[test]
fn jpeg_2000_lossless_gives_back_the_pixels_it_was_made_from() {
    let source = load("j2k_source_64x64.dcm");
    let lossless = load("j2k_lossless_64x64.dcm");
    assert_eq!((lossless.width, lossless.height), (64, 64));
    assert_eq!(lossless.pixels, source.pixels);
    // The lossy one is close but not equal (10:1), so the comparison above can fail.
    let lossy = load("j2k_lossy_64x64.dcm");
    assert_ne!(lossy.pixels, source.pixels);
    let worst = lossy
        .pixels
        .iter()
        .zip(&source.pixels)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 100.0, "{worst}");
}

#[test]
fn damaged_jpeg_2000_fails_in_one_line() {
    let truncated = with_fragment("j2k_lossless_64x64.dcm", "truncated", |f| {
        f[..f.len() / 3].to_vec()
    });
    let corrupt = with_fragment("j2k_lossless_64x64.dcm", "corrupt", |f| {
        let mut f = f.to_vec();
        f[..4].copy_from_slice(b"junk");
        f
    });
    for path in [truncated, corrupt] {
        let (kind, msg) = err_text(&path);
        assert_eq!(kind, LoadErrorKind::Decode, "{msg}");
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn jpeg_2000_codestream_larger_than_the_header_is_refused_before_decoding() {
    // The 64×64 lossless fixture with its codestream's image and tile size (SIZ, Xsiz/Ysiz and
    // XTsiz/YTsiz) rewritten. dicom-rs' JPEG 2000 adapter panicked on 4000×4000 ("range end
    // index 8194 out of range for slice of length 8192"); at 20000×20000 openjp2 first took
    // 1.6 GB and 14 s.
    let original = std::fs::read(fixture("j2k_lossless_64x64.dcm")).unwrap();
    let siz = original
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .unwrap()
        + 2;
    for side in [4000u32, 20000] {
        let mut bytes = original.clone();
        for at in [6, 10, 22, 26] {
            bytes[siz + at..siz + at + 4].copy_from_slice(&side.to_be_bytes());
        }
        let path =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("io_dicom_j2k_siz_{side}.dcm"));
        std::fs::write(&path, &bytes).unwrap();
        let (kind, msg) = err_text(&path);
        assert_eq!(kind, LoadErrorKind::Decode, "{msg}");
        assert!(
            msg.ends_with(&format!(
                "(JPEG 2000 codestream is {side}×{side} but the header says 64×64)"
            )),
            "{msg}"
        );
        std::fs::remove_file(path).unwrap();
    }
}

#[test]
fn data_sets_without_file_meta_match_the_part10_file() {
    let full = load("pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm");
    for (name, ts) in [
        ("no_meta_implicit_16x16.dcm", "1.2.840.10008.1.2 ("),
        ("no_meta_explicit_16x16.dcm", "1.2.840.10008.1.2.1 ("),
    ] {
        let bare = load(name);
        assert_eq!(bare.pixels, full.pixels, "{name}");
        assert_eq!(bare.default_window, full.default_window, "{name}");
        let got = bare.metadata.transfer_syntax.as_deref().unwrap();
        assert!(got.starts_with(ts), "{name}: {got}");
    }
    // Cut inside the data set: a one-line error, not a partial image.
    let bytes = std::fs::read(fixture("no_meta_implicit_16x16.dcm")).unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("io_dicom_no_meta_cut.dcm");
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let (kind, msg) = err_text(&path);
    assert!(
        matches!(kind, LoadErrorKind::Corrupt | LoadErrorKind::Decode),
        "{msg}"
    );
}

fn frames_reference() -> Value {
    let text = std::fs::read_to_string(fixture("frames_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_frame_of_a_multi_frame_image_matches_pydicom() {
    let reference = frames_reference();
    for name in ["multiframe_3x16x16.dcm", "multiframe_jpegls_3x16x16.dcm"] {
        let r = &reference[name];
        assert_eq!(r["frames"], 3);
        for (k, want) in r["values"].as_array().unwrap().iter().enumerate() {
            let study = load_study_frame(&fixture(name), k as u32).unwrap();
            assert_eq!(study.metadata.frames, 3);
            assert_eq!(study.metadata.frame, k as u32);
            // MONOCHROME1, 12 bits, slope 0.684, intercept 200: undo the inversion.
            let r16 = &reference_entry(name);
            let got = pre_inversion(&study, r16);
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-3,
                    "{name} frame {k} pixel {i}: {g} vs {w}"
                );
            }
        }
        let (kind, msg) = {
            let e = load_study_frame(&fixture(name), 3).unwrap_err();
            (e.kind(), e.to_string())
        };
        assert_eq!(kind, LoadErrorKind::NoSuchFrame);
        assert_eq!(
            msg,
            format!("cannot open {name}: there is no frame 4 (the image has 3 frames)")
        );
    }
    // Single-frame files have only frame 1.
    let e = load_study_frame(
        &fixture("pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm"),
        1,
    )
    .unwrap_err();
    assert_eq!(e.kind(), LoadErrorKind::NoSuchFrame);
    assert!(e
        .to_string()
        .ends_with("there is no frame 2 (the image has 1 frame)"));
}

fn reference_entry(name: &str) -> Value {
    reference()[format!("fixtures/{name}")].clone()
}

#[test]
fn dicomdir_lists_its_images_and_is_not_an_image() {
    let dir = fixture("dicomdir");
    let index = dir.join("DICOMDIR");
    assert!(is_dicomdir(&index));
    assert!(!is_dicomdir(&fixture("no_preamble_16x16.dcm")));
    let images = dicomdir_images(&index).unwrap();
    let rel: Vec<String> = images
        .iter()
        .map(|p| {
            p.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    assert_eq!(
        rel,
        [
            "PT000000/ST000000/SE000000/IM000000",
            "PT000000/ST000000/SE000000/IM000001",
            "PT000001/ST000000/SE000000/IM000000",
        ]
    );
    let frames: Vec<u32> = images
        .iter()
        .map(|p| load_study(p).unwrap().metadata.frames)
        .collect();
    assert_eq!(frames, [1, 3, 1]);
    let (kind, msg) = err_text(&index);
    assert_eq!(kind, LoadErrorKind::Dicomdir);
    assert_eq!(
        msg,
        "cannot open DICOMDIR: this is a DICOMDIR (an index of images, not an image): open it \
         as a folder"
    );
}

#[test]
fn oversized_dicom_is_rejected_before_decoding() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(fixture(
        "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm",
    ))
    .unwrap();
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(20000u16),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(20000u16),
    ));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("io_dicom_huge.dcm");
    obj.write_to_file(&path).unwrap();
    let (kind, msg) = err_text(&path);
    assert_eq!(kind, LoadErrorKind::BadDimensions);
    assert_eq!(
        msg,
        "cannot open io_dicom_huge.dcm: image is 20000×20000 pixels, larger than the \
         16384-pixel limit"
    );
}

/// Every shared test file decodes and matches the pydicom reference (JPEG-LS and 12-bit JPEG
/// included since issue 14: no exceptions left). The shared folder is absent on a fresh clone.
#[test]
fn every_shared_dicom_decodes_or_errors_cleanly() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/dicom");
    if !shared.is_dir() {
        println!(
            "note: {} not found; skipping the shared-file walk",
            shared.display()
        );
        return;
    }
    let reference = reference();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            for sub in std::fs::read_dir(&p).unwrap() {
                files.push(sub.unwrap().path());
            }
        } else {
            files.push(p);
        }
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "dcm"));
    files.sort();
    assert!(
        files.len() >= 19,
        "expected the 19 shared files, found {}",
        files.len()
    );
    let mut report = Vec::new();
    for path in &files {
        let key = path
            .strip_prefix(&shared)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let r = &reference[&key];
        assert!(
            r.is_object(),
            "{key} missing from reference.json; rerun the script"
        );
        match load_study(path) {
            Ok(study) => {
                assert_matches_reference(&key, &study, r);
                report.push(format!(
                    "OK    {key} {}x{} {:?}",
                    study.width, study.height, study.window_source
                ));
            }
            Err(e) => report.push(format!("ERROR {key}: {e}")),
        }
    }
    println!("{}", report.join("\n"));
    let failed: Vec<&String> = report.iter().filter(|l| l.starts_with("ERROR")).collect();
    assert!(
        failed.is_empty(),
        "shared files that do not open: {failed:#?}"
    );
}

/// Damaged copies of real files (bytes overwritten, cut at many points) load or fail with a
/// one-line error. dicom-rs 0.10.1's RLE decoder panics (index out of bounds) on some truncated
/// segments; `load_study` must turn that into a `DecoderPanic` error.
#[test]
fn damaged_files_never_panic() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for name in [
        "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm",
        "wg04_RG2_rle_crop_192x160.dcm",
        "siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm",
        "pydicom_mr_jpegls_lossless_16bit_64.dcm",
        "pydicom_nm_jpeg_extended_12bit_1024x256.dcm",
        "multiframe_jpegls_3x16x16.dcm",
        "no_meta_implicit_16x16.dcm",
        // Lookup tables in the header: the flips below the 4 kB mark land in them.
        "voi_lut_mono1_220.dcm",
        "modality_lut_mono1_220.dcm",
        "voi_sigmoid_mono1_220.dcm",
        "padding_range_mono1_240.dcm",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let n = bytes.len();
        let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
        // The header (and the tables in it) alone: a dense spread over its first 4 kB.
        let head = n.min(4096);
        for i in 0..48 {
            let at = 132 + (i * 2_654_435_761usize) % (head - 132);
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5A;
            variants.push((format!("head{at}"), flipped));
        }
        for i in 0..16 {
            let cut = 132 + (n - 132) * i / 16;
            variants.push((format!("cut{cut}"), bytes[..cut].to_vec()));
            let mut flipped = bytes.clone();
            // A deterministic spread of offsets, header and pixel data alike.
            let at = 132 + (i * 7919 + i * i * 104_729) % (n - 132);
            flipped[at] ^= 0xA5;
            flipped[(at + 1) % n] = 0xFF;
            variants.push((format!("flip{at}"), flipped));
        }
        for (tag, data) in variants {
            let path = dir.join(format!("io_dicom_damaged_{tag}_{name}"));
            std::fs::write(&path, &data).unwrap();
            match load_study(&path) {
                Ok(s) => assert_eq!(s.pixels.len(), s.width * s.height, "{tag} {name}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!msg.contains('\n'), "{tag} {name}: {msg:?}");
                    if e.kind() == LoadErrorKind::DecoderPanic {
                        println!("caught decoder panic: {msg}");
                    }
                }
            }
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// PALETTE COLOR goes through its red, green and blue tables to the luma, as pydicom 3.0.2 gives it
/// (`apply_color_lut(ds.pixel_array, ds)`, then 0.299 R + 0.587 G + 0.114 B): three pixels, one
/// grey and two coloured, and the mean of the whole image.
#[test]
fn palette_colour_is_read_through_its_lookup_tables() {
    let study = load("pydicom_us_palette_8bit_800x350.dcm");
    assert_eq!((study.width, study.height), (800, 350));
    assert_eq!(
        study.metadata.photometric_interpretation.as_deref(),
        Some("PALETTE COLOR")
    );
    assert_eq!(study.metadata.bits_stored, 16, "the tables' 16-bit entries");
    for ((row, col), expected) in [
        ((0, 0), 14_892.288),
        ((63, 316), 27_786.752),
        ((70, 329), 23_166.72),
        ((349, 799), 0.0),
    ] {
        let got = study.pixels[row * study.width + col];
        assert!(
            (f64::from(got) - expected).abs() < 0.05,
            "({row}, {col}): {got} vs {expected}"
        );
    }
    let mean = study.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / study.pixels.len() as f64;
    assert!((mean - 4_984.313).abs() < 0.01, "mean {mean}");
}

/// Writes `name` with `edit` applied to a temporary file (the tests below change one attribute of
/// a committed film).
fn edited(name: &str, tag: &str, edit: &dyn Fn(&mut dicom_object::DefaultDicomObject)) -> PathBuf {
    let mut obj = dicom_object::open_file(fixture(name)).unwrap();
    edit(&mut obj);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("io_dicom_{tag}_{name}"));
    obj.write_to_file(&path).unwrap();
    path
}

/// A palette image whose tables are missing or cut short fails in one line or clamps, never
/// panics: without the green table data (segmented tables are not read) it names the table; with
/// a red table of 16 instead of 256 entries, indices past its end take its last entry.
#[test]
fn palette_tables_missing_or_short_fail_in_one_line_or_clamp() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let palette = "pydicom_us_palette_8bit_800x350.dcm";
    let edited = |tag: &str, edit: &dyn Fn(&mut dicom_object::DefaultDicomObject)| {
        edited(palette, tag, edit)
    };
    let no_green = edited("no_green", &|o| {
        o.remove_element(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA);
    });
    let (kind, msg) = err_text(&no_green);
    assert_eq!(kind, LoadErrorKind::Unsupported, "{msg}");
    assert!(msg.contains("without green table data"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    let full = load("pydicom_us_palette_8bit_800x350.dcm");
    let red: Vec<u16> = dicom_object::open_file(fixture("pydicom_us_palette_8bit_800x350.dcm"))
        .unwrap()
        .element(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)
        .unwrap()
        .to_multi_int::<u16>()
        .unwrap();
    let short_red = edited("short_red", &|o| {
        o.put(DataElement::new(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            VR::OW,
            PrimitiveValue::U16(red[..16].iter().copied().collect()),
        ));
    });
    let short = load_study(&short_red).unwrap();
    // Pixel (0, 0) has index 244, past the 16 entries: red becomes entry 15; green and blue stay.
    let delta = 0.299 * (f32::from(red[15]) - f32::from(red[244]));
    assert!(
        (short.pixels[0] - (full.pixels[0] + delta)).abs() < 0.05,
        "{} vs {}",
        short.pixels[0],
        full.pixels[0] + delta
    );
}

/// A VOI LUT Sequence is the manufacturer's rendering and wins over the window, as in pydicom's
/// `apply_voi_lut` (tests/fixtures/dicom/voi_reference.json, scripts/make_voi_fixtures.py): the
/// pixels are the table's output, MONOCHROME1 inverted within the table's own range (not
/// 0..65535, though the descriptor says 16 bits per entry), which is also the default window.
#[test]
fn voi_lut_sequence_is_applied_and_wins_over_the_window() {
    let r = &voi_reference("voi_lut_mono1_220.dcm");
    let study = load("voi_lut_mono1_220.dcm");
    assert_eq!(study.window_source, WindowSource::VoiLut);
    let (lo, hi) = table_range(r);
    assert_eq!(study.default_window, Window { low: lo, high: hi });
    for ((row, col), v) in sampled(r) {
        let want = lo + hi - v as f32;
        assert_eq!(
            study.pixels[row * study.width + col],
            want,
            "({row}, {col})"
        );
    }
    let mean = study.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / study.pixels.len() as f64;
    let want_mean = f64::from(lo + hi) - r["mean"].as_f64().unwrap();
    assert!(
        (mean - want_mean).abs() < 1e-3,
        "mean {mean} vs {want_mean}"
    );
    let unit = study.to_unit(&study.default_window);
    assert!(unit.iter().all(|u| (0.0..=1.0).contains(u)));

    // A table that cannot be used (cut short of its descriptor's count) is skipped: the header
    // window applies, mirrored for MONOCHROME1, as for the film without a table.
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let short = edited("voi_lut_mono1_220.dcm", "short_voi", &|o| {
        let seq = o.element(tags::VOILUT_SEQUENCE).unwrap();
        let mut item = seq.items().unwrap()[0].clone();
        item.put(DataElement::new(
            tags::LUT_DATA,
            VR::US,
            PrimitiveValue::U16([100u16; 10].into_iter().collect()),
        ));
        o.put(DataElement::new(
            tags::VOILUT_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
    });
    let fallback = load_study(&short).unwrap();
    assert_eq!(fallback.window_source, WindowSource::Header);
    let header = Window::from_center_width(550.0, 1024.0);
    assert_eq!(fallback.default_window.low, 1023.0 - header.high);
}

/// Presentation LUT Shape: INVERSE in a MONOCHROME2 film inverts it (the mammography habit); in a
/// MONOCHROME1 film, where the DX IOD requires it, it is the one inversion MONOCHROME1 implies,
/// not a second.
#[test]
fn presentation_lut_shape_inverse() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let inverse = |o: &mut dicom_object::DefaultDicomObject| {
        o.put(DataElement::new(
            tags::PRESENTATION_LUT_SHAPE,
            VR::CS,
            PrimitiveValue::from("INVERSE"),
        ));
    };
    for (name, inverted) in [
        ("siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm", true),
        ("cr_chest_pa_mono1_10bit_explicit_le_440.dcm", false),
    ] {
        let plain = load(name);
        let shaped = load_study(&edited(name, "inverse", &inverse)).unwrap();
        let a = plain.to_unit(&plain.default_window);
        let b = shaped.to_unit(&shaped.default_window);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let want = if inverted { 1.0 - x } else { *x };
            assert!((y - want).abs() < 1e-5, "{name}: {y} vs {want}");
        }
    }
}

/// VOI LUT Function SIGMOID: the header window through the logistic curve, scaled to the 10-bit
/// stored range as pydicom's `apply_voi_lut` gives it (voi_reference.json holds it divided by
/// 1023), then MONOCHROME1's inversion within that range, which is also the window.
#[test]
fn voi_lut_function_sigmoid_is_applied() {
    let r = &voi_reference("voi_sigmoid_mono1_220.dcm");
    let study = load("voi_sigmoid_mono1_220.dcm");
    assert_eq!(study.window_source, WindowSource::Sigmoid);
    assert_eq!(
        study.default_window,
        Window {
            low: 0.0,
            high: 1023.0
        }
    );
    let unit = study.to_unit(&study.default_window);
    for ((row, col), v) in sampled(r) {
        let want = 1.0 - v as f32;
        let got = unit[row * study.width + col];
        assert!((got - want).abs() < 1e-5, "({row}, {col}): {got} vs {want}");
    }
}

/// The windowed film at the reference's sampled pixels against pydicom's output scaled to 0..1,
/// inverted first for MONOCHROME1.
fn assert_windowed_like(study: &Study, r: &Value, inverted: bool, what: &str) {
    let unit = study.to_unit(&study.default_window);
    let mut inside = 0;
    for ((row, col), v) in sampled(r) {
        let want = if inverted { 1.0 - v as f32 } else { v as f32 };
        let got = unit[row * study.width + col];
        assert!(
            (got - want).abs() < 1e-5,
            "{what} ({row}, {col}): {got} vs {want}"
        );
        inside += usize::from(want > 0.0 && want < 1.0);
    }
    // On the ramp, not clipped, is where LINEAR and LINEAR_EXACT differ.
    assert!(
        inside >= 10,
        "{what}: only {inside} sampled pixels on the ramp"
    );
}

/// VOI LUT Function LINEAR_EXACT (PS3.3 C.11.2.1.3.2): the ramp spans exactly c ± w/2, as
/// pydicom's `apply_voi_lut` applies it. Read as LINEAR (c − 0.5 ± (w − 1)/2), as before, each
/// value on the ramp was 0.5/w of the range (1.2e-3 here) off.
#[test]
fn voi_lut_function_linear_exact_is_exact() {
    let name = "voi_linear_exact_mono1_220.dcm";
    let study = load(name);
    assert_eq!(study.window_source, WindowSource::Header);
    // Header: centre 500.25, width 400.5 → 300.0..700.5, mirrored in MONOCHROME1's 0..1023.
    assert_eq!(
        study.default_window,
        Window {
            low: 1023.0 - 700.5,
            high: 1023.0 - 300.0
        }
    );
    assert_windowed_like(&study, &voi_reference(name), true, name);
}

/// A header window too narrow for its function (LINEAR needs a width of at least 1, LINEAR_EXACT
/// and SIGMOID above 0, PS3.3 C.11.2.1.2.1, C.11.2.1.3) is ignored: the film opens on the
/// percentile window, as if it had none, rather than on a zero-width ramp or a division by zero.
#[test]
fn unusable_window_widths_fall_back_to_the_percentile_window() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let name = "voi_linear_exact_mono1_220.dcm";
    let without = load_study(&edited(name, "no_window", &|o| {
        o.remove_element(tags::WINDOW_CENTER);
        o.remove_element(tags::WINDOW_WIDTH);
    }))
    .unwrap();
    assert_eq!(without.window_source, WindowSource::Percentile);
    for (function, width, usable) in [
        ("LINEAR_EXACT", "0", false),
        ("LINEAR_EXACT", "-5", false),
        ("LINEAR_EXACT", "0.5", true),
        ("SIGMOID", "0", false),
        ("LINEAR", "0.5", false),
        ("LINEAR", "1", true),
    ] {
        let tag = format!("width_{function}_{width}");
        let study = load_study(&edited(name, &tag, &|o| {
            o.put(DataElement::new(
                tags::VOILUT_FUNCTION,
                VR::CS,
                PrimitiveValue::from(function),
            ));
            o.put(DataElement::new(
                tags::WINDOW_WIDTH,
                VR::DS,
                PrimitiveValue::from(width),
            ));
        }))
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
        if usable {
            assert_eq!(study.window_source, WindowSource::Header, "{tag}");
        } else {
            assert_eq!(study.window_source, WindowSource::Percentile, "{tag}");
            assert_eq!(study.default_window, without.default_window, "{tag}");
            assert_eq!(study.pixels, without.pixels, "{tag}");
        }
    }
}

/// An enhanced multi-frame image keeps each frame's window in the Per-Frame Functional Groups
/// (Frame VOI LUT Sequence) and its rescale in the Shared ones, nothing at the top level: each
/// frame opens with its own window and function (frame 1 LINEAR, frame 2 LINEAR_EXACT) on the
/// rescaled values, as pydicom windows them with that frame's groups copied to the top level.
/// Before, such files fell back to the percentile window.
#[test]
fn enhanced_multiframe_windows_come_from_the_functional_groups() {
    let name = "enhanced_voi_2frames_mono2_220.dcm";
    let windows = [
        Window::from_center_width(0.0, 1200.0),
        Window::from_center_width_exact(-200.0, 700.5),
    ];
    for (k, window) in windows.into_iter().enumerate() {
        let study = load_study_frame(&fixture(name), k as u32).unwrap();
        assert_eq!(study.metadata.frames, 2);
        assert_eq!(study.metadata.rescale_slope, Some(2.0));
        assert_eq!(study.metadata.rescale_intercept, Some(-1000.0));
        assert_eq!(study.window_source, WindowSource::Header, "frame {}", k + 1);
        assert_eq!(study.default_window, window, "frame {}", k + 1);
        let r = voi_reference(&format!("{name}#{}", k + 1));
        assert_windowed_like(&study, &r, false, &format!("{name} frame {}", k + 1));
    }
}

/// A Modality LUT Sequence stands in for the rescale, as pydicom's `apply_modality_lut`
/// (voi_reference.json): the pixels are its output, MONOCHROME1 inverted within the table's
/// range, and the header window (given in the table's output units) is mirrored in that range.
#[test]
fn modality_lut_sequence_is_applied() {
    let r = &voi_reference("modality_lut_mono1_220.dcm");
    let study = load("modality_lut_mono1_220.dcm");
    let (lo, hi) = table_range(r);
    for ((row, col), v) in sampled(r) {
        let want = lo + hi - v as f32;
        assert_eq!(
            study.pixels[row * study.width + col],
            want,
            "({row}, {col})"
        );
    }
    assert_eq!(study.window_source, WindowSource::Header);
    let header = Window::from_center_width(2600.0, 3000.0);
    assert_eq!(study.default_window.low, lo + hi - header.high);
    assert_eq!(study.default_window.high, lo + hi - header.low);
}

/// An entry of padding_reference.json (scripts/make_padding_fixtures.py).
fn padding_reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("padding_reference.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

/// A reference pair `[a, b]` as f32.
fn pair(r: &Value, key: &str) -> (f32, f32) {
    let v = |i: usize| r[key][i].as_f64().unwrap() as f32;
    (v(0), v(1))
}

/// Whether pixel `i` of the 240 × 240 padding fixtures lies in their 10-pixel frame.
fn in_frame(i: usize) -> bool {
    let (row, col) = (i / 240, i % 240);
    !(10..230).contains(&row) || !(10..230).contains(&col)
}

/// Pixel padding (PS3.3 C.7.5.1.1.2) is not film: the automatic window is set from the film's
/// pixels alone, as the standard asks of a viewer, and the padding shows black. Reference: the
/// order statistics of pydicom's modality values without the padding. Before padding was read,
/// the frame (16 % of the pixels) set the window's black end.
#[test]
fn pixel_padding_is_left_out_of_the_window_and_shown_black() {
    // MONOCHROME1, noise in 1020..1023 marked by PixelPaddingValue 1023 and RangeLimit 1020; the
    // film is inverted within the 10 stored bits (0..1023).
    let name = "padding_range_mono1_240.dcm";
    let r = padding_reference(name);
    let study = load(name);
    assert_eq!(study.window_source, WindowSource::Percentile);
    let mask = study.padding.as_ref().expect("padding read");
    assert_eq!(mask.len(), study.pixels.len());
    assert!((0..mask.len()).all(|i| mask.contains(i) == in_frame(i)));
    let count = mask.count();
    assert_eq!(Some(count as u64), r["padding_pixels"].as_u64());
    assert_eq!(study.metadata.padding_pixels, Some(count));
    let (p_low, p_high) = pair(&r, "film_percentiles");
    assert_eq!(study.default_window.low, 1023.0 - p_high);
    assert_eq!(study.default_window.high, 1023.0 - p_low);
    let (film_min, film_max) = (
        r["film_min"].as_f64().unwrap() as f32,
        r["film_max"].as_f64().unwrap() as f32,
    );
    let film = study.film_values();
    assert_eq!(film.len(), 220 * 220);
    let lowest = film.iter().copied().fold(f32::INFINITY, f32::min);
    let highest = film.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert_eq!((lowest, highest), (1023.0 - film_max, 1023.0 - film_min));
    for (i, &v) in study
        .pixels
        .iter()
        .enumerate()
        .filter(|(i, _)| in_frame(*i))
    {
        assert_eq!(v, 0.0, "padding pixel {i} is not black");
        assert!(study.is_padding(i));
    }

    // MONOCHROME2, signed, RescaleSlope 2 and Intercept −1000, a single PixelPaddingValue −4096
    // (stored; −9192 after the rescale).
    let name = "padding_signed_mono2_240.dcm";
    let r = padding_reference(name);
    let study = load(name);
    let mask = study.padding.as_ref().expect("padding read");
    assert!((0..mask.len()).all(|i| mask.contains(i) == in_frame(i)));
    assert_eq!(
        study.metadata.padding_pixels.map(|n| n as u64),
        r["padding_pixels"].as_u64()
    );
    let (p_low, p_high) = pair(&r, "film_percentiles");
    assert_eq!(
        (study.default_window.low, study.default_window.high),
        (p_low, p_high)
    );
    let (range_low, _) = stored_range(&study, true);
    assert_eq!(
        study.pixels[0], range_low as f32,
        "padding at the range's low end"
    );
    assert!(study.pixels[120 * 240 + 120] > study.default_window.low);

    // A padding value that no pixel has marks nothing: the window is then every pixel's.
    let unused = edited(name, "padding_unused", &|o| {
        use dicom_core::{DataElement, PrimitiveValue, VR};
        o.put(DataElement::new(
            dicom_dictionary_std::tags::PIXEL_PADDING_VALUE,
            VR::SS,
            PrimitiveValue::from(30_000i16),
        ));
    });
    // A range that takes in every pixel (a limit on the wrong side, −4096..1020) contradicts the
    // standard and would leave nothing to show: it is ignored too.
    let everything = edited(name, "padding_everything", &|o| {
        use dicom_core::{DataElement, PrimitiveValue, VR};
        o.put(DataElement::new(
            dicom_dictionary_std::tags::PIXEL_PADDING_RANGE_LIMIT,
            VR::SS,
            PrimitiveValue::from(1020i16),
        ));
    });
    let (a_low, a_high) = pair(&r, "all_percentiles");
    for path in [unused, everything] {
        let study = load_study(&path).unwrap();
        assert!(study.padding.is_none() && study.metadata.padding_pixels.is_none());
        assert_eq!(
            (study.default_window.low, study.default_window.high),
            (a_low, a_high),
            "{}",
            path.display()
        );
    }
}
