//! Fitting the std → expected error calibration ([`crate::model::Calibration`]) on scored
//! images, and judging candidate maps side by side with k-fold cross-validation by image, so
//! the figures that choose a map are never measured on the images it was fitted to.

use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::isotonic::MonotoneMap;
use crate::model::calibration::{Calibration, NodeProfile, OOD_MARGIN, ReliabilityRow};

use super::accuracy::ImageAccuracy;

/// Quantile bins of the organ maps' isotonic fit.
const MAP_BINS: usize = 20;
/// Pseudo-images pulling a node's factor towards 1 (its organ's average): with 21 images a
/// node's own mean error is noisy.
const NODE_SHRINK: f64 = 5.0;
/// Rows of the legend's reliability table.
pub const LEGEND_ROWS: usize = 5;

/// The calibration families compared by `calibrate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Expected error = std (what an uncalibrated model shows).
    Raw,
    /// Expected error = organ ratio × std (one scale per organ).
    OrganScale,
    /// A monotone map per organ.
    OrganIsotonic,
    /// One scale per node (shrunk towards its organ's).
    NodeScale,
    /// A monotone map per organ times a per-node factor.
    OrganIsotonicNodeFactor,
    /// Each node's usual error, measured on another split (the training images), scaled by
    /// its std and the image's relative to usual ([`NodeProfile`]), times one scale.
    NodeProfile,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Raw,
        Method::OrganScale,
        Method::OrganIsotonic,
        Method::NodeScale,
        Method::OrganIsotonicNodeFactor,
        Method::NodeProfile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Raw => "raw std",
            Method::OrganScale => "organ scale",
            Method::OrganIsotonic => "organ isotonic",
            Method::NodeScale => "node scale",
            Method::OrganIsotonicNodeFactor => "organ isotonic × node factor",
            Method::NodeProfile => "node profile",
        }
    }

    /// The command-line spelling.
    pub fn slug(self) -> &'static str {
        match self {
            Method::Raw => "raw",
            Method::OrganScale => "organ-scale",
            Method::OrganIsotonic => "organ-isotonic",
            Method::NodeScale => "node-scale",
            Method::OrganIsotonicNodeFactor => "organ-isotonic-node-factor",
            Method::NodeProfile => "node-profile",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.slug() == s)
    }
}

fn organ_of(n: usize) -> usize {
    Organ::of_node(n).map(|(o, _)| o.index()).expect("node index")
}

/// The exponents a node profile may take; the pair with the best pooled Pearson r on the
/// fitting images is kept.
const PROFILE_EXPONENTS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// Each node's mean error and mean std over `images` (another split than the one the map is
/// fitted on), with exponents still to choose. `None` without images.
pub fn measure_profile(images: &[&ImageAccuracy], measured_on: String) -> Option<NodeProfile> {
    if images.is_empty() {
        return None;
    }
    let count = images.len() as f64;
    let mean = |f: fn(&ImageAccuracy, usize) -> f64| -> Vec<f64> {
        (0..NUM_NODES).map(|n| (images.iter().map(|a| f(a, n)).sum::<f64>() / count).max(1e-6)).collect()
    };
    Some(NodeProfile {
        typical_error: mean(|a, n| a.node_error_1024[n]),
        typical_std: mean(|a, n| a.node_std_1024[n]),
        node_exponent: 1.0,
        image_exponent: 0.0,
        measured_on,
        typical_from_patches: false,
    })
}

/// `profile` with the exponents that point at the error of `images` best (pooled Pearson r).
fn choose_exponents(profile: &NodeProfile, images: &[&ImageAccuracy]) -> NodeProfile {
    let err: Vec<f64> = images.iter().flat_map(|a| a.node_error_1024).collect();
    let mut best = (f64::NEG_INFINITY, profile.clone());
    for a in PROFILE_EXPONENTS {
        for b in PROFILE_EXPONENTS.map(|e| 2.0 * e) {
            let p = NodeProfile { node_exponent: a, image_exponent: b, ..profile.clone() };
            let v: Vec<f64> = images.iter().flat_map(|x| p.value(&x.node_std_1024, x.node_patch_error_1024.as_ref())).collect();
            let r = pearson(&v, &err).unwrap_or(f64::NEG_INFINITY);
            if r > best.0 {
                best = (r, p);
            }
        }
    }
    best.1
}

