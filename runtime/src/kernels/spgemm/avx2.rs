//! x86-64 block-sparse int8 kernels with AVX2 (the `avx2` and `avxvnni` paths), on 16x4 blocks.
//!
//! `qs8_spgemm_4x8c4_avx2` is the dense AVX2 kernel's scheme on stored blocks: im2col rows widened
//! to i16 with the zero point subtracted, each block's 8-channel half sign-extended, `vpmaddwd`
//! pairs folded at the end; `qs8_spfc_f32out_avx2` the same for a fully-connected layer with f32
//! output.

use super::{BlockSparse, KERNEL_BLOCK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::fc::F32Out;
use crate::kernels::gemm::MAX_SIMD_K;
use core::arch::x86_64::*;

/// Block-sparse GEMM-convolution with AVX2: 4 pixels x 8 channels (half a block-row) per tile.
///
/// # Safety
/// The CPU must support AVX2; `w.block == KERNEL_BLOCK`, `w.k <= MAX_SIMD_K`, `w` validated (as
/// at load) and the slices match the geometry.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_spgemm_4x8c4_avx2(g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    use crate::kernels::gemm::avx2::widen_rows;
    use crate::kernels::x86::requant_store8;
    const MR: usize = 4;
    debug_assert!(w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K && w.n == g.out_c);
    let n = g.out_c;
    let pixels = g.batch * g.out_h * g.out_w;
    let zp = rq.input_zero_point as i16;
    let (cols, values) = (w.cols(), w.values());
    let mut a = [[0i16; MAX_SIMD_K]; MR];
    let mut p0 = 0;
    while p0 < pixels {
        let rows = MR.min(pixels - p0);
        widen_rows(g, x, p0, rows, zp, &mut a);
        for rb in 0..w.block_rows() {
            for half in 0..2 {
                let c = rb * 16 + half * 8;
                if c >= n {
                    break;
                }
                let (mut lo, mut hi) = ([_mm256_setzero_si256(); MR], [_mm256_setzero_si256(); MR]);
                for b in w.blocks(rb) {
                    let kg = cols[b] as usize * 4;
                    // SAFETY: block `b` holds 64 bytes at `64 b`; `kg + 4` is at most `k` rounded up to 4, `<= MAX_SIMD_K`
                    // (stored columns are below `ceil(k / 4)`, validated).
                    unsafe {
                        let wv = _mm256_loadu_si256(values.as_ptr().add(b * 64 + half * 32).cast());
                        let wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
                        let wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1));
                        for r in 0..MR {
                            let av = _mm256_set1_epi64x(a[r].as_ptr().add(kg).cast::<i64>().read_unaligned());
                            lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(wl, av));
                            hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(wh, av));
                        }
                    }
                }
                // SAFETY: AVX2 is available (this function's contract).
                unsafe { requant_store8(&lo, &hi, rows, rq, c, 8.min(n - c), p0, n, y) };
            }
        }
        p0 += MR;
    }
}

/// [`qs8_spfc_f32out_avx512vnni`] with AVX2: the input row widened to i16 with the zero point
/// subtracted, each stored block's two 8-channel halves sign-extended and multiplied with
/// `vpmaddwd`, pairs folded at the end (as [`qs8_spgemm_4x8c4_avx2`]).
///
/// # Safety
/// The CPU must support AVX2; `w.block == KERNEL_BLOCK`, `w.k % 4 == 0`, `w.k <= MAX_SIMD_K`,
/// `w` validated (as at load) and the slices match `m x k -> m x n`.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_spfc_f32out_avx2(m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    use crate::kernels::x86::{madd_c8, store_f32out8};
    debug_assert!(w.block == KERNEL_BLOCK && w.k.is_multiple_of(4) && w.k <= MAX_SIMD_K);
    let (n, k) = (w.n, w.k);
    let (cols, values) = (w.cols(), w.values());
    let zp = out.input_zero_point as i16;
    let mut a = [0i16; MAX_SIMD_K];
    for row in 0..m {
        for (d, &v) in a.iter_mut().zip(&x[row * k..][..k]) {
            *d = v as i16 - zp;
        }
        for rb in 0..w.block_rows() {
            for half in 0..2 {
                let c = rb * 16 + half * 8;
                if c >= n {
                    break;
                }
                // SAFETY: AVX2 is available; block `b` holds 64 bytes at `64 b`, its column is
                // below `k / 4` (validated) so `kg + 4 <= k <= MAX_SIMD_K`; the output goes
                // through a bounds-checked slice.
                unsafe {
                    let mut acc = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for b in w.blocks(rb) {
                        let kg = cols[b] as usize * 4;
                        let wv = _mm256_loadu_si256(values.as_ptr().add(b * 64 + half * 32).cast());
                        let av = _mm256_set1_epi64x(a.as_ptr().add(kg).cast::<i64>().read_unaligned());
                        madd_c8(&mut acc, wv, av);
                    }
                    store_f32out8(acc.0, acc.1, out, c, 8.min(n - c), &mut y[row * n + c..]);
                }
            }
        }
    }
}
