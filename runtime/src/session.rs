//! A session runs a validated model in a caller-owned arena. `Session::new` checks the arena and
//! plans the run: every op is decoded once into an [`Op`] resolved to its kernel for this CPU,
//! and stored in the arena after the tensors. `run` walks that plan: no parsing, no checks, no
//! kernel choice, no allocation.

use crate::cpu::{Features, PATHS};
use crate::error::RuntimeError;
use crate::model::Model;
use crate::ops::{Exec, Op};
use crate::tensor::Element;
use sparq_format::{DType, Storage, TensorInfo};

/// The kernel path a session created now would run: its name and the features its kernels may
/// use. With std, `SPARQ_KERNELS=scalar` (or another path's name) forces a path, for comparisons.
pub fn kernel_path() -> Result<(&'static str, Features), RuntimeError> {
    let cpu = Features::detect();
    #[cfg(feature = "std")]
    if let Ok(name) = std::env::var("SPARQ_KERNELS") {
        let path = PATHS.iter().find(|p| p.name == name).ok_or(RuntimeError::KernelsUnavailable)?;
        let features = path.on(cpu).ok_or(RuntimeError::KernelsUnavailable)?;
        return Ok((path.name, features));
    }
    // The widest path this CPU runs names the session; the ops use every feature it has.
    let name = PATHS.iter().rev().find(|p| p.on(cpu).is_some()).map_or("scalar", |p| p.name);
    Ok((name, cpu))
}

/// Hooks called around each op of a run (profilers, tensor dumps). Must not allocate to keep
/// `run` allocation-free.
pub trait Observer {
    fn before_op(&mut self, _op: usize) {}
    /// `arena` holds every live tensor; the op's output is complete.
    fn after_op(&mut self, _op: usize, _arena: &[u8]) {}
    /// Checked after each op: `true` ends the run there (an observer that has what it came for,
    /// such as one intermediate tensor); the ops after it do not run and the outputs are stale.
    fn done(&self) -> bool {
        false
    }
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
    /// The largest arena (`Model::arena_size`) this session accepts; a larger model is refused
    /// with `ArenaLimit`. Callers that allocate the arena a file declares check
    /// `Model::check_arena` with the same limit first.
    pub max_arena: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { threads: 1, max_arena: crate::model::DEFAULT_MAX_ARENA }
    }
}

