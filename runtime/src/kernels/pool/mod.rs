//! Pooling kernels over NHWC tensors. Int8 max and average pooling keep the input's quantization;
//! global average pooling requantizes to its own.
//!
//! The int8 kernels of the SIMD paths (`avx2.rs`, `neon.rs`): NHWC, so each output pixel's
//! channels are one contiguous run, taken a vector at a time (the last partial vector in scalar).
//! Max is exact by nature; the global average sums in i32 lanes and requantizes with the same
//! fixed-point arithmetic as the scalar kernel.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::conv::ConvGeometry;
use crate::quant::{div_round, requantize_to_i8};

pub fn max_pool<T: Copy + PartialOrd>(g: &ConvGeometry, x: &[T], y: &mut [T], lowest: T) {
    let c_all = g.in_c;
    for n in 0..g.batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                yo.fill(lowest);
                for kh in 0..g.kernel_h {
                    let Some(ih) = g.in_row(oh, kh) else { continue };
                    for kw in 0..g.kernel_w {
                        let Some(iw) = g.in_col(ow, kw) else { continue };
                        let xs = &x[((n * g.in_h + ih) * g.in_w + iw) * c_all..][..c_all];
                        for (o, &v) in yo.iter_mut().zip(xs) {
                            if v > *o {
                                *o = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Number of window taps inside the input, and the divisor. With `count_include_pad` the divisor
/// is the whole window: ceil mode is not supported, so every tap lies within the padded input.
fn window_count(g: &ConvGeometry, oh: usize, ow: usize, count_include_pad: bool) -> (usize, usize) {
    let rows = (0..g.kernel_h).filter(|&k| g.in_row(oh, k).is_some()).count();
    let cols = (0..g.kernel_w).filter(|&k| g.in_col(ow, k).is_some()).count();
    let valid = rows * cols;
    (valid, if count_include_pad { g.kernel_h * g.kernel_w } else { valid })
}

pub fn f32_avg_pool(g: &ConvGeometry, x: &[f32], y: &mut [f32], count_include_pad: bool) {
    let c_all = g.in_c;
    for n in 0..g.batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                yo.fill(0.0);
                for kh in 0..g.kernel_h {
                    let Some(ih) = g.in_row(oh, kh) else { continue };
                    for kw in 0..g.kernel_w {
                        let Some(iw) = g.in_col(ow, kw) else { continue };
                        let xs = &x[((n * g.in_h + ih) * g.in_w + iw) * c_all..][..c_all];
                        for (o, &v) in yo.iter_mut().zip(xs) {
                            *o += v;
                        }
                    }
                }
                let (_, div) = window_count(g, oh, ow, count_include_pad);
                let inv = 1.0 / div.max(1) as f32;
                for o in yo.iter_mut() {
                    *o *= inv;
                }
            }
        }
    }
}

/// Int8 average pooling with the input's quantization: `zp + div_round(sum(q - zp), divisor)`.
/// Padded taps (when counted) contribute the zero point, i.e. real zero.
pub fn qs8_avg_pool(g: &ConvGeometry, x: &[i8], y: &mut [i8], zp: i32, count_include_pad: bool) {
    let c_all = g.in_c;
    for n in 0..g.batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (valid, div) = window_count(g, oh, ow, count_include_pad);
                for c in 0..c_all {
                    let mut sum = 0i32;
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            sum += x[((n * g.in_h + ih) * g.in_w + iw) * c_all + c] as i32;
                        }
                    }
                    let centered = sum - valid as i32 * zp;
                    y[((n * g.out_h + oh) * g.out_w + ow) * c_all + c] =
                        (div_round(centered, div.max(1) as i32) + zp).clamp(-128, 127) as i8;
                }
            }
        }
    }
}

/// An int8 global average pooling: `batch x hw x channels` (NHWC) in, `batch x channels` out,
/// `out = zp_out + requantize(sum(q - zp_in), mult, shift)` where the multiplier already includes
/// `1 / hw`.
#[derive(Clone, Copy, Debug)]
pub struct GlobalPool {
    pub batch: usize,
    pub hw: usize,
    pub channels: usize,
    pub zp_in: i32,
    pub zp_out: i32,
    pub mult: i32,
    pub shift: i32,
}

/// Global average pooling (see [`GlobalPool`]).
pub fn qs8_global_avg_pool(p: &GlobalPool, x: &[i8], y: &mut [i8]) {
    let GlobalPool { batch, hw, channels: c_all, zp_in, zp_out, mult, shift } = *p;
    const BLOCK: usize = 64;
    for n in 0..batch {
        let xn = &x[n * hw * c_all..][..hw * c_all];
        let mut c0 = 0;
        while c0 < c_all {
            let len = BLOCK.min(c_all - c0);
            let mut acc = [0i32; BLOCK];
            for p in 0..hw {
                for (a, &v) in acc[..len].iter_mut().zip(&xn[p * c_all + c0..][..len]) {
                    *a += v as i32;
                }
            }
            for c in 0..len {
                let centered = acc[c] - hw as i32 * zp_in;
                y[n * c_all + c0 + c] = requantize_to_i8(centered, mult, shift, zp_out, -128, 127);
            }
            c0 += len;
        }
    }
}

