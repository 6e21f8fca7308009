//! `cxr-review train --data DIR --out FILE`: train a HybridGNet on images with landmarks
//! (METHOD.md §5). FILE gets the best model by validation error, FILE.log.csv one row per
//! epoch, FILE.ckpt/ the checkpoint `--resume` continues from.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

use crate::model::{DeviceChoice, select_device};
use crate::train::augment::AugmentConfig;
use crate::train::{self, DataSpec, EpochReport, RunFiles, TrainOptions, Trainer, dataset};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with landmarks.csv (image,split,Landmarks; pixels of each image) and the images,
    /// in images/ or beside the CSV. Taken from the checkpoint when resuming.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to write the best model (.safetensors). Also names FILE.log.csv and FILE.ckpt/.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue a run from its checkpoint (FILE.ckpt, or FILE itself); the recipe and data
    /// come from the checkpoint, --epochs may raise the total.
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Start from these weights instead of random ones (fine-tuning); same size and variant.
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Total epochs [default: 1000, the paper's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Model input size S, a multiple of 32 [default: 256].
    #[arg(long)]
    pub size: Option<usize>,
    /// Images per batch; they share BatchNorm statistics [default: 4].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate [default: 1e-4].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Multiply the learning rate by --lr-factor every this many epochs [default: 50].
    #[arg(long)]
    pub lr_step: Option<usize>,
    /// [default: 0.9]
    #[arg(long)]
    pub lr_factor: Option<f64>,
    /// Adam's L2 weight decay [default: 1e-5].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// KL weight β at the first epoch [default: 1e-5].
    #[arg(long)]
    pub kl_start: Option<f64>,
    /// KL weight after the warm-up [default: 1e-2].
    #[arg(long)]
    pub kl_end: Option<f64>,
    /// Epochs over which β grows linearly [default: 200].
    #[arg(long, value_name = "EPOCHS")]
    pub kl_warmup: Option<usize>,
    /// With the two image-to-graph skip blocks (the default, as released).
    #[arg(long, overrides_with = "no_skip")]
    pub skip: bool,
    /// The variant without skip blocks.
    #[arg(long, overrides_with = "skip")]
    pub no_skip: bool,
    /// Seed of the initial weights and of every random draw [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train without augmentation (for checks; the recipe augments).
    #[arg(long)]
    pub no_augment: bool,
    /// Latent samples per validation image for the logged spread [default: 10; 1 = none].
    #[arg(long)]
    pub val_samples: Option<usize>,
    #[arg(long, default_value = "train")]
    pub train_split: String,
    #[arg(long, default_value = "val")]
    pub val_split: String,
    /// Use only the first N training images (quick checks).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// auto (a GPU if there is one), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

impl Args {
    fn options(&self) -> TrainOptions {
        let d = TrainOptions::default();
        let augment = if self.no_augment {
            AugmentConfig {
                scale: (1.0, 1.0),
                max_rotation_deg: 0.0,
                max_shift: 0.0,
                gamma: (1.0, 1.0),
                noise_sigma: 0.0,
                ..AugmentConfig::default()
            }
        } else {
            d.augment
        };
        TrainOptions {
            size: self.size.unwrap_or(d.size),
            skip_blocks: !self.no_skip,
            epochs: self.epochs.unwrap_or(d.epochs),
            batch: self.batch.unwrap_or(d.batch),
            lr: self.lr.unwrap_or(d.lr),
            lr_step: self.lr_step.unwrap_or(d.lr_step),
            lr_factor: self.lr_factor.unwrap_or(d.lr_factor),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            kl_start: self.kl_start.unwrap_or(d.kl_start),
            kl_end: self.kl_end.unwrap_or(d.kl_end),
            kl_warmup: self.kl_warmup.unwrap_or(d.kl_warmup),
            seed: self.seed.unwrap_or(d.seed),
            augment,
            val_samples: self.val_samples.unwrap_or(d.val_samples),
        }
    }

    /// Recipe flags a resumed run cannot change (the checkpoint fixes them).
    fn recipe_flags_given(&self) -> Vec<&'static str> {
        let given = [
            ("--size", self.size.is_some()),
            ("--batch", self.batch.is_some()),
            ("--lr", self.lr.is_some()),
            ("--lr-step", self.lr_step.is_some()),
            ("--lr-factor", self.lr_factor.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--kl-start", self.kl_start.is_some()),
            ("--kl-end", self.kl_end.is_some()),
            ("--kl-warmup", self.kl_warmup.is_some()),
            ("--skip/--no-skip", self.skip || self.no_skip),
            ("--seed", self.seed.is_some()),
            ("--no-augment", self.no_augment),
            ("--val-samples", self.val_samples.is_some()),
            ("--limit", self.limit.is_some()),
        ];
        given.into_iter().filter(|(_, g)| *g).map(|(n, _)| n).collect()
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let selected = select_device(args.device)?;
    let (mut trainer, files) = match &args.resume {
        Some(ckpt) => {
            let given = args.recipe_flags_given();
            if !given.is_empty() {
                anyhow::bail!("{} cannot change when resuming: the checkpoint fixes the recipe", given.join(", "));
            }
            let found = RunFiles::for_resume(ckpt)?;
            let files = match &args.out {
                Some(out) => RunFiles { ckpt: found.ckpt.clone(), ..RunFiles::new(out) },
                None => found,
            };
            let mut t = Trainer::resume(&files.ckpt, &selected.device)?;
            if let Some(e) = args.epochs {
                t.state.options.epochs = e;
            }
            if let Some(dir) = &args.data {
                let spec = t.state.data.get_or_insert_with(|| DataSpec {
                    dir: dir.clone(),
                    train_split: args.train_split.clone(),
                    val_split: args.val_split.clone(),
                    limit: None,
                });
                spec.dir = dir.clone();
            }
            (t, files)
        }
        None => {
            let out = args.out.clone().expect("clap requires --out without --resume");
            let data = args.data.clone().context("--data is required for a new run")?;
            let mut t = Trainer::new(args.options(), args.init.as_deref(), &selected.device)?;
            t.state.data = Some(DataSpec {
                dir: data,
                train_split: args.train_split.clone(),
                val_split: args.val_split.clone(),
                limit: args.limit,
            });
            (t, RunFiles::new(&out))
        }
    };
    let spec = trainer.state.data.clone().context("the checkpoint records no data folder: pass --data")?;
    let size = trainer.config().input_size;
    let mut train_samples = dataset::read_split(&spec.dir, &spec.train_split)?;
    if let Some(n) = spec.limit {
        train_samples.truncate(n);
    }
    let val_samples = dataset::read_split(&spec.dir, &spec.val_split)?;
    let o = &trainer.state.options;
    eprintln!(
        "{} {} training images, {} validation, input {size}, {}skip blocks, batch {}, lr {:e}, device {}",
        if args.resume.is_some() { format!("resuming after epoch {}:", trainer.state.epoch) } else { "training:".into() },
        train_samples.len(),
        val_samples.len(),
        if o.skip_blocks { "" } else { "no " },
        o.batch,
        o.lr,
        selected.description
    );

    // Pre-processing (decode, pad, resize) happens once; epochs reuse the cached inputs.
    let prep = ProgressBar::new((train_samples.len() + val_samples.len()) as u64);
    prep.set_style(ProgressStyle::with_template("preparing {bar:40} {pos}/{len} images {elapsed}").expect("valid template"));
    let train_set = dataset::prepare(&train_samples, size, || prep.inc(1)).context("preparing the training images")?;
    let val_set = dataset::prepare(&val_samples, size, || prep.inc(1)).context("preparing the validation images")?;
    prep.finish_and_clear();

    let epochs = trainer.state.options.epochs;
    let first = trainer.state.epoch;
    let bar = ProgressBar::new((epochs.saturating_sub(first) * train_set.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed_precise} eta {eta_precise} {msg}")
            .expect("valid template"),
    );
    // Both callbacks update these; the batch one shows the running mean loss.
    let epoch_shown = std::cell::Cell::new(first + 1);
    let running = std::cell::Cell::new((0.0, 0usize));
    train::run(
        &mut trainer,
        &train_set,
        &val_set,
        &files,
        |images, loss| {
            let (sum, n) = running.get();
            running.set((sum + loss.total, n + 1));
            bar.set_message(format!("epoch {}/{epochs} loss {:.5}", epoch_shown.get(), (sum + loss.total) / (n + 1) as f64));
            bar.inc(images as u64);
        },
        |r| {
            epoch_shown.set(r.epoch + 1);
            running.set((0.0, 0));
            bar.suspend(|| println!("{}", epoch_line(r, epochs)));
        },
    )?;
    bar.finish_and_clear();
    let s = &trainer.state;
    eprintln!(
        "best validation error {:.2} px at epoch {}; model in {}; checkpoint in {}",
        s.best_error_px.unwrap_or(f64::NAN),
        s.best_epoch.unwrap_or(0),
        files.best.display(),
        files.ckpt.display()
    );
    Ok(())
}

fn epoch_line(r: &EpochReport, epochs: usize) -> String {
    let l = &r.loss;
    format!(
        "epoch {:>4}/{epochs}  loss {:.5} (out {:.5} pos2 {:.5} pos1 {:.5} kl {:.3} β {:.1e})  lr {:.1e}  val {:.2} px  Dice lungs {:.4} heart {:.4}  std {:.2} px  {:.0} s{}",
        r.epoch,
        l.total,
        l.output,
        l.pos2,
        l.pos1,
        l.kl,
        r.beta,
        r.lr,
        r.val.error_px,
        r.val.dice_lungs,
        r.val.dice_heart,
        r.val.mean_std_px,
        r.seconds,
        if r.best { "  best" } else { "" }
    )
}
