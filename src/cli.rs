//! The headless commands (`analyze`, `bench`); `main.rs` only parses arguments.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use crate::analysis::{Analysis, AnalysisOptions, Engine, Stage};
use crate::explain::integrated_gradients::{
    relative_l2_error, IgOptions, IgRule, IntegratedGradients,
};
use crate::explain::Grid;
use crate::io::load_study;
use crate::report::Report;
pub use crate::trust_eval::eval_with_faithfulness;

/// Where the model comes from when `--model` is not given: `$CXR_VIEWER_MODEL`, then
/// `weights/model.json` in the working directory, beside the executable, or in the source tree the
/// binary was built from.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CXR_VIEWER_MODEL") {
        return PathBuf::from(p);
    }
    let mut candidates = vec![PathBuf::from("weights/model.json")];
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join("weights/model.json"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/model.json"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| candidates.swap_remove(0))
}

pub struct AnalyzeArgs {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub options: AnalysisOptions,
    pub dump_input: bool,
    pub include_identifiers: bool,
    /// Frame of multi-frame DICOM inputs, 0-based (`--frame N` is 1-based).
    pub frame: u32,
    /// `--no-dim-overlays`: draw the overlays of an uncertain or out-of-scope study at full
    /// strength, as the viewer does with its gating setting off.
    pub no_dim_overlays: bool,
    /// `--html`: also write `report.html` ([`crate::report_html`]).
    pub html: bool,
    /// `--notes`: the review notes to put on the pages, by study.
    pub notes: Option<std::collections::HashMap<crate::notes::StudyId, crate::notes::Note>>,
}

/// Every note of the database at `db`, by study, for `analyze --notes`. The file must exist:
/// a mistyped name would otherwise give pages without their notes, and a new empty database.
pub fn notes_by_study(
    db: &Path,
) -> Result<std::collections::HashMap<crate::notes::StudyId, crate::notes::Note>> {
    if !db.exists() {
        anyhow::bail!("no notes database at {}", db.display());
    }
    let store = crate::notes::NotesStore::open(db)?;
    let notes = store.list(crate::notes::Filter::All)?;
    eprintln!("note: {} notes read from {}", notes.len(), db.display());
    Ok(notes.into_iter().map(|n| (n.study.clone(), n)).collect())
}

/// The label the folders give a film of `input` found in `within` (as the viewer's study list
/// reads it): the nearest folder named like a class, the input folder's own name included.
fn folder_truth(
    input: &Path,
    within: &Path,
    config: &crate::model::ModelConfig,
) -> Option<crate::notes::Finding> {
    let own = input
        .is_dir()
        .then(|| crate::io::folder_as_named(input))
        .and_then(|p| p.file_name()?.to_str().map(str::to_string));
    crate::notes::class_of_folders(config, within, own.as_deref())
}

/// Output folder for one input: `<out>/<within>/<stem>`, made unique if two inputs share it.
fn output_dir(
    out: &Path,
    within: &Path,
    input: &Path,
    used: &mut std::collections::HashSet<PathBuf>,
) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let parent = out.join(within);
    let mut dir = parent.join(&stem);
    let mut n = 2;
    while !used.insert(dir.clone()) {
        dir = parent.join(format!("{stem}-{n}"));
        n += 1;
    }
    dir
}

/// One file to analyse and the folder, relative to `--out`, that its output folder goes in.
struct Input {
    file: PathBuf,
    within: PathBuf,
    /// The input it was found under, as given.
    input: PathBuf,
}

/// The files to analyse for one input: a file is itself (outputs in `<out>/<stem>/`); a folder,
/// or a DICOMDIR, is the studies found in it, recursively (links followed, as in the viewer's
/// study list), each in `<out>/<its folder relative to the input>/<stem>/` so that
/// `NORMAL/a.png` and `PNEUMONIA/a.png` stay apart and findable. A folder with no study in it is
/// an error of its own.
/// Images of a folder in formats it cannot read are noted in `others`.
fn studies_of(input: &Path, others: &mut crate::io::OtherFormats) -> Result<Vec<Input>> {
    let (base, files) = if crate::io::is_dicomdir(input) {
        let base = input.parent().unwrap_or(Path::new(""));
        (base, crate::io::dicomdir_images(input)?)
    } else if input.is_dir() {
        let mut files = Vec::new();
        for f in crate::io::files_under(input, usize::MAX) {
            if others.study_or_note(&f) {
                files.push(f);
            }
        }
        (input, files)
    } else {
        return Ok(vec![Input {
            file: input.to_path_buf(),
            within: PathBuf::new(),
            input: input.to_path_buf(),
        }]);
    };
    if files.is_empty() {
        match others.summary() {
            Some(left_out) => {
                anyhow::bail!("no DICOM, PNG or JPEG file in this folder: {left_out}")
            }
            None => anyhow::bail!("no DICOM, PNG or JPEG file in this folder"),
        }
    }
    Ok(files
        .into_iter()
        .map(|file| {
            let within = file
                .parent()
                .and_then(|p| p.strip_prefix(base).ok())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            Input {
                file,
                within,
                input: input.to_path_buf(),
            }
        })
        .collect())
}

