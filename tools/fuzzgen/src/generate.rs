//! Random `.sparq` graphs written by the format's own writer: a chain of ops drawn from every op
//! kind (the int16 forms of format 1.6 and the per-channel lookups of 1.7 too), with the operands,
//! shapes and parameters the runtime's `decode` rules accept most of the time, and now and then a
//! value they must reject (zero or huge dims, mismatched shapes, overlapping arena ranges, broken
//! sparse indices, out-of-range parameters).

use arbitrary::{Result, Unstructured};
use sparq_format::layout::op::{self, window};
use sparq_format::layout::{Pack, MAX_RANK, OP_PARAMS};
use sparq_format::sparse;
use sparq_format::writer::{ModelSpec, OpSpec, TensorSpec};
use sparq_format::{DType, Layout};

/// Largest element count the generator aims for in one tensor (files stay small and fast).
const MAX_ELEMENTS: usize = 4096;

/// The value flowing along the chain: an arena tensor.
#[derive(Clone, Debug)]
struct Value {
    t: u32,
    dtype: DType,
    dims: Vec<usize>,
    layout: Layout,
    scale: f32,
    zero_point: i32,
}

impl Value {
    fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A small deterministic generator for bulk data (weights), seeded from the fuzz input, so that
/// the `Unstructured` bytes steer the structure rather than being spent on weight values.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    fn f32(&mut self) -> f32 {
        ((self.next() % 2001) as f32 - 1000.0) / 1000.0
    }
}

struct Gen<'u, 'd> {
    u: &'u mut Unstructured<'d>,
    rng: SplitMix,
    spec: ModelSpec,
    arena_end: usize,
    /// Values produced so far (residual and concat partners).
    history: Vec<Value>,
}

fn bytes_of_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn bytes_of_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_bits(v: f32) -> i32 {
    v.to_bits() as i32
}

fn ceil_log2(v: usize) -> i32 {
    (usize::BITS - v.max(1).saturating_sub(1).leading_zeros()) as i32
}

impl<'u, 'd> Gen<'u, 'd> {
    fn chance(&mut self, num: u32, den: u32) -> Result<bool> {
        self.u.ratio(num, den)
    }
    fn range(&mut self, lo: usize, hi: usize) -> Result<usize> {
        self.u.int_in_range(lo..=hi)
    }
    fn name(&self, what: &str) -> String {
        format!("{what}{}", self.spec.tensors.len())
    }

    fn quant(&mut self) -> Result<(f32, i32)> {
        let exp = self.u.int_in_range(0..=10)?;
        let frac = self.u.int_in_range(0..=15)? as f32 / 16.0;
        let scale = (1.0 + frac) * 0.5f32.powi(exp);
        let zero_point = if self.chance(1, 3)? { 0 } else { self.u.int_in_range(-128..=127)? };
        Ok((scale, zero_point))
    }

    /// A new arena tensor after the ones planned so far (64-byte aligned).
    fn arena(&mut self, dtype: DType, dims: Vec<usize>, layout: Layout, quant: Option<(f32, i32)>) -> Result<Value> {
        let (scale, zero_point) = match (dtype, quant) {
            (DType::I8, Some(q)) => q,
            (DType::I8, None) => self.quant()?,
            // Int16 (1.6): symmetric.
            (DType::I16, Some((s, _))) => (s, 0),
            (DType::I16, None) => (self.quant()?.0, 0),
            _ => (0.0, 0),
        };
        let offset = self.arena_end.div_ceil(64) * 64;
        let bytes = dims.iter().product::<usize>() * dtype.size();
        self.arena_end = offset + bytes;
        let t = self.spec.tensors.len() as u32;
        self.spec.tensors.push(TensorSpec {
            name: self.name("t"),
            dtype,
            dims: dims.clone(),
            layout,
            arena_offset: offset,
            scale,
            zero_point,
            data: None,
            pack: None,
        });
        Ok(Value { t, dtype, dims, layout, scale, zero_point })
    }

    fn constant(&mut self, dtype: DType, dims: Vec<usize>, layout: Layout, data: Vec<u8>, pack: Option<Pack>) -> u32 {
        let t = self.spec.tensors.len() as u32;
        self.spec.tensors.push(TensorSpec {
            name: self.name("c"),
            dtype,
            dims,
            layout,
            arena_offset: 0,
            scale: 0.0,
            zero_point: 0,
            data: Some(data),
            pack,
        });
        t
    }

    fn op(&mut self, kind: u16, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        self.op_outputs(kind, inputs, vec![output], params);
    }

    /// An op with several outputs (LSTM, GRU).
    fn op_outputs(&mut self, kind: u16, inputs: Vec<u32>, outputs: Vec<u32>, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", op::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs, params });
    }

    fn push(&mut self, v: Value) -> Value {
        self.history.push(v.clone());
        v
    }

    /// A dimension: mostly small and positive, rarely zero.
    fn dim(&mut self, hi: usize) -> Result<usize> {
        if self.chance(1, 40)? {
            return Ok(0);
        }
        self.range(1, hi)
    }

    fn f32_clamp(&mut self, p: &mut [i32; OP_PARAMS]) -> Result<()> {
        let (lo, hi) = match self.range(0, 3)? {
            0 => (0.0, 6.0),
            1 => (-1.0, 1.0),
            2 => (f32::MIN, f32::MAX),
            _ => (f32::NEG_INFINITY, f32::INFINITY),
        };
        p[op::ACT_MIN] = f32_bits(lo);
        p[op::ACT_MAX] = f32_bits(hi);
        Ok(())
    }

    fn i16_clamp(&mut self, p: &mut [i32; OP_PARAMS]) -> Result<()> {
        if self.chance(1, 2)? {
            p[op::ACT_MIN] = i16::MIN as i32;
            p[op::ACT_MAX] = i16::MAX as i32;
        } else {
            let lo = self.u.int_in_range(-32768..=32767)?;
            p[op::ACT_MIN] = lo;
            p[op::ACT_MAX] = self.u.int_in_range(lo..=32767)?;
        }
        Ok(())
    }

    fn i8_clamp(&mut self, p: &mut [i32; OP_PARAMS]) -> Result<()> {
        if self.chance(1, 2)? {
            p[op::ACT_MIN] = -128;
            p[op::ACT_MAX] = 127;
        } else {
            let lo = self.u.int_in_range(-128..=127)?;
            p[op::ACT_MIN] = lo;
            p[op::ACT_MAX] = self.u.int_in_range(lo..=127)?;
        }
        Ok(())
    }

    /// A multiplier in `[2^30, 2^31)` and a shift that scales a sum of about `2^bits` to int8.
    fn mult_shift(&mut self, bits: i32) -> Result<(i32, i32)> {
        let mult = self.u.int_in_range((1 << 30)..=i32::MAX)?;
        let shift = (31 + bits - 7 + self.u.int_in_range(-2..=3)?).clamp(1, 62);
        Ok((mult, shift))
    }

    // ---- coercions: bring the chain's value to what the next op needs (they exercise
    // QUANTIZE, DEQUANTIZE and RESHAPE between layouts too).

    fn coerce_dtype(&mut self, v: Value, dtype: DType) -> Result<Value> {
        if v.dtype == dtype {
            return Ok(v);
        }
        let mut p = [0; OP_PARAMS];
        let kind = match (v.dtype, dtype) {
            (DType::F32, _) => op::QUANTIZE,
            (_, DType::F32) => op::DEQUANTIZE,
            _ => {
                // Between int8 and int16 codes (1.6): about 2^8 up or down.
                let (m, s) = self.mult_shift(if dtype == DType::I16 { -1 } else { 15 })?;
                p[op::MULT_A] = m;
                p[op::SHIFT] = s;
                op::REQUANTIZE
            }
        };
        let y = self.arena(dtype, v.dims.clone(), v.layout, None)?;
        self.op(kind, vec![v.t], y.t, p);
        Ok(self.push(y))
    }

