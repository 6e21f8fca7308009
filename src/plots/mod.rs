//! PNG plots of evaluation results, drawn with egui's shapes and rendered on the CPU
//! ([`canvas`]), so they need no window, no GPU and no plotting crate.
//!
//! Every function takes plain numbers, so the command line and the GUI draw the same plots.

pub mod canvas;
pub mod chart;
pub mod colormap;
pub mod node_map;
pub mod per_image;
pub mod probes;
pub mod uncertainty;
