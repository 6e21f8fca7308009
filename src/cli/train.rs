//! `cxr-review train --data DIR --out FILE`: train a HybridGNet on images with landmarks
//! (METHOD.md §5). Writes the best model (by validation landmark error) to FILE, the last
//! one to FILE.last.safetensors, the run state to FILE.state.json and a log to FILE.log.csv.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

use crate::model::{DeviceChoice, select_device};
use crate::train::{self, TrainOptions, Trainer, dataset};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with landmarks.csv (image,split,Landmarks) and the images (in images/ or beside it).
    #[arg(long)]
    pub data: PathBuf,
    /// Where to write the best model (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run that wrote --out (its .last weights and .state.json); --epochs may raise the total.
    #[arg(long)]
    pub resume: bool,
    /// Model input size (a multiple of 32).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Total epochs.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Multiply the learning rate by --lr-factor every this many epochs.
    #[arg(long, default_value_t = 50)]
    pub lr_step: usize,
    #[arg(long, default_value_t = 0.9)]
    pub lr_factor: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub weight_decay: f64,
    /// KL weight at the first epoch.
    #[arg(long, default_value_t = 1e-5)]
    pub kl_start: f64,
    /// KL weight after the warm-up.
    #[arg(long, default_value_t = 1e-2)]
    pub kl_end: f64,
    /// Epochs over which the KL weight grows linearly.
    #[arg(long, default_value_t = 200)]
    pub kl_warmup: usize,
    /// Train the variant without image-to-graph skip blocks.
    #[arg(long)]
    pub no_skip: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub val_split: String,
    /// Use only the first N training images (quick checks).
    #[arg(long)]
    pub limit: Option<usize>,
    /// auto (a GPU if there is one), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let selected = select_device(args.device)?;
    let mut trainer = if args.resume {
        let mut t = Trainer::resume(&args.out, &selected.device)?;
        t.state.options.epochs = args.epochs;
        t
    } else {
        let options = TrainOptions {
            size: args.size,
            skip_blocks: !args.no_skip,
            epochs: args.epochs,
            batch: args.batch,
            lr: args.lr,
            lr_step: args.lr_step,
            lr_factor: args.lr_factor,
            weight_decay: args.weight_decay,
            kl_start: args.kl_start,
            kl_end: args.kl_end,
            kl_warmup: args.kl_warmup,
            seed: args.seed,
        };
        Trainer::new(options, &selected.device)?
    };
    let size = trainer.config().input_size;
    let mut train_samples = dataset::read_split(&args.data, &args.train_split)?;
    if let Some(n) = args.limit {
        train_samples.truncate(n);
    }
    let val_samples = dataset::read_split(&args.data, &args.val_split)?;
    eprintln!(
        "training on {} images, validating on {}, input {size}, device {}",
        train_samples.len(),
        val_samples.len(),
        selected.description
    );
    let train_set = dataset::prepare(&train_samples, size).context("preparing the training images")?;
    let val_set = dataset::prepare(&val_samples, size).context("preparing the validation images")?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }

    let epochs = trainer.state.options.epochs;
    let bar = ProgressBar::new(((epochs - trainer.state.epoch.min(epochs)) * train_set.len()) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed_precise} eta {eta} {msg}").expect("valid template"));
    train::run(
        &mut trainer,
        &train_set,
        &val_set,
        &args.out,
        |n| bar.inc(n as u64),
        |r| {
            bar.suspend(|| eprintln!(
                "epoch {:4}  loss {:.5} (mse {:.5}, kl {:.3}, β {:.1e})  val error {:.2} px  Dice lungs {:.4} heart {:.4}  std {:.2} px  {:.0} s",
                r.epoch, r.loss, r.mse, r.kl, r.beta, r.val_error_px, r.dice_lungs, r.dice_heart, r.mean_std_px, r.seconds
            ));
        },
    )?;
    bar.finish_and_clear();
    eprintln!("best validation error {:.2} px; model in {}", trainer.state.best_error_px, args.out.display());
    Ok(())
}
