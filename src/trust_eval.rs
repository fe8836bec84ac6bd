//! `cxr-viewer eval --faithfulness`: the usual evaluation, then the deletion faithfulness of every
//! map on every image of the folder.
//!
//! Per image: the full analysis (Grad-CAM, MC dropout, IG with `ig_steps` nodes) and the deletion
//! curves of [`crate::explain::faithfulness`] with the viewer's defaults (14×14 grid, 4 steps,
//! blurred baseline, 3 random orderings) but without the insertion curves, which the means do not
//! use. Over the `n` images, for each map `m`:
//!
//! ```text
//! aopc        = mean over images of AOPC(m)
//! random_aopc = mean over images of the mean random AOPC
//! ratio       = aopc / random_aopc                (a ratio of means: robust to images where
//!                                                  random deletion hardly moves the prediction)
//! median_ratio, beats_random = median of the per-image ratios, share of images with
//!                              AOPC(m) > random AOPC
//! ```
//!
//! Added to `metrics.json` under `faithfulness.{gradcam,ig,uncertainty}`; `faithfulness.png` shows
//! the mean deletion curves and `faithfulness.csv` the per-image values.
//! `faithfulness.ig_baseline_read_as_target` counts the images whose IG baseline the model itself
//! reads as the class explained ([`crate::analysis::BaselineReading`]);
//! `faithfulness.ig_baseline` is the baseline asked for (`--faithfulness-ig-baseline`) and
//! `faithfulness.ig_baselines` how many maps started from each baseline.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::analysis::{AnalysisOptions, Engine};
use crate::cli::{
    error_line, eval_labelled, labelled_files, progress_bar, read_boxes, relative_name,
};
use crate::explain::agreement::Method;
use crate::explain::faithfulness::{mean_curve, FaithfulnessOptions};
use crate::explain::integrated_gradients::IgBaseline;
use crate::io::load_study;

/// Means of one map over the folder.
#[derive(Clone, Debug, Serialize)]
pub struct MeanFaithfulness {
    pub n: usize,
    pub aopc: f64,
    pub random_aopc: f64,
    pub ratio: Option<f64>,
    pub median_ratio: Option<f64>,
    /// Share of images whose AOPC exceeds their random AOPC.
    pub beats_random: f64,
    pub mean_deletion_curve: Vec<f32>,
}

#[derive(Default)]
struct Accumulator {
    aopc: Vec<f64>,
    random: Vec<f64>,
    curves: Vec<Vec<f32>>,
}

impl Accumulator {
    fn mean(&self) -> MeanFaithfulness {
        let n = self.aopc.len();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (aopc, random_aopc) = (mean(&self.aopc), mean(&self.random));
        let mut ratios: Vec<f64> = self
            .aopc
            .iter()
            .zip(&self.random)
            .filter(|(_, r)| **r > 1e-6)
            .map(|(a, r)| a / r)
            .collect();
        ratios.sort_by(|a, b| a.total_cmp(b));
        let median_ratio = (!ratios.is_empty()).then(|| {
            let m = ratios.len() / 2;
            if ratios.len() % 2 == 1 {
                ratios[m]
            } else {
                (ratios[m - 1] + ratios[m]) / 2.0
            }
        });
        MeanFaithfulness {
            n,
            aopc,
            random_aopc,
            ratio: (random_aopc > 1e-6).then(|| aopc / random_aopc),
            median_ratio,
            beats_random: self
                .aopc
                .iter()
                .zip(&self.random)
                .filter(|(a, r)| a > r)
                .count() as f64
                / n.max(1) as f64,
            mean_deletion_curve: mean_curve(self.curves.iter()),
        }
    }
}

