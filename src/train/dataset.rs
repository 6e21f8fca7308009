//! Training samples: images with their 120 landmarks, pre-processed once to the model's
//! input size and kept in memory (174 JSRT images at 256² are 45 MB).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

use crate::formats::chexmask::parse_landmarks;
use crate::landmarks::{NUM_NODES, Point};
use crate::model::preprocess::{Letterbox, model_input};
use crate::xray;

/// An image file and its landmarks in that image's pixels. Other sources (the review
/// GUI's corrections) produce the same thing.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: PathBuf,
    pub landmarks: [Point; NUM_NODES],
}

/// A sample ready for the model: input pixels in [0, 1] (S×S) and landmarks in [0, 1].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub pixels: Vec<f32>,
    pub target: [[f32; 2]; NUM_NODES],
    pub letterbox: Letterbox,
    /// Ground truth in original pixels, for validation metrics.
    pub landmarks: [Point; NUM_NODES],
}

/// Read `DIR/landmarks.csv` (`image,split,Landmarks`) and keep the rows of `split`.
/// Images are looked for in `DIR/images/` then `DIR/`.
pub fn read_split(dir: &Path, split: &str) -> anyhow::Result<Vec<Sample>> {
    let csv_path = dir.join("landmarks.csv");
    let mut reader = csv::Reader::from_path(&csv_path).with_context(|| format!("{}: cannot read", csv_path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: no header row", csv_path.display()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(ci), Some(cl)) = (col("image"), col("Landmarks")) else {
        bail!("{}: needs columns `image` and `Landmarks` (found: {})", csv_path.display(), headers.iter().collect::<Vec<_>>().join(", "));
    };
    let cs = col("split");
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2; // 1-based, after the header
        let record = record.with_context(|| format!("{} row {row}: malformed CSV", csv_path.display()))?;
        if let Some(cs) = cs {
            if record.get(cs).map(str::trim) != Some(split) {
                continue;
            }
        }
        let name = record.get(ci).unwrap_or("").trim();
        let landmarks = parse_landmarks(record.get(cl).unwrap_or(""))
            .map_err(|e| anyhow::anyhow!("{} row {row} ({name}): {e}", csv_path.display()))?;
        // Identifiers may omit the extension (JSRT's CSV does).
        let mut candidates = vec![dir.join("images").join(name), dir.join(name)];
        for ext in ["png", "dcm", "jpg"] {
            candidates.push(dir.join("images").join(format!("{name}.{ext}")));
            candidates.push(dir.join(format!("{name}.{ext}")));
        }
        let image = candidates
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| format!("{} row {row}: image {name} not found in {}", csv_path.display(), dir.display()))?;
        out.push(Sample { image, landmarks });
    }
    if out.is_empty() {
        bail!("{}: no rows with split `{split}`", csv_path.display());
    }
    Ok(out)
}

/// Load and pre-process every sample for input size `size`.
pub fn prepare(samples: &[Sample], size: usize) -> anyhow::Result<Vec<Prepared>> {
    samples
        .iter()
        .map(|s| {
            let img = xray::load(&s.image)?;
            let grey = img.display_intensities(img.default_window());
            let (pixels, letterbox) = model_input(&grey, img.width, img.height, size);
            let target = s.landmarks.map(|p| letterbox.to_model(p));
            let name = s.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(Prepared { name, pixels, target, letterbox, landmarks: s.landmarks })
        })
        .collect()
}
