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
    (
        "T",
        "Type in the review note: what follows T is text, even typed at once or while the study opens (Esc leaves the text box)",
    ),
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
        "Integrated Gradients baseline black / white / normal film / auto (re-runs IG)",
    ),
    (
        "K",
        "Sanity check: randomise the model layer by layer, show the maps beside the real ones",
    ),
    (
        "S",
        "Show anyway / hide again the result of a film outside the model's scope",
    ),
    ("Ctrl+S", "Export the view with its overlay as PNG"),
    ("Ctrl+E", "Export the analysis report as JSON (result, scope, maps, zones, review note)"),
    (
        "Ctrl+Shift+E",
        "Export the report as a page to read or print (HTML: result, scope, maps, zones, review note)",
    ),
    (
        "Esc",
        "Cancel the running analysis / close this help (an Esc that leaves a text box does only that)",
    ),
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

/// Splits a frame's input at the first `T` (type in the review note): the events before it are
/// shortcuts, those after it are the start of the comment and are returned.
///
/// Why: a slow frame (an analysis arriving, a folder scan) gathers several keystrokes, and
/// `T` followed at once by "rib shadow" arrived as one frame's `T r i b …`. Each shortcut
/// looked for its key anywhere in the frame, so `r` reset the view, `i` inverted it, `b` changed
/// the IG baseline, and the comment began "shadow". The `T` key and the character `t` it typed
/// are removed; the caller focuses the comment box before it is drawn, so that the box takes the
/// returned events in the same frame.
pub fn split_at_focus_note(events: &mut Vec<egui::Event>) -> Option<Vec<egui::Event>> {
    let at = events.iter().position(|e| {
        matches!(
            e,
            egui::Event::Key { key: egui::Key::T, pressed: true, repeat: false, modifiers, .. }
                if modifiers.matches_logically(egui::Modifiers::NONE)
        )
    })?;
    let mut rest = events.split_off(at);
    rest.remove(0);
    // The text of the `T` press itself, sent next to it by the windowing layer.
    let typed_t = rest
        .iter()
        .position(|e| {
            matches!(
                e,
                egui::Event::Text(_) | egui::Event::Key { pressed: true, .. }
            )
        })
        .filter(|&j| matches!(&rest[j], egui::Event::Text(t) if t.eq_ignore_ascii_case("t")));
    if let Some(j) = typed_t {
        rest.remove(j);
    }
    Some(rest)
}

/// Takes the typing that follows the frame's first Esc or Tab out of the frame and returns it;
/// the other events stay.
///
/// Why: egui drops a text box's focus at the start of a frame that holds Esc, before the box
/// reads the frame's letters, so "… zone" and Esc typed fast enough to share a frame lost "zone"
/// to the shortcuts (`z` 1:1, `n` "disagree") and the Esc went on to stop the analysis. The
/// comment box keeps Esc for itself ([`egui::EventFilter::escape`]), reads the events up to it,
/// and then lets go of the focus; the typing after it waits a frame and is then shortcuts. A Tab
/// moves the focus on to the next field, but the box still reads the whole frame: "zone⇥AB"
/// wrote "zoneAB" into the comment instead of "AB" into Reviewer. The typing after the Tab waits
/// a frame and goes to the field that then has the focus.
pub fn typing_after_leaving(events: &mut Vec<egui::Event>) -> Vec<egui::Event> {
    let Some(at) = events.iter().position(|e| match e {
        egui::Event::Key {
            key: egui::Key::Escape,
            pressed: true,
            ..
        } => true,
        egui::Event::Key {
            key: egui::Key::Tab,
            pressed: true,
            modifiers,
            ..
        } => !modifiers.any() || modifiers.shift_only(),
        _ => false,
    }) else {
        return Vec::new();
    };
    let mut after = events.split_off(at + 1);
    let typing = after.extract_if(.., |e| is_typing(e)).collect();
    events.append(&mut after);
    typing
}

