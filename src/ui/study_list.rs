//! The study list of a folder under review: progress of the background predictions, filters
//! with their counts, the folder's confusion matrix, and a sortable table of studies.

use egui::{Color32, RichText, Sense};
use egui_extras::{Column, TableBuilder};

use crate::notes::{Filter, Finding, Note, Outcome};

use super::app::{display_name, ViewerApp};
use super::review::{ReviewCounts, SortColumn};

const ERROR: Color32 = Color32::from_rgb(255, 110, 110);
const WARN: Color32 = Color32::from_rgb(255, 170, 60);
const ROW_HEIGHT: f32 = 20.0;

pub fn study_list_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    // The panel keeps its width while there is little to show: a resizable panel shrinks to
    // what its content used, so the "listing…" of a rescan narrowed it to ~280 px for good.
    ui.set_min_width(ui.available_width());
    let Some(review) = app.review.as_ref() else {
        return;
    };
    let counts = review.counts(app.notes.all(), app.notes.revision());
    let mut rescan = false;
    ui.horizontal(|ui| {
        ui.heading("Studies");
        let (title, rescan_hover) = match &review.files {
            None => (
                display_name(&review.root),
                "List the folder again: new and changed files are predicted, the others \
                 keep their results (as does reopening it). F5",
            ),
            Some(set) => (
                format!("{} files opened together", set.len()),
                "Read these files again: changed files are predicted again, the others keep \
                 their results. F5",
            ),
        };
        ui.label(RichText::new(title).strong())
            .on_hover_text(review.root.display().to_string());
        if review.listed
            && ui
                .small_button("Rescan")
                .on_hover_text(rescan_hover)
                .clicked()
        {
            rescan = true;
        }
    });
    if rescan {
        app.apply(super::app::Action::Rescan, &ui.ctx().clone());
        return;
    }
    progress_ui(app, ui, &counts);
    filters_ui(app, ui, &counts);
    ui.separator();
    confusion_ui(app, ui, &counts);
    super::zone_agreement_panel::zone_agreement_ui(app, ui);
    ui.separator();
    let held = app.review.as_ref().is_some_and(|r| r.hold_order);
    keep_table_top(ui, held);
    table_ui(app, ui);
}

/// Rows held under the pointer ([`super::review::Review::hold_order`]) also keep their height
/// on screen: a line above the table that ends while they are held ("76 pending" when the scan
/// finishes) leaves its space until the pointer leaves, or the table would move up a row under
/// a click about to open a study.
fn keep_table_top(ui: &mut egui::Ui, held: bool) {
    let id = egui::Id::unique("study-list-held-table-top");
    let kept = ui.data(|d| d.get_temp::<f32>(id));
    let (space, top) = held_table_top(kept, ui.cursor().top(), held);
    ui.add_space(space);
    ui.data_mut(|d| d.insert_temp(id, top));
}

/// The space to add above the table whose top would be at `top`, and the top to keep for the
/// next frame: while `held` the table never rises above the `kept` top (it may go down, and is
/// then kept there).
fn held_table_top(kept: Option<f32>, top: f32, held: bool) -> (f32, f32) {
    match kept {
        Some(kept) if held && kept > top => (kept - top, kept),
        _ => (0.0, top),
    }
}

