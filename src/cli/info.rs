//! `cxr-review info FILE [--png OUT]`: what the loader made of an image, as one JSON
//! object on stdout, and optionally the image exactly as the viewer first shows it.

use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;

use crate::xray::{self, Window, XrayImage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Image file to describe (DICOM, PNG, JPEG or TIFF).
    pub file: PathBuf,
    /// Also write the image as displayed at its default window, as 8-bit grey PNG.
    #[arg(long, value_name = "OUT")]
    pub png: Option<PathBuf>,
}

/// The JSON printed by `info`.
#[derive(Debug, Serialize)]
pub struct Info {
    pub width: u32,
    pub height: u32,
    pub bits_stored: u16,
    pub photometric: &'static str,
    pub modality: String,
    pub transfer_syntax: String,
    /// [row, col] spacing in mm.
    pub pixel_spacing_mm: Option<[f64; 2]>,
    /// The file's own window, not the default one computed when it has none.
    pub window: Option<Window>,
}

impl Info {
    pub fn of(img: &XrayImage) -> Self {
        Info {
            width: img.width,
            height: img.height,
            bits_stored: img.source.bits_stored,
            photometric: img.photometric.as_str(),
            modality: img.source.modality.clone(),
            transfer_syntax: img.source.transfer_syntax.clone(),
            pixel_spacing_mm: img.spacing.map(|s| [s.row_mm, s.col_mm]),
            window: img.file_window,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let img = xray::load(&args.file)?;
    if let Some(out) = &args.png {
        img.to_gray8(img.default_window())
            .save_with_format(out, image::ImageFormat::Png)
            .with_context(|| format!("{}: cannot write PNG", out.display()))?;
    }
    println!("{}", serde_json::to_string(&Info::of(&img))?);
    Ok(())
}
