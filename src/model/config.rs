//! The shape of a HybridGNet (METHOD.md §3): what the weights file must agree with.

use serde::{Deserialize, Serialize};

/// Encoder widths of the released model: blocks 1–6.
pub const RELEASED_CHANNELS: [usize; 6] = [8, 16, 32, 64, 128, 128];
/// Input side of the released model.
pub const RELEASED_INPUT_SIZE: usize = 1024;
/// Latent dimensions of the released model.
pub const RELEASED_LATENTS: usize = 64;
/// Features per coarse node after `dec_lin`.
pub const DECODER_FEATURES: usize = 16;
/// Width of the decoder's later graph convolutions.
pub const DECODER_HIDDEN: usize = 32;
/// Chebyshev order of the decoder's graph convolutions.
pub const CHEB_K: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Side S of the square model input; a multiple of 32 (five 2×2 poolings).
    pub input_size: usize,
    /// Output channels of the six encoder blocks. Only tests use widths other than
    /// [`RELEASED_CHANNELS`], to keep their fixtures small.
    pub channels: [usize; 6],
    pub latents: usize,
    /// With the two image-to-graph skip blocks (the released model) or without.
    pub skip_blocks: bool,
}

impl ModelConfig {
    /// The released architecture at input side `input_size`.
    pub fn released(input_size: usize) -> Self {
        ModelConfig { input_size, channels: RELEASED_CHANNELS, latents: RELEASED_LATENTS, skip_blocks: true }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.input_size == 0 || !self.input_size.is_multiple_of(32) {
            return Err(format!("input size {} is not a positive multiple of 32", self.input_size));
        }
        if self.channels.contains(&0) || self.latents == 0 {
            return Err("channel and latent counts must be positive".into());
        }
        Ok(())
    }

    /// Side of conv5 (S/16) and conv6 (S/32).
    pub fn conv5_side(&self) -> usize {
        self.input_size / 16
    }
    pub fn conv6_side(&self) -> usize {
        self.input_size / 32
    }

    /// Inputs of fc_mu / fc_logvar: flatten(conv6).
    pub fn flat_features(&self) -> usize {
        self.channels[5] * self.conv6_side() * self.conv6_side()
    }
}
