//! Measure a compiled model against the float reference, with the runtime itself: what the
//! report says is what the device computes.

use crate::error::Result;
use sparq_runtime::{AlignedBytes, Model, Session};

/// Run a `.sparq` (already validated bytes) over samples (each the model inputs' values
/// concatenated in input order); returns per-sample, per-output values.
pub fn run_sparq(
    bytes: &[u8],
    samples: &[Vec<f32>],
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(&aligned)?;
    let mut arena = AlignedBytes::try_zeroed(model.check_arena(sparq_runtime::DEFAULT_MAX_ARENA)?)?;
    let mut session = Session::new(&model, arena.as_mut_slice())?;
    let lens = input_lens(&model);
    let mut out = Vec::with_capacity(samples.len());
    for s in samples {
        for (i, x) in crate::data::split_sample(s, &lens).into_iter().enumerate() {
            session.set_input(i, x)?;
        }
        session.run();
        let outs = (0..model.output_count())
            .map(|i| session.output(i).map(|o| o.to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.push(outs);
        if let Some(p) = progress {
            p.inc(1);
        }
    }
    Ok(out)
}

/// Run `g` in f32 with the runtime over `samples`, with its outputs replaced by the tensors
/// `outputs` (and the nodes they do not need removed). `f` gets each sample's index and the
/// values of those tensors (logical row-major order), in sample order. This is how passes read
/// the activations of a graph they changed, which has no ONNX of its own (the float reference,
/// tract, runs only the original model).
pub fn run_graph_f32(
    g: &crate::ir::Graph,
    outputs: &[usize],
    samples: &[Vec<f32>],
    f: &mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>,
) -> Result<()> {
    use crate::lower::{self, LowerOptions, Precision};
    let mut sub = g.clone();
    sub.outputs = outputs.to_vec();
    crate::ir::rewrite::remove_dead(&mut sub);
    let opts = LowerOptions { precision: Precision::F32, ..Default::default() };
    let file = AlignedBytes::from_slice(&lower::lower(&sub, &lower::Stats::default(), &opts)?.spec.to_bytes());
    let lens = g.input_lens();
    run_samples(&file, samples.len(), &|i| crate::data::split_sample(&samples[i], &lens), f)
}

/// Each input's element count of a compiled model, in input order.
fn input_lens(model: &Model<'_>) -> Vec<usize> {
    (0..model.input_count()).map(|i| model.input(i).map_or(0, |t| t.shape().iter().product())).collect()
}

/// Run the model `file` on `count` samples, the inputs of sample `i` being `inputs(i)`, on up to
/// 8 threads (one session each, sample `i` on thread `i % threads`). `f` gets each sample's
/// outputs in sample order, so what it accumulates does not depend on the number of threads.
fn run_samples<'d>(
    file: &AlignedBytes,
    count: usize,
    inputs: &(dyn Fn(usize) -> Vec<&'d [f32]> + Sync),
    f: &mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>,
) -> Result<()> {
    type Outputs = Result<Vec<Vec<f32>>>;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8).min(count.max(1));
    std::thread::scope(|scope| -> Result<()> {
        let mut receivers = Vec::with_capacity(threads);
        for worker in 0..threads {
            // One result in flight per worker: memory stays at a few samples' outputs.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Outputs>(1);
            receivers.push(rx);
            scope.spawn(move || {
                let run = |i: usize, session: &mut Session<'_, '_>, model: &Model<'_>| -> Outputs {
                    for (k, x) in inputs(i).iter().enumerate() {
                        session.set_input(k, x)?;
                    }
                    session.run();
                    let outs = (0..model.output_count())
                        .map(|o| session.output(o).map(|v| v.to_vec()))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    Ok(outs)
                };
                let model = match Model::from_bytes(file) {
                    Ok(m) => m,
                    Err(e) => return drop(tx.send(Err(e.into()))),
                };
                let mut arena = match AlignedBytes::try_zeroed(model.arena_size()) {
                    Ok(a) => a,
                    Err(e) => return drop(tx.send(Err(e.into()))),
                };
                let mut session = match Session::new(&model, arena.as_mut_slice()) {
                    Ok(s) => s,
                    Err(e) => return drop(tx.send(Err(e.into()))),
                };
                for i in (worker..count).step_by(threads) {
                    let out = run(i, &mut session, &model);
                    let failed = out.is_err();
                    // A closed channel: the caller stopped (an error elsewhere).
                    if tx.send(out).is_err() || failed {
                        return;
                    }
                }
            });
        }
        for i in 0..count {
            let out = receivers[i % threads]
                .recv()
                .map_err(|_| crate::error::CompileError::Data("a measuring thread stopped".into()))??;
            f(i, out)?;
        }
        Ok(())
    })
}

