//! Loading studies: DICOM and raster images become one [`Study`].
//!
//! # Two paths out of one buffer
//!
//! A [`Study`] keeps the pixels at full precision in *presentation-ready value space*: after the
//! DICOM modality LUT (rescale slope/intercept, or the Modality LUT Sequence) and with MONOCHROME1 already inverted, so that a
//! larger value is always brighter. Nothing is squashed to 8 bits at load time, because the two
//! consumers need different mappings of the same values:
//!
//! * **display path**: the user drags the window; [`Study::to_unit`] with the current [`Window`]
//!   gives `[0, 1]` values for the texture. Starting point is [`Study::default_window`].
//! * **model path**: the classifier was trained on 8-bit PNG/JPEG chest films read as Pillow "L"
//!   and scaled by `v / 255`. For raster input the default window is therefore the full bit-depth
//!   range ([`WindowSource::BitDepth`]), which reproduces that exactly. For DICOM the default
//!   window (header VOI, or a 0.5–99.5 % percentile window) is the closest equivalent of how such
//!   training images were exported.
//!
//! # MONOCHROME1
//!
//! In MONOCHROME1 the minimum stored value is *white*. dicom-pixeldata's raw value path
//! (`to_vec_frame`) does not invert, so the loader does it explicitly: `v' = (max + min) - v` over
//! the post-rescale range of the stored bits (e.g. `0..=1023` for 10-bit unsigned, slope 1). The
//! header window is mirrored the same way (its interval `[low, high]` becomes
//! `[max + min - high, max + min - low]`), so `window'.apply(v') == 1 - window.apply(v)` and the
//! image looks as the modality intended.
//!
//! # Windowing
//!
//! [`Window`] is the DICOM linear VOI function (PS3.3 C.11.2.1.2) stored as the value interval
//! `[low, high]` it maps onto `[0, 1]`; centre/width are the header's parametrisation of it.
//! A DICOM VOI LUT Sequence (a non-linear table, the manufacturer's rendering) is applied at load
//! time instead: the pixels are then the table's output and the default window its range
//! ([`WindowSource::VoiLut`]); so is the header window when its VOI LUT Function is SIGMOID
//! ([`WindowSource::Sigmoid`]); a LINEAR_EXACT header window spans exactly c ± w/2
//! ([`Window::from_center_width_exact`]). An enhanced multi-frame image carries these per frame
//! in its functional groups. Presentation LUT Shape INVERSE inverts a MONOCHROME2 film like
//! MONOCHROME1; in a MONOCHROME1 film it is the same single inversion. Pixels the header marks as
//! padding (PixelPaddingValue / PixelPaddingRangeLimit) are not film: [`Study::padding`] masks
//! them, they hold the range's low end (black), and windows computed from the pixels leave them
//! out, as PS3.3 C.7.5.1.1.2 asks.
//!
//! # Robustness
//!
//! Every input goes through content sniffing, dimension limits checked from the header before
//! any pixel buffer is allocated ([`MAX_SIDE`], [`MAX_PIXELS`]), DICOM value lengths checked
//! against the file size before dicom-parser allocates them (`value_lengths`), RLE frames checked
//! before their decoder runs (`rle_check`), and a `catch_unwind` around the third-party decoders;
//! any failure is a one-line [`LoadError`], never a panic.

mod dicom;
mod dicomdir;
mod error;
mod j2k_check;
mod jpeg12;
mod jpeg_check;
mod raster;
mod rle_check;
mod value_lengths;
pub mod viewer_export;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use dicomdir::{dicomdir_images, is_dicomdir};
pub use error::{LoadError, LoadErrorKind};

/// Longest accepted image side: beyond any radiograph detector, and keeps textures legal on GPUs.
pub const MAX_SIDE: usize = 16384;
/// Most accepted pixels (×4 bytes as f32 ≈ 400 MB): guards memory against hostile headers.
pub const MAX_PIXELS: usize = 100_000_000;

/// Display/model window in stored-pixel units (after modality LUT, after MONOCHROME1 inversion).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Value mapped to 0 (black).
    pub low: f32,
    /// Value mapped to 1 (white).
    pub high: f32,
}

