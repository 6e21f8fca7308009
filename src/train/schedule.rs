//! The schedules of METHOD.md §5: step-decayed learning rate and the KL weight warm-up.

/// Learning rate of `epoch` (0-based): `base` × `factor`^(epoch / `step`).
pub fn learning_rate(base: f64, factor: f64, step: usize, epoch: usize) -> f64 {
    base * factor.powi((epoch / step.max(1)) as i32)
}

/// KL weight β of `epoch`: linear from `start` to `end` over `warmup` epochs, then `end`.
pub fn kl_weight(start: f64, end: f64, warmup: usize, epoch: usize) -> f64 {
    if warmup == 0 || epoch >= warmup {
        return end;
    }
    start + (end - start) * epoch as f64 / warmup as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_steps_down_every_step_epochs() {
        assert_eq!(learning_rate(1e-3, 0.9, 50, 0), 1e-3);
        assert_eq!(learning_rate(1e-3, 0.9, 50, 49), 1e-3);
        assert!((learning_rate(1e-3, 0.9, 50, 50) - 9e-4).abs() < 1e-12);
        assert!((learning_rate(1e-3, 0.9, 50, 120) - 8.1e-4).abs() < 1e-12);
    }

    #[test]
    fn beta_warms_up_linearly_then_holds() {
        assert_eq!(kl_weight(1e-5, 1e-2, 200, 0), 1e-5);
        assert!((kl_weight(0.0, 1e-2, 200, 100) - 5e-3).abs() < 1e-12);
        assert_eq!(kl_weight(1e-5, 1e-2, 200, 200), 1e-2);
        assert_eq!(kl_weight(1e-5, 1e-2, 200, 900), 1e-2);
    }
}
