//! Unary activation family. Today one op: `Clamp` (ReLU, ReLU6 and clips that could not be fused
//! into their producer), int8 on the quantized bounds or f32. New unary activations (HardSwish,
//! Sigmoid, ...; int8 as lookup tables) are variants of [`ActivationKernel`] here.

use super::{check_clamp_f32, check_clamp_i8, expect_inputs, invalid, same_quant, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::strided::R;
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub enum ActivationKernel {
    /// `y = clamp(x, lo, hi)` on int8 codes (input and output share scale and zero point).
    Qs8Clamp {
        lo: i8,
        hi: i8,
    },
    F32Clamp {
        lo: f32,
        hi: f32,
    },
}

#[derive(Clone, Copy)]
pub struct Activation<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
    pub kernel: ActivationKernel,
}

impl<'a> Activation<'a> {
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
        let kernel = if y.dtype == DType::I8 {
            check_clamp_i8(o)?;
            same_quant(o, &x, &y)?;
            ActivationKernel::Qs8Clamp { lo: o.params[op::ACT_MIN] as i8, hi: o.params[op::ACT_MAX] as i8 }
        } else {
            check_clamp_f32(o)?;
            ActivationKernel::F32Clamp { lo: o.param_f32(op::ACT_MIN), hi: o.param_f32(op::ACT_MAX) }
        };
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Activation { x, y, dims, strides, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            ActivationKernel::Qs8Clamp { .. } => "qs8_clamp_strided_scalar",
            ActivationKernel::F32Clamp { .. } => "f32_clamp_strided_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st, x, y) = (&self.dims, &self.strides, &self.x, &self.y);
        match self.kernel {
            ActivationKernel::Qs8Clamp { lo, hi } => {
                ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i8>(y), |v| v.clamp(lo, hi))
            }
            ActivationKernel::F32Clamp { lo, hi } => {
                ew::map_strided(dims, st, e.data::<f32>(x), e.out::<f32>(y), |v| v.clamp(lo, hi))
            }
        }
    }
}
