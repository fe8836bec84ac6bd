//! What a review note says, independent of where it is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};

use super::error::{NotesError, NotesErrorKind};
pub use crate::explain::localisation::ImageBox;

/// Key of a note: stays the same when the file is renamed, moved or copied, so a note follows the
/// image rather than its path (see [`identity`](super::identity)).
///
/// `dicom:<SOPInstanceUID>` or `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StudyId(String);

impl StudyId {
    /// The UID is trimmed of the space/NUL padding DICOM allows, so the same instance read by
    /// different libraries gives one id.
    pub fn dicom(sop_instance_uid: &str) -> Result<Self, NotesError> {
        let uid = sop_instance_uid.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        Self::parse(&format!("dicom:{uid}"))
    }

    pub fn sha256(digest: &[u8; 32]) -> Self {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StudyId(format!("sha256:{hex}"))
    }

    /// Validates ids coming from imports or the database: a malformed id would never match a
    /// study again, so it is refused rather than stored.
    pub fn parse(s: &str) -> Result<Self, NotesError> {
        let invalid = |why: &str| {
            NotesError::new(
                NotesErrorKind::InvalidData,
                format!("study id '{}'", s.chars().take(80).collect::<String>()),
                why,
            )
        };
        if let Some(uid) = s.strip_prefix("dicom:") {
            // PS3.5 9.1: digits and dots, at most 64 characters.
            let ok = !uid.is_empty()
                && uid.len() <= 64
                && uid.chars().all(|c| c.is_ascii_digit() || c == '.');
            if !ok {
                return Err(invalid("a DICOM UID is 1-64 digits and dots"));
            }
        } else if let Some(hex) = s.strip_prefix("sha256:") {
            let ok = hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            if !ok {
                return Err(invalid("a SHA-256 is 64 lowercase hex digits"));
            }
        } else {
            return Err(invalid("expected 'dicom:<uid>' or 'sha256:<hex>'"));
        }
        Ok(StudyId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StudyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a closed vocabulary stored as snake_case tokens in the database and in exports, so
/// the token list, parsing and labels cannot drift apart.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident $(($hint:literal))? { $($(#[$vmeta:meta])* $variant:ident => $token:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in display order (for checkbox lists).
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The token used in the database and in exports.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $token,)+
                }
            }

            /// Human-readable, for the UI.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// A token in any case: a file corrected by hand or in a spreadsheet (which may
            /// capitalise a cell's first letter) says "Disagree" or "Positive" as often as not.
            pub fn parse(token: &str) -> Result<Self, NotesError> {
                let token = token.trim();
                $(if token.eq_ignore_ascii_case($token) {
                    return Ok($name::$variant);
                })+
                Err(NotesError::new(
                    NotesErrorKind::InvalidData,
                    format!("{} '{}'", stringify!($name), token.chars().take(80).collect::<String>()),
                    format!(
                        "expected one of {}{}",
                        [$($token),+].join(", "),
                        concat!($(" ", $hint)?)
                    ),
                ))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// As its token, the one exports and the database use (also as a JSON map key).
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The reviewer's verdict on the model's output for this study.
    Agreement {
        Agree => "agree", "Agree";
        Disagree => "disagree", "Disagree";
        Unsure => "unsure", "Unsure";
    }
}

vocabulary! {
    /// Why the model went wrong: the recurring causes named by misclassification analyses of
    /// chest-film classifiers, plus positioning and a catch-all.
    #[non_exhaustive]
    ErrorCategory {
        MotionBlur => "motion_blur", "Motion blur";
        IndeterminateOpacity => "indeterminate_opacity", "Indeterminate opacity";
        BonyShadow => "bony_shadow", "Rib or other bony shadow";
        DeviceArtifact => "device_artifact", "Device, ECG lead or artifact";
        LowContrast => "low_contrast", "Low contrast / under-exposure";
        TextMarker => "text_marker", "Text marker";
        Positioning => "positioning", "Positioning / rotation";
        Other => "other", "Other";
    }
}

