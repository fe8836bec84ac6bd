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
/// directory (os error 2)"), and the user should read it once.
pub(crate) fn chain_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = first_line(&e.to_string());
    let mut source = e.source();
    while let Some(s) = source {
        let line = first_line(&s.to_string());
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_few_names_the_first_and_counts_the_rest() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(first_few(&names, 3), "a, b, c and 1 more");
        assert_eq!(first_few(&names, 4), "a, b, c, d");
        assert_eq!(first_few(&names[..1], 5), "a");
        assert_eq!(first_few(&[], 5), "");
    }
}
