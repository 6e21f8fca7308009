//! Agreement between two segmentations of the same image, and between uncertainty and error.
//!
//! [`overlap`] and [`surface`] implement the CheXmask evaluation exactly (METHOD.md §6);
//! [`evaluation`] applies them to pairs of CheXmask rows. [`landmark_error`] measures
//! node-to-node distances; [`ctr`] the cardiothoracic ratio; [`correlation`], [`reliability`] and [`roc`] relate the model's
//! uncertainty to real error and to out-of-distribution labels; [`stats`] summarises.

pub mod correlation;
pub mod ctr;
pub mod evaluation;
pub mod isotonic;
pub mod landmark_error;
pub mod overlap;
pub mod reliability;
pub mod roc;
pub mod stats;
pub mod surface;

pub use overlap::dice;
pub use surface::{SurfaceDistance, surface_distance};
