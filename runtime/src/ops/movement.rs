//! Data movement family: `Reshape` (any layouts, logical order kept) and `Concat` along one axis.
//! int8 tensors move without requantization: inputs and output share scale and zero point.

use super::{expect_inputs, invalid, same_quant, unary_walk, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise as ew;
use crate::kernels::strided::{self, aligned, logical_strides, padded_dims, R};
use sparq_format::layout::op;
use sparq_format::{DType, FileView, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub struct Reshape<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
}

impl<'a> Reshape<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.elements() != y.elements() {
            return Err(invalid(o, "input and output element counts differ"));
        }
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(invalid(o, "wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.shape() != y.shape() && !strided::is_dense_row_major(&x) && !strided::is_dense_row_major(&y) {
            return Err(invalid(o, "a reshape needs a row-major input or output"));
        }
        let (dims, strides) = unary_walk(&x, &y);
        Ok(Reshape { x, y, dims, strides })
    }

    pub fn kernel_name(&self) -> &'static str {
        "copy_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        copy_strided(e, &self.dims, &self.strides, &self.x, &self.y)
    }
}

/// `Concat`: its inputs are read from the op's operand list when it runs (their count is not
/// bounded, so they are not copied into the plan).
#[derive(Clone, Copy)]
pub struct Concat<'a> {
    pub op: OpInfo<'a>,
    pub y: TensorInfo<'a>,
    pub axis: usize,
}

impl<'a> Concat<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let n_in = o.input_count;
        if n_in == 0 {
            return Err(bad("concat needs inputs"));
        }
        let y = d.view.tensor(o.output(0));
        let axis = o.params[op::AXIS];
        if axis < 0 || axis as usize >= y.rank {
            return Err(bad("concat axis out of range"));
        }
        let axis = axis as usize;
        let mut total = 0usize;
        for i in 0..n_in {
            let x = d.input(o, i);
            if x.rank != y.rank || x.dtype != y.dtype {
                return Err(bad("concat inputs must match the output's rank and dtype"));
            }
            if (0..y.rank).any(|a| a != axis && x.dims[a] != y.dims[a]) {
                return Err(bad("concat inputs differ outside the concat axis"));
            }
            same_quant(o, &x, &y)?;
            total += x.dims[axis];
        }
        if total != y.dims[axis] {
            return Err(bad("concat output size along the axis is not the sum of the inputs"));
        }
        Ok(Concat { op: *o, y, axis })
    }

    pub fn kernel_name(&self) -> &'static str {
        "concat_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (y, axis) = (&self.y, self.axis);
        let view: &FileView<'a> = &e.view;
        let out_strides = logical_strides(y);
        let lead = R - y.rank;
        let mut start = 0usize;
        for i in 0..self.op.input_count {
            let x = view.tensor(self.op.input(i));
            let dims = padded_dims(x.shape());
            let mut ys = [0usize; R];
            ys[lead..].copy_from_slice(&out_strides[..y.rank]);
            let base = start * out_strides[axis];
            let st = [aligned(&x, x.shape()), ys];
            if x.dtype == DType::I8 {
                ew::map_strided(&dims, &st, e.data::<i8>(&x), &mut e.out::<i8>(y)[base..], |v| v);
            } else {
                ew::map_strided(&dims, &st, e.data::<f32>(&x), &mut e.out::<f32>(y)[base..], |v| v);
            }
            start += x.dims[axis];
        }
    }
}

/// `Transpose`: output axis `i` is input axis `perm[i]` (params slots `0..rank`); any layouts.
#[derive(Clone, Copy)]
pub struct Transpose<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 2],
}

impl<'a> Transpose<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(bad("wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.rank != y.rank {
            return Err(bad("input and output ranks differ"));
        }
        let mut seen = [false; R];
        let mut xs = [0usize; R];
        let sx = logical_strides(&x);
        let lead = R - y.rank;
        for (i, &p) in o.params[..R].iter().enumerate() {
            if i >= y.rank {
                if p != 0 {
                    return Err(bad("permutation entry set past the rank"));
                }
                continue;
            }
            if p < 0 || p as usize >= x.rank || seen[p as usize] {
                return Err(bad("the permutation is not a permutation of the input's axes"));
            }
            let p = p as usize;
            seen[p] = true;
            if y.dims[i] != x.dims[p] {
                return Err(bad("output shape is not the permuted input shape"));
            }
            xs[lead + i] = sx[p];
        }
        Ok(Transpose { x, y, dims: padded_dims(y.shape()), strides: [xs, aligned(&y, y.shape())] })
    }

    pub fn kernel_name(&self) -> &'static str {
        "transpose_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        copy_strided(e, &self.dims, &self.strides, &self.x, &self.y)
    }
}

