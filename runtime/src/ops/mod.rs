//! Op families. Each family module holds its ops' attributes, the rules their operands must meet
//! (checked once, by [`Op::decode`], when the model is loaded and again when a session is
//! planned), the choice of kernel from its registry table for the session's CPU features, and the
//! call that runs it. `Session::run` only walks the decoded ops: no parsing, no checks, no choice.
//!
//! Adding an operator means: its kind in `sparq-format` (FORMAT.md), a variant of [`Op`] and a
//! family module (or an entry in an existing one) with `decode` and `run`. See CONTRIBUTING.md.

pub mod activation;
pub mod conv;
pub mod conv_transpose;
pub mod depthwise;
pub mod elementwise;
pub mod gemm;
pub mod matmul;
pub mod movement;
pub mod pool;
pub mod quantize;
pub mod recurrent;
pub mod reduce;
pub mod resize;
pub mod softmax;

use crate::cpu::Features;
use crate::error::RuntimeError;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::strided::{self, aligned, padded_dims, R};
use crate::quant::{MAX_SHIFT, MIN_SHIFT};
use crate::tensor::{constant_slice, Element};
use sparq_format::layout::op::{self, window};
use sparq_format::{DType, FileView, Layout, OpInfo, Storage, TensorInfo};

/// Longest int8 dot product: 65536 * 255 * 128 < 2^31, so the int32 sum of products is exact.
pub const MAX_REDUCTION: usize = 1 << 16;

