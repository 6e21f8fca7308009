//! Organ masks as a DICOM Segmentation object (PS3.3 A.51, binary), one segment per organ
//! and one frame per segment, referencing the source radiograph's study, series and SOP
//! instance when it was a DICOM file; and reading such an object back.
//!
//! PACS viewers and research tools (3D Slicer, OHIF, highdicom) show SEG objects over the
//! image they reference. No patient attribute is copied unless asked for: the patient module's
//! attributes are present and empty (Type 2), and the study is found through its UID.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};
use std::path::Path;

use super::FormatError;
use crate::landmarks::Organ;
use crate::masks::{Mask, OrganMasks};
use crate::xray::dicom::text as text_of;
use crate::xray::{DicomUids, PatientInfo, PixelSpacing};

/// SNOMED CT codes of the segmented structures: (code, meaning) per organ.
fn property_code(organ: Organ) -> (&'static str, &'static str) {
    match organ {
        Organ::RightLung => ("3341006", "Right lung"),
        Organ::LeftLung => ("44029006", "Left lung"),
        Organ::Heart => ("80891009", "Heart"),
    }
}

/// What a SEG is made from besides the masks.
#[derive(Debug, Clone, Default)]
pub struct SegSource {
    /// The radiograph's UIDs, when it was a DICOM file.
    pub uids: Option<DicomUids>,
    pub spacing: Option<PixelSpacing>,
    /// Written only when the user asked for patient data.
    pub patient: Option<PatientInfo>,
    /// `true` when a reviewer checked the masks (SEMIAUTOMATIC), else AUTOMATIC.
    pub reviewed: bool,
    /// A stable seed for the new UIDs (the image's content hash): re-exporting the same
    /// review gives the same UIDs.
    pub uid_seed: String,
}

/// A UID under the 2.25 root (a UUID-derived decimal), from `parts`.
fn derived_uid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut v = u128::from_be_bytes(d[..16].try_into().expect("16 bytes"));
    // A valid UUID (version 4 bits) keeps 2.25 UIDs in their intended space.
    v = (v & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    format!("2.25.{v}")
}

