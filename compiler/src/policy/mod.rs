//! Per-layer policy: which layers keep a higher precision (the mixed-precision search of
//! `--min-agreement`); the place for a size / latency budget search later.

use crate::calib::eval::{self, Agreement};
use crate::error::Result;
use crate::ir::{Graph, Op};
use crate::lower;
use std::collections::HashSet;

/// Result of the automatic mixed-precision search.
#[derive(Clone, Debug)]
pub struct MixedPrecision {
    pub target: f64,
    /// Expected agreement the search demanded on the calibration set (target plus margin).
    pub goal: f64,
    /// Layers kept in f32, most sensitive first.
    pub kept: Vec<String>,
    /// Layers given int16 activations (A16W8), most sensitive first.
    pub int16: Vec<String>,
    /// Expected agreement on the calibration set with every int16 candidate in int16 (`None`:
    /// no int16 candidate).
    pub all_int16_agreement: Option<f64>,
    /// (layer, logit SQNR in dB with only this layer in int8) for every candidate, most
    /// sensitive (lowest) first: the f32 search's (the others f32), or when int16 alone reaches
    /// the goal, the int16 search's (the others int16).
    pub sensitivity: Vec<(String, f64)>,
    pub baseline_sqnr_db: f64,
    /// Every assembled model the search measured on the whole calibration set, in the order
    /// measured: its cost in [`Self::cost_unit`] and its expected agreement (the chosen one
    /// marked), for the report's latency- or size-against-agreement plot.
    pub evaluated: Vec<SearchPoint>,
    /// What [`SearchPoint::cost`] measures.
    pub cost_unit: String,
}

/// One model the precision search assembled and measured.
#[derive(Clone, Debug)]
pub struct SearchPoint {
    pub int16_layers: usize,
    pub f32_layers: usize,
    /// The int16 search: milliseconds, the int8 model's measured time plus each int16 layer's
    /// measured extra time (a prediction from per-op times on this machine); the f32 search: the
    /// file's bytes.
    pub cost: f64,
    pub expected_agreement: f64,
    pub sqnr_db: f64,
    pub chosen: bool,
}

/// Candidate layers for f32: every node that computes (all but reshapes), since each int8 node
/// adds rounding error: weights, requantized outputs, or both.
fn candidates(g: &Graph) -> Vec<String> {
    g.nodes.iter().filter(|n| !matches!(n.op, Op::Reshape)).map(|n| n.name.clone()).collect()
}

/// Layers that can run with int16 activations (A16W8): convolutions with one group or depthwise,
/// fully-connected layers (their f32 output, e.g. logits, then comes from int16 codes), Adds of two
/// computed tensors and global average pooling (lowering keeps one in int8 when its accumulator could overflow,
/// and says why).
pub fn int16_candidates(g: &Graph) -> Vec<String> {
    g.nodes
        .iter()
        .filter(|n| match &n.op {
            Op::Conv { group, .. } => {
                let (x, w) = (&g.tensors[n.inputs[0]].shape, &g.tensors[n.inputs[1]].shape);
                x.len() == 4 && w.len() == 4 && (*group == 1 || (*group == x[1] && w[0] == x[1]))
            }
            Op::Dense { .. } => true,
            Op::Add { .. } => n.inputs.iter().all(|&t| !g.is_const(t)),
            Op::GlobalAveragePool | Op::ChannelAffine { .. } => g.tensors[n.inputs[0]].shape.len() == 4,
            _ => false,
        })
        .map(|n| n.name.clone())
        .collect()
}

fn measure(
    g: &Graph,
    stats: &lower::Stats,
    base: &lower::LowerOptions,
    keep: &HashSet<String>,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
) -> Result<Agreement> {
    Ok(measure_sized(g, stats, &lower::LowerOptions { keep_float: keep.clone(), ..base.clone() }, samples, reference)?
        .0)
}

/// [`measure_with`], and the size of the file measured.
fn measure_sized(
    g: &Graph,
    stats: &lower::Stats,
    opts: &lower::LowerOptions,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
) -> Result<(Agreement, usize)> {
    let lowered = lower::lower(g, stats, opts)?;
    let bytes = lowered.spec.to_bytes();
    let outs = eval::run_sparq(&bytes, samples, None)?;
    Ok((eval::compare(&outs, reference, None), bytes.len()))
}

fn measure_with(
    g: &Graph,
    stats: &lower::Stats,
    opts: &lower::LowerOptions,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
) -> Result<Agreement> {
    Ok(measure_sized(g, stats, opts, samples, reference)?.0)
}

