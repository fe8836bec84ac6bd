//! The viewer driven through its real widgets (egui_kittest, AccessKit tree): no display, no GPU.
//! The file dialog is replaced by a scripted picker; the model is the tiny reference fixture, so
//! a whole analysis including Integrated Gradients takes well under a second.

// Test helpers outside #[test] functions may panic too: a failed lock or fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cxr_viewer::ui::app::{EngineState, ViewerApp};
use cxr_viewer::ui::settings::{BaselineChoice, MapKind, Settings};
use egui::{Key, Modifiers};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use ui_support::{
    analysed, click_in_view, current_path, harness, repo, temp_dir, tiny_model, wait_until,
    ScriptedPicker,
};

mod ui_support;

fn sample() -> PathBuf {
    repo("assets/samples/person45_bacteria_221.jpeg")
}

fn other_sample() -> PathBuf {
    repo("assets/samples/NORMAL2-IM-0912-0001.jpeg")
}

/// Few MC samples and IG steps; notes go to a scratch database, never the user's own.
fn fast_settings() -> Settings {
    ui_support::fast_settings(&temp_dir("ui-notes").join("notes.sqlite3"))
}

/// The viewer on `file` (or on nothing), no dialogs answered.
fn viewer(model: PathBuf, file: Option<PathBuf>) -> Harness<'static, ViewerApp> {
    let app = ViewerApp::new(
        fast_settings(),
        Arc::new(ScriptedPicker::default()),
        model,
        file,
    );
    harness(app)
}

fn image_shown(app: &ViewerApp) -> bool {
    app.current.as_ref().is_some_and(|c| c.study.is_some())
}

#[test]
fn open_through_the_picker_shows_results_progressively() {
    let picker = Arc::new(ScriptedPicker::opening(&[sample()]));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), None);
    let mut h = harness(app);
    h.get_by_label("Research use only — not for diagnosis")
        .hover();
    h.get_by_label("Open…").click();
    wait_until(&mut h, "the image", image_shown);
    assert_eq!(current_path(h.state()), Some(sample()));
    wait_until(&mut h, "the full analysis", analysed);

    let label = {
        let entry = h.state().current_entry().unwrap();
        entry
            .prepared
            .as_ref()
            .unwrap()
            .prediction
            .label
            .to_uppercase()
    };
    h.get_by_label(&label);
    h.get_by_label_contains("MC dropout (5 samples)");
    h.get_by_label(&format!("Zones — Grad-CAM for {label}"));
    h.get_by_label("R upper");
    h.get_by_label_contains("completeness gap");
    h.get_by_label_contains("model tiny-resnet-fixture · sha256");
    // The recent list remembers what was opened, and not a path that is not there (a typo on
    // the command line took the top of the list, shown disabled, and pushed a folder out).
    assert_eq!(h.state().settings.recent.first(), Some(&sample()));
    h.state_mut()
        .open(temp_dir("ui-recent-typo").join("no-such-film.png"));
    h.run_ok();
    assert_eq!(h.state().settings.recent, [sample()]);
    h.state_mut().open(sample());
    wait_until(&mut h, "the sample again", image_shown);

    // A remembered file that is gone is listed but cannot be picked; the list can be cleared.
    let gone = temp_dir("ui-recent-gone").join("gone.png");
    h.state_mut().settings.recent.push(gone);
    h.get_by_label("Recent").click();
    h.run_ok();
    assert!(h.get_by_label("gone.png").accesskit_node().is_disabled());
    assert!(!h
        .get_by_label("person45_bacteria_221.jpeg")
        .accesskit_node()
        .is_disabled());
    h.get_by_label("gone.png").click();
    h.run_ok();
    assert_eq!(current_path(h.state()), Some(sample()), "nothing opened");
    if h.query_by_label("Clear list").is_none() {
        h.get_by_label("Recent").click();
        h.run_ok();
    }
    h.get_by_label("Clear list").click();
    h.run_ok();
    assert!(h.state().settings.recent.is_empty());
}

#[test]
fn overlays_switch_and_alpha_follows_slider_and_keys() {
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the full analysis", analysed);
    assert_eq!(h.state().map, MapKind::GradCam, "default overlay");

    h.get_by_label("Uncertainty (std)").click();
    h.run_ok();
    assert_eq!(h.state().map, MapKind::Uncertainty);
    let label = h
        .state()
        .current_entry()
        .unwrap()
        .prepared
        .as_ref()
        .unwrap()
        .prediction
        .label
        .clone();
    h.get_by_label(&format!("Zones — Uncertainty (std) for {label}"));

    h.get_by_label("Integrated Gradients").click();
    h.run_ok();
    assert_eq!(h.state().map, MapKind::IntegratedGradients);
    assert!(h.state().map_of(MapKind::IntegratedGradients).is_some());

    h.get_by_role_and_label(egui::accesskit::Role::Slider, "Opacity")
        .set_value_accesskit(0.8);
    h.run_ok();
    assert!((h.state().settings.alpha - 0.8).abs() < 1e-6);

    h.key_press(Key::CloseBracket);
    h.run_ok();
    assert!((h.state().settings.alpha - 0.85).abs() < 1e-6);
    h.key_press(Key::OpenBracket);
    h.key_press(Key::OpenBracket);
    h.run_ok();
    assert!((h.state().settings.alpha - 0.75).abs() < 1e-6);

    // M cycles IG → none → Grad-CAM; H toggles visibility.
    h.key_press(Key::M);
    h.run_ok();
    assert_eq!(h.state().map, MapKind::None);
    h.key_press(Key::M);
    h.run_ok();
    assert_eq!(h.state().map, MapKind::GradCam);
    h.key_press(Key::H);
    h.run_ok();
    assert!(!h.state().overlay_visible);
    h.key_press(Key::H);

    // C puts IG next to Grad-CAM (same view); C again goes back to one pane.
    h.key_press(Key::C);
    h.run_ok();
    assert_eq!(h.state().compare, Some(MapKind::IntegratedGradients));
    h.key_press(Key::C);
    h.run_ok();
    assert_eq!(h.state().compare, None);
}

#[test]
fn changing_the_ig_baseline_reruns_only_ig_and_keeps_both() {
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the full analysis", analysed);
    let prepared_before = h.state().current_entry().unwrap().prepared.clone().unwrap();
    click_in_view(&mut h, "white");
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::White);
    wait_until(&mut h, "IG with a white baseline", analysed);
    let entry = h.state().current_entry().unwrap();
    assert_eq!(entry.ig.len(), 2, "black and white results are both cached");
    assert!(
        Arc::ptr_eq(entry.prepared.as_ref().unwrap(), &prepared_before),
        "the forward pass was reused, not recomputed"
    );
    h.get_by_label_contains("white baseline: completeness gap");
}

