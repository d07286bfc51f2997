//! Compute kernels, one module per family. `scalar` kernels are the specification.

#[cfg(target_arch = "aarch64")]
pub mod arm;
pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod fc;
pub mod gemm;
pub mod lut;
pub mod pool;
pub mod qs16;
pub mod registry;
pub mod softmax;
pub mod spgemm;
pub mod strided;
pub mod unary;
#[cfg(target_arch = "x86_64")]
pub mod x86;
