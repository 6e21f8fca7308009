//! `cxr-review validate --data DIR [--split val] [--weights W] [--plots DIR]`: how good a model
//! is on annotated images (Dice of filled contours, node error, std–error correlation) and
//! whether its uncertainty rises with noise, under a black square and on non-chest images.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::formats::write_atomically;
use crate::landmarks::{NUM_NODES, Organ};
use crate::model::{DeviceChoice, HybridGNet, Sampling, predict, select_device, shipped};
use crate::plots;
use crate::train::dataset;
use crate::model::Calibration;
use crate::validation::accuracy::{ImageAccuracy, summarise};
use crate::validation::calibration;
use crate::validation::probes::{non_chest_images, score_1024};
use crate::validation::{self, ImageReport, NOISE_SIGMAS, OCCLUSION_SIDE};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with landmarks.csv and images, as for `train`; repeat it (or list several) to
    /// validate on several data sets: figures are given per set and pooled.
    #[arg(long, required = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub data: Vec<PathBuf>,
    /// The split to measure: `val`, or `test`, the train rows that `train --hold-out-test`
    /// keeps out (only a model trained with that flag has never seen them).
    #[arg(long, default_value = "val")]
    pub split: String,
    /// HybridGNet weights [default: the shipped model].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Latent samples per prediction.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only the first N images of the split of each data set.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Per-image results as CSV.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write PNG figures into this folder.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// auto (a GPU if there is one), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Average the landmarks over this many small warps of every image besides the image
    /// itself (0: the image alone, as METHOD.md §4) [default: what the weights record].
    #[arg(long)]
    pub test_time_warps: Option<usize>,
    /// Predict with the weights' first model alone, leaving out the companion models they
    /// hold (whose landmarks are otherwise averaged in).
    #[arg(long)]
    pub no_companions: bool,
    /// Leave the landmarks where the model places them, without the shape correction the
    /// weights hold (fitted by `calibrate` on the training images).
    #[arg(long)]
    pub no_shape_correction: bool,
    /// Leave the nodes where the model (and its shape correction) place them, without the
    /// patch refinement the weights hold (fitted by `calibrate` on the training images).
    #[arg(long)]
    pub no_patch_refinement: bool,
    /// Leave the nodes where the steps before place them, without re-spacing them along their
    /// contours as the landmark protocol spaces them (which `calibrate` turns on).
    #[arg(long)]
    pub no_contour_spacing: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    print!("{}", report(args)?);
    Ok(())
}

