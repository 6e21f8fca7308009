//! The stress view: the CheXmask-U corruption experiments, interactive. The image on screen
//! is copied, Gaussian noise of a chosen σ is added and/or a black square is dragged onto it,
//! and the model predicts on the copy in the background, so the reader sees the landmarks and
//! their uncertainty respond. The review and its annotation file are never touched: the
//! corrupted copy lives only in this window.

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, TextureHandle, Vec2};
use std::sync::Arc;

use super::inference::Inference;
use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::model::Prediction;
use crate::plots::colormap::viridis;
use crate::validation::probes::{Grey, Square, with_noise, with_square};
use crate::xray::{ImageSource, XrayImage};

/// Noise seed: the same σ always gives the same noisy copy.
const NOISE_SEED: u64 = 7;
/// Node std (px at 1024) at the top of the colour scale, as the main legend's default.
const STD_TOP_1024: f32 = 20.0;

/// The corruption applied to the copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corruption {
    /// Noise σ in units of the displayed grey range (0: none).
    pub sigma: f32,
    /// Centre of the black square in image pixels (None: no square).
    pub square_centre: Option<Point>,
    /// Side of the square as a fraction of the image's long side.
    pub square_side: f32,
}

impl Default for Corruption {
    fn default() -> Self {
        Corruption { sigma: 0.0, square_centre: None, square_side: 0.2 }
    }
}

impl Corruption {
    fn square(&self, image: &XrayImage) -> Option<Square> {
        let side = self.square_side * image.width.max(image.height) as f32;
        self.square_centre.map(|c| Square::centred(c[0], c[1], side))
    }

    /// The corrupted copy, as an 8-bit image whose default window shows exactly the
    /// corrupted grey values (so the model sees what the reader sees).
    pub fn apply(&self, image: &XrayImage) -> XrayImage {
        let grey = Grey {
            name: image.source.label.clone(),
            width: image.width,
            height: image.height,
            pixels: image.display_intensities(image.default_window()),
        };
        let mut g = if self.sigma > 0.0 { with_noise(&grey, self.sigma, NOISE_SEED) } else { grey };
        if let Some(sq) = self.square(image) {
            g = with_square(&g, sq);
        }
        let source = ImageSource {
            path: None,
            label: format!("{} (corrupted copy)", image.source.label),
            modality: image.source.modality.clone(),
            transfer_syntax: "stress test".into(),
            bits_stored: 8,
        };
        let pixels = g.pixels.iter().map(|v| (v * 255.0).round()).collect();
        XrayImage::new(image.width, image.height, pixels, source)
    }
}

/// The stress view's state.
pub struct StressView {
    pub open: bool,
    pub side_by_side: bool,
    pub corruption: Corruption,
    /// The image the view works on (the one on screen), by viewer id.
    image: Option<(u64, Arc<XrayImage>)>,
    corrupted: Option<(Corruption, Arc<XrayImage>)>,
    worker: Option<Inference>,
    /// What the worker is predicting now, and the latest answer with what it was for.
    running: Option<(u64, Corruption)>,
    result: Option<(Corruption, Prediction)>,
    /// The clean image's prediction (σ 0, no square), for the comparison.
    clean: Option<Prediction>,
    next_request: u64,
    textures: Option<(u64, Corruption, TextureHandle, TextureHandle)>,
    weights: Option<std::path::PathBuf>,
}

impl Default for StressView {
    fn default() -> Self {
        StressView {
            open: false,
            side_by_side: true,
            corruption: Corruption::default(),
            image: None,
            corrupted: None,
            worker: None,
            running: None,
            result: None,
            clean: None,
            next_request: 1,
            textures: None,
            weights: None,
        }
    }
}

/// Mean node std in px at 1024.
fn score_1024(p: &Prediction, image: &XrayImage) -> f64 {
    crate::validation::probes::score_1024(p, image.width, image.height)
}

impl StressView {
    /// Work on `image` (viewer id `id`) with the model of `weights` (None: shipped).
    pub fn set_image(&mut self, id: u64, image: Arc<XrayImage>, weights: Option<std::path::PathBuf>) {
        if self.image.as_ref().is_some_and(|(i, _)| *i == id) && self.weights == weights {
            return;
        }
        if self.weights != weights {
            self.worker = None;
            self.weights = weights;
        }
        self.image = Some((id, image));
        self.corrupted = None;
        self.result = None;
        self.clean = None;
        self.running = None;
        self.textures = None;
    }

    /// The image score (px at 1024) of the corrupted copy, once predicted for the current
    /// corruption.
    pub fn score(&self) -> Option<f64> {
        let (_, img) = self.image.as_ref()?;
        self.result.as_ref().filter(|(c, _)| *c == self.corruption).map(|(_, p)| score_1024(p, img))
    }

    /// The clean image's score (px at 1024), once predicted.
    pub fn clean_score(&self) -> Option<f64> {
        let (_, img) = self.image.as_ref()?;
        self.clean.as_ref().map(|p| score_1024(p, img))
    }

