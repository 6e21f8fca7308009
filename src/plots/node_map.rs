//! Where on the contours the error is: a value per node (e.g. mean error over images)
//! drawn as coloured dots on the landmark template, with a colour bar.

use std::path::Path;

use egui::Align2;
use egui::epaint::{Color32, Pos2, Rect, Shape, Stroke, StrokeKind};

use super::canvas::Canvas;
use super::chart::{self, Range, nice_ticks, tick_label};
use super::colormap::viridis;
use crate::formats::FormatError;
use crate::landmarks::{NUM_NODES, Organ, template};

const W: u32 = 900;
const H: u32 = 860;

/// `values[i]` coloured at template node i; the colour bar runs from 0 to the largest value.
pub fn node_values_on_template(
    path: &Path,
    values: &[f64; NUM_NODES],
    title: &str,
    subtitle: &str,
    unit: &str,
) -> Result<(), FormatError> {
    let mut c = Canvas::new(W, H);
    chart::title(&mut c, title, Some(subtitle));
    let t = template();
    let (xr, yr) = (
        Range::of(t.iter().map(|p| p[0] as f64)).expect("template has nodes"),
        Range::of(t.iter().map(|p| p[1] as f64)).expect("template has nodes"),
    );
    // Fit the template into the drawing area keeping its aspect ratio.
    let area = Rect::from_min_max(Pos2::new(40.0, 110.0), Pos2::new(W as f32 - 170.0, H as f32 - 40.0));
    let scale = (area.width() as f64 / (xr.max - xr.min)).min(area.height() as f64 / (yr.max - yr.min));
    let off = Pos2::new(
        area.center().x - ((xr.max - xr.min) * scale / 2.0) as f32,
        area.center().y - ((yr.max - yr.min) * scale / 2.0) as f32,
    );
    let to_px = |p: [f32; 2]| {
        Pos2::new(off.x + ((p[0] as f64 - xr.min) * scale) as f32, off.y + ((p[1] as f64 - yr.min) * scale) as f32)
    };

    let vmax = Range::of(values.iter().copied()).map_or(1.0, |r| r.max.max(f64::MIN_POSITIVE));
    for organ in Organ::ALL {
        let ring: Vec<Pos2> = t[organ.nodes()].iter().map(|&p| to_px(p)).collect();
        c.add(Shape::closed_line(ring, Stroke::new(2.0, Color32::from_gray(200))));
        let nodes = organ.nodes();
        let top = t[nodes.clone()]
            .iter()
            .map(|p| to_px(*p))
            .fold(Pos2::new(f32::MAX, f32::MAX), |a, b| Pos2::new(a.x, a.y.min(b.y)));
        let cx = t[nodes.clone()].iter().map(|p| to_px(*p).x).sum::<f32>() / nodes.len() as f32;
        let label_y = if organ == Organ::Heart { top.y + 40.0 } else { top.y - 22.0 };
        c.text(Pos2::new(cx, label_y), Align2::CENTER_BOTTOM, organ.name(), chart::LABEL_SIZE, chart::TEXT);
    }
    for (i, &p) in t.iter().enumerate() {
        let v = values[i];
        let fill = if v.is_finite() { viridis(v / vmax) } else { Color32::LIGHT_GRAY };
        c.add(Shape::circle_filled(to_px(p), 7.0, fill));
        c.add(Shape::circle_stroke(to_px(p), 7.0, Stroke::new(0.8, Color32::from_gray(60))));
    }
    // Number the first node of each organ and the lowest node of each lung, to orient the reader.
    let lowest = |o: Organ| o.nodes().max_by(|&a, &b| t[a][1].total_cmp(&t[b][1])).expect("organ has nodes");
    for i in [0, lowest(Organ::RightLung), 44, lowest(Organ::LeftLung), 94] {
        let p = to_px(t[i]);
        c.text(p + egui::vec2(10.0, -6.0), Align2::LEFT_BOTTOM, &i.to_string(), chart::TICK_SIZE - 2.0, chart::AXIS);
    }
    c.text(
        Pos2::new(area.left(), H as f32 - 18.0),
        Align2::LEFT_CENTER,
        "Image orientation: the patient's right lung is on the left. Template: mean JSRT shape.",
        chart::TICK_SIZE - 1.0,
        chart::AXIS,
    );

    // Colour bar.
    let bar = Rect::from_min_max(Pos2::new(W as f32 - 120.0, 160.0), Pos2::new(W as f32 - 96.0, H as f32 - 140.0));
    let steps = 100;
    for k in 0..steps {
        let y0 = bar.bottom() - bar.height() * (k as f32 / steps as f32);
        let y1 = bar.bottom() - bar.height() * ((k + 1) as f32 / steps as f32);
        let r = Rect::from_min_max(Pos2::new(bar.left(), y1), Pos2::new(bar.right(), y0 + 0.5));
        c.add(Shape::rect_filled(r, 0.0, viridis((k as f64 + 0.5) / steps as f64)));
    }
    c.add(Shape::rect_stroke(bar, 0.0, Stroke::new(1.0, chart::AXIS), StrokeKind::Outside));
    let (ticks, step) = nice_ticks(Range { min: 0.0, max: vmax }, 6);
    for v in ticks {
        let y = bar.bottom() - bar.height() * (v / vmax) as f32;
        c.segment(Pos2::new(bar.right(), y), Pos2::new(bar.right() + 5.0, y), 1.0, chart::AXIS);
        c.text(
            Pos2::new(bar.right() + 8.0, y),
            Align2::LEFT_CENTER,
            &tick_label(v, step),
            chart::TICK_SIZE,
            chart::TEXT,
        );
    }
    c.text(Pos2::new(bar.center().x, bar.top() - 10.0), Align2::CENTER_BOTTOM, unit, chart::TICK_SIZE, chart::TEXT);
    c.save_png(path)
}
