//! Training augmentation (METHOD.md §5): one random similarity warp (scale, rotation,
//! translation) placed around the organs and applied to image and landmarks alike, then
//! gamma and Gaussian noise on the image only.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

pub use crate::geometry::{Affine, warp};
use crate::landmarks::NUM_NODES;

/// Ranges the random augmentation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Zoom factor range (> 1 crops into the organs, < 1 shows more border).
    pub scale: (f32, f32),
    /// Largest rotation either way, degrees.
    pub max_rotation_deg: f32,
    /// Largest shift either way, as a fraction of the frame.
    pub max_shift: f32,
    /// Gamma exponent range.
    pub gamma: (f32, f32),
    /// Standard deviation of the additive noise, in [0, 1] intensity units.
    pub noise_sigma: f32,
    /// Landmarks are kept at least this far inside the frame.
    pub margin: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            scale: (0.85, 1.15),
            max_rotation_deg: 10.0,
            max_shift: 0.1,
            gamma: (0.5, 1.25),
            noise_sigma: 1.0 / 128.0,
            margin: 0.01,
        }
    }
}

impl AugmentConfig {
    /// The same ranges with the geometric ones multiplied: the zoom's distance from 1 by `zoom`,
    /// rotation and shift by `k`. A fine-tune below 1 spends its capacity nearer the framing it
    /// will be scored on (and, assets/README.md shows, forgets wider ones).
    pub fn with_warp_strength(self, k: f32, zoom: f32) -> Self {
        let (k, zoom) = (k.max(0.0), zoom.max(0.0));
        let around_one = |v: f32| 1.0 + (v - 1.0) * zoom;
        AugmentConfig {
            scale: (around_one(self.scale.0), around_one(self.scale.1)),
            max_rotation_deg: self.max_rotation_deg * k,
            max_shift: self.max_shift * k,
            ..self
        }
    }
}

fn bounds(points: &[[f32; 2]]) -> ([f32; 2], [f32; 2]) {
    let mut lo = [f32::INFINITY; 2];
    let mut hi = [f32::NEG_INFINITY; 2];
    for q in points {
        for k in 0..2 {
            lo[k] = lo[k].min(q[k]);
            hi[k] = hi[k].max(q[k]);
        }
    }
    (lo, hi)
}

/// A random warp that keeps every landmark inside the frame: scale and rotation about the
/// organs' centre (the zoom shrinks when the organs would not fit), then a shift drawn from
/// what keeps them inside, up to `max_shift`.
pub fn random_affine(target: &[[f32; 2]; NUM_NODES], cfg: &AugmentConfig, rng: &mut impl Rng) -> Affine {
    let (lo, hi) = bounds(target);
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let mut scale = draw(rng, cfg.scale);
    let angle = draw(rng, (-cfg.max_rotation_deg, cfg.max_rotation_deg)).to_radians();
    // Extents grow linearly with the scale of a similarity about the centre.
    let (l, h) = bounds(&target.map(|q| Affine::similarity(scale, angle, centre, [0.0, 0.0]).apply(q)));
    let room = 1.0 - 2.0 * cfg.margin;
    let extent = (h[0] - l[0]).max(h[1] - l[1]);
    if extent > room {
        scale *= room / extent;
    }
    let a = Affine::similarity(scale, angle, centre, [0.0, 0.0]);
    let (l, h) = bounds(&target.map(|q| a.apply(q)));
    let mut shift = [0.0; 2];
    for k in 0..2 {
        // Shifts that keep the landmarks inside, narrowed to ±max_shift where that leaves any.
        let (need_lo, need_hi) = (cfg.margin - l[k], 1.0 - cfg.margin - h[k]);
        let (a_lo, a_hi) = (need_lo.max(-cfg.max_shift), need_hi.min(cfg.max_shift));
        shift[k] = if a_lo <= a_hi { draw(rng, (a_lo, a_hi)) } else { 0f32.clamp(need_lo, need_hi.max(need_lo)) };
    }
    Affine::similarity(scale, angle, centre, shift)
}

