//! How good a model is on images with known landmarks: Dice of filled contours, node error,
//! and whether node uncertainty points at node error (METHOD.md §4, §6).

use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::masks::organ_mask;
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::dice;
use crate::metrics::stats::describe;
use crate::metrics::landmark_error::node_errors_px;
use crate::model::{HybridGNet, Prediction, Sampling, predict};

/// One image scored against its reference landmarks. Distances are pixels at 1024 (the
/// image's long side scaled to 1024) so that images of any size compare.
#[derive(Debug, Clone)]
pub struct ImageAccuracy {
    pub name: String,
    pub dice_lungs: f64,
    pub dice_heart: f64,
    pub node_error_1024: [f64; NUM_NODES],
    /// The node's std as the model's calibration reads it ([`Prediction::calibration_std`]:
    /// of the re-spaced samples for a model that re-spaces its landmarks).
    pub node_std_1024: [f64; NUM_NODES],
    /// Mean node std, pixels at 1024: the image score the worklist shows.
    pub score_1024: f64,
    /// The error the patches lead one to expect at each node, px at 1024, where the
    /// prediction carries it ([`Prediction::patch_error`]).
    pub node_patch_error_1024: Option<[f64; NUM_NODES]>,
}

impl ImageAccuracy {
    pub fn mean_error_1024(&self) -> f64 {
        self.node_error_1024.iter().sum::<f64>() / NUM_NODES as f64
    }
}

/// Score `prediction` of a `width`×`height` image against `reference` (image pixels).
pub fn score_prediction(
    name: &str,
    prediction: &Prediction,
    reference: &[Point; NUM_NODES],
    width: u32,
    height: u32,
) -> ImageAccuracy {
    let mask = |l: &[Point; NUM_NODES], o| organ_mask(l, o, width, height);
    let lungs = |l| mask(l, Organ::RightLung).union(&mask(l, Organ::LeftLung));
    let to_1024 = 1024.0 / width.max(height).max(1) as f64;
    let errors = node_errors_px(&prediction.mean, reference).map(|e| e * to_1024);
    let stds: [f64; NUM_NODES] = std::array::from_fn(|n| prediction.calibration_std(n) as f64 * to_1024);
    ImageAccuracy {
        name: name.to_string(),
        dice_lungs: dice(&lungs(&prediction.mean), &lungs(reference)),
        dice_heart: dice(&mask(&prediction.mean, Organ::Heart), &mask(reference, Organ::Heart)),
        node_error_1024: errors,
        node_std_1024: stds,
        score_1024: prediction.score as f64 * to_1024,
        node_patch_error_1024: prediction
            .patch_error
            .as_ref()
            .filter(|e| e.len() == NUM_NODES)
            .map(|e| std::array::from_fn(|n| e[n] as f64 * to_1024)),
    }
}

/// Predict on one grey image and score it.
pub fn score_image(
    model: &HybridGNet,
    name: &str,
    grey: &[f32],
    width: u32,
    height: u32,
    reference: &[Point; NUM_NODES],
    sampling: Sampling,
) -> ImageAccuracy {
    let p = predict(model, grey, width, height, sampling);
    score_prediction(name, &p, reference, width, height)
}

/// Summary over a set of scored images.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracySummary {
    pub images: usize,
    pub dice_lungs: (f64, f64),
    pub dice_heart: (f64, f64),
    pub error_1024: (f64, f64),
    /// Correlation over every node of every image of node std with node error.
    pub pearson_r: Option<f64>,
    pub spearman_rho: Option<f64>,
    /// Correlation over images of the image score with the image's mean node error.
    pub image_r: Option<f64>,
    pub max_score_1024: f64,
}

/// Mean and sample standard deviation (the report's "±").
fn mean_sd(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let s = describe(v);
    (s.mean, s.sd)
}

/// The highest image score (mean node std, px at 1024) among `images`; −∞ for none.
pub fn highest_score_1024<'a>(images: impl IntoIterator<Item = &'a ImageAccuracy>) -> f64 {
    images.into_iter().map(|i| i.score_1024).fold(f64::NEG_INFINITY, f64::max)
}

pub fn summarise(images: &[ImageAccuracy]) -> AccuracySummary {
    let std: Vec<f64> = images.iter().flat_map(|i| i.node_std_1024).collect();
    let err: Vec<f64> = images.iter().flat_map(|i| i.node_error_1024).collect();
    AccuracySummary {
        images: images.len(),
        dice_lungs: mean_sd(images.iter().map(|i| i.dice_lungs)),
        dice_heart: mean_sd(images.iter().map(|i| i.dice_heart)),
        error_1024: mean_sd(images.iter().map(|i| i.mean_error_1024())),
        pearson_r: pearson(&std, &err),
        spearman_rho: spearman(&std, &err),
        image_r: pearson(
            &images.iter().map(|i| i.score_1024).collect::<Vec<_>>(),
            &images.iter().map(|i| i.mean_error_1024()).collect::<Vec<_>>(),
        ),
        max_score_1024: highest_score_1024(images),
    }
}
