//! How far a node is likely to remain from the reference once placed, read from the image
//! around it.
//!
//! The node profile ([`super::calibration::NodeProfile`]) scales each node's usual error, the
//! same on every image, by how unsure the samples are. Some places are hard to place a node in
//! on one image and easy on the next (a costophrenic angle blunted or sharp, a heart border
//! faint behind the diaphragm). Per node, a ridge regression from the patches the refinement
//! reads, taken at the node as finally placed, to log(1 + error px at 1024) says so. It is
//! fitted by `calibrate` on the training images' own placements (each refined by a refinement
//! fitted without it), its ridge weight chosen by cross-validation over those images, and
//! stored with the refinement (`patch_refinement.error.`). A profile that reads it
//! ([`super::calibration::NodeProfile::typical_from_patches`]) uses it in place of the usual
//! error, and `calibrate` keeps that profile where it scores better out of fold: the pair file's
//! 0.355 → 0.375 on JSRT val; on the held-out run's test images 0.325 → 0.407 (`assets/README.md`,
//! "Expected error from the patches").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::patch_refinement::{Patches, Scale, add_outer_upper, frames, inputs, solve_ridge};
use super::weights::{StateDict, StateTensor};
use crate::landmarks::{NUM_NODES, Point};

/// Ridge weights tried, by cross-validation over the fitting images.
pub const LAMBDAS: [f64; 5] = [100.0, 300.0, 1000.0, 3000.0, 10000.0];
/// Largest expected error a regression may give, px at 1024 (exp of a far-off patch).
pub const MAX_ERROR_1024: f64 = 200.0;
/// Fewest images it is fitted on (each fold must determine 244 inputs per node).
pub const MIN_IMAGES: usize = 20;

/// How it was fitted (metadata `patch_refinement.error.fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFit {
    pub fitted_on: String,
    pub images: usize,
    pub lambda: f64,
    /// Out-of-fold pooled Pearson r of the expected error with the error on the fitting images,
    /// per ridge weight of [`LAMBDAS`].
    pub r_by_lambda: Vec<f64>,
    pub scales: Vec<Scale>,
}

/// Per node, a linear map from the patches at the placed node to log(1 + expected error).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchError {
    /// `NUM_NODES × inputs`, row-major.
    weight: Vec<f32>,
    pub fit: ErrorFit,
}

impl PatchError {
    /// Expected error of every node of `placed` (model frame), px at 1024.
    pub fn expected_1024(&self, patches: &Patches, placed: &[Point; NUM_NODES]) -> [f64; NUM_NODES] {
        let n = inputs(self.fit.scales.len());
        let frames = frames(placed);
        let mut x = vec![0.0f64; n];
        std::array::from_fn(|k| {
            patches.inputs(placed[k], frames[k].0, frames[k].1, &mut x);
            let w = &self.weight[k * n..(k + 1) * n];
            let log = x.iter().zip(w).map(|(a, &b)| a * b as f64).sum::<f64>();
            let e = log.exp_m1();
            if e.is_finite() { e.clamp(0.0, MAX_ERROR_1024) } else { MAX_ERROR_1024 }
        })
    }

    /// Tensor `weight` and metadata `fit` (stored by the refinement under `error.`).
    pub fn to_state_dict(&self) -> StateDict {
        let shape = vec![NUM_NODES, inputs(self.fit.scales.len())];
        let tensors = BTreeMap::from([("weight".to_string(), StateTensor { shape, values: self.weight.clone() })]);
        let fit = serde_json::to_string(&self.fit).expect("plain numbers and text");
        StateDict { source: Default::default(), tensors, metadata: BTreeMap::from([("fit".to_string(), fit)]) }
    }

