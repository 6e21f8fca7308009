//! DICOM files, read with dicom-object and decoded with dicom-pixeldata.
//!
//! Accepts Part 10 files (with or without the 128-byte preamble) and bare data sets
//! with no file meta group at all, which some archives still export (implicit or
//! explicit VR little endian, detected from the first elements). One single-frame
//! greyscale image per file; RGB is converted to grey. Pixel values are the stored
//! bits (masked, sign-extended when signed) after RescaleSlope/Intercept, so they are
//! in the units the file's own WindowCenter/Width refer to. MONOCHROME1 is kept as a
//! flag: inversion happens at display time, not here.

use super::dicom_lengths::LONG_VRS;
use super::{dicom_codestream, dicom_lengths};
use super::{DicomUids, ImageSource, LoadError, PatientInfo, Photometric, PixelSpacing, Window, XrayImage};
use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use std::path::Path;

/// Part 10 file with the 128-byte preamble followed by "DICM".
pub fn has_preamble(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

/// Does this look like a DICOM data set with no preamble and no "DICM" marker?
pub fn looks_like_bare_dataset(bytes: &[u8]) -> bool {
    bare_encoding(bytes).is_some()
}

/// How a data set without a file meta group is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareEncoding {
    /// Starts with file meta elements (group 0002) but lacks "DICM".
    MetaWithoutMagic,
    ImplicitLittle,
    ExplicitLittle,
}

const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
    b"ST", b"TM", b"UI", b"UL", b"US",
];

/// Recognise a bare data set by walking its first few element headers: tags must be
/// even-group, ascending, and every length must fit in the file. Raster formats fail
/// at once (PNG, JPEG and TIFF all start with an odd "group").
fn bare_encoding(bytes: &[u8]) -> Option<BareEncoding> {
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| bytes.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let first_group = u16_at(0)?;
    if first_group % 2 != 0 || first_group < 0x0002 || first_group > 0x7FE0 {
        return None;
    }
    if first_group == 0x0002 && walk(bytes, true, &u16_at, &u32_at) {
        return Some(BareEncoding::MetaWithoutMagic);
    }
    if walk(bytes, true, &u16_at, &u32_at) {
        Some(BareEncoding::ExplicitLittle)
    } else if walk(bytes, false, &u16_at, &u32_at) {
        Some(BareEncoding::ImplicitLittle)
    } else {
        None
    }
}

/// Check up to 4 consecutive element headers; true when they are consistent.
fn walk(
    bytes: &[u8],
    explicit: bool,
    u16_at: &dyn Fn(usize) -> Option<u16>,
    u32_at: &dyn Fn(usize) -> Option<u32>,
) -> bool {
    let mut pos = 0usize;
    let mut last: Option<(u16, u16)> = None;
    let mut seen = 0;
    while seen < 4 && pos < bytes.len() {
        let (Some(group), Some(elem)) = (u16_at(pos), u16_at(pos + 2)) else { return false };
        if last.is_some_and(|l| (group, elem) <= l) || group == 0 {
            return false;
        }
        // Only the first element is required to be a standard (even) group.
        if seen == 0 && group % 2 != 0 {
            return false;
        }
        last = Some((group, elem));
        let (len, header) = if explicit {
            let Some(vr) = bytes.get(pos + 4..pos + 6) else { return false };
            if LONG_VRS.iter().any(|v| &v[..] == vr) {
                let Some(len) = u32_at(pos + 8) else { return false };
                (len, 12)
            } else if SHORT_VRS.iter().any(|v| &v[..] == vr) {
                let Some(len) = u16_at(pos + 6) else { return false };
                (len as u32, 8)
            } else {
                return false;
            }
        } else {
            let Some(len) = u32_at(pos + 4) else { return false };
            (len, 8)
        };
        seen += 1;
        if len == u32::MAX {
            // Undefined length (a sequence): the headers so far were fine, stop here.
            return true;
        }
        let end = pos + header + len as usize;
        if len % 2 != 0 || end > bytes.len() {
            return false;
        }
        pos = end;
    }
    seen > 0
}

/// Decode a DICOM file held in `bytes`; `path` names it in errors and metadata.
pub fn load(path: &Path, bytes: &[u8]) -> Result<XrayImage, LoadError> {
    // Parsers and codecs are third-party code fed user data: a panic becomes an error.
    match std::panic::catch_unwind(|| load_inner(path, bytes)) {
        Ok(result) => result,
        Err(_) => Err(LoadError::new(path, "DICOM decoder crashed on this file (corrupt or unsupported data)")),
    }
}

