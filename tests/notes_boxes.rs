//! Opacity boxes in review notes: database round trip, migration from schema version 2, CSV and
//! JSON export/import (merging without duplicates), RSNA label export, zone agreement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::scratch;
use cxr_viewer::notes::{
    self, rsna, zone_agreement::zone_agreement, ExportOptions, Filter, Finding, Format, ImageBox,
    Note, NotesStore, Saliency, StudyId, Zone, SCHEMA_VERSION,
};

fn id(n: u8) -> StudyId {
    StudyId::sha256(&[n; 32])
}

/// A note with two boxes (non-integer coordinates, to check exact round trips), the film's size
/// and the maps' top zones.
fn boxed_note(n: u8) -> Note {
    let mut note = Note::new(id(n));
    note.zones.insert(Zone::RightLower);
    note.boxes = vec![
        ImageBox::new(505.0, 399.0, 242.0, 414.0),
        ImageBox::new(166.25, 216.5, 293.1, 620.0),
    ];
    note.image_size = Some((1024, 1024));
    note.map_top_zones
        .insert(Saliency::GradCam, Zone::LeftLower);
    note.map_top_zones
        .insert(Saliency::IntegratedGradients, Zone::RightUpper);
    note.text = format!("note {n}");
    note.with_location(Path::new(&format!("/data/PNEUMONIA/film{n}.dcm")))
}

#[test]
fn boxes_round_trip_through_the_database_and_count_as_content() {
    let tmp = scratch("notes-boxes-db");
    let store = NotesStore::open(&tmp.path().join("n.sqlite3")).unwrap();
    let saved = store.upsert(&boxed_note(1)).unwrap();
    let back = store.get(&id(1)).unwrap().unwrap();
    assert_eq!(back, saved);
    assert_eq!(back.boxes, boxed_note(1).boxes);
    assert_eq!(back.image_size, Some((1024, 1024)));
    assert_eq!(
        back.map_top_zones.get(&Saliency::GradCam),
        Some(&Zone::LeftLower)
    );
    // Moving a box is an edit: updated_at moves on.
    let mut moved = back.clone();
    moved.boxes[0].x += 10.0;
    let saved2 = store.upsert(&moved).unwrap();
    assert!(saved2.updated_at > saved.updated_at);
    assert_eq!(store.get(&id(1)).unwrap().unwrap().boxes[0].x, 515.0);
    // An invalid box is refused with a message naming it, and nothing is written.
    let mut bad = saved2.clone();
    bad.boxes.push(ImageBox::new(1.0, 2.0, 0.0, 5.0));
    let e = store.upsert(&bad).unwrap_err().to_string();
    assert!(
        e.contains("box '1 2 0 5'") && e.contains("positive width"),
        "{e}"
    );
    assert_eq!(store.get(&id(1)).unwrap().unwrap(), saved2);
}

/// Schema version 2 exactly as it shipped (frozen copy: the v1 table plus the v2 columns).
const V2_SCHEMA: &str = "CREATE TABLE notes (
    study_id   TEXT PRIMARY KEY NOT NULL,
    agreement  TEXT CHECK (agreement IN ('agree', 'disagree', 'unsure')),
    categories TEXT NOT NULL DEFAULT '',
    zones      TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL DEFAULT '',
    reviewer   TEXT NOT NULL DEFAULT '',
    file_name  TEXT,
    file_path  TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
ALTER TABLE notes ADD COLUMN ground_truth TEXT CHECK (ground_truth IN ('positive', 'negative'));
ALTER TABLE notes ADD COLUMN predicted TEXT CHECK (predicted IN ('positive', 'negative'));
ALTER TABLE notes ADD COLUMN probability REAL CHECK (probability BETWEEN 0.0 AND 1.0);
ALTER TABLE notes ADD COLUMN model_uncertain INTEGER CHECK (model_uncertain IN (0, 1));
CREATE INDEX notes_by_updated ON notes (updated_at);
PRAGMA user_version = 2;";