#[test]
fn switching_images_cancels_stale_work_and_going_back_is_instant() {
    // Many IG steps so that the first image is still being analysed when we move on.
    let settings = Settings {
        ig_steps: 4096,
        ..fast_settings()
    };
    let picker = Arc::new(ScriptedPicker::opening(&[
        sample(),
        other_sample(),
        sample(),
    ]));
    let app = ViewerApp::new(settings, picker, tiny_model(), None);
    let mut h = harness(app);
    h.get_by_label("Open…").click();
    wait_until(&mut h, "Grad-CAM of the first image", |a| {
        a.current_entry().is_some_and(|e| e.gradcam.is_some())
    });
    let first_cancel = h.state().jobs.running[0].cancel.clone();
    assert!(!first_cancel.load(Ordering::Relaxed));

    h.get_by_label("Open…").click();
    wait_until(&mut h, "the second image", |a| {
        current_path(a) == Some(other_sample())
    });
    assert!(
        first_cancel.load(Ordering::Relaxed),
        "opening another image must cancel the first one's analysis"
    );
    wait_until(&mut h, "Grad-CAM of the second image", |a| {
        a.current_entry().is_some_and(|e| e.gradcam.is_some())
    });

    // Back to the first: the film and its partial results come from the caches at once.
    h.get_by_label("Open…").click();
    wait_until(&mut h, "the first image again", |a| {
        current_path(a) == Some(sample())
    });
    let entry = h.state().current_entry().expect("cached analysis");
    assert!(entry.gradcam.is_some() && entry.prepared.is_some());

    // Cancel by hand: it stays stopped until resumed.
    wait_until(&mut h, "a running job", |a| {
        a.current_key()
            .is_some_and(|k| a.jobs.active_for(&k).is_some())
    });
    h.get_by_label("Cancel").click();
    wait_until(&mut h, "the cancelled job to stop", |a| !a.jobs.busy());
    h.get_by_label("Resume analysis");
    assert!(h.state().current_entry().unwrap().user_cancelled);
}

#[test]
fn a_missing_model_still_shows_the_image_and_one_clear_error() {
    let mut h = viewer(
        repo("tests/fixtures/does-not-exist/model.json"),
        Some(sample()),
    );
    wait_until(&mut h, "the model error", |a| {
        matches!(a.engine, EngineState::Failed(_))
    });
    wait_until(&mut h, "the image", image_shown);
    let node = h.get_by_label_contains("Model unavailable: cannot load the model");
    let text = node.accesskit_node().label().unwrap_or_default();
    assert!(!text.contains('\n'), "one line: {text}");
}

/// Waits until the current file failed to load; the status line, which must be an error.
fn load_error_status(h: &mut Harness<'_, ViewerApp>) -> String {
    wait_until(h, "the load error", |a| {
        a.current.as_ref().is_some_and(|c| c.error.is_some())
    });
    let status = h.state().status.clone().unwrap();
    assert!(status.is_error, "{}", status.text);
    status.text
}

#[test]
fn an_unreadable_file_gives_a_readable_message() {
    let picker = Arc::new(ScriptedPicker::opening(&[repo(
        "tests/fixtures/dicom/garbage.dcm",
    )]));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), None);
    let mut h = harness(app);
    h.get_by_label("Open…").click();
    let status = load_error_status(&mut h);
    assert!(status.starts_with("cannot open garbage.dcm"), "{status}");
    h.get_all_by_label_contains("cannot open garbage.dcm")
        .next()
        .unwrap();
}

