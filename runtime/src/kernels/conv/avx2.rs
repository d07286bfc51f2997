//! x86-64 AVX2 int8 convolution: the shared loop nest with an AVX2 inner product.

use super::scalar::qs8_conv2d_with;
use super::{ConvGeometry, Requant};
use core::arch::x86_64::*;

/// `sum((x - zp) * w)` = `sum(x * w) - zp * sum(w)`, 16 elements per step: sign-extend to i16
/// (`vpmovsxbw`), multiply and add pairs into i32 (`vpmaddwd`). `vpmaddwd` does not saturate and
/// `|x * w| <= 128 * 127`, so every lane sum is exact; i32 accumulation wraps exactly as the
/// scalar kernel's (and load validation keeps reductions short enough never to wrap).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn dot_i8_avx2(x: &[i8], w: &[i8], zero_point: i32) -> i32 {
    let len = x.len().min(w.len());
    let mut prod = _mm256_setzero_si256();
    let mut wsum = _mm256_setzero_si256();
    let ones = _mm256_set1_epi16(1);
    let mut i = 0;
    while i + 16 <= len {
        // SAFETY: `i + 16 <= len` and both slices hold at least `len` elements.
        let (xv, wv) = unsafe {
            (_mm_loadu_si128(x.as_ptr().add(i).cast::<__m128i>()), _mm_loadu_si128(w.as_ptr().add(i).cast::<__m128i>()))
        };
        let (x16, w16) = (_mm256_cvtepi8_epi16(xv), _mm256_cvtepi8_epi16(wv));
        prod = _mm256_add_epi32(prod, _mm256_madd_epi16(x16, w16));
        wsum = _mm256_add_epi32(wsum, _mm256_madd_epi16(w16, ones));
        i += 16;
    }
    let mut lanes = [0i32; 8];
    let mut wlanes = [0i32; 8];
    // SAFETY: both arrays are 32 bytes; unaligned stores.
    unsafe {
        _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), prod);
        _mm256_storeu_si256(wlanes.as_mut_ptr().cast::<__m256i>(), wsum);
    }
    let mut acc = lanes.iter().fold(0i32, |a, &v| a.wrapping_add(v));
    let sum_w = wlanes.iter().fold(0i32, |a, &v| a.wrapping_add(v));
    acc = acc.wrapping_sub(zero_point.wrapping_mul(sum_w));
    for j in i..len {
        acc = acc.wrapping_add((x[j] as i32 - zero_point) * w[j] as i32);
    }
    acc
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_conv2d_avx2(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: this function only runs where AVX2 is available (its own contract).
    qs8_conv2d_with(g, x, w, rq, y, |a, b, zp| unsafe { dot_i8_avx2(a, b, zp) });
}
