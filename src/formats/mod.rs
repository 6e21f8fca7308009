//! Files exchanged with the outside: CheXmask CSVs (landmarks and RLE masks), CheXmask-U
//! per-image node tables, masks as PNG, and matching CheXmask rows to the user's images.
//! METHOD.md §6 is the specification.
//!
//! Every read error is a [`FormatError`] naming the file and, when it is about one row,
//! the row number, the line in the file and the row's identifier.

pub mod chexmask;
pub mod chexmask_u;
pub mod coco;
pub mod dicom_seg;
pub mod export;
pub mod import;
pub mod mask_png;
pub mod matching;
pub mod rle;

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRef {
    /// Data row, 1-based, not counting the header.
    pub row: usize,
    /// Line in the file, 1-based (the header is line 1).
    pub line: u64,
    /// The row's identifier, when it could be read.
    pub id: Option<String>,
}

impl fmt::Display for RowRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {} (line {}", self.row, self.line)?;
        if let Some(id) = &self.id {
            write!(f, ", id {id}")?;
        }
        f.write_str(")")
    }
}

/// A file that could not be read or written, with the reason.
#[derive(Debug, thiserror::Error)]
pub struct FormatError {
    pub file: PathBuf,
    pub row: Option<RowRef>,
    pub problem: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(r) = &self.row {
            write!(f, ", {r}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl FormatError {
    pub fn file(file: &Path, problem: impl Into<String>) -> Self {
        FormatError { file: file.to_path_buf(), row: None, problem: problem.into() }
    }

    pub fn row(file: &Path, row: RowRef, problem: impl Into<String>) -> Self {
        FormatError { file: file.to_path_buf(), row: Some(row), problem: problem.into() }
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`,
/// so a crash never leaves half a file where a complete one was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FormatError::file(path, format!("cannot write: {e}"))
    })
}

/// Shortest text that reads back as the same f32 ("431", "357.62"): whole numbers carry
/// no ".0", so integer landmarks are written the way the released files write them.
pub fn format_coordinate(v: f32) -> String {
    if v == v.trunc() && v.abs() < 1e9 { format!("{}", v as i64) } else { format!("{v}") }
}
