//! A last, local step: each node looks at the image around where it was placed and moves by
//! what a linear map of that patch says the reference would be.
//!
//! The network sees the image at 256 × 256, where one input pixel is 4 px at 1024, and its
//! nodes end up ~15 px from the reference on val (`assets/README.md`, "Patch refinement").
//! Here every node reads small patches of the image at 512 × 512 (9 × 9 samples in the node's
//! own frame, across and along its contour: smoothed with σ 2 and 4 px and 3 px apart, and
//! since stop 29 a coarser one, σ 8 px and 6 px apart; [`SCALES`]),
//! and a ridge regression per node maps them (and, since stop 31, random nonlinear features of
//! them; [`super::patch_features`]) to the offset of the reference across and along the
//! contour. The regression is fitted on the training images' reference landmarks, each
//! displaced at random by a few pixels as the model's errors displace them, so it needs no
//! model: `calibrate` fits it and stores it under [`PREFIX`]; every prediction applies it after
//! the shape correction. Since stop 32 each node's move along its contour is averaged with its
//! neighbours' ([`smooth_along`], the radius chosen out of fold by `calibrate`). It moves the
//! mean; the paper's std stays the latent spread, and the samples are moved the same way only
//! for their own spread ([`super::refined_spread`]).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::patch_error::PatchError;
use super::patch_features::{self, PatchFeatures};
use super::preprocess::{Letterbox, model_input};
use super::uncertainty::Prediction;
use super::weights::{StateDict, StateTensor};
use crate::landmarks::{NUM_NODES, Organ, Point};

/// Key prefix of the refinement's tensor (`weight`) and metadata (`fit`).
pub const PREFIX: &str = "patch_refinement.";
/// Side of the letterboxed square the patches are read from, px. A stored refinement's
/// weights mean something only for the patches they were fitted on: [`SIDE`] and [`HALF`]
/// are part of the weights file's format, and its fit names the scales it read
/// ([`FitInfo::scales`]).
pub const SIDE: usize = 512;
/// A patch has (2·HALF + 1)² samples, [`Scale::step`] apart.
pub const HALF: usize = 4;
const PATCH: usize = (2 * HALF + 1) * (2 * HALF + 1);

/// One patch scale: the image smoothed by a Gaussian of `sigma` and sampled every `step`, both
/// px at [`SIDE`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub sigma: f32,
    pub step: f32,
}

/// The scales refinements are fitted with: fine and middle ones that find the edge a few pixels
/// away, and a coarse one twice as wide (±24 px at [`SIDE`]) that sees where the organ lies
/// when the node is further off (stop 29: val 13.31 → 13.10 px; `assets/README.md`, "A coarser
/// patch scale").
pub const SCALES: [Scale; 3] = [Scale { sigma: 2.0, step: 3.0 }, Scale { sigma: 4.0, step: 3.0 }, Scale { sigma: 8.0, step: 6.0 }];
/// The scales of refinements fitted before the fit recorded them (stops 26 to 28).
pub const FIRST_SCALES: [Scale; 2] = [Scale { sigma: 2.0, step: 3.0 }, Scale { sigma: 4.0, step: 3.0 }];
/// Most scales a stored fit may name.
pub const MAX_SCALES: usize = 4;

/// Regression inputs per node with `scales` scales: every patch sample, then a constant.
pub const fn inputs(scales: usize) -> usize {
    scales * PATCH + 1
}
/// Standard deviation of the random displacements across and along the contour that the
/// regression learns to undo, px at 1024: about the model's own error across the contour.
pub const DISPLACEMENT_SD_1024: f64 = 6.0;
/// Random displacements of every training image's reference.
pub const DISPLACEMENTS: usize = 16;
/// Ridge weight (inputs are patches standardised to unit RMS).
pub const LAMBDA: f64 = 100.0;
/// Longest move allowed in one pass, px at 1024: a patch asking for more is outside what was
/// fitted.
pub const MAX_MOVE_1024: f32 = 30.0;
/// Fewest images a refinement is fitted on.
pub const MIN_IMAGES: usize = 10;
/// Most passes a refinement may make. Each pass reads the patches where the last one left the
/// nodes: a node the first pass moved part of the way, being nearer, is displaced as the
/// regression was fitted for, and the next pass moves it further.
pub const MAX_PASSES: usize = 4;
/// A further pass is kept only when it lowers the out-of-fold error by at least this, px at
/// 1024 (`calibrate` chooses the passes on the profile images, never on the images it
/// calibrates on).
pub const MIN_PASS_GAIN_1024: f64 = 0.05;

/// Radii of the smoothing along the contour ([`smooth_along`]) `calibrate` compares, each with
/// its own best passes ([`choose_smoothing`]; stop 32, the single file: 0 → 1 gained 0.12 px,
/// 1 → 2 lost).
pub const SMOOTHINGS: [usize; 4] = [0, 1, 2, 3];
/// Largest radius a stored fit may name.
pub const MAX_SMOOTHING: usize = 8;

/// The radius to keep, given the out-of-fold error at each radius tried, in increasing
/// radius: the first, then a larger one only where it gains at least [`MIN_PASS_GAIN_1024`]
/// on the one kept.
pub fn choose_smoothing(error_by_smoothing: &[(usize, f64)]) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for &(radius, e) in error_by_smoothing {
        if best.is_none_or(|(_, b)| b - e >= MIN_PASS_GAIN_1024) {
            best = Some((radius, e));
        }
    }
    best.map_or(0, |(radius, _)| radius)
}

/// The image letterboxed to [`SIDE`] and smoothed at every one of its scales.
pub struct Patches {
    scales: Vec<Scale>,
    smoothed: Vec<Vec<f32>>,
    pub letterbox: Letterbox,
}

impl Patches {
    /// From a grey image in [0, 1] (row-major, `width`×`height`), letterboxed as the model's
    /// input is, at `scales` (those of the refinement that will read them,
    /// [`PatchRefinement::patches`]).
    pub fn new(grey: &[f32], width: u32, height: u32, scales: &[Scale]) -> Self {
        let (square, letterbox) = model_input(grey, width, height, SIDE);
        let smoothed = scales.iter().map(|s| blur(&square, SIDE, s.sigma)).collect();
        Patches { scales: scales.to_vec(), smoothed, letterbox }
    }

    /// Regression inputs per node these patches give.
    pub fn inputs_per_node(&self) -> usize {
        inputs(self.scales.len())
    }

