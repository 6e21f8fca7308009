//! The trainer on a tiny synthetic data set (phantoms with the template landmarks, shifted),
//! the command line end to end, and the real JSRT split in the shared data.

use std::path::Path;

use crate::common;

use clap::Parser;
use cxr_review::formats::chexmask::landmarks_text;
use cxr_review::landmarks::template;
use cxr_review::model::HybridGNet;
use cxr_review::train::dataset::{self, Prepared};
use cxr_review::train::{RunFiles, TrainOptions, Trainer, run};
use cxr_review::xray::phantom::chest_phantom;

fn options(epochs: usize) -> TrainOptions {
    TrainOptions { size: 64, epochs, batch: 2, lr: 1e-3, kl_warmup: 10, seed: 7, val_samples: 3, ..TrainOptions::default() }
}

/// Five phantom images, each shifted, with the template landmarks shifted alike: four for
/// training, one for validation.
fn synthetic(dir: &Path) {
    let img = chest_phantom();
    let gray = img.to_gray8(img.default_window());
    let (w, h) = (gray.width() as i64, gray.height() as i64);
    let mut csv = String::from("image,split,Landmarks\n");
    let shifts = [(0i64, 0i64), (40, 0), (0, 40), (-30, 20), (20, -20)];
    std::fs::create_dir_all(dir.join("images")).unwrap();
    for (i, (dx, dy)) in shifts.into_iter().enumerate() {
        let shifted = image::ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
            let (sx, sy) = (x as i64 - dx, y as i64 - dy);
            if (0..w).contains(&sx) && (0..h).contains(&sy) { *gray.get_pixel(sx as u32, sy as u32) } else { image::Luma([0u8]) }
        });
        // Smaller than the phantom: training reads any size (and letterboxes it).
        let small = image::imageops::resize(&shifted, 256, 256, image::imageops::FilterType::Triangle);
        let scale = 256.0 / w as f32;
        small.save(dir.join("images").join(format!("p{i}.png"))).unwrap();
        let l = template().map(|p| [(p[0] + dx as f32) * scale, (p[1] + dy as f32) * scale]);
        let split = if i < 4 { "train" } else { "val" };
        // Identifiers without extension, as the JSRT CSV writes them.
        csv.push_str(&format!("p{i},{split},\"{}\"\n", landmarks_text(&l)));
    }
    std::fs::write(dir.join("landmarks.csv"), csv).unwrap();
}

fn load(dir: &Path) -> (Vec<Prepared>, Vec<Prepared>) {
    let train = dataset::prepare(&dataset::read_split(dir, "train").unwrap(), 64, || {}).unwrap();
    let val = dataset::prepare(&dataset::read_split(dir, "val").unwrap(), 64, || {}).unwrap();
    (train, val)
}

fn cpu() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// Train `trainer` to its epoch limit; (loss, val error) per epoch.
fn train(trainer: &mut Trainer, data: &(Vec<Prepared>, Vec<Prepared>), files: &RunFiles) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    run(trainer, &data.0, &data.1, files, |_, _| {}, |r| out.push((r.loss.total, r.val.error_px))).unwrap();
    out
}

#[test]
fn the_loss_drops_and_the_run_leaves_its_files() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let data = load(dir.path());
    assert_eq!((data.0.len(), data.1.len()), (4, 1));
    assert!(data.0.iter().all(|p| p.pixels.len() == 64 * 64));

    let files = RunFiles::new(&dir.path().join("m.safetensors"));
    let mut trainer = Trainer::new(options(12), None, &cpu()).unwrap();
    let losses = train(&mut trainer, &data, &files);
    assert_eq!(losses.len(), 12);
    let first = (losses[0].0 + losses[1].0) / 2.0;
    let last = (losses[10].0 + losses[11].0) / 2.0;
    assert!(last < first * 0.5, "loss {first} -> {last}: {losses:?}");

    // Best model (loadable by the app), log, checkpoint.
    let best = HybridGNet::load(&files.best, &cpu()).unwrap();
    assert_eq!((best.config().input_size, best.config().skip_blocks), (64, true));
    let log = std::fs::read_to_string(&files.log).unwrap();
    assert_eq!(log.lines().count(), 13, "{log}");
    assert!(log.starts_with("epoch,loss,mse_output,mse_pos2,mse_pos1,kl,beta,lr,val_error_px,dice_lungs,dice_heart"));
    let state = cxr_review::train::checkpoint::read_state(&files.ckpt).unwrap();
    assert_eq!(state.epoch, 12);
    let best_epoch = state.best_epoch.unwrap();
    assert!((state.best_error_px.unwrap() - losses[best_epoch - 1].1).abs() < 1e-9);
    assert!(losses.iter().all(|l| l.1 >= state.best_error_px.unwrap()));
    HybridGNet::load(&files.ckpt.join("last.safetensors"), &cpu()).unwrap();
    // Only the latest epoch's weights and optimizer state are kept.
    let mut kept: Vec<String> =
        std::fs::read_dir(&files.ckpt).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    kept.sort();
    assert_eq!(kept, ["last.safetensors", "model-00012.bpk", "optimizer-00012.bpk", "state.json"]);
}

