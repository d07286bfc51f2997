//! x86-64 int8 depthwise convolution with AVX-512 VNNI, 64 channels per step
//! (`qs8_dwconv_c64_avx512vnni`).
//!
//! `vpdpbusd` sums 4 consecutive byte products into each i32 lane, so four *kernel rows* of one
//! channel are laid side by side: the 64-byte input vectors of the kernel rows of one input
//! column are interleaved with two rounds of unpacks (bytes, then 16-bit pairs), giving four
//! vectors in which every i32 lane holds the taps of one channel down that column (up to 4; a
//! 3-row kernel pads the fourth with a zero weight, a 5-row kernel uses two groups). Such a
//! *column* serves every output pixel whose window covers it, so moving one output pixel to the
//! right only interleaves the `stride` new columns and keeps the others (a 3x3 stride-1 window
//! costs one column per pixel, not three). The weights get the same interleave once per channel
//! block, and each column x kernel column is four `vpdpbusd` (64 channels x 4 rows).
//!
//! The unpacks work within 128-bit lanes: accumulator `j`, lane `L`, element `e` holds channel
//! `16 L + 4 j + e`; the bias and requantization constants are permuted to match, and the two
//! saturating packs at the end (`vpackssdw`, `vpacksswb`) undo the permutation, leaving the 64
//! outputs in channel order.
//!
//! Activations are made unsigned by flipping the sign bit (`u = x + 128`), and taps in the
//! padding read the zero point (`zp + 128`), so `sum (x - zp) w = sum u w - (128 + zp) sum w` with
//! the sum over *all* taps: a padding tap contributes `(zp + 128) w`, which the constant
//! correction takes out again, exactly as the reference kernel's skipped tap contributes nothing.
//! Channel counts that are not a multiple of 64 use masked loads and stores for the last block,
//! except 32 channels at stride 1 (`drive_pairs`): there a 64-byte load at input pixel `iw` holds
//! the channels of pixels `iw` and `iw + 1`, which are the same tap of output pixels `ow` and
//! `ow + 1`, so one vector computes two output pixels.
//! 3x3 and 5x5 windows with horizontal stride 1 or 2 and no dilation run here; the others run
//! [`super::avx512::qs8_dwconv_c32_avx512`].

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{clamp_i8x64, load_requant16, requant16, requant16_folded, Requant16};
use core::arch::x86_64::*;

const BLOCK: usize = 64;

/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW and AVX-512 VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub unsafe fn qs8_dwconv_c64_avx512vnni(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::assert_lengths(g, x, w, rq, y);
    let dilated = g.dilation_h != 1 || g.dilation_w != 1;
    // SAFETY: the features are this function's contract; lengths asserted above.
    unsafe {
        match (g.kernel_h, g.kernel_w, g.stride_w, dilated) {
            (3, 3, 1, false) if g.in_c == 32 => drive_pairs::<3, 3, 1, 1, true>(g, x, w, rq, y, 0, 32),
            (5, 5, 1, false) if g.in_c == 32 => drive_pairs::<5, 5, 1, 2, true>(g, x, w, rq, y, 0, 32),
            (3, 3, 1, false) => drive::<3, 3, 1, 1>(g, x, w, rq, y),
            (3, 3, 2, false) => drive::<3, 3, 2, 1>(g, x, w, rq, y),
            (5, 5, 1, false) => drive::<5, 5, 1, 2>(g, x, w, rq, y),
            (5, 5, 2, false) => drive::<5, 5, 2, 2>(g, x, w, rq, y),
            _ => super::avx512::qs8_dwconv_c32_avx512(g, x, w, rq, y),
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

/// The interleaved column at input column `iw` of the rows `row_off` (`row_ok` bit `kh` set when
/// kernel row `kh` lies inside the input): `GC` groups of 4 rows, padding where outside.
///
/// # Safety
/// AVX-512 F/BW (inlined into a caller that enables them); for `0 <= iw < in_w` and every valid
/// row, `xn + row_off[kh] + iw * c_all` addresses the block's `mask` lanes inside the input.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn column<const KH: usize, const GC: usize>(
    xn: *const i8,
    row_off: &[isize; KH],
    row_ok: u32,
    iw: isize,
    in_w: usize,
    c_all: usize,
    mask: __mmask64,
    pad: __m512i,
) -> [[__m512i; 4]; GC] {
    if iw < 0 || iw as usize >= in_w {
        // Every tap of the column is padding; interleaving equal bytes changes nothing.
        return [[pad; 4]; GC];
    }
    // SAFETY: the caller's contract.
    unsafe {
        let flip = _mm512_set1_epi8(-128);
        let mut out = [[pad; 4]; GC];
        for (gc, o) in out.iter_mut().enumerate() {
            let mut t = [pad; 4];
            for (q, tv) in t.iter_mut().enumerate() {
                let kh = gc * 4 + q;
                if kh < KH && row_ok & (1 << kh) != 0 {
                    let p = xn.offset(row_off[kh] + iw * c_all as isize);
                    *tv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, p), flip);
                }
            }
            *o = interleave4(t);
        }
        out
    }
}

