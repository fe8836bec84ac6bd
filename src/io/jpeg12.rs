//! 12-bit lossy JPEG (DICOM "JPEG Extended", process 2 & 4, transfer syntax 1.2.840.10008.1.2.4.51).
//!
//! CR vendors commonly store 10- or 12-bit films this way, and no pure-Rust decoder reads 12-bit
//! DCT JPEG (jpeg-decoder and zune-jpeg stop at 8 bits). libjpeg-turbo 3 does, through its
//! TurboJPEG 3 API (`tj3Decompress12`, libjpeg-turbo's `turbojpeg.h`); `turbojpeg-sys` vendors and
//! builds it. This is the project's only FFI module: every call is checked, the handle is freed by
//! a guard, and the destination buffer is sized from the header that the library itself parsed.
//!
//! Safety settings for untrusted input: `TJPARAM_STOPONWARNING` makes corrupt or truncated
//! entropy data an error instead of a grey smear, `TJPARAM_SCANLIMIT` bounds progressive scans
//! (a decompression-bomb vector), and the image size is checked against the caller's limit
//! before the output buffer exists.
#![allow(unsafe_code)]

use std::ffi::{c_int, CStr};

use turbojpeg_sys as tj;

/// Decoded 12-bit samples, row-major, interleaved when `components` is 3.
pub(super) struct Decoded12 {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub samples: Vec<i16>,
}

/// Sample precision (bits) of the first frame header (SOF0..SOF15) in a JPEG stream, if any.
///
/// Used to send only 12-bit streams here; 8-bit ones stay with the pure-Rust decoder.
pub(super) fn sof_precision(data: &[u8]) -> Option<u8> {
    let mut i = 2; // after SOI
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return None;
    }
    while i + 4 < data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        // SOFn are C0..CF except C4 (DHT), C8 (JPG) and CC (DAC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return data.get(i + 4).copied();
        }
        if marker == 0xDA || len < 2 {
            return None; // scan data before any frame header: not a valid stream
        }
        i += 2 + len;
    }
    None
}

struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init, is non-null and is destroyed exactly once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn error(&self) -> String {
        // SAFETY: valid handle; the library returns a NUL-terminated string it owns.
        let msg = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) };
        msg.to_string_lossy().trim().to_string()
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) -> Result<(), String> {
        // SAFETY: valid handle; tj3Set only reads the two integers.
        if unsafe { tj::tj3Set(self.0, param as c_int, value) } != 0 {
            return Err(self.error());
        }
        Ok(())
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: valid handle; tj3Get only reads.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }
}

/// Decode one 12-bit JPEG stream; `max_pixels` is checked before any buffer is allocated.
pub(super) fn decode(data: &[u8], max_pixels: usize) -> Result<Decoded12, String> {
    // SAFETY: tj3Init has no preconditions; a null result is checked.
    let raw = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
    if raw.is_null() {
        return Err("libjpeg-turbo could not start a decompressor".to_string());
    }
    let h = Handle(raw);
    h.set(tj::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
    h.set(tj::TJPARAM_TJPARAM_SCANLIMIT, 500)?;
    // SAFETY: pointer and length describe `data`, which outlives the call.
    if unsafe { tj::tj3DecompressHeader(h.0, data.as_ptr(), data.len() as _) } != 0 {
        return Err(h.error());
    }
    let precision = h.get(tj::TJPARAM_TJPARAM_PRECISION);
    if precision != 12 {
        return Err(format!(
            "expected a 12-bit JPEG stream, found {precision}-bit"
        ));
    }
    if h.get(tj::TJPARAM_TJPARAM_LOSSLESS) == 1 {
        return Err("lossless JPEG inside a lossy transfer syntax".to_string());
    }
    let width = usize::try_from(h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH)).unwrap_or(0);
    let height = usize::try_from(h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT)).unwrap_or(0);
    if width == 0 || height == 0 || width.saturating_mul(height) > max_pixels {
        return Err(format!(
            "JPEG frame of {width}×{height} pixels is empty or over the size limit"
        ));
    }
    let gray = h.get(tj::TJPARAM_TJPARAM_COLORSPACE) == tj::TJCS_TJCS_GRAY as c_int;
    let (components, format) = if gray {
        (1, tj::TJPF_TJPF_GRAY)
    } else {
        (3, tj::TJPF_TJPF_RGB)
    };
    let mut samples = vec![0i16; width * height * components];
    // SAFETY: `samples` holds width × height × components values, exactly what tj3Decompress12
    // writes for this pixel format with pitch 0 (= width × components) at scaling factor 1, the
    // header's width and height having been read by this same handle.
    let rc = unsafe {
        tj::tj3Decompress12(
            h.0,
            data.as_ptr(),
            data.len() as _,
            samples.as_mut_ptr(),
            0,
            format,
        )
    };
    if rc != 0 {
        return Err(h.error());
    }
    Ok(Decoded12 {
        width,
        height,
        components,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_frame_header_precision() {
        // SOI, APP0 (length 4, two bytes), SOF1 with precision 12.
        let s = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xC1, 0x00, 0x0B, 12,
        ];
        assert_eq!(sof_precision(&s), Some(12));
        let baseline = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0, 0];
        assert_eq!(sof_precision(&baseline), Some(8));
        // DHT (C4) is not a frame header; a scan before any frame is invalid.
        let no_sof = [0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02];
        assert_eq!(sof_precision(&no_sof), None);
        assert_eq!(sof_precision(b"not a jpeg"), None);
        assert_eq!(sof_precision(&[]), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let e = decode(&[0xFF, 0xD8, 0xFF, 0xC1, 0x00], 1 << 20)
            .err()
            .unwrap_or_default();
        assert!(!e.is_empty());
    }
}
