//! The model-randomisation sanity check (Adebayo et al. 2018) of Integrated Gradients from
//! several baselines, per film: black, the model's normal film, and Expected Gradients (Erion et
//! al. 2021) over the reference films given (the mean of the IG maps from each, and of the
//! randomised models' maps from each). Prints, per film and baseline, F(x) − F(x′), the
//! completeness gap and the SSIM / Spearman ρ of |IG| after randomising head + layer4 (the
//! viewer's flag: SSIM > 0.5), on the check's own comparison grid. One JSON line per film and
//! baseline. The films read as the class explained (predicted class) as the viewer does.
//!
//! ```text
//! cargo run --release --example ig_baseline_sanity -- STEPS FILMS_DIR REF1 REF2 … > out.jsonl
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cxr_viewer::analysis::Engine;
use cxr_viewer::explain::integrated_gradients::{
    integrated_gradients, Baseline, IgOptions, IgRule,
};
use cxr_viewer::explain::no_control;
use cxr_viewer::explain::sanity::{sanity_check, SanityOptions, FLAG_STAGE};
use cxr_viewer::explain::similarity::{min_max_normalised, spearman, ssim};
use cxr_viewer::explain::Grid;
use cxr_viewer::io::load_study;
use cxr_viewer::model::Classifier;

fn mean(maps: &[Grid]) -> Grid {
    let n = maps.len() as f32;
    let mut values = vec![0f32; maps[0].values.len()];
    for m in maps {
        for (v, x) in values.iter_mut().zip(&m.values) {
            *v += x / n;
        }
    }
    Grid::new(maps[0].width, maps[0].height, values)
}

/// SSIM and Spearman ρ of |a| and |b| on the check's 56 × 56 grid, min-max scaled, as
/// `sanity_check` compares them.
fn compare(a: &Grid, b: &Grid) -> (f64, f64) {
    let abs = |g: &Grid| {
        let g = Grid::new(
            g.width,
            g.height,
            g.values.iter().map(|v| v.abs()).collect(),
        );
        min_max_normalised(&g.resized(56, 56))
    };
    let (a, b) = (abs(a), abs(b));
    (ssim(&a, &b, 1.0), spearman(&a.values, &b.values))
}

/// The real IG map, F(x) − F(x′), the gap, and the randomised (head + layer4) model's IG map,
/// from `model`'s normal film as the baseline (`Baseline::NormalFilm`) or black.
fn one(
    model: &Classifier,
    input: &candle_core::Tensor,
    opts: &IgOptions,
) -> Result<(Grid, f32, f32, Grid)> {
    let ig = integrated_gradients(model, input, opts, &no_control())?;
    let sanity = sanity_check(
        model,
        input,
        opts.target,
        &Grid::new(7, 7, vec![0.0; 49]),
        Some(&ig.map),
        &SanityOptions::new(Some(opts.clone())).with_stages(FLAG_STAGE + 1),
        &no_control(),
    )?;
    let randomised = sanity.stages[FLAG_STAGE]
        .ig_map
        .clone()
        .context("no IG map")?;
    Ok((ig.map, ig.f_input - ig.f_baseline, ig.delta, randomised))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: ig_baseline_sanity STEPS FILMS_DIR REF…";
    let steps: usize = args.get(1).context(usage)?.parse()?;
    let dir = PathBuf::from(args.get(2).context(usage)?);
    let refs: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
    anyhow::ensure!(!refs.is_empty(), "{usage}");
    let engine = Engine::load(Path::new("weights/model.json"), &candle_core::Device::Cpu)?;
    let mut model = Engine::load(Path::new("weights/model.json"), &candle_core::Device::Cpu)?.model;
    let normal_film = model.ig_reference.clone();
    let ref_inputs: Vec<_> = refs
        .iter()
        .map(|r| Ok(engine.prepare(&load_study(r)?)?.0.input))
        .collect::<Result<_>>()?;
    let mut films: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    films.sort();
    for film in films {
        let (prepared, _, _) = engine.prepare(&load_study(&film)?)?;
        let target = prepared.prediction.class_index;
        let name = film.file_name().unwrap_or_default().to_string_lossy();
        let opts = |baseline| IgOptions {
            steps,
            baseline,
            target,
            batch: 8,
            lanes: 2,
            rule: IgRule::GaussLegendre,
        };
        let print = |what: &str, (real, span, gap, randomised): (Grid, f32, f32, Grid)| {
            let (s, rho) = compare(&real, &randomised);
            println!(
                "{{\"film\":\"{name}\",\"label\":\"{}\",\"baseline\":\"{what}\",\"span\":{span},\"gap\":{},\"ssim\":{s},\"spearman\":{rho}}}",
                prepared.prediction.label,
                gap.abs() / span.abs().max(1e-12)
            );
        };
        model.ig_reference = normal_film.clone();
        print(
            "black",
            one(&model, &prepared.input, &opts(Baseline::Black))?,
        );
        print(
            "normal",
            one(&model, &prepared.input, &opts(Baseline::NormalFilm))?,
        );
        let mut reals = Vec::new();
        let mut randomised = Vec::new();
        let (mut span, mut gap) = (0f32, 0f32);
        for r in &ref_inputs {
            model.ig_reference = Some(r.clone());
            let (real, s, g, rand) = one(&model, &prepared.input, &opts(Baseline::NormalFilm))?;
            reals.push(real);
            randomised.push(rand);
            span += s / ref_inputs.len() as f32;
            gap += g / ref_inputs.len() as f32;
        }
        print(
            &format!("expected-{}", ref_inputs.len()),
            (mean(&reals), span, gap, mean(&randomised)),
        );
    }
    Ok(())
}
