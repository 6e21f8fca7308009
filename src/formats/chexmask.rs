//! CheXmask CSV files (METHOD.md §6): one row per image with an identifier, `Landmarks`
//! ("x1,y1,…", 240 numbers), the RLE masks `Right Lung`, `Left Lung`, `Heart`, and
//! optionally `Height`, `Width`.
//!
//! The released files are messy, and all of these read:
//! - the identifier column is any of [`ID_COLUMNS`];
//! - sizes as "1024" or "1024.0", empty, or no size columns at all: an absent size means
//!   1024×1024, the size of every preprocessed CheXmask subset;
//! - columns in any order; other columns (`Dataset`, `Dice RCA (Mean)`, `split`, …) are
//!   kept per row and written back;
//! - an empty `Landmarks` or mask cell means "not given" (an all-background mask encodes
//!   as an empty string too, so the two cannot be told apart in this format).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::rle::Rle;
use super::{FormatError, RowRef, format_coordinate, write_atomically};
use crate::landmarks::{NUM_NODES, Organ, Point};
use crate::masks::{self, Mask, OrganMasks, organ_index};

/// Identifier column names used by the CheXmask subsets (and `image` by the JSRT landmark file),
/// in order of preference.
pub const ID_COLUMNS: [&str; 6] = ["image_id", "ImageID", "Path", "dicom_id", "Image Index", "image"];
pub const LANDMARKS_COLUMN: &str = "Landmarks";
pub const HEIGHT_COLUMN: &str = "Height";
pub const WIDTH_COLUMN: &str = "Width";
/// Side of the preprocessed CheXmask images, assumed when a row gives no size.
pub const DEFAULT_SIDE: u32 = 1024;
/// Largest mask side accepted: guards against allocating for a mistyped size.
pub const MAX_SIDE: u32 = 16384;

/// The 120 landmarks of one image.
pub type Landmarks = [Point; NUM_NODES];

/// One image's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChexmaskRow {
    pub id: String,
    pub landmarks: Option<Landmarks>,
    /// RLE masks in [`Organ::ALL`] order; `None` where the cell or the column is absent.
    pub masks: [Option<Rle>; 3],
    pub width: u32,
    pub height: u32,
    /// `false` when the size was not in the row and [`DEFAULT_SIDE`] was assumed.
    pub size_given: bool,
    /// The other columns, as (header, value) in file order.
    pub extra: Vec<(String, String)>,
}

impl ChexmaskRow {
    /// A row with masks rasterised from the landmarks ([`masks::fill_contour`]), as
    /// CheXmask made its masks.
    pub fn from_landmarks(id: impl Into<String>, landmarks: Landmarks, width: u32, height: u32) -> Self {
        let filled = masks::organ_masks(&landmarks, width, height);
        ChexmaskRow {
            id: id.into(),
            landmarks: Some(landmarks),
            masks: filled.0.each_ref().map(|m| Some(Rle::from_mask(m))),
            width,
            height,
            size_given: true,
            extra: Vec::new(),
        }
    }

    pub fn rle(&self, organ: Organ) -> Option<&Rle> {
        self.masks[organ_index(organ)].as_ref()
    }

    /// The decoded RLE mask of one organ.
    pub fn mask(&self, organ: Organ) -> Option<Mask> {
        self.rle(organ).map(Rle::to_mask)
    }

    /// All three RLE masks decoded, when the row has all three.
    pub fn rle_masks(&self) -> Option<OrganMasks> {
        let [a, b, c] = self.masks.each_ref().map(|m| m.as_ref().map(Rle::to_mask));
        Some(OrganMasks([a?, b?, c?]))
    }

    /// The masks rasterised from this row's landmarks at the row's size.
    pub fn filled_masks(&self) -> Option<OrganMasks> {
        self.landmarks.as_ref().map(|l| masks::organ_masks(l, self.width, self.height))
    }

    pub fn has_all_masks(&self) -> bool {
        self.masks.iter().all(Option::is_some)
    }

    /// Value of another column by its header.
    pub fn extra(&self, column: &str) -> Option<&str> {
        self.extra.iter().find(|(k, _)| k == column).map(|(_, v)| v.as_str())
    }
}

/// A whole CheXmask CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct ChexmaskTable {
    /// The file it was read from (or will be written to); names it in errors.
    pub path: PathBuf,
    pub id_column: String,
    /// The header, in order; [`ChexmaskTable::write`] writes these columns.
    pub columns: Vec<String>,
    pub rows: Vec<ChexmaskRow>,
}

