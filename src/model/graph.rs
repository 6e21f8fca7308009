//! The decoder's two graphs (METHOD.md §1): the 120-node landmark rings and their 60-node
//! coarse version, with the matrices that move features between them.
//!
//! Every node has exactly two neighbours, so the Chebyshev operator L̂ = −D^{-1/2} A D^{-1/2}
//! is −½(x[prev] + x[next]): two gathers instead of a dense 120×120 product.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::landmarks::{NUM_NODES, Organ};

/// Nodes per organ on the fine graph (right lung, left lung, heart).
pub fn fine_sizes() -> [usize; 3] {
    Organ::ALL.map(|o| o.len())
}

/// Nodes per organ on the coarse graph: ⌈N/2⌉.
pub fn coarse_sizes() -> [usize; 3] {
    fine_sizes().map(|n| n.div_ceil(2))
}

pub const NUM_COARSE_NODES: usize = 60;

/// Previous and next node of every node when organs of `sizes` are laid out one after another,
/// each a closed ring.
pub fn ring_neighbours(sizes: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut prev = Vec::new();
    let mut next = Vec::new();
    let mut start = 0;
    for &n in sizes {
        for i in 0..n {
            prev.push(start + (i + n - 1) % n);
            next.push(start + (i + 1) % n);
        }
        start += n;
    }
    (prev, next)
}

/// U (120×60, row-major): fine i even → coarse i/2 (weight 1); odd → coarse ⌊i/2⌋ and
/// (⌊i/2⌋+1) mod M (½ each). Block-diagonal over the organs.
pub fn upsample_matrix() -> Vec<f32> {
    upsample_matrix_for(&fine_sizes())
}

/// U for rings of the given fine sizes: (Σ N) × (Σ ⌈N/2⌉), row-major.
pub fn upsample_matrix_for(fine: &[usize]) -> Vec<f32> {
    let cols: usize = fine.iter().map(|n| n.div_ceil(2)).sum();
    let mut u = vec![0.0; fine.iter().sum::<usize>() * cols];
    let (mut f0, mut c0) = (0, 0);
    for &n in fine {
        let m = n.div_ceil(2);
        for i in 0..n {
            let row = (f0 + i) * cols;
            if i % 2 == 0 {
                u[row + c0 + i / 2] = 1.0;
            } else {
                u[row + c0 + i / 2] += 0.5;
                u[row + c0 + (i / 2 + 1) % m] += 0.5;
            }
        }
        f0 += n;
        c0 += m;
    }
    u
}

/// D (60×120, row-major): coarse j = mean of fine 2j and 2j+1, or just 2j when 2j+1 == N.
/// The decoder does not use it; training compares pos1 with D·target.
pub fn downsample_matrix() -> Vec<f32> {
    downsample_matrix_for(&fine_sizes())
}

/// D for rings of the given fine sizes: (Σ ⌈N/2⌉) × (Σ N), row-major.
pub fn downsample_matrix_for(fine: &[usize]) -> Vec<f32> {
    let cols: usize = fine.iter().sum();
    let rows: usize = fine.iter().map(|n| n.div_ceil(2)).sum();
    let mut d = vec![0.0; rows * cols];
    let (mut f0, mut c0) = (0, 0);
    for &n in fine {
        let m = n.div_ceil(2);
        for j in 0..m {
            let row = (c0 + j) * cols;
            if 2 * j + 1 < n {
                d[row + f0 + 2 * j] = 0.5;
                d[row + f0 + 2 * j + 1] = 0.5;
            } else {
                d[row + f0 + 2 * j] = 1.0;
            }
        }
        f0 += n;
        c0 += m;
    }
    d
}

/// One ring graph on a device: neighbour indices for the Chebyshev operator.
#[derive(Debug, Clone)]
pub struct Ring {
    prev: Tensor<1, Int>,
    next: Tensor<1, Int>,
    nodes: usize,
}

impl Ring {
    pub fn new(sizes: &[usize], device: &Device) -> Self {
        let (prev, next) = ring_neighbours(sizes);
        let nodes = prev.len();
        let idx = |v: Vec<usize>| {
            let v: Vec<i64> = v.into_iter().map(|i| i as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [nodes]), device)
        };
        Ring { prev: idx(prev), next: idx(next), nodes }
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// L̂x for x of shape (batch, nodes, features): −½(x[prev] + x[next]).
    pub fn laplacian(&self, x: Tensor<3>) -> Tensor<3> {
        (x.clone().select(1, self.prev.clone()) + x.select(1, self.next.clone())).mul_scalar(-0.5)
    }
}

/// Both graphs and the upsampling matrix, built once per device.
#[derive(Debug, Clone)]
pub struct Graphs {
    pub coarse: Ring,
    pub fine: Ring,
    /// U as a (120, 60) tensor.
    pub up: Tensor<2>,
}

impl Graphs {
    pub fn new(device: &Device) -> Self {
        Graphs {
            coarse: Ring::new(&coarse_sizes(), device),
            fine: Ring::new(&fine_sizes(), device),
            up: Tensor::from_data(TensorData::new(upsample_matrix(), [NUM_NODES, NUM_COARSE_NODES]), device),
        }
    }