#[test]
fn a_resumed_run_continues_exactly_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let data = load(dir.path());

    let whole = RunFiles::new(&dir.path().join("whole.safetensors"));
    let mut trainer = Trainer::new(options(4), None, &cpu()).unwrap();
    let uninterrupted = train(&mut trainer, &data, &whole);

    let split = RunFiles::new(&dir.path().join("split.safetensors"));
    let mut trainer = Trainer::new(options(2), None, &cpu()).unwrap();
    let mut resumed = train(&mut trainer, &data, &split);
    drop(trainer);
    let mut trainer = Trainer::resume(&split.ckpt, &cpu()).unwrap();
    assert_eq!(trainer.state.epoch, 2);
    trainer.state.options.epochs = 4;
    resumed.extend(train(&mut trainer, &data, &split));

    // Same weights, same Adam moments, same draws: the same numbers (up to f32 summation
    // order, which is fixed on one machine).
    for (e, (a, b)) in uninterrupted.iter().zip(&resumed).enumerate() {
        assert!((a.0 - b.0).abs() <= 1e-6 * a.0.abs(), "epoch {}: loss {} vs {}", e + 1, a.0, b.0);
        assert!((a.1 - b.1).abs() < 1e-3, "epoch {}: val error {} vs {}", e + 1, a.1, b.1);
    }
    assert_eq!(std::fs::read_to_string(&split.log).unwrap().lines().count(), 5);
}

#[test]
fn bad_rows_and_unreadable_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let csv_path = dir.path().join("landmarks.csv");
    let good = std::fs::read_to_string(&csv_path).unwrap();

    // Row 3 (the second data row) loses its last two numbers.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let cut = lines[2].rfind(',').unwrap();
    let cut = lines[2][..cut].rfind(',').unwrap();
    lines[2] = format!("{}\"", &lines[2][..cut]);
    std::fs::write(&csv_path, lines.join("\n")).unwrap();
    let err = format!("{:#}", dataset::read_split(dir.path(), "train").unwrap_err());
    assert!(err.contains("row 3") && err.contains("landmarks.csv") && err.contains("238"), "{err}");

    std::fs::write(&csv_path, "name,Landmarks\nx,1\n").unwrap();
    let err = format!("{:#}", dataset::read_split(dir.path(), "train").unwrap_err());
    assert!(err.contains("`image`") && err.contains("name, Landmarks"), "{err}");

    std::fs::write(&csv_path, good.replace("p2,", "missing,")).unwrap();
    let err = format!("{:#}", dataset::read_split(dir.path(), "train").unwrap_err());
    assert!(err.contains("row 4") && err.contains("missing"), "{err}");

    std::fs::write(&csv_path, &good).unwrap();
    std::fs::write(dir.path().join("images").join("p1.png"), b"not a png").unwrap();
    let samples = dataset::read_split(dir.path(), "train").unwrap();
    let err = format!("{:#}", dataset::prepare(&samples, 64, || {}).unwrap_err());
    assert!(err.contains("row 3") && err.contains("p1.png"), "{err}");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: cxr_review::cli::train::Args,
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let parsed = Cli::try_parse_from(std::iter::once("train").chain(args.iter().copied()))?;
    cxr_review::cli::train::run(parsed.args)
}

