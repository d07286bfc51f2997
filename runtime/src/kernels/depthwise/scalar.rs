//! Reference depthwise kernels: channels are processed in blocks with a stack accumulator so the
//! innermost loop runs along contiguous channels.

use crate::kernels::conv::{ConvGeometry, Requant};

const BLOCK: usize = 64;

#[inline(always)]
pub fn qs8_dwconv_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let c_all = g.in_c;
    for n in 0..g.batch {
        let xn = &x[n * g.in_h * g.in_w * c_all..][..g.in_h * g.in_w * c_all];
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                let mut c0 = 0;
                while c0 < c_all {
                    let len = BLOCK.min(c_all - c0);
                    let mut acc = [0i32; BLOCK];
                    acc[..len].copy_from_slice(&rq.bias[c0..c0 + len]);
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            let xs = &xn[(ih * g.in_w + iw) * c_all + c0..][..len];
                            let ws = &w[(kh * g.kernel_w + kw) * c_all + c0..][..len];
                            for ((a, &xv), &wv) in acc[..len].iter_mut().zip(xs).zip(ws) {
                                *a = a.wrapping_add((xv as i32 - rq.input_zero_point) * wv as i32);
                            }
                        }
                    }
                    for (c, &a) in acc[..len].iter().enumerate() {
                        yo[c0 + c] = rq.apply(c0 + c, a);
                    }
                    c0 += len;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn f32_dwconv_scalar(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act_min: f32,
    act_max: f32,
    y: &mut [f32],
) {
    let c_all = g.in_c;
    for n in 0..g.batch {
        let xn = &x[n * g.in_h * g.in_w * c_all..][..g.in_h * g.in_w * c_all];
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let yo = &mut y[((n * g.out_h + oh) * g.out_w + ow) * c_all..][..c_all];
                yo.copy_from_slice(&bias[..c_all]);
                for kh in 0..g.kernel_h {
                    let Some(ih) = g.in_row(oh, kh) else { continue };
                    for kw in 0..g.kernel_w {
                        let Some(iw) = g.in_col(ow, kw) else { continue };
                        let xs = &xn[(ih * g.in_w + iw) * c_all..][..c_all];
                        let ws = &w[(kh * g.kernel_w + kw) * c_all..][..c_all];
                        for ((o, &xv), &wv) in yo.iter_mut().zip(xs).zip(ws) {
                            *o += xv * wv;
                        }
                    }
                }
                for o in yo.iter_mut() {
                    *o = o.clamp(act_min, act_max);
                }
            }
        }
    }
}

/// The scalar loop for channels `range` of output row `oh` of batch item `n` (`xn` is that item's
/// input plane): the SIMD kernels' tail for channel counts that are not a multiple of their width.
#[allow(clippy::too_many_arguments)]
pub fn dw_channels(
    g: &ConvGeometry,
    xn: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    n: usize,
    oh: usize,
    range: core::ops::Range<usize>,
) {
    let c_all = g.in_c;
    let yrow = ((n * g.out_h + oh) * g.out_w) * c_all;
    for ow in 0..g.out_w {
        for c in range.clone() {
            let mut acc = rq.bias[c];
            for kh in 0..g.kernel_h {
                let Some(ih) = g.in_row(oh, kh) else { continue };
                for kw in 0..g.kernel_w {
                    let Some(iw) = g.in_col(ow, kw) else { continue };
                    let xv = xn[(ih * g.in_w + iw) * c_all + c] as i32 - rq.input_zero_point;
                    acc = acc.wrapping_add(xv * w[(kh * g.kernel_w + kw) * c_all + c] as i32);
                }
            }
            y[yrow + ow * c_all + c] = rq.apply(c, acc);
        }
    }
}