fn load_inner(path: &Path, bytes: &[u8]) -> Result<XrayImage, LoadError> {
    let err = |reason: String| LoadError::new(path, reason);
    let mut obj = parse(bytes).map_err(err)?;

    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        let what = text(&obj, tags::SOP_CLASS_UID).map(|c| format!(" (SOP class {c})")).unwrap_or_default();
        return Err(err(format!("DICOM file holds no image: no PixelData{what}")));
    }
    let frames = match text(&obj, tags::NUMBER_OF_FRAMES) {
        Some(s) => s.parse::<u32>().map_err(|_| err(format!("invalid NumberOfFrames {s:?}")))?,
        None => 1,
    };
    if frames > 1 {
        return Err(err(format!("multi-frame DICOM ({frames} frames) is not supported: expected one radiograph")));
    }

    let rows = required_u16(&obj, tags::ROWS, "Rows").map_err(err)?;
    let cols = required_u16(&obj, tags::COLUMNS, "Columns").map_err(err)?;
    if rows == 0 || cols == 0 {
        return Err(err(format!("image has no pixels ({cols}×{rows})")));
    }
    super::check_size(path, cols as u64, rows as u64, "DICOM header")?;
    let samples = optional_u16(&obj, tags::SAMPLES_PER_PIXEL, "SamplesPerPixel").map_err(err)?.unwrap_or(1);

    let bits_allocated = required_u16(&obj, tags::BITS_ALLOCATED, "BitsAllocated").map_err(err)?;
    let bits_stored = optional_u16(&obj, tags::BITS_STORED, "BitsStored").map_err(err)?.unwrap_or(bits_allocated);
    let high_bit = optional_u16(&obj, tags::HIGH_BIT, "HighBit").map_err(err)?.unwrap_or(bits_stored.saturating_sub(1));
    let signed = optional_u16(&obj, tags::PIXEL_REPRESENTATION, "PixelRepresentation").map_err(err)?.unwrap_or(0) == 1;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(err(format!("BitsAllocated {bits_allocated} is not supported (8, 16 or 32)")));
    }
    if bits_stored == 0 || bits_stored > bits_allocated || high_bit >= bits_allocated || high_bit + 1 < bits_stored {
        return Err(err(format!(
            "inconsistent bit layout: BitsAllocated {bits_allocated}, BitsStored {bits_stored}, HighBit {high_bit}"
        )));
    }
    let pi = text(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let photometric = match (pi.as_str(), samples) {
        ("MONOCHROME1", 1) => Photometric::Monochrome1,
        ("MONOCHROME2", 1) | ("", 1) => Photometric::Monochrome2,
        ("RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_ICT" | "YBR_RCT" | "YBR_PARTIAL_420", 3) => Photometric::Monochrome2,
        _ => {
            return Err(err(format!(
                "not a greyscale radiograph: PhotometricInterpretation {pi:?} with {samples} samples per pixel"
            )));
        }
    };

    let slope = optional_f64(&obj, tags::RESCALE_SLOPE, "RescaleSlope").map_err(err)?.unwrap_or(1.0);
    let intercept = optional_f64(&obj, tags::RESCALE_INTERCEPT, "RescaleIntercept").map_err(err)?.unwrap_or(0.0);
    if slope == 0.0 {
        return Err(err("RescaleSlope is 0: every pixel would have the same value".into()));
    }
    let file_window = first_window(&obj);
    let spacing = spacing(&obj, tags::PIXEL_SPACING).or_else(|| spacing(&obj, tags::IMAGER_PIXEL_SPACING));
    let modality = text(&obj, tags::MODALITY).unwrap_or_else(|| "OT".into());
    let ts_uid = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_string();

    // We have read the rescale and VOI attributes ourselves, leniently; the decoder's
    // stricter cross-checks of them (e.g. WindowCenter and WindowWidth multiplicity)
    // must not stop an otherwise readable image from decoding.
    for tag in [
        tags::WINDOW_CENTER,
        tags::WINDOW_WIDTH,
        tags::VOILUT_FUNCTION,
        tags::VOILUT_SEQUENCE,
        tags::RESCALE_SLOPE,
        tags::RESCALE_INTERCEPT,
    ] {
        obj.remove_element(tag);
    }
    let ts_name = TransferSyntaxRegistry.get(&ts_uid).map(|t| t.name().to_string()).unwrap_or_else(|| ts_uid.clone());
    // The codestream's own size must be the header's before a codec sizes buffers from it.
    let first_fragment = obj.element_opt(tags::PIXEL_DATA).ok().flatten().and_then(|e| e.fragments()?.first().cloned());
    if let Some(fragment) = first_fragment {
        dicom_codestream::check(&ts_uid, &fragment, cols as u32, rows as u32)
            .map_err(|e| err(format!("cannot decode pixel data ({ts_name}): {e}")))?;
    }
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| err(format!("cannot decode pixel data ({ts_name}): {}", chain(&e))))?;
    let encapsulated = ts_is_encapsulated(&ts_uid);
    let layout = Layout {
        bytes_per_sample: bits_allocated as usize / 8,
        // Codecs return right-aligned samples; only native data may sit higher up.
        shift: if encapsulated { 0 } else { (high_bit + 1 - bits_stored) as u32 },
        bits_stored: bits_stored as u32,
        signed,
    };
    let n = rows as usize * cols as usize;
    let data = decoded.data();
    let needed = n * samples as usize * layout.bytes_per_sample;
    if data.len() < needed {
        return Err(err(format!("pixel data is truncated: {} bytes, {needed} needed for {cols}×{rows}", data.len())));
    }
    // Straight to f32 with the rescale applied: no f64 copy of a large image.
    let rescale = |v: f64| (v * slope + intercept) as f32;
    let pixels: Vec<f32> = if samples == 1 {
        (0..n).map(|i| rescale(layout.sample(data, i))).collect()
    } else {
        // Codecs return interleaved samples whatever the file says; only native data may be planar.
        let planar = !encapsulated
            && optional_u16(&obj, tags::PLANAR_CONFIGURATION, "PlanarConfiguration").ok().flatten() == Some(1);
        let at = |i: usize, c: usize| layout.sample(data, if planar { c * n + i } else { i * 3 + c });
        match decoded.photometric_interpretation().as_str() {
            "RGB" => (0..n).map(|i| rescale((0.299 * at(i, 0) + 0.587 * at(i, 1) + 0.114 * at(i, 2)).round())).collect(),
            // Native YBR_FULL: Y already is the luma.
            "YBR_FULL" => (0..n).map(|i| rescale(at(i, 0))).collect(),
            other => return Err(err(format!("colour layout {other} is not supported uncompressed"))),
        }
    };

    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut img = XrayImage::new(
        cols as u32,
        rows as u32,
        pixels,
        ImageSource { path: Some(path.to_path_buf()), label, modality, transfer_syntax: ts_uid, bits_stored },
    );
    img.photometric = photometric;
    img.spacing = spacing;
    img.file_window = file_window;
    let (uids, patient) = identity(&obj);
    img.uids = Some(uids);
    img.patient = Some(patient);
    Ok(img)
}