/// What a header column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Id,
    Landmarks,
    Mask(usize),
    Height,
    Width,
    Extra,
}

fn field_of(column: &str, id_column: &str) -> Field {
    match column {
        c if c == id_column => Field::Id,
        LANDMARKS_COLUMN => Field::Landmarks,
        HEIGHT_COLUMN => Field::Height,
        WIDTH_COLUMN => Field::Width,
        c => Organ::ALL.iter().position(|o| o.name() == c).map(Field::Mask).unwrap_or(Field::Extra),
    }
}

impl ChexmaskTable {
    /// An empty table that writes the standard columns, identifier first.
    pub fn new(path: impl Into<PathBuf>, id_column: impl Into<String>) -> Self {
        let id_column = id_column.into();
        let mut columns = vec![id_column.clone(), LANDMARKS_COLUMN.to_string()];
        columns.extend(Organ::ALL.iter().map(|o| o.name().to_string()));
        columns.extend([HEIGHT_COLUMN.to_string(), WIDTH_COLUMN.to_string()]);
        ChexmaskTable { path: path.into(), id_column, columns, rows: Vec::new() }
    }

    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let file = std::fs::File::open(path).map_err(|e| FormatError::file(path, format!("cannot open: {e}")))?;
        Self::from_reader(file, path)
    }

    /// Reads CSV from any reader; `path` names the source in errors.
    pub fn from_reader(reader: impl Read, path: &Path) -> Result<Self, FormatError> {
        let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| FormatError::file(path, format!("cannot read the header: {e}")))?
            .iter()
            .enumerate()
            .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h }.trim().to_string())
            .collect();
        let id_column = find_id_column(&header).ok_or_else(|| {
            FormatError::file(
                path,
                format!(
                    "no identifier column: expected one of {} but the header is {}",
                    ID_COLUMNS.join(", "),
                    header.join(", ")
                ),
            )
        })?;
        let fields: Vec<Field> = header.iter().map(|c| field_of(c, &id_column)).collect();
        if !fields.iter().any(|f| matches!(f, Field::Landmarks | Field::Mask(_))) {
            return Err(FormatError::file(
                path,
                format!(
                    "no {LANDMARKS_COLUMN} column and no mask columns (Right Lung, Left Lung, Heart); the header is {}",
                    header.join(", ")
                ),
            ));
        }
        let has_h = fields.contains(&Field::Height);
        let has_w = fields.contains(&Field::Width);
        if has_h != has_w {
            let (has, lacks) = if has_h { (HEIGHT_COLUMN, WIDTH_COLUMN) } else { (WIDTH_COLUMN, HEIGHT_COLUMN) };
            return Err(FormatError::file(path, format!("has a {has} column but no {lacks} column")));
        }

        let mut rows = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, record) in csv.records().enumerate() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
                FormatError::row(path, RowRef { row: i + 1, line, id: None }, csv_problem(&e))
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(i as u64 + 2);
            let mut at = RowRef { row: i + 1, line, id: None };
            let row =
                parse_row(&record, &header, &fields, &mut at).map_err(|p| FormatError::row(path, at.clone(), p))?;
            if let Some(first) = seen.insert(row.id.clone(), i + 1) {
                return Err(FormatError::row(path, at, format!("identifier also on row {first}")));
            }
            rows.push(row);
        }
        Ok(ChexmaskTable { path: path.to_path_buf(), id_column, columns: header, rows })
    }

    /// The row with this exact identifier.
    pub fn get(&self, id: &str) -> Option<&ChexmaskRow> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// Do all rows carry all three RLE masks?
    pub fn has_masks(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(ChexmaskRow::has_all_masks)
    }

    pub fn has_landmarks(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.landmarks.is_some())
    }

    /// Adds a row, adding a column for each of its extra fields the table lacks.
    pub fn push(&mut self, row: ChexmaskRow) {
        for (k, _) in &row.extra {
            if !self.columns.contains(k) {
                self.columns.push(k.clone());
            }
        }
        self.rows.push(row);
    }

    /// The CSV text: [`ChexmaskTable::columns`] in order, standard columns the header lacks
    /// appended when some row has that field.
    pub fn to_csv(&self) -> Result<Vec<u8>, FormatError> {
        let mut columns = self.columns.clone();
        let mut add = |name: &str, needed: bool| {
            if needed && !columns.iter().any(|c| c == name) {
                columns.push(name.to_string());
            }
        };
        add(LANDMARKS_COLUMN, self.rows.iter().any(|r| r.landmarks.is_some()));
        for o in Organ::ALL {
            add(o.name(), self.rows.iter().any(|r| r.rle(o).is_some()));
        }
        let sized = self.rows.iter().any(|r| r.size_given);
        add(HEIGHT_COLUMN, sized);
        add(WIDTH_COLUMN, sized);

        let fields: Vec<Field> = columns.iter().map(|c| field_of(c, &self.id_column)).collect();
        let mut w = csv::Writer::from_writer(Vec::new());
        let fail = |e: csv::Error| FormatError::file(&self.path, format!("cannot write CSV: {e}"));
        w.write_record(&columns).map_err(fail)?;
        for row in &self.rows {
            let cells = columns.iter().zip(&fields).map(|(name, field)| match field {
                Field::Id => row.id.clone(),
                Field::Landmarks => row.landmarks.as_ref().map(landmarks_text).unwrap_or_default(),
                Field::Mask(k) => row.masks[*k].as_ref().map(Rle::to_string).unwrap_or_default(),
                Field::Height => row.height.to_string(),
                Field::Width => row.width.to_string(),
                Field::Extra => row.extra(name).unwrap_or_default().to_string(),
            });
            w.write_record(cells).map_err(fail)?;
        }
        w.into_inner().map_err(|e| FormatError::file(&self.path, format!("cannot write CSV: {e}")))
    }

    /// Writes the table to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<(), FormatError> {
        write_atomically(path, &self.to_csv()?)
    }
}

