//! Predictive uncertainty from test-time augmentation: encode the image under a few small,
//! fixed similarity warps, decode each, map the landmarks back, and measure how far the warps
//! disagree. The latent samples of METHOD.md §4 say how unsure the decoder is given the
//! encoder's features; the warps say how stable those features are: a node the model places
//! differently when the image moves by a few pixels is one it has not really found.
//!
//! The same warps also place the landmarks: averaged over the image and its warps, each node
//! lands nearer the truth than on the image alone (the shipped model's val error fell from
//! 19.5 to 18.6 px at 7 warps; `assets/README.md`). A model whose metadata names a number of
//! test-time warps ([`super::HybridGNet::test_time_warps`]) is predicted that way.
//!
//! A model's companions ([`super::HybridGNet::companions`]) are other trained models run on the
//! same image and warps; their means join the average, their spread does not (`assets/README.md`,
//! "Companion models").

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::HybridGNet;
use super::preprocess::{Letterbox, model_input};
use super::uncertainty::{Draws, Prediction, Sampling, decode_samples, encode_input, sample_draws};
use crate::geometry::{Affine, warp};
use crate::landmarks::{NUM_NODES, Point};

/// Test-time warps `calibrate` records in a model unless told otherwise: the error stopped
/// falling there (3 warps 19.0 px, 7 and 15 warps 18.6 px on the shipped model's val images).
pub const DEFAULT_WARPS: usize = 7;
/// Most test-time warps a weights file may ask for: each costs one more encoding.
pub const MAX_WARPS: usize = 64;
/// Largest zoom, rotation and shift (fraction of the input side) of a warp: small enough that
/// no organ leaves the frame, large enough to move every node by a few pixels.
const MAX_ZOOM: f32 = 0.06;
const MAX_ANGLE_DEG: f32 = 4.0;
const MAX_SHIFT: f32 = 0.03;
/// Latent samples decoded per warp (at most; N when N is smaller): only the warp's mean
/// landmarks are kept, and 10 place them as well as 50 (shipped model, 21 val images, 7 warps:
/// 18.55 px at 10, 18.60 at 50, 18.73 at 5) for a fifth of the decoding.
pub const WARP_SAMPLES: usize = 10;
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

/// A prediction on the image as given plus the landmarks of its warps.
#[derive(Debug, Clone)]
pub struct AugmentedPrediction {
    /// On the image as given: the paper's mean and std (calibrated when the model is); its
    /// ratio spread is the samples' as decoded ([`Self::draws`] re-centres it).
    pub prediction: Prediction,
    /// The image's decoded latent samples behind [`Self::prediction`].
    pub draws: Draws,
    /// Per warp, in [`warps`]' order: the mean over its latent samples (at most
    /// [`WARP_SAMPLES`]) of every landmark, mapped back into the unwarped image, image pixels.
    pub warp_means: Vec<[Point; NUM_NODES]>,
    /// Per companion model ([`HybridGNet::companions`]): its mean landmarks on the image, then
    /// on each warp, as in [`Self::warp_means`].
    pub companion_means: Vec<Vec<[Point; NUM_NODES]>>,
}

impl AugmentedPrediction {
    /// The image's mean and the first `count` warps' means, the image's first.
    fn means(&self, count: usize) -> impl Iterator<Item = &[Point; NUM_NODES]> {
        std::iter::once(&self.prediction.mean).chain(self.warp_means.iter().take(count))
    }

    /// Per node: the spread (mean of the x and y population std) of the image's and the
    /// first `count` warps' mean landmarks, image pixels.
    pub fn warp_std(&self, count: usize) -> [f32; NUM_NODES] {
        let k = self.means(count).count() as f64;
        std::array::from_fn(|node| {
            let axis_std = |axis: usize| {
                let m = self.means(count).map(|p| p[node][axis] as f64).sum::<f64>() / k;
                (self.means(count).map(|p| (p[node][axis] as f64 - m).powi(2)).sum::<f64>() / k).sqrt()
            };
            ((axis_std(0) + axis_std(1)) / 2.0) as f32
        })
    }

    /// The prediction with every landmark at the mean of the image's mean and its first
    /// `count` warps' means, and as many of every companion's, all weighted alike; the std,
    /// the latent σ² and the calibration stay the model's own on the image.
    pub fn averaged(&self, count: usize) -> Prediction {
        self.average(count, true)
    }

