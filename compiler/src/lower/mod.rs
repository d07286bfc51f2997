//! IR -> runtime program (`ModelSpec`): picks each node's precision, quantizes weights and
//! activations, lays out tensors (rank-4 activations NHWC), inserts quantize / dequantize /
//! layout conversions where neighbours disagree, and plans the arena.

pub mod plan;
pub mod target;

pub use crate::ir::{Range, Stats};
pub use crate::quant::{quantize_per_channel, Precision};

use crate::error::{invalid, Result};
use crate::ir::*;
use crate::quant::{act_qparams, QParams};
use sparq_format::layout::op::{self as rop, window as win};
use sparq_format::layout::{Pack, OP_PARAMS};
use sparq_format::writer::{ModelSpec, OpSpec, TensorSpec};
use sparq_format::{sparse, DType, Layout};
use sparq_runtime::quant::{quantize_f32, quantize_multiplier};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    pub precision: Precision,
    /// Nodes kept in f32 inside an int8 model.
    pub keep_float: HashSet<String>,
    /// Panel packing for int8 convolution (one group) and fully-connected weights, for the
    /// target's GEMM kernels; `None` writes them row-major.
    pub pack: Option<Pack>,
    /// Which of those weight matrices are stored block-sparse (for the sparse kernels).
    pub sparse: SparseChoice,
}

/// How the compiler picks between the dense and the block-sparse kernel for each int8 weight
/// matrix (convolutions with one group, fully-connected layers with int8 output).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SparseChoice {
    /// Never block-sparse.
    #[default]
    Never,
    /// Every matrix with at least one all-zero 16x4 block.
    Always,
    /// The target's measured crossover: sparse when the block density is below the crossover
    /// for the layer's reduction length (see `Target::sparse_crossover`).
    Crossover(target::Target),
}

/// How a layer's weight matrix is stored and run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixKernel {
    /// Fraction of its 16x4 blocks holding a non-zero weight.
    pub block_density: f64,
    /// Stored block-sparse (run by the sparse kernel); else dense.
    pub sparse: bool,
    /// Bytes of the matrix as stored.
    pub bytes: usize,
}

/// What the report says about each IR node.
#[derive(Clone, Debug)]
pub struct LayerInfo {
    pub name: String,
    pub op: String,
    pub precision: Precision,
    pub weight_bytes: usize,
    /// Int8 weight matrices (convolutions with one group, fully-connected): dense or sparse.
    pub matrix: Option<MatrixKernel>,
}

fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
fn bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `[O, I/g, KH, KW]` -> `[O, KH, KW, I/g]`.
fn ohwi(w: &[f32], shape: &[usize]) -> Vec<f32> {
    let (o, i, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![0f32; w.len()];
    for a in 0..o {
        for b in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((a * kh + y) * kw + x) * i + b] = w[((a * i + b) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// Depthwise `[C, 1, KH, KW]` -> `[1, KH, KW, C]`.
fn hwc(w: &[f32], shape: &[usize]) -> Vec<f32> {
    let (c, kh, kw) = (shape[0], shape[2], shape[3]);
    let mut out = vec![0f32; w.len()];
    for a in 0..c {
        for y in 0..kh {
            for x in 0..kw {
                out[(y * kw + x) * c + a] = w[(a * kh + y) * kw + x];
            }
        }
    }
    out
}

/// Reorder per-channel int8 weights from `[C, taps]` (quantization order) to `[taps, C]`.
fn transpose_i8(q: &[i8], c: usize) -> Vec<i8> {
    let taps = q.len() / c.max(1);
    let mut out = vec![0i8; q.len()];
    for a in 0..c {
        for t in 0..taps {
            out[t * c + a] = q[a * taps + t];
        }
    }
    out
}

struct Lowerer<'g> {
    g: &'g Graph,
    ranges: &'g HashMap<String, Range>,
    means: &'g HashMap<String, Vec<f32>>,
    spec: ModelSpec,
    /// (IR tensor, dtype, layout) -> runtime tensor
    variants: HashMap<(usize, u8, u8), u32>,
    qparams: HashMap<usize, QParams>,
    layers: Vec<LayerInfo>,
    /// Precision chosen for each IR node.
    float_node: Vec<bool>,
    pack: Option<Pack>,
    sparse: SparseChoice,
    /// The matrix kernel chosen for the node being lowered.
    matrix: Option<MatrixKernel>,
}

fn bits(x: f32) -> i32 {
    x.to_bits() as i32
}

impl<'g> Lowerer<'g> {
    fn add(&mut self, t: TensorSpec) -> u32 {
        self.spec.tensors.push(t);
        (self.spec.tensors.len() - 1) as u32
    }

    fn act(&mut self, name: &str, dtype: DType, dims: &[usize], layout: Layout, q: Option<QParams>) -> u32 {
        let q = q.unwrap_or(QParams { scale: 0.0, zero_point: 0 });
        self.add(TensorSpec {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            layout,
            arena_offset: 0,
            scale: q.scale,
            zero_point: q.zero_point,
            data: None,
            pack: None,
        })
    }

    fn constant(&mut self, name: &str, dtype: DType, dims: &[usize], data: Vec<u8>, q: Option<QParams>) -> u32 {
        let q = q.unwrap_or(QParams { scale: 0.0, zero_point: 0 });
        self.add(TensorSpec {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            layout: Layout::RowMajor,
            arena_offset: 0,
            scale: q.scale,
            zero_point: q.zero_point,
            data: Some(data),
            pack: None,
        })
    }

    /// An int8 `N x K` weight matrix (row-major `q`): block-sparse when the sparse choice says so
    /// (`pointwise`: a fully-connected layer or a 1x1 convolution with stride 1 and no padding,
    /// whose crossover differs from larger kernels'), else packed into panels when the target
    /// wants.
    fn matrix_constant(&mut self, name: &str, dims: &[usize], q: &[i8], pointwise: bool) -> u32 {
        let (n, k) = (dims[0], q.len() / dims[0].max(1));
        let block_density = sparse::block_density(sparse::KERNEL_BLOCK, n, k, q);
        let sparse = match self.sparse {
            SparseChoice::Never => false,
            SparseChoice::Always => block_density < 1.0,
            SparseChoice::Crossover(t) => block_density < t.sparse_crossover(k, pointwise),
        };
        let id = self.constant(name, DType::I8, dims, bytes_i8(q), None);
        let t = &mut self.spec.tensors[id as usize];
        if sparse {
            t.data = Some(sparse::encode(sparse::KERNEL_BLOCK, n, k, q));
            t.layout = Layout::BlockSparse;
            t.pack = Some(sparse::KERNEL_BLOCK);
        } else if let Some(p) = self.pack {
            t.data = Some(bytes_i8(&p.pack(n, k, q)));
            t.layout = Layout::Packed;
            t.pack = Some(p);
        }
        let bytes = t.data.as_ref().map_or(0, Vec::len);
        self.matrix = Some(MatrixKernel { block_density, sparse, bytes });
        id
    }

    fn op(&mut self, kind: u16, name: &str, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        self.spec.ops.push(OpSpec { kind, name: name.to_string(), inputs, outputs: vec![output], params });
    }

    fn default_layout(&self, t: usize) -> Layout {
        if self.g.tensors[t].shape.len() == 4 {
            Layout::Nhwc
        } else {
            Layout::RowMajor
        }
    }

    /// Quantization of IR tensor `t` (from calibration, or as forced by a same-scale op).
    fn qp(&mut self, t: usize) -> Result<QParams> {
        if let Some(q) = self.qparams.get(&t) {
            return Ok(*q);
        }
        let name = &self.g.tensors[t].name;
        let r = self.ranges.get(name).copied().ok_or_else(|| crate::error::CompileError::Tensor {
            name: name.clone(),
            reason: "no calibration statistics for this tensor".into(),
        })?;
        let q = act_qparams(r);
        self.qparams.insert(t, q);
        Ok(q)
    }

    fn existing(&self, t: usize, dtype: DType) -> Option<(u32, Layout)> {
        [Layout::Nhwc, Layout::RowMajor]
            .into_iter()
            .find_map(|l| self.variants.get(&(t, dtype as u8, l as u8)).map(|&id| (id, l)))
    }

    /// Runtime tensor holding IR tensor `t` as `dtype` in `layout` (any layout if `None`),
    /// converting from an existing variant when needed.
    fn get(&mut self, t: usize, dtype: DType, layout: Option<Layout>) -> Result<u32> {
        let want_layout = |l: Layout| layout.is_none_or(|w| w == l);
        for l in [Layout::Nhwc, Layout::RowMajor] {
            if want_layout(l) {
                if let Some(&id) = self.variants.get(&(t, dtype as u8, l as u8)) {
                    return Ok(id);
                }
            }
        }
        let name = self.g.tensors[t].name.clone();
        let shape = self.g.tensors[t].shape.clone();
        if let Some(v) = self.g.tensors[t].value.clone() {
            // A constant operand: materialize it directly in the wanted dtype.
            let id = match dtype {
                DType::F32 => self.constant(&name, DType::F32, &shape, bytes_f32(&v), None),
                _ => {
                    let r = Range {
                        min: v.iter().copied().fold(f32::INFINITY, f32::min),
                        max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    };
                    let q = act_qparams(r);
                    let qv: Vec<i8> = v.iter().map(|&x| quantize_f32(x, q.scale, q.zero_point)).collect();
                    self.constant(&name, DType::I8, &shape, bytes_i8(&qv), Some(q))
                }
            };
            self.variants.insert((t, dtype as u8, Layout::RowMajor as u8), id);
            return Ok(id);
        }
        let target_layout = layout.unwrap_or_else(|| self.default_layout(t));
        let params = [0i32; OP_PARAMS];
        let id = if let Some((src, _)) = self.existing(t, dtype) {
            // Same dtype, other layout.
            let q = (dtype == DType::I8).then(|| self.qp(t)).transpose()?;
            let id = self.act(&format!("{name}:{}", layout_tag(target_layout)), dtype, &shape, target_layout, q);
            self.op(rop::RESHAPE, &format!("{name}:to_{}", layout_tag(target_layout)), vec![src], id, params);
            id
        } else if dtype == DType::I8 {
            let (src, _) = self.existing(t, DType::F32).ok_or_else(|| crate::error::CompileError::Tensor {
                name: name.clone(),
                reason: "internal: tensor used before it is computed".into(),
            })?;
            let q = self.qp(t)?;
            let id = self.act(&format!("{name}:q"), DType::I8, &shape, target_layout, Some(q));
            self.op(rop::QUANTIZE, &format!("{name}:quantize"), vec![src], id, params);
            id
        } else {
            let (src, _) = self.existing(t, DType::I8).ok_or_else(|| crate::error::CompileError::Tensor {
                name: name.clone(),
                reason: "internal: tensor used before it is computed".into(),
            })?;
            let id = self.act(&format!("{name}:f32"), DType::F32, &shape, target_layout, None);
            self.op(rop::DEQUANTIZE, &format!("{name}:dequantize"), vec![src], id, params);
            id
        };
        self.variants.insert((t, dtype as u8, target_layout as u8), id);
        Ok(id)
    }

    /// Create the runtime output tensor of IR tensor `t`.
    fn output(&mut self, t: usize, dtype: DType, layout: Layout, q: Option<QParams>) -> u32 {
        let name = self.g.tensors[t].name.clone();
        let shape = self.g.tensors[t].shape.clone();
        if let Some(q) = q {
            self.qparams.insert(t, q);
        }
        let id = self.act(&name, dtype, &shape, layout, q);
        self.variants.insert((t, dtype as u8, layout as u8), id);
        id
    }

    fn clamp_params(&self, params: &mut [i32; OP_PARAMS], act: Act, q: Option<QParams>) {
        match q {
            Some(q) => {
                let lo = if act.lo.is_finite() { quantize_f32(act.lo, q.scale, q.zero_point) as i32 } else { -128 };
                let hi = if act.hi.is_finite() { quantize_f32(act.hi, q.scale, q.zero_point) as i32 } else { 127 };
                params[rop::ACT_MIN] = lo.max(-128);
                params[rop::ACT_MAX] = hi.min(127).max(lo.max(-128));
            }
            None => {
                params[rop::ACT_MIN] = bits(act.lo);
                params[rop::ACT_MAX] = bits(act.hi);
            }
        }
    }

    /// Output quantization of a node with a fused activation: calibrated range, clipped to the
    /// activation's bounds.
    fn out_qp(&mut self, t: usize, act: Act) -> Result<QParams> {
        let name = self.g.tensors[t].name.clone();
        let r = self.ranges.get(&name).copied().ok_or_else(|| crate::error::CompileError::Tensor {
            name,
            reason: "no calibration statistics for this tensor".into(),
        })?;
        let q = act_qparams(Range { min: r.min.max(act.lo), max: r.max.min(act.hi) });
        self.qparams.insert(t, q);
        Ok(q)
    }

    fn node(&mut self, n: &Node, float: bool) -> Result<()> {
        let g = self.g;
        let out = n.outputs[0];
        let dt = if float { DType::F32 } else { DType::I8 };
        let mut p = [0i32; OP_PARAMS];
        let mut weight_bytes = 0;
        match &n.op {
            Op::Conv { window, group, act } => {
                let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                let ws = g.tensors[w].shape.clone();
                let cin = g.tensors[x].shape[1];
                let depthwise = *group > 1 && *group == cin && ws[0] == cin;
                set_window(&mut p, window);
                p[win::GROUPS] = *group as i32;
                let kind = if depthwise { rop::DEPTHWISE_CONV2D } else { rop::CONV2D };
                let w_dims = if depthwise { vec![1, ws[2], ws[3], ws[0]] } else { vec![ws[0], ws[2], ws[3], ws[1]] };
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let inputs =
                    self.weights(n, xi, x, out, g.value(w), &ws, g.value(b), &w_dims, depthwise, *act, float)?;
                weight_bytes = inputs.1;
                let q = if float { None } else { Some(self.out_qp(out, *act)?) };
                self.clamp_params(&mut p, *act, q);
                let y = self.output(out, dt, Layout::Nhwc, q);
                self.op(kind, &n.name, inputs.0, y, p);
            }
            Op::ChannelAffine { act } => {
                // y = x * scale[c] + shift[c]: a 1x1 depthwise convolution.
                let x = n.inputs[0];
                let s = &g.tensors[x].shape;
                if s.len() != 4 {
                    return Err(invalid(
                        &n.name,
                        &n.onnx_op,
                        "a BatchNormalization that does not follow a Conv/Gemm needs a rank-4 input",
                    ));
                }
                let c = s[1];
                let window = Window { kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1] };
                set_window(&mut p, &window);
                p[win::GROUPS] = c as i32;
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let ws = vec![c, 1, 1, 1];
                let inputs = self.weights(
                    n,
                    xi,
                    x,
                    out,
                    g.value(n.inputs[1]),
                    &ws,
                    g.value(n.inputs[2]),
                    &[1, 1, 1, c],
                    true,
                    *act,
                    float,
                )?;
                weight_bytes = inputs.1;
                let q = if float { None } else { Some(self.out_qp(out, *act)?) };
                self.clamp_params(&mut p, *act, q);
                let y = self.output(out, dt, Layout::Nhwc, q);
                self.op(rop::DEPTHWISE_CONV2D, &n.name, inputs.0, y, p);
            }
            Op::Dense { act } if !float && !self.has_int8_consumer(out) => {
                // The output leaves the int8 domain (e.g. logits): emit f32 from the int32
                // accumulator instead of rounding it to 256 levels first.
                let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                let ws = g.tensors[w].shape.clone();
                let xi = self.get(x, DType::I8, Some(Layout::RowMajor))?;
                let qx = self.tensor_q(xi);
                let (q, scales) = quantize_per_channel(g.value(w), ws[0]);
                let bias = g.value(b);
                let acc_scale: Vec<f32> = scales.iter().map(|&sw| qx.scale * sw).collect();
                let b32: Vec<i32> = (0..ws[0])
                    .map(|c| {
                        (bias[c] as f64 / acc_scale[c] as f64).round().clamp(-(1i64 << 30) as f64, (1i64 << 30) as f64)
                            as i32
                    })
                    .collect();
                let wid = self.matrix_constant(&format!("{}:weights", n.name), &ws, &q, true);
                let bid = self.constant(&format!("{}:bias", n.name), DType::I32, &[ws[0]], bytes_i32(&b32), None);
                let sid = self.constant(
                    &format!("{}:output_scale", n.name),
                    DType::F32,
                    &[ws[0]],
                    bytes_f32(&acc_scale),
                    None,
                );
                weight_bytes = q.len() + ws[0] * 8;
                self.clamp_params(&mut p, *act, None);
                let y = self.output(out, DType::F32, Layout::RowMajor, None);
                self.op(rop::FULLY_CONNECTED, &n.name, vec![xi, wid, bid, sid], y, p);
            }
            Op::Dense { act } => {
                let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                let ws = g.tensors[w].shape.clone();
                let xi = self.get(x, dt, Some(Layout::RowMajor))?;
                let inputs = self.weights(n, xi, x, out, g.value(w), &ws, g.value(b), &ws, false, *act, float)?;
                weight_bytes = inputs.1;
                let q = if float { None } else { Some(self.out_qp(out, *act)?) };
                self.clamp_params(&mut p, *act, q);
                let y = self.output(out, dt, Layout::RowMajor, q);
                self.op(rop::FULLY_CONNECTED, &n.name, inputs.0, y, p);
            }
            Op::Add { act } | Op::Mul { act } => {
                let is_add = matches!(n.op, Op::Add { .. });
                let (a, b) = (n.inputs[0], n.inputs[1]);
                let ai = self.get(a, dt, None)?;
                let bi = self.get(b, dt, None)?;
                let layout = self.default_layout(out);
                let q = if float { None } else { Some(self.out_qp(out, *act)?) };
                if let Some(qo) = q {
                    let qa = self.tensor_q(ai);
                    let qb = self.tensor_q(bi);
                    if is_add {
                        let (ma, mb) = (qa.scale as f64 / qo.scale as f64, qb.scale as f64 / qo.scale as f64);
                        let (_, shift) = quantize_multiplier(ma.max(mb));
                        // Headroom: both terms share the shift of the larger multiplier.
                        let shift = shift.max(2);
                        p[rop::MULT_A] = (ma * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32;
                        p[rop::MULT_B] = (mb * 2f64.powi(shift)).round().min(i32::MAX as f64) as i32;
                        p[rop::SHIFT] = shift;
                    } else {
                        let (m, s) = quantize_multiplier(qa.scale as f64 * qb.scale as f64 / qo.scale as f64);
                        p[rop::MULT_A] = m;
                        p[rop::SHIFT] = s;
                    }
                }
                self.clamp_params(&mut p, *act, q);
                let y = self.output(out, dt, layout, q);
                self.op(if is_add { rop::ADD } else { rop::MUL }, &n.name, vec![ai, bi], y, p);
            }
            Op::Clip { act } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                let layout = self.spec.tensors[xi as usize].layout;
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                self.clamp_params(&mut p, *act, q);
                let y = self.output(out, dt, layout, q);
                self.op(rop::CLAMP, &n.name, vec![xi], y, p);
            }
            Op::Unary { function, alpha, beta } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                let layout = self.spec.tensors[xi as usize].layout;
                if float {
                    p[rop::FUNCTION] = *function;
                    p[rop::ALPHA] = bits(*alpha);
                    p[rop::BETA] = bits(*beta);
                    let y = self.output(out, dt, layout, None);
                    self.op(rop::UNARY, &n.name, vec![xi], y, p);
                } else {
                    // The function on every int8 input code, quantized to the output's range: the
                    // dequantization, the function and the quantization in one 256-byte table.
                    let (qx, qy) = (self.tensor_q(xi), self.out_qp(out, Act::NONE)?);
                    let table: Vec<u8> = (-128i32..128)
                        .map(|q| {
                            let real = qx.scale * (q - qx.zero_point) as f32;
                            let v = sparq_runtime::kernels::unary::apply(*function, *alpha, *beta, real);
                            quantize_f32(v, qy.scale, qy.zero_point) as u8
                        })
                        .collect();
                    weight_bytes = table.len();
                    let tid = self.constant(&format!("{}:table", n.name), DType::I8, &[256], table, None);
                    let y = self.output(out, dt, layout, Some(qy));
                    self.op(rop::LOOKUP, &n.name, vec![xi, tid], y, p);
                }
            }
            Op::MaxPool { window } | Op::AveragePool { window, .. } => {
                let x = n.inputs[0];
                set_window(&mut p, window);
                let kind = if let Op::AveragePool { count_include_pad, .. } = n.op {
                    p[win::GROUPS] = count_include_pad as i32;
                    rop::AVERAGE_POOL
                } else {
                    rop::MAX_POOL
                };
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                let y = self.output(out, dt, Layout::Nhwc, q);
                self.op(kind, &n.name, vec![xi], y, p);
            }
            Op::GlobalAveragePool => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let s = &g.tensors[x].shape;
                let hw = s[2] * s[3];
                let q = if float { None } else { Some(self.out_qp(out, Act::NONE)?) };
                if let Some(qo) = q {
                    let qi = self.tensor_q(xi);
                    let (m, sh) = quantize_multiplier(qi.scale as f64 / (qo.scale as f64 * hw as f64));
                    p[rop::MULT_A] = m;
                    p[rop::SHIFT] = sh;
                }
                let y = self.output(out, dt, Layout::Nhwc, q);
                self.op(rop::GLOBAL_AVERAGE_POOL, &n.name, vec![xi], y, p);
            }
            Op::Reshape => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                let y = self.output(out, dt, Layout::RowMajor, q);
                self.op(rop::RESHAPE, &n.name, vec![xi], y, p);
            }
            Op::Concat { axis } => {
                let q = if float { None } else { Some(self.out_qp(out, Act::NONE)?) };
                let mut ins = Vec::new();
                for (k, &x) in n.inputs.iter().enumerate() {
                    let xi = self.get(x, dt, None)?;
                    let xi = match q {
                        Some(qo) if self.tensor_q(xi) != qo => {
                            let qi = self.tensor_q(xi);
                            let (m, s) = quantize_multiplier(qi.scale as f64 / qo.scale as f64);
                            let mut rp = [0i32; OP_PARAMS];
                            rp[rop::MULT_A] = m;
                            rp[rop::SHIFT] = s;
                            let layout = self.spec.tensors[xi as usize].layout;
                            let shape = g.tensors[x].shape.clone();
                            let r = self.act(&format!("{}:requant{k}", n.name), DType::I8, &shape, layout, Some(qo));
                            self.op(rop::REQUANTIZE, &format!("{}:requantize{k}", n.name), vec![xi], r, rp);
                            r
                        }
                        _ => xi,
                    };
                    ins.push(xi);
                }
                p[rop::AXIS] = *axis as i32;
                let layout = self.default_layout(out);
                let y = self.output(out, dt, layout, q);
                self.op(rop::CONCAT, &n.name, ins, y, p);
            }
            Op::Softmax { axis } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                p[rop::AXIS] = *axis as i32;
                // Probabilities in [0, 1): scale 1/256, zero point -128.
                let q = (!float).then_some(QParams { scale: 1.0 / 256.0, zero_point: -128 });
                let layout = self.spec.tensors[xi as usize].layout;
                let y = self.output(out, dt, layout, q);
                self.op(rop::SOFTMAX, &n.name, vec![xi], y, p);
            }
        }
        self.layers.push(LayerInfo {
            name: n.name.clone(),
            op: n.onnx_op.clone(),
            precision: if float { Precision::F32 } else { Precision::Int8 },
            weight_bytes,
            matrix: self.matrix.take(),
        });
        Ok(())
    }

    /// Bias correction (Nagel et al., "Data-Free Quantization", sec. 4.2, with empirical input
    /// means): weight rounding shifts each output's mean by `sum (w_q - w) * E[x]`; subtract it.
    /// `w` is in quantization order (`[O, taps]`, taps ordered with the input channel fastest for
    /// convolutions, one channel per row for depthwise).
    #[allow(clippy::too_many_arguments)]
    fn corrected_bias(
        &self,
        x: usize,
        w: &[f32],
        q: &[i8],
        scales: &[f32],
        bias: &[f32],
        ws: &[usize],
        depthwise: bool,
    ) -> Vec<f32> {
        let Some(mean) = self.means.get(&self.g.tensors[x].name) else { return bias.to_vec() };
        let out_c = ws[0];
        let taps = w.len() / out_c.max(1);
        let (icpg, groups_out) = if depthwise {
            (1, 1)
        } else if ws.len() == 4 {
            (ws[1], out_c / (mean.len() / ws[1]).max(1))
        } else {
            (ws[1], out_c)
        };
        (0..out_c)
            .map(|o| {
                let base = if depthwise { o } else { (o / groups_out.max(1)) * icpg };
                let mut shift = 0f64;
                for t in 0..taps {
                    let err = q[o * taps + t] as f64 * scales[o] as f64 - w[o * taps + t] as f64;
                    let ch = if depthwise { base } else { base + t % icpg };
                    shift += err * *mean.get(ch).unwrap_or(&0.0) as f64;
                }
                bias[o] - shift as f32
            })
            .collect()
    }

    /// Whether an int8 node reads IR tensor `t`.
    fn has_int8_consumer(&self, t: usize) -> bool {
        self.g.nodes.iter().enumerate().any(|(i, n)| n.inputs.contains(&t) && !self.float_node[i])
    }

    fn tensor_q(&self, id: u32) -> QParams {
        let t = &self.spec.tensors[id as usize];
        QParams { scale: t.scale, zero_point: t.zero_point }
    }

    /// Weight, bias (and for int8: multiplier and shift) constants of a Conv/Dense; returns the
    /// op's inputs and the bytes of weights written.
    #[allow(clippy::too_many_arguments)]
    fn weights(
        &mut self,
        n: &Node,
        xi: u32,
        x: usize,
        out: usize,
        w: &[f32],
        ws: &[usize],
        bias: &[f32],
        w_dims: &[usize],
        depthwise: bool,
        act: Act,
        float: bool,
    ) -> Result<(Vec<u32>, usize)> {
        let out_c = ws[0];
        let reordered = if ws.len() == 4 {
            if depthwise {
                w.to_vec() // per-channel order first; transposed to [KH, KW, C] after quantizing
            } else {
                ohwi(w, ws)
            }
        } else {
            w.to_vec()
        };
        if float {
            let wv = if depthwise { hwc(w, ws) } else { reordered };
            let wid = self.constant(&format!("{}:weights", n.name), DType::F32, w_dims, bytes_f32(&wv), None);
            let bid = self.constant(&format!("{}:bias", n.name), DType::F32, &[out_c], bytes_f32(bias), None);
            return Ok((vec![xi, wid, bid], wv.len() * 4));
        }
        let (q, scales) = quantize_per_channel(&reordered, out_c);
        let bias = self.corrected_bias(x, &reordered, &q, &scales, bias, ws, depthwise);
        let bias = &bias[..];
        let qx = self.tensor_q(xi);
        let qo = self.out_qp(out, act)?;
        let mut b32 = vec![0i32; out_c];
        let mut mult = vec![0i32; out_c];
        let mut shift = vec![0i32; out_c];
        for c in 0..out_c {
            let acc_scale = qx.scale as f64 * scales[c] as f64;
            b32[c] = (bias[c] as f64 / acc_scale).round().clamp(-(1i64 << 30) as f64, (1i64 << 30) as f64) as i32;
            let (m, s) = quantize_multiplier(acc_scale / qo.scale as f64);
            mult[c] = m;
            shift[c] = s;
        }
        let name = format!("{}:weights", n.name);
        // One group: an `out_c x K` matrix for the GEMM kernels (w_dims[1..] multiply to K).
        let gemm = !depthwise && (ws.len() == 2 || self.g.tensors[x].shape[1] == ws[1]);
        let wid = if depthwise {
            self.constant(&name, DType::I8, w_dims, bytes_i8(&transpose_i8(&q, out_c)), None)
        } else if gemm {
            let pointwise = match &n.op {
                Op::Conv { window, .. } => window.kernel == [1, 1] && window.strides == [1, 1] && window.pads == [0; 4],
                _ => true,
            };
            self.matrix_constant(&name, w_dims, &q, pointwise)
        } else {
            self.constant(&name, DType::I8, w_dims, bytes_i8(&q), None)
        };
        let bid = self.constant(&format!("{}:bias", n.name), DType::I32, &[out_c], bytes_i32(&b32), None);
        let mid = self.constant(&format!("{}:multiplier", n.name), DType::I32, &[out_c], bytes_i32(&mult), None);
        let sid = self.constant(&format!("{}:shift", n.name), DType::I32, &[out_c], bytes_i32(&shift), None);
        Ok((vec![xi, wid, bid, mid, sid], q.len() + out_c * 12))
    }
}

