//! The landmark graph drawn over the image: organ fills, contours, 1-σ ellipses and nodes
//! coloured by their standard deviation, plus the colour legend. Pure drawing and
//! hit-testing; what a drag does is decided by the app.

use egui::epaint::{Mesh, PathStroke};
use egui::{Color32, Painter, Pos2, Rect, Shape, Stroke, Vec2};

use super::viewer::Shown;
use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::model::calibration::{Calibrated, ReliabilityRow};
use crate::plots::colormap::viridis;

/// What to draw (View menu toggles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    pub contours: bool,
    pub nodes: bool,
    pub ellipses: bool,
    pub fill: bool,
    /// The prediction as a thin dashed outline under the corrected contour.
    pub prediction: bool,
    /// The cardiothoracic ratio's two measured widths.
    pub ctr: bool,
}

impl Default for Layers {
    fn default() -> Self {
        Layers { contours: true, nodes: true, ellipses: false, fill: false, prediction: true, ctr: true }
    }
}

/// The graph to draw, in image pixels.
pub struct Graph<'a> {
    pub positions: &'a [Point; NUM_NODES],
    pub predicted: &'a [Point; NUM_NODES],
    pub std: &'a [Point; NUM_NODES],
    pub edited: &'a [bool; NUM_NODES],
    pub selected: &'a [bool; NUM_NODES],
    pub hovered: Option<usize>,
    /// What the node colours show.
    pub colours: &'a NodeColours<'a>,
}

/// What a node's colour means: its raw std on a fixed scale, or (for a calibrated model) its
/// expected error on the calibration's scale, explained by the legend's reliability rows.
pub enum NodeColours<'a> {
    Std { scale_px: f32 },
    Expected(&'a Calibrated),
}

impl NodeColours<'_> {
    pub fn for_image(calibrated: Option<&Calibrated>, width: u32, height: u32) -> NodeColours<'_> {
        match calibrated {
            Some(c) => NodeColours::Expected(c),
            None => NodeColours::Std { scale_px: std_scale(width, height) },
        }
    }

    /// Position of `node` on the colour scale, 0–1 (clamped by the colour map).
    pub fn t(&self, node: usize, std: &Point) -> f32 {
        match self {
            NodeColours::Std { scale_px } => node_std(std) / scale_px,
            NodeColours::Expected(c) => c.expected_error[node] / c.scale_top_px,
        }
    }

    fn scale_px(&self) -> f32 {
        match self {
            NodeColours::Std { scale_px } => *scale_px,
            NodeColours::Expected(c) => c.scale_top_px,
        }
    }

    /// Legend height in points: the bar, plus one line per non-empty reliability row.
    pub fn legend_height(&self) -> f32 {
        match self {
            NodeColours::Std { .. } => 46.0,
            NodeColours::Expected(c) => 62.0 + 15.0 * legend_rows(c).len() as f32,
        }
    }
}

/// Reliability rows worth a legend line: those holding at least 1 % of the fitting nodes. Some
/// rows hold none, and one node (the shipped file's lowest row) says nothing of what its
/// colour means.
fn legend_rows(c: &Calibrated) -> Vec<&ReliabilityRow> {
    let total: usize = c.reliability.iter().map(|r| r.nodes).sum();
    c.reliability.iter().filter(|r| r.nodes > 0 && r.nodes * 100 >= total).collect()
}

pub const ORGANS: [Organ; 3] = Organ::ALL;

/// Colour-scale top in image pixels: 2 % of the image's longer side (20 px at 1024), so
/// colours mean the same relative spread on every image.
pub fn std_scale(width: u32, height: u32) -> f32 {
    0.02 * width.max(height) as f32
}

/// A node's spread as one number: the mean of its x and y standard deviations.
pub fn node_std(std: &Point) -> f32 {
    0.5 * (std[0] + std[1])
}

pub fn organ_colour(organ: Organ) -> Color32 {
    match organ {
        Organ::RightLung => Color32::from_rgb(80, 170, 255),
        Organ::LeftLung => Color32::from_rgb(120, 220, 140),
        Organ::Heart => Color32::from_rgb(255, 120, 110),
    }
}

/// Screen position of image point `p` (landmark coordinates are pixel indices, so the
/// centre of pixel i is at i + 0.5 in the view's continuous coordinates).
pub fn to_screen(shown: &Shown, p: Point) -> Option<Pos2> {
    shown.screen_pos_of(p[0], p[1])
}

