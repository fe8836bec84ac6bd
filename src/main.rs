use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cxr_viewer::analysis::{AnalysisOptions, Engine};
use cxr_viewer::cli;
use cxr_viewer::explain::integrated_gradients::{IgBaseline, IgRule, DEFAULT_TOLERANCE};
use cxr_viewer::model::{select_device, DeviceChoice};
use cxr_viewer::notes::NotesStore;

/// Chest X-ray viewer and analysis engine: ResNet-50 pneumonia classification with Grad-CAM,
/// Monte-Carlo-dropout uncertainty and Integrated Gradients. Research use only — not for diagnosis.
#[derive(Parser)]
#[command(name = "cxr-viewer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: open the viewer on FILE, or on a FOLDER to review (default: the
    /// bundled sample); several files (a shell's `*.dcm`) open as a set with a study list of
    /// its own, which Next / Previous walk; the model is $CXR_VIEWER_MODEL, else
    /// weights/model.json.
    #[arg(value_name = "FILE|FOLDER")]
    files: Vec<PathBuf>,
    /// Viewer: the notes database for this run (created if missing), instead of the one chosen
    /// in the notes pane or the per-user default; not remembered.
    #[arg(long, value_name = "FILE", env = "CXR_VIEWER_DB")]
    db: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// model.json (default: $CXR_VIEWER_MODEL, else weights/model.json)
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the network runs; `auto` uses a GPU when this build has CUDA and one answers.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
}

#[derive(clap::Args, Clone)]
struct ExplainArgs {
    /// Monte-Carlo dropout samples of the head.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
    mc_samples: u32,
    /// Integrated Gradients steps (gradients along the path; 36 graded ones are on average more
    /// accurate than 40 equal panels).
    #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u32).range(1..=4096))]
    ig_steps: u32,
    /// Integrated Gradients baseline: the image the path starts from. `black` or `white` (a
    /// uniform film, in pixel space), `normal` (the film model.json names as `ig_reference`, one
    /// the model reads as confidently NORMAL), or `auto`: the first of black, normal and white
    /// that the model does not itself read as the class explained, per film. Black by default:
    /// captum's reference setting, and the map from a film fails the model-randomisation sanity
    /// check (README, "The baseline chosen per film").
    #[arg(long, value_enum, default_value_t = IgBaseline::Black)]
    ig_baseline: IgBaseline,
    /// How IG places its path points: `graded` (centres of `--ig-steps` panels, narrow where the
    /// map moves fast along the path; the most accurate per gradient here), `midpoint` (centres of
    /// equal panels), `gauss-legendre` (`--ig-steps` nodes, captum's default rule) or
    /// `guided` (forward probes + adaptive panels; `--ig-steps` is then the most gradients it may
    /// spend).
    #[arg(long, value_enum, default_value_t = IgRuleArg::Graded)]
    ig_rule: IgRuleArg,
    /// Guided IG's target: Σ |panel completeness gap| / |F(x) − F(x′)|.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE, value_parser = parse_tolerance)]
    ig_tolerance: f32,
    /// Path points per Integrated Gradients batch (default: 8 on the CPU, 32 on a GPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    ig_batch: Option<u32>,
    /// Integrated Gradients sub-batches computed at once, each at most ⌈batch / lanes⌉ path points
    /// (default: 2 on the CPU, where a second pass takes the core the first leaves idle; 1 on a GPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    ig_lanes: Option<u32>,
    /// Skip Integrated Gradients (the slowest stage on a CPU).
    #[arg(long)]
    no_ig: bool,
    /// Class explained by Grad-CAM and IG (default: the predicted class).
    #[arg(long)]
    target: Option<String>,
    /// Seed of the dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip the deletion/insertion faithfulness curves of the maps.
    #[arg(long)]
    no_faithfulness: bool,
    /// Model-randomisation sanity check: Grad-CAM and IG of cascading randomised copies of the
    /// model (slow; adds `sanity` to report.json).
    #[arg(long)]
    sanity_check: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum IgRuleArg {
    Graded,
    Midpoint,
    GaussLegendre,
    Guided,
}

fn parse_tolerance(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a tolerance between 0 and 1 (exclusive)"
        )),
    }
}

