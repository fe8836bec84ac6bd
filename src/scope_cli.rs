//! `cxr-viewer scope-fit` (fit the scope guard's statistics on the training split, threshold on
//! the validation split) and `cxr-viewer scope-report` (per-category AUROC and share flagged on a
//! folder of out-of-scope images). Both drive the same engine the analysis uses: the features are
//! those of [`crate::model::resnet::Backbone::forward_with_stages`] on the preprocessed input.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Tensor;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use crate::analysis::Engine;
use crate::io::load_study;
use crate::model::preprocess::{input_tensor, model_gray};
use crate::scope::detector::{auroc, fit_depth, quantile, stage_features, ScopeStats};
use crate::scope::ScopeCheck;

/// The depths `scope-fit` fits and the feature cache keeps ([`crate::scope::detector::DepthKind`]):
/// the pooled statistics of every stage, then region means of layer2–layer4 on a grid about a
/// seventh of the stage's side (4×4 of 28² and 14², 3×3 of 7²).
pub const DEPTH_NAMES: [&str; 7] = [
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "layer2.regions4",
    "layer3.regions4",
    "layer4.regions3",
];

fn depth_names() -> Vec<String> {
    DEPTH_NAMES.iter().map(|s| s.to_string()).collect()
}

/// A cached feature set (in [`DEPTH_NAMES`] order) in the order of `stats`' depths.
fn in_stats_order(stats: &ScopeStats, cached: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    stats
        .depth_names()
        .iter()
        .map(|name| {
            DEPTH_NAMES
                .iter()
                .position(|d| d == name)
                .and_then(|i| cached.get(i).cloned())
                .with_context(|| format!("the feature cache has no depth '{name}'"))
        })
        .collect()
}

/// Pooled features per file, kept on disk between runs (feature extraction is the slow part).
#[derive(Default)]
pub struct FeatureCache {
    path: Option<PathBuf>,
    model_sha: String,
    map: HashMap<String, Vec<Vec<f32>>>,
}

impl FeatureCache {
    /// Reads `path` if it exists and was made with the same weights; an unreadable cache is
    /// ignored (it is only a cache).
    pub fn open(path: Option<&Path>, model_sha: &str) -> Self {
        let mut cache = FeatureCache {
            path: path.map(Path::to_path_buf),
            model_sha: model_sha.to_string(),
            map: HashMap::new(),
        };
        let Some(p) = path else { return cache };
        let Ok(bytes) = std::fs::read(p) else {
            return cache;
        };
        let Ok(st) = safetensors::SafeTensors::deserialize(&bytes) else {
            return cache;
        };
        let Ok((_, meta)) = safetensors::SafeTensors::read_metadata(&bytes) else {
            return cache;
        };
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get("model_sha256").map(String::as_str) != Some(model_sha) {
            return cache;
        }
        let files: Vec<String> = info
            .get("files")
            .map(|f| f.split('\n').map(str::to_string).collect())
            .unwrap_or_default();
        let mut depths = Vec::new();
        for name in DEPTH_NAMES {
            let Ok(t) = st.tensor(name) else { return cache };
            let d = t.shape().get(1).copied().unwrap_or(0);
            let v: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if d == 0 || v.len() != d * files.len() {
                return cache;
            }
            depths.push((d, v));
        }
        for (i, f) in files.into_iter().enumerate() {
            let feats = depths
                .iter()
                .map(|(d, v)| v[i * d..(i + 1) * d].to_vec())
                .collect();
            cache.map.insert(f, feats);
        }
        cache
    }

