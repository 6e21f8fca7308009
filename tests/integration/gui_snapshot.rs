//! Snapshot tests of the review overlay: the whole window rendered with wgpu (lavapipe
//! under CI) and compared with `tests/snapshots/*.png`. The image is the built-in phantom
//! and the "prediction" a fixed contour with a spread of node stds, so the pictures depend
//! on the drawing code alone, not on a model. `UPDATE_SNAPSHOTS=1 cargo test --test
//! integration gui_snapshot` rewrites them after an intended change; look at them before committing.

use egui::{Event, Key, Modifiers};
use egui_kittest::{Harness, SnapshotOptions};
use std::path::{Path, PathBuf};

use cxr_review::gui::CxrApp;
use cxr_review::landmarks::{self, NUM_NODES};
use cxr_review::metrics::isotonic::MonotoneMap;
use cxr_review::model::calibration::{Calibration, ReliabilityRow};
use cxr_review::model::preprocess::Letterbox;
use cxr_review::model::uncertainty::summarise;
use cxr_review::review::annotation::{self, Annotation, ModelIdentity, file_sha256};
use cxr_review::xray::{self, phantom};

/// The phantom as a PNG in `dir`, with an unreviewed annotation whose node stds run from
/// 0.5 to 24 px in a scrambled order so every colour of the scale appears around the contours;
/// with `calibration`, the annotation carries its expected errors too.
fn phantom_with_annotation(dir: &Path, calibration: Option<&Calibration>) -> PathBuf {
    let img = phantom::chest_phantom();
    let path = dir.join("phantom.png");
    img.to_gray8(img.default_window()).save(&path).unwrap();
    let loaded = xray::load(&path).unwrap();
    let template = landmarks::template();
    let decoded: Vec<f32> = template.iter().flat_map(|p| [p[0] / 1024.0, p[1] / 1024.0]).collect();
    let mut p = summarise(&decoded, 1, &[0.0; 4], Letterbox::new(loaded.width, loaded.height), None);
    for n in 0..NUM_NODES {
        let s = 0.5 + 23.5 * ((n * 37) % NUM_NODES) as f32 / NUM_NODES as f32;
        p.std[n] = [s, s * 0.7];
    }
    p.score = p.std.iter().map(|s| (s[0] + s[1]) / 2.0).sum::<f32>() / NUM_NODES as f32;
    if let Some(c) = calibration {
        let stds: [f32; NUM_NODES] = std::array::from_fn(|n| p.node_std(n));
        p.calibrated = Some(c.apply(&stds, None, loaded.width.max(loaded.height)));
    }
    let model = ModelIdentity { weights: "fixed contour".into(), weights_sha256: String::new(), samples: 50, seed: Some(0), test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false };
    let mut a = Annotation::from_prediction(&path, file_sha256(&path).unwrap(), &loaded, &p, model);
    a.reviewer = "snapshot".into();
    a.save(&annotation::path_for(&path, None)).unwrap();
    path
}

fn harness(image: PathBuf) -> Harness<'static, CxrApp> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        // Mesa's GL and Vulkan software rasterisers round a handful of blended pixels one
        // level apart; anything the drawing code changes moves hundreds.
        .with_options(SnapshotOptions::new().max_failed_pixels(8))
        .wgpu()
        .build_eframe(move |cc| CxrApp::new(cc, vec![image.clone()]));
    for _ in 0..600 {
        h.run_steps(1);
        if !h.state().is_loading() && h.state().review().is_some() {
            h.run_steps(3);
            return h;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no review appeared: error {:?}", h.state().error());
}

fn key(h: &mut Harness<'static, CxrApp>, key: Key) {
    h.event(Event::Key { key, physical_key: None, pressed: true, repeat: false, modifiers: Modifiers::NONE });
    h.event(Event::Key { key, physical_key: None, pressed: false, repeat: false, modifiers: Modifiers::NONE });
    h.run_steps(2);
}

#[test]
fn overlay_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(phantom_with_annotation(dir.path(), None));
    let mut results = vec![h.try_snapshot("overlay_contours_nodes")];

    // Ellipses and mask fill on, two heart nodes moved (marked, with the prediction dashed
    // beneath) and the correction table updated.
    key(&mut h, Key::E);
    key(&mut h, Key::M);
    let r = h.state_mut().review_mut().unwrap();
    r.edit.move_nodes(&[100, 101], [25.0, -18.0]);
    r.autosave();
    h.run_steps(3);
    results.push(h.try_snapshot("overlay_ellipses_fill_edited"));
    for r in results {
        r.unwrap();
    }
}

/// A calibration as `calibrate` writes one: errors about twice the std (more for the heart),
/// a 40 px scale and four legend rows, one of them empty (it is not drawn).
fn fixed_calibration() -> Calibration {
    let line = |slope: f64| MonotoneMap { knots: vec![[0.0, 2.0], [30.0, 2.0 + 30.0 * slope]] };
    let row = |lo: f64, hi: f64, nodes: usize, e: f64, r: f64| ReliabilityRow { lo, hi, nodes, mean_expected: e, mean_error: r };
    Calibration {
        method: "organ scale".into(),
        fitted_on: "snapshot".into(),
        organ_maps: vec![line(1.6), line(1.6), line(2.2)],
        node_factors: vec![1.0; NUM_NODES],
        scale_top_1024: 40.0,
        reliability: vec![row(0.0, 10.0, 400, 6.2, 7.0), row(10.0, 20.0, 900, 14.8, 15.5), row(20.0, 30.0, 0, 0.0, 0.0), row(30.0, 40.0, 120, 34.0, 31.2)],
        profile: None,
        ood_score_1024: None,
        std_of: Default::default(),
    }
}

#[test]
fn calibrated_legend_snapshot() {
    // Colours mean expected error here, and the legend says what each band was off on val.
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(phantom_with_annotation(dir.path(), Some(&fixed_calibration())));
    h.snapshot("overlay_calibrated_legend");
}
