//! Binary element-wise family: `Add` and `Mul` with numpy broadcasting, int8 (requantized) or f32
//! (with the fused clamp); int8 `Sub` (BINARY, format 1.5) runs as int8 `Add` with `-mult_b`.
//! Operands of one shape and layout run the family's contiguous kernels; broadcasts and mixed
//! layouts walk strides.

use super::{broadcasts_to, check_clamp_f32, check_clamp_i8, check_mult_shift, expect_inputs, invalid, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::elementwise::{self as ew, AddParams, MulParams};
use crate::kernels::registry::{resolve, AddFn, MulFn, Qs16AddFn, Query, QS16_ADD, QS8_ADD, QS8_MUL};
use crate::kernels::strided::{aligned, padded_dims, R};
use sparq_format::layout::op;
use sparq_format::{DType, Layout, OpInfo, TensorInfo};

#[derive(Clone, Copy)]
pub enum BinaryKernel {
    Qs8Add {
        name: &'static str,
        f: AddFn,
        params: AddParams,
    },
    Qs8AddStrided {
        params: AddParams,
    },
    /// Int16 add (format 1.6), any broadcast and layouts.
    Qs16AddStrided {
        params: AddParams,
    },
    /// Int16 add of operands of one shape and layout.
    Qs16Add {
        name: &'static str,
        f: Qs16AddFn,
        params: AddParams,
    },
    Qs8Mul {
        name: &'static str,
        f: MulFn,
        params: MulParams,
    },
    /// One operand is a per-channel vector `[1, C, 1, 1]` of an NHWC output (squeeze-excitation's
    /// scale, a per-channel bias): the contiguous kernel on every pixel's `C` channels. `params`
    /// are ordered (big operand, small operand).
    Qs8AddRows {
        name: &'static str,
        f: AddFn,
        params: AddParams,
        small_first: bool,
    },
    Qs8MulRows {
        name: &'static str,
        f: MulFn,
        params: MulParams,
        small_first: bool,
    },
    Qs8MulStrided {
        params: MulParams,
    },
    F32Add {
        lo: f32,
        hi: f32,
    },
    F32Mul {
        lo: f32,
        hi: f32,
    },
}

/// Whether op `o` is a BINARY Sub with an int8 output: decoded as [`Binary`] (int8 Add's
/// kernels with the second multiplier negated), not [`BinaryFn`].
pub(crate) fn is_qs8_sub(d: &Decoder<'_, '_>, o: &OpInfo<'_>) -> bool {
    o.kind == op::BINARY
        && o.params[op::FUNCTION] == op::binary::SUB
        && o.output_count >= 1
        && d.view.tensor(o.output(0)).dtype == DType::I8
}

#[derive(Clone, Copy)]
pub struct Binary<'a> {
    pub a: TensorInfo<'a>,
    pub b: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    /// The output's dims and the three operands' strides as a 6-d walk (broadcast axes stride 0).
    pub dims: [usize; R],
    pub strides: [[usize; R]; 3],
    pub kernel: BinaryKernel,
}

