//! Data movement family: `Reshape` (any layouts, logical order kept) and `Concat` along one axis.
//! int8 tensors move without requantization: inputs and output share scale and zero point.

use super::{expect_inputs, invalid, same_quant, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::strided::{self, aligned, logical_strides, padded_dims, R};
use sparq_format::layout::op;
use sparq_format::{DType, FileView, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub struct Reshape<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
}

impl<'a> Reshape<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.elements() != y.elements() {
            return Err(invalid(o, "input and output element counts differ"));
        }
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.shape() != y.shape() && !strided::is_dense_row_major(&x) && !strided::is_dense_row_major(&y) {
            return Err(invalid(o, "a reshape needs a row-major input or output"));
        }
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Reshape { x, y, dims, strides })
    }

    pub fn kernel_name(&self) -> &'static str {
        "copy_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st, x, y) = (&self.dims, &self.strides, &self.x, &self.y);
        if x.dtype == DType::I8 {
            ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i8>(y), |v| v)
        } else {
            ew::map_strided(dims, st, e.data::<f32>(x), e.out::<f32>(y), |v| v)
        }
    }
}

/// `Concat`: its inputs are read from the op's operand list when it runs (their count is not
/// bounded, so they are not copied into the plan).
#[derive(Clone, Copy)]
pub struct Concat<'a> {
    pub op: OpInfo<'a>,
    pub y: TensorInfo<'a>,
    pub axis: usize,
}

impl<'a> Concat<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let n_in = o.input_count;
        if n_in == 0 {
            return Err(bad("concat needs inputs"));
        }
        let y = d.view.tensor(o.output(0));
        let axis = o.params[op::AXIS];
        if axis < 0 || axis as usize >= y.rank {
            return Err(bad("concat axis out of range"));
        }
        let axis = axis as usize;
        let mut total = 0usize;
        for i in 0..n_in {
            let x = d.input(o, i);
            if x.rank != y.rank || x.dtype != y.dtype {
                return Err(bad("concat inputs must match the output's rank and dtype"));
            }
            if (0..y.rank).any(|a| a != axis && x.dims[a] != y.dims[a]) {
                return Err(bad("concat inputs differ outside the concat axis"));
            }
            same_quant(o, &x, &y)?;
            total += x.dims[axis];
        }
        if total != y.dims[axis] {
            return Err(bad("concat output size along the axis is not the sum of the inputs"));
        }
        Ok(Concat { op: *o, y, axis })
    }

    pub fn kernel_name(&self) -> &'static str {
        "concat_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (y, axis) = (&self.y, self.axis);
        let view: &FileView<'a> = &e.view;
        let out_strides = logical_strides(y);
        let lead = R - y.rank;
        let mut start = 0usize;
        for i in 0..self.op.input_count {
            let x = view.tensor(self.op.input(i));
            let dims = padded_dims(x.shape());
            let mut ys = [0usize; R];
            ys[lead..].copy_from_slice(&out_strides[..y.rank]);
            let base = start * out_strides[axis];
            let st = [aligned(&x, x.shape()), ys];
            if x.dtype == DType::I8 {
                ew::map_strided(&dims, &st, e.data::<i8>(&x), &mut e.out::<i8>(y)[base..], |v| v);
            } else {
                ew::map_strided(&dims, &st, e.data::<f32>(&x), &mut e.out::<f32>(y)[base..], |v| v);
            }
            start += x.dims[axis];
        }
    }
}
