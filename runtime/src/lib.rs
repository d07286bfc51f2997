//! sparq edge runtime: maps a `.sparq` file and runs it in a caller-owned arena.
//!
//! `#![no_std]` and allocation-free; the `std` feature (default) adds loading from a path by
//! mmap and aligned in-memory buffers.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod cpu;
pub mod error;
pub mod kernels;
pub mod model;
pub mod ops;
#[cfg(feature = "std")]
pub mod pool;
pub mod quant;
pub mod session;
#[cfg(feature = "std")]
pub mod storage;
pub mod tensor;

pub use cpu::Features;
pub use error::RuntimeError;

/// A value aligned to 64 bytes, for embedding model bytes (see [`include_model!`]).
#[repr(C, align(64))]
pub struct Aligned64<T: ?Sized>(pub T);

/// Embed a `.sparq` file in the binary, 64-byte aligned (as `include_bytes!`, whose data has
/// no alignment guarantee): `static MODEL: &[u8] = sparq_runtime::include_model!("m.sparq");`
/// then `Model::from_bytes(MODEL)`. Works without std.
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::Aligned64<[u8]> = &$crate::Aligned64(*include_bytes!($path));
        &ALIGNED.0
    }};
}
pub use model::{Model, DEFAULT_MAX_ARENA};
pub use session::{NoObserver, Observer, Session, SessionOptions};
pub use sparq_format as format;
#[cfg(feature = "std")]
pub use storage::{AlignedBytes, MappedModel};

#[cfg(test)]
mod tests {
    #[test]
    fn include_model_is_aligned() {
        let bytes: &[u8] = crate::include_model!("../../tests/golden/residual_int8.sparq");
        assert_eq!(bytes.as_ptr() as usize % 64, 0);
        let model = crate::Model::from_bytes(bytes).unwrap();
        assert!(model.op_count() > 0);
    }
}
