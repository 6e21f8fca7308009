//! Application state and the frame loop: which image is open, loading in the
//! background, keyboard shortcuts, menus and drag-and-drop. Drawing of each part
//! lives in its own module (viewer, worklist, status bar).

use egui::{Color32, Key, Modifiers, RichText};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Instant;

use super::folder_metrics::FolderMetrics;
use super::inference::Inference;
use super::overlay::{self, Layers};
use super::review::{PanelAction, Review};
use super::status_bar;
use super::stress::StressView;
use super::viewer::{self, Hover, NodeEvent, Shown};
use super::worklist::{self, Worklist};
use crate::review::annotation::file_sha256;
use crate::review::store::{self, Slot};
use crate::review::{Annotation, ModelIdentity};
use super::xray_renderer::XrayRenderer;
use crate::xray::{self, LoadError, XrayImage, phantom};

/// A load running on a worker thread so the window never freezes.
struct Loading {
    index: usize,
    rx: Receiver<Result<(XrayImage, String), LoadError>>,
}

pub struct CxrApp {
    worklist: Worklist,
    shown: Option<Shown>,
    loading: Option<Loading>,
    /// The last failure, shown over the viewer until something else opens.
    error: Option<String>,
    next_image_id: u64,
    hover: Option<Hover>,
    launched: Instant,
    first_frame_reported: bool,
    title: String,
    inference: Option<Inference>,
    /// Weights the reader chose (None: the shipped model).
    weights: Option<PathBuf>,
    model_description: String,
    review: Option<Review>,
    layers: Layers,
    hovered_node: Option<usize>,
    folder_metrics: FolderMetrics,
    /// Path of the image on screen (None for the phantom).
    shown_path: Option<PathBuf>,
    shown_sha: String,
    /// Where the review of the image on screen will be saved once the model has predicted it.
    pending_slot: Option<Slot>,
    /// Show the DICOM patient name in the window title (off unless the user allows it).
    show_patient_name: bool,
    stress: StressView,
}

impl CxrApp {
    /// Set up the GPU pipeline and open `paths` (files or folders); with none, the phantom.
    pub fn new(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>) -> Self {
        Self::with_weights(cc, paths, std::env::var_os("CXR_WEIGHTS").map(PathBuf::from))
    }

    /// As [`new`](Self::new) with the model weights to use (None: the shipped model).
    pub fn with_weights(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>, weights: Option<PathBuf>) -> Self {
        if let Some(rs) = cc.wgpu_render_state.as_ref() {
            XrayRenderer::install(rs);
        }
        let mut app = CxrApp {
            worklist: Worklist::default(),
            shown: None,
            loading: None,
            error: None,
            next_image_id: 1,
            hover: None,
            launched: Instant::now(),
            first_frame_reported: false,
            title: String::new(),
            inference: None,
            weights,
            model_description: String::new(),
            review: None,
            layers: Layers::default(),
            hovered_node: None,
            folder_metrics: FolderMetrics::default(),
            shown_path: None,
            shown_sha: String::new(),
            pending_slot: None,
            show_patient_name: false,
            stress: StressView::default(),
        };
        if paths.is_empty() {
            app.show_image(phantom::chest_phantom(), None, String::new(), &cc.egui_ctx);
        } else {
            app.open_paths(&paths, &cc.egui_ctx);
        }
        app
    }

    pub fn shown(&self) -> Option<&Shown> {
        self.shown.as_ref()
    }

    pub fn shown_mut(&mut self) -> Option<&mut Shown> {
        self.shown.as_mut()
    }

