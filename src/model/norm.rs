//! The two normalisations of METHOD.md §3, neither of which keeps running statistics.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::batch_norm_train;

pub const EPS: f64 = 1e-5;

/// BatchNorm2d built with `track_running_stats=False`: it normalises with the statistics of
/// the batch it is given (biased variance), at inference too, then applies weight and bias.
/// So an image's features depend on the other images of its batch: encode one at a time.
#[derive(Module, Debug)]
pub struct BatchNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
}

impl BatchNorm {
    pub fn new(weight: Tensor<1>, bias: Tensor<1>) -> Self {
        BatchNorm { weight: Param::from_tensor(weight), bias: Param::from_tensor(bias) }
    }

    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// x: (batch, channels, h, w).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm_train(x, self.weight.val(), self.bias.val(), EPS).output
    }
}

/// PyTorch `InstanceNorm1d` without affine on (batch, nodes, features): every node of every
/// sample is normalised across its own features (mean 0, biased variance).
pub fn instance_norm_nodes(x: Tensor<3>) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean) / var.add_scalar(EPS).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{assert_close, cpu, tensor};

    #[test]
    fn batch_norm_uses_batch_statistics_per_channel() {
        let d = cpu();
        // Two channels of 2×2. Channel 0: 1, 2, 3, 4 → mean 2.5, biased var 1.25.
        // Channel 1: constant 7 → var 0, so every value becomes its bias.
        let x = tensor::<4>(vec![1.0, 2.0, 3.0, 4.0, 7.0, 7.0, 7.0, 7.0], [1, 2, 2, 2], &d);
        let bn = BatchNorm::new(tensor::<1>(vec![2.0, 3.0], [2], &d), tensor::<1>(vec![0.5, -1.0], [2], &d));
        let s = (1.25f32 + 1e-5).sqrt();
        let c0 = [-1.5f32, -0.5, 0.5, 1.5].map(|v| 2.0 * v / s + 0.5);
        let expect = [c0[0], c0[1], c0[2], c0[3], -1.0, -1.0, -1.0, -1.0];
        assert_close(&bn.forward(x), &expect, 1e-5);
    }

    #[test]
    fn batch_norm_pools_statistics_over_the_batch() {
        let d = cpu();
        // One channel, two images of one pixel: 0 and 2 → mean 1, var 1.
        let x = tensor::<4>(vec![0.0, 2.0], [2, 1, 1, 1], &d);
        let bn = BatchNorm::new(tensor::<1>(vec![1.0], [1], &d), tensor::<1>(vec![0.0], [1], &d));
        let v = 1.0 / (1.0f32 + 1e-5).sqrt();
        assert_close(&bn.forward(x), &[-v, v], 1e-6);
    }

    #[test]
    fn instance_norm_normalises_each_node_across_its_features() {
        let d = cpu();
        // Node 0: 1, 3 → mean 2, var 1. Node 1: 5, 5, → var 0 → zeros.
        let x = tensor::<3>(vec![1.0, 3.0, 5.0, 5.0], [1, 2, 2], &d);
        let v = 1.0 / (1.0f32 + 1e-5).sqrt();
        assert_close(&instance_norm_nodes(x), &[-v, v, 0.0, 0.0], 1e-6);
    }
}
