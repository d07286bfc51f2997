//! Softmax family: softmax along one logical axis, f32, or int8 computed in f32 between the
//! input's and the output's quantization.

use super::{expect_inputs, invalid, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::softmax;
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub struct Softmax<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub axis: usize,
}

impl<'a> Softmax<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.elements() != y.elements() {
            return Err(invalid(o, "input and output element counts differ"));
        }
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        if x.shape() != y.shape() {
            return Err(invalid(o, "input and output shapes differ"));
        }
        let axis = o.params[op::AXIS];
        if axis < 0 || axis as usize >= x.rank {
            return Err(invalid(o, "softmax axis out of range"));
        }
        Ok(Softmax { x, y, axis: axis as usize })
    }

    pub fn kernel_name(&self) -> &'static str {
        if self.x.dtype == DType::I8 {
            "qs8_softmax_scalar"
        } else {
            "f32_softmax_scalar"
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 {
            softmax::qs8_softmax(x, y, self.axis, e.data(x), e.out(y));
        } else {
            softmax::f32_softmax(x, y, self.axis, e.data(x), e.out(y));
        }
    }
}