/// An op decoded from the file and resolved to its kernel for one set of CPU features.
#[derive(Clone, Copy)]
pub enum Op<'a> {
    Conv(conv::Conv<'a>),
    Depthwise(depthwise::Depthwise<'a>),
    FullyConnected(gemm::FullyConnected<'a>),
    Pool(pool::Pool<'a>),
    GlobalAveragePool(pool::GlobalAveragePool<'a>),
    Binary(elementwise::Binary<'a>),
    Activation(activation::Activation<'a>),
    Reshape(movement::Reshape<'a>),
    Concat(movement::Concat<'a>),
    Transpose(movement::Transpose<'a>),
    Slice(movement::Slice<'a>),
    Resize(resize::Resize<'a>),
    Pad(movement::Pad<'a>),
    ConvTranspose(conv_transpose::ConvTranspose<'a>),
    Softmax(softmax::Softmax<'a>),
    Quantize(quantize::Quantize<'a>),
    MatMul(matmul::MatMul<'a>),
    BinaryFn(elementwise::BinaryFn<'a>),
    Reduce(reduce::Reduce<'a>),
    Normalize(reduce::Normalize<'a>),
    Gather(movement::Gather<'a>),
    Recurrent(recurrent::Recurrent<'a>),
    Select(elementwise::Select<'a>),
}

/// What decoding an op reads: the file, and the features its kernel may use.
#[derive(Clone, Copy)]
pub(crate) struct Decoder<'v, 'a> {
    pub view: &'v FileView<'a>,
    pub features: Features,
}

impl<'a> Decoder<'_, 'a> {
    pub fn input(&self, o: &OpInfo<'_>, i: usize) -> TensorInfo<'a> {
        self.view.tensor(o.input(i))
    }
    pub fn constant<T: Element>(&self, t: &TensorInfo<'_>) -> &'a [T] {
        constant_slice(self.view, t)
    }
}

impl<'a> Op<'a> {
    /// Decode op `o` of `view`, check everything its kernel relies on, and resolve the kernel
    /// for a CPU with `features`.
    pub fn decode(view: &FileView<'a>, o: &OpInfo<'a>, features: Features) -> Result<Op<'a>, RuntimeError> {
        let d = Decoder { view, features };
        check_operands(&d, o)?;
        Ok(match o.kind {
            op::CONV2D => Op::Conv(conv::Conv::decode(&d, o)?),
            op::DEPTHWISE_CONV2D => Op::Depthwise(depthwise::Depthwise::decode(&d, o)?),
            op::FULLY_CONNECTED => Op::FullyConnected(gemm::FullyConnected::decode(&d, o)?),
            op::MAX_POOL | op::AVERAGE_POOL => Op::Pool(pool::Pool::decode(&d, o)?),
            op::GLOBAL_AVERAGE_POOL => Op::GlobalAveragePool(pool::GlobalAveragePool::decode(&d, o)?),
            op::ADD | op::MUL => Op::Binary(elementwise::Binary::decode(&d, o)?),
            op::CLAMP | op::LOOKUP | op::UNARY => Op::Activation(activation::Activation::decode(&d, o)?),
            op::RESHAPE => Op::Reshape(movement::Reshape::decode(&d, o)?),
            op::CONCAT => Op::Concat(movement::Concat::decode(&d, o)?),
            op::TRANSPOSE => Op::Transpose(movement::Transpose::decode(&d, o)?),
            op::SLICE => Op::Slice(movement::Slice::decode(&d, o)?),
            op::RESIZE => Op::Resize(resize::Resize::decode(&d, o)?),
            op::PAD => Op::Pad(movement::Pad::decode(&d, o)?),
            op::CONV_TRANSPOSE => Op::ConvTranspose(conv_transpose::ConvTranspose::decode(&d, o)?),
            op::SOFTMAX => Op::Softmax(softmax::Softmax::decode(&d, o)?),
            op::QUANTIZE | op::DEQUANTIZE | op::REQUANTIZE => Op::Quantize(quantize::Quantize::decode(&d, o)?),
            op::MATMUL => Op::MatMul(matmul::MatMul::decode(&d, o)?),
            // int8 Sub (format 1.5) is int8 Add with the second multiplier negated: one kernel.
            op::BINARY if elementwise::is_qs8_sub(&d, o) => Op::Binary(elementwise::Binary::decode(&d, o)?),
            op::BINARY => Op::BinaryFn(elementwise::BinaryFn::decode(&d, o)?),
            op::REDUCE => Op::Reduce(reduce::Reduce::decode(&d, o)?),
            op::NORMALIZE => Op::Normalize(reduce::Normalize::decode(&d, o)?),
            op::GATHER => Op::Gather(movement::Gather::decode(&d, o)?),
            op::LSTM | op::GRU => Op::Recurrent(recurrent::Recurrent::decode(&d, o)?),
            op::WHERE => Op::Select(elementwise::Select::decode(&d, o)?),
            _ => return Err(RuntimeError::UnknownOp { index: o.index, kind: o.kind }),
        })
    }

    /// The name of the kernel this op runs (a registry entry's name, or the scalar routine of a
    /// family without a table).
    pub fn kernel(&self) -> &'static str {
        match self {
            Op::Conv(x) => x.kernel.name(),
            Op::Depthwise(x) => x.kernel.name(),
            Op::FullyConnected(x) => x.kernel_name(),
            Op::Pool(x) => x.kernel_name(),
            Op::GlobalAveragePool(x) => x.kernel_name(),
            Op::Binary(x) => x.kernel_name(),
            Op::Activation(x) => x.kernel_name(),
            Op::Reshape(x) => x.kernel_name(),
            Op::Concat(x) => x.kernel_name(),
            Op::Transpose(x) => x.kernel_name(),
            Op::Slice(x) => x.kernel_name(),
            Op::Resize(x) => x.kernel_name(),
            Op::Pad(x) => x.kernel_name(),
            Op::ConvTranspose(x) => x.kernel_name(),
            Op::Softmax(x) => x.kernel_name(),
            Op::Quantize(x) => x.kernel_name(),
            Op::MatMul(x) => x.kernel_name(),
            Op::BinaryFn(x) => x.kernel_name(),
            Op::Reduce(x) => x.kernel_name(),
            Op::Normalize(x) => x.kernel_name(),
            Op::Gather(x) => x.kernel_name(),
            Op::Recurrent(x) => x.kernel_name(),
            Op::Select(x) => x.kernel_name(),
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        match self {
            Op::Conv(x) => x.run(e),
            Op::Depthwise(x) => x.run(e),
            Op::FullyConnected(x) => x.run(e),
            Op::Pool(x) => x.run(e),
            Op::GlobalAveragePool(x) => x.run(e),
            Op::Binary(x) => x.run(e),
            Op::Activation(x) => x.run(e),
            Op::Reshape(x) => x.run(e),
            Op::Concat(x) => x.run(e),
            Op::Transpose(x) => x.run(e),
            Op::Slice(x) => x.run(e),
            Op::Resize(x) => x.run(e),
            Op::Pad(x) => x.run(e),
            Op::ConvTranspose(x) => x.run(e),
            Op::Softmax(x) => x.run(e),
            Op::Quantize(x) => x.run(e),
            Op::MatMul(x) => x.run(e),
            Op::BinaryFn(x) => x.run(e),
            Op::Reduce(x) => x.run(e),
            Op::Normalize(x) => x.run(e),
            Op::Gather(x) => x.run(e),
            Op::Recurrent(x) => x.run(e),
            Op::Select(x) => x.run(e),
        }
    }
}

/// The rules every op shares: one arena output, the input count its kind declares, no input
/// overlapping the output, packed and block-sparse tensors only as weights.
fn check_operands(d: &Decoder<'_, '_>, o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let bad = |reason| invalid(o, reason);
    // Recurrent ops also write their last states; every other kind has one output.
    let n_out = match o.kind {
        op::LSTM => 3,
        op::GRU => 2,
        _ => 1,
    };
    if o.output_count != n_out {
        return Err(bad(if n_out == 1 { "must have exactly one output" } else { "wrong number of outputs" }));
    }
    let outs = || (0..o.output_count).map(|i| d.view.tensor(o.output(i)));
    if outs().any(|y| y.storage != Storage::Arena) {
        return Err(bad("output is not an arena tensor"));
    }
    for i in 0..o.output_count {
        for j in i + 1..o.output_count {
            if o.output(i) == o.output(j) || overlaps(&d.view.tensor(o.output(i)), &d.view.tensor(o.output(j))) {
                return Err(bad("outputs overlap in the arena"));
            }
        }
    }
    let n_in = o.input_count;
    // Input counts first: every later check may read any input the kind declares.
    let counts_ok = match o.kind {
        op::CONV2D | op::DEPTHWISE_CONV2D | op::FULLY_CONNECTED => (3..=5).contains(&n_in),
        op::CONV_TRANSPOSE => n_in == 3 || n_in == 5,
        op::ADD | op::MUL | op::LOOKUP | op::MATMUL | op::BINARY | op::GATHER => n_in == 2,
        op::NORMALIZE => n_in == 1 || n_in == 3,
        op::LSTM => n_in == 6,
        op::GRU => n_in == 5,
        op::WHERE => n_in == 3,
        op::CONCAT => n_in >= 1,
        _ => n_in == 1,
    };
    if !counts_ok {
        return Err(bad("wrong number of inputs"));
    }
    // Zero-size tensors are not supported (FORMAT.md, "Validation"): no kernel needs to handle an
    // empty operand, an empty reduction or an output it never writes.
    if (0..n_in).map(|i| d.input(o, i)).chain(outs()).any(|t| t.shape().contains(&0)) {
        return Err(bad("an operand has a zero-size dimension (zero-size tensors are not supported)"));
    }
    // Int16 tensors (format 1.6): symmetric activations, only where a kernel reads them.
    let i16_kind = matches!(
        o.kind,
        op::CONV2D
            | op::DEPTHWISE_CONV2D
            | op::FULLY_CONNECTED
            | op::QUANTIZE
            | op::DEQUANTIZE
            | op::REQUANTIZE
            | op::RESHAPE
            | op::ADD
            | op::GLOBAL_AVERAGE_POOL
            | op::LOOKUP
    );
    for (k, t) in (0..n_in).map(|i| d.input(o, i)).chain(outs()).enumerate().filter(|(_, t)| t.dtype == DType::I16) {
        if !i16_kind {
            return Err(bad("int16 operands are only read by Conv2d, DepthwiseConv2d, FullyConnected, Add, GlobalAveragePool, Reshape, (de/re)quantize and per-channel Lookup"));
        }
        // A per-channel LOOKUP into int16 (1.7) reads its tables (input 1) as an int16 constant.
        if o.kind == op::LOOKUP && k == 1 {
            if t.storage != Storage::Constant {
                return Err(bad("int16 lookup tables must be a constant"));
            }
        } else if t.storage != Storage::Arena || t.zero_point != 0 || !(t.scale.is_finite() && t.scale > 0.0) {
            return Err(bad("an int16 tensor must be an arena tensor with zero point 0 and a positive finite scale"));
        }
    }
    for i in 0..n_in {
        let x = d.input(o, i);
        if outs().any(|y| overlaps(&x, &y)) {
            return Err(bad("output overlaps an input in the arena"));
        }
        let weight_slot = i == 1 && matches!(o.kind, op::CONV2D | op::FULLY_CONNECTED);
        if matches!(x.layout, Layout::Packed | Layout::BlockSparse) && !weight_slot {
            return Err(bad("packed or block-sparse tensor used other than as Conv2d/FullyConnected weights"));
        }
    }
    Ok(())
}

pub(crate) fn invalid(o: &OpInfo<'_>, reason: &'static str) -> RuntimeError {
    RuntimeError::InvalidOp { index: o.index, kind: op::name(o.kind), reason }
}

pub(crate) fn expect_inputs(o: &OpInfo<'_>, n: usize) -> Result<(), RuntimeError> {
    if o.input_count == n {
        Ok(())
    } else {
        Err(invalid(o, "wrong number of inputs"))
    }
}

fn overlaps(a: &TensorInfo<'_>, b: &TensorInfo<'_>) -> bool {
    a.storage == Storage::Arena
        && b.storage == Storage::Arena
        && a.data_size > 0
        && b.data_size > 0
        && a.data_offset < b.data_offset + b.data_size
        && b.data_offset < a.data_offset + a.data_size
}

/// Output spatial size of a window op, or `None` if the geometry is impossible.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad_a: usize,
    pad_b: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
    let padded = input.checked_add(pad_a)?.checked_add(pad_b)?;
    Some(padded.checked_sub(span)? / stride + 1)
}

/// The window of a convolution or pooling op (`groups` left 1), checked against its NHWC input
/// and output: positive kernel, stride and dilation within caps that keep every index product
/// and every int32 window sum exact, padding smaller than the kernel extent, and the output
/// shape the window gives.
pub(crate) fn window_geometry(
    o: &OpInfo<'_>,
    x: &TensorInfo<'_>,
    y: &TensorInfo<'_>,
) -> Result<ConvGeometry, RuntimeError> {
    let bad = |reason| invalid(o, reason);
    let p = &o.params;
    if x.storage != Storage::Arena || x.layout != Layout::Nhwc || y.layout != Layout::Nhwc {
        return Err(bad("input and output must be NHWC arena tensors"));
    }
    if x.dtype != y.dtype {
        return Err(bad("input and output dtypes differ"));
    }
    let dim = |slot: usize| if p[slot] >= 0 { Ok(p[slot] as usize) } else { Err(bad("negative window parameter")) };
    let (kh, kw, sh, sw) =
        (dim(window::KERNEL_H)?, dim(window::KERNEL_W)?, dim(window::STRIDE_H)?, dim(window::STRIDE_W)?);
    let (pt, pl, pb, pr) =
        (dim(window::PAD_TOP)?, dim(window::PAD_LEFT)?, dim(window::PAD_BOTTOM)?, dim(window::PAD_RIGHT)?);
    let (dh, dw) = (dim(window::DILATION_H)?, dim(window::DILATION_W)?);
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 || dh == 0 || dw == 0 {
        return Err(bad("kernel, stride and dilation must be at least 1"));
    }
    if kh * kw > 1 << 16 || sh > 1 << 16 || sw > 1 << 16 || dh > 1 << 16 || dw > 1 << 16 {
        return Err(bad("kernel, stride or dilation too large"));
    }
    if pt >= kh * dh || pl >= kw * dw || pb >= kh * dh || pr >= kw * dw {
        // Such padding creates windows with no input at all.
        return Err(bad("padding not smaller than the kernel extent"));
    }
    let oh = window_out(x.dims[2], kh, sh, pt, pb, dh).ok_or(bad("kernel larger than the padded input"))?;
    let ow = window_out(x.dims[3], kw, sw, pl, pr, dw).ok_or(bad("kernel larger than the padded input"))?;
    if y.dims[0] != x.dims[0] || y.dims[2] != oh || y.dims[3] != ow {
        return Err(bad("output shape does not match the window geometry"));
    }
    Ok(ConvGeometry {
        batch: x.dims[0],
        in_c: x.dims[1],
        in_h: x.dims[2],
        in_w: x.dims[3],
        out_c: y.dims[1],
        out_h: oh,
        out_w: ow,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
        dilation_h: dh,
        dilation_w: dw,
        groups: 1,
    })
}

/// `a` broadcasts to `out` (numpy rules, right-aligned).
pub(crate) fn broadcasts_to(a: &TensorInfo<'_>, out: &TensorInfo<'_>) -> bool {
    if a.rank > out.rank {
        return false;
    }
    let off = out.rank - a.rank;
    (0..a.rank).all(|i| a.dims[i] == out.dims[off + i] || a.dims[i] == 1)
}

pub(crate) fn same_quant(o: &OpInfo<'_>, x: &TensorInfo<'_>, y: &TensorInfo<'_>) -> Result<(), RuntimeError> {
    let quantized = matches!(x.dtype, DType::I8 | DType::I16);
    if x.dtype != y.dtype || (quantized && (x.scale != y.scale || x.zero_point != y.zero_point)) {
        return Err(invalid(o, "int8 / int16 input and output must share scale and zero point"));
    }
    Ok(())
}

pub(crate) fn check_clamp_i8(o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let (lo, hi) = (o.params[op::ACT_MIN], o.params[op::ACT_MAX]);
    if !(-128..=127).contains(&lo) || !(-128..=127).contains(&hi) || lo > hi {
        return Err(invalid(o, "activation clamp outside [-128, 127]"));
    }
    Ok(())
}

pub(crate) fn check_clamp_i16(o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let (lo, hi) = (o.params[op::ACT_MIN], o.params[op::ACT_MAX]);
    let range = i16::MIN as i32..=i16::MAX as i32;
    if !range.contains(&lo) || !range.contains(&hi) || lo > hi {
        return Err(invalid(o, "activation clamp outside [-32768, 32767]"));
    }
    Ok(())
}

/// Why an int16 layer's weights are refused: its int32 accumulator could overflow.
pub(crate) const QS16_OVERFLOW: &str =
    "int16 layer whose int32 accumulator could overflow (|bias| + 32768 sum |w| > 2^31 - 1)";

/// The int8 weight matrix (`n x k`, row-major or packed panels) of an int16 GEMM layer (format
/// 1.6), checked: an int8 constant whose int32 accumulator cannot overflow for any int16 input
/// (`|bias| + 32768 sum |w|` per output channel, [`crate::kernels::qs16::fits_i32`]).
pub(crate) fn qs16_weights<'a>(
    d: &Decoder<'_, 'a>,
    o: &OpInfo<'_>,
    w: &TensorInfo<'_>,
    rq: &Requant<'_>,
    (n, k): (usize, usize),
) -> Result<crate::kernels::gemm::WeightMatrix<'a>, RuntimeError> {
    if w.dtype != DType::I8 || w.storage != Storage::Constant || !matches!(w.layout, Layout::RowMajor | Layout::Packed)
    {
        return Err(invalid(o, "an int16 layer's weights must be an int8 constant, row-major or packed"));
    }
    let m = crate::kernels::gemm::WeightMatrix { data: d.constant::<i8>(w), n, k, pack: w.pack };
    // Sums of |w| per row, in whatever layout (packed panels pad with zeros).
    let row_abs_sum = |c: usize| m.row_from(c, 0).take(k).map(|v| (v as i64).abs()).sum::<i64>();
    if !crate::kernels::qs16::accumulator_fits(rq.bias, n, row_abs_sum) {
        return Err(invalid(o, QS16_OVERFLOW));
    }
    Ok(m)
}

pub(crate) fn check_clamp_f32(o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let (lo, hi) = (o.param_f32(op::ACT_MIN), o.param_f32(op::ACT_MAX));
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(invalid(o, "activation clamp bounds are NaN or reversed"));
    }
    Ok(())
}

pub(crate) fn check_mult_shift(o: &OpInfo<'_>, slot: usize) -> Result<(), RuntimeError> {
    if o.params[slot] < 0 || !(MIN_SHIFT..=MAX_SHIFT).contains(&o.params[op::SHIFT]) {
        return Err(invalid(o, "requantization multiplier or shift out of range"));
    }
    Ok(())
}

pub(crate) fn check_constant(
    o: &OpInfo<'_>,
    t: &TensorInfo<'_>,
    dtype: DType,
    len: usize,
    what: &'static str,
) -> Result<(), RuntimeError> {
    if t.storage != Storage::Constant || t.dtype != dtype || t.elements() != len {
        return Err(invalid(o, what));
    }
    Ok(())
}

/// The output stage of a convolution or fully-connected layer, checked: f32 layers take a bias
/// (returned as `Err(bias)`), int8 layers bias, multipliers and shifts per output channel.
pub(crate) enum OutputStage<'a> {
    Int8(Requant<'a>),
    /// Int16 activations, int8 weights (format 1.6); the weights are checked by the op.
    Int16(Requant<'a>),
    F32 {
        bias: &'a [f32],
        lo: f32,
        hi: f32,
    },
}

pub(crate) fn output_stage<'a>(
    d: &Decoder<'_, 'a>,
    o: &OpInfo<'_>,
    x: &TensorInfo<'_>,
    y: &TensorInfo<'_>,
    channels: usize,
) -> Result<OutputStage<'a>, RuntimeError> {
    match x.dtype {
        DType::F32 => {
            if o.input_count != 3 {
                return Err(invalid(o, "f32 layers take input, weights and bias"));
            }
            let b = d.input(o, 2);
            check_constant(
                o,
                &b,
                DType::F32,
                channels,
                "bias must be an f32 constant with one value per output channel",
            )?;
            check_clamp_f32(o)?;
            Ok(OutputStage::F32 { bias: d.constant(&b), lo: o.param_f32(op::ACT_MIN), hi: o.param_f32(op::ACT_MAX) })
        }
        DType::I8 | DType::I16 => {
            if o.input_count != 5 {
                return Err(invalid(o, "int8 and int16 layers take input, weights, bias, multipliers and shifts"));
            }
            let (b, m, s) = (d.input(o, 2), d.input(o, 3), d.input(o, 4));
            check_constant(
                o,
                &b,
                DType::I32,
                channels,
                "bias must be an i32 constant with one value per output channel",
            )?;
            check_constant(o, &m, DType::I32, channels, "multipliers must be an i32 constant per output channel")?;
            check_constant(o, &s, DType::I32, channels, "shifts must be an i32 constant per output channel")?;
            let (mult, shift) = (d.constant::<i32>(&m), d.constant::<i32>(&s));
            if mult.iter().any(|&m| m < 0) || shift.iter().any(|s| !(MIN_SHIFT..=MAX_SHIFT).contains(s)) {
                return Err(invalid(o, "requantization multiplier or shift out of range"));
            }
            let rq = Requant {
                bias: d.constant(&b),
                mult,
                shift,
                input_zero_point: x.zero_point,
                output_zero_point: y.zero_point,
                act_min: o.params[op::ACT_MIN],
                act_max: o.params[op::ACT_MAX],
            };
            if x.dtype == DType::I16 {
                check_clamp_i16(o)?;
                return Ok(OutputStage::Int16(rq));
            }
            check_clamp_i8(o)?;
            Ok(OutputStage::Int8(rq))
        }
        DType::I32 => Err(invalid(o, "i32 activations are not supported")),
    }
}

/// Row-major strides of logical `dims`, as a 6-d walk.
fn row_major(dims: &[usize]) -> [usize; R] {
    let mut s = [0usize; R];
    let mut acc = 1;
    for a in (0..dims.len()).rev() {
        s[R - dims.len() + a] = acc;
        acc *= dims[a];
    }
    s
}

/// Walk dims and strides of a one-input op whose input and output share the logical linear
/// order. For a reshape, the walk follows the side that is not dense row-major (load checked
/// that at least one is), addressing the other by the logical linear index.
pub(crate) fn unary_walk(x: &TensorInfo<'_>, y: &TensorInfo<'_>) -> ([usize; R], [[usize; R]; 2]) {
    if x.shape() == y.shape() {
        (padded_dims(x.shape()), [aligned(x, x.shape()), aligned(y, x.shape())])
    } else if strided::is_dense_row_major(y) {
        (padded_dims(x.shape()), [aligned(x, x.shape()), row_major(x.shape())])
    } else {
        (padded_dims(y.shape()), [row_major(y.shape()), aligned(y, y.shape())])
    }
}

/// Operand access while running: the file's constants and the session's arena.
pub(crate) struct Exec<'a, 'p> {
    pub view: FileView<'a>,
    pub base: *mut u8,
    #[cfg(feature = "std")]
    pub pool: Option<&'p crate::pool::ThreadPool>,
    #[cfg(not(feature = "std"))]
    pub _pool: core::marker::PhantomData<&'p ()>,
}

#[cfg(feature = "std")]
/// Elements below which an elementwise op runs on one thread (waking a second costs about a
/// microsecond, the time of some 10^4 elements).
const SPLIT_MIN: usize = 16 * 1024;

/// An elementwise kernel call on parts of contiguous operands: `f(a, b, y)`.
type MapCall<'f, A, B, T> = dyn Fn(&[A], &[B], &mut [T]) + Sync + 'f;
/// A strided unary map on part of a walk: `f(dims, x, y)`.
type StridedCall<'f, A, T> = dyn Fn(&[usize; R], &[A], &mut [T]) + Sync + 'f;

/// A convolution-like kernel call: `f(geometry, input, output)`.
type ConvCall<'f, T> = dyn Fn(&ConvGeometry, &[T], &mut [T]) + Sync + 'f;

/// An output pointer shared by the threads of one op, each writing a disjoint part.
pub(crate) struct OutPtr<T>(pub(crate) *mut T);
// (By hand: a derive would ask `T: Copy`.)
impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for OutPtr<T> {}
// SAFETY: only used to hand each thread a disjoint sub-slice of one output (see `conv_rows`).
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// (A method, so closures capture the whole `Sync` wrapper rather than its raw field.)
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

impl<'a> Exec<'a, '_> {
    /// An input's data: a constant in the file or a tensor in the arena.
    pub fn data<T: Element>(&self, t: &TensorInfo<'_>) -> &[T] {
        match t.storage {
            Storage::Constant => constant_slice(&self.view, t),
            // SAFETY: arena tensors were validated to lie in the arena with aligned offsets; an
            // op's inputs never overlap its output (checked at load), so this shared view does
            // not alias the mutable output view created by `out`.
            Storage::Arena => unsafe {
                core::slice::from_raw_parts(self.base.add(t.data_offset).cast::<T>(), t.elements())
            },
        }
    }

    #[allow(clippy::mut_from_ref)]
    pub fn out<T: Element>(&self, t: &TensorInfo<'_>) -> &mut [T] {
        // SAFETY: see `data`; the output is an arena tensor (validated) disjoint from the inputs.
        unsafe { core::slice::from_raw_parts_mut(self.base.add(t.data_offset).cast::<T>(), t.elements()) }
    }

    /// Run `f(start, end)` over `0..n` cut into one contiguous part per thread, every cut at a
    /// multiple of `unit`; once over the whole range without a pool, or when `n` is below `min`
    /// (too little work to be worth a second thread). The parts are disjoint and cover `0..n`.
    pub fn split(&self, n: usize, unit: usize, min: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            let threads = pool.threads();
            let units = n.div_ceil(unit.max(1));
            if n >= min && units >= threads {
                pool.run(&|i| {
                    let (s, e) = ((units * i / threads * unit).min(n), (units * (i + 1) / threads * unit).min(n));
                    if s < e {
                        f(s, e);
                    }
                });
                return;
            }
        }
        let _ = (unit, min);
        if n > 0 {
            f(0, n)
        }
    }

    /// An elementwise kernel `f(a, b, y)` over contiguous operands of one length, split into
    /// one run per thread (cut at multiples of 64 elements) when they are long enough: every
    /// output is computed from the same inputs by the same code, so results do not depend on
    /// the thread count.
    pub fn split_map<A: Sync, B: Sync, T: Send>(&self, a: &[A], b: &[B], y: &mut [T], f: &MapCall<'_, A, B, T>) {
        let n = a.len().min(b.len()).min(y.len());
        #[cfg(feature = "std")]
        {
            let out = OutPtr(y.as_mut_ptr());
            self.split(n, 64, SPLIT_MIN, &|s, e| {
                // SAFETY: `[s, e)` lies in `y` (`e <= n <= y.len()`), and the parts of `split`
                // are disjoint; `split` returns only when every part is done.
                let ys = unsafe { core::slice::from_raw_parts_mut(out.get().add(s), e - s) };
                f(&a[s..e], &b[s..e], ys)
            });
        }
        #[cfg(not(feature = "std"))]
        f(&a[..n], &b[..n], &mut y[..n]);
    }

    /// A strided unary map `f(dims, x, y)` (the walk of `dims` with strides `st` into `x` and
    /// `y`, from their starts), split across threads along the axis with the largest output
    /// stride when the output is dense (that axis's index ranges are then disjoint runs of `y`):
    /// each thread walks its index range of that axis from offset slices.
    pub fn split_strided<A: Sync, T: Send>(
        &self,
        dims: &[usize; R],
        st: &[[usize; R]; 2],
        x: &[A],
        y: &mut [T],
        f: &StridedCall<'_, A, T>,
    ) {
        #[cfg(feature = "std")]
        {
            let total: usize = dims.iter().product();
            let axis = (0..R).filter(|&d| dims[d] > 1).max_by_key(|&d| st[1][d]);
            if let Some(d) = axis.filter(|&d| st[1][d] * dims[d] == total && total <= y.len()) {
                let (sx, sy) = (st[0][d], st[1][d]);
                let out = OutPtr(y.as_mut_ptr());
                self.split(dims[d], 1, SPLIT_MIN.div_ceil(sy), &|s, e| {
                    let mut sub = *dims;
                    sub[d] = e - s;
                    // SAFETY: indices `[s, e)` of axis `d` are the run `[s sy, e sy)` of the dense
                    // output (checked above: `sy dims[d]` is every element), disjoint between
                    // the parts of `split`, which returns only when every part is done.
                    let ys = unsafe { core::slice::from_raw_parts_mut(out.get().add(s * sy), (e - s) * sy) };
                    f(&sub, &x[(s * sx).min(x.len())..], ys)
                });
                return;
            }
        }
        let _ = st;
        f(dims, x, y)
    }

    /// Run a convolution-like kernel (`f(geometry, input, output)` over NHWC tensors), split by
    /// output rows across the session's threads: each thread gets the rows `[oh0, oh1)` as a
    /// convolution of its own, over the input rows it reads (the padding adjusted), writing its
    /// own part of the output. Results are identical to one call: every output is computed by
    /// the same kernel from the same inputs.
    pub fn conv_rows<T: Element + Send + Sync>(&self, g: &ConvGeometry, x: &[T], y: &mut [T], f: &ConvCall<'_, T>) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            let threads = pool.threads();
            if g.batch == 1 && g.out_h >= 2 * threads {
                let row = g.out_w * g.out_c;
                let out = OutPtr(y.as_mut_ptr());
                assert!(y.len() >= g.out_h * row);
                pool.run(&|i| {
                    let (oh0, oh1) = (g.out_h * i / threads, g.out_h * (i + 1) / threads);
                    if oh0 == oh1 {
                        return;
                    }
                    // First input row read, and the top padding left above it.
                    let r0 = (oh0 * g.stride_h).saturating_sub(g.pad_top);
                    let pad_top = g.pad_top + r0 - oh0 * g.stride_h;
                    let last = (oh1 - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h;
                    let in_h = (g.in_h - r0.min(g.in_h)).min((last + 1).saturating_sub(g.pad_top + r0));
                    let sub = ConvGeometry { in_h, out_h: oh1 - oh0, pad_top, ..*g };
                    let xs = &x[(r0 * g.in_w * g.in_c).min(x.len())..];
                    // SAFETY: rows `[oh0, oh1)` of the output (asserted in bounds above) are
                    // disjoint between threads, and `run` returns only when all are done.
                    let ys = unsafe { core::slice::from_raw_parts_mut(out.get().add(oh0 * row), (oh1 - oh0) * row) };
                    f(&sub, xs, ys);
                });
                return;
            }
        }
        f(g, x, y)
    }
}
