//! PNG/JPEG loading.
//!
//! The classifier was trained on images read with Pillow and converted to "L", so colour input
//! is reduced to luma exactly the way Pillow does it, and 8-bit values stay integers `0..=255`
//! (the default window then maps them to `v / 255`).
//!
//! An EXIF Orientation tag (JPEG's APP1, PNG's eXIf chunk) is applied, as every image viewer
//! and PACS export expects: a film stored sideways with "rotate 90° clockwise" is shown, analysed
//! and annotated upright. Pillow's plain `Image.open`, which read the training films, ignores the
//! tag, but none of the training, validation or sample films carries one other than 1 (checked
//! on all 5,325 JPEG/PNG files of `../shared`), so the model saw them as displayed here.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::error::root_cause;
use super::jpeg_check;
use super::{
    check_dimensions, LoadError, LoadErrorKind, Study, StudyMetadata, Window, WindowSource,
    MAX_PIXELS, MAX_SIDE,
};

/// Largest decoded buffer we let the image crate allocate: 16-bit RGBA at [`MAX_PIXELS`].
const MAX_ALLOC_BYTES: u64 = MAX_PIXELS as u64 * 8;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE as u32);
    limits.max_image_height = Some(MAX_SIDE as u32);
    limits.max_alloc = Some(MAX_ALLOC_BYTES);
    limits
}

fn reader(path: &Path, format: ImageFormat) -> Result<ImageReader<BufReader<File>>, LoadError> {
    let file = File::open(path)
        .map_err(|e| LoadError::new(path, LoadErrorKind::Io, e.to_string()).with_source(e))?;
    let mut reader = ImageReader::new(BufReader::new(file));
    reader.set_format(format);
    Ok(reader)
}

pub(super) fn load(
    path: &Path,
    format: ImageFormat,
    format_name: &str,
) -> Result<Study, LoadError> {
    if format == ImageFormat::Jpeg {
        // Read once: checked whole, then decoded from memory.
        let bytes = checked_jpeg(path)?;
        let mut r = ImageReader::new(Cursor::new(bytes));
        r.set_format(format);
        return decode(path, r, format, format_name);
    }
    decode(path, reader(path, format)?, format, format_name)
}

fn decode<R: BufRead + Seek>(
    path: &Path,
    mut r: ImageReader<R>,
    format: ImageFormat,
    format_name: &str,
) -> Result<Study, LoadError> {
    r.limits(limits());
    // `into_decoder` parses only the header and enforces the side limits there, before any pixel
    // buffer is allocated.
    let mut decoder = match r.into_decoder() {
        Ok(d) => d,
        Err(e @ ImageError::Limits(_)) => return Err(limits_error(path, format, e)),
        Err(e) => return Err(image_error(path, format_name, e)),
    };
    let (w, h) = decoder.dimensions();
    check_dimensions(path, w as usize, h as usize)?;
    // A malformed EXIF block only loses the orientation, never the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, format_name, e))?;
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());

    let colour = colour_measures(&img);
    let (pixels, bits) = to_luma(&img);
    let high = if bits == 16 { 65535.0 } else { 255.0 };
    Ok(Study {
        source: path.to_path_buf(),
        width: w as usize,
        height: h as usize,
        pixels,
        default_window: Window { low: 0.0, high },
        window_source: WindowSource::BitDepth,
        metadata: StudyMetadata {
            format: format_name.to_string(),
            bits_stored: bits,
            colourfulness: colour.map(|c| c.colourfulness),
            coloured_share: colour.map(|c| c.coloured_share),
            exif_orientation: Some(orientation.to_exif()).filter(|&o| o != 1),
            viewer_export: (format == ImageFormat::Png)
                .then(|| super::viewer_export::marker(path))
                .flatten(),
            ..Default::default()
        },
        padding: None,
    })
}

/// The whole file, once it is known that the JPEG decoder will not panic on its frame and that
/// it is not cut short ([`jpeg_check`]; the second check must see the file's end).
fn checked_jpeg(path: &Path) -> Result<Vec<u8>, LoadError> {
    let bytes = super::read_prefix(path, u64::MAX)?;
    jpeg_check::check_sampling(&bytes)
        .map_err(|reason| LoadError::new(path, LoadErrorKind::Unsupported, reason))?;
    jpeg_check::check_complete(&bytes)
        .map_err(|reason| LoadError::new(path, LoadErrorKind::Corrupt, reason))?;
    Ok(bytes)
}

/// The limits fired from the header; read the header again without them only to say how big the
/// image claims to be.
fn limits_error(path: &Path, format: ImageFormat, err: ImageError) -> LoadError {
    let dims = reader(path, format).ok().and_then(|mut r| {
        r.no_limits();
        r.into_dimensions().ok()
    });
    let reason = match dims {
        Some((w, h)) => {
            format!("image is {w}×{h} pixels, larger than the {MAX_SIDE}-pixel limit")
        }
        None => format!("image is larger than the {MAX_SIDE}-pixel limit"),
    };
    LoadError::new(path, LoadErrorKind::BadDimensions, reason).with_source(err)
}

