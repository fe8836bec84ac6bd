//! What the user chose once and expects to find again next time (eframe persistence, RON).
//! `#[serde(default)]` so a settings file from an older version still loads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::explain::integrated_gradients::{Baseline, IgBaseline};
use crate::overlay::Colormap;

use super::review::SortColumn;

/// Which map is drawn over the film.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MapKind {
    None,
    GradCam,
    Uncertainty,
    IntegratedGradients,
}

impl MapKind {
    pub const ALL: [MapKind; 4] = [
        MapKind::None,
        MapKind::GradCam,
        MapKind::Uncertainty,
        MapKind::IntegratedGradients,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MapKind::None => "No overlay",
            MapKind::GradCam => "Grad-CAM",
            MapKind::Uncertainty => "Uncertainty (std)",
            MapKind::IntegratedGradients => "Integrated Gradients",
        }
    }

    /// For a pane too narrow for [`Self::label`] (compare mode in a small window).
    pub fn short_label(self) -> &'static str {
        match self {
            MapKind::None => "none",
            MapKind::GradCam => "Grad-CAM",
            MapKind::Uncertainty => "std",
            MapKind::IntegratedGradients => "IG",
        }
    }

    pub fn next(self) -> MapKind {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    /// IG is signed (evidence for and against) and always uses the diverging map.
    pub fn is_signed(self) -> bool {
        self == MapKind::IntegratedGradients
    }
}

/// Sequential colormaps offered for unsigned maps; the engine's [`Colormap`] is not serde.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColormapChoice {
    Inferno,
    Viridis,
    Turbo,
}

impl ColormapChoice {
    pub const ALL: [ColormapChoice; 3] = [
        ColormapChoice::Inferno,
        ColormapChoice::Viridis,
        ColormapChoice::Turbo,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ColormapChoice::Inferno => "Inferno (perceptually uniform)",
            ColormapChoice::Viridis => "Viridis (perceptually uniform)",
            ColormapChoice::Turbo => "Turbo (rainbow, not uniform)",
        }
    }

    pub fn colormap(self) -> Colormap {
        match self {
            ColormapChoice::Inferno => Colormap::Inferno,
            ColormapChoice::Viridis => Colormap::Viridis,
            ColormapChoice::Turbo => Colormap::Turbo,
        }
    }
}

/// Integrated Gradients baseline; mirrors the engine's [`IgBaseline`] with serde and `Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BaselineChoice {
    Black,
    White,
    /// The model's reference normal film ([`Baseline::NormalFilm`]), where `model.json` names one.
    NormalFilm,
    /// Per film: the first of black, the normal film and white that the model does not read as
    /// the class explained ([`IgBaseline::Auto`]).
    Auto,
}

impl From<Baseline> for BaselineChoice {
    fn from(b: Baseline) -> Self {
        match b {
            Baseline::Black => BaselineChoice::Black,
            Baseline::White => BaselineChoice::White,
            Baseline::NormalFilm => BaselineChoice::NormalFilm,
        }
    }
}

impl BaselineChoice {
    pub fn baseline(self) -> IgBaseline {
        match self {
            BaselineChoice::Auto => IgBaseline::Auto,
            BaselineChoice::Black => IgBaseline::Black,
            BaselineChoice::White => IgBaseline::White,
            BaselineChoice::NormalFilm => IgBaseline::Normal,
        }
    }

    /// The next baseline for `B`: black, white, the normal film when the model has one, then
    /// auto.
    ///
    /// ```
    /// use cxr_viewer::ui::settings::BaselineChoice::*;
    /// assert_eq!(Black.next(true), White);
    /// assert_eq!(White.next(true), NormalFilm);
    /// assert_eq!(NormalFilm.next(true), Auto);
    /// assert_eq!(White.next(false), Auto);
    /// assert_eq!(Auto.next(true), Black);
    /// ```
    pub fn next(self, normal_film: bool) -> Self {
        match self {
            BaselineChoice::Auto => BaselineChoice::Black,
            BaselineChoice::Black => BaselineChoice::White,
            BaselineChoice::White if normal_film => BaselineChoice::NormalFilm,
            BaselineChoice::White | BaselineChoice::NormalFilm => BaselineChoice::Auto,
        }
    }
}

/// How the map is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverlayMode {
    /// Colour everywhere, blended with alpha.
    Blend,
    /// Colour only where the normalised value reaches the threshold.
    Threshold,
    /// Only the iso-line at the threshold: the film stays untouched.
    Contour,
}

pub const MAX_RECENT: usize = 10;

