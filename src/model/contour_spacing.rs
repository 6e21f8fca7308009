//! Contour spacing: slide every node along its organ's predicted contour to where the JSRT
//! landmark protocol puts it.
//!
//! The reference landmarks (JSRT, and the HybridGNet data sets drawn the same way) were sampled
//! from traced mask outlines: a few anchor nodes per organ sit at fixed points (the apex, the
//! costophrenic angles…), and the nodes between two anchors are spread at equal steps of the
//! traced 8-connected outline, i.e. at equal *chessboard* (L∞) arc length. In the 195
//! references every step between anchors has the same max(|dx|, |dy|) to within a pixel.
//! A model places nodes near the outline but spaces them less evenly; most of its remaining
//! error lies along the contour. This step keeps the anchors and the predicted outline (a
//! centripetal Catmull-Rom curve through the nodes) and re-spaces the nodes between them as the
//! protocol does. It has no fitted parameters; `calibrate` records in the weights file that
//! the model's calibration was fitted with it (metadata [`KEY`]).

use crate::landmarks::{Organ, Point, NUM_NODES};

use super::uncertainty::Prediction;

/// Metadata key: `"true"` when predictions are re-spaced.
pub const KEY: &str = "contour_spacing";

/// Anchor nodes per organ (indices within the organ, in [`Organ::ALL`] order): the nodes at
/// which the step length changes in at least three quarters of the JSRT references.
pub const ANCHORS: [&[usize]; 3] = [&[0, 21, 29, 42, 43], &[0, 21, 27, 40, 43, 44, 48], &[0, 5, 12, 18]];

/// Curve points per span between two nodes: enough that the curve's length is within a
/// fraction of a pixel of the spline's.
const PER_SPAN: usize = 16;

/// A closed centripetal Catmull-Rom curve through `nodes`, sampled [`PER_SPAN`] times per span
/// and closed (the last point is the first node again); node `i` is curve point `i * PER_SPAN`.
/// Centripetal (knots spaced by the square root of the node distances) because predicted nodes
/// are unevenly spaced, and the uniform curve loops or bulges where a short span sits between
/// long ones.
fn closed_curve(nodes: &[Point]) -> Vec<Point> {
    let n = nodes.len();
    let mut out = Vec::with_capacity(n * PER_SPAN + 1);
    // Knot step: the square root of the distance, kept off zero for coincident nodes.
    let knot = |a: Point, b: Point| (a[0] - b[0]).hypot(a[1] - b[1]).max(1e-3).sqrt();
    let lerp = |p: Point, q: Point, ta: f32, tb: f32, t: f32| mix(p, q, (t - ta) / (tb - ta));
    for i in 0..n {
        let [p0, p1, p2, p3] = [nodes[(i + n - 1) % n], nodes[i], nodes[(i + 1) % n], nodes[(i + 2) % n]];
        let t1 = knot(p0, p1);
        let t2 = t1 + knot(p1, p2);
        let t3 = t2 + knot(p2, p3);
        for s in 0..PER_SPAN {
            // Barry and Goldman's pyramid of linear interpolations.
            let t = t1 + (t2 - t1) * s as f32 / PER_SPAN as f32;
            let a1 = lerp(p0, p1, 0.0, t1, t);
            let a2 = lerp(p1, p2, t1, t2, t);
            let a3 = lerp(p2, p3, t2, t3, t);
            let b1 = lerp(a1, a2, 0.0, t2, t);
            let b2 = lerp(a2, a3, t1, t3, t);
            out.push(lerp(b1, b2, t1, t2, t));
        }
    }
    out.push(nodes[0]);
    out
}

/// The point at chessboard arc length `s` along `curve` (`cum[i]`: length up to point `i`).
fn at_length(curve: &[Point], cum: &[f64], s: f64) -> Point {
    let i = cum.partition_point(|&c| c <= s).clamp(1, curve.len() - 1);
    let span = cum[i] - cum[i - 1];
    let t = if span > 0.0 { ((s - cum[i - 1]) / span).clamp(0.0, 1.0) as f32 } else { 0.0 };
    mix(curve[i - 1], curve[i], t)
}

/// The point a fraction `w` of the way from `a` to `b`.
fn mix(a: Point, b: Point, w: f32) -> Point {
    [a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w]
}

/// One organ's nodes re-spaced: anchors stay, the nodes between two anchors go to equal
/// chessboard steps along the curve through all of them.
fn respace_contour(nodes: &[Point], anchors: &[usize]) -> Vec<Point> {
    let n = nodes.len();
    let curve = closed_curve(nodes);
    let mut cum = Vec::with_capacity(curve.len());
    cum.push(0.0f64);
    for w in curve.windows(2) {
        let step = (w[1][0] - w[0][0]).abs().max((w[1][1] - w[0][1]).abs()) as f64;
        cum.push(cum.last().unwrap() + step);
    }
    let total = *cum.last().unwrap();
    let mut out = nodes.to_vec();
    for (k, &a) in anchors.iter().enumerate() {
        let b = anchors[(k + 1) % anchors.len()];
        let gap = (b + n - a) % n;
        let from = cum[a * PER_SPAN];
        let mut to = cum[b * PER_SPAN];
        if to <= from {
            to += total;
        }
        for j in 1..gap {
            let s = from + (to - from) * j as f64 / gap as f64;
            out[(a + j) % n] = at_length(&curve, &cum, if s > total { s - total } else { s });
        }
    }
    out
}

