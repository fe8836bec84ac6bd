//! Box labels in the RSNA Pneumonia Detection Challenge format (2018, `stage_2_train_labels.csv`):
//! a header `patientId,x,y,width,height,Target`, one row per box of a positive film (`Target` 1,
//! `(x, y)` the top-left corner, sizes in pixels of the original image) and one row with empty
//! box fields for a negative film (`Target` 0). Extra columns (e.g. `class`) are ignored on read.
//!
//! `patientId` is the file stem (RSNA names each DICOM `<patientId>.dcm`); the viewer writes the
//! stem of the note's last-seen file name, which is already in every notes export, so nothing
//! identifying is added.
//!
//! Read back into the notes (`notes import --rsna --data FOLDER`, [`notes_from_labels`] and
//! [`super::NotesStore::add_labels`]), a labels file gives each film of the folder whose stem it
//! names its reference boxes and a ground truth: `Target` 1 positive, `Target` 0 negative. RSNA's
//! `Target` 0 covers both "Normal" and "No Lung Opacity / Not Normal" (Shih et al. 2019,
//! Radiology: AI 1(1) e180041), so negative means "no pneumonia-like opacity", as `eval --boxes`
//! also reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::error::{NotesError, NotesErrorKind};
use super::model::{dedup_boxes, Finding, ImageBox, Note};

/// The boxes of a labels file, by `patientId`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsnaLabels {
    /// Films with `Target` 1 and their boxes (exact repeats dropped).
    pub boxes: BTreeMap<String, Vec<ImageBox>>,
    /// Films with a `Target` 0 row.
    pub negatives: BTreeSet<String>,
}

impl RsnaLabels {
    /// Every `patientId` the file names, with boxes or with a `Target` 0 row.
    pub fn patient_ids(&self) -> BTreeSet<&str> {
        self.boxes
            .keys()
            .chain(&self.negatives)
            .map(String::as_str)
            .collect()
    }

    /// The files of `files` the labels name ([`patient_id_of_file`]), each with whether it is
    /// positive (has boxes; a name both with boxes and with a `Target` 0 row counts as
    /// positive); files the labels do not name are left out.
    pub fn labelled(&self, files: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        files
            .iter()
            .filter_map(|p| {
                let id = patient_id_of_file(p);
                if self.boxes_of(&id).is_some() {
                    Some((p.clone(), true))
                } else if self.negatives.contains(&id) {
                    Some((p.clone(), false))
                } else {
                    None
                }
            })
            .collect()
    }

    /// The boxes of the file whose stem is `stem`, if it has any.
    pub fn boxes_of(&self, stem: &str) -> Option<&[ImageBox]> {
        self.boxes
            .get(stem)
            .map(Vec::as_slice)
            .filter(|b| !b.is_empty())
    }
}

pub const RSNA_HEADER: &str = "patientId,x,y,width,height,Target";

