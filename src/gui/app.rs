//! Application state and the frame loop: which image is open, loading in the
//! background, keyboard shortcuts, menus and drag-and-drop. Drawing of each part
//! lives in its own module (viewer, worklist, status bar).

use egui::{Color32, Key, Modifiers, RichText};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Instant;

use super::status_bar;
use super::viewer::{self, Hover, Shown};
use super::worklist::Worklist;
use super::xray_renderer::XrayRenderer;
use crate::xray::{self, LoadError, XrayImage, phantom};

/// A load running on a worker thread so the window never freezes.
struct Loading {
    index: usize,
    rx: Receiver<Result<XrayImage, LoadError>>,
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
}

impl CxrApp {
    /// Set up the GPU pipeline and open `paths` (files or folders); with none, the phantom.
    pub fn new(cc: &eframe::CreationContext<'_>, paths: Vec<PathBuf>) -> Self {
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
        };
        if paths.is_empty() {
            app.show_image(phantom::chest_phantom());
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

    /// Replace the worklist with `paths` (folders expand to their images) and open the first.
    pub fn open_paths(&mut self, paths: &[PathBuf], ctx: &egui::Context) {
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
    pub fn load(&mut self, index: usize, ctx: &egui::Context) {
        let Some(path) = self.worklist.files.get(index).cloned() else { return };
        self.worklist.current = Some(index);
        let (tx, rx) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(xray::load(&path));
            ctx.request_repaint();
        });
        self.loading = Some(Loading { index, rx });
    }

    fn show_image(&mut self, image: XrayImage) {
        self.shown = Some(Shown::new(Arc::new(image), self.next_image_id));
        self.next_image_id += 1;
        self.error = None;
    }

    fn poll_loading(&mut self) {
        let Some(loading) = &self.loading else { return };
        let Ok(result) = loading.rx.try_recv() else { return };
        let index = loading.index;
        self.loading = None;
        if self.worklist.current != Some(index) {
            return; // the reader moved on while this was loading
        }
        match result {
            Ok(image) => {
                self.worklist.errors.remove(&index);
                self.show_image(image);
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
                if ui.button("Open synthetic phantom").clicked() {
                    self.worklist = Worklist::default();
                    self.loading = None;
                    self.show_image(phantom::chest_phantom());
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
            });
            ui.menu_button("Help", |ui| {
                ui.label("Wheel: zoom at cursor · Drag: pan · Right-drag: window/level");
                ui.label("F fit · 1 one-to-one · R reset window · I invert · N/P next/previous");
                ui.label("Drop files or folders onto the window to open them.");
            });
        });
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let label = self.shown.as_ref().map(|s| s.image.source.label.as_str()).unwrap_or("no image");
        let title = format!("cxr-review — {label}");
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

impl eframe::App for CxrApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.poll_loading();
        self.handle_dropped_files(&ctx);
        self.handle_keys(&ctx);
        self.update_title(&ctx);

        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        let position = self.worklist.current.map(|i| (i, self.worklist.len()));
        egui::Panel::bottom("status").show(ui, |ui| {
            status_bar::ui(ui, self.shown.as_ref(), self.hover, position);
        });
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
            if let Some(shown) = self.shown.as_mut() {
                let (out, _) = viewer::show(ui, shown, None);
                self.hover = out.hover;
            }
        });

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
