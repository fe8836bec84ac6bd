//! DICOM loading through dicom-rs.
//!
//! Pixel values come from dicom-pixeldata's raw value path (`to_vec_frame::<f32>`), which applies
//! only the modality LUT (rescale). Inversion of MONOCHROME1 and the choice of window are done
//! here, explicitly, because the library's convenience paths that do them also squash to 8 bits.

use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PixelRepresentation, Rescale};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::error::root_cause;
use super::{
    check_dimensions, film_values, jpeg12, percentile_window, LoadError, LoadErrorKind,
    PaddingMask, Study, StudyMetadata, Window, WindowSource, MAX_PIXELS,
};

/// Longest value text kept for the tags panel; longer values are cut with an ellipsis.
const TAG_TEXT_MAX: usize = 96;
/// Binary values longer than this are not shown in the tags panel (they are not human-readable).
const TAG_BINARY_MAX: usize = 64;

/// How the DICOM content starts, as found by [`super::detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// Part-10 file: 128-byte preamble, "DICM", File Meta Information.
    Part10,
    /// Part-10 file whose preamble was stripped (starts with "DICM").
    Part10NoPreamble,
    /// A bare data set (no preamble, no File Meta), as old archives and some PACS exports hold;
    /// the transfer syntax is what its first element says: explicit or implicit VR little endian.
    DataSet { explicit_vr: bool },
}

/// Read the file into a DICOM object with a File Meta table (synthesised for bare data sets).
fn open(path: &Path, layout: Layout) -> Result<DefaultDicomObject, LoadError> {
    let corrupt = |e: &(dyn std::error::Error + 'static)| {
        let reason = format!("truncated or corrupt DICOM file ({})", root_cause(e));
        LoadError::new(path, LoadErrorKind::Corrupt, reason)
    };
    super::value_lengths::check(path, layout).map_err(|reason| {
        let what = match layout {
            Layout::DataSet { .. } => "data set",
            _ => "file",
        };
        let reason = format!("truncated or corrupt DICOM {what} ({reason})");
        LoadError::new(path, LoadErrorKind::Corrupt, reason)
    })?;
    let preamble = match layout {
        Layout::Part10 => ReadPreamble::Always,
        Layout::Part10NoPreamble => ReadPreamble::Never,
        Layout::DataSet { explicit_vr } => return open_data_set(path, explicit_vr),
    };
    OpenFileOptions::new()
        .read_preamble(preamble)
        .open_file(path)
        .map_err(|e| corrupt(&e).with_source(e))
}

fn open_data_set(path: &Path, explicit_vr: bool) -> Result<DefaultDicomObject, LoadError> {
    let corrupt = |e: &(dyn std::error::Error + 'static)| {
        let reason = format!("truncated or corrupt DICOM data set ({})", root_cause(e));
        LoadError::new(path, LoadErrorKind::Corrupt, reason)
    };
    let uid = if explicit_vr {
        EXPLICIT_VR_LE
    } else {
        IMPLICIT_VR_LE
    };
    let Some(ts) = TransferSyntaxRegistry.get(uid) else {
        return Err(LoadError::new(
            path,
            LoadErrorKind::UnsupportedTransferSyntax,
            format!("transfer syntax {uid} is not built in"),
        ));
    };
    let file = std::fs::File::open(path)
        .map_err(|e| LoadError::new(path, LoadErrorKind::Io, e.to_string()).with_source(e))?;
    let obj = InMemDicomObject::read_dataset_with_ts(std::io::BufReader::new(file), ts)
        .map_err(|e| corrupt(&e).with_source(e))?;
    let text = |tag| {
        obj.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    };
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uid)
        .media_storage_sop_class_uid(text(tags::SOP_CLASS_UID))
        .media_storage_sop_instance_uid(text(tags::SOP_INSTANCE_UID))
        .build()
        .map_err(|e| corrupt(&e).with_source(e))?;
    Ok(obj.with_exact_meta(meta))
}

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Media Storage Directory Storage: the SOP class of a DICOMDIR.
pub(super) const DICOMDIR_SOP_CLASS: &str = "1.2.840.10008.1.3.10";
/// JPEG Extended (process 2 & 4): 8- or 12-bit lossy JPEG.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// JPEG-LS lossless and near-lossless (CharLS).
const JPEG_LS: [&str; 2] = ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];
/// The transfer syntaxes dicom-pixeldata decodes with its JPEG 2000 adapter (openjp2): Part 1,
/// Part 2 multi-component and High-Throughput JPEG 2000.
const JPEG_2000: [&str; 7] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];

