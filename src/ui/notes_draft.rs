//! The note being edited and when to save it.
//!
//! Every edit bumps a revision; a save is due [`IDLE`] after the last keystroke, or at the latest
//! [`MAX_DELAY`] after the first unsaved one, so continuous typing is still saved every second
//! and killing the app loses at most the last second of typing. The database answers with the
//! revision it stored; a failed save (disk full, database locked by another program for longer
//! than the busy timeout) keeps the edit and retries every [`RETRY`], so nothing typed is dropped.
//!
//! Plain data and `Instant`s passed in: unit-testable without a clock or a database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::notes::Note;

/// Pause in typing after which the note is saved.
pub const IDLE: Duration = Duration::from_millis(400);
/// Longest an edit stays unsaved while the reviewer keeps typing.
pub const MAX_DELAY: Duration = Duration::from_millis(1000);
/// Wait between attempts after a failed save.
pub const RETRY: Duration = Duration::from_secs(2);

pub struct Draft {
    pub note: Note,
    /// The file the note is being written for (recorded as its last-seen location).
    pub path: PathBuf,
    /// `updated_at` of the stored copy this draft's content began from (`None`: there was no
    /// note). Sent with each save, so the store can tell another viewer's save in between
    /// ([`crate::notes::NotesStore::save_edit`]).
    pub base: Option<DateTime<Utc>>,
    revision: u64,
    sent: u64,
    saved: u64,
    first_unsaved: Option<Instant>,
    last_edit: Option<Instant>,
    last_attempt: Option<Instant>,
    pub error: Option<String>,
}

impl Draft {
    pub fn new(note: Note, path: PathBuf, base: Option<DateTime<Utc>>) -> Self {
        Self {
            note,
            path,
            base,
            revision: 0,
            sent: 0,
            saved: 0,
            first_unsaved: None,
            last_edit: None,
            last_attempt: None,
            error: None,
        }
    }

    /// Call after changing `note`.
    pub fn edited(&mut self, now: Instant) {
        self.revision += 1;
        self.last_edit = Some(now);
        self.first_unsaved.get_or_insert(now);
    }

    /// Nothing typed is waiting to be saved or acknowledged.
    pub fn is_saved(&self) -> bool {
        self.saved == self.revision
    }

    /// Untouched since it was loaded: safe to replace by a fresher copy from the database.
    pub fn is_pristine(&self) -> bool {
        self.revision == 0
    }

    /// An edit is waiting and it is time to send it.
    pub fn save_due(&self, now: Instant) -> bool {
        if self.sent == self.revision {
            return false;
        }
        if self.error.is_some() {
            return self.last_attempt.is_none_or(|t| now >= t + RETRY);
        }
        let idle = self.last_edit.is_some_and(|t| now >= t + IDLE);
        let overdue = self.first_unsaved.is_some_and(|t| now >= t + MAX_DELAY);
        idle || overdue
    }

    /// An edit is waiting, whether or not it is due (switching study or quitting saves at once).
    pub fn has_unsent(&self) -> bool {
        self.sent != self.revision
    }

