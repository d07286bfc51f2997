//! Second-order weight rounding from calibration data: which way each int8 weight is rounded
//! (up or down) so that the layer's *outputs* on the calibration inputs move as little as
//! possible, instead of each weight on its own.
//!
//! For one output channel with weights `w` (and bias `b`) on the per-channel grid `s * q`,
//! rounding adds `d = s q - w`, and the layer's pre-activation on input `x` moves by `d . x` (plus
//! the bias change). Over the calibration inputs the mean square of that is `d' H d` with
//! `H = E[x x']` — the [`Moments`] that pruning's re-fit collects, with the constant 1 of the bias
//! as the last coordinate. Round-to-nearest minimizes each `|d_i|`; these methods minimize
//! `d' H d`:
//!
//! - **GPTQ** (Frantar et al. 2022): the weights are rounded one column at a time in decreasing
//!   order of `H_ii` ("act-order"), and each rounding error is spread over the columns not yet
//!   rounded and the bias with the Optimal Brain Surgeon update `-e U_ij / U_ii` (`U` the upper
//!   Cholesky factor of `(H + damping)^-1`, the sweep [`reconstruct::nm_mask`] uses for N:M
//!   pruning). One factorization per layer (per group): for convolutions and fully-connected
//!   layers with hundreds of weights per channel.
//! - **AdaRound** (Nagel et al. 2020): each weight is rounded down plus a learned `h in [0, 1]`
//!   (the rectified sigmoid of the paper), trained with Adam against `d' H d` plus the
//!   regularizer `lambda sum(1 - |2h - 1|^beta)` with `beta` annealed from 20 to 2, which drives
//!   every `h` to 0 or 1; then single flips that still lower `d' H d` are taken. For depthwise
//!   convolutions, where each channel has its own 9 or 25 weights and its own `H`, and GPTQ's
//!   greedy order has little room to compensate.
//!
//! The bias always takes the mean of the error (it is the last coordinate of the sweep for GPTQ,
//! and fitted as `-E[d . x]` otherwise), so nearest rounding here is lowering's bias correction.
//!
//! `--weight-rounding auto` (the default) rounds every layer each applicable way on the first
//! three quarters of the fitting samples and keeps, per layer, the method whose output error is
//! smallest on their last quarter — data that rounding never saw — then rounds the layer again
//! with the method kept on all the fitting samples. The samples the compiler holds out for the
//! report's estimate take no part. The report lists each layer's output SQNR on that last quarter
//! under nearest rounding and under the method kept (as fitted without it).

use super::reconstruct::{
    dampening, layer_moments, reconstruct, sweep_factor, Moments, WeightSet, MAX_POSITIONS, MAX_REFIT_K,
};
use crate::error::Result;
use crate::ir::{Graph, Node, Op};
use crate::quant::{channel_scale, RoundedWeights};
use std::collections::HashMap;

/// `--weight-rounding`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightRounding {
    /// Each weight to the nearest level (with bias correction).
    Nearest,
    Gptq,
    AdaRound,
    /// Per layer, the method with the smallest output error on held-out calibration samples.
    #[default]
    Auto,
}

impl WeightRounding {
    pub fn name(self) -> &'static str {
        match self {
            WeightRounding::Nearest => "nearest",
            WeightRounding::Gptq => "gptq",
            WeightRounding::AdaRound => "adaround",
            WeightRounding::Auto => "auto",
        }
    }
}

impl std::str::FromStr for WeightRounding {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "nearest" => WeightRounding::Nearest,
            "gptq" => WeightRounding::Gptq,
            "adaround" => WeightRounding::AdaRound,
            "auto" => WeightRounding::Auto,
            _ => return Err(format!("unknown weight rounding '{s}' (nearest, gptq, adaround or auto)")),
        })
    }
}

/// AdaRound is run where a channel has at most this many weights (its Adam steps cost `K^2`
/// each): depthwise convolutions and small first layers.
pub const ADAROUND_MAX_K: usize = 32;

/// One layer's rounding, for the report: the output SQNR (dB) of its pre-activation on the
/// held-out calibration samples under nearest rounding and under the method kept.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRounding {
    pub name: String,
    pub method: WeightRounding,
    pub sqnr_nearest: f64,
    pub sqnr: f64,
}

