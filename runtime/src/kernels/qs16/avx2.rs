//! A16W8 kernels for AVX2: `vpmaddwd` on int16 activations and sign-extended int8 weights.

use super::scalar::dw_pixel;
use super::MAX_SIMD_K;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::{im2col_row, is_pointwise, WeightMatrix, SIMD_PACK};
use crate::kernels::x86::{load_i32x8, load_requant8, requant8, requant8_constants};
use core::arch::x86_64::*;

/// Sum of the 8 i32 lanes (wrapping, like every sum of the family).
#[inline(always)]
unsafe fn hsum(v: __m256i) -> i32 {
    // SAFETY: AVX2 is the caller's contract.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

/// GEMM-convolution, one group, on row-major `[N][K]` weights (`wm.pack` `None`): tiles of 4 output pixels by 2
/// output channels, 16 reduction steps per `vpmaddwd`; the last `K % 16` steps and the
/// requantization per output in scalar code.
///
/// # Safety
/// The CPU must support AVX2; `K <= MAX_SIMD_K` (the registry's `fits`).
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_gemm_4x2_avx2(g: &ConvGeometry, x: &[i16], wm: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    let w = wm.data;
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    let pixels = g.batch * g.out_h * g.out_w;
    let direct = is_pointwise(g);
    let k16 = k / 16 * 16;
    let mut a = [[0i16; MAX_SIMD_K]; 4];
    let mut p0 = 0;
    while p0 < pixels {
        let rows = 4.min(pixels - p0);
        if !direct {
            for (r, row) in a.iter_mut().enumerate() {
                im2col_row(g, x, p0 + r.min(rows - 1), row, 0i16, |v| v);
            }
        }
        let xr: [&[i16]; 4] =
            core::array::from_fn(|r| if direct { &x[(p0 + r.min(rows - 1)) * k..][..k] } else { &a[r][..k] });
        let mut oc = 0;
        while oc < n {
            let nc = 2.min(n - oc);
            let w0 = &w[oc * k..][..k];
            let w1 = &w[(oc + nc - 1) * k..][..k];
            // SAFETY: AVX2 is this function's contract; every load reads 16 elements at
            // `kk < k16 <= k` of a `k`-element slice.
            unsafe {
                let mut acc = [[_mm256_setzero_si256(); 2]; 4];
                let mut kk = 0;
                while kk < k16 {
                    let wv0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w0.as_ptr().add(kk).cast()));
                    let wv1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w1.as_ptr().add(kk).cast()));
                    for r in 0..4 {
                        let xv = _mm256_loadu_si256(xr[r].as_ptr().add(kk).cast());
                        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(xv, wv0));
                        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(xv, wv1));
                    }
                    kk += 16;
                }
                for r in 0..rows {
                    for j in 0..nc {
                        let wr = if j == 0 { w0 } else { w1 };
                        let mut s = rq.bias[oc + j].wrapping_add(hsum(acc[r][j]));
                        for t in k16..k {
                            s = s.wrapping_add(xr[r][t] as i32 * wr[t] as i32);
                        }
                        y[(p0 + r) * n + oc + j] = rq.apply_i16(oc + j, s);
                    }
                }
            }
            oc += nc;
        }
        p0 += rows;
    }
}

