//! A linear correction of the placed landmarks, fitted in closed form on the training images.
//!
//! The models trained here under-fit: on their own training images they place nodes about as
//! far off as on new ones (shipped model: 16.7 px on train, 18.6 on val), and much of that
//! error is shared across images and nodes: whole stretches of contour sit consistently too
//! high, too narrow, too far along. A ridge regression from the 240 placed coordinates to the
//! 240 corrections, fitted on the model's predictions of its training images, removes that part
//! (`assets/README.md`, "Shape correction": 18.6 → 16.1 px on val, and on a held-out test split
//! 20.4 → 17.3 px with the regression fitted on the held-out run's own training images).
//!
//! It works in each placed shape's own frame (centred on its centroid, scaled to unit RMS
//! radius), so it depends neither on the image's size nor on where the chest sits in it: a
//! correction in fixed image coordinates learns JSRT's framing, and on val shapes moved and
//! shrunk as a wider framing would (zoom 0.85) it gained nothing, where this one keeps the whole
//! gain. It moves a prediction after the test-time warps and the companions are averaged, and
//! before the patch refinement ([`super::patch_refinement`]). The std stays the model's latent
//! spread.
//! `calibrate` fits it (the ridge weight chosen by cross-validation over the training images)
//! and stores it in the weights file under [`PREFIX`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::uncertainty::Prediction;
use super::weights::{StateDict, StateTensor};
use crate::landmarks::{NUM_NODES, Point};

/// Coordinates of one shape: x and y of every node.
pub const DIM: usize = NUM_NODES * 2;
/// Key prefix of the correction's tensors (`mean`, `offset`, `weight`) and metadata (`fit`).
pub const PREFIX: &str = "shape_correction.";
/// Ridge weights tried by [`cross_validate`], for shapes of unit RMS radius.
pub const LAMBDAS: [f64; 7] = [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0];
/// Fewest images a correction is fitted on: fewer cannot say anything about 240 coordinates.
pub const MIN_IMAGES: usize = 20;
/// Largest shift the correction may give a node, model frame (a fifth of the image): a
/// prediction it would move further is far outside what it was fitted on, and is left alone.
pub const MAX_SHIFT: f32 = 0.2;

/// `corrected = placed + offset + (placed − mean) · weight`, model frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeCorrection {
    mean: Vec<f32>,
    offset: Vec<f32>,
    /// `DIM × DIM`, row-major: row i holds input coordinate i's contribution to every output.
    weight: Vec<f32>,
    pub fit: FitInfo,
}

/// [`FitInfo::frame`] of the corrections this code makes and reads.
pub const FRAME: &str = "shape centroid, RMS radius";

/// How a correction was fitted (the weights file's `shape_correction.fit` metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitInfo {
    /// The frame the regression works in ([`FRAME`]); a file naming another is refused.
    pub frame: String,
    /// Ridge weight, model-frame units.
    pub lambda: f64,
    /// The images and predictions it was fitted on, in words.
    pub fitted_on: String,
    /// Mean node error before and after, out of fold, px at 1024 (the letterboxed side), when
    /// it was cross-validated.
    #[serde(default)]
    pub error_before_1024: Option<f64>,
    #[serde(default)]
    pub error_after_1024: Option<f64>,
}

/// One shape as a flat vector (x0, y0, x1, y1, …).
pub fn flatten(points: &[Point; NUM_NODES]) -> [f64; DIM] {
    std::array::from_fn(|i| points[i / 2][i % 2] as f64)
}

/// The inverse of [`flatten`].
pub fn unflatten(shape: &[f64; DIM]) -> [Point; NUM_NODES] {
    std::array::from_fn(|k| [shape[2 * k] as f32, shape[2 * k + 1] as f32])
}

/// A shape's own frame: its centroid and its RMS distance from it.
#[derive(Debug, Clone, Copy)]
struct Frame {
    centre: [f64; 2],
    radius: f64,
}

impl Frame {
    /// `None` for a shape without extent (every node in one place) or with a value that is not
    /// finite.
    fn of(shape: &[f64; DIM]) -> Option<Frame> {
        let n = NUM_NODES as f64;
        let centre = [0, 1].map(|axis| (0..NUM_NODES).map(|k| shape[2 * k + axis]).sum::<f64>() / n);
        let radius =
            ((0..NUM_NODES).map(|k| (shape[2 * k] - centre[0]).powi(2) + (shape[2 * k + 1] - centre[1]).powi(2)).sum::<f64>() / n)
                .sqrt();
        (radius.is_finite() && radius > 1e-6).then_some(Frame { centre, radius })
    }

