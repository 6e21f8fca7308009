//! Where an image's review lives on disk, and the rules that keep every saved review safe.
//!
//! - The review of `chest.dcm` is `chest.dcm.cxr.json`. When that file cannot be used
//!   (corrupt, truncated, or made for other pixels) it is kept exactly as it is and the
//!   review goes to the next free `chest.dcm.cxr-2.json`, `-3`, …; the reviewer is told.
//! - Compare before write: a slot remembers the hash of what it last read or wrote. If the
//!   file changed since (a second cxr-review on the same folder, a sync tool), the save
//!   goes to the next free name instead of replacing the other program's work.
//! - A failed write (disk full, read-only folder) is reported and leaves the review in
//!   memory, unsaved, so it can be saved again or elsewhere ([`Slot::move_to`]).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use super::annotation::{self, Annotation, AnnotationError};
use crate::xray::XrayImage;

/// Alternate names tried after the primary one.
const MAX_ALTERNATES: usize = 99;

/// The primary annotation path of `image`, then its alternates, in order.
pub fn candidates(image: &Path) -> Vec<PathBuf> {
    let primary = annotation::path_for(image, None);
    let name = image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    std::iter::once(primary)
        .chain((2..=MAX_ALTERNATES + 1).map(|k| image.with_file_name(format!("{name}.cxr-{k}.json"))))
        .collect()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A file a review is saved to, and what it held when this program last read or wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub path: PathBuf,
    /// `None`: the file did not exist.
    stamp: Option<[u8; 32]>,
    /// The image whose alternates a conflict may move to (`None` after "save as").
    image: Option<PathBuf>,
}

/// What opening an image's review found.
#[derive(Debug)]
pub struct Opened {
    pub annotation: Option<Annotation>,
    pub slot: Slot,
    /// What the reviewer must be told: files that were skipped and kept.
    pub notices: Vec<String>,
}

/// Find the review of `image` (read from `image_path`, content hash `sha256`): the first
/// candidate file that is a valid annotation of these pixels. Files that are not are left
/// untouched and named in the notices; a new review goes to the first free name.
pub fn open(image_path: &Path, sha256: &str, image: &XrayImage) -> Opened {
    let mut notices = Vec::new();
    let mut first_free = None;
    for path in candidates(image_path) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                first_free.get_or_insert(path);
                continue;
            }
            Err(e) => {
                notices.push(format!("{}: cannot read ({e}); it is left as it is", path.display()));
                continue;
            }
        };
        match Annotation::parse(&bytes, &path).and_then(|a| a.check_image(&path, image_path, sha256, image).map(|()| a)) {
            Ok(a) => {
                let slot = Slot { path, stamp: Some(digest(&bytes)), image: Some(image_path.to_path_buf()) };
                return Opened { annotation: Some(a), slot, notices };
            }
            Err(e) => {
                let what = match e {
                    AnnotationError::WrongImage { .. } => "",
                    _ => " (corrupt or truncated)",
                };
                notices.push(format!("{e}{what}; it is kept untouched"));
            }
        }
    }
    let path = first_free.unwrap_or_else(|| annotation::path_for(image_path, None));
    if !notices.is_empty() {
        notices.push(format!("this review is saved to {}", path.display()));
    }
    Opened { annotation: None, slot: Slot { path, stamp: None, image: Some(image_path.to_path_buf()) }, notices }
}

/// The first candidate of `image` that is a readable annotation (no pixel check): what the
/// worklist and the folder metrics show.
pub fn find_readable(image: &Path) -> Option<(PathBuf, Annotation)> {
    candidates(image).into_iter().filter(|p| p.exists()).find_map(|p| Annotation::read(&p).ok().map(|a| (p, a)))
}

impl Slot {
    /// A slot for a file this program is about to create or replace at the user's request.
    pub fn at(path: PathBuf) -> Slot {
        let stamp = std::fs::read(&path).ok().map(|b| digest(&b));
        Slot { path, stamp, image: None }
    }

    /// Save `a` (stamping its modification time). `Ok(Some(note))` when the file had been
    /// changed by someone else and the review went to another name; `Err` when nothing
    /// could be written (the review then only exists in memory).
    pub fn save(&mut self, a: &mut Annotation) -> Result<Option<String>, String> {
        let mut note = None;
        if self.changed_on_disk() {
            let Some(free) = self.image.as_deref().and_then(|img| candidates(img).into_iter().find(|p| !p.exists())) else {
                return Err(format!(
                    "{} was changed by another program since it was opened; not overwritten (save the review elsewhere)",
                    self.path.display()
                ));
            };
            note = Some(format!(
                "{} was changed by another program (a second cxr-review?) since it was opened; it is kept, and this review is saved to {}",
                self.path.display(),
                free.display()
            ));
            self.path = free;
            self.stamp = None;
        }
        a.modified = annotation::now_rfc3339();
        let bytes = a.to_json();
        super::atomic::write_atomic(&self.path, &bytes).map_err(|e| format!("cannot save {}: {e}", self.path.display()))?;
        self.stamp = Some(digest(&bytes));
        Ok(note)
    }

    /// Save here from now on (the user chose another place).
    pub fn move_to(&mut self, path: PathBuf) {
        *self = Slot::at(path);
    }

    /// Does the file differ from what this program last read or wrote?
    fn changed_on_disk(&self) -> bool {
        match std::fs::read(&self.path) {
            Ok(b) => self.stamp != Some(digest(&b)),
            // Gone (or unreadable, which the write will report): nothing to clobber.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_follow_the_primary_name() {
        let c = candidates(Path::new("/d/chest.dcm"));
        assert_eq!(c[0], PathBuf::from("/d/chest.dcm.cxr.json"));
        assert_eq!(c[1], PathBuf::from("/d/chest.dcm.cxr-2.json"));
        assert_eq!(c.len(), MAX_ALTERNATES + 1);
    }
}
