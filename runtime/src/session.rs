//! A session runs a validated model in a caller-owned arena. `Session::new` checks the arena;
//! `run` only computes: no checks, no allocation.

use crate::error::RuntimeError;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::elementwise::{self as ew, AddParams, MulParams};
use crate::kernels::fc::F32Out;
use crate::kernels::gemm::WeightMatrix;
use crate::kernels::registry::{self, KernelSet};
use crate::kernels::spgemm::BlockSparse;
use crate::kernels::strided::{self, aligned, logical_strides, padded_dims, R};
use crate::kernels::{depthwise, pool, softmax};
use crate::model::Model;

/// The best kernel set for this CPU, decided once per session. With std, `SPARQ_KERNELS=scalar`
/// (or another set's name) forces a path, for comparisons.
fn choose_kernels() -> Result<KernelSet, RuntimeError> {
    #[cfg(feature = "std")]
    if let Ok(name) = std::env::var("SPARQ_KERNELS") {
        return registry::select(Some(&name)).ok_or(RuntimeError::KernelsUnavailable);
    }
    Ok(registry::select(None).unwrap_or(registry::SCALAR))
}
use sparq_format::layout::op::{self, window};
use sparq_format::{DType, FileView, Layout, OpInfo, Storage, TensorInfo};

/// Element types a tensor slice can be viewed as. Any bit pattern is a valid value of each.
pub trait Element: Copy + 'static {
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

/// A constant tensor's data, in place in the file.
pub(crate) fn constant_slice<'a, T: Element>(view: &FileView<'a>, t: &TensorInfo<'_>) -> &'a [T] {
    let bytes = view.constant_bytes(t);
    debug_assert_eq!(t.dtype.size(), core::mem::size_of::<T>());
    // SAFETY: the reader checked that the WEIGHTS section starts at a 4-byte aligned address and
    // that every constant starts at a multiple of 64 from it and lies inside it, with
    // `data_size = elements * size_of::<T>()`. Every bit pattern is a valid `T` (f32, i8, i32).
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / core::mem::size_of::<T>()) }
}

/// Hooks called around each op of a run (profilers, tensor dumps). Must not allocate to keep
/// `run` allocation-free.
pub trait Observer {
    fn before_op(&mut self, _op: usize) {}
    /// `arena` holds every live tensor; the op's output is complete.
    fn after_op(&mut self, _op: usize, _arena: &[u8]) {}
}

/// An observer that does nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// How a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// Threads splitting each convolution (the caller's plus `threads - 1` workers started with
    /// the session and kept for its lifetime). More than 1 needs the std feature.
    pub threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { threads: 1 }
    }
}

pub struct Session<'s, 'a> {
    model: &'s Model<'a>,
    arena: &'s mut [u8],
    kernels: KernelSet,
    #[cfg(feature = "std")]
    pool: Option<crate::pool::ThreadPool>,
}

impl<'s, 'a> Session<'s, 'a> {
    /// Bind a model to an arena of at least `model.arena_size()` bytes, 64-byte aligned.
    pub fn new(model: &'s Model<'a>, arena: &'s mut [u8]) -> Result<Session<'s, 'a>, RuntimeError> {
        Self::with_options(model, arena, SessionOptions::default())
    }

    /// [`Session::new`] with options (threads).
    pub fn with_options(
        model: &'s Model<'a>,
        arena: &'s mut [u8],
        options: SessionOptions,
    ) -> Result<Session<'s, 'a>, RuntimeError> {
        if arena.len() < model.arena_size() {
            return Err(RuntimeError::ArenaTooSmall { needed: model.arena_size(), given: arena.len() });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(sparq_format::layout::ALIGN) {
            return Err(RuntimeError::ArenaMisaligned { address: arena.as_ptr() as usize });
        }
        let threads = options.threads;
        if threads == 0 || (threads > 1 && cfg!(not(feature = "std"))) {
            return Err(RuntimeError::Threads { requested: threads });
        }
        Ok(Session {
            model,
            arena,
            kernels: choose_kernels()?,
            #[cfg(feature = "std")]
            pool: if threads > 1 {
                Some(crate::pool::ThreadPool::new(threads).map_err(|e| RuntimeError::Io(e.kind()))?)
            } else {
                None
            },
        })
    }

    /// Threads each convolution is split across.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "std")]
        if let Some(p) = &self.pool {
            return p.threads();
        }
        1
    }

