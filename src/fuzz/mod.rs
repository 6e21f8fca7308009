//! Fuzzing on stable Rust: a seeded mutation loop over every parser that reads user files.
//!
//! Each target feeds mutated seeds (real files from `../shared/data`, our own test
//! fixtures, and files generated here) through what the app and the headless commands do
//! with such a file, and checks the two promises of the loaders: no panic (caught or not:
//! a panic hook records every one on the fuzzing thread), and every refusal names the file.
//! An abort (stack overflow, failed allocation) kills the process; the progress file says
//! which iteration it was, and `--replay` writes that input out again, since every
//! iteration's mutations come from its own seed.

pub mod mutate;
pub mod seeds;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use mutate::{Layout, Mutator, Segment, segments};

/// What a fuzz target parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// DICOM files (every file in `../shared/data/dicom`), loaded as `info` and the viewer do.
    Dicom,
    /// PNG, JPEG and TIFF files.
    Raster,
    /// CheXmask CSV (landmarks and RLE masks), read and scored as `eval` does.
    Chexmask,
    /// CheXmask-U per-node CSV.
    ChexmaskU,
    /// `.cxr.json` annotation files.
    Annotation,
    /// `.safetensors` weights, read and built into a model.
    Safetensors,
    /// PyTorch `.pt` state dicts, read and built into a model.
    Pytorch,
}

impl Target {
    pub const ALL: [Target; 7] = [
        Target::Dicom,
        Target::Raster,
        Target::Chexmask,
        Target::ChexmaskU,
        Target::Annotation,
        Target::Safetensors,
        Target::Pytorch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Dicom => "dicom",
            Target::Raster => "raster",
            Target::Chexmask => "chexmask",
            Target::ChexmaskU => "chexmask-u",
            Target::Annotation => "annotation",
            Target::Safetensors => "safetensors",
            Target::Pytorch => "pytorch",
        }
    }

    /// The file name inputs are given: it must appear in every refusal.
    pub fn file_name(self) -> &'static str {
        match self {
            Target::Dicom => "fuzz-input.dcm",
            Target::Raster => "fuzz-input.img",
            Target::Chexmask => "fuzz-input.csv",
            Target::ChexmaskU => "fuzz-input-nodes.csv",
            Target::Annotation => "fuzz-input.cxr.json",
            Target::Safetensors => "fuzz-input.safetensors",
            Target::Pytorch => "fuzz-input.pt",
        }
    }

    fn text(self) -> bool {
        matches!(self, Target::Chexmask | Target::ChexmaskU | Target::Annotation | Target::Safetensors)
    }
}

/// What one input did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// A clean refusal, naming the file.
    Refused(String),
    /// A panic (even one caught inside a loader), or a refusal that says a decoder crashed.
    Panicked(String),
    /// A refusal that does not name the file.
    Unnamed(String),
}

