//! `sparq`: compile ONNX models to int8 `.sparq` files, run, evaluate, inspect and benchmark them.
//!
//! The CLI's commands as a library: [`cli_main`] is the `sparq` binary, and [`api`] gives the
//! same commands to the Python package (`python/`), parsed by the same option definitions so that
//! both take the same options, report the same errors and produce the same files and numbers.

pub mod api;
mod bench;
mod demo;
mod html;
mod inspect;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sparq_compiler::data::{self, DataLayout, Preprocess};
use sparq_compiler::prune::PrunePolicy;
use sparq_compiler::{CalibMethod, CompileOptions, Frames, Precision, SparseMode};
use sparq_runtime::{AlignedBytes, MappedModel, Model, Session};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "sparq",
    version,
    about = "Make neural networks small and fast on edge CPUs: ONNX -> int8 .sparq -> run"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest arena a model may make sparq allocate when it runs (run, bench, eval, demo), e.g.
    /// 512M or 4G: a file that declares more is refused before anything is allocated.
    #[arg(long, global = true, value_name = "BYTES", value_parser = parse_size, default_value = "1G")]
    max_arena: usize,
    /// No progress bars (they are shown only on a terminal in any case)
    #[arg(long, short, global = true)]
    quiet: bool,
}

/// `--quiet`, set once at start-up.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether progress bars are wanted (`--quiet` not given).
pub(crate) fn progress() -> bool {
    !QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// The `--max-arena` limit, set once at start-up.
static MAX_ARENA: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn max_arena() -> usize {
    *MAX_ARENA.get().unwrap_or(&sparq_runtime::DEFAULT_MAX_ARENA)
}

/// A zeroed arena for `model`, after checking its declared size against `--max-arena`.
pub(crate) fn new_arena(model: &Model<'_>) -> Result<AlignedBytes> {
    Ok(AlignedBytes::try_zeroed(model.check_arena(max_arena())?)?)
}

/// Session options with `threads` and the `--max-arena` limit.
pub(crate) fn session_options(threads: usize) -> sparq_runtime::SessionOptions {
    sparq_runtime::SessionOptions { threads, max_arena: max_arena() }
}

/// `4096`, `64K`, `512M`, `2G` (powers of 1024; `KiB`/`MiB`/`GiB` and `B` suffixes also read).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => return Err(format!("'{s}': expected a byte count such as 4096, 512M or 2G")),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1usize << shift))
        .ok_or_else(|| format!("'{s}': expected a byte count such as 4096, 512M or 2G"))
}

#[derive(Subcommand)]
enum Command {
    /// Compile an ONNX model to a .sparq file (int8 by default, calibrated on --calib data).
    Compile(Box<CompileArgs>),
    /// Run a .sparq model on inputs from a .npy file; write the outputs to a .npy file.
    Run(RunArgs),
    /// Measure a .sparq model: accuracy against labels, agreement and SQNR against the float ONNX.
    Eval(EvalArgs),
    /// Print a .sparq file's header, sections, inputs/outputs, ops and memory plan.
    Inspect { model: PathBuf },
    /// Time a .sparq model: latency percentiles over many runs.
    Bench(bench::BenchArgs),
    /// Compile, evaluate and benchmark the embedded default model (a CNN on real handwritten digits).
    Demo,
}

#[derive(Clone, Copy, ValueEnum)]
enum QuantArg {
    Int8,
    F32,
}

