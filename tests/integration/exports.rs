//! `cxr-review export` on a reviewed folder (JSRT images and a DICOM with patient data):
//! every format reads back to the reviewer's landmarks and masks, with our readers and, for
//! the DICOM Segmentation, with pydicom and highdicom.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cxr_review::formats::chexmask::{ChexmaskTable, parse_landmarks};
use cxr_review::formats::{coco, dicom_seg};
use cxr_review::landmarks::{NUM_NODES, Organ, template};
use cxr_review::masks::organ_masks;
use cxr_review::model::uncertainty::summarise;
use cxr_review::review::annotation::{self, Annotation, ModelIdentity, file_sha256};
use cxr_review::review::Status;
use cxr_review::xray;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_cxr-review")
}

/// A review of `image` whose prediction is `landmarks`, with node 7 moved by the reviewer.
fn review(image: &Path, landmarks: [[f32; 2]; NUM_NODES], status: Status) -> Annotation {
    let img = xray::load(image).unwrap();
    let letterbox = cxr_review::model::preprocess::Letterbox::new(img.width, img.height);
    let side = img.width.max(img.height) as f32;
    let decoded: Vec<f32> = landmarks.iter().flat_map(|p| [p[0] / side, p[1] / side]).collect();
    let mut p = summarise(&decoded, 1, &[0.0; 4], letterbox, None);
    p.std = [[2.0, 3.0]; NUM_NODES];
    let model = ModelIdentity { weights: "test".into(), weights_sha256: String::new(), samples: 1, seed: None, test_time_warps: 0, companions: 0, shape_corrected: false, patch_refined: false, contour_spaced: false };
    let mut a = Annotation::from_prediction(image, file_sha256(image).unwrap(), &img, &p, model);
    if status == Status::Corrected {
        a.corrected[7] = [a.corrected[7][0] + 6.0, a.corrected[7][1] - 4.0];
        a.edited[7] = true;
    }
    a.status = status;
    a.save(&annotation::path_for(image, None)).unwrap();
    a
}

fn jsrt_landmarks(name: &str) -> [[f32; 2]; NUM_NODES] {
    let csv = std::fs::read_to_string(common::shared_data().join("jsrt/landmarks.csv")).unwrap();
    let line = csv.lines().find(|l| l.starts_with(&format!("{name},"))).unwrap();
    parse_landmarks(line.splitn(3, ',').nth(2).unwrap().trim_matches('"')).unwrap()
}

struct Folder {
    _dir: tempfile::TempDir,
    images: PathBuf,
    out: PathBuf,
    reviews: Vec<(String, Annotation)>,
    dicom: PathBuf,
}

fn reviewed_folder() -> Folder {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let mut reviews = Vec::new();
    for (name, status) in [("JPCLN001", Status::Corrected), ("JPCLN015", Status::Accepted), ("JPCLN002", Status::Unreviewed)] {
        let dst = images.join(format!("{name}.png"));
        std::fs::copy(common::shared_data().join("jsrt/images").join(format!("{name}.png")), &dst).unwrap();
        let a = review(&dst, jsrt_landmarks(name), status);
        if status != Status::Unreviewed {
            reviews.push((format!("{name}.png"), a));
        }
    }
    let dicom = common::patient_dicom(&images, "patient.dcm");
    let (w, h) = (80.0 / 1024.0, 96.0 / 1024.0);
    let a = review(&dicom, template().map(|p| [p[0] * w, p[1] * h]), Status::Accepted);
    reviews.push(("patient.dcm".into(), a));
    reviews.sort_by(|a, b| a.0.cmp(&b.0));
    let out = dir.path().join("out");
    Folder { _dir: dir, images, out, reviews, dicom }
}