impl ExplainArgs {
    /// The analysis options; `--ig-baseline normal` with a model that names no reference film is
    /// refused here, once, rather than film by film.
    fn options(&self, engine: &Engine) -> anyhow::Result<AnalysisOptions> {
        let baseline = self.ig_baseline;
        anyhow::ensure!(
            self.no_ig || engine.model.offers(baseline),
            "--ig-baseline normal needs a reference film: {} names no ig_reference",
            engine.model.config_path.display()
        );
        // A GPU only gets busy with many path points at once; a CPU gains nothing from more than a few.
        let default_batch = if engine.device_name() == "cpu" { 8 } else { 32 };
        Ok(AnalysisOptions::default()
            .with_mc_samples(self.mc_samples as usize)
            .with_ig_steps(self.ig_steps as usize)
            .with_ig_baseline(baseline)
            .with_ig_rule(match self.ig_rule {
                IgRuleArg::Guided => IgRule::Guided {
                    tolerance: self.ig_tolerance,
                },
                IgRuleArg::GaussLegendre => IgRule::GaussLegendre,
                IgRuleArg::Graded => IgRule::Graded,
                IgRuleArg::Midpoint => IgRule::Midpoint,
            })
            .with_ig_batch(self.ig_batch.map_or(default_batch, |b| b as usize))
            .with_ig_lanes(self.ig_lanes.map_or_else(
                || cxr_viewer::explain::integrated_gradients::lanes_for(&engine.model.device),
                |l| l as usize,
            ))
            .with_integrated_gradients(!self.no_ig)
            .with_target(self.target.clone())
            .with_seed(self.seed)
            .with_faithfulness(
                (!self.no_faithfulness)
                    .then(cxr_viewer::explain::faithfulness::FaithfulnessOptions::default),
            )
            .with_sanity_check(self.sanity_check))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Analyse images (DICOM, PNG, JPEG) and write report.json, maps (.npy) and overlays (.png);
    /// with --html also a page to read (report.html).
    Analyze {
        /// Files, folders (every study below them, outputs in the same layout under --out) or
        /// DICOMDIRs.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output folder (created): one subfolder per study, named after its file (x, x-2, … when
        /// names repeat).
        #[arg(long, value_name = "FOLDER")]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        explain: ExplainArgs,
        /// Also write input.npy: the normalised [3,H,W] tensor the model saw.
        #[arg(long)]
        dump_input: bool,
        /// Put patient name/ID and the full path in report.json (off by default).
        #[arg(long)]
        include_identifiers: bool,
        /// Frame of a multi-frame DICOM to analyse, counted from 1.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..))]
        frame: u32,
        /// Draw the overlays of an uncertain or out-of-scope study at full strength (by default
        /// they are dimmed, as in the viewer, and their PNG marker says why).
        #[arg(long)]
        no_dim_overlays: bool,
        /// Also write report.html: the result, scope verdict, maps, zones and map checks as one
        /// self-contained page to read, print or send (identifiers only with
        /// --include-identifiers); with several films, also DIR/index.html linking them.
        #[arg(long)]
        html: bool,
        /// Add each film's review note (verdict, truth, reasons, zones, text, boxes scored on
        /// the maps) to its report.json (`review`) and, with --html, to its page (boxes
        /// outlined), as the viewer's export does; from the viewer's notes database
        /// ($CXR_VIEWER_DB, else the one chosen in its notes pane, else the per-user default),
        /// or `--notes=FILE`.
        #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
        notes: Option<Option<PathBuf>>,
    },
    /// Evaluate on a labelled folder (one subfolder per class, e.g. NORMAL/ and PNEUMONIA/, or
    /// one class's own folder): writes metrics.json, predictions.csv, roc.png, residuals.png,
    /// reliability.png.
    Eval {
        /// The labelled folder: one subfolder per class, named after the model's classes (case
        /// ignored); a folder itself named after a class (every film of that class); or with
        /// --boxes a folder of films the labels name.
        #[arg(long, value_name = "FOLDER", required_unless_present = "folder")]
        data: Option<PathBuf>,
        /// The labelled folder, as `--data` (`eval FOLDER --out OUT`).
        #[arg(value_name = "FOLDER", conflicts_with = "data")]
        folder: Option<PathBuf>,
        /// Output folder (created) for the metrics, predictions and plots.
        #[arg(long, value_name = "FOLDER")]
        out: PathBuf,
        /// RSNA labels CSV (patientId,x,y,width,height,Target; patientId = file stem): adds
        /// localisation (pointing game, energy in boxes, IoU per map) to metrics.json and writes
        /// localisation.csv. A folder without class subfolders is labelled by Target.
        #[arg(long, value_name = "CSV")]
        boxes: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// Also the deletion faithfulness of every map on every image (Grad-CAM, IG, MC-mean):
        /// means in metrics.json, mean deletion curves in faithfulness.png. Slow (IG per image).
        #[arg(long)]
        faithfulness: bool,
        /// IG steps per image with --faithfulness.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
        faithfulness_ig_steps: u32,
        /// IG baseline with --faithfulness (as `analyze --ig-baseline`; `auto` picks one per
        /// image, and metrics.json counts the images per baseline).
        #[arg(long, value_enum, default_value_t = IgBaseline::Black)]
        faithfulness_ig_baseline: IgBaseline,
    },
    /// Per-stage median timings over repeated runs (a benchmark, not a test).
    Bench {
        /// Image to analyse (default: the bundled sample).
        #[arg(long)]
        input: Option<PathBuf>,
        /// The image to analyse, as `--input` (`bench FILE` as `analyze FILE`).
        #[arg(value_name = "FILE", conflicts_with = "input")]
        file: Option<PathBuf>,
        /// Timed runs per stage (after one warm-up run); the table gives their median.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also print the IG map's relative L2 error against a Gauss–Legendre map with this many
        /// nodes (e.g. 256), computed once after the timed runs.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
        ig_reference_steps: Option<u32>,
        /// Instead of the timing table: IG map error against gradients used for several rules and
        /// budgets (reference: `--ig-reference-steps`, default 256).
        #[arg(long)]
        ig_sweep: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        explain: ExplainArgs,
    },
    /// Fit the scope guard's statistics on the training split of a split.csv (features of the
    /// shipped model), set the threshold on its validation split, write FILE.scope.safetensors.
    ScopeFit {
        #[command(flatten)]
        fit: cxr_viewer::scope_cli::FitArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Scope guard report: per subfolder of OOD (one category each), AUROC of the pixel score
    /// against the validation split and the share flagged at the shipped threshold.
    ScopeReport {
        /// Out-of-scope images, one subfolder per category (e.g. ../shared/ood).
        #[arg(long, value_name = "FOLDER")]
        ood: PathBuf,
        /// Folder the `file` column of the split is relative to (e.g. ../shared/data/kermany).
        #[arg(long, value_name = "FOLDER")]
        data: PathBuf,
        /// CSV with columns file,label,split; its `val` rows are the in-scope films.
        #[arg(long, value_name = "CSV")]
        split: PathBuf,
        /// Feature cache (safetensors) reused between runs.
        #[arg(long, value_name = "FILE")]
        cache: Option<PathBuf>,
        /// Films per forward pass.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Review notes: export them to CSV/JSON (no patient identifiers unless asked) or import them
    /// (merged by study; the later-updated copy of a note wins).
    Notes {
        #[command(subcommand)]
        action: NotesCommand,
    },
}

#[derive(Subcommand)]
enum NotesCommand {
    /// Write every note, with its outcome (TP/FP/TN/FN), to FILE.csv or FILE.json.
    Export {
        /// Notes database (default: the viewer's: $CXR_VIEWER_DB, else the one chosen in its
        /// notes pane, else the per-user default).
        #[arg(long, value_name = "FILE", env = "CXR_VIEWER_DB")]
        db: Option<PathBuf>,
        /// Export file; its extension picks the format. Replaced atomically.
        #[arg(
            long,
            value_name = "FILE.csv|FILE.json",
            required_unless_present = "file"
        )]
        out: Option<PathBuf>,
        /// The export file, as `--out` (`notes export FILE`).
        #[arg(value_name = "FILE.csv|FILE.json", conflicts_with = "out")]
        file: Option<PathBuf>,
        /// Also write each study's last-seen full path (folders may name the patient).
        #[arg(long)]
        include_paths: bool,
        /// Write only the boxes, as an RSNA labels CSV (patientId,x,y,width,height,Target;
        /// patientId = the file stem).
        #[arg(long)]
        rsna: bool,
    },
    /// Merge FILE.csv or FILE.json into the database: new studies are added, a note is replaced
    /// only by a copy updated later; all or nothing. With --rsna --data FOLDER: an RSNA labels
    /// file's boxes and Target into the notes of FOLDER's films.
    Import {
        /// Notes database (default: the viewer's: $CXR_VIEWER_DB, else the one chosen in its
        /// notes pane, else the per-user default).
        #[arg(long, value_name = "FILE", env = "CXR_VIEWER_DB")]
        db: Option<PathBuf>,
        /// A file written by `notes export` (or the viewer's export); its extension picks the format.
        #[arg(
            long = "in",
            value_name = "FILE.csv|FILE.json",
            required_unless_present = "file"
        )]
        input: Option<PathBuf>,
        /// The file to merge, as `--in` (`notes import FILE`; it was refused as "unexpected
        /// argument").
        #[arg(value_name = "FILE.csv|FILE.json", conflicts_with = "input")]
        file: Option<PathBuf>,
        /// The file is an RSNA labels CSV (patientId,x,y,width,height,Target): each film of
        /// --data whose file stem is a patientId gets the label's boxes and, where its note has
        /// none, a ground truth (Target 1 positive, 0 negative); a reviewer's own boxes, ground
        /// truth and text are kept.
        #[arg(long, requires = "data")]
        rsna: bool,
        /// The folder of the films the labels name (searched recursively), with --rsna.
        #[arg(long, value_name = "FOLDER", requires = "rsna")]
        data: Option<PathBuf>,
    },
}

