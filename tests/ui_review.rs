//! The review workflow driven through the real widgets: a labelled folder, the study list and
//! its filters, a note written in the side panel, saved as typed, and still there after the
//! viewer is restarted on the same database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use cxr_viewer::analysis::Engine;
use cxr_viewer::io::load_study;
use cxr_viewer::notes::{Agreement, ErrorCategory, Filter, Finding, NotesStore, Zone};
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::reviewing::NotesDb;
use egui::accesskit::Role;
use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ui_support::*;

/// A folder laid out by class, with one study deliberately filed under the class the model
/// does *not* predict (so at least one misclassification exists whatever the model), an
/// unlabelled subfolder and an unreadable file. Returns the root, the misclassified study's
/// relative path, and the expected misclassified set.
struct Fixture {
    root: PathBuf,
    wrong: String,
    misclassified: Vec<String>,
    labelled: usize,
}

fn labelled_folder() -> Fixture {
    let engine = Engine::load(&tiny_model(), &Device::Cpu).unwrap();
    let positive = |p: &Path| {
        let (prepared, _, _) = engine.prepare(&load_study(p).unwrap()).unwrap();
        prepared.prediction.label == "PNEUMONIA"
    };
    let root = temp_dir("review-folder");
    for class in ["NORMAL", "PNEUMONIA", "unsorted"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    // (file, true class)
    let studies = [
        ("assets/samples/person45_bacteria_221.jpeg", "PNEUMONIA"),
        ("assets/samples/NORMAL2-IM-0912-0001.jpeg", "NORMAL"),
        ("weights/reference/IM-0176-0001.jpeg", "NORMAL"),
        ("weights/reference/person122_virus_229.jpeg", "PNEUMONIA"),
    ];
    let mut misclassified = Vec::new();
    let mut wrong = String::new();
    for (i, (file, truth)) in studies.iter().enumerate() {
        let src = repo(file);
        let predicted_positive = positive(&src);
        // The first study goes where the model will be wrong about it.
        let folder = if i == 0 {
            if predicted_positive {
                "NORMAL"
            } else {
                "PNEUMONIA"
            }
        } else {
            truth
        };
        let name = src.file_name().unwrap().to_string_lossy().into_owned();
        let relative = format!("{folder}/{name}");
        std::fs::copy(&src, root.join(&relative)).unwrap();
        if (folder == "PNEUMONIA") != predicted_positive {
            misclassified.push(relative.clone());
        }
        if i == 0 {
            wrong = relative;
        }
    }
    std::fs::copy(
        repo("tests/fixtures/dicom/siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm"),
        root.join("unsorted/chest.dcm"),
    )
    .unwrap();
    std::fs::copy(
        repo("tests/fixtures/dicom/truncated_pixeldata.dcm"),
        root.join("unsorted/broken.dcm"),
    )
    .unwrap();
    misclassified.sort();
    Fixture {
        root: std::fs::canonicalize(root).unwrap(),
        wrong,
        misclassified,
        labelled: studies.len(),
    }
}

fn open_folder(db: &Path, root: &Path, saves: &[PathBuf]) -> Harness<'static, ViewerApp> {
    open_folder_with(db, root, saves, |app| app)
}

/// [`open_folder`] with the viewer built as `build` makes it.
fn open_folder_with(
    db: &Path,
    root: &Path,
    saves: &[PathBuf],
    build: impl FnOnce(ViewerApp) -> ViewerApp,
) -> Harness<'static, ViewerApp> {
    let picker = Arc::new(ScriptedPicker::opening(&[root.to_path_buf()]).saving(saves));
    let app = build(ViewerApp::new(
        fast_settings(db),
        picker,
        tiny_model(),
        None,
    ));
    let mut h = harness(app);
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "every study predicted", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.rows.iter().all(|r| r.done()))
    });
    h
}

fn visible_names(app: &ViewerApp) -> Vec<String> {
    let review = app.review.as_ref().unwrap();
    let mut names: Vec<String> = app
        .review_visible()
        .into_iter()
        .map(|i| review.rows[i].relative.clone())
        .collect();
    names.sort();
    names
}

fn draft_for(app: &ViewerApp, relative: &str) -> bool {
    app.notes
        .draft
        .as_ref()
        .is_some_and(|d| d.path.ends_with(relative))
}

/// The list shows file names (folders in the hover text).
fn file_name(relative: &str) -> &str {
    relative.rsplit('/').next().unwrap_or(relative)
}

const TEXT: &str = "rib crossing mimics an opacity";

/// Focuses the note's comment box and types `text` into it.
fn type_comment(h: &mut Harness<'static, ViewerApp>, text: &str) {
    h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
        .focus();
    h.step();
    h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
        .type_text(text);
    h.step();
}

/// The note on screen as the database holds it, once every edit is saved.
fn saved_note(a: &ViewerApp) -> Option<&cxr_viewer::notes::Note> {
    let draft = a.notes.draft.as_ref().filter(|_| a.notes.all_saved())?;
    a.notes.all().get(&draft.note.study)
}

/// Opens `relative` from the list and starts its note: reviewer "AB", Disagree, "Rib or other
/// bony shadow".
fn open_and_disagree(h: &mut Harness<'static, ViewerApp>, relative: &str) {
    h.get_by_label(file_name(relative)).click();
    wait_until(h, "the note of the clicked study", |a| {
        draft_for(a, relative)
    });
    h.get_by_role_and_label(Role::TextInput, "Reviewer").focus();
    h.step();
    h.get_by_role_and_label(Role::TextInput, "Reviewer")
        .type_text("AB");
    h.step();
    h.get_by_label("Disagree").click();
    h.step();
    h.get_by_label("Rib or other bony shadow").click();
    h.step();
}

#[test]
fn labelled_folder_filter_note_and_restart() {
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");

    let export = temp_dir("review-export").join("notes.csv");
    let mut h = open_folder(&db, &fx.root, std::slice::from_ref(&export));
    {
        let app = h.state();
        let review = app.review.as_ref().unwrap();
        assert_eq!(review.rows.len(), 6, "4 labelled + DICOM + broken file");
        let counts = review.counts(app.notes.all(), app.notes.revision());
        assert_eq!(counts.labelled(), fx.labelled);
        assert_eq!(counts.fp + counts.fn_, fx.misclassified.len());
        assert_eq!((counts.unlabelled, counts.failed), (1, 1));
        // The first study (by path) opened on its own.
        assert!(current_path(app).is_some());
    }
    h.get_by_label(&format!("Misclassified ({})", fx.misclassified.len()))
        .click();
    h.run_ok();
    assert_eq!(
        h.state().review.as_ref().unwrap().filter,
        Filter::Misclassified
    );
    assert_eq!(visible_names(h.state()), fx.misclassified);

    // Open the wrongly filed study from the list and write a note about it.
    open_and_disagree(&mut h, &fx.wrong);
    h.get_by_label("Right lower").click();
    h.step();
    // A verdict and a zone are a note already: "Has note" counted only text.
    wait_until(&mut h, "the verdict saved", |a| {
        saved_note(a).is_some_and(|n| !n.zones.is_empty())
    });
    h.run_ok();
    h.get_by_label("Has note (1)");
    type_comment(&mut h, TEXT);
    wait_until(&mut h, "the autosave", |a| {
        saved_note(a).is_some_and(|n| n.text == TEXT)
    });
    h.get_by_label("Has note (1)");

    // Export from the pane: the review and the outcome, no folders.
    click_in_view(&mut h, "Export notes…");
    wait_until(&mut h, "the export", |_| export.exists());
    let csv = std::fs::read_to_string(&export).unwrap();
    assert!(csv.contains(TEXT) && csv.contains("bony_shadow"), "{csv}");
    assert!(
        !csv.contains(&*fx.root.to_string_lossy()),
        "no paths unless asked: {csv}"
    );
    drop(h);

    // What is on disk, independently of the viewer.
    let store = NotesStore::open(&db).unwrap();
    let notes = store.list(Filter::All).unwrap();
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    assert_eq!(n.text, TEXT);
    assert_eq!(n.reviewer, "AB");
    assert_eq!(n.agreement, Some(Agreement::Disagree));
    assert!(n.categories.contains(&ErrorCategory::BonyShadow));
    assert_eq!(
        n.zones.iter().copied().collect::<Vec<_>>(),
        [Zone::RightLower]
    );
    let folder_truth = if fx.wrong.starts_with("PNEUMONIA") {
        Finding::Positive
    } else {
        Finding::Negative
    };
    assert_eq!(n.ground_truth, Some(folder_truth));
    assert!(
        n.outcome().is_some_and(|o| o.is_error()),
        "the note records the misclassification it was written for"
    );
    drop(store);

    // Restart: a new viewer on the same database finds the note again.
    let mut h = open_folder(&db, &fx.root, &[]);
    h.get_by_label("Has note (1)").click();
    h.run_ok();
    assert_eq!(visible_names(h.state()), std::slice::from_ref(&fx.wrong));
    h.get_by_label(file_name(&fx.wrong)).click();
    wait_until(&mut h, "the stored note", |a| draft_for(a, &fx.wrong));
    assert_eq!(
        h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
            .value()
            .as_deref(),
        Some(TEXT)
    );
    let draft = h.state().notes.draft.as_ref().unwrap();
    assert_eq!(draft.note.agreement, Some(Agreement::Disagree));
    assert!(draft.note.zones.contains(&Zone::RightLower));
}

