//! sparq offline compiler: ONNX -> (pruned, factorized,) int8-quantized `.sparq`.
//!
//! Pipeline: [`onnx`] (import once, prost) -> [`ir::rewrite`] (fold BN, fuse activations) ->
//! [`compress`] (pruning passes) -> [`calib`] (statistics and ranges) -> [`lower`] (quantize with
//! [`quant`], lay out, plan memory) -> `.sparq` bytes -> [`calib::eval`] (measure with the runtime
//! against the float model) -> [`policy`] (mixed precision) -> [`report`].
//!
//! Layers, lowest first; a module only uses modules of lower layers (a test checks it):
//! `error`, `progress` < `ir` < `onnx`, `quant`, `data` < `lower` < `calib` < `compress` <
//! `policy` < `report` < the driver in this file.

pub mod calib;
pub mod compress;
pub mod data;
pub mod error;
pub mod ir;
pub mod lower;
pub mod onnx;
pub mod policy;
pub mod progress;
pub mod quant;
pub mod report;

// The paths the CLI, tests and benches used before the code moved into folders.
pub use calib::{eval, reference};
pub use compress::{channels, prune, reconstruct};
pub use lower::{plan, target};
pub use onnx::{builder as onnx_builder, import};

pub use calib::CalibMethod;
pub use error::{CompileError, Result};
pub use quant::Precision;
pub use tract_onnx;

use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub precision: Precision,
    pub input_shapes: HashMap<String, Vec<usize>>,
    pub keep_float: Vec<String>,
    /// Convolutions and fully-connected layers run with int16 activations (A16W8) inside an int8
    /// model, by node name; `all` names every one that can.
    pub int16: Vec<String>,
    pub calib_method: CalibMethod,
    /// How int8 weights are rounded (`--weight-rounding`; see [`compress::rounding`]).
    pub weight_rounding: compress::rounding::WeightRounding,
    /// Cross-layer equalization of int8 activations (`--equalize`; see [`compress::equalize`]).
    pub equalize: bool,
    /// Round the layers with many inputs per weight again, one at a time, on the inputs the int8
    /// or int16 model gives them (`--round-on-int8`; see
    /// [`compress::rounding::round_on_int8_inputs`]). On by default.
    pub round_on_int8: bool,
    /// Keep the most sensitive layers in f32 until top-1 agreement with the float model on the
    /// calibration set reaches this fraction.
    pub min_agreement: Option<f64>,
    /// The mixed-precision search demands `target + (1 - target) * margin` on the calibration
    /// set, so that the target holds on new data.
    pub agreement_margin: f64,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// The CPU family the file is tuned for (weight packing).
    pub target: target::Target,
    /// Magnitude pruning applied before calibration (`--prune`, `--prune-file`).
    pub prune: Option<prune::PrunePolicy>,
    /// Structured channel pruning: this fraction of every prunable chain's channels is removed
    /// from the graph (`--prune-channels`; see [`channels`]). Applied before `prune`.
    pub prune_channels: Option<f64>,
    /// With `prune_channels`, also prune residual groups (tensors tied by Adds) consistently:
    /// the convolutions writing them lose output channels and the convolutions reading them the
    /// matching inputs (`--prune-channels-residual`). Off by default: the trunk of a residual
    /// network costs more accuracy per channel than its expansions.
    pub prune_channels_residual: bool,
    /// With calibration data, the weights `--prune` keeps are re-fitted so that each pruned
    /// layer's outputs on the calibration data change as little as possible (see
    /// [`reconstruct`]); otherwise only the biases absorb the pruned weights' mean contribution.
    pub prune_reconstruct: bool,
    /// Block-sparse storage of int8 weight matrices (`--sparse`): the target's measured crossover
    /// by default.
    pub sparse: SparseMode,
    /// `--input-dtype u8`: the model takes uint8 camera frames (see [`ir::frames`]).
    pub frames: Option<Frames>,
}

