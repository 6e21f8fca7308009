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
/// Encoder blocks (1–6) whose outputs skip blocks 1 and 2 look features up in, as released:
/// conv6 then conv5.
pub const RELEASED_SKIP_MAPS: [usize; 2] = [6, 5];

fn released_skip_maps() -> [usize; 2] {
    RELEASED_SKIP_MAPS
}

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
    /// Encoder blocks the two skip blocks look up: [`RELEASED_SKIP_MAPS`] in the released
    /// model. Small inputs may look up earlier blocks, whose finer maps keep the 3-pixel lookup
    /// box a useful size (a box covers 3/(S/16) of the image on conv5: a quarter at S = 192);
    /// the shipped model uses 4,3.
    #[serde(default = "released_skip_maps")]
    pub skip_maps: [usize; 2],
}

impl ModelConfig {
    /// The released architecture at input side `input_size`.
    pub fn released(input_size: usize) -> Self {
        ModelConfig {
            input_size,
            channels: RELEASED_CHANNELS,
            latents: RELEASED_LATENTS,
            skip_blocks: true,
            skip_maps: RELEASED_SKIP_MAPS,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.input_size == 0 || !self.input_size.is_multiple_of(32) {
            return Err(format!("input size {} is not a positive multiple of 32", self.input_size));
        }
        // The released model takes 1024; anything far beyond would only exhaust memory.
        if self.input_size > 2048 {
            return Err(format!("input size {} is larger than 2048", self.input_size));
        }
        if self.channels.contains(&0) || self.latents == 0 {
            return Err("channel and latent counts must be positive".into());
        }
        if self.skip_maps.iter().any(|&b| !(1..=6).contains(&b)) {
            return Err(format!("skip maps {:?} are not encoder blocks 1–6", self.skip_maps));
        }
        Ok(())
    }

    /// Channels each skip block appends: the looked-up features and the 2 position columns
    /// (0 without skip blocks).
    pub fn skip_widths(&self) -> [usize; 2] {
        if !self.skip_blocks {
            return [0, 0];
        }
        self.skip_maps.map(|b| self.channels[b - 1] + 2)
    }

    /// For logs and the status bar: "input 192 · skip maps 4,3".
    pub fn describe(&self) -> String {
        if self.skip_blocks {
            format!("input {} · skip maps {}", self.input_size, self.skip_maps_tag())
        } else {
            format!("input {} · no skip blocks", self.input_size)
        }
    }

    /// `skip_maps` as written in a weights file's metadata: "6,5".
    pub fn skip_maps_tag(&self) -> String {
        format!("{},{}", self.skip_maps[0], self.skip_maps[1])
    }

    /// Reads [`Self::skip_maps_tag`]'s form.
    pub fn parse_skip_maps(tag: &str) -> Result<[usize; 2], String> {
        let parts: Vec<_> = tag.split(',').map(|p| p.trim().parse::<usize>()).collect();
        match parts.as_slice() {
            [Ok(a), Ok(b)] if (1..=6).contains(a) && (1..=6).contains(b) => Ok([*a, *b]),
            _ => Err(format!("skip maps \"{tag}\" are not two encoder blocks 1–6 such as \"6,5\"")),
        }
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
