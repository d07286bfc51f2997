//! aarch64 NEON element-wise kernels on contiguous operands: int8 add and multiply, int16 add and
//! the conversions between int8 and int16 codes (format 1.6), bit-exact to their scalar
//! specifications in [`super`].

use super::{AddParams, MulParams, Rescale};
use crate::kernels::arm::{load_requant4, requant4};
use crate::kernels::conv::Requant;
use core::arch::aarch64::*;

/// [`crate::kernels::elementwise::add_i8_one`] over contiguous operands, 4 lanes per step, in
/// 64 bits (`smull` / `smlal`), rounded and shifted as [`requant4`].
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs8_add_neon(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let (za, zb) = (vdupq_n_s16(p.zp_a as i16), vdupq_n_s16(p.zp_b as i16));
        let (ma, mb) = (vdup_n_s32(p.mult_a), vdup_n_s32(p.mult_b));
        let round = vdupq_n_s64(1i64 << (p.shift - 1));
        let neg = vdupq_n_s64(-(p.shift as i64));
        let (lo, hi) = (vdupq_n_s32(p.act_min - p.zp_out), vdupq_n_s32(p.act_max - p.zp_out));
        let zo = vdupq_n_s32(p.zp_out);
        let half = |da: int32x2_t, db: int32x2_t| {
            let t = vmlal_s32(vmull_s32(da, ma), db, mb);
            vqmovn_s64(vshlq_s64(vaddq_s64(t, round), neg))
        };
        while i < vec {
            let av = vsubq_s16(vmovl_s8(vld1_s8(a.as_ptr().add(i))), za);
            let bv = vsubq_s16(vmovl_s8(vld1_s8(b.as_ptr().add(i))), zb);
            let (a0, a1) = (vmovl_s16(vget_low_s16(av)), vmovl_high_s16(av));
            let (b0, b1) = (vmovl_s16(vget_low_s16(bv)), vmovl_high_s16(bv));
            let r0 = vcombine_s32(half(vget_low_s32(a0), vget_low_s32(b0)), half(vget_high_s32(a0), vget_high_s32(b0)));
            let r1 = vcombine_s32(half(vget_low_s32(a1), vget_low_s32(b1)), half(vget_high_s32(a1), vget_high_s32(b1)));
            let r0 = vaddq_s32(vminq_s32(vmaxq_s32(r0, lo), hi), zo);
            let r1 = vaddq_s32(vminq_s32(vmaxq_s32(r1, lo), hi), zo);
            vst1_s8(y.as_mut_ptr().add(i), vqmovn_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1))));
            i += 8;
        }
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i8_one(p, a[j], b[j]);
    }
}

