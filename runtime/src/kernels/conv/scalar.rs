//! Reference convolution kernels. Weights are `[out_c][kernel_h][kernel_w][in_c / groups]`.

use super::{ConvGeometry, Requant};

/// `sum((x - zp) * w)` over one tap: the inner product every int8 kernel computes. Wrapping
/// (load validation bounds reductions so that it never wraps).
#[inline(always)]
pub fn dot_i8(x: &[i8], w: &[i8], zero_point: i32) -> i32 {
    x.iter().zip(w).fold(0i32, |acc, (&a, &b)| acc.wrapping_add((a as i32 - zero_point) * b as i32))
}

#[inline(always)]
pub fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
    x.iter().zip(w).map(|(&a, &b)| a * b).sum()
}

pub fn qs8_conv2d_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    qs8_conv2d_with(g, x, w, rq, y, dot_i8);
}

/// The convolution loop nest, shared by every ISA: each ISA supplies its inner product (which
/// must equal `dot_i8` exactly). Inlined into each ISA's `#[target_feature]` entry point.
#[inline(always)]
pub fn qs8_conv2d_with(
    g: &ConvGeometry,
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    dot: impl Fn(&[i8], &[i8], i32) -> i32,
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
                    let mut acc = rq.bias[oc];
                    for kh in 0..g.kernel_h {
                        let Some(ih) = g.in_row(oh, kh) else { continue };
                        for kw in 0..g.kernel_w {
                            let Some(iw) = g.in_col(ow, kw) else { continue };
                            let xs = &xn[(ih * g.in_w + iw) * g.in_c + group * icpg..][..icpg];
                            let ws = &wo[(kh * g.kernel_w + kw) * icpg..][..icpg];
                            acc = acc.wrapping_add(dot(xs, ws, rq.input_zero_point));
                        }
                    }
                    y[out] = rq.apply(oc, acc);
                    out += 1;
                }
            }
        }
    }
}

/// `a * b + c` rounded once (IEEE fused multiply-add): the C library's `fmaf` with std (a single
/// instruction where the CPU has one), `libm`'s software one without; both are exact.
#[inline(always)]
pub fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    return a.mul_add(b, c);
    #[cfg(not(feature = "std"))]
    return libm::fmaf(a, b, c);
}

/// The f32 convolution, and the order of its roundings every SIMD kernel keeps: per output
/// `acc = bias`, then for each kernel tap inside the input (row-major) and each of its input
/// channels in order `acc = fma(x, w, acc)` (IEEE fused multiply-add, rounded once: [`fma`]
/// here, `vfmadd` / `fmla` in the kernels), then `acc.clamp(act_min, act_max)`.
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
                            for (&xv, &wv) in xs.iter().zip(ws) {
                                acc = fma(xv, wv, acc);
                            }
                        }
                    }
                    y[out] = acc.clamp(act_min, act_max);
                    out += 1;
                }
            }
        }
    }
}