#[derive(Clone, Copy, ValueEnum)]
enum SparseArg {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InputDTypeArg {
    F32,
    U8,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
}

#[derive(Args, Clone)]
struct PreprocessArgs {
    /// Per-channel mean subtracted from the data (after uint8 data is scaled to [0, 1]), e.g. 0.485,0.456,0.406
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation the data is divided by, e.g. 0.229,0.224,0.225
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Layout of the data array (default: nhwc for uint8 data and images, nchw for float data)
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
}

impl PreprocessArgs {
    fn to_preprocess(&self) -> Preprocess {
        Preprocess {
            mean: self.mean.clone(),
            std: self.std.clone(),
            layout: self.layout.map(|l| match l {
                LayoutArg::Nchw => DataLayout::Nchw,
                LayoutArg::Nhwc => DataLayout::Nhwc,
            }),
            frames: false,
        }
    }
}

#[derive(Args)]
struct CompileArgs {
    /// The ONNX model
    model: PathBuf,
    /// Output .sparq file (written atomically)
    #[arg(short, long)]
    output: PathBuf,
    /// Calibration data: a .npy array of N samples, a directory of PNG/JPEG images or of one .npy per
    /// sample; for a model with several inputs, `--calib NAME=PATH` per input (repeated) or one .npz
    /// with an array named after each input
    #[arg(long)]
    calib: Vec<String>,
    /// Use at most this many calibration samples (the first ones)
    #[arg(long)]
    calib_limit: Option<usize>,
    /// How activation ranges are taken: auto (best measured of minmax, 99.99, sample99.999), minmax, mse, a
    /// percentile of all values (99.99), or a per-sample percentile averaged over samples (sample99.999)
    #[arg(long, default_value = "auto")]
    calib_method: String,
    /// How int8 weights are rounded: nearest, gptq (second-order, column by column), adaround (learned
    /// up/down rounding, for layers with few weights per channel) or auto (per layer, whichever changes
    /// the layer's outputs least on held-out calibration samples)
    #[arg(long, default_value = "auto")]
    weight_rounding: String,
    /// Cross-layer equalization of int8 activations: scale the channels of tensors written by
    /// convolutions (no activation, ReLU, or ReLU6 where the scaled channels stay under 6 on the
    /// calibration data) and read by convolutions (depthwise included), exactly, so that one int8
    /// scale serves all their channels
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    equalize: bool,
    /// After rounding, round the layers that have many input positions per weight again, one at a
    /// time in graph order, on the inputs the int8 model gives them mixed half and half with the
    /// float ones (GPTQ's sequential setting, regularized); kept only if the model measures closer to the float one on calibration samples held out of
    /// that fit (int16 layers, --int16, on their int16 inputs)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    round_on_int8: bool,
    #[command(flatten)]
    pre: PreprocessArgs,
    /// Fix an input's shape, e.g. input=1,3,224,224 (repeatable)
    #[arg(long)]
    input_shape: Vec<String>,
    /// Make an input a constant, e.g. sr=16000 (repeatable): a mode or sample-rate input then selects
    /// its branch (If) at compile time, and the compiled model no longer takes it
    #[arg(long)]
    input_value: Vec<String>,
    /// Precision of the compiled model
    #[arg(long, value_enum, default_value = "int8")]
    quant: QuantArg,
    /// The model's input: f32 tensors, or u8 camera frames (uint8 images, normalized by the model
    /// itself with --mean/--std folded into its first op, so an app feeds frames without a float
    /// pass; `run` and `eval` then take uint8 data, the C API sparq_session_set_input_u8)
    #[arg(long, value_enum, default_value = "f32")]
    input_dtype: InputDTypeArg,
    /// Memory layout of the u8 frames (with --input-dtype u8): nhwc (the default; height, width,
    /// channels: what cameras and image decoders produce) or nchw
    #[arg(long, value_enum)]
    input_layout: Option<LayoutArg>,
    /// Keep this node in f32 inside an int8 model (repeatable)
    #[arg(long)]
    keep_float: Vec<String>,
    /// Run this convolution or fully-connected node with int16 activations and int8 weights
    /// (A16W8) inside an int8 model (repeatable; `all`: every one that can)
    #[arg(long)]
    int16: Vec<String>,
    /// Keep the most sensitive layers in f32 until the expected top-1 agreement with the float
    /// model on the calibration data reaches this fraction (e.g. 0.97)
    #[arg(long)]
    min_agreement: Option<f64>,
    /// Safety margin of --min-agreement on the calibration set, as a fraction of the allowed
    /// disagreement (0.25: a 0.97 target is searched as 0.9775)
    #[arg(long, default_value_t = 0.25)]
    agreement_margin: f64,
    /// CPU family or device to tune the file for: x86-64, aarch64, armv7, generic (reference
    /// layouts), or a device profile from targets/profiles (rpi4, rpi5, android-arm64, rpi-armv7,
    /// x86-64-avx2); default: this machine's. The file runs on any CPU either way.
    #[arg(long)]
    target: Option<String>,
    /// Prune by weight magnitude before calibration: a sparsity for every conv and fully-connected
    /// layer (0.7, one global threshold), per kind (conv=0.8,fc=0.5; pw for 1x1 convolutions, dw for
    /// depthwise), per layer (NAME=0.6), or N:M (2:4, conv=2:4)
    #[arg(long)]
    prune: Option<String>,
    /// Pattern of the zeros for --prune sparsities: unstructured, blockRxC (R output channels by C
    /// consecutive reduction elements: block8x1, block1x4, block4x1), or N:M (2:4)
    #[arg(long, default_value = "unstructured")]
    prune_pattern: String,
    /// Pruning policy as a TOML file (sparsity, pattern, [kinds], [layers]); see the README
    #[arg(long, conflicts_with = "prune")]
    prune_file: Option<PathBuf>,
    /// Structured channel pruning before calibration: remove this fraction of the channels of every
    /// conv -> depthwise -> conv chain (MobileNet expansions) and of a conv -> global pool ->
    /// classifier head, ranked by what they carry on the calibration data, rounded to multiples
    /// of 16; the graph gets smaller layers (fewer MACs) and stays dense, and each chain's consumer
    /// is re-fitted on the channels it keeps
    #[arg(long)]
    prune_channels: Option<f64>,
    /// With --prune-channels, also prune the residual groups (the tensors tied by Adds: a
    /// residual network's trunk) by the same fraction, consistently: the convolutions writing them
    /// lose output channels, the convolutions reading them the matching inputs (re-fitted on the
    /// calibration data). Fewer MACs, but the trunk costs more accuracy per channel
    #[arg(long)]
    prune_channels_residual: bool,
    /// After --prune, re-fit the kept weights and biases of each pruned layer by least squares on
    /// the calibration data (OBS / SparseGPT-style reconstruction with the mask fixed); false: only
    /// the biases absorb the pruned weights' mean contribution
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    prune_reconstruct: bool,
    /// Store int8 weight matrices block-sparse (16x4 blocks, run by the sparse kernels): auto where
    /// the target profile's measured crossover says sparse is faster for the layer's shape and
    /// block density (zeros already in the model count too), always (every matrix with an
    /// all-zero block), or never
    #[arg(long, value_enum, default_value = "auto")]
    sparse: SparseArg,
    /// Print the model's node names (for --keep-float) and exit
    #[arg(long)]
    list_nodes: bool,
    /// Also report every layer's output SQNR against the float model (on up to 16 calibration samples)
    #[arg(long)]
    per_layer: bool,
    /// Also write a self-contained HTML report: the compile report, sizes, precision and SQNR per
    /// layer, agreement with the float model, the precision search's candidates, and latency
    /// measured on this machine (histogram and per layer); opens offline
    #[arg(long, value_name = "HTML")]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    model: PathBuf,
    /// Input .npy: the model's input shape, or N samples of it. Models with several inputs take one
    /// `--input NAME=FILE.npy` per input (or FILE.npy in input order); every input has N samples
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Output .npy, written atomically; for a model with several outputs, a directory that receives
    /// `<output name>.npy` for each
    #[arg(long)]
    output: PathBuf,
    #[command(flatten)]
    pre: PreprocessArgs,
}

#[derive(Args)]
struct EvalArgs {
    model: PathBuf,
    /// Evaluation inputs: a .npy array of N samples, a directory of images or of one .npy per sample;
    /// for a model with several inputs, `--data NAME=PATH` per input (repeated) or one .npz
    #[arg(long, required = true)]
    data: Vec<String>,
    /// Integer class labels (.npy, N values)
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The original float ONNX model, run by tract as the reference
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Inputs of the reference made constants, as `compile --input-value` did (repeatable)
    #[arg(long)]
    input_value: Vec<String>,
    #[command(flatten)]
    pre: PreprocessArgs,
    /// Also write a self-contained HTML report: agreement and accuracy against the float model,
    /// each sample's output SQNR, and the model's layers; opens offline
    #[arg(long, value_name = "HTML")]
    report: Option<PathBuf>,
    /// Print one JSON object (samples, accuracy, reference_accuracy, top1_agreement,
    /// expected_agreement, sqnr_db; null where there is no data for it) instead of the text
    #[arg(long)]
    json: bool,
}

/// `--input-value NAME=V1,V2,...` values, in the order given.
fn parse_values(specs: &[String]) -> Result<Vec<(String, Vec<f64>)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, vals) = spec
                .split_once('=')
                .ok_or_else(|| anyhow!("--input-value {spec}: expected NAME=V1,V2,... (e.g. sr=16000)"))?;
            let v = vals
                .split(',')
                .map(|x| x.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| anyhow!("--input-value {spec}: values must be numbers separated by commas"))?;
            Ok((name.to_string(), v))
        })
        .collect()
}

