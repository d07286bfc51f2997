//! Unary activation family: `Clamp` (ReLU, ReLU6 and clips that could not be fused into their
//! producer) on int8 codes or f32; `Lookup`, any int8 activation as a 256-entry table the
//! compiler computed (the activation, the input's dequantization and the output's quantization
//! folded in), run by the `QS8_LUT` registry kernels; and `Unary`, the f32 functions (sigmoid,
//! tanh, hard-swish, GELU, ...: `kernels::unary`). A new activation is a function code in
//! `sparq_format::layout::op::unary` and an arm of `kernels::unary::apply`; its int8 form is a
//! table and needs no new kernel.

use super::{check_clamp_f32, check_clamp_i8, expect_inputs, invalid, same_quant, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::registry::{resolve, LutFn, Query, QS8_LUT};
use crate::kernels::strided::R;
use crate::kernels::{lut, unary};
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, Storage, TensorInfo};

#[derive(Clone, Copy)]
pub enum ActivationKernel<'a> {
    /// `y = clamp(x, lo, hi)` on int8 codes (input and output share scale and zero point).
    Qs8Clamp {
        lo: i8,
        hi: i8,
    },
    F32Clamp {
        lo: f32,
        hi: f32,
    },
    /// `y = table[x + 128]`: contiguous operands of one layout through a registry kernel.
    Qs8Lut {
        name: &'static str,
        f: LutFn,
        table: &'a [i8; 256],
    },
    /// The same lookup through a strided walk (input and output layouts differ).
    Qs8LutStrided {
        table: &'a [i8; 256],
    },
    /// One table per channel (1.7), operands of one layout: `channels` tables of 256, channel
    /// of element `i` `(i / inner) % channels`.
    Qs8LutPerChannel {
        tables: &'a [i8],
        channels: usize,
        inner: usize,
    },
    /// The same into int16 codes (int16 tables).
    Qs16LutPerChannel {
        tables: &'a [i16],
        channels: usize,
        inner: usize,
    },
    F32Unary {
        function: i32,
        alpha: f32,
        beta: f32,
    },
}

#[derive(Clone, Copy)]
pub struct Activation<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
    pub kernel: ActivationKernel<'a>,
}

