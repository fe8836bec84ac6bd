//! JPEG frame headers checked before the image crate's decoder (zune-jpeg) sees the file.
//!
//! zune-jpeg 0.5.15 panics (`Option::unwrap()` on `None` in its AVX2 inverse DCT) on a frame whose
//! sampling factors are not integer ratios of the largest ones, e.g. luma 2×2 with a chroma
//! component of 4×3 (found by the `raster_loader` fuzz target). The viewer would turn the panic
//! into an error, but the decoder should not be run on a frame it cannot read. ITU-T T.81 B.2.2
//! allows sampling factors 1–4; libjpeg(-turbo), the decoder most software uses, also refuses a
//! component whose factors do not divide the largest ones ("Fractional sampling not implemented
//! yet", `jdsample.c`). Real films never use such frames, so the same rule is applied here to the
//! first frame header (SOF0–SOF15 except DHT, JPG and DAC) before the first scan.
//!
//! A file cut short is refused here too ([`check_complete`]): the decoder would show it whole.

/// `Err(reason)` when the frame header names sampling factors no decoder we ship can read.
/// Anything malformed that is not about sampling is left for the decoder to report.
pub(super) fn check_sampling(bytes: &[u8]) -> Result<(), String> {
    let Some(frame) = frame_header(bytes) else {
        return Ok(());
    };
    // P (1), Y (2), X (2), Nf (1), then Nf × (C, H<<4 | V, Tq).
    let Some(&count) = frame.get(5) else {
        return Ok(());
    };
    let factors: Vec<(u8, u8)> = frame
        .get(6..)
        .unwrap_or_default()
        .chunks_exact(3)
        .take(usize::from(count))
        .map(|c| (c[1] >> 4, c[1] & 0x0f))
        .collect();
    if let Some((h, v)) = factors
        .iter()
        .find(|(h, v)| !(1..=4).contains(h) || !(1..=4).contains(v))
    {
        return Err(format!("JPEG sampling factor {h}×{v} outside 1–4"));
    }
    let h_max = factors.iter().map(|f| f.0).max().unwrap_or(1);
    let v_max = factors.iter().map(|f| f.1).max().unwrap_or(1);
    if let Some((h, v)) = factors
        .iter()
        .find(|(h, v)| h_max % h != 0 || v_max % v != 0)
    {
        return Err(format!(
            "JPEG sampling factors {h}×{v} are not an integer fraction of {h_max}×{v_max} \
             (fractional chroma sampling is not supported)"
        ));
    }
    Ok(())
}

/// `Err(reason)` when the first frame header (JPEG or JPEG-LS) gives a size other than
/// `columns` × `rows`. Found by the `dicom_loader` fuzz target: a JPEG-LS frame one row taller
/// than its DICOM header kept CharLS busy for 6 s on 170 bytes before it failed. A height of 0
/// (the size comes later, in a DNL segment) is left to the decoder.
pub(super) fn check_frame_size(bytes: &[u8], columns: usize, rows: usize) -> Result<(), String> {
    let Some(frame) = frame_header(bytes) else {
        return Ok(());
    };
    let (Some(y), Some(x)) = (frame.get(1..3), frame.get(3..5)) else {
        return Ok(());
    };
    let (height, width) = (
        usize::from(u16::from_be_bytes([y[0], y[1]])),
        usize::from(u16::from_be_bytes([x[0], x[1]])),
    );
    if height != 0 && (width, height) != (columns, rows) {
        return Err(format!(
            "JPEG frame is {width}×{height} but the header says {columns}×{rows}"
        ));
    }
    Ok(())
}

/// The payload of the first frame header (after its 2-byte length), if one comes before the
/// first scan; `None` for anything that is not a JPEG or is cut short. JPEG-LS frames (SOF55,
/// ITU-T T.87) count too.
fn frame_header(bytes: &[u8]) -> Option<&[u8]> {
    let is_frame = |marker: u8| {
        (matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)) || marker == 0xF7
    };
    match first_segment(bytes, |m| m == SOS || is_frame(m))? {
        (SOS, _) => None,
        (_, at) => {
            let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
            bytes.get(at + 2..(at + len).min(bytes.len()))
        }
    }
}

/// Start of scan.
const SOS: u8 = 0xDA;

/// The first marker segment before or at the first scan for which `wanted(marker)` holds: its
/// marker and the offset of its length field. `None` when the walk runs off the bytes, meets
/// something that is not a marker, or `bytes` is not a JPEG.
fn first_segment(bytes: &[u8], wanted: impl Fn(u8) -> bool) -> Option<(u8, usize)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes (T.81 B.1.1.2).
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        if wanted(marker) {
            return Some((marker, at));
        }
        match marker {
            // Stand-alone markers: TEM, RSTn, SOI, EOI.
            0x01 | 0xD0..=0xD9 => continue,
            SOS => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
        at += len.max(2);
    }
}

