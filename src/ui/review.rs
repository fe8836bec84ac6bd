//! Reviewing a folder of studies: which files there are, what the folder layout says they are,
//! what the model says, and which of them a filter shows in which order.
//!
//! Plain data, no egui, no threads: the scan runs in [`super::worker::scan_folder`], the drawing
//! in [`super::study_list`]. A study's outcome combines three sources, in this order of trust:
//! the ground truth the reviewer set in a note, else the class subfolder the file sits in
//! (`NORMAL/`, `PNEUMONIA/`); and the model's *live* prediction (the one on screen, not the one
//! stored in an older note), so the list always describes the model that is loaded.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::model::ModelConfig;
use crate::notes::{
    Agreement, Filter, FilterFacts, Finding, Note, Outcome, PredictionSnapshot, StudyId,
};

/// A folder bigger than this is almost certainly the wrong one (a home directory); the list
/// stops there and says so rather than scanning for minutes.
pub const MAX_STUDIES: usize = 50_000;
/// Class folders nested deeper than this are not looked for.
const MAX_DEPTH: usize = 16;

/// One file of the folder.
#[derive(Clone, Debug)]
pub struct StudyRow {
    pub path: PathBuf,
    /// Relative to the opened folder: what the list sorts by and shows on hover.
    pub relative: String,
    /// Shown after the file name when another listed file has the same name: the folders that
    /// tell them apart ([`folder_hints`]).
    pub folder_hint: Option<String>,
    /// How many characters at the start of the file name another listed file's name also
    /// starts with, up to a `_`, `-`, `.` or space ([`shared_name_prefixes`]): where the column
    /// is too narrow for the name, that part is the one to leave out.
    pub name_shared: usize,
    /// From the nearest class-named folder above the file, if any.
    pub folder_truth: Option<Finding>,
    /// Known once the file has been read (content hash or SOPInstanceUID).
    pub id: Option<StudyId>,
    /// The loaded model's output (with its MC-dropout flag); saved with a note as what the
    /// reviewer saw.
    pub prediction: Option<PredictionSnapshot>,
    /// Why the file could not be analysed, one line.
    pub error: Option<String>,
    /// The scope guard's verdict ([`crate::scope`]), once predicted.
    pub scope: Option<crate::scope::ScopeCheck>,
    /// The file's size and modification time when it was predicted: a rescan keeps the
    /// prediction while they are unchanged ([`carry_over`]).
    pub stamp: Option<FileStamp>,
}

/// What a rescan compares to tell a file that is unchanged since it was predicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: std::time::SystemTime,
}

impl FileStamp {
    /// `None` when the file cannot be read or its file system keeps no modification time: such a
    /// file is always predicted again.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok()?,
        })
    }
}

/// A rescan of a folder under review: fills `rows` from `known` (the previous scan's rows by
/// path) where the file's stamp is unchanged, and returns the paths still to predict, in list
/// order. Failed rows are tried again. So "Rescan" (and reopening the folder) predicts only new
/// and changed files instead of the whole folder (15–16 films a second on a 2-core Intel Xeon:
/// close to two minutes for 1,625 films).
pub fn carry_over(rows: &mut [StudyRow], known: &HashMap<PathBuf, StudyRow>) -> Vec<PathBuf> {
    let mut to_predict = Vec::new();
    for row in rows.iter_mut() {
        let kept = known.get(&row.path).filter(|k| {
            k.prediction.is_some() && k.stamp.is_some() && k.stamp == FileStamp::of(&row.path)
        });
        match kept {
            Some(k) => {
                row.id.clone_from(&k.id);
                row.prediction = k.prediction;
                row.scope.clone_from(&k.scope);
                row.stamp = k.stamp;
            }
            None => to_predict.push(row.path.clone()),
        }
    }
    to_predict
}

impl StudyRow {
    pub fn done(&self) -> bool {
        self.prediction.is_some() || self.error.is_some()
    }

    /// The reviewer's label wins over the folder's.
    pub fn truth(&self, note: Option<&Note>) -> Option<Finding> {
        note.and_then(|n| n.ground_truth).or(self.folder_truth)
    }

    pub fn outcome(&self, note: Option<&Note>) -> Option<Outcome> {
        Some(Outcome::of(self.truth(note)?, self.prediction?.predicted))
    }

    /// Predicted and flagged by the scope guard.
    pub fn out_of_scope(&self) -> bool {
        self.scope.as_ref().is_some_and(|s| !s.in_scope)
    }

    pub fn facts(&self, note: Option<&Note>) -> FilterFacts {
        FilterFacts {
            outcome: self.outcome(note),
            model_uncertain: self.prediction.is_some_and(|p| p.uncertain),
            agreement: note.and_then(|n| n.agreement),
            has_note: note.is_some_and(Note::has_review),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SortColumn {
    File,
    Truth,
    Prediction,
    Probability,
    Uncertain,
    Scope,
    Outcome,
    Note,
}

impl SortColumn {
    pub const ALL: [SortColumn; 8] = [
        SortColumn::File,
        SortColumn::Truth,
        SortColumn::Prediction,
        SortColumn::Probability,
        SortColumn::Uncertain,
        SortColumn::Scope,
        SortColumn::Outcome,
        SortColumn::Note,
    ];

    /// The header in a list too narrow for [`label`](Self::label)'s (its hover names it whole).
    pub fn short_label(self) -> &'static str {
        match self {
            SortColumn::File => "File",
            SortColumn::Truth => "T",
            SortColumn::Prediction => "M",
            SortColumn::Probability => "P",
            SortColumn::Uncertain => "U",
            SortColumn::Scope => "S",
            SortColumn::Outcome => "O",
            SortColumn::Note => "N",
        }
    }

    /// The name in full, as the column chooser and the compact header's hover give it.
    pub fn title(self) -> &'static str {
        match self {
            SortColumn::File => "File",
            SortColumn::Truth => "Truth",
            SortColumn::Prediction => "Model's answer",
            SortColumn::Probability => "Probability",
            SortColumn::Uncertain => "Uncertain",
            SortColumn::Scope => "Scope",
            SortColumn::Outcome => "Outcome",
            SortColumn::Note => "Note",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortColumn::File => "File",
            SortColumn::Truth => "Truth",
            SortColumn::Prediction => "Model",
            SortColumn::Probability => "P",
            SortColumn::Uncertain => "Unc.",
            SortColumn::Scope => "Scope",
            SortColumn::Outcome => "Outcome",
            SortColumn::Note => "Note",
        }
    }
}

/// Per-filter counts and the confusion matrix of a folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewCounts {
    /// Studies matching each filter of [`Filter::ALL`], same order.
    pub per_filter: Vec<usize>,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
    /// Predicted but with no ground truth from folder or note.
    pub unlabelled: usize,
    /// Not analysed yet.
    pub pending: usize,
    /// Could not be read or analysed.
    pub failed: usize,
    /// Flagged by the scope guard (the "Out of scope" filter's count).
    pub out_of_scope: usize,
    /// The confusion counts of the studies the scope guard did not flag, `[tp, fp, tn, fn]`: the
    /// figures `cxr-viewer eval` reports as `scope.in_scope`, since a model's answer outside its
    /// scope says nothing about its accuracy inside it.
    pub in_scope: [usize; 4],
}

