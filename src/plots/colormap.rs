//! Viridis: a perceptually even, colour-blind safe map from [0, 1] to colour.

use egui::epaint::Color32;

/// Viridis sampled at 0, ⅛, …, 1; linear interpolation in between.
const STOPS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 45, 123],
    [59, 82, 139],
    [44, 114, 142],
    [33, 145, 140],
    [40, 174, 128],
    [94, 201, 98],
    [173, 220, 48],
    [253, 231, 37],
];

/// The colour of `t` (clamped to [0, 1]; NaN maps to grey).
pub fn viridis(t: f64) -> Color32 {
    if t.is_nan() {
        return Color32::GRAY;
    }
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let c: [u8; 3] =
        std::array::from_fn(|k| (STOPS[i][k] as f64 * (1.0 - f) + STOPS[i + 1][k] as f64 * f).round() as u8);
    Color32::from_rgb(c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_middle() {
        assert_eq!(viridis(0.0), Color32::from_rgb(68, 1, 84));
        assert_eq!(viridis(1.0), Color32::from_rgb(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(0.5), Color32::from_rgb(33, 145, 140));
    }
}
