//! Graph rewrites before quantization: BatchNormalization folded into the preceding Conv/Dense,
//! ReLU/ReLU6/Clip fused into their producer (they become the output clamp), the activations
//! exporters spell out recognized (`x * sigmoid(x)` is SiLU, `x * hard_sigmoid(x)` hard-swish,
//! `x / 2 * (1 + erf(x / sqrt 2))` GELU) so they become one lookup table in int8, dead nodes
//! removed.
//! Every rewrite keeps the name of the tensor the ONNX model computes last, so calibration
//! statistics taken from the float model apply to the rewritten graph.

use crate::ir::*;

/// A node's output may be absorbed by its consumer when nothing else reads it.
fn single_use(g: &Graph, t: usize) -> bool {
    !g.outputs.contains(&t) && g.consumers(t).len() == 1
}

pub fn fold_batchnorm(g: &mut Graph) -> usize {
    let mut folded = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|bn| {
            let Op::ChannelAffine { act } = g.nodes[bn].op else { return None };
            let x = g.nodes[bn].inputs[0];
            let p = g.producer(x)?;
            let ok = matches!(g.nodes[p].op, Op::Conv { act, .. } | Op::Dense { act } if act.is_none())
                && act.is_none()
                && single_use(g, x)
                && g.tensors[x].shape.len() >= 2;
            ok.then_some((bn, p))
        });
        let Some((bn, p)) = found else { break };
        let (scale, shift) = (g.value(g.nodes[bn].inputs[1]).to_vec(), g.value(g.nodes[bn].inputs[2]).to_vec());
        let (w, b) = (g.nodes[p].inputs[1], g.nodes[p].inputs[2]);
        let out_c = g.tensors[w].shape[0];
        if out_c != scale.len() {
            break;
        }
        let per = g.tensors[w].elements() / out_c;
        let wv = g.tensors[w].value.as_mut().expect("weights are constant");
        for (o, s) in scale.iter().enumerate() {
            for v in &mut wv[o * per..(o + 1) * per] {
                *v *= s;
            }
        }
        let bv = g.tensors[b].value.as_mut().expect("bias is constant");
        for o in 0..out_c {
            bv[o] = bv[o] * scale[o] + shift[o];
        }
        g.nodes[p].outputs[0] = g.nodes[bn].outputs[0];
        g.nodes.remove(bn);
        folded += 1;
    }
    folded
}

/// The per-channel values of constant `c` applied to a Conv/Dense output of `out_c` channels
/// (axis 1 of a convolution's NCHW output, the last axis of a dense layer's): a scalar, or one
/// value per channel with every other axis 1. `None` for anything else.
fn per_channel(g: &Graph, c: usize, out: usize, conv: bool, out_c: usize) -> Option<Vec<f32>> {
    let v = g.tensors[c].value.as_deref()?;
    if v.len() == 1 {
        return Some(vec![v[0]; out_c]);
    }
    let (cs, os) = (&g.tensors[c].shape, &g.tensors[out].shape);
    if v.len() != out_c || cs.len() > os.len() {
        return None;
    }
    // Right-aligned (numpy): the channel axis of the output, counted from the end.
    let axis_from_end = if conv { os.len().saturating_sub(2) } else { 0 };
    let ok = cs.iter().rev().enumerate().all(|(i, &d)| if i == axis_from_end { d == out_c } else { d == 1 });
    ok.then(|| v.to_vec())
}