/// Interleaved weights of every kernel column (`load(kh, kw)` gives one tap's 64 bytes) and
/// their per-channel sums, in the accumulator layout.
///
/// # Safety
/// AVX-512 F/BW/VNNI (inlined into a caller that enables them).
#[inline(always)]
unsafe fn interleaved_weights<const KH: usize, const KW: usize, const GC: usize>(
    load: impl Fn(usize, usize) -> __m512i,
) -> ([[[__m512i; 4]; GC]; KW], [__m512i; 4]) {
    // SAFETY: the caller's contract.
    unsafe {
        let ones = _mm512_set1_epi8(1);
        let mut wcol = [[[_mm512_setzero_si512(); 4]; GC]; KW];
        let mut wsum = [_mm512_setzero_si512(); 4];
        for (kw, wk) in wcol.iter_mut().enumerate() {
            for (gc, wg) in wk.iter_mut().enumerate() {
                let mut t = [_mm512_setzero_si512(); 4];
                for (q, tv) in t.iter_mut().enumerate() {
                    if gc * 4 + q < KH {
                        *tv = load(gc * 4 + q, kw);
                    }
                }
                *wg = interleave4(t);
                for j in 0..4 {
                    wsum[j] = _mm512_dpbusd_epi32(wsum[j], ones, wg[j]);
                }
            }
        }
        (wcol, wsum)
    }
}

/// Corrected biases (`bias - (128 + zp) sum w`) and requantization constants of the 64 lanes,
/// in the accumulator layout: lane `slot(c)` takes channel `channel(c)`, or nothing (multiplier
/// 0, never stored) when that is `None`.
///
/// # Safety
/// AVX-512 F (inlined into a caller that enables it).
#[inline(always)]
unsafe fn block_constants(
    rq: &Requant<'_>,
    channel: impl Fn(usize) -> Option<usize>,
    wsum: &[__m512i; 4],
) -> ([__m512i; 4], [Requant16; 4]) {
    let (mut bias, mut mult, mut shift) = ([0i32; BLOCK], [0i32; BLOCK], [32i32; BLOCK]);
    for c in 0..BLOCK {
        if let Some(ch) = channel(c) {
            let s = slot(c);
            (bias[s], mult[s], shift[s]) = (rq.bias[ch], rq.mult[ch], rq.shift[ch]);
        }
    }
    // SAFETY: the caller's contract; the arrays hold 64 entries.
    unsafe {
        let off = _mm512_set1_epi32(128 + rq.input_zero_point);
        let b = core::array::from_fn(|j| {
            let raw = _mm512_loadu_si512(bias.as_ptr().add(16 * j).cast());
            _mm512_sub_epi32(raw, _mm512_mullo_epi32(off, wsum[j]))
        });
        let k = core::array::from_fn(|j| load_requant16(&mult[16 * j..], &shift[16 * j..], rq.output_zero_point));
        (b, k)
    }
}