impl<'a> Binary<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 2)?;
        let (a, b, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        let p = &o.params;
        if a.dtype != y.dtype || b.dtype != y.dtype || y.dtype == DType::I32 {
            return Err(bad("operands must all be f32, all i8 or all i16"));
        }
        if y.dtype == DType::I16 && o.kind != op::ADD {
            return Err(bad("int16 operands are added only (no int16 Mul or Sub)"));
        }
        if !broadcasts_to(&a, &y) || !broadcasts_to(&b, &y) {
            return Err(bad("operand shapes do not broadcast to the output shape"));
        }
        let contiguous =
            a.shape() == y.shape() && b.shape() == y.shape() && a.layout == y.layout && b.layout == y.layout;
        // `big` has the output's shape and layout, `small` one value per channel of an NHWC output.
        let rows = |big: &TensorInfo<'_>, small: &TensorInfo<'_>| {
            y.layout == Layout::Nhwc
                && big.shape() == y.shape()
                && big.layout == Layout::Nhwc
                && small.elements() == y.dims[1]
                && small.shape().iter().rev().take(2).all(|&d| d == 1)
                && small.rank >= 3
                && small.shape()[..small.rank - 3].iter().all(|&d| d == 1)
        };
        let channel_rows = if rows(&a, &b) {
            Some(false)
        } else if rows(&b, &a) {
            Some(true)
        } else {
            None
        };
        // BINARY reaches here only as int8 Sub (`is_qs8_sub`).
        let sub = o.kind == op::BINARY;
        if sub && y.dtype != DType::I8 {
            return Err(bad("only int8 sub runs on the add kernels"));
        }
        let kernel = if y.dtype == DType::I16 {
            super::check_clamp_i16(o)?;
            check_mult_shift(o, op::MULT_A)?;
            check_mult_shift(o, op::MULT_B)?;
            if p[op::SHIFT] < 2 {
                return Err(bad("add shift must be at least 2"));
            }
            let params = AddParams {
                zp_a: a.zero_point,
                zp_b: b.zero_point,
                zp_out: y.zero_point,
                mult_a: p[op::MULT_A],
                mult_b: p[op::MULT_B],
                shift: p[op::SHIFT],
                act_min: p[op::ACT_MIN],
                act_max: p[op::ACT_MAX],
            };
            if contiguous {
                let e = resolve(QS16_ADD, d.features, &Query::default());
                BinaryKernel::Qs16Add { name: e.name, f: e.f, params }
            } else {
                BinaryKernel::Qs16AddStrided { params }
            }
        } else if y.dtype == DType::I8 {
            check_clamp_i8(o)?;
            check_mult_shift(o, op::MULT_A)?;
            if o.kind == op::ADD || sub {
                check_mult_shift(o, op::MULT_B)?;
                if p[op::SHIFT] < 2 {
                    return Err(bad("add shift must be at least 2"));
                }
                // `a - b`: the add with `-mult_b` (in (-2^31, 0], so the negation cannot overflow;
                // every add kernel multiplies signed 32 x 32 -> 64 bits).
                let params = AddParams {
                    zp_a: a.zero_point,
                    zp_b: b.zero_point,
                    zp_out: y.zero_point,
                    mult_a: p[op::MULT_A],
                    mult_b: if sub { -p[op::MULT_B] } else { p[op::MULT_B] },
                    shift: p[op::SHIFT],
                    act_min: p[op::ACT_MIN],
                    act_max: p[op::ACT_MAX],
                };
                if contiguous {
                    let e = resolve(QS8_ADD, d.features, &Query::default());
                    BinaryKernel::Qs8Add { name: e.name, f: e.f, params }
                } else if let Some(small_first) = channel_rows {
                    let e = resolve(QS8_ADD, d.features, &Query::default());
                    let params = if small_first {
                        AddParams {
                            zp_a: params.zp_b,
                            zp_b: params.zp_a,
                            mult_a: params.mult_b,
                            mult_b: params.mult_a,
                            ..params
                        }
                    } else {
                        params
                    };
                    BinaryKernel::Qs8AddRows { name: e.name, f: e.f, params, small_first }
                } else {
                    BinaryKernel::Qs8AddStrided { params }
                }
            } else {
                let params = MulParams {
                    zp_a: a.zero_point,
                    zp_b: b.zero_point,
                    zp_out: y.zero_point,
                    mult: p[op::MULT_A],
                    shift: p[op::SHIFT],
                    act_min: p[op::ACT_MIN],
                    act_max: p[op::ACT_MAX],
                };
                if contiguous {
                    let e = resolve(QS8_MUL, d.features, &Query::default());
                    BinaryKernel::Qs8Mul { name: e.name, f: e.f, params }
                } else if let Some(small_first) = channel_rows {
                    let e = resolve(QS8_MUL, d.features, &Query::default());
                    let params =
                        if small_first { MulParams { zp_a: params.zp_b, zp_b: params.zp_a, ..params } } else { params };
                    BinaryKernel::Qs8MulRows { name: e.name, f: e.f, params, small_first }
                } else {
                    BinaryKernel::Qs8MulStrided { params }
                }
            }
        } else {
            check_clamp_f32(o)?;
            let (lo, hi) = (o.param_f32(op::ACT_MIN), o.param_f32(op::ACT_MAX));
            if o.kind == op::ADD {
                BinaryKernel::F32Add { lo, hi }
            } else {
                BinaryKernel::F32Mul { lo, hi }
            }
        };
        let dims = padded_dims(y.shape());
        let strides = [aligned(&a, y.shape()), aligned(&b, y.shape()), aligned(&y, y.shape())];
        Ok(Binary { a, b, y, dims, strides, kernel })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            BinaryKernel::Qs8Add { name, .. } | BinaryKernel::Qs8Mul { name, .. } => name,
            BinaryKernel::Qs8AddRows { name, .. } | BinaryKernel::Qs8MulRows { name, .. } => name,
            BinaryKernel::Qs8AddStrided { .. } => "qs8_add_strided_scalar",
            BinaryKernel::Qs16AddStrided { .. } => "qs16_add_strided_scalar",
            BinaryKernel::Qs16Add { name, .. } => name,
            BinaryKernel::Qs8MulStrided { .. } => "qs8_mul_strided_scalar",
            BinaryKernel::F32Add { .. } => "f32_add_strided_scalar",
            BinaryKernel::F32Mul { .. } => "f32_mul_strided_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st) = (&self.dims, &self.strides);
        let (a, b, y) = (&self.a, &self.b, &self.y);
        match self.kernel {
            // SAFETY: resolved for features this CPU has; operands of one shape, validated at load.
            BinaryKernel::Qs8Add { f, ref params, .. } => {
                e.split_map(e.data::<i8>(a), e.data::<i8>(b), e.out::<i8>(y), &|a, b, y| unsafe { f(a, b, y, params) })
            }
            BinaryKernel::Qs8AddStrided { ref params } => {
                ew::qs8_add_scalar(dims, st, e.data(a), e.data(b), e.out(y), params)
            }
            // SAFETY: resolved for features this CPU has; operands of one shape, validated at load.
            BinaryKernel::Qs16Add { f, ref params, .. } => {
                e.split_map(e.data::<i16>(a), e.data::<i16>(b), e.out::<i16>(y), &|a, b, y| unsafe {
                    f(a, b, y, params)
                })
            }
            BinaryKernel::Qs16AddStrided { ref params } => {
                ew::qs16_add_scalar(dims, st, e.data(a), e.data(b), e.out(y), params)
            }
            // SAFETY: as above.
            BinaryKernel::Qs8Mul { f, ref params, .. } => {
                e.split_map(e.data::<i8>(a), e.data::<i8>(b), e.out::<i8>(y), &|a, b, y| unsafe { f(a, b, y, params) })
            }
            BinaryKernel::Qs8MulStrided { ref params } => {
                ew::qs8_mul_scalar(dims, st, e.data(a), e.data(b), e.out(y), params)
            }
            BinaryKernel::Qs8AddRows { f, ref params, small_first, .. } => {
                let (big, small) = if small_first { (b, a) } else { (a, b) };
                // SAFETY: as above; every row is `C` elements of each operand.
                per_pixel(e.data(big), e.data(small), e.out(y), |x, s, out| unsafe { f(x, s, out, params) })
            }
            BinaryKernel::Qs8MulRows { f, ref params, small_first, .. } => {
                let (big, small) = if small_first { (b, a) } else { (a, b) };
                // SAFETY: as above.
                per_pixel(e.data(big), e.data(small), e.out(y), |x, s, out| unsafe { f(x, s, out, params) })
            }
            BinaryKernel::F32Add { lo, hi } => ew::f32_add_scalar(dims, st, e.data(a), e.data(b), e.out(y), lo, hi),
            BinaryKernel::F32Mul { lo, hi } => ew::f32_mul_scalar(dims, st, e.data(a), e.data(b), e.out(y), lo, hi),
        }
    }
}