/// The page a reviewer exports (Ctrl+Shift+E) is what they send a colleague: it carries their
/// note (before, the page had the model's answer only), its text shown as text, and the boxes
/// outlined on every picture at the pixels where they were drawn; a film without a note gets no
/// review section.
#[test]
fn the_exported_page_carries_the_review_and_its_boxes() {
    use cxr_viewer::explain::localisation::{localise, LocalisationOptions};
    use cxr_viewer::notes::ImageBox;
    use cxr_viewer::ui::settings::MapKind;
    use egui::Modifiers;
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");
    let out = temp_dir("review-page");
    let (reviewed, plain) = (out.join("reviewed.html"), out.join("plain.html"));
    let json = out.join("reviewed.json");
    let mut h = open_folder(
        &db,
        &fx.root,
        &[reviewed.clone(), json.clone(), plain.clone()],
    );
    open_and_disagree(&mut h, &fx.wrong);
    type_comment(&mut h, "<b>rib</b> & \"shadow\"");
    // Leave the text box, so the shortcuts below are shortcuts.
    h.key_press(Key::Escape);
    h.step();
    h.state_mut()
        .set_note_boxes(vec![ImageBox::new(10.0, 20.0, 30.5, 40.0)]);
    wait_until(&mut h, "the full analysis", analysed);
    // Saved, so the note holds the folder's label as its own, as it does in use.
    wait_until(&mut h, "the autosave", |a| {
        saved_note(a).is_some_and(|n| n.ground_truth.is_some() && !n.boxes.is_empty())
    });
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::E);
    wait_until(&mut h, "the page", |_| reviewed.exists());
    let page = std::fs::read_to_string(&reviewed).unwrap();
    let (truth, model) = if fx.wrong.starts_with("PNEUMONIA") {
        ("PNEUMONIA", "NORMAL")
    } else {
        ("NORMAL", "PNEUMONIA")
    };
    let outcome = if truth == "PNEUMONIA" {
        "False negative"
    } else {
        "False positive"
    };
    for line in [
        "<h2>Review</h2>".to_string(),
        "<li>Verdict: Disagree</li>".into(),
        format!("<li>Ground truth: {truth} (from the folder)</li>"),
        format!("<li>Outcome: {outcome} (truth {truth}, model {model})</li>"),
        "<li>Why the model went wrong: Rib or other bony shadow</li>".into(),
        "<li>1 opacity box drawn, outlined on each picture</li>".into(),
        "<blockquote>&lt;b&gt;rib&lt;/b&gt; &amp; &quot;shadow&quot;</blockquote>".into(),
        "Note by AB · written ".into(),
    ] {
        assert!(page.contains(&line), "no {line:?} in the page");
    }
    // The box on the film and on each of the three overlays, in the film's pixels.
    let study = h.state().current.as_ref().unwrap().study.clone().unwrap();
    let rect = "<rect class=\"box\" x=\"10.0\" y=\"20.0\" width=\"30.5\" height=\"40.0\"";
    assert_eq!(page.matches(rect).count(), 4, "{page}");
    let view_box = format!("<svg viewBox=\"0 0 {} {}\"", study.width, study.height);
    assert_eq!(page.matches(&view_box).count(), 4);
    // The results panel's localisation table, for each map: Grad-CAM's row computed here.
    let (gradcam, _, _) = h.state().map_of(MapKind::GradCam).unwrap();
    let l = localise(
        &gradcam,
        (study.width, study.height),
        &[ImageBox::new(10.0, 20.0, 30.5, 40.0)],
        &LocalisationOptions::default(),
    );
    let row = format!(
        "<tr><td>Grad-CAM</td><td>{}</td><td>{:.0} %</td><td>{:.2}</td></tr>",
        if l.pointing_hit { "hit" } else { "miss" },
        100.0 * l.energy_in_boxes.unwrap(),
        l.iou.unwrap()
    );
    assert!(page.contains(&row), "no {row:?} in the page");
    assert!(page.contains("<tr><th>map against the 1 box</th>"));
    assert_eq!(page.matches("<tr><td>").count(), 3 + 6, "3 maps, 6 zones");

    // The report.json of the same export holds the same review: it had none.
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::E);
    wait_until(&mut h, "the JSON report", |_| json.exists());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let review = &report["review"];
    assert_eq!(review["agreement"], "disagree");
    assert_eq!(review["ground_truth"], truth);
    assert_eq!(review["ground_truth_source"], "folder");
    assert_eq!(review["categories"], serde_json::json!(["bony_shadow"]));
    assert_eq!(review["reviewer"], "AB");
    assert_eq!(review["text"], "<b>rib</b> & \"shadow\"");
    let scored = &review["localisation"]["gradcam"];
    assert_eq!(scored["pointing_hit"], l.pointing_hit);
    assert!(
        (scored["energy_in_boxes"].as_f64().unwrap() - l.energy_in_boxes.unwrap()).abs() < 1e-9
    );

    // Another film, with no note: no review, no outlines.
    h.key_press(Key::ArrowDown);
    wait_until(&mut h, "the next study analysed", |a| {
        !draft_for(a, &fx.wrong) && a.notes.draft.is_some() && analysed(a)
    });
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::E);
    wait_until(&mut h, "the second page", |_| plain.exists());
    let page = std::fs::read_to_string(&plain).unwrap();
    assert!(page.contains("<h2>Result</h2>"));
    assert!(!page.contains("<h2>Review</h2>") && !page.contains("<svg"));
}

#[test]
fn keyboard_walks_the_list_as_sorted_and_filtered() {
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    let order = |app: &ViewerApp| -> Vec<PathBuf> { app.navigation() };
    let list = order(h.state());
    assert_eq!(list.len(), 6);
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[0]));
    h.key_press(Key::ArrowDown);
    h.run_ok();
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[1]));

    // Sort by probability (highest first): the list and "next" follow the new order.
    h.get_by_role_and_label(Role::Button, "P").click();
    h.run_ok();
    let sorted = order(h.state());
    let review = h.state().review.as_ref().unwrap();
    let probs: Vec<f64> = sorted
        .iter()
        .map(|p| {
            let r = &review.rows[review.row_index(p).unwrap()];
            r.prediction.map_or(-1.0, |p| p.probability)
        })
        .collect();
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
    let here = sorted
        .iter()
        .position(|p| Some(p) == current_path(h.state()).as_ref())
        .unwrap();
    h.key_press(Key::ArrowDown);
    h.run_ok();
    assert_eq!(current_path(h.state()).as_ref(), sorted.get(here + 1));

    // "Unreviewed": marking a study agreed hides it, and Down moves on to the next one shown.
    h.get_by_label("Unreviewed (6)").click();
    h.run_ok();
    let before = current_path(h.state()).unwrap();
    wait_until(&mut h, "the note editor", |a| a.notes.draft.is_some());
    h.key_press(Key::Y);
    h.run_ok();
    wait_until(&mut h, "the verdict saved", |a| a.notes.all_saved());
    h.get_by_label("Unreviewed (5)");
    h.key_press(Key::ArrowDown);
    h.run_ok();
    let after = current_path(h.state()).unwrap();
    assert_ne!(after, before);
    let visible = order(h.state());
    assert!(visible.contains(&after) && !visible.contains(&before));

    // Marking that one too hides it as well: the counter says so, and the buttons still lead
    // into the list (they were greyed out while the study on screen was not in it). (An adult
    // film out of the model's scope takes a verdict only once S shows its answer.) Its note
    // editor and answer first: on a busy machine Y came before them and did nothing.
    wait_until(&mut h, "the next study's note editor and answer", |a| {
        a.notes.draft.as_ref().is_some_and(|d| d.path == after)
            && a.current_entry().is_some_and(|e| e.prepared.is_some())
    });
    if cxr_viewer::ui::scope_banner::result_hidden(h.state()) {
        h.key_press(Key::S);
        h.run_ok();
    }
    h.key_press(Key::Y);
    h.run_ok();
    wait_until(&mut h, "the verdict saved", |a| a.notes.all_saved());
    h.get_by_label("Unreviewed (4)");
    assert_eq!(h.state().hidden_by_filter(), Some(4));
    h.get_by_label("–/4");
    h.get_by_role_and_label(Role::Button, "< Previous").click();
    h.run_ok();
    let previous = current_path(h.state()).unwrap();
    assert!(order(h.state()).contains(&previous), "{previous:?}");
    assert_eq!(h.state().hidden_by_filter(), None);
}

/// Keys pressed within one frame each count. A frame can be long (a big film opening, software
/// rendering), and a reviewer tapping Down three times moved one study on, `] ]` raised the
/// opacity one step: only the first press of a key in a frame was taken.
#[test]
fn every_press_counts_even_within_one_frame() {
    // The presses of `keys`, all in one frame (the harness's own key presses take a frame each).
    fn in_one_frame(h: &mut Harness<'_, ViewerApp>, keys: &[Key]) {
        let keys: Vec<(Key, &str)> = keys.iter().map(|&k| (k, "")).collect();
        h.input_mut().events.extend(keystrokes(&keys));
        h.step();
        h.run_ok();
    }
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    let list = h.state().navigation();
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[0]));
    in_one_frame(&mut h, &[Key::ArrowDown; 3]);
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[3]));
    in_one_frame(&mut h, &[Key::ArrowUp, Key::PageUp]);
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[1]));
    let alpha = h.state().settings.alpha;
    in_one_frame(&mut h, &[Key::CloseBracket; 2]);
    assert!((h.state().settings.alpha - (alpha + 0.10)).abs() < 1e-4);
}

/// The note column was sized while no study had a note, and its cells truncate: a verdict given
/// afterwards read "di…" (and boxes "bo…").
#[test]
fn a_verdict_given_after_the_list_was_laid_out_is_not_cut_off() {
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    wait_until(&mut h, "the note editor", |a| a.notes.draft.is_some());
    h.key_press(Key::N);
    h.run_ok();
    wait_until(&mut h, "the verdict saved", |a| a.notes.all_saved());
    h.run_ok();
    ui_support::assert_cell_not_cut(&h, "disagr.");
}

