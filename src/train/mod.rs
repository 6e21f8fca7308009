//! Training HybridGNet with burn's autodiff (METHOD.md §5): MSE on the output and on both
//! skip-block position heads, a KL term with a linear warm-up, Adam with step decay,
//! augmentation, validation every epoch, and checkpoints a run resumes from exactly.
//!
//! Autodiff in burn 0.22 is a property of the device: the trainer builds its model on
//! `device.autodiff()`, differentiates the loss with `backward()`, and hands
//! `GradientsParams` to a `ModuleOptimizer` (Adam). Validation runs on `Module::valid()`,
//! the same weights on the plain device, one image per batch as at inference.

pub mod augment;
pub mod checkpoint;
pub mod dataset;
pub mod loss;
pub mod schedule;

use anyhow::Context;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, decay::WeightDecayConfig};
use burn::store::ModuleRecord;
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
use crate::model::graph::{Graphs, downsample_matrix};
use crate::model::lookup::FeatureMap;
use crate::model::encoder::ConvPath;
use crate::model::config::RELEASED_SKIP_MAPS;
use crate::model::{Decoder, Encoder, HybridGNet, ModelConfig, StateDict, weights};
use augment::AugmentConfig;
pub use checkpoint::RunFiles;
use dataset::Prepared;
pub use loss::LossValues;

/// Everything a run needs besides the data. `Default` is the paper's recipe at S = 256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub size: usize,
    pub skip_blocks: bool,
    /// Total epochs of the run (a resumed run may raise it).
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// The learning rate is multiplied by `lr_factor` every `lr_step` epochs.
    pub lr_step: usize,
    pub lr_factor: f64,
    pub weight_decay: f64,
    pub kl_start: f64,
    pub kl_end: f64,
    /// Epochs over which β grows linearly from `kl_start` to `kl_end`.
    pub kl_warmup: usize,
    pub seed: u64,
    /// (Defaults fill in states written before these fields existed.)
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Latent samples per validation image for the spread in the log (watches σ collapse).
    #[serde(default = "default_val_samples")]
    pub val_samples: usize,
    /// Encoder blocks the skip blocks look up (`ModelConfig::skip_maps`).
    #[serde(default = "default_skip_maps")]
    pub skip_maps: [usize; 2],
}

fn default_skip_maps() -> [usize; 2] {
    RELEASED_SKIP_MAPS
}

fn default_val_samples() -> usize {
    10
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            size: 256,
            skip_blocks: true,
            epochs: 1000,
            batch: 4,
            lr: 1e-4,
            lr_step: 50,
            lr_factor: 0.9,
            weight_decay: 1e-5,
            kl_start: 1e-5,
            kl_end: 1e-2,
            kl_warmup: 200,
            seed: 0,
            augment: AugmentConfig::default(),
            val_samples: default_val_samples(),
            skip_maps: RELEASED_SKIP_MAPS,
        }
    }
}

/// Where a run's data came from, kept in the checkpoint so `--resume` needs no data flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The data folders, merged (checkpoints of one-folder runs wrote a single `dir`).
    #[serde(alias = "dir", deserialize_with = "one_or_many")]
    pub dirs: Vec<PathBuf>,
    pub train_split: String,
    pub val_split: String,
    pub limit: Option<usize>,
    /// Rows held out for testing (`--hold-out-test`) are left out of the train split.
    #[serde(default)]
    pub hold_out_test: bool,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// What a checkpoint restores besides weights and optimizer moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub options: TrainOptions,
    pub config: ModelConfig,
    /// Epochs finished.
    pub epoch: usize,
    pub best_error_px: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Checkpoint files of `epoch` (see [`checkpoint`]).
    pub model_file: Option<String>,
    pub optimizer_file: Option<String>,
    /// The best-model path (`--out`).
    pub out: Option<PathBuf>,
    pub data: Option<DataSpec>,
    /// Weights the run started from, when not random.
    pub init: Option<PathBuf>,
}

