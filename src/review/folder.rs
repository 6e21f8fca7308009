//! A reviewed folder measured as the CheXmask-U authors measured theirs: for every accepted
//! or corrected annotation, the prediction against the reviewer's landmarks (Dice of filled
//! contours, Hausdorff, HD95, node error), and whether node uncertainty tracks node error.

use std::path::{Path, PathBuf};

use super::annotation::{self, Annotation, Status};
use crate::formats::chexmask::ChexmaskRow;
use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::evaluation::{EvalOptions, ImageScores, MaskChoice, evaluate_rows};
use crate::metrics::reliability::{ReliabilityBin, reliability_table};
use crate::xray::PixelSpacing;

/// One reviewed image.
#[derive(Debug, Clone)]
pub struct ReviewedImage {
    pub image: PathBuf,
    pub status: Status,
    /// Prediction against correction; node errors in mm when the image has a spacing.
    pub scores: ImageScores,
    /// Per node: mean of the x and y std, pixels.
    pub node_std: [f64; NUM_NODES],
    pub score: f64,
    pub review_seconds: f64,
}

impl ReviewedImage {
    pub fn mean_node_error_px(&self) -> f64 {
        self.scores.node_px.map_or(f64::NAN, |e| e.iter().sum::<f64>() / NUM_NODES as f64)
    }
}

#[derive(Debug, Clone, Default)]
pub struct FolderEvaluation {
    /// Accepted and corrected images, in the order given.
    pub images: Vec<ReviewedImage>,
    pub unreviewed: usize,
    pub rejected: usize,
    /// Images without an annotation file, or with one that cannot be read (named with why).
    pub missing: usize,
    pub unreadable: Vec<String>,
}

impl FolderEvaluation {
    /// Every node of every image: (std px, error px, organ).
    pub fn node_points(&self) -> Vec<(f64, f64, Organ)> {
        self.images
            .iter()
            .flat_map(|i| {
                let err = i.scores.node_px.unwrap_or([f64::NAN; NUM_NODES]);
                (0..NUM_NODES).map(move |n| (i.node_std[n], err[n], Organ::of_node(n).expect("node").0))
            })
            .collect()
    }

    /// Pearson and Spearman correlation of node std with node error over all nodes.
    pub fn correlation(&self) -> (Option<f64>, Option<f64>) {
        let (s, e): (Vec<f64>, Vec<f64>) = self.node_points().iter().map(|p| (p.0, p.1)).unzip();
        (pearson(&s, &e), spearman(&s, &e))
    }

    pub fn reliability(&self, bins: usize) -> Vec<ReliabilityBin> {
        let (s, e): (Vec<f64>, Vec<f64>) = self.node_points().iter().map(|p| (p.0, p.1)).unzip();
        reliability_table(&s, &e, bins)
    }
}

/// Score the annotations of `images` (each read from beside its image).
pub fn evaluate_folder(images: &[PathBuf]) -> FolderEvaluation {
    let mut out = FolderEvaluation::default();
    for image in images {
        let file = annotation::path_for(image, None);
        if !super::store::candidates(image).iter().any(|p| p.exists()) {
            out.missing += 1;
            continue;
        }
        // The first readable review (a corrupt primary file may have an alternate beside it).
        let found = super::store::find_readable(image).ok_or_else(|| match Annotation::read(&file) {
            Err(e) => e.to_string(),
            Ok(_) => format!("{}: no readable review", file.display()),
        });
        match found.map(|(_, a)| a) {
            Err(e) => out.unreadable.push(e),
            Ok(a) => match a.status {
                Status::Unreviewed => out.unreviewed += 1,
                Status::Rejected => out.rejected += 1,
                Status::Accepted | Status::Corrected => match score_annotation(image, &a) {
                    Ok(r) => out.images.push(r),
                    Err(e) => out.unreadable.push(format!("{}: {e}", file.display())),
                },
            },
        }
    }
    out
}

/// Prediction against correction for one annotation.
pub fn score_annotation(image: &Path, a: &Annotation) -> Result<ReviewedImage, String> {
    let (w, h) = (a.image.width, a.image.height);
    // Masks are filled from the landmarks by the evaluation itself.
    let row = |id: &str, l| ChexmaskRow {
        id: id.to_string(),
        landmarks: Some(l),
        masks: [None, None, None],
        width: w,
        height: h,
        size_given: true,
        extra: Vec::new(),
    };
    let spacing = a.image.pixel_spacing_mm.map(|[row_mm, col_mm]| PixelSpacing { row_mm, col_mm });
    let name = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let scores = evaluate_rows(
        &row(&name, a.predicted_array()),
        &row(&name, a.corrected_array()),
        EvalOptions { masks: MaskChoice::Landmarks, spacing },
    )?;
    let std = a.std_array();
    Ok(ReviewedImage {
        image: image.to_path_buf(),
        status: a.status,
        scores,
        node_std: std::array::from_fn(|n| ((std[n][0] + std[n][1]) / 2.0) as f64),
        score: a.score as f64,
        review_seconds: a.review_seconds,
    })
}