    pub fn save(&self) -> Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        let mut files: Vec<&String> = self.map.keys().collect();
        files.sort();
        let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (di, name) in DEPTH_NAMES.iter().enumerate() {
            let d = files.first().map_or(0, |f| self.map[*f][di].len());
            let bytes: Vec<u8> = files
                .iter()
                .flat_map(|f| self.map[*f][di].iter().flat_map(|x| x.to_le_bytes()))
                .collect();
            data.push((name.to_string(), vec![files.len(), d], bytes));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = data
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<_, _>>()?;
        let info = HashMap::from([
            ("model_sha256".to_string(), self.model_sha.clone()),
            (
                "files".to_string(),
                files
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ]);
        let out = safetensors::tensor::serialize(views, Some(info))?;
        crate::atomic_file::write_atomic(p, &out)
            .with_context(|| format!("cannot write {}", p.display()))
    }
}

/// Pooled features of each file (`None` for files that cannot be read, with the reason), through
/// the cache, in batches of `batch` films.
pub fn extract(
    engine: &Engine,
    files: &[PathBuf],
    cache: &mut FeatureCache,
    batch: usize,
    label: &str,
) -> Result<Vec<Result<Vec<Vec<f32>>, String>>> {
    let spec = &engine.model.config.input;
    let key = |p: &Path| p.display().to_string();
    let todo: Vec<&PathBuf> = files
        .iter()
        .filter(|f| !cache.map.contains_key(&key(f)))
        .collect();
    let mut failed: HashMap<String, String> = HashMap::new();
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{label}: {{bar:40}} {{pos}}/{{len}} films, {{per_sec}}, eta {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for (n, chunk) in todo.chunks(batch.max(1)).enumerate() {
        let mut inputs = Vec::new();
        let mut names = Vec::new();
        for f in chunk {
            match load_study(f) {
                Ok(study) => {
                    let gray = model_gray(&study, &study.default_window, spec);
                    inputs.push(input_tensor(&gray, spec, &engine.model.device)?);
                    names.push(key(f));
                }
                Err(e) => {
                    failed.insert(key(f), e.to_string());
                }
            }
        }
        if !inputs.is_empty() {
            let x = Tensor::cat(&inputs, 0)?;
            let (_, stages) = engine.model.backbone.forward_with_stages(&x)?;
            for (name, feats) in names
                .into_iter()
                .zip(stage_features(&stages, &depth_names())?)
            {
                cache.map.insert(name, feats);
            }
        }
        bar.inc(chunk.len() as u64);
        // Save now and then so an interrupted run keeps most of its work.
        if n % 100 == 99 {
            cache.save()?;
        }
    }
    bar.finish_and_clear();
    cache.save()?;
    Ok(files
        .iter()
        .map(|f| {
            let k = key(f);
            cache
                .map
                .get(&k)
                .cloned()
                .ok_or_else(|| failed.get(&k).cloned().unwrap_or_else(|| "not read".into()))
        })
        .collect())
}

/// One row of `split.csv`: file relative to the data folder, label, split.
fn read_split(split: &Path) -> Result<Vec<(String, String, String)>> {
    let mut rdr = csv::Reader::from_path(split)
        .with_context(|| format!("cannot read {}", split.display()))?;
    let headers = rdr.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no column '{name}'", split.display()))
    };
    let (cf, cl, cs) = (col("file")?, col("label")?, col("split")?);
    let mut out = Vec::new();
    for r in rdr.records() {
        let r = r?;
        out.push((
            r.get(cf).unwrap_or_default().to_string(),
            r.get(cl).unwrap_or_default().to_string(),
            r.get(cs).unwrap_or_default().to_string(),
        ));
    }
    Ok(out)
}

/// Files of one split; `limit` > 0 keeps a seeded subset stratified by label (the same share of
/// each label as in the whole split).
pub fn split_files(
    data: &Path,
    split_csv: &Path,
    which: &str,
    limit: usize,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let rows = read_split(split_csv)?;
    let mut by_label: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (f, l, s) in rows {
        if s == which {
            by_label.entry(l).or_default().push(f);
        }
    }
    let total: usize = by_label.values().map(Vec::len).sum();
    if total == 0 {
        anyhow::bail!("{} has no row with split '{which}'", split_csv.display());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for files in by_label.values_mut() {
        files.sort();
        if limit > 0 && limit < total {
            files.shuffle(&mut rng);
            let keep = ((files.len() * limit) as f64 / total as f64).round() as usize;
            files.truncate(keep.max(1));
        }
        out.extend(files.iter().map(|f| data.join(f)));
    }
    out.sort();
    Ok(out)
}

/// `cxr-viewer scope-fit`'s options (flattened into the command by `main.rs`).
#[derive(Clone, Debug, clap::Args)]
pub struct FitArgs {
    /// Folder the `file` column of the split is relative to (e.g. ../shared/data/kermany).
    #[arg(long)]
    pub data: PathBuf,
    /// CSV with columns file,label,split (split = train/val).
    #[arg(long)]
    pub split: PathBuf,
    /// Use a seeded, label-stratified subset of this many training films (0 = all).
    #[arg(long, default_value_t = 0)]
    pub train_limit: usize,
    /// Seed of that subset.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Principal directions kept per depth.
    #[arg(long, default_value_t = 32)]
    pub components: usize,
    /// Threshold = this quantile of the validation scores.
    #[arg(long, default_value_t = 0.99)]
    pub quantile: f64,
    /// The statistics file to write (FILE.scope.safetensors; model.json names it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Feature cache (safetensors) reused between runs.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Films per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
}

/// Fits the statistics on the training split, sets the threshold at the `quantile` of the
/// validation scores, writes the file; returns the log text.
pub fn scope_fit(engine: &Engine, args: &FitArgs) -> Result<String> {
    let mut log = String::new();
    let mut say = |s: String| {
        println!("{s}");
        log.push_str(&s);
        log.push('\n');
    };
    let train = split_files(
        &args.data,
        &args.split,
        "train",
        args.train_limit,
        args.seed,
    )?;
    let val = split_files(&args.data, &args.split, "val", 0, args.seed)?;
    say(format!(
        "model {} (sha256 {}), train films {} (limit {}, seed {}), val films {}",
        engine.model.config.name,
        &engine.model.sha256[..12.min(engine.model.sha256.len())],
        train.len(),
        args.train_limit,
        args.seed,
        val.len()
    ));
    let mut cache = FeatureCache::open(args.cache.as_deref(), &engine.model.sha256);
    let t = std::time::Instant::now();
    let train_feats: Vec<Vec<Vec<f32>>> = extract(engine, &train, &mut cache, args.batch, "train")?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let val_feats: Vec<Vec<Vec<f32>>> = extract(engine, &val, &mut cache, args.batch, "val")?
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    say(format!(
        "features: {} train, {} val readable ({:.0} s)",
        train_feats.len(),
        val_feats.len(),
        t.elapsed().as_secs_f64()
    ));
    let mut depths = Vec::new();
    for (di, name) in DEPTH_NAMES.iter().enumerate() {
        let rows: Vec<Vec<f32>> = train_feats.iter().map(|f| f[di].clone()).collect();
        let s = fit_depth(name, &rows, args.components, args.seed)?;
        say(format!(
            "{name}: D = {}, k = {}, λ₁ = {:.2}, λ_k = {:.3}, σ² = {:.4}",
            s.dim(),
            s.eigenvalues.len(),
            s.eigenvalues.first().copied().unwrap_or(0.0),
            s.eigenvalues.last().copied().unwrap_or(0.0),
            s.residual_variance
        ));
        depths.push(s);
    }
    let mut stats = ScopeStats {
        depths,
        threshold: f32::INFINITY,
        info: HashMap::new(),
        path: args.out.clone(),
    };
    let train_scores: Vec<f32> = train_feats.iter().map(|f| stats.score(f)).collect();
    let val_scores: Vec<f32> = val_feats.iter().map(|f| stats.score(f)).collect();
    let threshold = quantile(&val_scores, args.quantile)
        .context("no validation score to set the threshold on")?;
    stats.threshold = threshold;
    let flagged = val_scores.iter().filter(|s| **s > threshold).count();
    let rule = format!(
        "{:.1}th percentile of the {} validation scores",
        100.0 * args.quantile,
        val_scores.len()
    );
    say(format!(
        "score median: train {:.3}, val {:.3}; threshold = {threshold:.3} ({rule}); val flagged {flagged}/{}",
        quantile(&train_scores, 0.5).unwrap_or(f32::NAN),
        quantile(&val_scores, 0.5).unwrap_or(f32::NAN),
        val_scores.len()
    ));
    stats.info = HashMap::from([
        ("model".to_string(), engine.model.config.name.clone()),
        ("model_sha256".to_string(), engine.model.sha256.clone()),
        ("train_films".to_string(), train_feats.len().to_string()),
        (
            "train_subset".to_string(),
            format!(
                "stratified by label, limit {}, seed {}",
                args.train_limit, args.seed
            ),
        ),
        ("val_films".to_string(), val_feats.len().to_string()),
        ("threshold_rule".to_string(), rule),
        ("components".to_string(), args.components.to_string()),
        (
            "features".to_string(),
            "layerN: spatial mean and std of each channel of the stage; layerN.regionsR: mean of \
             each channel over an R×R grid of regions"
                .to_string(),
        ),
    ]);
    stats
        .save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    say(format!("wrote {}", args.out.display()));
    Ok(log)
}

/// One category's row of the scope report.
pub struct ReportRow {
    pub category: String,
    pub n: usize,
    pub unreadable: usize,
    pub auroc: Option<f64>,
    /// Stratified bootstrap 95 % interval of `auroc` (as `eval`'s AUC): 26 adult films against
    /// 794 validation films leave a wide one, which the target (≥ 0.99) has to be read against.
    pub auroc_ci95: Option<[f64; 2]>,
    /// Share flagged by the pixel detector alone.
    pub flagged_pixels: f64,
    /// 95 % Wilson interval of `flagged_pixels`.
    pub flagged_pixels_ci95: Option<[f64; 2]>,
    /// Share flagged by the whole guard (header rules + pixels).
    pub flagged_guard: f64,
    /// AUROC of each depth's distance alone.
    pub auroc_per_depth: Vec<Option<f64>>,
}

fn per_depth_aurocs(val: &[Vec<f32>], ood: &[Vec<f32>]) -> Vec<Option<f64>> {
    let depths = val.first().map_or(0, Vec::len);
    (0..depths)
        .map(|d| {
            let v: Vec<f32> = val.iter().map(|x| x[d]).collect();
            let o: Vec<f32> = ood.iter().map(|x| x[d]).collect();
            auroc(&v, &o)
        })
        .collect()
}

/// One category's separation from the validation films, with intervals.
#[derive(Debug)]
struct Separation {
    auroc: Option<f64>,
    auroc_ci95: Option<[f64; 2]>,
    flagged: f64,
    flagged_ci95: Option<[f64; 2]>,
}

/// The AUROC of `scores` against the validation films' with its bootstrap interval, and the
/// share of `scores` above `threshold` with its Wilson interval.
fn auroc_and_flagged(val_scores: &[f32], scores: &[f32], threshold: f32) -> Separation {
    use crate::evaluation::{
        auc_bootstrap_interval, wilson_interval, Case, AUC_BOOTSTRAP_RESAMPLES,
    };
    let case = |positive: bool| {
        move |&s: &f32| Case {
            file: String::new(),
            positive,
            probability: s,
        }
    };
    let cases: Vec<Case> = val_scores
        .iter()
        .map(case(false))
        .chain(scores.iter().map(case(true)))
        .collect();
    let flagged = scores.iter().filter(|s| **s > threshold).count();
    Separation {
        auroc: auroc(val_scores, scores),
        auroc_ci95: auc_bootstrap_interval(&cases, AUC_BOOTSTRAP_RESAMPLES, 0),
        flagged: flagged as f64 / scores.len().max(1) as f64,
        flagged_ci95: wilson_interval(flagged, scores.len()),
    }
}

/// "0.977 (0.951–0.994)"; "–" for none.
fn with_interval(
    value: Option<f64>,
    interval: Option<[f64; 2]>,
    scale: f64,
    digits: usize,
) -> String {
    match (value, interval) {
        (Some(v), Some([lo, hi])) => format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            scale * v,
            scale * lo,
            scale * hi
        ),
        (Some(v), None) => format!("{:.digits$}", scale * v),
        (None, _) => "–".to_string(),
    }
}

/// Scores every image under each subfolder of `ood` and the validation films; returns the table.
pub fn scope_report(
    engine: &Engine,
    ood: &Path,
    data: &Path,
    split: &Path,
    cache: Option<&Path>,
    batch: usize,
) -> Result<(Vec<ReportRow>, String)> {
    let stats = engine
        .scope
        .as_ref()
        .context("the model names no scope statistics in model.json (run scope-fit first)")?;
    let mut cache = FeatureCache::open(cache, &engine.model.sha256);
    let val = split_files(data, split, "val", 0, 0)?;
    let val_feats: Vec<Vec<Vec<f32>>> = extract(engine, &val, &mut cache, batch, "val")?
        .into_iter()
        .filter_map(Result::ok)
        .map(|f| in_stats_order(stats, &f))
        .collect::<Result<_>>()?;
    let val_depths: Vec<Vec<f32>> = val_feats.iter().map(|f| stats.per_depth(f)).collect();
    let val_scores: Vec<f32> = val_depths.iter().map(|d| stats.score_of(d)).collect();
    let val_flagged = auroc_and_flagged(&val_scores, &val_scores, stats.threshold);
    let mut rows = vec![ReportRow {
        category: "validation split (in scope)".into(),
        n: val_scores.len(),
        unreadable: val.len() - val_scores.len(),
        auroc: None,
        auroc_ci95: None,
        flagged_pixels: val_flagged.flagged,
        flagged_pixels_ci95: val_flagged.flagged_ci95,
        flagged_guard: val_flagged.flagged,
        auroc_per_depth: Vec::new(),
    }];
    let mut categories: Vec<PathBuf> = std::fs::read_dir(ood)
        .with_context(|| format!("cannot read folder {}", ood.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    categories.sort();
    for dir in categories {
        let files = crate::cli::collect_files(&dir)?
            .into_iter()
            .filter(|f| {
                let ext = f
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                matches!(ext.as_str(), "dcm" | "jpg" | "jpeg" | "png")
            })
            .collect::<Vec<_>>();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let feats = extract(engine, &files, &mut cache, batch, &name)?;
        let mut scores = Vec::new();
        let mut depth_scores = Vec::new();
        let mut guard = 0usize;
        let mut unreadable = 0usize;
        for (f, r) in files.iter().zip(feats) {
            let Ok(feat) = r else {
                unreadable += 1;
                continue;
            };
            let feat = in_stats_order(stats, &feat)?;
            let depths = stats.per_depth(&feat);
            let score = stats.score_of(&depths);
            scores.push(score);
            depth_scores.push(depths);
            let header = match load_study(f) {
                Ok(s) => ScopeCheck::from_header(&s.metadata),
                Err(_) => ScopeCheck::default(),
            };
            if !header.with_pixel_score(score, stats.threshold).in_scope {
                guard += 1;
            }
        }
        let n = scores.len();
        let separation = auroc_and_flagged(&val_scores, &scores, stats.threshold);
        rows.push(ReportRow {
            category: name,
            n,
            unreadable,
            auroc: separation.auroc,
            auroc_ci95: separation.auroc_ci95,
            flagged_pixels: separation.flagged,
            flagged_pixels_ci95: separation.flagged_ci95,
            flagged_guard: guard as f64 / n.max(1) as f64,
            auroc_per_depth: per_depth_aurocs(&val_depths, &depth_scores),
        });
    }
    let mut table = format!(
        "scope statistics {} (threshold {:.3}), model {}\n\n| category | n | AUROC vs validation (95 % CI) | flagged (pixels; 95 % CI) | flagged (header + pixels) | unreadable | AUROC per depth ({}) |\n|---|---:|---:|---:|---:|---:|---|\n",
        stats
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        stats.threshold,
        engine.model.config.name,
        stats.depth_names().join(" / ")
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} % | {:.1} % | {} | {} |\n",
            r.category,
            r.n,
            with_interval(r.auroc, r.auroc_ci95, 1.0, 3),
            with_interval(Some(r.flagged_pixels), r.flagged_pixels_ci95, 100.0, 1),
            100.0 * r.flagged_guard,
            r.unreadable,
            r.auroc_per_depth
                .iter()
                .map(|a| a.map_or("–".to_string(), |a| format!("{a:.3}")))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    Ok((rows, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_category_gets_its_intervals() {
        // 8 validation scores 0..7; 4 out-of-scope scores, three above every validation score
        // and one (3.5) above four of them: AUROC = (3·8 + 4) / 32 = 0.875.
        let val: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let ood = [3.5, 10.0, 11.0, 12.0];
        let Separation {
            auroc,
            auroc_ci95: auroc_ci,
            flagged,
            flagged_ci95: flagged_ci,
        } = auroc_and_flagged(&val, &ood, 6.5);
        assert_eq!(auroc, Some(0.875));
        let [lo, hi] = auroc_ci.unwrap();
        assert!(lo < 0.875 && hi == 1.0, "[{lo}, {hi}]");
        // 3 of 4 above 6.5; Wilson by hand: centre (0.75 + z²/8) / (1 + z²/4) = 0.6275,
        // half-width z·√(0.75·0.25/4 + z²/64) / (1 + z²/4) = 0.3269.
        assert_eq!(flagged, 0.75);
        let [flo, fhi] = flagged_ci.unwrap();
        assert!(
            (flo - 0.3006).abs() < 1e-3 && (fhi - 0.9544).abs() < 1e-3,
            "[{flo}, {fhi}]"
        );
        assert_eq!(
            with_interval(Some(flagged), flagged_ci, 100.0, 1),
            "75.0 (30.1–95.4)"
        );
        assert_eq!(with_interval(None, None, 1.0, 3), "–");
        assert_eq!(with_interval(Some(0.5), None, 1.0, 3), "0.500");
    }
}
