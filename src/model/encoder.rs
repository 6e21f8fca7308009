//! The image encoder (METHOD.md §3): six residual blocks with 2×2 max-pooling between them,
//! then μ and log σ² from the flattened last block.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

use super::norm::BatchNorm;

/// A stride-1 convolution with "same" padding for odd kernels.
#[derive(Module, Debug)]
pub struct Conv {
    /// (out, in, k, k), PyTorch's layout.
    pub weight: Param<Tensor<4>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Conv {
    pub fn new(weight: Tensor<4>, bias: Option<Tensor<1>>) -> Self {
        Conv { weight: Param::from_tensor(weight), bias: bias.map(Param::from_tensor) }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let k = self.weight.dims()[2];
        let pad = k / 2;
        conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([1, 1], [pad, pad], [1, 1], 1),
        )
    }
}

/// y = x·Wᵀ + b with W stored (out, in) as PyTorch does.
#[derive(Module, Debug)]
pub struct Linear {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

impl Linear {
    pub fn new(weight: Tensor<2>, bias: Tensor<1>) -> Self {
        Linear { weight: Param::from_tensor(weight), bias: Param::from_tensor(bias) }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let out = self.weight.dims()[0];
        x.matmul(self.weight.val().transpose()) + self.bias.val().reshape([1, out])
    }
}

/// The 1×1 convolution and BatchNorm that match channels when a block changes width.
#[derive(Module, Debug)]
pub struct Shortcut {
    pub conv: Conv,
    pub norm: BatchNorm,
}

/// `ReLU(body(x) + shortcut(x))`, body = BN → ReLU → conv3×3 → BN → ReLU → conv3×3.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub norm1: BatchNorm,
    pub conv1: Conv,
    pub norm2: BatchNorm,
    pub conv2: Conv,
    pub shortcut: Option<Shortcut>,
}

impl ResidualBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let body = self.conv1.forward(self.norm1.forward(x.clone()).clamp_min(0.0));
        let body = self.conv2.forward(self.norm2.forward(body).clamp_min(0.0));
        let skip = match &self.shortcut {
            Some(s) => s.norm.forward(s.conv.forward(x)),
            None => x,
        };
        (body + skip).clamp_min(0.0)
    }
}

/// What the decoder needs from one encoded image.
#[derive(Debug, Clone)]
pub struct Encoding {
    /// (1, latents).
    pub mu: Tensor<2>,
    /// (1, latents): log σ².
    pub logvar: Tensor<2>,
    /// The outputs of the blocks the two skip blocks look up (`ModelConfig::skip_maps`):
    /// (1, C, h, h) each; conv6 then conv5 in the released model.
    pub skip_maps: [Tensor<4>; 2],
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub blocks: Vec<ResidualBlock>,
    pub fc_mu: Linear,
    pub fc_logvar: Linear,
}

impl Encoder {
    /// `image`: (1, 1, S, S); `skip_maps`: which blocks' (1–6) outputs to keep for the skip
    /// blocks. The BatchNorms use batch statistics, so pass one image: a batch of several would
    /// make each image's encoding depend on the others.
    pub fn forward(&self, image: Tensor<4>, skip_maps: [usize; 2]) -> Encoding {
        let mut x = image;
        let mut kept: [Option<Tensor<4>>; 2] = [None, None];
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                x = max_pool2d(x, MaxPoolOptions::new([2, 2]));
            }
            x = block.forward(x);
            for (slot, &b) in kept.iter_mut().zip(&skip_maps) {
                if b == i + 1 {
                    *slot = Some(x.clone());
                }
            }
        }
        let [b, c, h, w] = x.dims();
        // flatten in (C, H, W) order, as torch.flatten(1) on NCHW.
        let flat = x.reshape([b, c * h * w]);
        let [m1, m2] = kept.map(|m| m.expect("skip maps name blocks 1–6 (ModelConfig::validate)"));
        Encoding { mu: self.fc_mu.forward(flat.clone()), logvar: self.fc_logvar.forward(flat), skip_maps: [m1, m2] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{assert_close, cpu, tensor};

    #[test]
    fn linear_uses_pytorch_weight_layout() {
        let d = cpu();
        // W (2 out, 3 in) = [[1,0,2],[0,1,-1]], b = [0.5, 0].
        let lin = Linear::new(
            tensor::<2>(vec![1.0, 0.0, 2.0, 0.0, 1.0, -1.0], [2, 3], &d),
            tensor::<1>(vec![0.5, 0.0], [2], &d),
        );
        assert_close(&lin.forward(tensor::<2>(vec![1.0, 2.0, 3.0], [1, 3], &d)), &[7.5, -1.0], 1e-6);
    }

    #[test]
    fn conv_pads_to_keep_the_size() {
        let d = cpu();
        // 3×3 kernel of ones on a 3×3 image of ones: corner sums 4, edges 6, centre 9.
        let conv = Conv::new(tensor::<4>(vec![1.0; 9], [1, 1, 3, 3], &d), Some(tensor::<1>(vec![1.0], [1], &d)));
        let y = conv.forward(tensor::<4>(vec![1.0; 9], [1, 1, 3, 3], &d));
        assert_close(&y, &[5.0, 7.0, 5.0, 7.0, 10.0, 7.0, 5.0, 7.0, 5.0], 1e-6);
    }
}
