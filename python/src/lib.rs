//! `sparq._sparq`: the native half of the `sparq` Python package (`sparq/__init__.py` is the
//! other). Compiling, benchmarking and evaluating go through the CLI's own code (`sparq::api`),
//! so a call and the matching `sparq` command give the same files and numbers; sessions run the
//! runtime directly on a model loaded once.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyTuple};
use sparq::api::{self, ApiError, Value};
use sparq_runtime::format::{DType, Layout};
use sparq_runtime::{AlignedBytes, Model, RuntimeError, Session as RtSession, SessionOptions};

create_exception!(
    _sparq,
    Error,
    PyException,
    "A sparq error: bad input or a failed step, with the one-line message the `sparq` CLI prints."
);

fn failed(e: impl std::fmt::Display) -> PyErr {
    Error::new_err(e.to_string())
}

fn api_err(e: ApiError) -> PyErr {
    match e {
        ApiError::Usage(m) => PyTypeError::new_err(m),
        ApiError::Failed(m) => Error::new_err(m),
    }
}

/// Keyword arguments as option values: `True`/`False`, a list or tuple (several values), or one
/// value taken as its `str()` (numbers, strings, paths); `None` leaves the option at its default.
fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, Value)>> {
    let mut out = Vec::new();
    if let Some(kw) = kwargs {
        for (k, v) in kw.iter() {
            let key: String = k.extract()?;
            if v.is_none() {
                continue;
            }
            let value = if v.is_instance_of::<PyBool>() {
                Value::Bool(v.extract()?)
            } else if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
                Value::Values(v.try_iter()?.map(|x| x?.str().map(|s| s.to_string())).collect::<PyResult<_>>()?)
            } else {
                Value::Values(vec![v.str()?.to_string()])
            };
            out.push((key, value));
        }
    }
    Ok(out)
}

/// Compile an ONNX file (see `sparq.compile`). `calib_arrays`: named `.npy` byte strings. Returns the
/// `.sparq` bytes and the compile report.
#[pyfunction]
#[pyo3(signature = (model, output_path, calib_arrays, **kwargs))]
fn compile<'py>(
    py: Python<'py>,
    model: &str,
    output_path: Option<&str>,
    calib_arrays: Option<Vec<(String, Vec<u8>)>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Bound<'py, PyBytes>, String)> {
    let opts = options(kwargs)?;
    let (model, output_path) = (model.to_string(), output_path.map(str::to_string));
    // Minutes for a large model: other Python threads run meanwhile.
    let c = py.detach(move || api::compile(&model, output_path.as_deref(), calib_arrays, opts)).map_err(api_err)?;
    Ok((PyBytes::new(py, &c.bytes), c.report))
}

/// Time a `.sparq` model (see `sparq.bench`); returns `sparq bench --json`'s object as text.
#[pyfunction(name = "bench")]
#[pyo3(signature = (model, **kwargs))]
fn bench_json(py: Python<'_>, model: &str, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
    let (model, opts) = (model.to_string(), options(kwargs)?);
    py.detach(move || api::bench(&model, opts)).map_err(api_err)
}

