//! Validation of a model on annotated images: accuracy (Dice, node error, std–error
//! correlation) and uncertainty probes (noise, occlusion, non-chest images). The
//! `validate` command and the shipped model's tests both use it.

pub mod accuracy;
pub mod calibration;
pub mod probes;

use anyhow::Context;

use crate::landmarks::{NUM_NODES, Point};
use crate::model::{HybridGNet, Sampling};
use crate::train::dataset::Sample;
use crate::xray;
use accuracy::{ImageAccuracy, score_image};
use probes::{Grey, NoiseResponse, OcclusionResult, noise_response, occlusion_response};

/// Noise levels of the noise probe, as a fraction of the grey range.
pub const NOISE_SIGMAS: [f32; 5] = [0.0, 0.05, 0.1, 0.2, 0.3];
/// The occluding square's side as a fraction of the image's long side.
pub const OCCLUSION_SIDE: f32 = 0.2;
/// Node the occluding square is centred on: the right lung's lowest lateral point, where
/// the costophrenic angle sits (METHOD.md §1 node order).
pub const OCCLUSION_NODE: usize = 21;

/// An annotated image loaded as the model sees it (default window, grey in [0, 1]).
pub struct Annotated {
    pub grey: Grey,
    pub landmarks: [Point; NUM_NODES],
}

pub fn load_sample(s: &Sample) -> anyhow::Result<Annotated> {
    let img = xray::load(&s.image).with_context(|| format!("{}: cannot load the image", s.origin))?;
    let name = s.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let pixels = img.display_intensities(img.default_window());
    Ok(Annotated { grey: Grey { name, width: img.width, height: img.height, pixels }, landmarks: s.landmarks })
}

/// Everything `validate` measures on one image.
pub struct ImageReport {
    pub accuracy: ImageAccuracy,
    /// Image score (and its parts) at each of [`NOISE_SIGMAS`].
    pub noise: NoiseResponse,
    pub occlusion: OcclusionResult,
}

pub fn validate_image(model: &HybridGNet, a: &Annotated, sampling: Sampling) -> ImageReport {
    let g = &a.grey;
    ImageReport {
        accuracy: score_image(model, &g.name, &g.pixels, g.width, g.height, &a.landmarks, sampling),
        noise: noise_response(model, g, &NOISE_SIGMAS, sampling),
        occlusion: occlusion_response(model, g, OCCLUSION_NODE, OCCLUSION_SIDE, sampling),
    }
}
