//! A picture built from egui's shapes (lines, circles, rectangles, text) and rendered on
//! the CPU to a PNG.
//!
//! epaint, already in the tree for the GUI, lays out text with its bundled fonts and
//! tessellates every shape into anti-aliased (feathered) triangles sampling one font
//! atlas; a small triangle rasteriser here turns those into pixels. That gives readable,
//! smooth plots without a plotting crate or a font file of our own.

use std::path::Path;

use egui::epaint::text::{FontDefinitions, Fonts, TextOptions};
use egui::epaint::{
    Color32, ColorImage, FontId, Mesh, Pos2, Rect, Shape, Stroke, TessellationOptions, Tessellator, TextShape,
};
use egui::{Align2, Vec2};
use image::RgbImage;

use crate::formats::{FormatError, write_atomically};

/// A drawing surface of `width × height` pixels (one point = one pixel).
pub struct Canvas {
    width: u32,
    height: u32,
    fonts: Fonts,
    shapes: Vec<Shape>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: u32, height: u32) -> Self {
        let fonts = Fonts::new(TextOptions::default(), FontDefinitions::default());
        let mut c = Canvas { width, height, fonts, shapes: Vec::new() };
        c.add(Shape::rect_filled(Rect::from_min_size(Pos2::ZERO, c.size()), 0.0, Color32::WHITE));
        c
    }

    pub fn size(&self) -> Vec2 {
        Vec2::new(self.width as f32, self.height as f32)
    }

    pub fn add(&mut self, shape: Shape) {
        self.shapes.push(shape);
    }

    pub fn line(&mut self, points: Vec<Pos2>, width: f32, color: Color32) {
        self.add(Shape::line(points, Stroke::new(width, color)));
    }

    pub fn segment(&mut self, a: Pos2, b: Pos2, width: f32, color: Color32) {
        self.add(Shape::line_segment([a, b], Stroke::new(width, color)));
    }

    /// Text with its `anchor` point at `pos`.
    pub fn text(&mut self, pos: Pos2, anchor: Align2, text: &str, size: f32, color: Color32) {
        let mut view = self.fonts.with_pixels_per_point(1.0);
        let shape = Shape::text(&mut view, pos, anchor, text, FontId::proportional(size), color);
        self.add(shape);
    }

    /// Text rotated a quarter turn counter-clockwise (reading upwards), its `anchor` at `pos`.
    pub fn text_vertical(&mut self, pos: Pos2, anchor: Align2, text: &str, size: f32, color: Color32) {
        let galley =
            self.fonts.with_pixels_per_point(1.0).layout_no_wrap(text.to_string(), FontId::proportional(size), color);
        let a0 = anchor.pos_in_rect(&galley.rect).to_vec2();
        let shape = TextShape::new(pos - a0, galley, color).with_angle_and_anchor(-std::f32::consts::FRAC_PI_2, anchor);
        self.add(shape.into());
    }

    /// Width of `text` at `size`, for layout decisions.
    pub fn text_width(&mut self, text: &str, size: f32) -> f32 {
        let mut view = self.fonts.with_pixels_per_point(1.0);
        view.layout_no_wrap(text.to_string(), FontId::proportional(size), Color32::BLACK).size().x
    }

    /// Renders everything drawn so far.
    pub fn render(mut self) -> RgbImage {
        // Text was laid out (and its glyphs put in the atlas) as it was added; read the atlas now.
        let atlas = self.fonts.image();
        let discs = self.fonts.texture_atlas().prepared_discs();
        let mut tess = Tessellator::new(1.0, TessellationOptions::default(), self.fonts.font_image_size(), discs);
        let mut mesh = Mesh::default();
        for shape in std::mem::take(&mut self.shapes) {
            tess.tessellate_shape(shape, &mut mesh);
        }
        let mut buf = vec![[1.0f32; 3]; self.width as usize * self.height as usize];
        rasterise(&mesh, &atlas, &mut buf, self.width as usize, self.height as usize);
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let p = buf[y as usize * self.width as usize + x as usize];
            image::Rgb(p.map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8))
        })
    }

    /// Renders and writes a PNG.
    pub fn save_png(self, path: &Path) -> Result<(), FormatError> {
        let img = self.render();
        let mut bytes = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| FormatError::file(path, format!("cannot encode PNG: {e}")))?;
        write_atomically(path, &bytes)
    }
}