    /// Bilinear value of scale `s` at model-frame point `q` (edges clamped).
    fn at(&self, s: usize, q: [f32; 2]) -> f32 {
        let img = &self.smoothed[s];
        let max = (SIDE - 1) as f32;
        let x = (q[0] * SIDE as f32 - 0.5).clamp(0.0, max);
        let y = (q[1] * SIDE as f32 - 0.5).clamp(0.0, max);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(SIDE - 1), (y0 + 1).min(SIDE - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let row = |y: usize| img[y * SIDE + x0] * (1.0 - fx) + img[y * SIDE + x1] * fx;
        row(y0) * (1.0 - fy) + row(y1) * fy
    }

    /// Node inputs at model-frame point `q` in the frame (normal `n`, tangent `t`): each
    /// scale's patch minus its mean over its RMS, then 1.
    pub(super) fn inputs(&self, q: Point, n: [f32; 2], t: [f32; 2], out: &mut [f64]) {
        let h = HALF as i32;
        for s in 0..self.scales.len() {
            let step = self.scales[s].step / SIDE as f32;
            let patch = &mut out[s * PATCH..(s + 1) * PATCH];
            let mut k = 0;
            for u in -h..=h {
                for v in -h..=h {
                    let (u, v) = (u as f32 * step, v as f32 * step);
                    patch[k] = self.at(s, [q[0] + u * n[0] + v * t[0], q[1] + u * n[1] + v * t[1]]) as f64;
                    k += 1;
                }
            }
            let mean = patch.iter().sum::<f64>() / PATCH as f64;
            patch.iter_mut().for_each(|v| *v -= mean);
            let rms = (patch.iter().map(|v| v * v).sum::<f64>() / PATCH as f64).sqrt() + 1e-4;
            patch.iter_mut().for_each(|v| *v /= rms);
        }
        out[out.len() - 1] = 1.0;
    }
}

/// Separable Gaussian blur of a `side`² image, edges clamped. Both passes run over contiguous
/// rows (a padded copy of each row, then whole rows weighted and summed), which the compiler
/// vectorises.
fn blur(img: &[f32], side: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as usize;
    let w: Vec<f32> = (0..=2 * r).map(|i| (-((i as f32 - r as f32).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = w.iter().sum();
    let w: Vec<f32> = w.iter().map(|v| v / total).collect();
    let mut rows = vec![0.0f32; img.len()];
    let mut padded = vec![0.0f32; side + 2 * r];
    for (src, dst) in img.chunks_exact(side).zip(rows.chunks_exact_mut(side)) {
        padded[..r].fill(src[0]);
        padded[r..r + side].copy_from_slice(src);
        padded[r + side..].fill(src[side - 1]);
        for (k, wk) in w.iter().enumerate() {
            for (d, s) in dst.iter_mut().zip(&padded[k..k + side]) {
                *d += wk * s;
            }
        }
    }
    let mut out = vec![0.0f32; img.len()];
    for (y, dst) in out.chunks_exact_mut(side).enumerate() {
        for (k, wk) in w.iter().enumerate() {
            let sy = (y + k).saturating_sub(r).min(side - 1);
            for (d, s) in dst.iter_mut().zip(&rows[sy * side..(sy + 1) * side]) {
                *d += wk * s;
            }
        }
    }
    out
}

/// Add `x xᵀ` to the upper triangle of `gram` (`x.len()²`, row-major); [`solve_ridge`] mirrors it.
pub(super) fn add_outer_upper(gram: &mut [f64], x: &[f64]) {
    let n = x.len();
    for i in 0..n {
        let xi = x[i];
        let row = &mut gram[i * n..(i + 1) * n];
        for j in i..n {
            row[j] += xi * x[j];
        }
    }
}

/// Solve a ridge regression from its normal equations: `gram` (`n × n`, upper triangle as
/// [`add_outer_upper`] fills it) and `rhs` (`n × cols`); the last input is the constant, which
/// is not penalised.
pub(super) fn solve_ridge(mut gram: Vec<f64>, rhs: Vec<f64>, n: usize, cols: usize, lambda: f64) -> Result<Vec<f64>, String> {
    for i in 0..n {
        for j in 0..i {
            gram[i * n + j] = gram[j * n + i];
        }
        if i + 1 < n {
            gram[i * n + i] += lambda;
        }
    }
    super::shape_correction::solve_spd(gram, rhs, n, cols)
}

/// Unit normal and tangent of every node of a shape (closed contours; tangent from the
/// previous node to the next, normal a quarter turn from it).
pub fn frames(points: &[Point; NUM_NODES]) -> [([f32; 2], [f32; 2]); NUM_NODES] {
    let mut out = [([0.0, 0.0], [1.0, 0.0]); NUM_NODES];
    for organ in Organ::ALL {
        let r = organ.nodes();
        let (start, len) = (r.start, r.len());
        for j in 0..len {
            let prev = points[start + (j + len - 1) % len];
            let next = points[start + (j + 1) % len];
            let (dx, dy) = (next[0] - prev[0], next[1] - prev[1]);
            let l = dx.hypot(dy);
            let t = if l > 1e-9 && l.is_finite() { [dx / l, dy / l] } else { [1.0, 0.0] };
            out[start + j] = ([-t[1], t[0]], t);
        }
    }
    out
}

/// Every node's move (model frame) with its component along the contour replaced by the
/// weighted mean of its own and its `radius` neighbours' on each side (weights `radius + 1 −
/// distance`, each neighbour's move read along this node's tangent); the component across is
/// the node's own. The model's errors along an outline are shared by neighbouring nodes, while
/// each node's regression reads the noise of its own patches; and as the contour spacing keeps
/// only the anchors' places along the contour ([`super::contour_spacing`]), this is how the
/// other nodes' estimates reach them. `radius` 0 leaves the moves as they are.
pub fn smooth_along(moves: &[[f32; 2]; NUM_NODES], frames: &[([f32; 2], [f32; 2]); NUM_NODES], radius: usize) -> [[f32; 2]; NUM_NODES] {
    if radius == 0 {
        return *moves;
    }
    let mut out = *moves;
    for organ in Organ::ALL {
        let (start, len) = (organ.nodes().start, organ.nodes().len());
        // At most the whole closed contour once.
        let reach = radius.min((len - 1) / 2) as isize;
        for j in 0..len {
            let (n, t) = frames[start + j];
            let (mut along, mut total) = (0.0f32, 0.0f32);
            for o in -reach..=reach {
                let m = moves[start + (j as isize + o).rem_euclid(len as isize) as usize];
                let w = (reach + 1 - o.abs()) as f32;
                along += w * (m[0] * t[0] + m[1] * t[1]);
                total += w;
            }
            let own = moves[start + j];
            let (across, along) = (own[0] * n[0] + own[1] * n[1], along / total);
            out[start + j] = [across * n[0] + along * t[0], across * n[1] + along * t[1]];
        }
    }
    out
}

/// A node's regression inputs at `q` in its frame: the patch samples and the constant in `x`,
/// then, with `features`, those features before them in `z`; the slice the regression reads.
fn regression_inputs<'a>(
    patches: &Patches,
    features: Option<&PatchFeatures>,
    q: Point,
    n: [f32; 2],
    t: [f32; 2],
    x: &'a mut [f64],
    z: &'a mut [f64],
) -> &'a [f64] {
    patches.inputs(q, n, t, x);
    match features {
        Some(f) => {
            f.apply(x, z);
            z
        }
        None => x,
    }
}

/// How a refinement was fitted (the weights file's `patch_refinement.fit` metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitInfo {
    pub fitted_on: String,
    pub images: usize,
    pub lambda: f64,
    pub displacement_sd_1024: f64,
    /// Mean node error of the model's landmarks before and after, out of fold, px at 1024,
    /// when it was cross-validated.
    #[serde(default)]
    pub error_before_1024: Option<f64>,
    #[serde(default)]
    pub error_after_1024: Option<f64>,
    /// Passes every prediction makes (files from before passes were chosen made one).
    #[serde(default = "one_pass")]
    pub passes: usize,
    /// Out-of-fold error after 1, 2, … passes, px at 1024, when they were compared: of the
    /// landmarks as predictions place them (re-spaced after, for models that re-space them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_by_passes_1024: Vec<f64>,
    /// The patch scales the regression reads (files from before they were recorded read
    /// [`FIRST_SCALES`]).
    #[serde(default = "first_scales")]
    pub scales: Vec<Scale>,
    /// Random features of the patches the regression also reads ([`super::patch_features`];
    /// 0 in files from before stop 31, whose regression reads the patches alone).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub features: usize,
    /// Neighbours on each side whose moves along the contour every node's is averaged with
    /// ([`smooth_along`]; 0, none, in files from before stop 32).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub along_smoothing: usize,
    /// Out-of-fold error at each radius tried (after its own best passes), px at 1024, as
    /// (radius, error), when they were compared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_by_smoothing_1024: Vec<(usize, f64)>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one_pass() -> usize {
    1
}

fn first_scales() -> Vec<Scale> {
    FIRST_SCALES.to_vec()
}

/// The fewest passes after which a further pass gains less than [`MIN_PASS_GAIN_1024`], given
/// the error after 1, 2, … passes (1 when there are none).
pub fn choose_passes(error_by_passes: &[f64]) -> usize {
    let mut passes = 1;
    while passes < error_by_passes.len().min(MAX_PASSES) && error_by_passes[passes - 1] - error_by_passes[passes] >= MIN_PASS_GAIN_1024 {
        passes += 1;
    }
    passes
}

/// Per node, a linear map from the node's patches (and random features of them) to the
/// reference's offset across and along its contour (px at 1024).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRefinement {
    /// `NUM_NODES × regression inputs × 2`, row-major ([`Self::regression_inputs`]).
    weight: Vec<f32>,
    /// Stored under `features.` when the fit names some.
    features: Option<PatchFeatures>,
    pub fit: FitInfo,
    /// How far each node is expected to remain off once placed, read from the same patches
    /// ([`super::patch_error`]); stored under `error.`.
    pub error: Option<PatchError>,
}

