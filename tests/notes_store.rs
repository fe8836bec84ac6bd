//! Notes database: schema and migrations, the note API, export/import round trips and study
//! identity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::scratch;
use cxr_viewer::notes::{
    self, identity, Agreement, ErrorCategory, ExportOptions, Filter, Finding, Format, Note,
    NotesErrorKind, NotesStore, Outcome, PredictionSnapshot, StudyId, Zone, SCHEMA_VERSION,
};
use sha2::Digest;

fn id(n: u8) -> StudyId {
    StudyId::sha256(&[n; 32])
}

/// A note using every field, with text that needs quoting in CSV and escaping in JSON.
fn full_note(n: u8) -> Note {
    let mut note = Note::new(id(n));
    note.agreement = Some(Agreement::Disagree);
    note.categories = [ErrorCategory::BonyShadow, ErrorCategory::DeviceArtifact]
        .into_iter()
        .collect();
    note.zones = [Zone::RightLower, Zone::LeftUpper].into_iter().collect();
    note.text = format!("note {n}: rib, \"ECG lead\"\nsecond line; ünïcode ✓");
    note.reviewer = "Dr. Example".into();
    note.ground_truth = Some(Finding::Positive);
    note.prediction = Some(PredictionSnapshot {
        predicted: Finding::Negative,
        probability: 0.31,
        uncertain: true,
        in_scope: Some(false),
    });
    note.with_location(Path::new("/data/DOE^JOHN/1234567/film.png"))
}

fn table_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM notes", [], |r| r.get(0))
        .unwrap()
}

// ---------------------------------------------------------------- schema and migrations

#[test]
fn fresh_database_is_current_wal_and_sound() {
    let tmp = scratch("notes-store-fresh");
    let db = tmp.path().join("sub/dir/notes.sqlite3");
    let store = NotesStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.check_integrity().unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Reopening an up-to-date database changes nothing.
    let store = NotesStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

/// The schema exactly as version 1 shipped it (a frozen copy, independent of the code under
/// test), so migrating a real old file is what is tested.
const V1_SCHEMA: &str = "CREATE TABLE notes (
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
PRAGMA user_version = 1;";

#[test]
fn version_1_database_is_migrated_and_keeps_its_notes() {
    let tmp = scratch("notes-store-v1");
    let db = tmp.path().join("notes.sqlite3");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(V1_SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO notes VALUES (?1, 'unsure', 'motion_blur;other', 'left_lower', \
             'old note', 'A. Reviewer', 'film.dcm', '/x/film.dcm', \
             '2025-03-01T10:00:00.000Z', '2025-03-02T11:30:00.250Z')",
            ["dicom:1.2.3.4"],
        )
        .unwrap();
    }
    let store = NotesStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.check_integrity().unwrap();
    let note = store
        .get(&StudyId::parse("dicom:1.2.3.4").unwrap())
        .unwrap()
        .expect("the v1 note survives the migration");
    assert_eq!(note.agreement, Some(Agreement::Unsure));
    assert_eq!(
        note.categories,
        BTreeSet::from([ErrorCategory::MotionBlur, ErrorCategory::Other])
    );
    assert_eq!(note.zones, BTreeSet::from([Zone::LeftLower]));
    assert_eq!(note.text, "old note");
    assert_eq!(note.reviewer, "A. Reviewer");
    assert_eq!(note.file_path.as_deref(), Some("/x/film.dcm"));
    assert_eq!(
        note.updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2025-03-02T11:30:00.250Z"
    );
    assert_eq!((note.prediction, note.ground_truth), (None, None));
    // The columns added by the migration are writable.
    let mut edited = note.clone();
    edited.ground_truth = Some(Finding::Negative);
    edited.prediction = Some(PredictionSnapshot {
        predicted: Finding::Positive,
        probability: 0.9,
        uncertain: false,
        in_scope: Some(true),
    });
    let saved = store.upsert(&edited).unwrap();
    assert_eq!(saved.outcome(), Some(Outcome::FalsePositive));
    assert_eq!(saved.created_at, note.created_at);
    assert_eq!(store.get(&note.study).unwrap().unwrap(), saved);
}