/// One decoded frame before presentation: samples after the modality LUT (rescale).
struct RawFrame {
    width: usize,
    height: usize,
    spp: usize,
    pi: PhotometricInterpretation,
    raw: Vec<f32>,
    rescale: Rescale,
    signed: bool,
    bits_stored: u16,
}

/// Load frame `frame` (0-based) of a DICOM file.
pub(super) fn load(path: &Path, layout: Layout, frame: u32) -> Result<Study, LoadError> {
    let obj = open(path, layout)?;

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
    let sop_class = obj.meta().media_storage_sop_class_uid();
    if sop_class.trim_end_matches(['\0', ' ']) == DICOMDIR_SOP_CLASS
        || obj.get(tags::DIRECTORY_RECORD_SEQUENCE).is_some()
    {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Dicomdir,
            "this is a DICOMDIR (an index of images, not an image): open it as a folder",
        ));
    }
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
    let frames = int_of(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    if frame >= frames {
        return Err(LoadError::new(
            path,
            LoadErrorKind::NoSuchFrame,
            format!(
                "there is no frame {} (the image has {frames} frame{})",
                u64::from(frame) + 1,
                if frames == 1 { "" } else { "s" }
            ),
        ));
    }
    metadata.frames = frames;
    metadata.frame = frame;

    let ts_name = ts.map_or("", |ts| ts.name());
    let decode_reason = |cause: String| {
        format!("cannot decode {ts_name} pixel data, transfer syntax {ts_uid} ({cause})")
    };
    let twelve_bit = matches!(ts_uid.as_str(), JPEG_EXTENDED | JPEG_BASELINE)
        && frame_stream(&obj, frame, frames)
            .ok()
            .is_some_and(|s| jpeg12::sof_precision(&s) == Some(12));
    let f = if twelve_bit {
        decode_jpeg12(&obj, frame, frames)
            .map_err(|cause| LoadError::new(path, LoadErrorKind::Decode, decode_reason(cause)))?
    } else {
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
        let decode_err = |e: dicom_pixeldata::Error| {
            let reason = decode_reason(root_cause(&e));
            LoadError::new(path, LoadErrorKind::Decode, reason).with_source(e)
        };
        let checked = if ts_uid == RLE_LOSSLESS {
            check_rle(&obj, frame)
        } else if JPEG_2000.contains(&ts_uid.as_str()) {
            check_j2k(&obj, frame, frames)
        } else if JPEG_LS.contains(&ts_uid.as_str()) {
            check_jpeg_ls(&obj, frame, frames)
        } else {
            Ok(())
        };
        checked
            .map_err(|cause| LoadError::new(path, LoadErrorKind::Decode, decode_reason(cause)))?;
        let decoded = obj.decode_pixel_data_frame(frame).map_err(decode_err)?;
        let raw: Vec<f32> = decoded.to_vec_frame(0).map_err(decode_err)?;
        RawFrame {
            width: decoded.columns() as usize,
            height: decoded.rows() as usize,
            spp: decoded.samples_per_pixel() as usize,
            pi: decoded.photometric_interpretation().clone(),
            raw,
            rescale: decoded
                .rescale()
                .ok()
                .and_then(|r| r.first().copied())
                .unwrap_or(Rescale {
                    slope: 1.0,
                    intercept: 0.0,
                }),
            signed: decoded.pixel_representation() == PixelRepresentation::Signed,
            bits_stored: decoded.bits_stored(),
        }
    };
    present(path, &obj, frame, f, metadata)
}

