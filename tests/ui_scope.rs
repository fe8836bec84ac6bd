//! The scope guard in the viewer: the banner hides the label, probability and maps of an
//! out-of-scope image until "Show anyway"; the study list's scope column data and its
//! "Out of scope" filter with its count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cxr_viewer::io::load_study;
use cxr_viewer::notes::{Finding, PredictionSnapshot, StudyId};
use cxr_viewer::scope::ScopeCheck;
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::cache::AnalysisKey;
use cxr_viewer::ui::review::{Review, SortColumn, StudyRow};
use cxr_viewer::ui::scope_banner::result_hidden;
use cxr_viewer::ui::trust_state::{current_trust_key, TrustEntry};
use egui_kittest::kittest::Queryable;
use ui_support::{harness, repo, step_until, temp_dir, tiny_model, wait_until, ScriptedPicker};

mod ui_support;

fn prepared(app: &ViewerApp) -> bool {
    app.current_entry().is_some_and(|e| e.prepared.is_some())
}

/// A CT slice (pydicom test file): out of scope by its Modality, whatever the model.
fn ct_slice() -> PathBuf {
    repo("tests/fixtures/scope/pydicom/CT_small.dcm")
}

/// The viewer with the tiny model on `file` (or nothing), answering dialogs with `picker`.
fn viewer_on(
    file: Option<PathBuf>,
    settings: cxr_viewer::ui::settings::Settings,
    picker: ScriptedPicker,
) -> egui_kittest::Harness<'static, ViewerApp> {
    harness(ViewerApp::new(
        settings,
        Arc::new(picker),
        tiny_model(),
        file,
    ))
}

#[test]
fn banner_hides_the_result_until_show_anyway() {
    let settings = ui_support::fast_settings(&temp_dir("ui-scope").join("notes.sqlite3"));
    let mut h = viewer_on(Some(ct_slice()), settings, ScriptedPicker::default());
    wait_until(&mut h, "the prediction", prepared);
    let banner = "Outside the model's scope: not a projection radiograph (Modality CT)";
    h.get_by_label(banner);
    assert!(result_hidden(h.state()));
    let probability = |h: &egui_kittest::Harness<'_, ViewerApp>| {
        h.query_all_by_label_contains("P(PNEUMONIA) =").count()
    };
    assert_eq!(probability(&h), 0, "probability shown behind the banner");
    // The toolbar says the maps are hidden, not "dimmed", until Show anyway dims them (the
    // tiny model's answer is also uncertain: "dimmed: uncertain; out of scope").
    let toolbar = |h: &egui_kittest::Harness<'_, ViewerApp>, start: &str| {
        h.query_all_by_label_contains("out of scope")
            .filter(|n| n.value().is_some_and(|v| v.starts_with(start)))
            .count()
    };
    assert_eq!(toolbar(&h, "hidden: "), 1);
    assert_eq!(toolbar(&h, "dimmed: "), 0);

    h.get_by_label("Show anyway").click();
    h.run_ok();
    assert!(!result_hidden(h.state()));
    assert_eq!(probability(&h), 1, "probability after Show anyway");
    assert_eq!(toolbar(&h, "hidden: "), 0);
    assert_eq!(toolbar(&h, "dimmed: "), 1);
    // The banner stays, its button now hides the result again.
    h.get_by_label(banner);
    h.get_by_label("Hide the result").click();
    h.run_ok();
    assert_eq!(probability(&h), 0);

    // An in-scope film shows its result without a banner.
    let film = repo("assets/samples/person45_bacteria_221.jpeg");
    h.state_mut().open(film);
    wait_until(&mut h, "the film's prediction", prepared);
    assert!(!result_hidden(h.state()));
    assert_eq!(probability(&h), 1);
    assert_eq!(
        h.query_all_by_label_contains("Outside the model's scope")
            .count(),
        0
    );
}