/// Validate as `run` does and return the report it prints.
pub fn report(args: Args) -> anyhow::Result<String> {
    let weights = shipped::resolve(args.weights.as_deref()).map_err(anyhow::Error::msg)?;
    let device = select_device(args.device)?;
    let mut model = HybridGNet::load(&weights, &device.device).with_context(|| format!("{}", weights.display()))?;
    model.override_test_time_warps(args.test_time_warps).map_err(anyhow::Error::msg)?;
    if args.no_companions {
        model.drop_companions();
    }
    if args.no_shape_correction {
        model.set_shape_correction(None);
    }
    if args.no_patch_refinement {
        model.set_patch_refinement(None);
    }
    if args.no_contour_spacing {
        model.contour_spacing = false;
    }
    let mut samples = dataset::read_split_sets(&args.data, &args.split)?;
    if let Some(n) = args.limit {
        samples = dataset::first_of_each_set(samples, n);
    }
    let sampling = Sampling::Random { samples: args.samples.max(1), seed: args.seed };
    let bar = ProgressBar::new(samples.len() as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]").expect("template"));
    let mut reports: Vec<ImageReport> = Vec::new();
    for s in &samples {
        let a = validation::load_sample(s)?;
        bar.set_message(a.grey.name.clone());
        reports.push(validation::validate_image(&model, &a, sampling));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let non_chest: Vec<(String, f64)> = non_chest_images()
        .into_iter()
        .map(|g| (g.name.clone(), score_1024(&predict(&model, &g.pixels, g.width, g.height, sampling), g.width, g.height)))
        .collect();

    let acc: Vec<_> = reports.iter().map(|r| r.accuracy.clone()).collect();
    let s = summarise(&acc);
    let mut out = String::new();
    writeln!(out, "model: {} ({}, {})", weights.display(), model.describe(), device.description)?;
    if let Some(c) = model.calibration() {
        writeln!(out, "calibration: {} (fitted on {})", c.method, c.fitted_on)?;
        if let Some(p) = &c.profile {
            writeln!(out, "               each node's usual error and std measured on {}", p.measured_on)?;
        }
    }
    writeln!(out, "{} images of split `{}`, N={} samples, seed {}", s.images, args.split, args.samples, args.seed)?;
    if args.split == dataset::TEST_SPLIT {
        if model.held_out_test {
            writeln!(out, "held out: the weights say they were trained with --hold-out-test, never on these images")?;
        } else {
            writeln!(
                out,
                "WARNING: these weights were not trained with --hold-out-test: the `test` images are part of `train` and may have been trained on"
            )?;
        }
    }
    accuracy_lines(&mut out, &acc, model.calibration(), std_description(&model), &args.split)?;
    let sets: Vec<&str> = samples.iter().fold(Vec::new(), |mut v, x| {
        if !v.contains(&x.set.as_str()) {
            v.push(x.set.as_str());
        }
        v
    });
    if sets.len() > 1 {
        for set in sets {
            let part: Vec<_> = acc.iter().zip(&samples).filter(|(_, x)| x.set == set).map(|(a, _)| a.clone()).collect();
            writeln!(out, "set {set}: {} images", part.len())?;
            accuracy_lines(&mut out, &part, model.calibration(), std_description(&model), &args.split)?;
        }
    }
    let mean_at = |f: &dyn Fn(&ImageReport) -> &Vec<f64>, k: usize| {
        reports.iter().map(|r| f(r)[k]).sum::<f64>() / reports.len().max(1) as f64
    };
    let by_sigma = |f: &dyn Fn(&ImageReport) -> &Vec<f64>, digits: usize| {
        let v: Vec<String> =
            NOISE_SIGMAS.iter().enumerate().map(|(k, sg)| format!("{sg}: {:.*}", digits, mean_at(f, k))).collect();
        v.join(", ")
    };
    writeln!(out, "noise probe       mean image score (px at 1024) by noise sigma: {}", by_sigma(&|r| &r.noise.score, 2))?;
    writeln!(out, "                  encoder's mean latent sigma^2: {}", by_sigma(&|r| &r.noise.latent_sigma2, 4))?;
    writeln!(
        out,
        "                  score with the clean image's sigma (decoder's part): {}",
        by_sigma(&|r| &r.noise.score_at_clean_sigma, 2)
    )?;
    let rising = reports.iter().filter(|r| r.noise.score.windows(2).all(|w| w[1] >= w[0])).count();
    writeln!(out, "                  score never falls as noise grows on {rising}/{} images", reports.len())?;
    let occ = |f: &dyn Fn(&validation::probes::OcclusionResult) -> f64| {
        reports.iter().map(|r| f(&r.occlusion)).sum::<f64>() / reports.len().max(1) as f64
    };
    let up = reports.iter().filter(|r| r.occlusion.covered_std_after > r.occlusion.covered_std_before).count();
    writeln!(
        out,
        "occlusion probe   black square of {:.0}% of the side: covered nodes' std {:.2} -> {:.2} px, other nodes {:.2} -> {:.2}; rose on {up}/{} images",
        OCCLUSION_SIDE * 100.0,
        occ(&|o| o.covered_std_before),
        occ(&|o| o.covered_std_after),
        occ(&|o| o.other_std_before),
        occ(&|o| o.other_std_after),
        reports.len()
    )?;
    let nc: Vec<String> = non_chest.iter().map(|(n, v)| format!("{n} {v:.2}")).collect();
    writeln!(out, "non-chest probe   highest {} image score {:.2}; non-chest images: {}", args.split, s.max_score_1024, nc.join(", "))?;

    if let Some(path) = &args.out {
        let mut csv = String::from("image,set,Dice Lungs,Dice Heart,mean node error px 1024,score px 1024,covered std before,covered std after");
        for sg in NOISE_SIGMAS {
            write!(csv, ",score noise {sg}")?;
        }
        for sg in NOISE_SIGMAS {
            write!(csv, ",latent sigma2 noise {sg}")?;
        }
        csv.push('\n');
        for (r, sample) in reports.iter().zip(&samples) {
            let a = &r.accuracy;
            write!(
                csv,
                "{},{},{:.6},{:.6},{:.4},{:.4},{:.4},{:.4}",
                a.name,
                sample.set,
                a.dice_lungs,
                a.dice_heart,
                a.mean_error_1024(),
                a.score_1024,
                r.occlusion.covered_std_before,
                r.occlusion.covered_std_after
            )?;
            for v in &r.noise.score {
                write!(csv, ",{v:.4}")?;
            }
            for v in &r.noise.latent_sigma2 {
                write!(csv, ",{v:.6}")?;
            }
            csv.push('\n');
        }
        write_atomically(path, csv.as_bytes())?;
        writeln!(out, "per-image results: {}", path.display())?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
        let points: Vec<(f64, f64, Organ)> = acc
            .iter()
            .flat_map(|a| {
                (0..NUM_NODES).map(move |n| (a.node_std_1024[n], a.node_error_1024[n], Organ::of_node(n).expect("node").0))
            })
            .collect();
        let p = dir.join("error_vs_uncertainty.png");
        plots::uncertainty::error_vs_uncertainty(&p, &points, acc.len(), "px at 1024")?;
        writeln!(out, "plot: {}", p.display())?;
        let p = dir.join("noise_probe.png");
        let curves: Vec<Vec<f64>> = reports.iter().map(|r| r.noise.score.clone()).collect();
        plots::probes::noise_curve(&p, &NOISE_SIGMAS, &curves, "px at 1024")?;
        writeln!(out, "plot: {}", p.display())?;
        let before: Vec<f64> = reports.iter().map(|r| r.occlusion.covered_std_before).collect();
        let after: Vec<f64> = reports.iter().map(|r| r.occlusion.covered_std_after).collect();
        let scores: Vec<f64> = acc.iter().map(|a| a.score_1024).collect();
        let nc_scores: Vec<f64> = non_chest.iter().map(|x| x.1).collect();
        let (dl, dh): (Vec<f64>, Vec<f64>) = acc.iter().map(|a| (a.dice_lungs, a.dice_heart)).unzip();
        let blue = plots::chart::ORGAN_COLORS[0];
        let red = plots::chart::ORGAN_COLORS[2];
        let panels = [
            plots::per_image::Panel { title: "Dice", y_label: "Dice", groups: vec![("Lungs", blue, &dl), ("Heart", red, &dh)] },
            plots::per_image::Panel {
                title: "Nodes under a black square",
                y_label: "mean node std (px at 1024)",
                groups: vec![("clean", blue, &before), ("occluded", red, &after)],
            },
            plots::per_image::Panel {
                title: "Image score",
                y_label: "mean node std (px at 1024)",
                groups: vec![(args.split.as_str(), blue, &scores), ("non-chest", red, &nc_scores)],
            },
        ];
        let p = dir.join("probes.png");
        let subtitle = format!("{} images of `{}`, N={}; one dot per image, bar: mean", acc.len(), args.split, args.samples);
        plots::per_image::strip_plots(&p, "Accuracy and uncertainty probes", &subtitle, &panels)?;
        writeln!(out, "plot: {}", p.display())?;
    }
    Ok(out)
}

/// Which std the node table and the figures read: a model that re-spaces its landmarks is
/// judged by the spread of its re-spaced samples, one that refines them by theirs.
fn std_description(model: &HybridGNet) -> &'static str {
    match (model.refines_samples(), model.contour_spacing) {
        (true, true) => ", std of the refined, re-spaced samples",
        (true, false) => ", std of the refined samples",
        (false, true) => ", std of the re-spaced samples",
        (false, false) => "",
    }
}

