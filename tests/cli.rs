//! The `cxr-viewer analyze` contract that other tools depend on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, scratch};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
}

/// The one line a failed run wrote to stderr (asserting it failed, in one line).
fn one_line_failure(result: &std::process::Output) -> String {
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

fn npy_shape(path: &Path) -> Vec<usize> {
    candle_core::Tensor::read_npy(path).unwrap().dims().to_vec()
}

/// `cxr-viewer analyze` of the sample film into `out` with `model` and extra flags.
fn analyze_sample(out: &Path, model: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["analyze"])
        .arg(fixture("reference/person45_bacteria_221.jpeg"))
        .arg("--out")
        .arg(out)
        .arg("--model")
        .arg(model)
        .args(extra)
        .output()
        .unwrap()
}

/// `cxr-viewer analyze INPUTS --out OUT` with the tiny model, 3 MC samples and no IG: the
/// listing and output layout without the cost of the maps.
fn analyze_quickly(inputs: &[&Path], out: &Path) -> std::process::Output {
    analyze_quickly_with(inputs, out, &[])
}

/// [`analyze_quickly`] with `extra` flags.
fn analyze_quickly_with(inputs: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["analyze"])
        .args(inputs)
        .arg("--out")
        .arg(out)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args(["--device", "cpu", "--mc-samples", "3", "--no-ig"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn analyze_writes_the_contract_and_reports_bad_inputs_per_file() {
    let tmp = scratch("cli-analyze");
    let out = tmp.path().to_path_buf();
    let garbage = out.join("not-an-image.png");
    std::fs::write(&garbage, b"definitely not a PNG").unwrap();
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    let dicom = fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm");
    let result = bin()
        .args(["analyze"])
        .arg(&jpeg)
        .arg(&garbage)
        .arg(&dicom)
        .arg(out.join("missing.dcm"))
        .arg("--out")
        .arg(out.join("results"))
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args([
            "--device",
            "cpu",
            "--mc-samples",
            "7",
            "--ig-steps",
            "4",
            "--ig-baseline",
            "white",
            "--dump-input",
        ])
        .output()
        .unwrap();
    assert!(
        !result.status.success(),
        "a bad input must make the exit code non-zero"
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 2, "one line per failed file, got: {stderr}");
    assert!(
        errors[0].contains("not-an-image.png") && errors[0].contains("not a DICOM, PNG or JPEG"),
        "{}",
        errors[0]
    );
    // The OS's reason once, not once from the load error and again from its source.
    assert!(
        errors[1].contains("cannot open missing.dcm: "),
        "{}",
        errors[1]
    );
    let parts: Vec<&str> = errors[1].split(": ").collect();
    let mut unique = parts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), parts.len(), "a cause repeated: {}", errors[1]);

    for (stem, (w, h)) in [
        ("person45_bacteria_221", (808u32, 488u32)),
        ("cr_chest_pa_mono1_10bit_explicit_le_440", (440, 440)),
    ] {
        let dir = out.join("results").join(stem);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        for pointer in [
            "/prediction/label",
            "/prediction/probabilities/PNEUMONIA",
            "/prediction/threshold",
            "/uncertainty/samples",
            "/uncertainty/mean",
            "/uncertainty/std",
            "/uncertainty/entropy",
            "/uncertainty/mutual_information",
            "/uncertainty/zones/left_lower/mean",
            "/gradcam/target",
            "/gradcam/zones/right_upper/max",
            "/ig/baseline",
            "/ig/steps",
            "/ig/delta",
            "/ig/zones/right_middle/mean",
            "/model/name",
            "/model/sha256",
            "/model/classes",
            "/device",
            "/timings_ms/load",
            "/timings_ms/preprocess",
            "/timings_ms/forward",
            "/timings_ms/gradcam",
            "/timings_ms/uncertainty",
            "/timings_ms/ig",
            "/timings_ms/total",
        ] {
            assert!(
                report.pointer(pointer).is_some(),
                "{stem}: report.json lacks {pointer}"
            );
        }
        assert_eq!(report["uncertainty"]["samples"], 7);
        assert_eq!(report["ig"]["steps"], 4);
        assert_eq!(report["ig"]["baseline"], "white");
        // The default rule, named as `--ig-rule` spells it.
        assert_eq!(report["ig"]["quadrature"], "graded");
        // How the model reads the white baseline itself; warned of when it is the class
        // explained, and then said once after all films.
        let ig = &report["ig"];
        let baseline_label = ig["baseline_label"].as_str().unwrap();
        assert!(["NORMAL", "PNEUMONIA"].contains(&baseline_label));
        let p = ig["baseline_target_probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        assert_eq!(
            ig["warning"].is_string(),
            baseline_label == ig["target"],
            "{ig}"
        );
        if ig["warning"].is_string() {
            assert!(
                stderr
                    .contains("note: Integrated Gradients baseline read as the explained class: "),
                "{stderr}"
            );
        }
        assert_eq!(report["device"], "cpu");
        let mut zones: Vec<&str> = report["gradcam"]["zones"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        zones.sort_unstable();
        assert_eq!(
            zones,
            [
                "left_lower",
                "left_middle",
                "left_upper",
                "right_lower",
                "right_middle",
                "right_upper"
            ]
        );
        assert_eq!(report["model"]["sha256"].as_str().unwrap().len(), 64);
        let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
        assert!(
            !text.contains("patient_name") && !text.contains("patient_id"),
            "no identifiers by default"
        );

        assert_eq!(npy_shape(&dir.join("gradcam.npy")), [7, 7]);
        assert_eq!(npy_shape(&dir.join("uncertainty_mean.npy")), [7, 7]);
        assert_eq!(npy_shape(&dir.join("uncertainty_std.npy")), [7, 7]);
        assert_eq!(npy_shape(&dir.join("ig.npy")), [224, 224]);
        assert_eq!(npy_shape(&dir.join("input.npy")), [3, 224, 224]);
        for png in [
            "overlay_gradcam.png",
            "overlay_uncertainty.png",
            "overlay_ig.png",
        ] {
            let img = image::open(dir.join(png)).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (w, h),
                "{png} has the original size"
            );
        }
    }
}

