//! Does the model's uncertainty tell where it is wrong? Node error against node standard
//! deviation as a scatter, and as a reliability curve of quantile bins.

use std::path::Path;

use egui::epaint::{Color32, Pos2, Rect, Shape};

use super::canvas::Canvas;
use super::chart::{self, Axes, ORGAN_COLORS, Range};
use crate::formats::FormatError;
use crate::landmarks::Organ;
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::reliability::ReliabilityBin;

const W: u32 = 960;
const H: u32 = 700;

fn plot_rect() -> Rect {
    Rect::from_min_max(Pos2::new(100.0, 80.0), Pos2::new(W as f32 - 30.0, H as f32 - 80.0))
}

fn correlation_text(x: &[f64], y: &[f64]) -> String {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    format!("Pearson r = {}, Spearman ρ = {}", f(pearson(x, y)), f(spearman(x, y)))
}

/// One point per node: (node standard deviation, node error, organ). `images` is only
/// reported in the subtitle.
pub fn error_vs_uncertainty(
    path: &Path,
    points: &[(f64, f64, Organ)],
    images: usize,
    unit: &str,
) -> Result<(), FormatError> {
    let x: Vec<f64> = points.iter().map(|p| p.0).collect();
    let y: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mut c = Canvas::new(W, H);
    let subtitle = format!("{} nodes of {images} images · {}", points.len(), correlation_text(&x, &y));
    chart::title(&mut c, "Landmark error vs. predicted uncertainty", Some(&subtitle));
    let axes = Axes {
        rect: plot_rect(),
        x: Range::of(x.iter().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.03),
        y: Range::of(y.iter().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.03),
    };
    axes.draw(&mut c, &format!("node standard deviation, mean of x and y ({unit})"), &format!("node error ({unit})"));
    for &(sx, e, organ) in points {
        if sx.is_finite() && e.is_finite() {
            let col = ORGAN_COLORS[crate::masks::organ_index(organ)];
            let faint = Color32::from_rgba_unmultiplied(col.r(), col.g(), col.b(), 110);
            c.add(Shape::circle_filled(axes.to_px(sx, e), 2.6, faint));
        }
    }
    let entries: Vec<(Color32, String)> =
        Organ::ALL.iter().map(|&o| (ORGAN_COLORS[crate::masks::organ_index(o)], o.name().to_string())).collect();
    chart::legend(&mut c, Pos2::new(axes.rect.left() + 12.0, axes.rect.top() + 12.0), &entries);
    c.save_png(path)
}

/// Mean error per uncertainty bin with ±1 sd bars.
pub fn reliability(path: &Path, bins: &[ReliabilityBin], unit: &str) -> Result<(), FormatError> {
    let mut c = Canvas::new(W, H);
    let total: usize = bins.iter().map(|b| b.n).sum();
    let subtitle =
        format!("{} quantile bins of node standard deviation ({total} nodes); bars: ±1 sd of the error", bins.len());
    chart::title(&mut c, "Reliability: error by uncertainty bin", Some(&subtitle));
    let xs = bins.iter().map(|b| b.mean_uncertainty);
    // Errors are distances: bars stop at 0.
    let low = |b: &ReliabilityBin| (b.mean_error - b.error_sd).max(0.0);
    let ys = bins.iter().flat_map(|b| [low(b), b.mean_error + b.error_sd]);
    let axes = Axes {
        rect: plot_rect(),
        x: Range::of(xs).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.05),
        y: Range::of(ys).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.05),
    };
    axes.draw(&mut c, &format!("mean node standard deviation in the bin ({unit})"), &format!("node error ({unit})"));
    let color = Color32::from_rgb(0, 114, 178);
    for b in bins {
        let top = axes.to_px(b.mean_uncertainty, b.mean_error + b.error_sd);
        let bottom = axes.to_px(b.mean_uncertainty, low(b));
        c.segment(top, bottom, 1.5, Color32::from_rgb(150, 180, 210));
        c.segment(top - egui::vec2(5.0, 0.0), top + egui::vec2(5.0, 0.0), 1.5, Color32::from_rgb(150, 180, 210));
    }
    let line: Vec<Pos2> = bins.iter().map(|b| axes.to_px(b.mean_uncertainty, b.mean_error)).collect();
    c.line(line.clone(), 2.0, color);
    for p in line {
        c.add(Shape::circle_filled(p, 5.0, color));
    }
    chart::legend(
        &mut c,
        Pos2::new(axes.rect.left() + 12.0, axes.rect.top() + 12.0),
        &[(color, "mean node error in the bin".to_string())],
    );
    c.save_png(path)
}

/// Per image: uncertainty score against mean node error.
pub fn score_vs_error(path: &Path, score: &[f64], error: &[f64], unit: &str) -> Result<(), FormatError> {
    let mut c = Canvas::new(W, H);
    let subtitle = format!("{} images · {}", score.len(), correlation_text(score, error));
    chart::title(&mut c, "Image uncertainty score vs. mean landmark error", Some(&subtitle));
    let axes = Axes {
        rect: plot_rect(),
        x: Range::of(score.iter().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.05),
        y: Range::of(error.iter().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.05),
    };
    axes.draw(
        &mut c,
        &format!("image score: mean node standard deviation ({unit})"),
        &format!("mean node error ({unit})"),
    );
    for (&s, &e) in score.iter().zip(error) {
        if s.is_finite() && e.is_finite() {
            c.add(Shape::circle_filled(axes.to_px(s, e), 5.0, Color32::from_rgba_unmultiplied(0, 114, 178, 170)));
        }
    }
    c.save_png(path)
}
