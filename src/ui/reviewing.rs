//! The review workflow's side of the app: a folder under review ([`Review`]), the notes database
//! (through [`NotesClient`]) and the note being edited ([`Draft`]), kept consistent with the image
//! on screen. Drawing is in `study_list.rs` and `notes_panel.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::notes::{EditSaved, Finding, Note, PredictionSnapshot, StudyId};

use super::app::{display_name, EngineState, ViewerApp};
use super::notes_draft::Draft;
use super::notes_service::{NotesClient, NotesReply, NotesRequest};
use super::review::Review;
use super::worker::{self, chain_line, Msg, ReviewMsg, ScanSpec};

/// How long quitting waits for the last save to reach the database.
const EXIT_FLUSH: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, PartialEq)]
pub enum NotesDb {
    Closed,
    Opening(PathBuf),
    Ready(PathBuf),
    Failed(String),
}

/// Notes as the viewer knows them. `all` mirrors the database (loaded when it opens, updated
/// by every save); the list's filters and the "note" column read it without a query per frame.
pub struct NotesState {
    pub(super) client: Option<NotesClient>,
    pub db: NotesDb,
    all: HashMap<StudyId, Note>,
    /// Bumped on every change of `all`, so the study list re-sorts only when something changed.
    revision: u64,
    /// Study ids of files seen (folder scan, opened images).
    pub ids: HashMap<PathBuf, StudyId>,
    /// The note of the study on screen; `None` until both the study id and the database are
    /// there, so an edit can never overwrite a note that was not loaded yet.
    pub draft: Option<Draft>,
    /// Notes of studies left before their last save was acknowledged; kept (and retried) until
    /// it is, so switching images fast never drops an edit.
    pub(super) leaving: Vec<Draft>,
    /// `T` was pressed: the comment box takes the focus when it is next drawn.
    pub(super) focus_text: bool,
    /// `T` was pressed while the study was still opening, before its note was there.
    pub(super) typed_early: Option<EarlyTyping>,
}

/// What was typed after `T` before the comment box was there to take it (the study still
/// opening): given to the box once it is drawn. Without it those letters acted as shortcuts.
pub(super) struct EarlyTyping {
    pub(super) since: Instant,
    pub(super) events: Vec<egui::Event>,
}

impl EarlyTyping {
    /// The longest the typing waits for the box: a study that opens slower than this (or never,
    /// its note unavailable) gives the keyboard back to the shortcuts.
    pub(super) const LIMIT: Duration = Duration::from_secs(5);

    pub(super) fn letters(&self) -> usize {
        self.events
            .iter()
            .filter_map(|e| match e {
                egui::Event::Text(t) => Some(t.chars().count()),
                _ => None,
            })
            .sum()
    }
}

impl NotesState {
    pub fn new() -> Self {
        Self {
            client: None,
            db: NotesDb::Closed,
            all: HashMap::new(),
            revision: 0,
            ids: HashMap::new(),
            draft: None,
            leaving: Vec::new(),
            focus_text: false,
            typed_early: None,
        }
    }

    /// Every stored note, by study.
    pub fn all(&self) -> &HashMap<StudyId, Note> {
        &self.all
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn replace_all(&mut self, notes: Vec<Note>) {
        self.all = notes.into_iter().map(|n| (n.study.clone(), n)).collect();
        self.revision += 1;
    }

    fn put(&mut self, note: Note) {
        self.all.insert(note.study.clone(), note);
        self.revision += 1;
    }

    fn forget(&mut self, study: &StudyId) {
        if self.all.remove(study).is_some() {
            self.revision += 1;
        }
    }

    /// Every edit is in the database.
    pub fn all_saved(&self) -> bool {
        self.leaving.is_empty() && self.draft.as_ref().is_none_or(Draft::is_saved)
    }
}

impl Default for NotesState {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewerApp {
    // ---- notes database ---------------------------------------------------------------

