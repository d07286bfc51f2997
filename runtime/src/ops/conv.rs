//! Convolution family: `Conv2d` with any groups, int8 (direct, packed GEMM or block-sparse
//! weights) or f32, NHWC activations, weights `[O, KH, KW, I/groups]`. The fused activation is
//! the output clamp.

use super::{invalid, output_stage, window_geometry, Decoder, Exec, OutputStage, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::WeightMatrix;
use crate::kernels::registry::{
    resolve, ConvFn, F32ConvFn, GemmFn, Qs16DwFn, Qs16GemmFn, Query, SpGemmFn, F32_CONV, QS16_GEMM, QS8_CONV, QS8_GEMM,
    QS8_SPGEMM,
};
use crate::kernels::spgemm::BlockSparse;
use sparq_format::layout::op::window;
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

/// A convolution-like layer's kernel, resolved, with the weights and output stage it reads.
#[derive(Clone, Copy)]
pub enum ConvKernel<'a> {
    /// Int8 on row-major weights (any groups; depthwise layers too).
    Direct { name: &'static str, f: ConvFn, w: &'a [i8], rq: Requant<'a> },
    /// Int8, one group, on a weight matrix (packed panels or row-major).
    Gemm { name: &'static str, f: GemmFn, w: WeightMatrix<'a>, rq: Requant<'a> },
    /// Int8, one group, on block-sparse weights.
    Sparse { name: &'static str, f: SpGemmFn, w: BlockSparse<'a>, rq: Requant<'a> },
    /// Int16 activations, int8 weights, one group, on a weight matrix (packed or row-major).
    Int16 { name: &'static str, f: Qs16GemmFn, w: WeightMatrix<'a>, rq: Requant<'a> },
    /// Int16 activations, int8 depthwise weights `[KH, KW, C]`.
    Int16Dw { name: &'static str, f: Qs16DwFn, w: &'a [i8], rq: Requant<'a> },
    /// f32.
    F32 { name: &'static str, f: F32ConvFn, w: &'a [f32], bias: &'a [f32], lo: f32, hi: f32 },
}

impl ConvKernel<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            ConvKernel::Direct { name, .. }
            | ConvKernel::Gemm { name, .. }
            | ConvKernel::Sparse { name, .. }
            | ConvKernel::Int16 { name, .. }
            | ConvKernel::Int16Dw { name, .. }
            | ConvKernel::F32 { name, .. } => name,
        }
    }

    /// Run over NHWC `x` into `y`, split by output rows across the session's threads.
    pub(crate) fn run(&self, e: &Exec<'_, '_>, g: &ConvGeometry, x: &TensorInfo<'_>, y: &TensorInfo<'_>) {
        // SAFETY (every call below): the kernel was resolved for features this CPU has, and its
        // registry entry accepted this geometry and weight layout; the operands were validated
        // against the geometry when the model was loaded.
        match *self {
            ConvKernel::Direct { f, w, ref rq, .. } => {
                e.conv_rows(g, e.data::<i8>(x), e.out::<i8>(y), &|g, x, y| unsafe { f(g, x, w, rq, y) })
            }
            ConvKernel::Gemm { f, ref w, ref rq, .. } => {
                e.conv_rows(g, e.data::<i8>(x), e.out::<i8>(y), &|g, x, y| unsafe { f(g, x, w, rq, y) })
            }
            ConvKernel::Sparse { f, ref w, ref rq, .. } => {
                e.conv_rows(g, e.data::<i8>(x), e.out::<i8>(y), &|g, x, y| unsafe { f(g, x, w, rq, y) })
            }
            ConvKernel::Int16 { f, ref w, ref rq, .. } => {
                e.conv_rows(g, e.data::<i16>(x), e.out::<i16>(y), &|g, x, y| unsafe { f(g, x, w, rq, y) })
            }
            ConvKernel::Int16Dw { f, w, ref rq, .. } => {
                e.conv_rows(g, e.data::<i16>(x), e.out::<i16>(y), &|g, x, y| unsafe { f(g, x, w, rq, y) })
            }
            ConvKernel::F32 { f, w, bias, lo, hi, .. } => {
                e.conv_rows(g, e.data::<f32>(x), e.out::<f32>(y), &|g, x, y| unsafe { f(g, x, w, bias, lo, hi, y) })
            }
        }
    }
}

/// The block-sparse view of a weight tensor in that layout (validated by the reader).
pub(crate) fn sparse_view<'a>(d: &Decoder<'_, 'a>, w: &TensorInfo<'_>) -> Option<BlockSparse<'a>> {
    let block = w.pack.filter(|_| w.layout == Layout::BlockSparse)?;
    let k = w.shape()[1..].iter().product();
    Some(BlockSparse::view(d.view.constant_bytes(w), w.dims[0], k, block))
}

/// The kernel of an int8, int16 or f32 layer with one group (or of a fully-connected layer as a
/// 1x1 convolution over rows, `g = rows(m, k, n)`), on weights `w` with `k` reduction steps.
pub(crate) fn matrix_kernel<'a>(
    d: &Decoder<'_, 'a>,
    o: &OpInfo<'_>,
    g: &ConvGeometry,
    w: &TensorInfo<'_>,
    k: usize,
    stage: OutputStage<'a>,
) -> Result<ConvKernel<'a>, RuntimeError> {
    Ok(match stage {
        OutputStage::Int16(rq) => {
            let m = super::qs16_weights(d, o, w, &rq, (g.out_c, k))?;
            let e = resolve(QS16_GEMM, d.features, &Query { geometry: *g, pack: m.pack, k });
            ConvKernel::Int16 { name: e.name, f: e.f, w: m, rq }
        }
        OutputStage::Int8(rq) => {
            if let Some(sw) = sparse_view(d, w) {
                let e = resolve(QS8_SPGEMM, d.features, &Query { geometry: *g, pack: Some(sw.block), k });
                ConvKernel::Sparse { name: e.name, f: e.f, w: sw, rq }
            } else {
                let m = WeightMatrix { data: d.constant(w), n: w.dims[0], k, pack: w.pack };
                let e = resolve(QS8_GEMM, d.features, &Query { geometry: *g, pack: w.pack, k });
                ConvKernel::Gemm { name: e.name, f: e.f, w: m, rq }
            }
        }
        OutputStage::F32 { bias, lo, hi } => {
            let e = resolve(F32_CONV, d.features, &Query { geometry: *g, pack: None, k });
            ConvKernel::F32 { name: e.name, f: e.f, w: d.constant(w), bias, lo, hi }
        }
    })
}