#[test]
fn an_empty_folder_and_an_unusable_notes_database_say_so_in_one_line() {
    // A directory where the database file should be: SQLite cannot open it.
    let bad_db = temp_dir("review-bad-db");
    let empty = temp_dir("review-empty");
    std::fs::write(empty.join("README.txt"), b"not an image").unwrap();
    let picker = Arc::new(ScriptedPicker::opening(std::slice::from_ref(&empty)));
    let app = ViewerApp::new(fast_settings(&bad_db), picker, tiny_model(), None);
    let mut h = harness(app);
    wait_until(&mut h, "the notes database error", |a| {
        matches!(a.notes.db, NotesDb::Failed(_))
    });
    h.get_by_label_contains("Notes unavailable: ");
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "the empty folder's message", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.is_error && s.text.starts_with("no images in "))
    });
    let status = h.state().status.clone().unwrap();
    assert!(!status.text.contains('\n'), "{}", status.text);
    assert!(h.state().current.is_none());
}

/// Images in a format the viewer does not read are left out of the list, and the list says so
/// (hover: which files, and what to do); a folder of nothing else says so in its error. Before,
/// a folder of TIFF exports said only "no images in …", and beside films they went unmentioned.
#[test]
fn images_in_other_formats_are_left_out_and_said_so() {
    let other = |name: &str| repo("tests/fixtures/other_formats").join(name);
    let root = temp_dir("review-other-formats");
    let film = repo("assets/samples/person45_bacteria_221.jpeg");
    std::fs::copy(&film, root.join("film.jpeg")).unwrap();
    std::fs::create_dir_all(root.join("old")).unwrap();
    std::fs::copy(other("grey8.tif"), root.join("old/scan.tif")).unwrap();
    std::fs::write(root.join("README.txt"), b"not an image").unwrap();
    let db = temp_dir("review-other-formats-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &root, &[]);
    assert_eq!(h.state().review.as_ref().unwrap().rows.len(), 1);
    let line = "1 image not listed: a TIFF file, a format the viewer does not read";
    h.get_by_label(line).hover();
    ui_support::step_until(&mut h, "the hover naming the file", |h| {
        h.query_by_label_contains("old/scan.tif (TIFF)").is_some()
    });

    let tiffs = temp_dir("review-only-tiffs");
    for name in ["a.tif", "b.tif"] {
        std::fs::copy(other("grey8.tif"), tiffs.join(name)).unwrap();
    }
    std::fs::copy(other("grey8.bmp"), tiffs.join("c.bmp")).unwrap();
    let picker = Arc::new(ScriptedPicker::opening(std::slice::from_ref(&tiffs)));
    let app = ViewerApp::new(fast_settings(&db), picker, tiny_model(), None);
    let mut h = harness(app);
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "the folder's message", |a| {
        a.status.as_ref().is_some_and(|s| s.is_error)
    });
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        format!(
            "no images in {}: 3 images left out, in formats cxr-viewer does not read (BMP, \
             TIFF): a.tif, b.tif, c.bmp; convert them to PNG (16-bit grey keeps the depth) or DICOM",
            tiffs.display()
        )
    );
    h.get_by_label("3 images not listed: BMP, TIFF, formats the viewer does not read");
}

/// The folder's first file, opened on screen, cannot be read: the scan, which yields the CPU to
/// the image on screen while it loads, must not wait for it forever (it did: "predicting 1/3
/// (after the image on screen)" for good).
#[test]
fn an_unreadable_first_file_does_not_hold_up_the_scan() {
    let root = temp_dir("review-broken-first");
    std::fs::write(root.join("0-broken.dcm"), b"not an image").unwrap();
    for file in [
        "assets/samples/person45_bacteria_221.jpeg",
        "assets/samples/NORMAL2-IM-0912-0001.jpeg",
    ] {
        let src = repo(file);
        std::fs::copy(&src, root.join(src.file_name().unwrap())).unwrap();
    }
    let db = temp_dir("review-broken-first-db").join("notes.sqlite3");
    let h = open_folder(&db, &root, &[]);
    let app = h.state();
    assert!(app.current.as_ref().unwrap().path.ends_with("0-broken.dcm"));
    assert!(app.current.as_ref().unwrap().error.is_some());
    let rows = &app.review.as_ref().unwrap().rows;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r.prediction.is_some()).count(), 2);
}

/// A labelled folder made of links into an archive (how a subset is usually put together): every
/// link is a study, labelled by the folder the link is in; the study opened from the list stays
/// the list's (before, opening resolved the link to its target, which no row has: Next then
/// walked the archive's folder); a link back up the tree is walked once, not 40 times over.
#[cfg(unix)]
#[test]
fn a_folder_of_links_is_listed_and_walked_as_its_links() {
    use std::os::unix::fs::symlink;
    let archive = temp_dir("review-archive");
    let files = [
        "assets/samples/person45_bacteria_221.jpeg",
        "assets/samples/NORMAL2-IM-0912-0001.jpeg",
        "weights/reference/IM-0176-0001.jpeg",
    ];
    for file in files {
        let src = repo(file);
        std::fs::copy(&src, archive.join(src.file_name().unwrap())).unwrap();
    }
    // Not linked: Next must not reach it.
    std::fs::copy(repo(files[0]), archive.join("unlisted.jpeg")).unwrap();
    let root = std::fs::canonicalize(temp_dir("review-links")).unwrap();
    for class in ["NORMAL", "PNEUMONIA"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    let link = |name: &str, class: &str| {
        symlink(archive.join(name), root.join(class).join(name)).unwrap();
    };
    link("person45_bacteria_221.jpeg", "PNEUMONIA");
    link("NORMAL2-IM-0912-0001.jpeg", "NORMAL");
    link("IM-0176-0001.jpeg", "NORMAL");
    symlink(&root, root.join("NORMAL/loop")).unwrap();
    symlink(archive.join("gone.jpeg"), root.join("NORMAL/broken.jpeg")).unwrap();

    let db = temp_dir("review-links-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &root, &[]);
    let review = h.state().review.as_ref().unwrap();
    let mut listed: Vec<(String, Option<Finding>)> = review
        .rows
        .iter()
        .map(|r| (r.relative.clone(), r.folder_truth))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        listed,
        [
            (
                "NORMAL/IM-0176-0001.jpeg".to_string(),
                Some(Finding::Negative)
            ),
            (
                "NORMAL/NORMAL2-IM-0912-0001.jpeg".to_string(),
                Some(Finding::Negative)
            ),
            (
                "PNEUMONIA/person45_bacteria_221.jpeg".to_string(),
                Some(Finding::Positive)
            ),
        ]
    );
    assert!(review.rows.iter().all(|r| r.prediction.is_some()));

    let order = h.state().navigation();
    assert_eq!(order.len(), 3);
    assert!(order.iter().all(|p| p.starts_with(&root)), "{order:?}");
    assert_eq!(current_path(h.state()).as_ref(), Some(&order[0]));
    assert_eq!(h.state().folder_position(), Some((0, 3)));
    for (i, want) in order.iter().enumerate().skip(1) {
        h.key_press(Key::ArrowDown);
        h.run_ok();
        assert_eq!(current_path(h.state()).as_ref(), Some(want));
        assert_eq!(h.state().folder_position(), Some((i, 3)));
    }

    // The folder opened through a link to it: listed under the link's name, not the target's
    // (the panel named the target folder, which the user never picked).
    let via = temp_dir("review-links-via").join("labelled-subset");
    symlink(&root, &via).unwrap();
    let h = open_folder(&db, &via, &[]);
    let review = h.state().review.as_ref().unwrap();
    assert_eq!(review.root, via);
    assert_eq!(review.rows.len(), 3);
    assert!(review.rows.iter().all(|r| r.path.starts_with(&via)));
    h.get_by_label_contains("labelled-subset");
    let order = h.state().navigation();
    assert_eq!(current_path(h.state()).as_ref(), Some(&order[0]));
    assert_eq!(h.state().folder_position(), Some((0, 3)));
}

/// A folder opened for review is in Recent, as "name/", and reopens as a review from there; the
/// films opened within it are not added one by one. Before, Recent never listed a folder, and
/// ten films walked in a review pushed everything else out of it.
#[test]
fn a_reviewed_folder_is_in_recent_and_reopens_as_a_review() {
    let fx = labelled_folder();
    let db = temp_dir("review-recent").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    for _ in 0..3 {
        h.key_press(Key::ArrowDown);
        h.run_ok();
    }
    assert_eq!(h.state().settings.recent, std::slice::from_ref(&fx.root));
    // A film from elsewhere is remembered above the folder.
    let film = repo("assets/samples/person45_bacteria_221.jpeg");
    h.state_mut().open(film.clone());
    h.run_ok();
    assert_eq!(
        h.state().settings.recent,
        [std::path::absolute(&film).unwrap(), fx.root.clone()]
    );
    h.get_by_label("Recent").click();
    h.run_ok();
    let name = format!("{}/", fx.root.file_name().unwrap().to_string_lossy());
    h.get_by_label(&name).click();
    wait_until(&mut h, "the folder reopened as a review", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.root == fx.root)
    });
    assert_eq!(h.state().settings.recent[0], fx.root);
}