    /// The kernel path this session runs (`scalar`, `avx2`, ...).
    pub fn kernels(&self) -> &'static str {
        self.kernels.name()
    }

    pub fn model(&self) -> &'s Model<'a> {
        self.model
    }

    /// The f32 input tensor `i`, to be filled in logical (ONNX, row-major) order.
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [f32], RuntimeError> {
        let t = self.model.input(i).ok_or(RuntimeError::NoSuchInput { index: i, count: self.model.input_count() })?;
        if t.dtype != DType::F32 {
            return Err(RuntimeError::InputDType { index: i });
        }
        Ok(self.tensor_mut::<f32>(&t))
    }

    /// Copy `data` (logical order) into input `i`, checking its length.
    pub fn set_input(&mut self, i: usize, data: &[f32]) -> Result<(), RuntimeError> {
        let slot = self.input_mut(i)?;
        if slot.len() != data.len() {
            return Err(RuntimeError::InputLength { index: i, expected: slot.len(), given: data.len() });
        }
        slot.copy_from_slice(data);
        Ok(())
    }

    /// The f32 output tensor `i` in logical order, valid after `run`.
    pub fn output(&self, i: usize) -> Result<&[f32], RuntimeError> {
        let t =
            self.model.output(i).ok_or(RuntimeError::NoSuchOutput { index: i, count: self.model.output_count() })?;
        if t.dtype != DType::F32 {
            return Err(RuntimeError::InputDType { index: i });
        }
        Ok(self.tensor::<f32>(&t))
    }

    /// View an arena tensor of `T` (checked dtype).
    pub fn tensor<T: Element>(&self, t: &TensorInfo<'_>) -> &[T] {
        assert!(t.storage == Storage::Arena && t.dtype == T::DTYPE);
        // SAFETY: validated at load: the tensor lies in the planned arena (which `new` checked
        // is no larger than `self.arena`), its offset is a multiple of its element size and the
        // arena is 64-byte aligned.
        unsafe { core::slice::from_raw_parts(self.arena.as_ptr().add(t.data_offset).cast::<T>(), t.elements()) }
    }

    fn tensor_mut<T: Element>(&mut self, t: &TensorInfo<'_>) -> &mut [T] {
        assert!(t.storage == Storage::Arena && t.dtype == T::DTYPE);
        // SAFETY: as in `tensor`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(self.arena.as_mut_ptr().add(t.data_offset).cast::<T>(), t.elements()) }
    }

    /// Run every op in order.
    pub fn run(&mut self) {
        self.run_observed(&mut NoObserver);
    }

    pub fn run_observed(&mut self, observer: &mut dyn Observer) {
        let view = *self.model.view();
        let base = self.arena.as_mut_ptr();
        let ctx = Ctx {
            view,
            base,
            kernels: self.kernels,
            #[cfg(feature = "std")]
            pool: self.pool.as_ref(),
            #[cfg(not(feature = "std"))]
            _pool: core::marker::PhantomData,
        };
        for i in 0..view.op_count() {
            observer.before_op(i);
            ctx.exec(&view.op(i));
            observer.after_op(i, self.arena);
        }
    }
}

/// Operand access during a run.
struct Ctx<'a, 'p> {
    view: FileView<'a>,
    base: *mut u8,
    kernels: KernelSet,
    #[cfg(feature = "std")]
    pool: Option<&'p crate::pool::ThreadPool>,
    #[cfg(not(feature = "std"))]
    _pool: core::marker::PhantomData<&'p ()>,
}

/// A convolution-like kernel call: `f(geometry, input, output)`.
type ConvFn<'f, T> = dyn Fn(&ConvGeometry, &[T], &mut [T]) + Sync + 'f;

/// An output pointer shared by the threads of one op, each writing a disjoint part.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct OutPtr<T>(*mut T);
// SAFETY: only used to hand each thread a disjoint sub-slice of one output (see `conv_rows`).
#[cfg(feature = "std")]
unsafe impl<T> Send for OutPtr<T> {}
#[cfg(feature = "std")]
unsafe impl<T> Sync for OutPtr<T> {}

#[cfg(feature = "std")]
impl<T> OutPtr<T> {
    /// (A method, so closures capture the whole `Sync` wrapper rather than its raw field.)
    fn get(self) -> *mut T {
        self.0
    }
}

