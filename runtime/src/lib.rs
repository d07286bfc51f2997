//! sparq edge runtime: maps a `.sparq` file and runs it in a caller-owned arena.
//!
//! `#![no_std]` and allocation-free; the `std` feature (default) adds loading from a path by
//! mmap and aligned in-memory buffers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod session;
#[cfg(feature = "std")]
pub mod storage;

pub use error::RuntimeError;
pub use model::Model;
pub use session::{NoObserver, Observer, Session};
pub use sparq_format as format;
#[cfg(feature = "std")]
pub use storage::{AlignedBytes, MappedModel};
