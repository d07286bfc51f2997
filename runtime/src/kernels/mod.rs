//! Compute kernels, one module per family. `scalar` kernels are the specification.

pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod fc;
pub mod pool;
pub mod registry;
pub mod softmax;
pub mod strided;
