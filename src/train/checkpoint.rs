//! The files of a run, derived from `--out FILE`:
//!
//! - `FILE`: the best model so far (lowest validation error), safetensors in the released
//!   key layout, loadable by [`HybridGNet::load`](crate::model::HybridGNet::load);
//! - `FILE.log.csv`: one row per epoch;
//! - `FILE.ckpt/`: what `--resume` needs to continue exactly: `state.json` (options, epochs
//!   done, best error; the random draws of an epoch derive from the seed and the epoch
//!   number, so no generator state is stored), the weights and Adam's moments in burn's
//!   burnpack format (which keeps the parameter ids the optimizer state is keyed by), and
//!   `last.safetensors` for evaluating the latest epoch.
//!
//! Weights and optimizer files carry the epoch in their names and `state.json` (written last,
//! atomically) names them, so a crash mid-save leaves the previous checkpoint usable.

use anyhow::Context;
use std::path::{Path, PathBuf};

use super::RunState;

pub const STATE: &str = "state.json";
pub const LAST_SAFETENSORS: &str = "last.safetensors";

/// Paths of a run's files.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFiles {
    pub best: PathBuf,
    pub log: PathBuf,
    pub ckpt: PathBuf,
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl RunFiles {
    pub fn new(out: &Path) -> Self {
        RunFiles { best: out.to_path_buf(), log: suffixed(out, ".log.csv"), ckpt: suffixed(out, ".ckpt") }
    }

    /// The run a `--resume` argument names: the checkpoint folder itself, or the `--out`
    /// file whose `.ckpt` folder exists.
    pub fn for_resume(arg: &Path) -> anyhow::Result<Self> {
        if arg.join(STATE).is_file() {
            let name = arg.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let out = match name.strip_suffix(".ckpt") {
                Some(stem) if !stem.is_empty() => arg.with_file_name(stem),
                _ => read_state(arg)?.out.with_context(|| format!("{}: no model path recorded", arg.display()))?,
            };
            return Ok(RunFiles { ckpt: arg.to_path_buf(), ..RunFiles::new(&out) });
        }
        let files = RunFiles::new(arg);
        if files.ckpt.join(STATE).is_file() {
            return Ok(files);
        }
        anyhow::bail!(
            "{}: not a checkpoint (expected a folder with {STATE}, or a model file with a .ckpt folder beside it)",
            arg.display()
        )
    }
}

/// The files the first trainer version kept beside `FILE`: weights and state, no optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Legacy {
    pub weights: PathBuf,
    pub state: PathBuf,
}

impl Legacy {
    pub fn find(out: &Path) -> Option<Legacy> {
        let l = Legacy { weights: suffixed(out, ".last.safetensors"), state: suffixed(out, ".state.json") };
        (l.weights.is_file() && l.state.is_file()).then_some(l)
    }
}

/// The state the first trainer version wrote.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LegacyState {
    pub options: super::TrainOptions,
    pub epoch: usize,
    pub best_error_px: Option<f64>,
}

pub fn read_legacy_state(path: &Path) -> anyhow::Result<LegacyState> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a training state", path.display()))
}

/// Names of the weight and optimizer files of the checkpoint after `epoch` epochs.
pub fn epoch_files(epoch: usize) -> (String, String) {
    (format!("model-{epoch:05}.bpk"), format!("optimizer-{epoch:05}.bpk"))
}

pub fn read_state(ckpt: &Path) -> anyhow::Result<RunState> {
    let path = ckpt.join(STATE);
    let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read checkpoint state", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not a checkpoint state", path.display()))
}

pub fn write_state(ckpt: &Path, state: &RunState) -> anyhow::Result<()> {
    crate::formats::write_atomically(&ckpt.join(STATE), &serde_json::to_vec_pretty(state)?)?;
    Ok(())
}

/// Delete weight/optimizer files of other epochs than the ones `keep` names.
pub fn remove_stale(ckpt: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(ckpt) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("model-") || name.starts_with("optimizer-")) && name.ends_with(".bpk");
        if ours && !keep.contains(&name.as_str()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_the_out_name() {
        let f = RunFiles::new(Path::new("runs/m.safetensors"));
        assert_eq!(f.log, Path::new("runs/m.safetensors.log.csv"));
        assert_eq!(f.ckpt, Path::new("runs/m.safetensors.ckpt"));
        assert_eq!(epoch_files(7), ("model-00007.bpk".into(), "optimizer-00007.bpk".into()));
    }

    #[test]
    fn resume_accepts_the_folder_or_the_model_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.safetensors");
        let files = RunFiles::new(&out);
        assert!(RunFiles::for_resume(&out).is_err());
        std::fs::create_dir_all(&files.ckpt).unwrap();
        std::fs::write(files.ckpt.join(STATE), "{}").unwrap();
        assert_eq!(RunFiles::for_resume(&out).unwrap(), files);
        assert_eq!(RunFiles::for_resume(&files.ckpt).unwrap(), files);
    }
}
