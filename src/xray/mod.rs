//! The in-memory chest X-ray every other stage works on, and loading it from files.
//!
//! Pixel values are kept as f32 in the source's real dynamic range (after the DICOM
//! modality rescale, before windowing or inversion), so window/level and the model
//! pre-processing can both be derived from one copy.

pub mod dicom;
pub mod dicom_codestream;
pub mod dicom_lengths;
pub mod phantom;
pub mod raster;
pub mod window;

use serde::Serialize;
use std::path::{Path, PathBuf};

pub use window::Window;

/// Photometric interpretation as far as display is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Photometric {
    /// Higher values are brighter.
    Monochrome2,
    /// Higher values are darker: displayed inverted.
    Monochrome1,
}

impl Photometric {
    pub fn as_str(self) -> &'static str {
        match self {
            Photometric::Monochrome2 => "MONOCHROME2",
            Photometric::Monochrome1 => "MONOCHROME1",
        }
    }
}

/// Physical size of one pixel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PixelSpacing {
    /// Distance between rows (vertical), mm.
    pub row_mm: f64,
    /// Distance between columns (horizontal), mm.
    pub col_mm: f64,
}

/// Where an image came from and what its file said about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSource {
    /// The file, or `None` for generated images such as the phantom.
    pub path: Option<PathBuf>,
    /// Human label: the file name, or "synthetic".
    pub label: String,
    /// "CR", "DX", … for DICOM; "OT" for raster files and generated images.
    pub modality: String,
    /// Transfer syntax UID for DICOM, the container format otherwise ("PNG", "JPEG", …).
    pub transfer_syntax: String,
    /// Bits of real data per sample (DICOM BitsStored, 8 or 16 for raster files).
    pub bits_stored: u16,
}

/// The UIDs that identify a DICOM image without naming the patient: what an annotation
/// keeps to find its image again, and what a DICOM Segmentation refers to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct DicomUids {
    pub sop_class: String,
    pub sop_instance: String,
    pub study_instance: String,
    pub series_instance: String,
}

/// Patient identity read from a DICOM file. It is kept apart from everything that gets
/// written or logged: only the window title shows it, and only when the user allows it
/// (`--show-patient`), and `infer --include-patient-data` writes it on request. `Debug`
/// redacts it so a stray `{:?}` cannot leak it into a log.
#[derive(Clone, PartialEq, Default)]
pub struct PatientInfo {
    pub name: String,
    pub id: String,
    pub birth_date: String,
    pub accession: String,
}

impl std::fmt::Debug for PatientInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientInfo(redacted)")
    }
}