#[test]
fn newer_database_is_refused_with_a_clear_error() {
    let tmp = scratch("notes-store-newer");
    let db = tmp.path().join("notes.sqlite3");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE future (x); PRAGMA user_version = {};",
            SCHEMA_VERSION + 1
        ))
        .unwrap();
    }
    let err = NotesStore::open(&db).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::TooNew);
    let msg = err.to_string();
    assert!(msg.contains("newer"), "{msg}");
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'));
    // Left untouched: same version, journal mode not switched.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!((v, mode.as_str()), (SCHEMA_VERSION + 1, "delete"));
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_overwritten() {
    let tmp = scratch("notes-store-garbage");
    let db = tmp.path().join("notes.sqlite3");
    let garbage = b"this is not a SQLite database, it is a text file of some length".repeat(20);
    std::fs::write(&db, &garbage).unwrap();
    let err = NotesStore::open(&db).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::Database, "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

/// Another SQLite file given as the notes database (the viewer's own prediction cache, say) is
/// refused by what it is, and left as it was. Before, it was switched to WAL mode and then failed
/// with "cannot migrate to schema version 2: no such table: notes".
#[test]
fn another_sqlite_database_is_refused_and_left_alone() {
    let tmp = scratch("notes-store-foreign");
    let db = tmp.path().join("predictions.sqlite3");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE predictions (key TEXT); INSERT INTO predictions VALUES ('a');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = NotesStore::open(&db).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::InvalidData);
    assert_eq!(
        err.to_string(),
        format!(
            "notes database {}: is an SQLite database of something else (tables: predictions), \
             not a cxr-viewer notes file; choose another file",
            db.display()
        )
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "left as it was");
    assert!(!tmp.path().join("predictions.sqlite3-wal").exists());
}

/// A folder given as the database says so (SQLite's own words were "unable to open database
/// file … Error code 14").
#[test]
fn a_folder_given_as_the_database_is_named_as_such() {
    let tmp = scratch("notes-store-folder");
    let err = NotesStore::open(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::Io);
    assert_eq!(
        err.to_string(),
        format!(
            "notes database {}: is a folder; give a file in it, e.g. notes.sqlite3",
            tmp.path().display()
        )
    );
}

// ---------------------------------------------------------------- the note API

#[test]
fn upsert_owns_timestamps_and_skips_unchanged_notes() {
    let tmp = scratch("notes-store-upsert");
    let store = NotesStore::open(&tmp.path().join("n.sqlite3")).unwrap();
    let mut note = Note::new(id(1));
    note.text = "first".into();
    let first = store.upsert(&note).unwrap();
    assert_eq!(first.created_at, first.updated_at);
    assert_eq!(store.get(&note.study).unwrap().unwrap(), first);

    // Saving the same content again (a debounce firing without an edit) does not move
    // updated_at, so an untouched copy cannot win a later merge.
    let again = store.upsert(&first).unwrap();
    assert_eq!(again.updated_at, first.updated_at);

    note.text = "second".into();
    let second = store.upsert(&note).unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at > first.updated_at);

    // A save without a location keeps the last one seen.
    let located = store
        .upsert(&second.clone().with_location(Path::new("/a/b/c.png")))
        .unwrap();
    assert_eq!(located.file_name.as_deref(), Some("c.png"));
    let mut no_location = located.clone();
    no_location.file_name = None;
    no_location.file_path = None;
    no_location.text = "third".into();
    let third = store.upsert(&no_location).unwrap();
    assert_eq!(third.file_path.as_deref(), Some("/a/b/c.png"));

    assert!(store.delete(&note.study).unwrap());
    assert!(store.get(&note.study).unwrap().is_none());
    assert!(!store.delete(&note.study).unwrap());
}

