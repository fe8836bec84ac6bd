//! `report.html`: one film's analysis as a page a person reads, prints or mails, beside the
//! `report.json` that tools read.
//!
//! It is drawn from the same [`Report`] that `report.json` serialises, so the two never disagree,
//! plus the film and its overlays ([`crate::overlay::study_overlays`], dimmed as the viewer dims
//! them) as JPEGs embedded in the page, at most [`FIGURE_SIDE`] pixels on the long side: a
//! summary to read on a screen or paper, not a copy of the film to diagnose from.
//!
//! Self-contained on purpose: no script, no style sheet, font or image from elsewhere, and a
//! Content-Security-Policy that forbids loading anything but the embedded images, so opening a
//! report never touches the network (the viewer's rule) and the one file can be archived as it is.
//!
//! The page keeps the viewer's order of trust: the scope verdict comes first; outside the
//! model's scope the answer, maps and zones sit in a closed "Show anyway" section (HTML's own
//! `<details>`), as the viewer hides them until asked; an uncertain answer says so next to the
//! probability; each map says how faithful it was and whether the maps agree.
//! Patient identifiers appear only where the report holds them (asked for by the user).
//!
//! The viewer's export, and `analyze --notes`, add the reviewer's note (the report's `review`,
//! [`crate::report::ReviewReport`]): verdict, ground truth, reasons, zones and text, with the
//! opacity boxes outlined on every picture in the film's own pixel coordinates (an SVG `viewBox`
//! of the film's size, so no box is scaled by hand) and scored on the maps. The note holds what
//! `notes export` writes by default (the review, not the file's folders).
//!
//! Escaping: every text from the film or the user (file names, DICOM values, reasons quoting
//! them) goes through [`escape`]; the five characters HTML gives meaning to in text and quoted
//! attributes are all there is to it, so no template engine is pulled in for it.

use std::fmt::Write as _;

use base64::Engine as _;
use image::imageops::{resize, FilterType};
use image::{DynamicImage, GrayImage};

use crate::explain::localisation::{ImageBox, LocalisationOptions};
use crate::io::Study;
use crate::overlay::StudyOverlay;
use crate::report::{Report, ReviewReport};
use crate::text::{format_score, score_column};

/// The page's name in `analyze`'s output folder, beside `report.json`.
pub const FILE_NAME: &str = "report.html";

/// Long side of the embedded pictures, in pixels: sharp on a laptop screen and on A4, while
/// the film and three overlays keep the page under a megabyte (measured with IG: 0.11–0.14 MB for
/// films 256 px high, 0.35 MB for 808×488, 0.82 MB for 1244×1005, where a textured film and the
/// IG speckle take about 150 kB per picture).
pub const FIGURE_SIDE: u32 = 1024;

/// JPEG quality of the embedded pictures: no visible blocking on a film or a smooth heat map.
const JPEG_QUALITY: u8 = 90;

/// A picture for the page: its title, what it shows, and the encoded JPEG.
pub struct Figure {
    pub title: String,
    pub caption: String,
    pub jpeg: Vec<u8>,
}

/// The film alone in its default window, then each overlay, scaled to [`FIGURE_SIDE`].
pub fn figures(study: &Study, overlays: &[StudyOverlay]) -> Result<Vec<Figure>, String> {
    let window = study.default_window;
    let grey: Vec<u8> = study
        .to_unit(&window)
        .iter()
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let film = GrayImage::from_raw(study.width as u32, study.height as u32, grey)
        .ok_or_else(|| "the film's pixels do not fill its size".to_string())?;
    let (w, h) = page_size(film.width(), film.height());
    let mut out = vec![figure(
        DynamicImage::ImageLuma8(resize(&film, w, h, FilterType::Triangle)),
        "Film".into(),
        format!(
            "as loaded, window W {:.0} L {:.0}",
            window.width(),
            window.center()
        ),
    )?];
    for overlay in overlays {
        let title = match overlay.file_name {
            crate::io::OVERLAY_GRADCAM => "Grad-CAM",
            crate::io::OVERLAY_UNCERTAINTY => "Uncertainty (MC-dropout std)",
            crate::io::OVERLAY_IG => "Integrated Gradients",
            other => other,
        };
        // Scaled from the borrowed overlay: a copy of a full-size one first would cost as much
        // memory again on a large film.
        let (w, h) = page_size(overlay.image.width(), overlay.image.height());
        out.push(figure(
            DynamicImage::ImageRgb8(resize(&overlay.image, w, h, FilterType::Triangle)),
            title.into(),
            overlay.what.clone(),
        )?);
    }
    Ok(out)
}