impl<'a> Ctx<'a, '_> {
    /// Run a convolution-like kernel (`f(geometry, input, output)` over NHWC tensors), split by
    /// output rows across the session's threads: each thread gets the rows `[oh0, oh1)` as a
    /// convolution of its own, over the input rows it reads (the padding adjusted), writing its
    /// own part of the output. Results are identical to one call: every output is computed by
    /// the same kernel from the same inputs.
    fn conv_rows<T: Element + Send + Sync>(&self, g: &ConvGeometry, x: &[T], y: &mut [T], f: &ConvFn<'_, T>) {
        #[cfg(feature = "std")]
        if let Some(pool) = self.pool {
            let threads = pool.threads();
            if g.batch == 1 && g.out_h >= 2 * threads {
                let row = g.out_w * g.out_c;
                let out = OutPtr(y.as_mut_ptr());
                assert!(y.len() >= g.out_h * row);
                pool.run(&|i| {
                    let (oh0, oh1) = (g.out_h * i / threads, g.out_h * (i + 1) / threads);
                    if oh0 == oh1 {
                        return;
                    }
                    // First input row read, and the top padding left above it.
                    let r0 = (oh0 * g.stride_h).saturating_sub(g.pad_top);
                    let pad_top = g.pad_top + r0 - oh0 * g.stride_h;
                    let last = (oh1 - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h;
                    let in_h = (g.in_h - r0.min(g.in_h)).min((last + 1).saturating_sub(g.pad_top + r0));
                    let sub = ConvGeometry { in_h, out_h: oh1 - oh0, pad_top, ..*g };
                    let xs = &x[(r0 * g.in_w * g.in_c).min(x.len())..];
                    // SAFETY: rows `[oh0, oh1)` of the output (asserted in bounds above) are
                    // disjoint between threads, and `run` returns only when all are done.
                    let ys = unsafe { core::slice::from_raw_parts_mut(out.get().add(oh0 * row), (oh1 - oh0) * row) };
                    f(&sub, xs, ys);
                });
                return;
            }
        }
        f(g, x, y)
    }

    fn data<T: Element>(&self, t: &TensorInfo<'_>) -> &[T] {
        match t.storage {
            Storage::Constant => constant_slice(&self.view, t),
            // SAFETY: arena tensors were validated to lie in the arena with aligned offsets; an
            // op's inputs never overlap its output (checked at load), so this shared view does
            // not alias the mutable output view created by `out`.
            Storage::Arena => unsafe {
                core::slice::from_raw_parts(self.base.add(t.data_offset).cast::<T>(), t.elements())
            },
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn out<T: Element>(&self, t: &TensorInfo<'_>) -> &mut [T] {
        // SAFETY: see `data`; the output is an arena tensor (validated) disjoint from the inputs.
        unsafe { core::slice::from_raw_parts_mut(self.base.add(t.data_offset).cast::<T>(), t.elements()) }
    }

    fn geometry(x: &TensorInfo<'_>, y: &TensorInfo<'_>, p: &[i32], groups: usize) -> ConvGeometry {
        ConvGeometry {
            batch: x.dims[0],
            in_c: x.dims[1],
            in_h: x.dims[2],
            in_w: x.dims[3],
            out_c: y.dims[1],
            out_h: y.dims[2],
            out_w: y.dims[3],
            kernel_h: p[window::KERNEL_H] as usize,
            kernel_w: p[window::KERNEL_W] as usize,
            stride_h: p[window::STRIDE_H] as usize,
            stride_w: p[window::STRIDE_W] as usize,
            pad_top: p[window::PAD_TOP] as usize,
            pad_left: p[window::PAD_LEFT] as usize,
            dilation_h: p[window::DILATION_H] as usize,
            dilation_w: p[window::DILATION_W] as usize,
            groups,
        }
    }

    /// The `N x K` matrix view of a Conv/FullyConnected weight tensor.
    fn matrix<'b>(w: &TensorInfo<'_>, data: &'b [i8]) -> WeightMatrix<'b> {
        let n = w.dims[0];
        WeightMatrix { data, n, k: w.shape()[1..].iter().product(), pack: w.pack }
    }

    /// The block-sparse view of a weight tensor in that layout (validated at load: O(1) here).
    fn sparse(&self, w: &TensorInfo<'_>) -> Option<BlockSparse<'a>> {
        let block = w.pack.filter(|_| w.layout == Layout::BlockSparse)?;
        let k = w.shape()[1..].iter().product();
        Some(BlockSparse::view(self.view.constant_bytes(w), w.dims[0], k, block))
    }

    fn requant<'b>(&'b self, o: &OpInfo<'_>, x: &TensorInfo<'_>, y: &TensorInfo<'_>) -> Requant<'b> {
        let t = |i| self.view.tensor(o.input(i));
        Requant {
            bias: self.data::<i32>(&t(2)),
            mult: self.data::<i32>(&t(3)),
            shift: self.data::<i32>(&t(4)),
            input_zero_point: x.zero_point,
            output_zero_point: y.zero_point,
            act_min: o.params[op::ACT_MIN],
            act_max: o.params[op::ACT_MAX],
        }
    }

    fn exec(&self, o: &OpInfo<'_>) {
        let t = |i| self.view.tensor(o.input(i));
        let y = self.view.tensor(o.output(0));
        let p = &o.params;
        let (lo, hi) = (o.param_f32(op::ACT_MIN), o.param_f32(op::ACT_MAX));
        match o.kind {
            op::CONV2D | op::DEPTHWISE_CONV2D => {
                let (x, w) = (t(0), t(1));
                let groups = if o.kind == op::CONV2D { p[window::GROUPS] as usize } else { x.dims[1] };
                let g = Self::geometry(&x, &y, p, groups);
                let k = self.kernels;
                match (x.dtype, o.kind) {
                    (DType::I8, kind) => {
                        let rq = self.requant(o, &x, &y);
                        let (xd, wd) = (self.data::<i8>(&x), self.data::<i8>(&w));
                        let m = Self::matrix(&w, wd);
                        let sparse = self.sparse(&w);
                        let packed = w.layout == Layout::Packed;
                        self.conv_rows(&g, xd, self.out::<i8>(&y), &|g, x, y| match kind {
                            op::CONV2D if sparse.is_some() => k.qs8_spgemm(g, x, sparse.as_ref().unwrap(), &rq, y),
                            op::CONV2D if packed => k.qs8_gemm(g, x, &m, &rq, y),
                            op::CONV2D => k.qs8_conv2d(g, x, wd, &rq, y),
                            _ => k.qs8_dwconv(g, x, wd, &rq, y),
                        });
                    }
                    (_, kind) => {
                        let (wd, bd) = (self.data::<f32>(&w), self.data::<f32>(&t(2)));
                        self.conv_rows(&g, self.data::<f32>(&x), self.out::<f32>(&y), &|g, x, y| {
                            if kind == op::CONV2D {
                                k.f32_conv2d(g, x, wd, bd, lo, hi, y)
                            } else {
                                depthwise::scalar::f32_dwconv_scalar(g, x, wd, bd, lo, hi, y)
                            }
                        });
                    }
                }
            }
            op::FULLY_CONNECTED => {
                let (x, w) = (t(0), t(1));
                let (n, k) = (w.dims[0], w.dims[1]);
                let m = x.elements() / k.max(1);
                if x.dtype == DType::I8 && y.dtype == DType::F32 {
                    let (b, sc) = (t(2), t(3));
                    let f =
                        F32Out { bias: self.data(&b), scale: self.data(&sc), input_zero_point: x.zero_point, lo, hi };
                    let (xd, out) = (self.data(&x), self.out(&y));
                    match self.sparse(&w) {
                        Some(s) => self.kernels.qs8_spfc_f32out(m, xd, &s, &f, out),
                        None => self.kernels.qs8_fc_f32out(m, xd, &Self::matrix(&w, self.data(&w)), &f, out),
                    }
                } else if x.dtype == DType::I8 && matches!(w.layout, Layout::Packed | Layout::BlockSparse) {
                    // A fully-connected layer is a 1x1 convolution over `m` rows.
                    let g = ConvGeometry::rows(m, k, n);
                    let (xd, rq, out) = (self.data(&x), self.requant(o, &x, &y), self.out(&y));
                    match self.sparse(&w) {
                        Some(s) => self.kernels.qs8_spgemm(&g, xd, &s, &rq, out),
                        None => self.kernels.qs8_gemm(&g, xd, &Self::matrix(&w, self.data(&w)), &rq, out),
                    }
                } else if x.dtype == DType::I8 {
                    self.kernels.qs8_fc(m, k, n, self.data(&x), self.data(&w), &self.requant(o, &x, &y), self.out(&y));
                } else {
                    // f32: a 1x1 convolution over `m` rows (the same rounding order as
                    // `fc::scalar::f32_fc_scalar`).
                    let g = ConvGeometry::rows(m, k, n);
                    let (xd, wd, bd) = (self.data(&x), self.data(&w), self.data(&t(2)));
                    self.kernels.f32_conv2d(&g, xd, wd, bd, lo, hi, self.out(&y));
                }
            }
            op::ADD | op::MUL => {
                let (a, b) = (t(0), t(1));
                let dims = padded_dims(y.shape());
                let st = [aligned(&a, y.shape()), aligned(&b, y.shape()), aligned(&y, y.shape())];
                match (y.dtype, o.kind) {
                    (DType::I8, op::ADD) => {
                        let prm = AddParams {
                            zp_a: a.zero_point,
                            zp_b: b.zero_point,
                            zp_out: y.zero_point,
                            mult_a: p[op::MULT_A],
                            mult_b: p[op::MULT_B],
                            shift: p[op::SHIFT],
                            act_min: p[op::ACT_MIN],
                            act_max: p[op::ACT_MAX],
                        };
                        if a.shape() == y.shape()
                            && b.shape() == y.shape()
                            && a.layout == y.layout
                            && b.layout == y.layout
                        {
                            self.kernels.qs8_add(self.data(&a), self.data(&b), self.out(&y), &prm)
                        } else {
                            ew::qs8_add_scalar(&dims, &st, self.data(&a), self.data(&b), self.out(&y), &prm)
                        }
                    }
                    (DType::I8, _) => {
                        let prm = MulParams {
                            zp_a: a.zero_point,
                            zp_b: b.zero_point,
                            zp_out: y.zero_point,
                            mult: p[op::MULT_A],
                            shift: p[op::SHIFT],
                            act_min: p[op::ACT_MIN],
                            act_max: p[op::ACT_MAX],
                        };
                        if a.shape() == y.shape()
                            && b.shape() == y.shape()
                            && a.layout == y.layout
                            && b.layout == y.layout
                        {
                            self.kernels.qs8_mul(self.data(&a), self.data(&b), self.out(&y), &prm)
                        } else {
                            ew::qs8_mul_scalar(&dims, &st, self.data(&a), self.data(&b), self.out(&y), &prm)
                        }
                    }
                    (_, op::ADD) => ew::f32_add_scalar(&dims, &st, self.data(&a), self.data(&b), self.out(&y), lo, hi),
                    _ => ew::f32_mul_scalar(&dims, &st, self.data(&a), self.data(&b), self.out(&y), lo, hi),
                }
            }
            op::CLAMP | op::RESHAPE | op::QUANTIZE | op::DEQUANTIZE | op::REQUANTIZE => {
                let x = t(0);
                let (dims, st) = unary_walk(&x, &y);
                match (o.kind, x.dtype) {
                    (op::CLAMP, DType::I8) => {
                        let (qlo, qhi) = (p[op::ACT_MIN] as i8, p[op::ACT_MAX] as i8);
                        ew::map_strided(&dims, &st, self.data::<i8>(&x), self.out::<i8>(&y), |v| v.clamp(qlo, qhi))
                    }
                    (op::CLAMP, _) => {
                        ew::map_strided(&dims, &st, self.data::<f32>(&x), self.out::<f32>(&y), |v| v.clamp(lo, hi))
                    }
                    (op::RESHAPE, DType::I8) => {
                        ew::map_strided(&dims, &st, self.data::<i8>(&x), self.out::<i8>(&y), |v| v)
                    }
                    (op::RESHAPE, _) => ew::map_strided(&dims, &st, self.data::<f32>(&x), self.out::<f32>(&y), |v| v),
                    (op::QUANTIZE, _) => {
                        let (s, z) = (y.scale, y.zero_point);
                        let k = self.kernels;
                        ew::quantize_strided(&dims, &st, self.data::<f32>(&x), self.out::<i8>(&y), s, z, |a, b| {
                            k.qs8_quantize(a, b, s, z)
                        })
                    }
                    (op::DEQUANTIZE, _) => {
                        let (s, z) = (x.scale, x.zero_point);
                        ew::map_strided(&dims, &st, self.data::<i8>(&x), self.out::<f32>(&y), |v| {
                            ew::dequantize(v, s, z)
                        })
                    }
                    _ => {
                        let (zi, zo, m, sh) = (x.zero_point, y.zero_point, p[op::MULT_A], p[op::SHIFT]);
                        ew::map_strided(&dims, &st, self.data::<i8>(&x), self.out::<i8>(&y), |v| {
                            ew::requantize_i8(v, zi, zo, m, sh)
                        })
                    }
                }
            }
            op::MAX_POOL | op::AVERAGE_POOL => {
                let x = t(0);
                let g = Self::geometry(&x, &y, p, 1);
                let include_pad = p[window::GROUPS] != 0;
                match (o.kind, x.dtype) {
                    (op::MAX_POOL, DType::I8) => self.kernels.qs8_max_pool(&g, self.data(&x), self.out(&y)),
                    (op::MAX_POOL, _) => pool::max_pool::<f32>(&g, self.data(&x), self.out(&y), f32::NEG_INFINITY),
                    (_, DType::I8) => pool::qs8_avg_pool(&g, self.data(&x), self.out(&y), x.zero_point, include_pad),
                    _ => pool::f32_avg_pool(&g, self.data(&x), self.out(&y), include_pad),
                }
            }
            op::GLOBAL_AVERAGE_POOL => {
                let x = t(0);
                let (n, c, hw) = (x.dims[0], x.dims[1], x.dims[2] * x.dims[3]);
                if x.dtype == DType::I8 {
                    let gp = pool::GlobalPool {
                        batch: n,
                        hw,
                        channels: c,
                        zp_in: x.zero_point,
                        zp_out: y.zero_point,
                        mult: p[op::MULT_A],
                        shift: p[op::SHIFT],
                    };
                    self.kernels.qs8_global_avg_pool(&gp, self.data(&x), self.out(&y));
                } else {
                    pool::f32_global_avg_pool(n, hw, c, self.data(&x), self.out(&y));
                }
            }
            op::CONCAT => {
                let axis = p[op::AXIS] as usize;
                let out_strides = logical_strides(&y);
                let lead = R - y.rank;
                let mut start = 0usize;
                for i in 0..o.input_count {
                    let x = t(i);
                    let dims = padded_dims(x.shape());
                    let mut ys = [0usize; R];
                    ys[lead..].copy_from_slice(&out_strides[..y.rank]);
                    let base = start * out_strides[axis];
                    let st = [aligned(&x, x.shape()), ys];
                    if x.dtype == DType::I8 {
                        ew::map_strided(&dims, &st, self.data::<i8>(&x), &mut self.out::<i8>(&y)[base..], |v| v);
                    } else {
                        ew::map_strided(&dims, &st, self.data::<f32>(&x), &mut self.out::<f32>(&y)[base..], |v| v);
                    }
                    start += x.dims[axis];
                }
            }
            op::SOFTMAX => {
                let x = t(0);
                let axis = p[op::AXIS] as usize;
                if x.dtype == DType::I8 {
                    softmax::qs8_softmax(&x, &y, axis, self.data(&x), self.out(&y));
                } else {
                    softmax::f32_softmax(&x, &y, axis, self.data(&x), self.out(&y));
                }
            }
            _ => {} // rejected at load
        }
    }
}

/// Row-major strides of logical `dims`, as a 6-d walk.
fn row_major(dims: &[usize]) -> [usize; R] {
    let mut s = [0usize; R];
    let mut acc = 1;
    for a in (0..dims.len()).rev() {
        s[R - dims.len() + a] = acc;
        acc *= dims[a];
    }
    s
}

/// Walk dims and strides of a one-input op whose input and output share the logical linear
/// order. For a reshape, the walk follows the side that is not dense row-major (load checked
/// that at least one is), addressing the other by the logical linear index.
fn unary_walk(x: &TensorInfo<'_>, y: &TensorInfo<'_>) -> ([usize; R], [[usize; R]; 2]) {
    if x.shape() == y.shape() {
        (padded_dims(x.shape()), [aligned(x, x.shape()), aligned(y, x.shape())])
    } else if strided::is_dense_row_major(y) {
        (padded_dims(x.shape()), [aligned(x, x.shape()), row_major(x.shape())])
    } else {
        (padded_dims(y.shape()), [row_major(y.shape()), aligned(y, y.shape())])
    }
}
