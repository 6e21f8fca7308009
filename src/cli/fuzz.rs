//! `cxr-review fuzz TARGET --iterations N --seed S`: the seeded mutation loop of
//! [`crate::fuzz`] over one parser (or `all`), with a table of what happened.

use std::path::PathBuf;
use std::time::Duration;

use crate::fuzz::{self, Options, Target};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to fuzz: all, dicom, raster, chexmask, chexmask-u, annotation, safetensors or
    /// pytorch; `all` runs every target in turn.
    #[arg(required = true, value_parser = parse_target)]
    pub target: Vec<Vec<Target>>,
    #[arg(long, default_value_t = 1000)]
    pub iterations: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop each target after this many seconds, whatever the iteration count.
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
    /// The shared data (seed files) [default: $CXR_SHARED_DATA or ../shared/data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where findings (input and message) and progress files go.
    #[arg(long, default_value = "fuzz-findings")]
    pub out: PathBuf,
    /// Write the input of this iteration to --out and exit (inputs are reproducible from
    /// target, seed and iteration).
    #[arg(long, value_name = "ITERATION")]
    pub replay: Option<u64>,
}

/// `all`, or a target's name.
fn parse_target(name: &str) -> Result<Vec<Target>, String> {
    if name == "all" {
        return Ok(Target::ALL.to_vec());
    }
    Target::ALL.into_iter().find(|t| t.name() == name).map(|t| vec![t]).ok_or_else(|| {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        format!("unknown target {name:?}: all, {}", names.join(", "))
    })
}

/// The repository's PyTorch fixtures, the `.pt` seeds.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
}

pub fn default_data_dir() -> PathBuf {
    std::env::var_os("CXR_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../shared/data"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut targets: Vec<Target> = args.target.iter().flatten().copied().collect();
    targets.dedup();
    anyhow::ensure!(!targets.is_empty(), "name a target (or `all`)");
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    if let Some(i) = args.replay {
        anyhow::ensure!(targets.len() == 1, "--replay takes one target");
        let t = targets[0];
        let corpus = fuzz::seed_corpus(t, &data, &fixtures_dir()).map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&args.out)?;
        let path = args.out.join(format!("{}-{}-{i}.bin", t.name(), args.seed));
        std::fs::write(&path, fuzz::mutant(&corpus, t, args.seed, i))?;
        let outcome = fuzz::check(t, &std::fs::read(&path)?, &args.out);
        println!("{}: {outcome:?}", path.display());
        return Ok(());
    }
    println!(
        "{:<12} {:>10} {:>9} {:>9} {:>8} {:>9} {:>10} {:>16}",
        "target", "iterations", "accepted", "refused", "findings", "seconds", "inputs/s", "slowest (iter s)"
    );
    let mut total_findings = 0;
    for t in targets {
        let opts = Options {
            target: t,
            iterations: args.iterations,
            seed: args.seed,
            max_time: args.max_seconds.map(Duration::from_secs_f64),
            data: data.clone(),
            fixtures: fixtures_dir(),
            out: args.out.clone(),
        };
        let r = fuzz::run(&opts, |_, _| {}).map_err(anyhow::Error::msg)?;
        println!(
            "{:<12} {:>10} {:>9} {:>9} {:>8} {:>9.1} {:>10.1} {:>9} {:>6.2}",
            r.target,
            r.iterations,
            r.accepted,
            r.refused,
            r.findings.len(),
            r.seconds,
            r.iterations as f64 / r.seconds.max(1e-9),
            r.slowest.0,
            r.slowest.1
        );
        for (i, o) in &r.findings {
            println!("  iteration {i}: {o:?}");
        }
        total_findings += r.findings.len();
    }
    anyhow::ensure!(total_findings == 0, "{total_findings} findings, inputs in {}", args.out.display());
    Ok(())
}
