//! Does the uncertainty react the way CheXmask-U shows it should? Three probes on a grey
//! image in [0, 1]: added Gaussian noise, a black square over part of the contour, and
//! images that are not chest radiographs at all. Every probe is deterministic (seeded).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::landmarks::NUM_NODES;
use crate::model::{HybridGNet, Prediction, Sampling, encode, predict, sample};

/// A grey image in [0, 1], row-major.
#[derive(Debug, Clone)]
pub struct Grey {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<f32>,
}

/// Mean node std in pixels at 1024.
pub fn score_1024(p: &Prediction, width: u32, height: u32) -> f64 {
    p.score as f64 * 1024.0 / width.max(height).max(1) as f64
}

/// `img` plus N(0, σ²) noise per pixel, clamped to [0, 1].
pub fn with_noise(img: &Grey, sigma: f32, seed: u64) -> Grey {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, sigma.max(0.0)).expect("finite sigma");
    let pixels = img.pixels.iter().map(|&v| (v + normal.sample(&mut rng)).clamp(0.0, 1.0)).collect();
    Grey { name: format!("{} + noise {sigma}", img.name), pixels, ..img.clone() }
}

/// What added noise does to one image, per noise level.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NoiseResponse {
    /// Image score (mean node std, px at 1024).
    pub score: Vec<f64>,
    /// Mean latent σ² the encoder gives the noisy image.
    pub latent_sigma2: Vec<f64>,
    /// Image score when the noisy image is decoded with the clean image's latent σ²: how much
    /// of the change comes from the decoder's response to the image rather than the encoder's σ.
    pub score_at_clean_sigma: Vec<f64>,
}

/// Image score at each noise level (`sigmas`, in units of the full grey range), split into
/// the encoder's σ and the decoder's part.
pub fn noise_response(model: &HybridGNet, img: &Grey, sigmas: &[f32], sampling: Sampling) -> NoiseResponse {
    let (w, h) = (img.width, img.height);
    let clean = encode(model, &img.pixels, w, h);
    let clean_pred = sample(model, &clean, sampling, None);
    let mut r = NoiseResponse::default();
    for (k, &s) in sigmas.iter().enumerate() {
        let (p, fixed) = if s > 0.0 {
            let noisy = encode(model, &with_noise(img, s, 1000 + k as u64).pixels, w, h);
            (sample(model, &noisy, sampling, None), sample(model, &noisy, sampling, Some(&clean.logvar)))
        } else {
            (clean_pred.clone(), clean_pred.clone())
        };
        r.score.push(score_1024(&p, w, h));
        r.latent_sigma2.push(p.latent_sigma2_mean as f64);
        r.score_at_clean_sigma.push(score_1024(&fixed, w, h));
    }
    r
}

/// Axis-aligned square in image pixels: top-left corner and side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Square {
    pub x: f32,
    pub y: f32,
    pub side: f32,
}

impl Square {
    pub fn centred(cx: f32, cy: f32, side: f32) -> Self {
        Square { x: cx - side / 2.0, y: cy - side / 2.0, side }
    }
    pub fn contains(&self, p: [f32; 2]) -> bool {
        p[0] >= self.x && p[0] < self.x + self.side && p[1] >= self.y && p[1] < self.y + self.side
    }
}

/// `img` with `square` painted black.
pub fn with_square(img: &Grey, square: Square) -> Grey {
    let mut out = img.clone();
    for y in 0..img.height {
        for x in 0..img.width {
            if square.contains([x as f32 + 0.5, y as f32 + 0.5]) {
                out.pixels[(y * img.width + x) as usize] = 0.0;
            }
        }
    }
    out.name = format!("{} + black square", img.name);
    out
}

/// What a black square does to the nodes it covers.
#[derive(Debug, Clone)]
pub struct OcclusionResult {
    pub square: Square,
    /// Nodes whose clean prediction lies inside the square.
    pub covered: Vec<usize>,
    /// Mean std of the covered nodes (px at 1024), without and with the square.
    pub covered_std_before: f64,
    pub covered_std_after: f64,
    /// The same for the nodes outside the square.
    pub other_std_before: f64,
    pub other_std_after: f64,
}