fn parse_shapes(specs: &[String]) -> Result<HashMap<String, Vec<usize>>> {
    let mut m = HashMap::new();
    for s in specs {
        let (name, dims) = s.split_once('=').ok_or_else(|| anyhow!("--input-shape {s}: expected NAME=D1,D2,..."))?;
        let dims = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>().ok().filter(|&v| v > 0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow!("--input-shape {s}: dimensions must be positive integers"))?;
        m.insert(name.to_string(), dims);
    }
    Ok(m)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Map a .sparq file and validate it.
pub(crate) fn open_model(path: &Path) -> Result<MappedModel> {
    Model::open(path).map_err(|e| match e {
        sparq_runtime::RuntimeError::Io(kind) => anyhow!("cannot read {}: {kind}", path.display()),
        _ => anyhow!("{}: {e}", path.display()),
    })
}

fn compile(a: CompileArgs) -> Result<()> {
    if a.list_nodes {
        let (onnx, what, shapes) = frozen_onnx(&a)?;
        let g = sparq_compiler::load_graph(&onnx, &what, &shapes)?;
        for n in &g.nodes {
            println!("{}\t{}", n.name, n.onnx_op);
        }
        return Ok(());
    }
    // Before any work: an unwritable output would otherwise fail only after the compile.
    sparq_compiler::check_output_path(&a.output)?;
    if let Some(r) = &a.report {
        sparq_compiler::check_output_path(r)?;
    }
    let built = build(&a, None)?;
    let bytes = &built.compiled.bytes;
    sparq_format::writer::write_atomic(&a.output, bytes)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    print!("{}", built.text(a.per_layer));
    println!("wrote {} ({} bytes)", a.output.display(), bytes.len());
    if let Some(path) = &a.report {
        compile_report(path, &a, &built.compiled, built.per_layer.as_ref())?;
    }
    Ok(())
}

/// Input shapes by input name (`--input-shape`).
type Shapes = HashMap<String, Vec<usize>>;

/// The model file with `--input-value` inputs frozen to constants, the name it goes by in
/// messages, and the `--input-shape` shapes.
fn frozen_onnx(a: &CompileArgs) -> Result<(Vec<u8>, String, Shapes)> {
    let what = a.model.display().to_string();
    let shapes = parse_shapes(&a.input_shape)?;
    let values = parse_values(&a.input_value)?;
    let onnx = sparq_compiler::import::freeze_inputs(&read_file(&a.model)?, &what, &values, &shapes)?;
    Ok((onnx, what, shapes))
}

/// A compiled model, with each layer's output SQNR against the float model when `--per-layer`
/// or `--report` asked for it (and calibration data was given).
struct Built {
    compiled: sparq_compiler::Compiled,
    per_layer: Option<(usize, Vec<sparq_compiler::eval::LayerSqnr>)>,
}

impl Built {
    /// What `sparq compile` prints: the compile report, then with `per_layer` each layer's SQNR
    /// and its weight rounding.
    fn text(&self, per_layer: bool) -> String {
        use std::fmt::Write;
        let mut t = self.compiled.report.to_string();
        if let (true, Some((n, rows))) = (per_layer, &self.per_layer) {
            let _ = writeln!(
                t,
                "  per layer   output SQNR vs the float model on {n} calibration samples (errors accumulate downstream):"
            );
            for r in rows {
                let _ = writeln!(t, "    {:>6.1} dB  {:<4} {:<18} {}", r.sqnr_db, r.dtype, r.op, r.name);
            }
            if !self.compiled.report.rounding.is_empty() {
                let _ = writeln!(
                    t,
                    "  rounding    each layer's own output SQNR on the held-out calibration samples (float inputs): nearest -> kept"
                );
                for l in &self.compiled.report.rounding {
                    let _ = writeln!(
                        t,
                        "    {:>6.1} -> {:>5.1} dB  {:<8} {}",
                        l.sqnr_nearest,
                        l.sqnr,
                        l.method.name(),
                        l.name
                    );
                }
            }
        }
        t
    }
}

/// Compile as `a` says, on `a.calib`'s data or, from the Python package, on named arrays
/// (`.npy` bytes) in memory; writes nothing.
fn build(a: &CompileArgs, calib: Option<Vec<(String, data::Array)>>) -> Result<Built> {
    let (onnx, what, shapes) = frozen_onnx(a)?;
    let calib_method = match a.calib_method.as_str() {
        "auto" => CalibMethod::Auto,
        "minmax" => CalibMethod::MinMax,
        "mse" => CalibMethod::Mse,
        p => {
            let (per_sample, num) = match p.strip_prefix("sample") {
                Some(rest) => (true, rest),
                None => (false, p),
            };
            match num.parse::<f32>() {
                Ok(v) if v > 50.0 && v <= 100.0 && per_sample => CalibMethod::SamplePercentile(v),
                Ok(v) if v > 50.0 && v <= 100.0 => CalibMethod::Percentile(v),
                _ => bail!("--calib-method {p}: expected auto, minmax, mse, a percentile in (50, 100] such as 99.99, or sample99.999"),
            }
        }
    };
    if let Some(m) = a.min_agreement {
        if !(0.0..=1.0).contains(&m) {
            bail!("--min-agreement {m}: expected a fraction between 0 and 1");
        }
    }
    let target = match &a.target {
        None => sparq_compiler::target::native(),
        Some(t) => sparq_compiler::target::resolve(t).with_context(|| {
            let mut names: Vec<String> = sparq_compiler::target::TARGETS.iter().map(|t| t.name.to_string()).collect();
            names.extend(sparq_compiler::target::devices().into_iter().map(|d| d.name));
            format!("--target {t}: unknown target (expected one of {})", names.join(", "))
        })?,
    };
    if a.input_layout.is_some() && a.input_dtype != InputDTypeArg::U8 {
        bail!("--input-layout is the layout of uint8 frames: it needs --input-dtype u8");
    }
    let precision = match a.quant {
        QuantArg::Int8 => Precision::Int8,
        QuantArg::F32 => Precision::F32,
    };
    let g = sparq_compiler::load_graph(&onnx, &what, &shapes)?;
    let inputs: Vec<(String, Vec<usize>)> =
        g.inputs.iter().map(|&i| (g.tensors[i].name.clone(), g.tensors[i].shape.clone())).collect();
    let mut samples = match calib {
        Some(arrays) => {
            data::concat_samples(&data::load_arrays(arrays, "calib", &inputs, &a.pre.to_preprocess(), "calib", true)?)
        }
        None if a.calib.is_empty() => Vec::new(),
        None => data::concat_samples(&data::load_inputs(&a.calib, &inputs, &a.pre.to_preprocess(), "--calib", true)?),
    };
    if let Some(n) = a.calib_limit {
        samples.truncate(n);
    }
    let prune = match (&a.prune, &a.prune_file) {
        (Some(spec), _) => Some(PrunePolicy::parse(spec, a.prune_pattern.parse()?)?),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(PrunePolicy::from_toml(&text)?)
        }
        (None, None) => None,
    };
    let opts = CompileOptions {
        precision,
        input_shapes: shapes,
        keep_float: a.keep_float.clone(),
        int16: a.int16.clone(),
        calib_method,
        weight_rounding: a.weight_rounding.parse().map_err(|e: String| anyhow::anyhow!("--weight-rounding: {e}"))?,
        equalize: a.equalize,
        round_on_int8: a.round_on_int8,
        min_agreement: a.min_agreement,
        agreement_margin: a.agreement_margin,
        progress: progress(),
        target,
        prune,
        prune_channels: a.prune_channels,
        prune_channels_residual: a.prune_channels_residual,
        prune_reconstruct: a.prune_reconstruct,
        sparse: match a.sparse {
            SparseArg::Auto => SparseMode::Auto,
            SparseArg::Always => SparseMode::Always,
            SparseArg::Never => SparseMode::Never,
        },
        frames: match a.input_dtype {
            InputDTypeArg::F32 => None,
            InputDTypeArg::U8 => Some(Frames {
                layout: match a.input_layout {
                    Some(LayoutArg::Nchw) => data::DataLayout::Nchw,
                    _ => data::DataLayout::Nhwc,
                },
                mean: a.pre.mean.clone().unwrap_or_else(|| vec![0.0]),
                std: a.pre.std.clone().unwrap_or_else(|| vec![1.0]),
            }),
        },
    };
    let compiled = sparq_compiler::compile(&onnx, &what, &samples, &opts)?;
    let per_layer = if (a.per_layer || a.report.is_some()) && !samples.is_empty() {
        let n = samples.len().min(16);
        let unscale: std::collections::HashMap<String, (Vec<f32>, Vec<f32>)> = compiled
            .report
            .equalized
            .iter()
            .flat_map(|e| e.members.iter().map(|m| (m.clone(), (e.scales.clone(), e.shifts.clone()))))
            .collect();
        let frames = opts
            .frames
            .as_ref()
            .map(|f| sparq_compiler::ir::frames::frame_values(&samples[..n], inputs[0].1[1], &f.mean, &f.std));
        let rows = sparq_compiler::eval::per_layer_sqnr(
            &onnx,
            &g,
            &compiled.bytes,
            &samples[..n],
            frames.as_deref(),
            &unscale,
        )?;
        Some((n, rows))
    } else {
        None
    };
    Ok(Built { compiled, per_layer })
}