/// [`crate::cli::eval`], then the faithfulness means added to `metrics.json`.
pub fn eval_with_faithfulness(
    engine: &Engine,
    data: &Path,
    out: &Path,
    boxes: Option<&Path>,
    ig_steps: usize,
    ig_baseline: IgBaseline,
) -> Result<crate::cli::EvalSummary> {
    anyhow::ensure!(
        engine.model.offers(ig_baseline),
        "--faithfulness-ig-baseline normal needs a reference film: {} names no ig_reference",
        engine.model.config_path.display()
    );
    // Listed once: eval scores these films, then their maps are measured (class subfolders, or
    // with `boxes` an RSNA folder).
    let labels = read_boxes(boxes)?;
    let labelled = labelled_files(engine, data, labels.as_ref())?;
    let summary = eval_labelled(engine, data, out, labels.as_ref(), &labelled)?;
    let f_opts = FaithfulnessOptions::default().with_insertion(false);
    let options = AnalysisOptions::default()
        .with_ig_steps(ig_steps)
        .with_ig_baseline(ig_baseline)
        .with_faithfulness(Some(f_opts.clone()));
    let methods = [Method::GradCam, Method::Ig, Method::Uncertainty];
    let mut acc: Vec<Accumulator> = methods.iter().map(|_| Accumulator::default()).collect();
    let mut random_curves = Vec::new();
    let mut csv = String::from("file,method,aopc,random_aopc,ratio\n");
    let cancel = AtomicBool::new(false);
    // Images whose IG baseline the model itself reads as the class explained
    // ([`crate::analysis::BaselineReading`]): their IG map is explained against that image.
    let (mut ig_images, mut baseline_read_as_target) = (0usize, 0usize);
    // The baseline each IG map started from (with `auto`, chosen per image).
    let mut baselines_used = std::collections::BTreeMap::<&'static str, usize>::new();
    let bar = progress_bar(
        labelled.len(),
        "faithfulness {bar:40} {pos}/{len} images, eta {eta}",
    );
    for (path, _) in &labelled {
        let rel = relative_name(path, data);
        let result = load_study(path)
            .map_err(anyhow::Error::from)
            .and_then(|study| {
                Ok(engine.analyze(&study, &options, &|_| {}, &cancel, &|_, _| {})?)
            });
        match result {
            Ok(analysis) => {
                if let Some(ig) = &analysis.ig {
                    ig_images += 1;
                    *baselines_used.entry(ig.baseline.name()).or_default() += 1;
                    baseline_read_as_target += usize::from(
                        crate::analysis::baseline_reading(&engine.model.config, ig)
                            .is_some_and(|r| r.read_as_target),
                    );
                }
                if let Some(f) = &analysis.trust.faithfulness {
                    random_curves.push(f.result.random.mean.deletion.clone());
                    for (method, a) in methods.iter().zip(acc.iter_mut()) {
                        if let Some(m) = f.get(*method) {
                            a.aopc.push(m.curves.aopc as f64);
                            a.random.push(m.random_aopc as f64);
                            a.curves.push(m.curves.deletion.clone());
                            csv.push_str(&format!(
                                "{},{},{:.6},{:.6},{}\n",
                                rel.replace(',', "_"),
                                method.key(),
                                m.curves.aopc,
                                m.random_aopc,
                                m.ratio.map_or(String::new(), |r| format!("{r:.4}"))
                            ));
                        }
                    }
                }
            }
            Err(e) => bar.println(format!("skipped {rel}: {}", error_line(&e))),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let means: Vec<(Method, MeanFaithfulness)> = methods
        .iter()
        .zip(&acc)
        .filter(|(_, a)| !a.aopc.is_empty())
        .map(|(m, a)| (*m, a.mean()))
        .collect();
    let metrics_path = out.join("metrics.json");
    let text = std::fs::read_to_string(&metrics_path)
        .with_context(|| format!("cannot read {}", metrics_path.display()))?;
    let mut json: serde_json::Value = serde_json::from_str(&text)?;
    let mut section = serde_json::Map::new();
    for (m, mean) in &means {
        section.insert(m.key().to_string(), serde_json::to_value(mean)?);
    }
    section.insert(
        "random_mean_deletion_curve".into(),
        serde_json::to_value(mean_curve(random_curves.iter()))?,
    );
    section.insert("settings".into(), f_opts.describe().into());
    section.insert("ig_steps".into(), ig_steps.into());
    section.insert(
        "ig_baseline_read_as_target".into(),
        baseline_read_as_target.into(),
    );
    section.insert("ig_baseline".into(), options.ig_baseline.name().into());
    section.insert(
        "ig_baselines".into(),
        serde_json::to_value(&baselines_used)?,
    );
    if let Some(obj) = json.as_object_mut() {
        obj.insert("faithfulness".into(), section.into());
    }
    crate::atomic_file::write_atomic(
        &metrics_path,
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", metrics_path.display()))?;
    crate::atomic_file::write_atomic(&out.join("faithfulness.csv"), csv.as_bytes())
        .with_context(|| "cannot write faithfulness.csv".to_string())?;
    let mut series: Vec<(String, Vec<f32>)> = means
        .iter()
        .map(|(m, mean)| {
            (
                format!(
                    "{} (AOPC {:.3}, {})",
                    m.label(),
                    mean.aopc,
                    mean.ratio
                        .map_or("n/a".to_string(), |r| format!("{r:.1}× random"))
                ),
                mean.mean_deletion_curve.clone(),
            )
        })
        .collect();
    series.push((
        "random orderings".to_string(),
        mean_curve(random_curves.iter()),
    ));
    crate::plots::deletion_curves_png(
        &format!("Mean deletion curves (n = {})", acc[0].aopc.len()),
        &series,
        &out.join("faithfulness.png"),
    )?;
    for (m, mean) in &means {
        println!(
            "faithfulness {}: AOPC {:.4}, random {:.4}, ratio {}, beats random on {:.0} % of {} images",
            m.label(),
            mean.aopc,
            mean.random_aopc,
            mean.ratio.map_or("n/a".to_string(), |r| format!("{r:.2}")),
            100.0 * mean.beats_random,
            mean.n
        );
    }
    if options.ig_baseline == IgBaseline::Auto {
        let used: Vec<String> = baselines_used
            .iter()
            .map(|(name, n)| format!("{name} on {n}"))
            .collect();
        println!(
            "IG baselines (auto, per image): {} (metrics.json: faithfulness.ig_baselines)",
            used.join(", ")
        );
    }
    if baseline_read_as_target > 0 {
        let which = match options.ig_baseline {
            IgBaseline::Auto => "every baseline offered".to_string(),
            b => format!("IG's {} baseline", b.name()),
        };
        println!(
            "note: {which} is itself read as the explained class on {baseline_read_as_target} \
             of {ig_images} images: their IG maps (and IG's figures above) explain the film \
             against that image (metrics.json: faithfulness.ig_baseline_read_as_target)"
        );
    }
    Ok(summary)
}
