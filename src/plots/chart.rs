//! Axes for x/y plots: a data range mapped onto a pixel rectangle, ticks at "nice"
//! numbers, labels and a title.

use egui::Align2;
use egui::epaint::{Color32, Pos2, Rect, Shape, Stroke, StrokeKind};

use super::canvas::Canvas;

pub const TEXT: Color32 = Color32::from_rgb(30, 30, 30);
pub const GRID: Color32 = Color32::from_rgb(228, 228, 228);
pub const AXIS: Color32 = Color32::from_rgb(90, 90, 90);
pub const TITLE_SIZE: f32 = 20.0;
pub const LABEL_SIZE: f32 = 16.0;
pub const TICK_SIZE: f32 = 14.0;

/// Colours of the organs in [`crate::landmarks::Organ::ALL`] order (colour-blind safe).
pub const ORGAN_COLORS: [Color32; 3] =
    [Color32::from_rgb(0, 114, 178), Color32::from_rgb(230, 159, 0), Color32::from_rgb(204, 71, 120)];

/// A closed data interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    /// The range of the finite values, `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Range> {
        values.into_iter().filter(|v| v.is_finite()).fold(None, |r: Option<Range>, v| {
            Some(r.map_or(Range { min: v, max: v }, |r| Range { min: r.min.min(v), max: r.max.max(v) }))
        })
    }

    /// Widened by `fraction` of its length on both sides; a single value gets ±1 (or ±10 %).
    pub fn padded(self, fraction: f64) -> Range {
        let len = self.max - self.min;
        if len <= 0.0 {
            let d = if self.min == 0.0 { 1.0 } else { self.min.abs() * 0.1 };
            return Range { min: self.min - d, max: self.max + d };
        }
        Range { min: self.min - len * fraction, max: self.max + len * fraction }
    }

    /// Extended to include zero.
    pub fn with_zero(self) -> Range {
        Range { min: self.min.min(0.0), max: self.max.max(0.0) }
    }
}

/// Tick positions at multiples of 1, 2 or 5 × 10ⁿ, about `target` of them, inside `r`.
pub fn nice_ticks(r: Range, target: usize) -> (Vec<f64>, f64) {
    let span = (r.max - r.min).max(f64::MIN_POSITIVE);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * 0.999).unwrap_or(10.0 * mag);
    let first = (r.min / step).ceil() as i64;
    let last = (r.max / step).floor() as i64;
    ((first..=last).map(|k| k as f64 * step).collect(), step)
}

/// A tick label with as many decimals as the step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') { s[1..].to_string() } else { s }
}

/// A plot area: `rect` in pixels showing `x` × `y` in data units.
#[derive(Debug, Clone, Copy)]
pub struct Axes {
    pub rect: Rect,
    pub x: Range,
    pub y: Range,
}

impl Axes {
    pub fn to_px(&self, x: f64, y: f64) -> Pos2 {
        let fx = (x - self.x.min) / (self.x.max - self.x.min);
        let fy = (y - self.y.min) / (self.y.max - self.y.min);
        Pos2::new(
            self.rect.left() + (fx as f32) * self.rect.width(),
            self.rect.bottom() - (fy as f32) * self.rect.height(),
        )
    }

    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x.min && x <= self.x.max && y >= self.y.min && y <= self.y.max
    }

    /// Grid, frame, ticks, tick labels and axis labels.
    pub fn draw(&self, c: &mut Canvas, x_label: &str, y_label: &str) {
        let (xt, xs) = nice_ticks(self.x, 6);
        let (yt, ys) = nice_ticks(self.y, 6);
        let r = self.rect;
        for &t in &xt {
            let p = self.to_px(t, self.y.min);
            c.segment(Pos2::new(p.x, r.top()), Pos2::new(p.x, r.bottom()), 1.0, GRID);
            c.segment(Pos2::new(p.x, r.bottom()), Pos2::new(p.x, r.bottom() + 5.0), 1.0, AXIS);
            c.text(Pos2::new(p.x, r.bottom() + 8.0), Align2::CENTER_TOP, &tick_label(t, xs), TICK_SIZE, TEXT);
        }
        let mut widest = 0.0f32;
        for &t in &yt {
            let p = self.to_px(self.x.min, t);
            c.segment(Pos2::new(r.left(), p.y), Pos2::new(r.right(), p.y), 1.0, GRID);
            c.segment(Pos2::new(r.left() - 5.0, p.y), Pos2::new(r.left(), p.y), 1.0, AXIS);
            let label = tick_label(t, ys);
            widest = widest.max(c.text_width(&label, TICK_SIZE));
            c.text(Pos2::new(r.left() - 8.0, p.y), Align2::RIGHT_CENTER, &label, TICK_SIZE, TEXT);
        }
        c.add(Shape::rect_stroke(r, 0.0, Stroke::new(1.0, AXIS), StrokeKind::Middle));
        c.text(Pos2::new(r.center().x, r.bottom() + 32.0), Align2::CENTER_TOP, x_label, LABEL_SIZE, TEXT);
        c.text_vertical(
            Pos2::new(r.left() - 16.0 - widest, r.center().y),
            Align2::CENTER_BOTTOM,
            y_label,
            LABEL_SIZE,
            TEXT,
        );
    }
}

/// Title centred over the whole canvas width, and an optional smaller subtitle under it.
pub fn title(c: &mut Canvas, text: &str, subtitle: Option<&str>) {
    let w = c.size().x;
    c.text(Pos2::new(w / 2.0, 14.0), Align2::CENTER_TOP, text, TITLE_SIZE, TEXT);
    if let Some(s) = subtitle {
        c.text(Pos2::new(w / 2.0, 42.0), Align2::CENTER_TOP, s, TICK_SIZE, AXIS);
    }
}

/// A legend box of coloured dots and labels with its top-left corner at `at`.
pub fn legend(c: &mut Canvas, at: Pos2, entries: &[(Color32, String)]) {
    let width = entries.iter().map(|(_, t)| c.text_width(t, TICK_SIZE)).fold(0.0f32, f32::max) + 34.0;
    let rect = Rect::from_min_size(at, egui::vec2(width, 8.0 + 22.0 * entries.len() as f32));
    c.add(Shape::rect_filled(rect, 3.0, Color32::from_white_alpha(235)));
    c.add(Shape::rect_stroke(rect, 3.0, Stroke::new(1.0, GRID), StrokeKind::Inside));
    for (i, (color, text)) in entries.iter().enumerate() {
        let y = at.y + 15.0 + 22.0 * i as f32;
        c.add(Shape::circle_filled(Pos2::new(at.x + 14.0, y), 5.0, *color));
        c.text(Pos2::new(at.x + 26.0, y), Align2::LEFT_CENTER, text, TICK_SIZE, TEXT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers() {
        let (t, s) = nice_ticks(Range { min: 0.0, max: 1.0 }, 5);
        assert_eq!(s, 0.2);
        assert_eq!(t.len(), 6);
        let (t, s) = nice_ticks(Range { min: 3.2, max: 47.0 }, 6);
        assert_eq!((s, t[0], *t.last().unwrap()), (10.0, 10.0, 40.0));
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(-0.0, 0.5), "0.0");
        assert_eq!(tick_label(20.0, 5.0), "20");
        assert_eq!(Range::of([3.0, f64::NAN, -1.0]), Some(Range { min: -1.0, max: 3.0 }));
        assert_eq!(Range::of([f64::INFINITY]), None);
    }
}
