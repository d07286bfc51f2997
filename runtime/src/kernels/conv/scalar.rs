//! Reference convolution kernels. Weights are `[out_c][kernel_h][kernel_w][in_c / groups]`.

use super::{ConvGeometry, Requant};

/// `sum((x - zp) * w)` over one tap: the inner product every int8 kernel computes.
#[inline(always)]
pub fn dot_i8(x: &[i8], w: &[i8], zero_point: i32) -> i32 {
    x.iter().zip(w).map(|(&a, &b)| (a as i32 - zero_point) * b as i32).sum()
}

#[inline(always)]
pub fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    x.iter().zip(w).map(|(&a, &b)| a * b).sum()
}

pub fn qs8_conv2d_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    let icpg = g.in_c / g.groups;
    let ocpg = g.out_c / g.groups;
    let taps = g.kernel_h * g.kernel_w * icpg;
    let mut out = 0;
    for n in 0..g.batch {
        let xn = &x[n * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                for oc in 0..g.out_c {
                    let group = oc / ocpg;
                    let wo = &w[oc * taps..][..taps];
                    let mut acc = rq.bias[oc];
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            let xs = &xn[(ih * g.in_w + iw) * g.in_c + group * icpg..][..icpg];
                            let ws = &wo[(kh * g.kernel_w + kw) * icpg..][..icpg];
                            acc = acc.wrapping_add(dot_i8(xs, ws, rq.input_zero_point));
                        }
                    }
                    y[out] = rq.apply(oc, acc);
                    out += 1;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn f32_conv2d_scalar(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act_min: f32,
    act_max: f32,
    y: &mut [f32],
) {
    let icpg = g.in_c / g.groups;
    let ocpg = g.out_c / g.groups;
    let taps = g.kernel_h * g.kernel_w * icpg;
    let mut out = 0;
    for n in 0..g.batch {
        let xn = &x[n * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                for oc in 0..g.out_c {
                    let group = oc / ocpg;
                    let wo = &w[oc * taps..][..taps];
                    let mut acc = bias[oc];
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            let xs = &xn[(ih * g.in_w + iw) * g.in_c + group * icpg..][..icpg];
                            let ws = &wo[(kh * g.kernel_w + kw) * icpg..][..icpg];
                            acc += dot_f32(xs, ws);
                        }
                    }
                    y[out] = acc.clamp(act_min, act_max);
                    out += 1;
                }
            }
        }
    }
}
