//! CheXmask CSVs, RLE, CheXmask-U tables and mask PNGs on the real files in shared/data,
//! plus broken input that must fail with the file, the row and the reason.

use crate::common;

use std::path::{Path, PathBuf};

use cxr_review::formats::chexmask::{ChexmaskRow, ChexmaskTable};
use cxr_review::formats::chexmask_u::{self, NodeTable};
use cxr_review::formats::export::{ExportItem, export_chexmask};
use cxr_review::formats::import::{Placement, landmarks_on_image, match_rows_to_images};
use cxr_review::formats::mask_png;
use cxr_review::formats::rle::Rle;
use cxr_review::landmarks::Organ;
use cxr_review::masks::fill_contour;
use cxr_review::metrics::dice;

fn chexmask(name: &str) -> PathBuf {
    common::shared_data().join("chexmask").join(format!("VinDr-CXR_{name}.csv"))
}

fn read(path: &Path) -> ChexmaskTable {
    ChexmaskTable::read(path).unwrap_or_else(|e| panic!("{e}"))
}

const FILES: [&str; 3] = ["prediction", "annotator1", "annotator2"];

#[test]
fn real_files_read_with_their_quirks() {
    let p = read(&chexmask("prediction"));
    assert_eq!((p.id_column.as_str(), p.rows.len()), ("image_id", 50));
    assert!(p.has_masks() && p.has_landmarks());
    assert!(p.rows.iter().all(|r| (r.width, r.height, r.size_given) == (1024, 1024, true)));
    assert_eq!(p.rows[0].extra("Dice RCA (Mean)"), Some("0.8476747254247645"));
    // The prediction file lists Left Lung before Right Lung; columns are found by name:
    // the right lung (patient's right) is on the image's left.
    let r0 = &p.rows[0];
    let centre_x = |o: Organ| {
        let m = r0.mask(o).unwrap();
        let w = m.width() as usize;
        m.as_slice().iter().enumerate().filter(|(_, v)| **v).map(|(i, _)| (i % w) as f64).sum::<f64>()
            / m.count() as f64
    };
    assert!(centre_x(Organ::RightLung) < 512.0 && centre_x(Organ::LeftLung) > 512.0);

    let a = read(&chexmask("annotator1"));
    assert_eq!((a.id_column.as_str(), a.rows.len()), ("ImageID", 50));
    assert!(a.rows.iter().all(|r| (r.width, r.height, r.size_given) == (1024, 1024, false)));
    assert_eq!(a.rows[0].extra("Dataset"), Some("VinDr-CXR"));
    // Rows come in another order than the prediction's; the same images are there.
    assert_ne!(a.rows[0].id, p.rows[0].id);
    assert!(p.rows.iter().all(|r| a.get(&r.id).is_some()));

    let j = read(&common::shared_data().join("jsrt").join("landmarks.csv"));
    assert_eq!((j.id_column.as_str(), j.rows.len()), ("image", 195));
    let first = &j.rows[0];
    assert_eq!((first.id.as_str(), first.extra("split")), ("JPCLN001", Some("val")));
    assert_eq!(first.landmarks.unwrap()[1], [357.62, 64.38]);
    assert!(first.masks.iter().all(Option::is_none));
}

#[test]
fn rle_round_trips_exactly_on_every_real_mask() {
    let mut masks = 0;
    for name in FILES {
        let path = chexmask(name);
        let mut r = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        for rec in r.records() {
            let rec = rec.unwrap();
            for organ in Organ::ALL {
                let text = &rec[header.iter().position(|h| h == organ.name()).unwrap()];
                let mask = Rle::parse(text, 1024, 1024).unwrap().to_mask();
                assert!(mask.count() > 1000);
                assert_eq!(Rle::from_mask(&mask).to_string(), text, "{name} {organ:?}");
                masks += 1;
            }
        }
    }
    assert_eq!(masks, 450);
}

#[test]
fn written_files_read_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    for name in FILES {
        let original = read(&chexmask(name));
        let out = dir.path().join(format!("{name}.csv"));
        original.write(&out).unwrap();
        let mut back = read(&out);
        back.path = original.path.clone();
        assert_eq!(back, original, "{name}");
    }
    // The prediction file has nothing our writer normalises: byte for byte the same.
    let original = std::fs::read(chexmask("prediction")).unwrap();
    assert_eq!(std::fs::read(dir.path().join("prediction.csv")).unwrap(), original);
}

