//! Localisation measures: pointing game, energy in boxes and IoU against hand-computed values on
//! synthetic maps, and `cxr-viewer eval --boxes` on committed fixtures (always) and on the six
//! shared RSNA films (when `../shared` is there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, scratch};
use cxr_viewer::explain::localisation::{
    energy_in_boxes, iou, localise, pointing_game, ImageBox, LocalisationOptions,
};
use cxr_viewer::explain::Grid;

/// A 3 × 2 map on a 300 × 100 film: cells are 100 × 50 px, centres at x = 50, 150, 250 and
/// y = 25, 75.
///
/// ```text
///   row 0:  0.2   4.0  -3.0
///   row 1:  1.0   2.0   0.8
/// ```
/// Positive energy: 0.2 + 4 + 1 + 2 + 0.8 = 8.0.
/// Within f32 rounding (0.2 and 0.8 are not exact in f32).
fn approx(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() < 1e-7)
}

fn synthetic() -> Grid {
    Grid::new(3, 2, vec![0.2, 4.0, -3.0, 1.0, 2.0, 0.8])
}

#[test]
fn pointing_game_hand_computed() {
    let m = synthetic();
    // The maximum (4.0) is cell (1, 0), centre (150, 25).
    let on_it = ImageBox::new(140.0, 20.0, 20.0, 10.0);
    assert!(pointing_game(&m, (300, 100), &[on_it], 0.0));
    // A box 15 px to the right of the centre (x from 165): a hit at 15 px, a miss at 14.
    let beside = ImageBox::new(165.0, 0.0, 30.0, 100.0);
    assert!(pointing_game(&m, (300, 100), &[beside], 15.0));
    assert!(!pointing_game(&m, (300, 100), &[beside], 14.0));
    // The strongly negative cell is not "the maximum" however large its magnitude.
    let on_negative = ImageBox::new(200.0, 0.0, 100.0, 50.0);
    assert!(!pointing_game(&m, (300, 100), &[on_negative], 0.0));
}

#[test]
fn energy_in_boxes_hand_computed() {
    let m = synthetic();
    // Box over the lower row's left two cells (centres (50, 75) and (150, 75)): 1 + 2 = 3 of 8.
    let lower_left = ImageBox::new(0.0, 50.0, 200.0, 50.0);
    assert!(approx(
        energy_in_boxes(&m, (300, 100), &[lower_left]),
        3.0 / 8.0
    ));
    // Adding a box over the negative cell adds nothing; over (0, 0) adds 0.2.
    let negative = ImageBox::new(200.0, 0.0, 100.0, 50.0);
    let first = ImageBox::new(0.0, 0.0, 60.0, 30.0);
    assert!(approx(
        energy_in_boxes(&m, (300, 100), &[lower_left, negative]),
        3.0 / 8.0
    ));
    let e = energy_in_boxes(&m, (300, 100), &[lower_left, first]).unwrap();
    assert!(approx(Some(e), 3.2 / 8.0), "{e}");
    // A box that misses every cell centre holds no energy.
    let between = ImageBox::new(60.0, 30.0, 30.0, 10.0);
    assert_eq!(energy_in_boxes(&m, (300, 100), &[between]), Some(0.0));
    // A map with no positive value has no energy to share.
    let negative_map = Grid::new(3, 2, vec![-1.0; 6]);
    assert_eq!(
        energy_in_boxes(&negative_map, (300, 100), &[lower_left]),
        None
    );
}

