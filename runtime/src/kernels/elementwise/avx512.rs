//! x86-64 AVX-512 (F, BW) element-wise kernels on contiguous operands: int8 add and multiply, f32 -> int8
//! quantization, 16 lanes per step, bit-exact to their scalar specifications in [`super`].

use super::{AddParams, MulParams, Rescale};
use crate::kernels::x86::{load_requant16, requant16};
use core::arch::x86_64::*;

/// [`qs8_add_avx2`] on 16 lanes per step with AVX-512: the same exact 64-bit sums of the even
/// and odd lanes, a native arithmetic 64-bit shift (`vpsraq`) and 64-bit clamp to `+-2^16`,
/// then one `vpermt2d` to interleave the halves, the output zero point, a saturating narrowing
/// (`vpmovsdb`) and the activation clamp on the bytes (saturation and the clamp are monotone,
/// and the activation range lies inside [-128, 127], so this is exactly `add_i8_one`).
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs8_add_avx512(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 16 * 16;
    let s = _mm512_set1_epi64(p.shift as i64);
    let round = _mm512_set1_epi64(1i64 << (p.shift - 1));
    let (ma, mb) = (_mm512_set1_epi32(p.mult_a), _mm512_set1_epi32(p.mult_b));
    let (za, zb) = (_mm512_set1_epi32(p.zp_a), _mm512_set1_epi32(p.zp_b));
    let (lo, hi) = (_mm512_set1_epi64(-1 << 16), _mm512_set1_epi64(1 << 16));
    let zo = _mm512_set1_epi32(p.zp_out);
    let (act_lo, act_hi) = (_mm_set1_epi8(p.act_min as i8), _mm_set1_epi8(p.act_max as i8));
    // Even lane `2i` from the low half of `even`'s 64-bit lane `i`, odd lane `2i + 1` from `odd`'s.
    let idx = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    let half = |da: __m512i, db: __m512i| {
        let t = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(da, ma), _mm512_mul_epi32(db, mb)), round);
        _mm512_min_epi64(_mm512_max_epi64(_mm512_srav_epi64(t, s), lo), hi)
    };
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for all three slices.
        unsafe {
            let av = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(a.as_ptr().add(i).cast())), za);
            let bv = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(b.as_ptr().add(i).cast())), zb);
            let even = half(av, bv);
            let odd = half(_mm512_srli_epi64(av, 32), _mm512_srli_epi64(bv, 32));
            let v = _mm512_add_epi32(_mm512_permutex2var_epi32(even, idx, odd), zo);
            let bytes = _mm_min_epi8(_mm_max_epi8(_mm512_cvtsepi32_epi8(v), act_lo), act_hi);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), bytes);
        }
        i += 16;
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i8_one(p, a[j], b[j]);
    }
}

/// [`crate::kernels::elementwise::qs8_mul_contiguous_scalar`] on 16 lanes per step: the centred
/// operands multiplied in i32 (`|(a - zp_a)(b - zp_b)| <= 255 * 255`, exact), the product times
/// the multiplier in 64 bits for the even and odd lanes (`vpmuldq`), rounded and shifted
/// arithmetically (`vpsraq`) as `requantize` does, clamped to `+-2^16` (beyond it the int8 result
/// saturates either way), interleaved, the output zero point added, narrowed with saturation and
/// clamped to the activation range: exactly `requantize_to_i8` per lane.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs8_mul_avx512(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 16 * 16;
    let s = _mm512_set1_epi64(p.shift as i64);
    let round = _mm512_set1_epi64(1i64 << (p.shift - 1));
    let m = _mm512_set1_epi32(p.mult);
    let (za, zb) = (_mm512_set1_epi32(p.zp_a), _mm512_set1_epi32(p.zp_b));
    let (lo, hi) = (_mm512_set1_epi64(-1 << 16), _mm512_set1_epi64(1 << 16));
    let zo = _mm512_set1_epi32(p.zp_out);
    let (act_lo, act_hi) = (_mm_set1_epi8(p.act_min as i8), _mm_set1_epi8(p.act_max as i8));
    let idx = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    let half = |prod: __m512i| {
        let t = _mm512_add_epi64(_mm512_mul_epi32(prod, m), round);
        _mm512_min_epi64(_mm512_max_epi64(_mm512_srav_epi64(t, s), lo), hi)
    };
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for all three slices.
        unsafe {
            let av = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(a.as_ptr().add(i).cast())), za);
            let bv = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(b.as_ptr().add(i).cast())), zb);
            let prod = _mm512_mullo_epi32(av, bv);
            let even = half(prod);
            let odd = half(_mm512_srli_epi64(prod, 32));
            let v = _mm512_add_epi32(_mm512_permutex2var_epi32(even, idx, odd), zo);
            let bytes = _mm_min_epi8(_mm_max_epi8(_mm512_cvtsepi32_epi8(v), act_lo), act_hi);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), bytes);
        }
        i += 16;
    }
    // The rest (a channel count such as 72 or 120 leaves 8): AVX2's 8 lanes, then scalar.
    // SAFETY: AVX2 is available (this function's contract).
    unsafe { super::avx2::qs8_mul_avx2(&a[vec..len], &b[vec..len], &mut y[vec..len], p) }
}