impl PatchRefinement {
    /// A grey image in [0, 1] as this refinement reads it ([`Patches::new`] at its scales).
    pub fn patches(&self, grey: &[f32], width: u32, height: u32) -> Patches {
        Patches::new(grey, width, height, &self.fit.scales)
    }

    /// Inputs of every node's regression: the random features, then the patch samples and the
    /// constant.
    pub fn regression_inputs(&self) -> usize {
        inputs(self.fit.scales.len()) + self.fit.features
    }

    /// The shape (model frame) after [`FitInfo::passes`] passes of [`Self::refine_once`].
    pub fn refine(&self, patches: &Patches, points: &[Point; NUM_NODES]) -> [Point; NUM_NODES] {
        self.refine_passes(patches, points, self.fit.passes)
    }

    /// The shape (model frame) after `passes` passes of [`Self::refine_once`].
    pub fn refine_passes(&self, patches: &Patches, points: &[Point; NUM_NODES], passes: usize) -> [Point; NUM_NODES] {
        (0..passes).fold(*points, |q, _| self.refine_once(patches, &q))
    }

    /// The shape (model frame) with every node moved by its patches' offset.
    pub fn refine_once(&self, patches: &Patches, points: &[Point; NUM_NODES]) -> [Point; NUM_NODES] {
        debug_assert_eq!(patches.scales, self.fit.scales, "patches read at the refinement's scales");
        let count = self.regression_inputs();
        let frames = frames(points);
        let mut x = vec![0.0f64; inputs(self.fit.scales.len())];
        let mut z = vec![0.0f64; count];
        // Every node's move first (model frame), then shared along the contour.
        let moves: [[f32; 2]; NUM_NODES] = std::array::from_fn(|k| {
            let (n, t) = frames[k];
            let z = regression_inputs(patches, self.features.as_ref(), points[k], n, t, &mut x, &mut z);
            let w = &self.weight[k * count * 2..(k + 1) * count * 2];
            let (mut across, mut along) = (0.0f64, 0.0f64);
            for (i, v) in z.iter().enumerate() {
                across += v * w[2 * i] as f64;
                along += v * w[2 * i + 1] as f64;
            }
            let (mut a, mut b) = (across as f32, along as f32);
            let len = a.hypot(b);
            if !len.is_finite() {
                return [0.0, 0.0];
            }
            if len > MAX_MOVE_1024 {
                (a, b) = (a * MAX_MOVE_1024 / len, b * MAX_MOVE_1024 / len);
            }
            [(a * n[0] + b * t[0]) / 1024.0, (a * n[1] + b * t[1]) / 1024.0]
        });
        let moves = smooth_along(&moves, &frames, self.fit.along_smoothing);
        std::array::from_fn(|k| [points[k][0] + moves[k][0], points[k][1] + moves[k][1]])
    }

