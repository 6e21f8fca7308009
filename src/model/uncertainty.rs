//! CheXmask-U uncertainty (METHOD.md §4): encode once, decode N latent samples as one batch,
//! and summarise the spread of every landmark.
//!
//! Latent noise is drawn on the host from a seeded generator, so a prediction depends only on
//! the image, the weights, N and the seed, whichever device runs the network.

use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::HybridGNet;
use super::encoder::Encoding;
use super::calibration::StdOf;
use super::preprocess::{Letterbox, model_input};
use crate::landmarks::{NUM_NODES, Point};
use crate::xray::XrayImage;

/// Which latents to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// z = μ alone: the plain HybridGNet prediction (std 0).
    Mean,
    /// `samples` draws z = μ + ε·σ, ε ~ N(0, I) from `seed`.
    Random { samples: usize, seed: u64 },
}

/// A landmark prediction with its uncertainty, in pixels of the original image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Per node: mean (x, y) over the samples.
    #[serde(with = "node_array")]
    pub mean: [Point; NUM_NODES],
    /// Per node: population standard deviation (x, y) over the samples.
    #[serde(with = "node_array")]
    pub std: [Point; NUM_NODES],
    /// Per node: the std (x, y) of the samples re-spaced along their contours, for models
    /// that re-space their landmarks ([`super::contour_spacing`]); what their calibration maps
    /// ([`Self::calibration_std`]). [`Self::std`] stays the paper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaced_std: Option<Vec<Point>>,
    /// Per node: the std (x, y) of the samples carried through the patch refinement (and the
    /// re-spacing) as the mean was ([`super::refined_spread`]), for models whose calibration
    /// reads it, or that have none; what [`Self::calibration_std`] then reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refined_std: Option<Vec<Point>>,
    /// Per node: the error the image around it leads one to expect once placed, pixels of the
    /// image ([`super::patch_error`]), for models whose refinement carries one; what a node
    /// profile that reads the patches scales ([`super::calibration::NodeProfile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_error: Option<Vec<f32>>,
    /// σ² = exp(log σ²) of every latent.
    pub latent_sigma2: Vec<f32>,
    pub latent_sigma2_mean: f32,
    /// Mean over nodes and both axes of the node standard deviations, pixels.
    pub score: f32,
    pub samples: usize,
    /// `None` for [`Sampling::Mean`].
    pub seed: Option<u64>,
    /// Where the image sat in the model input.
    pub letterbox: Letterbox,
    /// Expected error per node from the model's calibration (node std mapped by
    /// [`super::Calibration`]); `None` for models without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<super::calibration::Calibrated>,
    /// Cardiothoracic ratio over the decoded samples (mean ± sd of the per-sample ratios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctr: Option<crate::metrics::ctr::CtrSpread>,
    /// Test-time warps averaged into [`Self::mean`] (0: the image alone, as METHOD.md §4);
    /// the std is always the image's own latent spread.
    #[serde(default)]
    pub test_time_warps: usize,
    /// Companion models whose landmarks were averaged into [`Self::mean`]
    /// ([`HybridGNet::companions`]); the std is this model's alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub companions: usize,
    /// The model's shape correction moved [`Self::mean`] (see [`super::shape_correction`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub shape_corrected: bool,
    /// The model's patch refinement moved [`Self::mean`] after that (see
    /// [`super::patch_refinement`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub patch_refined: bool,
    /// Last, [`Self::mean`]'s nodes were re-spaced along their contours (see
    /// [`super::contour_spacing`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub contour_spaced: bool,
}

/// The decoded samples behind a [`Prediction`]'s std and ratio spread: (n, 120, 2) row-major
/// in model units. Kept beside a prediction (never in it) for as long as the landmarks may
/// still move, so that the ratio's spread can follow them.
#[derive(Clone, Default, PartialEq)]
pub struct Draws(pub Vec<f32>);

impl std::fmt::Debug for Draws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Draws({} samples)", self.0.len() / (NUM_NODES * 2))
    }
}