/// The database the viewer opens ([`cxr_viewer::notes::chosen_path`]): `--db` or
/// `$CXR_VIEWER_DB`, else the one chosen in the viewer's notes pane (its `settings.json`), else
/// the per-user default. Exporting the default while the reviewer's notes are elsewhere would
/// hand on an old or empty set without a word. The variable is read here too: `--db` gets it
/// from clap, but `analyze --notes`, a flag whose value is optional, cannot take it from clap
/// without the variable alone turning the flag on.
fn notes_db(for_this_run: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    use cxr_viewer::ui::settings_file;
    let for_this_run =
        for_this_run.or_else(|| std::env::var_os("CXR_VIEWER_DB").map(PathBuf::from));
    let remembered = match settings_file::default_path().map(|p| settings_file::load(&p)) {
        Some(Ok(settings)) => settings.and_then(|s| s.notes_db),
        Some(Err(e)) => {
            eprintln!("note: {e}");
            None
        }
        None => None,
    };
    Ok(cxr_viewer::notes::chosen_path(
        for_this_run.as_deref(),
        remembered.as_deref(),
    )?)
}

/// "accuracy=0.9700 [0.9483, 0.9828] sensitivity=… specificity=… auc=…" for `eval`'s summary; a
/// figure the films cannot give (specificity of a folder of PNEUMONIA films) reads "n/a", as
/// `metrics.json` writes `null`, not "NaN".
fn with_intervals(m: &cxr_viewer::evaluation::Metrics) -> String {
    [
        figure("accuracy", m.accuracy, m.ci95.accuracy),
        figure("sensitivity", m.sensitivity, m.ci95.sensitivity),
        figure("specificity", m.specificity, m.ci95.specificity),
        figure("auc", m.auc, m.ci95.auc),
    ]
    .join(" ")
}

