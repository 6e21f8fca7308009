//! DICOM loading (filled in shortly).

use super::{LoadError, XrayImage};
use std::path::Path;

pub fn has_preamble(bytes: &[u8]) -> bool {
    bytes.len() >= 132 && &bytes[128..132] == b"DICM"
}

pub fn looks_like_bare_dataset(_bytes: &[u8]) -> bool {
    false
}

pub fn load(path: &Path, _bytes: &[u8]) -> Result<XrayImage, LoadError> {
    Err(LoadError::new(path, "DICOM loading not implemented yet"))
}
