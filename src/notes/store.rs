//! The SQLite-backed notes database.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::error::{NotesError, NotesErrorKind};
use super::model::{
    check_boxes, join_boxes, join_tokens, join_top_zones, now_millis, split_boxes, split_tokens,
    split_top_zones, Agreement, Counts, ErrorCategory, Filter, Finding, Note, PredictionSnapshot,
    StudyId, Zone,
};
use super::schema;

/// Durability of each commit against power loss; see the module documentation of
/// [`notes`](super) for what each level guarantees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// fsync only at WAL checkpoints: commits survive any process kill; a power loss may lose
    /// the most recent commits but never corrupts the file.
    #[default]
    Normal,
    /// fsync the WAL on every commit: commits also survive a power loss, at one fsync per save.
    Full,
}

/// How a store is opened. `Default` is what the viewer uses.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    busy_timeout: Duration,
    synchronous: Synchronous,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            // Writes take milliseconds; this only has to outlast another instance's checkpoint
            // or import, and is short enough that a stuck peer is reported rather than hanging
            // the UI for long.
            busy_timeout: Duration::from_secs(10),
            synchronous: Synchronous::Normal,
        }
    }
}

impl StoreOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a write waits for another connection's write lock before failing with
    /// [`NotesErrorKind::Busy`].
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
}

/// What [`NotesStore::save_edit`] stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EditSaved {
    /// The note as stored (timestamps set by the store).
    pub stored: Note,
    /// The other writer's copy that the edit was merged with, when there was one.
    pub merged: Option<Note>,
}

/// What [`NotesStore::merge`] did, per note.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Studies that had no note here.
    pub inserted: usize,
    /// Notes replaced by a copy updated later, or edited in the file (`edited_in_file`).
    pub updated: usize,
    /// Incoming notes that were older than, or the same as, the note here.
    pub unchanged: usize,
    /// Of `updated`: incoming notes that say something else than the note here under the same
    /// `updated_at`. The viewer stamps every save, so two copies of one save cannot differ: the
    /// file was edited after it was exported (a spreadsheet keeps the old time), and that edit is
    /// the later one. Counted apart so that the user learns the rule; such a note is stamped with
    /// the import's time.
    pub edited_in_file: usize,
    /// Of `unchanged`: incoming notes that say something else than the note here but were
    /// updated before it, so the note here was kept and the file's version was not imported
    /// (the file name, else the study id, of each). Named because an edit made in an exported
    /// file while the note was edited again in the viewer would otherwise vanish without a word.
    pub older_kept: Vec<String>,
}

impl MergeReport {
    /// What the counts alone do not tell, one sentence each, for the CLI's and the viewer's
    /// import messages: edits taken by the tie rule, and the file's versions not imported.
    pub fn remarks(&self) -> Vec<String> {
        let mut remarks = Vec::new();
        if self.edited_in_file > 0 {
            let (n, notes) = match self.edited_in_file {
                1 => ("1".to_string(), "note"),
                n => (n.to_string(), "notes"),
            };
            remarks.push(format!(
                "{n} {notes} edited in the file since its export (the updated_at of the {notes} \
                 here, other content): imported as edits made now"
            ));
        }
        if !self.older_kept.is_empty() {
            const SHOWN: usize = 5;
            let mut names = self.older_kept[..self.older_kept.len().min(SHOWN)].join(", ");
            if self.older_kept.len() > SHOWN {
                names.push_str(&format!(", … ({} more)", self.older_kept.len() - SHOWN));
            }
            remarks.push(match self.older_kept.len() {
                1 => format!(
                    "1 note in the file differs from the note here but is older (updated here \
                     since): kept this one, the file's not imported: {names} (to import the \
                     file's, give it a later updated_at)"
                ),
                n => format!(
                    "{n} notes in the file differ from the notes here but are older (updated \
                     here since): kept these, the file's not imported: {names} (to import the \
                     file's, give them a later updated_at)"
                ),
            });
        }
        remarks
    }
}

/// What [`NotesStore::add_labels`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelsAdded {
    /// Per note: `inserted` for a study that had none, `updated` where the labels added boxes or
    /// a ground truth, `unchanged` where the note already said all of it.
    pub report: MergeReport,
    /// Notes (as they were) whose ground truth the reviewer set differently from the label's;
    /// they keep their own.
    pub truth_kept: Vec<Note>,
}