/// "auc=0.9999 [0.9996, 1.0000]": the interval to the figure's own four decimals, so that it
/// always brackets the figure as printed (to three, that AUC read "auc=0.9999 [1.000, 1.000]").
fn figure(name: &str, value: f64, interval: Option<[f64; 2]>) -> String {
    if value.is_nan() {
        return format!("{name}=n/a");
    }
    let ci = interval
        .map(|[lo, hi]| format!(" [{lo:.4}, {hi:.4}]"))
        .unwrap_or_default();
    format!("{name}={value:.4}{ci}")
}

/// Why `eval`'s summary has "n/a" figures, when it has: the films are all of one class.
fn one_class_note(
    m: &cxr_viewer::evaluation::Metrics,
    classes: &[String],
    positive: &str,
) -> Option<String> {
    let c = &m.confusion;
    let negative = classes
        .iter()
        .find(|c| !c.eq_ignore_ascii_case(positive))
        .map_or("negative", String::as_str);
    let (only, missing, undefined) = match (c.tp + c.fn_ > 0, c.tn + c.fp > 0) {
        (true, false) => (positive, negative, "specificity"),
        (false, true) => (negative, positive, "sensitivity"),
        _ => return None,
    };
    Some(format!(
        "note: all {} films are {only}: {undefined} and AUC need {missing} films too",
        m.n
    ))
}

