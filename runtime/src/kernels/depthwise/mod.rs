//! Depthwise convolution family (NHWC activations, weights `[kernel_h][kernel_w][channels]`).

pub mod scalar;