/// Validation numbers: landmark error in original-image pixels and Dice of the filled
/// contours, predicted with z = μ; `mean_std_px` is the spread of `val_samples` latent draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ValReport {
    pub error_px: f64,
    pub dice_lungs: f64,
    pub dice_heart: f64,
    pub mean_std_px: f64,
}

/// One epoch's numbers (also a row of the log CSV).
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Means over the epoch's batches.
    pub loss: LossValues,
    pub beta: f64,
    pub lr: f64,
    pub val: ValReport,
    pub train_seconds: f64,
    pub seconds: f64,
    /// This epoch's model became the best one.
    pub best: bool,
}

impl EpochReport {
    pub const HEADER: &'static str = "epoch,loss,mse_output,mse_pos2,mse_pos1,kl,beta,lr,val_error_px,dice_lungs,dice_heart,val_std_px,train_seconds,seconds";

    pub fn csv_row(&self) -> String {
        let (l, v) = (&self.loss, &self.val);
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.4},{:.3e},{:.3e},{:.3},{:.4},{:.4},{:.3},{:.1},{:.1}",
            self.epoch,
            l.total,
            l.output,
            l.pos2,
            l.pos1,
            l.kl,
            self.beta,
            self.lr,
            v.error_px,
            v.dice_lungs,
            v.dice_heart,
            v.mean_std_px,
            self.train_seconds,
            self.seconds
        )
    }
}

/// Seconds spent in each part of training steps: augmentation and upload, encoder forward,
/// decoder forward and loss, backward pass, Adam update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
    pub data: f64,
    pub encoder: f64,
    pub decoder: f64,
    pub backward: f64,
    pub optimizer: f64,
}

impl StepTimes {
    pub fn total(&self) -> f64 {
        self.data + self.encoder + self.decoder + self.backward + self.optimizer
    }
}

/// Encoder and decoder as one module, so one optimizer sees every parameter.
#[derive(Module, Debug)]
pub struct Net {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// A training run in progress.
pub struct Trainer {
    pub state: RunState,
    /// Taken out during an optimizer step, which consumes the module.
    net: Option<Net>,
    optim: ModuleOptimizer,
    /// The autodiff device.
    device: Device,
    graphs: Graphs,
    down: Vec<f32>,
    /// How the encoder's convolutions run: [`ConvPath::Training`] unless `bench --train`
    /// compares it with plain `conv2d`.
    pub conv_path: ConvPath,
}

/// Adam as PyTorch defines it (ε = 1e-8; burn's default is 1e-5), L2 weight decay added to
/// the gradient as `torch.optim.Adam(weight_decay=…)` does.
fn adam(o: &TrainOptions) -> ModuleOptimizer {
    let decay = (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32));
    AdamConfig::new().with_epsilon(1e-8).with_weight_decay(decay).init()
}