/// The layers rounded from data: convolutions and fully-connected layers with constant weights
/// and at most [`MAX_REFIT_K`] weights per channel.
pub fn layers(g: &Graph) -> Vec<&Node> {
    g.nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv { .. } | Op::Dense { .. }))
        .filter(|n| n.inputs.len() >= 3 && g.is_const(n.inputs[1]) && g.is_const(n.inputs[2]))
        .filter(|n| {
            let ws = &g.tensors[n.inputs[1]].shape;
            ws.len() >= 2 && ws[1..].iter().product::<usize>() <= MAX_REFIT_K
        })
        .collect()
}

/// Round the weights of `g`'s [`layers`] with `method` from the model-ready `samples`: each
/// candidate rounding is fitted on `samples[..choose]` and scored on `samples[choose..]` (the
/// choice of `auto`, and the report's SQNR), then the method kept is fitted again on all of
/// `samples`. No sample outside `samples` is looked at, so samples the caller holds out of it stay
/// held out of the choice. `Nearest` returns nothing (lowering rounds to nearest itself).
pub fn round_weights(
    g: &Graph,
    samples: &[Vec<f32>],
    choose: usize,
    method: WeightRounding,
    pb: &indicatif::ProgressBar,
) -> Result<(HashMap<String, RoundedWeights>, Vec<LayerRounding>)> {
    let mut out = HashMap::new();
    let mut report = Vec::new();
    let choose = choose.min(samples.len());
    let (fit, held) = samples.split_at(choose);
    if method == WeightRounding::Nearest || samples.is_empty() {
        return Ok((out, report));
    }
    let nodes = layers(g);
    // One step per sample (the moments) and per layer (the rounding).
    pb.set_length((fit.len() + held.len() + nodes.len()) as u64);
    let m_fit = if fit.is_empty() { HashMap::new() } else { layer_moments(g, &nodes, fit, pb)? };
    let m_held = if held.is_empty() { HashMap::new() } else { layer_moments(g, &nodes, held, pb)? };
    for node in nodes {
        pb.inc(1);
        // Without a split, both roles fall to the samples there are.
        let (Some(mf), mh) = (m_fit.get(&node.name).or(m_held.get(&node.name)), m_held.get(&node.name)) else {
            continue;
        };
        let w = g.value(node.inputs[1]);
        let n = g.tensors[node.inputs[1]].shape[0];
        let b = g.value(node.inputs[2]);
        let k = mf.k;
        let scales: Vec<f32> = (0..n).map(|r| channel_scale(&w[r * k..(r + 1) * k])).collect();
        let mut candidates = vec![WeightRounding::Nearest];
        match method {
            WeightRounding::Auto => {
                candidates.push(WeightRounding::Gptq);
                if k <= ADAROUND_MAX_K {
                    candidates.push(WeightRounding::AdaRound);
                }
            }
            // AdaRound's Adam steps cost K^2 each: wider layers get GPTQ.
            WeightRounding::AdaRound if k > ADAROUND_MAX_K => candidates.push(WeightRounding::Gptq),
            m => candidates.push(m),
        }
        let mut best: Option<(f64, WeightRounding, RoundedWeights)> = None;
        let mut nearest_err = (0.0, 1.0);
        for &c in &candidates {
            let r = round_layer(mf, n, w, b, &scales, c);
            // Scored on the held-out moments, or on the fitting ones when there are none.
            let (err, signal) = output_error(mh.unwrap_or(mf), n, w, b, &r);
            if c == WeightRounding::Nearest {
                nearest_err = (err, signal);
            }
            // `auto` keeps the smallest error; an explicit method is kept as asked.
            let keep = match method {
                WeightRounding::Auto => best.as_ref().is_none_or(|(e, _, _)| err < *e),
                _ => c != WeightRounding::Nearest || candidates.len() == 1,
            };
            if keep {
                best = Some((err, c, r));
            }
        }
        let Some((err, chosen, r)) = best else { continue };
        // The method kept, fitted again on every sample.
        let r = match (m_fit.get(&node.name), m_held.get(&node.name)) {
            (Some(a), Some(b)) => {
                let mut all = a.clone();
                all.merge(b);
                round_layer(&all, n, w, b_of(g, node), &scales, chosen)
            }
            _ => r,
        };
        let db = |(e, s): (f64, f64)| if e > 0.0 { 10.0 * (s / e).log10() } else { f64::INFINITY };
        let signal = nearest_err.1;
        report.push(LayerRounding {
            name: node.name.clone(),
            method: chosen,
            sqnr_nearest: db(nearest_err),
            sqnr: db((err, signal)),
        });
        out.insert(node.name.clone(), r);
    }
    Ok((out, report))
}

