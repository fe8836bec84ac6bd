//! PNG/JPEG loading against Pillow reference values (tests/fixtures/raster/raster_reference.json,
//! made by scripts/make_dicom_fixtures.py): the model was trained on Pillow "L" images / 255.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cxr_viewer::io::{load_study, LoadErrorKind, Study, Window, WindowSource, MAX_PIXELS};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/raster")
        .join(name)
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture("raster_reference.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

fn load(name: &str) -> Study {
    load_study(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn err_text(path: &Path) -> (LoadErrorKind, String) {
    let e = load_study(path).expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
    assert!(msg.starts_with("cannot open "), "{msg}");
    (e.kind(), msg)
}

/// Largest absolute difference to the Pillow values.
fn max_diff(study: &Study, r: &Value) -> f32 {
    assert_eq!(study.width as u64, r["width"].as_u64().unwrap());
    assert_eq!(study.height as u64, r["height"].as_u64().unwrap());
    let want = r["values"].as_array().unwrap();
    assert_eq!(want.len(), study.pixels.len());
    study
        .pixels
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w.as_f64().unwrap() as f32).abs())
        .fold(0.0, f32::max)
}

#[test]
fn sixteen_bit_png_keeps_its_values() {
    let study = load("gray16.png");
    assert_eq!(max_diff(&study, &reference("gray16.png")), 0.0);
    assert!(study.pixels.iter().any(|&v| v > 255.0));
    assert_eq!(study.pixels[study.pixels.len() - 1], 65535.0);
    assert_eq!(study.metadata.bits_stored, 16);
    assert_eq!(study.window_source, WindowSource::BitDepth);
    assert_eq!(
        study.default_window,
        Window {
            low: 0.0,
            high: 65535.0
        }
    );
    assert_eq!(study.metadata.format, "PNG");
}

#[test]
fn colour_png_is_pillow_luma() {
    for name in ["rgb8.png", "rgba8.png"] {
        let study = load(name);
        assert_eq!(max_diff(&study, &reference(name)), 0.0, "{name}");
        assert_eq!(study.metadata.bits_stored, 8);
    }
}

#[test]
fn eight_bit_maps_to_v_over_255() {
    let study = load("rgb8.png");
    assert_eq!(
        study.default_window,
        Window {
            low: 0.0,
            high: 255.0
        }
    );
    let unit = study.to_unit(&study.default_window);
    for (u, v) in unit.iter().zip(&study.pixels) {
        assert_eq!(*u, *v / 255.0);
    }
}

#[test]
fn jpeg_matches_pillow_within_rounding() {
    for name in ["gray8.jpg", "rgb8.jpg"] {
        let study = load(name);
        let d = max_diff(&study, &reference(name));
        assert!(d <= 3.0, "{name}: max diff {d}");
        assert_eq!(study.metadata.format, "JPEG");
        assert_eq!(study.window_source, WindowSource::BitDepth);
    }
}

#[test]
fn format_is_detected_by_content() {
    let study = load("png_named.dcm");
    assert_eq!(study.metadata.format, "PNG");
    assert_eq!(max_diff(&study, &reference("rgb8.png")), 0.0);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// Minimal PNG: signature, IHDR with the given size, a junk IDAT, IEND. The decoder must reject
/// oversized images from the header alone, so the pixel data never matters.
fn png_with_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn oversized_png_is_rejected_from_the_header() {
    let path = tmp("io_raster_huge.png");
    std::fs::write(&path, png_with_header(20000, 20000)).unwrap();
    let start = std::time::Instant::now();
    let (kind, msg) = err_text(&path);
    assert_eq!(kind, LoadErrorKind::BadDimensions);
    assert_eq!(
        msg,
        "cannot open io_raster_huge.png: image is 20000×20000 pixels, larger than the \
         16384-pixel limit"
    );
    assert!(start.elapsed().as_secs() < 2, "took {:?}", start.elapsed());

    // Within the side limit but too many pixels in total.
    let path = tmp("io_raster_many.png");
    std::fs::write(&path, png_with_header(12000, 12000)).unwrap();
    let (kind, msg) = err_text(&path);
    assert_eq!(kind, LoadErrorKind::BadDimensions);
    assert!(
        msg.ends_with(&format!("more than the {MAX_PIXELS}-pixel limit")),
        "{msg}"
    );
}

#[test]
fn broken_rasters_give_errors_not_panics() {
    // Zero-sized header, a header-only PNG whose data is junk, and truncated real files.
    for (name, bytes) in [
        ("io_raster_zero.png", png_with_header(0, 10)),
        ("io_raster_junkdata.png", png_with_header(64, 64)),
    ] {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        err_text(&path);
    }
    // A cut file is refused, never shown part grey. What opens must be the whole image (a PNG
    // cut inside its closing IEND chunk has all its pixels). The decoder under the image crate
    // fills a JPEG's missing rows with grey, so for JPEG it is our own check that refuses a cut
    // inside the image data (here the one that loses only the end-of-image marker; a cut in the
    // headers is the decoder's to refuse), as Pillow does.
    for name in ["rgb8.png", "gray16.png", "gray8.jpg", "rgb8.jpg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let whole = load(name);
        for cut in [8, 40, bytes.len() / 2, bytes.len() - 2] {
            let path = tmp(&format!("io_raster_cut_{cut}_{name}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            if let Ok(study) = load_study(&path) {
                assert!(
                    study.pixels == whole.pixels,
                    "{name} cut at {cut} opened changed"
                );
                continue;
            }
            let (kind, msg) = err_text(&path);
            if name.ends_with(".jpg") && cut == bytes.len() - 2 {
                assert_eq!(kind, LoadErrorKind::Corrupt, "{msg}");
                assert!(
                    msg.ends_with(
                        "truncated JPEG: the file ends inside the image data (no end-of-image \
                         marker), so part of the image is missing"
                    ),
                    "{msg}"
                );
            }
        }
    }
}

#[test]
fn a_film_cut_short_in_a_transfer_is_refused() {
    // The bundled sample with its last 30 % lost: the decoder alone showed the top two thirds of the
    // film above a flat grey band, and the model called it PNEUMONIA 0.97.
    let film =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples/person45_bacteria_221.jpeg");
    let bytes = std::fs::read(film).unwrap();
    let path = tmp("io_raster_cut_person45_bacteria_221.jpeg");
    std::fs::write(&path, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let (kind, msg) = err_text(&path);
    assert_eq!(kind, LoadErrorKind::Corrupt);
    assert_eq!(
        msg,
        "cannot open io_raster_cut_person45_bacteria_221.jpeg: truncated JPEG: the file ends \
         inside the image data (no end-of-image marker), so part of the image is missing"
    );
}

#[test]
fn a_jpeg_with_bytes_after_its_end_still_opens() {
    // Some writers pad a file after its end-of-image marker; only a missing marker is a cut.
    let mut bytes = std::fs::read(fixture("gray8.jpg")).unwrap();
    bytes.extend_from_slice(&[0; 100]);
    let path = tmp("io_raster_padded_gray8.jpg");
    std::fs::write(&path, &bytes).unwrap();
    let padded = load_study(&path).unwrap();
    assert_eq!(padded.pixels, load("gray8.jpg").pixels);
}

/// A big-endian TIFF block holding one IFD entry, Orientation (0x0112, SHORT) = `orientation`:
/// the body of a JPEG APP1 "Exif" segment and of a PNG eXIf chunk.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\x00\x2a".to_vec();
    t.extend_from_slice(&8u32.to_be_bytes()); // first IFD right after the header
    t.extend_from_slice(&1u16.to_be_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    t
}

/// `name`'s bytes with an EXIF Orientation added and nothing re-encoded, so the stored pixels
/// are exactly the original file's.
fn with_orientation(name: &str, tiff: &[u8]) -> PathBuf {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let out = if name.ends_with(".jpg") {
        // APP1 right after SOI.
        let mut body = b"Exif\x00\x00".to_vec();
        body.extend_from_slice(tiff);
        let mut out = bytes[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&bytes[2..]);
        out
    } else {
        // eXIf after IHDR (signature 8 + IHDR 25 bytes), before the image data.
        let mut out = bytes[..33].to_vec();
        chunk(&mut out, b"eXIf", tiff);
        out.extend_from_slice(&bytes[33..]);
        out
    };
    let path = tmp(&format!("io_raster_exif_{}_{name}", crc32(tiff)));
    std::fs::write(&path, out).unwrap();
    path
}

/// The pixel the EXIF orientation puts at display position (x, y), from the stored image
/// (TIFF 6.0 / Exif 2.3 tag 274: 1 top-left, 2 mirrored, 3 rotated 180°, 4 flipped vertically,
/// 5 transposed, 6 "rotate 90° clockwise to display", 7 transverse, 8 "rotate 90° counter-clockwise").
fn stored_at(stored: &Study, orientation: u16, x: usize, y: usize) -> f32 {
    let (w, h) = (stored.width, stored.height);
    let (sx, sy) = match orientation {
        1 => (x, y),
        2 => (w - 1 - x, y),
        3 => (w - 1 - x, h - 1 - y),
        4 => (x, h - 1 - y),
        5 => (y, x),
        6 => (y, h - 1 - x),
        7 => (w - 1 - y, h - 1 - x),
        8 => (w - 1 - y, x),
        _ => unreachable!(),
    };
    stored.pixels[sy * w + sx]
}

#[test]
fn exif_orientation_is_applied() {
    for name in ["gray8.jpg", "gray16.png", "rgb8.jpg"] {
        let stored = load(name);
        assert_eq!(stored.metadata.exif_orientation, None, "{name}");
        for orientation in 2..=8u16 {
            let path = with_orientation(name, &exif_tiff(orientation));
            let shown = load_study(&path).unwrap_or_else(|e| panic!("{name}/{orientation}: {e}"));
            let swapped = orientation >= 5;
            let want = if swapped {
                (stored.height, stored.width)
            } else {
                (stored.width, stored.height)
            };
            assert_eq!((shown.width, shown.height), want, "{name}/{orientation}");
            assert_eq!(
                shown.metadata.exif_orientation,
                Some(orientation as u8),
                "{name}/{orientation}"
            );
            for y in 0..shown.height {
                for x in 0..shown.width {
                    assert_eq!(
                        shown.pixels[y * shown.width + x],
                        stored_at(&stored, orientation, x, y),
                        "{name}/{orientation} at ({x}, {y})"
                    );
                }
            }
        }
    }
}

#[test]
fn unreadable_exif_keeps_the_image_as_stored() {
    let stored = load("gray8.jpg");
    let mut broken = exif_tiff(6);
    broken.truncate(10); // the IFD is cut off after its entry count
    for tiff in [broken, exif_tiff(1), exif_tiff(9), b"II*\x00junk".to_vec()] {
        let shown = load_study(&with_orientation("gray8.jpg", &tiff)).unwrap();
        assert_eq!((shown.width, shown.height), (stored.width, stored.height));
        assert_eq!(shown.pixels, stored.pixels);
        assert_eq!(shown.metadata.exif_orientation, None);
    }
}

fn other_format(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/other_formats")
        .join(name)
}

/// An image in a format the viewer does not read is named as such, with what to do, instead of
/// "not a DICOM, PNG or JPEG file (no DICM marker, …)", which read like a damaged file.
#[test]
fn an_image_in_another_format_is_refused_by_its_format_name() {
    for (file, format) in [
        ("grey8.tif", "TIFF"),
        ("grey8.bmp", "BMP"),
        ("grey8.webp", "WebP"),
        ("grey8.gif", "GIF"),
        ("grey8.jp2", "JPEG 2000"),
    ] {
        let (kind, msg) = err_text(&other_format(file));
        assert_eq!(kind, LoadErrorKind::UnknownFormat, "{file}");
        assert_eq!(
            msg,
            format!(
                "cannot open {file}: a {format} image: cxr-viewer reads DICOM, PNG and JPEG; \
                 convert it to PNG (16-bit grey keeps the depth) or DICOM"
            )
        );
        assert_eq!(
            cxr_viewer::io::other_image_format(&other_format(file)).as_deref(),
            Some(format)
        );
    }
    // By content without an extension, and by extension when the content says nothing.
    let bare = tmp("tiff-without-extension");
    std::fs::copy(other_format("grey8.tif"), &bare).unwrap();
    assert_eq!(
        cxr_viewer::io::other_image_format(&bare).as_deref(),
        Some("TIFF")
    );
    let named = tmp("unknown-content.tiff");
    std::fs::write(&named, b"not a header of any kind").unwrap();
    assert_eq!(
        cxr_viewer::io::other_image_format(&named).as_deref(),
        Some("TIFF")
    );
    // Not an image, or one the viewer reads: none. A CSV starting "BM" and a note starting "P2"
    // are no BMP or PNM (two-byte signatures are not trusted), nor an Analyze header a Radiance
    // HDR image.
    let text = tmp("readme.txt");
    std::fs::write(&text, b"plain words").unwrap();
    let csv = tmp("bmi.csv");
    std::fs::write(&csv, b"BMI,age\n21.5,4\n").unwrap();
    let note = tmp("P2-notes");
    std::fs::write(&note, b"P2 follow-up films\n").unwrap();
    let analyze = tmp("scan.hdr");
    std::fs::write(&analyze, 348i32.to_le_bytes()).unwrap();
    for path in [
        text,
        csv,
        note,
        analyze,
        fixture("gray8.jpg"),
        fixture("png_named.dcm"),
    ] {
        assert_eq!(
            cxr_viewer::io::other_image_format(&path),
            None,
            "{}",
            path.display()
        );
    }
    // A walk's one read tells the three apart.
    use cxr_viewer::io::{found_file_kind, FoundFile};
    assert_eq!(found_file_kind(&bare), FoundFile::OtherImage("TIFF".into()));
    assert_eq!(found_file_kind(&fixture("png_named.dcm")), FoundFile::Study);
    assert_eq!(found_file_kind(&tmp("readme.txt")), FoundFile::Other);
    let mut others = cxr_viewer::io::OtherFormats::default();
    assert!(!others.study_or_note(&bare) && others.study_or_note(&fixture("gray8.jpg")));
    assert!(!others.study_or_note(&tmp("readme.txt")));
    assert_eq!(others.files, [(bare.clone(), "TIFF".to_string())]);
    let (_, msg) = err_text(&tmp("readme.txt"));
    assert!(
        msg.ends_with(
            "not a DICOM, PNG or JPEG file (no DICM marker, DICOM data set, PNG or JPEG signature)"
        ),
        "{msg}"
    );
}

#[test]
fn the_images_left_out_are_summed_up_in_one_line() {
    let mut others = cxr_viewer::io::OtherFormats::default();
    assert_eq!(others.summary(), None);
    for name in ["a.tif", "b.tif", "c.bmp", "d.tif", "e.gif"] {
        others.files.push((
            PathBuf::from("/x").join(name),
            match &name[2..] {
                "tif" => "TIFF",
                "bmp" => "BMP",
                _ => "GIF",
            }
            .to_string(),
        ));
    }
    assert_eq!(others.formats(), ["BMP", "GIF", "TIFF"]);
    assert_eq!(
        others.summary().unwrap(),
        "5 images left out, in formats cxr-viewer does not read (BMP, GIF, TIFF): a.tif, b.tif, \
         c.bmp, and 2 more; convert them to PNG (16-bit grey keeps the depth) or DICOM"
    );
}
