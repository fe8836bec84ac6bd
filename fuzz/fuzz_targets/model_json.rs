//! model.json: parsed and validated, or rejected with a reason; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    thread_local!(static PATH: std::path::PathBuf = common::scratch("model.json"));
    PATH.with(|path| {
        common::write(path, data);
        let _ = cxr_viewer::model::config::ModelConfig::from_file(path);
    });
});