impl Window {
    /// DICOM linear VOI (PS3.3 C.11.2.1.2): low = c - 0.5 - (w-1)/2, high = c - 0.5 + (w-1)/2.
    ///
    /// Using the standard's half-pixel offsets keeps our rendering identical to other viewers for
    /// the same header values.
    pub fn from_center_width(center: f32, width: f32) -> Window {
        let half = (width - 1.0) / 2.0;
        Window {
            low: center - 0.5 - half,
            high: center - 0.5 + half,
        }
    }

    /// DICOM VOI LUT Function LINEAR_EXACT (PS3.3 C.11.2.1.3.2): the ramp spans exactly
    /// `c ± w/2`, without LINEAR's half-pixel offsets (any width > 0). [`Window::center`] and
    /// [`Window::width`] give it back in the LINEAR form, i.e. as `c + 0.5` and `w + 1`.
    pub fn from_center_width_exact(center: f32, width: f32) -> Window {
        Window {
            low: center - width / 2.0,
            high: center + width / 2.0,
        }
    }

    /// Inverse of [`Window::from_center_width`], so a window round-trips through the header form.
    pub fn center(&self) -> f32 {
        (self.low + self.high) / 2.0 + 0.5
    }

    /// Inverse of [`Window::from_center_width`].
    pub fn width(&self) -> f32 {
        self.high - self.low + 1.0
    }

    /// clamp((v-low)/(high-low), 0, 1).
    ///
    /// A degenerate window (width 1, as the standard allows) is a threshold at `low` rather than a
    /// division by zero; NaN maps to 0 so a texture never receives NaN.
    pub fn apply(&self, v: f32) -> f32 {
        let span = self.high - self.low;
        let t = if span > 0.0 {
            (v - self.low) / span
        } else if v >= self.high {
            1.0
        } else {
            0.0
        };
        if t.is_nan() {
            0.0
        } else {
            t.clamp(0.0, 1.0)
        }
    }
}

/// Where [`Study::default_window`] came from; shown in the UI so the user knows whether the
/// window is the modality's choice or a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WindowSource {
    /// First WindowCenter/WindowWidth of the DICOM header.
    Header,
    /// 0.5 %..99.5 % percentiles of the pixel values (DICOM without a usable VOI window).
    Percentile,
    /// Full range of the raster bit depth (0..255 or 0..65535), which matches training.
    BitDepth,
    /// The DICOM header's VOI LUT Sequence: the pixels are its output, the window its range.
    VoiLut,
    /// The header window through VOI LUT Function SIGMOID: the pixels are the function's output
    /// scaled to the stored values' range, which is also the window.
    Sigmoid,
}

/// A loaded image: one grey-level plane plus what is needed to present and describe it.
#[derive(Clone, Debug)]
pub struct Study {
    pub source: PathBuf,
    pub width: usize,
    pub height: usize,
    /// Row-major, `len = width * height`; values after the modality LUT / rescale (and after the
    /// VOI LUT Sequence when the file has one), with MONOCHROME1 already inverted so that larger
    /// always means brighter on screen; full precision (no 8-bit squash).
    pub pixels: Vec<f32>,
    /// From the VOI header (first WindowCenter/Width, mirrored with the MONOCHROME1 inversion) or,
    /// when there is none, an automatic percentile window (0.5 %..99.5 %) for DICOM. For raster
    /// images the full range of the bit depth, so an 8-bit image maps to exactly `v / 255`.
    pub default_window: Window,
    pub window_source: WindowSource,
    pub metadata: StudyMetadata,
    /// Which pixels are DICOM pixel padding (PixelPaddingValue, with PixelPaddingRangeLimit a
    /// range): the frame around a non-rectangular field or suppressed background, not part of the
    /// image (PS3.3 C.7.5.1.1.2). They hold the low end of the value range, so they show black,
    /// and are left out of every window computed from the pixels, as the standard asks. `None`
    /// when the file declares no padding or no pixel has it.
    pub padding: Option<PaddingMask>,
}

