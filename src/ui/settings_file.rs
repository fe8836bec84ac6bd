//! The settings on disk, written as soon as they change rather than only at a clean exit.
//!
//! eframe persists app state every 30 s and when the window closes; a crash in between lost the
//! reviewer's name and, worse, the notes database chosen with *Change…*, so the next start
//! opened the default database and the reviewer's notes looked missing. This file is written
//! atomically (temporary file, fsync, rename) on a background thread, a moment after the last
//! change (at once when the notes database changes), and read first at start-up. Each write
//! takes only what this window changed since its last write and keeps the rest of the file as
//! it is, so a second viewer window's choices survive (`write_change`).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::settings::Settings;

/// Dragging a slider changes settings every frame; one write per this interval is enough.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// `settings.json` in the per-user configuration directory (XDG on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "cxr-viewer", "cxr-viewer")
        .map(|d| d.config_dir().join("settings.json"))
}

/// `Ok(None)`: no file yet. `Err`: one line saying why the file cannot be used.
pub fn load(path: &Path) -> Result<Option<Settings>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read settings {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        format!(
            "settings {} are unreadable ({e}); using defaults",
            path.display()
        )
    })
}

/// The file, what was last handed to the writer, and the writer thread.
pub struct SettingsFile {
    path: PathBuf,
    written: Settings,
    /// First change not yet written.
    changed_at: Option<Instant>,
    tx: Option<Sender<Change>>,
    errors: Receiver<String>,
    writer: Option<JoinHandle<()>>,
}

impl SettingsFile {
    /// `current`: the settings as loaded, so an unchanged start writes nothing.
    pub fn new(path: PathBuf, current: &Settings) -> Self {
        let (tx, rx) = channel::<Change>();
        let (err_tx, errors) = channel();
        let target = path.clone();
        let writer = std::thread::Builder::new()
            .name("settings-writer".into())
            .spawn(move || {
                while let Ok(mut change) = rx.recv() {
                    // Only the newest state matters; its base is the first one's.
                    while let Ok(newer) = rx.try_recv() {
                        change.settings = newer.settings;
                    }
                    if let Err(e) = write_change(&target, &change) {
                        let _ = err_tx.send(e);
                    }
                }
            })
            .ok();
        Self {
            path,
            written: current.clone(),
            changed_at: None,
            tx: writer.as_ref().map(|_| tx),
            errors,
            writer,
        }
    }

    /// Called every frame, painted or not. Returns how long until a pending write is due (for a
    /// repaint request), and a write error to show, if any.
    pub fn tick(
        &mut self,
        settings: &Settings,
        now: Instant,
    ) -> (Option<Duration>, Option<String>) {
        let error = self.errors.try_recv().ok();
        if *settings == self.written {
            self.changed_at = None;
            return (None, error);
        }
        let since = *self.changed_at.get_or_insert(now);
        let wait = DEBOUNCE.saturating_sub(now.saturating_duration_since(since));
        // Where notes go must survive a crash right after it was chosen.
        if settings.notes_db != self.written.notes_db || wait.is_zero() {
            self.send(settings);
            return (None, error);
        }
        (Some(wait), error)
    }

    /// `settings` as the next write, with what was written before as its base.
    fn change_to(&mut self, settings: &Settings) -> Change {
        Change {
            settings: settings.clone(),
            base: std::mem::replace(&mut self.written, settings.clone()),
        }
    }

    fn send(&mut self, settings: &Settings) {
        let change = self.change_to(settings);
        self.changed_at = None;
        let unsent = match &self.tx {
            Some(tx) => tx.send(change).err().map(|e| e.0),
            None => Some(change),
        };
        // No writer thread: write here rather than not at all.
        if let Some(change) = unsent {
            if let Err(e) = write_change(&self.path, &change) {
                tracing::error!("{e}");
            }
        }
    }

    /// At exit: waits for the writer, then writes what is unsaved, on this thread.
    pub fn write_now(&mut self, settings: &Settings) -> Result<(), String> {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if *settings == self.written {
            return Ok(());
        }
        let change = self.change_to(settings);
        write_change(&self.path, &change)
    }
}

/// Settings to write, and what this window last wrote (or loaded): the settings it changed
/// since are the ones that differ.
struct Change {
    settings: Settings,
    base: Settings,
}

/// Writes this window's changes over the file as it is now. Two viewer windows each wrote
/// their whole settings, so the later write dropped what the other had chosen meanwhile (its
/// recent folders, reviewer name, notes database). Now a setting this window left as it was
/// keeps the file's value; a file that cannot be read, or whose merge would not read back as
/// settings, is replaced as before.
fn write_change(path: &Path, change: &Change) -> Result<(), String> {
    write(path, &merged_with_file(path, change))
}