/// Evaluate a `.sparq` model (see `sparq.eval`); returns `sparq eval --json`'s object as text.
#[pyfunction(name = "eval")]
#[pyo3(signature = (model, data_arrays, label_npy, **kwargs))]
fn eval_json(
    py: Python<'_>,
    model: &str,
    data_arrays: Option<Vec<(String, Vec<u8>)>>,
    label_npy: Option<Vec<u8>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<String> {
    let (model, opts) = (model.to_string(), options(kwargs)?);
    py.detach(move || api::eval(&model, data_arrays, label_npy, opts)).map_err(api_err)
}

/// The model file's bytes and the session's arena. Boxed: their heap addresses do not move
/// while the [`Session`] that borrows them lives.
struct Owned {
    bytes: AlignedBytes,
    arena: AlignedBytes,
}

/// A tensor's interface: name, dtype as numpy names it, the shape numpy arrays must have (the
/// memory order of a uint8 NHWC input: N, H, W, C), and its element count.
#[derive(Clone)]
struct Port {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    elements: usize,
}

fn port(t: &sparq_runtime::format::reader::TensorInfo<'_>) -> Port {
    let s = t.shape();
    let (dtype, shape) = match t.dtype {
        // A model compiled for camera frames (`input_dtype="u8"`) takes uint8 in its input's layout.
        DType::I8 if t.layout == Layout::Nhwc && s.len() == 4 => ("uint8", vec![s[0], s[2], s[3], s[1]]),
        DType::I8 => ("uint8", s.to_vec()),
        _ => ("float32", s.to_vec()),
    };
    Port { name: t.name.to_string(), dtype, shape, elements: t.elements() }
}

/// A loaded `.sparq` model and one session on it (arena allocated and plan decoded once).
#[pyclass(unsendable)]
struct Session {
    // Dropped in field order: the session, then the model, then the buffers both borrow.
    session: RtSession<'static, 'static>,
    model: Box<Model<'static>>,
    _owned: Box<Owned>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

#[pymethods]
impl Session {
    /// A session on the file at `path`, or on a model's bytes (`data`).
    #[new]
    #[pyo3(signature = (path, data, threads=1))]
    fn new(path: Option<&str>, data: Option<Vec<u8>>, threads: usize) -> PyResult<Self> {
        if threads == 0 {
            return Err(failed("threads must be at least 1"));
        }
        let (path, data) = match (path, data) {
            (_, Some(d)) => ("the model's bytes", d),
            (Some(p), None) => (p, std::fs::read(p).map_err(|e| failed(format!("cannot read {p}: {e}")))?),
            (None, None) => return Err(failed("give a .sparq path or a model's bytes")),
        };
        let mut owned = Box::new(Owned { bytes: AlignedBytes::from_slice(&data), arena: AlignedBytes::zeroed(0) });
        drop(data);
        // SAFETY: the bytes are `owned.bytes`' heap buffer, which is neither moved (the `Box`
        // keeps `Owned` in place and `bytes` is never reassigned) nor freed before the model and
        // the session that borrow it: the struct's fields drop in declaration order.
        let bytes: &'static [u8] = unsafe { &*(owned.bytes.as_slice() as *const [u8]) };
        let model = Box::new(Model::from_bytes(bytes).map_err(|e| failed(format!("{path}: {e}")))?);
        let len = model.check_arena(sparq_runtime::DEFAULT_MAX_ARENA).map_err(|e| failed(format!("{path}: {e}")))?;
        owned.arena = AlignedBytes::try_zeroed(len).map_err(failed)?;
        // SAFETY: as above, for the boxed model and the arena's heap buffer (assigned once, here,
        // before anything borrows it; only the session uses it).
        let (m, arena): (&'static Model<'static>, &'static mut [u8]) =
            unsafe { (&*(&*model as *const Model<'static>), &mut *(owned.arena.as_mut_slice() as *mut [u8])) };
        let opts = SessionOptions { threads, max_arena: sparq_runtime::DEFAULT_MAX_ARENA };
        let session = RtSession::with_options(m, arena, opts).map_err(failed)?;
        let inputs = (0..model.input_count()).filter_map(|i| model.input(i)).map(|t| port(&t)).collect();
        let outputs = (0..model.output_count()).filter_map(|i| model.output(i)).map(|t| port(&t)).collect();
        Ok(Session { session, model, _owned: owned, inputs, outputs })
    }

    /// Inputs as (name, numpy dtype, shape), in order.
    #[getter]
    fn inputs(&self) -> Vec<(String, &'static str, Vec<usize>)> {
        self.inputs.iter().map(|p| (p.name.clone(), p.dtype, p.shape.clone())).collect()
    }

    /// Outputs as (name, numpy dtype, shape), in order.
    #[getter]
    fn outputs(&self) -> Vec<(String, &'static str, Vec<usize>)> {
        self.outputs.iter().map(|p| (p.name.clone(), p.dtype, p.shape.clone())).collect()
    }

    /// The kernel set this CPU runs (e.g. `avx2`, `neon`).
    #[getter]
    fn kernels(&self) -> &'static str {
        self.session.kernels()
    }

    /// The session's threads.
    #[getter]
    fn threads(&self) -> usize {
        self.session.threads()
    }

    /// Run `count` samples: each input's bytes hold `count` samples back to back (little-endian
    /// f32, or uint8 for a frame input). Returns each output's bytes (`count` samples, f32). The
    /// GIL is released while they run.
    fn run<'py>(&mut self, py: Python<'py>, inputs: Vec<Vec<u8>>, count: usize) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        if inputs.len() != self.inputs.len() {
            return Err(failed(format!("the model takes {} input(s), got {}", self.inputs.len(), inputs.len())));
        }
        for (p, b) in self.inputs.iter().zip(&inputs) {
            let size = if p.dtype == "uint8" { 1 } else { 4 };
            if b.len() != count * p.elements * size {
                return Err(failed(format!(
                    "input '{}': {} bytes for {count} sample(s) of {} {} values",
                    p.name,
                    b.len(),
                    p.elements,
                    p.dtype
                )));
            }
        }
        // The samples run with the GIL released, so other Python threads (with their own
        // sessions) run meanwhile; this session is borrowed mutably for the call and is
        // `unsendable`, so nothing else touches it.
        let job = RunJob { session: &mut self.session, inputs: &self.inputs, outputs: &self.outputs };
        let outs = py.detach(move || job.run(&inputs, count)).map_err(run_err)?;
        Ok(outs.iter().map(|b| PyBytes::new(py, b)).collect())
    }

    fn __repr__(&self) -> String {
        let ports =
            |ps: &[Port]| ps.iter().map(|p| format!("{}: {} {:?}", p.name, p.dtype, p.shape)).collect::<Vec<_>>();
        format!(
            "Session({}, inputs=[{}], outputs=[{}], threads={}, kernels={})",
            self.model.name(),
            ports(&self.inputs).join(", "),
            ports(&self.outputs).join(", "),
            self.session.threads(),
            self.session.kernels()
        )
    }
}

/// What [`Session::run`] needs while the GIL is released: the session and the ports, no Python
/// object.
struct RunJob<'a> {
    session: &'a mut RtSession<'static, 'static>,
    inputs: &'a [Port],
    outputs: &'a [Port],
}

// SAFETY: the job is moved to no other thread: `Python::detach` runs it on the calling thread
// with the GIL released. `Send` is what `detach` asks of its closure, because it cannot tell;
// the session's raw pointers (arena, plan) are used by this thread alone, and `Session` is
// `unsendable` and mutably borrowed for the whole call.
unsafe impl Send for RunJob<'_> {}

impl RunJob<'_> {
    /// Each output's bytes for `count` samples (little-endian f32).
    fn run(self, inputs: &[Vec<u8>], count: usize) -> Result<Vec<Vec<u8>>, RuntimeError> {
        let mut outs: Vec<Vec<u8>> = self.outputs.iter().map(|p| Vec::with_capacity(count * p.elements * 4)).collect();
        let mut x: Vec<f32> = Vec::new();
        for s in 0..count {
            for (i, (p, b)) in self.inputs.iter().zip(inputs).enumerate() {
                if p.dtype == "uint8" {
                    self.session.set_input_u8(i, &b[s * p.elements..(s + 1) * p.elements])?;
                } else {
                    let bytes = &b[s * p.elements * 4..(s + 1) * p.elements * 4];
                    x.clear();
                    x.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
                    self.session.set_input(i, &x)?;
                }
            }
            self.session.run();
            for (o, acc) in outs.iter_mut().enumerate() {
                let y = self.session.output(o)?;
                acc.extend(y.iter().flat_map(|v| v.to_le_bytes()));
            }
        }
        Ok(outs)
    }
}

fn run_err(e: RuntimeError) -> PyErr {
    failed(e)
}

/// The `.sparq` format version this build writes and reads, and the crate version.
#[pyfunction]
fn version() -> String {
    format!(
        "{} (.sparq format {}.{})",
        env!("CARGO_PKG_VERSION"),
        sparq_runtime::format::layout::VERSION_MAJOR,
        sparq_runtime::format::layout::VERSION_MINOR
    )
}

#[pymodule]
fn _sparq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(bench_json, m)?)?;
    m.add_function(wrap_pyfunction!(eval_json, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_class::<Session>()?;
    Ok(())
}
