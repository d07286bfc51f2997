//! A validated model. `Model::from_bytes` checks the file structure (sparq-format) and then every
//! op's operands and parameters against what its kernel will read, so `Session::run` needs no
//! checks and cannot index out of bounds.

use crate::error::RuntimeError;
use crate::quant::{MAX_SHIFT, MIN_SHIFT};
use sparq_format::layout::op::{self, window};
use sparq_format::{DType, FileView, Layout, OpInfo, ParseOptions, Storage, TensorInfo};

#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    view: FileView<'a>,
}

impl<'a> Model<'a> {
    /// Validate `bytes` and return a zero-copy view. The buffer must be 4-byte aligned (64 is
    /// best: every weight blob is then cache-line aligned).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>, RuntimeError> {
        Self::from_bytes_with(bytes, ParseOptions::default())
    }

    pub fn from_bytes_with(bytes: &'a [u8], opts: ParseOptions) -> Result<Model<'a>, RuntimeError> {
        let view = FileView::parse_with(bytes, opts)?;
        for i in 0..view.op_count() {
            check_op(&view, &view.op(i))?;
        }
        for i in 0..view.input_count() {
            // Inputs are written by the caller, never by an op: no op may output into them.
            let t = view.input(i);
            for k in 0..view.op_count() {
                if view.op(k).output(0) == t {
                    return Err(invalid(&view.op(k), "writes a graph input"));
                }
            }
        }
        Ok(Model { view })
    }

    pub fn view(&self) -> &FileView<'a> {
        &self.view
    }
    pub fn name(&self) -> &'a str {
        self.view.model_name()
    }
    /// Exact number of arena bytes a session needs.
    pub fn arena_size(&self) -> usize {
        self.view.arena_size()
    }
    pub fn input_count(&self) -> usize {
        self.view.input_count()
    }
    pub fn output_count(&self) -> usize {
        self.view.output_count()
    }
    pub fn input(&self, i: usize) -> Option<TensorInfo<'a>> {
        (i < self.input_count()).then(|| self.view.tensor(self.view.input(i)))
    }
    pub fn output(&self, i: usize) -> Option<TensorInfo<'a>> {
        (i < self.output_count()).then(|| self.view.tensor(self.view.output(i)))
    }
    pub fn op_count(&self) -> usize {
        self.view.op_count()
    }
    pub fn op(&self, i: usize) -> OpInfo<'a> {
        self.view.op(i)
    }
    pub fn tensor(&self, i: usize) -> TensorInfo<'a> {
        self.view.tensor(i)
    }
    /// Multiply-accumulates of op `i` (0 for ops without a reduction).
    pub fn op_macs(&self, i: usize) -> u64 {
        let o = self.op(i);
        match o.kind {
            op::CONV2D | op::DEPTHWISE_CONV2D => {
                let y = self.tensor(o.output(0));
                let w = self.tensor(o.input(1));
                let per_out: usize =
                    if o.kind == op::CONV2D { w.shape()[1..].iter().product() } else { w.dims[1] * w.dims[2] };
                (y.elements() * per_out) as u64
            }
            op::FULLY_CONNECTED => {
                let y = self.tensor(o.output(0));
                (y.elements() * self.tensor(o.input(1)).dims[1]) as u64
            }
            _ => 0,
        }
    }
}

/// Longest int8 dot product: 65536 * 255 * 128 < 2^31, so the int32 sum of products is exact.
pub const MAX_REDUCTION: usize = 1 << 16;