    /// As [`Self::averaged`] without the companions: the model alone.
    pub fn without_companions(&self, count: usize) -> Prediction {
        self.average(count, false)
    }

    fn average(&self, count: usize, with_companions: bool) -> Prediction {
        let count = count.min(self.warp_means.len());
        let companions: &[Vec<[Point; NUM_NODES]>] = if with_companions { &self.companion_means } else { &[] };
        let mut p = self.prediction.clone();
        p.test_time_warps = count;
        p.companions = companions.len();
        if count == 0 && companions.is_empty() {
            return p;
        }
        let all = || self.means(count).chain(companions.iter().flat_map(|c| c.iter().take(count + 1)));
        let k = all().count() as f64;
        p.mean = std::array::from_fn(|node| {
            let axis_mean = |axis: usize| (all().map(|m| m[node][axis] as f64).sum::<f64>() / k) as f32;
            [axis_mean(0), axis_mean(1)]
        });
        p
    }
}

/// `model`'s mean landmarks (over `sampling`'s latents) on its input warped by each of
/// `affines` (`None`: the input as it is), mapped back into the image, image pixels.
fn mean_landmarks(
    model: &HybridGNet,
    input: &[f32],
    letterbox: Letterbox,
    affines: impl Iterator<Item = Option<Affine>>,
    sampling: Sampling,
) -> Vec<[Point; NUM_NODES]> {
    let size = model.config().input_size;
    affines
        .map(|a| {
            let encoded = match &a {
                Some(a) => encode_input(model, &warp(input, size, a), letterbox),
                None => encode_input(model, input, letterbox),
            };
            let (decoded, n) = decode_samples(model, &encoded, sampling, None);
            // Mean over the samples in the warped input, then back into the unwarped frame
            // (the warp is affine, so the two orders agree) and on to image pixels.
            let inv = a.map(|a| a.inverse());
            std::array::from_fn(|node| {
                let axis_mean =
                    |axis: usize| (0..n).map(|i| decoded[(i * NUM_NODES + node) * 2 + axis] as f64).sum::<f64>() / n as f64;
                let q = [axis_mean(0) as f32, axis_mean(1) as f32];
                letterbox.to_image(inv.as_ref().map_or(q, |inv| inv.apply(q)))
            })
        })
        .collect()
}