/// Which kernel rows of output row `oh` lie inside the input (bit `kh`), and their byte offsets.
#[inline(always)]
fn kernel_rows<const KH: usize>(g: &ConvGeometry, oh: usize, row_bytes: usize) -> (u32, [isize; KH]) {
    let ih0 = (oh * g.stride_h) as isize - g.pad_top as isize;
    let mut ok = 0u32;
    let mut off = [0isize; KH];
    for (kh, o) in off.iter_mut().enumerate() {
        let ih = ih0 + kh as isize;
        if ih >= 0 && (ih as usize) < g.in_h {
            ok |= 1 << kh;
            *o = ih * row_bytes as isize;
        }
    }
    (ok, off)
}

/// One output vector: the window's columns times the weights from the corrected bias,
/// requantized (`folded`: every channel on [`requant16_folded`]'s path), narrowed back to channel
/// order and clamped.
///
/// # Safety
/// AVX-512 F/BW/VNNI (inlined into a caller that enables them).
#[inline(always)]
unsafe fn window_out<const KW: usize, const GC: usize>(
    cols: &[[[__m512i; 4]; GC]; KW],
    wcol: &[[[__m512i; 4]; GC]; KW],
    b: &[__m512i; 4],
    k: &[Requant16; 4],
    folded: bool,
    act: (i32, i32),
) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = *b;
        for kw in 0..KW {
            for gc in 0..GC {
                for j in 0..4 {
                    acc[j] = _mm512_dpbusd_epi32(acc[j], cols[kw][gc][j], wcol[kw][gc][j]);
                }
            }
        }
        let mut v = [_mm512_setzero_si512(); 4];
        for j in 0..4 {
            v[j] = if folded { requant16_folded(acc[j], &k[j]) } else { requant16(acc[j], &k[j]) };
        }
        let out = _mm512_packs_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
        clamp_i8x64(out, act.0, act.1)
    }
}

/// All channel blocks of a `KH x KW` window with horizontal stride `S` (`GC = ceil(KH / 4)`).
///
/// # Safety
/// AVX2, AVX-512 F/BW and AVX-512 VNNI; slice lengths as asserted by `assert_lengths`; no
/// dilation; the geometry's kernel and horizontal stride are `KH`, `KW`, `S`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
unsafe fn drive<const KH: usize, const KW: usize, const S: usize, const GC: usize>(
    g: &ConvGeometry,
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    debug_assert!(g.kernel_h == KH && g.kernel_w == KW && g.stride_w == S && KH <= 4 * GC);
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    let (lo, hi) = (rq.act_min, rq.act_max);
    // SAFETY (whole body): the CPU features are the caller's contract. Every load reads the
    // `len` valid lanes of a 64-byte window starting at channel `c0` of an input pixel inside
    // the plane (rows by `row_ok`, columns checked in `column`) or of a weight tap; masked-off
    // lanes are not accessed. Stores write the `len` channels of one output pixel.
    unsafe {
        let pad = _mm512_set1_epi8((rq.input_zero_point as i8) ^ -128);
        let mut c0 = 0;
        while c0 < c_all {
            let len = BLOCK.min(c_all - c0);
            if len <= 32 {
                // The last 32 channels or fewer: two output pixels per vector instead of a
                // half-empty one.
                if S == 1 && c_all == 32 {
                    drive_pairs::<KH, KW, S, GC, true>(g, x, w, rq, y, c0, len);
                } else {
                    drive_pairs::<KH, KW, S, GC, false>(g, x, w, rq, y, c0, len);
                }
                break;
            }
            let mask: __mmask64 = if len == BLOCK { !0 } else { (1u64 << len) - 1 };
            let (wcol, wsum) = interleaved_weights::<KH, KW, GC>(|kh, kw| {
                _mm512_maskz_loadu_epi8(mask, w.as_ptr().add((kh * KW + kw) * c_all + c0))
            });
            let (b, k) = block_constants(rq, |c| (c < len).then_some(c0 + c), &wsum);
            // Tested once per block; the pixel loops are unswitched on it.
            let folded = k.iter().all(Requant16::folded);
            for n in 0..g.batch {
                let xn = x.as_ptr().add(n * plane + c0);
                for oh in 0..g.out_h {
                    let (row_ok, row_off) = kernel_rows::<KH>(g, oh, g.in_w * c_all);
                    let yrow = y.as_mut_ptr().add(((n * g.out_h + oh) * g.out_w) * c_all + c0);
                    let mut iw0 = -(g.pad_left as isize);
                    let mut cols = [[[pad; 4]; GC]; KW];
                    for (kw, col) in cols.iter_mut().enumerate() {
                        *col = column::<KH, GC>(xn, &row_off, row_ok, iw0 + kw as isize, g.in_w, c_all, mask, pad);
                    }
                    for ow in 0..g.out_w {
                        let out = window_out(&cols, &wcol, &b, &k, folded, (lo, hi));
                        _mm512_mask_storeu_epi8(yrow.add(ow * c_all), mask, out);
                        // Slide the window by S columns: keep the overlap, interleave the rest.
                        iw0 += S as isize;
                        if ow + 1 < g.out_w {
                            for kw in 0..KW {
                                cols[kw] = if kw + S < KW {
                                    cols[kw + S]
                                } else {
                                    column::<KH, GC>(xn, &row_off, row_ok, iw0 + kw as isize, g.in_w, c_all, mask, pad)
                                };
                            }
                        }
                    }
                }
            }
            c0 += BLOCK;
        }
    }
}

