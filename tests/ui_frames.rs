//! Multi-frame DICOM and DICOMDIR in the viewer, driven through egui_kittest (no display, no GPU):
//! the frame keys load another frame and analyse it; a DICOMDIR opens as a folder under review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use cxr_viewer::io::load_study_frame;
use cxr_viewer::ui::app::{Action, ViewerApp};
use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ui_support::{harness, repo, temp_dir, tiny_model, wait_until, ScriptedPicker};

mod ui_support;

fn viewer(file: PathBuf) -> Harness<'static, ViewerApp> {
    let settings = ui_support::fast_settings(&temp_dir("frames-notes").join("notes.sqlite3"));
    let app = ViewerApp::new(
        settings,
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        Some(file),
    );
    harness(app)
}

fn analysed(app: &ViewerApp) -> bool {
    app.current_entry().is_some_and(|e| e.gradcam.is_some())
}

#[test]
fn frame_keys_show_and_analyse_each_frame() {
    let file = repo("tests/fixtures/dicom/multiframe_3x16x16.dcm");
    let mut h = viewer(file.clone());
    wait_until(&mut h, "frame 1 analysed", |a| {
        a.current_frames() == Some((3, 0)) && analysed(a)
    });
    h.key_press(Key::Period);
    wait_until(&mut h, "frame 2 analysed", |a| {
        a.current_frames() == Some((3, 1)) && analysed(a)
    });
    let want = load_study_frame(&file, 1).unwrap();
    {
        let app = h.state();
        let shown = app.current.as_ref().unwrap().study.as_ref().unwrap();
        assert_eq!(shown.pixels, want.pixels);
        assert_eq!(app.current_key().unwrap().frame, 1);
    }
    // Past the last frame the key does nothing; back to frame 1 finds its cached analysis.
    h.key_press(Key::Period);
    wait_until(&mut h, "frame 3", |a| a.current_frames() == Some((3, 2)));
    h.key_press(Key::Period);
    h.run_steps(3);
    assert_eq!(h.state().current_frames(), Some((3, 2)));
    h.key_press(Key::Comma);
    wait_until(&mut h, "frame 2 again", |a| {
        a.current_frames() == Some((3, 1))
    });
    h.key_press(Key::Comma);
    wait_until(&mut h, "frame 1 again, analysed", |a| {
        a.current_frames() == Some((3, 0)) && analysed(a)
    });
}

#[test]
fn two_frame_steps_before_the_first_frame_arrives_move_two_frames() {
    let file = repo("tests/fixtures/dicom/multiframe_3x16x16.dcm");
    let mut h = viewer(file.clone());
    wait_until(&mut h, "frame 1 analysed", |a| {
        a.current_frames() == Some((3, 0)) && analysed(a)
    });
    // Both steps are applied before the app reads any worker message, so the second one is
    // taken while frame 2 is still loading (as with a key held down on a large film).
    let ctx = h.ctx.clone();
    h.state_mut().apply(Action::FrameStep(1), &ctx);
    h.state_mut().apply(Action::FrameStep(1), &ctx);
    wait_until(&mut h, "frame 3 analysed", |a| {
        a.current_frames() == Some((3, 2)) && analysed(a)
    });
    // Frame 2's load, asked for first, must not replace frame 3 when it comes in late.
    h.run_steps(5);
    let want = load_study_frame(&file, 2).unwrap();
    let app = h.state();
    assert_eq!(app.current_frames(), Some((3, 2)));
    let shown = app.current.as_ref().unwrap().study.as_ref().unwrap();
    assert_eq!(shown.pixels, want.pixels);
    // Stepping back to the frame on screen while another loads cancels that request.
    let ctx = h.ctx.clone();
    h.state_mut().apply(Action::FrameStep(-1), &ctx);
    h.state_mut().apply(Action::FrameStep(1), &ctx);
    h.run_steps(5);
    assert_eq!(h.state().current_frames(), Some((3, 2)));
    assert_eq!(h.state().current.as_ref().unwrap().frame_requested, None);
}

#[test]
fn a_dicomdir_opens_as_a_folder_under_review() {
    let mut h = viewer(repo("tests/fixtures/dicom/dicomdir/DICOMDIR"));
    wait_until(&mut h, "DICOMDIR listed", |a| {
        a.review.as_ref().is_some_and(|r| r.listed)
    });
    let review = h.state().review.as_ref().unwrap();
    let names: Vec<&str> = review.rows.iter().map(|r| r.relative.as_str()).collect();
    assert_eq!(
        names,
        [
            "PT000000/ST000000/SE000000/IM000000",
            "PT000000/ST000000/SE000000/IM000001",
            "PT000001/ST000000/SE000000/IM000000",
        ]
    );
    // Both patients' first image is "IM000000": the list tells them apart by the folder that
    // differs (before, two rows read "IM000000" alike).
    h.run_steps(3);
    for shown in ["IM000000  PT000000/…", "IM000001", "IM000000  PT000001/…"] {
        h.get_by_label(shown);
    }
    // The header above the film names it by its path in the folder.
    wait_until(&mut h, "the first study open", |a| {
        a.current.as_ref().is_some_and(|c| c.study.is_some())
    });
    h.get_by_label_contains("PT000000/ST000000/SE000000/IM000000  ·  ");
}

/// Each frame of a multi-frame image is exported under its own name ("…_frame2.png",
/// "…_frame2_report.json"), and the PNG's marker says which frame it shows: every frame was offered the
/// file's one name, each export over the last.
#[test]
fn an_exported_frame_is_named_after_its_frame() {
    let file = repo("tests/fixtures/dicom/multiframe_3x16x16.dcm");
    let dir = temp_dir("frames-export");
    let png = dir.join("view.png");
    let picker = Arc::new(ScriptedPicker::default().saving(&[png.clone(), dir.join("r.json")]));
    let settings = ui_support::fast_settings(&temp_dir("frames-notes").join("notes.sqlite3"));
    let app = ViewerApp::new(settings, picker.clone(), tiny_model(), Some(file));
    let mut h = harness(app);
    // The frame key does nothing until the film is known to have frames: wait for it (pressed on
    // the first frame, the key was lost whenever the load took longer than that frame, as in a
    // CI run on a busy machine).
    wait_until(&mut h, "frame 1 shown", |a| {
        a.current_frames() == Some((3, 0))
    });
    h.key_press(Key::Period);
    wait_until(&mut h, "frame 2 analysed", |a| {
        a.current_frames() == Some((3, 1)) && analysed(a)
    });
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::S);
    wait_until(&mut h, "the PNG", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.text.contains("view.png"))
    });
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::E);
    wait_until(&mut h, "the report", |a| {
        a.status.as_ref().is_some_and(|s| s.text.contains("r.json"))
    });
    let suggested = picker.suggested.lock().unwrap().clone();
    assert_eq!(
        suggested,
        [
            "multiframe_3x16x16_frame2.png",
            "multiframe_3x16x16_frame2_report.json"
        ]
    );
    let what = cxr_viewer::io::viewer_export::marker(&png).unwrap();
    assert!(what.ends_with(", frame 2 of 3"), "{what}");
    let _ = std::fs::remove_dir_all(&dir);
}
