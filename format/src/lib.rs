//! The `.sparq` model file format. `FORMAT.md` beside this crate is the normative specification;
//! `layout` holds its structs, `reader` the zero-copy, allocation-free validating reader (no_std),
//! and `writer` (feature `std`) the deterministic, atomic writer.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(not(target_endian = "little"))]
compile_error!("sparq-format reads little-endian files in place and supports little-endian hosts only");

pub mod crc32;
pub mod error;
pub mod layout;
pub mod reader;
pub mod sparse;
#[cfg(feature = "std")]
pub mod writer;

pub use error::FormatError;
pub use layout::{DType, Layout, Storage};
pub use reader::{FileView, OpInfo, ParseOptions, TensorInfo};