/// Depthwise convolution, 16 channels per step: the weights of a channel block sign-extended and
/// interleaved in tap pairs once (`vpunpck[lh]wd`), so that per output pixel one `vpmaddwd`
/// adds two taps of 8 channels; taps in the padding read zeros (the zero point). The int32 sums
/// are requantized 8 lanes at a time ([`requant8`]) and packed back in channel order
/// (`vpackssdw` undoes the interleave per 128-bit lane). A channel count that is not a
/// multiple of 16 ends with a block overlapping the one before; fewer than 16 channels run
/// in scalar code; windows of at most [`super::MAX_DW_TAPS`] taps (the registry).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_dwconv_c16_avx2(g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    let blocks = c_all / 16;
    let taps = g.kernel_h * g.kernel_w;
    debug_assert!(taps <= super::MAX_DW_TAPS);
    let pairs = taps.div_ceil(2);
    // Per tap: its row and column offsets in the window, and its offset in the input.
    let (mut dh, mut dw, mut off) =
        ([0usize; super::MAX_DW_TAPS], [0usize; super::MAX_DW_TAPS], [0usize; super::MAX_DW_TAPS]);
    for t in 0..taps {
        (dh[t], dw[t]) = ((t / g.kernel_w) * g.dilation_h, (t % g.kernel_w) * g.dilation_w);
        off[t] = (dh[t] * g.in_w + dw[t]) * c_all;
    }
    // Channel order of the lanes after the interleave: [0-3, 8-11] and [4-7, 12-15].
    const LO: [usize; 8] = [0, 1, 2, 3, 8, 9, 10, 11];
    const HI: [usize; 8] = [4, 5, 6, 7, 12, 13, 14, 15];
    // Blocks of 16 channels; a channel count that is not a multiple of 16 (but at least 16)
    // ends with a block overlapping the one before (its outputs are computed twice, the same).
    let last = if !c_all.is_multiple_of(16) && blocks > 0 { Some(c_all - 16) } else { None };
    for c0 in (0..blocks).map(|b| b * 16).chain(last) {
        let lanes = |order: [usize; 8], v: &[i32]| -> [i32; 8] { order.map(|i| v[c0 + i]) };
        // SAFETY: AVX2 is this function's contract; loads from 8-element arrays and 16 weights at
        // `t * C + c0 + 16 <= KH KW C`.
        let (k_lo, k_hi, bias_lo, bias_hi, wp) = unsafe {
            let ld = |v: [i32; 8]| _mm256_loadu_si256(v.as_ptr().cast());
            let mut wp = [[_mm256_setzero_si256(); 2]; super::MAX_DW_TAPS.div_ceil(2)];
            let wt = |t: usize| {
                if t < taps {
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(w.as_ptr().add(t * c_all + c0).cast()))
                } else {
                    _mm256_setzero_si256()
                }
            };
            for (p, pair) in wp.iter_mut().enumerate().take(pairs) {
                let (wa, wb) = (wt(2 * p), wt(2 * p + 1));
                *pair = [_mm256_unpacklo_epi16(wa, wb), _mm256_unpackhi_epi16(wa, wb)];
            }
            (
                requant8_constants(ld(lanes(LO, rq.mult)), ld(lanes(LO, rq.shift))),
                requant8_constants(ld(lanes(HI, rq.mult)), ld(lanes(HI, rq.shift))),
                ld(lanes(LO, rq.bias)),
                ld(lanes(HI, rq.bias)),
                wp,
            )
        };
        for n in 0..g.batch {
            let xn = &x[n * plane..][..plane];
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    // The window's top-left input pixel (possibly in the padding); a window wholly
                    // inside the input reads every tap at its precomputed offset.
                    let ih0 = (oh * g.stride_h) as isize - g.pad_top as isize;
                    let iw0 = (ow * g.stride_w) as isize - g.pad_left as isize;
                    let inside = ih0 >= 0
                        && iw0 >= 0
                        && ih0 as usize + (g.kernel_h - 1) * g.dilation_h < g.in_h
                        && iw0 as usize + (g.kernel_w - 1) * g.dilation_w < g.in_w;
                    let base = (ih0 * g.in_w as isize + iw0) * c_all as isize + c0 as isize;
                    // The input of tap `t` at this pixel, or zeros in the padding (and past the
                    // last tap).
                    let tap = |t: usize| -> __m256i {
                        if t >= taps {
                            return _mm256_setzero_si256();
                        }
                        let (ih, iw) = (ih0 + dh[t] as isize, iw0 + dw[t] as isize);
                        if inside || (ih >= 0 && iw >= 0 && (ih as usize) < g.in_h && (iw as usize) < g.in_w) {
                            // SAFETY: the features; 16 i16 at channel `c0 + 16 <= C` of an
                            // input pixel inside `xn` (checked just above, or for the whole window).
                            unsafe { _mm256_loadu_si256(xn.as_ptr().offset(base + off[t] as isize).cast()) }
                        } else {
                            _mm256_setzero_si256()
                        }
                    };
                    // SAFETY: AVX2; the store writes 16 i16 inside `y`.
                    unsafe {
                        let (mut lo, mut hi) = (bias_lo, bias_hi);
                        for (p, pair) in wp.iter().enumerate().take(pairs) {
                            let (xa, xb) = (tap(2 * p), tap(2 * p + 1));
                            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), pair[0]));
                            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), pair[1]));
                        }
                        let (zp, lo_b, hi_b) = (rq.output_zero_point, rq.act_min, rq.act_max);
                        let v = _mm256_packs_epi32(
                            requant8(lo, &k_lo, zp, lo_b, hi_b),
                            requant8(hi, &k_hi, zp, lo_b, hi_b),
                        );
                        let at = ((n * g.out_h + oh) * g.out_w + ow) * c_all + c0;
                        let dst = &mut y[at..at + 16];
                        _mm256_storeu_si256(dst.as_mut_ptr().cast(), v);
                    }
                }
            }
        }
    }
    if blocks == 0 {
        for n in 0..g.batch {
            let xn = &x[n * plane..][..plane];
            for oh in 0..g.out_h {
                for ow in 0..g.out_w {
                    let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                    dw_pixel(g, xn, w, rq, oh, ow, 0..c_all, yo);
                }
            }
        }
    }
}