fn layout_tag(l: Layout) -> &'static str {
    match l {
        Layout::Nhwc => "nhwc",
        Layout::RowMajor => "rowmajor",
        Layout::Packed => "packed",
        Layout::BlockSparse => "blocksparse",
    }
}

fn set_window(p: &mut [i32; OP_PARAMS], w: &Window) {
    p[win::KERNEL_H] = w.kernel[0] as i32;
    p[win::KERNEL_W] = w.kernel[1] as i32;
    p[win::STRIDE_H] = w.strides[0] as i32;
    p[win::STRIDE_W] = w.strides[1] as i32;
    p[win::PAD_TOP] = w.pads[0] as i32;
    p[win::PAD_LEFT] = w.pads[1] as i32;
    p[win::PAD_BOTTOM] = w.pads[2] as i32;
    p[win::PAD_RIGHT] = w.pads[3] as i32;
    p[win::DILATION_H] = w.dilations[0] as i32;
    p[win::DILATION_W] = w.dilations[1] as i32;
}

pub struct Lowered {
    pub spec: ModelSpec,
    pub layers: Vec<LayerInfo>,
    /// Largest sum of simultaneously live activation bytes (the arena can't be smaller).
    pub liveness_bound: usize,
}

/// Lower `g` with activation ranges `ranges` (by tensor name; unused for f32).
pub fn lower(g: &Graph, stats: &Stats, opts: &LowerOptions) -> Result<Lowered> {
    for k in &opts.keep_float {
        if !g.nodes.iter().any(|n| &n.name == k) {
            return Err(crate::error::CompileError::NoSuchNode(k.clone()));
        }
    }
    let mut lw = Lowerer {
        g,
        ranges: &stats.ranges,
        means: &stats.channel_means,
        spec: ModelSpec { name: g.name.clone(), ..Default::default() },
        variants: HashMap::new(),
        qparams: HashMap::new(),
        layers: Vec::new(),
        pack: opts.pack,
        sparse: opts.sparse,
        matrix: None,
        float_node: g
            .nodes
            .iter()
            .map(|n| opts.precision == Precision::F32 || opts.keep_float.contains(&n.name))
            .collect(),
    };
    for &i in &g.inputs {
        let t = &g.tensors[i];
        let id = lw.act(&t.name.clone(), DType::F32, &t.shape.clone(), Layout::RowMajor, None);
        lw.variants.insert((i, DType::F32 as u8, Layout::RowMajor as u8), id);
        lw.spec.inputs.push(id);
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let float = lw.float_node[i];
        lw.node(n, float)?;
    }
    for &o in &g.outputs {
        let id = lw.get(o, DType::F32, Some(Layout::RowMajor))?;
        lw.spec.outputs.push(id);
    }
    let liveness_bound = plan::plan_arena(&mut lw.spec);
    Ok(Lowered { spec: lw.spec, layers: lw.layers, liveness_bound })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::{mobile_block, Rng};

    fn graph() -> Graph {
        crate::load_graph(&mobile_block(5), "test.onnx", &Default::default()).unwrap()
    }

    #[test]
    fn f32_lowering_keeps_the_graph_and_plans_an_aligned_arena() {
        let g = graph();
        let l =
            lower(&g, &Stats::default(), &LowerOptions { precision: Precision::F32, ..Default::default() }).unwrap();
        assert_eq!(l.layers.len(), g.nodes.len());
        assert!(l.layers.iter().all(|x| x.precision == Precision::F32));
        let spec = &l.spec;
        assert!(spec.arena_size.is_multiple_of(sparq_format::layout::ALIGN));
        for t in spec.tensors.iter().filter(|t| t.data.is_none()) {
            assert!(t.arena_offset.is_multiple_of(sparq_format::layout::ALIGN), "{}", t.name);
            let bytes = t.dims.iter().product::<usize>() * t.dtype.size();
            assert!(t.arena_offset + bytes <= spec.arena_size, "{} is outside the arena", t.name);
        }
        assert!(l.liveness_bound <= spec.arena_size);
    }

    #[test]
    fn int8_lowering_needs_ranges_and_stays_close_to_f32() {
        let g = graph();
        // Without ranges, int8 cannot be lowered: the error names the tensor.
        assert!(lower(&g, &Stats::default(), &LowerOptions::default()).is_err());
        let mut rng = Rng::new(2);
        let samples: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(4 * 8 * 8, 1.0)).collect();
        let calib = crate::calib::stats::calibrate_graph(
            &g,
            &samples,
            crate::calib::CalibMethod::MinMax,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        let stats = &calib.candidates[0].1;
        let int8 = lower(&g, stats, &LowerOptions::default()).unwrap();
        assert!(int8.layers.iter().filter(|x| x.op == "Conv").all(|x| x.precision == Precision::Int8));
        let f32s = lower(&g, stats, &LowerOptions { precision: Precision::F32, ..Default::default() }).unwrap();
        let run = |l: &Lowered| crate::calib::eval::run_sparq(&l.spec.to_bytes(), &samples, None).unwrap();
        let a = crate::calib::eval::compare(&run(&int8), &run(&f32s), None);
        assert!(a.sqnr_db > 20.0, "int8 SQNR {:.1} dB", a.sqnr_db);
        // Int8 weights (with their int32 biases and per-channel scales) are smaller.
        let bytes = |l: &Lowered| l.layers.iter().map(|x| x.weight_bytes).sum::<usize>();
        assert!(bytes(&int8) * 3 < bytes(&f32s) * 2, "{} vs {}", bytes(&int8), bytes(&f32s));
        // Keeping a node in f32 by name, and rejecting an unknown one.
        let keep = LowerOptions { keep_float: [g.nodes[0].name.clone()].into(), ..Default::default() };
        assert_eq!(lower(&g, stats, &keep).unwrap().layers[0].precision, Precision::F32);
        let bad = LowerOptions { keep_float: ["nope".to_string()].into(), ..Default::default() };
        assert!(matches!(lower(&g, stats, &bad), Err(crate::error::CompileError::NoSuchNode(_))));
    }
}