/// A layer is rounded again on its int8 inputs ([`round_on_int8_inputs`]) only with at least this
/// many input vectors per weight coordinate: wider layers with few positions (MobileNetV2's 7x7
/// blocks, the classifier) fit the calibration images' own noise instead of what new images
/// share. Chosen on MobileNetV2's held-out calibration crops 75-99 (30, 100, 400 gave 23.9, 23.7,
/// 23.6 dB against 23.5 without; 100 for the compile time: 37 layers instead of 42).
pub const INT8_INPUT_MIN_VECTORS_PER_WEIGHT: f64 = 100.0;

/// The int8 model's input values are kept within this many steps of the tensor's grid of the f32
/// values for the fit (see [`crate::calib::eval::paired_activations`]).
pub const INT8_INPUT_CAP_STEPS: f32 = 8.0;

/// The layers [`round_on_int8_inputs`] rounds again with `samples` calibration samples: rounded
/// from data (a method in `methods`) and with [`INT8_INPUT_MIN_VECTORS_PER_WEIGHT`].
pub fn int8_input_layers<'g>(g: &'g Graph, samples: usize, methods: &HashMap<String, WeightRounding>) -> Vec<&'g Node> {
    layers(g)
        .into_iter()
        .filter(|n| methods.contains_key(&n.name))
        .filter(|n| {
            let out = &g.tensors[n.outputs[0]].shape;
            let per = if out.len() == 4 { (out[2] * out[3]).min(MAX_POSITIONS) } else { 1 };
            let k: usize = g.tensors[n.inputs[1]].shape[1..].iter().product();
            (per * samples) as f64 >= INT8_INPUT_MIN_VECTORS_PER_WEIGHT * (k + 1) as f64
        })
        .collect()
}

/// Round layers again on the inputs they get in the int8 model (GPTQ's sequential setting): the
/// [`int8_input_layers`], one at a time in graph order. For each, the int8 model as rounded so far
/// (`lower` writes it from the roundings) runs on `samples` beside the f32 graph; the layer's
/// weights and bias are re-fitted to `E[(w . x~ + b - w0 . x - b0)^2]` over its int8 inputs `x~`
/// and f32 inputs `x` (the crossed moments pruning's re-fit uses, dampened towards `w0`, exact
/// zeros kept), and the fit is rounded by the layer's method in `methods` against the same moments.
/// An int16 layer (`--int16`) is fitted the same way on its int16 inputs.
/// The moments mix the int8 inputs with the float ones, half each: a regularization between
/// refitting to the int8 model's inputs alone, which follows their noise on the fitting crops, and
/// the float fit (the idea of QDrop and of regularized calibration: the fit then holds for inputs
/// carrying less of that noise). On MobileNetV2's calibration crops 56-99, held out of the fit:
/// logit SQNR 24.27 dB on the int8 inputs alone, 24.52 dB half and half, 24.44 dB one third int8,
/// better on each of crops 0-55, 56-74 and 75-99.
/// One layer at a time: a layer fitted on inputs that an earlier layer's new weights then change
/// would compensate an error that is gone (MobileNetV2 with three layers per step: 24.6 -> 18.2
/// dB on the fitting samples). Returns the layers rounded again.
pub fn round_on_int8_inputs(
    g: &Graph,
    samples: &[Vec<f32>],
    rounded: &mut HashMap<String, RoundedWeights>,
    methods: &HashMap<String, WeightRounding>,
    lower: &dyn Fn(&HashMap<String, RoundedWeights>) -> Result<Vec<u8>>,
    pb: &indicatif::ProgressBar,
) -> Result<Vec<String>> {
    let nodes = int8_input_layers(g, samples.len(), methods);
    pb.set_length((nodes.len() * samples.len()) as u64);
    let mut done = Vec::new();
    for n in nodes {
        let bytes = lower(rounded)?;
        let x = n.inputs[0];
        let shape = &g.tensors[x].shape;
        let mut m = Moments::for_layer(g, n, true);
        crate::calib::eval::paired_activations(g, &bytes, samples, &[x], INT8_INPUT_CAP_STEPS, &mut |_, f, q| {
            if let Some(xt) = &q[0] {
                // Half the fit on the int8 inputs, half on the float ones (see above).
                m.add(n, shape, xt, Some(&f[0]));
                m.add(n, shape, &f[0], Some(&f[0]));
            }
            pb.inc(1);
            Ok(())
        })?;
        if m.vectors() == 0.0 {
            continue; // the model does not hold this input in int8
        }
        let (w, b) = (g.value(n.inputs[1]), b_of(g, n));
        let rows = g.tensors[n.inputs[1]].shape[0];
        let zero: Vec<bool> = w.iter().map(|&v| v == 0.0).collect();
        let Some((wf, db)) = reconstruct(&m, rows, &zero, &[WeightSet { w, b: b.to_vec() }], true).into_iter().next()
        else {
            continue;
        };
        let bf: Vec<f32> = b.iter().zip(&db).map(|(b, d)| b + d).collect();
        let k = m.k;
        let scales: Vec<f32> = (0..rows).map(|r| channel_scale(&wf[r * k..(r + 1) * k])).collect();
        rounded.insert(n.name.clone(), round_layer(&m, rows, &wf, &bf, &scales, methods[&n.name]));
        done.push(n.name.clone());
    }
    Ok(done)
}

