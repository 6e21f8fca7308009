//! The review workflow driven through the real app with simulated pointer and key events:
//! drag a node, the annotation file follows; undo; reopen restores; status keys; wrong
//! image refused; worklist sorted by uncertainty; corrupt files kept, a second instance's
//! saves kept, failed saves shown and rescued.

use crate::common;

use egui::{Event, Key, Modifiers, PointerButton, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::path::{Path, PathBuf};

use cxr_review::formats::chexmask::parse_landmarks;
use cxr_review::gui::CxrApp;
use cxr_review::model::{HybridGNet, ModelConfig};
use cxr_review::review::annotation::{self, Annotation, ModelIdentity, file_sha256};
use cxr_review::review::{Status, atomic};
use cxr_review::xray;

/// Copy JSRT images into `dir` (annotations are written beside images) and return them
/// with their reference landmarks.
fn jsrt_copies(dir: &Path, names: &[&str]) -> Vec<(PathBuf, [[f32; 2]; 120])> {
    let jsrt = common::shared_data().join("jsrt");
    let csv = std::fs::read_to_string(jsrt.join("landmarks.csv")).unwrap();
    names
        .iter()
        .map(|name| {
            let dst = dir.join(format!("{name}.png"));
            std::fs::copy(jsrt.join("images").join(format!("{name}.png")), &dst).unwrap();
            let line = csv.lines().find(|l| l.starts_with(&format!("{name},"))).unwrap();
            let text = line.splitn(3, ',').nth(2).unwrap().trim_matches('"');
            (dst, parse_landmarks(text).unwrap())
        })
        .collect()
}

/// An unreviewed annotation whose "prediction" is the reference contour, with spread
/// `std` px, as if the model had run.
fn seed_annotation(image: &Path, landmarks: [[f32; 2]; 120], std: f32) {
    let img = xray::load(image).unwrap();
    let sha = file_sha256(image).unwrap();
    let letterbox = cxr_review::model::preprocess::Letterbox::new(img.width, img.height);
    let decoded: Vec<f32> = landmarks.iter().flat_map(|p| [p[0] / 1024.0, p[1] / 1024.0]).collect();
    let mut p = cxr_review::model::uncertainty::summarise(&decoded, 1, &[0.0; 4], letterbox, None);
    p.std = [[std, std]; 120];
    p.score = std;
    let model = ModelIdentity { weights: "reference".into(), weights_sha256: String::new(), samples: 1, seed: None, test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false };
    let mut a = Annotation::from_prediction(image, sha, &img, &p, model);
    a.save(&annotation::path_for(image, None)).unwrap();
}

fn harness(paths: Vec<PathBuf>, weights: Option<PathBuf>) -> Harness<'static, CxrApp> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1100.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| CxrApp::with_weights(cc, paths.clone(), weights.clone()));
    for _ in 0..600 {
        h.run_steps(1);
        if !h.state().is_loading() && !h.state().is_predicting() && h.state().review().is_some() {
            h.run_steps(2);
            return h;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no review appeared: error {:?}", h.state().error());
}

fn drag(h: &mut Harness<'static, CxrApp>, from: Pos2, to: Pos2) {
    h.event(Event::PointerMoved(from));
    h.run_steps(1);
    h.event(Event::PointerButton { pos: from, button: PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    h.run_steps(1);
    for k in 1..=6 {
        let p = from + (to - from) * (k as f32 / 6.0);
        h.event(Event::PointerMoved(p));
        h.run_steps(1);
    }
    h.event(Event::PointerButton { pos: to, button: PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    h.run_steps(2);
}

fn node_screen(h: &Harness<'static, CxrApp>, node: usize) -> Pos2 {
    let r = h.state().review().unwrap();
    let p = r.edit.positions[node];
    h.state().shown().unwrap().screen_pos_of(p[0], p[1]).unwrap()
}

fn key(h: &mut Harness<'static, CxrApp>, key: Key, modifiers: Modifiers) {
    h.event(Event::Key { key, physical_key: None, pressed: true, repeat: false, modifiers });
    h.event(Event::Key { key, physical_key: None, pressed: false, repeat: false, modifiers });
    h.run_steps(2);
}

#[test]
fn dragging_a_node_saves_undo_restores_and_reopening_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    let (image, lm) = &images[0];
    seed_annotation(image, *lm, 3.0);
    let file = annotation::path_for(image, None);

    let mut h = harness(vec![image.clone()], None);
    let node = 100; // a heart node
    let before = h.state().review().unwrap().edit.positions[node];
    let from = node_screen(&h, node);
    let zoom = h.state().shown().unwrap().view.unwrap().zoom;
    drag(&mut h, from, from + egui::vec2(30.0, -20.0));

    let moved = h.state().review().unwrap().edit.positions[node];
    let expect = [before[0] + 30.0 / zoom, before[1] - 20.0 / zoom];
    assert!((moved[0] - expect[0]).abs() < 1.0 && (moved[1] - expect[1]).abs() < 1.0, "{moved:?} vs {expect:?}");
    // Only that node moved, and the file on disk says so.
    let saved = Annotation::read(&file).unwrap();
    assert_eq!(saved.edited.iter().filter(|&&e| e).count(), 1);
    assert!(saved.edited[node]);
    assert_eq!(saved.corrected[node], moved);
    assert_eq!(saved.status, Status::Corrected);
    let heart_dice = h.state().review().unwrap().correction().organs[2].dice;
    assert!(heart_dice < 1.0 && heart_dice > 0.9, "heart Dice {heart_dice}");

    // Dragging empty image space pans instead of moving nodes.
    let positions = h.state().review().unwrap().edit.positions;
    let offset = h.state().shown().unwrap().view.unwrap().offset;
    let empty = h.state().shown().unwrap().screen_pos_of(512.0, 40.0).unwrap();
    drag(&mut h, empty, empty + egui::vec2(40.0, 0.0));
    assert_eq!(h.state().review().unwrap().edit.positions, positions);
    assert_ne!(h.state().shown().unwrap().view.unwrap().offset, offset);

    key(&mut h, Key::Z, Modifiers::COMMAND);
    assert_eq!(h.state().review().unwrap().edit.positions[node], before);
    let saved = Annotation::read(&file).unwrap();
    assert!(!saved.edited[node] && saved.status == Status::Unreviewed, "undo is saved too");
    key(&mut h, Key::Y, Modifiers::COMMAND);
    assert_eq!(h.state().review().unwrap().edit.positions[node], moved);

    // Accept: with a moved node the status is "corrected"; reopening restores everything.
    key(&mut h, Key::A, Modifiers::NONE);
    drop(h);
    let saved = Annotation::read(&file).unwrap();
    assert_eq!(saved.status, Status::Corrected);
    let h = harness(vec![image.clone()], None);
    let r = h.state().review().unwrap();
    assert_eq!(r.edit.positions[node], moved);
    assert!(r.edit.is_edited(node));
    assert_eq!(r.annotation.status, Status::Corrected);
}

#[test]
fn reject_and_accept_keys_set_the_status_and_move_on_least_certain_first() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001", "JPCLN015", "JPCLN017"]);
    for ((path, lm), std) in images.iter().zip([2.0, 9.0, 5.0]) {
        seed_annotation(path, *lm, std);
    }
    let mut h = harness(vec![dir.path().to_path_buf()], None);
    h.state_mut().worklist_mut().sort_by_uncertainty();
    let order: Vec<String> =
        h.state().worklist().files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(order, ["JPCLN015", "JPCLN017", "JPCLN001"]);
    let current = h.state().worklist().current_path().unwrap().to_path_buf();
    assert!(current.ends_with("JPCLN001.png"), "the open image stays current: {current:?}");

    key(&mut h, Key::X, Modifiers::NONE);
    assert_eq!(Annotation::read(&annotation::path_for(&current, None)).unwrap().status, Status::Rejected);
    // First in the sorted list: open it and accept it untouched.
    h.state_mut().worklist_mut().current = Some(0);
    key(&mut h, Key::P, Modifiers::NONE);
    let first = h.state().worklist().files[0].clone();
    let h = {
        drop(h);
        harness(vec![first.clone()], None)
    };
    let mut h = h;
    key(&mut h, Key::A, Modifiers::NONE);
    assert_eq!(Annotation::read(&annotation::path_for(&first, None)).unwrap().status, Status::Accepted);
}

#[test]
fn u_visits_the_least_certain_nodes_in_turn_and_centres_each() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    let (image, lm) = &images[0];
    seed_annotation(image, *lm, 2.0);
    // Three nodes stand out: 70 (left lung), 12 (right lung), 110 (heart), in that order.
    let file = annotation::path_for(image, None);
    let mut a = Annotation::read(&file).unwrap();
    for (node, std) in [(70, 9.0), (12, 7.0), (110, 5.0)] {
        a.predicted_std[node] = [std, std];
    }
    a.save(&file).unwrap();

    let mut h = harness(vec![image.clone()], None);
    let viewport_centre = |h: &Harness<'static, CxrApp>| h.state().shown().unwrap().rect.unwrap().center();
    let fit_zoom = h.state().shown().unwrap().view.unwrap().zoom;
    for (press, shift, expect) in [(1, false, 70), (2, false, 12), (3, false, 110), (4, true, 12)] {
        key(&mut h, Key::U, if shift { Modifiers::SHIFT } else { Modifiers::NONE });
        let r = h.state().review().unwrap();
        assert_eq!(r.edit.selected_nodes(), vec![expect], "press {press}");
        let at = node_screen(&h, expect);
        assert!((at - viewport_centre(&h)).length() < 2.0, "press {press}: node {expect} at {at:?}");
        let zoom = h.state().shown().unwrap().view.unwrap().zoom;
        assert!((zoom - 3.0 * fit_zoom).abs() < 1e-3, "press {press}: zoom {zoom} vs fit {fit_zoom}");
    }
    h.get_by_label_contains("2 of 120 by uncertainty");
    // Visiting moves nothing and writes nothing.
    assert!(!h.state().review().unwrap().edit.any_edited());
    assert_eq!(Annotation::read(&file).unwrap().edited.iter().filter(|&&e| e).count(), 0);
}

#[test]
fn an_annotation_of_another_image_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001", "JPCLN015"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    // Put JPCLN001's annotation where JPCLN015's belongs.
    let foreign = annotation::path_for(&images[1].0, None);
    std::fs::copy(annotation::path_for(&images[0].0, None), &foreign).unwrap();
    let original = std::fs::read(&foreign).unwrap();

    let weights = random_weights(dir.path());
    let mut h = harness(vec![images[1].0.clone()], Some(weights));
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains("belongs to another image") && err.contains("JPCLN015.png"), "{err}");
    assert!(err.contains("kept untouched") && err.contains("JPCLN015.png.cxr-2.json"), "{err}");
    // The model's prediction is shown; editing it saves beside the foreign file, never over it.
    // (Random weights may put nodes off screen, so edit through the review state.)
    let r = h.state_mut().review_mut().unwrap();
    r.edit.move_nodes(&[10], [15.0, 15.0]);
    r.autosave();
    key(&mut h, Key::A, Modifiers::NONE);
    assert_eq!(std::fs::read(&foreign).unwrap(), original);
    let beside = images[1].0.with_file_name("JPCLN015.png.cxr-2.json");
    let saved = Annotation::read(&beside).unwrap();
    assert_eq!(saved.status, Status::Corrected);
    assert_eq!(saved.image.sha256, file_sha256(&images[1].0).unwrap());
}

/// Random weights for a harness that must predict (small, fast).
fn random_weights(dir: &Path) -> PathBuf {
    let weights = dir.join("w.safetensors");
    HybridGNet::random(&ModelConfig::released(64), 1, &burn::tensor::Device::flex()).save(&weights).unwrap();
    weights
}

#[test]
fn a_corrupt_annotation_is_kept_and_the_new_review_saved_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    let file = annotation::path_for(&images[0].0, None);
    // Truncated mid-write by some other tool.
    let full = std::fs::read(&file).unwrap();
    std::fs::write(&file, &full[..full.len() / 2]).unwrap();
    let truncated = std::fs::read(&file).unwrap();

    let weights = random_weights(dir.path());
    let mut h = harness(vec![images[0].0.clone()], Some(weights.clone()));
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains("JPCLN001.png.cxr.json") && err.contains("corrupt"), "{err}");
    assert!(err.contains("JPCLN001.png.cxr-2.json"), "{err}");
    key(&mut h, Key::X, Modifiers::NONE);
    assert_eq!(std::fs::read(&file).unwrap(), truncated, "the corrupt file is never overwritten");
    let beside = images[0].0.with_file_name("JPCLN001.png.cxr-2.json");
    assert_eq!(Annotation::read(&beside).unwrap().status, Status::Rejected);
    drop(h);

    // Reopened: the readable review beside it is the one restored.
    let h = harness(vec![images[0].0.clone()], Some(weights));
    assert_eq!(h.state().review().unwrap().annotation.status, Status::Rejected);
    assert_eq!(h.state().review().unwrap().file().unwrap(), beside);
}

