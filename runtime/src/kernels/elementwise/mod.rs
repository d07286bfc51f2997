//! Elementwise kernels over strided (layout-agnostic) operands, with numpy broadcasting; the
//! scalar specifications here, the SIMD kernels of contiguous operands per ISA beside them.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::strided::{walk, walk_rows, R};
use crate::quant::{dequantize_i8, quantize_f32, requantize, requantize_to_i8};

/// Int8 add: `out = zp_out + round(M_a (a - zp_a) + M_b (b - zp_b))` with `M_a ~= mult_a 2^-shift`,
/// `M_b ~= mult_b 2^-shift`: both terms are summed exactly in 64 bits and rounded once
/// (half toward +infinity), then clamped to `[act_min, act_max]`.
#[derive(Clone, Copy, Debug)]
pub struct AddParams {
    pub zp_a: i32,
    pub zp_b: i32,
    pub zp_out: i32,
    pub mult_a: i32,
    pub mult_b: i32,
    pub shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

#[inline(always)]
pub fn add_i8_one(p: &AddParams, a: i8, b: i8) -> i8 {
    let sum = (a as i32 - p.zp_a) as i64 * p.mult_a as i64 + (b as i32 - p.zp_b) as i64 * p.mult_b as i64;
    let v = ((sum + (1i64 << (p.shift - 1))) >> p.shift).clamp(-1 << 16, 1 << 16) as i32 + p.zp_out;
    v.clamp(p.act_min, p.act_max) as i8
}

/// `add_i8_one` over contiguous operands of the same shape and layout.
pub fn qs8_add_contiguous_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    for ((o, &x), &z) in y.iter_mut().zip(a).zip(b) {
        *o = add_i8_one(p, x, z);
    }
}

/// Int16 add (format 1.6): [`add_i8_one`]'s arithmetic on int16 codes, the sum in i64, the
/// shifted result clamped to +-2^20 before the zero point and the int16 activation clamp.
#[inline(always)]
pub fn add_i16_one(p: &AddParams, a: i16, b: i16) -> i16 {
    let sum = (a as i32 - p.zp_a) as i64 * p.mult_a as i64 + (b as i32 - p.zp_b) as i64 * p.mult_b as i64;
    let v = ((sum + (1i64 << (p.shift - 1))) >> p.shift).clamp(-1 << 20, 1 << 20) as i32 + p.zp_out;
    v.clamp(p.act_min, p.act_max) as i16
}

/// [`add_i16_one`] over operands of one shape and layout.
pub fn qs16_add_contiguous_scalar(a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    for ((o, &x), &z) in y.iter_mut().zip(a).zip(b) {
        *o = add_i16_one(p, x, z);
    }
}

pub fn qs16_add_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    walk(dims, st, |o| y[o[2]] = add_i16_one(p, a[o[0]], b[o[1]]));
}

pub fn qs8_add_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    walk(dims, st, |o| y[o[2]] = add_i8_one(p, a[o[0]], b[o[1]]));
}

/// Int8 multiply: `out = zp_out + requantize((a - zp_a)(b - zp_b), mult, shift)`, clamped.
#[derive(Clone, Copy, Debug)]
pub struct MulParams {
    pub zp_a: i32,
    pub zp_b: i32,
    pub zp_out: i32,
    pub mult: i32,
    pub shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// `qs8_mul_scalar` over contiguous operands of the same shape and layout.
pub fn qs8_mul_contiguous_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    for ((o, &x), &z) in y.iter_mut().zip(a).zip(b) {
        let prod = (x as i32 - p.zp_a) * (z as i32 - p.zp_b);
        *o = requantize_to_i8(prod, p.mult, p.shift, p.zp_out, p.act_min, p.act_max);
    }
}

pub fn qs8_mul_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    walk(dims, st, |o| {
        let prod = (a[o[0]] as i32 - p.zp_a) * (b[o[1]] as i32 - p.zp_b);
        y[o[2]] = requantize_to_i8(prod, p.mult, p.shift, p.zp_out, p.act_min, p.act_max);
    });
}

pub fn f32_add_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[f32], b: &[f32], y: &mut [f32], lo: f32, hi: f32) {
    walk(dims, st, |o| y[o[2]] = (a[o[0]] + b[o[1]]).clamp(lo, hi));
}

pub fn f32_mul_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[f32], b: &[f32], y: &mut [f32], lo: f32, hi: f32) {
    walk(dims, st, |o| y[o[2]] = (a[o[0]] * b[o[1]]).clamp(lo, hi));
}

