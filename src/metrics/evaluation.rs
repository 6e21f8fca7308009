//! Scoring one CheXmask file against another, image by image, as the CheXmask authors did:
//! Dice, Hausdorff and HD95 of both lungs together and of the heart, plus node errors.
//!
//! The masks scored are the files' RLE masks when both rows have them (that is what the
//! authors evaluated: `tests/integration/chexmask_eval.rs` reproduces their numbers from the RLE
//! masks), else masks filled from the landmarks. All three metrics are symmetric, so which
//! file is the prediction only matters for naming.

use crate::formats::FormatError;
use crate::formats::chexmask::{ChexmaskRow, ChexmaskTable};
use crate::formats::matching::match_names;
use crate::landmarks::{NUM_NODES, Organ};
use crate::masks::OrganMasks;
use crate::xray::PixelSpacing;

use super::landmark_error::{node_errors_mm, node_errors_px};
use super::overlap::dice;
use super::surface::{SurfaceDistance, surface_distance};

/// Which masks to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MaskChoice {
    /// RLE masks when both rows have all three, filled landmarks otherwise.
    #[default]
    Auto,
    /// Only the RLE masks; a row without them is an error.
    Rle,
    /// Masks filled from the landmarks, ignoring RLE columns.
    Landmarks,
}

/// Where the scored masks of an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskSource {
    Rle,
    Landmarks,
}

impl MaskSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskSource::Rle => "rle",
            MaskSource::Landmarks => "landmarks",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EvalOptions {
    pub masks: MaskChoice,
    /// Pixel spacing of the rows' coordinate space, for node errors in mm.
    pub spacing: Option<PixelSpacing>,
}

/// The scores of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScores {
    pub id: String,
    pub masks: MaskSource,
    pub dice_lungs: f64,
    pub dice_heart: f64,
    /// In [`Organ::ALL`] order.
    pub dice_organs: [f64; 3],
    pub lungs: SurfaceDistance,
    pub heart: SurfaceDistance,
    /// Node errors in pixels, when both rows have landmarks.
    pub node_px: Option<[f64; NUM_NODES]>,
    /// Node errors in mm, when both rows have landmarks and a spacing was given.
    pub node_mm: Option<[f64; NUM_NODES]>,
}

/// A whole file pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// In the order of the prediction file.
    pub images: Vec<ImageScores>,
    /// Identifiers found in only one of the files.
    pub only_in_pred: Vec<String>,
    pub only_in_ref: Vec<String>,
}

impl Evaluation {
    pub fn count(&self, source: MaskSource) -> usize {
        self.images.iter().filter(|i| i.masks == source).count()
    }
}

