//! The viewer's layout at small window sizes (down to the 800 × 500 minimum that `ui::run` sets):
//! the film keeps a usable width, nothing runs past the window's edges, nothing covers the result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cxr_viewer::notes::{
    Finding, ImageBox, Note, NotesStore, PredictionSnapshot, Saliency, StudyId, Zone,
};
use cxr_viewer::scope::ScopeCheck;
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::review::{Review, StudyRow};
use cxr_viewer::ui::settings::MapKind;
use egui::Vec2;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ui_support::{temp_dir, wait_until, ScriptedPicker};

mod ui_support;

fn prepared(app: &ViewerApp) -> bool {
    app.current_entry().is_some_and(|e| e.prepared.is_some())
}

fn row(name: &str, in_scope: bool) -> StudyRow {
    StudyRow {
        path: PathBuf::from(format!("/r/{name}")),
        relative: name.to_string(),
        folder_hint: None,
        name_shared: 0,
        stamp: None,
        folder_truth: None,
        id: Some(StudyId::sha256(&[name.len() as u8; 32])),
        prediction: Some(PredictionSnapshot {
            predicted: Finding::Positive,
            probability: 0.9,
            uncertain: false,
            in_scope: Some(true),
        }),
        error: None,
        scope: Some(ScopeCheck {
            in_scope,
            ..Default::default()
        }),
    }
}

/// The tiny network with a normal film for IG, as the shipped model has one: the panels then show
/// every control they show in use (the IG baseline row's "normal film" choice made that row wider
/// than the side column at 800 px, and only with such a model).
fn viewer(size: Vec2, open: Option<PathBuf>, tag: &str) -> Harness<'static, ViewerApp> {
    viewer_with_notes(size, open, &temp_dir(tag).join("notes.sqlite3"))
}

fn viewer_with_notes(size: Vec2, open: Option<PathBuf>, db: &Path) -> Harness<'static, ViewerApp> {
    let settings = ui_support::fast_settings(db);
    let app = ViewerApp::new(
        settings,
        Arc::new(ScriptedPicker::default()),
        ui_support::repo("tests/fixtures/reference/model-normal-film.json"),
        open,
    );
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui_root(ui), app)
}

/// The bundled sample analysed, in a `size` window beside a study list of 12 long-named studies
/// (the fourth out of scope), as after a folder scan.
fn reviewing(size: Vec2, tag: &str) -> Harness<'static, ViewerApp> {
    reviewing_with_notes(size, &temp_dir(tag).join("notes.sqlite3"))
}

fn reviewing_with_notes(size: Vec2, db: &Path) -> Harness<'static, ViewerApp> {
    let sample = ui_support::repo("assets/samples/person45_bacteria_221.jpeg");
    let mut h = viewer_with_notes(size, Some(sample), db);
    let mut review = Review::new(1, PathBuf::from("/r"));
    review.set_rows(
        (0..12)
            .map(|i| row(&format!("study_with_a_long_name_{i:02}.dcm"), i != 3))
            .collect(),
        false,
    );
    review.listed = true;
    h.state_mut().review = Some(review);
    wait_until(&mut h, "the analysis", prepared);
    for _ in 0..4 {
        h.step();
    }
    h
}