fn run_notes(action: NotesCommand) -> anyhow::Result<()> {
    use cxr_viewer::notes::{self, ExportOptions};
    match action {
        NotesCommand::Export {
            db,
            out,
            file,
            include_paths,
            rsna,
        } => {
            let out = out.or(file).context("name the export file")?;
            let db = notes_db(db)?;
            // Opening would create an empty database: a mistyped path should say so instead.
            anyhow::ensure!(db.is_file(), "no notes database at {}", db.display());
            let store = NotesStore::open(&db)?;
            let options = ExportOptions::new()
                .with_paths(include_paths)
                .with_rsna(rsna);
            let n = notes::export_file(&store, &out, &options)?;
            println!(
                "exported {n} notes from {} → {}",
                db.display(),
                out.display()
            );
            if !rsna {
                let all = store.list(notes::Filter::All)?;
                print!(
                    "zone agreement (reviewer zones and boxes vs each map's top zone):\n{}",
                    notes::zone_agreement::format_table(&notes::zone_agreement::zone_agreement(
                        &all
                    ))
                );
            }
        }
        NotesCommand::Import {
            db,
            input,
            file,
            rsna,
            data,
        } => {
            let input = input.or(file).context("name the file to import")?;
            let db = notes_db(db)?;
            if let (true, Some(data)) = (rsna, data) {
                return import_rsna_labels(&db, &input, &data);
            }
            // Read first: a file that is not an export must not leave an empty database behind.
            let incoming = notes::read_import_file(&input)?;
            let store = NotesStore::open(&db)?;
            let r = store.merge(&incoming)?;
            println!(
                "inserted {}, updated {}, unchanged {} ← {} into {}",
                r.inserted,
                r.updated,
                r.unchanged,
                input.display(),
                db.display()
            );
            for remark in r.remarks() {
                eprintln!("note: {remark}");
            }
        }
    }
    Ok(())
}

/// `notes import --rsna --data FOLDER FILE`: the labels' boxes and ground truth into the notes of
/// the films they name, and a line for each thing that did not match.
fn import_rsna_labels(db: &Path, input: &Path, data: &Path) -> anyhow::Result<()> {
    use cxr_viewer::notes::{self, rsna};
    use cxr_viewer::text::first_few;
    // Read everything first: a wrong file or folder must not leave an empty database behind.
    let labels = rsna::read_labels(input)?;
    let files = cli::collect_files(data)?;
    eprintln!(
        "reading the films of {} that {} names…",
        data.display(),
        input.display()
    );
    let (source, folder) = (input.display().to_string(), data.display().to_string());
    // About ten lines, however many films.
    let found = rsna::notes_from_labels(&files, &labels, &source, &folder, &|done, total| {
        if done.is_multiple_of((total / 10).max(1)) || done == total {
            eprintln!("read {done}/{total} films");
        }
    })
    .map_err(anyhow::Error::msg)?;
    for (path, why) in &found.skipped {
        eprintln!("warning: skipped {}: {why}", cli::relative_name(path, data));
    }
    let store = NotesStore::open(db)?;
    let added = store.add_labels(&found.notes)?;
    let r = added.report;
    let positives = found
        .notes
        .iter()
        .filter(|n| n.ground_truth == Some(notes::Finding::Positive))
        .count();
    println!(
        "films labelled: {} ({positives} with boxes, {} negative); inserted {}, updated {}, unchanged {} ← {source} into {}",
        found.notes.len(),
        found.notes.len() - positives,
        r.inserted,
        r.updated,
        r.unchanged,
        db.display()
    );
    if !found.missing.is_empty() {
        println!(
            "note: patientIds with no file in {folder} ({} of {}): {}",
            found.missing.len(),
            labels.patient_ids().len(),
            first_few(&found.missing, 5)
        );
    }
    if !added.truth_kept.is_empty() {
        let names: Vec<String> = added.truth_kept.iter().map(rsna::patient_id_of).collect();
        println!(
            "note: ground truth set by the reviewer and kept, unlike the labels' Target ({}): {}",
            names.len(),
            first_few(&names, 5)
        );
    }
    Ok(())
}

