//! `cxr-review eval --pred P.csv --ref R.csv [--out report.csv] [--plots DIR]`: score one
//! CheXmask file against another as the CheXmask authors did (METHOD.md §6), image by
//! image, with a summary on stdout. `--pred` may also be a CheXmask-U folder written by
//! `infer`; `--uncertainty DIR` relates the prediction's node uncertainty to its error.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::formats::chexmask::ChexmaskTable;
use crate::formats::chexmask_u::{self, NodeTable};
use crate::formats::matching::match_names;
use crate::formats::write_atomically;
use crate::landmarks::{NUM_NODES, Organ};
use crate::metrics::correlation::{pearson, spearman};
use crate::metrics::evaluation::{EvalOptions, Evaluation, ImageScores, MaskChoice, MaskSource, evaluate};
use crate::metrics::landmark_error::ErrorSummary;
use crate::metrics::reliability::{ReliabilityBin, reliability_table};
use crate::metrics::stats::describe;
use crate::plots;
use crate::xray::PixelSpacing;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The segmentation to score: a CheXmask CSV, or a CheXmask-U folder written by `infer`.
    #[arg(long)]
    pub pred: PathBuf,
    /// The reference segmentation: a CheXmask CSV.
    #[arg(long = "ref", value_name = "REF")]
    pub reference: PathBuf,
    /// Write the per-image scores to this CSV.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write PNG plots into this folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// CheXmask-U folder with the prediction's per-image node tables (`<id>.csv`), in the
    /// same coordinates as the prediction's landmarks: adds uncertainty-vs-error results.
    #[arg(long, value_name = "DIR")]
    pub uncertainty: Option<PathBuf>,
    /// Pixel spacing of the landmark coordinates, mm: one value, or ROW,COL. Adds node errors in mm.
    #[arg(long, value_name = "MM", value_parser = parse_spacing)]
    pub spacing_mm: Option<PixelSpacing>,
    /// Which masks to score: the files' RLE masks, masks filled from the landmarks, or
    /// auto (RLE when both rows have them).
    #[arg(long, value_enum, default_value_t = MaskChoice::Auto)]
    pub masks: MaskChoice,
    /// Quantile bins of the reliability table.
    #[arg(long, default_value_t = 10)]
    pub bins: usize,
}

fn parse_spacing(s: &str) -> Result<PixelSpacing, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|t| t.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{s:?} is not a number or ROW,COL"))?;
    match v[..] {
        [d] if d > 0.0 && d.is_finite() => Ok(PixelSpacing { row_mm: d, col_mm: d }),
        [r, c] if r > 0.0 && c > 0.0 && r.is_finite() && c.is_finite() => Ok(PixelSpacing { row_mm: r, col_mm: c }),
        _ => Err(format!("{s:?}: give one positive spacing in mm, or ROW,COL")),
    }
}

/// Column names of the report, the first seven as in the CheXmask authors' eval files.
pub const SCORE_COLUMNS: [&str; 7] = [
    "image",
    "Dice Lungs",
    "Dice Heart",
    "Hausdorff Lungs",
    "Hausdorff Heart",
    "Hausdorff 95 Lungs",
    "Hausdorff 95 Heart",
];

pub fn run(args: Args) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    if args.bins == 0 {
        bail!("--bins must be at least 1");
    }
    let (pred, pred_nodes) = if args.pred.is_dir() {
        let (t, n) = chexmask_u::read_prediction_folder(&args.pred)?;
        (t, Some(n))
    } else {
        (ChexmaskTable::read(&args.pred)?, None)
    };
    let reference = ChexmaskTable::read(&args.reference)?;
    let eval = evaluate(&pred, &reference, EvalOptions { masks: args.masks, spacing: args.spacing_mm })?;
    if eval.images.is_empty() {
        bail!(
            "no image of {} ({} rows) is in {} ({} rows): identifiers do not match",
            args.pred.display(),
            pred.rows.len(),
            args.reference.display(),
            reference.rows.len()
        );
    }
    let nodes = match (&args.uncertainty, pred_nodes) {
        (Some(dir), _) => Some(chexmask_u::read_folder(dir)?),
        (None, from_pred) => from_pred,
    };
    let uncertainty = nodes.map(|n| Uncertainty::new(&eval, &pred, n));

    let mut out = String::new();
    writeln!(out, "pred: {} ({} rows)", args.pred.display(), pred.rows.len())?;
    writeln!(out, "ref:  {} ({} rows)", args.reference.display(), reference.rows.len())?;
    writeln!(
        out,
        "{} images in both; only in pred: {}; only in ref: {}",
        eval.images.len(),
        list(&eval.only_in_pred),
        list(&eval.only_in_ref)
    )?;
    let (rle, filled) = (eval.count(MaskSource::Rle), eval.count(MaskSource::Landmarks));
    writeln!(out, "masks scored: the files' RLE masks for {rle} images, masks filled from landmarks for {filled}")?;
    summary_table(&mut out, &eval, args.spacing_mm.is_some())?;
    if let Some(u) = &uncertainty {
        u.describe(&mut out, args.bins)?;
    }

    if let Some(path) = &args.out {
        write_atomically(path, &report_csv(&eval, args.spacing_mm.is_some(), uncertainty.as_ref())?)?;
        writeln!(out, "per-image scores: {}", path.display())?;
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
        for line in write_plots(dir, &eval, uncertainty.as_ref(), args.bins)? {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "took {:.2} s", start.elapsed().as_secs_f64())?;
    print!("{out}");
    Ok(())
}

