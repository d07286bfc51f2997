//! The ONNX backend node test cases run through sparq.
//!
//! A case is a directory holding `model.onnx` and `test_data_set_0/{input,output}_<k>.pb`
//! (serialized `onnx.TensorProto`s), as the `onnx` wheel ships them under
//! `onnx/backend/test/data/node/`. [`run_case`] classifies one case:
//!
//! - **not claimed**: a node's op type is not in sparq's importer table
//!   ([`sparq_compiler::onnx::supported_ops`]); nothing is compiled.
//! - **refused**: the compiler returned an error (f32), or an input or output of the test is not
//!   float32 (`dtype`: sparq's files take and give f32 only, so the harness has nothing to feed or
//!   compare).
//! - **passed** / **mismatched**: compiled in f32 and run by the runtime; every output compared
//!   with the expected one as numpy's `assert_allclose` does (shape, then
//!   `|got - want| <= atol + rtol * |want|`, NaN equal to NaN), with the ONNX backend runner's
//!   tolerances (`rtol = 1e-3`, `atol = 1e-7`, or a case's `data.json`). A runtime error after a
//!   successful compile is a mismatch.
//! - **crashed**: a panic anywhere (import, compile, load, run), or no answer within the timeout.
//!
//! A case whose f32 run passed and that has exactly one input is also compiled in int8
//! (calibrated on its input and three copies with small deterministic noise), run on its input,
//! and measured: the SQNR of its outputs against the expected outputs ([`Int8`]).

use prost::Message;
use sparq_compiler::{CompileOptions, Precision};
use sparq_runtime::{AlignedBytes, Model, Session, SessionOptions};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};
use tract_onnx::pb;

pub use sparq_compiler::onnx::supported_ops;

/// ONNX `TensorProto.DataType` FLOAT.
const FLOAT: i32 = 1;

/// The ONNX backend runner's default tolerances (`onnx/backend/test/loader/__init__.py`).
pub const RTOL: f64 = 1e-3;
pub const ATOL: f64 = 1e-7;

/// What happened to a case in f32.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Passed,
    /// Wrong values or shape, or a runtime error after a successful compile.
    Mismatched(String),
    /// The compiler's error, or (`dtype`) a non-float32 input or output.
    Refused {
        reason: String,
        dtype: bool,
    },
    /// A panic (message and location), or a hang.
    Crashed(String),
    /// The op types sparq has no importer for.
    NotClaimed(Vec<String>),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Mismatched(_) => "mismatched",
            Outcome::Refused { dtype: false, .. } => "refused",
            Outcome::Refused { dtype: true, .. } => "refused (dtype)",
            Outcome::Crashed(_) => "crashed",
            Outcome::NotClaimed(_) => "not claimed",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Passed => String::new(),
            Outcome::Mismatched(m) | Outcome::Crashed(m) => m.clone(),
            Outcome::Refused { reason, .. } => reason.clone(),
            Outcome::NotClaimed(ops) => format!("no importer for {}", ops.join(", ")),
        }
    }
}

/// The int8 compile of a case that passed in f32 with one input.
#[derive(Clone, Debug, PartialEq)]
pub enum Int8 {
    /// Compiled and run: the SQNR (dB) of all outputs against the expected ones (`inf` when
    /// exact).
    Compiled {
        sqnr_db: f64,
    },
    Refused(String),
    /// Compiled but the runtime refused it or gave outputs of the wrong size.
    Failed(String),
    Crashed(String),
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub name: String,
    /// The op type of a single-node case; see [`assign_groups`] for the others.
    pub group: String,
    /// The graph's op types in node order, each once (`domain:Op` outside the default domain).
    pub ops: Vec<String>,
    pub nodes: usize,
    pub outcome: Outcome,
    /// A refused case retried with every input but the first float32 one frozen to its test
    /// value (`None`: not retried, or nothing to freeze).
    pub frozen: Option<Outcome>,
    /// The int8 compile of a case that passed with one input (as it is, or frozen).
    pub int8: Option<Int8>,
    pub millis: u128,
}

/// A decoded tensor of a test data set: float32 values, or only the type of anything else.
#[derive(Clone, Debug)]
struct TestTensor {
    dims: Vec<usize>,
    data_type: i32,
    values: Vec<f32>,
}

/// The f32 parts of a case, ready to compile and run.
struct Prepared {
    onnx: Vec<u8>,
    /// The graph inputs that are not initializers, in graph order, with their test values.
    inputs: Vec<(String, TestTensor)>,
    /// The graph outputs in order, with their expected values.
    outputs: Vec<(String, TestTensor)>,
    rtol: f64,
    atol: f64,
}

