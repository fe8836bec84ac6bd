//! The viewer's own file dialog, for where the desktop shows none.
//!
//! `rfd` shows the desktop's dialog through xdg-desktop-portal, or zenity. On a machine with
//! neither (a minimal Linux install, a remote X session, a kiosk) it returns no path at once, as
//! for a cancel, and Open, Open folder, the exports and the notes file buttons did nothing
//! useful: the viewer could only say so. From the first such empty answer
//! ([`super::worker::Msg::Answered`]'s `no_dialog`) the viewer asks with this dialog instead,
//! for the same purpose, and keeps doing so for the rest of the run. A system dialog that does
//! not answer at all is offered this one after two seconds ([`super::system_dialog`]).
//! `CXR_VIEWER_FILE_DIALOG=builtin` asks with it from the start.
//!
//! Why not a crate: `egui_file` 0.29 (the one on our egui version) leaves its two text fields
//! without an accessible name, which our UI tests refuse for every widget, and draws its icons
//! with emoji that egui's default fonts lack; `egui-file-dialog` still needs egui 0.36. What is
//! here is small: a folder listing ([`list_folder`]), what the main button does with the name
//! typed ([`confirm_step`], unit-tested), and an `egui::Modal` that shows them.
//!
//! Behaviour, as the desktop dialogs do it: a folder field (type or paste a path, Enter), the
//! folder's entries (folders first, then files, by name regardless of case; hidden ones on
//! request), a file-name field (a name, or a whole path); a click puts an entry's name in the
//! field, a double click opens it; in Open…, Ctrl-click and Shift-click pick several images
//! ([`click_selection`]), listed quoted in the name field, and open them as a set. It starts in
//! the folder last used in this run, else the current study's, else the working folder; an export's name is filled in; a bare name gets the
//! export's extension; an existing file is replaced only after "Replace?".

use std::path::{Path, PathBuf};

use egui::{Context, RichText};

use super::worker::PickPurpose;

/// Writes an export to the path the user chose; runs on a worker thread.
pub type Render = Box<dyn FnOnce(&Path) -> Result<(), String> + Send>;

/// The environment variable that makes the viewer use its own dialog from the start.
pub const ENV_BUILTIN: &str = "CXR_VIEWER_FILE_DIALOG";

/// `CXR_VIEWER_FILE_DIALOG=builtin` (any case) asks for the viewer's own dialog.
pub fn builtin_requested(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("builtin"))
}

/// What the dialog is asking for.
pub enum Wanted {
    Pick(PickPurpose),
    /// An export: where to write it, then `render` writes it there.
    Save(Render),
}

/// What came of it.
pub enum Outcome {
    Picked(PickPurpose, PathBuf),
    /// Several images chosen together in Open… (Ctrl- or Shift-click), in list order: opened as
    /// a set, as when dropped together.
    PickedFiles(Vec<PathBuf>),
    Save(PathBuf, Render),
    Cancelled,
}

/// The three ways a path is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An existing file.
    OpenFile,
    /// An existing folder: the one shown, or the one named.
    OpenFolder,
    /// A file to write (or, for the notes database, to open or create). A bare name gets
    /// `extension`; `overwrites`: an existing file is asked about first.
    Save {
        extension: &'static str,
        overwrites: bool,
    },
}

/// One entry of the folder shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// As shown (lossy for names that are not UTF-8).
    pub name: String,
    pub path: PathBuf,
    /// A folder, or a link to one.
    pub is_dir: bool,
}

/// The entries of `dir`: folders first, then files, each by name regardless of case; names
/// starting with a dot only when `show_hidden`. An unreadable folder is a one-line error.
pub fn list_folder(dir: &Path, show_hidden: bool) -> Result<Vec<Entry>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut entries: Vec<Entry> = read
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                // Follows links: a linked folder opens like a folder.
                is_dir: path.is_dir(),
                path,
            }
        })
        .filter(|e| show_hidden || !e.name.starts_with('.'))
        .collect();
    entries.sort_by_cached_key(|e| (!e.is_dir, e.name.to_lowercase(), e.name.clone()));
    Ok(entries)
}

/// What Open lists unless "All files" is ticked, as the desktop dialog's filter does: the
/// extensions the viewer reads, and files with none (DICOM files often have none: `IM0001`).
pub const IMAGE_EXTENSIONS: &[&str] = &["dcm", "dicom", "png", "jpg", "jpeg"];

/// Whether `entry` is listed: folders always; files when all are asked for, or when they may be
/// an image the viewer reads.
pub fn listed(entry: &Entry, all_files: bool) -> bool {
    if entry.is_dir || all_files {
        return true;
    }
    match entry.path.extension() {
        None => true,
        Some(ext) => {
            let ext = ext.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&ext.as_str())
        }
    }
}

/// What the main button (or Enter) does with the name typed, in folder `dir`.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Show this folder instead.
    Enter(PathBuf),
    /// The answer.
    Choose(PathBuf),
    /// The answer, once the user agrees to replace the file that is there.
    AskReplace(PathBuf),
    /// Nothing to do yet; why, in one line.
    Refuse(String),
}

