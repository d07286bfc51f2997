//! Quantization family: `Quantize` (f32 -> int8), `Dequantize` (int8 -> f32) and `Requantize`
//! (int8 -> int8 at another scale and zero point), element by element in logical order.

use super::{check_mult_shift, expect_inputs, invalid, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::registry::{resolve, QuantizeFn, Query, QS8_QUANTIZE};
use crate::kernels::strided::R;
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub enum QuantizeKernel {
    Quantize { name: &'static str, f: QuantizeFn },
    Dequantize,
    Requantize { mult: i32, shift: i32 },
}

#[derive(Clone, Copy)]
pub struct Quantize<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
    pub kernel: QuantizeKernel,
}

impl<'a> Quantize<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.elements() != y.elements() {
            return Err(invalid(o, "input and output element counts differ"));
        }
        let (want_in, want_out) = match o.kind {
            op::QUANTIZE => (DType::F32, DType::I8),
            op::DEQUANTIZE => (DType::I8, DType::F32),
            _ => (DType::I8, DType::I8),
        };
        if x.dtype != want_in || y.dtype != want_out {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        if x.shape() != y.shape() {
            return Err(invalid(o, "input and output shapes differ"));
        }
        let kernel = match o.kind {
            op::QUANTIZE => {
                let e = resolve(QS8_QUANTIZE, d.features, &Query::default());
                QuantizeKernel::Quantize { name: e.name, f: e.f }
            }
            op::DEQUANTIZE => QuantizeKernel::Dequantize,
            _ => {
                check_mult_shift(o, op::MULT_A)?;
                QuantizeKernel::Requantize { mult: o.params[op::MULT_A], shift: o.params[op::SHIFT] }
            }
        };
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Quantize { x, y, dims, strides, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            QuantizeKernel::Quantize { name, .. } => name,
            QuantizeKernel::Dequantize => "qs8_dequantize_strided_scalar",
            QuantizeKernel::Requantize { .. } => "qs8_requantize_strided_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st, x, y) = (&self.dims, &self.strides, &self.x, &self.y);
        match self.kernel {
            QuantizeKernel::Quantize { f, .. } => {
                let (s, z) = (y.scale, y.zero_point);
                // SAFETY: resolved for features this CPU has; `quantize_strided` passes slices of
                // equal length.
                ew::quantize_strided(dims, st, e.data::<f32>(x), e.out::<i8>(y), s, z, |a, b| unsafe { f(a, b, s, z) })
            }
            QuantizeKernel::Dequantize => {
                let (s, z) = (x.scale, x.zero_point);
                ew::map_strided(dims, st, e.data::<i8>(x), e.out::<f32>(y), |v| ew::dequantize(v, s, z))
            }
            QuantizeKernel::Requantize { mult, shift } => {
                let (zi, zo) = (x.zero_point, y.zero_point);
                ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i8>(y), |v| {
                    ew::requantize_i8(v, zi, zo, mult, shift)
                })
            }
        }
    }
}
