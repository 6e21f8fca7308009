//! PNG, JPEG and TIFF files, decoded with the `image` crate.
//!
//! Values keep the file's real dynamic range: 0–255 for 8-bit files, 0–65535 for
//! 16-bit ones. Colour images become grey by Rec.601 luma, computed at the file's own
//! bit depth so 16-bit colour keeps its precision. Alpha is ignored: radiographs carry
//! no meaningful transparency, and compositing over a background would alter values.
//! Raster files have no window of their own (`file_window` is `None`).

use super::{ImageSource, LoadError, XrayImage};
use image::{DynamicImage, ImageFormat};
use std::io::Cursor;
use std::path::Path;

/// Decode a PNG, JPEG or TIFF held in `bytes`; `path` names it in errors and metadata.
pub fn load(path: &Path, bytes: &[u8]) -> Result<XrayImage, LoadError> {
    // The content decides the format, not the extension: files are often misnamed.
    let format = image::guess_format(bytes).map_err(|_| {
        LoadError::new(path, "not a recognised image: neither DICOM nor PNG, JPEG or TIFF")
    })?;
    let container = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Tiff => "TIFF",
        other => {
            return Err(LoadError::new(
                path,
                format!("unsupported image format {other:?}: use DICOM, PNG, JPEG or TIFF"),
            ));
        }
    };

    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    // The default limits (512 MiB per allocation) stop a forged header from
    // allocating unbounded memory; keep them explicitly.
    reader.limits(image::Limits::default());
    // Decoders are third-party code fed user data: a panic must become an error.
    let decoded = std::panic::catch_unwind(move || reader.decode())
        .map_err(|_| LoadError::new(path, format!("{container} decoder crashed on this file (corrupt data?)")))?
        .map_err(|e| LoadError::new(path, format!("cannot decode {container}: {e}")))?;

    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(LoadError::new(path, format!("{container} has no pixels ({width}×{height})")));
    }
    let (pixels, bits_stored) = gray_values(path, decoded)?;

    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(XrayImage::new(
        width,
        height,
        pixels,
        ImageSource {
            path: Some(path.to_path_buf()),
            label,
            modality: "OT".into(),
            transfer_syntax: container.into(),
            bits_stored,
        },
    ))
}

/// Grey values of a decoded image in its own range, and its bit depth.
fn gray_values(path: &Path, img: DynamicImage) -> Result<(Vec<f32>, u16), LoadError> {
    Ok(match img {
        DynamicImage::ImageLuma8(b) => (b.into_raw().into_iter().map(f32::from).collect(), 8),
        DynamicImage::ImageLumaA8(b) => (b.into_raw().chunks_exact(2).map(|p| f32::from(p[0])).collect(), 8),
        DynamicImage::ImageRgb8(b) => (b.into_raw().chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(), 8),
        DynamicImage::ImageRgba8(b) => (b.into_raw().chunks_exact(4).map(|p| luma(p[0], p[1], p[2])).collect(), 8),
        DynamicImage::ImageLuma16(b) => (b.into_raw().into_iter().map(f32::from).collect(), 16),
        DynamicImage::ImageLumaA16(b) => (b.into_raw().chunks_exact(2).map(|p| f32::from(p[0])).collect(), 16),
        DynamicImage::ImageRgb16(b) => (b.into_raw().chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect(), 16),
        DynamicImage::ImageRgba16(b) => (b.into_raw().chunks_exact(4).map(|p| luma(p[0], p[1], p[2])).collect(), 16),
        other => {
            return Err(LoadError::new(
                path,
                format!("unsupported pixel type {:?}: only 8- and 16-bit integer images", other.color()),
            ));
        }
    })
}

/// Rec.601 luma, rounded to the nearest integer level so grey stored as RGB
/// (R = G = B) comes back exactly as the grey value.
fn luma<T: Into<f64>>(r: T, g: T, b: T) -> f32 {
    (0.299 * r.into() + 0.587 * g.into() + 0.114 * b.into()).round() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_keeps_grey_exact_and_weights_channels() {
        for v in [0u16, 1, 127, 255, 4095, 65535] {
            assert_eq!(luma(v, v, v), v as f32);
        }
        assert_eq!(luma(255u8, 0, 0), 76.0); // 0.299 * 255 = 76.245
        assert_eq!(luma(0u8, 255, 0), 150.0); // 149.685
        assert_eq!(luma(0u8, 0, 255), 29.0); // 29.07
    }
}
