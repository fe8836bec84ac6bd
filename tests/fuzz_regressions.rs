//! Inputs found by the fuzz targets in `fuzz/` (tests/fixtures/fuzz/ATTRIBUTION.md says which
//! target found each and what it did). Each must now fail at once, in one line, naming the element
//! whose declared length runs past the end of the file; the lengths and offsets in the expected
//! messages are read off the hex of the files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use cxr_viewer::io::{dicomdir_images, load_study, load_study_frame, LoadErrorKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(name)
}

fn one_line_error(path: &Path, frame: u32) -> (LoadErrorKind, String) {
    let e = load_study_frame(path, frame).expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
    (e.kind(), msg)
}

#[test]
fn unknown_vr_with_a_huge_length_is_refused_before_any_allocation() {
    // (0008,1030) at offset 0x2AA has the VR "FO", which dicom-parser reads as UN: 2 reserved
    // bytes, then the 32-bit length 0x43205258 ("XR C") at 0x2B2..0x2B6; 3366 - 0x2B6 = 2672
    // bytes remain.
    let path = fixture("unknown_vr_huge_length.dcm");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3366);
    let expected = "cannot open unknown_vr_huge_length.dcm: truncated or corrupt DICOM file \
                    (element (0008,1030) claims 1126191704 bytes but only 2672 remain in the file)";
    for frame in [0, 1] {
        let (kind, msg) = one_line_error(&path, frame);
        assert_eq!(kind, LoadErrorKind::Corrupt);
        assert_eq!(msg, expected);
    }
    // The DICOMDIR reader opens the same way and refuses it the same way.
    let e = dicomdir_images(&path).expect_err("expected an error");
    assert_eq!(e.kind(), LoadErrorKind::Corrupt);
    assert!(
        e.to_string().ends_with(
            "truncated or corrupt DICOMDIR (element (0008,1030) claims 1126191704 bytes but only \
             2672 remain in the file)"
        ),
        "{e}"
    );
}

#[test]
fn bare_data_set_with_a_huge_length_is_refused_before_any_allocation() {
    // Starts with (0008,0000) and a zero length, so it is taken for an implicit-VR data set without
    // File Meta; a later element claims 0x7D000000 bytes of a 145-byte file.
    let path = fixture("bare_data_set_huge_length.dcm");
    let (kind, msg) = one_line_error(&path, 0);
    assert_eq!(kind, LoadErrorKind::Corrupt);
    assert!(
        msg.starts_with(
            "cannot open bare_data_set_huge_length.dcm: truncated or corrupt DICOM data set \
             (element "
        ),
        "{msg}"
    );
    assert!(msg.contains("claims 2097152000 bytes but only "), "{msg}");
}

#[test]
fn numeric_value_of_odd_length_is_walked_as_dicom_parser_reads_it() {
    // 32 bytes, implicit VR without File Meta: (0008,0000) length 0, then the group length
    // (F800,0000), UL, of length 2, of which dicom-parser reads 2 / 4 = 0 values and so consumes
    // no byte: its next headers are (0000,0000) length 0 at 0x10 and (0000,0000) at 0x18 with the
    // length 0x6B012000 at 0x1C, after which nothing remains.
    let path = fixture("numeric_value_remainder.dcm");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
    let (kind, msg) = one_line_error(&path, 0);
    assert_eq!(kind, LoadErrorKind::Corrupt);
    assert_eq!(
        msg,
        "cannot open numeric_value_remainder.dcm: truncated or corrupt DICOM data set (element \
         (0000,0000) claims 1795235840 bytes but only 0 remain in the file)"
    );
}

#[test]
fn fffe_element_that_is_no_item_is_an_ordinary_element() {
    // Implicit VR: (FFFE,00FF) at 0x60 is neither an item nor a delimiter, so dicom-parser reads
    // it as a UN value of 0xFF000000 bytes, which a 122-byte file cannot hold.
    let path = fixture("fffe_element_not_an_item.dcm");
    let (kind, msg) = one_line_error(&path, 0);
    assert_eq!(kind, LoadErrorKind::Corrupt);
    assert_eq!(
        msg,
        "cannot open fffe_element_not_an_item.dcm: truncated or corrupt DICOM data set (element \
         (FFFE,00FF) claims 4278190080 bytes but only 18 remain in the file)"
    );
}

