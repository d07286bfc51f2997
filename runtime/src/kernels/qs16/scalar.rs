//! The A16W8 specification: plain loops, every SIMD kernel of the family is tested against these
//! bit for bit.

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::WeightMatrix;

/// Convolution with one group (fully-connected layers as 1x1 over rows) on an `N x K` weight
/// matrix (row-major or packed panels), `K = KH KW C_in` in that order: `y[p][oc] =
/// requant(bias[oc] + sum_k im2col(x)[p][k] w[oc][k])`, padding taps 0.
pub fn qs16_gemm_scalar(g: &ConvGeometry, x: &[i16], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    let plane = g.in_h * g.in_w * g.in_c;
    let pixels = g.batch * g.out_h * g.out_w;
    for p in 0..pixels {
        let (ow, oh) = (p % g.out_w, (p / g.out_w) % g.out_h);
        let xn = &x[(p / (g.out_w * g.out_h)) * plane..][..plane];
        let yp = &mut y[p * g.out_c..][..g.out_c];
        for (oc, out) in yp.iter_mut().enumerate() {
            let mut acc = rq.bias[oc];
            for kh in 0..g.kernel_h {
                let Some(ih) = g.in_row(oh, kh) else { continue };
                for kw in 0..g.kernel_w {
                    let Some(iw) = g.in_col(ow, kw) else { continue };
                    let xs = &xn[(ih * g.in_w + iw) * g.in_c..][..g.in_c];
                    for (&a, b) in xs.iter().zip(w.row_from(oc, (kh * g.kernel_w + kw) * g.in_c)) {
                        acc = acc.wrapping_add(a as i32 * b as i32);
                    }
                }
            }
            *out = rq.apply_i16(oc, acc);
        }
    }
}

/// Depthwise convolution, weights `[KH, KW, C]`: `y[p][c] = requant(bias[c] + sum_taps x w)`.
pub fn qs16_dwconv_scalar(g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
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

/// Channels `range` of output pixel `(oh, ow)` of one batch item (`xn` its input plane), into
/// `yo` (the pixel's whole output row): the SIMD kernels' channel tail.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn dw_pixel(
    g: &ConvGeometry,
    xn: &[i16],
    w: &[i8],
    rq: &Requant<'_>,
    oh: usize,
    ow: usize,
    range: core::ops::Range<usize>,
    yo: &mut [i16],
) {
    let c_all = g.in_c;
    for c in range {
        let mut acc = rq.bias[c];
        for kh in 0..g.kernel_h {
            let Some(ih) = g.in_row(oh, kh) else { continue };
            for kw in 0..g.kernel_w {
                let Some(iw) = g.in_col(ow, kw) else { continue };
                let xv = xn[(ih * g.in_w + iw) * c_all + c];
                let wv = w[(kh * g.kernel_w + kw) * c_all + c];
                acc = acc.wrapping_add(xv as i32 * wv as i32);
            }
        }
        yo[c] = rq.apply_i16(c, acc);
    }
}