impl Trainer {
    /// A fresh run on `device` (autodiff is added here): PyTorch-style random weights, or the
    /// weights of `init` (fine-tuning, as [`StateDict::read`] gave them), which must have the
    /// options' variant; its input size and skip maps are adapted when the options ask for others.
    pub fn new(options: TrainOptions, init: Option<StateDict>, device: &Device) -> anyhow::Result<Self> {
        let device = device.clone().autodiff();
        let init_path = init.as_ref().map(|sd| sd.source.clone());
        let model = match init {
            Some(mut sd) => {
                let path = sd.source.clone();
                let mut c = weights::infer_config(&sd).with_context(|| format!("{}: cannot load", path.display()))?;
                if c.skip_blocks != options.skip_blocks {
                    anyhow::bail!("{}: skip blocks {}, but the run asks for {}", path.display(), c.skip_blocks, options.skip_blocks);
                }
                if c.input_size != options.size {
                    eprintln!(
                        "{}: input {} → {}; fc_mu and fc_logvar are spread over the new conv6 grid",
                        path.display(),
                        c.input_size,
                        options.size
                    );
                    sd = weights::with_input_size(&sd, &c, options.size)?;
                    c.input_size = options.size;
                }
                if c.skip_maps != options.skip_maps {
                    eprintln!(
                        "{}: skip maps {} → {}; the lookups of the changed blocks start at zero weight",
                        path.display(),
                        c.skip_maps_tag(),
                        ModelConfig { skip_maps: options.skip_maps, ..c }.skip_maps_tag()
                    );
                    sd = weights::with_skip_maps(&sd, &c, options.skip_maps)?;
                }
                HybridGNet::from_state_dict(&sd, &device).with_context(|| format!("{}: cannot load", path.display()))?
            }
            None => {
                let config = ModelConfig {
                    skip_blocks: options.skip_blocks,
                    skip_maps: options.skip_maps,
                    ..ModelConfig::released(options.size)
                };
                config.validate().map_err(anyhow::Error::msg)?;
                HybridGNet::random(&config, options.seed, &device)
            }
        };
        anyhow::ensure!(options.batch > 0, "the batch size must be positive");
        if !model.companions().is_empty() {
            eprintln!(
                "{}: trains the model alone; its {} companion model(s) are not part of the run",
                init_path.as_deref().unwrap_or(Path::new("--init")).display(),
                model.companions().len()
            );
        }
        if model.shape_correction().is_some() {
            eprintln!(
                "{}: its shape correction was fitted on this model's landmarks and is not kept; run `calibrate` on the trained weights to fit a new one",
                init_path.as_deref().unwrap_or(Path::new("--init")).display()
            );
        }
        let (config, encoder, decoder) = model.into_parts();
        let state = RunState {
            optimizer_file: None,
            model_file: None,
            config,
            epoch: 0,
            best_error_px: None,
            best_epoch: None,
            out: None,
            data: None,
            init: init_path,
            options,
        };
        let optim = adam(&state.options);
        Ok(Self::assemble(state, Net { encoder, decoder }, optim, device))
    }

    /// Continue the run whose checkpoint folder is `ckpt`: weights, Adam's moments and the
    /// epoch counter, so the next epoch is the one an uninterrupted run would have trained.
    pub fn resume(ckpt: &Path, device: &Device) -> anyhow::Result<Self> {
        let state = checkpoint::read_state(ckpt)?;
        let (Some(mf), Some(of)) = (&state.model_file, &state.optimizer_file) else {
            anyhow::bail!("{}: the checkpoint names no weights", ckpt.display());
        };
        let device = device.clone().autodiff();
        // Shapes from the config; values and parameter ids from the record.
        let (_, encoder, decoder) = HybridGNet::random(&state.config, 0, &device).into_parts();
        let path = ckpt.join(mf);
        let record = ModuleRecord::load(&path).with_context(|| format!("{}: cannot read the weights", path.display()))?;
        let net = Net { encoder, decoder }
            .try_load_record(record)
            .with_context(|| format!("{}: weights do not fit the model", path.display()))?;
        let path = ckpt.join(of);
        let optim =
            adam(&state.options).load(&path).with_context(|| format!("{}: cannot read the optimizer state", path.display()))?;
        Ok(Self::assemble(state, net, optim, device))
    }

    /// Continue a run of the first trainer version, which kept `FILE.last.safetensors` and
    /// `FILE.state.json` and no optimizer state: Adam's moments restart, the rest continues.
    pub fn resume_legacy(legacy: &checkpoint::Legacy, device: &Device) -> anyhow::Result<Self> {
        let old = checkpoint::read_legacy_state(&legacy.state)?;
        let device = device.clone().autodiff();
        let model = HybridGNet::load(&legacy.weights, &device)
            .with_context(|| format!("{}: cannot load", legacy.weights.display()))?;
        let (config, encoder, decoder) = model.into_parts();
        let state = RunState {
            optimizer_file: None,
            model_file: None,
            config,
            epoch: old.epoch,
            best_error_px: old.best_error_px,
            best_epoch: None,
            out: None,
            data: None,
            init: None,
            options: old.options,
        };
        let optim = adam(&state.options);
        Ok(Self::assemble(state, Net { encoder, decoder }, optim, device))
    }

