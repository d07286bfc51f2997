//! x86-64 AVX2 element-wise kernels on contiguous operands: int8 add and multiply, f32 -> int8
//! quantization, each bit-exact to its scalar specification in [`super`].

use super::{AddParams, MulParams, Rescale};
use crate::kernels::x86::{requant8, requant8_constants, store_i8x8};
use core::arch::x86_64::*;

/// [`crate::kernels::elementwise::add_i8_one`] over contiguous operands, 8 lanes per step:
/// `(a - zp_a) * mult_a + (b - zp_b) * mult_b` in 64 bits (`vpmuldq` on even and odd lanes),
/// rounded half up and shifted as in [`requant8`], clamped to the activation range.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_add_avx2(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    let top = _mm256_set1_epi64x(i64::MIN);
    let s = _mm256_set1_epi64x(p.shift as i64);
    let round = _mm256_set1_epi64x(1i64 << (p.shift - 1));
    let offset = _mm256_set1_epi64x((1u64 << 63 >> p.shift) as i64);
    let (ma, mb) = (_mm256_set1_epi32(p.mult_a), _mm256_set1_epi32(p.mult_b));
    let (za, zb) = (_mm256_set1_epi32(p.zp_a), _mm256_set1_epi32(p.zp_b));
    let lo = _mm256_set1_epi64x((p.act_min - p.zp_out) as i64);
    let hi = _mm256_set1_epi64x((p.act_max - p.zp_out) as i64);
    let half = |da: __m256i, db: __m256i| {
        let t = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(da, ma), _mm256_mul_epi32(db, mb)), round);
        let r = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(t, top), s), offset);
        let r = _mm256_blendv_epi8(r, lo, _mm256_cmpgt_epi64(lo, r));
        _mm256_blendv_epi8(r, hi, _mm256_cmpgt_epi64(r, hi))
    };
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for all three slices.
        unsafe {
            let av = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64(a.as_ptr().add(i).cast())), za);
            let bv = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr().add(i).cast())), zb);
            let even = half(av, bv);
            let odd = half(_mm256_srli_epi64(av, 32), _mm256_srli_epi64(bv, 32));
            let v = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
            store_i8x8(_mm256_add_epi32(v, _mm256_set1_epi32(p.zp_out)), &mut y[i..], 8);
        }
        i += 8;
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i8_one(p, a[j], b[j]);
    }
}

/// [`crate::quant::quantize_f32`] over a contiguous slice, 8 lanes per step, bit-exact: the same
/// IEEE division, NaN to 0 and clamp to +-1e6, truncation, and the exact fraction test for
/// rounding half away from zero; the saturating packs clamp to [-128, 127] after adding `zp`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_quantize_avx2(x: &[f32], y: &mut [i8], scale: f32, zp: i32) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let sv = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-1.0e6), _mm256_set1_ps(1.0e6));
    let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
    let z = _mm256_set1_epi32(zp);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for both slices.
        unsafe {
            let q = _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(i)), sv);
            let q = _mm256_andnot_ps(_mm256_cmp_ps(q, q, _CMP_UNORD_Q), q);
            let q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
            let t = _mm256_cvttps_epi32(q);
            let frac = _mm256_sub_ps(q, _mm256_cvtepi32_ps(t));
            // The comparison masks are -1 where true: subtracting adds 1, adding subtracts 1.
            let up = _mm256_castps_si256(_mm256_cmp_ps(frac, half, _CMP_GE_OQ));
            let down = _mm256_castps_si256(_mm256_cmp_ps(frac, neg_half, _CMP_LE_OQ));
            let r = _mm256_add_epi32(_mm256_add_epi32(_mm256_sub_epi32(t, up), down), z);
            store_i8x8(r, &mut y[i..], 8);
        }
        i += 8;
    }
    for j in vec..len {
        y[j] = crate::quant::quantize_f32(x[j], scale, zp);
    }
}