    /// U·x for coarse features x (batch, 60, f) → (batch, 120, f).
    pub fn upsample(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, _, f] = x.dims();
        // One (120×60)·(60×b·f) product: the batch folded into the columns.
        let cols = x.swap_dims(0, 1).reshape([NUM_COARSE_NODES, b * f]);
        self.up.clone().matmul(cols).reshape([NUM_NODES, b, f]).swap_dims(0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_graph_has_60_nodes_in_rings_of_22_25_13() {
        assert_eq!(coarse_sizes(), [22, 25, 13]);
        assert_eq!(coarse_sizes().iter().sum::<usize>(), NUM_COARSE_NODES);
    }

    #[test]
    fn ring_neighbours_wrap_within_each_organ() {
        let (prev, next) = ring_neighbours(&fine_sizes());
        assert_eq!((prev[0], next[0]), (43, 1));
        assert_eq!((prev[43], next[43]), (42, 0));
        assert_eq!((prev[44], next[44]), (93, 45));
        assert_eq!((prev[93], next[93]), (92, 44));
        assert_eq!((prev[94], next[94]), (119, 95));
        assert_eq!((prev[119], next[119]), (118, 94));
    }

    #[test]
    fn upsampling_rows_sum_to_one_with_exact_entries() {
        let u = upsample_matrix();
        let at = |i: usize, j: usize| u[i * NUM_COARSE_NODES + j];
        for i in 0..NUM_NODES {
            let row = &u[i * NUM_COARSE_NODES..(i + 1) * NUM_COARSE_NODES];
            assert_eq!(row.iter().sum::<f32>(), 1.0, "row {i}");
        }
        // Right lung (44 fine, 22 coarse): node 2 → coarse 1; node 43 (odd, last) → 21 and wraps to 0.
        assert_eq!(at(2, 1), 1.0);
        assert_eq!((at(43, 21), at(43, 0)), (0.5, 0.5));
        // Left lung (50 fine from 44, 25 coarse from 22): node 49 → coarse 22+24 and wraps to 22.
        assert_eq!((at(44 + 49, 22 + 24), at(44 + 49, 22)), (0.5, 0.5));
        assert_eq!(at(44 + 48, 22 + 24), 1.0);
        // Heart (26 fine from 94, 13 coarse from 47): node 25 → coarse 47+12 and wraps to 47.
        assert_eq!((at(94 + 25, 47 + 12), at(94 + 25, 47)), (0.5, 0.5));
        assert_eq!(at(94 + 1, 47), 0.5);
        assert_eq!(at(94 + 1, 48), 0.5);
        // Block-diagonal: no weight across organs except the listed wraps.
        assert_eq!(at(43, 22), 0.0);
        assert_eq!(at(94, 46), 0.0);
    }

    #[test]
    fn downsampling_rows_sum_to_one_with_exact_entries() {
        let d = downsample_matrix();
        let at = |j: usize, i: usize| d[j * NUM_NODES + i];
        for j in 0..NUM_COARSE_NODES {
            let row = &d[j * NUM_NODES..(j + 1) * NUM_NODES];
            assert_eq!(row.iter().sum::<f32>(), 1.0, "row {j}");
            assert!(row.iter().filter(|&&w| w != 0.0).count() <= 2);
        }
        assert_eq!((at(0, 0), at(0, 1)), (0.5, 0.5));
        assert_eq!((at(21, 42), at(21, 43)), (0.5, 0.5));
        assert_eq!((at(22 + 24, 44 + 48), at(22 + 24, 44 + 49)), (0.5, 0.5));
        assert_eq!((at(47 + 12, 94 + 24), at(47 + 12, 94 + 25)), (0.5, 0.5));
    }

    #[test]
    fn down_then_up_keeps_even_nodes() {
        // D·U is not the identity, but U followed by D maps a coarse signal to itself plus
        // half of its neighbours' average: check one exact value on a coarse delta.
        let (u, d) = (upsample_matrix(), downsample_matrix());
        let mut du = vec![0.0f32; NUM_COARSE_NODES * NUM_COARSE_NODES];
        for j in 0..NUM_COARSE_NODES {
            for k in 0..NUM_COARSE_NODES {
                du[j * NUM_COARSE_NODES + k] =
                    (0..NUM_NODES).map(|i| d[j * NUM_NODES + i] * u[i * NUM_COARSE_NODES + k]).sum();
            }
        }
        // Coarse 5 = mean(fine 10, fine 11) = mean(c5, (c5+c6)/2) = 0.75·c5 + 0.25·c6.
        assert_eq!(du[5 * NUM_COARSE_NODES + 5], 0.75);
        assert_eq!(du[5 * NUM_COARSE_NODES + 6], 0.25);
    }

    #[test]
    fn odd_ring_coarse_end_copies_last_fine_node() {
        // None of the three organs has an odd node count; the rule still has to hold.
        // A 5-node ring has 3 coarse nodes.
        let d = downsample_matrix_for(&[5]);
        assert_eq!(
            d,
            vec![
                0.5, 0.5, 0.0, 0.0, 0.0, //
                0.0, 0.0, 0.5, 0.5, 0.0, //
                0.0, 0.0, 0.0, 0.0, 1.0,
            ]
        );
        let u = upsample_matrix_for(&[5]);
        assert_eq!(
            u,
            vec![
                1.0, 0.0, 0.0, //
                0.5, 0.5, 0.0, //
                0.0, 1.0, 0.0, //
                0.0, 0.5, 0.5, //
                0.0, 0.0, 1.0,
            ]
        );
        // A 3-node ring: fine 1 sits between coarse 0 and coarse 1; coarse 1 is fine 2 alone.
        assert_eq!(upsample_matrix_for(&[3]), vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0]);
    }
}
