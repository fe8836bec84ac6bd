//! The one error type of the notes store.

use crate::text::one_line;
use std::error::Error as StdError;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a notes operation failed, for callers that react differently (the GUI keeps the text in
/// memory and retries on [`NotesErrorKind::Busy`], but tells the user to update on
/// [`NotesErrorKind::TooNew`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotesErrorKind {
    /// A file could not be read or written (the database's folder, an export, an import).
    Io,
    /// No per-user data directory could be determined (no home directory).
    NoDataDir,
    /// The database was written by a newer cxr-viewer whose schema this build does not know.
    TooNew,
    /// Another process held the database longer than the busy timeout.
    Busy,
    /// SQLite reported an error (including a file that is not a database).
    Database,
    /// `PRAGMA integrity_check` found damage.
    Integrity,
    /// A value that is not a valid note field: a bad study id, an unknown category, a malformed
    /// timestamp, in an import file or in the database.
    InvalidData,
    /// Export/import file that is neither `.csv` nor `.json`.
    UnknownFormat,
}

/// A failed notes operation.
///
/// Display is one line naming the thing and the reason ("notes database /x/notes.sqlite3: written
/// by a newer cxr-viewer ..."); the library error below it (SQLite's message, the OS error) is the
/// [`source()`](std::error::Error::source), so a caller printing the chain sees both once.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct NotesError {
    kind: NotesErrorKind,
    what: String,
    reason: String,
    #[source]
    source: Option<BoxError>,
}

impl NotesError {
    pub(crate) fn new(
        kind: NotesErrorKind,
        what: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        NotesError {
            kind,
            what: one_line(&what.into()),
            reason: one_line(&reason.into()),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A SQLite failure while doing `reason` on the database `what`; "busy" is told apart because
    /// it is the one failure worth retrying.
    pub(crate) fn sqlite(
        what: impl Into<String>,
        reason: impl Into<String>,
        e: rusqlite::Error,
    ) -> Self {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        let kind = if busy {
            NotesErrorKind::Busy
        } else {
            NotesErrorKind::Database
        };
        NotesError::new(kind, what, reason).with_source(e)
    }

    pub fn kind(&self) -> NotesErrorKind {
        self.kind
    }
}
