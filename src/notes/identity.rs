//! Which study a file is, independent of its name and folder.
//!
//! A note must follow the image when a folder is reorganised, a file renamed, or a data set copied
//! to another machine, so the key is never the path:
//!
//! * **DICOM**: the SOPInstanceUID (0008,0018), which the standard makes globally unique per
//!   image instance and which survives renaming, copying and re-encoding of the pixel data
//!   (e.g. a transfer-syntax conversion keeps it).
//! * **PNG/JPEG** (and a DICOM file without a usable SOPInstanceUID): SHA-256 of the file's bytes.
//!   Raster exports carry no instance identifier, and hashing the bytes rather than the decoded
//!   pixels keeps the id independent of decoder versions. A re-encoded raster image is therefore
//!   a different study, which is the honest answer: its pixels, and the model's output, may differ.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{NotesError, NotesErrorKind};
use super::model::StudyId;
use crate::io::Study;

/// The id of a loaded study. `path` is the file `study` was loaded from; it is read again only
/// when the id is a content hash.
pub fn study_id(path: &Path, study: &Study) -> Result<StudyId, NotesError> {
    if study.metadata.format == "DICOM" {
        // A malformed UID (some anonymisers write garbage) falls back to the content hash rather
        // than failing: the study still gets a stable id.
        if let Some(id) = study
            .metadata
            .sop_instance_uid
            .as_deref()
            .and_then(|uid| StudyId::dicom(uid).ok())
        {
            return Ok(id);
        }
    }
    Ok(StudyId::sha256(&file_sha256(path)?))
}

/// Streams the file, so a large DICOM does not need a second full copy in memory.
pub fn file_sha256(path: &Path) -> Result<[u8; 32], NotesError> {
    let io_err = |e: std::io::Error| {
        NotesError::new(
            NotesErrorKind::Io,
            path.display().to_string(),
            "cannot read the file to identify the study",
        )
        .with_source(e)
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&hasher.finalize());
    Ok(digest)
}