/// The titles the viewer asked the window to take in the frame `h` last ran.
fn titles_sent(h: &Harness<'_, ViewerApp>) -> Vec<String> {
    h.output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .map(|v| {
            v.commands
                .iter()
                .filter_map(|c| match c {
                    egui::ViewportCommand::Title(t) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The window's title names the film on screen, first, and follows Next: every viewer window
/// read "cxr-viewer — research use only, not for diagnosis" in the task bar. A DICOM's title is
/// its file name, never the patient's name (hidden until revealed, and not then either).
#[test]
fn the_window_title_names_the_film_on_screen() {
    let mut h = viewer(tiny_model(), Some(sample()));
    let suffix = " — cxr-viewer — research use only, not for diagnosis";
    // (Sent in the harness's first frames.)
    h.step();
    assert_eq!(
        h.state().window_title(),
        format!("person45_bacteria_221.jpeg{suffix}")
    );
    h.state_mut().open(other_sample());
    h.step();
    assert_eq!(
        titles_sent(&h),
        [format!("NORMAL2-IM-0912-0001.jpeg{suffix}")]
    );
    // Unchanged, not sent again.
    h.step();
    assert!(titles_sent(&h).is_empty());

    let dicom = repo("tests/fixtures/dicom/no_preamble_16x16.dcm");
    h.state_mut().open(dicom);
    h.step();
    let title = titles_sent(&h).join("");
    assert_eq!(title, format!("no_preamble_16x16.dcm{suffix}"));
    wait_until(&mut h, "the DICOM", image_shown);
    h.state_mut().reveal_identifiers = true;
    for _ in 0..3 {
        h.step();
        assert!(titles_sent(&h).iter().all(|t| !t.contains("Archibald")));
    }
}

#[test]
fn dicom_identifiers_stay_hidden_until_revealed() {
    let dicom = repo("tests/fixtures/dicom/no_preamble_16x16.dcm");
    let mut h = viewer(tiny_model(), Some(dicom));
    // Let the background analysis finish first: results arriving mid-test change the layout and
    // the focus, which made the search-box step flaky. The 16 x 16 film is out of scope: no IG
    // until "Show anyway".
    wait_until(&mut h, "the analysis of the DICOM", |app| {
        app.current_entry()
            .is_some_and(|e| e.gradcam.is_some() && e.uncertainty.is_some())
            && !app.jobs.busy()
            && app.trust.job.is_none()
    });
    click_in_view(&mut h, "DICOM tags");
    assert!(
        h.query_by_label_contains("Archibald").is_none(),
        "name shown before reveal"
    );
    h.get_by_label("Patient: hidden");
    assert!(h.query_all_by_label("(hidden)").count() >= 1);

    click_in_view(&mut h, "Reveal");
    assert!(h.query_all_by_label_contains("Archibald").count() >= 1);

    // The search box filters the table.
    click_in_view(&mut h, "Hide");
    let search = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Search");
    search.focus();
    search.type_text("Modality");
    h.run_ok();
    h.run_ok();
    h.get_by_label("Modality");
    assert!(h.query_by_label("SOPInstanceUID").is_none());
}

#[test]
fn export_png_and_report_without_identifiers() {
    let dir = temp_dir("ui-export");
    let png = dir.join("view.png");
    let json = dir.join("report.json");
    let page = dir.join("page.html");
    let named = dir.join("named.HTM");
    let picker = Arc::new(ScriptedPicker::default().saving(&[
        png.clone(),
        json.clone(),
        page.clone(),
        named.clone(),
    ]));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), Some(sample()));
    let mut h = harness(app);
    wait_until(&mut h, "the full analysis", analysed);

    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the PNG", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("view.png"))
    });
    let img = image::open(&png).unwrap();
    let study = h.state().current.as_ref().unwrap().study.clone().unwrap();
    assert_eq!(
        (img.width() as usize, img.height() as usize),
        (study.width, study.height)
    );

    // The map checks run after the maps; the report then carries them and their time.
    wait_until(&mut h, "the faithfulness curves", |a| {
        cxr_viewer::ui::trust_state::current_trust(a)
            .faithfulness
            .is_some()
    });
    h.get_by_label("Export report…").click();
    wait_until(&mut h, "the report", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("report.json"))
    });
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report.get("prediction").is_some());
    assert!(report["ig"]["delta"].is_number());
    assert!(report.get("identifiers").is_none_or(|v| v.is_null()));
    // The stages' times and their sum (total and scope were 0 from the viewer).
    let t = &report["timings_ms"];
    let stage = |k: &str| t[k].as_f64().unwrap();
    assert!(
        stage("scope") > 0.0 && stage("forward") > 0.0 && stage("ig") > 0.0,
        "{t}"
    );
    let sum: f64 = [
        "load",
        "preprocess",
        "forward",
        "scope",
        "gradcam",
        "uncertainty",
        "ig",
        "faithfulness",
        "sanity",
    ]
    .iter()
    .map(|k| stage(k))
    .sum();
    assert!((stage("total") - sum).abs() < 1e-6 && sum > 0.0, "{t}");
    assert!(
        report["faithfulness"].is_object() && stage("faithfulness") > 0.0,
        "{t}"
    );

    // The same report as a page to read: Ctrl+Shift+E, or any export named .html / .htm.
    let label = report["prediction"]["label"].as_str().unwrap().to_string();
    let is_page = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        text.starts_with("<!DOCTYPE html>")
            && text.contains(&format!("<p class=\"label {label}\">{label}</p>"))
            && text.matches("data:image/jpeg;base64,").count() == 4
    };
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::E);
    h.run_ok();
    wait_until(&mut h, "the page", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("page.html"))
    });
    assert!(is_page(&page));
    h.get_by_label("Export report…").click();
    wait_until(&mut h, "the page by its name", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("named.HTM"))
    });
    assert!(is_page(&named));

    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl+S to `path` (the picker's next answer): the PNG and its marker.
fn exported_view(h: &mut Harness<'static, ViewerApp>, path: &Path) -> (image::RgbImage, String) {
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    let name = path.display().to_string();
    wait_until(h, "the export", |app| {
        app.status.as_ref().is_some_and(|s| s.text.contains(&name))
    });
    (
        image::open(path).unwrap().to_rgb8(),
        cxr_viewer::io::viewer_export::marker(path).unwrap(),
    )
}

/// The reviewer's opacity boxes, drawn on the canvas whatever the map, are in the exported PNG
/// too, and its marker says so: the export had the film and the map only.
#[test]
fn the_exported_view_outlines_the_reviewers_boxes() {
    use cxr_viewer::explain::localisation::ImageBox;
    let dir = temp_dir("ui-export-boxes");
    let (plain, boxed) = (dir.join("plain.png"), dir.join("boxed.png"));
    let picker = Arc::new(ScriptedPicker::default().saving(&[plain.clone(), boxed.clone()]));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), Some(sample()));
    let mut h = harness(app);
    wait_until(&mut h, "the full analysis", analysed);
    let (without, what) = exported_view(&mut h, &plain);
    assert!(!what.contains("box"), "{what}");
    let study = h.state().current.as_ref().unwrap().study.clone().unwrap();
    let (w, h_) = (study.width as f32, study.height as f32);
    let b = ImageBox::new(0.25 * w, 0.3 * h_, 0.3 * w, 0.25 * h_);
    h.state_mut().set_note_boxes(vec![b]);
    assert_eq!(h.state().note_boxes(), &[b]);
    let (with, what) = exported_view(&mut h, &boxed);
    assert!(what.ends_with(", 1 opacity box outlined"), "{what}");
    let cyan = |p: &image::Rgb<u8>| p[0] < 120 && p[1] > 180 && p[2] > 220;
    let mid_y = (b.y + 0.5 * b.height) as u32;
    let mid_x = (b.x + 0.5 * b.width) as u32;
    for (x, y) in [
        (b.x as u32, mid_y),
        ((b.x + b.width) as u32, mid_y),
        (mid_x, b.y as u32),
        (mid_x, (b.y + b.height) as u32),
    ] {
        assert!(cyan(with.get_pixel(x, y)), "edge at ({x}, {y})");
        assert!(!cyan(without.get_pixel(x, y)), "no box at ({x}, {y})");
    }
    // Inside the box the view is as exported without it.
    assert_eq!(
        with.get_pixel(mid_x, mid_y),
        without.get_pixel(mid_x, mid_y)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// In compare mode the exported view is the two panes side by side, as on screen, and its
/// marker says what each shows; it had the first pane's map only.
#[test]
fn the_exported_view_in_compare_mode_has_both_panes() {
    let dir = temp_dir("ui-export-compare");
    let (single, both) = (dir.join("single.png"), dir.join("both.png"));
    let picker = Arc::new(ScriptedPicker::default().saving(&[single.clone(), both.clone()]));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), Some(sample()));
    let mut h = harness(app);
    wait_until(&mut h, "the full analysis", analysed);
    assert_eq!(h.state().map, MapKind::GradCam);
    let (gradcam, _) = exported_view(&mut h, &single);
    h.key_press(Key::C);
    h.run_ok();
    assert_eq!(h.state().compare, Some(MapKind::IntegratedGradients));
    let (pair, what) = exported_view(&mut h, &both);
    assert!(
        what.starts_with("side by side: film with Grad-CAM overlay")
            && what.contains(" | film with Integrated Gradients overlay from the black baseline"),
        "{what}"
    );
    let (w, height) = gradcam.dimensions();
    assert_eq!(pair.height(), height);
    assert!(
        pair.width() > 2 * w,
        "{} for two panes of {w}",
        pair.width()
    );
    // The left pane is the Grad-CAM view; the right one differs from it (the IG map).
    let right_x = pair.width() - w;
    let mut right_differs = false;
    for y in (0..height).step_by(7) {
        for x in (0..w).step_by(7) {
            assert_eq!(pair.get_pixel(x, y), gradcam.get_pixel(x, y), "({x}, {y})");
            right_differs |= pair.get_pixel(right_x + x, y) != gradcam.get_pixel(x, y);
        }
    }
    assert!(right_differs, "the right pane is the Grad-CAM view again");
    let _ = std::fs::remove_dir_all(&dir);
}

fn pngs_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    found.sort();
    found
}

/// The name the export dialog filled in for the current view's PNG.
fn suggested_png(h: &Harness<'static, ViewerApp>) -> String {
    h.get_by(|n| {
        n.role() == egui::accesskit::Role::TextInput
            && n.value().is_some_and(|v| v.ends_with("_gradcam.png"))
    })
    .value()
    .unwrap()
}

