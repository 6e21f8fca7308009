//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared real-data folder: `$CXR_SHARED_DATA`, else `<crate>/../shared/data`.
/// Panics when it is missing, so tests that need real data fail loudly instead of
/// silently passing without it.
pub fn shared_data() -> PathBuf {
    let dir = match std::env::var_os("CXR_SHARED_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join("data"),
    };
    if !dir.is_dir() {
        panic!(
            "shared test data not found at {}: set CXR_SHARED_DATA to the folder holding dicom/, examples/, jsrt/",
            dir.display()
        );
    }
    dir
}

/// Patient attributes of [`patient_dicom`]: none may appear in any output unless asked for.
pub const PATIENT_SECRETS: [&str; 5] = ["DOE", "JANE", "PID-4711-XYZ", "19450317", "ACC-99887766"];
pub const PATIENT_SOP_UID: &str = "2.25.31415926535897932384626";

/// A small DX image carrying a patient name, ID, birth date and accession number.
pub fn patient_dicom(dir: &std::path::Path, name: &str) -> PathBuf {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let (rows, cols) = (96u16, 80u16);
    let pixels: Vec<u8> = (0..rows as u32 * cols as u32).map(|i| ((i % cols as u32) * 3 + (i / cols as u32)) as u8).collect();
    let text = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let obj = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION),
        text(tags::SOP_INSTANCE_UID, VR::UI, PATIENT_SOP_UID),
        text(tags::ACCESSION_NUMBER, VR::SH, "ACC-99887766"),
        text(tags::MODALITY, VR::CS, "DX"),
        text(tags::PATIENT_NAME, VR::PN, "DOE^JANE"),
        text(tags::PATIENT_ID, VR::LO, "PID-4711-XYZ"),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, "19450317"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, "2.25.1"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, "2.25.2"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, cols),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(pixels.into())),
    ]);
    let path = dir.join(name);
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap()
        .write_to_file(&path)
        .unwrap();
    path
}
