//! PNG/JPEG loader (seeded with PNG and JPEG files): a study or a one-line error.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    thread_local!(static PATH: std::path::PathBuf = common::scratch("image.png"));
    PATH.with(|path| {
        common::write(path, data);
        match cxr_viewer::io::load_study(path) {
            Ok(s) => assert_eq!(s.pixels.len(), s.width * s.height),
            Err(e) => assert!(!e.to_string().contains('\n')),
        }
    });
});
