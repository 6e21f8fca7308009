//! `cxr-review train --data DIR --out FILE`: train a HybridGNet on images with landmarks
//! (METHOD.md §5). FILE gets the best model by validation error, FILE.log.csv one row per
//! epoch, FILE.ckpt/ the checkpoint `--resume` continues from.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

use crate::model::{DeviceChoice, ModelConfig, StateDict, select_device, weights};
use crate::train::augment::AugmentConfig;
use crate::train::{self, DataSpec, EpochReport, RunFiles, RunState, TrainOptions, Trainer, checkpoint, dataset};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with landmarks.csv (image,split,Landmarks; pixels of each image) and the images,
    /// in images/ or beside the CSV. Repeat it (or list several) to merge data sets; rows
    /// without a split are split by image content. Taken from the checkpoint when resuming.
    #[arg(long, num_args = 1.., action = clap::ArgAction::Append)]
    pub data: Vec<PathBuf>,
    /// Where to write the best model (.safetensors). Also names FILE.log.csv and FILE.ckpt/.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue a run from its checkpoint: FILE.ckpt, or FILE (the --out of that run; the
    /// default when no path follows). Recipe and data come from the checkpoint (flags that
    /// repeat them are fine, ones that change them are refused); --epochs may raise the total.
    #[arg(long, value_name = "CKPT", num_args = 0..=1)]
    pub resume: Option<Option<PathBuf>>,
    /// Start from these weights instead of random ones (fine-tuning); same variant. Another
    /// input size (progressive resizing) or other skip maps are adapted.
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Total epochs [default: 1000, the paper's].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Model input size S, a multiple of 32 [default: 256, or the --init model's].
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
    /// Encoder blocks (1–6) the two skip blocks look features up in [default: 6,5 as released,
    /// or the --init model's].
    /// Small inputs look up earlier, finer maps (the shipped model: 4,3); with --init from a model of
    /// other maps, the changed lookups start at zero weight.
    #[arg(long, value_name = "B1,B2", value_parser = parse_skip_maps)]
    pub skip_maps: Option<[usize; 2]>,
    /// Seed of the initial weights and of every random draw [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train without augmentation (for checks; the recipe augments).
    #[arg(long)]
    pub no_augment: bool,
    /// Multiply the augmentation's rotation and shift ranges, and the zoom's distance from 1,
    /// by this [default: 1] (assets/README.md, "milder warps").
    #[arg(long, value_name = "K")]
    pub warp_strength: Option<f32>,
    /// The zoom's own factor, in place of --warp-strength's [default: --warp-strength].
    #[arg(long, value_name = "K")]
    pub zoom_strength: Option<f32>,
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
    /// Keep a seventh of the train split (chosen by image content) out of the run, as split
    /// `test`: the model never trains on it and no epoch is chosen on it, so `validate
    /// --split test` measures it on images nobody tuned on.
    #[arg(long)]
    pub hold_out_test: bool,
    /// auto (a GPU if there is one), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

fn parse_skip_maps(tag: &str) -> Result<[usize; 2], String> {
    ModelConfig::parse_skip_maps(tag)
}

impl Args {
    /// The run's recipe: the flags given, else the defaults; with `--init`, the input size and
    /// skip maps default to the initial model's, so fine-tuning keeps its architecture.
    /// Returns the recipe and the `--init` weights, read once for both.
    fn options(&self) -> anyhow::Result<(TrainOptions, Option<StateDict>)> {
        let mut d = TrainOptions::default();
        let init = match &self.init {
            Some(path) => {
                let sd = StateDict::read(path).with_context(|| format!("{}: cannot load", path.display()))?;
                let c = weights::infer_config(&sd).with_context(|| format!("{}: cannot load", path.display()))?;
                (d.size, d.skip_maps) = (c.input_size, c.skip_maps);
                Some(sd)
            }
            None => None,
        };
        Ok((self.options_over(d), init))
    }