impl<'a> Activation<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, if o.kind == op::LOOKUP { 2 } else { 1 })?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.elements() != y.elements() {
            return Err(invalid(o, "input and output element counts differ"));
        }
        // A per-channel LOOKUP (1.7) maps int8 to int8 or, with int16 tables, to int16.
        let per_channel = o.kind == op::LOOKUP && o.params[op::LOOKUP_PER_CHANNEL] != 0;
        let dtype = match o.kind {
            op::CLAMP if x.dtype != DType::I32 => x.dtype,
            op::LOOKUP => DType::I8,
            op::UNARY => DType::F32,
            _ => DType::I32,
        };
        let y_ok = y.dtype == dtype || (per_channel && y.dtype == DType::I16);
        if x.dtype != dtype || !y_ok || dtype == DType::I32 {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        if x.shape() != y.shape() {
            return Err(invalid(o, "input and output shapes differ"));
        }
        let kernel = match o.kind {
            op::LOOKUP if o.params[op::LOOKUP_PER_CHANNEL] != 0 => {
                let t = d.input(o, 1);
                if o.params[op::LOOKUP_PER_CHANNEL] != 1 {
                    return Err(invalid(o, "the per-channel flag must be 0 or 1"));
                }
                if x.rank != 4 || x.layout != y.layout {
                    return Err(invalid(o, "per-channel tables need a rank-4 input and an output of its layout"));
                }
                let channels = x.dims[1];
                if t.storage != Storage::Constant || t.dtype != y.dtype || t.shape() != [channels, 256] {
                    return Err(invalid(
                        o,
                        "per-channel tables must be a constant [C, 256] (C: input channels) of the output's dtype",
                    ));
                }
                let inner = if x.layout == sparq_format::Layout::Nhwc { 1 } else { x.dims[2] * x.dims[3] };
                if y.dtype == DType::I16 {
                    ActivationKernel::Qs16LutPerChannel { tables: d.constant::<i16>(&t), channels, inner }
                } else {
                    ActivationKernel::Qs8LutPerChannel { tables: d.constant::<i8>(&t), channels, inner }
                }
            }
            op::LOOKUP => {
                let t = d.input(o, 1);
                if t.storage != Storage::Constant || t.dtype != DType::I8 || t.shape() != [256] {
                    return Err(invalid(o, "the table must be an int8 constant of 256 entries"));
                }
                let table: &'a [i8; 256] =
                    d.constant::<i8>(&t).try_into().map_err(|_| invalid(o, "the table must have 256 entries"))?;
                // Same shape and layout: the same physical order, so one contiguous lookup.
                if x.layout == y.layout {
                    let e = resolve(QS8_LUT, d.features, &Query::default());
                    ActivationKernel::Qs8Lut { name: e.name, f: e.f, table }
                } else {
                    ActivationKernel::Qs8LutStrided { table }
                }
            }
            op::UNARY => {
                let (function, alpha, beta) = (o.params[op::FUNCTION], o.param_f32(op::ALPHA), o.param_f32(op::BETA));
                if !unary::known(function) {
                    return Err(invalid(o, "unknown unary function"));
                }
                if !alpha.is_finite() || !beta.is_finite() {
                    return Err(invalid(o, "unary function parameters must be finite"));
                }
                ActivationKernel::F32Unary { function, alpha, beta }
            }
            _ if dtype == DType::I8 => {
                check_clamp_i8(o)?;
                same_quant(o, &x, &y)?;
                ActivationKernel::Qs8Clamp { lo: o.params[op::ACT_MIN] as i8, hi: o.params[op::ACT_MAX] as i8 }
            }
            _ => {
                check_clamp_f32(o)?;
                ActivationKernel::F32Clamp { lo: o.param_f32(op::ACT_MIN), hi: o.param_f32(op::ACT_MAX) }
            }
        };
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Activation { x, y, dims, strides, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            ActivationKernel::Qs8Clamp { .. } => "qs8_clamp_strided_scalar",
            ActivationKernel::F32Clamp { .. } => "f32_clamp_strided_scalar",
            ActivationKernel::Qs8Lut { name, .. } => name,
            ActivationKernel::Qs8LutStrided { .. } => "qs8_lut_strided_scalar",
            ActivationKernel::Qs8LutPerChannel { .. } => "qs8_lut_per_channel_scalar",
            ActivationKernel::Qs16LutPerChannel { .. } => "qs16_lut_per_channel_scalar",
            ActivationKernel::F32Unary { .. } => "f32_unary_strided_scalar",
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
            // SAFETY: the entry was resolved for this CPU's features; the operands are the
            // input's and output's whole, equal-length data (checked at decode).
            ActivationKernel::Qs8Lut { f, table, .. } => unsafe { f(table, e.data::<i8>(x), e.out::<i8>(y)) },
            ActivationKernel::Qs8LutPerChannel { tables, channels, inner } => {
                lut::qs8_lut_per_channel_scalar(tables, channels, inner, e.data::<i8>(x), e.out::<i8>(y))
            }
            ActivationKernel::Qs16LutPerChannel { tables, channels, inner } => {
                lut::qs16_lut_per_channel_scalar(tables, channels, inner, e.data::<i8>(x), e.out::<i16>(y))
            }
            ActivationKernel::Qs8LutStrided { table } => {
                ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i8>(y), |v| lut::lookup(table, v))
            }
            ActivationKernel::F32Unary { function, alpha, beta } => {
                ew::map_strided(dims, st, e.data::<f32>(x), e.out::<f32>(y), |v| unary::apply(function, alpha, beta, v))
            }
        }
    }
}