fn progress_ui(app: &mut ViewerApp, ui: &mut egui::Ui, counts: &ReviewCounts) {
    let Some(review) = app.review.as_ref() else {
        return;
    };
    if !review.listed {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("listing…");
        });
        return;
    }
    if !review.other_formats.is_empty() {
        let files = &review.other_formats.files;
        let formats = review.other_formats.formats().join(", ");
        let line = match files.len() {
            1 => format!("1 image not listed: a {formats} file, a format the viewer does not read"),
            n => format!("{n} images not listed: {formats}, formats the viewer does not read"),
        };
        // The file list is built only while the pointer is on the line, not every frame.
        ui.label(RichText::new(line).small().color(WARN))
            .on_hover_ui(|ui| {
                for (path, format) in files.iter().take(20) {
                    let shown = path.strip_prefix(&review.root).unwrap_or(path);
                    ui.label(format!("{} ({format})", shown.display()));
                }
                if files.len() > 20 {
                    ui.label(format!("… and {} more", files.len() - 20));
                }
                ui.label(format!(
                    "To review them, {}.",
                    crate::io::convert_advice(if files.len() == 1 { "it" } else { "them" })
                ));
            });
    }
    let total = review.rows.len();
    let done = total - counts.pending;
    // Said on this line, which is always there, so that rows do not move under the pointer.
    let waiting = match review.rows_waiting(app.notes.all(), app.notes.revision()) {
        0 => String::new(),
        1 => " · 1 more row joins the list when the pointer leaves it".to_string(),
        n => format!(" · {n} more rows join the list when the pointer leaves it"),
    };
    if review.finished || done == total {
        ui.label(RichText::new(format!("{total} studies, all predicted{waiting}")).small());
        return;
    }
    let stopped = review.cancel.load(std::sync::atomic::Ordering::Relaxed);
    ui.horizontal(|ui| {
        let text = if stopped {
            format!("stopped at {done}/{total}{waiting}")
        } else if review.pause.load(std::sync::atomic::Ordering::Relaxed) {
            format!("predicting {done}/{total} (after the image on screen){waiting}")
        } else {
            format!("predicting {done}/{total}{waiting}")
        };
        ui.add(
            egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                .text(text)
                .desired_width(ui.available_width() - 60.0),
        );
        if !stopped && ui.button("Stop").clicked() {
            review.stop();
        }
    });
}

fn filters_ui(app: &mut ViewerApp, ui: &mut egui::Ui, counts: &ReviewCounts) {
    let Some(review) = app.review.as_mut() else {
        return;
    };
    ui.horizontal_wrapped(|ui| {
        for f in Filter::ALL {
            let label = format!("{} ({})", f.label(), counts.of_filter(*f));
            if ui
                .selectable_label(review.filter == *f, label)
                .on_hover_text(f.rule())
                .clicked()
            {
                review.filter = *f;
            }
        }
        // On top of the filter above: only what the scope guard flagged.
        let label = format!("Out of scope ({})", counts.out_of_scope);
        if ui
            .selectable_label(review.out_of_scope_only, label)
            .on_hover_text("show only studies outside the model's scope (combines with the filter)")
            .clicked()
        {
            review.out_of_scope_only = !review.out_of_scope_only;
        }
    });
}

