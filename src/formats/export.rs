//! Writing landmark sets as a CheXmask CSV that CheXmask tools read: landmarks in the
//! image's own pixels, `Height`/`Width` = the image size, and RLE masks rasterised from
//! the landmarks the way the released masks were made ([`crate::masks::fill_contour`]).

use std::collections::HashSet;
use std::path::Path;

use super::FormatError;
use super::chexmask::{ChexmaskRow, ChexmaskTable, Landmarks};

/// One image to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportItem {
    pub id: String,
    pub landmarks: Landmarks,
    pub width: u32,
    pub height: u32,
}

/// The table [`export_chexmask`] writes, for callers that want to add columns first.
pub fn export_table(path: &Path, id_column: &str, items: &[ExportItem]) -> Result<ChexmaskTable, FormatError> {
    let mut seen = HashSet::new();
    let mut table = ChexmaskTable::new(path, id_column);
    for item in items {
        if !seen.insert(item.id.as_str()) {
            return Err(FormatError::file(path, format!("identifier {} is exported twice", item.id)));
        }
        if item.width == 0 || item.height == 0 {
            return Err(FormatError::file(
                path,
                format!("{}: image size {}×{} is empty", item.id, item.width, item.height),
            ));
        }
        table.push(ChexmaskRow::from_landmarks(item.id.clone(), item.landmarks, item.width, item.height));
    }
    Ok(table)
}

/// Writes `items` to a CheXmask CSV at `path` with identifier column `id_column`.
pub fn export_chexmask(path: &Path, id_column: &str, items: &[ExportItem]) -> Result<(), FormatError> {
    export_table(path, id_column, items)?.write(path)
}