#[test]
fn a_second_instance_does_not_clobber_the_first_ones_saves() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    let file = annotation::path_for(&images[0].0, None);
    // Two windows on the same image.
    let mut first = harness(vec![images[0].0.clone()], None);
    let mut second = harness(vec![images[0].0.clone()], None);
    key(&mut first, Key::A, Modifiers::NONE);
    assert_eq!(Annotation::read(&file).unwrap().status, Status::Accepted);
    let first_save = std::fs::read(&file).unwrap();

    // The second one, opened before that save, rejects: its save must not replace the first's.
    key(&mut second, Key::X, Modifiers::NONE);
    assert_eq!(std::fs::read(&file).unwrap(), first_save);
    let msg = format!("{:?}", second.state().review().unwrap().save_message);
    assert!(msg.contains("changed by another program") && msg.contains("JPCLN001.png.cxr-2.json"), "{msg}");
    let beside = images[0].0.with_file_name("JPCLN001.png.cxr-2.json");
    assert_eq!(Annotation::read(&beside).unwrap().status, Status::Rejected);
    second.run_steps(2);
    second.get_by_label_contains("changed by another program");

    // The first one saves again over its own file: that is not a conflict.
    let r = first.state_mut().review_mut().unwrap();
    r.annotation.note = "second look".into();
    r.save();
    assert_eq!(Annotation::read(&file).unwrap().note, "second look");
}

