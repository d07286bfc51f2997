//! IR -> runtime program (`ModelSpec`): picks each node's precision and lowers it node by node.
//! The parts: requantization parameters and bias correction come from [`crate::quant`];
//! [`layout`] reorders weights and converts between a tensor's variants (dtype x layout) where
//! neighbours disagree; [`packing`] chooses how each int8 weight matrix is stored; [`write`] emits
//! tensors and ops; [`plan`] places the activations in the arena; [`target`] describes the CPUs.

mod compute;
mod layout;
mod packing;
pub mod plan;
mod state;
pub mod target;
mod write;

pub use crate::ir::{Range, Stats};
pub use crate::quant::{quantize_per_channel, Precision};
pub use packing::{MatrixKernel, SparseChoice};
pub use state::LayerInfo;
use state::Lowerer;

use crate::error::{invalid, Result};
use crate::ir::*;
use crate::quant::{
    act_qparams, act_qparams16, bias, clamped_qparams, clamped_qparams16, requant, QParams, RoundedWeights,
};
use layout::{conv_transpose_channel_order, hwc, ohwi, transpose_i8};
use sparq_format::layout::op::{self as rop, window as win};
use sparq_format::layout::{Pack, OP_PARAMS};
use sparq_format::writer::ModelSpec;
use sparq_format::{DType, Layout};
use std::collections::{HashMap, HashSet};
use write::{bits, bytes_f32, bytes_i32, bytes_i8, set_window};

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
    /// Int8 weights already rounded from calibration data (GPTQ, AdaRound), by layer name; the
    /// other layers' weights are rounded to nearest here.
    pub rounded: std::sync::Arc<HashMap<String, RoundedWeights>>,
    /// The weights a layer gets instead of its `rounded` ones when it runs in int16 (`int16`):
    /// those of a layer rounded again on int8 inputs (`--round-on-int8`), whose fit to int8 noise
    /// int16 does not have.
    pub rounded_int16: std::sync::Arc<HashMap<String, RoundedWeights>>,
    /// Convolutions (one group, or depthwise) and fully-connected layers of an int8 model run
    /// with int16 activations and int8 weights (A16W8, format 1.6), by node name.
    pub int16: HashSet<String>,
    /// The graph's one input is a uint8 camera frame (`--input-dtype u8`, see
    /// [`crate::ir::frames`]).
    pub frames: Option<FrameInput>,
}