#[test]
fn iou_hand_computed() {
    let m = synthetic();
    let lower_left = ImageBox::new(0.0, 50.0, 200.0, 50.0);
    // Level 0.5 · 4 = 2: cells {(1,0)=4, (1,1)=2} on; box cells {(0,1), (1,1)}; ∩ 1, ∪ 3.
    let v = iou(&m, (300, 100), &[lower_left], 0.5).unwrap();
    assert!((v - 1.0 / 3.0).abs() < 1e-12, "{v}");
    // Level 0.2 · 4 = 0.8: {4, 1, 2, 0.8} on; ∩ {(0,1), (1,1)} = 2, ∪ = 4.
    assert_eq!(iou(&m, (300, 100), &[lower_left], 0.2), Some(0.5));
    // No cell centre inside the boxes: undefined rather than 0.
    let between = ImageBox::new(60.0, 30.0, 30.0, 10.0);
    assert_eq!(iou(&m, (300, 100), &[between], 0.5), None);
    // All three together, with the default options.
    let l = localise(
        &m,
        (300, 100),
        &[lower_left],
        &LocalisationOptions::default(),
    );
    assert!(
        !l.pointing_hit,
        "the maximum's centre (150, 25) is 25 px above the box"
    );
    assert!(approx(l.energy_in_boxes, 3.0 / 8.0));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
}

/// `eval --boxes labels` (plus `extra` flags) with the tiny reference network; its metrics.json.
fn run_eval(data: &Path, labels: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    run_eval_printing(data, labels, out, extra).0
}

