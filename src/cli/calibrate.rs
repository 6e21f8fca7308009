//! `cxr-review calibrate --data DIR.. --out W`: fit the map from node std to expected node
//! error on annotated images, choose among the candidate maps by k-fold cross-validation over
//! images, and write the weights again with the calibration in their metadata.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::formats::write_atomically;
use crate::landmarks::NUM_NODES;
use crate::model::calibration::{NodeProfile, StdOf};
use crate::model::patch_error;
use crate::model::patch_refinement::{self, Accumulator, Patches};
use crate::model::uncertainty::Draws;
use crate::model::{
    DeviceChoice, HybridGNet, PatchRefinement, Prediction, Sampling, augmented, contour_spacing, refined_spread, select_device, shape_correction, shipped,
};
use crate::train::dataset;
use crate::validation::accuracy::{ImageAccuracy, score_prediction};
use crate::validation::calibration::{self, Agreement, Method};
use crate::validation::{Annotated, load_sample};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with landmarks.csv and images (repeatable).
    #[arg(long, required = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub data: Vec<PathBuf>,
    /// The split the map is fitted on: never the one the model was trained on, whose errors
    /// are smaller than a new image's.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// HybridGNet weights [default: the shipped model].
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Another trained model (weights file, repeatable) whose landmarks are averaged with the
    /// model's on the image and the same warps from now on: written into the calibrated file
    /// beside the model's own, so the map is fitted on the averaged landmarks' errors. The std
    /// stays the model's own. A companion the weights already hold is kept (see --no-companions).
    #[arg(long, value_name = "WEIGHTS")]
    pub companion: Vec<PathBuf>,
    /// Where to write the calibrated weights (may be the input file).
    #[arg(long)]
    pub out: PathBuf,
    /// `auto` (the best out-of-fold Pearson r among the maps to px: every one but raw) or one
    /// of: raw, organ-scale, organ-isotonic, node-scale, organ-isotonic-node-factor, node-profile.
    #[arg(long, default_value = "auto")]
    pub method: String,
    /// The split on which `node-profile` measures each node's usual error and std (the model's
    /// training images: many more than --split has; a held-out model's test rows stay out),
    /// or `none`.
    #[arg(long, default_value = "train")]
    pub profile_split: String,
    /// Which spread of the samples the map reads: `auto` (for a model with a patch refinement,
    /// whichever of the two scores the better out-of-fold Pearson r), `samples` (the samples'
    /// own, re-spaced with the landmarks) or `refined-samples` (carried through the refinement
    /// as the landmarks are; needs the refinement).
    #[arg(long, default_value = "auto")]
    pub spread: String,
    /// Cross-validation folds over images.
    #[arg(long, default_value_t = 7)]
    pub folds: usize,
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Every node's std and error as CSV (image,node,std px 1024,error px 1024).
    #[arg(long, value_name = "CSV")]
    pub nodes: Option<PathBuf>,
    /// Also measure test-time augmentation as uncertainty: the spread of the landmarks over
    /// this many small warps of every image, reported beside the latent std (the calibration
    /// maps the latter).
    #[arg(long, default_value_t = 0)]
    pub warps: usize,
    /// Place the landmarks by averaging over this many warps of every image besides the image
    /// itself, fit the map on those landmarks' errors, and record the number in the weights, so
    /// that every prediction with them is made the same way (0: the image alone, METHOD.md §4)
    /// [default: what the weights record].
    #[arg(long)]
    pub test_time_warps: Option<usize>,
    /// Predict with the weights' first model alone, leaving out the companion models they
    /// hold (whose landmarks are otherwise averaged in).
    #[arg(long)]
    pub no_companions: bool,
    /// Fit no shape correction (by default one is fitted on the --profile-split images and
    /// moves every prediction's landmarks before the patch refinement; see `assets/README.md`,
    /// "Shape correction").
    #[arg(long)]
    pub no_shape_correction: bool,
    /// Fit no patch refinement (by default one is fitted on the --profile-split images'
    /// reference landmarks and moves every prediction's nodes after the shape correction; see
    /// `assets/README.md`, "Patch refinement").
    #[arg(long)]
    pub no_patch_refinement: bool,
    /// Leave the nodes' spacing along their contours as the steps before leave it (by default
    /// every prediction's nodes are re-spaced last, as the landmark protocol spaces them, and
    /// the map is fitted on those landmarks; see `assets/README.md`, "Contour spacing").
    #[arg(long)]
    pub no_contour_spacing: bool,
    /// Neighbours on each side whose moves along the contour every refined node's is averaged
    /// with: `auto` (the radius of 0 to 3 with the lowest out-of-fold error on the
    /// --profile-split images, a larger one kept only where it gains ≥ 0.05 px) or a number
    /// from 0 to 8 (see `assets/README.md`, "Moves shared along the contour")
    #[arg(long, default_value = "auto")]
    pub along_smoothing: String,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