/// A model input of uint8 camera frames: their memory layout and the normalization the model
/// applies itself (`(u / 255 - mean[c]) / std[c]`, one value or one per channel).
#[derive(Clone, Debug)]
pub struct Frames {
    pub layout: data::DataLayout,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// `--sparse`: which int8 weight matrices are stored block-sparse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SparseMode {
    /// Where the target profile's measured crossover says the sparse kernel is faster.
    #[default]
    Auto,
    /// Every matrix with at least one all-zero 16x4 block.
    Always,
    /// Never (everything dense).
    Never,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            precision: Precision::Int8,
            input_shapes: HashMap::new(),
            keep_float: Vec::new(),
            int16: Vec::new(),
            calib_method: CalibMethod::Auto,
            weight_rounding: compress::rounding::WeightRounding::Auto,
            equalize: true,
            round_on_int8: true,
            min_agreement: None,
            agreement_margin: 0.25,
            progress: false,
            target: target::native(),
            prune: None,
            prune_channels: None,
            prune_channels_residual: false,
            prune_reconstruct: true,
            sparse: SparseMode::Auto,
            frames: None,
        }
    }
}

/// The graph's tensors are split into this many segments (graph order) whose activation ranges
/// are chosen among the calibration candidates one segment at a time (`--calib-method auto`).
pub const RANGE_SEGMENTS: usize = 8;

pub struct Compiled {
    pub bytes: Vec<u8>,
    pub report: report::Report,
}

/// Check, before any work, that a compiled file can be written to `path`: its directory exists
/// and accepts a new file (a probe file is created there and removed), and `path` is not a
/// directory. The file itself is written later, atomically, so an existing one is kept if the
/// compile fails.
pub fn check_output_path(path: &std::path::Path) -> Result<()> {
    let err = |reason: String| CompileError::OutputPath { path: path.into(), reason };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    if path.is_dir() {
        return Err(err("it is a directory".into()));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(err(format!("cannot create a file in {} ({e})", dir.display()))),
    }
}

/// Import and optimize an ONNX model into the IR.
pub fn load_graph(onnx: &[u8], what: &str, input_shapes: &HashMap<String, Vec<usize>>) -> Result<ir::Graph> {
    let model = import::decode(onnx, what)?;
    let mut g = import::import(&model, input_shapes, what)?;
    ir::rewrite::optimize(&mut g);
    Ok(g)
}