    /// Read what [`Self::to_state_dict`] wrote, for patches at `scales` (the refinement's).
    pub fn from_state_dict(sd: &StateDict, scales: &[Scale]) -> Result<Self, String> {
        let key = "patch_refinement.error.";
        let t = sd.tensors.get("weight").ok_or_else(|| format!("tensor `{key}weight` missing"))?;
        let fit = sd.metadata.get("fit").ok_or_else(|| format!("metadata `{key}fit` missing"))?;
        let fit: ErrorFit = serde_json::from_str(fit).map_err(|e| format!("metadata `{key}fit`: {e}"))?;
        if fit.scales != scales {
            return Err(format!("metadata `{key}fit` names scales {:?}, the refinement's are {scales:?}", fit.scales));
        }
        let shape = [NUM_NODES, inputs(scales.len())];
        if t.shape != shape || t.values.len() != shape.iter().product::<usize>() {
            return Err(format!("`{key}weight` has shape {:?}, expected {shape:?}", t.shape));
        }
        if t.values.iter().any(|v| !v.is_finite()) {
            return Err(format!("`{key}weight` holds a value that is not finite"));
        }
        Ok(PatchError { weight: t.values.clone(), fit })
    }
}

/// One image for the fit: its patches, its landmarks as placed and its reference (model frame).
pub struct Placement<'a> {
    pub patches: &'a Patches,
    pub placed: [Point; NUM_NODES],
    pub reference: [Point; NUM_NODES],
}