pub struct Session<'s, 'a> {
    model: &'s Model<'a>,
    /// The tensors' part of the arena.
    arena: &'s mut [u8],
    /// The plan: one decoded, resolved op per op of the model, in the arena after the tensors.
    plan: &'s [Op<'a>],
    path: &'static str,
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
        let needed = model.check_arena(options.max_arena)?;
        if needed == usize::MAX || arena.len() < needed {
            return Err(RuntimeError::ArenaTooSmall { needed, given: arena.len() });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(sparq_format::layout::ALIGN) {
            return Err(RuntimeError::ArenaMisaligned { address: arena.as_ptr() as usize });
        }
        let threads = options.threads;
        if threads == 0 || (threads > 1 && cfg!(not(feature = "std"))) {
            return Err(RuntimeError::Threads { requested: threads });
        }
        let (path, features) = kernel_path()?;
        let (tensors, plan_bytes) = arena.split_at_mut(model.plan_offset());
        let plan = build_plan(model, features, plan_bytes)?;
        Ok(Session {
            model,
            arena: tensors,
            plan,
            path,
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
        self.path
    }

    /// The kernel op `i` resolved to (a registry entry's name), `None` past the last op.
    pub fn op_kernel(&self, i: usize) -> Option<&'static str> {
        self.plan.get(i).map(Op::kernel)
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

    /// Copy `data` (logical order) into input `i`, checking its length. An int8 input (a model
    /// compiled for camera frames, `--input-dtype u8`) takes the real values too: they are
    /// quantized with the input's scale and zero point and stored in its layout (NHWC frames are
    /// transposed from the logical NCHW order); [`Session::set_input_u8`] is the copy-free way.
    pub fn set_input(&mut self, i: usize, data: &[f32]) -> Result<(), RuntimeError> {
        let t = self.model.input(i).ok_or(RuntimeError::NoSuchInput { index: i, count: self.model.input_count() })?;
        if t.dtype == DType::I8 {
            if t.elements() != data.len() {
                return Err(RuntimeError::InputLength { index: i, expected: t.elements(), given: data.len() });
            }
            let (scale, zp) = (t.scale, t.zero_point);
            let nhwc = nhwc_dims(&t);
            let slot = self.tensor_mut::<i8>(&t);
            match nhwc {
                Some((n, c, hw)) => {
                    for b in 0..n {
                        for ch in 0..c {
                            for p in 0..hw {
                                let x = data[(b * c + ch) * hw + p];
                                slot[(b * hw + p) * c + ch] = crate::quant::quantize_f32(x, scale, zp);
                            }
                        }
                    }
                }
                None => {
                    for (d, &x) in slot.iter_mut().zip(data) {
                        *d = crate::quant::quantize_f32(x, scale, zp);
                    }
                }
            }
            return Ok(());
        }
        let slot = self.input_mut(i)?;
        if slot.len() != data.len() {
            return Err(RuntimeError::InputLength { index: i, expected: slot.len(), given: data.len() });
        }
        slot.copy_from_slice(data);
        Ok(())
    }

    /// Copy a uint8 frame into input `i` of a model compiled for camera frames
    /// (`--input-dtype u8`: an int8 input with zero point -128, whose codes are the bytes with the
    /// top bit flipped), in the input's memory order: `H, W, C` for an NHWC input (what cameras
    /// and image decoders produce), `C, H, W` for a row-major one. No float pass: the model's
    /// first op normalizes the frame in int8.
    pub fn set_input_u8(&mut self, i: usize, frame: &[u8]) -> Result<(), RuntimeError> {
        let t = self.model.input(i).ok_or(RuntimeError::NoSuchInput { index: i, count: self.model.input_count() })?;
        if t.dtype != DType::I8 || t.zero_point != -128 {
            return Err(RuntimeError::InputNotU8 { index: i });
        }
        if t.elements() != frame.len() {
            return Err(RuntimeError::InputLength { index: i, expected: t.elements(), given: frame.len() });
        }
        for (d, &u) in self.tensor_mut::<i8>(&t).iter_mut().zip(frame) {
            *d = (u ^ 0x80) as i8;
        }
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
        // SAFETY: validated at load: the tensor lies in the planned tensor arena (which `new`
        // checked this arena holds), its offset is a multiple of its element size and the arena
        // is 64-byte aligned.
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

    /// Run the ops in order with `observer`'s hooks around each, until it is done.
    pub fn run_observed(&mut self, observer: &mut dyn Observer) {
        let exec = Exec {
            view: *self.model.view(),
            base: self.arena.as_mut_ptr(),
            #[cfg(feature = "std")]
            pool: self.pool.as_ref(),
            #[cfg(not(feature = "std"))]
            _pool: core::marker::PhantomData,
        };
        for (i, op) in self.plan.iter().enumerate() {
            observer.before_op(i);
            op.run(&exec);
            observer.after_op(i, self.arena);
            if observer.done() {
                break;
            }
        }
    }
}

/// Decode every op of `model` for `features` into `bytes` (the arena's plan part, 64-byte
/// aligned, at least `model.plan_size()` bytes).
fn build_plan<'s, 'a>(
    model: &Model<'a>,
    features: Features,
    bytes: &'s mut [u8],
) -> Result<&'s [Op<'a>], RuntimeError> {
    const { assert!(core::mem::align_of::<Op<'static>>() <= sparq_format::layout::ALIGN) };
    let count = model.op_count();
    let view = model.view();
    debug_assert!(bytes.len() >= count * core::mem::size_of::<Op<'a>>());
    let steps = bytes.as_mut_ptr().cast::<Op<'a>>();
    for i in 0..count {
        let op = Op::decode(view, &view.op(i), features)?;
        // SAFETY: `bytes` starts 64-byte aligned (the arena is, and the plan offset is a multiple
        // of 64) and holds `count` ops (`Model::arena_size` counts them); `Op` has no drop glue,
        // so overwriting whatever was there is sound.
        unsafe { steps.add(i).write(op) };
    }
    // SAFETY: the first `count` slots were initialized above; the slice borrows `bytes`.
    Ok(unsafe { core::slice::from_raw_parts(steps, count) })
}

/// `(N, C, H*W)` of a rank-4 NHWC tensor (its `dims` are `N, C, H, W`), `None` for row-major.
fn nhwc_dims(t: &TensorInfo<'_>) -> Option<(usize, usize, usize)> {
    let d = t.shape();
    (t.layout == sparq_format::Layout::Nhwc && d.len() == 4).then(|| (d[0], d[1], d[2] * d[3]))
}