/// Parses a labels file's text; `source` names it in errors ("labels.csv line 3: ...").
pub fn parse_labels(text: &str, source: &str) -> Result<RsnaLabels, NotesError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(super::transfer::csv_delimiter(text))
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| {
            NotesError::new(
                NotesErrorKind::InvalidData,
                source,
                "cannot read the header",
            )
            .with_source(e)
        })?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                NotesError::new(
                    NotesErrorKind::InvalidData,
                    source,
                    format!("no '{name}' column; expected the RSNA header {RSNA_HEADER}"),
                )
            })
    };
    let cols = [
        column("patientId")?,
        column("x")?,
        column("y")?,
        column("width")?,
        column("height")?,
        column("Target")?,
    ];
    let mut labels = RsnaLabels::default();
    let mut raw: BTreeMap<String, Vec<ImageBox>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| super::transfer::malformed_row(source, e))?;
        let place = format!("{source} line {}", row.position().map_or(0, |p| p.line()));
        let cell = |i: usize| row.get(cols[i]).unwrap_or("").trim();
        let bad = |why: String| NotesError::new(NotesErrorKind::InvalidData, &place, why);
        let id = cell(0);
        if id.is_empty() {
            return Err(bad("empty patientId".into()));
        }
        let target = cell(5);
        match target {
            "0" => {
                labels.negatives.insert(id.to_string());
            }
            "1" => {
                let mut v = [0f32; 4];
                for (k, slot) in v.iter_mut().enumerate() {
                    let text = cell(k + 1);
                    *slot = text.parse().map_err(|_| {
                        bad(format!(
                            "{} '{}' is not a number (Target 1 needs a box)",
                            ["x", "y", "width", "height"][k],
                            text.chars().take(40).collect::<String>()
                        ))
                    })?;
                }
                let b = ImageBox::new(v[0], v[1], v[2], v[3]);
                if !b.is_valid() {
                    return Err(bad(format!(
                        "box {} {} {} {} needs a positive width and height",
                        v[0], v[1], v[2], v[3]
                    )));
                }
                raw.entry(id.to_string()).or_default().push(b);
            }
            other => {
                return Err(bad(format!(
                    "Target '{}' (expected 0 or 1)",
                    other.chars().take(20).collect::<String>()
                )))
            }
        }
    }
    for (id, boxes) in raw {
        let boxes = dedup_boxes(boxes).map_err(|e| {
            NotesError::new(NotesErrorKind::InvalidData, source, format!("{id}: {e}"))
        })?;
        labels.boxes.insert(id, boxes);
    }
    Ok(labels)
}

/// Reads and parses a labels file.
pub fn read_labels(path: &Path) -> Result<RsnaLabels, NotesError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        NotesError::new(
            NotesErrorKind::Io,
            path.display().to_string(),
            "cannot read",
        )
        .with_source(e)
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_labels(&text, &name)
}

/// The `patientId` RSNA gives a file: its name without the extension.
pub fn patient_id_of_file(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether CSV columns are an RSNA labels file's (`patientId` and `Target`, and no notes-export
/// `study_id`): how a labels file is told from a notes export, by the viewer's *Import notes…*
/// and by the advice of a refused import.
pub fn is_labels_header<'a>(columns: impl IntoIterator<Item = &'a str>) -> bool {
    let columns: Vec<&str> = columns.into_iter().map(str::trim).collect();
    let has = |name: &str| columns.contains(&name);
    has("patientId") && has("Target") && !has("study_id")
}

/// Whether `path` starts like an RSNA labels file ([`is_labels_header`]), so that the viewer's
/// one *Import notes…* button can take either. Reads the first line only.
pub fn is_labels_file(path: &Path) -> bool {
    use std::io::{BufRead, Read};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    // A header is short; a binary file without a newline must not be read whole.
    let read = std::io::BufReader::new(file)
        .take(64 * 1024)
        .read_line(&mut first);
    if read.is_err() {
        return false;
    }
    let first = first.trim_start_matches('\u{feff}');
    let delimiter = char::from(super::transfer::csv_delimiter(first));
    is_labels_header(first.split(delimiter).map(|c| c.trim().trim_matches('"')))
}

/// The `patientId` of a note: its last-seen file's stem, else the study id.
pub fn patient_id_of(note: &Note) -> String {
    note.file_name
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_stem)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| note.study.to_string())
}