impl ReviewCounts {
    pub fn of_filter(&self, filter: Filter) -> usize {
        Filter::ALL
            .iter()
            .position(|f| *f == filter)
            .and_then(|i| self.per_filter.get(i).copied())
            .unwrap_or(0)
    }

    pub fn labelled(&self) -> usize {
        self.tp + self.fp + self.tn + self.fn_
    }
}

/// A folder under review: its studies, the background scan's progress, filter and order.
pub struct Review {
    pub scan_id: u64,
    pub root: PathBuf,
    pub rows: Vec<StudyRow>,
    by_path: HashMap<PathBuf, usize>,
    /// The file list has arrived (the scan lists first, then predicts).
    pub listed: bool,
    /// More files than [`MAX_STUDIES`]: the list is cut.
    pub truncated: bool,
    /// Images the listing left out for their format (TIFF, BMP, …), said under the progress.
    pub other_formats: crate::io::OtherFormats,
    /// Files opened together (dropped, chosen in Open…, named on the command line): the list
    /// holds these, under their nearest common folder `root`, instead of the folder's files.
    pub files: Option<Vec<PathBuf>>,
    pub finished: bool,
    pub cancel: Arc<AtomicBool>,
    /// Set while the image on screen is being analysed, so the list waits for it.
    pub pause: Arc<AtomicBool>,
    pub filter: Filter,
    /// Show only studies the scope guard flagged (on top of `filter`).
    pub out_of_scope_only: bool,
    /// The MC-dropout samples the scan predicts with (the uncertainty flag depends on them): a
    /// rescan keeps predictions only when they are the same.
    pub mc_samples: usize,
    pub sort: SortColumn,
    pub descending: bool,
    /// Bumped by [`Review::set_rows`] and [`Review::row_mut`] (change rows only through them).
    rows_revision: u64,
    /// Bumped by [`Review::set_rows`] only: a new set of rows, which no held order survives.
    listing_revision: u64,
    /// Set each frame while the pointer is over the list: rows that change (predictions arriving)
    /// keep their places until it leaves, so a row does not move under a click. Sorted by
    /// probability during a scan, each new PNEUMONIA prediction inserted a row above the others
    /// about every 80 ms, and a click could open the study that had just slid under the pointer.
    /// A new sort, filter or note (the reviewer's own doing) re-orders at once.
    pub hold_order: bool,
    /// Sorting and counting a big folder every frame would cost milliseconds: both are kept
    /// until the rows, the notes or the order change.
    visible_memo: RefCell<Option<(MemoKey, Vec<usize>)>>,
    counts_memo: RefCell<Option<(MemoKey, ReviewCounts)>>,
}

#[derive(Clone, Copy, PartialEq)]
struct MemoKey {
    rows: u64,
    listing: u64,
    notes: u64,
    filter: Filter,
    out_of_scope_only: bool,
    sort: SortColumn,
    descending: bool,
}

impl Review {
    pub fn new(scan_id: u64, root: PathBuf) -> Self {
        Self {
            scan_id,
            root,
            rows: Vec::new(),
            by_path: HashMap::new(),
            listed: false,
            truncated: false,
            other_formats: Default::default(),
            files: None,
            finished: false,
            cancel: Arc::new(AtomicBool::new(false)),
            pause: Arc::new(AtomicBool::new(false)),
            filter: Filter::All,
            out_of_scope_only: false,
            mc_samples: 0,
            sort: SortColumn::File,
            descending: false,
            rows_revision: 0,
            listing_revision: 0,
            hold_order: false,
            visible_memo: RefCell::new(None),
            counts_memo: RefCell::new(None),
        }
    }

    fn memo_key(&self, notes_revision: u64) -> MemoKey {
        MemoKey {
            rows: self.rows_revision,
            listing: self.listing_revision,
            notes: notes_revision,
            filter: self.filter,
            out_of_scope_only: self.out_of_scope_only,
            sort: self.sort,
            descending: self.descending,
        }
    }