/// An event a focused text box would read as typing or editing.
pub fn is_typing(event: &egui::Event) -> bool {
    matches!(
        event,
        egui::Event::Key { .. }
            | egui::Event::Text(_)
            | egui::Event::Paste(_)
            | egui::Event::Copy
            | egui::Event::Cut
            | egui::Event::Ime(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_event(key: egui::Key, pressed: bool, modifiers: egui::Modifiers) -> egui::Event {
        egui::Event::Key {
            key,
            physical_key: Some(key),
            pressed,
            repeat: false,
            modifiers,
        }
    }

    fn press(key: egui::Key) -> egui::Event {
        key_event(key, true, egui::Modifiers::NONE)
    }

    fn release(key: egui::Key) -> egui::Event {
        key_event(key, false, egui::Modifiers::NONE)
    }

    fn text(t: &str) -> egui::Event {
        egui::Event::Text(t.into())
    }

    #[test]
    fn the_keys_after_t_in_one_frame_are_the_comment_and_those_before_stay_shortcuts() {
        use egui::Key;
        let mut events = vec![
            press(Key::Y),
            text("y"),
            release(Key::Y),
            press(Key::T),
            text("t"),
            release(Key::T),
            press(Key::R),
            text("r"),
            release(Key::R),
            press(Key::T),
            text("t"),
        ];
        let rest = split_at_focus_note(&mut events).expect("a T in the frame");
        assert_eq!(events, vec![press(Key::Y), text("y"), release(Key::Y)]);
        // Only the first T is the shortcut: the second is a letter of the comment.
        assert_eq!(
            rest,
            vec![
                release(Key::T),
                press(Key::R),
                text("r"),
                release(Key::R),
                press(Key::T),
                text("t"),
            ]
        );
    }

    #[test]
    fn the_keys_after_esc_in_one_frame_are_shortcuts_again() {
        use egui::Key;
        let moved = egui::Event::PointerMoved(egui::pos2(1.0, 2.0));
        let mut events = vec![
            press(Key::E),
            text("e"),
            press(Key::Escape),
            release(Key::Escape),
            moved.clone(),
            press(Key::Y),
            text("y"),
        ];
        let after = typing_after_leaving(&mut events);
        assert_eq!(
            events,
            vec![press(Key::E), text("e"), press(Key::Escape), moved],
            "what is not typing stays in its frame"
        );
        assert_eq!(after, vec![release(Key::Escape), press(Key::Y), text("y")]);
        let mut events = vec![press(Key::E), text("e"), release(Key::Escape)];
        assert_eq!(
            typing_after_leaving(&mut events),
            vec![],
            "a release is not an Esc"
        );
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn the_keys_after_tab_in_one_frame_wait_for_the_next_field() {
        use egui::Key;
        let shift_tab = key_event(Key::Tab, true, egui::Modifiers::SHIFT);
        for tab in [press(Key::Tab), shift_tab] {
            let mut events = vec![
                press(Key::E),
                text("e"),
                tab.clone(),
                press(Key::A),
                text("A"),
            ];
            let after = typing_after_leaving(&mut events);
            assert_eq!(events, vec![press(Key::E), text("e"), tab]);
            assert_eq!(after, vec![press(Key::A), text("A")]);
        }
        let ctrl_tab = key_event(Key::Tab, true, egui::Modifiers::CTRL);
        let mut events = vec![ctrl_tab, press(Key::A), text("A")];
        assert!(
            typing_after_leaving(&mut events).is_empty(),
            "Ctrl+Tab stays"
        );
    }

    #[test]
    fn a_frame_without_a_plain_t_is_left_alone() {
        use egui::Key;
        let ctrl_t = key_event(Key::T, true, egui::Modifiers::COMMAND);
        let before = vec![press(Key::R), text("r"), ctrl_t, release(Key::T)];
        let mut events = before.clone();
        assert_eq!(split_at_focus_note(&mut events), None);
        assert_eq!(events, before);
        // A `T` whose text did not come (an input method took it) removes nothing else.
        let mut events = vec![press(Key::T), press(Key::I), text("i")];
        assert_eq!(
            split_at_focus_note(&mut events),
            Some(vec![press(Key::I), text("i")])
        );
        assert!(events.is_empty());
    }

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
