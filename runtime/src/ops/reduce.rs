//! Reductions (`ReduceSum/Mean/Max/...`, `ArgMax/ArgMin`, `GlobalMaxPool`) and normalization over
//! trailing axes (`LayerNormalization`, `InstanceNormalization`), f32.

use super::{check_constant, expect_inputs, invalid, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::strided::{logical_strides, R};
use sparq_format::layout::op::{self, reduce as f};
use sparq_format::{DType, Layout, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub struct Reduce<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub function: i32,
    pub select_last: bool,
    /// Kept axes (output walk) and reduced axes (inner walk): dims and x strides, padded to `R`
    /// with size-1 axes at the front; y is walked in row-major order over the kept axes.
    pub keep: [usize; R],
    pub keep_x: [usize; R],
    pub keep_y: [usize; R],
    pub red: [usize; R],
    pub red_x: [usize; R],
}

/// Calls `f(offset)` for every index of `dims` in row-major order, offsets by `strides`.
#[inline]
fn for_each(dims: &[usize; R], strides: &[usize; R], base: usize, mut f: impl FnMut(usize)) {
    let total: usize = dims.iter().product();
    let mut idx = [0usize; R];
    let mut off = base;
    for _ in 0..total {
        f(off);
        for a in (0..R).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < dims[a] {
                break;
            }
            off -= strides[a] * dims[a];
            idx[a] = 0;
        }
    }
}

impl<'a> Reduce<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.dtype != DType::F32 || y.dtype != DType::F32 {
            return Err(bad("input and output must be f32"));
        }
        let p = &o.params;
        let function = p[op::FUNCTION];
        if f::name(function).is_none() {
            return Err(bad("unknown reduce function"));
        }
        let select_last = match (p[op::REDUCE_SELECT_LAST], function) {
            (0, _) => false,
            (1, f::ARGMAX | f::ARGMIN) => true,
            _ => return Err(bad("select_last must be 0, or 1 for argmax/argmin")),
        };
        let mask = p[op::REDUCE_AXES];
        if mask <= 0 || mask >> x.rank != 0 {
            return Err(bad("reduced axes must be a non-empty mask of axes below the rank"));
        }
        if y.rank != x.rank {
            return Err(bad("output rank differs from the input's"));
        }
        let (sx, sy) = (logical_strides(&x), logical_strides(&y));
        let (mut keep, mut keep_x, mut keep_y) = ([1usize; R], [0usize; R], [0usize; R]);
        let (mut red, mut red_x) = ([1usize; R], [0usize; R]);
        let lead = R - x.rank;
        for a in 0..x.rank {
            if mask >> a & 1 == 1 {
                if y.dims[a] != 1 {
                    return Err(bad("a reduced axis must have size 1 in the output"));
                }
                red[lead + a] = x.dims[a];
                red_x[lead + a] = sx[a];
            } else {
                if y.dims[a] != x.dims[a] {
                    return Err(bad("a kept axis must have the input's size"));
                }
                keep[lead + a] = x.dims[a];
                keep_x[lead + a] = sx[a];
                keep_y[lead + a] = sy[a];
            }
        }
        Ok(Reduce { x, y, function, select_last, keep, keep_x, keep_y, red, red_x })
    }

    pub fn kernel_name(&self) -> &'static str {
        "f32_reduce_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (e.data::<f32>(&self.x), e.out::<f32>(&self.y));
        let count: usize = self.red.iter().product();
        let (keep, red) = (&self.keep, &self.red);
        let mut idx = [0usize; R];
        for _ in 0..keep.iter().product::<usize>() {
            let xb: usize = (0..R).map(|a| idx[a] * self.keep_x[a]).sum();
            let yo: usize = (0..R).map(|a| idx[a] * self.keep_y[a]).sum();
            y[yo] = reduce_one(self.function, self.select_last, count, |g| for_each(red, &self.red_x, xb, g), x);
            for a in (0..R).rev() {
                idx[a] += 1;
                if idx[a] < keep[a] {
                    break;
                }
                idx[a] = 0;
            }
        }
    }
}

