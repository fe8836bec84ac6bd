//! Weights (safetensors): read and converted to f32, or rejected; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    thread_local!(static PATH: std::path::PathBuf = common::scratch("weights.safetensors"));
    PATH.with(|path| {
        common::write(path, data);
        let device = candle_core::Device::Cpu;
        if let Ok((store, _sha)) = cxr_viewer::model::weights::WeightStore::load(path, &device) {
            let _ = store.names().count();
        }
    });
});