/// The accuracy block of the report for one group of images; with a calibration, how its
/// expected errors agree with the real ones too (on images it may have been fitted to).
fn accuracy_lines(
    out: &mut String,
    acc: &[ImageAccuracy],
    calibration: Option<&Calibration>,
    which: &str,
    split: &str,
) -> std::fmt::Result {
    let s = summarise(acc);
    let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
    writeln!(out, "Dice lungs        {:.4} ± {:.4}", s.dice_lungs.0, s.dice_lungs.1)?;
    writeln!(out, "Dice heart        {:.4} ± {:.4}", s.dice_heart.0, s.dice_heart.1)?;
    writeln!(out, "node error        {:.2} ± {:.2} px at 1024", s.error_1024.0, s.error_1024.1)?;
    writeln!(
        out,
        "std vs error      Pearson r {}, Spearman rho {} ({} nodes{which})",
        f(s.pearson_r),
        f(s.spearman_rho),
        s.images * NUM_NODES
    )?;
    writeln!(out, "score vs error    Pearson r {} over images (image score vs mean node error)", f(s.image_r))?;
    if let Some(c) = calibration {
        let refs: Vec<&ImageAccuracy> = acc.iter().collect();
        let e: Vec<_> = refs.iter().map(|a| calibration::expected(c, a)).collect();
        let g = calibration::agreement(&e, &refs);
        writeln!(
            out,
            "calibrated        expected vs real error ({}): Pearson r {}, Spearman rho {}, over images r {}; mean expected {:.2} vs real {:.2} px, calibration error {:.2} px",
            if c.fitted_on_split(split) {
                "optimistic: fitted on this split; `calibrate` gives out-of-fold figures"
            } else {
                "fitted on another split: out of sample"
            },
            f(g.pearson_r),
            f(g.spearman_rho),
            f(g.image_r),
            g.mean_expected,
            g.mean_error,
            g.calibration_error
        )?;
    }
    Ok(())
}