/// At the smallest window with a folder open, the film keeps a usable width, the result column
/// stays inside the window, and the review note does not cover the result (the fixed panel
/// widths had left the canvas 0 px wide at 800 × 500, pushed the result's left edge out of the
/// window and put its label under the note pane).
#[test]
fn the_smallest_window_keeps_the_film_and_the_result_in_view() {
    let mut h = reviewing(Vec2::new(800.0, 500.0), "ui-layout-small");
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
    assert!(canvas.width() >= 240.0, "canvas {canvas:?}");
    let result = h.get_by_label("Result").rect();
    let note = h.get_by_label("Review note").rect();
    assert!(
        result.min.x >= canvas.max.x && result.max.x <= 800.0,
        "result heading {result:?}, canvas {canvas:?}"
    );
    assert!(
        note.min.y > result.max.y,
        "note {note:?} over result {result:?}"
    );
    // The label and probability are in view above the note pane.
    let p = h.get_by_label_contains("P(PNEUMONIA) =").rect();
    assert!(p.max.y < note.min.y && p.min.x >= canvas.max.x, "{p:?}");
    // The study list's confusion matrix fits its column: its "model PNEUMONIA" header ran under
    // the film and was cut after "mode". So did the "Zones vs maps" table, once unfolded.
    assert_left_column_fits(&h, &["PNEUMONIA"], canvas);
    h.get_by_label("Zones vs maps").click();
    h.step();
    h.step();
    assert!(
        h.query_by_label("chance").is_some(),
        "Zones vs maps did not unfold"
    );
    assert_left_column_fits(
        &h,
        &[
            "chance",
            "rate",
            "95 % CI",
            "hits",
            "top zone",
            "Uncertainty",
        ],
        canvas,
    );
    // The settings' combo-box labels stay whole: "Colormap" was broken as "Colorm / ap".
    // (The label names its box, so the query includes labels to find the text itself.)
    for label in ["Colormap", "Default overlay"] {
        let by = egui_kittest::kittest::by().label(label).include_labels();
        let rects: Vec<egui::Rect> = h.query_all(by).map(|n| n.rect()).collect();
        assert_eq!(rects.len(), 2, "{label}: the box and its label, {rects:?}");
        for r in rects {
            assert!(r.height() < 24.0, "{label} on more than one line: {r:?}");
        }
    }

    // And on every frame until the last check is done: the faithfulness check's progress row
    // ("faithfulness: 9/84 perturbed images" and its Cancel button) was wider than the side
    // column, which then slid right over the window's edge and let the film cover the result's
    // left edge for as long as the check ran (up to 22 px here, found by a run of this test).
    let mut frames = 0;
    let mut saw_progress = false;
    while frames < 2 || h.state().jobs.busy() || h.state().trust.job.is_some() {
        assert!(frames < 3000, "the checks did not finish");
        saw_progress |= h.query_by_label_contains("perturbed images").is_some();
        assert_film_left_of_result(&h, &format!("frame {frames}"));
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
        frames += 1;
    }
    assert!(
        saw_progress,
        "the faithfulness progress row was never shown"
    );

    // The cursor readout ("x … y …  value …  Grad-CAM …") fits the 240-px film on two lines
    // instead of running under the side column, where it was cut after "Grad-".
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
    let plate = readout_at(&mut h, canvas.center());
    assert!(
        canvas.contains_rect(plate),
        "readout {plate:?} outside the canvas {canvas:?}"
    );
    assert!(plate.height() > 25.0, "one line only: {plate:?}");

    // With a box on the film the localisation table joins the results; its "energy in boxes"
    // header made it wider than the side column, which slid over the window's edge again.
    wait_until(&mut h, "the note", |a| a.notes.draft.is_some());
    h.state_mut()
        .set_note_boxes(vec![ImageBox::from_corners((200.0, 150.0), (400.0, 350.0))]);
    for frame in 0..6 {
        h.step();
        assert_film_left_of_result(&h, &format!("frame {frame} with a box"));
    }
    assert!(h
        .query_by_label_contains("Localisation against 1 box")
        .is_some());

    // Compare mode: two 118-px panes; "Integrated Gradients +0.0012" is wider than a pane, so the
    // readout says "IG" there rather than running into the other pane.
    wait_until(&mut h, "Integrated Gradients", |a| {
        a.has_map(MapKind::IntegratedGradients)
    });
    h.state_mut().map = MapKind::IntegratedGradients;
    h.state_mut().compare = Some(MapKind::GradCam);
    h.step();
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
    let left_pane = canvas.with_max_x(canvas.center().x - 2.0);
    let plate = readout_at(&mut h, left_pane.center());
    assert!(
        left_pane.contains_rect(plate),
        "readout {plate:?} outside its pane {left_pane:?}"
    );
}

