//! What `sparq inspect` and `sparq run` do with a file, in-process: load with checksums on, walk
//! every descriptor and every op's kernel on every path, then run one session per kernel path
//! this CPU has (and one with two threads) and compare all output bytes with the scalar path's
//! (f32 outputs as values: every NaN equal to every NaN, see [`canonical_nan`]).
//! Panics are not caught: a panic is the finding, and the driver sees the exit code.

use core::mem::{offset_of, size_of};
use sparq_format::layout::{op, section, FileHeader, ModelMeta, OpDesc, SectionEntry, VERSION_MINOR};
use sparq_format::{DType, Storage};
use sparq_runtime::cpu::PATHS;
use sparq_runtime::{AlignedBytes, Features, Model, Session, SessionOptions};

/// Largest arena the checker allocates (a bigger declared arena is only inspected).
pub const ARENA_LIMIT: usize = 64 << 20;

/// A run whose outputs differ from the scalar path's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The run that differs: a path name, `threads=2` or `refill` (the same path on an arena
    /// filled with other bytes: an output that depends on them was not fully written).
    pub run: String,
    /// The graph output that differs, or `usize::MAX` when the session could not be created.
    pub output: usize,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    /// `Err(message)` when `Model::from_bytes` refused the file.
    pub loaded: Result<(), String>,
    /// Sessions ran (the arena was within [`ARENA_LIMIT`]).
    pub ran: bool,
    pub mismatch: Option<Mismatch>,
    /// The kernel paths run.
    pub paths: Vec<&'static str>,
    /// The file loaded although it breaks a rule of FORMAT.md the reader must enforce (a
    /// reserved field or flag set, a minor version this reader does not know), or declares an
    /// arena far larger than its tensors (which `sparq run` would allocate).
    pub nonconforming: Option<String>,
}

impl Outcome {
    fn refused(message: String) -> Outcome {
        Outcome { loaded: Err(message), ran: false, mismatch: None, paths: Vec::new(), nonconforming: None }
    }
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_ok()
    }
}

/// Deterministic input bytes: small finite floats, or a byte pattern for int8 / int32 inputs.
fn fill_input(arena: &mut [u8], offset: usize, size: usize, dtype: DType) {
    let dst = &mut arena[offset..offset + size];
    match dtype {
        DType::F32 => {
            for (i, c) in dst.chunks_exact_mut(4).enumerate() {
                let v = ((i * 37 + 11) % 23) as f32 * 0.25 - 2.75;
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        _ => {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = (i * 29 + 7) as u8;
            }
        }
    }
}

fn field(bytes: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&bytes[at..at + width]);
    u64::from_le_bytes(v)
}

