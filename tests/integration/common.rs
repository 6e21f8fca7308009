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
