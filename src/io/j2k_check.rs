//! JPEG 2000 frames checked against the DICOM header before dicom-pixeldata decodes them.
//!
//! dicom-transfer-syntax-registry 0.10.1's JPEG 2000 adapter sizes its output by Rows × Columns
//! × SamplesPerPixel but copies every sample the codestream decodes to, without a bounds check:
//! a codestream larger than the header says makes it panic ("range end index 8194 out of range
//! for slice of length 8192"), and before that openjp2 allocates and decodes the whole claimed
//! image (20000 × 20000 in a 5 kB file: 1.6 GB and 14 s). Found while fuzzing the `dicom_loader`
//! target with JPEG 2000 seeds. So the image and tile size (SIZ marker segment, ITU-T T.800
//! A.5.1) are read first and must agree with the header:
//!
//! ```text
//! SOC (FF4F) SIZ (FF51) Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz {Ssiz XRsiz YRsiz}
//! width = Xsiz − XOsiz,  height = Ysiz − YOsiz                     must be Columns × Rows
//! Csiz                                                            at most SamplesPerPixel
//! tiles = ⌈(Xsiz − XTOsiz) / XTsiz⌉ · ⌈(Ysiz − YTOsiz) / YTsiz⌉     at most 65 535 (Isot ≤ 65 534)
//! ```
//!
//! A frame in a JP2 wrapper (which some writers use) is checked at its codestream. Anything else
//! malformed is left for the decoder to report.

/// Image geometry read from a SIZ marker segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Siz {
    width: u64,
    height: u64,
    components: u64,
    tiles: u64,
}

/// `Err(reason)` when the decoder must not be run on `frame` for an image of `columns` × `rows`
/// with `samples_per_pixel` samples.
pub(super) fn check(
    frame: &[u8],
    columns: usize,
    rows: usize,
    samples_per_pixel: usize,
) -> Result<(), String> {
    let Some(siz) = siz(frame)? else {
        return Ok(());
    };
    if (siz.width, siz.height) != (columns as u64, rows as u64) {
        return Err(format!(
            "JPEG 2000 codestream is {}×{} but the header says {columns}×{rows}",
            siz.width, siz.height
        ));
    }
    if siz.components > samples_per_pixel as u64 {
        return Err(format!(
            "JPEG 2000 codestream has {} components but the header says {samples_per_pixel} \
             samples per pixel",
            siz.components
        ));
    }
    if siz.tiles > 65_535 {
        return Err(format!(
            "JPEG 2000 codestream claims {} tiles (at most 65 535)",
            siz.tiles
        ));
    }
    Ok(())
}

/// The SIZ segment right after the first SOC; `Ok(None)` when the frame holds no codestream start.
fn siz(frame: &[u8]) -> Result<Option<Siz>, String> {
    let Some(soc) = frame.windows(4).position(|w| w == [0xFF, 0x4F, 0xFF, 0x51]) else {
        return Ok(None);
    };
    let seg = &frame[soc + 4..];
    let u32_at = |i: usize| {
        seg.get(i..i + 4)
            .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    };
    let short = || "JPEG 2000 SIZ marker segment is cut short".to_string();
    // Lsiz (2), Rsiz (2), then eight 32-bit fields from offset 4, then Csiz (2) at offset 36.
    let field = |k: usize| u32_at(4 + 4 * k).ok_or_else(short);
    let (x, y, xo, yo) = (field(0)?, field(1)?, field(2)?, field(3)?);
    let (xt, yt, xto, yto) = (field(4)?, field(5)?, field(6)?, field(7)?);
    let components = seg
        .get(36..38)
        .map(|b| u64::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or_else(short)?;
    let (Some(width), Some(height)) = (x.checked_sub(xo), y.checked_sub(yo)) else {
        return Err(format!(
            "JPEG 2000 image offset ({xo}, {yo}) lies outside the {x}×{y} reference grid"
        ));
    };
    if xt == 0 || yt == 0 {
        return Err("JPEG 2000 tile size is zero".into());
    }
    let tiles =
        (x.saturating_sub(xto).div_ceil(xt)).saturating_mul(y.saturating_sub(yto).div_ceil(yt));
    Ok(Some(Siz {
        width,
        height,
        components,
        tiles,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOC + SIZ for an image of `w`×`h` in tiles of `tw`×`th`, with `c` components.
    fn codestream(w: u32, h: u32, tw: u32, th: u32, c: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0x4F, 0xFF, 0x51];
        b.extend_from_slice(&(38 + 3 * c).to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        for v in [w, h, 0, 0, tw, th, 0, 0] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&c.to_be_bytes());
        for _ in 0..c {
            b.extend_from_slice(&[15, 1, 1]);
        }
        b.extend_from_slice(&[0xFF, 0x52]);
        b
    }

    #[test]
    fn a_codestream_that_matches_the_header_passes() {
        assert_eq!(check(&codestream(64, 48, 64, 48, 1), 64, 48, 1), Ok(()));
        assert_eq!(check(&codestream(640, 480, 16, 16, 3), 640, 480, 3), Ok(()));
        // A JP2 wrapper in front of the codestream.
        let mut jp2 = b"\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x2Ajp2c".to_vec();
        jp2.extend_from_slice(&codestream(64, 48, 64, 48, 1));
        assert_eq!(check(&jp2, 64, 48, 1), Ok(()));
        // No codestream at all: the decoder says what is wrong.
        assert_eq!(check(b"not a codestream", 64, 48, 1), Ok(()));
    }

    #[test]
    fn a_codestream_larger_than_the_header_is_refused() {
        assert_eq!(
            check(&codestream(20000, 20000, 20000, 20000, 1), 64, 64, 1),
            Err("JPEG 2000 codestream is 20000×20000 but the header says 64×64".into())
        );
        assert_eq!(
            check(&codestream(64, 64, 64, 64, 3), 64, 64, 1),
            Err(
                "JPEG 2000 codestream has 3 components but the header says 1 samples per pixel"
                    .into()
            )
        );
        // 2000×2000 in 4×4 tiles: 250 000 tiles.
        assert_eq!(
            check(&codestream(2000, 2000, 4, 4, 1), 2000, 2000, 1),
            Err("JPEG 2000 codestream claims 250000 tiles (at most 65 535)".into())
        );
        assert_eq!(
            check(&codestream(64, 64, 0, 64, 1), 64, 64, 1),
            Err("JPEG 2000 tile size is zero".into())
        );
        let cut = codestream(64, 64, 64, 64, 1);
        assert_eq!(
            check(&cut[..20], 64, 64, 1),
            Err("JPEG 2000 SIZ marker segment is cut short".into())
        );
    }
}