/// Analyses every input (the studies in a folder input); returns how many failed (each failure
/// already printed as one line).
pub fn analyze(engine: &Engine, args: &AnalyzeArgs) -> usize {
    let mut failures = 0;
    let mut used = std::collections::HashSet::new();
    let mut files = Vec::new();
    for input in &args.inputs {
        let mut others = crate::io::OtherFormats::default();
        match studies_of(input, &mut others) {
            Ok(found) => {
                files.extend(found);
                // Said before the studies' lines, which may take minutes to come.
                if let Some(left_out) = others.summary() {
                    eprintln!("note: {}: {left_out}", input.display());
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("error: {}: {}", input.display(), error_line(&e));
            }
        }
    }
    let (mut analysed, mut pixels_only) = (0, 0);
    let mut baseline_notes: Vec<String> = Vec::new();
    let mut index = Vec::new();
    for Input {
        file: input,
        within,
        input: root,
    } in &files
    {
        let dir = output_dir(&args.out, within, input, &mut used);
        let film = within
            .join(input.file_name().unwrap_or_default())
            .display()
            .to_string();
        let truth = || folder_truth(root, within, &engine.model.config);
        match analyze_one(engine, input, &dir, args, truth) {
            Ok(done) => {
                println!("{}", done.summary);
                analysed += 1;
                pixels_only += usize::from(done.report.scope.pixels_only_note().is_some());
                baseline_notes.extend(done.baseline_note);
                let page = dir
                    .strip_prefix(&args.out)
                    .unwrap_or(&dir)
                    .join(crate::report_html::FILE_NAME);
                index.push(crate::report_html::IndexRow {
                    film,
                    outcome: Ok(crate::report_html::IndexResult::new(page, &done.report)),
                });
            }
            Err(e) => {
                failures += 1;
                eprintln!("error: {}: {}", input.display(), error_line(&e));
                if backtraces_wanted() {
                    // The whole chain, with the backtrace candle captured where the error arose
                    // (a GPU error's one line does not say which operation failed).
                    eprintln!("{e:?}");
                }
                index.push(crate::report_html::IndexRow {
                    film,
                    outcome: Err(error_line(&e)),
                });
            }
        }
    }
    // One film's page is the whole story; several get a table to walk them from.
    if args.html && files.len() > 1 {
        let path = args.out.join(crate::report_html::INDEX_NAME);
        let page = crate::report_html::index(&index);
        match write_atomic(&path, page.as_bytes()) {
            Ok(()) => eprintln!(
                "note: index of the {} films: {}",
                files.len(),
                path.display()
            ),
            Err(e) => {
                failures += 1;
                eprintln!("error: {}", error_line(&e));
            }
        }
    }
    // The viewer says this above each such result; the summary lines stay one per film (tools
    // read them), so it is said once, on stderr, after them.
    if pixels_only > 0 {
        eprintln!(
            "note: in scope with no age in the file: {pixels_only} of {analysed} films; their \
             scope was checked from the image alone, which misses some adult chest films \
             (report.json: scope.age_known false); confirm the patients are young children"
        );
    }
    if let Some(first) = baseline_notes.first() {
        // The baseline is a fixed image: its reading is the same for every film explained as
        // that class, so one example says it.
        eprintln!(
            "note: Integrated Gradients baseline read as the explained class: {} of {analysed} \
             films ({first}); their IG maps show what separates the film from that image, not \
             why it reads as that class (report.json: ig.warning)",
            baseline_notes.len()
        );
    }
    failures
}

/// `RUST_BACKTRACE` set to anything but `0`: the user asked for more than one line per error.
fn backtraces_wanted() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// An error and its causes as the one line a user sees: "outer: cause: root cause" (see
/// `text::chain_line`).
pub fn error_line(e: &anyhow::Error) -> String {
    crate::text::chain_line(e.as_ref())
}

/// What the run says of one analysed film.
struct Analysed {
    /// Its line on stdout.
    summary: String,
    /// How the IG baseline read, when as the class explained.
    baseline_note: Option<String>,
    report: Report,
}

/// `folder_truth`: the label the folders give the film, asked for only when a note is put on
/// its page.
fn analyze_one(
    engine: &Engine,
    input: &Path,
    dir: &Path,
    args: &AnalyzeArgs,
    folder_truth: impl FnOnce() -> Option<crate::notes::Finding>,
) -> Result<Analysed> {
    let t = Instant::now();
    let study = crate::io::load_study_frame(input, args.frame)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let cancel = AtomicBool::new(false);
    let mut analysis = engine.analyze(
        &study,
        &args.options,
        &|_stage: Stage| {},
        &cancel,
        &|_, _| {},
    )?;
    analysis.timings.load = load_ms;
    analysis.timings.total += load_ms;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let review = match &args.notes {
        Some(notes) => crate::notes::identity::study_id(input, &study)
            .ok()
            .and_then(|id| notes.get(&id))
            .and_then(|note| {
                crate::report::ReviewReport::of_analysis(
                    note,
                    folder_truth(),
                    &engine.model.config,
                    &analysis,
                    (study.width, study.height),
                )
            }),
        None => None,
    };
    let report = write_outputs(engine, &study, &analysis, dir, args, review)?;
    let p = &analysis.prepared.prediction;
    // An out-of-scope film says so before its (meaningless) probability; an in-scope one with a
    // scope warning (older child, raw detector image) says that.
    let scope = analysis
        .prepared
        .scope
        .summary()
        .map(|s| format!("{s}; "))
        .unwrap_or_default();
    let summary = format!(
        "{}: {scope}{} (P({}) = {:.3}, MC {:.3} ± {:.3}) → {}",
        input.display(),
        p.label,
        p.positive_class,
        p.positive_probability,
        analysis.uncertainty.mean,
        analysis.uncertainty.std,
        dir.display()
    );
    // "the black baseline is itself read as PNEUMONIA (P = 0.96)", said once after all films.
    let baseline_note = analysis.ig.as_ref().and_then(|ig| {
        let reading = crate::analysis::baseline_reading(&engine.model.config, ig)?;
        crate::analysis::baseline_read_as_target(ig, &reading).map(|read| format!("the {read}"))
    });
    Ok(Analysed {
        summary,
        baseline_note,
        report,
    })
}

fn write_grid(grid: &Grid, path: &Path) -> Result<()> {
    Tensor::from_vec(grid.values.clone(), (grid.height, grid.width), &Device::Cpu)?
        .write_npy(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_outputs(
    engine: &Engine,
    study: &crate::io::Study,
    analysis: &Analysis,
    dir: &Path,
    args: &AnalyzeArgs,
    review: Option<crate::report::ReviewReport>,
) -> Result<Report> {
    let report =
        Report::new(study, analysis, &engine.model, args.include_identifiers).with_review(review);
    let json = serde_json::to_string_pretty(&report)?;
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    write_grid(&analysis.gradcam.map, &dir.join("gradcam.npy"))?;
    write_grid(
        &analysis.uncertainty.cam_mean,
        &dir.join("uncertainty_mean.npy"),
    )?;
    write_grid(
        &analysis.uncertainty.cam_std,
        &dir.join("uncertainty_std.npy"),
    )?;
    if args.dump_input {
        analysis
            .prepared
            .input
            .squeeze(0)?
            .to_device(&Device::Cpu)?
            .write_npy(dir.join("input.npy"))?;
    }
    if let Some(ig) = &analysis.ig {
        write_grid(&ig.map, &dir.join("ig.npy"))?;
    }
    // Drawn as the viewer draws them: dimmed when the answer is uncertain or the film out of
    // scope (a full-strength map on a hand film is what the scope guard keeps off slides), the
    // marker saying why. The report's own uncertainty warning and scope verdict, so the
    // overlays and report.json never disagree about why.
    let gate = crate::trust::overlay_gate(
        crate::trust::gate_reasons(report.uncertainty.warning.clone(), Some(&report.scope)),
        !args.no_dim_overlays,
    );
    let overlays = crate::overlay::study_overlays(study, analysis, gate.as_ref());
    for overlay in &overlays {
        let name = overlay.file_name;
        // Marked as exports, so a later walk of this folder never takes them for films.
        let bytes = crate::io::viewer_export::encode_png(&overlay.image, &overlay.what)
            .map_err(|e| anyhow::anyhow!("cannot encode {name}: {e}"))?;
        std::fs::write(dir.join(name), bytes).with_context(|| format!("cannot write {name}"))?;
    }
    if args.html {
        let page = crate::report_html::page(study, &report, &overlays)
            .map_err(|e| anyhow::anyhow!("cannot write report.html: {e}"))?;
        write_atomic(&dir.join(crate::report_html::FILE_NAME), page.as_bytes())?;
    }
    Ok(report)
}

/// [`crate::atomic_file::write_atomic`] with the path in the error.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::atomic_file::write_atomic(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// "black baseline", "normal baseline (auto)": the baseline a map started from, as the bench
/// table names it.
fn ig_baseline_used(ig: &IntegratedGradients) -> String {
    format!(
        "{} baseline{}",
        ig.baseline.name(),
        if ig.baseline_auto { " (auto)" } else { "" }
    )
}

/// Median milliseconds of each stage over `runs` repetitions, as a table. With
/// `reference_steps`, also the IG map's relative L2 error against a Gauss–Legendre map with that
/// many nodes (same model, film, baseline and target), computed once after the timed runs.
pub fn bench(
    engine: &Engine,
    input: &Path,
    options: &AnalysisOptions,
    runs: usize,
    reference_steps: Option<usize>,
) -> Result<String> {
    let runs = runs.max(1);
    let cancel = AtomicBool::new(false);
    // One run outside the table warms caches and allocators; its times are still reported
    // below, since the first film after start-up is what a user opening the viewer waits for
    // (fresh pages from the kernel, cold caches).
    // The file's load time (ms) and the analysis.
    let load_and_analyze = || -> Result<(f64, Analysis)> {
        let t = Instant::now();
        let study = load_study(input)?;
        let load = t.elapsed().as_secs_f64() * 1e3;
        Ok((
            load,
            engine.analyze(&study, options, &|_| {}, &cancel, &|_, _| {})?,
        ))
    };
    let (first_load, first) = load_and_analyze()?;
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); 11];
    let mut gap = None;
    let mut last = None;
    for _ in 0..runs {
        let (load, a) = load_and_analyze()?;
        gap = a.ig.as_ref().map(|ig| (ig.delta, ig.relative_delta()));
        let tm = &a.timings;
        // Issue 11's budget is per map: the study's curves divided by the maps they scored.
        let maps_scored = a
            .trust
            .faithfulness
            .as_ref()
            .map_or(1, |f| f.methods.len().max(1));
        for (row, v) in rows.iter_mut().zip([
            load,
            tm.preprocess,
            tm.forward,
            tm.scope,
            tm.gradcam,
            tm.prediction_with_gradcam(),
            tm.uncertainty,
            tm.ig,
            tm.faithfulness,
            tm.faithfulness / maps_scored as f64,
            tm.total + load,
        ]) {
            row.push(v);
        }
        last = Some(a);
    }
    let names = [
        "load".to_string(),
        "preprocess".to_string(),
        "forward".to_string(),
        "scope guard (on the forward's features)".to_string(),
        "Grad-CAM".to_string(),
        "prediction + Grad-CAM after decode".to_string(),
        format!("MC uncertainty ({} samples)", options.mc_samples),
        match (options.ig_rule, last.as_ref().and_then(|a| a.ig.as_ref())) {
            (IgRule::Guided { tolerance }, Some(ig)) => format!(
                "IG (guided, tolerance {tolerance}, {} gradients + {} probes of at most {}, {}, batch {})",
                ig.steps,
                ig.probes,
                options.ig_steps,
                ig_baseline_used(ig),
                options.ig_batch
            ),
            (rule, ig) => format!(
                "IG ({} {} steps, {}, batch {})",
                options.ig_steps,
                rule.name(),
                ig.map_or_else(
                    || format!("{} baseline", options.ig_baseline.name()),
                    ig_baseline_used
                ),
                options.ig_batch
            ),
        },
        options
            .faithfulness
            .as_ref()
            .map_or("faithfulness (off)".to_string(), |f| {
                format!(
                    "faithfulness (3 maps + shared random reference: {})",
                    f.describe()
                )
            }),
        "faithfulness per map (the row above ÷ maps scored)".to_string(),
        "total".to_string(),
    ];
    let cfg = &engine.model.config;
    let mut out = format!(
        "model {} ({}×{}), device {}, {} runs, input {}\n\n| stage | median ms | min ms | max ms |\n|---|---:|---:|---:|\n",
        cfg.name,
        cfg.input.width,
        cfg.input.height,
        engine.device_name(),
        runs,
        input.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
    );
    for (name, mut v) in names.iter().zip(rows) {
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        out.push_str(&format!(
            "| {name} | {median:.1} | {:.1} | {:.1} |\n",
            v[0],
            v[v.len() - 1]
        ));
    }
    out.push_str(&format!(
        "\nfirst analysis after start-up (not in the table): prediction + Grad-CAM after decode {:.1} ms, IG {:.1} ms, total {:.1} ms\n",
        first.timings.prediction_with_gradcam(),
        first.timings.ig,
        first.timings.total + first_load
    ));
    if let Some(mib) = peak_resident_mib() {
        out.push_str(&format!(
            "\npeak resident memory of this process: {mib:.0} MiB\n"
        ));
    }
    if let Some((delta, relative)) = gap {
        out.push_str(&format!(
            "\nIG completeness gap: {delta:.4} ({:.2} % of |F(x) − F(x′)|)\n",
            100.0 * relative
        ));
    }
    if let (Some(steps), Some(a)) = (reference_steps, last.as_ref()) {
        if let Some(ig) = &a.ig {
            let reference = engine.integrated_gradients(
                &a.prepared,
                &IgOptions {
                    steps,
                    baseline: ig.baseline,
                    target: ig.target,
                    batch: options.ig_batch,
                    lanes: options.ig_lanes,
                    rule: IgRule::GaussLegendre,
                },
                &crate::explain::no_control(),
            )?;
            out.push_str(&format!(
                "IG map error vs {steps}-node Gauss–Legendre reference: {:.4} (relative L2; reference gap {:.2} %)\n",
                relative_l2_error(&ig.map.values, &reference.0.map.values),
                100.0 * reference.0.relative_delta()
            ));
        }
    }
    Ok(out)
}

/// Integrated Gradients map error against gradient evaluations, for Gauss–Legendre with several
/// node counts and the guided rule with several budgets, tolerances and plans: relative L2 error
/// against a `reference_steps`-node Gauss–Legendre map, completeness gap, gradients and
/// forward-only probes used, seconds. Chooses the guided rule's defaults; asserts nothing.
pub fn bench_ig_sweep(
    engine: &Engine,
    input: &Path,
    options: &AnalysisOptions,
    reference_steps: usize,
) -> Result<String> {
    use crate::explain::integrated_gradients::{integrated_gradients_with_plan, GuidedPlan};
    let study = load_study(input)?;
    let (prepared, _, _) = engine.prepare(&study)?;
    let target = engine.target_index(options.target.as_deref(), &prepared.prediction)?;
    let baseline = engine.choose_baseline(&prepared, options.ig_baseline, target)?;
    let control = crate::explain::no_control();
    let run = |steps: usize, rule: IgRule, plan: GuidedPlan| -> Result<_> {
        let opts = IgOptions {
            steps,
            baseline,
            target,
            batch: options.ig_batch,
            lanes: options.ig_lanes,
            rule,
        };
        let t = Instant::now();
        let ig = integrated_gradients_with_plan(
            &engine.model,
            &prepared.input,
            &opts,
            plan,
            None,
            &control,
        )
        .map_err(crate::analysis::AnalysisError::from)?;
        Ok((ig, t.elapsed().as_secs_f64()))
    };
    let (reference, ref_s) = run(
        reference_steps,
        IgRule::GaussLegendre,
        GuidedPlan::default(),
    )?;
    let mut out = format!(
        "{}: target {target}, F(x) {:.4}, F(x′) {:.4}; {reference_steps}-node reference in {ref_s:.1} s, gap {:.3} %\n\n| rule | gradients | probes | map error | gap % | s |\n|---|---:|---:|---:|---:|---:|\n",
        input.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        reference.f_input,
        reference.f_baseline,
        100.0 * reference.relative_delta()
    );
    let mut configs: Vec<(String, usize, IgRule, GuidedPlan)> = Vec::new();
    for rule in [IgRule::Graded, IgRule::Midpoint, IgRule::GaussLegendre] {
        for n in [8, 16, 24, 32, 36, 40, 50] {
            configs.push((rule.name().to_string(), n, rule, GuidedPlan::default()));
        }
    }
    let plans = [
        GuidedPlan::default(),
        GuidedPlan {
            probes: 16,
            ..GuidedPlan::default()
        },
        GuidedPlan {
            first_share: 1.0,
            ..GuidedPlan::default()
        },
        GuidedPlan {
            panel_nodes: 1,
            ..GuidedPlan::default()
        },
    ];
    for (budget, tolerance) in [
        (8, 0.001),
        (16, 0.001),
        (24, 0.001),
        (32, 0.001),
        (32, 0.01),
    ] {
        for plan in plans {
            configs.push((
                format!(
                    "guided tol {tolerance}, probes {}, {} nodes/panel, first {:.0} %",
                    plan.probes,
                    plan.panel_nodes,
                    100.0 * plan.first_share
                ),
                budget,
                IgRule::Guided { tolerance },
                plan,
            ));
        }
    }
    for (name, steps, rule, plan) in configs {
        let (ig, s) = run(steps, rule, plan)?;
        out.push_str(&format!(
            "| {name} (≤ {steps}) | {} | {} | {:.4} | {:.2} | {s:.2} |\n",
            ig.steps,
            ig.probes,
            relative_l2_error(&ig.map.values, &reference.map.values),
            100.0 * ig.relative_delta()
        ));
    }
    Ok(out)
}

/// The bundled demo image.
pub fn default_sample_path() -> PathBuf {
    let relative = Path::new("assets/samples/person45_bacteria_221.jpeg");
    if relative.is_file() {
        return relative.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Files under `dir`, recursively (links followed, loops skipped: [`crate::io::files_under`]),
/// sorted by path; hidden files and folders skipped.
pub fn collect_files(dir: &Path) -> Result<Vec<PathBuf>> {
    // The walk only warns about what it cannot read; a folder that cannot be read at all is an
    // error, as before.
    std::fs::read_dir(dir).with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut out: Vec<PathBuf> = crate::io::files_under(dir, usize::MAX).collect();
    out.sort();
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(serde::Serialize)]
struct EvalOutput<'a> {
    #[serde(flatten)]
    metrics: &'a crate::evaluation::Metrics,
    positive_class: &'a str,
    model: serde_json::Value,
    device: &'a str,
    data: String,
    /// Files that could not be read, with the reason; they are not counted in `n`.
    skipped: Vec<(String, String)>,
    /// With `--boxes`: pointing game, energy in boxes and IoU per map.
    #[serde(skip_serializing_if = "Option::is_none")]
    localisation: Option<crate::localisation_eval::LocalisationReport>,
    /// How many films the scope guard flagged, and the metrics on the in-scope films only.
    scope: EvalScope,
}

/// `metrics.json`'s `scope`: how many of the `n` films the scope guard flagged, and the metrics
/// on the others.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalScope {
    pub flagged: usize,
    pub n: usize,
    /// `null` when no film is in scope.
    pub in_scope: Option<crate::evaluation::Metrics>,
}

/// What `eval` measured: the metrics on every readable film, and the scope guard's share.
#[derive(Clone, Debug)]
pub struct EvalSummary {
    pub metrics: crate::evaluation::Metrics,
    pub scope: EvalScope,
    /// With `--boxes`: what `metrics.json` has under `localisation`.
    pub localisation: Option<crate::localisation_eval::LocalisationReport>,
}

/// `cxr-viewer eval`: `data` holds one subfolder per class name; writes metrics.json,
/// predictions.csv and three plots to `out`.
pub fn eval(engine: &Engine, data: &Path, out: &Path) -> Result<EvalSummary> {
    eval_with_boxes(engine, data, out, None)
}

/// Whether `dir` has a subfolder named after one of the model's classes.
fn has_class_subfolder(dir: &Path, cfg: &crate::model::config::ModelConfig) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.path().is_dir() && cfg.class_index(&e.file_name().to_string_lossy()).is_some()
        })
    })
}