/// `compile --report`: the HTML page of a compiled model.
fn compile_report(
    path: &Path,
    a: &CompileArgs,
    compiled: &sparq_compiler::Compiled,
    per_layer: Option<&(usize, Vec<sparq_compiler::eval::LayerSqnr>)>,
) -> Result<()> {
    let r = &compiled.report;
    let aligned = AlignedBytes::from_slice(&compiled.bytes);
    let model = Model::from_bytes(&aligned)?;
    let mut page = html::Page::new(&format!("sparq compile: {}", a.model.display()));
    let mut facts = vec![(
        "size".to_string(),
        format!(
            "ONNX {} bytes -> .sparq {} bytes ({:.3}x)",
            r.onnx_bytes,
            r.sparq_bytes,
            r.sparq_bytes as f64 / r.onnx_bytes.max(1) as f64
        ),
    )];
    facts.extend(html::model_facts(&a.output, &model, compiled.bytes.len()));
    page.facts(&facts);
    if let Some(c) = &r.calibration {
        page.heading("Agreement with the float model");
        let held = if r.agreement_held_out { "held out of every choice" } else { "calibration" };
        page.paragraph(&format!(
            "On {} {held} samples: top-1 agreement {:.2}%, expected on new data {:.2}% (from each sample's logit \
             margins and its measured noise), output SQNR {:.1} dB.",
            c.samples,
            c.top1_agreement * 100.0,
            c.expected_agreement * 100.0,
            c.sqnr_db
        ));
        let mut bars = vec![
            (format!("top-1 agreement ({} samples)", c.samples), c.top1_agreement),
            ("expected on new data".to_string(), c.expected_agreement),
        ];
        if let (Some(acc), Some(ra)) = (c.accuracy, c.reference_accuracy) {
            bars.push(("float accuracy".to_string(), ra));
            bars.push(("sparq accuracy".to_string(), acc));
        }
        page.percent_bars("Agreement of the compiled model with the float model (calibration samples)", &bars)?;
    }
    if let Some(m) = &r.mixed {
        page.heading("Precision search (--min-agreement)");
        page.paragraph(&format!(
            "Target {:.2}% (searched as {:.2}% expected agreement); {} layer(s) in int16, {} in f32.",
            m.target * 100.0,
            m.goal * 100.0,
            m.int16.len(),
            m.kept.len()
        ));
        if !m.evaluated.is_empty() {
            let pts: Vec<(f64, f64)> = m.evaluated.iter().map(|p| (p.cost, p.expected_agreement)).collect();
            let chosen = m.evaluated.iter().position(|p| p.chosen);
            page.pareto(
                &format!(
                    "Candidates the search evaluated: {} against expected agreement on calibration data",
                    m.cost_unit
                ),
                &m.cost_unit,
                &pts,
                chosen,
            )?;
        }
    }
    page.heading("Latency on this machine");
    let (kernels, runs) = bench::time_runs(&model, 5, 50, 1)?;
    let ops = bench::time_ops(&model, 2, 10, 1)?;
    page.paragraph(&format!(
        "50 runs after 5 warm-up, one thread, {kernels} kernels: p50 {:.3} ms (for paired comparisons and more runs: \
         sparq bench --baseline).",
        bench::Latency::from_samples(kernels, &runs).p50
    ));
    page.latency_histogram("Latency of each timed run, p50 / p90 / p99 marked", &runs)?;
    let mut layers = html::layers(&model)?;
    let sqnr: HashMap<&str, f64> =
        per_layer.map(|(_, rows)| rows.iter().map(|r| (r.name.as_str(), r.sqnr_db)).collect()).unwrap_or_default();
    let sparsity: HashMap<&str, String> = r
        .sparsity
        .iter()
        .filter(|s| s.weights > 0 && s.zeros > 0)
        .map(|s| {
            let pattern = s.policy.as_ref().map(|p| format!(" {}", p.pattern)).unwrap_or_default();
            (s.name.as_str(), format!("{:.1}%{pattern}", 100.0 * s.zeros as f64 / s.weights as f64))
        })
        .collect();
    for (l, (ms, _)) in layers.iter_mut().zip(&ops) {
        l.ms = Some(*ms);
        l.sqnr_db = sqnr.get(l.name.as_str()).copied();
        l.sparsity = sparsity.get(l.name.as_str()).cloned();
    }
    let note = per_layer.map(|(n, _)| format!(", on {n} calibration samples")).unwrap_or_default();
    page.layer_section(&layers, &note)?;
    page.heading("Compile report");
    page.preformatted(&r.to_string());
    page.write(path)
}

