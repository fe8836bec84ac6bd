//! Export and import of notes as CSV or JSON, for sharing reviews and for analysis elsewhere.
//!
//! Exports carry no patient identifiers unless asked: the study id (a DICOM instance UID or a
//! content hash), the file *name*, the review and the model's output. The full path is left out by
//! default because folder names often carry patient names or record numbers.
//!
//! Both formats hold the same fields; `outcome` (TP/FP/TN/FN) is derived and ignored on import.
//! CSV list cells (`categories`, `zones`) are `;`-joined tokens; `boxes` (image pixels) is
//! `x y width height` per box, `;`-joined, in CSV and a list of `{x, y, width, height}` in JSON.
//! Format version 2 added `boxes`, version 3 `model_in_scope` (the scope guard's verdict when the
//! note was written; empty when not recorded); older files still import.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{NotesError, NotesErrorKind};
use super::model::{
    dedup_boxes, join_boxes, join_tokens, split_boxes, split_tokens, split_top_zones, Agreement,
    ErrorCategory, Finding, ImageBox, Note, PredictionSnapshot, StudyId, Zone,
};
use super::store::{format_time, parse_time, MergeReport, NotesStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// By extension, so the CLI and the GUI's save dialog need no separate format switch.
    pub fn from_path(path: &Path) -> Result<Format, NotesError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            _ => Err(NotesError::new(
                NotesErrorKind::UnknownFormat,
                path.display().to_string(),
                "expected a .csv or .json file",
            )),
        }
    }
}

/// What an export may contain. `Default` is safe to share: no paths.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    include_paths: bool,
    rsna: bool,
}

impl ExportOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the last-seen full path of each study (an identifier: only when the user asks).
    pub fn with_paths(mut self, include_paths: bool) -> Self {
        self.include_paths = include_paths;
        self
    }

    /// Writes only the boxes, as an RSNA labels CSV ([`super::rsna::export_rsna`]).
    pub fn with_rsna(mut self, rsna: bool) -> Self {
        self.rsna = rsna;
        self
    }
}

const FORMAT_NAME: &str = "cxr-viewer-notes";
const FORMAT_VERSION: u32 = 3;

/// Flat form shared by both formats.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Record {
    study_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_path: Option<String>,
    agreement: Option<String>,
    categories: Vec<String>,
    zones: Vec<String>,
    boxes: Vec<ImageBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_height: Option<u32>,
    /// Map token → zone token.
    map_top_zones: std::collections::BTreeMap<String, String>,
    ground_truth: Option<String>,
    predicted: Option<String>,
    probability: Option<f64>,
    model_uncertain: Option<bool>,
    model_in_scope: Option<bool>,
    outcome: Option<String>,
    reviewer: String,
    created_at: String,
    updated_at: String,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct JsonExport {
    format: String,
    version: u32,
    notes: Vec<Record>,
    /// Derived (ignored on import): reviewer zones against each map's top zone.
    #[serde(default, skip_deserializing)]
    zone_agreement: Vec<super::zone_agreement::ZoneAgreementRow>,
}

/// Accepts the export's envelope, or a bare array of notes written by hand or another tool.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonImport {
    Envelope(JsonExport),
    Bare(Vec<Record>),
}

impl Record {
    fn from_note(n: &Note, options: &ExportOptions) -> Record {
        Record {
            study_id: n.study.to_string(),
            file_name: n.file_name.clone(),
            file_path: n.file_path.clone().filter(|_| options.include_paths),
            agreement: n.agreement.map(|a| a.as_str().to_string()),
            categories: n
                .categories
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            zones: n.zones.iter().map(|z| z.as_str().to_string()).collect(),
            boxes: n.boxes.clone(),
            image_width: n.image_size.map(|s| s.0),
            image_height: n.image_size.map(|s| s.1),
            map_top_zones: n
                .map_top_zones
                .iter()
                .map(|(k, z)| (k.as_str().to_string(), z.as_str().to_string()))
                .collect(),
            ground_truth: n.ground_truth.map(|g| g.as_str().to_string()),
            predicted: n.prediction.map(|p| p.predicted.as_str().to_string()),
            probability: n.prediction.map(|p| p.probability),
            model_uncertain: n.prediction.map(|p| p.uncertain),
            model_in_scope: n.prediction.and_then(|p| p.in_scope),
            outcome: n.outcome().map(|o| o.as_str().to_string()),
            reviewer: n.reviewer.clone(),
            created_at: format_time(&n.created_at),
            updated_at: format_time(&n.updated_at),
            text: n.text.clone(),
        }
    }