#[test]
fn wrong_weights_file_is_a_one_line_error() {
    let tmp = scratch("cli-wrong-weights");
    let dir = tmp.path().to_path_buf();
    let config = std::fs::read_to_string(fixture("reference/model.json")).unwrap();
    std::fs::write(dir.join("model.json"), config).unwrap();
    std::fs::write(
        dir.join("tiny.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage",
    )
    .unwrap();
    let result = analyze_sample(&dir.join("out"), &dir.join("model.json"), &[]);
    let stderr = one_line_failure(&result);
    assert!(
        stderr.contains("cannot load weights")
            && stderr.contains("not a readable safetensors file"),
        "{stderr}"
    );
}

#[test]
fn checkpoint_of_another_architecture_is_refused_by_name() {
    let tmp = scratch("cli-other-arch");
    let dir = tmp.path().to_path_buf();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference/model.json")).unwrap())
            .unwrap();
    config["weights"] =
        serde_json::Value::String(fixture("reference/tiny.safetensors").display().to_string());
    config["architecture"]["width"] = 16.into();
    std::fs::write(dir.join("model.json"), config.to_string()).unwrap();
    let result = analyze_sample(&dir.join("out"), &dir.join("model.json"), &[]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("has shape") && stderr.contains("conv1.weight"),
        "{stderr}"
    );
}

#[test]
fn unknown_target_class_names_the_known_ones() {
    let tmp = scratch("cli-target");
    let dir = tmp.path().to_path_buf();
    let result = analyze_sample(
        &dir,
        &fixture("reference/model.json"),
        &["--target", "covid", "--no-ig"],
    );
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("unknown target class 'covid'") && stderr.contains("NORMAL, PNEUMONIA"),
        "{stderr}"
    );
}

#[test]
fn cuda_request_on_a_cpu_build_falls_back_with_a_note() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = scratch("cli-cuda");
    let dir = tmp.path().to_path_buf();
    let result = analyze_sample(
        &dir,
        &fixture("reference/model.json"),
        &["--device", "cuda", "--no-ig", "--mc-samples", "2"],
    );
    common::assert_ran(&result);
    assert!(String::from_utf8_lossy(&result.stderr).contains("no CUDA support"));
}

/// `cxr-viewer FILE --db X` for the viewer: a database that cannot be used is refused in one
/// line before any window opens (so this needs no display); `$CXR_VIEWER_DB` is the same flag.
#[test]
fn viewer_db_that_is_not_a_notes_database_is_refused_in_one_line() {
    let tmp = scratch("cli-viewer-db");
    let not_db = tmp.path().join("notes.sqlite3");
    std::fs::write(
        &not_db,
        b"this is a text file, not SQLite, and long enough to be read",
    )
    .unwrap();
    let by_flag = bin().arg("--db").arg(&not_db).output().unwrap();
    let by_env = bin().env("CXR_VIEWER_DB", &not_db).output().unwrap();
    for out in [by_flag, by_env] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("notes.sqlite3"),
            "{err}"
        );
    }
    // The variable does not get in the way of the subcommands, which have their own `--db`.
    let export = tmp.path().join("out.csv");
    let out = bin()
        .env("CXR_VIEWER_DB", &not_db)
        .args(["notes", "export", "--db"])
        .arg(tmp.path().join("fresh.sqlite3"))
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("cannot be used with"), "{err}");
}

#[test]
fn ig_lanes_of_zero_is_refused_naming_the_flag() {
    let tmp = scratch("cli-lanes");
    let dir = tmp.path().to_path_buf();
    let result = analyze_sample(&dir, &fixture("reference/model.json"), &["--ig-lanes", "0"]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error:") && first.contains("--ig-lanes") && first.contains("1..=64"),
        "{stderr}"
    );
    assert!(!dir.join("person45_bacteria_221").exists());
}

