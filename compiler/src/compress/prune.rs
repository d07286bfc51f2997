//! Magnitude pruning, applied before calibration and quantization.
//!
//! A [`PrunePolicy`] gives each prunable layer a sparsity and a pattern:
//! - `unstructured`: the smallest-magnitude weights of the layer;
//! - `block RxC` (`block8x1`, `block1x4`, `block4x1`...): blocks of `R` output channels by `C`
//!   consecutive reduction elements, ranked by their summed magnitude. The reduction runs in the
//!   runtime's order (kernel row, kernel column, input channel), the axis the compiler packs, so
//!   a block is a contiguous piece of a packed panel;
//! - `N:M` (`2:4`): in every group of `M` consecutive reduction elements of an output channel,
//!   the `N` largest are kept (sparsity `1 - N/M`).
//!
//! Prunable layers are convolutions with one group (`conv`; the 1x1 ones are also `pw`), grouped
//! or depthwise convolutions (`dw`, only when named explicitly) and fully-connected layers (`fc`).
//!
//! With calibration data, a weight's importance is its magnitude times the root mean square of
//! the input channel it multiplies (`|w| * rms(x)`, as in Wanda, Sun et al. 2023): a large weight
//! on a channel that is almost always zero matters little. Without data it is the magnitude. A
//! plain sparsity (`--prune 0.5`) is *global*: one threshold over every conv and fc layer, so
//! layers whose weights matter more keep more of them; sparsities given per kind or per layer
//! rank within the layer. After pruning, each output channel's bias absorbs the mean of what the
//! pruned weights contributed (`sum w * mean(x)`), so its expected pre-activation is unchanged.
//!
//! [`prune`] is a pass over the IR: the masks are computed on the graph's weights and applied in
//! place (no ONNX is written or re-imported); calibration then measures the pruned graph with
//! sparq's runtime, while the compile report still compares the final model with the original
//! float model.

use crate::error::{CompileError, Result};
use crate::ir::{Graph, Op};
use std::collections::HashMap;
use std::fmt;

/// How the zeros are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    Unstructured,
    /// `rows` output channels by `cols` consecutive reduction elements.
    Block {
        rows: usize,
        cols: usize,
    },
    /// Keep `n` of every `m` consecutive reduction elements.
    NOfM {
        n: usize,
        m: usize,
    },
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Unstructured => write!(f, "unstructured"),
            Pattern::Block { rows, cols } => write!(f, "block{rows}x{cols}"),
            Pattern::NOfM { n, m } => write!(f, "{n}:{m}"),
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = CompileError;
    fn from_str(s: &str) -> Result<Pattern> {
        let bad = |reason: &'static str| CompileError::PrunePattern { pattern: s.to_string(), reason };
        let s = s.trim();
        if s == "unstructured" {
            return Ok(Pattern::Unstructured);
        }
        if let Some(rc) = s.strip_prefix("block") {
            let (r, c) = rc.split_once('x').ok_or_else(|| bad("no `x` in the block shape"))?;
            let (rows, cols) =
                (r.parse::<usize>().map_err(|_| bad("bad rows"))?, c.parse::<usize>().map_err(|_| bad("bad columns"))?);
            if rows == 0 || cols == 0 || rows * cols > 256 {
                return Err(bad("block sides must be at least 1 and the block at most 256 weights"));
            }
            return Ok(Pattern::Block { rows, cols });
        }
        if let Some((n, m)) = s.split_once(':') {
            let (n, m) = (n.parse::<usize>().map_err(|_| bad("bad N"))?, m.parse::<usize>().map_err(|_| bad("bad M"))?);
            if m == 0 || n == 0 || n > m || m > 64 {
                return Err(bad("need 0 < N <= M <= 64"));
            }
            return Ok(Pattern::NOfM { n, m });
        }
        Err(bad("unknown pattern"))
    }
}

/// Sparsity and pattern of one layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerPolicy {
    /// Fraction of weights set to zero (for `N:M`: `1 - N/M`).
    pub sparsity: f64,
    pub pattern: Pattern,
}

