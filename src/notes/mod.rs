//! Review notes: where the model went wrong on a study and why, kept in an embedded SQLite
//! database that survives crashes, renamed files and two viewer instances at once.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use cxr_viewer::notes::{identity, Agreement, ErrorCategory, Filter, ImageBox, Note, NotesStore, Zone};
//!
//! let path = std::path::Path::new("person45_bacteria_221.jpeg");
//! let study = cxr_viewer::io::load_study(path)?;
//! let store = NotesStore::open_default()?; // or NotesStore::open(chosen_file)
//! let id = identity::study_id(path, &study)?;
//! let mut note = store.get(&id)?.unwrap_or_else(|| Note::new(id.clone()));
//! note = note.with_location(path);
//! note.agreement = Some(Agreement::Disagree);
//! note.categories.insert(ErrorCategory::BonyShadow);
//! note.zones.insert(Zone::RightLower);
//! note.text = "rib crossing mimics an opacity".into();
//! note.boxes.push(ImageBox::new(505.0, 399.0, 242.0, 414.0)); // image pixels, RSNA convention
//! let saved = store.upsert(&note)?; // call again after each edit (debounced)
//! let false_negatives = store.list(Filter::FalseNegatives)?;
//! # let _ = (saved, false_negatives);
//! # Ok(())
//! # }
//! ```
//!
//! # Identity
//!
//! Notes are keyed by a [`StudyId`] computed from the content ([`identity::study_id`]): the DICOM
//! SOPInstanceUID, or the SHA-256 of a raster file's bytes. Renaming or moving a file keeps its
//! note; the last-seen file name and path are stored for information only.
//!
//! # Durability
//!
//! * **Every write is one transaction.** [`NotesStore::upsert`] writes one note, whole or not at
//!   all; [`NotesStore::merge`] (imports) is all-or-nothing; each schema migration commits
//!   together with its version number.
//! * **WAL journal with `synchronous=NORMAL`.** A commit appends the transaction to the `-wal`
//!   file with `write()` before `upsert` returns; the WAL is fsynced only at checkpoints. Once
//!   `write()` has returned, the bytes are in the kernel's page cache, which does not die with our
//!   process, so killing the viewer at any moment (crash, panic, `kill -9`, OOM killer, logout)
//!   cannot lose a committed note; a write interrupted half-way is a WAL frame without a valid
//!   commit record, which SQLite ignores when the file is next opened (frames are checksummed).
//!   With the GUI saving at most one second after the last keystroke, a kill loses at most that
//!   last second of typing — what was still only in the text box.
//! * **Why not `FULL`.** The one event `NORMAL` does not cover is power loss or an OS crash:
//!   commits since the last checkpoint that the OS had not yet flushed may be rolled back (the
//!   file stays consistent; WAL never leaves it corrupt). `FULL` closes that gap with an fsync
//!   per commit, i.e. per debounced keystroke: 1–30 ms on a laptop SSD, far more on a spinning or
//!   network home directory, on the UI's save path, to protect against an event that also loses
//!   the text being typed. Deployments that want it open with [`Synchronous::Full`].
//! * **Several writers.** WAL lets readers run while one connection writes. Writes start with
//!   `BEGIN IMMEDIATE`, taking the write lock up front, so two writers never deadlock upgrading
//!   a read lock; the second waits (busy timeout, 10 s by default) instead of failing. Two viewer
//!   instances, or threads each with a store, can share one file. WAL needs shared memory between
//!   the processes, so the file must be on a local disk, not a network share.
//! * **No lost updates between writers.** The viewer saves with [`NotesStore::save_edit`], which
//!   is given the `updated_at` of the copy the edit began from: when another writer has saved
//!   the note since, the two are merged ([`Note::merged_with`]) in the same transaction instead
//!   of the later save replacing the earlier one.
//! * **Schema versions.** `PRAGMA user_version` counts applied migrations; a database from a newer
//!   build is refused ([`NotesErrorKind::TooNew`]) rather than misread or overwritten.

mod error;
pub mod identity;
mod model;
pub mod rsna;
mod schema;
mod store;
mod transfer;
pub mod zone_agreement;

pub use error::{NotesError, NotesErrorKind};
pub use model::{
    class_name, class_of_finding, class_of_folders, finding_of_class, Agreement, Counts,
    ErrorCategory, Filter, FilterFacts, Finding, ImageBox, Note, Outcome, PredictionSnapshot,
    Saliency, StudyId, TruthSource, Zone, MAX_BOXES, MERGED_TEXT_MARKER,
};
pub use schema::SCHEMA_VERSION;
pub(crate) use store::format_time;
pub use store::{
    chosen_path, default_path, EditSaved, LabelsAdded, MergeReport, NotesStore, StoreOptions,
    Synchronous,
};
pub use transfer::{
    export, export_file, import_file, parse, read_import_file, ExportOptions, Format,
};