/// Every organ's nodes re-spaced ([`respace_contour`]). Non-finite input comes back as it was.
pub fn respace(nodes: &[Point; NUM_NODES]) -> [Point; NUM_NODES] {
    if nodes.iter().flatten().any(|v| !v.is_finite()) {
        return *nodes;
    }
    let mut out = *nodes;
    for organ in Organ::ALL {
        let range = organ.nodes();
        let moved = respace_contour(&nodes[range.clone()], ANCHORS[organ.index()]);
        out[range].copy_from_slice(&moved);
    }
    out
}

/// Re-space a prediction's mean landmarks and mark it [`Prediction::contour_spaced`]; its
/// std, σ² and calibration stay, and its ratio's spread moves with the landmarks.
pub fn apply(p: &mut Prediction) {
    p.move_mean(respace(&p.mean));
    p.contour_spaced = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth closed outline: an ellipse, nodes at uneven angles.
    fn ellipse(n: usize, jitter: f32) -> Vec<Point> {
        (0..n)
            .map(|i| {
                let t = std::f32::consts::TAU * (i as f32 + jitter * ((i * 7 % 5) as f32 - 2.0) / 2.0) / n as f32;
                [500.0 + 300.0 * t.cos(), 500.0 + 200.0 * t.sin()]
            })
            .collect()
    }

    /// Chessboard length of the ellipse of [`ellipse`] from angle `t0` forward to `t1`.
    fn ellipse_chessboard_length(t0: f32, mut t1: f32) -> f32 {
        if t1 < t0 {
            t1 += std::f32::consts::TAU;
        }
        let steps = 2000;
        let dt = (t1 - t0) / steps as f32;
        (0..steps).map(|k| {
            let t = t0 + (k as f32 + 0.5) * dt;
            (300.0 * t.sin() * dt).abs().max((200.0 * t.cos() * dt).abs())
        }).sum()
    }

    #[test]
    fn nodes_between_anchors_end_at_equal_chessboard_steps_on_the_same_outline() {
        let nodes = ellipse(26, 0.25);
        let anchors = ANCHORS[2];
        let out = respace_contour(&nodes, anchors);
        for &a in anchors {
            assert_eq!(out[a], nodes[a], "anchor {a} moved");
        }
        // Every node stays on the ellipse.
        let angle = |q: Point| ((q[1] - 500.0) / 200.0).atan2((q[0] - 500.0) / 300.0).rem_euclid(std::f32::consts::TAU);
        for q in &out {
            let r = ((q[0] - 500.0) / 300.0).hypot((q[1] - 500.0) / 200.0);
            assert!((r - 1.0).abs() < 0.015, "{q:?} left the outline (r {r})");
        }
        // Between two anchors, equal chessboard steps along the outline (to within 4 %, the
        // curve through the nodes being close to the ellipse, not on it).
        let steps = |v: &[Point]| -> Vec<f32> {
            (0..v.len()).map(|i| ellipse_chessboard_length(angle(v[i]), angle(v[(i + 1) % v.len()]))).collect()
        };
        let spread = |v: &[f32]| v.iter().fold(0.0f32, |m, &s| m.max(s)) / v.iter().fold(f32::MAX, |m, &s| m.min(s));
        let (after, before) = (steps(&out), steps(&nodes));
        for (k, &a) in anchors.iter().enumerate() {
            let b = anchors[(k + 1) % anchors.len()];
            let span = |s: &[f32]| (a..a + (b + 26 - a) % 26).map(|i| s[i % 26]).collect::<Vec<_>>();
            assert!(spread(&span(&after)) < 1.04, "span {a}..{b}: steps {:?}", span(&after));
        }
        // The uneven input was not evenly spaced to begin with.
        assert!(spread(&before[5..12]) > 1.15, "{before:?}");
    }

    #[test]
    fn respaced_nodes_stay_when_respaced_again_and_bad_input_comes_back_unchanged() {
        let mut nodes = [[0.0f32; 2]; NUM_NODES];
        for organ in Organ::ALL {
            let r = organ.nodes();
            let e = ellipse(r.len(), 0.4);
            nodes[r].copy_from_slice(&e);
        }
        let once = respace(&nodes);
        let twice = respace(&once);
        let moved = |a: &[Point; NUM_NODES], b: &[Point; NUM_NODES]| {
            a.iter().zip(b).map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1])).fold(0.0f32, f32::max)
        };
        // The curve through the moved nodes is a little different, so a second pass moves
        // them a little; far less than the first.
        let (first, second) = (moved(&nodes, &once), moved(&once, &twice));
        assert!(first > 10.0 && second < 0.15 * first, "first pass moved a node {first} px, the second {second} px");
        let mut bad = nodes;
        bad[50] = [f32::NAN, 3.0];
        assert_eq!(respace(&bad)[51], bad[51]);
    }
}