#[test]
fn version_2_database_is_migrated_and_then_keeps_boxes() {
    let tmp = scratch("notes-boxes-v2");
    let db = tmp.path().join("notes.sqlite3");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(V2_SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO notes VALUES (?1, 'disagree', '', 'right_lower', 'v2 note', 'R', \
             'film.dcm', NULL, '2026-01-01T10:00:00.000Z', '2026-01-02T10:00:00.000Z', \
             'positive', 'negative', 0.25, 0)",
            ["dicom:1.2.3.4.5"],
        )
        .unwrap();
    }
    assert_eq!(SCHEMA_VERSION, 4);
    let store = NotesStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), 4);
    store.check_integrity().unwrap();
    let study = StudyId::parse("dicom:1.2.3.4.5").unwrap();
    let old = store.get(&study).unwrap().expect("the v2 note survives");
    assert_eq!(old.text, "v2 note");
    // Written before the scope guard's verdict was recorded: unknown, not "out".
    assert_eq!(old.prediction.unwrap().in_scope, None);
    assert_eq!(old.prediction.unwrap().probability, 0.25);
    assert!(old.boxes.is_empty() && old.image_size.is_none() && old.map_top_zones.is_empty());
    let mut edited = old.clone();
    edited.boxes.push(ImageBox::new(10.5, 20.0, 30.0, 40.0));
    edited.image_size = Some((440, 440));
    let saved = store.upsert(&edited).unwrap();
    drop(store);
    let again = NotesStore::open(&db).unwrap();
    assert_eq!(again.get(&study).unwrap().unwrap(), saved);
}

fn export_import(format: Format) {
    let tmp = scratch("notes-boxes-transfer");
    let a = NotesStore::open(&tmp.path().join("a.sqlite3")).unwrap();
    let saved = [
        a.upsert(&boxed_note(1)).unwrap(),
        a.upsert(&boxed_note(2)).unwrap(),
    ];
    let text = notes::export(&a.list(Filter::All).unwrap(), format, &ExportOptions::new()).unwrap();
    let parsed = notes::parse(&text, format, "export").unwrap();
    assert_eq!(parsed.len(), 2);
    for p in &parsed {
        let original = saved.iter().find(|s| s.study == p.study).unwrap();
        // The path is left out of exports by default; everything else, boxes included, is kept.
        assert_eq!(p.boxes, original.boxes);
        assert_eq!(p.image_size, original.image_size);
        assert_eq!(p.map_top_zones, original.map_top_zones);
    }
    // Merging into another database twice inserts once, with the boxes, and never duplicates.
    let b = NotesStore::open(&tmp.path().join("b.sqlite3")).unwrap();
    let first = b.merge(&parsed).unwrap();
    let second = b.merge(&parsed).unwrap();
    assert_eq!(
        (first.inserted, second.inserted, second.unchanged),
        (2, 0, 2)
    );
    let merged = b.get(&id(1)).unwrap().unwrap();
    assert_eq!(merged.boxes.len(), 2);
    assert_eq!(merged.boxes, saved[0].boxes);
}

#[test]
fn csv_export_and_import_keep_boxes() {
    export_import(Format::Csv);
}

#[test]
fn json_export_and_import_keep_boxes() {
    export_import(Format::Json);
}

