//! Distances between corresponding landmarks of two annotations of the same image.

use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::xray::PixelSpacing;

/// Euclidean distance of every node, pixels.
pub fn node_errors_px(pred: &[Point; NUM_NODES], reference: &[Point; NUM_NODES]) -> [f64; NUM_NODES] {
    std::array::from_fn(|i| {
        let dx = pred[i][0] as f64 - reference[i][0] as f64;
        let dy = pred[i][1] as f64 - reference[i][1] as f64;
        dx.hypot(dy)
    })
}

/// Euclidean distance of every node in millimetres: x differences scale by the column
/// spacing, y differences by the row spacing.
pub fn node_errors_mm(
    pred: &[Point; NUM_NODES],
    reference: &[Point; NUM_NODES],
    spacing: PixelSpacing,
) -> [f64; NUM_NODES] {
    std::array::from_fn(|i| {
        let dx = (pred[i][0] as f64 - reference[i][0] as f64) * spacing.col_mm;
        let dy = (pred[i][1] as f64 - reference[i][1] as f64) * spacing.row_mm;
        dx.hypot(dy)
    })
}

/// Mean of the per-node values over all nodes and per organ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorSummary {
    pub all: f64,
    /// In [`Organ::ALL`] order.
    pub organs: [f64; 3],
}

impl ErrorSummary {
    pub fn of(errors: &[f64; NUM_NODES]) -> Self {
        let mean = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            errors[r].iter().sum::<f64>() / n
        };
        ErrorSummary { all: mean(0..NUM_NODES), organs: Organ::ALL.map(|o| mean(o.nodes())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_means() {
        let a = [[0.0f32, 0.0]; NUM_NODES];
        let mut b = a;
        for (i, p) in b.iter_mut().enumerate() {
            *p = if i < 44 {
                [3.0, 4.0]
            } else if i < 94 {
                [0.0, 1.0]
            } else {
                [2.0, 0.0]
            };
        }
        let e = node_errors_px(&b, &a);
        assert_eq!((e[0], e[50], e[100]), (5.0, 1.0, 2.0));
        let s = ErrorSummary::of(&e);
        assert_eq!(s.organs, [5.0, 1.0, 2.0]);
        assert!((s.all - (44.0 * 5.0 + 50.0 + 52.0) / 120.0).abs() < 1e-12);
        let mm = node_errors_mm(&b, &a, PixelSpacing { row_mm: 0.5, col_mm: 0.2 });
        assert!((mm[0] - (0.6f64.powi(2) + 2.0f64.powi(2)).sqrt()).abs() < 1e-12);
    }
}