/// Which pixels of a film are DICOM pixel padding, one bit per pixel: a byte each cost 100 MB on
/// a 100-megapixel mammogram, a quarter of its pixel values again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddingMask {
    bits: fixedbitset::FixedBitSet,
}

impl PaddingMask {
    /// `len` pixels, pixel `i` padding where `is_padding(i)`.
    pub fn from_fn(len: usize, mut is_padding: impl FnMut(usize) -> bool) -> Self {
        let mut bits = fixedbitset::FixedBitSet::with_capacity(len);
        for i in (0..len).filter(|&i| is_padding(i)) {
            bits.insert(i);
        }
        Self { bits }
    }

    /// Whether pixel `i` is padding (pixels past the end are not).
    pub fn contains(&self, i: usize) -> bool {
        self.bits.contains(i)
    }

    /// The number of pixels the mask describes.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// How many pixels are padding.
    pub fn count(&self) -> usize {
        self.bits.count_ones(..)
    }

    /// The padding pixels' indices, in order.
    pub fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.ones()
    }
}

impl Study {
    /// Pixels mapped through `window` to `[0, 1]`, row-major.
    pub fn to_unit(&self, window: &Window) -> Vec<f32> {
        self.pixels.iter().map(|&v| window.apply(v)).collect()
    }

    /// Whether pixel `i` (row-major) is padding rather than film.
    pub fn is_padding(&self, i: usize) -> bool {
        self.padding.as_ref().is_some_and(|p| p.contains(i))
    }

    /// The values of the film's own pixels, padding left out; every pixel when the file has no
    /// padding or is all padding (so there is always something to set a window from).
    pub fn film_values(&self) -> Vec<f32> {
        film_values(&self.pixels, self.padding.as_ref())
    }
}

/// [`Study::film_values`] before there is a study.
fn film_values(pixels: &[f32], padding: Option<&PaddingMask>) -> Vec<f32> {
    match padding {
        Some(mask) if mask.count() < pixels.len() => pixels
            .iter()
            .enumerate()
            .filter(|&(i, _)| !mask.contains(i))
            .map(|(_, &v)| v)
            .collect(),
        _ => pixels.to_vec(),
    }
}

/// What the viewer shows about a study and what an export may contain.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StudyMetadata {
    /// "DICOM", "PNG" or "JPEG".
    pub format: String,
    /// UID and name, for DICOM.
    pub transfer_syntax: Option<String>,
    pub modality: Option<String>,
    pub view_position: Option<String>,
    pub patient_age: Option<String>,
    pub patient_sex: Option<String>,
    pub photometric_interpretation: Option<String>,
    pub pixel_spacing: Option<[f64; 2]>,
    pub imager_pixel_spacing: Option<[f64; 2]>,
    pub study_date: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub bits_stored: u16,
    pub rescale_slope: Option<f64>,
    pub rescale_intercept: Option<f64>,
    /// Number of frames of a DICOM image (NumberOfFrames, 1 when absent); 0 for PNG/JPEG.
    pub frames: u32,
    /// Which frame the pixels are, 0-based (the UI and CLI count from 1).
    pub frame: u32,
    /// Identifier: never exported unless the user asks.
    #[serde(skip)]
    pub patient_name: Option<String>,
    /// Identifier: never exported unless the user asks.
    #[serde(skip)]
    pub patient_id: Option<String>,
    /// Every top-level data-set element as `("(0010,0010)", keyword, short value text)` for a
    /// tags panel. Skipped in serialisation because it contains identifiers; pixel data and long
    /// binary values are left out.
    #[serde(skip)]
    pub tags: Vec<(String, String, String)>,
    /// Hasler & Süsstrunk colourfulness of a colour raster image, measured at load time before the
    /// reduction to luma (0 for grey stored as RGB); `None` for grey images and DICOM. The scope
    /// guard uses it to tell colour photographs from films.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colourfulness: Option<f32>,
    /// Share (0–1) of a colour raster image's pixels that are strongly coloured (channels 40 or
    /// more of 255 apart), measured with the colourfulness; `None` where that is. A grey film
    /// with a heat map or markings drawn over it has a low colourfulness but such pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coloured_share: Option<f32>,
    /// The EXIF Orientation (2–8) of a PNG/JPEG that was applied at load time, so the pixels,
    /// maps and boxes are upright as other viewers show the file; `None` when absent or 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exif_orientation: Option<u8>,
    /// How many pixels the DICOM header's PixelPaddingValue (and PixelPaddingRangeLimit) marks as
    /// padding; `None` when it marks none. See [`Study::padding`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub padding_pixels: Option<usize>,
    /// A PNG that cxr-viewer wrote (an exported view or an `analyze` overlay): what its marker
    /// says it shows ([`viewer_export`]). Out of scope: a heat map over a film is not a film.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewer_export: Option<String>,
}