/// A uint8 frame input: an int8 input of scale 1 and zero point -128 (codes: the frame's bytes
/// with the top bit flipped) in `layout` (NHWC or row-major NCHW). In int8 its normalization
/// node becomes per-channel lookup tables (format 1.7) holding, for each byte, the code the float
/// path (`(u / 255 - mean[c]) / std[c]`, then QUANTIZE) would give.
#[derive(Clone, Debug)]
pub struct FrameInput {
    pub layout: Layout,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl<'g> Lowerer<'g> {
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

    /// Int16 quantization of IR tensor `t` (symmetric, from calibration).
    pub(super) fn qp16(&mut self, t: usize) -> Result<QParams> {
        if let Some(q) = self.qparams16.get(&t) {
            return Ok(*q);
        }
        let name = &self.g.tensors[t].name;
        let r = self.extremes.get(name).or_else(|| self.ranges.get(name)).copied().ok_or_else(|| {
            crate::error::CompileError::Tensor {
                name: name.clone(),
                reason: "no calibration statistics for this tensor".into(),
            }
        })?;
        let q = act_qparams16(r);
        self.qparams16.insert(t, q);
        Ok(q)
    }

    /// [`Self::out_qp`] of an int16 output: the calibrated range clipped to the activation.
    fn out_qp16(&mut self, t: usize, act: Act) -> Result<QParams> {
        let name = self.g.tensors[t].name.clone();
        let r = self.extremes.get(&name).or_else(|| self.ranges.get(&name)).copied().ok_or_else(|| {
            crate::error::CompileError::Tensor { name, reason: "no calibration statistics for this tensor".into() }
        })?;
        let q = clamped_qparams16(r, act);
        self.qparams16.insert(t, q);
        Ok(q)
    }

    /// The fused activation clamp's parameters: int8 bounds on an output quantized with `q`, the
    /// f32 bounds' bits on an f32 output.
    fn clamp_params(&self, params: &mut [i32; OP_PARAMS], act: Act, q: Option<QParams>) {
        match q {
            Some(q) => {
                (params[rop::ACT_MIN], params[rop::ACT_MAX]) = requant::act_bounds(act, q);
            }
            None => {
                params[rop::ACT_MIN] = bits(act.lo);
                params[rop::ACT_MAX] = bits(act.hi);
            }
        }
    }

    /// Whether the node being lowered was asked to run with int16 activations (`int16`), in a
    /// quantized model (`float`: this node stays f32).
    fn wants_int16(&self, float: bool) -> bool {
        !float && self.int16_node.get(self.layers.len()) == Some(&true)
    }

    /// The output quantization of a node with a fused activation `act`: none for an f32 output,
    /// [`Self::out_qp16`] for an int16 one, [`Self::out_qp`] otherwise.
    fn output_q(&mut self, out: usize, act: Act, float: bool, int16: bool) -> Result<Option<QParams>> {
        Ok(match (float, int16) {
            (true, _) => None,
            (false, true) => Some(self.out_qp16(out, act)?),
            (false, false) => Some(self.out_qp(out, act)?),
        })
    }

    /// The fused activation clamp's parameters for an output quantized with `q` (int16 codes with
    /// `int16`; see [`Self::clamp_params`] for the others).
    fn output_bounds(&self, params: &mut [i32; OP_PARAMS], act: Act, q: Option<QParams>, int16: bool) {
        match (int16, q) {
            (true, Some(q)) => (params[rop::ACT_MIN], params[rop::ACT_MAX]) = requant::act_bounds16(act, q),
            _ => self.clamp_params(params, act, q),
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
        let q = clamped_qparams(r, act);
        self.qparams.insert(t, q);
        Ok(q)
    }

    fn node(&mut self, n: &Node, float: bool) -> Result<()> {
        let g = self.g;
        let out = n.outputs[0];
        let dt = if float { DType::F32 } else { DType::I8 };
        let mut p = [0i32; OP_PARAMS];
        let mut weight_bytes = 0;
        let (mut int16, mut why_not_int16) = (false, None);
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
                let wanted16 = self.wants_int16(float);
                if wanted16 {
                    why_not_int16 = if ws.len() != 4 || g.tensors[x].shape.len() != 4 || (!depthwise && *group != 1) {
                        Some(INT16_SHAPE)
                    } else if !self.int16_fits(n, x, out, g.value(w), &ws, g.value(b), depthwise, *act)? {
                        Some(INT16_OVERFLOW)
                    } else {
                        None
                    };
                    int16 = why_not_int16.is_none();
                }
                let dt = if int16 { DType::I16 } else { dt };
                let xi = self.window_input(x, dt)?;
                let inputs =
                    self.weights(n, xi, x, out, g.value(w), &ws, g.value(b), &w_dims, depthwise, *act, float, int16)?;
                weight_bytes = inputs.1;
                let q = self.output_q(out, *act, float, int16)?;
                self.output_bounds(&mut p, *act, q, int16);
                let y = self.window_output(n, out, dt, q);
                self.op(kind, &n.name, inputs.0, y, p);
                self.finish_window_output(n, out, y, dt, q);
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
                let ws = vec![c, 1, 1, 1];
                let (scale, shift) = (g.value(n.inputs[1]), g.value(n.inputs[2]));
                if self.wants_int16(float) {
                    int16 = self.int16_fits(n, x, out, scale, &ws, shift, true, *act)?;
                    why_not_int16 = (!int16).then_some(INT16_OVERFLOW);
                }
                let dt = if int16 { DType::I16 } else { dt };
                if let (Some(f), false, true) = (&self.frames, float, g.inputs.first() == Some(&x)) {
                    // The frame's normalization in int8 or int16: a table per channel, no arithmetic.
                    let f = f.clone();
                    weight_bytes = self.frame_tables(n, x, out, *act, &f, int16)?;
                    return self.finish_layer(n, float, int16, weight_bytes, why_not_int16);
                }
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let inputs = self.weights(n, xi, x, out, scale, &ws, shift, &[1, 1, 1, c], true, *act, float, int16)?;
                weight_bytes = inputs.1;
                let q = self.output_q(out, *act, float, int16)?;
                self.output_bounds(&mut p, *act, q, int16);
                let y = self.output(out, dt, Layout::Nhwc, q);
                self.op(rop::DEPTHWISE_CONV2D, &n.name, inputs.0, y, p);
            }
            Op::Dense { act } if !float && !self.has_int8_consumer(out) && !self.wants_int16(float) => {
                // The output leaves the int8 domain (e.g. logits): emit f32 from the int32
                // accumulator instead of rounding it to 256 levels first.
                let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                let ws = g.tensors[w].shape.clone();
                let xi = self.get(x, DType::I8, Some(Layout::RowMajor))?;
                let qx = self.tensor_q(xi);
                let (q, scales, bias) = match self.rounded.get(&n.name) {
                    Some(r) => (r.q.clone(), r.scales.clone(), r.bias.clone()),
                    None => {
                        let (q, scales) = quantize_per_channel(g.value(w), ws[0]);
                        (q, scales, g.value(b).to_vec())
                    }
                };
                let (b32, acc_scale) = requant::float_output(qx, &scales, &bias[..ws[0]]);
                let wid = self.matrix_constant(&format!("{}:weights", n.name), &ws, &q, true, false);
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
                if self.wants_int16(float) {
                    why_not_int16 = (!self.int16_fits(n, x, out, g.value(w), &ws, g.value(b), false, *act)?)
                        .then_some(INT16_OVERFLOW);
                    int16 = why_not_int16.is_none();
                }
                let dt = if int16 { DType::I16 } else { dt };
                let xi = self.get(x, dt, Some(Layout::RowMajor))?;
                let inputs =
                    self.weights(n, xi, x, out, g.value(w), &ws, g.value(b), &ws, false, *act, float, int16)?;
                weight_bytes = inputs.1;
                let q = self.output_q(out, *act, float, int16)?;
                self.output_bounds(&mut p, *act, q, int16);
                let y = self.output(out, dt, Layout::RowMajor, q);
                self.op(rop::FULLY_CONNECTED, &n.name, inputs.0, y, p);
            }
            Op::Add { act } | Op::Mul { act } => {
                let is_add = matches!(n.op, Op::Add { .. });
                let (a, b) = (n.inputs[0], n.inputs[1]);
                if self.wants_int16(float) {
                    why_not_int16 = (!is_add || g.is_const(a) || g.is_const(b)).then_some(INT16_SHAPE);
                    int16 = why_not_int16.is_none();
                }
                let dt = if int16 { DType::I16 } else { dt };
                let ai = self.get(a, dt, None)?;
                let bi = self.get(b, dt, None)?;
                let layout = self.default_layout(out);
                let q = self.output_q(out, *act, float, int16)?;
                if let Some(qo) = q {
                    let qa = self.tensor_q(ai);
                    let qb = self.tensor_q(bi);
                    if is_add {
                        let m = requant::add(qa, qb, qo);
                        p[rop::MULT_A] = m.mult_a;
                        p[rop::MULT_B] = m.mult_b;
                        p[rop::SHIFT] = m.shift;
                    } else {
                        let m = requant::mul(qa, qb, qo);
                        p[rop::MULT_A] = m.mult;
                        p[rop::SHIFT] = m.shift;
                    }
                }
                self.output_bounds(&mut p, *act, q, int16);
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
            Op::Unary { function, alpha, beta, post } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                let layout = self.spec.tensors[xi as usize].layout;
                if float {
                    p[rop::FUNCTION] = *function;
                    p[rop::ALPHA] = bits(*alpha);
                    p[rop::BETA] = bits(*beta);
                    if *post == [1.0, 0.0] {
                        let y = self.output(out, dt, layout, None);
                        self.op(rop::UNARY, &n.name, vec![xi], y, p);
                    } else {
                        self.lower_unary_affine(n, xi, p, *post, layout);
                    }
                } else {
                    // The function on every int8 input code, quantized to the output's range: the
                    // dequantization, the function (and its scalar affine) and the quantization in
                    // one 256-byte table.
                    let (qx, qy) = (self.tensor_q(xi), self.out_qp(out, Act::NONE)?);
                    let table = requant::lookup_table(*function, *alpha, *beta, *post, qx, qy);
                    weight_bytes = table.len();
                    let tid = self.constant(&format!("{}:table", n.name), DType::I8, &[256], table, None);
                    let y = self.output(out, dt, layout, Some(qy));
                    self.op(rop::LOOKUP, &n.name, vec![xi, tid], y, p);
                }
            }
            Op::Transpose { .. } | Op::Slice { .. } => {
                // Pure movement: int8 keeps the input's quantization.
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                match &n.op {
                    Op::Transpose { perm } => {
                        for (slot, &a) in perm.iter().enumerate() {
                            p[slot] = a as i32;
                        }
                    }
                    Op::Slice { starts, steps } => {
                        for (a, (&start, &step)) in starts.iter().zip(steps).enumerate() {
                            p[rop::SLICE_START + a] = start as i32;
                            p[rop::SLICE_STEP + a] = step as i32;
                        }
                    }
                    _ => unreachable!(),
                }
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                let layout = self.default_layout(out);
                let y = self.output(out, dt, layout, q);
                let kind = if matches!(n.op, Op::Transpose { .. }) { rop::TRANSPOSE } else { rop::SLICE };
                self.op(kind, &n.name, vec![xi], y, p);
            }
            Op::Resize { linear, cubic, coord, nearest, scales } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                p[rop::RESIZE_MODE] = *linear as i32;
                if let Some((a, exclude)) = cubic {
                    p[rop::RESIZE_MODE] = 2;
                    p[rop::RESIZE_CUBIC_A] = bits(*a);
                    p[rop::RESIZE_EXCLUDE_OUTSIDE] = *exclude as i32;
                }
                p[rop::RESIZE_COORD] = *coord;
                p[rop::RESIZE_NEAREST] = *nearest;
                p[rop::RESIZE_SCALE_H] = bits(scales[0]);
                p[rop::RESIZE_SCALE_W] = bits(scales[1]);
                // Nearest is a copy and linear a convex combination: int8 keeps the input's
                // quantization (linear in Q11 fixed point, format 1.5).
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                let layout = self.spec.tensors[xi as usize].layout;
                let y = self.output(out, dt, layout, q);
                self.op(rop::RESIZE, &n.name, vec![xi], y, p);
            }
            Op::ConvTranspose { window, group } => {
                if let Some(bytes) = self.lower_conv_transpose_pixels(n, window, *group, float)? {
                    // Non-overlapping windows: a 1x1 convolution and a depth-to-space.
                    weight_bytes = bytes;
                } else if !float {
                    // int8 (format 1.5): weights in ONNX order, symmetric per output channel; bias,
                    // multipliers and shifts per output channel as a convolution's.
                    let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                    let xi = self.window_input(x, DType::I8)?;
                    set_window(&mut p, window);
                    p[win::GROUPS] = *group as i32;
                    let ws = g.tensors[w].shape.clone();
                    let cout = ws[1] * *group;
                    let (by_channel, index) = conv_transpose_channel_order(g.value(w), &ws, *group);
                    let (q_by_channel, scales) = quantize_per_channel(&by_channel, cout);
                    let q: Vec<i8> = index.iter().map(|&i| q_by_channel[i]).collect();
                    let (qx, qo) = (self.tensor_q(xi), self.out_qp(out, Act::NONE)?);
                    let requant::ChannelRequant { bias: b32, mult, shift } =
                        requant::channel_outputs(qx, &scales, qo, &g.value(b)[..cout]);
                    let wid = self.constant(&format!("{}:weights", n.name), DType::I8, &ws, bytes_i8(&q), None);
                    let bid = self.constant(&format!("{}:bias", n.name), DType::I32, &[cout], bytes_i32(&b32), None);
                    let mid =
                        self.constant(&format!("{}:multiplier", n.name), DType::I32, &[cout], bytes_i32(&mult), None);
                    let sid = self.constant(&format!("{}:shift", n.name), DType::I32, &[cout], bytes_i32(&shift), None);
                    weight_bytes = q.len() + cout * 12;
                    self.clamp_params(&mut p, Act::NONE, Some(qo));
                    let y = self.window_output(n, out, DType::I8, Some(qo));
                    self.op(rop::CONV_TRANSPOSE, &n.name, vec![xi, wid, bid, mid, sid], y, p);
                    self.finish_window_output(n, out, y, DType::I8, Some(qo));
                } else {
                    // f32: weights as ONNX orders them, bias, no clamp.
                    let (x, w, b) = (n.inputs[0], n.inputs[1], n.inputs[2]);
                    let xi = self.window_input(x, DType::F32)?;
                    set_window(&mut p, window);
                    p[win::GROUPS] = *group as i32;
                    self.clamp_params(&mut p, Act::NONE, None);
                    let ws = g.tensors[w].shape.clone();
                    let wid =
                        self.constant(&format!("{}:weights", n.name), DType::F32, &ws, bytes_f32(g.value(w)), None);
                    let bid = self.constant(
                        &format!("{}:bias", n.name),
                        DType::F32,
                        &[g.value(b).len()],
                        bytes_f32(g.value(b)),
                        None,
                    );
                    weight_bytes = (g.value(w).len() + g.value(b).len()) * 4;
                    let y = self.window_output(n, out, DType::F32, None);
                    self.op(rop::CONV_TRANSPOSE, &n.name, vec![xi, wid, bid], y, p);
                    self.finish_window_output(n, out, y, DType::F32, None);
                }
            }
            Op::Pad { before, after, mode, value } => {
                let x = n.inputs[0];
                let xi = self.get(x, dt, None)?;
                for (a, (&b, &e)) in before.iter().zip(after).enumerate() {
                    p[rop::PAD_BEFORE + a] = b as i32;
                    p[rop::PAD_AFTER + a] = e as i32;
                }
                p[rop::PAD_MODE] = *mode;
                let q = if float { None } else { Some(self.tensor_q(xi)) };
                if *mode == 0 {
                    p[rop::PAD_VALUE] = match q {
                        // The constant as the input's int8 code (same quantization out).
                        Some(q) => sparq_runtime::quant::quantize_f32(*value, q.scale, q.zero_point) as i32,
                        None => bits(*value),
                    };
                }
                let layout = self.default_layout(out);
                let y = self.output(out, dt, layout, q);
                self.op(rop::PAD, &n.name, vec![xi], y, p);
            }
            Op::MaxPool { window, depth } | Op::AveragePool { window, depth, .. } => {
                let x = n.inputs[0];
                set_window(&mut p, window);
                let kind = if let Op::AveragePool { count_include_pad, .. } = n.op {
                    p[win::GROUPS] = count_include_pad as i32;
                    rop::AVERAGE_POOL
                } else {
                    rop::MAX_POOL
                };
                if let Some(dw) = depth {
                    self.lower_pool_3d(n, kind, dw, p, dt)?;
                } else {
                    let xi = self.window_input(x, dt)?;
                    let q = if float { None } else { Some(self.tensor_q(xi)) };
                    let y = self.window_output(n, out, dt, q);
                    self.op(kind, &n.name, vec![xi], y, p);
                    self.finish_window_output(n, out, y, dt, q);
                }
            }
            Op::GlobalAveragePool => {
                let x = n.inputs[0];
                int16 = self.wants_int16(float);
                let dt = if int16 { DType::I16 } else { dt };
                let xi = self.get(x, dt, Some(Layout::Nhwc))?;
                let s = &g.tensors[x].shape;
                let hw = s[2] * s[3];
                let q = if float {
                    None
                } else if int16 {
                    Some(self.out_qp16(out, Act::NONE)?)
                } else {
                    Some(self.out_qp(out, Act::NONE)?)
                };
                if let Some(qo) = q {
                    let qi = self.tensor_q(xi);
                    let m = requant::global_avg(qi, qo, hw);
                    p[rop::MULT_A] = m.mult;
                    p[rop::SHIFT] = m.shift;
                }
                if g.tensors[out].shape.len() == 2 {
                    // `[N, C]` (a ReduceMean without keepdims): pool into `[N, C, 1, 1]`, then a
                    // reshape, both with the output's quantization.
                    let pooled = self.act(&format!("{}:pooled", n.name), dt, &[s[0], s[1], 1, 1], Layout::Nhwc, q);
                    self.op(rop::GLOBAL_AVERAGE_POOL, &n.name, vec![xi], pooled, p);
                    let y = self.output(out, dt, Layout::RowMajor, q);
                    self.op(rop::RESHAPE, &format!("{}:flatten", n.name), vec![pooled], y, [0; OP_PARAMS]);
                } else {
                    let y = self.output(out, dt, Layout::Nhwc, q);
                    self.op(rop::GLOBAL_AVERAGE_POOL, &n.name, vec![xi], y, p);
                }
            }
            Op::Reshape => {
                let x = n.inputs[0];
                // After an int16 producer (and before int16 consumers, say a classifier after a
                // pooling), a reshape moves int16 codes rather than rounding them to int8.
                int16 = !float && self.existing(x, DType::I16).is_some() && self.existing(x, DType::I8).is_none();
                let dt = if int16 { DType::I16 } else { dt };
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
                            let m = requant::rescale(qi, qo);
                            let mut rp = [0i32; OP_PARAMS];
                            rp[rop::MULT_A] = m.mult;
                            rp[rop::SHIFT] = m.shift;
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
            Op::MatMul { trans_a, trans_b, alpha, beta } => {
                self.lower_matmul(n, *trans_a, *trans_b, *alpha, *beta)?;
            }
            Op::Reduce { function, axes, select_last } => self.lower_reduce(n, *function, axes, *select_last)?,
            Op::Normalize { axis, eps, per_channel, stats } => {
                self.lower_normalize(n, *axis, *eps, *per_channel)?;
                self.lower_norm_stats(n, *axis, *eps, stats)?;
            }
            Op::Binary { function } => self.lower_binary(n, *function, float)?,
            Op::Gather { axis } => self.lower_gather(n, *axis, float)?,
            Op::Shuffle { shape, perm } => self.lower_shuffle(n, shape, perm, float)?,
            Op::Tile => self.lower_tile(n, float)?,
            Op::Where => {
                let ins = n.inputs.iter().map(|&t| self.get(t, DType::F32, None)).collect::<Result<Vec<_>>>()?;
                let layout = self.default_layout(out);
                let y = self.output(out, DType::F32, layout, None);
                self.op(rop::WHERE, &n.name, ins, y, p);
            }
            Op::Recurrent { lstm, direction, clip, linear_before_reset, outputs, batch_first } => {
                weight_bytes =
                    self.lower_recurrent(n, *lstm, *direction, *clip, *linear_before_reset, outputs, *batch_first)?;
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
        self.finish_layer(n, float, int16, weight_bytes, why_not_int16)
    }

    /// Record node `n`'s lowering in the report's layer list.
    fn finish_layer(
        &mut self,
        n: &Node,
        float: bool,
        int16: bool,
        weight_bytes: usize,
        why_not_int16: Option<&'static str>,
    ) -> Result<()> {
        self.layers.push(LayerInfo {
            name: n.name.clone(),
            op: n.onnx_op.clone(),
            precision: if float {
                Precision::F32
            } else if int16 {
                Precision::Int16
            } else {
                Precision::Int8
            },
            weight_bytes,
            why_not_int16,
            matrix: self.matrix.take(),
            why_f32: if float && self.sub_of_f32_operands.get(self.layers.len()) == Some(&true) {
                Some(SUB_OF_F32_OPERANDS)
            } else if float && self.reshape_between_f32.get(self.layers.len()) == Some(&true) {
                Some(RESHAPE_BETWEEN_F32)
            } else {
                None
            },
        });
        Ok(())
    }

    /// The int8 normalization of a uint8 frame input `x` into `out`: LOOKUP with a table per
    /// channel (format 1.7) holding, for every byte, the code the float path gives it (the
    /// preprocessing of `data::to_samples`, then QUANTIZE's rounding), so the model sees the same
    /// codes as when it is given float input. Returns the tables' bytes.
    fn frame_tables(&mut self, n: &Node, x: usize, out: usize, act: Act, f: &FrameInput, int16: bool) -> Result<usize> {
        use sparq_runtime::quant::{quantize_f32, quantize_f32_i16};
        let c = self.g.tensors[x].shape[1];
        let xi = self.get(x, DType::I8, None)?;
        let qo = if int16 { self.out_qp16(out, act)? } else { self.out_qp(out, act)? };
        let at = |v: &[f32], ch: usize| v[if v.len() == 1 { 0 } else { ch }];
        // Index `code + 128` is byte `u` (the input's codes are `u - 128`).
        let values: Vec<f32> = (0..c)
            .flat_map(|ch| {
                (0..256u32).map(move |u| ((u as f32 / 255.0 - at(&f.mean, ch)) / at(&f.std, ch)).clamp(act.lo, act.hi))
            })
            .collect();
        let (dtype, bytes) = if int16 {
            let t: Vec<u8> = values.iter().flat_map(|&v| quantize_f32_i16(v, qo.scale).to_le_bytes()).collect();
            (DType::I16, t)
        } else {
            (DType::I8, bytes_i8(&values.iter().map(|&v| quantize_f32(v, qo.scale, qo.zero_point)).collect::<Vec<_>>()))
        };
        let table_bytes = bytes.len();
        let tid = self.constant(&format!("{}:tables", n.name), dtype, &[c, 256], bytes, None);
        let mut p = [0; OP_PARAMS];
        p[rop::LOOKUP_PER_CHANNEL] = 1;
        let layout = self.spec.tensors[xi as usize].layout;
        let y = self.output(out, dtype, layout, Some(qo));
        self.op(rop::LOOKUP, &n.name, vec![xi, tid], y, p);
        Ok(table_bytes)
    }

    /// Whether an int8 node reads IR tensor `t`.
    fn has_int8_consumer(&self, t: usize) -> bool {
        self.g.nodes.iter().enumerate().any(|(i, n)| n.inputs.contains(&t) && !self.float_node[i])
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
        int16: bool,
    ) -> Result<(Vec<u32>, usize)> {
        let out_c = ws[0];
        let reordered = reordered_weights(w, ws, depthwise);
        if float {
            let wv = if depthwise { hwc(w, ws) } else { reordered };
            let wid = self.constant(&format!("{}:weights", n.name), DType::F32, w_dims, bytes_f32(&wv), None);
            let bid = self.constant(&format!("{}:bias", n.name), DType::F32, &[out_c], bytes_f32(bias), None);
            return Ok((vec![xi, wid, bid], wv.len() * 4));
        }
        let (q, scales, bias) = self.quantized_weights(n, x, w, &reordered, ws, bias, depthwise);
        let qx = self.tensor_q(xi);
        let qo = if int16 { self.out_qp16(out, act)? } else { self.out_qp(out, act)? };
        let requant::ChannelRequant { bias: b32, mult, shift } =
            requant::channel_outputs(qx, &scales, qo, &bias[..out_c]);
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
            self.matrix_constant(&name, w_dims, &q, pointwise, int16)
        } else {
            self.constant(&name, DType::I8, w_dims, bytes_i8(&q), None)
        };
        let bid = self.constant(&format!("{}:bias", n.name), DType::I32, &[out_c], bytes_i32(&b32), None);
        let mid = self.constant(&format!("{}:multiplier", n.name), DType::I32, &[out_c], bytes_i32(&mult), None);
        let sid = self.constant(&format!("{}:shift", n.name), DType::I32, &[out_c], bytes_i32(&shift), None);
        Ok((vec![xi, wid, bid, mid, sid], q.len() + out_c * 12))
    }
}

impl Lowerer<'_> {
    /// A Conv/Dense's int8 weights in the runtime's row order (`[O, KH, KW, I/g]`, depthwise
    /// `[C, taps]`), their per-channel scales and the bias: rounded from calibration data (the
    /// bias absorbing the rounding's error), or to nearest with bias correction from the input's
    /// calibrated channel means where there are some.
    #[allow(clippy::too_many_arguments)]
    fn quantized_weights(
        &self,
        n: &Node,
        x: usize,
        w: &[f32],
        reordered: &[f32],
        ws: &[usize],
        bias: &[f32],
        depthwise: bool,
    ) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
        let int16 = self.int16_node.get(self.layers.len()) == Some(&true);
        let rounded = int16.then(|| self.rounded_int16.get(&n.name)).flatten().or_else(|| self.rounded.get(&n.name));
        match rounded {
            Some(r) if r.q.len() == w.len() => {
                let q = if ws.len() == 4 && !depthwise { ohwi(&r.q, ws) } else { r.q.clone() };
                (q, r.scales.clone(), r.bias.clone())
            }
            _ => {
                let (q, scales) = quantize_per_channel(reordered, ws[0]);
                let bias = match self.means.get(&self.g.tensors[x].name) {
                    Some(mean) => bias::corrected_bias(mean, reordered, &q, &scales, bias, ws, depthwise),
                    None => bias.to_vec(),
                };
                (q, scales, bias)
            }
        }
    }

    /// Whether a Conv/Dense can run in int16 (A16W8) without an int32 overflow: the runtime's
    /// rule ([`sparq_runtime::kernels::qs16::fits_i32`]) on the weights and the int32 bias it
    /// would get at the int16 scales of its input and output.
    #[allow(clippy::too_many_arguments)]
    fn int16_fits(
        &mut self,
        n: &Node,
        x: usize,
        out: usize,
        w: &[f32],
        ws: &[usize],
        bias: &[f32],
        depthwise: bool,
        act: Act,
    ) -> Result<bool> {
        let reordered = reordered_weights(w, ws, depthwise);
        let (q, scales, bias) = self.quantized_weights(n, x, w, &reordered, ws, bias, depthwise);
        let (qx, qo) = (self.qp16(x)?, self.out_qp16(out, act)?);
        let out_c = ws[0];
        let r = requant::channel_outputs(qx, &scales, qo, &bias[..out_c]);
        // Rows of taps per output channel (depthwise too: `[C, taps]` before the transpose).
        Ok(sparq_runtime::kernels::qs16::fits_i32(&q, &r.bias, out_c, q.len() / out_c.max(1), false))
    }
}

