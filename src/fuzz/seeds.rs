//! Seed files of every fuzz target: real files where the shared data has them, otherwise
//! files written here by our own writers (so the seeds are valid by construction).

use std::path::Path;

use super::Target;
use crate::formats::chexmask::{ChexmaskRow, ChexmaskTable};
use crate::formats::chexmask_u::NodeTable;
use crate::landmarks::{NUM_NODES, template};
use crate::model::ModelConfig;
use crate::model::weights::random_state_dict;
use crate::review::annotation::{Annotation, FORMAT, ImageIdentity, ModelIdentity, Status};

/// The seeds of `target`. `data` is `../shared/data`; `fixtures` the repository's
/// `tests/fixtures/model` (PyTorch files, which nothing here can write).
pub fn seeds(target: Target, data: &Path, fixtures: &Path) -> Result<Vec<Vec<u8>>, String> {
    let seeds = match target {
        Target::Dicom => files_in(&data.join("dicom"), &["dcm"])?,
        Target::Raster => {
            let mut s = files_in(&data.join("examples"), &["png", "jpg", "jpeg"])?;
            s.extend(generated_rasters());
            s
        }
        Target::Chexmask => {
            let mut s = Vec::new();
            for f in ["VinDr-CXR_prediction.csv", "VinDr-CXR_annotator1.csv"] {
                let p = data.join("chexmask").join(f);
                let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                // The header and two rows: small enough to mutate quickly, with every column kind.
                s.push(text.lines().take(3).collect::<Vec<_>>().join("\n").into_bytes());
            }
            s.push(generated_chexmask()?);
            s
        }
        Target::ChexmaskU => generated_node_tables(),
        Target::Annotation => vec![generated_annotation()],
        Target::Safetensors => generated_safetensors()?,
        Target::Pytorch => files_in(fixtures, &["pt"])?,
    };
    if seeds.is_empty() {
        return Err(format!("no seed files for {}", target.name()));
    }
    Ok(seeds)
}

fn files_in(dir: &Path, extensions: &[&str]) -> Result<Vec<Vec<u8>>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: cannot list the seed folder: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))).collect()
}

/// A 16-bit grey PNG and an 8-bit TIFF, kinds the shared examples lack.
fn generated_rasters() -> Vec<Vec<u8>> {
    let (w, h) = (40u32, 30u32);
    let grey16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w, h, |x, y| image::Luma([(x * 1500 + y * 700) as u16]));
    let grey8 = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 5 + y * 3) as u8]));
    let mut out = Vec::new();
    for (img, format) in [
        (image::DynamicImage::ImageLuma16(grey16), image::ImageFormat::Png),
        (image::DynamicImage::ImageLuma8(grey8), image::ImageFormat::Tiff),
    ] {
        let mut buf = std::io::Cursor::new(Vec::new());
        if img.write_to(&mut buf, format).is_ok() {
            out.push(buf.into_inner());
        }
    }
    out
}

fn generated_chexmask() -> Result<Vec<u8>, String> {
    let mut t = ChexmaskTable::new("seed.csv", "image_id");
    t.push(ChexmaskRow::from_landmarks("a", template().map(|p| [p[0] / 2.0, p[1] / 2.0]), 512, 512));
    t.push(ChexmaskRow::from_landmarks("b", template(), 1024, 1024));
    t.to_csv().map_err(|e| e.to_string())
}

fn generated_node_tables() -> Vec<Vec<u8>> {
    let std: [[f32; 2]; NUM_NODES] = std::array::from_fn(|i| [1.0 + i as f32 * 0.05, 2.0 - i as f32 * 0.01]);
    let with = NodeTable { mean: template(), std, expected_error: Some(std::array::from_fn(|i| 3.0 + i as f32 * 0.1)) };
    let without = NodeTable { expected_error: None, ..with.clone() };
    vec![with.to_csv(), without.to_csv()]
}

fn generated_annotation() -> Vec<u8> {
    let predicted = template().to_vec();
    let mut corrected = predicted.clone();
    corrected[5] = [corrected[5][0] + 12.5, corrected[5][1] - 3.0];
    let mut edited = vec![false; NUM_NODES];
    edited[5] = true;
    let a = Annotation {
        format: FORMAT.into(),
        image: ImageIdentity {
            path: "images/chest.png".into(),
            sha256: "ab".repeat(32),
            width: 1024,
            height: 1024,
            pixel_spacing_mm: Some([0.175, 0.175]),
            sop_instance_uid: Some("1.2.826.0.1.3680043.8.498.1".into()),
        },
        model: ModelIdentity { weights: "w.safetensors".into(), weights_sha256: "cd".repeat(32), samples: 50, seed: Some(0), test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false },
        predicted_std: vec![[2.0, 3.0]; NUM_NODES],
        predicted,
        score: 2.5,
        corrected,
        edited,
        status: Status::Corrected,
        note: "seed".into(),
        reviewer: "fuzz".into(),
        created: "2026-01-01T00:00:00Z".into(),
        modified: "2026-01-01T00:01:00Z".into(),
        review_seconds: 12.0,
        calibrated: None,
        predicted_ctr: Some(crate::metrics::ctr::CtrSpread { mean: 0.45, sd: 0.01, samples: 50 }),
    };
    a.to_json()
}

fn small_seed_config() -> ModelConfig {
    ModelConfig { input_size: 64, channels: [4, 8, 8, 16, 16, 16], latents: 8, skip_blocks: true, skip_maps: [4, 3] }
}

/// Small random models with and without skip blocks (and one with a shape correction),
/// written by our own writer.
fn generated_safetensors() -> Result<Vec<Vec<u8>>, String> {
    let dir = tempdir()?;
    let mut out = Vec::new();
    let cpu = burn::tensor::Device::flex();
    for skip_blocks in [true, false] {
        let config = ModelConfig { skip_blocks, ..small_seed_config() };
        let path = dir.join(format!("seed-{skip_blocks}.safetensors"));
        random_state_dict(&config, 1)
            .write_safetensors(&path, &[(crate::model::weights::SKIP_MAPS_KEY, "4,3".into())])
            .map_err(|e| e.to_string())?;
        out.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    // One more with a shape correction, a patch refinement and contour spacing, whose tensors
    // and notes the loader checks.
    let mut model = crate::model::HybridGNet::random(&ModelConfig { skip_blocks: false, ..small_seed_config() }, 1, &cpu);
    model.set_shape_correction(Some(crate::model::ShapeCorrection::example()));
    model.set_patch_refinement(Some(crate::model::PatchRefinement::example()));
    model.contour_spacing = true;
    let path = dir.join("seed-corrected.safetensors");
    model.save(&path).map_err(|e| e.to_string())?;
    out.push(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn tempdir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("cxr-review-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