fn dtype_name(t: i32) -> String {
    let name = match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        17..=20 => "float8",
        21 => "uint4",
        22 => "int4",
        _ => return format!("type {t}"),
    };
    name.to_string()
}

fn decode_tensor(path: &Path) -> Result<(pb::TensorProto, TestTensor), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = pb::TensorProto::decode(&bytes[..]).map_err(|e| format!("{}: not a TensorProto ({e})", path.display()))?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let mut values = Vec::new();
    if t.data_type == FLOAT {
        values = if !t.raw_data.is_empty() {
            t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            t.float_data.clone()
        };
        let n: usize = dims.iter().product();
        if values.len() != n {
            return Err(format!("{}: {} values for shape {dims:?}", path.display(), values.len()));
        }
    }
    if is_integer(t.data_type) {
        // Integer and bool outputs (ArgMax's indices, a comparison) are compared as the f32 values
        // sparq produces; exact for the magnitudes of the test cases (below 2^24).
        let raw = &t.raw_data;
        let size = match t.data_type {
            2 | 3 | 9 => 1,
            4 | 5 => 2,
            6 | 12 => 4,
            _ => 8,
        };
        values = if !raw.is_empty() {
            raw.chunks_exact(size)
                .map(|c| match (t.data_type, size) {
                    (3, _) => c[0] as i8 as f32,
                    (_, 1) => c[0] as f32,
                    (5, _) => i16::from_le_bytes([c[0], c[1]]) as f32,
                    (_, 2) => u16::from_le_bytes([c[0], c[1]]) as f32,
                    (6, _) => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32,
                    (_, 4) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32,
                    (13, _) => u64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
                    _ => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32,
                })
                .collect()
        } else if !t.int64_data.is_empty() {
            t.int64_data.iter().map(|&v| v as f32).collect()
        } else if !t.uint64_data.is_empty() {
            t.uint64_data.iter().map(|&v| v as f32).collect()
        } else {
            t.int32_data.iter().map(|&v| v as f32).collect()
        };
    }
    let tensor = TestTensor { dims, data_type: t.data_type, values };
    Ok((t, tensor))
}

/// Integer and bool element types (compared as f32 when they are outputs).
fn is_integer(t: i32) -> bool {
    matches!(t, 2..=7 | 9 | 12 | 13)
}

/// `dir/<prefix>_0.pb`, `dir/<prefix>_1.pb`, ... while they exist.
fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    (0..).map(|k| dir.join(format!("{prefix}_{k}.pb"))).take_while(|p| p.is_file()).collect()
}

/// The element type of a graph input or output: `None` when the model does not say (the test
/// data's type decides; tract's protobuf types know tensors only, so a sequence or optional reads
/// as unknown, and its test data as a tensor of no type).
fn declared_type(v: &pb::ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        None => None,
        Some(pb::type_proto::Value::TensorType(t)) => (t.elem_type != 0).then_some(t.elem_type),
    }
}

/// The op types of a graph in node order, each once; `domain:Op` outside the default domain.
pub fn op_types(graph: &pb::GraphProto) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut ops = Vec::new();
    for n in &graph.node {
        let op = if n.domain.is_empty() || n.domain == "ai.onnx" {
            n.op_type.clone()
        } else {
            format!("{}:{}", n.domain, n.op_type)
        };
        if seen.insert(op.clone()) {
            ops.push(op);
        }
    }
    ops
}

/// The tolerances of a case: the runner's defaults, or those of its `data.json`.
fn tolerances(dir: &Path) -> (f64, f64) {
    let mut tol = (RTOL, ATOL);
    if let Ok(text) = std::fs::read_to_string(dir.join("data.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(r) = v.get("rtol").and_then(|r| r.as_f64()) {
                tol.0 = r;
            }
            if let Some(a) = v.get("atol").and_then(|a| a.as_f64()) {
                tol.1 = a;
            }
        }
    }
    tol
}

/// The op types of `model` sparq has no importer for.
fn unclaimed(model: &pb::ModelProto, supported: &HashSet<&str>) -> Vec<String> {
    model
        .graph
        .as_ref()
        .map_or_else(Vec::new, |g| op_types(g).into_iter().filter(|op| !supported.contains(op.as_str())).collect())
}

