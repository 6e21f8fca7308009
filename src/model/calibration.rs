//! Post-hoc calibration: node std → expected node error, fitted on annotated images
//! (`cxr-review calibrate`) and stored in the weights file's metadata, so the GUI's colours
//! and the CSVs' calibrated columns read "about N px off".
//!
//! The map is `expected = node_factor[n] · organ_map[organ(n)](std)`, both in pixels at 1024:
//! a monotone organ map (more spread, more error) times a per-node factor (some nodes, such
//! as the costophrenic angles, run further off than their organ's average at the same
//! spread). The raw std is never replaced: predictions keep it beside the calibrated value.

use serde::{Deserialize, Serialize};

use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::isotonic::MonotoneMap;

/// Metadata key of the calibration (JSON) in our safetensors files.
pub const CALIBRATION_KEY: &str = "calibration";

/// How [`Calibration::fitted_on`] names the images a map was fitted on, so that
/// [`Calibration::fitted_on_split`] can tell them again.
pub fn fitted_images(count: usize, split: &str) -> String {
    format!("{count} {}", of_split(split))
}

fn of_split(split: &str) -> String {
    format!("images of `{split}`")
}

/// One row of the legend's reliability table: nodes whose expected error fell in
/// [lo, hi) px at 1024 on the fitting images (out of fold), and the error they really had.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityRow {
    pub lo: f64,
    pub hi: f64,
    pub nodes: usize,
    pub mean_expected: f64,
    pub mean_error: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What was fitted ("organ isotonic × node factor").
    pub method: String,
    /// On what: "jsrt 21 (21 images of `val`), N = 50, seed 0, …" (see [`fitted_images`]).
    pub fitted_on: String,
    /// Right lung, left lung, heart.
    pub organ_maps: Vec<MonotoneMap>,
    /// One per node.
    pub node_factors: Vec<f64>,
    /// Top of the colour scale, px at 1024 (the rows' last `hi`).
    pub scale_top_1024: f64,
    pub reliability: Vec<ReliabilityRow>,
    /// The organ maps' input, when it is a node profile rather than the std.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<NodeProfile>,
    /// Which of a prediction's stds the map reads (files calibrated before the refined
    /// samples existed read the samples' own).
    #[serde(default, skip_serializing_if = "StdOf::is_samples")]
    pub std_of: StdOf,
    /// Image score (mean node std, px at 1024) above which an image is flagged as unusually
    /// uncertain: [`OOD_MARGIN`] × the highest score among the fitting images. It belongs to
    /// the model, whose spread sets the scale (absent in files calibrated before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_score_1024: Option<f64>,
}

/// Which spread of the latent samples a calibration maps to expected error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StdOf {
    /// The samples as decoded, re-spaced when the model re-spaces its landmarks.
    #[default]
    Samples,
    /// The samples carried through the patch refinement as the mean is
    /// ([`super::refined_spread`]).
    RefinedSamples,
}

impl StdOf {
    fn is_samples(&self) -> bool {
        *self == StdOf::Samples
    }

    /// "samples" or "refined samples", for reports.
    pub fn describe(self) -> &'static str {
        match self {
            StdOf::Samples => "samples",
            StdOf::RefinedSamples => "refined samples",
        }
    }
}

/// How far above the highest score seen on the fitting images an image must score to be
/// flagged. The non-chest images of `validate` score about twice the highest val image
/// (assets/README.md), so 1.2 flags them with room while sparing the val images.
pub const OOD_MARGIN: f64 = 1.2;

fn check_flag_threshold(t: Option<f64>) -> Result<(), String> {
    match t {
        Some(t) if !(t.is_finite() && t > 0.0) => Err("the flag threshold must be finite and positive".into()),
        _ => Ok(()),
    }
}

/// `typical_error[n] · (std[n] / typical_std[n])^node_exponent · (image mean std / typical
/// mean std)^image_exponent`, px at 1024: a node's usual error, scaled by how unsure the model
/// is of this node and of this image compared with usual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// Each node's mean error on the images the profile was measured on, px at 1024.
    pub typical_error: Vec<f64>,
    /// Each node's mean std there, px at 1024.
    pub typical_std: Vec<f64>,
    pub node_exponent: f64,
    pub image_exponent: f64,
    /// "jsrt 174 (174 images of `train`)" (see [`fitted_images`]).
    pub measured_on: String,
    /// Each node's usual error is replaced by the error its patches lead one to expect on this
    /// image ([`crate::model::patch_error`]), where the prediction carries it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typical_from_patches: bool,
}

