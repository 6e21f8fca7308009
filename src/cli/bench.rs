//! `cxr-review bench`: how long encoding, decoding N samples and a whole prediction take, on
//! random (seeded) weights of the released architecture; with `--train`, how long one
//! training step takes and where its time goes. Prints medians of repeated runs.

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};

use crate::model::config::ModelConfig;
use crate::model::uncertainty::draw_latents;
use crate::model::{DeviceChoice, HybridGNet, Sampling, ShapeCorrection, predict, select_device};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// auto (a GPU if there is one), gpu or cpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Latent samples decoded per image.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Model input sides to measure (multiples of 32) [default: 1024; 256 with --train].
    #[arg(long = "size", num_args = 1..)]
    pub sizes: Vec<usize>,
    /// Timed runs per measurement (after one warm-up run); the table shows medians.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Measure training steps instead of inference: the recipe's model and loss on real
    /// images from --data, augmented as in training.
    #[arg(long)]
    pub train: bool,
    /// Test-time warps for the column that predicts as a model recording them does.
    #[arg(long, default_value_t = crate::model::augmented::DEFAULT_WARPS)]
    pub test_time_warps: usize,
    /// Images per training step (--train).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Folder(s) with landmarks.csv whose train split feeds the steps (--train).
    #[arg(long, num_args = 1.., action = clap::ArgAction::Append)]
    pub data: Vec<std::path::PathBuf>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Median milliseconds of `repeats` runs of `f`, after one untimed run.
fn time_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..repeats)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "dev profile (this crate opt-level 1, dependencies opt-level 3, debug assertions on)"
    } else {
        "release profile"
    }
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.samples >= 1 && args.repeats >= 1, "--samples and --repeats must be at least 1");
    if args.sizes.is_empty() {
        args.sizes = vec![if args.train { 256 } else { 1024 }];
    }
    if args.train {
        return train_steps(&args);
    }
    for &s in &args.sizes {
        ModelConfig::released(s).validate().map_err(anyhow::Error::msg)?;
    }
    let selected = select_device(args.device)?;
    println!("device: {}", selected.description);
    println!("build:  {}", build_profile());
    println!(
        "weights: random (seed 0), released architecture; N = {} samples; median of {} runs",
        args.samples, args.repeats
    );
    println!();
    let k = args.test_time_warps;
    println!(
        "| input | encode ms | decode N={n} ms | total N={n} ms | total N=1 ms | ratio N/1 | total N={n}, {k} warps ms | ratio warps/plain | total N={n}, shape-corrected ms | ratio corrected/plain | total N={n}, corrected + patch-refined ms | ratio refined/plain |",
        n = args.samples
    );
    println!(
        "|------:|----------:|---------------:|---------------:|-------------:|----------:|------------------------:|------------------:|------------------------------:|---------------------:|-----------------------------------------:|--------------------:|"
    );
    let correction = ShapeCorrection::example();
    let refinement = crate::model::PatchRefinement::example();
    for &size in &args.sizes {
        let mut model = HybridGNet::random(&ModelConfig::released(size), 0, &selected.device);
        let image: Vec<f32> =
            (0..size * size).map(|i| (((i % size) as f32 / size as f32) * 6.0).sin() * 0.4 + 0.5).collect();
        let latents = model.config().latents;

        let encode = time_ms(args.repeats, || {
            let e = model.encode_pixels(&image);
            // Reading μ back waits for the device to finish the whole encoder.
            let _ = e.mu.to_data();
        });
        let encoding = model.encode_pixels(&image);
        let mu = encoding.mu.try_to_vec_as::<f32>().expect("f32");
        let logvar = encoding.logvar.try_to_vec_as::<f32>().expect("f32");
        let decode = time_ms(args.repeats, || {
            let z = draw_latents(&mu, &logvar, args.samples, 1);
            let z = Tensor::from_data(TensorData::new(z, [args.samples, latents]), model.device());
            let _ = model.decode(z, &encoding).output.to_data();
        });
        let total = |model: &HybridGNet, n: usize| {
            time_ms(args.repeats, || {
                drop(predict(model, &image, size as u32, size as u32, Sampling::Random { samples: n, seed: 1 }))
            })
        };
        let (total_n, total_1) = (total(&model, args.samples), total(&model, 1));
        model.test_time_warps = k;
        let warped = total(&model, args.samples);
        model.test_time_warps = 0;
        model.set_shape_correction(Some(correction.clone()));
        let corrected = total(&model, args.samples);
        model.set_patch_refinement(Some(refinement.clone()));
        let refined = total(&model, args.samples);
        println!(
            "| {size:>5} | {encode:>9.1} | {decode:>14.1} | {total_n:>14.1} | {total_1:>12.1} | {:>9.2} | {warped:>23.1} | {:>17.2} | {corrected:>29.1} | {:>20.3} | {refined:>40.1} | {:>19.3} |",
            total_n / total_1,
            warped / total_n,
            corrected / total_n,
            refined / total_n
        );
    }
    Ok(())
}

