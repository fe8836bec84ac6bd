//! DICOMDIR: the index file of DICOM interchange media (PS3.10 §8.6; records PS3.3 F.5).
//!
//! Opening one means opening the images it lists, like a folder: [`dicomdir_images`] returns the
//! files of its IMAGE records. A record names its file by ReferencedFileID (0004,1500), the path
//! components relative to the folder that holds the DICOMDIR; components that would leave that
//! folder (`..`, absolute, with separators) are skipped, so a hostile index cannot point the
//! viewer at arbitrary files.

use std::path::{Path, PathBuf};

use dicom_core::value::Value;
use dicom_dictionary_std::tags;

use super::error::root_cause;
use super::{LoadError, LoadErrorKind};

/// Most image records read from one DICOMDIR (the review list caps what it shows separately).
const MAX_RECORDS: usize = 100_000;

/// Whether `path` is named `DICOMDIR` (any case, no extension, as PS3.10 requires) and its
/// content says DICOM.
pub fn is_dicomdir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR"))
        && path.is_file()
        && super::read_head(path).is_ok_and(|h| {
            matches!(
                super::detect(&h),
                super::Detected::DicomWithPreamble | super::Detected::DicomWithoutPreamble
            )
        })
}

/// The image files a DICOMDIR lists, in record order, as paths next to the DICOMDIR.
pub fn dicomdir_images(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let corrupt = |reason: String| {
        let reason = format!("truncated or corrupt DICOMDIR ({reason})");
        LoadError::new(path, LoadErrorKind::Corrupt, reason)
    };
    let layout = match super::read_head(path).map(|h| super::detect(&h)) {
        Ok(super::Detected::DicomWithPreamble) => Some(super::dicom::Layout::Part10),
        Ok(super::Detected::DicomWithoutPreamble) => Some(super::dicom::Layout::Part10NoPreamble),
        _ => None,
    };
    if let Some(layout) = layout {
        super::value_lengths::check(path, layout).map_err(corrupt)?;
    }
    let obj = dicom_object::OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| {
            let reason = format!("truncated or corrupt DICOMDIR ({})", root_cause(&e));
            LoadError::new(path, LoadErrorKind::Corrupt, reason).with_source(e)
        })?;
    let Some(Value::Sequence(records)) =
        obj.get(tags::DIRECTORY_RECORD_SEQUENCE).map(|e| e.value())
    else {
        return Err(LoadError::new(
            path,
            LoadErrorKind::Corrupt,
            "not a DICOMDIR (no Directory Record Sequence)",
        ));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for item in records.items() {
        let kind = item
            .get(tags::DIRECTORY_RECORD_TYPE)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_ascii_uppercase());
        if kind.as_deref() != Some("IMAGE") {
            continue;
        }
        let Some(parts) = item
            .get(tags::REFERENCED_FILE_ID)
            .and_then(|e| e.to_multi_str().ok())
        else {
            continue;
        };
        if let Some(rel) = safe_relative(&parts) {
            out.push(base.join(rel));
            if out.len() == MAX_RECORDS {
                break;
            }
        }
    }
    Ok(out)
}

/// ReferencedFileID components as a relative path, or None if any would leave the folder.
fn safe_relative<S: AsRef<str>>(parts: &[S]) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for p in parts {
        let p = p.as_ref().trim_matches(|c: char| c == '\0' || c == ' ');
        let ok = !p.is_empty()
            && p != "."
            && p != ".."
            && !p.contains(['/', '\\', ':'])
            && !p.chars().any(char::is_control);
        if !ok {
            return None;
        }
        rel.push(p);
    }
    (!rel.as_os_str().is_empty()).then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_stay_inside_the_media_folder() {
        assert_eq!(
            safe_relative(&["CR1", "6154 "]),
            Some(PathBuf::from("CR1/6154"))
        );
        assert_eq!(safe_relative(&["..", "etc", "passwd"]), None);
        assert_eq!(safe_relative(&["/etc"]), None);
        assert_eq!(safe_relative(&["a\\b"]), None);
        assert_eq!(safe_relative(&["C:"]), None);
        assert_eq!(safe_relative::<&str>(&[]), None);
    }
}
