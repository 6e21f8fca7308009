//! The CheXmask evaluation reproduces the authors' published per-image numbers.
//!
//! `shared/data/chexmask` holds the VinDr-CXR physician validation: HybridGNet's
//! prediction, two physicians' corrections, and the authors' `eval_*.csv` results. Every
//! row of every eval file must come out to 1e-4 from the masks in the CSVs.
//!
//! What the numbers say about how the authors ran it:
//! - They scored the RLE masks stored in the files: with masks filled from the landmarks
//!   instead, the rows involving a physician's file no longer match (the physicians'
//!   masks hold pixels their landmark polygons do not cover).
//! - Dice, Hausdorff (max of both directions) and HD95 (both directions pooled) are all
//!   symmetric, so the numbers cannot tell "pred" from "ref". The file names say
//!   `X_vs_Y`; we take X as pred and Y as ref. The eval files' `Dice RCA` columns are the
//!   prediction file's, consistent with that.
//! - Their `Dice GT` is the mean of `Dice Lungs` and `Dice Heart`, and `MSE` the mean
//!   squared difference of the 240 landmark coordinates; both are checked too.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cxr_review::formats::chexmask::ChexmaskTable;
use cxr_review::landmarks::NUM_NODES;
use cxr_review::metrics::evaluation::{EvalOptions, ImageScores, MaskChoice, evaluate};

fn dir() -> PathBuf {
    common::shared_data().join("chexmask")
}

/// `cxr-review eval --pred PRED --ref <annotator 1>`, for the caller's further flags.
fn eval_against_annotator1(pred: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxr-review"));
    cmd.args(["eval", "--pred"]).arg(pred).arg("--ref").arg(dir().join("VinDr-CXR_annotator1.csv"));
    cmd
}

fn table(name: &str) -> ChexmaskTable {
    ChexmaskTable::read(&dir().join(format!("VinDr-CXR_{name}.csv"))).unwrap_or_else(|e| panic!("{e}"))
}

/// The authors' rows by ImageID: column → value.
fn authors(name: &str) -> HashMap<String, HashMap<String, String>> {
    let path = dir().join(format!("eval_{name}.csv"));
    let mut r = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let row: HashMap<String, String> = header.iter().cloned().zip(rec.iter().map(String::from)).collect();
            (row["ImageID"].clone(), row)
        })
        .collect()
}

const PAIRS: [(&str, &str, &str); 3] = [
    ("prediction_vs_annotator1", "prediction", "annotator1"),
    ("prediction_vs_annotator2", "prediction", "annotator2"),
    ("annotator2_vs_annotator1", "annotator2", "annotator1"),
];

