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
//! - the writers are convolutions (one group) with no activation or a ReLU (`relu(t x) = t
//!   relu(x)` for `t > 0`; ReLU6 or another clip is not, unless its bound scaled too, which a
//!   per-tensor clamp cannot), whose output channel `c` (weights row and bias) is scaled by `t_c`;
//! - the readers are convolutions (one group) reading it as their input, whose input channel `c`
//!   (weight columns) is divided by `t_c`, and residual Adds (with no activation or a ReLU)
//!   tying it to other such tensors, which then form one group scaled alike ([`super::channels`]'s
//!   residual groups).
//!
//! The scale is `t_c = (R / r_c)^(1/2)` with `r_c` the channel's largest magnitude over the
//! group's tensors on (up to 32 of) the fitting samples and `R` the largest `r_c`: the geometric
//! middle CLE uses, which shrinks the spread of ranges to its square root while the readers'
//! weight columns (int8 per output row) grow by as much. A tensor whose spread is under 2x is
//! left alone.
//!
//! Off by default (`--equalize true`): on MobileNetV2 the ReLU6 after every expansion leaves only
//! the two widest residual groups (96 and 160 channels, spreads 2.9x and 4.7x) to equalize, and
//! with either exponent (1/2, 3/4, 1) the held-out crops measured no better (20.4-20.7 dB against
//! 20.6 dB). The report lists each group with its spread before and after, and `--per-layer`
//! divides the scales back out before comparing with the float model.

use crate::error::Result;
use crate::ir::{Act, Graph, Op};

/// One equalized group of tensors, for the report: the first tensor's name, the number of
/// tensors, channels, and the spread of channel ranges (largest / median) before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct Equalized {
    pub tensor: String,
    /// Every tensor of the group, each now `t_c` times the original in channel `c`.
    pub members: Vec<String>,
    pub scales: Vec<f32>,
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
}

/// `relu(t x) = t relu(x)` for `t > 0`: no activation, or a clamp at 0 with no upper bound.
fn homogeneous(act: &Act) -> bool {
    act.is_none() || (act.lo == 0.0 && act.hi == f32::INFINITY)
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
        for &t in &members {
            if g.outputs.contains(&t) || g.inputs.contains(&t) {
                continue 'sets;
            }
            for (i, n) in g.nodes.iter().enumerate() {
                let conv = |n: &crate::ir::Node| matches!(n.op, Op::Conv { group: 1, .. }) && n.inputs.len() >= 3;
                if n.outputs.contains(&t) {
                    match &n.op {
                        _ if is_add(n) && n.inputs.iter().all(|&x| in_group(x)) => {}
                        Op::Conv { act, .. } if conv(n) && homogeneous(act) => writers.push(i),
                        _ => continue 'sets,
                    }
                }
                if n.inputs.contains(&t) {
                    match () {
                        _ if is_add(n) && in_group(n.outputs[0]) => {}
                        _ if conv(n) && n.inputs[0] == t && !n.inputs[1..].contains(&t) => readers.push(i),
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
        out.push(Group { writers, readers, members, channels });
    }
    out
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
    // Each member's per-channel largest magnitude.
    let mut ranges: Vec<Vec<f64>> = wanted.iter().map(|&t| vec![0f64; g.tensors[t].shape[1]]).collect();
    crate::calib::eval::run_graph_f32(g, &wanted, samples, &mut |_, vals| {
        for ((r, v), &t) in ranges.iter_mut().zip(&vals).zip(&wanted) {
            let s = &g.tensors[t].shape;
            let (c, hw) = (s[1], s[2] * s[3]);
            for (ch, plane) in v.chunks_exact(hw).enumerate() {
                let m = plane.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
                r[ch % c] = r[ch % c].max(m);
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
        at += gr.members.len();
        let before = spread(&r);
        if before < 2.0 {
            continue;
        }
        let top = r.iter().fold(0f64, |m, v| m.max(*v));
        let t: Vec<f64> = r.iter().map(|&rc| if rc > 0.0 { (top / rc).sqrt().min(16.0) } else { 1.0 }).collect();
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
            let s = g.tensors[w].shape.clone();
            let (cin, kk) = (s[1], s[2..].iter().product::<usize>());
            if let Some(v) = g.tensors[w].value.as_mut() {
                for (j, x) in v.iter_mut().enumerate() {
                    let ch = (j / kk) % cin;
                    *x = (*x as f64 / t[ch]) as f32;
                }
            }
        }
        let after: Vec<f64> = r.iter().zip(&t).map(|(a, b)| a * b).collect();
        out.push(Equalized {
            tensor: g.tensors[gr.members[0]].name.clone(),
            members: gr.members.iter().map(|&m| g.tensors[m].name.clone()).collect(),
            scales: t.iter().map(|&v| v as f32).collect(),
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
        let run = |g: &Graph| {
            let mut outs = Vec::new();
            crate::calib::eval::run_graph_f32(g, &g.outputs.clone(), &samples, &mut |_, v| {
                outs.push(v[0].clone());
                Ok(())
            })
            .unwrap();
            outs
        };
        let before = run(&g);
        let done = equalize(&mut g, &samples).unwrap();
        // The residual group (the projection, the branch and their sum); the branch's inner
        // tensor (3x3 convolution to 1x1 convolution) spreads less than 2x and is left alone.
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!((done[0].tensors, done[0].channels), (3, 8), "{done:?}");
        assert!(done[0].spread_after < done[0].spread_before, "{done:?}");
        let after = run(&g);
        let scale = before.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in after.iter().flatten().zip(before.iter().flatten()) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
    }
}