/// Compile `onnx` with calibration `samples` (model-ready f32 inputs; may be empty for f32).
pub fn compile(onnx: &[u8], what: &str, samples: &[Vec<f32>], opts: &CompileOptions) -> Result<Compiled> {
    // The model is imported once; every later step is a pass over this graph.
    let mut g = load_graph(onnx, what, &opts.input_shapes)?;
    let macs_before = g.macs();
    if let Some(f) = &opts.frames {
        // Refuse a model that cannot take frames before any work.
        ir::frames::frame_input(&g, &ir::Stats::default(), &f.mean, &f.std)?;
    }
    // A sample is every input's values, concatenated in input order.
    let lens = g.input_lens();
    let in_len: usize = lens.iter().sum();
    if let Some(bad) = samples.iter().find(|s| s.len() != in_len) {
        let what = if lens.len() == 1 {
            "the model input has".to_string()
        } else {
            format!("the model's {} inputs have", lens.len())
        };
        return Err(CompileError::Data(format!("calibration sample has {} values, {what} {in_len}", bad.len())));
    }
    // A NaN or infinity would give tensors non-finite ranges, and the model a scale the runtime
    // refuses at the very end: name the sample instead.
    for (k, &input) in g.inputs.iter().enumerate() {
        let offset: usize = lens[..k].iter().sum();
        let piece: Vec<Vec<f32>> = samples.iter().map(|s| s[offset..offset + lens[k]].to_vec()).collect();
        let what = if lens.len() == 1 {
            "calibration data".to_string()
        } else {
            format!("calibration data of input '{}'", g.tensors[input].name)
        };
        data::check_finite(&piece, &g.tensors[input].shape, &what)?;
    }
    if opts.precision == Precision::Int8 && samples.is_empty() {
        return Err(CompileError::MissingCalibration);
    }
    let weight_pruning = opts.prune.as_ref().filter(|p| !p.is_empty());
    let pruning = weight_pruning.is_some() || opts.prune_channels.is_some();
    if pruning && g.inputs.len() != 1 {
        return Err(CompileError::Data(format!(
            "pruning needs a model with one input; this one has {} (compile without --prune / --prune-channels)",
            g.inputs.len()
        )));
    }
    // The re-fitting of pruned layers and the rounding of weights use the calibration samples; a
    // quarter of them is held out of both, and of the activation ranges, and the report's
    // agreement is measured on it, so that it is not flattered by the fits (a re-fitted classifier
    // can match its own fitting samples far better than new data).
    let refit = opts.prune_reconstruct && pruning && samples.len() >= 8;
    let rounding = opts.precision == Precision::Int8
        && opts.weight_rounding != compress::rounding::WeightRounding::Nearest
        && !samples.is_empty();
    let split = (refit || rounding) && samples.len() >= 8;
    let n_fit = if split { samples.len() - samples.len() / 4 } else { samples.len() };
    let held_out = if split { n_fit } else { 0 };
    // The fitting samples' first three quarters fit what the rounding steps choose between, the
    // last quarter chooses.
    let choose = n_fit - n_fit / 4;
    // The float reference (tract) runs once, on the original model: its outputs are what the
    // report compares with; its statistics calibrate the model when no pass changes it, and
    // otherwise rank the weights and correct the biases of the pruning passes (see `prune`,
    // `channels`).
    let original = if samples.is_empty() {
        None
    } else {
        let method = if pruning { CalibMethod::MinMax } else { opts.calib_method };
        let pb =
            progress::bar(samples.len(), if pruning { "pruning statistics" } else { "calibrating" }, opts.progress);
        let c = calib::stats::calibrate_fit(onnx, &g, samples, n_fit, method, &pb)?;
        pb.finish_and_clear();
        Some(c)
    };
    let stats = original.as_ref().filter(|_| pruning).map(|c| c.candidates[0].1.clone());
    // The compression pipeline: channel pruning before weight pruning, each pass reading the
    // original model's statistics and the fitting samples.
    let mut passes: Vec<Box<dyn compress::Pass>> = Vec::new();
    if let Some(fraction) = opts.prune_channels {
        passes.push(Box::new(compress::ChannelPruning { fraction, residual: opts.prune_channels_residual }));
    }
    if let Some(policy) = weight_pruning {
        passes.push(Box::new(compress::WeightPruning { policy: policy.clone() }));
    }
    let cx = compress::PassContext {
        stats: stats.as_ref(),
        fit: opts.prune_reconstruct.then_some(&samples[..n_fit]),
        impact: &samples[..samples.len().min(8)],
        progress: opts.progress,
    };
    let mut records = Vec::with_capacity(passes.len() + 1);
    for pass in &passes {
        records.push(pass.run(&mut g, &cx)?);
    }
    if weight_pruning.is_none() {
        // Nothing pruned: the report still shows the zeros already in the model.
        records.push(compress::Record::Prune(prune::survey(&g)));
    }
    // Equalization of activation channels, measured on (up to 32 of) the fitting samples.
    let equalized = if opts.precision == Precision::Int8 && opts.equalize && !samples.is_empty() {
        compress::equalize::equalize(&mut g, &samples[..n_fit])?
    } else {
        Vec::new()
    };
    // Calibration: the original model's statistics, or, when passes changed the graph, those of
    // the changed graph run in f32 by sparq's runtime (it has no ONNX of its own).
    let calib = match original {
        Some(c) if pruning || !equalized.is_empty() => {
            let pb = progress::bar(samples.len(), "calibrating", opts.progress);
            let mut changed = calib::stats::calibrate_graph_fit(&g, samples, n_fit, opts.calib_method, &pb)?;
            pb.finish_and_clear();
            // Agreement is measured against the original float model.
            changed.outputs = c.outputs;
            Some(changed)
        }
        other => other,
    };
    // Weight rounding from the calibration data, on the graph as the passes left it.
    let (rounded, rounding_report) = if rounding {
        let pb = progress::bar(0, "rounding weights", opts.progress);
        // The rounding method of each layer is chosen on the last quarter of the fitting
        // samples, never on the held-out ones the report's estimate comes from.
        let r = compress::rounding::round_weights(&g, &samples[..n_fit], choose, opts.weight_rounding, &pb)?;
        pb.finish_and_clear();
        r
    } else {
        Default::default()
    };
    // The rounded weights, and those that int16 layers get instead (`LowerOptions::rounded_int16`).
    type Rounded = std::sync::Arc<HashMap<String, quant::RoundedWeights>>;
    let rounded: std::cell::RefCell<(Rounded, Rounded)> =
        std::cell::RefCell::new((std::sync::Arc::new(rounded), Default::default()));
    let mut keep: HashSet<String> = opts.keep_float.iter().cloned().collect();
    let mut int16: HashSet<String> = if opts.int16.iter().any(|n| n == "all") {
        policy::int16_candidates(&g).into_iter().collect()
    } else {
        opts.int16.iter().cloned().collect()
    };
    let lower_opts16 = |keep: &HashSet<String>, int16: &HashSet<String>| lower::LowerOptions {
        int16: int16.clone(),
        rounded: rounded.borrow().0.clone(),
        rounded_int16: rounded.borrow().1.clone(),
        precision: opts.precision,
        keep_float: keep.clone(),
        pack: opts.target.pack,
        sparse: match opts.sparse {
            SparseMode::Auto => lower::SparseChoice::Crossover(opts.target),
            SparseMode::Always => lower::SparseChoice::Always,
            SparseMode::Never => lower::SparseChoice::Never,
        },
        frames: None,
    };
    let lower_opts = |keep: &HashSet<String>| lower_opts16(keep, &int16);
    // Pick the calibration candidate whose compiled model is closest to the float model, measured
    // with the runtime on (up to 32 of) the calibration samples.
    let mut chosen = (CalibMethod::MinMax, lower::Stats::default());
    let mut tried = Vec::new();
    let mut segments = Vec::new();
    if let Some(c) = &calib {
        if c.candidates.len() == 1 || opts.precision == Precision::F32 {
            chosen = c.candidates[0].clone();
        } else {
            // Measured on (up to 32 of) the fitting samples, never the held-out ones.
            let sub = n_fit.min(32);
            let evals = c.candidates.len() + RANGE_SEGMENTS * (c.candidates.len() - 1);
            let pb = progress::bar(evals * sub, "ranges", opts.progress);
            let measure = |stats: &lower::Stats| -> Result<f64> {
                let l = lower::lower(&g, stats, &lower_opts(&keep))?;
                let outs = eval::run_sparq(&l.spec.to_bytes(), &samples[..sub], Some(&pb))?;
                let sqnr = eval::compare(&outs, &c.outputs[..sub], None).sqnr_db;
                // A NaN SQNR (the outputs are NaN) ranks last.
                Ok(if sqnr.is_nan() { f64::NEG_INFINITY } else { sqnr })
            };
            let mut best = f64::NEG_INFINITY;
            for (m, stats) in &c.candidates {
                let sqnr = measure(stats)?;
                tried.push((*m, sqnr));
                // Some candidate is always chosen: without one, lowering would find no
                // statistics at all.
                if sqnr > best || tried.len() == 1 {
                    best = sqnr;
                    chosen = (*m, stats.clone());
                }
            }
            // Then per segment of the graph (its tensors in graph order, the inputs first), the
            // candidate whose ranges there measure best with the rest as chosen so far.
            let mut names: Vec<&String> = g.inputs.iter().map(|&i| &g.tensors[i].name).collect();
            names.extend(g.nodes.iter().flat_map(|n| n.outputs.iter().map(|&o| &g.tensors[o].name)));
            let count = RANGE_SEGMENTS.min(names.len());
            for k in 0..count {
                let seg = &names[k * names.len() / count..(k + 1) * names.len() / count];
                let mut kept = chosen.0;
                for (m, stats) in c.candidates.iter().filter(|(m, _)| *m != chosen.0) {
                    let mut trial = chosen.1.clone();
                    for &n in seg {
                        if let Some(r) = stats.ranges.get(n) {
                            trial.ranges.insert(n.clone(), *r);
                        }
                    }
                    let sqnr = measure(&trial)?;
                    // A clear gain only (a hundredth of a dB is noise of the samples).
                    if sqnr > best + 0.05 {
                        best = sqnr;
                        chosen.1 = trial;
                        kept = *m;
                    }
                }
                segments.push((seg.first().map(|s| s.to_string()).unwrap_or_default(), kept));
            }
            tried.push((chosen.0, best));
            pb.finish_and_clear();
        }
    }
    let ranges = &chosen.1;
    // Rounding on the int8 model's own inputs, fitted on the samples the rounding method was
    // fitted on and kept only if the model measures better on the rest of the fitting samples
    // (the quarter the method was chosen on); the report's held-out samples take no part.
    let mut int8_inputs = None;
    if let (true, true, Some(c)) = (rounding && opts.round_on_int8, choose < n_fit, &calib) {
        let methods: HashMap<String, compress::rounding::WeightRounding> =
            rounding_report.iter().map(|l| (l.name.clone(), l.method)).collect();
        let lower_with = |r: &HashMap<String, quant::RoundedWeights>| -> Result<Vec<u8>> {
            let opts = lower::LowerOptions { rounded: std::sync::Arc::new(r.clone()), ..lower_opts(&keep) };
            Ok(lower::lower(&g, ranges, &opts)?.spec.to_bytes())
        };
        if !compress::rounding::int8_input_layers(&g, choose, &methods).is_empty() {
            let plain = rounded.borrow().0.clone();
            let mut r: HashMap<String, quant::RoundedWeights> = (*plain).clone();
            let pb = progress::bar(0, "rounding on int8 inputs", opts.progress);
            let layers =
                compress::rounding::round_on_int8_inputs(&g, &samples[..choose], &mut r, &methods, &lower_with, &pb)?;
            pb.finish_and_clear();
            let check = &samples[choose..n_fit];
            let sqnr = |r: &HashMap<String, quant::RoundedWeights>| -> Result<f64> {
                Ok(eval::compare(&eval::run_sparq(&lower_with(r)?, check, None)?, &c.outputs[choose..n_fit], None)
                    .sqnr_db)
            };
            let (before_db, after_db) = (sqnr(&plain)?, sqnr(&r)?);
            let kept = after_db > before_db;
            if kept {
                // A layer fitted on int8 inputs keeps its plain rounding where it runs in int16
                // (`--min-agreement` may take it there).
                let plain16 = layers.iter().filter(|l| !int16.contains(*l));
                let plain16 = plain16.filter_map(|l| plain.get(l).map(|w| (l.clone(), w.clone()))).collect();
                *rounded.borrow_mut() = (std::sync::Arc::new(r), std::sync::Arc::new(plain16));
            }
            int8_inputs = Some(report::Int8InputRounding { layers, samples: check.len(), before_db, after_db, kept });
        }
    }
    let mut lowered = lower::lower(&g, ranges, &lower_opts(&keep))?;
    let mut bytes = lowered.spec.to_bytes();
    let mut mixed = None;
    let mut agreement = None;
    if let Some(c) = &calib {
        let pb = progress::bar(samples.len(), "evaluating", opts.progress);
        let outs = eval::run_sparq(&bytes, samples, Some(&pb))?;
        pb.finish_and_clear();
        let mut agr = eval::compare(&outs[held_out..], &c.outputs[held_out..], None);
        if let (Some(target), Precision::Int8) = (opts.min_agreement, opts.precision) {
            if agr.expected_agreement < target + (1.0 - target) * opts.agreement_margin {
                let search = policy::mixed_precision_search(
                    &g,
                    ranges,
                    &samples[..n_fit],
                    &c.outputs[..n_fit],
                    target,
                    &lower_opts(&keep),
                    opts.agreement_margin,
                    opts.progress,
                )?;
                keep = search.kept.iter().cloned().collect::<HashSet<_>>().union(&keep).cloned().collect();
                int16.extend(search.int16.iter().cloned());
                lowered = lower::lower(&g, ranges, &lower_opts16(&keep, &int16))?;
                bytes = lowered.spec.to_bytes();
                let outs = eval::run_sparq(&bytes, samples, None)?;
                agr = eval::compare(&outs[held_out..], &c.outputs[held_out..], None);
                mixed = Some(search);
            }
        }
        agreement = Some(agr);
    }
    if let Some(f) = &opts.frames {
        // Every choice above was made on the float-input graph; the normalization node in front
        // keeps the input's statistics, and the report measures the file as written, on frames.
        let (framed, framed_stats) = ir::frames::frame_input(&g, ranges, &f.mean, &f.std)?;
        let layout = match f.layout {
            data::DataLayout::Nhwc => sparq_format::Layout::Nhwc,
            data::DataLayout::Nchw => sparq_format::Layout::RowMajor,
        };
        let frame_input = lower::FrameInput { layout, mean: f.mean.clone(), std: f.std.clone() };
        // The frame is normalized in int16 when the layer reading it runs in int16 (the int8
        // grid of the normalized input would cost that layer precision the frame has).
        // Likewise in f32 when it runs in f32 (it then gets the frame's exact values).
        let input = g.inputs[0];
        let normalize = format!("{}:normalize", g.tensors[input].name);
        let (mut int16_framed, mut keep_framed) = (int16.clone(), keep.clone());
        let consumers: Vec<&String> = g.consumers(input).iter().map(|&c| &g.nodes[c].name).collect();
        if consumers.iter().any(|c| keep.contains(*c)) {
            keep_framed.insert(normalize);
        } else if consumers.iter().any(|c| int16.contains(*c)) {
            int16_framed.insert(normalize);
        }
        let lo = lower::LowerOptions { frames: Some(frame_input), ..lower_opts16(&keep_framed, &int16_framed) };
        lowered = lower::lower(&framed, &framed_stats, &lo)?;
        bytes = lowered.spec.to_bytes();
        if let (Some(c), Some(_)) = (&calib, &agreement) {
            let channels = g.tensors[g.inputs[0]].shape[1];
            let raw = ir::frames::frame_values(samples, channels, &f.mean, &f.std);
            let outs = eval::run_sparq(&bytes, &raw, None)?;
            agreement = Some(eval::compare(&outs[held_out..], &c.outputs[held_out..], None));
        }
        g = framed;
    }
    // The file must load in the runtime it targets.
    let aligned = sparq_runtime::AlignedBytes::from_slice(&bytes);
    sparq_runtime::Model::from_bytes(&aligned)?;
    let mut report = report::Report::new(&g, &lowered, onnx.len(), bytes.len(), agreement, mixed, opts.precision);
    for record in records {
        report.record(record);
    }
    report.macs_before = macs_before;
    report.agreement_held_out = held_out > 0;
    report.rounding = rounding_report;
    report.int8_inputs = int8_inputs;
    report.equalized = equalized;
    if let Some(f) = &opts.frames {
        let layout = if f.layout == data::DataLayout::Nhwc { "NHWC" } else { "NCHW" };
        let dtype = match lowered.layers.first().map(|l| l.precision) {
            Some(Precision::F32) => "f32",
            Some(Precision::Int16) => "int16 tables",
            _ => "int8 tables",
        };
        report.frames = Some((layout, dtype));
    }
    if calib.is_some() && opts.precision == Precision::Int8 {
        report.calibration_method = Some((chosen.0, tried));
        report.range_segments = segments;
    }
    Ok(Compiled { bytes, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_calibration_samples_are_refused_naming_the_sample() {
        let onnx = onnx::builder::mobile_block(3);
        let mut samples = vec![vec![0.5f32; 4 * 8 * 8]; 4];
        samples[3][70] = f32::NEG_INFINITY;
        let err = compile(&onnx, "m.onnx", &samples, &CompileOptions::default()).err().expect("refused");
        assert!(matches!(err, CompileError::NonFinite { sample: 3, value, .. } if value == f32::NEG_INFINITY), "{err}");
        assert!(err.to_string().contains("sample 3"), "{err}");
    }

    /// Rounding on int8 inputs (`round_on_int8`) runs on the layers with enough input vectors per weight,
    /// is reported with its before/after on the samples held out of its fit, and is kept exactly
    /// when it measures better there: on this small random model it is for some seeds and not for
    /// others (a per-layer fit is not the model's output, which is why the check is there), and
    /// both outcomes occur among the first eight seeds.
    #[test]
    fn rounding_on_int8_inputs_is_reported_and_kept_only_when_it_measures_better() {
        let mut outcomes = Vec::new();
        for seed in 1..=8 {
            let onnx = onnx::builder::mobile_block(seed);
            let mut rng = onnx::builder::Rng::new(9);
            let samples: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(4 * 8 * 8, 1.0)).collect();
            let on = compile(&onnx, "m.onnx", &samples, &CompileOptions::default()).unwrap();
            let off_opts = CompileOptions { round_on_int8: false, ..Default::default() };
            let off = compile(&onnx, "m.onnx", &samples, &off_opts).unwrap();
            assert!(off.report.int8_inputs.is_none());
            let r = on.report.int8_inputs.as_ref().expect("layers rounded again");
            // 24 fitting samples: 18 fit the rounding, 6 check it. With 18 x 64 positions, the
            // 4-input 1x1 convolution (reading the quantized model input) and the depthwise one
            // qualify; the 32-input 1x1 and the classifier do not.
            assert_eq!(r.samples, 6);
            assert_eq!(r.layers, ["Conv_3", "Conv_14"], "seed {seed}");
            assert!(r.before_db.is_finite() && r.after_db.is_finite(), "{r:?}");
            assert_eq!(r.kept, r.after_db > r.before_db, "{r:?}");
            assert_eq!(r.kept, on.bytes != off.bytes, "seed {seed}: {r:?}");
            assert!(on.report.to_string().contains(if r.kept { "(kept)" } else { "(not kept)" }));
            outcomes.push(r.kept);
        }
        assert!(outcomes.contains(&true) && outcomes.contains(&false), "kept per seed 1-8: {outcomes:?}");
    }

    #[test]
    fn output_paths_are_checked_before_any_work() {
        let dir = std::env::temp_dir().join(format!("sparq-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(check_output_path(&dir.join("m.sparq")).is_ok());
        // The probe is gone.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let missing = dir.join("no").join("m.sparq");
        let err = check_output_path(&missing).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()) && err.contains("does not exist"), "{err}");
        assert!(check_output_path(&dir).unwrap_err().to_string().contains("is a directory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The layer of each top-level module, lowest first (see the crate documentation).
    const LAYERS: &[(&str, usize)] = &[
        ("error", 0),
        ("progress", 0),
        ("ir", 1),
        ("onnx", 2),
        ("quant", 2),
        ("data", 2),
        ("lower", 3),
        ("calib", 4),
        ("compress", 5),
        ("policy", 6),
        ("report", 7),
    ];

    /// Every source file as its module path (`compress::prune`, `lower` for `lower/mod.rs`).
    fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                modules(&path, &format!("{prefix}{stem}::"), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = match stem.as_str() {
                    "mod" => prefix.trim_end_matches("::").to_string(),
                    "lib" => String::new(),
                    _ => format!("{prefix}{stem}"),
                };
                out.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }

    /// The modules `text` (of module `module`) names with `crate::` or `super::`, resolved to
    /// the longest known module path.
    fn uses(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        // Unit tests may use anything.
        let text = text.split("#[cfg(test)]").next().unwrap_or(text);
        let parent = |m: &str| m.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_string());
        for (start, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
            let rest = &text[start..];
            let (base, rest) = match rest.strip_prefix("crate::") {
                Some(r) => (String::new(), r),
                None => {
                    // `super` of `x::y` (`x/y.rs`) is `x`; of `x` (`x/mod.rs`), the root.
                    (parent(module), &rest["super::".len()..])
                }
            };
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            // `super::Item` names an item of the parent module itself: a use of the parent.
            let mut best = None;
            for n in 0..=path.len() {
                let candidate = [base.as_str()]
                    .into_iter()
                    .chain(path[..n].iter().copied())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("::");
                if known.contains(&candidate) {
                    best = Some(candidate);
                }
            }
            // A path that names no module file (`crate::prune`, a re-export of the crate root)
            // is a use of the root.
            out.insert(best.unwrap_or_default());
        }
        out.remove(module);
        out
    }

    fn layer(module: &str) -> usize {
        let top = module.split("::").next().unwrap_or("");
        LAYERS.iter().find(|(m, _)| *m == top).map_or(usize::MAX, |&(_, l)| l)
    }

    #[test]
    fn no_module_uses_a_higher_layer_and_none_use_each_other() {
        let mut files = BTreeMap::new();
        modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut files);
        let known: BTreeSet<String> = files.keys().cloned().collect();
        let graph: BTreeMap<&String, BTreeSet<String>> =
            files.iter().map(|(m, text)| (m, uses(m, text, &known))).collect();
        for (m, deps) in &graph {
            if m.is_empty() {
                continue;
            }
            assert_ne!(layer(m), usize::MAX, "module `{m}` has no layer in LAYERS");
            for d in deps {
                assert!(layer(d) <= layer(m), "`{m}` (layer {}) uses `{d}` (layer {})", layer(m), layer(d));
                assert!(!graph.get(d).is_some_and(|back| back.contains(m.as_str())), "`{m}` and `{d}` use each other");
            }
        }
    }
}