fn export(f: &Folder, extra: &[&str]) {
    let o = Command::new(exe()).arg("export").arg(&f.images).arg("--out").arg(&f.out).args(extra).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exported 3 reviewed images (1 without"), "{err}");
}

fn close(a: [f32; 2], b: [f32; 2]) -> bool {
    (a[0] - b[0]).abs() < 1e-3 && (a[1] - b[1]).abs() < 1e-3
}

#[test]
fn exports_read_back_to_the_reviewed_landmarks_and_masks() {
    let f = reviewed_folder();
    export(&f, &[]);

    // CheXmask CSV: the reviewer's landmarks, and RLE masks equal to the filled contours.
    let table = ChexmaskTable::read(&f.out.join("reviewed.chexmask.csv")).unwrap();
    let ids: Vec<&str> = table.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, f.reviews.iter().map(|r| r.0.as_str()).collect::<Vec<_>>());
    for (row, (_, a)) in table.rows.iter().zip(&f.reviews) {
        let l = row.landmarks.unwrap();
        assert!((0..NUM_NODES).all(|n| close(l[n], a.corrected[n])), "{}", row.id);
        let filled = organ_masks(&a.corrected_array(), a.image.width, a.image.height);
        for o in Organ::ALL {
            assert_eq!(row.mask(o).unwrap(), *filled.get(o), "{} {}", row.id, o.name());
        }
        assert_eq!(row.extra("Status"), Some(a.status.label()));
        assert!(row.extra("CTR").unwrap().parse::<f64>().unwrap() > 0.2);
    }

    // CheXmask-U: 120 rows per image, the model's spread and the reviewer's position.
    let u = std::fs::read_to_string(f.out.join("reviewed.chexmask-u.csv")).unwrap();
    let lines: Vec<&str> = u.lines().collect();
    assert_eq!(lines[0], "image,Node,Mean x,Mean y,Std x,Std y,Expected error,Reviewed x,Reviewed y,Edited");
    assert_eq!(lines.len(), 1 + 3 * NUM_NODES);
    let moved = lines.iter().find(|l| l.starts_with("JPCLN001.png,7,")).unwrap();
    assert!(moved.ends_with(",true") && moved.contains(",2,3,"), "{moved}");

    // COCO keypoints.
    let c = coco::read(&f.out.join("reviewed.coco.json")).unwrap();
    for (name, a) in &f.reviews {
        assert!((0..NUM_NODES).all(|n| close(c[name][n], a.corrected[n])), "{name}");
    }

    // DICOM SEG, read back by our reader: masks, and the source it references.
    for (name, a) in &f.reviews {
        let seg = dicom_seg::read_seg(&f.out.join("seg").join(format!("{name}.seg.dcm"))).unwrap();
        let filled = organ_masks(&a.corrected_array(), a.image.width, a.image.height);
        assert_eq!(seg.masks.0, filled.0, "{name}");
        let expected = (name == "patient.dcm").then(|| common::PATIENT_SOP_UID.to_string());
        assert_eq!(seg.referenced_sop_instance, expected, "{name}");
    }
    // Our image loader refuses it with a clear message (it is not a radiograph).
    let err = xray::load(&f.out.join("seg/patient.dcm.seg.dcm")).unwrap_err().to_string();
    assert!(err.contains("multi-frame") || err.contains("not a greyscale"), "{err}");

    // No patient attribute in any export.
    for entry in walk(&f.out) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        for secret in common::PATIENT_SECRETS {
            assert!(!text.contains(secret), "{secret} in {}", entry.display());
        }
    }

    // Independent readers: pydicom and highdicom (installed by .ci/run).
    let report = python_check(&f.out.join("seg/patient.dcm.seg.dcm"));
    let a = &f.reviews.iter().find(|r| r.0 == "patient.dcm").unwrap().1;
    let filled = organ_masks(&a.corrected_array(), a.image.width, a.image.height);
    let counts: Vec<usize> = filled.0.iter().map(|m| m.count()).collect();
    assert!(report.contains(&format!("\"frame_pixels\": [{}, {}, {}]", counts[0], counts[1], counts[2])), "{report}");
    assert!(report.contains("\"sop_class\": \"1.2.840.10008.5.1.4.1.1.66.4\""), "{report}");
    assert!(report.contains(&format!("\"source_instances\": [\"{}\"]", common::PATIENT_SOP_UID)), "{report}");
    assert!(report.contains("\"patient_name\": \"\""), "{report}");
    for (k, o) in Organ::ALL.iter().enumerate() {
        assert!(report.contains(&format!("\"label\": \"{}\"", o.name())), "{report}");
        assert!(report.contains(&format!("\"pixels\": {}", counts[k])), "{report}");
    }
    let src = xray::load(&f.dicom).unwrap();
    assert!(report.contains(&src.uids.unwrap().study_instance), "the SEG belongs to the source's study: {report}");
}

#[test]
fn patient_data_goes_into_the_seg_only_when_asked() {
    let f = reviewed_folder();
    export(&f, &["--include-patient-data"]);
    let report = python_check(&f.out.join("seg/patient.dcm.seg.dcm"));
    assert!(report.contains("\"patient_name\": \"DOE^JANE\"") && report.contains("PID-4711-XYZ"), "{report}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// `tests/tools/check_seg.py` on `seg`; its JSON report.
fn python_check(seg: &Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/check_seg.py");
    let o = Command::new("python3").arg(script).arg(seg).output().unwrap_or_else(|e| {
        panic!("python3 is needed for the independent DICOM SEG check (.ci/run installs pydicom and highdicom): {e}")
    });
    assert!(
        o.status.success(),
        "check_seg.py failed (pydicom and highdicom are installed by .ci/run: pip install pydicom highdicom):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