/// The activations of a graph over a set of samples at a *cut* (a node index): the values of the
/// tensors computed before the cut and read at or after it, per sample. [`Frontier::advance`]
/// moves the cut forward by running only the nodes in between (lowered in f32, run by the
/// runtime), so walking a graph layer by layer costs one pass over it, not one per layer, and
/// nodes before the cut may change afterwards without being re-run (the re-fitting edits each
/// layer just after its input was read).
#[derive(Clone)]
pub struct Frontier {
    cut: usize,
    /// The live tensors at the cut.
    live: Vec<usize>,
    /// `values[sample][k]`: the value of `live[k]` (logical row-major order).
    values: Vec<Vec<Vec<f32>>>,
}

impl Frontier {
    /// The cut before the first node of `g`: the graph inputs (one input, `samples`).
    pub fn new(g: &crate::ir::Graph, samples: &[Vec<f32>]) -> Frontier {
        Frontier { cut: 0, live: g.inputs.clone(), values: samples.iter().map(|s| vec![s.clone()]).collect() }
    }

    /// The value of live tensor `t` for sample `s`.
    pub fn value(&self, s: usize, t: usize) -> Option<&[f32]> {
        let k = self.live.iter().position(|&x| x == t)?;
        Some(&self.values[s][k])
    }

    /// Move the cut to node `to` of `g` (not before the current cut), running nodes
    /// `cut..to` of `g` as they are now.
    pub fn advance(&mut self, g: &crate::ir::Graph, to: usize) -> Result<()> {
        use crate::lower::{self, LowerOptions, Precision};
        assert!(to >= self.cut && to <= g.nodes.len(), "a frontier only moves forward");
        let segment = self.cut..to;
        // Live at `to`: activations computed before it (or inputs) and read from it on.
        let read_after = |t: usize| g.outputs.contains(&t) || g.nodes[to..].iter().any(|n| n.inputs.contains(&t));
        let produced: Vec<usize> = g.nodes[segment.clone()].iter().flat_map(|n| n.outputs.iter().copied()).collect();
        let carried: Vec<usize> = self.live.iter().copied().filter(|&t| read_after(t)).collect();
        let computed: Vec<usize> = produced.iter().copied().filter(|&t| read_after(t)).collect();
        let mut new_values: Vec<Vec<Vec<f32>>> = self
            .values
            .iter()
            .map(|v| carried.iter().map(|t| v[self.live.iter().position(|x| x == t).expect("live")].clone()).collect())
            .collect();
        if !computed.is_empty() {
            // The segment as a graph of its own: the live tensors it reads are its inputs.
            let reads = |t: usize| g.nodes[segment.clone()].iter().any(|n| n.inputs.contains(&t));
            let inputs: Vec<usize> = self.live.iter().copied().filter(|&t| reads(t)).collect();
            let sub = crate::ir::Graph {
                name: g.name.clone(),
                tensors: g.tensors.clone(),
                nodes: g.nodes[segment.clone()].to_vec(),
                inputs: inputs.clone(),
                outputs: computed.clone(),
                branches: Vec::new(),
            };
            let opts = LowerOptions { precision: Precision::F32, ..Default::default() };
            let lowered = lower::lower(&sub, &lower::Stats::default(), &opts)?;
            let file = AlignedBytes::from_slice(&lowered.spec.to_bytes());
            let slots: Vec<usize> =
                inputs.iter().map(|t| self.live.iter().position(|x| x == t).expect("live")).collect();
            let values = &self.values;
            let feed = |s: usize| slots.iter().map(|&k| &values[s][k][..]).collect::<Vec<&[f32]>>();
            run_samples(&file, values.len(), &feed, &mut |s, outs| {
                new_values[s].extend(outs);
                Ok(())
            })?;
        }
        self.live = carried.into_iter().chain(computed).collect();
        self.values = new_values;
        self.cut = to;
        Ok(())
    }
}