/// The toolbar's "hidden: out of scope" and "dimmed: …" are one piece each: at some window widths
/// the wrapped toolbar row split "hidden: out of" from "scope", which then began the next row on
/// its own (seen at 1,280 points, a HiDPI screen at scale 2).
#[test]
fn the_toolbar_says_hidden_or_dimmed_on_one_line_at_every_width() {
    let settings = ui_support::fast_settings(&temp_dir("ui-scope-wrap").join("notes.sqlite3"));
    let mut h = viewer_on(Some(ct_slice()), settings, ScriptedPicker::default());
    wait_until(&mut h, "the prediction", prepared);
    let heights = |h: &mut egui_kittest::Harness<'static, ViewerApp>, start: &str| {
        let heights: Vec<f32> = (1000..=1500)
            .step_by(10)
            .map(|width| {
                h.set_size(egui::vec2(width as f32, 950.0));
                h.run_ok();
                let tag = h
                    .query_all_by_label_contains("out of scope")
                    .find(|n| n.value().is_some_and(|v| v.starts_with(start)))
                    .unwrap_or_else(|| panic!("no {start:?} in the toolbar at {width} px"));
                tag.rect().height()
            })
            .collect();
        let line = h.get_by_label("Open folder…").rect().height();
        assert!(
            heights.iter().all(|&x| x <= line),
            "{start:?}: {heights:?} (a button is {line} high)"
        );
    };
    heights(&mut h, "hidden: ");
    h.get_by_label("Show anyway").click();
    h.run_ok();
    heights(&mut h, "dimmed: ");
}

#[test]
fn an_in_scope_verdict_without_an_age_says_it_rests_on_the_pixels() {
    use cxr_viewer::ui::scope_banner::scope_banner_ui;
    let note = "scope was checked from the image alone";
    let shown = |scope: ScopeCheck| {
        let mut h = egui_kittest::Harness::new_ui(move |ui| {
            scope_banner_ui(ui, &scope, false);
        });
        h.run();
        h.query_all_by_label_contains(note).count()
    };
    // A JPEG scored by the pixel detector: no age anywhere.
    let pixels_only = ScopeCheck {
        in_scope: true,
        score: Some(1.0),
        threshold: Some(2.3),
        ..Default::default()
    };
    assert_eq!(shown(pixels_only.clone()), 1);
    // A DICOM whose header gave the age, or a film already out of scope: no note.
    assert_eq!(
        shown(ScopeCheck {
            age_known: true,
            ..pixels_only.clone()
        }),
        0
    );
    assert_eq!(
        shown(ScopeCheck {
            in_scope: false,
            reasons: vec!["body part HIP".into()],
            ..pixels_only
        }),
        0
    );
}

fn row(name: &str, scope: Option<ScopeCheck>) -> StudyRow {
    StudyRow {
        path: PathBuf::from(format!("/r/{name}")),
        relative: name.to_string(),
        folder_hint: None,
        name_shared: 0,
        folder_truth: None,
        id: Some(StudyId::sha256(&[name.len() as u8; 32])),
        prediction: scope.as_ref().map(|_| PredictionSnapshot {
            predicted: Finding::Positive,
            probability: 0.9,
            uncertain: false,
            in_scope: scope.as_ref().map(|s| s.in_scope),
        }),
        error: None,
        scope,
        stamp: None,
    }
}

fn check(in_scope: bool) -> ScopeCheck {
    ScopeCheck {
        in_scope,
        reasons: if in_scope {
            vec![]
        } else {
            vec!["body part HIP".into()]
        },
        ..Default::default()
    }
}

/// The folder `/r` listing `rows`, as after a scan.
fn review_of(rows: Vec<StudyRow>) -> Review {
    let mut review = Review::new(1, PathBuf::from("/r"));
    review.set_rows(rows, false);
    review
}

/// A viewer (no film open) whose study list shows `review`, as after a folder scan.
fn listing(mut review: Review, tag: &str) -> egui_kittest::Harness<'static, ViewerApp> {
    let settings = ui_support::fast_settings(&temp_dir(tag).join("notes.sqlite3"));
    let mut h = viewer_on(None, settings, ScriptedPicker::default());
    review.listed = true;
    h.state_mut().review = Some(review);
    h
}

#[test]
fn study_list_out_of_scope_filter_and_count() {
    let mut review = review_of(vec![
        row("a_in", Some(check(true))),
        row("b_hip", Some(check(false))),
        row("c_pending", None),
        row("d_out", Some(check(false))),
    ]);
    let notes = HashMap::new();
    assert_eq!(review.counts(&notes, 0).out_of_scope, 2);
    let names = |r: &Review| -> Vec<String> {
        r.visible(&notes, 0)
            .into_iter()
            .map(|i| r.rows[i].relative.clone())
            .collect()
    };
    assert_eq!(names(&review).len(), 4);
    review.out_of_scope_only = true;
    assert_eq!(names(&review), ["b_hip", "d_out"]);
    review.out_of_scope_only = false;
    // The scope column sorts flagged studies first when descending.
    review.sort_by(SortColumn::Scope);
    assert_eq!(names(&review)[..2], ["b_hip", "d_out"]);
    // A prediction arriving later updates the count.
    review
        .row_mut(&PathBuf::from("/r/c_pending"))
        .unwrap()
        .scope = Some(check(false));
    assert_eq!(review.counts(&notes, 0).out_of_scope, 3);
}

