//! Image loading: the real files in shared/data, DICOMs and rasters these tests write
//! themselves, and broken input (truncated, garbage) that must fail cleanly.
//!
//! Expected values for the real files were read independently with pydicom 3.0 and
//! Pillow 13 (metadata, pixel sums and extremes), not with this crate.

use crate::common;

use cxr_review::xray::{self, Photometric, PixelSpacing, Window, XrayImage};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use std::path::{Path, PathBuf};

fn dicom_dir() -> PathBuf {
    common::shared_data().join("dicom")
}

fn examples_dir() -> PathBuf {
    common::shared_data().join("examples")
}

fn load(path: &Path) -> XrayImage {
    xray::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn sum(img: &XrayImage) -> f64 {
    img.pixels.iter().map(|&v| v as f64).sum()
}

fn describe(img: &XrayImage) -> String {
    let (lo, hi) = img.value_range();
    format!(
        "{}: {}x{} bits {} {} modality {} ts {} spacing {:?} window {:?} range {lo}..{hi} sum {}",
        img.source.label,
        img.width,
        img.height,
        img.source.bits_stored,
        img.photometric.as_str(),
        img.source.modality,
        img.source.transfer_syntax,
        img.spacing,
        img.file_window,
        sum(img)
    )
}

// ---------------------------------------------------------------- real DICOM files

struct Expect {
    file: &'static str,
    width: u32,
    height: u32,
    bits: u16,
    photometric: Photometric,
    modality: &'static str,
    ts: &'static str,
    spacing: Option<(f64, f64)>,
    window: Option<(f64, f64)>,
}

const REAL_DICOMS: [Expect; 6] = [
    Expect {
        file: "cr_mono1_10bit_chest.dcm",
        width: 440,
        height: 440,
        bits: 10,
        photometric: Photometric::Monochrome1,
        modality: "CR",
        ts: "1.2.840.10008.1.2.1",
        spacing: None,
        window: Some((550.0, 1024.0)),
    },
    Expect {
        file: "cr_mono1_10bit_chest_nometa.dcm",
        width: 440,
        height: 440,
        bits: 10,
        photometric: Photometric::Monochrome1,
        modality: "CR",
        ts: "1.2.840.10008.1.2",
        spacing: None,
        window: Some((550.0, 1024.0)),
    },
    Expect {
        file: "dx_nih_8bit_1024.dcm",
        width: 1024,
        height: 1024,
        bits: 8,
        photometric: Photometric::Monochrome2,
        modality: "DX",
        ts: "1.2.840.10008.1.2",
        spacing: None,
        window: None,
    },
    Expect {
        file: "cr_siim_jpeg_baseline.dcm",
        width: 1024,
        height: 1024,
        bits: 8,
        photometric: Photometric::Monochrome2,
        modality: "CR",
        ts: "1.2.840.10008.1.2.4.50",
        spacing: Some((0.168, 0.168)),
        window: None,
    },
    Expect {
        file: "cr_siim_jpeg_baseline_monochrome1.dcm",
        width: 1024,
        height: 1024,
        bits: 8,
        photometric: Photometric::Monochrome1,
        modality: "CR",
        ts: "1.2.840.10008.1.2.4.50",
        spacing: Some((0.168, 0.168)),
        window: None,
    },
    // PixelSpacing is present but "0.000\0.000", which is no spacing at all.
    Expect {
        file: "cr_wg04_15bit_j2k_lossy_monochrome1.dcm",
        width: 1841,
        height: 1955,
        bits: 15,
        photometric: Photometric::Monochrome1,
        modality: "CR",
        ts: "1.2.840.10008.1.2.4.91",
        spacing: None,
        window: Some((15000.0, 30000.0)),
    },
];

#[test]
fn every_real_dicom_opens_with_its_metadata() {
    let dir = dicom_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dcm"))
        .collect();
    names.sort();
    let mut expected: Vec<&str> = REAL_DICOMS.iter().map(|e| e.file).collect();
    expected.sort();
    assert_eq!(names, expected, "the table below must cover every file in {}", dir.display());

    for e in &REAL_DICOMS {
        let img = load(&dir.join(e.file));
        println!("{}", describe(&img));
        assert_eq!((img.width, img.height), (e.width, e.height), "{}", e.file);
        assert_eq!(img.pixels.len(), (e.width * e.height) as usize);
        assert_eq!(img.source.bits_stored, e.bits, "{}", e.file);
        assert_eq!(img.photometric, e.photometric, "{}", e.file);
        assert_eq!(img.source.modality, e.modality, "{}", e.file);
        assert_eq!(img.source.transfer_syntax, e.ts, "{}", e.file);
        assert_eq!(img.spacing.map(|s| (s.row_mm, s.col_mm)), e.spacing, "{}", e.file);
        assert_eq!(img.file_window.map(|w| (w.center, w.width)), e.window, "{}", e.file);
        assert_eq!(img.source.label, e.file);
        // Unsigned data without rescale: integers within the stored bits.
        let (lo, hi) = img.value_range();
        assert!(lo >= 0.0 && hi < (1u32 << e.bits) as f32, "{}: {lo}..{hi}", e.file);
        assert!(img.pixels.iter().all(|v| v.fract() == 0.0), "{}", e.file);
    }
}

#[test]
fn uncompressed_dicom_pixels_match_pydicom() {
    let dir = dicom_dir();
    // (file, first six values of row 0, min, max, sum), from pydicom's pixel_array.
    let cases: [(&str, [f32; 6], f32, f32, f64); 3] = [
        ("cr_mono1_10bit_chest.dcm", [0., 209., 782., 946., 954., 956.], 0., 979., 97_159_572.),
        ("cr_mono1_10bit_chest_nometa.dcm", [0., 209., 782., 946., 954., 956.], 0., 979., 97_159_572.),
        ("dx_nih_8bit_1024.dcm", [199., 175., 152., 133., 124., 118.], 0., 252., 188_805_187.),
    ];
    for (file, first, lo, hi, total) in cases {
        let img = load(&dir.join(file));
        assert_eq!(&img.pixels[..6], &first, "{file}");
        assert_eq!(img.value_range(), (lo, hi), "{file}");
        assert_eq!(sum(&img), total, "{file}");
    }
}

#[test]
fn no_meta_cr_decodes_exactly_like_its_twin() {
    let dir = dicom_dir();
    let full = load(&dir.join("cr_mono1_10bit_chest.dcm"));
    let bare = load(&dir.join("cr_mono1_10bit_chest_nometa.dcm"));
    assert_eq!(bare.pixels, full.pixels);
    assert_eq!(bare.file_window, full.file_window);
    assert_eq!(bare.spacing, full.spacing);
    assert_eq!(bare.photometric, full.photometric);
    assert_eq!(bare.source.bits_stored, full.source.bits_stored);
    assert_eq!(bare.source.modality, full.source.modality);
    // The same bytes with no extension still load: the content says DICOM.
    let tmp = tempfile::tempdir().unwrap();
    let renamed = tmp.path().join("no_extension");
    std::fs::copy(dir.join("cr_mono1_10bit_chest_nometa.dcm"), &renamed).unwrap();
    assert_eq!(load(&renamed).pixels, full.pixels);
}

#[test]
fn monochrome1_copy_displays_as_exact_inverse() {
    let dir = dicom_dir();
    let m2 = load(&dir.join("cr_siim_jpeg_baseline.dcm"));
    let m1 = load(&dir.join("cr_siim_jpeg_baseline_monochrome1.dcm"));
    assert_eq!(m1.pixels, m2.pixels, "same stored pixels, only the label differs");
    assert!(m1.inverted() && !m2.inverted());
    // 8-bit without a window: shown over the full 0..255 range, unchanged.
    assert_eq!(m2.default_window(), Window::spanning(0.0, 255.0));
    let g2 = m2.to_gray8(m2.default_window());
    let g1 = m1.to_gray8(m1.default_window());
    for (i, (a, b)) in g2.as_raw().iter().zip(g1.as_raw()).enumerate() {
        assert_eq!(*b, 255 - *a, "pixel {i}");
    }
    for (g, v) in g2.as_raw().iter().zip(&m2.pixels) {
        assert_eq!(*g as f32, *v);
    }
    // pydicom (libjpeg-turbo) gives 0..254, sum 168 189 534; another IDCT may differ
    // by a grey level here and there, so compare the mean, not the exact sum.
    let mean = sum(&m2) / m2.pixels.len() as f64;
    assert!((mean - 168_189_534.0 / 1_048_576.0).abs() < 0.05, "mean {mean}");
    assert_eq!(m2.value_range().0, 0.0);
    assert!((253.0..=255.0).contains(&m2.value_range().1));
}

#[test]
fn jpeg2000_15bit_decodes_to_its_range() {
    let img = load(&dicom_dir().join("cr_wg04_15bit_j2k_lossy_monochrome1.dcm"));
    assert_eq!((img.width, img.height), (1841, 1955));
    let (lo, hi) = img.value_range();
    assert!(lo >= 0.0 && hi <= 32767.0, "{lo}..{hi} must fit 15 bits");
    // pydicom with OpenJPEG: min 803, max 26512, sum 26 602 973 060, row 0 starting
    // 18876, 18518, 18810. Same codec family, so expect the same lossy reconstruction
    // to within a level.
    assert!((lo - 803.0).abs() <= 1.0 && (hi - 26512.0).abs() <= 1.0, "{lo}..{hi}");
    let mean = sum(&img) / img.pixels.len() as f64;
    assert!((mean - 26_602_973_060.0 / (1841.0 * 1955.0)).abs() < 0.5, "mean {mean}");
    for (got, want) in img.pixels[..3].iter().zip([18876.0f32, 18518.0, 18810.0]) {
        assert!((got - want).abs() <= 1.0, "{got} vs {want}");
    }
}

// ---------------------------------------------------------------- real raster files

#[test]
fn every_example_raster_opens_and_displays_unchanged() {
    // (file, width, height, container, stored as grey)
    let cases = [
        ("nih_00000001_000.png", 512, 512, "PNG", true),
        ("nih_00027426_000.png", 512, 512, "PNG", true),
        ("pa_example2.jpg", 1280, 1436, "JPEG", true),
        ("pa_pacemaker_rgb.png", 432, 461, "PNG", false),
        ("pa_example4_rgb.jpg", 1098, 899, "JPEG", false),
    ];
    let dir = examples_dir();
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut listed: Vec<&str> = cases.iter().map(|c| c.0).collect();
    listed.sort();
    assert_eq!(names, listed, "the table must cover every file in {}", dir.display());

    for (file, w, h, container, grey) in cases {
        let path = dir.join(file);
        let img = load(&path);
        println!("{}", describe(&img));
        assert_eq!((img.width, img.height), (w, h), "{file}");
        assert_eq!(img.source.bits_stored, 8);
        assert_eq!(img.source.modality, "OT");
        assert_eq!(img.source.transfer_syntax, container);
        assert_eq!(img.photometric, Photometric::Monochrome2);
        assert_eq!((img.spacing, img.file_window), (None, None));
        assert_eq!(img.default_window(), Window::spanning(0.0, 255.0));
        let shown = img.to_gray8(img.default_window());
        let reference = image::open(&path).unwrap();
        if grey {
            assert_eq!(shown.as_raw(), reference.to_luma8().as_raw(), "{file} must display as stored");
        } else {
            // Rec.601 luma of the stored RGB, recomputed here independently.
            let rgb = reference.to_rgb8();
            for (g, p) in shown.as_raw().iter().zip(rgb.pixels()) {
                let [r, gg, b] = p.0.map(f64::from);
                assert_eq!(*g, (0.299 * r + 0.587 * gg + 0.114 * b).round() as u8);
            }
        }
    }
    // The pacemaker PNG is grey stored as RGB: luma must give the grey back exactly.
    let img = load(&dir.join("pa_pacemaker_rgb.png"));
    let rgb = image::open(dir.join("pa_pacemaker_rgb.png")).unwrap().to_rgb8();
    assert!(img.pixels.iter().zip(rgb.pixels()).all(|(v, p)| *v == p.0[0] as f32));
}

// ---------------------------------------------------------------- rasters written here

#[test]
fn sixteen_bit_png_keeps_values_and_spans_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let values: Vec<u16> = (0..64u16).map(|i| 100 + i * 61).collect(); // 100..=3943, 12-bit data
    let path = tmp.path().join("deep.png");
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(8, 8, values.clone()).unwrap().save(&path).unwrap();
    let img = load(&path);
    assert_eq!(img.source.bits_stored, 16);
    assert_eq!(img.source.transfer_syntax, "PNG");
    assert_eq!(img.pixels, values.iter().map(|&v| v as f32).collect::<Vec<_>>());
    assert_eq!(img.default_window(), Window::spanning(100.0, 3943.0));
    let g = img.to_gray8(img.default_window());
    assert_eq!((g.as_raw()[0], g.as_raw()[63]), (0, 255));

    // 16-bit RGB: luma at 16-bit precision, not through 8 bits.
    let rgb: Vec<u16> = vec![1000, 2000, 3000, 65535, 65535, 65535];
    let path = tmp.path().join("deep_rgb.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(2, 1, rgb).unwrap().save(&path).unwrap();
    let img = load(&path);
    assert_eq!(img.source.bits_stored, 16);
    assert_eq!(img.pixels, vec![1815.0, 65535.0]); // 299 + 1174 + 342
}

#[test]
fn tiff_gray_alpha_and_palette_rasters() {
    let tmp = tempfile::tempdir().unwrap();
    let v16: Vec<u16> = (0..12u16).map(|i| i * 5000).collect();
    let path = tmp.path().join("scan.tif");
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(4, 3, v16.clone()).unwrap().save(&path).unwrap();
    let img = load(&path);
    assert_eq!((img.width, img.height, img.source.bits_stored), (4, 3, 16));
    assert_eq!(img.source.transfer_syntax, "TIFF");
    assert_eq!(img.pixels, v16.iter().map(|&v| v as f32).collect::<Vec<_>>());

    let v8: Vec<u8> = (0..12u8).map(|i| i * 20).collect();
    let path = tmp.path().join("scan8.tiff");
    image::GrayImage::from_raw(4, 3, v8.clone()).unwrap().save(&path).unwrap();
    let img = load(&path);
    assert_eq!((img.source.bits_stored, img.source.transfer_syntax.as_str()), (8, "TIFF"));
    assert_eq!(img.pixels, v8.iter().map(|&v| v as f32).collect::<Vec<_>>());

    // Alpha is ignored, not composited.
    let path = tmp.path().join("alpha.png");
    image::ImageBuffer::<image::LumaA<u8>, _>::from_raw(2, 1, vec![10, 0, 200, 128]).unwrap().save(&path).unwrap();
    assert_eq!(load(&path).pixels, vec![10.0, 200.0]);

    // A misnamed file is read by its content.
    let path = tmp.path().join("really_a_png.jpg");
    image::GrayImage::from_raw(4, 3, v8.clone()).unwrap().save_with_format(&path, image::ImageFormat::Png).unwrap();
    let img = load(&path);
    assert_eq!(img.source.transfer_syntax, "PNG");
    assert_eq!(img.pixels, v8.iter().map(|&v| v as f32).collect::<Vec<_>>());

    // Palette PNG (colour type 3), built by hand: entries grey 0, red, grey 200.
    let path = tmp.path().join("palette.png");
    std::fs::write(&path, palette_png(3, 1, &[[0, 0, 0], [255, 0, 0], [200, 200, 200]], &[2, 1, 0])).unwrap();
    let img = load(&path);
    assert_eq!((img.width, img.height, img.source.bits_stored), (3, 1, 8));
    assert_eq!(img.pixels, vec![200.0, 76.0, 0.0]); // red: 0.299 * 255 = 76.2
}

/// A minimal 8-bit palette PNG: zlib "stored" blocks need no compressor.
fn palette_png(width: u32, height: u32, palette: &[[u8; 3]], indices: &[u8]) -> Vec<u8> {
    use cxr_review::fuzz::mutate::crc32;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for row in indices.chunks(width as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend((raw.len() as u16).to_le_bytes());
    zlib.extend((!(raw.len() as u16)).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(((b << 16) | a).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 3, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"PLTE", &palette.concat());
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

// ---------------------------------------------------------------- DICOMs written here

/// What to put in a test DICOM; pixel words are written as stored (OW, or OB for 8-bit).
struct Spec {
    rows: u16,
    cols: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    photometric: &'static str,
    samples: u16,
    frames: Option<u32>,
    words: Vec<u16>,
    bytes: Vec<u8>,
    rescale: Option<(&'static str, &'static str)>,
    window: Option<(&'static str, &'static str)>,
    pixel_spacing: Option<&'static str>,
    imager_spacing: Option<&'static str>,
    planar: Option<u16>,
    pixel_data: bool,
}

impl Spec {
    fn gray16(rows: u16, cols: u16, words: Vec<u16>) -> Self {
        Spec {
            rows,
            cols,
            bits_allocated: 16,
            bits_stored: 16,
            signed: false,
            photometric: "MONOCHROME2",
            samples: 1,
            frames: None,
            words,
            bytes: vec![],
            rescale: None,
            window: None,
            pixel_spacing: None,
            imager_spacing: None,
            planar: None,
            pixel_data: true,
        }
    }

    fn object(&self) -> InMemDicomObject {
        let us = |v: u16| PrimitiveValue::from(v);
        let mut obj = InMemDicomObject::from_element_iter([
            DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION)),
            DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("2.25.1234567890")),
            DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("DX")),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(self.samples)),
            DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from(self.photometric)),
            DataElement::new(tags::ROWS, VR::US, us(self.rows)),
            DataElement::new(tags::COLUMNS, VR::US, us(self.cols)),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, us(self.bits_allocated)),
            DataElement::new(tags::BITS_STORED, VR::US, us(self.bits_stored)),
            DataElement::new(tags::HIGH_BIT, VR::US, us(self.bits_stored - 1)),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(self.signed as u16)),
        ]);
        if let Some(f) = self.frames {
            obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(f.to_string())));
        }
        if let Some(p) = self.planar {
            obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(p)));
        }
        if let Some((slope, intercept)) = self.rescale {
            obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from(slope)));
            obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from(intercept)));
        }
        if let Some((c, w)) = self.window {
            obj.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from(c)));
            obj.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from(w)));
        }
        if let Some(s) = self.pixel_spacing {
            obj.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, PrimitiveValue::from(s)));
        }
        if let Some(s) = self.imager_spacing {
            obj.put(DataElement::new(tags::IMAGER_PIXEL_SPACING, VR::DS, PrimitiveValue::from(s)));
        }
        if self.pixel_data {
            let value = if self.bits_allocated == 8 {
                DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(self.bytes.clone().into()))
            } else {
                DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(self.words.clone().into()))
            };
            obj.put(value);
        }
        obj
    }

    /// Write as a Part 10 file (preamble, meta) in the given transfer syntax.
    fn write(&self, dir: &Path, name: &str, ts: &str) -> PathBuf {
        let path = dir.join(name);
        self.object()
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
            .unwrap()
            .write_to_file(&path)
            .unwrap();
        path
    }

    /// Write as a bare data set: no preamble, no "DICM", no meta group.
    fn write_bare(&self, dir: &Path, name: &str, ts_uid: &str) -> PathBuf {
        let path = dir.join(name);
        let ts = TransferSyntaxRegistry.get(ts_uid).unwrap();
        let mut bytes = Vec::new();
        self.object().write_dataset_with_ts(&mut bytes, ts).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

#[test]
fn written_16bit_unsigned_and_signed_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let words = vec![0, 1, 4095, 32768, 65534, 65535];
    let img = load(&Spec::gray16(2, 3, words.clone()).write(tmp.path(), "u16.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.pixels, vec![0.0, 1.0, 4095.0, 32768.0, 65534.0, 65535.0]);
    assert_eq!((img.width, img.height, img.source.bits_stored), (3, 2, 16));
    assert_eq!(img.source.modality, "DX");
    assert_eq!(img.photometric, Photometric::Monochrome2);
    assert_eq!(img.file_window, None);
    // 16-bit data without a window: the default spans the data.
    assert_eq!(img.default_window(), Window::spanning(0.0, 65535.0));

    let signed: Vec<i16> = vec![-32768, -1000, -1, 0, 1, 32767];
    let spec = Spec { signed: true, ..Spec::gray16(2, 3, signed.iter().map(|&v| v as u16).collect()) };
    for ts in [uids::EXPLICIT_VR_LITTLE_ENDIAN, uids::IMPLICIT_VR_LITTLE_ENDIAN] {
        let img = load(&spec.write(tmp.path(), "i16.dcm", ts));
        assert_eq!(img.pixels, signed.iter().map(|&v| v as f32).collect::<Vec<_>>(), "{ts}");
        assert_eq!(img.source.transfer_syntax, ts);
    }
}

#[test]
fn written_rescale_window_and_spacing_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec {
        rescale: Some(("2.5", "-1024")),
        // Two windows given: the first is the default.
        window: Some(("40\\-600", "400\\1500")),
        pixel_spacing: Some("0.2\\0.3"),
        imager_spacing: Some("0.15\\0.15"),
        ..Spec::gray16(1, 4, vec![0, 1, 1000, 4095])
    };
    let img = load(&spec.write(tmp.path(), "ct_like.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.pixels, vec![-1024.0, -1021.5, 1476.0, 9213.5]);
    assert_eq!(img.file_window, Some(Window { center: 40.0, width: 400.0 }));
    assert_eq!(img.default_window(), Window { center: 40.0, width: 400.0 });
    assert_eq!(img.spacing, Some(PixelSpacing { row_mm: 0.2, col_mm: 0.3 }));

    // Without PixelSpacing, the detector's ImagerPixelSpacing is used.
    let spec = Spec { pixel_spacing: None, imager_spacing: Some("0.139\\0.14"), ..Spec::gray16(1, 1, vec![7]) };
    let img = load(&spec.write(tmp.path(), "dx.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.spacing, Some(PixelSpacing { row_mm: 0.139, col_mm: 0.14 }));
    assert_eq!(img.file_window, None);

    // A zero width is not a window (DICOM requires width >= 1).
    let spec = Spec { window: Some(("100", "0")), ..Spec::gray16(1, 1, vec![7]) };
    assert_eq!(load(&spec.write(tmp.path(), "w0.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN)).file_window, None);
}

#[test]
fn written_monochrome1_displays_inverted() {
    let tmp = tempfile::tempdir().unwrap();
    let words = vec![0, 1023, 512, 100];
    let m2 = load(&Spec { window: Some(("512", "1024")), ..Spec::gray16(2, 2, words.clone()) }.write(
        tmp.path(),
        "m2.dcm",
        uids::EXPLICIT_VR_LITTLE_ENDIAN,
    ));
    let m1 = load(
        &Spec { photometric: "MONOCHROME1", window: Some(("512", "1024")), ..Spec::gray16(2, 2, words) }.write(
            tmp.path(),
            "m1.dcm",
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ),
    );
    assert_eq!(m1.photometric, Photometric::Monochrome1);
    assert_eq!(m1.pixels, m2.pixels, "inversion is a display matter, not a load one");
    let (g1, g2) = (m1.to_gray8(m1.default_window()), m2.to_gray8(m2.default_window()));
    assert_eq!(g2.as_raw(), &vec![0, 255, 128, 25]);
    assert_eq!(g1.as_raw(), &vec![255, 0, 127, 230]);
}

#[test]
fn written_12_of_16_bits_ignore_garbage_high_bits() {
    let tmp = tempfile::tempdir().unwrap();
    // Stored values 0, 1, 2048, 4095 with overlay/garbage bits set above bit 11.
    let words = vec![0xF000, 0x5001, 0xA800, 0x3FFF];
    let spec = Spec { bits_stored: 12, ..Spec::gray16(2, 2, words.clone()) };
    let img = load(&spec.write(tmp.path(), "u12.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.pixels, vec![0.0, 1.0, 2048.0, 4095.0]);
    assert_eq!(img.source.bits_stored, 12);
    // Signed 12-bit: sign bit is bit 11, not bit 15.
    let spec = Spec { bits_stored: 12, signed: true, ..Spec::gray16(2, 2, words) };
    let img = load(&spec.write(tmp.path(), "s12.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.pixels, vec![0.0, 1.0, -2048.0, -1.0]);
}

#[test]
fn written_8bit_and_rgb_dicoms() {
    let tmp = tempfile::tempdir().unwrap();
    let gray = Spec { bits_allocated: 8, bits_stored: 8, bytes: vec![0, 7, 128, 255], ..Spec::gray16(2, 2, vec![]) };
    let img = load(&gray.write(tmp.path(), "g8.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
    assert_eq!(img.pixels, vec![0.0, 7.0, 128.0, 255.0]);
    assert_eq!(img.default_window(), Window::spanning(0.0, 255.0));

    // RGB, interleaved and planar: (255,0,0), (0,255,0), (10,10,10), (0,0,255).
    let interleaved = vec![255, 0, 0, 0, 255, 0, 10, 10, 10, 0, 0, 255];
    let planar = vec![255, 0, 10, 0, 0, 255, 10, 0, 0, 0, 10, 255];
    for (bytes, pc) in [(interleaved, 0), (planar, 1)] {
        let spec = Spec {
            bits_allocated: 8,
            bits_stored: 8,
            samples: 3,
            photometric: "RGB",
            planar: Some(pc),
            bytes,
            ..Spec::gray16(2, 2, vec![])
        };
        let img = load(&spec.write(tmp.path(), "rgb.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN));
        assert_eq!(img.pixels, vec![76.0, 150.0, 10.0, 29.0], "planar configuration {pc}");
    }
}

#[test]
fn written_bare_datasets_load_in_both_vr_encodings() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec {
        bits_stored: 12,
        window: Some(("2000", "4000")),
        pixel_spacing: Some("0.1\\0.1"),
        ..Spec::gray16(2, 2, vec![0xF000, 1, 2, 4095])
    };
    for (ts, name) in [(uids::IMPLICIT_VR_LITTLE_ENDIAN, "bare_implicit"), (uids::EXPLICIT_VR_LITTLE_ENDIAN, "bare_explicit")] {
        for file in [format!("{name}.dcm"), name.to_string()] {
            let path = spec.write_bare(tmp.path(), &file, ts);
            let bytes = std::fs::read(&path).unwrap();
            assert!(!xray::dicom::has_preamble(&bytes));
            assert!(xray::dicom::looks_like_bare_dataset(&bytes), "{file}");
            let img = load(&path);
            assert_eq!(img.pixels, vec![0.0, 1.0, 2.0, 4095.0], "{file}");
            assert_eq!(img.source.transfer_syntax, ts, "{file}");
            assert_eq!(img.file_window, Some(Window { center: 2000.0, width: 4000.0 }));
            assert_eq!(img.spacing, Some(PixelSpacing { row_mm: 0.1, col_mm: 0.1 }));
        }
    }
    // A Part 10 file stripped of its preamble only ("DICM" first) also loads.
    let full = spec.write(tmp.path(), "full.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let stripped = tmp.path().join("stripped.dcm");
    std::fs::write(&stripped, &std::fs::read(&full).unwrap()[128..]).unwrap();
    assert_eq!(load(&stripped).pixels, vec![0.0, 1.0, 2.0, 4095.0]);
    // …and one stripped of preamble and "DICM", meta group still there.
    let no_magic = tmp.path().join("no_magic");
    std::fs::write(&no_magic, &std::fs::read(&full).unwrap()[132..]).unwrap();
    assert_eq!(load(&no_magic).pixels, vec![0.0, 1.0, 2.0, 4095.0]);
}

fn expect_err(path: &Path, needle: &str) -> String {
    let msg = match xray::load(path) {
        Ok(img) => panic!("{} loaded ({}x{}) but must be refused", path.display(), img.width, img.height),
        Err(e) => e.to_string(),
    };
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "error must name the file: {msg}");
    assert!(msg.to_lowercase().contains(needle), "error must say {needle:?}: {msg}");
    msg
}

#[test]
fn written_unsupported_dicoms_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let two_frames = Spec { frames: Some(2), ..Spec::gray16(2, 2, vec![1; 8]) };
    println!("{}", expect_err(&two_frames.write(tmp.path(), "cine.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "multi-frame"));

    let no_pixels = Spec { pixel_data: false, ..Spec::gray16(2, 2, vec![]) };
    println!("{}", expect_err(&no_pixels.write(tmp.path(), "report.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "no image"));

    let two_samples = Spec { samples: 2, ..Spec::gray16(1, 1, vec![1, 2]) };
    println!("{}", expect_err(&two_samples.write(tmp.path(), "dual.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "not a greyscale"));

    let palette = Spec { photometric: "PALETTE COLOR", ..Spec::gray16(1, 1, vec![1]) };
    println!("{}", expect_err(&palette.write(tmp.path(), "palette.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "palette"));

    // Header says 4x4, data holds 2 pixels.
    let short = Spec { ..Spec::gray16(4, 4, vec![1, 2]) };
    println!("{}", expect_err(&short.write(tmp.path(), "short.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "truncated"));

    let bad_bits = Spec { bits_stored: 17, ..Spec::gray16(1, 1, vec![1]) };
    println!("{}", expect_err(&bad_bits.write(tmp.path(), "bits.dcm", uids::EXPLICIT_VR_LITTLE_ENDIAN), "bit"));
}

// ---------------------------------------------------------------- broken input

/// Deterministic noise (xorshift), so failures reproduce.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Every strict prefix from a few bytes up to most of the file must be refused with
/// an error naming the file (and must not panic).
fn assert_prefixes_fail(original: &[u8], name: &str, dir: &Path) {
    let n = original.len();
    let mut cuts = vec![1, 4, 8, 33, 64, 127, 131, 132, 140, 300, 1000, n / 4, n / 2, 3 * n / 4, 9 * n / 10];
    cuts.retain(|&c| c > 0 && c < n);
    for cut in cuts {
        let path = dir.join(format!("cut{cut}_{name}"));
        std::fs::write(&path, &original[..cut]).unwrap();
        let msg = match xray::load(&path) {
            Ok(img) => panic!("{name} cut to {cut} of {n} bytes loaded as {}x{}", img.width, img.height),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(&format!("cut{cut}_{name}")), "error must name the file: {msg}");
    }
}

#[test]
fn truncated_files_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dicom = dicom_dir();
    let examples = examples_dir();
    for (dir, name) in [
        (&dicom, "cr_mono1_10bit_chest.dcm"),            // preamble, explicit VR
        (&dicom, "cr_mono1_10bit_chest_nometa.dcm"),     // bare data set
        (&dicom, "dx_nih_8bit_1024.dcm"),                // implicit VR with meta
        (&dicom, "cr_siim_jpeg_baseline.dcm"),           // encapsulated JPEG
        (&dicom, "cr_wg04_15bit_j2k_lossy_monochrome1.dcm"), // encapsulated J2K
        (&examples, "nih_00000001_000.png"),
        (&examples, "pa_pacemaker_rgb.png"),
        (&examples, "pa_example2.jpg"),
        (&examples, "pa_example4_rgb.jpg"),
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_prefixes_fail(&bytes, name, tmp.path());
        // The same prefixes without an extension take the content-sniffing path.
        assert_prefixes_fail(&bytes, &name.replace('.', "_"), tmp.path());
    }
    // TIFF, written here (no TIFF among the shared examples).
    let tif = tmp.path().join("src.tif");
    let v: Vec<u16> = (0..64 * 64).map(|i| (i * 13 % 65536) as u16).collect();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(64, 64, v).unwrap().save(&tif).unwrap();
    assert_prefixes_fail(&std::fs::read(&tif).unwrap(), "scan.tif", tmp.path());
    // An empty file.
    let empty = tmp.path().join("empty.dcm");
    std::fs::write(&empty, b"").unwrap();
    expect_err(&empty, "empty");
}

#[test]
fn garbage_fails_cleanly_for_every_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let mut preamble_dicom = vec![0u8; 128];
    preamble_dicom.extend_from_slice(b"DICM");
    // Headers that route garbage to each decoder, then noise.
    let heads: [(&str, Vec<u8>); 9] = [
        ("noise.dcm", vec![]),
        ("noise", vec![]),
        ("preamble.dcm", preamble_dicom.clone()),
        ("preamble_noext", preamble_dicom),
        ("dicm_only", b"DICM".to_vec()),
        // (0008,0005) implicit VR, a sane first element, then noise.
        ("bare", vec![0x08, 0, 0x05, 0, 0x0A, 0, 0, 0, b'I', b'S', b'O', b'_', b'I', b'R', b' ', b'1', b'0', b'0']),
        ("noise.png", b"\x89PNG\r\n\x1a\n".to_vec()),
        ("noise.jpg", b"\xFF\xD8\xFF\xE0".to_vec()),
        ("noise.tif", b"II*\0\x08\0\0\0".to_vec()),
    ];
    for (name, head) in heads {
        for (seed, len) in [(1u64, 16usize), (2, 200), (3, 5000), (4, 100_000)] {
            let mut bytes = head.clone();
            bytes.extend(noise(len, seed));
            let path = tmp.path().join(format!("{seed}_{name}"));
            std::fs::write(&path, &bytes).unwrap();
            let msg = match xray::load(&path) {
                Ok(img) => panic!("{name} + {len} noise bytes loaded as {}x{}", img.width, img.height),
                Err(e) => e.to_string(),
            };
            assert!(msg.contains(&format!("{seed}_{name}")), "error must name the file: {msg}");
        }
    }
    // A missing file names itself too.
    expect_err(&tmp.path().join("absent.dcm"), "cannot read");
}

// ---------------------------------------------------------------- `cxr-review info`

#[test]
fn info_prints_json_and_writes_the_displayed_png() {
    let tmp = tempfile::tempdir().unwrap();
    let file = dicom_dir().join("cr_mono1_10bit_chest.dcm");
    let png = tmp.path().join("shown.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cxr-review"))
        .arg("info")
        .arg(&file)
        .arg("--png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON object on one line: {stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "width": 440, "height": 440, "bits_stored": 10, "photometric": "MONOCHROME1",
            "modality": "CR", "transfer_syntax": "1.2.840.10008.1.2.1",
            "pixel_spacing_mm": null, "window": {"center": 550.0, "width": 1024.0}
        })
    );
    let written = image::open(&png).unwrap();
    assert_eq!(written.color(), image::ColorType::L8);
    let img = load(&file);
    assert_eq!(written.to_luma8().as_raw(), img.to_gray8(img.default_window()).as_raw());
    // MONOCHROME1: the lowest raw value (0) shows white.
    assert_eq!(written.to_luma8().as_raw()[0], 255);

    // Spacing as [row, col] and no window.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cxr-review"))
        .arg("info")
        .arg(dicom_dir().join("cr_siim_jpeg_baseline.dcm"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["pixel_spacing_mm"], serde_json::json!([0.168, 0.168]));
    assert_eq!(json["window"], serde_json::Value::Null);
    assert_eq!(json["transfer_syntax"], "1.2.840.10008.1.2.4.50");
}

#[test]
fn info_on_garbage_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("not_an_xray.dcm");
    std::fs::write(&bad, noise(3000, 9)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cxr-review")).arg("info").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no JSON on failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not_an_xray.dcm"), "stderr: {stderr}");
    assert!(stderr.starts_with("error:"), "stderr: {stderr}");
}
