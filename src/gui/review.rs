//! The review of the image on screen: its annotation, the edit state, autosave, and the
//! side panel with status, correction errors and layer toggles.

use egui::{Color32, RichText};
use std::path::PathBuf;
use std::time::Instant;

use super::overlay::{self, Layers};
use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::ctr;
use crate::review::correction::{Correction, correction};
use crate::review::store::Slot;
use crate::review::triage;
use crate::review::{Annotation, EditState, Status};
use crate::xray::PixelSpacing;

pub struct Review {
    pub image_id: u64,
    /// Where the review is saved; None for the synthetic phantom, whose review is never saved.
    pub slot: Option<Slot>,
    pub annotation: Annotation,
    pub edit: EditState,
    pub spacing: Option<PixelSpacing>,
    /// Last save result, for the panel.
    pub save_message: Option<Result<String, String>>,
    /// Since the review was opened or last saved: time not yet in `review_seconds`.
    timer: Instant,
    /// The last save failed: the review exists only in memory until a save succeeds.
    pub unsaved: bool,
}

/// What the panel asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelAction {
    None,
    Next,
}

impl Review {
    pub fn new(image_id: u64, slot: Option<Slot>, annotation: Annotation, spacing: Option<PixelSpacing>) -> Self {
        let edit = EditState::new(annotation.predicted_array(), annotation.corrected_array());
        Review { image_id, slot, annotation, edit, spacing, save_message: None, timer: Instant::now(), unsaved: false }
    }

    /// The file the review is saved to.
    pub fn file(&self) -> Option<PathBuf> {
        self.slot.as_ref().map(|s| s.path.clone())
    }

    pub fn correction(&self) -> Correction {
        correction(&self.edit.predicted, &self.edit.positions, self.spacing)
    }

    /// Copy the edit state into the annotation and write it if anything changed (after a
    /// failed save, the next change tries again).
    pub fn autosave(&mut self) {
        if !self.edit.dirty {
            return;
        }
        self.sync();
        self.save();
    }

    fn sync(&mut self) {
        self.annotation.corrected = self.edit.positions.to_vec();
        self.annotation.edited = self.edit.edited().to_vec();
        if self.edit.any_edited() && self.annotation.status == Status::Unreviewed {
            self.annotation.status = Status::Corrected;
        }
        if !self.edit.any_edited() && self.annotation.status == Status::Corrected {
            self.annotation.status = Status::Unreviewed;
        }
    }

    /// Seconds spent on this image, the current session included.
    pub fn review_seconds(&self) -> f64 {
        self.annotation.review_seconds + self.timer.elapsed().as_secs_f64()
    }

    pub fn save(&mut self) {
        self.edit.dirty = false;
        self.annotation.review_seconds = self.review_seconds();
        self.timer = Instant::now();
        let Some(slot) = self.slot.as_mut() else {
            self.save_message = Some(Err("not saved: the synthetic phantom is never saved".into()));
            return;
        };
        match slot.save(&mut self.annotation) {
            Ok(note) => {
                self.unsaved = false;
                // One line per save: the reviewer's own record of time spent, and our timing source.
                eprintln!(
                    "saved {} ({}) after {:.1} s of review",
                    slot.path.display(),
                    self.annotation.status.label(),
                    self.annotation.review_seconds
                );
                let name = slot.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.save_message = Some(match note {
                    None => Ok(format!("saved {name}")),
                    Some(note) => Err(note),
                });
            }
            Err(e) => {
                self.unsaved = true;
                eprintln!("{e}");
                self.save_message = Some(Err(format!(
                    "{e}. The review is kept in memory only: File > Save review as… saves it elsewhere."
                )));
            }
        }
    }

    /// Save to `path` from now on ("save as").
    pub fn save_to(&mut self, path: PathBuf) {
        match self.slot.as_mut() {
            Some(slot) => slot.move_to(path),
            None => self.slot = Some(Slot::at(path)),
        }
        self.sync();
        self.save();
    }

    /// Accept: `corrected` when nodes were moved, else `accepted`.
    pub fn accept(&mut self) {
        self.edit.end_drag();
        self.sync();
        self.annotation.status = if self.edit.any_edited() { Status::Corrected } else { Status::Accepted };
        self.save();
    }