/// `Mul` or `Add` of a Conv/Dense output (nothing else reading it, no activation fused yet) by a
/// constant per-channel or scalar: folded into the weights and bias, exactly (the learnable
/// affine blocks of PP-LCNet, a BatchNormalization exported as Mul and Add). The Mul/Add's fused
/// activation becomes the layer's.
pub fn fold_affine(g: &mut Graph) -> usize {
    let mut folded = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|m| {
            let (mul, act) = match g.nodes[m].op {
                Op::Mul { act } => (true, act),
                Op::Add { act } => (false, act),
                _ => return None,
            };
            let [a, b] = [*g.nodes[m].inputs.first()?, *g.nodes[m].inputs.get(1)?];
            for (x, c) in [(a, b), (b, a)] {
                if !g.is_const(c) || g.is_const(x) || !single_use(g, x) {
                    continue;
                }
                let Some(p) = g.producer(x) else { continue };
                let conv = match g.nodes[p].op {
                    Op::Conv { act, .. } if act.is_none() => true,
                    Op::Dense { act } if act.is_none() => false,
                    _ => continue,
                };
                let out_c = g.tensors[g.nodes[p].inputs[1]].shape[0];
                if g.tensors[g.nodes[m].outputs[0]].shape != g.tensors[x].shape {
                    continue;
                }
                if let Some(v) = per_channel(g, c, x, conv, out_c) {
                    return Some((m, p, mul, act, v));
                }
            }
            None
        });
        let Some((m, p, mul, act, v)) = found else { break };
        let (w, b) = (g.nodes[p].inputs[1], g.nodes[p].inputs[2]);
        let per = g.tensors[w].elements() / v.len();
        if mul {
            let wv = g.tensors[w].value.as_mut().expect("weights are constant");
            for (o, s) in v.iter().enumerate() {
                for x in &mut wv[o * per..(o + 1) * per] {
                    *x *= s;
                }
            }
        }
        let bv = g.tensors[b].value.as_mut().expect("bias is constant");
        for (o, s) in v.iter().enumerate() {
            if mul {
                bv[o] *= s;
            } else {
                bv[o] += s;
            }
        }
        *g.nodes[p].op.act_mut().expect("conv and dense have an activation") = act;
        g.nodes[p].outputs[0] = g.nodes[m].outputs[0];
        g.nodes.remove(m);
        folded += 1;
    }
    folded
}

/// A scalar `Mul` or `Add` after a `Unary` (nothing else reading the function's output):
/// absorbed as the unary's `post` affine, so that in int8 the chain is one lookup table.
pub fn fold_unary_affine(g: &mut Graph) -> usize {
    let mut folded = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|m| {
            let mul = match g.nodes[m].op {
                Op::Mul { act } if act.is_none() => true,
                Op::Add { act } if act.is_none() => false,
                _ => return None,
            };
            let [a, b] = [*g.nodes[m].inputs.first()?, *g.nodes[m].inputs.get(1)?];
            for (x, c) in [(a, b), (b, a)] {
                let Some(k) = scalar(g, c) else { continue };
                if g.is_const(x) || !single_use(g, x) || g.tensors[g.nodes[m].outputs[0]].shape != g.tensors[x].shape {
                    continue;
                }
                let Some(p) = g.producer(x) else { continue };
                if matches!(g.nodes[p].op, Op::Unary { .. }) && g.nodes[p].outputs.len() == 1 {
                    return Some((m, p, mul, k));
                }
            }
            None
        });
        let Some((m, p, mul, k)) = found else { break };
        if let Op::Unary { post, .. } = &mut g.nodes[p].op {
            if mul {
                *post = [post[0] * k, post[1] * k];
            } else {
                post[1] += k;
            }
        }
        g.nodes[p].outputs[0] = g.nodes[m].outputs[0];
        g.nodes.remove(m);
        folded += 1;
    }
    folded
}

pub fn fuse_activations(g: &mut Graph) -> usize {
    let mut fused = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|c| {
            let Op::Clip { act } = g.nodes[c].op else {
                return None;
            };
            let x = g.nodes[c].inputs[0];
            let p = g.producer(x)?;
            (g.nodes[p].op.act().is_some() && single_use(g, x)).then_some((c, p, act))
        });
        let Some((c, p, act)) = found else { break };
        let a = g.nodes[p].op.act_mut().expect("checked");
        *a = a.then(act);
        g.nodes[p].outputs[0] = g.nodes[c].outputs[0];
        g.nodes.remove(c);
        fused += 1;
    }
    fused
}

