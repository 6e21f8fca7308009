use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use cxr_review::cli;

/// Review lung and heart landmark segmentations of chest X-rays.
///
/// With no command, opens the viewer on the given files or folders
/// (or on the built-in synthetic phantom when none are given).
#[derive(Parser)]
#[command(name = "cxr-review", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Images or folders to open in the viewer.
    paths: Vec<PathBuf>,
    /// Show the DICOM patient name in the window title (it is never written anywhere).
    #[arg(long)]
    show_patient_name: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print an image's metadata as JSON; optionally write it as displayed.
    Info(cli::info::Args),
    /// Landmarks with CheXmask-U uncertainty for images or folders, as CSV files.
    Infer(cli::infer::Args),
    /// Export a reviewed folder: CheXmask CSV, CheXmask-U CSV, COCO keypoints, DICOM SEG.
    Export(cli::export::Args),
    /// Join the summaries of `infer --shard K/N` runs, checking nothing is missing or doubled.
    Merge(cli::merge::Args),
    /// Time encoding and N-sample decoding on random weights.
    Bench(cli::bench::Args),
    /// Score a CheXmask file against a reference (Dice, Hausdorff, HD95, node errors).
    Eval(cli::eval::Args),
    /// Train a HybridGNet on images with landmarks (METHOD.md §5).
    Train(cli::train::Args),
    /// Judge a model on annotated images: Dice, node error, and its uncertainty under noise,
    /// occlusion and non-chest images.
    Validate(cli::validate::Args),
    /// Fit the map from node std to expected error on annotated images (cross-validated) and
    /// store it in the weights' metadata.
    Calibrate(cli::calibrate::Args),
    /// Feed mutated files to every parser (seeded, reproducible) and report panics.
    Fuzz(cli::fuzz::Args),
}

fn main() -> ExitCode {
    let _ = cxr_review::memory::keep_freed_memory();
    let args = Cli::parse();
    let result = match args.command {
        Some(Command::Info(a)) => cli::info::run(a),
        Some(Command::Infer(a)) => cli::infer::run(a),
        Some(Command::Merge(a)) => cli::merge::run(a),
        Some(Command::Export(a)) => cli::export::run(a),
        Some(Command::Bench(a)) => cli::bench::run(a),
        Some(Command::Eval(a)) => cli::eval::run(a),
        Some(Command::Train(a)) => cli::train::run(a),
        Some(Command::Validate(a)) => cli::validate::run(a),
        Some(Command::Calibrate(a)) => cli::calibrate::run(a),
        Some(Command::Fuzz(a)) => cli::fuzz::run(a),
        None => cxr_review::gui::run(args.paths, args.show_patient_name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