/// Rows: truth; columns: the model. Clicking an error cell filters to it.
fn confusion_ui(app: &mut ViewerApp, ui: &mut egui::Ui, counts: &ReviewCounts) {
    let names = [
        app.class_name(Finding::Negative),
        app.class_name(Finding::Positive),
    ];
    let name = |f: Finding| names[usize::from(f == Finding::Positive)].clone();
    let Some(review) = app.review.as_mut() else {
        return;
    };
    ui.label(RichText::new("Confusion matrix (rows: truth, columns: model)").small());
    // "truth PNEUMONIA" + "model NORMAL" + "model PNEUMONIA" is ~370 px; at the 800-px window the
    // column has ~245 and "model PNEUMONIA" ran under the film, cut after "mode". Where the full
    // headers do not fit they are the class names alone (the caption says which is which, and
    // hovering says it again); narrower still, the matrix scrolls sideways.
    let full = |side: &str, f: Finding| format!("{side} {}", name(f));
    let cell_text = |n: usize, outcome: Outcome| format!("{} {n}", outcome.as_str());
    let columns = [
        vec![
            full("truth", Finding::Negative),
            full("truth", Finding::Positive),
        ],
        vec![
            full("model", Finding::Negative),
            cell_text(counts.tn, Outcome::TrueNegative),
            cell_text(counts.fn_, Outcome::FalseNegative),
        ],
        vec![
            full("model", Finding::Positive),
            cell_text(counts.fp, Outcome::FalsePositive),
            cell_text(counts.tp, Outcome::TruePositive),
        ],
    ];
    let short = !super::panels::grid_fits(ui, &columns);
    let header = |ui: &mut egui::Ui, side: &str, f: Finding| {
        let class = name(f);
        super::panels::fitted_label(ui, &full(side, f), short.then_some(class.as_str()), true);
    };
    egui::ScrollArea::horizontal()
        .id_salt("confusion-sideways")
        .show(ui, |ui| {
            egui::Grid::new("confusion")
                .num_columns(3)
                .striped(true)
                .show(ui, |ui| {
                    ui.label("");
                    header(ui, "model", Finding::Negative);
                    header(ui, "model", Finding::Positive);
                    ui.end_row();
                    let mut cell =
                        |ui: &mut egui::Ui, n: usize, outcome: Outcome, filter: Option<Filter>| {
                            let text = RichText::new(cell_text(n, outcome));
                            let text = if outcome.is_error() && n > 0 {
                                text.color(ERROR)
                            } else {
                                text
                            };
                            match filter {
                                Some(f) => {
                                    if ui
                                        .selectable_label(review.filter == f, text)
                                        .on_hover_text(format!("show only: {}", f.label()))
                                        .clicked()
                                    {
                                        review.filter = f;
                                    }
                                }
                                None => {
                                    ui.label(text);
                                }
                            }
                        };
                    header(ui, "truth", Finding::Negative);
                    cell(ui, counts.tn, Outcome::TrueNegative, None);
                    cell(
                        ui,
                        counts.fp,
                        Outcome::FalsePositive,
                        Some(Filter::FalsePositives),
                    );
                    ui.end_row();
                    header(ui, "truth", Finding::Positive);
                    cell(
                        ui,
                        counts.fn_,
                        Outcome::FalseNegative,
                        Some(Filter::FalseNegatives),
                    );
                    cell(ui, counts.tp, Outcome::TruePositive, None);
                    ui.end_row();
                });
        });
    let all = [counts.tp, counts.fp, counts.tn, counts.fn_];
    if let (Some(line), Some(intervals)) = (metrics_line(all), metrics_intervals(all)) {
        ui.label(RichText::new(line).small())
            .on_hover_text(intervals);
    }
    // As `eval` prints it: the answers outside the model's scope are not meaningful, so the
    // figures without them are the ones that describe the model.
    let in_scope_n: usize = counts.in_scope.iter().sum();
    if in_scope_n < counts.labelled() {
        let line =
            metrics_line(counts.in_scope).map_or("none labelled".to_string(), |l| l.to_string());
        let hover = match metrics_intervals(counts.in_scope) {
            Some(intervals) => {
                format!("The studies the scope guard flagged are left out.\n{intervals}")
            }
            None => "The studies the scope guard flagged are left out.".to_string(),
        };
        ui.label(RichText::new(format!("in scope only: {line}")).small())
            .on_hover_text(hover);
    }
    let mut extra = Vec::new();
    if counts.unlabelled > 0 {
        extra.push(format!("{} without ground truth", counts.unlabelled));
    }
    if counts.pending > 0 {
        extra.push(format!("{} pending", counts.pending));
    }
    if counts.failed > 0 {
        extra.push(format!("{} unreadable", counts.failed));
    }
    if !extra.is_empty() {
        ui.label(RichText::new(extra.join(" · ")).small().weak());
    }
}

/// "accuracy … · sensitivity … · specificity … (n = …)" from `[tp, fp, tn, fn]`; `None` with
/// nothing labelled.
pub fn metrics_line(counts: [usize; 4]) -> Option<String> {
    let n: usize = counts.iter().sum();
    let ratio = |a: usize, b: usize| {
        if b > 0 {
            format!("{:.3}", a as f64 / b as f64)
        } else {
            "n/a".to_string()
        }
    };
    (n > 0).then(|| format!("{} (n = {n})", the_three(counts, ratio)))
}