/// Read a case's first data set and check that its inputs and outputs are float32.
///
/// With `freeze`, every input but the first float32 one becomes an initializer holding its test
/// value (the ONNX tests feed weights, shapes, axes and scales as inputs, where models have
/// constants); `Ok(None)` when there is nothing to freeze.
fn prepare(dir: &Path, model: &pb::ModelProto, onnx: &[u8], freeze: bool) -> Result<Option<Prepared>, Outcome> {
    let refused = |reason: String, dtype: bool| Outcome::Refused { reason, dtype };
    let harness = |reason: String| refused(format!("harness: {reason}"), false);
    let graph = model.graph.as_ref().ok_or_else(|| harness("the model has no graph".into()))?;
    let data = dir.join("test_data_set_0");
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let real: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).collect();
    let in_files = numbered(&data, "input");
    let out_files = numbered(&data, "output");
    if in_files.len() != real.len() {
        return Err(harness(format!("{} input files for {} graph inputs", in_files.len(), real.len())));
    }
    if out_files.len() != graph.output.len() {
        return Err(harness(format!("{} output files for {} graph outputs", out_files.len(), graph.output.len())));
    }
    // The element type: the model's declaration if it has one, else the test data's.
    let typed = |v: &pb::ValueInfoProto, f: &PathBuf| -> Result<(pb::TensorProto, TestTensor, i32), Outcome> {
        let (proto, t) = decode_tensor(f).map_err(|e| match declared_type(v) {
            // A sequence or optional (a type tract's protobuf types do not know) whose data
            // does not read as a tensor.
            None => refused(format!("'{}' is not a tensor ({e})", v.name), true),
            Some(_) => harness(e),
        })?;
        let ty = match (t.data_type, declared_type(v)) {
            (0, _) => 0,
            (_, Some(d)) if d != FLOAT => d,
            (data, _) => data,
        };
        Ok((proto, t, ty))
    };
    let check = |what: &str, v: &pb::ValueInfoProto, ty: i32| match ty {
        FLOAT => Ok(()),
        // tract's protobuf types know tensors only: a sequence or optional reads as a tensor of
        // no type.
        0 => Err(refused(format!("{what} '{}' is not a tensor of one type (sequence or optional)", v.name), true)),
        t if declared_type(v).is_none() => Err(refused(
            format!(
                "{what} '{}' has no tensor type in the model (sequence or optional?); its data reads as {}",
                v.name,
                dtype_name(t)
            ),
            true,
        )),
        t => Err(refused(format!("{what} '{}' is {}", v.name, dtype_name(t)), true)),
    };
    let mut ins = Vec::new();
    for (v, f) in real.iter().zip(&in_files) {
        ins.push(typed(v, f)?);
    }
    let mut onnx = onnx.to_vec();
    let mut inputs = Vec::new();
    if freeze {
        let keep = ins
            .iter()
            .position(|(_, _, ty)| *ty == FLOAT)
            .ok_or_else(|| refused("no float32 input to keep when the others are frozen".into(), true))?;
        if ins.len() < 2 {
            return Ok(None);
        }
        if let Some((v, _)) = real.iter().zip(&ins).find(|(_, (_, _, ty))| *ty == 0) {
            return Err(check("input", v, 0).expect_err("not a tensor"));
        }
        let mut frozen = model.clone();
        let g = frozen.graph.as_mut().expect("checked");
        for (k, (v, (proto, _, _))) in real.iter().zip(&ins).enumerate() {
            if k != keep {
                // Test data may store float16/bfloat16/float8 values as uint16 or uint8: the
                // model's declared type says what they are.
                let data_type = match declared_type(v) {
                    Some(d @ (10 | 16..=20)) => d,
                    _ => proto.data_type,
                };
                g.initializer.push(pb::TensorProto { name: v.name.clone(), data_type, ..proto.clone() });
            }
        }
        let kept = real[keep].name.clone();
        g.input.retain(|i| i.name == kept || initializers.contains(i.name.as_str()));
        onnx = frozen.encode_to_vec();
        inputs.push((kept, ins.swap_remove(keep).1));
    } else {
        for (v, (_, t, ty)) in real.iter().zip(ins) {
            check("input", v, ty)?;
            inputs.push((v.name.clone(), t));
        }
    }
    let mut outputs = Vec::new();
    for (v, f) in graph.output.iter().zip(&out_files) {
        let (_, t, ty) = typed(v, f)?;
        if !is_integer(ty) {
            check("output", v, ty)?;
        }
        outputs.push((v.name.clone(), t));
    }
    let (rtol, atol) = tolerances(dir);
    Ok(Some(Prepared { onnx, inputs, outputs, rtol, atol }))
}