/// Image point under screen position `pos`.
pub fn to_image(shown: &Shown, pos: Pos2) -> Option<Point> {
    let v = shown.view?.to_image(pos - shown.rect?.min);
    Some([v.x - 0.5, v.y - 0.5])
}

/// Node radius on screen, in points.
pub const NODE_RADIUS: f32 = 4.5;

/// The node nearest to `pos` within `reach` points, if any.
pub fn node_at(shown: &Shown, positions: &[Point; NUM_NODES], pos: Pos2, reach: f32) -> Option<usize> {
    positions
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| Some((i, to_screen(shown, p)?.distance(pos))))
        .filter(|&(_, d)| d <= reach)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

pub fn draw(painter: &Painter, shown: &Shown, g: &Graph, layers: Layers) {
    let screen: Vec<Pos2> = g.positions.iter().filter_map(|&p| to_screen(shown, p)).collect();
    if screen.len() != NUM_NODES {
        return;
    }
    let ctr = layers.ctr.then(|| crate::metrics::ctr::ctr(g.positions)).flatten();
    if let Some(c) = &ctr {
        draw_ctr(painter, shown, c);
    }
    let zoom = shown.view.map(|v| v.zoom).unwrap_or(1.0);
    for organ in ORGANS {
        let range = organ.nodes();
        let pts = &screen[range.clone()];
        let colour = organ_colour(organ);
        if layers.fill {
            painter.add(fill_polygon(pts, colour.gamma_multiply(0.25)));
        }
        if layers.prediction && g.edited[range.clone()].iter().any(|&e| e) {
            let pred: Vec<Pos2> = g.predicted[range.clone()].iter().filter_map(|&p| to_screen(shown, p)).collect();
            let mut closed = pred.clone();
            closed.push(pred[0]);
            painter.extend(Shape::dashed_line(&closed, Stroke::new(1.0, colour.gamma_multiply(0.7)), 4.0, 3.0));
        }
        if layers.contours {
            painter.add(Shape::closed_line(pts.to_vec(), PathStroke::new(1.5, colour)));
        }
    }
    for (i, &pos) in screen.iter().enumerate() {
        let s = g.std[i];
        let colour = viridis(g.colours.t(i, &s) as f64);
        if layers.ellipses {
            let radius = Vec2::new(s[0], s[1]) * zoom;
            painter.add(Shape::ellipse_stroke(pos, radius, Stroke::new(1.0, colour)));
        }
        if layers.nodes {
            let r = if g.hovered == Some(i) { NODE_RADIUS + 2.0 } else { NODE_RADIUS };
            painter.circle_filled(pos, r, colour);
            let ring = if g.selected[i] {
                Stroke::new(2.0, Color32::from_rgb(255, 80, 220))
            } else if g.edited[i] {
                Stroke::new(1.5, Color32::WHITE)
            } else {
                Stroke::new(0.8, Color32::from_black_alpha(180))
            };
            painter.circle_stroke(pos, r, ring);
        }
    }
    if let Some(c) = &ctr {
        draw_ctr_label(painter, shown, c);
    }
}

/// The heart's and the thorax's widths as horizontal callipers, with the ratio beside them.
fn draw_ctr(painter: &Painter, shown: &Shown, c: &crate::metrics::ctr::Ctr) {
    let heart = Color32::from_rgb(255, 150, 120);
    let thorax = Color32::from_rgb(235, 235, 160);
    for (seg, colour) in [(c.heart_segment, heart), (c.thorax_segment, thorax)] {
        let (Some(a), Some(b)) = (to_screen(shown, seg[0]), to_screen(shown, seg[1])) else { return };
        let stroke = Stroke::new(1.5, colour);
        painter.extend(Shape::dashed_line(&[a, b], stroke, 6.0, 4.0));
        for end in [a, b] {
            painter.line_segment([end - Vec2::new(0.0, 6.0), end + Vec2::new(0.0, 6.0)], stroke);
        }
    }
}