/// `<data dir>/notes.sqlite3`, where the viewer keeps notes unless the user picks a file
/// (`~/.local/share/cxr-viewer/` on Linux, `~/Library/Application Support/org.cxr-viewer.cxr-viewer/`
/// on macOS, `%APPDATA%\cxr-viewer\cxr-viewer\data\` on Windows).
pub fn default_path() -> Result<PathBuf, NotesError> {
    directories::ProjectDirs::from("org", "cxr-viewer", "cxr-viewer")
        .map(|d| d.data_dir().join("notes.sqlite3"))
        .ok_or_else(|| {
            NotesError::new(
                NotesErrorKind::NoDataDir,
                "notes database",
                "no home directory to keep it in; choose a file instead",
            )
        })
}

/// The notes database to open: the one named for this run (`--db`, `$CXR_VIEWER_DB`), else the
/// one the reviewer chose in the viewer's notes pane (remembered in its settings), else
/// [`default_path`]. The viewer and `cxr-viewer notes` both follow this order, so an export
/// reads the notes the reviewer wrote.
pub fn chosen_path(
    for_this_run: Option<&Path>,
    remembered: Option<&Path>,
) -> Result<PathBuf, NotesError> {
    match for_this_run.or(remembered) {
        Some(p) => Ok(p.to_path_buf()),
        None => default_path(),
    }
}

/// One connection to a notes database.
///
/// `Sync`: methods take `&self` (the connection sits behind a mutex), so the GUI can share one
/// store between its UI and worker threads. Several stores — threads, or app instances — may
/// open the same file; SQLite's locking serialises their writes.
pub struct NotesStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// `notes database <path>`, the subject of every error message.
    what: String,
}

impl std::fmt::Debug for NotesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotesStore")
            .field("path", &self.path)
            .finish()
    }
}

const COLUMNS: &str = "study_id, agreement, categories, zones, body, reviewer, file_name, \
    file_path, created_at, updated_at, ground_truth, predicted, probability, model_uncertain, boxes, \
    image_width, image_height, map_top_zones, model_in_scope";

