//! Similarity warps of the model's S×S input and of landmarks in [0, 1] model coordinates:
//! training augments with them, test-time augmentation measures stability with them.

/// A 2×3 affine map on [0, 1] model coordinates: q' = M·q + t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub m: [[f32; 2]; 2],
    pub t: [f32; 2],
}

impl Affine {
    pub const IDENTITY: Affine = Affine { m: [[1.0, 0.0], [0.0, 1.0]], t: [0.0, 0.0] };

    /// Scale `s` and rotation `angle` (radians) about `centre`, then a shift by `shift`.
    pub fn similarity(s: f32, angle: f32, centre: [f32; 2], shift: [f32; 2]) -> Affine {
        let (sin, cos) = angle.sin_cos();
        let m = [[s * cos, -s * sin], [s * sin, s * cos]];
        // q' = M(q − c) + c + shift
        let t = [
            centre[0] - (m[0][0] * centre[0] + m[0][1] * centre[1]) + shift[0],
            centre[1] - (m[1][0] * centre[0] + m[1][1] * centre[1]) + shift[1],
        ];
        Affine { m, t }
    }

    pub fn apply(&self, q: [f32; 2]) -> [f32; 2] {
        [
            self.m[0][0] * q[0] + self.m[0][1] * q[1] + self.t[0],
            self.m[1][0] * q[0] + self.m[1][1] * q[1] + self.t[1],
        ]
    }

    pub fn inverse(&self) -> Affine {
        let [[a, b], [c, d]] = self.m;
        let det = a * d - b * c;
        let m = [[d / det, -b / det], [-c / det, a / det]];
        let t = [-(m[0][0] * self.t[0] + m[0][1] * self.t[1]), -(m[1][0] * self.t[0] + m[1][1] * self.t[1])];
        Affine { m, t }
    }
}

/// Warp an S×S image by `a` (output pixel centre q ← input at a⁻¹(q)), bilinear, zeros outside
/// (the zeros the letterbox padding also uses).
pub fn warp(pixels: &[f32], size: usize, a: &Affine) -> Vec<f32> {
    assert_eq!(pixels.len(), size * size, "warp expects {size}×{size} pixels");
    let inv = a.inverse();
    let s = size as f32;
    let at = |xi: i64, yi: i64| {
        if xi < 0 || yi < 0 || xi >= size as i64 || yi >= size as i64 { 0.0 } else { pixels[yi as usize * size + xi as usize] }
    };
    let mut out = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let q = inv.apply([(x as f32 + 0.5) / s, (y as f32 + 0.5) / s]);
            let (fx, fy) = (q[0] * s - 0.5, q[1] * s - 0.5);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (tx, ty) = (fx - x0, fy - y0);
            let (xi, yi) = (x0 as i64, y0 as i64);
            out[y * size + x] = (at(xi, yi) * (1.0 - tx) + at(xi + 1, yi) * tx) * (1.0 - ty)
                + (at(xi, yi + 1) * (1.0 - tx) + at(xi + 1, yi + 1) * tx) * ty;
        }
    }
    out
}