/// Makes folder `name` in `dir` for a save dialog's "New folder…": one level, not over
/// anything that exists; the error in one line.
pub fn create_folder(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("type the new folder's name".into());
    }
    let folder = dir.join(name);
    std::fs::create_dir(&folder).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("{} already exists", folder.display()),
        _ => format!("cannot create {}: {e}", folder.display()),
    })?;
    Ok(folder)
}

/// A bare file name gets the extension; a name with any extension keeps it.
pub fn with_extension(path: PathBuf, extension: &str) -> PathBuf {
    if path.extension().is_none() && path.file_name().is_some() {
        path.with_extension(extension)
    } else {
        path
    }
}

pub fn confirm_step(kind: Kind, dir: &Path, name: &str) -> Step {
    let name = name.trim();
    // A whole path typed into the name field replaces the folder (`join` does that).
    let typed = dir.join(name);
    match kind {
        Kind::OpenFolder if name.is_empty() => Step::Choose(dir.to_path_buf()),
        Kind::OpenFolder if typed.is_dir() => Step::Choose(typed),
        Kind::OpenFolder => Step::Refuse(format!("no such folder: {}", typed.display())),
        _ if name.is_empty() => Step::Refuse("type a file name or choose one".into()),
        _ if typed.is_dir() => Step::Enter(typed),
        Kind::OpenFile if typed.is_file() => Step::Choose(typed),
        Kind::OpenFile => Step::Refuse(format!("no such file: {}", typed.display())),
        Kind::Save {
            extension,
            overwrites,
        } => {
            let path = with_extension(typed, extension);
            match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
                    Step::Refuse(format!("no such folder: {}", parent.display()))
                }
                _ if path.is_dir() => Step::Enter(path),
                _ if overwrites && path.exists() => Step::AskReplace(path),
                _ => Step::Choose(path),
            }
        }
    }
}

pub struct InAppDialog {
    title: &'static str,
    kind: Kind,
    wanted: Wanted,
    dir: PathBuf,
    entries: Result<Vec<Entry>, String>,
    show_hidden: bool,
    /// `Some(all)` when the list can be narrowed to images ([`listed`]): Open… only.
    all_files: Option<bool>,
    /// The folder field as typed.
    dir_text: String,
    /// The file-name field.
    name: String,
    /// Why the last confirm did nothing.
    refused: Option<String>,
    /// An existing file that would be overwritten: asked about before anything is written.
    replace: Option<PathBuf>,
    /// The name field takes the keyboard on the first frame.
    focus_name: bool,
    /// The entry picked in the list (a click or the arrow keys); with several files picked,
    /// the last one clicked, from which Shift-click extends.
    selected: Option<PathBuf>,
    /// The other files picked along with `selected` (Ctrl- or Shift-click), when the dialog
    /// takes several (`several`).
    more: Vec<PathBuf>,
    /// Open… takes several images at once, as the desktop's dialog does.
    several: bool,
    /// The arrow keys moved the selection: bring it into view.
    scroll_to_selected: bool,
    /// The new folder's name, while its row is shown (save dialogs).
    new_folder: Option<String>,
    focus_new_folder: bool,
}

impl InAppDialog {
    pub fn pick(purpose: PickPurpose, start_dir: &Path) -> Self {
        let (title, kind, name) = match purpose {
            PickPurpose::OpenFile => ("Open chest X-ray", Kind::OpenFile, ""),
            PickPurpose::ImportNotes => ("Import notes", Kind::OpenFile, ""),
            PickPurpose::OpenFolder => ("Open folder of studies", Kind::OpenFolder, ""),
            PickPurpose::NotesDb => (
                "Notes database: an existing file or a new one",
                Kind::Save {
                    extension: "sqlite3",
                    overwrites: false,
                },
                "notes.sqlite3",
            ),
            PickPurpose::ExportNotes => (
                "Export notes",
                Kind::Save {
                    extension: "csv",
                    overwrites: true,
                },
                "cxr-notes.csv",
            ),
        };
        let mut dialog = Self::new(title, kind, Wanted::Pick(purpose), start_dir, name);
        if purpose == PickPurpose::OpenFile {
            dialog.all_files = Some(false);
            dialog.several = true;
        }
        dialog
    }

    pub fn save(
        suggested_name: &str,
        extension: &'static str,
        render: Render,
        start_dir: &Path,
    ) -> Self {
        let kind = Kind::Save {
            extension,
            overwrites: true,
        };
        let title = match extension {
            "png" => "Export the view as PNG",
            "json" => "Export the report (JSON)",
            _ => "Export",
        };
        Self::new(title, kind, Wanted::Save(render), start_dir, suggested_name)
    }

    fn new(title: &'static str, kind: Kind, wanted: Wanted, start_dir: &Path, name: &str) -> Self {
        let mut dialog = Self {
            title,
            kind,
            wanted,
            dir: PathBuf::new(),
            entries: Ok(Vec::new()),
            show_hidden: false,
            all_files: None,
            dir_text: String::new(),
            name: name.to_string(),
            refused: None,
            replace: None,
            focus_name: true,
            selected: None,
            more: Vec::new(),
            several: false,
            scroll_to_selected: false,
            new_folder: None,
            focus_new_folder: false,
        };
        dialog.enter(start_dir.to_path_buf());
        dialog
    }

