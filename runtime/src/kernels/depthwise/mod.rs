//! Depthwise convolution family (NHWC activations, weights `[kernel_h][kernel_w][channels]`).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;