/// `assert_allclose(got, want, rtol, atol)` with `equal_nan`: `None` when close, else what
/// differs.
pub fn allclose(got: &[f32], want: &[f32], rtol: f64, atol: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, expected {}", got.len(), want.len()));
    }
    let mut bad = 0usize;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g as f64, w as f64);
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if g.is_infinite() || w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            bad += 1;
            let err = if (g - w).is_nan() { f64::INFINITY } else { (g - w).abs() };
            if worst.is_none_or(|(_, e)| err > e) {
                worst = Some((i, err));
            }
        }
    }
    let (i, err) = worst?;
    Some(format!(
        "{bad}/{} values differ; largest error {err:.3e} at {i}: got {}, expected {}",
        want.len(),
        got[i],
        want[i]
    ))
}

/// Signal-to-quantization-noise ratio of `got` against `want`, in dB (`inf` when equal).
pub fn sqnr_db(got: &[f32], want: &[f32]) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        signal += (w as f64) * (w as f64);
        noise += (g as f64 - w as f64) * (g as f64 - w as f64);
    }
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// An output of a run: its shape and values.
type Output = (Vec<usize>, Vec<f32>);

/// Load compiled bytes, feed the inputs by name, run; the outputs by graph output order with
/// their shapes.
fn run_sparq(bytes: &[u8], p: &Prepared) -> Result<Vec<Output>, String> {
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(aligned.as_slice()).map_err(|e| format!("runtime: load: {e}"))?;
    let options = SessionOptions::default();
    let size = model.check_arena(options.max_arena).map_err(|e| format!("runtime: arena: {e}"))?;
    let mut arena = AlignedBytes::try_zeroed(size).map_err(|e| format!("runtime: arena: {e}"))?;
    let mut session =
        Session::with_options(&model, arena.as_mut_slice(), options).map_err(|e| format!("runtime: session: {e}"))?;
    for i in 0..model.input_count() {
        let t = model.input(i).expect("counted");
        // The .sparq keeps the ONNX input names; by position if a name was lost.
        let (_, tensor) = p
            .inputs
            .iter()
            .find(|(name, _)| name == t.name)
            .or_else(|| p.inputs.get(i).filter(|_| t.name.is_empty()))
            .ok_or_else(|| format!("the .sparq's input {i} ('{}') is not a graph input", t.name))?;
        session.set_input(i, &tensor.values).map_err(|e| format!("runtime: input '{}': {e}", t.name))?;
    }
    session.run();
    let mut outs = Vec::new();
    for (k, (name, _)) in p.outputs.iter().enumerate() {
        let i = (0..model.output_count())
            .find(|&i| model.output(i).is_some_and(|t| t.name == name))
            .or((k < model.output_count()).then_some(k))
            .ok_or_else(|| format!("graph output '{name}' is not an output of the .sparq"))?;
        let t = model.output(i).expect("counted");
        if t.dtype != sparq_format::DType::F32 {
            return Err(format!("the .sparq's output '{name}' is {:?}, not f32", t.dtype));
        }
        let shape = t.shape().to_vec();
        let values = session.output(i).map_err(|e| format!("runtime: output '{name}': {e}"))?.to_vec();
        outs.push((shape, values));
    }
    Ok(outs)
}

fn options(p: &Prepared, precision: Precision) -> CompileOptions {
    CompileOptions {
        precision,
        input_shapes: p.inputs.iter().map(|(n, t)| (n.clone(), t.dims.clone())).collect(),
        progress: false,
        ..Default::default()
    }
}

fn run_f32(name: &str, p: &Prepared) -> Outcome {
    let compiled = match sparq_compiler::compile(&p.onnx, name, &[], &options(p, Precision::F32)) {
        Ok(c) => c,
        Err(e) => {
            let reason = e.to_string().lines().map(str::trim).collect::<Vec<_>>().join(" ");
            return Outcome::Refused { reason, dtype: false };
        }
    };
    let outs = match run_sparq(&compiled.bytes, p) {
        Ok(o) => o,
        Err(e) => return Outcome::Mismatched(e),
    };
    for ((name, want), (shape, got)) in p.outputs.iter().zip(&outs) {
        if *shape != want.dims {
            return Outcome::Mismatched(format!("output '{name}': shape {shape:?}, expected {:?}", want.dims));
        }
        if let Some(diff) = allclose(got, &want.values, p.rtol, p.atol) {
            return Outcome::Mismatched(format!("output '{name}': {diff}"));
        }
    }
    Outcome::Passed
}