/// The 95 % Wilson intervals of [`metrics_line`]'s figures, as `eval` gives them: a folder of a
/// few dozen studies reads "specificity 1.000", which says little on its own.
pub fn metrics_intervals(counts: [usize; 4]) -> Option<String> {
    let interval = |a: usize, b: usize| {
        crate::evaluation::wilson_interval(a, b)
            .map_or("n/a".to_string(), |[lo, hi]| format!("{lo:.3}–{hi:.3}"))
    };
    (counts.iter().sum::<usize>() > 0)
        .then(|| format!("95 % intervals (Wilson): {}", the_three(counts, interval)))
}

/// "accuracy A · sensitivity S · specificity P", each `figure(successes, of)`.
fn the_three([tp, fp, tn, fn_]: [usize; 4], figure: impl Fn(usize, usize) -> String) -> String {
    format!(
        "accuracy {} · sensitivity {} · specificity {}",
        figure(tp + tn, tp + fp + tn + fn_),
        figure(tp, tp + fn_),
        figure(tn, tn + fp),
    )
}

/// The columns shown, in their fixed order: the file name always, the others unless the reviewer
/// switched them off.
pub fn shown_columns(hidden: &[SortColumn]) -> Vec<SortColumn> {
    SortColumn::ALL
        .into_iter()
        .filter(|c| *c == SortColumn::File || !hidden.contains(c))
        .collect()
}

/// Narrowest the file name gets before the table scrolls sideways: full headers, then compact.
const NAME_MIN: f32 = 120.0;
const NAME_MIN_COMPACT: f32 = 90.0;

/// Whether the full headers ("Truth", "Outcome", …) leave the file name `NAME_MIN` in a list
/// `available` wide; if not, the headers shorten to letters (T, M, P, U, S, O, N), their hover
/// naming them. The answer columns are only a few characters wide ("P", "FN", "in"), so at the
/// 1 024-pixel window the words alone had pushed the last three columns out of view.
pub fn compact_headers(available: f32, header_widths: &[f32], spacing: f32) -> bool {
    let columns: f32 = header_widths.iter().map(|w| w + spacing).sum();
    NAME_MIN + columns > available
}

/// What the table's header and rows ask the list to do once they are drawn.
#[derive(Default)]
struct TableClicks {
    open: Option<std::path::PathBuf>,
    sort: Option<SortColumn>,
    toggle: Option<SortColumn>,
}