#[test]
fn the_unchanged_original_of_the_fuzzed_file_still_loads() {
    // The fuzzed file differs from this fixture in one byte (the VR "LO" of StudyDescription
    // became "FO"; the "length" is then the text "XR C" of the description), so the length check
    // must pass the original: it is that one byte, not the rest of the file, that is refused.
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/multiframe_3x16x16.dcm");
    let fuzzed = std::fs::read(fixture("unknown_vr_huge_length.dcm")).unwrap();
    let bytes = std::fs::read(&original).unwrap();
    let differing: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != fuzzed[i])
        .collect();
    assert_eq!(differing, vec![0x2AE]);
    let study = load_study(&original).unwrap();
    assert_eq!((study.width, study.height), (16, 16));
}

#[test]
fn rle_segment_that_decodes_short_is_an_error_not_a_decoder_panic() {
    // One byte of the RLE fixture's first segment changed (0xE5 -> 0xFE at 0x766): a run header
    // that repeats a byte 28 times now repeats it 3 times, so the segment decodes to 25 bytes
    // fewer than the 160 x 192 of the image and dicom-pixeldata's RLE decoder indexed past its
    // end.
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom/wg04_RG2_rle_crop_192x160.dcm");
    let path = fixture("rle_short_segment.dcm");
    let fuzzed = std::fs::read(&path).unwrap();
    let bytes = std::fs::read(&original).unwrap();
    let differing: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != fuzzed[i])
        .collect();
    assert_eq!(differing, vec![0x766]);
    let (kind, msg) = one_line_error(&path, 0);
    assert_eq!(kind, LoadErrorKind::Decode, "{msg}");
    assert!(
        msg.starts_with("cannot open rle_short_segment.dcm: cannot decode "),
        "{msg}"
    );
    assert!(
        msg.ends_with("(RLE segment 1 decodes to 30695 of 30720 bytes)"),
        "{msg}"
    );
    // The check passes the intact file, which still decodes.
    let study = load_study(&original).unwrap();
    assert_eq!((study.width, study.height), (160, 192));
}

/// Every entry point the `dicom_loader` target calls (frames 0 and 1, the DICOMDIR reader)
/// refuses `name` with the same reason.
fn refused_everywhere(name: &str, reason: &str) {
    let path = fixture(name);
    for frame in [0, 1] {
        let (kind, msg) = one_line_error(&path, frame);
        assert_eq!(kind, LoadErrorKind::Corrupt);
        assert_eq!(
            msg,
            format!("cannot open {name}: truncated or corrupt DICOM file ({reason})")
        );
    }
    let e = dicomdir_images(&path).expect_err("expected an error");
    assert_eq!(e.kind(), LoadErrorKind::Corrupt);
    assert_eq!(
        e.to_string(),
        format!("cannot open {name}: truncated or corrupt DICOMDIR ({reason})")
    );
}

#[test]
fn element_of_another_group_in_the_file_meta_is_part_of_the_file_meta() {
    // Derived from no_preamble_16x16.dcm: 0x11 changed from 00 to 01, so (0002,0001) became
    // (0102,0001). dicom-object reads the File Meta by its group length (0xC0 bytes from 0x10),
    // so it is still File Meta and the data set starts at 0xD0; the walk had ended the File Meta
    // there, before the transfer syntax, and so skipped the file. A byte inserted at 0x156 shifts
    // the next header: (0008,1869) at 0x154 with the VR bytes 00 55, read as UN, then 2 reserved
    // bytes and the length 0x332E3100 at 0x15C; 2181 - 0x160 = 1829 bytes remain. dicom-parser
    // zero-filled those 859 MB before it failed.
    let name = "meta_other_group_then_unknown_vr.dcm";
    assert_eq!(std::fs::metadata(fixture(name)).unwrap().len(), 2181);
    refused_everywhere(
        name,
        "element (0008,1869) claims 858665216 bytes but only 1829 remain in the file",
    );
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/no_preamble_16x16.dcm");
    let study = load_study(&original).unwrap();
    assert_eq!((study.width, study.height), (16, 16));
}