    /// First frame: the notes thread, and the database `--db` or the settings name (or the
    /// default).
    pub(super) fn start_notes(&mut self) {
        let Some(out) = self.outbox() else {
            return;
        };
        self.notes.client = Some(NotesClient::start(out));
        let path = crate::notes::chosen_path(
            self.notes_db_override.as_deref(),
            self.settings.notes_db.as_deref(),
        )
        .map_err(|e| worker::chain_line(&e));
        match path {
            Ok(p) => self.open_notes_db(p),
            Err(e) => self.notes.db = NotesDb::Failed(e),
        }
    }

    /// Switches to another notes database; edits waiting for the old one are sent to it first.
    pub fn open_notes_db(&mut self, path: PathBuf) {
        self.flush_notes(Instant::now());
        let Some(client) = &self.notes.client else {
            return;
        };
        client.send(NotesRequest::Open(path.clone()));
        self.notes.db = NotesDb::Opening(path);
        self.notes.replace_all(Vec::new());
        self.notes.draft = None;
    }

    pub(super) fn handle_notes(&mut self, reply: NotesReply) {
        match reply {
            NotesReply::Opened(Ok((path, notes))) => {
                self.notes.replace_all(notes);
                self.notes.db = NotesDb::Ready(path);
            }
            NotesReply::Opened(Err(e)) => {
                self.set_error(format!("notes database: {e}"));
                self.notes.db = NotesDb::Failed(e);
            }
            NotesReply::Saved {
                study,
                revision,
                result,
            } => {
                let now = Instant::now();
                let notes = &mut self.notes;
                let current = notes.draft.iter_mut().filter(|d| d.note.study == study);
                let leaving = notes.leaving.iter_mut().filter(|d| d.note.study == study);
                match result {
                    Ok(saved) => {
                        let EditSaved { stored, merged } = *saved;
                        for d in current.chain(leaving) {
                            d.saved(revision, &stored, merged.as_ref());
                        }
                        notes.put(stored);
                        if let Some(theirs) = merged {
                            self.set_info(format!(
                                "this note had also been saved in another viewer window (at {}); \
                                 both are kept, merged",
                                theirs
                                    .updated_at
                                    .with_timezone(&chrono::Local)
                                    .format("%H:%M:%S")
                            ));
                        }
                    }
                    Err(e) => {
                        for d in current.chain(leaving) {
                            d.failed(revision, e.clone(), now);
                        }
                        self.set_error(format!("note not saved yet (will retry): {e}"));
                    }
                }
                self.notes.leaving.retain(|d| !d.is_saved());
            }
            NotesReply::Fetched(study, note) => {
                match &note {
                    Some(n) => self.notes.put((**n).clone()),
                    None => self.notes.forget(&study),
                }
                // Another instance may have written it; take its copy unless we are editing.
                if let Some(d) = self.notes.draft.as_mut() {
                    if d.note.study == study {
                        if let Some(n) = note {
                            d.refreshed(*n);
                        }
                    }
                }
            }
            NotesReply::Exported(result) => match result {
                Ok((path, n, false)) => {
                    self.set_info(format!("exported {n} notes to {}", path.display()))
                }
                Ok((path, n, true)) => self.set_info(format!(
                    "exported the boxes of {n} notes as RSNA labels to {}",
                    path.display()
                )),
                Err(e) => self.set_error(format!("notes export failed: {e}")),
            },
            NotesReply::Imported(result) => match result {
                Ok((path, report, notes)) => {
                    self.notes_imported(notes);
                    let mut line = format!(
                        "imported {}: {} new, {} updated, {} unchanged",
                        display_name(&path),
                        report.inserted,
                        report.updated,
                        report.unchanged
                    );
                    for remark in report.remarks() {
                        line.push_str(&format!(" · {remark}"));
                    }
                    self.set_info(line);
                }
                Err(e) => self.set_error(format!("notes import failed: {e}")),
            },
            NotesReply::LabelsAdded(result) => match result {
                Ok(done) => {
                    self.notes_imported(done.notes);
                    let r = done.added.report;
                    let mut line = format!(
                        "imported {} (RSNA labels): films {}, new {}, updated {}, unchanged {}",
                        display_name(&done.path),
                        done.films,
                        r.inserted,
                        r.updated,
                        r.unchanged
                    );
                    if !done.added.truth_kept.is_empty() {
                        let names: Vec<String> = done
                            .added
                            .truth_kept
                            .iter()
                            .map(crate::notes::rsna::patient_id_of)
                            .collect();
                        line.push_str(&format!(
                            " · reviewer's ground truth kept, unlike the label: {} ({})",
                            names.len(),
                            crate::text::first_few(&names, 3)
                        ));
                    }
                    if done.missing > 0 {
                        line.push_str(&format!(
                            " · labelled names with no film in this folder: {}",
                            done.missing
                        ));
                    }
                    if let Some((path, why)) = done.skipped.first() {
                        line.push_str(&format!(
                            " · unreadable: {} ({}: {why})",
                            done.skipped.len(),
                            display_name(path)
                        ));
                    }
                    self.set_info(line);
                }
                Err(e) => self.set_error(format!("labels import failed: {e}")),
            },
            NotesReply::LabelsReading {
                status,
                done,
                total,
            } => self.set_info(format!("{status} {done}/{total}")),
        }
    }

