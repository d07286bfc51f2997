//! x86-64 int8 depthwise convolution with AVX-512 VNNI, 64 channels per step
//! (`qs8_dwconv_c64_avx512vnni`).
//!
//! `vpdpbusd` sums 4 consecutive byte products into each i32 lane, so four *taps* of one channel
//! are laid side by side: the 64-byte input vectors of taps `t .. t + 4` are interleaved with
//! two rounds of unpacks (bytes, then 16-bit pairs), giving four vectors in which every i32 lane
//! holds the 4 taps of one channel. The weights get the same interleave once per channel block,
//! so one `vpdpbusd` does 16 channels x 4 taps, and a 3x3 window is three groups of four taps
//! (the last padded with zero weights). The unpacks work within 128-bit lanes: accumulator `j`,
//! lane `L`, element `e` holds channel `16 L + 4 j + e`; the bias and requantization constants are
//! permuted to match, and the two saturating packs at the end (`vpackssdw`, `vpacksswb`) undo the
//! permutation, leaving the 64 outputs in channel order.
//!
//! Activations are made unsigned by flipping the sign bit (`u = x + 128`), and taps in the
//! padding read the zero point (`zp + 128`), so `sum (x - zp) w = sum u w - (128 + zp) sum w` with
//! the sum over *all* taps: a padding tap contributes `(zp + 128) w`, which the constant
//! correction takes out again, exactly as the reference kernel's skipped tap contributes nothing.
//! Channel counts that are not a multiple of 64 use masked loads and stores for the last block.
//! Windows of other sizes than 3x3 and 5x5, or with dilations, run
//! [`super::avx2::qs8_dwconv_c32_avx512`].

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{load_requant16, requant16, Requant16};
use core::arch::x86_64::*;

const BLOCK: usize = 64;

/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW and AVX-512 VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub unsafe fn qs8_dwconv_c64_avx512vnni(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let taps = g.kernel_h * g.kernel_w;
    super::assert_lengths(g, x, w, rq, y);
    // SAFETY: the features are this function's contract; lengths asserted above.
    unsafe {
        match taps {
            9 => drive::<9, 3>(g, x, w, rq, y),
            25 => drive::<25, 7>(g, x, w, rq, y),
            _ => super::avx2::qs8_dwconv_c32_avx512(g, x, w, rq, y),
        }
    }
}

/// Interleave four tap vectors so that i32 lane `e` of 128-bit lane `L` of result `j` holds the
/// four taps of channel `16 L + 4 j + e`.
///
/// # Safety
/// AVX-512 BW (always inlined into a caller that enables it).
#[inline(always)]
unsafe fn interleave4(t: [__m512i; 4]) -> [__m512i; 4] {
    // SAFETY: the caller's contract.
    unsafe {
    let a_lo = _mm512_unpacklo_epi8(t[0], t[1]);
    let a_hi = _mm512_unpackhi_epi8(t[0], t[1]);
    let b_lo = _mm512_unpacklo_epi8(t[2], t[3]);
    let b_hi = _mm512_unpackhi_epi8(t[2], t[3]);
    [
        _mm512_unpacklo_epi16(a_lo, b_lo),
        _mm512_unpackhi_epi16(a_lo, b_lo),
        _mm512_unpacklo_epi16(a_hi, b_hi),
        _mm512_unpackhi_epi16(a_hi, b_hi),
    ]
    }
}

/// Position of channel `c` (within a block) in the accumulator layout: `16 j + 4 L + e` for
/// `c = 16 L + 4 j + e`.
#[inline(always)]
fn slot(c: usize) -> usize {
    let (l, j, e) = (c / 16, (c / 4) % 4, c % 4);
    16 * j + 4 * l + e
}

/// The accumulators of one output pixel: `G` groups of 4 of the `T` taps, starting from the
/// corrected bias `b`. `FULL`: every tap is inside the input; otherwise `ok` has bit `t` set for
/// the taps that are (the others read the padding value).
///
/// # Safety
/// AVX-512 F/BW/VNNI (inlined into a caller that enables them); every tap with its bit set
/// (all of them when `FULL`) addresses `mask`'s lanes inside the input at `xn + base + off[t]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pixel<const T: usize, const G: usize, const FULL: bool>(
    xn: *const i8,
    base: isize,
    off: &[isize; T],
    ok: u32,
    mask: __mmask64,
    pad: __m512i,
    wi: &[[__m512i; 4]; G],
    b: &[__m512i; 4],
) -> [__m512i; 4] {
    // SAFETY: the caller's contract.
    unsafe {
        let flip = _mm512_set1_epi8(-128);
        let mut acc = *b;
        for (gi, wg) in wi.iter().enumerate() {
            let mut t = [_mm512_setzero_si512(); 4];
            for (q, tv) in t.iter_mut().enumerate() {
                let tap = gi * 4 + q;
                if tap < T {
                    *tv = if FULL || ok & (1 << tap) != 0 {
                        _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, xn.offset(base + off[tap])), flip)
                    } else {
                        pad
                    };
                }
            }
            let u = interleave4(t);
            for j in 0..4 {
                acc[j] = _mm512_dpbusd_epi32(acc[j], u[j], wg[j]);
            }
        }
        acc
    }
}

