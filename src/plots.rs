//! Evaluation plots (ROC curve, residual histogram, reliability diagram) as PNG.
//!
//! Drawn with plotters into an RGB buffer and encoded with the `image` crate; the font is embedded
//! so the plots look the same on every machine, with or without system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::evaluation::{reliability, roc_curve, Case};

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (640, 480);

fn ensure_font() -> Result<()> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the embedded plot font is invalid"));
    });
    result
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

fn save(buffer: Vec<u8>, path: &Path) -> Result<()> {
    image::RgbImage::from_raw(SIZE.0, SIZE.1, buffer)
        .ok_or_else(|| anyhow!("plot buffer has the wrong size"))?
        .save(path)
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
}

fn draw<F>(path: &Path, f: F) -> Result<()>
where
    F: FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
{
    ensure_font()?;
    let mut buffer = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        f(root.clone())?;
        root.present().map_err(plot_error)?;
    }
    save(buffer, path)
}

type UnitChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart with both axes 0..1, its caption (font `caption_size`) and axis names: the frame of
/// every plot here.
fn unit_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    caption_size: u32,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", caption_size))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// [`unit_chart`] with the diagonal drawn: the common frame of the ROC curve and the reliability
/// diagram.
fn unit_square_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: String,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, 'b>> {
    let mut chart = unit_chart(root, &caption, 22, x_desc, y_desc)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(plot_error)?;
    Ok(chart)
}

