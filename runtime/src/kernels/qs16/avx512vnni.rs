//! A16W8 kernels for AVX-512 VNNI: `vpdpwssd` (int16 pairs multiplied and added into int32 in
//! one instruction) on int16 activations and sign-extended int8 weights; masked loads for the
//! reduction tail.

use super::scalar::dw_pixel;
use super::MAX_SIMD_K;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::{im2col_row, is_pointwise, WeightMatrix, SIMD_PACK};
use crate::kernels::x86::{load_requant16, requant16};
use core::arch::x86_64::*;

/// GEMM-convolution, one group, on row-major `[N][K]` weights (`wm.pack` `None`): tiles of 4 output pixels by 4
/// output channels, 32 reduction steps per `vpdpwssd`, the `K % 32` last ones with masked
/// (zero-filling) loads; requantization per output in scalar code.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI; `K <= MAX_SIMD_K` (the registry's `fits`).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn qs16_gemm_4x4_avx512vnni(
    g: &ConvGeometry,
    x: &[i16],
    wm: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i16],
) {
    let w = wm.data;
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    let pixels = g.batch * g.out_h * g.out_w;
    let direct = is_pointwise(g);
    let k32 = k / 32 * 32;
    let tail: __mmask32 = ((1u64 << (k - k32)) - 1) as u32;
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
            let nc = 4.min(n - oc);
            let wr: [&[i8]; 4] = core::array::from_fn(|j| &w[(oc + j.min(nc - 1)) * k..][..k]);
            // SAFETY: the features are this function's contract; full loads read 32 elements at
            // `kk < k32 <= k` of `k`-element slices, the masked ones only the `k - k32` left.
            unsafe {
                let mut acc = [[_mm512_setzero_si512(); 4]; 4];
                let mut kk = 0;
                while kk < k32 {
                    let wv: [__m512i; 4] = core::array::from_fn(|j| {
                        _mm512_cvtepi8_epi16(_mm256_loadu_si256(wr[j].as_ptr().add(kk).cast()))
                    });
                    for r in 0..4 {
                        let xv = _mm512_loadu_si512(xr[r].as_ptr().add(kk).cast());
                        for j in 0..4 {
                            acc[r][j] = _mm512_dpwssd_epi32(acc[r][j], xv, wv[j]);
                        }
                    }
                    kk += 32;
                }
                if tail != 0 {
                    let wv: [__m512i; 4] = core::array::from_fn(|j| {
                        _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(tail, wr[j].as_ptr().add(k32).cast()))
                    });
                    for r in 0..4 {
                        let xv = _mm512_maskz_loadu_epi16(tail, xr[r].as_ptr().add(k32).cast());
                        for j in 0..4 {
                            acc[r][j] = _mm512_dpwssd_epi32(acc[r][j], xv, wv[j]);
                        }
                    }
                }
                for r in 0..rows {
                    for j in 0..nc {
                        let s = rq.bias[oc + j].wrapping_add(_mm512_reduce_add_epi32(acc[r][j]));
                        y[(p0 + r) * n + oc + j] = rq.apply_i16(oc + j, s);
                    }
                }
            }
            oc += nc;
        }
        p0 += rows;
    }
}

