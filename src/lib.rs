//! cxr-review: review landmark segmentations of chest X-rays with HybridGNet uncertainty.
//!
//! Data flows one way through the modules:
//! file → [`xray`] (pixels, spacing, window) → model pre-processing → model →
//! prediction (mean, std, latent) → annotation document → metrics → exports.
//! [`train`] and [`validation`] make and judge the model from annotated images.
//! The GUI ([`gui`]) and the command line ([`cli`]) both call into the same stages.

pub mod batch;
pub mod cli;
pub mod formats;
pub mod fuzz;
pub mod geometry;
pub mod gui;
pub mod landmarks;
pub mod masks;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod plots;
pub mod review;
pub mod train;
pub mod validation;
pub mod xray;