    fn into_note(self) -> Result<Note, NotesError> {
        let empty_to_none = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        if self.updated_at.trim().is_empty() {
            return Err(NotesError::new(
                NotesErrorKind::InvalidData,
                "updated_at",
                "missing; it decides which copy of a note wins",
            ));
        }
        let updated_at = parse_time(&self.updated_at)?;
        let created_at = if self.created_at.trim().is_empty() {
            updated_at
        } else {
            parse_time(&self.created_at)?
        };
        let predicted = empty_to_none(self.predicted)
            .as_deref()
            .map(Finding::parse)
            .transpose()?;
        let prediction = match (predicted, self.probability) {
            (Some(predicted), Some(probability)) => Some(PredictionSnapshot {
                predicted,
                probability,
                uncertain: self.model_uncertain.unwrap_or(false),
                in_scope: self.model_in_scope,
            }),
            (None, None) => None,
            _ => {
                return Err(NotesError::new(
                    NotesErrorKind::InvalidData,
                    "predicted/probability",
                    "give both or neither",
                ))
            }
        };
        let categories = self
            .categories
            .iter()
            .map(|t| split_tokens(t, ErrorCategory::parse))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let zones = self
            .zones
            .iter()
            .map(|t| split_tokens(t, Zone::parse))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let map_top_zones = split_top_zones(
            &self
                .map_top_zones
                .iter()
                .map(|(k, z)| format!("{k}={z}"))
                .collect::<Vec<_>>()
                .join(";"),
        )?;
        let image_size = match (self.image_width, self.image_height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Some((w, h)),
            (None, None) => None,
            _ => {
                return Err(NotesError::new(
                    NotesErrorKind::InvalidData,
                    "image_width/image_height",
                    "give both, positive, or neither",
                ))
            }
        };
        Ok(Note {
            study: StudyId::parse(self.study_id.trim())?,
            agreement: empty_to_none(self.agreement)
                .as_deref()
                .map(Agreement::parse)
                .transpose()?,
            categories,
            zones,
            boxes: dedup_boxes(self.boxes)?,
            text: self.text,
            reviewer: self.reviewer,
            ground_truth: empty_to_none(self.ground_truth)
                .as_deref()
                .map(Finding::parse)
                .transpose()?,
            prediction,
            map_top_zones,
            image_size,
            file_name: empty_to_none(self.file_name),
            file_path: empty_to_none(self.file_path),
            created_at,
            updated_at,
        })
    }
}

const CSV_HEADER: &[&str] = &[
    "study_id",
    "file_name",
    "file_path",
    "agreement",
    "categories",
    "zones",
    "boxes",
    "image_width",
    "image_height",
    "map_top_zones",
    "ground_truth",
    "predicted",
    "probability",
    "model_uncertain",
    "model_in_scope",
    "outcome",
    "reviewer",
    "created_at",
    "updated_at",
    "text",
];

/// CSV form of [`Record`]: the list cells are `;`-joined.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsvRecord {
    study_id: String,
    file_name: Option<String>,
    file_path: Option<String>,
    agreement: Option<String>,
    categories: String,
    zones: String,
    boxes: String,
    image_width: Option<u32>,
    image_height: Option<u32>,
    map_top_zones: String,
    ground_truth: Option<String>,
    predicted: Option<String>,
    probability: Option<f64>,
    #[serde(deserialize_with = "spreadsheet_bool")]
    model_uncertain: Option<bool>,
    #[serde(deserialize_with = "spreadsheet_bool")]
    model_in_scope: Option<bool>,
    reviewer: String,
    created_at: String,
    updated_at: String,
    text: String,
}

/// `true`/`false` in any case: a spreadsheet that opened and saved an export writes them as
/// `TRUE`/`FALSE` (LibreOffice Calc and Excel read them as booleans), which serde refuses.
fn spreadsheet_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let cell: Option<String> = Option::deserialize(d)?;
    match cell.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(serde::de::Error::custom(format!(
            "'{v}' is neither true nor false"
        ))),
    }
}