impl PatientInfo {
    /// The DICOM person name as a reader writes it ("DOE^JANE" → "DOE JANE").
    pub fn display_name(&self) -> String {
        self.name.split('^').filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// Largest image side we open: detectors are at most ~4300 px; a header claiming more
/// than this is forged or broken, and decoding it would only exhaust memory.
pub const MAX_SIDE: u64 = 16_384;
/// Largest pixel count we open (8192², 256 MiB as f32; a 4k×4k radiograph is a quarter).
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// Refuse a header's image size before anything is allocated for it.
pub fn check_size(path: &Path, width: u64, height: u64, what: &str) -> Result<(), LoadError> {
    if width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS {
        return Err(LoadError::new(
            path,
            format!(
                "{what} claims {width}×{height} pixels: larger than cxr-review opens \
                 (at most {MAX_SIDE} px a side and {} megapixels)",
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct XrayImage {
    pub width: u32,
    pub height: u32,
    /// Row-major raw values, `width * height` of them.
    pub pixels: Vec<f32>,
    pub photometric: Photometric,
    pub spacing: Option<PixelSpacing>,
    /// The window stored in the file, if any.
    pub file_window: Option<Window>,
    pub source: ImageSource,
    /// DICOM files only.
    pub uids: Option<DicomUids>,
    /// DICOM files only; never written anywhere unless asked for (see [`PatientInfo`]).
    pub patient: Option<PatientInfo>,
}

/// A load failure, always naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl LoadError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        LoadError { path: path.to_path_buf(), reason: reason.into() }
    }
}

/// File extensions we treat as images when listing a folder.
pub const IMAGE_EXTENSIONS: &[&str] = &["dcm", "dicom", "dic", "png", "jpg", "jpeg", "tif", "tiff"];

impl XrayImage {
    pub fn new(width: u32, height: u32, pixels: Vec<f32>, source: ImageSource) -> Self {
        debug_assert_eq!(pixels.len(), width as usize * height as usize);
        XrayImage {
            width,
            height,
            pixels,
            photometric: Photometric::Monochrome2,
            spacing: None,
            file_window: None,
            source,
            uids: None,
            patient: None,
        }
    }

    /// Raw value at integer pixel (x, y), or `None` outside the image.
    pub fn value_at(&self, x: i64, y: i64) -> Option<f32> {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return None;
        }
        Some(self.pixels[y as usize * self.width as usize + x as usize])
    }

    /// Smallest and largest raw value.
    pub fn value_range(&self) -> (f32, f32) {
        self.pixels
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }

    /// The window a reader sees first: the file's own; else, for 8-bit data, the full
    /// 0–255 range, so ordinary PNG/JPEG radiographs display exactly as stored; else
    /// one spanning the data, since deeper files (16-bit PNG, DICOM without a window)
    /// usually fill only part of their range (10–12-bit detector data).
    pub fn default_window(&self) -> Window {
        self.file_window.unwrap_or_else(|| {
            let (lo, hi) = self.value_range();
            if !lo.is_finite() || (self.source.bits_stored <= 8 && lo >= 0.0 && hi <= 255.0) {
                Window::spanning(0.0, 255.0)
            } else {
                Window::spanning(lo as f64, hi as f64)
            }
        })
    }

    pub fn inverted(&self) -> bool {
        self.photometric == Photometric::Monochrome1
    }

    /// The image as displayed at `window` (MONOCHROME1 inverted), intensities in `[0, 1]`.
    /// This is also the model's input before padding and resizing (METHOD.md §2).
    pub fn display_intensities(&self, window: Window) -> Vec<f32> {
        let inv = self.inverted();
        self.pixels.iter().map(|&v| window.display(v, inv)).collect()
    }

    /// 8-bit grey rendering at `window`, exactly as the viewer shows it.
    pub fn to_gray8(&self, window: Window) -> ::image::GrayImage {
        let inv = self.inverted();
        let buf = self.pixels.iter().map(|&v| window::to_u8(window.display(v, inv))).collect();
        ::image::GrayImage::from_raw(self.width, self.height, buf).expect("buffer size matches")
    }
}

/// Is this path something we can open as an image (by extension)?
pub fn looks_like_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Load any supported file: DICOM by content (preamble or a bare data set) or
/// by extension, raster formats through `image`.
pub fn load(path: &Path) -> Result<XrayImage, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::new(path, format!("cannot read file: {e}")))?;
    load_bytes(path, &bytes)
}

/// Load from bytes already in memory; `path` names the source in errors and metadata.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> Result<XrayImage, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::new(path, "file is empty"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let is_dicom_ext = matches!(ext.as_str(), "dcm" | "dicom" | "dic");
    if dicom::has_preamble(bytes) || is_dicom_ext {
        return dicom::load(path, bytes);
    }
    match raster::load(path, bytes) {
        Ok(img) => Ok(img),
        // Files without extension may still be bare DICOM data sets.
        Err(e) if dicom::looks_like_bare_dataset(bytes) => dicom::load(path, bytes).map_err(|_| e),
        Err(e) => Err(e),
    }
}

/// Expand command-line arguments: files stay, folders become their images sorted by name.
pub fn expand_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| LoadError::new(p, format!("cannot list folder: {e}")))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && looks_like_image(f))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(LoadError::new(p, "no such file or folder"));
        }
    }
    Ok(out)
}