    /// The flags given, else `d`.
    fn options_over(&self, d: TrainOptions) -> TrainOptions {
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
            let k = self.warp_strength.unwrap_or(1.0);
            d.augment.with_warp_strength(k, self.zoom_strength.unwrap_or(k))
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
            skip_maps: self.skip_maps.unwrap_or(d.skip_maps),
        }
    }

    /// Recipe flags given on a resume that disagree with the checkpoint's recipe.
    fn recipe_changes(&self, state: &RunState) -> Vec<&'static str> {
        // Only flags given are compared, so the defaults underneath do not matter.
        let (o, new) = (&state.options, self.options_over(TrainOptions::default()));
        let limit = state.data.as_ref().and_then(|d| d.limit);
        let differs = [
            ("--size", self.size.is_some_and(|v| v != state.config.input_size)),
            ("--batch", self.batch.is_some() && new.batch != o.batch),
            ("--lr", self.lr.is_some() && new.lr != o.lr),
            ("--lr-step", self.lr_step.is_some() && new.lr_step != o.lr_step),
            ("--lr-factor", self.lr_factor.is_some() && new.lr_factor != o.lr_factor),
            ("--weight-decay", self.weight_decay.is_some() && new.weight_decay != o.weight_decay),
            ("--kl-start", self.kl_start.is_some() && new.kl_start != o.kl_start),
            ("--kl-end", self.kl_end.is_some() && new.kl_end != o.kl_end),
            ("--kl-warmup", self.kl_warmup.is_some() && new.kl_warmup != o.kl_warmup),
            ("--skip/--no-skip", (self.skip || self.no_skip) && new.skip_blocks != state.config.skip_blocks),
            ("--skip-maps", self.skip_maps.is_some_and(|m| m != state.config.skip_maps)),
            ("--seed", self.seed.is_some() && new.seed != o.seed),
            ("--no-augment", self.no_augment && new.augment != o.augment),
            ("--warp-strength", self.warp_strength.is_some() && new.augment != o.augment),
            ("--zoom-strength", self.zoom_strength.is_some() && new.augment != o.augment),
            ("--val-samples", self.val_samples.is_some() && new.val_samples != o.val_samples),
            ("--limit", state.data.is_some() && self.limit.is_some() && self.limit != limit),
            ("--hold-out-test", self.hold_out_test && state.data.as_ref().is_some_and(|d| !d.hold_out_test)),
        ];
        differs.into_iter().filter(|(_, d)| *d).map(|(n, _)| n).collect()
    }

    fn data_spec(&self, dirs: Vec<PathBuf>) -> DataSpec {
        DataSpec {
            dirs,
            train_split: self.train_split.clone(),
            val_split: self.val_split.clone(),
            limit: self.limit,
            hold_out_test: self.hold_out_test,
        }
    }
}