/// `scripts/bench_python.py` reads `cxr-viewer bench`'s table rows by name, its peak-memory line
/// and its IG gap line; the first analysis after start-up is reported apart from the table.
#[test]
fn bench_prints_the_rows_the_side_by_side_script_reads() {
    let result = bin()
        .args([
            "bench",
            "--runs",
            "2",
            "--ig-steps",
            "4",
            "--no-faithfulness",
        ])
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .arg("--input")
        .arg(fixture("reference/person45_bacteria_221.jpeg"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let row = |name: &str| -> [f64; 3] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row '{name}' in\n{text}"));
        let v: Vec<f64> = line
            .trim_matches('|')
            .split('|')
            .skip(1)
            .map(|c| c.trim().parse().unwrap())
            .collect();
        [v[0], v[1], v[2]]
    };
    for name in ["forward", "prediction + Grad-CAM after decode", "total"] {
        let [median, min, max] = row(name);
        assert!(
            min > 0.0 && min <= median && median <= max,
            "{name}: {text}"
        );
    }
    // `bench` keeps captum's black baseline unless asked (the side-by-side figures compare it).
    let [ig, ..] = row("IG (4 graded steps, black baseline, batch 8)");
    assert!(row("total")[0] >= ig, "{text}");
    let first = text
        .lines()
        .find(|l| l.starts_with("first analysis after start-up"))
        .unwrap_or_else(|| panic!("no first-analysis line in\n{text}"));
    let numbers: Vec<f64> = first
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 3, "{first}");
    assert!(
        numbers.iter().all(|&v| v > 0.0) && numbers[2] >= numbers[1],
        "{first}"
    );
    assert!(text.contains("IG completeness gap:"), "{text}");
}

/// A folder (or a DICOMDIR) given to `analyze` is the studies in it, recursively, each written
/// below `--out` at its folder relative to the input (two films of the same name in NORMAL/ and PNEUMONIA/ stay
/// apart and findable); a README and hidden files are not studies; a folder with no study is
/// one error line and a non-zero exit, and the other inputs still complete. Before, a folder was
/// "cannot open …: is a directory".
#[test]
fn analyze_takes_folders_and_mirrors_their_layout() {
    let tmp = scratch("cli-analyze-folder");
    let root = tmp.path();
    let data = root.join("data");
    for class in ["NORMAL", "PNEUMONIA/nested"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    std::fs::copy(&jpeg, data.join("NORMAL/film.jpeg")).unwrap();
    std::fs::copy(&jpeg, data.join("PNEUMONIA/film.jpeg")).unwrap();
    // A DICOM without an extension is found by its content.
    std::fs::copy(
        fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"),
        data.join("PNEUMONIA/nested/IM0001"),
    )
    .unwrap();
    std::fs::write(data.join("README.txt"), b"not a study").unwrap();
    std::fs::copy(&jpeg, data.join(".hidden.jpeg")).unwrap();
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"nothing to see").unwrap();
    // Images in formats it does not read are left out, and said so (they were left out without
    // a word); the README above is not an image and goes unmentioned.
    std::fs::copy(
        fixture("other_formats/grey8.bmp"),
        data.join("NORMAL/film.bmp"),
    )
    .unwrap();
    std::fs::copy(
        fixture("other_formats/grey8.tif"),
        data.join("PNEUMONIA/scan.tif"),
    )
    .unwrap();
    let tiffs = root.join("tiffs");
    std::fs::create_dir_all(&tiffs).unwrap();
    std::fs::copy(fixture("other_formats/grey8.tif"), tiffs.join("a.tif")).unwrap();
    let out = root.join("out");
    let result = analyze_quickly(
        &[&data, &empty, &tiffs, &fixture("dicom/dicomdir/DICOMDIR")],
        &out,
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "the empty folder is an error");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        [
            format!(
                "error: {}: no DICOM, PNG or JPEG file in this folder",
                empty.display()
            ),
            format!(
                "error: {}: no DICOM, PNG or JPEG file in this folder: 1 image left out, in a \
                 format cxr-viewer does not read (TIFF): a.tif; convert it to PNG (16-bit grey \
                 keeps the depth) or DICOM",
                tiffs.display()
            )
        ],
        "{stderr}"
    );
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("left out")).collect();
    assert_eq!(
        notes[0],
        format!(
            "note: {}: 2 images left out, in formats cxr-viewer does not read (BMP, TIFF): \
             film.bmp, scan.tif; convert them to PNG (16-bit grey keeps the depth) or DICOM",
            data.display()
        ),
        "{stderr}"
    );
    assert_eq!(
        notes.len(),
        2,
        "the note, then the TIFF folder's error: {stderr}"
    );
    let mut reports: Vec<String> = Vec::new();
    for entry in walk(&out) {
        if entry.ends_with("report.json") {
            let relative = entry.strip_prefix(&out).unwrap();
            reports.push(relative.to_string_lossy().into_owned());
        }
    }
    reports.sort();
    assert_eq!(
        reports,
        [
            "NORMAL/film/report.json",
            "PNEUMONIA/film/report.json",
            "PNEUMONIA/nested/IM0001/report.json",
            // The DICOMDIR's three images, at their paths beside it.
            "PT000000/ST000000/SE000000/IM000000/report.json",
            "PT000000/ST000000/SE000000/IM000001/report.json",
            "PT000001/ST000000/SE000000/IM000000/report.json",
        ]
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `analyze FOLDER --out FOLDER/out` run twice analyses the same films twice: the first run's
/// overlays (PNGs beside a `report.json`) are not films. Before, the second run analysed each
/// overlay as a study (an overlay got "PNEUMONIA 0.920") and wrote into `out/out/`. A PNG of
/// an overlay's name with no report beside it is still a study.
#[test]
fn analyze_skips_the_overlays_of_an_earlier_run_inside_its_input() {
    let tmp = scratch("cli-analyze-rerun");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("mine")).unwrap();
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    std::fs::copy(&jpeg, data.join("film.jpeg")).unwrap();
    // A user's own film that happens to carry an overlay's name, with no report beside it.
    let png = image::open(&jpeg).unwrap();
    png.save(data.join("mine/overlay_ig.png")).unwrap();
    let out = data.join("out");
    let run = || {
        let result = analyze_quickly(&[&data], &out);
        common::assert_ran(&result);
        let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        let mut analysed: Vec<String> = stdout
            .lines()
            .map(|l| l.split(": ").next().unwrap().to_string())
            .collect();
        analysed.sort();
        analysed
    };
    let expected = [
        data.join("film.jpeg").display().to_string(),
        data.join("mine/overlay_ig.png").display().to_string(),
    ];
    assert_eq!(run(), expected);
    assert!(out.join("film/overlay_gradcam.png").is_file());
    assert_eq!(run(), expected, "the second run analyses the same films");
    assert!(!out.join("out").exists(), "nothing nested into out/out");
}