/// The bias of layer `node`.
fn b_of<'g>(g: &'g Graph, node: &Node) -> &'g [f32] {
    g.value(node.inputs[2])
}

/// Round one layer (`n` rows of `k` weights `w`, bias `b`, on `scales`) with `method` against
/// the moments `m`.
pub fn round_layer(
    m: &Moments,
    n: usize,
    w: &[f32],
    b: &[f32],
    scales: &[f32],
    method: WeightRounding,
) -> RoundedWeights {
    let k = m.k;
    let d = k + 1;
    let per_group = (n / m.groups.max(1)).max(1);
    let mut q = vec![0i8; n * k];
    let mut bias = b[..n].to_vec();
    for gi in 0..m.groups {
        let rows = gi * per_group..((gi + 1) * per_group).min(n);
        let h = m.h(gi);
        // The sweep's factor, once per group (GPTQ).
        let sweep = (method == WeightRounding::Gptq).then(|| gptq_factor(&h, d, m)).flatten();
        for r in rows {
            let (wr, s) = (&w[r * k..(r + 1) * k], scales[r] as f64);
            let row = &mut q[r * k..(r + 1) * k];
            match (method, &sweep) {
                (WeightRounding::Gptq, Some((order, u))) => {
                    bias[r] = gptq_row(wr, b[r], s, order, u, d, row);
                    continue;
                }
                (WeightRounding::AdaRound, _) => adaround_row(&h, d, wr, s, row),
                _ => nearest_row(wr, s, row),
            }
            bias[r] = fitted_bias(&h, d, wr, b[r], s, row);
        }
    }
    RoundedWeights { q, scales: scales[..n].to_vec(), bias }
}

fn nearest_row(w: &[f32], s: f64, q: &mut [i8]) {
    for (q, &v) in q.iter_mut().zip(w) {
        *q = (v as f64 / s).round().clamp(-127.0, 127.0) as i8;
    }
}

/// The bias that takes the mean of the rounding error: `b - E[d . x]` (`H`'s last row holds
/// `E[x]`, its last entry `E[1] = 1`).
fn fitted_bias(h: &[f64], d: usize, w: &[f32], b: f32, s: f64, q: &[i8]) -> f32 {
    let k = d - 1;
    let shift: f64 = (0..k).map(|i| (q[i] as f64 * s - w[i] as f64) * h[k * d + i]).sum();
    (b as f64 - shift / h[k * d + k].max(1e-30)) as f32
}

/// GPTQ's column order (act-order: decreasing `H_ii`, the bias last) and the factor `U` of
/// `(H + damping)^-1` in that order.
fn gptq_factor(h: &[f64], d: usize, m: &Moments) -> Option<(Vec<usize>, Vec<f64>)> {
    let k = d - 1;
    let damp = dampening(h, d, m.damp_scale());
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| h[b * d + b].total_cmp(&h[a * d + a]).then(a.cmp(&b)));
    order.push(k);
    sweep_factor(h, d, &order, damp).map(|u| (order, u))
}

