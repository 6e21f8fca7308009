//! Training samples: images with their 120 landmarks, pre-processed once to the model's
//! input size and kept in memory (195 JSRT images at 256² take 51 MB).
//!
//! Every source produces [`Sample`]s (an image file and landmarks in its pixels): the
//! CheXmask-style CSV of [`read_csv`], or a folder of the review GUI's annotation files
//! ([`read_annotations`]), so a reviewed set can fine-tune the model.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

use crate::formats::chexmask::parse_landmarks;
use crate::landmarks::{NUM_NODES, Point};
use crate::model::preprocess::{Letterbox, model_input};
use crate::review::annotation::{self, Annotation, Status, file_sha256};
use crate::xray;

/// An image file and its landmarks in that image's pixels.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: PathBuf,
    pub landmarks: [Point; NUM_NODES],
    /// Where the sample came from ("landmarks.csv row 7"), for error messages.
    pub origin: String,
    /// The data set it belongs to: its folder's name ("jsrt"), for per-set figures.
    pub set: String,
}

impl Sample {
    pub fn new(image: PathBuf, landmarks: [Point; NUM_NODES]) -> Self {
        let origin = image.display().to_string();
        Sample { image, landmarks, origin, set: String::new() }
    }
}

/// A sample ready for the model: input pixels in [0, 1] (S×S) and landmarks in [0, 1].
#[derive(Debug, Clone)]
pub struct Prepared {
    pub name: String,
    pub pixels: Vec<f32>,
    pub target: [[f32; 2]; NUM_NODES],
    pub letterbox: Letterbox,
    /// Ground truth in original pixels, for validation metrics.
    pub landmarks: [Point; NUM_NODES],
}

/// The CSV of a data folder: `DIR/landmarks.csv`, or the only `*.csv` in DIR.
pub fn find_csv(dir: &Path) -> anyhow::Result<PathBuf> {
    let default = dir.join("landmarks.csv");
    if default.is_file() {
        return Ok(default);
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}: cannot list the data folder", dir.display()))?;
    let csvs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
        .collect();
    match csvs.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{}: no landmarks.csv (columns image,split,Landmarks)", dir.display()),
        _ => bail!("{}: several CSV files and no landmarks.csv; name the one to use landmarks.csv", dir.display()),
    }
}

