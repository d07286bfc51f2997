//! x86-64 AVX2 int8 depthwise convolution: the scalar loop nest (channels innermost, in blocks)
//! compiled with AVX2 enabled, so the per-channel multiply-accumulate vectorizes 8 lanes wide.
//! Integer arithmetic in the same order per channel: identical results.

use super::scalar::qs8_dwconv_scalar;
use crate::kernels::conv::{ConvGeometry, Requant};

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_dwconv_avx2(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    qs8_dwconv_scalar(g, x, w, rq, y)
}