#[test]
fn a_failed_save_is_shown_and_the_review_can_be_saved_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("share");
    std::fs::create_dir(&sub).unwrap();
    let images = jsrt_copies(&sub, &["JPCLN001", "JPCLN015"]);
    for (image, landmarks) in &images {
        seed_annotation(image, *landmarks, 3.0);
    }
    let mut h = harness(vec![sub.clone()], None);
    assert_eq!(h.state().shown().unwrap().image.source.label, "JPCLN001.png");
    // The folder goes away under the reviewer (an unmounted share; a read-only or full disk
    // fails the same way, but root ignores permissions, so it cannot be made read-only here).
    std::fs::remove_dir_all(&sub).unwrap();
    let p = node_screen(&h, 30);
    drag(&mut h, p, p + egui::vec2(25.0, 10.0));
    let r = h.state().review().unwrap();
    assert!(r.unsaved, "the save must fail");
    let msg = format!("{:?}", r.save_message);
    assert!(msg.contains("cannot save") && msg.contains("kept in memory"), "{msg}");
    let moved = r.edit.positions[30];
    h.run_steps(2);
    h.get_by_label_contains("NOT SAVED");

    // Moving on would drop the review: the app stays and says why.
    key(&mut h, Key::N, Modifiers::NONE);
    h.run_steps(3);
    assert_eq!(h.state().shown().unwrap().image.source.label, "JPCLN001.png");
    assert!(h.state().review().unwrap().unsaved);
    let err = h.state().error().unwrap().to_string();
    assert!(err.contains("could not be saved") && err.contains("Save review as"), "{err}");

    // Saved elsewhere, it is all there, and later saves go there too.
    let elsewhere = dir.path().join("rescued.cxr.json");
    h.state_mut().save_review_as(elsewhere.clone());
    let r = h.state().review().unwrap();
    assert!(!r.unsaved, "{:?}", r.save_message);
    let a = Annotation::read(&elsewhere).unwrap();
    assert_eq!(a.corrected[30], moved);
    assert!(a.edited[30]);
    let r = h.state_mut().review_mut().unwrap();
    r.accept();
    assert_eq!(Annotation::read(&elsewhere).unwrap().status, Status::Corrected);
}

