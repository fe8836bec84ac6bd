//! Frame selector of multi-frame DICOM images: previous/next buttons, a slider and "k / N".
//!
//! Shown only when the study on screen has more than one frame. Frames are counted from 1 on
//! screen and from 0 in [`crate::io::StudyMetadata::frame`]. The selector only returns an
//! [`Action`]; `app.rs` loads the frame (a background job) and re-runs the analysis for it.

use super::app::Action;

/// The frame to show after a step of `delta` from `frame` among `frames`, clamped to the ends;
/// `None` when the step goes nowhere (single frame, or already at that end).
pub fn step(frames: u32, frame: u32, delta: i32) -> Option<u32> {
    if frames < 2 {
        return None;
    }
    let target = (i64::from(frame) + i64::from(delta)).clamp(0, i64::from(frames) - 1);
    let target = u32::try_from(target).ok()?;
    (target != frame).then_some(target)
}

/// Draws the selector for a study of `frames` frames showing `frame` (0-based).
pub fn frame_selector_ui(ui: &mut egui::Ui, frames: u32, frame: u32) -> Option<Action> {
    if frames < 2 {
        return None;
    }
    let mut action = None;
    ui.separator();
    ui.add_enabled_ui(frame > 0, |ui| {
        if ui.button("<").on_hover_text("Previous frame (,)").clicked() {
            action = Some(Action::FrameStep(-1));
        }
    });
    // The slider edits a 1-based copy; a release on another value asks for that frame.
    let mut shown = frame + 1;
    let slider = ui
        .add(
            egui::Slider::new(&mut shown, 1..=frames)
                .text(format!("/ {frames} frames"))
                .integer(),
        )
        .on_hover_text("Frame of this multi-frame image (, and . step through)");
    if slider.changed() && shown != frame + 1 {
        action = Some(Action::Frame(shown.saturating_sub(1)));
    }
    ui.add_enabled_ui(frame + 1 < frames, |ui| {
        if ui.button(">").on_hover_text("Next frame (.)").clicked() {
            action = Some(Action::FrameStep(1));
        }
    });
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_stop_at_the_ends() {
        assert_eq!(step(3, 0, 1), Some(1));
        assert_eq!(step(3, 2, 1), None);
        assert_eq!(step(3, 0, -1), None);
        assert_eq!(step(3, 2, -1), Some(1));
        assert_eq!(step(3, 1, 10), Some(2));
        assert_eq!(step(1, 0, 1), None);
        assert_eq!(step(0, 0, 1), None);
    }
}