fn table_ui(app: &mut ViewerApp, ui: &mut egui::Ui) {
    // Rows keep their places while the pointer is over the list ([`Review::hold_order`]).
    let pointer_on_list = ui.rect_contains_pointer(ui.available_rect_before_wrap());
    if let Some(review) = app.review.as_mut() {
        review.hold_order = pointer_on_list;
    }
    let visible = app.review_visible();
    let names = [
        app.class_name(Finding::Negative),
        app.class_name(Finding::Positive),
    ];
    let name = |f: Finding| names[usize::from(f == Finding::Positive)].clone();
    // Initials keep the columns narrow (N / P); full names when the initials clash.
    let initial = |f: Finding| name(f).chars().next().unwrap_or('?').to_ascii_uppercase();
    let distinct = initial(Finding::Positive) != initial(Finding::Negative);
    let short = |f: Finding| -> String {
        if distinct {
            initial(f).to_string()
        } else {
            name(f)
        }
    };
    let legend = format!(
        "{} = {}, {} = {}",
        short(Finding::Negative),
        name(Finding::Negative),
        short(Finding::Positive),
        name(Finding::Positive)
    );
    let hidden = app.settings.hidden_study_columns.clone();
    let shown = shown_columns(&hidden);
    let Some(review) = app.review.as_ref() else {
        return;
    };
    let current = app.current.as_ref().and_then(|c| review.row_index(&c.path));
    // Keep the study on screen in view when next/previous moves it.
    let scroll_to = current.and_then(|c| visible.iter().position(|&i| i == c));
    let scrolled_for = app.list_scrolled_to;
    let mut clicks = TableClicks::default();
    // The rows laid out this frame (only those in view are).
    let mut drawn: Option<(usize, usize)> = None;
    // Wholly in view last frame (the first and last rows laid out may be cut): no scroll, so a
    // click on a row does not move the list under the pointer.
    let in_view = |row: usize| {
        app.list_rows_drawn
            .is_some_and(|(first, last)| first < row && row < last)
    };
    let spacing = ui.spacing().item_spacing.x;
    // The cells truncate, so an auto column never grows past what its first rows needed: the
    // probability column must fit an out-of-scope row's "(0.97)" even when such a row turns up
    // only later in the scan (it showed "(0…").
    let probability_width = super::panels::text_width(ui, "(0.00)") + spacing;
    // Likewise the note column, for its widest mark (it was sized while no study had a note).
    let note_width = super::review::NOTE_MARKS
        .iter()
        .map(|m| super::panels::text_width(ui, m))
        .fold(0.0, f32::max)
        + spacing;
    // And the outcome column, for an out-of-scope row's "(FN)".
    let outcome_width = super::panels::text_width(ui, "(FN)") + spacing;
    let min_width = |column: SortColumn| match column {
        SortColumn::Probability => probability_width,
        SortColumn::Outcome => outcome_width,
        SortColumn::Note => note_width,
        _ => 24.0,
    };
    let header_widths: Vec<f32> = shown[1..]
        .iter()
        .map(|c| super::panels::text_width(ui, c.label()).max(min_width(*c)))
        .collect();
    let compact = compact_headers(ui.available_width(), &header_widths, spacing);
    // The name takes what the other columns leave (never under NAME_MIN), so in a narrow panel
    // it is the name that is cut short, not the answer columns; below that the table scrolls
    // sideways instead of being clipped at the panel's edge.
    egui::ScrollArea::horizontal()
        .id_salt("study-list-sideways")
        .show(ui, |ui| {
            let mut table = TableBuilder::new(ui)
                .id_salt(("study-list", compact, &shown))
                .striped(true)
                .resizable(true)
                .sense(Sense::click())
                .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
                .column(
                    Column::remainder()
                        .at_least(if compact { NAME_MIN_COMPACT } else { NAME_MIN })
                        .clip(true)
                        .resizable(false),
                );
            for column in &shown[1..] {
                table = table.column(Column::auto().at_least(min_width(*column)));
            }
            let mut table = table.min_scrolled_height(0.0);
            if scroll_to.is_some() && scroll_to != scrolled_for {
                if let Some(row) = scroll_to.filter(|&row| !in_view(row)) {
                    // Next / Previous: the least scroll that shows the row, animated. A jump (a
                    // folder resumed far down, a filter or sort changed): the row centred, at
                    // once (animated, the first scroll of a new list never arrived).
                    let step = scrolled_for.is_some_and(|from| from.abs_diff(row) <= 1);
                    table = if step {
                        table.scroll_to_row(row, None)
                    } else {
                        table
                            .scroll_to_row(row, Some(egui::Align::Center))
                            .animate_scrolling(false)
                    };
                }
            }
            table
                .header(ROW_HEIGHT, |mut header| {
                    for &column in &shown {
                        header.col(|ui| {
                            header_cell(ui, review, column, compact, &legend, &hidden, &mut clicks);
                        });
                    }
                })
                .body(|body| {
                    body.rows(ROW_HEIGHT, visible.len(), |mut row| {
                        let i = visible[row.index()];
                        let r = &review.rows[i];
                        let note = r.id.as_ref().and_then(|id| app.notes.all().get(id));
                        row.set_selected(Some(i) == current);
                        let at = row.index();
                        drawn = Some(drawn.map_or((at, at), |(a, b)| (a.min(at), b.max(at))));
                        for &column in &shown {
                            row.col(|ui| cell_ui(ui, column, r, note, &short));
                        }
                        let response = row.response();
                        if let Some(e) = &r.error {
                            response.clone().on_hover_text(e.as_str());
                        }
                        if response.clicked() {
                            clicks.open = Some(r.path.clone());
                        }
                    });
                });
        });
    // Asked again next frame until its row is drawn: a scroll asked for before the table knows
    // its height is lost (a folder resumed at its 187th study opened with the list at its top).
    // Once drawn, the reviewer may scroll the list away from it freely.
    let current_drawn = scroll_to
        .zip(drawn)
        .is_some_and(|(row, (first, last))| (first..=last).contains(&row));
    if current_drawn || scroll_to.is_none() {
        app.list_scrolled_to = scroll_to;
    }
    app.list_rows_drawn = drawn;
    if let Some(column) = clicks.toggle {
        let hidden = &mut app.settings.hidden_study_columns;
        if let Some(at) = hidden.iter().position(|c| *c == column) {
            hidden.remove(at);
        } else {
            hidden.push(column);
        }
    }
    if let Some(column) = clicks.sort {
        if let Some(r) = app.review.as_mut() {
            r.sort_by(column);
        }
    }
    if let Some(path) = clicks.open {
        app.open(path);
    }
}