/// With no xdg-desktop-portal and no zenity, rfd answers at once with no path, as for a
/// cancel: Export and Open looked dead (then only said so). The viewer asks with its own
/// dialog instead, from that moment on.
#[test]
fn own_file_dialog_when_the_system_shows_none() {
    use egui::accesskit::Role;
    let dir = temp_dir("ui-own-dialog");
    let first = dir.join("first.png");
    // The system dialog answers once, then never again.
    let picker = Arc::new(ScriptedPicker::default().saving(std::slice::from_ref(&first)));
    let app = ViewerApp::new(fast_settings(), picker, tiny_model(), Some(sample()));
    let mut h = harness(app);
    wait_until(&mut h, "the full analysis", analysed);
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the first PNG", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("first.png"))
    });

    // No answer: the viewer's own dialog, in the folder saved to last, the export's name
    // filled in.
    h.get_by_label("Export PNG…").click();
    wait_until(&mut h, "the viewer's own dialog", |a| {
        a.file_dialog.is_some()
    });
    h.run_ok();
    let suggested = suggested_png(&h);
    let folder_field = |n: &egui_kittest::kittest::AccessKitNode<'_>| {
        n.role() == Role::TextInput && n.value().as_deref() == dir.to_str()
    };
    h.get_by(folder_field);
    h.get_by_role_and_label(Role::Button, "Save").click();
    wait_until(&mut h, "the PNG saved through the own dialog", |a| {
        a.file_dialog.is_none()
            && a.status
                .as_ref()
                .is_some_and(|s| !s.is_error && s.text.contains(&suggested))
    });
    assert_eq!(pngs_in(&dir), vec![first.clone(), dir.join(&suggested)]);
    let saved = image::open(dir.join(&suggested)).unwrap();
    let study = h.state().current.as_ref().unwrap().study.clone().unwrap();
    assert_eq!(
        (saved.width() as usize, saved.height() as usize),
        (study.width, study.height)
    );

    // From now on it asks with its own at once. The same name again: asked before replacing;
    // "Choose another name" goes back to the dialog, and nothing is written.
    std::fs::write(dir.join(&suggested), b"kept").unwrap();
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_ok();
    assert!(h.state().file_dialog.is_some());
    h.get_by_role_and_label(Role::Button, "Save").click();
    h.run_ok();
    h.get_by_label_contains("already exists");
    h.get_by_label("Choose another name").click();
    h.run_ok();
    assert!(h.query_by_label_contains("already exists").is_none());
    h.get_by_role_and_label(Role::Button, "Save").click();
    h.run_ok();
    h.get_by_label("Replace").click();
    let replaced = dir.join(&suggested);
    wait_until(&mut h, "the replaced PNG", |_| {
        std::fs::read(&replaced).is_ok_and(|b| b != b"kept")
    });
    wait_until(&mut h, "the PNG written whole", |_| {
        image::open(&replaced).is_ok()
    });
    assert!(h.state().file_dialog.is_none());

    // Escape cancels; the viewer's shortcuts stay off while it is open (Right would have
    // stepped to the next study).
    h.get_by_label("Open…").click();
    h.run_ok();
    assert!(h.state().file_dialog.is_some());
    h.key_press(Key::ArrowRight);
    h.run_ok();
    assert_eq!(current_path(h.state()), Some(sample()));
    h.key_press(Key::Escape);
    h.run_ok();
    assert!(h.state().file_dialog.is_none());

    // The keyboard alone: Down selects the first entry (the folder last used holds the two
    // exports, "first.png" first), Enter opens it.
    h.get_by_label("Open…").click();
    h.run_ok();
    h.key_press(Key::ArrowDown);
    h.run_ok();
    h.key_press(Key::Enter);
    wait_until(&mut h, "the study opened from the keyboard", |a| {
        a.file_dialog.is_none() && current_path(a) == Some(first.clone())
    });

    // Open: a path typed into its folder field and Enter opens that study.
    h.get_by_label("Open…").click();
    h.run_ok();
    h.get_by(folder_field).focus();
    h.run_ok();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by(folder_field)
        .type_text(other_sample().to_str().unwrap());
    h.run_ok();
    h.key_press(Key::Enter);
    wait_until(&mut h, "the study opened through the own dialog", |a| {
        a.file_dialog.is_none() && current_path(a) == Some(other_sample())
    });

    // The notes export: its name filled in, replaced here by a whole path typed over it; the
    // notes thread writes it there.
    let notes_csv = dir.join("notes-out.csv");
    // Clicked once the side column stops growing with results (a click aimed at a button that
    // then moves lands elsewhere).
    wait_until(&mut h, "the second study's analysis", analysed);
    click_in_view(&mut h, "Export notes…");
    wait_until(&mut h, "the notes export dialog", |a| {
        a.file_dialog.is_some()
    });
    let name_field = |n: &egui_kittest::kittest::AccessKitNode<'_>| {
        n.role() == Role::TextInput && n.value().as_deref() == Some("cxr-notes.csv")
    };
    h.get_by(name_field).focus();
    h.run_ok();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by(name_field).type_text(notes_csv.to_str().unwrap());
    h.run_ok();
    h.key_press(Key::Enter);
    wait_until(&mut h, "the notes exported through the own dialog", |a| {
        a.file_dialog.is_none()
            && a.status.as_ref().is_some_and(|s| {
                !s.is_error && s.text.contains("exported") && s.text.contains("notes-out.csv")
            })
    });
    assert!(notes_csv.is_file());

    // "New folder…" in a save dialog: made where the dialog is (the folder used last), gone
    // into, and the export written there under the name it suggested.
    h.get_by_label("Export PNG…").click();
    wait_until(&mut h, "the export dialog again", |a| {
        a.file_dialog.is_some()
    });
    let suggested = suggested_png(&h);
    h.get_by_label("New folder…").click();
    h.run_ok();
    h.get_by_role_and_label(Role::TextInput, "New folder")
        .type_text("made here");
    h.run_ok();
    h.get_by_label("Create").click();
    h.run_ok();
    let made = dir.join("made here");
    assert!(made.is_dir());
    h.get_by(|n| n.role() == Role::TextInput && n.value().as_deref() == made.to_str());
    h.get_by_role_and_label(Role::Button, "Save").click();
    wait_until(&mut h, "the export in the new folder", |a| {
        a.file_dialog.is_none() && made.join(&suggested).is_file()
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn folder_navigation_and_help() {
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the image", image_shown);
    // The folder holds two samples, sorted by name: NORMAL2-… before person45-….
    assert_eq!(h.state().folder.len(), 2);
    h.get_by_label("2/2");
    h.key_press(Key::ArrowLeft);
    h.run_ok();
    assert_eq!(current_path(h.state()), Some(other_sample()));
    h.get_by_label("Next >").click();
    h.run_ok();
    assert_eq!(current_path(h.state()), Some(sample()));

    h.key_press(Key::F1);
    h.run_ok();
    h.get_by_label("Keyboard shortcuts");
    h.get_by_label("Cycle overlay: none, Grad-CAM, uncertainty, IG");
    h.key_press(Key::Escape);
    h.run_ok();
    assert!(!h.state().show_help);
}

#[test]
fn view_keys_zoom_invert_and_reset() {
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the image", image_shown);
    let view = |h: &Harness<'_, ViewerApp>| h.state().current.as_ref().unwrap().view.clone();
    assert!(view(&h).transform.is_none(), "starts fitted");
    h.key_press(Key::Z);
    h.run_ok();
    let t = view(&h).transform.expect("1:1 is an explicit transform");
    assert!(
        (t.zoom - 1.0).abs() < 1e-6,
        "1:1 at pixels_per_point 1: {}",
        t.zoom
    );
    h.key_press(Key::Plus);
    h.run_ok();
    assert!((view(&h).transform.unwrap().zoom - 1.25).abs() < 1e-5);
    h.key_press(Key::I);
    h.key_press(Key::W);
    h.run_ok();
    assert!(view(&h).invert);
    h.key_press(Key::R);
    h.run_ok();
    let v = view(&h);
    assert!(v.transform.is_none() && !v.invert);
    let study = h.state().current.as_ref().unwrap().study.clone().unwrap();
    assert_eq!(v.window, study.default_window);
}

/// Ctrl + / Ctrl − / Ctrl 0 scale the whole interface (egui's zoom, kept by eframe across
/// restarts) for a reviewer who wants larger text; + and − without Ctrl zoom the film only. The
/// two must not catch each other's keys.
#[test]
fn ctrl_plus_scales_the_interface_and_plus_alone_the_film() {
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the image", image_shown);
    let film_zoom = |h: &Harness<'_, ViewerApp>| {
        h.state()
            .current
            .as_ref()
            .unwrap()
            .view
            .transform
            .map(|t| t.zoom)
    };
    h.key_press(Key::Z);
    h.key_press(Key::Plus);
    h.run_ok();
    let zoomed = film_zoom(&h);
    assert!((zoomed.unwrap() - 1.25).abs() < 1e-5);
    assert_eq!(h.ctx.zoom_factor(), 1.0, "+ alone leaves the interface");

    h.key_press_modifiers(Modifiers::COMMAND, Key::Plus);
    h.run_ok();
    assert!(h.ctx.zoom_factor() > 1.05, "{}", h.ctx.zoom_factor());
    assert_eq!(film_zoom(&h), zoomed, "Ctrl + leaves the film");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Num0);
    h.run_ok();
    assert_eq!(h.ctx.zoom_factor(), 1.0);
    assert_eq!(
        film_zoom(&h),
        zoomed,
        "Ctrl 0 is not the 0 key (no overlay)"
    );
    assert_ne!(h.state().map, cxr_viewer::ui::settings::MapKind::None);
}