impl StudyMetadata {
    /// The value text of a top-level DICOM element by its keyword (`"BodyPartExamined"`), from
    /// [`Self::tags`]; `None` when absent or empty. Identifiers read this way (e.g.
    /// `PatientBirthDate`) stay out of exports because `tags` is never serialised.
    pub fn tag_value(&self, keyword: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(_, k, _)| k == keyword)
            .map(|(_, _, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// What the first bytes say the file is; the extension is not trusted (files named `.dcm` are
/// often PNG exports and vice versa).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detected {
    /// "DICM" at offset 128 (standard Part-10 file).
    DicomWithPreamble,
    /// "DICM" at offset 0 (Part-10 file whose preamble was stripped).
    DicomWithoutPreamble,
    /// No preamble, no "DICM", no File Meta: a bare little-endian data set, recognised by its
    /// first element (see [`bare_data_set`]).
    DicomDataSet {
        explicit_vr: bool,
    },
    Png,
    Jpeg,
    Unknown,
}

fn detect(head: &[u8]) -> Detected {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        Detected::DicomWithPreamble
    } else if head.starts_with(b"DICM") {
        Detected::DicomWithoutPreamble
    } else if head.starts_with(PNG_MAGIC) {
        Detected::Png
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Detected::Jpeg
    } else if let Some(explicit_vr) = bare_data_set(head) {
        Detected::DicomDataSet { explicit_vr }
    } else {
        Detected::Unknown
    }
}

/// Whether `head` starts like a little-endian DICOM data set without File Meta, and if so whether
/// its VR is explicit.
///
/// A data set is sorted by tag, so its first element is in one of the low public groups: in
/// practice group 0008 (SpecificCharacterSet, ImageType, SOPClassUID, or the group length of
/// old ACR-NEMA files). Explicit VR: bytes 4..6 are a known two-letter VR. Implicit VR: bytes
/// 4..8 are a 32-bit length, which for these header elements is short. Anything else (text,
/// spreadsheets, random bytes) is not taken for DICOM.
fn bare_data_set(head: &[u8]) -> Option<bool> {
    if head.len() < 8 {
        return None;
    }
    let group = u16::from_le_bytes([head[0], head[1]]);
    let element = u16::from_le_bytes([head[2], head[3]]);
    if group != 0x0008 || element > 0x00FF {
        return None;
    }
    let vr = [head[4], head[5]];
    if vr.iter().all(u8::is_ascii_uppercase) {
        return dicom_core::VR::from_binary(vr).map(|_| true);
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    // Even, and short: UIDs, codes and strings of the identification group.
    (len.is_multiple_of(2) && len <= 1024).then_some(false)
}

/// File extensions listed as studies without opening the file (any case).
pub const IMAGE_EXTENSIONS: &[&str] = &["dcm", "dicom", "png", "jpg", "jpeg"];

/// Whether a file found in a folder walk is a study: an image extension, or first bytes that say
/// DICOM, PNG or JPEG; never a DICOMDIR, which is an index of images, not one.
pub fn is_study_file(path: &Path) -> bool {
    found_file_kind(path) == FoundFile::Study
}

/// What a folder walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundFile {
    /// Listed: see [`is_study_file`].
    Study,
    /// An image in a format the viewer does not read ([`other_image_format`]).
    OtherImage(String),
    /// Anything else (a README, a spreadsheet, a DICOMDIR, an unreadable file).
    Other,
}

/// [`is_study_file`] and [`other_image_format`] in one read of the file's first bytes, for
/// walks that want both (folders on network shares pay for every read). The first bytes pick up
/// DICOM files without an extension (common on PACS exports) while skipping READMEs and
/// spreadsheets; an unreadable file counts as neither.
pub fn found_file_kind(path: &Path) -> FoundFile {
    if is_dicomdir(path) {
        return FoundFile::Other;
    }
    let by_extension = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if by_extension {
        return FoundFile::Study;
    }
    match read_head(path) {
        Ok(head) if detect(&head) != Detected::Unknown => FoundFile::Study,
        Ok(head) => {
            other_image_format_of(path, &head).map_or(FoundFile::Other, FoundFile::OtherImage)
        }
        Err(_) => FoundFile::Other,
    }
}

/// What to do with images in another format (`what`: "it", "them"), said wherever one is
/// refused or left out.
pub fn convert_advice(what: &str) -> String {
    format!("convert {what} to PNG (16-bit grey keeps the depth) or DICOM")
}

/// The format of an image file the viewer does not read (TIFF, BMP, WebP, GIF, JPEG 2000, …),
/// by a signature of its first bytes or, failing that, its extension; `None` for a study and for
/// what is not an image ([`found_file_kind`]). Folder walks skip such files, and used to do so
/// without a word: a folder of TIFF exports listed "no images" and `analyze` analysed the PNGs
/// beside them as if they were all.
pub fn other_image_format(path: &Path) -> Option<String> {
    match found_file_kind(path) {
        FoundFile::OtherImage(format) => Some(format),
        FoundFile::Study | FoundFile::Other => None,
    }
}

fn other_image_format_of(path: &Path, head: &[u8]) -> Option<String> {
    // Signatures of four bytes or more only: image::guess_format's table also takes "BM" for a
    // BMP and "P1"…"P7" for PNM, so a CSV starting "BMI,age" or a note starting "P2" would have
    // been called an image. Weakly marked formats (BMP) go by their extension.
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let by_content = if at(0, b"II*\0") || at(0, b"MM\0*") {
        Some("TIFF")
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        Some("GIF")
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        Some("WebP")
    } else if at(0, b"\0\0\0\x0cjP  \r\n\x87\n") || at(0, &[0xFF, 0x4F, 0xFF, 0x51]) {
        Some("JPEG 2000")
    } else if at(4, b"ftypavif") {
        Some("AVIF")
    } else if at(4, b"ftypheic") || at(4, b"ftypheix") || at(4, b"ftypmif1") {
        Some("HEIF")
    } else if at(0, &[0x76, 0x2F, 0x31, 0x01]) {
        Some("OpenEXR")
    } else {
        None
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let by_extension = match extension.as_deref() {
        Some("tif" | "tiff") => Some("TIFF"),
        Some("bmp") => Some("BMP"),
        Some("gif") => Some("GIF"),
        Some("webp") => Some("WebP"),
        Some("jp2" | "j2k" | "jpf" | "jpx") => Some("JPEG 2000"),
        Some("avif") => Some("AVIF"),
        Some("heic" | "heif") => Some("HEIF"),
        Some("exr") => Some("OpenEXR"),
        _ => None,
    };
    by_content.or(by_extension).map(str::to_string)
}

/// Image files a folder walk left out because of their format ([`other_image_format`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtherFormats {
    /// Each file and its format, in walk order.
    pub files: Vec<(PathBuf, String)>,
}

impl OtherFormats {
    /// Whether `path` is a study; if it is an image in another format, notes it.
    pub fn study_or_note(&mut self, path: &Path) -> bool {
        match found_file_kind(path) {
            FoundFile::Study => true,
            FoundFile::OtherImage(format) => {
                self.files.push((path.to_path_buf(), format));
                false
            }
            FoundFile::Other => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The formats found, each once, sorted.
    pub fn formats(&self) -> Vec<&str> {
        let set: std::collections::BTreeSet<&str> =
            self.files.iter().map(|(_, f)| f.as_str()).collect();
        set.into_iter().collect()
    }

    /// One line for the CLI and the viewer's "no images" error, e.g. "2 images left out, in
    /// formats cxr-viewer does not read (BMP, TIFF): a.bmp, b.tif; convert them to PNG … or
    /// DICOM"; the first three names, then how many more.
    pub fn summary(&self) -> Option<String> {
        const NAMED: usize = 3;
        let n = self.files.len();
        if n == 0 {
            return None;
        }
        let mut names: Vec<String> = self
            .files
            .iter()
            .take(NAMED)
            .map(|(p, _)| {
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.display().to_string())
            })
            .collect();
        if n > NAMED {
            names.push(format!("and {} more", n - NAMED));
        }
        let (images, formats, them) = if n == 1 {
            ("1 image".to_string(), "a format", "it")
        } else {
            (format!("{n} images"), "formats", "them")
        };
        Some(format!(
            "{images} left out, in {formats} cxr-viewer does not read ({}): {}; {}",
            self.formats().join(", "),
            names.join(", "),
            convert_advice(them)
        ))
    }
}

/// Load a DICOM, PNG or JPEG file, chosen by content; the first frame of a multi-frame image.
pub fn load_study(path: &Path) -> Result<Study, LoadError> {
    load_study_frame(path, 0)
}

/// Load frame `frame` (0-based) of a DICOM, PNG or JPEG file. PNG and JPEG have only frame 0;
/// a frame past the end is a [`LoadErrorKind::NoSuchFrame`] error naming the frame count.
pub fn load_study_frame(path: &Path, frame: u32) -> Result<Study, LoadError> {
    use dicom::Layout;
    let head = read_head(path)?;
    let detected = detect(&head);
    tracing::debug!(path = %path.display(), ?detected, frame, "loading study");
    let single = |format: image::ImageFormat, name: &str| {
        if frame > 0 {
            return Err(LoadError::new(
                path,
                LoadErrorKind::NoSuchFrame,
                format!(
                    "there is no frame {} (a {name} file has 1 frame)",
                    u64::from(frame) + 1
                ),
            ));
        }
        raster::load(path, format, name)
    };
    guard_panics(path, || match detected {
        Detected::DicomWithPreamble => dicom::load(path, Layout::Part10, frame),
        Detected::DicomWithoutPreamble => dicom::load(path, Layout::Part10NoPreamble, frame),
        Detected::DicomDataSet { explicit_vr } => {
            dicom::load(path, Layout::DataSet { explicit_vr }, frame)
        }
        Detected::Png => single(image::ImageFormat::Png, "PNG"),
        Detected::Jpeg => single(image::ImageFormat::Jpeg, "JPEG"),
        Detected::Unknown => Err(unknown_format(path, &head)),
    })
}

/// Decoders are third-party code fed with untrusted bytes: a panic in one of them must become an
/// error for this file, not take the viewer down.
fn guard_panics(
    path: &Path,
    load: impl FnOnce() -> Result<Study, LoadError>,
) -> Result<Study, LoadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(LoadError::new(
                path,
                LoadErrorKind::DecoderPanic,
                format!("corrupt data crashed the decoder ({msg})"),
            ))
        }
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>, LoadError> {
    read_prefix(path, 132)
}

/// The first `limit` bytes of `path` (fewer if the file is shorter).
fn read_prefix(path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    let io_err =
        |e: std::io::Error| LoadError::new(path, LoadErrorKind::Io, e.to_string()).with_source(e);
    let file = std::fs::File::open(path).map_err(io_err)?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(LoadError::new(path, LoadErrorKind::Io, "is a directory"));
    }
    let mut head = Vec::with_capacity(limit.min(1 << 16) as usize);
    file.take(limit).read_to_end(&mut head).map_err(io_err)?;
    Ok(head)
}

