//! How long the viewer takes to build the film's texture, which every window/level drag frame
//! rebuilds (README "Canvas").
//!
//! `cargo bench --bench film_texture [-- FILE] [--runs N]`
//!
//! On FILE (any film the viewer opens), or else on a synthetic 3000 × 3600 film (the size of a
//! CR chest film), it times with the viewer's own functions:
//!
//! * the whole film's texture at full resolution (what a drag frame at 1:1 cost before the
//!   texture covered only the part on screen);
//! * the part on screen at 1:1 in a 1300 × 850-pixel canvas (`render::texture_region`);
//! * the block means for steps 2 and 4 (`render::FilmLevel`, built once per film and step) and
//!   the whole film's texture from them (a drag frame with the film fitted into the window).
//!
//! (Over 4096 pixels a side the viewer never builds the first one: it is there as the cost of
//! every pixel.) It prints the median, minimum and maximum of each and asserts nothing: speed is
//! measured here, never in tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use cxr_viewer::io::{load_study, Study, Window, WindowSource};
use cxr_viewer::ui::render::{
    film_image, texture_region, FilmLevel, FilmRegion, FilmSource, MAX_TEXTURE_SIDE,
};

/// A deterministic stand-in for a 16-bit CR film: smooth anatomy-like shading plus fine noise.
fn synthetic_film(width: usize, height: usize) -> Study {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels = (0..width * height)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (x, y) = ((i % width) as f32, (i / width) as f32);
            let shade = 20_000.0 + 15_000.0 * (x / 400.0).sin() * (y / 530.0).cos();
            shade + (state % 2000) as f32
        })
        .collect();
    Study {
        source: "synthetic".into(),
        width,
        height,
        pixels,
        default_window: Window {
            low: 5_000.0,
            high: 40_000.0,
        },
        window_source: WindowSource::Percentile,
        metadata: Default::default(),
        padding: None,
    }
}

/// Median, minimum and maximum of `runs` timings of `f`, after one warm-up call.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, Duration) {
    std::hint::black_box(f());
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], times[0], times[times.len() - 1])
}

fn main() -> anyhow::Result<()> {
    let mut runs = 15;
    let mut file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .context("--runs needs a number")?
                    .parse()
                    .context("--runs needs a number")?;
            }
            "--bench" => {}
            a if a.starts_with("--") => bail!("unknown option {a}"),
            a => file = Some(PathBuf::from(a)),
        }
    }
    let study = match &file {
        Some(path) => {
            load_study(path).with_context(|| format!("cannot open {}", path.display()))?
        }
        None => synthetic_film(3000, 3600),
    };
    let (w, h) = (study.width, study.height);
    let window = study.default_window;
    println!(
        "film: {} ({w} × {h}), {runs} runs each",
        study.source.display()
    );
    println!("{:<58} {:>9} {:>9} {:>9}", "", "median", "min", "max");
    let row = |name: &str, (median, min, max): (Duration, Duration, Duration)| {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<58} {:>6.1} ms {:>6.1} ms {:>6.1} ms",
            ms(median),
            ms(min),
            ms(max)
        );
    };

    let whole = FilmRegion::whole(w, h);
    row(
        &format!("whole film, step 1 ({w} × {h} texels)"),
        time(runs, || {
            film_image(FilmSource::Full(&study), &window, false, whole)
        }),
    );
    // 1:1, centred, in a 1300 × 850 canvas: what `canvas_ui` asks for.
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let visible = egui::Rect::from_center_size(egui::pos2(cx, cy), egui::vec2(1300.0, 850.0));
    let (region, step) = texture_region((w, h), visible, 1, MAX_TEXTURE_SIDE);
    let size = film_image(FilmSource::Full(&study), &window, false, region).size;
    row(
        &format!(
            "part on screen at 1:1, step {step} ({} × {} texels)",
            size[0], size[1]
        ),
        time(runs, || {
            film_image(FilmSource::Full(&study), &window, false, region)
        }),
    );
    for step in [2, 4] {
        row(
            &format!("block means, step {step} (once per film and step)"),
            time(runs, || FilmLevel::new(&study, step)),
        );
        let level = FilmLevel::new(&study, step);
        row(
            &format!(
                "whole film from the means, step {step} ({} × {} texels)",
                level.width, level.height
            ),
            time(runs, || {
                film_image(FilmSource::Level(&level), &window, false, whole)
            }),
        );
    }
    Ok(())
}