impl Draws {
    fn shapes(&self) -> impl Iterator<Item = [Point; NUM_NODES]> + '_ {
        shapes(&self.0)
    }

    /// Per node, the shift (model units) that moves the samples' mean onto `placed` (model
    /// frame); `None` without samples.
    fn offset_to(&self, placed: &[Point; NUM_NODES]) -> Option<[Point; NUM_NODES]> {
        let n = self.0.len() / (NUM_NODES * 2);
        if n == 0 {
            return None;
        }
        let mut centre = [[0.0f64; 2]; NUM_NODES];
        for shape in self.shapes() {
            for (c, q) in centre.iter_mut().zip(&shape) {
                c[0] += q[0] as f64 / n as f64;
                c[1] += q[1] as f64 / n as f64;
            }
        }
        Some(std::array::from_fn(|k| [(placed[k][0] as f64 - centre[k][0]) as f32, (placed[k][1] as f64 - centre[k][1]) as f32]))
    }

    /// The samples, each shifted node by node so that their mean is `placed` (model frame).
    pub fn shifted_to(&self, placed: &[Point; NUM_NODES]) -> Vec<[Point; NUM_NODES]> {
        match self.offset_to(placed) {
            Some(o) => self.shapes().map(|s| std::array::from_fn(|k| [s[k][0] + o[k][0], s[k][1] + o[k][1]])).collect(),
            None => Vec::new(),
        }
    }

    /// The cardiothoracic ratio over the samples, each shifted node by node so that their mean
    /// is `p`'s (placed) mean, then moved by the shape correction as the mean will be.
    pub fn ctr_about(&self, p: &Prediction, correction: Option<&super::ShapeCorrection>) -> Option<crate::metrics::ctr::CtrSpread> {
        let offset = self.offset_to(&p.mean.map(|q| p.letterbox.to_model(q)))?;
        self.ctr_shifted(Some(&offset), correction)
    }

    /// The ratio over the samples moved by `offset` (per node, model units) and `correction`.
    fn ctr_shifted(
        &self,
        offset: Option<&[Point; NUM_NODES]>,
        correction: Option<&super::ShapeCorrection>,
    ) -> Option<crate::metrics::ctr::CtrSpread> {
        crate::metrics::ctr::spread(self.shapes().filter_map(|s| {
            let moved = match offset {
                Some(o) => std::array::from_fn(|k| [s[k][0] + o[k][0], s[k][1] + o[k][1]]),
                None => s,
            };
            match correction {
                Some(c) => c.correct(&moved),
                None => Some(moved),
            }
        }))
    }
}

/// For `skip_serializing_if` on flags that older files lack.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// For `skip_serializing_if` on counts that older files lack.
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Prediction {
    /// Mean of the node's x and y standard deviation, pixels.
    pub fn node_std(&self, node: usize) -> f32 {
        (self.std[node][0] + self.std[node][1]) / 2.0
    }

    /// The calibrated image score: mean expected node error, pixels.
    pub fn expected_score(&self) -> Option<f32> {
        self.calibrated.as_ref().map(|c| c.mean())
    }

    /// Move [`Self::mean`] to `moved` (image pixels) and the ratio's spread with it: the
    /// samples scatter about the landmarks as they were, and a step after the sampling moves
    /// only the mean.
    pub fn move_mean(&mut self, moved: [Point; NUM_NODES]) {
        let before = crate::metrics::ctr::ctr(&self.mean);
        self.mean = moved;
        if let (Some(spread), Some(a), Some(b)) = (self.ctr.as_mut(), before, crate::metrics::ctr::ctr(&self.mean)) {
            spread.mean += b.ratio - a.ratio;
        }
    }

    /// The node's std as its model's calibration reads it: of the refined samples when the
    /// prediction carries them ([`Self::refined_std`]), else of the re-spaced samples when the
    /// model re-spaces its landmarks ([`Self::spaced_std`]), else [`Self::node_std`].
    pub fn calibration_std(&self, node: usize) -> f32 {
        self.std_of(StdOf::RefinedSamples, node)
    }

    /// The node's std of `of`'s samples, or of the nearest kind the prediction carries.
    pub fn std_of(&self, of: StdOf, node: usize) -> f32 {
        let mean_axis = |s: &Vec<Point>| (s.len() == NUM_NODES).then(|| (s[node][0] + s[node][1]) / 2.0);
        let refined = match of {
            StdOf::RefinedSamples => self.refined_std.as_ref().and_then(mean_axis),
            StdOf::Samples => None,
        };
        refined.or_else(|| self.spaced_std.as_ref().and_then(mean_axis)).unwrap_or_else(|| self.node_std(node))
    }

    /// Fill [`Self::calibrated`] from `calibration`, on the std it was fitted on.
    pub fn calibrate(&mut self, calibration: &super::Calibration) {
        let stds: [f32; NUM_NODES] = std::array::from_fn(|n| self.std_of(calibration.std_of, n));
        let side = self.letterbox.width.max(self.letterbox.height);
        self.calibrated = Some(calibration.apply(&stds, self.patch_error.as_deref(), side));
    }
}