fn unknown_format(path: &Path, head: &[u8]) -> LoadError {
    let reason = if head.is_empty() {
        "the file is empty".to_string()
    } else if let Some(format) = other_image_format_of(path, head) {
        format!(
            "a {format} image: cxr-viewer reads DICOM, PNG and JPEG; {}",
            convert_advice("it")
        )
    } else {
        "not a DICOM, PNG or JPEG file (no DICM marker, DICOM data set, PNG or JPEG signature)"
            .to_string()
    };
    LoadError::new(path, LoadErrorKind::UnknownFormat, reason)
}

/// Header dimensions are checked against the limits before any pixel buffer exists, so a
/// hostile header cannot make the loader allocate gigabytes.
fn check_dimensions(path: &Path, width: usize, height: usize) -> Result<(), LoadError> {
    let bad = |reason: String| Err(LoadError::new(path, LoadErrorKind::BadDimensions, reason));
    if width == 0 || height == 0 {
        return bad(format!("image has zero size ({width}×{height} pixels)"));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return bad(format!(
            "image is {width}×{height} pixels, larger than the {MAX_SIDE}-pixel limit"
        ));
    }
    if width.saturating_mul(height) > MAX_PIXELS {
        return bad(format!(
            "image is {width}×{height} pixels, more than the {MAX_PIXELS}-pixel limit"
        ));
    }
    Ok(())
}