#[test]
fn patient_names_stay_out_of_annotations_and_reach_the_title_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let dcm = common::patient_dicom(dir.path(), "patient.dcm");
    let weights = random_weights(dir.path());
    let mut h = harness(vec![dcm.clone()], Some(weights));
    h.run_steps(2);
    let title = h.state().title().to_string();
    assert!(title.contains("patient.dcm") && !title.contains("DOE"), "{title}");
    h.state_mut().set_show_patient_name(true);
    h.run_steps(2);
    assert!(h.state().title().contains("DOE JANE"), "{}", h.state().title());

    key(&mut h, Key::A, Modifiers::NONE);
    let file = annotation::path_for(&dcm, None);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(common::PATIENT_SOP_UID), "the annotation names the image by its SOP Instance UID");
    for secret in common::PATIENT_SECRETS {
        assert!(!text.contains(secret), "{secret} leaked into {}", file.display());
    }
}

#[test]
fn a_save_killed_midway_leaves_the_previous_file_intact() {
    // The child process writes the temporary file and is killed before the rename.
    if std::env::var_os("CXR_KILL_CHILD").is_some() {
        let path = PathBuf::from(std::env::var_os("CXR_KILL_CHILD").unwrap());
        let tmp = atomic::temp_path(&path);
        let mut f = std::fs::File::create(tmp).unwrap();
        use std::io::Write;
        f.write_all(b"{\"format\": \"cxr-review-annotation/1\", \"image\": ").unwrap();
        f.flush().unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    let file = annotation::path_for(&images[0].0, None);
    let before = std::fs::read(&file).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["gui_review::a_save_killed_midway_leaves_the_previous_file_intact", "--exact", "--nocapture"])
        .env("CXR_KILL_CHILD", &file)
        .status()
        .unwrap();
    assert!(!status.success(), "the child was killed");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert!(Annotation::read(&file).is_ok());
}