    fn assemble(state: RunState, net: Net, optim: ModuleOptimizer, device: Device) -> Self {
        let graphs = Graphs::new(&device);
        Trainer { state, net: Some(net), optim, device, graphs, down: downsample_matrix(), conv_path: ConvPath::Training }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.state.config
    }

    /// The current weights as a plain (inference) model.
    pub fn model(&self) -> HybridGNet {
        let net = self.net.as_ref().expect("net present between steps").valid();
        let mut model = HybridGNet::from_parts(self.state.config, net.encoder, net.decoder, &self.device.clone().inner());
        // What this run kept out, not what an --init model did.
        model.held_out_test = self.state.data.as_ref().is_some_and(|d| d.hold_out_test);
        model
    }

    /// The random draws (order, augmentation, ε) of `epoch`, from the seed and the epoch alone:
    /// a resumed run draws what an uninterrupted one would without storing generator state.
    fn epoch_rng(&self, epoch: usize) -> StdRng {
        StdRng::seed_from_u64(self.state.options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64 + 1))
    }

    /// One pass over `train` in random batches (the last one may be smaller); returns the
    /// batch means. `on_batch` sees each batch's size and loss.
    pub fn train_epoch(&mut self, train: &[Prepared], mut on_batch: impl FnMut(usize, &LossValues)) -> LossValues {
        let o = self.state.options.clone();
        let epoch = self.state.epoch;
        let lr = schedule::learning_rate(o.lr, o.lr_factor, o.lr_step, epoch);
        let beta = schedule::kl_weight(o.kl_start, o.kl_end, o.kl_warmup, epoch);
        let mut rng = self.epoch_rng(epoch);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let mut sum = LossValues::default();
        let mut n = 0;
        for chunk in order.chunks(o.batch.max(1)) {
            let v = self.step(train, chunk, beta, lr, &o.augment, &mut rng);
            sum.add(&v);
            n += 1;
            on_batch(chunk.len(), &v);
        }
        self.state.epoch += 1;
        sum.scaled(1.0 / n.max(1) as f64)
    }

    fn step(&mut self, data: &[Prepared], idx: &[usize], beta: f64, lr: f64, aug: &AugmentConfig, rng: &mut StdRng) -> LossValues {
        self.timed_step(data, idx, beta, lr, aug, rng, None)
    }

    /// One optimisation step on `idx`, as training takes it, with the seconds of each part
    /// (`bench --train`). Each part ends by reading a result back, so queued device work is
    /// counted where it was issued.
    pub fn profile_step(&mut self, data: &[Prepared], idx: &[usize], seed: u64) -> (LossValues, StepTimes) {
        let o = self.state.options.clone();
        let mut times = StepTimes::default();
        let mut rng = StdRng::seed_from_u64(seed);
        let v = self.timed_step(data, idx, o.kl_end, o.lr, &o.augment, &mut rng, Some(&mut times));
        (v, times)
    }

    #[allow(clippy::too_many_arguments)]
    fn timed_step(
        &mut self,
        data: &[Prepared],
        idx: &[usize],
        beta: f64,
        lr: f64,
        aug: &AugmentConfig,
        rng: &mut StdRng,
        mut times: Option<&mut StepTimes>,
    ) -> LossValues {
        let mut clock = Instant::now();
        let mut lap = |slot: fn(&mut StepTimes) -> &mut f64, times: &mut Option<&mut StepTimes>| {
            if let Some(t) = times.as_deref_mut() {
                *slot(t) += clock.elapsed().as_secs_f64();
                clock = Instant::now();
            }
        };
        let s = self.state.config.input_size;
        let b = idx.len();
        let mut pixels = Vec::with_capacity(b * s * s);
        let mut target: Vec<f32> = Vec::with_capacity(b * NUM_NODES * 2);
        let mut coarse: Vec<f32> = Vec::new();
        for &i in idx {
            let (px, t) = augment::augment(&data[i].pixels, s, &data[i].target, aug, rng);
            pixels.extend_from_slice(&px);
            target.extend(t.iter().flatten());
            coarse.extend(loss::downsample(&self.down, &t).into_iter().flatten());
        }
        let d = &self.device;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [b, 1, s, s]), d);
        let target = Tensor::<3>::from_data(TensorData::new(target, [b, NUM_NODES, 2]), d);
        let coarse_nodes = coarse.len() / (2 * b);
        let coarse = Tensor::<3>::from_data(TensorData::new(coarse, [b, coarse_nodes, 2]), d);
        lap(|t| &mut t.data, &mut times);

        let net = self.net.take().expect("net present between steps");
        // The batch shares BatchNorm statistics, as in the released training.
        let enc = net.encoder.forward_by(x, self.state.config.skip_maps, self.conv_path);
        if times.is_some() {
            let _ = enc.mu.to_data();
        }
        lap(|t| &mut t.encoder, &mut times);
        let latents = self.state.config.latents;
        // Reparameterisation: one z = μ + ε·σ per image.
        let eps: Vec<f32> = (0..b * latents).map(|_| StandardNormal.sample(rng)).collect();
        let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, latents]), d);
        let z = enc.mu.clone() + eps * enc.logvar.clone().mul_scalar(0.5).exp();
        let [m1, m2] = enc.skip_maps.map(FeatureMap::new);
        let decoded = net.decoder.forward(z, [&m1, &m2], &self.graphs);
        let terms = loss::loss_terms(&decoded, enc.mu, enc.logvar, target, coarse);
        let total = terms.total(beta);
        let values = terms.values(&total);
        lap(|t| &mut t.decoder, &mut times);
        let grads = total.backward();
        let grads = GradientsParams::from_grads(grads, &net);
        lap(|t| &mut t.backward, &mut times);
        let net = self.optim.step(lr, net, grads);
        if times.is_some() {
            // Reading one parameter back waits for the update.
            let _ = net.decoder.dec_lin.weight.val().to_data();
        }
        lap(|t| &mut t.optimizer, &mut times);
        self.net = Some(net);
        values
    }

    /// Predict every validation image with z = μ, one image per batch as at inference.
    pub fn validate(&self, val: &[Prepared]) -> ValReport {
        let model = self.model();
        let mut r = ValReport::default();
        for p in val {
            let pred = predict_prepared(&model, p, self.state.options.val_samples);
            r.error_px += mean_error(&pred.z_mu, &p.landmarks);
            let (w, h) = (p.letterbox.width, p.letterbox.height);
            let (mp, mg) = (organ_masks(&pred.z_mu, w, h), organ_masks(&p.landmarks, w, h));
            r.dice_lungs += dice(&mp.lungs(), &mg.lungs());
            r.dice_heart += dice(mp.get(Organ::Heart), mg.get(Organ::Heart));
            r.mean_std_px += pred.mean_std_px;
        }
        let n = val.len().max(1) as f64;
        ValReport {
            error_px: r.error_px / n,
            dice_lungs: r.dice_lungs / n,
            dice_heart: r.dice_heart / n,
            mean_std_px: r.mean_std_px / n,
        }
    }

    /// Write the checkpoint of the epochs done so far into `ckpt` (see [`checkpoint`]).
    pub fn save_checkpoint(&mut self, ckpt: &Path, model: &HybridGNet) -> anyhow::Result<()> {
        std::fs::create_dir_all(ckpt).with_context(|| format!("{}: cannot create", ckpt.display()))?;
        let (mf, of) = checkpoint::epoch_files(self.state.epoch);
        let net = self.net.as_ref().expect("net present between steps").clone();
        let path = ckpt.join(&mf);
        net.into_record().save(&path).with_context(|| format!("{}: cannot write", path.display()))?;
        let path = ckpt.join(&of);
        self.optim.save(&path).with_context(|| format!("{}: cannot write", path.display()))?;
        model.save(&ckpt.join(checkpoint::LAST_SAFETENSORS))?;
        self.state.model_file = Some(mf.clone());
        self.state.optimizer_file = Some(of.clone());
        checkpoint::write_state(ckpt, &self.state)?;
        checkpoint::remove_stale(ckpt, &[&mf, &of]);
        Ok(())
    }
}