/// At a 1 024-pixel window every column of the study list is in view: the full headers ("Truth",
/// "Outcome", …) had pushed Scope, Outcome and Note past the list's edge, behind a sideways
/// scroll. They shorten to letters instead. A right-click on a header switches a column off (the
/// name then gets its room) and back on, and the choice is kept in the settings.
#[test]
fn every_study_list_column_is_in_view_and_the_reviewer_chooses_them() {
    use cxr_viewer::ui::review::SortColumn;
    use egui::accesskit::Role;
    // Where the words fit (the list's default width in a 1,400-px window) they are kept.
    let wide = reviewing(Vec2::new(1400.0, 900.0), "ui-layout-columns-wide");
    let canvas = cxr_viewer::ui::canvas::last_canvas(&wide.ctx).expect("a canvas");
    for c in SortColumn::ALL {
        let words = wide
            .query_all_by(|n| {
                n.role() == Role::Button
                    && n.label().as_deref().map(|l| l.trim_end_matches([' ', '^']))
                        == Some(c.label())
            })
            .next()
            .unwrap_or_else(|| panic!("no {:?} header in words at 1,400 px", c.label()));
        assert!(
            words.rect().max.x <= canvas.min.x,
            "{c:?} {:?}",
            words.rect()
        );
    }
    drop(wide);
    let mut h = reviewing(Vec2::new(1024.0, 700.0), "ui-layout-columns");
    // A header is a button labelled with its full or its short name (the sorted one marked).
    let is_header = |c: SortColumn| {
        move |n: &egui_kittest::kittest::AccessKitNode<'_>| {
            n.role() == Role::Button
                && n.label().is_some_and(|l| {
                    let l = l.trim_end_matches([' ', '^', 'v']);
                    l == c.label() || l == c.short_label()
                })
        }
    };
    let header = |h: &Harness<'static, ViewerApp>, c: SortColumn| -> Option<egui::Rect> {
        h.query_all_by(is_header(c)).next().map(|n| n.rect())
    };
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
    for c in SortColumn::ALL {
        let r = header(&h, c).unwrap_or_else(|| panic!("no {c:?} header"));
        assert!(
            r.max.x <= canvas.min.x,
            "the {c:?} header {r:?} is past the list's edge (film at {:?})",
            canvas.min.x
        );
    }
    let name_width = |h: &Harness<'static, ViewerApp>| {
        h.get_by_label("study_with_a_long_name_00.dcm")
            .rect()
            .width()
    };
    let before = name_width(&h);

    let switch = |h: &mut Harness<'static, ViewerApp>, on_header: SortColumn, c: SortColumn| {
        h.get_by(is_header(on_header)).click_secondary();
        h.step();
        // The menu opens on the next frame.
        h.step();
        h.get_by(|n| n.role() == Role::CheckBox && n.label().as_deref() == Some(c.title()))
            .click();
        for _ in 0..3 {
            h.step();
        }
    };
    switch(&mut h, SortColumn::Outcome, SortColumn::Outcome);
    switch(&mut h, SortColumn::Note, SortColumn::Truth);
    assert_eq!(
        h.state().settings.hidden_study_columns,
        [SortColumn::Outcome, SortColumn::Truth]
    );
    assert!(header(&h, SortColumn::Outcome).is_none());
    assert!(header(&h, SortColumn::Truth).is_none());
    assert!(
        name_width(&h) > before,
        "the name kept {before} px with two columns fewer"
    );
    switch(&mut h, SortColumn::Note, SortColumn::Outcome);
    assert_eq!(h.state().settings.hidden_study_columns, [SortColumn::Truth]);
    let r = header(&h, SortColumn::Outcome).expect("Outcome back");
    assert!(r.max.x <= canvas.min.x, "{r:?}");
}