/// `width × height` brought down to [`FIGURE_SIDE`] on the long side, the aspect kept; a smaller
/// picture keeps its size.
fn page_size(width: u32, height: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= FIGURE_SIDE {
        return (width, height);
    }
    let scale = |side: u32| {
        ((f64::from(side) * f64::from(FIGURE_SIDE) / f64::from(long)).round() as u32).max(1)
    };
    (scale(width), scale(height))
}

fn figure(image: DynamicImage, title: String, caption: String) -> Result<Figure, String> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&image)
        .map_err(|e| format!("cannot encode the {title} picture: {e}"))?;
    Ok(Figure {
        title,
        caption,
        jpeg,
    })
}

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;max-width:70rem;margin:1.5rem auto;padding:0 1rem;\
color:#1b1b1b;line-height:1.4}\
h1{font-size:1.4rem;margin:0}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}\
.ruo{color:#b35900;font-weight:600;margin:.2rem 0}.meta{color:#555;margin:.2rem 0}\
.out{border:2px solid #c0392b;background:#fbeae8;padding:.6rem .8rem;margin:1rem 0}\
.out strong{color:#c0392b;font-size:1.1rem}.in{color:#1e7b34;margin:1rem 0 0}\
.warn{border:1.5px solid #b35900;padding:.4rem .7rem;margin:.6rem 0;color:#7a3d00}\
.label{font-size:1.8rem;font-weight:700;margin:.3rem 0}.PNEUMONIA{color:#c25a00}\
.NORMAL{color:#1e7b34}.dim{opacity:.75}\
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(18rem,1fr));gap:1rem}\
figure{margin:0}\
figure img,figure svg{width:100%;height:auto;background:#000;display:block}\
.review li{margin:.15rem 0}blockquote{white-space:pre-wrap;border-left:3px solid #ccc;\
margin:.5rem 0;padding:.2rem .8rem}figcaption{font-size:.85rem;color:#444}\
table{border-collapse:collapse}td,th{padding:.2rem .7rem;text-align:right;\
border-bottom:1px solid #ddd}td:first-child,th:first-child{text-align:left}\
.small{font-size:.85rem;color:#555}summary{cursor:pointer;font-weight:600;margin:.4rem 0}\
footer{margin-top:2rem;border-top:1px solid #ccc;padding-top:.5rem;font-size:.85rem;color:#555}\
.printed{display:none}\
@media print{figure{break-inside:avoid}h2{break-after:avoid-page}\
details:not([open])+.printed{display:block}}";

/// Everything up to the heading and the research-use line, in an open `<header>`: the head
/// with the policy that keeps the page from loading anything but its own embedded pictures.
/// `title` and `heading` are markup (escaped by the caller); `style` is added to [`STYLE`].
fn page_start(title: &str, style: &str, heading: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}{style}</style>\n</head>\n<body>\n\
         <header>\n<h1>{heading}</h1>\n\
         <p class=\"ruo\">Research use only — not for diagnosis</p>\n"
    )
}

pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The note as the note pane shows it, with the outcome against `answer`, the page's answer
/// (`None` outside the model's scope, where the outcome would give the hidden answer away).
fn review_section(page: &mut String, review: &ReviewReport, answer: Option<&str>) {
    let mut items = vec![format!(
        "Verdict: {}",
        review
            .agreement
            .map_or("none yet", crate::notes::Agreement::label)
    )];
    if let (Some(truth), Some(source)) = (&review.ground_truth, review.ground_truth_source) {
        items.push(format!(
            "Ground truth: {} ({})",
            escape(truth),
            source.label()
        ));
    }
    if let (Some(outcome), Some(truth), Some(answer)) =
        (review.outcome, &review.ground_truth, answer)
    {
        items.push(format!(
            "Outcome: {} (truth {}, model {})",
            outcome.label(),
            escape(truth),
            escape(answer)
        ));
    }
    let labels = |labels: Vec<&str>| escape(&labels.join(", "));
    if !review.categories.is_empty() {
        items.push(format!(
            "Why the model went wrong: {}",
            labels(review.categories.iter().map(|c| c.label()).collect())
        ));
    }
    // Ticked, then (as the pane lists them) those the boxes overlap.
    let zones = |zones: &std::collections::BTreeSet<crate::notes::Zone>| {
        labels(zones.iter().map(|z| z.label()).collect())
    };
    match (review.zones.is_empty(), review.zones_from_boxes.is_empty()) {
        (true, true) => {}
        (false, true) => items.push(format!("Zones implicated: {}", zones(&review.zones))),
        (true, false) => items.push(format!(
            "Zones implicated (from the boxes): {}",
            zones(&review.zones_from_boxes)
        )),
        (false, false) => items.push(format!(
            "Zones implicated: {}; from the boxes: {}",
            zones(&review.zones),
            zones(&review.zones_from_boxes)
        )),
    }
    if !review.boxes.is_empty() {
        // Outside the scope the pictures are in the closed section above (and not on paper).
        items.push(format!(
            "{} drawn, outlined on each picture{}",
            count(review.boxes.len(), "opacity box", "opacity boxes"),
            if answer.is_some() {
                ""
            } else {
                " under \"Show anyway\""
            }
        ));
    }
    page.push_str("<section>\n<h2>Review</h2>\n<ul class=\"review\">\n");
    for item in items {
        let _ = writeln!(page, "<li>{item}</li>");
    }
    page.push_str("</ul>\n");
    if !review.text.trim().is_empty() {
        let _ = writeln!(
            page,
            "<blockquote>{}</blockquote>",
            escape(review.text.trim())
        );
    }
    if answer.is_some() && !review.localisation.is_empty() {
        localisation_table(page, review);
    }
    let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut meta = Vec::new();
    if !review.reviewer.trim().is_empty() {
        meta.push(format!("by {}", escape(review.reviewer.trim())));
    }
    let (written, updated) = (when(review.created_at), when(review.updated_at));
    if updated != written {
        meta.push(format!("written {written} · updated {updated}"));
    } else {
        meta.push(format!("written {written}"));
    }
    let _ = writeln!(
        page,
        "<p class=\"small\">Note {}</p>\n</section>",
        meta.join(" · ")
    );
}

/// How each map points at the reviewer's boxes, the viewer's "Localisation" table. Left out
/// outside the model's scope with the maps it scores.
fn localisation_table(page: &mut String, review: &ReviewReport) {
    let _ = writeln!(
        page,
        "<table>\n<tr><th>map against the {}</th><th>pointing</th><th>energy</th>\
         <th>IoU</th></tr>",
        count(review.boxes.len(), "box", "boxes")
    );
    for (map, scored) in &review.localisation {
        // The viewer's table's names.
        let map = match map {
            crate::notes::Saliency::Uncertainty => "Uncertainty (std)",
            other => other.label(),
        };
        match scored {
            Some(l) => {
                let [pointing, energy, iou] = l.cells();
                let _ = writeln!(
                    page,
                    "<tr><td>{map}</td><td>{pointing}</td><td>{energy}</td><td>{iou}</td></tr>"
                );
            }
            None => {
                let _ = writeln!(
                    page,
                    "<tr><td>{map}</td><td colspan=\"3\">not computed</td></tr>"
                );
            }
        }
    }
    let _ = writeln!(
        page,
        "</table>\n<p class=\"small\">{}</p>",
        escape(&LocalisationOptions::default().legend_with_chance(review.energy_in_boxes_uniform))
    );
}

/// The whole page, with the reviewer's note where the report carries one.
pub fn render(report: &Report, figures: &[Figure]) -> String {
    let file = escape(&report.input.file);
    let mut page = page_start(&format!("cxr-viewer report: {file}"), "", &file);
    let _ = writeln!(
        page,
        "<p class=\"meta\">{}</p>",
        escape(&study_line(report))
    );
    if let Some(ids) = &report.identifiers {
        let ids: Vec<String> = ids.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            page,
            "<p class=\"meta\">Identifiers (included on request): {}</p>",
            escape(&ids.join(" · "))
        );
    }
    page.push_str("</header>\n");
    scope_section(&mut page, report);
    let out_of_scope = !report.scope.in_scope;
    if out_of_scope {
        page.push_str(
            "<details>\n<summary>Show anyway: the answer and the maps for this image \
             (not meaningful outside the model's scope)</summary>\n<div class=\"dim\">\n",
        );
    }
    result_section(&mut page, report);
    let review = report.review.as_ref();
    if let (Some(r), false) = (review, out_of_scope) {
        review_section(&mut page, r, Some(&report.prediction.label));
    }
    let boxes = review.map_or(&[][..], |r| r.boxes.as_slice());
    let size = (report.input.width, report.input.height);
    figures_section(&mut page, figures, boxes, size);
    zones_section(&mut page, report);
    trust_section(&mut page, report);
    ig_section(&mut page, report);
    if out_of_scope {
        // Paper cannot be clicked open: a printed page says what it leaves out, unless the
        // reader opened the section before printing.
        page.push_str(
            "</div>\n</details>\n<p class=\"small printed\">Not printed: the answer and the \
             maps, hidden outside the model's scope (open \"Show anyway\" before printing to \
             include them).</p>\n",
        );
        if let Some(r) = review {
            review_section(&mut page, r, None);
        }
    }
    footer(&mut page, report);
    page.push_str("</body>\n</html>\n");
    page
}

/// "DICOM · DX · view PA · age 003Y · sex F · study 2020-09-10 · 2048×2500": what the film is,
/// without identifiers.
fn study_line(report: &Report) -> String {
    let m = &report.input.metadata;
    let mut parts = vec![m.format.clone()];
    parts.extend(m.modality.clone());
    parts.extend(m.view_position.as_ref().map(|v| format!("view {v}")));
    parts.extend(m.patient_age.as_ref().map(|v| format!("age {v}")));
    parts.extend(m.patient_sex.as_ref().map(|v| format!("sex {v}")));
    parts.extend(
        m.study_date
            .as_ref()
            .map(|v| format!("study {}", crate::text::format_date(v))),
    );
    parts.push(format!("{}×{}", report.input.width, report.input.height));
    if m.frames > 1 {
        parts.push(format!("frame {} of {}", m.frame + 1, m.frames));
    }
    parts.join(" · ")
}

fn scope_section(page: &mut String, report: &Report) {
    let scope = &report.scope;
    if scope.in_scope {
        let _ = writeln!(page, "<p class=\"in\">{}</p>", escape(&scope.headline()));
    } else {
        let _ = writeln!(
            page,
            "<div class=\"out\"><strong>{}</strong>",
            escape(&scope.headline())
        );
        for reason in scope.reasons.iter().skip(1) {
            let _ = writeln!(page, "<br>also: {}", escape(reason));
        }
        let _ = writeln!(
            page,
            "<p class=\"small\">{}</p></div>",
            crate::scope::OUTSIDE_SCOPE_MEANING
        );
    }
    if let Some(note) = scope.pixels_only_note() {
        let _ = writeln!(page, "<p class=\"small\">{}</p>", escape(note));
    }
    for warning in &scope.warnings {
        let _ = writeln!(page, "<p class=\"warn\">Scope: {}</p>", escape(warning));
    }
}

fn result_section(page: &mut String, report: &Report) {
    let p = &report.prediction;
    let u = &report.uncertainty;
    let label = escape(&p.label);
    let _ = writeln!(
        page,
        "<section>\n<h2>Result</h2>\n<p class=\"label {label}\">{label}</p>\n\
         <p>P({}) = {:.3} (threshold {:.2}; calibrated, temperature {:.2})</p>\n\
         <p>MC dropout ({} samples): mean {:.3}, 95 % interval [{:.3}, {:.3}]</p>",
        escape(&p.positive_class),
        p.positive_probability,
        p.threshold,
        p.temperature,
        u.samples,
        u.mean,
        u.interval[0],
        u.interval[1],
    );
    if let Some(w) = &u.warning {
        let _ = writeln!(page, "<p class=\"warn\">Uncertain: {}</p>", escape(w));
    }
    page.push_str("</section>\n");
}

/// The pictures; with `boxes` (the reviewer's, in the pixels of a `size` film) each picture is
/// drawn in an SVG whose `viewBox` is the film, so the boxes sit where they were drawn whatever
/// the picture's scale.
fn figures_section(
    page: &mut String,
    figures: &[Figure],
    boxes: &[ImageBox],
    size: (usize, usize),
) {
    if figures.is_empty() {
        return;
    }
    page.push_str("<section>\n<h2>Maps</h2>\n<div class=\"figs\">\n");
    let engine = base64::engine::general_purpose::STANDARD;
    let (w, h) = size;
    // The viewer's box colour over a dark halo, a stroke of the same width on any picture.
    let outlines: String = boxes
        .iter()
        .map(|b| {
            let rect = format!(
                "x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
                 vector-effect=\"non-scaling-stroke\"",
                b.x, b.y, b.width, b.height
            );
            format!(
                "<rect {rect} stroke=\"#000\" stroke-opacity=\".6\" stroke-width=\"4\"/>\
                 <rect class=\"box\" {rect} stroke=\"#50dcff\" stroke-width=\"2\"/>"
            )
        })
        .collect();
    for f in figures {
        let data = engine.encode(&f.jpeg);
        let caption = escape(&f.caption);
        let picture = if boxes.is_empty() {
            format!("<img src=\"data:image/jpeg;base64,{data}\" alt=\"{caption}\">")
        } else {
            format!(
                "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{caption}\">\
                 <image href=\"data:image/jpeg;base64,{data}\" width=\"{w}\" height=\"{h}\"/>\
                 {outlines}</svg>"
            )
        };
        let _ = writeln!(
            page,
            "<figure>{picture}<figcaption><b>{}</b>: {caption}</figcaption></figure>",
            escape(&f.title),
        );
    }
    page.push_str(
        "</div>\n<p class=\"small\">Grad-CAM is shown relative to its own maximum, the \
         uncertainty relative to the largest mean Grad-CAM (a small spread looks small), \
         Integrated Gradients red for the explained class and blue against it.",
    );
    if !boxes.is_empty() {
        let _ = write!(
            page,
            " Outlined on each picture: the reviewer's {} (see Review).",
            count(boxes.len(), "opacity box", "opacity boxes")
        );
    }
    page.push_str("</p>\n</section>\n");
}

fn zones_section(page: &mut String, report: &Report) {
    let gradcam = &report.gradcam.zones.0;
    let spread = &report.uncertainty.zones.0;
    let ig = report.ig.as_ref().map(|ig| &ig.zones.0);
    let column = |zones: &[crate::explain::zones::ZoneScore]| {
        score_column(&zones.iter().map(|z| z.mean).collect::<Vec<_>>())
    };
    let (g, s) = (column(gradcam), column(spread));
    let i = ig.map(|z| column(z));
    let _ = write!(
        page,
        "<section>\n<h2>Lung zones (mean of each map)</h2>\n<table>\n<tr><th>zone</th>\
         <th>Grad-CAM ({})</th><th>uncertainty (std)</th>",
        escape(&report.gradcam.target)
    );
    if let Some(ig) = &report.ig {
        let _ = write!(page, "<th>IG ({})</th>", escape(&ig.target));
    }
    page.push_str("</tr>\n");
    for (k, zone) in gradcam.iter().enumerate() {
        let cell = |col: &[String]| col.get(k).cloned().unwrap_or_default();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            crate::notes::Zone::parse(zone.name).map_or(zone.name, crate::notes::Zone::label),
            cell(&g),
            cell(&s)
        );
        if let Some(i) = &i {
            let _ = write!(page, "<td>{}</td>", cell(i));
        }
        page.push_str("</tr>\n");
    }
    let _ = writeln!(
        page,
        "</table>\n<p class=\"small\">{}.</p>\n</section>",
        escape(report.zone_convention)
    );
}

/// The lines `report.json` carries as `faithfulness.summary`, `agreement.summary` and
/// `sanity.*.summary`, as one list.
fn trust_lines(report: &Report) -> Vec<String> {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut lines = Vec::new();
    for section in [&report.faithfulness, &report.agreement, &report.sanity]
        .into_iter()
        .flatten()
    {
        if let Some(summary) = section.get("summary") {
            lines.extend(strings(summary));
        }
    }
    lines
}

fn trust_section(page: &mut String, report: &Report) {
    let lines = trust_lines(report);
    if lines.is_empty() {
        return;
    }
    page.push_str(
        "<section>\n<h2>Can the maps be trusted?</h2>\n<p class=\"small\">Deletion AOPC: how \
         much the answer drops as the map's most important regions are removed, against removing \
         random regions (higher × random = more faithful).</p>\n<ul>\n",
    );
    for line in lines {
        let _ = writeln!(page, "<li>{}</li>", escape(&line));
    }
    page.push_str("</ul>\n</section>\n");
}

fn ig_section(page: &mut String, report: &Report) {
    let Some(ig) = &report.ig else {
        return;
    };
    let span = ig.f_input - ig.f_baseline;
    let _ = writeln!(
        page,
        "<section>\n<h2>Integrated Gradients</h2>\n<p>{} baseline{}, {} steps ({} rule); \
         completeness gap Σ attributions − (F(x) − F(x′)) = {} ({:.1} % of F(x) − F(x′) \
         = {})</p>",
        ig.baseline.label(),
        if ig.baseline_requested == "auto" {
            " (chosen per film)"
        } else {
            ""
        },
        ig.steps,
        escape(ig.quadrature),
        format_score(ig.delta),
        100.0 * ig.relative_delta,
        format_score(span),
    );
    if let Some(w) = &ig.warning {
        let _ = writeln!(page, "<p class=\"warn\">{}</p>", escape(w));
    }
    page.push_str("</section>\n");
}

fn footer(page: &mut String, report: &Report) {
    let m = &report.model;
    let _ = writeln!(
        page,
        "<footer>Model {} (sha256 {}), {} · analysed in {:.1} s · cxr-viewer {} · every figure \
         of this page, and more, is in the same analysis's report.json</footer>",
        escape(&m.name),
        escape(m.sha256.get(..12).unwrap_or(&m.sha256)),
        escape(&report.device),
        report.timings_ms.total / 1e3,
        env!("CARGO_PKG_VERSION"),
    );
}

/// The page for `study`, with the overlays drawn by [`crate::overlay::study_overlays`] (`analyze`
/// has them already, for its PNGs).
pub fn page(study: &Study, report: &Report, overlays: &[StudyOverlay]) -> Result<String, String> {
    Ok(render(report, &figures(study, overlays)?))
}

/// The index page's name in `analyze --html`'s output folder, when more than one film was
/// analysed.
pub const INDEX_NAME: &str = "index.html";

/// One film of an `analyze --html` run, for [`index`].
pub struct IndexRow {
    /// The film as found under its input (`NORMAL/a.png`): no directories above the input,
    /// which may name the patient.
    pub film: String,
    /// Its outcome: the result, or the one-line error that stopped it.
    pub outcome: Result<IndexResult, String>,
}

/// What [`index`] lists of an analysed film.
pub struct IndexResult {
    /// Its `report.html`, relative to the index.
    pub page: std::path::PathBuf,
    pub label: String,
    pub positive_class: String,
    pub positive_probability: f32,
    /// `None` in scope; else the first reason.
    pub out_of_scope: Option<String>,
    pub uncertain: bool,
    /// With `--notes`, the reviewer's verdict ("Disagree", or "note" for a note without one),
    /// the ground truth and, in scope, the outcome; `None`: no note on the
    /// page.
    pub review: Option<String>,
}

impl IndexResult {
    pub fn new(page: std::path::PathBuf, report: &Report) -> Self {
        let p = &report.prediction;
        IndexResult {
            page,
            label: p.label.clone(),
            positive_class: p.positive_class.clone(),
            positive_probability: p.positive_probability,
            out_of_scope: (!report.scope.in_scope)
                .then(|| report.scope.reasons.first().cloned().unwrap_or_default()),
            uncertain: report.uncertainty.uncertain,
            review: report
                .review
                .as_ref()
                .map(|r| index_review(r, report.scope.in_scope)),
        }
    }
}

/// The index's review cell: the verdict (or "note"), the ground truth and, in scope, the outcome
/// ("Disagree · truth PNEUMONIA · FN"), so an annotator reads the folder's review at a glance;
/// outside the scope the outcome would give the hidden answer away, as on the page.
fn index_review(review: &ReviewReport, in_scope: bool) -> String {
    let mut parts = vec![review
        .agreement
        .map_or("note", crate::notes::Agreement::label)
        .to_string()];
    parts.extend(review.ground_truth.as_ref().map(|t| format!("truth {t}")));
    parts.extend(
        review
            .outcome
            .filter(|_| in_scope)
            .map(|o| o.as_str().to_string()),
    );
    parts.join(" · ")
}

/// A relative path as a URL path: each segment percent-encoded, so a film named `a#1 b.png`
/// links to its own page and not to a fragment of another.
fn href(path: &std::path::Path) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    /// All but RFC 3986's unreserved characters.
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    path.iter()
        .map(|segment| utf8_percent_encode(&segment.to_string_lossy(), SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The run's films in one table, each linked to its page: the answer (in parentheses and dimmed
/// outside the model's scope, as the viewer's study list shows it), the scope verdict, the
/// uncertainty flag, or the error.
pub fn index(rows: &[IndexRow]) -> String {
    let positive = rows
        .iter()
        .find_map(|r| r.outcome.as_ref().ok())
        .map(|r| escape(&r.positive_class))
        .unwrap_or_else(|| "class".into());
    let n = rows.len();
    // A review column only where a page carries a note (`analyze --notes`).
    let reviews = rows
        .iter()
        .any(|r| r.outcome.as_ref().is_ok_and(|r| r.review.is_some()));
    let mut page = page_start(
        &format!("cxr-viewer reports ({n} films)"),
        ".index td,.index th{text-align:left}.index td.num{text-align:right}.err{color:#7a3d00}",
        &format!("cxr-viewer reports: {n} films"),
    );
    let _ = write!(
        page,
        "</header>\n<p class=\"small\">Outside the model's scope the answer is shown in \
         parentheses: it is not meaningful there.</p>\n\
         <table class=\"index\">\n<tr><th>film</th><th>answer</th><th>P({positive})</th>\
         <th>scope</th><th>uncertain</th>{}</tr>\n",
        if reviews { "<th>review</th>" } else { "" }
    );
    for row in rows {
        let film = escape(&row.film);
        match &row.outcome {
            Ok(r) => {
                let (open, close) = match r.out_of_scope {
                    Some(_) => ("<span class=\"dim\">(", ")</span>"),
                    None => ("", ""),
                };
                let _ = writeln!(
                    page,
                    "<tr><td><a href=\"{}\">{film}</a></td><td>{open}{}{close}</td>\
                     <td class=\"num\">{open}{:.3}{close}</td><td>{}</td><td>{}</td>{}</tr>",
                    href(&r.page),
                    escape(&r.label),
                    r.positive_probability,
                    match &r.out_of_scope {
                        Some(reason) => format!("out: {}", escape(reason)),
                        None => "in".into(),
                    },
                    if r.uncertain { "yes" } else { "" },
                    match (&r.review, reviews) {
                        (Some(mark), _) => format!("<td>{}</td>", escape(mark)),
                        (None, true) => "<td></td>".into(),
                        (None, false) => String::new(),
                    },
                );
            }
            Err(e) => {
                let _ = writeln!(
                    page,
                    "<tr><td>{film}</td><td colspan=\"{}\" class=\"err\">error: {}</td></tr>",
                    4 + usize::from(reviews),
                    escape(e)
                );
            }
        }
    }
    page.push_str("</table>\n</body>\n</html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_shown_not_read() {
        assert_eq!(
            escape(r#"<img src="x" onerror='a&b'>"#),
            "&lt;img src=&quot;x&quot; onerror=&#39;a&amp;b&#39;&gt;"
        );
        assert_eq!(escape("Doe^Jane, 3 y"), "Doe^Jane, 3 y");
    }

    #[test]
    fn pictures_fit_the_page_with_their_aspect() {
        assert_eq!(page_size(1616, 976), (1024, 618));
        assert_eq!(page_size(976, 1616), (618, 1024));
        assert_eq!(page_size(808, 488), (808, 488));
        assert_eq!(page_size(20_000, 3), (1024, 1));
    }

    /// Outside the model's scope the answer is hidden, so the review's outcome (which names it)
    /// is left out; the reviewer's own statements stay.
    #[test]
    fn the_review_names_the_outcome_only_where_the_answer_is_shown() {
        use crate::notes::{Finding, Note};
        let config = crate::model::ModelConfig::from_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/reference/model.json"),
        )
        .unwrap();
        let mut note = Note::new(crate::notes::StudyId::sha256(&[0xab; 32]));
        note.ground_truth = Some(Finding::Negative);
        note.agreement = Some(crate::notes::Agreement::Unsure);
        let folder = Some(Finding::Positive);
        let review =
            |note: &Note| ReviewReport::of_note(note, folder, &config, Finding::Positive).unwrap();
        let mut shown = String::new();
        review_section(&mut shown, &review(&note), Some("PNEUMONIA"));
        assert!(shown.contains("<li>Verdict: Unsure</li>"), "{shown}");
        // The reviewer's truth wins over the folder's, as in the note pane.
        assert!(shown.contains("<li>Ground truth: NORMAL (set by the reviewer)</li>"));
        assert!(shown.contains("<li>Outcome: False positive (truth NORMAL, model PNEUMONIA)</li>"));
        assert!(!shown.contains("Why the model") && !shown.contains("blockquote"));
        assert!(
            shown.contains("<p class=\"small\">Note written "),
            "{shown}"
        );
        let mut hidden = String::new();
        review_section(&mut hidden, &review(&note), None);
        assert!(hidden.contains("Ground truth: NORMAL") && !hidden.contains("Outcome"));

        // Zones ticked, and those a box covers (patient's left: the image's right half).
        note.zones.insert(crate::notes::Zone::RightLower);
        note.image_size = Some((100, 100));
        note.boxes = vec![ImageBox::new(60.0, 70.0, 30.0, 25.0)];
        let mut zones = String::new();
        review_section(&mut zones, &review(&note), None);
        assert!(
            zones.contains("<li>Zones implicated: Right lower; from the boxes: Left lower</li>"),
            "{zones}"
        );
        assert!(zones.contains("<li>1 opacity box drawn, outlined on each picture under"));
        note.zones.clear();
        let mut zones = String::new();
        review_section(&mut zones, &review(&note), None);
        assert!(zones.contains("<li>Zones implicated (from the boxes): Left lower</li>"));
    }

    #[test]
    fn links_stay_on_the_film_they_name() {
        let path = std::path::Path::new("NORMAL/a#1 b?.png/report.html");
        assert_eq!(href(path), "NORMAL/a%231%20b%3F.png/report.html");
    }
}
