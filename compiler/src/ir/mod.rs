//! sparq's graph IR: static shapes, f32 compute tensors, constants held as f32 (weights) or i64
//! (shape arithmetic, folded away at import).

pub mod frames;
pub mod rewrite;
pub mod stats;

pub use stats::{Range, Stats};

/// A fused activation: the output is clamped to `[lo, hi]` (ReLU: `[0, inf]`, ReLU6: `[0, 6]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Act {
    pub lo: f32,
    pub hi: f32,
}

impl Act {
    pub const NONE: Act = Act { lo: f32::NEG_INFINITY, hi: f32::INFINITY };
    pub fn is_none(&self) -> bool {
        *self == Act::NONE
    }
    pub fn then(self, other: Act) -> Act {
        Act { lo: self.lo.max(other.lo), hi: self.hi.min(other.hi) }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Weights `[O, I/group, KH, KW]` and optional bias are inputs 1 and 2 (constants).
    Conv {
        window: Window,
        group: usize,
        act: Act,
    },
    /// `y = x . W^T + b` with constant `W` `[N, K]` (input 1) and bias `[N]` (input 2);
    /// Gemm and MatMul with a constant right operand are normalized to this.
    Dense {
        act: Act,
    },
    Add {
        act: Act,
    },
    Mul {
        act: Act,
    },
    Clip {
        act: Act,
    },
    /// Pooling over `window`; a 3-d one (`[N, C, D, H, W]`) also over `depth`, a window over
    /// `[D, H*W]` with kernel `[kd, 1]`, applied first.
    MaxPool {
        window: Window,
        depth: Option<Window>,
    },
    AveragePool {
        window: Window,
        depth: Option<Window>,
        count_include_pad: bool,
    },
    GlobalAveragePool,
    /// Flatten and Reshape: the output shape is the tensor's shape.
    Reshape,
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
    },
    /// Inference BatchNormalization not foldable into a producer: `y = x * scale[c] + shift[c]`
    /// (inputs 1 and 2, constants `[C]`).
    ChannelAffine {
        act: Act,
    },
    /// An element-wise function (`sparq_format::layout::op::unary` codes: sigmoid, tanh,
    /// hard-swish, GELU, ...) with its parameters; f32 in the runtime's UNARY op, int8 as a
    /// lookup table.
    Unary {
        function: i32,
        alpha: f32,
        beta: f32,
        /// `y = post[0] * f(x) + post[1]`: a scalar affine the graph applies after the function
        /// (absorbed by `rewrite::fold_unary_affine`; in int8 it is part of the lookup table).
        post: [f32; 2],
    },
    /// Output axis `i` is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Output axis `i` reads input index `starts[i] + j * steps[i]` (the output's shape gives the
    /// count; steps are non-zero, possibly negative).
    Slice {
        starts: Vec<usize>,
        steps: Vec<i64>,
    },
    /// Spatial resize of `[N, C, H, W]` (the runtime's RESIZE codes: `coord`, `nearest`), with
    /// the scales the coordinate transformation divides by.
    Resize {
        linear: bool,
        /// Cubic (then `linear` is false): Keys' coefficient `a` and exclude_outside.
        cubic: Option<(f32, bool)>,
        coord: i32,
        nearest: i32,
        scales: [f32; 2],
    },
    /// Transposed convolution: weights `[C_in, C_out/group, KH, KW]` and bias (inputs 1, 2,
    /// constants); `window.pads` crop the full output (output padding is in the output shape).
    ConvTranspose {
        window: Window,
        group: usize,
    },
    /// Padding before and after each axis; `mode` 0 constant (`value`), 1 reflect, 2 edge.
    Pad {
        before: Vec<usize>,
        after: Vec<usize>,
        mode: i32,
        value: f32,
    },
    /// Product of two tensors, at least one computed (`[.., M, K] x [.., K, N]`, batch axes
    /// broadcast; 1-d operands as numpy's `matmul` takes them), either operand stored transposed;
    /// with a third input `c` (Gemm), `alpha a b + beta c`, c broadcast to the output.
    MatMul {
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    },
    /// Sub, Div, Min, Max, Pow (`sparq_format::layout::op::binary` codes) with numpy
    /// broadcasting; Min and Max take two or more inputs (folded left).
    Binary {
        function: i32,
    },
    /// A reduction (`sparq_format::layout::op::reduce` codes) over `axes`; the output shape keeps
    /// them with size 1 (keepdims) or drops them.
    Reduce {
        function: i32,
        axes: Vec<usize>,
        select_last: bool,
    },
    /// `(x - mean) / sqrt(var + eps)` over the axes from `axis` on, then `* scale + bias` (inputs
    /// 1 and 2, constants): of the normalized shape (LayerNormalization), or per channel (axis 1)
    /// when `per_channel` (InstanceNormalization, normalizing the axes from 2 on).
    Normalize {
        axis: usize,
        eps: f32,
        per_channel: bool,
        /// LayerNormalization's optional outputs Mean and InvStdDev (node outputs 1 and 2 when
        /// present, keepdims shapes).
        stats: [bool; 2],
    },
    /// Gather along `axis` with constant indices (input 1, non-negative integers held as f32).
    Gather {
        axis: usize,
    },
    /// A reshape to `shape`, a transpose by `perm`, then a reshape to the output's shape
    /// (DepthToSpace, SpaceToDepth).
    Shuffle {
        shape: Vec<usize>,
        perm: Vec<usize>,
    },
    /// Tile and Expand: the input, with leading 1s up to the output's rank, repeated along each
    /// axis (output size / input size times).
    Tile,
    /// ONNX LSTM (`lstm`) or GRU with default activations: inputs x `[T, B, I]`, W, R, bias
    /// (constants, ONNX layouts), h0 (and c0 for the LSTM) `[D, B, H]`; `outputs` says which of
    /// y `[T, D, B, H]`, y_h and y_c are the node's outputs (in that order).
    /// `cond != 0 ? a : b` (inputs cond, a, b), numpy broadcasting.
    Where,
    Recurrent {
        lstm: bool,
        /// 0 forward, 1 reverse, 2 bidirectional.
        direction: i32,
        clip: f32,
        linear_before_reset: bool,
        outputs: [bool; 3],
        /// ONNX `layout=1`: X `[batch, seq, input]`, states `[batch, dirs, hidden]`, Y `[batch,
        /// seq, dirs, hidden]` (the lowering transposes around the runtime's seq-first op).
        batch_first: bool,
    },
}

