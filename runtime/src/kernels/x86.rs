//! AVX2 pieces shared by the x86-64 kernel families: the vector form of
//! [`crate::quant::requantize_to_i8`], bit-exact to it, and narrowing stores.

use crate::kernels::conv::Requant;
use crate::kernels::fc::F32Out;
use core::arch::x86_64::*;

/// Per-channel constants of [`requant8`] for 8 consecutive channels, derived once per tile:
/// multipliers, shifts and the two shift-dependent terms, split into even and odd lanes.
#[derive(Clone, Copy)]
pub struct Requant8 {
    mult_even: __m256i,
    mult_odd: __m256i,
    shift_even: __m256i,
    shift_odd: __m256i,
    /// `2^(shift - 1)`
    round_even: __m256i,
    round_odd: __m256i,
    /// `2^63 >> shift`
    offset_even: __m256i,
    offset_odd: __m256i,
    /// Every shift is at least 31, so every result fits in i32 and the clamp can be 32-bit.
    narrow: bool,
    /// Every shift is at least 32 (multipliers below 0.5, the usual case): the shift is split
    /// into taking the high 32 bits and an arithmetic 32-bit shift by `shift - 32`.
    high: bool,
    shift_minus_32: __m256i,
}

/// Load the requantization constants of channels `c .. c + len` (`len <= 8`; missing lanes get
/// multiplier 0, whose output is never stored).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn load_requant8(rq: &Requant<'_>, c: usize, len: usize) -> Requant8 {
    let (mult, shift) = if len == 8 {
        let (m, s) = (&rq.mult[c..c + 8], &rq.shift[c..c + 8]);
        // SAFETY: `m` and `s` hold 8 i32 each.
        unsafe { (_mm256_loadu_si256(m.as_ptr().cast()), _mm256_loadu_si256(s.as_ptr().cast())) }
    } else {
        let (mut m, mut s) = ([0i32; 8], [31i32; 8]);
        m[..len].copy_from_slice(&rq.mult[c..c + len]);
        s[..len].copy_from_slice(&rq.shift[c..c + len]);
        // SAFETY: 32-byte unaligned loads from two 8-element arrays.
        unsafe { (_mm256_loadu_si256(m.as_ptr().cast()), _mm256_loadu_si256(s.as_ptr().cast())) }
    };
    // SAFETY: AVX2 is available (this function's contract).
    unsafe { requant8_constants(mult, shift) }
}

/// [`Requant8`] from 8 multipliers and 8 shifts.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn requant8_constants(mult: __m256i, shift: __m256i) -> Requant8 {
    let one = _mm256_set1_epi64x(1);
    let top = _mm256_set1_epi64x(i64::MIN);
    let shift_even = _mm256_and_si256(shift, _mm256_set1_epi64x(0xffff_ffff));
    let shift_odd = _mm256_srli_epi64(shift, 32);
    let narrow = _mm256_movemask_epi8(_mm256_cmpgt_epi32(_mm256_set1_epi32(31), shift)) == 0;
    let high = _mm256_movemask_epi8(_mm256_cmpgt_epi32(_mm256_set1_epi32(32), shift)) == 0;
    Requant8 {
        mult_even: mult,
        mult_odd: _mm256_srli_epi64(mult, 32),
        shift_even,
        shift_odd,
        round_even: _mm256_sllv_epi64(one, _mm256_sub_epi64(shift_even, one)),
        round_odd: _mm256_sllv_epi64(one, _mm256_sub_epi64(shift_odd, one)),
        offset_even: _mm256_srlv_epi64(top, shift_even),
        offset_odd: _mm256_srlv_epi64(top, shift_odd),
        narrow,
        high,
        shift_minus_32: _mm256_sub_epi32(shift, _mm256_set1_epi32(32)),
    }
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

