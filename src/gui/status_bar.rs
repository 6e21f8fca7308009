//! The bottom line: what is under the cursor, the window, zoom and position in the list.

use super::viewer::{Hover, Shown};

pub fn ui(ui: &mut egui::Ui, shown: Option<&Shown>, hover: Option<Hover>, position: Option<(usize, usize)>) {
    ui.horizontal(|ui| {
        match hover {
            Some(h) => {
                ui.monospace(format!("x {:>5}  y {:>5}", h.pixel[0], h.pixel[1]));
                ui.separator();
                ui.monospace(format!("value {}", format_value(h.value)));
                if let Some([x, y]) = h.mm {
                    ui.separator();
                    ui.monospace(format!("{x:.1} mm, {y:.1} mm"));
                }
            }
            None => {
                ui.monospace("—");
            }
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if let Some((i, n)) = position {
                ui.monospace(format!("{}/{}", i + 1, n));
                ui.separator();
            }
            if let Some(s) = shown {
                let img = &s.image;
                if let Some(v) = s.view {
                    ui.monospace(format!("zoom {:.0}%", v.zoom * ui.ctx().pixels_per_point() * 100.0));
                    ui.separator();
                }
                ui.monospace(format!("WW {} WL {}", format_value(s.window.width as f32), format_value(s.window.center as f32)));
                if s.inverted() {
                    ui.monospace("inverted");
                }
                ui.separator();
                let spacing = img.spacing.map(|sp| format!(", {:.3} mm/px", sp.col_mm)).unwrap_or_default();
                ui.monospace(format!("{}×{} {}-bit {}{}", img.width, img.height, img.source.bits_stored, img.source.modality, spacing));
                ui.separator();
                ui.monospace(&img.source.label);
            }
        });
    });
}

/// Integers without decimals (most X-ray data), others with two.
fn format_value(v: f32) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}