/// Agreement of a model's first output with the reference's, over a set of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    pub samples: usize,
    /// Fraction of samples whose argmax equals the reference's argmax.
    pub top1_agreement: f64,
    /// `10 log10(sum ref^2 / sum (ref - out)^2)` over all samples and elements (dB).
    pub sqnr_db: f64,
    /// Top-1 agreement expected on new data with this model's error: each sample's chance of
    /// flipping, from its logit gaps and its measured noise (see [`flip_probability`]), averaged.
    /// Unlike `top1_agreement`, it does not hinge on whether the few near-ties of a small
    /// sample happened to flip.
    pub expected_agreement: f64,
    /// Accuracy against labels, when given.
    pub accuracy: Option<f64>,
    /// The reference's accuracy against the same labels.
    pub reference_accuracy: Option<f64>,
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

pub fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

pub fn compare(outputs: &[Vec<Vec<f32>>], reference: &[Vec<Vec<f32>>], labels: Option<&[i64]>) -> Agreement {
    let n = outputs.len().min(reference.len());
    let (mut agree, mut sig, mut noise, mut correct, mut ref_correct) = (0usize, 0f64, 0f64, 0usize, 0usize);
    let mut flips = 0f64;
    for i in 0..n {
        let (o, r) = (&outputs[i][0], &reference[i][0]);
        let (ao, ar) = (argmax(o), argmax(r));
        agree += (ao == ar) as usize;
        flips += flip_probability(o, r);
        for (&a, &b) in o.iter().zip(r) {
            sig += (b as f64) * (b as f64);
            noise += ((a - b) as f64) * ((a - b) as f64);
        }
        if let Some(l) = labels {
            correct += (l.get(i).copied() == Some(ao as i64)) as usize;
            ref_correct += (l.get(i).copied() == Some(ar as i64)) as usize;
        }
    }
    let frac = |k: usize| k as f64 / n.max(1) as f64;
    Agreement {
        samples: n,
        top1_agreement: frac(agree),
        sqnr_db: sqnr_db(sig, noise),
        expected_agreement: 1.0 - flips / n.max(1) as f64,
        accuracy: labels.map(|_| frac(correct)),
        reference_accuracy: labels.map(|_| frac(ref_correct)),
    }
}

/// Chance that the argmax of `reference` moves under noise like `output - reference`: the noise is
/// modelled as independent Gaussian per logit with the sample's measured RMS `s`, so the top logit
/// loses to logit `j` with probability `Phi(-gap_j / (s sqrt 2))`; summed over `j` (a union bound)
/// and capped at 1.
pub fn flip_probability(output: &[f32], reference: &[f32]) -> f64 {
    if reference.is_empty() {
        return 0.0;
    }
    let n = reference.len().min(output.len()).max(1) as f64;
    let s = (output.iter().zip(reference).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>() / n).sqrt();
    let top = argmax(reference);
    if s == 0.0 {
        return 0.0;
    }
    let mut p = 0.0;
    for (j, &r) in reference.iter().enumerate() {
        if j != top {
            let gap = (reference[top] - r) as f64;
            // Phi(-x) = erfc(x / sqrt 2) / 2 with x = gap / (s sqrt 2).
            p += 0.5 * libm::erfc(gap / (2.0 * s));
        }
    }
    p.min(1.0)
}

/// Output SQNR of one layer against the float model (errors accumulated from upstream).
#[derive(Clone, Debug)]
pub struct LayerSqnr {
    pub name: String,
    pub op: String,
    pub dtype: &'static str,
    pub sqnr_db: f64,
}

/// Collects, after each op, the dequantized logical-order values of tensors named in `wanted`.
struct Capture<'m> {
    model: &'m Model<'m>,
    wanted: &'m std::collections::HashMap<String, usize>,
    /// (signal, noise) per wanted tensor, against `reference` of the current sample.
    acc: Vec<(f64, f64)>,
    reference: Vec<Vec<f32>>,
    /// Tensors the compiler scaled per channel (equalization): the factor of each channel, which
    /// the comparison divides out.
    unscale: &'m std::collections::HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl sparq_runtime::Observer for Capture<'_> {
    fn after_op(&mut self, op: usize, arena: &[u8]) {
        let t = self.model.tensor(self.model.op(op).output(0));
        let Some(&k) = self.wanted.get(t.name) else { return };
        let r = &self.reference[k];
        if r.len() != t.elements() {
            return;
        }
        let value = logical_reader(&t, arena);
        let d = t.shape();
        let unscale = self.unscale.get(t.name).filter(|(f, a)| d.len() == 4 && f.len() == d[1] && a.len() == d[1]);
        let (mut sig, mut noise) = (0f64, 0f64);
        for (i, &rv) in r.iter().enumerate() {
            let mut v = value(i);
            if let Some((f, a)) = unscale {
                let ch = (i / (d[2] * d[3])) % d[1];
                v = (v + a[ch]) / f[ch];
            }
            sig += (rv as f64).powi(2);
            noise += ((v - rv) as f64).powi(2);
        }
        self.acc[k].0 += sig;
        self.acc[k].1 += noise;
    }
}

