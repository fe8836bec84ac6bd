//! RLE Lossless frames checked before dicom-pixeldata decodes them.
//!
//! dicom-transfer-syntax-registry 0.10.1's RLE decoder indexes without bounds checks: a fragment
//! shorter than its 64-byte header, a header naming more than 15 segments, or a segment whose
//! PackBits run decodes to fewer than Rows × Columns bytes makes it panic (found by the
//! `dicom_loader` fuzz target: one changed byte in the RLE fixture). The viewer would turn the
//! panic into an error, but the decoder should not be run on data it cannot read, so the frame
//! is checked against PS3.5 annex G here: a 64-byte header of 16 little-endian u32 (the number of
//! segments, 1..=15, then their offsets), at least one segment per byte of each sample, offsets inside the
//! fragment and not decreasing, and every segment decoding (PackBits, G.3.1) to at least
//! Rows × Columns bytes.

/// `Err(reason)` when the decoder could not read the frame.
pub(super) fn check(fragment: &[u8], segments_needed: usize, pixels: usize) -> Result<(), String> {
    let u32_at = |i: usize| {
        fragment
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if fragment.len() < 64 {
        return Err(format!(
            "RLE fragment of {} bytes is shorter than its 64-byte header",
            fragment.len()
        ));
    }
    let count = u32_at(0).unwrap_or(0);
    if !(segments_needed..=15).contains(&count) {
        return Err(format!(
            "RLE header names {count} segments, the image needs {segments_needed} (at most 15)"
        ));
    }
    // As the decoder reads them: segment i runs from offset i to offset i + 1 (the last one to the
    // end of the fragment).
    let mut offsets: Vec<usize> = (1..=count).filter_map(u32_at).collect();
    offsets.push(fragment.len());
    for (i, pair) in offsets.windows(2).take(segments_needed).enumerate() {
        let (start, end) = (pair[0], pair[1]);
        let segment = fragment
            .get(start..end)
            .ok_or_else(|| format!("RLE segment {} lies outside the fragment", i + 1))?;
        let decoded = packbits_len(segment, pixels);
        if decoded < pixels {
            return Err(format!(
                "RLE segment {} decodes to {decoded} of {pixels} bytes",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Bytes a PackBits segment decodes to, counting no further than `limit`: a header byte `n` in
/// 0..=127 copies the next n + 1 bytes, -127..=-1 repeats the next byte 1 - n times, -128 is
/// nothing; a run cut off by the end of the segment counts only the bytes present.
fn packbits_len(segment: &[u8], limit: usize) -> usize {
    let (mut at, mut out) = (0usize, 0usize);
    while at < segment.len() && out < limit {
        let n = segment[at] as i8;
        at += 1;
        if n >= 0 {
            let run = (n as usize + 1).min(segment.len() - at);
            out += run;
            at += run;
        } else if n != -128 && at < segment.len() {
            out += 1 + n.unsigned_abs() as usize;
            at += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_counts_literals_and_repeats() {
        // 3 literal bytes, then a byte repeated 4 times (-3), then -128 (no-op): 7 bytes.
        assert_eq!(packbits_len(&[2, 9, 9, 9, 0xFD, 7, 0x80], 100), 7);
        // A literal run cut off by the end of the segment counts what is there.
        assert_eq!(packbits_len(&[5, 1, 2], 100), 2);
        // A repeat with no byte to repeat counts nothing.
        assert_eq!(packbits_len(&[0xFD], 100), 0);
    }

    #[test]
    fn headers_and_segments_are_checked() {
        let mut frag = vec![0u8; 64];
        frag[0] = 1;
        frag[4] = 64;
        // One segment: 4 pixels as a repeat of one byte (-3 => 4 bytes).
        frag.extend_from_slice(&[0xFD, 5]);
        assert_eq!(check(&frag, 1, 4), Ok(()));
        assert_eq!(
            check(&frag, 1, 5).unwrap_err(),
            "RLE segment 1 decodes to 4 of 5 bytes"
        );
        assert_eq!(
            check(&frag, 2, 4).unwrap_err(),
            "RLE header names 1 segments, the image needs 2 (at most 15)"
        );
        assert_eq!(
            check(&frag[..10], 1, 4).unwrap_err(),
            "RLE fragment of 10 bytes is shorter than its 64-byte header"
        );
        frag[4] = 200;
        assert_eq!(
            check(&frag, 1, 4).unwrap_err(),
            "RLE segment 1 lies outside the fragment"
        );
    }
}
