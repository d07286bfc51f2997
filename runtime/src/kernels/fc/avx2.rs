//! x86-64 AVX2 int8 fully-connected: the shared loop with the AVX2 inner product.

use super::scalar::qs8_fc_with;
use crate::kernels::conv::avx2::dot_i8_avx2;
use crate::kernels::conv::Requant;

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn qs8_fc_avx2(m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: this function only runs where AVX2 is available (its own contract).
    qs8_fc_with(m, k, n, x, w, rq, y, |a, b, zp| unsafe { dot_i8_avx2(a, b, zp) });
}