fn invalid(o: &OpInfo<'_>, reason: &'static str) -> RuntimeError {
    RuntimeError::InvalidOp { index: o.index, kind: op::name(o.kind), reason }
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

/// `a` broadcasts to `out` (numpy rules, right-aligned).
fn broadcasts_to(a: &TensorInfo<'_>, out: &TensorInfo<'_>) -> bool {
    if a.rank > out.rank {
        return false;
    }
    let off = out.rank - a.rank;
    (0..a.rank).all(|i| a.dims[i] == out.dims[off + i] || a.dims[i] == 1)
}

fn check_op(view: &FileView<'_>, o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let bad = |reason| invalid(o, reason);
    let input = |i: usize| view.tensor(o.input(i));
    let p = &o.params;
    if o.output_count != 1 {
        return Err(bad("must have exactly one output"));
    }
    let y = view.tensor(o.output(0));
    if y.storage != Storage::Arena {
        return Err(bad("output is not an arena tensor"));
    }
    let n_in = o.input_count;
    // Input counts first: every later check may read any input the kind declares.
    let counts_ok = match o.kind {
        op::CONV2D | op::DEPTHWISE_CONV2D | op::FULLY_CONNECTED => (3..=5).contains(&n_in),
        op::ADD | op::MUL => n_in == 2,
        op::CONCAT => n_in >= 1,
        _ => n_in == 1,
    };
    if !counts_ok {
        return Err(bad("wrong number of inputs"));
    }
    let expect_inputs = |n: usize| {
        if n_in == n {
            Ok(())
        } else {
            Err(bad("wrong number of inputs"))
        }
    };
    for i in 0..n_in {
        if overlaps(&input(i), &y) {
            return Err(bad("output overlaps an input in the arena"));
        }
        let weight_slot = i == 1 && matches!(o.kind, op::CONV2D | op::FULLY_CONNECTED);
        if matches!(input(i).layout, Layout::Packed | Layout::BlockSparse) && !weight_slot {
            return Err(bad("packed or block-sparse tensor used other than as Conv2d/FullyConnected weights"));
        }
    }
    match o.kind {
        op::CONV2D | op::DEPTHWISE_CONV2D | op::MAX_POOL | op::AVERAGE_POOL => {
            let x = input(0);
            if x.storage != Storage::Arena || x.layout != Layout::Nhwc || y.layout != Layout::Nhwc {
                return Err(bad("input and output must be NHWC arena tensors"));
            }
            if x.dtype != y.dtype {
                return Err(bad("input and output dtypes differ"));
            }
            let dim = |slot: usize| {
                if p[slot] >= 0 {
                    Ok(p[slot] as usize)
                } else {
                    Err(bad("negative window parameter"))
                }
            };
            let (kh, kw, sh, sw) =
                (dim(window::KERNEL_H)?, dim(window::KERNEL_W)?, dim(window::STRIDE_H)?, dim(window::STRIDE_W)?);
            let (pt, pl, pb, pr) =
                (dim(window::PAD_TOP)?, dim(window::PAD_LEFT)?, dim(window::PAD_BOTTOM)?, dim(window::PAD_RIGHT)?);
            let (dh, dw) = (dim(window::DILATION_H)?, dim(window::DILATION_W)?);
            if kh == 0 || kw == 0 || sh == 0 || sw == 0 || dh == 0 || dw == 0 {
                return Err(bad("kernel, stride and dilation must be at least 1"));
            }
            // Caps that keep every index product and every int32 sum of a window exact.
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
            let (cin, cout) = (x.dims[1], y.dims[1]);
            match o.kind {
                op::CONV2D | op::DEPTHWISE_CONV2D => {
                    let w = input(1);
                    let groups = if o.kind == op::CONV2D { dim(window::GROUPS)? } else { cin };
                    if groups == 0 || cin % groups != 0 || cout % groups != 0 {
                        return Err(bad("groups must divide input and output channels"));
                    }
                    if o.kind == op::DEPTHWISE_CONV2D {
                        if cin != cout || w.shape() != [1, kh, kw, cin] {
                            return Err(bad(
                                "depthwise weights must be [1, KH, KW, C] with C = input = output channels",
                            ));
                        }
                    } else if w.shape() != [cout, kh, kw, cin / groups] {
                        return Err(bad("weights must be [O, KH, KW, I/groups]"));
                    }
                    if w.layout == Layout::Nhwc
                        || (matches!(w.layout, Layout::Packed | Layout::BlockSparse)
                            && (o.kind != op::CONV2D || groups != 1 || w.dtype != DType::I8))
                    {
                        return Err(bad(
                            "weights must be row-major, or packed / block-sparse for an int8 convolution with one group",
                        ));
                    }
                    if w.storage != Storage::Constant || w.dtype != x.dtype {
                        return Err(bad("weights must be a constant of the input's dtype"));
                    }
                    if kh * kw * (cin / groups) > MAX_REDUCTION {
                        return Err(bad("reduction longer than 65536 taps (int32 accumulator could overflow)"));
                    }
                    check_bias_requant(o, view, x.dtype, cout)?;
                }
                op::MAX_POOL | op::AVERAGE_POOL => {
                    expect_inputs(1)?;
                    if cin != cout {
                        return Err(bad("pooling changes the channel count"));
                    }
                    same_quant(o, &x, &y)?;
                }
                _ => unreachable!(),
            }
        }
        op::FULLY_CONNECTED => {
            let x = input(0);
            let w = input(1);
            if x.storage != Storage::Arena
                || x.layout != Layout::RowMajor
                || y.layout != Layout::RowMajor
                || x.rank == 0
            {
                return Err(bad("input and output must be row-major arena tensors"));
            }
            if w.rank != 2 || w.storage != Storage::Constant || w.dtype != x.dtype {
                return Err(bad("weights must be a [N, K] constant of the input's dtype"));
            }
            if w.layout == Layout::Nhwc || (w.layout == Layout::Packed && w.dtype != DType::I8) {
                return Err(bad("weights must be row-major, or packed int8"));
            }
            let f32_out = x.dtype == DType::I8 && y.dtype == DType::F32;
            if w.layout == Layout::BlockSparse && x.dtype != DType::I8 {
                return Err(bad("block-sparse weights need an int8 input"));
            }
            if x.dtype != y.dtype && !f32_out {
                return Err(bad("input and output dtypes must match (or be i8 -> f32)"));
            }
            let (n, k) = (w.dims[0], w.dims[1]);
            if k > MAX_REDUCTION {
                return Err(bad("reduction longer than 65536 taps (int32 accumulator could overflow)"));
            }
            if x.dims[x.rank - 1] != k
                || y.rank != x.rank
                || y.dims[y.rank - 1] != n
                || x.shape()[..x.rank - 1] != y.shape()[..y.rank - 1]
            {
                return Err(bad("input, weight and output shapes disagree"));
            }
            if f32_out {
                if o.input_count != 4 {
                    return Err(bad("int8 -> f32 layers take input, weights, bias and output scales"));
                }
                check_constant(o, &input(2), DType::I32, n, "bias must be an i32 constant with one value per output")?;
                check_constant(
                    o,
                    &input(3),
                    DType::F32,
                    n,
                    "output scales must be an f32 constant with one value per output",
                )?;
                if crate::session::constant_slice::<f32>(view, &input(3)).iter().any(|s| !s.is_finite()) {
                    return Err(bad("output scales must be finite"));
                }
                check_clamp_f32(o)?;
            } else {
                check_bias_requant(o, view, x.dtype, n)?;
            }
        }
        op::ADD | op::MUL => {
            expect_inputs(2)?;
            let (a, b) = (input(0), input(1));
            if a.dtype != y.dtype || b.dtype != y.dtype || y.dtype == DType::I32 {
                return Err(bad("operands must all be f32 or all i8"));
            }
            if !broadcasts_to(&a, &y) || !broadcasts_to(&b, &y) {
                return Err(bad("operand shapes do not broadcast to the output shape"));
            }
            if y.dtype == DType::I8 {
                check_clamp_i8(o)?;
                check_mult_shift(o, op::MULT_A)?;
                if o.kind == op::ADD {
                    check_mult_shift(o, op::MULT_B)?;
                    if p[op::SHIFT] < 2 {
                        return Err(bad("add shift must be at least 2"));
                    }
                }
            } else {
                check_clamp_f32(o)?;
            }
        }
        op::CLAMP | op::RESHAPE | op::QUANTIZE | op::DEQUANTIZE | op::REQUANTIZE | op::SOFTMAX => {
            expect_inputs(1)?;
            let x = input(0);
            if x.elements() != y.elements() {
                return Err(bad("input and output element counts differ"));
            }
            let (want_in, want_out) = match o.kind {
                op::QUANTIZE => (Some(DType::F32), DType::I8),
                op::DEQUANTIZE => (Some(DType::I8), DType::F32),
                op::REQUANTIZE => (Some(DType::I8), DType::I8),
                _ => (None, x.dtype),
            };
            if want_in.is_some_and(|d| d != x.dtype) || y.dtype != want_out || y.dtype == DType::I32 {
                return Err(bad("wrong input or output dtype"));
            }
            match o.kind {
                op::CLAMP | op::SOFTMAX => {
                    if x.shape() != y.shape() {
                        return Err(bad("input and output shapes differ"));
                    }
                    if o.kind == op::SOFTMAX {
                        if p[op::AXIS] < 0 || p[op::AXIS] as usize >= x.rank {
                            return Err(bad("softmax axis out of range"));
                        }
                    } else if y.dtype == DType::I8 {
                        check_clamp_i8(o)?;
                        same_quant(o, &x, &y)?;
                    } else {
                        check_clamp_f32(o)?;
                    }
                }
                op::RESHAPE => {
                    same_quant(o, &x, &y)?;
                    if x.shape() != y.shape()
                        && !crate::kernels::strided::is_dense_row_major(&x)
                        && !crate::kernels::strided::is_dense_row_major(&y)
                    {
                        return Err(bad("a reshape needs a row-major input or output"));
                    }
                }
                op::QUANTIZE | op::DEQUANTIZE => {
                    if x.shape() != y.shape() {
                        return Err(bad("input and output shapes differ"));
                    }
                }
                op::REQUANTIZE => {
                    if x.shape() != y.shape() {
                        return Err(bad("input and output shapes differ"));
                    }
                    check_mult_shift(o, op::MULT_A)?;
                }
                _ => unreachable!(),
            }
        }
        op::GLOBAL_AVERAGE_POOL => {
            expect_inputs(1)?;
            let x = input(0);
            if x.storage != Storage::Arena || x.layout != Layout::Nhwc || y.layout != Layout::Nhwc || x.dtype != y.dtype
            {
                return Err(bad("input and output must be NHWC arena tensors of one dtype"));
            }
            if y.shape() != [x.dims[0], x.dims[1], 1, 1] || x.dims[2] * x.dims[3] == 0 {
                return Err(bad("output must be [N, C, 1, 1] of a non-empty input"));
            }
            if x.dims[2] * x.dims[3] > (1 << 23) {
                return Err(bad("pooling window too large for a 32-bit sum"));
            }
            if y.dtype == DType::I8 {
                check_mult_shift(o, op::MULT_A)?;
            }
        }
        op::CONCAT => {
            if n_in == 0 {
                return Err(bad("concat needs inputs"));
            }
            let axis = p[op::AXIS];
            if axis < 0 || axis as usize >= y.rank {
                return Err(bad("concat axis out of range"));
            }
            let axis = axis as usize;
            let mut total = 0usize;
            for i in 0..n_in {
                let x = input(i);
                if x.rank != y.rank || x.dtype != y.dtype {
                    return Err(bad("concat inputs must match the output's rank and dtype"));
                }
                if (0..y.rank).any(|d| d != axis && x.dims[d] != y.dims[d]) {
                    return Err(bad("concat inputs differ outside the concat axis"));
                }
                same_quant(o, &x, &y)?;
                total += x.dims[axis];
            }
            if total != y.dims[axis] {
                return Err(bad("concat output size along the axis is not the sum of the inputs"));
            }
        }
        _ => return Err(RuntimeError::UnknownOp { index: o.index, kind: o.kind }),
    }
    Ok(())
}

fn same_quant(o: &OpInfo<'_>, x: &TensorInfo<'_>, y: &TensorInfo<'_>) -> Result<(), RuntimeError> {
    if x.dtype != y.dtype || (x.dtype == DType::I8 && (x.scale != y.scale || x.zero_point != y.zero_point)) {
        return Err(invalid(o, "int8 input and output must share scale and zero point"));
    }
    Ok(())
}

fn check_clamp_i8(o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let (lo, hi) = (o.params[op::ACT_MIN], o.params[op::ACT_MAX]);
    if !(-128..=127).contains(&lo) || !(-128..=127).contains(&hi) || lo > hi {
        return Err(invalid(o, "activation clamp outside [-128, 127]"));
    }
    Ok(())
}

fn check_clamp_f32(o: &OpInfo<'_>) -> Result<(), RuntimeError> {
    let (lo, hi) = (o.param_f32(op::ACT_MIN), o.param_f32(op::ACT_MAX));
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(invalid(o, "activation clamp bounds are NaN or reversed"));
    }
    Ok(())
}

