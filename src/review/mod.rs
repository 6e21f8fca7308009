//! The review workflow without the GUI: the annotation file, crash-safe saving, the editing
//! state machine, the correction metrics the side panel shows, the order in which nodes are
//! visited, and a reviewed folder's evaluation.

pub mod annotation;
pub mod atomic;
pub mod correction;
pub mod edit;
pub mod folder;
pub mod store;
pub mod triage;

pub use annotation::{Annotation, AnnotationError, ModelIdentity, Status};
pub use edit::EditState;