/// The compressed bytes of frame `frame` of encapsulated pixel data: one fragment per frame, or
/// fragments grouped by the Basic Offset Table, or all fragments for a single frame.
fn frame_stream(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Result<Vec<u8>, String> {
    let Some(Value::PixelSequence(seq)) = obj.get(tags::PIXEL_DATA).map(|e| e.value()) else {
        return Err("pixel data is not encapsulated".to_string());
    };
    let fragments = seq.fragments();
    if frames == 1 {
        return Ok(fragments.concat());
    }
    if fragments.len() == frames as usize {
        return Ok(fragments[frame as usize].clone());
    }
    let table = seq.offset_table();
    if table.len() != frames as usize {
        return Err(format!(
            "cannot tell which of {} fragments belong to frame {}",
            fragments.len(),
            u64::from(frame) + 1
        ));
    }
    // Offsets count from the first fragment's item tag; each fragment has an 8-byte item header.
    let (start, end) = (
        u64::from(table[frame as usize]),
        table
            .get(frame as usize + 1)
            .map_or(u64::MAX, |&e| u64::from(e)),
    );
    let mut at = 0u64;
    let mut out = Vec::new();
    for frag in fragments {
        if at >= start && at < end {
            out.extend_from_slice(frag);
        }
        at += 8 + frag.len() as u64;
    }
    Ok(out)
}

/// (Columns, Rows, SamplesPerPixel) as the header states them, 0 × 0 × 1 where absent: what a
/// compressed frame is checked against before it is decoded.
fn header_geometry(obj: &DefaultDicomObject) -> (usize, usize, usize) {
    let cols = int_of(obj, tags::COLUMNS).unwrap_or(0) as usize;
    let rows = int_of(obj, tags::ROWS).unwrap_or(0) as usize;
    let spp = int_of(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as usize;
    (cols, rows, spp)
}

/// The frame's JPEG-LS frame header against the image's size ([`super::jpeg_check`]).
fn check_jpeg_ls(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Result<(), String> {
    let stream = frame_stream(obj, frame, frames)?;
    let (cols, rows, _) = header_geometry(obj);
    super::jpeg_check::check_frame_size(&stream, cols, rows)
}

/// The frame's codestream against the image's geometry ([`super::j2k_check`]).
fn check_j2k(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Result<(), String> {
    let stream = frame_stream(obj, frame, frames)?;
    let (cols, rows, spp) = header_geometry(obj);
    super::j2k_check::check(&stream, cols, rows, spp)
}

/// The frame's fragment (the decoder takes fragment `frame`) against the image's geometry.
fn check_rle(obj: &DefaultDicomObject, frame: u32) -> Result<(), String> {
    let Some(Value::PixelSequence(seq)) = obj.get(tags::PIXEL_DATA).map(|e| e.value()) else {
        return Ok(());
    };
    let Some(fragment) = seq.fragments().get(frame as usize) else {
        return Ok(());
    };
    let (cols, rows, spp) = header_geometry(obj);
    let bytes = int_of(obj, tags::BITS_ALLOCATED).unwrap_or(8) as usize / 8;
    super::rle_check::check(fragment, spp.saturating_mul(bytes), rows * cols)
}

fn decode_jpeg12(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Result<RawFrame, String> {
    let stream = frame_stream(obj, frame, frames)?;
    let d = jpeg12::decode(&stream, MAX_PIXELS)?;
    let (cols, rows, _) = header_geometry(obj);
    if (d.width, d.height) != (cols, rows) {
        return Err(format!(
            "JPEG frame is {}×{} but the header says {cols}×{rows}",
            d.width, d.height
        ));
    }
    let bits_stored = int_of(obj, tags::BITS_STORED)
        .and_then(|b| u16::try_from(b).ok())
        .unwrap_or(12);
    let signed = int_of(obj, tags::PIXEL_REPRESENTATION) == Some(1);
    let rescale_at = rescale_attributes(obj, frame);
    let slope = first_f64(rescale_at, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = first_f64(rescale_at, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let shift = 16 - u32::from(bits_stored.clamp(1, 16));
    let raw = d
        .samples
        .iter()
        .map(|&s| {
            // Signed data: the stored bits are two's complement; sign-extend them.
            let v = if signed {
                f64::from((s << shift) >> shift)
            } else {
                f64::from(s)
            };
            (slope * v + intercept) as f32
        })
        .collect();
    let pi = if d.components == 3 {
        // libjpeg-turbo has already converted YCbCr to RGB.
        PhotometricInterpretation::Rgb
    } else {
        str_of(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .map(PhotometricInterpretation::from)
            .unwrap_or(PhotometricInterpretation::Monochrome2)
    };
    Ok(RawFrame {
        width: d.width,
        height: d.height,
        spp: d.components,
        pi,
        raw,
        rescale: Rescale { slope, intercept },
        signed,
        bits_stored,
    })
}

/// Grey levels, MONOCHROME1 inversion and the default window of one decoded frame.
fn present(
    path: &Path,
    obj: &DefaultDicomObject,
    frame: u32,
    f: RawFrame,
    mut metadata: StudyMetadata,
) -> Result<Study, LoadError> {
    let RawFrame {
        width,
        height,
        spp,
        pi,
        raw,
        rescale,
        signed,
        mut bits_stored,
    } = f;
    let n = width * height;
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
        (1, PhotometricInterpretation::PaletteColor) => {
            let (luma, entry_bits) = palette_luma(obj, &raw[..n])
                .map_err(|reason| LoadError::new(path, LoadErrorKind::Unsupported, reason))?;
            // The values are now the tables' entries, not the stored indices.
            bits_stored = entry_bits;
            luma
        }
        _ => {
            return Err(LoadError::new(
                path,
                LoadErrorKind::Unsupported,
                format!("unsupported photometric interpretation {pi} with {spp} samples per pixel"),
            ))
        }
    };

    let (mut min_possible, mut max_possible) = value_range(bits_stored, signed, rescale);
    let mono1 = pi == PhotometricInterpretation::Monochrome1;
    let mono2 = pi == PhotometricInterpretation::Monochrome2;
    let grey = mono1 || mono2;
    // Compared in the values as decoded (the rescale applied, no table yet), before any transform.
    let padding = grey
        .then(|| padding_mask(obj, &pixels, rescale, signed))
        .flatten();
    // A Modality LUT Sequence stands in for the rescale (the two are exclusive; with both, the
    // rescale that dicom-pixeldata already applied is kept). Its output is the modality value.
    let identity = rescale.slope == 1.0 && rescale.intercept == 0.0;
    let modality = (identity && grey)
        .then(|| {
            lookup_table(
                obj,
                signed,
                tags::MODALITY_LUT_SEQUENCE,
                "Modality LUT Sequence",
            )
        })
        .flatten();
    if let Some(lut) = &modality {
        lut.apply_in_place(&mut pixels);
        (min_possible, max_possible) = (lut.min, lut.max);
    }
    // Presentation LUT Shape (2050,0020). In MONOCHROME1 files INVERSE is what the DX IOD
    // requires and means the one inversion MONOCHROME1 already implies (read as a second one, it
    // showed plain films as negatives in Weasis 4.0.3); in MONOCHROME2, INVERSE inverts.
    let inverse_shape =
        mono2 && str_of(obj, tags::PRESENTATION_LUT_SHAPE).is_some_and(|v| v.trim() == "INVERSE");
    let invert = mono1 || inverse_shape;
    // A VOI LUT Sequence wins over the window, as in pydicom's apply_voi_lut and dicom-pixeldata:
    // the table is the manufacturer's rendering of the film (PS3.3 C.11.2). The pixels become the
    // table's output; MONOCHROME1 is then inverted within the table's own range.
    let voi_attributes = voi_attributes(obj, frame);
    let voi = grey
        .then(|| {
            lookup_table(
                voi_attributes,
                signed,
                tags::VOILUT_SEQUENCE,
                "VOI LUT Sequence",
            )
        })
        .flatten();
    let header = match voi {
        Some(_) => None,
        None => header_voi(voi_attributes),
    };
    // VOI LUT Function SIGMOID (PS3.3 C.11.2.1.3.1): y = 1 / (1 + exp(−4 (x − c) / w)) on the
    // header's centre and width, not the linear ramp; also baked into the pixels, scaled to the
    // range of the stored values as pydicom's apply_windowing does (so the status bar's values
    // and the window's width stay on the film's scale).
    let sigmoid = header.filter(|h| grey && h.function == VoiFunction::Sigmoid);
    let header = header.map(|h| h.window());
    let baked = if let Some(lut) = &voi {
        lut.apply_in_place(&mut pixels);
        Some((lut.min, lut.max, WindowSource::VoiLut))
    } else if let Some(HeaderVoi { centre, width, .. }) = sigmoid {
        let (c, width) = (centre as f32, width as f32);
        let (lo, hi) = (min_possible, max_possible);
        for v in &mut pixels {
            *v = lo + (hi - lo) / (1.0 + (-4.0 * (*v - c) / width).exp());
        }
        Some((lo, hi, WindowSource::Sigmoid))
    } else {
        None
    };
    if let Some((lo, hi, _)) = baked {
        (min_possible, max_possible) = (lo, hi);
    }
    if invert {
        invert_in_place(&mut pixels, min_possible, max_possible);
    }
    // Padding is not film: black under any window, and out of the automatic window below.
    if let Some(mask) = &padding {
        for i in mask.indices() {
            pixels[i] = min_possible;
        }
    }
    let (default_window, window_source) = match (baked, header) {
        // Symmetric about the middle of the range it is inverted in: no mirroring needed.
        (Some((low, high, source)), _) => (Window { low, high }, source),
        (None, Some(w)) if invert => (
            mirror_window(w, min_possible, max_possible),
            WindowSource::Header,
        ),
        (None, Some(w)) => (w, WindowSource::Header),
        // Computed on the already inverted values, so it needs no mirroring.
        (None, None) => (
            percentile_window(film_values(&pixels, padding.as_ref())),
            WindowSource::Percentile,
        ),
    };
    metadata.padding_pixels = padding.as_ref().map(PaddingMask::count);

    // The header's value stays (reasons quote it as "PhotometricInterpretation …"): a JPEG
    // decoder hands YBR_FULL_422 back as RGB. The decoded one only fills an absent header.
    if metadata.photometric_interpretation.is_none() {
        metadata.photometric_interpretation = Some(pi.to_string());
    }
    metadata.bits_stored = bits_stored;
    // An enhanced image's rescale is in its functional groups, not at the top level.
    if metadata.rescale_slope.is_none() && (rescale.slope, rescale.intercept) != (1.0, 0.0) {
        metadata.rescale_slope = Some(rescale.slope);
        metadata.rescale_intercept = Some(rescale.intercept);
    }
    Ok(Study {
        source: path.to_path_buf(),
        width,
        height,
        pixels,
        default_window,
        window_source,
        metadata,
        padding,
    })
}

/// The pixels that PixelPaddingValue (0028,0120) and PixelPaddingRangeLimit (0028,0121), an
/// inclusive range, mark as padding (PS3.3 C.7.5.1.1.2); `None` when the header marks none, no
/// pixel has it, or every pixel does. The standard gives the values in stored units, before the
/// modality LUT; `values` are after the rescale, so the range is rescaled too, widened by a
/// quarter of a stored step for the rounding of the decoded f32 values (never enough to take in a
/// neighbouring value).
fn padding_mask(
    obj: &DefaultDicomObject,
    values: &[f32],
    rescale: Rescale,
    signed: bool,
) -> Option<PaddingMask> {
    let stored = |tag: Tag| -> Option<f64> {
        let v = obj.get(tag)?.to_int::<i64>().ok()?;
        // US or SS by the pixel representation; a writer may hand SS over as its US bits.
        let v = if signed && (32_768..=65_535).contains(&v) {
            v - 65_536
        } else {
            v
        };
        Some(v as f64)
    };
    let value = stored(tags::PIXEL_PADDING_VALUE)?;
    let limit = stored(tags::PIXEL_PADDING_RANGE_LIMIT).unwrap_or(value);
    let Rescale { slope, intercept } = rescale;
    if slope == 0.0 || !slope.is_finite() || !intercept.is_finite() {
        return None;
    }
    let (a, b) = (slope * value + intercept, slope * limit + intercept);
    let tolerance = 0.25 * slope.abs();
    let (low, high) = (a.min(b) - tolerance, a.max(b) + tolerance);
    let mask = PaddingMask::from_fn(values.len(), |i| {
        (low..=high).contains(&f64::from(values[i]))
    });
    match mask.count() {
        0 => None,
        // The standard forbids padding values inside the image; a header that makes the whole
        // film padding is wrong, and following it would show nothing.
        n if n == mask.len() => {
            tracing::warn!(
                value,
                limit,
                "ignoring pixel padding that covers every pixel"
            );
            None
        }
        _ => Some(mask),
    }
}

/// PALETTE COLOR (an ultrasound or secondary-capture image, never a radiograph, but the scope guard
/// must see it to say so): each stored value indexes the red, green and blue lookup tables
/// (PS3.3 C.7.6.3.1.5–6: descriptor = entries (0 means 65,536), first mapped value, bits per
/// entry; values below the first or past the last entry take the first or last entry) and the
/// film is their luma, as for RGB. Segmented tables (C.7.9.2) are not read. Returns the luma and
/// the bits per entry.
fn palette_luma(obj: &DefaultDicomObject, indices: &[f32]) -> Result<(Vec<f32>, u16), String> {
    let channels = [
        (
            "red",
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
        (
            "green",
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
        (
            "blue",
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        ),
    ];
    let mut tables = Vec::with_capacity(3);
    let mut entry_bits = 8;
    for (name, descriptor, data) in channels {
        let Some((entries, first, bits)) = lut_descriptor(obj.get(descriptor)) else {
            return Err(format!(
                "PALETTE COLOR without a {name} lookup table descriptor"
            ));
        };
        // The first mapped value is US or SS by the pixel representation; an index is unsigned.
        let first = first & 0xffff;
        let Some(bits) = u16::try_from(bits).ok().filter(|b| (1..=16).contains(b)) else {
            return Err(format!(
                "PALETTE COLOR {name} table with {bits} bits per entry"
            ));
        };
        let Some(element) = obj.get(data) else {
            return Err(format!(
                "PALETTE COLOR without {name} table data (segmented tables are not supported)"
            ));
        };
        let unreadable = || format!("unreadable {name} palette lookup table data");
        // Eight-bit entries may come one per byte; otherwise one 16-bit word each.
        let table: Vec<f32> = match element.value() {
            Value::Primitive(PrimitiveValue::U8(b)) if bits <= 8 && b.len() == entries => {
                b.iter().map(|&v| f32::from(v)).collect()
            }
            _ => {
                let mut words = lut_words(element).ok_or_else(unreadable)?;
                words.truncate(entries);
                words
            }
        };
        if table.is_empty() {
            return Err(format!("empty {name} palette lookup table"));
        }
        entry_bits = entry_bits.max(bits);
        tables.push((first as f32, table));
    }
    let entry = |(first, table): &(f32, Vec<f32>), v: f32| {
        let i = (v - first).max(0.0) as usize;
        table[i.min(table.len() - 1)]
    };
    let luma = indices
        .iter()
        .map(|&v| {
            0.299 * entry(&tables[0], v)
                + 0.587 * entry(&tables[1], v)
                + 0.114 * entry(&tables[2], v)
        })
        .collect();
    Ok((luma, entry_bits))
}

/// A LUT Descriptor (palette, modality or VOI table): number of entries (0 means 65,536), first
/// mapped value as read (US or SS by the pixel representation; the caller interprets it), bits
/// per entry. `None` unless it holds exactly three integers.
fn lut_descriptor(element: Option<&InMemElement>) -> Option<(usize, i64, i64)> {
    let d: Vec<i64> = element?.to_multi_int::<i64>().ok()?;
    let [entries, first, bits] = d[..] else {
        return None;
    };
    let entries = match entries & 0xffff {
        0 => 65_536,
        e => e as usize,
    };
    Some((entries, first, bits))
}

/// The 16-bit words of a LUT Data element: OW read as bytes is taken as little-endian words,
/// anything else through its integer values. `None` when unreadable.
fn lut_words(element: &InMemElement) -> Option<Vec<f32>> {
    match element.value() {
        Value::Primitive(PrimitiveValue::U8(b)) => Some(
            b.chunks_exact(2)
                .map(|w| f32::from(u16::from_le_bytes([w[0], w[1]])))
                .collect(),
        ),
        _ => Some(
            element
                .to_multi_int::<u16>()
                .ok()?
                .into_iter()
                .map(f32::from)
                .collect(),
        ),
    }
}

/// The first table of a Modality LUT Sequence (0028,3000) or a VOI LUT Sequence (0028,3010):
/// LUT Descriptor = entries (0 means 65,536), first mapped value (US, or SS for signed pixels),
/// bits per entry; values below the first mapped value take the first entry, values past the last
/// take the last (PS3.3 C.11.1.1, C.11.2.1.1). A modality table replaces the rescale (its input
/// is the stored value); a VOI table's input is the modality value. The output range used for
/// inversion and the window is the table's own minimum and maximum rather than `2^bits − 1`: Agfa
/// CR, among others, declares 16 bits per entry for entries that span 12, which would show the
/// film nearly black. Further VOI items are alternative renderings; the first is the default, as
/// in pydicom. A table that cannot be read is skipped with a warning (rescale, or the header
/// window, is used instead).
#[derive(Clone, Debug)]
struct LookupTable {
    first: i64,
    table: Vec<f32>,
    min: f32,
    max: f32,
}

impl LookupTable {
    fn apply_in_place(&self, values: &mut [f32]) {
        let last = self.table.len() - 1;
        for v in values {
            // Modality values of integer pixels are integers unless a fractional rescale made
            // them otherwise; the table is indexed by the rounded value, as pydicom does.
            let i = (v.round() as i64 - self.first).clamp(0, last as i64) as usize;
            *v = self.table[i];
        }
    }
}

/// `attributes`: the data set or functional-group item holding `sequence`; `signed`: the
/// pixels' representation, which says how the first mapped value reads.
fn lookup_table(
    attributes: &InMemDicomObject,
    signed: bool,
    sequence: Tag,
    name: &str,
) -> Option<LookupTable> {
    let item = attributes.get(sequence)?.items()?.first()?;
    let read = || -> Result<LookupTable, String> {
        let (entries, first, _bits) =
            lut_descriptor(item.get(tags::LUT_DESCRIPTOR)).ok_or("no usable LUT Descriptor")?;
        // US or SS by the pixel representation; a reader may hand SS back as its US bits.
        let first = if signed {
            i64::from((first & 0xffff) as u16 as i16)
        } else {
            first & 0xffff
        };
        let data = item.get(tags::LUT_DATA).ok_or("no LUT Data")?;
        let table = lut_words(data).ok_or("unreadable LUT Data")?;
        if table.len() != entries {
            return Err(format!(
                "LUT Data holds {} entries, the descriptor says {entries}",
                table.len()
            ));
        }
        let min = table.iter().copied().fold(f32::INFINITY, f32::min);
        let max = table.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max <= min {
            return Err("a flat table".into());
        }
        Ok(LookupTable {
            first,
            table,
            min,
            max,
        })
    };
    read()
        .map_err(|why| tracing::warn!(why, table = name, "ignoring the lookup table"))
        .ok()
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

/// Where a frame's VOI attributes (window, VOI LUT Function, VOI LUT Sequence) are: at the top
/// level in the classic IODs, else in the Frame VOI LUT Sequence (0028,9132) of the frame's
/// functional groups (PS3.3 C.7.6.16.2.10). Before these were read, enhanced files fell back to
/// the percentile window whatever window each frame carried.
fn voi_attributes(obj: &InMemDicomObject, frame: u32) -> &InMemDicomObject {
    frame_attributes(
        obj,
        frame,
        &[
            tags::WINDOW_CENTER,
            tags::VOILUT_SEQUENCE,
            tags::VOILUT_FUNCTION,
        ],
        tags::FRAME_VOILUT_SEQUENCE,
    )
}

/// Where a frame's rescale is: at the top level in the classic IODs, else in the Pixel Value
/// Transformation Sequence (0028,9145) of the frame's functional groups (PS3.3 C.7.6.16.2.9).
/// dicom-pixeldata finds it itself; the 12-bit JPEG path, which decodes outside it, reads it here.
fn rescale_attributes(obj: &InMemDicomObject, frame: u32) -> &InMemDicomObject {
    frame_attributes(
        obj,
        frame,
        &[tags::RESCALE_SLOPE, tags::RESCALE_INTERCEPT],
        tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
    )
}

/// The data set holding one functional group's attributes for `frame`: the top level when any of
/// `at_top` is there (classic IODs), else the first item of `group_sequence` in the frame's item
/// of the Per-Frame Functional Groups Sequence, or else in the Shared Functional Groups Sequence
/// (an enhanced multi-frame image puts each group in one of the two, PS3.3 C.7.6.16); the top
/// level again when neither has it, so absent attributes read as absent.
fn frame_attributes<'a>(
    obj: &'a InMemDicomObject,
    frame: u32,
    at_top: &[Tag],
    group_sequence: Tag,
) -> &'a InMemDicomObject {
    if at_top.iter().any(|&tag| obj.get(tag).is_some()) {
        return obj;
    }
    let first_item = |group: &'a InMemDicomObject| group.get(group_sequence)?.items()?.first();
    let per_frame = obj
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|s| s.items()?.get(frame as usize))
        .and_then(first_item);
    let shared = || {
        obj.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|s| s.items()?.first())
            .and_then(first_item)
    };
    per_frame.or_else(shared).unwrap_or(obj)
}

/// VOI LUT Function (0028,1056), PS3.3 C.11.2.1.2–3; absent or unknown reads as LINEAR, the
/// standard's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// The first WindowCenter/WindowWidth pair and the function that maps it.
#[derive(Clone, Copy, Debug)]
struct HeaderVoi {
    centre: f64,
    width: f64,
    function: VoiFunction,
}

impl HeaderVoi {
    /// The linear window it stands for (SIGMOID is baked into the pixels instead).
    fn window(self) -> Window {
        let (c, w) = (self.centre as f32, self.width as f32);
        match self.function {
            VoiFunction::LinearExact => Window::from_center_width_exact(c, w),
            VoiFunction::Linear | VoiFunction::Sigmoid => Window::from_center_width(c, w),
        }
    }
}

/// The header window, if usable: LINEAR needs a width of at least 1, LINEAR_EXACT and SIGMOID a
/// width above 0 (PS3.3 C.11.2.1.2.1, C.11.2.1.3).
fn header_voi(attributes: &InMemDicomObject) -> Option<HeaderVoi> {
    let centre = first_f64(attributes, tags::WINDOW_CENTER)?;
    let width = first_f64(attributes, tags::WINDOW_WIDTH)?;
    let function = match str_of(attributes, tags::VOILUT_FUNCTION).as_deref() {
        Some("LINEAR_EXACT") => VoiFunction::LinearExact,
        Some("SIGMOID") => VoiFunction::Sigmoid,
        _ => VoiFunction::Linear,
    };
    let least = match function {
        VoiFunction::Linear => width >= 1.0,
        VoiFunction::LinearExact | VoiFunction::Sigmoid => width > 0.0,
    };
    if !centre.is_finite() || !width.is_finite() || !least {
        tracing::warn!(centre, width, ?function, "ignoring unusable header window");
        return None;
    }
    Some(HeaderVoi {
        centre,
        width,
        function,
    })
}

fn int_of(obj: &InMemDicomObject, tag: Tag) -> Option<u32> {
    obj.get(tag).and_then(|e| e.to_int::<u32>().ok())
}

fn first_f64(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .and_then(|v| v.first().copied())
}

fn pair_f64(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; 2]> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    match v.as_slice() {
        [a, b, ..] => Some([*a, *b]),
        _ => None,
    }
}

fn str_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
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
        ..Default::default()
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