#[test]
fn folder_metrics_score_reviewed_images_prediction_against_correction() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001", "JPCLN015", "JPCLN017"]);
    for (path, lm) in &images {
        seed_annotation(path, *lm, 3.0);
    }
    let mut h = harness(vec![dir.path().to_path_buf()], None);
    // Image 1: drag a heart node, then accept (corrected); image 2: accept untouched;
    // image 3 stays unreviewed.
    let node = 100;
    let from = node_screen(&h, node);
    drag(&mut h, from, from + egui::vec2(30.0, 0.0));
    let moved_px = {
        let r = h.state().review().unwrap();
        let (a, b) = (r.edit.positions[node], r.edit.predicted[node]);
        ((a[0] - b[0]).hypot(a[1] - b[1])) as f64
    };
    key(&mut h, Key::A, Modifiers::NONE);
    for _ in 0..300 {
        h.run_steps(1);
        if h.state().review().is_some_and(|r| r.annotation.status == Status::Unreviewed) && !h.state().is_loading() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    key(&mut h, Key::A, Modifiers::NONE);
    key(&mut h, Key::G, Modifiers::NONE);
    for _ in 0..500 {
        h.run_steps(1);
        if !h.state().folder_metrics().is_computing() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let e = h.state().folder_metrics().result().expect("scored").clone();
    assert_eq!((e.images.len(), e.unreviewed, e.rejected, e.missing), (2, 1, 0, 0), "{e:?}");
    let corrected = e.images.iter().find(|i| i.status == Status::Corrected).expect("the corrected image");
    let accepted = e.images.iter().find(|i| i.status == Status::Accepted).expect("the accepted image");
    assert_eq!((accepted.scores.dice_lungs, accepted.scores.dice_heart), (1.0, 1.0));
    assert!((corrected.mean_node_error_px() - moved_px / 120.0).abs() < 1e-6);
    assert!(corrected.scores.dice_heart < 1.0 && corrected.scores.dice_lungs == 1.0);
    assert!(corrected.scores.heart.hausdorff > 0.0 && corrected.review_seconds > 0.0);
    // The window is on screen with its summary.
    for text in ["2 reviewed (accepted or corrected) · 1 unreviewed", "Dice Heart", "Pearson r ="] {
        assert!(h.query_all_by_label_contains(text).next().is_some(), "no `{text}` on screen");
    }
}

#[test]
fn the_panel_shows_the_ctr_and_it_follows_a_dragged_heart_border() {
    use cxr_review::metrics::ctr::ctr;
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    let mut h = harness(vec![images[0].0.clone()], None);
    let before = ctr(&images[0].1).unwrap();
    h.get_by_label(&format!("CTR {:.3}", before.ratio));
    // Drag the heart's rightmost node further right: the ratio grows, live.
    let right = (94..120).max_by(|&a, &b| images[0].1[a][0].total_cmp(&images[0].1[b][0])).unwrap();
    let p = node_screen(&h, right);
    drag(&mut h, p, p + egui::vec2(40.0, 0.0));
    let after = ctr(&h.state().review().unwrap().edit.positions).unwrap();
    assert!(after.ratio > before.ratio + 0.01, "{before:?} -> {after:?}");
    h.get_by_label(&format!("CTR {:.3}", after.ratio));
}

/// Step the app until the stress view has a score for its current corruption.
fn stress_score(h: &mut Harness<'static, CxrApp>) -> f64 {
    for _ in 0..3000 {
        h.run_steps(1);
        if let Some(s) = h.state().stress().score() {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the stress view never predicted");
}

#[test]
fn the_stress_view_responds_to_noise_and_a_square_and_leaves_the_review_alone() {
    let dir = tempfile::tempdir().unwrap();
    let images = jsrt_copies(dir.path(), &["JPCLN001"]);
    seed_annotation(&images[0].0, images[0].1, 3.0);
    let file = annotation::path_for(&images[0].0, None);
    let before = std::fs::read(&file).unwrap();
    let mut h = harness(vec![images[0].0.clone()], None);
    key(&mut h, Key::S, Modifiers::NONE);
    assert!(h.state().stress().open);
    let clean = stress_score(&mut h);
    assert_eq!(h.state().stress().clean_score(), Some(clean));
    h.get_by_label("side by side");

    h.state_mut().stress_mut().corruption.sigma = 0.3;
    let noisy = stress_score(&mut h);
    assert!(noisy > clean * 1.2, "noise σ 0.3: {clean} -> {noisy}");

    // A black square over the right costophrenic angle instead (CheXmask-U's occlusion).
    let angle = images[0].1[cxr_review::validation::OCCLUSION_NODE];
    let s = h.state_mut().stress_mut();
    s.corruption.sigma = 0.0;
    s.corruption.square_centre = Some(angle);
    s.corruption.square_side = 0.2;
    let occluded = stress_score(&mut h);
    assert!(occluded > clean, "black square: {clean} -> {occluded}");
    h.run_steps(2);
    h.get_by_label_contains("image score: clean");

    // Nothing of it reached the review or its file.
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(h.state().review().unwrap().annotation.status, Status::Unreviewed);
}