/// Fit `method` on `images`. The legend rows and scale are left empty (see [`finish`]).
/// [`Method::NodeProfile`] needs `profile` (from [`measure_profile`]); without one it falls
/// back to [`Method::NodeScale`].
pub fn fit(method: Method, images: &[&ImageAccuracy], profile: Option<&NodeProfile>) -> Calibration {
    if let (Method::NodeProfile, Some(p)) = (method, profile) {
        let p = choose_exponents(p, images);
        // One scale: the profile's errors were measured on images the model may have trained
        // on, smaller than a new image's. (One per organ scored lower out of fold: it re-weighs
        // the organs on the few fitting images.)
        let (mut err, mut val) = (0.0, 0.0);
        for a in images {
            err += a.node_error_1024.iter().sum::<f64>();
            val += p.value(&a.node_std_1024, a.node_patch_error_1024.as_ref()).iter().sum::<f64>();
        }
        let scale = (err / val.max(1e-9)).max(1e-6);
        // A knot near zero, so that the map is a line through the origin.
        let organ_maps = vec![MonotoneMap { knots: vec![[1e-3, 1e-3 * scale]] }; 3];
        return Calibration {
            method: method.name().into(),
            fitted_on: String::new(),
            organ_maps,
            node_factors: vec![1.0; NUM_NODES],
            scale_top_1024: 1.0,
            reliability: Vec::new(),
            profile: Some(p),
            ood_score_1024: None,
            std_of: Default::default(),
        };
    }
    let mut node_err = [0.0f64; NUM_NODES];
    let mut node_std = [0.0f64; NUM_NODES];
    for a in images {
        for n in 0..NUM_NODES {
            node_err[n] += a.node_error_1024[n];
            node_std[n] += a.node_std_1024[n];
        }
    }
    let count = images.len() as f64;
    let organ_sum = |v: &[f64; NUM_NODES], o: Organ| o.nodes().map(|n| v[n]).sum::<f64>();
    let organ_ratio: Vec<f64> =
        Organ::ALL.iter().map(|&o| organ_sum(&node_err, o) / organ_sum(&node_std, o).max(1e-9)).collect();
    let organ_mean_err: Vec<f64> = Organ::ALL.iter().map(|&o| organ_sum(&node_err, o) / (count * o.len() as f64)).collect();
    // Shrunk per-node mean error relative to its organ's mean.
    let factor = |n: usize| {
        let m = organ_mean_err[organ_of(n)];
        let shrunk = (node_err[n] + NODE_SHRINK * m) / (count + NODE_SHRINK);
        (shrunk / m.max(1e-9)).max(1e-3)
    };
    let ones = vec![1.0; NUM_NODES];
    let identity = || vec![MonotoneMap::identity(); 3];
    // Through the origin: a single knot would hold every std below 1 px at its value.
    let scale_map = |r: f64| MonotoneMap { knots: vec![[0.0, 0.0], [1.0, r.max(1e-6)]] };
    let isotonic = |factors: &[f64]| -> Vec<MonotoneMap> {
        Organ::ALL
            .iter()
            .map(|&o| {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for a in images {
                    for n in o.nodes() {
                        x.push(a.node_std_1024[n]);
                        y.push(a.node_error_1024[n] / factors[n]);
                    }
                }
                MonotoneMap::fit(&x, &y, MAP_BINS).unwrap_or_else(MonotoneMap::identity)
            })
            .collect()
    };
    let (organ_maps, node_factors) = match method {
        Method::Raw => (identity(), ones),
        Method::OrganScale => (organ_ratio.iter().map(|&r| scale_map(r)).collect(), ones),
        Method::OrganIsotonic => (isotonic(&ones), ones),
        Method::NodeScale | Method::NodeProfile => {
            // Ratio of the node's error to its std, shrunk towards the organ's ratio.
            let f: Vec<f64> = (0..NUM_NODES)
                .map(|n| {
                    let r = organ_ratio[organ_of(n)];
                    let std_mean = node_std[n] / count.max(1.0);
                    ((node_err[n] + NODE_SHRINK * r * std_mean) / (node_std[n] + NODE_SHRINK * std_mean).max(1e-9)).max(1e-6)
                })
                .collect();
            (identity(), f)
        }
        Method::OrganIsotonicNodeFactor => {
            let f: Vec<f64> = (0..NUM_NODES).map(factor).collect();
            (isotonic(&f), f)
        }
    };
    Calibration {
        method: method.name().into(),
        fitted_on: String::new(),
        organ_maps,
        node_factors,
        scale_top_1024: 1.0,
        reliability: Vec::new(),
        profile: None,
        ood_score_1024: None,
        std_of: Default::default(),
    }
}

