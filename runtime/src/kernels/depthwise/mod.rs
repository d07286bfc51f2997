//! Depthwise convolution family (NHWC activations, weights `[kernel_h][kernel_w][channels]`).

#[cfg(sparq_arm_neon)]
pub mod armv7;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

/// Valid tap range `[lo, hi)` of a window position: taps whose input index
/// `pos * stride + tap * dilation - pad` lies in `[0, size)`.
#[inline(always)]
pub fn tap_range(pos: usize, stride: usize, dilation: usize, pad: usize, size: usize, taps: usize) -> (usize, usize) {
    let start = pos * stride;
    let mut lo = 0;
    while lo < taps && start + lo * dilation < pad {
        lo += 1;
    }
    let mut hi = taps;
    while hi > lo && start + (hi - 1) * dilation >= pad + size {
        hi -= 1;
    }
    (lo, hi)
}