/// Find the fewest layers to raise above int8 for top-1 agreement `target`, on top of the options
/// `base` (its `keep_float` and `int16` layers are kept in any case), int16 (A16W8) before f32:
///
/// 0. If every int16 candidate ([`int16_candidates`]) in int16 reaches the target on the
///    calibration set, the same two steps rank the int16 candidates (each alone in int8, the
///    others int16) and bisect for the int16 layers, and no layer is f32; the goal (below) is then
///    capped at what all-int16 reaches. The int16 ranking is by benefit per cost: the logit noise
///    power the layer's int8 adds (over all-int16's) divided by the time its int16 form adds,
///    both measured (each op timed on this machine in the all-int8 and all-int16 models), so the
///    goal is reached with the least added latency rather than the fewest layers. Otherwise
///    every candidate is int16 and the two steps choose f32 layers on top. Int16 keeps the int8
///    weights (the file grows by nothing but conversions) and runs int16 kernels, cheaper than
///    f32 ones.
/// 1. Sensitivity, on up to 16 calibration samples: the logit SQNR of the model with *only* that
///    layer in int8 and everything else in f32. That isolates the error each layer adds (its
///    weights, its quantized input and output) from the errors of the others; measuring instead
///    "all int8 but this one" hides each layer behind the rest (on MobileNetV2 every such
///    measurement lands within 0.6 dB of the all-int8 model).
/// 2. Keep the `k` layers with the lowest isolated SQNR, with the smallest `k` (bisection over the
///    ranking) whose *expected* top-1 agreement on the whole calibration set reaches
///    `target + (1 - target) * margin`. The expected agreement (see
///    [`eval::flip_probability`]) is used rather than the count of agreeing samples: with 100
///    samples the count jumps by whole percents as a handful of near-ties flip, so it neither
///    ranks `k`s reliably nor predicts new data.
#[allow(clippy::too_many_arguments)]
pub fn mixed_precision_search(
    g: &Graph,
    stats: &lower::Stats,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
    target: f64,
    base: &lower::LowerOptions,
    margin: f64,
    progress: bool,
) -> Result<MixedPrecision> {
    let goal = target + (1.0 - target) * margin;
    let sub = samples.len().min(16);
    // Int16 first: it keeps int8 weights (the file barely grows) and costs less time than f32.
    let cands16: Vec<String> =
        int16_candidates(g).into_iter().filter(|c| !base.keep_float.contains(c) && !base.int16.contains(c)).collect();
    let mut all16 = base.int16.clone();
    all16.extend(cands16.iter().cloned());
    let all_int16_agreement = if cands16.is_empty() {
        None
    } else {
        let opts = lower::LowerOptions { int16: all16.clone(), ..base.clone() };
        Some(measure_with(g, stats, &opts, samples, reference)?.expected_agreement)
    };
    // Int16 alone is enough when every candidate in int16 reaches the target; the margin above
    // it is then asked for only as far as int16 reaches (f32 layers would double the file to buy
    // a margin on a few near-tied calibration samples).
    if let Some(all) = all_int16_agreement.filter(|&a| a >= target) {
        let goal = goal.min(all);
        let baseline = measure_with(g, stats, base, &samples[..sub], &reference[..sub])?;
        // Sensitivity: the output SQNR with only this layer in int8, every other candidate int16.
        let pb = crate::progress::bar(cands16.len(), "int16 sensitivity", progress);
        let mut sens = Vec::new();
        for c in &cands16 {
            let mut int16 = all16.clone();
            int16.remove(c);
            let opts = lower::LowerOptions { int16, ..base.clone() };
            sens.push((c.clone(), measure_with(g, stats, &opts, &samples[..sub], &reference[..sub])?.sqnr_db));
            pb.inc(1);
        }
        pb.finish_and_clear();
        // Cost: each layer's measured time in int16 over its time in int8 (this machine, the
        // kernels the file will run). Benefit: the logit noise power its int8 adds, over the
        // noise of every candidate in int16. Layers are taken in order of benefit per cost (the
        // greedy order of the knapsack), so the goal is reached with the least added time.
        let (cost, int8_ms) = int16_cost(g, stats, base, &all16)?;
        let floor =
            10f64.powf(-baseline_all16_sqnr(g, stats, base, &all16, &samples[..sub], &reference[..sub])? / 10.0);
        let benefit = |db: f64| (10f64.powf(-db / 10.0) - floor).max(0.0);
        let value = |(c, db): &(String, f64)| benefit(*db) / cost.get(c).copied().unwrap_or(f64::MAX).max(1e-6);
        sens.sort_by(|a, b| value(b).total_cmp(&value(a)).then(a.1.total_cmp(&b.1)));
        let top = |k: usize| -> HashSet<String> {
            let mut int16 = base.int16.clone();
            int16.extend(sens[..k].iter().map(|(c, _)| c.clone()));
            int16
        };
        let predicted =
            |k: usize| int8_ms + sens[..k].iter().map(|(c, _)| cost.get(c).copied().unwrap_or(0.0)).sum::<f64>();
        let point = |k: usize, expected_agreement: f64, sqnr_db: f64| SearchPoint {
            int16_layers: base.int16.len() + k,
            f32_layers: base.keep_float.len(),
            cost: predicted(k),
            expected_agreement,
            sqnr_db,
            chosen: false,
        };
        // Every candidate in int16, measured first (its SQNR on the whole set was not).
        let mut evaluated = vec![point(sens.len(), all, f64::NAN)];
        let (mut lo, mut hi) = (0usize, sens.len());
        let pb = crate::progress::bar(((sens.len() + 1) as f64).log2().ceil() as usize, "int16 search", progress);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let opts = lower::LowerOptions { int16: top(mid), ..base.clone() };
            let a = measure_with(g, stats, &opts, samples, reference)?;
            evaluated.push(point(mid, a.expected_agreement, a.sqnr_db));
            if a.expected_agreement >= goal {
                hi = mid;
            } else {
                lo = mid + 1;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        // The bisection ends on a count it measured passing, or on every candidate (measured first).
        if let Some(p) = evaluated.iter_mut().find(|p| p.int16_layers == base.int16.len() + lo) {
            p.chosen = true;
        }
        return Ok(MixedPrecision {
            target,
            goal,
            kept: Vec::new(),
            int16: sens[..lo].iter().map(|(c, _)| c.clone()).collect(),
            all_int16_agreement,
            sensitivity: sens,
            baseline_sqnr_db: baseline.sqnr_db,
            evaluated,
            cost_unit: "predicted latency, ms (per-op times measured on this machine)".to_string(),
        });
    }
    // Int16 everywhere it applies is not enough: f32 layers on top of it.
    let base = &lower::LowerOptions { int16: all16.clone(), ..base.clone() };
    let mut found = f32_search(g, stats, samples, reference, target, base, goal, progress)?;
    found.int16 = cands16.into_iter().filter(|c| !found.kept.contains(c)).collect();
    found.all_int16_agreement = all_int16_agreement;
    Ok(found)
}

/// Logit SQNR with every layer of `all16` in int16.
fn baseline_all16_sqnr(
    g: &Graph,
    stats: &lower::Stats,
    base: &lower::LowerOptions,
    all16: &HashSet<String>,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
) -> Result<f64> {
    let opts = lower::LowerOptions { int16: all16.clone(), ..base.clone() };
    Ok(measure_with(g, stats, &opts, samples, reference)?.sqnr_db)
}

/// Times each op of a lowered model on this machine: the median over `rounds` runs, in
/// milliseconds, by the name of the op's output tensor. (The conversions between int8 and int16
/// codes that lowering adds at the edges of int16 runs are not attributed to a layer: the
/// bisection measures the assembled model's agreement, and `sparq bench` its latency.)
fn op_times(bytes: &[u8], rounds: usize) -> Result<std::collections::HashMap<String, f64>> {
    use sparq_runtime::{AlignedBytes, Model, Session};
    struct Timer {
        start: Option<std::time::Instant>,
        ns: Vec<Vec<u128>>,
    }
    impl sparq_runtime::Observer for Timer {
        fn before_op(&mut self, _op: usize) {
            self.start = Some(std::time::Instant::now());
        }
        fn after_op(&mut self, op: usize, _arena: &[u8]) {
            if let Some(t) = self.start.take() {
                self.ns[op].push(t.elapsed().as_nanos());
            }
        }
    }
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(&aligned)?;
    let mut arena = AlignedBytes::try_zeroed(model.arena_size())?;
    let mut session = Session::new(&model, arena.as_mut_slice())?;
    session.run();
    let mut timer = Timer { start: None, ns: vec![Vec::new(); model.op_count()] };
    for _ in 0..rounds.max(1) {
        session.run_observed(&mut timer);
    }
    let mut out = std::collections::HashMap::new();
    for (i, ns) in timer.ns.iter_mut().enumerate() {
        ns.sort_unstable();
        let median = ns.get(ns.len() / 2).copied().unwrap_or(0) as f64 / 1e6;
        let name = model.tensor(model.op(i).output(0)).name;
        *out.entry(name.to_string()).or_insert(0.0) += median;
    }
    Ok(out)
}

/// The time each layer of `all16` adds when it runs in int16 instead of int8 (ms, measured; at
/// least a microsecond), and the int8 model's time (the sum of its ops' medians).
fn int16_cost(
    g: &Graph,
    stats: &lower::Stats,
    base: &lower::LowerOptions,
    all16: &HashSet<String>,
) -> Result<(std::collections::HashMap<String, f64>, f64)> {
    let int8 = op_times(&lower::lower(g, stats, base)?.spec.to_bytes(), 15)?;
    let int8_ms = int8.values().sum();
    let opts = lower::LowerOptions { int16: all16.clone(), ..base.clone() };
    let int16 = op_times(&lower::lower(g, stats, &opts)?.spec.to_bytes(), 15)?;
    let output = |c: &String| {
        g.nodes.iter().find(|n| &n.name == c).map(|n| g.tensors[n.outputs[0]].name.clone()).unwrap_or_default()
    };
    let costs = all16
        .iter()
        .map(|c| {
            let t = output(c);
            let (a, b) = (int8.get(&t).copied().unwrap_or(0.0), int16.get(&t).copied().unwrap_or(0.0));
            (c.clone(), (b - a).max(1e-3))
        })
        .collect();
    Ok((costs, int8_ms))
}

/// The f32 part of [`mixed_precision_search`] (steps 1 and 2 above) on top of `base`.
#[allow(clippy::too_many_arguments)]
fn f32_search(
    g: &Graph,
    stats: &lower::Stats,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
    target: f64,
    base: &lower::LowerOptions,
    goal: f64,
    progress: bool,
) -> Result<MixedPrecision> {
    let already = &base.keep_float;
    let cands: Vec<String> = candidates(g).into_iter().filter(|c| !already.contains(c)).collect();
    let sub = samples.len().min(16);
    let baseline = measure(g, stats, base, already, &samples[..sub], &reference[..sub])?;
    let all: HashSet<String> = cands.iter().chain(already).cloned().collect();
    let pb = crate::progress::bar(cands.len(), "sensitivity", progress);
    let mut sens = Vec::new();
    for c in &cands {
        let mut keep = all.clone();
        keep.remove(c);
        let a = measure(g, stats, base, &keep, &samples[..sub], &reference[..sub])?;
        sens.push((c.clone(), a.sqnr_db));
        pb.inc(1);
    }
    pb.finish_and_clear();
    sens.sort_by(|a, b| a.1.total_cmp(&b.1));
    let keep_top = |k: usize| -> HashSet<String> {
        let mut keep = already.clone();
        keep.extend(sens[..k].iter().map(|(c, _)| c.clone()));
        keep
    };
    let (mut lo, mut hi) = (0usize, sens.len());
    let mut evaluated = Vec::new();
    let pb = crate::progress::bar(((sens.len() + 1) as f64).log2().ceil() as usize, "search", progress);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let keep = keep_top(mid);
        let opts = lower::LowerOptions { keep_float: keep.clone(), ..base.clone() };
        let (a, size) = measure_sized(g, stats, &opts, samples, reference)?;
        evaluated.push(SearchPoint {
            int16_layers: base.int16.iter().filter(|c| !keep.contains(*c)).count(),
            f32_layers: keep.len(),
            cost: size as f64,
            expected_agreement: a.expected_agreement,
            sqnr_db: a.sqnr_db,
            chosen: false,
        });
        if a.expected_agreement >= goal {
            hi = mid;
        } else {
            lo = mid + 1;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if let Some(p) = evaluated.iter_mut().find(|p| p.f32_layers == already.len() + lo) {
        p.chosen = true;
    }
    let kept = sens[..lo].iter().map(|(c, _)| c.clone()).collect();
    Ok(MixedPrecision {
        target,
        goal,
        kept,
        int16: Vec::new(),
        all_int16_agreement: None,
        sensitivity: sens,
        baseline_sqnr_db: baseline.sqnr_db,
        evaluated,
        cost_unit: ".sparq file size (bytes)".to_string(),
    })
}
