//! Cross-layer equalization of activation channels (Nagel et al. 2019, "Data-Free Quantization",
//! sec. 4.1, applied to the activations the per-tensor int8 scale serves badly).
//!
//! An activation is quantized with one scale for all its channels, so a tensor whose channels
//! span very different ranges loses the small ones: in MobileNetV2's 7x7 blocks the largest
//! channel of a linear bottleneck is 4-7x its median, and per-tensor int8 keeps 20-25 dB of such
//! a tensor where per-channel scales would keep 35 dB. Multiplying channel `c` by `t_c` where the
//! tensor is written, and dividing it out where it is read, changes nothing in exact arithmetic
//! when everything between is linear and homogeneous in each channel:
//!
//! - the writers are convolutions (one group, or depthwise) with no activation or a ReLU
//!   (`relu(t x) = t relu(x)` for `t > 0`), whose output channel `c` (weights row and bias) is
//!   scaled by `t_c`; or with a ReLU6 (a clamp to `[0, hi]`), when every `t_c >= 1` and the scaled
//!   channel stays under `hi` on the calibration data (`t_c r_c <= hi`): the clamp's upper bound,
//!   unreached by the channels scaled up, stays unreached, and the channels that reach it keep
//!   `t_c = 1`. On new data the scaled model clamps such a channel at `hi / t_c >= r_c`, its own
//!   calibration range, as any int8 tensor saturates at its range;
//! - the readers are convolutions reading it as their input, whose input channel `c` (weight
//!   columns; for a depthwise convolution the channel's filter) is divided by `t_c`, and residual
//!   Adds (with no activation or a ReLU) tying it to other such tensors, which then form one group
//!   scaled alike ([`super::channels`]'s residual groups).
//!
//! The scale is `t_c = (R / r_c)^a` with `r_c` the channel's largest magnitude over the group's
//! tensors on the fitting samples and `R` the largest `r_c`. Where every reader is depthwise, the
//! division costs nothing (each channel's filter has its own int8 scale), so `a = 1`: every
//! channel spans the tensor's range, as with per-channel activation scales. Otherwise `a = 1/2`,
//! the geometric middle CLE uses, which shrinks the spread of ranges to its square root while the
//! readers' weight columns (int8 per output row) grow by as much (1/4, 3/4 and 1 measured worse on
//! held-out calibration crops: 22.8, 22.9 and 21.6 dB against 23.0 dB). A tensor whose spread is
//! under 2x is left alone.
//!
//! Bias absorption (sec. 4.1.1 of the paper) then moves each channel's floor out of a tensor: a
//! channel written through a clamp at 0 (ReLU, ReLU6) whose smallest value on the calibration data
//! is `a_c > 0` has `a_c` taken off its writer's bias and added, times the weights, to its
//! readers' biases — exact where the clamp at 0 is unreached (and a ReLU6's top too), for readers
//! that are 1x1 convolutions without padding (a padded reader would see the shift at its borders
//! but not in its zeros). The tensor's channels then start at 0, and a per-tensor range spans
//! less. On MobileNetV2 it applies to the depthwise outputs (read by the 1x1 projections; the
//! expansions' outputs are read by padded depthwise convolutions): 877 channels of 8 tensors (560
//! of the last block's 960) had a floor on the calibration crops, and the logit SQNR on the crops
//! held out of every choice went from 23.0 to 23.4 dB.
//!
//! On by default. On MobileNetV2 it equalizes 33 groups (the stem's, every expansion's and
//! depthwise output, and the two widest residual groups): the logit SQNR on the calibration crops
//! held out of every choice went from 20.6 to 23.0 dB. The report lists each group with its spread
//! before and after, and `--per-layer` divides the scales back out before comparing with the float
//! model.

use crate::error::Result;
use crate::ir::{Act, Graph, Op};

/// The largest factor a channel is scaled by.
const MAX_SCALE: f64 = 16.0;

/// One equalized group of tensors, for the report: the first tensor's name, the number of
/// tensors, channels, and the spread of channel ranges (largest / median) before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct Equalized {
    pub tensor: String,
    /// Every tensor of the group, each now `t_c` times the original in channel `c`.
    pub members: Vec<String>,
    pub scales: Vec<f32>,
    /// Per channel, the bias absorbed into the readers (bias absorption): every member now holds
    /// `t_c x - a_c` in channel `c`.
    pub shifts: Vec<f32>,
    /// Channels whose bias was absorbed (`a_c > 0`).
    pub absorbed: usize,
    pub tensors: usize,
    pub channels: usize,
    pub spread_before: f64,
    pub spread_after: f64,
}