// ---- drag and drop -------------------------------------------------------------------------

/// A file dropped on the window, as the platform integration hands it to egui.
#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `path` on the window and runs the frame that receives it.
fn drop_on_window(h: &mut Harness<'_, ViewerApp>, path: PathBuf) {
    drop_together(h, [path]);
}

/// Drops `paths` on the window in one go and runs the frame that receives them.
fn drop_together(h: &mut Harness<'_, ViewerApp>, paths: impl IntoIterator<Item = PathBuf>) {
    for path in paths {
        h.input_mut()
            .dropped_files
            .push(Arc::new(DroppedPath(path)));
    }
    h.step();
}

fn no_image_yet() -> Harness<'static, ViewerApp> {
    let mut h = viewer(tiny_model(), None);
    h.step();
    assert!(h.state().current.is_none());
    h
}

#[test]
fn a_dropped_file_opens_and_is_analysed() {
    let mut h = no_image_yet();
    drop_on_window(&mut h, other_sample());
    assert_eq!(current_path(h.state()), Some(other_sample()));
    wait_until(&mut h, "the full analysis of the dropped file", analysed);
    h.get_by_label_contains("NORMAL2-IM-0912-0001.jpeg");
    h.get_by_label_contains("completeness gap");
    assert_eq!(h.state().settings.recent.first(), Some(&other_sample()));

    // A second drop replaces the image on screen.
    drop_on_window(&mut h, sample());
    assert_eq!(current_path(h.state()), Some(sample()));
    wait_until(&mut h, "the full analysis of the second drop", analysed);
    h.get_by_label_contains("person45_bacteria_221.jpeg");
}

#[test]
fn a_dropped_folder_opens_its_first_image() {
    let mut h = no_image_yet();
    drop_on_window(&mut h, repo("assets/samples"));
    // A folder is listed (and reviewed) in the background; sorted by name, NORMAL2-… comes before
    // person45-…, and ATTRIBUTION.md is not an image.
    wait_until(&mut h, "the folder's first image", |a| {
        current_path(a).is_some()
    });
    assert_eq!(current_path(h.state()), Some(other_sample()));
    wait_until(
        &mut h,
        "the full analysis of the folder's first image",
        analysed,
    );
    // First of two: the folder's images are what next/previous walk.
    h.get_by_label("1/2");
    assert!(
        h.query_all_by_label_contains("NORMAL2-IM-0912-0001.jpeg")
            .count()
            >= 1
    );
}

/// Several files dropped at once (a selection in the file manager) are what Next and Previous
/// walk, sorted by path; files that are not images are said and left out. Before, the first
/// opened alone and Next walked its whole folder.
#[test]
fn several_dropped_files_are_walked_as_a_set() {
    let dir = ui_support::temp_dir("ui-drop-several");
    for name in ["a.jpeg", "b.jpeg", "c.jpeg", "d.jpeg"] {
        std::fs::copy(sample(), dir.join(name)).unwrap();
    }
    std::fs::copy(
        repo("tests/fixtures/other_formats/grey8.tif"),
        dir.join("e.tif"),
    )
    .unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let mut h = no_image_yet();
    drop_together(&mut h, ["d.jpeg", "e.tif", "b.jpeg"].map(|n| dir.join(n)));
    assert_eq!(current_path(h.state()), Some(dir.join("b.jpeg")));
    assert_eq!(
        h.state().navigation(),
        [dir.join("b.jpeg"), dir.join("d.jpeg")],
        "the dropped images, not their folder's four"
    );
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        "2 images opened together: Next and Previous walk them; 1 image left out, in a format \
         cxr-viewer does not read (TIFF): e.tif; convert it to PNG (16-bit grey keeps the depth) \
         or DICOM"
    );
    h.key_press(Key::ArrowRight);
    h.step();
    assert_eq!(current_path(h.state()), Some(dir.join("d.jpeg")));
    h.get_by_label("2/2");

    // A name that is not there (mistyped on the command line) is named as not found.
    let mut h = no_image_yet();
    drop_together(
        &mut h,
        [dir.join("b.jpeg"), dir.join("x.jpeg"), dir.join("a.jpeg")],
    );
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        "2 images opened together: Next and Previous walk them; not found: x.jpeg"
    );

    // Nothing but a file that is no image: said, nothing opened in its place.
    let mut h = no_image_yet();
    drop_together(&mut h, [dir.join("e.tif"), dir.join("e.tif")]);
    assert!(h.state().current.is_none());
    assert!(
        h.state()
            .status
            .as_ref()
            .is_some_and(|s| s.is_error && s.text.starts_with("none of these files is an image: ")),
        "{:?}",
        h.state().status.as_ref().map(|s| &s.text)
    );
}

/// Several files chosen at once in Open… open as a set too (the dialog allowed one).
#[test]
fn several_files_chosen_in_open_are_walked_as_a_set() {
    let dir = ui_support::temp_dir("ui-open-several");
    for name in ["a.jpeg", "b.jpeg", "c.jpeg"] {
        std::fs::copy(sample(), dir.join(name)).unwrap();
    }
    let dir = std::fs::canonicalize(dir).unwrap();
    let picker =
        ScriptedPicker::default().opening_together(&[dir.join("c.jpeg"), dir.join("a.jpeg")]);
    let app = ViewerApp::new(fast_settings(), Arc::new(picker), tiny_model(), None);
    let mut h = ui_support::harness(app);
    h.get_by_label("Open…").click();
    wait_until(&mut h, "the first of the set", |a| {
        current_path(a).is_some()
    });
    assert_eq!(current_path(h.state()), Some(dir.join("a.jpeg")));
    assert_eq!(
        h.state().navigation(),
        [dir.join("a.jpeg"), dir.join("c.jpeg")]
    );
    assert_eq!(
        h.state().status.as_ref().unwrap().text,
        "2 images opened together: Next and Previous walk them"
    );
}

#[test]
fn a_dropped_unreadable_file_shows_one_line_in_the_status_bar() {
    let mut h = no_image_yet();
    drop_on_window(&mut h, repo("tests/fixtures/dicom/garbage.dcm"));
    let status = load_error_status(&mut h);
    assert!(status.starts_with("cannot open garbage.dcm: "), "{status}");
    assert_eq!(
        status.matches("cannot open").count(),
        1,
        "said once: {status}"
    );
    assert!(!status.contains('\n'), "one line: {status}");
    // The status bar shows exactly that line (the canvas may repeat it).
    assert!(h.query_all_by_label(&status).count() >= 1);
    assert!(h.state().current_entry().is_none(), "nothing to analyse");
}