/// A header: click to sort (again: reverse); right-click to choose the columns.
fn header_cell(
    ui: &mut egui::Ui,
    review: &super::review::Review,
    column: SortColumn,
    compact: bool,
    legend: &str,
    hidden: &[SortColumn],
    clicks: &mut TableClicks,
) {
    let mark = match (review.sort == column, review.descending) {
        (false, _) => "",
        (true, false) => " ^",
        (true, true) => " v",
    };
    let label = if compact {
        column.short_label()
    } else {
        column.label()
    };
    let what = match column {
        SortColumn::Truth | SortColumn::Prediction => format!("{} ({legend})", column.title()),
        _ => column.title().to_string(),
    };
    let response = ui
        .add(egui::Button::new(RichText::new(format!("{label}{mark}")).strong()).frame(false))
        .on_hover_text(format!(
            "{what}: click to sort (again: reverse); right-click to choose the columns"
        ));
    if response.clicked() {
        clicks.sort = Some(column);
    }
    response.context_menu(|ui| {
        ui.label(RichText::new("Columns").strong());
        for c in &SortColumn::ALL[1..] {
            let mut on = !hidden.contains(c);
            if ui.checkbox(&mut on, c.title()).changed() {
                clicks.toggle = Some(*c);
                ui.close();
            }
        }
    });
}