impl LayerPolicy {
    fn new(sparsity: f64, pattern: Pattern) -> Result<LayerPolicy> {
        let sparsity = match pattern {
            Pattern::NOfM { n, m } => 1.0 - n as f64 / m as f64,
            _ => sparsity,
        };
        if !(0.0..1.0).contains(&sparsity) {
            return Err(CompileError::Sparsity(sparsity));
        }
        Ok(LayerPolicy { sparsity, pattern })
    }
}

/// The prunable kind of a layer: `pw` (1x1 convolution), `conv` (other convolutions with one
/// group), `dw` (grouped / depthwise), `fc`. A `conv` policy covers `pw` layers too.
pub fn kind(op: &Op) -> Option<&'static str> {
    match op {
        Op::Conv { group: 1, window, .. } if window.kernel == [1, 1] => Some("pw"),
        Op::Conv { group: 1, .. } => Some("conv"),
        Op::Conv { .. } => Some("dw"),
        Op::Dense { .. } => Some("fc"),
        _ => None,
    }
}

/// Which layers to prune, and how.
#[derive(Clone, Debug, Default)]
pub struct PrunePolicy {
    /// For every `conv` and `fc` layer not otherwise named.
    pub default: Option<LayerPolicy>,
    /// By kind (`conv`, `pw`, `dw`, `fc`).
    pub kinds: HashMap<String, LayerPolicy>,
    /// By layer (node) name.
    pub layers: HashMap<String, LayerPolicy>,
}

impl PrunePolicy {
    /// Parse `--prune`: `0.7`, `2:4`, or comma-separated `KEY=VALUE` where KEY is `conv`, `pw`
    /// (1x1 convolutions), `dw`, `fc` or a layer name and VALUE a sparsity or `N:M`. `pattern`
    /// applies to plain sparsities.
    pub fn parse(spec: &str, pattern: Pattern) -> Result<PrunePolicy> {
        let value = |v: &str| -> Result<LayerPolicy> {
            let v = v.trim();
            if v.contains(':') {
                return LayerPolicy::new(0.0, v.parse()?);
            }
            let s: f64 = v.parse().map_err(|_| CompileError::PruneValue(v.to_string()))?;
            LayerPolicy::new(s, pattern)
        };
        let mut p = PrunePolicy::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.rsplit_once('=') {
                None => p.default = Some(value(item)?),
                Some((key, v)) => {
                    let key = key.trim();
                    let lp = value(v)?;
                    if matches!(key, "conv" | "pw" | "dw" | "fc") {
                        p.kinds.insert(key.to_string(), lp);
                    } else {
                        p.layers.insert(key.to_string(), lp);
                    }
                }
            }
        }
        Ok(p)
    }

    /// Parse a policy file (`--prune-file`), TOML:
    ///
    /// ```toml
    /// sparsity = 0.7            # every conv and fc layer
    /// pattern = "block8x1"      # default: unstructured
    /// [kinds]
    /// fc = 0.5
    /// conv = { sparsity = 0.8, pattern = "2:4" }
    /// [layers]
    /// "/features/features.0/features.0.0/Conv" = 0.0
    /// ```
    pub fn from_toml(text: &str) -> Result<PrunePolicy> {
        let bad = CompileError::PrunePolicyFile;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let pattern = match table.get("pattern") {
            Some(toml::Value::String(s)) => s.parse()?,
            Some(other) => return Err(bad(format!("`pattern` must be a string, not {other}"))),
            None => Pattern::Unstructured,
        };
        let entry = |key: &str, v: &toml::Value| -> Result<LayerPolicy> {
            match v {
                toml::Value::Float(s) => LayerPolicy::new(*s, pattern),
                toml::Value::Integer(s) => LayerPolicy::new(*s as f64, pattern),
                toml::Value::String(s) => LayerPolicy::new(0.0, s.parse()?),
                toml::Value::Table(t) => {
                    let pat = match t.get("pattern") {
                        Some(toml::Value::String(s)) => s.parse()?,
                        None => pattern,
                        Some(o) => return Err(bad(format!("{key}: `pattern` must be a string, not {o}"))),
                    };
                    let s = match t.get("sparsity") {
                        Some(toml::Value::Float(s)) => *s,
                        Some(toml::Value::Integer(s)) => *s as f64,
                        None => 0.0,
                        Some(o) => return Err(bad(format!("{key}: `sparsity` must be a number, not {o}"))),
                    };
                    LayerPolicy::new(s, pat)
                }
                o => Err(bad(format!("{key}: expected a sparsity, `N:M` or a table, not {o}"))),
            }
        };
        let mut p = PrunePolicy::default();
        for (key, v) in &table {
            match key.as_str() {
                "pattern" => {}
                "sparsity" => p.default = Some(entry("sparsity", v)?),
                "kinds" | "layers" => {
                    let toml::Value::Table(t) = v else { return Err(bad(format!("`{key}` must be a table"))) };
                    for (k, v) in t {
                        let lp = entry(k, v)?;
                        if key == "kinds" {
                            if !matches!(k.as_str(), "conv" | "pw" | "dw" | "fc") {
                                return Err(bad(format!("unknown kind `{k}` (conv, pw, dw, fc)")));
                            }
                            p.kinds.insert(k.clone(), lp);
                        } else {
                            p.layers.insert(k.clone(), lp);
                        }
                    }
                }
                other => return Err(bad(format!("unknown key `{other}` (sparsity, pattern, kinds, layers)"))),
            }
        }
        Ok(p)
    }

    /// The policy of layer `name` of kind `kind`, if it is pruned.
    pub fn for_layer(&self, name: &str, kind: &str) -> Option<LayerPolicy> {
        self.resolve(name, kind).map(|(p, _)| p)
    }

    /// As `for_layer`, and whether the layer takes the global default (one threshold shared by
    /// all such layers, for unstructured and block patterns).
    fn resolve(&self, name: &str, kind: &str) -> Option<(LayerPolicy, bool)> {
        let by_kind = self.kinds.get(kind).or_else(|| if kind == "pw" { self.kinds.get("conv") } else { None });
        let (p, global) = match self.layers.get(name).or(by_kind) {
            Some(p) => (*p, false),
            None if kind != "dw" => (self.default?, true),
            None => return None,
        };
        let global = global && !matches!(p.pattern, Pattern::NOfM { .. });
        (p.sparsity > 0.0).then_some((p, global))
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.kinds.is_empty() && self.layers.is_empty()
    }
}

