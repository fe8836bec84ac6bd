//! Fine deletion curves for judging the faithfulness protocol (README, "How far each map can be
//! trusted"): for every film of a class-folder tree (`NORMAL/`, `PNEUMONIA/`, as
//! `scripts/faithfulness_subset.py` makes), the full analysis (IG with 32 nodes) and the deletion
//! curves of Grad-CAM, IG and the MC-mean map at `STEPS` steps (default 32) against 4 random
//! orderings, one JSON line per film on stdout. `scripts/faithfulness_protocols.py` then reads the
//! same curves under several protocols.
//!
//! ```text
//! cargo run --release --example faithfulness_sweep -- FOLDER [STEPS] > curves.jsonl
//! ```

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use cxr_viewer::analysis::{AnalysisOptions, Engine};
use cxr_viewer::explain::agreement::Method;
use cxr_viewer::explain::faithfulness::FaithfulnessOptions;
use cxr_viewer::io::load_study;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .context("usage: faithfulness_sweep FOLDER [STEPS]")?,
    );
    let steps: usize = match args.get(2) {
        Some(s) => s.parse().context("STEPS must be a number")?,
        None => 32,
    };
    let engine = Engine::load(Path::new("weights/model.json"), &candle_core::Device::Cpu)?;
    let curves = FaithfulnessOptions::default()
        .with_steps(steps)
        .with_random_orderings(4)
        .with_insertion(false);
    let opts = AnalysisOptions::default()
        .with_ig_steps(32)
        .with_faithfulness(Some(curves));
    let cancel = AtomicBool::new(false);
    for label in ["NORMAL", "PNEUMONIA"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(label))
            .with_context(|| format!("cannot list {}", dir.join(label).display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for path in files {
            let study = load_study(&path)?;
            let a = engine.analyze(&study, &opts, &|_| {}, &cancel, &|_, _| {})?;
            let f = a
                .trust
                .faithfulness
                .context("the analysis computed no faithfulness")?;
            let mut line = serde_json::json!({
                "file": path.file_name().map(|n| n.to_string_lossy().to_string()),
                "label": label,
                "random": f.result.random.mean.deletion,
            });
            for m in [Method::GradCam, Method::Ig, Method::Uncertainty] {
                if let Some(mf) = f.get(m) {
                    line[m.key()] = serde_json::json!({ "del": mf.curves.deletion });
                }
            }
            println!("{line}");
        }
    }
    Ok(())
}