/// Predict on an X-ray as it is displayed at its default window (METHOD.md §2 step 1).
pub fn predict_xray(model: &HybridGNet, image: &XrayImage, sampling: Sampling) -> Prediction {
    let grey = image.display_intensities(image.default_window());
    predict(model, &grey, image.width, image.height, sampling)
}

/// Predict on a grey image in [0, 1] (row-major, `width`×`height`). A model with
/// [`HybridGNet::test_time_warps`] places the landmarks by averaging over that many warps
/// of the image besides the image itself, and with companion models averages theirs in
/// ([`super::augmented`]); then its shape correction moves the landmarks
/// ([`super::shape_correction`]), its patch refinement ([`super::patch_refinement`]), and
/// last its contour spacing ([`super::contour_spacing`]). A model that refines its samples
/// too ([`HybridGNet::refines_samples`]) carries them through the refinement and the spacing
/// ([`super::refined_spread`]) and calibrates on their spread.
pub fn predict(model: &HybridGNet, grey: &[f32], width: u32, height: u32, sampling: Sampling) -> Prediction {
    let (mut p, draws) = match (model.test_time_warps, model.companions().is_empty()) {
        (0, true) => sample_corrected(model, &encode(model, grey, width, height), sampling, None),
        (k, _) => {
            let augmented = super::augmented::predict_augmented(model, grey, width, height, sampling, k);
            let mut p = augmented.averaged(k);
            // The samples scatter about the image's own mean; the warps and companions moved
            // the landmarks, so the ratio's spread moves with them (else its mean can sit
            // 0.02 from the ratio of the landmarks on screen).
            p.ctr = augmented.draws.ctr_about(&p, model.shape_correction()).or(p.ctr);
            (p, augmented.draws)
        }
    };
    if let Some(c) = model.shape_correction() {
        c.apply(&mut p);
    }
    let refined = model.patch_refinement().map(|r| (r, r.patches(grey, width, height)));
    if let Some((r, patches)) = &refined {
        let placed = p.mean;
        r.apply(&mut p, patches);
        if model.refines_samples() && p.samples > 1 {
            super::refined_spread::set(&mut p, &draws, &placed, model.contour_spacing, |q| r.refine(patches, q));
        }
    }
    if model.contour_spacing {
        super::contour_spacing::apply(&mut p);
    }
    if let Some((r, patches)) = &refined {
        if let Some(e) = &r.error {
            set_patch_error(&mut p, e, patches);
        }
        if let Some(c) = model.calibration().filter(|_| p.refined_std.is_some() || p.patch_error.is_some()) {
            p.calibrate(c);
        }
    }
    p
}

/// Set `p`'s [`Prediction::patch_error`] from its landmarks as placed.
pub fn set_patch_error(p: &mut Prediction, e: &super::patch_error::PatchError, patches: &super::patch_refinement::Patches) {
    let lb = p.letterbox;
    let expected = e.expected_1024(patches, &p.mean.map(|q| lb.to_model(q)));
    p.patch_error = Some(expected.iter().map(|&v| lb.scale_to_image([v as f32 / 1024.0; 2])[0]).collect());
}