/// [`crate::kernels::elementwise::qs8_mul_contiguous_scalar`], 8 lanes per step: the centred
/// operands multiplied exactly in i32 (`vmull_s16`), then [`requant4`] with the op's one
/// multiplier and shift.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs8_mul_neon(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    let (mult, shift) = ([p.mult; 4], [p.shift; 4]);
    let rq = Requant {
        bias: &[],
        mult: &mult,
        shift: &shift,
        input_zero_point: 0,
        output_zero_point: p.zp_out,
        act_min: p.act_min,
        act_max: p.act_max,
    };
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let k = load_requant4(&rq, 0, 4);
        let (za, zb) = (vdupq_n_s16(p.zp_a as i16), vdupq_n_s16(p.zp_b as i16));
        while i < vec {
            let av = vsubq_s16(vmovl_s8(vld1_s8(a.as_ptr().add(i))), za);
            let bv = vsubq_s16(vmovl_s8(vld1_s8(b.as_ptr().add(i))), zb);
            let p0 = vmull_s16(vget_low_s16(av), vget_low_s16(bv));
            let p1 = vmull_high_s16(av, bv);
            let r0 = requant4(p0, &k, p.zp_out, p.act_min, p.act_max);
            let r1 = requant4(p1, &k, p.zp_out, p.act_min, p.act_max);
            vst1_s8(y.as_mut_ptr().add(i), vqmovn_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1))));
            i += 8;
        }
    }
    crate::kernels::elementwise::qs8_mul_contiguous_scalar(&a[vec..len], &b[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::add_i16_one`] over contiguous int16 operands (format 1.6), 8
/// lanes per step: [`qs8_add_neon`]'s 64-bit sums (`smull` / `smlal`), rounding shift and
/// saturating narrow to i32, clamped to the activation range (inside the scalar's +-2^20),
/// narrowed to i16.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs16_add_neon(a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let (za, zb) = (vdupq_n_s32(p.zp_a), vdupq_n_s32(p.zp_b));
        let (ma, mb) = (vdup_n_s32(p.mult_a), vdup_n_s32(p.mult_b));
        let round = vdupq_n_s64(1i64 << (p.shift - 1));
        let neg = vdupq_n_s64(-(p.shift as i64));
        let (lo, hi) = (vdupq_n_s32(p.act_min - p.zp_out), vdupq_n_s32(p.act_max - p.zp_out));
        let zo = vdupq_n_s32(p.zp_out);
        let half = |da: int32x2_t, db: int32x2_t| {
            let t = vmlal_s32(vmull_s32(da, ma), db, mb);
            vqmovn_s64(vshlq_s64(vaddq_s64(t, round), neg))
        };
        while i < vec {
            let (av, bv) = (vld1q_s16(a.as_ptr().add(i)), vld1q_s16(b.as_ptr().add(i)));
            let (a0, a1) = (vsubq_s32(vmovl_s16(vget_low_s16(av)), za), vsubq_s32(vmovl_high_s16(av), za));
            let (b0, b1) = (vsubq_s32(vmovl_s16(vget_low_s16(bv)), zb), vsubq_s32(vmovl_high_s16(bv), zb));
            let r0 = vcombine_s32(half(vget_low_s32(a0), vget_low_s32(b0)), half(vget_high_s32(a0), vget_high_s32(b0)));
            let r1 = vcombine_s32(half(vget_low_s32(a1), vget_low_s32(b1)), half(vget_high_s32(a1), vget_high_s32(b1)));
            let r0 = vaddq_s32(vminq_s32(vmaxq_s32(r0, lo), hi), zo);
            let r1 = vaddq_s32(vminq_s32(vmaxq_s32(r1, lo), hi), zo);
            vst1q_s16(y.as_mut_ptr().add(i), vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1)));
            i += 8;
        }
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i16_one(p, a[j], b[j]);
    }
}

/// [`crate::kernels::elementwise::qs16_widen_scalar`], 8 lanes per step: the centred codes
/// requantized by [`requant4`] with the op's one multiplier and shift, narrowed to int16.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs16_widen_neon(x: &[i8], y: &mut [i16], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let (mult, shift) = ([p.mult; 4], [p.shift; 4]);
    let rq = Requant {
        bias: &[],
        mult: &mult,
        shift: &shift,
        input_zero_point: p.zp_in,
        output_zero_point: p.zp_out,
        act_min: 0,
        act_max: 0,
    };
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let k = load_requant4(&rq, 0, 4);
        let zi = vdupq_n_s32(p.zp_in);
        while i < vec {
            let v = vmovl_s8(vld1_s8(x.as_ptr().add(i)));
            let (v0, v1) = (vsubq_s32(vmovl_s16(vget_low_s16(v)), zi), vsubq_s32(vmovl_high_s16(v), zi));
            let r0 = requant4(v0, &k, p.zp_out, -32768, 32767);
            let r1 = requant4(v1, &k, p.zp_out, -32768, 32767);
            vst1q_s16(y.as_mut_ptr().add(i), vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1)));
            i += 8;
        }
    }
    crate::kernels::elementwise::qs16_widen_scalar(&x[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::qs16_narrow_scalar`], 8 lanes per step (see
/// [`qs16_widen_neon`]), narrowed to int8.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs16_narrow_neon(x: &[i16], y: &mut [i8], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let (mult, shift) = ([p.mult; 4], [p.shift; 4]);
    let rq = Requant {
        bias: &[],
        mult: &mult,
        shift: &shift,
        input_zero_point: p.zp_in,
        output_zero_point: p.zp_out,
        act_min: 0,
        act_max: 0,
    };
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let k = load_requant4(&rq, 0, 4);
        let zi = vdupq_n_s32(p.zp_in);
        while i < vec {
            let v = vld1q_s16(x.as_ptr().add(i));
            let (v0, v1) = (vsubq_s32(vmovl_s16(vget_low_s16(v)), zi), vsubq_s32(vmovl_high_s16(v), zi));
            let r0 = requant4(v0, &k, p.zp_out, -128, 127);
            let r1 = requant4(v1, &k, p.zp_out, -128, 127);
            vst1_s8(y.as_mut_ptr().add(i), vqmovn_s16(vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r1))));
            i += 8;
        }
    }
    crate::kernels::elementwise::qs16_narrow_scalar(&x[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::qs8_quantize_scalar`] (f32 -> int8), 8 lanes per step: the IEEE
/// quotient `x / scale` (`fdiv`, as the scalar code divides), rounded half away from zero by
/// `fcvtas` (NaN to 0, out-of-range values saturated; the scalar code's clamp to +-1e6 then ends
/// at the same int8 bound), the zero point added with saturation and narrowed with saturation.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs8_quantize_neon(x: &[f32], y: &mut [i8], scale: f32, zero_point: i32) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let (s, zp) = (vdupq_n_f32(scale), vdupq_n_s32(zero_point));
        while i < vec {
            let code = |at: usize| vqaddq_s32(vcvtaq_s32_f32(vdivq_f32(vld1q_f32(x.as_ptr().add(at)), s)), zp);
            let h = vcombine_s16(vqmovn_s32(code(i)), vqmovn_s32(code(i + 4)));
            vst1_s8(y.as_mut_ptr().add(i), vqmovn_s16(h));
            i += 8;
        }
    }
    crate::kernels::elementwise::qs8_quantize_scalar(&x[vec..len], &mut y[vec..len], scale, zero_point);
}

/// [`crate::kernels::elementwise::qs16_quantize_scalar`] (f32 -> int16, format 1.6), 8 lanes per
/// step, rounded as [`qs8_quantize_neon`] and narrowed to int16 with saturation.
///
/// # Safety
/// NEON is part of the aarch64 baseline; nothing else is required.
#[target_feature(enable = "neon")]
pub unsafe fn qs16_quantize_neon(x: &[f32], y: &mut [i16], scale: f32) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let mut i = 0;
    // SAFETY: every load and store below covers `i .. i + 8 <= len` of its slice.
    unsafe {
        let s = vdupq_n_f32(scale);
        while i < vec {
            let code = |at: usize| vqmovn_s32(vcvtaq_s32_f32(vdivq_f32(vld1q_f32(x.as_ptr().add(at)), s)));
            vst1q_s16(y.as_mut_ptr().add(i), vcombine_s16(code(i), code(i + 4)));
            i += 8;
        }
    }
    crate::kernels::elementwise::qs16_quantize_scalar(&x[vec..len], &mut y[vec..len], scale);
}