/// A second viewer window on the same database saves a note on the study this one has open;
/// the comment typed here afterwards is merged with it, in the database and on screen, and the
/// status bar says so. Before, this window's save overwrote the other reviewer's note.
#[test]
fn a_note_saved_meanwhile_in_another_window_is_merged_not_overwritten() {
    let fx = labelled_folder();
    let db = temp_dir("review-two-windows").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    h.get_by_label(file_name(&fx.wrong)).click();
    wait_until(&mut h, "the note of the clicked study", |a| {
        draft_for(a, &fx.wrong)
    });
    let study = h.state().notes.draft.as_ref().unwrap().note.study.clone();

    // The other window: its own connection, its own note on the same study.
    let other = NotesStore::open(&db).unwrap();
    let mut theirs = cxr_viewer::notes::Note::new(study.clone());
    theirs.text = "ECG lead over the left hilum".into();
    theirs.categories.insert(ErrorCategory::DeviceArtifact);
    other.upsert(&theirs).unwrap();

    type_comment(&mut h, TEXT);
    wait_until(&mut h, "the autosave", |a| {
        a.notes.all_saved()
            && a.notes
                .all()
                .get(&study)
                .is_some_and(|n| n.text != theirs.text)
    });
    let stored = other.get(&study).unwrap().unwrap();
    assert_eq!(
        stored.text,
        format!(
            "{TEXT}\n\n{}\nECG lead over the left hilum",
            cxr_viewer::notes::MERGED_TEXT_MARKER
        )
    );
    assert!(stored.categories.contains(&ErrorCategory::DeviceArtifact));
    let app = h.state();
    assert_eq!(app.notes.draft.as_ref().unwrap().note.text, stored.text);
    let status = app.status.as_ref().unwrap();
    assert!(
        status
            .text
            .starts_with("this note had also been saved in another viewer window"),
        "{}",
        status.text
    );
}

/// *Import notes…* of an export corrected in a spreadsheet: the correction is taken (the row
/// kept its `updated_at`; before the forty-first session it was counted "unchanged" and
/// dropped), the status line says so, and the note pane of the study on screen shows it.
#[test]
fn a_note_corrected_in_an_exported_file_is_imported_in_the_viewer() {
    let fx = labelled_folder();
    let dir = temp_dir("review-spreadsheet-import");
    let db = dir.join("notes.sqlite3");
    let exported = dir.join("notes.csv");
    let picker = Arc::new(ScriptedPicker::opening(&[
        fx.root.clone(),
        exported.clone(),
    ]));
    let mut h = harness(ViewerApp::new(
        fast_settings(&db),
        picker,
        tiny_model(),
        None,
    ));
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "every study predicted", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.rows.iter().all(|r| r.done()))
    });
    h.get_by_label(file_name(&fx.wrong)).click();
    wait_until(&mut h, "the note of the clicked study", |a| {
        draft_for(a, &fx.wrong)
    });
    type_comment(&mut h, TEXT);
    let study = h.state().notes.draft.as_ref().unwrap().note.study.clone();
    wait_until(&mut h, "the autosave", |a| {
        a.notes.all_saved() && a.notes.all().get(&study).is_some_and(|n| n.text == TEXT)
    });

    // The reviewer exports the notes and corrects the comment in a spreadsheet, which also
    // writes the booleans its way.
    let store = NotesStore::open(&db).unwrap();
    let text = cxr_viewer::notes::export(
        &store.list(Filter::All).unwrap(),
        cxr_viewer::notes::Format::Csv,
        &cxr_viewer::notes::ExportOptions::new(),
    )
    .unwrap();
    let corrected = "rib crossing mimics an opacity (checked: a second rib)";
    let edited = text
        .replace(TEXT, corrected)
        .replace(",true,", ",TRUE,")
        .replace(",false,", ",FALSE,");
    assert!(edited.contains(corrected));
    assert!(edited.contains(",TRUE,") || edited.contains(",FALSE,"));
    std::fs::write(&exported, edited).unwrap();

    click_in_view(&mut h, "Import notes…");
    wait_until(&mut h, "the import", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.is_error || s.text.starts_with("imported notes.csv"))
    });
    let status = h.state().status.clone().unwrap();
    assert!(!status.is_error, "{}", status.text);
    assert_eq!(
        status.text,
        "imported notes.csv: 0 new, 1 updated, 0 unchanged · 1 note edited in the file since \
         its export (the updated_at of the note here, other content): imported as edits made now"
    );
    assert_eq!(store.get(&study).unwrap().unwrap().text, corrected);
    wait_until(&mut h, "the pane showing the correction", |a| {
        a.notes
            .draft
            .as_ref()
            .is_some_and(|d| d.path.ends_with(&fx.wrong) && d.note.text == corrected)
    });
}

/// The labelled folder under review, every study predicted, sorted by probability (highest
/// first); `tag` names its notes database's folder.
fn by_probability(tag: &str) -> (Fixture, Harness<'static, ViewerApp>) {
    let fx = labelled_folder();
    let db = temp_dir(tag).join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    h.get_by_role_and_label(Role::Button, "P").click();
    h.run_ok();
    (fx, h)
}

/// Sets the predicted probability of the row of `path`, as a prediction arriving would.
fn set_probability(h: &mut Harness<'static, ViewerApp>, path: &Path, probability: f64) {
    let review = h.state_mut().review.as_mut().unwrap();
    let row = review.row_mut(path).unwrap();
    row.prediction.as_mut().unwrap().probability = probability;
}

/// With the pointer over the study list, a prediction arriving does not move the rows (a click
/// would otherwise open the study that just slid under it); once the pointer leaves, the list
/// is in order again.
#[test]
fn rows_stay_put_under_the_pointer_while_predictions_arrive() {
    let (fx, mut h) = by_probability("review-hold");
    let before = h.state().navigation();
    // The last predicted row by probability gets the highest: it belongs at the top.
    let review = h.state().review.as_ref().unwrap();
    let last = before
        .iter()
        .rev()
        .find(|p| {
            review.rows[review.row_index(p).unwrap()]
                .prediction
                .is_some()
        })
        .unwrap()
        .clone();
    h.get_by_label(file_name(&fx.wrong)).hover();
    h.run_ok();
    set_probability(&mut h, &last, 0.999);
    h.run_ok();
    assert_eq!(h.state().navigation(), before, "held under the pointer");
    h.get_by_label("Research use only — not for diagnosis")
        .hover();
    h.run_ok();
    let after = h.state().navigation();
    assert_eq!(after.first(), Some(&last), "in order once the pointer left");
}

/// "Rescan" lists the folder again: a film added since is listed and predicted, a changed one
/// is predicted again, the others keep their predictions (not computed again), and the filter
/// and order stay as the reviewer left them.
#[test]
fn rescan_predicts_only_new_and_changed_files() {
    let (fx, mut h) = by_probability("review-rescan");
    let (sort, descending) = {
        let r = h.state().review.as_ref().unwrap();
        (r.sort, r.descending)
    };
    // Marks that a prediction made again would not reproduce.
    let kept = fx.root.join(&fx.wrong);
    let changed = fx.root.join("NORMAL/IM-0176-0001.jpeg");
    for path in [&kept, &changed] {
        set_probability(&mut h, path, 0.123);
    }
    // The changed file gets other content (another film); a new one is added.
    std::fs::copy(repo("assets/samples/NORMAL2-IM-0912-0001.jpeg"), &changed).unwrap();
    let added = fx.root.join("PNEUMONIA/added.jpeg");
    std::fs::copy(repo("weights/reference/person122_virus_229.jpeg"), &added).unwrap();

    let file_header = h.get_by_label_contains("File").rect();
    h.get_by_label("Rescan").click();
    wait_until(&mut h, "the rescan predicted", |a| {
        a.review.as_ref().is_some_and(|r| {
            r.listed && r.row_index(&added).is_some() && r.rows.iter().all(|r| r.done())
        })
    });
    let review = h.state().review.as_ref().unwrap();
    let probability = |path: &Path| {
        review.rows[review.row_index(path).unwrap()]
            .prediction
            .unwrap()
            .probability
    };
    assert_eq!(
        probability(&kept),
        0.123,
        "unchanged: kept, not predicted again"
    );
    assert_ne!(probability(&changed), 0.123, "changed: predicted again");
    assert!(probability(&added) > 0.0);
    assert_eq!(review.rows.len(), 7);
    assert_eq!((review.sort, review.descending), (sort, descending));
    assert_eq!(h.state().settings.recent[0], fx.root);
    // The list kept its width through the rescan's "listing…" (it shrank to ~280 px).
    h.run_ok();
    assert_eq!(h.get_by_label_contains("File").rect(), file_header);

    // F5 does the same; with nothing changed, every prediction is kept.
    let scan = h.state().review.as_ref().unwrap().scan_id;
    h.key_press(Key::F5);
    wait_until(&mut h, "the second rescan listed", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.scan_id != scan && r.listed && r.rows.iter().all(|r| r.done()))
    });
    let review = h.state().review.as_ref().unwrap();
    let kept_row = &review.rows[review.row_index(&kept).unwrap()];
    assert_eq!(kept_row.prediction.unwrap().probability, 0.123);
}