/// Zones vs maps unfolded stays inside the study list's column at every window width from 1,000
/// to 1,800 px: its short columns ("0 %") are as wide as a grid makes any column, which the check
/// of whether it fits had not counted, so it kept its long labels and its header ran 7 px under
/// the film at 1,375 px ("chance" cut after "chanc" in a 1,400-px window on screen). Where short
/// map names are enough, the header keeps its words (1,400 px).
#[test]
fn zones_vs_maps_stays_in_the_study_list_at_every_width() {
    // The listed studies' note (the twelve share one id), with a zone and the maps' top zone
    // elsewhere: the table's cells are then short figures ("0 of 12", "0 %", "17 %"), narrower
    // than a grid's narrowest column.
    let db = temp_dir("ui-layout-zones").join("notes.sqlite3");
    let mut note = Note::new(row("study_with_a_long_name_00.dcm", true).id.unwrap());
    note.zones.insert(Zone::RightLower);
    // IG's top zone is missing (IG waits for Show anyway on out-of-scope films): its row reads
    // "0 of 0", and its hover says why.
    for map in [Saliency::GradCam, Saliency::Uncertainty] {
        note.map_top_zones.insert(map, Zone::LeftUpper);
    }
    NotesStore::open(&db).unwrap().upsert(&note).unwrap();
    for width in (1000..=1800).step_by(25).map(|w| w as f32) {
        let mut h = reviewing_with_notes(Vec2::new(width, 900.0), &db);
        wait_until(&mut h, "the note", |a| !a.notes.all().is_empty());
        let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
        h.get_by_label("Zones vs maps").click();
        h.step();
        h.step();
        // The header's cells by their exact words (the toolbar also has a "Grad-CAM").
        let header = [
            "map",
            "top zone implicated",
            "hits",
            "rate",
            "95 % CI",
            "chance",
        ];
        let cells: Vec<egui::Rect> = header
            .iter()
            .flat_map(|label| h.query_all_by_label(label).map(|n| n.rect()))
            .collect();
        assert_eq!(cells.len(), 5, "{width}: {cells:?}");
        for cell in cells {
            assert!(
                cell.max.x <= canvas.min.x,
                "{width}: {cell:?} under {canvas:?}"
            );
        }
        if width == 1400.0 {
            h.get_by_label("top zone implicated");
            assert_eq!(h.query_all_by_label("0 of 12").count(), 2);
            h.get_by_label("0 of 0").hover();
            ui_support::step_until(&mut h, "the hover saying why", |h| {
                h.query_by_label_contains("has this map's top zone yet")
                    .is_some()
            });
        }
    }
}

/// The film ends left of the side column's "Result" heading on the last frame.
fn assert_film_left_of_result(h: &Harness<'static, ViewerApp>, when: &str) {
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).expect("a canvas");
    let result = h.get_by_label("Result").rect();
    assert!(
        canvas.max.x < result.min.x,
        "{when}: canvas {canvas:?} over the result heading {result:?}"
    );
}

/// Every widget of the left column (left of the film) labelled with one of `needles` ends before
/// the film begins, and there are some.
fn assert_left_column_fits(h: &Harness<'static, ViewerApp>, needles: &[&str], canvas: egui::Rect) {
    let mut seen = 0;
    for needle in needles {
        for node in h.query_all_by_label_contains(needle) {
            let r = node.rect();
            if r.min.x < canvas.min.x {
                seen += 1;
                assert!(
                    r.max.x <= canvas.min.x,
                    "a widget labelled …{needle}… {r:?} runs under the film {canvas:?}"
                );
            }
        }
    }
    assert!(seen >= 2, "only {seen} of {needles:?} in the left column");
}

/// The plate of the one cursor readout shown with the pointer at `at`.
fn readout_at(h: &mut Harness<'static, ViewerApp>, at: egui::Pos2) -> egui::Rect {
    h.hover_at(at);
    h.step();
    h.step();
    let plates = cxr_viewer::ui::canvas::last_cursor_readouts(&h.ctx);
    assert_eq!(plates.len(), 1, "{plates:?}");
    plates[0]
}