/// The UIDs and patient attributes of a DICOM file, without decoding its pixels (what an
/// export needs to reference the image). `None` when the file is not a readable DICOM.
pub fn read_identity(path: &Path) -> Option<(DicomUids, PatientInfo)> {
    let bytes = std::fs::read(path).ok()?;
    std::panic::catch_unwind(|| parse(&bytes).ok().map(|obj| identity(&obj))).ok().flatten()
}

fn identity(obj: &DefaultDicomObject) -> (DicomUids, PatientInfo) {
    let uids = DicomUids {
        sop_class: text(obj, tags::SOP_CLASS_UID).unwrap_or_default(),
        sop_instance: text(obj, tags::SOP_INSTANCE_UID).unwrap_or_default(),
        study_instance: text(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        series_instance: text(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
    };
    let patient = PatientInfo {
        name: text(obj, tags::PATIENT_NAME).unwrap_or_default(),
        id: text(obj, tags::PATIENT_ID).unwrap_or_default(),
        birth_date: text(obj, tags::PATIENT_BIRTH_DATE).unwrap_or_default(),
        accession: text(obj, tags::ACCESSION_NUMBER).unwrap_or_default(),
    };
    (uids, patient)
}

/// Parse a Part 10 file or a bare data set into an object with a file meta group.
fn parse(bytes: &[u8]) -> Result<DefaultDicomObject, String> {
    // Lengths first: the parser would allocate whatever a forged header claims.
    let lengths = if has_preamble(bytes) {
        dicom_lengths::check_file(bytes, 132)
    } else if bytes.starts_with(b"DICM") {
        dicom_lengths::check_file(bytes, 4)
    } else {
        match bare_encoding(bytes) {
            Some(BareEncoding::MetaWithoutMagic) => dicom_lengths::check_file(bytes, 0),
            Some(BareEncoding::ImplicitLittle) => dicom_lengths::check_dataset(bytes, 0, false),
            Some(BareEncoding::ExplicitLittle) => dicom_lengths::check_dataset(bytes, 0, true),
            None => Ok(()),
        }
    };
    lengths.map_err(|e| format!("cannot read DICOM file: {e}"))?;
    if has_preamble(bytes) {
        return OpenFileOptions::new()
            .read_preamble(ReadPreamble::Always)
            .from_reader(bytes)
            .map_err(|e| format!("cannot read DICOM file: {}", chain(&e)));
    }
    if bytes.starts_with(b"DICM") {
        return OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(bytes)
            .map_err(|e| format!("cannot read DICOM file: {}", chain(&e)));
    }
    let uid = match bare_encoding(bytes) {
        None => return Err("not a DICOM file: no \"DICM\" marker and no recognisable data set".into()),
        Some(BareEncoding::MetaWithoutMagic) => {
            // A file meta group without the marker: supply the marker, let the reader do the rest.
            let mut with_magic = Vec::with_capacity(bytes.len() + 4);
            with_magic.extend_from_slice(b"DICM");
            with_magic.extend_from_slice(bytes);
            return OpenFileOptions::new()
                .read_preamble(ReadPreamble::Never)
                .from_reader(&with_magic[..])
                .map_err(|e| format!("cannot read DICOM file: {}", chain(&e)));
        }
        Some(BareEncoding::ImplicitLittle) => uids::IMPLICIT_VR_LITTLE_ENDIAN,
        Some(BareEncoding::ExplicitLittle) => uids::EXPLICIT_VR_LITTLE_ENDIAN,
    };
    let ts = TransferSyntaxRegistry.get(uid).ok_or_else(|| format!("transfer syntax {uid} is not registered"))?;
    let dataset = InMemDicomObject::read_dataset_with_ts(bytes, ts)
        .map_err(|e| format!("cannot read DICOM data set (no file meta, {}): {}", ts.name(), chain(&e)))?;
    // The pixel decoder wants a file meta group; with_meta fills the SOP UIDs from
    // the data set when it has them. Secondary Capture is the neutral fallback.
    dataset
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uid)
                .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                .media_storage_sop_instance_uid("2.25.0"),
        )
        .map_err(|e| format!("cannot build file meta for bare data set: {}", chain(&e)))
}