/// The overlay images `cxr-viewer analyze` writes beside each study's `report.json` (file
/// names of the output contract).
pub const OVERLAY_GRADCAM: &str = "overlay_gradcam.png";
pub const OVERLAY_UNCERTAINTY: &str = "overlay_uncertainty.png";
pub const OVERLAY_IG: &str = "overlay_ig.png";
pub const ANALYSIS_OVERLAYS: [&str; 3] = [OVERLAY_GRADCAM, OVERLAY_UNCERTAINTY, OVERLAY_IG];

/// Whether `path` is an overlay that `analyze` wrote: one of [`ANALYSIS_OVERLAYS`] with a
/// `report.json` beside it. Folder listings skip these. Before, `analyze FOLDER --out
/// FOLDER/out` run a second time analysed the first run's overlays as films (a heat-map PNG
/// got "PNEUMONIA 0.920", and outputs nested into `out/out/`), and a folder review or `eval`
/// over a folder that held earlier results listed them as studies. A user's own file of that
/// name without a report beside it is still a study, and any file opens when named directly.
pub fn is_analysis_overlay(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| ANALYSIS_OVERLAYS.contains(&n))
        && path.with_file_name("report.json").is_file()
}

/// A folder to list (the viewer's study list, `eval`'s labelled folder) as an absolute path that
/// keeps a link's own name: a labelled subset opened through a link to it is shown, walked and
/// labelled under that name, not its target's (the files keep their link names the same way,
/// [`files_under`]). Resolved like `canonicalize` only where the path climbs with `..` (an
/// absolute path would keep those, and "a/.." has no name).
pub fn folder_as_named(dir: &Path) -> PathBuf {
    match std::path::absolute(dir) {
        Ok(p) if !p.components().any(|c| c == std::path::Component::ParentDir) => p,
        _ => std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
    }
}