fn list(ids: &[String]) -> String {
    match ids.len() {
        0 => "0".to_string(),
        n if n <= 5 => format!("{n} ({})", ids.join(", ")),
        n => format!("{n} ({}, …)", ids[..5].join(", ")),
    }
}

/// One named per-image metric.
struct Metric {
    name: String,
    values: Vec<f64>,
    decimals: usize,
}

fn metrics(eval: &Evaluation, with_mm: bool) -> Vec<Metric> {
    let col = |name: &str, decimals: usize, f: &dyn Fn(&ImageScores) -> Option<f64>| Metric {
        name: name.to_string(),
        values: eval.images.iter().map(|i| f(i).unwrap_or(f64::NAN)).collect(),
        decimals,
    };
    let mut m = vec![
        col("Dice Lungs", 4, &|i| Some(i.dice_lungs)),
        col("Dice Heart", 4, &|i| Some(i.dice_heart)),
        col("Hausdorff Lungs", 2, &|i| Some(i.lungs.hausdorff)),
        col("Hausdorff Heart", 2, &|i| Some(i.heart.hausdorff)),
        col("Hausdorff 95 Lungs", 2, &|i| Some(i.lungs.hd95)),
        col("Hausdorff 95 Heart", 2, &|i| Some(i.heart.hd95)),
    ];
    let errs = |mm: bool| -> Vec<Metric> {
        let unit = if mm { "mm" } else { "px" };
        let pick = move |i: &ImageScores| (if mm { i.node_mm } else { i.node_px }).map(|e| ErrorSummary::of(&e));
        let mut v = vec![col(&format!("Node error {unit}"), 2, &|i| pick(i).map(|s| s.all))];
        for (k, o) in Organ::ALL.iter().enumerate() {
            v.push(col(&format!("Node error {} {unit}", o.name()), 2, &|i| pick(i).map(|s| s.organs[k])));
        }
        v
    };
    m.extend(errs(false));
    if with_mm {
        m.extend(errs(true));
    }
    m.push(col("Dice Right Lung", 4, &|i| Some(i.dice_organs[0])));
    m.push(col("Dice Left Lung", 4, &|i| Some(i.dice_organs[1])));
    m
}