fn image_error(path: &Path, format_name: &str, err: ImageError) -> LoadError {
    let kind = match &err {
        ImageError::IoError(_) => LoadErrorKind::Corrupt,
        ImageError::Unsupported(_) => LoadErrorKind::Unsupported,
        ImageError::Limits(_) => LoadErrorKind::BadDimensions,
        _ => LoadErrorKind::Decode,
    };
    let reason = format!("invalid or truncated {format_name} ({})", root_cause(&err));
    LoadError::new(path, kind, reason).with_source(err)
}

/// How much colour a colour raster image holds, on a subsample of about 256 pixels per side
/// (well under a millisecond on a large photograph).
#[derive(Clone, Copy, Debug)]
struct ColourMeasures {
    /// Hasler & Süsstrunk (2003) colourfulness on the 0–255 scale:
    /// `M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²)` with `rg = R − G`,
    /// `yb = (R + G)/2 − B`; 0 for a grey image stored as RGB.
    colourfulness: f32,
    /// Share of pixels whose channels differ by at least [`STRONG_CHROMA`]: colour drawn over a
    /// grey film (a heat map, markings) that leaves the colourfulness of the whole low.
    coloured_share: f32,
}

/// `max(R, G, B) − min(R, G, B)` (of 255) from which a pixel counts as strongly coloured. JPEG's
/// chroma noise on a grey film stays within a few levels; the red and blue of an IG overlay at
/// full strength differ by 100 or more.
const STRONG_CHROMA: u8 = 40;

/// `None` for grey images.
fn colour_measures(img: &DynamicImage) -> Option<ColourMeasures> {
    if !img.color().has_color() {
        return None;
    }
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let step = (w.max(h) / 256).max(1) as usize;
    let (mut n, mut s_rg, mut s_yb, mut q_rg, mut q_yb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut coloured = 0usize;
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            let pixel = rgb.get_pixel(x, y).0;
            let (low, high) = (pixel.iter().min(), pixel.iter().max());
            if let (Some(&low), Some(&high)) = (low, high) {
                coloured += usize::from(high - low >= STRONG_CHROMA);
            }
            let [r, g, b] = pixel.map(f64::from);
            let rg = r - g;
            let yb = 0.5 * (r + g) - b;
            n += 1.0;
            s_rg += rg;
            s_yb += yb;
            q_rg += rg * rg;
            q_yb += yb * yb;
        }
    }
    if n == 0.0 {
        return Some(ColourMeasures {
            colourfulness: 0.0,
            coloured_share: 0.0,
        });
    }
    let (m_rg, m_yb) = (s_rg / n, s_yb / n);
    let var_rg = (q_rg / n - m_rg * m_rg).max(0.0);
    let var_yb = (q_yb / n - m_yb * m_yb).max(0.0);
    Some(ColourMeasures {
        colourfulness: ((var_rg + var_yb).sqrt() + 0.3 * (m_rg * m_rg + m_yb * m_yb).sqrt()) as f32,
        coloured_share: (coloured as f64 / n) as f32,
    })
}

/// Pillow's ITU-R 601-2 luma in its integer form (`L24` in libImaging/Convert.c), so 8-bit
/// colour input gives bit-identical values to what training saw.
fn pillow_luma8(r: u8, g: u8, b: u8) -> f32 {
    let l = (u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16;
    l as f32
}

/// Same weights at full precision; Pillow has no 16-bit colour mode to imitate.
fn luma16(r: u16, g: u16, b: u16) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// Grey values and the bit depth they live in (8 or 16). Alpha is ignored, as in Pillow's "L".
fn to_luma(img: &DynamicImage) -> (Vec<f32>, u16) {
    match img {
        DynamicImage::ImageLuma8(b) => (b.as_raw().iter().map(|&v| f32::from(v)).collect(), 8),
        DynamicImage::ImageLumaA8(b) => (b.pixels().map(|p| f32::from(p.0[0])).collect(), 8),
        DynamicImage::ImageRgb8(b) => (
            b.pixels()
                .map(|p| pillow_luma8(p.0[0], p.0[1], p.0[2]))
                .collect(),
            8,
        ),
        DynamicImage::ImageRgba8(b) => (
            b.pixels()
                .map(|p| pillow_luma8(p.0[0], p.0[1], p.0[2]))
                .collect(),
            8,
        ),
        DynamicImage::ImageLuma16(b) => (b.as_raw().iter().map(|&v| f32::from(v)).collect(), 16),
        DynamicImage::ImageLumaA16(b) => (b.pixels().map(|p| f32::from(p.0[0])).collect(), 16),
        DynamicImage::ImageRgb16(b) => (
            b.pixels().map(|p| luma16(p.0[0], p.0[1], p.0[2])).collect(),
            16,
        ),
        DynamicImage::ImageRgba16(b) => (
            b.pixels().map(|p| luma16(p.0[0], p.0[1], p.0[2])).collect(),
            16,
        ),
        // Float or future variants (not produced by PNG/JPEG today): go through 16-bit luma.
        other => (
            other
                .to_luma16()
                .as_raw()
                .iter()
                .map(|&v| f32::from(v))
                .collect(),
            16,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pillow_luma_matches_known_values() {
        // Values from Pillow 13: Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0)).
        assert_eq!(pillow_luma8(255, 255, 255), 255.0);
        assert_eq!(pillow_luma8(255, 0, 0), 76.0);
        assert_eq!(pillow_luma8(0, 255, 0), 150.0);
        assert_eq!(pillow_luma8(0, 0, 255), 29.0);
    }
}
