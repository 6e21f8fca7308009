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

/// How the encoder's convolutions are computed; the results agree to rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPath {
    /// burn's `conv2d` as it is (inference).
    Direct,
    /// Shaped so that burn's backward pass takes its fast kernels on flex (training).
    Training,
}

/// flex computes a convolution's weight gradient as a convolution whose input channels are
/// the batch and whose kernel is the whole H×W output gradient. With at most this many input
/// channels (a batch of 4, the recipe's) and at most 16 output channels (encoder blocks 1–2),
/// its small-channel kernel, written for small kernels, takes that image-sized one: half of
/// a training step's time at S = 256 went there (`bench --train` under perf).
const FLEX_SMALL_CHANNELS: usize = 4;
const FLEX_SMALL_OUT_CHANNELS: usize = 16;

impl Conv {
    fn forward_by(&self, x: Tensor<4>, path: ConvPath) -> Tensor<4> {
        let [co, _, k, _] = self.weight.dims();
        let b = x.dims()[0];
        match path {
            ConvPath::Direct => self.forward(x),
            ConvPath::Training if k == 1 => self.forward_pointwise(x),
            ConvPath::Training if b <= FLEX_SMALL_CHANNELS && co <= FLEX_SMALL_OUT_CHANNELS => {
                // A zero image makes the batch one larger than the small-channel limit: it adds
                // nothing to the weight gradient (its input is 0) and is cut off the output.
                let [_, c, h, w] = x.dims();
                let pad = Tensor::zeros([FLEX_SMALL_CHANNELS + 1 - b, c, h, w], &x.device());
                self.forward(Tensor::cat(vec![x, pad], 0)).narrow(0, 0, b)
            }
            ConvPath::Training => self.forward(x),
        }
    }

    /// A 1×1 convolution as one matrix product over the batch's pixels, whose gradients are
    /// matrix products too (through `conv2d`, the weight gradient is a convolution with an
    /// H×W kernel).
    pub fn forward_pointwise(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let [co, ci, k, _] = self.weight.dims();
        debug_assert!(k == 1 && c == ci, "a 1×1 convolution of the input's channels");
        let cols = x.swap_dims(0, 1).reshape([c, b * h * w]);
        let mut y = self.weight.val().reshape([co, ci]).matmul(cols);
        if let Some(bias) = &self.bias {
            y = y + bias.val().reshape([co, 1]);
        }
        y.reshape([co, b, h, w]).swap_dims(0, 1)
    }
}

impl ResidualBlock {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_by(x, ConvPath::Direct)
    }

    pub fn forward_by(&self, x: Tensor<4>, path: ConvPath) -> Tensor<4> {
        let body = self.conv1.forward_by(self.norm1.forward(x.clone()).clamp_min(0.0), path);
        let body = self.conv2.forward_by(self.norm2.forward(body).clamp_min(0.0), path);
        let skip = match &self.shortcut {
            Some(s) => s.norm.forward(s.conv.forward_by(x, path)),
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
        self.forward_by(image, skip_maps, ConvPath::Direct)
    }

    /// [`Self::forward`] with the convolutions computed by `path`.
    pub fn forward_by(&self, image: Tensor<4>, skip_maps: [usize; 2], path: ConvPath) -> Encoding {
        let mut x = image;
        let mut kept: [Option<Tensor<4>>; 2] = [None, None];
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                x = max_pool2d(x, MaxPoolOptions::new([2, 2]));
            }
            x = block.forward_by(x, path);
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
    use crate::model::testing::{assert_close, cpu, tensor, values};

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

    /// Deterministic values in [-1, 1) without a random number generator.
    fn ramp(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2654435761).wrapping_add(seed * 97) % 2000) as f32 / 1000.0) - 1.0).collect()
    }

    fn max_diff<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f32 {
        values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn training_convolutions_match_conv2d_and_its_gradients() {
        let d = cpu().autodiff();
        // (batch, out channels, kernel): the padded batch, the pointwise product, and a
        // batch or width that conv2d takes as it is.
        for (b, co, k, bias) in [(3, 7, 3, true), (4, 16, 3, false), (2, 7, 1, true), (6, 7, 3, true), (3, 20, 3, true)] {
            let (ci, h, w) = (5, 6, 9);
            let conv = Conv::new(
                tensor::<4>(ramp(co * ci * k * k, 1), [co, ci, k, k], &d).require_grad(),
                bias.then(|| tensor::<1>(ramp(co, 2), [co], &d).require_grad()),
            );
            let x = tensor::<4>(ramp(b * ci * h * w, 3), [b, ci, h, w], &d).require_grad();
            let probe = tensor::<4>(ramp(b * co * h * w, 4), [b, co, h, w], &d);
            let direct = conv.forward(x.clone());
            let training = conv.forward_by(x.clone(), ConvPath::Training);
            assert_eq!(direct.dims(), training.dims());
            assert!(max_diff(&direct, &training) < 1e-4, "{b}×{co}×{k}: outputs differ");
            // The same scalar through each path: every gradient must agree.
            let gd = (direct * probe.clone()).sum().backward();
            let gt = (training * probe).sum().backward();
            let wd = conv.weight.val().grad(&gd).unwrap();
            let wt = conv.weight.val().grad(&gt).unwrap();
            assert!(max_diff(&wd, &wt) < 1e-3, "{b}×{co}×{k}: weight gradients differ");
            assert!(values(&wd).iter().any(|v| v.abs() > 0.1), "weight gradient is not trivial");
            assert!(max_diff(&x.grad(&gd).unwrap(), &x.grad(&gt).unwrap()) < 1e-3, "{b}×{co}×{k}: input gradients differ");
            if let Some(bias) = &conv.bias {
                assert!(max_diff(&bias.val().grad(&gd).unwrap(), &bias.val().grad(&gt).unwrap()) < 1e-3);
            }
        }
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
