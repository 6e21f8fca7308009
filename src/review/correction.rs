//! How far the reviewer moved the prediction: per-node distance (px, mm), per-organ mean
//! and max, and Dice between predicted and corrected filled contours. Called every frame
//! while dragging, so masks are filled only inside the two contours' bounding box.

use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::masks::fill_contour;
use crate::metrics::overlap::dice;
use crate::xray::PixelSpacing;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrganCorrection {
    pub organ: Organ,
    pub mean_px: f64,
    pub max_px: f64,
    pub mean_mm: Option<f64>,
    pub max_mm: Option<f64>,
    pub dice: f64,
}

#[derive(Debug, Clone)]
pub struct Correction {
    pub node_px: [f64; NUM_NODES],
    pub node_mm: Option<[f64; NUM_NODES]>,
    pub organs: [OrganCorrection; 3],
}

pub fn correction(predicted: &[Point; NUM_NODES], corrected: &[Point; NUM_NODES], spacing: Option<PixelSpacing>) -> Correction {
    let node_px: [f64; NUM_NODES] = std::array::from_fn(|i| dist(predicted[i], corrected[i], 1.0, 1.0));
    let node_mm = spacing.map(|s| std::array::from_fn(|i| dist(predicted[i], corrected[i], s.col_mm, s.row_mm)));
    let organs = Organ::ALL.map(|organ| {
        let r = organ.nodes();
        let stats = |v: &[f64]| (v.iter().sum::<f64>() / v.len() as f64, v.iter().cloned().fold(0.0, f64::max));
        let (mean_px, max_px) = stats(&node_px[r.clone()]);
        let mm = node_mm.map(|m| stats(&m[r.clone()]));
        OrganCorrection {
            organ,
            mean_px,
            max_px,
            mean_mm: mm.map(|m| m.0),
            max_mm: mm.map(|m| m.1),
            dice: contour_dice(&predicted[r.clone()], &corrected[r]),
        }
    });
    Correction { node_px, node_mm, organs }
}

fn dist(a: Point, b: Point, sx: f64, sy: f64) -> f64 {
    (((a[0] - b[0]) as f64) * sx).hypot(((a[1] - b[1]) as f64) * sy)
}

/// Largest raster [`contour_dice`] fills.
const MAX_CELLS: f64 = 16.0 * 1024.0 * 1024.0;

/// Dice of two filled contours, rasterised in their joint bounding box only.
pub fn contour_dice(a: &[Point], b: &[Point]) -> f64 {
    if a == b {
        return 1.0;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in a.iter().chain(b) {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
        return 0.0;
    }
    let (ox, oy) = (x0.floor() - 1.0, y0.floor() - 1.0);
    let (span_x, span_y) = ((x1 - ox) as f64 + 2.0, (y1 - oy) as f64 + 2.0);
    // A node dragged far off the image must not make a gigantic raster: beyond 16 M cells
    // the contours are rasterised at a coarser scale (Dice barely changes at that size).
    let scale = (MAX_CELLS / (span_x * span_y)).sqrt().min(1.0);
    let (w, h) = ((span_x * scale).ceil() as u32 + 1, (span_y * scale).ceil() as u32 + 1);
    let s = scale as f32;
    let shift = |pts: &[Point]| pts.iter().map(|p| [(p[0] - ox) * s, (p[1] - oy) * s]).collect::<Vec<_>>();
    dice(&fill_contour(&shift(a), w, h), &fill_contour(&shift(b), w, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;
    use crate::masks::organ_masks;

    #[test]
    fn far_off_nodes_keep_the_raster_small() {
        let a = template();
        let mut b = a;
        b[3] = [1.0e30, -1.0e30];
        let d = contour_dice(&a[..44], &b[..44]);
        assert!((0.0..1.0).contains(&d), "{d}");
        b[3] = [a[3][0] + 100_000.0, a[3][1]];
        let d = contour_dice(&a[..44], &b[..44]);
        assert!((0.0..1.0).contains(&d), "{d}");
    }

    #[test]
    fn no_change_is_zero_error_and_dice_one() {
        let t = template();
        let c = correction(&t, &t, None);
        assert!(c.node_px.iter().all(|&d| d == 0.0));
        assert!(c.organs.iter().all(|o| o.dice == 1.0 && o.max_px == 0.0));
    }

    #[test]
    fn a_moved_node_and_the_cropped_dice_matches_full_frame_dice() {
        let t = template();
        let mut m = t;
        m[100] = [m[100][0] + 30.0, m[100][1] - 40.0];
        let spacing = PixelSpacing { row_mm: 0.2, col_mm: 0.1 };
        let c = correction(&t, &m, Some(spacing));
        assert_eq!(c.node_px[100], 50.0);
        assert!((c.node_mm.unwrap()[100] - (3.0f64.powi(2) + 8.0f64.powi(2)).sqrt()).abs() < 1e-9);
        let heart = c.organs[2];
        assert_eq!(heart.max_px, 50.0);
        assert!((heart.mean_px - 50.0 / 26.0).abs() < 1e-9);
        let full = dice(organ_masks(&t, 1024, 1024).get(Organ::Heart), organ_masks(&m, 1024, 1024).get(Organ::Heart));
        assert!((heart.dice - full).abs() < 1e-12, "{} vs {full}", heart.dice);
        assert!(heart.dice < 1.0 && c.organs[0].dice == 1.0);
    }
}
