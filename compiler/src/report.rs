//! The compile report: sizes, agreement, precision per layer, pruning records.

use crate::calib::eval::Agreement;
use crate::ir::Graph;
use crate::lower::{self, Lowered, Precision};
use crate::policy::MixedPrecision;
use std::collections::BTreeMap;
use std::fmt;

pub struct Report {
    pub precision: Precision,
    pub onnx_bytes: usize,
    pub sparq_bytes: usize,
    pub f32_weight_bytes: usize,
    pub macs: u64,
    pub nodes: usize,
    pub op_counts: BTreeMap<&'static str, usize>,
    /// Layers left in f32 in an int8 model: name, bytes of f32 weights, why.
    pub float_layers: Vec<(String, usize, String)>,
    /// Layers asked to run in int16 (`--int16`, `--min-agreement`): name, and why one runs in
    /// int8 after all.
    pub int16_layers: Vec<(String, Option<&'static str>)>,
    pub arena_bytes: usize,
    pub liveness_bound: usize,
    pub calibration: Option<Agreement>,
    pub mixed: Option<MixedPrecision>,
    /// Calibration method used, and (for `auto`) the output SQNR of each one tried.
    /// (With `auto`, the last entry of the tried list is the final choice after the segments.)
    pub calibration_method: Option<(crate::calib::CalibMethod, Vec<(crate::calib::CalibMethod, f64)>)>,
    /// With `auto`: per segment of the graph (its first tensor), the range method kept there.
    pub range_segments: Vec<(String, crate::calib::CalibMethod)>,
    /// Per prunable layer: its pattern and sparsity (pruned here, or already in the model).
    pub sparsity: Vec<crate::compress::prune::LayerSparsity>,
    /// Per int8 weight matrix (by layer): dense or block-sparse, and its stored bytes.
    pub matrices: Vec<(String, lower::MatrixKernel)>,
    /// Chains whose channels were removed (`--prune-channels`).
    pub channels: Vec<crate::compress::channels::ChainPruned>,
    /// MACs of the model before any pruning.
    pub macs_before: u64,
    /// The agreement was measured on the calibration samples held out of the activation ranges,
    /// the weight rounding, the pruning re-fit and the mixed-precision search.
    pub agreement_held_out: bool,
    /// Per layer rounded from calibration data: the method kept and its output SQNR on the
    /// held-out calibration samples, against nearest rounding's (`--weight-rounding`).
    pub rounding: Vec<crate::compress::rounding::LayerRounding>,
    /// Rounding on int8 inputs (`--round-on-int8`): the layers rounded again, and the model's
    /// output SQNR (dB) on the calibration samples held out of that fit, before and after; the
    /// new rounding is kept only if it measures better there.
    pub int8_inputs: Option<Int8InputRounding>,
    /// Groups of activations equalized across channels (`--equalize`).
    pub equalized: Vec<crate::compress::equalize::Equalized>,
    /// `--input-dtype u8`: the frames' memory layout and the dtype the model normalizes them in.
    pub frames: Option<(&'static str, &'static str)>,
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
                .map(|l| {
                    let why = match g.nodes.iter().find(|n| n.name == l.name) {
                        Some(n) if n.op.float_only() => format!("no int8 kernel for {}", n.onnx_op),
                        _ => l.why_f32.unwrap_or("kept in f32 (--keep-float or --min-agreement)").to_string(),
                    };
                    (l.name.clone(), l.weight_bytes, why)
                })
                .collect()
        } else {
            Vec::new()
        };
        let int16_layers = lowered
            .layers
            .iter()
            .filter(|l| l.precision == Precision::Int16 || l.why_not_int16.is_some())
            .map(|l| (l.name.clone(), l.why_not_int16))
            .collect();
        let matrices = lowered.layers.iter().filter_map(|l| Some((l.name.clone(), l.matrix?))).collect();
        Report {
            matrices,
            channels: Vec::new(),
            macs_before: g.macs(),
            agreement_held_out: false,
            rounding: Vec::new(),
            int8_inputs: None,
            equalized: Vec::new(),
            frames: None,
            precision,
            onnx_bytes,
            sparq_bytes,
            f32_weight_bytes: g.weight_bytes(),
            macs: g.macs(),
            nodes: g.nodes.len(),
            op_counts,
            float_layers,
            int16_layers,
            arena_bytes: lowered.spec.arena_size,
            liveness_bound: lowered.liveness_bound,
            calibration,
            mixed,
            calibration_method: None,
            range_segments: Vec::new(),
            sparsity: Vec::new(),
        }
    }
}

