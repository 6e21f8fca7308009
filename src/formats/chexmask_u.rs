//! CheXmask-U per-image node tables: `Node,Mean x,Mean y,Std x,Std y`, one row per node
//! (METHOD.md §4), as `cxr-review infer` writes them, one `<image stem>.csv` per image.

use std::collections::BTreeMap;
use std::path::Path;

use super::chexmask::{
    ChexmaskRow, ChexmaskTable, DEFAULT_SIDE, HEIGHT_COLUMN, LANDMARKS_COLUMN, Landmarks, WIDTH_COLUMN,
};
use super::{FormatError, RowRef, format_coordinate, write_atomically};
use crate::landmarks::NUM_NODES;

pub const HEADER: [&str; 5] = ["Node", "Mean x", "Mean y", "Std x", "Std y"];
/// Optional sixth column: the node's expected error in pixels from the model's calibration
/// (the std columns stay the paper's raw spread).
pub const EXPECTED_ERROR_COLUMN: &str = "Expected error";

/// Mean position and standard deviation of every node over the latent samples.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTable {
    pub mean: Landmarks,
    /// (std x, std y) per node, pixels.
    pub std: [[f32; 2]; NUM_NODES],
    /// Calibrated expected error per node, pixels, when the table has the column.
    pub expected_error: Option<[f32; NUM_NODES]>,
}

impl NodeTable {
    /// A node's single uncertainty value: the mean of its x and y standard deviations,
    /// as the model's per-image score averages them.
    pub fn node_std(&self, node: usize) -> f32 {
        (self.std[node][0] + self.std[node][1]) / 2.0
    }

    /// The image's predictive-uncertainty score: the mean of [`NodeTable::node_std`] over nodes.
    pub fn score(&self) -> f64 {
        (0..NUM_NODES).map(|i| self.node_std(i) as f64).sum::<f64>() / NUM_NODES as f64
    }

    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let text = std::fs::read(path).map_err(|e| FormatError::file(path, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses the table; columns are found by name, nodes may come in any order but each once.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, FormatError> {
        let mut csv = csv::ReaderBuilder::new().from_reader(bytes);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| FormatError::file(path, format!("cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut cols = [0usize; 5];
        for (k, name) in HEADER.iter().enumerate() {
            cols[k] = header.iter().position(|h| h == name).ok_or_else(|| {
                FormatError::file(
                    path,
                    format!("no {name:?} column (expected {}; found {})", HEADER.join(","), header.join(",")),
                )
            })?;
        }
        let expected_col = header.iter().position(|h| h == EXPECTED_ERROR_COLUMN);
        let mut expected = [0.0f32; NUM_NODES];
        let mut mean = [[0.0f32; 2]; NUM_NODES];
        let mut std = [[0.0f32; 2]; NUM_NODES];
        let mut seen = [false; NUM_NODES];
        for (i, rec) in csv.records().enumerate() {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
                FormatError::row(path, RowRef { row: i + 1, line, id: None }, format!("malformed CSV: {e}"))
            })?;
            let line = rec.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
            let at = RowRef { row: i + 1, line, id: None };
            let err = |p: String| FormatError::row(path, at.clone(), p);
            let node_text = rec[cols[0]].trim();
            let node = node_text
                .parse::<usize>()
                .ok()
                .filter(|&n| n < NUM_NODES)
                .ok_or_else(|| err(format!("Node {node_text:?} is not a node index 0–{}", NUM_NODES - 1)))?;
            if std::mem::replace(&mut seen[node], true) {
                return Err(err(format!("node {node} appears twice")));
            }
            let mut v = [0.0f32; 4];
            for k in 0..4 {
                let t = rec[cols[k + 1]].trim();
                v[k] = t
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| err(format!("{} {t:?} is not a number", HEADER[k + 1])))?;
            }
            if v[2] < 0.0 || v[3] < 0.0 {
                return Err(err("a standard deviation is negative".to_string()));
            }
            if let Some(c) = expected_col {
                let t = rec.get(c).unwrap_or("").trim();
                expected[node] = t
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| err(format!("{EXPECTED_ERROR_COLUMN} {t:?} is not a non-negative number")))?;
            }
            mean[node] = [v[0], v[1]];
            std[node] = [v[2], v[3]];
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            let n = seen.iter().filter(|s| !**s).count();
            return Err(FormatError::file(
                path,
                format!("{n} of {NUM_NODES} nodes missing, the first is node {missing}"),
            ));
        }
        Ok(NodeTable { mean, std, expected_error: expected_col.map(|_| expected) })
    }

    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = HEADER.join(",");
        if self.expected_error.is_some() {
            out.push(',');
            out.push_str(EXPECTED_ERROR_COLUMN);
        }
        out.push('\n');
        for i in 0..NUM_NODES {
            let [x, y] = self.mean[i];
            let [sx, sy] = self.std[i];
            let mut cells = vec![format_coordinate(x), format_coordinate(y), format_coordinate(sx), format_coordinate(sy)];
            if let Some(e) = &self.expected_error {
                cells.push(format_coordinate(e[i]));
            }
            out.push_str(&format!("{i},{}\n", cells.join(",")));
        }
        out.into_bytes()
    }

    pub fn write(&self, path: &Path) -> Result<(), FormatError> {
        write_atomically(path, &self.to_csv())
    }
}

