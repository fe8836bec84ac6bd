//! Text helpers shared by the error types of several layers.

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
