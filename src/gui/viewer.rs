//! The image viewer widget: mouse handling for zoom, pan and window/level, and the
//! paint callback that hands the drawing to the GPU.

use eframe::egui_wgpu;
use egui::{Event, MouseWheelUnit, PointerButton, Sense, Vec2};
use std::sync::Arc;

use super::overlay;
use super::view::View;
use crate::landmarks::{NUM_NODES, Point};
use super::xray_renderer::XrayPaint;
use crate::xray::{Window, XrayImage};

/// An image on screen and the reader's current settings for it.
pub struct Shown {
    pub image: Arc<XrayImage>,
    /// Unique per loaded image; tells the renderer when to upload a new texture.
    pub id: u64,
    /// `None` until the first layout, when the viewport size is known.
    pub view: Option<View>,
    /// Where the viewer was drawn last frame, in screen points.
    pub rect: Option<egui::Rect>,
    pub window: Window,
    /// The reader's inversion toggle, on top of MONOCHROME1's own inversion.
    pub user_invert: bool,
    /// Raw units per point of right-drag, scaled to the data's range.
    wl_sensitivity: f64,
    /// What the current primary drag does, decided where it started.
    drag: Option<DragKind>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DragKind {
    Pan,
    Node,
}

/// What the reader did to the landmark graph this frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeEvent {
    /// A primary drag started on `node`; `add` when Shift or Ctrl was held.
    DragStart { node: usize, add: bool },
    /// The dragged nodes moved by this many image pixels.
    DragMove([f32; 2]),
    DragEnd,
    /// A click on a node (`add`: Shift/Ctrl held, toggles it in the selection).
    Click { node: usize, add: bool },
    /// A click on the image away from every node.
    ClickEmpty,
}

/// Everything the viewer reports back for one frame.
#[derive(Debug, Clone, Default)]
pub struct ViewerOutput {
    pub hover: Option<Hover>,
    pub hovered_node: Option<usize>,
    pub events: Vec<NodeEvent>,
}

/// What lies under the mouse pointer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hover {
    pub pixel: [u32; 2],
    pub value: f32,
    /// Position in mm from the image's top-left corner, when spacing is known.
    pub mm: Option<[f64; 2]>,
}

impl Shown {
    pub fn new(image: Arc<XrayImage>, id: u64) -> Self {
        let (lo, hi) = image.value_range();
        let span = if lo.is_finite() { (hi - lo).max(1.0) as f64 } else { 256.0 };
        Shown {
            window: image.default_window(),
            image,
            id,
            view: None,
            rect: None,
            user_invert: false,
            wl_sensitivity: span / 512.0,
            drag: None,
        }
    }

    pub fn dims(&self) -> [u32; 2] {
        [self.image.width, self.image.height]
    }

    /// Is the image drawn inverted (MONOCHROME1 XOR the user's toggle)?
    pub fn inverted(&self) -> bool {
        self.image.inverted() != self.user_invert
    }

    pub fn reset_window(&mut self) {
        self.window = self.image.default_window();
    }

    /// Right-drag as in PACS viewers: horizontal changes the width, vertical the level.
    pub fn adjust_window(&mut self, drag: Vec2) {
        let s = self.wl_sensitivity;
        self.window = Window {
            center: self.window.center + drag.y as f64 * s,
            width: (self.window.width + drag.x as f64 * s).max(1.0),
        };
    }

    /// Screen position of the centre of image pixel (x, y), once laid out.
    pub fn screen_pos_of(&self, x: f32, y: f32) -> Option<egui::Pos2> {
        Some(self.rect?.min + self.view?.to_viewport(Vec2::new(x + 0.5, y + 0.5)))
    }

    fn hover_at(&self, viewport_pos: Vec2) -> Option<Hover> {
        let pixel = self.view?.pixel_at(viewport_pos, self.dims())?;
        let value = self.image.value_at(pixel[0] as i64, pixel[1] as i64)?;
        let mm = self.image.spacing.map(|s| [(pixel[0] as f64 + 0.5) * s.col_mm, (pixel[1] as f64 + 0.5) * s.row_mm]);
        Some(Hover { pixel, value, mm })
    }
}

