//! Random ReLU features of a node's patches, which the patch refinement's ridge regression reads
//! beside the patches themselves (stop 31).
//!
//! A linear map of the patch finds an edge where it sits in the patch, but not "the corner of
//! this outline" or "the brighter of two edges": those need products and thresholds of the
//! samples. A fixed random projection of the standardised patch followed by a ReLU gives the
//! regression such nonlinear inputs while the fit stays closed-form (ridge on the normal
//! equations, seconds). Measured on JSRT with the shipped file (`assets/README.md`, "Random
//! features of the patches"): out-of-fold error on the training images 11.42 → 11.29 px and
//! val 13.10 → 12.87 px, most of it at the anchors the contour spacing places the other nodes
//! from. A small trained MLP on the same inputs did about as well on one pass (val 13.90
//! against 13.94 px with 1024 features) and needs minutes of training per fit.
//!
//! The projection is drawn once when a refinement is fitted and stored with it, so a weights
//! file means the same on any build.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, Uniform};

use super::weights::{StateDict, StateTensor};

/// Features a refinement fitted today adds to every node's inputs (512 measured no better:
/// out-of-fold 10.41 against 10.44 px, for three times the normal equations' memory).
pub const FEATURES: usize = 256;
/// Most features a stored refinement may name.
pub const MAX_FEATURES: usize = 4096;
/// Scale of the projection: each feature's pre-activation has about this sd over a patch of
/// unit RMS, so most features are in their nonlinear range (1 gave val 14.00 against 13.98 px
/// after one pass at 256 features).
const GAIN: f64 = 2.0;
const SEED: u64 = 7;

/// `count` features of `patch_inputs` patch samples (the regression's inputs without their
/// constant): `max(0, projection · x + bias)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFeatures {
    /// `count × patch_inputs`, row-major.
    projection: Vec<f32>,
    bias: Vec<f32>,
    patch_inputs: usize,
}

impl PatchFeatures {
    /// A fresh draw: projection entries normal with sd `GAIN / √patch_inputs`, biases uniform
    /// in [−1, 1], from a fixed seed.
    pub fn random(count: usize, patch_inputs: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(SEED);
        let normal = Normal::new(0.0, GAIN / (patch_inputs.max(1) as f64).sqrt()).expect("positive sd");
        let projection = (0..count * patch_inputs).map(|_| normal.sample(&mut rng) as f32).collect();
        let uniform = Uniform::new(-1.0f32, 1.0).expect("a non-empty range");
        let bias = (0..count).map(|_| uniform.sample(&mut rng)).collect();
        PatchFeatures { projection, bias, patch_inputs }
    }

    pub fn count(&self) -> usize {
        self.bias.len()
    }

    /// The regression's inputs: the features, then `x` (the patch samples and the constant
    /// last, which stays last so that the ridge leaves it unpenalised). `out` holds
    /// `count() + x.len()`.
    pub fn apply(&self, x: &[f64], out: &mut [f64]) {
        debug_assert_eq!(x.len(), self.patch_inputs + 1, "patch samples and the constant");
        debug_assert_eq!(out.len(), self.count() + x.len());
        let n = self.patch_inputs;
        // f32 for the projection: the patches are standardised, and four lanes per instruction
        // keep a prediction's refined samples cheap.
        let xs: Vec<f32> = x[..n].iter().map(|&v| v as f32).collect();
        for (j, (row, b)) in self.projection.chunks_exact(n).zip(&self.bias).enumerate() {
            out[j] = (dot(row, &xs) + b).max(0.0) as f64;
        }
        out[self.count()..].copy_from_slice(x);
    }

    /// The tensors stored under the refinement's `features.` (without it).
    pub fn to_state_dict(&self) -> StateDict {
        let tensors = BTreeMap::from([
            ("projection".to_string(), StateTensor { shape: vec![self.count(), self.patch_inputs], values: self.projection.clone() }),
            ("bias".to_string(), StateTensor { shape: vec![self.count()], values: self.bias.clone() }),
        ]);
        StateDict { source: Default::default(), tensors, metadata: BTreeMap::new() }
    }

    /// Read what [`Self::to_state_dict`] wrote, for patches of `patch_inputs` samples.
    pub fn from_state_dict(sd: &StateDict, patch_inputs: usize, prefix: &str) -> Result<Self, String> {
        let get = |name: &str| sd.tensors.get(name).ok_or_else(|| format!("tensor `{prefix}{name}` missing"));
        let (projection, bias) = (get("projection")?, get("bias")?);
        let count = bias.values.len();
        if bias.shape != [count] || !(1..=MAX_FEATURES).contains(&count) {
            return Err(format!("`{prefix}bias` has shape {:?}, expected [1 to {MAX_FEATURES}]", bias.shape));
        }
        if projection.shape != [count, patch_inputs] || projection.values.len() != count * patch_inputs {
            return Err(format!("`{prefix}projection` has shape {:?}, expected {:?}", projection.shape, [count, patch_inputs]));
        }
        if projection.values.iter().chain(&bias.values).any(|v| !v.is_finite()) {
            return Err(format!("`{prefix}projection` or `{prefix}bias` holds a value that is not finite"));
        }
        Ok(PatchFeatures { projection: projection.values.clone(), bias: bias.values.clone(), patch_inputs })
    }
}

/// `a · b` in eight independent partial sums, which the compiler keeps in vector registers (a
/// single running sum must be added in order, one lane at a time). `infer` of the pair file,
/// whose colours refine every sample, over 5 images on the 2-core CPU: 8.0–8.4 s with one
/// running sum, 6.4–6.7 s with eight (the linear refinement before stop 31: 5.3–5.9 s).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_rectified_projections_followed_by_the_inputs() {
        let f = PatchFeatures::random(8, 3);
        let x = [0.5, -1.0, 2.0, 1.0];
        let mut out = [0.0; 12];
        f.apply(&x, &mut out);
        for j in 0..8 {
            let w = &f.projection[j * 3..j * 3 + 3];
            let want = (w[0] as f64 * 0.5 - w[1] as f64 + 2.0 * w[2] as f64 + f.bias[j] as f64).max(0.0);
            assert!((out[j] - want).abs() < 1e-5, "feature {j}: {} vs {want}", out[j]);
        }
        assert_eq!(&out[8..], &x);
        assert!(out[..8].iter().any(|&v| v > 0.0) && out[..8].iter().any(|&v| v == 0.0), "some features active, some not: {out:?}");
        // The same draw every time, so a refit reads the same features.
        assert_eq!(PatchFeatures::random(8, 3), f);
    }

    #[test]
    fn round_trips_and_refuses_wrong_shapes() {
        let f = PatchFeatures::random(5, 7);
        let sd = f.to_state_dict();
        assert_eq!(PatchFeatures::from_state_dict(&sd, 7, "p.").unwrap(), f);
        let e = PatchFeatures::from_state_dict(&sd, 6, "p.").unwrap_err();
        assert!(e.contains("`p.projection` has shape [5, 7], expected [5, 6]"), "{e}");
        let mut bad = sd.clone();
        bad.tensors.get_mut("bias").unwrap().values[2] = f32::NAN;
        assert!(PatchFeatures::from_state_dict(&bad, 7, "p.").unwrap_err().contains("not finite"));
        let mut missing = sd;
        missing.tensors.remove("bias");
        assert!(PatchFeatures::from_state_dict(&missing, 7, "p.").unwrap_err().contains("`p.bias` missing"));
    }
}