/// All channel blocks of a window of `T` taps (`G = ceil(T / 4)` groups).
///
/// # Safety
/// AVX2, AVX-512 F/BW and AVX-512 VNNI; slice lengths as asserted by `assert_lengths`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
unsafe fn drive<const T: usize, const G: usize>(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    if g.dilation_h != 1 || g.dilation_w != 1 {
        // SAFETY: same features.
        return unsafe { super::avx2::qs8_dwconv_c32_avx512(g, x, w, rq, y) };
    }
    let c_all = g.in_c;
    let taps = T;
    debug_assert!(g.kernel_h * g.kernel_w == T && T <= 4 * G && T < 32);
    // Input offset of each tap relative to the window's top-left corner.
    let mut tap_off = [0isize; T];
    for (t, off) in tap_off.iter_mut().enumerate() {
        *off = (((t / g.kernel_w) * g.in_w + t % g.kernel_w) * c_all) as isize;
    }
    let all_taps: u32 = (1u32 << T) - 1;
    let plane = g.in_h * g.in_w * c_all;
    let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
    let offset = 128 + rq.input_zero_point;
    // SAFETY (whole body): the CPU features are the caller's contract. Every load reads the
    // `len` valid lanes of a 64-byte window starting at channel `c0` of an input pixel that
    // lies inside the plane (checked by the tap masks) or of a weight tap `< taps`; masked-off
    // lanes are not accessed. Stores write the `len` channels of one output pixel.
    unsafe {
        let pad = _mm512_set1_epi8((rq.input_zero_point as i8) ^ -128);
        let mut c0 = 0;
        while c0 < c_all {
            let len = BLOCK.min(c_all - c0);
            let mask: __mmask64 = if len == BLOCK { !0 } else { (1u64 << len) - 1 };
            // Interleaved weights, and their per-channel sums in the accumulator layout.
            let mut wi = [[_mm512_setzero_si512(); 4]; G];
            let mut wsum = [_mm512_setzero_si512(); 4];
            let ones = _mm512_set1_epi8(1);
            for (gi, wg) in wi.iter_mut().enumerate() {
                let t: [__m512i; 4] = core::array::from_fn(|q| {
                    let tap = gi * 4 + q;
                    if tap < taps {
                        _mm512_maskz_loadu_epi8(mask, w.as_ptr().add(tap * c_all + c0))
                    } else {
                        _mm512_setzero_si512()
                    }
                });
                *wg = interleave4(t);
                for j in 0..4 {
                    wsum[j] = _mm512_dpbusd_epi32(wsum[j], ones, wg[j]);
                }
            }
            // Bias and requantization constants permuted into the accumulator layout; lanes
            // past `len` get multiplier 0 (never stored).
            let (mut bias, mut mult, mut shift) = ([0i32; BLOCK], [0i32; BLOCK], [32i32; BLOCK]);
            for c in 0..len {
                let s = slot(c);
                bias[s] = rq.bias[c0 + c];
                mult[s] = rq.mult[c0 + c];
                shift[s] = rq.shift[c0 + c];
            }
            let off = _mm512_set1_epi32(offset);
            let b: [__m512i; 4] = core::array::from_fn(|j| {
                let raw = _mm512_loadu_si512(bias.as_ptr().add(16 * j).cast());
                _mm512_sub_epi32(raw, _mm512_mullo_epi32(off, wsum[j]))
            });
            let k: [Requant16; 4] = core::array::from_fn(|j| load_requant16(&mult[16 * j..], &shift[16 * j..]));
            for n in 0..g.batch {
                let xn = x.as_ptr().add(n * plane + c0);
                for oh in 0..g.out_h {
                    let ih0 = (oh * g.stride_h) as isize - g.pad_top as isize;
                    let mut row_ok = 0u32;
                    for t in 0..taps {
                        let ih = ih0 + (t / g.kernel_w) as isize;
                        if ih >= 0 && (ih as usize) < g.in_h {
                            row_ok |= 1 << t;
                        }
                    }
                    let yrow = y.as_mut_ptr().add(((n * g.out_h + oh) * g.out_w) * c_all + c0);
                    for ow in 0..g.out_w {
                        let iw0 = (ow * g.stride_w) as isize - g.pad_left as isize;
                        let mut ok = row_ok;
                        if iw0 < 0 || iw0 as usize + g.kernel_w > g.in_w {
                            for t in 0..taps {
                                let iw = iw0 + (t % g.kernel_w) as isize;
                                if iw < 0 || iw as usize >= g.in_w {
                                    ok &= !(1 << t);
                                }
                            }
                        }
                        let base = (ih0 * g.in_w as isize + iw0) * c_all as isize;
                        let acc = if ok == all_taps {
                            pixel::<T, G, true>(xn, base, &tap_off, ok, mask, pad, &wi, &b)
                        } else {
                            pixel::<T, G, false>(xn, base, &tap_off, ok, mask, pad, &wi, &b)
                        };
                        let mut v = [_mm512_setzero_si512(); 4];
                        for j in 0..4 {
                            v[j] = requant16(acc[j], &k[j], zo, lo, hi);
                        }
                        let out = _mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
                        _mm512_mask_storeu_epi8(yrow.add(ow * c_all), mask, out);
                    }
                }
            }
            c0 += BLOCK;
        }
    }
}
