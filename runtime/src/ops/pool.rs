//! Pooling family: max and average pooling over a window, and global average pooling, int8 or
//! f32, NHWC activations.

use super::{check_mult_shift, expect_inputs, invalid, same_quant, window_geometry, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::conv::ConvGeometry;
use crate::kernels::pool::{self, GlobalPool};
use crate::kernels::registry::{
    resolve, GlobalAvgPoolFn, MaxPoolFn, Qs16GlobalAvgPoolFn, Query, QS16_GLOBAL_AVG_POOL, QS8_GLOBAL_AVG_POOL,
    QS8_MAX_POOL,
};
use sparq_format::layout::op::{self, window};
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

#[derive(Clone, Copy)]
pub enum PoolKernel {
    Qs8Max {
        name: &'static str,
        f: MaxPoolFn,
    },
    F32Max,
    /// `count_include_pad`: padding taps count in the divisor.
    Qs8Average {
        count_include_pad: bool,
    },
    F32Average {
        count_include_pad: bool,
    },
}

#[derive(Clone, Copy)]
pub struct Pool<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub geometry: ConvGeometry,
    pub kernel: PoolKernel,
}

impl<'a> Pool<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        let geometry = window_geometry(o, &x, &y)?;
        expect_inputs(o, 1)?;
        if geometry.in_c != geometry.out_c {
            return Err(invalid(o, "pooling changes the channel count"));
        }
        same_quant(o, &x, &y)?;
        let count_include_pad = o.params[window::GROUPS] != 0;
        let kernel = match (o.kind, x.dtype) {
            (op::MAX_POOL, DType::I8) => {
                let e = resolve(QS8_MAX_POOL, d.features, &Query { geometry, ..Query::default() });
                PoolKernel::Qs8Max { name: e.name, f: e.f }
            }
            (op::MAX_POOL, _) => PoolKernel::F32Max,
            (_, DType::I8) => PoolKernel::Qs8Average { count_include_pad },
            _ => PoolKernel::F32Average { count_include_pad },
        };
        Ok(Pool { x, y, geometry, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            PoolKernel::Qs8Max { name, .. } => name,
            PoolKernel::F32Max => "f32_max_pool_scalar",
            PoolKernel::Qs8Average { .. } => "qs8_avg_pool_scalar",
            PoolKernel::F32Average { .. } => "f32_avg_pool_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (g, x, y) = (&self.geometry, &self.x, &self.y);
        match self.kernel {
            // SAFETY: resolved for features this CPU has; operands validated at load.
            PoolKernel::Qs8Max { f, .. } => unsafe { f(g, e.data(x), e.out(y)) },
            PoolKernel::F32Max => pool::max_pool::<f32>(g, e.data(x), e.out(y), f32::NEG_INFINITY),
            PoolKernel::Qs8Average { count_include_pad } => {
                pool::qs8_avg_pool(g, e.data(x), e.out(y), x.zero_point, count_include_pad)
            }
            PoolKernel::F32Average { count_include_pad } => {
                pool::f32_avg_pool(g, e.data(x), e.out(y), count_include_pad)
            }
        }
    }
}

#[derive(Clone, Copy)]
pub enum GlobalPoolKernel {
    Qs8 {
        name: &'static str,
        f: GlobalAvgPoolFn,
        params: GlobalPool,
    },
    /// Int16 (format 1.6).
    Qs16 {
        name: &'static str,
        f: Qs16GlobalAvgPoolFn,
        params: GlobalPool,
    },
    F32,
}

#[derive(Clone, Copy)]
pub struct GlobalAveragePool<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub kernel: GlobalPoolKernel,
}

impl<'a> GlobalAveragePool<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.storage != Storage::Arena || x.layout != Layout::Nhwc || y.layout != Layout::Nhwc || x.dtype != y.dtype {
            return Err(bad("input and output must be NHWC arena tensors of one dtype"));
        }
        if y.shape() != [x.dims[0], x.dims[1], 1, 1] || x.dims[2] * x.dims[3] == 0 {
            return Err(bad("output must be [N, C, 1, 1] of a non-empty input"));
        }
        if x.dims[2] * x.dims[3] > (1 << 23) {
            return Err(bad("pooling window too large for a 32-bit sum"));
        }
        let kernel = if y.dtype == DType::I16 {
            if x.dims[2] * x.dims[3] > 1 << 16 {
                return Err(bad("int16 pooling window too large for a 32-bit sum"));
            }
            check_mult_shift(o, op::MULT_A)?;
            let params = GlobalPool {
                batch: x.dims[0],
                hw: x.dims[2] * x.dims[3],
                channels: x.dims[1],
                zp_in: 0,
                zp_out: 0,
                mult: o.params[op::MULT_A],
                shift: o.params[op::SHIFT],
            };
            let e = resolve(QS16_GLOBAL_AVG_POOL, d.features, &Query::default());
            GlobalPoolKernel::Qs16 { name: e.name, f: e.f, params }
        } else if y.dtype == DType::I8 {
            check_mult_shift(o, op::MULT_A)?;
            let params = GlobalPool {
                batch: x.dims[0],
                hw: x.dims[2] * x.dims[3],
                channels: x.dims[1],
                zp_in: x.zero_point,
                zp_out: y.zero_point,
                mult: o.params[op::MULT_A],
                shift: o.params[op::SHIFT],
            };
            let e = resolve(QS8_GLOBAL_AVG_POOL, d.features, &Query::default());
            GlobalPoolKernel::Qs8 { name: e.name, f: e.f, params }
        } else {
            GlobalPoolKernel::F32
        };
        Ok(GlobalAveragePool { x, y, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            GlobalPoolKernel::Qs8 { name, .. } => name,
            GlobalPoolKernel::Qs16 { name, .. } => name,
            GlobalPoolKernel::F32 => "f32_global_avg_pool_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        match self.kernel {
            // SAFETY: resolved for features this CPU has; operands validated at load.
            GlobalPoolKernel::Qs8 { f, ref params, .. } => unsafe { f(params, e.data(x), e.out(y)) },
            // SAFETY: as above.
            GlobalPoolKernel::Qs16 { f, ref params, .. } => unsafe { f(params, e.data(x), e.out(y)) },
            GlobalPoolKernel::F32 => {
                pool::f32_global_avg_pool(x.dims[0], x.dims[2] * x.dims[3], x.dims[1], e.data(x), e.out(y))
            }
        }
    }
}
