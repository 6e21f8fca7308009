//! Training HybridGNet with burn's autodiff (METHOD.md §5): MSE on the output and on both
//! skip-block position heads, a KL term with a warm-up, Adam with step decay, augmentation,
//! validation every epoch, and checkpoints that a run can resume from.

pub mod augment;
pub mod dataset;
pub mod schedule;

use anyhow::Context;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, decay::WeightDecayConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::masks::organ_masks;
use crate::metrics::overlap::dice;
use crate::model::decoder::Decoded;
use crate::model::encoder::Encoding;
use crate::model::graph::downsample_matrix;
use crate::model::lookup::FeatureMap;
use crate::model::{Decoder, Encoder, HybridGNet, ModelConfig};
use dataset::Prepared;

/// Everything a run needs besides the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    pub size: usize,
    pub skip_blocks: bool,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub lr_step: usize,
    pub lr_factor: f64,
    pub weight_decay: f64,
    pub kl_start: f64,
    pub kl_end: f64,
    pub kl_warmup: usize,
    pub seed: u64,
}

/// The mutable part a checkpoint restores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub options: TrainOptions,
    /// Epochs finished.
    pub epoch: usize,
    pub best_error_px: f64,
}

/// One epoch's numbers (also a row of the log CSV).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub loss: f64,
    pub mse: f64,
    pub kl: f64,
    pub beta: f64,
    pub lr: f64,
    pub val_error_px: f64,
    pub dice_lungs: f64,
    pub dice_heart: f64,
    pub mean_std_px: f64,
    pub seconds: f64,
}

impl EpochReport {
    pub const HEADER: &'static str = "epoch,loss,mse,kl,beta,lr,val_error_px,dice_lungs,dice_heart,mean_std_px,seconds";
    pub fn csv_row(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.4},{:.2e},{:.2e},{:.3},{:.4},{:.4},{:.3},{:.1}",
            self.epoch, self.loss, self.mse, self.kl, self.beta, self.lr, self.val_error_px, self.dice_lungs,
            self.dice_heart, self.mean_std_px, self.seconds
        )
    }
}

/// Encoder and decoder as one module, so one optimizer sees every parameter.
#[derive(Module, Debug)]
pub struct Net {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// Paths of a run's files, derived from `--out`.
pub struct RunFiles {
    pub best: PathBuf,
    pub last: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl RunFiles {
    pub fn new(out: &Path) -> Self {
        let with = |ext: &str| {
            let mut s = out.as_os_str().to_owned();
            s.push(ext);
            PathBuf::from(s)
        };
        RunFiles { best: out.to_path_buf(), last: with(".last.safetensors"), state: with(".state.json"), log: with(".log.csv") }
    }
}

/// A training run in progress.
pub struct Trainer {
    pub state: RunState,
    config: ModelConfig,
    net: Option<Net>,
    optim: ModuleOptimizer,
    device: Device,
    down: Vec<f32>,
}

impl Trainer {
    /// A fresh model (PyTorch-style random init) on `device` (autodiff is added here).
    pub fn new(options: TrainOptions, device: &Device) -> anyhow::Result<Self> {
        let config = ModelConfig { skip_blocks: options.skip_blocks, ..ModelConfig::released(options.size) };
        config.validate().map_err(anyhow::Error::msg)?;
        let device = device.clone().autodiff();
        let model = HybridGNet::random(&config, options.seed, &device);
        let state = RunState { options, epoch: 0, best_error_px: f64::INFINITY };
        Ok(Self::assemble(state, model, device))
    }

    /// Continue from the `.last` weights and state written by an earlier run with `out`.
    /// Adam's moment estimates are not stored; they restart, which costs a few steps.
    pub fn resume(out: &Path, device: &Device) -> anyhow::Result<Self> {
        let files = RunFiles::new(out);
        let state: RunState = serde_json::from_slice(
            &std::fs::read(&files.state).with_context(|| format!("{}: cannot read checkpoint state", files.state.display()))?,
        )
        .with_context(|| format!("{}: not a checkpoint state", files.state.display()))?;
        let device = device.clone().autodiff();
        let model = HybridGNet::load(&files.last, &device)?;
        if model.config().input_size != state.options.size {
            anyhow::bail!("{}: input size {} but the state says {}", files.last.display(), model.config().input_size, state.options.size);
        }
        Ok(Self::assemble(state, model, device))
    }

