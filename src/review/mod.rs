//! The review workflow without the GUI: the annotation file, crash-safe saving, the editing
//! state machine and the correction metrics the side panel shows.

pub mod annotation;
pub mod atomic;
pub mod correction;
pub mod edit;

pub use annotation::{Annotation, AnnotationError, ModelIdentity, Status};
pub use edit::EditState;