/// The files under `root`, to `max_depth` folders down, depth first with each folder's entries
/// sorted by name; hidden files and folders (name starting with `.`), the overlays of an
/// earlier `analyze` ([`is_analysis_overlay`]) and any other PNG cxr-viewer wrote
/// ([`viewer_export`]) are skipped, except `root` itself. The one
/// folder walk of the viewer's study list and the CLI's `analyze`, `eval` and `scope-report`.
///
/// Symbolic links are followed: a folder of links to films is how a labelled subset is usually
/// made (`NORMAL/`, `PNEUMONIA/` linking into an archive), and before the twenty-second session
/// the viewer listed none of them ("no images in …"). Each folder is walked once, however many
/// links lead to it: a link back to a folder above it (a loop) or to one already walked is
/// skipped with a warning, as are broken links and unreadable folders. Before, `eval` followed a
/// loop until the path was 40 links deep and counted one film 41 times. (walkdir's own loop check
/// compares a folder with its ancestors only, so a loop through a folder above `root` went round
/// once more before it stopped.)
pub fn files_under(root: &Path, max_depth: usize) -> impl Iterator<Item = PathBuf> {
    let mut walked = std::collections::HashSet::new();
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .max_depth(max_depth)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(move |e| {
            if e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.') {
                return false;
            }
            if !e.file_type().is_dir() {
                return true;
            }
            // A folder that cannot be resolved is walked (walkdir reports what then fails).
            let Ok(resolved) = std::fs::canonicalize(e.path()) else {
                return true;
            };
            let first = walked.insert(resolved);
            if !first {
                tracing::warn!(
                    "skipped {}: a link to a folder already listed",
                    e.path().display()
                );
            }
            first
        })
        .filter_map(|entry| match entry {
            Ok(e) => (e.file_type().is_file()
                && !is_analysis_overlay(e.path())
                && !viewer_export::is_viewer_export(e.path()))
            .then(|| e.into_path()),
            Err(e) => {
                tracing::warn!("skipped while listing the folder: {e}");
                None
            }
        })
}

