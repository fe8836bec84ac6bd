//! Versioned schema: `PRAGMA user_version` is the number of migrations applied.
//!
//! Migrations are append-only: a released entry is never edited, because databases in the field
//! were built by it; a change is a new entry. Each one runs in its own `BEGIN IMMEDIATE`
//! transaction together with the `user_version` bump (the version lives in the database header,
//! which SQLite writes transactionally), so a crash mid-migration leaves the previous version
//! intact, and two instances opening the same old database at once migrate it exactly once: the
//! second waits for the write lock, re-reads the version and finds nothing left to do.

use rusqlite::{Connection, TransactionBehavior};

use super::error::{NotesError, NotesErrorKind};

/// Ordered: entry `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: the review itself. STRICT so a wrong type is an error rather than silently stored;
    // categories and zones are `;`-joined tokens (small closed vocabularies, always read with
    // the note). file_name/file_path are the last place the study was seen, never a key.
    "CREATE TABLE notes (
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
    ) STRICT;",
    // v2: what the model said at review time and the reviewer's ground truth, for outcomes
    // (TP/FP/TN/FN); an index for the most-recent-first list.
    "ALTER TABLE notes ADD COLUMN ground_truth TEXT CHECK (ground_truth IN ('positive', 'negative'));
     ALTER TABLE notes ADD COLUMN predicted TEXT CHECK (predicted IN ('positive', 'negative'));
     ALTER TABLE notes ADD COLUMN probability REAL CHECK (probability BETWEEN 0.0 AND 1.0);
     ALTER TABLE notes ADD COLUMN model_uncertain INTEGER CHECK (model_uncertain IN (0, 1));
     CREATE INDEX notes_by_updated ON notes (updated_at);",
    // v3: where the opacity is. Boxes in original image pixels, `x y width height` per box,
    // `;`-joined (a handful per note, always read with it); '' for notes written before. With
    // the film's size (to map boxes to zones) and each map's top zone as the reviewer saw it,
    // `gradcam=right_lower;ig=...`, for zone agreement.
    "ALTER TABLE notes ADD COLUMN boxes TEXT NOT NULL DEFAULT '';
     ALTER TABLE notes ADD COLUMN image_width INTEGER CHECK (image_width > 0);
     ALTER TABLE notes ADD COLUMN image_height INTEGER CHECK (image_height > 0);
     ALTER TABLE notes ADD COLUMN map_top_zones TEXT NOT NULL DEFAULT '';",
    // v4: whether the scope guard judged the film inside the model's scope when the note was
    // written; NULL for notes written before (unknown, never counted against a film).
    "ALTER TABLE notes ADD COLUMN model_in_scope INTEGER CHECK (model_in_scope IN (0, 1));",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn user_version(conn: &Connection, what: &str) -> Result<u32, NotesError> {
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| NotesError::sqlite(what, "cannot read the schema version", e))?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

pub(crate) fn too_new(what: &str, found: u32) -> NotesError {
    NotesError::new(
        NotesErrorKind::TooNew,
        what,
        format!(
            "written by a newer cxr-viewer (schema version {found}, this build knows up to \
             {SCHEMA_VERSION}); update cxr-viewer or choose another notes file"
        ),
    )
}

/// Refuses an SQLite file that holds tables but not the notes table: another program's database
/// (the viewer's own prediction cache, say) given where a notes file was meant. Before this, such
/// a file was switched to WAL mode and then failed with "cannot migrate to schema version 2: no
/// such table: notes".
pub(crate) fn refuse_foreign(conn: &Connection, what: &str) -> Result<(), NotesError> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| NotesError::sqlite(what, "cannot list its tables", e))?;
    if tables.is_empty() || tables.iter().any(|t| t == "notes") {
        return Ok(());
    }
    let mut shown: Vec<&str> = tables.iter().map(String::as_str).take(5).collect();
    if tables.len() > shown.len() {
        shown.push("…");
    }
    Err(NotesError::new(
        NotesErrorKind::InvalidData,
        what,
        format!(
            "is an SQLite database of something else (tables: {}), not a cxr-viewer notes file; \
             choose another file",
            shown.join(", ")
        ),
    ))
}

/// Brings the database to [`SCHEMA_VERSION`], refusing one from a newer build: its tables may
/// mean things this build would misread or overwrite.
pub(crate) fn migrate(conn: &mut Connection, what: &str) -> Result<(), NotesError> {
    let found = user_version(conn, what)?;
    if found > SCHEMA_VERSION {
        return Err(too_new(what, found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let target = i as u32 + 1;
        let failed = |e| {
            NotesError::sqlite(
                what,
                format!("cannot migrate to schema version {target}"),
                e,
            )
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        // Another instance may have migrated while we waited for the lock.
        let now = user_version(&tx, what)?;
        if now > SCHEMA_VERSION {
            return Err(too_new(what, now));
        }
        if now >= target {
            continue;
        }
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", target)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}