/// One row through GPTQ's sweep; returns the bias, which takes the remaining error. A weight that
/// is exactly zero (pruned) stays zero.
fn gptq_row(w: &[f32], b: f32, s: f64, order: &[usize], u: &[f64], d: usize, q: &mut [i8]) -> f32 {
    let k = d - 1;
    let mut x: Vec<f64> = order.iter().map(|&o| if o < k { w[o] as f64 } else { b as f64 }).collect();
    for i in 0..k {
        let o = order[i];
        let qi = if w[o] == 0.0 { 0.0 } else { (x[i] / s).round().clamp(-127.0, 127.0) };
        q[o] = qi as i8;
        let err = (x[i] - qi * s) / u[i * d + i];
        let ui = &u[i * d..(i + 1) * d];
        for (xj, &uij) in x[i + 1..].iter_mut().zip(&ui[i + 1..]) {
            *xj -= err * uij;
        }
    }
    x[k] as f32
}

/// `H` without the bias coordinate, with the bias refitted to the error's mean: the covariance
/// `H_kk - H_kb H_bk / H_bb` (what a weight error costs once the bias absorbs its mean).
fn centered(h: &[f64], d: usize) -> Vec<f64> {
    let k = d - 1;
    let hbb = h[k * d + k].max(1e-30);
    let mut a = vec![0f64; k * k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = h[i * d + j] - h[i * d + k] * h[k * d + j] / hbb;
        }
    }
    a
}