    fn enter(&mut self, dir: PathBuf) {
        // `..` and `.` typed into the folder field read as what they mean.
        let dir = dir.canonicalize().unwrap_or(dir);
        self.entries = list_folder(&dir, self.show_hidden);
        self.dir_text = dir.display().to_string();
        self.dir = dir;
        self.selected = None;
        self.more.clear();
        self.refused = None;
        self.scroll_to_selected = false;
        // The keyboard goes on from the name field: arrows, Enter, typing.
        self.focus_name = true;
        // A name typed or picked for the folder left behind means nothing here; an export's
        // name goes where the user goes.
        if !matches!(self.kind, Kind::Save { .. }) {
            self.name.clear();
        }
    }

    /// Where the entries shown are in `entries`, in order (indices, not copies: a folder of
    /// thousands of files is drawn every frame).
    fn listed(&self) -> Vec<usize> {
        let all = self.all_files.unwrap_or(true);
        match &self.entries {
            Ok(entries) => (0..entries.len())
                .filter(|&i| listed(&entries[i], all))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn select(&mut self, entry: &Entry) {
        self.selected = Some(entry.path.clone());
        self.more.clear();
        // A file's name goes into the field (to open it, or to write over it); a folder's only
        // when a folder is what is asked for, so an export's name survives a look around.
        if !entry.is_dir || self.kind == Kind::OpenFolder {
            self.name = entry.name.clone();
        }
        self.refused = None;
    }

    /// A click on file `entry` with Ctrl (`toggle`) or Shift (`range`) held, in a dialog that
    /// takes several files ([`click_selection`]); the name field then lists them, quoted, as
    /// the desktop dialogs do.
    fn select_with(&mut self, entry: &Entry, toggle: bool, range: bool) {
        let Ok(entries) = &self.entries else {
            return;
        };
        let files: Vec<PathBuf> = self
            .listed()
            .into_iter()
            .map(|i| &entries[i])
            .filter(|e| !e.is_dir)
            .map(|e| e.path.clone())
            .collect();
        let (anchor, more) = click_selection(
            &files,
            self.selected.as_deref().filter(|s| !s.is_dir()),
            &self.more,
            &entry.path,
            toggle,
            range,
        );
        self.selected = anchor;
        self.more = more;
        self.refused = None;
        self.name = match self.picked().as_slice() {
            [one] => one.name.clone(),
            several => several
                .iter()
                .map(|e| format!("\"{}\"", e.name))
                .collect::<Vec<_>>()
                .join(" "),
        };
    }

    /// Every entry picked, in list order (by name, as listed).
    fn picked(&self) -> Vec<&Entry> {
        let Ok(entries) = &self.entries else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|e| self.selected.as_ref() == Some(&e.path) || self.more.contains(&e.path))
            .collect()
    }

    /// The arrow keys: the next or previous entry shown.
    fn select_step(&mut self, delta: isize) {
        let (listed, Ok(entries)) = (self.listed(), &self.entries) else {
            return;
        };
        let current = self
            .selected
            .as_ref()
            .and_then(|s| listed.iter().position(|&i| &entries[i].path == s));
        if let Some(i) = step_index(current, delta, listed.len()) {
            let entry = entries[listed[i]].clone();
            self.select(&entry);
            self.scroll_to_selected = true;
        }
    }

    /// The files to open together, when the main button (or Enter) is for several picked in
    /// the list (the name field, if edited since, dropped them).
    fn confirm_several(&self) -> Option<Vec<PathBuf>> {
        (self.several && !self.more.is_empty())
            .then(|| self.picked().into_iter().map(|e| e.path.clone()).collect())
            .filter(|files: &Vec<PathBuf>| files.len() > 1)
    }

    /// The main button (or Enter): [`confirm_selected`] on what is picked and typed.
    fn confirm(&mut self) -> Option<PathBuf> {
        let step = confirm_selected(self.kind, &self.dir, self.selected.as_deref(), &self.name);
        match step {
            Step::Enter(dir) => {
                self.enter(dir);
                None
            }
            Step::Choose(path) => Some(path),
            Step::AskReplace(path) => {
                self.replace = Some(path);
                None
            }
            Step::Refuse(why) => {
                self.refused = Some(why);
                None
            }
        }
    }

    fn button_text(&self) -> &'static str {
        match self.kind {
            Kind::OpenFile => "Open",
            Kind::OpenFolder => "Open folder",
            Kind::Save { .. } => "Save",
        }
    }
}

/// The main button (or Enter) with a folder selected in the list opens it (or, when a folder is
/// asked for, chooses it); otherwise it acts on the name typed ([`confirm_step`]).
pub fn confirm_selected(kind: Kind, dir: &Path, selected: Option<&Path>, name: &str) -> Step {
    match selected.filter(|p| p.is_dir()) {
        Some(folder) if kind == Kind::OpenFolder => Step::Choose(folder.to_path_buf()),
        Some(folder) => Step::Enter(folder.to_path_buf()),
        None => confirm_step(kind, dir, name),
    }
}

