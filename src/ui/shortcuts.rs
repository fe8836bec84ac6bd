//! The keyboard shortcuts, listed once: the help overlay and `docs/shortcuts.md` are both made
//! from this table (a test keeps the markdown in sync), and `app.rs` implements each row.

/// `(keys, action)` in the order shown to the user.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+O", "Open an image (DICOM, PNG, JPEG)"),
    ("Ctrl+Shift+O", "Open a folder of images"),
    (
        "Right / Down arrow, Page Down",
        "Next image (study list as filtered and sorted, else the folder)",
    ),
    ("Left / Up arrow, Page Up", "Previous image"),
    ("L", "Show or hide the study list"),
    (
        "F5",
        "Rescan the folder under review (new and changed files are predicted)",
    ),
    (
        "Right-click a study-list header",
        "Choose the study list's columns",
    ),
    (", / .", "Previous / next frame of a multi-frame image"),
    (
        "Y / N / U",
        "Review note: agree / disagree / unsure (again to clear)",
    ),
    ("T", "Type in the review note (Esc leaves the text box)"),
    ("M", "Cycle overlay: none, Grad-CAM, uncertainty, IG"),
    (
        "0 / 1 / 2 / 3",
        "No overlay / Grad-CAM / uncertainty / Integrated Gradients",
    ),
    ("H", "Toggle the overlay on/off"),
    ("Space (hold)", "Hide the overlay while held"),
    (
        "C",
        "Side by side: a second map next to the first, same zoom and pan",
    ),
    ("] / [", "Overlay opacity +5 % / −5 %"),
    ("+ / −", "Zoom in / out around the centre"),
    ("Mouse wheel", "Zoom around the cursor"),
    (
        "Ctrl+Plus / Ctrl+Minus / Ctrl+0",
        "Scale the whole interface (text and controls) up / down / back to 100 %; kept at restart",
    ),
    (
        "Left drag",
        "Pan (with the box tool on: draw, move or resize a box)",
    ),
    ("Middle drag", "Pan (also with the box tool on)"),
    (
        "D",
        "Box tool on/off: drag to draw an opacity box into the review note, click to select",
    ),
    ("Delete / Backspace", "Remove the selected box"),
    ("Ctrl+Z", "Undo the last box change"),
    (
        "Right drag",
        "Window/level: horizontal = width, vertical = level",
    ),
    ("F / double-click", "Fit the image to the window"),
    ("Z", "1:1 (one image pixel per screen pixel)"),
    ("I", "Invert grey levels"),
    (
        "W",
        "Next window preset (auto, full, lung, soft tissue, bone)",
    ),
    ("A", "Auto window (study default)"),
    ("R", "Reset view: fit, auto window, no inversion"),
    (
        "B",
        "Integrated Gradients baseline black / white (re-runs IG)",
    ),
    (
        "K",
        "Sanity check: randomise the model layer by layer, show the maps beside the real ones",
    ),
    ("Ctrl+S", "Export the view with its overlay as PNG"),
    ("Ctrl+E", "Export the analysis report as JSON"),
    ("Esc", "Cancel the running analysis / close this help"),
    ("? / F1", "Show or hide this help"),
];

/// The table as markdown, for the README.
pub fn shortcuts_markdown() -> String {
    let mut out = String::from(
        "<!-- Generated from src/ui/shortcuts.rs; `cargo test --lib shortcuts` checks it. -->\n\
         ### Keyboard and mouse\n\n| Keys | Action |\n|---|---|\n",
    );
    for (keys, action) in SHORTCUTS {
        out.push_str(&format!("| {keys} | {action} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_shortcuts_md_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/shortcuts.md");
        let expected = shortcuts_markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "docs/shortcuts.md is stale: run `UPDATE_DOCS=1 cargo test --lib shortcuts`"
        );
    }
}