impl Report {
    /// What a compression pass did, printed in its section.
    pub fn record(&mut self, record: crate::compress::Record) {
        match record {
            crate::compress::Record::Channels(chains) => self.channels.extend(chains),
            crate::compress::Record::Prune(layers) => self.sparsity.extend(layers),
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
            Precision::Int16 => "int16",
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
        if let Some((layout, dtype)) = self.frames {
            writeln!(
                f,
                "  input       uint8 frames ({layout}), normalized by the model's first op ({dtype}, mean/std folded in)"
            )?;
        }
        if let Some((m, tried)) = &self.calibration_method {
            if tried.is_empty() {
                writeln!(f, "  ranges      {m}")?;
            } else if self.range_segments.is_empty() {
                let t: Vec<String> = tried.iter().map(|(m, s)| format!("{m} {s:.1} dB")).collect();
                writeln!(f, "  ranges      {m} (output SQNR of each tried: {})", t.join(", "))?;
            } else {
                // The last entry is the result after the per-segment choice.
                let (each, last) = tried.split_at(tried.len() - 1);
                let t: Vec<String> = each.iter().map(|(m, s)| format!("{m} {s:.1} dB")).collect();
                writeln!(f, "  ranges      {m} (output SQNR on fitting samples of each tried: {})", t.join(", "))?;
                let changed: Vec<String> = self
                    .range_segments
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, sm))| sm != m)
                    .map(|(k, (n, sm))| format!("{sm} in segment {} (from {})", k + 1, short(n)))
                    .collect();
                writeln!(
                    f,
                    "              then per graph segment ({} in graph order): {} -> {:.1} dB",
                    self.range_segments.len(),
                    if changed.is_empty() { "none changed".to_string() } else { changed.join(", ") },
                    last.first().map_or(f64::NAN, |l| l.1)
                )?;
            }
        }
        if !self.equalized.is_empty() {
            writeln!(
                f,
                "  equalized   {} activation group(s) scaled per channel (exact; spread of channel ranges, largest / median):",
                self.equalized.len()
            )?;
            for e in &self.equalized {
                let absorbed = if e.absorbed > 0 {
                    format!(", bias of {} channel(s) absorbed", e.absorbed)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "                {}  {} tensor(s) x {} channels  {:.1}x -> {:.1}x{absorbed}",
                    short(&e.tensor),
                    e.tensors,
                    e.channels,
                    e.spread_before,
                    e.spread_after
                )?;
            }
        }
        if !self.rounding.is_empty() {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for l in &self.rounding {
                *counts.entry(l.method.name()).or_insert(0) += 1;
            }
            let counts: Vec<String> = counts.iter().map(|(m, c)| format!("{m} {c}")).collect();
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
            };
            let worst = self.rounding.iter().map(|l| l.sqnr).fold(f64::INFINITY, f64::min);
            let worst_nearest = self.rounding.iter().map(|l| l.sqnr_nearest).fold(f64::INFINITY, f64::min);
            writeln!(
                f,
                "  rounding    weights of {} layers: {}; layer output SQNR on held-out calibration samples median {:.1} dB, worst {:.1} dB (nearest: {:.1} / {:.1} dB)",
                self.rounding.len(),
                counts.join(", "),
                median(&mut self.rounding.iter().map(|l| l.sqnr).collect()),
                worst,
                median(&mut self.rounding.iter().map(|l| l.sqnr_nearest).collect()),
                worst_nearest,
            )?;
        }
        if let Some(r) = &self.int8_inputs {
            writeln!(
                f,
                "              then {} layer(s) rounded again, one at a time, on the inputs the int8 model gives them (mixed half and half with the float ones): output SQNR on the {} calibration samples held out of that fit {:.1} -> {:.1} dB ({})",
                r.layers.len(),
                r.samples,
                r.before_db,
                r.after_db,
                if r.kept { "kept" } else { "not kept" },
            )?;
        }
        if let Some(m) = &self.mixed {
            let all16 = m
                .all_int16_agreement
                .map(|a| format!("; every int16 candidate in int16: {:.1}% expected", a * 100.0))
                .unwrap_or_default();
            writeln!(
                f,
                "  mixed       target top-1 agreement {:.1}% (searched for {:.1}% expected on calibration{all16}): {} layer(s) int16, {} in f32 (all-int8 SQNR {:.1} dB)",
                m.target * 100.0,
                m.goal * 100.0,
                m.int16.len(),
                m.kept.len(),
                m.baseline_sqnr_db
            )?;
            let top: Vec<String> =
                m.sensitivity.iter().take(8).map(|(n, db)| format!("{} ({db:.1} dB)", short(n))).collect();
            let others = if m.kept.is_empty() && !m.int16.is_empty() { "int16" } else { "f32" };
            writeln!(
                f,
                "  sensitivity output SQNR with only that layer in int8 (the others {others}), worst first: {}",
                top.join(", ")
            )?;
        }
        if !self.int16_layers.is_empty() {
            let n = self.int16_layers.iter().filter(|(_, why)| why.is_none()).count();
            writeln!(f, "  int16       {n} layer(s) with int16 activations and int8 weights (A16W8)")?;
            for (name, why) in &self.int16_layers {
                match why {
                    None => writeln!(f, "                {name}")?,
                    Some(why) => writeln!(f, "                {name}  (kept int8: {why})")?,
                }
            }
        }
        if !self.float_layers.is_empty() {
            let extra: usize = self.float_layers.iter().map(|(_, b, _)| b).sum();
            writeln!(f, "  f32 layers  {} ({} of f32 weights)", self.float_layers.len(), human_bytes(extra))?;
            for (name, b, why) in &self.float_layers {
                writeln!(f, "                {name}  ({}; {why})", human_bytes(*b))?;
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
                if self.agreement_held_out { " held out of every choice (ranges, rounding, re-fit, precision)" } else { "" },
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

/// The report's name for a matrix's kernel.
fn kernel_name(m: lower::MatrixKernel) -> String {
    if m.sparse {
        format!("sparse16x4 ({:.0}% of blocks)", m.block_density * 100.0)
    } else {
        "dense".to_string()
    }
}

/// What rounding on int8 inputs did (see [`Report::int8_inputs`]).
#[derive(Clone, Debug)]
pub struct Int8InputRounding {
    pub layers: Vec<String>,
    pub samples: usize,
    pub before_db: f64,
    pub after_db: f64,
    pub kept: bool,
}
