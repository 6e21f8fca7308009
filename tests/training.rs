//! The trainer on a tiny synthetic data set (phantoms with the template landmarks, shifted),
//! and the real JSRT split layout.

mod common;

use std::path::Path;

use cxr_review::formats::chexmask::landmarks_text;
use cxr_review::landmarks::template;
use cxr_review::model::HybridGNet;
use cxr_review::train::{TrainOptions, Trainer, dataset, run};
use cxr_review::xray::phantom::chest_phantom;

fn options(epochs: usize) -> TrainOptions {
    TrainOptions {
        size: 64,
        skip_blocks: true,
        epochs,
        batch: 2,
        lr: 1e-3,
        lr_step: 50,
        lr_factor: 0.9,
        weight_decay: 1e-5,
        kl_start: 1e-5,
        kl_end: 1e-2,
        kl_warmup: 10,
        seed: 7,
    }
}

/// Four phantom images, each crop shifted, with the template landmarks shifted alike.
fn synthetic(dir: &Path) {
    let img = chest_phantom();
    let gray = img.to_gray8(img.default_window());
    let mut csv = String::from("image,split,Landmarks\n");
    for (i, (dx, dy)) in [(0i64, 0i64), (40, 0), (0, 40), (-30, 20)].into_iter().enumerate() {
        let shifted = image::ImageBuffer::from_fn(1024, 1024, |x, y| {
            let (sx, sy) = (x as i64 - dx, y as i64 - dy);
            if (0..1024).contains(&sx) && (0..1024).contains(&sy) { *gray.get_pixel(sx as u32, sy as u32) } else { image::Luma([0u8]) }
        });
        let name = format!("p{i}.png");
        shifted.save(dir.join(&name)).unwrap();
        let l = template().map(|p| [p[0] + dx as f32, p[1] + dy as f32]);
        let split = if i < 3 { "train" } else { "val" };
        csv.push_str(&format!("{name},{split},\"{}\"\n", landmarks_text(&l)));
    }
    std::fs::write(dir.join("landmarks.csv"), csv).unwrap();
}

#[test]
fn loss_drops_and_a_resumed_run_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let train = dataset::prepare(&dataset::read_split(dir.path(), "train").unwrap(), 64).unwrap();
    let val = dataset::prepare(&dataset::read_split(dir.path(), "val").unwrap(), 64).unwrap();
    assert_eq!((train.len(), val.len()), (3, 1));
    let cpu = burn::tensor::Device::flex();

    let out = dir.path().join("m.safetensors");
    let mut trainer = Trainer::new(options(12), &cpu).unwrap();
    let mut losses = Vec::new();
    run(&mut trainer, &train, &val, &out, |_| {}, |r| losses.push(r.mse)).unwrap();
    assert_eq!(losses.len(), 12);
    let first = losses[..2].iter().sum::<f64>() / 2.0;
    let last = losses[10..].iter().sum::<f64>() / 2.0;
    assert!(last < first * 0.5, "landmark MSE {first} -> {last}: {losses:?}");

    // The files a run leaves behind: best model, last model, state, log.
    let best = HybridGNet::load(&out, &cpu).unwrap();
    assert_eq!(best.config().input_size, 64);
    let log = std::fs::read_to_string(dir.path().join("m.safetensors.log.csv")).unwrap();
    assert_eq!(log.lines().count(), 13, "{log}");

    // Resume for two more epochs: the epoch counter continues and the log grows.
    let mut resumed = Trainer::resume(&out, &cpu).unwrap();
    assert_eq!(resumed.state.epoch, 12);
    resumed.state.options.epochs = 14;
    let mut more = Vec::new();
    run(&mut resumed, &train, &val, &out, |_| {}, |r| more.push(r.epoch)).unwrap();
    assert_eq!(more, vec![13, 14]);
    let log = std::fs::read_to_string(dir.path().join("m.safetensors.log.csv")).unwrap();
    assert_eq!(log.lines().count(), 15);
}

#[test]
fn a_bad_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    synthetic(dir.path());
    let csv = std::fs::read_to_string(dir.path().join("landmarks.csv")).unwrap();
    let broken = csv.replacen(",train,\"", ",train,\"1,2,", 2).replacen(",train,\"1,2,", ",train,\"", 1);
    std::fs::write(dir.path().join("landmarks.csv"), broken).unwrap();
    let err = dataset::read_split(dir.path(), "train").unwrap_err().to_string();
    assert!(err.contains("row 3"), "{err}");
    assert!(err.contains("landmarks.csv"), "{err}");

    std::fs::write(dir.path().join("landmarks.csv"), "name,Landmarks\nx,1\n").unwrap();
    let err = dataset::read_split(dir.path(), "train").unwrap_err().to_string();
    assert!(err.contains("`image`"), "{err}");
}

#[test]
fn the_jsrt_split_has_174_training_and_21_validation_images() {
    let jsrt = common::shared_data().join("jsrt");
    let train = dataset::read_split(&jsrt, "train").unwrap();
    let val = dataset::read_split(&jsrt, "val").unwrap();
    assert_eq!((train.len(), val.len()), (174, 21));
    let prepared = dataset::prepare(&val[..3], 128).unwrap();
    for p in &prepared {
        assert_eq!(p.pixels.len(), 128 * 128);
        assert!(p.target.iter().all(|q| q.iter().all(|v| (0.0..=1.0).contains(v))));
    }
}