    /// The shape in this frame: centred and scaled to unit RMS radius.
    fn normalise(&self, shape: &[f64; DIM]) -> [f64; DIM] {
        std::array::from_fn(|i| (shape[i] - self.centre[i % 2]) / self.radius)
    }
}

impl ShapeCorrection {
    /// Ridge regression, weight `lambda`, of the corrections `truth − placed` on the placed
    /// shapes (both model frame), each first expressed in the placed shape's own frame (centred,
    /// scaled to unit RMS radius): so the correction moves with the shape when a patient stands
    /// elsewhere in the image or the image is framed wider, instead of assuming JSRT's framing.
    pub fn fit(placed: &[[f64; DIM]], truth: &[[f64; DIM]], lambda: f64, fitted_on: String) -> Result<Self, String> {
        let n = placed.len();
        if n < MIN_IMAGES || truth.len() != n {
            return Err(format!("a shape correction needs at least {MIN_IMAGES} annotated images, got {n}"));
        }
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(format!("ridge weight {lambda}: must be positive"));
        }
        let mut xs = Vec::with_capacity(n);
        let mut ys = Vec::with_capacity(n);
        for (i, (p, t)) in placed.iter().zip(truth).enumerate() {
            let f = Frame::of(p).ok_or_else(|| format!("placed shape {i} has no extent"))?;
            xs.push(f.normalise(p));
            ys.push(std::array::from_fn::<f64, DIM, _>(|k| (t[k] - p[k]) / f.radius));
        }
        let mean_of = |rows: &[[f64; DIM]]| {
            let mut m = [0.0; DIM];
            for r in rows {
                m.iter_mut().zip(r).for_each(|(a, b)| *a += b / n as f64);
            }
            m
        };
        let (mean, offset) = (mean_of(&xs), mean_of(&ys));
        // Normal equations (XᵀX + λI) W = XᵀY on the centred shapes X and corrections Y.
        let mut gram = vec![0.0; DIM * DIM];
        let mut rhs = vec![0.0; DIM * DIM];
        for (x, y) in xs.iter().zip(&ys) {
            let x: [f64; DIM] = std::array::from_fn(|i| x[i] - mean[i]);
            let y: [f64; DIM] = std::array::from_fn(|i| y[i] - offset[i]);
            for i in 0..DIM {
                for j in 0..DIM {
                    gram[i * DIM + j] += x[i] * x[j];
                    rhs[i * DIM + j] += x[i] * y[j];
                }
            }
        }
        (0..DIM).for_each(|i| gram[i * DIM + i] += lambda);
        let weight = solve_spd(gram, rhs, DIM, DIM).map_err(|_| "the placed shapes do not determine a correction (singular system)".to_string())?;
        let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let fit = FitInfo { frame: FRAME.into(), lambda, fitted_on, error_before_1024: None, error_after_1024: None };
        Ok(ShapeCorrection { mean: to32(&mean), offset: to32(&offset), weight: to32(&weight), fit })
    }

    /// The corrected shape, model frame; `None` when it would move a node further than
    /// [`MAX_SHIFT`] (a shape unlike any it was fitted on) or the shape has no extent.
    pub fn correct(&self, placed: &[Point; NUM_NODES]) -> Option<[Point; NUM_NODES]> {
        let flat = flatten(placed);
        let frame = Frame::of(&flat)?;
        let x = frame.normalise(&flat);
        let mut shift: Vec<f64> = self.offset.iter().map(|&v| v as f64).collect();
        for (i, xi) in x.iter().enumerate() {
            let d = xi - self.mean[i] as f64;
            let row = &self.weight[i * DIM..(i + 1) * DIM];
            shift.iter_mut().zip(row).for_each(|(s, &w)| *s += d * w as f64);
        }
        let moved: [Point; NUM_NODES] =
            std::array::from_fn(|n| [(shift[2 * n] * frame.radius) as f32, (shift[2 * n + 1] * frame.radius) as f32]);
        let far = |d: &Point| d[0].hypot(d[1]) > MAX_SHIFT || !d[0].is_finite() || !d[1].is_finite();
        if moved.iter().any(far) {
            return None;
        }
        Some(std::array::from_fn(|n| [placed[n][0] + moved[n][0], placed[n][1] + moved[n][1]]))
    }

    /// Correct a prediction's mean landmarks (image pixels, through its letterbox) and mark it
    /// [`Prediction::shape_corrected`]; its std, σ² and calibration stay. A shape
    /// [`Self::correct`] leaves alone stays unmarked.
    pub fn apply(&self, p: &mut Prediction) {
        let lb = p.letterbox;
        if let Some(q) = self.correct(&p.mean.map(|q| lb.to_model(q))) {
            p.mean = q.map(|q| lb.to_image(q));
            p.shape_corrected = true;
        }
    }

    /// The tensors and metadata stored under [`PREFIX`] (without it).
    pub fn to_state_dict(&self) -> StateDict {
        let t = |shape: Vec<usize>, values: &[f32]| StateTensor { shape, values: values.to_vec() };
        let tensors = BTreeMap::from([
            ("mean".to_string(), t(vec![DIM], &self.mean)),
            ("offset".to_string(), t(vec![DIM], &self.offset)),
            ("weight".to_string(), t(vec![DIM, DIM], &self.weight)),
        ]);
        let fit = serde_json::to_string(&self.fit).expect("plain numbers and text");
        StateDict { source: Default::default(), tensors, metadata: BTreeMap::from([("fit".to_string(), fit)]) }
    }

    /// Read what [`Self::to_state_dict`] wrote; the error says which part is wrong.
    pub fn from_state_dict(sd: &StateDict) -> Result<Self, String> {
        let take = |key: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let t = sd.tensors.get(key).ok_or_else(|| format!("shape correction: tensor `{PREFIX}{key}` missing"))?;
            if t.shape != shape || t.values.len() != shape.iter().product::<usize>() {
                return Err(format!("shape correction: `{PREFIX}{key}` has shape {:?}, expected {shape:?}", t.shape));
            }
            if t.values.iter().any(|v| !v.is_finite()) {
                return Err(format!("shape correction: `{PREFIX}{key}` holds a value that is not finite"));
            }
            Ok(t.values.clone())
        };
        let extra: Vec<&String> = sd.tensors.keys().filter(|k| !["mean", "offset", "weight"].contains(&k.as_str())).collect();
        if let Some(k) = extra.first() {
            return Err(format!("shape correction: unexpected tensor `{PREFIX}{k}`"));
        }
        let fit_text = sd.metadata.get("fit").ok_or_else(|| format!("shape correction: metadata `{PREFIX}fit` missing"))?;
        let fit: FitInfo =
            serde_json::from_str(fit_text).map_err(|e| format!("shape correction: metadata `{PREFIX}fit`: {e}"))?;
        if fit.frame != FRAME {
            return Err(format!("shape correction: frame {:?}, this version reads {FRAME:?}", fit.frame));
        }
        Ok(ShapeCorrection { mean: take("mean", &[DIM])?, offset: take("offset", &[DIM])?, weight: take("weight", &[DIM, DIM])?, fit })
    }

    /// A correction fitted on jittered copies of the template shape (2 % wider truths): for
    /// benchmarks and fuzzing seeds, where what it learnt does not matter.
    pub fn example() -> ShapeCorrection {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let base = crate::landmarks::template();
        let (placed, truth): (Vec<_>, Vec<_>) = (0..40)
            .map(|_| {
                let p: [f64; DIM] = std::array::from_fn(|i| base[i / 2][i % 2] as f64 / 1024.0 + rng.random_range(-0.01..0.01));
                let t: [f64; DIM] = std::array::from_fn(|i| p[i] * 1.02 + rng.random_range(-0.002..0.002));
                (p, t)
            })
            .unzip();
        ShapeCorrection::fit(&placed, &truth, 0.1, "example".into()).expect("40 jittered shapes determine a correction")
    }
}

