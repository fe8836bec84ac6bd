//! cxr-viewer: chest X-ray analysis engine (loading, ResNet-50, explanations) shared by the CLI,
//! the GUI, tests and benchmarks.
//!
//! Layers, lowest first: [`io`] → [`model`] → [`explain`] → [`analysis`] → [`ui`]; only [`ui`]
//! depends on a UI toolkit.

pub mod alloc_tuning;
pub mod analysis;
pub mod atomic_file;
pub mod cli;
pub mod evaluation;
pub mod explain;
pub mod io;
pub mod localisation_eval;
pub mod model;
pub mod notes;
pub mod overlay;
pub mod plots;
pub mod report;
pub mod report_html;
pub mod scope;
pub mod scope_cli;
pub mod text;
pub mod trust;
pub mod trust_eval;
pub mod ui;