/// One cell of a study's row.
fn cell_ui(
    ui: &mut egui::Ui,
    column: SortColumn,
    r: &super::review::StudyRow,
    note: Option<&Note>,
    short: &dyn Fn(Finding) -> String,
) {
    let plain = |ui: &mut egui::Ui, text: RichText| {
        ui.add(egui::Label::new(text).selectable(false).truncate());
    };
    // Outside the model's scope the answer is not meaningful: as on the result panel after
    // "Show anyway", it stays visible but dimmed, the probability in parentheses, and the hover
    // says why.
    let out_of_scope = r.scope.as_ref().filter(|s| !s.in_scope);
    let dimmed = |ui: &mut egui::Ui, text: String| match out_of_scope {
        Some(s) => {
            ui.add(
                egui::Label::new(RichText::new(text).weak())
                    .selectable(false)
                    .truncate(),
            )
            .on_hover_text(format!(
                "Outside the model's scope ({}): its answer is not meaningful",
                s.reasons.join("; ")
            ));
        }
        None => plain(ui, RichText::new(text)),
    };
    match column {
        SortColumn::File => {
            // The name; the folders are in the hover text (and the truth column), and after the
            // name, dimmed, where they tell two files of one name apart (cut first when narrow).
            let mut text = egui::text::LayoutJob::default();
            let style = ui.style().clone();
            let append = |job: &mut egui::text::LayoutJob, part: RichText| {
                part.append_to(
                    job,
                    &style,
                    egui::FontSelection::Default,
                    egui::Align::Center,
                );
            };
            // A name too long for the column loses the start it shares with other names, then
            // its middle, not its end (where files of a folder differ), and the folder hint
            // goes; a name that fits keeps the hint as far as there is room. A screen reader
            // (and a test) still reads the whole name.
            let name = display_name(&r.path);
            let shown = super::panels::elided_name(ui, &name, r.name_shared, ui.available_width());
            append(&mut text, RichText::new(&shown));
            if let (Some(hint), true) = (&r.folder_hint, shown == name) {
                append(&mut text, RichText::new(format!("  {hint}")).weak());
            }
            let response = ui.add(egui::Label::new(text).selectable(false).truncate());
            if shown != name {
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &name));
            }
            response.on_hover_text(&r.relative);
        }
        SortColumn::Truth => plain(
            ui,
            RichText::new(r.truth(note).map_or("?".to_string(), short)),
        ),
        SortColumn::Prediction => match (&r.prediction, &r.error) {
            (Some(p), _) => dimmed(ui, short(p.predicted)),
            (None, Some(_)) => plain(ui, RichText::new("error").color(ERROR)),
            (None, None) => plain(ui, RichText::new("…").weak()),
        },
        SortColumn::Probability => {
            if let Some(p) = &r.prediction {
                let text = match out_of_scope {
                    Some(_) => format!("({:.2})", p.probability),
                    None => format!("{:.2}", p.probability),
                };
                dimmed(ui, text);
            }
        }
        SortColumn::Uncertain => {
            if r.prediction.is_some_and(|p| p.uncertain) {
                plain(ui, RichText::new("yes").color(WARN));
            }
        }
        SortColumn::Scope => match &r.scope {
            Some(s) if !s.in_scope => {
                ui.add(egui::Label::new(RichText::new("out").color(ERROR)).selectable(false))
                    .on_hover_text(s.reasons.join("; "));
            }
            Some(s) if !s.warnings.is_empty() => {
                ui.add(egui::Label::new(RichText::new("warn").color(WARN)).selectable(false))
                    .on_hover_text(s.warnings.join("; "));
            }
            Some(_) => plain(ui, RichText::new("in").weak()),
            None => {}
        },
        SortColumn::Outcome => match (r.outcome(note), out_of_scope) {
            // An outcome of an answer outside the model's scope is no error of the model's in
            // its domain (nor a success): dimmed and in parentheses like the probability, not
            // red, so a glance down the column finds the errors that count.
            (Some(o), Some(_)) => dimmed(ui, format!("({})", o.as_str())),
            (Some(o), None) => {
                let text = RichText::new(o.as_str());
                plain(
                    ui,
                    if o.is_error() {
                        text.color(ERROR)
                    } else {
                        text
                    },
                );
            }
            (None, _) => {}
        },
        SortColumn::Note => {
            let mark = egui::Label::new(super::review::note_mark(note))
                .selectable(false)
                .truncate();
            let response = ui.add(mark);
            if let Some(summary) = note.map(note_summary).filter(|s| !s.is_empty()) {
                response.on_hover_text(summary);
            }
        }
    }
}

