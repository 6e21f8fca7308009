//! `cxr-review export IMAGES.. --out DIR`: a reviewed folder in the formats other tools read.
//!
//! Only accepted and corrected reviews are exported (they are the gold standard); the
//! landmarks are the reviewer's. Written into DIR:
//! - `reviewed.chexmask.csv`: CheXmask CSV, landmarks and RLE masks filled from them, plus
//!   `Status` and `CTR` columns;
//! - `reviewed.chexmask-u.csv`: the model's per-node mean and std (CheXmask-U columns, with
//!   an `image` column first), its calibrated expected error when known, and the reviewer's
//!   position and whether the node was moved;
//! - `reviewed.coco.json`: COCO keypoints, one category per organ;
//! - `seg/<image>.seg.dcm`: a DICOM Segmentation per image, referencing DICOM sources.

use anyhow::Context;
use std::path::{Path, PathBuf};

use crate::formats::chexmask::Landmarks;
use crate::formats::export::{ExportItem, export_table};
use crate::formats::{coco, dicom_seg, format_coordinate, write_atomically};
use crate::landmarks::NUM_NODES;
use crate::masks::organ_masks;
use crate::metrics::ctr::ctr;
use crate::review::store::find_readable;
use crate::review::{Annotation, Status};
use crate::xray;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Reviewed images or folders (their `.cxr.json` reviews sit beside them).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Folder for the exports (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Skip the DICOM Segmentation objects.
    #[arg(long)]
    pub no_seg: bool,
    /// Copy the DICOM patient name, ID, birth date and accession number into the SEG objects
    /// (left empty otherwise).
    #[arg(long)]
    pub include_patient_data: bool,
}

/// One exported review.
pub struct Reviewed {
    pub image: PathBuf,
    pub annotation: Annotation,
}

impl Reviewed {
    fn name(&self) -> String {
        self.image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn landmarks(&self) -> Landmarks {
        self.annotation.corrected_array()
    }
}

/// The accepted and corrected reviews of `images`, and how many had none of those.
pub fn collect(images: &[PathBuf]) -> (Vec<Reviewed>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for image in images {
        match find_readable(image) {
            Some((_, a)) if matches!(a.status, Status::Accepted | Status::Corrected) => {
                out.push(Reviewed { image: image.clone(), annotation: a })
            }
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

fn chexmask_u_csv(items: &[Reviewed]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["image", "Node", "Mean x", "Mean y", "Std x", "Std y", "Expected error", "Reviewed x", "Reviewed y", "Edited"])?;
    for r in items {
        let (a, name) = (&r.annotation, r.name());
        let expected = a.calibrated.as_ref().map(|c| &c.expected_error);
        for n in 0..NUM_NODES {
            let e = expected.and_then(|e| e.get(n)).map(|v| format_coordinate(*v)).unwrap_or_default();
            w.write_record([
                name.clone(),
                n.to_string(),
                format_coordinate(a.predicted[n][0]),
                format_coordinate(a.predicted[n][1]),
                format_coordinate(a.predicted_std[n][0]),
                format_coordinate(a.predicted_std[n][1]),
                e,
                format_coordinate(a.corrected[n][0]),
                format_coordinate(a.corrected[n][1]),
                a.edited[n].to_string(),
            ])?;
        }
    }
    Ok(w.into_inner()?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let images = xray::expand_paths(&args.inputs)?;
    let (items, skipped) = collect(&images);
    anyhow::ensure!(!items.is_empty(), "none of the {} images has an accepted or corrected review", images.len());
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;

    let csv_path = args.out.join("reviewed.chexmask.csv");
    let export: Vec<ExportItem> = items
        .iter()
        .map(|r| ExportItem { id: r.name(), landmarks: r.landmarks(), width: r.annotation.image.width, height: r.annotation.image.height })
        .collect();
    let mut table = export_table(&csv_path, "image_id", &export)?;
    table.columns.extend(["Status".to_string(), "CTR".to_string()]);
    for (row, r) in table.rows.iter_mut().zip(&items) {
        row.extra.push(("Status".into(), r.annotation.status.label().into()));
        row.extra.push(("CTR".into(), ctr(&r.landmarks()).map(|c| format!("{:.4}", c.ratio)).unwrap_or_default()));
    }
    table.write(&csv_path)?;

    let u_path = args.out.join("reviewed.chexmask-u.csv");
    write_atomically(&u_path, &chexmask_u_csv(&items)?)?;

    let coco_path = args.out.join("reviewed.coco.json");
    let landmarks: Vec<Landmarks> = items.iter().map(Reviewed::landmarks).collect();
    let names: Vec<String> = items.iter().map(Reviewed::name).collect();
    let coco_items: Vec<coco::CocoItem> = items
        .iter()
        .zip(&landmarks)
        .zip(&names)
        .map(|((r, l), n)| coco::CocoItem { file_name: n, width: r.annotation.image.width, height: r.annotation.image.height, landmarks: l })
        .collect();
    coco::write(&coco_path, &coco_items)?;

    let mut segs = 0;
    if !args.no_seg {
        let dir = args.out.join("seg");
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        for r in &items {
            write_seg_of(r, &dir, args.include_patient_data)?;
            segs += 1;
        }
    }
    eprintln!(
        "exported {} reviewed images ({skipped} without an accepted or corrected review skipped): {}, {}, {}{}",
        items.len(),
        csv_path.display(),
        u_path.display(),
        coco_path.display(),
        if segs > 0 { format!(", {segs} SEG objects in {}", args.out.join("seg").display()) } else { String::new() }
    );
    Ok(())
}

/// The SEG of one review; a DICOM source's header gives the UIDs it must reference.
fn write_seg_of(r: &Reviewed, dir: &Path, include_patient: bool) -> anyhow::Result<PathBuf> {
    let a = &r.annotation;
    let masks = organ_masks(&r.landmarks(), a.image.width, a.image.height);
    // Header only: the pixels are not needed to reference the image.
    let identity = xray::dicom::read_identity(&r.image);
    let source = dicom_seg::SegSource {
        uids: identity.as_ref().map(|i| i.0.clone()),
        spacing: a.image.pixel_spacing_mm.map(|[row_mm, col_mm]| xray::PixelSpacing { row_mm, col_mm }),
        patient: if include_patient { identity.map(|i| i.1) } else { None },
        reviewed: true,
        uid_seed: a.image.sha256.clone(),
    };
    let path = dir.join(format!("{}.seg.dcm", r.name()));
    dicom_seg::write_seg(&path, &masks, &source)?;
    Ok(path)
}
