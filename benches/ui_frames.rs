//! Does the viewer keep painting while Integrated Gradients runs on the CPU?
//!
//! `cargo bench --bench ui_frames [-- --ig-steps N] [-- --no-render]`
//!
//! Drives the real [`ViewerApp`] in an egui_kittest harness (1400×900 points, the window the app
//! opens with) with the shipped model (`weights/model.json`) on a bundled sample. Once the worker
//! reports that IG has started, it runs one frame every 16.7 ms (a 60 Hz display; back-to-back
//! frames would take a core away from IG, which a real window does not do) until the IG result
//! arrives, and times each frame on the UI thread:
//!
//! * `update`: `ViewerApp::ui_root`, i.e. draining worker messages, input, scheduling and egui
//!   layout (plus kittest's AccessKit bookkeeping, which a real window only does with a screen
//!   reader attached);
//! * `tessellate`: turning that frame's shapes into triangles, which eframe does next;
//! * `render` (second pass, unless `--no-render`): tessellation again plus drawing with
//!   egui-wgpu on whatever adapter kittest picks (Mesa llvmpipe/lavapipe on a machine without a
//!   GPU: a software rasteriser, so a pessimistic stand-in for the app's glow painter) and reading
//!   the picture back to memory, which a real window does not do.
//!
//! It prints a table and asserts nothing: speed is measured here, never in tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use cxr_viewer::ui::app::ViewerApp;
use cxr_viewer::ui::cache::JobStage;
use cxr_viewer::ui::settings::Settings;
use cxr_viewer::ui::FilePicker;
use egui::Vec2;
use egui_kittest::Harness;

const FRAME_BUDGET: Duration = Duration::from_micros(16_667);
const WINDOW: Vec2 = Vec2::new(1400.0, 900.0);

struct NoDialogs;

impl FilePicker for NoDialogs {
    fn pick_file(&self) -> Option<PathBuf> {
        None
    }
    fn pick_folder(&self) -> Option<PathBuf> {
        None
    }
    fn save_file(&self, _suggested: &str, _ext: &str) -> Option<PathBuf> {
        None
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Frame times of one pass, in milliseconds.
struct Pass {
    name: &'static str,
    frames: Vec<f64>,
    /// From the first frame that saw IG running to the frame that received its result.
    ig_seen: Duration,
    /// IG as timed by the worker itself.
    ig_worker_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ig_steps = match args.iter().position(|a| a == "--ig-steps") {
        Some(i) => args
            .get(i + 1)
            .context("--ig-steps needs a number")?
            .parse()
            .context("--ig-steps needs a number")?,
        None => Settings::default().ig_steps,
    };
    let render = !args.iter().any(|a| a == "--no-render");
    // A scratch notes database: a benchmark must not touch the user's notes.
    let notes_db =
        std::env::temp_dir().join(format!("cxr-bench-notes-{}.sqlite3", std::process::id()));
    let settings = Settings {
        ig_steps,
        notes_db: Some(notes_db),
        ..Settings::default()
    };
    println!(
        "ui_frames: shipped model, {} MC samples, IG {} steps, {}×{} points, one frame per {:.1} ms",
        settings.mc_samples,
        settings.ig_steps,
        WINDOW.x,
        WINDOW.y,
        FRAME_BUDGET.as_secs_f64() * 1e3
    );

    let mut passes = run(&settings, false)?;
    if render {
        // The update times of this pass repeat the first one's; keep the rendering rows.
        passes.extend(run(&settings, true)?.into_iter().skip(1));
    }

    println!();
    println!(
        "| UI thread, per frame | frames | max ms | p99 ms | median ms | frames > 50 ms | IG (seen by the UI / worker) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for p in &passes {
        let mut sorted = p.frames.clone();
        sorted.sort_by(f64::total_cmp);
        let pct =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.2} s / {:.2} s |",
            p.name,
            sorted.len(),
            pct(1.0),
            pct(0.99),
            pct(0.5),
            sorted.iter().filter(|&&ms| ms > 50.0).count(),
            p.ig_seen.as_secs_f64(),
            p.ig_worker_ms / 1e3
        );
    }
    Ok(())
}

/// One viewer, one analysis. Without `render`: update, update + tessellate; with it: update,
/// update + render, and for scale the same after IG has finished (no analysis running).
fn run(settings: &Settings, render: bool) -> anyhow::Result<Vec<Pass>> {
    let app = ViewerApp::new(
        settings.clone(),
        Arc::new(NoDialogs),
        repo("weights/model.json"),
        Some(repo("assets/samples/person45_bacteria_221.jpeg")),
    );
    let mut h = Harness::builder()
        .with_size(WINDOW)
        .build_ui_state(|ui, app: &mut ViewerApp| app.ui_root(ui), app);

    // Until the worker says IG has started (model load, prediction, Grad-CAM, MC dropout).
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ig_running(h.state()) {
        if let Some(status) = h.state().status.as_ref().filter(|s| s.is_error) {
            bail!("the viewer reported an error: {}", status.text);
        }
        if Instant::now() > deadline {
            bail!("Integrated Gradients did not start within 5 minutes");
        }
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut update = Vec::new();
    let mut second = Vec::new();
    let started = Instant::now();
    while !ig_done(h.state()) {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("Integrated Gradients did not finish within 10 minutes");
        }
        let tick = Instant::now();
        h.step();
        let after_update = tick.elapsed();
        if render {
            h.render()
                .map_err(|e| anyhow::anyhow!("wgpu rendering failed: {e}"))?;
        } else {
            let shapes = h.output().shapes.clone();
            let primitives = h.ctx.tessellate(shapes, h.ctx.pixels_per_point());
            std::hint::black_box(primitives);
        }
        let frame = tick.elapsed();
        update.push(after_update.as_secs_f64() * 1e3);
        second.push(frame.as_secs_f64() * 1e3);
        if let Some(rest) = FRAME_BUDGET.checked_sub(frame) {
            std::thread::sleep(rest);
        }
    }
    let ig_seen = started.elapsed();
    let ig_worker_ms = h.state().current_entry().map_or(f64::NAN, |e| e.timings.ig);
    let pass = |name, frames| Pass {
        name,
        frames,
        ig_seen,
        ig_worker_ms,
    };
    if !render {
        return Ok(vec![
            pass("update", update),
            pass("update + tessellate", second),
        ]);
    }
    let mut idle = Vec::new();
    for _ in 0..30 {
        let tick = Instant::now();
        h.step();
        h.render()
            .map_err(|e| anyhow::anyhow!("wgpu rendering failed: {e}"))?;
        let frame = tick.elapsed();
        idle.push(frame.as_secs_f64() * 1e3);
        if let Some(rest) = FRAME_BUDGET.checked_sub(frame) {
            std::thread::sleep(rest);
        }
    }
    Ok(vec![
        pass("update (render pass)", update),
        pass("update + render (wgpu, incl. readback)", second),
        pass("same, after IG (no analysis running; IG column n/a)", idle),
    ])
}

fn ig_running(app: &ViewerApp) -> bool {
    app.current_key()
        .and_then(|k| app.jobs.active_for(&k).map(|j| j.stage))
        .is_some_and(|s| matches!(s, JobStage::IntegratedGradients { .. }))
}

fn ig_done(app: &ViewerApp) -> bool {
    app.current_entry()
        .is_some_and(|e| e.ig.contains_key(&app.wanted_ig_or_default()))
}