    fn assemble(state: RunState, model: HybridGNet, device: Device) -> Self {
        let o = &state.options;
        let optim = AdamConfig::new().with_weight_decay(Some(WeightDecayConfig::new(o.weight_decay as f32))).init();
        let (config, encoder, decoder) = model.into_parts();
        Trainer { state, config, net: Some(Net { encoder, decoder }), optim, device, down: downsample_matrix() }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The current weights as a plain (inference) model.
    pub fn model(&self) -> HybridGNet {
        let net = self.net.as_ref().expect("net present between steps").valid();
        let device = self.device.clone().inner();
        HybridGNet::from_parts(self.config, net.encoder, net.decoder, &device)
    }

    /// One pass over `train` in random batches; returns (loss, mse, kl) means.
    pub fn train_epoch(&mut self, train: &[Prepared], mut on_batch: impl FnMut(usize)) -> (f64, f64, f64) {
        let o = self.state.options.clone();
        let epoch = self.state.epoch;
        let lr = schedule::learning_rate(o.lr, o.lr_factor, o.lr_step, epoch);
        let beta = schedule::kl_weight(o.kl_start, o.kl_end, o.kl_warmup, epoch);
        // Seeded per epoch, so a resumed run draws what an uninterrupted one would.
        let mut rng = StdRng::seed_from_u64(o.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let (mut sum, mut sum_mse, mut sum_kl, mut n) = (0.0, 0.0, 0.0, 0);
        // A batch of one would make BatchNorm's batch statistics degenerate at the last layers.
        for chunk in order.chunks(o.batch.max(2)) {
            if chunk.len() < 2 {
                continue;
            }
            let (loss, mse, kl) = self.step(train, chunk, beta, lr, &mut rng);
            sum += loss;
            sum_mse += mse;
            sum_kl += kl;
            n += 1;
            on_batch(chunk.len());
        }
        self.state.epoch += 1;
        let n = n.max(1) as f64;
        (sum / n, sum_mse / n, sum_kl / n)
    }

    fn step(&mut self, data: &[Prepared], idx: &[usize], beta: f64, lr: f64, rng: &mut StdRng) -> (f64, f64, f64) {
        let s = self.config.input_size;
        let b = idx.len();
        let mut pixels = Vec::with_capacity(b * s * s);
        let mut target: Vec<f32> = Vec::with_capacity(b * NUM_NODES * 2);
        let mut coarse: Vec<f32> = Vec::new();
        for &i in idx {
            let (px, t) = augment::augment(&data[i].pixels, s, &data[i].target, rng);
            pixels.extend_from_slice(&px);
            target.extend(t.iter().flatten());
            coarse.extend(downsample(&self.down, &t).into_iter().flatten());
        }
        let d = &self.device;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [b, 1, s, s]), d);
        let target = Tensor::<3>::from_data(TensorData::new(target, [b, NUM_NODES, 2]), d);
        let coarse_n = coarse.len() / (2 * b);
        let coarse = Tensor::<3>::from_data(TensorData::new(coarse, [b, coarse_n, 2]), d);

        let net = self.net.take().expect("net present between steps");
        let enc = net.encoder.forward(x);
        let latents = self.config.latents;
        let eps: Vec<f32> = (0..b * latents).map(|_| StandardNormal.sample(rng)).collect();
        let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, latents]), d);
        let z = enc.mu.clone() + eps * enc.logvar.clone().mul_scalar(0.5).exp();
        let graphs = crate::model::graph::Graphs::new(d);
        let decoded = net.decoder.forward(z, &FeatureMap::new(enc.conv5.clone()), &FeatureMap::new(enc.conv6.clone()), &graphs);
        let (mse, kl) = loss_terms(&decoded, &enc, target, coarse);
        let loss = mse.clone() + kl.clone().mul_scalar(beta);
        let values = [host(&loss), host(&mse), host(&kl)];
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.net = Some(self.optim.step(lr, net, grads));
        (values[0], values[1], values[2])
    }

    /// Validation with z = μ, as the plain prediction: errors in original-image pixels and
    /// Dice of filled contours. `mean_std_px` is the N=10 sampled spread, to watch σ.
    pub fn validate(&self, val: &[Prepared]) -> (f64, f64, f64, f64) {
        let model = self.model();
        let (mut err, mut dl, mut dh, mut sd) = (0.0, 0.0, 0.0, 0.0);
        for p in val {
            let pred = predict_prepared(&model, p, 10);
            let e: f64 = pred
                .mean
                .iter()
                .zip(&p.landmarks)
                .map(|(a, b)| ((a[0] - b[0]) as f64).hypot((a[1] - b[1]) as f64))
                .sum::<f64>()
                / NUM_NODES as f64;
            err += e;
            let (w, h) = (p.letterbox.width, p.letterbox.height);
            let (mp, mg) = (organ_masks(&pred.z_mu, w, h), organ_masks(&p.landmarks, w, h));
            dl += dice(&mp.lungs(), &mg.lungs());
            dh += dice(mp.get(Organ::Heart), mg.get(Organ::Heart));
            sd += pred.mean_std;
        }
        let n = val.len().max(1) as f64;
        (err / n, dl / n, dh / n, sd / n)
    }
}