fn text(tag: dicom_core::Tag, vr: VR, v: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

fn seq(tag: dicom_core::Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn code(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "SCT"),
        text(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// Frames packed one bit per pixel, least significant bit first, frames back to back.
fn pack(frames: &[&Mask]) -> Vec<u8> {
    let bits: usize = frames.iter().map(|m| m.as_slice().len()).sum();
    let mut out = vec![0u8; bits.div_ceil(8).next_multiple_of(2)];
    let mut i = 0;
    for m in frames {
        for &v in m.as_slice() {
            if v {
                out[i / 8] |= 1 << (i % 8);
            }
            i += 1;
        }
    }
    out
}

/// The SEG data set of `masks` (in [`Organ::ALL`] order).
pub fn seg_object(masks: &OrganMasks, source: &SegSource) -> InMemDicomObject {
    let (w, h) = (masks.width(), masks.height());
    let src = source.uids.as_ref();
    let seed = &source.uid_seed;
    let study = src.map(|u| u.study_instance.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| derived_uid(&["study", seed]));
    let series = derived_uid(&["seg series", seed]);
    let instance = derived_uid(&["seg instance", seed, &format!("{w}x{h}")]);
    let frame_of_reference = derived_uid(&["frame of reference", seed]);
    let algorithm = if source.reviewed { "SEMIAUTOMATIC" } else { "AUTOMATIC" };
    let now = crate::review::annotation::now_rfc3339();
    let (date, time) = (now[..10].replace('-', ""), now[11..19].replace(':', ""));
    let patient = source.patient.clone().unwrap_or_default();

    let mut obj = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::SEGMENTATION_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, &instance),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series),
        text(tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_reference),
        text(tags::MODALITY, VR::CS, "SEG"),
        text(tags::SERIES_NUMBER, VR::IS, "900"),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(tags::SERIES_DESCRIPTION, VR::LO, "cxr-review lungs and heart"),
        // Patient and study modules: Type 2, empty unless the user asked for patient data.
        text(tags::PATIENT_NAME, VR::PN, &patient.name),
        text(tags::PATIENT_ID, VR::LO, &patient.id),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, &patient.birth_date),
        text(tags::PATIENT_SEX, VR::CS, ""),
        text(tags::ACCESSION_NUMBER, VR::SH, &patient.accession),
        text(tags::STUDY_DATE, VR::DA, ""),
        text(tags::STUDY_TIME, VR::TM, ""),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        text(tags::STUDY_ID, VR::SH, ""),
        text(tags::MANUFACTURER, VR::LO, "cxr-review"),
        text(tags::MANUFACTURER_MODEL_NAME, VR::LO, "cxr-review"),
        text(tags::DEVICE_SERIAL_NUMBER, VR::LO, "1"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        text(tags::CONTENT_LABEL, VR::CS, "LUNGS_HEART"),
        text(tags::CONTENT_DESCRIPTION, VR::LO, "HybridGNet landmarks, filled contours"),
        text(tags::CONTENT_CREATOR_NAME, VR::PN, ""),
        text(tags::CONTENT_DATE, VR::DA, &date),
        text(tags::CONTENT_TIME, VR::TM, &time),
        text(tags::INSTANCE_CREATION_DATE, VR::DA, &date),
        text(tags::INSTANCE_CREATION_TIME, VR::TM, &time),
        text(tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, h as u16),
        us(tags::COLUMNS, w as u16),
        us(tags::BITS_ALLOCATED, 1),
        us(tags::BITS_STORED, 1),
        us(tags::HIGH_BIT, 0),
        us(tags::PIXEL_REPRESENTATION, 0),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        text(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        text(tags::NUMBER_OF_FRAMES, VR::IS, "3"),
    ]);
    let segments = Organ::ALL
        .iter()
        .enumerate()
        .map(|(k, &organ)| {
            let (value, meaning) = property_code(organ);
            InMemDicomObject::from_element_iter([
                us(tags::SEGMENT_NUMBER, k as u16 + 1),
                text(tags::SEGMENT_LABEL, VR::LO, organ.name()),
                text(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, algorithm),
                text(tags::SEGMENT_ALGORITHM_NAME, VR::LO, "HybridGNet"),
                seq(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code("91723000", "Anatomical Structure")]),
                seq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code(value, meaning)]),
            ])
        })
        .collect();
    obj.put(seq(tags::SEGMENT_SEQUENCE, segments));
    // One dimension: the segment each frame holds (frames are told apart by it alone).
    let dim = derived_uid(&["dimension organization", seed]);
    obj.put(seq(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![InMemDicomObject::from_element_iter([text(
        tags::DIMENSION_ORGANIZATION_UID,
        VR::UI,
        &dim,
    )])]));
    obj.put(seq(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            text(tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim),
            DataElement::new(tags::DIMENSION_INDEX_POINTER, VR::AT, dicom_value!(Tags, [tags::REFERENCED_SEGMENT_NUMBER])),
            DataElement::new(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, dicom_value!(Tags, [tags::SEGMENT_IDENTIFICATION_SEQUENCE])),
            text(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, "Segment Number"),
        ])],
    ));
    let mut shared = InMemDicomObject::new_empty();
    if let Some(s) = source.spacing {
        shared.put(seq(tags::PIXEL_MEASURES_SEQUENCE, vec![InMemDicomObject::from_element_iter([text(
            tags::PIXEL_SPACING,
            VR::DS,
            &format!("{}\\{}", s.row_mm, s.col_mm),
        )])]));
    }
    obj.put(seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));
    let source_ref = src.filter(|u| !u.sop_instance.is_empty()).map(|u| {
        InMemDicomObject::from_element_iter([
            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &u.sop_class),
            text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &u.sop_instance),
        ])
    });
    let frames = (0..3u16)
        .map(|k| {
            let mut item = InMemDicomObject::from_element_iter([
                seq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([us(tags::REFERENCED_SEGMENT_NUMBER, k + 1)])],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([DataElement::new(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        dicom_value!(U32, [k as u32 + 1]),
                    )])],
                ),
            ]);
            if let Some(r) = &source_ref {
                let mut source_image = r.clone();
                // Masks lie on the radiograph's own pixel grid.
                source_image.put(text(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"));
                source_image.put(seq(
                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([
                        text(tags::CODE_VALUE, VR::SH, "121322"),
                        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM"),
                        text(tags::CODE_MEANING, VR::LO, "Source image for image processing operation"),
                    ])],
                ));
                item.put(seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![InMemDicomObject::from_element_iter([seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image])])],
                ));
            }
            item
        })
        .collect();
    obj.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frames));
    if let (Some(u), Some(r)) = (src, &source_ref) {
        obj.put(seq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::SERIES_INSTANCE_UID, VR::UI, &u.series_instance),
                seq(tags::REFERENCED_INSTANCE_SEQUENCE, vec![r.clone()]),
            ])],
        ));
    }
    let organ_frames: Vec<&Mask> = masks.0.iter().collect();
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pack(&organ_frames).into())));
    obj
}

/// Write `masks` as a SEG file at `path` (explicit VR little endian, atomically).
pub fn write_seg(path: &Path, masks: &OrganMasks, source: &SegSource) -> Result<(), FormatError> {
    let err = |e: String| FormatError::file(path, e);
    if masks.width() > u16::MAX as u32 || masks.height() > u16::MAX as u32 {
        return Err(err("masks larger than DICOM's 65535 rows or columns".into()));
    }
    let file = seg_object(masks, source)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| err(format!("cannot build the file meta group: {e}")))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| err(format!("cannot encode: {e}")))?;
    super::write_atomically(path, &bytes)
}

/// A SEG read back: masks in [`Organ::ALL`] order and the image it references.
#[derive(Debug, Clone)]
pub struct ReadSeg {
    pub masks: OrganMasks,
    pub referenced_sop_instance: Option<String>,
    pub study_instance: String,
}

