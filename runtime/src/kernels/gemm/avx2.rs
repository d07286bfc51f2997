//! x86-64 AVX2 int8 GEMM-convolution, 4 pixels x 8 channels per tile, reduction in groups of 4
//! (`qs8_gemm_4x8c4_avx2`), on [`SIMD_PACK`] panels.
//!
//! The im2col rows of 4 output pixels are widened to i16 with the input zero point already
//! subtracted (`x - zp` is in [-255, 255]), so padding is 0 and no correction term is needed.
//! Per step of 4 along K: one 32-byte panel block (8 channels x 4) sign-extended to two i16
//! vectors, each pixel's 4 values broadcast, `vpmaddwd` into i32 pairs. `|(x - zp) * w| <=
//! 255 * 128`, so the pair sums are exact; a horizontal add at the end folds the pairs.

use super::{im2col_row, WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::fc::F32Out;
use crate::kernels::x86::{madd_c8, requant_store8, store_f32out8};
use core::arch::x86_64::*;

const MR: usize = 4;

/// # Safety
/// The CPU must support AVX2. `w` must be packed with [`SIMD_PACK`], `w.k <= MAX_SIMD_K`, and the
/// slices must match the geometry (as validated at load).
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_gemm_4x8c4_avx2(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let zp = rq.input_zero_point as i16;
    let mut a = [[0i16; MAX_SIMD_K]; MR];
    let mut p0 = 0;
    while p0 < pixels {
        let rows = MR.min(pixels - p0);
        widen_rows(g, x, p0, rows, zp, &mut a);
        for j in 0..n.div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let mut lo = [_mm256_setzero_si256(); MR];
            let mut hi = [_mm256_setzero_si256(); MR];
            for kg in 0..kp / 4 {
                // SAFETY: `kg * 32 + 32 <= 8 * kp = panel.len()`; `kg * 4 + 4 <= kp <= MAX_SIMD_K`.
                unsafe {
                    let wv = _mm256_loadu_si256(panel.as_ptr().add(kg * 32).cast());
                    let wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
                    let wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1));
                    for r in 0..MR {
                        let av = _mm256_set1_epi64x(a[r].as_ptr().add(kg * 4).cast::<i64>().read_unaligned());
                        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(wl, av));
                        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(wh, av));
                    }
                }
            }
            // SAFETY: AVX2 is available (this function's contract).
            unsafe { requant_store8(&lo, &hi, rows, rq, j * 8, 8.min(n - j * 8), p0, n, y) };
        }
        p0 += MR;
    }
}

/// The im2col rows of pixels `p0 .. p0 + rows` widened to i16 with the zero point `zp`
/// subtracted and zero-padded to a multiple of 4 (the `vpmaddwd` tiles' operand); a tail block
/// repeats the last pixel, whose extra results are not stored.
#[inline(always)]
pub(crate) fn widen_rows<const R: usize>(
    g: &ConvGeometry,
    x: &[i8],
    p0: usize,
    rows: usize,
    zp: i16,
    a: &mut [[i16; MAX_SIMD_K]; R],
) {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    for (r, row) in a.iter_mut().enumerate() {
        im2col_row(g, x, p0 + r.min(rows - 1), row, 0, |v| v as i16 - zp);
        row[k..k.div_ceil(4) * 4].fill(0);
    }
}

/// Fully-connected with f32 output straight from the accumulator (logits, see [`F32Out`]), the
/// specification being `fc::scalar::qs8_fc_f32out_scalar`. One row at a time, 8 channels per
/// panel, the same `vpmaddwd` inner product as [`qs8_gemm_4x8c4_avx2`].
///
/// # Safety
/// The CPU must support AVX2. `w` must be packed with [`SIMD_PACK`], `w.k <= MAX_SIMD_K`, and the
/// slices must match `m x k -> m x n` (as validated at load).
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_fc_f32out_1x8c4_avx2(m: usize, x: &[i8], w: &WeightMatrix<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    let (n, k) = (w.n, w.k);
    let kp = k.div_ceil(4) * 4;
    let zp = out.input_zero_point as i16;
    let mut a = [0i16; MAX_SIMD_K];
    for row in 0..m {
        for (d, &v) in a.iter_mut().zip(&x[row * k..][..k]) {
            *d = v as i16 - zp;
        }
        a[k..kp].fill(0);
        for j in 0..n.div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let cols = 8.min(n - j * 8);
            // SAFETY: AVX2 is available; `kg * 32 + 32 <= panel.len()`, `kg * 4 + 4 <= kp`.
            unsafe {
                let mut acc = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for kg in 0..kp / 4 {
                    let wv = _mm256_loadu_si256(panel.as_ptr().add(kg * 32).cast());
                    let av = _mm256_set1_epi64x(a.as_ptr().add(kg * 4).cast::<i64>().read_unaligned());
                    madd_c8(&mut acc, wv, av);
                }
                store_f32out8(acc.0, acc.1, out, j * 8, cols, &mut y[row * n + j * 8..]);
            }
        }
    }
}
