//! Bias correction of quantized weights (Nagel et al., "Data-Free Quantization Through Weight
//! Equalization and Bias Correction", sec. 4.2, with empirical input means instead of the
//! batch-norm statistics the paper uses).

/// Weight rounding shifts each output's mean by `sum_t (w_q[o,t] s_w[o] - w[o,t]) E[x_t]`;
/// returns `bias[o]` minus that shift (accumulated in f64).
///
/// `w` (f32) and `q` (int8) are in quantization order, `[O, taps]`: taps with the input channel
/// fastest for convolutions (`ws` = `[O, I/g, KH, KW]`) and fully-connected layers (`ws` =
/// `[O, I]`), one channel per row for depthwise. `mean` holds the input's per-channel means
/// (`E[x_t]` is the mean of tap `t`'s channel; a channel past its end counts as 0).
pub fn corrected_bias(
    mean: &[f32],
    w: &[f32],
    q: &[i8],
    scales: &[f32],
    bias: &[f32],
    ws: &[usize],
    depthwise: bool,
) -> Vec<f32> {
    let out_c = ws[0];
    let taps = w.len() / out_c.max(1);
    let (icpg, groups_out) = if depthwise {
        (1, 1)
    } else if ws.len() == 4 {
        (ws[1], out_c / (mean.len() / ws[1]).max(1))
    } else {
        (ws[1], out_c)
    };
    (0..out_c)
        .map(|o| {
            let base = if depthwise { o } else { (o / groups_out.max(1)) * icpg };
            let mut shift = 0f64;
            for t in 0..taps {
                let err = q[o * taps + t] as f64 * scales[o] as f64 - w[o * taps + t] as f64;
                let ch = if depthwise { base } else { base + t % icpg };
                shift += err * *mean.get(ch).unwrap_or(&0.0) as f64;
            }
            bias[o] - shift as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::Rng;
    use crate::quant::quantize_per_channel;

    /// The corrected bias makes the quantized layer's mean output equal the float layer's on an
    /// input whose every channel sits at its mean.
    #[test]
    fn the_corrected_bias_removes_the_mean_shift_of_rounding() {
        let mut rng = Rng::new(3);
        // A 1x1 convolution with 4 inputs and 3 outputs: taps are input channels.
        let (o, i) = (3, 4);
        let w = rng.vec(o * i, 1.0);
        let bias = rng.vec(o, 0.5);
        let mean = [0.5f32, -1.0, 2.0, 0.25];
        let (q, scales) = quantize_per_channel(&w, o);
        let b = corrected_bias(&mean, &w, &q, &scales, &bias, &[o, i, 1, 1], false);
        for c in 0..o {
            let float: f64 = (0..i).map(|t| w[c * i + t] as f64 * mean[t] as f64).sum::<f64>() + bias[c] as f64;
            let quant: f64 =
                (0..i).map(|t| q[c * i + t] as f64 * scales[c] as f64 * mean[t] as f64).sum::<f64>() + b[c] as f64;
            assert!((float - quant).abs() < 1e-5, "channel {c}: {float} vs {quant}");
        }
    }

    #[test]
    fn depthwise_rows_read_their_own_channel_and_exact_weights_change_nothing() {
        // Weights already on the int8 grid: no rounding error, no correction.
        let w = [127.0f32, -64.0, 1.0, 0.0, 2.0, -127.0];
        let (q, scales) = quantize_per_channel(&w, 2);
        let b = corrected_bias(&[3.0, -7.0], &w, &q, &scales, &[0.1, 0.2], &[2, 1, 1, 3], true);
        assert_eq!(b, [0.1, 0.2]);
        // One rounded weight in channel 1 shifts only channel 1's bias, by its error times
        // channel 1's mean.
        let w = [127.0f32, -64.0, 1.0, 0.0, 2.4, -127.0];
        let (q, scales) = quantize_per_channel(&w, 2);
        let b = corrected_bias(&[3.0, -7.0], &w, &q, &scales, &[0.1, 0.2], &[2, 1, 1, 3], true);
        assert_eq!(b[0], 0.1);
        let err = (q[4] as f64 * scales[1] as f64 - 2.4f32 as f64) * -7.0;
        assert_eq!(b[1], 0.2 - err as f32);
    }
}
