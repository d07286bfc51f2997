//! Block-sparse int8 GEMM family: convolutions with one group (and fully-connected layers as
//! 1x1 convolutions over `batch` rows) on a block-sparse weight matrix (format layout
//! `BlockSparse`, see [`sparq_format::sparse`]). Only the stored blocks are multiplied.
//!
//! The scalar kernel is the specification. It is bit-exact to the dense kernel on the same
//! matrix with the missing blocks as zeros: both sum the same non-zero products into a
//! wrapping i32 accumulator (a zero weight adds nothing, and wrapping addition does not depend
//! on order), then requantize through the same [`Requant::apply`].

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
#[cfg(target_arch = "aarch64")]
pub mod dotprod;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::fc::F32Out;
pub use sparq_format::sparse::{BlockSparse, KERNEL_BLOCK};

/// `y[p][oc] = requant(bias[oc] + sum over stored blocks (im2col(x)[p][k] - zp) * w[oc][k])`.
pub fn qs8_spgemm_scalar(g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    let (br, bc) = (w.block.nr, w.block.kr);
    let (cols, values) = (w.cols(), w.values());
    let pixels = g.batch * g.out_h * g.out_w;
    let plane = g.in_h * g.in_w * g.in_c;
    for p in 0..pixels {
        let (ow, oh, n) = (p % g.out_w, (p / g.out_w) % g.out_h, p / (g.out_w * g.out_h));
        let xn = &x[n * plane..][..plane];
        // The im2col element `k` of this pixel (`kh, kw, c` order), `None` in the padding.
        let tap = |k: usize| {
            let (c, kw, kh) = (k % g.in_c, (k / g.in_c) % g.kernel_w, k / (g.in_c * g.kernel_w));
            let ih = g.in_row(oh, kh)?;
            let iw = g.in_col(ow, kw)?;
            Some(xn[(ih * g.in_w + iw) * g.in_c + c])
        };
        for oc in 0..g.out_c {
            let (rb, r) = (oc / br, oc % br);
            let mut acc = rq.bias[oc];
            for b in w.blocks(rb) {
                let k0 = cols[b] as usize * bc;
                let wb = &values[(b * br + r) * bc..][..bc];
                for (j, &wv) in wb.iter().enumerate() {
                    if k0 + j < w.k {
                        if let Some(v) = tap(k0 + j) {
                            acc = acc.wrapping_add((v as i32 - rq.input_zero_point) * wv as i32);
                        }
                    }
                }
            }
            y[p * g.out_c + oc] = rq.apply(oc, acc);
        }
    }
}

/// Fully-connected layer on a block-sparse matrix with f32 output straight from the int32
/// accumulator (logits, see [`F32Out`]), the sum over the stored blocks only; bit-exact to
/// `fc::scalar::qs8_fc_f32out_scalar` on the same matrix with the missing blocks as zeros.
pub fn qs8_spfc_f32out_scalar(m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    let (br, bc, n, k) = (w.block.nr, w.block.kr, w.n, w.k);
    let (cols, values) = (w.cols(), w.values());
    for row in 0..m {
        let xr = &x[row * k..][..k];
        for c in 0..n {
            let (rb, r) = (c / br, c % br);
            let mut acc = out.bias[c];
            for b in w.blocks(rb) {
                let k0 = cols[b] as usize * bc;
                for (j, &wv) in values[(b * br + r) * bc..][..bc].iter().enumerate() {
                    if let Some(&v) = xr.get(k0 + j) {
                        acc = acc.wrapping_add((v as i32 - out.input_zero_point) * wv as i32);
                    }
                }
            }
            y[row * n + c] = out.apply(c, acc);
        }
    }
}
