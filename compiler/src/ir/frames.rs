//! Camera input (`--input-dtype u8`): the graph's image input becomes the raw uint8 frame, and
//! a first node normalizes it, `x = u / 255 * (1 / std[c]) - mean[c] / std[c]` (a per-channel
//! affine: in int8, a 1x1 depthwise convolution whose one weight per channel is exact), so that an
//! app feeds camera frames without a float pass. The normalized tensor keeps the old input's
//! calibration statistics (renamed with it), so every choice made on the float-input graph holds.

use crate::error::{CompileError, Result};
use crate::ir::*;

/// Suffix of the normalized tensor's name (the raw frame input keeps the model's input name).
pub const NORMALIZED: &str = ":normalized";

/// `g` and `stats` with `g`'s one rank-4 input `[N, C, H, W]` replaced by its uint8 frame
/// (values 0..=255 as f32) and the normalization node in front. `mean` and `std` have one value
/// or one per channel, as `--mean` / `--std` (applied after scaling to [0, 1]).
pub fn frame_input(g: &Graph, stats: &Stats, mean: &[f32], std: &[f32]) -> Result<(Graph, Stats)> {
    if g.inputs.len() != 1 {
        return Err(CompileError::Data(format!(
            "--input-dtype u8 needs a model with one (image) input; this one has {}",
            g.inputs.len()
        )));
    }
    let i = g.inputs[0];
    let (name, shape) = (g.tensors[i].name.clone(), g.tensors[i].shape.clone());
    if shape.len() != 4 {
        return Err(CompileError::Data(format!(
            "--input-dtype u8 needs an image input [N, C, H, W]; input '{name}' has shape {shape:?}"
        )));
    }
    let c = shape[1];
    for (option, v) in [("--mean", mean), ("--std", std)] {
        if v.len() != c && v.len() != 1 {
            return Err(CompileError::PreprocessChannels { option, given: v.len(), channels: c });
        }
    }
    let at = |v: &[f32], ch: usize| v[if v.len() == 1 { 0 } else { ch }];
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s != 0.0)) {
        return Err(CompileError::Data(format!("--std {bad}: a standard deviation must be finite and non-zero")));
    }
    let scale: Vec<f32> = (0..c).map(|ch| 1.0 / (255.0 * at(std, ch))).collect();
    let shift: Vec<f32> = (0..c).map(|ch| -at(mean, ch) / at(std, ch)).collect();
    let mut out = g.clone();
    let normalized = format!("{name}{NORMALIZED}");
    out.tensors[i].name = normalized.clone();
    let raw = out.tensors.len();
    out.tensors.push(Tensor { name: name.clone(), shape, value: None });
    let s = out.tensors.len();
    out.tensors.push(Tensor { name: format!("{name}:frame_scale"), shape: vec![c], value: Some(scale) });
    out.tensors.push(Tensor { name: format!("{name}:frame_shift"), shape: vec![c], value: Some(shift) });
    out.nodes.insert(
        0,
        Node {
            name: format!("{name}:normalize"),
            onnx_op: "uint8 frame normalization".into(),
            op: Op::ChannelAffine { act: Act::NONE },
            inputs: vec![raw, s, s + 1],
            outputs: vec![i],
        },
    );
    out.inputs = vec![raw];
    let mut st = stats.clone();
    fn rename<V>(m: &mut std::collections::HashMap<String, V>, from: &str, to: &str) {
        if let Some(v) = m.remove(from) {
            m.insert(to.to_string(), v);
        }
    }
    rename(&mut st.ranges, &name, &normalized);
    rename(&mut st.extremes, &name, &normalized);
    rename(&mut st.channel_means, &name, &normalized);
    rename(&mut st.channel_rms, &name, &normalized);
    Ok((out, st))
}

/// The raw frame values (0..=255) of normalized samples (NCHW, as the compiler takes them): the
/// inverse of `frame_input`'s node, rounded to the integers they came from.
pub fn frame_values(samples: &[Vec<f32>], channels: usize, mean: &[f32], std: &[f32]) -> Vec<Vec<f32>> {
    let at = |v: &[f32], ch: usize| v[if v.len() == 1 { 0 } else { ch }];
    samples
        .iter()
        .map(|x| {
            let plane = (x.len() / channels.max(1)).max(1);
            x.iter()
                .enumerate()
                .map(|(k, &v)| {
                    let ch = (k / plane) % channels.max(1);
                    ((v * at(std, ch) + at(mean, ch)) * 255.0).round().clamp(0.0, 255.0)
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_node_inverts_the_preprocessing_and_keeps_the_statistics() {
        let mut g = Graph::default();
        g.tensors.push(Tensor { name: "x".into(), shape: vec![1, 2, 1, 2], value: None });
        g.inputs = vec![0];
        g.outputs = vec![0];
        let mut stats = Stats::default();
        stats.ranges.insert("x".into(), Range { min: -2.0, max: 2.5 });
        let (mean, std) = ([0.5f32, 0.25], [0.2f32, 0.5]);
        let (f, st) = frame_input(&g, &stats, &mean, &std).unwrap();
        assert_eq!(f.tensors[f.inputs[0]].name, "x");
        assert_eq!(f.tensors[0].name, "x:normalized");
        assert_eq!(st.ranges.get("x:normalized"), Some(&Range { min: -2.0, max: 2.5 }));
        assert!(!st.ranges.contains_key("x"));
        let node = &f.nodes[0];
        assert!(matches!(node.op, Op::ChannelAffine { act } if act.is_none()));
        // u = 51 in channel 0: (0.2 - 0.5) / 0.2 = -1.5.
        let (a, b) = (f.value(node.inputs[1]), f.value(node.inputs[2]));
        assert!((51.0 * a[0] + b[0] + 1.5).abs() < 1e-5);
        let normalized = vec![vec![-1.5f32, 0.0, (1.0 - 0.25) / 0.5, -0.5]];
        assert_eq!(frame_values(&normalized, 2, &mean, &std), vec![vec![51.0, 128.0, 255.0, 0.0]]);
        assert!(frame_input(&g, &stats, &[0.5, 0.5, 0.5], &std).is_err());
        assert!(frame_input(&g, &stats, &mean, &[0.0]).is_err());
    }
}