/// Strided copy with a per-element map (reshape, layout change, concat piece, clamp, quantize...).
#[inline]
pub fn map_strided<A: Copy, B>(dims: &[usize; R], st: &[[usize; R]; 2], x: &[A], y: &mut [B], f: impl Fn(A) -> B) {
    walk(dims, st, |o| y[o[1]] = f(x[o[0]]));
}

pub fn quantize(x: f32, scale: f32, zp: i32) -> i8 {
    quantize_f32(x, scale, zp)
}

/// `quantize` over a contiguous slice: the reference for the kernel sets' vector forms.
pub fn qs8_quantize_scalar(x: &[f32], y: &mut [i8], scale: f32, zp: i32) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = quantize_f32(v, scale, zp);
    }
}

/// A conversion between int8 and int16 codes (REQUANTIZE, format 1.6): `clamp(zp_out + round((q -
/// zp_in) mult / 2^shift), output range)` ([`crate::quant::requantize_code`]).
#[derive(Clone, Copy, Debug)]
pub struct Rescale {
    pub zp_in: i32,
    pub zp_out: i32,
    pub mult: i32,
    pub shift: i32,
}

/// Int8 codes to int16 ones over contiguous slices: the reference of the vector forms.
pub fn qs16_widen_scalar(x: &[i8], y: &mut [i16], p: &Rescale) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = crate::quant::requantize_code(v as i32, p.zp_in, p.zp_out, p.mult, p.shift, -32768, 32767) as i16;
    }
}

/// Int16 codes to int8 ones over contiguous slices: the reference of the vector forms.
pub fn qs16_narrow_scalar(x: &[i16], y: &mut [i8], p: &Rescale) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = crate::quant::requantize_code(v as i32, p.zp_in, p.zp_out, p.mult, p.shift, -128, 127) as i8;
    }
}

/// [`crate::quant::quantize_f32_i16`] over a contiguous slice (format 1.6): the reference for
/// the kernel sets' vector forms.
pub fn qs16_quantize_scalar(x: &[f32], y: &mut [i16], scale: f32) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o = crate::quant::quantize_f32_i16(v, scale);
    }
}

/// [`crate::quant::quantize_f32_i16`] over a strided walk (format 1.6: an int16 model input):
/// [`quantize_strided_as`].
pub fn quantize_strided_i16(
    dims: &[usize; R],
    st: &[[usize; R]; 2],
    x: &[f32],
    y: &mut [i16],
    scale: f32,
    slice: impl Fn(&[f32], &mut [i16]),
) {
    quantize_strided_as(dims, st, x, y, |v| crate::quant::quantize_f32_i16(v, scale), slice)
}

/// `quantize` over a strided walk: [`quantize_strided_as`].
pub fn quantize_strided(
    dims: &[usize; R],
    st: &[[usize; R]; 2],
    x: &[f32],
    y: &mut [i8],
    scale: f32,
    zp: i32,
    slice: impl Fn(&[f32], &mut [i8]),
) {
    quantize_strided_as(dims, st, x, y, |v| quantize_f32(v, scale, zp), slice)
}

/// Quantization (`one` per value, `slice` a kernel set's contiguous form of it) over a strided
/// walk: runs that are contiguous in `x` (the usual NCHW -> NHWC input conversion) are quantized
/// as slices, then scattered.
/// Output codes of [`quantize_strided_as`], with how `n` pixels of three interleaved channels
/// are stored from their three channel rows.
pub trait Code: Copy + Default {
    fn store3(dst: &mut [Self], rows: [&[Self]; 3], n: usize);
}

impl Code for i8 {
    /// One 4-byte store per pixel, each overwriting the previous pixel's spare byte.
    fn store3(dst: &mut [i8], [b0, b1, b2]: [&[i8]; 3], n: usize) {
        for i in 0..n - 1 {
            let word = u32::from_le_bytes([b0[i] as u8, b1[i] as u8, b2[i] as u8, 0]);
            dst[3 * i..3 * i + 4].copy_from_slice(&word.to_le_bytes().map(|b| b as i8));
        }
        dst[3 * (n - 1)..3 * n].copy_from_slice(&[b0[n - 1], b1[n - 1], b2[n - 1]]);
    }
}

impl Code for i16 {
    fn store3(dst: &mut [i16], [b0, b1, b2]: [&[i16]; 3], n: usize) {
        for (i, px) in dst[..3 * n].chunks_exact_mut(3).enumerate() {
            px.copy_from_slice(&[b0[i], b1[i], b2[i]]);
        }
    }
}

