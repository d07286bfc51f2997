//! The compile report, and the mixed-precision search it describes.

use crate::error::Result;
use crate::eval::{self, Agreement};
use crate::ir::{Graph, Op};
use crate::lower::{self, Lowered, Precision};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

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

pub struct Report {
    pub precision: Precision,
    pub onnx_bytes: usize,
    pub sparq_bytes: usize,
    pub f32_weight_bytes: usize,
    pub macs: u64,
    pub nodes: usize,
    pub op_counts: BTreeMap<&'static str, usize>,
    pub float_layers: Vec<(String, usize)>,
    pub arena_bytes: usize,
    pub liveness_bound: usize,
    pub calibration: Option<Agreement>,
    pub mixed: Option<MixedPrecision>,
    /// Calibration method used, and (for `auto`) the output SQNR of each one tried.
    pub calibration_method: Option<(crate::CalibMethod, Vec<(crate::CalibMethod, f64)>)>,
    /// Per prunable layer: its pattern and sparsity (pruned here, or already in the model).
    pub sparsity: Vec<crate::prune::LayerSparsity>,
    /// Per int8 weight matrix (by layer): dense or block-sparse, and its stored bytes.
    pub matrices: Vec<(String, lower::MatrixKernel)>,
    /// Chains whose channels were removed (`--prune-channels`).
    pub channels: Vec<crate::channels::ChainPruned>,
    /// MACs of the model before any pruning.
    pub macs_before: u64,
    /// The agreement was measured on the calibration samples held out of the pruning re-fit.
    pub agreement_held_out: bool,
}

impl Report {
    pub fn new(
        g: &Graph,
        lowered: &Lowered,
        onnx_bytes: usize,
        sparq_bytes: usize,
        calibration: Option<Agreement>,
        mixed: Option<MixedPrecision>,
        precision: Precision,
    ) -> Report {
        let mut op_counts = BTreeMap::new();
        for o in &lowered.spec.ops {
            *op_counts.entry(sparq_format::layout::op::name(o.kind)).or_insert(0) += 1;
        }
        let float_layers = if precision == Precision::Int8 {
            lowered
                .layers
                .iter()
                .filter(|l| l.precision == Precision::F32)
                .map(|l| (l.name.clone(), l.weight_bytes))
                .collect()
        } else {
            Vec::new()
        };
        let matrices = lowered.layers.iter().filter_map(|l| Some((l.name.clone(), l.matrix?))).collect();
        Report {
            matrices,
            channels: Vec::new(),
            macs_before: g.macs(),
            agreement_held_out: false,
            precision,
            onnx_bytes,
            sparq_bytes,
            f32_weight_bytes: g.weight_bytes(),
            macs: g.macs(),
            nodes: g.nodes.len(),
            op_counts,
            float_layers,
            arena_bytes: lowered.spec.arena_size,
            liveness_bound: lowered.liveness_bound,
            calibration,
            mixed,
            calibration_method: None,
            sparsity: Vec::new(),
        }
    }
}