/// A group of tensors scaled alike: the convolutions writing them and the convolutions reading
/// them (node indices), the tensors, and their channel count.
struct Group {
    writers: Vec<usize>,
    readers: Vec<usize>,
    members: Vec<usize>,
    channels: usize,
    /// The smallest clamp bound of a writer with a bounded ReLU (see [`bounded_relu`]).
    bound: Option<f32>,
    /// Every reader is a depthwise convolution: dividing its channel's filter by `t_c` costs its
    /// per-channel int8 weights nothing, so the group is equalized fully (exponent 1).
    depthwise_readers: bool,
    /// Bias absorption applies: one tensor, written by convolutions ending in a clamp at 0 (ReLU,
    /// ReLU6), read only by 1x1 convolutions without padding (where a constant shift of an input
    /// channel is exactly a change of the reader's bias).
    absorbable: bool,
}

/// `relu(t x) = t relu(x)` for `t > 0`: no activation, or a clamp at 0 with no upper bound.
fn homogeneous(act: &Act) -> bool {
    act.is_none() || (act.lo == 0.0 && act.hi == f32::INFINITY)
}

/// A clamp at 0 with a finite upper bound `hi` (ReLU6): `min(t x, hi) = t min(x, hi)` holds for
/// `t >= 1` on every value with `t x <= hi`, so a writer with it is equalized only with scales
/// `t_c >= 1` that keep `t_c r_c <= hi` (the clamp, unreached by channel `c` on the calibration
/// data, stays unreached).
fn bounded_relu(act: &Act) -> Option<f32> {
    (act.lo == 0.0 && act.hi.is_finite() && act.hi > 0.0).then_some(act.hi)
}

/// A convolution with constant weights and bias (one group, or grouped such as depthwise).
fn conv_with_consts(n: &crate::ir::Node) -> bool {
    matches!(n.op, Op::Conv { .. }) && n.inputs.len() >= 3
}

/// The groups of `g` that can be equalized exactly.
fn groups(g: &Graph) -> Vec<Group> {
    let is_add = |n: &crate::ir::Node| matches!(&n.op, Op::Add { act } if homogeneous(act)) && n.inputs.len() == 2;
    // Union-find over the tensors tied by Adds of same-shaped rank-4 tensors.
    let mut root: Vec<usize> = (0..g.tensors.len()).collect();
    fn find(root: &mut [usize], t: usize) -> usize {
        let mut r = t;
        while root[r] != r {
            r = root[r];
        }
        root[t] = r;
        r
    }
    for n in g.nodes.iter().filter(|n| is_add(n)) {
        let out = n.outputs[0];
        if n.inputs.iter().any(|&t| g.tensors[t].shape != g.tensors[out].shape || g.tensors[t].shape.len() != 4) {
            continue;
        }
        for &t in &n.inputs {
            let (a, b) = (find(&mut root, t), find(&mut root, out));
            root[a] = b;
        }
    }
    let mut sets: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for n in &g.nodes {
        for &t in &n.outputs {
            if g.tensors[t].shape.len() == 4 {
                let r = find(&mut root, t);
                sets.entry(r).or_default().push(t);
            }
        }
    }
    let mut out = Vec::new();
    'sets: for (_, mut members) in sets {
        members.sort_unstable();
        members.dedup();
        let in_group = |t: usize| members.binary_search(&t).is_ok();
        let (mut writers, mut readers) = (Vec::new(), Vec::new());
        let mut bound: Option<f32> = None;
        for &t in &members {
            if g.outputs.contains(&t) || g.inputs.contains(&t) {
                continue 'sets;
            }
            for (i, n) in g.nodes.iter().enumerate() {
                if n.outputs.contains(&t) {
                    match &n.op {
                        _ if is_add(n) && n.inputs.iter().all(|&x| in_group(x)) => {}
                        Op::Conv { act, .. } if conv_with_consts(n) && homogeneous(act) => writers.push(i),
                        Op::Conv { act, .. } if conv_with_consts(n) && bounded_relu(act).is_some() => {
                            let hi = bounded_relu(act).unwrap_or(f32::INFINITY);
                            bound = Some(bound.map_or(hi, |b| b.min(hi)));
                            writers.push(i);
                        }
                        _ => continue 'sets,
                    }
                }
                if n.inputs.contains(&t) {
                    match () {
                        _ if is_add(n) && in_group(n.outputs[0]) => {}
                        _ if conv_with_consts(n) && n.inputs[0] == t && !n.inputs[1..].contains(&t) => readers.push(i),
                        _ => continue 'sets,
                    }
                }
            }
        }
        if writers.is_empty() || readers.is_empty() {
            continue;
        }
        let channels = g.tensors[members[0]].shape[1];
        let consts_ok = writers.iter().chain(&readers).all(|&i| {
            let n = &g.nodes[i];
            g.is_const(n.inputs[1]) && g.is_const(n.inputs[2])
        });
        if !consts_ok {
            continue;
        }
        writers.sort_unstable();
        writers.dedup();
        readers.sort_unstable();
        readers.dedup();
        let depthwise_readers = readers.iter().all(|&i| is_depthwise(g, i));
        let absorbable = members.len() == 1
            && writers.iter().all(|&i| matches!(&g.nodes[i].op, Op::Conv { act, .. } if act.lo == 0.0))
            && readers.iter().all(|&i| is_pointwise(g, i));
        out.push(Group { writers, readers, members, channels, bound, depthwise_readers, absorbable });
    }
    out
}

