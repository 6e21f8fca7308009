//! From a displayed X-ray to the model's S×S input, and from model coordinates back to image
//! pixels (METHOD.md §2).
//!
//! Padding: zeros to a square, pad//2 before and the rest after, on the short axis.
//! Resizing: bicubic with OpenCV's `INTER_CUBIC` kernel (Keys, a = −0.75), half-pixel centres
//! (`src = (dst + 0.5)·in/out − 0.5`), edge pixels repeated beyond the border, no antialiasing
//! when shrinking (OpenCV does none), and the result clamped to [0, 1] as OpenCV saturates
//! 8-bit output. OpenCV computes 8-bit images with fixed-point weights; we use f32 throughout,
//! which differs from it by less than one grey level.

use serde::{Deserialize, Serialize};

use crate::landmarks::Point;

/// Where the original image sits in the padded square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letterbox {
    pub width: u32,
    pub height: u32,
    /// Side of the padded square: max(width, height).
    pub side: u32,
    /// Zero columns added on the left (pad//2 when the image is taller than wide).
    pub pad_x: u32,
    /// Zero rows added on top.
    pub pad_y: u32,
}

impl Letterbox {
    pub fn new(width: u32, height: u32) -> Self {
        let side = width.max(height);
        Letterbox { width, height, side, pad_x: (side - width) / 2, pad_y: (side - height) / 2 }
    }

    /// Image pixels → model coordinates in [0, 1] of the square.
    pub fn to_model(&self, p: Point) -> [f32; 2] {
        let s = self.side as f32;
        [(p[0] + self.pad_x as f32) / s, (p[1] + self.pad_y as f32) / s]
    }

    /// Model coordinates in [0, 1] → image pixels: ×padded side, minus the padding before.
    pub fn to_image(&self, q: [f32; 2]) -> Point {
        let s = self.side as f32;
        [q[0] * s - self.pad_x as f32, q[1] * s - self.pad_y as f32]
    }

    /// A spread (standard deviation) in model units → pixels: only the scale applies.
    pub fn scale_to_image(&self, d: [f32; 2]) -> [f32; 2] {
        let s = self.side as f32;
        [d[0] * s, d[1] * s]
    }

    /// `pixels` (row-major, width×height) padded with zeros into the square.
    pub fn pad(&self, pixels: &[f32]) -> Vec<f32> {
        let (w, side) = (self.width as usize, self.side as usize);
        assert_eq!(pixels.len(), w * self.height as usize, "pixel count");
        let mut out = vec![0.0; side * side];
        for (y, row) in pixels.chunks_exact(w).enumerate() {
            let start = (y + self.pad_y as usize) * side + self.pad_x as usize;
            out[start..start + w].copy_from_slice(row);
        }
        out
    }
}

/// The model input (size×size, row-major, in [0, 1]) for a grey image in [0, 1], and where
/// the image sits in it.
pub fn model_input(grey: &[f32], width: u32, height: u32, size: usize) -> (Vec<f32>, Letterbox) {
    let lb = Letterbox::new(width, height);
    let square = lb.pad(grey);
    let side = lb.side as usize;
    (resize_bicubic(&square, side, side, size, size), lb)
}

const A: f32 = -0.75;

/// The four cubic weights for a sample at fraction `t` ∈ [0, 1) past its left neighbour.
fn cubic_weights(t: f32) -> [f32; 4] {
    let w0 = ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;
    let u = 1.0 - t;
    let w2 = ((A + 2.0) * u - (A + 3.0)) * u * u + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// For each output index: the four clamped source indices and their weights.
fn taps(src: usize, dst: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|d| {
            let x = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let left = x.floor();
            let t = x - left;
            let left = left as i64;
            let idx = [-1, 0, 1, 2].map(|o| (left + o).clamp(0, src as i64 - 1) as usize);
            (idx, cubic_weights(t))
        })
        .collect()
}

