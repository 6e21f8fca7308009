//! Cardiothoracic ratio from the landmarks, the measurement radiologists take on a PA film:
//! the heart's widest horizontal extent over the widest inner extent of the thorax.
//!
//! - Heart width: rightmost minus leftmost heart contour node.
//! - Thoracic width: from the outermost node of the right lung (the image's left) to the
//!   outermost node of the left lung (the image's right): the lungs' lateral borders lie on
//!   the inner surface of the ribs, so this is the inner thoracic diameter at its widest.
//!
//! Both are horizontal distances in image pixels, so the ratio needs no pixel spacing, and a
//! letterboxed model input (uniform scale) gives the same ratio as the image.

use serde::{Deserialize, Serialize};

use crate::landmarks::{NUM_NODES, Organ, Point};

/// CTR above this suggests cardiomegaly (the PA-film convention).
pub const CARDIOMEGALY_CTR: f64 = 0.5;

/// A CTR and the two horizontal segments it was measured on (image pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ctr {
    pub ratio: f64,
    pub heart_width: f64,
    pub thorax_width: f64,
    /// Leftmost and rightmost heart extent, at the mean height of the two extreme nodes.
    pub heart_segment: [Point; 2],
    /// Outer edge of the right lung to outer edge of the left lung.
    pub thorax_segment: [Point; 2],
}

impl Ctr {
    pub fn cardiomegaly(&self) -> bool {
        self.ratio > CARDIOMEGALY_CTR
    }
}

/// The node of `organ` with the smallest (`max` false) or largest x.
fn extreme(nodes: &[Point; NUM_NODES], organ: Organ, max: bool) -> Point {
    let pick = |a: &&Point, b: &&Point| a[0].total_cmp(&b[0]);
    let it = nodes[organ.nodes()].iter();
    *if max { it.max_by(pick) } else { it.min_by(pick) }.expect("organs have nodes")
}

/// The CTR of a landmark set; `None` when the thorax has no width (degenerate landmarks).
pub fn ctr(nodes: &[Point; NUM_NODES]) -> Option<Ctr> {
    let (h0, h1) = (extreme(nodes, Organ::Heart, false), extreme(nodes, Organ::Heart, true));
    let (t0, t1) = (extreme(nodes, Organ::RightLung, false), extreme(nodes, Organ::LeftLung, true));
    let heart_width = (h1[0] - h0[0]) as f64;
    let thorax_width = (t1[0] - t0[0]) as f64;
    if !(thorax_width > 0.0 && heart_width.is_finite() && thorax_width.is_finite()) {
        return None;
    }
    let hy = (h0[1] + h1[1]) / 2.0;
    let ty = (t0[1] + t1[1]) / 2.0;
    Some(Ctr {
        ratio: heart_width / thorax_width,
        heart_width,
        thorax_width,
        heart_segment: [[h0[0], hy], [h1[0], hy]],
        thorax_segment: [[t0[0], ty], [t1[0], ty]],
    })
}

/// The CTR over the model's latent samples: mean and standard deviation of the per-sample
/// ratios (population sd, as the node std).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct CtrSpread {
    pub mean: f64,
    pub sd: f64,
    /// Samples with a measurable CTR.
    pub samples: usize,
}

/// Spread of the CTR over `samples` landmark sets.
pub fn spread(samples: impl IntoIterator<Item = [Point; NUM_NODES]>) -> Option<CtrSpread> {
    let r: Vec<f64> = samples.into_iter().filter_map(|s| ctr(&s)).map(|c| c.ratio).collect();
    if r.is_empty() {
        return None;
    }
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let sd = (r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    Some(CtrSpread { mean, sd, samples: r.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    #[test]
    fn boxes_give_their_width_ratio() {
        // Lungs spanning x 100..900, a heart spanning 400..700: CTR 300/800.
        let mut n = template();
        for organ in Organ::ALL {
            let r = organ.nodes();
            let k = (r.len() - 1) as f32;
            for (j, i) in r.enumerate() {
                let t = j as f32 / k;
                n[i] = match organ {
                    Organ::RightLung => [100.0 + 300.0 * t, 200.0 + 100.0 * t],
                    Organ::LeftLung => [900.0 - 300.0 * t, 250.0 + 100.0 * t],
                    Organ::Heart => [400.0 + 300.0 * t, 600.0],
                };
            }
        }
        let c = ctr(&n).unwrap();
        assert!((c.thorax_width - 800.0).abs() < 1e-3 && (c.heart_width - 300.0).abs() < 1e-3, "{c:?}");
        assert!((c.ratio - 0.375).abs() < 1e-6);
        assert_eq!(c.heart_segment, [[400.0, 600.0], [700.0, 600.0]]);
        assert_eq!(c.thorax_segment[0][0], 100.0);
        assert!(!c.cardiomegaly());
    }

    #[test]
    fn the_mean_template_has_a_normal_ratio_and_degenerate_sets_have_none() {
        let c = ctr(&template()).unwrap();
        assert!((0.3..0.55).contains(&c.ratio), "{c:?}");
        assert_eq!(ctr(&[[5.0, 5.0]; NUM_NODES]), None);
        let s = spread([template(), template()]).unwrap();
        assert_eq!((s.mean, s.sd, s.samples), (c.ratio, 0.0, 2));
    }
}