/// The ratio under the middle of the thoracic calliper, on a dark plate, drawn over the
/// nodes: the calliper's ends sit on lung border nodes, and the spine behind it is bright.
fn draw_ctr_label(painter: &Painter, shown: &Shown, c: &crate::metrics::ctr::Ctr) {
    let mid = [(c.thorax_segment[0][0] + c.thorax_segment[1][0]) / 2.0, c.thorax_segment[0][1]];
    let Some(at) = to_screen(shown, mid) else { return };
    let colour = if c.cardiomegaly() { Color32::from_rgb(255, 120, 90) } else { Color32::from_rgb(235, 235, 160) };
    let galley = painter.layout_no_wrap(format!("CTR {:.2}", c.ratio), egui::FontId::proportional(13.0), colour);
    let rect = egui::Align2::CENTER_TOP.anchor_size(at + Vec2::new(0.0, 8.0), galley.size());
    painter.rect_filled(rect.expand(3.0), 3.0, Color32::from_black_alpha(170));
    painter.galley(rect.min, galley, colour);
}

/// Viridis bar with its ends labelled in pixels (and mm when spacing is known); for
/// calibrated colours, below it what each colour band meant on the images the calibration was
/// fitted on: "≈ N px off".
pub fn legend(painter: &Painter, at: Rect, colours: &NodeColours, mm_per_px: Option<f64>) {
    let bar = Rect::from_min_size(at.min + Vec2::new(8.0, 20.0), Vec2::new(at.width() - 16.0, 10.0));
    painter.rect_filled(at, 4.0, Color32::from_black_alpha(170));
    let steps = 48;
    for k in 0..steps {
        let x0 = bar.min.x + bar.width() * k as f32 / steps as f32;
        let x1 = bar.min.x + bar.width() * (k + 1) as f32 / steps as f32;
        let r = Rect::from_min_max(Pos2::new(x0, bar.min.y), Pos2::new(x1 + 0.5, bar.max.y));
        painter.rect_filled(r, 0.0, viridis((k as f64 + 0.5) / steps as f64));
    }
    let font = egui::FontId::proportional(11.0);
    let text = Color32::LIGHT_GRAY;
    let title = match colours {
        NodeColours::Std { .. } => "node std",
        NodeColours::Expected(_) => "expected node error",
    };
    painter.text(at.min + Vec2::new(8.0, 4.0), egui::Align2::LEFT_TOP, title, font.clone(), text);
    painter.text(Pos2::new(bar.min.x, bar.max.y + 2.0), egui::Align2::LEFT_TOP, "0", font.clone(), text);
    let with_mm = |px: f32| match mm_per_px {
        Some(mm) => format!("{px:.0} px ({:.1} mm)", px as f64 * mm),
        None => format!("{px:.0} px"),
    };
    let scale_px = colours.scale_px();
    painter.text(Pos2::new(bar.max.x, bar.max.y + 2.0), egui::Align2::RIGHT_TOP, format!("≥{}", with_mm(scale_px)), font.clone(), text);
    let NodeColours::Expected(c) = colours else { return };
    let mut y = bar.max.y + 18.0;
    painter.text(Pos2::new(bar.min.x, y), egui::Align2::LEFT_TOP, "on validation images, nodes of this colour were:", font.clone(), text);
    for r in legend_rows(c) {
        y += 15.0;
        let mid = (r.mean_expected as f32 * c.px_per_1024 / scale_px).clamp(0.0, 1.0);
        painter.circle_filled(Pos2::new(bar.min.x + 5.0, y + 6.5), 5.0, viridis(mid as f64));
        let line = format!("≈ {} off ({} nodes)", with_mm(r.mean_error as f32 * c.px_per_1024), r.nodes);
        painter.text(Pos2::new(bar.min.x + 16.0, y), egui::Align2::LEFT_TOP, line, font.clone(), text);
    }
}

/// A filled simple polygon (not necessarily convex) as a triangle mesh by ear clipping;
/// contours have at most 50 points, so the quadratic cost does not matter.
pub fn fill_polygon(points: &[Pos2], colour: Color32) -> Shape {
    let mut mesh = Mesh::default();
    for &p in points {
        mesh.colored_vertex(p, colour);
    }
    for [a, b, c] in triangulate(points) {
        mesh.add_triangle(a as u32, b as u32, c as u32);
    }
    Shape::mesh(mesh)
}