/// A unit a pattern ranks: rows `r0..r1` by columns `c0..c1` of an `n x k` matrix (a single
/// weight, or a block), with its mean importance.
#[derive(Clone, Copy)]
struct Unit {
    score: f64,
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

impl Unit {
    fn len(&self) -> usize {
        (self.r1 - self.r0) * (self.c1 - self.c0)
    }
    /// Element indices `r * k + c`.
    fn elements(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        (self.r0..self.r1).flat_map(move |r| (self.c0..self.c1).map(move |c| r * k + c))
    }
}

/// The units of an `n x k` matrix under `pattern` (blocks, or single weights), in row-major
/// block order.
fn units(n: usize, k: usize, score: &dyn Fn(usize, usize) -> f64, pattern: Pattern) -> Vec<Unit> {
    let (rows, cols) = match pattern {
        Pattern::Block { rows, cols } => (rows, cols),
        _ => (1, 1),
    };
    let (br, bc) = (n.div_ceil(rows), k.div_ceil(cols));
    (0..br * bc)
        .map(|b| {
            let (r0, c0) = (b / bc * rows, b % bc * cols);
            let mut u = Unit { score: 0.0, r0, r1: (r0 + rows).min(n), c0, c1: (c0 + cols).min(k) };
            u.score = u.elements(k).map(|i| score(i / k, i % k)).sum::<f64>() / u.len() as f64;
            u
        })
        .collect()
}

/// Zero mask (`true` = pruned) of an `n x k` matrix with element importances `score(r, c)`
/// (non-negative), by the layer's own ranking; or, for unstructured and block patterns with a
/// `threshold`, every unit whose mean importance is below it (global pruning).
pub fn mask(
    n: usize,
    k: usize,
    score: impl Fn(usize, usize) -> f64,
    policy: LayerPolicy,
    threshold: Option<f64>,
) -> Vec<bool> {
    let mut pruned = vec![false; n * k];
    match policy.pattern {
        Pattern::Unstructured | Pattern::Block { .. } => {
            let mut u = units(n, k, &score, policy.pattern);
            match threshold {
                Some(t) => u.retain(|x| x.score < t),
                None => {
                    // Stable sort: ties go to the earlier unit.
                    u.sort_by(|a, b| a.score.total_cmp(&b.score));
                    let count = (policy.sparsity * u.len() as f64).round() as usize;
                    u.truncate(count);
                }
            }
            for x in &u {
                for i in x.elements(k) {
                    pruned[i] = true;
                }
            }
        }
        Pattern::NOfM { n: keep, m } => {
            for r in 0..n {
                let mut c0 = 0;
                while c0 < k {
                    let len = m.min(k - c0);
                    let mut group: Vec<usize> = (c0..c0 + len).collect();
                    group.sort_by(|&a, &b| score(r, b).total_cmp(&score(r, a)).then(a.cmp(&b)));
                    for &c in &group[keep.min(len)..] {
                        pruned[r * k + c] = true;
                    }
                    c0 += len;
                }
            }
        }
    }
    pruned
}

/// What happened to one layer.
#[derive(Clone, Debug)]
pub struct LayerSparsity {
    pub name: String,
    pub kind: &'static str,
    /// `None`: not pruned by the compiler (its zeros, if any, were already in the model).
    pub policy: Option<LayerPolicy>,
    pub weights: usize,
    pub zeros: usize,
    /// What pruning only this layer does to the float model: (top-1 agreement, output SQNR in
    /// dB) against the unpruned float model on a few calibration samples (see
    /// [`layer_impact`]); `None` when not measured.
    pub impact: Option<(f64, f64)>,
    /// Whether the kept weights were reconstructed from calibration data
    /// ([`super::reconstruct`]) rather than only the bias corrected.
    pub reconstructed: bool,
    /// Why a layer the policy covers was left as it is.
    pub note: Option<String>,
    /// The pruned layer's new weights (IR layout) and the bias change that came with them, for
    /// [`layer_impact`].
    pub(crate) change: Option<(Vec<f32>, Vec<f32>)>,
}

impl LayerSparsity {
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.weights.max(1) as f64
    }
}