fn run(a: RunArgs) -> Result<()> {
    // The output path is checked before any work (a directory: one file per output).
    if !a.output.is_dir() {
        sparq_compiler::check_output_path(&a.output)?;
    }
    let mapped = open_model(&a.model)?;
    let model = mapped.model();
    let n_out = model.output_count();
    if n_out == 1 {
        sparq_compiler::check_output_path(&a.output)?;
    } else if a.output.exists() && !a.output.is_dir() {
        bail!("--output {}: the model has {n_out} outputs, so --output must be a directory", a.output.display());
    }
    // Which file feeds which input: NAME=FILE, plain files in input order, or one .npz.
    let pre = match frame_preprocess(model, &a.pre) {
        Some(pre) => {
            if a.pre.mean.is_some() || a.pre.std.is_some() {
                bail!("the model takes uint8 camera frames and normalizes them itself (it was compiled with --input-dtype u8): drop --mean/--std");
            }
            pre
        }
        None => a.pre.to_preprocess(),
    };
    let inputs = data::load_inputs(&a.input, &model_inputs(model), &pre, "--input", false)?;
    let count = inputs[0].len();
    let mut arena = new_arena(model)?;
    let mut session = Session::with_options(model, arena.as_mut_slice(), session_options(1))?;
    let mut all: Vec<Vec<f32>> = vec![Vec::new(); n_out];
    for s in 0..count {
        for (i, x) in inputs.iter().enumerate() {
            session.set_input(i, &x[s])?;
        }
        session.run();
        for (o, acc) in all.iter_mut().enumerate() {
            acc.extend_from_slice(session.output(o)?);
        }
    }
    if n_out > 1 {
        std::fs::create_dir_all(&a.output)?;
    }
    for (o, values) in all.iter().enumerate() {
        let t = model.output(o).ok_or_else(|| anyhow!("model has no output {o}"))?;
        let mut shape = t.shape().to_vec();
        if count > 1 {
            if shape.first() == Some(&1) {
                shape[0] = count;
            } else {
                shape.insert(0, count);
            }
        }
        let path = if n_out == 1 {
            a.output.clone()
        } else {
            let safe: String =
                t.name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
            a.output.join(format!("{safe}.npy"))
        };
        data::write_npy(&path, &shape, values)?;
        println!("ran {count} sample(s); wrote {} with shape {shape:?}", path.display());
    }
    Ok(())
}