/// `Slice`: output axis `i` reads input index `start[i] + j * step[i]` (any non-zero step,
/// negative ones walking backwards); any layouts.
#[derive(Clone, Copy)]
pub struct Slice<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    /// Physical offset of the first element read, and the signed input step per output axis.
    pub base: usize,
    pub xs: [isize; R],
    pub ys: [usize; R],
}

impl<'a> Slice<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(bad("wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.rank != y.rank {
            return Err(bad("input and output ranks differ"));
        }
        let sx = logical_strides(&x);
        let lead = R - y.rank;
        let (mut base, mut xs) = (0usize, [0isize; R]);
        for a in 0..R {
            let (start, step) = (o.params[op::SLICE_START + a] as i64, o.params[op::SLICE_STEP + a] as i64);
            if a >= y.rank {
                if start != 0 || step != 0 {
                    return Err(bad("slice start or step set past the rank"));
                }
                continue;
            }
            let n = x.dims[a] as i64;
            // Zero-size tensors are refused before this: y.dims[a] >= 1.
            let last = start + (y.dims[a] as i64 - 1) * step;
            if step == 0 || !(0..n).contains(&start) || !(0..n).contains(&last) {
                return Err(bad("slice start, step and output size leave the input"));
            }
            base += start as usize * sx[a];
            xs[lead + a] = step as isize * sx[a] as isize;
        }
        Ok(Slice { x, y, dims: padded_dims(y.shape()), base, xs, ys: aligned(&y, y.shape()) })
    }

    pub fn kernel_name(&self) -> &'static str {
        "slice_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 {
            self.walk(e.data::<i8>(x), e.out::<i8>(y))
        } else {
            self.walk(e.data::<f32>(x), e.out::<f32>(y))
        }
    }

    /// Every output element in logical order; the input offset moves by the signed steps (every
    /// offset visited was checked in range by `decode`).
    fn walk<T: Copy>(&self, x: &[T], y: &mut [T]) {
        let d = &self.dims;
        let mut idx = [0usize; R];
        let (mut xo, mut yo) = (self.base as isize, 0usize);
        loop {
            y[yo] = x[xo as usize];
            // Advance the innermost axis, carrying outwards.
            let mut a = R - 1;
            loop {
                idx[a] += 1;
                xo += self.xs[a];
                yo += self.ys[a];
                if idx[a] < d[a] {
                    break;
                }
                xo -= self.xs[a] * d[a] as isize;
                yo -= self.ys[a] * d[a];
                idx[a] = 0;
                if a == 0 {
                    return;
                }
                a -= 1;
            }
        }
    }
}

/// `Pad`: every output index reads the input at `index - before` per axis; outside the input the
/// mode decides (a constant, reflection without repeating the edge, or the edge repeated).
#[derive(Clone, Copy)]
pub struct Pad<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub before: [usize; R],
    pub mode: i32,
    /// The constant, as f32 bits, or for int8 the code in the low byte.
    pub value: i32,
}

impl<'a> Pad<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(bad("wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.rank != y.rank {
            return Err(bad("input and output ranks differ"));
        }
        let p = &o.params;
        let mode = p[op::PAD_MODE];
        if !(0..=2).contains(&mode) {
            return Err(bad("unknown pad mode"));
        }
        let value = p[op::PAD_VALUE];
        if mode != 0 && value != 0 {
            return Err(bad("a pad value is only for the constant mode"));
        }
        if x.dtype == DType::I8 && !(-128..=127).contains(&value) {
            return Err(bad("int8 pad value outside [-128, 127]"));
        }
        if x.dtype == DType::F32 && !f32::from_bits(value as u32).is_finite() {
            return Err(bad("pad value is not finite"));
        }
        let mut before = [0usize; R];
        for a in 0..R {
            let (b, e) = (p[op::PAD_BEFORE + a], p[op::PAD_AFTER + a]);
            if a >= x.rank {
                if b != 0 || e != 0 {
                    return Err(bad("pads set past the rank"));
                }
                continue;
            }
            if b < 0 || e < 0 {
                return Err(bad("negative pads"));
            }
            let (b, e) = (b as usize, e as usize);
            if x.dims[a].checked_add(b).and_then(|v| v.checked_add(e)) != Some(y.dims[a]) {
                return Err(bad("output shape is not the input shape plus the pads"));
            }
            // Reflection needs at least one element beside the edge for every padded one.
            if mode == 1 && (b >= x.dims[a] || e >= x.dims[a]) {
                return Err(bad("reflect pads must be smaller than the axis"));
            }
            before[R - x.rank + a] = b;
        }
        Ok(Pad { x, y, before, mode, value })
    }

    pub fn kernel_name(&self) -> &'static str {
        "pad_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 {
            self.walk(e.data::<i8>(x), e.out::<i8>(y), self.value as i8)
        } else {
            self.walk(e.data::<f32>(x), e.out::<f32>(y), f32::from_bits(self.value as u32))
        }
    }

    fn walk<T: Copy>(&self, xd: &[T], yd: &mut [T], constant: T) {
        let (xs, ys) = (aligned(&self.x, self.x.shape()), aligned(&self.y, self.y.shape()));
        let (xdims, ydims) = (padded_dims(self.x.shape()), padded_dims(self.y.shape()));
        let mut idx = [0usize; R];
        loop {
            let mut off = 0usize;
            let mut inside = true;
            for a in 0..R {
                let n = xdims[a] as isize;
                let mut i = idx[a] as isize - self.before[a] as isize;
                if i < 0 || i >= n {
                    match self.mode {
                        1 => i = if i < 0 { -i } else { 2 * (n - 1) - i },
                        2 => i = i.clamp(0, n - 1),
                        _ => inside = false,
                    }
                }
                off += i.max(0) as usize * xs[a];
            }
            let yo: usize = (0..R).map(|a| idx[a] * ys[a]).sum();
            yd[yo] = if inside { xd[off] } else { constant };
            let mut a = R - 1;
            loop {
                idx[a] += 1;
                if idx[a] < ydims[a] {
                    break;
                }
                idx[a] = 0;
                if a == 0 {
                    return;
                }
                a -= 1;
            }
        }
    }
}

