//! The model cxr-review ships (trained by `cxr-review train`, recipe in `assets/README.md`)
//! and where to find it when no `--weights` is given.

use std::path::{Path, PathBuf};

/// File name of the shipped weights inside `assets/`.
pub const SHIPPED_WEIGHTS: &str = "hybridgnet_jsrt.safetensors";

/// Environment variable that overrides the default weights.
pub const WEIGHTS_ENV: &str = "CXR_WEIGHTS";

/// Where the default weights are looked for, in order: `$CXR_WEIGHTS`, `assets/` beside the
/// executable (an installed copy) or up to three folders above it (`target/<profile>/`),
/// then the source tree the binary was built from.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(WEIGHTS_ENV) {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(Path::to_path_buf);
        for _ in 0..4 {
            let Some(d) = dir else { break };
            out.push(d.join("assets").join(SHIPPED_WEIGHTS));
            dir = d.parent().map(Path::to_path_buf);
        }
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(SHIPPED_WEIGHTS));
    out
}

/// The default weights file, or an error listing where it was looked for.
pub fn default_weights() -> Result<PathBuf, String> {
    let tried = candidates();
    if let Some(env) = std::env::var_os(WEIGHTS_ENV) {
        let p = PathBuf::from(env);
        return if p.is_file() { Ok(p) } else { Err(format!("{WEIGHTS_ENV}={} is not a file", p.display())) };
    }
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        format!("the shipped model {SHIPPED_WEIGHTS} was not found (looked in {}); pass --weights FILE", list.join(", "))
    })
}

/// The weights to use: the user's file when given, else the shipped model.
pub fn resolve(user: Option<&Path>) -> Result<PathBuf, String> {
    match user {
        Some(p) => Ok(p.to_path_buf()),
        None => default_weights(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_tree_is_always_a_candidate() {
        let c = candidates();
        assert!(c.last().unwrap().ends_with(Path::new("assets").join(SHIPPED_WEIGHTS)));
        assert!(c.last().unwrap().starts_with(env!("CARGO_MANIFEST_DIR")));
    }

    #[test]
    fn a_user_file_wins() {
        assert_eq!(resolve(Some(Path::new("x.pt"))).unwrap(), PathBuf::from("x.pt"));
    }
}