/// Int16 global average pooling (format 1.6; symmetric codes): the i32 sum of each channel over
/// the window (at most 2^16 positions, exact), requantized to int16.
pub fn qs16_global_avg_pool(p: &GlobalPool, x: &[i16], y: &mut [i16]) {
    let GlobalPool { batch, hw, channels: c_all, zp_out, mult, shift, .. } = *p;
    for n in 0..batch {
        let xn = &x[n * hw * c_all..][..hw * c_all];
        let yn = &mut y[n * c_all..][..c_all];
        let mut acc = [0i32; 64];
        for c0 in (0..c_all).step_by(64) {
            let len = 64.min(c_all - c0);
            acc[..len].fill(0);
            for p in 0..hw {
                for (a, &v) in acc[..len].iter_mut().zip(&xn[p * c_all + c0..][..len]) {
                    *a += v as i32;
                }
            }
            for (o, &a) in yn[c0..c0 + len].iter_mut().zip(&acc[..len]) {
                *o = global_avg_code16(a, mult, shift, zp_out);
            }
        }
    }
}

/// An int16 global average's output code from its channel's sum.
#[inline(always)]
fn global_avg_code16(sum: i32, mult: i32, shift: i32, zp_out: i32) -> i16 {
    let v = crate::quant::requantize(sum, mult, shift).saturating_add(zp_out);
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// The channels from `from` on of [`qs16_global_avg_pool`] (the SIMD kernels' last partial
/// vector).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn global_avg_tail16(p: &GlobalPool, xn: &[i16], yn: &mut [i16], from: usize) {
    let c_all = p.channels;
    for (ch, out) in yn.iter_mut().enumerate().skip(from) {
        let sum: i32 = (0..p.hw).map(|q| xn[q * c_all + ch] as i32).sum();
        *out = global_avg_code16(sum, p.mult, p.shift, p.zp_out);
    }
}

pub fn f32_global_avg_pool(batch: usize, hw: usize, c_all: usize, x: &[f32], y: &mut [f32]) {
    for n in 0..batch {
        let yo = &mut y[n * c_all..][..c_all];
        yo.fill(0.0);
        for p in 0..hw {
            for (o, &v) in yo.iter_mut().zip(&x[(n * hw + p) * c_all..][..c_all]) {
                *o += v;
            }
        }
        let inv = 1.0 / hw as f32;
        for o in yo.iter_mut() {
            *o *= inv;
        }
    }
}

/// The loop nest of the SIMD int8 max pools: for every output pixel, `block(out, c, taps)` fills
/// the `lanes` channels from `c` (`taps(f)` calls `f` once per window row inside the input);
/// the last partial vector runs in scalar.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn max_pool_blocks(
    g: &ConvGeometry,
    x: &[i8],
    y: &mut [i8],
    lanes: usize,
    block: impl Fn(&mut [i8], usize, &dyn Fn(&mut dyn FnMut(&[i8]))),
) {
    let c_all = g.in_c;
    let vec = c_all / lanes * lanes;
    for n in 0..g.batch {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                let taps = |f: &mut dyn FnMut(&[i8])| {
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            f(&x[((n * g.in_h + ih) * g.in_w + iw) * c_all..][..c_all]);
                        }
                    }
                };
                for c in (0..vec).step_by(lanes) {
                    block(yo, c, &taps);
                }
                if vec < c_all {
                    yo[vec..].fill(i8::MIN);
                    taps(&mut |xs| {
                        for (o, &v) in yo[vec..].iter_mut().zip(&xs[vec..]) {
                            *o = (*o).max(v);
                        }
                    });
                }
            }
        }
    }
}

/// The channels `from ..` of one image of [`qs8_global_avg_pool`], in scalar (the SIMD kernels'
/// last partial vector).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn global_avg_tail(p: &GlobalPool, xn: &[i8], yn: &mut [i8], from: usize) {
    let c_all = p.channels;
    for (ch, out) in yn.iter_mut().enumerate().skip(from) {
        let sum: i32 = (0..p.hw).map(|q| xn[q * c_all + ch] as i32).sum();
        *out = requantize_to_i8(sum - p.hw as i32 * p.zp_in, p.mult, p.shift, p.zp_out, -128, 127);
    }
}

/// The requantization of a global average pool as per-channel parameters (`L` lanes of the same
/// multiplier and shift), for the SIMD requantizers.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn global_avg_requant<'a, const L: usize>(
    p: &GlobalPool,
    mult: &'a [i32; L],
    shift: &'a [i32; L],
) -> super::conv::Requant<'a> {
    super::conv::Requant {
        bias: &[],
        mult: &mult[..],
        shift: &shift[..],
        input_zero_point: p.zp_in,
        output_zero_point: p.zp_out,
        act_min: -128,
        act_max: 127,
    }
}