/// The int8 output stage of 8 channels `c .. c + count` of the first `rows` pixel rows from
/// `p0` of the `vpmaddwd` tiles (dense and block-sparse): pair sums `lo` (lanes c0,c0 .. c3,c3)
/// and `hi` (c4 .. c7) folded in channel order, plus the bias, requantized and stored at
/// `y[(p0 + r) n + c ..]`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
pub unsafe fn requant_store8(
    lo: &[__m256i],
    hi: &[__m256i],
    rows: usize,
    rq: &Requant<'_>,
    c: usize,
    count: usize,
    p0: usize,
    n: usize,
    y: &mut [i8],
) {
    // SAFETY: AVX2 is this function's contract; stores go through bounds-checked slices.
    unsafe {
        let bias = load_i32x8(rq.bias, c, count);
        let k8 = load_requant8(rq, c, count);
        for r in 0..rows {
            // Pair sums in the order c0 c1 c4 c5 | c2 c3 c6 c7, put back in order.
            let s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0b11_01_10_00);
            let v = requant8(_mm256_add_epi32(s, bias), &k8, rq.output_zero_point, rq.act_min, rq.act_max);
            store_i8x8(v, &mut y[(p0 + r) * n + c..], count);
        }
    }
}

/// One step of an 8-channel `vpmaddwd` product: the 32 weight bytes `wv` (4 reduction steps of
/// channels 0-3 in the low half, 4-7 in the high half, channel-major) sign-extended and
/// multiplied with the 4 i16 inputs `av` (broadcast), the pair sums added to `acc` (`lo`, `hi`).
///
/// # Safety
/// AVX2 (inlined into a caller that enables it).
#[inline(always)]
pub unsafe fn madd_c8(acc: &mut (__m256i, __m256i), wv: __m256i, av: __m256i) {
    // SAFETY: the caller's contract.
    unsafe {
        acc.0 = _mm256_add_epi32(acc.0, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv)), av));
        acc.1 = _mm256_add_epi32(acc.1, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1)), av));
    }
}

/// The f32 output stage of 8 channels `c .. c + count` (`count <= 8`) of a fully-connected
/// layer: the `vpmaddwd` pair sums `lo` (channels 0-3) and `hi` (4-7) folded in channel order,
/// plus the bias, converted (`vcvtdq2ps` rounds like `as f32`), scaled and clamped in
/// [`F32Out::apply`]'s order, and the `count` values stored at `y[..count]`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn store_f32out8(lo: __m256i, hi: __m256i, out: &F32Out<'_>, c: usize, count: usize, y: &mut [f32]) {
    // SAFETY: AVX2 is this function's contract; the loads and stores go through local arrays.
    unsafe {
        let s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0b11_01_10_00);
        let acc = _mm256_add_epi32(s, load_i32x8(out.bias, c, count));
        let mut sc = [0f32; 8];
        sc[..count].copy_from_slice(&out.scale[c..c + count]);
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(sc.as_ptr()));
        let v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(out.lo)), _mm256_set1_ps(out.hi));
        let mut o = [0f32; 8];
        _mm256_storeu_ps(o.as_mut_ptr(), v);
        y[..count].copy_from_slice(&o[..count]);
    }
}

