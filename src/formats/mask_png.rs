//! Masks as 8-bit grey PNG files, for tools that want pictures rather than RLE.
//!
//! One file per organ (0 background, 255 organ) and a label image whose value is a bit
//! set, [`RIGHT_LUNG_BIT`] | [`LEFT_LUNG_BIT`] | [`HEART_BIT`], because the heart and the
//! lungs overlap in CheXmask masks and a plain 0–3 label would lose the overlap.

use std::path::{Path, PathBuf};

use image::{GrayImage, ImageFormat, Luma};

use super::FormatError;
use crate::landmarks::Organ;
use crate::masks::{Mask, OrganMasks};

pub const RIGHT_LUNG_BIT: u8 = 1;
pub const LEFT_LUNG_BIT: u8 = 2;
pub const HEART_BIT: u8 = 4;

pub fn organ_bit(organ: Organ) -> u8 {
    match organ {
        Organ::RightLung => RIGHT_LUNG_BIT,
        Organ::LeftLung => LEFT_LUNG_BIT,
        Organ::Heart => HEART_BIT,
    }
}

/// File-name suffix of an organ's PNG: `right_lung`, `left_lung`, `heart`.
pub fn organ_suffix(organ: Organ) -> &'static str {
    match organ {
        Organ::RightLung => "right_lung",
        Organ::LeftLung => "left_lung",
        Organ::Heart => "heart",
    }
}

fn save(path: &Path, img: &GrayImage) -> Result<(), FormatError> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .map_err(|e| FormatError::file(path, format!("cannot encode PNG: {e}")))?;
    super::write_atomically(path, &bytes)
}

fn load(path: &Path) -> Result<GrayImage, FormatError> {
    let img = image::open(path).map_err(|e| FormatError::file(path, format!("cannot read image: {e}")))?;
    Ok(img.to_luma8())
}

/// Writes a mask as 0/255 grey PNG.
pub fn write_mask_png(path: &Path, mask: &Mask) -> Result<(), FormatError> {
    let img = GrayImage::from_fn(mask.width(), mask.height(), |x, y| {
        Luma([if mask.get(x as i64, y as i64) { 255 } else { 0 }])
    });
    save(path, &img)
}

/// Reads a mask from any image: foreground where the grey value is not 0.
pub fn read_mask_png(path: &Path) -> Result<Mask, FormatError> {
    let img = load(path)?;
    let data = img.as_raw().iter().map(|&v| v != 0).collect();
    Ok(Mask::from_vec(img.width(), img.height(), data).expect("one value per pixel"))
}

/// Writes the label image (bit set per pixel).
pub fn write_label_png(path: &Path, masks: &OrganMasks) -> Result<(), FormatError> {
    let img = GrayImage::from_fn(masks.width(), masks.height(), |x, y| {
        Luma([Organ::ALL.iter().filter(|&&o| masks.get(o).get(x as i64, y as i64)).map(|&o| organ_bit(o)).sum()])
    });
    save(path, &img)
}

/// Reads a label image written by [`write_label_png`].
pub fn read_label_png(path: &Path) -> Result<OrganMasks, FormatError> {
    let img = load(path)?;
    if let Some((i, v)) = img.as_raw().iter().enumerate().find(|(_, v)| **v > 7) {
        let w = img.width() as usize;
        return Err(FormatError::file(
            path,
            format!(
                "pixel ({}, {}) has value {v}; label values are sums of 1 (right lung), 2 (left lung), 4 (heart)",
                i % w,
                i / w
            ),
        ));
    }
    let plane = |o: Organ| {
        let bit = organ_bit(o);
        Mask::from_vec(img.width(), img.height(), img.as_raw().iter().map(|v| v & bit != 0).collect()).expect("size")
    };
    Ok(OrganMasks(Organ::ALL.map(plane)))
}

/// Writes `<stem>_right_lung.png`, `<stem>_left_lung.png`, `<stem>_heart.png` and
/// `<stem>_labels.png` into `dir`; returns the paths written.
pub fn write_organ_pngs(dir: &Path, stem: &str, masks: &OrganMasks) -> Result<Vec<PathBuf>, FormatError> {
    let mut written = Vec::new();
    for organ in Organ::ALL {
        let p = dir.join(format!("{stem}_{}.png", organ_suffix(organ)));
        write_mask_png(&p, masks.get(organ))?;
        written.push(p);
    }
    let p = dir.join(format!("{stem}_labels.png"));
    write_label_png(&p, masks)?;
    written.push(p);
    Ok(written)
}