/// The opacity slider (one widget with its value and label) moves to the next toolbar row rather
/// than running past the window's edge, at widths where it used to be cut off.
#[test]
fn the_opacity_slider_stays_inside_narrow_windows() {
    for width in [1024.0, 1100.0] {
        let mut h = viewer(Vec2::new(width, 640.0), None, "ui-layout-slider");
        for _ in 0..4 {
            h.step();
        }
        // The slider and its value box are both labelled "Opacity".
        assert!(h.query_all_by_label("Opacity").count() >= 1);
        for node in h.query_all_by_label("Opacity") {
            let r = node.rect();
            assert!(r.max.x <= width, "{width}: an opacity widget ends at {r:?}");
        }
    }
}

/// A status message longer than the window (an import naming the notes it did not take) ends
/// inside it, cut with "…" and whole on hover; it ran past the window's edge, its end unseen.
#[test]
fn a_long_status_message_ends_inside_the_window() {
    let width = 1024.0;
    let mut h = viewer(Vec2::new(width, 640.0), None, "ui-layout-status");
    let names: Vec<String> = (0..5)
        .map(|i| format!("film_{i:02}_with_a_long_name.dcm"))
        .collect();
    let text = format!(
        "imported notes.csv: 0 new, 0 updated, 5 unchanged · 5 notes in the file differ from the \
         notes here but are older (updated here since): kept these, the file's not imported: {} \
         (to import the file's, give them a later updated_at)",
        names.join(", ")
    );
    h.state_mut().set_info(text.clone());
    for _ in 0..4 {
        h.step();
    }
    let status = h.get_by_label(&text);
    let r = status.rect();
    assert!(r.max.x <= width, "the status line ends at {r:?}");
    status.hover();
    h.run_ok();
    // The hover shows the whole message: more nodes with the same text (the tooltip's).
    assert!(h.query_all_by_label(&text).count() > 1);
}

/// The shortcuts window (36 rows) scrolls inside a small window: its title and close button stay
/// in view (at 800 × 500 both were above the window's top edge) and so does its last row.
#[test]
fn the_shortcuts_window_fits_a_small_window() {
    let mut h = viewer(Vec2::new(800.0, 500.0), None, "ui-layout-help");
    h.state_mut().show_help = true;
    for _ in 0..4 {
        h.step();
    }
    // The window (its node carries the title): wholly inside the viewer.
    let window = h.get_by_label("Keyboard shortcuts").rect();
    assert!(
        window.min.y >= 0.0 && window.max.y <= 500.0,
        "shortcuts window {window:?}"
    );
    let first = h.get_by_label("Ctrl+O").rect();
    assert!(
        first.min.y > window.min.y && first.max.y <= 500.0,
        "{first:?}"
    );
    // The last row is reached by scrolling, not cut off for good.
    h.get_by_label("Esc").scroll_to_me();
    for _ in 0..4 {
        h.step();
    }
    let last = h.get_by_label("Esc").rect();
    assert!(last.max.y <= 500.0, "the last row at {last:?}");
}

/// The viewer's own file dialog (shown where the desktop has none) fits the smallest window:
/// its title, its fields and both buttons inside, the list shortened instead.
#[test]
fn the_own_file_dialog_fits_a_small_window() {
    let mut h = viewer(Vec2::new(800.0, 500.0), None, "ui-layout-dialog");
    // The scripted picker answers nothing at once, as rfd does with no portal and no zenity.
    h.get_by_label("Open…").click();
    wait_until(&mut h, "the viewer's own dialog", |a| {
        a.file_dialog.is_some()
    });
    assert_inside_800_by_500(
        &h,
        &[
            "Open chest X-ray",
            "Folder",
            "File name",
            "All files",
            "Open",
            "Cancel",
        ],
    );
    // A save dialog at its tallest: the new-folder row and a refusal line shown.
    h.key_press(egui::Key::Escape);
    h.run_ok();
    ui_support::click_in_view(&mut h, "Export notes…");
    wait_until(&mut h, "the notes export dialog", |a| {
        a.file_dialog.is_some()
    });
    h.get_by_label("New folder…").click();
    h.run_ok();
    h.get_by_label("Create").click();
    h.run_ok();
    h.run_ok();
    assert_inside_800_by_500(
        &h,
        &[
            "Export notes",
            "type the new folder's name",
            "Create",
            "Save",
            "Cancel",
        ],
    );
}