/// The labelled images of an `eval` folder: the files of each subfolder named after a class
/// (`true` for the positive class); without such subfolders, the films RSNA `labels` name, or
/// else every file when the folder itself is named after a class. Sorted; one error line when
/// none of these applies.
pub fn labelled_files(
    engine: &Engine,
    data: &Path,
    labels: Option<&crate::notes::rsna::RsnaLabels>,
) -> Result<Vec<(PathBuf, bool)>> {
    let cfg = &engine.model.config;
    let positive = cfg.positive_class.clone();
    let mut labelled: Vec<(PathBuf, bool)> = Vec::new();
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(data).with_context(|| format!("cannot read folder {}", data.display()))?
    {
        let path = entry?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !path.is_dir() || cfg.class_index(&name).is_none() {
            continue;
        }
        found.push(name.clone());
        let is_positive = name.eq_ignore_ascii_case(&positive);
        labelled.extend(collect_files(&path)?.into_iter().map(|f| (f, is_positive)));
    }
    if let (true, Some(labels)) = (found.is_empty(), labels) {
        labelled = labels.labelled(&collect_files(data)?);
        if !labelled.is_empty() {
            found.push("Target".into());
        }
    }
    // One class's folder (`test/PNEUMONIA`): every film has that label, as the viewer reads it.
    // Its sensitivity (or specificity) is what such a run is for; the figures that need both
    // classes come out `null`.
    let own_class = crate::io::folder_as_named(data)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|name| cfg.class_index(name).is_some());
    if let (true, Some(name)) = (found.is_empty(), own_class) {
        let is_positive = name.eq_ignore_ascii_case(&positive);
        labelled.extend(collect_files(data)?.into_iter().map(|f| (f, is_positive)));
        found.push(name);
    }
    if found.is_empty() {
        // A dataset as distributed (chest_xray/train/NORMAL, chest_xray/test/NORMAL, …): its
        // splits must not be pooled into one evaluation, so name them instead of guessing.
        let mut splits: Vec<String> = std::fs::read_dir(data)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && has_class_subfolder(p, cfg))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        splits.sort();
        let hint = match splits.as_slice() {
            [] => String::new(),
            [one] => format!("; {one}/ has them: --data {}", data.join(one).display()),
            several => format!(
                "; {} have them: point --data at one (e.g. {}), splits are not pooled",
                several
                    .iter()
                    .map(|s| format!("{s}/"))
                    .collect::<Vec<_>>()
                    .join(", "),
                data.join(&several[0]).display()
            ),
        };
        anyhow::bail!(
            "{} has no subfolder named after a class ({}): expected e.g. {0}/{}/ and {0}/{}/{hint}",
            data.display(),
            cfg.classes.join(", "),
            cfg.classes[0],
            cfg.classes[cfg.classes.len() - 1]
        );
    }
    labelled.sort();
    Ok(labelled)
}

