//! The averaged levels ([`FilmLevel`]) of the film on screen, one per texture step, built the
//! first time the film is shown at that step and kept with the film.
//!
//! Why some are built off the UI thread: a level costs about a millisecond per megapixel of film
//! (`cargo bench --bench film_texture`), so on a 9500 × 9500 film each new zoom step froze the
//! viewer for 24–82 ms, once per step. For a film of [`BACKGROUND_FROM_PIXELS`] or more, a step
//! not yet built is built on a thread of its own while the nearest coarser level already built
//! stands in (the film a little softer for a few frames, the zoom itself smooth), as image viewers
//! refine a zoomed image. Smaller films, and the first level of any film (nothing to stand in),
//! are built on the spot: that costs a few milliseconds, and the film appears at once.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

use crate::io::Study;

use super::render::FilmLevel;

/// Films from this many pixels up get their further levels built in the background (about
/// 15 ms a level at this size).
pub const BACKGROUND_FROM_PIXELS: usize = 16_000_000;

pub struct FilmLevels {
    path: PathBuf,
    ready: Vec<FilmLevel>,
    /// The step being built in the background, and where it arrives.
    building: Option<(usize, Receiver<FilmLevel>)>,
}

impl FilmLevels {
    /// The levels kept in `slot` if they are `path`'s, else a fresh set for it.
    pub fn of<'a>(slot: &'a mut Option<FilmLevels>, path: &Path) -> &'a mut FilmLevels {
        if slot.as_ref().is_some_and(|l| l.path != path) {
            *slot = None;
        }
        slot.get_or_insert_with(|| FilmLevels {
            path: path.to_path_buf(),
            ready: Vec::new(),
            building: None,
        })
    }

    /// The level to draw for `step`: that one if built; otherwise, for a film of
    /// [`BACKGROUND_FROM_PIXELS`] or more with a coarser level built, the nearest coarser one
    /// while `step` is built on another thread (`repaint` is called when it is ready); otherwise
    /// `step`, built here. The caller reads the step it got from the level.
    pub fn level(
        &mut self,
        study: &Arc<Study>,
        step: usize,
        repaint: impl Fn() + Send + 'static,
    ) -> &FilmLevel {
        self.collect();
        if let Some(i) = self.ready.iter().position(|l| l.step == step) {
            return &self.ready[i];
        }
        let stand_in = (study.width * study.height >= BACKGROUND_FROM_PIXELS)
            .then(|| {
                self.ready
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.step > step)
                    .min_by_key(|(_, l)| l.step)
                    .map(|(i, _)| i)
            })
            .flatten();
        if let Some(i) = stand_in {
            if self.building.is_some() || self.build_in_background(study, step, repaint) {
                return &self.ready[i];
            }
        }
        self.ready.push(FilmLevel::new(study, step));
        &self.ready[self.ready.len() - 1]
    }

    /// The step being built in the background, if any.
    pub fn building(&self) -> Option<usize> {
        self.building.as_ref().map(|(step, _)| *step)
    }

    /// Takes in a level finished in the background.
    fn collect(&mut self) {
        let Some((_, rx)) = &self.building else {
            return;
        };
        match rx.try_recv() {
            Ok(level) => {
                self.ready.push(level);
                self.building = None;
            }
            Err(TryRecvError::Empty) => {}
            // The builder died (it cannot panic on a film that opened, but then build here).
            Err(TryRecvError::Disconnected) => self.building = None,
        }
    }

    /// `false` when no thread could be started (the caller builds the level itself).
    fn build_in_background(
        &mut self,
        study: &Arc<Study>,
        step: usize,
        repaint: impl Fn() + Send + 'static,
    ) -> bool {
        let (tx, rx) = channel();
        let study = Arc::clone(study);
        // Our own thread, not rayon's pool, which runs the analysis (see `render::in_row_bands`).
        let started = std::thread::Builder::new()
            .name("film-level".into())
            .spawn(move || {
                // The film may have been closed meanwhile: then nobody is listening.
                if tx.send(FilmLevel::new(&study, step)).is_ok() {
                    repaint();
                }
            })
            .is_ok();
        if started {
            self.building = Some((step, rx));
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn film(width: usize, height: usize) -> Arc<Study> {
        Arc::new(Study {
            source: PathBuf::from("film.png"),
            width,
            height,
            pixels: (0..width * height).map(|i| (i % 251) as f32).collect(),
            default_window: crate::io::Window {
                low: 0.0,
                high: 255.0,
            },
            window_source: crate::io::WindowSource::BitDepth,
            metadata: Default::default(),
            padding: None,
        })
    }

    #[test]
    fn a_large_film_shows_a_coarser_level_while_the_new_one_is_built() {
        let study = film(4000, 4000);
        let mut slot = None;
        let levels = FilmLevels::of(&mut slot, Path::new("film.png"));
        let repaints = Arc::new(AtomicUsize::new(0));
        let counter = move |r: &Arc<AtomicUsize>| {
            let r = Arc::clone(r);
            move || {
                r.fetch_add(1, Ordering::SeqCst);
            }
        };
        // The first level: nothing to stand in, built at once.
        assert_eq!(levels.level(&study, 8, counter(&repaints)).step, 8);
        assert_eq!(levels.building(), None);
        // Zooming in: step 8 stands in while 4 is built elsewhere; asking again does not start a
        // second build, nor does another step meanwhile.
        assert_eq!(levels.level(&study, 4, counter(&repaints)).step, 8);
        assert_eq!(levels.building(), Some(4));
        assert_eq!(levels.level(&study, 2, counter(&repaints)).step, 8);
        let start = Instant::now();
        while levels.level(&study, 4, counter(&repaints)).step != 4 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "step 4 never came"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(repaints.load(Ordering::SeqCst), 1);
        // What came from the thread is the level built here would be.
        let here = FilmLevel::new(&study, 4);
        let got = levels.level(&study, 4, || {});
        assert_eq!((got.width, got.height), (here.width, here.height));
        assert_eq!(got.means(), here.means());
        // Zooming out past every level built: nothing coarser stands in, so it is built here.
        assert_eq!(levels.level(&study, 16, || {}).step, 16);
        assert_eq!(levels.building(), None);
    }

    #[test]
    fn a_small_film_builds_every_level_at_once_and_a_new_film_starts_afresh() {
        let study = film(1000, 1200);
        let mut slot = None;
        let levels = FilmLevels::of(&mut slot, Path::new("a.png"));
        assert_eq!(levels.level(&study, 8, || {}).step, 8);
        assert_eq!(levels.level(&study, 2, || {}).step, 2);
        assert_eq!(levels.building(), None);
        let other = FilmLevels::of(&mut slot, Path::new("b.png"));
        assert!(other.ready.is_empty());
    }
}