vocabulary! {
    /// The six lung zones of [`crate::explain::zones`] (patient-right/left × upper/middle/lower),
    /// with the same tokens, so a note's zones can be compared with the maps' zone scores.
    Zone {
        RightUpper => "right_upper", "Right upper";
        RightMiddle => "right_middle", "Right middle";
        RightLower => "right_lower", "Right lower";
        LeftUpper => "left_upper", "Left upper";
        LeftMiddle => "left_middle", "Left middle";
        LeftLower => "left_lower", "Left lower";
    }
}

vocabulary! {
    /// The three maps the viewer shows, with the tokens of `metrics.json` (`localisation.*`).
    Saliency {
        GradCam => "gradcam", "Grad-CAM";
        IntegratedGradients => "ig", "Integrated Gradients";
        Uncertainty => "uncertainty", "Uncertainty (MC-dropout CAM std)";
    }
}

vocabulary! {
    /// A binary finding relative to the model's `positive_class` (from model.json), so notes do
    /// not hard-code class names.
    Finding ("(relative to the model's positive class: for the shipped model, PNEUMONIA is positive and NORMAL negative)") {
        Positive => "positive", "Positive";
        Negative => "negative", "Negative";
    }
}

vocabulary! {
    /// Confusion-matrix cell of one study.
    Outcome {
        TruePositive => "TP", "True positive";
        FalsePositive => "FP", "False positive";
        TrueNegative => "TN", "True negative";
        FalseNegative => "FN", "False negative";
    }
}

impl Outcome {
    pub fn of(truth: Finding, predicted: Finding) -> Outcome {
        match (truth, predicted) {
            (Finding::Positive, Finding::Positive) => Outcome::TruePositive,
            (Finding::Negative, Finding::Positive) => Outcome::FalsePositive,
            (Finding::Negative, Finding::Negative) => Outcome::TrueNegative,
            (Finding::Positive, Finding::Negative) => Outcome::FalseNegative,
        }
    }

    pub fn is_error(self) -> bool {
        matches!(self, Outcome::FalsePositive | Outcome::FalseNegative)
    }
}

impl Finding {
    /// The model's answer as a finding: its label is the positive class or not.
    pub fn of_prediction(p: &crate::analysis::Prediction) -> Finding {
        if p.label == p.positive_class {
            Finding::Positive
        } else {
            Finding::Negative
        }
    }
}

/// Where the ground truth of a study comes from, as the note pane and the report say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthSource {
    /// The film's class folder (`NORMAL/`, `PNEUMONIA/`), or the note's truth equal to it: a
    /// saved note records the folder's label as its own.
    Folder,
    /// The note's, differing from the folder's.
    Reviewer,
    /// The note's, with no folder label to compare it with.
    Note,
}

impl TruthSource {
    /// The truth of a study whose note says `noted` and whose folder says `folder`, and whence:
    /// the note's wins; one equal to the folder's is the folder's, and one with no folder to
    /// compare may be either.
    pub fn of(noted: Option<Finding>, folder: Option<Finding>) -> Option<(Finding, TruthSource)> {
        match (noted, folder) {
            (Some(t), Some(g)) if t == g => Some((t, TruthSource::Folder)),
            (Some(t), Some(_)) => Some((t, TruthSource::Reviewer)),
            (Some(t), None) => Some((t, TruthSource::Note)),
            (None, Some(t)) => Some((t, TruthSource::Folder)),
            (None, None) => None,
        }
    }

    /// As the report page says it.
    pub fn label(self) -> &'static str {
        match self {
            TruthSource::Folder => "from the folder",
            TruthSource::Reviewer => "set by the reviewer",
            TruthSource::Note => "recorded with the note",
        }
    }
}

