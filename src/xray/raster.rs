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

    // The JPEG decoder runs lenient and would fill a cut-off scan with grey: a
    // half-missing radiograph must be refused, not shown.
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        return Err(LoadError::new(path, "JPEG is truncated: the image data ends before its end-of-image marker"));
    }

    // The header's size first: a forged one must be refused before the decoder allocates.
    let dims = std::panic::catch_unwind(|| image::ImageReader::with_format(Cursor::new(bytes), format).into_dimensions())
        .map_err(|_| LoadError::new(path, format!("{container} decoder crashed on this file (corrupt data?)")))?
        .map_err(|e| LoadError::new(path, format!("cannot decode {container}: {e}")))?;
    super::check_size(path, dims.0 as u64, dims.1 as u64, &format!("{container} header"))?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    // Beyond the size check, the default limits (512 MiB per allocation) bound what a
    // decoder may allocate for a forged file; keep them explicitly.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(super::MAX_SIDE as u32);
    limits.max_image_height = Some(super::MAX_SIDE as u32);
    reader.limits(limits);
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

/// Walk the JPEG marker segments from SOI: true when the data runs out before EOI.
/// Segment lengths are followed, so thumbnails inside APP segments are skipped, and
/// entropy-coded data is scanned to its next real marker (FF 00 is a stuffed byte,
/// FF D0–D7 a restart). Anything malformed is left for the decoder to judge.
fn jpeg_is_truncated(b: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    loop {
        // Markers may be preceded by any number of FF fill bytes.
        while b.get(pos) == Some(&0xFF) && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&ff), Some(&marker)) = (b.get(pos), b.get(pos + 1)) else { return true };
        if ff != 0xFF {
            return false;
        }
        match marker {
            0xD9 => return false,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let Some(len) = b.get(pos + 2..pos + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
                    return true;
                };
                pos += 2 + len;
                if pos > b.len() {
                    return true;
                }
                if marker == 0xDA {
                    // Entropy-coded data: runs until an FF not followed by 00 or RSTn.
                    loop {
                        match (b.get(pos), b.get(pos + 1)) {
                            (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => pos += 2,
                            (Some(0xFF), Some(_)) => break,
                            (Some(_), _) => pos += 1,
                            (None, _) => return true,
                        }
                    }
                }
            }
        }
    }
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
    fn jpeg_truncation_is_detected_from_markers() {
        // SOI, APP0 (len 4), SOS (len 3) + data with a stuffed FF00 and RST0, EOI.
        let whole = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xDA, 0, 3, 9, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9];
        assert!(!jpeg_is_truncated(&whole));
        for cut in 2..whole.len() {
            assert!(jpeg_is_truncated(&whole[..cut]), "cut at {cut}");
        }
        // An EOI inside an APP segment (a thumbnail) does not end the file.
        let thumb = [0xFF, 0xD8, 0xFF, 0xE1, 0, 6, 0xFF, 0xD9, 0, 0, 0xFF, 0xDA, 0, 2, 7, 7];
        assert!(jpeg_is_truncated(&thumb));
    }

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