/// The files picked after a click on `clicked`, as `(anchor, others)`: `files` are the files
/// listed, in order; `anchor` (the last file clicked) and `others` are picked now. A plain click
/// picks `clicked` alone; Ctrl (`toggle`) adds it, or takes it out (the anchor then passes to
/// the last other); Shift (`range`) picks every file from the anchor to it, the anchor staying.
pub fn click_selection(
    files: &[PathBuf],
    anchor: Option<&Path>,
    others: &[PathBuf],
    clicked: &Path,
    toggle: bool,
    range: bool,
) -> (Option<PathBuf>, Vec<PathBuf>) {
    let position = |p: &Path| files.iter().position(|f| f == p);
    if let (true, Some(anchor), Some(to)) = (range, anchor, position(clicked)) {
        if let Some(from) = position(anchor) {
            let (lo, hi) = (from.min(to), from.max(to));
            let others = files[lo..=hi]
                .iter()
                .filter(|f| f.as_path() != anchor)
                .cloned()
                .collect();
            return (Some(anchor.to_path_buf()), others);
        }
    }
    if !toggle {
        return (Some(clicked.to_path_buf()), Vec::new());
    }
    let mut picked: Vec<PathBuf> = anchor
        .map(Path::to_path_buf)
        .into_iter()
        .chain(others.iter().cloned())
        .collect();
    if let Some(i) = picked.iter().position(|p| p == clicked) {
        picked.remove(i);
        let anchor = match anchor {
            Some(a) if a != clicked => Some(a.to_path_buf()),
            _ => picked.last().cloned(),
        };
        picked.retain(|p| Some(p) != anchor.as_ref());
        (anchor, picked)
    } else {
        (Some(clicked.to_path_buf()), picked)
    }
}

/// Moving a selection at `current` by `delta` in a list of `len`: from none, Down takes the
/// first and Up the last; it stops at the ends.
pub fn step_index(current: Option<usize>, delta: isize, len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let last = len as isize - 1;
    let next = match current {
        None if delta > 0 => 0,
        None => last,
        Some(i) => (i as isize + delta).clamp(0, last),
    };
    Some(next as usize)
}

enum Click {
    Up,
    EnterTyped,
    Select(Entry),
    /// A file clicked with Ctrl (`toggle`) or Shift (`range`) held, where several may be picked.
    SelectMore {
        entry: Entry,
        toggle: bool,
        range: bool,
    },
    Activate(Entry),
    Confirm,
    Cancel,
    Hidden,
    Step(isize),
    /// "New folder…": show or hide the row that names it.
    NewFolder,
    CreateFolder,
}

/// Draws the dialog while there is one; returns what came of it once, and then there is none.
pub fn show(slot: &mut Option<InAppDialog>, ctx: &Context) -> Option<Outcome> {
    let dialog = slot.as_mut()?;
    let chosen = if let Some(path) = dialog.replace.clone() {
        // Drawn under the question, which sits on top and takes the input.
        let _ = dialog_ui(dialog, ctx);
        match replace_ui(ctx, &path) {
            Some(true) => Some(path),
            Some(false) => {
                dialog.replace = None;
                None
            }
            None => None,
        }
    } else {
        match dialog_ui(dialog, ctx)? {
            Click::Up => {
                if let Some(parent) = dialog.dir.parent().map(Path::to_path_buf) {
                    dialog.enter(parent);
                }
                None
            }
            Click::EnterTyped => {
                let typed = PathBuf::from(dialog.dir_text.trim());
                if typed.is_dir() {
                    dialog.enter(typed);
                    None
                } else if typed.is_file() && dialog.kind == Kind::OpenFile {
                    Some(typed)
                } else {
                    dialog.refused = Some(format!("no such folder: {}", typed.display()));
                    None
                }
            }
            Click::Select(entry) => {
                dialog.select(&entry);
                None
            }
            Click::SelectMore {
                entry,
                toggle,
                range,
            } => {
                dialog.select_with(&entry, toggle, range);
                None
            }
            Click::Step(delta) => {
                dialog.select_step(delta);
                None
            }
            Click::Activate(entry) if entry.is_dir => {
                dialog.enter(entry.path);
                None
            }
            // A file double-clicked: picked, then confirmed as the main button would.
            Click::Activate(entry) => {
                dialog.select(&entry);
                dialog.confirm()
            }
            Click::Confirm => match dialog.confirm_several() {
                Some(files) => {
                    *slot = None;
                    return Some(Outcome::PickedFiles(files));
                }
                None => dialog.confirm(),
            },
            Click::NewFolder => {
                dialog.new_folder = match dialog.new_folder {
                    Some(_) => None,
                    None => Some(String::new()),
                };
                dialog.focus_new_folder = dialog.new_folder.is_some();
                None
            }
            Click::CreateFolder => {
                let name = dialog.new_folder.clone().unwrap_or_default();
                match create_folder(&dialog.dir, &name) {
                    Ok(folder) => {
                        dialog.new_folder = None;
                        dialog.enter(folder);
                    }
                    Err(why) => dialog.refused = Some(why),
                }
                None
            }
            Click::Hidden => {
                // The same folder listed again; what is typed and picked stays.
                dialog.entries = list_folder(&dialog.dir, dialog.show_hidden);
                None
            }
            Click::Cancel => {
                *slot = None;
                return Some(Outcome::Cancelled);
            }
        }
    };
    let chosen = chosen?;
    let dialog = slot.take()?;
    Some(match dialog.wanted {
        Wanted::Pick(purpose) => Outcome::Picked(purpose, chosen),
        Wanted::Save(render) => Outcome::Save(chosen, render),
    })
}