/// Every `<stem>.csv` node table in `dir`, by stem. `summary.csv` (the `infer` summary) is
/// skipped; any other CSV that is not a node table is an error naming it.
pub fn read_folder(dir: &Path) -> Result<BTreeMap<String, NodeTable>, FormatError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FormatError::file(dir, format!("cannot list folder: {e}")))?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| FormatError::file(dir, format!("cannot list folder: {e}")))?.path();
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if !path.is_file() || !is_csv || stem == "summary" {
            continue;
        }
        out.insert(stem, NodeTable::read(&path)?);
    }
    Ok(out)
}

/// A CheXmask-U folder as a prediction: one row per node table, landmarks = node means,
/// identifier = file stem. Image sizes come from the folder's `summary.csv` (columns
/// `image,width,height`, as `cxr-review infer` writes it); without it, or for an image it
/// does not list, [`super::chexmask::DEFAULT_SIDE`] is assumed.
pub fn read_prediction_folder(dir: &Path) -> Result<(ChexmaskTable, BTreeMap<String, NodeTable>), FormatError> {
    let tables = read_folder(dir)?;
    if tables.is_empty() {
        return Err(FormatError::file(dir, "no node tables (<image>.csv with Node,Mean x,Mean y,Std x,Std y)"));
    }
    let sizes = read_summary_sizes(&dir.join("summary.csv"))?;
    let mut table = ChexmaskTable::new(dir, "image");
    table.columns.retain(|c| c == "image" || c == LANDMARKS_COLUMN || c == HEIGHT_COLUMN || c == WIDTH_COLUMN);
    for (stem, t) in &tables {
        let size = sizes.get(stem).copied();
        let (width, height) = size.unwrap_or((DEFAULT_SIDE, DEFAULT_SIDE));
        table.push(ChexmaskRow {
            id: stem.clone(),
            landmarks: Some(t.mean),
            masks: [None, None, None],
            width,
            height,
            size_given: size.is_some(),
            extra: Vec::new(),
        });
    }
    Ok((table, tables))
}