/// `requantize_to_i8` on 8 lanes: `clamp(round(acc * mult / 2^shift) + zp, act_min, act_max)`
/// with rounding half up, as i32 lanes.
///
/// Exact like the scalar form: `acc * mult` is formed in 64 bits (`vpmuldq` on even and odd
/// lanes), the rounding term `2^(shift-1)` added in 64 bits, and the arithmetic right shift
/// (which AVX2 lacks for 64-bit lanes) done as `((t + 2^63) >>> s) - 2^(63-s)`: adding 2^63
/// maps i64 order-preservingly onto u64, and `2^63` is divisible by `2^s`, so it is exactly
/// `floor(t / 2^s)`. The result is clamped to `[act_min - zp, act_max - zp]` before `zp` is
/// added, which equals the scalar's i32 saturation followed by the clamp. With every shift at
/// least 31 (multipliers below 1, the usual case) `|result| < 2^31`, so the clamp is done on
/// 32-bit lanes; otherwise on 64-bit lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub unsafe fn requant8(acc: __m256i, k: &Requant8, zp: i32, act_min: i32, act_max: i32) -> __m256i {
    if k.high {
        // floor(t / 2^s) = floor(floor(t / 2^32) / 2^(s - 32)): the high halves of the 64-bit
        // sums, then a 32-bit arithmetic shift; |t| < 2^62, so the high halves fit in i32.
        let even = _mm256_add_epi64(_mm256_mul_epi32(acc, k.mult_even), k.round_even);
        let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(acc, 32), k.mult_odd), k.round_odd);
        let hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0b1010_1010);
        let v = _mm256_srav_epi32(hi, k.shift_minus_32);
        let v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(act_min - zp)), _mm256_set1_epi32(act_max - zp));
        return _mm256_add_epi32(v, _mm256_set1_epi32(zp));
    }
    let top = _mm256_set1_epi64x(i64::MIN);
    let shift = |a: __m256i, m: __m256i, round: __m256i, s: __m256i, offset: __m256i| {
        let t = _mm256_add_epi64(_mm256_mul_epi32(a, m), round);
        _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(t, top), s), offset)
    };
    let even = shift(acc, k.mult_even, k.round_even, k.shift_even, k.offset_even);
    let odd = shift(_mm256_srli_epi64(acc, 32), k.mult_odd, k.round_odd, k.shift_odd, k.offset_odd);
    let v = if k.narrow {
        let v = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
        _mm256_min_epi32(_mm256_max_epi32(v, _mm256_set1_epi32(act_min - zp)), _mm256_set1_epi32(act_max - zp))
    } else {
        let (lo, hi) = (_mm256_set1_epi64x((act_min - zp) as i64), _mm256_set1_epi64x((act_max - zp) as i64));
        let clamp = |r: __m256i| {
            let r = _mm256_blendv_epi8(r, lo, _mm256_cmpgt_epi64(lo, r));
            _mm256_blendv_epi8(r, hi, _mm256_cmpgt_epi64(r, hi))
        };
        _mm256_blend_epi32(clamp(even), _mm256_slli_epi64(clamp(odd), 32), 0b1010_1010)
    };
    _mm256_add_epi32(v, _mm256_set1_epi32(zp))
}

/// [`Requant8`] for 16 lanes of a zmm register, with the output zero point: the high path
/// (every shift at least 32: the high halves of the 64-bit products, one 32-bit shift) or the
/// general one (64-bit arithmetic shifts, then a saturating narrowing to i32).
#[derive(Clone, Copy)]
pub struct Requant16 {
    high: bool,
    /// `high` with the zero point folded into the rounding term (`zp_after` zero): then
    /// [`requant16_folded`] gives [`requant16`]'s result without a test or the addition.
    folded: bool,
    mult_even: __m512i,
    mult_odd: __m512i,
    /// `2^(shift - 1) + zp 2^shift` when every shift is at most 55 (the zero point then comes
    /// out of the shift exactly, `floor((t + zp 2^s) / 2^s) = floor(t / 2^s) + zp`, and
    /// `|t + zp 2^s| < 2^62 + 2^62` cannot overflow); `2^(shift - 1)` otherwise.
    round_even: __m512i,
    round_odd: __m512i,
    /// The zero point still to add: 0 when folded into the rounding term.
    zp_after: __m512i,
    shift_minus_32: __m512i,
    /// The shifts of the even and odd lanes as 64-bit lanes (general path).
    shift_even: __m512i,
    shift_odd: __m512i,
}

