//! f32 element-wise functions of the UNARY op (`sparq_format::layout::op::unary` codes), the
//! specification the compiler also evaluates to build the int8 lookup tables of the same
//! activations (so int8 approximates exactly what f32 computes). `libm` gives the same results
//! with and without std, on every target.

use sparq_format::layout::op::unary::*;

/// Whether `code` names a function this runtime computes.
pub fn known(code: i32) -> bool {
    name(code).is_some()
}

fn sigmoid(x: f32) -> f32 {
    // Both branches avoid overflow of e^|x|.
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

/// `f(x)` for function `code` with parameters `alpha`, `beta` (unknown codes give `x`; the
/// decoder refuses them before any run).
#[inline]
pub fn apply(code: i32, alpha: f32, beta: f32, x: f32) -> f32 {
    match code {
        SIGMOID => sigmoid(x),
        TANH => libm::tanhf(x),
        HARD_SIGMOID => (alpha * x + beta).clamp(0.0, 1.0),
        HARD_SWISH => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        SILU => x * sigmoid(x),
        GELU => 0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2)),
        LEAKY_RELU => {
            if x < 0.0 {
                alpha * x
            } else {
                x
            }
        }
        ELU => {
            if x < 0.0 {
                alpha * libm::expm1f(x)
            } else {
                x
            }
        }
        // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), exact for large |x|.
        SOFTPLUS => x.max(0.0) + libm::log1pf(libm::expf(-x.abs())),
        EXP => libm::expf(x),
        LOG => libm::logf(x),
        SQRT => libm::sqrtf(x),
        RECIPROCAL => 1.0 / x,
        NEG => -x,
        ABS => x.abs(),
        ERF => libm::erff(x),
        GELU_TANH => {
            const C: f32 = 0.797_884_6; // sqrt(2 / pi)
            0.5 * x * (1.0 + libm::tanhf(C * (x + 0.044_715 * x * x * x)))
        }
        _ => x,
    }
}