/// Apply a calibration to a scored image: expected error per node, px at 1024.
pub fn expected(c: &Calibration, a: &ImageAccuracy) -> [f64; NUM_NODES] {
    c.expected_errors_1024(&a.node_std_1024, a.node_patch_error_1024.as_ref())
}

/// How well an expected error points at the real one, over a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Pooled over every node of every image.
    pub pearson_r: Option<f64>,
    pub spearman_rho: Option<f64>,
    /// Image score (mean expected error) against the image's mean node error.
    pub image_r: Option<f64>,
    /// Mean |mean expected − mean error| over decile bins of the expected error, px at 1024
    /// (0 = calibrated; an uncalibrated std reads far too small).
    pub calibration_error: f64,
    pub mean_expected: f64,
    pub mean_error: f64,
}

/// `calibrate --method auto`: the map with the best out-of-fold Pearson r among those whose
/// output is an expected error in px. The raw std is compared but never chosen on its own: it
/// can edge ahead on r (a held-out pair did, 0.243 against 0.240) while reading several times
/// too small, and the colours, the legend and the CSV's calibrated column promise pixels.
pub fn auto_choice(agreements: &[(Method, Agreement)]) -> Option<Method> {
    agreements
        .iter()
        .filter(|(m, _)| *m != Method::Raw)
        .max_by(|a, b| a.1.pearson_r.unwrap_or(-1.0).total_cmp(&b.1.pearson_r.unwrap_or(-1.0)))
        .map(|(m, _)| *m)
}

pub fn agreement(expected: &[[f64; NUM_NODES]], images: &[&ImageAccuracy]) -> Agreement {
    let e: Vec<f64> = expected.iter().flatten().copied().collect();
    let err: Vec<f64> = images.iter().flat_map(|a| a.node_error_1024).collect();
    let img_e: Vec<f64> = expected.iter().map(|x| x.iter().sum::<f64>() / NUM_NODES as f64).collect();
    let img_err: Vec<f64> = images.iter().map(|a| a.mean_error_1024()).collect();
    let bins = crate::metrics::reliability::reliability_table(&e, &err, 10);
    let total: usize = bins.iter().map(|b| b.n).sum();
    let calibration_error =
        bins.iter().map(|b| b.n as f64 * (b.mean_uncertainty - b.mean_error).abs()).sum::<f64>() / total.max(1) as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Agreement {
        pearson_r: pearson(&e, &err),
        spearman_rho: spearman(&e, &err),
        image_r: pearson(&img_e, &img_err),
        calibration_error,
        mean_expected: mean(&e),
        mean_error: mean(&err),
    }
}

/// Image `i` belongs to fold `i % folds`. A node profile, measured on other images, is the
/// same in every fold; its exponents and scales are fitted per fold.
pub fn out_of_fold(
    method: Method,
    images: &[&ImageAccuracy],
    folds: usize,
    profile: Option<&NodeProfile>,
) -> Vec<[f64; NUM_NODES]> {
    let folds = folds.clamp(2, images.len().max(2));
    let mut out = vec![[0.0; NUM_NODES]; images.len()];
    for k in 0..folds {
        let fit_on: Vec<&ImageAccuracy> =
            images.iter().enumerate().filter(|(i, _)| i % folds != k).map(|(_, a)| *a).collect();
        if fit_on.is_empty() {
            continue;
        }
        let c = fit(method, &fit_on, profile);
        for (i, a) in images.iter().enumerate().filter(|(i, _)| i % folds == k) {
            out[i] = expected(&c, a);
        }
    }
    out
}