/// Ear-clipping triangulation of a simple polygon given in either winding order.
pub fn triangulate(points: &[Pos2]) -> Vec<[usize; 3]> {
    let n = points.len();
    if n < 3 {
        return Vec::new();
    }
    let area: f32 = (0..n).map(|i| cross(points[i], points[(i + 1) % n])).sum();
    let ccw = area > 0.0;
    let mut idx: Vec<usize> = (0..n).collect();
    let mut out = Vec::with_capacity(n - 2);
    let mut guard = 0;
    while idx.len() > 3 && guard < n * n {
        guard += 1;
        let m = idx.len();
        let mut clipped = false;
        for k in 0..m {
            let (a, b, c) = (idx[(k + m - 1) % m], idx[k], idx[(k + 1) % m]);
            let turn = orient(points[a], points[b], points[c]);
            if (turn > 0.0) != ccw || turn == 0.0 {
                continue; // reflex or degenerate corner
            }
            let inside = idx.iter().any(|&j| {
                j != a && j != b && j != c && in_triangle(points[j], points[a], points[b], points[c])
            });
            if !inside {
                out.push([a, b, c]);
                idx.remove(k);
                clipped = true;
                break;
            }
        }
        if !clipped {
            // Self-intersecting after a wild drag: fan the rest so something is still drawn.
            break;
        }
    }
    for k in 1..idx.len().saturating_sub(1) {
        out.push([idx[0], idx[k], idx[k + 1]]);
    }
    out
}

fn cross(a: Pos2, b: Pos2) -> f32 {
    a.x * b.y - a.y * b.x
}

fn orient(a: Pos2, b: Pos2, c: Pos2) -> f32 {
    (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
}

fn in_triangle(p: Pos2, a: Pos2, b: Pos2, c: Pos2) -> bool {
    let (d1, d2, d3) = (orient(a, b, p), orient(b, c, p), orient(c, a, p));
    let neg = d1 < 0.0 || d2 < 0.0 || d3 < 0.0;
    let pos = d1 > 0.0 || d2 > 0.0 || d3 > 0.0;
    !(neg && pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_leaves_out_rows_too_thin_to_mean_anything() {
        let row = |lo: f64, nodes: usize| ReliabilityRow { lo, hi: lo + 6.0, nodes, mean_expected: lo + 3.0, mean_error: lo + 3.0 };
        let c = Calibrated {
            expected_error: vec![10.0; NUM_NODES],
            scale_top_px: 30.0,
            reliability: vec![row(0.0, 1), row(6.0, 1450), row(12.0, 599), row(18.0, 0), row(24.0, 189)],
            px_per_1024: 1.0,
            ood_score_1024: None,
        };
        let kept: Vec<f64> = legend_rows(&c).iter().map(|r| r.lo).collect();
        assert_eq!(kept, [6.0, 12.0, 24.0]);
        assert_eq!(NodeColours::Expected(&c).legend_height(), 62.0 + 15.0 * 3.0);
    }

    fn area(points: &[Pos2], tris: &[[usize; 3]]) -> f32 {
        tris.iter().map(|&[a, b, c]| orient(points[a], points[b], points[c]).abs() / 2.0).sum()
    }

    #[test]
    fn a_concave_polygon_is_covered_exactly() {
        // An L shape of area 3 in both windings.
        let l = [(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (1.0, 1.0), (1.0, 2.0), (0.0, 2.0)].map(|(x, y)| Pos2::new(x, y));
        let t = triangulate(&l);
        assert_eq!(t.len(), 4);
        assert!((area(&l, &t) - 3.0).abs() < 1e-5);
        let mut r = l;
        r.reverse();
        assert!((area(&r, &triangulate(&r)) - 3.0).abs() < 1e-5);
    }

    #[test]
    fn template_lungs_fill_to_their_shoelace_area() {
        let tpl = crate::landmarks::template();
        for organ in ORGANS {
            let pts: Vec<Pos2> = tpl[organ.nodes()].iter().map(|p| Pos2::new(p[0], p[1])).collect();
            let shoelace = (0..pts.len()).map(|i| cross(pts[i], pts[(i + 1) % pts.len()])).sum::<f32>().abs() / 2.0;
            let filled = area(&pts, &triangulate(&pts));
            assert!((filled - shoelace).abs() / shoelace < 1e-3, "{organ:?}: {filled} vs {shoelace}");
        }
    }

    #[test]
    fn scale_is_twenty_pixels_at_1024() {
        assert_eq!(std_scale(1024, 1024), 20.48);
        assert_eq!(node_std(&[2.0, 4.0]), 3.0);
    }
}