/// A Conv/Dense's f32 weights in the order they are quantized in: `[O, KH, KW, I/g]` for a
/// convolution, per channel `[C, taps]` for a depthwise one (transposed to `[KH, KW, C]` after
/// quantizing), `[N, K]` for a fully-connected layer.
fn reordered_weights(w: &[f32], ws: &[usize], depthwise: bool) -> Vec<f32> {
    if ws.len() == 4 && !depthwise {
        ohwi(w, ws)
    } else {
        w.to_vec()
    }
}

/// Why a layer asked to run in int16 runs in int8 (`LayerInfo::why_not_int16`).
pub const INT16_OVERFLOW: &str =
    "its int32 accumulator could overflow with int16 inputs (|bias| + 32768 sum |w| > 2^31 - 1 for some channel)";
pub const INT16_SHAPE: &str =
    "int16 covers convolutions with one group or depthwise ones on rank-4 inputs, fully-connected layers, Adds of two computed tensors global average pooling and per-channel affines (BatchNormalization) on rank-4 inputs";

/// Why an int8 model's Sub can run in f32 although it has an int8 kernel.
/// Why a Reshape runs in f32 in an int8 model (a `LayerInfo::why_f32`).
pub const RESHAPE_BETWEEN_F32: &str = "a reshape between f32 layers (int8 would only add a quantization round trip)";

