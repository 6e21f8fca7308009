//! `cxr-review infer INPUT... --out DIR`: landmarks with CheXmask-U uncertainty for every
//! image, one CSV each (`Node,Mean x,Mean y,Std x,Std y`), plus `summary.csv`.
//!
//! Re-running on the same folder skips images whose CSV is already there and keeps their
//! summary rows; an image that cannot be read is reported and skipped.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::batch::Shard;
use crate::landmarks::NUM_NODES;
use crate::model::weights::write_atomically;
use crate::model::{DeviceChoice, HybridGNet, Prediction, Sampling, predict_xray, select_device};
use crate::xray;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Images or folders of images.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder for the per-image CSVs and summary.csv (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Latent samples per image (1 or more).
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Seed of the latent noise; the same seed gives the same numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// HybridGNet weights: a PyTorch state dict (.pt/.pth) in the released layout, or
    /// .safetensors. Default: the model shipped in assets/ (or $CXR_WEIGHTS).
    #[arg(long)]
    pub weights: Option<PathBuf>,
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
    /// Add the DICOM patient name, ID, birth date and accession number to summary.csv.
    /// Without it no patient attribute is written anywhere.
    #[arg(long)]
    pub include_patient_data: bool,
    /// Process only shard K of N (0 ≤ K < N): the images whose file name hashes to K, a
    /// stable 1/N whatever the order or rerun. The summary is then
    /// `summary.shard-K-of-N.csv`; `cxr-review merge` joins the shards.
    #[arg(long, value_name = "K/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
}

/// The summary columns `--include-patient-data` adds.
pub const PATIENT_COLUMNS: [&str; 4] = ["patient_name", "patient_id", "patient_birth_date", "accession_number"];

/// `mean_expected_error`: the calibrated image score (mean expected node error, px), empty for
/// a model without calibration. `ctr_mean`, `ctr_sd`: the cardiothoracic ratio over the latent
/// samples; `ctr_above_0.5`: the cardiomegaly flag of the mean.
pub const SUMMARY_HEADER: [&str; 10] = [
    "image",
    "width",
    "height",
    "mean_node_std",
    "latent_sigma2_mean",
    "seconds",
    "mean_expected_error",
    "ctr_mean",
    "ctr_sd",
    "ctr_above_0.5",
];
pub use crate::formats::chexmask_u::{EXPECTED_ERROR_COLUMN, HEADER as NODE_HEADER};

