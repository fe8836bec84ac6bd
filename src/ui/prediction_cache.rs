//! Predictions of reviewed folders kept between sessions, so reopening a folder the next day
//! lists its predictions at once instead of predicting every film again (15–16 films a second on
//! a 2-core Intel Xeon: close to two minutes for the 1,625 films of `kermany/train`; taken from
//! the cache, 15 ms).
//!
//! # When a stored prediction is used
//! Only when nothing it depends on has changed. A row is found by two keys:
//! * the file: the SHA-256 of its path, and its size and modification time ([`FileStamp`]), as
//!   Rescan compares them ([`super::review::carry_over`]);
//! * the context ([`Context`]): the weights' SHA-256, `model.json` as loaded (classes,
//!   threshold, temperature), the scope statistics file (path, size, time, threshold), the number
//!   of MC-dropout samples (the uncertainty flag depends on it), the device, and this build of
//!   the viewer (its executable's size and time), since a new build may change the scope rules or
//!   the preprocessing.
//!
//! Any difference is a miss and the film is predicted again; failures are never stored, so an
//! unreadable file is retried each time.
//!
//! # Privacy
//! The file holds no path and no name: paths are stored as SHA-256 digests. It holds the study
//! id (the SOPInstanceUID or the content digest, as the notes database does), the prediction and
//! the scope verdict. It lives in the per-user cache folder (`~/.cache/cxr-viewer` on Linux);
//! `$CXR_VIEWER_PREDICTION_CACHE` names another file, or `off` turns it off. Deleting the file
//! only costs the time to predict again.
//!
//! # Size
//! Entries not written for [`KEEP_DAYS`] days are dropped when the cache opens, and beyond
//! [`MAX_ENTRIES`] the oldest go: about 400 bytes each (1,641 films took 0.68 MB), so at most
//! about 80 MB.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::review::{FileStamp, StudyRow};
use crate::analysis::Engine;
use crate::notes::{Finding, PredictionSnapshot, StudyId};
use crate::scope::ScopeCheck;

/// Names another cache file, or turns the cache off (`off`, `0`, `none` or empty).
pub const ENV_PATH: &str = "CXR_VIEWER_PREDICTION_CACHE";
pub const KEEP_DAYS: u64 = 180;
pub const MAX_ENTRIES: i64 = 200_000;
/// Bumped when the stored columns change; an older file is emptied, not migrated.
const SCHEMA_VERSION: i64 = 1;

/// Where the viewer keeps its cache: `$CXR_VIEWER_PREDICTION_CACHE` if set (`None` when it says
/// off), else `predictions.sqlite3` in the per-user cache folder.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os(ENV_PATH) {
        Some(v) => path_from_env(&v),
        None => directories::ProjectDirs::from("org", "cxr-viewer", "cxr-viewer")
            .map(|d| d.cache_dir().join("predictions.sqlite3")),
    }
}

fn path_from_env(v: &std::ffi::OsStr) -> Option<PathBuf> {
    let off = ["", "off", "0", "none", "no", "false"];
    let s = v.to_string_lossy();
    if off.contains(&s.trim().to_ascii_lowercase().as_str()) {
        None
    } else {
        Some(PathBuf::from(v))
    }
}

/// Everything besides the file that a stored prediction depends on, as one digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context([u8; 32]);

impl Context {
    pub fn of(engine: &Engine, mc_samples: usize) -> Self {
        let model = &engine.model;
        let mut h = Sha256::new();
        h.update(b"cxr-viewer prediction cache\n");
        h.update(model.sha256.as_bytes());
        h.update(serde_json::to_vec(&model.config).unwrap_or_default());
        if let Some(scope) = &engine.scope {
            h.update(scope.path.as_os_str().as_encoded_bytes());
            h.update(stamp_bytes(FileStamp::of(&scope.path)));
            h.update(scope.threshold.to_le_bytes());
        }
        h.update((mc_samples as u64).to_le_bytes());
        h.update(crate::model::device::device_name(&model.device).as_bytes());
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        let exe = std::env::current_exe().ok();
        h.update(stamp_bytes(exe.as_deref().and_then(FileStamp::of)));
        Self(h.finalize().into())
    }

