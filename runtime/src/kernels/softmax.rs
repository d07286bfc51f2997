//! Softmax along one logical axis, in f32 (`exp` from libm: no_std has no transcendental
//! functions). The int8 form dequantizes, computes in f32 and quantizes to the output's
//! parameters; it needs no scratch: max, sum and output are three passes over the row.

use super::strided::{aligned, padded_dims, walk, R};
use crate::quant::{dequantize_i8, quantize_f32};
use sparq_format::TensorInfo;

fn rows(x: &TensorInfo<'_>, y: &TensorInfo<'_>, axis: usize) -> ([usize; R], [[usize; R]; 2], usize, usize, usize) {
    let mut dims = padded_dims(x.shape());
    let a = R - x.rank + axis;
    let len = dims[a];
    dims[a] = 1;
    let sx = aligned(x, x.shape());
    let sy = aligned(y, x.shape());
    (dims, [sx, sy], len, sx[a], sy[a])
}

pub fn f32_softmax(x: &TensorInfo<'_>, y: &TensorInfo<'_>, axis: usize, xd: &[f32], yd: &mut [f32]) {
    let (dims, st, len, sx, sy) = rows(x, y, axis);
    walk(&dims, &st, |o| {
        let max = (0..len).map(|i| xd[o[0] + i * sx]).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for i in 0..len {
            let e = libm::expf(xd[o[0] + i * sx] - max);
            yd[o[1] + i * sy] = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        for i in 0..len {
            yd[o[1] + i * sy] *= inv;
        }
    });
}

pub fn qs8_softmax(x: &TensorInfo<'_>, y: &TensorInfo<'_>, axis: usize, xd: &[i8], yd: &mut [i8]) {
    let (dims, st, len, sx, sy) = rows(x, y, axis);
    let (s_in, z_in, s_out, z_out) = (x.scale, x.zero_point, y.scale, y.zero_point);
    walk(&dims, &st, |o| {
        // Scale is positive, so the largest code is the largest value.
        let max = (0..len).map(|i| xd[o[0] + i * sx]).max().unwrap_or(0);
        let m = dequantize_i8(max, s_in, z_in);
        let sum: f32 = (0..len).map(|i| libm::expf(dequantize_i8(xd[o[0] + i * sx], s_in, z_in) - m)).sum();
        let inv = 1.0 / sum;
        for i in 0..len {
            let p = libm::expf(dequantize_i8(xd[o[0] + i * sx], s_in, z_in) - m) * inv;
            yd[o[1] + i * sy] = quantize_f32(p, s_out, z_out);
        }
    });
}