pub fn run(args: Args) -> anyhow::Result<()> {
    let weights = &crate::model::shipped::resolve(args.weights.as_deref()).map_err(anyhow::Error::msg)?;
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let mut images = xray::expand_paths(&args.inputs)?;
    if images.is_empty() {
        bail!("no images found in the given inputs");
    }
    if let Some(shard) = args.shard {
        let all = images.len();
        images.retain(|p| shard.owns(p));
        eprintln!("shard {}/{}: {} of {all} images", shard.k, shard.n, images.len());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create output folder", args.out.display()))?;

    let selected = select_device(args.device)?;
    let mut model = HybridGNet::load(weights, &selected.device)?;
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
    eprintln!(
        "model: {} ({}), device: {}",
        weights.display(),
        model.describe(),
        selected.description
    );

    let summary_path = args.out.join(args.shard.map(|s| s.summary_name()).unwrap_or_else(|| "summary.csv".into()));
    let mut previous = read_summary(&summary_path)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut seen = HashSet::new();
    let (mut done, mut skipped, mut failed) = (0, 0, 0);

    let started = Instant::now();
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {elapsed_precise} eta {eta} {msg}").expect("valid template"),
    );
    for path in &images {
        let name = file_name(path);
        bar.set_message(name.clone());
        // The same stem the shards hash, so `merge` finds every table.
        let stem = crate::batch::stem(path);
        if !seen.insert(stem.clone()) {
            bar.println(format!("skipped {}: another input already writes {stem}.csv", path.display()));
            failed += 1;
            bar.inc(1);
            continue;
        }
        let csv_path = args.out.join(format!("{stem}.csv"));
        if csv_path.exists() {
            if let Some(row) = previous.remove(&name) {
                rows.push(row);
            }
            skipped += 1;
            bar.inc(1);
            continue;
        }
        let start = Instant::now();
        let result = xray::load(path).map_err(anyhow::Error::from).and_then(|img| {
            let p = predict_xray(&model, &img, Sampling::Random { samples: args.samples, seed: args.seed });
            write_atomically(&csv_path, &node_csv(&p)?)
                .with_context(|| format!("{}: cannot write", csv_path.display()))?;
            Ok((img.width, img.height, p, img.patient))
        });
        match result {
            Ok((w, h, p, patient)) => {
                let secs = start.elapsed().as_secs_f64();
                rows.push(vec![
                    name,
                    w.to_string(),
                    h.to_string(),
                    format!("{:.4}", p.score),
                    p.latent_sigma2_mean.to_string(),
                    format!("{secs:.3}"),
                    p.expected_score().map(|v| format!("{v:.4}")).unwrap_or_default(),
                    p.ctr.map(|c| format!("{:.4}", c.mean)).unwrap_or_default(),
                    p.ctr.map(|c| format!("{:.4}", c.sd)).unwrap_or_default(),
                    p.ctr.map(|c| (c.mean > crate::metrics::ctr::CARDIOMEGALY_CTR).to_string()).unwrap_or_default(),
                ]);
                if args.include_patient_data {
                    let pt = patient.unwrap_or_default();
                    rows.last_mut().expect("pushed").extend([pt.name, pt.id, pt.birth_date, pt.accession]);
                }
                done += 1;
            }
            Err(e) => {
                bar.println(format!("skipped {}: {e:#}", path.display()));
                failed += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut header = SUMMARY_HEADER.to_vec();
    if args.include_patient_data {
        header.extend(PATIENT_COLUMNS);
    }
    write_summary(&summary_path, &header, &rows)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{done} predicted in {secs:.1} s ({:.2} images/s), {skipped} already done, {failed} failed; results in {}",
        done as f64 / secs.max(1e-9),
        args.out.display()
    );
    if failed > 0 {
        bail!("{failed} of {} images could not be processed (see messages above)", images.len());
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// The CheXmask-U per-image table: one row per node, pixels of the original image.
pub fn node_csv(p: &Prediction) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // The paper's five columns, then the calibrated one when the model has a calibration.
    let expected = p.calibrated.as_ref().map(|c| c.expected_error.as_slice()).filter(|e| e.len() == NUM_NODES);
    let mut header = NODE_HEADER.to_vec();
    if expected.is_some() {
        header.push(EXPECTED_ERROR_COLUMN);
    }
    w.write_record(&header)?;
    for i in 0..NUM_NODES {
        let mut row = vec![
            i.to_string(),
            format!("{:.3}", p.mean[i][0]),
            format!("{:.3}", p.mean[i][1]),
            format!("{:.4}", p.std[i][0]),
            format!("{:.4}", p.std[i][1]),
        ];
        if let Some(e) = expected {
            row.push(format!("{:.4}", e[i]));
        }
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// Rows of an earlier summary.csv by image name; none when there is no file yet.
fn read_summary(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut out = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.with_context(|| format!("{}: malformed row", path.display()))?;
        let row: Vec<String> = rec.iter().map(String::from).collect();
        if let Some(name) = row.first() {
            out.insert(name.clone(), row);
        }
    }
    Ok(out)
}

fn write_summary(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for row in rows {
        // Rows of a summary written before a column was added are padded to today's header
        // (and patient columns of an earlier run with the flag dropped when run without it).
        let mut row = row.clone();
        row.resize(header.len(), String::new());
        w.write_record(&row)?;
    }
    write_atomically(path, &w.into_inner()?).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use image::{GrayImage, Luma};

    #[test]
    fn writes_tables_skips_unreadable_images_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let weights = dir.path().join("w.safetensors");
        let config = ModelConfig { channels: [4, 4, 8, 8, 8, 8], latents: 8, ..ModelConfig::released(64) };
        HybridGNet::random(&config, 1, &burn::tensor::Device::flex()).save(&weights).unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        GrayImage::from_fn(40, 30, |x, y| Luma([(x * 5 + y * 3) as u8])).save(images.join("a.png")).unwrap();
        GrayImage::from_fn(20, 50, |x, y| Luma([(x * 7 + y) as u8])).save(images.join("b.png")).unwrap();
        std::fs::write(images.join("broken.png"), b"not a png").unwrap();
        let out = dir.path().join("out");
        let args = || Args {
            inputs: vec![images.clone()],
            out: out.clone(),
            samples: 4,
            seed: 3,
            weights: Some(weights.clone()),
            device: DeviceChoice::Cpu,
            include_patient_data: false,
            shard: None,
            test_time_warps: None,
            no_companions: false,
            no_shape_correction: false,
            no_patch_refinement: false,
            no_contour_spacing: false,
        };

        let err = run(args()).unwrap_err().to_string();
        assert!(err.contains("1 of 3 images"), "{err}");
        let a = std::fs::read_to_string(out.join("a.csv")).unwrap();
        let lines: Vec<&str> = a.lines().collect();
        assert_eq!(lines.len(), 1 + NUM_NODES);
        assert_eq!(lines[0], "Node,Mean x,Mean y,Std x,Std y");
        assert!(lines[120].starts_with("119,"));
        assert!(!out.join("broken.csv").exists());
        let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        let rows: Vec<&str> = summary.lines().collect();
        assert_eq!(
            rows[0],
            "image,width,height,mean_node_std,latent_sigma2_mean,seconds,mean_expected_error,ctr_mean,ctr_sd,ctr_above_0.5"
        );
        assert_eq!(rows.len(), 3, "{summary}");
        // Uncalibrated weights: no expected error; a CTR (random weights make any shape).
        assert!(rows[1].split(',').nth(6) == Some("") && rows[2].split(',').nth(6) == Some(""), "{summary}");
        assert!(rows[1].starts_with("a.png,40,30,") && rows[2].starts_with("b.png,20,50,"), "{summary}");

        // Again: nothing is recomputed and the earlier summary rows are kept as they were.
        assert!(run(args()).is_err());
        assert_eq!(std::fs::read_to_string(out.join("summary.csv")).unwrap(), summary);

        // A removed table is recomputed, identically for the same seed.
        std::fs::remove_file(out.join("a.csv")).unwrap();
        assert!(run(args()).is_err());
        assert_eq!(std::fs::read_to_string(out.join("a.csv")).unwrap(), a);
        assert!(std::fs::read_dir(&out).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }

    #[test]
    fn a_missing_weights_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let img = crate::xray::phantom::chest_phantom();
        img.to_gray8(img.default_window()).save(dir.path().join("a.png")).unwrap();
        let missing = dir.path().join("missing.safetensors");
        let args = Args {
            inputs: vec![dir.path().join("a.png")],
            out: dir.path().join("o"),
            samples: 2,
            seed: 0,
            weights: Some(missing.clone()),
            device: DeviceChoice::Cpu,
            include_patient_data: false,
            shard: None,
            test_time_warps: None,
            no_companions: false,
            no_shape_correction: false,
            no_patch_refinement: false,
            no_contour_spacing: false,
        };
        let err = format!("{:#}", run(args).unwrap_err());
        assert!(err.contains("missing.safetensors"), "{err}");
    }
}