/// The viewer in a `window`-sized harness on a grey ramp film of `size` pixels (a PNG written for
/// the test: large films are not worth committing).
fn on_a_large_film(size: (u32, u32), window: egui::Vec2, tag: &str) -> Harness<'static, ViewerApp> {
    let path = temp_dir(tag).join("film.png");
    let film =
        image::GrayImage::from_fn(size.0, size.1, |x, y| image::Luma([((x + y) % 251) as u8]));
    film.save(&path).unwrap();
    let app = ViewerApp::new(
        fast_settings(),
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        Some(path),
    );
    Harness::builder()
        .with_size(window)
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui_root(ui), app)
}

/// A film of 16 megapixels or more: the level (block means) of a zoom step not yet shown is
/// built on another thread while the coarser level already built stands in, then replaces it.
/// On a 9500 × 9500 film the zoom step had frozen the viewer for the whole build (92 ms for
/// step 2 on a 2-core Intel Xeon, `cargo bench --bench film_texture`).
#[test]
fn a_large_films_next_zoom_level_is_built_off_the_ui_thread() {
    let mut h = on_a_large_film((4000, 4000), egui::Vec2::new(800.0, 600.0), "ui-large-film");
    wait_until(&mut h, "the film", |a| {
        a.film_texture_key().is_some_and(|k| k.step >= 4)
    });
    let fitted = h.state().film_texture_key().unwrap().step;
    assert_eq!(
        h.state().film_level_building(),
        None,
        "the first level is built at once"
    );
    // Zoom in until the step halves; the first frame at the finer step shows the coarser level.
    let mut presses = 0;
    let building = loop {
        if let Some(step) = h.state().film_level_building() {
            break step;
        }
        let shown = h.state().film_texture_key().unwrap().step;
        assert_eq!(shown, fitted, "a finer level was built on the UI thread");
        assert!(presses < 12, "the zoom never reached a finer step");
        h.key_press(Key::Plus);
        presses += 1;
        h.step();
    };
    assert_eq!(building, fitted / 2);
    assert_eq!(h.state().film_texture_key().unwrap().step, fitted);
    wait_until(&mut h, "the finer level", |a| {
        a.film_texture_key().is_some_and(|k| k.step == fitted / 2)
    });
    assert_eq!(h.state().film_level_building(), None);
}

/// A system dialog that does not answer until released (a desktop portal that hangs), then
/// answers `late`; it counts how often it was asked.
struct HangingPicker {
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    late: Option<PathBuf>,
    asked: std::sync::atomic::AtomicUsize,
}

impl HangingPicker {
    fn answer(&self) -> Option<PathBuf> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.lock().unwrap().recv();
        self.late.clone()
    }
}

impl cxr_viewer::ui::worker::FilePicker for HangingPicker {
    fn pick_file(&self) -> Option<PathBuf> {
        self.answer()
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        self.answer()
    }
    fn save_file(&self, _suggested: &str, _extension: &str) -> Option<PathBuf> {
        self.answer()
    }
}

/// A system dialog that never shows (an installed portal that does not answer) held the export
/// with nothing on screen until rfd gave up. After two seconds the status bar offers the viewer's
/// own dialog; the export goes through it, the system dialog's late answer is dropped, and the
/// viewer asks with its own from then on.
#[test]
fn a_system_dialog_that_never_answers_is_offered_the_own_one() {
    use cxr_viewer::ui::system_dialog::OFFER_OWN_AFTER;
    use egui::accesskit::Role;
    let dir = temp_dir("ui-hanging-dialog");
    let late = dir.join("late.png");
    let (release, wait) = std::sync::mpsc::channel();
    let picker = Arc::new(HangingPicker {
        release: std::sync::Mutex::new(wait),
        late: Some(late.clone()),
        asked: Default::default(),
    });
    let app = ViewerApp::new(
        fast_settings(),
        picker.clone(),
        tiny_model(),
        Some(sample()),
    );
    let mut h = harness(app);
    wait_until(&mut h, "the full analysis", analysed);
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_ok();
    assert_eq!(picker.asked.load(Ordering::SeqCst), 1);
    let offer = "Use the viewer's own dialog";
    assert!(
        h.query_by_label(offer).is_none(),
        "offered before the system dialog had time to show"
    );
    std::thread::sleep(OFFER_OWN_AFTER + std::time::Duration::from_millis(100));
    h.run_ok();
    h.get_by_label_contains("Waiting for the system file dialog");
    h.get_by_label(offer).click();
    wait_until(&mut h, "the viewer's own dialog", |a| {
        a.file_dialog.is_some() && a.system_dialog.is_none()
    });
    h.run_ok();
    // The export's name is filled in; a whole path typed over it.
    let suggested = suggested_png(&h);
    let name_field = |n: &egui_kittest::kittest::AccessKitNode<'_>| {
        n.role() == Role::TextInput && n.value().as_deref() == Some(suggested.as_str())
    };
    h.get_by(name_field).focus();
    h.run_ok();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    let own = dir.join("own.png");
    h.get_by(name_field).type_text(own.to_str().unwrap());
    h.run_ok();
    h.key_press(Key::Enter);
    wait_until(&mut h, "the PNG saved through the own dialog", |a| {
        a.file_dialog.is_none()
            && a.status
                .as_ref()
                .is_some_and(|s| s.text.contains("own.png"))
    });
    assert!(image::open(&own).is_ok());
    // The system dialog answers at last: dropped, nothing written there.
    release.send(()).unwrap();
    for _ in 0..20 {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!late.exists(), "the late answer was written to");
    // From now on the viewer asks with its own at once, and the status line is gone.
    assert!(h
        .query_by_label_contains("Waiting for the system file dialog")
        .is_none());
    h.get_by_label("Open…").click();
    h.run_ok();
    assert!(h.state().file_dialog.is_some());
    assert_eq!(picker.asked.load(Ordering::SeqCst), 1);
}

/// While window/level is dragged, a texture over the drag limit is built at half resolution
/// (each drag frame rebuilds it), and at full resolution again once the drag ends.
#[test]
fn a_window_level_drag_builds_a_large_texture_at_half_resolution() {
    use cxr_viewer::ui::render::DRAG_MAX_TEXELS;
    use egui::{Event, PointerButton, Pos2};
    let mut h = on_a_large_film(
        (4000, 4000),
        egui::Vec2::new(2000.0, 1000.0),
        "ui-drag-film",
    );
    wait_until(&mut h, "the film", |a| a.film_texture_key().is_some());
    let texels = |a: &ViewerApp| {
        let k = a.film_texture_key().unwrap();
        k.region.texels(k.step)
    };
    let fitted = h.state().film_texture_key().unwrap().step;
    assert!(
        texels(h.state()) > DRAG_MAX_TEXELS,
        "the fitted texture ({} texels at step {fitted}) is under the drag limit: no test",
        texels(h.state())
    );
    let window_before = h.state().current.as_ref().unwrap().view.window;
    let at = cxr_viewer::ui::canvas::last_canvas(&h.ctx)
        .unwrap()
        .center();
    let push = |h: &mut Harness<'static, ViewerApp>, event: Event| {
        h.input_mut().events.push(event);
        h.step();
    };
    push(&mut h, Event::PointerMoved(at));
    let button = |pressed, pos| Event::PointerButton {
        pos,
        button: PointerButton::Secondary,
        pressed,
        modifiers: Modifiers::NONE,
    };
    push(&mut h, button(true, at));
    for i in 1..=6 {
        let pos = at + egui::Vec2::new(8.0 * i as f32, 3.0 * i as f32);
        push(&mut h, Event::PointerMoved(pos));
        if i > 2 {
            assert_eq!(
                h.state().film_texture_key().unwrap().step,
                fitted * 2,
                "drag frame {i}"
            );
        }
    }
    let end = at + egui::Vec2::new(48.0, 18.0);
    push(&mut h, button(false, Pos2::new(end.x, end.y)));
    h.step();
    assert_eq!(h.state().film_texture_key().unwrap().step, fitted);
    let window_after = h.state().current.as_ref().unwrap().view.window;
    assert_ne!(window_after, window_before, "the drag changed no window");
}

