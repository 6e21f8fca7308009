//! Binary organ masks and how a landmark contour becomes one.
//!
//! The CheXmask masks (`Right Lung`, `Left Lung`, `Heart` RLE columns) are filled contours
//! of the integer landmarks. [`fill_contour`] reproduces them pixel for pixel: on all
//! 150 organ masks of `VinDr-CXR_prediction.csv` it gives exactly the released RLE
//! (`tests/integration/formats.rs` asserts it). The convention, found by trying candidates against
//! those files:
//!
//! - vertices are rounded to whole pixels (the released landmarks are integers already);
//! - interior: every pixel whose centre lies inside the polygon (even–odd rule, pixel
//!   (x, y) at coordinate (x, y), scanline crossings half-open in y);
//! - boundary: every edge drawn as an 8-connected digital line, walked from its left end
//!   (from its top end when vertical), one pixel per step of the major axis, the minor
//!   coordinate rounded to nearest with exact halves rounded towards the starting end.
//!
//! All of it is integer arithmetic, so the result does not depend on float rounding.

use crate::landmarks::{NUM_NODES, Organ, Point};

/// A binary mask, row-major, `width * height` pixels.
#[derive(Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<bool>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mask({}×{}, {} set)", self.width, self.height, self.count())
    }
}

impl Mask {
    /// An empty (all background) mask.
    pub fn new(width: u32, height: u32) -> Self {
        Mask { width, height, data: vec![false; width as usize * height as usize] }
    }

    /// A mask from row-major values; `None` when the length is not `width * height`.
    pub fn from_vec(width: u32, height: u32, data: Vec<bool>) -> Option<Self> {
        (data.len() == width as usize * height as usize).then_some(Mask { width, height, data })
    }

    pub fn from_fn(width: u32, height: u32, f: impl Fn(u32, u32) -> bool) -> Self {
        let data = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect();
        Mask { width, height, data }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major pixels.
    pub fn as_slice(&self) -> &[bool] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [bool] {
        &mut self.data
    }

    /// Pixel (x, y); `false` outside the mask.
    pub fn get(&self, x: i64, y: i64) -> bool {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return false;
        }
        self.data[y as usize * self.width as usize + x as usize]
    }

    /// Sets pixel (x, y); does nothing outside the mask.
    pub fn set(&mut self, x: i64, y: i64, value: bool) {
        if x >= 0 && y >= 0 && x < self.width as i64 && y < self.height as i64 {
            self.data[y as usize * self.width as usize + x as usize] = value;
        }
    }

    /// Number of foreground pixels.
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    pub fn is_empty(&self) -> bool {
        !self.data.iter().any(|&v| v)
    }

    /// Pixel-wise OR.
    ///
    /// # Panics
    /// When the sizes differ: callers compare sizes first and report which file is wrong.
    pub fn union(&self, other: &Mask) -> Mask {
        assert_eq!((self.width, self.height), (other.width, other.height), "mask sizes differ");
        let data = self.data.iter().zip(&other.data).map(|(&a, &b)| a || b).collect();
        Mask { width: self.width, height: self.height, data }
    }

    /// Smallest rectangle holding every foreground pixel: `(x0, y0, x1, y1)`, inclusive.
    pub fn bounding_box(&self) -> Option<(u32, u32, u32, u32)> {
        let w = self.width as usize;
        let mut bb: Option<(u32, u32, u32, u32)> = None;
        for (y, row) in self.data.chunks(w.max(1)).enumerate() {
            let Some(first) = row.iter().position(|&v| v) else { continue };
            let last = row.iter().rposition(|&v| v).expect("row has a set pixel");
            let (y, first, last) = (y as u32, first as u32, last as u32);
            bb = Some(match bb {
                None => (first, y, last, y),
                Some((x0, y0, x1, _)) => (x0.min(first), y0, x1.max(last), y),
            });
        }
        bb
    }
}

/// The three organ masks of one image, in [`Organ::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrganMasks(pub [Mask; 3]);

impl OrganMasks {
    pub fn get(&self, organ: Organ) -> &Mask {
        &self.0[organ_index(organ)]
    }

    /// Both lungs together, as the CheXmask evaluation scores them.
    pub fn lungs(&self) -> Mask {
        self.get(Organ::RightLung).union(self.get(Organ::LeftLung))
    }

    pub fn width(&self) -> u32 {
        self.0[0].width()
    }

    pub fn height(&self) -> u32 {
        self.0[0].height()
    }
}

/// Position of `organ` in [`Organ::ALL`].
pub fn organ_index(organ: Organ) -> usize {
    match organ {
        Organ::RightLung => 0,
        Organ::LeftLung => 1,
        Organ::Heart => 2,
    }
}