    /// Every note after an import: the list shows them at once, and the note on screen, unless
    /// it is being edited, is read again, since it may have received a newer copy.
    fn notes_imported(&mut self, notes: Vec<Note>) {
        self.notes.replace_all(notes);
        if self.notes.draft.as_ref().is_some_and(Draft::is_saved) {
            self.notes.draft = None;
        }
    }

    pub fn export_notes(&mut self, path: PathBuf) {
        self.flush_notes(Instant::now());
        if let Some(client) = &self.notes.client {
            client.send(NotesRequest::Export {
                path,
                include_paths: self.export_note_paths,
                rsna: self.export_rsna_labels,
            });
        }
    }

    /// A notes export is merged; an RSNA labels file gives the films of the open folder its
    /// boxes and ground truth ([`crate::notes::rsna`]), the films being read on a thread of
    /// their own so that saves are not held up meanwhile.
    pub fn import_notes(&mut self, path: PathBuf) {
        self.flush_notes(Instant::now());
        let Some(client) = &self.notes.client else {
            return;
        };
        if !crate::notes::rsna::is_labels_file(&path) {
            client.send(NotesRequest::Import(path));
            return;
        }
        let Some(review) = &self.review else {
            self.set_error(format!(
                "{} is an RSNA labels file: open the folder of the films it names, then import it",
                display_name(&path)
            ));
            return;
        };
        let files: Vec<PathBuf> = review.rows.iter().map(|r| r.path.clone()).collect();
        let to_notes = client.sender();
        let folder = display_name(&review.root);
        let source = display_name(&path);
        let status = format!("reading the films of {folder} that {source} names…");
        self.set_info(status.clone());
        let to_ui = self.outbox();
        let spawned = std::thread::Builder::new()
            .name("labels".into())
            .spawn(move || {
                let found = crate::notes::rsna::read_labels(&path)
                    .map_err(|e| chain_line(&e))
                    .and_then(|labels| {
                        // At most a hundred updates of the status line.
                        let progress = |done: usize, total: usize| {
                            let step = (total / 100).max(1);
                            if let (Some(out), true) = (&to_ui, done.is_multiple_of(step)) {
                                out.send(Msg::Notes(NotesReply::LabelsReading {
                                    status: status.clone(),
                                    done,
                                    total,
                                }));
                            }
                        };
                        crate::notes::rsna::notes_from_labels(
                            &files, &labels, &source, &folder, &progress,
                        )
                    });
                let _ = to_notes.send(NotesRequest::AddLabels { path, found });
            });
        if let Err(e) = spawned {
            self.set_error(format!("cannot start reading the labels: {e}"));
        }
    }

    // ---- the note being edited --------------------------------------------------------