fn load_engine(args: &ModelArgs) -> anyhow::Result<Engine> {
    let (device, note) = select_device(args.device);
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let path = args.model.clone().unwrap_or_else(cli::default_model_path);
    Engine::load(&path, &device).with_context(|| "cannot load the model".to_string())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Analyze {
            inputs,
            out,
            model,
            explain,
            dump_input,
            include_identifiers,
            frame,
            no_dim_overlays,
            html,
            notes,
        }) => {
            // Before the model loads and any film is analysed: an --out that cannot be a folder
            // would otherwise fail each film after its analysis, one error line per film.
            cli::output_folder(&out)?;
            let notes = match notes {
                Some(named) => Some(cli::notes_by_study(&notes_db(named)?)?),
                None => None,
            };
            let engine = load_engine(&model)?;
            let failures = cli::analyze(
                &engine,
                &cli::AnalyzeArgs {
                    inputs,
                    out,
                    options: explain.options(&engine)?,
                    dump_input,
                    include_identifiers,
                    frame: frame - 1,
                    no_dim_overlays,
                    html,
                    notes,
                },
            );
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Eval {
            data,
            folder,
            out,
            boxes,
            model,
            faithfulness,
            faithfulness_ig_steps,
            faithfulness_ig_baseline,
        }) => {
            let data = data.or(folder).context("name the labelled folder")?;
            cli::output_folder(&out)?;
            let engine = load_engine(&model)?;
            let summary = if faithfulness {
                cli::eval_with_faithfulness(
                    &engine,
                    &data,
                    &out,
                    boxes.as_deref(),
                    faithfulness_ig_steps as usize,
                    faithfulness_ig_baseline,
                )?
            } else {
                cli::eval_with_boxes(&engine, &data, &out, boxes.as_deref())?
            };
            let m = &summary.metrics;
            println!(
                // Both ECEs, by their metrics.json names: reliability.png plots the positive
                // class's, and a bare "ece=" beside its title's other figure read as a contradiction.
                "n={} {} ece={:.4} ece_positive_class={:.4} (threshold {:.3}; [95 % CI]) → {}",
                m.n,
                with_intervals(m),
                m.ece,
                m.ece_positive_class,
                m.threshold,
                out.display()
            );
            let cfg = &engine.model.config;
            if let Some(note) = one_class_note(m, &cfg.classes, &cfg.positive_class) {
                println!("{note}");
            }
            // Films outside the model's scope are in the metrics above; say how many, and what
            // the metrics are without them (metrics.json `scope`).
            let scope = &summary.scope;
            if scope.flagged > 0 {
                let without = match &scope.in_scope {
                    Some(s) => format!("in scope only: n={} {}", s.n, with_intervals(s)),
                    None => "no film in scope".to_string(),
                };
                println!(
                    "out of scope: {} of {} films; {without}",
                    scope.flagged, scope.n
                );
            }
            if let Some(localisation) = &summary.localisation {
                print!(
                    "{}",
                    cxr_viewer::localisation_eval::format_table(localisation)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench {
            input,
            file,
            runs,
            ig_reference_steps,
            ig_sweep,
            model,
            explain,
        }) => {
            let engine = load_engine(&model)?;
            let input = input.or(file).unwrap_or_else(cli::default_sample_path);
            if ig_sweep {
                let steps = ig_reference_steps.map_or(256, |s| s as usize);
                print!(
                    "{}",
                    cli::bench_ig_sweep(&engine, &input, &explain.options(&engine)?, steps)?
                );
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                cli::bench(
                    &engine,
                    &input,
                    &explain.options(&engine)?,
                    runs,
                    ig_reference_steps.map(|s| s as usize),
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::ScopeFit { fit, model }) => {
            let engine = load_engine(&model)?;
            cxr_viewer::scope_cli::scope_fit(&engine, &fit)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::ScopeReport {
            ood,
            data,
            split,
            cache,
            batch,
            model,
        }) => {
            let engine = load_engine(&model)?;
            let (_, table) = cxr_viewer::scope_cli::scope_report(
                &engine,
                &ood,
                &data,
                &split,
                cache.as_deref(),
                batch,
            )?;
            print!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Notes { action }) => {
            run_notes(action)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut files = cli.files;
            if files.is_empty() {
                files.push(cli::default_sample_path());
            }
            if let Some(db) = &cli.db {
                // A database that cannot be used is said here, in one line, before any window.
                NotesStore::open(db)?;
            }
            cxr_viewer::ui::run(files, cli::default_model_path(), cli.db)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    cxr_viewer::alloc_tuning::tune_for_tensors();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The printed interval brackets the printed figure (an AUC of 0.99985 with the bootstrap
    /// interval [0.99955, 1] printed as "0.9999 [1.000, 1.000]").
    #[test]
    fn an_interval_brackets_its_figure_as_printed() {
        for (value, interval) in [
            (0.99985, [0.99955, 1.0]),
            (0.8333, [0.43649, 0.96995]),
            (0.00012, [0.0, 0.00049]),
        ] {
            let text = super::figure("auc", value, Some(interval));
            let numbers: Vec<f64> = text
                .trim_start_matches("auc=")
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let [shown, lo, hi] = numbers[..] else {
                panic!("{text}")
            };
            assert!(lo <= shown && shown <= hi, "{text}");
        }
        assert_eq!(super::figure("auc", f64::NAN, None), "auc=n/a");
    }

    /// Other tools and users learn the flags from `--help`; a flag shown with an empty
    /// description (as `analyze --out` and all of `scope-report`'s were) says nothing.
    #[test]
    fn every_argument_says_what_it_takes() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "cxr-viewer", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }

    /// clap shows a value's doc comment as its help: a rustdoc link written there reached
    /// `analyze --help` as "normal: [`Baseline::NormalFilm`]", which tells a user nothing.
    #[test]
    fn help_reads_as_text_not_rustdoc() {
        fn walk(cmd: &mut clap::Command, out: &mut Vec<(String, String)>) {
            out.push((
                cmd.get_name().to_string(),
                cmd.render_long_help().to_string(),
            ));
            for sub in cmd.get_subcommands_mut() {
                walk(sub, out);
            }
        }
        let mut cli = super::Cli::command();
        cli.build();
        let mut helps = Vec::new();
        walk(&mut cli, &mut helps);
        assert!(helps.len() > 8, "{} help texts", helps.len());
        for (name, help) in &helps {
            for line in help.lines() {
                assert!(
                    !line.contains("[`") && !line.contains("`]") && !line.contains("crate::"),
                    "{name} --help shows rustdoc: {line}"
                );
            }
        }
        let analyze = &helps.iter().find(|(n, _)| n == "analyze").unwrap().1;
        assert!(analyze.contains("- normal: "), "{analyze}");
    }

    /// `cxr-viewer a.dcm b.dcm` (a shell's `*.dcm`) opens the files as a set; clap refused it
    /// ("the subcommand 'b.dcm' cannot be used with '[FILE|FOLDER]'"). Subcommands still parse.
    #[test]
    fn the_viewer_takes_several_files() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["cxr-viewer", "a.dcm", "b.dcm", "c.png"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            cli.files,
            ["a.dcm", "b.dcm", "c.png"].map(std::path::PathBuf::from)
        );
        let cli = super::Cli::try_parse_from(["cxr-viewer"]).unwrap();
        assert!(cli.files.is_empty() && cli.command.is_none());
        let cli = super::Cli::try_parse_from(["cxr-viewer", "analyze", "a.png", "--out", "o"]);
        assert!(matches!(
            cli.unwrap().command,
            Some(super::Command::Analyze { .. })
        ));
    }

    /// `notes import FILE`, `notes export FILE` and `eval FOLDER` as `--in FILE`, `--out FILE`
    /// and `--data FOLDER` (before: "unexpected argument"); not both forms at once, nor neither.
    #[test]
    fn notes_and_eval_take_their_input_as_an_argument_or_by_flag() {
        use clap::error::ErrorKind;
        use clap::Parser;
        use std::path::PathBuf;
        let parse = |args: &[&str]| -> Result<Option<PathBuf>, clap::Error> {
            Ok(match super::Cli::try_parse_from(args)?.command {
                Some(super::Command::Notes { action }) => match action {
                    super::NotesCommand::Import { input, file, .. } => input.or(file),
                    super::NotesCommand::Export { out, file, .. } => out.or(file),
                },
                _ => unreachable!("not notes"),
            })
        };
        // And `eval FOLDER` as `eval --data FOLDER`.
        let eval = |args: &[&str]| -> Result<Option<PathBuf>, clap::Error> {
            Ok(match super::Cli::try_parse_from(args)?.command {
                Some(super::Command::Eval { data, folder, .. }) => data.or(folder),
                _ => unreachable!("not eval"),
            })
        };
        let want = Some(PathBuf::from("d"));
        assert_eq!(
            eval(&["cxr-viewer", "eval", "d", "--out", "o"]).unwrap(),
            want
        );
        assert_eq!(
            eval(&["cxr-viewer", "eval", "--data", "d", "--out", "o"]).unwrap(),
            want
        );
        let both = eval(&["cxr-viewer", "eval", "--data", "d", "e", "--out", "o"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        let none = eval(&["cxr-viewer", "eval", "--out", "o"]).unwrap_err();
        assert_eq!(none.kind(), ErrorKind::MissingRequiredArgument);
        for verb in ["import", "export"] {
            let flag = if verb == "import" { "--in" } else { "--out" };
            let want = Some(PathBuf::from("n.csv"));
            assert_eq!(
                parse(&["cxr-viewer", "notes", verb, "n.csv"]).unwrap(),
                want
            );
            assert_eq!(
                parse(&["cxr-viewer", "notes", verb, flag, "n.csv"]).unwrap(),
                want
            );
            let both = parse(&["cxr-viewer", "notes", verb, flag, "a.csv", "b.csv"]).unwrap_err();
            assert_eq!(both.kind(), ErrorKind::ArgumentConflict, "{verb}");
            let none = parse(&["cxr-viewer", "notes", verb]).unwrap_err();
            assert_eq!(none.kind(), ErrorKind::MissingRequiredArgument, "{verb}");
        }
    }

    /// `bench FILE` as `analyze FILE` (before: "unexpected argument"); not both forms at once.
    #[test]
    fn bench_takes_its_film_as_an_argument_or_by_flag() {
        use clap::Parser;
        let film = |args: &[&str]| -> Result<Option<std::path::PathBuf>, clap::Error> {
            match super::Cli::try_parse_from(args)?.command {
                Some(super::Command::Bench { input, file, .. }) => Ok(input.or(file)),
                _ => unreachable!("not bench"),
            }
        };
        assert_eq!(
            film(&["cxr-viewer", "bench", "a.png"]).unwrap(),
            Some("a.png".into())
        );
        assert_eq!(
            film(&["cxr-viewer", "bench", "--input", "b.png"]).unwrap(),
            Some("b.png".into())
        );
        assert_eq!(film(&["cxr-viewer", "bench"]).unwrap(), None);
        let both = film(&["cxr-viewer", "bench", "a.png", "--input", "b.png"]).unwrap_err();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