    /// A rank-4 NHWC value (reshaping a row-major one into `[N, C, H, W]`).
    fn coerce_nhwc(&mut self, v: Value) -> Result<Value> {
        if v.dims.len() == 4 && v.layout == Layout::Nhwc {
            return Ok(v);
        }
        let dims = if v.dims.len() == 4 {
            v.dims.clone()
        } else {
            let e = v.elements();
            // Factor the elements as C * H * W with a small spatial part.
            let h = (2..=6).rev().find(|d| e.is_multiple_of(*d) && e / d > 0).unwrap_or(1);
            let w = (2..=6).rev().find(|d| (e / h).is_multiple_of(*d)).unwrap_or(1);
            vec![1, e / (h * w).max(1), h, w]
        };
        let quant = Some((v.scale, v.zero_point));
        let y = self.arena(v.dtype, dims, Layout::Nhwc, quant)?;
        self.op(op::RESHAPE, vec![v.t], y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    fn coerce_row_major(&mut self, v: Value, flatten: bool) -> Result<Value> {
        if v.layout == Layout::RowMajor && !flatten {
            return Ok(v);
        }
        let dims =
            if flatten && v.dims.len() > 1 { vec![v.dims[0], v.dims[1..].iter().product()] } else { v.dims.clone() };
        let quant = Some((v.scale, v.zero_point));
        let y = self.arena(v.dtype, dims, Layout::RowMajor, quant)?;
        self.op(op::RESHAPE, vec![v.t], y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    fn pick_dtype(&mut self) -> Result<DType> {
        Ok(if self.chance(3, 5)? { DType::I8 } else { DType::F32 })
    }

    /// For the ops with an int16 form (1.6): now and then int16.
    fn pick_dtype16(&mut self) -> Result<DType> {
        if self.chance(1, 5)? {
            return Ok(DType::I16);
        }
        self.pick_dtype()
    }

    /// Window parameters for an `h x w` input; the output size, or a 1x1 window when a larger
    /// one does not fit.
    fn window(&mut self, p: &mut [i32; OP_PARAMS], h: usize, w: usize) -> Result<(usize, usize)> {
        let mut k = [self.range(1, 3)?, self.range(1, 3)?];
        if self.chance(1, 10)? {
            k[0] = self.range(1, 7)?;
        }
        let s = [self.range(1, 2)?, self.range(1, 3)?];
        let d = [if self.chance(1, 5)? { 2 } else { 1 }, if self.chance(1, 5)? { 2 } else { 1 }];
        let mut pads = [0usize; 4];
        for (i, pad) in pads.iter_mut().enumerate() {
            let extent = k[i % 2] * d[i % 2];
            *pad = if self.chance(1, 2)? { 0 } else { self.range(0, extent - 1)? };
        }
        let out = |k: [usize; 2], d: [usize; 2], pads: [usize; 4]| {
            Some((
                sparq_runtime::model::window_out(h, k[0], s[0], pads[0], pads[2], d[0])?,
                sparq_runtime::model::window_out(w, k[1], s[1], pads[1], pads[3], d[1])?,
            ))
        };
        let (k, d, pads, o) = match out(k, d, pads) {
            Some(o) => (k, d, pads, o),
            None => ([1, 1], [1, 1], [0; 4], (h.div_ceil(s[0]), w.div_ceil(s[1]))),
        };
        p[window::KERNEL_H] = k[0] as i32;
        p[window::KERNEL_W] = k[1] as i32;
        p[window::STRIDE_H] = s[0] as i32;
        p[window::STRIDE_W] = s[1] as i32;
        p[window::PAD_TOP] = pads[0] as i32;
        p[window::PAD_LEFT] = pads[1] as i32;
        p[window::PAD_BOTTOM] = pads[2] as i32;
        p[window::PAD_RIGHT] = pads[3] as i32;
        p[window::DILATION_H] = d[0] as i32;
        p[window::DILATION_W] = d[1] as i32;
        Ok(o)
    }

    /// An int8 weight matrix `n x k` (row-major values), with whole zero blocks now and then so
    /// block-sparse encodings skip some.
    fn i8_matrix(&mut self, n: usize, k: usize) -> Vec<i8> {
        let zero_rows = self.rng.next().is_multiple_of(3);
        (0..n * k)
            .map(|i| {
                if zero_rows && (i / k.max(1)) % 3 == 1 || self.rng.next().is_multiple_of(4) {
                    0
                } else {
                    self.rng.i8()
                }
            })
            .collect()
    }

    /// The weight tensor of an int8 layer with an `n x k` matrix: row-major, packed panels or
    /// block-sparse (the latter two only where `matrix` allows).
    fn i8_weights(&mut self, dims: Vec<usize>, n: usize, k: usize, matrix: bool) -> Result<u32> {
        self.weights_of(dims, n, k, if matrix { 2 } else { 0 })
    }

    /// The int8 weights of an int16 layer (1.6): row-major or packed panels, never block-sparse
    /// (now and then block-sparse all the same: the reader must refuse it).
    fn i16_layer_weights(&mut self, dims: Vec<usize>, n: usize, k: usize, matrix: bool) -> Result<u32> {
        let forms = if !matrix {
            0
        } else if self.chance(1, 20)? {
            2
        } else {
            1
        };
        self.weights_of(dims, n, k, forms)
    }

    /// Row-major (form 0), packed panels (1) or block-sparse (2), a form up to `forms`.
    fn weights_of(&mut self, dims: Vec<usize>, n: usize, k: usize, forms: usize) -> Result<u32> {
        let m = self.i8_matrix(n, k);
        let choice = self.range(0, forms)?;
        Ok(match choice {
            1 => {
                let pack = if self.chance(1, 2)? {
                    Pack { nr: 8, kr: 4 }
                } else {
                    Pack { nr: *self.u.choose(&[1, 2, 4, 8, 16, 32, 64])?, kr: *self.u.choose(&[1, 2, 4, 8, 16])? }
                };
                let data = pack.pack(n, k, &m).into_iter().map(|v| v as u8).collect();
                self.constant(DType::I8, dims, Layout::Packed, data, Some(pack))
            }
            2 => {
                let block = if self.chance(1, 2)? {
                    sparse::KERNEL_BLOCK
                } else {
                    Pack { nr: *self.u.choose(&[1, 2, 4, 8, 16])?, kr: *self.u.choose(&[1, 2, 4, 8])? }
                };
                let mut data = sparse::encode(block, n, k, &m);
                if self.chance(1, 30)? && !data.is_empty() {
                    // A broken index: the reader must refuse it.
                    let at = self.range(0, data.len().min(64) - 1)?;
                    data[at] ^= 1 << self.range(0, 7)?;
                }
                self.constant(DType::I8, dims, Layout::BlockSparse, data, Some(block))
            }
            _ => self.constant(DType::I8, dims, Layout::RowMajor, m.into_iter().map(|v| v as u8).collect(), None),
        })
    }

    /// Bias, multipliers and shifts of an int8 layer with `n` outputs and reduction `k`.
    fn i8_output_stage(&mut self, n: usize, k: usize) -> Result<Vec<u32>> {
        let bias: Vec<i32> = (0..n).map(|_| (self.rng.next() % 20001) as i32 - 10000).collect();
        let mut mult = Vec::with_capacity(n);
        let mut shift = Vec::with_capacity(n);
        let bits = ceil_log2(k) + 13;
        for _ in 0..n {
            let (m, s) = self.mult_shift(bits)?;
            mult.push(m);
            shift.push(s);
        }
        let b = self.constant(DType::I32, vec![n], Layout::RowMajor, bytes_of_i32(&bias), None);
        let m = self.constant(DType::I32, vec![n], Layout::RowMajor, bytes_of_i32(&mult), None);
        let s = self.constant(DType::I32, vec![n], Layout::RowMajor, bytes_of_i32(&shift), None);
        Ok(vec![b, m, s])
    }

    fn f32_constant(&mut self, dims: Vec<usize>) -> u32 {
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.rng.f32()).collect();
        self.constant(DType::F32, dims, Layout::RowMajor, bytes_of_f32(&v), None)
    }

    /// An f32 constant whose values are, with `special`, now and then zeros of either sign,
    /// integers, infinities or NaN (Div, Pow and the NaN rules of Min and Max).
    fn f32_special_constant(&mut self, dims: Vec<usize>, special: bool) -> u32 {
        const SPECIAL: [f32; 8] = [0.0, -0.0, 2.0, -3.0, 0.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        let n = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if special && self.rng.next().is_multiple_of(4) {
                    SPECIAL[(self.rng.next() % SPECIAL.len() as u64) as usize]
                } else {
                    self.rng.f32()
                }
            })
            .collect();
        self.constant(DType::F32, dims, Layout::RowMajor, bytes_of_f32(&v), None)
    }

    /// The near-valid variant an op gets: 0 (none) most of the time, else one of `1..=variants`.
    fn near_valid(&mut self, variants: usize) -> Result<usize> {
        Ok(if self.chance(1, 40)? { self.range(1, variants)? } else { 0 })
    }

    /// A value of rank >= 2 (a rank-1 one reshaped to `[rows, cols]` or `[1, n]`).
    fn coerce_matrix(&mut self, v: Value) -> Result<Value> {
        if v.dims.len() >= 2 {
            return Ok(v);
        }
        let e = v.elements();
        let a = (2..=8).rev().find(|d| e.is_multiple_of(*d)).unwrap_or(1);
        let dims = if self.chance(1, 2)? { vec![e / a, a] } else { vec![1, e] };
        let y = self.arena(v.dtype, dims, Layout::RowMajor, Some((v.scale, v.zero_point)))?;
        self.op(op::RESHAPE, vec![v.t], y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    /// Batch axes of a second operand against `batch` (both right-aligned, numpy's rules), at
    /// most `MAX_RANK - 2` of them: where `batch` has an axis, its size or 1 (against a 1, and
    /// with `grow`, any small size); leading axes `batch` lacks of size 1 (with `grow`, 1 to 3).
    /// Returns them and the broadcast batch.
    fn broadcast_batch(&mut self, batch: &[usize], grow: bool) -> Result<(Vec<usize>, Vec<usize>)> {
        let rank = self.range(0, MAX_RANK - 2)?;
        let n = rank.max(batch.len());
        let (mut other, mut out) = (vec![0; rank], vec![0; n]);
        for (j, o) in out.iter_mut().enumerate() {
            let mine = (j + batch.len()).checked_sub(n).map(|i| batch[i]);
            let theirs = match (j + rank).checked_sub(n) {
                Some(i) => {
                    let d = match mine {
                        Some(d) if d != 1 => {
                            if self.chance(1, 3)? {
                                1
                            } else {
                                d
                            }
                        }
                        _ if grow => self.range(1, 3)?,
                        _ => 1,
                    };
                    other[i] = d;
                    Some(d)
                }
                None => None,
            };
            *o = match (mine, theirs) {
                (Some(1), Some(t)) | (None, Some(t)) => t,
                (Some(m), _) => m,
                (None, None) => unreachable!("axis j is in one of the two"),
            };
        }
        Ok((other, out))
    }

    // ---- the ops

    fn conv(&mut self, v: Value, depthwise: bool) -> Result<Value> {
        let dtype = self.pick_dtype16()?;
        let v = self.coerce_dtype(v, dtype)?;
        let x = self.coerce_nhwc(v)?;
        let (n, c, h, w) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
        let mut p = [0; OP_PARAMS];
        let (oh, ow) = self.window(&mut p, h, w)?;
        let (kh, kw) = (p[window::KERNEL_H] as usize, p[window::KERNEL_W] as usize);
        let (groups, out_c) = if depthwise {
            (c, c)
        } else {
            let divisors: Vec<usize> = (1..=c.max(1)).filter(|g| c % g == 0).collect();
            // Int16 convolutions have one group (now and then more: the reader must refuse it).
            let one = self.chance(1, 2)? || (dtype == DType::I16 && !self.chance(1, 20)?);
            let groups = if divisors.is_empty() || one { 1 } else { *self.u.choose(&divisors)? };
            let mut per_group = self.dim(4)?;
            if per_group * groups > 32 {
                per_group = 1;
            }
            (groups, groups * per_group)
        };
        p[window::GROUPS] = if depthwise { 0 } else { groups as i32 };
        let cin_g = if depthwise { 1 } else { c / groups.max(1) };
        let k = kh * kw * cin_g;
        let wdims = if depthwise { vec![1, kh, kw, c] } else { vec![out_c, kh, kw, cin_g] };
        let kind = if depthwise { op::DEPTHWISE_CONV2D } else { op::CONV2D };
        let y_dims = vec![n, out_c, oh, ow];
        let mut inputs = vec![x.t];
        if dtype == DType::I8 || dtype == DType::I16 {
            let wt = if depthwise {
                let m = self.i8_matrix(kh * kw, c);
                self.constant(DType::I8, wdims, Layout::RowMajor, m.into_iter().map(|v| v as u8).collect(), None)
            } else if dtype == DType::I16 {
                self.i16_layer_weights(wdims, out_c, k, groups == 1)?
            } else {
                self.i8_weights(wdims, out_c, k, groups == 1)?
            };
            inputs.push(wt);
            // The same output stage scales an int16 sum to int16 (2^21 k to 2^15, as 2^13 k to 2^7).
            inputs.extend(self.i8_output_stage(out_c, if depthwise { kh * kw } else { k })?);
            if dtype == DType::I16 {
                self.i16_clamp(&mut p)?;
            } else {
                self.i8_clamp(&mut p)?;
            }
        } else {
            inputs.push(self.f32_constant(wdims));
            inputs.push(self.f32_constant(vec![out_c]));
            self.f32_clamp(&mut p)?;
        }
        let y = self.arena(dtype, y_dims, Layout::Nhwc, None)?;
        self.op(kind, inputs, y.t, p);
        Ok(self.push(y))
    }

    fn fully_connected(&mut self, v: Value) -> Result<Value> {
        let form = self.range(0, 3)?; // 0 f32, 1 i8 -> i8, 2 i8 -> f32, 3 i16 -> i16 (1.6)
        let dtype = match form {
            0 => DType::F32,
            3 => DType::I16,
            _ => DType::I8,
        };
        let v = self.coerce_dtype(v, dtype)?;
        let flatten = v.layout != Layout::RowMajor || (v.dims.len() > 2 && self.chance(1, 2)?);
        let x = self.coerce_row_major(v, flatten)?;
        let k = x.dims.last().copied().unwrap_or(1);
        let n = self.dim(24)?;
        let mut y_dims = x.dims.clone();
        *y_dims.last_mut().unwrap() = n;
        let mut p = [0; OP_PARAMS];
        let mut inputs = vec![x.t];
        let out_dtype = if form == 2 { DType::F32 } else { dtype };
        if dtype == DType::I16 {
            inputs.push(self.i16_layer_weights(vec![n, k], n, k, true)?);
            inputs.extend(self.i8_output_stage(n, k)?);
            self.i16_clamp(&mut p)?;
        } else if dtype == DType::I8 {
            inputs.push(self.i8_weights(vec![n, k], n, k, true)?);
            if form == 2 {
                let bias: Vec<i32> = (0..n).map(|_| (self.rng.next() % 2001) as i32 - 1000).collect();
                let scale: Vec<f32> = (0..n).map(|_| 1e-4 * (1 + self.rng.next() % 100) as f32).collect();
                inputs.push(self.constant(DType::I32, vec![n], Layout::RowMajor, bytes_of_i32(&bias), None));
                inputs.push(self.constant(DType::F32, vec![n], Layout::RowMajor, bytes_of_f32(&scale), None));
                self.f32_clamp(&mut p)?;
            } else {
                inputs.extend(self.i8_output_stage(n, k)?);
                self.i8_clamp(&mut p)?;
            }
        } else {
            inputs.push(self.f32_constant(vec![n, k]));
            inputs.push(self.f32_constant(vec![n]));
            self.f32_clamp(&mut p)?;
        }
        let y = self.arena(out_dtype, y_dims, Layout::RowMajor, None)?;
        self.op(op::FULLY_CONNECTED, inputs, y.t, p);
        Ok(self.push(y))
    }

    fn binary(&mut self, v: Value, kind: u16) -> Result<Value> {
        let dtype = if kind == op::ADD { self.pick_dtype16()? } else { self.pick_dtype()? };
        let a = self.coerce_dtype(v, dtype)?;
        let partner = self.history.iter().rev().find(|h| h.dims == a.dims && h.dtype == dtype && h.t != a.t).cloned();
        // An int16 ADD takes two computed tensors (now and then a constant: refused).
        let form = if dtype == DType::I16 && !self.chance(1, 20)? { self.range(0, 1)? } else { self.range(0, 3)? };
        let b = match form {
            0 => a.t,
            1 if partner.is_some() => partner.unwrap().t,
            1 if dtype == DType::I16 => a.t,
            _ => {
                // A constant that broadcasts: a suffix of the dims, some of them 1.
                let skip = self.range(0, a.dims.len())?;
                let mut dims: Vec<usize> = a.dims[skip..].to_vec();
                for d in dims.iter_mut() {
                    if self.chance(1, 2)? {
                        *d = 1;
                    }
                }
                let count: usize = dims.iter().product();
                if dtype == DType::I8 {
                    let data = (0..count).map(|_| self.rng.i8() as u8).collect();
                    let t = self.constant(DType::I8, dims, Layout::RowMajor, data, None);
                    let (s, z) = self.quant()?;
                    self.spec.tensors[t as usize].scale = s;
                    self.spec.tensors[t as usize].zero_point = z;
                    t
                } else {
                    self.f32_constant(dims)
                }
            }
        };
        let mut p = [0; OP_PARAMS];
        if dtype == DType::I8 || dtype == DType::I16 {
            if dtype == DType::I16 {
                self.i16_clamp(&mut p)?;
            } else {
                self.i8_clamp(&mut p)?;
            }
            let shift = self.u.int_in_range(2..=30)?;
            p[op::SHIFT] = shift;
            p[op::MULT_A] = self.u.int_in_range(0..=(1i32 << (shift - 1).min(30)))?;
            p[op::MULT_B] = self.u.int_in_range(0..=(1i32 << (shift - 1).min(30)))?;
            if kind == op::MUL {
                p[op::SHIFT] = self.u.int_in_range(8..=40)?;
                p[op::MULT_B] = 0;
            }
        } else {
            self.f32_clamp(&mut p)?;
        }
        let layout = if a.dims.len() == 4 && self.chance(1, 2)? { Layout::Nhwc } else { a.layout };
        let y = self.arena(dtype, a.dims.clone(), layout, None)?;
        self.op(kind, vec![a.t, b], y.t, p);
        Ok(self.push(y))
    }

    fn clamp(&mut self, v: Value) -> Result<Value> {
        let mut p = [0; OP_PARAMS];
        if v.dtype == DType::I8 {
            self.i8_clamp(&mut p)?;
        } else {
            self.f32_clamp(&mut p)?;
        }
        let layout = if v.dims.len() == 4 && self.chance(1, 3)? { Layout::Nhwc } else { v.layout };
        let y = self.arena(v.dtype, v.dims.clone(), layout, Some((v.scale, v.zero_point)))?;
        self.op(op::CLAMP, vec![v.t], y.t, p);
        Ok(self.push(y))
    }

    /// An int8 table lookup (a random table) or an f32 function (a random code, now and then an
    /// unknown one, with random finite or non-finite parameters).
    fn activation(&mut self, v: Value, kind: u16) -> Result<Value> {
        let mut p = [0; OP_PARAMS];
        let layout = if v.dims.len() == 4 && self.chance(1, 3)? { Layout::Nhwc } else { v.layout };
        if kind == op::LOOKUP && v.dims.len() == 4 && self.chance(1, 3)? {
            // One table per channel (1.7): the output in the input's layout, now and then not, or
            // the tables one channel short.
            let x = self.coerce_dtype(v, DType::I8)?;
            let c = x.dims[1] - usize::from(self.chance(1, 16)?).min(x.dims[1]);
            // Into int8, or (int16 tables) into int16.
            let dtype = if self.chance(1, 3)? { DType::I16 } else { DType::I8 };
            let tables: Vec<u8> = (0..256 * c * dtype.size()).map(|_| self.rng.next() as u8).collect();
            let t = self.constant(dtype, vec![c, 256], Layout::RowMajor, tables, None);
            let layout = if self.chance(1, 16)? { layout } else { x.layout };
            let y = self.arena(dtype, x.dims.clone(), layout, None)?;
            p[op::LOOKUP_PER_CHANNEL] = 1;
            self.op(op::LOOKUP, vec![x.t, t], y.t, p);
            return Ok(self.push(y));
        }
        if kind == op::LOOKUP {
            let x = self.coerce_dtype(v, DType::I8)?;
            let table: Vec<u8> = (0..256).map(|_| self.rng.next() as u8).collect();
            let t = self.constant(DType::I8, vec![256], Layout::RowMajor, table, None);
            let y = self.arena(DType::I8, x.dims.clone(), layout, None)?;
            self.op(op::LOOKUP, vec![x.t, t], y.t, p);
            return Ok(self.push(y));
        }
        let x = self.coerce_dtype(v, DType::F32)?;
        p[op::FUNCTION] = self.range(0, 18)? as i32;
        p[op::ALPHA] = f32_bits(*self.u.choose(&[0.0, 0.2, 1.0 / 6.0, 1.0, -3.0, f32::NAN])?);
        p[op::BETA] = f32_bits(*self.u.choose(&[0.0, 0.5, 2.0, f32::INFINITY])?);
        let y = self.arena(DType::F32, x.dims.clone(), layout, None)?;
        self.op(op::UNARY, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    /// A random permutation of the value's axes, or a random strided window of it (steps of
    /// either sign), now and then off by one past the input.
    fn movement(&mut self, v: Value, kind: u16) -> Result<Value> {
        let rank = v.dims.len();
        let mut p = [0; OP_PARAMS];
        let mut dims = v.dims.clone();
        if kind == op::TRANSPOSE {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                let j = self.range(0, i)?;
                perm.swap(i, j);
            }
            for (i, &a) in perm.iter().enumerate() {
                p[i] = a as i32;
                dims[i] = v.dims[a];
            }
        } else {
            for a in 0..rank {
                let n = v.dims[a];
                if n == 0 {
                    p[op::SLICE_STEP + a] = 1;
                    continue;
                }
                let step = *self.u.choose(&[1i32, 1, 2, 3, -1, -2])?;
                let start = self.range(0, n.saturating_sub(1))? as i32;
                let room = if step > 0 { (n as i32 - 1 - start) / step } else { start / -step };
                let past = usize::from(self.chance(1, 40)?);
                let count = self.range(1, room as usize + 1)? + past;
                p[op::SLICE_START + a] = start;
                p[op::SLICE_STEP + a] = step;
                dims[a] = count;
            }
        }
        let layout = if rank == 4 && self.chance(1, 3)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(v.dtype, dims, layout, Some((v.scale, v.zero_point)))?;
        self.op(kind, vec![v.t], y.t, p);
        Ok(self.push(y))
    }

    /// A spatial resize: random output size, mode, coordinate transformation, rounding and
    /// scales (now and then not positive or not finite).
    fn resize(&mut self, v: Value) -> Result<Value> {
        let x = self.coerce_nhwc(v)?;
        let mut p = [0; OP_PARAMS];
        // f32: nearest, linear or cubic (format 1.4; its coefficient now and then not finite, its
        // exclude_outside now and then invalid); i8: nearest or linear (format 1.5).
        let mode = if x.dtype == DType::F32 { self.range(0, 2)? as i32 } else { self.range(0, 1)? as i32 };
        p[op::RESIZE_MODE] = mode;
        if mode == 2 {
            p[op::RESIZE_CUBIC_A] = f32_bits(*self.u.choose(&[-0.75f32, -0.5, 0.0, 2.0, f32::NAN])?);
            p[op::RESIZE_EXCLUDE_OUTSIDE] = *self.u.choose(&[0, 1, 1, 2])?;
        }
        // 5 half_pixel_symmetric (format 1.5).
        p[op::RESIZE_COORD] = self.range(0, 5)? as i32;
        p[op::RESIZE_NEAREST] = self.range(0, 3)? as i32;
        let (oh, ow) = (self.range(1, 2 * x.dims[2] + 1)?, self.range(1, 2 * x.dims[3] + 1)?);
        let scale = |o: usize, i: usize| o as f32 / i.max(1) as f32;
        let odd = *self.u.choose(&[0.0f32, 0.0, 0.0, -1.0, f32::INFINITY])?;
        p[op::RESIZE_SCALE_H] = f32_bits(if odd != 0.0 { odd } else { scale(oh, x.dims[2]) });
        p[op::RESIZE_SCALE_W] = f32_bits(scale(ow, x.dims[3]));
        let dims = vec![x.dims[0], x.dims[1], oh, ow];
        let layout = if self.chance(1, 3)? { Layout::RowMajor } else { Layout::Nhwc };
        let y = self.arena(x.dtype, dims, layout, Some((x.scale, x.zero_point)))?;
        self.op(op::RESIZE, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    /// Random pads before and after each axis in a random mode (reflect pads now and then as
    /// large as the axis, which must be refused).
    fn pad(&mut self, v: Value) -> Result<Value> {
        let mut p = [0; OP_PARAMS];
        let mode = self.range(0, 2)? as i32;
        p[op::PAD_MODE] = mode;
        let mut dims = v.dims.clone();
        for a in 0..v.dims.len() {
            let too_much = usize::from(self.chance(1, 30)?);
            let limit = if mode == 1 { v.dims[a].saturating_sub(1) + too_much } else { 3 };
            let (b, e) = (self.range(0, limit)?, self.range(0, limit)?);
            p[op::PAD_BEFORE + a] = b as i32;
            p[op::PAD_AFTER + a] = e as i32;
            dims[a] += b + e;
        }
        if mode == 0 {
            p[op::PAD_VALUE] = if v.dtype == DType::I8 { self.rng.i8() as i32 } else { f32_bits(self.rng.f32()) };
        }
        let layout = if dims.len() == 4 && self.chance(1, 2)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(v.dtype, dims, layout, Some((v.scale, v.zero_point)))?;
        self.op(op::PAD, vec![v.t], y.t, p);
        Ok(self.push(y))
    }

    /// A transposed convolution, f32 or int8 (format 1.5: i8 weights, CONV2D's output stage):
    /// random kernel, stride, dilation, pads, groups and output padding (now and then one too
    /// large).
    fn conv_transpose(&mut self, v: Value) -> Result<Value> {
        let dtype = self.pick_dtype()?;
        let x = self.coerce_dtype(v, dtype)?;
        let x = self.coerce_nhwc(x)?;
        let mut p = [0; OP_PARAMS];
        let cin = x.dims[1];
        let groups = if cin > 1 && self.chance(1, 3)? { cin } else { 1 };
        let cout = groups * self.range(1, 4)?;
        let mut out = [0usize; 2];
        for (a, o) in out.iter_mut().enumerate() {
            let (k, s, d) = (self.range(1, 4)?, self.range(1, 3)?, self.range(1, 2)?);
            let full = x.dims[2 + a].saturating_sub(1) * s + d * (k - 1) + 1;
            let too_much = usize::from(self.chance(1, 30)?);
            let extra = self.range(0, s.max(d) - 1 + too_much)?;
            let (pb, pe) = (self.range(0, k - 1)?, self.range(0, k - 1)?);
            *o = (full + extra).saturating_sub(pb + pe).max(1);
            let [ks, ss, ds, ps, pes] = if a == 0 {
                [window::KERNEL_H, window::STRIDE_H, window::DILATION_H, window::PAD_TOP, window::PAD_BOTTOM]
            } else {
                [window::KERNEL_W, window::STRIDE_W, window::DILATION_W, window::PAD_LEFT, window::PAD_RIGHT]
            };
            (p[ks], p[ss], p[ds], p[ps], p[pes]) = (k as i32, s as i32, d as i32, pb as i32, pe as i32);
        }
        p[window::GROUPS] = groups as i32;
        let (kh, kw) = (p[window::KERNEL_H] as usize, p[window::KERNEL_W] as usize);
        let wdims = vec![cin, cout / groups, kh, kw];
        let mut inputs = vec![x.t];
        if dtype == DType::I8 {
            self.i8_clamp(&mut p)?;
            let m = self.i8_matrix(cin, cout / groups * kh * kw);
            inputs.push(self.constant(
                DType::I8,
                wdims,
                Layout::RowMajor,
                m.into_iter().map(|v| v as u8).collect(),
                None,
            ));
            inputs.extend(self.i8_output_stage(cout, cin / groups * kh * kw)?);
        } else {
            self.f32_clamp(&mut p)?;
            inputs.push(self.f32_constant(wdims));
            inputs.push(self.f32_constant(vec![cout]));
        }
        let y = self.arena(dtype, vec![x.dims[0], cout, out[0], out[1]], Layout::Nhwc, None)?;
        self.op(op::CONV_TRANSPOSE, inputs, y.t, p);
        Ok(self.push(y))
    }

    fn pool(&mut self, v: Value, kind: u16) -> Result<Value> {
        let x = self.coerce_nhwc(v)?;
        let mut p = [0; OP_PARAMS];
        let (oh, ow) = self.window(&mut p, x.dims[2], x.dims[3])?;
        if kind == op::AVERAGE_POOL {
            p[window::GROUPS] = self.range(0, 1)? as i32;
        }
        let dims = vec![x.dims[0], x.dims[1], oh, ow];
        let y = self.arena(x.dtype, dims, Layout::Nhwc, Some((x.scale, x.zero_point)))?;
        self.op(kind, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    fn global_pool(&mut self, v: Value) -> Result<Value> {
        // Now and then the int16 form (1.6).
        let v = if v.dtype != DType::F32 && self.chance(1, 5)? { self.coerce_dtype(v, DType::I16)? } else { v };
        let x = self.coerce_nhwc(v)?;
        let mut p = [0; OP_PARAMS];
        if x.dtype == DType::I8 || x.dtype == DType::I16 {
            let hw = x.dims[2] * x.dims[3];
            let (m, s) = self.mult_shift(ceil_log2(hw) + 7)?;
            p[op::MULT_A] = m;
            p[op::SHIFT] = s;
        }
        let y = self.arena(x.dtype, vec![x.dims[0], x.dims[1], 1, 1], Layout::Nhwc, None)?;
        self.op(op::GLOBAL_AVERAGE_POOL, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    fn reshape(&mut self, v: Value) -> Result<Value> {
        let e = v.elements();
        let quant = Some((v.scale, v.zero_point));
        let (dims, layout) = match self.range(0, 3)? {
            0 => (vec![e], Layout::RowMajor),
            1 if v.dims.len() == 4 => {
                (v.dims.clone(), if v.layout == Layout::Nhwc { Layout::RowMajor } else { Layout::Nhwc })
            }
            2 => {
                let a = (2..=8).rev().find(|d| e.is_multiple_of(*d)).unwrap_or(1);
                (vec![e / a, a], Layout::RowMajor)
            }
            _ => {
                let a = (2..=4).find(|d| e.is_multiple_of(*d)).unwrap_or(1);
                (vec![1, a, e / a], Layout::RowMajor)
            }
        };
        // A reshape between different shapes needs one dense row-major side.
        let x = if dims != v.dims && v.layout != Layout::RowMajor && layout != Layout::RowMajor {
            self.coerce_row_major(v, false)?
        } else {
            v
        };
        let y = self.arena(x.dtype, dims, layout, quant)?;
        self.op(op::RESHAPE, vec![x.t], y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    fn concat(&mut self, v: Value) -> Result<Value> {
        let rank = v.dims.len();
        let mut p = [0; OP_PARAMS];
        let axis = self.range(0, rank.max(1) - 1)?;
        p[op::AXIS] = axis as i32;
        let mut inputs = vec![v.t];
        let mut along = v.dims.get(axis).copied().unwrap_or(0);
        for _ in 0..self.range(0, 2)? {
            if self.chance(1, 2)? {
                inputs.push(v.t);
                along += v.dims.get(axis).copied().unwrap_or(0);
            } else {
                let mut dims = v.dims.clone();
                let size = self.dim(3)?;
                if let Some(d) = dims.get_mut(axis) {
                    *d = size;
                }
                let count: usize = dims.iter().product();
                let t = if v.dtype == DType::I8 {
                    let data = (0..count).map(|_| self.rng.i8() as u8).collect();
                    let t = self.constant(DType::I8, dims, Layout::RowMajor, data, None);
                    self.spec.tensors[t as usize].scale = v.scale;
                    self.spec.tensors[t as usize].zero_point = v.zero_point;
                    t
                } else {
                    self.f32_constant(dims)
                };
                inputs.push(t);
                along += size;
            }
        }
        let mut dims = v.dims.clone();
        if let Some(d) = dims.get_mut(axis) {
            *d = along;
        }
        let layout = if rank == 4 && self.chance(1, 2)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(v.dtype, dims, layout, Some((v.scale, v.zero_point)))?;
        self.op(op::CONCAT, inputs, y.t, p);
        Ok(self.push(y))
    }

    fn softmax(&mut self, v: Value) -> Result<Value> {
        let mut p = [0; OP_PARAMS];
        p[op::AXIS] = self.range(0, v.dims.len().max(1) - 1)? as i32;
        let quant = if v.dtype == DType::I8 && self.chance(1, 2)? { Some((1.0 / 256.0, -128)) } else { None };
        let y = self.arena(v.dtype, v.dims.clone(), v.layout, quant)?;
        self.op(op::SOFTMAX, vec![v.t], y.t, p);
        Ok(self.push(y))
    }

    fn requantize(&mut self, v: Value) -> Result<Value> {
        let x = self.coerce_dtype(v, DType::I8)?;
        let mut p = [0; OP_PARAMS];
        let (m, s) = self.mult_shift(7)?;
        p[op::MULT_A] = m;
        p[op::SHIFT] = s;
        let layout = if x.dims.len() == 4 && self.chance(1, 3)? { Layout::Nhwc } else { x.layout };
        let y = self.arena(DType::I8, x.dims.clone(), layout, None)?;
        self.op(op::REQUANTIZE, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    /// An f32 matrix product of the chain's value (as a or as b) with a constant of broadcast
    /// batch axes, or with itself; random transpose flags. Near-valid now and then: the
    /// constant's K one too long, transpose flags out of range, an output of the wrong shape.
    fn matmul(&mut self, v: Value) -> Result<Value> {
        let x = self.coerce_dtype(v, DType::F32)?;
        let x = self.coerce_matrix(x)?;
        let r = x.dims.len();
        let (s0, s1) = (x.dims[r - 2], x.dims[r - 1]);
        let x_batch = x.dims[..r - 2].to_vec();
        let bad = self.near_valid(3)?;
        let self_product = s0.max(s1) <= 32 && self.chance(1, 6)?;
        let mut flags = self.range(0, 3)? as i32;
        if self_product && s0 != s1 {
            // x times itself: one side read transposed so that K agrees.
            flags = if self.chance(1, 2)? { 1 } else { 2 };
        }
        let (ta, tb) = (flags & 1 == 1, flags & 2 == 2);
        let (m, n, inputs, batch);
        if self_product {
            // a = x: `[M, K]` or (ta) `[K, M]`; b = x: `[K, N]` or (tb) `[N, K]`.
            m = if ta { s1 } else { s0 };
            n = if tb { s0 } else { s1 };
            inputs = vec![x.t, x.t];
            batch = x_batch;
        } else {
            let x_first = self.chance(1, 2)?;
            let free = self.range(1, 8)?;
            let k;
            if x_first {
                (m, k) = if ta { (s1, s0) } else { (s0, s1) };
                n = free;
            } else {
                (k, n) = if tb { (s1, s0) } else { (s0, s1) };
                m = free;
            }
            let kc = k + usize::from(bad == 1);
            let grow = x.elements() * 8 <= MAX_ELEMENTS && kc * free <= 512;
            let (c_batch, out) = self.broadcast_batch(&x_batch, grow)?;
            // The constant's matrix as stored: b `[K, N]` / `[N, K]`, or a `[M, K]` / `[K, M]`.
            let transposed = if x_first { tb } else { ta };
            let stored_kfirst = transposed != x_first;
            let mut dims = c_batch;
            dims.extend(if stored_kfirst { [kc, free] } else { [free, kc] });
            let special = self.chance(1, 4)?;
            let c = self.f32_special_constant(dims, special);
            inputs = if x_first { vec![x.t, c] } else { vec![c, x.t] };
            batch = out;
        }
        let mut p = [0; OP_PARAMS];
        p[op::MATMUL_TRANSPOSE] = if bad == 2 { *self.u.choose(&[4, -1, 7])? } else { flags };
        let mut dims = batch;
        dims.extend([m, n]);
        if bad == 3 {
            dims[0] += 1;
        }
        let y = self.arena(DType::F32, dims, Layout::RowMajor, None)?;
        self.op(op::MATMUL, inputs, y.t, p);
        Ok(self.push(y))
    }

    /// A BINARY function of the chain's value and itself, an earlier value of its shape or a
    /// constant that broadcasts against it (either operand order, the constant now and then
    /// adding a leading axis): f32 with every function (constants with zeros, infinities and NaN
    /// now and then), i8 MIN / MAX on one shared quantization, or i8 SUB (format 1.5: ADD's
    /// requantization slots). Near-valid now and then: an unknown function, an i8 function other
    /// than SUB / MIN / MAX, an i8 constant quantized otherwise.
    fn binary_fn(&mut self, v: Value) -> Result<Value> {
        use op::binary as f;
        let int8 = self.chance(1, 3)?;
        let bad = self.near_valid(3)?;
        let function = match (bad, int8) {
            (1, _) => *self.u.choose(&[0, 11, -1])?,
            (2, true) => *self.u.choose(&[f::DIV, f::POW, f::LESS])?,
            (_, true) => *self.u.choose(&[f::SUB, f::MIN, f::MAX])?,
            _ => self.range(f::SUB as usize, f::GREATER_OR_EQUAL as usize)? as i32,
        };
        let x = self.coerce_dtype(v, if int8 { DType::I8 } else { DType::F32 })?;
        let partner = self
            .history
            .iter()
            .rev()
            .find(|h| {
                h.dims == x.dims
                    && h.dtype == x.dtype
                    && h.t != x.t
                    && (h.dtype != DType::I8 || (h.scale == x.scale && h.zero_point == x.zero_point))
            })
            .cloned();
        let mut y_dims = x.dims.clone();
        let other = match self.range(0, 3)? {
            0 => x.t,
            1 if partner.is_some() => partner.unwrap().t,
            _ => {
                let skip = self.range(0, x.dims.len())?;
                let mut dims: Vec<usize> = x.dims[skip..].to_vec();
                for d in dims.iter_mut() {
                    if self.chance(1, 2)? {
                        *d = 1;
                    }
                }
                if skip == 0 && x.dims.len() < MAX_RANK && x.elements() * 3 <= MAX_ELEMENTS && self.chance(1, 4)? {
                    // An axis x lacks: the output has it too.
                    let lead = self.range(1, 3)?;
                    dims.insert(0, lead);
                    y_dims.insert(0, lead);
                }
                let count: usize = dims.iter().product();
                if int8 {
                    let data = (0..count).map(|_| self.rng.i8() as u8).collect();
                    let t = self.constant(DType::I8, dims, Layout::RowMajor, data, None);
                    let (s, z) = if bad == 3 { self.quant()? } else { (x.scale, x.zero_point) };
                    self.spec.tensors[t as usize].scale = s;
                    self.spec.tensors[t as usize].zero_point = z;
                    t
                } else {
                    let special = self.chance(1, 2)?;
                    self.f32_special_constant(dims, special)
                }
            }
        };
        let inputs = if self.chance(1, 2)? { vec![x.t, other] } else { vec![other, x.t] };
        let mut p = [0; OP_PARAMS];
        p[op::FUNCTION] = function;
        let mut quant = Some((x.scale, x.zero_point));
        if int8 && function == f::SUB {
            // ADD's slots; its own output quantization.
            self.i8_clamp(&mut p)?;
            let shift = self.u.int_in_range(2..=30)?;
            p[op::SHIFT] = shift;
            p[op::MULT_A] = self.u.int_in_range(0..=(1i32 << (shift - 1).min(30)))?;
            p[op::MULT_B] = self.u.int_in_range(0..=(1i32 << (shift - 1).min(30)))?;
            quant = None;
        }
        let layout = if y_dims.len() == 4 && self.chance(1, 3)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(x.dtype, y_dims, layout, quant)?;
        self.op(op::BINARY, inputs, y.t, p);
        Ok(self.push(y))
    }

    /// WHERE: the chain's value selects (as the condition, or as a branch) between operands of
    /// its shape or broadcasting constants (zeros, infinities and NaN now and then). Near-valid
    /// now and then: an int8 operand, a constant that does not broadcast.
    fn select(&mut self, v: Value) -> Result<Value> {
        let bad = self.near_valid(2)?;
        let x = self.coerce_dtype(v, if bad == 1 { DType::I8 } else { DType::F32 })?;
        let operand = |this: &mut Self| -> Result<u32> {
            if this.chance(1, 3)? {
                return Ok(x.t);
            }
            let skip = this.range(0, x.dims.len())?;
            let mut dims: Vec<usize> = x.dims[skip..].to_vec();
            for d in dims.iter_mut() {
                if this.chance(1, 2)? {
                    *d = 1;
                }
            }
            if bad == 2 && !dims.is_empty() {
                dims[0] += 1;
            }
            let special = this.chance(1, 2)?;
            Ok(this.f32_special_constant(dims, special))
        };
        let (c, a, b) = (operand(self)?, operand(self)?, operand(self)?);
        let mut inputs = vec![c, a, b];
        let at = self.range(0, 2)?;
        inputs[at] = x.t;
        let layout = if x.dims.len() == 4 && self.chance(1, 3)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(DType::F32, x.dims.clone(), layout, None)?;
        self.op(op::WHERE, inputs, y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    /// An f32 reduction over a random non-empty set of axes, every function (argmax / argmin
    /// with or without select_last). Near-valid now and then: an unknown function, an empty mask
    /// or one past the rank, select_last on another function, an output axis of the wrong size.
    fn reduce(&mut self, v: Value) -> Result<Value> {
        use op::reduce as f;
        let x = self.coerce_dtype(v, DType::F32)?;
        let r = x.dims.len();
        let bad = self.near_valid(4)?;
        let function = if bad == 1 { *self.u.choose(&[0, 13])? } else { self.range(1, f::ARGMIN as usize)? as i32 };
        let mut mask = self.range(1, ((1usize << r) - 1).max(1))? as i32;
        if bad == 2 {
            mask = if self.chance(1, 2)? { 0 } else { mask | 1 << r };
        }
        let select_last = match function {
            f::ARGMAX | f::ARGMIN => self.range(0, 1)? as i32,
            _ => i32::from(bad == 3),
        };
        let mut dims: Vec<usize> =
            x.dims.iter().enumerate().map(|(a, &d)| if mask >> a & 1 == 1 { 1 } else { d }).collect();
        if bad == 4 && r > 0 {
            let a = self.range(0, r - 1)?;
            dims[a] += 1;
        }
        let mut p = [0; OP_PARAMS];
        p[op::FUNCTION] = function;
        p[op::REDUCE_AXES] = mask;
        p[op::REDUCE_SELECT_LAST] = select_last;
        let layout = if r == 4 && self.chance(1, 3)? { Layout::Nhwc } else { Layout::RowMajor };
        let y = self.arena(DType::F32, dims, layout, None)?;
        self.op(op::REDUCE, vec![x.t], y.t, p);
        Ok(self.push(y))
    }

    /// An f32 normalization over the trailing axes from a random one, with or without scale
    /// and bias constants (shaped as those axes or flat). Near-valid now and then: the axis at
    /// the rank, a negative or non-finite epsilon, scale and bias one too long, the bias missing.
    fn normalize(&mut self, v: Value) -> Result<Value> {
        let x = self.coerce_dtype(v, DType::F32)?;
        let x = self.coerce_row_major(x, false)?;
        let r = x.dims.len();
        let bad = self.near_valid(4)?;
        let axis = if bad == 1 { r } else { self.range(0, r.saturating_sub(1))? };
        let eps = if bad == 2 {
            *self.u.choose(&[-1e-5, f32::NAN, f32::INFINITY])?
        } else {
            *self.u.choose(&[0.0, 1e-5, 1e-3, 0.5])?
        };
        let mut p = [0; OP_PARAMS];
        p[op::AXIS] = axis as i32;
        p[op::NORM_EPSILON] = f32_bits(eps);
        let mut inputs = vec![x.t];
        if bad >= 3 || self.chance(1, 2)? {
            let trailing = x.dims.get(axis..).unwrap_or(&[]).to_vec();
            let count: usize = trailing.iter().product();
            let dims = match bad {
                3 => vec![count + 1],
                _ if self.chance(1, 3)? => vec![count],
                _ => trailing,
            };
            let s = self.f32_constant(dims.clone());
            inputs.push(s);
            if bad != 4 {
                let b = self.f32_constant(dims);
                inputs.push(b);
            }
        }
        let y = self.arena(DType::F32, x.dims.clone(), Layout::RowMajor, None)?;
        self.op(op::NORMALIZE, inputs, y.t, p);
        Ok(self.push(y))
    }

    /// A gather of the chain's value (f32 or i8, row-major) along a random axis with constant
    /// indices of rank 0 to 2 (the output keeps rank 1 to 6), repeats allowed. Near-valid now
    /// and then: an index outside the axis, the axis at the rank, an output of the wrong shape.
    fn gather(&mut self, v: Value) -> Result<Value> {
        let dtype = if self.chance(1, 2)? { v.dtype } else { self.pick_dtype()? };
        let x = self.coerce_dtype(v, dtype)?;
        let x = self.coerce_row_major(x, false)?;
        let r = x.dims.len();
        let bad = self.near_valid(3)?;
        let axis = self.range(0, r.saturating_sub(1))?;
        let q = self.range(usize::from(r <= 1), (MAX_RANK + 1 - r.min(MAX_RANK)).min(2))?;
        let mut idims = Vec::with_capacity(q);
        for _ in 0..q {
            idims.push(self.range(1, 4)?);
        }
        let n = x.dims.get(axis).copied().unwrap_or(0);
        let count: usize = idims.iter().product();
        let mut idx: Vec<i32> = (0..count).map(|_| (self.rng.next() % n.max(1) as u64) as i32).collect();
        if bad == 1 {
            let j = self.range(0, count - 1)?;
            idx[j] = if self.chance(1, 2)? { n as i32 } else { -1 };
        }
        let it = self.constant(DType::I32, idims.clone(), Layout::RowMajor, bytes_of_i32(&idx), None);
        let mut p = [0; OP_PARAMS];
        p[op::AXIS] = if bad == 2 { r as i32 } else { axis as i32 };
        let mut dims = x.dims[..axis.min(r)].to_vec();
        dims.extend(&idims);
        dims.extend(x.dims.get(axis + 1..).unwrap_or(&[]));
        if bad == 3 {
            dims[0] += 1;
        }
        let y = self.arena(x.dtype, dims, Layout::RowMajor, Some((x.scale, x.zero_point)))?;
        self.op(op::GATHER, vec![x.t, it], y.t, p);
        Ok(self.push(y))
    }

    /// The chain's value as an f32 row-major sequence `[T, B, I]` with small T, B and I: as it is
    /// if it already is one, else (the first at most 96 elements of) it reshaped.
    fn coerce_sequence(&mut self, v: Value) -> Result<Value> {
        let x = self.coerce_dtype(v, DType::F32)?;
        if x.dims.len() == 3 && x.layout == Layout::RowMajor && x.dims[0] <= 8 && x.dims[1] <= 4 && x.dims[2] <= 16 {
            return Ok(x);
        }
        let e = x.elements();
        let mut x = x;
        // (A reshape to a dense row-major shape takes any layout.)
        if e > 96 {
            // The flat value, then a slice of its first (or some later) elements.
            let flat = self.arena(DType::F32, vec![e], Layout::RowMajor, None)?;
            self.op(op::RESHAPE, vec![x.t], flat.t, [0; OP_PARAMS]);
            let flat = self.push(flat);
            let n = self.range(1, 96)?;
            let mut p = [0; OP_PARAMS];
            p[op::SLICE_START] = self.range(0, e - n)? as i32;
            p[op::SLICE_STEP] = 1;
            let y = self.arena(DType::F32, vec![n], Layout::RowMajor, None)?;
            self.op(op::SLICE, vec![flat.t], y.t, p);
            x = self.push(y);
        }
        let n = x.elements();
        let largest_divisor = |n: usize, at_most: usize| (1..=at_most.max(1)).rev().find(|d| n.is_multiple_of(*d));
        let t_max = self.range(1, 6)?;
        let t = largest_divisor(n, t_max).unwrap_or(1);
        let b_max = self.range(1, 3)?;
        let b = largest_divisor(n / t.max(1), b_max).unwrap_or(1);
        let dims = if n == 0 { vec![0, 1, 1] } else { vec![t, b, n / (t * b)] };
        let y = self.arena(DType::F32, dims, Layout::RowMajor, None)?;
        self.op(op::RESHAPE, vec![x.t], y.t, [0; OP_PARAMS]);
        Ok(self.push(y))
    }

    /// An f32 recurrent weight constant: small values, or now and then with zeros, infinities
    /// and NaN, or large (the gates saturate, or overflow to infinity).
    fn rnn_constant(&mut self, dims: Vec<usize>) -> Result<u32> {
        Ok(match self.range(0, 7)? {
            0 => self.f32_special_constant(dims, true),
            1 => {
                let big = *self.u.choose(&[30.0f32, 1e4, 1e30, f32::MAX])?;
                let n = dims.iter().product();
                let v: Vec<f32> = (0..n).map(|_| self.rng.f32() * big).collect();
                self.constant(DType::F32, dims, Layout::RowMajor, bytes_of_f32(&v), None)
            }
            _ => self.f32_constant(dims),
        })
    }

    /// An initial state `[D, B, H]`: an earlier value of that shape (an earlier recurrent op's
    /// last state, say) or a constant.
    fn rnn_state(&mut self, dims: Vec<usize>) -> Result<u32> {
        let earlier: Vec<u32> = self
            .history
            .iter()
            .filter(|h| h.dims == dims && h.dtype == DType::F32 && h.layout == Layout::RowMajor)
            .map(|h| h.t)
            .collect();
        if !earlier.is_empty() && self.chance(2, 3)? {
            return Ok(*self.u.choose(&earlier)?);
        }
        self.rnn_constant(dims)
    }

    /// An ONNX LSTM or GRU over the chain's value read as `[T, B, I]`: H of 1 to 4, a random
    /// direction (forward, reverse, both), clip 0 or positive, GRU's linear_before_reset 0 or 1,
    /// W, R and bias constants (now and then with non-finite or large values), h0 and c0
    /// constants or earlier values of their shape. The outputs y `[T, D, B, H]`, y_h (and y_c)
    /// `[D, B, H]` are new arena tensors; the chain goes on from y or y_h. Near-valid now and
    /// then: an output too few or too many, an initial state of the wrong shape, a direction
    /// outside 0..=2 or disagreeing with W's D, a negative or non-finite clip, a bad
    /// linear_before_reset, outputs overlapping each other or the input, an output that is a graph
    /// input.
    fn recurrent(&mut self, v: Value, kind: u16) -> Result<Value> {
        let lstm = kind == op::LSTM;
        let gates = if lstm { 4 } else { 3 };
        let x = self.coerce_sequence(v)?;
        let (t, b, i) = (x.dims[0], x.dims[1], x.dims[2]);
        let bad = self.near_valid(6)?;
        let hidden = self.range(1, 4)?;
        let direction = self.range(0, 2)?;
        let dirs = if direction == 2 { 2 } else { 1 };
        let w = self.rnn_constant(vec![dirs, gates * hidden, i])?;
        let r = self.rnn_constant(vec![dirs, gates * hidden, hidden])?;
        let bias = self.rnn_constant(vec![dirs, 2 * gates * hidden])?;
        let state = vec![dirs, b, hidden];
        let mut wrong_state = state.clone();
        if bad == 2 {
            let a = self.range(0, 2)?;
            wrong_state[a] += 1;
        }
        let h0_dims = if bad == 2 && (!lstm || self.chance(1, 2)?) { wrong_state.clone() } else { state.clone() };
        let mut inputs = vec![x.t, w, r, bias];
        let h0 = self.rnn_state(h0_dims.clone())?;
        inputs.push(h0);
        if lstm {
            let c0_dims = if bad == 2 && h0_dims == state { wrong_state } else { state.clone() };
            let c0 = self.rnn_state(c0_dims)?;
            inputs.push(c0);
        }
        let mut p = [0; OP_PARAMS];
        p[op::RNN_DIRECTION] = match bad {
            // Out of range, or disagreeing with W's D.
            3 => *self.u.choose(&[3, -1, i32::MAX, if direction == 2 { 0 } else { 2 }])?,
            _ => direction as i32,
        };
        let clip = if bad == 4 {
            *self.u.choose(&[-1.0f32, -1e-30, f32::NAN, f32::INFINITY])?
        } else {
            *self.u.choose(&[0.0f32, 0.0, 0.5, 1.0, 3.0, 1e30])?
        };
        p[op::RNN_CLIP] = f32_bits(clip);
        if !lstm {
            p[op::RNN_LINEAR_BEFORE_RESET] = self.range(0, 1)? as i32;
        }
        if bad == 5 {
            p[op::RNN_LINEAR_BEFORE_RESET] = if lstm { *self.u.choose(&[1, 2])? } else { *self.u.choose(&[2, -1])? };
        }
        let y = self.arena(DType::F32, vec![t, dirs, b, hidden], Layout::RowMajor, None)?;
        let y_h = self.arena(DType::F32, state.clone(), Layout::RowMajor, None)?;
        let mut outputs = vec![y.t, y_h.t];
        let y_c = if lstm {
            let c = self.arena(DType::F32, state.clone(), Layout::RowMajor, None)?;
            outputs.push(c.t);
            Some(c)
        } else {
            None
        };
        if bad == 1 {
            if self.chance(1, 2)? {
                outputs.pop();
            } else {
                let extra = self.arena(DType::F32, state.clone(), Layout::RowMajor, None)?;
                outputs.push(extra.t);
            }
        }
        if bad == 6 && self.chance(1, 4)? {
            // An output that is also a graph input (one the op does not read).
            let o = self.range(1, outputs.len() - 1)?;
            self.spec.inputs.push(outputs[o]);
        } else if bad == 6 {
            // One output over another one or over the input (same offset or the same tensor).
            let o = self.range(1, outputs.len() - 1)?;
            let onto = if self.chance(1, 3)? { x.t } else { outputs[self.range(0, o - 1)?] };
            if self.chance(1, 3)? {
                outputs[o] = onto;
            } else {
                let at = self.spec.tensors[onto as usize].arena_offset;
                self.spec.tensors[outputs[o] as usize].arena_offset = at;
            }
        }
        self.op_outputs(kind, inputs, outputs, p);
        // Every output joins the history (h0 / c0 and residual partners); the chain's value last.
        if let Some(c) = y_c {
            self.push(c);
        }
        let (other, next) = if self.chance(1, 3)? { (y, y_h) } else { (y_h, y) };
        self.push(other);
        Ok(self.push(next))
    }

    fn step(&mut self, v: Value, kind: u16) -> Result<Value> {
        // An int16 value goes on as int8 into an op without an int16 form (now and then as it is:
        // the reader must refuse it).
        let int16_form = matches!(
            kind,
            op::CONV2D
                | op::DEPTHWISE_CONV2D
                | op::FULLY_CONNECTED
                | op::ADD
                | op::GLOBAL_AVERAGE_POOL
                | op::RESHAPE
                | op::REQUANTIZE
                | op::DEQUANTIZE
        );
        let v = if v.dtype == DType::I16 && !int16_form && !self.chance(1, 20)? {
            self.coerce_dtype(v, DType::I8)?
        } else {
            v
        };
        match kind {
            op::CONV2D => self.conv(v, false),
            op::DEPTHWISE_CONV2D => self.conv(v, true),
            op::FULLY_CONNECTED => self.fully_connected(v),
            op::ADD | op::MUL => self.binary(v, kind),
            op::CLAMP => self.clamp(v),
            op::LOOKUP | op::UNARY => self.activation(v, kind),
            op::TRANSPOSE | op::SLICE => self.movement(v, kind),
            op::RESIZE => self.resize(v),
            op::PAD => self.pad(v),
            op::CONV_TRANSPOSE => self.conv_transpose(v),
            op::MATMUL => self.matmul(v),
            op::BINARY => self.binary_fn(v),
            op::WHERE => self.select(v),
            op::REDUCE => self.reduce(v),
            op::NORMALIZE => self.normalize(v),
            op::GATHER => self.gather(v),
            op::LSTM | op::GRU => self.recurrent(v, kind),
            op::MAX_POOL | op::AVERAGE_POOL => self.pool(v, kind),
            op::GLOBAL_AVERAGE_POOL => self.global_pool(v),
            op::RESHAPE => self.reshape(v),
            op::CONCAT => self.concat(v),
            op::SOFTMAX => self.softmax(v),
            op::QUANTIZE => self.coerce_dtype(v, DType::I8).and_then(|x| self.clamp(x)),
            op::DEQUANTIZE => {
                // From int8 or (as it is) int16 codes.
                let x = if v.dtype == DType::I16 { v } else { self.coerce_dtype(v, DType::I8)? };
                self.coerce_dtype(x, DType::F32)
            }
            _ => self.requantize(v),
        }
    }

    /// Now and then, one value a rule must reject, set after the graph is built.
    fn sabotage(&mut self) -> Result<()> {
        let nt = self.spec.tensors.len();
        let no = self.spec.ops.len();
        match self.range(0, 5)? {
            0 if nt > 0 => {
                let t = self.range(0, nt - 1)?;
                let rank = self.spec.tensors[t].dims.len();
                if self.spec.tensors[t].data.is_none() && rank > 0 {
                    let d = self.range(0, rank - 1)?;
                    self.spec.tensors[t].dims[d] = *self.u.choose(&[0, 1, 2, 65535, 65536, 1 << 20])?;
                }
            }
            1 if no > 0 => {
                let o = self.range(0, no - 1)?;
                let slot = self.range(0, OP_PARAMS - 1)?;
                let value = *self.u.choose(&[0, 1, -1, 2, 63, 64, 65535, 65536, i32::MAX, i32::MIN])?;
                self.spec.ops[o].params[slot] = value;
            }
            2 if no > 0 => {
                // The output of an op over one of its arena inputs.
                let o = self.range(0, no - 1)?;
                let out = self.spec.ops[o].outputs[0] as usize;
                let input = self.spec.ops[o].inputs[0] as usize;
                self.spec.tensors[out].arena_offset = self.spec.tensors[input].arena_offset;
            }
            3 if nt > 0 => {
                let t = self.range(0, nt - 1)?;
                let scale = *self.u.choose(&[0.0, -1.0, f32::NAN, f32::INFINITY, 1e-30, 1e30])?;
                let zero_point = *self.u.choose(&[-129, 128, 0, 127, -128, i32::MIN])?;
                self.spec.tensors[t].scale = scale;
                self.spec.tensors[t].zero_point = zero_point;
            }
            4 => {
                let planned = self.spec.arena_size;
                let huge = [usize::MAX / 4, usize::MAX >> 24];
                self.spec.arena_size = *self.u.choose(&[0, 1, 64, planned.saturating_sub(1), huge[0], huge[1]])?;
            }
            _ if no > 0 => {
                // An operand swapped for another tensor.
                let o = self.range(0, no - 1)?;
                let n_in = self.spec.ops[o].inputs.len();
                let i = self.range(0, n_in - 1)?;
                self.spec.ops[o].inputs[i] = self.range(0, nt - 1)? as u32;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Every op kind of the format, for the chain to draw from.
pub const KINDS: [u16; 30] = [
    op::CONV2D,
    op::DEPTHWISE_CONV2D,
    op::FULLY_CONNECTED,
    op::ADD,
    op::MUL,
    op::CLAMP,
    op::MAX_POOL,
    op::AVERAGE_POOL,
    op::GLOBAL_AVERAGE_POOL,
    op::RESHAPE,
    op::CONCAT,
    op::SOFTMAX,
    op::QUANTIZE,
    op::DEQUANTIZE,
    op::REQUANTIZE,
    op::LOOKUP,
    op::UNARY,
    op::TRANSPOSE,
    op::SLICE,
    op::RESIZE,
    op::PAD,
    op::CONV_TRANSPOSE,
    op::MATMUL,
    op::BINARY,
    op::REDUCE,
    op::NORMALIZE,
    op::GATHER,
    op::LSTM,
    op::GRU,
    op::WHERE,
];

/// A random `.sparq` file: one f32 graph input (now and then an int8 or a second one), a chain
/// of 1 to 8 ops of random kinds (with the conversions they need in between), the last value
/// (and now and then an earlier one) as outputs.
pub fn generate(u: &mut Unstructured) -> Result<Vec<u8>> {
    let seed: u64 = u.arbitrary()?;
    let mut g = Gen { u, rng: SplitMix(seed), spec: ModelSpec::default(), arena_end: 0, history: Vec::new() };
    g.spec.name = "fuzz".into();
    let dims = match g.range(0, 4)? {
        0 => vec![g.dim(4)?, g.dim(64)?],
        1 => vec![g.dim(2)?, g.dim(3)?, g.dim(8)?],
        2 => vec![g.dim(32)?],
        _ => vec![g.dim(2)?, g.dim(8)?, g.dim(10)?, g.dim(10)?],
    };
    let input_dtype = if g.chance(1, 12)? { DType::I8 } else { DType::F32 };
    let mut v = g.arena(input_dtype, dims, Layout::RowMajor, None)?;
    g.spec.inputs.push(v.t);
    g.history.push(v.clone());
    if g.chance(1, 10)? {
        let second = g.arena(DType::F32, v.dims.clone(), Layout::RowMajor, None)?;
        g.spec.inputs.push(second.t);
        g.history.push(second);
    }
    let ops = g.range(1, 8)?;
    for _ in 0..ops {
        let kind = *g.u.choose(&KINDS)?;
        v = g.step(v, kind)?;
        if v.elements() > MAX_ELEMENTS {
            // Shrink back (files stay small and fast): a global average pool of its NHWC form.
            let x = g.coerce_nhwc(v)?;
            v = g.global_pool(x)?;
        }
        if g.u.is_empty() {
            break;
        }
    }
    if g.spec.ops.is_empty() {
        v = g.clamp(v)?;
    }
    g.spec.outputs.push(v.t);
    if g.chance(1, 8)? && g.history.len() > 2 {
        let extra = g.range(1, g.history.len() - 1)?;
        let t = g.history[extra].t;
        if !g.spec.outputs.contains(&t) {
            g.spec.outputs.push(t);
        }
    }
    g.spec.arena_size = g.arena_end.div_ceil(64) * 64;
    if g.chance(1, 5)? {
        g.sabotage()?;
    }
    Ok(g.spec.to_bytes())
}
