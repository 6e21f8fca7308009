//! Region overlap.

use crate::masks::Mask;

/// Dice = 2|A∩B| / (|A| + |B|). Two empty masks agree perfectly: 1.
///
/// # Panics
/// When the sizes differ (callers check sizes and report the files).
pub fn dice(a: &Mask, b: &Mask) -> f64 {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()), "mask sizes differ");
    let (mut both, mut na, mut nb) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.as_slice().iter().zip(b.as_slice()) {
        na += x as u64;
        nb += y as u64;
        both += (x && y) as u64;
    }
    if na + nb == 0 { 1.0 } else { 2.0 * both as f64 / (na + nb) as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_overlaps() {
        // 4×4 square and the same square shifted right by 2: overlap 2×4 = 8.
        let a = Mask::from_fn(10, 10, |x, y| (1..5).contains(&x) && (1..5).contains(&y));
        let b = Mask::from_fn(10, 10, |x, y| (3..7).contains(&x) && (1..5).contains(&y));
        assert_eq!(dice(&a, &b), 2.0 * 8.0 / 32.0);
        assert_eq!(dice(&a, &a), 1.0);
        let far = Mask::from_fn(10, 10, |x, y| x > 7 && y > 7);
        assert_eq!(dice(&a, &far), 0.0);
        assert_eq!(dice(&a, &Mask::new(10, 10)), 0.0);
        assert_eq!(dice(&Mask::new(10, 10), &Mask::new(10, 10)), 1.0);
    }
}