/// Draws the triangles of `mesh` over `buf` (RGB in [0, 1], gamma space as egui blends),
/// colours premultiplied, modulated by the atlas texture.
fn rasterise(mesh: &Mesh, atlas: &ColorImage, buf: &mut [[f32; 3]], w: usize, h: usize) {
    let [tw, th] = atlas.size;
    let texel = |x: i64, y: i64| -> [f32; 4] {
        let (x, y) = (x.clamp(0, tw as i64 - 1) as usize, y.clamp(0, th as i64 - 1) as usize);
        atlas.pixels[y * tw + x].to_array().map(|c| c as f32 / 255.0)
    };
    // Bilinear, texel centres at half-integers.
    let sample = |u: f32, v: f32| -> [f32; 4] {
        let (fx, fy) = (u * tw as f32 - 0.5, v * th as f32 - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - x0, fy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (a, b, c, d) = (texel(x0, y0), texel(x0 + 1, y0), texel(x0, y0 + 1), texel(x0 + 1, y0 + 1));
        std::array::from_fn(|k| (a[k] * (1.0 - ax) + b[k] * ax) * (1.0 - ay) + (c[k] * (1.0 - ax) + d[k] * ax) * ay)
    };
    let edge = |a: Pos2, b: Pos2, p: Pos2| (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
    // Pixels exactly on an edge shared by two triangles belong to one of them only.
    let owns_edge = |a: Pos2, b: Pos2| b.y > a.y || (b.y == a.y && b.x > a.x);

    for tri in mesh.indices.chunks_exact(3) {
        let [v0, mut v1, mut v2] = [0, 1, 2].map(|k| mesh.vertices[tri[k] as usize]);
        let mut area = edge(v0.pos, v1.pos, v2.pos);
        if area == 0.0 || !area.is_finite() {
            continue;
        }
        if area < 0.0 {
            std::mem::swap(&mut v1, &mut v2);
            area = -area;
        }
        let (min, max) = (v0.pos.min(v1.pos).min(v2.pos), v0.pos.max(v1.pos).max(v2.pos));
        let (x_lo, x_hi) = ((min.x.floor().max(0.0)) as usize, (max.x.ceil().min(w as f32)) as usize);
        let (y_lo, y_hi) = ((min.y.floor().max(0.0)) as usize, (max.y.ceil().min(h as f32)) as usize);
        let col = [v0, v1, v2].map(|v| v.color.to_array().map(|c| c as f32 / 255.0));
        let textured = [v0, v1, v2].iter().any(|v| v.uv != egui::epaint::WHITE_UV);
        let own = [owns_edge(v1.pos, v2.pos), owns_edge(v2.pos, v0.pos), owns_edge(v0.pos, v1.pos)];
        for y in y_lo..y_hi {
            for x in x_lo..x_hi {
                let p = Pos2::new(x as f32 + 0.5, y as f32 + 0.5);
                let wts = [edge(v1.pos, v2.pos, p), edge(v2.pos, v0.pos, p), edge(v0.pos, v1.pos, p)];
                if (0..3).any(|k| wts[k] < 0.0 || (wts[k] == 0.0 && !own[k])) {
                    continue;
                }
                let b = wts.map(|t| t / area);
                let mut src: [f32; 4] = std::array::from_fn(|k| b[0] * col[0][k] + b[1] * col[1][k] + b[2] * col[2][k]);
                if textured {
                    let u = b[0] * v0.uv.x + b[1] * v1.uv.x + b[2] * v2.uv.x;
                    let v = b[0] * v0.uv.y + b[1] * v1.uv.y + b[2] * v2.uv.y;
                    let t = sample(u, v);
                    for k in 0..4 {
                        src[k] *= t[k];
                    }
                }
                let dst = &mut buf[y * w + x];
                for k in 0..3 {
                    dst[k] = src[k] + dst[k] * (1.0 - src[3]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_shapes_and_text() {
        let mut c = Canvas::new(120, 60);
        c.add(Shape::rect_filled(Rect::from_min_max(Pos2::new(10.0, 10.0), Pos2::new(30.0, 30.0)), 0.0, Color32::RED));
        c.text(Pos2::new(60.0, 40.0), Align2::LEFT_CENTER, "Dice", 16.0, Color32::BLACK);
        c.text_vertical(Pos2::new(100.0, 30.0), Align2::CENTER_CENTER, "mm", 14.0, Color32::BLACK);
        let img = c.render();
        assert_eq!(img.get_pixel(20, 20).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(5, 5).0, [255, 255, 255]);
        // The text left dark pixels in its box and nothing below it.
        let dark = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
                .count()
        };
        assert!(dark(60, 100, 30, 50) > 20, "no text drawn");
        assert_eq!(dark(60, 95, 52, 60), 0);
        // Vertical text is taller than wide.
        assert!(dark(92, 108, 15, 45) > 10);
    }
}