fn ts_is_encapsulated(uid: &str) -> bool {
    TransferSyntaxRegistry.get(uid).is_some_and(|ts| ts.is_encapsulated_pixel_data())
}

/// Where the stored bits sit in each sample.
struct Layout {
    bytes_per_sample: usize,
    shift: u32,
    bits_stored: u32,
    signed: bool,
}

impl Layout {
    /// Sample `i`: stored bits only (unused high bits may hold overlays or garbage),
    /// sign-extended from BitsStored when the pixel representation is signed.
    /// Samples are little-endian: dicom-object and the codecs return native order.
    #[inline]
    fn sample(&self, data: &[u8], i: usize) -> f64 {
        let o = i * self.bytes_per_sample;
        let word = match self.bytes_per_sample {
            1 => data[o] as u32,
            2 => u16::from_le_bytes([data[o], data[o + 1]]) as u32,
            _ => u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]),
        };
        let mask = if self.bits_stored >= 32 { u32::MAX } else { (1u32 << self.bits_stored) - 1 };
        let v = (word >> self.shift) & mask;
        if self.signed && self.bits_stored < 32 && v & (1 << (self.bits_stored - 1)) != 0 {
            (v as i64 - (1i64 << self.bits_stored)) as f64
        } else if self.signed && self.bits_stored == 32 {
            v as i32 as f64
        } else {
            v as f64
        }
    }
}

/// An attribute as trimmed text, `None` when absent or empty.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn optional_u16(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<u16>, String> {
    match obj.element_opt(tag).ok().flatten() {
        None => Ok(None),
        Some(e) if e.value().multiplicity() == 0 => Ok(None),
        Some(e) => e.to_int::<u16>().map(Some).map_err(|_| format!("invalid {name}")),
    }
}

