//! The float reference: the original ONNX model run by tract. Calibration records the range of
//! every tensor the IR keeps; evaluation compares sparq's outputs with tract's.

use crate::error::{CompileError, Result};
use crate::ir::Graph;
use crate::lower::Range;
use std::collections::HashMap;
use tract_onnx::prelude::*;

pub struct Reference {
    plan: std::sync::Arc<TypedSimplePlan>,
    input_shape: Vec<usize>,
    /// Names of the outputs of `run`, in order.
    pub names: Vec<String>,
}

fn terr(e: impl std::fmt::Display) -> CompileError {
    CompileError::Reference(e.to_string())
}

impl Reference {
    /// Load `onnx` in tract with the graph's (static) input shape, exposing `names` as outputs.
    pub fn new(onnx: &[u8], g: &Graph, names: Vec<String>) -> Result<Reference> {
        if g.inputs.len() != 1 {
            return Err(CompileError::Options("models with several inputs cannot be calibrated yet".into()));
        }
        let input_shape = g.tensors[g.inputs[0]].shape.clone();
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(terr)?;
        model.set_input_fact(0, f32::fact(&input_shape).into()).map_err(terr)?;
        model.select_outputs_by_name(names.iter()).map_err(terr)?;
        let plan = model.into_optimized().map_err(terr)?.into_runnable().map_err(terr)?;
        Ok(Reference { plan, input_shape, names })
    }

    /// Run one sample; returns each named tensor, row-major in ONNX order.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let t = Tensor::from_shape(&self.input_shape, input).map_err(terr)?;
        let out = self.plan.run(tvec!(t.into())).map_err(terr)?;
        out.iter().map(|v| v.to_plain_array_view::<f32>().map(|a| a.iter().copied().collect()).map_err(terr)).collect()
    }
}

/// How activation ranges are taken from the calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibMethod {
    MinMax,
    /// Per sample, the given percentile of the low and high tails; averaged over samples.
    Percentile(f32),
}

/// Running statistics for one tensor.
#[derive(Clone, Debug)]
struct Acc {
    min: f32,
    max: f32,
    lo_sum: f64,
    hi_sum: f64,
    n: usize,
    /// Per-channel (axis 1) sums over samples.
    channel_sum: Vec<f64>,
    channel_count: f64,
}

pub struct Calibration {
    pub stats: crate::lower::Stats,
    /// Float outputs of the graph for each calibration sample (for the compile report).
    pub outputs: Vec<Vec<Vec<f32>>>,
}

/// Names of the IR tensors that need calibration statistics: every node output.
pub fn activation_names(g: &Graph) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in &g.nodes {
        for &o in &n.outputs {
            let name = g.tensors[o].name.clone();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Run the float model over `samples`, recording every activation's range.
pub fn calibrate(
    onnx: &[u8],
    g: &Graph,
    samples: &[Vec<f32>],
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
) -> Result<Calibration> {
    let names = activation_names(g);
    let reference = Reference::new(onnx, g, names.clone())?;
    let out_pos: Vec<usize> = g
        .outputs
        .iter()
        .map(|&o| names.iter().position(|n| *n == g.tensors[o].name).expect("outputs are node outputs"))
        .collect();
    let mut accs: Vec<Acc> = vec![
        Acc {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            lo_sum: 0.0,
            hi_sum: 0.0,
            n: 0,
            channel_sum: Vec::new(),
            channel_count: 0.0
        };
        names.len()
    ];
    let mut input_acc = Acc {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        lo_sum: 0.0,
        hi_sum: 0.0,
        n: 0,
        channel_sum: Vec::new(),
        channel_count: 0.0,
    };
    let shapes: Vec<Vec<usize>> = names
        .iter()
        .map(|n| g.tensors.iter().find(|t| &t.name == n).map(|t| t.shape.clone()).unwrap_or_default())
        .collect();
    let mut outputs = Vec::with_capacity(samples.len());
    let mut scratch = Vec::new();
    for s in samples {
        record(&mut input_acc, s, method, &mut scratch, &g.tensors[g.inputs[0]].shape);
        let vals = reference.run(s)?;
        for ((acc, v), shape) in accs.iter_mut().zip(&vals).zip(&shapes) {
            record(acc, v, method, &mut scratch, shape);
        }
        outputs.push(out_pos.iter().map(|&p| vals[p].clone()).collect());
        progress.inc(1);
    }
    let mut ranges = HashMap::new();
    let mut channel_means = HashMap::new();
    let mean_of = |a: &Acc| a.channel_sum.iter().map(|&s| (s / a.channel_count.max(1.0)) as f32).collect::<Vec<f32>>();
    for (name, a) in names.iter().zip(&accs) {
        channel_means.insert(name.clone(), mean_of(a));
    }
    channel_means.insert(g.tensors[g.inputs[0]].name.clone(), mean_of(&input_acc));
    let finish = |a: &Acc| match method {
        CalibMethod::MinMax => Range { min: a.min, max: a.max },
        CalibMethod::Percentile(_) => {
            Range { min: (a.lo_sum / a.n.max(1) as f64) as f32, max: (a.hi_sum / a.n.max(1) as f64) as f32 }
        }
    };
    for (name, a) in names.iter().zip(&accs) {
        ranges.insert(name.clone(), finish(a));
    }
    ranges.insert(g.tensors[g.inputs[0]].name.clone(), finish(&input_acc));
    Ok(Calibration { stats: crate::lower::Stats { ranges, channel_means }, outputs })
}

fn record(acc: &mut Acc, v: &[f32], method: CalibMethod, scratch: &mut Vec<f32>, shape: &[usize]) {
    if shape.len() >= 2 && shape.iter().product::<usize>() == v.len() {
        let c = shape[1];
        let inner: usize = shape[2..].iter().product();
        if acc.channel_sum.len() != c {
            acc.channel_sum = vec![0.0; c];
        }
        for (i, &x) in v.iter().enumerate() {
            acc.channel_sum[(i / inner) % c] += x as f64;
        }
        acc.channel_count += (v.len() / c) as f64;
    }
    let (mn, mx) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    acc.min = acc.min.min(mn);
    acc.max = acc.max.max(mx);
    if let CalibMethod::Percentile(p) = method {
        scratch.clear();
        scratch.extend_from_slice(v);
        let n = scratch.len();
        if n > 0 {
            let k_hi = (((p as f64 / 100.0) * (n - 1) as f64).round() as usize).min(n - 1);
            let k_lo = n - 1 - k_hi;
            let hi = *scratch.select_nth_unstable_by(k_hi, |a, b| a.total_cmp(b)).1;
            let lo = *scratch.select_nth_unstable_by(k_lo, |a, b| a.total_cmp(b)).1;
            acc.lo_sum += lo as f64;
            acc.hi_sum += hi as f64;
        }
    }
    acc.n += 1;
}