    /// Is a prediction still to come for the current corruption?
    pub fn busy(&self) -> bool {
        self.open && self.image.is_some() && self.score().is_none()
    }

    /// Send the current corruption to the worker when it is idle; take its answers.
    pub fn poll(&mut self, ctx: &egui::Context) {
        if !self.open {
            return;
        }
        let Some((_, image)) = self.image.clone() else { return };
        let ctx2 = ctx.clone();
        let weights = self.weights.clone();
        let worker = self.worker.get_or_insert_with(|| Inference::start(weights, move || ctx2.request_repaint()));
        for answer in worker.poll() {
            let Some((_, c)) = self.running.filter(|(id, _)| *id == answer.image_id) else { continue };
            self.running = None;
            if let Ok((p, _)) = answer.result {
                if c.sigma == 0.0 && c.square_centre.is_none() {
                    self.clean = Some(p.clone());
                }
                self.result = Some((c, p));
            }
        }
        if self.running.is_some() {
            return;
        }
        // The clean prediction first (for the comparison), then the current corruption.
        let clean = Corruption { sigma: 0.0, square_centre: None, ..self.corruption };
        let want = if self.clean.is_none() { clean } else { self.corruption };
        if self.result.as_ref().is_some_and(|(c, _)| *c == want) {
            return;
        }
        let copy = match &self.corrupted {
            Some((c, img)) if *c == want => img.clone(),
            _ => {
                let img = Arc::new(want.apply(&image));
                if want == self.corruption {
                    self.corrupted = Some((want, img.clone()));
                }
                img
            }
        };
        let id = self.next_request;
        self.next_request += 1;
        worker.request(id, copy);
        self.running = Some((id, want));
    }

    /// The window: controls, scores, and the clean and corrupted images with their nodes.
    pub fn window(&mut self, ctx: &egui::Context) {
        if !self.open {
            return;
        }
        let mut open = self.open;
        egui::Window::new("Stress test").open(&mut open).default_size([760.0, 520.0]).show(ctx, |ui| self.ui(ui));
        self.open = open;
    }

    fn ui(&mut self, ui: &mut egui::Ui) {
        let Some((id, image)) = self.image.clone() else {
            ui.label("Open an image first.");
            return;
        };
        ui.label(
            RichText::new("A corrupted copy of the image on screen; the review and its file are not touched.")
                .color(Color32::GRAY),
        );
        ui.horizontal(|ui| {
            ui.label("noise σ");
            ui.add(egui::Slider::new(&mut self.corruption.sigma, 0.0..=0.5).step_by(0.01));
            let mut square = self.corruption.square_centre.is_some();
            if ui.checkbox(&mut square, "black square").changed() {
                self.corruption.square_centre = square.then(|| {
                    // Start over the right costophrenic angle, where CheXmask-U put it.
                    let p = self.clean.as_ref().map(|p| p.mean[crate::validation::OCCLUSION_NODE]);
                    p.unwrap_or([image.width as f32 / 2.0, image.height as f32 / 2.0])
                });
            }
            ui.add_enabled(
                square,
                egui::Slider::new(&mut self.corruption.square_side, 0.05..=0.5).text("side").step_by(0.01),
            );
            ui.checkbox(&mut self.side_by_side, "side by side");
        });
        let busy = self.score().is_none();
        ui.horizontal(|ui| {
            match (self.clean_score(), self.score()) {
                (Some(c), Some(s)) => {
                    let colour = if s > c * 1.1 { Color32::from_rgb(240, 170, 60) } else { Color32::LIGHT_GRAY };
                    ui.label(RichText::new(format!("image score: clean {c:.2} px, corrupted {s:.2} px at 1024 ({:+.0} %)", (s / c - 1.0) * 100.0)).color(colour));
                }
                (Some(c), None) => {
                    ui.label(format!("image score: clean {c:.2} px, corrupted …"));
                }
                _ => {
                    ui.label("image score: …");
                }
            }
            if busy {
                ui.spinner();
            }
        });
        let mut hint = format!("node colour: raw std, dark 0 to yellow ≥{STD_TOP_1024:.0} px at 1024");
        if self.corruption.square_centre.is_some() {
            hint += " · drag on the corrupted image to move the square";
        }
        ui.label(RichText::new(hint).color(Color32::GRAY));
        self.ensure_textures(ui.ctx(), id, &image);
        let Some((_, _, clean_tex, corrupt_tex)) = self.textures.clone() else { return };
        let panes = if self.side_by_side { 2 } else { 1 };
        let avail = ui.available_size();
        let aspect = image.height as f32 / image.width as f32;
        let w = ((avail.x - 8.0 * (panes - 1) as f32) / panes as f32).min((avail.y - 4.0) / aspect).max(64.0);
        let size = Vec2::new(w, w * aspect);
        ui.horizontal(|ui| {
            if self.side_by_side {
                let clean = self.clean.clone();
                self.pane(ui, &clean_tex, size, &image, clean.as_ref(), false);
            }
            let current = self.result.as_ref().filter(|(c, _)| *c == self.corruption).map(|(_, p)| p.clone());
            self.pane(ui, &corrupt_tex, size, &image, current.as_ref(), true);
        });
    }