/// Every row of `csv` (columns `image`, `Landmarks`, optionally `split`) as (split, sample).
/// Images are looked for in `images/` beside the CSV, then beside it; the identifier may
/// omit the extension. A row without `split` belongs to split "".
pub fn read_csv(csv_path: &Path) -> anyhow::Result<Vec<(String, Sample)>> {
    let dir = csv_path.parent().unwrap_or(Path::new("."));
    let mut reader = csv::Reader::from_path(csv_path).with_context(|| format!("{}: cannot read", csv_path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: no header row", csv_path.display()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let (Some(ci), Some(cl)) = (col("image"), col("Landmarks")) else {
        bail!(
            "{}: needs columns `image` and `Landmarks` (found: {})",
            csv_path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let cs = col("split");
    let file = csv_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2; // the line number: 1-based, after the header
        let record = record.with_context(|| format!("{} row {row}: malformed CSV", csv_path.display()))?;
        let name = record.get(ci).unwrap_or("").trim();
        if name.is_empty() {
            bail!("{} row {row}: empty `image`", csv_path.display());
        }
        let landmarks = parse_landmarks(record.get(cl).unwrap_or(""))
            .map_err(|e| anyhow::anyhow!("{} row {row} ({name}): {e}", csv_path.display()))?;
        let image = find_image(dir, name)
            .with_context(|| format!("{} row {row}: image `{name}` not found in {}", csv_path.display(), dir.display()))?;
        let split = cs.and_then(|c| record.get(c)).unwrap_or("").trim().to_string();
        out.push((split, Sample { image, landmarks, origin: format!("{file} row {row}"), set: String::new() }));
    }
    Ok(out)
}

fn find_image(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut candidates = vec![dir.join("images").join(name), dir.join(name)];
    for ext in ["png", "dcm", "jpg", "jpeg", "tif", "tiff"] {
        candidates.push(dir.join("images").join(format!("{name}.{ext}")));
        candidates.push(dir.join(format!("{name}.{ext}")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// The samples of `split` in the data folder `dir` (see [`find_csv`], [`read_csv`]).
/// A folder without a CSV but with annotation files is read with [`read_annotations`].
/// CSV rows without a split are split by image content ([`split_by_content`]).
/// Split `test` ([`TEST_SPLIT`]) holds the rows held out for testing ([`held_out_for_test`]).
pub fn read_split(dir: &Path, split: &str) -> anyhow::Result<Vec<Sample>> {
    read_split_holding_out(dir, split, split == TEST_SPLIT)
}

/// [`read_split`], with the rows [`held_out_for_test`] moved from `train` to `test` when
/// `hold_out` is set (`train --hold-out-test`).
pub fn read_split_holding_out(dir: &Path, split: &str, hold_out: bool) -> anyhow::Result<Vec<Sample>> {
    let (out, source) = read_split_of_set(dir, split, hold_out)?;
    if out.is_empty() {
        bail!("{}: no rows with split `{split}`", source.display());
    }
    Ok(out)
}

/// The samples of `split` from several data folders, merged in the order given; each
/// sample's `set` names its folder. A folder without rows of `split` adds none; all of
/// them together must have some.
pub fn read_split_sets(dirs: &[PathBuf], split: &str) -> anyhow::Result<Vec<Sample>> {
    read_split_sets_holding_out(dirs, split, split == TEST_SPLIT)
}

/// [`read_split_sets`] with [`read_split_holding_out`]'s `hold_out`.
pub fn read_split_sets_holding_out(dirs: &[PathBuf], split: &str, hold_out: bool) -> anyhow::Result<Vec<Sample>> {
    if let [one] = dirs {
        return read_split_holding_out(one, split, hold_out);
    }
    let mut out = Vec::new();
    for d in dirs {
        out.extend(read_split_of_set(d, split, hold_out)?.0);
    }
    if out.is_empty() {
        let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!("no rows with split `{split}` in {}", names.join(", "));
    }
    Ok(out)
}

/// The first `n` samples of every set, in the order given.
pub fn first_of_each_set(samples: Vec<Sample>, n: usize) -> Vec<Sample> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    samples
        .into_iter()
        .filter(|s| {
            let i = seen.iter().position(|(name, _)| *name == s.set).unwrap_or_else(|| {
                seen.push((s.set.clone(), 0));
                seen.len() - 1
            });
            seen[i].1 += 1;
            seen[i].1 <= n
        })
        .collect()
}

/// How many samples each set holds, in order of first appearance: "jsrt 174, other 20".
pub fn describe_sets(samples: &[Sample]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in samples {
        match counts.iter_mut().find(|(n, _)| *n == s.set) {
            Some((_, c)) => *c += 1,
            None => counts.push((&s.set, 1)),
        }
    }
    counts.iter().map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
}

/// The name a data folder's samples carry in `Sample::set`.
pub fn set_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

/// Split of a CSV row that has none, from the image's content: `val` when the first 8 bytes
/// of its SHA-256 are 0 modulo 5 (about a fifth), else `train`. It depends on nothing but
/// the file, so adding images to a set never moves the others.
pub fn split_by_content(image: &Path) -> anyhow::Result<&'static str> {
    Ok(if content_head(image)? % 5 == 0 { "val" } else { "train" })
}

/// The first 8 bytes of the image file's SHA-256: what content-based splits are chosen by.
fn content_head(image: &Path) -> anyhow::Result<u64> {
    let sha = file_sha256(image).with_context(|| format!("{}: cannot read", image.display()))?;
    Ok(u64::from_str_radix(&sha[..16], 16).expect("hex digest"))
}

/// The split that [`held_out_for_test`] rows form: nobody trains, selects epochs or tunes on
/// it, so it measures a model trained with `--hold-out-test` on images it has never met.
pub const TEST_SPLIT: &str = "test";

/// Whether a `train` row is held out for testing: the first 8 bytes of its image's SHA-256
/// are 0 modulo 7 (22 of JSRT's 174 training images). Like [`split_by_content`], it depends
/// on the file alone.
pub fn held_out_for_test(image: &Path) -> anyhow::Result<bool> {
    Ok(content_head(image)? % 7 == 0)
}

fn read_split_of_set(
    dir: &Path,
    split: &str,
    hold_out: bool,
) -> anyhow::Result<(Vec<Sample>, PathBuf)> {
    let (mut all, source) = match find_csv(dir) {
        Ok(csv_path) => {
            let mut rows = read_csv(&csv_path)?;
            for (s, sample) in rows.iter_mut().filter(|(s, _)| s.is_empty()) {
                *s = split_by_content(&sample.image).with_context(|| sample.origin.clone())?.to_string();
            }
            (rows, csv_path)
        }
        Err(no_csv) => {
            let reviewed = read_annotations(dir)?;
            if reviewed.is_empty() {
                return Err(no_csv.context("and no accepted or corrected cxr-review annotations (*.cxr.json)"));
            }
            (reviewed, dir.to_path_buf())
        }
    };
    if hold_out {
        for (s, sample) in all.iter_mut().filter(|(s, _)| s == "train") {
            if held_out_for_test(&sample.image).with_context(|| sample.origin.clone())? {
                *s = TEST_SPLIT.to_string();
            }
        }
    }
    let set = set_name(dir);
    let out: Vec<Sample> =
        all.into_iter().filter(|(s, _)| s == split).map(|(_, s)| Sample { set: set.clone(), ..s }).collect();
    Ok((out, source))
}

/// The accepted and corrected annotations (`*.cxr.json`) in `dir` as (split, sample), the
/// landmarks being the reviewer's positions. Unreviewed and rejected ones are skipped: they
/// are not gold standard. The image is the one the annotation names, else the file beside
/// it; its content hash must match. Splits are fixed by content: ordered by image hash,
/// every fifth annotation (the first included) is `val`, the rest `train` (one image alone
/// is `train`).
pub fn read_annotations(dir: &Path) -> anyhow::Result<Vec<(String, Sample)>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}: cannot list the data folder", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(annotation::SUFFIX))
        .collect();
    files.sort();
    let mut found: Vec<(String, Sample)> = Vec::new();
    for f in files {
        let a = Annotation::read(&f)?;
        if !matches!(a.status, Status::Accepted | Status::Corrected) {
            continue;
        }
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let beside = dir.join(name.trim_end_matches(annotation::SUFFIX));
        let image = [a.image.path.clone(), beside]
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| format!("{}: image {} not found", f.display(), a.image.path.display()))?;
        let sha = file_sha256(&image).with_context(|| format!("{}: cannot read", image.display()))?;
        if sha != a.image.sha256 {
            bail!("{}: {} has changed since it was reviewed (content hash differs)", f.display(), image.display());
        }
        let sample = Sample { image, landmarks: a.corrected_array(), origin: f.display().to_string(), set: String::new() };
        found.push((a.image.sha256, sample));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let n = found.len();
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, (_, s))| (if n > 1 && i % 5 == 0 { "val" } else { "train" }.to_string(), s))
        .collect())
}

