//! The "Folder metrics" window: the reviewed images of the worklist scored prediction
//! against correction (review::folder), as a summary table and interactive plots. Scoring
//! fills and compares masks per image, so it runs on a background thread.

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, Points};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, channel};

use super::overlay::organ_colour;
use crate::landmarks::Organ;
use crate::metrics::stats::describe;
use crate::review::folder::{FolderEvaluation, ReviewedImage, evaluate_folder};

#[derive(Default)]
pub struct FolderMetrics {
    pub open: bool,
    pending: Option<Receiver<Scored>>,
    result: Option<Scored>,
}

/// A folder's evaluation with what the plots derive from it, computed once on the worker
/// thread rather than every frame (a large folder has 120 points per image to sort).
struct Scored {
    eval: FolderEvaluation,
    points: Vec<(f64, f64, Organ)>,
    correlation: (Option<f64>, Option<f64>),
    decile_curve: Vec<[f64; 2]>,
}

impl Scored {
    fn new(eval: FolderEvaluation) -> Self {
        let decile_curve = eval.reliability(10).iter().map(|b| [b.mean_uncertainty, b.mean_error]).collect();
        Scored { points: eval.node_points(), correlation: eval.correlation(), decile_curve, eval }
    }
}

impl FolderMetrics {
    /// Open the window and (re)score `files`.
    pub fn show_for(&mut self, files: Vec<PathBuf>, ctx: &egui::Context) {
        self.open = true;
        self.refresh(files, ctx);
    }

    pub fn refresh(&mut self, files: Vec<PathBuf>, ctx: &egui::Context) {
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Scored::new(evaluate_folder(&files)));
            ctx.request_repaint();
        });
        self.pending = Some(rx);
    }

    pub fn is_computing(&self) -> bool {
        self.pending.is_some()
    }

    pub fn result(&self) -> Option<&FolderEvaluation> {
        self.result.as_ref().map(|r| &r.eval)
    }

    fn poll(&mut self) {
        if let Some(rx) = &self.pending
            && let Ok(r) = rx.try_recv()
        {
            self.result = Some(r);
            self.pending = None;
        }
    }

    /// Draw the window; `files` are rescored when the user asks.
    pub fn window(&mut self, ctx: &egui::Context, files: &[PathBuf]) {
        self.poll();
        if !self.open {
            return;
        }
        let mut open = self.open;
        let mut refresh = false;
        egui::Window::new("Folder metrics").open(&mut open).default_size([620.0, 720.0]).show(ctx, |ui| {
            ui.horizontal(|ui| {
                refresh = ui.button("Refresh").clicked();
                if self.pending.is_some() {
                    ui.spinner();
                    ui.label("scoring…");
                }
            });
            match &self.result {
                None => {
                    ui.label("scoring the reviewed images…");
                }
                Some(e) => {
                    egui::ScrollArea::vertical().show(ui, |ui| contents(ui, e));
                }
            }
        });
        self.open = open;
        if refresh {
            self.refresh(files.to_vec(), ctx);
        }
    }
}

fn contents(ui: &mut egui::Ui, scored: &Scored) {
    let e = &scored.eval;
    ui.label(format!(
        "{} reviewed (accepted or corrected) · {} unreviewed · {} rejected · {} without annotation",
        e.images.len(),
        e.unreviewed,
        e.rejected,
        e.missing
    ));
    for u in &e.unreadable {
        ui.label(RichText::new(u).color(Color32::from_rgb(240, 100, 90)));
    }
    if e.images.is_empty() {
        ui.label(RichText::new("Accept or correct images to see how far the model was from the reviewer.").color(Color32::GRAY));
        return;
    }
    ui.label(RichText::new("Prediction vs correction (filled contours)").strong());
    let col = |f: &dyn Fn(&ReviewedImage) -> f64| describe(e.images.iter().map(f));
    let rows: Vec<(&str, crate::metrics::stats::Stats, usize)> = vec![
        ("Dice Lungs", col(&|i| i.scores.dice_lungs), 4),
        ("Dice Heart", col(&|i| i.scores.dice_heart), 4),
        ("Hausdorff Lungs (px)", col(&|i| i.scores.lungs.hausdorff), 1),
        ("Hausdorff Heart (px)", col(&|i| i.scores.heart.hausdorff), 1),
        ("Hausdorff 95 Lungs (px)", col(&|i| i.scores.lungs.hd95), 1),
        ("Hausdorff 95 Heart (px)", col(&|i| i.scores.heart.hd95), 1),
        ("node error (px)", col(&|i| i.mean_node_error_px()), 2),
        ("node error (mm)", col(&|i| i.scores.node_mm.map_or(f64::NAN, |m| m.iter().sum::<f64>() / m.len() as f64)), 2),
        ("review time (s)", col(&|i| i.review_seconds), 0),
    ];
    egui::Grid::new("folder_summary").striped(true).show(ui, |ui| {
        ui.label("");
        ui.label("mean");
        ui.label("sd");
        ui.label("n");
        ui.end_row();
        for (name, s, d) in rows {
            if s.n == 0 {
                continue;
            }
            ui.label(name);
            ui.monospace(format!("{:.d$}", s.mean));
            ui.monospace(if s.sd.is_finite() { format!("{:.d$}", s.sd) } else { "-".into() });
            ui.monospace(s.n.to_string());
            ui.end_row();
        }
    });

    ui.separator();
    let (r, rho) = scored.correlation;
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    ui.label(RichText::new("Node error vs node uncertainty").strong());
    ui.label(format!("Pearson r = {}, Spearman rho = {}", f(r), f(rho)));
    let points = &scored.points;
    Plot::new("error_vs_std")
        .height(260.0)
        .legend(Legend::default())
        .x_axis_label("node std (px)")
        .y_axis_label("node error (px)")
        .include_x(0.0)
        .include_y(0.0)
        .show(ui, |p| {
            for organ in Organ::ALL {
                let xy: Vec<[f64; 2]> =
                    points.iter().filter(|q| q.2 == organ && q.1.is_finite()).map(|q| [q.0, q.1]).collect();
                p.points(Points::new(organ.name(), xy).color(organ_colour(organ)).radius(2.0));
            }
            p.line(Line::new("mean error per std decile", scored.decile_curve.clone()).color(Color32::WHITE).width(2.0));
        });

    ui.separator();
    ui.label(RichText::new("Dice per image").strong());
    Plot::new("dice_per_image")
        .height(200.0)
        .legend(Legend::default())
        .x_axis_label("image (worklist order)")
        .y_axis_label("Dice")
        .include_y(1.0)
        .show(ui, |p| {
            let series = |f: &dyn Fn(&ReviewedImage) -> f64| -> Vec<[f64; 2]> {
                e.images.iter().enumerate().map(|(k, i)| [k as f64 + 1.0, f(i)]).collect()
            };
            p.points(Points::new("Lungs", series(&|i| i.scores.dice_lungs)).color(organ_colour(Organ::LeftLung)).radius(4.0));
            p.points(Points::new("Heart", series(&|i| i.scores.dice_heart)).color(organ_colour(Organ::Heart)).radius(4.0));
        });
}
