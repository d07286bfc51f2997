//! A16W8 kernels for aarch64 NEON: `smlal` / `smlal2` (int16 x int16 multiplied and added into
//! int32 lanes) on int16 activations and sign-extended (`sxtl`) int8 weights.

use super::scalar::dw_pixel;
use super::MAX_SIMD_K;
use crate::kernels::arm::{load_requant4, requant4};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::{im2col_row, is_pointwise, WeightMatrix, SIMD_PACK};
use core::arch::aarch64::*;

/// GEMM-convolution, one group, on row-major `[N][K]` weights (`wm.pack` `None`): tiles of 4 output pixels by 2
/// output channels, 8 reduction steps per `smlal` + `smlal2` pair; the last `K % 8` steps and
/// the requantization per output in scalar code.
///
/// # Safety
/// NEON (aarch64 baseline); `K <= MAX_SIMD_K` (the registry's `fits`).
#[target_feature(enable = "neon")]
pub unsafe fn qs16_gemm_4x2_neon(g: &ConvGeometry, x: &[i16], wm: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    let w = wm.data;
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    let pixels = g.batch * g.out_h * g.out_w;
    let direct = is_pointwise(g);
    let k8 = k / 8 * 8;
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
            // SAFETY: NEON; every load reads 8 elements at `kk < k8 <= k` of a `k`-element slice.
            unsafe {
                let mut acc = [[vdupq_n_s32(0); 2]; 4];
                let mut kk = 0;
                while kk < k8 {
                    let wv0 = vmovl_s8(vld1_s8(w0.as_ptr().add(kk)));
                    let wv1 = vmovl_s8(vld1_s8(w1.as_ptr().add(kk)));
                    for r in 0..4 {
                        let xv = vld1q_s16(xr[r].as_ptr().add(kk));
                        acc[r][0] = vmlal_high_s16(vmlal_s16(acc[r][0], vget_low_s16(xv), vget_low_s16(wv0)), xv, wv0);
                        acc[r][1] = vmlal_high_s16(vmlal_s16(acc[r][1], vget_low_s16(xv), vget_low_s16(wv1)), xv, wv1);
                    }
                    kk += 8;
                }
                for r in 0..rows {
                    for j in 0..nc {
                        let wr = if j == 0 { w0 } else { w1 };
                        let mut s = rq.bias[oc + j].wrapping_add(vaddvq_s32(acc[r][j]));
                        for t in k8..k {
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

/// Depthwise convolution, 8 channels per step: `smlal` / `smlal2` per tap into two int32x4
/// accumulators, requantized ([`requant4`]) and narrowed (`xtn`) to int16. A channel count that
/// is not a multiple of 8 ends with a block overlapping the one before; fewer than 8 channels run
/// in scalar code.
///
/// # Safety
/// NEON (aarch64 baseline).
#[target_feature(enable = "neon")]
pub unsafe fn qs16_dwconv_c8_neon(g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    let blocks = c_all / 8;
    let (zp, amin, amax) = (rq.output_zero_point, rq.act_min, rq.act_max);
    for n in 0..g.batch {
        let xn = &x[n * plane..][..plane];
        for oh in 0..g.out_h {
            // A channel count that is not a multiple of 8 (but at least 8) ends with a block
            // overlapping the one before (its outputs are computed twice, the same).
            let last = if !c_all.is_multiple_of(8) && blocks > 0 { Some(c_all - 8) } else { None };
            for c0 in (0..blocks).map(|b| b * 8).chain(last) {
                // SAFETY: NEON; `load_requant4` reads 4 channels from `c0 + 4 <= C`, the bias
                // loads 4 i32 each from `rq.bias[c0..c0 + 8]`.
                let (k_lo, k_hi, bias_lo, bias_hi) = unsafe {
                    (
                        load_requant4(rq, c0, 4),
                        load_requant4(rq, c0 + 4, 4),
                        vld1q_s32(rq.bias[c0..c0 + 4].as_ptr()),
                        vld1q_s32(rq.bias[c0 + 4..c0 + 8].as_ptr()),
                    )
                };
                for ow in 0..g.out_w {
                    // SAFETY: NEON; every load reads 8 i16 / 8 i8 at channel `c0 + 8 <= C` of a tap
                    // row inside `xn` / `w`, the store 8 i16 inside `y`.
                    unsafe {
                        let (mut lo, mut hi) = (bias_lo, bias_hi);
                        for kh in 0..g.kernel_h {
                            let Some(ih) = g.in_row(oh, kh) else { continue };
                            for kw in 0..g.kernel_w {
                                let Some(iw) = g.in_col(ow, kw) else { continue };
                                let xv = vld1q_s16(xn.as_ptr().add((ih * g.in_w + iw) * c_all + c0));
                                let wv = vmovl_s8(vld1_s8(w.as_ptr().add((kh * g.kernel_w + kw) * c_all + c0)));
                                lo = vmlal_s16(lo, vget_low_s16(xv), vget_low_s16(wv));
                                hi = vmlal_high_s16(hi, xv, wv);
                            }
                        }
                        let v = vcombine_s16(
                            vmovn_s32(requant4(lo, &k_lo, zp, amin, amax)),
                            vmovn_s32(requant4(hi, &k_hi, zp, amin, amax)),
                        );
                        let at = ((n * g.out_h + oh) * g.out_w + ow) * c_all + c0;
                        let dst = &mut y[at..at + 8];
                        vst1q_s16(dst.as_mut_ptr(), v);
                    }
                }
            }
            if blocks == 0 {
                for ow in 0..g.out_w {
                    let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                    dw_pixel(g, xn, w, rq, oh, ow, 0..c_all, yo);
                }
            }
        }
    }
}

/// GEMM-convolution, one group, on [`SIMD_PACK`] panels: 2 output pixels by 8 channels per
/// tile. Per step of 4 along K the 32-byte panel block (8 channels x 4) is sign-extended
/// (`sxtl`, `sxtl2`) and each channel's 4 weights multiplied with the pixel's 4 int16 inputs
/// (`smlal` / `smlal2`) into one accumulator per channel; pairwise adds (`addp`) fold each to its
/// sum, 4 channels per vector, requantized ([`requant4`]) and narrowed to int16.
///
/// # Safety
/// NEON (aarch64 baseline); `w` packed with [`SIMD_PACK`], `K <= MAX_SIMD_K` (the registry).
#[target_feature(enable = "neon")]
pub unsafe fn qs16_gemm_2x8c4_neon(g: &ConvGeometry, x: &[i16], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    const MR: usize = 2;
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let mut a = [[0i16; MAX_SIMD_K]; MR];
    let (zp, amin, amax) = (rq.output_zero_point, rq.act_min, rq.act_max);
    let mut p0 = 0;
    while p0 < pixels {
        let rows = MR.min(pixels - p0);
        let xr = super::gemm_rows(g, x, k, p0, rows, &mut a);
        for j in 0..n.div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let (c, count) = (j * 8, 8.min(n - j * 8));
            // SAFETY: NEON; `kg * 32 + 32 <= panel.len()`, every row addresses `kp` values
            // (`gemm_rows`); the stores go through bounds-checked slices.
            unsafe {
                let mut acc = [[vdupq_n_s32(0); 8]; MR];
                for kg in 0..kp / 4 {
                    let b0 = vld1q_s8(panel.as_ptr().add(kg * 32));
                    let b1 = vld1q_s8(panel.as_ptr().add(kg * 32 + 16));
                    // Channels (0, 1), (2, 3), (4, 5), (6, 7): 4 weights each.
                    let wv =
                        [vmovl_s8(vget_low_s8(b0)), vmovl_high_s8(b0), vmovl_s8(vget_low_s8(b1)), vmovl_high_s8(b1)];
                    for r in 0..MR {
                        let xv = vld1_s16(xr[r].add(kg * 4));
                        let xx = vcombine_s16(xv, xv);
                        for (q, &wq) in wv.iter().enumerate() {
                            acc[r][2 * q] = vmlal_s16(acc[r][2 * q], vget_low_s16(wq), xv);
                            acc[r][2 * q + 1] = vmlal_high_s16(acc[r][2 * q + 1], wq, xx);
                        }
                    }
                }
                let k_lo = load_requant4(rq, c, count.min(4));
                let k_hi = if count > 4 { load_requant4(rq, c + 4, count - 4) } else { k_lo };
                let mut bias = [0i32; 8];
                bias[..count].copy_from_slice(&rq.bias[c..c + count]);
                let (b_lo, b_hi) = (vld1q_s32(bias.as_ptr()), vld1q_s32(bias.as_ptr().add(4)));
                for r in 0..rows {
                    let s = &acc[r];
                    let lo = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                    let hi = vpaddq_s32(vpaddq_s32(s[4], s[5]), vpaddq_s32(s[6], s[7]));
                    let v = vcombine_s16(
                        vmovn_s32(requant4(vaddq_s32(lo, b_lo), &k_lo, zp, amin, amax)),
                        vmovn_s32(requant4(vaddq_s32(hi, b_hi), &k_hi, zp, amin, amax)),
                    );
                    let mut out = [0i16; 8];
                    vst1q_s16(out.as_mut_ptr(), v);
                    y[(p0 + r) * n + c..][..count].copy_from_slice(&out[..count]);
                }
            }
        }
        p0 += rows;
    }
}
