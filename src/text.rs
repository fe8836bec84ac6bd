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
