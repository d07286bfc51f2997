//! x86-64 int8 depthwise convolution with AVX-512 BW (no VNNI: Skylake-X class; also the
//! windows the AVX-512 VNNI kernel does not specialise), `qs8_dwconv_c32_avx512`: the AVX2
//! kernel's frame (`super::avx2::drive`) with blocks of 32 channels (`vpmullw` on zmm), then one
//! of 16, then the scalar tail.

use super::avx2::{drive, WideBlocks};
use super::tap_range;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{load_requant8, requant8, store_i8x16};
use core::arch::x86_64::*;

/// AVX-512 BW: blocks of 32 channels (`vpmullw` on zmm), then one of 16, then the scalar tail
/// (`qs8_dwconv_c32_avx512`).
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F and AVX-512 BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs8_dwconv_c32_avx512(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: this function's contract.
    unsafe { drive::<Zmm>(g, x, w, rq, y) }
}

/// 32-channel blocks.
struct Zmm;

impl WideBlocks for Zmm {
    const WIDTH: usize = 32;
    #[inline(always)]
    unsafe fn block(
        g: &ConvGeometry,
        xn: &[i8],
        w: &[i8],
        rq: &Requant<'_>,
        y: &mut [i8],
        n: usize,
        oh: usize,
        c0: usize,
    ) {
        // SAFETY: the trait's contract.
        unsafe { block32(g, xn, w, rq, y, n, oh, c0) }
    }
}

/// Channels `c0 .. c0 + 32`: as `super::avx2::block16` with zmm products, widened into four i32 vectors.
///
/// # Safety
/// AVX2 and AVX-512 F/BW; `c0 + 32 <= in_c`; slice lengths as asserted by `assert_lengths`.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn block32(
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
    // SAFETY: as in `super::avx2::block16`, with 32-byte reads and `c0 + 32 <= c_all`.
    unsafe {
        let zp = _mm512_set1_epi16(rq.input_zero_point as i16);
        let bias: [__m512i; 2] = core::array::from_fn(|h| _mm512_loadu_si512(rq.bias.as_ptr().add(c0 + 16 * h).cast()));
        let k: [_; 4] = core::array::from_fn(|q| load_requant8(rq, c0 + 8 * q, 8));
        for ow in 0..g.out_w {
            let (kw0, kw1) = tap_range(ow, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.kernel_w);
            let mut acc = bias;
            for kh in kh0..kh1 {
                let ih = oh * g.stride_h + kh * g.dilation_h - g.pad_top;
                for kw in kw0..kw1 {
                    let iw = ow * g.stride_w + kw * g.dilation_w - g.pad_left;
                    let xp = xn.as_ptr().add((ih * g.in_w + iw) * c_all + c0);
                    let wp = w.as_ptr().add((kh * g.kernel_w + kw) * c_all + c0);
                    let xv = _mm512_sub_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(xp.cast())), zp);
                    let wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(wp.cast()));
                    let p = _mm512_mullo_epi16(xv, wv);
                    acc[0] = _mm512_add_epi32(acc[0], _mm512_cvtepi16_epi32(_mm512_castsi512_si256(p)));
                    acc[1] = _mm512_add_epi32(acc[1], _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(p, 1)));
                }
            }
            let q: [__m256i; 4] = [
                _mm512_castsi512_si256(acc[0]),
                _mm512_extracti64x4_epi64(acc[0], 1),
                _mm512_castsi512_si256(acc[1]),
                _mm512_extracti64x4_epi64(acc[1], 1),
            ];
            let out = &mut y[yrow + ow * c_all + c0..];
            store_i8x16(requant8(q[0], &k[0], zo, lo, hi), requant8(q[1], &k[1], zo, lo, hi), out);
            store_i8x16(requant8(q[2], &k[2], zo, lo, hi), requant8(q[3], &k[3], zo, lo, hi), &mut out[16..]);
        }
    }
}
