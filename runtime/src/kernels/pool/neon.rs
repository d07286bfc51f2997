//! aarch64 NEON int8 pooling kernels (the forms of `super::avx2`'s, 16 channels per step), bit-exact to
//! the scalar ones in [`super`].

use super::{global_avg_requant, global_avg_tail, global_avg_tail16, max_pool_blocks, ConvGeometry, GlobalPool};
use crate::kernels::arm::{load_requant4, requant4, store_i8x8};
use core::arch::aarch64::*;

/// [`super::max_pool`] for int8, 16 channels per step.
///
/// # Safety
/// The slices match the geometry (as validated at load).
#[target_feature(enable = "neon")]
pub unsafe fn qs8_max_pool_neon(g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
    max_pool_blocks(g, x, y, 16, |yo, c, taps| {
        // SAFETY: `c + 16 <= in_c` for the input and output rows.
        unsafe {
            let mut m = vdupq_n_s8(i8::MIN);
            taps(&mut |xs| m = vmaxq_s8(m, vld1q_s8(xs[c..c + 16].as_ptr())));
            vst1q_s8(yo[c..c + 16].as_mut_ptr(), m);
        }
    });
}

/// [`super::qs8_global_avg_pool`], 16 channels per step (`saddw` into i32 lanes).
///
/// # Safety
/// The slices match `p` (`batch x hw x channels` in, `batch x channels` out).
#[target_feature(enable = "neon")]
pub unsafe fn qs8_global_avg_pool_neon(p: &GlobalPool, x: &[i8], y: &mut [i8]) {
    let (hw, c_all) = (p.hw, p.channels);
    let vec = c_all / 16 * 16;
    let (m, s) = ([p.mult; 4], [p.shift; 4]);
    // SAFETY (whole body): every load reads 16 bytes at `c`, `c + 16 <= c_all`, inside pixel
    // `q`'s row; stores write 8 bytes of the output row twice.
    unsafe {
        let k = load_requant4(&global_avg_requant(p, &m, &s), 0, 4);
        let offset = vdupq_n_s32(hw as i32 * p.zp_in);
        for n in 0..p.batch {
            let xn = &x[n * hw * c_all..][..hw * c_all];
            let yn = &mut y[n * c_all..][..c_all];
            for c in (0..vec).step_by(16) {
                let mut acc = [vdupq_n_s32(0); 4];
                for q in 0..hw {
                    let v = vld1q_s8(xn[q * c_all + c..][..16].as_ptr());
                    let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
                    acc[0] = vaddw_s16(acc[0], vget_low_s16(lo));
                    acc[1] = vaddw_high_s16(acc[1], lo);
                    acc[2] = vaddw_s16(acc[2], vget_low_s16(hi));
                    acc[3] = vaddw_high_s16(acc[3], hi);
                }
                let r: [int32x4_t; 4] =
                    core::array::from_fn(|i| requant4(vsubq_s32(acc[i], offset), &k, p.zp_out, -128, 127));
                store_i8x8(r[0], r[1], &mut yn[c..], 8);
                store_i8x8(r[2], r[3], &mut yn[c + 8..], 8);
            }
            global_avg_tail(p, xn, yn, vec);
        }
    }
}

/// [`super::qs16_global_avg_pool`] (format 1.6), 8 channels per step (`saddw` of each pixel's 8
/// int16 codes into two vectors of i32 sums), requantized as [`requant4`] to the int16 range and
/// narrowed (`xtn`).
///
/// # Safety
/// The slices match `p` (`batch x hw x channels` in, `batch x channels` out).
#[target_feature(enable = "neon")]
pub unsafe fn qs16_global_avg_pool_neon(p: &GlobalPool, x: &[i16], y: &mut [i16]) {
    let (hw, c_all) = (p.hw, p.channels);
    let vec = c_all / 8 * 8;
    let (m, s) = ([p.mult; 4], [p.shift; 4]);
    let (lo_b, hi_b) = (i16::MIN as i32, i16::MAX as i32);
    // SAFETY (whole body): every load reads 8 i16 at `c`, `c + 8 <= c_all`, inside pixel `q`'s
    // row; each store writes 8 i16 of the output row at `c`.
    unsafe {
        let k = load_requant4(&global_avg_requant(p, &m, &s), 0, 4);
        for n in 0..p.batch {
            let xn = &x[n * hw * c_all..][..hw * c_all];
            let yn = &mut y[n * c_all..][..c_all];
            for c in (0..vec).step_by(8) {
                let (mut a0, mut a1) = (vdupq_n_s32(0), vdupq_n_s32(0));
                for q in 0..hw {
                    let v = vld1q_s16(xn[q * c_all + c..][..8].as_ptr());
                    a0 = vaddw_s16(a0, vget_low_s16(v));
                    a1 = vaddw_high_s16(a1, v);
                }
                let r0 = vmovn_s32(requant4(a0, &k, p.zp_out, lo_b, hi_b));
                let r1 = vmovn_s32(requant4(a1, &k, p.zp_out, lo_b, hi_b));
                vst1q_s16(yn[c..c + 8].as_mut_ptr(), vcombine_s16(r0, r1));
            }
            global_avg_tail16(p, xn, yn, vec);
        }
    }
}