/// A class name as a finding relative to the model's positive class; only binary models have a
/// "negative" class.
pub fn finding_of_class(config: &crate::model::ModelConfig, class: &str) -> Option<Finding> {
    let known = config
        .classes
        .iter()
        .find(|c| c.eq_ignore_ascii_case(class))?;
    if known.eq_ignore_ascii_case(&config.positive_class) {
        Some(Finding::Positive)
    } else if config.classes.len() == 2 {
        Some(Finding::Negative)
    } else {
        None
    }
}

/// The label class folders give a film in `folders` (relative to what was opened, innermost
/// last) below a folder named `base`: the nearest folder named like a class, `base` itself
/// last, so `PNEUMONIA/x.png`, `test/NORMAL/y.png`, or `y.png` in an opened `test/NORMAL`.
/// The viewer's study list and `analyze --notes` read the layout through this one rule.
pub fn class_of_folders(
    config: &crate::model::ModelConfig,
    folders: &std::path::Path,
    base: Option<&str>,
) -> Option<Finding> {
    folders
        .components()
        .rev()
        .filter_map(|c| c.as_os_str().to_str())
        .chain(base)
        .find_map(|name| finding_of_class(config, name))
}

/// The class name of a finding, as the model spells it.
pub fn class_of_finding(config: &crate::model::ModelConfig, finding: Finding) -> Option<&str> {
    match finding {
        Finding::Positive => Some(config.positive_class.as_str()),
        Finding::Negative if config.classes.len() == 2 => config
            .classes
            .iter()
            .find(|c| **c != config.positive_class)
            .map(String::as_str),
        Finding::Negative => None,
    }
}

/// [`class_of_finding`], or the finding's own label ("Negative") for a model whose classes do
/// not name it: what the note pane and the report page call a finding.
pub fn class_name(config: &crate::model::ModelConfig, finding: Finding) -> String {
    class_of_finding(config, finding).map_or_else(|| finding.label().to_string(), str::to_string)
}

/// What the model said when the note was written: the model (or its threshold) may change later,
/// and the outcome of a review must refer to the output the reviewer actually saw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictionSnapshot {
    pub predicted: Finding,
    /// Calibrated probability of the positive class.
    pub probability: f64,
    /// The engine's MC-dropout uncertainty flag ([`crate::analysis::uncertainty_flag`]) was raised.
    pub uncertain: bool,
    /// The scope guard ([`crate::scope`]) judged the film inside the model's scope; `None`: not
    /// recorded (a note written before the guard was, or imported without it). A verdict or an
    /// outcome on a film outside the scope says nothing about the model's errors on the films
    /// it is for, so exports carry this for filtering.
    pub in_scope: Option<bool>,
}

impl PredictionSnapshot {
    /// Equal, the probability at the model's own precision (f32): a spreadsheet that saves an
    /// export again keeps 15 significant digits ("0.982348740100861" for 0.9823487401008606),
    /// and such a copy must still count as the same note, not as one edited in the file.
    pub fn same_as(&self, other: &PredictionSnapshot) -> bool {
        self.predicted == other.predicted
            && (self.probability as f32) == (other.probability as f32)
            && self.uncertain == other.uncertain
            && self.in_scope == other.in_scope
    }

    /// `uncertain` comes from the MC-dropout stage and `in_scope` from the scope guard, neither
    /// part of [`Prediction`].
    ///
    /// [`Prediction`]: crate::analysis::Prediction
    pub fn from_prediction(
        p: &crate::analysis::Prediction,
        uncertain: bool,
        in_scope: bool,
    ) -> Self {
        PredictionSnapshot {
            predicted: Finding::of_prediction(p),
            // Through the shortest decimal form, so 0.9f32 is stored and exported as 0.9 rather
            // than 0.8999999761581421.
            probability: p
                .positive_probability
                .to_string()
                .parse()
                .unwrap_or(f64::from(p.positive_probability)),
            uncertain,
            in_scope: Some(in_scope),
        }
    }
}

