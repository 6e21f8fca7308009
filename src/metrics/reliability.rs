//! Does a larger predicted uncertainty go with a larger real error? A table of error by
//! uncertainty bin, the bins holding equal shares of the samples (quantile bins).

/// One uncertainty bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityBin {
    pub n: usize,
    /// Smallest and largest uncertainty in the bin.
    pub lo: f64,
    pub hi: f64,
    pub mean_uncertainty: f64,
    pub mean_error: f64,
    /// Sample standard deviation (n − 1) of the error; 0 for a single sample.
    pub error_sd: f64,
}

/// Splits the (uncertainty, error) pairs into `bins` groups of (nearly) equal size by
/// ascending uncertainty. Equal uncertainties never straddle two bins, so with many ties
/// some bins are larger and fewer than `bins` may come back. Pairs with a non-finite value
/// are left out.
pub fn reliability_table(uncertainty: &[f64], error: &[f64], bins: usize) -> Vec<ReliabilityBin> {
    let mut pairs: Vec<(f64, f64)> =
        uncertainty.iter().zip(error).map(|(&u, &e)| (u, e)).filter(|(u, e)| u.is_finite() && e.is_finite()).collect();
    if pairs.is_empty() || bins == 0 {
        return Vec::new();
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pairs.len();
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=bins {
        let mut end = (k * n / bins).max(start);
        // Keep ties together: extend to the last pair with the same uncertainty.
        while end > start && end < n && pairs[end].0 == pairs[end - 1].0 {
            end += 1;
        }
        if end > start {
            out.push(summarise(&pairs[start..end]));
            start = end;
        }
    }
    out
}

fn summarise(p: &[(f64, f64)]) -> ReliabilityBin {
    let n = p.len() as f64;
    let mean_error = p.iter().map(|x| x.1).sum::<f64>() / n;
    let var = if p.len() > 1 { p.iter().map(|x| (x.1 - mean_error).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    ReliabilityBin {
        n: p.len(),
        lo: p[0].0,
        hi: p[p.len() - 1].0,
        mean_uncertainty: p.iter().map(|x| x.0).sum::<f64>() / n,
        mean_error,
        error_sd: var.sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_count_bins() {
        let u: Vec<f64> = (0..10).map(|i| (9 - i) as f64).collect();
        let e: Vec<f64> = u.iter().map(|x| 2.0 * x).collect();
        let t = reliability_table(&u, &e, 4);
        assert_eq!(t.iter().map(|b| b.n).collect::<Vec<_>>(), vec![2, 3, 2, 3]);
        assert_eq!((t[0].lo, t[0].hi, t[0].mean_uncertainty, t[0].mean_error), (0.0, 1.0, 0.5, 1.0));
        assert_eq!((t[3].lo, t[3].hi, t[3].mean_error), (7.0, 9.0, 16.0));
        assert!((t[3].error_sd - 2.0).abs() < 1e-12);
    }

    #[test]
    fn ties_stay_together_and_bad_values_are_dropped() {
        let u = [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, f64::NAN];
        let e = [1.0, 1.0, 1.0, 1.0, 5.0, f64::INFINITY, 1.0];
        let t = reliability_table(&u, &e, 3);
        assert_eq!(t.iter().map(|b| b.n).collect::<Vec<_>>(), vec![4, 1]);
        assert_eq!(t[0].error_sd, 0.0);
        assert!(reliability_table(&[], &[], 3).is_empty());
    }
}
