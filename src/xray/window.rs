//! VOI windowing: how a raw pixel value becomes a display grey level.
//!
//! We use the DICOM "LINEAR" VOI function (PS3.3 C.11.2.1.2) everywhere — the
//! WGSL shader, the `info --png` export and the model pre-processing — so that
//! what the reviewer sees is exactly what the model is fed.

use serde::{Deserialize, Serialize};

/// A window in raw pixel units (after the modality rescale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

impl Window {
    /// The window that maps the closed integer range `[lo, hi]` onto `[0, 1]` exactly,
    /// so an 8-bit image at `[0, 255]` displays as `v / 255`.
    pub fn spanning(lo: f64, hi: f64) -> Self {
        let width = (hi - lo + 1.0).max(1.0);
        Window { center: lo + width / 2.0, width }
    }

    /// Width is at least 1, as DICOM requires.
    pub fn sanitized(self) -> Self {
        Window { center: self.center, width: self.width.max(1.0) }
    }

    /// Display intensity in `[0, 1]` of raw value `x`, before any inversion.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        let c = self.center as f32;
        let w = self.width.max(1.0) as f32;
        let y = (x - (c - 0.5)) / (w - 1.0).max(1e-6) + 0.5;
        y.clamp(0.0, 1.0)
    }

    /// Display intensity with MONOCHROME1 inversion applied when `invert` is set.
    #[inline]
    pub fn display(&self, x: f32, invert: bool) -> f32 {
        let y = self.apply(x);
        if invert { 1.0 - y } else { y }
    }
}

/// 8-bit grey level of a display intensity, rounding to nearest.
#[inline]
pub fn to_u8(y: f32) -> u8 {
    (y * 255.0).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_full_range_is_identity() {
        let w = Window::spanning(0.0, 255.0);
        for v in 0..=255u32 {
            assert_eq!(to_u8(w.apply(v as f32)), v as u8, "value {v}");
        }
    }

    #[test]
    fn linear_function_matches_dicom_definition() {
        // c=550, w=1024: below c-0.5-(w-1)/2 = 38 is black, above 1061 is white.
        let w = Window { center: 550.0, width: 1024.0 };
        assert_eq!(w.apply(38.0), 0.0);
        assert_eq!(w.apply(1061.0), 1.0);
        assert!((w.apply(549.5) - 0.5).abs() < 1e-6);
        assert_eq!(w.display(38.0, true), 1.0);
    }
}