/// Cross-validation folds over the profile images that choose the shape correction's ridge
/// weight (and give the profile its honest, out-of-fold errors).
const CORRECTION_FOLDS: usize = 5;

pub fn run(args: Args) -> anyhow::Result<()> {
    print!("{}", report(args)?);
    Ok(())
}

/// Calibrate as `run` does and return the report it prints.
pub fn report(args: Args) -> anyhow::Result<String> {
    let chosen = match args.method.as_str() {
        "auto" => None,
        s => Some(Method::parse(s).with_context(|| format!("--method {s}: unknown (see --help)"))?),
    };
    let spread = match args.spread.as_str() {
        "auto" => None,
        "samples" => Some(StdOf::Samples),
        "refined-samples" if args.no_patch_refinement => anyhow::bail!("--spread refined-samples needs the patch refinement"),
        "refined-samples" => Some(StdOf::RefinedSamples),
        s => anyhow::bail!("--spread {s}: expected auto, samples or refined-samples"),
    };
    let smoothings: Vec<usize> = match args.along_smoothing.as_str() {
        "auto" => patch_refinement::SMOOTHINGS.to_vec(),
        s => match s.parse::<usize>() {
            Ok(r) if r <= patch_refinement::MAX_SMOOTHING => vec![r],
            _ => anyhow::bail!("--along-smoothing {s}: expected auto or a number from 0 to {}", patch_refinement::MAX_SMOOTHING),
        },
    };
    let weights = shipped::resolve(args.weights.as_deref()).map_err(anyhow::Error::msg)?;
    let device = select_device(args.device)?;
    let mut model = HybridGNet::load(&weights, &device.device).with_context(|| format!("{}", weights.display()))?;
    model.override_test_time_warps(args.test_time_warps).map_err(anyhow::Error::msg)?;
    if args.no_companions {
        model.drop_companions();
    }
    // Fitted anew below (or left out): predictions here are made without it.
    model.set_shape_correction(None);
    model.set_patch_refinement(None);
    // The steps that move the landmarks are applied by hand below; the spacing flag is set
    // now because it also makes each prediction carry the re-spaced samples' std, which the
    // map is fitted on.
    let spacing = !args.no_contour_spacing;
    model.contour_spacing = spacing;
    for path in &args.companion {
        let c = HybridGNet::load(path, &device.device).with_context(|| format!("{}", path.display()))?;
        model.add_companion(c).map_err(|e| anyhow::anyhow!("--companion {}: {e}", path.display()))?;
    }
    let tta = model.test_time_warps;
    let samples = dataset::read_split_sets(&args.data, &args.split)?;
    anyhow::ensure!(samples.len() >= 4, "split `{}` has {} images: too few to fit a calibration", args.split, samples.len());
    // Data without a training split (only the images to fit on) still calibrates, without
    // the node profile; the report says why.
    let mut profile_note = None;
    let profile_samples = match args.profile_split.as_str() {
        "none" => Vec::new(),
        s if s == args.split => anyhow::bail!("--profile-split {s}: the profile must come from other images than --split"),
        s => dataset::read_split_sets_holding_out(&args.data, s, model.held_out_test).unwrap_or_else(|e| {
            profile_note = Some(format!("node profile: left out ({e:#})"));
            Vec::new()
        }),
    };
    if chosen == Some(Method::NodeProfile) && profile_samples.is_empty() {
        anyhow::bail!("--method node-profile needs --profile-split");
    }
    let sampling = Sampling::Random { samples: args.samples.max(2), seed: args.seed };
    let bar = ProgressBar::new((samples.len() + profile_samples.len()) as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed}<{eta}]").expect("template"));
    // Every image of `list` loaded, predicted with `warps` test-time warps and handed to `each`.
    let predict_each = |list: &[dataset::Sample],
                        warps: usize,
                        each: &mut dyn FnMut(&Annotated, augmented::AugmentedPrediction)|
     -> anyhow::Result<()> {
        for s in list {
            let a = load_sample(s)?;
            bar.set_message(a.grey.name.clone());
            let g = &a.grey;
            each(&a, augmented::predict_augmented(&model, &g.pixels, g.width, g.height, sampling, warps));
            bar.inc(1);
        }
        Ok(())
    };
    let score = |a: &Annotated, p: &crate::model::Prediction| {
        let g = &a.grey;
        score_prediction(&g.name, p, &a.landmarks, g.width, g.height)
    };
    // The profile images' placed landmarks and references, kept to fit the shape correction.
    // With the refinement's normal equations, one accumulator per fold.
    let mut placed = Vec::new();
    let mut folds = vec![Accumulator::default(); CORRECTION_FOLDS];
    predict_each(&profile_samples, tta, &mut |a, ap| {
        let g = &a.grey;
        let prediction = ap.averaged(tta);
        let patches = (!args.no_patch_refinement).then(|| Patches::new(&g.pixels, g.width, g.height, &patch_refinement::SCALES));
        if let Some(patches) = &patches {
            let lb = prediction.letterbox;
            let i = placed.len();
            folds[i % CORRECTION_FOLDS].add(patches, &a.landmarks.map(|q| lb.to_model(q)), i as u64);
        }
        let draws = ap.draws;
        placed.push(Placed { name: g.name.clone(), reference: a.landmarks, width: g.width, height: g.height, prediction, patches, draws });
    })?;
    let profile_desc = format!(
        "{} ({})",
        dataset::describe_sets(&profile_samples),
        crate::model::calibration::fitted_images(profile_samples.len(), &args.profile_split)
    );
    let (correction, correction_note) = match (args.no_shape_correction, placed.is_empty()) {
        (true, _) => (None, None),
        (false, true) => (None, Some("shape correction: none (it is fitted on the --profile-split images)".to_string())),
        (false, false) => {
            let fitted_on = format!(
                "{profile_desc}, N = {}, seed {}, {tta} test-time warps, {} companion model(s)",
                args.samples,
                args.seed,
                model.companions().len()
            );
            match fit_shape_correction(&mut placed, fitted_on) {
                Ok(cv) => (Some(cv), None),
                Err(e) => (None, Some(format!("shape correction: none ({e})"))),
            }
        }
    };
    let (refinement, refinement_note) = match (args.no_patch_refinement, placed.is_empty()) {
        (true, _) => (None, None),
        (false, true) => (None, Some("patch refinement: none (it is fitted on the --profile-split images)".to_string())),
        (false, false) => {
            let fitted_on = format!("{profile_desc}: reference landmarks displaced at random");
            match fit_patch_refinement(&mut placed, &folds, fitted_on, spacing, &smoothings) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(format!("patch refinement: none ({e})"))),
            }
        }
    };
    drop(folds);
    // Re-spacing fits nothing, so its gain on the profile images is an honest one.
    let spacing_gain = (spacing && !placed.is_empty()).then(|| {
        let before = mean_placed_error_1024(&placed);
        for p in &mut placed {
            contour_spacing::apply(&mut p.prediction);
        }
        (before, mean_placed_error_1024(&placed))
    });
    // The error the patches lead one to expect, fitted on the landmarks as placed (each image
    // refined out of fold) against their references.
    let mut refinement = refinement;
    let error_note = match refinement.as_mut() {
        Some(r) => {
            let images: Vec<patch_error::Placement> = placed
                .iter()
                .filter_map(|p| {
                    let lb = p.prediction.letterbox;
                    let patches = p.patches.as_ref()?;
                    Some(patch_error::Placement { patches, placed: p.prediction.mean.map(|q| lb.to_model(q)), reference: p.reference.map(|q| lb.to_model(q)) })
                })
                .collect();
            match patch_error::fit(&images, &r.fit.scales, CORRECTION_FOLDS, format!("{profile_desc}: the landmarks as placed, refined out of fold")) {
                Ok(e) => {
                    let note = format!(
                        "expected error from the patches: fitted on {} ({} images); {CORRECTION_FOLDS}-fold Pearson r there by ridge weight: {}; kept {}",
                        e.fit.fitted_on,
                        e.fit.images,
                        patch_error::LAMBDAS.iter().zip(&e.fit.r_by_lambda).map(|(l, r)| format!("{l}: {r:.3}")).collect::<Vec<_>>().join(", "),
                        e.fit.lambda
                    );
                    r.error = Some(e);
                    Some(note)
                }
                Err(e) => Some(format!("expected error from the patches: none ({e})")),
            }
        }
        None => None,
    };
    for p in &mut placed {
        p.patches = None;
    }
    // Where the samples were carried through the refinement, the maps are fitted on either
    // spread, the samples' own and the refined samples', and the better kept.
    let spreads: &[StdOf] = match (spread, refinement.is_some()) {
        (None, true) => &[StdOf::Samples, StdOf::RefinedSamples],
        (None | Some(StdOf::Samples), _) => &[StdOf::Samples],
        (Some(StdOf::RefinedSamples), true) => &[StdOf::RefinedSamples],
        (Some(StdOf::RefinedSamples), false) => {
            anyhow::bail!("--spread refined-samples: no patch refinement was fitted ({})", refinement_note.as_deref().unwrap_or("none"))
        }
    };
    let placed_scores: Vec<ImageAccuracy> =
        placed.iter().map(|p| score_prediction(&p.name, &p.prediction, &p.reference, p.width, p.height)).collect();
    let profiles: Vec<_> = spreads
        .iter()
        .map(|&of| {
            let profiled: Vec<ImageAccuracy> =
                placed.iter().zip(&placed_scores).map(|(p, a)| with_std_of(a.clone(), &p.prediction, of, p.width, p.height)).collect();
            calibration::measure_profile(&profiled.iter().collect::<Vec<_>>(), profile_desc.clone())
        })
        .collect();
    // Every spread's maps, and where the refinement expects errors from the patches, its node
    // profile reading them too: (spread index, profile).
    // (Only the node profile reads them: a forced other map would fit the same map twice.)
    let reads_patches =
        refinement.as_ref().is_some_and(|r| r.error.is_some()) && chosen.is_none_or(|m| m == Method::NodeProfile);
    let mut candidates: Vec<(usize, Option<NodeProfile>)> = Vec::new();
    for (i, profile) in profiles.iter().enumerate() {
        candidates.push((i, profile.clone()));
        if let (true, Some(p)) = (reads_patches, profile) {
            candidates.push((i, Some(NodeProfile { typical_from_patches: true, ..p.clone() })));
        }
    }
    let describe = |c: &(usize, Option<NodeProfile>)| {
        let of = spreads[c.0].describe();
        match &c.1 {
            Some(p) if p.typical_from_patches => format!("std of the {of}, the node profile reading the patches' expected error"),
            _ => format!("std of the {of}"),
        }
    };
    let mut scored_by = vec![Vec::new(); spreads.len()];
    let mut image_alone = Vec::new();
    let mut model_alone = Vec::new();
    let mut uncorrected = Vec::new();
    let mut corrected_only = Vec::new();
    let mut refined_only = Vec::new();
    let mut warp_std = Vec::new();
    predict_each(&samples, args.warps.max(tta), &mut |a, ap| {
        let to_1024 = 1024.0 / a.grey.width.max(a.grey.height) as f64;
        warp_std.push(ap.warp_std(args.warps).map(|v| v as f64 * to_1024));
        let mut p = ap.averaged(tta);
        uncorrected.push(score(a, &p));
        if let Some(cv) = &correction {
            cv.correction.apply(&mut p);
        }
        corrected_only.push(score(a, &p));
        let refined = refinement.as_ref().map(|r| (r, r.patches(&a.grey.pixels, a.grey.width, a.grey.height)));
        if let Some((r, patches)) = &refined {
            let placed = p.mean;
            r.apply(&mut p, patches);
            refined_spread::set(&mut p, &ap.draws, &placed, spacing, |q| r.refine(patches, q));
        }
        refined_only.push(score(a, &p));
        if spacing {
            contour_spacing::apply(&mut p);
        }
        if let Some((r, patches)) = &refined {
            if let Some(e) = &r.error {
                crate::model::uncertainty::set_patch_error(&mut p, e, patches);
            }
        }
        let placed_score = score(a, &p);
        for (scored, &of) in scored_by.iter_mut().zip(spreads) {
            scored.push(with_std_of(placed_score.clone(), &p, of, a.grey.width, a.grey.height));
        }
        image_alone.push(score(a, &ap.prediction));
        model_alone.push(score(a, &ap.without_companions(tta)));
    })?;
    bar.finish_and_clear();
    let choices: Vec<Choice> = candidates
        .iter()
        .map(|(i, profile)| choose_and_fit(&scored_by[*i].iter().collect::<Vec<_>>(), chosen, args.folds, profile.as_ref()))
        .collect();
    let chosen_r = |c: &Choice| c.agreements.iter().find(|a| a.0 == c.method).and_then(|a| a.1.pearson_r).unwrap_or(-1.0);
    let best = (0..choices.len()).max_by(|&a, &b| chosen_r(&choices[a]).total_cmp(&chosen_r(&choices[b]))).expect("a spread");
    let std_of = spreads[candidates[best].0];
    let mut tables = String::new();
    for (c, candidate) in choices.iter().zip(&candidates) {
        if candidates.len() > 1 {
            writeln!(tables, "on the {}:", describe(candidate))?;
        }
        tables.push_str(&c.table);
    }
    let best_description = describe(&candidates[best]);
    let mut report = choices.into_iter().nth(best).expect("chosen spread");
    report.table = tables;
    if !report.fitted.profile.as_ref().is_some_and(|p| p.typical_from_patches) {
        // Nothing reads it: a file carries only what its predictions use.
        if let Some(r) = refinement.as_mut() {
            r.error = None;
        }
    }
    let scored = scored_by.swap_remove(candidates[best].0);
    let images: Vec<&ImageAccuracy> = scored.iter().collect();
    if args.warps > 0 {
        // Predictive uncertainty from the warps, alone and added to the latent spread, as
        // raw (uncalibrated) scores: does it point at error better than the latent std?
        let total: Vec<[f64; NUM_NODES]> = scored
            .iter()
            .zip(&warp_std)
            .map(|(a, w)| std::array::from_fn(|n| a.node_std_1024[n].hypot(w[n])))
            .collect();
        for (name, e) in [(format!("warp std ({} warps)", args.warps), &warp_std), ("latent + warp std".to_string(), &total)] {
            let g = calibration::agreement(e, &images);
            report.table.push_str(&table_row(&name, &g));
        }
    }
    let sets = dataset::describe_sets(&samples);
    let mut placed_desc = match tta {
        0 => "landmarks from the image alone".to_string(),
        k => format!("landmarks averaged over the image and {k} test-time warps"),
    };
    match model.companions().len() {
        0 => {}
        n => placed_desc += &format!(" and {n} companion model(s)"),
    }
    if correction.is_some() {
        placed_desc += ", shape-corrected";
    }
    if refinement.is_some() {
        placed_desc += ", patch-refined";
    }
    if spacing {
        placed_desc += ", contour-spaced";
    }
    let fitted_on = format!(
        "{sets} ({}), N = {}, seed {}, {placed_desc}; legend rows out of fold ({}-fold)",
        crate::model::calibration::fitted_images(samples.len(), &args.split),
        args.samples,
        args.seed,
        args.folds
    );
    let mut c = calibration::finish(report.fitted.clone(), &report.oof, &images, fitted_on);
    c.std_of = std_of;
    let mut out = String::new();
    writeln!(out, "model: {} ({}, {})", weights.display(), model.describe(), device.description)?;
    let corrected = correction.as_ref().map(|_| corrected_only.as_slice());
    let refined = refinement.as_ref().map(|_| refined_only.as_slice());
    let spaced = spacing.then_some(scored.as_slice());
    out.push_str(&placement_line(&image_alone, &model_alone, &uncorrected, corrected, refined, spaced, tta, model.companions().len()));
    if let Some(note) = &correction_note {
        writeln!(out, "{note}")?;
    }
    if let Some(cv) = &correction {
        let f = &cv.correction.fit;
        let tried: Vec<String> = cv.errors_1024.iter().map(|(l, e)| format!("{l}: {e:.2}")).collect();
        writeln!(
            out,
            "shape correction: fitted on {}; {CORRECTION_FOLDS}-fold error there {:.2} -> {:.2} px (ridge weight {}; tried {})",
            f.fitted_on,
            f.error_before_1024.unwrap_or(f64::NAN),
            f.error_after_1024.unwrap_or(f64::NAN),
            f.lambda,
            tried.join(", ")
        )?;
    }
    if let Some(note) = &refinement_note {
        writeln!(out, "{note}")?;
    }
    if let Some(r) = &refinement {
        let f = &r.fit;
        writeln!(
            out,
            "patch refinement: fitted on {} ({} images, the patches and {} random features of them); {CORRECTION_FOLDS}-fold error of the corrected landmarks there {:.2} -> {:.2} px in {} pass(es) (after 1, 2, … passes{}: {}; a pass is kept when it gains ≥ {} px)",
            f.fitted_on,
            f.images,
            f.features,
            f.error_before_1024.unwrap_or(f64::NAN),
            f.error_after_1024.unwrap_or(f64::NAN),
            f.passes,
            if spacing { ", re-spaced" } else { "" },
            f.error_by_passes_1024.iter().map(|e| format!("{e:.2}")).collect::<Vec<_>>().join(", "),
            patch_refinement::MIN_PASS_GAIN_1024
        )?;
        writeln!(
            out,
            "patch refinement: moves along the contour averaged over ±{} neighbours ({}-fold error by radius, each at its best passes: {}; a larger radius is kept when it gains ≥ {} px)",
            f.along_smoothing,
            CORRECTION_FOLDS,
            f.error_by_smoothing_1024.iter().map(|(r, e)| format!("{r}: {e:.2}")).collect::<Vec<_>>().join(", "),
            patch_refinement::MIN_PASS_GAIN_1024
        )?;
    }
    if let Some(note) = &error_note {
        writeln!(out, "{note}")?;
    }
    if let Some((before, after)) = spacing_gain {
        writeln!(out, "contour spacing: error of the placed landmarks on the --profile-split images {before:.2} -> {after:.2} px")?;
    }
    out.push_str(&report.table);
    writeln!(out, "chosen: {} ({})", report.method.name(), if chosen.is_some() { "--method" } else { "best out-of-fold Pearson r among the maps to px" })?;
    if candidates.len() > 1 {
        writeln!(out, "on the {best_description} (the best out-of-fold Pearson r of {} candidates)", candidates.len())?;
    }
    if let Some(note) = &profile_note {
        writeln!(out, "{note}")?;
    }
    if let Some(p) = &c.profile {
        writeln!(
            out,
            "node profile: usual errors and stds of {}; exponents: node std {}, image mean std {}",
            p.measured_on, p.node_exponent, p.image_exponent
        )?;
    }
    writeln!(out, "legend (expected error -> real error, px at 1024, out of fold):")?;
    for r in &c.reliability {
        writeln!(out, "  {:>5.1}-{:<5.1} {:>6} nodes: expected {:>5.1}, real {:>5.1}", r.lo, r.hi, r.nodes, r.mean_expected, r.mean_error)?;
    }
    model.set_calibration(Some(c));
    model.set_shape_correction(correction.map(|cv| cv.correction));
    model.set_patch_refinement(refinement);
    model.save(&args.out).with_context(|| format!("{}", args.out.display()))?;
    writeln!(out, "wrote {}", args.out.display())?;
    if let Some(path) = &args.nodes {
        let mut csv = String::from("image,node,std px 1024,error px 1024,warp std px 1024,patch expected error px 1024\n");
        for (a, w) in scored.iter().zip(&warp_std) {
            for n in 0..NUM_NODES {
                let patch = a.node_patch_error_1024.map_or(String::new(), |e| format!("{:.4}", e[n]));
                writeln!(csv, "{},{n},{:.4},{:.4},{:.4},{patch}", a.name, a.node_std_1024[n], a.node_error_1024[n], w[n])?;
            }
        }
        write_atomically(path, csv.as_bytes())?;
        writeln!(out, "node table: {}", path.display())?;
    }
    Ok(out)
}