fn items(obj: &InMemDicomObject, tag: dicom_core::Tag) -> &[InMemDicomObject] {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.items()).unwrap_or(&[])
}

/// Read a binary SEG of lungs and heart (as written by [`write_seg`], or by other tools
/// that use the same SNOMED codes or segment labels).
pub fn read_seg(path: &Path) -> Result<ReadSeg, FormatError> {
    let err = |e: String| FormatError::file(path, e);
    let obj = dicom_object::open_file(path).map_err(|e| err(format!("cannot read DICOM: {e}")))?;
    if text_of(&obj, tags::SOP_CLASS_UID).as_deref() != Some(uids::SEGMENTATION_STORAGE) {
        return Err(err("not a DICOM Segmentation object".into()));
    }
    if text_of(&obj, tags::SEGMENTATION_TYPE).as_deref() != Some("BINARY") {
        return Err(err("only BINARY segmentations are read".into()));
    }
    let int = |tag, name: &str| -> Result<u32, FormatError> {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| err(format!("{name} missing or invalid")))
    };
    let (rows, cols, frames) = (int(tags::ROWS, "Rows")?, int(tags::COLUMNS, "Columns")?, int(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?);
    crate::xray::check_size(path, cols as u64, rows as u64, "SEG header").map_err(|e| err(e.reason))?;
    // Segment number → organ, by SNOMED code, else by label.
    let mut organ_of_segment = std::collections::BTreeMap::new();
    for s in items(&obj, tags::SEGMENT_SEQUENCE) {
        let number = s.element_opt(tags::SEGMENT_NUMBER).ok().flatten().and_then(|e| e.to_int::<u16>().ok());
        let code = items(s, tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE).first().and_then(|c| text_of(c, tags::CODE_VALUE));
        let label = text_of(s, tags::SEGMENT_LABEL).unwrap_or_default().to_ascii_lowercase();
        let organ = Organ::ALL
            .into_iter()
            .find(|&o| code.as_deref() == Some(property_code(o).0) || label == o.name().to_ascii_lowercase());
        if let (Some(n), Some(o)) = (number, organ) {
            organ_of_segment.insert(n, o);
        }
    }
    let per_frame = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.len() != frames as usize {
        return Err(err(format!("{frames} frames but {} per-frame groups", per_frame.len())));
    }
    let data = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| err("no pixel data".into()))?;
    let n = rows as usize * cols as usize;
    if data.len() * 8 < n * frames as usize {
        return Err(err(format!("pixel data holds {} bits, {} frames of {cols}×{rows} need {}", data.len() * 8, frames, n * frames as usize)));
    }
    let mut masks = [Mask::new(cols, rows), Mask::new(cols, rows), Mask::new(cols, rows)];
    let mut seen = [false; 3];
    for (f, group) in per_frame.iter().enumerate() {
        let segment = items(group, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .first()
            .and_then(|s| s.element_opt(tags::REFERENCED_SEGMENT_NUMBER).ok().flatten())
            .and_then(|e| e.to_int::<u16>().ok());
        let Some(organ) = segment.and_then(|s| organ_of_segment.get(&s)) else { continue };
        let k = organ.index();
        seen[k] = true;
        let out = masks[k].as_mut_slice();
        for (i, v) in out.iter_mut().enumerate() {
            let bit = f * n + i;
            *v |= data[bit / 8] >> (bit % 8) & 1 == 1;
        }
    }
    if let Some(k) = seen.iter().position(|s| !s) {
        return Err(err(format!("no frame holds the {} segment", Organ::ALL[k].name())));
    }
    let referenced_sop_instance = per_frame
        .first()
        .and_then(|g| items(g, tags::DERIVATION_IMAGE_SEQUENCE).first())
        .and_then(|d| items(d, tags::SOURCE_IMAGE_SEQUENCE).first())
        .and_then(|s| text_of(s, tags::REFERENCED_SOP_INSTANCE_UID));
    Ok(ReadSeg {
        masks: OrganMasks(masks),
        referenced_sop_instance,
        study_instance: text_of(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_least_significant_first_across_frames() {
        let a = Mask::from_fn(3, 3, |x, y| x == 0 && y == 0);
        let b = Mask::from_fn(3, 3, |x, y| x == 2 && y == 2);
        // Frame 1: bit 0; frame 2: bit 9 + 8 = 17.
        assert_eq!(pack(&[&a, &b]), vec![0b0000_0001, 0, 0b0000_0010, 0]);
    }

    #[test]
    fn derived_uids_are_stable_valid_and_distinct() {
        let u = derived_uid(&["a", "b"]);
        assert_eq!(u, derived_uid(&["a", "b"]));
        assert_ne!(u, derived_uid(&["ab"]));
        assert!(u.starts_with("2.25.") && u.len() <= 64 && u[5..].chars().all(|c| c.is_ascii_digit()), "{u}");
    }
}