/// Mean Euclidean distance between corresponding landmarks.
pub fn mean_error(a: &[Point; NUM_NODES], b: &[Point; NUM_NODES]) -> f64 {
    a.iter().zip(b).map(|(p, q)| ((p[0] - q[0]) as f64).hypot((p[1] - q[1]) as f64)).sum::<f64>() / NUM_NODES as f64
}

/// A validation prediction: the z = μ landmarks (scored) and the sampled spread.
pub struct ValPrediction {
    pub z_mu: [Point; NUM_NODES],
    pub mean_std_px: f64,
}

/// Predict on an already pre-processed sample (skips reading and resizing the image again).
pub fn predict_prepared(model: &HybridGNet, p: &Prepared, samples: usize) -> ValPrediction {
    let enc = model.encode_pixels(&p.pixels);
    let mu = host_vec(&enc.mu);
    let logvar = host_vec(&enc.logvar);
    let dev = model.device();
    let decode =
        |z: Vec<f32>, n: usize| host_vec(&model.decode(Tensor::from_data(TensorData::new(z, [n, mu.len()]), dev), &enc).output);
    let at_mu = decode(mu.clone(), 1);
    let z_mu: [Point; NUM_NODES] = std::array::from_fn(|i| p.letterbox.to_image([at_mu[2 * i], at_mu[2 * i + 1]]));
    let mean_std_px = if samples > 1 {
        let z = crate::model::uncertainty::draw_latents(&mu, &logvar, samples, 0);
        crate::model::uncertainty::summarise(&decode(z, samples), samples, &logvar, p.letterbox, Some(0)).score as f64
    } else {
        0.0
    };
    ValPrediction { z_mu, mean_std_px }
}