/// In the study list an out-of-scope study's answer stays visible for the annotator but dimmed,
/// its probability in parentheses, as on the result panel after "Show anyway".
#[test]
fn study_list_shows_an_out_of_scope_probability_in_parentheses() {
    let review = review_of(vec![
        row("a_in", Some(check(true))),
        row("b_hip", Some(check(false))),
        row("d_out", Some(check(false))),
    ]);
    let mut h = listing(review, "ui-scope-list");
    step_until(&mut h, "the list", |h| {
        h.query_all_by_label_contains("0.90").count() >= 3
    });
    assert_eq!(
        h.query_all_by_label("0.90").count(),
        1,
        "the in-scope study"
    );
    assert_eq!(
        h.query_all_by_label("(0.90)").count(),
        2,
        "the two out of scope"
    );
}

/// The probability cells truncate, so the column's width must allow for the parentheses even
/// when the first out-of-scope row arrives after the list was laid out (it read "(0…").
#[test]
fn a_late_out_of_scope_probability_is_not_cut_off() {
    let review = review_of(vec![
        row("a_in", Some(check(true))),
        row("b_in", Some(check(true))),
        row("c_later", None),
    ]);
    let mut h = listing(review, "ui-scope-late");
    let shown = |h: &mut egui_kittest::Harness<'_, ViewerApp>, label: &str| {
        step_until(h, label, |h| h.query_all_by_label(label).count() > 0);
        // Two frames more for the table to settle its column widths.
        h.step();
        h.step();
    };
    shown(&mut h, "0.90");
    // The third study's prediction comes in: out of scope.
    {
        let review = h.state_mut().review.as_mut().unwrap();
        let late = review.row_mut(&PathBuf::from("/r/c_later")).unwrap();
        *late = row("c_later", Some(check(false)));
    }
    shown(&mut h, "(0.90)");
    ui_support::assert_cell_not_cut(&h, "(0.90)");
}

/// The folder's confusion line gains an "in scope only" line, as `eval` prints it, once the
/// scope guard has flagged a labelled study (hand counts: all three predicted PNEUMONIA; overall
/// TP 1, FP 2; without the flagged one TP 1, FP 1).
#[test]
fn the_folder_metrics_also_leave_out_of_scope_studies_out() {
    let review = review_of(vec![
        labelled("a_tp", Finding::Positive, true),
        labelled("b_fp_hip", Finding::Negative, false),
        labelled("c_fp", Finding::Negative, true),
    ]);
    let notes = HashMap::new();
    let counts = review.counts(&notes, 0);
    assert_eq!((counts.tp, counts.fp, counts.tn, counts.fn_), (1, 2, 0, 0));
    assert_eq!(counts.in_scope, [1, 1, 0, 0]);

    let mut h = listing(review, "ui-scope-metrics");
    step_until(&mut h, "the in-scope line", |h| {
        h.query_all_by_label_contains("in scope only:")
            .next()
            .is_some()
    });
    h.get_by_label("accuracy 0.333 · sensitivity 1.000 · specificity 0.000 (n = 3)");
    h.get_by_label("in scope only: accuracy 0.500 · sensitivity 1.000 · specificity 0.000 (n = 2)");
}

/// A study predicted PNEUMONIA whose folder says `truth`.
fn labelled(name: &str, truth: Finding, in_scope: bool) -> StudyRow {
    StudyRow {
        folder_truth: Some(truth),
        ..row(name, Some(check(in_scope)))
    }
}

