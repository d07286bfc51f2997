//! AVX2 pieces shared by the x86-64 kernel families: the vector form of
//! [`crate::quant::requantize_to_i8`], bit-exact to it, and narrowing stores.

use crate::kernels::conv::Requant;
use core::arch::x86_64::*;

/// Per-channel constants of [`requant8`] for 8 consecutive channels, loaded once per tile.
#[derive(Clone, Copy)]
pub struct Requant8 {
    mult: __m256i,
    shift: __m256i,
}

/// Load the multipliers and shifts of channels `c .. c + len` (`len <= 8`; missing lanes get
/// multiplier 0, whose output is never stored).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn load_requant8(rq: &Requant<'_>, c: usize, len: usize) -> Requant8 {
    let (mut m, mut s) = ([0i32; 8], [1i32; 8]);
    m[..len].copy_from_slice(&rq.mult[c..c + len]);
    s[..len].copy_from_slice(&rq.shift[c..c + len]);
    // SAFETY: 32-byte unaligned loads from two 8-element arrays.
    unsafe { Requant8 { mult: _mm256_loadu_si256(m.as_ptr().cast()), shift: _mm256_loadu_si256(s.as_ptr().cast()) } }
}

/// Load `len <= 8` i32 values (bias) from `v[c..]`, zero-filled.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn load_i32x8(v: &[i32], c: usize, len: usize) -> __m256i {
    if len == 8 {
        let s = &v[c..c + 8];
        // SAFETY: `s` holds 8 i32.
        return unsafe { _mm256_loadu_si256(s.as_ptr().cast()) };
    }
    let mut b = [0i32; 8];
    b[..len].copy_from_slice(&v[c..c + len]);
    // SAFETY: 32-byte unaligned load from an 8-element array.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// `requantize_to_i8` on 8 lanes: `clamp(round(acc * mult / 2^shift) + zp, act_min, act_max)`
/// with rounding half up, as i32 lanes.
///
/// Exact like the scalar form: `acc * mult` is formed in 64 bits (`vpmuldq` on even and odd
/// lanes), the rounding term `2^(shift-1)` added in 64 bits, and the arithmetic right shift
/// (which AVX2 lacks for 64-bit lanes) done as `((t + 2^63) >>> s) - 2^(63-s)`: adding 2^63
/// maps i64 order-preservingly onto u64, and `2^63` is divisible by `2^s`, so it is exactly
/// `floor(t / 2^s)`. The result is clamped to `[act_min - zp, act_max - zp]` in 64 bits before
/// `zp` is added, which equals the scalar's i32 saturation followed by the clamp.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn requant8(acc: __m256i, k: &Requant8, zp: i32, act_min: i32, act_max: i32) -> __m256i {
    let one = _mm256_set1_epi64x(1);
    let bias63 = _mm256_set1_epi64x(i64::MIN);
    let lo = _mm256_set1_epi64x((act_min - zp) as i64);
    let hi = _mm256_set1_epi64x((act_max - zp) as i64);
    let lane = |a: __m256i, m: __m256i, s: __m256i| -> __m256i {
        // a, m, s: values in the low 32 bits of each 64-bit lane (s zero-extended).
        let prod = _mm256_mul_epi32(a, m);
        let t = _mm256_add_epi64(prod, _mm256_sllv_epi64(one, _mm256_sub_epi64(s, one)));
        let shifted = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(t, bias63), s), _mm256_srlv_epi64(bias63, s));
        let v = _mm256_blendv_epi8(shifted, lo, _mm256_cmpgt_epi64(lo, shifted));
        _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi))
    };
    let mask32 = _mm256_set1_epi64x(0xffff_ffff);
    let even = lane(acc, k.mult, _mm256_and_si256(k.shift, mask32));
    let odd = lane(_mm256_srli_epi64(acc, 32), _mm256_srli_epi64(k.mult, 32), _mm256_srli_epi64(k.shift, 32));
    let v = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
    _mm256_add_epi32(v, _mm256_set1_epi32(zp))
}

/// Narrow 8 i32 lanes already in [-128, 127] to i8 and store the first `len` of them.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn store_i8x8(v: __m256i, out: &mut [i8], len: usize) {
    let w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let b = _mm_packs_epi16(w16, w16);
    let bytes = _mm_cvtsi128_si64(b).to_le_bytes();
    for (o, &b) in out[..len].iter_mut().zip(&bytes) {
        *o = b as i8;
    }
}

/// Narrow two vectors of 8 i32 lanes (already in [-128, 127]) to 16 i8 and store them.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn store_i8x16(a: __m256i, b: __m256i, out: &mut [i8]) {
    let out = &mut out[..16];
    let wa = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    let wb = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    // SAFETY: `out` holds 16 bytes.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_packs_epi16(wa, wb)) }
}
