//! How the image score follows added noise: one faint line per image, the mean in bold.

use std::path::Path;

use egui::epaint::{Color32, Pos2, Rect};

use super::canvas::Canvas;
use super::chart::{self, Axes, Range};
use crate::formats::FormatError;

const W: u32 = 900;
const H: u32 = 640;

/// `curves[i][k]` is image i's score at `sigmas[k]`.
pub fn noise_curve(path: &Path, sigmas: &[f32], curves: &[Vec<f64>], unit: &str) -> Result<(), FormatError> {
    let mut c = Canvas::new(W, H);
    let subtitle = format!("{} images; faint: each image, bold: mean", curves.len());
    chart::title(&mut c, "Image score as Gaussian noise is added", Some(&subtitle));
    let xs: Vec<f64> = sigmas.iter().map(|&s| s as f64).collect();
    let axes = Axes {
        rect: Rect::from_min_max(Pos2::new(100.0, 80.0), Pos2::new(W as f32 - 30.0, H as f32 - 80.0)),
        x: Range::of(xs.iter().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).padded(0.03),
        y: Range::of(curves.iter().flatten().copied()).unwrap_or(Range { min: 0.0, max: 1.0 }).with_zero().padded(0.05),
    };
    axes.draw(&mut c, "noise standard deviation (fraction of the grey range)", &format!("mean node std ({unit})"));
    let line = |c: &mut Canvas, ys: &[f64], width: f32, color: Color32| {
        let pts = xs.iter().zip(ys).filter(|(_, y)| y.is_finite()).map(|(&x, &y)| axes.to_px(x, y)).collect();
        c.line(pts, width, color);
    };
    for curve in curves {
        line(&mut c, curve, 1.2, Color32::from_rgba_unmultiplied(60, 110, 200, 90));
    }
    if !curves.is_empty() {
        let mean: Vec<f64> =
            (0..xs.len()).map(|k| curves.iter().map(|cv| cv[k]).sum::<f64>() / curves.len() as f64).collect();
        line(&mut c, &mean, 3.5, Color32::from_rgb(30, 60, 140));
        for (&x, &y) in xs.iter().zip(&mean) {
            c.add(egui::epaint::Shape::circle_filled(axes.to_px(x, y), 5.0, Color32::from_rgb(30, 60, 140)));
        }
    }
    c.save_png(path)
}