fn summary_table(out: &mut String, eval: &Evaluation, with_mm: bool) -> std::fmt::Result {
    writeln!(out, "{:<28} {:>20} {:>5}", "metric", "mean ± sd", "n")?;
    for m in metrics(eval, with_mm) {
        let s = describe(m.values.iter().copied().filter(|v| !v.is_nan()));
        if s.n == 0 && s.non_finite == 0 {
            continue;
        }
        let d = m.decimals;
        let value = format!("{:.d$} ± {:.d$}", s.mean, s.sd);
        write!(out, "{:<28} {value:>20} {:>5}", m.name, s.n)?;
        if s.non_finite > 0 {
            write!(out, "  (+{} infinite: one mask has no boundary)", s.non_finite)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn number(v: f64) -> String {
    if v.is_nan() { String::new() } else { format!("{v}") }
}

fn report_csv(eval: &Evaluation, with_mm: bool, u: Option<&Uncertainty>) -> anyhow::Result<Vec<u8>> {
    let ms = metrics(eval, with_mm);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["image".to_string()];
    header.extend(ms.iter().map(|m| m.name.clone()));
    header.push("Masks".to_string());
    if u.is_some() {
        header.push("Uncertainty score px".to_string());
    }
    w.write_record(&header)?;
    for (k, img) in eval.images.iter().enumerate() {
        let mut row = vec![img.id.clone()];
        row.extend(ms.iter().map(|m| number(m.values[k])));
        row.push(img.masks.as_str().to_string());
        if let Some(u) = u {
            row.push(u.score.get(&img.id).map(|s| number(*s)).unwrap_or_default());
        }
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

/// The prediction's node uncertainty next to its node errors.
struct Uncertainty {
    /// (node std, node error px, organ) of every node of every image with a table.
    points: Vec<(f64, f64, Organ)>,
    /// Per image with a table: score, and the image's mean node error.
    score: BTreeMap<String, f64>,
    image_pairs: Vec<(f64, f64)>,
    images_with_table: usize,
    images_with_errors: usize,
    /// Mean distance between the table means and the prediction's landmarks, px.
    mean_offset: f64,
}

impl Uncertainty {
    fn new(eval: &Evaluation, pred: &ChexmaskTable, tables: BTreeMap<String, NodeTable>) -> Self {
        let stems: Vec<&String> = tables.keys().collect();
        let ids: Vec<&str> = eval.images.iter().map(|i| i.id.as_str()).collect();
        let m = match_names(&ids, &stems);
        let mut u = Uncertainty {
            points: Vec::new(),
            score: BTreeMap::new(),
            image_pairs: Vec::new(),
            images_with_table: m.pairs.len(),
            images_with_errors: 0,
            mean_offset: 0.0,
        };
        let mut offsets = Vec::new();
        for (i, j) in m.pairs {
            let img = &eval.images[i];
            let t = &tables[stems[j]];
            u.score.insert(img.id.clone(), t.score());
            if let Some(l) = pred.get(&img.id).and_then(|r| r.landmarks) {
                offsets.extend(
                    (0..NUM_NODES).map(|n| ((l[n][0] - t.mean[n][0]) as f64).hypot((l[n][1] - t.mean[n][1]) as f64)),
                );
            }
            let Some(errors) = img.node_px else { continue };
            u.images_with_errors += 1;
            for (n, &e) in errors.iter().enumerate() {
                let organ = Organ::of_node(n).expect("node index").0;
                u.points.push((t.node_std(n) as f64, e, organ));
            }
            u.image_pairs.push((t.score(), errors.iter().sum::<f64>() / NUM_NODES as f64));
        }
        u.mean_offset = if offsets.is_empty() { 0.0 } else { offsets.iter().sum::<f64>() / offsets.len() as f64 };
        u
    }

    fn bins(&self, bins: usize) -> Vec<ReliabilityBin> {
        let (s, e): (Vec<f64>, Vec<f64>) = self.points.iter().map(|p| (p.0, p.1)).unzip();
        reliability_table(&s, &e, bins)
    }

    fn describe(&self, out: &mut String, bins: usize) -> std::fmt::Result {
        writeln!(out, "uncertainty: node tables for {} of the scored images", self.images_with_table)?;
        if self.mean_offset > 2.0 {
            writeln!(
                out,
                "  warning: the tables' mean landmarks are {:.1} px from the prediction's on average; \
                 are they the same prediction, in the same coordinates?",
                self.mean_offset
            )?;
        }
        if self.points.is_empty() {
            return writeln!(out, "  no node errors to relate them to (landmarks missing)");
        }
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let (s, e): (Vec<f64>, Vec<f64>) = self.points.iter().map(|p| (p.0, p.1)).unzip();
        writeln!(
            out,
            "  node std vs node error ({} nodes): Pearson r = {}, Spearman rho = {}",
            s.len(),
            f(pearson(&s, &e)),
            f(spearman(&s, &e))
        )?;
        let (is, ie): (Vec<f64>, Vec<f64>) = self.image_pairs.iter().copied().unzip();
        writeln!(
            out,
            "  image score vs mean node error ({} images): Pearson r = {}, Spearman rho = {}",
            is.len(),
            f(pearson(&is, &ie)),
            f(spearman(&is, &ie))
        )?;
        writeln!(out, "  reliability, quantile bins of node std (px):")?;
        writeln!(out, "  {:>4} {:>6} {:>17} {:>9} {:>16}", "bin", "n", "std range", "mean std", "error mean ± sd")?;
        for (k, b) in self.bins(bins).iter().enumerate() {
            let range = format!("{:.3}–{:.3}", b.lo, b.hi);
            let error = format!("{:.2} ± {:.2}", b.mean_error, b.error_sd);
            writeln!(out, "  {:>4} {:>6} {range:>17} {:>9.3} {error:>16}", k + 1, b.n, b.mean_uncertainty)?;
        }
        Ok(())
    }
}

/// Writes the plots; returns one line per plot written or skipped.
fn write_plots(dir: &Path, eval: &Evaluation, u: Option<&Uncertainty>, bins: usize) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let get = |f: &dyn Fn(&ImageScores) -> f64| eval.images.iter().map(f).collect::<Vec<f64>>();
    let (dl, dh) = (get(&|i| i.dice_lungs), get(&|i| i.dice_heart));
    let (hl, hh) = (get(&|i| i.lungs.hausdorff), get(&|i| i.heart.hausdorff));
    let (h95l, h95h) = (get(&|i| i.lungs.hd95), get(&|i| i.heart.hd95));
    let lung = plots::chart::ORGAN_COLORS[0];
    let heart = plots::chart::ORGAN_COLORS[2];
    let panels = [
        plots::per_image::Panel {
            title: "Dice",
            y_label: "Dice",
            groups: vec![("Lungs", lung, &dl), ("Heart", heart, &dh)],
        },
        plots::per_image::Panel {
            title: "Hausdorff",
            y_label: "Hausdorff distance (px)",
            groups: vec![("Lungs", lung, &hl), ("Heart", heart, &hh)],
        },
        plots::per_image::Panel {
            title: "Hausdorff 95",
            y_label: "95th percentile distance (px)",
            groups: vec![("Lungs", lung, &h95l), ("Heart", heart, &h95h)],
        },
    ];
    let p = dir.join("per_image_scores.png");
    let sources = match (eval.count(MaskSource::Rle), eval.count(MaskSource::Landmarks)) {
        (_, 0) => "RLE masks",
        (0, _) => "masks filled from landmarks",
        _ => "RLE masks and masks filled from landmarks",
    };
    let subtitle = format!("{} images, one dot each; bar and number: mean; {sources}", eval.images.len());
    plots::per_image::strip_plots(&p, "Agreement per image", &subtitle, &panels)?;
    lines.push(format!("plot: {}", p.display()));

    let with_nodes: Vec<&[f64; NUM_NODES]> = eval.images.iter().filter_map(|i| i.node_px.as_ref()).collect();
    if with_nodes.is_empty() {
        lines.push("skipped node error plot: no image has landmarks in both files".to_string());
    } else {
        let mean: [f64; NUM_NODES] =
            std::array::from_fn(|n| with_nodes.iter().map(|e| e[n]).sum::<f64>() / with_nodes.len() as f64);
        let p = dir.join("node_error_template.png");
        let subtitle = format!("mean over {} images of the distance between corresponding landmarks", with_nodes.len());
        plots::node_map::node_values_on_template(&p, &mean, "Mean landmark error per node", &subtitle, "px")?;
        lines.push(format!("plot: {}", p.display()));
    }

    match u {
        Some(u) if !u.points.is_empty() => {
            let p = dir.join("error_vs_uncertainty.png");
            plots::uncertainty::error_vs_uncertainty(&p, &u.points, u.images_with_errors, "px")?;
            lines.push(format!("plot: {}", p.display()));
            let p = dir.join("reliability.png");
            plots::uncertainty::reliability(&p, &u.bins(bins), "px")?;
            lines.push(format!("plot: {}", p.display()));
            let p = dir.join("score_vs_error.png");
            let (s, e): (Vec<f64>, Vec<f64>) = u.image_pairs.iter().copied().unzip();
            plots::uncertainty::score_vs_error(&p, &s, &e, "px")?;
            lines.push(format!("plot: {}", p.display()));
        }
        Some(_) => {
            lines.push("skipped uncertainty plots: no scored image has both a node table and landmarks".to_string())
        }
        None => {
            lines.push("skipped uncertainty plots: they need node standard deviations (--uncertainty DIR)".to_string())
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_values() {
        assert_eq!(parse_spacing("0.5").unwrap(), PixelSpacing { row_mm: 0.5, col_mm: 0.5 });
        assert_eq!(parse_spacing("0.2, 0.3").unwrap(), PixelSpacing { row_mm: 0.2, col_mm: 0.3 });
        assert!(parse_spacing("0").is_err() && parse_spacing("a").is_err() && parse_spacing("1,2,3").is_err());
    }
}