fn merged_with_file(path: &Path, change: &Change) -> Vec<u8> {
    // As the file would hold them (an f32 as its shortest text, not widened to f64). Plain data
    // with string keys: serialisation cannot fail.
    let as_written = |s: &Settings| -> serde_json::Value {
        serde_json::to_vec(s)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    };
    let ours = as_written(&change.settings);
    let merged = (|| {
        let base = as_written(&change.base);
        let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let (mut merged, base, on_disk) = (
            ours.as_object()?.clone(),
            base.as_object()?,
            on_disk.as_object()?,
        );
        for (key, value) in merged.iter_mut() {
            if let (Some(unchanged), Some(theirs)) = (base.get(key), on_disk.get(key)) {
                if unchanged == value {
                    value.clone_from(theirs);
                }
            }
        }
        let merged = serde_json::Value::Object(merged);
        serde_json::from_value::<Settings>(merged.clone()).ok()?;
        Some(merged)
    })();
    serde_json::to_vec_pretty(&merged.unwrap_or(ours)).unwrap_or_default()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot save settings in {}: {e}", dir.display()))?;
    }
    crate::atomic_file::write_atomic(path, bytes)
        .map_err(|e| format!("cannot save settings to {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_file(path: &Path, what: impl Fn(&Settings) -> bool) -> Settings {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = load(path) {
                if what(&s) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "settings never reached {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_changed_notes_database_is_written_at_once_and_a_name_after_the_debounce() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cfg/settings.json");
        let mut s = Settings::default();
        let mut file = SettingsFile::new(path.clone(), &s);
        let t0 = Instant::now();
        assert_eq!(
            file.tick(&s, t0),
            (None, None),
            "unchanged: nothing to write"
        );
        assert!(!path.exists());

        s.notes_db = Some(PathBuf::from("/data/reviews.sqlite3"));
        assert_eq!(file.tick(&s, t0).0, None, "written without waiting");
        wait_for_file(&path, |r| r.notes_db == s.notes_db);

        s.reviewer = "AB".into();
        let (wait, _) = file.tick(&s, t0);
        assert_eq!(wait, Some(DEBOUNCE), "a name waits for the typing to pause");
        let (wait, _) = file.tick(&s, t0 + DEBOUNCE / 2);
        assert_eq!(wait, Some(DEBOUNCE / 2));
        assert_eq!(file.tick(&s, t0 + DEBOUNCE).0, None);
        let on_disk = wait_for_file(&path, |r| r.reviewer == "AB");
        assert_eq!(on_disk, s, "read back from disk without any exit");
    }

    #[test]
    fn write_now_flushes_what_the_debounce_held_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        let mut s = Settings::default();
        let mut file = SettingsFile::new(path.clone(), &s);
        s.alpha = 0.8;
        assert!(file.tick(&s, Instant::now()).0.is_some());
        file.write_now(&s).unwrap();
        assert_eq!(load(&path).unwrap(), Some(s));
    }

    /// Two windows on one settings file: each writes what it changed, and keeps what the other
    /// changed meanwhile. Before, the later write dropped the other window's choices.
    #[test]
    fn two_windows_keep_each_others_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        let start = Settings::default();
        let (mut a, mut b) = (start.clone(), start.clone());
        let mut file_a = SettingsFile::new(path.clone(), &a);
        let mut file_b = SettingsFile::new(path.clone(), &b);
        a.reviewer = "AB".into();
        a.remember(Path::new("/data/folder"));
        file_a.write_now(&a).unwrap();
        b.alpha = 0.8;
        file_b.write_now(&b).unwrap();
        let on_disk = load(&path).unwrap().unwrap();
        assert_eq!(on_disk.reviewer, "AB");
        assert_eq!(on_disk.recent, [PathBuf::from("/data/folder")]);
        assert_eq!(on_disk.alpha, 0.8);
        // A setting both changed: the later write wins.
        let mut file_b = SettingsFile::new(path.clone(), &b);
        b.reviewer = "CD".into();
        file_b.write_now(&b).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().reviewer, "CD");
        // A file that does not read as settings is replaced whole.
        std::fs::write(&path, b"[1, 2, 3]").unwrap();
        let mut file_a = SettingsFile::new(path.clone(), &a);
        a.alpha = 0.3;
        file_a.write_now(&a).unwrap();
        assert_eq!(load(&path).unwrap(), Some(a));
    }

    #[test]
    fn unreadable_files_say_so_in_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        assert_eq!(load(&path), Ok(None));
        std::fs::write(&path, b"{not json").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains("unreadable") && !e.contains('\n'), "{e}");
        // A file that cannot be created reports its folder.
        let blocked = tmp.path().join("settings.json/inner.json");
        let mut file = SettingsFile::new(blocked, &Settings::default());
        let e = file.write_now(&Settings {
            alpha: 0.1,
            ..Settings::default()
        });
        assert!(e.unwrap_err().starts_with("cannot save settings"));
    }
}