/// The first rule of FORMAT.md a loaded file breaks that the reader should have enforced.
pub fn nonconforming(bytes: &[u8], model: &Model<'_>) -> Option<String> {
    let nonzero = |at: usize, len: usize| bytes[at..at + len].iter().any(|&b| b != 0);
    let minor = field(bytes, offset_of!(FileHeader, version_minor), 2);
    if minor > VERSION_MINOR as u64 {
        return Some(format!("loads with version_minor {minor}, newer than this reader's {VERSION_MINOR}"));
    }
    if nonzero(offset_of!(FileHeader, flags), 4) {
        return Some("loads with header flags not 0".into());
    }
    if nonzero(offset_of!(FileHeader, reserved), 24) {
        return Some("loads with header reserved bytes not 0".into());
    }
    let count = field(bytes, offset_of!(FileHeader, section_count), 4) as usize;
    const E: usize = size_of::<SectionEntry>();
    for i in 0..count {
        let e = size_of::<FileHeader>() + i * E;
        if nonzero(e + offset_of!(SectionEntry, flags), 4) || nonzero(e + offset_of!(SectionEntry, reserved), 4) {
            return Some(format!("loads with section entry {i}'s flags or reserved field not 0"));
        }
        let kind = field(bytes, e + offset_of!(SectionEntry, kind), 4) as u32;
        let offset = field(bytes, e + offset_of!(SectionEntry, offset), 8) as usize;
        if kind == section::META && nonzero(offset + offset_of!(ModelMeta, reserved), 32) {
            return Some("loads with META reserved bytes not 0".into());
        }
        if kind == section::OPS {
            for k in 0..model.op_count() {
                let o = offset + k * size_of::<OpDesc>();
                if nonzero(o + offset_of!(OpDesc, flags), 2) || nonzero(o + offset_of!(OpDesc, reserved), 4) {
                    return Some(format!("loads with op {k}'s flags or reserved field not 0"));
                }
            }
        }
    }
    let v = model.view();
    if let Some(broken) = op_outputs_nonconforming(model) {
        return Some(broken);
    }
    let tensors_end = (0..v.tensor_count())
        .map(|i| v.tensor(i))
        .filter(|t| t.storage == Storage::Arena)
        .map(|t| t.data_offset.saturating_add(t.data_size))
        .max()
        .unwrap_or(0);
    // A file may declare any arena; what must hold is that a reader refuses to allocate one
    // above its limit (`sparq run`, the C API and `Session` check `Model::check_arena`).
    let declared = model.arena_size();
    if declared > sparq_runtime::DEFAULT_MAX_ARENA && model.check_arena(sparq_runtime::DEFAULT_MAX_ARENA).is_ok() {
        return Some(format!(
            "a {declared}-byte arena (tensors end at byte {tensors_end}) passes the {}-byte limit",
            sparq_runtime::DEFAULT_MAX_ARENA
        ));
    }
    None
}

/// The outputs a kind has (FORMAT.md, OPS: "output_count: 1; LSTM 3 and GRU 2").
pub fn expected_outputs(kind: u16) -> usize {
    match kind {
        op::LSTM => 3,
        op::GRU => 2,
        _ => 1,
    }
}

/// FORMAT.md's rules on an op's outputs, checked on the descriptors alone: the kind's output
/// count; arena tensors whose byte ranges overlap none of the op's arena inputs nor each other
/// (two outputs naming one tensor overlap); no output a graph input.
fn op_outputs_nonconforming(model: &Model<'_>) -> Option<String> {
    let v = model.view();
    let overlap = |a: usize, b: usize| {
        let (a, b) = (v.tensor(a), v.tensor(b));
        a.storage == Storage::Arena
            && b.storage == Storage::Arena
            && a.data_size > 0
            && b.data_size > 0
            && a.data_offset < b.data_offset.saturating_add(b.data_size)
            && b.data_offset < a.data_offset.saturating_add(a.data_size)
    };
    let graph_inputs: Vec<usize> = (0..v.input_count()).map(|i| v.input(i)).collect();
    for k in 0..model.op_count() {
        let o = model.op(k);
        let want = expected_outputs(o.kind);
        if o.output_count != want {
            return Some(format!("loads with op {k} of kind {} having {} outputs, not {want}", o.kind, o.output_count));
        }
        for j in 0..o.output_count {
            let y = o.output(j);
            if v.tensor(y).storage != Storage::Arena {
                return Some(format!("loads with op {k}'s output {j} not an arena tensor"));
            }
            if graph_inputs.contains(&y) {
                return Some(format!("loads with op {k}'s output {j} a graph input"));
            }
            if (0..j).any(|i| o.output(i) == y || overlap(o.output(i), y)) {
                return Some(format!("loads with op {k}'s output {j} overlapping another output"));
            }
            if (0..o.input_count).any(|i| overlap(o.input(i), y)) {
                return Some(format!("loads with op {k}'s output {j} overlapping an input"));
            }
        }
    }
    None
}