/// Depthwise convolution, 32 channels per step: the weights of a channel block are sign-extended
/// and interleaved in tap pairs once (`vpunpck[lh]wd`), so that per output pixel one `vpdpwssd`
/// adds two taps of 16 channels; taps in the padding read zeros (the zero point). The int32 sums
/// are requantized 16 lanes at a time ([`requant16`]), clamped and packed back in channel order
/// (`vpackssdw` per 128-bit lane undoes the interleave). A channel count that is not a
/// multiple of 32 ends with a block overlapping the one before; fewer than 32 channels run
/// in scalar code; windows of at most [`super::MAX_DW_TAPS`] taps (the registry).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn qs16_dwconv_c32_avx512vnni(g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    let blocks = c_all / 32;
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
    // Channels of the lanes after the interleave: per 128-bit lane j, 8j + 0..4 (low) and
    // 8j + 4..8 (high).
    let order = |high: usize| -> [usize; 16] { core::array::from_fn(|i| (i / 4) * 8 + high * 4 + i % 4) };
    let (lo_order, hi_order) = (order(0), order(1));
    // Blocks of 32 channels; a channel count that is not a multiple of 32 (but at least 32)
    // ends with a block overlapping the one before (its outputs are computed twice, the same).
    let last = if !c_all.is_multiple_of(32) && blocks > 0 { Some(c_all - 32) } else { None };
    for c0 in (0..blocks).map(|b| b * 32).chain(last) {
        let lanes = |o: &[usize; 16], v: &[i32]| -> [i32; 16] { o.map(|i| v[c0 + i]) };
        // SAFETY: the features are this function's contract; loads from 16-element arrays and
        // 32 weights at `t * C + c0 + 32 <= KH KW C`.
        let (k_lo, k_hi, bias_lo, bias_hi, wp) = unsafe {
            let zp = rq.output_zero_point;
            let mut wp = [[_mm512_setzero_si512(); 2]; super::MAX_DW_TAPS.div_ceil(2)];
            let wt = |t: usize| {
                if t < taps {
                    _mm512_cvtepi8_epi16(_mm256_loadu_si256(w.as_ptr().add(t * c_all + c0).cast()))
                } else {
                    _mm512_setzero_si512()
                }
            };
            for (p, pair) in wp.iter_mut().enumerate().take(pairs) {
                let (wa, wb) = (wt(2 * p), wt(2 * p + 1));
                *pair = [_mm512_unpacklo_epi16(wa, wb), _mm512_unpackhi_epi16(wa, wb)];
            }
            (
                load_requant16(&lanes(&lo_order, rq.mult), &lanes(&lo_order, rq.shift), zp),
                load_requant16(&lanes(&hi_order, rq.mult), &lanes(&hi_order, rq.shift), zp),
                _mm512_loadu_si512(lanes(&lo_order, rq.bias).as_ptr().cast()),
                _mm512_loadu_si512(lanes(&hi_order, rq.bias).as_ptr().cast()),
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
                    let tap = |t: usize| -> __m512i {
                        if t >= taps {
                            return _mm512_setzero_si512();
                        }
                        let (ih, iw) = (ih0 + dh[t] as isize, iw0 + dw[t] as isize);
                        if inside || (ih >= 0 && iw >= 0 && (ih as usize) < g.in_h && (iw as usize) < g.in_w) {
                            // SAFETY: the features; 32 i16 at channel `c0 + 32 <= C` of an
                            // input pixel inside `xn` (checked just above, or for the whole window).
                            unsafe { _mm512_loadu_si512(xn.as_ptr().offset(base + off[t] as isize).cast()) }
                        } else {
                            _mm512_setzero_si512()
                        }
                    };
                    // SAFETY: the features; the store writes 32 i16 inside `y`.
                    unsafe {
                        let (mut lo, mut hi) = (bias_lo, bias_hi);
                        for (p, pair) in wp.iter().enumerate().take(pairs) {
                            let (xa, xb) = (tap(2 * p), tap(2 * p + 1));
                            lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(xa, xb), pair[0]);
                            hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(xa, xb), pair[1]);
                        }
                        let (amin, amax) = (_mm512_set1_epi32(rq.act_min), _mm512_set1_epi32(rq.act_max));
                        let clamp = |v: __m512i| _mm512_min_epi32(_mm512_max_epi32(v, amin), amax);
                        let v = _mm512_packs_epi32(clamp(requant16(lo, &k_lo)), clamp(requant16(hi, &k_hi)));
                        let at = ((n * g.out_h + oh) * g.out_w + ow) * c_all + c0;
                        let dst = &mut y[at..at + 32];
                        _mm512_storeu_si512(dst.as_mut_ptr().cast(), v);
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

/// GEMM-convolution, one group, on [`SIMD_PACK`] panels: 8 output pixels by 16 channels (two
/// panels) per tile. Per step of 4 along K each 32-byte panel block is sign-extended to 32 i16
/// (8 channels x 4) and each pixel's 4 int16 inputs broadcast as one 64-bit value, so one
/// `vpdpwssd` adds 2 reduction steps into each of the 16 lanes (a channel's even and odd pair);
/// the pairs are folded with two `vpermt2d`, requantized 16 channels at a time ([`requant16`]),
/// clamped, narrowed (`vpmovsdw`) and stored under a mask for a channel tail.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI; `w` packed with [`SIMD_PACK`], `K <=
/// MAX_SIMD_K` (the registry).
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn qs16_gemm_8x16c4_avx512vnni(
    g: &ConvGeometry,
    x: &[i16],
    w: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i16],
) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    const MR: usize = 8;
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let panels = n.div_ceil(8);
    let pixels = g.batch * g.out_h * g.out_w;
    let mut a = [[0i16; MAX_SIMD_K]; MR];
    let mut p0 = 0;
    while p0 < pixels {
        let rows = MR.min(pixels - p0);
        let xr = super::gemm_rows(g, x, k, p0, rows, &mut a);
        let mut j = 0;
        while j < panels {
            let pa = &w.data[j * 8 * kp..][..8 * kp];
            let pb = if j + 1 < panels { &w.data[(j + 1) * 8 * kp..][..8 * kp] } else { pa };
            let (c, count) = (j * 8, 16.min(n - j * 8));
            let (mut mult, mut shift, mut bias) = ([0i32; 16], [31i32; 16], [0i32; 16]);
            mult[..count].copy_from_slice(&rq.mult[c..c + count]);
            shift[..count].copy_from_slice(&rq.shift[c..c + count]);
            bias[..count].copy_from_slice(&rq.bias[c..c + count]);
            // SAFETY: the features; `kg * 32 + 32 <= 8 kp` for both panels, every row addresses
            // `kp` values (`gemm_rows`), the masked store writes `count` values inside `y`.
            unsafe {
                let mut acc = [[_mm512_setzero_si512(); 2]; MR];
                for kg in 0..kp / 4 {
                    let wa = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.as_ptr().add(kg * 32).cast()));
                    let wb = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.as_ptr().add(kg * 32).cast()));
                    for r in 0..MR {
                        let av = _mm512_set1_epi64(xr[r].add(kg * 4).cast::<i64>().read_unaligned());
                        acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], av, wa);
                        acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], av, wb);
                    }
                }
                let k16 = load_requant16(&mult, &shift, rq.output_zero_point);
                let bv = _mm512_loadu_si512(bias.as_ptr().cast());
                let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                let (amin, amax) = (_mm512_set1_epi32(rq.act_min), _mm512_set1_epi32(rq.act_max));
                let mask: __mmask16 = ((1u32 << count) - 1) as u16;
                for r in 0..rows {
                    let s = _mm512_add_epi32(
                        _mm512_permutex2var_epi32(acc[r][0], even, acc[r][1]),
                        _mm512_permutex2var_epi32(acc[r][0], odd, acc[r][1]),
                    );
                    let v = requant16(_mm512_add_epi32(s, bv), &k16);
                    let v = _mm512_min_epi32(_mm512_max_epi32(v, amin), amax);
                    let dst = &mut y[(p0 + r) * n + c..][..count];
                    _mm256_mask_storeu_epi16(dst.as_mut_ptr(), mask, _mm512_cvtsepi32_epi16(v));
                }
            }
            j += 2;
        }
        p0 += rows;
    }
}