/// Two viewers on one database edit the same note: the edit saved second began from the copy
/// before the first was saved, so it is merged with that copy instead of overwriting it (before,
/// the first reviewer's comment and category were silently lost). An edit that began from the
/// stored copy, or a save of unchanged content, replaces as before.
#[test]
fn an_edit_begun_before_another_writers_save_is_merged_not_overwritten() {
    let tmp = scratch("notes-store-edit");
    let db = tmp.path().join("n.sqlite3");
    let (window_a, window_b) = (
        NotesStore::open(&db).unwrap(),
        NotesStore::open(&db).unwrap(),
    );
    let mut start = Note::new(id(1));
    start.text = "opacity right lower".into();
    let start = window_a.upsert(&start).unwrap();

    // Both windows open the note (base: the stored copy). B saves first.
    let mut b = start.clone();
    b.text = "opacity right lower; rib crossing".into();
    b.categories.insert(ErrorCategory::BonyShadow);
    b.agreement = Some(Agreement::Disagree);
    let b_saved = window_b.save_edit(&b, Some(start.updated_at)).unwrap();
    assert_eq!(b_saved.merged, None);
    // A, still on the old base, adds its own text, category and zone.
    let mut a = start.clone();
    a.text = "ECG lead over the left hilum".into();
    a.categories.insert(ErrorCategory::DeviceArtifact);
    a.zones.insert(Zone::LeftMiddle);
    let a_saved = window_a.save_edit(&a, Some(start.updated_at)).unwrap();
    assert_eq!(a_saved.merged.as_ref(), Some(&b_saved.stored));
    let stored = window_b.get(&id(1)).unwrap().unwrap();
    assert_eq!(stored, a_saved.stored);
    assert_eq!(
        stored.text,
        format!(
            "ECG lead over the left hilum\n\n{}\nopacity right lower; rib crossing",
            notes::MERGED_TEXT_MARKER
        )
    );
    assert_eq!(
        stored.categories,
        [ErrorCategory::BonyShadow, ErrorCategory::DeviceArtifact]
            .into_iter()
            .collect()
    );
    assert_eq!(stored.zones, [Zone::LeftMiddle].into_iter().collect());
    assert_eq!(stored.agreement, Some(Agreement::Disagree));
    assert!(stored.updated_at > b_saved.stored.updated_at);

    // A goes on from the merged copy: a plain replace.
    let mut a2 = stored.clone();
    a2.text.push_str(" (checked)");
    let a2_saved = window_a.save_edit(&a2, Some(stored.updated_at)).unwrap();
    assert_eq!(a2_saved.merged, None);
    assert_eq!(a2_saved.stored.text, a2.text);

    // A note created in another window after this one found none: merged too.
    let mut other = Note::new(id(2));
    other.text = "their new note".into();
    window_b.save_edit(&other, None).unwrap();
    let mut mine = Note::new(id(2));
    mine.ground_truth = Some(Finding::Positive);
    let mine_saved = window_a.save_edit(&mine, None).unwrap();
    assert!(mine_saved.merged.is_some());
    assert_eq!(mine_saved.stored.text, "their new note");
    assert_eq!(mine_saved.stored.ground_truth, Some(Finding::Positive));

    // One text containing the other keeps the longer, once.
    let mut longer = Note::new(id(3));
    longer.text = "short".into();
    let mut theirs = longer.clone();
    theirs.text = "short, then longer".into();
    assert_eq!(longer.merged_with(&theirs).text, "short, then longer");
    assert_eq!(theirs.merged_with(&longer).text, "short, then longer");
}

#[test]
fn invalid_probability_is_refused() {
    let tmp = scratch("notes-store-prob");
    let store = NotesStore::open(&tmp.path().join("n.sqlite3")).unwrap();
    let mut note = Note::new(id(1));
    note.prediction = Some(PredictionSnapshot {
        predicted: Finding::Positive,
        probability: f64::NAN,
        uncertain: false,
        in_scope: None,
    });
    let err = store.upsert(&note).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::InvalidData);
    assert!(store.get(&note.study).unwrap().is_none());
}

