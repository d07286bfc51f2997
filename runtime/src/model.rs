//! A validated model. `Model::from_bytes` checks the file structure (sparq-format) and then every
//! op's operands and parameters against what its kernel will read (by decoding it, see
//! [`crate::ops`]), so `Session::run` needs no checks and cannot index out of bounds.

use crate::cpu::Features;
use crate::error::RuntimeError;
use crate::ops::{invalid, Op};
use sparq_format::layout::{op, ALIGN};
use sparq_format::{FileView, OpInfo, ParseOptions, TensorInfo};

pub use crate::ops::{window_out, MAX_REDUCTION};

/// The largest arena a session accepts unless told otherwise (1 GiB): a file cannot make its
/// reader allocate more by declaring it. Raise it with `SessionOptions::max_arena`.
pub const DEFAULT_MAX_ARENA: usize = 1 << 30;

#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    view: FileView<'a>,
}

impl<'a> Model<'a> {
    /// Validate `bytes` and return a zero-copy view. The buffer must be 4-byte aligned (64 is
    /// best: every weight blob is then cache-line aligned).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>, RuntimeError> {
        Self::from_bytes_with(bytes, ParseOptions::default())
    }

    pub fn from_bytes_with(bytes: &'a [u8], opts: ParseOptions) -> Result<Model<'a>, RuntimeError> {
        let view = FileView::parse_with(bytes, opts)?;
        for i in 0..view.op_count() {
            // The scalar path: validation does not depend on the kernels a session will pick.
            Op::decode(&view, &view.op(i), Features::NONE)?;
        }
        for position in 0..view.input_count() + view.output_count() {
            let t = if position < view.input_count() {
                view.input(position)
            } else {
                view.output(position - view.input_count())
            };
            if view.tensor(t).shape().contains(&0) {
                return Err(RuntimeError::GraphIo {
                    position,
                    reason: "a zero-size dimension (zero-size tensors are not supported)",
                });
            }
        }
        for i in 0..view.input_count() {
            // Inputs are written by the caller, never by an op: no op may output into them.
            let t = view.input(i);
            for k in 0..view.op_count() {
                let o = view.op(k);
                if (0..o.output_count).any(|j| o.output(j) == t) {
                    return Err(invalid(&o, "writes a graph input"));
                }
            }
        }
        Ok(Model { view })
    }

    pub fn view(&self) -> &FileView<'a> {
        &self.view
    }
    pub fn name(&self) -> &'a str {
        self.view.model_name()
    }
    /// Exact number of arena bytes a session needs: the tensors ([`Model::tensor_arena_size`]),
    /// then the session's plan (one decoded op per op, [`Model::plan_size`]). `usize::MAX` if
    /// that does not fit in the address space.
    pub fn arena_size(&self) -> usize {
        self.plan_offset().saturating_add(self.plan_size())
    }
    /// The arena size if it is at most `limit` bytes, else `ArenaLimit`: check this before
    /// allocating an arena of the size a file declares ([`DEFAULT_MAX_ARENA`] by default).
    pub fn check_arena(&self, limit: usize) -> Result<usize, RuntimeError> {
        let needed = self.arena_size();
        if needed > limit {
            return Err(RuntimeError::ArenaLimit { needed, limit });
        }
        Ok(needed)
    }
    /// Bytes of the tensors' part of the arena, as the file plans it.
    pub fn tensor_arena_size(&self) -> usize {
        self.view.arena_size()
    }
    /// Bytes of the session plan: one decoded op per op of the model.
    pub fn plan_size(&self) -> usize {
        self.op_count().saturating_mul(core::mem::size_of::<Op<'static>>())
    }
    /// Where the plan starts in the arena: after the tensors, 64-byte aligned.
    pub(crate) fn plan_offset(&self) -> usize {
        self.tensor_arena_size().checked_next_multiple_of(ALIGN).unwrap_or(usize::MAX)
    }
    /// The name of the kernel op `i` runs on a CPU with `features` (as a session would pick it).
    pub fn op_kernel(&self, i: usize, features: Features) -> Option<&'static str> {
        (i < self.op_count())
            .then(|| Op::decode(&self.view, &self.view.op(i), features).ok())
            .flatten()
            .map(|o| o.kernel())
    }
    pub fn input_count(&self) -> usize {
        self.view.input_count()
    }
    pub fn output_count(&self) -> usize {
        self.view.output_count()
    }
    pub fn input(&self, i: usize) -> Option<TensorInfo<'a>> {
        (i < self.input_count()).then(|| self.view.tensor(self.view.input(i)))
    }
    pub fn output(&self, i: usize) -> Option<TensorInfo<'a>> {
        (i < self.output_count()).then(|| self.view.tensor(self.view.output(i)))
    }
    pub fn op_count(&self) -> usize {
        self.view.op_count()
    }
    pub fn op(&self, i: usize) -> OpInfo<'a> {
        self.view.op(i)
    }
    pub fn tensor(&self, i: usize) -> TensorInfo<'a> {
        self.view.tensor(i)
    }
    /// Multiply-accumulates of op `i` (0 for ops without a reduction).
    pub fn op_macs(&self, i: usize) -> u64 {
        let o = self.op(i);
        match o.kind {
            op::CONV2D | op::DEPTHWISE_CONV2D => {
                let y = self.tensor(o.output(0));
                let w = self.tensor(o.input(1));
                let per_out: usize =
                    if o.kind == op::CONV2D { w.shape()[1..].iter().product() } else { w.dims[1] * w.dims[2] };
                (y.elements() * per_out) as u64
            }
            op::FULLY_CONNECTED => {
                let y = self.tensor(o.output(0));
                (y.elements() * self.tensor(o.input(1)).dims[1]) as u64
            }
            op::LSTM | op::GRU => {
                let (x, y) = (self.tensor(o.input(0)), self.tensor(o.output(0)));
                let gates = if o.kind == op::LSTM { 4 } else { 3 };
                let hidden = y.dims[3];
                (y.elements() * gates * (x.dims[2] + hidden)) as u64
            }
            op::MATMUL => {
                let (a, y) = (self.tensor(o.input(0)), self.tensor(o.output(0)));
                let k = if o.params[op::MATMUL_TRANSPOSE] & 1 == 1 { a.dims[a.rank - 2] } else { a.dims[a.rank - 1] };
                (y.elements() * k) as u64
            }
            _ => 0,
        }
    }
}