/// A folder reopened in a later session lists the predictions stored by the earlier one
/// (nothing predicted again) for every file that is unchanged, under the same model and MC
/// count; a changed file, an unreadable one, and any other MC count are predicted again.
#[test]
fn a_folder_reopened_in_a_later_session_takes_its_predictions_from_the_cache() {
    let fx = labelled_folder();
    let dir = temp_dir("review-cache");
    let db = dir.join("notes.sqlite3");
    let cache = dir.join("cache/predictions.sqlite3");
    let with_cache = |app: ViewerApp| app.with_prediction_cache(Some(cache.clone()));
    drop(open_folder_with(&db, &fx.root, &[], with_cache));

    // Marks that a prediction made again would not reproduce.
    let marked = rusqlite::Connection::open(&cache)
        .unwrap()
        .execute("UPDATE predictions SET probability = 0.123", [])
        .unwrap();
    assert_eq!(
        marked, 5,
        "the five readable films were stored, the broken one not"
    );
    let changed = fx.root.join("NORMAL/IM-0176-0001.jpeg");
    std::fs::copy(repo("assets/samples/NORMAL2-IM-0912-0001.jpeg"), &changed).unwrap();

    let h = open_folder_with(&db, &fx.root, &[], with_cache);
    let review = h.state().review.as_ref().unwrap();
    let probability = |path: &Path| {
        let row = &review.rows[review.row_index(path).unwrap()];
        row.prediction.map(|p| p.probability)
    };
    assert_eq!(probability(&fx.root.join(&fx.wrong)), Some(0.123));
    assert_eq!(
        probability(&fx.root.join("unsorted/chest.dcm")),
        Some(0.123)
    );
    let fresh = probability(&changed).unwrap();
    assert_ne!(fresh, 0.123, "changed since: predicted again");
    let broken = &review.rows[review
        .row_index(&fx.root.join("unsorted/broken.dcm"))
        .unwrap()];
    assert!(broken.error.is_some(), "an unreadable file is tried again");
    // The row of a stored prediction carries what a note needs: the study id, the scope.
    let chest = &review.rows[review
        .row_index(&fx.root.join("unsorted/chest.dcm"))
        .unwrap()];
    assert!(chest
        .id
        .as_ref()
        .is_some_and(|id| id.as_str().starts_with("dicom:")));
    assert!(chest.scope.is_some());
    drop(h);

    // Another MC-dropout count changes the uncertainty flag: nothing is taken from the cache.
    let h = open_folder_with(&db, &fx.root, &[], |app| {
        let mut app = with_cache(app);
        app.settings.mc_samples = 6;
        app
    });
    let review = h.state().review.as_ref().unwrap();
    assert!(review
        .rows
        .iter()
        .filter_map(|r| r.prediction)
        .all(|p| p.probability != 0.123));
}

/// A view exported into the folder under review (the save dialog opens beside the film) is not
/// listed as a study by the next Rescan: before, it entered the list and, in a class folder, the
/// confusion matrix.
#[test]
fn a_view_exported_into_the_reviewed_folder_is_not_a_study() {
    let fx = labelled_folder();
    let db = temp_dir("review-export").join("notes.sqlite3");
    let exported = fx.root.join("NORMAL/exported view.png");
    let mut h = open_folder(&db, &fx.root, std::slice::from_ref(&exported));
    let listed = h.state().review.as_ref().unwrap().rows.len();
    wait_until(&mut h, "the study on screen loaded", |a| {
        a.current.as_ref().is_some_and(|c| c.study.is_some())
    });
    h.get_by_label("Export PNG…").click();
    wait_until(&mut h, "the PNG exported", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| !s.is_error && s.text.contains("exported view.png"))
    });
    assert!(exported.is_file());
    let scan = h.state().review.as_ref().unwrap().scan_id;
    h.get_by_label("Rescan").click();
    wait_until(&mut h, "the rescan listed", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.scan_id != scan && r.listed && r.rows.iter().all(|r| r.done()))
    });
    let review = h.state().review.as_ref().unwrap();
    assert_eq!(review.row_index(&exported), None);
    assert_eq!(review.rows.len(), listed);
}

/// While the reviewer reads a study whose analysis is done, the one Next opens is analysed in
/// advance, so Next shows it complete at once, Integrated Gradients included (before, IG started
/// only when the study was opened: seconds of waiting on every study). With the setting off,
/// nothing runs in advance.
#[test]
fn the_study_next_opens_is_analysed_in_advance() {
    use cxr_viewer::ui::cache::AnalysisKey;
    use cxr_viewer::ui::settings::MapKind;
    let fx = labelled_folder();
    let db = temp_dir("review-prefetch").join("notes.sqlite3");
    let next_key = |h: &Harness<'static, ViewerApp>| {
        let next = h.state().step_target(1).unwrap();
        let window = load_study(&next).unwrap().default_window;
        AnalysisKey::new(next, &window, h.state().settings.mc_samples, 0)
    };

    let mut h = open_folder(&db, &fx.root, &[]);
    let key = next_key(&h);
    let ig = h.state().wanted_ig_or_default();
    let trust_key = (key.clone(), Some(ig));
    wait_until(
        &mut h,
        "the next study analysed and checked in advance",
        |a| {
            a.cache.peek(&key).is_some_and(|e| e.ig.contains_key(&ig))
                && a.trust
                    .entry(&trust_key)
                    .is_some_and(|e| e.faithfulness.is_some())
                && !a.jobs.busy()
        },
    );
    h.key_press(Key::ArrowDown);
    h.step();
    assert_eq!(h.state().current.as_ref().unwrap().path, key.path);
    assert!(
        h.state().has_map(MapKind::IntegratedGradients),
        "complete at once"
    );
    assert!(h.state().trust.job.is_none(), "its faithfulness check too");
    h.get_by_label_contains("deletion AUC");
    drop(h);

    let mut h = open_folder_with(&db, &fx.root, &[], |mut app| {
        app.settings.prefetch_next = false;
        app
    });
    let key = next_key(&h);
    wait_until(&mut h, "the study on screen analysed and checked", |a| {
        a.current_entry().is_some_and(|e| e.ig.contains_key(&ig))
            && !a.jobs.busy()
            && a.trust.job.is_none()
    });
    let idle = |h: &mut Harness<'static, ViewerApp>| {
        for _ in 0..20 {
            h.step();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        h.state().cache.peek(&key).is_none() && !h.state().jobs.busy()
    };
    assert!(idle(&mut h));

    // Esc (stop the analysis) holds it back on this study even with the setting on: without
    // the hold, it started at the next frame. Another study lifts the hold.
    h.key_press(Key::Escape);
    h.state_mut().settings.prefetch_next = true;
    assert!(idle(&mut h), "held after Esc");
    h.key_press(Key::ArrowDown);
    let key = next_key(&h);
    wait_until(
        &mut h,
        "the study after the next analysed in advance",
        |a| a.cache.peek(&key).is_some_and(|e| e.ig.contains_key(&ig)),
    );
}

/// `T` and the first letters of the comment can arrive in one frame: a frame drawn while an
/// analysis lands or a folder scan runs gathers the keystrokes. Under Xvfb, `T` then "rib shadow
/// over …" typed right after Down lost "rib" (or "rib s") in three of nine tries: `r` reset the
/// view, `i` inverted it and `b` switched the IG baseline, because each shortcut looked for its
/// key anywhere in the frame. The keys after `T` are the comment; those before it still act.
#[test]
fn the_letters_typed_in_the_same_frame_as_t_go_into_the_comment() {
    let fx = labelled_folder();
    let db = temp_dir("review-t-frame").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    wait_until(&mut h, "the note pane ready", |a| a.notes.draft.is_some());
    let baseline = h.state().settings.ig_baseline;
    // One frame: Y (agree), then T, then "rib n" — `n` would be "disagree".
    h.input_mut().events.extend(keystrokes(&[
        (Key::Y, "y"),
        (Key::T, "t"),
        (Key::R, "r"),
        (Key::I, "i"),
        (Key::B, "b"),
        (Key::Space, " "),
        (Key::N, "n"),
    ]));
    h.step();
    h.step();
    // And the next frame's typing lands too.
    h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
        .type_text("ot");
    h.run_ok();
    let app = h.state();
    let draft = app.notes.draft.as_ref().unwrap();
    assert_eq!(draft.note.text, "rib not");
    assert_eq!(
        draft.note.agreement,
        Some(Agreement::Agree),
        "Y came before T"
    );
    assert!(!app.current.as_ref().unwrap().view.invert, "`i` is text");
    assert_eq!(app.settings.ig_baseline, baseline, "`b` is text");
    assert!(
        h.ctx
            .memory(|m| m.has_focus(egui::Id::unique("review-note-comment"))),
        "the comment box keeps the focus"
    );

    // Down, T and a letter in one frame: the letter is the next study's comment.
    h.key_press(Key::Escape);
    h.step();
    let first = h.state().current.as_ref().unwrap().path.clone();
    h.input_mut().events.extend([
        key_event(Key::ArrowDown, true),
        key_event(Key::ArrowDown, false),
        key_event(Key::T, true),
        egui::Event::Text("t".into()),
        key_event(Key::Z, true),
        egui::Event::Text("z".into()),
    ]);
    h.step();
    h.step();
    let app = h.state();
    assert_ne!(app.current.as_ref().unwrap().path, first);
    assert_eq!(app.notes.draft.as_ref().unwrap().note.text, "z");
    let first_id = app.notes.ids[&first].clone();
    wait_until(&mut h, "the first study's note saved as it was", |a| {
        a.notes
            .all()
            .get(&first_id)
            .is_some_and(|n| n.text == "rib not")
    });
}

