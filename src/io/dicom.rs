//! DICOM loading through dicom-rs.
//!
//! Pixel values come from dicom-pixeldata's raw value path (`to_vec_frame::<f32>`), which applies
//! only the modality LUT (rescale). Inversion of MONOCHROME1 and the choice of window are done
//! here, explicitly, because the library's convenience paths that do them also squash to 8 bits.

use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation, Rescale};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::error::root_cause;
use super::{
    check_dimensions, percentile_window, LoadError, LoadErrorKind, Study, StudyMetadata, Window,
    WindowSource,
};

/// Longest value text kept for the tags panel; longer values are cut with an ellipsis.
const TAG_TEXT_MAX: usize = 96;
/// Binary values longer than this are not shown in the tags panel (they are not human-readable).
const TAG_BINARY_MAX: usize = 64;

pub(super) fn load(path: &Path, has_preamble: bool) -> Result<Study, LoadError> {
    let preamble = if has_preamble {
        ReadPreamble::Always
    } else {
        ReadPreamble::Never
    };
    let obj = OpenFileOptions::new()
        .read_preamble(preamble)
        .open_file(path)
        .map_err(|e| {
            let reason = format!("truncated or corrupt DICOM file ({})", root_cause(&e));
            LoadError::new(path, LoadErrorKind::Corrupt, reason).with_source(e)
        })?;

    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid);
    let ts_text = match ts {
        Some(ts) => format!("{ts_uid} ({})", ts.name()),
        None => ts_uid.clone(),
    };
    let mut metadata = read_metadata(&obj);
    metadata.transfer_syntax = Some(ts_text.clone());

    let rows = int_of(&obj, tags::ROWS);
    let cols = int_of(&obj, tags::COLUMNS);
    let (Some(rows), Some(cols)) = (rows, cols) else {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Corrupt,
            "no image in this DICOM file (Rows/Columns missing)",
        ));
    };
    check_dimensions(path, cols as usize, rows as usize)?;
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Corrupt,
            "no image in this DICOM file (PixelData missing)",
        ));
    }
    match ts {
        Some(ts) if ts.can_decode_all() => {}
        _ => {
            return Err(LoadError::new(
                path,
                LoadErrorKind::UnsupportedTransferSyntax,
                format!("unsupported transfer syntax {ts_text}"),
            ))
        }
    }
    // dicom-pixeldata's lookup table asserts on these; reject them as data errors instead.
    let bits_allocated = int_of(&obj, tags::BITS_ALLOCATED).unwrap_or(0);
    let bits_stored = int_of(&obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    if !matches!(bits_allocated, 8 | 16) || bits_stored == 0 || bits_stored > bits_allocated {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Unsupported,
            format!(
                "unsupported pixel layout (BitsAllocated {bits_allocated}, BitsStored {bits_stored})"
            ),
        ));
    }
    let frames = int_of(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if frames > 1 {
        tracing::info!(path = %path.display(), frames, "multi-frame DICOM: showing frame 0");
    }
    if obj.get(tags::MODALITY_LUT_SEQUENCE).is_some() {
        tracing::warn!(path = %path.display(), "Modality LUT Sequence is not applied; using rescale only");
    }

    let ts_name = ts.map_or("", |ts| ts.name());
    let decode_err = |e: dicom_pixeldata::Error| {
        let cause = root_cause(&e);
        // jpeg-decoder (pure Rust) implements 8-bit lossy and lossless JPEG only; say so plainly
        // for the 12-bit JPEG Extended files that real archives still contain.
        let cause = if cause.contains("SamplePrecision(12)") {
            format!("12-bit lossy JPEG is not supported by the built-in decoder: {cause}")
        } else {
            cause
        };
        let reason =
            format!("cannot decode {ts_name} pixel data, transfer syntax {ts_uid} ({cause})");
        LoadError::new(path, LoadErrorKind::Decode, reason).with_source(e)
    };
    let decoded = obj.decode_pixel_data_frame(0).map_err(decode_err)?;
    let raw: Vec<f32> = decoded.to_vec_frame(0).map_err(decode_err)?;

    let (width, height) = (decoded.columns() as usize, decoded.rows() as usize);
    let n = width * height;
    let spp = decoded.samples_per_pixel() as usize;
    if raw.len() < n * spp {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Corrupt,
            format!(
                "truncated or corrupt DICOM file (pixel data holds {} of {} samples)",
                raw.len(),
                n * spp
            ),
        ));
    }
    let pi = decoded.photometric_interpretation().clone();
    let mut pixels = match (spp, &pi) {
        (1, PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2) => {
            let mut raw = raw;
            raw.truncate(n);
            raw
        }
        (3, PhotometricInterpretation::Rgb) => raw
            .chunks_exact(3)
            .take(n)
            .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
            .collect(),
        // Native YBR: luma is the first sample.
        (3, PhotometricInterpretation::YbrFull) => {
            raw.chunks_exact(3).take(n).map(|p| p[0]).collect()
        }
        _ => {
            return Err(LoadError::new(
                path,
                LoadErrorKind::Unsupported,
                format!("unsupported photometric interpretation {pi} with {spp} samples per pixel"),
            ))
        }
    };

    let rescale = decoded
        .rescale()
        .ok()
        .and_then(|r| r.first().copied())
        .unwrap_or(Rescale {
            slope: 1.0,
            intercept: 0.0,
        });
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let (min_possible, max_possible) = value_range(decoded.bits_stored(), signed, rescale);

    let mono1 = pi == PhotometricInterpretation::Monochrome1;
    if mono1 {
        invert_in_place(&mut pixels, min_possible, max_possible);
    }
    let (default_window, window_source) = match first_window(&obj) {
        Some(w) if mono1 => (
            mirror_window(w, min_possible, max_possible),
            WindowSource::Header,
        ),
        Some(w) => (w, WindowSource::Header),
        // Computed on the already inverted values, so it needs no mirroring.
        None => (percentile_window(&pixels), WindowSource::Percentile),
    };

    metadata.photometric_interpretation = Some(pi.to_string());
    metadata.bits_stored = decoded.bits_stored();
    Ok(Study {
        source: path.to_path_buf(),
        width,
        height,
        pixels,
        default_window,
        window_source,
        metadata,
    })
}