    /// Called by the panel after it changed `notes.draft`.
    /// The note then carries the name of whoever edited it last.
    pub fn note_edited(&mut self) {
        self.record_map_facts();
        if let Some(d) = self.notes.draft.as_mut() {
            let reviewer = self.settings.reviewer.trim();
            if !reviewer.is_empty() {
                d.note.reviewer = reviewer.to_string();
            }
            d.edited(Instant::now());
        }
    }

    /// Each frame: the draft follows the study on screen.
    pub(super) fn sync_draft(&mut self) {
        let wanted = match (&self.notes.db, self.current.as_ref()) {
            (NotesDb::Ready(_), Some(c)) => self
                .notes
                .ids
                .get(&c.path)
                .map(|id| (c.path.clone(), id.clone())),
            _ => None,
        };
        let same = match (&self.notes.draft, &wanted) {
            (Some(d), Some((_, id))) => d.note.study == *id,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(old) = self.notes.draft.take() {
            if !old.is_saved() {
                self.notes.leaving.push(old);
            }
        }
        self.flush_notes(Instant::now());
        if let Some((path, id)) = wanted {
            let stored = self.notes.all.get(&id).cloned();
            let base = stored.as_ref().map(|n| n.updated_at);
            let note = stored.unwrap_or_else(|| Note::new(id.clone()));
            self.notes.draft = Some(Draft::new(note, path, base));
            if let Some(client) = &self.notes.client {
                client.send(NotesRequest::Fetch(id));
            }
        }
    }

    /// Each frame: sends the edits that are due and schedules the next check.
    pub(super) fn autosave(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        let due = self.notes.draft.as_ref().is_some_and(|d| d.save_due(now))
            || self.notes.leaving.iter().any(|d| d.save_due(now));
        if due {
            self.send_saves(now, false);
        }
        let next = self
            .notes
            .draft
            .iter()
            .chain(&self.notes.leaving)
            .filter_map(Draft::next_due)
            .min();
        if let Some(t) = next {
            ctx.request_repaint_after(t.saturating_duration_since(now));
        }
    }

    /// Sends every unsent edit now (switching study, exporting, quitting).
    pub fn flush_notes(&mut self, now: Instant) {
        self.send_saves(now, true);
    }

    fn send_saves(&mut self, now: Instant, all_unsent: bool) {
        let Some(client) = &self.notes.client else {
            return;
        };
        let snapshot: Vec<(PathBuf, Option<PredictionSnapshot>, Option<Finding>)> = self
            .notes
            .draft
            .iter()
            .chain(&self.notes.leaving)
            .map(|d| {
                (
                    d.path.clone(),
                    self.live_prediction(&d.path),
                    self.folder_truth(&d.path),
                )
            })
            .collect();
        let drafts = self
            .notes
            .draft
            .iter_mut()
            .chain(self.notes.leaving.iter_mut());
        for (d, (path, prediction, folder_truth)) in drafts.zip(snapshot) {
            let send = if all_unsent {
                d.has_unsent()
            } else {
                d.save_due(now)
            };
            if !send {
                continue;
            }
            // What the reviewer saw when writing: the model's output and the folder's label.
            if prediction.is_some() {
                d.note.prediction = prediction;
            }
            if d.note.ground_truth.is_none() {
                d.note.ground_truth = folder_truth;
            }
            let revision = d.sending(now);
            let note = d.note.clone().with_location(&path);
            client.send(NotesRequest::Save {
                note: Box::new(note),
                revision,
                base: d.base,
            });
        }
    }

    /// On exit: every edit sent and written before the process ends (bounded wait).
    pub fn flush_notes_blocking(&mut self) {
        self.flush_notes(Instant::now());
        if let Some(client) = &self.notes.client {
            if !client.flush(EXIT_FLUSH) {
                tracing::error!("the notes database did not confirm the last save in time");
            }
        }
    }

    // ---- folder review ----------------------------------------------------------------

    /// Lists `dir` recursively and predicts every study in the background; the first study
    /// opens as soon as the list is there.
    pub fn start_review(&mut self, dir: &Path) {
        self.start_review_of(dir, None);
    }

    /// A study list of `files` opened together (absolute paths), under their common folder:
    /// predictions, filters, confusion matrix and Rescan as for a folder, over these files only.
    pub fn start_review_of_set(&mut self, files: Vec<PathBuf>) {
        let root = super::review::common_folder(&files);
        self.start_review_of(&root, Some(files));
    }

    /// [`Self::start_review`] of `dir`, or of `files` under it when given.
    pub(super) fn start_review_of(&mut self, dir: &Path, files: Option<Vec<PathBuf>>) {
        let dir = crate::io::folder_as_named(dir);
        // Recent reopens a folder; a set is remembered as a set, and by the film it opened on,
        // where it is opened ([`Self::open_dropped_files`]).
        if files.is_none() {
            self.settings.remember(&dir);
        }
        // The same folder or set again (Rescan, or reopened): its predictions of unchanged
        // files are kept, and so are the filter and the order it was shown in.
        let mut previous = None;
        if let Some(old) = self.review.take() {
            old.stop();
            if old.root == dir && old.files == files && old.listed {
                previous = Some(old);
            }
        }
        let engine = match &self.engine {
            EngineState::Ready(e) => e.clone(),
            EngineState::Loading => {
                self.pending_review = Some((dir, files));
                return;
            }
            EngineState::Failed(_) => {
                // No model, no predictions: plain folder browsing still works (a set is walked
                // as it was opened).
                if files.is_none() {
                    self.open_folder_plain(&dir);
                }
                return;
            }
        };
        let Some(out) = self.outbox() else {
            self.pending_review = Some((dir, files));
            return;
        };
        self.next_scan_id += 1;
        let mut review = Review::new(self.next_scan_id, dir.clone());
        review.files = files.clone();
        review.mc_samples = self.settings.mc_samples;
        let mut known = std::collections::HashMap::new();
        if let Some(old) = previous {
            review.filter = old.filter;
            review.out_of_scope_only = old.out_of_scope_only;
            review.sort = old.sort;
            review.descending = old.descending;
            if old.mc_samples == review.mc_samples {
                known = old.predicted_rows();
            }
        }
        worker::scan_folder(
            out,
            ScanSpec {
                scan_id: review.scan_id,
                root: dir,
                engine,
                mc_samples: self.settings.mc_samples,
                cancel: review.cancel.clone(),
                pause: review.pause.clone(),
                known,
                cache: self.prediction_cache.clone(),
                files,
            },
        );
        self.review = Some(review);
        self.settings.show_study_list = true;
    }

    pub(super) fn handle_review(&mut self, msg: ReviewMsg) {
        let Some(review) = self.review.as_mut() else {
            return;
        };
        match msg {
            ReviewMsg::Listed {
                scan_id,
                rows,
                truncated,
                other_formats,
            } if scan_id == review.scan_id => {
                // Rows a rescan kept come with their study ids.
                for r in &rows {
                    if let Some(id) = &r.id {
                        self.notes.ids.insert(r.path.clone(), id.clone());
                    }
                }
                review.set_rows(rows, truncated);
                let left_out = other_formats.summary();
                review.other_formats = other_formats;
                let root = review.root.clone();
                let on_screen = self
                    .current
                    .as_ref()
                    .is_some_and(|c| review.row_index(&c.path).is_some());
                // The study left on screen when this folder was last reviewed, if it is still
                // there (a reviewer back after a break goes on from it); else the top row of the
                // list as shown (sorted and filtered), so the position reads 1/N and Next goes
                // down the list from there. (Any row when a filter already set hides them all.)
                let rows = self.review.as_ref().map_or(&[][..], |r| &r.rows[..]);
                let resume = self.review.as_ref().and_then(|r| {
                    let left = self.settings.last_study.get(&root)?;
                    rows.get(r.row_index(left).filter(|_| r.files.is_none())?)
                });
                let first = resume
                    .or_else(|| self.review_visible().first().and_then(|&i| rows.get(i)))
                    .or_else(|| rows.first())
                    .map(|r| r.path.clone());
                let Some(first) = first else {
                    self.set_error(match left_out {
                        Some(left_out) => format!("no images in {}: {left_out}", root.display()),
                        None => format!("no images in {}", root.display()),
                    });
                    return;
                };
                if truncated {
                    self.set_error(format!(
                        "more than {} images: only the first are listed",
                        super::review::MAX_STUDIES
                    ));
                }
                if !on_screen {
                    self.open(first);
                }
            }
            ReviewMsg::Row {
                scan_id,
                path,
                id,
                result,
                scope,
                stamp,
            } if scan_id == review.scan_id => {
                if let Some(row) = review.row_mut(&path) {
                    row.id = id.clone();
                    row.scope = scope;
                    row.stamp = stamp;
                    match result {
                        Ok(p) => row.prediction = Some(p),
                        Err(e) => row.error = Some(e),
                    }
                }
                if let Some(id) = id {
                    self.notes.ids.insert(path, id);
                }
            }
            ReviewMsg::Finished { scan_id } if scan_id == review.scan_id => {
                review.finished = true;
            }
            _ => {}
        }
    }

    /// Each frame: the scan yields the CPU to the image on screen.
    pub(super) fn pace_review(&self) {
        if let Some(r) = &self.review {
            // A file that failed to load is not loading: waiting for it would stop the scan.
            let loading = self
                .current
                .as_ref()
                .is_some_and(|c| c.study.is_none() && c.error.is_none());
            r.pause.store(
                loading || self.jobs.interactive(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Rows the study list shows, in order.
    pub fn review_visible(&self) -> Vec<usize> {
        self.review
            .as_ref()
            .map(|r| r.visible(self.notes.all(), self.notes.revision()))
            .unwrap_or_default()
    }

    /// The study list, when the image on screen belongs to it (or nothing is on screen).
    pub fn reviewing_current(&self) -> Option<&Review> {
        let r = self.review.as_ref().filter(|r| r.listed)?;
        match &self.current {
            Some(c) if r.row_index(&c.path).is_none() => None,
            _ => Some(r),
        }
    }

    /// What next/previous walk: the study list as filtered and sorted, else the folder of the
    /// open file.
    pub fn navigation(&self) -> Vec<PathBuf> {
        match self.reviewing_current() {
            Some(r) => self
                .review_visible()
                .into_iter()
                .map(|i| r.rows[i].path.clone())
                .collect(),
            None => self.folder.clone(),
        }
    }

    /// The loaded model's output for `path`: the list's, else the analysis on screen.
    pub fn live_prediction(&self, path: &Path) -> Option<PredictionSnapshot> {
        if let Some(p) = self
            .review
            .as_ref()
            .and_then(|r| r.rows.get(r.row_index(path)?))
            .and_then(|row| row.prediction)
        {
            return Some(p);
        }
        if self.current.as_ref().is_none_or(|c| c.path != path) {
            return None;
        }
        let entry = self.current_entry()?;
        let prepared = entry.prepared.as_ref()?;
        let uncertain = entry
            .uncertainty
            .as_ref()
            .map(|_| self.uncertain_reason().is_some())?;
        Some(PredictionSnapshot::from_prediction(
            &prepared.prediction,
            uncertain,
            prepared.scope.in_scope,
        ))
    }

    /// A finding as the model names its class ("PNEUMONIA"), or a generic label without a model.
    pub fn class_name(&self, finding: Finding) -> String {
        self.engine().map_or_else(
            || finding.label().to_string(),
            |e| crate::notes::class_name(&e.model.config, finding),
        )
    }

    /// The label the folder layout gives `path`, if it is in the study list.
    pub fn folder_truth(&self, path: &Path) -> Option<Finding> {
        let r = self.review.as_ref()?;
        r.rows.get(r.row_index(path)?)?.folder_truth
    }
}
