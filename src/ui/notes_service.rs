//! The one thread that talks to the notes database for the viewer.
//!
//! SQLite calls are short, but a write can wait up to the busy timeout (seconds) while another
//! viewer instance holds the lock, and a frame must never wait that long, so the UI only sends
//! requests here and gets answers as [`Msg::Notes`]. One thread, one queue: saves are applied in
//! the order they were typed, and [`NotesClient::flush`] after a save returns once that save is on
//! disk.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::notes::rsna::LabelNotes;
use crate::notes::{
    export_file, import_file, EditSaved, ExportOptions, Filter, LabelsAdded, MergeReport, Note,
    NotesStore, StudyId,
};

use super::worker::{chain_line, Msg, Outbox};

pub enum NotesRequest {
    /// Opens (creating it if needed) and sends every note back.
    Open(PathBuf),
    /// `revision` comes back with the answer so the editor knows which edit is on disk.
    Save {
        note: Box<Note>,
        revision: u64,
        /// The draft's base ([`super::notes_draft::Draft::base`]).
        base: Option<DateTime<Utc>>,
    },
    /// Re-reads one note (another instance may have changed it).
    Fetch(StudyId),
    Export {
        path: PathBuf,
        include_paths: bool,
        /// Only the boxes, as an RSNA labels file ([`crate::notes::rsna::export_rsna`]).
        rsna: bool,
    },
    Import(PathBuf),
    /// An RSNA labels file's notes for the films of the open folder, read on another thread
    /// (reading every labelled film takes long), or why they could not be.
    AddLabels {
        path: PathBuf,
        found: Result<LabelNotes, String>,
    },
    /// Answered once every request before it has been handled.
    Flush(Sender<()>),
}

pub enum NotesReply {
    Opened(Result<(PathBuf, Vec<Note>), String>),
    Saved {
        study: StudyId,
        revision: u64,
        result: Result<Box<EditSaved>, String>,
    },
    Fetched(StudyId, Option<Box<Note>>),
    /// The file, how many notes, and whether as RSNA labels.
    Exported(Result<(PathBuf, usize, bool), String>),
    /// All notes after the merge, so the list shows imported notes at once.
    Imported(Result<(PathBuf, MergeReport, Vec<Note>), String>),
    /// As `Imported`, for an RSNA labels file.
    LabelsAdded(Result<LabelsImported, String>),
    /// How far reading the films an RSNA labels file names has come (sent by the reading thread,
    /// not by the notes thread): `status` says what is read, `done` of `total` films.
    LabelsReading {
        status: String,
        done: usize,
        total: usize,
    },
}

/// What importing an RSNA labels file did ([`NotesStore::add_labels`]).
pub struct LabelsImported {
    pub path: PathBuf,
    pub added: LabelsAdded,
    /// Films whose label was read and added.
    pub films: usize,
    /// `patientId`s with no film in the folder.
    pub missing: usize,
    /// Labelled films that could not be read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Every note afterwards.
    pub notes: Vec<Note>,
}

/// The UI's handle; dropping it ends the thread once its queue is empty.
pub struct NotesClient {
    tx: Sender<NotesRequest>,
}

impl NotesClient {
    pub fn start(out: Outbox) -> Self {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("notes".into())
            .spawn(move || serve(&rx, &out));
        if let Err(e) = spawned {
            tracing::error!("cannot start the notes thread: {e}");
        }
        Self { tx }
    }

    /// A second handle to the same queue, for a thread that prepares a request.
    pub fn sender(&self) -> Sender<NotesRequest> {
        self.tx.clone()
    }

    pub fn send(&self, request: NotesRequest) {
        if self.tx.send(request).is_err() {
            tracing::error!("the notes thread has stopped; the request is lost");
        }
    }

    /// Waits (bounded) until everything sent so far is handled: used on exit so the last edit
    /// reaches the database before the process ends.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = channel();
        self.send(NotesRequest::Flush(ack_tx));
        ack_rx.recv_timeout(timeout).is_ok()
    }
}

fn serve(rx: &Receiver<NotesRequest>, out: &Outbox) {
    let mut store: Option<NotesStore> = None;
    let no_store = || "the notes database is not open".to_string();
    loop {
        let request = match rx.recv_timeout(Duration::from_secs(3600)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let reply = match request {
            NotesRequest::Open(path) => {
                // Drop the old connection first: a WAL checkpoint on close.
                store = None;
                let opened = NotesStore::open(&path).and_then(|s| {
                    let notes = s.list(Filter::All)?;
                    Ok((s, notes))
                });
                match opened {
                    Ok((s, notes)) => {
                        store = Some(s);
                        NotesReply::Opened(Ok((path, notes)))
                    }
                    Err(e) => NotesReply::Opened(Err(chain_line(&e))),
                }
            }
            NotesRequest::Save {
                note,
                revision,
                base,
            } => NotesReply::Saved {
                study: note.study.clone(),
                revision,
                result: match &store {
                    Some(s) => s
                        .save_edit(&note, base)
                        .map(Box::new)
                        .map_err(|e| chain_line(&e)),
                    None => Err(no_store()),
                },
            },
            NotesRequest::Fetch(id) => match &store {
                Some(s) => match s.get(&id) {
                    Ok(note) => NotesReply::Fetched(id, note.map(Box::new)),
                    Err(e) => {
                        tracing::warn!("cannot re-read a note: {}", chain_line(&e));
                        continue;
                    }
                },
                None => continue,
            },
            NotesRequest::Export {
                path,
                include_paths,
                rsna,
            } => NotesReply::Exported(match &store {
                Some(s) => export_file(
                    s,
                    &path,
                    &ExportOptions::new()
                        .with_paths(include_paths)
                        .with_rsna(rsna),
                )
                .map(|n| (path, n, rsna))
                .map_err(|e| chain_line(&e)),
                None => Err(no_store()),
            }),
            NotesRequest::Import(path) => NotesReply::Imported(match &store {
                Some(s) => import_file(s, &path)
                    .and_then(|report| Ok((path, report, s.list(Filter::All)?)))
                    .map_err(|e| chain_line(&e)),
                None => Err(no_store()),
            }),
            NotesRequest::AddLabels { path, found } => {
                NotesReply::LabelsAdded(match (&store, found) {
                    (Some(s), Ok(found)) => s
                        .add_labels(&found.notes)
                        .and_then(|added| {
                            Ok(LabelsImported {
                                path,
                                added,
                                films: found.notes.len(),
                                missing: found.missing.len(),
                                skipped: found.skipped,
                                notes: s.list(Filter::All)?,
                            })
                        })
                        .map_err(|e| chain_line(&e)),
                    (None, _) => Err(no_store()),
                    (_, Err(e)) => Err(e),
                })
            }
            NotesRequest::Flush(ack) => {
                let _ = ack.send(());
                continue;
            }
        };
        out.send(Msg::Notes(reply));
    }
}