/// For a model taking uint8 camera frames (`compile --input-dtype u8`: an int8 input), how its
/// data are read: uint8 kept as 0..=255, laid out as the input is unless `--layout` says otherwise.
fn frame_preprocess(model: &Model<'_>, pre: &PreprocessArgs) -> Option<Preprocess> {
    let t = model.input(0).filter(|t| t.dtype == sparq_runtime::format::DType::I8)?;
    let layout = match (pre.layout, t.layout) {
        (Some(LayoutArg::Nchw), _) => DataLayout::Nchw,
        (Some(LayoutArg::Nhwc), _) | (None, sparq_runtime::format::Layout::Nhwc) => DataLayout::Nhwc,
        (None, _) => DataLayout::Nchw,
    };
    Some(Preprocess { layout: Some(layout), frames: true, ..Default::default() })
}

/// A compiled model's inputs: name and shape, in input order.
fn model_inputs(model: &Model<'_>) -> Vec<(String, Vec<usize>)> {
    (0..model.input_count()).filter_map(|i| model.input(i)).map(|t| (t.name.to_string(), t.shape().to_vec())).collect()
}

fn read_labels(path: &Path) -> Result<Vec<i64>> {
    let a = data::read_npy(path)?;
    Ok(a.data.iter().map(|&v| v as i64).collect())
}

fn eval(a: EvalArgs) -> Result<()> {
    if let Some(r) = &a.report {
        sparq_compiler::check_output_path(r)?;
    }
    let e = evaluate(&a, None, None)?;
    if a.json {
        println!("{}", e.json(&a));
    } else {
        print!("{}", e.text());
    }
    if let Some(path) = &a.report {
        e.report(path, &a)?;
    }
    Ok(())
}