pub const SUB_OF_F32_OPERANDS: &str =
    "Sub of f32 operands (in int8 each would need a Quantize; in f32 the result needs at most one)";

/// Which nodes of `g` are Subs whose operands are all computed in f32, are graph inputs (f32)
/// or constants, given the precision of the nodes before them (`float_node`, updated in place:
/// such a Sub runs in f32). In int8 it would quantize both operands first, paying two Quantize
/// ops and their rounding for what an f32 Sub does exactly (x - ReduceMax(x) in an expanded
/// softmax: exactly 0 at the maximum in f32, possibly not in int8).
fn keep_f32_subs(g: &Graph, float_node: &mut [bool]) -> Vec<bool> {
    let mut kept = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if float_node[i] || !matches!(n.op, Op::Binary { function: rop::binary::SUB }) {
            continue;
        }
        let int8_operand = n
            .inputs
            .iter()
            .any(|&t| g.nodes[..i].iter().enumerate().any(|(j, p)| !float_node[j] && p.outputs.contains(&t)));
        if !int8_operand {
            float_node[i] = true;
            kept[i] = true;
        }
    }
    kept
}

pub struct Lowered {
    pub spec: ModelSpec,
    pub layers: Vec<LayerInfo>,
    /// Largest sum of simultaneously live activation bytes (the arena can't be smaller).
    pub liveness_bound: usize,
}

