//! The float reference: the original ONNX model run by tract (independent of sparq's own
//! import and runtime). Evaluation compares sparq's outputs with tract's.

use crate::error::{CompileError, Result};
use crate::ir::Graph;
use tract_onnx::prelude::*;

/// tract models built so far in this process (each [`Reference::new`] parses and optimizes the
/// whole model); a compile builds one.
static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many float references (tract models) this process has built.
pub fn builds() -> usize {
    BUILDS.load(std::sync::atomic::Ordering::Relaxed)
}

pub struct Reference {
    plan: std::sync::Arc<TypedSimplePlan>,
    input_shape: Vec<usize>,
    /// Names of the outputs of `run`, in order.
    pub names: Vec<String>,
}

fn terr(e: impl std::fmt::Display) -> CompileError {
    CompileError::Reference(e.to_string())
}

impl Reference {
    /// Load `onnx` in tract with the graph's (static) input shape, exposing `names` as outputs.
    pub fn new(onnx: &[u8], g: &Graph, names: Vec<String>) -> Result<Reference> {
        if g.inputs.len() != 1 {
            return Err(CompileError::SeveralInputs(g.inputs.len()));
        }
        let input_shape = g.tensors[g.inputs[0]].shape.clone();
        BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(terr)?;
        model.set_input_fact(0, f32::fact(&input_shape).into()).map_err(terr)?;
        model.select_outputs_by_name(names.iter()).map_err(terr)?;
        let plan = model.into_optimized().map_err(terr)?.into_runnable().map_err(terr)?;
        Ok(Reference { plan, input_shape, names })
    }

    /// Run one sample; returns only the named tensor `i` (the others are computed, not copied).
    pub fn run_one(&self, input: &[f32], i: usize) -> Result<Vec<f32>> {
        let t = Tensor::from_shape(&self.input_shape, input).map_err(terr)?;
        let out = self.plan.run(tvec!(t.into())).map_err(terr)?;
        let v = out.get(i).ok_or_else(|| CompileError::Reference(format!("no output {i}")))?;
        values(v)
    }

    /// Run one sample; returns each named tensor, row-major in ONNX order.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let t = Tensor::from_shape(&self.input_shape, input).map_err(terr)?;
        let out = self.plan.run(tvec!(t.into())).map_err(terr)?;
        out.iter().map(values).collect()
    }
}

/// A tract output as f32 values (integer outputs, e.g. ArgMax's int64 indices, converted).
fn values(v: &TValue) -> Result<Vec<f32>> {
    let t = v.cast_to::<f32>().map_err(terr)?;
    Ok(t.to_plain_array_view::<f32>().map_err(terr)?.iter().copied().collect())
}