/// The column at input column `iw` for pixel pairs: lanes 0-31 are channels `c0 .. c0 + len`
/// of pixel `iw`, lanes 32-63 the same channels of pixel `iw + S` (the same tap of the next
/// output pixel), each half padding where its pixel lies outside the row.
///
/// # Safety
/// AVX-512 F/BW (inlined into a caller that enables them); `xn` points at channel `c0` of the
/// image; for every valid row and every half inside `[0, in_w)`, `len` bytes at
/// `xn + row_off[kh] + pixel * c_all` lie inside the input; `ADJ` as in [`drive_pairs`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn column_pair<const KH: usize, const GC: usize, const S: usize, const ADJ: bool>(
    xn: *const i8,
    row_off: &[isize; KH],
    row_ok: u32,
    iw: isize,
    in_w: usize,
    c_all: usize,
    len: usize,
    raw_pad: __m512i,
) -> [[__m512i; 4]; GC] {
    let inside = |c: isize| c >= 0 && (c as usize) < in_w;
    let run = (1u64 << len) - 1;
    let (lo_lanes, hi_lanes): (__mmask64, __mmask64) =
        (if inside(iw) { run } else { 0 }, if inside(iw + S as isize) { run << 32 } else { 0 });
    // SAFETY: the caller's contract; masked-off lanes are not accessed, so an address may lie
    // outside the input (hence `wrapping_offset`).
    unsafe {
        let flip = _mm512_set1_epi8(-128);
        let pad = _mm512_xor_si512(raw_pad, flip);
        let mut out = [[pad; 4]; GC];
        for (gc, o) in out.iter_mut().enumerate() {
            let mut t = [pad; 4];
            for (q, tv) in t.iter_mut().enumerate() {
                let kh = gc * 4 + q;
                if kh < KH && row_ok & (1 << kh) != 0 && (lo_lanes | hi_lanes) != 0 {
                    let p = xn.wrapping_offset(row_off[kh] + iw * c_all as isize);
                    let v = if ADJ {
                        // The two pixels' channels are adjacent in memory: one load.
                        _mm512_mask_loadu_epi8(raw_pad, lo_lanes | hi_lanes, p)
                    } else {
                        // Lane 32 + c reads channel c of pixel `iw + S`.
                        let v = _mm512_mask_loadu_epi8(raw_pad, lo_lanes, p);
                        _mm512_mask_loadu_epi8(v, hi_lanes, p.wrapping_offset((S * c_all) as isize - 32))
                    };
                    *tv = _mm512_xor_si512(v, flip);
                }
            }
            *o = interleave4(t);
        }
        out
    }
}

