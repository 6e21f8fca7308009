//! `cxr-review merge DIR.. --out summary.csv`: join the shard summaries that
//! `infer --shard K/N` wrote into one summary, after checking that every shard is there,
//! that no image was done twice, that every row's per-image table exists, and (with
//! `--inputs`) that every input image was done.

use anyhow::{Context, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::batch::{self, Shard};
use crate::formats::write_atomically;
use crate::xray;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folders holding `summary.shard-K-of-N.csv` files and the per-image tables (several
    /// when shards wrote to separate folders).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The merged summary [default: summary.csv in the first folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The images the run was given (files or folders): each must appear exactly once.
    #[arg(long, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
}

/// One shard summary file.
struct ShardFile {
    shard: Shard,
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read_shard(path: &Path, shard: Shard) -> anyhow::Result<ShardFile> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let header: Vec<String> = r.headers().with_context(|| format!("{}: no header", path.display()))?.iter().map(String::from).collect();
    if header.first().map(String::as_str) != Some("image") {
        bail!("{}: not an infer summary (first column {:?}, expected \"image\")", path.display(), header.first());
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {} is malformed", path.display(), i + 1))?;
        rows.push(rec.iter().map(String::from).collect());
    }
    Ok(ShardFile { shard, path: path.to_path_buf(), header, rows })
}

/// Up to ten names, then how many more.
fn list(names: &[String]) -> String {
    let mut s = names.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 10 {
        s += &format!(" and {} more", names.len() - 10);
    }
    s
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    for dir in &args.dirs {
        let entries = std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
        let mut found: Vec<(Shard, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| Some((Shard::from_summary_name(&p.file_name()?.to_string_lossy())?, p)))
            .collect();
        found.sort_by_key(|(s, _)| s.k);
        for (s, p) in found {
            shards.push(read_shard(&p, s)?);
        }
    }
    let Some(first) = shards.first() else {
        bail!("no summary.shard-K-of-N.csv in {}", args.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "));
    };
    let n = first.shard.n;
    let header = first.header.clone();
    if let Some(other) = shards.iter().find(|s| s.shard.n != n) {
        bail!("{} is a shard of {} but {} is a shard of {n}: different runs", other.path.display(), other.shard.n, first.path.display());
    }
    if let Some(other) = shards.iter().find(|s| s.header != header) {
        bail!("{} has other columns than {}", other.path.display(), first.path.display());
    }
    let present: BTreeSet<usize> = shards.iter().map(|s| s.shard.k).collect();
    let missing: Vec<String> = (0..n).filter(|k| !present.contains(k)).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        bail!("shards missing: {} (rerun `infer --shard` for them; it resumes)", list(&missing));
    }
    if present.len() != shards.len() {
        bail!("a shard's summary was found in more than one folder");
    }

    // Every image once, with its per-image table beside its shard's summary.
    let mut rows: BTreeMap<String, (Vec<String>, &Path)> = BTreeMap::new();
    let mut duplicates = Vec::new();
    let mut no_table = Vec::new();
    let mut wrong_shard = Vec::new();
    for s in &shards {
        let dir = s.path.parent().unwrap_or(Path::new("."));
        for row in &s.rows {
            let name = row[0].clone();
            let stem = batch::stem(Path::new(&name));
            if !dir.join(format!("{stem}.csv")).is_file() {
                no_table.push(name.clone());
            }
            if batch::shard_of(&stem, n) != s.shard.k {
                wrong_shard.push(format!("{name} (in {})", s.path.display()));
            }
            if let Some((_, other)) = rows.insert(name.clone(), (row.clone(), &s.path)) {
                duplicates.push(format!("{name} ({} and {})", other.display(), s.path.display()));
            }
        }
    }
    if !duplicates.is_empty() {
        bail!("images done twice: {}", list(&duplicates));
    }
    if !wrong_shard.is_empty() {
        bail!("rows in a shard that does not own them (mixed runs?): {}", list(&wrong_shard));
    }
    if !no_table.is_empty() {
        bail!("rows whose per-image table is missing: {}", list(&no_table));
    }
    if !args.inputs.is_empty() {
        let inputs = xray::expand_paths(&args.inputs)?;
        let names: BTreeSet<String> =
            inputs.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect();
        let not_done: Vec<String> = names.iter().filter(|n| !rows.contains_key(*n)).cloned().collect();
        let unknown: Vec<String> = rows.keys().filter(|n| !names.contains(*n)).cloned().collect();
        if !not_done.is_empty() {
            bail!("{} of {} input images were not done (unreadable, or a shard stopped early): {}", not_done.len(), names.len(), list(&not_done));
        }
        if !unknown.is_empty() {
            bail!("rows for images that are not among the inputs: {}", list(&unknown));
        }
    }

    let out = args.out.clone().unwrap_or_else(|| args.dirs[0].join("summary.csv"));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for (row, _) in rows.values() {
        w.write_record(row)?;
    }
    write_atomically(&out, &w.into_inner()?).with_context(|| format!("{}: cannot write", out.display()))?;
    eprintln!("merged {n} shards: {} images, none missing or duplicated; {}", rows.len(), out.display());
    Ok(())
}