fn dialog_ui(d: &mut InAppDialog, ctx: &Context) -> Option<Click> {
    let mut click = None;
    let asking = d.replace.is_none();
    // Up and Down walk the list from the name field too, as in the desktop dialogs (a one-line
    // field has no use for them); Alt+Up is the folder above.
    if asking {
        ctx.input_mut(|i| {
            if i.consume_key(egui::Modifiers::ALT, egui::Key::ArrowUp) {
                click = Some(Click::Up);
            } else if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowDown) {
                click = Some(Click::Step(1));
            } else if i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowUp) {
                click = Some(Click::Step(-1));
            }
        });
        // Enter with no field holding the keyboard (a field's own Enter is handled below).
        if !ctx.egui_wants_keyboard_input()
            && ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Enter))
        {
            click = Some(Click::Confirm);
        }
    }
    let screen = ctx.content_rect().size();
    let width = (screen.x - 40.0).clamp(280.0, 620.0);
    // The list takes what the window leaves (at 800 × 500 the whole dialog still fits, with
    // the new-folder row and a refusal line shown).
    let extra_rows = usize::from(d.new_folder.is_some()) + usize::from(d.refused.is_some());
    let list_height = (screen.y - 230.0 - 28.0 * extra_rows as f32).clamp(80.0, 320.0);
    let modal = egui::Modal::new(egui::Id::unique("cxr-file-dialog")).show(ctx, |ui| {
        ui.set_width(width);
        ui.heading(d.title);
        ui.add_space(4.0);
        let click = folder_row(ui, d);
        ui.separator();
        let click = entries_ui(ui, d, list_height).or(click);
        ui.separator();
        let click = name_row(ui, d).or(click);
        buttons_row(ui, d).or(click)
    });
    if let Some(c) = modal.inner {
        click = Some(c);
    }
    // Escape cancels; a click beside the dialog does not (it would lose what was typed).
    if asking && modal.is_top_modal && ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
        click = Some(Click::Cancel);
    }
    if !asking {
        return None;
    }
    click
}

/// "Up" and the folder field.
fn folder_row(ui: &mut egui::Ui, d: &mut InAppDialog) -> Option<Click> {
    let mut click = None;
    ui.horizontal(|ui| {
        let up = ui
            .add_enabled(d.dir.parent().is_some(), egui::Button::new("Up"))
            .on_hover_text("The folder above (Alt+Up)");
        if up.clicked() {
            click = Some(Click::Up);
        }
        let label = ui.label("Folder");
        let field = ui.add(
            egui::TextEdit::singleline(&mut d.dir_text)
                .desired_width(f32::INFINITY)
                .hint_text("a folder's path"),
        );
        let field = field.labelled_by(label.id);
        if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            click = Some(Click::EnterTyped);
        }
    });
    click
}

