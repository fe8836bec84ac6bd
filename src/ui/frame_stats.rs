//! How long whole frames take in the real window (UI update, tessellation and painting, as
//! eframe reports them), for checking that the viewer keeps painting while the CPU is busy with
//! an analysis. Off by default; `CXR_VIEWER_FRAME_STATS=1 cxr-viewer FILE` repaints continuously
//! and prints a summary to stderr whenever an analysis finishes and when the window closes.

/// Frame times in ms, split by whether an analysis job was running: eframe's per-frame CPU time,
/// and the wall-clock interval between frame starts while repainting continuously (which also
/// covers the buffer swap, where a software GL rasteriser does most of its work).
#[derive(Default)]
pub struct FrameStats {
    idle: Vec<f32>,
    busy: Vec<f32>,
    idle_interval: Vec<f32>,
    busy_interval: Vec<f32>,
    last_start: Option<std::time::Instant>,
    /// Whether the previous frame saw an analysis running.
    was_analysing: bool,
}

impl FrameStats {
    /// `Some` when the environment variable asks for it.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("CXR_VIEWER_FRAME_STATS")
            .filter(|v| v != "0")
            .map(|_| Self::default())
    }

    pub fn record(&mut self, ms: f32, analysing: bool) {
        if analysing {
            self.busy.push(ms);
        } else {
            self.idle.push(ms);
        }
    }

    /// Whether an analysis ended since the previous frame (then it is time for a summary).
    /// Compared across frames: the worker's "finished" message is handled in `App::logic`,
    /// before the frame, so no single frame sees the job both running and done (the summary
    /// that was to be printed as each analysis finished never was).
    pub fn analysis_ended(&mut self, analysing: bool) -> bool {
        std::mem::replace(&mut self.was_analysing, analysing) && !analysing
    }

    /// Call at the start of every frame.
    pub fn frame_started(&mut self, now: std::time::Instant, analysing: bool) {
        if let Some(last) = self.last_start.replace(now) {
            let ms = (now - last).as_secs_f32() * 1e3;
            if analysing {
                self.busy_interval.push(ms);
            } else {
                self.idle_interval.push(ms);
            }
        }
    }

    pub fn summary(&self) -> String {
        let mut out = String::from(
            "frame times (ms)                        frames     max     p99  median  >50 ms\n",
        );
        for (name, v) in [
            ("analysis running: frame CPU time", &self.busy),
            ("analysis running: frame interval", &self.busy_interval),
            ("idle: frame CPU time", &self.idle),
            ("idle: frame interval", &self.idle_interval),
        ] {
            out.push_str(&format!("{name:<39}{}\n", Self::row(v)));
        }
        out
    }

    fn row(v: &[f32]) -> String {
        if v.is_empty() {
            return format!("{:>7}", 0);
        }
        let mut s = v.to_vec();
        s.sort_by(f32::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        format!(
            "{:>7} {:>7.1} {:>7.1} {:>7.1} {:>7}",
            s.len(),
            s[s.len() - 1],
            at(0.99),
            at(0.5),
            s.iter().filter(|&&x| x > 50.0).count()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_analysis_ends_once_per_run() {
        let mut f = FrameStats::default();
        let seen: Vec<bool> = [false, true, true, false, false, true, false]
            .into_iter()
            .map(|busy| f.analysis_ended(busy))
            .collect();
        assert_eq!(seen, [false, false, false, true, false, false, true]);
    }

    #[test]
    fn summary_counts_slow_frames_per_state() {
        let mut f = FrameStats::default();
        for ms in [2.0, 4.0, 60.0] {
            f.record(ms, true);
        }
        f.record(1.0, false);
        let s = f.summary();
        let busy = s.lines().nth(1).unwrap();
        assert!(busy.starts_with("analysis running: frame CPU time"));
        let cols: Vec<&str> = busy.split_whitespace().collect();
        assert_eq!(cols[cols.len() - 5..], ["3", "60.0", "60.0", "4.0", "1"]);
    }
}
