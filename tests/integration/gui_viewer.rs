//! The viewer driven like a reader would: real files, simulated mouse and keys,
//! and the rendered frame checked pixel by pixel (wgpu on lavapipe under CI).

use crate::common;

use cxr_review::gui::CxrApp;
use cxr_review::xray;
use egui::{Event, Modifiers, MouseWheelUnit, PointerButton, Pos2, TouchPhase, Vec2};
use egui_kittest::Harness;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn harness(paths: Vec<PathBuf>) -> Harness<'static, CxrApp> {
    let mut h = Harness::builder()
        .with_size(Vec2::new(800.0, 600.0))
        .wgpu()
        .build_eframe(move |cc| CxrApp::new(cc, paths));
    wait_loaded(&mut h);
    h
}

/// Step frames until the background load has finished (or fail after 60 s).
fn wait_loaded(h: &mut Harness<'static, CxrApp>) {
    let start = Instant::now();
    loop {
        h.step();
        if !h.state().is_loading() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "image did not load");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(2);
}

fn dicom(name: &str) -> PathBuf {
    common::shared_data().join("dicom").join(name)
}

/// Grey level rendered at the centre of image pixel (x, y).
fn rendered_grey(h: &mut Harness<'static, CxrApp>, x: f32, y: f32) -> u8 {
    let pos = h.state().shown().unwrap().screen_pos_of(x, y).expect("laid out");
    let frame = h.render().expect("render");
    frame.get_pixel(pos.x as u32, pos.y as u32).0[0]
}

fn pointer(h: &Harness<'static, CxrApp>, pos: Pos2, button: PointerButton, pressed: bool) {
    h.event(Event::PointerButton { pos, button, pressed, modifiers: Modifiers::NONE });
}

#[test]
fn opens_the_phantom_without_arguments() {
    let mut h = harness(vec![]);
    let shown = h.state().shown().expect("phantom shown");
    assert_eq!(shown.image.source.label, "synthetic");
    // Spine (bright) against air (dark) on screen.
    let spine = rendered_grey(&mut h, 512.0, 300.0);
    let air = rendered_grey(&mut h, 8.0, 8.0);
    assert!(spine > 180 && air < 40, "spine {spine} air {air}");
}

