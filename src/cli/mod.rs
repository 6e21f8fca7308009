//! Headless commands. Each submodule parses its own arguments and calls the library;
//! none of them holds logic the GUI would need.

pub mod bench;
pub mod calibrate;
pub mod eval;
pub mod export;
pub mod fuzz;
pub mod info;
pub mod infer;
pub mod merge;
pub mod train;
pub mod validate;