fn assert_inside_800_by_500(h: &Harness<'static, ViewerApp>, labels: &[&str]) {
    for label in labels {
        let r = h.get_by_label(label).rect();
        assert!(
            r.min.x >= 0.0 && r.min.y >= 0.0 && r.max.x <= 800.0 && r.max.y <= 500.0,
            "{label} at {r:?}"
        );
    }
}

/// The faithfulness plot's key lies under the plot, in one row where it fits, each stroke with its
/// name: in the plot (egui_plot's legend, bottom-left corner) it covered most of a 150-px data
/// area, where a faithful map's deletion curve falls.
#[test]
fn the_faithfulness_key_does_not_cover_its_curves() {
    use cxr_viewer::explain::agreement::Method;
    use cxr_viewer::explain::faithfulness::{Curves, MapFaithfulness, RandomReference};
    use cxr_viewer::ui::faithfulness_panel::{faithfulness_ui, FaithfulnessView};
    let random = Curves::new(vec![0.9, 0.8, 0.7, 0.6], vec![0.1, 0.2, 0.3, 0.4]);
    let map = MapFaithfulness::new(
        Curves::new(vec![0.9, 0.2, 0.1, 0.1], vec![0.1, 0.7, 0.8, 0.9]),
        &RandomReference {
            mean: random.clone(),
            aopcs: vec![random.aopc],
        },
    );
    let mut h = Harness::builder()
        .with_size(Vec2::new(700.0, 600.0))
        .build_ui(move |ui| {
            let view = FaithfulnessView {
                method: Method::GradCam,
                map: Some(&map),
                random: Some(&random),
                describe: None,
                agreement: None,
                sanity: None,
                running: None,
                error: None,
                cancelled: false,
            };
            faithfulness_ui(ui, &view);
        });
    h.run();
    // The plot (150 px) sits between the verdict and the AUC line.
    let verdict = h.get_by_label_contains("deletion AOPC").rect();
    let auc = h.get_by_label_contains("deletion AUC").rect();
    let names = [
        "deletion: map",
        "deletion: random",
        "insertion: map",
        "insertion: random",
    ];
    for name in names {
        let key = h.get_by_label(name).rect();
        assert!(
            key.top() >= verdict.bottom() + 150.0 && key.bottom() <= auc.top(),
            "{name} at {key:?}: not between the plot ({:?}) and the AUC line ({:?})",
            verdict.bottom(),
            auc.top()
        );
        assert!(key.width() > 18.0, "the stroke and the name: {key:?}");
    }
    let rows: Vec<f32> = names
        .iter()
        .map(|n| h.get_by_label(n).rect().center().y)
        .collect();
    assert!(
        rows.iter().all(|y| (y - rows[0]).abs() < 1.0),
        "one row at 700 px: {rows:?}"
    );
}

/// The study header of a DICOM with patient identifiers keeps its "Reveal" button inside the
/// smallest window: one line of name, modality, view, age, sex, date and size ran the button past
/// the window's right edge, where it could not be clicked (an RSNA film's header, 808 px).
#[test]
fn the_study_header_wraps_instead_of_hiding_reveal() {
    let dir = temp_dir("ui-layout-header");
    let film = dir.join("1.2.840.113619.2.55.3.2831164356.781.1591356425.467_archive_copy.dcm");
    std::fs::copy(
        ui_support::repo("tests/fixtures/dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm"),
        &film,
    )
    .unwrap();
    let mut h = viewer(Vec2::new(800.0, 500.0), Some(film), "ui-layout-header");
    wait_until(&mut h, "the film", |a| {
        a.current.as_ref().is_some_and(|c| c.study.is_some())
    });
    for _ in 0..4 {
        h.step();
    }
    assert_inside_800_by_500(&h, &["Patient: hidden", "Reveal"]);
    h.get_by_label("Reveal").click();
    for _ in 0..3 {
        h.step();
    }
    assert_inside_800_by_500(&h, &["Hide"]);
}