/// One reduction over the offsets `walk` visits (row-major order of the reduced set).
fn reduce_one(function: i32, select_last: bool, count: usize, walk: impl Fn(&mut dyn FnMut(usize)), x: &[f32]) -> f32 {
    let fold = |init: f32, g: &dyn Fn(f32, f32) -> f32| {
        let mut acc = init;
        walk(&mut |o| acc = g(acc, x[o]));
        acc
    };
    match function {
        f::SUM => fold(0.0, &|a, v| a + v),
        f::MEAN => fold(0.0, &|a, v| a + v) / count as f32,
        f::MAX => fold(f32::NEG_INFINITY, &|a, v| if v > a || v.is_nan() { v } else { a }),
        f::MIN => fold(f32::INFINITY, &|a, v| if v < a || v.is_nan() { v } else { a }),
        f::PROD => fold(1.0, &|a, v| a * v),
        f::L1 => fold(0.0, &|a, v| a + v.abs()),
        f::L2 => libm::sqrtf(fold(0.0, &|a, v| a + v * v)),
        f::SUM_SQUARE => fold(0.0, &|a, v| a + v * v),
        f::LOG_SUM => libm::logf(fold(0.0, &|a, v| a + v)),
        f::LOG_SUM_EXP => {
            let m = fold(f32::NEG_INFINITY, &|a, v| if v > a { v } else { a });
            if !m.is_finite() {
                return m;
            }
            m + libm::logf(fold(0.0, &|a, v| a + libm::expf(v - m)))
        }
        _ => {
            // ARGMAX / ARGMIN: the position in the reduced set's row-major order.
            let max = function == f::ARGMAX;
            let (mut best, mut at, mut i) = (0f32, 0usize, 0usize);
            walk(&mut |o| {
                let v = x[o];
                let better = i == 0
                    || if max {
                        v > best || (select_last && v == best)
                    } else {
                        v < best || (select_last && v == best)
                    };
                if better {
                    best = v;
                    at = i;
                }
                i += 1;
            });
            at as f32
        }
    }
}

#[derive(Clone, Copy)]
pub struct Normalize<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub affine: Option<(TensorInfo<'a>, TensorInfo<'a>)>,
    pub inner: usize,
    pub eps: f32,
}

impl<'a> Normalize<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.dtype != DType::F32
            || y.dtype != DType::F32
            || x.layout != Layout::RowMajor
            || y.layout != Layout::RowMajor
        {
            return Err(bad("input and output must be f32 row-major"));
        }
        if x.shape() != y.shape() {
            return Err(bad("input and output shapes differ"));
        }
        let axis = o.params[op::AXIS];
        if axis < 0 || axis as usize >= x.rank {
            return Err(bad("normalization axis out of range"));
        }
        let eps = o.param_f32(op::NORM_EPSILON);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(bad("epsilon must be finite and non-negative"));
        }
        let inner: usize = x.shape()[axis as usize..].iter().product();
        let affine = match o.input_count {
            1 => None,
            3 => {
                let (s, b) = (d.input(o, 1), d.input(o, 2));
                check_constant(o, &s, DType::F32, inner, "scale must be an f32 constant of the normalized size")?;
                check_constant(o, &b, DType::F32, inner, "bias must be an f32 constant of the normalized size")?;
                Some((s, b))
            }
            _ => {
                expect_inputs(o, 1)?;
                None
            }
        };
        Ok(Normalize { x, y, affine, inner, eps })
    }

    pub fn kernel_name(&self) -> &'static str {
        "f32_normalize_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (e.data::<f32>(&self.x), e.out::<f32>(&self.y));
        let affine = self.affine.map(|(s, b)| (e.data::<f32>(&s), e.data::<f32>(&b)));
        let n = self.inner;
        for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            let mean = xr.iter().sum::<f32>() / n as f32;
            let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = 1.0 / libm::sqrtf(var + self.eps);
            match affine {
                Some((s, b)) => {
                    for (j, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                        *o = (v - mean) * inv * s[j] + b[j];
                    }
                }
                None => {
                    for (o, &v) in yr.iter_mut().zip(xr) {
                        *o = (v - mean) * inv;
                    }
                }
            }
        }
    }
}