/// An out-of-scope study's outcome is no error of the model in its domain: in parentheses and
/// dimmed like its probability (it was a red "FP" beside the dimmed answer), and never cut off.
#[test]
fn study_list_shows_an_out_of_scope_outcome_in_parentheses() {
    let review = review_of(vec![
        labelled("a_tp", Finding::Positive, true),
        labelled("b_fp_hip", Finding::Negative, false),
        labelled("c_fp", Finding::Negative, true),
        labelled("d_tp_hip", Finding::Positive, false),
    ]);
    let mut h = listing(review, "ui-scope-outcome");
    step_until(&mut h, "the outcomes", |h| {
        h.query_all_by_label_contains("FP").count() >= 2
    });
    h.step();
    h.step();
    for (label, n) in [("TP", 1), ("FP", 1), ("(FP)", 1), ("(TP)", 1)] {
        assert_eq!(h.query_all_by_label(label).count(), n, "{label}");
    }
    ui_support::assert_cell_not_cut(&h, "(FP)");
}

/// A folder of an in-scope film, then the CT slice and an MR slice, the film on screen.
fn film_then_ct(tag: &str) -> egui_kittest::Harness<'static, ViewerApp> {
    let dir = temp_dir(tag);
    std::fs::copy(
        repo("assets/samples/person45_bacteria_221.jpeg"),
        dir.join("a_film.jpeg"),
    )
    .unwrap();
    std::fs::copy(ct_slice(), dir.join("b_ct.dcm")).unwrap();
    std::fs::copy(
        repo("tests/fixtures/scope/pydicom/MR_small.dcm"),
        dir.join("c_mr.dcm"),
    )
    .unwrap();
    let settings = ui_support::fast_settings(&dir.join("notes.sqlite3"));
    let mut h = viewer_on(None, settings, ScriptedPicker::default());
    h.state_mut().open_folder(&dir);
    wait_until(&mut h, "the film on screen", |app| {
        ui_support::current_path(app).is_some_and(|p| p.ends_with("a_film.jpeg"))
    });
    h
}

/// Every stage of the image on screen that runs by itself has finished: analysis job,
/// faithfulness check, and the analysis of the next study in advance.
fn settled(app: &ViewerApp) -> bool {
    app.current_entry()
        .is_some_and(|e| e.prepared.is_some() && e.gradcam.is_some() && e.uncertainty.is_some())
        && !app.jobs.busy()
        && app.trust.job.is_none()
}

/// The cache key the viewer gives the study Next opens.
fn next_key(app: &ViewerApp) -> AnalysisKey {
    let next = app.step_target(1).unwrap();
    let window = load_study(&next).unwrap().default_window;
    AnalysisKey::new(next, &window, app.settings.mc_samples, 0)
}

