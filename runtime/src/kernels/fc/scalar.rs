use crate::kernels::conv::scalar::{dot_f32, dot_i8};
use crate::kernels::conv::Requant;
use crate::kernels::fc::F32Out;
use crate::kernels::gemm::WeightMatrix;

pub fn qs8_fc_scalar(m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    qs8_fc_with(m, k, n, x, w, rq, y, dot_i8);
}

/// The fully-connected loop, shared by every ISA (see `conv::scalar::qs8_conv2d_with`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn qs8_fc_with(
    m: usize,
    k: usize,
    n: usize,
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    dot: impl Fn(&[i8], &[i8], i32) -> i32,
) {
    qs8_fc_accumulate(m, k, n, x, w, rq.bias, rq.input_zero_point, dot, |i, col, acc| y[i] = rq.apply(col, acc));
}

/// `bias[col] + sum((x[row] - zp) * w[col])` for every output, handed to `store(index, col, acc)`:
/// the int32 accumulation every int8 fully-connected output stage shares.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn qs8_fc_accumulate(
    m: usize,
    k: usize,
    n: usize,
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    input_zero_point: i32,
    dot: impl Fn(&[i8], &[i8], i32) -> i32,
    mut store: impl FnMut(usize, usize, i32),
) {
    for row in 0..m {
        let xs = &x[row * k..][..k];
        for col in 0..n {
            store(row * n + col, col, bias[col].wrapping_add(dot(xs, &w[col * k..][..k], input_zero_point)));
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn f32_fc_scalar(
    m: usize,
    k: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    act_min: f32,
    act_max: f32,
    y: &mut [f32],
) {
    for row in 0..m {
        let xs = &x[row * k..][..k];
        for col in 0..n {
            y[row * n + col] = (bias[col] + dot_f32(xs, &w[col * k..][..k])).clamp(act_min, act_max);
        }
    }
}

/// Int8 inputs and weights, f32 output straight from the int32 accumulator (see [`F32Out`]).
pub fn qs8_fc_f32out_scalar(m: usize, x: &[i8], w: &WeightMatrix<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    let (k, n, zp) = (w.k, w.n, out.input_zero_point);
    match w.pack {
        None => qs8_fc_accumulate(m, k, n, x, w.data, out.bias, zp, dot_i8, |i, col, acc| y[i] = out.apply(col, acc)),
        Some(_) => {
            for row in 0..m {
                for col in 0..n {
                    let acc = x[row * k..][..k]
                        .iter()
                        .zip(w.row_from(col, 0))
                        .fold(out.bias[col], |acc, (&v, wv)| acc.wrapping_add((v as i32 - zp) * wv as i32));
                    y[row * n + col] = out.apply(col, acc);
                }
            }
        }
    }
}