/// The viewer's own Open… dialog takes several images, as the desktop's does: Ctrl-click adds
/// one, Shift-click a range from the last one clicked; the name field lists them quoted, and
/// Open opens them as a set (it picked one file only).
#[test]
fn several_images_picked_in_the_viewers_own_dialog_open_as_a_set() {
    use egui::accesskit::Role;
    let dir = temp_dir("ui-own-dialog-several");
    for name in ["a.jpeg", "b.jpeg", "c.jpeg", "d.jpeg"] {
        std::fs::copy(sample(), dir.join(name)).unwrap();
    }
    let dir = std::fs::canonicalize(dir).unwrap();
    // The system dialog never shows: the viewer's own asks, in the study's folder.
    let picker = Arc::new(ScriptedPicker::default());
    let app = ViewerApp::new(
        fast_settings(),
        picker,
        tiny_model(),
        Some(dir.join("a.jpeg")),
    );
    let mut h = harness(app);
    let name_field = |value: &'static str| {
        move |n: &egui_kittest::kittest::AccessKitNode<'_>| {
            n.role() == Role::TextInput && n.value().as_deref() == Some(value)
        }
    };
    let open_dialog = |h: &mut Harness<'static, ViewerApp>| {
        h.get_by_label("Open…").click();
        wait_until(h, "the viewer's own dialog", |a| a.file_dialog.is_some());
        h.run_ok();
    };

    open_dialog(&mut h);
    h.get_by_role_and_label(Role::Button, "b.jpeg").click();
    h.run_ok();
    h.get_by_role_and_label(Role::Button, "d.jpeg")
        .click_modifiers(Modifiers::COMMAND);
    h.run_ok();
    h.get_by(name_field("\"b.jpeg\" \"d.jpeg\""));
    h.get_by_role_and_label(Role::Button, "Open").click();
    wait_until(&mut h, "the two opened as a set", |a| {
        a.file_dialog.is_none() && a.navigation() == [dir.join("b.jpeg"), dir.join("d.jpeg")]
    });
    assert_eq!(current_path(h.state()), Some(dir.join("b.jpeg")));

    // Shift-click: the range from the file clicked last; Ctrl-click again takes one out.
    open_dialog(&mut h);
    h.get_by_role_and_label(Role::Button, "a.jpeg").click();
    h.run_ok();
    h.get_by_role_and_label(Role::Button, "c.jpeg")
        .click_modifiers(Modifiers::SHIFT);
    h.run_ok();
    h.get_by(name_field("\"a.jpeg\" \"b.jpeg\" \"c.jpeg\""));
    h.get_by_role_and_label(Role::Button, "b.jpeg")
        .click_modifiers(Modifiers::COMMAND);
    h.run_ok();
    h.get_by(name_field("\"a.jpeg\" \"c.jpeg\""));
    h.get_by_role_and_label(Role::Button, "Open").click();
    wait_until(&mut h, "the second set", |a| {
        a.file_dialog.is_none() && a.navigation() == [dir.join("a.jpeg"), dir.join("c.jpeg")]
    });

    // A plain click after all that picks one file, which opens alone.
    open_dialog(&mut h);
    h.get_by_role_and_label(Role::Button, "a.jpeg")
        .click_modifiers(Modifiers::COMMAND);
    h.run_ok();
    h.get_by_role_and_label(Role::Button, "d.jpeg").click();
    h.run_ok();
    h.get_by(name_field("d.jpeg"));
    h.get_by_role_and_label(Role::Button, "Open").click();
    wait_until(&mut h, "one file opened", |a| {
        a.file_dialog.is_none() && current_path(a) == Some(dir.join("d.jpeg"))
    });
}

/// An IG map explained from a baseline the model reads as the same class is said where the map
/// is chosen (next to the opacity slider) and under IG's completeness line; not for the other
/// maps, nor once the other baseline (read as the other class by the tiny model) is chosen.
#[test]
fn an_ig_baseline_read_as_the_explained_class_is_said_beside_the_map() {
    let dir = temp_dir("ui-ig-baseline");
    let (black_png, white_png) = (dir.join("black.png"), dir.join("white.png"));
    let picker = ScriptedPicker::default().saving(&[black_png.clone(), white_png.clone()]);
    let app = ViewerApp::new(
        fast_settings(),
        Arc::new(picker),
        tiny_model(),
        Some(sample()),
    );
    let mut h = harness(app);
    let export = |h: &mut Harness<'static, ViewerApp>, path: &Path| {
        h.key_press_modifiers(Modifiers::COMMAND, Key::S);
        let name = path.display().to_string();
        wait_until(h, "the export", |app| {
            app.status.as_ref().is_some_and(|s| s.text.contains(&name))
        });
        cxr_viewer::io::viewer_export::marker(path).unwrap()
    };
    wait_until(&mut h, "the full analysis", analysed);
    let toolbar = "IG baseline read as PNEUMONIA";
    let panel = "The black baseline is itself read as PNEUMONIA";
    h.run_ok();
    // Grad-CAM on screen: the panel says it, the toolbar does not.
    assert!(h.query_by_label_contains(toolbar).is_none());
    h.get_by_label_contains(panel);
    h.key_press(Key::Num3);
    h.run_ok();
    h.get_by_label(toolbar);
    // One line at every window width: the wrapped toolbar row had split it after "as".
    let heights: Vec<f32> = (1000..=1500)
        .step_by(25)
        .map(|width| {
            h.set_size(egui::vec2(width as f32, 950.0));
            h.run_ok();
            h.get_by_label(toolbar).rect().height()
        })
        .collect();
    let (low, high) = heights
        .iter()
        .fold((f32::MAX, 0f32), |(l, m), &x| (l.min(x), m.max(x)));
    assert!(high < 1.4 * low, "{heights:?}");
    h.set_size(egui::vec2(1500.0, 950.0));
    // The exported view says it too, and which baseline the map explains against.
    let what = export(&mut h, &black_png);
    assert!(
        what.starts_with("film with Integrated Gradients overlay from the black baseline")
            && what.ends_with(", IG baseline read as PNEUMONIA"),
        "{what}"
    );
    // The white baseline: read as NORMAL by the tiny model, so nothing to say. (The press is
    // applied first: `analysed` held of black's map, and the export drew no map at all.)
    h.key_press(Key::B);
    h.run_ok();
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::White);
    wait_until(&mut h, "IG from the white baseline", analysed);
    h.run_ok();
    assert!(h.query_by_label_contains(toolbar).is_none());
    assert!(h
        .query_by_label_contains("baseline is itself read as")
        .is_none());
    let what = export(&mut h, &white_png);
    assert!(!what.contains("IG baseline"), "{what}");
    assert!(
        what.starts_with("film with Integrated Gradients overlay from the white baseline"),
        "{what}"
    );
}