/// Complete a calibration fitted on all images: the colour scale's top (the 95th percentile
/// of the out-of-fold expected errors, rounded up to 5 px) and the legend rows measured on the
/// out-of-fold predictions.
pub fn finish(mut c: Calibration, oof: &[[f64; NUM_NODES]], images: &[&ImageAccuracy], fitted_on: String) -> Calibration {
    let mut e: Vec<f64> = oof.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    e.sort_by(f64::total_cmp);
    let p95 = e.get(((e.len() as f64 * 0.95) as usize).min(e.len().saturating_sub(1))).copied().unwrap_or(1.0);
    c.scale_top_1024 = ((p95 / 5.0).ceil() * 5.0).max(5.0);
    let step = c.scale_top_1024 / LEGEND_ROWS as f64;
    c.reliability = (0..LEGEND_ROWS)
        .map(|k| {
            let lo = step * k as f64;
            let hi = if k + 1 == LEGEND_ROWS { f64::INFINITY } else { step * (k + 1) as f64 };
            let (mut n, mut se, mut sr) = (0usize, 0.0, 0.0);
            for (x, a) in oof.iter().zip(images) {
                for node in 0..NUM_NODES {
                    if x[node] >= lo && x[node] < hi {
                        n += 1;
                        se += x[node];
                        sr += a.node_error_1024[node];
                    }
                }
            }
            let d = n.max(1) as f64;
            // JSON has no infinity: the open last row is written with the largest value seen.
            let hi = if hi.is_finite() { hi } else { e.last().copied().unwrap_or(lo).max(lo) };
            ReliabilityRow { lo, hi, nodes: n, mean_expected: se / d, mean_error: sr / d }
        })
        .collect();
    c.fitted_on = fitted_on;
    let highest = super::accuracy::highest_score_1024(images.iter().copied());
    c.ood_score_1024 = (highest.is_finite() && highest > 0.0).then(|| OOD_MARGIN * highest);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(k: usize, std: [f64; NUM_NODES], err: [f64; NUM_NODES]) -> ImageAccuracy {
        ImageAccuracy {
            name: format!("img{k}"),
            dice_lungs: 0.9,
            dice_heart: 0.9,
            node_error_1024: err,
            node_std_1024: std,
            score_1024: std.iter().sum::<f64>() / NUM_NODES as f64,
            node_patch_error_1024: None,
        }
    }

    /// Images where node error = 3 × std + a per-node offset, plus noise-free structure.
    fn images() -> Vec<ImageAccuracy> {
        (0..12)
            .map(|i| {
                let std: [f64; NUM_NODES] = std::array::from_fn(|n| 2.0 + ((i * 7 + n * 3) % 11) as f64);
                let err: [f64; NUM_NODES] = std::array::from_fn(|n| 3.0 * std[n] + if n % 10 == 0 { 20.0 } else { 0.0 });
                scored(i, std, err)
            })
            .collect()
    }

    #[test]
    fn auto_never_chooses_the_raw_std_even_when_its_r_is_highest() {
        let g = |r: f64, mean_expected: f64| Agreement {
            pearson_r: Some(r),
            spearman_rho: Some(r),
            image_r: None,
            calibration_error: (mean_expected - 16.0).abs(),
            mean_expected,
            mean_error: 16.0,
        };
        let table = [(Method::Raw, g(0.243, 3.6)), (Method::NodeScale, g(0.231, 16.0)), (Method::NodeProfile, g(0.240, 16.1))];
        assert_eq!(auto_choice(&table), Some(Method::NodeProfile));
        assert_eq!(auto_choice(&table[..2]), Some(Method::NodeScale));
        assert_eq!(auto_choice(&table[..1]), None);
    }

    #[test]
    fn calibrated_maps_beat_the_raw_std_out_of_fold() {
        let imgs = images();
        let refs: Vec<&ImageAccuracy> = imgs.iter().collect();
        let raw = agreement(&out_of_fold(Method::Raw, &refs, 4, None), &refs);
        let iso = agreement(&out_of_fold(Method::OrganIsotonic, &refs, 4, None), &refs);
        let node = agreement(&out_of_fold(Method::OrganIsotonicNodeFactor, &refs, 4, None), &refs);
        // The raw std is correlated but reads a third of the error.
        assert!(raw.calibration_error > 10.0, "{raw:?}");
        assert!(iso.calibration_error < 3.0, "{iso:?}");
        // The per-node offset is something only node factors capture.
        assert!(node.pearson_r.unwrap() > iso.pearson_r.unwrap() + 0.02, "{node:?} vs {iso:?}");
    }

    /// Images whose node error is a per-node level (noisy from image to image) times the
    /// node's std relative to 5 px: a few images estimate the levels poorly, many well.
    fn profiled_images(count: usize, seed: usize) -> Vec<ImageAccuracy> {
        (0..count)
            .map(|i| {
                let k = i + seed * 1000;
                let std: [f64; NUM_NODES] = std::array::from_fn(|n| 4.0 + ((k * 7 + n * 3) % 5) as f64 * 0.5);
                let level = |n: usize| 8.0 + (n % 6) as f64 * 4.0;
                let noise = |n: usize| (((k * 131 + n * 71) % 97) as f64 / 97.0 - 0.5) * 40.0;
                let err: [f64; NUM_NODES] = std::array::from_fn(|n| (level(n) * (std[n] / 5.0) + noise(n)).max(0.0));
                scored(k, std, err)
            })
            .collect()
    }

    #[test]
    fn a_profile_from_many_other_images_beats_per_node_scales_from_few() {
        let many = profiled_images(150, 1);
        let few = profiled_images(14, 2);
        let (many, few): (Vec<&ImageAccuracy>, Vec<&ImageAccuracy>) = (many.iter().collect(), few.iter().collect());
        let p = measure_profile(&many, "150 images of `train`".into()).unwrap();
        let node = agreement(&out_of_fold(Method::NodeScale, &few, 7, None), &few);
        let prof = agreement(&out_of_fold(Method::NodeProfile, &few, 7, Some(&p)), &few);
        assert!(prof.pearson_r.unwrap() > node.pearson_r.unwrap() + 0.02, "{prof:?} vs {node:?}");
        assert!((prof.mean_expected / prof.mean_error - 1.0).abs() < 0.1, "{prof:?}");
        let c = fit(Method::NodeProfile, &few, Some(&p));
        c.check().unwrap();
        let q = c.profile.as_ref().unwrap();
        // The error follows the std linearly and the image mean not at all.
        assert_eq!((q.node_exponent, q.image_exponent), (1.0, 0.0));
        // Without a profile the method is the node scale.
        assert_eq!(fit(Method::NodeProfile, &few, None).node_factors, fit(Method::NodeScale, &few, None).node_factors);
        assert!(measure_profile(&[], String::new()).is_none());
    }

    #[test]
    fn finish_fills_scale_and_legend_rows() {
        let imgs = images();
        let refs: Vec<&ImageAccuracy> = imgs.iter().collect();
        let oof = out_of_fold(Method::OrganIsotonic, &refs, 3, None);
        let c = finish(fit(Method::OrganIsotonic, &refs, None), &oof, &refs, "synthetic".into());
        c.check().unwrap();
        assert_eq!(c.reliability.len(), LEGEND_ROWS);
        assert_eq!(c.reliability.iter().map(|r| r.nodes).sum::<usize>(), imgs.len() * NUM_NODES);
        assert!(c.scale_top_1024 >= 30.0 && c.scale_top_1024 % 5.0 == 0.0, "{}", c.scale_top_1024);
        assert_eq!(Calibration::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(Method::parse("organ-isotonic"), Some(Method::OrganIsotonic));
    }
}