    pub fn set_rows(&mut self, rows: Vec<StudyRow>, truncated: bool) {
        self.by_path = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.path.clone(), i))
            .collect();
        self.rows = rows;
        self.rows_revision += 1;
        self.listing_revision += 1;
        self.listed = true;
        self.truncated = truncated;
    }

    pub fn row_index(&self, path: &Path) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    pub fn row_mut(&mut self, path: &Path) -> Option<&mut StudyRow> {
        let i = self.row_index(path)?;
        self.rows_revision += 1;
        self.rows.get_mut(i)
    }

    pub fn stop(&self) {
        self.cancel.store(true, AtomicOrdering::Relaxed);
    }

    /// The predicted rows by path, for a rescan of the same folder ([`carry_over`]).
    pub fn predicted_rows(&self) -> HashMap<PathBuf, StudyRow> {
        self.rows
            .iter()
            .filter(|r| r.prediction.is_some() && r.stamp.is_some())
            .map(|r| (r.path.clone(), r.clone()))
            .collect()
    }

    /// Clicking the sorted column again reverses it.
    pub fn sort_by(&mut self, column: SortColumn) {
        if self.sort == column {
            self.descending = !self.descending;
        } else {
            self.sort = column;
            // Most telling first: highest probability, uncertain, errors, notes.
            self.descending = matches!(
                column,
                SortColumn::Probability
                    | SortColumn::Uncertain
                    | SortColumn::Scope
                    | SortColumn::Note
            );
        }
    }

    /// Indices of the rows the filter shows, in the chosen order (ties by file, so the order
    /// never jumps while predictions arrive).
    /// `notes_revision` changes whenever `notes` does ([`super::reviewing::NotesState`]).
    pub fn visible(&self, notes: &HashMap<StudyId, Note>, notes_revision: u64) -> Vec<usize> {
        let key = self.memo_key(notes_revision);
        if let Some((k, v)) = &*self.visible_memo.borrow() {
            let held = self.hold_order
                && MemoKey {
                    rows: key.rows,
                    ..*k
                } == key;
            if *k == key || held {
                return v.clone();
            }
        }
        let v = self.ordered(notes, self.filter);
        *self.visible_memo.borrow_mut() = Some((key, v.clone()));
        v
    }

    /// The row `delta` steps from `path` among those the filter shows. From a row the filter
    /// hides (e.g. just marked as reviewed under "Unreviewed"), the nearest shown row in that
    /// direction, so "next" keeps moving forward through the list; when none is shown in that
    /// direction, the list's near end (its first row for "next"), so a filter chosen while
    /// looking at a study it hides never leaves Next and Previous stuck.
    pub fn step_from(
        &self,
        path: &Path,
        delta: isize,
        notes: &HashMap<StudyId, Note>,
        notes_revision: u64,
    ) -> Option<usize> {
        let visible = self.visible(notes, notes_revision);
        let here = self.row_index(path);
        if let Some(pos) = here.and_then(|h| visible.iter().position(|&i| i == h)) {
            let j = pos as isize + delta;
            return (j >= 0).then(|| visible.get(j as usize).copied()).flatten();
        }
        let Some(here) = here else {
            return visible.first().copied();
        };
        let all = self.ordered(notes, Filter::All);
        let at = all.iter().position(|&i| i == here)?;
        let shown = |i: &usize| visible.contains(i);
        let ahead = if delta >= 0 {
            all[at + 1..].iter().find(|i| shown(i))
        } else {
            all[..at].iter().rev().find(|i| shown(i))
        };
        ahead
            .or_else(|| {
                if delta >= 0 {
                    visible.first()
                } else {
                    visible.last()
                }
            })
            .copied()
    }

    /// Rows the filter shows now that the list held under the pointer ([`Self::hold_order`])
    /// does not have yet: its filter buttons count them already, so the list says they are
    /// waiting instead of looking short (e.g. "False negatives (12)" over 3 rows during a scan).
    /// 0 when nothing is held back.
    pub fn rows_waiting(&self, notes: &HashMap<StudyId, Note>, notes_revision: u64) -> usize {
        let key = self.memo_key(notes_revision);
        let memo = self.visible_memo.borrow();
        let Some((k, held)) = memo.as_ref() else {
            return 0;
        };
        if !self.hold_order || *k == key {
            return 0;
        }
        let now = (0..self.rows.len())
            .filter(|&i| self.shows(&self.rows[i], notes, self.filter))
            .count();
        now.saturating_sub(held.len())
    }

    fn shows(&self, r: &StudyRow, notes: &HashMap<StudyId, Note>, filter: Filter) -> bool {
        let note = r.id.as_ref().and_then(|id| notes.get(id));
        filter.matches_facts(&r.facts(note)) && (!self.out_of_scope_only || r.out_of_scope())
    }

    fn ordered(&self, notes: &HashMap<StudyId, Note>, filter: Filter) -> Vec<usize> {
        let note_of = |r: &StudyRow| r.id.as_ref().and_then(|id| notes.get(id));
        let mut out: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.shows(&self.rows[i], notes, filter))
            .collect();
        let key_cmp = |a: &StudyRow, b: &StudyRow| -> Ordering {
            let (na, nb) = (note_of(a), note_of(b));
            match self.sort {
                SortColumn::File => Ordering::Equal,
                SortColumn::Truth => rank_finding(a.truth(na)).cmp(&rank_finding(b.truth(nb))),
                SortColumn::Prediction => rank_finding(a.prediction.map(|p| p.predicted))
                    .cmp(&rank_finding(b.prediction.map(|p| p.predicted))),
                SortColumn::Probability => {
                    let p = |r: &StudyRow| r.prediction.map_or(-1.0, |p| p.probability);
                    p(a).total_cmp(&p(b))
                }
                SortColumn::Uncertain => {
                    let u = |r: &StudyRow| r.prediction.map_or(0, |p| 1 + u8::from(p.uncertain));
                    u(a).cmp(&u(b))
                }
                SortColumn::Scope => {
                    let s = |r: &StudyRow| match &r.scope {
                        None => 0u8,
                        Some(s) if s.in_scope => 1,
                        Some(_) => 2,
                    };
                    s(a).cmp(&s(b))
                }
                SortColumn::Outcome => {
                    rank_outcome(a.outcome(na)).cmp(&rank_outcome(b.outcome(nb)))
                }
                SortColumn::Note => rank_note(na).cmp(&rank_note(nb)),
            }
        };
        out.sort_by(|&i, &j| {
            let (a, b) = (&self.rows[i], &self.rows[j]);
            let primary = key_cmp(a, b);
            let primary = if self.descending {
                primary.reverse()
            } else {
                primary
            };
            // By path components, as the folder is walked and predicted: "train/…" before
            // "train-thumb224/…" (as strings '-' sorts before '/', which put the walk's first
            // study at row 3,592 of 5,232 in a folder with both).
            let by_file = Path::new(&a.relative).cmp(Path::new(&b.relative));
            primary.then(if self.sort == SortColumn::File && self.descending {
                by_file.reverse()
            } else {
                by_file
            })
        });
        out
    }

    pub fn counts(&self, notes: &HashMap<StudyId, Note>, notes_revision: u64) -> ReviewCounts {
        // The filter and order do not change counts; one key for simplicity.
        let key = MemoKey {
            filter: Filter::All,
            out_of_scope_only: false,
            sort: SortColumn::File,
            descending: false,
            ..self.memo_key(notes_revision)
        };
        if let Some((k, c)) = &*self.counts_memo.borrow() {
            if *k == key {
                return c.clone();
            }
        }
        let c = self.count(notes);
        *self.counts_memo.borrow_mut() = Some((key, c.clone()));
        c
    }

    fn count(&self, notes: &HashMap<StudyId, Note>) -> ReviewCounts {
        let mut c = ReviewCounts {
            per_filter: vec![0; Filter::ALL.len()],
            ..ReviewCounts::default()
        };
        for r in &self.rows {
            let note = r.id.as_ref().and_then(|id| notes.get(id));
            let facts = r.facts(note);
            c.out_of_scope += usize::from(r.out_of_scope());
            for (slot, f) in c.per_filter.iter_mut().zip(Filter::ALL) {
                *slot += usize::from(f.matches_facts(&facts));
            }
            if let (false, Some(o)) = (r.out_of_scope(), facts.outcome) {
                c.in_scope[match o {
                    Outcome::TruePositive => 0,
                    Outcome::FalsePositive => 1,
                    Outcome::TrueNegative => 2,
                    Outcome::FalseNegative => 3,
                }] += 1;
            }
            match (facts.outcome, r.prediction, &r.error) {
                (Some(Outcome::TruePositive), ..) => c.tp += 1,
                (Some(Outcome::FalsePositive), ..) => c.fp += 1,
                (Some(Outcome::TrueNegative), ..) => c.tn += 1,
                (Some(Outcome::FalseNegative), ..) => c.fn_ += 1,
                (None, Some(_), _) => c.unlabelled += 1,
                (None, None, Some(_)) => c.failed += 1,
                (None, None, None) => c.pending += 1,
            }
        }
        c
    }
}