fn host_vec<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().expect("f32 data")
}

/// The log up to `epochs` rows (a resumed run rewrites what came after its checkpoint).
/// A log with other columns (an older trainer's) is moved to `FILE.old.csv`.
fn reset_log(log: &Path, epochs: usize) -> anyhow::Result<()> {
    let mut old = std::fs::read_to_string(log).unwrap_or_default();
    if old.lines().next().is_some_and(|h| h != EpochReport::HEADER) {
        let aside = log.with_extension("old.csv");
        std::fs::rename(log, &aside).with_context(|| format!("{}: cannot move aside", log.display()))?;
        old.clear();
    }
    let mut text = format!("{}\n", EpochReport::HEADER);
    if epochs > 0 {
        for line in old.lines().skip(1) {
            match line.split(',').next().and_then(|e| e.parse::<usize>().ok()) {
                Some(e) if e <= epochs => text.push_str(&format!("{line}\n")),
                _ => {}
            }
        }
    }
    crate::formats::write_atomically(log, text.as_bytes())?;
    Ok(())
}

/// Train up to `options.epochs` epochs (counting those already done), validating, keeping
/// the best model and writing the checkpoint and log after each. `on_batch` sees every
/// batch (images, loss), `report` every epoch.
pub fn run(
    trainer: &mut Trainer,
    train: &[Prepared],
    val: &[Prepared],
    files: &RunFiles,
    mut on_batch: impl FnMut(usize, &LossValues),
    mut report: impl FnMut(&EpochReport),
) -> anyhow::Result<()> {
    anyhow::ensure!(!train.is_empty(), "no training images");
    anyhow::ensure!(!val.is_empty(), "no validation images: the best model is chosen on them");
    let s = trainer.config().input_size;
    anyhow::ensure!(
        train.iter().chain(val).all(|p| p.pixels.len() == s * s),
        "images were prepared for another input size than {s}"
    );
    if let Some(dir) = files.best.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    trainer.state.out = Some(files.best.clone());
    reset_log(&files.log, trainer.state.epoch)?;
    while trainer.state.epoch < trainer.state.options.epochs {
        let start = Instant::now();
        let o = trainer.state.options.clone();
        let epoch = trainer.state.epoch;
        let loss = trainer.train_epoch(train, &mut on_batch);
        let train_seconds = start.elapsed().as_secs_f64();
        let val_report = trainer.validate(val);
        let model = trainer.model();
        let best = trainer.state.best_error_px.is_none_or(|b| val_report.error_px < b);
        if best {
            model.save(&files.best)?;
            trainer.state.best_error_px = Some(val_report.error_px);
            trainer.state.best_epoch = Some(epoch + 1);
        }
        trainer.save_checkpoint(&files.ckpt, &model)?;
        let r = EpochReport {
            epoch: epoch + 1,
            loss,
            beta: schedule::kl_weight(o.kl_start, o.kl_end, o.kl_warmup, epoch),
            lr: schedule::learning_rate(o.lr, o.lr_factor, o.lr_step, epoch),
            val: val_report,
            train_seconds,
            seconds: start.elapsed().as_secs_f64(),
            best,
        };
        let mut log = std::fs::read(&files.log).unwrap_or_default();
        log.extend_from_slice(format!("{}\n", r.csv_row()).as_bytes());
        crate::formats::write_atomically(&files.log, &log)?;
        report(&r);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rows_after_the_checkpoint_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("m.log.csv");
        std::fs::write(&log, format!("{}\n1,a\n2,b\n3,c\n", EpochReport::HEADER)).unwrap();
        reset_log(&log, 2).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("{}\n1,a\n2,b\n", EpochReport::HEADER));
        reset_log(&log, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("{}\n", EpochReport::HEADER));
        // An older trainer's columns: kept aside, not mixed in.
        std::fs::write(&log, "epoch,loss,mse\n1,0.5,0.4\n").unwrap();
        reset_log(&log, 1).unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), format!("{}\n", EpochReport::HEADER));
        assert_eq!(std::fs::read_to_string(dir.path().join("m.log.old.csv")).unwrap(), "epoch,loss,mse\n1,0.5,0.4\n");
    }

    #[test]
    fn a_state_round_trips_through_json_before_any_best() {
        let state = RunState {
            options: TrainOptions::default(),
            config: ModelConfig::released(256),
            epoch: 0,
            best_error_px: None,
            best_epoch: None,
            model_file: None,
            optimizer_file: None,
            out: None,
            data: None,
            init: None,
        };
        let back: RunState = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(back.options, state.options);
        assert_eq!(back.config, state.config);
    }

    #[test]
    fn data_specs_with_one_folder_or_several_read() {
        let old: DataSpec = serde_json::from_str(r#"{"dir":"d/jsrt","train_split":"train","val_split":"val","limit":null}"#).unwrap();
        assert_eq!(old.dirs, vec![PathBuf::from("d/jsrt")]);
        let new = DataSpec { dirs: vec!["a".into(), "b".into()], ..old };
        let back: DataSpec = serde_json::from_slice(&serde_json::to_vec(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn options_of_the_first_trainer_version_still_read() {
        let old = r#"{"size":256,"skip_blocks":true,"epochs":60,"batch":4,"lr":0.001,"lr_step":15,"lr_factor":0.7,
            "weight_decay":0.00001,"kl_start":0.00001,"kl_end":0.01,"kl_warmup":40,"seed":0}"#;
        let o: TrainOptions = serde_json::from_str(old).unwrap();
        assert_eq!((o.lr, o.lr_step, o.val_samples, o.augment), (1e-3, 15, 10, AugmentConfig::default()));
    }
}
