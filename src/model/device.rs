//! Choosing where the network runs.

use candle_core::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// GPU when this build has CUDA and a GPU answers, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The device to run on, and a note when the choice fell back (shown to the user, not an error):
/// a CPU-only build or a machine without a usable GPU still works.
pub fn select_device(choice: DeviceChoice) -> (Device, Option<String>) {
    match choice {
        DeviceChoice::Cpu => (Device::Cpu, None),
        DeviceChoice::Auto | DeviceChoice::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                let note = (choice == DeviceChoice::Cuda).then(|| {
                    "this build has no CUDA support (build with --features cuda); using the CPU"
                        .to_string()
                });
                return (Device::Cpu, note);
            }
            // One explicit stream for every thread, not candle's `new_cuda`: that one issues on
            // CUDA's per-thread default stream, so work one thread launches (a pass on the compute
            // pool, the viewer's worker) is not ordered before another thread's use of its result.
            // On an H200 that gave CUDA_ERROR_ILLEGAL_ADDRESS on the third film of an `analyze`
            // run, and wrong results under compute-sanitizer (films 2–4 "out of scope", score 241
            // instead of 0.7); with one stream every launch is ordered as the host issued it.
            match Device::new_cuda_with_stream(0) {
                Ok(device) => (device, None),
                Err(e) => (
                    Device::Cpu,
                    Some(format!(
                        "no usable GPU ({}); using the CPU",
                        super::weights::first_line(&e.to_string())
                    )),
                ),
            }
        }
    }
}

pub fn device_name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

/// A CUDA build's choices depend on the machine's GPU: `scripts/gpu_check.sh` runs `--device
/// cpu` and `--device cuda` there. (The module's one test is for CPU-only builds; with the
/// feature its import went unused and `clippy --features cudnn -D warnings` failed.)
#[cfg(all(test, not(feature = "cuda")))]
mod tests {
    use super::*;

    /// A CPU-only build answers every choice with the CPU; only an explicit `cuda` says why.
    #[test]
    fn cpu_only_build_falls_back_with_a_note_only_when_cuda_was_asked_for() {
        let (device, note) = select_device(DeviceChoice::Cuda);
        assert!(device.is_cpu());
        let note = note.expect("asking for cuda in a CPU-only build should say why it got the CPU");
        assert!(note.contains("--features cuda"), "{note}");
        for choice in [DeviceChoice::Auto, DeviceChoice::Cpu] {
            let (device, note) = select_device(choice);
            assert!(device.is_cpu());
            assert_eq!(note, None, "{choice:?}");
        }
        assert_eq!(device_name(&Device::Cpu), "cpu");
    }
}