#[test]
fn list_filters_and_counts() {
    let tmp = scratch("notes-store-filters");
    let store = NotesStore::open(&tmp.path().join("n.sqlite3")).unwrap();
    let snapshot = |predicted, uncertain| {
        Some(PredictionSnapshot {
            predicted,
            probability: if predicted == Finding::Positive {
                0.8
            } else {
                0.2
            },
            uncertain,
            in_scope: Some(true),
        })
    };
    // 1: false negative, with text.   2: false positive.   3: true positive, model uncertain.
    // 4: reviewer unsure, no truth.    5: no verdict yet.
    let mut notes = Vec::new();
    let mut n = Note::new(id(1));
    n.agreement = Some(Agreement::Disagree);
    n.ground_truth = Some(Finding::Positive);
    n.prediction = snapshot(Finding::Negative, false);
    n.text = "subtle retrocardiac opacity".into();
    notes.push(n);
    let mut n = Note::new(id(2));
    n.agreement = Some(Agreement::Disagree);
    n.ground_truth = Some(Finding::Negative);
    n.prediction = snapshot(Finding::Positive, false);
    n.categories.insert(ErrorCategory::TextMarker);
    notes.push(n);
    let mut n = Note::new(id(3));
    n.agreement = Some(Agreement::Agree);
    n.ground_truth = Some(Finding::Positive);
    n.prediction = snapshot(Finding::Positive, true);
    notes.push(n);
    let mut n = Note::new(id(4));
    n.agreement = Some(Agreement::Unsure);
    n.prediction = snapshot(Finding::Positive, false);
    notes.push(n);
    let mut n = Note::new(id(5));
    n.zones.insert(Zone::RightMiddle);
    notes.push(n);
    for n in &notes {
        store.upsert(n).unwrap();
    }
    let ids = |f: Filter| -> BTreeSet<StudyId> {
        store
            .list(f)
            .unwrap()
            .into_iter()
            .map(|n| n.study)
            .collect()
    };
    let set = |v: &[u8]| -> BTreeSet<StudyId> { v.iter().map(|&k| id(k)).collect() };
    assert_eq!(ids(Filter::All), set(&[1, 2, 3, 4, 5]));
    assert_eq!(ids(Filter::Misclassified), set(&[1, 2]));
    assert_eq!(ids(Filter::FalseNegatives), set(&[1]));
    assert_eq!(ids(Filter::FalsePositives), set(&[2]));
    assert_eq!(ids(Filter::Uncertain), set(&[3, 4]));
    assert_eq!(ids(Filter::Unreviewed), set(&[5]));
    // Each holds something of the reviewer's (a verdict, text, a zone).
    assert_eq!(ids(Filter::HasNote), set(&[1, 2, 3, 4, 5]));
    // Most recently updated first.
    let order: Vec<StudyId> = store
        .list(Filter::All)
        .unwrap()
        .into_iter()
        .map(|n| n.study)
        .collect();
    let mut by_time = store.list(Filter::All).unwrap();
    by_time.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.study.cmp(&b.study)));
    assert_eq!(
        order,
        by_time.into_iter().map(|n| n.study).collect::<Vec<_>>()
    );

    let c = store.counts().unwrap();
    assert_eq!(
        (
            c.notes,
            c.agree,
            c.disagree,
            c.unsure,
            c.unreviewed,
            c.with_text
        ),
        (5, 1, 2, 1, 1, 1)
    );
    assert_eq!(c.outcomes.get(&Outcome::FalseNegative), Some(&1));
    assert_eq!(c.outcomes.get(&Outcome::FalsePositive), Some(&1));
    assert_eq!(c.outcomes.get(&Outcome::TruePositive), Some(&1));
    assert_eq!(c.categories.get(&ErrorCategory::TextMarker), Some(&1));
    assert_eq!(c.zones.get(&Zone::RightMiddle), Some(&1));

    // What the viewer records by itself (the model's answer) is no note of the reviewer's.
    let mut n = Note::new(id(6));
    n.prediction = snapshot(Finding::Positive, false);
    store.upsert(&n).unwrap();
    assert_eq!(ids(Filter::All), set(&[1, 2, 3, 4, 5, 6]));
    assert_eq!(ids(Filter::HasNote), set(&[1, 2, 3, 4, 5]));
}

// ---------------------------------------------------------------- export / import

