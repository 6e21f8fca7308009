//! Chebyshev graph convolution as torch_geometric's `ChebConv` computes it with
//! normalisation "sym" and λmax = 2 (METHOD.md §3): T0 = x, T1 = L̂x, Tk = 2L̂T(k−1) − T(k−2),
//! out = Σk Tk·Wk + b.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use super::graph::Ring;

#[derive(Module, Debug)]
pub struct ChebConv {
    /// (K, in, out): Wk = weight[k]. torch_geometric ≥ 2 stores `lins.k.weight` as Wkᵀ.
    pub weight: Param<Tensor<3>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl ChebConv {
    pub fn new(weight: Tensor<3>, bias: Option<Tensor<1>>) -> Self {
        ChebConv { weight: Param::from_tensor(weight), bias: bias.map(Param::from_tensor) }
    }

    /// (K, in, out).
    pub fn dims(&self) -> [usize; 3] {
        self.weight.dims()
    }

    /// x: (batch, nodes, in) → (batch, nodes, out).
    pub fn forward(&self, x: Tensor<3>, ring: &Ring) -> Tensor<3> {
        let [b, n, fin] = x.dims();
        let [k, _, fout] = self.dims();
        let mut terms = Vec::with_capacity(k);
        terms.push(x);
        if k > 1 {
            terms.push(ring.laplacian(terms[0].clone()));
        }
        for i in 2..k {
            let next = ring.laplacian(terms[i - 1].clone()).mul_scalar(2.0) - terms[i - 2].clone();
            terms.push(next);
        }
        // [T0 | T1 | … ] · [W0; W1; …]: one product instead of K.
        let stacked = if k == 1 { terms.pop().expect("one term") } else { Tensor::cat(terms, 2) };
        let out =
            stacked.reshape([b * n, k * fin]).matmul(self.weight.val().reshape([k * fin, fout])).reshape([b, n, fout]);
        match &self.bias {
            Some(bias) => out + bias.val().reshape([1, 1, fout]),
            None => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{assert_close, cpu, tensor};

    #[test]
    fn k1_is_a_plain_per_node_linear_map() {
        let d = cpu();
        let ring = Ring::new(&[4], &d);
        let w = tensor::<3>(vec![1.0, 2.0, 3.0, 4.0], [1, 2, 2], &d); // W0 = [[1,2],[3,4]]
        let conv = ChebConv::new(w, Some(tensor::<1>(vec![0.5, -0.5], [2], &d)));
        let x = tensor::<3>(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, -1.0], [1, 4, 2], &d);
        let y = conv.forward(x, &ring);
        assert_close(&y, &[1.5, 1.5, 3.5, 3.5, 4.5, 5.5, -0.5, -0.5], 1e-6);
    }

    #[test]
    fn recurrence_on_a_four_node_ring_matches_hand_computation() {
        // One feature, x = δ at node 0 on a 4-ring. L̂ = −A/2:
        // T1 = L̂x = [0, −½, 0, −½];
        // T2 = 2L̂T1 − x = 2·[½, 0, ½, 0] − [1, 0, 0, 0] = [0, 0, 1, 0];
        // T3 = 2L̂T2 − T1 = 2·[0, −½, 0, −½] − T1 = [0, −½, 0, −½].
        let d = cpu();
        let ring = Ring::new(&[4], &d);
        let x = tensor::<3>(vec![1.0, 0.0, 0.0, 0.0], [1, 4, 1], &d);
        let pick = |k: usize| {
            let mut w = vec![0.0; 4];
            w[k] = 1.0;
            ChebConv::new(tensor::<3>(w, [4, 1, 1], &d), None)
        };
        assert_close(&pick(0).forward(x.clone(), &ring), &[1.0, 0.0, 0.0, 0.0], 1e-7);
        assert_close(&pick(1).forward(x.clone(), &ring), &[0.0, -0.5, 0.0, -0.5], 1e-7);
        assert_close(&pick(2).forward(x.clone(), &ring), &[0.0, 0.0, 1.0, 0.0], 1e-7);
        assert_close(&pick(3).forward(x.clone(), &ring), &[0.0, -0.5, 0.0, -0.5], 1e-7);
        // All four with weights 1, 2, 3, 4 plus a bias of 1.
        let all =
            ChebConv::new(tensor::<3>(vec![1.0, 2.0, 3.0, 4.0], [4, 1, 1], &d), Some(tensor::<1>(vec![1.0], [1], &d)));
        let expect = [1.0 + 1.0, 2.0 * -0.5 + 4.0 * -0.5 + 1.0, 3.0 + 1.0, 2.0 * -0.5 + 4.0 * -0.5 + 1.0];
        assert_close(&all.forward(x, &ring), &expect, 1e-6);
    }

    #[test]
    fn rings_of_different_organs_do_not_mix() {
        let d = cpu();
        let ring = Ring::new(&[3, 3], &d);
        let x = tensor::<3>(vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [1, 6, 1], &d);
        let conv = ChebConv::new(tensor::<3>(vec![0.0, 1.0], [2, 1, 1], &d), None);
        assert_close(&conv.forward(x, &ring), &[-1.0, -1.0, -1.0, 0.0, 0.0, 0.0], 1e-7);
    }
}
