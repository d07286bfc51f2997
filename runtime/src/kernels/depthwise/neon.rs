//! aarch64 NEON int8 depthwise convolution, 16 channels per step (`qs8_dwconv_c16_neon`).
//!
//! The loop of `qs8_dwconv_c16_avx2`: per output row and block of 16 channels the bias and
//! requantization constants are loaded once; per output pixel and valid tap, `x - zp` is formed
//! in i16 (`ssubl`), the weights widened (`sxtl`), and `smlal` accumulates the exact products
//! into four i32 vectors. Channels past the last multiple of 16 run the scalar loop.

use crate::kernels::arm::{load_requant4, narrow16, requant4};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::depthwise::tap_range;
use core::arch::aarch64::*;

/// # Safety
/// NEON is part of the aarch64 baseline; the slices must match the geometry (asserted).
#[target_feature(enable = "neon")]
pub unsafe fn qs8_dwconv_c16_neon(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    super::assert_lengths(g, x, w, rq, y);
    let vec_c = c_all / 16 * 16;
    let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
    for n in 0..g.batch {
        let xn = x[n * plane..].as_ptr();
        for oh in 0..g.out_h {
            let (kh0, kh1) = tap_range(oh, g.stride_h, g.dilation_h, g.pad_top, g.in_h, g.kernel_h);
            let yrow = ((n * g.out_h + oh) * g.out_w) * c_all;
            let mut c0 = 0;
            while c0 < vec_c {
                // SAFETY: as in the AVX2 kernel: tap ranges keep input reads inside the plane,
                // `c0 + 16 <= c_all`, and the per-channel slices hold `c_all` entries (asserted).
                unsafe {
                    let zp = vdup_n_s8(rq.input_zero_point as i8);
                    let bias: [int32x4_t; 4] = core::array::from_fn(|q| vld1q_s32(rq.bias.as_ptr().add(c0 + 4 * q)));
                    let k: [_; 4] = core::array::from_fn(|q| load_requant4(rq, c0 + 4 * q, 4));
                    for ow in 0..g.out_w {
                        let (kw0, kw1) = tap_range(ow, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.kernel_w);
                        let mut acc = bias;
                        for kh in kh0..kh1 {
                            let ih = oh * g.stride_h + kh * g.dilation_h - g.pad_top;
                            for kw in kw0..kw1 {
                                let iw = ow * g.stride_w + kw * g.dilation_w - g.pad_left;
                                let xv = vld1q_s8(xn.add((ih * g.in_w + iw) * c_all + c0));
                                let wv = vld1q_s8(w.as_ptr().add((kh * g.kernel_w + kw) * c_all + c0));
                                let (xl, xh) = (vsubl_s8(vget_low_s8(xv), zp), vsubl_s8(vget_high_s8(xv), zp));
                                let (wl, wh) = (vmovl_s8(vget_low_s8(wv)), vmovl_high_s8(wv));
                                acc[0] = vmlal_s16(acc[0], vget_low_s16(xl), vget_low_s16(wl));
                                acc[1] = vmlal_high_s16(acc[1], xl, wl);
                                acc[2] = vmlal_s16(acc[2], vget_low_s16(xh), vget_low_s16(wh));
                                acc[3] = vmlal_high_s16(acc[3], xh, wh);
                            }
                        }
                        let v: [int32x4_t; 4] = core::array::from_fn(|q| requant4(acc[q], &k[q], zo, lo, hi));
                        let out = &mut y[yrow + ow * c_all + c0..][..16];
                        vst1q_s8(out.as_mut_ptr(), narrow16(v[0], v[1], v[2], v[3]));
                    }
                }
                c0 += 16;
            }
            if vec_c < c_all {
                super::scalar::dw_channels(g, &x[n * plane..][..plane], w, rq, y, n, oh, vec_c..c_all);
            }
        }
    }
}