/// The overlays `analyze` writes are marked as cxr-viewer's own pictures: copied elsewhere under
/// any name, a folder walk skips them, and one analysed on its own is out of scope as what it is.
/// Before, only the name `overlay_*.png` with a `report.json` beside it told them apart.
#[test]
fn an_overlay_moved_and_renamed_is_still_not_taken_for_a_film() {
    let tmp = scratch("cli-overlay-marked");
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    let first = tmp.path().join("first");
    let result = analyze_quickly(&[&jpeg], &first);
    assert!(result.status.success());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&jpeg, data.join("film.jpeg")).unwrap();
    let moved = data.join("person45 heat map.png");
    let overlay = first
        .join("person45_bacteria_221")
        .join("overlay_gradcam.png");
    std::fs::copy(&overlay, &moved).unwrap();

    let result = analyze_quickly(&[&data], &tmp.path().join("second"));
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}");
    let analysed: Vec<&str> = stdout
        .lines()
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(analysed, [data.join("film.jpeg").display().to_string()]);

    let result = analyze_quickly(&[&moved], &tmp.path().join("third"));
    let stdout = String::from_utf8_lossy(&result.stdout);
    // (The tiny model's answer is uncertain: the overlay was drawn dimmed, and says so.)
    assert!(
        stdout.contains(
            "OUT OF SCOPE: an image exported by cxr-viewer (film with Grad-CAM overlay, dimmed: \
             uncertain), not a film"
        ),
        "{stdout}"
    );
}