/// The separator of a CSV we read (a notes export, RSNA labels): `;` where its header line has
/// semicolons and no comma, as a spreadsheet saves CSV in a locale whose decimal mark is the
/// comma (LibreOffice and Excel in German, French, …); else `,`. The headers' names hold
/// neither, so this cannot mistake one for the other.
pub(crate) fn csv_delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    if header.contains(';') && !header.contains(',') {
        b';'
    } else {
        b','
    }
}

/// The notes as an export file's text.
pub fn export(
    notes: &[Note],
    format: Format,
    options: &ExportOptions,
) -> Result<String, NotesError> {
    let records: Vec<Record> = notes
        .iter()
        .map(|n| Record::from_note(n, options))
        .collect();
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        NotesError::new(
            NotesErrorKind::InvalidData,
            "notes export",
            "cannot serialise",
        )
        .with_source(e)
    };
    match format {
        Format::Json => {
            let doc = JsonExport {
                format: FORMAT_NAME.to_string(),
                version: FORMAT_VERSION,
                notes: records,
                zone_agreement: super::zone_agreement::zone_agreement(notes),
            };
            let mut s = serde_json::to_string_pretty(&doc).map_err(|e| failed(e.into()))?;
            s.push('\n');
            Ok(s)
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let keep = |col: &str| options.include_paths || col != "file_path";
            w.write_record(CSV_HEADER.iter().copied().filter(|c| keep(c)))
                .map_err(|e| failed(e.into()))?;
            for r in records {
                let fields = [
                    r.study_id,
                    r.file_name.unwrap_or_default(),
                    r.file_path.unwrap_or_default(),
                    r.agreement.unwrap_or_default(),
                    join_tokens(r.categories.iter().map(String::as_str)),
                    join_tokens(r.zones.iter().map(String::as_str)),
                    join_boxes(&r.boxes),
                    r.image_width.map(|w| w.to_string()).unwrap_or_default(),
                    r.image_height.map(|h| h.to_string()).unwrap_or_default(),
                    r.map_top_zones
                        .iter()
                        .map(|(k, z)| format!("{k}={z}"))
                        .collect::<Vec<_>>()
                        .join(";"),
                    r.ground_truth.unwrap_or_default(),
                    r.predicted.unwrap_or_default(),
                    r.probability.map(|p| p.to_string()).unwrap_or_default(),
                    r.model_uncertain.map(|u| u.to_string()).unwrap_or_default(),
                    r.model_in_scope.map(|u| u.to_string()).unwrap_or_default(),
                    r.outcome.unwrap_or_default(),
                    r.reviewer,
                    r.created_at,
                    r.updated_at,
                    r.text,
                ];
                let row = CSV_HEADER
                    .iter()
                    .zip(fields)
                    .filter(|(col, _)| keep(col))
                    .map(|(_, v)| v);
                w.write_record(row).map_err(|e| failed(e.into()))?;
            }
            let bytes = w.into_inner().map_err(|e| failed(e.to_string().into()))?;
            String::from_utf8(bytes).map_err(|e| failed(e.into()))
        }
    }
}