/// The rasterisation convention of `masks::fill_contour`, against the released masks.
#[test]
fn masks_from_landmarks_match_the_released_masks() {
    let mut report = Vec::new();
    for name in FILES {
        let t = read(&chexmask(name));
        let (mut sum, mut n, mut identical) = (0.0, 0, 0);
        for row in &t.rows {
            let filled = row.filled_masks().unwrap();
            let released = row.rle_masks().unwrap();
            for o in Organ::ALL {
                let d = dice(filled.get(o), released.get(o));
                sum += d;
                n += 1;
                identical += (filled.get(o) == released.get(o)) as usize;
            }
        }
        report.push((name, sum / n as f64, identical));
    }
    println!("mean Dice (filled landmarks vs released RLE), identical masks of 150: {report:?}");
    // HybridGNet's own masks are exactly its filled landmarks.
    assert_eq!(report[0].2, 150, "{report:?}");
    assert_eq!(report[0].1, 1.0);
    // The physicians' masks hold a few pixels more than their landmark polygons
    // (measured: mean Dice 0.99979 and 0.99990, 34 and 97 identical of 150).
    assert!(report[1].1 > 0.9997 && report[2].1 > 0.9998, "{report:?}");
    assert!(report[1].2 >= 30 && report[2].2 >= 90, "{report:?}");
}

fn malformed(text: &str) -> String {
    ChexmaskTable::from_reader(text.as_bytes(), Path::new("broken.csv")).unwrap_err().to_string()
}