/// An `--out` that is a file is one error line before any film is analysed. Before, `analyze`
/// analysed every film and then failed each with "cannot create …: Not a directory", one line
/// per film, and `eval` said "cannot create afile: File exists".
#[test]
fn an_out_path_that_is_a_file_is_refused_before_any_work() {
    let tmp = scratch("cli-out-file");
    let out = tmp.path().join("afile");
    std::fs::write(&out, b"results were meant to go elsewhere").unwrap();
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    let expected = format!("error: --out {} is a file, not a folder", out.display());
    let analyze = bin()
        .args(["analyze"])
        .arg(&jpeg)
        .arg(&jpeg)
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args(["--device", "cpu", "--no-ig"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let eval = bin()
        .args(["eval", "--data"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args(["--device", "cpu"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    for result in [analyze, eval] {
        assert!(!result.status.success());
        assert!(result.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(stderr.trim_end(), expected);
    }
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"results were meant to go elsewhere"
    );
}

/// `analyze` draws an out-of-scope study's overlays dimmed, as the viewer does, and their PNG
/// marker says why; `--no-dim-overlays` draws them at full strength. They were always drawn at
/// full strength: a tidy heat map on a CT slice, ready for a slide.
#[test]
fn overlays_of_an_out_of_scope_study_are_dimmed_unless_asked() {
    use cxr_viewer::io::viewer_export::marker;
    let tmp = scratch("cli-dimmed-overlays");
    let ct = fixture("scope/pydicom/CT_small.dcm");
    let (dimmed, full) = (tmp.path().join("dimmed"), tmp.path().join("full"));
    assert!(analyze_quickly(&[&ct], &dimmed).status.success());
    let result = analyze_quickly_with(&[&ct], &full, &["--no-dim-overlays"]);
    assert!(result.status.success());
    let overlay = |root: &Path| root.join("CT_small").join("overlay_gradcam.png");
    let what = marker(&overlay(&dimmed)).unwrap();
    assert!(
        what.starts_with("film with Grad-CAM overlay, dimmed: ") && what.contains("out of scope"),
        "{what}"
    );
    assert_eq!(
        marker(&overlay(&full)).unwrap(),
        "film with Grad-CAM overlay"
    );
    // The film is grey, so a pixel's spread across channels is the overlay's alone: dimmed, it
    // is the gated share (0.3) of the full one, up to rounding.
    let spread = |root: &Path| -> f64 {
        let img = image::open(overlay(root)).unwrap().to_rgb8();
        img.pixels()
            .map(|p| (f64::from(p[0]) - f64::from(p[2])).abs())
            .sum()
    };
    let (dimmed, full) = (spread(&dimmed), spread(&full));
    assert!(full > 0.0);
    let ratio = dimmed / full;
    assert!(
        (ratio - f64::from(cxr_viewer::trust::GATED_OPACITY)).abs() < 0.05,
        "dimmed/full spread {ratio}"
    );
}

/// The normal-film baseline's two bad inputs, each one line: asked of a model that names no
/// reference film (refused once, before any film, not once per film), and a model.json whose
/// `ig_reference` is not there (named as the IG reference film, not as "weights").
#[test]
fn the_normal_film_baseline_without_its_film_is_one_line() {
    let tmp = scratch("cli-normal-film");
    let dir = tmp.path().to_path_buf();
    let result = bin()
        .args(["analyze"])
        .arg(fixture("reference/person45_bacteria_221.jpeg"))
        .arg(fixture("reference/person45_bacteria_221.jpeg"))
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .args(["--ig-baseline", "normal"])
        .output()
        .unwrap();
    let stderr = one_line_failure(&result);
    assert!(
        stderr.contains("--ig-baseline normal needs a reference film: ")
            && stderr.contains("model.json names no ig_reference"),
        "{stderr}"
    );
    assert!(!dir.join("out").join("person45_bacteria_221").exists());
    // The same for `eval --faithfulness`, before its first film.
    let data = dir.join("data").join("PNEUMONIA");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        fixture("reference/person45_bacteria_221.jpeg"),
        data.join("a.jpeg"),
    )
    .unwrap();
    let result = bin()
        .args([
            "eval",
            "--faithfulness",
            "--faithfulness-ig-baseline",
            "normal",
        ])
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("eval"))
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .output()
        .unwrap();
    let stderr = one_line_failure(&result);
    assert!(
        stderr.contains("--faithfulness-ig-baseline normal needs a reference film: ")
            && stderr.contains("model.json names no ig_reference"),
        "{stderr}"
    );
    assert!(!dir.join("eval").join("metrics.json").exists());

    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("reference/model-normal-film.json")).unwrap(),
    )
    .unwrap();
    config["weights"] =
        serde_json::Value::String(fixture("reference/tiny.safetensors").display().to_string());
    config["ig_reference"] = "missing.png".into();
    std::fs::write(dir.join("model.json"), config.to_string()).unwrap();
    let result = analyze_sample(&dir.join("out2"), &dir.join("model.json"), &[]);
    let stderr = one_line_failure(&result);
    assert!(
        stderr.contains("cannot load the IG reference film ")
            && stderr.contains("missing.png (model.json's ig_reference): "),
        "{stderr}"
    );
}

/// `analyze --ig-baseline auto`: on the PNEUMONIA sample, whose black baseline (the default,
/// warned of) the tiny model reads as PNEUMONIA too, IG starts from the model's normal film,
/// read as NORMAL, and report.json says both what was asked and what was used.
#[test]
fn analyze_ig_baseline_auto_starts_from_a_baseline_read_as_another_class() {
    let tmp = scratch("cli-auto-baseline");
    let model = fixture("reference/model-normal-film.json");
    let quick = ["--ig-steps", "2", "--mc-samples", "2", "--no-faithfulness"];
    let ig_of = |out: &Path, extra: &[&str]| {
        let result = analyze_sample(out, &model, &[&quick[..], extra].concat());
        assert!(result.status.success(), "{result:?}");
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("person45_bacteria_221").join("report.json"))
                .unwrap(),
        )
        .unwrap();
        report["ig"].clone()
    };
    let black = ig_of(&tmp.path().join("black"), &[]);
    assert_eq!(black["baseline"], "black");
    assert_eq!(black["baseline_requested"], "black");
    assert_eq!(black["target"], "PNEUMONIA");
    assert_eq!(black["baseline_label"], "PNEUMONIA");
    assert!(black["warning"].is_string(), "{black}");
    let auto = ig_of(&tmp.path().join("auto"), &["--ig-baseline", "auto"]);
    assert_eq!(auto["baseline"], "normal");
    assert_eq!(auto["baseline_requested"], "auto");
    assert_eq!(auto["baseline_label"], "NORMAL");
    assert!(auto["warning"].is_null(), "{auto}");
    // The IG overlays' markers say which baseline, as the viewer's export does.
    let marker = |dir: &str| {
        let png = tmp
            .path()
            .join(dir)
            .join("person45_bacteria_221/overlay_ig.png");
        cxr_viewer::io::viewer_export::marker(&png).unwrap()
    };
    assert!(
        marker("black")
            .starts_with("film with Integrated Gradients overlay from the black baseline"),
        "{}",
        marker("black")
    );
    assert!(
        marker("auto").starts_with(
            "film with Integrated Gradients overlay from the normal film baseline (auto)"
        ),
        "{}",
        marker("auto")
    );
}