/// Scores every image found in both tables (matched by identifier, see
/// [`crate::formats::matching`]).
pub fn evaluate(
    pred: &ChexmaskTable,
    reference: &ChexmaskTable,
    options: EvalOptions,
) -> Result<Evaluation, FormatError> {
    let pred_ids: Vec<&str> = pred.rows.iter().map(|r| r.id.as_str()).collect();
    let ref_ids: Vec<&str> = reference.rows.iter().map(|r| r.id.as_str()).collect();
    let m = match_names(&pred_ids, &ref_ids);
    if let Some((i, c)) = m.ambiguous.first() {
        let names: Vec<&str> = c.iter().map(|&j| ref_ids[j]).collect();
        return Err(FormatError::file(
            &reference.path,
            format!("{} of {} fits several rows equally: {}", pred_ids[*i], pred.path.display(), names.join(", ")),
        ));
    }
    // Images are independent: score them on the available cores, keeping file order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = m.pairs.len().div_ceil(threads).max(1);
    let results: Vec<Result<ImageScores, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = m
            .pairs
            .chunks(chunk)
            .map(|pairs| {
                scope.spawn(move || {
                    pairs
                        .iter()
                        .map(|&(i, j)| evaluate_rows(&pred.rows[i], &reference.rows[j], options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("scoring thread panicked")).collect()
    });
    let mut images = Vec::with_capacity(results.len());
    for (&(i, _), r) in m.pairs.iter().zip(results) {
        images.push(r.map_err(|problem| {
            FormatError::file(
                &pred.path,
                format!("image {} (scored against {}): {problem}", pred.rows[i].id, reference.path.display()),
            )
        })?);
    }
    Ok(Evaluation {
        images,
        only_in_pred: m.unmatched_left.iter().map(|&i| pred_ids[i].to_string()).collect(),
        only_in_ref: m.unmatched_right.iter().map(|&j| ref_ids[j].to_string()).collect(),
    })
}

/// Scores one image given its two rows.
pub fn evaluate_rows(pred: &ChexmaskRow, reference: &ChexmaskRow, options: EvalOptions) -> Result<ImageScores, String> {
    if (pred.width, pred.height) != (reference.width, reference.height) {
        return Err(format!(
            "sizes differ: {}×{} against {}×{}",
            pred.width, pred.height, reference.width, reference.height
        ));
    }
    let both_rle = pred.has_all_masks() && reference.has_all_masks();
    let both_landmarks = pred.landmarks.is_some() && reference.landmarks.is_some();
    let source = match options.masks {
        MaskChoice::Rle if !both_rle => return Err("--masks rle, but not both rows have all three RLE masks".into()),
        MaskChoice::Landmarks if !both_landmarks => {
            return Err("--masks landmarks, but not both rows have landmarks".into());
        }
        MaskChoice::Rle => MaskSource::Rle,
        MaskChoice::Landmarks => MaskSource::Landmarks,
        MaskChoice::Auto if both_rle => MaskSource::Rle,
        MaskChoice::Auto if both_landmarks => MaskSource::Landmarks,
        MaskChoice::Auto => return Err("neither all three RLE masks nor landmarks in both rows".into()),
    };
    let masks = |r: &ChexmaskRow| -> OrganMasks {
        match source {
            MaskSource::Rle => r.rle_masks().expect("checked above"),
            MaskSource::Landmarks => r.filled_masks().expect("checked above"),
        }
    };
    let (a, b) = (masks(pred), masks(reference));
    // Rows built in code (not read from a file) could hold RLE of another size than the row.
    if (a.width(), a.height()) != (b.width(), b.height()) {
        return Err(format!("mask sizes differ: {}×{} against {}×{}", a.width(), a.height(), b.width(), b.height()));
    }
    let (la, lb) = (a.lungs(), b.lungs());
    let dice_organs = Organ::ALL.map(|o| dice(a.get(o), b.get(o)));
    let node_px = match (&pred.landmarks, &reference.landmarks) {
        (Some(p), Some(r)) => Some(node_errors_px(p, r)),
        _ => None,
    };
    let node_mm = match (&pred.landmarks, &reference.landmarks, options.spacing) {
        (Some(p), Some(r), Some(s)) => Some(node_errors_mm(p, r, s)),
        _ => None,
    };
    Ok(ImageScores {
        id: pred.id.clone(),
        masks: source,
        dice_lungs: dice(&la, &lb),
        dice_heart: dice_organs[2],
        dice_organs,
        lungs: surface_distance(&la, &lb),
        heart: surface_distance(a.get(Organ::Heart), b.get(Organ::Heart)),
        node_px,
        node_mm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    #[test]
    fn identical_rows_score_perfectly_and_shifts_are_measured() {
        let t = template();
        let a = ChexmaskRow::from_landmarks("a", t, 1024, 1024);
        let s = evaluate_rows(&a, &a, EvalOptions::default()).unwrap();
        assert_eq!((s.masks, s.dice_lungs, s.dice_heart, s.lungs.hausdorff), (MaskSource::Rle, 1.0, 1.0, 0.0));
        let mut b = ChexmaskRow::from_landmarks("a", t.map(|p| [p[0] + 3.0, p[1] + 4.0]), 1024, 1024);
        b.masks = [None, None, None];
        let opts = EvalOptions { masks: MaskChoice::Auto, spacing: Some(PixelSpacing { row_mm: 0.5, col_mm: 0.5 }) };
        let s = evaluate_rows(&a, &b, opts).unwrap();
        assert_eq!(s.masks, MaskSource::Landmarks);
        assert!(s.node_px.unwrap().iter().all(|&e| (e - 5.0).abs() < 1e-9));
        assert!(s.node_mm.unwrap().iter().all(|&e| (e - 2.5).abs() < 1e-9));
        // A translation by (3, 4) moves no boundary pixel farther than 5 from the other boundary.
        assert!(s.heart.hausdorff > 0.0 && s.heart.hausdorff <= 5.0 + 1e-9 && s.dice_heart < 1.0);
        assert!(
            evaluate_rows(&a, &b, EvalOptions { masks: MaskChoice::Rle, spacing: None }).unwrap_err().contains("RLE")
        );
        let small = ChexmaskRow::from_landmarks("a", t, 512, 1024);
        assert!(evaluate_rows(&a, &small, EvalOptions::default()).unwrap_err().contains("sizes differ"));
    }
}
