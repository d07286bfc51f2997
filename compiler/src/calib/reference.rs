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
    /// tract's inputs (in its order): the graph input each is, and its shape.
    inputs: Vec<(usize, Vec<usize>)>,
    /// Element count of each graph input, in the graph's order (a sample concatenates them).
    lens: Vec<usize>,
    /// Names of the outputs of `run`, in order.
    pub names: Vec<String>,
}

fn terr(e: impl std::fmt::Display) -> CompileError {
    CompileError::Reference(e.to_string())
}

impl Reference {
    /// Load `onnx` in tract with the graph's (static) input shapes, exposing `names` as outputs.
    pub fn new(onnx: &[u8], g: &Graph, names: Vec<String>) -> Result<Reference> {
        BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let inlined;
        let onnx = if g.branches.is_empty() {
            onnx
        } else {
            inlined = crate::onnx::import::inline_branches(onnx, &g.branches)?;
            &inlined[..]
        };
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(terr)?;
        // tract's inputs by name: the ONNX graph inputs that are not initializers, as sparq's.
        let outlets = model.input_outlets().map_err(terr)?.to_vec();
        let mut inputs = Vec::with_capacity(outlets.len());
        for (k, o) in outlets.iter().enumerate() {
            let name = model.node(o.node).name.clone();
            let pos = g.inputs.iter().position(|&t| g.tensors[t].name == name).ok_or_else(|| {
                CompileError::Reference(format!("tract's input '{name}' is not an input of the imported graph"))
            })?;
            let shape = g.tensors[g.inputs[pos]].shape.clone();
            model.set_input_fact(k, f32::fact(&shape).into()).map_err(terr)?;
            inputs.push((pos, shape));
        }
        model.select_outputs_by_name(names.iter()).map_err(terr)?;
        let plan = model.into_optimized().map_err(terr)?.into_runnable().map_err(terr)?;
        Ok(Reference { plan, inputs, lens: g.input_lens(), names })
    }

    /// A sample (the graph inputs' values concatenated) as tract's input tensors.
    fn tensors(&self, sample: &[f32]) -> Result<TVec<TValue>> {
        let pieces = crate::data::split_sample(sample, &self.lens);
        self.inputs
            .iter()
            .map(|(pos, shape)| Ok(Tensor::from_shape(shape, pieces[*pos]).map_err(terr)?.into()))
            .collect()
    }

    /// Run one sample; returns only the named tensor `i` (the others are computed, not copied).
    pub fn run_one(&self, input: &[f32], i: usize) -> Result<Vec<f32>> {
        let out = self.plan.run(self.tensors(input)?).map_err(terr)?;
        let v = out.get(i).ok_or_else(|| CompileError::Reference(format!("no output {i}")))?;
        values(v)
    }

    /// Run one sample; returns each named tensor, row-major in ONNX order.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>> {
        let out = self.plan.run(self.tensors(input)?).map_err(terr)?;
        out.iter().map(values).collect()
    }
}

/// A tract output as f32 values (integer outputs, e.g. ArgMax's int64 indices, converted).
fn values(v: &TValue) -> Result<Vec<f32>> {
    let t = v.cast_to::<f32>().map_err(terr)?;
    Ok(t.to_plain_array_view::<f32>().map_err(terr)?.iter().copied().collect())
}