/// One reviewer's note on one study.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub study: StudyId,
    /// `None` until the reviewer decides; the study then still counts as unreviewed.
    pub agreement: Option<Agreement>,
    pub categories: BTreeSet<ErrorCategory>,
    pub zones: BTreeSet<Zone>,
    /// Where the opacity is: rectangles in original image pixels (RSNA convention: top-left
    /// corner and size), in the order drawn.
    pub boxes: Vec<ImageBox>,
    pub text: String,
    pub reviewer: String,
    /// Set by the reviewer when the folder layout does not give the label; when set it takes
    /// precedence over the folder's, being a deliberate statement about this study.
    pub ground_truth: Option<Finding>,
    pub prediction: Option<PredictionSnapshot>,
    /// The zone with the highest mean of each map the reviewer had on screen, recorded with the
    /// prediction when the note is saved: what zone agreement compares the reviewer's zones with.
    pub map_top_zones: BTreeMap<Saliency, Zone>,
    /// Width and height of the film in pixels, recorded when saved, so boxes can be mapped to
    /// zones without the file.
    pub image_size: Option<(u32, u32)>,
    /// Last file name seen for the study; informational, never a key.
    pub file_name: Option<String>,
    /// Last full path seen; informational, and an identifier (folders often carry patient
    /// names), so exports leave it out unless asked.
    pub file_path: Option<String>,
    /// Set by the store; millisecond precision so it round-trips through exports exactly.
    pub created_at: DateTime<Utc>,
    /// Set by the store on every change; decides which copy wins when notes are merged.
    pub updated_at: DateTime<Utc>,
}