/// [`qs8_quantize_avx2`] on 16 lanes per step with AVX-512: the same IEEE division, NaN to 0,
/// clamp, truncation and fraction test (as mask registers), then a saturating narrowing
/// (`vpmovsdb`) after adding `zp`.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs8_quantize_avx512(x: &[f32], y: &mut [i8], scale: f32, zp: i32) {
    let len = x.len().min(y.len());
    let vec = len / 16 * 16;
    let sv = _mm512_set1_ps(scale);
    let (lo, hi) = (_mm512_set1_ps(-1.0e6), _mm512_set1_ps(1.0e6));
    let (half, neg_half) = (_mm512_set1_ps(0.5), _mm512_set1_ps(-0.5));
    let (z, one) = (_mm512_set1_epi32(zp), _mm512_set1_epi32(1));
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for both slices.
        unsafe {
            let q = _mm512_div_ps(_mm512_loadu_ps(x.as_ptr().add(i)), sv);
            let nan = _mm512_cmp_ps_mask(q, q, _CMP_UNORD_Q);
            let q = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_mov_ps(!nan, q), lo), hi);
            let t = _mm512_cvttps_epi32(q);
            let frac = _mm512_sub_ps(q, _mm512_cvtepi32_ps(t));
            let up = _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ);
            let down = _mm512_cmp_ps_mask(frac, neg_half, _CMP_LE_OQ);
            let r = _mm512_add_epi32(t, z);
            let r = _mm512_mask_add_epi32(r, up, r, one);
            let r = _mm512_mask_sub_epi32(r, down, r, one);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), _mm512_cvtsepi32_epi8(r));
        }
        i += 16;
    }
    for j in vec..len {
        y[j] = crate::quant::quantize_f32(x[j], scale, zp);
    }
}

/// [`crate::kernels::elementwise::add_i16_one`] over contiguous int16 operands (format 1.6), 16
/// lanes per step: [`qs8_add_avx512`]'s exact 64-bit sums, arithmetic shift and clamp (to
/// +-2^20), the output zero point, the activation clamp on i32 lanes, narrowed to i16.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs16_add_avx512(a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    let len = a.len().min(b.len()).min(y.len());
    let vec = len / 16 * 16;
    let s = _mm512_set1_epi64(p.shift as i64);
    let round = _mm512_set1_epi64(1i64 << (p.shift - 1));
    let (ma, mb) = (_mm512_set1_epi32(p.mult_a), _mm512_set1_epi32(p.mult_b));
    let (za, zb) = (_mm512_set1_epi32(p.zp_a), _mm512_set1_epi32(p.zp_b));
    let (lo, hi) = (_mm512_set1_epi64(-1 << 20), _mm512_set1_epi64(1 << 20));
    let zo = _mm512_set1_epi32(p.zp_out);
    let (act_lo, act_hi) = (_mm512_set1_epi32(p.act_min), _mm512_set1_epi32(p.act_max));
    let idx = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    let half = |da: __m512i, db: __m512i| {
        let t = _mm512_add_epi64(_mm512_add_epi64(_mm512_mul_epi32(da, ma), _mm512_mul_epi32(db, mb)), round);
        _mm512_min_epi64(_mm512_max_epi64(_mm512_srav_epi64(t, s), lo), hi)
    };
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for all three slices.
        unsafe {
            let av = _mm512_sub_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256(a.as_ptr().add(i).cast())), za);
            let bv = _mm512_sub_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256(b.as_ptr().add(i).cast())), zb);
            let even = half(av, bv);
            let odd = half(_mm512_srli_epi64(av, 32), _mm512_srli_epi64(bv, 32));
            let v = _mm512_add_epi32(_mm512_permutex2var_epi32(even, idx, odd), zo);
            let v = _mm512_min_epi32(_mm512_max_epi32(v, act_lo), act_hi);
            _mm256_storeu_si256(y.as_mut_ptr().add(i).cast(), _mm512_cvtsepi32_epi16(v));
        }
        i += 16;
    }
    for j in vec..len {
        y[j] = crate::kernels::elementwise::add_i16_one(p, a[j], b[j]);
    }
}