/// Show `shown` filling the available space. With `nodes`, a primary drag that starts on a
/// node moves nodes instead of panning. Returns what the pointer is over and node events.
pub fn show(ui: &mut egui::Ui, shown: &mut Shown, nodes: Option<&[Point; NUM_NODES]>) -> (ViewerOutput, egui::Response) {
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let mut out = ViewerOutput::default();
    let size = rect.size();
    if size.x < 1.0 || size.y < 1.0 {
        return (out, response);
    }
    shown.rect = Some(rect);
    let dims = shown.dims();
    let view = shown.view.get_or_insert_with(|| View::fit(size, dims));
    if view.fitted {
        *view = View::fit(size, dims);
    }

    let pointer = response.hover_pos().map(|p| p - rect.min);
    if let Some(anchor) = pointer {
        // Wheel zooms at the cursor; pinch / ctrl-wheel arrive as zoom_delta.
        let (wheel, pinch) = ui.input(|i| {
            let wheel: f32 = i
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::MouseWheel { unit, delta, .. } => Some(match unit {
                        MouseWheelUnit::Point => delta.y,
                        MouseWheelUnit::Line => delta.y * 40.0,
                        MouseWheelUnit::Page => delta.y * 400.0,
                    }),
                    _ => None,
                })
                .sum();
            (wheel, i.zoom_delta())
        });
        let factor = (wheel * 0.0025).exp() * pinch;
        if factor != 1.0 {
            view.zoom_around(anchor, factor);
        }
    }
    let add = ui.input(|i| i.modifiers.shift || i.modifiers.command);
    let node_under = |shown: &Shown, pos: Option<egui::Pos2>| {
        nodes.zip(pos).and_then(|(n, p)| overlay::node_at(shown, n, p, overlay::NODE_RADIUS + 4.0))
    };
    // The view must be current for hit-testing: store it before deciding.
    let view_now = *view;
    shown.view = Some(view_now);
    if response.drag_started_by(PointerButton::Primary) {
        let origin = ui.input(|i| i.pointer.press_origin());
        shown.drag = Some(match node_under(shown, origin) {
            Some(node) => {
                out.events.push(NodeEvent::DragStart { node, add });
                DragKind::Node
            }
            None => DragKind::Pan,
        });
    }
    let view = shown.view.as_mut().expect("set above");
    let primary = response.dragged_by(PointerButton::Primary);
    if primary && shown.drag == Some(DragKind::Node) {
        let d = response.drag_delta() / view.zoom;
        if d != Vec2::ZERO {
            out.events.push(NodeEvent::DragMove([d.x, d.y]));
        }
    } else if primary || response.dragged_by(PointerButton::Middle) {
        view.pan(response.drag_delta());
    }
    if response.drag_stopped() && shown.drag.take() == Some(DragKind::Node) {
        out.events.push(NodeEvent::DragEnd);
    }
    if response.clicked() {
        out.events.push(match node_under(shown, response.interact_pointer_pos()) {
            Some(node) => NodeEvent::Click { node, add },
            None => NodeEvent::ClickEmpty,
        });
    }
    let view = shown.view.as_mut().expect("set above");
    if response.double_clicked() {
        *view = View::fit(size, dims);
    }
    if response.dragged_by(PointerButton::Secondary) {
        shown.adjust_window(response.drag_delta());
    }

    let view = shown.view.expect("set above");
    let ppp = ui.ctx().pixels_per_point();
    ui.painter().add(egui_wgpu::Callback::new_paint_callback(
        rect,
        XrayPaint {
            image: shown.image.clone(),
            image_id: shown.id,
            quad_ndc: view.quad_ndc(size, dims),
            window: shown.window,
            invert: shown.inverted(),
            texels_per_pixel: 1.0 / (view.zoom * ppp),
        },
    ));
    out.hover = pointer.and_then(|p| shown.hover_at(p));
    out.hovered_node = node_under(shown, response.hover_pos());
    (out, response)
}