impl Note {
    /// An empty note for `study`; the store sets the timestamps when it is saved.
    pub fn new(study: StudyId) -> Self {
        let now = now_millis();
        Note {
            study,
            agreement: None,
            categories: BTreeSet::new(),
            zones: BTreeSet::new(),
            boxes: Vec::new(),
            text: String::new(),
            reviewer: String::new(),
            ground_truth: None,
            prediction: None,
            map_top_zones: BTreeMap::new(),
            image_size: None,
            file_name: None,
            file_path: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Records where the study was last seen (file name and full path).
    pub fn with_location(mut self, path: &std::path::Path) -> Self {
        self.file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        self.file_path = Some(path.to_string_lossy().into_owned());
        self
    }

    /// Outcome from the note's own ground truth and the prediction the reviewer saw.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome_given(None)
    }

    /// Like [`Note::outcome`], with the label the folder layout gives (e.g. `PNEUMONIA/`) used
    /// where the reviewer set none.
    pub fn outcome_given(&self, folder_truth: Option<Finding>) -> Option<Outcome> {
        let truth = self.ground_truth.or(folder_truth)?;
        Some(Outcome::of(truth, self.prediction?.predicted))
    }

    /// This note (an edit being saved) combined with `theirs`, a copy another writer (a second
    /// viewer on the same database) saved after this edit began: nothing either wrote is
    /// dropped. The text keeps ours and adds theirs after a marker, unless one contains the
    /// other (then the longer); categories, zones and boxes are the union; a verdict, ground
    /// truth, reviewer or recorded prediction is ours where we set one, else theirs. Without
    /// the common ancestor a removal on one side cannot be told from an addition on the other,
    /// so a removed category or box comes back: recoverable, unlike a lost comment. Timestamps
    /// and location are ours (the store sets them).
    pub fn merged_with(&self, theirs: &Note) -> Note {
        let mut out = self.clone();
        let (ours_text, their_text) = (self.text.trim(), theirs.text.trim());
        out.text = if their_text.is_empty() || ours_text.contains(their_text) {
            self.text.clone()
        } else if ours_text.is_empty() || their_text.contains(ours_text) {
            theirs.text.clone()
        } else {
            format!(
                "{}\n\n{MERGED_TEXT_MARKER}\n{}",
                self.text.trim_end(),
                theirs.text
            )
        };
        out.categories.extend(theirs.categories.iter().copied());
        out.zones.extend(theirs.zones.iter().copied());
        for b in &theirs.boxes {
            if out.boxes.len() < MAX_BOXES && !out.boxes.contains(b) {
                out.boxes.push(*b);
            }
        }
        out.agreement = self.agreement.or(theirs.agreement);
        out.ground_truth = self.ground_truth.or(theirs.ground_truth);
        if out.reviewer.trim().is_empty() {
            out.reviewer.clone_from(&theirs.reviewer);
        }
        out.prediction = self.prediction.or(theirs.prediction);
        for (map, zone) in &theirs.map_top_zones {
            out.map_top_zones.entry(*map).or_insert(*zone);
        }
        out.image_size = self.image_size.or(theirs.image_size);
        out
    }

    /// True when the review content (not the timestamps or the last-seen location) is the same,
    /// so saving an unchanged note neither writes nor moves `updated_at`, which would otherwise
    /// make an untouched copy win a later merge.
    pub fn same_content(&self, other: &Note) -> bool {
        self.study == other.study
            && self.agreement == other.agreement
            && self.categories == other.categories
            && self.zones == other.zones
            && self.boxes == other.boxes
            && self.text == other.text
            && self.reviewer == other.reviewer
            && self.ground_truth == other.ground_truth
            && match (self.prediction, other.prediction) {
                (Some(a), Some(b)) => a.same_as(&b),
                (None, None) => true,
                _ => false,
            }
            && self.map_top_zones == other.map_top_zones
            && self.image_size == other.image_size
    }

    /// Whether the reviewer has put anything in it (a verdict, a reason, a zone, a box, text or
    /// a ground truth); the prediction, location and times the viewer records alone do not count.
    pub fn has_review(&self) -> bool {
        self.agreement.is_some()
            || !self.categories.is_empty()
            || !self.zones.is_empty()
            || !self.boxes.is_empty()
            || !self.text.trim().is_empty()
            || self.ground_truth.is_some()
    }

    /// The reviewer's implicated zones together with the zones the boxes overlap (needs the
    /// recorded image size for the boxes).
    pub fn implicated_zones(&self) -> BTreeSet<Zone> {
        let mut zones = self.zones.clone();
        if let Some((w, h)) = self.image_size {
            for b in &self.boxes {
                for name in crate::explain::localisation::zones_of_box(b, (w as usize, h as usize))
                {
                    if let Ok(z) = Zone::parse(name) {
                        zones.insert(z);
                    }
                }
            }
        }
        zones
    }

    /// The zones the boxes overlap that are not ticked: what the note pane lists as "from
    /// boxes" beside the ticked ones.
    pub fn zones_from_boxes(&self) -> BTreeSet<Zone> {
        self.implicated_zones()
            .difference(&self.zones)
            .copied()
            .collect()
    }
}

/// Millisecond precision: what the database and exports keep, so timestamps compare equal after a
/// round trip.
pub(crate) fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Which studies a list shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    #[default]
    All,
    /// Outcome is a false positive or a false negative (needs a ground truth and a prediction).
    Misclassified,
    FalseNegatives,
    FalsePositives,
    /// The reviewer chose "unsure", or the model's MC-dropout flag was raised at review time.
    Uncertain,
    /// No agreement recorded yet (no note at all, or a note without a verdict).
    Unreviewed,
    /// The reviewer recorded something: a verdict, a reason, a zone, a box, text or a ground
    /// truth ([`Note::has_review`]). It had meant free text only, so a folder's boxes drawn
    /// without a comment, or labels imported from an RSNA file, read "Has note (0)".
    HasNote,
}