#[derive(Clone, Copy)]
pub struct Conv<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub geometry: ConvGeometry,
    pub kernel: ConvKernel<'a>,
}

impl<'a> Conv<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let (x, w, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        let mut g = window_geometry(o, &x, &y)?;
        let groups = o.params[window::GROUPS];
        if groups < 0 {
            return Err(bad("negative window parameter"));
        }
        let groups = groups as usize;
        let (cin, cout) = (g.in_c, g.out_c);
        if groups == 0 || cin % groups != 0 || cout % groups != 0 {
            return Err(bad("groups must divide input and output channels"));
        }
        g.groups = groups;
        if w.shape() != [cout, g.kernel_h, g.kernel_w, cin / groups] {
            return Err(bad("weights must be [O, KH, KW, I/groups]"));
        }
        if w.layout == Layout::Nhwc
            || (matches!(w.layout, Layout::Packed | Layout::BlockSparse) && (groups != 1 || w.dtype != DType::I8))
            || (x.dtype == DType::I16 && w.layout == Layout::BlockSparse)
        {
            return Err(bad(
                "weights must be row-major, or packed / block-sparse for an int8 convolution with one group",
            ));
        }
        let int16 = x.dtype == DType::I16;
        if int16 && groups != 1 {
            return Err(bad("an int16 convolution has one group (depthwise ones are DepthwiseConv2d)"));
        }
        if w.storage != Storage::Constant || (w.dtype != x.dtype && !int16) {
            return Err(bad("weights must be a constant of the input's dtype (int8 for an int16 input)"));
        }
        let k = g.kernel_h * g.kernel_w * (cin / groups);
        if k > MAX_REDUCTION {
            return Err(bad("reduction longer than 65536 taps (int32 accumulator could overflow)"));
        }
        let stage = output_stage(d, o, &x, &y, cout)?;
        let kernel = match stage {
            // Row-major int8 weights run the direct convolution (any groups).
            OutputStage::Int8(rq) if w.layout == Layout::RowMajor => {
                let e = resolve(QS8_CONV, d.features, &Query { geometry: g, pack: None, k });
                ConvKernel::Direct { name: e.name, f: e.f, w: d.constant(&w), rq }
            }
            stage => matrix_kernel(d, o, &g, &w, k, stage)?,
        };
        Ok(Conv { x, y, geometry: g, kernel })
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        self.kernel.run(e, &self.geometry, &self.x, &self.y)
    }
}
