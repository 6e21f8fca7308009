//! A synthetic chest radiograph the app draws itself, so a newcomer can try
//! everything without any patient data. Organs follow the landmark template, so
//! the model has something chest-like to segment; bones and noise make window/level
//! meaningful. Values are 12-bit (0–4095) with a stored window, like a CR image.

use super::{ImageSource, PixelSpacing, Window, XrayImage};
use crate::landmarks::{self, Organ, Point};

pub const SIZE: u32 = 1024;

/// Draw the phantom. Deterministic: the same pixels every time.
pub fn chest_phantom() -> XrayImage {
    let n = SIZE as usize;
    let template = landmarks::template();
    let lungs = [Organ::RightLung, Organ::LeftLung].map(|o| fill_polygon(landmarks::contour(&template, o), n));
    let heart = fill_polygon(landmarks::contour(&template, Organ::Heart), n);

    let mut v = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (x as f32, y as f32);
            let i = y * n + x;
            // Body: a wide ellipse of soft tissue; outside it, air.
            let bx = (fx - 512.0) / 470.0;
            let by = (fy - 560.0) / 620.0;
            let body = if bx * bx + by * by < 1.0 { 1.0 } else { 0.0 };
            let mut val = 250.0 + body * 2000.0;
            let in_lung = lungs[0][i] || lungs[1][i];
            if in_lung {
                // Lungs are darker towards the apex, where there is less tissue in front.
                val = 700.0 + 0.35 * fy;
            }
            if heart[i] {
                val = 2050.0 + 0.2 * (fy - 600.0);
            }
            // Spine: a bright vertical band, fainter where the heart covers it.
            let sx = (fx - 512.0).abs();
            if sx < 42.0 && fy > 40.0 {
                val += if heart[i] { 250.0 } else { 700.0 } * (1.0 - (sx / 42.0).powi(4));
            }
            val += rib_shadow(fx, fy) * if in_lung { 1.0 } else { 0.5 };
            v[i] = val;
        }
    }
    box_blur(&mut v, n, 5);
    box_blur(&mut v, n, 3);
    // Deterministic grain, as a detector would add.
    let mut state = 0x9e37_79b9_u32;
    for p in v.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *p = (*p + (state as f32 / u32::MAX as f32 - 0.5) * 60.0).clamp(0.0, 4095.0).round();
    }

    let mut img = XrayImage::new(
        SIZE,
        SIZE,
        v,
        ImageSource {
            path: None,
            label: "synthetic".into(),
            modality: "OT".into(),
            transfer_syntax: "synthetic".into(),
            bits_stored: 12,
        },
    );
    img.spacing = Some(PixelSpacing { row_mm: 0.35, col_mm: 0.35 });
    img.file_window = Some(Window { center: 1500.0, width: 2600.0 });
    img
}

/// Brightness added by the ribs and clavicles at (x, y): arcs falling away from the spine.
fn rib_shadow(x: f32, y: f32) -> f32 {
    let dx = (x - 512.0).abs();
    if dx < 45.0 || dx > 470.0 {
        return 0.0;
    }
    let mut add = 0.0f32;
    // Posterior ribs: ten arcs per side, each dropping as it runs lateral.
    for k in 0..10 {
        let y0 = 150.0 + 62.0 * k as f32;
        let centre = y0 + 0.00055 * dx * dx - 0.05 * dx;
        let d = (y - centre).abs();
        if d < 14.0 {
            add += 330.0 * (1.0 - d / 14.0).sqrt();
        }
    }
    // Clavicles: a gently rising bar near the top.
    let clav = 150.0 - 0.12 * dx;
    let d = (y - clav).abs();
    if d < 16.0 && dx < 330.0 {
        add += 500.0 * (1.0 - d / 16.0);
    }
    add
}

/// Pixels inside a closed polygon, boundary included, by even–odd scanlines at pixel centres.
fn fill_polygon(poly: &[Point], n: usize) -> Vec<bool> {
    let mut mask = vec![false; n * n];
    let mut xs = Vec::new();
    for y in 0..n {
        let fy = y as f32;
        xs.clear();
        for (a, b) in poly.iter().zip(poly.iter().cycle().skip(1)) {
            let (y0, y1) = (a[1], b[1]);
            if (y0 <= fy && fy < y1) || (y1 <= fy && fy < y0) {
                xs.push(a[0] + (fy - y0) / (y1 - y0) * (b[0] - a[0]));
            }
        }
        xs.sort_by(f32::total_cmp);
        for pair in xs.chunks_exact(2) {
            let x0 = pair[0].ceil().max(0.0);
            let x1 = pair[1].floor().min((n - 1) as f32);
            if x0 <= x1 {
                mask[y * n + x0 as usize..=y * n + x1 as usize].fill(true);
            }
        }
    }
    mask
}

/// In-place separable box blur with the given radius (edges clamp).
fn box_blur(v: &mut [f32], n: usize, r: usize) {
    let mut tmp = vec![0f32; n];
    for pass in 0..2 {
        for line in 0..n {
            let at = |k: usize| if pass == 0 { line * n + k } else { k * n + line };
            let mut acc = 0.0;
            for k in 0..=r {
                acc += v[at(k.min(n - 1))];
            }
            acc += r as f32 * v[at(0)];
            for k in 0..n {
                tmp[k] = acc / (2 * r + 1) as f32;
                let add = v[at((k + r + 1).min(n - 1))];
                let sub = v[at(k.saturating_sub(r))];
                acc += add - sub;
            }
            for k in 0..n {
                v[at(k)] = tmp[k];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_has_dark_lungs_and_bright_heart_and_spine() {
        let img = chest_phantom();
        assert_eq!((img.width, img.height), (SIZE, SIZE));
        assert_eq!(img.source.label, "synthetic");
        let t = landmarks::template();
        let mean_of = |o: Organ| {
            let c = landmarks::contour(&t, o);
            let (x, y) = c.iter().fold((0.0, 0.0), |(a, b), p| (a + p[0], b + p[1]));
            let (x, y) = (x / c.len() as f32, y / c.len() as f32);
            img.value_at(x as i64, y as i64).unwrap()
        };
        let lung = mean_of(Organ::RightLung);
        let heart = mean_of(Organ::Heart);
        let spine = img.value_at(512, 300).unwrap();
        let air = img.value_at(5, 5).unwrap();
        assert!(air < lung && lung < heart && heart < spine, "air {air} lung {lung} heart {heart} spine {spine}");
        // Deterministic.
        assert_eq!(chest_phantom().pixels, img.pixels);
    }

    #[test]
    fn fill_includes_boundary_and_excludes_outside() {
        let sq = [[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]];
        let m = fill_polygon(&sq, 8);
        let inside: usize = m.iter().filter(|&&b| b).count();
        // Rows 2,3,4 are crossed (half-open in y), columns 2..=5.
        assert_eq!(inside, 3 * 4);
        assert!(m[2 * 8 + 2] && !m[1 * 8 + 2] && !m[2 * 8 + 6]);
    }
}