/// The filled closed contour through `points` (see the module docs for the convention).
/// Parts outside the `width × height` image are clipped; non-finite points are skipped.
pub fn fill_contour(points: &[Point], width: u32, height: u32) -> Mask {
    let vertices: Vec<(i64, i64)> = points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        // Far-off nonsense (a corrupt file) is pulled in so the exact integer arithmetic
        // below cannot overflow; no real contour comes near 2^24 px.
        .map(|p| (clamp_coordinate(p[0]), clamp_coordinate(p[1])))
        .collect();
    let mut mask = Mask::new(width, height);
    if vertices.is_empty() {
        return mask;
    }
    fill_interior(&vertices, &mut mask);
    for i in 0..vertices.len() {
        draw_line(vertices[i], vertices[(i + 1) % vertices.len()], &mut mask);
    }
    mask
}

/// The mask of one organ from all 120 landmarks.
pub fn organ_mask(landmarks: &[Point; NUM_NODES], organ: Organ, width: u32, height: u32) -> Mask {
    fill_contour(&landmarks[organ.nodes()], width, height)
}

/// All three organ masks from the 120 landmarks.
pub fn organ_masks(landmarks: &[Point; NUM_NODES], width: u32, height: u32) -> OrganMasks {
    OrganMasks(Organ::ALL.map(|o| organ_mask(landmarks, o, width, height)))
}

/// Pixels whose centre is inside the polygon, by the even–odd rule.
fn fill_interior(v: &[(i64, i64)], mask: &mut Mask) {
    let (ymin, ymax) = v.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (y_first, y_last) = (ymin.max(0), ymax.min(mask.height as i64 - 1));
    // Crossings as exact fractions num/den (den > 0).
    let mut crossings: Vec<(i64, i64)> = Vec::new();
    for y in y_first..=y_last {
        crossings.clear();
        for i in 0..v.len() {
            let ((x0, y0), (x1, y1)) = (v[i], v[(i + 1) % v.len()]);
            // Half-open in y, so a vertex on the scanline counts once and horizontal edges never.
            if (y0 <= y && y < y1) || (y1 <= y && y < y0) {
                let (num, den) = (x0 * (y1 - y0) + (y - y0) * (x1 - x0), y1 - y0);
                crossings.push(if den < 0 { (-num, -den) } else { (num, den) });
            }
        }
        crossings.sort_by(|a, b| (a.0 as i128 * b.1 as i128).cmp(&(b.0 as i128 * a.1 as i128)));
        for pair in crossings.chunks_exact(2) {
            let lo = pair[0].0.div_euclid(pair[0].1) + i64::from(pair[0].0.rem_euclid(pair[0].1) != 0);
            let hi = pair[1].0.div_euclid(pair[1].1);
            let (lo, hi) = (lo.max(0), hi.min(mask.width as i64 - 1));
            for x in lo..=hi {
                mask.set(x, y, true);
            }
        }
    }
}

/// `num / den` (den > 0) rounded to nearest, exact halves towards zero.
fn round_half_to_zero(num: i64, den: i64) -> i64 {
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        // The exact value is q + ½: towards zero means q when positive, q + 1 when negative.
        std::cmp::Ordering::Equal => {
            if num >= 0 {
                q
            } else {
                q + 1
            }
        }
    }
}

/// An 8-connected line from its left (or top) end, halves rounded towards that end.
fn draw_line(a: (i64, i64), b: (i64, i64), mask: &mut Mask) {
    let ((x0, y0), (x1, y1)) = if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) { (b, a) } else { (a, b) };
    let (dx, dy) = (x1 - x0, y1 - y0); // dx ≥ 0
    let (w, h) = (mask.width as i64, mask.height as i64);
    // Only the steps whose major coordinate lies in the image can set a pixel: walking
    // just those keeps a far-off vertex from costing millions of steps.
    if dx >= dy.abs() {
        for i in (-x0).max(0)..=dx.min(w - 1 - x0) {
            let off = if dx == 0 { 0 } else { round_half_to_zero(dy * i, dx) };
            mask.set(x0 + i, y0 + off, true);
        }
    } else {
        let (n, s) = (dy.abs(), dy.signum());
        // y0 + s·j in [0, h − 1].
        let (lo, hi) = if s > 0 { ((-y0).max(0), n.min(h - 1 - y0)) } else { ((y0 - (h - 1)).max(0), n.min(y0)) };
        for j in lo..=hi {
            mask.set(x0 + round_half_to_zero(dx * j, n), y0 + s * j, true);
        }
    }
}