/// The weights of every prunable layer of `g` with their zero counts (existing sparsity).
pub fn survey(g: &Graph) -> Vec<LayerSparsity> {
    g.nodes
        .iter()
        .filter_map(|node| {
            let kind = kind(&node.op)?;
            let w = g.value(node.inputs[1]);
            Some(LayerSparsity {
                name: node.name.clone(),
                kind,
                policy: None,
                weights: w.len(),
                zeros: w.iter().filter(|&&v| v == 0.0).count(),
                impact: None,
                reconstructed: false,
                note: None,
                change: None,
            })
        })
        .collect()
}

/// The index of `node` (a node of `g`) in `g.nodes`.
fn layer_index(g: &Graph, node: &crate::ir::Node) -> usize {
    g.nodes.iter().position(|n| std::ptr::eq(n, node)).expect("a node of the graph")
}

/// Maps (row, runtime reduction column) to an index in a layer's IR weight tensor.
type IndexFn = Box<dyn Fn(usize, usize) -> usize>;

/// Index of element (row `r`, runtime reduction column `c`) in the IR weight tensor of `node`:
/// convolutions `[O, I/g, KH, KW]` with the reduction in (kh, kw, ic) order, dense `[N, K]`.
fn weight_index(g: &Graph, node: &crate::ir::Node) -> (usize, usize, IndexFn) {
    let shape = g.tensors[node.inputs[1]].shape.clone();
    match node.op {
        Op::Conv { .. } => {
            let (o, i, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
            let k = i * kh * kw;
            (
                o,
                k,
                Box::new(move |r, c| {
                    let (tap, ic) = (c / i, c % i);
                    r * k + ic * kh * kw + tap
                }),
            )
        }
        _ => {
            let (n, k) = (shape[0], shape[1]);
            (n, k, Box::new(move |r, c| r * k + c))
        }
    }
}

/// Input statistics of the layers, by input tensor name: per-channel mean and root mean square
/// (from calibration of the original model).
pub struct InputStats<'a> {
    pub means: &'a HashMap<String, Vec<f32>>,
    pub rms: &'a HashMap<String, Vec<f32>>,
    /// Calibration samples (model inputs): with them, the kept weights of the pruned layers are
    /// re-fitted layer after layer ([`super::reconstruct`]) instead of only the biases corrected.
    pub samples: Option<&'a [Vec<f32>]>,
    /// Shows the progress of the re-fitting, one step per layer.
    pub progress: Option<&'a indicatif::ProgressBar>,
}

