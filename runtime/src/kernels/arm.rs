//! aarch64 NEON pieces shared by the ARM kernel families: the vector form of
//! [`crate::quant::requantize_to_i8`], bit-exact to it, and narrowing stores.

use crate::kernels::conv::Requant;
use core::arch::aarch64::*;

/// Requantization constants of 4 consecutive channels, loaded once per tile.
#[derive(Clone, Copy)]
pub struct Requant4 {
    mult: int32x4_t,
    /// `-shift` per lane (a negative `vshlq_s64` count is an arithmetic right shift).
    neg_shift_lo: int64x2_t,
    neg_shift_hi: int64x2_t,
    /// `2^(shift - 1)` per lane.
    round_lo: int64x2_t,
    round_hi: int64x2_t,
}

/// Load the constants of channels `c .. c + len` (`len <= 4`; missing lanes get multiplier 0,
/// whose output is never stored).
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
#[inline]
pub unsafe fn load_requant4(rq: &Requant<'_>, c: usize, len: usize) -> Requant4 {
    let (mut m, mut s) = ([0i32; 4], [31i32; 4]);
    m[..len].copy_from_slice(&rq.mult[c..c + len]);
    s[..len].copy_from_slice(&rq.shift[c..c + len]);
    // SAFETY: 16-byte loads from two 4-element arrays.
    unsafe {
        let shift = vld1q_s32(s.as_ptr());
        let (sl, sh) = (vmovl_s32(vget_low_s32(shift)), vmovl_high_s32(shift));
        let one = vdupq_n_s64(1);
        let minus_one = vdupq_n_s64(-1);
        Requant4 {
            mult: vld1q_s32(m.as_ptr()),
            neg_shift_lo: vnegq_s64(sl),
            neg_shift_hi: vnegq_s64(sh),
            round_lo: vshlq_s64(one, vaddq_s64(sl, minus_one)),
            round_hi: vshlq_s64(one, vaddq_s64(sh, minus_one)),
        }
    }
}

/// `requantize_to_i8` on 4 lanes, as i32: `acc * mult` in 64 bits (`smull`), plus `2^(shift-1)`,
/// arithmetic shift right (`sshl` by `-shift`: floor), saturating narrow to i32 (`sqxtn`, the
/// scalar's i32 saturation), clamp to `[act_min - zp, act_max - zp]`, plus `zp`.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
#[inline]
pub unsafe fn requant4(acc: int32x4_t, k: &Requant4, zp: i32, act_min: i32, act_max: i32) -> int32x4_t {
    let lo = vmull_s32(vget_low_s32(acc), vget_low_s32(k.mult));
    let hi = vmull_high_s32(acc, k.mult);
    let lo = vshlq_s64(vaddq_s64(lo, k.round_lo), k.neg_shift_lo);
    let hi = vshlq_s64(vaddq_s64(hi, k.round_hi), k.neg_shift_hi);
    let v = vcombine_s32(vqmovn_s64(lo), vqmovn_s64(hi));
    let v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(act_min - zp)), vdupq_n_s32(act_max - zp));
    vaddq_s32(v, vdupq_n_s32(zp))
}

/// Narrow 4 x 4 i32 lanes already in [-128, 127] to 16 i8.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
#[inline]
pub unsafe fn narrow16(a: int32x4_t, b: int32x4_t, c: int32x4_t, d: int32x4_t) -> int8x16_t {
    let ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    let cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd))
}

/// Store the first `len <= 8` bytes of two narrowed groups of 4 lanes.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
#[inline]
pub unsafe fn store_i8x8(a: int32x4_t, b: int32x4_t, out: &mut [i8], len: usize) {
    let v = vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b)));
    if len == 8 {
        let out = &mut out[..8];
        // SAFETY: `out` holds 8 bytes.
        unsafe { vst1_s8(out.as_mut_ptr(), v) };
        return;
    }
    let mut bytes = [0i8; 8];
    // SAFETY: 8-byte store into an 8-byte array.
    unsafe { vst1_s8(bytes.as_mut_ptr(), v) };
    out[..len].copy_from_slice(&bytes[..len]);
}