fn round_trip(format: Format) {
    let tmp = scratch(&format!("notes-store-roundtrip-{format:?}"));
    let dir = tmp.path().to_path_buf();
    let source = NotesStore::open(&dir.join("a.sqlite3")).unwrap();
    let mut saved: Vec<Note> = (1..=3)
        .map(|k| source.upsert(&full_note(k)).unwrap())
        .collect();
    // A bare note: every optional field empty.
    saved.push(source.upsert(&Note::new(id(9))).unwrap());

    let text = notes::export(
        &source.list(Filter::All).unwrap(),
        format,
        &ExportOptions::new(),
    )
    .unwrap();
    let parsed = notes::parse(&text, format, "export").unwrap();
    assert_eq!(parsed.len(), saved.len());

    let target = NotesStore::open(&dir.join("b.sqlite3")).unwrap();
    let report = target.merge(&parsed).unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (4, 0, 0)
    );
    for s in &saved {
        let mut got = target.get(&s.study).unwrap().unwrap();
        // Paths are not exported by default; everything else comes back exactly.
        assert_eq!(got.file_path, None);
        got.file_path = s.file_path.clone();
        assert_eq!(&got, s);
    }

    // Importing the same file again changes nothing and duplicates nothing.
    let report = target.merge(&parsed).unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 0, 4)
    );
    assert_eq!(table_rows(target.path()), 4);

    // An edit made later at the source wins; a stale edit at the target loses.
    let mut edited = saved[0].clone();
    edited.text = "revised at the source".into();
    let edited = source.upsert(&edited).unwrap();
    let text = notes::export(
        &source.list(Filter::All).unwrap(),
        format,
        &ExportOptions::new(),
    )
    .unwrap();
    let report = target
        .merge(&notes::parse(&text, format, "export").unwrap())
        .unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 1, 3)
    );
    assert_eq!(
        target.get(&edited.study).unwrap().unwrap().text,
        edited.text
    );
    // Still no path: the export had none to give.
    assert_eq!(target.get(&edited.study).unwrap().unwrap().file_path, None);
    assert_eq!(table_rows(target.path()), 4);
    target.check_integrity().unwrap();
}

#[test]
fn csv_round_trip_merges_without_duplicates() {
    round_trip(Format::Csv);
}

#[test]
fn json_round_trip_merges_without_duplicates() {
    round_trip(Format::Json);
}

/// An export opened and saved again by a spreadsheet imports as the export itself does. The
/// fixtures are `notes export` of four notes (every field, text with commas, semicolons, quotes
/// and a line break) and that file opened and saved by LibreOffice Calc 7.4 (`soffice
/// --convert-to csv`): in English it writes the booleans as `TRUE`/`FALSE`, which the import
/// refused ("provided string was not `true` or `false`") until the forty-first session, so no
/// file a reviewer had corrected in a spreadsheet could be imported; in German it separates the
/// cells with `;` (its list separator where the comma is the decimal mark), which read as one
/// column ("no 'study_id' column").
#[test]
fn an_export_saved_again_by_a_spreadsheet_imports_unchanged() {
    let read = |name: &str| {
        let path = common::fixture(&format!("notes/{name}"));
        notes::parse(&std::fs::read_to_string(path).unwrap(), Format::Csv, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let exported = read("exported.csv");
    assert_eq!(exported.len(), 4);
    // The fixture is what it says: booleans both ways, an unknown scope, multi-line text.
    let snapshots: Vec<_> = exported.iter().filter_map(|n| n.prediction).collect();
    assert!(snapshots.iter().any(|p| p.uncertain) && snapshots.iter().any(|p| !p.uncertain));
    assert!(snapshots.iter().any(|p| p.in_scope == Some(true)));
    assert!(snapshots.iter().any(|p| p.in_scope == Some(false)));
    assert!(snapshots.iter().any(|p| p.in_scope.is_none()));
    assert!(exported
        .iter()
        .any(|n| n.text.contains('\n') && n.text.contains('"')));
    // Calc in English writes the probabilities with 15 significant digits: the model's
    // 0.9823487401008606 (an f32) comes back as 0.982348740100861.
    let en = std::fs::read_to_string(common::fixture("notes/libreoffice_en.csv")).unwrap();
    assert!(en.contains(",0.982348740100861,") && !en.contains("0.9823487401008606"));
    let tmp = scratch("notes-store-spreadsheet");
    let store = NotesStore::open(&tmp.path().join("notes.sqlite3")).unwrap();
    store.merge(&exported).unwrap();
    for name in ["libreoffice_en.csv", "libreoffice_de.csv"] {
        let saved_again = read(name);
        assert_eq!(saved_again.len(), exported.len(), "{name}");
        for (again, original) in saved_again.iter().zip(&exported) {
            assert!(
                again.same_content(original)
                    && (again.updated_at, again.created_at)
                        == (original.updated_at, original.created_at),
                "{name}: {again:?} vs {original:?}"
            );
        }
        // Imported where the export came from: nothing changed, nothing taken for an edit
        // made in the file (which would move every note's updated_at).
        let report = store.merge(&saved_again).unwrap();
        assert_eq!(
            (report.inserted, report.updated, report.unchanged),
            (0, 0, 4),
            "{name}"
        );
        assert!(
            report.remarks().is_empty(),
            "{name}: {:?}",
            report.remarks()
        );
    }

    // Tokens in any case, as typed or capitalised by a spreadsheet (they were refused:
    // "Agreement 'Disagree': expected one of agree, disagree, unsure").
    let exported_text = std::fs::read_to_string(common::fixture("notes/exported.csv")).unwrap();
    let capitalised = exported_text
        .replace(",disagree,", ",Disagree,")
        .replace(",agree,", ",AGREE,")
        .replace("bony_shadow;device_artifact", "Bony_Shadow;Device_Artifact")
        .replace("right_lower;left_upper", "Right_Lower;LEFT_UPPER")
        .replace(",positive,", ",Positive,")
        .replace(",negative,", ",Negative,");
    assert_ne!(capitalised, exported_text);
    assert_eq!(
        notes::parse(&capitalised, Format::Csv, "capitalised.csv").unwrap(),
        exported
    );
    // A class name where a finding goes is refused, saying what to write instead.
    let e = notes::parse(
        &exported_text.replacen(",positive,", ",PNEUMONIA,", 1),
        Format::Csv,
        "classes.csv",
    )
    .unwrap_err();
    assert!(
        e.to_string().ends_with(
            "Finding 'PNEUMONIA': expected one of positive, negative (relative to the model's \
             positive class: for the shipped model, PNEUMONIA is positive and NORMAL negative)"
        ),
        "{e}"
    );

    // Anything else in a boolean cell is still refused, by its line and value.
    let text = std::fs::read_to_string(common::fixture("notes/libreoffice_en.csv"))
        .unwrap()
        .replacen("TRUE", "WAHR", 1);
    let e = notes::parse(&text, Format::Csv, "edited.csv").unwrap_err();
    let why = std::error::Error::source(&e).map(|s| s.to_string());
    assert_eq!(e.to_string(), "edited.csv line 3: malformed row");
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("'WAHR' is neither true nor false")),
        "{why:?}"
    );
}