impl Filter {
    pub const ALL: &'static [Filter] = &[
        Filter::All,
        Filter::Misclassified,
        Filter::FalseNegatives,
        Filter::FalsePositives,
        Filter::Uncertain,
        Filter::Unreviewed,
        Filter::HasNote,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Misclassified => "Misclassified",
            Filter::FalseNegatives => "False negatives",
            Filter::FalsePositives => "False positives",
            Filter::Uncertain => "Uncertain",
            Filter::Unreviewed => "Unreviewed",
            Filter::HasNote => "Has note",
        }
    }

    /// The rule, for the filter's hover text.
    pub fn rule(self) -> &'static str {
        match self {
            Filter::All => "every study",
            Filter::Misclassified => {
                "false negatives and false positives: a ground truth (the note's, else the \
                 folder's) the model's answer differs from"
            }
            Filter::FalseNegatives => "truth positive, model negative",
            Filter::FalsePositives => "truth negative, model positive",
            Filter::Uncertain => "the MC-dropout flag was raised, or the reviewer chose Unsure",
            Filter::Unreviewed => "no verdict (Agree, Disagree, Unsure) yet",
            Filter::HasNote => {
                "a note with anything recorded in it: a verdict, a reason, a zone, a box, text or \
                 a ground truth"
            }
        }
    }

    /// Takes `Option` so the GUI can filter a folder's studies, most of which have no note, with
    /// the same rule the store uses.
    pub fn matches(self, note: Option<&Note>) -> bool {
        self.matches_given(note, None)
    }

    /// Like [`Filter::matches`], with the folder layout's label for studies whose note has none.
    pub fn matches_given(self, note: Option<&Note>, folder_truth: Option<Finding>) -> bool {
        self.matches_facts(&FilterFacts {
            outcome: note.and_then(|n| n.outcome_given(folder_truth)),
            model_uncertain: note.is_some_and(|n| n.prediction.is_some_and(|p| p.uncertain)),
            agreement: note.and_then(|n| n.agreement),
            has_note: note.is_some_and(Note::has_review),
        })
    }

    /// The one rule behind every filter. The store feeds it from notes alone; the viewer's study
    /// list feeds it the live prediction of studies that have no note yet.
    pub fn matches_facts(self, facts: &FilterFacts) -> bool {
        match self {
            Filter::All => true,
            Filter::Misclassified => facts.outcome.is_some_and(Outcome::is_error),
            Filter::FalseNegatives => facts.outcome == Some(Outcome::FalseNegative),
            Filter::FalsePositives => facts.outcome == Some(Outcome::FalsePositive),
            Filter::Uncertain => {
                facts.model_uncertain || facts.agreement == Some(Agreement::Unsure)
            }
            Filter::Unreviewed => facts.agreement.is_none(),
            Filter::HasNote => facts.has_note,
        }
    }
}

/// What [`Filter::matches_facts`] looks at for one study.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterFacts {
    /// Needs both a ground truth and a prediction.
    pub outcome: Option<Outcome>,
    /// The MC-dropout flag ([`crate::analysis::uncertainty_flag`]) was raised.
    pub model_uncertain: bool,
    pub agreement: Option<Agreement>,
    /// The study has a note with something of the reviewer's in it ([`Note::has_review`]).
    pub has_note: bool,
}

/// Summary of a set of notes, for a status line or a review dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub notes: usize,
    pub agree: usize,
    pub disagree: usize,
    pub unsure: usize,
    /// Notes without a verdict.
    pub unreviewed: usize,
    pub with_text: usize,
    /// Per outcome, for notes that have both a ground truth and a prediction.
    pub outcomes: BTreeMap<Outcome, usize>,
    pub categories: BTreeMap<ErrorCategory, usize>,
    pub zones: BTreeMap<Zone, usize>,
}

