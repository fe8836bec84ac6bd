//! The system file dialog while the viewer waits for its answer, and the way out when it never
//! shows.
//!
//! rfd asks through xdg-desktop-portal (or zenity) and blocks until the dialog closes. Where no
//! portal is installed it returns at once with nothing, and the viewer switches to its own
//! dialog ([`super::file_dialog`]). But a portal that is installed and never answers (a broken
//! desktop session, a remote X display) kept Open… waiting with no dialog on screen until rfd
//! gave up, and nothing in the window said why. After [`OFFER_OWN_AFTER`] the status bar now says
//! that the viewer is waiting for the system dialog and offers the viewer's own. A system dialog
//! that is open on another screen or behind the window still answers as before; once the user
//! takes the viewer's own, the system dialog's late answer is dropped (its token is no longer
//! awaited) and the viewer asks with its own for the rest of the run.

use std::time::{Duration, Instant};

use egui::RichText;

use super::file_dialog::Render;
use super::worker::PickPurpose;

/// How long the viewer waits before offering its own dialog: a system dialog normally appears
/// well within this, so the offer does not flash up every time.
pub const OFFER_OWN_AFTER: Duration = Duration::from_secs(2);

/// What the system dialog was asked for.
pub enum Asked {
    Pick(PickPurpose),
    /// An export: the renderer stays here, so either dialog's path can be written.
    Save {
        suggested_name: String,
        extension: &'static str,
        render: Render,
    },
}

/// The system dialog being waited for.
pub struct Waiting {
    /// Matches the answer ([`super::worker::Msg::Answered`]) to this request.
    pub token: u64,
    pub since: Instant,
    pub asked: Asked,
}

impl Waiting {
    pub fn offer_own(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= OFFER_OWN_AFTER
    }
}

/// The status bar's line while the offer stands; `true` when the user takes the viewer's own
/// dialog.
pub fn waiting_ui(ui: &mut egui::Ui) -> bool {
    ui.label(RichText::new("Waiting for the system file dialog…").weak());
    ui.button("Use the viewer's own dialog")
        .on_hover_text(
            "No dialog on screen? The desktop's file dialog service is not answering: the viewer \
             asks with its own from now on (or start it with CXR_VIEWER_FILE_DIALOG=builtin)",
        )
        .clicked()
}