/// Sets of files opened together that Recent keeps (each can be dozens of paths).
pub const MAX_RECENT_SETS: usize = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub colormap: ColormapChoice,
    pub alpha: f32,
    pub default_map: MapKind,
    pub mode: OverlayMode,
    /// Normalised level in [0, 1] (|value| for IG) for threshold and contour modes.
    pub threshold: f32,
    pub mc_samples: usize,
    pub ig_steps: usize,
    pub ig_baseline: BaselineChoice,
    /// IG takes seconds on a CPU, far longer than the rest; a user on a laptop may want it on demand only.
    pub run_ig: bool,
    pub recent: Vec<PathBuf>,
    /// Sets of files opened together (dropped, picked together, or named on the command line),
    /// most recent first, each in its own order: reopened as the same set, with its study list.
    /// Kept apart from `recent`, which keeps the film each set opened on.
    pub recent_sets: Vec<Vec<PathBuf>>,
    /// Written into every note this reviewer saves.
    pub reviewer: String,
    /// Notes database chosen by the user; `None`: the per-user default
    /// ([`crate::notes::default_path`]).
    pub notes_db: Option<PathBuf>,
    /// Study list panel shown when a folder is open.
    pub show_study_list: bool,
    /// Study list columns the reviewer switched off (right-click a header); the file name is
    /// always shown.
    pub hidden_study_columns: Vec<SortColumn>,
    /// Overlays drawn dimmed when the result is uncertain (see `trust_state::gate_reasons`).
    pub gate_overlays: bool,
    /// Analyse the study Next opens while the reviewer reads this one (`ViewerApp::prefetch_next`).
    pub prefetch_next: bool,
    /// The study last on screen in each folder reviewed (the folder as Recent holds it), so that
    /// a folder opened again resumes there instead of at its first study; kept for the folders
    /// Recent holds.
    pub last_study: std::collections::BTreeMap<PathBuf, PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            colormap: ColormapChoice::Inferno,
            alpha: 0.45,
            default_map: MapKind::GradCam,
            mode: OverlayMode::Blend,
            threshold: 0.5,
            mc_samples: 20,
            ig_steps: 36,
            ig_baseline: BaselineChoice::Black,
            run_ig: true,
            recent: Vec::new(),
            recent_sets: Vec::new(),
            reviewer: String::new(),
            notes_db: None,
            show_study_list: true,
            hidden_study_columns: Vec::new(),
            gate_overlays: true,
            prefetch_next: true,
            last_study: Default::default(),
        }
    }
}

impl Settings {
    /// Most recent first, no duplicates, bounded.
    pub fn remember(&mut self, path: &Path) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_path_buf());
        self.recent.truncate(MAX_RECENT);
    }

    /// `study` is on screen in the review of `folder`: where [`Self::last_study`] resumes.
    pub fn left_at(&mut self, folder: &Path, study: &Path) {
        if self.last_study.get(folder).is_some_and(|s| s == study) {
            return;
        }
        self.last_study
            .insert(folder.to_path_buf(), study.to_path_buf());
        let recent = &self.recent;
        self.last_study.retain(|f, _| recent.contains(f));
    }

    /// [`Self::remember`] for a set of files opened together: the same set (in any order)
    /// moves to the top rather than appearing twice.
    pub fn remember_set(&mut self, files: &[PathBuf]) {
        let mut key = files.to_vec();
        key.sort();
        self.recent_sets.retain(|s| {
            let mut s = s.clone();
            s.sort();
            s != key
        });
        self.recent_sets.insert(0, files.to_vec());
        self.recent_sets.truncate(MAX_RECENT_SETS);
    }

    pub fn set_alpha(&mut self, alpha: f32) {
        self.alpha = (alpha * 100.0).round().clamp(0.0, 100.0) / 100.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_reopened_moves_to_the_top_once() {
        let mut s = Settings::default();
        let set = |names: &[&str]| -> Vec<PathBuf> { names.iter().map(PathBuf::from).collect() };
        for i in 0..7 {
            s.remember_set(&set(&[&format!("{i}a.png"), &format!("{i}b.png")]));
        }
        assert_eq!(s.recent_sets.len(), MAX_RECENT_SETS);
        assert_eq!(s.recent_sets[0], set(&["6a.png", "6b.png"]));
        // The same files in another order are the same set.
        s.remember_set(&set(&["4b.png", "4a.png"]));
        assert_eq!(s.recent_sets.len(), MAX_RECENT_SETS);
        assert_eq!(s.recent_sets[0], set(&["4b.png", "4a.png"]));
        assert_eq!(
            s.recent_sets
                .iter()
                .filter(|f| f.contains(&PathBuf::from("4a.png")))
                .count(),
            1
        );
    }

    #[test]
    fn recent_is_most_recent_first_without_duplicates() {
        let mut s = Settings::default();
        for i in 0..15 {
            s.remember(Path::new(&format!("{i}.png")));
        }
        s.remember(Path::new("7.png"));
        assert_eq!(s.recent.len(), MAX_RECENT);
        assert_eq!(s.recent[0], PathBuf::from("7.png"));
        assert_eq!(s.recent.iter().filter(|p| p.ends_with("7.png")).count(), 1);
    }

    #[test]
    fn overlay_cycle_visits_every_map() {
        let mut k = MapKind::None;
        let mut seen = vec![];
        for _ in 0..4 {
            k = k.next();
            seen.push(k);
        }
        assert_eq!(seen.last(), Some(&MapKind::None));
        assert!(seen.contains(&MapKind::IntegratedGradients));
    }

    #[test]
    fn a_settings_file_from_an_older_version_still_loads() {
        // Missing fields take their defaults instead of throwing the user's choices away.
        let s: Settings = serde_json::from_str(r#"{"alpha":0.3,"ig_baseline":"White"}"#).unwrap();
        assert_eq!(s.alpha, 0.3);
        assert_eq!(s.ig_baseline, BaselineChoice::White);
        assert_eq!(s.mc_samples, Settings::default().mc_samples);
        let round: Settings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(round, s);
    }

    #[test]
    fn alpha_is_clamped_and_rounded() {
        let mut s = Settings::default();
        s.set_alpha(1.7);
        assert_eq!(s.alpha, 1.0);
        s.set_alpha(0.333);
        assert_eq!(s.alpha, 0.33);
    }
}