/// Least expected error from the patches a profile scales, px at 1024: a regression saying a
/// node is exactly placed would pin its expected error at 0 whatever its spread.
pub const MIN_PATCH_ERROR_1024: f64 = 0.5;

/// The exponents' range: beyond it a profile would be dominated by the spread's noise.
pub const MAX_PROFILE_EXPONENT: f64 = 4.0;

impl NodeProfile {
    /// The profile's value for every node of an image, from its stds and, for a profile that
    /// reads them, its patches' expected errors (both px at 1024).
    pub fn value(&self, std_1024: &[f64; NUM_NODES], patch_1024: Option<&[f64; NUM_NODES]>) -> [f64; NUM_NODES] {
        let typical = |n: usize| match patch_1024.filter(|_| self.typical_from_patches) {
            Some(e) => e[n].max(MIN_PATCH_ERROR_1024),
            None => self.typical_error[n],
        };
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let image = (mean(std_1024) / mean(&self.typical_std).max(1e-9)).max(0.0);
        let image_term = image.powf(self.image_exponent);
        std::array::from_fn(|n| {
            let rel = (std_1024[n] / self.typical_std[n].max(1e-9)).max(0.0);
            let v = typical(n) * rel.powf(self.node_exponent) * image_term;
            if v.is_finite() { v } else { 0.0 }
        })
    }

    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [("typical errors", &self.typical_error), ("typical stds", &self.typical_std)] {
            if v.len() != NUM_NODES {
                return Err(format!("node profile: {} {name}, expected {NUM_NODES}", v.len()));
            }
            if v.iter().any(|x| !x.is_finite() || *x <= 0.0) {
                return Err(format!("node profile: {name} must be finite and positive"));
            }
        }
        for (name, e) in [("node", self.node_exponent), ("image", self.image_exponent)] {
            if !(e.is_finite() && (0.0..=MAX_PROFILE_EXPONENT).contains(&e)) {
                return Err(format!("node profile: {name} exponent {e} outside 0–{MAX_PROFILE_EXPONENT}"));
            }
        }
        Ok(())
    }
}

/// A calibration applied to one prediction: what the review needs to colour nodes by expected
/// error and explain the colours, kept with the annotation so a later model cannot change
/// what an earlier review's colours meant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrated {
    /// Per node, pixels of the image.
    pub expected_error: Vec<f32>,
    /// Top of the colour scale, pixels of the image.
    pub scale_top_px: f32,
    /// The legend rows, px at 1024 (as fitted).
    pub reliability: Vec<ReliabilityRow>,
    /// Pixels of the image per pixel at 1024.
    pub px_per_1024: f32,
    /// The model's flag threshold for the image score, px at 1024 ([`Calibration::ood_score_1024`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_score_1024: Option<f32>,
}

impl Calibrated {
    pub fn check(&self) -> Result<(), String> {
        if self.expected_error.len() != NUM_NODES {
            return Err(format!("{} expected errors, expected {NUM_NODES}", self.expected_error.len()));
        }
        if self.expected_error.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("expected errors must be finite and non-negative".into());
        }
        if !(self.scale_top_px.is_finite() && self.scale_top_px > 0.0 && self.px_per_1024.is_finite() && self.px_per_1024 > 0.0) {
            return Err("the colour scale must be positive".into());
        }
        check_flag_threshold(self.ood_score_1024.map(f64::from))
    }

    /// Does an image score (mean node std, px at 1024) exceed the model's flag threshold?
    /// Never without one.
    pub fn flags(&self, score_1024: f32) -> bool {
        self.ood_score_1024.is_some_and(|t| score_1024 > t)
    }

    /// Mean expected node error, pixels: the calibrated image score.
    pub fn mean(&self) -> f32 {
        (self.expected_error.iter().map(|&v| v as f64).sum::<f64>() / self.expected_error.len().max(1) as f64) as f32
    }
}

impl Calibration {
    /// Was the map fitted on `split`'s images (so its figures there are in sample)?
    pub fn fitted_on_split(&self, split: &str) -> bool {
        let tag = format!(" {}", of_split(split));
        self.fitted_on.contains(&tag) || self.profile.as_ref().is_some_and(|p| p.measured_on.contains(&tag))
    }

    /// Apply to node stds (image pixels) of an image whose long side is `long_side` pixels.
    pub fn apply(&self, node_std_px: &[f32; NUM_NODES], patch_error_px: Option<&[f32]>, long_side: u32) -> Calibrated {
        let px_per_1024 = long_side.max(1) as f32 / 1024.0;
        Calibrated {
            expected_error: self.expected_errors(node_std_px, patch_error_px, long_side),
            scale_top_px: self.scale_top_1024 as f32 * px_per_1024,
            reliability: self.reliability.clone(),
            px_per_1024,
            ood_score_1024: self.ood_score_1024.map(|t| t as f32),
        }
    }