/// A few more frames, with time for workers: whatever would start by itself has started.
fn idle_frames(h: &mut egui_kittest::Harness<'static, ViewerApp>) {
    for _ in 0..20 {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The checks of the image on screen (faithfulness, sanity), if any ran.
fn screen_checks(app: &ViewerApp) -> Option<&TrustEntry> {
    app.trust
        .entry(&current_trust_key(app).expect("an image on screen"))
}

#[test]
fn an_out_of_scope_film_gets_its_integrated_gradients_only_after_show_anyway() {
    let mut h = film_then_ct("ui-scope-ig");
    let ig = h
        .state()
        .wanted_ig()
        .expect("IG runs automatically by default");
    let has_ig = |app: &ViewerApp| app.current_entry().is_some_and(|e| e.ig.contains_key(&ig));
    // The film in scope: IG and its faithfulness check by themselves, as always; then the CT
    // in advance, without IG.
    let ct = next_key(h.state());
    wait_until(&mut h, "the film's IG", has_ig);
    wait_until(&mut h, "the CT's cheap stages in advance", |app| {
        settled(app) && app.cache.peek(&ct).is_some_and(|e| e.uncertainty.is_some())
    });
    idle_frames(&mut h);
    assert!(
        h.state().cache.peek(&ct).unwrap().ig.is_empty(),
        "IG computed in advance for a hidden out-of-scope result"
    );

    h.get_by_label("Next >").click();
    wait_until(&mut h, "the CT on screen", settled);
    assert!(result_hidden(h.state()));
    idle_frames(&mut h);
    let app = h.state();
    assert!(
        app.current_entry().unwrap().ig.is_empty(),
        "IG computed for a hidden out-of-scope result"
    );
    assert!(!app.jobs.busy() && app.trust.job.is_none());
    assert!(
        screen_checks(app).is_none_or(|e| e.faithfulness.is_none()),
        "faithfulness checked for a hidden out-of-scope result"
    );
    assert_eq!(
        h.query_all_by_label_contains("Integrated Gradients 0/")
            .count(),
        0,
        "IG progress in the status bar"
    );

    // Show anyway: IG, then its faithfulness check, as for a film in scope.
    h.get_by_label("Show anyway").click();
    wait_until(&mut h, "the CT's IG after Show anyway", has_ig);
    wait_until(&mut h, "the CT's faithfulness check", |app| {
        screen_checks(app).is_some_and(|e| e.faithfulness.is_some())
    });

    // A result shown anyway on screen: the next study (the MR, out of scope too) is analysed
    // and checked in advance in full, so S shows it complete at once.
    let mr = next_key(h.state());
    let mr_trust = (mr.clone(), Some(ig));
    wait_until(&mut h, "the MR analysed and checked in advance", |app| {
        app.cache.peek(&mr).is_some_and(|e| e.ig.contains_key(&ig))
            && app
                .trust
                .entry(&mr_trust)
                .is_some_and(|e| e.faithfulness.is_some())
            && !app.jobs.busy()
    });
    h.key_press(egui::Key::ArrowDown);
    h.step();
    assert_eq!(h.state().current.as_ref().unwrap().path, mr.path);
    assert!(result_hidden(h.state()), "each study starts hidden");
    h.key_press(egui::Key::S);
    h.step();
    assert!(!result_hidden(h.state()));
    assert!(has_ig(h.state()));
    assert!(
        !h.state().jobs.busy() && h.state().trust.job.is_none(),
        "nothing left to compute after S"
    );
    h.key_press(egui::Key::S);
    h.step();
    assert!(result_hidden(h.state()), "S hides the result again");
}

/// An exported view says no more than the screen: no map while the out-of-scope result is
/// hidden, and after Show anyway the map as dimmed as on screen, the PNG's marker saying so.
/// The export drew the map at full strength in both cases.
#[test]
fn the_exported_view_hides_and_dims_the_map_as_the_screen_does() {
    use cxr_viewer::io::viewer_export::marker;
    use cxr_viewer::trust::{gated_opacity, Gate};
    use cxr_viewer::ui::export::render_view;
    use cxr_viewer::ui::render::map_scale;

    let dir = temp_dir("ui-scope-export");
    let (hidden_png, shown_png) = (dir.join("hidden.png"), dir.join("shown.png"));
    let picker = ScriptedPicker::default().saving(&[hidden_png.clone(), shown_png.clone()]);
    let settings = ui_support::fast_settings(&dir.join("notes.sqlite3"));
    let mut h = viewer_on(Some(ct_slice()), settings, picker);
    wait_until(&mut h, "the CT's Grad-CAM", |app| {
        app.current_entry().is_some_and(|e| e.gradcam.is_some())
    });
    assert!(result_hidden(h.state()));
    let saved = |h: &mut egui_kittest::Harness<'static, ViewerApp>, path: &std::path::Path| {
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
        let name = path.display().to_string();
        wait_until(h, "the export", |app| {
            app.status.as_ref().is_some_and(|s| s.text.contains(&name))
        });
        image::open(path).unwrap().to_rgb8()
    };

    let img = saved(&mut h, &hidden_png);
    assert!(
        img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "a map in the export of a hidden result"
    );
    assert_eq!(
        marker(&hidden_png).unwrap(),
        "film as displayed, its map hidden: outside the model's scope"
    );

    h.key_press(egui::Key::S);
    h.step();
    assert!(!result_hidden(h.state()));
    let img = saved(&mut h, &shown_png);
    let app = h.state();
    let (grid, _, mean) = app.map_of(app.map).unwrap();
    let scale = map_scale(app.map, &grid, mean.as_ref());
    let current = app.current.as_ref().unwrap();
    let study = current.study.clone().unwrap();
    let mut dimmed = app.settings.clone();
    let gate = Gate {
        reasons: vec!["out of scope".into()],
    };
    dimmed.alpha = gated_opacity(dimmed.alpha, Some(&gate));
    let expected = render_view(
        &study,
        &current.view.window,
        current.view.invert,
        Some(&(grid, scale)),
        &dimmed,
    );
    assert!(img == expected, "the export is not dimmed as on screen");
    let what = marker(&shown_png).unwrap();
    assert!(
        what.starts_with("film with Grad-CAM overlay, dimmed: ") && what.contains("out of scope"),
        "{what}"
    );
}

/// A note records whether the film was inside the model's scope when it was written, so an
/// export can tell a verdict on a CT slice from one on a child's chest film. No verdict is taken
/// on an answer the scope guard hides (Y used to record agreement with an answer the reviewer
/// had not seen).
#[test]
fn a_note_records_whether_the_film_was_in_scope() {
    use cxr_viewer::notes::{Filter, NotesStore};
    let dir = temp_dir("ui-scope-note");
    let db = dir.join("notes.sqlite3");
    let film = repo("assets/samples/person45_bacteria_221.jpeg");
    let mut h = viewer_on(
        Some(ct_slice()),
        ui_support::fast_settings(&db),
        ScriptedPicker::default(),
    );
    let agree_saved = |h: &mut egui_kittest::Harness<'static, ViewerApp>| {
        wait_until(h, "the prediction and the note", |app| {
            prepared(app) && app.notes.draft.is_some()
        });
        h.key_press(egui::Key::Y);
        wait_until(h, "the verdict saved", |app| {
            app.notes.all_saved()
                && app
                    .notes
                    .draft
                    .as_ref()
                    .and_then(|d| app.notes.all().get(&d.note.study))
                    .is_some_and(|n| n.agreement.is_some())
        });
    };
    // The model's answer hidden: no verdict on it (Y says why), until S shows it.
    wait_until(&mut h, "the CT's prediction and note", |app| {
        prepared(app) && app.notes.draft.is_some()
    });
    h.key_press(egui::Key::Y);
    h.step();
    let app = h.state();
    assert_eq!(app.notes.draft.as_ref().unwrap().note.agreement, None);
    assert_eq!(
        app.status.as_ref().map(|s| s.text.as_str()),
        Some(cxr_viewer::ui::notes_panel::VERDICT_HIDDEN)
    );
    assert!(
        {
            use egui_kittest::kittest::NodeT;
            h.get_by_label("Agree").accesskit_node().is_disabled()
        },
        "the verdict buttons are off while the answer is hidden"
    );
    h.key_press(egui::Key::S);
    h.step();
    agree_saved(&mut h);
    h.state_mut().open(film);
    wait_until(&mut h, "the film on screen", |app| {
        ui_support::current_path(app).is_some_and(|p| p.ends_with("person45_bacteria_221.jpeg"))
    });
    agree_saved(&mut h);
    drop(h);

    let notes = NotesStore::open(&db).unwrap().list(Filter::All).unwrap();
    let mut in_scope: Vec<(String, Option<bool>)> = notes
        .iter()
        .map(|n| {
            (
                n.file_name.clone().unwrap(),
                n.prediction.and_then(|p| p.in_scope),
            )
        })
        .collect();
    in_scope.sort();
    assert_eq!(
        in_scope,
        [
            ("CT_small.dcm".to_string(), Some(false)),
            ("person45_bacteria_221.jpeg".to_string(), Some(true)),
        ]
    );
}