/// "x1,y1,x2,y2,…" with whole numbers written without a fraction.
pub fn landmarks_text(l: &Landmarks) -> String {
    l.iter().flat_map(|p| [format_coordinate(p[0]), format_coordinate(p[1])]).collect::<Vec<_>>().join(",")
}

/// Parses "x1,y1,…" (240 numbers; spaces around values and enclosing brackets allowed).
pub fn parse_landmarks(text: &str) -> Result<Landmarks, String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let tokens: Vec<&str> = inner.split(',').map(str::trim).collect();
    if tokens.len() != 2 * NUM_NODES {
        return Err(format!("expected {} numbers ({NUM_NODES} points), found {}", 2 * NUM_NODES, tokens.len()));
    }
    let mut out = [[0.0f32; 2]; NUM_NODES];
    for (k, t) in tokens.iter().enumerate() {
        let v: f32 = t.parse().ok().filter(|v: &f32| v.is_finite()).ok_or_else(|| {
            format!("value {} ({t:?}, {} of node {}) is not a number", k + 1, if k % 2 == 0 { "x" } else { "y" }, k / 2)
        })?;
        out[k / 2][k % 2] = v;
    }
    Ok(out)
}

fn find_id_column(header: &[String]) -> Option<String> {
    ID_COLUMNS
        .iter()
        .find_map(|c| header.iter().find(|h| h == c))
        .or_else(|| ID_COLUMNS.iter().find_map(|c| header.iter().find(|h| h.eq_ignore_ascii_case(c))))
        .cloned()
}

fn csv_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("has {len} fields but the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_string(),
        _ => format!("malformed CSV: {e}"),
    }
}

/// A size cell: "1024", "1024.0", or empty (→ `None`).
fn parse_side(cell: &str, column: &str) -> Result<Option<u32>, String> {
    let t = cell.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let v: f64 = t.parse().map_err(|_| format!("{column} {t:?} is not a number"))?;
    if v.fract() != 0.0 || v < 1.0 || v > MAX_SIDE as f64 {
        return Err(format!("{column} {t:?} is not a whole number of pixels between 1 and {MAX_SIDE}"));
    }
    Ok(Some(v as u32))
}