/// Predict on the image as given (with `sampling`'s latents) and on `count` warps of it, each
/// encoded once and decoded with at most [`WARP_SAMPLES`] of the same latent draws; every
/// companion model predicts on the image and the same warps with as many draws.
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
    let (prediction, draws) = sample_draws(model, &encode_input(model, &input, letterbox), sampling, None);
    let few = match sampling {
        Sampling::Mean => Sampling::Mean,
        Sampling::Random { samples, seed } => Sampling::Random { samples: samples.min(WARP_SAMPLES), seed },
    };
    let affines = warps(count);
    let warp_means = mean_landmarks(model, &input, letterbox, affines.iter().copied().map(Some), few);
    let companion_means = model
        .companions()
        .iter()
        .map(|c| {
            let (input, letterbox) = model_input(grey, width, height, c.config().input_size);
            let image_and_warps = std::iter::once(None).chain(affines.iter().copied().map(Some));
            mean_landmarks(c, &input, letterbox, image_and_warps, few)
        })
        .collect();
    AugmentedPrediction { prediction, draws, warp_means, companion_means }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::predict;
    use crate::model::testing::small_model;

    fn model() -> HybridGNet {
        small_model(5)
    }

    fn image() -> (Vec<f32>, u32, u32) {
        let (w, h) = (80u32, 64u32);
        ((0..w * h).map(|i| ((i * 7919) % 251) as f32 / 250.0).collect(), w, h)
    }

    #[test]
    fn fewer_warps_are_the_first_of_more() {
        // So a model recording k warps and `calibrate --warps m` use the same first warps.
        let (a, b) = (warps(3), warps(7));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.apply([0.2, 0.7]), y.apply([0.2, 0.7]));
        }
        assert_ne!(b[3].apply([0.2, 0.7]), [0.2, 0.7], "a warp moves points");
    }

    #[test]
    fn averaging_moves_only_the_means_and_predict_follows_the_model() {
        let mut m = model();
        let (g, w, h) = image();
        let sampling = Sampling::Random { samples: 6, seed: 2 };
        let plain = predict(&m, &g, w, h, sampling);
        let ap = predict_augmented(&m, &g, w, h, sampling, 4);
        assert_eq!(ap.prediction, plain);
        assert_eq!(ap.averaged(0), plain);
        let avg = ap.averaged(4);
        assert_eq!((avg.std, avg.score, avg.test_time_warps), (plain.std, plain.score, 4));
        // The mean of the image's and the warps' means, node by node.
        for node in [0, 57, 119] {
            let x = (plain.mean[node][0] + ap.warp_means.iter().map(|p| p[node][0]).sum::<f32>()) / 5.0;
            assert!((avg.mean[node][0] - x).abs() < 1e-3, "node {node}: {} vs {x}", avg.mean[node][0]);
        }
        assert_ne!(avg.mean, plain.mean);
        // A model that records warps predicts that way.
        m.test_time_warps = 4;
        let p = predict(&m, &g, w, h, sampling);
        assert_eq!(p.ctr, ap.draws.ctr_about(&avg, None).or(avg.ctr));
        assert_eq!(Prediction { ctr: avg.ctr, ..p }, avg);
        assert!(m.describe().ends_with("4 test-time warps"), "{}", m.describe());
    }

    #[test]
    fn a_companion_moves_the_means_alike_with_and_without_warps_and_leaves_the_spread() {
        use crate::model::testing::{cpu, small_config};
        let (g, w, h) = image();
        let sampling = Sampling::Random { samples: 6, seed: 2 };
        // Another architecture (finer skip maps, larger input) may be a companion.
        let other = crate::model::ModelConfig { skip_maps: [5, 4], input_size: 96, ..small_config() };
        let companion = HybridGNet::random(&other, 11, &cpu());
        let few = Sampling::Random { samples: 6, seed: 2 };
        let companion_alone = predict(&companion, &g, w, h, few);
        let mut m = model();
        let plain = predict(&m, &g, w, h, sampling);
        m.add_companion(companion).unwrap();
        for k in [0, 3] {
            let ap = predict_augmented(&m, &g, w, h, sampling, k);
            assert_eq!(ap.companion_means.len(), 1);
            assert_eq!(ap.companion_means[0].len(), k + 1, "the image, then each warp");
            // On the image, the companion's means are its own prediction's.
            assert_eq!(ap.companion_means[0][0], companion_alone.mean);
            let (avg, alone) = (ap.averaged(k), ap.without_companions(k));
            assert_eq!(alone, predict_augmented(&small_model(5), &g, w, h, sampling, k).averaged(k), "model alone");
            assert_eq!((avg.std, avg.score, avg.calibrated.clone()), (plain.std, plain.score, plain.calibrated.clone()));
            assert_eq!((avg.companions, avg.test_time_warps, alone.companions), (1, k, 0));
            for node in [0, 57, 119] {
                let all: Vec<f32> = ap.means(k).chain(&ap.companion_means[0]).map(|p| p[node][1]).collect();
                let y = all.iter().sum::<f32>() / all.len() as f32;
                assert_eq!(all.len(), 2 * (k + 1));
                assert!((avg.mean[node][1] - y).abs() < 1e-3, "node {node}: {} vs {y}", avg.mean[node][1]);
            }
            assert_ne!(avg.mean, alone.mean);
            m.test_time_warps = k;
            // predict also centres the ratio's spread on the averaged landmarks.
            let p = predict(&m, &g, w, h, sampling);
            assert_eq!(p.ctr, ap.draws.ctr_about(&avg, None).or(avg.ctr));
            assert_eq!(Prediction { ctr: avg.ctr, ..p }, avg, "predict averages the companion in");
        }
        assert!(m.describe().ends_with("3 test-time warps · 1 companion model"), "{}", m.describe());
        m.drop_companions();
        assert_eq!(predict(&m, &g, w, h, sampling).companions, 0);
    }

    #[test]
    fn the_warp_spread_is_zero_for_no_warps_and_grows_with_disagreement() {
        let (g, w, h) = image();
        let ap = predict_augmented(&model(), &g, w, h, Sampling::Mean, 3);
        assert!(ap.warp_std(0).iter().all(|&s| s == 0.0));
        assert!(ap.warp_std(3).iter().any(|&s| s > 0.0));
    }
}