/// `PRAGMA journal_mode = WAL`, answering the mode the file ends up in. The switch needs an
/// exclusive lock, and while another connection holds a write lock SQLite fails it at once
/// instead of calling the busy handler (waiting there could deadlock), so two instances opening
/// a new database together would see "database is locked". Retried here for the busy timeout.
fn switch_to_wal(conn: &Connection, timeout: Duration, what: &str) -> Result<String, NotesError> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(mode) => return Ok(mode),
            Err(e) => {
                let error = NotesError::sqlite(what, "cannot switch to WAL mode", e);
                if error.kind() != NotesErrorKind::Busy || Instant::now() >= deadline {
                    return Err(error);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl NotesStore {
    /// Opens (creating it and its folder if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, NotesError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens the database at [`default_path`].
    pub fn open_default() -> Result<Self, NotesError> {
        Self::open(&default_path()?)
    }

    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Self, NotesError> {
        let what = format!("notes database {}", path.display());
        // SQLite's own answer for a folder is "unable to open database file … Error code 14".
        if path.is_dir() {
            return Err(NotesError::new(
                NotesErrorKind::Io,
                &what,
                "is a folder; give a file in it, e.g. notes.sqlite3",
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                NotesError::new(NotesErrorKind::Io, &what, "cannot create its folder")
                    .with_source(e)
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)
            .map_err(|e| NotesError::sqlite(&what, "cannot open", e))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| NotesError::sqlite(&what, "cannot set the busy timeout", e))?;
        // Refuse a newer schema before touching anything, the journal mode included.
        let found = schema::user_version(&conn, &what)?;
        if found > schema::SCHEMA_VERSION {
            return Err(schema::too_new(&what, found));
        }
        schema::refuse_foreign(&conn, &what)?;
        // WAL is a property of the file (kept across opens); the answer says whether the file
        // system allowed it (it does not on some network shares, which then keep the rollback
        // journal: still atomic and durable, only readers wait for writers).
        let mode = switch_to_wal(&conn, options.busy_timeout, &what)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("{what}: journal mode is {mode}, not WAL; concurrent readers will wait");
        }
        let sync = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(|e| NotesError::sqlite(&what, "cannot set synchronous", e))?;
        schema::migrate(&mut conn, &what)?;
        Ok(NotesStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            what,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A panic in another thread while it held the lock cannot leave a half-written note: its
    /// transaction was rolled back when it unwound, so the connection is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self, reason: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> NotesError + '_ {
        let reason = reason.into();
        move |e| NotesError::sqlite(&self.what, reason, e)
    }

    pub fn get(&self, study: &StudyId) -> Result<Option<Note>, NotesError> {
        let conn = self.conn();
        read_one(&conn, study)
            .map_err(self.failed(format!("cannot read the note of {study}")))?
            .map(|raw| raw.into_note(&self.what))
            .transpose()
    }

    /// Saves the reviewer's current note: one short transaction (a few hundred microseconds with
    /// `synchronous=NORMAL`), meant to be called on every edit after a debounce.
    ///
    /// The store owns the timestamps: `created_at` is kept from the first save, `updated_at`
    /// becomes now, and never goes backwards even if the clock does, so last-updated-wins merges
    /// always prefer the latest edit. A note whose content did not change is not rewritten (only
    /// its last-seen location is refreshed) and keeps its `updated_at`. Returns the note as
    /// stored.
    pub fn upsert(&self, note: &Note) -> Result<Note, NotesError> {
        self.write(note, None).map(|saved| saved.stored)
    }

    /// Saves an edit that began from the stored copy of `base` (its `updated_at`; `None` when the
    /// study had no note then), as [`NotesStore::upsert`] does, unless another writer (a second
    /// viewer on this database) has saved the note since: then the edit is merged with that copy
    /// ([`Note::merged_with`]) and both are kept, where a plain upsert would silently overwrite
    /// the other reviewer's text. The check and the write are one transaction.
    pub fn save_edit(
        &self,
        note: &Note,
        base: Option<DateTime<Utc>>,
    ) -> Result<EditSaved, NotesError> {
        self.write(note, Some(base))
    }

    /// `base`: `None` writes `note` whatever is stored; `Some` merges with a copy stored after it.
    fn write(
        &self,
        note: &Note,
        base: Option<Option<DateTime<Utc>>>,
    ) -> Result<EditSaved, NotesError> {
        validate(note, &self.what)?;
        let mut conn = self.conn();
        let reason = || format!("cannot save the note of {}", note.study);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.failed(reason()))?;
        let existing = read_one(&tx, &note.study)
            .map_err(self.failed(reason()))?
            .map(|raw| raw.into_note(&self.what))
            .transpose()?;
        let merged = match (&existing, base) {
            (Some(old), Some(base)) if Some(old.updated_at) != base && !old.same_content(note) => {
                Some(old.clone())
            }
            _ => None,
        };
        let merged_note = merged.as_ref().map(|theirs| note.merged_with(theirs));
        let note = merged_note.as_ref().unwrap_or(note);
        let now = now_millis();
        let mut stored = note.clone();
        match &existing {
            Some(old) if old.same_content(note) => {
                stored.created_at = old.created_at;
                stored.updated_at = old.updated_at;
            }
            Some(old) => {
                stored.created_at = old.created_at;
                stored.updated_at = now.max(old.updated_at + TimeDelta::milliseconds(1));
            }
            None => {
                stored.created_at = now;
                stored.updated_at = now;
            }
        }
        if let Some(old) = &existing {
            stored.file_name = stored.file_name.or_else(|| old.file_name.clone());
            stored.file_path = stored.file_path.or_else(|| old.file_path.clone());
        }
        if existing.as_ref() != Some(&stored) {
            write_row(&tx, &stored).map_err(self.failed(reason()))?;
            tx.commit().map_err(self.failed(reason()))?;
        }
        Ok(EditSaved { stored, merged })
    }

    /// Returns whether there was a note.
    pub fn delete(&self, study: &StudyId) -> Result<bool, NotesError> {
        let conn = self.conn();
        let n = conn
            .execute("DELETE FROM notes WHERE study_id = ?1", [study.as_str()])
            .map_err(self.failed(format!("cannot delete the note of {study}")))?;
        Ok(n > 0)
    }

    /// Notes matching `filter`, most recently updated first. Studies without a note are not
    /// here; the GUI applies [`Filter::matches`] to those itself.
    pub fn list(&self, filter: Filter) -> Result<Vec<Note>, NotesError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|n| filter.matches(Some(n)))
            .collect())
    }

    pub fn counts(&self) -> Result<Counts, NotesError> {
        Ok(Counts::of(&self.all()?))
    }

    fn all(&self) -> Result<Vec<Note>, NotesError> {
        let conn = self.conn();
        let raws = (|| -> rusqlite::Result<Vec<RawRow>> {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notes ORDER BY updated_at DESC, study_id"
            ))?;
            let rows = stmt.query_map([], RawRow::from_row)?;
            rows.collect()
        })()
        .map_err(self.failed("cannot list notes"))?;
        raws.into_iter().map(|r| r.into_note(&self.what)).collect()
    }

    /// Merges notes from elsewhere (an import, another reviewer's database) by study id: a note
    /// replaces ours only if it was updated later, or if it says something else under the same
    /// `updated_at` (edited in an exported file; then it is stamped now), so merging twice, or in
    /// either direction, converges and never duplicates. An older copy that differs is not taken,
    /// and is named in the report. All or nothing: one transaction.
    pub fn merge(&self, notes: &[Note]) -> Result<MergeReport, NotesError> {
        for n in notes {
            validate(n, &self.what)?;
        }
        let mut conn = self.conn();
        let reason = "cannot merge notes";
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.failed(reason))?;
        let mut report = MergeReport::default();
        let now = now_millis();
        for incoming in notes {
            let existing = read_one(&tx, &incoming.study)
                .map_err(self.failed(reason))?
                .map(|raw| raw.into_note(&self.what))
                .transpose()?;
            let mut stored = incoming.clone();
            match existing {
                None => report.inserted += 1,
                Some(old) if old.same_content(incoming) => {
                    report.unchanged += 1;
                    continue;
                }
                Some(old) if incoming.updated_at < old.updated_at => {
                    report.unchanged += 1;
                    report.older_kept.push(
                        incoming
                            .file_name
                            .clone()
                            .unwrap_or_else(|| incoming.study.to_string()),
                    );
                    continue;
                }
                Some(old) => {
                    report.updated += 1;
                    if incoming.updated_at == old.updated_at {
                        report.edited_in_file += 1;
                        stored.updated_at = now.max(old.updated_at + TimeDelta::milliseconds(1));
                    }
                    stored.created_at = stored.created_at.min(old.created_at);
                    stored.file_name = stored.file_name.or(old.file_name);
                    stored.file_path = stored.file_path.or(old.file_path);
                }
            }
            write_row(&tx, &stored).map_err(self.failed(reason))?;
        }
        tx.commit().map_err(self.failed(reason))?;
        Ok(report)
    }

    /// Adds labels (an RSNA labels file's boxes and `Target`, [`super::rsna::notes_from_labels`])
    /// to the notes, in one transaction. Unlike [`NotesStore::merge`], which replaces a whole note
    /// by a later copy, a reviewer's note here keeps everything it says: the labels' boxes join
    /// its own ([`Note::merged_with`], the stored note as "ours"), and its ground truth, when set,
    /// stays, since the reviewer set it deliberately; such disagreements are returned so that
    /// they can be named. A study without a note gets the label's note. Importing the same labels
    /// again changes nothing.
    pub fn add_labels(&self, labels: &[Note]) -> Result<LabelsAdded, NotesError> {
        for n in labels {
            validate(n, &self.what)?;
        }
        let mut conn = self.conn();
        let reason = "cannot add the labels";
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.failed(reason))?;
        let mut added = LabelsAdded::default();
        let now = now_millis();
        for label in labels {
            let existing = read_one(&tx, &label.study)
                .map_err(self.failed(reason))?
                .map(|raw| raw.into_note(&self.what))
                .transpose()?;
            let stored = match existing {
                None => {
                    added.report.inserted += 1;
                    let mut fresh = label.clone();
                    fresh.created_at = now;
                    fresh.updated_at = now;
                    fresh
                }
                Some(old) => {
                    if let (Some(kept), Some(theirs)) = (old.ground_truth, label.ground_truth) {
                        if kept != theirs {
                            added.truth_kept.push(old.clone());
                        }
                    }
                    let mut merged = old.merged_with(label);
                    if old.same_content(&merged) {
                        added.report.unchanged += 1;
                        continue;
                    }
                    added.report.updated += 1;
                    merged.updated_at = now.max(old.updated_at + TimeDelta::milliseconds(1));
                    merged.file_name = label.file_name.clone().or(old.file_name);
                    merged.file_path = label.file_path.clone().or(old.file_path);
                    merged
                }
            };
            write_row(&tx, &stored).map_err(self.failed(reason))?;
        }
        tx.commit().map_err(self.failed(reason))?;
        Ok(added)
    }

    /// `PRAGMA integrity_check`: an error naming the first problems unless the file is sound.
    pub fn check_integrity(&self) -> Result<(), NotesError> {
        let conn = self.conn();
        let lines = (|| -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })()
        .map_err(self.failed("cannot check integrity"))?;
        if lines == ["ok"] {
            Ok(())
        } else {
            Err(NotesError::new(
                NotesErrorKind::Integrity,
                &self.what,
                format!(
                    "integrity check failed: {}",
                    lines.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                ),
            ))
        }
    }

    pub fn schema_version(&self) -> Result<u32, NotesError> {
        schema::user_version(&self.conn(), &self.what)
    }
}