/// 0.5 %..99.5 % window: robust against burned-in text and collimator edges that would make a
/// min..max window look washed out.
fn percentile_window(mut v: Vec<f32>) -> Window {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return Window {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = v.len();
    let rank = |q: f64| ((q * (n - 1) as f64).round() as usize).min(n - 1);
    let (lo_i, hi_i) = (rank(0.005), rank(0.995));
    let (_, lo, rest) = v.select_nth_unstable_by(lo_i, f32::total_cmp);
    let low = *lo;
    // hi_i >= lo_i, so the high percentile lies in the upper partition (or is the pivot).
    let high = if hi_i == lo_i {
        low
    } else {
        let k = hi_i - lo_i - 1;
        *rest.select_nth_unstable_by(k, f32::total_cmp).1
    };
    if high > low {
        Window { low, high }
    } else {
        // A constant image: any window shows it; keep it non-degenerate.
        Window {
            low: low - 0.5,
            high: low + 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn window_round_trips_center_width() {
        let w = Window::from_center_width(550.0, 1024.0);
        assert_eq!(w.low, 550.0 - 0.5 - 511.5);
        assert_eq!(w.high, 550.0 - 0.5 + 511.5);
        assert_eq!(w.center(), 550.0);
        assert_eq!(w.width(), 1024.0);
        assert_eq!(w.apply(w.low), 0.0);
        assert_eq!(w.apply(w.high), 1.0);
        assert_eq!(w.apply(-1e9), 0.0);
        assert_eq!(w.apply(1e9), 1.0);
        assert_eq!(w.apply(f32::NAN), 0.0);
    }

    #[test]
    fn degenerate_window_is_threshold() {
        let w = Window::from_center_width(10.5, 1.0);
        assert_eq!(w.apply(9.0), 0.0);
        assert_eq!(w.apply(10.0), 1.0);
    }

    #[test]
    fn percentiles_ignore_outliers() {
        let mut px: Vec<f32> = (0..1000).map(|i| (i % 100) as f32).collect();
        px[0] = -1e6;
        px[1] = 1e6;
        let w = percentile_window(px);
        assert!(w.low >= 0.0 && w.low <= 1.0, "{w:?}");
        assert!(w.high >= 98.0 && w.high <= 99.0, "{w:?}");
        let c = percentile_window(vec![5.0; 10]);
        assert!(c.high > c.low);
    }

    #[test]
    fn decoder_panic_becomes_an_error() {
        let err =
            guard_panics(Path::new("/x/bad.dcm"), || panic!("index out of bounds")).unwrap_err();
        assert_eq!(err.kind(), LoadErrorKind::DecoderPanic);
        assert_eq!(
            err.to_string(),
            "cannot open bad.dcm: corrupt data crashed the decoder (index out of bounds)"
        );
    }

    #[test]
    fn detects_by_content() {
        let mut dcm = vec![0u8; 132];
        dcm[128..].copy_from_slice(b"DICM");
        assert_eq!(detect(&dcm), Detected::DicomWithPreamble);
        assert_eq!(detect(b"DICM\x02\x00"), Detected::DicomWithoutPreamble);
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), Detected::Png);
        assert_eq!(detect(&[0xFF, 0xD8, 0xFF, 0xE0]), Detected::Jpeg);
        assert_eq!(detect(b"hello"), Detected::Unknown);
        assert_eq!(detect(b""), Detected::Unknown);
    }
}