/// Every arena operand an op reads was written before it (by a graph input or an earlier op),
/// and every graph output is written: then no output may depend on the arena's prior contents.
fn dataflow_defined(model: &Model<'_>) -> bool {
    let v = model.view();
    let mut written = vec![false; v.tensor_count()];
    for i in 0..model.input_count() {
        written[v.input(i)] = true;
    }
    for k in 0..model.op_count() {
        let o = model.op(k);
        for i in 0..o.input_count {
            let t = model.tensor(o.input(i));
            if t.storage == Storage::Arena && !written[o.input(i)] {
                return false;
            }
        }
        for j in 0..o.output_count {
            written[o.output(j)] = true;
        }
    }
    (0..model.output_count()).all(|i| written[v.output(i)])
}

/// The walk of `sparq inspect`: every descriptor, every op's kernel on every path, MACs, sizes.
fn inspect(model: &Model<'_>, paths: &[(&'static str, Features)]) -> usize {
    // Everything read is folded into one number (wrapping: the values are the file's) so that
    // nothing is optimized away.
    let mut touched = Vec::new();
    let v = model.view();
    touched.extend([model.name().len(), v.section_count as usize, v.version_minor as usize]);
    for i in 0..v.tensor_count() {
        let t = v.tensor(i);
        touched.extend([
            t.name.len(),
            t.shape().len(),
            t.elements(),
            t.zero_point as usize,
            t.scale.to_bits() as usize,
        ]);
    }
    for i in 0..model.input_count() {
        touched.extend(model.input(i).map(|t| t.shape().iter().fold(0, |a, &d| a ^ d)));
    }
    for i in 0..model.output_count() {
        touched.extend(model.output(i).map(|t| t.shape().iter().fold(0, |a, &d| a ^ d)));
    }
    for i in 0..model.op_count() {
        let o = model.op(i);
        let y = model.tensor(o.output(0));
        let x = model.tensor(o.input(0));
        touched.extend([y.shape().len(), x.shape().len(), o.name.len(), model.op_macs(i) as usize]);
        for &(_, f) in paths {
            touched.push(model.op_kernel(i, f).map_or(0, str::len));
        }
    }
    touched.extend([model.arena_size(), model.plan_size(), model.tensor_arena_size()]);
    touched.iter().fold(0usize, |a, &b| a.wrapping_add(b))
}

/// The kernel paths this CPU runs, the scalar specification first.
pub fn paths() -> Vec<(&'static str, Features)> {
    let cpu = Features::detect();
    PATHS.iter().filter_map(|p| p.on(cpu).map(|f| (p.name, f))).collect()
}