/// The calibration samples of an int8 compile: the test input and three copies with noise of 1%
/// of its largest magnitude, from a fixed seed.
pub fn calibration_samples(input: &[f32]) -> Vec<Vec<f32>> {
    let scale = input.iter().fold(0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m }).max(1e-3) * 0.01;
    let mut rng = sparq_compiler::onnx::builder::Rng::new(0x5eed);
    let mut samples = vec![input.to_vec()];
    for _ in 0..3 {
        samples.push(input.iter().map(|&v| v + rng.uniform(-scale, scale)).collect());
    }
    samples
}

fn run_int8(name: &str, p: &Prepared) -> Int8 {
    let samples = calibration_samples(&p.inputs[0].1.values);
    let compiled = match sparq_compiler::compile(&p.onnx, name, &samples, &options(p, Precision::Int8)) {
        Ok(c) => c,
        Err(e) => return Int8::Refused(e.to_string().lines().map(str::trim).collect::<Vec<_>>().join(" ")),
    };
    let outs = match run_sparq(&compiled.bytes, p) {
        Ok(o) => o,
        Err(e) => return Int8::Failed(e),
    };
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for ((name, w), (_, g)) in p.outputs.iter().zip(&outs) {
        if g.len() != w.values.len() {
            return Int8::Failed(format!("output '{name}': {} values, expected {}", g.len(), w.values.len()));
        }
        got.extend_from_slice(g);
        want.extend_from_slice(&w.values);
    }
    Int8::Compiled { sqnr_db: sqnr_db(&got, &want) }
}

// Panics: a hook records the message and location of the first panic of a thread running a
// case; other panics (of the harness, or of threads a case started: the case then sees the
// scope's own panic) go to the default hook.
static PANIC_HOOK: Once = Once::new();
thread_local! {
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.with(Cell::get) {
                return default(info);
            }
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".into());
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|last| {
                last.borrow_mut().get_or_insert_with(|| format!("panic: {}{at}", msg.lines().next().unwrap_or("")));
            });
        }));
    });
}

/// Run `f`, turning a panic into `Err("panic: <message> at <file>:<line>")`.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    LAST_PANIC.with(|l| l.borrow_mut().take());
    IN_CASE.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_CASE.with(|c| c.set(false));
    r.map_err(|_| LAST_PANIC.with(|l| l.borrow_mut().take()).unwrap_or_else(|| "panic".into()))
}

/// Run one case directory (its name is the directory's name). Never panics: a panic in sparq is
/// [`Outcome::Crashed`]. With `freeze`, a refused case is retried with its other inputs frozen
/// ([`CaseResult::frozen`]). With `int8`, a case that passed (as it is, or frozen) with one input
/// is also compiled in int8.
pub fn run_case(dir: &Path, supported: &HashSet<&str>, freeze: bool, int8: bool) -> CaseResult {
    let start = Instant::now();
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut result = CaseResult {
        name: name.clone(),
        group: String::new(),
        ops: Vec::new(),
        nodes: 0,
        outcome: Outcome::Passed,
        frozen: None,
        int8: None,
        millis: 0,
    };
    let harness = |e: String| Outcome::Refused { reason: format!("harness: model.onnx: {e}"), dtype: false };
    let decoded = std::fs::read(dir.join("model.onnx"))
        .map_err(|e| e.to_string())
        .and_then(|b| pb::ModelProto::decode(&b[..]).map(|m| (b, m)).map_err(|e| e.to_string()));
    let (onnx, model) = match decoded {
        Ok(d) => d,
        Err(e) => {
            result.outcome = harness(e);
            return result;
        }
    };
    if let Some(g) = &model.graph {
        result.ops = op_types(g);
        result.nodes = g.node.len();
        if g.node.len() == 1 {
            result.group = result.ops[0].clone();
        }
    }
    let missing = unclaimed(&model, supported);
    let mut passed = None;
    if !missing.is_empty() {
        result.outcome = Outcome::NotClaimed(missing);
    } else {
        result.outcome = match prepare(dir, &model, &onnx, false) {
            Ok(Some(p)) => {
                let o = guarded(|| run_f32(&name, &p)).unwrap_or_else(Outcome::Crashed);
                if o == Outcome::Passed {
                    passed = Some(p);
                }
                o
            }
            Ok(None) => unreachable!("only a frozen preparation has nothing to do"),
            Err(refused) => refused,
        };
        if freeze && matches!(result.outcome, Outcome::Refused { .. }) {
            result.frozen = match prepare(dir, &model, &onnx, true) {
                Ok(Some(p)) => {
                    let o = guarded(|| run_f32(&name, &p)).unwrap_or_else(Outcome::Crashed);
                    if o == Outcome::Passed {
                        passed = Some(p);
                    }
                    Some(o)
                }
                Ok(None) => None,
                Err(refused) => Some(refused),
            };
        }
    }
    if let Some(p) = passed.filter(|p| int8 && p.inputs.len() == 1) {
        result.int8 = Some(guarded(|| run_int8(&name, &p)).unwrap_or_else(Int8::Crashed));
    }
    result.millis = start.elapsed().as_millis();
    result
}

