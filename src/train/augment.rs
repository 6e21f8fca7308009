//! Training augmentation (METHOD.md §5): one random similarity warp applied to image and
//! landmarks alike, then gamma and Gaussian noise on the image only.

use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::landmarks::NUM_NODES;

/// A 2×3 affine map on [0, 1] model coordinates: q' = M·q + t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub m: [[f32; 2]; 2],
    pub t: [f32; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine { m: [[1.0, 0.0], [0.0, 1.0]], t: [0.0, 0.0] };

    /// Scale `s` and rotation `angle` (radians) about the centre, then shift by `shift`.
    pub fn similarity(s: f32, angle: f32, shift: [f32; 2]) -> Affine {
        let (sin, cos) = angle.sin_cos();
        let m = [[s * cos, -s * sin], [s * sin, s * cos]];
        let c = 0.5;
        // q' = M(q − c) + c + shift
        let t = [c - (m[0][0] + m[0][1]) * c + shift[0], c - (m[1][0] + m[1][1]) * c + shift[1]];
        Affine { m, t }
    }

    pub fn apply(&self, q: [f32; 2]) -> [f32; 2] {
        [
            self.m[0][0] * q[0] + self.m[0][1] * q[1] + self.t[0],
            self.m[1][0] * q[0] + self.m[1][1] * q[1] + self.t[1],
        ]
    }

    pub fn inverse(&self) -> Affine {
        let [[a, b], [c, d]] = self.m;
        let det = a * d - b * c;
        let m = [[d / det, -b / det], [-c / det, a / det]];
        let t = [-(m[0][0] * self.t[0] + m[0][1] * self.t[1]), -(m[1][0] * self.t[0] + m[1][1] * self.t[1])];
        Affine { m, t }
    }
}

/// Warp an S×S image by `a` (output pixel centre q ← input at a⁻¹(q)), bilinear, zeros outside.
pub fn warp(pixels: &[f32], size: usize, a: &Affine) -> Vec<f32> {
    let inv = a.inverse();
    let s = size as f32;
    let mut out = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let q = inv.apply([(x as f32 + 0.5) / s, (y as f32 + 0.5) / s]);
            let (fx, fy) = (q[0] * s - 0.5, q[1] * s - 0.5);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (tx, ty) = (fx - x0, fy - y0);
            let at = |xi: f32, yi: f32| {
                if xi < 0.0 || yi < 0.0 || xi >= s || yi >= s { 0.0 } else { pixels[yi as usize * size + xi as usize] }
            };
            out[y * size + x] = (at(x0, y0) * (1.0 - tx) + at(x0 + 1.0, y0) * tx) * (1.0 - ty)
                + (at(x0, y0 + 1.0) * (1.0 - tx) + at(x0 + 1.0, y0 + 1.0) * tx) * ty;
        }
    }
    out
}

/// One augmented copy of (pixels, target).
pub fn augment(
    pixels: &[f32],
    size: usize,
    target: &[[f32; 2]; NUM_NODES],
    rng: &mut impl Rng,
) -> (Vec<f32>, [[f32; 2]; NUM_NODES]) {
    // A warp that pushes a landmark out of the frame would teach the model nonsense: retry.
    let mut chosen = None;
    for _ in 0..8 {
        let a = Affine::similarity(
            rng.random_range(0.9..1.1),
            rng.random_range(-10f32..10.0).to_radians(),
            [rng.random_range(-0.06..0.06), rng.random_range(-0.06..0.06)],
        );
        let moved = target.map(|q| a.apply(q));
        if moved.iter().all(|q| (0.01..0.99).contains(&q[0]) && (0.01..0.99).contains(&q[1])) {
            chosen = Some((a, moved));
            break;
        }
    }
    let (a, moved) = chosen.unwrap_or((Affine::IDENTITY, *target));
    let mut out = if a == Affine::IDENTITY { pixels.to_vec() } else { warp(pixels, size, &a) };
    let gamma: f32 = rng.random_range(0.5..1.25);
    let noise = Normal::new(0.0f32, 1.0 / 128.0).expect("valid sigma");
    for v in &mut out {
        *v = (v.clamp(0.0, 1.0).powf(gamma) + noise.sample(rng)).clamp(0.0, 1.0);
    }
    (out, moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn inverse_undoes_the_map() {
        let a = Affine::similarity(1.07, 0.15, [0.03, -0.02]);
        let q = a.inverse().apply(a.apply([0.3, 0.8]));
        assert!((q[0] - 0.3).abs() < 1e-6 && (q[1] - 0.8).abs() < 1e-6);
        assert_eq!(Affine::similarity(1.0, 0.0, [0.0, 0.0]).apply([0.2, 0.7]), [0.2, 0.7]);
    }

    #[test]
    fn a_bright_dot_moves_with_its_landmark() {
        let size = 64;
        let mut img = vec![0.0; size * size];
        // Dot on pixel (20, 40): its centre is at ((20.5)/64, (40.5)/64).
        img[40 * size + 20] = 1.0;
        let a = Affine::similarity(1.05, 8f32.to_radians(), [0.04, -0.03]);
        let out = warp(&img, size, &a);
        let q = a.apply([20.5 / 64.0, 40.5 / 64.0]);
        let (ex, ey) = (q[0] * 64.0 - 0.5, q[1] * 64.0 - 0.5);
        let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
        for y in 0..size {
            for x in 0..size {
                let w = out[y * size + x];
                sx += w * x as f32;
                sy += w * y as f32;
                sw += w;
            }
        }
        assert!(sw > 0.5, "the dot survived the warp");
        assert!((sx / sw - ex).abs() < 0.5 && (sy / sw - ey).abs() < 0.5, "dot at {},{} expected {ex},{ey}", sx / sw, sy / sw);
    }

    #[test]
    fn augmented_landmarks_stay_in_the_frame_and_pixels_in_range() {
        let tpl = crate::landmarks::template();
        let target = tpl.map(|p| [p[0] / 1024.0, p[1] / 1024.0]);
        let img: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 31.0).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let (px, t) = augment(&img, 32, &target, &mut rng);
            assert!(t.iter().all(|q| q[0] > 0.0 && q[0] < 1.0 && q[1] > 0.0 && q[1] < 1.0));
            assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
}
