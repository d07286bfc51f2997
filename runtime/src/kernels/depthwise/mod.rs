//! Depthwise convolution family (NHWC activations, weights `[kernel_h][kernel_w][channels]`).

#[cfg(sparq_arm_neon)]
pub mod armv7;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
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

/// The slice lengths a depthwise kernel reads and writes, checked once per call so that the SIMD
/// kernels can index without per-tap bounds checks (load validation guarantees them; this keeps
/// the kernels sound on their own).
pub fn assert_lengths(
    g: &crate::kernels::conv::ConvGeometry,
    x: &[i8],
    w: &[i8],
    rq: &crate::kernels::conv::Requant<'_>,
    y: &[i8],
) {
    let c = g.in_c;
    assert!(
        x.len() >= g.batch * g.in_h * g.in_w * c
            && w.len() >= g.kernel_h * g.kernel_w * c
            && y.len() >= g.batch * g.out_h * g.out_w * c
            && rq.bias.len() >= c
            && rq.mult.len() >= c
            && rq.shift.len() >= c
    );
}