/// The magnitude pruning pass: prunes the conv and fully-connected layers of `graph` by `policy`
/// in place (weights zeroed, and the kept ones re-fitted or the biases corrected), with
/// activation-aware importance and bias correction when `stats` are given; returns the per-layer
/// record the report prints. Layers named in the policy must exist. The activations it needs
/// (for the re-fitting) come from running the graphs in f32 with sparq's runtime.
pub fn prune(graph: &mut Graph, policy: &PrunePolicy, stats: Option<&InputStats<'_>>) -> Result<Vec<LayerSparsity>> {
    for name in policy.layers.keys() {
        if !graph.nodes.iter().any(|n| &n.name == name && kind(&n.op).is_some()) {
            return Err(CompileError::NoSuchPruneLayer(name.clone()));
        }
    }
    // The graph as it comes in: the ranking, the masks and the re-fitting targets are taken on
    // it, while `graph` is edited layer after layer.
    let base = graph.clone();
    let g = &base;
    let mut record = survey(g);
    let layers: Vec<&crate::ir::Node> = g.nodes.iter().filter(|n| kind(&n.op).is_some()).collect();
    // Importance of each element of each layer, in the runtime's (row, reduction) order.
    let input_channel = |node: &crate::ir::Node, c: usize| match node.op {
        Op::Conv { .. } => c % g.tensors[node.inputs[1]].shape[1],
        _ => c,
    };
    let channel_stat = |map: &HashMap<String, Vec<f32>>, node: &crate::ir::Node| -> Option<Vec<f32>> {
        let v = map.get(&g.tensors[node.inputs[0]].name)?;
        let want = match node.op {
            Op::Conv { group, .. } => g.tensors[node.inputs[1]].shape[1] * group,
            _ => g.tensors[node.inputs[1]].shape[1],
        };
        (v.len() == want).then(|| v.clone())
    };
    // Importance of every element, `[r * k + c]`.
    let scorer = |node: &crate::ir::Node| -> (usize, usize, Vec<f64>) {
        let w = g.value(node.inputs[1]);
        let (n, k, idx) = weight_index(g, node);
        let rms = stats.and_then(|s| channel_stat(s.rms, node));
        let cin = g.tensors[node.inputs[1]].shape[1];
        let scores = (0..n * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                let m = w[idx(r, c)].abs() as f64;
                match (&rms, &node.op) {
                    // A grouped convolution's output channel `r` reads input channel block
                    // `r / (n / group)`.
                    (Some(rms), Op::Conv { group, .. }) => {
                        m * rms[r / (n / group).max(1) * cin * (*group > 1) as usize + input_channel(node, c)] as f64
                    }
                    (Some(rms), _) => m * rms[c] as f64,
                    (None, _) => m,
                }
            })
            .collect();
        (n, k, scores)
    };
    // One threshold for the layers under the global default.
    // The pruned layers with their policy, whether it is the global one, and their importances.
    let pruned: Vec<_> = layers
        .iter()
        .zip(&record)
        .map(|(node, rec)| policy.resolve(&node.name, rec.kind).map(|(lp, global)| (lp, global, scorer(node))))
        .collect();
    let mut threshold = None;
    if let Some(d) = policy.default {
        let mut all: Vec<(f64, usize)> = Vec::new();
        for (lp, _, (n, k, scores)) in pruned.iter().flatten().filter(|p| p.1) {
            let score = |r: usize, c: usize| scores[r * k + c];
            all.extend(units(*n, *k, &score, lp.pattern).iter().map(|u| (u.score, u.len())));
        }
        if !all.is_empty() {
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: usize = all.iter().map(|u| u.1).sum();
            let goal = (d.sparsity * total as f64).round() as usize;
            let (mut acc, mut t) = (0usize, f64::NEG_INFINITY);
            for &(s, len) in &all {
                if acc + len > goal {
                    break;
                }
                acc += len;
                t = s;
            }
            // Everything strictly below the first unit not taken.
            threshold = Some(all.iter().map(|u| u.0).find(|&s| s > t).unwrap_or(f64::INFINITY));
        }
    }
    // Re-fitting: every pruned layer's input in the graph as it came in (the targets), and from
    // the first re-written layer on, in the graph pruned so far.
    let samples = stats.and_then(|s| s.samples).filter(|s| !s.is_empty());
    let graph_input = g.inputs[0];
    let mut changed = false;
    // The activations of the graph as it came in and of the graph pruned so far, walked forward
    // layer by layer (the second one from the first change on).
    let mut frontiers: (Option<crate::calib::eval::Frontier>, Option<crate::calib::eval::Frontier>) = (None, None);
    for ((node, rec), p) in layers.iter().zip(record.iter_mut()).zip(&pruned) {
        let Some((lp, global, (n, k, scores))) = p else { continue };
        let (lp, n, k) = (*lp, *n, *k);
        let w = g.value(node.inputs[1]);
        let (_, _, idx) = weight_index(g, node);
        let bias = node.inputs.get(2).copied().filter(|&b| g.value(b).len() == n);
        let ir_bias = match bias {
            Some(b) => g.value(b).to_vec(),
            None => vec![0f32; n],
        };
        let set = super::reconstruct::WeightSet { w, b: ir_bias };
        if let Pattern::NOfM { m, .. } = lp.pattern {
            let shape = &g.tensors[node.inputs[1]].shape;
            if matches!(node.op, Op::Conv { .. }) && shape[2] * shape[3] > 1 && !shape[1].is_multiple_of(m) {
                rec.note = Some(format!(
                    "kept dense: {m}-groups would span kernel taps ({} input channels per group, not a multiple of {m})",
                    shape[1]
                ));
                continue;
            }
        }
        // The layer's input statistics on the graph pruned so far.
        let too_wide = k > super::reconstruct::MAX_REFIT_K;
        if samples.is_some() && too_wide {
            rec.note = Some(format!(
                "not re-fitted: {k} weights per channel (more than {}); bias correction only",
                super::reconstruct::MAX_REFIT_K
            ));
        }
        let moments = match samples.filter(|_| !too_wide) {
            Some(samples) => {
                let t = node.inputs[0];
                let at = layer_index(g, node);
                // The layer's input in the graph as it came in, and in the graph pruned so far
                // once it differs (each walked forward from the previous pruned layer).
                let base_run = frontiers.0.get_or_insert_with(|| crate::calib::eval::Frontier::new(g, samples));
                let cross = changed && t != graph_input;
                if cross {
                    // Forked from the first walk before it moves on: its cut is not after the
                    // first changed layer, so the fork runs every change.
                    let current = frontiers.1.get_or_insert_with(|| base_run.clone());
                    current.advance(graph, at)?;
                }
                frontiers.0.as_mut().expect("set above").advance(g, at)?;
                let mut mo = super::reconstruct::Moments::for_layer(g, node, cross);
                let shape = &g.tensors[t].shape;
                let base_run = frontiers.0.as_ref().expect("set above");
                for s in 0..samples.len() {
                    let x = base_run.value(s, t).expect("a layer's input is live at the layer");
                    match frontiers.1.as_ref().filter(|_| cross) {
                        Some(current) => {
                            let xt = current.value(s, t).expect("a layer's input is live at the layer");
                            mo.add(node, shape, xt, Some(x))
                        }
                        None => mo.add(node, shape, x, None),
                    }
                }
                if let Some(pb) = stats.and_then(|s| s.progress) {
                    pb.inc(1);
                }
                Some(mo)
            }
            None => None,
        };
        let m = match (lp.pattern, &moments) {
            (Pattern::NOfM { n: keep, m }, Some(mo)) => {
                super::reconstruct::nm_mask(mo, n, &set, |c| idx(0, c), keep, m)
            }
            _ => mask(n, k, |r, c| scores[r * k + c], lp, if *global { threshold } else { None }),
        };
        // Zero positions in the IR tensor's layout.
        let mut zero = vec![false; w.len()];
        for r in 0..n {
            for c in 0..k {
                if m[r * k + c] {
                    zero[idx(r, c)] = true;
                }
            }
        }
        // The new weights and the bias change.
        let (new_w, delta) = match &moments {
            Some(mo) => super::reconstruct::reconstruct(mo, n, &zero, std::slice::from_ref(&set), true).remove(0),
            None => {
                // The mean input each weight multiplies (IR layout), for the bias correction.
                let means = stats.and_then(|s| channel_stat(s.means, node));
                let elem_mean: Option<Vec<f32>> = means.map(|mean| {
                    let cin = g.tensors[node.inputs[1]].shape[1];
                    let mut v = vec![0f32; w.len()];
                    for r in 0..n {
                        let offset = match node.op {
                            Op::Conv { group, .. } if group > 1 => r / (n / group).max(1) * cin,
                            _ => 0,
                        };
                        for c in 0..k {
                            v[idx(r, c)] = mean[offset + input_channel(node, c)];
                        }
                    }
                    v
                });
                // Zeros; the bias absorbs the mean of what the pruned weights contributed.
                let mut delta = vec![0f32; n];
                let mut new_w = w.to_vec();
                for (i, _) in zero.iter().enumerate().filter(|(_, &z)| z) {
                    if let (Some(mean), Some(_)) = (&elem_mean, bias) {
                        delta[i / k] += new_w[i] * mean[i];
                    }
                    new_w[i] = 0.0;
                }
                (new_w, delta)
            }
        };
        if let Some(v) = graph.tensors[node.inputs[1]].value.as_mut() {
            v.copy_from_slice(&new_w);
        }
        if let Some(v) = bias.and_then(|b| graph.tensors[b].value.as_mut()) {
            for (x, d) in v.iter_mut().zip(&delta) {
                *x += d;
            }
        }
        changed = true;
        rec.reconstructed = moments.is_some();
        rec.policy = Some(lp);
        rec.zeros = w.iter().zip(&zero).filter(|(&v, &z)| z || v == 0.0).count();
        rec.change = Some((new_w, delta));
    }
    Ok(record)
}