    /// Move a prediction's landmarks (image pixels) by [`Self::refine`], and its ratio's
    /// spread with them (the samples scatter about the landmarks as they were; the refinement
    /// moves only the mean).
    pub fn apply(&self, p: &mut Prediction, patches: &Patches) {
        let lb = p.letterbox;
        let moved = self.refine(patches, &p.mean.map(|q| lb.to_model(q)));
        p.move_mean(moved.map(|q| lb.to_image(q)));
        p.patch_refined = true;
    }

    /// The tensor and metadata stored under [`PREFIX`] (without it).
    pub fn to_state_dict(&self) -> StateDict {
        let shape = vec![NUM_NODES, self.regression_inputs(), 2];
        let tensors = BTreeMap::from([("weight".to_string(), StateTensor { shape, values: self.weight.clone() })]);
        let fit = serde_json::to_string(&self.fit).expect("plain numbers and text");
        let mut sd = StateDict { source: Default::default(), tensors, metadata: BTreeMap::from([("fit".to_string(), fit)]) };
        if let Some(f) = &self.features {
            sd.insert_prefixed("features.", f.to_state_dict());
        }
        if let Some(e) = &self.error {
            sd.insert_prefixed("error.", e.to_state_dict());
        }
        sd
    }

    /// Read what [`Self::to_state_dict`] wrote; the error says which part is wrong.
    pub fn from_state_dict(sd: &StateDict) -> Result<Self, String> {
        let t = sd.tensors.get("weight").ok_or_else(|| format!("patch refinement: tensor `{PREFIX}weight` missing"))?;
        let fit = sd.metadata.get("fit").ok_or_else(|| format!("patch refinement: metadata `{PREFIX}fit` missing"))?;
        let fit: FitInfo = serde_json::from_str(fit).map_err(|e| format!("patch refinement: metadata `{PREFIX}fit`: {e}"))?;
        if !(1..=MAX_PASSES).contains(&fit.passes) {
            return Err(format!("patch refinement: metadata `{PREFIX}fit` asks for {} passes, expected 1 to {MAX_PASSES}", fit.passes));
        }
        let scale_ok = |s: &Scale| s.sigma.is_finite() && s.step.is_finite() && (0.5..=32.0).contains(&s.sigma) && (0.5..=16.0).contains(&s.step);
        if !(1..=MAX_SCALES).contains(&fit.scales.len()) || !fit.scales.iter().all(scale_ok) {
            return Err(format!(
                "patch refinement: metadata `{PREFIX}fit` names scales {:?}, expected 1 to {MAX_SCALES} with sigma 0.5–32 and step 0.5–16 px",
                fit.scales
            ));
        }
        if fit.features > patch_features::MAX_FEATURES {
            return Err(format!("patch refinement: metadata `{PREFIX}fit` names {} features, at most {} are read", fit.features, patch_features::MAX_FEATURES));
        }
        if fit.along_smoothing > MAX_SMOOTHING {
            return Err(format!(
                "patch refinement: metadata `{PREFIX}fit` averages moves over {} neighbours each side, at most {MAX_SMOOTHING} are read",
                fit.along_smoothing
            ));
        }
        let features = match fit.features {
            0 => None,
            count => {
                let prefix = format!("{PREFIX}features.");
                let f = PatchFeatures::from_state_dict(&sd.clone().take_prefixed("features."), inputs(fit.scales.len()) - 1, &prefix)
                    .map_err(|e| format!("patch refinement: {e}"))?;
                if f.count() != count {
                    return Err(format!("patch refinement: `{prefix}bias` holds {} features, metadata `{PREFIX}fit` names {count}", f.count()));
                }
                Some(f)
            }
        };
        let shape = [NUM_NODES, inputs(fit.scales.len()) + fit.features, 2];
        if t.shape != shape || t.values.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "patch refinement: `{PREFIX}weight` has shape {:?}, expected {shape:?} for {} scales and {} features",
                t.shape,
                fit.scales.len(),
                fit.features
            ));
        }
        if t.values.iter().any(|v| !v.is_finite()) {
            return Err(format!("patch refinement: `{PREFIX}weight` holds a value that is not finite"));
        }
        let error = match sd.tensors.keys().chain(sd.metadata.keys()).any(|k| k.starts_with("error.")) {
            true => Some(PatchError::from_state_dict(&sd.clone().take_prefixed("error."), &fit.scales).map_err(|e| format!("patch refinement: {e}"))?),
            false => None,
        };
        Ok(PatchRefinement { weight: t.values.clone(), features, fit, error })
    }
}

impl PatchRefinement {
    /// A refinement fitted on a synthetic image whose organs are bright discs about the
    /// template's contours: for fuzzing seeds and tests, where what it learnt hardly matters.
    pub fn example() -> PatchRefinement {
        let reference = crate::landmarks::template().map(|q| [q[0] / 1024.0, q[1] / 1024.0]);
        let side = 96usize;
        let grey: Vec<f32> = (0..side * side)
            .map(|i| {
                let q = [((i % side) as f32 + 0.5) / side as f32, ((i / side) as f32 + 0.5) / side as f32];
                // Brighter nearer the nodes: edges roughly where the contours are.
                let d = reference.iter().map(|p| (p[0] - q[0]).hypot(p[1] - q[1])).fold(f32::MAX, f32::min);
                (-d * 20.0).exp()
            })
            .collect();
        let patches = Patches::new(&grey, side as u32, side as u32, &SCALES);
        // Without features: fuzzing and tests build it often, and the linear map is enough.
        let mut acc = Accumulator::new(&SCALES, 0);
        for seed in 0..MIN_IMAGES as u64 {
            acc.add(&patches, &reference, seed);
        }
        acc.solve("example".into()).expect("ten displaced copies determine a refinement")
    }
}

/// The normal equations of every node's regression, summed over images.
#[derive(Clone)]
pub struct Accumulator {
    scales: Vec<Scale>,
    features: Option<PatchFeatures>,
    /// Of every node's regression: features, patch samples, constant.
    inputs: usize,
    /// `NUM_NODES × inputs × inputs`.
    gram: Vec<f64>,
    /// `NUM_NODES × inputs × 2`.
    rhs: Vec<f64>,
    pub images: usize,
}