/// The dequantized value of tensor `t` (in `arena`, after its op ran) at logical (NCHW,
/// row-major) index `i`, whatever its physical layout and element type (int32 reads 0).
fn logical_reader<'a>(t: &'a sparq_format::TensorInfo<'a>, arena: &'a [u8]) -> impl Fn(usize) -> f32 + 'a {
    let bytes = &arena[t.data_offset..t.data_offset + t.data_size];
    let d = t.shape();
    let nhwc = t.layout == sparq_format::Layout::Nhwc && d.len() == 4;
    move |i: usize| {
        let phys = if nhwc {
            let (c, h, w) = (d[1], d[2], d[3]);
            let (n, rest) = (i / (c * h * w), i % (c * h * w));
            let (ch, hw) = (rest / (h * w), rest % (h * w));
            n * h * w * c + hw * c + ch
        } else {
            i
        };
        match t.dtype {
            sparq_format::DType::I8 => t.scale * (bytes[phys] as i8 as i32 - t.zero_point) as f32,
            sparq_format::DType::F32 => f32::from_le_bytes(bytes[4 * phys..4 * phys + 4].try_into().unwrap()),
            sparq_format::DType::I16 => t.scale * i16::from_le_bytes([bytes[2 * phys], bytes[2 * phys + 1]]) as f32,
            sparq_format::DType::I32 => 0.0,
        }
    }
}

/// The activations of the tensors `tensors` of `g` (activations or model inputs) in the f32
/// graph and in the int8 model `bytes` lowered from it, sample by sample: `f` gets each sample's
/// index, the f32 values and the int8 model's (dequantized, logical order; `None` for a tensor
/// the model does not hold in int8 under its name, or for a model input as its quantized copy
/// `NAME:q`; an int16 tensor is taken like an int8 one). Each value is kept within `cap_steps`
/// steps of its tensor's int8 grid (for int16, the int8 grid over the same range) of the f32
/// value: what the model adds by rounding, and what its upstream layers carry, without the few
/// values a range clips (a re-fit would chase those at the others' expense).
pub fn paired_activations(
    g: &crate::ir::Graph,
    bytes: &[u8],
    samples: &[Vec<f32>],
    tensors: &[usize],
    cap_steps: f32,
    f: &mut dyn FnMut(usize, &[Vec<f32>], &[Option<Vec<f32>>]) -> Result<()>,
) -> Result<()> {
    struct Pair<'m> {
        model: &'m Model<'m>,
        /// Model tensor name -> slot in `tensors`.
        wanted: std::collections::HashMap<&'m str, usize>,
        reference: Vec<Vec<f32>>,
        int8: Vec<Option<Vec<f32>>>,
        cap_steps: f32,
        /// Wanted tensors not captured yet in this run (the run stops at the last).
        remaining: usize,
    }
    impl sparq_runtime::Observer for Pair<'_> {
        fn after_op(&mut self, op: usize, arena: &[u8]) {
            let t = self.model.tensor(self.model.op(op).output(0));
            let Some(&k) = self.wanted.get(t.name) else { return };
            let r = &self.reference[k];
            // An int16 tensor's cap is in steps of the int8 grid over the same range.
            let steps = match t.dtype {
                sparq_format::DType::I8 => 1.0,
                sparq_format::DType::I16 => 256.0,
                _ => return,
            };
            if r.len() != t.elements() {
                return;
            }
            let value = logical_reader(&t, arena);
            let cap = self.cap_steps * steps * t.scale;
            self.int8[k] = Some(r.iter().enumerate().map(|(i, &rv)| rv + (value(i) - rv).clamp(-cap, cap)).collect());
            self.remaining = self.remaining.saturating_sub(1);
        }
        fn done(&self) -> bool {
            self.remaining == 0
        }
    }
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(&aligned)?;
    let mut arena = AlignedBytes::try_zeroed(model.arena_size())?;
    let mut session = Session::new(&model, arena.as_mut_slice())?;
    let names: std::collections::HashSet<&str> =
        (0..model.op_count()).map(|i| model.tensor(model.op(i).output(0)).name).collect();
    let mut wanted = std::collections::HashMap::new();
    for (k, &t) in tensors.iter().enumerate() {
        let name = &g.tensors[t].name;
        let quantized = format!("{name}:q");
        if let Some(&n) = names.get(name.as_str()).or_else(|| names.get(quantized.as_str())) {
            wanted.insert(n, k);
        }
    }
    let mut pair = Pair { model: &model, wanted, reference: Vec::new(), int8: Vec::new(), cap_steps, remaining: 0 };
    let computed: Vec<usize> = tensors.iter().copied().filter(|t| !g.inputs.contains(t)).collect();
    let lens = g.input_lens();
    let mut step = |i: usize, vals: Vec<Vec<f32>>| -> Result<()> {
        let inputs = crate::data::split_sample(&samples[i], &lens);
        pair.reference = tensors
            .iter()
            .map(|t| match g.inputs.iter().position(|x| x == t) {
                Some(k) => inputs[k].to_vec(),
                None => vals[computed.iter().position(|x| x == t).unwrap_or(0)].clone(),
            })
            .collect();
        pair.int8 = vec![None; tensors.len()];
        pair.remaining = pair.wanted.len();
        for (k, x) in inputs.iter().enumerate() {
            session.set_input(k, x)?;
        }
        session.run_observed(&mut pair);
        f(i, &pair.reference, &pair.int8)
    };
    if computed.is_empty() {
        for i in 0..samples.len() {
            step(i, Vec::new())?;
        }
        Ok(())
    } else {
        run_graph_f32(g, &computed, samples, &mut step)
    }
}