/// Fit on `images` (at the patches' `scales`): the ridge weight of [`LAMBDAS`] with the best
/// out-of-fold pooled r over `folds` folds by image (`i % folds`), then every image.
pub fn fit(images: &[Placement], scales: &[Scale], folds: usize, fitted_on: String) -> Result<PatchError, String> {
    if images.len() < MIN_IMAGES.max(folds) {
        return Err(format!("an expected error from the patches needs at least {MIN_IMAGES} images, got {}", images.len()));
    }
    let n = inputs(scales.len());
    // Per image and node: inputs and log(1 + error).
    let rows: Vec<Vec<(Vec<f64>, f64)>> = images
        .iter()
        .map(|im| {
            let frames = frames(&im.placed);
            (0..NUM_NODES)
                .map(|k| {
                    let mut x = vec![0.0f64; n];
                    im.patches.inputs(im.placed[k], frames[k].0, frames[k].1, &mut x);
                    let d = (im.placed[k][0] - im.reference[k][0]).hypot(im.placed[k][1] - im.reference[k][1]) as f64 * 1024.0;
                    (x, d.ln_1p())
                })
                .collect()
        })
        .collect();
    // Normal equations per fold and node.
    let mut gram = vec![vec![0.0f64; NUM_NODES * n * n]; folds];
    let mut rhs = vec![vec![0.0f64; NUM_NODES * n]; folds];
    for (i, image) in rows.iter().enumerate() {
        let (g, r) = (&mut gram[i % folds], &mut rhs[i % folds]);
        for (k, (x, y)) in image.iter().enumerate() {
            add_outer_upper(&mut g[k * n * n..(k + 1) * n * n], x);
            r[k * n..(k + 1) * n].iter_mut().zip(x).for_each(|(r, xa)| *r += xa * y);
        }
    }
    let solve = |without: Option<usize>, lambda: f64| -> Result<Vec<f32>, String> {
        let mut weight = Vec::with_capacity(NUM_NODES * n);
        for k in 0..NUM_NODES {
            let mut a = vec![0.0f64; n * n];
            let mut b = vec![0.0f64; n];
            for f in (0..folds).filter(|&f| Some(f) != without) {
                a.iter_mut().zip(&gram[f][k * n * n..(k + 1) * n * n]).for_each(|(s, v)| *s += v);
                b.iter_mut().zip(&rhs[f][k * n..(k + 1) * n]).for_each(|(s, v)| *s += v);
            }
            let w = solve_ridge(a, b, n, 1, lambda).map_err(|e| format!("expected error, node {k}: {e}"))?;
            weight.extend(w.iter().map(|&v| v as f32));
        }
        Ok(weight)
    };
    let mut r_by_lambda = Vec::new();
    for &lambda in &LAMBDAS {
        let (mut expected, mut error) = (Vec::new(), Vec::new());
        for f in 0..folds {
            let w = solve(Some(f), lambda)?;
            for image in rows.iter().skip(f).step_by(folds) {
                for (k, (x, y)) in image.iter().enumerate() {
                    let log: f64 = x.iter().zip(&w[k * n..(k + 1) * n]).map(|(a, &b)| a * b as f64).sum();
                    expected.push(log.exp_m1().clamp(0.0, MAX_ERROR_1024));
                    error.push(y.exp_m1());
                }
            }
        }
        r_by_lambda.push(crate::metrics::correlation::pearson(&expected, &error).unwrap_or(f64::NEG_INFINITY));
    }
    let best = (0..LAMBDAS.len()).max_by(|&a, &b| r_by_lambda[a].total_cmp(&r_by_lambda[b])).expect("ridge weights");
    let weight = solve(None, LAMBDAS[best])?;
    let fit = ErrorFit { fitted_on, images: images.len(), lambda: LAMBDAS[best], r_by_lambda, scales: scales.to_vec() };
    Ok(PatchError { weight, fit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::patch_refinement::SCALES;

    /// A flat grey image with a bright square about the nodes listed in `sharp`: there the
    /// patches see an edge, elsewhere none.
    fn image(side: usize, shape: &[Point; NUM_NODES], sharp: &[usize]) -> Vec<f32> {
        let mut img = vec![0.3f32; side * side];
        for &k in sharp {
            let (cx, cy) = ((shape[k][0] * side as f32) as i64, (shape[k][1] * side as f32) as i64);
            for y in (cy - 3).max(0)..(cy + 4).min(side as i64) {
                for x in (cx - 3).max(0)..(cx + 4).min(side as i64) {
                    img[y as usize * side + x as usize] = 0.9;
                }
            }
        }
        img
    }

    /// [`MIN_IMAGES`] synthetic placements and their patches (see [`image`]).
    fn squares(side: usize) -> (Vec<(Patches, [Point; NUM_NODES], Vec<usize>)>, [Point; NUM_NODES]) {
        let reference = crate::landmarks::template().map(|q| [q[0] / 1024.0, q[1] / 1024.0]);
        let made = (0..MIN_IMAGES + 4).map(|seed| square_image(side, &reference, seed)).collect();
        (made, reference)
    }

    /// On image `seed` a node sits 2 px off where the image shows a mark under it and 20 px
    /// off where it shows none; which nodes are marked changes from image to image.
    fn square_image(side: usize, reference: &[Point; NUM_NODES], seed: usize) -> (Patches, [Point; NUM_NODES], Vec<usize>) {
        let sharp: Vec<usize> = (0..NUM_NODES).filter(|k| (k * 7 + seed * 13 + (k * seed) % 11) % 5 < 2).collect();
        let placed: [Point; NUM_NODES] = std::array::from_fn(|k| {
            let off = if sharp.contains(&k) { 2.0 } else { 20.0 } / 1024.0;
            [reference[k][0] + off, reference[k][1]]
        });
        let patches = Patches::new(&image(side, &placed, &sharp), side as u32, side as u32, &SCALES);
        (patches, placed, sharp)
    }

    #[test]
    fn predictions_carry_it_and_a_profile_reading_it_scales_it() {
        use crate::model::calibration::{Calibration, NodeProfile};
        use crate::model::{HybridGNet, PatchRefinement, Sampling, predict, testing};
        let side = 128;
        let (made, reference) = squares(side);
        let images: Vec<Placement> = made.iter().map(|(patches, placed, _)| Placement { patches, placed: *placed, reference }).collect();
        let mut refinement = PatchRefinement::example();
        refinement.error = Some(fit(&images, &SCALES, 5, "squares".into()).unwrap());
        let mut model = testing::small_model(2);
        model.set_patch_refinement(Some(refinement.clone()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("with_error.safetensors");
        model.save(&path).unwrap();
        let mut loaded = HybridGNet::load(&path, &testing::cpu()).unwrap();
        assert_eq!(loaded.patch_refinement(), Some(&refinement), "stored and read back with the refinement");
        let grey = image(side, &reference, &[3, 50, 100]);
        let sampling = Sampling::Random { samples: 3, seed: 1 };
        let p = predict(&loaded, &grey, side as u32, side as u32, sampling);
        let carried = p.patch_error.clone().expect("the refinement's expected error");
        let lb = p.letterbox;
        let patches = refinement.patches(&grey, side as u32, side as u32);
        let expected = refinement.error.as_ref().unwrap().expected_1024(&patches, &p.mean.map(|q| lb.to_model(q)));
        for (c, e) in carried.iter().zip(&expected) {
            assert!((c - lb.scale_to_image([*e as f32 / 1024.0; 2])[0]).abs() < 1e-4, "{c} {e}");
        }
        // A node profile reading it: the expected error is the patches' (one scale, the spread
        // at its usual value, exponents 0), where one that does not gives the usual error.
        let profile = |typical_from_patches| NodeProfile {
            typical_error: vec![10.0; NUM_NODES],
            typical_std: vec![1.0; NUM_NODES],
            node_exponent: 0.0,
            image_exponent: 0.0,
            measured_on: "squares".into(),
            typical_from_patches,
        };
        let calibration = |t| Calibration {
            method: "node profile".into(),
            fitted_on: "squares".into(),
            organ_maps: vec![crate::metrics::isotonic::MonotoneMap::identity(); 3],
            node_factors: vec![1.0; NUM_NODES],
            scale_top_1024: 40.0,
            reliability: Vec::new(),
            profile: Some(profile(t)),
            ood_score_1024: None,
            std_of: Default::default(),
        };
        loaded.set_calibration(Some(calibration(true)));
        let reads = predict(&loaded, &grey, side as u32, side as u32, sampling);
        let got = reads.calibrated.as_ref().unwrap().expected_error.clone();
        for (g, c) in got.iter().zip(&carried) {
            assert!((g - c.max(0.5 * lb.scale_to_image([1.0 / 1024.0; 2])[0])).abs() < 1e-3, "{g} {c}");
        }
        loaded.set_calibration(Some(calibration(false)));
        let usual = predict(&loaded, &grey, side as u32, side as u32, sampling);
        let at_1024 = lb.scale_to_image([10.0 / 1024.0; 2])[0];
        assert!(usual.calibrated.unwrap().expected_error.iter().all(|e| (e - at_1024).abs() < 1e-3));
    }

    #[test]
    fn learns_which_surroundings_go_with_larger_errors_and_round_trips() {
        // The fit tells marked from unmarked nodes apart on an image it did not see.
        let side = 256;
        let (made, reference) = squares(side);
        let images: Vec<Placement> =
            made.iter().take(MIN_IMAGES).map(|(patches, placed, _)| Placement { patches, placed: *placed, reference }).collect();
        let e = fit(&images, &SCALES, 5, "squares".into()).unwrap();
        assert_eq!(e.fit.r_by_lambda.len(), LAMBDAS.len());
        assert!(e.fit.r_by_lambda.iter().cloned().fold(f64::MIN, f64::max) > 0.8, "{:?}", e.fit.r_by_lambda);
        let (patches, placed, sharp) = &made[MIN_IMAGES + 3];
        let (patches, placed) = (patches, *placed);
        let expected = e.expected_1024(patches, &placed);
        let mean = |pick: bool| {
            let v: Vec<f64> = (0..NUM_NODES).filter(|k| sharp.contains(k) == pick).map(|k| expected[k]).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(true) < 8.0 && mean(false) > 12.0, "marked {} unmarked {}", mean(true), mean(false));
        // Round trip, and the errors a stored one gives.
        let back = PatchError::from_state_dict(&e.to_state_dict(), &SCALES).unwrap();
        assert_eq!(back, e);
        let e2 = PatchError::from_state_dict(&e.to_state_dict(), &SCALES[..2]).unwrap_err();
        assert!(e2.contains("names scales"), "{e2}");
        let mut sd = e.to_state_dict();
        sd.tensors.get_mut("weight").unwrap().shape = vec![NUM_NODES, 12];
        assert!(PatchError::from_state_dict(&sd, &SCALES).unwrap_err().contains("patch_refinement.error.weight"));
        // Too few images: refused.
        assert!(fit(&images[..5], &SCALES, 5, String::new()).unwrap_err().contains("at least"));
    }
}