/// `path` relative to the folder an evaluation reads, as written into its CSV files.
pub fn relative_name(path: &Path, data: &Path) -> String {
    path.strip_prefix(data)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A progress bar over `len` images drawn on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: usize, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Creates `--out` (and the folders above it) if missing. A path that is a file is refused by
/// name: "cannot create afile: File exists" did not say which path was wrong or why.
pub fn output_folder(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        anyhow::bail!("--out {} is a file, not a folder", out.display());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))
}

/// The RSNA labels CSV given with `--boxes`, if any.
pub fn read_boxes(boxes: Option<&Path>) -> Result<Option<crate::notes::rsna::RsnaLabels>> {
    boxes
        .map(crate::notes::rsna::read_labels)
        .transpose()
        .context("cannot use --boxes")
}

/// [`eval`], plus with `boxes` (an RSNA labels CSV) the localisation measures of every film
/// whose stem has boxes ([`crate::localisation_eval`]) in metrics.json and localisation.csv. A
/// folder without class subfolders is labelled by the file's `Target` instead.
pub fn eval_with_boxes(
    engine: &Engine,
    data: &Path,
    out: &Path,
    boxes: Option<&Path>,
) -> Result<EvalSummary> {
    let labels = read_boxes(boxes)?;
    let labelled = labelled_files(engine, data, labels.as_ref())?;
    eval_labelled(engine, data, out, labels.as_ref(), &labelled)
}