/// Measure where pruning costs the float model its fidelity: for every layer of `layers` pruned
/// here, in graph order, the unpruned graph `base` with that layer's and every earlier pruned
/// layer's changes (zeros, re-fitted weights, bias corrections), compiled in f32 and run on
/// `samples`, against `base` itself (top-1 agreement, output SQNR). The drop from one layer to
/// the next is that layer's cost, after the re-fitting of the later layers compensated what it
/// could (a layer re-fitted for the pruned layers before it is only meaningful with them).
/// Fills [`LayerSparsity::impact`].
pub fn layer_impact(base: &Graph, layers: &mut [LayerSparsity], samples: &[Vec<f32>]) -> Result<()> {
    use crate::lower::{self, LowerOptions, Precision};
    let opts = LowerOptions { precision: Precision::F32, ..Default::default() };
    let run = |g: &Graph| -> Result<Vec<Vec<Vec<f32>>>> {
        let l = lower::lower(g, &lower::Stats::default(), &opts)?;
        crate::calib::eval::run_sparq(&l.spec.to_bytes(), samples, None)
    };
    let reference = run(base)?;
    // One working copy; the layers' changes accumulate.
    let mut g = base.clone();
    for layer in layers.iter_mut() {
        let Some((new, delta)) = &layer.change else { continue };
        let Some(node) = base.nodes.iter().find(|n| n.name == layer.name) else { continue };
        let (w, b) = (node.inputs[1], node.inputs.get(2).copied());
        if let Some(v) = g.tensors[w].value.as_mut().filter(|v| v.len() == new.len()) {
            v.copy_from_slice(new);
        }
        if let Some(v) = b.and_then(|b| g.tensors[b].value.as_mut()).filter(|v| v.len() == delta.len()) {
            for (x, d) in v.iter_mut().zip(delta) {
                *x += d;
            }
        }
        let outputs = run(&g);
        let a = crate::calib::eval::compare(&outputs?, &reference, None);
        layer.impact = Some((a.top1_agreement, a.sqnr_db));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_reject() {
        assert_eq!("unstructured".parse::<Pattern>().unwrap(), Pattern::Unstructured);
        assert_eq!("block8x1".parse::<Pattern>().unwrap(), Pattern::Block { rows: 8, cols: 1 });
        assert_eq!("2:4".parse::<Pattern>().unwrap(), Pattern::NOfM { n: 2, m: 4 });
        for bad in ["block", "block0x4", "5:4", "0:4", "sparse", "blockx"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
        let p = PrunePolicy::parse("conv=0.8,fc=2:4,/a/Conv=0", Pattern::Unstructured).unwrap();
        assert_eq!(p.for_layer("/x", "conv").unwrap().sparsity, 0.8);
        assert_eq!(p.for_layer("/x", "fc").unwrap().pattern, Pattern::NOfM { n: 2, m: 4 });
        assert!(p.for_layer("/a/Conv", "conv").is_none());
        assert!(p.for_layer("/x", "dw").is_none());
        assert!(PrunePolicy::parse("1.5", Pattern::Unstructured).is_err());
        assert!(PrunePolicy::parse("conv=abc", Pattern::Unstructured).is_err());
        let t = PrunePolicy::from_toml(
            "sparsity = 0.7\npattern = \"block4x1\"\n[kinds]\nfc = 0.5\n[layers]\n\"/a\" = { sparsity = 0.9, pattern = \"1:4\" }\n",
        )
        .unwrap();
        assert_eq!(t.default.unwrap().pattern, Pattern::Block { rows: 4, cols: 1 });
        assert_eq!(t.for_layer("/b", "fc").unwrap().sparsity, 0.5);
        assert_eq!(t.for_layer("/a", "conv").unwrap().sparsity, 0.75);
        assert!(PrunePolicy::from_toml("sparsty = 0.7").is_err());
    }

    #[test]
    fn masks_have_their_pattern() {
        let (n, k) = (16, 24);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        let at = |r: usize, c: usize| w[r * k + c].abs() as f64;
        let m = mask(n, k, at, LayerPolicy::new(0.5, Pattern::Unstructured).unwrap(), None);
        assert_eq!(m.iter().filter(|&&z| z).count(), n * k / 2);
        // Every pruned weight is at most every kept one in magnitude.
        let max_pruned = (0..n * k).filter(|&i| m[i]).map(|i| w[i].abs()).fold(0.0, f32::max);
        let min_kept = (0..n * k).filter(|&i| !m[i]).map(|i| w[i].abs()).fold(f32::INFINITY, f32::min);
        assert!(max_pruned <= min_kept);
        let m = mask(n, k, at, LayerPolicy::new(0.0, Pattern::NOfM { n: 2, m: 4 }).unwrap(), None);
        for r in 0..n {
            for g in 0..k / 4 {
                assert_eq!((0..4).filter(|&c| m[r * k + g * 4 + c]).count(), 2);
            }
        }
        let m = mask(n, k, at, LayerPolicy::new(0.75, Pattern::Block { rows: 8, cols: 4 }).unwrap(), None);
        assert_eq!(m.iter().filter(|&&z| z).count(), n * k * 3 / 4);
        for br in 0..n / 8 {
            for bc in 0..k / 4 {
                let z: Vec<bool> =
                    (0..8).flat_map(|r| (0..4).map(move |c| (br * 8 + r) * k + bc * 4 + c)).map(|i| m[i]).collect();
                assert!(z.iter().all(|&v| v) || z.iter().all(|&v| !v), "block {br},{bc} is mixed");
            }
        }
    }
}
