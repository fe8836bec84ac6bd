//! The box tool driven through the real widgets: turn it on from the toolbar, draw a box on the
//! film with the pointer, find it in the notes database in image pixels, undo it with Ctrl+Z.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ui_support;

use std::sync::Arc;

use cxr_viewer::notes::{identity, ImageBox, NotesStore};
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::transform::ScreenFromImage;
use egui::{Key, Modifiers, Pos2, Vec2};
use egui_kittest::kittest::Queryable;
use ui_support::*;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 0.05
}

#[test]
fn a_box_drawn_with_the_pointer_is_saved_in_image_pixels_and_undone() {
    let dir = temp_dir("box-ui");
    let db = dir.join("notes.sqlite3");
    let film = repo("tests/fixtures/reference/person45_bacteria_221.jpeg");
    let app = ViewerApp::new(
        fast_settings(&db),
        Arc::new(ScriptedPicker::default()),
        tiny_model(),
        Some(film.clone()),
    );
    let mut h = harness(app);
    wait_until(&mut h, "the note of the film", |a| a.notes.draft.is_some());
    wait_until(&mut h, "Grad-CAM", |a| {
        a.has_map(cxr_viewer::ui::settings::MapKind::GradCam)
    });

    h.get_by_label("Box tool").click();
    h.run_ok();
    assert!(h.state().box_tool.active);

    // The view is fitted; zoom in around the centre first so the drag is not on a fitted view.
    h.key_press(Key::Plus);
    h.run_ok();
    let canvas = cxr_viewer::ui::canvas::last_canvas(&h.ctx).unwrap();
    let (screen_from_image, size) = {
        let c = h.state().current.as_ref().unwrap();
        let s = c.study.as_ref().unwrap();
        let size = Vec2::new(s.width as f32, s.height as f32);
        (
            c.view
                .transform
                .unwrap_or_else(|| ScreenFromImage::fit(size, canvas)),
            size,
        )
    };
    assert!(screen_from_image.zoom > ScreenFromImage::fit(size, canvas).zoom);
    // Drag from image (0.40 W, 0.45 H) to (0.55 W, 0.60 H), in steps like a hand would.
    let a_in_image = Pos2::new(0.40 * size.x, 0.45 * size.y);
    let b_in_image = Pos2::new(0.55 * size.x, 0.60 * size.y);
    let (a, b) = (
        screen_from_image.apply(a_in_image),
        screen_from_image.apply(b_in_image),
    );
    assert!(canvas.contains(a) && canvas.contains(b));
    h.hover_at(a);
    h.run_ok();
    h.drag_at(a);
    h.step();
    for k in 1..=6 {
        h.hover_at(a + (b - a) * (k as f32 / 6.0));
        h.step();
    }
    h.drop_at(b);
    h.run_ok();

    let drawn = h.state().note_boxes().to_vec();
    assert_eq!(drawn.len(), 1, "{drawn:?}");
    let expected =
        ImageBox::from_corners((a_in_image.x, a_in_image.y), (b_in_image.x, b_in_image.y));
    let d = drawn[0];
    assert!(
        close(d.x, expected.x)
            && close(d.y, expected.y)
            && close(d.width, expected.width)
            && close(d.height, expected.height),
        "{d:?} vs {expected:?}"
    );
    // The view did not pan while drawing.
    assert_eq!(
        h.state().current.as_ref().unwrap().view.transform,
        Some(screen_from_image)
    );

    // Autosave: the box reaches the database (read by a second connection, as another
    // instance would), with the film's size and Grad-CAM's top zone.
    let study = identity::study_id(&film, &cxr_viewer::io::load_study(&film).unwrap()).unwrap();
    let store = NotesStore::open(&db).unwrap();
    let stored = |store: &NotesStore| store.get(&study).unwrap();
    wait_until(&mut h, "the box saved", |_| {
        stored(&store).is_some_and(|n| n.boxes == drawn)
    });
    let note = stored(&store).unwrap();
    assert_eq!(note.image_size, Some((size.x as u32, size.y as u32)));
    assert!(note
        .map_top_zones
        .contains_key(&cxr_viewer::notes::Saliency::GradCam));

    // The results panel scores the maps against it, with chance for the energy: what a flat
    // map puts in the box (checked by hand in notes_localisation).
    assert!(h
        .query_by_label_contains("Localisation against 1 box")
        .is_some());
    let input = h.state().engine().unwrap().model.config.input.clone();
    let chance = cxr_viewer::explain::localisation::uniform_energy_in_boxes(
        (input.width, input.height),
        (size.x as usize, size.y as usize),
        &drawn,
    )
    .unwrap();
    assert!(chance > 0.0 && chance < 1.0, "{chance}");
    assert!(
        h.query_by_label_contains(&format!(
            "A flat map would put {:.0} % of its energy in these boxes",
            100.0 * chance
        ))
        .is_some(),
        "no chance line for {chance}"
    );

    // Ctrl+Z takes it back, and that is saved too.
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_ok();
    assert!(h.state().note_boxes().is_empty());
    wait_until(&mut h, "the undo saved", |_| {
        stored(&store).is_some_and(|n| n.boxes.is_empty())
    });
}