/// `Err(reason)` when the stream stops inside its image data: no end-of-image marker (EOI,
/// `FF D9`) anywhere after the first scan begins. zune-jpeg, under the image crate, decodes such
/// a file without complaint and fills the missing rows with grey, so a film cut short in a
/// transfer was shown and analysed as if whole (its lower part a flat grey band). Pillow, which
/// read the training films, refuses it ("image file is truncated"), and so do we. Entropy-coded
/// data never holds `FF D9` (a data byte 0xFF is stuffed as `FF 00`, T.81 F.1.2.3), so every
/// complete stream passes, whatever follows its EOI; the 5 325 JPEGs of `../shared` all end in
/// one. A stream whose first scan is not found is left to the decoder.
pub(super) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    let Some((_, scan)) = first_segment(bytes, |m| m == SOS) else {
        return Ok(());
    };
    if bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(
            "truncated JPEG: the file ends inside the image data (no end-of-image marker), so \
             part of the image is missing"
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, then a baseline frame header of `factors` (one component each), then SOS.
    fn jpeg(factors: &[u8]) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0];
        let len = 8 + 3 * factors.len() as u16;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[8, 0, 16, 0, 16, factors.len() as u8]);
        for (i, &hv) in factors.iter().enumerate() {
            b.extend_from_slice(&[i as u8 + 1, hv, 0]);
        }
        b.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        b
    }

    #[test]
    fn usual_subsamplings_pass() {
        for f in [
            &[0x11][..],
            &[0x11, 0x11, 0x11],
            &[0x22, 0x11, 0x11],
            &[0x21, 0x11, 0x11],
            &[0x12, 0x11, 0x11],
            &[0x41, 0x11, 0x11],
            &[0x44, 0x22, 0x11],
        ] {
            assert_eq!(check_sampling(&jpeg(f)), Ok(()), "{f:x?}");
        }
    }

    #[test]
    fn fractional_and_out_of_range_factors_are_refused() {
        let fractional = |own: &str, largest: &str| {
            Err(format!(
                "JPEG sampling factors {own} are not an integer fraction of {largest} \
                 (fractional chroma sampling is not supported)"
            ))
        };
        for (factors, want) in [
            (&[0x22, 0x43, 0x11], fractional("2×2", "4×3")),
            (&[0x32, 0x22, 0x11], fractional("2×2", "3×2")),
            (
                &[0x22, 0x05, 0x11],
                Err("JPEG sampling factor 0×5 outside 1–4".into()),
            ),
        ] {
            assert_eq!(check_sampling(&jpeg(factors)), want, "{factors:x?}");
        }
    }

    #[test]
    fn frame_size_must_match_the_header() {
        // 16×16 in `jpeg()`; a JPEG-LS frame header (SOF55) is read the same way.
        assert_eq!(check_frame_size(&jpeg(&[0x11]), 16, 16), Ok(()));
        assert_eq!(
            check_frame_size(&jpeg(&[0x11]), 16, 15),
            Err("JPEG frame is 16×16 but the header says 16×15".into())
        );
        let mut ls = jpeg(&[0x11]);
        ls[3] = 0xF7;
        ls[8] = 51;
        assert_eq!(
            check_frame_size(&ls, 16, 50),
            Err("JPEG frame is 16×51 but the header says 16×50".into())
        );
        // Height 0: defined later by a DNL segment.
        ls[8] = 0;
        assert_eq!(check_frame_size(&ls, 16, 50), Ok(()));
    }

    #[test]
    fn the_frame_header_is_found_after_other_segments_and_fill_bytes() {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, b'J', b'F', 0xFF, 0xFF];
        b.extend_from_slice(&jpeg(&[0x22, 0x43, 0x11])[3..]);
        assert!(check_sampling(&b).is_err());
        // A frame header after the first scan is not looked at; what is not a JPEG passes.
        let mut late = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2];
        late.extend_from_slice(&jpeg(&[0x22, 0x43, 0x11])[2..]);
        assert_eq!(check_sampling(&late), Ok(()));
        assert_eq!(check_sampling(b"\x89PNG\r\n"), Ok(()));
        assert_eq!(check_sampling(&[0xFF, 0xD8, 0xFF, 0xC0, 0]), Ok(()));
    }

    #[test]
    fn a_stream_without_its_end_marker_after_the_first_scan_is_cut() {
        let whole = |extra: &[u8]| {
            let mut b = jpeg(&[0x11]);
            // Entropy-coded bytes with a stuffed 0xFF and a restart marker, then EOI.
            b.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9]);
            b.extend_from_slice(extra);
            b
        };
        assert_eq!(check_complete(&whole(&[])), Ok(()));
        assert_eq!(check_complete(&whole(&[0, 0, 0])), Ok(()));
        let cut_msg = Err(
            "truncated JPEG: the file ends inside the image data (no end-of-image \
                           marker), so part of the image is missing"
                .to_string(),
        );
        let b = whole(&[]);
        for cut in [b.len() - 1, b.len() - 2, b.len() - 5, 21] {
            assert_eq!(check_complete(&b[..cut]), cut_msg, "cut at {cut}");
        }
        // An EOI before the first scan (an EXIF thumbnail's) does not count.
        let mut thumb = vec![0xFF, 0xD8, 0xFF, 0xE1, 0, 6, 0xFF, 0xD8, 0xFF, 0xD9];
        thumb.extend_from_slice(&b[2..b.len() - 2]);
        assert_eq!(check_complete(&thumb), cut_msg);
        thumb.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(check_complete(&thumb), Ok(()));
        // No scan found (not a JPEG, or cut before it): the decoder reports it.
        assert_eq!(check_complete(b"\x89PNG\r\n"), Ok(()));
        assert_eq!(check_complete(&b[..8]), Ok(()));
    }
}