fn rank_finding(f: Option<Finding>) -> u8 {
    match f {
        None => 0,
        Some(Finding::Negative) => 1,
        Some(Finding::Positive) => 2,
    }
}

/// Errors sort together at one end: FN, FP, then correct ones, then unknown.
fn rank_outcome(o: Option<Outcome>) -> u8 {
    match o {
        Some(Outcome::FalseNegative) => 0,
        Some(Outcome::FalsePositive) => 1,
        Some(Outcome::TruePositive) => 2,
        Some(Outcome::TrueNegative) => 3,
        None => 4,
    }
}

fn rank_note(n: Option<&Note>) -> u8 {
    match n {
        None => 0,
        Some(n) if n.agreement.is_none() && n.text.trim().is_empty() => {
            u8::from(!n.boxes.is_empty())
        }
        Some(n) if n.text.trim().is_empty() => 2,
        Some(n) if n.agreement == Some(Agreement::Disagree) => 4,
        Some(_) => 3,
    }
}

/// The study list's Note cell: the most telling thing the note holds (free text, then the
/// verdict, then boxes drawn without either, which an annotator marking opacities across a
/// folder otherwise could not see in the list).
pub fn note_mark(n: Option<&Note>) -> &'static str {
    let [text, disagree, seen, boxes] = NOTE_MARKS;
    match n {
        Some(n) if !n.text.trim().is_empty() => text,
        Some(n) if n.agreement == Some(Agreement::Disagree) => disagree,
        Some(n) if n.agreement.is_some() => seen,
        Some(n) if !n.boxes.is_empty() => boxes,
        _ => "",
    }
}

/// Every mark [`note_mark`] gives (the column is sized for the widest).
pub const NOTE_MARKS: [&str; 4] = ["note", "disagr.", "seen", "boxes"];

/// The nearest folder named like a class (case-insensitive) from the file up to `root` itself,
/// e.g. `root/PNEUMONIA/x.jpeg`, `root/test/NORMAL/y.png`, or `y.png` when `root` is
/// `test/NORMAL`: an annotator who opens one class's folder to review it alone expects its films
/// to carry that label, as they do when its parent is opened.
pub fn folder_truth(root: &Path, path: &Path, config: &ModelConfig) -> Option<Finding> {
    let base = list_base(root);
    let relative = path.strip_prefix(base).ok()?;
    crate::notes::class_of_folders(
        config,
        relative.parent()?,
        base.file_name().and_then(|n| n.to_str()),
    )
}

/// Every study file under `root`, sorted by path: image extensions, plus files whose content
/// says DICOM/PNG/JPEG. Hidden files and folders are skipped. Returns whether the list was cut
/// at [`MAX_STUDIES`].
pub fn list_studies(root: &Path, cancel: &AtomicBool) -> (Vec<PathBuf>, bool) {
    let (files, truncated, _) = list_studies_and_others(root, cancel);
    (files, truncated)
}

/// [`list_studies`], and the images it left out for their format.
pub fn list_studies_and_others(
    root: &Path,
    cancel: &AtomicBool,
) -> (Vec<PathBuf>, bool, crate::io::OtherFormats) {
    let mut others = crate::io::OtherFormats::default();
    // A DICOMDIR opened as a folder: the images of its records, in record order.
    if crate::io::is_dicomdir(root) {
        let mut files = crate::io::dicomdir_images(root).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        let truncated = files.len() > MAX_STUDIES;
        files.truncate(MAX_STUDIES);
        return (files, truncated, others);
    }
    let mut out = Vec::new();
    for path in crate::io::files_under(root, MAX_DEPTH) {
        if cancel.load(AtomicOrdering::Relaxed) {
            break;
        }
        if others.study_or_note(&path) {
            if out.len() == MAX_STUDIES {
                return (out, true, others);
            }
            out.push(path);
        }
    }
    (out, false, others)
}