/// Rounded to whole pixels and kept within ±2^24.
fn clamp_coordinate(v: f32) -> i64 {
    const LIMIT: f32 = (1 << 24) as f32;
    v.round().clamp(-LIMIT, LIMIT) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(m: &Mask) -> Vec<String> {
        (0..m.height() as i64)
            .map(|y| (0..m.width() as i64).map(|x| if m.get(x, y) { '#' } else { '.' }).collect())
            .collect()
    }

    #[test]
    fn a_square_includes_its_boundary() {
        let m = fill_contour(&[[1.0, 1.0], [4.0, 1.0], [4.0, 3.0], [1.0, 3.0]], 6, 5);
        assert_eq!(rows(&m), ["......", ".####.", ".####.", ".####.", "......"]);
        assert_eq!(m.bounding_box(), Some((1, 1, 4, 3)));
    }

    #[test]
    fn line_ties_round_towards_the_left_end() {
        // From (0,0) to (4,2): y = i/2, halves at i = 1 and 3 go towards y0 = 0.
        let mut m = Mask::new(5, 3);
        draw_line((4, 2), (0, 0), &mut m);
        assert_eq!(rows(&m), ["##...", "..##.", "....#"]);
        // Steep line (0,0)→(1,2): x = j/2, the half at j = 1 goes to x = 0.
        let mut m = Mask::new(2, 3);
        draw_line((1, 2), (0, 0), &mut m);
        assert_eq!(rows(&m), ["#.", "#.", ".#"]);
        // Rising to the right (0,2)→(4,0): halves towards y0 = 2.
        let mut m = Mask::new(5, 3);
        draw_line((0, 2), (4, 0), &mut m);
        assert_eq!(rows(&m), ["....#", "..##.", "##..."]);
    }

    #[test]
    fn triangle_interior_uses_pixel_centres() {
        // Right triangle with legs of 4: the hypotenuse passes through pixel centres.
        let m = fill_contour(&[[0.0, 0.0], [4.0, 4.0], [0.0, 4.0]], 5, 5);
        assert_eq!(rows(&m), ["#....", "##...", "###..", "####.", "#####"]);
    }

    #[test]
    fn clipped_and_degenerate_contours_do_not_panic() {
        let m = fill_contour(&[[-5.0, -5.0], [10.0, -5.0], [10.0, 10.0], [-5.0, 10.0]], 4, 3);
        assert_eq!(m.count(), 12);
        assert_eq!(fill_contour(&[[2.0, 1.0]], 4, 3).count(), 1);
        assert_eq!(fill_contour(&[], 4, 3).count(), 0);
        assert_eq!(fill_contour(&[[f32::NAN, 1.0], [1.0, 1.0]], 4, 3).count(), 1);
        assert!(Mask::new(0, 0).bounding_box().is_none());
    }

    #[test]
    fn far_off_vertices_neither_overflow_nor_stall() {
        let far = [[1.0e30, 2.0], [3.0, -1.0e30], [-4.0e12, 5.0], [2.0, 2.0]];
        let m = fill_contour(&far, 8, 6);
        assert!(m.count() > 0);
        // Lines clipped to the image draw exactly the pixels of the full walk.
        for (a, b) in [((-30, 2), (40, 5)), ((3, -50), (5, 60)), ((7, 70), (2, -9)), ((-3, -3), (12, 9))] {
            let mut clipped = Mask::new(8, 6);
            draw_line(a, b, &mut clipped);
            let mut full = Mask::new(8, 6);
            let ((x0, y0), (x1, y1)) = if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) { (b, a) } else { (a, b) };
            let (dx, dy): (i64, i64) = (x1 - x0, y1 - y0);
            if dx >= dy.abs() {
                for i in 0..=dx {
                    full.set(x0 + i, y0 + if dx == 0 { 0 } else { round_half_to_zero(dy * i, dx) }, true);
                }
            } else {
                for j in 0..=dy.abs() {
                    full.set(x0 + round_half_to_zero(dx * j, dy.abs()), y0 + dy.signum() * j, true);
                }
            }
            assert_eq!(clipped, full, "{a:?} {b:?}");
        }
    }

    #[test]
    fn self_intersecting_contour_uses_even_odd() {
        // A bow tie: the two lobes are filled, the crossing point is on both edges.
        let m = fill_contour(&[[0.0, 0.0], [6.0, 4.0], [6.0, 0.0], [0.0, 4.0]], 7, 5);
        assert!(m.get(1, 2) && m.get(5, 2) && m.get(3, 2));
        assert!(!m.get(3, 0) && !m.get(3, 4));
    }
}