/// Run `model` once on `path` with `threads`, the arena filled with `fill` first; the bytes of
/// every output (in memory order), or the session error.
fn run_once(model: &Model<'_>, path: &str, threads: usize, fill: u8) -> Result<Vec<Vec<u8>>, String> {
    // SAFETY of set_var: the checker is single-threaded (sessions' worker threads are started
    // after this and do not read the environment).
    std::env::set_var("SPARQ_KERNELS", path);
    let mut arena = AlignedBytes::zeroed(model.arena_size());
    let bytes = arena.as_mut_slice();
    bytes.fill(fill);
    for i in 0..model.input_count() {
        if let Some(t) = model.input(i) {
            fill_input(bytes, t.data_offset, t.data_size, t.dtype);
        }
    }
    let mut session = Session::with_options(model, bytes, SessionOptions { threads, ..Default::default() })
        .map_err(|e| e.to_string())?;
    session.run();
    let mut outs = Vec::new();
    for i in 0..model.output_count() {
        let t = model.output(i).expect("output index in range");
        let data: Vec<u8> = match t.dtype {
            DType::F32 => session.tensor::<f32>(&t).iter().flat_map(|&v| canonical_nan(v).to_le_bytes()).collect(),
            DType::I8 => session.tensor::<i8>(&t).iter().map(|&v| v as u8).collect(),
            DType::I16 => session.tensor::<i16>(&t).iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::I32 => session.tensor::<i32>(&t).iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        outs.push(data);
    }
    Ok(outs)
}

/// `v`, or the one NaN `f32::NAN` for every NaN. Which NaN an operation on two NaNs returns
/// (their sign and payload) depends on the operand order, which kernel paths may change (an FMA,
/// another accumulation split), and on the CPU (x86's default NaN is negative, ARM's positive):
/// IEEE 754 leaves it open, so outputs are compared as values, every NaN equal to every NaN,
/// every other value to the bit.
pub fn canonical_nan(v: f32) -> f32 {
    if v.is_nan() {
        f32::NAN
    } else {
        v
    }
}

/// An `.npy` file's bytes with every NaN of an `<f4` array made [`canonical_nan`] (other files
/// unchanged), for comparing the CLI's outputs as [`check`] compares a session's.
pub fn canonical_npy(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() < 10 || !out.starts_with(b"\x93NUMPY\x01\x00") {
        return out;
    }
    let start = 10 + u16::from_le_bytes([out[8], out[9]]) as usize;
    if start > out.len() || !out[10..start].windows(5).any(|w| w == b"'<f4'") {
        return out;
    }
    for c in out[start..].chunks_exact_mut(4) {
        let v = canonical_nan(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        c.copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn compare(want: &[Vec<u8>], got: Result<Vec<Vec<u8>>, String>, run: &str) -> Option<Mismatch> {
    match got {
        Err(e) => Some(Mismatch { run: run.into(), output: usize::MAX, detail: format!("Session::new failed: {e}") }),
        Ok(got) => want.iter().zip(&got).position(|(a, b)| a != b).map(|i| {
            let at = want[i].iter().zip(&got[i]).position(|(a, b)| a != b).unwrap_or(0);
            Mismatch { run: run.into(), output: i, detail: format!("first differing byte {at}") }
        }),
    }
}

/// Load, inspect and run `bytes` as the CLI would, on every kernel path.
pub fn check(bytes: &[u8]) -> Outcome {
    let aligned = AlignedBytes::from_slice(bytes);
    let model = match Model::from_bytes(aligned.as_slice()) {
        Ok(m) => m,
        Err(e) => return Outcome::refused(e.to_string()),
    };
    let paths = paths();
    std::hint::black_box(inspect(&model, &paths));
    let mut outcome = Outcome {
        loaded: Ok(()),
        ran: false,
        mismatch: None,
        paths: Vec::new(),
        nonconforming: nonconforming(aligned.as_slice(), &model),
    };
    if model.arena_size() > ARENA_LIMIT {
        return outcome;
    }
    let previous = std::env::var_os("SPARQ_KERNELS");
    const FILL: u8 = 0xA5;
    // The path the others are compared with: scalar, or (`SPARQ_FUZZ_REFERENCE=avx2`, for large
    // models whose scalar run takes a second) another one, the scalar path then not run.
    let reference = std::env::var("SPARQ_FUZZ_REFERENCE")
        .ok()
        .and_then(|r| paths.iter().find(|p| p.0 == r).map(|p| p.0))
        .unwrap_or("scalar");
    let want = match run_once(&model, reference, 1, FILL) {
        Ok(w) => w,
        Err(e) => {
            outcome.mismatch = Some(Mismatch {
                run: reference.into(),
                output: usize::MAX,
                detail: format!("Session::new failed: {e}"),
            });
            return outcome;
        }
    };
    outcome.ran = true;
    outcome.paths.push(reference);
    let best = paths.last().map_or("scalar", |p| p.0);
    for &(name, _) in paths.iter().filter(|p| p.0 != reference && p.0 != "scalar") {
        outcome.paths.push(name);
        if let Some(m) = compare(&want, run_once(&model, name, 1, FILL), name) {
            outcome.mismatch = Some(m);
            break;
        }
    }
    if outcome.mismatch.is_none() {
        outcome.mismatch = compare(&want, run_once(&model, best, 2, FILL), "threads=2");
    }
    if outcome.mismatch.is_none() && dataflow_defined(&model) {
        outcome.mismatch = compare(&want, run_once(&model, best, 1, !FILL), "refill");
    }
    match previous {
        Some(v) => std::env::set_var("SPARQ_KERNELS", v),
        None => std::env::remove_var("SPARQ_KERNELS"),
    }
    outcome
}