#[test]
fn element_of_another_group_in_the_file_meta_of_a_dicomdir() {
    // Derived from the DICOMDIR fixture: 0x91 changed from 00 to B7, so (0002,0001) became
    // (B702,0001), which again hid the rest of the file from the walk, and 8 bytes inserted at
    // 0x2DE, inside the third directory record: (0001,0000) with the VR bytes 00 00, read as UN,
    // and the length 0x14000004 at 0x2E6; 2028 - 0x2EA = 1282 bytes remain.
    let name = "dicomdir_meta_other_group_then_unknown_vr.dcm";
    assert_eq!(std::fs::metadata(fixture(name)).unwrap().len(), 2028);
    refused_everywhere(
        name,
        "element (0001,0000) claims 335544324 bytes but only 1282 remain in the file",
    );
    let original =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/dicomdir/DICOMDIR");
    assert_eq!(dicomdir_images(&original).unwrap().len(), 3);
}

#[test]
fn little_endian_data_set_labelled_big_endian_is_walked_big_endian() {
    // Derived from multiframe_3x16x16.dcm: the transfer syntax at 0x110 became
    // 1.2.840.10008.1.2.2 (explicit VR big endian; 0x122 changed from '1' to '2'), so dicom-parser
    // reads the little-endian data set with its tags and lengths byte-swapped; the walk had left
    // big-endian files to dicom-rs, which zero-filled 1.4 GB before failing.
    let name = "little_endian_data_set_labelled_big_endian.dcm";
    assert_eq!(std::fs::metadata(fixture(name)).unwrap().len(), 3366);
    // The header at 0xB68, inside the pixel data as the byte-swapped lengths land: the tag bytes
    // 91 09 BF 09, the VR bytes 40 0A (no VR, so UN), 2 reserved bytes and the length 0x530A250A
    // at 0xB70; 3366 - 0xB74 = 434 bytes remain.
    refused_everywhere(
        name,
        "element (9109,BF09) claims 1393173770 bytes but only 434 remain in the file",
    );
}

