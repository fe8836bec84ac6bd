//! The one error type of [`load_study`](super::load_study).

use crate::text::one_line;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a study could not be loaded, for callers that react differently (e.g. the UI offering
/// "convert with another tool" for an unsupported codec but "file is damaged" otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The file could not be read at all (missing, permissions, ...).
    Io,
    /// The content is neither DICOM, PNG nor JPEG.
    UnknownFormat,
    /// A DICOM transfer syntax (codec) this build cannot decode, e.g. JPEG-LS.
    UnsupportedTransferSyntax,
    /// A valid file whose image layout the viewer does not handle (e.g. a colour model).
    Unsupported,
    /// Larger than [`MAX_SIDE`](super::MAX_SIDE) / [`MAX_PIXELS`](super::MAX_PIXELS), or empty.
    BadDimensions,
    /// Truncated or malformed file.
    Corrupt,
    /// The codec failed on the compressed pixel data.
    Decode,
    /// A third-party decoder panicked; caught so the viewer survives a hostile file.
    DecoderPanic,
    /// A frame number past the last frame of a multi-frame image.
    NoSuchFrame,
    /// A DICOMDIR (media index) was opened as an image; it lists images, open it as a folder.
    Dicomdir,
}

/// A study that could not be loaded.
///
/// Opaque on purpose: callers show [`Display`](std::fmt::Display) (one line, naming the file
/// and the reason) and may branch on [`LoadError::kind`]; the underlying library error stays
/// reachable through [`source()`](std::error::Error::source) for logs.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {name}: {reason}")]
pub struct LoadError {
    name: String,
    path: PathBuf,
    kind: LoadErrorKind,
    reason: String,
    #[source]
    source: Option<BoxError>,
}

impl LoadError {
    pub(crate) fn new(path: &Path, kind: LoadErrorKind, reason: impl Into<String>) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self {
            name: one_line(&name),
            path: path.to_path_buf(),
            kind,
            reason: one_line(&reason.into()),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The category of the failure.
    pub fn kind(&self) -> LoadErrorKind {
        self.kind
    }

    /// The full path that was being loaded (Display shows only the file name).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The innermost message of an error chain: library errors wrap the useful fact ("failed to fill
/// whole buffer") under several generic layers ("could not read data set").
pub(crate) fn root_cause(err: &(dyn StdError + 'static)) -> String {
    one_line(&crate::text::innermost(err).to_string())
}