/// GEMM-convolution, one group, on [`SIMD_PACK`] panels (the int8 GEMM's layout): 4 output
/// pixels by 8 channels per tile, per step of 4 along K one 32-byte panel block sign-extended to
/// two i16 vectors and each pixel's 4 int16 inputs broadcast, `vpmaddwd` into i32 pairs folded
/// at the end (`vphaddd`); requantized 8 channels at a time ([`requant8`]) and narrowed to i16.
///
/// # Safety
/// The CPU must support AVX2; `w` packed with [`SIMD_PACK`], `K <= MAX_SIMD_K` (the registry).
#[target_feature(enable = "avx2")]
pub unsafe fn qs16_gemm_4x8c4_avx2(g: &ConvGeometry, x: &[i16], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    const MR: usize = 4;
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let mut a = [[0i16; MAX_SIMD_K]; MR];
    let mut p0 = 0;
    while p0 < pixels {
        let rows = MR.min(pixels - p0);
        let xr = super::gemm_rows(g, x, k, p0, rows, &mut a);
        for j in 0..n.div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let (c, count) = (j * 8, 8.min(n - j * 8));
            // SAFETY: AVX2; `kg * 32 + 32 <= panel.len()`, and every row addresses `kp` values
            // (`gemm_rows`); the stores go through bounds-checked slices.
            unsafe {
                let mut lo = [_mm256_setzero_si256(); MR];
                let mut hi = [_mm256_setzero_si256(); MR];
                for kg in 0..kp / 4 {
                    let wv = _mm256_loadu_si256(panel.as_ptr().add(kg * 32).cast());
                    let wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
                    let wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1));
                    for r in 0..MR {
                        let av = _mm256_set1_epi64x(xr[r].add(kg * 4).cast::<i64>().read_unaligned());
                        lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(wl, av));
                        hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(wh, av));
                    }
                }
                let bias = load_i32x8(rq.bias, c, count);
                let k8 = load_requant8(rq, c, count);
                for r in 0..rows {
                    // Pair sums in the order c0 c1 c4 c5 | c2 c3 c6 c7, put back in order.
                    let s = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0b11_01_10_00);
                    let v = requant8(_mm256_add_epi32(s, bias), &k8, rq.output_zero_point, rq.act_min, rq.act_max);
                    // Narrow (in range already) and keep the low 128 bits: c0..c7.
                    let h = _mm256_permute4x64_epi64(_mm256_packs_epi32(v, v), 0b00_00_10_00);
                    let mut out = [0i16; 8];
                    _mm_storeu_si128(out.as_mut_ptr().cast(), _mm256_castsi256_si128(h));
                    y[(p0 + r) * n + c..][..count].copy_from_slice(&out[..count]);
                }
            }
        }
        p0 += rows;
    }
}