/// Solve `a · x = b` for a symmetric positive definite `a` (`n × n`, row-major) and `cols`
/// right-hand sides (the columns of `b`, `n × cols`), by Cholesky factorisation.
pub(super) fn solve_spd(mut a: Vec<f64>, mut b: Vec<f64>, n: usize, cols: usize) -> Result<Vec<f64>, String> {
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| a[j * n + k] * a[j * n + k]).sum::<f64>();
        if !(d > 0.0 && d.is_finite()) {
            return Err("the data do not determine a fit (singular system)".into());
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| a[i * n + k] * a[j * n + k]).sum::<f64>();
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then Lᵀ x = y, every column at once.
    for i in 0..n {
        for k in 0..i {
            let l = a[i * n + k];
            for c in 0..cols {
                b[i * cols + c] -= l * b[k * cols + c];
            }
        }
        let d = a[i * n + i];
        (0..cols).for_each(|c| b[i * cols + c] /= d);
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            let l = a[k * n + i];
            for c in 0..cols {
                b[i * cols + c] -= l * b[k * cols + c];
            }
        }
        let d = a[i * n + i];
        (0..cols).for_each(|c| b[i * cols + c] /= d);
    }
    Ok(b)
}

/// Mean node distance between two shapes, model frame.
pub fn mean_distance(a: &[f64; DIM], b: &[f64; DIM]) -> f64 {
    (0..NUM_NODES).map(|n| (a[2 * n] - b[2 * n]).hypot(a[2 * n + 1] - b[2 * n + 1])).sum::<f64>() / NUM_NODES as f64
}