fn check_mult_shift(o: &OpInfo<'_>, slot: usize) -> Result<(), RuntimeError> {
    if o.params[slot] < 0 || !(MIN_SHIFT..=MAX_SHIFT).contains(&o.params[op::SHIFT]) {
        return Err(invalid(o, "requantization multiplier or shift out of range"));
    }
    Ok(())
}

fn check_constant(
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

fn check_bias_requant(o: &OpInfo<'_>, view: &FileView<'_>, dtype: DType, channels: usize) -> Result<(), RuntimeError> {
    let input = |i: usize| view.tensor(o.input(i));
    match dtype {
        DType::F32 => {
            if o.input_count != 3 {
                return Err(invalid(o, "f32 layers take input, weights and bias"));
            }
            check_constant(
                o,
                &input(2),
                DType::F32,
                channels,
                "bias must be an f32 constant with one value per output channel",
            )?;
            check_clamp_f32(o)
        }
        DType::I8 => {
            if o.input_count != 5 {
                return Err(invalid(o, "int8 layers take input, weights, bias, multipliers and shifts"));
            }
            check_constant(
                o,
                &input(2),
                DType::I32,
                channels,
                "bias must be an i32 constant with one value per output channel",
            )?;
            check_constant(
                o,
                &input(3),
                DType::I32,
                channels,
                "multipliers must be an i32 constant per output channel",
            )?;
            check_constant(o, &input(4), DType::I32, channels, "shifts must be an i32 constant per output channel")?;
            let mults = crate::session::constant_slice::<i32>(view, &input(3));
            let shifts = crate::session::constant_slice::<i32>(view, &input(4));
            if mults.iter().any(|&m| m < 0) || shifts.iter().any(|s| !(MIN_SHIFT..=MAX_SHIFT).contains(s)) {
                return Err(invalid(o, "requantization multiplier or shift out of range"));
            }
            check_clamp_i8(o)
        }
        DType::I32 => Err(invalid(o, "i32 activations are not supported")),
    }
}