/// `T` pressed while the study is still opening (its note not there yet, a large DICOM after
/// Next) keeps what is typed until the comment box is drawn, rather than letting `r`, `i`, `b`
/// act as shortcuts; Esc gives up waiting, and a study that never gets its note gives the
/// keyboard back with a one-line message, not silently.
#[test]
fn typing_after_t_waits_for_a_study_still_opening() {
    let fx = labelled_folder();
    let db = temp_dir("review-t-early").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    wait_until(&mut h, "the note pane ready", |a| a.notes.draft.is_some());
    let path = h.state().current.as_ref().unwrap().path.clone();
    // As while the study opens: its id, and so its note, not known yet.
    let id = h.state_mut().notes.ids.remove(&path).unwrap();
    h.step();
    assert!(h.state().notes.draft.is_none());
    // One keystroke a frame.
    let typed = |h: &mut Harness<'static, ViewerApp>, keys: &[(Key, &str)]| {
        for key in keys {
            h.input_mut().events.extend(keystrokes(&[*key]));
            h.step();
        }
    };
    typed(
        &mut h,
        &[(Key::T, "t"), (Key::R, "r"), (Key::I, "i"), (Key::B, "b")],
    );
    let baseline = h.state().settings.ig_baseline;
    assert!(
        !h.state().current.as_ref().unwrap().view.invert,
        "`i` waits"
    );
    h.state_mut().notes.ids.insert(path.clone(), id.clone());
    h.step();
    typed(&mut h, &[(Key::S, "s")]);
    h.run_ok();
    let app = h.state();
    assert_eq!(app.notes.draft.as_ref().unwrap().note.text, "ribs");
    assert!(!app.current.as_ref().unwrap().view.invert);
    assert_eq!(app.settings.ig_baseline, baseline);

    // Esc: the letters typed before it are dropped and the keys are shortcuts again.
    h.state_mut().notes.ids.remove(&path);
    h.step();
    typed(
        &mut h,
        &[
            (Key::T, "t"),
            (Key::X, "x"),
            (Key::Escape, ""),
            (Key::I, "i"),
        ],
    );
    assert!(
        h.state().current.as_ref().unwrap().view.invert,
        "`i` inverts again"
    );
    h.state_mut().notes.ids.insert(path.clone(), id.clone());
    h.run_ok();
    assert_eq!(h.state().notes.draft.as_ref().unwrap().note.text, "ribs");

    // A note that never comes: after the wait, one line says what was not kept.
    h.state_mut().notes.ids.remove(&path);
    h.step();
    typed(&mut h, &[(Key::T, "t"), (Key::O, "o"), (Key::K, "k")]);
    h.state_mut().current.as_mut().unwrap().error = Some("cannot open it".into());
    h.step();
    let status = h.state().status.as_ref().map(|s| s.text.clone());
    assert_eq!(
        status.as_deref(),
        Some("the review note was not open yet; 2 typed characters were not kept")
    );
}

/// Esc leaves the comment box, and only that. egui drops the focus at the start of a frame
/// that holds Esc, before the box reads the frame's letters: typing "… lower zone" and Esc
/// fast enough to share a frame lost "zone" to the shortcuts (`z` 1:1, `n` the verdict
/// "disagree"), and the Esc itself then stopped the analysis under way and the analysis in
/// advance. Seen under Xvfb (the twenty-eighth session's unexplained focus loss).
#[test]
fn esc_leaving_the_comment_box_keeps_the_last_letters_and_the_analysis() {
    let (_fx, mut h) = folder_with_note_open("review-esc", 256);
    begin_comment(&mut h, "rib shadow, lower ");
    let zoom = h.state().current.as_ref().unwrap().view.transform;
    // One frame: "zone", Esc, then Y (agree) after it.
    h.input_mut().events.extend(keystrokes(&[
        (Key::Z, "z"),
        (Key::O, "o"),
        (Key::N, "n"),
        (Key::E, "e"),
        (Key::Escape, ""),
        (Key::Y, "y"),
    ]));
    let analysing = h.state().jobs.busy();
    h.step();
    h.step();
    // And in the frame right after `T`'s, before the box handles Esc itself.
    h.input_mut().events.extend(keystrokes(&[(Key::T, "t")]));
    h.step();
    h.input_mut().events.extend(keystrokes(&[
        (Key::O, "o"),
        (Key::K, "k"),
        (Key::Escape, ""),
    ]));
    h.step();
    h.step();
    let app = h.state();
    let draft = app.notes.draft.as_ref().unwrap();
    assert_eq!(draft.note.text, "rib shadow, lower zoneok");
    assert_eq!(
        draft.note.agreement,
        Some(Agreement::Agree),
        "Y after Esc is a shortcut"
    );
    assert_eq!(
        app.current.as_ref().unwrap().view.transform,
        zoom,
        "`z` is text"
    );
    assert!(!h
        .ctx
        .memory(|m| m.has_focus(egui::Id::unique("review-note-comment"))));
    assert!(analysing, "the analysis was under way at the Esc");
    assert!(app
        .status
        .as_ref()
        .is_none_or(|s| s.text != "analysis cancelled"));
    let ig = app.wanted_ig_or_default();
    let next = app.step_target(1).unwrap();
    let window = load_study(&next).unwrap().default_window;
    let next_key =
        cxr_viewer::ui::cache::AnalysisKey::new(next, &window, app.settings.mc_samples, 0);
    wait_until(
        &mut h,
        "the analysis finished, and the next study's in advance",
        |a| {
            a.current_entry().is_some_and(|e| e.ig.contains_key(&ig))
                && a.cache
                    .peek(&next_key)
                    .is_some_and(|e| e.ig.contains_key(&ig))
        },
    );

    // Any other field: its Esc leaves it and does nothing else (here: help stays open).
    h.key_press(Key::F1);
    h.step();
    assert!(h.state().show_help);
    h.get_by_role_and_label(Role::TextInput, "Reviewer").focus();
    h.step();
    h.step();
    let baseline = h.state().settings.ig_baseline;
    h.input_mut().events.extend([
        key_event(Key::A, true),
        egui::Event::Text("A".into()),
        key_event(Key::B, true),
        egui::Event::Text("B".into()),
        key_event(Key::Escape, true),
    ]);
    h.step();
    h.step();
    assert!(
        h.ctx.memory(|m| m.focused().is_none()),
        "Esc left the field"
    );
    assert_eq!(h.state().settings.reviewer, "AB", "its letters kept");
    assert_eq!(h.state().settings.ig_baseline, baseline, "`b` is text");
    assert!(h.state().show_help, "and did not also close the help");
    h.key_press(Key::Escape);
    h.step();
    assert!(!h.state().show_help, "the next Esc does");

    // "x", Esc and Down in one frame: the x is this study's, and Down then opens the next.
    let first = h.state().current.as_ref().unwrap().path.clone();
    let first_id = h.state().notes.ids[&first].clone();
    h.input_mut().events.extend([
        key_event(Key::T, true),
        egui::Event::Text("t".into()),
        key_event(Key::T, false),
    ]);
    h.step();
    h.input_mut().events.extend([
        key_event(Key::X, true),
        egui::Event::Text("x".into()),
        key_event(Key::X, false),
        key_event(Key::Escape, true),
        key_event(Key::ArrowDown, true),
        key_event(Key::ArrowDown, false),
    ]);
    h.step();
    h.step();
    wait_until(
        &mut h,
        "the next study, and the x saved on the first",
        |a| {
            a.current.as_ref().is_some_and(|c| c.path != first)
                && a.notes
                    .draft
                    .as_ref()
                    .is_some_and(|d| d.note.text.is_empty())
                && a.notes
                    .all()
                    .get(&first_id)
                    .is_some_and(|n| n.text == "rib shadow, lower zoneokx")
        },
    );
}

/// The labelled folder opened through the picker with `ig_steps` IG steps (many: the analysis
/// is still running while the test types), its first study and note on screen.
fn folder_with_note_open(name: &str, ig_steps: usize) -> (Fixture, Harness<'static, ViewerApp>) {
    let fx = labelled_folder();
    let db = temp_dir(name).join("notes.sqlite3");
    let picker = Arc::new(ScriptedPicker::opening(std::slice::from_ref(&fx.root)));
    let mut settings = fast_settings(&db);
    settings.ig_steps = ig_steps;
    let app = ViewerApp::new(settings, picker, tiny_model(), None);
    let mut h = harness(app);
    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "the first study on screen", |a| {
        a.current.as_ref().is_some_and(|c| c.study.is_some()) && a.notes.draft.is_some()
    });
    (fx, h)
}

/// `T`, then `text` typed into the comment box: a comment under way.
fn begin_comment(h: &mut Harness<'static, ViewerApp>, text: &str) {
    h.key_press(Key::T);
    h.step();
    h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
        .type_text(text);
    h.step();
}

/// One frame's input holding several keystrokes (each pressed, its text, released), as a frame
/// drawn slowly gathers them.
fn keystrokes(keys: &[(Key, &str)]) -> Vec<egui::Event> {
    let mut events = Vec::new();
    for &(key, text) in keys {
        events.push(key_event(key, true));
        if !text.is_empty() {
            events.push(egui::Event::Text(text.into()));
        }
        events.push(key_event(key, false));
    }
    events
}

fn key_event(key: Key, pressed: bool) -> egui::Event {
    egui::Event::Key {
        key,
        physical_key: Some(key),
        pressed,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    }
}

