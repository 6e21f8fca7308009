//! The latent samples carried through the patch refinement: where the image, not only the
//! decoder, is unsure of a node.
//!
//! The latent std says how far the decoder's samples scatter about the landmarks. It cannot
//! say whether the image would put a node back where it belongs. Here every sample is shifted
//! to scatter about the landmarks as placed before the refinement (warped, averaged and
//! shape-corrected), refined by the same passes as the mean, and re-spaced when the mean is.
//! Where the image shows a clear edge the samples gather on it; where it shows none they stay
//! apart. On JSRT val this spread points at the error better than the latent std
//! (`assets/README.md`, "Refined spread"). A calibration fitted on it says so in its metadata
//! ([`super::calibration::StdOf`]), and only then do predictions compute it
//! ([`super::HybridGNet::refines_samples`]).

use super::contour_spacing::respace;
use super::uncertainty::{Draws, Prediction, node_spread};
use crate::landmarks::{NUM_NODES, Point};

/// Per node, the std (x, y) of `draws` shifted to scatter about `placed` (model frame), each
/// moved by `refine` and, with `respaced`, re-spaced along its contours: model units. `None`
/// without at least two samples.
pub fn spread(
    draws: &Draws,
    placed: &[Point; NUM_NODES],
    respaced: bool,
    refine: impl Fn(&[Point; NUM_NODES]) -> [Point; NUM_NODES] + Sync,
) -> Option<[Point; NUM_NODES]> {
    let shapes = draws.shifted_to(placed);
    if shapes.len() < 2 {
        return None;
    }
    let place = |s: &[Point; NUM_NODES]| {
        let q = refine(s);
        if respaced { respace(&q) } else { q }
    };
    // The samples on every core: the model's convolutions leave the others idle meanwhile.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(shapes.len());
    let moved: Vec<[Point; NUM_NODES]> = std::thread::scope(|scope| {
        let workers: Vec<_> = shapes
            .chunks(shapes.len().div_ceil(threads))
            .map(|chunk| scope.spawn(|| chunk.iter().map(place).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a refinement worker never panics")).collect()
    });
    let flat: Vec<f32> = moved.iter().flatten().flatten().copied().collect();
    Some(node_spread(&flat, moved.len()).1)
}

/// Set `p`'s [`Prediction::refined_std`] (image pixels) from [`spread`], `placed` being its
/// landmarks before the refinement, image pixels.
pub fn set(
    p: &mut Prediction,
    draws: &Draws,
    placed: &[Point; NUM_NODES],
    respaced: bool,
    refine: impl Fn(&[Point; NUM_NODES]) -> [Point; NUM_NODES] + Sync,
) {
    let lb = p.letterbox;
    p.refined_std = spread(draws, &placed.map(|q| lb.to_model(q)), respaced, refine)
        .map(|s| s.iter().map(|&v| lb.scale_to_image(v)).collect());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    /// Three samples about the template: the first node spread along x by ±d, every other
    /// node by ±d/10 along y.
    fn draws(d: f32) -> Draws {
        let t = template().map(|q| [q[0] / 1024.0, q[1] / 1024.0]);
        let mut v = Vec::new();
        for sign in [-1.0f32, 0.0, 1.0] {
            for (k, q) in t.iter().enumerate() {
                if k == 0 {
                    v.extend([q[0] + sign * d, q[1]]);
                } else {
                    v.extend([q[0], q[1] + sign * d / 10.0]);
                }
            }
        }
        Draws(v)
    }

    #[test]
    fn the_spread_is_the_samples_own_when_the_refinement_does_not_move_them() {
        let d = draws(0.01);
        let placed = template().map(|q| [q[0] / 1024.0 + 0.05, q[1] / 1024.0]);
        let s = spread(&d, &placed, false, |q| *q).unwrap();
        // Population std of −d, 0, +d: d·√(2/3); the shift to `placed` moves no sample apart.
        let want = 0.01 * (2.0f32 / 3.0).sqrt();
        assert!((s[0][0] - want).abs() < 1e-6 && s[0][1].abs() < 1e-6, "{:?}", s[0]);
        assert!((s[5][1] - want / 10.0).abs() < 1e-6 && s[5][0].abs() < 1e-6, "{:?}", s[5]);
    }

    #[test]
    fn a_refinement_that_gathers_the_samples_leaves_no_spread_and_one_that_moves_them_alike_leaves_it() {
        let d = draws(0.01);
        let placed = template().map(|q| [q[0] / 1024.0, q[1] / 1024.0]);
        // Every sample pulled onto the same shape: a clear edge everywhere.
        let gathered = spread(&d, &placed, true, |_| placed).unwrap();
        assert!(gathered.iter().flatten().all(|v| v.abs() < 1e-6));
        // Every sample moved by the same offset: no edge to gather them.
        let shifted = spread(&d, &placed, false, |q| q.map(|p| [p[0] + 0.02, p[1]])).unwrap();
        assert!((shifted[0][0] - 0.01 * (2.0f32 / 3.0).sqrt()).abs() < 1e-6);
        // Fewer than two samples: no spread to speak of.
        let one = Draws(d.0[..NUM_NODES * 2].to_vec());
        assert!(spread(&one, &placed, false, |q| *q).is_none());
    }
}