/// [`crate::kernels::elementwise::qs8_mul_contiguous_scalar`], 8 lanes per step: the centred
/// operands multiplied in i32 (`|(a - zp_a)(b - zp_b)| <= 255 * 255`, exact), then [`requant8`]
/// with the op's one multiplier and shift.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_mul_avx2(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    // SAFETY: AVX2 is available (this function's contract).
    let k = unsafe { requant8_constants(_mm256_set1_epi32(p.mult), _mm256_set1_epi32(p.shift)) };
    let (za, zb) = (_mm256_set1_epi32(p.zp_a), _mm256_set1_epi32(p.zp_b));
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for all three slices.
        unsafe {
            let av = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64(a.as_ptr().add(i).cast())), za);
            let bv = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr().add(i).cast())), zb);
            let v = requant8(_mm256_mullo_epi32(av, bv), &k, p.zp_out, p.act_min, p.act_max);
            store_i8x8(v, &mut y[i..], 8);
        }
        i += 8;
    }
    crate::kernels::elementwise::qs8_mul_contiguous_scalar(&a[vec..len], &b[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::add_i16_one`] over contiguous int16 operands (format 1.6), 8
/// lanes per step: [`qs8_add_avx2`]'s exact 64-bit sums and shift, clamped to the activation
/// range (inside [-32768, 32767], so within the scalar's +-2^20), narrowed to i16.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_add_avx2(a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 8 * 8;
    let top = _mm256_set1_epi64x(i64::MIN);
    let s = _mm256_set1_epi64x(p.shift as i64);
    let round = _mm256_set1_epi64x(1i64 << (p.shift - 1));
    let offset = _mm256_set1_epi64x((1u64 << 63 >> p.shift) as i64);
    let (ma, mb) = (_mm256_set1_epi32(p.mult_a), _mm256_set1_epi32(p.mult_b));
    let (za, zb) = (_mm256_set1_epi32(p.zp_a), _mm256_set1_epi32(p.zp_b));
    let lo = _mm256_set1_epi64x((p.act_min - p.zp_out) as i64);
    let hi = _mm256_set1_epi64x((p.act_max - p.zp_out) as i64);
    let half = |da: __m256i, db: __m256i| {
        let t = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(da, ma), _mm256_mul_epi32(db, mb)), round);
        let r = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(t, top), s), offset);
        let r = _mm256_blendv_epi8(r, lo, _mm256_cmpgt_epi64(lo, r));
        _mm256_blendv_epi8(r, hi, _mm256_cmpgt_epi64(r, hi))
    };
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for all three slices.
        unsafe {
            let av = _mm256_sub_epi32(_mm256_cvtepi16_epi32(_mm_loadu_si128(a.as_ptr().add(i).cast())), za);
            let bv = _mm256_sub_epi32(_mm256_cvtepi16_epi32(_mm_loadu_si128(b.as_ptr().add(i).cast())), zb);
            let even = half(av, bv);
            let odd = half(_mm256_srli_epi64(av, 32), _mm256_srli_epi64(bv, 32));
            let v = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
            let v = _mm256_add_epi32(v, _mm256_set1_epi32(p.zp_out));
            let h = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0b00_00_10_00);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), _mm256_castsi256_si128(h));
        }
        i += 8;
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i16_one(p, a[j], b[j]);
    }
}

/// [`crate::quant::quantize_f32_i16`] over a contiguous slice (format 1.6), 8 lanes per step,
/// bit-exact as [`qs8_quantize_avx2`] (the same division, NaN to 0, clamp to +-1e6, truncation
/// and exact half-away rounding), saturated to int16.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_quantize_avx2(x: &[f32], y: &mut [i16], scale: f32) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    let sv = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-1.0e6), _mm256_set1_ps(1.0e6));
    let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for both slices.
        unsafe {
            let q = _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(i)), sv);
            let q = _mm256_andnot_ps(_mm256_cmp_ps(q, q, _CMP_UNORD_Q), q);
            let q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
            let t = _mm256_cvttps_epi32(q);
            let frac = _mm256_sub_ps(q, _mm256_cvtepi32_ps(t));
            let up = _mm256_castps_si256(_mm256_cmp_ps(frac, half, _CMP_GE_OQ));
            let down = _mm256_castps_si256(_mm256_cmp_ps(frac, neg_half, _CMP_LE_OQ));
            let r = _mm256_add_epi32(_mm256_sub_epi32(t, up), down);
            let h = _mm256_permute4x64_epi64(_mm256_packs_epi32(r, r), 0b00_00_10_00);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), _mm256_castsi256_si128(h));
        }
        i += 8;
    }
    for j in vec..len {
        y[j] = crate::quant::quantize_f32_i16(x[j], scale);
    }
}

/// [`crate::kernels::elementwise::qs16_widen_scalar`], 8 lanes per step: the centred codes
/// requantized by [`requant8`] with the op's one multiplier and shift, clamped to int16.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_widen_avx2(x: &[i8], y: &mut [i16], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    // SAFETY: AVX2 is available (this function's contract).
    let k = unsafe { requant8_constants(_mm256_set1_epi32(p.mult), _mm256_set1_epi32(p.shift)) };
    let zi = _mm256_set1_epi32(p.zp_in);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for both slices.
        unsafe {
            let v = _mm256_sub_epi32(_mm256_cvtepi8_epi32(_mm_loadl_epi64(x.as_ptr().add(i).cast())), zi);
            let r = requant8(v, &k, p.zp_out, -32768, 32767);
            let h = _mm256_permute4x64_epi64(_mm256_packs_epi32(r, r), 0b00_00_10_00);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), _mm256_castsi256_si128(h));
        }
        i += 8;
    }
    crate::kernels::elementwise::qs16_widen_scalar(&x[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::qs16_narrow_scalar`], 8 lanes per step (see
/// [`qs16_widen_avx2`]), clamped to int8.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_narrow_avx2(x: &[i16], y: &mut [i8], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 8 * 8;
    // SAFETY: AVX2 is available (this function's contract).
    let k = unsafe { requant8_constants(_mm256_set1_epi32(p.mult), _mm256_set1_epi32(p.shift)) };
    let zi = _mm256_set1_epi32(p.zp_in);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 8 <= len` for both slices.
        unsafe {
            let v = _mm256_sub_epi32(_mm256_cvtepi16_epi32(_mm_loadu_si128(x.as_ptr().add(i).cast())), zi);
            store_i8x8(requant8(v, &k, p.zp_out, -128, 127), &mut y[i..], 8);
        }
        i += 8;
    }
    crate::kernels::elementwise::qs16_narrow_scalar(&x[vec..len], &mut y[vec..len], p);
}
