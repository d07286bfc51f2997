//! x86-64 AVX2 int8 pooling kernels, bit-exact to the scalar ones in [`super`].

use super::{global_avg_requant, global_avg_tail, global_avg_tail16, max_pool_blocks, ConvGeometry, GlobalPool};
use crate::kernels::x86::{load_requant8, requant8, store_i8x8};
use core::arch::x86_64::*;

/// [`super::max_pool`] for int8, 32 channels per step.
///
/// # Safety
/// The CPU must support AVX2; the slices match the geometry (as validated at load).
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_max_pool_avx2(g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
    max_pool_blocks(g, x, y, 32, |yo, c, taps| {
        // SAFETY: AVX2 is available; `c + 32 <= in_c` for the input and output rows.
        unsafe {
            let mut m = _mm256_set1_epi8(i8::MIN);
            taps(&mut |xs| m = _mm256_max_epi8(m, _mm256_loadu_si256(xs[c..c + 32].as_ptr().cast())));
            _mm256_storeu_si256(yo[c..c + 32].as_mut_ptr().cast(), m);
        }
    });
}

/// [`super::qs8_global_avg_pool`], 32 channels per step: i32 sums of sign-extended bytes,
/// the zero point taken out once, then [`requant8`].
///
/// # Safety
/// The CPU must support AVX2; the slices match `p` (`batch x hw x channels` in, `batch x
/// channels` out).
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_global_avg_pool_avx2(p: &GlobalPool, x: &[i8], y: &mut [i8]) {
    let (hw, c_all) = (p.hw, p.channels);
    let vec = c_all / 32 * 32;
    let (m, s) = ([p.mult; 8], [p.shift; 8]);
    // SAFETY (whole body): AVX2 is available; every load reads 8 bytes at `c + 8 q`, `c + 32
    // <= c_all`, inside pixel `q`'s row; stores write 8 bytes of the output row.
    unsafe {
        let k = load_requant8(&global_avg_requant(p, &m, &s), 0, 8);
        let offset = _mm256_set1_epi32(hw as i32 * p.zp_in);
        for n in 0..p.batch {
            let xn = &x[n * hw * c_all..][..hw * c_all];
            let yn = &mut y[n * c_all..][..c_all];
            for c in (0..vec).step_by(32) {
                let mut acc = [_mm256_setzero_si256(); 4];
                for q in 0..hw {
                    let row = xn[q * c_all + c..][..32].as_ptr();
                    for (part, a) in acc.iter_mut().enumerate() {
                        let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(row.add(8 * part).cast()));
                        *a = _mm256_add_epi32(*a, v);
                    }
                }
                for (part, a) in acc.iter().enumerate() {
                    let v = requant8(_mm256_sub_epi32(*a, offset), &k, p.zp_out, -128, 127);
                    store_i8x8(v, &mut yn[c + 8 * part..], 8);
                }
            }
            global_avg_tail(p, xn, yn, vec);
        }
    }
}

/// [`super::qs16_global_avg_pool`] (format 1.6), 16 channels per step: each pixel's 16 int16
/// codes widened into two vectors of i32 sums (exact: at most 2^16 positions of +-2^15), each
/// requantized as [`requant8`] to the int16 range and packed back in channel order.
///
/// # Safety
/// The CPU must support AVX2; the slices match `p` (`batch x hw x channels` in, `batch x
/// channels` out).
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_global_avg_pool_avx2(p: &GlobalPool, x: &[i16], y: &mut [i16]) {
    let (hw, c_all) = (p.hw, p.channels);
    let vec = c_all / 16 * 16;
    let (m, s) = ([p.mult; 8], [p.shift; 8]);
    let (lo_b, hi_b) = (i16::MIN as i32, i16::MAX as i32);
    // SAFETY (whole body): AVX2 is available; every load reads 16 i16 at `c`, `c + 16 <= c_all`,
    // inside pixel `q`'s row; each store writes 16 i16 of the output row at `c`.
    unsafe {
        let k = load_requant8(&global_avg_requant(p, &m, &s), 0, 8);
        for n in 0..p.batch {
            let xn = &x[n * hw * c_all..][..hw * c_all];
            let yn = &mut y[n * c_all..][..c_all];
            for c in (0..vec).step_by(16) {
                let (mut a0, mut a1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                for q in 0..hw {
                    let v = _mm256_loadu_si256(xn[q * c_all + c..][..16].as_ptr().cast());
                    a0 = _mm256_add_epi32(a0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v)));
                    a1 = _mm256_add_epi32(a1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1)));
                }
                let r0 = requant8(a0, &k, p.zp_out, lo_b, hi_b);
                let r1 = requant8(a1, &k, p.zp_out, lo_b, hi_b);
                // `packs` interleaves 128-bit halves: channels 0-3, 8-11, 4-7, 12-15.
                let v = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0b11_01_10_00);
                _mm256_storeu_si256(yn[c..c + 16].as_mut_ptr().cast(), v);
            }
            global_avg_tail16(p, xn, yn, vec);
        }
    }
}
