//! Batch at scale: `infer --shard K/N` in four concurrent processes (through the Slurm array
//! script, with `sbatch` stood in for), merged, equals one unsharded run; `merge` refuses
//! missing shards, doubled images and missing inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cxr_review::model::{HybridGNet, ModelConfig};

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_cxr-review")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// Twelve small grey images of different sizes, and random weights to segment them with.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    for i in 0..12u32 {
        let (w, h) = (48 + 4 * i, 64 - 2 * i);
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * (3 + i) + y * 5) % 256) as u8]))
            .save(images.join(format!("case{i:02}.png")))
            .unwrap();
    }
    let weights = dir.join("w.safetensors");
    HybridGNet::random(&ModelConfig::released(64), 2, &burn::tensor::Device::flex()).save(&weights).unwrap();
    (images, weights)
}

/// Summary rows without the timing column (the only one that may differ between runs).
fn rows_without_seconds(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let secs = header.iter().position(|h| *h == "seconds").unwrap();
    std::iter::once(header.join(","))
        .chain(lines.map(|l| l.split(',').enumerate().filter(|(i, _)| *i != secs).map(|(_, v)| v).collect::<Vec<_>>().join(",")))
        .collect()
}

#[test]
fn four_shards_merged_equal_one_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let (images, weights) = setup(dir.path());
    let whole = dir.path().join("whole");
    ok(Command::new(exe())
        .args(["infer", "--samples", "3", "--seed", "0", "--device", "cpu", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(&whole)
        .arg(&images)
        .output()
        .unwrap());

    // The array script, four tasks at once, with a stand-in `sbatch` that records its call.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("sbatch-calls");
    std::fs::write(bin.join("sbatch"), format!("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {}\n", calls.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(bin.join("sbatch")).status().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/slurm/infer_array.sh");
    let sharded = dir.path().join("sharded");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let tasks: Vec<_> = (0..4)
        .map(|k| {
            Command::new("bash")
                .arg(&script)
                .current_dir(dir.path())
                .env("PATH", &path)
                .env("IMAGES", &images)
                .env("OUT", &sharded)
                .env("SHARDS", "4")
                .env("SAMPLES", "3")
                .env("CXR_REVIEW", exe())
                .env("CXR_WEIGHTS", &weights)
                .env("SLURM_ARRAY_TASK_ID", k.to_string())
                .env("SLURM_ARRAY_JOB_ID", "4242")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut per_shard = Vec::new();
    for t in tasks {
        let o = ok(t.wait_with_output().unwrap());
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("images/s"), "throughput is printed: {err}");
        per_shard.push(err);
    }
    // Every image in exactly one shard, and the shards are not all empty but one.
    let counts: Vec<usize> = (0..4).map(|k| std::fs::read_to_string(sharded.join(format!("summary.shard-{k}-of-4.csv"))).unwrap().lines().count() - 1).collect();
    assert_eq!(counts.iter().sum::<usize>(), 12, "{counts:?}");
    assert!(counts.iter().filter(|&&c| c > 0).count() >= 2, "{counts:?}");

    // The last task queued the merge after the array; run what it queued.
    let call = std::fs::read_to_string(&calls).unwrap();
    assert!(call.contains("--dependency=afterok:4242"), "{call}");
    let wrap = call.lines().find_map(|l| l.strip_prefix("--wrap=")).unwrap();
    ok(Command::new("bash").arg("-c").arg(wrap).output().unwrap());

    assert_eq!(rows_without_seconds(&sharded.join("summary.csv")), rows_without_seconds(&whole.join("summary.csv")));
    for i in 0..12 {
        let name = format!("case{i:02}.csv");
        assert_eq!(std::fs::read(sharded.join(&name)).unwrap(), std::fs::read(whole.join(&name)).unwrap(), "{name}");
    }

    // A shard rerun finds its work done and changes nothing (resume is stable).
    let before = std::fs::read(sharded.join("summary.shard-1-of-4.csv")).unwrap();
    ok(Command::new(exe())
        .args(["infer", "--samples", "3", "--seed", "0", "--device", "cpu", "--shard", "1/4", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(&sharded)
        .arg(&images)
        .output()
        .unwrap());
    assert_eq!(std::fs::read(sharded.join("summary.shard-1-of-4.csv")).unwrap(), before);
}

#[test]
fn merge_refuses_missing_shards_doubled_images_and_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let (images, weights) = setup(dir.path());
    let out = dir.path().join("out");
    for k in 0..3 {
        ok(Command::new(exe())
            .args(["infer", "--samples", "2", "--device", "cpu", "--shard", &format!("{k}/3"), "--weights"])
            .arg(&weights)
            .arg("--out")
            .arg(&out)
            .arg(&images)
            .output()
            .unwrap());
    }
    let merge = |extra: &[&str]| Command::new(exe()).arg("merge").arg(&out).args(extra).output().unwrap();
    ok(merge(&[]));

    // An input image that no shard did (added after the run).
    std::fs::copy(images.join("case00.png"), images.join("late.png")).unwrap();
    let o = merge(&["--inputs", images.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("late.png"), "{o:?}");
    std::fs::remove_file(images.join("late.png")).unwrap();
    ok(merge(&["--inputs", images.to_str().unwrap()]));

    // A row copied into another shard's summary.
    let s0 = out.join("summary.shard-0-of-3.csv");
    let s1 = out.join("summary.shard-1-of-3.csv");
    let original = std::fs::read_to_string(&s1).unwrap();
    let row = std::fs::read_to_string(&s0).unwrap().lines().nth(1).unwrap().to_string();
    std::fs::write(&s1, format!("{original}{row}\n")).unwrap();
    let o = merge(&[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && (err.contains("done twice") || err.contains("does not own")), "{err}");
    std::fs::write(&s1, original).unwrap();

    // A missing shard.
    std::fs::remove_file(out.join("summary.shard-2-of-3.csv")).unwrap();
    let o = merge(&[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && err.contains("shards missing: 2/3"), "{err}");
}
