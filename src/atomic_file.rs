//! Files that readers must never see half-written: reports, evaluation outputs, notes exports.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a hidden temporary file beside `path` (same directory, so the rename stays on
/// one file system), flushes it to disk, then renames it over `path`: a reader sees the old file or
/// the new one, never a mix, and a failed write leaves the old file intact and no temporary behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("out.json");
        std::fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
        // A missing directory fails without creating anything.
        assert!(write_atomic(&dir.join("missing/out.json"), b"x").is_err());
    }
}