fn note_summary(n: &Note) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(a) = n.agreement {
        parts.push(a.label().to_string());
    }
    if !n.categories.is_empty() {
        let names: Vec<&str> = n.categories.iter().map(|c| c.label()).collect();
        parts.push(names.join(", "));
    }
    match n.boxes.len() {
        0 => {}
        1 => parts.push("1 box".into()),
        k => parts.push(format!("{k} boxes")),
    }
    let text = n.text.trim();
    if !text.is_empty() {
        const MAX_CHARS: usize = 160;
        let mut shown: String = text.chars().take(MAX_CHARS).collect();
        if text.chars().count() > MAX_CHARS {
            shown.push('…');
        }
        parts.push(format!("“{shown}”"));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::localisation::ImageBox;
    use crate::notes::{Agreement, ErrorCategory, StudyId};

    #[test]
    fn held_rows_keep_their_height_when_a_line_above_them_ends() {
        // Not held: the table goes where the lines above put it.
        assert_eq!(held_table_top(None, 300.0, false), (0.0, 300.0));
        assert_eq!(held_table_top(Some(320.0), 300.0, false), (0.0, 300.0));
        // Held: a line above ends (300 instead of 320): its space stays.
        assert_eq!(held_table_top(Some(320.0), 300.0, true), (20.0, 320.0));
        // A line added while held moves the table down, and it is kept there.
        assert_eq!(held_table_top(Some(320.0), 340.0, true), (0.0, 340.0));
        // Nothing kept yet (the first frame): nothing to add.
        assert_eq!(held_table_top(None, 300.0, true), (0.0, 300.0));
    }

    #[test]
    fn the_note_hover_sums_up_verdict_categories_boxes_and_the_start_of_the_text() {
        let mut n = Note::new(StudyId::sha256(&[1; 32]));
        assert_eq!(note_summary(&n), "");
        n.boxes = vec![ImageBox::new(0.0, 0.0, 10.0, 10.0)];
        assert_eq!(note_summary(&n), "1 box");
        n.agreement = Some(Agreement::Disagree);
        n.categories.insert(ErrorCategory::BonyShadow);
        n.boxes.push(ImageBox::new(5.0, 5.0, 10.0, 10.0));
        n.text = format!("  {}  ", "é".repeat(200));
        let summary = note_summary(&n);
        let want = format!(
            "{} · {} · 2 boxes · “{}…”",
            Agreement::Disagree.label(),
            ErrorCategory::BonyShadow.label(),
            "é".repeat(160)
        );
        assert_eq!(summary, want);
    }

    #[test]
    fn the_folder_metrics_come_with_their_wilson_intervals() {
        // [tp, fp, tn, fn] = [2, 0, 1, 1]. By hand (z = 1.96): accuracy 3 of 4 → centre
        // (0.75 + z²/8)/(1 + z²/4) = 0.6275 ± 0.3269; sensitivity 2 of 3 → 0.5731 ± 0.3654;
        // specificity 1 of 1 → [1/(1 + z²), 1] = [0.2065, 1].
        assert_eq!(
            metrics_intervals([2, 0, 1, 1]).unwrap(),
            "95 % intervals (Wilson): accuracy 0.301–0.954 · sensitivity 0.208–0.939 · \
             specificity 0.207–1.000"
        );
        // No positives: sensitivity has none.
        assert_eq!(
            metrics_intervals([0, 1, 1, 0]).unwrap(),
            "95 % intervals (Wilson): accuracy 0.095–0.905 · sensitivity n/a · specificity \
             0.095–0.905"
        );
        assert_eq!(metrics_intervals([0; 4]), None);
    }

    #[test]
    fn the_file_name_is_always_shown_and_the_order_is_fixed() {
        use SortColumn::*;
        assert_eq!(shown_columns(&[]), SortColumn::ALL.to_vec());
        // Hiding the name is not possible; the rest keep their order whatever order they were
        // hidden in.
        assert_eq!(
            shown_columns(&[Note, File, Truth]),
            [File, Prediction, Probability, Uncertain, Scope, Outcome]
        );
    }

    #[test]
    fn headers_shorten_when_the_words_would_squeeze_the_name() {
        // Seven columns of 40 px and 8 px spacing need 336 px beside the 120-px name.
        let widths = [40.0; 7];
        assert!(!compact_headers(456.0, &widths, 8.0));
        assert!(compact_headers(455.0, &widths, 8.0));
        // Two columns switched off: 240 px are enough.
        assert!(!compact_headers(360.0, &widths[..5], 8.0));
    }
}