/// [`run_case`] on a thread, given up (and reported as crashed) after `timeout`. A hung case's
/// thread is left behind.
pub fn run_case_with_timeout(
    dir: &Path,
    supported: &HashSet<&'static str>,
    freeze: bool,
    int8: bool,
    timeout: Duration,
) -> CaseResult {
    let (tx, rx) = std::sync::mpsc::channel();
    let d = dir.to_path_buf();
    let s = supported.clone();
    std::thread::Builder::new()
        .name("case".into())
        .spawn(move || {
            let _ = tx.send(run_case(&d, &s, freeze, int8));
        })
        .expect("spawn a case thread");
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => CaseResult {
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            group: String::new(),
            ops: Vec::new(),
            nodes: 0,
            outcome: Outcome::Crashed(format!("no answer after {} s (hang)", timeout.as_secs())),
            frozen: None,
            int8: None,
            millis: timeout.as_millis(),
        },
    }
}

/// The case directories under `root` (those holding a `model.onnx`), sorted by name, whose name
/// contains `filter`.
pub fn case_dirs(root: &Path, filter: Option<&str>) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .filter(|p| filter.is_none_or(|f| p.file_name().is_some_and(|n| n.to_string_lossy().contains(f))))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// Name the group of every multi-node case: the longest op type among the single-node cases'
/// whose lowercase name starts the case name (underscores ignored: `test_reduce_mean_...` is
/// `ReduceMean`), as `"<Op> (expanded)"` for the `_expanded` function bodies and
/// `"<Op> (multi-node)"` otherwise; `"(multi-node)"` if no op type matches.
pub fn assign_groups(results: &mut [CaseResult]) {
    let singles: Vec<String> = {
        let mut v: Vec<String> = results.iter().filter(|r| r.nodes == 1).map(|r| r.group.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    for r in results.iter_mut().filter(|r| r.nodes != 1) {
        let stem = squash(r.name.strip_prefix("test_").unwrap_or(&r.name));
        let op = singles.iter().filter(|op| stem.starts_with(&squash(op))).max_by_key(|op| op.len());
        let kind = if r.name.contains("_expanded") { "expanded" } else { "multi-node" };
        r.group = match op {
            Some(op) => format!("{op} ({kind})"),
            None => "(multi-node)".into(),
        };
    }
}

/// The known failures: case name -> reason, from lines `name  # reason` (blank lines and lines
/// starting with `#` are ignored).
pub fn parse_known(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once('#').unwrap_or((l, ""));
            (name.trim().to_string(), reason.trim().to_string())
        })
        .collect()
}

/// Whether a case fails in a way the known-failures file may list: a mismatch (as it is, or
/// frozen), or an int8 compile that crashed or does not run.
pub fn fails(r: &CaseResult) -> bool {
    matches!(r.outcome, Outcome::Mismatched(_))
        || matches!(r.frozen, Some(Outcome::Mismatched(_)))
        || matches!(r.int8, Some(Int8::Crashed(_) | Int8::Failed(_)))
}

/// What a failing case did, in one line.
pub fn failure(r: &CaseResult) -> String {
    let mut parts = Vec::new();
    for (what, o) in [("", Some(&r.outcome)), ("frozen: ", r.frozen.as_ref())] {
        if let Some(o @ (Outcome::Mismatched(_) | Outcome::Crashed(_))) = o {
            parts.push(format!("{what}{}: {}", o.label(), o.detail()));
        }
    }
    match &r.int8 {
        Some(Int8::Crashed(m)) => parts.push(format!("int8 crashed: {m}")),
        Some(Int8::Failed(m)) => parts.push(format!("int8 does not run: {m}")),
        _ => {}
    }
    parts.join("; ")
}

/// Why a run fails CI: f32 crashes (as it is or frozen; never excused), failures ([`fails`]) not
/// in `known`, and cases in `known` that no longer fail. Empty when the run is good.
pub fn failures(results: &[CaseResult], known: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for r in results {
        let crashed = matches!(r.outcome, Outcome::Crashed(_)) || matches!(r.frozen, Some(Outcome::Crashed(_)));
        let listed = known.contains_key(&r.name);
        if crashed {
            out.push(format!("{}: {}", r.name, failure(r)));
        } else if fails(r) && !listed {
            out.push(format!("{}: not a known failure: {}", r.name, failure(r)));
        } else if !fails(r) && listed {
            let now = match &r.frozen {
                Some(f) => format!("{}, frozen {}", r.outcome.label(), f.label()),
                None => r.outcome.label().to_string(),
            };
            out.push(format!(
                "{}: listed as a known failure but no longer fails ({now}): remove it from the list",
                r.name
            ));
        }
    }
    out
}