/// SQNR of every layer's output against the float model (tract), over `samples`.
///
/// `unscale` names the tensors the compiler scaled and shifted per channel (equalization, bias
/// absorption) with each channel's factor `t` and shift `a` (the tensor holds `t x - a`), undone
/// before comparing.
pub fn per_layer_sqnr(
    onnx: &[u8],
    g: &crate::ir::Graph,
    bytes: &[u8],
    samples: &[Vec<f32>],
    frames: Option<&[Vec<f32>]>,
    unscale: &std::collections::HashMap<String, (Vec<f32>, Vec<f32>)>,
) -> Result<Vec<LayerSqnr>> {
    let names: Vec<String> = g.nodes.iter().map(|n| g.tensors[n.outputs[0]].name.clone()).collect();
    let reference = super::reference::Reference::new(onnx, g, names.clone())?;
    let wanted: std::collections::HashMap<String, usize> =
        names.iter().cloned().enumerate().map(|(i, n)| (n, i)).collect();
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(&aligned)?;
    let mut arena = AlignedBytes::try_zeroed(model.arena_size())?;
    let mut session = Session::new(&model, arena.as_mut_slice())?;
    let mut cap =
        Capture { model: &model, wanted: &wanted, acc: vec![(0.0, 0.0); names.len()], reference: Vec::new(), unscale };
    for (k, s) in samples.iter().enumerate() {
        cap.reference = reference.run(s)?;
        // A model taking camera frames gets them (`frames`: the same samples as 0..=255 values).
        session.set_input(0, frames.and_then(|f| f.get(k)).unwrap_or(s))?;
        session.run_observed(&mut cap);
    }
    Ok(g.nodes
        .iter()
        .zip(&cap.acc)
        .map(|(n, &(sig, noise))| {
            let t = model.tensor(
                (0..model.op_count())
                    .map(|i| model.op(i).output(0))
                    .find(|&o| model.tensor(o).name == g.tensors[n.outputs[0]].name)
                    .unwrap_or(0),
            );
            LayerSqnr {
                name: n.name.clone(),
                op: n.onnx_op.clone(),
                dtype: t.dtype.name(),
                sqnr_db: sqnr_db(sig, noise),
            }
        })
        .collect())
}