    /// For tests: a context that is not derived from an engine.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

fn stamp_bytes(stamp: Option<FileStamp>) -> Vec<u8> {
    match stamp.and_then(|s| Some((s.len, nanos(s.modified)?))) {
        Some((len, ns)) => [len.to_le_bytes(), ns.to_le_bytes()].concat(),
        None => b"none".to_vec(),
    }
}

fn nanos(t: SystemTime) -> Option<i64> {
    i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

fn path_key(path: &Path) -> [u8; 32] {
    Sha256::digest(path.as_os_str().as_encoded_bytes()).into()
}

/// What a stored row gives back.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    pub id: Option<StudyId>,
    pub prediction: PredictionSnapshot,
    pub scope: ScopeCheck,
}

#[derive(Debug, thiserror::Error)]
#[error("prediction cache {path}: {reason}")]
pub struct CacheError {
    path: PathBuf,
    reason: String,
}

/// One connection to the cache file; opened by the thread that scans a folder.
pub struct PredictionCache {
    conn: Connection,
    path: PathBuf,
    context: Context,
}

impl PredictionCache {
    /// Creates the file (and its folder) if needed and drops stale entries. A file that is not
    /// an SQLite database (damaged, or something else under that name) is replaced: it is only
    /// a cache, and keeping it would turn the cache off for good.
    pub fn open(path: &Path, context: Context) -> Result<Self, CacheError> {
        let err = |reason: String| CacheError {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        if path.is_dir() {
            return Err(err("is a folder".into()));
        }
        let connect = || -> rusqlite::Result<Self> {
            let cache = Self {
                conn: Connection::open(path)?,
                path: path.to_path_buf(),
                context: context.clone(),
            };
            cache.prepare()?;
            Ok(cache)
        };
        match connect() {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
                tracing::warn!("{}: not a database, replaced", path.display());
                for suffix in ["", "-wal", "-shm"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(name));
                }
                connect().map_err(|e| err(e.to_string()))
            }
            other => other.map_err(|e| err(e.to_string())),
        }
    }

