//! Quantization arithmetic, written once. Every kernel (scalar or SIMD) and the compiler use these
//! definitions, so what the compiler measures is what the device computes.
//!
//! Scheme (gemmlowp's `real = scale * (q - zero_point)`):
//! - activations: int8, asymmetric, per tensor;
//! - weights: int8 in [-127, 127], symmetric (zero point 0), per output channel;
//! - bias: int32 at scale `s_in * s_w[c]`;
//! - an int32 accumulator `acc` at scale `s_acc` becomes an int8 output at `s_out` through the real
//!   multiplier `M = s_acc / s_out`, represented as `M ~= mult * 2^-shift` with `mult` in
//!   `[2^30, 2^31)` (Q31) and `shift` in `[1, 62]`.

/// Smallest and largest total right shift a requantization may use.
pub const MIN_SHIFT: i32 = 1;
pub const MAX_SHIFT: i32 = 62;

/// `round(acc * mult / 2^shift)`, rounding half toward +infinity, computed exactly in 64 bits.
///
/// One rounding (unlike gemmlowp's `SaturatingRoundingDoublingHighMul` followed by
/// `RoundingDivideByPOT`, which rounds twice). No intermediate can overflow:
/// `|acc * mult| < 2^31 * 2^31 = 2^62` and the rounding term is below `2^61`. The result is
/// saturated to the i32 range (only reachable when `shift < 31`, i.e. `M > 1`).
/// A SIMD kernel matches this with a 32x32->64 multiply, a 64-bit add and an arithmetic shift.
#[inline(always)]
pub fn requantize(acc: i32, mult: i32, shift: i32) -> i32 {
    let prod = acc as i64 * mult as i64;
    let rounded = (prod + (1i64 << (shift - 1))) >> shift;
    rounded.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Requantize and produce the final int8 value: add the output zero point and apply the fused
/// activation clamp `[act_min, act_max]` (a sub-range of [-128, 127]).
#[inline(always)]
pub fn requantize_to_i8(acc: i32, mult: i32, shift: i32, zero_point: i32, act_min: i32, act_max: i32) -> i8 {
    let v = requantize(acc, mult, shift).saturating_add(zero_point);
    v.clamp(act_min, act_max) as i8
}

/// Fixed-point form `(mult, shift)` of a real multiplier `m >= 0`: `m ~= mult * 2^-shift`.
/// Multipliers too small for the shift range become `(0, MAX_SHIFT)` (output is the zero point);
/// multipliers above `2^30` are not representable and saturate.
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m.is_nan() || m <= 0.0 || m.is_infinite() {
        return (0, MAX_SHIFT);
    }
    // m = f * 2^e with f in [0.5, 1)
    let mut e = 0i32;
    let mut f = m;
    while f >= 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f < 0.5 {
        f *= 2.0;
        e -= 1;
    }
    let mut mult = libm::round(f * (1u64 << 31) as f64) as i64;
    if mult == 1i64 << 31 {
        mult /= 2;
        e += 1;
    }
    let mut shift = 31 - e;
    if shift > MAX_SHIFT {
        // Too small for Q31 at the largest shift: keep what precision is left.
        let m62 = libm::round(m * (1u64 << 62) as f64) as i64;
        return (m62.min(i32::MAX as i64) as i32, MAX_SHIFT);
    }
    if shift < MIN_SHIFT {
        shift = MIN_SHIFT;
        mult = i32::MAX as i64;
    }
    (mult as i32, shift)
}

/// Quantize a real value: `clamp(round_half_away_from_zero(x / scale) + zero_point, -128, 127)`.
#[inline(always)]
pub fn quantize_f32(x: f32, scale: f32, zero_point: i32) -> i8 {
    let q = x / scale;
    // NaN maps to the zero point; +-inf and huge values saturate.
    let q = if q.is_nan() { 0.0 } else { q.clamp(-1.0e6, 1.0e6) };
    // Round half away from zero without a libm call: `q - trunc(q)` is exact (Sterbenz), so
    // comparing it with +-0.5 decides the rounding exactly.
    let t = q as i32;
    let frac = q - t as f32;
    let r = t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32;
    (r + zero_point).clamp(-128, 127) as i8
}