/// An image encoded once: what [`sample`] decodes, as often as asked.
pub struct EncodedImage {
    encoding: Encoding,
    letterbox: Letterbox,
    pub mu: Vec<f32>,
    /// The encoder's log σ² per latent.
    pub logvar: Vec<f32>,
}

/// Pre-process and encode a grey image in [0, 1].
pub fn encode(model: &HybridGNet, grey: &[f32], width: u32, height: u32) -> EncodedImage {
    let (input, letterbox) = model_input(grey, width, height, model.config().input_size);
    encode_input(model, &input, letterbox)
}

/// Encode a model input already letterboxed to S×S.
pub fn encode_input(model: &HybridGNet, input: &[f32], letterbox: Letterbox) -> EncodedImage {
    let encoding = model.encode_pixels(input);
    let (mu, logvar) = (host(&encoding.mu), host(&encoding.logvar));
    EncodedImage { encoding, letterbox, mu, logvar }
}

/// Decode latents of an encoded image and summarise them. `logvar` replaces the encoder's
/// log σ² (μ and the image features stay the image's own): probes use it to tell whether a
/// change of spread comes from the encoder's σ or from the decoder's response to the image.
pub fn sample(model: &HybridGNet, image: &EncodedImage, sampling: Sampling, logvar: Option<&[f32]>) -> Prediction {
    sample_corrected(model, image, sampling, logvar).0
}

/// As [`sample`], with the decoded samples beside the prediction.
fn sample_corrected(model: &HybridGNet, image: &EncodedImage, sampling: Sampling, logvar: Option<&[f32]>) -> (Prediction, Draws) {
    let (mut p, draws) = sample_draws(model, image, sampling, logvar);
    if let Some(c) = model.shape_correction() {
        // The ratio of the samples as the model's correction places them (it moves the mean
        // in `predict`; being linear, the corrected samples' mean is the corrected mean).
        p.ctr = draws.ctr_shifted(None, Some(c));
    }
    (p, draws)
}

/// As [`sample`], with the decoded samples beside the prediction and its ratio spread left as
/// decoded (no shape correction): for callers that move the landmarks further.
pub fn sample_draws(
    model: &HybridGNet,
    image: &EncodedImage,
    sampling: Sampling,
    logvar: Option<&[f32]>,
) -> (Prediction, Draws) {
    let logvar = logvar.unwrap_or(&image.logvar);
    let (decoded, samples) = decode_samples(model, image, sampling, Some(logvar));
    let seed = match sampling {
        Sampling::Mean => None,
        Sampling::Random { seed, .. } => Some(seed),
    };
    let mut p = summarise(&decoded, samples, logvar, image.letterbox, seed);
    if model.contour_spacing && samples > 1 {
        p.spaced_std = Some(spaced_std(&decoded, samples, image.letterbox));
    }
    if let (Some(c), Sampling::Random { .. }) = (model.calibration(), sampling) {
        p.calibrate(c);
    }
    (p, Draws(decoded))
}

/// Decode `sampling`'s latents (log σ² from `logvar`, else the encoder's) against an encoded
/// image as one batch: (n, 120, 2) row-major in model units, and n.
pub fn decode_samples(
    model: &HybridGNet,
    image: &EncodedImage,
    sampling: Sampling,
    logvar: Option<&[f32]>,
) -> (Vec<f32>, usize) {
    let mu = &image.mu;
    let logvar = logvar.unwrap_or(&image.logvar);
    assert_eq!(logvar.len(), mu.len(), "one log σ² per latent");
    let (z, samples) = match sampling {
        Sampling::Mean => (mu.clone(), 1),
        Sampling::Random { samples, seed } => (draw_latents(mu, logvar, samples, seed), samples),
    };
    assert!(samples > 0, "at least one sample");
    let z = Tensor::from_data(TensorData::new(z, [samples, mu.len()]), model.device());
    (host(&model.decode(z, &image.encoding).output), samples)
}