/// Cover the predicted contour around `node` with a black square of side `side_fraction` of
/// the image's long side, and compare node stds before and after.
pub fn occlusion_response(
    model: &HybridGNet,
    img: &Grey,
    node: usize,
    side_fraction: f32,
    sampling: Sampling,
) -> OcclusionResult {
    let to_1024 = 1024.0 / img.width.max(img.height).max(1) as f64;
    let clean = predict(model, &img.pixels, img.width, img.height, sampling);
    let [cx, cy] = clean.mean[node];
    let square = Square::centred(cx, cy, side_fraction * img.width.max(img.height) as f32);
    let occluded = with_square(img, square);
    let after = predict(model, &occluded.pixels, img.width, img.height, sampling);
    let (covered, other): (Vec<usize>, Vec<usize>) = (0..NUM_NODES).partition(|&n| square.contains(clean.mean[n]));
    let mean_std = |p: &Prediction, nodes: &[usize]| {
        nodes.iter().map(|&n| p.node_std(n) as f64).sum::<f64>() / nodes.len().max(1) as f64 * to_1024
    };
    OcclusionResult {
        square,
        covered_std_before: mean_std(&clean, &covered),
        covered_std_after: mean_std(&after, &covered),
        other_std_before: mean_std(&clean, &other),
        other_std_after: mean_std(&after, &other),
        covered,
    }
}

/// Images that are not chest radiographs, drawn here so every run sees the same pixels:
/// a checkerboard, smooth random texture, and concentric rings (1024×1024).
pub fn non_chest_images() -> Vec<Grey> {
    const N: u32 = 1024;
    let grid = |f: &dyn Fn(f32, f32) -> f32| -> Vec<f32> {
        (0..N * N).map(|i| f((i % N) as f32 / N as f32, (i / N) as f32 / N as f32).clamp(0.0, 1.0)).collect()
    };
    let checker = grid(&|x, y| if ((x * 8.0) as i32 + (y * 8.0) as i32) % 2 == 0 { 0.85 } else { 0.15 });
    let rings = grid(&|x, y| 0.5 + 0.45 * ((x - 0.5).hypot(y - 0.5) * 60.0).sin());
    // Smooth texture: a coarse seeded random grid, bilinearly interpolated.
    let mut rng = StdRng::seed_from_u64(7);
    let coarse: Vec<f32> = (0..17 * 17).map(|_| rand::Rng::random::<f32>(&mut rng)).collect();
    let texture = grid(&|x, y| {
        let (gx, gy) = (x * 16.0, y * 16.0);
        let (ix, iy) = (gx.floor() as usize, gy.floor() as usize);
        let (fx, fy) = (gx - ix as f32, gy - iy as f32);
        let at = |i: usize, j: usize| coarse[j.min(16) * 17 + i.min(16)];
        let top = at(ix, iy) * (1.0 - fx) + at(ix + 1, iy) * fx;
        let bottom = at(ix, iy + 1) * (1.0 - fx) + at(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    });
    [("checkerboard", checker), ("random texture", texture), ("concentric rings", rings)]
        .into_iter()
        .map(|(name, pixels)| Grey { name: name.to_string(), width: N, height: N, pixels })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(v: f32) -> Grey {
        Grey { name: "flat".into(), width: 64, height: 48, pixels: vec![v; 64 * 48] }
    }

    #[test]
    fn noise_has_the_asked_spread_and_is_seeded() {
        let g = with_noise(&grey(0.5), 0.1, 3);
        let n = g.pixels.len() as f32;
        let mean = g.pixels.iter().sum::<f32>() / n;
        let sd = (g.pixels.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        assert!((mean - 0.5).abs() < 0.01 && (sd - 0.1).abs() < 0.01, "mean {mean} sd {sd}");
        assert_eq!(g.pixels, with_noise(&grey(0.5), 0.1, 3).pixels);
        assert_ne!(g.pixels, with_noise(&grey(0.5), 0.1, 4).pixels);
        assert!(with_noise(&grey(0.98), 0.3, 1).pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn the_square_is_black_exactly_where_it_says() {
        let sq = Square::centred(20.0, 10.0, 8.0);
        let g = with_square(&grey(0.7), sq);
        for y in 0..48u32 {
            for x in 0..64u32 {
                let v = g.pixels[(y * 64 + x) as usize];
                let inside = (16..24).contains(&x) && (6..14).contains(&y);
                assert_eq!(v, if inside { 0.0 } else { 0.7 }, "({x},{y})");
            }
        }
        assert!(sq.contains([16.0, 6.0]) && !sq.contains([24.0, 6.0]));
    }

    #[test]
    fn non_chest_images_are_fixed_and_in_range() {
        let a = non_chest_images();
        assert_eq!(a.len(), 3);
        for g in &a {
            assert_eq!(g.pixels.len(), 1024 * 1024);
            assert!(g.pixels.iter().all(|v| (0.0..=1.0).contains(v)), "{}", g.name);
            let (lo, hi) = g.pixels.iter().fold((1.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
            assert!(hi - lo > 0.5, "{} has contrast", g.name);
        }
        assert_eq!(a[1].pixels, non_chest_images()[1].pixels);
    }
}
