//! `cxr-viewer eval`: outputs, consistency between metrics.json and predictions.csv, skipped files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fixture, scratch};

/// `cxr-viewer eval` of `data` into `out` with the tiny reference model on the CPU.
fn eval(data: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
        .args(["eval", "--device", "cpu"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .output()
        .unwrap()
}

#[test]
fn eval_writes_consistent_metrics_predictions_and_plots() {
    let tmp = scratch("eval-fixture");
    let root = tmp.path();
    let data = root.join("data");
    for class in ["NORMAL", "PNEUMONIA/nested"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    std::fs::copy(&jpeg, data.join("PNEUMONIA/a.jpeg")).unwrap();
    std::fs::copy(
        fixture("dicom/siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm"),
        data.join("PNEUMONIA/nested/b.dcm"),
    )
    .unwrap();
    std::fs::copy(
        fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"),
        data.join("NORMAL/c.dcm"),
    )
    .unwrap();
    std::fs::copy(
        fixture("dicom/wg04_RG2_rle_crop_192x160.dcm"),
        data.join("NORMAL/d.dcm"),
    )
    .unwrap();
    std::fs::write(
        data.join("NORMAL/broken.png"),
        b"\x89PNG\r\n\x1a\n truncated",
    )
    .unwrap();
    let out = root.join("out");
    let result = eval(&data, &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped NORMAL/broken.png"),
        "skipped files are listed: {stderr}"
    );

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "n",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "auc",
        "kappa",
        "mcc",
        "ece",
        "ece_positive_class",
        "threshold",
    ] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(metrics["n"], 4);
    assert_eq!(metrics["skipped"].as_array().unwrap().len(), 1);

    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("file,label,prob_pneumonia,predicted,residual,in_scope,scope_score")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4);
    let threshold = metrics["threshold"].as_f64().unwrap();
    let mut correct = 0;
    let mut flagged = 0;
    for row in &rows {
        let p: f64 = row[2].parse().unwrap();
        let label_positive = row[1] == "PNEUMONIA";
        assert_eq!(
            row[3] == "PNEUMONIA",
            p >= threshold,
            "predicted column follows the threshold"
        );
        let residual: f64 = row[4].parse().unwrap();
        assert!((residual - ((label_positive as u8) as f64 - p)).abs() < 1e-5);
        correct += ((p >= threshold) == label_positive) as usize;
        // The tiny model ships no scope statistics: no pixel score, header rules only.
        assert!(row[5] == "true" || row[5] == "false", "{row:?}");
        assert_eq!(row[6], "");
        flagged += usize::from(row[5] == "false");
    }
    // Some DICOM fixtures are flagged by their header rules; metrics.json agrees with the CSV.
    assert!(flagged > 0);
    assert_eq!(metrics["scope"]["n"], 4);
    assert_eq!(metrics["scope"]["flagged"], flagged);
    assert_eq!(metrics["scope"]["in_scope"]["n"], 4 - flagged);
    // The summary says so too, with the in-scope metrics.
    let stdout = String::from_utf8_lossy(&result.stdout);
    let in_scope_accuracy = metrics["scope"]["in_scope"]["accuracy"].as_f64().unwrap();
    let ci = &metrics["scope"]["in_scope"]["ci95"]["accuracy"];
    let line = format!(
        "out of scope: {flagged} of 4 films; in scope only: n={} accuracy={in_scope_accuracy:.4} \
         [{:.4}, {:.4}] sensitivity=",
        4 - flagged,
        ci[0].as_f64().unwrap(),
        ci[1].as_f64().unwrap()
    );
    assert!(stdout.contains(&line), "{line:?} not in {stdout}");
    // Both calibration errors, each named (reliability.png's title names the second).
    let eces = format!(
        "ece={:.4} ece_positive_class={:.4} (threshold",
        metrics["ece"].as_f64().unwrap(),
        metrics["ece_positive_class"].as_f64().unwrap()
    );
    assert!(stdout.contains(&eces), "{eces:?} not in {stdout}");
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    assert!((accuracy - correct as f64 / 4.0).abs() < 1e-9);
    // Wilson 95 % interval of the accuracy brackets it; with 4 cases it is wide.
    let ci = &metrics["ci95"]["accuracy"];
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= accuracy && accuracy <= hi && hi - lo > 0.3, "{ci}");
    // Both classes are present, so the AUC has a bootstrap interval, and it brackets the AUC.
    let auc = metrics["auc"].as_f64().unwrap();
    let ci = &metrics["ci95"]["auc"];
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= auc && auc <= hi, "AUC {auc} outside {ci}");
    let tp =
        metrics["confusion"]["tp"].as_u64().unwrap() + metrics["confusion"]["fn"].as_u64().unwrap();
    assert_eq!(tp, 2, "two pneumonia cases (one in a nested folder)");
    for png in ["roc.png", "residuals.png", "reliability.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() >= 400 && img.height() >= 300, "{png}");
    }
}

#[test]
fn eval_without_class_folders_says_what_it_expects() {
    let tmp = scratch("eval-empty");
    let root = tmp.path();
    let result = eval(root, &root.join("out"));
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("no subfolder named after a class (NORMAL, PNEUMONIA)"),
        "{stderr}"
    );
}