fn host<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().expect("f32 data")
}

/// `n` rows of z = μ + ε·exp(½ log σ²), ε ~ N(0, I) from `seed`; row-major (n, latents).
pub fn draw_latents(mu: &[f32], logvar: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sigma: Vec<f32> = logvar.iter().map(|lv| (0.5 * lv).exp()).collect();
    let mut z = Vec::with_capacity(n * mu.len());
    for _ in 0..n {
        for (m, s) in mu.iter().zip(&sigma) {
            let e: f64 = StandardNormal.sample(&mut rng);
            z.push(m + e as f32 * s);
        }
    }
    z
}

/// The shapes of decoded samples, (n, 120, 2) row-major, one by one.
fn shapes(decoded: &[f32]) -> impl Iterator<Item = [Point; NUM_NODES]> + '_ {
    decoded.chunks_exact(NUM_NODES * 2).map(|s| std::array::from_fn(|k| [s[2 * k], s[2 * k + 1]]))
}

/// Per node: mean and population std (x, y) of samples (n, 120, 2), in their units.
pub(crate) fn node_spread(decoded: &[f32], n: usize) -> ([Point; NUM_NODES], [Point; NUM_NODES]) {
    let mut mean = [[0.0f32; 2]; NUM_NODES];
    let mut std = [[0.0f32; 2]; NUM_NODES];
    for node in 0..NUM_NODES {
        for axis in 0..2 {
            let vals = (0..n).map(|i| decoded[(i * NUM_NODES + node) * 2 + axis] as f64);
            let mu = vals.clone().sum::<f64>() / n as f64;
            let var = vals.map(|v| (v - mu) * (v - mu)).sum::<f64>() / n as f64;
            mean[node][axis] = mu as f32;
            std[node][axis] = var.sqrt() as f32;
        }
    }
    (mean, std)
}

/// Per node: the std (x, y, image pixels) of the samples each re-spaced along its contours as
/// [`super::contour_spacing`] re-spaces the mean: the spread of the nodes as they are placed.
fn spaced_std(decoded: &[f32], n: usize, letterbox: Letterbox) -> Vec<Point> {
    let spaced: Vec<f32> = shapes(decoded).flat_map(|s| super::contour_spacing::respace(&s).into_iter().flatten()).collect();
    node_spread(&spaced, n).1.iter().map(|&s| letterbox.scale_to_image(s)).collect()
}

/// Statistics of decoded samples (n, 120, 2) in model units, mapped to image pixels.
pub fn summarise(decoded: &[f32], n: usize, logvar: &[f32], letterbox: Letterbox, seed: Option<u64>) -> Prediction {
    assert_eq!(decoded.len(), n * NUM_NODES * 2, "decoded samples");
    let (mean, std) = node_spread(decoded, n);
    let (mean, std) = (mean.map(|m| letterbox.to_image(m)), std.map(|s| letterbox.scale_to_image(s)));
    let latent_sigma2: Vec<f32> = logvar.iter().map(|lv| lv.exp()).collect();
    let latent_sigma2_mean =
        latent_sigma2.iter().map(|&v| v as f64).sum::<f64>() as f32 / latent_sigma2.len().max(1) as f32;
    let score = std.iter().map(|s| (s[0] + s[1]) as f64 / 2.0).sum::<f64>() as f32 / NUM_NODES as f32;
    // The letterbox scales both axes alike, so model-space samples give the image's ratio.
    let ctr = crate::metrics::ctr::spread(shapes(decoded));
    Prediction {
        mean,
        std,
        latent_sigma2,
        latent_sigma2_mean,
        score,
        samples: n,
        seed,
        letterbox,
        calibrated: None,
        ctr,
        test_time_warps: 0,
        companions: 0,
        shape_corrected: false,
        patch_refined: false,
        contour_spaced: false,
        patch_error: None,
        spaced_std: None,
        refined_std: None,
    }
}

