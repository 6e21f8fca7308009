//! Bringing CheXmask rows onto the user's own images: which row belongs to which file,
//! and where the row's landmarks fall on that file's pixels.
//!
//! A row's coordinates live in a `Width × Height` space. When the image has that size they
//! are the image's pixels. The released subsets are 1024×1024 versions of larger images,
//! made as the model's pre-processing does it (METHOD.md §2: pad to a square, centred,
//! then resize), so a square row on an image of another size is mapped back through that
//! letterbox. Anything else (a non-square row on a different size) is scaled per axis.

use std::path::{Path, PathBuf};

use super::chexmask::{ChexmaskRow, ChexmaskTable, Landmarks};
use super::matching::{Matching, match_names};
use crate::landmarks::Point;
use crate::model::preprocess::Letterbox;

/// How a row's coordinates map onto an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// Same size: coordinates are the image's pixels.
    Same,
    /// The row is the padded, resized square of the image: `side` is the row's side.
    Letterbox { letterbox: Letterbox, side: u32 },
    /// Plain per-axis scaling (image = row × factor).
    Stretch { sx: f32, sy: f32 },
}

impl Placement {
    /// The placement of a `row_w × row_h` row on an `image_w × image_h` image.
    pub fn new(row_w: u32, row_h: u32, image_w: u32, image_h: u32) -> Self {
        if (row_w, row_h) == (image_w, image_h) {
            Placement::Same
        } else if row_w == row_h && row_w > 0 {
            Placement::Letterbox { letterbox: Letterbox::new(image_w, image_h), side: row_w }
        } else {
            Placement::Stretch { sx: image_w as f32 / row_w.max(1) as f32, sy: image_h as f32 / row_h.max(1) as f32 }
        }
    }

    /// Row coordinates → image pixels.
    pub fn to_image(&self, p: Point) -> Point {
        match *self {
            Placement::Same => p,
            Placement::Letterbox { letterbox, side } => letterbox.to_image([p[0] / side as f32, p[1] / side as f32]),
            Placement::Stretch { sx, sy } => [p[0] * sx, p[1] * sy],
        }
    }

    /// Image pixels → row coordinates.
    pub fn to_row(&self, p: Point) -> Point {
        match *self {
            Placement::Same => p,
            Placement::Letterbox { letterbox, side } => {
                let q = letterbox.to_model(p);
                [q[0] * side as f32, q[1] * side as f32]
            }
            Placement::Stretch { sx, sy } => [p[0] / sx, p[1] / sy],
        }
    }
}

/// The row's landmarks in the pixels of a `width × height` image, with the placement used.
pub fn landmarks_on_image(row: &ChexmaskRow, width: u32, height: u32) -> Option<(Landmarks, Placement)> {
    let placement = Placement::new(row.width, row.height, width, height);
    row.landmarks.map(|l| (l.map(|p| placement.to_image(p)), placement))
}

/// Rows of a CheXmask file paired with image files.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMatches {
    /// (row index in the table, image path).
    pub matched: Vec<(usize, PathBuf)>,
    /// Rows no image was found for.
    pub unmatched_rows: Vec<usize>,
    /// Images no row was found for.
    pub unmatched_images: Vec<PathBuf>,
    /// Rows that fit several images equally well, and those images.
    pub ambiguous_rows: Vec<(usize, Vec<PathBuf>)>,
}

/// Pairs the table's rows with `images` by identifier or file name (see [`super::matching`]).
pub fn match_rows_to_images(table: &ChexmaskTable, images: &[PathBuf]) -> ImageMatches {
    let ids: Vec<&str> = table.rows.iter().map(|r| r.id.as_str()).collect();
    let names: Vec<String> = images.iter().map(|p| path_text(p)).collect();
    let Matching { pairs, unmatched_left, unmatched_right, ambiguous } = match_names(&ids, &names);
    ImageMatches {
        matched: pairs.into_iter().map(|(i, j)| (i, images[j].clone())).collect(),
        unmatched_rows: unmatched_left,
        unmatched_images: unmatched_right.into_iter().map(|j| images[j].clone()).collect(),
        ambiguous_rows: ambiguous
            .into_iter()
            .map(|(i, c)| (i, c.into_iter().map(|j| images[j].clone()).collect()))
            .collect(),
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_placement_inverts() {
        // A 1024 square row on a 2000×1000 image: scale 2000/1024, 500 rows of padding on top.
        let pl = Placement::new(1024, 1024, 2000, 1000);
        let p = pl.to_image([512.0, 512.0]);
        assert!((p[0] - 1000.0).abs() < 1e-3 && (p[1] - 500.0).abs() < 1e-3, "{p:?}");
        let top = pl.to_image([0.0, 256.0]);
        assert!((top[1] - 0.0).abs() < 1e-3, "{top:?}");
        let back = pl.to_row(p);
        assert!((back[0] - 512.0).abs() < 1e-3 && (back[1] - 512.0).abs() < 1e-3);
        assert_eq!(Placement::new(1024, 1024, 1024, 1024).to_image([3.0, 4.0]), [3.0, 4.0]);
        assert_eq!(Placement::new(100, 50, 200, 200).to_image([10.0, 10.0]), [20.0, 40.0]);
    }
}
