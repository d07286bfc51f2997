//! Quantization family: `Quantize` (f32 -> int8 or int16), `Dequantize` (int8 or int16 -> f32)
//! and `Requantize` (int8 or int16 -> int8 or int16 at another scale and zero point: the
//! conversions around the int16 layers of format 1.6), element by element in logical order.

use super::{check_mult_shift, expect_inputs, invalid, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::registry::{
    resolve, Qs16NarrowFn, Qs16QuantizeFn, Qs16WidenFn, QuantizeFn, Query, QS16_NARROW, QS16_QUANTIZE, QS16_WIDEN,
    QS8_QUANTIZE,
};
use crate::kernels::strided::R;
use crate::quant;
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub enum QuantizeKernel {
    Quantize {
        name: &'static str,
        f: QuantizeFn,
    },
    /// f32 -> int16 (format 1.6).
    Quantize16 {
        name: &'static str,
        f: Qs16QuantizeFn,
    },
    Dequantize,
    /// Int8 to int16 codes, operands of one shape and layout (format 1.6).
    Widen {
        name: &'static str,
        f: Qs16WidenFn,
        p: ew::Rescale,
    },
    /// Int16 to int8 codes, operands of one shape and layout (format 1.6).
    Narrow {
        name: &'static str,
        f: Qs16NarrowFn,
        p: ew::Rescale,
    },
    Requantize {
        mult: i32,
        shift: i32,
    },
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
        let int = |t: DType| matches!(t, DType::I8 | DType::I16);
        let dtypes_ok = match o.kind {
            op::QUANTIZE => x.dtype == DType::F32 && int(y.dtype),
            op::DEQUANTIZE => int(x.dtype) && y.dtype == DType::F32,
            _ => int(x.dtype) && int(y.dtype),
        };
        if !dtypes_ok {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        if x.shape() != y.shape() {
            return Err(invalid(o, "input and output shapes differ"));
        }
        let kernel = match o.kind {
            op::QUANTIZE if y.dtype == DType::I16 => {
                let e = resolve(QS16_QUANTIZE, d.features, &Query::default());
                QuantizeKernel::Quantize16 { name: e.name, f: e.f }
            }
            op::QUANTIZE => {
                let e = resolve(QS8_QUANTIZE, d.features, &Query::default());
                QuantizeKernel::Quantize { name: e.name, f: e.f }
            }
            op::DEQUANTIZE => QuantizeKernel::Dequantize,
            _ if x.layout == y.layout && x.dtype != y.dtype => {
                check_mult_shift(o, op::MULT_A)?;
                let p = ew::Rescale {
                    zp_in: x.zero_point,
                    zp_out: y.zero_point,
                    mult: o.params[op::MULT_A],
                    shift: o.params[op::SHIFT],
                };
                if x.dtype == DType::I8 {
                    let e = resolve(QS16_WIDEN, d.features, &Query::default());
                    QuantizeKernel::Widen { name: e.name, f: e.f, p }
                } else {
                    let e = resolve(QS16_NARROW, d.features, &Query::default());
                    QuantizeKernel::Narrow { name: e.name, f: e.f, p }
                }
            }
            _ => {
                check_mult_shift(o, op::MULT_A)?;
                QuantizeKernel::Requantize { mult: o.params[op::MULT_A], shift: o.params[op::SHIFT] }
            }
        };
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Quantize { x, y, dims, strides, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        let wide = self.x.dtype == DType::I16 || self.y.dtype == DType::I16;
        match self.kernel {
            QuantizeKernel::Quantize { name, .. }
            | QuantizeKernel::Quantize16 { name, .. }
            | QuantizeKernel::Widen { name, .. }
            | QuantizeKernel::Narrow { name, .. } => name,
            QuantizeKernel::Dequantize if wide => "qs16_dequantize_strided_scalar",
            QuantizeKernel::Dequantize => "qs8_dequantize_strided_scalar",
            QuantizeKernel::Requantize { .. } if wide => "qs16_requantize_strided_scalar",
            QuantizeKernel::Requantize { .. } => "qs8_requantize_strided_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st, x, y) = (&self.dims, &self.strides, &self.x, &self.y);
        match self.kernel {
            // SAFETY: resolved for features this CPU has; one shape and layout (checked at load).
            QuantizeKernel::Widen { f, ref p, .. } => {
                let xs = e.data::<i8>(x);
                e.split_map(xs, xs, e.out::<i16>(y), &|x, _, y| unsafe { f(x, y, p) })
            }
            // SAFETY: as above.
            QuantizeKernel::Narrow { f, ref p, .. } => {
                let xs = e.data::<i16>(x);
                e.split_map(xs, xs, e.out::<i8>(y), &|x, _, y| unsafe { f(x, y, p) })
            }
            QuantizeKernel::Quantize16 { f, .. } => {
                let s = y.scale;
                // SAFETY: resolved for features this CPU has; `quantize_strided_i16` passes slices
                // of equal length.
                e.split_strided(dims, st, e.data::<f32>(x), e.out::<i16>(y), &|dims, x, y| {
                    ew::quantize_strided_i16(dims, st, x, y, s, |a, b| unsafe { f(a, b, s) })
                })
            }
            QuantizeKernel::Dequantize if x.dtype == DType::I16 => {
                let s = x.scale;
                ew::map_strided(dims, st, e.data::<i16>(x), e.out::<f32>(y), |v| s * v as f32)
            }
            QuantizeKernel::Requantize { mult, shift } if x.dtype == DType::I16 || y.dtype == DType::I16 => {
                let (zi, zo) = (x.zero_point, y.zero_point);
                let code = move |v: i32, lo: i32, hi: i32| quant::requantize_code(v, zi, zo, mult, shift, lo, hi);
                let (i8r, i16r) = ((-128, 127), (i16::MIN as i32, i16::MAX as i32));
                match (x.dtype, y.dtype) {
                    (DType::I8, _) => ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i16>(y), |v| {
                        code(v as i32, i16r.0, i16r.1) as i16
                    }),
                    (_, DType::I8) => ew::map_strided(dims, st, e.data::<i16>(x), e.out::<i8>(y), |v| {
                        code(v as i32, i8r.0, i8r.1) as i8
                    }),
                    _ => ew::map_strided(dims, st, e.data::<i16>(x), e.out::<i16>(y), |v| {
                        code(v as i32, i16r.0, i16r.1) as i16
                    }),
                }
            }
            QuantizeKernel::Quantize { f, .. } => {
                let (s, z) = (y.scale, y.zero_point);
                // SAFETY: resolved for features this CPU has; `quantize_strided` passes slices of
                // equal length.
                e.split_strided(dims, st, e.data::<f32>(x), e.out::<i8>(y), &|dims, x, y| {
                    ew::quantize_strided(dims, st, x, y, s, z, |a, b| unsafe { f(a, b, s, z) })
                })
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