impl Op {
    /// Whether the op has no int8 kernel: in an int8 model it runs in f32 between a dequantize
    /// and a quantize (the report lists it).
    pub fn float_only(&self) -> bool {
        use sparq_format::layout::op::binary;
        match self {
            Op::Resize { cubic: Some(_), .. }
            | Op::MatMul { .. }
            | Op::Reduce { .. }
            | Op::Normalize { .. }
            | Op::Recurrent { .. }
            | Op::Where => true,
            Op::Binary { function } => !matches!(*function, binary::SUB | binary::MIN | binary::MAX),
            _ => false,
        }
    }
}

impl Op {
    pub fn act(&self) -> Option<Act> {
        match self {
            Op::Conv { act, .. }
            | Op::Dense { act }
            | Op::Add { act }
            | Op::Mul { act }
            | Op::ChannelAffine { act } => Some(*act),
            _ => None,
        }
    }
    pub fn act_mut(&mut self) -> Option<&mut Act> {
        match self {
            Op::Conv { act, .. }
            | Op::Dense { act }
            | Op::Add { act }
            | Op::Mul { act }
            | Op::ChannelAffine { act } => Some(act),
            _ => None,
        }
    }
    pub fn type_name(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::Dense { .. } => "Dense",
            Op::Add { .. } => "Add",
            Op::Mul { .. } => "Mul",
            Op::Clip { .. } => "Clip",
            Op::MaxPool { .. } => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Reshape => "Reshape",
            Op::Concat { .. } => "Concat",
            Op::Softmax { .. } => "Softmax",
            Op::ChannelAffine { .. } => "ChannelAffine",
            Op::Unary { function, .. } => sparq_format::layout::op::unary::name(*function).unwrap_or("Unary"),
            Op::Transpose { .. } => "Transpose",
            Op::Slice { .. } => "Slice",
            Op::Resize { .. } => "Resize",
            Op::Pad { .. } => "Pad",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::MatMul { .. } => "MatMul",
            Op::Binary { function } => sparq_format::layout::op::binary::name(*function).unwrap_or("Binary"),
            Op::Reduce { function, .. } => sparq_format::layout::op::reduce::name(*function).unwrap_or("Reduce"),
            Op::Normalize { .. } => "Normalize",
            Op::Gather { .. } => "Gather",
            Op::Shuffle { .. } => "Shuffle",
            Op::Tile => "Tile",
            Op::Where => "Where",
            Op::Recurrent { lstm: true, .. } => "LSTM",
            Op::Recurrent { .. } => "GRU",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// Constant value (f32), row-major.
    pub value: Option<Vec<f32>>,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    /// ONNX op type this node came from (for reports).
    pub onnx_op: String,
    pub op: Op,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    /// The If nodes the importer resolved at compile time (by name, or first output when
    /// unnamed) and whether their then-branch was taken: the float reference runs the ONNX model
    /// with those branches spliced in (`import::inline_branches`), so it sees every tensor name.
    pub branches: Vec<(String, bool)>,
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

impl Graph {
    /// Each graph input's element count, in input order (a sample of a several-input model is
    /// these inputs' values concatenated: see `data::concat_samples`).
    pub fn input_lens(&self) -> Vec<usize> {
        self.inputs.iter().map(|&i| self.tensors[i].elements()).collect()
    }
    pub fn is_const(&self, t: usize) -> bool {
        self.tensors[t].value.is_some()
    }
    pub fn value(&self, t: usize) -> &[f32] {
        self.tensors[t].value.as_deref().unwrap_or(&[])
    }
    /// Nodes consuming tensor `t`.
    pub fn consumers(&self, t: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&n| self.nodes[n].inputs.contains(&t)).collect()
    }
    pub fn producer(&self, t: usize) -> Option<usize> {
        self.nodes.iter().position(|n| n.outputs.contains(&t))
    }
    /// Total multiply-accumulates of the compute nodes.
    pub fn macs(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Conv { .. } | Op::Dense { .. } => {
                    let w = &self.tensors[n.inputs[1]];
                    let per_out: usize = w.shape[1..].iter().product();
                    let out = &self.tensors[n.outputs[0]];
                    let out_channels = w.shape[0];
                    (out.elements() / out_channels.max(1) * out_channels * per_out) as u64
                }
                Op::MatMul { trans_a, .. } => {
                    let a = &self.tensors[n.inputs[0]].shape;
                    let k = match (a.len(), trans_a) {
                        (1, _) => a[0],
                        (r, false) => a[r - 1],
                        (r, true) => a[r - 2],
                    };
                    (self.tensors[n.outputs[0]].elements() * k) as u64
                }
                _ => 0,
            })
            .sum()
    }
    /// Bytes of f32 weights.
    pub fn weight_bytes(&self) -> usize {
        let mut used: Vec<usize> =
            self.nodes.iter().flat_map(|n| n.inputs.iter().copied()).filter(|&t| self.is_const(t)).collect();
        used.sort_unstable();
        used.dedup();
        used.iter().map(|&t| self.tensors[t].elements() * 4).sum()
    }
}
