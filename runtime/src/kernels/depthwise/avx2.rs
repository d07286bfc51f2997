//! x86-64 AVX2 int8 depthwise convolution, 16 channels per step (`qs8_dwconv_c16_avx2`).
//!
//! Per output pixel and block of 16 channels: for each tap inside the input, the 16 inputs and
//! weights are sign-extended to i16, the zero point subtracted, and multiplied with `vpmullw`
//! (`|(x - zp) * w| <= 255 * 128 < 2^15`, so the low 16 bits are the exact product), then
//! widened and added to two i32 accumulators. Taps in the padding are skipped, as in the scalar
//! kernel, and the requantization is [`requant8`]. Channels past the last multiple of 16 run the
//! scalar loop.

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{load_requant8, requant8, store_i8x16};
use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2; slices match the geometry (as validated at load).
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_dwconv_c16_avx2(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let c_all = g.in_c;
    let vec_c = c_all / 16 * 16;
    let zp = _mm256_set1_epi16(rq.input_zero_point as i16);
    for n in 0..g.batch {
        let xn = &x[n * g.in_h * g.in_w * c_all..][..g.in_h * g.in_w * c_all];
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                let mut c0 = 0;
                while c0 < vec_c {
                    // SAFETY: AVX2 is available; every 16-byte load below is from a slice
                    // bounds-checked to hold 16 elements.
                    unsafe {
                        let mut acc0 = _mm256_loadu_si256(rq.bias[c0..c0 + 8].as_ptr().cast());
                        let mut acc1 = _mm256_loadu_si256(rq.bias[c0 + 8..c0 + 16].as_ptr().cast());
                        for kh in 0..g.kernel_h {
                            let Some(ih) = g.in_row(oh, kh) else { continue };
                            for kw in 0..g.kernel_w {
                                let Some(iw) = g.in_col(ow, kw) else { continue };
                                let xs = &xn[(ih * g.in_w + iw) * c_all + c0..][..16];
                                let ws = &w[(kh * g.kernel_w + kw) * c_all + c0..][..16];
                                let xv =
                                    _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(xs.as_ptr().cast())), zp);
                                let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(ws.as_ptr().cast()));
                                let p = _mm256_mullo_epi16(xv, wv);
                                acc0 = _mm256_add_epi32(acc0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(p)));
                                acc1 = _mm256_add_epi32(acc1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(p, 1)));
                            }
                        }
                        let (k0, k1) = (load_requant8(rq, c0, 8), load_requant8(rq, c0 + 8, 8));
                        let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
                        store_i8x16(requant8(acc0, &k0, zo, lo, hi), requant8(acc1, &k1, zo, lo, hi), &mut yo[c0..]);
                    }
                    c0 += 16;
                }
                for c in vec_c..c_all {
                    let mut acc = rq.bias[c];
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            let xv = xn[(ih * g.in_w + iw) * c_all + c] as i32 - rq.input_zero_point;
                            acc = acc.wrapping_add(xv * w[(kh * g.kernel_w + kw) * c_all + c] as i32);
                        }
                    }
                    yo[c] = rq.apply(c, acc);
                }
            }
        }
    }
}