/// Lower `g` with activation ranges `ranges` (by tensor name; unused for f32).
pub fn lower(g: &Graph, stats: &Stats, opts: &LowerOptions) -> Result<Lowered> {
    for k in opts.keep_float.iter().chain(&opts.int16) {
        if !g.nodes.iter().any(|n| &n.name == k) {
            return Err(crate::error::CompileError::NoSuchNode(k.clone()));
        }
    }
    let mut float_node: Vec<bool> = g
        .nodes
        .iter()
        .map(|n| opts.precision == Precision::F32 || opts.keep_float.contains(&n.name) || n.op.float_only())
        .collect();
    // A reshape between f32 layers stays f32: in int8 it would only add a quantization round
    // trip (fixed point, for chains of them).
    let mut reshape_between_f32 = vec![false; g.nodes.len()];
    loop {
        let mut changed = false;
        for (i, n) in g.nodes.iter().enumerate() {
            if float_node[i] || !matches!(n.op, Op::Reshape) || g.outputs.contains(&n.outputs[0]) {
                continue;
            }
            let consumers = g.consumers(n.outputs[0]);
            let from_f32 = g.producer(n.inputs[0]).is_some_and(|p| float_node[p]);
            if from_f32 && !consumers.is_empty() && consumers.iter().all(|&c| float_node[c]) {
                float_node[i] = true;
                reshape_between_f32[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let sub_of_f32_operands = keep_f32_subs(g, &mut float_node);
    let mut lw = Lowerer {
        g,
        ranges: &stats.ranges,
        extremes: &stats.extremes,
        means: &stats.channel_means,
        spec: ModelSpec { name: g.name.clone(), ..Default::default() },
        variants: HashMap::new(),
        qparams: HashMap::new(),
        qparams16: HashMap::new(),
        int16_node: g
            .nodes
            .iter()
            .map(|n| {
                opts.int16.contains(&n.name)
                    && matches!(
                        n.op,
                        Op::Conv { .. }
                            | Op::Dense { .. }
                            | Op::Add { .. }
                            | Op::GlobalAveragePool
                            | Op::ChannelAffine { .. }
                    )
            })
            .collect(),
        layers: Vec::new(),
        pack: opts.pack,
        sparse: opts.sparse,
        rounded: opts.rounded.clone(),
        rounded_int16: opts.rounded_int16.clone(),
        matrix: None,
        float_node,
        sub_of_f32_operands,
        reshape_between_f32,
        frames: opts.frames.clone(),
    };
    for &i in &g.inputs {
        let t = &g.tensors[i];
        let (dtype, layout, q) = match &opts.frames {
            Some(f) => (DType::I8, f.layout, Some(QParams { scale: 1.0, zero_point: -128 })),
            None => (DType::F32, Layout::RowMajor, None),
        };
        let id = lw.act(&t.name.clone(), dtype, &t.shape.clone(), layout, q);
        lw.variants.insert((i, dtype as u8, layout as u8), id);
        if let Some(q) = q {
            lw.qparams.insert(i, q);
            // Widened for an int16 consumer, the frame's values exactly.
            lw.qparams16.insert(i, QParams { scale: 1.0, zero_point: 0 });
        }
        lw.spec.inputs.push(id);
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let float = lw.float_node[i];
        lw.node(n, float)?;
    }
    for &o in &g.outputs {
        let mut id = lw.get(o, DType::F32, Some(Layout::RowMajor))?;
        if g.is_const(o) {
            // A constant output (shape arithmetic folded away): copied into an arena tensor.
            let t = &g.tensors[o];
            let y = lw.act(&format!("{}:output", t.name), DType::F32, &t.shape, Layout::RowMajor, None);
            lw.op(rop::RESHAPE, &format!("{}:output", t.name), vec![id], y, [0; OP_PARAMS]);
            id = y;
        }
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
    fn conv_transpose_weights_in_output_channel_order() {
        // [C_in 4, C_out/g 3, 2, 1] with 2 groups: output channel co = g * 3 + col reads the
        // inputs of group g; its taps are contiguous in channel order.
        let shape = [4, 3, 2, 1];
        let w: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let (by_channel, index) = conv_transpose_channel_order(&w, &shape, 2);
        let mut seen = index.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..24).collect::<Vec<_>>());
        for (i, &to) in index.iter().enumerate() {
            assert_eq!(by_channel[to], w[i]);
        }
        // Output channel 4 (group 1, column 1): inputs 2 and 3, taps 0 and 1.
        let expect: Vec<f32> = [(2, 1, 0), (2, 1, 1), (3, 1, 0), (3, 1, 1)]
            .iter()
            .map(|&(ci, col, t)| w[(ci * 3 + col) * 2 + t])
            .collect();
        assert_eq!(&by_channel[4 * 4..5 * 4], &expect[..]);
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

    /// A layer with weights in `rounded_int16` gets them where it runs in int16, and its
    /// `rounded` ones where it runs in int8.
    #[test]
    fn int16_layers_lower_with_their_int16_rounding() {
        let g = graph();
        let mut rng = Rng::new(3);
        let samples: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(4 * 8 * 8, 1.0)).collect();
        let pb = indicatif::ProgressBar::hidden();
        let calib = crate::calib::stats::calibrate_graph(&g, &samples, crate::calib::CalibMethod::MinMax, &pb).unwrap();
        let stats = &calib.candidates[0].1;
        let n = g.nodes.iter().find(|n| matches!(n.op, Op::Conv { group: 1, .. })).unwrap();
        let rows = g.tensors[n.inputs[1]].shape[0];
        let (q, scales) = quantize_per_channel(g.value(n.inputs[1]), rows);
        let a = RoundedWeights { q, scales, bias: g.value(n.inputs[2]).to_vec() };
        let b = RoundedWeights { bias: a.bias.iter().map(|v| v + 0.5).collect(), ..a.clone() };
        let one = |w: &RoundedWeights| std::sync::Arc::new(HashMap::from([(n.name.clone(), w.clone())]));
        let file = |rounded, rounded_int16, int16: bool| {
            let int16 = if int16 { [n.name.clone()].into() } else { HashSet::new() };
            lower(&g, stats, &LowerOptions { rounded, rounded_int16, int16, ..Default::default() })
                .unwrap()
                .spec
                .to_bytes()
        };
        assert_eq!(file(one(&a), one(&b), true), file(one(&b), Default::default(), true));
        assert_ne!(file(one(&a), one(&b), true), file(one(&a), Default::default(), true));
        assert_eq!(file(one(&a), one(&b), false), file(one(&a), Default::default(), false));
    }
}