/// [`run_eval`], and what it printed.
fn run_eval_printing(
    data: &Path,
    labels: &Path,
    out: &Path,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let result = bin()
        .args(["eval", "--device", "cpu", "--data"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--boxes")
        .arg(labels)
        .args(extra)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .output()
        .unwrap();
    common::assert_ran(&result);
    (
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap(),
        String::from_utf8_lossy(&result.stdout).into_owned(),
    )
}

#[test]
fn eval_with_boxes_on_fixture_films() {
    let tmp = scratch("eval-boxes");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let film = fixture("dicom/siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm");
    // The same 1024² film three times: boxed over the whole film, boxed over a corner, and
    // negative; a folder without class subfolders is labelled by Target.
    for name in ["whole", "corner", "negative"] {
        std::fs::copy(&film, data.join(format!("{name}.dcm"))).unwrap();
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(
        &labels,
        "patientId,x,y,width,height,Target\n\
         whole,0,0,1024,1024,1\n\
         corner,0,0,100,100,1\n\
         corner,0,0,100,100,1\n\
         negative,,,,,0\n\
         not_in_folder,5,5,5,5,1\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (m, printed) = run_eval_printing(&data, &labels, &out, &[]);
    assert_eq!(m["n"], 3, "every labelled film is classified");
    let loc = &m["localisation"];
    assert_eq!(loc["tolerance_px"], 15.0);
    assert_eq!(loc["iou_level"], 0.5);
    for map in ["gradcam", "ig", "uncertainty"] {
        let s = &loc[map];
        // Two films have boxes, whatever the model predicted.
        assert_eq!(s["n"], 2, "{map}: {s}");
        for key in ["pointing_game", "energy_in_boxes", "iou"] {
            let v = s[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{map}.{key}: {s}"));
            assert!((0.0..=1.0).contains(&v), "{map}.{key} = {v}");
        }
    }
    // Per film: a box over the whole film holds all the energy and catches the maximum.
    let films = loc["films"].as_array().unwrap();
    let whole = films.iter().find(|f| f["file"] == "whole.dcm").unwrap();
    for map in ["gradcam", "ig", "uncertainty"] {
        assert_eq!(whole[map]["pointing_hit"], true, "{map}");
        let e = whole[map]["energy_in_boxes"].as_f64().unwrap();
        assert!((e - 1.0).abs() < 1e-9, "{map}: {e}");
    }
    let corner = films.iter().find(|f| f["file"] == "corner.dcm").unwrap();
    assert_eq!(corner["boxes"], 1, "the repeated label row counts once");
    // The summary is the mean of the films.
    let e_mean = (whole["gradcam"]["energy_in_boxes"].as_f64().unwrap()
        + corner["gradcam"]["energy_in_boxes"].as_f64().unwrap())
        / 2.0;
    assert!((loc["gradcam"]["energy_in_boxes"].as_f64().unwrap() - e_mean).abs() < 1e-12);
    let csv = std::fs::read_to_string(out.join("localisation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    assert!(csv.starts_with("file,boxes,predicted,positive_probability,map,pointing_hit"));

    // Chance for the energy: a flat map's share in the boxes. By hand: the whole film, 1; the
    // 100-px corner of the 1024-px film on the 224-cell grid, cells of 1024/224 px whose
    // centres (k + ½)·1024/224 lie below 100 px, k ≤ 21: 22² of 224² cells.
    let corner_share = 22.0 * 22.0 / (224.0 * 224.0);
    let uniform = |f: &serde_json::Value| f["energy_in_boxes_uniform"].as_f64().unwrap();
    assert!((uniform(whole) - 1.0).abs() < 1e-12, "{whole}");
    assert!((uniform(corner) - corner_share).abs() < 1e-12, "{corner}");
    let mean = (1.0 + corner_share) / 2.0;
    assert!((loc["energy_in_boxes_uniform"].as_f64().unwrap() - mean).abs() < 1e-12);
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with(",iou,energy_in_boxes_uniform"));

    // The summary printed under the metrics (before: a progress line per film, nothing else).
    let target = loc["target"].as_str().unwrap();
    assert!(
        printed.contains(&format!(
            "localisation: 2 films with boxes, maps explaining {target} (pointing game: the \
             map's maximum within 15 px of a box; IoU: the map above 50 % of its maximum)\n"
        )),
        "{printed}"
    );
    for map in ["gradcam", "ig", "uncertainty"] {
        let s = &loc[map];
        let line = printed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(map))
            .unwrap_or_else(|| panic!("no {map} row in: {printed}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        let hits = (s["pointing_game"].as_f64().unwrap() * 2.0).round();
        assert_eq!(
            &cells[1..4],
            [format!("{hits}").as_str(), "of", "2"],
            "{line}"
        );
        let num = |v: &serde_json::Value| format!("{:.2}", v.as_f64().unwrap());
        let uniform = num(&loc["energy_in_boxes_uniform"]);
        assert!(
            line.contains(&format!("{}  ", num(&s["energy_in_boxes"])))
                && line.contains(&format!(" {uniform} "))
                && line.ends_with(&num(&s["iou"])),
            "{line}"
        );
    }
}

#[test]
fn eval_faithfulness_scores_the_films_of_an_rsna_folder_too() {
    // A folder without class subfolders, labelled by the --boxes file: `eval --faithfulness`
    // must score the same films that eval classified (it used to list class folders only and
    // averaged over no film at all).
    let tmp = scratch("eval-faithfulness-rsna");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let film = fixture("dicom/pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm");
    for name in ["a", "b"] {
        std::fs::copy(&film, data.join(format!("{name}.dcm"))).unwrap();
    }
    // A third film, whose IG baseline the tiny model reads as the class it explains.
    let jpeg = fixture("reference/person45_bacteria_221.jpeg");
    std::fs::copy(&jpeg, data.join("c.jpeg")).unwrap();
    let labels = tmp.path().join("labels.csv");
    std::fs::write(
        &labels,
        "patientId,x,y,width,height,Target\na,0,0,8,8,1\nb,,,,,0\nc,,,,,0\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let m = run_eval(
        &data,
        &labels,
        &out,
        &["--faithfulness", "--faithfulness-ig-steps", "2"],
    );
    let csv = std::fs::read_to_string(out.join("faithfulness.csv")).unwrap();
    let files: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(files.len(), 3 * 3, "{csv}");
    assert!(
        files.contains(&"a.dcm") && files.contains(&"b.dcm") && files.contains(&"c.jpeg"),
        "{csv}"
    );
    assert_eq!(m["n"], 3);
    assert!(m["faithfulness"]["gradcam"]["aopc"].is_number(), "{m}");
    // Images whose IG baseline is read as the explained class, and the baseline each map started
    // from, as `analyze` of each film with the same baseline says in its report; the default
    // (black) and `auto`, which moves the jpeg off its black baseline.
    for baseline in ["black", "auto"] {
        let m = if baseline == "black" {
            m.clone()
        } else {
            run_eval(
                &data,
                &labels,
                &tmp.path().join("out-auto"),
                &[
                    "--faithfulness",
                    "--faithfulness-ig-steps",
                    "2",
                    "--faithfulness-ig-baseline",
                    "auto",
                ],
            )
        };
        let analysed = tmp.path().join(format!("analysed-{baseline}"));
        let result = bin()
            .args([
                "analyze",
                "--device",
                "cpu",
                "--ig-steps",
                "2",
                "--no-faithfulness",
                "--ig-baseline",
                baseline,
            ])
            .arg(&film)
            .arg(&jpeg)
            .arg("--out")
            .arg(&analysed)
            .arg("--model")
            .arg(fixture("reference/model.json"))
            .output()
            .unwrap();
        assert!(result.status.success());
        let ig_of = |path: &Path| {
            let report: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(
                    analysed.join(path.file_stem().unwrap()).join("report.json"),
                )
                .unwrap(),
            )
            .unwrap();
            report["ig"].clone()
        };
        let (film_ig, jpeg_ig) = (ig_of(&film), ig_of(&jpeg));
        let warned = |ig: &serde_json::Value| u64::from(ig["warning"].is_string());
        assert_eq!(
            m["faithfulness"]["ig_baseline_read_as_target"],
            2 * warned(&film_ig) + warned(&jpeg_ig),
            "{baseline}"
        );
        assert_eq!(
            warned(&jpeg_ig) > 0,
            baseline == "black",
            "the jpeg's black baseline is read as its class; auto moves off it"
        );
        assert_eq!(m["faithfulness"]["ig_baseline"], baseline);
        let mut used = std::collections::BTreeMap::<String, u64>::new();
        for (ig, n) in [(&film_ig, 2), (&jpeg_ig, 1)] {
            assert_eq!(ig["baseline_requested"], baseline);
            *used
                .entry(ig["baseline"].as_str().unwrap().to_string())
                .or_default() += n;
        }
        assert_eq!(
            m["faithfulness"]["ig_baselines"],
            serde_json::to_value(&used).unwrap(),
            "{baseline}"
        );
    }
}

#[test]
fn eval_with_a_bad_labels_file_is_one_line() {
    let tmp = scratch("eval-boxes-bad");
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, "patientId,x,y,width,height,Target\na,1,2,x,4,1\n").unwrap();
    let result = bin()
        .args(["eval", "--device", "cpu", "--data"])
        .arg(tmp.path())
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--boxes")
        .arg(&labels)
        .arg("--model")
        .arg(fixture("reference/model.json"))
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("labels.csv line 2: width 'x' is not a number"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

fn shared_rsna() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/dicom");
    let (films, labels) = (dir.join("rsna"), dir.join("rsna_labels.csv"));
    (films.is_dir() && labels.is_file()).then_some((films, labels))
}

#[test]
fn eval_with_boxes_on_the_shared_rsna_films() {
    let Some((films, labels)) = shared_rsna() else {
        eprintln!("skipped: ../shared/dicom/rsna and rsna_labels.csv are not here (fixture test above always runs)");
        return;
    };
    let tmp = scratch("eval-rsna");
    let m = run_eval(&films, &labels, &tmp.path().join("out"), &[]);
    // Six films, three with boxes (the tiny test network: plumbing, not model quality).
    assert_eq!(m["n"], 6);
    for map in ["gradcam", "ig", "uncertainty"] {
        assert_eq!(m["localisation"][map]["n"], 3, "{map}");
    }
    let boxes: u64 = m["localisation"]["films"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["boxes"].as_u64().unwrap())
        .sum();
    assert_eq!(boxes, 4, "two boxes on one film, one on each of two others");
}