/// The folder's entries, `list_height` tall, or why it cannot be read.
fn entries_ui(ui: &mut egui::Ui, d: &mut InAppDialog, list_height: f32) -> Option<Click> {
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
    let scroll_to = std::mem::take(&mut d.scroll_to_selected);
    let listed = d.listed();
    let entries = match &d.entries {
        Ok(entries) => entries,
        Err(e) => {
            ui.label(RichText::new(e).color(ui.visuals().error_fg_color));
            ui.add_space((list_height - row_height).max(0.0));
            return None;
        }
    };
    let selected = listed
        .iter()
        .position(|&i| d.selected.as_ref() == Some(&entries[i].path));
    let mut area = egui::ScrollArea::vertical()
        .id_salt("cxr-file-dialog-list")
        .max_height(list_height)
        .min_scrolled_height(list_height)
        .auto_shrink([false, false]);
    if let (true, Some(i)) = (scroll_to, selected) {
        // Keeps the entry the arrow keys reached in view (rows outside the visible range are
        // not laid out, so the offset is set, not scrolled to).
        let top = i as f32 * row_height;
        let id = ui.make_persistent_id("cxr-file-dialog-list");
        let offset =
            egui::scroll_area::State::load(ui.ctx(), id).map_or(0.0, |s| s.clamped_offset().y);
        let visible = list_height - row_height;
        if top < offset {
            area = area.vertical_scroll_offset(top);
        } else if top > offset + visible {
            area = area.vertical_scroll_offset(top - visible);
        }
    }
    let folder_only = d.kind == Kind::OpenFolder;
    // Ctrl adds a file to the ones picked, Shift a range ([`click_selection`]).
    let (toggle, range) = ui.input(|i| (i.modifiers.command, i.modifiers.shift));
    let mut click = None;
    area.show_rows(ui, row_height, listed.len(), |ui, rows| {
        ui.with_layout(ui.layout().with_cross_justify(true), |ui| {
            for (i, &index) in listed.iter().enumerate().take(rows.end).skip(rows.start) {
                let entry = &entries[index];
                let text = if entry.is_dir {
                    RichText::new(format!("{}/", entry.name)).strong()
                } else {
                    RichText::new(&entry.name)
                };
                let is_selected = selected == Some(i)
                    || d.more.contains(&entry.path)
                    || (selected.is_none() && !entry.is_dir && entry.name == d.name);
                let enabled = entry.is_dir || !folder_only;
                let row = ui.add_enabled(enabled, egui::Button::selectable(is_selected, text));
                if row.double_clicked() {
                    click = Some(Click::Activate(entry.clone()));
                } else if row.clicked() && d.several && !entry.is_dir && (toggle || range) {
                    click = Some(Click::SelectMore {
                        entry: entry.clone(),
                        toggle,
                        range,
                    });
                } else if row.clicked() {
                    click = Some(Click::Select(entry.clone()));
                }
            }
        });
    });
    if listed.is_empty() && !entries.is_empty() {
        ui.weak("No folders or images here: tick All files to see the other files.");
    } else if listed.is_empty() {
        ui.weak("(empty folder)");
    }
    click
}

/// The file-name (or folder-name) field, and why the last answer was refused.
fn name_row(ui: &mut egui::Ui, d: &mut InAppDialog) -> Option<Click> {
    let folder_only = d.kind == Kind::OpenFolder;
    let mut click = None;
    ui.horizontal(|ui| {
        let label = ui.label(if folder_only {
            "Folder name"
        } else {
            "File name"
        });
        let field = ui.add(
            egui::TextEdit::singleline(&mut d.name)
                .desired_width(f32::INFINITY)
                .hint_text(if folder_only {
                    "empty: the folder shown"
                } else {
                    "a name, or a whole path"
                }),
        );
        let field = field.labelled_by(label.id);
        if field.changed() {
            // What is typed wins over what was picked in the list.
            d.selected = None;
            d.more.clear();
        }
        if std::mem::take(&mut d.focus_name) {
            field.request_focus();
        }
        if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
            click = Some(Click::Confirm);
        }
    });
    if let Some(why) = &d.refused {
        ui.label(RichText::new(why).color(ui.visuals().error_fg_color));
    }
    click
}

/// The list's filters, then the main button and Cancel.
fn buttons_row(ui: &mut egui::Ui, d: &mut InAppDialog) -> Option<Click> {
    let mut click = None;
    ui.horizontal(|ui| {
        if ui.checkbox(&mut d.show_hidden, "Hidden files").changed() {
            click = Some(Click::Hidden);
        }
        if let Some(all) = d.all_files.as_mut() {
            ui.checkbox(all, "All files").on_hover_text(
                "Unticked: DICOM, PNG and JPEG files, and files with no extension \
                 (as DICOM files often are)",
            );
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("Cancel").clicked() {
                click = Some(Click::Cancel);
            }
            if ui.button(d.button_text()).clicked() {
                click = Some(Click::Confirm);
            }
            if matches!(d.kind, Kind::Save { .. })
                && ui
                    .button("New folder…")
                    .on_hover_text("Make a folder here and go into it")
                    .clicked()
            {
                click = Some(Click::NewFolder);
            }
        });
    });
    let Some(name) = d.new_folder.as_mut() else {
        return click;
    };
    ui.horizontal(|ui| {
        let label = ui.label("New folder");
        let field = ui
            .add(egui::TextEdit::singleline(name).hint_text("its name"))
            .labelled_by(label.id);
        if std::mem::take(&mut d.focus_new_folder) {
            field.request_focus();
        }
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Create").clicked() || entered {
            click = Some(Click::CreateFolder);
        }
    });
    click
}