fn parse_row(
    record: &csv::StringRecord,
    header: &[String],
    fields: &[Field],
    at: &mut RowRef,
) -> Result<ChexmaskRow, String> {
    let cell = |f: Field| fields.iter().position(|&g| g == f).map(|i| &record[i]);
    let id = cell(Field::Id).unwrap_or("").trim().to_string();
    if id.is_empty() {
        return Err("empty identifier".to_string());
    }
    at.id = Some(id.clone());

    let (h, w) = match (cell(Field::Height), cell(Field::Width)) {
        (Some(h), Some(w)) => (parse_side(h, HEIGHT_COLUMN)?, parse_side(w, WIDTH_COLUMN)?),
        _ => (None, None),
    };
    let size_given = h.is_some() && w.is_some();
    if h.is_some() != w.is_some() {
        return Err(format!("{HEIGHT_COLUMN} and {WIDTH_COLUMN} must both be given or both be empty"));
    }
    let (height, width) = (h.unwrap_or(DEFAULT_SIDE), w.unwrap_or(DEFAULT_SIDE));
    // Masks of this size get allocated when the row is scored: the image loaders' bound.
    if width as u64 * height as u64 > crate::xray::MAX_PIXELS {
        return Err(format!("{width}×{height} is larger than cxr-review scores ({} pixels at most)", crate::xray::MAX_PIXELS));
    }

    let landmarks = match cell(Field::Landmarks).map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(parse_landmarks(t).map_err(|e| format!("{LANDMARKS_COLUMN}: {e}"))?),
    };
    let mut masks: [Option<Rle>; 3] = [None, None, None];
    for (k, organ) in Organ::ALL.iter().enumerate() {
        if let Some(t) = cell(Field::Mask(k)).filter(|t| !t.trim().is_empty()) {
            let rle = Rle::parse(t, width, height).map_err(|e| format!("{}: {e}", organ.name()))?;
            masks[k] = Some(rle);
        }
    }
    let extra = header
        .iter()
        .zip(fields)
        .zip(record.iter())
        .filter(|((_, f), _)| **f == Field::Extra)
        .map(|((h, _), v)| (h.clone(), v.to_string()))
        .collect();
    Ok(ChexmaskRow { id, landmarks, masks, width, height, size_given, extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<ChexmaskTable, FormatError> {
        ChexmaskTable::from_reader(text.as_bytes(), Path::new("t.csv"))
    }

    fn lm_text(n: usize) -> String {
        (0..n).map(|i| (i % 50 + 10).to_string()).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn sizes_as_floats_empty_or_absent() {
        let l = lm_text(240);
        let t = read(&format!("ImageID,Landmarks,Height,Width\na,\"{l}\",512.0,256\nb,\"{l}\",,\n")).unwrap();
        assert_eq!((t.rows[0].height, t.rows[0].width, t.rows[0].size_given), (512, 256, true));
        assert_eq!((t.rows[1].height, t.rows[1].width, t.rows[1].size_given), (1024, 1024, false));
        let t = read(&format!("image,split,Landmarks\nJPCLN001,val,\"{l}\"\n")).unwrap();
        assert_eq!((t.id_column.as_str(), t.rows[0].height), ("image", 1024));
        assert_eq!(t.rows[0].extra("split"), Some("val"));
        let err = read(&format!("ImageID,Landmarks,Height,Width\na,\"{l}\",10.5,3\n")).unwrap_err().to_string();
        assert!(err.contains("row 1 (line 2, id a)") && err.contains("Height \"10.5\""), "{err}");
    }

    #[test]
    fn float_landmarks_and_brackets() {
        let mut l: Vec<String> = (0..240).map(|i| format!("{}.25", i)).collect();
        l[0] = "[ 1.5".into();
        l[239] = "7]".into();
        let p = parse_landmarks(&l.join(",")).unwrap();
        assert_eq!((p[0], p[119][1]), ([1.5, 1.25], 7.0));
        assert_eq!(landmarks_text(&[[431.0, 221.0]; 120]).split(',').next(), Some("431"));
    }

    #[test]
    fn written_tables_read_back_equal() {
        let mut l = [[0.0f32; 2]; 120];
        for (i, p) in l.iter_mut().enumerate() {
            *p = [10.0 + (i as f32 * 0.37).sin() * 5.0 + i as f32 * 0.5, 20.0 + i as f32 * 0.61];
        }
        let mut t = ChexmaskTable::new("out.csv", "image_id");
        let mut row = ChexmaskRow::from_landmarks("x/y.png", l, 90, 120);
        row.extra.push(("note".into(), "a, \"quoted\" value".into()));
        t.push(row);
        let back = ChexmaskTable::from_reader(&t.to_csv().unwrap()[..], Path::new("out.csv")).unwrap();
        assert_eq!(back, t);
        assert!(back.rows[0].rle_masks().unwrap().get(Organ::Heart).count() > 0);
    }
}
