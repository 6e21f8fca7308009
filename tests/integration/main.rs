//! The integration tests, built as one binary: each `tests/*.rs` file used to link its
//! own copy of the app with burn, wgpu and egui, which cost a link and a few hundred MB
//! of disk apiece. Run one group with `cargo test --test integration gui_snapshot`.

mod common;

mod batch;
mod calibration;
mod chexmask_eval;
mod exports;
mod formats;
mod gui_review;
mod gui_snapshot;
mod gui_viewer;
mod hardening;
mod loading;
mod model_parity;
mod training;
mod validation;
