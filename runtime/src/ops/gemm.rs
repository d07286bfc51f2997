//! Fully-connected family: `y[.., n] = x[.., :] . w[n][:] + bias[n]` over the last axis, int8 (to
//! int8, or to f32 straight from the accumulator for logits) or f32; weights `[N, K]` row-major,
//! packed in panels or block-sparse.

use super::conv::{matrix_kernel, sparse_view, ConvKernel};
use super::{check_clamp_f32, check_constant, invalid, output_stage, Decoder, Exec, OutputStage, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::fc::F32Out;
use crate::kernels::gemm::WeightMatrix;
use crate::kernels::registry::{
    resolve, FcF32OutFn, FcFn, Query, SpFcF32OutFn, QS8_FC, QS8_FC_F32OUT, QS8_SPFC_F32OUT,
};
use crate::kernels::spgemm::BlockSparse;
use sparq_format::layout::op;
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

#[derive(Clone, Copy)]
pub enum FcKernel<'a> {
    /// A 1x1 convolution over the `m` rows (packed or block-sparse int8, and f32): a
    /// [`ConvKernel::Gemm`], [`ConvKernel::Sparse`] or [`ConvKernel::F32`].
    Matrix(ConvKernel<'a>),
    /// Int8 on a row-major matrix.
    RowMajor { name: &'static str, f: FcFn, w: &'a [i8], rq: Requant<'a> },
    /// Int8 in, f32 out, on a row-major or packed matrix.
    F32Out { name: &'static str, f: FcF32OutFn, w: WeightMatrix<'a>, out: F32Out<'a> },
    /// Int8 in, f32 out, on a block-sparse matrix.
    SparseF32Out { name: &'static str, f: SpFcF32OutFn, w: BlockSparse<'a>, out: F32Out<'a> },
}

/// Multiply-accumulates below which a fully-connected layer runs on one thread.
const FC_SPLIT_MIN: usize = 256 * 1024;

#[derive(Clone, Copy)]
pub struct FullyConnected<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    /// Rows, reduction, outputs.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub kernel: FcKernel<'a>,
}

impl<'a> FullyConnected<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let (x, w, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        if x.storage != Storage::Arena || x.layout != Layout::RowMajor || y.layout != Layout::RowMajor || x.rank == 0 {
            return Err(bad("input and output must be row-major arena tensors"));
        }
        if w.rank != 2 || w.storage != Storage::Constant || (w.dtype != x.dtype && x.dtype != DType::I16) {
            return Err(bad("weights must be a [N, K] constant of the input's dtype (int8 for an int16 input)"));
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
        let m = x.elements() / k.max(1);
        let g = ConvGeometry::rows(m, k, n);
        let q = Query { geometry: g, pack: w.pack, k };
        let kernel = if f32_out {
            if o.input_count != 4 {
                return Err(bad("int8 -> f32 layers take input, weights, bias and output scales"));
            }
            let (b, sc) = (d.input(o, 2), d.input(o, 3));
            check_constant(o, &b, DType::I32, n, "bias must be an i32 constant with one value per output")?;
            check_constant(o, &sc, DType::F32, n, "output scales must be an f32 constant with one value per output")?;
            let scale = d.constant::<f32>(&sc);
            if scale.iter().any(|s| !s.is_finite()) {
                return Err(bad("output scales must be finite"));
            }
            check_clamp_f32(o)?;
            let out = F32Out {
                bias: d.constant(&b),
                scale,
                input_zero_point: x.zero_point,
                lo: o.param_f32(op::ACT_MIN),
                hi: o.param_f32(op::ACT_MAX),
            };
            match sparse_view(d, &w) {
                Some(sw) => {
                    let e = resolve(QS8_SPFC_F32OUT, d.features, &Query { pack: Some(sw.block), ..q });
                    FcKernel::SparseF32Out { name: e.name, f: e.f, w: sw, out }
                }
                None => {
                    let e = resolve(QS8_FC_F32OUT, d.features, &q);
                    let wm = WeightMatrix { data: d.constant(&w), n, k, pack: w.pack };
                    FcKernel::F32Out { name: e.name, f: e.f, w: wm, out }
                }
            }
        } else {
            match output_stage(d, o, &x, &y, n)? {
                OutputStage::Int8(rq) if w.layout == Layout::RowMajor => {
                    let e = resolve(QS8_FC, d.features, &q);
                    FcKernel::RowMajor { name: e.name, f: e.f, w: d.constant(&w), rq }
                }
                stage => FcKernel::Matrix(matrix_kernel(d, o, &g, &w, k, stage)?),
            }
        };
        if let FcKernel::Matrix(ConvKernel::Direct { .. }) = kernel {
            return Err(bad("weights must be row-major, or packed int8"));
        }
        Ok(FullyConnected { x, y, m, k, n, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match &self.kernel {
            FcKernel::Matrix(c) => c.name(),
            FcKernel::RowMajor { name, .. } | FcKernel::F32Out { name, .. } | FcKernel::SparseF32Out { name, .. } => {
                name
            }
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (m, k, n) = (self.m, self.k, self.n);
        // SAFETY (every call below): the kernel was resolved for features this CPU has, and its
        // registry entry accepted this shape and weight layout; the operands were validated at load.
        match self.kernel {
            FcKernel::Matrix(ref c) => match *c {
                // Not split across threads (as before the plan: fully-connected layers are small).
                ConvKernel::Gemm { f, ref w, ref rq, .. } => {
                    let g = ConvGeometry::rows(m, k, n);
                    unsafe { f(&g, e.data(&self.x), w, rq, e.out(&self.y)) }
                }
                ConvKernel::Sparse { f, ref w, ref rq, .. } => {
                    let g = ConvGeometry::rows(m, k, n);
                    unsafe { f(&g, e.data(&self.x), w, rq, e.out(&self.y)) }
                }
                ConvKernel::F32 { f, w, bias, lo, hi, .. } => {
                    let g = ConvGeometry::rows(m, k, n);
                    unsafe { f(&g, e.data(&self.x), w, bias, lo, hi, e.out(&self.y)) }
                }
                ConvKernel::Int16 { f, ref w, ref rq, .. } => {
                    let g = ConvGeometry::rows(m, k, n);
                    unsafe { f(&g, e.data(&self.x), w, rq, e.out(&self.y)) }
                }
                // Refused by `decode`.
                ConvKernel::Direct { .. } | ConvKernel::Int16Dw { .. } => {}
            },
            FcKernel::RowMajor { f, w, ref rq, .. } => unsafe { f(m, k, n, e.data(&self.x), w, rq, e.out(&self.y)) },
            FcKernel::F32Out { f, ref w, ref out, .. } => {
                let x = e.data::<i8>(&self.x);
                let y = e.out::<f32>(&self.y);
                let yp = super::OutPtr(y.as_mut_ptr());
                assert!(x.len() >= m * k && y.len() >= m * n);
                if m == 1 {
                    // One row (a classifier's logits): the output channels are cut between the
                    // threads at panel boundaries, each thread reading only its panels (the
                    // layer streams its weights from memory; two cores stream twice as fast).
                    let unit = w.pack.map_or(16, |p| p.nr);
                    let row = w.pack.map_or(k, |p| k.div_ceil(p.kr) * p.kr);
                    e.split(n, unit, FC_SPLIT_MIN / k.max(1), &|c0, c1| {
                        let ws = WeightMatrix { data: &w.data[c0 * row..], n: c1 - c0, ..*w };
                        let os = F32Out { bias: &out.bias[c0..c1], scale: &out.scale[c0..c1], ..*out };
                        // SAFETY: outputs `[c0, c1)` of the one row: in bounds (asserted above) and
                        // disjoint between the parts of `split`, which waits for all of them;
                        // the kernel was resolved for this CPU and layout (a part is the same
                        // layout on fewer panels).
                        unsafe { f(1, x, &ws, &os, core::slice::from_raw_parts_mut(yp.get().add(c0), c1 - c0)) }
                    });
                } else {
                    e.split(m, 1, FC_SPLIT_MIN / (k * n).max(1), &|r0, r1| {
                        // SAFETY: output rows `[r0, r1)`, as above.
                        let ys = unsafe { core::slice::from_raw_parts_mut(yp.get().add(r0 * n), (r1 - r0) * n) };
                        unsafe { f(r1 - r0, &x[r0 * k..r1 * k], w, out, ys) }
                    });
                }
            }
            FcKernel::SparseF32Out { f, ref w, ref out, .. } => unsafe {
                f(m, e.data(&self.x), w, out, e.out(&self.y))
            },
        }
    }
}