/// Open the run `arg` names for resuming: a checkpoint of this trainer, or the files of the
/// first trainer version beside `arg`.
fn open_resume(arg: &Path, device: &burn::tensor::Device) -> anyhow::Result<(Trainer, RunFiles)> {
    match RunFiles::for_resume(arg) {
        Ok(files) => Ok((Trainer::resume(&files.ckpt, device)?, files)),
        Err(e) => match checkpoint::Legacy::find(arg) {
            Some(legacy) => {
                eprintln!(
                    "note: {} is a checkpoint of the first trainer version, without optimizer state: Adam's moments restart",
                    legacy.state.display()
                );
                Ok((Trainer::resume_legacy(&legacy, device)?, RunFiles::new(arg)))
            }
            None => Err(e),
        },
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let selected = select_device(args.device)?;
    let resume = match &args.resume {
        None => None,
        Some(Some(path)) => Some(path.clone()),
        Some(None) => Some(args.out.clone().context("--resume without a checkpoint path needs --out")?),
    };
    let (mut trainer, files) = match &resume {
        Some(arg) => {
            let (mut t, found) = open_resume(arg, &selected.device)?;
            let changed = args.recipe_changes(&t.state);
            if !changed.is_empty() {
                anyhow::bail!(
                    "{} differ from the checkpoint's recipe; a resumed run keeps it (start a new run, or --init from its weights)",
                    changed.join(", ")
                );
            }
            let files = match &args.out {
                Some(out) => RunFiles { ckpt: found.ckpt.clone(), ..RunFiles::new(out) },
                None => found,
            };
            if let Some(e) = args.epochs {
                t.state.options.epochs = e;
            }
            match (&mut t.state.data, args.data.is_empty()) {
                (Some(spec), false) => spec.dirs = args.data.clone(),
                (None, false) => t.state.data = Some(args.data_spec(args.data.clone())),
                _ => {}
            }
            (t, files)
        }
        None => {
            let out = args.out.clone().expect("clap requires --out without --resume");
            anyhow::ensure!(!args.data.is_empty(), "--data is required for a new run");
            let data = args.data.clone();
            let (options, init) = args.options()?;
            let mut t = Trainer::new(options, init, &selected.device)?;
            t.state.data = Some(args.data_spec(data));
            (t, RunFiles::new(&out))
        }
    };
    let spec = trainer.state.data.clone().context("the checkpoint records no data folder: pass --data")?;
    let size = trainer.config().input_size;
    let mut train_samples = dataset::read_split_sets_holding_out(&spec.dirs, &spec.train_split, spec.hold_out_test)?;
    if let Some(n) = spec.limit {
        train_samples.truncate(n);
    }
    let val_samples = dataset::read_split_sets(&spec.dirs, &spec.val_split)?;
    if spec.hold_out_test {
        let test = dataset::read_split_sets(&spec.dirs, dataset::TEST_SPLIT).map(|t| t.len()).unwrap_or(0);
        eprintln!("held out for `validate --split {}`: {test} images of the train split", dataset::TEST_SPLIT);
    }
    if spec.dirs.len() > 1 {
        eprintln!(
            "data sets: train {}; {} {}",
            dataset::describe_sets(&train_samples),
            spec.val_split,
            dataset::describe_sets(&val_samples)
        );
    }
    let o = &trainer.state.options;
    eprintln!(
        "{} {} training images, {} validation, input {size}, {}skip blocks (maps {}), batch {}, lr {:e}, device {}",
        if resume.is_some() { format!("resuming after epoch {}:", trainer.state.epoch) } else { "training:".into() },
        train_samples.len(),
        val_samples.len(),
        if o.skip_blocks { "" } else { "no " },
        trainer.config().skip_maps_tag(),
        o.batch,
        o.lr,
        selected.description
    );
    let a = &o.augment;
    eprintln!(
        "augmentation: zoom {:.3}-{:.3}, rotation ±{:.1}°, shift ±{:.3}, gamma {}-{}, noise σ {:.4}",
        a.scale.0, a.scale.1, a.max_rotation_deg, a.max_shift, a.gamma.0, a.gamma.1, a.noise_sigma
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
        "best validation error {:.2} px{}; model in {}; checkpoint in {}",
        s.best_error_px.unwrap_or(f64::NAN),
        s.best_epoch.map(|e| format!(" at epoch {e}")).unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn augment_of(flags: &[&str]) -> AugmentConfig {
        let argv = ["train", "--out", "m.safetensors"].iter().chain(flags);
        Cli::try_parse_from(argv).unwrap().args.options_over(TrainOptions::default()).augment
    }

    #[test]
    fn warp_and_zoom_strength_reach_the_recipe() {
        let d = AugmentConfig::default();
        assert_eq!(augment_of(&[]), d);
        assert_eq!(augment_of(&["--warp-strength", "0.5"]), d.with_warp_strength(0.5, 0.5));
        let kept = augment_of(&["--warp-strength", "0.5", "--zoom-strength", "1"]);
        assert_eq!((kept.scale, kept.max_rotation_deg, kept.max_shift), (d.scale, 5.0, 0.05));
        assert_eq!(augment_of(&["--no-augment", "--warp-strength", "0.5"]).max_rotation_deg, 0.0);
    }
}
