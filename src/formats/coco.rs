//! Landmarks as COCO keypoints (the JSON that labelling tools such as Label Studio, CVAT and
//! FiftyOne import): one category per organ whose keypoints are its contour nodes and whose
//! skeleton closes the ring, one annotation per organ per image with its keypoints, polygon,
//! box and filled area.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use super::FormatError;
use super::chexmask::Landmarks;
use crate::landmarks::{NUM_NODES, Organ};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoFile {
    pub info: CocoInfo,
    pub images: Vec<CocoImage>,
    pub categories: Vec<CocoCategory>,
    pub annotations: Vec<CocoAnnotation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoInfo {
    pub description: String,
    pub version: String,
    pub date_created: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    pub id: u64,
    pub name: String,
    pub supercategory: String,
    pub keypoints: Vec<String>,
    /// 1-based keypoint pairs (COCO's convention).
    pub skeleton: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    /// x, y, visibility (2: labelled and visible) per keypoint.
    pub keypoints: Vec<f32>,
    pub num_keypoints: usize,
    pub segmentation: Vec<Vec<f32>>,
    pub bbox: [f32; 4],
    pub area: f64,
    pub iscrowd: u8,
}

/// One image's landmarks to export.
pub struct CocoItem<'a> {
    pub file_name: &'a str,
    pub width: u32,
    pub height: u32,
    pub landmarks: &'a Landmarks,
}

fn category_name(organ: Organ) -> String {
    organ.name().to_ascii_lowercase()
}

/// The COCO document of `items`.
pub fn coco(items: &[CocoItem]) -> CocoFile {
    let categories = Organ::ALL
        .iter()
        .enumerate()
        .map(|(k, &o)| {
            let n = o.len();
            CocoCategory {
                id: k as u64 + 1,
                name: category_name(o),
                supercategory: "chest".into(),
                keypoints: (0..n).map(|i| format!("{} {}", category_name(o), i + 1)).collect(),
                skeleton: (0..n).map(|i| [i + 1, (i + 1) % n + 1]).collect(),
            }
        })
        .collect();
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let image_id = i as u64 + 1;
        images.push(CocoImage { id: image_id, file_name: item.file_name.into(), width: item.width, height: item.height });
        let masks = crate::masks::organ_masks(item.landmarks, item.width, item.height);
        for (k, &o) in Organ::ALL.iter().enumerate() {
            let pts = &item.landmarks[o.nodes()];
            let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
            for p in pts {
                (x0, y0, x1, y1) = (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1]));
            }
            annotations.push(CocoAnnotation {
                id: annotations.len() as u64 + 1,
                image_id,
                category_id: k as u64 + 1,
                keypoints: pts.iter().flat_map(|p| [p[0], p[1], 2.0]).collect(),
                num_keypoints: pts.len(),
                segmentation: vec![pts.iter().flat_map(|p| [p[0], p[1]]).collect()],
                bbox: [x0, y0, x1 - x0, y1 - y0],
                area: masks.get(o).count() as f64,
                iscrowd: 0,
            });
        }
    }
    let info = CocoInfo {
        description: "cxr-review reviewed lung and heart landmarks (HybridGNet 120-node graph)".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        date_created: crate::review::annotation::now_rfc3339(),
    };
    CocoFile { info, images, categories, annotations }
}

pub fn write(path: &Path, items: &[CocoItem]) -> Result<(), FormatError> {
    let json = serde_json::to_vec_pretty(&coco(items)).map_err(|e| FormatError::file(path, e.to_string()))?;
    super::write_atomically(path, &json)
}

/// Landmarks by file name from a COCO file with our three organ categories.
pub fn read(path: &Path) -> Result<BTreeMap<String, Landmarks>, FormatError> {
    let err = |e: String| FormatError::file(path, e);
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let doc: CocoFile = serde_json::from_slice(&bytes).map_err(|e| err(format!("not a COCO keypoints file: {e}")))?;
    let organ_of: BTreeMap<u64, Organ> = doc
        .categories
        .iter()
        .filter_map(|c| Some((c.id, Organ::ALL.into_iter().find(|&o| category_name(o) == c.name)?)))
        .collect();
    let names: BTreeMap<u64, &str> = doc.images.iter().map(|i| (i.id, i.file_name.as_str())).collect();
    let mut partial: BTreeMap<String, (Landmarks, [bool; 3])> = BTreeMap::new();
    for a in &doc.annotations {
        let (Some(&organ), Some(&name)) = (organ_of.get(&a.category_id), names.get(&a.image_id)) else { continue };
        if a.keypoints.len() != organ.len() * 3 {
            return Err(err(format!("annotation {}: {} keypoint values, expected {}", a.id, a.keypoints.len(), organ.len() * 3)));
        }
        let entry = partial.entry(name.to_string()).or_insert(([[0.0; 2]; NUM_NODES], [false; 3]));
        for (j, n) in organ.nodes().enumerate() {
            entry.0[n] = [a.keypoints[3 * j], a.keypoints[3 * j + 1]];
        }
        entry.1[organ.index()] = true;
    }
    partial
        .into_iter()
        .map(|(name, (l, seen))| {
            if seen.iter().all(|&s| s) {
                Ok((name, l))
            } else {
                Err(err(format!("{name}: not every organ is annotated")))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landmarks::template;

    #[test]
    fn categories_close_their_rings_and_landmarks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let l = template();
        let path = dir.path().join("c.json");
        write(&path, &[CocoItem { file_name: "a.png", width: 1024, height: 1024, landmarks: &l }]).unwrap();
        let doc: CocoFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc.categories[2].skeleton.last(), Some(&[26, 1]));
        assert_eq!(doc.annotations.len(), 3);
        assert!(doc.annotations.iter().all(|a| a.area > 1000.0));
        assert_eq!(read(&path).unwrap()["a.png"], l);
    }
}