/// The faithfulness check of the IG map on screen, if it is there.
fn ig_faithfulness(app: &ViewerApp) -> Option<Arc<cxr_viewer::trust::StudyFaithfulness>> {
    let key = cxr_viewer::ui::trust_state::current_trust_key(app)?;
    app.trust.entry(&key)?.faithfulness.clone()
}

/// `auto` and the fixed baseline it chooses give one map. Switching to `auto` once that
/// baseline's map and faithfulness check are there shows them at once, from the cache (a map
/// marked in the cache shows it was not computed again); and a map `auto` computed serves the
/// baseline it chose, checks included. Before, each was computed a second time (seconds of IG).
#[test]
fn auto_reuses_the_map_and_checks_of_the_baseline_it_chooses() {
    let settled =
        |a: &ViewerApp| analysed(a) && ig_faithfulness(a).is_some() && a.trust.job.is_none();
    let model = repo("tests/fixtures/reference/model-normal-film.json");
    let mut h = viewer(model, Some(sample()));
    for want in [BaselineChoice::White, BaselineChoice::NormalFilm] {
        h.key_press(Key::B);
        h.run_ok();
        assert_eq!(h.state().settings.ig_baseline, want);
    }
    wait_until(&mut h, "the normal film's map and its check", settled);
    // And its sanity check (K).
    let sanity = |a: &ViewerApp| {
        let key = cxr_viewer::ui::trust_state::current_trust_key(a)?;
        a.trust.entry(&key)?.sanity.clone()
    };
    h.key_press(Key::K);
    h.run_ok();
    wait_until(&mut h, "the sanity check", |a| {
        sanity(a).is_some() && a.trust.job.is_none()
    });
    let sane = sanity(h.state()).unwrap();
    let normal_key = h.state().wanted_ig_or_default();
    let checked = ig_faithfulness(h.state()).unwrap();
    // Mark the kept map: a map computed again would not carry the mark.
    let app = h.state_mut();
    let entry = app.cache.get_mut(&app.current_key().unwrap()).unwrap();
    let kept = entry.ig.get_mut(&normal_key).unwrap();
    let mut marked = (**kept).clone();
    marked.0.f_input += 1000.0;
    *kept = Arc::new(marked);

    h.key_press(Key::B);
    h.run_ok();
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::Auto);
    wait_until(&mut h, "auto's map", analysed);
    h.run_ok();
    let app = h.state();
    let entry = app.current_entry().unwrap();
    let auto = &entry.ig[&app.wanted_ig_or_default()].0;
    assert!(auto.baseline_auto);
    assert_eq!(
        auto.baseline,
        cxr_viewer::explain::integrated_gradients::Baseline::NormalFilm
    );
    assert!(
        auto.f_input > 500.0,
        "auto's map was computed again, not taken from the cache"
    );
    assert!(Arc::ptr_eq(&ig_faithfulness(app).unwrap(), &checked));
    assert!(Arc::ptr_eq(&sanity(app).unwrap(), &sane));
    assert!(app.trust.job.is_none(), "no check runs again");
    h.get_by_label_contains("steps, normal film baseline (auto): completeness gap");

    // The other way: auto computed first (the tiny model without a reference film chooses
    // white); white is then there, with auto's check.
    let settings = Settings {
        ig_baseline: BaselineChoice::Auto,
        ..fast_settings()
    };
    let app = ViewerApp::new(
        settings,
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        Some(sample()),
    );
    let mut h = harness(app);
    wait_until(&mut h, "auto's map and its check", settled);
    let app = h.state();
    let auto = app.current_entry().unwrap().ig[&app.wanted_ig_or_default()].clone();
    let checked = ig_faithfulness(app).unwrap();
    let white_key = cxr_viewer::ui::cache::IgKey {
        baseline: BaselineChoice::White,
        ..app.wanted_ig_or_default()
    };
    let white = &app.current_entry().unwrap().ig[&white_key].0;
    assert!(!white.baseline_auto);
    assert_eq!(white.map, auto.0.map);
    h.state_mut().settings.ig_baseline = BaselineChoice::White;
    h.run_ok();
    let app = h.state();
    assert!(
        app.jobs.running.is_empty() && app.trust.job.is_none(),
        "nothing runs again"
    );
    assert!(Arc::ptr_eq(&ig_faithfulness(app).unwrap(), &checked));
    h.get_by_label_contains("steps, white baseline: completeness gap");
}

/// `B` cycles black (the default) → white → normal film → auto where the model names a
/// reference film: from black the PNEUMONIA sample's IG is warned of (the tiny model reads black
/// as PNEUMONIA too); from the normal film, read as NORMAL, it is not; `auto` picks that film for
/// this film and the panel says the choice was automatic. Without a reference film white goes on
/// to auto, which starts from white, and there is no normal-film radio.
#[test]
fn b_cycles_the_ig_baselines_and_auto_picks_one_read_as_another_class() {
    let model = repo("tests/fixtures/reference/model-normal-film.json");
    let mut h = viewer(model, Some(sample()));
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::Black);
    wait_until(&mut h, "the full analysis", analysed);
    h.key_press(Key::Num3);
    h.run_ok();
    h.get_by_label("IG baseline read as PNEUMONIA");
    h.get_by_label_contains("steps, black baseline: completeness gap");
    for want in [BaselineChoice::White, BaselineChoice::NormalFilm] {
        h.key_press(Key::B);
        h.run_ok();
        assert_eq!(h.state().settings.ig_baseline, want);
    }
    wait_until(&mut h, "IG from the normal film", analysed);
    h.run_ok();
    h.get_by_label("normal film");
    assert!(h.query_by_label_contains("IG baseline read as").is_none());
    h.get_by_label_contains("steps, normal film baseline: completeness gap");
    h.key_press(Key::B);
    h.run_ok();
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::Auto);
    wait_until(&mut h, "IG from auto's choice", analysed);
    h.run_ok();
    h.get_by_label_contains("steps, normal film baseline (auto): completeness gap");
    assert!(h.query_by_label_contains("IG baseline read as").is_none());
    h.key_press(Key::B);
    h.run_ok();
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::Black);

    // The tiny model without a reference film: white goes on to auto, which starts from white
    // (read as NORMAL); no third radio.
    let mut h = viewer(tiny_model(), Some(sample()));
    wait_until(&mut h, "the full analysis", analysed);
    for want in [BaselineChoice::White, BaselineChoice::Auto] {
        h.key_press(Key::B);
        h.run_ok();
        assert_eq!(h.state().settings.ig_baseline, want);
    }
    wait_until(&mut h, "IG from auto's choice", analysed);
    h.run_ok();
    h.get_by_label_contains("steps, white baseline (auto): completeness gap");
    h.key_press(Key::B);
    h.run_ok();
    assert_eq!(h.state().settings.ig_baseline, BaselineChoice::Black);
    assert!(h.query_by_label("normal film").is_none());
}