/// The pictures of a report.html: every `src` of the page, which must each be an embedded JPEG
/// (nothing the page would fetch), decoded.
fn embedded_pictures(page: &str) -> Vec<image::DynamicImage> {
    use base64::Engine as _;
    page.split("src=\"")
        .skip(1)
        .map(|rest| {
            let src = &rest[..rest.find('"').unwrap()];
            let data = src
                .strip_prefix("data:image/jpeg;base64,")
                .unwrap_or_else(|| panic!("a picture from outside the page: {src:.60}"));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap();
            image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap()
        })
        .collect()
}

/// `analyze --html`: one page per film beside report.json that agrees with it, shows the film
/// and each map scaled down to the page's size, loads nothing from anywhere, escapes the file
/// name, keeps an out-of-scope answer behind "Show anyway", and names the patient only when
/// asked.
#[test]
fn analyze_html_writes_a_self_contained_page_that_agrees_with_the_report() {
    let tmp = scratch("cli-html");
    // Larger than the page's pictures, under a name HTML would read as markup.
    let big = tmp.path().join("a<b>&'c.png");
    image::open(fixture("reference/person45_bacteria_221.jpeg"))
        .unwrap()
        .resize_exact(1616, 976, image::imageops::FilterType::Triangle)
        .save_with_format(&big, image::ImageFormat::Png)
        .unwrap();
    let ct = fixture("scope/pydicom/CT_small.dcm");
    let run = |out: &Path, extra: &[&str]| {
        let result = bin()
            .arg("analyze")
            .arg(&big)
            .arg(&ct)
            .arg("--out")
            .arg(out)
            .arg("--model")
            .arg(fixture("reference/model.json"))
            .args(["--device", "cpu", "--mc-samples", "3", "--ig-steps", "4"])
            .args(["--no-faithfulness", "--html"])
            .args(extra)
            .output()
            .unwrap();
        common::assert_ran(&result);
    };
    let out = tmp.path().join("out");
    run(&out, &[]);
    let read = |dir: &Path| {
        let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
        (page, report)
    };

    let (page, report) = read(&out.join("a<b>&'c"));
    assert!(
        page.contains("<title>cxr-viewer report: a&lt;b&gt;&amp;&#39;c.png</title>"),
        "the file name is escaped"
    );
    assert!(!page.contains("a<b>"), "no raw markup from the file name");
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains("Content-Security-Policy"));
    let p = &report["prediction"];
    let label = p["label"].as_str().unwrap();
    assert!(page.contains(&format!("<p class=\"label {label}\">{label}</p>")));
    assert!(page.contains(&format!(
        "P({}) = {:.3}",
        p["positive_class"].as_str().unwrap(),
        p["positive_probability"].as_f64().unwrap()
    )));
    assert_eq!(report["scope"]["in_scope"], true);
    assert!(!page.contains("<details>"), "an in-scope answer is shown");
    assert!(page.contains(&format!("{} steps", report["ig"]["steps"])));
    assert!(
        page.contains("<tr><td>Right upper</td>"),
        "zones named as words"
    );
    // The film, then Grad-CAM, uncertainty and IG, the long side brought down to 1024 pixels.
    let pictures = embedded_pictures(&page);
    assert_eq!(pictures.len(), 4);
    for picture in &pictures {
        assert_eq!((picture.width(), picture.height()), (1024, 618));
    }
    let film = pictures[0].to_rgb8();
    assert!(
        film.pixels().all(|p| p[0].abs_diff(p[2]) <= 8),
        "the first picture is the film alone, grey"
    );
    assert!(
        pictures[1]
            .to_rgb8()
            .pixels()
            .any(|p| p[0].abs_diff(p[2]) > 16),
        "the second carries the Grad-CAM colours"
    );

    let (page, report) = read(&out.join("CT_small"));
    assert_eq!(report["scope"]["in_scope"], false);
    let banner = page.find("Outside the model&#39;s scope").unwrap();
    let details = page.find("<details>").unwrap();
    let result = page.find("<h2>Result</h2>").unwrap();
    assert!(
        banner < details && details < result,
        "the answer sits behind Show anyway"
    );
    // On paper, where it cannot be opened, the page says what it leaves out (CSS shows the line
    // in print only, and only while the section is closed).
    assert!(page.contains("</details>\n<p class=\"small printed\">Not printed: the answer"));
    assert!(page.contains("details:not([open])+.printed{display:block}"));
    assert_eq!(embedded_pictures(&page).len(), 4, "128×128: drawn as it is");
    assert!(page.contains(
        "<p class=\"meta\">DICOM · CT · age 000Y · sex O · study 2004-01-19 · 128×128</p>"
    ));
    assert!(
        !page.contains("CompressedSamples"),
        "no patient name unless asked"
    );

    let named = tmp.path().join("named");
    run(&named, &["--include-identifiers"]);
    let (page, _) = read(&named.join("CT_small"));
    assert!(page.contains("patient_name: CompressedSamples^CT1"));

    // Several films: an index links each page (the names percent-encoded), the out-of-scope
    // answer in parentheses, and a film that failed with its error.
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    let links: Vec<&str> = index
        .split("href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(
        links,
        ["a%3Cb%3E%26%27c/report.html", "CT_small/report.html"]
    );
    assert!(out.join("a<b>&'c/report.html").is_file());
    assert!(index.contains(">a&lt;b&gt;&amp;&#39;c.png</a>"));
    assert!(
        index.contains("<span class=\"dim\">("),
        "out of scope: in parentheses"
    );
    let broken = tmp.path().join("broken.png");
    std::fs::write(&broken, b"not an image").unwrap();
    let with_error = tmp.path().join("with-error");
    let result = analyze_quickly_with(&[&ct, &broken], &with_error, &["--html"]);
    assert!(!result.status.success());
    let index = std::fs::read_to_string(with_error.join("index.html")).unwrap();
    assert!(index.contains(
        "<tr><td>broken.png</td><td colspan=\"4\" class=\"err\">error: cannot open broken.png"
    ));
    assert!(index.contains("CT_small/report.html"));
    // One film: its page is all there is.
    let single = tmp.path().join("single");
    analyze_quickly_with(&[&ct], &single, &["--html"]);
    assert!(single.join("CT_small/report.html").is_file());
    assert!(!single.join("index.html").exists());
}

