//! Hostile input (issue 14): headers that claim huge images or tensors are refused before
//! anything is allocated, a real-size 16-bit radiograph still opens, the fuzzer's short
//! seeded pass finds nothing, every kept fuzz finding stays fixed, and patient identity
//! never reaches an output file or a log unless asked for.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cxr_review::fuzz::{self, Outcome, Target};
use cxr_review::model::{HybridGNet, ModelConfig};
use cxr_review::xray;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_cxr-review")
}

/// A PNG of `width × height` 8-bit grey whose IDAT holds almost nothing.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = fuzz::mutate::crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A patient DICOM's bytes with Rows and Columns rewritten to `side`.
fn dicom_claiming(dir: &Path, side: u16) -> PathBuf {
    let src = common::patient_dicom(dir, "src.dcm");
    let mut obj = dicom_object::open_file(&src).unwrap();
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(side)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(side)));
    let path = dir.join("huge.dcm");
    obj.write_to_file(&path).unwrap();
    path
}

#[test]
fn headers_claiming_huge_images_are_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("huge.png");
    std::fs::write(&png, png_claiming(60_000, 60_000)).unwrap();
    let err = xray::load(&png).unwrap_err().to_string();
    assert!(err.contains("huge.png") && err.contains("60000×60000") && err.contains("larger than"), "{err}");

    let dcm = dicom_claiming(dir.path(), 60_000);
    let err = xray::load(&dcm).unwrap_err().to_string();
    assert!(err.contains("huge.dcm") && err.contains("60000×60000") && err.contains("larger than"), "{err}");

    // Through the command line as well: a refusal, never a crash.
    let out = Command::new(exe()).arg("info").arg(&dcm).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("huge.dcm"), "{out:?}");
}

#[test]
fn a_4k_16bit_radiograph_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let side = 4096u32;
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(side, side, |x, y| image::Luma([((x * 7 + y * 3) % 4096) as u16]));
    let path = dir.path().join("detector.png");
    img.save(&path).unwrap();
    let loaded = xray::load(&path).unwrap();
    assert_eq!((loaded.width, loaded.height, loaded.source.bits_stored), (side, side, 16));
    assert_eq!(loaded.pixels[side as usize + 1], ((7 + 3) % 4096) as f32);
    assert!(u64::from(side) * u64::from(side) <= xray::MAX_PIXELS);
}