/// Links are followed (a labelled subset made of links into an archive is evaluated), each folder
/// once: a link back up the tree used to be walked until the path was 40 links deep, so one film
/// counted 41 times (n = 41) and the metrics were those of 41 copies.
#[cfg(unix)]
#[test]
fn eval_follows_links_and_walks_a_looping_folder_once() {
    use std::os::unix::fs::symlink;
    let tmp = scratch("eval-links");
    let root = tmp.path();
    let archive = root.join("archive");
    let data = root.join("data");
    std::fs::create_dir_all(&archive).unwrap();
    for class in ["NORMAL", "PNEUMONIA"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    std::fs::copy(
        fixture("reference/person45_bacteria_221.jpeg"),
        archive.join("a.jpeg"),
    )
    .unwrap();
    std::fs::copy(
        fixture("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"),
        archive.join("c.dcm"),
    )
    .unwrap();
    symlink(archive.join("a.jpeg"), data.join("PNEUMONIA/a.jpeg")).unwrap();
    symlink(archive.join("c.dcm"), data.join("NORMAL/c.dcm")).unwrap();
    symlink(data.join("NORMAL"), data.join("NORMAL/again")).unwrap();
    symlink(&data, data.join("PNEUMONIA/up")).unwrap();
    let out = root.join("out");
    let result = eval(&data, &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let files: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    // PNEUMONIA/up leads to data/, whose NORMAL/ it then lists once more (as the user linked it),
    // but neither loop goes round again.
    assert_eq!(
        files.len(),
        3,
        "first of those listed: {:?}",
        &files[..files.len().min(4)]
    );
    assert_eq!(
        files,
        [
            "NORMAL/c.dcm",
            "PNEUMONIA/a.jpeg",
            "PNEUMONIA/up/NORMAL/c.dcm"
        ],
        "{stderr}"
    );
    assert_eq!(metrics["n"], 3, "{stderr}");
    assert!(
        stderr.contains("a link to a folder already listed"),
        "{stderr}"
    );
}

/// A dataset as distributed (`chest_xray/train/NORMAL`, `chest_xray/test/…`) has its class
/// folders one level down: the error names the splits to choose from (it only said what was
/// expected), and never pools them into one evaluation.
#[test]
fn a_folder_of_splits_is_refused_with_the_splits_named() {
    let tmp = scratch("eval-splits");
    let data = tmp.path().join("chest_xray");
    for dir in ["train/NORMAL", "test/PNEUMONIA", "docs"] {
        std::fs::create_dir_all(data.join(dir)).unwrap();
    }
    let out = tmp.path().join("out");
    let result = eval(&data, &out);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    let want = format!(
        "error: {0} has no subfolder named after a class (NORMAL, PNEUMONIA): expected e.g. \
         {0}/NORMAL/ and {0}/PNEUMONIA/; test/, train/ have them: point --data at one (e.g. \
         {0}/test), splits are not pooled",
        data.display()
    );
    assert_eq!(stderr.trim_end(), want);

    // One split only: its path to use.
    std::fs::remove_dir_all(data.join("test")).unwrap();
    let stderr = String::from_utf8_lossy(&eval(&data, &out).stderr).into_owned();
    assert!(
        stderr.trim_end().ends_with(&format!(
            "; train/ has them: --data {}",
            data.join("train").display()
        )),
        "{stderr}"
    );
}

/// One class's folder (`test/PNEUMONIA`), evaluated for its sensitivity alone: every film takes
/// the folder's label, as in the viewer; the figures that need the other class are `null` in
/// metrics.json and "n/a" in the summary, with a note saying why (it had been refused as having
/// no class subfolder). A link keeps its own name, as the viewer's study list does.
#[test]
fn a_folder_named_after_a_class_is_evaluated_as_that_class() {
    let tmp = scratch("eval-one-class");
    let data = tmp.path().join("test/PNEUMONIA");
    std::fs::create_dir_all(data.join("nested")).unwrap();
    std::fs::copy(
        fixture("reference/person45_bacteria_221.jpeg"),
        data.join("a.jpeg"),
    )
    .unwrap();
    std::fs::copy(
        fixture("dicom/siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm"),
        data.join("nested/b.dcm"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let result = eval(&data, &out);
    let stdout = String::from_utf8_lossy(&result.stdout);
    common::assert_ran(&result);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["n"], 2);
    let c = &metrics["confusion"];
    assert_eq!(c["tp"].as_u64().unwrap() + c["fn"].as_u64().unwrap(), 2);
    assert_eq!(c["tn"].as_u64().unwrap() + c["fp"].as_u64().unwrap(), 0);
    for undefined in ["specificity", "auc"] {
        assert!(metrics[undefined].is_null(), "{undefined}: {metrics}");
    }
    let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    let labelled: Vec<(&str, &str)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        labelled,
        [("a.jpeg", "PNEUMONIA"), ("nested/b.dcm", "PNEUMONIA")]
    );
    let sensitivity = metrics["sensitivity"].as_f64().unwrap();
    assert!(
        stdout.contains(&format!(
            "sensitivity={sensitivity:.4} [{:.4}, {:.4}] specificity=n/a auc=n/a",
            metrics["ci95"]["sensitivity"][0].as_f64().unwrap(),
            metrics["ci95"]["sensitivity"][1].as_f64().unwrap()
        )),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("note: all 2 films are PNEUMONIA: specificity and AUC need NORMAL films too"),
        "{stdout}"
    );

    // Through a link named after the other class: the link's name labels the films.
    #[cfg(unix)]
    {
        let link = tmp.path().join("normal");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let result = eval(&link, &out);
        assert!(result.status.success());
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        let c = &metrics["confusion"];
        assert_eq!(c["tn"].as_u64().unwrap() + c["fp"].as_u64().unwrap(), 2);
        assert!(metrics["sensitivity"].is_null());
        assert!(String::from_utf8_lossy(&result.stdout).contains(
            "note: all 2 films are NORMAL: sensitivity and AUC need PNEUMONIA films too"
        ));
    }
}
