//! Notes database under concurrent writers and under `kill -9`.
//!
//! The writer processes are this same test binary, re-run with `--exact child_writer --ignored`
//! and the database in the environment: no extra binary or hidden CLI command, and the child runs
//! exactly the library code the viewer runs. The child prints `committed <study id> <n>` after
//! each `upsert` has returned, so the parent knows what the store promised to keep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::scratch;
use cxr_viewer::notes::{Agreement, ErrorCategory, Note, NotesStore, StudyId, Zone};
use sha2::Digest;

const ENV_DB: &str = "CXR_NOTES_CHILD_DB";
const ENV_TAG: &str = "CXR_NOTES_CHILD_TAG";
const ENV_COUNT: &str = "CXR_NOTES_CHILD_COUNT";

fn study(key: &str) -> StudyId {
    StudyId::sha256(&sha2::Sha256::digest(key.as_bytes()).into())
}

/// Notes of a few KiB, so writes span pages and the WAL reaches checkpoints during the tests.
fn note(id: StudyId, writer: &str, n: u64) -> Note {
    let mut note = Note::new(id);
    note.agreement = Some(if n.is_multiple_of(2) {
        Agreement::Agree
    } else {
        Agreement::Disagree
    });
    note.categories
        .insert(ErrorCategory::ALL[n as usize % ErrorCategory::ALL.len()]);
    note.zones.insert(Zone::ALL[n as usize % Zone::ALL.len()]);
    note.reviewer = writer.to_string();
    note.text = format!(
        "{writer} #{n} {}",
        "lorem ipsum dolor sit amet ".repeat(150)
    );
    note
}

/// The writer number `n` a stored note's text starts with.
fn written_n(note: &Note) -> (String, u64) {
    let mut parts = note.text.split_whitespace();
    let writer = parts.next().unwrap().to_string();
    let n = parts
        .next()
        .unwrap()
        .trim_start_matches('#')
        .parse()
        .unwrap();
    (writer, n)
}

/// Not a test: the writer process spawned by the tests below. Writes `COUNT` unique notes (or
/// forever when 0) and after each one rewrites one of the studies `shared-0..=4`, which every
/// writer touches; prints a line after every commit.
#[test]
#[ignore = "helper process for the durability tests; does nothing when run directly"]
fn child_writer() {
    let (Ok(db), Ok(tag), Ok(count)) = (
        std::env::var(ENV_DB),
        std::env::var(ENV_TAG),
        std::env::var(ENV_COUNT),
    ) else {
        return;
    };
    let count: u64 = count.parse().unwrap();
    let store = NotesStore::open(Path::new(&db)).unwrap();
    let mut n = 0;
    while count == 0 || n < count {
        let own = study(&format!("{tag}-{n}"));
        store.upsert(&note(own.clone(), &tag, n)).unwrap();
        println!("committed {own} {n}");
        let shared = study(&format!("shared-{}", n % 5));
        store.upsert(&note(shared.clone(), &tag, n)).unwrap();
        println!("committed {shared} {n}");
        n += 1;
    }
}

fn spawn_writer(db: &Path, tag: &str, count: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DB, db)
        .env(ENV_TAG, tag)
        .env(ENV_COUNT, count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Lines with their newline kept, so a line the kill cut short can be told apart.
fn rest_of(mut reader: impl BufRead) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return lines,
            Ok(_) => lines.push(line),
        }
    }
}

/// `study id → highest n` the writer reported committed, from its output lines.
fn committed(lines: impl IntoIterator<Item = String>) -> BTreeMap<StudyId, u64> {
    let mut out = BTreeMap::new();
    for line in lines {
        // A line cut short by the kill (no newline) is skipped: it promised nothing complete.
        let Some(line) = line.strip_suffix('\n') else {
            continue;
        };
        // libtest prints "test child_writer ... " without a newline before the child's output.
        let Some(at) = line.find("committed ") else {
            continue;
        };
        let mut parts = line[at..].split_whitespace().skip(1);
        let id = StudyId::parse(parts.next().unwrap()).unwrap();
        let n: u64 = parts.next().unwrap().parse().unwrap();
        let e = out.entry(id).or_insert(n);
        *e = (*e).max(n);
    }
    out
}

