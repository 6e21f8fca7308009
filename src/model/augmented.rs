//! Predictive uncertainty from test-time augmentation: encode the image under a few small,
//! fixed similarity warps, decode each, map the landmarks back, and measure how far the warps
//! disagree. The latent samples of METHOD.md §4 say how unsure the decoder is given the
//! encoder's features; the warps say how stable those features are: a node the model places
//! differently when the image moves by a few pixels is one it has not really found.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::HybridGNet;
use super::preprocess::model_input;
use super::uncertainty::{Prediction, Sampling, draw_latents, summarise};
use crate::geometry::{Affine, warp};
use crate::landmarks::NUM_NODES;

/// Warps used by [`predict_augmented`] besides the identity.
pub const DEFAULT_WARPS: usize = 7;
/// Largest zoom, rotation and shift (fraction of the input side) of a warp: small enough that
/// no organ leaves the frame, large enough to move every node by a few pixels.
const MAX_ZOOM: f32 = 0.06;
const MAX_ANGLE_DEG: f32 = 4.0;
const MAX_SHIFT: f32 = 0.03;
/// The warps are the same for every image: drawn from a fixed seed.
const WARP_SEED: u64 = 0x5eed_7a7a;

/// `count` similarity warps about the input's centre; the same on every call.
pub fn warps(count: usize) -> Vec<Affine> {
    let mut rng = StdRng::seed_from_u64(WARP_SEED);
    (0..count)
        .map(|_| {
            let s = 1.0 + rng.random_range(-MAX_ZOOM..=MAX_ZOOM);
            let a = rng.random_range(-MAX_ANGLE_DEG..=MAX_ANGLE_DEG).to_radians();
            let shift = [rng.random_range(-MAX_SHIFT..=MAX_SHIFT), rng.random_range(-MAX_SHIFT..=MAX_SHIFT)];
            Affine::similarity(s, a, [0.5, 0.5], shift)
        })
        .collect()
}

/// A prediction with both kinds of uncertainty.
#[derive(Debug, Clone)]
pub struct AugmentedPrediction {
    /// On the image as given: the paper's mean and std.
    pub prediction: Prediction,
    /// Per node: the spread (mean of the x and y population std) of the warps' mean
    /// landmarks, the unwarped image's included, image pixels.
    pub warp_std: [f32; NUM_NODES],
}

/// Predict on the image and on `count` warps of it (each with `sampling`'s latents).
pub fn predict_augmented(
    model: &HybridGNet,
    grey: &[f32],
    width: u32,
    height: u32,
    sampling: Sampling,
    count: usize,
) -> AugmentedPrediction {
    let size = model.config().input_size;
    let (input, letterbox) = model_input(grey, width, height, size);
    let mut means: Vec<[[f32; 2]; NUM_NODES]> = Vec::with_capacity(count + 1);
    let mut prediction = None;
    for (k, a) in std::iter::once(Affine::IDENTITY).chain(warps(count)).enumerate() {
        let pixels = if k == 0 { input.clone() } else { warp(&input, size, &a) };
        let encoding = model.encode_pixels(&pixels);
        let mu = host(&encoding.mu);
        let logvar = host(&encoding.logvar);
        let (z, n, seed) = match sampling {
            Sampling::Mean => (mu.clone(), 1, None),
            Sampling::Random { samples, seed } => (draw_latents(&mu, &logvar, samples, seed), samples, Some(seed)),
        };
        let z = burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(z, [n, mu.len()]), model.device());
        let mut decoded = host(&model.decode(z, &encoding).output);
        // Back into the unwarped input's frame.
        let inv = a.inverse();
        for q in decoded.chunks_exact_mut(2) {
            let p = inv.apply([q[0], q[1]]);
            q.copy_from_slice(&p);
        }
        let p = summarise(&decoded, n, &logvar, letterbox, seed);
        means.push(p.mean);
        if k == 0 {
            prediction = Some(p);
        }
    }
    let mut prediction = prediction.expect("the identity warp runs first");
    if let (Some(c), Sampling::Random { .. }) = (model.calibration(), sampling) {
        prediction.calibrate(c);
    }
    let k = means.len() as f64;
    let warp_std = std::array::from_fn(|node| {
        let axis_std = |axis: usize| {
            let m = means.iter().map(|p| p[node][axis] as f64).sum::<f64>() / k;
            (means.iter().map(|p| (p[node][axis] as f64 - m).powi(2)).sum::<f64>() / k).sqrt()
        };
        ((axis_std(0) + axis_std(1)) / 2.0) as f32
    });
    AugmentedPrediction { prediction, warp_std }
}

fn host<const D: usize>(t: &burn::tensor::Tensor<D>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().expect("f32 data")
}