/// A validation prediction: the z = μ landmarks (scored) and the sampled spread.
pub struct ValPrediction {
    pub z_mu: [Point; NUM_NODES],
    pub mean: [Point; NUM_NODES],
    pub mean_std: f64,
}

/// Predict on an already pre-processed sample (skips re-reading and resizing the image).
pub fn predict_prepared(model: &HybridGNet, p: &Prepared, samples: usize) -> ValPrediction {
    let enc = model.encode_pixels(&p.pixels);
    let mu = host_vec(&enc.mu);
    let logvar = host_vec(&enc.logvar);
    let dev = model.device();
    let decode = |z: Vec<f32>, n: usize| {
        host_vec(&model.decode(Tensor::from_data(TensorData::new(z, [n, mu.len()]), dev), &enc).output)
    };
    let at_mu = decode(mu.clone(), 1);
    let z_mu: [Point; NUM_NODES] = std::array::from_fn(|i| p.letterbox.to_image([at_mu[2 * i], at_mu[2 * i + 1]]));
    let z = crate::model::uncertainty::draw_latents(&mu, &logvar, samples, 0);
    let summary = crate::model::uncertainty::summarise(&decode(z, samples), samples, &logvar, p.letterbox, Some(0));
    ValPrediction { z_mu, mean: z_mu, mean_std: summary.score as f64 }
}

/// MSE(output, target) + MSE(pos2, target) + MSE(pos1, D·target), and the KL term
/// −½·mean(1 + log σ² − μ² − σ²).
pub fn loss_terms(d: &Decoded, enc: &Encoding, target: Tensor<3>, coarse: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let mse = |a: Tensor<3>, b: Tensor<3>| (a - b).powi_scalar(2).mean();
    let mut total = mse(d.output.clone(), target.clone());
    if let Some(p2) = &d.pos2 {
        total = total + mse(p2.clone(), target);
    }
    if let Some(p1) = &d.pos1 {
        total = total + mse(p1.clone(), coarse);
    }
    let kl = (enc.logvar.clone().add_scalar(1.0) - enc.mu.clone().powi_scalar(2) - enc.logvar.clone().exp())
        .mean()
        .mul_scalar(-0.5);
    (total, kl)
}

/// D·target for one sample: coarse node j from the fine nodes of the matrix's row j.
pub fn downsample(d: &[f32], target: &[[f32; 2]; NUM_NODES]) -> Vec<[f32; 2]> {
    d.chunks_exact(NUM_NODES)
        .map(|row| {
            let mut acc = [0.0f32; 2];
            for (w, q) in row.iter().zip(target) {
                acc[0] += w * q[0];
                acc[1] += w * q[1];
            }
            acc
        })
        .collect()
}

fn host(t: &Tensor<1>) -> f64 {
    host_vec(t)[0] as f64
}

fn host_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().expect("f32 data")
}

/// Run `options.epochs` epochs (counting those already done), validating and writing
/// checkpoints after each. `report` sees every epoch's numbers.
pub fn run(
    trainer: &mut Trainer,
    train: &[Prepared],
    val: &[Prepared],
    out: &Path,
    mut on_batch: impl FnMut(usize),
    mut report: impl FnMut(&EpochReport),
) -> anyhow::Result<()> {
    let files = RunFiles::new(out);
    if trainer.state.epoch == 0 {
        crate::formats::write_atomically(&files.log, format!("{}\n", EpochReport::HEADER).as_bytes())?;
    }
    while trainer.state.epoch < trainer.state.options.epochs {
        let start = Instant::now();
        let o = trainer.state.options.clone();
        let epoch = trainer.state.epoch;
        let (loss, mse, kl) = trainer.train_epoch(train, &mut on_batch);
        let (err, dl, dh, sd) = trainer.validate(val);
        let r = EpochReport {
            epoch: epoch + 1,
            loss,
            mse,
            kl,
            beta: schedule::kl_weight(o.kl_start, o.kl_end, o.kl_warmup, epoch),
            lr: schedule::learning_rate(o.lr, o.lr_factor, o.lr_step, epoch),
            val_error_px: err,
            dice_lungs: dl,
            dice_heart: dh,
            mean_std_px: sd,
            seconds: start.elapsed().as_secs_f64(),
        };
        let model = trainer.model();
        if err < trainer.state.best_error_px {
            trainer.state.best_error_px = err;
            model.save(&files.best)?;
        }
        model.save(&files.last)?;
        crate::formats::write_atomically(&files.state, &serde_json::to_vec_pretty(&trainer.state)?)?;
        let mut log = std::fs::read(&files.log).unwrap_or_default();
        log.extend_from_slice(format!("{}\n", r.csv_row()).as_bytes());
        crate::formats::write_atomically(&files.log, &log)?;
        report(&r);
    }
    Ok(())
}