/// Serde for `[Point; 120]` (serde's derives stop at arrays of 32) as a list of pairs.
mod node_array {
    use super::{NUM_NODES, Point};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Point; NUM_NODES], s: S) -> Result<S::Ok, S::Error> {
        v.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[Point; NUM_NODES], D::Error> {
        let v = Vec::<Point>::deserialize(d)?;
        let n = v.len();
        v.try_into().map_err(|_| serde::de::Error::invalid_length(n, &"120 (x, y) pairs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{cpu, small_config, small_model};

    fn model() -> HybridGNet {
        small_model(11)
    }

    fn image() -> (Vec<f32>, u32, u32) {
        let (w, h) = (80u32, 60u32);
        let px = (0..w * h).map(|i| ((i % w) as f32 / w as f32 + (i / w) as f32 / h as f32) / 2.0).collect();
        (px, w, h)
    }

    #[test]
    fn the_ratio_spread_is_centred_where_the_landmarks_are_placed() {
        use crate::metrics::ctr::ctr;
        // Two samples: the template shifted left and right (a shift leaves a ratio alone).
        let lb = Letterbox::new(1024, 1024);
        let t = crate::landmarks::template().map(|q| lb.to_model(q));
        let mut decoded = Vec::new();
        for dx in [-0.01f32, 0.01] {
            decoded.extend(t.iter().flat_map(|q| [q[0] + dx, q[1]]));
        }
        let mut p = summarise(&decoded, 2, &[0.0], lb, Some(0));
        let draws = Draws(decoded);
        // Placed elsewhere (as warps would): the heart 20 % wider about its centre.
        let heart = crate::landmarks::Organ::Heart.nodes();
        let cx = heart.clone().map(|n| p.mean[n][0]).sum::<f32>() / heart.len() as f32;
        for n in heart {
            p.mean[n][0] = cx + 1.2 * (p.mean[n][0] - cx);
        }
        let before = p.ctr.unwrap();
        let after = draws.ctr_about(&p, None).unwrap();
        let placed = ctr(&p.mean).unwrap().ratio;
        assert!((before.mean - placed).abs() > 0.03, "{before:?} vs {placed}");
        assert!((after.mean - placed).abs() < 1e-4 && after.sd < 1e-4 && after.samples == 2, "{after:?} vs {placed}");
    }

    #[test]
    fn nodes_slid_along_their_contour_spread_the_paper_std_but_not_the_re_spaced_one() {
        use super::super::contour_spacing::{ANCHORS, respace};
        use crate::landmarks::Organ;
        // Two samples: the template as the protocol spaces it, and the same outline with every
        // node between anchors slid a third of the way to its next node.
        let lb = Letterbox::new(1024, 1024);
        let a = respace(&crate::landmarks::template().map(|q| lb.to_model(q)));
        let mut b = a;
        for organ in Organ::ALL {
            let r = organ.nodes();
            for (j, i) in r.clone().enumerate() {
                if !ANCHORS[organ.index()].contains(&j) {
                    let next = a[r.start + (j + 1) % r.len()];
                    b[i] = [a[i][0] + (next[0] - a[i][0]) / 3.0, a[i][1] + (next[1] - a[i][1]) / 3.0];
                }
            }
        }
        let decoded: Vec<f32> = [a, b].iter().flat_map(|s| s.iter().flatten().copied()).collect();
        let paper = summarise(&decoded, 2, &[0.0], lb, Some(0));
        let mut spaced = paper.clone();
        spaced.spaced_std = Some(spaced_std(&decoded, 2, lb));
        let mean = |f: &dyn Fn(usize) -> f32| (0..NUM_NODES).map(f).sum::<f32>() / NUM_NODES as f32;
        let (raw, re) = (mean(&|n| paper.calibration_std(n)), mean(&|n| spaced.calibration_std(n)));
        assert_eq!(raw, mean(&|n| spaced.node_std(n)), "the paper's std stays");
        assert!(raw > 3.0 && re < 0.25 * raw, "paper's std {raw} px, re-spaced {re} px");
    }

    #[test]
    fn a_model_that_re_spaces_its_landmarks_carries_both_stds() {
        let mut m = model();
        let (px, w, h) = image();
        let sampling = Sampling::Random { samples: 6, seed: 2 };
        let plain = predict(&m, &px, w, h, sampling);
        m.contour_spacing = true;
        let p = predict(&m, &px, w, h, sampling);
        assert!(plain.spaced_std.is_none() && !plain.contour_spaced);
        assert!(p.contour_spaced && p.spaced_std.as_ref().is_some_and(|s| s.len() == NUM_NODES));
        assert_eq!((p.std, p.score), (plain.std, plain.score));
        assert_eq!(p.mean, super::super::contour_spacing::respace(&plain.mean));
    }

    #[test]
    fn a_calibration_on_the_refined_samples_reads_their_spread_and_an_older_one_its_own() {
        use super::super::calibration::Calibration;
        let mut m = model();
        m.contour_spacing = true;
        m.set_patch_refinement(Some(super::super::PatchRefinement::example()));
        let (px, w, h) = image();
        let sampling = Sampling::Random { samples: 6, seed: 2 };
        // No calibration: the spread a calibration would be fitted on.
        let p = predict(&m, &px, w, h, sampling);
        let refined = p.refined_std.clone().expect("a refining model carries the refined spread");
        assert_eq!(p.calibration_std(3), (refined[3][0] + refined[3][1]) / 2.0);
        assert!(refined != p.spaced_std.clone().unwrap(), "the refinement moves the samples");
        // A calibration fitted on the refined spread maps it …
        let on_refined = Calibration { std_of: StdOf::RefinedSamples, ..super::super::calibration::tests::example() };
        m.set_calibration(Some(on_refined.clone()));
        let p = predict(&m, &px, w, h, sampling);
        let stds: [f32; NUM_NODES] = std::array::from_fn(|n| p.calibration_std(n));
        assert_eq!(p.calibrated.as_ref().unwrap().expected_error, on_refined.expected_errors(&stds, None, w.max(h)));
        assert_eq!(p.refined_std.as_ref(), Some(&refined));
        // … one fitted before it existed maps the re-spaced samples' spread, as it was fitted.
        let older = super::super::calibration::tests::example();
        m.set_calibration(Some(older.clone()));
        let p = predict(&m, &px, w, h, sampling);
        assert!(p.refined_std.is_none());
        let spaced = p.spaced_std.as_ref().unwrap();
        let stds: [f32; NUM_NODES] = std::array::from_fn(|n| (spaced[n][0] + spaced[n][1]) / 2.0);
        assert_eq!(p.calibrated.as_ref().unwrap().expected_error, older.expected_errors(&stds, None, w.max(h)));
    }

    #[test]
    fn one_sample_at_mu_is_the_plain_decode() {
        let m = model();
        let (px, w, h) = image();
        let p = predict(&m, &px, w, h, Sampling::Mean);
        assert_eq!((p.samples, p.seed, p.score), (1, None, 0.0));
        // The same thing by hand: preprocess, encode, decode z = μ, map back.
        let (input, lb) = model_input(&px, w, h, 64);
        let enc = m.encode_pixels(&input);
        let out = host(&m.decode(enc.mu.clone(), &enc).output);
        for node in [0, 57, 119] {
            let q = lb.to_image([out[node * 2], out[node * 2 + 1]]);
            assert!((q[0] - p.mean[node][0]).abs() < 1e-3 && (q[1] - p.mean[node][1]).abs() < 1e-3);
        }
        assert!(p.std.iter().all(|s| *s == [0.0, 0.0]));
    }

    #[test]
    fn same_seed_same_prediction_other_seed_differs() {
        let m = model();
        let (px, w, h) = image();
        let a = predict(&m, &px, w, h, Sampling::Random { samples: 5, seed: 7 });
        let b = predict(&m, &px, w, h, Sampling::Random { samples: 5, seed: 7 });
        let c = predict(&m, &px, w, h, Sampling::Random { samples: 5, seed: 8 });
        assert_eq!(a, b);
        assert_ne!(a.mean, c.mean);
        assert!(a.score > 0.0);
        assert_eq!(a.latent_sigma2.len(), 8);
    }

    #[test]
    fn a_given_latent_variance_replaces_the_encoders() {
        let m = model();
        let (px, w, h) = image();
        let sampling = Sampling::Random { samples: 8, seed: 3 };
        let own = predict(&m, &px, w, h, sampling);
        let enc = encode(&m, &px, w, h);
        // The encoder's own log σ² gives back exactly the plain prediction.
        let lv = enc.logvar.clone();
        let same = sample(&m, &enc, sampling, Some(&lv));
        assert_eq!(same.mean, own.mean);
        assert_eq!(same.std, own.std);
        // A vanishing σ leaves μ alone: every draw decodes alike, and one draw is the plain
        // z = μ decode (compared at batch size 1: the lookup's grid choice may flip with the
        // summation order of another batch size, see model::lookup).
        let none = sample(&m, &enc, sampling, Some(&[-80.0; 8]));
        assert_eq!(none.score, 0.0);
        let one = sample(&m, &enc, Sampling::Random { samples: 1, seed: 3 }, Some(&[-80.0; 8]));
        assert_eq!(one.mean, predict(&m, &px, w, h, Sampling::Mean).mean);
        // A larger σ everywhere spreads the nodes further than the encoder's.
        let wide: Vec<f32> = lv.iter().map(|v| v + 2.0).collect();
        assert!(sample(&m, &enc, sampling, Some(&wide)).score > own.score);
    }

    #[test]
    fn spread_vanishes_when_sigma_does() {
        // log σ² → −∞: every draw is μ, so all samples decode alike.
        let mu = [0.3f32, -1.0, 2.0];
        let z = draw_latents(&mu, &[-80.0; 3], 4, 1);
        for row in z.chunks(3) {
            assert_eq!(row, mu);
        }
        let decoded: Vec<f32> = (0..4).flat_map(|_| (0..240).map(|i| i as f32 / 240.0)).collect();
        let p = summarise(&decoded, 4, &[-80.0; 3], Letterbox::new(100, 100), Some(1));
        assert_eq!(p.score, 0.0);
        assert!(p.latent_sigma2_mean < 1e-30);
    }

    #[test]
    fn a_model_with_vanishing_sigma_has_no_spread() {
        // fc_logvar outputs −80 everywhere: σ ≈ 4e-18, so every draw rounds to μ.
        let mut sd = crate::model::weights::random_state_dict(&small_config(), 5);
        sd.tensors.get_mut("encoder.fc_logvar.weight").unwrap().values.fill(0.0);
        sd.tensors.get_mut("encoder.fc_logvar.bias").unwrap().values.fill(-80.0);
        let m = HybridGNet::from_state_dict(&sd, &cpu()).unwrap();
        let (px, w, h) = image();
        let p = predict(&m, &px, w, h, Sampling::Random { samples: 6, seed: 2 });
        assert_eq!(p.score, 0.0);
        assert!(p.std.iter().all(|s| *s == [0.0, 0.0]));
        assert!(p.latent_sigma2_mean < 1e-30);
    }

    #[test]
    fn statistics_are_population_and_in_image_pixels() {
        // Two samples of node 0 at x = 0.25 and 0.75 (model units) on a 200×100 image
        // (padded side 200, 50 rows before): mean 0.5 → 100 px; std 0.25 → 50 px.
        let mut decoded = vec![0.5f32; 2 * 240];
        decoded[0] = 0.25;
        decoded[240] = 0.75;
        let p = summarise(&decoded, 2, &[0.0, 2f32.ln()], Letterbox::new(200, 100), Some(3));
        assert_eq!(p.mean[0], [100.0, 50.0]);
        assert_eq!(p.std[0], [50.0, 0.0]);
        assert_eq!(p.mean[1], [100.0, 50.0]);
        assert!((p.latent_sigma2_mean - 1.5).abs() < 1e-6);
        assert!((p.score - 25.0 / 120.0).abs() < 1e-6);
        let json = serde_json::to_string(&p).unwrap();
        let back: Prediction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