impl Counts {
    pub fn of<'a>(notes: impl IntoIterator<Item = &'a Note>) -> Counts {
        let mut c = Counts::default();
        for n in notes {
            c.notes += 1;
            match n.agreement {
                Some(Agreement::Agree) => c.agree += 1,
                Some(Agreement::Disagree) => c.disagree += 1,
                Some(Agreement::Unsure) => c.unsure += 1,
                None => c.unreviewed += 1,
            }
            if !n.text.trim().is_empty() {
                c.with_text += 1;
            }
            if let Some(o) = n.outcome() {
                *c.outcomes.entry(o).or_default() += 1;
            }
            for &k in &n.categories {
                *c.categories.entry(k).or_default() += 1;
            }
            for &z in &n.zones {
                *c.zones.entry(z).or_default() += 1;
            }
        }
        c
    }
}

/// Tokens joined with `;` (database column and CSV cell): no quoting needed, readable in a
/// spreadsheet.
pub(crate) fn join_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    tokens.into_iter().collect::<Vec<_>>().join(";")
}

pub(crate) fn split_tokens<T: Ord>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, NotesError>,
) -> Result<BTreeSet<T>, NotesError> {
    s.split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(parse)
        .collect()
}

/// `gradcam=right_lower;ig=left_middle` (database column, CSV cell).
pub(crate) fn join_top_zones(m: &BTreeMap<Saliency, Zone>) -> String {
    m.iter()
        .map(|(k, z)| format!("{}={}", k.as_str(), z.as_str()))
        .collect::<Vec<_>>()
        .join(";")
}

pub(crate) fn split_top_zones(s: &str) -> Result<BTreeMap<Saliency, Zone>, NotesError> {
    s.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (k, z) = t.split_once('=').ok_or_else(|| {
                NotesError::new(
                    NotesErrorKind::InvalidData,
                    format!("map top zone '{}'", t.chars().take(80).collect::<String>()),
                    "expected 'map=zone', e.g. gradcam=right_lower",
                )
            })?;
            Ok((Saliency::parse(k)?, Zone::parse(z)?))
        })
        .collect()
}

/// At most this many boxes per note: a few opacities per film, not a segmentation.
pub const MAX_BOXES: usize = 64;

/// The line [`Note::merged_with`] puts between this viewer's text and the text another viewer
/// saved meanwhile.
pub const MERGED_TEXT_MARKER: &str = "[also written in another viewer window:]";

/// Boxes as one text cell (database column, CSV cell): `x y width height` per box, boxes joined
/// with `;`, numbers in their shortest exact form so they round-trip bit for bit.
pub(crate) fn join_boxes(boxes: &[ImageBox]) -> String {
    boxes
        .iter()
        .map(|b| format!("{} {} {} {}", b.x, b.y, b.width, b.height))
        .collect::<Vec<_>>()
        .join(";")
}