/// Quantize a real value to int16 (format 1.6; symmetric, zero point 0):
/// `clamp(round_half_away_from_zero(x / scale), -32768, 32767)`, NaN to 0.
#[inline(always)]
pub fn quantize_f32_i16(x: f32, scale: f32) -> i16 {
    let q = x / scale;
    let q = if q.is_nan() { 0.0 } else { q.clamp(-1.0e6, 1.0e6) };
    let t = q as i32;
    let frac = q - t as f32;
    let r = t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32;
    r.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// Requantize an int8 or int16 code to another scale (REQUANTIZE, and the conversions between
/// int8 and int16 of format 1.6): `clamp(zp_out + round((q - zp_in) mult / 2^shift), lo, hi)`
/// with `[lo, hi]` the output type's range.
#[inline(always)]
pub fn requantize_code(q: i32, zp_in: i32, zp_out: i32, mult: i32, shift: i32, lo: i32, hi: i32) -> i32 {
    requantize(q - zp_in, mult, shift).saturating_add(zp_out).clamp(lo, hi)
}

#[inline(always)]
pub fn dequantize_i8(q: i8, scale: f32, zero_point: i32) -> f32 {
    scale * (q as i32 - zero_point) as f32
}

/// Division rounding half away from zero (`d > 0`).
#[inline(always)]
pub fn div_round(n: i32, d: i32) -> i32 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_round_trip() {
        for &m in &[1e-9, 1e-5, 0.000123, 0.0049, 0.25, 0.5, 0.75, 0.999999, 1.0, 1.5, 3.0, 1000.0] {
            let (mult, shift) = quantize_multiplier(m);
            assert!((MIN_SHIFT..=MAX_SHIFT).contains(&shift), "{m}: shift {shift}");
            assert!(mult >= 0);
            let back = mult as f64 / 2f64.powi(shift);
            assert!((back - m).abs() <= m * 1e-6 + 2f64.powi(-62), "{m} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), (0, MAX_SHIFT));
        assert_eq!(quantize_multiplier(f64::NAN), (0, MAX_SHIFT));
    }

    #[test]
    fn requantize_rounds_half_up_exactly() {
        // M = 0.5: 3 * 0.5 = 1.5 -> 2; -3 * 0.5 = -1.5 -> -1 (half toward +inf)
        assert_eq!(requantize(3, 1 << 30, 31), 2);
        assert_eq!(requantize(-3, 1 << 30, 31), -1);
        assert_eq!(requantize(4, 1 << 30, 31), 2);
        // i32 extremes with the largest multiplier: no overflow, exact.
        assert_eq!(
            requantize(i32::MAX, i32::MAX, 62),
            ((i32::MAX as i128 * i32::MAX as i128 + (1i128 << 61)) >> 62) as i32
        );
        assert_eq!(
            requantize(i32::MIN, i32::MAX, 62),
            ((i32::MIN as i128 * i32::MAX as i128 + (1i128 << 61)) >> 62) as i32
        );
        // Powers of two +-2 around the rounding point.
        for acc in [(1 << 20) - 2, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (1 << 20) + 2] {
            let exact = (acc as f64 * 0.25).round_ties_up();
            assert_eq!(requantize(acc, 1 << 30, 32) as f64, exact);
        }
    }

    trait TiesUp {
        fn round_ties_up(self) -> f64;
    }
    impl TiesUp for f64 {
        fn round_ties_up(self) -> f64 {
            libm::floor(self + 0.5)
        }
    }

    #[test]
    fn quantize_saturates_and_handles_nan() {
        assert_eq!(quantize_f32(1e30, 0.1, 0), 127);
        assert_eq!(quantize_f32(-1e30, 0.1, 0), -128);
        assert_eq!(quantize_f32(f32::NAN, 0.1, 5), 5);
        assert_eq!(quantize_f32(0.25, 0.1, 0), 3);
        assert_eq!(quantize_f32(-0.25, 0.1, 0), -3);
        assert_eq!(quantize_f32(0.49999997, 1.0, 0), 0);
        assert_eq!(quantize_f32(-0.49999997, 1.0, 0), 0);
        assert_eq!(quantize_f32(f32::INFINITY, 1.0, -3), 127);
        // Against libm's round-half-away-from-zero over many values, halves included.
        let mut v = -300.0f32;
        while v < 300.0 {
            for x in [v, v + 0.5, v - 0.5, f32::from_bits(v.to_bits() + 1), f32::from_bits(v.to_bits() - 1)] {
                let want = (libm::roundf(x).clamp(-1.0e6, 1.0e6) as i32 - 7).clamp(-128, 127) as i8;
                assert_eq!(quantize_f32(x, 1.0, -7), want, "{x}");
            }
            v += 0.37;
        }
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
    }
}
