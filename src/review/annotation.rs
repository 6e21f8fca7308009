//! The per-image annotation file (`<image file name>.cxr.json`), documented in
//! `docs/annotation-format.md`. It holds the prediction, the reviewer's corrections and the
//! review status, and names the image by content hash so it cannot be applied to another.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::landmarks::{NUM_NODES, Point};
use crate::model::Prediction;
use crate::xray::XrayImage;

pub const FORMAT: &str = "cxr-review-annotation/1";
pub const SUFFIX: &str = ".cxr.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Unreviewed,
    Accepted,
    Corrected,
    Rejected,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Unreviewed => "unreviewed",
            Status::Accepted => "accepted",
            Status::Corrected => "corrected",
            Status::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageIdentity {
    /// The path the image was opened from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// Row and column spacing in mm, when the file gives it.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// The DICOM image's SOP Instance UID: with the content hash, what identifies the image
    /// without naming the patient (no patient attribute is ever written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sop_instance_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub weights: String,
    /// SHA-256 of the weights file, hex (empty for an imported prediction).
    pub weights_sha256: String,
    pub samples: usize,
    pub seed: Option<u64>,
    /// Test-time warps averaged into `predicted` (0, or absent in older files: the image alone).
    #[serde(default)]
    pub test_time_warps: usize,
    /// Companion models whose landmarks were averaged into `predicted` (absent: none).
    #[serde(default, skip_serializing_if = "crate::model::uncertainty::is_zero")]
    pub companions: usize,
    /// The model's shape correction moved `predicted` (absent: it did not).
    #[serde(default, skip_serializing_if = "crate::model::uncertainty::is_false")]
    pub shape_corrected: bool,
    /// The model's patch refinement moved `predicted` after that (absent: it did not).
    #[serde(default, skip_serializing_if = "crate::model::uncertainty::is_false")]
    pub patch_refined: bool,
    /// The nodes of `predicted` were re-spaced along their contours last (absent: they were not).
    #[serde(default, skip_serializing_if = "crate::model::uncertainty::is_false")]
    pub contour_spaced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub format: String,
    pub image: ImageIdentity,
    pub model: ModelIdentity,
    /// Predicted mean per node, original-image pixels.
    pub predicted: Vec<Point>,
    /// Standard deviation of x and y per node over the latent samples, pixels.
    pub predicted_std: Vec<Point>,
    /// Mean node std: the image's uncertainty score.
    pub score: f32,
    /// The reviewer's positions (equal to `predicted` until something is moved).
    pub corrected: Vec<Point>,
    /// Nodes the reviewer moved.
    pub edited: Vec<bool>,
    pub status: Status,
    pub note: String,
    pub reviewer: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub modified: String,
    /// Seconds the image has been open for review, summed over sessions up to the last save
    /// (absent in files written before it was recorded).
    #[serde(default)]
    pub review_seconds: f64,
    /// The prediction's calibrated expected errors and the legend that explains them, when
    /// the model had a calibration (absent in older files and for uncalibrated models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<crate::model::calibration::Calibrated>,
    /// The cardiothoracic ratio over the model's samples (mean ± sd), when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ctr: Option<crate::metrics::ctr::CtrSpread>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a cxr-review annotation: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path} belongs to another image ({reason}); refusing to apply it to {image}")]
    WrongImage { path: PathBuf, image: PathBuf, reason: String },
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    Ok(hex(&Sha256::digest(std::fs::read(path)?)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the annotation of `image` lives: beside it, or in `dir` when one is chosen.
pub fn path_for(image: &Path, dir: Option<&Path>) -> PathBuf {
    let name = format!("{}{SUFFIX}", image.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    match dir {
        Some(d) => d.join(name),
        None => image.with_file_name(name),
    }
}

impl Annotation {
    /// A fresh, unreviewed annotation of `image` (read from `path`, hash `sha256`).
    pub fn from_prediction(path: &Path, sha256: String, image: &XrayImage, p: &Prediction, model: ModelIdentity) -> Self {
        let now = now_rfc3339();
        Annotation {
            format: FORMAT.into(),
            image: ImageIdentity {
                path: path.to_path_buf(),
                sha256,
                width: image.width,
                height: image.height,
                pixel_spacing_mm: image.spacing.map(|s| [s.row_mm, s.col_mm]),
                sop_instance_uid: image.uids.as_ref().map(|u| u.sop_instance.clone()).filter(|u| !u.is_empty()),
            },
            model,
            predicted: p.mean.to_vec(),
            predicted_std: p.std.to_vec(),
            score: p.score,
            corrected: p.mean.to_vec(),
            edited: vec![false; NUM_NODES],
            status: Status::Unreviewed,
            note: String::new(),
            reviewer: default_reviewer(),
            created: now.clone(),
            modified: now,
            review_seconds: 0.0,
            calibrated: p.calibrated.clone(),
            predicted_ctr: p.ctr,
        }
    }

    pub fn predicted_array(&self) -> [Point; NUM_NODES] {
        std::array::from_fn(|i| self.predicted[i])
    }

    pub fn std_array(&self) -> [Point; NUM_NODES] {
        std::array::from_fn(|i| self.predicted_std[i])
    }

    pub fn corrected_array(&self) -> [Point; NUM_NODES] {
        std::array::from_fn(|i| self.corrected[i])
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("annotation serialises")
    }

    /// Parse and check the node counts.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, AnnotationError> {
        let malformed = |reason: String| AnnotationError::Malformed { path: path.to_path_buf(), reason };
        let a: Annotation = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        if a.format != FORMAT {
            return Err(malformed(format!("format {:?}, expected {FORMAT:?}", a.format)));
        }
        for (name, n) in [
            ("predicted", a.predicted.len()),
            ("predicted_std", a.predicted_std.len()),
            ("corrected", a.corrected.len()),
            ("edited", a.edited.len()),
        ] {
            if n != NUM_NODES {
                return Err(malformed(format!("`{name}` has {n} entries, expected {NUM_NODES}")));
            }
        }
        if let Some(c) = &a.calibrated {
            c.check().map_err(|e| malformed(format!("`calibrated`: {e}")))?;
        }
        let side = a.image.width.max(a.image.height);
        if a.image.width == 0 || a.image.height == 0 || u64::from(side) > crate::xray::MAX_SIDE {
            return Err(malformed(format!("image size {}×{} is not a radiograph's", a.image.width, a.image.height)));
        }
        // Positions may sit a little outside the image (a node dragged past the edge), not
        // light-years away: every measurement rasterises them.
        let reach = 4.0 * side as f32;
        for (name, points) in [("predicted", &a.predicted), ("predicted_std", &a.predicted_std), ("corrected", &a.corrected)] {
            if let Some(i) = points.iter().position(|p| !p.iter().all(|v| v.is_finite() && v.abs() <= reach)) {
                return Err(malformed(format!("`{name}` node {} is not a position near the image: {:?}", i + 1, points[i])));
            }
        }
        if !a.score.is_finite() || !a.review_seconds.is_finite() {
            return Err(malformed("`score` or `review_seconds` is not a finite number".into()));
        }
        Ok(a)
    }

    pub fn read(path: &Path) -> Result<Self, AnnotationError> {
        let bytes = std::fs::read(path).map_err(|source| AnnotationError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&bytes, path)
    }

    /// Read the annotation at `path` for the image at `image_path`, refusing one made for
    /// other pixels (content hash or size differ).
    pub fn read_for(path: &Path, image_path: &Path, sha256: &str, image: &XrayImage) -> Result<Self, AnnotationError> {
        let a = Self::read(path)?;
        a.check_image(path, image_path, sha256, image)?;
        Ok(a)
    }

    /// Refuse this annotation (read from `path`) for the image at `image_path` when it was
    /// made for other pixels (content hash or size differ).
    pub fn check_image(&self, path: &Path, image_path: &Path, sha256: &str, image: &XrayImage) -> Result<(), AnnotationError> {
        let wrong = |reason: String| AnnotationError::WrongImage { path: path.to_path_buf(), image: image_path.to_path_buf(), reason };
        if self.image.sha256 != sha256 {
            return Err(wrong(format!(
                "it was made for {} with SHA-256 {}…",
                self.image.path.display(),
                &self.image.sha256.get(..12).unwrap_or("")
            )));
        }
        if (self.image.width, self.image.height) != (image.width, image.height) {
            return Err(wrong(format!("size {}×{} vs {}×{}", self.image.width, self.image.height, image.width, image.height)));
        }
        Ok(())
    }

    /// Write atomically (temporary file, fsync, rename), stamping the modification time.
    pub fn save(&mut self, path: &Path) -> std::io::Result<()> {
        self.modified = now_rfc3339();
        super::atomic::write_atomic(path, &self.to_json())
    }
}

fn default_reviewer() -> String {
    std::env::var("CXR_REVIEWER").or_else(|_| std::env::var("USER")).unwrap_or_default()
}

/// Current UTC time as RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(secs as i64)
}

/// Seconds since 1970 → "YYYY-MM-DDTHH:MM:SSZ" (proleptic Gregorian, days-from-civil inverse).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn annotation_paths() {
        assert_eq!(path_for(Path::new("/d/a.dcm"), None), PathBuf::from("/d/a.dcm.cxr.json"));
        assert_eq!(path_for(Path::new("/d/a.dcm"), Some(Path::new("/o"))), PathBuf::from("/o/a.dcm.cxr.json"));
    }

    /// The template shape as a one-sample prediction on the 1024-px phantom.
    pub fn example_annotation() -> Annotation {
        let img = crate::xray::phantom::chest_phantom();
        let p = crate::model::uncertainty::summarise(
            &crate::landmarks::template().iter().flat_map(|q| [q[0] / 1024.0, q[1] / 1024.0]).collect::<Vec<_>>(),
            1,
            &[0.0; 4],
            crate::model::preprocess::Letterbox::new(1024, 1024),
            None,
        );
        let model = ModelIdentity { weights: "w".into(), weights_sha256: String::new(), samples: 1, seed: None, test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false };
        Annotation::from_prediction(Path::new("x.png"), "ab".into(), &img, &p, model)
    }

    #[test]
    fn short_node_lists_are_refused() {
        let mut a = example_annotation();
        assert!(Annotation::parse(&a.to_json(), Path::new("a.json")).is_ok());
        a.corrected.pop();
        let err = Annotation::parse(&a.to_json(), Path::new("a.json")).unwrap_err().to_string();
        assert!(err.contains("`corrected` has 119"), "{err}");
        let err = Annotation::parse(b"{\"format\":", Path::new("a.json")).unwrap_err().to_string();
        assert!(err.starts_with("a.json: not a cxr-review annotation"), "{err}");
    }
}