/// Channels `c0 .. c0 + len` (`len <= 32`) with horizontal stride `S`: two output pixels per
/// vector (see the module documentation). `ADJ`: the layer has exactly 32 channels at stride 1,
/// so the two pixels' channels are adjacent in memory (one load per row, one store).
///
/// # Safety
/// As [`drive`], with `c0 + len <= in_c` and `len <= 32`; `ADJ` only when `S == 1` and
/// `in_c == 32`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn drive_pairs<const KH: usize, const KW: usize, const S: usize, const GC: usize, const ADJ: bool>(
    g: &ConvGeometry,
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    c0: usize,
    len: usize,
) {
    debug_assert!(g.kernel_h == KH && g.kernel_w == KW && g.stride_w == S && KH <= 4 * GC);
    debug_assert!(len <= 32 && c0 + len <= g.in_c);
    // Constants when `ADJ` (the whole layer is these 32 channels).
    let (c0, len, c_all) = if ADJ { (0, 32, 32) } else { (c0, len, g.in_c) };
    let plane = g.in_h * g.in_w * c_all;
    let (lo, hi) = (rq.act_min, rq.act_max);
    let run = (1u64 << len) - 1;
    // SAFETY (whole body): the CPU features are the caller's contract; loads as documented in
    // `column_pair`; weight loads read `len` bytes of a tap; stores write `len` channels of one
    // or two output pixels (masked; the second through an address 32 bytes before its channels).
    unsafe {
        let raw_pad = _mm512_set1_epi8(rq.input_zero_point as i8);
        // Each tap's weights of these channels in both halves.
        let (wcol, wsum) = interleaved_weights::<KH, KW, GC>(|kh, kw| {
            let full = _mm512_maskz_loadu_epi8(run, w.as_ptr().add((kh * KW + kw) * c_all + c0).cast());
            _mm512_inserti64x4(full, _mm512_castsi512_si256(full), 1)
        });
        let (b, k) = block_constants(rq, |c| (c % 32 < len).then_some(c0 + c % 32), &wsum);
        let folded = k.iter().all(Requant16::folded);
        for n in 0..g.batch {
            let xn = x.as_ptr().add(n * plane + c0);
            for oh in 0..g.out_h {
                let (row_ok, row_off) = kernel_rows::<KH>(g, oh, g.in_w * c_all);
                let yrow = y.as_mut_ptr().add(((n * g.out_h + oh) * g.out_w) * c_all + c0);
                let mut iw0 = -(g.pad_left as isize);
                let mut cols = [[[raw_pad; 4]; GC]; KW];
                for (kw, col) in cols.iter_mut().enumerate() {
                    *col = column_pair::<KH, GC, S, ADJ>(
                        xn,
                        &row_off,
                        row_ok,
                        iw0 + kw as isize,
                        g.in_w,
                        c_all,
                        len,
                        raw_pad,
                    );
                }
                let mut ow = 0;
                while ow < g.out_w {
                    let out = window_out(&cols, &wcol, &b, &k, folded, (lo, hi));
                    let both = ow + 1 < g.out_w;
                    if ADJ {
                        // Adjacent output pixels: one store.
                        _mm512_mask_storeu_epi8(yrow.add(ow * 32), if both { !0 } else { run }, out);
                    } else {
                        _mm512_mask_storeu_epi8(yrow.add(ow * c_all), run, out);
                        if both {
                            let second = yrow.wrapping_add((ow + 1) * c_all).wrapping_sub(32);
                            _mm512_mask_storeu_epi8(second, run << 32, out);
                        }
                    }
                    // Slide by two output pixels: 2 S input columns.
                    iw0 += 2 * S as isize;
                    ow += 2;
                    if ow < g.out_w {
                        for kw in 0..KW {
                            cols[kw] = if kw + 2 * S < KW {
                                cols[kw + 2 * S]
                            } else {
                                column_pair::<KH, GC, S, ADJ>(
                                    xn,
                                    &row_off,
                                    row_ok,
                                    iw0 + kw as isize,
                                    g.in_w,
                                    c_all,
                                    len,
                                    raw_pad,
                                )
                            };
                        }
                    }
                }
            }
        }
    }
}