#[test]
fn the_command_line_trains_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let data = dir.path().to_str().unwrap();
    let out = dir.path().join("run").join("m.safetensors");
    let out_s = out.to_str().unwrap();
    let base = ["--data", data, "--out", out_s, "--size", "64", "--device", "cpu", "--seed", "3", "--limit", "3"];
    cli(&[&base[..], &["--epochs", "1", "--no-skip"]].concat()).unwrap();
    let m = HybridGNet::load(&out, &cpu()).unwrap();
    assert_eq!((m.config().input_size, m.config().skip_blocks), (64, false));

    // The recipe is the checkpoint's: changing it on resume is refused, repeating it is fine.
    let ckpt = format!("{out_s}.ckpt");
    let err = cli(&["--resume", &ckpt, "--lr", "1e-2"]).unwrap_err().to_string();
    assert!(err.contains("--lr") && !err.contains("--size"), "{err}");
    cli(&["--resume", &ckpt, "--epochs", "2", "--size", "64", "--no-skip"]).unwrap();
    // `--resume` with no path continues the run of --out.
    cli(&["--out", out_s, "--resume", "--epochs", "3"]).unwrap();
    let state = cxr_review::train::checkpoint::read_state(Path::new(&ckpt)).unwrap();
    assert_eq!((state.epoch, state.options.skip_blocks, state.data.unwrap().limit), (3, false, Some(3)));
    assert_eq!(std::fs::read_to_string(format!("{out_s}.log.csv")).unwrap().lines().count(), 4);

    // A resume argument that is no checkpoint.
    let err = cli(&["--resume", data]).unwrap_err().to_string();
    assert!(err.contains("not a checkpoint"), "{err}");
}

#[test]
fn fine_tuning_keeps_the_initial_models_architecture_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let data = dir.path().to_str().unwrap();
    let init = dir.path().join("init.safetensors");
    let config = cxr_review::model::ModelConfig { skip_maps: [5, 4], ..cxr_review::model::ModelConfig::released(64) };
    HybridGNet::random(&config, 2, &cpu()).save(&init).unwrap();
    let base = ["--data", data, "--init", init.to_str().unwrap(), "--epochs", "1", "--device", "cpu", "--limit", "2"];
    let config_of = |name: &str| *HybridGNet::load(&dir.path().join(name), &cpu()).unwrap().config();

    // No --size or --skip-maps: the initial model's 64 and 5,4, not the defaults (256, 6,5).
    let out = dir.path().join("same.safetensors");
    cli(&[&base[..], &["--out", out.to_str().unwrap()]].concat()).unwrap();
    assert_eq!(config_of("same.safetensors"), config);

    // Asked for: a larger input (progressive resizing) and finer maps.
    let out = dir.path().join("moved.safetensors");
    cli(&[&base[..], &["--out", out.to_str().unwrap(), "--size", "96", "--skip-maps", "4,3"]].concat()).unwrap();
    assert_eq!(config_of("moved.safetensors"), cxr_review::model::ModelConfig { input_size: 96, skip_maps: [4, 3], ..config });

    let err = cli(&[&base[..], &["--out", out.to_str().unwrap(), "--skip-maps", "7,3"]].concat()).unwrap_err().to_string();
    assert!(err.contains("7,3"), "{err}");
}

#[test]
fn a_run_of_the_first_trainer_version_resumes() {
    // It kept FILE.last.safetensors and FILE.state.json (no optimizer state, no data folder).
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let out = dir.path().join("old.safetensors");
    let model = HybridGNet::random(&cxr_review::model::ModelConfig::released(64), 1, &cpu());
    model.save(&dir.path().join("old.safetensors.last.safetensors")).unwrap();
    let state = r#"{"options":{"size":64,"skip_blocks":true,"epochs":60,"batch":4,"lr":0.001,"lr_step":15,"lr_factor":0.7,
        "weight_decay":0.00001,"kl_start":0.00001,"kl_end":0.01,"kl_warmup":40,"seed":0},"epoch":14,"best_error_px":56.0}"#;
    std::fs::write(dir.path().join("old.safetensors.state.json"), state).unwrap();
    std::fs::write(dir.path().join("old.safetensors.log.csv"), "epoch,loss,mse\n14,0.1,0.1\n").unwrap();
    let out_s = out.to_str().unwrap();
    cli(&["--data", dir.path().to_str().unwrap(), "--out", out_s, "--resume", "--epochs", "15", "--device", "cpu"]).unwrap();
    let state = cxr_review::train::checkpoint::read_state(Path::new(&format!("{out_s}.ckpt"))).unwrap();
    assert_eq!((state.epoch, state.options.lr, state.options.kl_warmup), (15, 1e-3, 40));
    let log = std::fs::read_to_string(format!("{out_s}.log.csv")).unwrap();
    assert!(log.lines().nth(1).unwrap().starts_with("15,"), "{log}");
    assert!(dir.path().join("old.safetensors.log.old.csv").is_file());
}