    /// Every node's expected error given the image's node stds and, where the prediction
    /// carries them, its patches' expected errors, all px at 1024.
    pub fn expected_errors_1024(&self, std_1024: &[f64; NUM_NODES], patch_1024: Option<&[f64; NUM_NODES]>) -> [f64; NUM_NODES] {
        let input = match &self.profile {
            Some(p) => p.value(std_1024, patch_1024),
            None => *std_1024,
        };
        std::array::from_fn(|n| {
            let organ = Organ::of_node(n).map(|(o, _)| o.index()).unwrap_or(0);
            self.node_factors[n] * self.organ_maps[organ].apply(input[n])
        })
    }

    /// Every node's expected error in image pixels, from its std in image pixels, for an image
    /// whose long side is `long_side` pixels.
    pub fn expected_errors(&self, node_std_px: &[f32; NUM_NODES], patch_error_px: Option<&[f32]>, long_side: u32) -> Vec<f32> {
        let to_1024 = 1024.0 / long_side.max(1) as f64;
        let std_1024: [f64; NUM_NODES] = std::array::from_fn(|n| node_std_px[n] as f64 * to_1024);
        let patch_1024 = patch_error_px
            .filter(|e| e.len() == NUM_NODES)
            .map(|e| -> [f64; NUM_NODES] { std::array::from_fn(|n| e[n] as f64 * to_1024) });
        self.expected_errors_1024(&std_1024, patch_1024.as_ref()).iter().map(|e| (e / to_1024) as f32).collect()
    }

    pub fn check(&self) -> Result<(), String> {
        if self.organ_maps.len() != 3 {
            return Err(format!("{} organ maps, expected 3", self.organ_maps.len()));
        }
        for (m, o) in self.organ_maps.iter().zip(Organ::ALL) {
            m.check().map_err(|e| format!("{} map: {e}", o.name()))?;
        }
        if self.node_factors.len() != NUM_NODES {
            return Err(format!("{} node factors, expected {NUM_NODES}", self.node_factors.len()));
        }
        if self.node_factors.iter().any(|f| !f.is_finite() || *f <= 0.0) {
            return Err("node factors must be finite and positive".into());
        }
        if !(self.scale_top_1024.is_finite() && self.scale_top_1024 > 0.0) {
            return Err("the colour scale's top must be positive".into());
        }
        check_flag_threshold(self.ood_score_1024)?;
        self.profile.as_ref().map_or(Ok(()), NodeProfile::check)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("calibration serialises")
    }

    /// Parse and check a metadata value.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let c: Calibration = serde_json::from_str(text).map_err(|e| format!("calibration metadata: {e}"))?;
        c.check().map_err(|e| format!("calibration metadata: {e}"))?;
        Ok(c)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn example() -> Calibration {
        Calibration {
            method: "test".into(),
            fitted_on: "test".into(),
            organ_maps: vec![
                MonotoneMap { knots: vec![[2.0, 10.0], [10.0, 20.0]] },
                MonotoneMap::identity(),
                MonotoneMap::identity(),
            ],
            node_factors: (0..NUM_NODES).map(|n| if n == 21 { 2.0 } else { 1.0 }).collect(),
            scale_top_1024: 40.0,
            reliability: vec![ReliabilityRow { lo: 0.0, hi: 40.0, nodes: 3, mean_expected: 12.0, mean_error: 11.0 }],
            profile: None,
            ood_score_1024: None,
            std_of: Default::default(),
        }
    }

    fn profiled() -> Calibration {
        Calibration {
            organ_maps: vec![MonotoneMap { knots: vec![[1e-3, 2e-3]] }; 3],
            node_factors: vec![1.0; NUM_NODES],
            profile: Some(NodeProfile {
                typical_error: (0..NUM_NODES).map(|n| if n == 21 { 30.0 } else { 10.0 }).collect(),
                typical_std: vec![5.0; NUM_NODES],
                node_exponent: 0.5,
                image_exponent: 1.0,
                measured_on: "jsrt 174 (174 images of `train`)".into(),
                typical_from_patches: false,
            }),
            ..example()
        }
    }

    #[test]
    fn expected_error_combines_organ_map_and_node_factor() {
        let c = example();
        let e = c.expected_errors_1024(&[6.0; NUM_NODES], None);
        assert_eq!((e[0], e[21], e[50]), (15.0, 30.0, 6.0));
        // A 2048-px image: its pixels are half the size of those at 1024.
        let mut std = [0.0f32; NUM_NODES];
        std[0] = 12.0;
        assert_eq!(c.expected_errors(&std, None, 2048)[0], 30.0);
    }