/// What [`cross_validate`] found.
pub struct CrossValidated {
    /// Fitted on every image with the best ridge weight.
    pub correction: ShapeCorrection,
    /// Per ridge weight: mean node error out of fold, px at 1024.
    pub errors_1024: Vec<(f64, f64)>,
    /// Every image's shape corrected by the fold that left it out (best ridge weight), model
    /// frame: honest errors on the images the correction was fitted on.
    pub out_of_fold: Vec<[f64; DIM]>,
}

/// Choose the ridge weight among [`LAMBDAS`] by `folds`-fold cross-validation over the images
/// (image i in fold i mod folds), then fit on all of them.
pub fn cross_validate(placed: &[[f64; DIM]], truth: &[[f64; DIM]], folds: usize, fitted_on: String) -> Result<CrossValidated, String> {
    let folds = folds.clamp(2, placed.len().max(2));
    let n = placed.len();
    // Every fold's fit must see MIN_IMAGES images.
    if n - n.div_ceil(folds) < MIN_IMAGES {
        return Err(format!("a shape correction cross-validated over {folds} folds needs more than {n} annotated images"));
    }
    let mut best: Option<(f64, f64, Vec<[f64; DIM]>)> = None;
    let mut errors_1024 = Vec::new();
    for &lambda in &LAMBDAS {
        let mut oof = placed.to_vec();
        for f in 0..folds {
            let keep = |i: &usize| i % folds != f;
            let (p, t): (Vec<_>, Vec<_>) = (0..n).filter(keep).map(|i| (placed[i], truth[i])).unzip();
            let c = ShapeCorrection::fit(&p, &t, lambda, String::new())?;
            for i in (0..n).filter(|i| i % folds == f) {
                if let Some(q) = c.correct(&unflatten(&placed[i])) {
                    oof[i] = flatten(&q);
                }
            }
        }
        let e = oof.iter().zip(truth).map(|(o, t)| mean_distance(o, t)).sum::<f64>() / n as f64 * 1024.0;
        errors_1024.push((lambda, e));
        if best.as_ref().is_none_or(|b| e < b.1) {
            best = Some((lambda, e, oof));
        }
    }
    let (lambda, after, out_of_fold) = best.expect("LAMBDAS is not empty");
    let before = placed.iter().zip(truth).map(|(p, t)| mean_distance(p, t)).sum::<f64>() / n as f64 * 1024.0;
    let mut correction = ShapeCorrection::fit(placed, truth, lambda, fitted_on)?;
    correction.fit.error_before_1024 = Some(before);
    correction.fit.error_after_1024 = Some(after);
    Ok(CrossValidated { correction, errors_1024, out_of_fold })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Shapes around a base shape, stretched, scaled and placed at random, and "truths" that
    /// differ from them by a law linear in the shape's own frame (every x 8 % further from the
    /// centroid, everything 3 % of the radius lower) plus noise.
    fn shapes(n: usize, seed: u64) -> (Vec<[f64; DIM]>, Vec<[f64; DIM]>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let base: [f64; DIM] = std::array::from_fn(|i| ((i * 37 % 101) as f64 / 101.0) - 0.5);
        (0..n)
            .map(|_| {
                let stretch = [rng.random_range(0.9..1.1), rng.random_range(0.9..1.1)];
                let centre = [rng.random_range(0.45..0.55), rng.random_range(0.45..0.55)];
                let scale: f64 = rng.random_range(0.8..1.2);
                let placed: [f64; DIM] = std::array::from_fn(|i| {
                    centre[i % 2] + scale * base[i] * stretch[i % 2] + rng.random_range(-0.002..0.002)
                });
                let f = Frame::of(&placed).unwrap();
                let truth: [f64; DIM] = std::array::from_fn(|i| {
                    let law = if i.is_multiple_of(2) { 0.08 * (placed[i] - f.centre[0]) } else { 0.03 * f.radius };
                    placed[i] + law + rng.random_range(-0.001..0.001)
                });
                (placed, truth)
            })
            .unzip()
    }

    #[test]
    fn a_systematic_linear_error_is_learned_on_some_shapes_and_removed_on_others() {
        let (p, t) = shapes(60, 1);
        let cv = cross_validate(&p, &t, 5, "synthetic".into()).unwrap();
        let c = &cv.correction;
        assert!(c.fit.error_after_1024.unwrap() < 0.3 * c.fit.error_before_1024.unwrap(), "{:?}", c.fit);
        assert_eq!(cv.errors_1024.len(), LAMBDAS.len());
        // New shapes from the same law: the correction brings them near their truths.
        let (q, u) = shapes(10, 2);
        let (mut before, mut after) = (0.0, 0.0);
        for (q, u) in q.iter().zip(&u) {
            before += mean_distance(q, u);
            after += mean_distance(&flatten(&c.correct(&unflatten(q)).unwrap()), u);
        }
        assert!(after < 0.3 * before, "{after} vs {before}");
        // The correction moves with the shape: the same shape shifted and shrunk is corrected
        // by the same shift and shrink.
        let p = unflatten(&q[0]);
        let moved: [Point; NUM_NODES] = std::array::from_fn(|k| [0.8 * p[k][0] + 0.07, 0.8 * p[k][1] - 0.05]);
        let (a, b) = (c.correct(&p).unwrap(), c.correct(&moved).unwrap());
        for k in 0..NUM_NODES {
            assert!((0.8 * a[k][0] + 0.07 - b[k][0]).abs() < 1e-5 && (0.8 * a[k][1] - 0.05 - b[k][1]).abs() < 1e-5, "node {k}");
        }
        // A shape far from anything seen is left alone rather than thrown further.
        let wild: [Point; NUM_NODES] = std::array::from_fn(|k| [(k % 7) as f32 * 3.0, -(k as f32)]);
        assert!(c.correct(&wild).is_none());
    }

    #[test]
    fn the_solver_inverts_a_known_system() {
        // a = I·2 + 0.5 on every entry (positive definite), b = a · x for a known x.
        let a: Vec<f64> = (0..DIM * DIM).map(|k| if k / DIM == k % DIM { 2.5 } else { 0.5 }).collect();
        let x: Vec<f64> = (0..DIM * DIM).map(|k| ((k * 31) % 17) as f64 - 8.0).collect();
        let mut b = vec![0.0; DIM * DIM];
        for i in 0..DIM {
            for k in 0..DIM {
                for c in 0..DIM {
                    b[i * DIM + c] += a[i * DIM + k] * x[k * DIM + c];
                }
            }
        }
        let got = solve_spd(a, b, DIM, DIM).unwrap();
        assert!(got.iter().zip(&x).all(|(g, x)| (g - x).abs() < 1e-6));
        assert!(solve_spd(vec![0.0; DIM * DIM], vec![0.0; DIM * DIM], DIM, DIM).is_err());
    }

    #[test]
    fn predict_moves_the_landmarks_last_and_the_weights_file_carries_it() {
        use crate::model::testing::{cpu, small_model};
        use crate::model::{HybridGNet, Sampling, predict};
        // A pure shift of (0.01, −0.02) of the letterboxed side.
        let shift = |i: usize| if i.is_multiple_of(2) { 0.01 } else { -0.02 };
        let c = ShapeCorrection {
            mean: vec![0.5; DIM],
            offset: (0..DIM).map(shift).collect(),
            weight: vec![0.0; DIM * DIM],
            fit: FitInfo {
                frame: FRAME.into(),
                lambda: 0.1,
                fitted_on: "by hand".into(),
                error_before_1024: Some(2.0),
                error_after_1024: Some(1.0),
            },
        };
        let (w, h) = (80u32, 64u32);
        let g: Vec<f32> = (0..w * h).map(|i| ((i * 7919) % 251) as f32 / 250.0).collect();
        let sampling = Sampling::Random { samples: 4, seed: 1 };
        let mut m = small_model(5);
        m.test_time_warps = 2;
        let plain = predict(&m, &g, w, h, sampling);
        m.set_shape_correction(Some(c.clone()));
        let moved = predict(&m, &g, w, h, sampling);
        assert!(moved.shape_corrected && !plain.shape_corrected);
        assert_eq!((moved.std, moved.score, moved.test_time_warps), (plain.std, plain.score, 2));
        // The shift is in units of the shape's RMS radius (pixels here, as the letterbox scales
        // both axes alike).
        let centre = [0, 1].map(|a| plain.mean.iter().map(|p| p[a] as f64).sum::<f64>() / NUM_NODES as f64);
        let radius = (plain.mean.iter().map(|p| (p[0] as f64 - centre[0]).powi(2) + (p[1] as f64 - centre[1]).powi(2)).sum::<f64>()
            / NUM_NODES as f64)
            .sqrt() as f32;
        for n in [0, 60, 119] {
            assert!((moved.mean[n][0] - plain.mean[n][0] - 0.01 * radius).abs() < 1e-3, "node {n}");
            assert!((moved.mean[n][1] - plain.mean[n][1] + 0.02 * radius).abs() < 1e-3, "node {n}");
        }
        assert!(m.describe().ends_with("shape correction"), "{}", m.describe());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrected.safetensors");
        m.save(&path).unwrap();
        let back = HybridGNet::load(&path, &cpu()).unwrap();
        assert_eq!(back.shape_correction(), Some(&c));
        assert_eq!(predict(&back, &g, w, h, sampling), moved);
        // A companion follows its primary's correction; a file that gives it its own is refused,
        // as is a correction of the wrong shape, naming the file.
        let write = |sd: &StateDict| {
            let p = dir.path().join("bad.safetensors");
            sd.write_safetensors(&p, &[]).unwrap();
            HybridGNet::load(&p, &cpu()).unwrap_err().to_string()
        };
        let mut other = small_model(6);
        other.set_shape_correction(Some(c.clone()));
        let mut sd = m.state_dict();
        sd.insert_prefixed("companion0.", other.state_dict());
        let e = write(&sd);
        assert!(e.contains("(companion 0)") && e.contains("follows its primary"), "{e}");
        let mut sd = m.state_dict();
        sd.tensors.get_mut("shape_correction.mean").unwrap().shape = vec![DIM, 1];
        let e = write(&sd);
        assert!(e.contains("bad.safetensors") && e.contains("shape_correction.mean"), "{e}");
        let mut pair = small_model(5);
        pair.set_shape_correction(Some(c));
        pair.add_companion(other).unwrap();
        assert!(pair.companions()[0].shape_correction().is_none());
    }

    #[test]
    fn it_travels_as_tensors_and_bad_parts_are_named() {
        let (p, t) = shapes(30, 3);
        let c = ShapeCorrection::fit(&p, &t, 0.1, "synthetic".into()).unwrap();
        let sd = c.to_state_dict();
        assert_eq!(ShapeCorrection::from_state_dict(&sd).unwrap(), c);
        let mut bad = sd.clone();
        bad.tensors.get_mut("weight").unwrap().shape = vec![DIM * DIM];
        assert!(ShapeCorrection::from_state_dict(&bad).unwrap_err().contains("shape_correction.weight"));
        let mut bad = sd.clone();
        bad.tensors.remove("offset");
        assert!(ShapeCorrection::from_state_dict(&bad).unwrap_err().contains("shape_correction.offset` missing"));
        let mut bad = sd.clone();
        bad.metadata.insert("fit".into(), "{".into());
        assert!(ShapeCorrection::from_state_dict(&bad).unwrap_err().contains("shape_correction.fit"));
        let mut bad = sd.clone();
        bad.metadata.insert("fit".into(), serde_json::to_string(&FitInfo { frame: "image".into(), ..c.fit.clone() }).unwrap());
        assert!(ShapeCorrection::from_state_dict(&bad).unwrap_err().contains("frame \"image\""));
        let mut bad = sd;
        bad.tensors.get_mut("mean").unwrap().values[3] = f32::NAN;
        assert!(ShapeCorrection::from_state_dict(&bad).unwrap_err().contains("not finite"));
        assert!(ShapeCorrection::fit(&p[..5], &t[..5], 0.1, String::new()).is_err(), "too few images");
    }
}