/// `analyze --html --notes=DB` over a reviewed folder: each film with a note gets its review on
/// its page (as the viewer's export gives it, boxes outlined and scored), the index says which,
/// and a film without a note gets none. A database that is not there is refused before any
/// film is analysed. report.json carries the same review (`review`), with or without `--html`.
#[test]
fn analyze_html_with_notes_puts_each_films_review_on_its_page() {
    use cxr_viewer::notes::{identity, Agreement, Finding, ImageBox, Note, NotesStore};
    let tmp = scratch("cli-html-notes");
    let data = tmp.path().join("data");
    for class in ["PNEUMONIA", "NORMAL"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    let reviewed = data.join("PNEUMONIA/reviewed.jpeg");
    std::fs::copy(fixture("reference/person45_bacteria_221.jpeg"), &reviewed).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples/NORMAL2-IM-0912-0001.jpeg"),
        data.join("NORMAL/plain.jpeg"),
    )
    .unwrap();
    let db = tmp.path().join("notes.sqlite3");
    let study = cxr_viewer::io::load_study(&reviewed).unwrap();
    let mut note = Note::new(identity::study_id(&reviewed, &study).unwrap());
    note.agreement = Some(Agreement::Disagree);
    // Recorded from the folder when the note was saved, as the viewer does.
    note.ground_truth = Some(Finding::Positive);
    note.text = "<i>rib</i> & shadow".into();
    note.boxes = vec![ImageBox::new(500.0, 250.0, 150.0, 120.0)];
    note.image_size = Some((study.width as u32, study.height as u32));
    NotesStore::open(&db).unwrap().upsert(&note).unwrap();

    let out = tmp.path().join("out");
    let notes = format!("--notes={}", db.display());
    let result = analyze_quickly_with(&[&data], &out, &["--html", &notes, "--no-faithfulness"]);
    common::assert_ran(&result);
    assert!(String::from_utf8_lossy(&result.stderr).contains("note: 1 notes read from"));
    let page = std::fs::read_to_string(out.join("PNEUMONIA/reviewed/report.html")).unwrap();
    for line in [
        "<h2>Review</h2>",
        "<li>Verdict: Disagree</li>",
        "<li>Ground truth: PNEUMONIA (from the folder)</li>",
        "<li>Zones implicated (from the boxes): Left middle, Left lower</li>",
        "<blockquote>&lt;i&gt;rib&lt;/i&gt; &amp; shadow</blockquote>",
        "<tr><td>Integrated Gradients</td><td colspan=\"3\">not computed</td></tr>",
    ] {
        assert!(page.contains(line), "no {line:?} in the page");
    }
    // report.json holds what the page shows, in a notes export's tokens.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("PNEUMONIA/reviewed/report.json")).unwrap(),
    )
    .unwrap();
    let review = &report["review"];
    assert_eq!(review["study_id"], note.study.to_string());
    assert_eq!(review["agreement"], "disagree");
    assert_eq!(review["ground_truth"], "PNEUMONIA");
    assert_eq!(review["ground_truth_source"], "folder");
    let outcome = if report["prediction"]["label"] == "PNEUMONIA" {
        ("TP", "True positive")
    } else {
        ("FN", "False negative")
    };
    assert_eq!(review["outcome"], outcome.0);
    assert!(page.contains(&format!(
        "<li>Outcome: {} (truth PNEUMONIA, model ",
        outcome.1
    )));
    assert_eq!(review["zones"], serde_json::json!([]));
    assert_eq!(
        review["zones_from_boxes"],
        serde_json::json!(["left_middle", "left_lower"])
    );
    assert_eq!(
        review["boxes"],
        serde_json::json!([{"x": 500.0, "y": 250.0, "width": 150.0, "height": 120.0}])
    );
    assert_eq!(review["text"], "<i>rib</i> & shadow");
    assert!(review["localisation"]["ig"].is_null());
    let gradcam = &review["localisation"]["gradcam"];
    let row = format!(
        "<tr><td>Grad-CAM</td><td>{}</td><td>{:.0} %</td><td>{:.2}</td></tr>",
        if gradcam["pointing_hit"] == true {
            "hit"
        } else {
            "miss"
        },
        100.0 * gradcam["energy_in_boxes"].as_f64().unwrap(),
        gradcam["iou"].as_f64().unwrap()
    );
    assert!(page.contains(&row), "no {row:?} in the page");
    assert!(review["localisation"]["uncertainty"]["iou"].is_number());
    // Chance for the energy, by hand: the 808×488 film on the 224-cell grid, cells 808/224 by
    // 488/224 px; centres inside x 500–650: i = 139…179 (41), inside y 250–370: j = 115…169 (55).
    let chance = 41.0 * 55.0 / (224.0 * 224.0);
    let uniform = review["energy_in_boxes_uniform"].as_f64().unwrap();
    assert!((uniform - chance).abs() < 1e-12, "{uniform} vs {chance}");
    assert!(page.contains("A flat map would put 4 % of its energy in these boxes"));
    // No IG with --no-ig: the film, Grad-CAM and uncertainty, each with the box.
    let rect = "<rect class=\"box\" x=\"500.0\" y=\"250.0\" width=\"150.0\" height=\"120.0\"";
    assert_eq!(page.matches(rect).count(), 3);
    let plain = std::fs::read_to_string(out.join("NORMAL/plain/report.html")).unwrap();
    assert!(!plain.contains("<h2>Review</h2>") && !plain.contains("<svg"));
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("<th>review</th>"), "{index}");
    let row = |film: &str| {
        index
            .lines()
            .find(|l| l.contains(&format!(">{film}</a>")))
            .unwrap()
            .to_string()
    };
    // The verdict, the truth and (in scope) the outcome.
    let cell = if report["scope"]["in_scope"] == true {
        format!("<td>Disagree · truth PNEUMONIA · {}</td></tr>", outcome.0)
    } else {
        "<td>Disagree · truth PNEUMONIA</td></tr>".to_string()
    };
    assert!(
        row("PNEUMONIA/reviewed.jpeg").ends_with(&cell),
        "{}",
        row("PNEUMONIA/reviewed.jpeg")
    );
    assert!(row("NORMAL/plain.jpeg").ends_with("<td></td></tr>"));

    // Without --notes, no review anywhere.
    let bare = tmp.path().join("bare");
    common::assert_ran(&analyze_quickly_with(&[&data], &bare, &["--html"]));
    let page = std::fs::read_to_string(bare.join("PNEUMONIA/reviewed/report.html")).unwrap();
    assert!(!page.contains("<h2>Review</h2>"));
    assert!(!std::fs::read_to_string(bare.join("index.html"))
        .unwrap()
        .contains("<th>review</th>"));

    // A database that is not there: one line, nothing analysed.
    let missing = tmp.path().join("missing.sqlite3");
    let none = tmp.path().join("none");
    let notes = format!("--notes={}", missing.display());
    let line = one_line_failure(&analyze_quickly_with(&[&data], &none, &["--html", &notes]));
    assert!(line.contains("no notes database at"), "{line}");
    assert!(!missing.exists() && !none.join("index.html").exists());

    // Without --html the note goes to report.json alone.
    let json_only = tmp.path().join("json-only");
    let notes = format!("--notes={}", db.display());
    common::assert_ran(&analyze_quickly_with(
        &[&reviewed],
        &json_only,
        &[&notes, "--no-faithfulness"],
    ));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(json_only.join("reviewed/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["review"]["agreement"], "disagree");
    assert!(!json_only.join("reviewed/report.html").exists());
}