/// `f(row, channels, out_row)` for every pixel: rows of `channels.len()` values of an NHWC tensor.
fn per_pixel(x: &[i8], channels: &[i8], y: &mut [i8], f: impl Fn(&[i8], &[i8], &mut [i8])) {
    let c = channels.len();
    for (row, out) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        f(row, channels, out);
    }
}

/// `BINARY`: Sub, Div, Min, Max, Pow with numpy broadcasting over any layouts; f32, or i8 Min and
/// Max on codes of one shared quantization (the order of codes is the order of values).
#[derive(Clone, Copy)]
pub struct BinaryFn<'a> {
    pub a: TensorInfo<'a>,
    pub b: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub function: i32,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 3],
}

impl<'a> BinaryFn<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        use sparq_format::layout::op::binary as f;
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 2)?;
        let (a, b, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        let function = o.params[op::FUNCTION];
        if f::name(function).is_none() {
            return Err(bad("unknown binary function"));
        }
        if a.dtype != y.dtype || b.dtype != y.dtype {
            return Err(bad("operands must share one dtype"));
        }
        if (op::ACT_MIN..=op::SHIFT).any(|s| o.params[s] != 0) {
            return Err(bad("requantization and clamp slots are used only by int8 sub"));
        }
        match y.dtype {
            DType::F32 => {}
            DType::I8 if matches!(function, f::MIN | f::MAX) => {
                super::same_quant(o, &a, &y)?;
                super::same_quant(o, &b, &y)?;
            }
            _ => return Err(bad("operands must be f32 (or i8 for sub, min and max)")),
        }
        if !broadcasts_to(&a, &y) || !broadcasts_to(&b, &y) {
            return Err(bad("operand shapes do not broadcast to the output shape"));
        }
        let dims = padded_dims(y.shape());
        let strides = [aligned(&a, y.shape()), aligned(&b, y.shape()), aligned(&y, y.shape())];
        Ok(BinaryFn { a, b, y, function, dims, strides })
    }

    pub fn kernel_name(&self) -> &'static str {
        if self.y.dtype == DType::I8 {
            "qs8_minmax_strided_scalar"
        } else {
            "f32_binary_strided_scalar"
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (dims, st) = (&self.dims, &self.strides);
        let (a, b, y) = (&self.a, &self.b, &self.y);
        if y.dtype == DType::I8 {
            ew::qs8_minmax_scalar(dims, st, e.data(a), e.data(b), e.out(y), self.function);
        } else {
            ew::f32_binary_scalar(dims, st, e.data(a), e.data(b), e.out(y), self.function);
        }
    }
}