/// Copy `x` to `y` element by element along a strided walk (Reshape, Transpose), int8 or f32.
fn copy_strided(e: &Exec<'_, '_>, dims: &[usize; R], st: &[[usize; R]; 2], x: &TensorInfo<'_>, y: &TensorInfo<'_>) {
    if x.dtype == DType::I8 {
        ew::map_strided(dims, st, e.data::<i8>(x), e.out::<i8>(y), |v| v)
    } else if x.dtype == DType::I16 {
        ew::map_strided(dims, st, e.data::<i16>(x), e.out::<i16>(y), |v| v)
    } else {
        ew::map_strided(dims, st, e.data::<f32>(x), e.out::<f32>(y), |v| v)
    }
}

/// `Gather` along one axis with constant i32 indices (checked in range at load); x and y
/// row-major; int8 keeps the input's quantization.
#[derive(Clone, Copy)]
pub struct Gather<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub indices: &'a [i32],
    /// Elements before, along and after the axis of x.
    pub outer: usize,
    pub axis_len: usize,
    pub inner: usize,
}

impl<'a> Gather<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        use sparq_format::{Layout, Storage};
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 2)?;
        let (x, it, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        if y.dtype != x.dtype || y.dtype == DType::I32 {
            return Err(bad("wrong input or output dtype"));
        }
        same_quant(o, &x, &y)?;
        if x.layout != Layout::RowMajor || y.layout != Layout::RowMajor {
            return Err(bad("input and output must be row-major"));
        }
        if it.storage != Storage::Constant || it.dtype != DType::I32 || it.layout != Layout::RowMajor {
            return Err(bad("indices must be an i32 row-major constant"));
        }
        let axis = o.params[op::AXIS];
        if axis < 0 || axis as usize >= x.rank {
            return Err(bad("gather axis out of range"));
        }
        let axis = axis as usize;
        let (xs, is, ys) = (x.shape(), it.shape(), y.shape());
        let want_rank = x.rank - 1 + it.rank;
        if y.rank != want_rank
            || ys[..axis] != xs[..axis]
            || ys[axis..axis + it.rank] != *is
            || ys[axis + it.rank..] != xs[axis + 1..]
        {
            return Err(bad("output shape is not the input's with the axis replaced by the indices' shape"));
        }
        let indices: &'a [i32] = d.constant(&it);
        let axis_len = xs[axis];
        if indices.iter().any(|&i| i < 0 || i as usize >= axis_len) {
            return Err(bad("an index is outside the gathered axis"));
        }
        Ok(Gather {
            x,
            y,
            indices,
            outer: xs[..axis].iter().product(),
            axis_len,
            inner: xs[axis + 1..].iter().product(),
        })
    }

    pub fn kernel_name(&self) -> &'static str {
        "gather_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        if self.x.dtype == DType::I8 {
            self.copy(e.data::<i8>(&self.x), e.out::<i8>(&self.y));
        } else {
            self.copy(e.data::<f32>(&self.x), e.out::<f32>(&self.y));
        }
    }

    fn copy<T: Copy>(&self, x: &[T], y: &mut [T]) {
        let (q, inner) = (self.indices.len(), self.inner);
        for o in 0..self.outer {
            for (j, &i) in self.indices.iter().enumerate() {
                let src = (o * self.axis_len + i as usize) * inner;
                let dst = (o * q + j) * inner;
                y[dst..dst + inner].copy_from_slice(&x[src..src + inner]);
            }
        }
    }
}
