//! The spread of a per-image metric: one dot per image for each group, the mean as a bar.

use std::path::Path;

use egui::Align2;
use egui::epaint::{Color32, Pos2, Rect, Shape};

use super::canvas::Canvas;
use super::chart::{self, Axes, Range, nice_ticks, tick_label};
use crate::formats::FormatError;
use crate::metrics::stats::describe;

/// One panel: a title, a y-axis label and named groups of values.
pub struct Panel<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub groups: Vec<(&'a str, Color32, &'a [f64])>,
}

const W_PANEL: f32 = 480.0;
const H: u32 = 640;

/// Panels side by side under a common title. Non-finite values are counted in the group
/// label but not drawn.
pub fn strip_plots(path: &Path, title: &str, subtitle: &str, panels: &[Panel]) -> Result<(), FormatError> {
    let mut c = Canvas::new((W_PANEL * panels.len() as f32) as u32, H);
    chart::title(&mut c, title, Some(subtitle));
    for (k, panel) in panels.iter().enumerate() {
        let left = W_PANEL * k as f32;
        let rect =
            Rect::from_min_max(Pos2::new(left + 100.0, 110.0), Pos2::new(left + W_PANEL - 30.0, H as f32 - 80.0));
        let all = panel.groups.iter().flat_map(|g| g.2.iter().copied());
        let y = Range::of(all).unwrap_or(Range { min: 0.0, max: 1.0 }).padded(0.06);
        let n = panel.groups.len() as f64;
        let axes = Axes { rect, x: Range { min: 0.0, max: n }, y };
        draw_y_axis(&mut c, &axes, panel.y_label);
        c.text(
            Pos2::new(rect.center().x, rect.top() - 12.0),
            Align2::CENTER_BOTTOM,
            panel.title,
            chart::LABEL_SIZE,
            chart::TEXT,
        );
        for (g, (name, color, values)) in panel.groups.iter().enumerate() {
            let centre = g as f64 + 0.5;
            let faint = Color32::from_rgba_unmultiplied(color.r(), color.g(), color.b(), 150);
            for (i, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                // Deterministic spread (golden-ratio sequence) so overlapping dots stay visible.
                let jitter = ((i as f64 * 0.618_033_988_75).fract() - 0.5) * 0.5;
                c.add(Shape::circle_filled(axes.to_px(centre + jitter, v), 4.0, faint));
            }
            let s = describe(values.iter().copied());
            if s.n > 0 {
                let (a, b) = (axes.to_px(centre - 0.32, s.mean), axes.to_px(centre + 0.32, s.mean));
                c.segment(a, b, 3.0, chart::TEXT);
                c.text(
                    b + egui::vec2(2.0, 0.0),
                    Align2::LEFT_CENTER,
                    &format_mean(s.mean),
                    chart::TICK_SIZE - 1.0,
                    chart::TEXT,
                );
            }
            let mut label = format!("{name} (n = {})", s.n);
            if s.non_finite > 0 {
                label.push_str(&format!(", {} not finite", s.non_finite));
            }
            c.text(
                Pos2::new(axes.to_px(centre, y.min).x, rect.bottom() + 10.0),
                Align2::CENTER_TOP,
                &label,
                chart::TICK_SIZE,
                chart::TEXT,
            );
        }
    }
    c.save_png(path)
}

fn format_mean(v: f64) -> String {
    if v.abs() < 10.0 { format!("{v:.3}") } else { format!("{v:.1}") }
}

fn draw_y_axis(c: &mut Canvas, axes: &Axes, label: &str) {
    let r = axes.rect;
    let (ticks, step) = nice_ticks(axes.y, 6);
    let mut widest = 0.0f32;
    for t in ticks {
        let y = axes.to_px(0.0, t).y;
        c.segment(Pos2::new(r.left(), y), Pos2::new(r.right(), y), 1.0, chart::GRID);
        let text = tick_label(t, step);
        widest = widest.max(c.text_width(&text, chart::TICK_SIZE));
        c.text(Pos2::new(r.left() - 8.0, y), Align2::RIGHT_CENTER, &text, chart::TICK_SIZE, chart::TEXT);
    }
    c.add(Shape::rect_stroke(r, 0.0, egui::epaint::Stroke::new(1.0, chart::AXIS), egui::epaint::StrokeKind::Middle));
    c.text_vertical(
        Pos2::new(r.left() - 16.0 - widest, r.center().y),
        Align2::CENTER_BOTTOM,
        label,
        chart::LABEL_SIZE,
        chart::TEXT,
    );
}
