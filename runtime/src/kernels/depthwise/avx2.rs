//! x86-64 int8 depthwise convolution, 16 channels per step with AVX2 (`qs8_dwconv_c16_avx2`),
//! and the frame `super::avx512::qs8_dwconv_c32_avx512` shares (generic over [`WideBlocks`]).
//!
//! For each output row and block of 16 channels, the bias and requantization constants are
//! loaded once; then for each output pixel and each tap inside the input (the valid tap ranges
//! are computed per row and column, so padding costs nothing), the 16 inputs and weights are
//! sign-extended to i16, the zero point subtracted, and multiplied with `vpmullw`
//! (`|(x - zp) * w| <= 255 * 128 < 2^15`, so the low 16 bits are the exact product), then
//! widened and added to two i32 accumulators. Taps in the padding are skipped, as in the scalar
//! kernel. Channels past the last multiple of 16 run the scalar loop.

use super::tap_range;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{load_requant8, requant8, store_i8x16};
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_dwconv_c16_avx2(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: this function's contract.
    unsafe { drive::<NoWideBlocks>(g, x, w, rq, y) }
}

/// Blocks of more than 16 channels that a wider kernel adds to [`drive`].
///
/// # Safety
/// `block` requires the implementing kernel's features; `c0 + WIDTH <= in_c` and the lengths
/// asserted by `assert_lengths`.
pub(super) trait WideBlocks {
    /// Channels per wide block (0: none).
    const WIDTH: usize;
    /// Channels `c0 .. c0 + WIDTH` of output row `oh` of batch item `n` (`xn`: its input plane).
    #[allow(clippy::too_many_arguments)]
    unsafe fn block(
        g: &ConvGeometry,
        xn: &[i8],
        w: &[i8],
        rq: &Requant<'_>,
        y: &mut [i8],
        n: usize,
        oh: usize,
        c0: usize,
    );
}

/// The AVX2 kernel: no blocks wider than 16 channels.
struct NoWideBlocks;

impl WideBlocks for NoWideBlocks {
    const WIDTH: usize = 0;
    #[inline(always)]
    unsafe fn block(_: &ConvGeometry, _: &[i8], _: &[i8], _: &Requant<'_>, _: &mut [i8], _: usize, _: usize, _: usize) {
    }
}

/// The loop over batch items, output rows and channel blocks: `B`'s wide blocks, then blocks of
/// 16, then the scalar tail.
///
/// # Safety
/// AVX2, and the features of `B`'s blocks.
#[inline(always)]
pub(super) unsafe fn drive<B: WideBlocks>(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    // Every access below stays inside these lengths (checked once here, not per tap).
    super::assert_lengths(g, x, w, rq, y);
    for n in 0..g.batch {
        for oh in 0..g.out_h {
            let mut c0 = 0;
            // SAFETY: the features are available (the caller's contract); `c0 + WIDTH <= c_all`
            // (resp. 16) and the lengths were asserted above.
            unsafe {
                while B::WIDTH > 0 && c0 + B::WIDTH <= c_all {
                    B::block(g, &x[n * plane..][..plane], w, rq, y, n, oh, c0);
                    c0 += B::WIDTH;
                }
                while c0 + 16 <= c_all {
                    block16(g, &x[n * plane..][..plane], w, rq, y, n, oh, c0);
                    c0 += 16;
                }
            }
            if c0 < c_all {
                super::scalar::dw_channels(g, &x[n * plane..][..plane], w, rq, y, n, oh, c0..c_all);
            }
        }
    }
}

/// Channels `c0 .. c0 + 16` of output row `oh` of batch item `n` (`xn`: its input plane).
///
/// # Safety
/// AVX2; `c0 + 16 <= in_c`; slice lengths as asserted by `assert_lengths`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn block16(
    g: &ConvGeometry,
    xn: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    n: usize,
    oh: usize,
    c0: usize,
) {
    let c_all = g.in_c;
    let (kh0, kh1) = tap_range(oh, g.stride_h, g.dilation_h, g.pad_top, g.in_h, g.kernel_h);
    let yrow = ((n * g.out_h + oh) * g.out_w) * c_all;
    let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
    // SAFETY: inputs: `ih < in_h`, `iw < in_w` by the tap ranges and `c0 + 16 <= c_all`, so every
    // 16-byte read is inside `xn`; weights: `(kh * kernel_w + kw) * c_all + c0 + 16 <= w.len()`;
    // the bias and requantization slices hold `c_all` entries.
    unsafe {
        let zp = _mm256_set1_epi16(rq.input_zero_point as i16);
        let bias0 = _mm256_loadu_si256(rq.bias.as_ptr().add(c0).cast());
        let bias1 = _mm256_loadu_si256(rq.bias.as_ptr().add(c0 + 8).cast());
        let (k0, k1) = (load_requant8(rq, c0, 8), load_requant8(rq, c0 + 8, 8));
        for ow in 0..g.out_w {
            let (kw0, kw1) = tap_range(ow, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.kernel_w);
            let (mut acc0, mut acc1) = (bias0, bias1);
            for kh in kh0..kh1 {
                let ih = oh * g.stride_h + kh * g.dilation_h - g.pad_top;
                for kw in kw0..kw1 {
                    let iw = ow * g.stride_w + kw * g.dilation_w - g.pad_left;
                    let xp = xn.as_ptr().add((ih * g.in_w + iw) * c_all + c0);
                    let wp = w.as_ptr().add((kh * g.kernel_w + kw) * c_all + c0);
                    let xv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(xp.cast())), zp);
                    let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.cast()));
                    let p = _mm256_mullo_epi16(xv, wv);
                    acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(p)));
                    acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(p, 1)));
                }
            }
            let out = &mut y[yrow + ow * c_all + c0..];
            store_i8x16(requant8(acc0, &k0, zo, lo, hi), requant8(acc1, &k1, zo, lo, hi), out);
        }
    }
}