/// A real prediction row, re-serialised with one cell changed.
fn with_cell(column: &str, value: &str) -> String {
    let t = read(&chexmask("prediction"));
    let small = ChexmaskTable { rows: t.rows[..3].to_vec(), ..t };
    let bytes = small.to_csv().unwrap();
    let mut r = csv::Reader::from_reader(&bytes[..]);
    let header = r.headers().unwrap().clone();
    let k = header.iter().position(|h| h == column).unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).unwrap();
    for (i, rec) in r.records().enumerate() {
        let mut cells: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        if i == 1 {
            cells[k] = value.to_string();
        }
        w.write_record(&cells).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

#[test]
fn malformed_rows_name_the_row_and_the_problem() {
    let id = read(&chexmask("prediction")).rows[1].id.clone();
    let at = format!("broken.csv, row 2 (line 3, id {id}): ");
    let cases = [
        ("Heart", "1 2 3", "Heart: odd number of values (3)"),
        ("Heart", "5 10 12 3", "Heart: run 2 (start 12) overlaps or precedes the previous run, which ends at 14"),
        (
            "Right Lung",
            "1048570 10",
            "Right Lung: run 1 (start 1048570, length 10) goes past the end of the 1024×1024 mask",
        ),
        ("Left Lung", "100 2 x 3", "Left Lung: value 3 (\"x\") is not a whole non-negative number"),
        ("Left Lung", "0 4", "Left Lung: run 1 starts at 0"),
        ("Landmarks", "1,2,3", "Landmarks: expected 240 numbers (120 points), found 3"),
        ("Height", "abc", "Height \"abc\" is not a number"),
        ("Width", "", "Height and Width must both be given or both be empty"),
    ];
    for (column, value, want) in cases {
        let err = malformed(&with_cell(column, value));
        assert!(err.starts_with(&at) && err.contains(&want), "{column}={value:?}:\n{err}\nwanted {at}{want}");
    }
    let mut bad_landmark = vec!["10"; 240];
    bad_landmark[7] = "1e";
    let err = malformed(&with_cell("Landmarks", &bad_landmark.join(",")));
    assert!(err.contains("Landmarks: value 8 (\"1e\", y of node 3) is not a number"), "{err}");

    // Whole-file problems.
    assert!(malformed("name,Landmarks\na,1\n").contains("no identifier column: expected one of image_id, ImageID"));
    assert!(malformed("ImageID,Dataset\na,x\n").contains("no Landmarks column and no mask columns"));
    assert!(malformed("ImageID,Heart,Height\na,1 2,3\n").contains("has a Height column but no Width column"));
    let err = malformed("ImageID,Heart\na,1 2\nb,1 2,7\n");
    assert!(err.contains("broken.csv, row 2 (line 3): has 3 fields but the header has 2"), "{err}");
    let err = malformed("ImageID,Heart\na,1 2\na,3 4\n");
    assert!(err.contains("row 2 (line 3, id a): identifier also on row 1"), "{err}");
    assert!(malformed("ImageID,Heart\n ,1 2\n").contains("row 1 (line 2): empty identifier"));
    let err = ChexmaskTable::read(Path::new("/nonexistent/x.csv")).unwrap_err().to_string();
    assert!(err.starts_with("/nonexistent/x.csv: cannot open"), "{err}");
}

#[test]
fn rows_find_their_images_and_exports_read_back() {
    let jsrt = common::shared_data().join("jsrt");
    let table = read(&jsrt.join("landmarks.csv"));
    let mut images: Vec<PathBuf> = std::fs::read_dir(jsrt.join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    images.sort();
    images.push(PathBuf::from("/elsewhere/not_in_the_table.png"));
    let m = match_rows_to_images(&table, &images);
    assert_eq!(m.matched.len(), 195);
    assert!(m.unmatched_rows.is_empty() && m.ambiguous_rows.is_empty());
    assert_eq!(m.unmatched_images, vec![PathBuf::from("/elsewhere/not_in_the_table.png")]);
    for (row, path) in &m.matched {
        assert_eq!(path.file_stem().unwrap().to_str().unwrap(), table.rows[*row].id);
    }

    // JSRT images are 1024² like the rows: landmarks carry over unchanged. On the 2048²
    // originals they would double.
    let row = &table.rows[0];
    let (same, pl) = landmarks_on_image(row, 1024, 1024).unwrap();
    assert_eq!((same, pl), (row.landmarks.unwrap(), Placement::Same));
    let (double, _) = landmarks_on_image(row, 2048, 2048).unwrap();
    assert_eq!(double[5], [row.landmarks.unwrap()[5][0] * 2.0, row.landmarks.unwrap()[5][1] * 2.0]);

    // Export → read: same landmarks, masks rasterised from them, sizes written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.csv");
    let items: Vec<ExportItem> = table.rows[..5]
        .iter()
        .map(|r| ExportItem { id: format!("{}.png", r.id), landmarks: r.landmarks.unwrap(), width: 1024, height: 1024 })
        .collect();
    export_chexmask(&out, "Path", &items).unwrap();
    let back = read(&out);
    assert_eq!(back.id_column, "Path");
    for (item, r) in items.iter().zip(&back.rows) {
        assert_eq!((&r.id, r.landmarks.unwrap(), r.width, r.size_given), (&item.id, item.landmarks, 1024, true));
        let heart = fill_contour(&item.landmarks[Organ::Heart.nodes()], 1024, 1024);
        assert_eq!(r.mask(Organ::Heart).unwrap(), heart);
    }
    let twice = [items[0].clone(), items[0].clone()];
    assert!(export_chexmask(&out, "Path", &twice).unwrap_err().to_string().contains("exported twice"));
}

#[test]
fn mask_pngs_round_trip() {
    let t = read(&chexmask("annotator2"));
    let masks = t.rows[0].rle_masks().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = mask_png::write_organ_pngs(dir.path(), "img", &masks).unwrap();
    assert_eq!(written.len(), 4);
    assert_eq!(mask_png::read_mask_png(&dir.path().join("img_heart.png")).unwrap(), *masks.get(Organ::Heart));
    let labels = mask_png::read_label_png(&dir.path().join("img_labels.png")).unwrap();
    assert_eq!(labels, masks);
    // The heart overlaps the left lung in this row, which the bit-set labels keep.
    let both = (0..1024i64 * 1024)
        .filter(|i| {
            masks.get(Organ::Heart).get(i % 1024, i / 1024) && masks.get(Organ::LeftLung).get(i % 1024, i / 1024)
        })
        .count();
    assert!(both > 0);
    let grey = image::GrayImage::from_pixel(4, 4, image::Luma([9]));
    let bad = dir.path().join("bad.png");
    grey.save(&bad).unwrap();
    let err = mask_png::read_label_png(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.png") && err.contains("value 9"), "{err}");
}

#[test]
fn chexmask_u_folder() {
    let dir = tempfile::tempdir().unwrap();
    let t = read(&chexmask("prediction"));
    for row in &t.rows[..3] {
        let table = NodeTable { mean: row.landmarks.unwrap(), std: [[1.5, 0.5]; 120], expected_error: None };
        table.write(&dir.path().join(format!("{}.csv", row.id))).unwrap();
    }
    std::fs::write(dir.path().join("summary.csv"), "image,width,height\nwhatever.png,10,10\n").unwrap();
    let tables = chexmask_u::read_folder(dir.path()).unwrap();
    assert_eq!(tables.len(), 3);
    let first = &tables[&t.rows[0].id];
    assert_eq!((first.mean, first.score()), (t.rows[0].landmarks.unwrap(), 1.0));

    let (pred, _) = chexmask_u::read_prediction_folder(dir.path()).unwrap();
    assert_eq!(pred.rows.len(), 3);
    assert!(pred.rows.iter().all(|r| r.width == 1024 && !r.size_given && r.landmarks.is_some()));

    std::fs::write(dir.path().join("stray.csv"), "a,b\n1,2\n").unwrap();
    let err = chexmask_u::read_folder(dir.path()).unwrap_err().to_string();
    assert!(err.contains("stray.csv") && err.contains("no \"Node\" column"), "{err}");
}

#[test]
fn export_of_a_row_made_here_is_a_valid_chexmask_row() {
    let t = read(&chexmask("prediction"));
    let row = &t.rows[4];
    let made = ChexmaskRow::from_landmarks(row.id.clone(), row.landmarks.unwrap(), 1024, 1024);
    // Same landmarks, same convention: the very RLE strings HybridGNet's file holds.
    for o in Organ::ALL {
        assert_eq!(made.rle(o).unwrap().to_string(), row.rle(o).unwrap().to_string());
    }
}
