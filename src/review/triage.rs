//! The order in which a reviewer visits the nodes: the least certain first, so that the
//! colours' promise ("look where the model is unsure") is one key press per node.

use crate::landmarks::NUM_NODES;

/// Node indices by `uncertainty` (expected error, or std for an uncalibrated model), largest
/// first; equal values keep index order, and a NaN sorts last.
pub fn least_certain_first(uncertainty: &[f32; NUM_NODES]) -> [usize; NUM_NODES] {
    let mut order: [usize; NUM_NODES] = std::array::from_fn(|i| i);
    let key = |i: usize| if uncertainty[i].is_nan() { f32::NEG_INFINITY } else { uncertainty[i] };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order
}

/// The node after `current` in `order` (before it when `forward` is false), wrapping round;
/// with no current node, the first (or last) of the order.
pub fn step(order: &[usize; NUM_NODES], current: Option<usize>, forward: bool) -> usize {
    let Some(pos) = current.and_then(|c| order.iter().position(|&n| n == c)) else {
        return if forward { order[0] } else { order[NUM_NODES - 1] };
    };
    let next = if forward { (pos + 1) % NUM_NODES } else { (pos + NUM_NODES - 1) % NUM_NODES };
    order[next]
}

/// 1-based rank of `node` in `order`.
pub fn rank(order: &[usize; NUM_NODES], node: usize) -> usize {
    order.iter().position(|&n| n == node).map_or(0, |p| p + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_come_largest_first_and_ties_by_index() {
        let mut u = [1.0f32; NUM_NODES];
        u[7] = 9.0;
        u[3] = 5.0;
        u[100] = 5.0;
        u[50] = f32::NAN;
        let o = least_certain_first(&u);
        assert_eq!(&o[..4], &[7, 3, 100, 0]);
        assert_eq!(o[NUM_NODES - 1], 50);
        assert_eq!(rank(&o, 7), 1);
        assert_eq!(rank(&o, 100), 3);
        let mut sorted = o;
        sorted.sort();
        assert_eq!(sorted, std::array::from_fn(|i| i), "every node exactly once");
    }

    #[test]
    fn stepping_walks_the_order_and_wraps() {
        let mut u = [0.0f32; NUM_NODES];
        u[10] = 3.0;
        u[20] = 2.0;
        let o = least_certain_first(&u);
        assert_eq!(step(&o, None, true), 10);
        assert_eq!(step(&o, Some(10), true), 20);
        assert_eq!(step(&o, Some(20), false), 10);
        assert_eq!(step(&o, Some(10), false), o[NUM_NODES - 1]);
        assert_eq!(step(&o, Some(o[NUM_NODES - 1]), true), 10);
        assert_eq!(step(&o, None, false), o[NUM_NODES - 1]);
    }
}
