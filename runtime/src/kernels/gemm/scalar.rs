//! Reference GEMM-convolution: reads the weight matrix in whatever layout it is stored, so it is
//! also the path a file packed for another ISA's kernel runs on.

use super::WeightMatrix;
use crate::kernels::conv::{ConvGeometry, Requant};

/// `y[p][oc] = requant(bias[oc] + sum_k (im2col(x)[p][k] - zp) * w[oc][k])`, groups = 1.
pub fn qs8_gemm_scalar(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    let pixels = g.batch * g.out_h * g.out_w;
    let mut out = 0;
    for p in 0..pixels {
        let ow = p % g.out_w;
        let oh = (p / g.out_w) % g.out_h;
        let xn = &x[(p / (g.out_w * g.out_h)) * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
        for oc in 0..g.out_c {
            let mut acc = rq.bias[oc];
            for kh in 0..g.kernel_h {
                let Some(ih) = g.in_row(oh, kh) else { continue };
                for kw in 0..g.kernel_w {
                    let Some(iw) = g.in_col(ow, kw) else { continue };
                    let xs = &xn[(ih * g.in_w + iw) * g.in_c..][..g.in_c];
                    let k0 = (kh * g.kernel_w + kw) * g.in_c;
                    for (&v, wv) in xs.iter().zip(w.row_from(oc, k0)) {
                        acc = acc.wrapping_add((v as i32 - rq.input_zero_point) * wv as i32);
                    }
                }
            }
            y[out] = rq.apply(oc, acc);
            out += 1;
        }
    }
}