/// An evaluation's numbers: against the float model (with labels: both accuracies), or against
/// labels alone.
struct Evaluated {
    samples: usize,
    frames: bool,
    file_bytes: usize,
    /// Against the float reference: the agreement, and each sample's output SQNR when a report
    /// wants it.
    agreement: Option<(sparq_compiler::eval::Agreement, Option<Vec<f64>>)>,
    /// Against labels alone (no reference).
    accuracy: Option<f64>,
}

/// Evaluate as `a` says, on `a.data` and `a.labels` or, from the Python package, on named arrays
/// (`.npy` bytes) and labels in memory.
fn evaluate(a: &EvalArgs, data: Option<Vec<(String, data::Array)>>, labels: Option<Vec<i64>>) -> Result<Evaluated> {
    let mapped = open_model(&a.model)?;
    let model = mapped.model();
    let inputs = model_inputs(model);
    let load = |pre: &Preprocess| -> Result<Vec<Vec<f32>>> {
        let per_input = match &data {
            Some(arrays) => {
                let arrays = arrays.iter().map(|(n, x)| (n.clone(), x.clone())).collect();
                data::load_arrays(arrays, "data", &inputs, pre, "data", false)?
            }
            None => data::load_inputs(&a.data, &inputs, pre, "--data", false)?,
        };
        Ok(data::concat_samples(&per_input))
    };
    let samples = load(&a.pre.to_preprocess())?;
    // A model taking camera frames gets the uint8 data as they are; --mean/--std then only
    // prepare the float reference's input.
    let frames = frame_preprocess(model, &a.pre).map(|pre| load(&pre)).transpose()?;
    let labels = match labels {
        Some(l) => Some(l),
        None => a.labels.as_deref().map(read_labels).transpose()?,
    };
    if let Some(l) = &labels {
        if l.len() != samples.len() {
            bail!("{} labels for {} samples", l.len(), samples.len());
        }
    }
    let pb = sparq_compiler::progress::bar(samples.len(), "sparq", progress());
    let outs = sparq_compiler::eval::run_sparq(mapped.bytes(), frames.as_ref().unwrap_or(&samples), Some(&pb))?;
    pb.finish_and_clear();
    let mut e = Evaluated {
        samples: samples.len(),
        frames: frames.is_some(),
        file_bytes: mapped.bytes().len(),
        agreement: None,
        accuracy: None,
    };
    match &a.reference {
        Some(r) => {
            let values = parse_values(&a.input_value)?;
            let onnx = sparq_compiler::import::freeze_inputs(
                &read_file(r)?,
                &r.display().to_string(),
                &values,
                &HashMap::new(),
            )?;
            let mut shapes = HashMap::new();
            let g0 = sparq_compiler::import::import(
                &sparq_compiler::import::decode(&onnx, &r.display().to_string())?,
                &shapes,
                &r.display().to_string(),
            );
            if g0.is_err() {
                // Dynamic dims: take the shapes from the compiled model.
                for (name, shape) in &inputs {
                    shapes.insert(name.clone(), shape.clone());
                }
            }
            let g = sparq_compiler::load_graph(&onnx, &r.display().to_string(), &shapes)?;
            let names: Vec<String> = g.outputs.iter().map(|&o| g.tensors[o].name.clone()).collect();
            let reference = sparq_compiler::reference::Reference::new(&onnx, &g, names)?;
            let pb = sparq_compiler::progress::bar(samples.len(), "float (tract)", progress());
            let refs = samples
                .iter()
                .map(|s| {
                    pb.inc(1);
                    reference.run(s)
                })
                .collect::<Result<Vec<_>, _>>()?;
            pb.finish_and_clear();
            let agr = sparq_compiler::eval::compare(&outs, &refs, labels.as_deref());
            // Each sample's output SQNR, for the report: which inputs the model gets wrong, and by how much.
            let per_sample = a.report.as_ref().map(|_| {
                outs.iter()
                    .zip(&refs)
                    .map(|(o, r)| {
                        sparq_compiler::eval::compare(std::slice::from_ref(o), std::slice::from_ref(r), None).sqnr_db
                    })
                    .collect()
            });
            e.agreement = Some((agr, per_sample));
        }
        None => {
            let l = labels.ok_or_else(|| anyhow!("give --labels, --reference, or both"))?;
            let correct = outs.iter().zip(&l).filter(|(o, &y)| sparq_compiler::eval::argmax(&o[0]) as i64 == y).count();
            e.accuracy = Some(correct as f64 / l.len().max(1) as f64);
        }
    }
    Ok(e)
}

impl Evaluated {
    /// What `sparq eval` prints.
    fn text(&self) -> String {
        use std::fmt::Write;
        let mut t = format!("{} samples{}\n", self.samples, if self.frames { " (uint8 frames)" } else { "" });
        if let Some((agr, _)) = &self.agreement {
            if let (Some(acc), Some(ref_acc)) = (agr.accuracy, agr.reference_accuracy) {
                let _ = writeln!(
                    t,
                    "accuracy     float (tract) {:.2}%   sparq {:.2}%   ({:+.2} points)",
                    ref_acc * 100.0,
                    acc * 100.0,
                    (acc - ref_acc) * 100.0
                );
            }
            let _ = writeln!(t, "agreement    top-1 {:.2}% with the float model", agr.top1_agreement * 100.0);
            let _ = writeln!(t, "output SQNR  {:.1} dB", agr.sqnr_db);
        }
        if let Some(acc) = self.accuracy {
            let _ = writeln!(t, "accuracy     sparq {:.2}%", acc * 100.0);
        }
        t
    }