/// The deepest folder that holds all of `files` (absolute paths): the root of a study list of
/// files opened together, so that their rows read `NORMAL/a.png` and class folders label them
/// as in a folder's list.
pub fn common_folder(files: &[PathBuf]) -> PathBuf {
    let mut common = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for file in files.iter().skip(1) {
        while !file.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    common
}

/// The studies of a set of files opened together, as [`list_studies`] gives a folder's: those
/// still there, sorted, at most [`MAX_STUDIES`].
pub fn list_set(files: &[PathBuf]) -> (Vec<PathBuf>, bool) {
    let mut out: Vec<PathBuf> = files.iter().filter(|f| f.is_file()).cloned().collect();
    out.sort();
    out.dedup();
    let truncated = out.len() > MAX_STUDIES;
    out.truncate(MAX_STUDIES);
    (out, truncated)
}

/// The folder that listed paths are relative to: `root`, or the folder of a DICOMDIR.
fn list_base(root: &Path) -> &Path {
    match root.parent() {
        Some(parent) if root.is_file() => parent,
        _ => root,
    }
}

/// Rows for listed files, before any prediction.
pub fn rows_for(root: &Path, files: Vec<PathBuf>, config: &ModelConfig) -> Vec<StudyRow> {
    let relatives: Vec<PathBuf> = files
        .iter()
        .map(|path| {
            path.strip_prefix(list_base(root))
                .unwrap_or(path)
                .to_path_buf()
        })
        .collect();
    let hints = folder_hints(&relatives);
    let shared = shared_name_prefixes(&relatives);
    files
        .into_iter()
        .zip(relatives.into_iter().zip(hints).zip(shared))
        .map(|(path, ((relative, folder_hint), name_shared))| StudyRow {
            relative: relative.to_string_lossy().into_owned(),
            folder_hint,
            name_shared,
            folder_truth: folder_truth(root, &path, config),
            id: None,
            prediction: None,
            error: None,
            scope: None,
            stamp: None,
            path,
        })
        .collect()
}

/// For each file whose name another listed file shares, the fewest folders from the top of
/// its relative path that tell the group apart, "/…" marking folders left out; `None` for a
/// unique name and for a file at the top of the listed folder. The list shows file names (the
/// column is too narrow for paths), so before, a DICOMDIR's patients each showed "IM000000"
/// and a film copied into a subfolder showed twice under one name.
pub fn folder_hints(relatives: &[PathBuf]) -> Vec<Option<String>> {
    let mut by_name: std::collections::HashMap<_, Vec<usize>> = std::collections::HashMap::new();
    for (i, relative) in relatives.iter().enumerate() {
        by_name.entry(relative.file_name()).or_default().push(i);
    }
    let mut hints = vec![None; relatives.len()];
    for group in by_name.into_values().filter(|g| g.len() > 1) {
        let folders: Vec<Vec<String>> = group
            .iter()
            .map(|&i| {
                let parent = relatives[i].parent().unwrap_or(Path::new(""));
                parent
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .collect();
        let deepest = folders.iter().map(Vec::len).max().unwrap_or(0);
        // The whole folder paths differ (the files are distinct), so some depth does.
        let depth = (1..=deepest)
            .find(|&k| {
                let prefixes: std::collections::HashSet<&[String]> =
                    folders.iter().map(|f| &f[..k.min(f.len())]).collect();
                prefixes.len() == folders.len()
            })
            .unwrap_or(deepest);
        for (&i, folder) in group.iter().zip(&folders) {
            let shown = &folder[..depth.min(folder.len())];
            if !shown.is_empty() {
                let elided = if folder.len() > shown.len() {
                    "/…"
                } else {
                    ""
                };
                hints[i] = Some(format!("{}{elided}", shown.join("/")));
            }
        }
    }
    hints
}

/// For each file, the characters at the start of its name that the name of another listed file
/// (of another name) starts with too, cut back to just after a `_`, `-`, `.` or space, so that
/// what is left begins a word: 28 for "wg04_RG2_cr_hip_mono2_10bit_rle_2140x1760.dcm" beside
/// "wg04_RG2_cr_hip_mono2_10bit_jpegls_…". A file's name shares the most with a neighbour in
/// sorted order, so this is one sort, not a comparison of every pair.
pub fn shared_name_prefixes(relatives: &[PathBuf]) -> Vec<usize> {
    let names: Vec<Vec<char>> = relatives
        .iter()
        .map(|r| {
            r.file_name()
                .map(|n| n.to_string_lossy().chars().collect())
                .unwrap_or_default()
        })
        .collect();
    let mut distinct: Vec<&Vec<char>> = names.iter().collect();
    distinct.sort();
    distinct.dedup();
    let common = |a: &[char], b: &[char]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
    names
        .iter()
        .map(|name| {
            let at = distinct.binary_search(&name).unwrap_or(0);
            let before = at.checked_sub(1).map_or(0, |k| common(name, distinct[k]));
            let after = distinct.get(at + 1).map_or(0, |n| common(name, n));
            let shared = before.max(after).min(name.len().saturating_sub(1));
            (0..=shared)
                .rev()
                .find(|&k| k == 0 || ends_word(name[k - 1]))
                .unwrap_or(0)
        })
        .collect()
}

/// Where a file name may be cut between words: after `_`, `-`, `.` or a space.
pub(crate) fn ends_word(c: char) -> bool {
    matches!(c, '_' | '-' | '.' | ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_start_of_a_name_ends_after_a_separator() {
        let relatives: Vec<PathBuf> = [
            "wg04_RG2_cr_hip_mono2_10bit_rle_2140x1760.dcm",
            "wg04_RG2_cr_hip_mono2_10bit_jpegls_nearlossless_2140x1760.dcm",
            "wg04_RG3_cr_extremity.dcm",
            "0c0181c0-c009-4387-b087-d314a4ffcba2.dcm",
            "0c89ca38-27ca-4cd0-88cb-18093fdcb04b.dcm",
            "PT000000/IM000000",
            "PT000001/IM000000",
            "IM000001",
            "scan.dcm",
            "scan.dcm.bak",
            "unique.png",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(
            shared_name_prefixes(&relatives),
            // "wg04_RG2_cr_hip_mono2_10bit_" twice, "wg04_", nothing of "0c"; two files named
            // IM000000 do not count each other (the folder hint tells them apart), and
            // "IM000001" shares no separator with them.
            [28, 28, 5, 0, 0, 0, 0, 0, 5, 5, 0]
        );
    }

    #[test]
    fn files_of_one_name_are_told_apart_by_the_fewest_folders_from_the_top() {
        let relatives: Vec<PathBuf> = [
            "PT000000/ST000000/SE000000/IM000000",
            "PT000000/ST000000/SE000000/IM000001",
            "PT000001/ST000000/SE000000/IM000000",
            "film.jpeg",
            "copies/film.jpeg",
            "a/b/x.png",
            "a/c/x.png",
            "d/b/x.png",
            "a/y.png",
            "a/b/y.png",
            "unique.png",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let hints = folder_hints(&relatives);
        let expected = [
            Some("PT000000/…"),
            None,
            Some("PT000001/…"),
            None,
            Some("copies"),
            Some("a/b"),
            Some("a/c"),
            Some("d/b"),
            Some("a"),
            Some("a/b"),
            None,
        ];
        assert_eq!(
            hints,
            expected.map(|h| h.map(str::to_string)).to_vec(),
            "{relatives:?}"
        );
    }

    #[test]
    fn the_note_cell_shows_boxes_drawn_without_a_verdict_and_sorts_them_above_empty_notes() {
        use crate::explain::localisation::ImageBox;
        use crate::notes::StudyId;
        let note = |agreement: Option<Agreement>, boxes: usize, text: &str| {
            let mut n = Note::new(StudyId::sha256(&[7; 32]));
            n.agreement = agreement;
            n.boxes = vec![ImageBox::new(1.0, 2.0, 30.0, 40.0); boxes];
            n.text = text.into();
            n
        };
        let cases = [
            (note(None, 0, " "), "", 0),
            (note(None, 2, ""), "boxes", 1),
            (note(Some(Agreement::Agree), 2, ""), "seen", 2),
            (note(Some(Agreement::Disagree), 0, ""), "disagr.", 2),
            (note(None, 1, "rib shadow"), "note", 3),
            (note(Some(Agreement::Disagree), 0, "missed"), "note", 4),
        ];
        assert_eq!(note_mark(None), "");
        for (n, mark, rank) in &cases {
            assert_eq!(
                (note_mark(Some(n)), rank_note(Some(n))),
                (*mark, *rank),
                "{n:?}"
            );
        }
    }

    fn config() -> ModelConfig {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/reference/model.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn row(name: &str, truth: Option<Finding>, pred: Option<(Finding, f64, bool)>) -> StudyRow {
        StudyRow {
            path: PathBuf::from(format!("/r/{name}")),
            relative: name.to_string(),
            folder_hint: None,
            name_shared: 0,
            folder_truth: truth,
            id: Some(StudyId::sha256(&[name.len() as u8; 32])),
            prediction: pred.map(|(predicted, probability, uncertain)| PredictionSnapshot {
                predicted,
                probability,
                uncertain,
                in_scope: None,
            }),
            error: None,
            scope: None,
            stamp: None,
        }
    }

    #[test]
    fn class_folders_give_the_truth_nearest_first_case_insensitively() {
        let cfg = config();
        let root = Path::new("/data");
        let truth = |p: &str| folder_truth(root, Path::new(p), &cfg);
        assert_eq!(truth("/data/PNEUMONIA/a.jpeg"), Some(Finding::Positive));
        assert_eq!(truth("/data/normal/b.png"), Some(Finding::Negative));
        assert_eq!(truth("/data/test/NORMAL/x/c.png"), Some(Finding::Negative));
        assert_eq!(
            truth("/data/PNEUMONIA/NORMAL/d.png"),
            Some(Finding::Negative)
        );
        assert_eq!(truth("/data/misc/e.png"), None);
        assert_eq!(truth("/data/f.png"), None);
        // The opened folder's own name counts last, below any class folder inside it; the
        // folders above it do not.
        let opened = |root: &str, p: &str| folder_truth(Path::new(root), Path::new(p), &cfg);
        assert_eq!(
            opened("/test/NORMAL", "/test/NORMAL/g.png"),
            Some(Finding::Negative)
        );
        assert_eq!(
            opened("/x/pneumonia", "/x/pneumonia/sub/h.png"),
            Some(Finding::Positive)
        );
        assert_eq!(
            opened("/x/PNEUMONIA", "/x/PNEUMONIA/NORMAL/i.png"),
            Some(Finding::Negative)
        );
        assert_eq!(opened("/PNEUMONIA/misc", "/PNEUMONIA/misc/j.png"), None);
        assert_eq!(
            crate::notes::class_of_finding(&cfg, Finding::Negative),
            Some("NORMAL")
        );
    }

    #[test]
    fn a_set_of_files_is_listed_under_their_deepest_common_folder() {
        let common =
            |paths: &[&str]| common_folder(&paths.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(
            common(&["/d/test/NORMAL/a.png", "/d/test/PNEUMONIA/b.png"]),
            Path::new("/d/test")
        );
        assert_eq!(
            common(&["/d/test/NORMAL/a.png", "/d/test/NORMAL/b.png"]),
            Path::new("/d/test/NORMAL")
        );
        // Components, not characters: /d/tes is not a folder of /d/test.
        assert_eq!(
            common(&["/d/test/a.png", "/d/tes/b.png", "/d/test/c/d.png"]),
            Path::new("/d")
        );
        assert_eq!(common(&["/a/x.png", "/b/y.png"]), Path::new("/"));
    }

    #[test]
    fn filters_counts_and_confusion_follow_outcomes_and_notes() {
        use Finding::{Negative as N, Positive as P};
        let mut review = Review::new(1, PathBuf::from("/r"));
        review.set_rows(
            vec![
                row("a_tp", Some(P), Some((P, 0.9, false))),
                row("b_fn", Some(P), Some((N, 0.2, true))),
                row("c_fp", Some(N), Some((P, 0.7, false))),
                row("d_tn", Some(N), Some((N, 0.1, false))),
                row("e_unlabelled", None, Some((P, 0.8, false))),
                row("f_pending", Some(P), None),
            ],
            false,
        );
        let mut notes = HashMap::new();
        // The reviewer relabels e as negative: it becomes a false positive.
        let mut n = Note::new(review.rows[4].id.clone().unwrap());
        n.ground_truth = Some(N);
        n.agreement = Some(Agreement::Disagree);
        n.text = "lateral view".into();
        notes.insert(n.study.clone(), n);

        let c = review.counts(&notes, 0);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 2, 1, 1));
        assert_eq!((c.unlabelled, c.pending, c.failed), (0, 1, 0));
        assert_eq!(c.of_filter(Filter::All), 6);
        assert_eq!(c.of_filter(Filter::Misclassified), 3);
        assert_eq!(c.of_filter(Filter::FalseNegatives), 1);
        assert_eq!(c.of_filter(Filter::Uncertain), 1);
        assert_eq!(c.of_filter(Filter::Unreviewed), 5);
        assert_eq!(c.of_filter(Filter::HasNote), 1);

        review.filter = Filter::Misclassified;
        let names = |v: Vec<usize>, r: &Review| -> Vec<String> {
            v.into_iter().map(|i| r.rows[i].relative.clone()).collect()
        };
        assert_eq!(
            names(review.visible(&notes, 0), &review),
            ["b_fn", "c_fp", "e_unlabelled"]
        );
        // From a row the filter hides, "next" goes to the next shown row after it.
        let d_tn = review.rows[3].path.clone();
        let next = review.step_from(&d_tn, 1, &notes, 0).unwrap();
        assert_eq!(review.rows[next].relative, "e_unlabelled");
        let prev = review.step_from(&d_tn, -1, &notes, 0).unwrap();
        assert_eq!(review.rows[prev].relative, "c_fp");
        let last = review.rows[4].path.clone();
        assert_eq!(review.step_from(&last, 1, &notes, 0), None);
        // From a hidden row with none shown beyond it, the list's near end.
        let f_pending = review.rows[5].path.clone();
        let next = review.step_from(&f_pending, 1, &notes, 0).unwrap();
        assert_eq!(review.rows[next].relative, "b_fn");
        let prev = review.step_from(&f_pending, -1, &notes, 0).unwrap();
        assert_eq!(review.rows[prev].relative, "e_unlabelled");
        let a_tp = review.rows[0].path.clone();
        let prev = review.step_from(&a_tp, -1, &notes, 0).unwrap();
        assert_eq!(review.rows[prev].relative, "e_unlabelled");

        review.sort_by(SortColumn::Probability);
        assert_eq!(
            names(review.visible(&notes, 0), &review),
            ["e_unlabelled", "c_fp", "b_fn"]
        );
        review.sort_by(SortColumn::Probability);
        assert_eq!(
            names(review.visible(&notes, 0), &review),
            ["b_fn", "c_fp", "e_unlabelled"]
        );
        review.filter = Filter::All;
        review.sort_by(SortColumn::Outcome);
        assert_eq!(
            names(review.visible(&notes, 0), &review)[..3],
            ["b_fn", "c_fp", "e_unlabelled"]
        );

        // Cached lists follow row changes and note changes.
        review
            .row_mut(Path::new("/r/f_pending"))
            .unwrap()
            .prediction = Some(PredictionSnapshot {
            predicted: N,
            probability: 0.3,
            uncertain: false,
            in_scope: None,
        });
        let c = review.counts(&notes, 0);
        assert_eq!((c.pending, c.fn_), (0, 2));
        notes.clear();
        assert_eq!(review.counts(&notes, 1).of_filter(Filter::HasNote), 0);
    }

    /// A rescan keeps the predictions of files whose size and modification time are unchanged,
    /// and predicts new, changed and failed ones (in list order).
    #[test]
    fn a_rescan_keeps_the_predictions_of_unchanged_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for name in ["a.png", "b.png", "c.png"] {
            std::fs::write(dir.join(name), name.as_bytes()).unwrap();
        }
        let listed = || {
            let (files, _) = list_studies(dir, &AtomicBool::new(false));
            rows_for(dir, files, &config())
        };
        let mut first = listed();
        for (i, r) in first.iter_mut().enumerate() {
            r.stamp = FileStamp::of(&r.path);
            r.id = Some(StudyId::sha256(&[i as u8; 32]));
            if r.relative == "c.png" {
                r.error = Some("cannot decode".into());
            } else {
                r.prediction = Some(PredictionSnapshot {
                    predicted: Finding::Positive,
                    probability: 0.5 + i as f64 / 10.0,
                    uncertain: false,
                    in_scope: None,
                });
            }
        }
        let mut review = Review::new(1, dir.to_path_buf());
        review.set_rows(first, false);
        let known = review.predicted_rows();
        assert_eq!(known.len(), 2, "the failed row is not kept");

        // b changes (another size), d is new.
        std::fs::write(dir.join("b.png"), b"b, rewritten").unwrap();
        std::fs::write(dir.join("d.png"), b"d").unwrap();
        let mut rows = listed();
        let to_predict = carry_over(&mut rows, &known);
        let names = |paths: &[PathBuf]| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&to_predict), ["b.png", "c.png", "d.png"]);
        let a = &rows[0];
        assert_eq!(a.prediction.map(|p| p.probability), Some(0.5));
        assert_eq!(a.id, Some(StudyId::sha256(&[0; 32])));
        assert_eq!(a.stamp, FileStamp::of(&a.path));
        assert!(rows[1..]
            .iter()
            .all(|r| r.prediction.is_none() && r.id.is_none()));
    }

    /// While the pointer is over the list, predictions arriving do not move rows; the reviewer's
    /// own changes (sort, filter, notes) and a new listing still re-order at once, and the
    /// order catches up when the pointer leaves.
    #[test]
    fn rows_hold_their_places_under_the_pointer_while_predictions_arrive() {
        use Finding::{Negative as N, Positive as P};
        let mut review = Review::new(1, PathBuf::from("/r"));
        review.set_rows(
            vec![
                row("a", Some(N), Some((N, 0.1, false))),
                row("b", Some(P), Some((P, 0.9, false))),
                row("c", Some(P), None),
            ],
            false,
        );
        let notes = HashMap::new();
        let names = |v: Vec<usize>, r: &Review| -> Vec<String> {
            v.into_iter().map(|i| r.rows[i].relative.clone()).collect()
        };
        review.sort_by(SortColumn::Probability);
        assert!(review.descending);
        assert_eq!(names(review.visible(&notes, 0), &review), ["b", "a", "c"]);
        review.hold_order = true;
        let predict = |review: &mut Review, name: &str, p: f64| {
            review
                .row_mut(&PathBuf::from(format!("/r/{name}")))
                .unwrap()
                .prediction = Some(PredictionSnapshot {
                predicted: if p > 0.5 { P } else { N },
                probability: p,
                uncertain: false,
                in_scope: None,
            });
        };
        predict(&mut review, "c", 0.99);
        assert_eq!(names(review.visible(&notes, 0), &review), ["b", "a", "c"]);
        // A new order is waiting, but no row: every row is listed already.
        assert_eq!(review.rows_waiting(&notes, 0), 0);
        // A new sort applies at once (and its order is then held in turn).
        review.sort_by(SortColumn::Probability);
        assert_eq!(names(review.visible(&notes, 0), &review), ["a", "b", "c"]);
        predict(&mut review, "a", 0.95);
        assert_eq!(names(review.visible(&notes, 0), &review), ["a", "b", "c"]);
        // So do the notes.
        assert_eq!(names(review.visible(&notes, 1), &review), ["b", "a", "c"]);
        // The pointer leaves: the order catches up.
        predict(&mut review, "b", 0.97);
        assert_eq!(names(review.visible(&notes, 1), &review), ["b", "a", "c"]);
        review.hold_order = false;
        assert_eq!(names(review.visible(&notes, 1), &review), ["a", "b", "c"]);
        // A filter's new rows wait with the order, and the list says how many.
        review.filter = Filter::FalseNegatives;
        review.set_rows(
            vec![
                row("a", Some(P), Some((N, 0.1, false))),
                row("b", Some(P), None),
                row("c", Some(P), None),
            ],
            false,
        );
        assert_eq!(names(review.visible(&notes, 1), &review), ["a"]);
        review.hold_order = true;
        predict(&mut review, "b", 0.2);
        predict(&mut review, "c", 0.3);
        assert_eq!(names(review.visible(&notes, 1), &review), ["a"]);
        assert_eq!(review.rows_waiting(&notes, 1), 2);
        review.hold_order = false;
        assert_eq!(review.rows_waiting(&notes, 1), 0);
        assert_eq!(names(review.visible(&notes, 1), &review), ["a", "b", "c"]);
        review.filter = Filter::All;
        // A new listing is never held (the old indices mean other rows).
        review.hold_order = true;
        review.set_rows(vec![row("z", None, None)], false);
        assert_eq!(names(review.visible(&notes, 1), &review), ["z"]);
    }

    /// The list sorted by File is the order the folder is walked (and predicted) in: by path
    /// components, so a folder's files stay together and "train/" comes before
    /// "train-thumb224/" (as strings '-' sorts before '/': the walk's first study, opened first,
    /// sat at row 3,592 of 5,232).
    #[test]
    fn the_file_order_is_the_walk_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for sub in ["train/NORMAL", "train-thumb224/NORMAL", "train.old"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for file in [
            "train/NORMAL/b.png",
            "train/a.png",
            "train-thumb224/NORMAL/c.png",
            "train.old/d.png",
            "train.png",
        ] {
            std::fs::write(dir.join(file), b"x").unwrap();
        }
        let (files, _) = list_studies(dir, &AtomicBool::new(false));
        let mut review = Review::new(1, dir.to_path_buf());
        review.set_rows(rows_for(dir, files, &config()), false);
        let notes = HashMap::new();
        let walked: Vec<&str> = review.rows.iter().map(|r| r.relative.as_str()).collect();
        let shown: Vec<&str> = review
            .visible(&notes, 0)
            .into_iter()
            .map(|i| review.rows[i].relative.as_str())
            .collect();
        assert_eq!(
            walked,
            [
                "train/NORMAL/b.png",
                "train/a.png",
                "train-thumb224/NORMAL/c.png",
                "train.old/d.png",
                "train.png",
            ]
        );
        assert_eq!(shown, walked);
    }

    #[test]
    fn listing_is_recursive_sorted_and_finds_dicom_without_extension() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("NORMAL/sub")).unwrap();
        std::fs::create_dir_all(dir.join(".hidden")).unwrap();
        let mut dcm = vec![0u8; 140];
        dcm[128..132].copy_from_slice(b"DICM");
        std::fs::write(dir.join("NORMAL/sub/IM0001"), &dcm).unwrap();
        std::fs::write(dir.join("NORMAL/b.PNG"), b"x").unwrap();
        std::fs::write(dir.join("a.jpeg"), b"x").unwrap();
        std::fs::write(dir.join("README.txt"), b"not an image").unwrap();
        std::fs::write(dir.join(".hidden/c.png"), b"x").unwrap();
        let (files, truncated) = list_studies(dir, &AtomicBool::new(false));
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(!truncated);
        assert_eq!(names, ["NORMAL/b.PNG", "NORMAL/sub/IM0001", "a.jpeg"]);
    }

    #[test]
    fn a_dicomdir_lists_its_images_and_folders_skip_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/dicomdir");
        let index = dir.join("DICOMDIR");
        let (files, truncated) = list_studies(&index, &AtomicBool::new(false));
        assert!(!truncated);
        let rows = rows_for(&index, files.clone(), &config());
        let names: Vec<&str> = rows.iter().map(|r| r.relative.as_str()).collect();
        assert_eq!(
            names,
            [
                "PT000000/ST000000/SE000000/IM000000",
                "PT000000/ST000000/SE000000/IM000001",
                "PT000001/ST000000/SE000000/IM000000",
            ]
        );
        // Walking the folder itself finds the same images, not the index.
        let (walked, _) = list_studies(&dir, &AtomicBool::new(false));
        assert_eq!(walked, files);
    }
}