/// Notes as an RSNA labels file: one `Target` 1 row per box; a note without boxes whose ground
/// truth is negative gives one `Target` 0 row; other notes (no boxes, positive or unknown truth)
/// say nothing about where an opacity is and are left out. Sorted by `patientId`.
pub fn export_rsna(notes: &[Note]) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for n in notes {
        let id = patient_id_of(n);
        if n.boxes.is_empty() {
            if n.ground_truth == Some(Finding::Negative) {
                rows.push((id.clone(), format!("{},,,,,0", csv_cell(&id))));
            }
            continue;
        }
        for b in &n.boxes {
            rows.push((
                id.clone(),
                format!(
                    "{},{},{},{},{},1",
                    csv_cell(&id),
                    b.x,
                    b.y,
                    b.width,
                    b.height
                ),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = format!("{RSNA_HEADER}\n");
    for (_, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

/// The notes a labels file gives the films of a folder ([`notes_from_labels`]).
#[derive(Debug, Default)]
pub struct LabelNotes {
    /// One per labelled film read, in the order of `files`: the label's boxes, ground truth and
    /// the film's size (so boxes map to zones without the file) and location.
    pub notes: Vec<Note>,
    /// Labelled files that could not be read, with the one-line reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// `patientId`s of the labels with no file of that stem among the files, sorted.
    pub missing: Vec<String>,
}

/// Reads every file of `files` that `labels` names ([`RsnaLabels::labelled`]; in parallel: a
/// DICOM's study id is its SOPInstanceUID, and the film's size is the one the viewer shows, after
/// any EXIF rotation, so each film is loaded as the viewer loads it) and makes its label's note.
/// `progress(done, total)` is called after each labelled file (from the reading threads); a
/// folder of RSNA's 26,684 films takes minutes.
///
/// Refused, with the line the CLI and the viewer show, when there is nothing to add: no file
/// named after a `patientId` of `source` (the labels file's name) in `folder`, or none of them
/// readable.
pub fn notes_from_labels(
    files: &[PathBuf],
    labels: &RsnaLabels,
    source: &str,
    folder: &str,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<LabelNotes, String> {
    let labelled = labels.labelled(files);
    let ids = labels.patient_ids();
    if labelled.is_empty() {
        return Err(format!(
            "no file in {folder} is named after one of the {} patientIds of {source} (a \
             patientId is matched to a file's name without its extension)",
            ids.len()
        ));
    }
    let found: BTreeSet<String> = labelled
        .iter()
        .map(|(p, _)| patient_id_of_file(p))
        .collect();
    let missing = ids
        .into_iter()
        .filter(|id| !found.contains(*id))
        .map(str::to_string)
        .collect();
    let done = AtomicUsize::new(0);
    let read: Vec<Result<Note, (PathBuf, String)>> = labelled
        .par_iter()
        .map(|(path, positive)| {
            let boxes = positive
                .then(|| labels.boxes_of(&patient_id_of_file(path)))
                .flatten();
            let note = label_note(path, boxes).map_err(|e| (path.clone(), e));
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, labelled.len());
            note
        })
        .collect();
    let mut out = LabelNotes {
        missing,
        ..LabelNotes::default()
    };
    for r in read {
        match r {
            Ok(note) => out.notes.push(note),
            Err(skipped) => out.skipped.push(skipped),
        }
    }
    if let (true, Some((path, why))) = (out.notes.is_empty(), out.skipped.first()) {
        return Err(format!(
            "none of the {} files in {folder} that {source} names could be read ({}: {why})",
            out.skipped.len(),
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    Ok(out)
}

/// The note of one labelled film: `boxes` for a positive, `None` for a negative.
fn label_note(path: &Path, boxes: Option<&[ImageBox]>) -> Result<Note, String> {
    let study = crate::io::load_study(path).map_err(|e| crate::text::one_line(&e.to_string()))?;
    let id = super::identity::study_id(path, &study)
        .map_err(|e| crate::text::one_line(&e.to_string()))?;
    let mut note = Note::new(id).with_location(path);
    note.image_size = Some((study.width as u32, study.height as u32));
    match boxes {
        Some(boxes) => {
            note.boxes = boxes.to_vec();
            note.ground_truth = Some(Finding::Positive);
        }
        None => note.ground_truth = Some(Finding::Negative),
    }
    Ok(note)
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::StudyId;

    #[test]
    fn labels_parse_positives_negatives_and_refuse_bad_rows() {
        let text = "patientId,x,y,width,height,Target,class\n\
                    a,10,20,30,40,1,Lung Opacity\n\
                    a,10,20,30,40,1,Lung Opacity\n\
                    a,100.5,0,5,5,1,Lung Opacity\n\
                    b,,,,,0,Normal\n";
        let l = parse_labels(text, "l.csv").unwrap();
        assert_eq!(
            l.boxes_of("a").unwrap(),
            [
                ImageBox::new(10.0, 20.0, 30.0, 40.0),
                ImageBox::new(100.5, 0.0, 5.0, 5.0)
            ]
        );
        assert!(l.boxes_of("b").is_none());
        assert!(l.negatives.contains("b"));
        let e = parse_labels("patientId,x,y,width,height,Target\nc,,,,,1\n", "l.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("l.csv line 2: x '' is not a number"), "{e}");
        let e = parse_labels("patientId,x,y\n", "l.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no 'width' column"), "{e}");
    }

    /// LibreOffice Calc 7.4 in German saves the labels with `;` between the cells (as here:
    /// the challenge's file opened and saved with its defaults); they read as the original.
    /// Until the forty-first session: "no 'patientId' column", and the viewer's *Import
    /// notes…* took the file for a notes export.
    #[test]
    fn labels_saved_by_a_spreadsheet_with_semicolons_read_as_the_original() {
        let original = "patientId,x,y,width,height,Target,class\n\
                        a,505.0,399.0,242.0,414.0,1,Lung Opacity\n\
                        b,,,,,0,Normal\n";
        let saved = "patientId;x;y;width;height;Target;class\n\
                     a;505.0;399.0;242.0;414.0;1;Lung Opacity\n\
                     b;;;;;0;Normal\n";
        let l = parse_labels(saved, "l.csv").unwrap();
        assert_eq!(l, parse_labels(original, "l.csv").unwrap());
        assert_eq!(
            l.boxes_of("a").unwrap(),
            [ImageBox::new(505.0, 399.0, 242.0, 414.0)]
        );
        assert!(l.negatives.contains("b"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, saved).unwrap();
        assert!(is_labels_file(&path));
    }

    /// The viewer's *Import notes…* tells a labels file from a notes export by its header alone.
    #[test]
    fn a_labels_file_is_told_from_a_notes_export_by_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(is_labels_file(&file(
            "a.csv",
            b"patientId,x,y,width,height,Target,class\na,1,2,3,4,1,Lung Opacity\n"
        )));
        assert!(is_labels_file(&file(
            "bom.csv",
            "\u{feff}\"patientId\",x,y,width,height,\"Target\"\r\n".as_bytes()
        )));
        assert!(!is_labels_file(&file(
            "export.csv",
            b"study_id,updated_at,patientId,Target\n"
        )));
        assert!(!is_labels_file(&file("x.json", b"{\"notes\": []}")));
        assert!(!is_labels_file(&file("bin.dat", &[0xff; 200_000])));
        assert!(!is_labels_file(&dir.path().join("missing.csv")));
    }

    #[test]
    fn export_writes_boxes_and_negatives_and_reads_back() {
        let mut a = Note::new(StudyId::sha256(&[1; 32]));
        a.file_name = Some("0c89ca38.dcm".into());
        a.boxes = vec![ImageBox::new(153.0, 369.0, 257.0, 181.0)];
        let mut b = Note::new(StudyId::sha256(&[2; 32]));
        b.file_name = Some("normal.png".into());
        b.ground_truth = Some(Finding::Negative);
        let c = Note::new(StudyId::sha256(&[3; 32]));
        let text = export_rsna(&[b.clone(), a.clone(), c]);
        assert_eq!(
            text,
            "patientId,x,y,width,height,Target\n0c89ca38,153,369,257,181,1\nnormal,,,,,0\n"
        );
        let back = parse_labels(&text, "x").unwrap();
        assert_eq!(back.boxes_of("0c89ca38").unwrap(), a.boxes.as_slice());
        assert!(back.negatives.contains("normal"));
    }
}