/// `a` with the node std of `p`'s `of` spread, px at 1024 (`p` being of a `width`×`height`
/// image).
fn with_std_of(a: ImageAccuracy, p: &Prediction, of: StdOf, width: u32, height: u32) -> ImageAccuracy {
    let to_1024 = 1024.0 / width.max(height).max(1) as f64;
    ImageAccuracy { node_std_1024: std::array::from_fn(|n| p.std_of(of, n) as f64 * to_1024), ..a }
}

/// An image of the profile split as the model placed its landmarks, beside its reference.
struct Placed {
    name: String,
    reference: [crate::landmarks::Point; NUM_NODES],
    width: u32,
    height: u32,
    prediction: Prediction,
    /// The image as the patch refinement reads it (dropped once the refinement is fitted).
    patches: Option<Patches>,
    /// The image's latent samples, carried through the refinement for their spread.
    draws: Draws,
}

/// Mean node error of a placed image's landmarks, px at 1024 (the letterboxed side).
fn placed_error_1024(p: &Placed) -> f64 {
    placed_error_1024_of(p, &p.prediction.mean)
}

/// Mean node error of `points` (image pixels) against a placed image's reference, px at 1024.
fn placed_error_1024_of(p: &Placed, points: &[crate::landmarks::Point; NUM_NODES]) -> f64 {
    let lb = p.prediction.letterbox;
    let model_frame = |points: &[crate::landmarks::Point; NUM_NODES]| shape_correction::flatten(&points.map(|q| lb.to_model(q)));
    shape_correction::mean_distance(&model_frame(points), &model_frame(&p.reference)) * 1024.0
}