/// Load and pre-process one sample exactly as inference does (default window, letterbox
/// pad, bicubic resize to `size`).
pub fn prepare_one(s: &Sample, size: usize) -> anyhow::Result<Prepared> {
    let img = xray::load(&s.image).with_context(|| format!("{}: cannot load the image", s.origin))?;
    let grey = img.display_intensities(img.default_window());
    let (pixels, letterbox) = model_input(&grey, img.width, img.height, size);
    let target = s.landmarks.map(|p| letterbox.to_model(p));
    let name = s.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Prepared { name, pixels, target, letterbox, landmarks: s.landmarks })
}

/// Pre-process every sample for input size `size`, on all cores; `progress` sees each one
/// done. The first failing sample (in order) is the error.
pub fn prepare(samples: &[Sample], size: usize, progress: impl Fn() + Sync) -> anyhow::Result<Vec<Prepared>> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(samples.len().max(1));
    let mut slots: Vec<Option<anyhow::Result<Prepared>>> = (0..samples.len()).map(|_| None).collect();
    let chunk = samples.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (ss, out) in samples.chunks(chunk).zip(slots.chunks_mut(chunk)) {
            let progress = &progress;
            scope.spawn(move || {
                for (s, o) in ss.iter().zip(out) {
                    *o = Some(prepare_one(s, size));
                    progress();
                }
            });
        }
    });
    slots.into_iter().map(|r| r.expect("every sample was prepared")).collect()
}