/// [`eval_with_boxes`] on films already listed by [`labelled_files`] (so a caller that goes on to
/// other measures on the same films lists them once).
pub fn eval_labelled(
    engine: &Engine,
    data: &Path,
    out: &Path,
    labels: Option<&crate::notes::rsna::RsnaLabels>,
    labelled: &[(PathBuf, bool)],
) -> Result<EvalSummary> {
    use crate::evaluation::{metrics, Case, ECE_BINS};
    let cfg = &engine.model.config;
    let positive = cfg.positive_class.clone();
    output_folder(out)?;
    let bar = progress_bar(
        labelled.len(),
        "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
    );
    let mut cases = Vec::with_capacity(labelled.len());
    let mut scopes = Vec::with_capacity(labelled.len());
    let mut skipped = Vec::new();
    // Eight films per forward pass (Engine::prepare_many: 32 ms a film against 47 ms alone,
    // shipped model, 2-core Intel Xeon), fewer when they are large (take_batch).
    let mut pending = labelled.iter();
    loop {
        let batch = crate::analysis::take_batch(
            &mut pending,
            8,
            |(path, positive)| {
                (
                    path,
                    positive,
                    load_study(path).map_err(anyhow::Error::from),
                )
            },
            |(_, _, s)| s.as_ref().map_or(0, |s| s.width * s.height),
        );
        if batch.is_empty() {
            break;
        }
        let (files, loaded): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|(path, positive, study)| ((path, positive), study))
            .unzip();
        let prepared = engine.prepare_loaded(loaded, anyhow::Error::from);
        for ((path, is_positive), result) in files.into_iter().zip(prepared) {
            let rel = relative_name(path, data);
            match result.map(|p| (p.prediction, p.scope)) {
                Ok((prediction, scope)) => {
                    cases.push(Case {
                        file: rel,
                        positive: *is_positive,
                        probability: prediction.positive_probability,
                    });
                    scopes.push(scope);
                }
                Err(e) => {
                    let reason = error_line(&e);
                    let line = format!("skipped {rel}: {reason}");
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                    skipped.push((rel, reason));
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if cases.is_empty() {
        anyhow::bail!("no readable image under {}", data.display());
    }
    let m = metrics(&cases, cfg.threshold);
    let in_scope_cases: Vec<Case> = cases
        .iter()
        .zip(&scopes)
        .filter(|(_, s)| s.in_scope)
        .map(|(c, _)| c.clone())
        .collect();
    let scope_summary = EvalScope {
        flagged: cases.len() - in_scope_cases.len(),
        n: cases.len(),
        in_scope: (!in_scope_cases.is_empty()).then(|| metrics(&in_scope_cases, cfg.threshold)),
    };
    let mut csv = format!(
        "file,label,prob_{},predicted,residual,in_scope,scope_score\n",
        positive.to_lowercase()
    );
    let negative = cfg
        .classes
        .iter()
        .find(|c| **c != positive)
        .cloned()
        .unwrap_or_default();
    for (c, scope) in cases.iter().zip(&scopes) {
        let label = if c.positive { &positive } else { &negative };
        let predicted = if c.probability >= cfg.threshold {
            &positive
        } else {
            &negative
        };
        // `+ 0.0` turns −0 into 0 in the CSV.
        let residual = (if c.positive { 1.0 } else { 0.0 } - c.probability as f64) + 0.0;
        csv.push_str(&format!(
            "{},{label},{:.6},{predicted},{residual:.6},{},{}\n",
            csv_field(&c.file),
            c.probability,
            scope.in_scope,
            scope.score.map(|s| format!("{s:.4}")).unwrap_or_default()
        ));
    }
    write_atomic(&out.join("predictions.csv"), csv.as_bytes())?;
    let mut output = EvalOutput {
        metrics: &m,
        positive_class: &positive,
        model: serde_json::json!({
            "name": cfg.name,
            "sha256": engine.model.sha256,
            "temperature": cfg.temperature,
            "input_size": [cfg.input.height, cfg.input.width],
        }),
        device: engine.device_name(),
        data: data
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        skipped,
        localisation: None,
        scope: scope_summary,
    };
    if let Some(labels) = labels {
        let files: Vec<PathBuf> = labelled.iter().map(|(p, _)| p.clone()).collect();
        let report = crate::localisation_eval::evaluate(
            engine,
            data,
            &files,
            labels,
            &crate::explain::localisation::LocalisationOptions::default(),
            &|film| eprintln!("localisation: {film}"),
        );
        for (file, reason) in &report.skipped {
            eprintln!("skipped localisation of {file}: {reason}");
        }
        write_atomic(
            &out.join("localisation.csv"),
            crate::localisation_eval::films_csv(&report).as_bytes(),
        )?;
        output.localisation = Some(report);
    }
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&output)?.as_bytes(),
    )?;
    crate::plots::roc_png(&cases, m.auc, &out.join("roc.png"))?;
    crate::plots::residual_png(&cases, &out.join("residuals.png"))?;
    crate::plots::reliability_png(
        &cases,
        m.ece_positive_class,
        ECE_BINS,
        &out.join("reliability.png"),
    )?;
    let (scope, localisation) = (output.scope, output.localisation);
    Ok(EvalSummary {
        metrics: m,
        scope,
        localisation,
    })
}

/// Peak resident set size (Linux `VmHWM`), for the benchmark's memory line.
fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