/// [`crate::quant::quantize_f32_i16`] over a contiguous slice (format 1.6), 16 lanes per step,
/// bit-exact as [`qs8_quantize_avx512`], saturated to int16 (`vpmovsdw`).
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs16_quantize_avx512(x: &[f32], y: &mut [i16], scale: f32) {
    let len = x.len().min(y.len());
    let vec = len / 16 * 16;
    let sv = _mm512_set1_ps(scale);
    let (lo, hi) = (_mm512_set1_ps(-1.0e6), _mm512_set1_ps(1.0e6));
    let (half, neg_half) = (_mm512_set1_ps(0.5), _mm512_set1_ps(-0.5));
    let one = _mm512_set1_epi32(1);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for both slices.
        unsafe {
            let q = _mm512_div_ps(_mm512_loadu_ps(x.as_ptr().add(i)), sv);
            let nan = _mm512_cmp_ps_mask(q, q, _CMP_UNORD_Q);
            let q = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_mov_ps(!nan, q), lo), hi);
            let t = _mm512_cvttps_epi32(q);
            let frac = _mm512_sub_ps(q, _mm512_cvtepi32_ps(t));
            let up = _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ);
            let down = _mm512_cmp_ps_mask(frac, neg_half, _CMP_LE_OQ);
            let r = _mm512_mask_add_epi32(t, up, t, one);
            let r = _mm512_mask_sub_epi32(r, down, r, one);
            _mm256_storeu_si256(y.as_mut_ptr().add(i).cast(), _mm512_cvtsepi32_epi16(r));
        }
        i += 16;
    }
    for j in vec..len {
        y[j] = crate::quant::quantize_f32_i16(x[j], scale);
    }
}

/// [`crate::kernels::elementwise::qs16_widen_scalar`], 16 lanes per step: the centred codes
/// requantized by [`requant16`] with the op's one multiplier and shift, narrowed with
/// saturation to int16 (the scalar's clamp).
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs16_widen_avx512(x: &[i8], y: &mut [i16], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 16 * 16;
    // SAFETY: the features are this function's contract; two 16-element arrays.
    let k = unsafe { load_requant16(&[p.mult; 16], &[p.shift; 16], p.zp_out) };
    let zi = _mm512_set1_epi32(p.zp_in);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for both slices.
        unsafe {
            let v = _mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_loadu_si128(x.as_ptr().add(i).cast())), zi);
            _mm256_storeu_si256(y.as_mut_ptr().add(i).cast(), _mm512_cvtsepi32_epi16(requant16(v, &k)));
        }
        i += 16;
    }
    crate::kernels::elementwise::qs16_widen_scalar(&x[vec..len], &mut y[vec..len], p);
}

/// [`crate::kernels::elementwise::qs16_narrow_scalar`], 16 lanes per step (see
/// [`qs16_widen_avx512`]), narrowed with saturation to int8.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F/BW.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
pub unsafe fn qs16_narrow_avx512(x: &[i16], y: &mut [i8], p: &Rescale) {
    let len = x.len().min(y.len());
    let vec = len / 16 * 16;
    // SAFETY: the features are this function's contract; two 16-element arrays.
    let k = unsafe { load_requant16(&[p.mult; 16], &[p.shift; 16], p.zp_out) };
    let zi = _mm512_set1_epi32(p.zp_in);
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for both slices.
        unsafe {
            let v = _mm512_sub_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256(x.as_ptr().add(i).cast())), zi);
            _mm_storeu_si128(y.as_mut_ptr().add(i).cast(), _mm512_cvtsepi32_epi8(requant16(v, &k)));
        }
        i += 16;
    }
    crate::kernels::elementwise::qs16_narrow_scalar(&x[vec..len], &mut y[vec..len], p);
}