    /// `sparq eval --json` (and the Python package's `sparq.eval`): the same numbers, with
    /// `null` for those the evaluation had no data for.
    fn json(&self, a: &EvalArgs) -> serde_json::Value {
        let agr = self.agreement.as_ref().map(|(g, _)| g);
        serde_json::json!({
            "model": a.model.display().to_string(),
            "reference": a.reference.as_ref().map(|r| r.display().to_string()),
            "samples": self.samples,
            "uint8_frames": self.frames,
            "accuracy": agr.map_or(self.accuracy, |g| g.accuracy),
            "reference_accuracy": agr.and_then(|g| g.reference_accuracy),
            "top1_agreement": agr.map(|g| g.top1_agreement),
            "expected_agreement": agr.map(|g| g.expected_agreement),
            "sqnr_db": agr.map(|g| g.sqnr_db),
        })
    }

    /// `eval --report`.
    fn report(&self, path: &Path, a: &EvalArgs) -> Result<()> {
        let mapped = open_model(&a.model)?;
        let model = mapped.model();
        let data = format!("{} samples{}", self.samples, if self.frames { " (uint8 frames)" } else { "" });
        match (&self.agreement, &a.reference) {
            (Some((agr, per_sample)), Some(r)) => {
                let mut bars = Vec::new();
                if let (Some(acc), Some(ra)) = (agr.accuracy, agr.reference_accuracy) {
                    bars.push(("float accuracy (tract)".to_string(), ra));
                    bars.push(("sparq accuracy".to_string(), acc));
                }
                bars.push(("top-1 agreement".to_string(), agr.top1_agreement));
                bars.push(("expected agreement on new data".to_string(), agr.expected_agreement));
                let facts = vec![
                    ("data".to_string(), data),
                    ("reference".to_string(), format!("{} (float, run by tract)", r.display())),
                    ("top-1 agreement".to_string(), format!("{:.2}%", agr.top1_agreement * 100.0)),
                    ("output SQNR".to_string(), format!("{:.1} dB over all samples", agr.sqnr_db)),
                ];
                eval_report(path, a, model, self.file_bytes, facts, &bars, per_sample.as_deref())
            }
            _ => {
                let acc = self.accuracy.unwrap_or(0.0);
                let facts = vec![("data".to_string(), data)];
                eval_report(path, a, model, self.file_bytes, facts, &[("sparq accuracy".to_string(), acc)], None)
            }
        }
    }
}

/// `eval --report`: the HTML page of an evaluation.
fn eval_report(
    path: &Path,
    a: &EvalArgs,
    model: &Model<'_>,
    file_bytes: usize,
    mut facts: Vec<(String, String)>,
    bars: &[(String, f64)],
    per_sample_sqnr: Option<&[f64]>,
) -> Result<()> {
    let mut page = html::Page::new(&format!("sparq eval: {}", a.model.display()));
    page.facts(&html::model_facts(&a.model, model, file_bytes));
    page.heading("Accuracy and agreement");
    facts.push((
        "expected agreement".to_string(),
        "each sample's chance of keeping its top-1 class under its measured output noise, averaged".to_string(),
    ));
    page.facts(&facts);
    page.percent_bars("Accuracy and top-1 agreement with the float model", bars)?;
    if let Some(s) = per_sample_sqnr {
        page.value_histogram("Output SQNR of each sample against the float model (dB)", "output SQNR (dB)", s)?;
    }
    page.layer_section(&html::layers(model)?, "")?;
    page.write(path)
}

/// The `sparq` command line: parse the process's arguments, run the command, and on failure
/// print the error as one line and exit with status 1.
pub fn cli_main() {
    // Output piped into `head` and the like: end on the closed pipe as other Unix tools do,
    // rather than panic in `println!` (the Rust runtime sets SIGPIPE to ignored).
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // `--version`: the crate's version and the newest `.sparq` format it writes and reads.
    let version = format!(
        "{} (.sparq format {}.{})",
        env!("CARGO_PKG_VERSION"),
        sparq_format::layout::VERSION_MAJOR,
        sparq_format::layout::VERSION_MINOR
    );
    let version: &'static str = Box::leak(version.into_boxed_str());
    let matches = <Cli as clap::CommandFactory>::command().version(version).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let _ = MAX_ARENA.set(cli.max_arena);
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Command::Compile(a) => compile(*a),
        Command::Run(a) => run(a),
        Command::Eval(a) => eval(a),
        Command::Inspect { model } => inspect::inspect(&model),
        Command::Bench(a) => bench::bench(a),
        Command::Demo => demo::demo(),
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_line(&e));
        std::process::exit(1);
    }
}

/// An error and its causes as one line, each cause once: what `sparq` prints after `error: `,
/// and the message of the Python package's `sparq.Error`.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}