/// [`placed_error_1024`] averaged over the placed images.
fn mean_placed_error_1024(placed: &[Placed]) -> f64 {
    placed.iter().map(placed_error_1024).sum::<f64>() / placed.len() as f64
}

/// Fit the patch refinement on every placed image's reference, choose its passes, and move
/// each image's (corrected) landmarks and samples by a refinement fitted without it (the
/// samples for their spread, [`refined_spread`]): the passes and the node profile are then
/// judged on errors and spreads a new image would have. The passes are judged on the
/// landmarks as predictions place them: re-spaced afterwards when `respaced`, as the spacing
/// keeps the anchors where the refinement left them and places the rest from them.
/// `folds[f]` holds the images `i` with `i % folds == f`.
fn fit_patch_refinement(
    placed: &mut [Placed],
    folds: &[Accumulator],
    fitted_on: String,
    respaced: bool,
    smoothings: &[usize],
) -> Result<PatchRefinement, String> {
    let k = folds.len();
    // Every fit first, so that a failure leaves every image as it was.
    let mut out_of_fold = (0..k)
        .map(|f| Accumulator::merged(folds.iter().enumerate().filter(|(g, _)| *g != f).map(|(_, a)| a)).solve(String::new()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut r = Accumulator::merged(folds).solve(fitted_on)?;
    let before = mean_placed_error_1024(placed);
    let patches: Vec<Patches> = placed.iter_mut().map(|p| p.patches.take().expect("patches of every placed image")).collect();
    // Each image's landmarks after 1, 2, … passes (image pixels) of its out-of-fold
    // refinement, as that refinement's smoothing along the contour stands.
    let by_pass = |out_of_fold: &[PatchRefinement]| -> Vec<Vec<[crate::landmarks::Point; NUM_NODES]>> {
        placed
            .iter()
            .zip(&patches)
            .enumerate()
            .map(|(i, (p, patches))| {
                let lb = p.prediction.letterbox;
                let mut q = p.prediction.mean.map(|q| lb.to_model(q));
                (0..patch_refinement::MAX_PASSES)
                    .map(|_| {
                        q = out_of_fold[i % k].refine_once(patches, &q);
                        q.map(|q| lb.to_image(q))
                    })
                    .collect()
            })
            .collect()
    };
    let mean_error = |moved: &[Vec<[crate::landmarks::Point; NUM_NODES]>], pass: usize, spaced: bool| {
        let error = |(p, moved): (&Placed, &Vec<[crate::landmarks::Point; NUM_NODES]>)| {
            let q = if spaced { contour_spacing::respace(&moved[pass]) } else { moved[pass] };
            placed_error_1024_of(p, &q)
        };
        placed.iter().zip(moved).map(error).sum::<f64>() / placed.len() as f64
    };
    // Every radius with its own best passes, then the radius.
    let mut tried = Vec::new();
    for &radius in smoothings {
        out_of_fold.iter_mut().for_each(|f| f.fit.along_smoothing = radius);
        let moved = by_pass(&out_of_fold);
        let errors: Vec<f64> = (0..patch_refinement::MAX_PASSES).map(|pass| mean_error(&moved, pass, respaced)).collect();
        let passes = patch_refinement::choose_passes(&errors);
        tried.push((errors, passes, moved));
    }
    let error_by_smoothing: Vec<(usize, f64)> = smoothings.iter().zip(&tried).map(|(&r, (errors, passes, _))| (r, errors[passes - 1])).collect();
    let radius = patch_refinement::choose_smoothing(&error_by_smoothing);
    let chosen = smoothings.iter().position(|&s| s == radius).expect("a radius tried");
    let (errors, passes, by_pass) = tried.swap_remove(chosen);
    drop(tried);
    out_of_fold.iter_mut().for_each(|f| f.fit.along_smoothing = radius);
    r.fit.along_smoothing = radius;
    r.fit.error_by_smoothing_1024 = error_by_smoothing;
    r.fit.error_before_1024 = Some(before);
    r.fit.error_after_1024 = Some(mean_error(&by_pass, passes - 1, false));
    r.fit.passes = passes;
    r.fit.error_by_passes_1024 = errors;
    for (i, ((p, moved), patches)) in placed.iter_mut().zip(&by_pass).zip(&patches).enumerate() {
        let fold = &out_of_fold[i % k];
        let before = p.prediction.mean;
        refined_spread::set(&mut p.prediction, &p.draws, &before, respaced, |q| fold.refine_passes(patches, q, passes));
        p.prediction.move_mean(moved[passes - 1]);
        p.prediction.patch_refined = true;
    }
    for (p, patches) in placed.iter_mut().zip(patches) {
        p.patches = Some(patches);
    }
    Ok(r)
}

/// Fit the shape correction on the placed images (model frame, ridge weight by
/// cross-validation) and replace each one's landmarks by the out-of-fold corrected ones: the
/// node profile is then measured on errors of landmarks corrected by a fit that did not see
/// them, as a new image's are.
fn fit_shape_correction(placed: &mut [Placed], fitted_on: String) -> Result<shape_correction::CrossValidated, String> {
    let model_frame = |p: &Placed| {
        let lb = p.prediction.letterbox;
        (shape_correction::flatten(&p.prediction.mean.map(|q| lb.to_model(q))), shape_correction::flatten(&p.reference.map(|q| lb.to_model(q))))
    };
    let (x, t): (Vec<_>, Vec<_>) = placed.iter().map(model_frame).unzip();
    let cv = shape_correction::cross_validate(&x, &t, CORRECTION_FOLDS, fitted_on)?;
    for ((p, q), before) in placed.iter_mut().zip(&cv.out_of_fold).zip(&x) {
        if q != before {
            let lb = p.prediction.letterbox;
            p.prediction.mean = shape_correction::unflatten(q).map(|q| lb.to_image(q));
            p.prediction.shape_corrected = true;
        }
    }
    Ok(cv)
}

/// Mean node error and Dice of the landmarks on the image alone, averaged over the warps
/// (with test-time warps) and with the companions' averaged in (with companions): what each
/// averaging gains on these images.
fn placement_line(
    alone: &[ImageAccuracy],
    model_alone: &[ImageAccuracy],
    averaged: &[ImageAccuracy],
    corrected: Option<&[ImageAccuracy]>,
    refined: Option<&[ImageAccuracy]>,
    spaced: Option<&[ImageAccuracy]>,
    warps: usize,
    companions: usize,
) -> String {
    let summary = |v: &[ImageAccuracy]| {
        let n = v.len().max(1) as f64;
        let mean = |f: fn(&ImageAccuracy) -> f64| v.iter().map(f).sum::<f64>() / n;
        format!(
            "{:.2} px, Dice lungs {:.4} heart {:.4}",
            mean(ImageAccuracy::mean_error_1024),
            mean(|a| a.dice_lungs),
            mean(|a| a.dice_heart)
        )
    };
    let mut line = format!("landmarks from the image alone: {}", summary(alone));
    if warps > 0 {
        line += &format!("; averaged over {warps} test-time warps: {}", summary(model_alone));
    }
    if companions > 0 {
        line += &format!("; with {companions} companion model(s): {}", summary(averaged));
    }
    if let Some(c) = corrected {
        line += &format!("; shape-corrected: {}", summary(c));
    }
    if let Some(r) = refined {
        line += &format!("; patch-refined: {}", summary(r));
    }
    if let Some(r) = spaced {
        line += &format!("; contour-spaced: {}", summary(r));
    }
    line + "\n"
}

/// The cross-validated comparison and the chosen map, fitted on every image.
pub struct Choice {
    pub method: Method,
    pub fitted: crate::model::Calibration,
    /// The chosen method's out-of-fold expected errors.
    pub oof: Vec<[f64; NUM_NODES]>,
    pub table: String,
    pub agreements: Vec<(Method, Agreement)>,
}

/// One line of the comparison table.
fn table_row(name: &str, g: &Agreement) -> String {
    let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.3}"));
    format!(
        "{:<30} {:>9} {:>10} {:>9} {:>9.2} px {:>6.1}/{:.1} px\n",
        name,
        f(g.pearson_r),
        f(g.spearman_rho),
        f(g.image_r),
        g.calibration_error,
        g.mean_expected,
        g.mean_error
    )
}

/// Compare every method out of fold and fit `chosen` (or the one with the best pooled r).
/// [`Method::NodeProfile`] takes part only with a `profile`.
pub fn choose_and_fit(
    images: &[&ImageAccuracy],
    chosen: Option<Method>,
    folds: usize,
    profile: Option<&crate::model::calibration::NodeProfile>,
) -> Choice {
    let mut table = format!(
        "{} images, {folds}-fold cross-validation by image (each image scored by a map fitted without it)\n{:<30} {:>9} {:>10} {:>9} {:>12} {:>14}\n",
        images.len(),
        "method",
        "Pearson r",
        "Spearman",
        "image r",
        "calib. err",
        "mean exp/real"
    );
    let mut agreements = Vec::new();
    let mut oofs = Vec::new();
    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| *m != Method::NodeProfile || profile.is_some()).collect();
    for &m in &methods {
        let oof = calibration::out_of_fold(m, images, folds, profile);
        let g = calibration::agreement(&oof, images);
        table.push_str(&table_row(m.name(), &g));
        agreements.push((m, g));
        oofs.push(oof);
    }
    let best = chosen
        .filter(|m| methods.contains(m))
        .or_else(|| calibration::auto_choice(&agreements))
        .unwrap_or(Method::Raw);
    let k = methods.iter().position(|m| *m == best).expect("method listed");
    Choice { method: best, fitted: calibration::fit(best, images, profile), oof: oofs.swap_remove(k), table, agreements }
}