#[test]
fn the_jsrt_split_has_174_training_and_21_validation_images() {
    let jsrt = common::shared_data().join("jsrt");
    let train = dataset::read_split(&jsrt, "train").unwrap();
    let val = dataset::read_split(&jsrt, "val").unwrap();
    assert_eq!((train.len(), val.len()), (174, 21));
    // Every landmark lies inside its 1024² image, so inside [0, 1] after pre-processing.
    let prepared = dataset::prepare(&[&train[..], &val[..]].concat(), 32, || {}).unwrap();
    for p in &prepared {
        assert_eq!((p.letterbox.width, p.letterbox.height, p.pixels.len()), (1024, 1024, 32 * 32));
        assert!(p.target.iter().all(|q| q.iter().all(|v| (0.0..=1.0).contains(v))), "{}", p.name);
        assert!(p.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

/// A reviewed folder (images with `.cxr.json` annotations) is a training set: accepted and
/// corrected annotations give the reviewer's landmarks, the others are left out, splits are
/// fixed by content, and a changed image is refused by name.
#[test]
fn reviewed_annotations_are_a_training_set() {
    use cxr_review::model::preprocess::Letterbox;
    use cxr_review::model::uncertainty::summarise;
    use cxr_review::review::annotation::{self, Annotation, ModelIdentity, Status, file_sha256};

    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let reviewed = dir.path().join("reviewed");
    std::fs::create_dir(&reviewed).unwrap();
    let mut corrected_landmarks = Vec::new();
    for (i, status) in [Status::Corrected, Status::Accepted, Status::Unreviewed, Status::Corrected, Status::Rejected]
        .into_iter()
        .enumerate()
    {
        let image = reviewed.join(format!("p{i}.png"));
        std::fs::copy(dir.path().join("images").join(format!("p{i}.png")), &image).unwrap();
        let img = cxr_review::xray::load(&image).unwrap();
        let decoded: Vec<f32> = template().iter().flat_map(|p| [p[0] / 1024.0, p[1] / 1024.0]).collect();
        let p = summarise(&decoded, 1, &[0.0; 4], Letterbox::new(img.width, img.height), None);
        let model = ModelIdentity { weights: "test".into(), weights_sha256: String::new(), samples: 1, seed: None, test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false };
        let mut a = Annotation::from_prediction(&image, file_sha256(&image).unwrap(), &img, &p, model);
        a.corrected[5] = [a.corrected[5][0] + 7.0 + i as f32, a.corrected[5][1]];
        a.status = status;
        a.save(&annotation::path_for(&image, None)).unwrap();
        if matches!(status, Status::Corrected | Status::Accepted) {
            corrected_landmarks.push((image.clone(), a.corrected_array()));
        }
    }
    let all = dataset::read_annotations(&reviewed).unwrap();
    assert_eq!(all.len(), 3, "unreviewed and rejected are not gold standard");
    assert_eq!(all.iter().filter(|(s, _)| s == "val").count(), 1);
    for (_, s) in &all {
        let want = corrected_landmarks.iter().find(|(p, _)| *p == s.image).expect("a reviewed image");
        assert_eq!(s.landmarks, want.1, "the reviewer's positions, not the prediction");
    }
    // read_split uses them when the folder has no CSV; they load like any sample.
    let train = dataset::read_split(&reviewed, "train").unwrap();
    assert_eq!(train.len(), 2);
    assert_eq!(dataset::prepare(&train, 64, || {}).unwrap().len(), 2);

    // An image edited after review no longer matches its annotation's hash.
    let changed = &corrected_landmarks[0].0;
    std::fs::copy(dir.path().join("images").join("p2.png"), changed).unwrap();
    let err = format!("{:#}", dataset::read_annotations(&reviewed).unwrap_err());
    assert!(err.contains("has changed") && err.contains(&changed.file_name().unwrap().to_string_lossy().to_string()), "{err}");

    // An empty folder names both things it looked for.
    let empty = tempfile::tempdir().unwrap();
    let err = format!("{:#}", dataset::read_split(empty.path(), "train").unwrap_err());
    assert!(err.contains("landmarks.csv") && err.contains("cxr.json"), "{err}");
}

/// `bench --train` times both convolution paths on real training images and prints the ratio.
#[test]
fn the_training_bench_compares_both_convolution_paths() {
    let jsrt = common::shared_data().join("jsrt");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cxr-review"))
        .args(["bench", "--train", "--size", "64", "--repeats", "1", "--data"])
        .arg(&jsrt)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("|    64 |"))
        .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!((rows[0][1], rows[1][1]), ("conv2d as is", "training path"));
    for row in &rows {
        let rate: f64 = row[8].parse().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{stdout}");
    }
    assert!(stdout.contains("| ratio"), "{stdout}");
}

/// `--hold-out-test` keeps a fixed seventh of JSRT's train split out of training, chosen by
/// image content, and `validate --split test` reads exactly those images.
#[test]
fn the_held_out_test_split_never_meets_training() {
    let jsrt = common::shared_data().join("jsrt");
    let names = |v: Vec<dataset::Sample>| -> Vec<String> { v.iter().map(|s| s.image.display().to_string()).collect() };
    let all_train = names(dataset::read_split(&jsrt, "train").unwrap());
    let train = names(dataset::read_split_holding_out(&jsrt, "train", true).unwrap());
    let test = names(dataset::read_split(&jsrt, dataset::TEST_SPLIT).unwrap());
    let val = names(dataset::read_split_holding_out(&jsrt, "val", true).unwrap());
    assert_eq!((all_train.len(), train.len(), test.len(), val.len()), (174, 152, 22, 21));
    assert!(test.iter().all(|t| all_train.contains(t) && !train.contains(t)));
    for t in &test {
        assert!(dataset::held_out_for_test(std::path::Path::new(t)).unwrap());
    }
    // The run records the choice, and a resume cannot change it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let (out_s, jsrt_s) = (out.to_string_lossy().into_owned(), jsrt.to_string_lossy().into_owned());
    let quick = ["--size", "32", "--epochs", "1", "--val-samples", "1", "--device", "cpu"];
    cli(&[&["--data", &jsrt_s, "--out", &out_s, "--limit", "4", "--hold-out-test"][..], &quick].concat()).unwrap();
    let state = cxr_review::train::checkpoint::read_state(Path::new(&format!("{out_s}.ckpt"))).unwrap();
    assert!(state.data.unwrap().hold_out_test);
    let plain = dir.path().join("plain.safetensors").to_string_lossy().into_owned();
    cli(&[&["--data", &jsrt_s, "--out", &plain, "--limit", "1"][..], &quick].concat()).unwrap();
    let err = format!("{:#}", cli(&["--resume", &format!("{plain}.ckpt"), "--epochs", "2", "--hold-out-test"]).unwrap_err());
    assert!(err.contains("--hold-out-test"), "{err}");

    // The weights say whether they kept the test split out, and `validate --split test` tells.
    assert!(HybridGNet::load(&out, &cpu()).unwrap().held_out_test);
    assert!(!HybridGNet::load(Path::new(&plain), &cpu()).unwrap().held_out_test);
    #[derive(Parser)]
    struct Validate {
        #[command(flatten)]
        args: cxr_review::cli::validate::Args,
    }
    let report = |weights: &str| {
        let v = Validate::try_parse_from([
            "validate", "--data", &jsrt_s, "--split", "test", "--weights", weights, "--limit", "1", "--samples", "2",
            "--device", "cpu",
        ])
        .unwrap();
        cxr_review::cli::validate::report(v.args).unwrap()
    };
    let held = report(&out_s);
    assert!(held.contains("1 images of split `test`") && held.contains("never on these images"), "{held}");
    let warned = report(&plain);
    assert!(warned.contains("WARNING: these weights were not trained with --hold-out-test"), "{warned}");
    // A calibration fitted on val is out of sample on test.
    let shipped = cxr_review::model::shipped::default_weights().unwrap();
    let on_test = report(shipped.to_str().unwrap());
    assert!(on_test.contains("(fitted on another split: out of sample)"), "{on_test}");
}