pub fn roc_png(cases: &[Case], auc: f64, path: &Path) -> Result<()> {
    let two_classes = both_classes(cases);
    let points = if two_classes {
        roc_curve(cases)
    } else {
        Vec::new()
    };
    draw(path, |root| {
        let mut chart = unit_square_chart(
            &root,
            roc_title(cases, auc),
            "1 − specificity (false-positive rate)",
            "sensitivity",
        )?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Whether `cases` hold both a positive and a negative case: an ROC curve needs both.
fn both_classes(cases: &[Case]) -> bool {
    cases.iter().any(|c| c.positive) && cases.iter().any(|c| !c.positive)
}

/// The ROC plot's title. A folder of one class (`eval test/PNEUMONIA`) has no ROC: the plot had
/// read "AUC = NaN" over a line along the axis, drawn from a denominator forced to 1. Four
/// decimals, as `eval`'s summary line: to three, an AUC of 0.99985 read as a perfect 1.000.
fn roc_title(cases: &[Case], auc: f64) -> String {
    if both_classes(cases) && auc.is_finite() {
        format!("ROC (AUC = {auc:.4}, n = {})", cases.len())
    } else {
        format!("ROC: needs both classes (n = {}, one class)", cases.len())
    }
}

/// Residual = label − probability (1 for a positive case); errors sit near ±1.
pub fn residual_png(cases: &[Case], path: &Path) -> Result<()> {
    const BINS: usize = 40;
    let mut counts = [0u32; BINS];
    for c in cases {
        let r = (if c.positive { 1.0 } else { 0.0 }) - c.probability as f64;
        let b = (((r + 1.0) / 2.0 * BINS as f64) as usize).min(BINS - 1);
        counts[b] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    draw(path, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Residuals (label − P(pneumonia))", ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(-1f64..1f64, 0u32..top + top / 10 + 1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("residual")
            .y_desc("images")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        let width = 2.0 / BINS as f64;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                let x0 = -1.0 + i as f64 * width;
                let color = if (x0 + width / 2.0).abs() > 0.5 {
                    RED.mix(0.7)
                } else {
                    BLUE.mix(0.6)
                };
                Rectangle::new([(x0, 0), (x0 + width, n)], color.filled())
            }))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// One non-empty bin of the reliability diagram.
#[derive(Clone, Debug, PartialEq)]
struct ReliabilityBar {
    bin: usize,
    mean_predicted: f64,
    observed: f64,
    /// 95 % Wilson interval of the observed rate.
    interval: [f64; 2],
    n: usize,
}

/// The bars to draw, with how sure each is: a bin of one film reads 0 or 1 whatever the model's
/// calibration, and bars alone drew it as firmly as a bin of two hundred.
fn reliability_bars(cases: &[Case], bins: usize) -> Vec<ReliabilityBar> {
    reliability(cases, bins)
        .into_iter()
        .enumerate()
        .filter(|(_, (_, _, n))| *n > 0)
        .filter_map(|(bin, (mean_predicted, observed, n))| {
            let positives = (observed * n as f64).round() as usize;
            Some(ReliabilityBar {
                bin,
                mean_predicted,
                observed,
                interval: crate::evaluation::wilson_interval(positives, n)?,
                n,
            })
        })
        .collect()
}

/// Names its ECE: it is metrics.json's `ece_positive_class` (P(pneumonia) binned against the
/// observed rate), not the top-label `ece` that `eval` prints, and the title's bare "ECE = 0.036"
/// sat beside a printed "ece=0.0105" for the same films.
fn reliability_title(ece: f64, bins: usize) -> String {
    format!("Reliability (positive-class ECE {ece:.3}, {bins} bins)")
}

pub fn reliability_png(cases: &[Case], ece: f64, bins: usize, path: &Path) -> Result<()> {
    let bars = reliability_bars(cases, bins);
    draw(path, |root| {
        let mut chart = unit_square_chart(
            &root,
            reliability_title(ece, bins),
            "mean predicted P(pneumonia); whiskers: 95 % interval; numbers: films per bin",
            "observed pneumonia rate",
        )?;
        let width = 1.0 / bins as f64;
        let x0 = |b: &ReliabilityBar| b.bin as f64 * width;
        chart
            .draw_series(bars.iter().map(|b| {
                Rectangle::new(
                    [
                        (x0(b) + 0.1 * width, 0.0),
                        (x0(b) + 0.9 * width, b.observed),
                    ],
                    BLUE.mix(0.5).filled(),
                )
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().flat_map(|b| {
                let centre = x0(b) + 0.5 * width;
                let cap = 0.2 * width;
                let [lo, hi] = b.interval;
                [
                    PathElement::new([(centre, lo), (centre, hi)], BLACK.stroke_width(1)),
                    PathElement::new([(centre - cap, lo), (centre + cap, lo)], BLACK),
                    PathElement::new([(centre - cap, hi), (centre + cap, hi)], BLACK),
                ]
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(
                bars.iter()
                    .map(|b| Circle::new((b.mean_predicted, b.observed), 4, RED.filled())),
            )
            .map_err(plot_error)?;
        let count_style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().map(|b| {
                Text::new(
                    b.n.to_string(),
                    (x0(b) + 0.5 * width, 0.01),
                    count_style.clone(),
                )
            }))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Mean deletion curves (probability of the explained class against the fraction of cells
/// replaced by the baseline), one line per map plus the random reference (gray, dashed look by
/// markers). `series`: (legend, curve d_0..d_S).
pub fn deletion_curves_png(title: &str, series: &[(String, Vec<f32>)], path: &Path) -> Result<()> {
    const COLORS: [RGBColor; 4] = [RED, BLUE, RGBColor(0, 150, 0), RGBColor(120, 120, 120)];
    const KEY_FONT: u32 = 14;
    let curves: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, curve)| {
            let steps = curve.len().saturating_sub(1).max(1) as f64;
            curve
                .iter()
                .enumerate()
                .map(|(k, v)| (k as f64 / steps, *v as f64))
                .collect()
        })
        .collect();
    draw(path, |root| {
        let mut chart = unit_chart(
            &root,
            title,
            20,
            "fraction of cells deleted (most relevant first)",
            "P(explained class)",
        )?;
        // The key's size as a share of the plotting area: the widest name, plotters' stroke and
        // gaps beside it, a row per series, and the corner margin.
        let font = ("sans-serif", KEY_FONT).into_text_style(&root);
        let (mut text_width, mut text_height) = (0u32, KEY_FONT);
        for (name, _) in series {
            let (w, h) = root.estimate_text_size(name, &font).map_err(plot_error)?;
            text_width = text_width.max(w);
            text_height = text_height.max(h);
        }
        let (area_width, area_height) = chart.plotting_area().dim_in_pixel();
        let key = (
            f64::from(text_width + 50) / f64::from(area_width.max(1)),
            f64::from(series.len() as u32 * (text_height + 8) + 20) / f64::from(area_height.max(1)),
        );
        for (i, ((name, _), points)) in series.iter().zip(&curves).enumerate() {
            let color = COLORS[i.min(COLORS.len() - 1)];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", KEY_FONT))
            .position(free_corner(&curves, key))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// The corner of a unit chart where a key `width` × `height` (shares of the plotting area's) covers
/// the fewest points along `curves`; the upper right where none is free. Fixed in
/// the upper right, the key of the deletion curves hid the random curve, which runs high through
/// the middle of the plot, and the maps' first steps.
fn free_corner(curves: &[Vec<(f64, f64)>], (width, height): (f64, f64)) -> SeriesLabelPosition {
    const SAMPLES: usize = 32;
    let covered = |x0: f64, y0: f64| {
        let inside =
            |(x, y): (f64, f64)| (x0..=x0 + width).contains(&x) && (y0..=y0 + height).contains(&y);
        curves
            .iter()
            .flat_map(|c| c.windows(2))
            .flat_map(|pair| {
                let ((xa, ya), (xb, yb)) = (pair[0], pair[1]);
                (0..=SAMPLES).map(move |k| {
                    let t = k as f64 / SAMPLES as f64;
                    (xa + t * (xb - xa), ya + t * (yb - ya))
                })
            })
            .filter(|&p| inside(p))
            .count()
    };
    let (right, top) = (1.0 - width, 1.0 - height);
    [
        (SeriesLabelPosition::UpperRight, right, top),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
        (SeriesLabelPosition::LowerRight, right, 0.0),
        (SeriesLabelPosition::UpperLeft, 0.0, top),
    ]
    .into_iter()
    .min_by_key(|&(_, x0, y0)| covered(x0, y0))
    .map_or(SeriesLabelPosition::UpperRight, |(corner, _, _)| corner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(positive: bool, probability: f32) -> Case {
        Case {
            file: String::new(),
            positive,
            probability,
        }
    }

    /// The deletion curves' key goes where no curve runs: with the curves of a 10-film `eval
    /// --faithfulness` (all high on the left, the random one high through the middle) the lower
    /// left, where the fixed upper-right key had hidden the random curve's middle; with curves
    /// that fall at once, a corner above them.
    #[test]
    fn the_key_goes_in_a_corner_no_curve_crosses() {
        let unit = |v: &[f64]| -> Vec<(f64, f64)> {
            let steps = (v.len() - 1) as f64;
            v.iter()
                .enumerate()
                .map(|(k, &y)| (k as f64 / steps, y))
                .collect()
        };
        let key = (0.62, 0.25);
        let measured = [
            unit(&[0.99, 0.98, 0.68, 0.57, 0.59]),
            unit(&[0.99, 0.78, 0.60, 0.53, 0.59]),
            unit(&[0.99, 0.99, 0.90, 0.68, 0.59]),
        ];
        assert!(matches!(
            free_corner(&measured, key),
            SeriesLabelPosition::LowerLeft
        ));
        let falling = [
            unit(&[0.9, 0.1, 0.05, 0.02, 0.01]),
            unit(&[0.8, 0.5, 0.2, 0.1, 0.05]),
        ];
        assert!(matches!(
            free_corner(&falling, key),
            SeriesLabelPosition::UpperRight
        ));
        let rising = [unit(&[0.1, 0.2, 0.4, 0.8, 0.99])];
        assert!(matches!(
            free_corner(&rising, key),
            SeriesLabelPosition::UpperLeft | SeriesLabelPosition::LowerRight
        ));
    }

    /// The reliability diagram's title says which ECE it gives, and fits the plot's width
    /// (the caption's font, inside the chart's margins).
    #[test]
    fn the_reliability_title_names_its_ece_and_fits() {
        ensure_font().unwrap();
        let title = reliability_title(0.0358, 15);
        assert!(title.contains("positive-class ECE 0.036"), "{title}");
        let mut buffer = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut buffer, SIZE).into_drawing_area();
        let font = ("sans-serif", 22).into_text_style(&root);
        let (width, _) = root.estimate_text_size(&title, &font).unwrap();
        assert!(width + 30 <= SIZE.0, "{title}: {width} px");
    }

    #[test]
    fn an_roc_of_one_class_says_so_instead_of_nan() {
        let both = [case(true, 0.9), case(false, 0.2)];
        assert_eq!(roc_title(&both, 1.0), "ROC (AUC = 1.0000, n = 2)");
        assert_eq!(roc_title(&both, 0.99985), "ROC (AUC = 0.9999, n = 2)");
        let one = [case(true, 0.9), case(true, 0.2)];
        assert_eq!(
            roc_title(&one, f64::NAN),
            "ROC: needs both classes (n = 2, one class)"
        );
        assert!(!both_classes(&one) && !both_classes(&[]));
    }

    #[test]
    fn each_reliability_bar_carries_its_count_and_wilson_interval() {
        // 15 bins of 1/15: 0.05 falls in bin 0, 0.95 and 0.99 in bin 14; bins 1–13 are empty.
        let cases = [
            case(false, 0.05),
            case(true, 0.95),
            case(true, 0.99),
            case(false, 0.99),
        ];
        let bars = reliability_bars(&cases, 15);
        assert_eq!(bars.len(), 2, "empty bins draw nothing");
        let (low, high) = (&bars[0], &bars[1]);
        assert_eq!((low.bin, low.n, low.observed), (0, 1, 0.0));
        assert_eq!((high.bin, high.n), (14, 3));
        assert!((high.mean_predicted - (0.95 + 0.99 + 0.99) / 3.0).abs() < 1e-6);
        assert!((high.observed - 2.0 / 3.0).abs() < 1e-12);
        // Wilson, z = 1.96, by hand: 0 of 1 gives [0, z²/(1 + z²)] = [0, 0.7934];
        // 2 of 3: centre (2/3 + z²/6) / (1 + z²/3) = 0.5731, half-width 0.3654.
        assert!(low.interval[0] == 0.0 && (low.interval[1] - 0.7934).abs() < 1e-4);
        assert!(
            (high.interval[0] - 0.2077).abs() < 1e-4,
            "{:?}",
            high.interval
        );
        assert!(
            (high.interval[1] - 0.9385).abs() < 1e-4,
            "{:?}",
            high.interval
        );
    }
}
