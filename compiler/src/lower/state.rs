//! The lowering's state, shared by the parts of `lower/` (each adds its methods), and what the
//! report says about each node.

use super::packing::{MatrixKernel, SparseChoice};
use crate::ir::{Graph, Range};
use crate::quant::{Precision, QParams};
use sparq_format::layout::Pack;
use sparq_format::writer::ModelSpec;
use std::collections::HashMap;

/// What the report says about each IR node.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    pub name: String,
    pub op: String,
    pub precision: Precision,
    pub weight_bytes: usize,
    /// Int8 weight matrices (convolutions with one group, fully-connected): dense or sparse.
    pub matrix: Option<MatrixKernel>,
    /// Why an op with an int8 kernel runs in f32 anyway (lowering's own choice, see
    /// `lower::SUB_OF_F32_OPERANDS`).
    pub why_f32: Option<&'static str>,
    /// Why a layer asked to run in int16 runs in int8 (`lower::INT16_OVERFLOW`, ...).
    pub why_not_int16: Option<&'static str>,
}

/// The state of one lowering: the graph, the statistics, the program being written and what
/// the report will say. Its methods live with their parts: `layout.rs` (tensor variants and
/// conversions), `write.rs` (emitting), `packing.rs` (matrix storage), `mod.rs` (the per-node
/// lowering).
pub(super) struct Lowerer<'g> {
    pub(super) g: &'g Graph,
    pub(super) ranges: &'g HashMap<String, Range>,
    /// Unclipped ranges for int16 tensors (`Stats::extremes`; `ranges` where missing).
    pub(super) extremes: &'g HashMap<String, Range>,
    pub(super) means: &'g HashMap<String, Vec<f32>>,
    pub(super) spec: ModelSpec,
    /// (IR tensor, dtype, layout) -> runtime tensor
    pub(super) variants: HashMap<(usize, u8, u8), u32>,
    pub(super) qparams: HashMap<usize, QParams>,
    /// Int16 quantization of IR tensors that have an int16 variant (format 1.6).
    pub(super) qparams16: HashMap<usize, QParams>,
    /// Nodes asked to run with int16 activations (`LowerOptions::int16`).
    pub(super) int16_node: Vec<bool>,
    pub(super) layers: Vec<LayerInfo>,
    /// Precision chosen for each IR node.
    pub(super) float_node: Vec<bool>,
    /// Subs kept in f32 because their operands are f32 (`keep_f32_subs`).
    pub(super) sub_of_f32_operands: Vec<bool>,
    /// Reshapes kept in f32 between f32 layers (`lower::RESHAPE_BETWEEN_F32`).
    pub(super) reshape_between_f32: Vec<bool>,
    /// The graph's input is a uint8 frame (`--input-dtype u8`).
    pub(super) frames: Option<super::FrameInput>,
    pub(super) pack: Option<Pack>,
    pub(super) sparse: SparseChoice,
    /// Weights rounded from calibration data, by layer name (`LowerOptions::rounded`).
    pub(super) rounded: std::sync::Arc<HashMap<String, crate::quant::RoundedWeights>>,
    /// Those of int16 layers where they differ (`LowerOptions::rounded_int16`).
    pub(super) rounded_int16: std::sync::Arc<HashMap<String, crate::quant::RoundedWeights>>,
    /// The matrix kernel chosen for the node being lowered.
    pub(super) matrix: Option<MatrixKernel>,
}