/// Inverse of [`join_boxes`]; every box must be valid ([`ImageBox::is_valid`]).
pub(crate) fn split_boxes(s: &str) -> Result<Vec<ImageBox>, NotesError> {
    let boxes: Vec<ImageBox> = s
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let v: Vec<f32> = t
                .split([' ', ','])
                .filter(|x| !x.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad_box(t, "expected four numbers 'x y width height'"))?;
            match v[..] {
                [x, y, w, h] => Ok(ImageBox::new(x, y, w, h)),
                _ => Err(bad_box(t, "expected four numbers 'x y width height'")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_boxes(&boxes)?;
    Ok(boxes)
}

fn bad_box(t: &str, why: &str) -> NotesError {
    NotesError::new(
        NotesErrorKind::InvalidData,
        format!("box '{}'", t.chars().take(80).collect::<String>()),
        why,
    )
}

/// Every box valid, and not too many.
pub(crate) fn check_boxes(boxes: &[ImageBox]) -> Result<(), NotesError> {
    if let Some(b) = boxes.iter().find(|b| !b.is_valid()) {
        return Err(bad_box(
            &format!("{} {} {} {}", b.x, b.y, b.width, b.height),
            "a box needs finite numbers and a positive width and height",
        ));
    }
    if boxes.len() > MAX_BOXES {
        return Err(NotesError::new(
            NotesErrorKind::InvalidData,
            "boxes",
            format!("{} boxes; at most {MAX_BOXES} per note", boxes.len()),
        ));
    }
    Ok(())
}

/// Checks every box and drops exact repeats (a file imported with a box listed twice), keeping
/// the first of each.
pub(crate) fn dedup_boxes(boxes: Vec<ImageBox>) -> Result<Vec<ImageBox>, NotesError> {
    let mut out: Vec<ImageBox> = Vec::with_capacity(boxes.len());
    for b in boxes {
        if !out.contains(&b) {
            out.push(b);
        }
    }
    check_boxes(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_tokens_match_the_explanation_zones() {
        let tokens: Vec<&str> = Zone::ALL.iter().map(|z| z.as_str()).collect();
        assert_eq!(tokens, crate::explain::zones::ZONE_NAMES);
    }

    #[test]
    fn study_ids_are_validated() {
        assert!(StudyId::dicom("1.2.840.10008.1\0").is_ok());
        assert_eq!(StudyId::dicom(" 1.2.3 ").unwrap().as_str(), "dicom:1.2.3");
        assert!(StudyId::dicom("").is_err());
        assert!(StudyId::parse("dicom:1.2.a").is_err());
        assert!(StudyId::parse("sha256:abc").is_err());
        assert!(StudyId::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(StudyId::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(StudyId::parse("/home/x/a.png").is_err());
    }

    #[test]
    fn outcomes_and_filters() {
        let mut n = Note::new(StudyId::sha256(&[0; 32]));
        assert!(Filter::Unreviewed.matches(None));
        assert!(Filter::Unreviewed.matches(Some(&n)));
        assert!(!Filter::Misclassified.matches(Some(&n)));
        n.prediction = Some(PredictionSnapshot {
            predicted: Finding::Negative,
            probability: 0.2,
            uncertain: false,
            in_scope: Some(true),
        });
        // What the viewer records by itself is no note; a box drawn alone is one.
        assert!(!Filter::HasNote.matches(Some(&n)));
        let mut boxed = n.clone();
        boxed.boxes.push(ImageBox::new(1.0, 2.0, 3.0, 4.0));
        assert!(Filter::HasNote.matches(Some(&boxed)));
        // Folder says positive, the model said negative: a false negative.
        assert!(Filter::FalseNegatives.matches_given(Some(&n), Some(Finding::Positive)));
        // The reviewer's own ground truth wins over the folder's.
        n.ground_truth = Some(Finding::Negative);
        assert_eq!(
            n.outcome_given(Some(Finding::Positive)),
            Some(Outcome::TrueNegative)
        );
        n.agreement = Some(Agreement::Unsure);
        assert!(Filter::Uncertain.matches(Some(&n)));
        assert!(!Filter::Unreviewed.matches(Some(&n)));
        assert!(Filter::HasNote.matches(Some(&n)));
        n.text = "rib shadow over the right lower zone".into();
        assert!(Filter::HasNote.matches(Some(&n)));
        let c = Counts::of([&n]);
        assert_eq!((c.notes, c.unsure, c.with_text), (1, 1, 1));
        assert_eq!(c.outcomes.get(&Outcome::TrueNegative), Some(&1));
    }

    #[test]
    fn tokens_round_trip() {
        for &k in ErrorCategory::ALL {
            assert_eq!(ErrorCategory::parse(k.as_str()).unwrap(), k);
        }
        let set = split_tokens("motion_blur; other,,", ErrorCategory::parse).unwrap();
        assert_eq!(
            join_tokens(set.iter().map(|k| k.as_str())),
            "motion_blur;other"
        );
        assert!(ErrorCategory::parse("blurry").is_err());
    }
}
