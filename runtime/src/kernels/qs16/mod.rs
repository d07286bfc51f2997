//! Int16 activations with int8 weights (A16W8, format 1.6): the precision between int8 and f32
//! for the layers where 256 activation levels lose too much. Activations are symmetric int16
//! (zero point 0, so padding taps are 0 and need no correction), weights int8 symmetric per
//! output channel, row-major, bias int32; the int32 accumulator is requantized like int8's
//! ([`crate::quant::requantize`]) and clamped to the fused activation's int16 bounds.
//!
//! No int32 overflow: the loader checks per output channel that `|bias| + 32768 sum |w|` fits in
//! i32 ([`fits_i32`]), so every partial sum in any order is exact and the SIMD kernels (which add
//! in another order) equal the scalar specification bit for bit.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::{im2col_row, is_pointwise};

/// Longest reduction the SIMD GEMM kernels take (their im2col rows live on the stack); longer
/// ones run the scalar kernel.
pub const MAX_SIMD_K: usize = 2048;

/// Most taps of a depthwise window the x86 kernels take (7x7; their interleaved weights live on
/// the stack); larger windows run the scalar kernel.
pub const MAX_DW_TAPS: usize = 49;

/// Whether every output channel's accumulator stays inside i32 for any int16 input: `|bias[c]|
/// + 32768 sum_k |w[c][k]|` at most `i32::MAX`. `w` is `n` rows of `k` (GEMM, row-major) or,
///   with `depthwise`, `k` taps of `n` channels (`[KH, KW, C]`).
pub fn fits_i32(w: &[i8], bias: &[i32], n: usize, k: usize, depthwise: bool) -> bool {
    accumulator_fits(bias, n, |c| {
        if depthwise {
            (0..k).map(|t| (w[t * n + c] as i64).abs()).sum()
        } else {
            w[c * k..(c + 1) * k].iter().map(|&v| (v as i64).abs()).sum()
        }
    })
}

/// The bound of [`fits_i32`] for weights in any layout: `row_abs_sum(c)` is output channel `c`'s
/// sum of `|w|` (the loader reads packed panels through it).
pub fn accumulator_fits(bias: &[i32], n: usize, row_abs_sum: impl Fn(usize) -> i64) -> bool {
    (0..n).all(|c| (bias[c] as i64).abs() + 32768 * row_abs_sum(c) <= i32::MAX as i64)
}

/// The rows the packed GEMM kernels multiply for output pixels `p0 .. p0 + rows` (`MR` of them,
/// a tail block repeating the last real pixel, whose extra results are not stored): each
/// addresses at least `K` rounded up to 4 int16 values, those past `K` meeting zero weights.
/// A pointwise layer with `K % 4 == 0` reads its input rows in place; the others gather im2col
/// rows into `a` (padding 0, the zero point), zero-filled up to the multiple of 4.
#[inline(always)]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn gemm_rows<const MR: usize>(
    g: &ConvGeometry,
    x: &[i16],
    k: usize,
    p0: usize,
    rows: usize,
    a: &mut [[i16; MAX_SIMD_K]; MR],
) -> [*const i16; MR] {
    if is_pointwise(g) && k.is_multiple_of(4) {
        return core::array::from_fn(|r| x[(p0 + r.min(rows - 1)) * k..][..k].as_ptr());
    }
    for (r, row) in a.iter_mut().enumerate() {
        im2col_row(g, x, p0 + r.min(rows - 1), row, 0i16, |v| v);
        row[k..k.div_ceil(4) * 4].fill(0);
    }
    core::array::from_fn(|r| a[r].as_ptr())
}

impl Requant<'_> {
    /// The int16 output of channel `channel`: `clamp(round(acc * mult / 2^shift) + zp, act_min,
    /// act_max)` with the bounds inside the i16 range.
    #[inline(always)]
    pub fn apply_i16(&self, channel: usize, acc: i32) -> i16 {
        let v = crate::quant::requantize(acc, self.mult[channel], self.shift[channel])
            .saturating_add(self.output_zero_point);
        v.clamp(self.act_min, self.act_max) as i16
    }
}