/// Post-rescale range of the values the stored bits can hold; MONOCHROME1 is mirrored inside this
/// range (not the image's own min..max) so that the same stored value always maps to the same
/// displayed value, whatever the content of the image.
pub(crate) fn value_range(bits_stored: u16, signed: bool, rescale: Rescale) -> (f32, f32) {
    let bits = i32::from(bits_stored.clamp(1, 32));
    let (lo, hi) = if signed {
        (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
    } else {
        (0.0, 2f64.powi(bits) - 1.0)
    };
    let a = rescale.slope * lo + rescale.intercept;
    let b = rescale.slope * hi + rescale.intercept;
    (a.min(b) as f32, a.max(b) as f32)
}

/// `v' = (max + min) - v`: larger becomes brighter, as in MONOCHROME2.
pub(crate) fn invert_in_place(pixels: &mut [f32], min_possible: f32, max_possible: f32) {
    let s = max_possible + min_possible;
    for v in pixels {
        *v = s - *v;
    }
}

/// The header window mirrored like the pixels: `apply'(s - v) == 1 - apply(v)`.
pub(crate) fn mirror_window(w: Window, min_possible: f32, max_possible: f32) -> Window {
    let s = max_possible + min_possible;
    Window {
        low: s - w.high,
        high: s - w.low,
    }
}

/// First WindowCenter/WindowWidth pair, if usable (the standard requires width >= 1).
fn first_window(obj: &DefaultDicomObject) -> Option<Window> {
    let c = first_f64(obj, tags::WINDOW_CENTER)?;
    let w = first_f64(obj, tags::WINDOW_WIDTH)?;
    if !c.is_finite() || !w.is_finite() || w < 1.0 {
        tracing::warn!(center = c, width = w, "ignoring unusable header window");
        return None;
    }
    Some(Window::from_center_width(c as f32, w as f32))
}

fn int_of(obj: &DefaultDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag).and_then(|e| e.to_int::<u32>().ok())
}