/// Image sizes by file stem from an `infer` summary; empty when the file does not exist.
fn read_summary_sizes(path: &Path) -> Result<BTreeMap<String, (u32, u32)>, FormatError> {
    let mut out = BTreeMap::new();
    if !path.exists() {
        return Ok(out);
    }
    let mut csv = csv::Reader::from_path(path).map_err(|e| FormatError::file(path, format!("cannot read: {e}")))?;
    let header = csv.headers().map_err(|e| FormatError::file(path, format!("cannot read the header: {e}")))?.clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| FormatError::file(path, format!("no {name:?} column")))
    };
    let (ci, cw, ch) = (col("image")?, col("width")?, col("height")?);
    for (i, rec) in csv.records().enumerate() {
        let at = RowRef { row: i + 1, line: i as u64 + 2, id: None };
        let rec = rec.map_err(|e| FormatError::row(path, at.clone(), format!("malformed CSV: {e}")))?;
        let side = |c: usize| rec[c].trim().parse::<u32>().ok().filter(|&v| v > 0);
        let (Some(w), Some(h)) = (side(cw), side(ch)) else {
            return Err(FormatError::row(path, at, "width and height must be positive whole numbers"));
        };
        out.insert(super::matching::name_key(&rec[ci]).to_string(), (w, h));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NodeTable {
        let mut t = NodeTable { mean: [[0.0; 2]; NUM_NODES], std: [[0.0; 2]; NUM_NODES], expected_error: None };
        for i in 0..NUM_NODES {
            t.mean[i] = [i as f32 * 1.5, 300.25 - i as f32];
            t.std[i] = [0.1 * i as f32, 2.0];
        }
        t
    }

    #[test]
    fn round_trip_and_score() {
        let t = table();
        let back = NodeTable::parse(&t.to_csv(), Path::new("a.csv")).unwrap();
        assert_eq!(back, t);
        assert!((t.node_std(10) - 1.5).abs() < 1e-6);
        let expected = (0..NUM_NODES).map(|i| (0.1 * i as f64 + 2.0) / 2.0).sum::<f64>() / 120.0;
        assert!((t.score() - expected).abs() < 1e-5);
    }

    #[test]
    fn expected_error_column_round_trips_and_is_checked() {
        let mut t = table();
        t.expected_error = Some(std::array::from_fn(|i| 3.0 + i as f32 * 0.25));
        let csv = t.to_csv();
        assert!(String::from_utf8_lossy(&csv).starts_with("Node,Mean x,Mean y,Std x,Std y,Expected error\n"));
        assert_eq!(NodeTable::parse(&csv, Path::new("a.csv")).unwrap(), t);
        let bad = String::from_utf8(csv).unwrap().replacen(",3\n", ",-3\n", 1);
        let e = NodeTable::parse(bad.as_bytes(), Path::new("a.csv")).unwrap_err().to_string();
        assert!(e.contains("a.csv") && e.contains("Expected error \"-3\""), "{e}");
    }

    #[test]
    fn columns_by_name_and_errors() {
        let mut text = String::from("Std y,Node,Mean x,Mean y,Std x\n");
        for i in (0..NUM_NODES).rev() {
            text.push_str(&format!("1,{i},{i},2,0.5\n"));
        }
        let t = NodeTable::parse(text.as_bytes(), Path::new("a.csv")).unwrap();
        assert_eq!((t.mean[7], t.std[7]), ([7.0, 2.0], [0.5, 1.0]));
        let e = |s: &str| NodeTable::parse(s.as_bytes(), Path::new("u.csv")).unwrap_err().to_string();
        assert!(e("Node,Mean x,Mean y,Std x\n").contains("no \"Std y\" column"));
        assert!(
            e("Node,Mean x,Mean y,Std x,Std y\n0,1,2,3,4\n0,1,2,3,4\n")
                .contains("row 2 (line 3): node 0 appears twice")
        );
        assert!(e("Node,Mean x,Mean y,Std x,Std y\n120,1,2,3,4\n").contains("Node \"120\""));
        assert!(e("Node,Mean x,Mean y,Std x,Std y\n3,1,x,3,4\n").contains("Mean y \"x\""));
        assert!(e("Node,Mean x,Mean y,Std x,Std y\n3,1,2,-3,4\n").contains("negative"));
        assert!(
            e("Node,Mean x,Mean y,Std x,Std y\n3,1,2,3,4\n").contains("119 of 120 nodes missing, the first is node 0")
        );
    }
}