fn ours(s: &ImageScores) -> [(&'static str, f64); 6] {
    [
        ("Dice Lungs", s.dice_lungs),
        ("Dice Heart", s.dice_heart),
        ("Hausdorff Lungs", s.lungs.hausdorff),
        ("Hausdorff Heart", s.heart.hausdorff),
        ("Hausdorff 95 Lungs", s.lungs.hd95),
        ("Hausdorff 95 Heart", s.heart.hd95),
    ]
}

/// Rows whose six metrics are all within 1e-4 of the authors'.
fn matching_rows(
    eval_name: &str,
    pred: &ChexmaskTable,
    reference: &ChexmaskTable,
    masks: MaskChoice,
) -> (usize, Vec<String>) {
    let expected = authors(eval_name);
    let result = evaluate(pred, reference, EvalOptions { masks, spacing: None }).unwrap();
    assert_eq!(result.images.len(), 50, "{eval_name}: every image is in both files");
    assert!(result.only_in_pred.is_empty() && result.only_in_ref.is_empty());
    let mut ok = 0;
    let mut problems = Vec::new();
    for s in &result.images {
        let row = &expected[&s.id];
        let bad: Vec<String> = ours(s)
            .iter()
            .filter_map(|&(col, v)| {
                let want: f64 = row[col].parse().unwrap();
                ((v - want).abs() > 1e-4).then(|| format!("{} {col}: ours {v}, authors {want}", s.id))
            })
            .collect();
        if bad.is_empty() {
            ok += 1;
        }
        problems.extend(bad);
    }
    (ok, problems)
}

#[test]
fn reproduces_the_authors_numbers_from_the_rle_masks() {
    let tables: HashMap<&str, ChexmaskTable> =
        ["prediction", "annotator1", "annotator2"].into_iter().map(|n| (n, table(n))).collect();
    for (eval_name, pred, reference) in PAIRS {
        let expected = authors(eval_name);
        assert_eq!(expected.len(), 50);
        let (ok, problems) = matching_rows(eval_name, &tables[pred], &tables[reference], MaskChoice::Rle);
        assert_eq!(ok, 50, "{eval_name}:\n{}", problems.join("\n"));
        // Symmetric metrics: swapping the files changes nothing.
        let (ok, problems) = matching_rows(eval_name, &tables[reference], &tables[pred], MaskChoice::Rle);
        assert_eq!(ok, 50, "{eval_name} swapped:\n{}", problems.join("\n"));
    }
}

#[test]
fn the_authors_did_not_score_masks_filled_from_landmarks() {
    let (p, a1, a2) = (table("prediction"), table("annotator1"), table("annotator2"));
    let (ok, _) = matching_rows("prediction_vs_annotator1", &p, &a1, MaskChoice::Landmarks);
    assert!(ok < 50, "filled landmarks reproduce every row too: the test cannot tell the two apart");
    let (ok, _) = matching_rows("annotator2_vs_annotator1", &a2, &a1, MaskChoice::Landmarks);
    assert!(ok < 50);
}

#[test]
fn dice_gt_and_mse_columns() {
    for (eval_name, pred, reference) in PAIRS {
        let (tp, tr) = (table(pred), table(reference));
        let result = evaluate(&tp, &tr, EvalOptions::default()).unwrap();
        let expected = authors(eval_name);
        for s in &result.images {
            let row = &expected[&s.id];
            let dice_gt: f64 = row["Dice GT"].parse().unwrap();
            assert!(((s.dice_lungs + s.dice_heart) / 2.0 - dice_gt).abs() < 1e-9, "{} Dice GT", s.id);
            let (a, b) = (tp.get(&s.id).unwrap().landmarks.unwrap(), tr.get(&s.id).unwrap().landmarks.unwrap());
            let mse =
                (0..NUM_NODES).flat_map(|n| [0, 1].map(|k| (a[n][k] as f64 - b[n][k] as f64).powi(2))).sum::<f64>()
                    / (2 * NUM_NODES) as f64;
            let want: f64 = row["MSE"].parse().unwrap();
            // The authors stored MSE as float32.
            assert!((mse - want).abs() <= 1e-6 * want.max(1.0), "{} MSE: ours {mse}, authors {want}", s.id);
        }
    }
}

#[test]
fn eval_command_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report.csv");
    let plots = out.path().join("plots");
    let run = eval_against_annotator1(&dir().join("VinDr-CXR_prediction.csv"))
        .arg("--out")
        .arg(&report)
        .arg("--plots")
        .arg(&plots)
        .args(["--spacing-mm", "0.3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("50 images in both"), "{stdout}");
    assert!(stdout.contains("the files' RLE masks for 50 images, masks filled from landmarks for 0"), "{stdout}");
    assert!(stdout.contains("Dice Lungs") && stdout.contains("Node error mm"), "{stdout}");
    assert!(stdout.contains("skipped uncertainty plots"), "{stdout}");

    let mut r = csv::Reader::from_path(&report).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..7],
        [
            "image",
            "Dice Lungs",
            "Dice Heart",
            "Hausdorff Lungs",
            "Hausdorff Heart",
            "Hausdorff 95 Lungs",
            "Hausdorff 95 Heart"
        ]
    );
    assert!(header.contains(&"Node error Heart px".to_string()) && header.contains(&"Node error mm".to_string()));
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 50);
    let expected = authors("prediction_vs_annotator1");
    for row in &rows {
        let want = &expected[&row[0]];
        for (k, col) in header[1..7].iter().enumerate() {
            let (ours, theirs): (f64, f64) = (row[k + 1].parse().unwrap(), want[col].parse().unwrap());
            assert!((ours - theirs).abs() < 1e-4, "{} {col}", &row[0]);
        }
        let px: f64 = row[header.iter().position(|h| h == "Node error px").unwrap()].parse().unwrap();
        let mm: f64 = row[header.iter().position(|h| h == "Node error mm").unwrap()].parse().unwrap();
        assert!((mm - 0.3 * px).abs() < 1e-9);
        assert_eq!(&row[header.len() - 1], "rle");
    }
    for name in ["per_image_scores.png", "node_error_template.png"] {
        let img = image::open(plots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(img.width() > 500 && img.height() > 500);
    }
    assert!(!plots.join("reliability.png").exists());
}

/// Node tables built here (means = the prediction's landmarks, standard deviations that
/// grow with the real error) exercise `--uncertainty`; the test checks that the command
/// finds the relation, not anything about a real model.
#[test]
fn eval_command_with_uncertainty_tables() {
    use cxr_review::formats::chexmask_u::NodeTable;
    let (p, a) = (table("prediction"), table("annotator1"));
    let out = tempfile::tempdir().unwrap();
    let nodes = out.path().join("nodes");
    std::fs::create_dir(&nodes).unwrap();
    for row in &p.rows {
        let mean = row.landmarks.unwrap();
        let reference = a.get(&row.id).unwrap().landmarks.unwrap();
        let std = std::array::from_fn(|n| {
            let e = (mean[n][0] - reference[n][0]).hypot(mean[n][1] - reference[n][1]);
            let wobble = ((n * 37 + row.id.len()) % 7) as f32 * 0.3;
            [0.5 + 0.2 * e + wobble, 0.5 + 0.1 * e]
        });
        NodeTable { mean, std, expected_error: None }.write(&nodes.join(format!("{}.csv", row.id))).unwrap();
    }
    std::fs::write(nodes.join("summary.csv"), "image,width,height\nx.png,1024,1024\n").unwrap();
    let plots = out.path().join("plots");
    let run = eval_against_annotator1(&dir().join("VinDr-CXR_prediction.csv"))
        .arg("--uncertainty")
        .arg(&nodes)
        .arg("--plots")
        .arg(&plots)
        .args(["--bins", "5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("node tables for 50 of the scored images"), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("node std vs node error (6000 nodes)")).expect(&stdout);
    let r: f64 = line.split("Pearson r = ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(r > 0.8, "{line}");
    assert!(!stdout.contains("warning"), "{stdout}");
    for name in ["error_vs_uncertainty.png", "reliability.png", "score_vs_error.png"] {
        assert!(plots.join(name).is_file(), "{name} missing:\n{stdout}");
    }

    // The same folder as --pred: landmarks from the tables, masks filled from them.
    let run = eval_against_annotator1(&nodes).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("50 images in both") && stdout.contains("masks filled from landmarks for 50"), "{stdout}");
}

#[test]
fn eval_command_reports_bad_input() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("bad.csv");
    std::fs::write(&bad, "ImageID,Landmarks\nabc,\"1,2,3\"\n").unwrap();
    let run = eval_against_annotator1(&bad).output().unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.csv, row 1 (line 2, id abc): Landmarks: expected 240 numbers"), "{stderr}");
}