#[test]
fn weights_claiming_huge_tensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A safetensors header claiming a 65536 × 65536 f32 tensor (16 GiB) over 16 bytes of data.
    let header = br#"{"encoder.fc_mu.weight":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,17179869184]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend([0u8; 16]);
    let path = dir.path().join("forged.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let err = HybridGNet::load(&path, &burn::tensor::Device::flex()).err().expect("refused").to_string();
    assert!(err.contains("forged.safetensors"), "{err}");

    // Real weights with one tensor's shape inflated in the header (the data stays small).
    let good = dir.path().join("good.safetensors");
    HybridGNet::random(&ModelConfig::released(64), 1, &burn::tensor::Device::flex()).save(&good).unwrap();
    let mut bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let text = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let inflated = text.replacen("\"shape\":[", "\"shape\":[4000000000,", 1);
    bytes.splice(8..8 + n, inflated.bytes());
    bytes.splice(0..8, (inflated.len() as u64).to_le_bytes());
    let path = dir.path().join("inflated.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let err = HybridGNet::load(&path, &burn::tensor::Device::flex()).err().expect("refused").to_string();
    assert!(err.contains("inflated.safetensors"), "{err}");
}

/// Seconds-long seeded pass over every target; the long runs are in the issue note.
#[test]
fn a_short_seeded_fuzz_pass_finds_nothing() {
    let data = common::shared_data();
    let out = tempfile::tempdir().unwrap();
    // Iterations per target sized for about a minute in all on CI's two cores.
    for (target, iterations) in [
        (Target::Dicom, 40),
        (Target::Raster, 60),
        (Target::Chexmask, 120),
        (Target::ChexmaskU, 400),
        (Target::Annotation, 400),
        (Target::Safetensors, 60),
        (Target::Pytorch, 60),
    ] {
        let opts = fuzz::Options {
            target,
            iterations,
            seed: 1,
            max_time: None,
            data: data.clone(),
            fixtures: cxr_review::cli::fuzz::fixtures_dir(),
            out: out.path().to_path_buf(),
        };
        let r = fuzz::run(&opts, |_, _| {}).unwrap();
        assert_eq!(r.iterations, iterations);
        assert!(r.findings.is_empty(), "{}: {:?}", target.name(), r.findings);
        // The mutations must reach past the first check: some inputs are refused, and for
        // the formats whose small edits often leave a valid file, some are accepted.
        assert!(r.refused > 0, "{}: nothing refused", target.name());
    }
}

/// Every input a fuzzing run ever found a problem with, kept under tests/fuzz_regressions/.
#[test]
fn kept_fuzz_findings_stay_fixed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let work = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for target in Target::ALL {
        let dir = root.join(target.name());
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "bin") {
                let outcome = fuzz::check(target, &std::fs::read(&path).unwrap(), work.path());
                assert!(!outcome.is_finding(), "{}: {outcome:?}", path.display());
                // A `.expect` beside the input: the refusal must say this.
                if let Ok(expected) = std::fs::read_to_string(path.with_extension("expect")) {
                    match &outcome {
                        Outcome::Refused(msg) => assert!(msg.contains(expected.trim()), "{}: {msg}", path.display()),
                        other => panic!("{}: expected a refusal, got {other:?}", path.display()),
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no regression inputs under {}", root.display());
}

#[test]
fn a_refusal_without_the_file_name_counts_as_a_finding() {
    // The checker itself: a clean refusal names the file; a garbage DICOM is refused cleanly.
    let work = tempfile::tempdir().unwrap();
    match fuzz::check(Target::Dicom, b"DICM not really", work.path()) {
        Outcome::Refused(msg) => assert!(msg.contains("fuzz-input.dcm"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(Outcome::Unnamed("x".into()).is_finding() && Outcome::Panicked("x".into()).is_finding());
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_no_patient_data(what: &str, text: &str) {
    for secret in common::PATIENT_SECRETS {
        assert!(!text.contains(secret), "{secret} leaked into {what}");
    }
}

#[test]
fn patient_identity_never_reaches_outputs_or_logs_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let dcm = common::patient_dicom(&images, "case.dcm");
    let loaded = xray::load(&dcm).unwrap();
    // Read (for the title bar), but redacted in debug output.
    assert_eq!(loaded.patient.as_ref().unwrap().name, "DOE^JANE");
    assert_no_patient_data("Debug of the image", &format!("{loaded:?}"));
    let weights = dir.path().join("w.safetensors");
    HybridGNet::random(&ModelConfig::released(64), 1, &burn::tensor::Device::flex()).save(&weights).unwrap();

    let info = Command::new(exe()).arg("info").arg(&dcm).arg("--png").arg(dir.path().join("shown.png")).output().unwrap();
    assert!(info.status.success(), "{info:?}");
    assert_no_patient_data("info's stdout", &String::from_utf8_lossy(&info.stdout));
    assert_no_patient_data("info's stderr", &String::from_utf8_lossy(&info.stderr));

    let out = dir.path().join("out");
    let run = |extra: &[&str], out: &Path| {
        let o = Command::new(exe())
            .args(["infer", "--samples", "3", "--device", "cpu", "--weights"])
            .arg(&weights)
            .arg("--out")
            .arg(out)
            .args(extra)
            .arg(&images)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        o
    };
    let o = run(&[], &out);
    assert_no_patient_data("infer's stderr", &String::from_utf8_lossy(&o.stderr));
    assert_no_patient_data("infer's stdout", &String::from_utf8_lossy(&o.stdout));
    let files = files_under(&out);
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        assert_no_patient_data(&f.display().to_string(), &String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }

    // Asked for: the summary carries them.
    let asked = dir.path().join("asked");
    run(&["--include-patient-data"], &asked);
    let summary = std::fs::read_to_string(asked.join("summary.csv")).unwrap();
    assert!(summary.lines().next().unwrap().ends_with("patient_name,patient_id,patient_birth_date,accession_number"), "{summary}");
    assert!(summary.contains("DOE^JANE,PID-4711-XYZ,19450317,ACC-99887766"), "{summary}");
}