    #[test]
    fn a_node_profile_scales_the_usual_error_by_the_node_and_image_spread() {
        let c = profiled();
        // Typical spread everywhere: twice (the organ scale) the node's usual error.
        let e = c.expected_errors_1024(&[5.0; NUM_NODES], None);
        assert_eq!((e[0], e[21]), (20.0, 60.0));
        // One node four times as unsure: √4 = 2 × (node), and the image's mean rises with it.
        let mut std = [5.0; NUM_NODES];
        std[3] = 20.0;
        let image = (5.0 * 119.0 + 20.0) / 120.0 / 5.0;
        let e = c.expected_errors_1024(&std, None);
        assert!((e[3] - 2.0 * 10.0 * 2.0 * image).abs() < 1e-9, "{}", e[3]);
        assert!((e[0] - 2.0 * 10.0 * image).abs() < 1e-9, "{}", e[0]);
        assert!(c.fitted_on_split("train") && !c.fitted_on_split("val"));
        assert_eq!(Calibration::from_json(&c.to_json()).unwrap(), c);
        // A profile that reads the patches scales their expected error instead of the usual
        // one, where the prediction carries it (and never below the floor).
        let mut patches = [4.0; NUM_NODES];
        patches[21] = 0.0;
        assert_eq!(c.expected_errors_1024(&[5.0; NUM_NODES], Some(&patches))[0], 20.0, "not asked to: ignored");
        let mut reads = profiled();
        reads.profile.as_mut().unwrap().typical_from_patches = true;
        let e = reads.expected_errors_1024(&[5.0; NUM_NODES], Some(&patches));
        assert_eq!((e[0], e[21]), (8.0, 2.0 * MIN_PATCH_ERROR_1024));
        assert_eq!(reads.expected_errors_1024(&[5.0; NUM_NODES], None)[21], 60.0, "without them: the usual error");
        assert!(reads.to_json().contains("typical_from_patches") && !c.to_json().contains("typical_from_patches"));
        assert_eq!(Calibration::from_json(&reads.to_json()).unwrap(), reads);
        // Files written before profiles existed still read.
        assert!(!example().to_json().contains("profile"));
        let mut bad = profiled();
        bad.profile.as_mut().unwrap().node_exponent = 9.0;
        assert!(Calibration::from_json(&bad.to_json()).unwrap_err().contains("node exponent 9 outside"));
        let mut bad = profiled();
        bad.profile.as_mut().unwrap().typical_std[7] = 0.0;
        assert!(Calibration::from_json(&bad.to_json()).unwrap_err().contains("typical stds must be finite and positive"));
    }

    #[test]
    fn metadata_round_trips_and_bad_values_are_refused() {
        let c = example();
        assert_eq!(Calibration::from_json(&c.to_json()).unwrap(), c);
        let mut bad = example();
        bad.node_factors.pop();
        assert!(Calibration::from_json(&bad.to_json()).unwrap_err().contains("119 node factors"));
        let mut bad = example();
        bad.organ_maps[2].knots.clear();
        assert!(Calibration::from_json(&bad.to_json()).unwrap_err().contains("Heart map: no knots"));
        let mut bad = example();
        bad.ood_score_1024 = Some(-1.0);
        assert!(Calibration::from_json(&bad.to_json()).unwrap_err().contains("flag threshold"));
        // Files calibrated before the threshold existed still read, and flag nothing.
        assert!(!c.to_json().contains("ood_score"));
        // … and those calibrated before the refined samples read the samples' own spread.
        assert!(!c.to_json().contains("std_of") && c.std_of == StdOf::Samples);
        let refined = Calibration { std_of: StdOf::RefinedSamples, ..example() };
        assert!(refined.to_json().contains(r#""std_of":"refined-samples""#));
        assert_eq!(Calibration::from_json(&refined.to_json()).unwrap(), refined);
        let unknown = refined.to_json().replace("refined-samples", "warps");
        assert!(Calibration::from_json(&unknown).unwrap_err().contains("unknown variant `warps`"));
        let applied = c.apply(&[5.0; NUM_NODES], None, 1024);
        assert!(!applied.flags(1e6));
        let with = Calibration { ood_score_1024: Some(12.0), ..example() }.apply(&[5.0; NUM_NODES], None, 2048);
        assert!(with.flags(12.5) && !with.flags(11.9), "the threshold is px at 1024, whatever the image size");
        assert!(Calibration::from_json("{").is_err());
    }
}