/// A note typed while the study's analysis is still arriving keeps every keystroke: the
/// results, the faithfulness check and the prediction the pane quotes change what is drawn
/// around the comment box, and that must not move its focus away. A guard: it passes on the code
/// before it too. (Under Xvfb, the box seemed to lose the focus mid-word, the rest of the typing
/// going to the shortcuts; it was the Esc typed right after the last word, sharing its frame:
/// see `esc_leaving_the_comment_box_keeps_the_last_letters_and_the_analysis`.)
#[test]
fn a_note_typed_while_the_analysis_arrives_keeps_every_keystroke() {
    let (_fx, mut h) = folder_with_note_open("review-typing", 64);
    let before_analysis = h.state().current_entry().is_none_or(|e| e.ig.is_empty());
    h.key_press(Key::T);
    h.step();
    let mut typed = String::new();
    for word in [
        "rib ", "shadow ", "over ", "the ", "right ", "lower ", "zone",
    ] {
        h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
            .type_text(word);
        typed.push_str(word);
        for _ in 0..3 {
            h.step();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    wait_until(&mut h, "analysed and checked", |a| {
        a.current_entry().is_some_and(|e| !e.ig.is_empty()) && a.trust.job.is_none()
    });
    for word in [", and ", "a zipper"] {
        h.get_by_role_and_label(Role::MultilineTextInput, "Comment")
            .type_text(word);
        typed.push_str(word);
        h.step();
    }
    h.run_ok();
    let draft = h.state().notes.draft.as_ref().unwrap();
    assert!(before_analysis, "typing began before the analysis was done");
    assert_eq!(draft.note.text, typed);
    assert_eq!(draft.note.agreement, None, "no keystroke became a verdict");
}

/// Tab typed right after the last word of the comment, in the same frame, moves on to the next
/// field, and what follows it goes there: the box read the whole frame, so "zone⇥A" wrote
/// "zoneA" into the comment and nothing into Reviewer.
#[test]
fn tab_leaving_the_comment_box_sends_what_follows_to_the_next_field() {
    let (_fx, mut h) = folder_with_note_open("review-tab", 256);
    begin_comment(&mut h, "rib shadow, lower ");
    // One frame: "zone", Tab, then "A" for the next field (Reviewer).
    h.input_mut().events.extend(keystrokes(&[
        (Key::Z, "z"),
        (Key::O, "o"),
        (Key::N, "n"),
        (Key::E, "e"),
        (Key::Tab, ""),
        (Key::A, "A"),
    ]));
    h.step();
    h.step();
    h.step();
    let app = h.state();
    let draft = app.notes.draft.as_ref().unwrap();
    assert_eq!(draft.note.text, "rib shadow, lower zone");
    assert!(!h
        .ctx
        .memory(|m| m.has_focus(egui::Id::unique("review-note-comment"))));
    assert_eq!(
        app.settings.reviewer, "A",
        "the letter after Tab goes to Reviewer"
    );
}

/// Going back up the list, the study Previous opens is the one analysed in advance: entered
/// from the list's end (or in a new session), each study up there waited for its IG, since only
/// the study below was analysed ahead.
#[test]
fn going_back_up_the_list_analyses_the_previous_study_in_advance() {
    use cxr_viewer::ui::cache::AnalysisKey;
    let fx = labelled_folder();
    let db = temp_dir("review-prefetch-back").join("notes.sqlite3");
    let mut h = open_folder_with(&db, &fx.root, &[], |mut app| {
        app.settings.prefetch_next = false;
        app
    });
    let order: Vec<PathBuf> = {
        let a = h.state();
        let r = a.review.as_ref().unwrap();
        r.visible(a.notes.all(), a.notes.revision())
            .into_iter()
            .map(|i| r.rows[i].path.clone())
            .collect()
    };
    assert!(
        order[..4]
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "jpeg")),
        "the four films first: {order:?}"
    );
    let ig = h.state().wanted_ig_or_default();
    // The last film, opened from the list: analysed in full, nothing ahead of it.
    h.state_mut().open(order[3].clone());
    wait_until(&mut h, "the last film analysed", |a| {
        a.current.as_ref().is_some_and(|c| c.path == order[3])
            && a.current_entry().is_some_and(|e| e.ig.contains_key(&ig))
            && !a.jobs.busy()
    });
    h.state_mut().settings.prefetch_next = true;
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().current.as_ref().unwrap().path, order[2]);
    let above = {
        let window = load_study(&order[1]).unwrap().default_window;
        AnalysisKey::new(order[1].clone(), &window, h.state().settings.mc_samples, 0)
    };
    wait_until(&mut h, "the film above analysed in advance", |a| {
        a.cache.peek(&above).is_some_and(|e| e.ig.contains_key(&ig))
    });
    h.key_press(Key::ArrowUp);
    h.step();
    assert_eq!(h.state().current.as_ref().unwrap().path, order[1]);
    assert!(
        h.state()
            .has_map(cxr_viewer::ui::settings::MapKind::IntegratedGradients),
        "complete at once"
    );
}

/// Files opened together (dropped, chosen in Open…, named on the command line) get a study list
/// of their own, as a folder does: the set's films only, under their common folder, labelled by
/// their class folders, predicted and counted, walked in the list's order; Rescan reads the same
/// files again, not the folder. Recent keeps the film the set opened on, not the folder
/// (reopening it would list everything in it) nor every film walked. Before, a set was walked
/// with no list at all.
#[test]
fn files_opened_together_get_a_study_list_of_their_own() {
    let fx = labelled_folder();
    let db = temp_dir("review-set").join("notes.sqlite3");
    let app = ViewerApp::new(
        fast_settings(&db),
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        None,
    );
    let mut h = harness(app);
    let set = [
        "PNEUMONIA/person122_virus_229.jpeg",
        "NORMAL/IM-0176-0001.jpeg",
        "unsorted/chest.dcm",
    ]
    .map(|r| fx.root.join(r));
    h.state_mut().open_dropped_files(set.to_vec());
    wait_until(&mut h, "the set predicted", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.rows.iter().all(|r| r.done()))
    });
    let review = h.state().review.as_ref().unwrap();
    assert_eq!(review.root, fx.root);
    let mut rows: Vec<(String, Option<Finding>)> = review
        .rows
        .iter()
        .map(|r| (r.relative.clone(), r.folder_truth))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("NORMAL/IM-0176-0001.jpeg".into(), Some(Finding::Negative)),
            (
                "PNEUMONIA/person122_virus_229.jpeg".into(),
                Some(Finding::Positive)
            ),
            ("unsorted/chest.dcm".into(), None),
        ]
    );
    let counts = review.counts(h.state().notes.all(), h.state().notes.revision());
    assert_eq!(counts.tp + counts.fp + counts.tn + counts.fn_, 2);
    assert_eq!(counts.unlabelled, 1);
    let in_list_order: Vec<PathBuf> = h
        .state()
        .review_visible()
        .into_iter()
        .map(|i| review.rows[i].path.clone())
        .collect();
    let scan = review.scan_id;
    assert_eq!(h.state().navigation(), in_list_order);
    assert_eq!(current_path(h.state()), Some(set[1].clone()));
    h.run_ok();
    h.get_by_label("3 files opened together");
    assert!(
        !h.state().settings.recent.contains(&fx.root),
        "{:?}",
        h.state().settings.recent
    );
    assert_eq!(h.state().settings.recent[0], set[1]);
    // Walking the set does not push each film into Recent (ten films would push everything
    // else out): the set stays remembered by the film it opened on.
    for _ in 0..2 {
        h.key_press(Key::ArrowDown);
        h.run_ok();
    }
    assert_ne!(current_path(h.state()), Some(set[1].clone()));
    let recent = &h.state().settings.recent;
    assert_eq!(recent[0], set[1]);
    assert!(
        !recent.contains(&set[0]) && !recent.contains(&set[2]),
        "{recent:?}"
    );

    // Rescan: the same three files, though the folder holds six.
    h.get_by_label("Rescan").click();
    wait_until(&mut h, "the set read again", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.scan_id != scan && r.listed && r.rows.iter().all(|r| r.done()))
    });
    assert_eq!(h.state().review.as_ref().unwrap().rows.len(), 3);
    h.get_by_label("3 files opened together");

    // Recent keeps the set as a set: after the whole folder, it reopens the same three files
    // with their own list (before, only the first film was kept).
    let mut sorted = set.to_vec();
    sorted.sort();
    assert_eq!(h.state().settings.recent_sets, [sorted.clone()]);
    h.state_mut().open_folder(&fx.root);
    wait_until(&mut h, "the whole folder", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.files.is_none() && r.rows.len() > 3)
    });
    let reopen = |h: &mut Harness<'static, ViewerApp>| {
        h.get_by_label("Recent").click();
        h.run_ok();
        let label = format!(
            "3 files in {}/",
            fx.root.file_name().unwrap().to_string_lossy()
        );
        h.get_by_label(&label).click();
        h.run_ok();
    };
    reopen(&mut h);
    wait_until(&mut h, "the set reopened", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.files.is_some())
    });
    let mut listed: Vec<PathBuf> = h
        .state()
        .review
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .map(|r| r.path.clone())
        .collect();
    listed.sort();
    assert_eq!(listed, sorted);
    h.get_by_label("3 files opened together");
    assert_eq!(
        h.state().settings.recent_sets.len(),
        1,
        "the same set, once"
    );

    // A file of the set deleted since: the rest reopen, and the missing one is named.
    std::fs::remove_file(&set[2]).unwrap();
    h.state_mut().open_folder(&fx.root);
    wait_until(&mut h, "the whole folder again", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.files.is_none())
    });
    reopen(&mut h);
    wait_until(&mut h, "the set reopened without the missing file", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.files.is_some() && r.rows.len() == 2)
    });
    let status = &h.state().status.as_ref().unwrap().text;
    assert!(status.contains("not found: chest.dcm"), "{status}");
    // Still the one set as it was kept, not also the two files found.
    assert_eq!(h.state().settings.recent_sets.len(), 1);
    assert_eq!(h.state().settings.recent_sets[0].len(), 3);
}