/// The constants of [`requant16`] for 16 lanes: `mult[..16]`, `shift[..16]`, output zero point
/// `zp`.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F.
#[target_feature(enable = "avx2,avx512f")]
#[inline]
pub unsafe fn load_requant16(mult: &[i32], shift: &[i32], zp: i32) -> Requant16 {
    let (m, s) = (&mult[..16], &shift[..16]);
    // SAFETY: `m` and `s` hold 16 i32 each; the features are the caller's contract.
    unsafe {
        let (mv, sv) = (_mm512_loadu_si512(m.as_ptr().cast()), _mm512_loadu_si512(s.as_ptr().cast()));
        let one = _mm512_set1_epi64(1);
        let shift_even = _mm512_and_si512(sv, _mm512_set1_epi64(0xffff_ffff));
        let shift_odd = _mm512_srli_epi64(sv, 32);
        let fold = _mm512_cmpgt_epi32_mask(sv, _mm512_set1_epi32(55)) == 0;
        let round = |sh: __m512i| {
            let r = _mm512_sllv_epi64(one, _mm512_sub_epi64(sh, one));
            if fold {
                _mm512_add_epi64(r, _mm512_sllv_epi64(_mm512_set1_epi64(zp as i64), sh))
            } else {
                r
            }
        };
        let high = _mm512_cmplt_epi32_mask(sv, _mm512_set1_epi32(32)) == 0;
        Requant16 {
            high,
            folded: high && fold,
            mult_even: mv,
            mult_odd: _mm512_srli_epi64(mv, 32),
            round_even: round(shift_even),
            round_odd: round(shift_odd),
            zp_after: _mm512_set1_epi32(if fold { 0 } else { zp }),
            shift_minus_32: _mm512_sub_epi32(sv, _mm512_set1_epi32(32)),
            shift_even,
            shift_odd,
        }
    }
}

/// [`requant8`] on 16 lanes *without the activation clamp*: `round(acc * mult / 2^shift) + zp`,
/// exact, as i32 lanes that a saturating narrowing to i8 followed by the clamp to
/// `[act_min, act_max]` turns into exactly [`crate::quant::requantize_to_i8`] (saturation and
/// the clamp are both monotone, and the act range lies inside [-128, 127]). See
/// [`pack4_i8`] and [`clamp_i8x64`].
///
/// Always inlined (a call would pass the zmm operands through memory); the caller must enable
/// the features.
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F.
#[inline(always)]
pub unsafe fn requant16(acc: __m512i, k: &Requant16) -> __m512i {
    // SAFETY: the features are the caller's contract.
    unsafe {
        let even = _mm512_add_epi64(_mm512_mul_epi32(acc, k.mult_even), k.round_even);
        let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), k.mult_odd), k.round_odd);
        if k.high {
            // |t| < 2^63 and the high halves fit in i32 (see `Requant16::round_even`).
            // The high halves of both: odd 32-bit lanes of `even` and of `odd`, in one `vpermt2d`.
            let idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
            let hi = _mm512_permutex2var_epi32(even, idx, odd);
            return _mm512_add_epi32(_mm512_srav_epi32(hi, k.shift_minus_32), k.zp_after);
        }
        // A multiplier of 0.5 or more: 64-bit arithmetic shifts, saturated to i32 (`vpmovsqd`,
        // as `requantize` clamps), interleaved back. Clamping to +-2^30 before a zero point that
        // was not folded in keeps the sum exact and changes no int8 result.
        let e = _mm512_cvtsepi64_epi32(_mm512_srav_epi64(even, k.shift_even));
        let o = _mm512_cvtsepi64_epi32(_mm512_srav_epi64(odd, k.shift_odd));
        let idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let v = _mm512_permutex2var_epi32(_mm512_castsi256_si512(e), idx, _mm512_castsi256_si512(o));
        let v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(-(1 << 30))), _mm512_set1_epi32(1 << 30));
        _mm512_add_epi32(v, k.zp_after)
    }
}

impl Requant16 {
    /// Whether [`requant16_folded`] applies (every shift in 32..=55).
    #[inline(always)]
    pub fn folded(&self) -> bool {
        self.folded
    }
}