fn validate(note: &Note, what: &str) -> Result<(), NotesError> {
    check_boxes(&note.boxes).map_err(|e| {
        NotesError::new(
            NotesErrorKind::InvalidData,
            what,
            format!("note of {}: {e}", note.study),
        )
    })?;
    if let Some(p) = note.prediction {
        if !(0.0..=1.0).contains(&p.probability) {
            return Err(NotesError::new(
                NotesErrorKind::InvalidData,
                what,
                format!(
                    "note of {}: probability {} is not in [0, 1]",
                    note.study, p.probability
                ),
            ));
        }
    }
    if note.image_size.is_some_and(|(w, h)| w == 0 || h == 0) {
        return Err(NotesError::new(
            NotesErrorKind::InvalidData,
            what,
            format!("note of {}: an image size must be positive", note.study),
        ));
    }
    Ok(())
}

/// Fixed-width UTC with milliseconds: sorts as text in time order and round-trips exactly.
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accepts any RFC 3339 offset (hand-edited imports), normalised to UTC milliseconds.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, NotesError> {
    use chrono::SubsecRound;
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(3))
        .map_err(|e| {
            NotesError::new(
                NotesErrorKind::InvalidData,
                format!("timestamp '{}'", s.chars().take(40).collect::<String>()),
                "not RFC 3339 (e.g. 2026-01-31T09:15:00.000Z)",
            )
            .with_source(e)
        })
}