/// Node `i` is a depthwise convolution: one input channel per group.
fn is_depthwise(g: &Graph, i: usize) -> bool {
    let n = &g.nodes[i];
    matches!(n.op, Op::Conv { group, .. } if group > 1 && g.tensors[n.inputs[1]].shape.get(1) == Some(&1))
}

/// Node `i` is a 1x1 convolution with one group and no padding.
fn is_pointwise(g: &Graph, i: usize) -> bool {
    let n = &g.nodes[i];
    matches!(&n.op, Op::Conv { group: 1, window, .. } if window.kernel == [1, 1] && window.pads == [0; 4])
}

fn spread(r: &[f64]) -> f64 {
    let mut s: Vec<f64> = r.iter().copied().filter(|v| *v > 0.0).collect();
    if s.is_empty() {
        return 1.0;
    }
    s.sort_by(f64::total_cmp);
    s[s.len() - 1] / s[s.len() / 2]
}

/// Equalize the groups of `g` whose channel ranges on `samples` spread 2x or more. Returns what
/// was done, one entry per group.
pub fn equalize(g: &mut Graph, samples: &[Vec<f32>]) -> Result<Vec<Equalized>> {
    let found = groups(g);
    if found.is_empty() || samples.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Vec<usize> = found.iter().flat_map(|gr| gr.members.iter().copied()).collect();
    // Each member's per-channel largest magnitude, and smallest value.
    let mut ranges: Vec<Vec<f64>> = wanted.iter().map(|&t| vec![0f64; g.tensors[t].shape[1]]).collect();
    let mut lows: Vec<Vec<f64>> = wanted.iter().map(|&t| vec![f64::INFINITY; g.tensors[t].shape[1]]).collect();
    crate::calib::eval::run_graph_f32(g, &wanted, samples, &mut |_, vals| {
        for (((r, lo), v), &t) in ranges.iter_mut().zip(lows.iter_mut()).zip(&vals).zip(&wanted) {
            let s = &g.tensors[t].shape;
            let (c, hw) = (s[1], s[2] * s[3]);
            for (ch, plane) in v.chunks_exact(hw).enumerate() {
                let m = plane.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
                r[ch % c] = r[ch % c].max(m);
                let low = plane.iter().fold(f32::INFINITY, |m, x| m.min(*x)) as f64;
                lo[ch % c] = lo[ch % c].min(low);
            }
        }
        Ok(())
    })?;
    let mut out = Vec::new();
    let mut at = 0;
    for gr in &found {
        let c = gr.channels;
        let mut r = vec![0f64; c];
        for k in 0..gr.members.len() {
            for (a, b) in r.iter_mut().zip(&ranges[at + k]) {
                *a = a.max(*b);
            }
        }
        let low = &lows[at];
        at += gr.members.len();
        let before = spread(&r);
        let top = r.iter().fold(0f64, |m, v| m.max(*v));
        // A bounded ReLU writer: `t_c >= 1` (by construction) and `t_c r_c <= hi`.
        let scale = before >= 2.0 && !gr.bound.is_some_and(|hi| top > hi as f64);
        let exponent = if gr.depthwise_readers { 1.0 } else { 0.5 };
        let t: Vec<f64> = r
            .iter()
            .map(|&rc| if scale && rc > 0.0 { (top / rc).powf(exponent).min(MAX_SCALE) } else { 1.0 })
            .collect();
        // Bias absorption (Nagel et al. 2019, sec. 4.1.1): a channel that never goes below
        // `a_c > 0` on the calibration data (its clamp at 0 unreached) gives `a_c` to its readers'
        // biases; with a bounded clamp only if its top is unreached too (then the clamp to
        // `[0, hi]` of `x - a_c` equals `x - a_c` wherever `x` was).
        let a: Vec<f64> = (0..c)
            .map(|ch| {
                let (lo, hi) = (low[ch] * t[ch], r[ch] * t[ch]);
                let below_bound = gr.bound.is_none_or(|b| hi < b as f64 * (1.0 - 1e-6));
                if gr.absorbable && lo.is_finite() && lo > 0.0 && below_bound {
                    lo
                } else {
                    0.0
                }
            })
            .collect();
        let absorbed = a.iter().filter(|&&v| v > 0.0).count();
        if !scale && absorbed == 0 {
            continue;
        }
        for &i in &gr.writers {
            let (w, b) = (g.nodes[i].inputs[1], g.nodes[i].inputs[2]);
            let per = g.tensors[w].shape[1..].iter().product::<usize>();
            if let Some(v) = g.tensors[w].value.as_mut() {
                for (row, tc) in v.chunks_exact_mut(per).zip(&t) {
                    row.iter_mut().for_each(|x| *x = (*x as f64 * tc) as f32);
                }
            }
            if let Some(v) = g.tensors[b].value.as_mut() {
                v.iter_mut().zip(&t).for_each(|(x, tc)| *x = (*x as f64 * tc) as f32);
            }
        }
        for &i in &gr.readers {
            let w = g.nodes[i].inputs[1];
            let group = match g.nodes[i].op {
                Op::Conv { group, .. } => group.max(1),
                _ => 1,
            };
            let s = g.tensors[w].shape.clone();
            // Weights `[O, I / group, ...]`: output `o` of group `o / (O / group)` reads input
            // channels from `(o / (O / group)) * (I / group)` on.
            let (o_per_group, cin_g, kk) = ((s[0] / group).max(1), s[1], s[2..].iter().product::<usize>());
            if let Some(v) = g.tensors[w].value.as_mut() {
                for (j, x) in v.iter_mut().enumerate() {
                    let o = j / (cin_g * kk);
                    let ch = (o / o_per_group) * cin_g + (j / kk) % cin_g;
                    *x = (*x as f64 / t[ch]) as f32;
                }
            }
            if absorbed > 0 {
                // A 1x1 reader (checked): `W (y - a) + (b + W a)`.
                let b = g.nodes[i].inputs[2];
                let wv = g.tensors[w].value.clone().unwrap_or_default();
                if let Some(bv) = g.tensors[b].value.as_mut() {
                    for (o, bo) in bv.iter_mut().enumerate() {
                        let row = &wv[o * cin_g..(o + 1) * cin_g];
                        *bo = (*bo as f64 + row.iter().zip(&a).map(|(&w, &ac)| w as f64 * ac).sum::<f64>()) as f32;
                    }
                }
            }
        }
        if absorbed > 0 {
            for &i in &gr.writers {
                let b = g.nodes[i].inputs[2];
                if let Some(v) = g.tensors[b].value.as_mut() {
                    v.iter_mut().zip(&a).for_each(|(x, ac)| *x = (*x as f64 - ac) as f32);
                }
            }
        }
        let after: Vec<f64> = r.iter().zip(&t).map(|(a, b)| a * b).collect();
        out.push(Equalized {
            tensor: g.tensors[gr.members[0]].name.clone(),
            members: gr.members.iter().map(|&m| g.tensors[m].name.clone()).collect(),
            scales: t.iter().map(|&v| v as f32).collect(),
            shifts: a.iter().map(|&v| v as f32).collect(),
            absorbed,
            tensors: gr.members.len(),
            channels: c,
            spread_before: before,
            spread_after: spread(&after),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensor `t` of `g` run in f32 on each of `samples`.
    fn values(g: &Graph, t: usize, samples: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let mut outs = Vec::new();
        crate::calib::eval::run_graph_f32(g, &[t], samples, &mut |_, v| {
            outs.push(v[0].clone());
            Ok(())
        })
        .unwrap();
        outs
    }

    /// The same function, to f32 rounding (relative to the largest output).
    fn assert_same(before: &[Vec<f32>], after: &[Vec<f32>]) {
        let scale = before.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in after.iter().flatten().zip(before.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
    }

    /// A residual model equalized in place computes the same function (f32, to rounding), and
    /// its channel ranges spread less.
    #[test]
    fn equalization_keeps_the_function() {
        use crate::onnx::builder::{Attr, OnnxBuilder, Rng};
        let mut rng = Rng::new(4);
        let mut b = OnnxBuilder::new("eq", 13);
        let x = b.input("input", &[1, 4, 6, 6]);
        // A projection whose output channels have very different scales, a residual Add, and a
        // reader.
        let mut wv = rng.vec(8 * 4, 0.5);
        for (i, v) in wv.iter_mut().enumerate() {
            *v *= [0.05f32, 1.0, 0.2, 3.0, 0.1, 0.5, 8.0, 0.3][i / 4];
        }
        let w1 = b.constant(&[8, 4, 1, 1], wv);
        let b1 = b.constant(&[8], rng.vec(8, 0.1));
        let p = b.node("Conv", &[&x, &w1, &b1], vec![]);
        let w2 = b.constant(&[8, 8, 3, 3], rng.vec(8 * 8 * 9, 0.2));
        let b2 = b.constant(&[8], rng.vec(8, 0.1));
        let h = b.node("Conv", &[&p, &w2, &b2], vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
        // A small residual branch, so that the sum keeps the projection's spread.
        let w3 = b.constant(&[8, 8, 1, 1], rng.vec(64, 0.01));
        let b3 = b.constant(&[8], rng.vec(8, 0.1));
        let q = b.node("Conv", &[&h, &w3, &b3], vec![]);
        let s = b.node("Add", &[&p, &q], vec![]);
        let w4 = b.constant(&[5, 8, 1, 1], rng.vec(40, 0.3));
        let b4 = b.constant(&[5], rng.vec(5, 0.1));
        let y = b.node("Conv", &[&s, &w4, &b4], vec![]);
        let y = b.node("Relu", &[&y], vec![]);
        b.output(&y);
        let onnx = b.build();
        let mut g = crate::load_graph(&onnx, "eq", &Default::default()).unwrap();
        let samples: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(4 * 36, 1.0)).collect();
        let run = |g: &Graph| values(g, g.outputs[0], &samples);
        let before = run(&g);
        let done = equalize(&mut g, &samples).unwrap();
        // The residual group (the projection, the branch and their sum); the branch's inner
        // tensor (3x3 convolution to 1x1 convolution) spreads less than 2x and is left alone.
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!((done[0].tensors, done[0].channels), (3, 8), "{done:?}");
        assert!(done[0].spread_after < done[0].spread_before, "{done:?}");
        let after = run(&g);
        assert_same(&before, &after);
    }

    /// ReLU6 writers and depthwise readers (MobileNetV2's expansion -> depthwise -> projection):
    /// the channels scaled up stay under 6, the function is unchanged, and the tensor read only by
    /// the depthwise convolution is equalized fully (every channel spans its range).
    #[test]
    fn relu6_and_depthwise_chains_are_equalized_exactly() {
        use crate::onnx::builder::{Attr, OnnxBuilder, Rng};
        let mut rng = Rng::new(9);
        let mut b = OnnxBuilder::new("eq6", 13);
        let x = b.input("input", &[1, 4, 6, 6]);
        let mut wv = rng.vec(8 * 4, 0.5);
        // Channel 6 is large enough to reach the clamp at 6 on every sample; the others stay under.
        for (i, v) in wv.iter_mut().enumerate() {
            *v *= [0.05f32, 1.0, 0.2, 0.6, 0.1, 0.5, 40.0, 0.3][i / 4];
        }
        let w1 = b.constant(&[8, 4, 1, 1], wv);
        let b1 = b.constant(&[8], rng.vec(8, 0.1));
        let h = b.node("Conv", &[&x, &w1, &b1], vec![]);
        let (lo, hi) = (b.constant(&[], vec![0.0]), b.constant(&[], vec![6.0]));
        let h = b.node("Clip", &[&h, &lo, &hi], vec![]);
        let mut dw = rng.vec(8 * 9, 0.4);
        for (i, v) in dw.iter_mut().enumerate() {
            *v *= [1.0f32, 0.1, 2.0, 0.05, 1.0, 0.3, 0.02, 1.0][i / 9];
        }
        let w2 = b.constant(&[8, 1, 3, 3], dw);
        let b2 = b.constant(&[8], rng.vec(8, 0.1));
        let pads = ("pads", Attr::Ints(vec![1, 1, 1, 1]));
        let h = b.node("Conv", &[&h, &w2, &b2], vec![pads, ("group", Attr::Int(8))]);
        let (lo, hi) = (b.constant(&[], vec![0.0]), b.constant(&[], vec![6.0]));
        let h = b.node("Clip", &[&h, &lo, &hi], vec![]);
        let w3 = b.constant(&[5, 8, 1, 1], rng.vec(40, 0.3));
        let b3 = b.constant(&[5], rng.vec(5, 0.1));
        let y = b.node("Conv", &[&h, &w3, &b3], vec![]);
        b.output(&y);
        let onnx = b.build();
        let mut g = crate::load_graph(&onnx, "eq6", &Default::default()).unwrap();
        let samples: Vec<Vec<f32>> = (0..6).map(|_| rng.vec(4 * 36, 1.0)).collect();
        let run = |g: &Graph| values(g, g.outputs[0], &samples);
        let before = run(&g);
        let done = equalize(&mut g, &samples).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        // Read by the depthwise convolution only: every channel scaled to the largest range.
        assert!(done[0].spread_after < 1.01 && done[0].spread_before > 3.0, "{done:?}");
        // Read by a 1x1 convolution: the square root of the spread.
        assert!((done[1].spread_after - done[1].spread_before.sqrt()).abs() < 0.05 * done[1].spread_after, "{done:?}");
        // No channel is scaled down, and the one at the clamp is not scaled.
        assert!(done.iter().all(|e| e.scales.iter().all(|&t| t >= 1.0)), "{done:?}");
        assert_eq!(done[0].scales[6], 1.0, "{done:?}");
        let after = run(&g);
        assert_same(&before, &after);
    }

    /// Bias absorption: a ReLU tensor whose channels never reach 0 on the samples, read by a 1x1
    /// convolution, gives each channel's floor to the reader's bias; the function is unchanged and
    /// the channels now start at 0.
    #[test]
    fn biases_are_absorbed_exactly() {
        use crate::onnx::builder::{OnnxBuilder, Rng};
        let mut rng = Rng::new(21);
        let mut b = OnnxBuilder::new("absorb", 13);
        let x = b.input("input", &[1, 4, 5, 5]);
        let w1 = b.constant(&[8, 4, 1, 1], rng.vec(32, 0.1));
        // Channels 0-5 sit near 3 (their floor is absorbed), 6-7 straddle 0 (they are not).
        let b1 = b.constant(&[8], vec![3.0, 2.5, 4.0, 3.5, 2.0, 3.0, 0.0, 0.0]);
        let h = b.node("Conv", &[&x, &w1, &b1], vec![]);
        let h = b.node("Relu", &[&h], vec![]);
        let w2 = b.constant(&[5, 8, 1, 1], rng.vec(40, 0.3));
        let b2 = b.constant(&[5], rng.vec(5, 0.1));
        let y = b.node("Conv", &[&h, &w2, &b2], vec![]);
        b.output(&y);
        let onnx = b.build();
        let mut g = crate::load_graph(&onnx, "absorb", &Default::default()).unwrap();
        let samples: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(4 * 25, 1.0)).collect();
        let run = |g: &Graph, t: usize| values(g, t, &samples);
        let (hidden, out) = (g.nodes[0].outputs[0], g.outputs[0]);
        let before = run(&g, out);
        let done = equalize(&mut g, &samples).unwrap();
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].absorbed, 6, "{done:?}");
        assert!(done[0].shifts[..6].iter().all(|&a| a > 1.0) && done[0].shifts[6..].iter().all(|&a| a == 0.0));
        let after = run(&g, out);
        assert_same(&before, &after);
        // Each absorbed channel's smallest value is now 0.
        let h = run(&g, hidden);
        for ch in 0..6 {
            let low = h.iter().flat_map(|v| v[ch * 25..(ch + 1) * 25].iter().copied()).fold(f32::INFINITY, f32::min);
            assert!(low.abs() < 1e-5 * done[0].shifts[ch].abs().max(1.0), "channel {ch}: {low}");
        }
    }
}
