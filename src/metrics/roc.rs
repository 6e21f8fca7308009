//! How well an image score separates out-of-distribution images (label `true`) from the rest.

/// Area under the ROC curve of `score` for the `positive` labels, higher score meaning
/// "more likely positive". Equals the probability that a random positive scores above a
/// random negative, ties counting ½ (Mann–Whitney). `None` without both classes, or when a
/// score is NaN or the lengths differ.
pub fn roc_auc(score: &[f64], positive: &[bool]) -> Option<f64> {
    if score.len() != positive.len() || score.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let ranks = super::correlation::ranks(score);
    let rank_sum: f64 = ranks.iter().zip(positive).filter(|(_, p)| **p).map(|(r, _)| r).sum();
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// The ROC curve as (false-positive rate, true-positive rate) points from (0, 0) to (1, 1),
/// one point per distinct score threshold (tied scores move both rates at once).
pub fn roc_curve(score: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    let mut order: Vec<usize> = (0..score.len().min(positive.len())).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1.0
        } else {
            fp += 1.0
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| score[j] != score[i]);
        if last_of_tie {
            out.push((if n_neg > 0.0 { fp / n_neg } else { 0.0 }, if n_pos > 0.0 { tp / n_pos } else { 0.0 }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_inverse_and_tied() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        // All scores equal: every pair is a tie, worth ½.
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        // One tie between a positive and a negative among 2×2 pairs: (3 + ½)/4.
        assert_eq!(roc_auc(&[0.1, 0.5, 0.5, 0.9], &labels), Some(0.875));
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[0.1, f64::NAN], &[true, false]), None);
    }

    #[test]
    fn curve_area_matches_auc() {
        let s = [0.1, 0.5, 0.5, 0.9, 0.3, 0.7];
        let l = [false, true, false, true, false, true];
        let c = roc_curve(&s, &l);
        assert_eq!((c[0], *c.last().unwrap()), ((0.0, 0.0), (1.0, 1.0)));
        let area: f64 = c.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - roc_auc(&s, &l).unwrap()).abs() < 1e-12);
    }
}
