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
    /// (layer, logit SQNR in dB with only this layer in int8) for every candidate, most
    /// sensitive (lowest) first.
    pub sensitivity: Vec<(String, f64)>,
    pub baseline_sqnr_db: f64,
}

/// Candidate layers for f32: every node that computes (all but reshapes), since each int8 node
/// adds rounding error: weights, requantized outputs, or both.
fn candidates(g: &Graph) -> Vec<String> {
    g.nodes.iter().filter(|n| !matches!(n.op, Op::Reshape)).map(|n| n.name.clone()).collect()
}

fn measure(
    g: &Graph,
    stats: &lower::Stats,
    base: &lower::LowerOptions,
    keep: &HashSet<String>,
    samples: &[Vec<f32>],
    reference: &[Vec<Vec<f32>>],
) -> Result<Agreement> {
    let lowered = lower::lower(g, stats, &lower::LowerOptions { keep_float: keep.clone(), ..base.clone() })?;
    let bytes = lowered.spec.to_bytes();
    let outs = eval::run_sparq(&bytes, samples, None)?;
    Ok(eval::compare(&outs, reference, None))
}

/// Find the fewest layers to keep in f32 for top-1 agreement `target`, on top of the options
/// `base` (its `keep_float` layers are kept in any case).
///
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
    let goal = target + (1.0 - target) * margin;
    let keep_top = |k: usize| -> HashSet<String> {
        let mut keep = already.clone();
        keep.extend(sens[..k].iter().map(|(c, _)| c.clone()));
        keep
    };
    let (mut lo, mut hi) = (0usize, sens.len());
    let pb = crate::progress::bar(((sens.len() + 1) as f64).log2().ceil() as usize, "search", progress);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if measure(g, stats, base, &keep_top(mid), samples, reference)?.expected_agreement >= goal {
            hi = mid;
        } else {
            lo = mid + 1;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let kept = sens[..lo].iter().map(|(c, _)| c.clone()).collect();
    Ok(MixedPrecision { target, goal, kept, sensitivity: sens, baseline_sqnr_db: baseline.sqnr_db })
}