/// `bench --train`: median seconds of each part of a training step, per input size.
fn train_steps(args: &Args) -> anyhow::Result<()> {
    use crate::model::encoder::ConvPath;
    use crate::train::{StepTimes, TrainOptions, Trainer, dataset};
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(!args.data.is_empty(), "bench --train needs --data DIR (images with landmarks, e.g. ../shared/data/jsrt)");
    let samples = dataset::read_split_sets(&args.data, "train")?;
    let samples = &samples[..samples.len().min(args.batch * (args.repeats + 1))];
    let selected = select_device(args.device)?;
    println!("device: {}", selected.description);
    println!("build:  {}", build_profile());
    println!(
        "training step: batch {}, augmented {} train images of {}, random initial weights (seed 0); median of {} steps after one warm-up",
        args.batch,
        samples.len(),
        dataset::describe_sets(samples),
        args.repeats
    );
    println!();
    println!("The two paths alternate step by step on the same images, from the same weights.");
    println!();
    println!("| input | convolutions  | data ms | encoder fwd ms | decoder fwd + loss ms | backward ms | Adam ms | step ms | images/s |");
    println!("|------:|:--------------|--------:|---------------:|----------------------:|------------:|--------:|--------:|---------:|");
    for &size in &args.sizes {
        let options = TrainOptions { size, batch: args.batch, ..TrainOptions::default() };
        ModelConfig::released(size).validate().map_err(anyhow::Error::msg)?;
        let prepared = dataset::prepare(samples, size, || {})?;
        let paths = [(ConvPath::Direct, "conv2d as is"), (ConvPath::Training, "training path")];
        let mut trainers = Vec::new();
        for (path, _) in paths {
            let mut t = Trainer::new(options.clone(), None, &selected.device)?;
            t.conv_path = path;
            trainers.push(t);
        }
        let mut runs: Vec<Vec<StepTimes>> = vec![Vec::new(); paths.len()];
        for r in 0..=args.repeats {
            let idx: Vec<usize> = (0..args.batch).map(|k| (r * args.batch + k) % prepared.len()).collect();
            for (trainer, times) in trainers.iter_mut().zip(&mut runs) {
                let (_, t) = trainer.profile_step(&prepared, &idx, r as u64);
                if r > 0 {
                    times.push(t);
                }
            }
        }
        let mut rates = Vec::new();
        for ((_, name), runs) in paths.iter().zip(&runs) {
            let med = |f: fn(&StepTimes) -> f64| median(runs.iter().map(f).collect()) * 1000.0;
            let step = med(StepTimes::total);
            let rate = args.batch as f64 / (step / 1000.0);
            rates.push(rate);
            println!(
                "| {size:>5} | {name:<13} | {:>7.1} | {:>14.1} | {:>21.1} | {:>11.1} | {:>7.1} | {step:>7.1} | {rate:>8.2} |",
                med(|t| t.data),
                med(|t| t.encoder),
                med(|t| t.decoder),
                med(|t| t.backward),
                med(|t| t.optimizer),
            );
        }
        println!(
            "|       | ratio         | | | | | | | {:>7.2}× |",
            rates[1] / rates[0]
        );
    }
    Ok(())
}
