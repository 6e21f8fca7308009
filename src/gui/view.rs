//! Zoom and pan as plain geometry, separate from drawing so it can be tested.
//!
//! Coordinates: "viewport" positions are in egui points relative to the viewer's
//! top-left corner; "image" positions are continuous pixel coordinates where pixel
//! (i, j) covers [i, i+1) × [j, j+1).

use egui::Vec2;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// Viewport position of the image's top-left corner.
    pub offset: Vec2,
    /// Still showing the whole image: refit when the viewport changes size.
    pub fitted: bool,
}

pub const MIN_ZOOM: f32 = 1.0 / 64.0;
pub const MAX_ZOOM: f32 = 64.0;

impl View {
    /// The whole image, centred, as large as fits.
    pub fn fit(viewport: Vec2, image: [u32; 2]) -> View {
        let (w, h) = (image[0].max(1) as f32, image[1].max(1) as f32);
        let zoom = (viewport.x / w).min(viewport.y / h).clamp(MIN_ZOOM, MAX_ZOOM);
        let offset = (viewport - Vec2::new(w, h) * zoom) / 2.0;
        View { zoom, offset, fitted: true }
    }

    /// One image pixel per physical screen pixel, keeping the viewport centre fixed.
    pub fn one_to_one(&self, viewport: Vec2, pixels_per_point: f32) -> View {
        let mut v = *self;
        v.zoom_around(viewport / 2.0, 1.0 / pixels_per_point / self.zoom);
        v
    }

    /// Multiply the zoom by `factor`, keeping the image point under `anchor` in place.
    pub fn zoom_around(&mut self, anchor: Vec2, factor: f32) {
        let new_zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let img = self.to_image(anchor);
        self.zoom = new_zoom;
        self.offset = anchor - img * new_zoom;
        self.fitted = false;
    }

    /// Put image point `image_pos` at the viewport's centre, zoomed in to at least `min_zoom`
    /// (a reader who zoomed in further keeps that zoom).
    pub fn centre_on(&mut self, viewport: Vec2, image_pos: Vec2, min_zoom: f32) {
        self.zoom = self.zoom.max(min_zoom).clamp(MIN_ZOOM, MAX_ZOOM);
        self.offset = viewport / 2.0 - image_pos * self.zoom;
        self.fitted = false;
    }

    pub fn pan(&mut self, delta: Vec2) {
        self.offset += delta;
        self.fitted = false;
    }

    pub fn to_image(&self, viewport_pos: Vec2) -> Vec2 {
        (viewport_pos - self.offset) / self.zoom
    }

    pub fn to_viewport(&self, image_pos: Vec2) -> Vec2 {
        self.offset + image_pos * self.zoom
    }

    /// The integer pixel under a viewport position, if it lies on the image.
    pub fn pixel_at(&self, viewport_pos: Vec2, image: [u32; 2]) -> Option<[u32; 2]> {
        let p = self.to_image(viewport_pos);
        let (x, y) = (p.x.floor(), p.y.floor());
        (x >= 0.0 && y >= 0.0 && x < image[0] as f32 && y < image[1] as f32).then(|| [x as u32, y as u32])
    }

    /// The image quad in normalised device coordinates of a viewport of `size` (y up).
    pub fn quad_ndc(&self, size: Vec2, image: [u32; 2]) -> [f32; 4] {
        let tl = self.offset;
        let br = self.to_viewport(Vec2::new(image[0] as f32, image[1] as f32));
        let ndc = |p: Vec2| [p.x / size.x * 2.0 - 1.0, 1.0 - p.y / size.y * 2.0];
        let (a, b) = (ndc(tl), ndc(br));
        [a[0], a[1], b[0], b[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_centres_and_fills_the_limiting_axis() {
        let v = View::fit(Vec2::new(800.0, 600.0), [1000, 1000]);
        assert_eq!(v.zoom, 0.6);
        assert_eq!(v.offset, Vec2::new(100.0, 0.0));
        assert_eq!(v.pixel_at(Vec2::new(100.0, 0.0), [1000, 1000]), Some([0, 0]));
        assert_eq!(v.pixel_at(Vec2::new(99.0, 10.0), [1000, 1000]), None);
    }

    #[test]
    fn zoom_keeps_the_point_under_the_cursor() {
        let mut v = View::fit(Vec2::new(800.0, 600.0), [1000, 1000]);
        let cursor = Vec2::new(321.0, 123.0);
        let before = v.to_image(cursor);
        v.zoom_around(cursor, 2.5);
        assert!((v.to_image(cursor) - before).length() < 1e-3);
        assert!(!v.fitted);
    }

    #[test]
    fn centring_puts_the_point_mid_viewport_and_never_zooms_out() {
        let viewport = Vec2::new(800.0, 600.0);
        let mut v = View::fit(viewport, [1000, 1000]);
        v.centre_on(viewport, Vec2::new(900.0, 100.0), 1.5);
        assert_eq!(v.zoom, 1.5);
        assert!((v.to_viewport(Vec2::new(900.0, 100.0)) - viewport / 2.0).length() < 1e-3);
        assert!(!v.fitted);
        v.zoom = 4.0;
        v.centre_on(viewport, Vec2::new(10.0, 10.0), 1.5);
        assert_eq!(v.zoom, 4.0);
        assert!((v.to_image(viewport / 2.0) - Vec2::splat(10.0)).length() < 1e-3);
    }

    #[test]
    fn one_to_one_matches_physical_pixels() {
        let v = View::fit(Vec2::new(800.0, 600.0), [2000, 2000]).one_to_one(Vec2::new(800.0, 600.0), 2.0);
        assert_eq!(v.zoom, 0.5);
        // The centre of the image stays in the centre.
        assert!((v.to_image(Vec2::new(400.0, 300.0)) - Vec2::splat(1000.0)).length() < 1e-3);
    }

    #[test]
    fn quad_covers_the_viewport_when_image_fills_it() {
        let v = View { zoom: 1.0, offset: Vec2::ZERO, fitted: false };
        assert_eq!(v.quad_ndc(Vec2::new(100.0, 50.0), [100, 50]), [-1.0, 1.0, 1.0, -1.0]);
    }
}
