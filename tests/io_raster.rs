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

/// Minimal PNG: signature, IHDR with the given size, a junk IDAT, IEND. The decoder must reject
/// oversized images from the header alone, so the pixel data never matters.
fn png_with_header(width: u32, height: u32) -> Vec<u8> {
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
    for name in ["rgb8.png", "gray16.png", "gray8.jpg", "rgb8.jpg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in [8, 40, bytes.len() / 2, bytes.len() - 3] {
            let path = tmp(&format!("io_raster_cut_{cut}_{name}"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            // Lenient JPEG decoders may fill a truncated scan with grey; that is acceptable as
            // long as nothing panics and a success still has the full size.
            match load_study(&path) {
                Ok(s) => assert_eq!(s.pixels.len(), s.width * s.height),
                Err(e) => assert!(!e.to_string().contains('\n')),
            }
        }
    }
}
