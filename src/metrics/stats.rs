//! Summary statistics for report tables.

/// Mean and sample standard deviation of the finite values; how many were not finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); NaN with fewer than two values.
    pub sd: f64,
    /// Values left out because they were infinite or NaN (e.g. a distance to an empty mask).
    pub non_finite: usize,
}

pub fn describe(values: impl IntoIterator<Item = f64>) -> Stats {
    let (finite, non_finite): (Vec<f64>, Vec<f64>) = values.into_iter().partition(|v| v.is_finite());
    let n = finite.len();
    let mean = if n == 0 { f64::NAN } else { finite.iter().sum::<f64>() / n as f64 };
    let sd =
        if n < 2 { f64::NAN } else { (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() };
    Stats { n, mean, sd, non_finite: non_finite.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_and_infinities() {
        let s = describe([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, f64::INFINITY]);
        assert_eq!((s.n, s.mean, s.non_finite), (8, 5.0, 1));
        assert!((s.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!(describe([1.0]).sd.is_nan());
        assert!(describe([]).mean.is_nan());
    }
}
