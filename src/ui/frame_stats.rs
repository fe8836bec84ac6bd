//! How long whole frames take in the real window (UI update, tessellation and painting, as
//! eframe reports them), for checking that the viewer keeps painting while the CPU is busy with
//! an analysis. Off by default; `CXR_VIEWER_FRAME_STATS=1 cxr-viewer FILE` repaints continuously
//! and prints a summary to stderr when the window closes.

/// Frame times in ms, split by whether an analysis job was running.
#[derive(Default)]
pub struct FrameStats {
    idle: Vec<f32>,
    busy: Vec<f32>,
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

    pub fn summary(&self) -> String {
        let mut out =
            String::from("frame times (UI + paint, ms)  frames     max     p99  median  >50 ms\n");
        for (name, v) in [("analysis running", &self.busy), ("idle", &self.idle)] {
            out.push_str(&format!("{name:<29}{}\n", Self::row(v)));
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
    fn summary_counts_slow_frames_per_state() {
        let mut f = FrameStats::default();
        for ms in [2.0, 4.0, 60.0] {
            f.record(ms, true);
        }
        f.record(1.0, false);
        let s = f.summary();
        let busy = s.lines().nth(1).unwrap();
        assert!(busy.starts_with("analysis running"));
        let cols: Vec<&str> = busy.split_whitespace().collect();
        assert_eq!(cols[2..], ["3", "60.0", "60.0", "4.0", "1"]);
    }
}