/// Counts of one group (or of all cases).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub cases: usize,
    pub passed: usize,
    pub mismatched: usize,
    pub refused: usize,
    /// Of `refused`: non-float32 test data.
    pub refused_dtype: usize,
    pub crashed: usize,
    pub not_claimed: usize,
    /// Refused cases retried with their other inputs frozen, by outcome.
    pub frozen_passed: usize,
    pub frozen_mismatched: usize,
    pub frozen_refused: usize,
    pub int8_compiled: usize,
    pub int8_refused: usize,
    /// Int8 compiled but failed to run, or crashed.
    pub int8_failed: usize,
    pub sqnr: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, r: &CaseResult) {
        self.cases += 1;
        match &r.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Mismatched(_) => self.mismatched += 1,
            Outcome::Refused { dtype, .. } => {
                self.refused += 1;
                self.refused_dtype += usize::from(*dtype);
            }
            Outcome::Crashed(_) => self.crashed += 1,
            Outcome::NotClaimed(_) => self.not_claimed += 1,
        }
        match &r.frozen {
            Some(Outcome::Passed) => self.frozen_passed += 1,
            Some(Outcome::Mismatched(_)) => self.frozen_mismatched += 1,
            Some(Outcome::Refused { .. } | Outcome::NotClaimed(_)) => self.frozen_refused += 1,
            Some(Outcome::Crashed(_)) => self.crashed += 1,
            None => {}
        }
        match &r.int8 {
            Some(Int8::Compiled { sqnr_db }) => {
                self.int8_compiled += 1;
                self.sqnr.push(*sqnr_db);
            }
            Some(Int8::Refused(_)) => self.int8_refused += 1,
            Some(Int8::Failed(_) | Int8::Crashed(_)) => self.int8_failed += 1,
            None => {}
        }
    }

    pub fn claimed(&self) -> usize {
        self.cases - self.not_claimed
    }

    /// The median int8 SQNR in dB.
    pub fn median_sqnr(&self) -> Option<f64> {
        let mut v = self.sqnr.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
}

/// The tallies by group, and of all cases.
pub fn tally(results: &[CaseResult]) -> (BTreeMap<String, Tally>, Tally) {
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for r in results {
        groups.entry(r.group.clone()).or_default().add(r);
        total.add(r);
    }
    (groups, total)
}

fn fmt_sqnr(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(v) if v.is_infinite() && v > 0.0 => "exact".into(),
        Some(v) => format!("{v:.1}"),
    }
}

