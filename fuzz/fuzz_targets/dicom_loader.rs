//! DICOM loader: any bytes give a study with a consistent pixel buffer or a one-line error.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    thread_local!(static PATH: std::path::PathBuf = common::scratch("study.dcm"));
    PATH.with(|path| {
        common::write(path, data);
        // The second frame too, so that the frame lookup of multi-frame files is exercised.
        for frame in [0, 1] {
            match cxr_viewer::io::load_study_frame(path, frame) {
                Ok(s) => assert_eq!(s.pixels.len(), s.width * s.height),
                Err(e) => assert!(!e.to_string().contains('\n')),
            }
        }
        let _ = cxr_viewer::io::dicomdir_images(path);
    });
});
