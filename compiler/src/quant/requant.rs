//! Requantization parameters: the fixed-point multipliers and int32 biases of each int8 op, and
//! the int8 bounds of fused activations. Each function is the formula of one op; lowering only
//! writes the results into op parameters and constant tensors.
//!
//! A real multiplier `M` becomes `(mult, shift)` with `M ~= mult * 2^-shift` (the runtime's
//! `quantize_multiplier`, Q31 `mult` in `[2^30, 2^31)`); the runtime applies it with one rounding
//! (`sparq_runtime::quant::requantize`). Scales are multiplied and divided in f64 so that the
//! only rounding is the one to Q31.

use super::QParams;
use crate::ir::Act;
use sparq_runtime::quant::{quantize_f32, quantize_multiplier};

/// The fixed-point form of a real multiplier: `M ~= mult * 2^-shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Multiplier {
    pub mult: i32,
    pub shift: i32,
}

impl Multiplier {
    /// `quantize_multiplier(m)`.
    pub fn of(m: f64) -> Multiplier {
        let (mult, shift) = quantize_multiplier(m);
        Multiplier { mult, shift }
    }
}

/// Int8 Add: `out = zp_o + round((M_a (a - zp_a) + M_b (b - zp_b)))` with both multipliers over
/// one shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    pub mult_a: i32,
    pub mult_b: i32,
    pub shift: i32,
}