/// The report: one row per group (groups with no claimed case only with `all`), then the totals.
///
/// Columns: `mism` mismatched, `refused` (`Nd`: N of them for non-float32 test data), `crash`
/// (as it is or frozen), `n/clm` not claimed, `frz ok` / `frz mism` the refused cases that pass
/// or mismatch with their other inputs frozen, `i8 ok` / `i8 ref` / `i8 bad` int8 compiled,
/// refused, crashed or not running, `i8 dB` the median int8 SQNR.
pub fn table(results: &[CaseResult], all: bool) -> String {
    use std::fmt::Write;
    let (groups, total) = tally(results);
    let width = groups.keys().map(|g| g.len()).max().unwrap_or(5).max(5);
    let mut s = String::new();
    let header = format!(
        "{:<width$} {:>5} {:>6} {:>4} {:>7} {:>5} {:>5} {:>6} {:>8} {:>5} {:>6} {:>6} {:>6}",
        "op",
        "cases",
        "passed",
        "mism",
        "refused",
        "crash",
        "n/clm",
        "frz ok",
        "frz mism",
        "i8 ok",
        "i8 ref",
        "i8 bad",
        "i8 dB"
    );
    writeln!(s, "{header}").unwrap();
    writeln!(s, "{}", "-".repeat(header.len())).unwrap();
    let row = |s: &mut String, name: &str, t: &Tally| {
        let refused =
            if t.refused_dtype > 0 { format!("{}({}d)", t.refused, t.refused_dtype) } else { t.refused.to_string() };
        writeln!(
            s,
            "{:<width$} {:>5} {:>6} {:>4} {:>7} {:>5} {:>5} {:>6} {:>8} {:>5} {:>6} {:>6} {:>6}",
            name,
            t.cases,
            t.passed,
            t.mismatched,
            refused,
            t.crashed,
            t.not_claimed,
            t.frozen_passed,
            t.frozen_mismatched,
            t.int8_compiled,
            t.int8_refused,
            t.int8_failed,
            fmt_sqnr(t.median_sqnr())
        )
        .unwrap();
    };
    let mut hidden = (0, 0);
    for (name, t) in &groups {
        if all || t.claimed() > 0 {
            row(&mut s, name, t);
        } else {
            hidden.0 += 1;
            hidden.1 += t.cases;
        }
    }
    if hidden.0 > 0 {
        writeln!(s, "({} op types with {} cases, none claimed, not listed; --all lists them)", hidden.0, hidden.1)
            .unwrap();
    }
    writeln!(s, "{}", "-".repeat(header.len())).unwrap();
    row(&mut s, "total", &total);
    let claimed = total.claimed();
    writeln!(
        s,
        "\n{} cases: {} not claimed, {} claimed: {} passed, {} mismatched, {} refused ({} for non-float32 data), {} crashed",
        total.cases,
        total.not_claimed,
        claimed,
        total.passed,
        total.mismatched,
        total.refused,
        total.refused_dtype,
        total.crashed
    )
    .unwrap();
    if claimed > 0 {
        let run = claimed - total.refused;
        writeln!(
            s,
            "pass rate: {:.1}% of claimed cases ({}/{}), {:.1}% of compiled ones ({}/{})",
            100.0 * total.passed as f64 / claimed as f64,
            total.passed,
            claimed,
            if run > 0 { 100.0 * total.passed as f64 / run as f64 } else { 0.0 },
            total.passed,
            run
        )
        .unwrap();
    }
    let retried = total.frozen_passed + total.frozen_mismatched + total.frozen_refused;
    if retried > 0 {
        writeln!(
            s,
            "frozen retry of refused cases (inputs but the first float32 one made constants): {retried} retried, {} \
             passed, {} mismatched, {} refused; pass rate as it is or frozen: {:.1}% of claimed cases ({}/{})",
            total.frozen_passed,
            total.frozen_mismatched,
            total.frozen_refused,
            100.0 * (total.passed + total.frozen_passed) as f64 / claimed.max(1) as f64,
            total.passed + total.frozen_passed,
            claimed
        )
        .unwrap();
    }
    writeln!(
        s,
        "int8: {} compiled (median SQNR {} dB), {} refused, {} crashed or not running",
        total.int8_compiled,
        fmt_sqnr(total.median_sqnr()),
        total.int8_refused,
        total.int8_failed
    )
    .unwrap();
    s
}

/// The results as JSON.
pub fn to_json(results: &[CaseResult]) -> serde_json::Value {
    use serde_json::json;
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let int8 = match &r.int8 {
                None => json!(null),
                Some(Int8::Compiled { sqnr_db }) => {
                    json!({"outcome": "compiled", "sqnr_db": if sqnr_db.is_finite() { json!(sqnr_db) } else { json!(null) }, "exact": sqnr_db.is_infinite() && *sqnr_db > 0.0})
                }
                Some(Int8::Refused(m)) => json!({"outcome": "refused", "detail": m}),
                Some(Int8::Failed(m)) => json!({"outcome": "failed", "detail": m}),
                Some(Int8::Crashed(m)) => json!({"outcome": "crashed", "detail": m}),
            };
            json!({
                "name": r.name,
                "group": r.group,
                "ops": r.ops,
                "nodes": r.nodes,
                "outcome": r.outcome.label(),
                "detail": r.outcome.detail(),
                "frozen": r.frozen.as_ref().map(|f| json!({"outcome": f.label(), "detail": f.detail()})),
                "int8": int8,
                "millis": r.millis as u64,
            })
        })
        .collect();
    let (_, t) = tally(results);
    json!({
        "totals": {
            "cases": t.cases, "claimed": t.claimed(), "passed": t.passed, "mismatched": t.mismatched,
            "refused": t.refused, "refused_dtype": t.refused_dtype, "crashed": t.crashed, "not_claimed": t.not_claimed,
            "frozen_passed": t.frozen_passed, "frozen_mismatched": t.frozen_mismatched, "frozen_refused": t.frozen_refused,
            "int8_compiled": t.int8_compiled, "int8_refused": t.int8_refused, "int8_failed": t.int8_failed,
        },
        "cases": cases,
    })
}

/// The supported op types as a set.
pub fn supported_set() -> HashSet<&'static str> {
    supported_ops().into_iter().collect()
}