pub fn quantize_strided_as<T: Code>(
    dims: &[usize; R],
    st: &[[usize; R]; 2],
    x: &[f32],
    y: &mut [T],
    one: impl Fn(f32) -> T,
    slice: impl Fn(&[f32], &mut [T]),
) {
    const CHUNK: usize = 256;
    let mut buf = [T::default(); CHUNK];
    // Visit the outer axes in order of decreasing output stride (an elementwise map may go in
    // any order): the NCHW -> NHWC input conversion then fills one output row's channels one
    // after the other while the row is in L1, instead of sweeping the whole image per channel.
    let mut order: [usize; R] = core::array::from_fn(|d| d);
    order[..R - 1].sort_unstable_by_key(|&d| (dims[d] > 1, core::cmp::Reverse(st[1][d])));
    let dims: [usize; R] = core::array::from_fn(|d| dims[order[d]]);
    let st: [[usize; R]; 2] = core::array::from_fn(|k| core::array::from_fn(|d| st[k][order[d]]));
    // Three channels interleaved in the output (NCHW -> NHWC RGB, the usual image input):
    // quantize the three input rows of each output row, then write the row in order.
    if dims[R - 2] == 3 && st[1][R - 2] == 1 && st[1][R - 1] == 3 && st[0][R - 1] == 1 {
        let mut bufs = [[T::default(); CHUNK]; 3];
        let mut outer = dims;
        outer[R - 2] = 1;
        walk_rows(&outer, &st, |base, len, _| {
            let mut start = 0;
            while start < len {
                let n = CHUNK.min(len - start);
                for (ch, b) in bufs.iter_mut().enumerate() {
                    slice(&x[base[0] + ch * st[0][R - 2] + start..][..n], &mut b[..n]);
                }
                let [b0, b1, b2] = &bufs;
                T::store3(&mut y[base[1] + start * 3..][..n * 3], [&b0[..n], &b1[..n], &b2[..n]], n);
                start += n;
            }
        });
        return;
    }
    walk_rows(&dims, &st, |base, len, step| {
        if step[0] != 1 {
            for i in 0..len {
                y[base[1] + i * step[1]] = one(x[base[0] + i * step[0]]);
            }
            return;
        }
        let mut start = 0;
        while start < len {
            let n = CHUNK.min(len - start);
            if step[1] == 1 {
                slice(&x[base[0] + start..][..n], &mut y[base[1] + start..][..n]);
            } else {
                slice(&x[base[0] + start..][..n], &mut buf[..n]);
                // One bounds check for the whole strided run, then plain stores.
                let dst = &mut y[base[1] + start * step[1]..][..(n - 1) * step[1] + 1];
                for (d, &b) in dst.iter_mut().step_by(step[1]).zip(&buf[..n]) {
                    *d = b;
                }
            }
            start += n;
        }
    });
}

pub fn dequantize(q: i8, scale: f32, zp: i32) -> f32 {
    dequantize_i8(q, scale, zp)
}

/// Int8 to int8 at another scale: `zp_out + requantize(q - zp_in, mult, shift)`.
#[inline(always)]
pub fn requantize_i8(q: i8, zp_in: i32, zp_out: i32, mult: i32, shift: i32) -> i8 {
    (requantize(q as i32 - zp_in, mult, shift) + zp_out).clamp(-128, 127) as i8
}

/// The BINARY op's f32 functions (`sparq_format::layout::op::binary` codes); min and max give NaN
/// when either operand is NaN (numpy's `minimum`/`maximum`).
#[inline(always)]
pub fn binary_f32(function: i32, a: f32, b: f32) -> f32 {
    use sparq_format::layout::op::binary as f;
    match function {
        f::SUB => a - b,
        f::DIV => a / b,
        f::MIN | f::MAX if a.is_nan() || b.is_nan() => f32::NAN,
        f::MIN => a.min(b),
        f::MAX => a.max(b),
        f::POW => libm::powf(a, b),
        f::EQUAL => (a == b) as i32 as f32,
        f::LESS => (a < b) as i32 as f32,
        f::GREATER => (a > b) as i32 as f32,
        f::LESS_OR_EQUAL => (a <= b) as i32 as f32,
        _ => (a >= b) as i32 as f32,
    }
}

pub fn f32_binary_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[f32], b: &[f32], y: &mut [f32], function: i32) {
    walk(dims, st, |o| y[o[2]] = binary_f32(function, a[o[0]], b[o[1]]));
}

/// Int8 min or max of codes that share one quantization.
pub fn qs8_minmax_scalar(dims: &[usize; R], st: &[[usize; R]; 3], a: &[i8], b: &[i8], y: &mut [i8], function: i32) {
    let max = function == sparq_format::layout::op::binary::MAX;
    walk(dims, st, |o| y[o[2]] = if max { a[o[0]].max(b[o[1]]) } else { a[o[0]].min(b[o[1]]) });
}