    /// One image pane with the prediction's nodes; on the corrupted one, dragging moves the square.
    fn pane(&mut self, ui: &mut egui::Ui, tex: &TextureHandle, size: Vec2, image: &XrayImage, p: Option<&Prediction>, corrupted: bool) {
        let (rect, response) = ui.allocate_exact_size(size, if corrupted { Sense::click_and_drag() } else { Sense::hover() });
        let painter = ui.painter_at(rect);
        painter.image(tex.id(), rect, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
        let scale = rect.width() / image.width as f32;
        let to_screen = |q: Point| rect.min + Vec2::new(q[0], q[1]) * scale;
        if let Some(p) = p {
            let per_1024 = 1024.0 / image.width.max(image.height) as f32;
            for organ in Organ::ALL {
                let pts: Vec<Pos2> = p.mean[organ.nodes()].iter().map(|&q| to_screen(q)).collect();
                painter.add(egui::Shape::closed_line(pts, Stroke::new(1.0, super::overlay::organ_colour(organ))));
            }
            for n in 0..NUM_NODES {
                let s = (p.std[n][0] + p.std[n][1]) / 2.0 * per_1024;
                painter.circle_filled(to_screen(p.mean[n]), 3.0, viridis((s / STD_TOP_1024).clamp(0.0, 1.0) as f64));
            }
        }
        let label = if corrupted { "corrupted" } else { "clean" };
        painter.text(rect.min + Vec2::new(6.0, 4.0), egui::Align2::LEFT_TOP, label, egui::FontId::proportional(13.0), Color32::WHITE);
        if corrupted && self.corruption.square_centre.is_some() && (response.dragged() || response.clicked()) {
            if let Some(pos) = response.interact_pointer_pos() {
                let q = (pos - rect.min) / scale;
                self.corruption.square_centre = Some([q.x.clamp(0.0, image.width as f32), q.y.clamp(0.0, image.height as f32)]);
            }
        }
    }

    /// Textures of the clean and corrupted images (rebuilt when either changes), at most
    /// 1024 px on the long side.
    fn ensure_textures(&mut self, ctx: &egui::Context, id: u64, image: &XrayImage) {
        if self.textures.as_ref().is_some_and(|t| t.0 == id && t.1 == self.corruption) {
            return;
        }
        let corrupted = match &self.corrupted {
            Some((c, img)) if *c == self.corruption => img.clone(),
            _ => {
                let img = Arc::new(self.corruption.apply(image));
                self.corrupted = Some((self.corruption, img.clone()));
                img
            }
        };
        let clean_tex = match self.textures.take().filter(|t| t.0 == id) {
            Some(t) => t.2,
            None => ctx.load_texture("stress clean", colour_image(image, image.default_window()), Default::default()),
        };
        let corrupt_tex = ctx.load_texture("stress corrupted", colour_image(&corrupted, corrupted.default_window()), Default::default());
        self.textures = Some((id, self.corruption, clean_tex, corrupt_tex));
    }
}

/// An 8-bit rendering for egui, downsampled to at most 1024 px on the long side.
fn colour_image(image: &XrayImage, window: crate::xray::Window) -> egui::ColorImage {
    let grey = image.to_gray8(window);
    let step = (image.width.max(image.height) as f32 / 1024.0).ceil().max(1.0) as u32;
    let (w, h) = (image.width.div_ceil(step), image.height.div_ceil(step));
    let mut px = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            px.push(grey.get_pixel((x * step).min(image.width - 1), (y * step).min(image.height - 1))[0]);
        }
    }
    egui::ColorImage::from_gray([w as usize, h as usize], &px)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_shows_the_corrupted_grey_exactly() {
        let img = crate::xray::phantom::chest_phantom();
        let clean = Corruption::default().apply(&img);
        let orig = img.display_intensities(img.default_window());
        let shown = clean.display_intensities(clean.default_window());
        assert!(orig.iter().zip(&shown).all(|(a, b)| (a - b).abs() <= 0.5 / 255.0 + 1e-6));
        let c = Corruption { sigma: 0.0, square_centre: Some([512.0, 512.0]), square_side: 0.1 };
        let sq = c.apply(&img);
        assert_eq!(sq.pixels[512 * 1024 + 512], 0.0);
        assert_eq!(sq.pixels[10 * 1024 + 10], clean.pixels[10 * 1024 + 10]);
        let noisy = Corruption { sigma: 0.2, ..Corruption::default() }.apply(&img);
        assert_ne!(noisy.pixels, clean.pixels);
        assert_eq!(noisy.pixels, Corruption { sigma: 0.2, ..Corruption::default() }.apply(&img).pixels);
    }
}