    fn prepare(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: two viewer windows scanning at once do not block each other's reads.
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .or_else(|_| self.conn.pragma_update(None, "journal_mode", "DELETE"))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            self.conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS predictions;
                 PRAGMA user_version = {SCHEMA_VERSION};"
            ))?;
        }
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS predictions (
                 path_key BLOB NOT NULL,
                 context BLOB NOT NULL,
                 len INTEGER NOT NULL,
                 modified_ns INTEGER NOT NULL,
                 study_id TEXT,
                 predicted TEXT NOT NULL,
                 probability REAL NOT NULL,
                 uncertain INTEGER NOT NULL,
                 scope TEXT NOT NULL,
                 stored_at INTEGER NOT NULL,
                 PRIMARY KEY (path_key, context)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS predictions_stored_at ON predictions (stored_at);",
        )?;
        self.prune(unix_seconds(SystemTime::now()), MAX_ENTRIES)
    }

    /// Drops entries stored more than [`KEEP_DAYS`] before `now`, then all but the newest
    /// `max_entries` (ties at the cut are kept).
    fn prune(&self, now: i64, max_entries: i64) -> rusqlite::Result<()> {
        let oldest = now - (KEEP_DAYS * 86_400) as i64;
        self.conn
            .execute("DELETE FROM predictions WHERE stored_at < ?1", [oldest])?;
        self.conn.execute(
            "DELETE FROM predictions WHERE stored_at < (
                 SELECT stored_at FROM predictions ORDER BY stored_at DESC LIMIT 1 OFFSET ?1)",
            [max_entries - 1],
        )?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored prediction of `path` as it is now (`stamp`), in this context.
    pub fn get(&self, path: &Path, stamp: FileStamp) -> Result<Option<Cached>, CacheError> {
        let Some(ns) = nanos(stamp.modified) else {
            return Ok(None);
        };
        let row = self
            .conn
            .query_row(
                "SELECT study_id, predicted, probability, uncertain, scope FROM predictions
                 WHERE path_key = ?1 AND context = ?2 AND len = ?3 AND modified_ns = ?4",
                params![
                    &path_key(path)[..],
                    &self.context.0[..],
                    stamp.len as i64,
                    ns
                ],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.error(e))?;
        // A row that no longer parses (written by a different build) is a miss.
        Ok(
            row.and_then(|(id, predicted, probability, uncertain, scope)| {
                let scope: ScopeCheck = serde_json::from_str(&scope).ok()?;
                Some(Cached {
                    id: match id {
                        Some(s) => Some(StudyId::parse(&s).ok()?),
                        None => None,
                    },
                    prediction: PredictionSnapshot {
                        predicted: Finding::parse(&predicted).ok()?,
                        probability,
                        uncertain,
                        in_scope: Some(scope.in_scope),
                    },
                    scope,
                })
            }),
        )
    }

    /// Stores a prediction of `path` made while the file had `stamp`.
    pub fn put(
        &self,
        path: &Path,
        stamp: FileStamp,
        id: Option<&StudyId>,
        prediction: &PredictionSnapshot,
        scope: &ScopeCheck,
    ) -> Result<(), CacheError> {
        let Some(ns) = nanos(stamp.modified) else {
            return Ok(());
        };
        let scope = serde_json::to_string(scope).map_err(|e| CacheError {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO predictions
                 (path_key, context, len, modified_ns, study_id, predicted, probability,
                  uncertain, scope, stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    &path_key(path)[..],
                    &self.context.0[..],
                    stamp.len as i64,
                    ns,
                    id.map(|i| i.as_str().to_string()),
                    prediction.predicted.as_str(),
                    prediction.probability,
                    prediction.uncertain,
                    scope,
                    unix_seconds(SystemTime::now()),
                ],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Fills the rows still to predict (`paths`, in list order) from the cache and returns
    /// those it had nothing for, in the same order.
    pub fn fill(
        &self,
        rows: &mut [StudyRow],
        paths: Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>, CacheError> {
        let index: std::collections::HashMap<&Path, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.as_path(), i))
            .collect();
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for path in paths {
            let hit = match FileStamp::of(&path) {
                Some(stamp) => self.get(&path, stamp)?.map(|c| (stamp, c)),
                None => None,
            };
            match (hit, index.get(path.as_path())) {
                (Some(hit), Some(&i)) => found.push((i, hit)),
                _ => missing.push(path),
            }
        }
        for (i, (stamp, cached)) in found {
            let row = &mut rows[i];
            row.id = cached.id;
            row.prediction = Some(cached.prediction);
            row.scope = Some(cached.scope);
            row.stamp = Some(stamp);
        }
        Ok(missing)
    }

    fn error(&self, e: rusqlite::Error) -> CacheError {
        CacheError {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(p: f64) -> PredictionSnapshot {
        PredictionSnapshot {
            predicted: if p >= 0.5 {
                Finding::Positive
            } else {
                Finding::Negative
            },
            probability: p,
            uncertain: p > 0.4 && p < 0.6,
            in_scope: Some(true),
        }
    }

    fn scope_in() -> ScopeCheck {
        ScopeCheck {
            in_scope: true,
            ..Default::default()
        }
    }

    fn scope_out() -> ScopeCheck {
        ScopeCheck {
            in_scope: false,
            score: Some(3.25),
            threshold: Some(2.315),
            reasons: vec!["body part HIP".into()],
            warnings: vec!["older than the training films".into()],
            age_known: true,
        }
    }

    fn row(path: &Path) -> StudyRow {
        StudyRow {
            path: path.to_path_buf(),
            relative: path.file_name().unwrap().to_string_lossy().into_owned(),
            folder_hint: None,
            name_shared: 0,
            folder_truth: None,
            id: None,
            prediction: None,
            error: None,
            scope: None,
            stamp: None,
        }
    }

    /// A file `name` with `bytes` in `dir`, and its stamp.
    fn film(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, FileStamp) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let stamp = FileStamp::of(&path).unwrap();
        (path, stamp)
    }

    #[test]
    fn a_stored_prediction_comes_back_only_for_the_same_file_stamp_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cache/predictions.sqlite3");
        let (film, stamp) = film(dir.path(), "a.png", b"first bytes");
        let ctx = Context::from_bytes([1; 32]);
        let id = StudyId::sha256(&[7; 32]);
        {
            let cache = PredictionCache::open(&db, ctx.clone()).unwrap();
            assert_eq!(cache.get(&film, stamp).unwrap(), None);
            cache
                .put(&film, stamp, Some(&id), &snapshot(0.873), &scope_out())
                .unwrap();
        }
        // A later session (a new connection) finds it, every field intact.
        let cache = PredictionCache::open(&db, ctx.clone()).unwrap();
        let got = cache.get(&film, stamp).unwrap().expect("stored");
        assert_eq!(got.id, Some(id.clone()));
        // The snapshot's scope verdict is the stored scope's.
        let out = PredictionSnapshot {
            in_scope: Some(false),
            ..snapshot(0.873)
        };
        assert_eq!(got.prediction, out);
        assert_eq!(got.scope, scope_out());

        // Another model, build or MC count: not used.
        let other = PredictionCache::open(&db, Context::from_bytes([2; 32])).unwrap();
        assert_eq!(other.get(&film, stamp).unwrap(), None);
        // The file changed (size, or only its time): not used.
        let longer = FileStamp {
            len: stamp.len + 1,
            ..stamp
        };
        assert_eq!(cache.get(&film, longer).unwrap(), None);
        let touched = FileStamp {
            modified: stamp.modified + Duration::from_secs(1),
            ..stamp
        };
        assert_eq!(cache.get(&film, touched).unwrap(), None);
        // Another path with the same stamp: not used.
        assert_eq!(cache.get(&dir.path().join("b.png"), stamp).unwrap(), None);
    }

    #[test]
    fn the_file_holds_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("predictions.sqlite3");
        let (film, stamp) = film(dir.path(), "Doe_Jane_1970-01-01.png", b"x");
        let cache = PredictionCache::open(&db, Context::from_bytes([1; 32])).unwrap();
        cache
            .put(&film, stamp, None, &snapshot(0.2), &scope_in())
            .unwrap();
        // Read while the connection is open, so what is still in the write-ahead log counts.
        let mut bytes = std::fs::read(&db).unwrap();
        bytes.extend(std::fs::read(dir.path().join("predictions.sqlite3-wal")).unwrap_or_default());
        drop(cache);
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("Doe_Jane"), "the file name is stored");
    }

    #[test]
    fn fill_takes_what_is_stored_and_returns_the_rest_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = ["a.png", "b.png", "c.png", "d.png"]
            .iter()
            .map(|n| {
                let p = dir.path().join(n);
                std::fs::write(&p, n.as_bytes()).unwrap();
                p
            })
            .collect();
        let cache =
            PredictionCache::open(&dir.path().join("p.sqlite3"), Context::from_bytes([3; 32]))
                .unwrap();
        for (p, prob) in [(&paths[1], 0.91), (&paths[3], 0.12)] {
            let stamp = FileStamp::of(p).unwrap();
            cache
                .put(p, stamp, None, &snapshot(prob), &scope_in())
                .unwrap();
        }
        // d.png changes after it was stored.
        std::fs::write(&paths[3], b"new content, longer").unwrap();
        let mut rows: Vec<StudyRow> = paths.iter().map(|p| row(p)).collect();
        let missing = cache.fill(&mut rows, paths.clone()).unwrap();
        assert_eq!(
            missing,
            vec![paths[0].clone(), paths[2].clone(), paths[3].clone()]
        );
        assert_eq!(rows[1].prediction, Some(snapshot(0.91)));
        assert_eq!(rows[1].stamp, FileStamp::of(&paths[1]));
        assert!(rows[0].prediction.is_none() && rows[3].prediction.is_none());
    }

    #[test]
    fn an_off_setting_turns_the_cache_off() {
        for off in ["off", "OFF", "0", "", " none "] {
            assert_eq!(path_from_env(std::ffi::OsStr::new(off)), None, "{off:?}");
        }
        assert_eq!(
            path_from_env(std::ffi::OsStr::new("/tmp/c.sqlite3")),
            Some(PathBuf::from("/tmp/c.sqlite3"))
        );
    }

    #[test]
    fn a_damaged_file_is_replaced_and_a_folder_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.sqlite3");
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        let (film, stamp) = film(dir.path(), "a.png", b"a");
        let cache = PredictionCache::open(&db, Context::from_bytes([6; 32])).unwrap();
        cache
            .put(&film, stamp, None, &snapshot(0.3), &scope_in())
            .unwrap();
        assert!(cache.get(&film, stamp).unwrap().is_some());

        let e = PredictionCache::open(dir.path(), Context::from_bytes([6; 32]))
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            format!("prediction cache {}: is a folder", dir.path().display())
        );
    }

    #[test]
    fn beyond_the_cap_the_oldest_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let cache =
            PredictionCache::open(&dir.path().join("p.sqlite3"), Context::from_bytes([5; 32]))
                .unwrap();
        let now = unix_seconds(SystemTime::now());
        let films: Vec<PathBuf> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                std::fs::write(&p, [i as u8]).unwrap();
                let stamp = FileStamp::of(&p).unwrap();
                cache
                    .put(&p, stamp, None, &snapshot(0.5), &scope_in())
                    .unwrap();
                // Film i was stored i hours ago.
                cache
                    .conn
                    .execute(
                        "UPDATE predictions SET stored_at = ?1 WHERE path_key = ?2",
                        params![now - 3600 * i, &path_key(&p)[..]],
                    )
                    .unwrap();
                p
            })
            .collect();
        cache.prune(now, 2).unwrap();
        let kept: Vec<bool> = films
            .iter()
            .map(|p| {
                let stamp = FileStamp::of(p).unwrap();
                cache.get(p, stamp).unwrap().is_some()
            })
            .collect();
        assert_eq!(kept, [true, true, false, false]);
    }

    #[test]
    fn old_entries_are_dropped_when_the_cache_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.sqlite3");
        let (film, stamp) = film(dir.path(), "a.png", b"a");
        let ctx = Context::from_bytes([4; 32]);
        {
            let cache = PredictionCache::open(&db, ctx.clone()).unwrap();
            cache
                .put(&film, stamp, None, &snapshot(0.7), &scope_in())
                .unwrap();
            let long_ago = unix_seconds(SystemTime::now()) - (KEEP_DAYS as i64 + 1) * 86_400;
            cache
                .conn
                .execute("UPDATE predictions SET stored_at = ?1", [long_ago])
                .unwrap();
            assert!(cache.get(&film, stamp).unwrap().is_some());
        }
        let cache = PredictionCache::open(&db, ctx).unwrap();
        assert_eq!(cache.get(&film, stamp).unwrap(), None);
    }
}