/// `WHERE`: `y = cond != 0 ? a : b` over f32 operands broadcasting to y (any layouts).
#[derive(Clone, Copy)]
pub struct Select<'a> {
    pub c: TensorInfo<'a>,
    pub a: TensorInfo<'a>,
    pub b: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub dims: [usize; R],
    pub strides: [[usize; R]; 4],
}

impl<'a> Select<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        expect_inputs(o, 3)?;
        let (c, a, b, y) = (d.input(o, 0), d.input(o, 1), d.input(o, 2), d.view.tensor(o.output(0)));
        if [&c, &a, &b, &y].iter().any(|t| t.dtype != DType::F32) {
            return Err(invalid(o, "operands must be f32"));
        }
        if !broadcasts_to(&c, &y) || !broadcasts_to(&a, &y) || !broadcasts_to(&b, &y) {
            return Err(invalid(o, "operand shapes do not broadcast to the output shape"));
        }
        let dims = padded_dims(y.shape());
        let strides = [aligned(&c, y.shape()), aligned(&a, y.shape()), aligned(&b, y.shape()), aligned(&y, y.shape())];
        Ok(Select { c, a, b, y, dims, strides })
    }

    pub fn kernel_name(&self) -> &'static str {
        "f32_where_strided_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (c, a, b) = (e.data::<f32>(&self.c), e.data::<f32>(&self.a), e.data::<f32>(&self.b));
        let y = e.out::<f32>(&self.y);
        crate::kernels::strided::walk(&self.dims, &self.strides, |o| {
            y[o[3]] = if c[o[0]] != 0.0 { a[o[1]] } else { b[o[2]] };
        });
    }
}
