//! Quantization arithmetic shared by lowering and the precision choice: the int8 precision of a
//! layer, activations' asymmetric parameters from a range, weights' symmetric per-channel
//! quantization (see DESIGN.md, "Quantization scheme"); the requantization parameters of each
//! int8 op ([`requant`]) and the bias correction of rounded weights ([`bias`]).

pub mod bias;
pub mod requant;

use crate::ir::{Act, Range};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Int8,
    /// Int16 activations with int8 weights (A16W8, format 1.6): a layer's precision between
    /// int8 and f32, for convolutions and fully-connected layers.
    Int16,
    F32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// Asymmetric int8 parameters covering `[min, max]` (widened to include 0, so zero is exact).
pub fn act_qparams(r: Range) -> QParams {
    let lo = r.min.min(0.0);
    let hi = r.max.max(0.0);
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    QParams { scale, zero_point: zp }
}

/// Headroom of int16 ranges over the calibrated extremes: values twice as large as any the
/// calibration data produced still fit, for 6 dB of int16's 96 (an int8 range has no levels to
/// spare; an int16 one does, and data never seen goes past the calibration's extremes).
pub const INT16_HEADROOM: f32 = 2.0;

/// Symmetric int16 parameters covering `INT16_HEADROOM` times `[min, max]` (format 1.6: zero
/// point 0, so padding is 0).
pub fn act_qparams16(r: Range) -> QParams {
    let m = r.min.abs().max(r.max.abs()) * INT16_HEADROOM;
    QParams { scale: (m / 32767.0).max(1e-10), zero_point: 0 }
}

/// [`act_qparams16`] clipped to a fused activation's bounds (headroom past them is useless).
pub fn clamped_qparams16(r: Range, act: Act) -> QParams {
    let (lo, hi) = (r.min * INT16_HEADROOM, r.max * INT16_HEADROOM);
    let m = lo.max(act.lo).abs().max(hi.min(act.hi).abs());
    QParams { scale: (m / 32767.0).max(1e-10), zero_point: 0 }
}

/// The output parameters of a node with a fused activation clamp: its calibrated range `r`
/// clipped to the clamp's bounds (values outside them never reach the output).
pub fn clamped_qparams(r: Range, act: Act) -> QParams {
    act_qparams(Range { min: r.min.max(act.lo), max: r.max.min(act.hi) })
}

/// Symmetric per-output-channel int8 weights in [-127, 127].
pub fn quantize_per_channel(w: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels.max(1);
    let mut q = vec![0i8; w.len()];
    let mut scales = vec![1.0f32; channels];
    for c in 0..channels {
        let ws = &w[c * per..(c + 1) * per];
        let s = channel_scale(ws);
        scales[c] = s;
        for (d, &v) in q[c * per..(c + 1) * per].iter_mut().zip(ws) {
            *d = (v / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

/// A layer's int8 weights rounded by a method other than round-to-nearest (GPTQ, AdaRound; see
/// `compress::rounding`), which lowering writes as they are: `q` in the IR weight layout
/// (`[O, I/g, KH, KW]` or `[O, I]`, rows of `K` taps), the per-channel scales they were rounded
/// on, and the bias that absorbs their mean error (instead of lowering's bias correction).
#[derive(Clone, Debug, PartialEq)]
pub struct RoundedWeights {
    pub q: Vec<i8>,
    pub scales: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The symmetric per-channel scale of one row of weights: `max |w| / 127` (1 for a zero row),
/// as [`quantize_per_channel`] computes it.
pub fn channel_scale(row: &[f32]) -> f32 {
    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max > 0.0 {
        max / 127.0
    } else {
        1.0
    }
}