impl Outcome {
    pub fn is_finding(&self) -> bool {
        matches!(self, Outcome::Panicked(_) | Outcome::Unnamed(_))
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Route panics on a fuzzing thread into [`CAPTURED`] (silently); others go to the
/// previous hook, so tests running beside the fuzzer report as usual.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(Cell::get) {
                let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".into());
                CAPTURED.with(|c| c.borrow_mut().push(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run one input through `target` in `dir` (where inputs that must be files are written).
pub fn check(target: Target, bytes: &[u8], dir: &Path) -> Outcome {
    install_panic_hook();
    CAPTURED.with(|c| c.borrow_mut().clear());
    CAPTURING.with(|c| c.set(true));
    let path = dir.join(target.file_name());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_target(target, bytes, &path)));
    CAPTURING.with(|c| c.set(false));
    let panics = CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if let Some(first) = panics.first() {
        return Outcome::Panicked(first.clone());
    }
    match result {
        Err(_) => Outcome::Panicked("panic without a message".into()),
        Ok(Ok(())) => Outcome::Accepted,
        Ok(Err(msg)) if msg.contains("crashed") => Outcome::Panicked(msg),
        Ok(Err(msg)) if !msg.contains(target.file_name()) => Outcome::Unnamed(msg),
        Ok(Err(msg)) => Outcome::Refused(msg),
    }
}

/// What the app does with such a file; `Err` is a refusal.
fn run_target(target: Target, bytes: &[u8], path: &Path) -> Result<(), String> {
    match target {
        Target::Dicom | Target::Raster => {
            let img = crate::xray::load_bytes(path, bytes).map_err(|e| e.to_string())?;
            // What the viewer and the model do next: window, 8-bit rendering, model input.
            let w = img.default_window();
            let grey = img.to_gray8(w);
            if grey.width() != img.width {
                return Err(format!("{}: rendered width differs", path.display()));
            }
            let _ = crate::model::preprocess::model_input(&img.display_intensities(w), img.width, img.height, 64);
            Ok(())
        }
        Target::Chexmask => {
            use crate::formats::chexmask::ChexmaskTable;
            use crate::metrics::evaluation::{EvalOptions, evaluate_rows};
            let table = ChexmaskTable::from_reader(bytes, path).map_err(|e| e.to_string())?;
            // Score the first rows against themselves and each other, as `eval` would.
            let rows: Vec<_> = table.rows.iter().take(2).collect();
            for a in &rows {
                for b in &rows {
                    let _ = evaluate_rows(a, b, EvalOptions::default());
                }
            }
            Ok(())
        }
        Target::ChexmaskU => {
            let t = crate::formats::chexmask_u::NodeTable::parse(bytes, path).map_err(|e| e.to_string())?;
            let _ = t.score();
            let _ = t.to_csv();
            // What `eval --pred FOLDER` does with it: masks filled from the mean landmarks,
            // scored against the template's.
            let masks = crate::masks::organ_masks(&t.mean, 1024, 1024);
            let reference = crate::masks::organ_masks(&crate::landmarks::template(), 1024, 1024);
            let _ = crate::metrics::surface_distance(&masks.lungs(), &reference.lungs());
            Ok(())
        }
        Target::Annotation => {
            let a = crate::review::Annotation::parse(bytes, path).map_err(|e| e.to_string())?;
            // What reopening does: the edit state, the correction figures, the filled masks.
            let c = crate::review::correction::correction(&a.predicted_array(), &a.corrected_array(), None);
            let _ = c;
            let _ = crate::masks::organ_masks(&a.corrected_array(), 256, 256);
            Ok(())
        }
        Target::Safetensors | Target::Pytorch => {
            std::fs::write(path, bytes).map_err(|e| format!("{}: cannot write the input: {e}", path.display()))?;
            let device = burn::tensor::Device::flex();
            let model = crate::model::HybridGNet::load(path, &device).map_err(|e| e.to_string())?;
            // A correction that loaded must move (or leave) a shape without panicking.
            if let Some(c) = model.shape_correction() {
                let _ = c.correct(&crate::landmarks::template().map(|p| [p[0] / 1024.0, p[1] / 1024.0]));
            }
            // So must a refinement, on any image.
            if let Some(r) = model.patch_refinement() {
                let patches = r.patches(&[0.5; 64], 8, 8);
                let _ = r.refine(&patches, &crate::landmarks::template().map(|p| [p[0] / 1024.0, p[1] / 1024.0]));
            }
            Ok(())
        }
    }
}

/// A fuzzing run's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub target: String,
    pub iterations: u64,
    pub accepted: u64,
    pub refused: u64,
    /// (iteration, outcome) of every finding.
    pub findings: Vec<(u64, Outcome)>,
    pub seconds: f64,
    /// The slowest input: (iteration, seconds), to catch inputs that stall a loader.
    pub slowest: (u64, f64),
}

pub struct Options {
    pub target: Target,
    pub iterations: u64,
    pub seed: u64,
    /// Stop earlier when this much time has passed.
    pub max_time: Option<Duration>,
    /// Seeds: `../shared/data` and the repository's test fixtures.
    pub data: PathBuf,
    pub fixtures: PathBuf,
    /// Findings and the progress file go here.
    pub out: PathBuf,
}

/// Each iteration draws from its own stream, so `--replay` can rebuild any input.
fn iteration_rng(seed: u64, iteration: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ iteration.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Seeds of `target` with their segments.
pub fn seed_corpus(target: Target, data: &Path, fixtures: &Path) -> Result<Vec<(Vec<u8>, Vec<Segment>)>, String> {
    let raw = seeds::seeds(target, data, fixtures)?;
    Ok(raw
        .into_iter()
        .map(|b| {
            let layout = layout_of(target, &b);
            let s = segments(&b, layout);
            (b, s)
        })
        .collect())
}

fn layout_of(target: Target, b: &[u8]) -> Layout {
    match target {
        Target::Dicom => Layout::Dicom,
        Target::Raster if b.starts_with(b"\x89PNG") => Layout::Png,
        Target::Raster if b.starts_with(&[0xFF, 0xD8]) => Layout::Jpeg,
        Target::Raster => Layout::Opaque,
        Target::Pytorch => Layout::Zip,
        Target::Safetensors => Layout::Safetensors,
        _ => Layout::Text,
    }
}

/// The input of one iteration.
pub fn mutant(corpus: &[(Vec<u8>, Vec<Segment>)], target: Target, seed: u64, iteration: u64) -> Vec<u8> {
    let mut m = Mutator { rng: iteration_rng(seed, iteration), seeds: corpus, text: target.text() };
    m.next()
}

/// Fuzz one target; findings are written to `out` as `<target>-<seed>-<iteration>.bin` with
/// the message beside them (`.txt`).
pub fn run(opts: &Options, mut progress: impl FnMut(u64, &Report)) -> Result<Report, String> {
    let corpus = seed_corpus(opts.target, &opts.data, &opts.fixtures)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: cannot create: {e}", opts.out.display()))?;
    let work = opts.out.join(format!("work-{}-{}", opts.target.name(), std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: cannot create: {e}", work.display()))?;
    let progress_file = opts.out.join(format!("{}.progress", opts.target.name()));
    let started = Instant::now();
    let mut report = Report { target: opts.target.name().into(), ..Report::default() };
    for i in 0..opts.iterations {
        if opts.max_time.is_some_and(|t| started.elapsed() >= t) {
            break;
        }
        let input = mutant(&corpus, opts.target, opts.seed, i);
        // Cheap insurance against aborts: which input was running.
        let _ = std::fs::write(&progress_file, format!("target {} seed {} iteration {i}\n", opts.target.name(), opts.seed));
        let t = Instant::now();
        let outcome = check(opts.target, &input, &work);
        let secs = t.elapsed().as_secs_f64();
        if secs > report.slowest.1 {
            report.slowest = (i, secs);
        }
        report.iterations += 1;
        match &outcome {
            Outcome::Accepted => report.accepted += 1,
            Outcome::Refused(_) => report.refused += 1,
            Outcome::Panicked(m) | Outcome::Unnamed(m) => {
                let stem = opts.out.join(format!("{}-{}-{i}", opts.target.name(), opts.seed));
                let _ = std::fs::write(stem.with_extension("bin"), &input);
                let _ = std::fs::write(stem.with_extension("txt"), format!("{outcome:?}\n{m}\n"));
                report.findings.push((i, outcome.clone()));
            }
        }
        progress(i, &report);
    }
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_file(&progress_file);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
