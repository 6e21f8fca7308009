//! Batch runs split over many processes: which images a shard owns, and how shard outputs
//! are named, so `infer --shard K/N` on a cluster array and `merge` agree without talking.
//!
//! An image belongs to shard `hash(file stem) mod N`: the same image lands in the same shard
//! whatever else is in the folder, in whatever order the inputs are listed, and on a rerun
//! after a crash (resume skips what the shard already wrote).

use std::path::Path;

/// Shard `k` of `n` (0-based, as a Slurm array's `SLURM_ARRAY_TASK_ID` with `--array=0-(n-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// "K/N", with 0 ≤ K < N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text.split_once('/').ok_or_else(|| format!("--shard {text:?}: expected K/N, e.g. 0/4"))?;
        let k: usize = k.trim().parse().map_err(|_| format!("--shard {text:?}: K is not a number"))?;
        let n: usize = n.trim().parse().map_err(|_| format!("--shard {text:?}: N is not a number"))?;
        if n == 0 || k >= n {
            return Err(format!("--shard {text:?}: need 0 ≤ K < N"));
        }
        Ok(Shard { k, n })
    }

    /// Does this shard own the image at `path`?
    pub fn owns(&self, path: &Path) -> bool {
        shard_of(&stem(path), self.n) == self.k
    }

    /// The summary file this shard writes beside the per-image tables.
    pub fn summary_name(&self) -> String {
        format!("summary.shard-{}-of-{}.csv", self.k, self.n)
    }

    /// The shard a summary file name belongs to, if it is one.
    pub fn from_summary_name(name: &str) -> Option<Shard> {
        let rest = name.strip_prefix("summary.shard-")?.strip_suffix(".csv")?;
        let (k, n) = rest.split_once("-of-")?;
        let s = Shard { k: k.parse().ok()?, n: n.parse().ok()? };
        (s.n > 0 && s.k < s.n).then_some(s)
    }
}

/// The per-image table's name stem (the file name without its last extension).
pub fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// FNV-1a of the stem, mod `n`: stable across runs, platforms and Rust versions.
pub fn shard_of(stem: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stem.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_names_round_trip() {
        let n = 4;
        let names: Vec<String> = (0..400).map(|i| format!("img{i:05}")).collect();
        let mut counts = vec![0; n];
        for s in &names {
            let owners: Vec<usize> = (0..n).filter(|&k| Shard { k, n }.owns(Path::new(&format!("/d/{s}.png")))).collect();
            assert_eq!(owners.len(), 1, "{s}");
            counts[owners[0]] += 1;
        }
        // Roughly even: each of 4 shards gets 100 ± 30 of 400.
        assert!(counts.iter().all(|&c| (70..=130).contains(&c)), "{counts:?}");
        // The known value pins the hash (FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c).
        assert_eq!(shard_of("a", 1 << 16), 0xec8c);
        let s = Shard::parse("2/8").unwrap();
        assert_eq!(Shard::from_summary_name(&s.summary_name()), Some(s));
        assert!(Shard::parse("8/8").is_err() && Shard::parse("1").is_err() && Shard::parse("x/2").is_err());
        assert_eq!(Shard::from_summary_name("summary.csv"), None);
    }
}