/// *Import notes…* with an RSNA labels file while a folder is open: the films it names get its
/// boxes and ground truth, read off the UI thread, and the list, the confusion matrix and the note
/// on screen follow at once. Before, the viewer refused the file ("not a cxr-viewer notes
/// export"). Without a folder open it says what to do first.
#[test]
fn an_rsna_labels_file_imported_in_the_viewer_labels_the_open_folder() {
    let root = temp_dir("rsna-labels-folder");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(
        repo("assets/samples/person45_bacteria_221.jpeg"),
        root.join("p1.jpeg"),
    )
    .unwrap();
    std::fs::copy(
        repo("assets/samples/NORMAL2-IM-0912-0001.jpeg"),
        root.join("n1.jpeg"),
    )
    .unwrap();
    let labels = temp_dir("rsna-labels-file").join("labels.csv");
    std::fs::create_dir_all(labels.parent().unwrap()).unwrap();
    std::fs::write(
        &labels,
        "patientId,x,y,width,height,Target,class\n\
         p1,100,120,300,200,1,Lung Opacity\n\
         n1,,,,,0,Normal\n\
         elsewhere,1,1,1,1,1,Lung Opacity\n",
    )
    .unwrap();
    let db = temp_dir("rsna-labels-db").join("notes.sqlite3");

    // No folder open yet: one line saying what to do, and nothing written.
    let exported = labels.with_file_name("exported.csv");
    let picker = Arc::new(
        ScriptedPicker::opening(&[labels.clone(), root.clone(), labels.clone()])
            .saving(std::slice::from_ref(&exported)),
    );
    // A reviewer's name is set: a note only opened must not take it.
    let settings = cxr_viewer::ui::settings::Settings {
        reviewer: "A. Reviewer".into(),
        ..fast_settings(&db)
    };
    let mut h = harness(ViewerApp::new(settings, picker, tiny_model(), None));
    wait_until(&mut h, "the notes database", |a| {
        matches!(a.notes.db, NotesDb::Ready(_))
    });
    click_in_view(&mut h, "Import notes…");
    wait_until(&mut h, "the refusal", |a| {
        a.status.as_ref().is_some_and(|s| s.is_error)
    });
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        "labels.csv is an RSNA labels file: open the folder of the films it names, then import it"
    );

    h.get_by_label("Open folder…").click();
    wait_until(&mut h, "every study predicted", |a| {
        a.review
            .as_ref()
            .is_some_and(|r| r.listed && r.rows.len() == 2 && r.rows.iter().all(|r| r.done()))
    });
    h.get_by_label("Unreviewed (2)");
    click_in_view(&mut h, "Import notes…");
    wait_until(&mut h, "the labels", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.starts_with("imported labels.csv"))
    });
    let status = h.state().status.clone().unwrap();
    assert!(!status.is_error, "{}", status.text);
    assert_eq!(
        status.text,
        "imported labels.csv (RSNA labels): films 2, new 2, updated 0, unchanged 0 · \
         labelled names with no film in this folder: 1"
    );
    // The list's truth follows the labels: p1 positive, n1 negative.
    let review = h.state().review.as_ref().unwrap();
    let truth_of = |name: &str| {
        let row = review.rows.iter().find(|r| r.relative == name).unwrap();
        let note = row.id.as_ref().and_then(|id| h.state().notes.all().get(id));
        row.truth(note)
    };
    assert_eq!(truth_of("p1.jpeg"), Some(Finding::Positive));
    assert_eq!(truth_of("n1.jpeg"), Some(Finding::Negative));
    // The note on screen has the label's box, and the database has both notes.
    h.get_by_label("p1.jpeg").click();
    wait_until(&mut h, "p1's note", |a| {
        a.notes
            .draft
            .as_ref()
            .is_some_and(|d| d.path.ends_with("p1.jpeg") && d.note.boxes.len() == 1)
    });
    // The schematic lists the zones the label's box overlaps (Zones vs maps counts them), where
    // it said "none" before.
    let size = {
        let s = load_study(&root.join("p1.jpeg")).unwrap();
        (s.width, s.height)
    };
    let label_box = cxr_viewer::notes::ImageBox::new(100.0, 120.0, 300.0, 200.0);
    let zones: Vec<&str> = cxr_viewer::explain::localisation::zones_of_box(&label_box, size)
        .into_iter()
        .map(|token| Zone::parse(token).unwrap().label())
        .collect();
    assert!(!zones.is_empty());
    h.run_ok();
    h.get_by_label(&format!("from boxes: {}", zones.join(", ")));

    // Opened, not edited: once its maps are on screen the note records their top zones, so
    // Zones vs maps counts it (before, an imported note counted nothing until the reviewer edited
    // it). The note's reviewer stays as the import left it; n1, which implicates no zone, is not
    // written again.
    let store = NotesStore::open(&db).unwrap();
    let stored = |name: &str| {
        let notes = store.list(Filter::All).unwrap();
        notes
            .into_iter()
            .find(|n| n.file_name.as_deref() == Some(name))
            .unwrap()
    };
    let n1_before = stored("n1.jpeg");
    let gradcam_top = |n: &cxr_viewer::notes::Note| {
        n.map_top_zones
            .get(&cxr_viewer::notes::Saliency::GradCam)
            .copied()
    };
    assert_eq!(gradcam_top(&stored("p1.jpeg")), None);
    wait_until(&mut h, "p1's Grad-CAM top zone saved", |_| {
        gradcam_top(&stored("p1.jpeg")).is_some()
    });
    let p1_note = stored("p1.jpeg");
    assert_eq!(p1_note.reviewer, "");
    assert_eq!(stored("n1.jpeg"), n1_before);
    let table = cxr_viewer::notes::zone_agreement::zone_agreement([&p1_note, &n1_before]);
    let gradcam_row = table.iter().find(|r| r.map == "gradcam").unwrap();
    assert_eq!(gradcam_row.studies, 1);
    click_in_view(&mut h, "Zones vs maps");
    let cells: Vec<String> = table
        .iter()
        .map(|r| format!("{} of {}", r.hits, r.studies))
        .collect();
    for cell in &cells {
        let want = cells.iter().filter(|c| *c == cell).count();
        assert_eq!(h.query_all_by_label(cell).count(), want, "{cell}");
    }

    // And back out as RSNA labels: the boxes and the negative, nothing else.
    click_in_view(&mut h, "as RSNA labels");
    h.run_ok();
    assert!(h.state().export_rsna_labels);
    click_in_view(&mut h, "Export notes…");
    wait_until(&mut h, "the labels export", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.starts_with("exported"))
    });
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        format!(
            "exported the boxes of 2 notes as RSNA labels to {}",
            exported.display()
        )
    );
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        "patientId,x,y,width,height,Target\nn1,,,,,0\np1,100,120,300,200,1\n"
    );
    drop(h);
    let store = NotesStore::open(&db).unwrap();
    let notes = store.list(Filter::All).unwrap();
    assert_eq!(notes.len(), 2);
    let p1 = notes
        .iter()
        .find(|n| n.file_name.as_deref() == Some("p1.jpeg"))
        .unwrap();
    assert_eq!(
        p1.boxes,
        [cxr_viewer::notes::ImageBox::new(100.0, 120.0, 300.0, 200.0)]
    );
    assert_eq!(p1.ground_truth, Some(Finding::Positive));
    assert!(p1.image_size.is_some());
}

/// A folder opened again (Recent, Open folder…, the command line) resumes at the study that was
/// on screen when it was left: a reviewer back after a break goes on from there (it opened on
/// the first study every time). A study no longer there gives the top row, as before.
#[test]
fn a_folder_opened_again_resumes_where_the_reviewer_left_it() {
    let fx = labelled_folder();
    let db = temp_dir("review-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &fx.root, &[]);
    let list = h.state().navigation();
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[0]));
    for _ in 0..2 {
        h.key_press(Key::ArrowDown);
        h.run_ok();
    }
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[2]));
    // As the settings file holds them for the next session.
    let settings = h.state().settings.clone();
    drop(h);
    let reopen = |settings: &cxr_viewer::ui::settings::Settings| {
        let settings = settings.clone();
        open_folder_with(&db, &fx.root, &[], move |mut app| {
            app.settings = settings;
            app
        })
    };
    let h = reopen(&settings);
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[2]));
    drop(h);

    // Moved away since: the top row.
    std::fs::remove_file(&list[2]).unwrap();
    let h = reopen(&settings);
    assert_eq!(current_path(h.state()).as_ref(), Some(&list[0]));
}

/// Resumed far down a long folder, the study list shows the study it resumed at, centred: in the
/// window the list stayed at its top, with the row on screen (the 187th of 400) out of view and
/// nothing marked, and here (where the animated scroll did arrive) it was left at the list's
/// bottom edge. A row clicked in view stays where it is.
#[test]
fn a_resumed_study_is_in_view_in_the_list() {
    let root = temp_dir("review-long-folder");
    let film = repo("tests/fixtures/raster/rgb8.png");
    let names: Vec<String> = (0..60).map(|i| format!("film_{i:03}.png")).collect();
    for name in &names {
        std::fs::copy(&film, root.join(name)).unwrap();
    }
    let db = temp_dir("review-db").join("notes.sqlite3");
    let mut h = open_folder(&db, &root, &[]);
    // A click on a row in view opens it where it is: the list does not move under the pointer.
    // (The last but one row laid out: whole, near the list's bottom edge.)
    let rows: Vec<(String, egui::Rect)> = names
        .iter()
        .filter_map(|n| h.query_by_label(n).map(|r| (n.clone(), r.rect())))
        .collect();
    assert!(
        rows.len() > 10 && rows.len() < 50,
        "{} rows laid out",
        rows.len()
    );
    let clicked = rows[rows.len() - 2].clone();
    h.get_by_label(&clicked.0).click();
    // Until the film has loaded: before, the header above it is the bare file name, a second
    // label of that name (the query below then failed, now and then, on a busy machine).
    let opened = root.join(&clicked.0);
    wait_until(&mut h, "the clicked film", |a| {
        a.current
            .as_ref()
            .is_some_and(|c| c.path == opened && c.study.is_some())
    });
    assert_eq!(
        h.get_by_label(&clicked.0).rect(),
        clicked.1,
        "the list moved"
    );
    h.state_mut().open(root.join(&names[50]));
    h.run_ok();
    let settings = h.state().settings.clone();
    drop(h);
    let mut h = open_folder_with(&db, &root, &[], move |mut app| {
        app.settings = settings;
        app
    });
    assert_eq!(current_path(h.state()), Some(root.join(&names[50])));
    for _ in 0..4 {
        h.step();
    }
    // In view with its neighbours on both sides: centred, not left at the list's edge.
    let bottom = h
        .get_by_label("Research use only — not for diagnosis")
        .rect()
        .min
        .y;
    for name in &names[47..=53] {
        let row = h
            .query_by_label(name)
            .map(|n| n.rect())
            .unwrap_or_else(|| panic!("{name} is not in view"));
        assert!(
            row.max.y <= bottom,
            "{name} at {row:?}, status bar at {bottom}"
        );
    }
}