#[test]
fn merge_keeps_the_later_copy_in_both_directions() {
    let tmp = scratch("notes-store-merge");
    let dir = tmp.path().to_path_buf();
    let a = NotesStore::open(&dir.join("a.sqlite3")).unwrap();
    let b = NotesStore::open(&dir.join("b.sqlite3")).unwrap();
    let mut note = full_note(1);
    note.text = "older".into();
    let older = a.upsert(&note).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    note.text = "newer".into();
    let newer = b.upsert(&note).unwrap();
    assert!(newer.updated_at > older.updated_at);

    let r = a.merge(std::slice::from_ref(&newer)).unwrap();
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 1, 0));
    let r = b.merge(std::slice::from_ref(&older)).unwrap();
    assert_eq!((r.inserted, r.updated, r.unchanged), (0, 0, 1));
    assert_eq!(a.get(&note.study).unwrap().unwrap().text, "newer");
    assert_eq!(b.get(&note.study).unwrap().unwrap().text, "newer");
    // created_at is the earliest of the copies.
    assert_eq!(
        a.get(&note.study).unwrap().unwrap().created_at,
        older.created_at
    );
}

#[test]
fn exports_carry_no_paths_unless_asked() {
    let tmp = scratch("notes-store-identifiers");
    let dir = tmp.path().to_path_buf();
    let store = NotesStore::open(&dir.join("n.sqlite3")).unwrap();
    store.upsert(&full_note(1)).unwrap();
    let notes = store.list(Filter::All).unwrap();
    for format in [Format::Csv, Format::Json] {
        let plain = notes::export(&notes, format, &ExportOptions::new()).unwrap();
        assert!(plain.contains("film.png"), "{format:?}: file name kept");
        for secret in ["DOE", "JOHN", "1234567", "/data"] {
            assert!(
                !plain.contains(secret),
                "{format:?} leaks {secret}: {plain}"
            );
        }
        let with = notes::export(&notes, format, &ExportOptions::new().with_paths(true)).unwrap();
        assert!(
            with.contains("/data/DOE^JOHN/1234567/film.png"),
            "{format:?}"
        );
        // And the path round-trips when asked for.
        let back = notes::parse(&with, format, "x").unwrap();
        assert_eq!(back[0].file_path, notes[0].file_path);
    }
    // Outcome is part of the export (FN here: truth positive, predicted negative).
    let csv = notes::export(&notes, Format::Csv, &ExportOptions::new()).unwrap();
    assert!(csv.lines().next().unwrap().contains("outcome"));
    assert!(csv.contains(",FN,"), "{csv}");
}