/// Every note reported committed is present, at least as recent as reported, from that writer
/// where the study is its own.
fn assert_all_present(store: &NotesStore, tag: &str, reported: &BTreeMap<StudyId, u64>) {
    for (id, &n) in reported {
        let stored = store.get(id).unwrap().unwrap_or_else(|| {
            panic!("{tag}: note {id} #{n} was reported committed but is missing")
        });
        let (writer, stored_n) = written_n(&stored);
        if writer == tag {
            assert!(
                stored_n >= n,
                "{tag}: {id} has #{stored_n}, #{n} was committed"
            );
        }
    }
}

#[test]
fn killed_writer_loses_no_committed_note() {
    let tmp = scratch("notes-durability-kill");
    let dir = tmp.path().to_path_buf();
    let db = dir.join("notes.sqlite3");
    // Kill after different amounts of work so the kill lands at different points of the write
    // path (the page writes, the commit, a WAL checkpoint).
    for (round, kill_after) in [1usize, 37, 301, 1009, 2503].into_iter().enumerate() {
        let tag = format!("round{round}");
        let mut child = spawn_writer(&db, &tag, 0);
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let mut seen = 0;
        while seen < kill_after {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "writer ended early"
            );
            seen += usize::from(line.contains("committed "));
            lines.push(line);
        }
        // SIGKILL on Unix: no destructor, no rollback, no final checkpoint.
        child.kill().unwrap();
        // What the child printed before dying also counts as committed.
        lines.extend(rest_of(reader));
        let status = child.wait().unwrap();
        assert!(!status.success(), "the writer was killed, not finished");
        // The reopen below has to recover from the WAL the dead writer left behind.
        let wal = dir.join("notes.sqlite3-wal");
        assert!(
            wal.metadata().unwrap().len() > 0,
            "a WAL was left to recover"
        );

        let reported = committed(lines);
        assert!(!reported.is_empty());
        let store = NotesStore::open(&db).unwrap();
        store.check_integrity().unwrap();
        assert_all_present(&store, &tag, &reported);
    }
}

#[test]
fn two_processes_write_one_database() {
    let tmp = scratch("notes-durability-processes");
    let dir = tmp.path().to_path_buf();
    let db = dir.join("notes.sqlite3");
    let per_writer = 400;
    let children: Vec<(String, Child)> = ["procA", "procB"]
        .iter()
        .map(|tag| (tag.to_string(), spawn_writer(&db, tag, per_writer)))
        .collect();
    let mut reports = Vec::new();
    for (tag, mut child) in children {
        let lines = rest_of(BufReader::new(child.stdout.take().unwrap()));
        assert!(child.wait().unwrap().success(), "{tag} failed");
        reports.push((tag, committed(lines)));
    }
    let store = NotesStore::open(&db).unwrap();
    store.check_integrity().unwrap();
    for (tag, reported) in &reports {
        assert_eq!(reported.len(), per_writer as usize + 5, "{tag}");
        assert_all_present(&store, tag, reported);
    }
    // Own notes of both plus the five shared ones, each exactly once.
    assert_eq!(store.counts().unwrap().notes, 2 * per_writer as usize + 5);
}

#[test]
fn two_threads_write_one_database() {
    let tmp = scratch("notes-durability-threads");
    let dir = tmp.path().to_path_buf();
    let db = dir.join("notes.sqlite3");
    let per_writer = 100u64;
    // Two connections (as two windows or instances would have) and one store shared by two
    // threads (as the GUI's UI and worker threads would).
    let shared = Arc::new(NotesStore::open(&db).unwrap());
    let handles: Vec<_> = ["own1", "own2", "arcA", "arcB"]
        .into_iter()
        .map(|tag| {
            let db = db.clone();
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mine;
                let store: &NotesStore = if tag.starts_with("own") {
                    mine = NotesStore::open(&db).unwrap();
                    &mine
                } else {
                    &shared
                };
                let mut reported = BTreeMap::new();
                for n in 0..per_writer {
                    let own = study(&format!("{tag}-{n}"));
                    store.upsert(&note(own.clone(), tag, n)).unwrap();
                    reported.insert(own, n);
                    let common = study(&format!("shared-{}", n % 5));
                    store.upsert(&note(common.clone(), tag, n)).unwrap();
                    let e = reported.entry(common).or_insert(n);
                    *e = (*e).max(n);
                }
                (tag, reported)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    shared.check_integrity().unwrap();
    for (tag, reported) in &results {
        assert_all_present(&shared, tag, reported);
    }
    assert_eq!(shared.counts().unwrap().notes, 4 * per_writer as usize + 5);
}
