//! A monotone (non-decreasing) map from one quantity to another, fitted by pool-adjacent-
//! violators on quantile bins: used to turn node std into expected node error.
//!
//! Binning first (equal-count bins of x) keeps the map smooth on a few thousand noisy
//! pairs; PAV then merges neighbouring bins until the bin means of y never fall.

use serde::{Deserialize, Serialize};

use super::reliability::reliability_table;

/// Knots (x, y), x strictly increasing, y non-decreasing. Between knots the map is linear;
/// below the first it is flat; above the last it grows in proportion to x (y_last·x/x_last),
/// so inputs beyond anything seen in fitting (out-of-distribution images) keep rising.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonotoneMap {
    pub knots: Vec<[f64; 2]>,
}

impl MonotoneMap {
    /// The identity y = x (what an uncalibrated std means), down to 0: a single knot at 1
    /// would hold every std below 1 px at 1 px, and the refined samples' spread is often
    /// smaller.
    pub fn identity() -> Self {
        MonotoneMap { knots: vec![[0.0, 0.0], [1.0, 1.0]] }
    }

    /// Fit y on x with `bins` quantile bins. `None` without finite pairs.
    pub fn fit(x: &[f64], y: &[f64], bins: usize) -> Option<Self> {
        let table = reliability_table(x, y, bins.max(1));
        if table.is_empty() {
            return None;
        }
        // Blocks of (sum x, sum y, n), merged while a block's mean y is below its predecessor's.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for b in &table {
            let n = b.n as f64;
            blocks.push((b.mean_uncertainty * n, b.mean_error * n, n));
            while blocks.len() > 1 {
                let (x1, y1, n1) = blocks[blocks.len() - 1];
                let (x0, y0, n0) = blocks[blocks.len() - 2];
                if y0 / n0 <= y1 / n1 {
                    break;
                }
                blocks.pop();
                *blocks.last_mut().expect("two blocks") = (x0 + x1, y0 + y1, n0 + n1);
            }
        }
        let mut knots: Vec<[f64; 2]> = Vec::with_capacity(blocks.len());
        for (sx, sy, n) in blocks {
            let k = [sx / n, sy / n];
            match knots.last_mut() {
                // Equal x (all pairs of a block tied): keep one knot, the larger y.
                Some(last) if k[0] <= last[0] => last[1] = last[1].max(k[1]),
                _ => knots.push(k),
            }
        }
        Some(MonotoneMap { knots })
    }

    pub fn apply(&self, x: f64) -> f64 {
        let k = &self.knots;
        let (first, last) = (k[0], k[k.len() - 1]);
        if !x.is_finite() {
            return x;
        }
        if x <= first[0] {
            return first[1];
        }
        if x >= last[0] {
            return if last[0] > 0.0 { last[1] * x / last[0] } else { last[1] };
        }
        let i = k.partition_point(|p| p[0] <= x);
        let (a, b) = (k[i - 1], k[i]);
        a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0])
    }

    /// Well formed: at least one knot, finite, x increasing, y non-decreasing and ≥ 0.
    pub fn check(&self) -> Result<(), String> {
        if self.knots.is_empty() {
            return Err("no knots".into());
        }
        if self.knots.iter().any(|k| !k[0].is_finite() || !k[1].is_finite() || k[1] < 0.0) {
            return Err("knots must be finite with y ≥ 0".into());
        }
        if self.knots.windows(2).any(|w| w[1][0] <= w[0][0] || w[1][1] < w[0][1]) {
            return Err("knots must have increasing x and non-decreasing y".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_pooled() {
        // Bin means of y: 1, 3, 2, 5 → the middle two pool to 2.5.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 3.0, 2.0, 5.0];
        let m = MonotoneMap::fit(&x, &y, 4).unwrap();
        assert_eq!(m.knots, vec![[1.0, 1.0], [2.5, 2.5], [4.0, 5.0]]);
        m.check().unwrap();
        assert_eq!(m.apply(0.0), 1.0);
        assert_eq!(m.apply(1.75), 1.75);
        assert_eq!(m.apply(8.0), 10.0); // proportional beyond the last knot
    }

    #[test]
    fn a_decreasing_relation_becomes_flat() {
        let x: Vec<f64> = (0..100).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 100.0 - v).collect();
        let m = MonotoneMap::fit(&x, &y, 10).unwrap();
        assert_eq!(m.knots.len(), 1);
        assert!((m.knots[0][1] - 50.5).abs() < 1e-9);
        assert!(MonotoneMap::fit(&[], &[], 10).is_none());
    }

    #[test]
    fn a_linear_relation_is_recovered() {
        let x: Vec<f64> = (1..=1000).map(|i| i as f64 / 100.0).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        let m = MonotoneMap::fit(&x, &y, 20).unwrap();
        for v in [2.0, 7.3] {
            assert!((m.apply(v) - (3.0 * v + 1.0)).abs() < 1e-6, "{v}");
        }
        let bad = MonotoneMap { knots: vec![[1.0, 2.0], [1.0, 3.0]] };
        assert!(bad.check().is_err());
    }
}
