//! `cxr-viewer notes export|import` end to end, through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::scratch;
use cxr_viewer::notes::{Agreement, ErrorCategory, Filter, Note, NotesStore, StudyId};

fn notes_cmd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cxr-viewer"))
        .arg("notes")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn seeded_db(dir: &Path) -> PathBuf {
    let db = dir.join("source.sqlite3");
    let store = NotesStore::open(&db).unwrap();
    for k in 1..=3u8 {
        let mut note = Note::new(StudyId::sha256(&[k; 32]))
            .with_location(Path::new(&format!("/patients/SMITH^ANNA/img{k}.png")));
        note.agreement = Some(Agreement::Disagree);
        note.categories.insert(ErrorCategory::LowContrast);
        note.text = format!("study {k}, under-exposed");
        store.upsert(&note).unwrap();
    }
    db
}

/// A scratch folder (kept while the first value lives) with [`seeded_db`]'s database, exported
/// with `extra` flags to `name` there: the folder, the database and the export.
fn seeded_export(tag: &str, name: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = scratch(tag);
    let db = seeded_db(tmp.path());
    let out = tmp.path().join(name);
    let mut args = vec![
        "export",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = notes_cmd(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (tmp, db, out)
}

#[test]
fn export_then_import_in_both_formats() {
    let tmp = scratch("notes-cli-roundtrip");
    let dir = tmp.path().to_path_buf();
    let db = seeded_db(&dir);
    for ext in ["csv", "json"] {
        let out = dir.join(format!("notes.{ext}"));
        let o = notes_cmd(&[
            "export",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains('3'), "{}", text(&o.stdout));
        let exported = std::fs::read_to_string(&out).unwrap();
        assert!(exported.contains("img2.png"));
        assert!(
            !exported.contains("SMITH"),
            "no paths unless asked: {exported}"
        );

        let target = dir.join(format!("target-{ext}.sqlite3"));
        let import = |expect: &str| {
            let o = notes_cmd(&[
                "import",
                "--db",
                target.to_str().unwrap(),
                "--in",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", text(&o.stderr));
            let said = text(&o.stdout);
            assert!(
                said.contains(expect),
                "{ext}: expected '{expect}' in: {said}"
            );
        };
        import("inserted 3, updated 0, unchanged 0");
        import("inserted 0, updated 0, unchanged 3");
        let store = NotesStore::open(&target).unwrap();
        let notes = store.list(Filter::All).unwrap();
        assert_eq!(notes.len(), 3);
        assert!(notes.iter().all(|n| n.text.ends_with("under-exposed")));
        store.check_integrity().unwrap();
    }
}

/// An annotator exports the notes, corrects them in a spreadsheet (which keeps each row's
/// `updated_at`) and imports the file back. Until the forty-first session every corrected row
/// was "unchanged": a copy replaced the stored note only when updated later, and the edits were
/// dropped without a word. Now a row that differs under the same `updated_at` is imported (and
/// stamped now), while a row whose note was edited again in the viewer since the export keeps
/// the viewer's note and is named.
#[test]
fn a_file_edited_after_its_export_imports_its_edits_and_names_what_it_cannot() {
    let (_tmp, db, out) = seeded_export("notes-cli-edited-file", "notes.csv", &[]);
    let exported = std::fs::read_to_string(&out).unwrap();
    let edited = exported
        .replace(
            "study 1, under-exposed",
            "study 1, corrected in a spreadsheet",
        )
        .replace(
            "study 2, under-exposed",
            "study 2, corrected in a spreadsheet",
        );
    assert_ne!(edited, exported);
    std::fs::write(&out, edited).unwrap();

    // Meanwhile study 2 is edited again in the viewer.
    let store = NotesStore::open(&db).unwrap();
    let study2 = StudyId::sha256(&[2; 32]);
    let before = store.get(&StudyId::sha256(&[1; 32])).unwrap().unwrap();
    let mut note2 = store.get(&study2).unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    note2.text = "study 2, edited again in the viewer".into();
    store.upsert(&note2).unwrap();

    let o = notes_cmd(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("inserted 0, updated 1, unchanged 2 ← "),
        "{}",
        text(&o.stdout)
    );
    let said = text(&o.stderr);
    assert!(
        said.contains("note: 1 note edited in the file since its export")
            && said.contains("imported as edits made now"),
        "{said}"
    );
    assert!(
        said.contains("note: 1 note in the file differs from the note here but is older")
            && said.contains("not imported: img2.png (to import the file's"),
        "{said}"
    );
    let after = store.get(&StudyId::sha256(&[1; 32])).unwrap().unwrap();
    assert_eq!(after.text, "study 1, corrected in a spreadsheet");
    assert!(after.updated_at > before.updated_at);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(
        store.get(&study2).unwrap().unwrap().text,
        "study 2, edited again in the viewer"
    );

    // The same file again: nothing left to take, nothing said about edits.
    let o = notes_cmd(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(
        text(&o.stdout).starts_with("inserted 0, updated 0, unchanged 3 ← "),
        "{}",
        text(&o.stdout)
    );
    assert!(
        !text(&o.stderr).contains("edited in the file"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn include_paths_adds_the_full_path() {
    let (_tmp, _db, out) = seeded_export("notes-cli-paths", "with-paths.csv", &["--include-paths"]);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(exported.contains("/patients/SMITH^ANNA/img1.png"));
}

/// Failures are one `error:` line on stderr and a non-zero exit.
#[test]
fn errors_are_one_line_and_fail() {
    let tmp = scratch("notes-cli-errors");
    let dir = tmp.path().to_path_buf();
    let db = seeded_db(&dir);
    let db = db.to_str().unwrap();
    let missing_db = dir.join("nope.sqlite3");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "study_id,updated_at\nnot-an-id,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    let newer = dir.join("newer.sqlite3");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999;")
        .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "export".into(),
                "--db".into(),
                db.into(),
                "--out".into(),
                dir.join("x.xlsx").display().to_string(),
            ],
            ".csv or .json",
        ),
        (
            vec![
                "export".into(),
                "--db".into(),
                missing_db.display().to_string(),
                "--out".into(),
                dir.join("x.csv").display().to_string(),
            ],
            "no notes database",
        ),
        (
            vec![
                "import".into(),
                "--db".into(),
                db.into(),
                "--in".into(),
                dir.join("absent.json").display().to_string(),
            ],
            "absent.json",
        ),
        (
            vec![
                "import".into(),
                "--db".into(),
                db.into(),
                "--in".into(),
                bad.display().to_string(),
            ],
            "bad.csv line 2",
        ),
        (
            vec![
                "import".into(),
                "--db".into(),
                missing_db.display().to_string(),
                "--in".into(),
                bad.display().to_string(),
            ],
            "bad.csv line 2",
        ),
        (
            vec![
                "export".into(),
                "--db".into(),
                newer.display().to_string(),
                "--out".into(),
                dir.join("y.csv").display().to_string(),
            ],
            "newer cxr-viewer",
        ),
    ];
    for (args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = notes_cmd(&args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected '{expect}' in {err}"
        );
    }
    // Neither the failed export nor the failed import created the database it was pointed at.
    assert!(!missing_db.exists());
    // Nothing half-imported from the bad file.
    assert_eq!(
        NotesStore::open(Path::new(db))
            .unwrap()
            .counts()
            .unwrap()
            .notes,
        3
    );
}

/// Without `--db`, export and import use the database the viewer opens: `$CXR_VIEWER_DB`, else
/// the one chosen in its notes pane (remembered in `settings.json`), else the per-user default.
/// They used to read only the default, so a reviewer whose notes live in a chosen file exported
/// an old or empty set (or was told there was no database at all).
#[cfg(target_os = "linux")]
#[test]
fn without_db_they_use_the_database_the_viewer_opens() {
    let tmp = scratch("notes-cli-viewer-db");
    let dir = tmp.path().to_path_buf();
    let db = seeded_db(&dir);
    let (config, data) = (dir.join("config"), dir.join("data"));
    let run = |args: &[&str], env_db: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cxr-viewer"));
        c.arg("notes")
            .args(args)
            .env("HOME", &dir)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_DATA_HOME", &data)
            .env_remove("CXR_VIEWER_DB");
        if let Some(p) = env_db {
            c.env("CXR_VIEWER_DB", p);
        }
        c.output().unwrap()
    };
    let out = dir.join("out.csv");
    let out_arg = out.to_str().unwrap();

    // Nothing chosen and no default database yet: it says where it looked.
    let o = run(&["export", "--out", out_arg], None);
    assert!(!o.status.success());
    let default = data.join("cxr-viewer").join("notes.sqlite3");
    assert_eq!(
        text(&o.stderr).trim(),
        format!("error: no notes database at {}", default.display())
    );

    // Settings that cannot be read: said in one line, then the default as without them.
    std::fs::create_dir_all(config.join("cxr-viewer")).unwrap();
    let settings_file = config.join("cxr-viewer").join("settings.json");
    std::fs::write(&settings_file, b"{ not json").unwrap();
    let o = run(&["export", "--out", out_arg], None);
    assert!(!o.status.success());
    let stderr = text(&o.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "note: settings {} are unreadable",
            settings_file.display()
        )) && lines[0].ends_with("; using defaults"),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        format!("error: no notes database at {}", default.display())
    );

    // The database chosen in the viewer's notes pane.
    let settings = cxr_viewer::ui::settings::Settings {
        notes_db: Some(db.clone()),
        ..Default::default()
    };
    std::fs::write(
        config.join("cxr-viewer").join("settings.json"),
        serde_json::to_vec(&settings).unwrap(),
    )
    .unwrap();
    let o = run(&["export", "--out", out_arg], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with(&format!("exported 3 notes from {} → ", db.display())),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
    let o = run(&["import", "--in", out_arg], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("inserted 0, updated 0, unchanged 3 ← "));
    assert!(text(&o.stdout)
        .trim_end()
        .ends_with(&format!("into {}", db.display())));

    // $CXR_VIEWER_DB comes first, as in the viewer.
    let for_this_run = dir.join("this-run.sqlite3");
    NotesStore::open(&for_this_run).unwrap();
    let o = run(&["export", "--out", out_arg], Some(&for_this_run));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(&format!(
        "exported 0 notes from {} → ",
        for_this_run.display()
    )));
}

/// `notes import --rsna --data FOLDER labels.csv`: the films of the folder that the labels name
/// (found by file stem, in subfolders too, DICOM by SOPInstanceUID and rasters by content) get the
/// labels' boxes and ground truth; a reviewer's own note keeps its text, boxes and ground truth,
/// and the disagreement is named; a second import changes nothing; what matched nothing, or could
/// not be read, is said. Before, the viewer could show RSNA boxes only when drawn by hand.
#[test]
fn rsna_labels_import_into_the_notes_of_the_folder_films() {
    use cxr_viewer::notes::{identity, Finding, ImageBox};
    let tmp = scratch("notes-cli-rsna");
    let dir = tmp.path();
    let data = dir.join("films");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let fixture = common::fixture;
    let copy = |from: &str, to: &str| {
        std::fs::copy(fixture(from), data.join(to)).unwrap();
        data.join(to)
    };
    let a = copy("dicom/cr_chest_pa_mono1_10bit_explicit_le_440.dcm", "a.dcm");
    let b = copy("raster/gray16.png", "b.png");
    let c = copy("raster/gray8.jpg", "sub/c.jpg");
    copy("raster/rgb8.png", "unlabelled.png");
    copy("dicom/garbage.dcm", "broken.dcm");
    let id_of = |p: &Path| identity::study_id(p, &cxr_viewer::io::load_study(p).unwrap()).unwrap();
    let size_of = |p: &Path| {
        let s = cxr_viewer::io::load_study(p).unwrap();
        Some((s.width as u32, s.height as u32))
    };
    // The reviewer already said b is negative, boxed something and wrote a comment.
    let db = dir.join("notes.sqlite3");
    let own_box = ImageBox::new(1.0, 1.0, 2.0, 2.0);
    {
        let store = NotesStore::open(&db).unwrap();
        let mut note = Note::new(id_of(&b)).with_location(&b);
        note.ground_truth = Some(Finding::Negative);
        note.boxes = vec![own_box];
        note.text = "reviewer's comment".into();
        store.upsert(&note).unwrap();
    }
    let labels = dir.join("labels.csv");
    std::fs::write(
        &labels,
        "patientId,x,y,width,height,Target,class\n\
         a,10,20,30,40,1,Lung Opacity\n\
         a,50,60,70,80,1,Lung Opacity\n\
         b,3,4,5,6,1,Lung Opacity\n\
         c,,,,,0,Normal\n\
         broken,1,1,1,1,1,Lung Opacity\n\
         zz,1,1,1,1,1,Lung Opacity\n",
    )
    .unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "--db", db.to_str().unwrap()];
        args.extend_from_slice(extra);
        notes_cmd(&args)
    };
    let rsna = [
        "--rsna",
        "--data",
        data.to_str().unwrap(),
        labels.to_str().unwrap(),
    ];
    let out = import(&rsna);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "films labelled: 3 (2 with boxes, 1 negative); inserted 2, updated 1, unchanged 0"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: patientIds with no file in") && stdout.contains(" (1 of 5): zz\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "note: ground truth set by the reviewer and kept, unlike the labels' Target (1): b\n"
        ),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("warning: skipped broken.dcm: "),
        "{}",
        text(&out.stderr)
    );
    // Progress: the four files named (one of them unreadable), a line after each here.
    assert!(
        text(&out.stderr)
            .contains("read 1/4 films\nread 2/4 films\nread 3/4 films\nread 4/4 films\n"),
        "{}",
        text(&out.stderr)
    );

    let store = NotesStore::open(&db).unwrap();
    let note_a = store.get(&id_of(&a)).unwrap().expect("a's note");
    assert_eq!(
        note_a.boxes,
        [
            ImageBox::new(10.0, 20.0, 30.0, 40.0),
            ImageBox::new(50.0, 60.0, 70.0, 80.0)
        ]
    );
    assert_eq!(note_a.ground_truth, Some(Finding::Positive));
    assert_eq!(note_a.image_size, size_of(&a));
    assert_eq!(note_a.file_name.as_deref(), Some("a.dcm"));
    assert_eq!(note_a.agreement, None, "a label is not a verdict");
    let note_b = store.get(&id_of(&b)).unwrap().expect("b's note");
    assert_eq!(note_b.text, "reviewer's comment");
    assert_eq!(
        note_b.ground_truth,
        Some(Finding::Negative),
        "the reviewer's"
    );
    assert_eq!(note_b.boxes, [own_box, ImageBox::new(3.0, 4.0, 5.0, 6.0)]);
    assert_eq!(note_b.image_size, size_of(&b));
    let note_c = store.get(&id_of(&c)).unwrap().expect("c's note");
    assert_eq!(note_c.ground_truth, Some(Finding::Negative));
    assert!(note_c.boxes.is_empty());
    assert_eq!(store.list(Filter::All).unwrap().len(), 3, "nothing else");

    // Again: nothing changes, not even the time a note was last updated.
    let out = import(&rsna);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("inserted 0, updated 0, unchanged 3"),
        "{}",
        text(&out.stdout)
    );
    let again = store.get(&id_of(&b)).unwrap().unwrap();
    assert_eq!(again.updated_at, note_b.updated_at);

    // What the labels file does not give, a plain import of it, or a folder with none of its
    // films: one line each, and no database is created by a failed import.
    let fresh = dir.join("fresh.sqlite3");
    // A refused import's stderr.
    let refused = |extra: &[&str]| {
        let mut args = vec!["import", "--db", fresh.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = notes_cmd(&args);
        assert!(!out.status.success());
        text(&out.stderr)
    };
    let labels_from = |folder: &Path| {
        refused(&[
            "--rsna",
            "--data",
            folder.to_str().unwrap(),
            labels.to_str().unwrap(),
        ])
    };
    let err = refused(&[labels.to_str().unwrap()]);
    assert!(
        err.contains(
            "not a cxr-viewer notes export (an RSNA labels file: import it with --rsna --data FOLDER)"
        ),
        "{err}"
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = labels_from(&empty);
    assert!(
        err.contains("error: no file in")
            && err.contains("is named after one of the 5 patientIds of"),
        "{err}"
    );
    // Only the unreadable film: the refusal names it and why.
    let unreadable = dir.join("unreadable");
    std::fs::create_dir_all(&unreadable).unwrap();
    std::fs::copy(fixture("dicom/garbage.dcm"), unreadable.join("broken.dcm")).unwrap();
    let err = labels_from(&unreadable);
    assert!(
        err.contains("error: none of the 1 files in")
            && err.contains("names could be read (broken.dcm: "),
        "{err}"
    );
    let err = refused(&["--rsna", labels.to_str().unwrap()]);
    assert!(err.contains("--data <FOLDER>"), "{err}");
    assert!(!fresh.exists());
}