/// "Replace NAME?": `Some(true)` replace, `Some(false)` back to the dialog, `None` not yet.
fn replace_ui(ctx: &Context, path: &Path) -> Option<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let folder = path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut answer = None;
    let modal = egui::Modal::new(egui::Id::unique("cxr-file-dialog-replace")).show(ctx, |ui| {
        ui.set_max_width(460.0);
        ui.heading("Replace file?");
        ui.label(format!("{name} already exists in {folder}."));
        ui.label("Replacing it overwrites what it holds.");
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            if ui.button("Replace").clicked() {
                answer = Some(true);
            }
            if ui.button("Choose another name").clicked() {
                answer = Some(false);
            }
        });
    });
    if modal.is_top_modal && ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
        answer = Some(false);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two folders and four files, one of them hidden; removed when dropped.
    fn scratch() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("Sub")).unwrap();
        std::fs::create_dir_all(dir.join("another")).unwrap();
        for f in ["b.png", "A.dcm", ".hidden", "IM0001"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        tmp
    }

    /// The names listed in `dir`, as the dialog shows them.
    fn shown_names(dir: &Path, show_hidden: bool, all_files: bool) -> Vec<String> {
        list_folder(dir, show_hidden)
            .unwrap()
            .into_iter()
            .filter(|e| listed(e, all_files))
            .map(|e| e.name)
            .collect()
    }

    #[test]
    fn ctrl_adds_or_removes_a_file_and_shift_picks_a_range_from_the_anchor() {
        let files: Vec<PathBuf> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let p = |n: &str| PathBuf::from(n);
        let click = |anchor: Option<&str>, others: &[&str], clicked: &str, toggle, range| {
            let others: Vec<PathBuf> = others.iter().map(|o| p(o)).collect();
            let anchor = anchor.map(p);
            click_selection(
                &files,
                anchor.as_deref(),
                &others,
                &p(clicked),
                toggle,
                range,
            )
        };
        // A plain click: that file alone.
        assert_eq!(
            click(Some("a"), &["b"], "d", false, false),
            (Some(p("d")), vec![])
        );
        // Ctrl adds, the file clicked becoming the anchor.
        assert_eq!(
            click(Some("a"), &[], "c", true, false),
            (Some(p("c")), vec![p("a")])
        );
        // Ctrl on a picked file takes it out; on the anchor, the last other takes over.
        assert_eq!(
            click(Some("c"), &["a", "e"], "a", true, false),
            (Some(p("c")), vec![p("e")])
        );
        assert_eq!(
            click(Some("c"), &["a", "e"], "c", true, false),
            (Some(p("e")), vec![p("a")])
        );
        assert_eq!(click(Some("c"), &[], "c", true, false), (None, vec![]));
        // Ctrl with nothing picked: that file.
        assert_eq!(click(None, &[], "b", true, false), (Some(p("b")), vec![]));
        // Shift: from the anchor to the file, either way, the anchor kept; what else was
        // picked is replaced.
        assert_eq!(
            click(Some("b"), &["e"], "d", false, true),
            (Some(p("b")), vec![p("c"), p("d")])
        );
        assert_eq!(
            click(Some("d"), &[], "b", false, true),
            (Some(p("d")), vec![p("b"), p("c")])
        );
        // Shift with no anchor (or one no longer listed): a plain click.
        assert_eq!(click(None, &[], "b", false, true), (Some(p("b")), vec![]));
        assert_eq!(
            click(Some("z"), &[], "b", false, true),
            (Some(p("b")), vec![])
        );
    }

    #[test]
    fn folders_first_then_files_by_name_hidden_on_request() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        assert_eq!(
            shown_names(&dir, false, true),
            ["another", "Sub", "A.dcm", "b.png", "IM0001"]
        );
        assert_eq!(
            shown_names(&dir, true, true),
            ["another", "Sub", ".hidden", "A.dcm", "b.png", "IM0001"]
        );
        let err = list_folder(&dir.join("missing"), false).unwrap_err();
        assert!(
            err.starts_with("cannot read ") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn open_lists_what_may_be_an_image_unless_all_files_are_asked_for() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("notes.csv"), b"x").unwrap();
        std::fs::write(dir.join("SCAN.JPEG"), b"x").unwrap();
        assert_eq!(
            shown_names(&dir, false, false),
            ["another", "Sub", "A.dcm", "b.png", "IM0001", "SCAN.JPEG"]
        );
        assert_eq!(
            shown_names(&dir, false, true),
            [
                "another",
                "Sub",
                "A.dcm",
                "b.png",
                "IM0001",
                "notes.csv",
                "SCAN.JPEG"
            ]
        );
    }

    #[test]
    fn what_the_main_button_does_with_the_name_typed() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("notes.sqlite3"), b"x").unwrap();
        let at = |name: &str| dir.join(name);
        let export = Kind::Save {
            extension: "png",
            overwrites: true,
        };
        // The notes database: an existing file is opened, not replaced.
        let notes = Kind::Save {
            extension: "sqlite3",
            overwrites: false,
        };
        let open = Kind::OpenFile;
        let folder = Kind::OpenFolder;
        let whole = at("b.png").display().to_string();
        let cases = [
            (open, "IM0001", Step::Choose(at("IM0001"))),
            (open, "Sub", Step::Enter(at("Sub"))),
            // A whole path typed into the name field.
            (open, whole.as_str(), Step::Choose(at("b.png"))),
            (
                open,
                "",
                Step::Refuse("type a file name or choose one".into()),
            ),
            (
                open,
                "nope.png",
                Step::Refuse(format!("no such file: {}", at("nope.png").display())),
            ),
            (folder, "", Step::Choose(dir.clone())),
            (folder, "Sub", Step::Choose(at("Sub"))),
            (
                folder,
                "b.png",
                Step::Refuse(format!("no such folder: {}", at("b.png").display())),
            ),
            // A bare name gets the extension; a new file is chosen, an existing one asked about.
            (export, "view", Step::Choose(at("view.png"))),
            (export, " b ", Step::AskReplace(at("b.png"))),
            (export, "IM0001.jpeg", Step::Choose(at("IM0001.jpeg"))),
            (export, "Sub", Step::Enter(at("Sub"))),
            (
                export,
                "gone/view.png",
                Step::Refuse(format!("no such folder: {}", at("gone").display())),
            ),
            (notes, "notes", Step::Choose(at("notes.sqlite3"))),
        ];
        for (kind, name, want) in cases {
            assert_eq!(confirm_step(kind, &dir, name), want, "{kind:?} {name:?}");
        }
    }

    #[test]
    fn a_folder_selected_in_the_list_is_opened_or_chosen() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        let sub = dir.join("Sub");
        let export = Kind::Save {
            extension: "png",
            overwrites: true,
        };
        // Save with a folder selected: into it, the name typed kept for later.
        assert_eq!(
            confirm_selected(export, &dir, Some(&sub), "view.png"),
            Step::Enter(sub.clone())
        );
        assert_eq!(
            confirm_selected(Kind::OpenFile, &dir, Some(&sub), ""),
            Step::Enter(sub.clone())
        );
        assert_eq!(
            confirm_selected(Kind::OpenFolder, &dir, Some(&sub), "Sub"),
            Step::Choose(sub.clone())
        );
        // A file selected, or nothing: the name decides.
        assert_eq!(
            confirm_selected(Kind::OpenFile, &dir, Some(&dir.join("b.png")), "b.png"),
            Step::Choose(dir.join("b.png"))
        );
        assert_eq!(
            confirm_selected(export, &dir, None, "view"),
            Step::Choose(dir.join("view.png"))
        );
    }

    #[test]
    fn entering_a_folder_drops_a_picked_name_and_keeps_an_exports() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        let sub = list_folder(&dir, false)
            .unwrap()
            .into_iter()
            .find(|e| e.name == "Sub")
            .unwrap();
        // Folder picked, then double-clicked into: "Open folder" now means the folder shown
        // (the name "Sub" left in the field had asked for Sub/Sub, which does not exist).
        let mut folder = InAppDialog::pick(PickPurpose::OpenFolder, &dir);
        folder.select(&sub);
        assert_eq!(folder.name, "Sub");
        folder.enter(sub.path.clone());
        assert_eq!(folder.name, "");
        assert_eq!(
            confirm_selected(
                folder.kind,
                &folder.dir,
                folder.selected.as_deref(),
                &folder.name
            ),
            Step::Choose(sub.path.clone())
        );
        // An export's name survives picking a folder and going into it.
        let mut export = InAppDialog::save("view.png", "png", Box::new(|_| Ok(())), &dir);
        export.select(&sub);
        export.enter(sub.path.clone());
        assert_eq!(export.name, "view.png");
    }

    #[test]
    fn new_folders_are_one_level_and_never_over_what_exists() {
        let tmp = scratch();
        let dir = tmp.path().to_path_buf();
        assert_eq!(create_folder(&dir, " scans "), Ok(dir.join("scans")));
        assert!(dir.join("scans").is_dir());
        assert_eq!(
            create_folder(&dir, "scans"),
            Err(format!("{} already exists", dir.join("scans").display()))
        );
        assert_eq!(
            create_folder(&dir, "b.png"),
            Err(format!("{} already exists", dir.join("b.png").display()))
        );
        assert_eq!(
            create_folder(&dir, ""),
            Err("type the new folder's name".into())
        );
        let err = create_folder(&dir, "no/such/parent").unwrap_err();
        assert!(err.starts_with("cannot create "), "{err}");
    }

    #[test]
    fn the_arrow_keys_walk_the_list_and_stop_at_its_ends() {
        assert_eq!(step_index(None, 1, 3), Some(0));
        assert_eq!(step_index(None, -1, 3), Some(2));
        assert_eq!(step_index(Some(0), 1, 3), Some(1));
        assert_eq!(step_index(Some(2), 1, 3), Some(2));
        assert_eq!(step_index(Some(0), -1, 3), Some(0));
        assert_eq!(step_index(None, 1, 0), None);
    }

    #[test]
    fn bare_names_get_the_extension() {
        assert_eq!(
            with_extension(PathBuf::from("/tmp/view"), "png"),
            PathBuf::from("/tmp/view.png")
        );
        // A name that has one keeps it, whatever it is (the user may want .jpeg, .txt …).
        assert_eq!(
            with_extension(PathBuf::from("/tmp/view.PNG"), "png"),
            PathBuf::from("/tmp/view.PNG")
        );
        assert_eq!(
            with_extension(PathBuf::from("/tmp/a.b/view"), "png"),
            PathBuf::from("/tmp/a.b/view.png")
        );
    }

    #[test]
    fn only_builtin_asks_for_the_own_dialog() {
        assert!(builtin_requested(Some("builtin")));
        assert!(builtin_requested(Some(" Builtin\n")));
        assert!(!builtin_requested(Some("native")));
        assert!(!builtin_requested(Some("")));
        assert!(!builtin_requested(None));
    }
}