/// Add: `M_a = s_a / s_o`, `M_b = s_b / s_o`. Both terms share the shift of the larger
/// multiplier, so that one of them is in Q31 and the other keeps as many bits as fit under the
/// same shift; the shift is at least 2 for headroom (the runtime requires it: the sum of two Q31
/// products needs a bit more than one).
pub fn add(qa: QParams, qb: QParams, qo: QParams) -> AddParams {
    let (ma, mb) = (qa.scale as f64 / qo.scale as f64, qb.scale as f64 / qo.scale as f64);
    let (_, shift) = quantize_multiplier(ma.max(mb));
    let shift = shift.max(2);
    AddParams {
        mult_a: (ma * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32,
        mult_b: (mb * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32,
        shift,
    }
}

/// Mul: `out = zp_o + round(M (a - zp_a)(b - zp_b))` with `M = s_a s_b / s_o`.
pub fn mul(qa: QParams, qb: QParams, qo: QParams) -> Multiplier {
    Multiplier::of(qa.scale as f64 * qb.scale as f64 / qo.scale as f64)
}

/// Requantize (e.g. a Concat input brought to the output's scale): `M = s_i / s_o`.
pub fn rescale(qi: QParams, qo: QParams) -> Multiplier {
    Multiplier::of(qi.scale as f64 / qo.scale as f64)
}

/// GlobalAveragePool over `hw` positions: the int32 sum of the window is scaled by
/// `M = s_i / (s_o * hw)`, so the division by the count is folded into the multiplier.
pub fn global_avg(qi: QParams, qo: QParams, hw: usize) -> Multiplier {
    Multiplier::of(qi.scale as f64 / (qo.scale as f64 * hw as f64))
}

/// The int32 constants of a per-channel int8 convolution or fully-connected layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRequant {
    /// `round(b[c] / (s_x s_w[c]))`, clamped to `+-2^30` (headroom for the accumulator).
    pub bias: Vec<i32>,
    /// `M[c] = s_x s_w[c] / s_o` in fixed point.
    pub mult: Vec<i32>,
    pub shift: Vec<i32>,
}

/// Int32 bias at the accumulator's scale `s_acc[c] = s_x s_w[c]` (in f64), clamped to `+-2^30`.
fn bias_i32(bias: f32, acc_scale: f64) -> i32 {
    (bias as f64 / acc_scale).round().clamp(-(1i64 << 30) as f64, (1i64 << 30) as f64) as i32
}

/// Per output channel `c` of a layer with input `qx`, weight scales `s_w[c]`, output `qo` and
/// (f32) bias `b[c]`: the accumulator scale `s_acc = s_x s_w[c]` (f64), the int32 bias
/// `round(b[c] / s_acc)` and the multiplier `s_acc / s_o`.
pub fn channel_outputs(qx: QParams, weight_scales: &[f32], qo: QParams, bias: &[f32]) -> ChannelRequant {
    let mut out = ChannelRequant {
        bias: Vec::with_capacity(weight_scales.len()),
        mult: Vec::with_capacity(weight_scales.len()),
        shift: Vec::with_capacity(weight_scales.len()),
    };
    for (&sw, &b) in weight_scales.iter().zip(bias) {
        let acc_scale = qx.scale as f64 * sw as f64;
        out.bias.push(bias_i32(b, acc_scale));
        let m = Multiplier::of(acc_scale / qo.scale as f64);
        out.mult.push(m.mult);
        out.shift.push(m.shift);
    }
    out
}

/// A fully-connected layer whose output leaves the int8 domain (e.g. logits): the f32 output is
/// `acc * s_acc[c]` with `s_acc[c] = s_x * s_w[c]` computed in f32 (the value the runtime
/// multiplies by), and the int32 bias is `round(b[c] / s_acc[c])` (clamped to `+-2^30`).
/// Returns `(bias, s_acc)`.
pub fn float_output(qx: QParams, weight_scales: &[f32], bias: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let acc_scale: Vec<f32> = weight_scales.iter().map(|&sw| qx.scale * sw).collect();
    let b32 = acc_scale.iter().zip(bias).map(|(&s, &b)| bias_i32(b, s as f64)).collect();
    (b32, acc_scale)
}

/// The int8 bounds `[min, max]` of a fused activation clamp `[act.lo, act.hi]` on an output
/// quantized with `q`: each finite bound quantized (`quantize_f32`), infinite ones the int8
/// limits; `max >= min` even when the clamp lies outside the output's range.
pub fn act_bounds(act: Act, q: QParams) -> (i32, i32) {
    let lo = if act.lo.is_finite() { quantize_f32(act.lo, q.scale, q.zero_point) as i32 } else { -128 };
    let hi = if act.hi.is_finite() { quantize_f32(act.hi, q.scale, q.zero_point) as i32 } else { 127 };
    (lo.max(-128), hi.min(127).max(lo.max(-128)))
}

/// [`act_bounds`] for an int16 output (format 1.6): the clamp's bounds as int16 codes.
pub fn act_bounds16(act: Act, q: QParams) -> (i32, i32) {
    let code = |v: f32| sparq_runtime::quant::quantize_f32_i16(v, q.scale) as i32;
    let lo = if act.lo.is_finite() { code(act.lo) } else { i16::MIN as i32 };
    let hi = if act.hi.is_finite() { code(act.hi) } else { i16::MAX as i32 };
    (lo, hi.max(lo))
}

/// The int8 lookup table of an element-wise function (UNARY codes, parameters `alpha`, `beta`):
/// entry `q + 128` is `quantize(f(s_x (q - z_x)), s_y, z_y)` for every int8 code `q`, so the
/// input's dequantization, the function (the runtime's own f32 definition) and the output's
/// quantization are one 256-byte lookup.
pub fn lookup_table(function: i32, alpha: f32, beta: f32, post: [f32; 2], qx: QParams, qy: QParams) -> Vec<u8> {
    (-128i32..128)
        .map(|q| {
            let real = qx.scale * (q - qx.zero_point) as f32;
            let v = post[0] * sparq_runtime::kernels::unary::apply(function, alpha, beta, real) + post[1];
            quantize_f32(v, qy.scale, qy.zero_point) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::Rng;
    use sparq_runtime::quant::{requantize, MAX_SHIFT, MIN_SHIFT};

    /// A scale spread over several orders of magnitude, as calibration produces.
    fn scale(rng: &mut Rng) -> f32 {
        10f32.powf(rng.uniform(-4.0, 0.5))
    }

    fn q(scale: f32) -> QParams {
        QParams { scale, zero_point: 0 }
    }

    /// `requantize(x, mult, shift)` against the real product, for accumulators of either sign.
    fn check(m: Multiplier, real: f64, rng: &mut Rng) {
        assert!((MIN_SHIFT..=MAX_SHIFT).contains(&m.shift), "{m:?}");
        assert!(m.mult >= 0, "{m:?}");
        // Accumulators up to 1e6, and whose product stays in the i32 range (which saturates).
        let bound = 1e6f64.min(1e9 / real.max(1e-30));
        for _ in 0..64 {
            let x = (rng.uniform(-1.0, 1.0) as f64 * bound) as i32;
            let want = (x as f64 * real).round();
            let got = requantize(x, m.mult, m.shift) as f64;
            assert!((got - want).abs() <= 1.0, "x {x} * {real}: {got} vs {want} ({m:?})");
        }
    }

    #[test]
    fn requantized_values_are_the_real_products_within_one() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let (a, b, o) = (q(scale(&mut rng)), q(scale(&mut rng)), q(scale(&mut rng)));
            check(mul(a, b, o), a.scale as f64 * b.scale as f64 / o.scale as f64, &mut rng);
            check(rescale(a, o), a.scale as f64 / o.scale as f64, &mut rng);
            let hw = 1 + (rng.next_u64() % 200) as usize;
            check(global_avg(a, o, hw), a.scale as f64 / (o.scale as f64 * hw as f64), &mut rng);
        }
    }

    #[test]
    fn add_shares_one_shift_and_keeps_both_multipliers_in_range() {
        let mut rng = Rng::new(8);
        for _ in 0..500 {
            let (a, b, o) = (q(scale(&mut rng)), q(scale(&mut rng)), q(scale(&mut rng)));
            let p = add(a, b, o);
            assert!((2..=MAX_SHIFT).contains(&p.shift), "{p:?}");
            let (ma, mb) = (a.scale as f64 / o.scale as f64, b.scale as f64 / o.scale as f64);
            for (mult, real) in [(p.mult_a, ma), (p.mult_b, mb)] {
                assert!(mult >= 0, "{p:?}");
                // Each multiplier is the real one over the shared shift, rounded once (unless a
                // multiplier above 2^29 saturates).
                let exact = real * 2f64.powi(p.shift);
                assert!(exact > i32::MAX as f64 || (mult as f64 - exact).abs() <= 0.5, "{p:?} for {real}");
            }
            // The larger multiplier is in Q31 whenever the shift was not raised to 2.
            if p.shift > 2 {
                assert!(p.mult_a.max(p.mult_b) >= 1 << 30, "{p:?}");
            }
            // The kernel's 64-bit sum of two products cannot overflow.
            let sum = 255i64 * p.mult_a as i64 + 255i64 * p.mult_b as i64;
            assert!(sum < i64::MAX / 2);
        }
        // Equal scales: equal multipliers, exactly 2^-shift times the Q31 value of 1/2 for M = 1/2.
        let p = add(q(0.5), q(0.5), q(1.0));
        assert_eq!((p.mult_a, p.mult_b, p.shift), (1 << 30, 1 << 30, 31));
    }

    #[test]
    fn channel_biases_and_multipliers_are_at_the_accumulator_scale() {
        let (qx, qo) = (QParams { scale: 0.02, zero_point: -3 }, q(0.1));
        let r = channel_outputs(qx, &[0.01, 0.5, 1e-3], qo, &[0.3, -1.0, 1e9]);
        // 0.3 / (0.02 * 0.01) = 1500; -1 / 0.01 = -100; the third saturates at 2^30.
        assert_eq!(r.bias, [1500, -100, 1 << 30]);
        for (c, sw) in [0.01f32, 0.5, 1e-3].into_iter().enumerate() {
            let real = 0.02f32 as f64 * sw as f64 / 0.1f32 as f64;
            let got = r.mult[c] as f64 / 2f64.powi(r.shift[c]);
            assert!((got / real - 1.0).abs() < 1e-9, "channel {c}: {got} vs {real}");
        }
        let (b, s) = float_output(qx, &[0.01, 0.5], &[0.3, -1.0]);
        assert_eq!(s, [0.02f32 * 0.01, 0.02f32 * 0.5]);
        assert_eq!(b, [1500, -100]);
    }

    #[test]
    fn activation_bounds_quantize_finite_ends_and_never_cross() {
        let q = QParams { scale: 6.0 / 255.0, zero_point: -128 };
        assert_eq!(act_bounds(Act { lo: 0.0, hi: 6.0 }, q), (-128, 127));
        assert_eq!(act_bounds(Act::NONE, q), (-128, 127));
        assert_eq!(act_bounds(Act { lo: 0.0, hi: 3.0 }, q).1, quantize_f32(3.0, q.scale, q.zero_point) as i32);
        // A clamp entirely below the output's range collapses to one value.
        let (lo, hi) = act_bounds(Act { lo: -10.0, hi: -5.0 }, q);
        assert_eq!((lo, hi), (-128, -128));
    }

    #[test]
    fn lookup_tables_quantize_the_function_of_each_code() {
        use sparq_format::layout::op::unary::{HARD_SWISH, SIGMOID};
        let (qx, qy) = (QParams { scale: 0.05, zero_point: -3 }, QParams { scale: 1.0 / 256.0, zero_point: -128 });
        let t = lookup_table(SIGMOID, 0.0, 0.0, [1.0, 0.0], qx, qy);
        assert_eq!(t.len(), 256);
        for (i, &v) in t.iter().enumerate() {
            let x = 0.05 * (i as f32 - 128.0 + 3.0);
            let want = quantize_f32(1.0 / (1.0 + (-x).exp()), qy.scale, qy.zero_point);
            assert!((v as i8 as i32 - want as i32).abs() <= 1, "code {i}: {} vs {want}", v as i8);
        }
        // Monotone functions give monotone tables; the zero point maps to f(0).
        assert!(t.windows(2).all(|w| w[0] as i8 <= w[1] as i8));
        let h = lookup_table(
            HARD_SWISH,
            0.0,
            0.0,
            [1.0, 0.0],
            QParams { scale: 0.1, zero_point: 0 },
            QParams { scale: 0.1, zero_point: 0 },
        );
        assert_eq!(h[128] as i8, 0);
        assert_eq!(h[128 + 60] as i8, 60, "hard-swish is the identity above 3");
        // A scalar affine after the function is part of the table: 0.5 * hswish(x) - 1.
        let q = QParams { scale: 0.1, zero_point: 0 };
        let a = lookup_table(HARD_SWISH, 0.0, 0.0, [0.5, -1.0], q, q);
        assert_eq!(a[128] as i8, -10);
        assert_eq!(a[128 + 60] as i8, 20);
    }
}
