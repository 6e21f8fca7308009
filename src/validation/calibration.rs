//! Fitting the std → expected error calibration ([`crate::model::Calibration`]) on scored
//! images, and judging candidate maps side by side with k-fold cross-validation by image, so
//! the figures that choose a map are never measured on the images it was fitted to.

use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::isotonic::MonotoneMap;
use crate::model::calibration::{Calibration, ReliabilityRow};

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
}

impl Method {
    pub const ALL: [Method; 5] =
        [Method::Raw, Method::OrganScale, Method::OrganIsotonic, Method::NodeScale, Method::OrganIsotonicNodeFactor];

    pub fn name(self) -> &'static str {
        match self {
            Method::Raw => "raw std",
            Method::OrganScale => "organ scale",
            Method::OrganIsotonic => "organ isotonic",
            Method::NodeScale => "node scale",
            Method::OrganIsotonicNodeFactor => "organ isotonic × node factor",
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
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.slug() == s)
    }
}

fn organ_of(n: usize) -> usize {
    Organ::of_node(n).map(|(o, _)| o.index()).expect("node index")
}

/// Fit `method` on `images`. The legend rows and scale are left empty (see [`finish`]).
pub fn fit(method: Method, images: &[&ImageAccuracy]) -> Calibration {
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
    let scale_map = |r: f64| MonotoneMap { knots: vec![[1.0, r.max(1e-6)]] };
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
        Method::NodeScale => {
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
    }
}

/// Apply a calibration to a scored image: expected error per node, px at 1024.
pub fn expected(c: &Calibration, a: &ImageAccuracy) -> [f64; NUM_NODES] {
    std::array::from_fn(|n| c.expected_error_1024(n, a.node_std_1024[n]))
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

/// Image `i` belongs to fold `i % folds`.
pub fn out_of_fold(method: Method, images: &[&ImageAccuracy], folds: usize) -> Vec<[f64; NUM_NODES]> {
    let folds = folds.clamp(2, images.len().max(2));
    let mut out = vec![[0.0; NUM_NODES]; images.len()];
    for k in 0..folds {
        let fit_on: Vec<&ImageAccuracy> =
            images.iter().enumerate().filter(|(i, _)| i % folds != k).map(|(_, a)| *a).collect();
        if fit_on.is_empty() {
            continue;
        }
        let c = fit(method, &fit_on);
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
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images where node error = 3 × std + a per-node offset, plus noise-free structure.
    fn images() -> Vec<ImageAccuracy> {
        (0..12)
            .map(|i| {
                let std: [f64; NUM_NODES] = std::array::from_fn(|n| 2.0 + ((i * 7 + n * 3) % 11) as f64);
                let err: [f64; NUM_NODES] = std::array::from_fn(|n| 3.0 * std[n] + if n % 10 == 0 { 20.0 } else { 0.0 });
                ImageAccuracy {
                    name: format!("img{i}"),
                    dice_lungs: 0.9,
                    dice_heart: 0.9,
                    node_error_1024: err,
                    node_std_1024: std,
                    score_1024: std.iter().sum::<f64>() / NUM_NODES as f64,
                }
            })
            .collect()
    }

    #[test]
    fn calibrated_maps_beat_the_raw_std_out_of_fold() {
        let imgs = images();
        let refs: Vec<&ImageAccuracy> = imgs.iter().collect();
        let raw = agreement(&out_of_fold(Method::Raw, &refs, 4), &refs);
        let iso = agreement(&out_of_fold(Method::OrganIsotonic, &refs, 4), &refs);
        let node = agreement(&out_of_fold(Method::OrganIsotonicNodeFactor, &refs, 4), &refs);
        // The raw std is correlated but reads a third of the error.
        assert!(raw.calibration_error > 10.0, "{raw:?}");
        assert!(iso.calibration_error < 3.0, "{iso:?}");
        // The per-node offset is something only node factors capture.
        assert!(node.pearson_r.unwrap() > iso.pearson_r.unwrap() + 0.02, "{node:?} vs {iso:?}");
    }

    #[test]
    fn finish_fills_scale_and_legend_rows() {
        let imgs = images();
        let refs: Vec<&ImageAccuracy> = imgs.iter().collect();
        let oof = out_of_fold(Method::OrganIsotonic, &refs, 3);
        let c = finish(fit(Method::OrganIsotonic, &refs), &oof, &refs, "synthetic".into());
        c.check().unwrap();
        assert_eq!(c.reliability.len(), LEGEND_ROWS);
        assert_eq!(c.reliability.iter().map(|r| r.nodes).sum::<usize>(), imgs.len() * NUM_NODES);
        assert!(c.scale_top_1024 >= 30.0 && c.scale_top_1024 % 5.0 == 0.0, "{}", c.scale_top_1024);
        assert_eq!(Calibration::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(Method::parse("organ-isotonic"), Some(Method::OrganIsotonic));
    }
}