fn draw(rng: &mut impl Rng, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// One augmented copy of (pixels, target): the warp, then gamma and noise, clamped to [0, 1].
pub fn augment(
    pixels: &[f32],
    size: usize,
    target: &[[f32; 2]; NUM_NODES],
    cfg: &AugmentConfig,
    rng: &mut impl Rng,
) -> (Vec<f32>, [[f32; 2]; NUM_NODES]) {
    let a = random_affine(target, cfg, rng);
    let moved = target.map(|q| a.apply(q));
    let mut out = warp(pixels, size, &a);
    let gamma = draw(rng, cfg.gamma);
    let noise = Normal::new(0.0f32, cfg.noise_sigma.max(0.0)).expect("finite sigma");
    for v in &mut out {
        *v = (v.clamp(0.0, 1.0).powf(gamma) + noise.sample(rng)).clamp(0.0, 1.0);
    }
    (out, moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn template_target() -> [[f32; 2]; NUM_NODES] {
        crate::landmarks::template().map(|p| [p[0] / 1024.0, p[1] / 1024.0])
    }

    #[test]
    fn warp_strength_scales_the_geometric_ranges_only() {
        let d = AugmentConfig::default();
        let half = d.with_warp_strength(0.5, 0.5);
        assert!((half.scale.0 - 0.925).abs() < 1e-6 && (half.scale.1 - 1.075).abs() < 1e-6);
        assert_eq!((half.max_rotation_deg, half.max_shift), (5.0, 0.05));
        assert_eq!((half.gamma, half.noise_sigma, half.margin), (d.gamma, d.noise_sigma, d.margin));
        assert_eq!(d.with_warp_strength(1.0, 1.0), d);
        // The zoom has its own factor.
        let kept = d.with_warp_strength(0.5, 1.0);
        assert_eq!((kept.scale, kept.max_rotation_deg, kept.max_shift), (d.scale, 5.0, 0.05));
        // At zero every warp is the identity on the landmarks of a frame they already fit.
        let t = template_target();
        let a = random_affine(&t, &d.with_warp_strength(0.0, 0.0), &mut StdRng::seed_from_u64(5));
        for q in &t {
            let m = a.apply(*q);
            assert!((m[0] - q[0]).abs() < 1e-6 && (m[1] - q[1]).abs() < 1e-6);
        }
    }

    #[test]
    fn inverse_undoes_the_map() {
        let a = Affine::similarity(1.07, 0.15, [0.4, 0.6], [0.03, -0.02]);
        let q = a.inverse().apply(a.apply([0.3, 0.8]));
        assert!((q[0] - 0.3).abs() < 1e-6 && (q[1] - 0.8).abs() < 1e-6);
        assert_eq!(Affine::similarity(1.0, 0.0, [0.5, 0.5], [0.0, 0.0]).apply([0.2, 0.7]), [0.2, 0.7]);
        // The centre stays put under scale and rotation.
        let c = Affine::similarity(1.3, 0.5, [0.4, 0.6], [0.0, 0.0]).apply([0.4, 0.6]);
        assert!((c[0] - 0.4).abs() < 1e-6 && (c[1] - 0.6).abs() < 1e-6);
    }

    /// Centroid (x, y) in pixel-index units of the pixels brighter than ½.
    fn bright_centroid(img: &[f32], size: usize) -> [f32; 2] {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            if v > 0.5 {
                sx += (i % size) as f32;
                sy += (i / size) as f32;
                n += 1.0;
            }
        }
        assert!(n > 0.0, "the dot vanished");
        [sx / n, sy / n]
    }

    #[test]
    fn a_bright_dot_on_a_landmark_ends_up_on_the_moved_landmark() {
        let size = 128;
        let target = template_target();
        let mut rng = StdRng::seed_from_u64(11);
        for node in [0, 21, 60, 100] {
            // A 3×3 dot of 1.0 centred on the landmark's pixel, on black.
            let q = target[node];
            let (cx, cy) = ((q[0] * size as f32) as i64, (q[1] * size as f32) as i64);
            let mut img = vec![0.0; size * size];
            for y in cy - 1..=cy + 1 {
                for x in cx - 1..=cx + 1 {
                    img[y as usize * size + x as usize] = 1.0;
                }
            }
            let before = bright_centroid(&img, size);
            // The landmark sits at `q`; the dot's centre at `before` (+½ for pixel centres).
            let offset = [(before[0] + 0.5) / size as f32 - q[0], (before[1] + 0.5) / size as f32 - q[1]];
            for _ in 0..5 {
                let (out, moved) = augment(&img, size, &target, &AugmentConfig::default(), &mut rng);
                let after = bright_centroid(&out, size);
                // Where the dot's centre should be: the moved landmark plus the (rotated,
                // scaled) offset, which is below one pixel.
                let expect = [moved[node][0] * size as f32 - 0.5, moved[node][1] * size as f32 - 0.5];
                let tol = 1.0 + offset[0].abs().max(offset[1].abs()) * size as f32 * 1.2;
                assert!(
                    (after[0] - expect[0]).abs() < tol && (after[1] - expect[1]).abs() < tol,
                    "node {node}: dot at {after:?}, landmark at {expect:?}"
                );
            }
        }
    }

    #[test]
    fn a_warp_moves_a_dot_where_the_map_sends_it() {
        let size = 64;
        let mut img = vec![0.0; size * size];
        img[40 * size + 20] = 1.0; // pixel (20, 40), centre ((20.5)/64, (40.5)/64)
        let a = Affine::similarity(1.05, 8f32.to_radians(), [0.5, 0.5], [0.04, -0.03]);
        let out = warp(&img, size, &a);
        let q = a.apply([20.5 / 64.0, 40.5 / 64.0]);
        let (ex, ey) = (q[0] * 64.0 - 0.5, q[1] * 64.0 - 0.5);
        let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
        for (i, &w) in out.iter().enumerate() {
            sx += w * (i % size) as f32;
            sy += w * (i / size) as f32;
            sw += w;
        }
        assert!(sw > 0.5, "the dot survived the warp");
        assert!((sx / sw - ex).abs() < 0.5 && (sy / sw - ey).abs() < 0.5, "dot at {},{} expected {ex},{ey}", sx / sw, sy / sw);
    }

    #[test]
    fn augmented_landmarks_stay_in_the_frame_and_pixels_in_range() {
        let target = template_target();
        let img: Vec<f32> = (0..32 * 32).map(|i| (i % 32) as f32 / 31.0).collect();
        let mut rng = StdRng::seed_from_u64(3);
        // Also with a zoom that could never fit and organs touching the border.
        let wide = AugmentConfig { scale: (1.5, 1.6), ..AugmentConfig::default() };
        let edge = target.map(|q| [q[0] * 1.1 - 0.06, q[1]]);
        for (cfg, t) in [(AugmentConfig::default(), target), (wide, target), (AugmentConfig::default(), edge)] {
            for _ in 0..50 {
                let (px, moved) = augment(&img, 32, &t, &cfg, &mut rng);
                assert!(
                    moved.iter().all(|q| q.iter().all(|v| (0.0099..=0.9901).contains(v))),
                    "{:?}",
                    bounds(&moved)
                );
                assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
            }
        }
    }

    #[test]
    fn augmentation_varies_and_repeats_with_the_seed() {
        let target = template_target();
        let draw = |seed| random_affine(&target, &AugmentConfig::default(), &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        // Rotation stays within ±10°.
        for seed in 0..100 {
            let m = draw(seed).m;
            let angle = m[1][0].atan2(m[0][0]).to_degrees();
            assert!(angle.abs() <= 10.0 + 1e-4, "{angle}");
        }
    }
}