/// Exports say whether the film was inside the model's scope when the note was written, so a
/// verdict on a hand or an adult film can be told from one on a child's chest film; exports
/// written before (no such column or key) still import, the verdict unknown.
#[test]
fn exports_say_whether_the_film_was_in_the_models_scope() {
    let out_of_scope = full_note(1);
    let mut unknown = full_note(2);
    unknown.prediction = unknown.prediction.map(|p| PredictionSnapshot {
        in_scope: None,
        ..p
    });
    let notes = [out_of_scope, unknown];

    let csv = notes::export(&notes, Format::Csv, &ExportOptions::new()).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = header.iter().position(|h| h == "model_in_scope").unwrap();
    let cells: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[column].to_string())
        .collect();
    assert_eq!(cells, ["false", ""]);
    let json = notes::export(&notes, Format::Json, &ExportOptions::new()).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["notes"][0]["model_in_scope"], false);
    assert!(doc["notes"][1]["model_in_scope"].is_null());

    // Written before the column existed: imports, scope unknown.
    let old_csv = "study_id,predicted,probability,model_uncertain,updated_at\n\
                   sha256:0101010101010101010101010101010101010101010101010101010101010101,\
                   positive,0.9,false,2026-01-01T00:00:00.000Z\n";
    let old_json = r#"{"format": "cxr-viewer-notes", "version": 2, "notes": [{
        "study_id": "sha256:0101010101010101010101010101010101010101010101010101010101010101",
        "predicted": "positive", "probability": 0.9, "model_uncertain": false,
        "updated_at": "2026-01-01T00:00:00.000Z"}]}"#;
    for (text, format) in [(old_csv, Format::Csv), (old_json, Format::Json)] {
        let back = notes::parse(text, format, "old").unwrap();
        let p = back[0].prediction.unwrap();
        assert_eq!((p.probability, p.in_scope), (0.9, None), "{format:?}");
    }
}

#[test]
fn a_bad_import_names_the_row_and_imports_nothing() {
    let tmp = scratch("notes-store-bad-import");
    let dir = tmp.path().to_path_buf();
    let store = NotesStore::open(&dir.join("n.sqlite3")).unwrap();
    let good = notes::export(
        &[full_note(1), full_note(2)],
        Format::Csv,
        &ExportOptions::new(),
    )
    .unwrap();
    let bad = good.replace("bony_shadow", "blurry_bones");
    let err = notes::parse(&bad, Format::Csv, "notes.csv").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("notes.csv line 2"), "{msg}");
    assert!(msg.contains("blurry_bones"), "{msg}");

    let path = dir.join("bad.csv");
    std::fs::write(&path, &bad).unwrap();
    assert!(notes::import_file(&store, &path).is_err());
    assert_eq!(store.counts().unwrap().notes, 0);

    let err = notes::parse("{\"hello\": 1}", Format::Json, "x.json").unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::InvalidData);
    let err = Format::from_path(Path::new("notes.xlsx")).unwrap_err();
    assert_eq!(err.kind(), NotesErrorKind::UnknownFormat);
}