fn first_f64(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .and_then(|v| v.first().copied())
}

fn pair_f64(obj: &DefaultDicomObject, tag: Tag) -> Option<[f64; 2]> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    match v.as_slice() {
        [a, b, ..] => Some([*a, *b]),
        _ => None,
    }
}

fn str_of(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn read_metadata(obj: &DefaultDicomObject) -> StudyMetadata {
    StudyMetadata {
        format: "DICOM".to_string(),
        transfer_syntax: None,
        modality: str_of(obj, tags::MODALITY),
        view_position: str_of(obj, tags::VIEW_POSITION),
        patient_age: str_of(obj, tags::PATIENT_AGE),
        patient_sex: str_of(obj, tags::PATIENT_SEX),
        photometric_interpretation: str_of(obj, tags::PHOTOMETRIC_INTERPRETATION),
        pixel_spacing: pair_f64(obj, tags::PIXEL_SPACING),
        imager_pixel_spacing: pair_f64(obj, tags::IMAGER_PIXEL_SPACING),
        study_date: str_of(obj, tags::STUDY_DATE),
        sop_instance_uid: str_of(obj, tags::SOP_INSTANCE_UID),
        bits_stored: int_of(obj, tags::BITS_STORED)
            .and_then(|b| u16::try_from(b).ok())
            .unwrap_or(0),
        rescale_slope: first_f64(obj, tags::RESCALE_SLOPE),
        rescale_intercept: first_f64(obj, tags::RESCALE_INTERCEPT),
        patient_name: str_of(obj, tags::PATIENT_NAME),
        patient_id: str_of(obj, tags::PATIENT_ID),
        tags: tag_rows(obj),
        colourfulness: None,
    }
}

fn tag_rows(obj: &DefaultDicomObject) -> Vec<(String, String, String)> {
    let dict = StandardDataDictionary;
    let mut rows = Vec::new();
    for elem in obj.iter() {
        let tag = elem.tag();
        if tag == tags::PIXEL_DATA {
            continue;
        }
        let text = match elem.value() {
            Value::Sequence(seq) => format!("<sequence of {} items>", seq.items().len()),
            Value::PixelSequence(_) => continue,
            Value::Primitive(p) => {
                let binary = matches!(
                    elem.vr(),
                    VR::OB | VR::OW | VR::OF | VR::OD | VR::OL | VR::OV | VR::UN
                );
                if binary && p.calculate_byte_len() > TAG_BINARY_MAX {
                    continue;
                }
                shorten(&p.to_str())
            }
        };
        let keyword = dict
            .by_tag(tag)
            .map(|e| e.alias().to_string())
            .unwrap_or_default();
        rows.push((
            format!("({:04X},{:04X})", tag.group(), tag.element()),
            keyword,
            text,
        ));
    }
    rows
}

fn shorten(s: &str) -> String {
    let clean: String = s
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > TAG_TEXT_MAX {
        let cut: String = clean.chars().take(TAG_TEXT_MAX).collect();
        format!("{cut}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_bit_unsigned_range() {
        let r = Rescale {
            slope: 1.0,
            intercept: 0.0,
        };
        assert_eq!(value_range(10, false, r), (0.0, 1023.0));
        assert_eq!(value_range(12, true, r), (-2048.0, 2047.0));
        let neg = Rescale {
            slope: -2.0,
            intercept: 10.0,
        };
        assert_eq!(value_range(8, false, neg), (10.0 - 510.0, 10.0));
    }

    #[test]
    fn mirrored_window_complements_apply() {
        let w = Window::from_center_width(550.0, 1024.0);
        let m = mirror_window(w, 0.0, 1023.0);
        for v in [0.0f32, 100.0, 37.5, 550.0, 800.0, 1023.0] {
            let a = w.apply(v);
            let b = m.apply(1023.0 - v);
            assert!((a + b - 1.0).abs() < 1e-6, "{v}: {a} + {b}");
        }
    }
}