#[test]
fn a_well_formed_big_endian_file_is_not_refused_by_the_walk() {
    // A 2 x 2 8-bit image in explicit VR big endian, written here: File Meta little endian, the
    // data set big endian.
    fn le(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_le_bytes());
        v.extend_from_slice(&tag.1.to_le_bytes());
        v.extend_from_slice(vr);
        v.extend_from_slice(&(value.len() as u16).to_le_bytes());
        v.extend_from_slice(value);
        v
    }
    fn be(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&tag.0.to_be_bytes());
        v.extend_from_slice(&tag.1.to_be_bytes());
        v.extend_from_slice(vr);
        if vr == b"OB" {
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&(value.len() as u32).to_be_bytes());
        } else {
            v.extend_from_slice(&(value.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(value);
        v
    }
    let mut meta = Vec::new();
    meta.extend(le((2, 2), b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
    meta.extend(le((2, 3), b"UI", b"1.2.3.4\0"));
    meta.extend(le((2, 0x10), b"UI", b"1.2.840.10008.1.2.2\0"));
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend(le((2, 0), b"UL", &(meta.len() as u32).to_le_bytes()));
    file.extend(meta);
    file.extend(be((8, 0x16), b"UI", b"1.2.840.10008.5.1.4.1.1.7\0"));
    file.extend(be((8, 0x18), b"UI", b"1.2.3.4\0"));
    file.extend(be((0x28, 2), b"US", &1u16.to_be_bytes()));
    file.extend(be((0x28, 4), b"CS", b"MONOCHROME2 "));
    file.extend(be((0x28, 0x10), b"US", &2u16.to_be_bytes()));
    file.extend(be((0x28, 0x11), b"US", &2u16.to_be_bytes()));
    file.extend(be((0x28, 0x100), b"US", &8u16.to_be_bytes()));
    file.extend(be((0x28, 0x101), b"US", &8u16.to_be_bytes()));
    file.extend(be((0x28, 0x102), b"US", &7u16.to_be_bytes()));
    file.extend(be((0x28, 0x103), b"US", &0u16.to_be_bytes()));
    file.extend(be((0x7FE0, 0x10), b"OB", &[0, 64, 128, 255]));
    let dir = std::env::temp_dir().join(format!("cxr-fuzz-be-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big_endian_2x2.dcm");
    std::fs::write(&path, &file).unwrap();
    let loaded = load_study(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    let study = loaded.unwrap();
    assert_eq!((study.width, study.height), (2, 2));
}

#[test]
fn element_of_unknown_vr_and_undefined_length_is_entered_as_a_sequence() {
    // (0040,A170) at 0x3C0 has the unknown VR "WQ" and an undefined length; dicom-parser reads
    // it as a sequence in the same encoding, where the walk had stopped. Further on, the header
    // at 0x4C3 (1E00,5510) with the VR bytes "I4" (UN) claims 0x382E322E bytes at 0x4CB; 4070 -
    // 0x4CF = 2839 bytes remain. dicom-parser zero-filled those 943 MB.
    let name = "unknown_vr_undefined_length_then_huge_length.dcm";
    assert_eq!(std::fs::metadata(fixture(name)).unwrap().len(), 4070);
    refused_everywhere(
        name,
        "element (1E00,5510) claims 942551598 bytes but only 2839 remain in the file",
    );
}

#[test]
fn jpeg_with_fractional_chroma_sampling_is_refused_before_the_decoder_runs() {
    // The frame header at 0x9E gives component 1 the sampling factors 2×2 (byte 0x22 at 0xA9),
    // component 2 4×3 (0x43 at 0xAC) and component 3 1×1: 3 is no multiple of 2. zune-jpeg 0.5.15
    // panicked on it ("called `Option::unwrap()` on a `None` value" in idct/avx2.rs), which
    // `catch_unwind` had turned into "corrupt data crashed the decoder".
    let name = "jpeg_fractional_chroma_sampling.jpg";
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 1133);
    assert_eq!((bytes[0xA9], bytes[0xAC], bytes[0xAF]), (0x22, 0x43, 0x11));
    let e = load_study(&path).expect_err("expected an error");
    assert_eq!(e.kind(), LoadErrorKind::Unsupported);
    assert_eq!(
        e.to_string(),
        format!(
            "cannot open {name}: JPEG sampling factors 2×2 are not an integer fraction of 4×3 \
             (fractional chroma sampling is not supported)"
        )
    );
    // With the chroma factor made 2×1 (an integer fraction) the check passes and the decoder
    // reports the file's real damage in one line, without a panic.
    let mut fixed = bytes.clone();
    fixed[0xAC] = 0x21;
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_jpeg_integral_sampling.jpg");
    std::fs::write(&copy, &fixed).unwrap();
    match load_study(&copy) {
        Ok(study) => assert_eq!(study.pixels.len(), study.width * study.height),
        Err(e) => {
            assert_ne!(e.kind(), LoadErrorKind::DecoderPanic, "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
    std::fs::remove_file(copy).unwrap();
}

#[test]
fn sequence_delimiter_that_claims_a_value_is_refused() {
    // (FFFE,E0DD) at 0x1E8, the last 8 bytes of the file, with the length 0x10000000 where 0 is
    // due: dicom-parser reads that value and zero-filled 256 MB (6 s in the fuzz build); the walk
    // had skipped every delimiter.
    let name = "sequence_delimiter_claims_a_value.dcm";
    let bytes = std::fs::read(fixture(name)).unwrap();
    assert_eq!(bytes.len(), 0x1F0);
    assert_eq!(bytes[0x1E8..], [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0x10]);
    refused_everywhere(
        name,
        "element (FFFE,E0DD) claims 268435456 bytes but only 0 remain in the file",
    );
}

#[test]
fn item_of_defined_length_outside_any_sequence_is_skipped_as_dicom_parser_reads_it() {
    // A DICOMDIR whose directory record sequence header is gone: the record items stand in the
    // top-level data set. dicom-parser reads an item of defined length there as one value, so the
    // item at 0x23A (254 bytes) is skipped and the next header is read at 0x340, inside the
    // record: (4220,6E6F) with the unknown VR "e ", read as UN, whose 32-bit length "\r\0UI" =
    // 1 230 307 341 made dicom-parser zero-fill 1.2 GB (29 s in the fuzz build). The walk had
    // entered the item and seen only well-formed elements.
    let name = "item_outside_any_sequence.dcm";
    let bytes = std::fs::read(fixture(name)).unwrap();
    assert_eq!(bytes.len(), 1256);
    assert_eq!(bytes[0x23A..0x242], [0xFE, 0xFF, 0x00, 0xE0, 0xFE, 0, 0, 0]);
    assert_eq!(bytes[0x340..0x344], [0x20, 0x42, 0x6F, 0x6E]);
    // 1256 − (0x340 + 12) bytes remain after the header.
    refused_everywhere(
        name,
        "element (4220,6E6F) claims 1230307341 bytes but only 412 remain in the file",
    );
    // An item inside a sequence is still entered: the intact DICOMDIR lists its images.
    let dicomdir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/dicomdir/DICOMDIR");
    assert_eq!(dicomdir_images(&dicomdir).unwrap().len(), 3);
}

#[test]
fn jpeg_ls_frame_taller_than_its_header_is_refused_before_charls_runs() {
    // The 10×50 near-lossless fixture with the frame header's height 50 → 51 (0x24D) and its EOI
    // marker damaged (0x2D8: FF → FD): CharLS ran 6 s (release build) on 170 bytes before
    // reporting "a general structural problem".
    let name = "jpegls_frame_taller_than_its_header.dcm";
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 738);
    assert_eq!(bytes[0x246..0x24F], [0xFF, 0xF7, 0, 0x0B, 16, 0, 51, 0, 10]);
    for frame in [0, 1] {
        let (kind, msg) = one_line_error(&path, frame);
        if frame == 1 {
            // A single-frame file: frame 2 does not exist, whatever its pixels.
            assert_eq!(kind, LoadErrorKind::NoSuchFrame, "{msg}");
            continue;
        }
        assert_eq!(kind, LoadErrorKind::Decode);
        assert!(
            msg.ends_with("(JPEG frame is 10×51 but the header says 10×50)"),
            "{msg}"
        );
    }
}

#[test]
fn elements_after_the_pixel_data_are_walked_as_dicom_parser_reads_them() {
    // The 12-bit JPEG fixture with a second data set appended by libFuzzer after its pixel data:
    // the fragments end at 0x266C, an item delimiter (FFFE,E00D) closes the pixel data sequence,
    // a sequence delimiter leaves item mode, and dicom-parser reads on: (0018,0071) at 0x2B68
    // has the VR bytes "\\\\" (unknown, read as UN) and the 32-bit length 0x5C5C5C5C, which it
    // zero-filled (over 44 s and 1.5 GB in the fuzz build, a libFuzzer timeout; 1.9 GB peak in the
    // release build). The walk had stopped at the item delimiter.
    let name = "elements_after_the_pixel_data.dcm";
    let bytes = std::fs::read(fixture(name)).unwrap();
    assert_eq!(bytes.len(), 14906);
    assert_eq!(bytes[0x266C..0x2674], [0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
    assert_eq!(bytes[0x2B68..0x2B74], *b"\x18\x00\x71\x00\\\\\\\\\\\\\\\\");
    // 14906 − 0x2B74 bytes remain after the header.
    refused_everywhere(
        name,
        "element (0018,0071) claims 1549556828 bytes but only 3782 remain in the file",
    );
}

#[test]
fn jpeg_2000_with_a_negative_bit_plane_count_decodes_as_the_release_build_does() {
    // The 64×64 JPEG 2000 lossless fixture with bytes of its codestream changed by libFuzzer.
    // openjp2 0.6.1 computes `numbps as u32 + 1` for a band whose bit-plane count came out
    // negative: C's (and the release build's) unsigned arithmetic wraps there, and the decode
    // goes on; with overflow checks the port panicked (`attempt to add with overflow`, t2.rs:1211),
    // which the tests' build now leaves off for openjp2 as the release build does (Cargo.toml).
    let name = "j2k_negative_bitplanes_wrap.dcm";
    let path = fixture(name);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4848);
    let study = load_study(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((study.width, study.height), (64, 64));
    assert_eq!(study.pixels.len(), 64 * 64);
    assert!(study.pixels.iter().all(|v| v.is_finite()));
}
