//! The desktop viewer (eframe with the wgpu renderer).

pub mod app;
pub mod folder_metrics;
pub mod inference;
pub mod overlay;
pub mod review;
pub mod status_bar;
pub mod stress;
pub mod view;
pub mod viewer;
pub mod worklist;
pub mod xray_renderer;

use std::path::PathBuf;

pub use app::CxrApp;

/// Open the main window on `paths` (files or folders; none opens the phantom).
pub fn run(paths: Vec<PathBuf>, show_patient_name: bool) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("cxr-review")
            .with_inner_size([1280.0, 900.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native("cxr-review", options, Box::new(move |cc| {
        let mut app = CxrApp::new(cc, paths);
        app.set_show_patient_name(show_patient_name);
        Ok(Box::new(app))
    }))
        .map_err(|e| anyhow::anyhow!("cannot start the window: {e}"))
}