/// The scalar value of constant tensor `t`, if it is one.
fn scalar(g: &Graph, t: usize) -> Option<f32> {
    let v = g.tensors[t].value.as_deref()?;
    (v.len() == 1).then(|| v[0])
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

/// Replace the chain ending at node `last` by one `Unary` node of `function` on `x`, named and
/// writing as `last` does (the chain's other nodes become dead and are removed later).
fn replace_with_unary(g: &mut Graph, last: usize, x: usize, function: i32) {
    g.nodes[last].op = Op::Unary { function, alpha: 0.0, beta: 0.0, post: [1.0, 0.0] };
    g.nodes[last].inputs = vec![x];
}

/// `Mul(x, f(x))` with `f` sigmoid (SiLU) or hard-sigmoid with alpha 1/6, beta 1/2 (hard-swish,
/// as exported before opset 14); `Mul(Mul(x, 1/2), 1 + erf(x / sqrt 2))` and
/// `Mul(Mul(x, 1 + erf(x / sqrt 2)), 1/2)` (GELU, as exported before opset 20).
pub fn recognize_activations(g: &mut Graph) -> usize {
    use sparq_format::layout::op::unary as u;
    let mut found = 0;
    loop {
        let hit = (0..g.nodes.len()).find_map(|m| {
            if !matches!(g.nodes[m].op, Op::Mul { act } if act.is_none()) {
                return None;
            }
            let [a, b] = [g.nodes[m].inputs[0], g.nodes[m].inputs[1]];
            // SiLU / hard-swish: one operand is f(other).
            for (x, fx) in [(a, b), (b, a)] {
                let Some(p) = g.producer(fx) else { continue };
                if g.nodes[p].inputs.first() != Some(&x) || !single_use(g, fx) {
                    continue;
                }
                match g.nodes[p].op {
                    Op::Unary { function: u::SIGMOID, post: [1.0, 0.0], .. } => return Some((m, x, u::SILU)),
                    Op::Unary { function: u::HARD_SIGMOID, alpha, beta, post: [1.0, 0.0] }
                        if close(alpha, 1.0 / 6.0) && close(beta, 0.5) =>
                    {
                        return Some((m, x, u::HARD_SWISH))
                    }
                    _ => {}
                }
            }
            // Hard-swish spelled out: x * relu6(x + 3) / 6, in either grouping.
            if let Some(x) = hard_swish_operand(g, m) {
                return Some((m, x, u::HARD_SWISH));
            }
            // GELU: this Mul is the last of the product x * 1/2 * (1 + erf(x / sqrt 2)).
            gelu_operand(g, m).map(|x| (m, x, u::GELU))
        });
        let Some((last, x, function)) = hit else { break };
        replace_with_unary(g, last, x, function);
        found += 1;
    }
    found
}

/// If Mul node `m` completes `x * relu6(x + 3) / 6` (the division a Mul by 1/6 after import, the
/// clip fused into the Add): `Mul(Mul(x, t), 1/6)` or `Mul(x, Mul(t, 1/6))`, `t = Add{[0, 6]}(x, 3)`;
/// its `x`.
fn hard_swish_operand(g: &Graph, m: usize) -> Option<usize> {
    // `t` is relu6(x + 3) of `x`.
    let relu6_plus_3 = |t: usize, x: usize| -> bool {
        let Some(add) = g.producer(t) else { return false };
        let Op::Add { act } = g.nodes[add].op else { return false };
        if act.lo != 0.0 || act.hi != 6.0 || !single_use(g, t) {
            return false;
        }
        let [a, b] = [g.nodes[add].inputs[0], g.nodes[add].inputs[1]];
        (a == x && scalar(g, b).is_some_and(|v| close(v, 3.0)))
            || (b == x && scalar(g, a).is_some_and(|v| close(v, 3.0)))
    };
    let sixth = |t: usize| scalar(g, t).is_some_and(|v| close(v, 1.0 / 6.0));
    let [a, b] = [g.nodes[m].inputs[0], g.nodes[m].inputs[1]];
    for (inner, other) in [(a, b), (b, a)] {
        let Some(p) = g.producer(inner) else { continue };
        if !matches!(g.nodes[p].op, Op::Mul { act } if act.is_none()) || !single_use(g, inner) {
            continue;
        }
        let [c, d] = [g.nodes[p].inputs[0], g.nodes[p].inputs[1]];
        // Mul(Mul(x, t), 1/6)
        if sixth(other) {
            for (x, t) in [(c, d), (d, c)] {
                if relu6_plus_3(t, x) {
                    return Some(x);
                }
            }
        }
        // Mul(x, Mul(t, 1/6))
        for (t, k) in [(c, d), (d, c)] {
            if sixth(k) && relu6_plus_3(t, other) {
                return Some(other);
            }
        }
    }
    None
}

/// If Mul node `m` completes `x * 1/2 * (1 + erf(x / sqrt 2))` (either grouping), its `x`.
fn gelu_operand(g: &Graph, m: usize) -> Option<usize> {
    use sparq_format::layout::op::unary as u;
    // `1 + erf(x / sqrt 2)`, returning x, for tensor `t`.
    let one_plus_erf = |t: usize| -> Option<usize> {
        let add = g.producer(t)?;
        if !matches!(g.nodes[add].op, Op::Add { act } if act.is_none()) || !single_use(g, t) {
            return None;
        }
        let (e, one) = (g.nodes[add].inputs[0], g.nodes[add].inputs[1]);
        let (e, one) = if scalar(g, one).is_some() { (e, one) } else { (one, e) };
        if !close(scalar(g, one)?, 1.0) || !single_use(g, e) {
            return None;
        }
        let erf = g.producer(e)?;
        if !matches!(g.nodes[erf].op, Op::Unary { function: u::ERF, .. }) {
            return None;
        }
        let scaled = g.nodes[erf].inputs[0];
        let div = g.producer(scaled)?;
        if !matches!(g.nodes[div].op, Op::Mul { act } if act.is_none()) || !single_use(g, scaled) {
            return None;
        }
        let (x, c) = (g.nodes[div].inputs[0], g.nodes[div].inputs[1]);
        let (x, c) = if scalar(g, c).is_some() { (x, c) } else { (c, x) };
        close(scalar(g, c)?, core::f32::consts::FRAC_1_SQRT_2).then_some(x)
    };
    let [a, b] = [g.nodes[m].inputs[0], g.nodes[m].inputs[1]];
    for (inner, other) in [(a, b), (b, a)] {
        let Some(p) = g.producer(inner) else { continue };
        if !matches!(g.nodes[p].op, Op::Mul { act } if act.is_none()) || !single_use(g, inner) {
            continue;
        }
        let [c, d] = [g.nodes[p].inputs[0], g.nodes[p].inputs[1]];
        // Mul(Mul(x, 1/2), 1 + erf(x / sqrt 2))
        if let Some(x) = one_plus_erf(other) {
            if (c == x && scalar(g, d).is_some_and(|v| close(v, 0.5)))
                || (d == x && scalar(g, c).is_some_and(|v| close(v, 0.5)))
            {
                return Some(x);
            }
        }
        // Mul(Mul(x, 1 + erf(x / sqrt 2)), 1/2)
        if scalar(g, other).is_some_and(|v| close(v, 0.5)) {
            for (x, t) in [(c, d), (d, c)] {
                if one_plus_erf(t) == Some(x) {
                    return Some(x);
                }
            }
        }
    }
    None
}

pub fn remove_dead(g: &mut Graph) -> usize {
    let mut removed = 0;
    loop {
        let dead = (0..g.nodes.len())
            .find(|&n| g.nodes[n].outputs.iter().all(|&t| !g.outputs.contains(&t) && g.consumers(t).is_empty()));
        let Some(n) = dead else { break };
        g.nodes.remove(n);
        removed += 1;
    }
    removed
}

pub fn optimize(g: &mut Graph) {
    fold_batchnorm(g);
    fold_affine(g);
    fuse_activations(g);
    recognize_activations(g);
    fold_unary_affine(g);
    remove_dead(g);
}