/// AdaRound on one row: minimize `d' A d` (`A` = [`centered`] `H`) over up/down rounding.
fn adaround_row(h: &[f64], d: usize, w: &[f32], s: f64, q: &mut [i8]) {
    const ZETA: f64 = 1.1;
    const GAMMA: f64 = -0.1;
    const ITERS: usize = 500;
    const WARMUP: usize = ITERS / 5;
    const LAMBDA: f64 = 0.01;
    const LR: f64 = 0.03;
    let k = d - 1;
    let a = centered(h, d);
    // Work in units of the grid: x = w / s, the level floor(x) + h.
    let x: Vec<f64> = w.iter().map(|&v| v as f64 / s).collect();
    let lo: Vec<f64> = x.iter().map(|v| v.floor()).collect();
    let fixed: Vec<bool> = w.iter().map(|&v| v == 0.0).collect();
    // Normalized so that one level on an average coordinate costs about 1.
    let scale = (0..k).map(|i| a[i * k + i]).sum::<f64>() / k.max(1) as f64;
    if scale <= 0.0 || !scale.is_finite() {
        return nearest_row(w, s, q);
    }
    let rect = |v: f64| ((1.0 / (1.0 + (-v).exp())) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0);
    let mut v: Vec<f64> = x
        .iter()
        .zip(&lo)
        .map(|(x, l)| {
            let p = ((x - l - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let (mut m1, mut m2) = (vec![0f64; k], vec![0f64; k]);
    let mut delta = vec![0f64; k];
    let mut grad = vec![0f64; k];
    let mut sig = vec![0f64; k];
    for it in 0..ITERS {
        for i in 0..k {
            sig[i] = 1.0 / (1.0 + (-v[i]).exp());
            let hv = (sig[i] * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0);
            delta[i] = if fixed[i] { 0.0 } else { lo[i] + hv - x[i] };
        }
        let beta = if it < WARMUP { 0.0 } else { 20.0 - 18.0 * (it - WARMUP) as f64 / (ITERS - WARMUP) as f64 };
        for i in 0..k {
            let raw = sig[i] * (ZETA - GAMMA) + GAMMA;
            if fixed[i] || raw <= 0.0 || raw >= 1.0 {
                grad[i] = 0.0;
                continue;
            }
            let ad: f64 = a[i * k..(i + 1) * k].iter().zip(&delta).map(|(a, d)| a * d).sum();
            let mut gh = 2.0 * ad / scale;
            let t = 2.0 * raw - 1.0;
            if beta > 0.0 && t != 0.0 {
                gh -= LAMBDA * beta * t.abs().powf(beta - 1.0) * t.signum() * 2.0;
            }
            grad[i] = gh * sig[i] * (1.0 - sig[i]) * (ZETA - GAMMA);
        }
        let t = (it + 1) as i32;
        let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
        for i in 0..k {
            m1[i] = 0.9 * m1[i] + 0.1 * grad[i];
            m2[i] = 0.999 * m2[i] + 0.001 * grad[i] * grad[i];
            v[i] -= LR * (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
        }
    }
    let mut level: Vec<f64> = (0..k)
        .map(|i| if fixed[i] { 0.0 } else { (lo[i] + if rect(v[i]) >= 0.5 { 1.0 } else { 0.0 }).clamp(-127.0, 127.0) })
        .collect();
    // Single flips between the two neighbouring levels while one lowers the cost.
    let mut delta: Vec<f64> = (0..k).map(|i| level[i] - x[i]).collect();
    let mut ad: Vec<f64> = (0..k).map(|i| (0..k).map(|j| a[i * k + j] * delta[j]).sum()).collect();
    for _ in 0..4 * k {
        let mut best = (0.0, usize::MAX, 0.0);
        for i in (0..k).filter(|&i| !fixed[i]) {
            let other = if level[i] > x[i] { level[i] - 1.0 } else { level[i] + 1.0 };
            if !(-127.0..=127.0).contains(&other) || (other - x[i]).abs() >= 1.0 {
                continue;
            }
            let step = other - level[i];
            // Change of d'Ad when d_i moves by `step`.
            let change = 2.0 * step * ad[i] + step * step * a[i * k + i];
            if change < best.0 {
                best = (change, i, step);
            }
        }
        let (_, i, step) = best;
        if i == usize::MAX {
            break;
        }
        level[i] += step;
        delta[i] += step;
        for (j, adj) in ad.iter_mut().enumerate() {
            *adj += a[j * k + i] * step;
        }
    }
    for i in 0..k {
        q[i] = level[i] as i8;
    }
}

/// The mean square change of the layer's pre-activation (summed over rows) on the moments `m`,
/// and the mean square of the pre-activation itself: `sum_r e_r' H e_r` with `e_r` the change of
/// row `r`'s weights and bias, and `sum_r (w_r, b_r)' H (w_r, b_r)`.
pub fn output_error(m: &Moments, n: usize, w: &[f32], b: &[f32], r: &RoundedWeights) -> (f64, f64) {
    let k = m.k;
    let d = k + 1;
    let per_group = (n / m.groups.max(1)).max(1);
    let (mut err, mut signal) = (0.0, 0.0);
    // sum over rows of v' H v = sum of the entries of V o (V H), one matrix product per group.
    let quad = |h: &faer::Mat<f64>, v: &[f64], rows: usize| -> f64 {
        let v = faer::MatRef::from_row_major_slice(v, rows, d);
        let mut vh = faer::Mat::<f64>::zeros(rows, d);
        faer::linalg::matmul::matmul(&mut vh, faer::Accum::Replace, v, h, 1.0, faer::Par::Seq);
        (0..rows).map(|i| (0..d).map(|j| v[(i, j)] * vh[(i, j)]).sum::<f64>()).sum()
    };
    for gi in 0..m.groups {
        let hv = m.h(gi);
        let h = faer::Mat::<f64>::from_fn(d, d, |i, j| hv[i * d + j]);
        let rows = gi * per_group..((gi + 1) * per_group).min(n);
        let mut e = Vec::with_capacity(rows.len() * d);
        let mut v = Vec::with_capacity(rows.len() * d);
        for row in rows.clone() {
            let s = r.scales[row] as f64;
            for i in 0..k {
                let x = w[row * k + i] as f64;
                e.push(r.q[row * k + i] as f64 * s - x);
                v.push(x);
            }
            e.push(r.bias[row] as f64 - b[row] as f64);
            v.push(b[row] as f64);
        }
        err += quad(&h, &e, rows.len());
        signal += quad(&h, &v, rows.len());
    }
    (err, signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u32) -> f64 {
        *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (*seed >> 8) as f64 / (1 << 24) as f64 - 0.5
    }

    /// Moments of smooth, strongly correlated inputs (neighbouring pixels of an image patch):
    /// `x_i = base + small noise`, plus the bias coordinate.
    fn smooth_moments(k: usize, count: usize, seed: &mut u32) -> Moments {
        let mut m = Moments::new(k, 1, false);
        for _ in 0..count {
            let base = 2.0 * lcg(seed);
            let x: Vec<f32> = (0..k).map(|_| (base + 0.05 * lcg(seed)) as f32).chain([1.0]).collect();
            m.add_vector(&x, 0);
        }
        m
    }

    fn cost(m: &Moments, w: &[f32], b: &[f32], r: &RoundedWeights) -> f64 {
        output_error(m, b.len(), w, b, r).0
    }

    /// With near-identical inputs only the sum of the errors matters: GPTQ and AdaRound make
    /// it cancel, far below round-to-nearest, and AdaRound reaches the exhaustive optimum's cost.
    #[test]
    fn second_order_rounding_beats_nearest_on_correlated_inputs() {
        let mut seed = 5u32;
        let k = 9;
        let m = smooth_moments(k, 400, &mut seed);
        let n = 6;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) as f32).collect();
        let b = vec![0.1f32; n];
        let scales: Vec<f32> = (0..n).map(|r| channel_scale(&w[r * k..(r + 1) * k])).collect();
        let near = round_layer(&m, n, &w, &b, &scales, WeightRounding::Nearest);
        let gptq = round_layer(&m, n, &w, &b, &scales, WeightRounding::Gptq);
        let ada = round_layer(&m, n, &w, &b, &scales, WeightRounding::AdaRound);
        let (cn, cg, ca) = (cost(&m, &w, &b, &near), cost(&m, &w, &b, &gptq), cost(&m, &w, &b, &ada));
        assert!(cg < 0.5 * cn && ca < 0.5 * cn, "nearest {cn:e}, gptq {cg:e}, adaround {ca:e}");
        // Every weight stays on one of its two neighbouring levels.
        for (i, (&qa, &wv)) in ada.q.iter().zip(&w).enumerate() {
            let x = wv as f64 / scales[i / k] as f64;
            assert!((qa as f64 - x).abs() < 1.0, "weight {i}: {x} -> {qa}");
        }
        // The exhaustive optimum of the same objective, per row (2^9 choices).
        let h = m.h(0);
        let a = centered(&h, k + 1);
        let mut best_total = 0.0;
        for r in 0..n {
            let x: Vec<f64> = (0..k).map(|i| w[r * k + i] as f64 / scales[r] as f64).collect();
            let mut best = f64::INFINITY;
            for mask in 0..1u32 << k {
                let dlt: Vec<f64> = (0..k).map(|i| x[i].floor() + ((mask >> i) & 1) as f64 - x[i]).collect();
                let c: f64 = (0..k).map(|i| dlt[i] * (0..k).map(|j| a[i * k + j] * dlt[j]).sum::<f64>()).sum();
                best = best.min(c * (scales[r] as f64).powi(2));
            }
            best_total += best;
        }
        assert!(ca <= 1.25 * best_total + 1e-12, "adaround {ca:e}, optimum {best_total:e}");
    }

    /// Pruned (zero) weights stay zero under every method, and GPTQ's levels stay in int8.
    #[test]
    fn zeros_stay_zero() {
        let mut seed = 9u32;
        let k = 16;
        let m = smooth_moments(k, 300, &mut seed);
        let w: Vec<f32> = (0..2 * k).map(|i| if i % 3 == 0 { 0.0 } else { lcg(&mut seed) as f32 }).collect();
        let b = vec![0.0f32; 2];
        let scales: Vec<f32> = (0..2).map(|r| channel_scale(&w[r * k..(r + 1) * k])).collect();
        for method in [WeightRounding::Gptq, WeightRounding::AdaRound] {
            let r = round_layer(&m, 2, &w, &b, &scales, method);
            for (i, &q) in r.q.iter().enumerate() {
                if w[i] == 0.0 {
                    assert_eq!(q, 0, "{method:?} weight {i}");
                }
                assert!(q >= -127, "{method:?}");
            }
        }
    }

    #[test]
    fn names_parse() {
        for m in [WeightRounding::Nearest, WeightRounding::Gptq, WeightRounding::AdaRound, WeightRounding::Auto] {
            assert_eq!(m.name().parse::<WeightRounding>(), Ok(m));
        }
        assert!("best".parse::<WeightRounding>().unwrap_err().contains("nearest, gptq"));
    }
}