/// [`requant16`] for constants with [`Requant16::folded`]: its fast path alone, no test and no
/// zero-point addition (for loops that choose once per tile of channels).
///
/// # Safety
/// The CPU must support AVX2 and AVX-512 F; `k.folded()`.
#[inline(always)]
pub unsafe fn requant16_folded(acc: __m512i, k: &Requant16) -> __m512i {
    debug_assert!(k.folded);
    // SAFETY: the features are the caller's contract.
    unsafe {
        let even = _mm512_add_epi64(_mm512_mul_epi32(acc, k.mult_even), k.round_even);
        let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), k.mult_odd), k.round_odd);
        let idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        _mm512_srav_epi32(_mm512_permutex2var_epi32(even, idx, odd), k.shift_minus_32)
    }
}

/// The 4 bytes at `p` in every 32-bit lane, as one broadcast load (`vbroadcastss zmm, m32`).
/// `_mm512_set1_epi32(p.read_unaligned())` is compiled, in kernels built with AVX-512 VL, as a
/// scalar load and `vpbroadcastd` from a general register: on AMD cores that is extra vector-pipe
/// work per broadcast, in the loops whose vector pipes the `vpdpbusd`s already fill.
///
/// # Safety
/// AVX-512 F (inlined into a caller that enables it); `p` addresses 4 readable bytes.
#[inline(always)]
pub unsafe fn broadcast4_512(p: *const i8) -> __m512i {
    // SAFETY: the caller's contract; the bits are moved, never used as a float.
    unsafe { _mm512_castps_si512(_mm512_set1_ps(p.cast::<f32>().read_unaligned())) }
}

/// Four vectors of 16 i32 lanes to 64 bytes `q[0] | q[1] | q[2] | q[3]` with signed saturation
/// (`vpackssdw`, `vpacksswb`, which interleave 128-bit lanes, then one `vpermd` to undo that).
///
/// # Safety
/// The CPU must support AVX-512 F/BW (always inlined into a caller that enables them).
#[inline(always)]
pub unsafe fn pack4_i8(q: [__m512i; 4]) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe {
        let c = _mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3]));
        _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), c)
    }
}

/// Store part `i` of 64 packed bytes: the `W`-byte run (`W` = 16 or 32) at byte `W i`, e.g. one
/// output pixel's channels from [`pack4_i8`].
///
/// # Safety
/// The CPU must support AVX-512 F (always inlined into a caller that enables it); `out` must be
/// valid for `W` bytes and `W i < 64`.
#[inline(always)]
pub unsafe fn store_part<const W: usize>(bytes: __m512i, i: usize, out: *mut i8) {
    // SAFETY: the caller's contract.
    unsafe {
        if W == 32 {
            let half = if i == 0 { _mm512_castsi512_si256(bytes) } else { _mm512_extracti64x4_epi64(bytes, 1) };
            _mm256_storeu_si256(out.cast(), half);
        } else {
            let quarter = match i {
                0 => _mm512_castsi512_si128(bytes),
                1 => _mm512_extracti32x4_epi32(bytes, 1),
                2 => _mm512_extracti32x4_epi32(bytes, 2),
                _ => _mm512_extracti32x4_epi32(bytes, 3),
            };
            _mm_storeu_si128(out.cast(), quarter);
        }
    }
}

/// The activation clamp on 64 bytes.
///
/// # Safety
/// The CPU must support AVX-512 BW (always inlined into a caller that enables it).
#[inline(always)]
pub unsafe fn clamp_i8x64(v: __m512i, act_min: i32, act_max: i32) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe { _mm512_min_epi8(_mm512_max_epi8(v, _mm512_set1_epi8(act_min as i8)), _mm512_set1_epi8(act_max as i8)) }
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
    if len == 8 {
        let out = &mut out[..8];
        // SAFETY: `out` holds 8 bytes.
        unsafe { _mm_storel_epi64(out.as_mut_ptr().cast(), b) };
        return;
    }
    let bytes = _mm_cvtsi128_si64(b).to_le_bytes();
    for i in 0..len.min(8) {
        out[i] = bytes[i] as i8;
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