/// A row as SQLite returns it; turned into a [`Note`] outside the rusqlite callback so that a bad
/// value becomes a [`NotesError`] naming the study and field.
struct RawRow {
    study_id: String,
    agreement: Option<String>,
    categories: String,
    zones: String,
    body: String,
    reviewer: String,
    file_name: Option<String>,
    file_path: Option<String>,
    created_at: String,
    updated_at: String,
    ground_truth: Option<String>,
    predicted: Option<String>,
    probability: Option<f64>,
    model_uncertain: Option<bool>,
    boxes: String,
    image_width: Option<u32>,
    image_height: Option<u32>,
    map_top_zones: String,
    model_in_scope: Option<bool>,
}

impl RawRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            study_id: r.get(0)?,
            agreement: r.get(1)?,
            categories: r.get(2)?,
            zones: r.get(3)?,
            body: r.get(4)?,
            reviewer: r.get(5)?,
            file_name: r.get(6)?,
            file_path: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
            ground_truth: r.get(10)?,
            predicted: r.get(11)?,
            probability: r.get(12)?,
            model_uncertain: r.get(13)?,
            boxes: r.get(14)?,
            image_width: r.get(15)?,
            image_height: r.get(16)?,
            map_top_zones: r.get(17)?,
            model_in_scope: r.get(18)?,
        })
    }

    fn into_note(self, what: &str) -> Result<Note, NotesError> {
        let study_id = self.study_id.clone();
        let inner = || -> Result<Note, NotesError> {
            let prediction = match (self.predicted.as_deref(), self.probability) {
                (Some(p), Some(probability)) => Some(PredictionSnapshot {
                    predicted: Finding::parse(p)?,
                    probability,
                    uncertain: self.model_uncertain.unwrap_or(false),
                    in_scope: self.model_in_scope,
                }),
                _ => None,
            };
            Ok(Note {
                study: StudyId::parse(&self.study_id)?,
                agreement: self
                    .agreement
                    .as_deref()
                    .map(Agreement::parse)
                    .transpose()?,
                categories: split_tokens(&self.categories, ErrorCategory::parse)?,
                zones: split_tokens(&self.zones, Zone::parse)?,
                boxes: split_boxes(&self.boxes)?,
                text: self.body,
                reviewer: self.reviewer,
                ground_truth: self
                    .ground_truth
                    .as_deref()
                    .map(Finding::parse)
                    .transpose()?,
                prediction,
                map_top_zones: split_top_zones(&self.map_top_zones)?,
                image_size: self.image_width.zip(self.image_height),
                file_name: self.file_name,
                file_path: self.file_path,
                created_at: parse_time(&self.created_at)?,
                updated_at: parse_time(&self.updated_at)?,
            })
        };
        inner().map_err(|e| {
            NotesError::new(
                NotesErrorKind::InvalidData,
                what,
                format!("the stored note of {study_id} is invalid"),
            )
            .with_source(e)
        })
    }
}