    pub fn worklist(&self) -> &Worklist {
        &self.worklist
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    pub fn review(&self) -> Option<&Review> {
        self.review.as_ref()
    }

    pub fn review_mut(&mut self) -> Option<&mut Review> {
        self.review.as_mut()
    }

    pub fn worklist_mut(&mut self) -> &mut Worklist {
        &mut self.worklist
    }

    /// Is the model still working on the image on screen?
    pub fn is_predicting(&self) -> bool {
        let id = self.shown.as_ref().map(|s| s.id);
        matches!((&self.inference, id), (Some(inf), Some(id)) if inf.is_running(id))
    }

    /// Allow the patient name of DICOM files in the window title (nowhere else).
    pub fn set_show_patient_name(&mut self, on: bool) {
        self.show_patient_name = on;
    }

    pub fn stress(&self) -> &StressView {
        &self.stress
    }

    pub fn stress_mut(&mut self) -> &mut StressView {
        &mut self.stress
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// Save the review on screen to `path`, and keep saving it there (the folder beside the
    /// image may be read-only or full).
    pub fn save_review_as(&mut self, path: PathBuf) {
        if let Some(r) = self.review.as_mut() {
            r.save_to(path);
        }
    }

    /// Use these weights instead of the shipped model (before the first prediction).
    pub fn set_weights(&mut self, weights: PathBuf) {
        self.weights = Some(weights);
        self.inference = None;
    }

    /// Replace the worklist with `paths` (folders expand to their images) and open the first.
    pub fn open_paths(&mut self, paths: &[PathBuf], ctx: &egui::Context) {
        if !self.may_leave_review() {
            return;
        }
        match xray::expand_paths(paths) {
            Ok(files) if files.is_empty() => {
                self.error = Some(format!("No images found in {}", display_list(paths)));
            }
            Ok(files) => {
                self.worklist = Worklist::new(files);
                self.load(0, ctx);
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Start loading worklist entry `index` in the background.
    /// A review whose last save failed exists only in memory: opening another image would
    /// drop it, so the reader is asked to save it elsewhere first.
    fn may_leave_review(&mut self) -> bool {
        let Some(r) = self.review.as_mut() else { return true };
        r.autosave();
        if !r.unsaved {
            return true;
        }
        self.error = Some(format!(
            "The review of {} could not be saved (see the panel). Save it with File > Save review as… before opening another image.",
            self.shown.as_ref().map(|s| s.image.source.label.as_str()).unwrap_or("this image")
        ));
        false
    }

    pub fn load(&mut self, index: usize, ctx: &egui::Context) {
        if !self.may_leave_review() {
            return;
        }
        let Some(path) = self.worklist.files.get(index).cloned() else { return };
        self.worklist.current = Some(index);
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let result = xray::load(&path).and_then(|img| {
                let sha = file_sha256(&path).map_err(|e| LoadError { path: path.clone(), reason: e.to_string() })?;
                Ok((img, sha))
            });
            let _ = tx.send(result);
            ctx.request_repaint();
        });
        self.loading = Some(Loading { index, rx });
    }

    fn show_image(&mut self, image: XrayImage, path: Option<PathBuf>, sha: String, ctx: &egui::Context) {
        if let Some(r) = self.review.as_mut() {
            r.edit.end_drag();
            r.autosave();
        }
        self.review = None;
        let id = self.next_image_id;
        self.next_image_id += 1;
        let image = Arc::new(image);
        self.shown = Some(Shown::new(image.clone(), id));
        self.error = None;
        self.shown_path = path.clone();
        self.shown_sha = sha.clone();
        self.pending_slot = None;
        if let Some(p) = &path {
            let opened = store::open(p, &sha, &image);
            if !opened.notices.is_empty() {
                self.error = Some(opened.notices.join(". "));
            }
            if let Some(a) = opened.annotation {
                self.worklist.reviews.insert(p.clone(), worklist::info_of(&a));
                self.review = Some(Review::new(id, Some(opened.slot), a, image.spacing));
                return;
            }
            self.pending_slot = Some(opened.slot);
        }
        let weights = self.weights.clone();
        let ctx2 = ctx.clone();
        let inference = self.inference.get_or_insert_with(|| Inference::start(weights, move || ctx2.request_repaint()));
        inference.request(id, image);
    }

    fn poll_inference(&mut self) {
        let Some(inference) = self.inference.as_mut() else { return };
        for answer in inference.poll() {
            let Some(shown) = self.shown.as_ref().filter(|s| s.id == answer.image_id) else { continue };
            match answer.result {
                Ok((prediction, model)) => {
                    self.model_description = format!("{} · {:.2} s for N={}", model.description, answer.seconds, prediction.samples);
                    let identity = ModelIdentity {
                        weights: model.weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                        weights_sha256: model.weights_sha256.clone(),
                        samples: prediction.samples,
                        seed: prediction.seed,
                        test_time_warps: prediction.test_time_warps,
                        companions: prediction.companions,
                        shape_corrected: prediction.shape_corrected,
                        patch_refined: prediction.patch_refined,
                        contour_spaced: prediction.contour_spaced,
                    };
                    let path = self.shown_path.clone().unwrap_or_else(|| PathBuf::from(&shown.image.source.label));
                    let a = Annotation::from_prediction(&path, self.shown_sha.clone(), &shown.image, &prediction, identity);
                    if let Some(p) = &self.shown_path {
                        self.worklist.reviews.insert(p.clone(), worklist::info_of(&a));
                    }
                    self.review = Some(Review::new(shown.id, self.pending_slot.take(), a, shown.image.spacing));
                }
                Err(e) if e == "skipped" => {}
                Err(e) => self.error = Some(format!("The model could not run: {e}")),
            }
        }
    }

    fn apply_node_events(&mut self, events: &[NodeEvent]) {
        let Some(r) = self.review.as_mut() else { return };
        for e in events {
            match *e {
                NodeEvent::DragStart { node, add } => r.edit.begin_drag(node, add),
                NodeEvent::DragMove(d) => {
                    r.edit.drag_by(d);
                    // Annotation files accept positions within 4 image sides (review::annotation).
                    r.edit.clamp_to(3.0 * r.annotation.image.width.max(r.annotation.image.height) as f32);
                }
                NodeEvent::DragEnd => {
                    r.edit.end_drag();
                    r.autosave();
                }
                NodeEvent::Click { node, add } => r.edit.select(node, add),
                NodeEvent::ClickEmpty => r.edit.clear_selection(),
            }
        }
    }

    fn refresh_review_info(&mut self) {
        if let (Some(r), Some(p)) = (&self.review, &self.shown_path) {
            let info = worklist::info_of(&r.annotation);
            if self.worklist.reviews.get(p) != Some(&info) {
                self.worklist.reviews.insert(p.clone(), info);
            }
        }
    }

    fn poll_loading(&mut self, ctx: &egui::Context) {
        let Some(loading) = &self.loading else { return };
        let Ok(result) = loading.rx.try_recv() else { return };
        let index = loading.index;
        self.loading = None;
        if self.worklist.current != Some(index) {
            return; // the reader moved on while this was loading
        }
        match result {
            Ok((image, sha)) => {
                self.worklist.errors.remove(&index);
                let path = self.worklist.files.get(index).cloned();
                self.show_image(image, path, sha, ctx);
            }
            Err(e) => {
                let msg = format!("Cannot open {}", e);
                self.worklist.errors.insert(index, msg.clone());
                self.shown = None;
                self.error = Some(msg);
            }
        }
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> =
            ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).collect());
        if !dropped.is_empty() {
            self.open_paths(&dropped, ctx);
        }
    }

    fn open_dialog(&mut self, folder: bool, ctx: &egui::Context) {
        let dialog = rfd::FileDialog::new();
        let picked = if folder {
            dialog.pick_folder().map(|f| vec![f])
        } else {
            dialog.add_filter("Images", xray::IMAGE_EXTENSIONS).pick_files()
        };
        if let Some(paths) = picked {
            self.open_paths(&paths, ctx);
        }
    }

    fn handle_keys(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let pressed = |key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, key));
        let viewport = ctx.content_rect().size();
        if pressed(Key::N) || pressed(Key::PageDown) {
            self.step(1, ctx);
        }
        if pressed(Key::P) || pressed(Key::PageUp) {
            self.step(-1, ctx);
        }
        let command = |key| ctx.input_mut(|i| i.consume_key(Modifiers::COMMAND, key));
        if let Some(r) = self.review.as_mut() {
            // Shift first: egui's key matching lets Ctrl+Shift+Z also satisfy Ctrl+Z.
            if ctx.input_mut(|i| i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)) {
                r.edit.redo();
                r.autosave();
            } else if command(Key::Z) {
                r.edit.undo();
                r.autosave();
            }
            if command(Key::Y) {
                r.edit.redo();
                r.autosave();
            }
            if pressed(Key::A) {
                r.accept();
                self.step(1, ctx);
            } else if pressed(Key::X) {
                r.reject();
                self.step(1, ctx);
            } else if pressed(Key::Escape) {
                r.edit.clear_selection();
            } else if pressed(Key::Delete) || pressed(Key::Backspace) {
                let sel = r.edit.selected_nodes();
                r.edit.reset_nodes(&sel);
                r.autosave();
            }
        }
        // Visit the least certain nodes in turn (Shift first, as for redo).
        let visit = if ctx.input_mut(|i| i.consume_key(Modifiers::SHIFT, Key::U)) {
            Some(false)
        } else {
            pressed(Key::U).then_some(true)
        };
        if let (Some(forward), Some(r), Some(shown)) = (visit, self.review.as_mut(), self.shown.as_mut()) {
            let node = r.visit_uncertain(forward);
            let p = r.edit.positions[node];
            let dims = shown.dims();
            if let (Some(v), Some(rect)) = (shown.view.as_mut(), shown.rect) {
                // Close enough to judge the node against its neighbourhood: 3 × the fit.
                let fit = super::view::View::fit(rect.size(), dims).zoom;
                v.centre_on(rect.size(), egui::vec2(p[0] + 0.5, p[1] + 0.5), 3.0 * fit);
            }
        }
        if pressed(Key::C) {
            self.layers.contours = !self.layers.contours;
        }
        if pressed(Key::E) {
            self.layers.ellipses = !self.layers.ellipses;
        }
        if pressed(Key::M) {
            self.layers.fill = !self.layers.fill;
        }
        if pressed(Key::T) {
            self.layers.ctr = !self.layers.ctr;
        }
        if pressed(Key::S) {
            self.stress.open = !self.stress.open;
        }
        if pressed(Key::G) {
            self.show_folder_metrics(ctx);
        }
        let Some(shown) = self.shown.as_mut() else { return };
        if pressed(Key::F) {
            shown.view = None; // refit at the next layout, with the real viewport size
        }
        if pressed(Key::Num1) {
            if let Some(v) = shown.view.as_mut() {
                *v = v.one_to_one(viewport, ctx.pixels_per_point());
            }
        }
        if pressed(Key::R) {
            shown.reset_window();
        }
        if pressed(Key::I) {
            shown.user_invert = !shown.user_invert;
        }
    }

    /// Open the folder metrics window over the worklist's images (after saving the open review).
    pub fn show_folder_metrics(&mut self, ctx: &egui::Context) {
        if let Some(r) = self.review.as_mut() {
            r.autosave();
        }
        self.folder_metrics.show_for(self.worklist.files.clone(), ctx);
    }

    pub fn folder_metrics(&self) -> &FolderMetrics {
        &self.folder_metrics
    }

    fn step(&mut self, delta: isize, ctx: &egui::Context) {
        if let Some(i) = self.worklist.step(delta) {
            self.load(i, ctx);
        }
    }

    fn menu_bar(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open files…").clicked() {
                    self.open_dialog(false, &ctx);
                }
                if ui.button("Open folder…").clicked() {
                    self.open_dialog(true, &ctx);
                }
                if ui.button("Open synthetic phantom").clicked() && self.may_leave_review() {
                    self.worklist = Worklist::default();
                    self.loading = None;
                    self.show_image(phantom::chest_phantom(), None, String::new(), &ctx);
                }
                let can_save = self.review.as_ref().is_some_and(|r| r.file().is_some());
                if ui
                    .add_enabled(can_save, egui::Button::new("Save review as…"))
                    .on_hover_text("Save this review to another file, and keep saving it there")
                    .clicked()
                {
                    let name = self.review.as_ref().and_then(|r| r.file()).and_then(|f| f.file_name().map(|n| n.to_owned()));
                    let mut dialog = rfd::FileDialog::new().add_filter("cxr-review annotation", &["json"]);
                    if let Some(n) = name {
                        dialog = dialog.set_file_name(n.to_string_lossy());
                    }
                    if let Some(path) = dialog.save_file() {
                        self.save_review_as(path);
                    }
                }
                if ui.button("Model weights…").on_hover_text("Use a HybridGNet .pt or .safetensors instead of the shipped model").clicked() {
                    if let Some(w) = rfd::FileDialog::new().add_filter("Weights", &["pt", "pth", "safetensors"]).pick_file() {
                        self.set_weights(w);
                    }
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                let enabled = self.shown.is_some();
                if let Some(shown) = self.shown.as_mut() {
                    if ui.add_enabled(enabled, egui::Button::new("Fit to window").shortcut_text("F")).clicked() {
                        shown.view = None;
                    }
                    if ui.add_enabled(enabled, egui::Button::new("Reset window").shortcut_text("R")).clicked() {
                        shown.reset_window();
                    }
                    if ui.add_enabled(enabled, egui::Button::new("Invert").shortcut_text("I")).clicked() {
                        shown.user_invert = !shown.user_invert;
                    }
                }
                ui.separator();
                if ui.add(egui::Button::new("Next image").shortcut_text("N")).clicked() {
                    self.step(1, &ctx);
                }
                if ui.add(egui::Button::new("Previous image").shortcut_text("P")).clicked() {
                    self.step(-1, &ctx);
                }
                ui.separator();
                if ui.add(egui::Button::new("Folder metrics…").shortcut_text("G")).clicked() {
                    self.show_folder_metrics(&ctx);
                }
                if ui.add(egui::Button::new("Stress test…").shortcut_text("S")).on_hover_text("Add noise or a black square to a copy of the image and watch the uncertainty").clicked() {
                    self.stress.open = true;
                }
                ui.separator();
                ui.checkbox(&mut self.show_patient_name, "Patient name in the window title")
                    .on_hover_text("DICOM patient names are never written to files or logs; this shows one in the title bar");
            });
            ui.menu_button("Help", |ui| {
                ui.label("Wheel: zoom at cursor · Drag: pan · Right-drag: window/level");
                ui.label("F fit · 1 one-to-one · R reset window · I invert · N/P next/previous");
                ui.label("Drag a node to move it · Shift/Ctrl-click to select several · Del resets the selection");
                ui.label("A accept · X reject · Ctrl+Z undo · Ctrl+Y redo · C contours · E ellipses · M fill · T CTR");
                ui.label("S stress test: noise or a black square on a copy of the image, the model's response live");
                ui.label("G folder metrics: the reviewed images scored prediction vs correction");
                ui.label("Drop files or folders onto the window to open them.");
            });
        });
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let label = self.shown.as_ref().map(|s| s.image.source.label.as_str()).unwrap_or("no image");
        let patient = self
            .shown
            .as_ref()
            .filter(|_| self.show_patient_name)
            .and_then(|s| s.image.patient.as_ref())
            .map(|p| p.display_name())
            .filter(|n| !n.is_empty());
        let title = match patient {
            Some(name) => format!("cxr-review — {label} — {name}"),
            None => format!("cxr-review — {label}"),
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

impl eframe::App for CxrApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_loading(&ctx);
        self.poll_inference();
        self.handle_dropped_files(&ctx);
        self.handle_keys(&ctx);
        self.update_title(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        let position = self.worklist.current.map(|i| (i, self.worklist.len()));
        egui::Panel::bottom("status").show(ui, |ui| {
            status_bar::ui(ui, self.shown.as_ref(), self.hover, position);
        });
        let predicting = self.is_predicting();
        if self.review.is_some() || predicting {
            let hovered = self.hovered_node;
            let model = self.model_description.clone();
            let mut layers = self.layers;
            let action = egui::Panel::right("review")
                .resizable(true)
                .default_size(300.0)
                .show(ui, |ui| match self.review.as_mut() {
                    Some(r) => {
                        let a = r.panel(ui, hovered, &mut layers, &model);
                        r.autosave();
                        a
                    }
                    None => {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label("Predicting landmarks (N = 50 samples)…");
                        });
                        PanelAction::None
                    }
                })
                .inner;
            self.layers = layers;
            if action == PanelAction::Next {
                self.step(1, &ctx);
            }
        }
        self.refresh_review_info();
        if self.worklist.len() > 1 {
            let clicked = egui::Panel::left("worklist")
                .resizable(true)
                .default_size(220.0)
                .show(ui, |ui| self.worklist.ui(ui))
                .inner;
            if let Some(i) = clicked {
                self.load(i, &ctx);
            }
        }
        egui::CentralPanel::default().frame(egui::Frame::NONE.fill(Color32::BLACK)).show(ui, |ui| {
            if let Some(err) = &self.error {
                ui.add_space(8.0);
                ui.label(RichText::new(err).color(Color32::from_rgb(240, 100, 90)).size(16.0));
            }
            if self.loading.is_some() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("Loading…").color(Color32::LIGHT_GRAY));
                });
            }
            self.hover = None;
            self.hovered_node = None;
            if let Some(shown) = self.shown.as_mut() {
                let review = self.review.as_ref().filter(|r| r.image_id == shown.id);
                let nodes = review.map(|r| r.edit.positions);
                let (out, response) = viewer::show(ui, shown, nodes.as_ref());
                self.hover = out.hover;
                self.hovered_node = out.hovered_node;
                let events = out.events.clone();
                self.apply_node_events(&events);
                if let (Some(r), Some(shown)) = (self.review.as_ref(), self.shown.as_ref()) {
                    let painter = ui.painter_at(response.rect);
                    let edited = r.edit.edited();
                    let colours =
                        overlay::NodeColours::for_image(r.annotation.calibrated.as_ref(), shown.image.width, shown.image.height);
                    let graph = overlay::Graph {
                        positions: &r.edit.positions,
                        predicted: &r.edit.predicted,
                        std: &r.annotation.std_array(),
                        edited: &edited,
                        selected: &r.edit.selected,
                        hovered: self.hovered_node,
                        colours: &colours,
                    };
                    overlay::draw(&painter, shown, &graph, self.layers);
                    let width = if matches!(colours, overlay::NodeColours::Expected(_)) { 260.0 } else { 180.0 };
                    let legend = egui::Rect::from_min_size(
                        response.rect.right_top() + egui::vec2(-width - 10.0, 8.0),
                        egui::vec2(width, colours.legend_height()),
                    );
                    overlay::legend(&painter, legend, &colours, shown.image.spacing.map(|s| s.col_mm));
                }
            }
        });

        self.folder_metrics.window(&ctx, &self.worklist.files);
        if self.stress.open {
            if let Some(s) = &self.shown {
                self.stress.set_image(s.id, s.image.clone(), self.weights.clone());
            }
            self.stress.poll(&ctx);
            self.stress.window(&ctx);
        }

        if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
            let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop overlay")));
            let rect = ctx.content_rect();
            painter.rect_filled(rect, 0.0, Color32::from_black_alpha(160));
            painter.text(rect.center(), egui::Align2::CENTER_CENTER, "Drop to open", egui::FontId::proportional(28.0), Color32::WHITE);
        }

        if !self.first_frame_reported && self.shown.as_ref().is_some_and(|s| s.view.is_some()) {
            self.first_frame_reported = true;
            if let Some(s) = &self.shown {
                eprintln!(
                    "cxr-review: first frame of {} ({}×{}) {} ms after launch",
                    s.image.source.label,
                    s.image.width,
                    s.image.height,
                    self.launched.elapsed().as_millis()
                );
            }
        }
    }
}

fn display_list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