    pub fn reject(&mut self) {
        self.edit.end_drag();
        self.sync();
        self.annotation.status = Status::Rejected;
        self.save();
    }

    /// The side panel. `hovered` is the node under the pointer.
    pub fn panel(&mut self, ui: &mut egui::Ui, hovered: Option<usize>, layers: &mut Layers, model: &str) -> PanelAction {
        let mut action = PanelAction::None;
        ui.heading("Review");
        ui.label(RichText::new(model).small().color(Color32::GRAY));
        if self.unsaved {
            ui.label(
                RichText::new("NOT SAVED: this review exists only in memory (File > Save review as…)")
                    .strong()
                    .color(Color32::from_rgb(240, 100, 90)),
            );
        }
        ui.separator();
        let a = &self.annotation;
        let info = super::worklist::info_of(a);
        ui.label(format!("image score {:.2} px (mean node std; {:.2} at 1024)", a.score, info.score_1024));
        if let Some(c) = &a.calibrated {
            ui.label(format!("expected node error {:.1} px on average (calibrated on validation images)", c.mean()));
        }
        if info.ood {
            ui.label(RichText::new("! unusually uncertain: check this segmentation closely").color(Color32::from_rgb(240, 170, 60)));
        }
        ui.horizontal(|ui| {
            ui.label("status");
            ui.label(RichText::new(self.annotation.status.label()).strong());
        });
        ui.horizontal(|ui| {
            let label = ui.label("reviewer");
            if ui.text_edit_singleline(&mut self.annotation.reviewer).labelled_by(label.id).lost_focus() {
                self.edit.dirty = true;
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("note");
            if ui.text_edit_singleline(&mut self.annotation.note).labelled_by(label.id).lost_focus() {
                self.edit.dirty = true;
            }
        });
        ui.horizontal(|ui| {
            if ui.button("Accept (A)").clicked() {
                self.accept();
                action = PanelAction::Next;
            }
            if ui.button("Reject (X)").clicked() {
                self.reject();
                action = PanelAction::Next;
            }
        });
        ui.horizontal(|ui| {
            if ui.button("Undo").clicked() {
                self.edit.undo();
            }
            if ui.button("Redo").clicked() {
                self.edit.redo();
            }
            let sel = self.edit.selected_nodes();
            if ui.add_enabled(!sel.is_empty(), egui::Button::new("Reset selected")).clicked() {
                self.edit.reset_nodes(&sel);
            }
        });
        ui.horizontal(|ui| {
            for organ in Organ::ALL {
                if ui.small_button(format!("Reset {}", short(organ))).clicked() {
                    self.edit.reset_organ(organ);
                }
            }
        });
        ui.separator();

        ui.label(RichText::new("Correction vs prediction").strong());
        let c = self.correction();
        let mm = self.spacing.is_some();
        egui::Grid::new("correction").striped(true).show(ui, |ui| {
            ui.label("");
            ui.label("mean px");
            ui.label("max px");
            if mm {
                ui.label("max mm");
            }
            ui.label("Dice");
            ui.end_row();
            for o in &c.organs {
                ui.label(RichText::new(o.organ.name()).color(overlay::organ_colour(o.organ)));
                ui.monospace(format!("{:.1}", o.mean_px));
                ui.monospace(format!("{:.1}", o.max_px));
                if mm {
                    ui.monospace(format!("{:.1}", o.max_mm.unwrap_or(0.0)));
                }
                ui.monospace(format!("{:.4}", o.dice));
                ui.end_row();
            }
        });
        let moved = self.edit.edited().iter().filter(|&&e| e).count();
        ui.label(format!("{moved} of {NUM_NODES} nodes moved"));
        ui.separator();
        self.ctr_panel(ui);
        ui.separator();

        let sel = self.edit.selected_nodes();
        if let Some(i) = hovered.or((sel.len() == 1).then(|| sel[0])) {
            let (organ, k) = Organ::of_node(i).expect("node index in range");
            let s = self.edit_std(i);
            let rank = triage::rank(&triage::least_certain_first(&self.node_uncertainty()), i);
            ui.label(RichText::new(format!("node {i} · {} #{k}", organ.name())).strong());
            ui.label(format!("{rank} of {NUM_NODES} by uncertainty (U / Shift+U: next / previous)"));
            ui.monospace(format!("std x {:.2} y {:.2} px", s[0], s[1]));
            if let Some(c) = &self.annotation.calibrated {
                ui.monospace(format!("expected error ≈ {:.1} px", c.expected_error[i]));
            }
            if self.edit.is_edited(i) {
                let d = c.node_px[i];
                let mm = c.node_mm.map(|m| format!(" ({:.2} mm)", m[i])).unwrap_or_default();
                ui.monospace(format!("moved {d:.1} px{mm}"));
            }
        } else {
            ui.label(RichText::new("hover a node for details · U: visit the least certain nodes in turn").color(Color32::GRAY));
        }
        ui.separator();
        ui.label(RichText::new("Layers").strong());
        ui.checkbox(&mut layers.contours, "contours (C)");
        ui.checkbox(&mut layers.nodes, "nodes");
        ui.checkbox(&mut layers.ellipses, "1-σ ellipses (E)");
        ui.checkbox(&mut layers.fill, "mask fill (M)");
        ui.checkbox(&mut layers.prediction, "prediction under edits");
        ui.checkbox(&mut layers.ctr, "CTR callipers (T)");
        if let Some(msg) = &self.save_message {
            ui.separator();
            match msg {
                Ok(m) => ui.label(RichText::new(m).color(Color32::GRAY)),
                Err(e) => ui.label(RichText::new(e).color(Color32::from_rgb(240, 100, 90))),
            };
        }
        action
    }

    /// The cardiothoracic ratio of the landmarks on screen (live while dragging) and the
    /// model's over its samples.
    fn ctr_panel(&self, ui: &mut egui::Ui) {
        let live = ctr::ctr(&self.edit.positions);
        ui.horizontal(|ui| {
            ui.label(RichText::new("Cardiothoracic ratio").strong());
            match live {
                Some(c) => {
                    let colour = if c.cardiomegaly() { Color32::from_rgb(240, 150, 60) } else { Color32::LIGHT_GRAY };
                    ui.label(RichText::new(format!("CTR {:.3}", c.ratio)).strong().color(colour));
                }
                None => {
                    ui.label("n/a");
                }
            }
        });
        if let Some(c) = live {
            let mm = self.spacing.map(|s| s.col_mm);
            let width = |px: f64| match mm {
                Some(mm) => format!("{px:.0} px ({:.0} mm)", px * mm),
                None => format!("{px:.0} px"),
            };
            ui.label(format!("heart {} / thorax {}", width(c.heart_width), width(c.thorax_width)));
            if c.cardiomegaly() {
                ui.label(
                    RichText::new(format!("above {}: cardiomegaly range on a PA film", ctr::CARDIOMEGALY_CTR))
                        .color(Color32::from_rgb(240, 150, 60)),
                );
            }
        }
        if let Some(s) = &self.annotation.predicted_ctr {
            ui.label(
                RichText::new(format!("model: {:.3} ± {:.3} over N = {} samples", s.mean, s.sd, s.samples)).color(Color32::GRAY),
            );
        }
    }

    pub fn edit_std(&self, node: usize) -> [f32; 2] {
        self.annotation.predicted_std[node]
    }

    /// Each node's place on the colour scale: what the colours show (the calibrated expected
    /// error, else the std), so the least certain node is the one drawn the most yellow.
    pub fn node_uncertainty(&self) -> [f32; NUM_NODES] {
        let a = &self.annotation;
        let colours = overlay::NodeColours::for_image(a.calibrated.as_ref(), a.image.width, a.image.height);
        std::array::from_fn(|n| colours.t(n, &self.edit_std(n)))
    }

    /// Select the next (or previous) node in least-certain-first order after the one selected
    /// alone, and return it.
    pub fn visit_uncertain(&mut self, forward: bool) -> usize {
        let order = triage::least_certain_first(&self.node_uncertainty());
        let sel = self.edit.selected_nodes();
        let current = (sel.len() == 1).then(|| sel[0]);
        let node = triage::step(&order, current, forward);
        self.edit.select(node, false);
        node
    }
}

fn short(organ: Organ) -> &'static str {
    match organ {
        Organ::RightLung => "R lung",
        Organ::LeftLung => "L lung",
        Organ::Heart => "heart",
    }
}