/// Parses an export file's text. `source` names it in errors ("notes.csv line 12: ...").
/// Every note is validated before any is returned, so a bad file imports nothing.
pub fn parse(text: &str, format: Format, source: &str) -> Result<Vec<Note>, NotesError> {
    // The note's own error already reads as one line; it becomes the reason, with the place.
    let bad = |place: String, e: NotesError| {
        NotesError::new(NotesErrorKind::InvalidData, place, e.to_string())
    };
    match format {
        Format::Json => {
            let doc: JsonImport = serde_json::from_str(text).map_err(|e| {
                NotesError::new(
                    NotesErrorKind::InvalidData,
                    source,
                    "not a cxr-viewer notes export (JSON)",
                )
                .with_source(e)
            })?;
            let records = match doc {
                JsonImport::Envelope(d) => {
                    if d.format != FORMAT_NAME || d.version > FORMAT_VERSION {
                        return Err(NotesError::new(
                            NotesErrorKind::InvalidData,
                            source,
                            format!(
                                "format '{}' version {} (expected '{FORMAT_NAME}' up to version {FORMAT_VERSION})",
                                d.format, d.version
                            ),
                        ));
                    }
                    d.notes
                }
                JsonImport::Bare(v) => v,
            };
            records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    r.into_note()
                        .map_err(|e| bad(format!("{source} note {}", i + 1), e))
                })
                .collect()
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(false)
                .delimiter(csv_delimiter(text))
                .from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| {
                    NotesError::new(
                        NotesErrorKind::InvalidData,
                        source,
                        "cannot read the CSV header",
                    )
                    .with_source(e)
                })?
                .clone();
            for required in ["study_id", "updated_at"] {
                if !headers.iter().any(|h| h == required) {
                    // An RSNA labels file is the other CSV users have at hand.
                    let advice = if super::rsna::is_labels_header(headers.iter()) {
                        " (an RSNA labels file: import it with --rsna --data FOLDER)"
                    } else {
                        ""
                    };
                    return Err(NotesError::new(
                        NotesErrorKind::InvalidData,
                        source,
                        format!("no '{required}' column; not a cxr-viewer notes export{advice}"),
                    ));
                }
            }
            let mut notes = Vec::new();
            for row in reader.records() {
                let row = row.map_err(|e| malformed_row(source, e))?;
                let place = format!("{source} line {}", row.position().map_or(0, |p| p.line()));
                let row: CsvRecord = row.deserialize(Some(&headers)).map_err(|e| {
                    NotesError::new(NotesErrorKind::InvalidData, &place, "malformed row")
                        .with_source(e)
                })?;
                let boxes = split_boxes(&row.boxes).map_err(|e| bad(place.clone(), e))?;
                let record = Record {
                    study_id: row.study_id,
                    file_name: row.file_name,
                    file_path: row.file_path,
                    agreement: row.agreement,
                    categories: vec![row.categories],
                    zones: vec![row.zones],
                    boxes,
                    image_width: row.image_width,
                    image_height: row.image_height,
                    map_top_zones: split_top_zones(&row.map_top_zones)
                        .map_err(|e| bad(place.clone(), e))?
                        .into_iter()
                        .map(|(k, z)| (k.as_str().to_string(), z.as_str().to_string()))
                        .collect(),
                    ground_truth: row.ground_truth,
                    predicted: row.predicted,
                    probability: row.probability,
                    model_uncertain: row.model_uncertain,
                    model_in_scope: row.model_in_scope,
                    outcome: None,
                    reviewer: row.reviewer,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    text: row.text,
                };
                notes.push(record.into_note().map_err(|e| bad(place, e))?);
            }
            Ok(notes)
        }
    }
}

/// Writes every note of `store` to `out` (format from its extension), atomically: a reader never
/// sees a half-written export, and a failed export leaves an older file intact. Returns how many
/// notes were written.
pub fn export_file(
    store: &NotesStore,
    out: &Path,
    options: &ExportOptions,
) -> Result<usize, NotesError> {
    let notes = store.list(super::Filter::All)?;
    let text = if options.rsna {
        super::rsna::export_rsna(&notes)
    } else {
        export(&notes, Format::from_path(out)?, options)?
    };
    write_atomic(out, text.as_bytes())?;
    Ok(notes.len())
}

/// Reads an export file and merges it into `store` ([`NotesStore::merge`]: by study id, last
/// updated wins, all or nothing).
pub fn import_file(store: &NotesStore, input: &Path) -> Result<MergeReport, NotesError> {
    store.merge(&read_import_file(input)?)
}

/// The notes of an export file, checked whole before any database is touched: the CLI reads the
/// file first so that a bad one does not leave a new, empty database behind.
pub fn read_import_file(input: &Path) -> Result<Vec<Note>, NotesError> {
    let format = Format::from_path(input)?;
    let text = std::fs::read_to_string(input).map_err(|e| {
        NotesError::new(
            NotesErrorKind::Io,
            input.display().to_string(),
            "cannot read",
        )
        .with_source(e)
    })?;
    let name = input.file_name().map_or_else(
        || input.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse(&text, format, &name)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NotesError> {
    crate::atomic_file::write_atomic(path, bytes).map_err(|e| {
        NotesError::new(
            NotesErrorKind::Io,
            path.display().to_string(),
            "cannot write",
        )
        .with_source(e)
    })
}

/// A CSV row the reader could not split, named by its line (one message for every CSV we read).
pub(crate) fn malformed_row(source: &str, e: csv::Error) -> NotesError {
    let line = e.position().map_or(0, |p| p.line());
    NotesError::new(
        NotesErrorKind::InvalidData,
        format!("{source} line {line}"),
        "malformed row",
    )
    .with_source(e)
}