fn read_one(conn: &Connection, study: &StudyId) -> rusqlite::Result<Option<RawRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM notes WHERE study_id = ?1"))?
        .query_row([study.as_str()], RawRow::from_row)
        .optional()
}

fn write_row(tx: &Transaction<'_>, n: &Note) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO notes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT (study_id) DO UPDATE SET
            agreement = excluded.agreement, categories = excluded.categories,
            zones = excluded.zones, body = excluded.body, reviewer = excluded.reviewer,
            file_name = excluded.file_name, file_path = excluded.file_path,
            created_at = excluded.created_at, updated_at = excluded.updated_at,
            ground_truth = excluded.ground_truth, predicted = excluded.predicted,
            probability = excluded.probability, model_uncertain = excluded.model_uncertain,
            boxes = excluded.boxes, image_width = excluded.image_width,
            image_height = excluded.image_height, map_top_zones = excluded.map_top_zones,
            model_in_scope = excluded.model_in_scope"
    ))?;
    stmt.execute(params![
        n.study.as_str(),
        n.agreement.map(Agreement::as_str),
        join_tokens(n.categories.iter().map(|k| k.as_str())),
        join_tokens(n.zones.iter().map(|z| z.as_str())),
        n.text,
        n.reviewer,
        n.file_name,
        n.file_path,
        format_time(&n.created_at),
        format_time(&n.updated_at),
        n.ground_truth.map(Finding::as_str),
        n.prediction.map(|p| p.predicted.as_str()),
        n.prediction.map(|p| p.probability),
        n.prediction.map(|p| p.uncertain),
        join_boxes(&n.boxes),
        n.image_size.map(|s| s.0),
        n.image_size.map(|s| s.1),
        join_top_zones(&n.map_top_zones),
        n.prediction.and_then(|p| p.in_scope),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MergeReport;

    /// One sentence per kind of note the counts do not explain, in the singular for one note,
    /// with at most five names and how many more.
    #[test]
    fn merge_remarks_name_what_the_counts_do_not_tell() {
        assert!(MergeReport::default().remarks().is_empty());
        let one = MergeReport {
            edited_in_file: 1,
            older_kept: vec!["a.dcm".into()],
            ..MergeReport::default()
        };
        assert_eq!(
            one.remarks(),
            [
                "1 note edited in the file since its export (the updated_at of the note here, \
                 other content): imported as edits made now",
                "1 note in the file differs from the note here but is older (updated here \
                 since): kept this one, the file's not imported: a.dcm (to import the file's, \
                 give it a later updated_at)"
            ]
        );
        let many = MergeReport {
            edited_in_file: 2,
            older_kept: (1..=7).map(|k| format!("f{k}.png")).collect(),
            ..MergeReport::default()
        };
        assert_eq!(
            many.remarks(),
            [
                "2 notes edited in the file since its export (the updated_at of the notes here, \
                 other content): imported as edits made now",
                "7 notes in the file differ from the notes here but are older (updated here \
                 since): kept these, the file's not imported: f1.png, f2.png, f3.png, f4.png, \
                 f5.png, … (2 more) (to import the file's, give them a later updated_at)"
            ]
        );
    }
}