/// As refinements are fitted today: at [`SCALES`], with [`patch_features::FEATURES`] features.
impl Default for Accumulator {
    fn default() -> Self {
        Accumulator::new(&SCALES, patch_features::FEATURES)
    }
}

impl Accumulator {
    /// Empty, for patches at `scales` and a fresh draw of `features` random features (none
    /// when 0). Its normal equations take `NUM_NODES × inputs²` doubles: 240 MB at the
    /// shipped 3 scales and 256 features.
    pub fn new(scales: &[Scale], features: usize) -> Self {
        let features = (features > 0).then(|| PatchFeatures::random(features, inputs(scales.len()) - 1));
        Self::with_features(scales, features)
    }

    fn with_features(scales: &[Scale], features: Option<PatchFeatures>) -> Self {
        let inputs = inputs(scales.len()) + features.as_ref().map_or(0, |f| f.count());
        Accumulator {
            scales: scales.to_vec(),
            features,
            inputs,
            gram: vec![0.0; NUM_NODES * inputs * inputs],
            rhs: vec![0.0; NUM_NODES * inputs * 2],
            images: 0,
        }
    }

    /// Add an image: its reference (model frame) displaced [`DISPLACEMENTS`] times at random
    /// (seeded by `seed`), every node's patches at the displaced place, and the way back.
    pub fn add(&mut self, patches: &Patches, reference: &[Point; NUM_NODES], seed: u64) {
        assert_eq!(patches.scales, self.scales, "patches read at the accumulator's scales");
        let inputs = self.inputs;
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0, DISPLACEMENT_SD_1024 / 1024.0).expect("positive sd");
        let truth_frames = frames(reference);
        let mut x = vec![0.0f64; self::inputs(self.scales.len())];
        let mut z = vec![0.0f64; inputs];
        for _ in 0..DISPLACEMENTS {
            let displaced: [Point; NUM_NODES] = std::array::from_fn(|k| {
                let (n, t) = truth_frames[k];
                let (a, b): (f64, f64) = (normal.sample(&mut rng), normal.sample(&mut rng));
                let (a, b) = (a as f32, b as f32);
                [reference[k][0] + a * n[0] + b * t[0], reference[k][1] + a * n[1] + b * t[1]]
            });
            let frames = frames(&displaced);
            for k in 0..NUM_NODES {
                let (n, t) = frames[k];
                let x = regression_inputs(patches, self.features.as_ref(), displaced[k], n, t, &mut x, &mut z);
                let d = [(reference[k][0] - displaced[k][0]) as f64 * 1024.0, (reference[k][1] - displaced[k][1]) as f64 * 1024.0];
                let y = [d[0] * n[0] as f64 + d[1] * n[1] as f64, d[0] * t[0] as f64 + d[1] * t[1] as f64];
                add_outer_upper(&mut self.gram[k * inputs * inputs..(k + 1) * inputs * inputs], x);
                let r = &mut self.rhs[k * inputs * 2..(k + 1) * inputs * 2];
                for i in 0..inputs {
                    r[2 * i] += x[i] * y[0];
                    r[2 * i + 1] += x[i] * y[1];
                }
            }
        }
        self.images += 1;
    }

    /// The sum of several accumulators (at [`SCALES`] when there are none).
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Accumulator>) -> Accumulator {
        let mut parts = parts.into_iter().peekable();
        let mut out = parts.peek().map_or_else(Accumulator::default, |p| Accumulator::with_features(&p.scales, p.features.clone()));
        for p in parts {
            assert_eq!((&p.scales, &p.features), (&out.scales, &out.features), "accumulators at the same scales and features");
            out.gram.iter_mut().zip(&p.gram).for_each(|(a, b)| *a += b);
            out.rhs.iter_mut().zip(&p.rhs).for_each(|(a, b)| *a += b);
            out.images += p.images;
        }
        out
    }

    /// Solve every node's ridge regression (the constant not penalised).
    pub fn solve(&self, fitted_on: String) -> Result<PatchRefinement, String> {
        if self.images < MIN_IMAGES {
            return Err(format!("a patch refinement needs at least {MIN_IMAGES} annotated images, got {}", self.images));
        }
        let inputs = self.inputs;
        let mut weight = Vec::with_capacity(NUM_NODES * inputs * 2);
        for k in 0..NUM_NODES {
            let a = self.gram[k * inputs * inputs..(k + 1) * inputs * inputs].to_vec();
            let b = self.rhs[k * inputs * 2..(k + 1) * inputs * 2].to_vec();
            let w = solve_ridge(a, b, inputs, 2, LAMBDA).map_err(|e| format!("patch refinement, node {k}: {e}"))?;
            weight.extend(w.iter().map(|&v| v as f32));
        }
        let fit = FitInfo {
            fitted_on,
            images: self.images,
            lambda: LAMBDA,
            displacement_sd_1024: DISPLACEMENT_SD_1024,
            error_before_1024: None,
            error_after_1024: None,
            passes: 1,
            error_by_passes_1024: Vec::new(),
            scales: self.scales.clone(),
            features: self.features.as_ref().map_or(0, |f| f.count()),
            along_smoothing: 0,
            error_by_smoothing_1024: Vec::new(),
        };
        Ok(PatchRefinement { weight, features: self.features.clone(), fit, error: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    /// A synthetic chest: bright disc-like organs whose edges are the template's contours,
    /// drawn as a grey image `side`² with the template in model frame.
    fn phantom(side: u32, shape: &[Point; NUM_NODES]) -> Vec<f32> {
        let mut img = vec![0.2f32; (side * side) as usize];
        for organ in Organ::ALL {
            let poly: Vec<Point> = shape[organ.nodes()].to_vec();
            let level = if organ == Organ::Heart { 0.55 } else { 0.9 };
            for y in 0..side {
                for x in 0..side {
                    let q = [(x as f32 + 0.5) / side as f32, (y as f32 + 0.5) / side as f32];
                    if inside(&poly, q) {
                        img[(y * side + x) as usize] = level;
                    }
                }
            }
        }
        img
    }

    fn inside(poly: &[Point], q: Point) -> bool {
        let mut c = false;
        let n = poly.len();
        for i in 0..n {
            let (a, b) = (poly[i], poly[(i + n - 1) % n]);
            if (a[1] > q[1]) != (b[1] > q[1]) && q[0] < (b[0] - a[0]) * (q[1] - a[1]) / (b[1] - a[1]) + a[0] {
                c = !c;
            }
        }
        c
    }

    fn model_frame_template() -> [Point; NUM_NODES] {
        template().map(|q| [q[0] / 1024.0, q[1] / 1024.0])
    }

    fn mean_error_1024(a: &[Point; NUM_NODES], b: &[Point; NUM_NODES]) -> f32 {
        a.iter().zip(b).map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1])).sum::<f32>() / NUM_NODES as f32 * 1024.0
    }

    /// The template, a phantom `side`² drawn from it, and a refinement fitted on its reference
    /// displaced at random ([`MIN_IMAGES`] times over), with `features` random features (most
    /// tests take none: the fit with them is slow in a debug build).
    fn fitted_on_phantom_with(side: u32, features: usize) -> ([Point; NUM_NODES], Patches, PatchRefinement) {
        let reference = model_frame_template();
        let patches = Patches::new(&phantom(side, &reference), side, side, &SCALES);
        let mut acc = Accumulator::new(&SCALES, features);
        for seed in 0..MIN_IMAGES as u64 {
            acc.add(&patches, &reference, seed);
        }
        let r = acc.solve("phantom".into()).unwrap();
        (reference, patches, r)
    }

    fn fitted_on_phantom(side: u32) -> ([Point; NUM_NODES], Patches, PatchRefinement) {
        fitted_on_phantom_with(side, 0)
    }

    #[test]
    fn learns_to_move_displaced_nodes_back_to_the_edge() {
        // Every node displaced 8 px across its contour, alternately in and out: refined, the
        // nodes sit nearer the edges they were fitted on.
        let (reference, patches, r) = fitted_on_phantom(256);
        let frames = frames(&reference);
        let displaced: [Point; NUM_NODES] = std::array::from_fn(|k| {
            let a = if k % 2 == 0 { 8.0 } else { -8.0 } / 1024.0;
            [reference[k][0] + a * frames[k].0[0], reference[k][1] + a * frames[k].0[1]]
        });
        let before = mean_error_1024(&displaced, &reference);
        let after = mean_error_1024(&r.refine(&patches, &displaced), &reference);
        assert!(after < 0.6 * before, "{before} -> {after} px");
    }

    #[test]
    fn a_second_pass_moves_nodes_displaced_beyond_what_one_pass_undoes_further_back() {
        // Displaced 14 px across (more than twice the displacements it was fitted on), one
        // pass undoes part of it; a second, reading the patches where the first left the
        // nodes, brings them nearer still, and `refine` makes the passes its fit names.
        let (reference, patches, mut r) = fitted_on_phantom(256);
        let frames = frames(&reference);
        let displaced: [Point; NUM_NODES] = std::array::from_fn(|k| {
            let a = if k % 2 == 0 { 14.0 } else { -14.0 } / 1024.0;
            [reference[k][0] + a * frames[k].0[0], reference[k][1] + a * frames[k].0[1]]
        });
        let once = r.refine_once(&patches, &displaced);
        let twice = r.refine_once(&patches, &once);
        let (e0, e1, e2) =
            (mean_error_1024(&displaced, &reference), mean_error_1024(&once, &reference), mean_error_1024(&twice, &reference));
        assert!(e1 < e0 && e2 < 0.85 * e1, "{e0} -> {e1} -> {e2} px");
        assert_eq!(r.refine(&patches, &displaced), once);
        r.fit.passes = 2;
        assert_eq!(r.refine(&patches, &displaced), twice);
    }

    #[test]
    fn smoothing_averages_the_moves_along_the_contour_and_keeps_each_move_across() {
        let shape = model_frame_template();
        let frames = frames(&shape);
        let along = |m: [f32; 2], k: usize| m[0] * frames[k].1[0] + m[1] * frames[k].1[1];
        let across = |m: [f32; 2], k: usize| m[0] * frames[k].0[0] + m[1] * frames[k].0[1];
        // One node of the right lung moved 9 px along and 4 across, the rest still.
        let k = 10;
        let mut moves = [[0.0f32; 2]; NUM_NODES];
        let (n, t) = frames[k];
        moves[k] = [(4.0 * n[0] + 9.0 * t[0]) / 1024.0, (4.0 * n[1] + 9.0 * t[1]) / 1024.0];
        assert_eq!(smooth_along(&moves, &frames, 0), moves);
        let smoothed = smooth_along(&moves, &frames, 1);
        // Weights 1, 2, 1: half its move along stays, and a quarter of its move read along
        // each neighbour's tangent reaches that neighbour; nothing across but its own.
        assert!((along(smoothed[k], k) * 1024.0 - 4.5).abs() < 1e-4, "{}", along(smoothed[k], k) * 1024.0);
        assert!((across(smoothed[k], k) * 1024.0 - 4.0).abs() < 1e-4);
        for j in [k - 1, k + 1] {
            let want = along(moves[k], j) * 1024.0 / 4.0;
            assert!((along(smoothed[j], j) * 1024.0 - want).abs() < 1e-4, "{j}");
            assert!(across(smoothed[j], j).abs() < 1e-7, "{j}");
        }
        assert!(smoothed.iter().enumerate().all(|(j, m)| j.abs_diff(k) <= 1 || *m == [0.0, 0.0]), "two further nodes stay still");
        // Where the tangents agree, the same shift along every node of an outline is left as
        // it is, the first node of the heart wrapping round to its last.
        let straight = [([0.0f32, 1.0], [1.0f32, 0.0]); NUM_NODES];
        let heart = Organ::Heart.nodes();
        let mut shift = [[0.0f32; 2]; NUM_NODES];
        for j in heart.clone() {
            shift[j] = [3.0, 0.5];
        }
        let kept = smooth_along(&shift, &straight, 3);
        assert!(kept.iter().zip(&shift).all(|(a, b)| (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6), "{:?}", &kept[heart]);
    }

    #[test]
    fn a_larger_smoothing_is_kept_only_where_it_gains_enough() {
        let tried = |errors: [f64; 4]| -> Vec<(usize, f64)> { SMOOTHINGS.into_iter().zip(errors).collect() };
        assert_eq!(choose_smoothing(&[]), 0);
        assert_eq!(choose_smoothing(&tried([11.29, 11.17, 11.19, 11.25])), 1);
        assert_eq!(choose_smoothing(&tried([11.29, 11.26, 11.10, 11.08])), 2, "past a small gain to a larger one");
        assert_eq!(choose_smoothing(&tried([11.29, 11.40, 11.50, 11.60])), 0);
        assert_eq!(choose_smoothing(&[(2, 12.0)]), 2, "one radius tried (`calibrate --along-smoothing 2`)");
    }

    #[test]
    fn the_smoothing_is_stored_checked_and_applied() {
        let (reference, patches, mut r) = fitted_on_phantom(128);
        let frames = frames(&reference);
        let displaced: [Point; NUM_NODES] = std::array::from_fn(|k| {
            let a = if k % 3 == 0 { 7.0 } else { -5.0 } / 1024.0;
            [reference[k][0] + a * frames[k].1[0], reference[k][1] + a * frames[k].1[1]]
        });
        let plain = r.refine_once(&patches, &displaced);
        r.fit.along_smoothing = 2;
        r.fit.error_by_smoothing_1024 = vec![(0, 11.3), (1, 11.2), (2, 11.1), (3, 11.15)];
        let smoothed = r.refine_once(&patches, &displaced);
        assert_ne!(plain, smoothed);
        let plain_moves: [[f32; 2]; NUM_NODES] = std::array::from_fn(|k| [plain[k][0] - displaced[k][0], plain[k][1] - displaced[k][1]]);
        let want = smooth_along(&plain_moves, &super::frames(&displaced), 2);
        for k in 0..NUM_NODES {
            let got = [smoothed[k][0] - displaced[k][0], smoothed[k][1] - displaced[k][1]];
            assert!((got[0] - want[k][0]).abs() < 1e-6 && (got[1] - want[k][1]).abs() < 1e-6, "node {k}");
        }
        assert_eq!(PatchRefinement::from_state_dict(&r.to_state_dict()).unwrap(), r);
        let mut model = crate::model::testing::small_model(2);
        model.set_patch_refinement(Some(r.clone()));
        assert!(model.describe().ends_with(" · patch refinement (moves along the contour averaged over ±2 nodes)"), "{}", model.describe());
        r.fit.along_smoothing = MAX_SMOOTHING + 1;
        let e = PatchRefinement::from_state_dict(&r.to_state_dict()).unwrap_err();
        assert!(e.contains("patch_refinement.fit") && e.contains("9 neighbours"), "{e}");
        // Older fits name none and are read without it.
        r.fit.along_smoothing = 0;
        r.fit.error_by_smoothing_1024.clear();
        let sd = r.to_state_dict();
        assert!(!sd.metadata["fit"].contains("smoothing"), "{}", sd.metadata["fit"]);
        assert_eq!(PatchRefinement::from_state_dict(&sd).unwrap().refine_once(&patches, &displaced), plain);
    }

    #[test]
    fn passes_are_added_while_each_gains_enough() {
        assert_eq!(choose_passes(&[]), 1);
        assert_eq!(choose_passes(&[12.27, 12.40, 12.50, 12.60]), 1, "a pass that loses");
        assert_eq!(choose_passes(&[12.27, 12.00, 11.98, 11.80]), 2, "stops at the first small gain");
        assert_eq!(choose_passes(&[12.27, 12.00, 11.90, 11.80]), 4);
        assert_eq!(choose_passes(&[14.0, 13.0, 12.0, 11.0, 10.0, 9.0]), MAX_PASSES);
    }

    #[test]
    fn the_passes_are_stored_checked_and_default_to_one_in_older_files() {
        let (_, _, mut r) = fitted_on_phantom(128);
        r.fit.passes = 3;
        r.fit.error_by_passes_1024 = vec![12.0, 11.5, 11.4, 11.39];
        assert_eq!(PatchRefinement::from_state_dict(&r.to_state_dict()).unwrap(), r);
        let mut model = crate::model::testing::small_model(2);
        model.set_patch_refinement(Some(r.clone()));
        assert!(model.describe().ends_with(" · patch refinement (3 passes)"), "{}", model.describe());
        for bad in [0, MAX_PASSES + 1] {
            r.fit.passes = bad;
            let e = PatchRefinement::from_state_dict(&r.to_state_dict()).unwrap_err();
            assert!(e.contains(&format!("{bad} passes")) && e.contains("patch_refinement.fit"), "{e}");
        }
        // A fit written before passes and scales were stored: one pass, the first two scales.
        let reference = model_frame_template();
        let patches = Patches::new(&phantom(128, &reference), 128, 128, &FIRST_SCALES);
        let mut acc = Accumulator::new(&FIRST_SCALES, 0);
        for seed in 0..MIN_IMAGES as u64 {
            acc.add(&patches, &reference, seed);
        }
        let mut sd = acc.solve(String::new()).unwrap().to_state_dict();
        assert_eq!(sd.tensors["weight"].shape, [NUM_NODES, 163, 2]);
        let old = r#"{"fitted_on":"x","images":10,"lambda":100.0,"displacement_sd_1024":6.0}"#;
        sd.metadata.insert("fit".into(), old.into());
        let loaded = PatchRefinement::from_state_dict(&sd).unwrap();
        assert_eq!((loaded.fit.passes, loaded.fit.error_by_passes_1024.len()), (1, 0));
        assert_eq!(loaded.fit.scales, FIRST_SCALES);
        let moved = loaded.refine(&loaded.patches(&phantom(128, &reference), 128, 128), &reference);
        assert!(mean_error_1024(&moved, &reference) < 2.0);
        // Such a fit beside weights of the three scales (or scales out of range) is refused.
        let mut sd = r.to_state_dict();
        sd.metadata.insert("fit".into(), old.into());
        let e = PatchRefinement::from_state_dict(&sd).unwrap_err();
        assert!(e.contains("expected [120, 163, 2] for 2 scales"), "{e}");
        let mut bad = r.clone();
        bad.fit.passes = 1;
        bad.fit.scales[2].sigma = 0.0;
        let e = PatchRefinement::from_state_dict(&bad.to_state_dict()).unwrap_err();
        assert!(e.contains("names scales") && e.contains("patch_refinement.fit"), "{e}");
    }

    #[test]
    fn round_trips_and_refuses_a_wrong_shape() {
        let (_, _, r) = fitted_on_phantom(128);
        assert_eq!(PatchRefinement::from_state_dict(&r.to_state_dict()).unwrap(), r);
        let mut sd = r.to_state_dict();
        sd.tensors.get_mut("weight").unwrap().shape = vec![NUM_NODES, inputs(SCALES.len()) - 1, 2];
        let e = PatchRefinement::from_state_dict(&sd).unwrap_err();
        assert!(e.contains("expected [120"), "{e}");
        let mut sd = r.to_state_dict();
        sd.tensors.get_mut("weight").unwrap().values[5] = f32::NAN;
        assert!(PatchRefinement::from_state_dict(&sd).unwrap_err().contains("not finite"));
        let e = Accumulator::default().solve(String::new()).unwrap_err();
        assert!(e.contains("at least"), "{e}");
    }

    #[test]
    fn reads_random_features_stored_with_it_and_refuses_them_missing_or_miscounted() {
        let (reference, patches, r) = fitted_on_phantom_with(128, patch_features::FEATURES);
        assert_eq!(r.fit.features, patch_features::FEATURES);
        assert_eq!(r.regression_inputs(), inputs(SCALES.len()) + patch_features::FEATURES);
        let sd = r.to_state_dict();
        assert_eq!(sd.tensors["weight"].shape, vec![NUM_NODES, inputs(SCALES.len()) + patch_features::FEATURES, 2]);
        assert_eq!(sd.tensors["features.projection"].shape, vec![patch_features::FEATURES, inputs(SCALES.len()) - 1]);
        let back = PatchRefinement::from_state_dict(&sd).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.refine(&patches, &reference), r.refine(&patches, &reference));
        let mut model = crate::model::testing::small_model(2);
        model.set_patch_refinement(Some(r.clone()));
        assert!(model.describe().ends_with(" · patch refinement (256 random features)"), "{}", model.describe());
        let mut missing = sd.clone();
        missing.tensors.remove("features.projection");
        let e = PatchRefinement::from_state_dict(&missing).unwrap_err();
        assert!(e.contains("`patch_refinement.features.projection` missing"), "{e}");
        let mut miscounted = r.clone();
        miscounted.fit.features = 255;
        let e = PatchRefinement::from_state_dict(&miscounted.to_state_dict()).unwrap_err();
        assert!(e.contains("names 255"), "{e}");
        // The features change what the regression reads: the same images fitted without them
        // place the nodes elsewhere.
        let mut acc = Accumulator::new(&SCALES, 0);
        for seed in 0..MIN_IMAGES as u64 {
            acc.add(&patches, &reference, seed);
        }
        let linear = acc.solve("phantom".into()).unwrap();
        assert_eq!(linear.fit.features, 0);
        assert!(linear.to_state_dict().tensors.keys().all(|k| !k.starts_with("features.")));
        assert_ne!(linear.refine(&patches, &reference), r.refine(&patches, &reference));
    }

    #[test]
    fn the_blur_is_a_normalised_gaussian_with_clamped_edges() {
        let side = 17;
        let img: Vec<f32> = (0..side * side).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect();
        let fast = blur(&img, side, 1.5);
        let r = 5i64;
        let g = |d: i64| (-(d * d) as f32 / (2.0 * 1.5 * 1.5)).exp();
        let norm: f32 = (-r..=r).map(g).sum();
        let at = |x: i64, y: i64| img[(y.clamp(0, side as i64 - 1) as usize) * side + x.clamp(0, side as i64 - 1) as usize];
        for (y, x) in [(0, 0), (3, 16), (8, 8), (16, 2)] {
            let direct: f32 =
                (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dx, dy))).map(|(dx, dy)| g(dx) * g(dy) * at(x + dx, y + dy)).sum::<f32>()
                    / (norm * norm);
            assert!((fast[y as usize * side + x as usize] - direct).abs() < 1e-5, "({x}, {y})");
        }
    }

    #[test]
    fn the_weights_file_carries_it_and_predict_applies_it_last() {
        use crate::model::{HybridGNet, Sampling, predict, testing};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refined.safetensors");
        let mut model = testing::small_model(2);
        let (_, _, r) = fitted_on_phantom_with(64, patch_features::FEATURES);
        let img = phantom(64, &model_frame_template());
        let sampling = Sampling::Random { samples: 3, seed: 1 };
        let plain = predict(&model, &img, 64, 64, sampling);
        model.set_patch_refinement(Some(r.clone()));
        model.save(&path).unwrap();
        let loaded = HybridGNet::load(&path, &testing::cpu()).unwrap();
        assert_eq!(loaded.patch_refinement(), Some(&r));
        let refined = predict(&loaded, &img, 64, 64, sampling);
        assert!(refined.patch_refined && !plain.patch_refined);
        assert_eq!(refined.std, plain.std, "the spread stays the latent one");
        let patches = r.patches(&img, 64, 64);
        let mut expected = plain.clone();
        r.apply(&mut expected, &patches);
        assert_eq!(refined.mean, expected.mean);
        assert_ne!(refined.mean, plain.mean);
        // A file whose refinement has the wrong shape is refused, naming the file and the part.
        let mut sd = loaded.state_dict();
        sd.tensors.get_mut("patch_refinement.weight").unwrap().shape = vec![NUM_NODES * r.regression_inputs(), 2];
        let bad = dir.path().join("bad.safetensors");
        sd.write_safetensors(&bad, &[]).unwrap();
        let e = HybridGNet::load(&bad, &testing::cpu()).unwrap_err().to_string();
        assert!(e.contains("bad.safetensors") && e.contains("patch_refinement.weight"), "{e}");
    }

    #[test]
    fn moves_are_bounded() {
        // A regression asking for moves far beyond the bound (huge weights on the constant): every
        // node moves exactly the bound, in the direction asked.
        let (reference, patches, mut r) = fitted_on_phantom(128);
        for k in 0..NUM_NODES {
            let n = r.regression_inputs();
            let constant = (k * n + n - 1) * 2;
            r.weight[constant] = 400.0;
            r.weight[constant + 1] = 300.0;
        }
        let moved = r.refine(&patches, &reference);
        for (a, b) in moved.iter().zip(&reference) {
            let d = (a[0] - b[0]).hypot(a[1] - b[1]) * 1024.0;
            assert!((d - MAX_MOVE_1024).abs() < 1e-2, "{d}");
        }
    }
}

