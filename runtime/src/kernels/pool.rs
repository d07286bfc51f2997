//! Pooling kernels over NHWC tensors. Int8 max and average pooling keep the input's quantization;
//! global average pooling requantizes to its own.

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

/// Global average pooling: `out = zp_out + requantize(sum(q - zp_in), mult, shift)` where the
/// multiplier already includes `1 / (H * W)`.
#[allow(clippy::too_many_arguments)]
pub fn qs8_global_avg_pool(
    batch: usize,
    hw: usize,
    c_all: usize,
    x: &[i8],
    y: &mut [i8],
    zp_in: i32,
    zp_out: i32,
    mult: i32,
    shift: i32,
) {
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