pub fn human_bytes(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MB", b as f64 / (1 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.precision {
            Precision::Int8 => "int8",
            Precision::F32 => "f32",
        };
        writeln!(f, "compile report ({p})")?;
        writeln!(
            f,
            "  size        ONNX {} -> .sparq {}  ({:.3}x; f32 weights {})",
            human_bytes(self.onnx_bytes),
            human_bytes(self.sparq_bytes),
            self.sparq_bytes as f64 / self.onnx_bytes.max(1) as f64,
            human_bytes(self.f32_weight_bytes)
        )?;
        writeln!(f, "  compute     {} nodes, {:.1} M MACs", self.nodes, self.macs as f64 / 1e6)?;
        let ops: Vec<String> = self.op_counts.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        writeln!(f, "  ops         {}", ops.join(", "))?;
        writeln!(
            f,
            "  arena       {} (liveness lower bound {}, {:.2}x)",
            human_bytes(self.arena_bytes),
            human_bytes(self.liveness_bound),
            self.arena_bytes as f64 / self.liveness_bound.max(1) as f64
        )?;
        if let Some((m, tried)) = &self.calibration_method {
            let t: Vec<String> = tried.iter().map(|(m, s)| format!("{m} {s:.1} dB")).collect();
            if t.is_empty() {
                writeln!(f, "  ranges      {m}")?;
            } else {
                writeln!(f, "  ranges      {m} (output SQNR of each tried: {})", t.join(", "))?;
            }
        }
        if let Some(m) = &self.mixed {
            writeln!(
                f,
                "  mixed       target top-1 agreement {:.1}% (searched for {:.1}% expected on calibration): kept {} layer(s) in f32 (all-int8 SQNR {:.1} dB)",
                m.target * 100.0,
                m.goal * 100.0,
                m.kept.len(),
                m.baseline_sqnr_db
            )?;
        }
        if let Some(m) = &self.mixed {
            let top: Vec<String> =
                m.sensitivity.iter().take(8).map(|(n, db)| format!("{} ({db:.1} dB)", short(n))).collect();
            writeln!(f, "  sensitivity output SQNR with only that layer in int8, worst first: {}", top.join(", "))?;
        }
        if !self.float_layers.is_empty() {
            let extra: usize = self.float_layers.iter().map(|(_, b)| b).sum();
            writeln!(f, "  f32 layers  {} ({} of f32 weights)", self.float_layers.len(), human_bytes(extra))?;
            for (name, b) in &self.float_layers {
                writeln!(f, "                {name}  ({})", human_bytes(*b))?;
            }
        }
        if !self.channels.is_empty() {
            let (c, r): (usize, usize) =
                self.channels.iter().fold((0, 0), |(c, r), ch| (c + ch.channels, r + ch.removed));
            let groups = self.channels.iter().filter(|ch| ch.residual).count();
            let groups = if groups > 0 { format!(" and {groups} residual group(s)") } else { String::new() };
            writeln!(
                f,
                "  channels    {} chains (conv -> depthwise -> conv, conv -> pool -> classifier){groups} pruned: {} -> {} channels (-{:.1}%); MACs {:.1} M -> {:.1} M (-{:.1}%)",
                self.channels.len() - self.channels.iter().filter(|ch| ch.residual).count(),
                c,
                c - r,
                r as f64 / c.max(1) as f64 * 100.0,
                self.macs_before as f64 / 1e6,
                self.macs as f64 / 1e6,
                (1.0 - self.macs as f64 / self.macs_before.max(1) as f64) * 100.0
            )?;
            for ch in &self.channels {
                let kind = if ch.residual { "  (residual group)" } else { "" };
                writeln!(
                    f,
                    "                {}  {} -> {}{kind}",
                    short(&ch.expand),
                    ch.channels,
                    ch.channels - ch.removed
                )?;
            }
        }
        let pruned: Vec<_> = self.sparsity.iter().filter(|l| l.policy.is_some()).collect();
        let existing: Vec<_> = self.sparsity.iter().filter(|l| l.policy.is_none() && l.sparsity() >= 0.1).collect();
        if !pruned.is_empty() || !existing.is_empty() {
            let (w, z): (usize, usize) = pruned.iter().fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
            let (wa, za): (usize, usize) = self.sparsity.iter().fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
            writeln!(
                f,
                "  pruning     {} layer(s) pruned: {} -> {} non-zero weights ({:.1}% sparse); {} layer(s) already sparse in the model; all conv/fc layers {:.1}% sparse",
                pruned.len(),
                w,
                w - z,
                z as f64 / w.max(1) as f64 * 100.0,
                existing.len(),
                za as f64 / wa.max(1) as f64 * 100.0
            )?;
            writeln!(
                f,
                "                layer  kind  pattern  sparsity  weights  kernel  stored bytes  float model pruned through this layer: top-1 agreement / SQNR"
            )?;
            for l in pruned.iter().chain(&existing) {
                let pattern = l.policy.map(|p| p.pattern.to_string()).unwrap_or_else(|| "(in model)".into());
                let m = self.matrices.iter().find(|(n, _)| n == &l.name).map(|(_, m)| *m);
                writeln!(
                    f,
                    "                {}  {}  {}  {:.1}%  {}  {}  {}  {}",
                    short(&l.name),
                    l.kind,
                    pattern,
                    l.sparsity() * 100.0,
                    l.weights,
                    m.map_or_else(|| "dense".to_string(), kernel_name),
                    m.map_or_else(|| "-".to_string(), |m| m.bytes.to_string()),
                    l.impact.map_or_else(|| "-".to_string(), |(a, db)| format!("{:.1}% / {db:.1} dB", a * 100.0)),
                )?;
            }
            for l in self.sparsity.iter().filter(|l| l.note.is_some()) {
                writeln!(
                    f,
                    "                {}  {}  {}",
                    short(&l.name),
                    l.kind,
                    l.note.as_deref().unwrap_or_default()
                )?;
            }
            let refit = pruned.iter().filter(|l| l.reconstructed).count();
            if refit > 0 {
                writeln!(
                    f,
                    "                {refit} layer(s) re-fitted in graph order on the calibration data (least squares on the pruned model's inputs; --prune-reconstruct false: bias correction only)"
                )?;
            }
        }
        let sparse: Vec<_> = self.matrices.iter().filter(|(_, m)| m.sparse).collect();
        if !sparse.is_empty() || !pruned.is_empty() || !existing.is_empty() {
            let bytes = |f: &dyn Fn(&lower::MatrixKernel) -> bool| -> usize {
                self.matrices.iter().filter(|(_, m)| f(m)).map(|(_, m)| m.bytes).sum()
            };
            writeln!(
                f,
                "  kernels     {} of {} int8 weight matrices block-sparse (16x4 blocks, {} stored), {} dense ({}); chosen per layer by --sparse (default: the target's measured crossover)",
                sparse.len(),
                self.matrices.len(),
                human_bytes(bytes(&|m| m.sparse)),
                self.matrices.len() - sparse.len(),
                human_bytes(bytes(&|m| !m.sparse)),
            )?;
        }
        if let Some(a) = &self.calibration {
            writeln!(
                f,
                "  agreement   vs original float model on {} calibration samples{}: top-1 {:.2}% (expected on new data {:.2}%), output SQNR {:.1} dB",
                a.samples,
                if self.agreement_held_out { " held out of the pruning re-fit" } else { "" },
                a.top1_agreement * 100.0,
                a.expected_agreement * 100.0,
                a.sqnr_db
            )?;
        }
        Ok(())
    }
}

/// The last two path components of an ONNX node name, for compact tables.
fn short(name: &str) -> String {
    let parts: Vec<&str> = name.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
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
    let pb = crate::bar(cands.len(), "sensitivity", progress);
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
    let pb = crate::bar(((sens.len() + 1) as f64).log2().ceil() as usize, "search", progress);
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

/// The report's name for a matrix's kernel.
fn kernel_name(m: lower::MatrixKernel) -> String {
    if m.sparse {
        format!("sparse16x4 ({:.0}% of blocks)", m.block_density * 100.0)
    } else {
        "dense".to_string()
    }
}