/// The sanity check shows the result's maps beside the randomised ones, so it waits for "Show
/// anyway" like the result: `K` on a hidden result opens the window with a line saying so and
/// starts nothing (with IG off it used to run at once and draw the hidden map), then `S` runs
/// it.
#[test]
fn the_sanity_check_of_a_hidden_result_waits_for_show_anyway() {
    use cxr_viewer::ui::trust_state::TrustJobKind;
    let dir = temp_dir("ui-scope-sanity");
    let mut settings = ui_support::fast_settings(&dir.join("notes.sqlite3"));
    settings.run_ig = false;
    let mut h = viewer_on(Some(ct_slice()), settings, ScriptedPicker::default());
    wait_until(&mut h, "the CT's cheap stages", settled);
    assert!(result_hidden(h.state()));
    h.key_press(egui::Key::K);
    idle_frames(&mut h);
    assert!(h.state().trust.sanity_open);
    let app = h.state();
    assert!(
        app.trust.job.is_none() && screen_checks(app).is_none_or(|e| e.sanity.is_none()),
        "a check ran behind the banner"
    );
    h.get_by_label_contains("runs, and its maps show, after Show anyway (S)");

    h.key_press(egui::Key::S);
    wait_until(&mut h, "the sanity check after Show anyway", |app| {
        screen_checks(app).is_some_and(|e| e.sanity.is_some())
            || app
                .trust
                .job
                .as_ref()
                .is_some_and(|j| j.kind == TrustJobKind::Sanity)
    });
    assert_eq!(
        h.query_all_by_label_contains("after Show anyway (S)")
            .count(),
        0
    );
}