fn required_u16(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<u16, String> {
    optional_u16(obj, tag, name)?.ok_or_else(|| format!("image attribute {name} is missing"))
}

fn optional_f64(obj: &DefaultDicomObject, tag: Tag, name: &str) -> Result<Option<f64>, String> {
    match obj.element_opt(tag).ok().flatten() {
        None => Ok(None),
        Some(e) if e.value().multiplicity() == 0 => Ok(None),
        Some(e) => match e.to_float64() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(format!("invalid {name}")),
        },
    }
}

/// All values of a multi-valued decimal attribute, `None` when absent or unreadable.
fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

/// The file's first window. Several may be given (e.g. lung and bone); the first is
/// the one the modality proposes as default. An invalid width means no usable window.
fn first_window(obj: &DefaultDicomObject) -> Option<Window> {
    let center = *floats(obj, tags::WINDOW_CENTER)?.first()?;
    let width = *floats(obj, tags::WINDOW_WIDTH)?.first()?;
    (center.is_finite() && width.is_finite() && width > 0.0).then(|| Window { center, width }.sanitized())
}

/// Row and column spacing in mm from a two-valued attribute, if both are positive.
fn spacing(obj: &DefaultDicomObject, tag: Tag) -> Option<PixelSpacing> {
    match floats(obj, tag)?.as_slice() {
        [row, col, ..] if *row > 0.0 && *col > 0.0 && row.is_finite() && col.is_finite() => {
            Some(PixelSpacing { row_mm: *row, col_mm: *col })
        }
        _ => None,
    }
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bits_are_masked_and_sign_extended() {
        let l = Layout { bytes_per_sample: 2, shift: 0, bits_stored: 12, signed: false };
        // 0xF123: garbage in the top nibble, 0x123 stored.
        assert_eq!(l.sample(&0xF123u16.to_le_bytes(), 0), 0x123 as f64);
        let s = Layout { signed: true, ..l };
        assert_eq!(s.sample(&0x0FFFu16.to_le_bytes(), 0), -1.0);
        assert_eq!(s.sample(&0xA800u16.to_le_bytes(), 0), -2048.0);
        assert_eq!(s.sample(&0x07FFu16.to_le_bytes(), 0), 2047.0);
        let high = Layout { bytes_per_sample: 2, shift: 4, bits_stored: 12, signed: false };
        assert_eq!(high.sample(&0xABC5u16.to_le_bytes(), 0), 0xABC as f64);
        let full = Layout { bytes_per_sample: 2, shift: 0, bits_stored: 16, signed: true };
        assert_eq!(full.sample(&(-300i16).to_le_bytes(), 0), -300.0);
    }

    #[test]
    fn raster_signatures_are_not_bare_datasets() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let jpeg = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
        let tiff_le = b"II*\0\x08\0\0\0\0\0\0\0";
        let tiff_be = b"MM\0*\0\0\0\x08\0\0\0\0";
        for b in [&png[..], &jpeg[..], &tiff_le[..], &tiff_be[..]] {
            assert!(!looks_like_bare_dataset(b), "{b:?}");
        }
    }

    #[test]
    fn bare_dataset_encodings_are_told_apart() {
        // (0008,0016) UI "1.2" then (0028,0010) US 4.
        let explicit = [&[0x08, 0, 0x16, 0][..], b"UI", &[4, 0], b"1.2\0", &[0x28, 0, 0x10, 0], b"US", &[2, 0, 4, 0]].concat();
        assert_eq!(bare_encoding(&explicit), Some(BareEncoding::ExplicitLittle));
        let implicit = [&[0x08, 0, 0x16, 0, 4, 0, 0, 0][..], b"1.2\0", &[0x28, 0, 0x10, 0, 2, 0, 0, 0, 4, 0]].concat();
        assert_eq!(bare_encoding(&implicit), Some(BareEncoding::ImplicitLittle));
        // Descending tags are not a data set.
        let bad = [&[0x28, 0, 0x10, 0, 2, 0, 0, 0, 4, 0][..], &[0x08, 0, 0x16, 0, 4, 0, 0, 0], b"1.2\0"].concat();
        assert_eq!(bare_encoding(&bad), None);
        // A length running past the end is not either.
        assert_eq!(bare_encoding(&[0x08, 0, 0x16, 0, 0x40, 0, 0, 0, 1, 2]), None);
    }
}