#[test]
fn dicom_renders_as_its_default_window_and_monochrome1_inverts() {
    // The SIIM pair: identical pixels, one labelled MONOCHROME1.
    let mut h2 = harness(vec![dicom("cr_siim_jpeg_baseline.dcm")]);
    let mut h1 = harness(vec![dicom("cr_siim_jpeg_baseline_monochrome1.dcm")]);
    let img = xray::load(&dicom("cr_siim_jpeg_baseline.dcm")).unwrap();
    let reference = img.to_gray8(img.default_window());
    let mut checked = 0;
    for (x, y) in [(512.0, 512.0), (300.0, 600.0), (700.0, 400.0), (512.0, 900.0)] {
        let g2 = rendered_grey(&mut h2, x, y) as i32;
        let g1 = rendered_grey(&mut h1, x, y) as i32;
        // Zoomed out the shader averages a pixel's neighbourhood: compare with a local mean.
        let local: i32 = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .map(|(dx, dy)| reference.get_pixel((x as i32 + dx) as u32, (y as i32 + dy) as u32).0[0] as i32)
            .sum::<i32>()
            / 9;
        assert!((g2 - local).abs() <= 12, "MONOCHROME2 at ({x},{y}): screen {g2}, file {local}");
        assert!((g1 + g2 - 255).abs() <= 2, "MONOCHROME1 at ({x},{y}) is not the inverse: {g1} vs {g2}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn wheel_zooms_at_the_cursor() {
    let mut h = harness(vec![dicom("cr_mono1_10bit_chest.dcm")]);
    let shown = h.state().shown().unwrap();
    let before = shown.view.unwrap();
    let cursor = shown.screen_pos_of(150.0, 200.0).unwrap();
    h.event(Event::PointerMoved(cursor));
    h.event(Event::MouseWheel {
        unit: MouseWheelUnit::Point,
        delta: Vec2::new(0.0, 120.0),
        phase: TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Modifiers::NONE,
    });
    h.run_steps(2);
    let shown = h.state().shown().unwrap();
    let after = shown.view.unwrap();
    assert!(after.zoom > before.zoom * 1.2, "zoom {} -> {}", before.zoom, after.zoom);
    // The pixel under the cursor stays under the cursor.
    let rel = cursor - shown.rect.unwrap().min;
    let under = after.to_image(rel);
    assert!((under - Vec2::new(150.5, 200.5)).length() < 1.0, "{under:?}");
}

#[test]
fn right_drag_changes_window_level_on_screen_and_r_resets() {
    let mut h = harness(vec![dicom("dx_nih_8bit_1024.dcm")]);
    let (x, y) = (400.0, 500.0);
    let before = rendered_grey(&mut h, x, y);
    let w0 = h.state().shown().unwrap().window;
    let start = h.state().shown().unwrap().rect.unwrap().center();
    h.event(Event::PointerMoved(start));
    pointer(&h, start, PointerButton::Secondary, true);
    h.step();
    for i in 1..=10 {
        // Up and to the left: narrower window, lower level => brighter, more contrast.
        h.event(Event::PointerMoved(start + Vec2::new(-8.0 * i as f32, -8.0 * i as f32)));
        h.step();
    }
    pointer(&h, start + Vec2::new(-80.0, -80.0), PointerButton::Secondary, false);
    h.run_steps(2);
    let w1 = h.state().shown().unwrap().window;
    assert!(w1.width < w0.width && w1.center < w0.center, "{w0:?} -> {w1:?}");
    let after = rendered_grey(&mut h, x, y);
    assert_ne!(before, after, "window change not visible on screen");
    // The on-screen value follows the same VOI function as the CPU path.
    let img = xray::load(&dicom("dx_nih_8bit_1024.dcm")).unwrap();
    let expected = xray::window::to_u8(w1.display(img.value_at(x as i64, y as i64).unwrap(), false)) as i32;
    assert!((after as i32 - expected).abs() <= 25, "screen {after}, expected about {expected}");
    h.key_press(egui::Key::R);
    h.run_steps(2);
    assert_eq!(h.state().shown().unwrap().window, w0);
}

#[test]
fn invert_key_inverts_the_display() {
    let mut h = harness(vec![dicom("dx_nih_8bit_1024.dcm")]);
    let before = rendered_grey(&mut h, 512.0, 512.0) as i32;
    h.key_press(egui::Key::I);
    h.run_steps(2);
    let after = rendered_grey(&mut h, 512.0, 512.0) as i32;
    assert!((before + after - 255).abs() <= 2, "{before} + {after}");
}

#[test]
fn folder_opens_as_a_list_with_next_previous_and_broken_files_named() {
    let dir = tempfile::tempdir().unwrap();
    let examples = common::shared_data().join("examples");
    std::fs::copy(examples.join("nih_00000001_000.png"), dir.path().join("a.png")).unwrap();
    std::fs::write(dir.path().join("b.dcm"), b"not a dicom file at all").unwrap();
    std::fs::copy(examples.join("pa_example2.jpg"), dir.path().join("c.jpg")).unwrap();
    let mut h = harness(vec![dir.path().to_path_buf()]);
    assert_eq!(h.state().worklist().len(), 3);
    assert_eq!(h.state().shown().unwrap().image.width, 512);

    h.key_press(egui::Key::N);
    wait_loaded(&mut h);
    let err = h.state().error().expect("broken file reported").to_string();
    assert!(err.contains("b.dcm"), "{err}");
    assert!(h.state().shown().is_none());

    h.key_press(egui::Key::N);
    wait_loaded(&mut h);
    assert_eq!(h.state().shown().unwrap().image.width, 1280);
    assert!(h.state().error().is_none());
    h.key_press(egui::Key::N); // already last: stays
    h.key_press(egui::Key::P);
    wait_loaded(&mut h);
    assert_eq!(h.state().worklist().current, Some(1));
}