    /// When [`Self::save_due`] will next become true, for scheduling a repaint.
    pub fn next_due(&self) -> Option<Instant> {
        if !self.has_unsent() {
            return None;
        }
        if self.error.is_some() {
            return Some(self.last_attempt.map_or_else(Instant::now, |t| t + RETRY));
        }
        let idle = self.last_edit.map(|t| t + IDLE);
        let overdue = self.first_unsaved.map(|t| t + MAX_DELAY);
        match (idle, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Marks the current revision as sent; returns it for the answer to refer to.
    pub fn sending(&mut self, now: Instant) -> u64 {
        self.sent = self.revision;
        self.last_attempt = Some(now);
        self.first_unsaved = None;
        self.revision
    }

    /// The database stored `revision` as `stored` (its timestamps are the store's), merged with
    /// `merged`, another viewer's copy saved after this draft's base, if there was one. The draft
    /// then takes the merge in: as stored when nothing was typed since `revision`, else its
    /// newer content merged the same way, which the next save writes over `stored`.
    pub fn saved(&mut self, revision: u64, stored: &Note, merged: Option<&Note>) {
        self.saved = self.saved.max(revision);
        self.error = None;
        match merged {
            Some(_) if revision == self.revision => self.note = stored.clone(),
            Some(theirs) => self.note = self.note.merged_with(theirs),
            None => {}
        }
        self.note.created_at = stored.created_at;
        self.note.updated_at = stored.updated_at;
        self.base = Some(stored.updated_at);
    }

    /// A fresher stored copy replaces an untouched draft (another viewer may have saved it).
    pub fn refreshed(&mut self, stored: Note) {
        if self.is_pristine() {
            self.base = Some(stored.updated_at);
            self.note = stored;
        }
    }

    /// Saving `revision` failed: keep the text, try again after [`RETRY`].
    pub fn failed(&mut self, revision: u64, error: String, now: Instant) {
        if revision > self.saved {
            self.sent = self.saved;
            self.error = Some(error);
            self.first_unsaved.get_or_insert(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::StudyId;

    fn draft() -> Draft {
        Draft::new(
            Note::new(StudyId::sha256(&[7; 32])),
            PathBuf::from("x.png"),
            None,
        )
    }

    #[test]
    fn saves_after_a_pause_or_after_a_second_of_continuous_typing() {
        let t0 = Instant::now();
        let mut d = draft();
        assert!(d.is_saved() && d.is_pristine() && !d.save_due(t0));
        // A keystroke every 100 ms: not idle, but due one second after the first.
        for k in 0..10 {
            let t = t0 + Duration::from_millis(100 * k);
            d.edited(t);
            assert!(!d.save_due(t + Duration::from_millis(50)), "at {k}");
        }
        assert!(d.save_due(t0 + MAX_DELAY));
        assert_eq!(d.next_due(), Some(t0 + MAX_DELAY));
        let rev = d.sending(t0 + MAX_DELAY);
        assert!(!d.save_due(t0 + Duration::from_secs(5)));
        assert!(!d.is_saved());
        let stored = d.note.clone();
        d.saved(rev, &stored, None);
        assert!(d.is_saved() && !d.is_pristine());

        // One keystroke then silence: due after IDLE.
        let t1 = t0 + Duration::from_secs(10);
        d.edited(t1);
        assert!(!d.save_due(t1 + IDLE - Duration::from_millis(1)));
        assert!(d.save_due(t1 + IDLE));
    }

    #[test]
    fn a_failed_save_keeps_the_edit_and_retries() {
        let t0 = Instant::now();
        let mut d = draft();
        d.note.text = "rib shadow".into();
        d.edited(t0);
        let rev = d.sending(t0 + IDLE);
        d.failed(rev, "database is locked".into(), t0 + IDLE);
        assert_eq!(d.note.text, "rib shadow");
        assert!(!d.is_saved());
        assert!(!d.save_due(t0 + IDLE + Duration::from_millis(100)));
        assert!(d.save_due(t0 + IDLE + RETRY));
        let rev2 = d.sending(t0 + IDLE + RETRY);
        assert_eq!(rev2, rev);
        let stored = d.note.clone();
        d.saved(rev2, &stored, None);
        assert!(d.is_saved() && d.error.is_none());
    }

    /// Another viewer saved the note after this draft began: the store merged; the draft takes
    /// the merge in, as stored when nothing was typed meanwhile, else merged with the newer
    /// text, which the next save then writes.
    #[test]
    fn a_save_merged_with_another_viewers_copy_is_taken_into_the_draft() {
        let t0 = Instant::now();
        let mut theirs = draft().note;
        theirs.text = "their comment".into();
        let merge = |d: &Draft, text: &str| {
            let mut sent = d.note.clone();
            sent.text = text.into();
            let mut stored = sent.merged_with(&theirs);
            stored.updated_at = d.note.updated_at + chrono::TimeDelta::seconds(5);
            stored
        };

        let mut d = draft();
        d.note.text = "mine".into();
        d.edited(t0);
        let rev = d.sending(t0 + IDLE);
        let stored = merge(&d, "mine");
        d.saved(rev, &stored, Some(&theirs));
        assert_eq!(d.note, stored);
        assert_eq!(d.base, Some(stored.updated_at));
        assert!(d.is_saved());

        let mut d = draft();
        d.note.text = "mine".into();
        d.edited(t0);
        let rev = d.sending(t0 + IDLE);
        d.note.text = "mine, and more".into();
        d.edited(t0 + IDLE + Duration::from_millis(10));
        let stored = merge(&d, "mine");
        d.saved(rev, &stored, Some(&theirs));
        assert!(
            d.note.text.starts_with("mine, and more") && d.note.text.ends_with("their comment")
        );
        assert_eq!(d.base, Some(stored.updated_at));
        assert!(!d.is_saved(), "the newer text is still to be written");
    }

    #[test]
    fn an_edit_made_while_a_save_is_in_flight_is_saved_too() {
        let t0 = Instant::now();
        let mut d = draft();
        d.edited(t0);
        let first = d.sending(t0 + IDLE);
        d.edited(t0 + IDLE + Duration::from_millis(10));
        let stored = d.note.clone();
        d.saved(first, &stored, None);
        assert!(!d.is_saved(), "the second edit is not on disk yet");
        assert!(d.save_due(t0 + IDLE * 2 + Duration::from_millis(10)));
        // A late failure of the first save does not undo the second's bookkeeping.
        d.failed(first, "late".into(), t0 + IDLE * 3);
        assert!(d.error.is_none());
    }
}