#[test]
fn csv_cells_and_json_fields_have_the_documented_form() {
    let note = boxed_note(3);
    let csv = notes::export(
        std::slice::from_ref(&note),
        Format::Csv,
        &ExportOptions::new(),
    )
    .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| {
        row.get(headers.iter().position(|h| h == name).unwrap())
            .unwrap()
            .to_string()
    };
    assert_eq!(cell("boxes"), "505 399 242 414;166.25 216.5 293.1 620");
    assert_eq!(cell("map_top_zones"), "gradcam=left_lower;ig=right_upper");
    assert_eq!(
        (cell("image_width"), cell("image_height")),
        ("1024".into(), "1024".into())
    );
    let json: serde_json::Value =
        serde_json::from_str(&notes::export(&[note], Format::Json, &ExportOptions::new()).unwrap())
            .unwrap();
    assert_eq!(json["version"], 3);
    assert_eq!(
        json["notes"][0]["boxes"][1],
        serde_json::json!({"x": 166.25, "y": 216.5, "width": 293.1, "height": 620.0})
    );
    assert_eq!(json["zone_agreement"][0]["map"], "gradcam");
    // A box listed twice in a hand-edited import is kept once.
    let mut doubled = json.clone();
    let first = doubled["notes"][0]["boxes"][0].clone();
    doubled["notes"][0]["boxes"]
        .as_array_mut()
        .unwrap()
        .push(first);
    let parsed = notes::parse(&doubled.to_string(), Format::Json, "doubled.json").unwrap();
    assert_eq!(parsed[0].boxes.len(), 2);
    // A malformed box cell names the row and the cell.
    let broken = csv.replace("505 399 242 414", "505 399 242");
    let e = notes::parse(&broken, Format::Csv, "n.csv")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("n.csv line 2: box '505 399 242'"), "{e}");
}

#[test]
fn version_1_json_exports_still_import() {
    let v1 = r#"{"format":"cxr-viewer-notes","version":1,"notes":[{"study_id":"dicom:1.2.3",
        "zones":["left_lower"],"updated_at":"2026-01-01T00:00:00.000Z"}]}"#;
    let notes = notes::parse(v1, Format::Json, "old.json").unwrap();
    assert!(notes[0].boxes.is_empty());
    assert_eq!(notes[0].zones, BTreeSet::from([Zone::LeftLower]));
}

#[test]
fn rsna_export_from_the_cli_reads_back_as_labels() {
    let tmp = scratch("notes-boxes-rsna");
    let db = tmp.path().join("n.sqlite3");
    {
        let store = NotesStore::open(&db).unwrap();
        store.upsert(&boxed_note(4)).unwrap();
        let mut negative = Note::new(id(5)).with_location(Path::new("/d/NORMAL/clear.png"));
        negative.ground_truth = Some(Finding::Negative);
        store.upsert(&negative).unwrap();
    }
    let out = tmp.path().join("labels.csv");
    let result = Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
        .args(["notes", "export", "--rsna", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    common::assert_ran(&result);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        "patientId,x,y,width,height,Target\n\
         clear,,,,,0\n\
         film4,505,399,242,414,1\n\
         film4,166.25,216.5,293.1,620,1\n"
    );
    assert!(!text.contains("/d/"), "no paths in the labels");
    let labels = rsna::parse_labels(&text, "labels.csv").unwrap();
    assert_eq!(
        labels.boxes_of("film4").unwrap(),
        boxed_note(4).boxes.as_slice()
    );
    assert!(labels.negatives.contains("clear"));
}

#[test]
fn zone_agreement_counts_boxes_as_implicated_zones() {
    // On 1024² (midline 512, thirds at 341.3 and 682.7): box 1 (x 505..747, y 399..813) crosses
    // the midline by 7 px into the middle and lower thirds of both sides; box 2 (x 166..459,
    // y 216..837) spans the right's three thirds. Grad-CAM's top zone (left lower) is
    // implicated, IG's (right upper) too; uncertainty has no recorded top zone.
    let note = boxed_note(6);
    let implicated = note.implicated_zones();
    assert_eq!(
        implicated,
        BTreeSet::from([
            Zone::RightUpper,
            Zone::RightMiddle,
            Zone::RightLower,
            Zone::LeftMiddle,
            Zone::LeftLower
        ])
    );
    let rows = zone_agreement([&note]);
    assert_eq!((rows[0].hits, rows[0].studies), (1, 1));
    assert_eq!((rows[1].hits, rows[1].studies), (1, 1));
    assert_eq!(rows[2].studies, 0);
    assert!((rows[0].chance.unwrap() - 5.0 / 6.0).abs() < 1e-12);
}
