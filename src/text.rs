//! Text helpers shared by several layers: error messages and the lines the CLI and the viewer
//! print.

/// The first `shown` names, then how many more: "a, b, c and 7 more"; for lines that name what
/// did not match without growing with it.
pub fn first_few(names: &[String], shown: usize) -> String {
    let mut out = names
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        out.push_str(&format!(" and {} more", names.len() - shown));
    }
    out
}

/// Three significant figures: IG zone means are per-pixel attributions (~1e-4) where a fixed
/// three decimals would print a row of "-0.000".
pub fn format_score(v: f32) -> String {
    if v == 0.0 || !v.is_finite() {
        format!("{v:.3}")
    } else if v.abs() < 0.01 || v.abs() >= 1000.0 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A column of scores in one notation, so it reads at a glance: [`format_score`] where every
/// value is tiny (IG), else three decimals.
pub fn score_column(values: &[f32]) -> Vec<String> {
    let tiny = values.iter().all(|v| v.abs() < 0.01);
    values
        .iter()
        .map(|&v| {
            if tiny {
                format_score(v)
            } else {
                format!("{v:.3}")
            }
        })
        .collect()
}

/// DICOM dates are YYYYMMDD; shown the way people read them (2019-03-04), anything else as it is.
pub fn format_date(d: &str) -> String {
    if d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()) {
        format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8])
    } else {
        d.to_string()
    }
}

/// Collapses control characters and runs of whitespace, because error messages end up in a status
/// line and in logs that are read line by line.
pub(crate) fn one_line(s: &str) -> String {
    let joined: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    joined.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Only the first line, trimmed: candle errors may carry a whole backtrace in their text.
pub(crate) fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// An error and its sources on one line ("x: y: z"), each cut at its first line break (candle
/// may append a backtrace). A source whose text the line already holds is left out: errors such
/// as `LoadError` put their source's message into their own ("cannot open x.dcm: No such file or
/// directory (os error 2)"), and the user should read it once. So is the rest of the chain once
/// the line holds its innermost message: what is left is the wrappers around that fact ("Format
/// error decoding Jpeg: …" after "invalid or truncated JPEG (…)").
pub(crate) fn chain_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = first_line(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let root = first_line(&innermost(s).to_string());
        if !root.is_empty() && text.contains(&root) {
            break;
        }
        let line = first_line(&s.to_string());
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

/// The last error of a chain: the fact that the layers above it wrap.
pub(crate) fn innermost<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional cause, to build chains.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        let (first, rest) = messages.split_first().expect("one message at least");
        Layer(first, (!rest.is_empty()).then(|| Box::new(chain(rest))))
    }

    #[test]
    fn chain_line_says_each_fact_once() {
        // The image crate's chain under a load error that already quotes its root cause: the
        // wrapper in between adds nothing but the decoder's name.
        let load = chain(&[
            "cannot open t.jpg: invalid or truncated JPEG (Not enough bytes)",
            "Format error decoding Jpeg: Not enough bytes",
            "Not enough bytes",
        ]);
        assert_eq!(
            chain_line(&load),
            "cannot open t.jpg: invalid or truncated JPEG (Not enough bytes)"
        );
        // Causes the line does not hold are each added once, in order.
        let write = chain(&["cannot write report.json", "permission denied"]);
        assert_eq!(
            chain_line(&write),
            "cannot write report.json: permission denied"
        );
        let nested = chain(&[
            "analysis failed",
            "backward pass",
            "shape mismatch\nbacktrace",
        ]);
        assert_eq!(
            chain_line(&nested),
            "analysis failed: backward pass: shape mismatch"
        );
    }

    #[test]
    fn scores_read_in_one_notation_per_column() {
        assert_eq!(format_score(0.25), "0.250");
        assert_eq!(format_score(-0.000123), "-1.23e-4");
        assert_eq!(format_score(0.0), "0.000");
        assert_eq!(score_column(&[0.25, 0.004]), ["0.250", "0.004"]);
        assert_eq!(score_column(&[-0.000123, 0.004]), ["-1.23e-4", "4.00e-3"]);
    }

    #[test]
    fn dicom_dates_read_naturally() {
        assert_eq!(format_date("20190304"), "2019-03-04");
        assert_eq!(format_date("2019"), "2019");
    }

    #[test]
    fn first_few_names_the_first_and_counts_the_rest() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(first_few(&names, 3), "a, b, c and 1 more");
        assert_eq!(first_few(&names, 4), "a, b, c, d");
        assert_eq!(first_few(&names[..1], 5), "a");
        assert_eq!(first_few(&[], 5), "");
    }
}
