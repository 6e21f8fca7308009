//! The graph decoder (METHOD.md §3): latent → 60 coarse nodes → 120 landmarks, with the two
//! image-to-graph skip blocks that look features up in two encoder maps (conv6 and conv5 as
//! released; see `ModelConfig::skip_maps`).

use burn::module::Module;
use burn::tensor::Tensor;

use super::chebconv::ChebConv;
use super::config::DECODER_FEATURES;
use super::encoder::Linear;
use super::graph::{Graphs, NUM_COARSE_NODES, Ring};
use super::lookup::FeatureMap;
use super::norm::instance_norm_nodes;

/// Predicts node positions from graph features, then appends the image features found there.
#[derive(Module, Debug)]
pub struct SkipBlock {
    /// K = 1 and no bias: a per-node linear map to (x, y).
    pub graph_conv_pre: ChebConv,
}

#[derive(Module, Debug)]
pub struct Decoder {
    pub dec_lin: Linear,
    pub up6: ChebConv,
    pub up5: ChebConv,
    pub sc1: Option<SkipBlock>,
    pub up4: ChebConv,
    pub up3: ChebConv,
    pub sc2: Option<SkipBlock>,
    pub up2: ChebConv,
    pub up1: ChebConv,
}

/// Decoder outputs for a batch of latents, coordinates in [0, 1] of the model input.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// (batch, 120, 2).
    pub output: Tensor<3>,
    /// Skip block 1's coarse positions (batch, 60, 2), when the model has skip blocks.
    pub pos1: Option<Tensor<3>>,
    /// Skip block 2's positions (batch, 120, 2).
    pub pos2: Option<Tensor<3>>,
}

fn norm_relu(x: Tensor<3>) -> Tensor<3> {
    instance_norm_nodes(x).clamp_min(0.0)
}

impl Decoder {
    /// Decodes every row of `z` (batch, latents). `maps` (skip block 1's, then 2's: conv6 and
    /// conv5 as released) hold one image shared by the whole batch (the latent samples of one
    /// X-ray) or one image per row.
    pub fn forward(&self, z: Tensor<2>, maps: [&FeatureMap; 2], graphs: &Graphs) -> Decoded {
        let x = self.coarse(z, graphs);
        let (x, pos1) = self.skip1(x, maps[0], graphs);
        let x = self.refine(x, graphs);
        let (x, pos2) = self.skip2(x, maps[1], graphs);
        Decoded { output: self.head(x, graphs), pos1, pos2 }
    }

    /// Steps 1–2: latent → coarse-graph features (batch, 60, 16).
    pub fn coarse(&self, z: Tensor<2>, graphs: &Graphs) -> Tensor<3> {
        let batch = z.dims()[0];
        let x = self.dec_lin.forward(z).clamp_min(0.0).reshape([batch, NUM_COARSE_NODES, DECODER_FEATURES]);
        let x = norm_relu(self.up6.forward(x, &graphs.coarse));
        norm_relu(self.up5.forward(x, &graphs.coarse))
    }

    /// Step 3: skip block 1 on its map (conv6 as released), or nothing in the variant without
    /// skip blocks.
    pub fn skip1(&self, x: Tensor<3>, map: &FeatureMap, graphs: &Graphs) -> (Tensor<3>, Option<Tensor<3>>) {
        match &self.sc1 {
            Some(sc) => {
                let (x, pos) = sc.forward(x, map, &graphs.coarse);
                (x, Some(pos))
            }
            None => (x, None),
        }
    }

    /// Steps 4–5: coarse → fine-graph features (batch, 120, 32).
    pub fn refine(&self, x: Tensor<3>, graphs: &Graphs) -> Tensor<3> {
        let x = norm_relu(self.up4.forward(x, &graphs.coarse));
        norm_relu(self.up3.forward(graphs.upsample(x), &graphs.fine))
    }

    /// Step 6: skip block 2 on its map (conv5 as released), or nothing.
    pub fn skip2(&self, x: Tensor<3>, map: &FeatureMap, graphs: &Graphs) -> (Tensor<3>, Option<Tensor<3>>) {
        match &self.sc2 {
            Some(sc) => {
                let (x, pos) = sc.forward(x, map, &graphs.fine);
                (x, Some(pos))
            }
            None => (x, None),
        }
    }

    /// Steps 7–8: fine features → landmarks (batch, 120, 2), no activation.
    pub fn head(&self, x: Tensor<3>, graphs: &Graphs) -> Tensor<3> {
        let x = norm_relu(self.up2.forward(x, &graphs.fine));
        self.up1.forward(x, &graphs.fine)
    }
}

impl SkipBlock {
    /// Returns (concat(x, features at pos, pos), pos).
    pub fn forward(&self, x: Tensor<3>, features: &FeatureMap, ring: &Ring) -> (Tensor<3>, Tensor<3>) {
        let pos = self.graph_conv_pre.forward(x.clone(), ring);
        let looked = features.lookup(pos.clone());
        (Tensor::cat(vec![x, looked, pos.clone()], 2), pos)
    }
}