/// Separable bicubic resize of a row-major (sw×sh) image to (dw×dh), clamped to [0, 1].
pub fn resize_bicubic(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    assert_eq!(src.len(), sw * sh, "pixel count");
    let (tx, ty) = (taps(sw, dw), taps(sh, dh));
    // Horizontal pass over every source row, then vertical.
    let mut rows = vec![0.0f32; sh * dw];
    for (y, line) in src.chunks_exact(sw).enumerate() {
        let out = &mut rows[y * dw..(y + 1) * dw];
        for (o, (idx, w)) in out.iter_mut().zip(&tx) {
            *o = w[0] * line[idx[0]] + w[1] * line[idx[1]] + w[2] * line[idx[2]] + w[3] * line[idx[3]];
        }
    }
    let mut out = vec![0.0f32; dw * dh];
    for (y, (idx, w)) in ty.iter().enumerate() {
        let r: [&[f32]; 4] = idx.map(|i| &rows[i * dw..(i + 1) * dw]);
        for (x, o) in out[y * dw..(y + 1) * dw].iter_mut().enumerate() {
            let v = w[0] * r[0][x] + w[1] * r[1][x] + w[2] * r[2][x] + w[3] * r[3][x];
            *o = v.clamp(0.0, 1.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_image_is_padded_top_and_bottom() {
        // 10×7: pad 3 rows, 1 before and 2 after.
        let lb = Letterbox::new(10, 7);
        assert_eq!((lb.side, lb.pad_x, lb.pad_y), (10, 0, 1));
        let padded = lb.pad(&vec![1.0; 70]);
        assert!(padded[..10].iter().all(|&v| v == 0.0));
        assert!(padded[10..80].iter().all(|&v| v == 1.0));
        assert!(padded[80..].iter().all(|&v| v == 0.0));
        let tall = Letterbox::new(4, 9);
        assert_eq!((tall.side, tall.pad_x, tall.pad_y), (9, 2, 0));
    }

    #[test]
    fn a_point_survives_the_round_trip_through_model_space() {
        for lb in [Letterbox::new(1280, 1436), Letterbox::new(1098, 899), Letterbox::new(512, 512)] {
            let (w, h) = (lb.width as f32, lb.height as f32);
            for p in [[0.0, 0.0], [0.13 * w, 0.71 * h], [w - 1.0, h - 1.0]] {
                let q = lb.to_model(p);
                assert!((0.0..=1.0).contains(&q[0]) && (0.0..=1.0).contains(&q[1]));
                let back = lb.to_image(q);
                assert!((back[0] - p[0]).abs() < 1e-3 && (back[1] - p[1]).abs() < 1e-3, "{p:?} → {q:?} → {back:?}");
            }
        }
        // 1280×1436: padded side 1436, 156 columns of padding, 78 before.
        let lb = Letterbox::new(1280, 1436);
        assert_eq!(lb.to_image([0.5, 0.5]), [718.0 - 78.0, 718.0]);
        let d = lb.scale_to_image([0.01, 0.02]);
        assert!((d[0] - 14.36).abs() < 1e-4 && (d[1] - 28.72).abs() < 1e-4, "{d:?}");
    }

    #[test]
    fn cubic_weights_match_opencv_kernel() {
        // t = 0: the sample sits on a pixel.
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        // t = ½ with a = −0.75: (−0.09375, 0.59375, 0.59375, −0.09375).
        let w = cubic_weights(0.5);
        for (g, e) in w.iter().zip([-0.09375, 0.59375, 0.59375, -0.09375]) {
            assert!((g - e).abs() < 1e-7);
        }
    }

    #[test]
    fn resize_keeps_constants() {
        let flat = resize_bicubic(&vec![0.25; 30 * 20], 30, 20, 16, 16);
        assert!(flat.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn resize_matches_opencv_inter_cubic() {
        // Expected values: cv2.resize(src, (w, h), interpolation=cv2.INTER_CUBIC) on this
        // float32 7×5 image (OpenCV 5.0.0), rounded to 6 decimals, then clamped to [0, 1].
        let src: Vec<f32> = (0..35).map(|i| ((i * 37) % 23) as f32 / 22.0).collect();
        let down: [f64; 12] = [
            0.351746, 0.297372, 0.566122, 0.533395, 0.35609, 0.769132, 0.958674, 0.302268, 0.445381, 0.187761, 0.42872,
            0.544409,
        ];
        let up: [f64; 54] = [
            -0.056223, 0.467159, 0.451603, 0.322091, 0.904218, 0.593353, 0.106486, 0.186014, 0.709396, 0.133013,
            0.751457, 0.792527, 0.311436, 0.237216, 0.593815, 0.362708, 0.417222, 1.023415, 0.425245, 0.401372,
            0.634344, 0.654568, 0.165069, 0.863276, 0.76583, 0.418956, 0.488725, 0.783507, 0.297303, 0.222477,
            0.496455, 0.482797, 0.643097, 0.826849, 0.611285, 0.150324, 0.683215, 0.611571, 0.193213, 0.090883,
            0.726918, 0.28062, 0.469237, 0.71975, 0.533759, -0.040643, 0.523974, 0.535871, 0.383727, 0.923414,
            0.660524, 0.148577, 0.216394, 0.787111,
        ];
        for ((w, h), want) in [((4, 3), &down[..]), ((9, 6), &up[..])] {
            let got = resize_bicubic(&src, 7, 5, w, h);
            for (i, (g, e)) in got.iter().zip(want).enumerate() {
                let e = (*e as f32).clamp(0.0, 1.0);
                assert!((g - e).abs() < 2e-6, "{w}×{h} pixel {i}: {g} vs OpenCV {e}");
            }
        }
    }

    #[test]
    fn identity_size_returns_the_image() {
        let img: Vec<f32> = (0..25).map(|i| (i as f32 * 0.37) % 1.0).collect();
        let same = resize_bicubic(&img, 5, 5, 5, 5);
        for (a, b) in img.iter().zip(&same) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
