use crate::kernels::conv::scalar::{dot_f32, dot_i8};
use crate::kernels::conv::Requant;

pub fn qs8_fc_scalar(
    m: usize,
    k: usize,
    n: usize,
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    for row in 0..m {
        let xs = &x[row * k..][..k];
        for col in 0..n {
            let acc =
                rq.bias[col].wrapping_add(dot_i8(xs, &w[col * k..][..k], rq.input_zero_point));
            y[row * n + col] = rq.apply(col, acc);
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
            y[row * n + col] =
                (bias[col] + dot_f32(xs, &w[col * k..][..k])).clamp(act_min, act_max);
        }
    }
}