#[test]
fn export_file_and_import_file() {
    let tmp = scratch("notes-store-files");
    let dir = tmp.path().to_path_buf();
    let a = NotesStore::open(&dir.join("a.sqlite3")).unwrap();
    a.upsert(&full_note(1)).unwrap();
    a.upsert(&full_note(2)).unwrap();
    for name in ["out.csv", "out.JSON"] {
        let out = dir.join(name);
        assert_eq!(
            notes::export_file(&a, &out, &ExportOptions::new()).unwrap(),
            2
        );
        let b = NotesStore::open(&dir.join(format!("{name}.sqlite3"))).unwrap();
        let r = notes::import_file(&b, &out).unwrap();
        assert_eq!((r.inserted, r.updated, r.unchanged), (2, 0, 0));
    }
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

// ---------------------------------------------------------------- identity

#[test]
fn raster_identity_follows_content_not_name() {
    let tmp = scratch("notes-store-identity-raster");
    let dir = tmp.path().to_path_buf();
    let original = common::fixture("reference/person45_bacteria_221.jpeg");
    let copy = dir.join("elsewhere/renamed study.jpg");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&original, &copy).unwrap();

    let a = identity::study_id(&original, &cxr_viewer::io::load_study(&original).unwrap()).unwrap();
    let b = identity::study_id(&copy, &cxr_viewer::io::load_study(&copy).unwrap()).unwrap();
    assert_eq!(a, b);
    // sha256 of the bytes, computed here in one shot rather than streamed.
    let digest = sha2::Sha256::digest(std::fs::read(&original).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(a.as_str(), format!("sha256:{hex}"));

    // One byte different (in the JPEG comment-free tail, still decodable) → another study.
    let mut bytes = std::fs::read(&original).unwrap();
    bytes.extend_from_slice(b"\0");
    let changed = dir.join("changed.jpeg");
    std::fs::write(&changed, &bytes).unwrap();
    let c = identity::study_id(&changed, &cxr_viewer::io::load_study(&changed).unwrap()).unwrap();
    assert_ne!(a, c);
}

#[test]
fn dicom_identity_is_the_sop_instance_uid() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("dicom/reference.json")).unwrap(),
    )
    .unwrap();
    let tmp = scratch("notes-store-identity-dicom");
    let dir = tmp.path().to_path_buf();
    let mut checked = 0;
    for name in [
        "cr_chest_pa_mono1_10bit_explicit_le_440.dcm",
        "siim_cr_chest_pa_jpegbaseline_mono2_8bit_1024.dcm",
        "pydicom_cr_cspine_lat_mono1_12bit_rescale_16x16.dcm",
    ] {
        let path = common::fixture(&format!("dicom/{name}"));
        let uid = reference[name]["sop_instance_uid"].as_str().unwrap();
        let id = identity::study_id(&path, &cxr_viewer::io::load_study(&path).unwrap()).unwrap();
        assert_eq!(id.as_str(), format!("dicom:{uid}"), "{name}");
        // Moved and renamed: same study.
        let moved = dir.join(format!("moved-{checked}.bin"));
        std::fs::copy(&path, &moved).unwrap();
        let again =
            identity::study_id(&moved, &cxr_viewer::io::load_study(&moved).unwrap()).unwrap();
        assert_eq!(again, id);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn a_note_follows_a_renamed_file() {
    let tmp = scratch("notes-store-follow");
    let dir = tmp.path().to_path_buf();
    let store = NotesStore::open(&dir.join("n.sqlite3")).unwrap();
    let original = common::fixture("reference/person45_bacteria_221.jpeg");
    let study = cxr_viewer::io::load_study(&original).unwrap();
    let mut note =
        Note::new(identity::study_id(&original, &study).unwrap()).with_location(&original);
    note.text = "seen under the original name".into();
    store.upsert(&note).unwrap();

    let renamed = dir.join("anonymous.jpeg");
    std::fs::copy(&original, &renamed).unwrap();
    let id = identity::study_id(&renamed, &cxr_viewer::io::load_study(&renamed).unwrap()).unwrap();
    let found = store.get(&id).unwrap().expect("same study, same note");
    assert_eq!(found.text, note.text);
    let moved = store.upsert(&found.with_location(&renamed)).unwrap();
    assert_eq!(moved.file_name.as_deref(), Some("anonymous.jpeg"));
    assert_eq!(store.counts().unwrap().notes, 1);
}

/// Switching a new file to WAL needs an exclusive lock, and SQLite does not call the busy
/// handler there when the other connection holds a write lock (waiting could deadlock), so a
/// second instance opening the same new database at that moment got "database is locked" at
/// once instead of waiting its busy timeout.
#[test]
fn open_waits_for_another_writer_while_switching_to_wal() {
    let tmp = scratch("notes-store-wal-race");
    let db = tmp.path().join("notes.sqlite3");
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; CREATE TABLE other_writer(x);")
        .unwrap();
    let committer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });
    let store = NotesStore::open(&db);
    committer.join().unwrap();
    let store = store.unwrap();
    store.check_integrity().unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}
