//! Resize family: nearest or bilinear resampling of the two spatial axes of a rank-4
//! `[N, C, H, W]` tensor (any layout), with ONNX's coordinate transformations and nearest
//! rounding modes. f32 both ways; int8 nearest (a copy: same quantization) and int8 bilinear
//! (format 1.5: same quantization, Q11 fixed-point weights, see [`LINEAR_BITS`]). int8 cubic runs
//! in f32 between a dequantize and a quantize (the compiler inserts them).

use super::{expect_inputs, invalid, same_quant, Decoder, Exec};
use crate::error::RuntimeError;
use crate::kernels::strided::logical_strides;
use sparq_format::layout::op;
use sparq_format::{DType, OpInfo, TensorInfo};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub len_in: usize,
    pub len_out: usize,
    pub scale: f32,
}

#[derive(Clone, Copy)]
pub struct Resize<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub linear: bool,
    /// Cubic: Keys' coefficient `a` and exclude_outside (mode 2; `linear` is false).
    pub cubic: Option<(f32, bool)>,
    pub coord: i32,
    pub nearest: i32,
    pub axes: [Axis; 2],
}

/// The input coordinate of output index `o` along `a` (ONNX `coordinate_transformation_mode`).
fn source(coord: i32, a: &Axis, o: usize) -> f32 {
    let o = o as f32;
    match coord {
        1 => o / a.scale,
        2 => {
            if a.len_out == 1 {
                0.0
            } else {
                o * (a.len_in - 1) as f32 / (a.len_out - 1) as f32
            }
        }
        3 => {
            if a.len_out > 1 {
                (o + 0.5) / a.scale - 0.5
            } else {
                0.0
            }
        }
        4 => (o + 0.5) / a.scale,
        5 => {
            // half_pixel_symmetric: half_pixel about the input's centre, shifted by how much the
            // integer output length differs from `scale * len_in`.
            let adjustment = a.len_out as f32 / (a.scale * a.len_in as f32);
            let offset = a.len_in as f32 / 2.0 * (1.0 - adjustment);
            offset + (o + 0.5) / a.scale - 0.5
        }
        _ => (o + 0.5) / a.scale - 0.5,
    }
}

/// Nearest input index (ONNX `nearest_mode`), clamped into the input. (libm: the rounding
/// functions of `f32` need std.)
fn nearest_index(mode: i32, v: f32, len: usize) -> usize {
    let half = (v - libm::truncf(v)).abs() == 0.5;
    let r = match mode {
        1 if half => libm::ceilf(v),
        2 => libm::floorf(v),
        3 => libm::ceilf(v),
        0 if half => libm::floorf(v),
        _ => libm::roundf(v),
    };
    (r.max(0.0) as usize).min(len - 1)
}

/// Fraction bits of the int8 bilinear weights: each axis' weight of its second tap is
/// `round_half_away(frac * 2^11)` in `[0, 2^11]`, so the two-axis sum of weights is exactly
/// `2^22` and `|acc| <= 128 * 2^22 < 2^31` (no i32 overflow).
pub const LINEAR_BITS: u32 = 11;
const LINEAR_ONE: i32 = 1 << LINEAR_BITS;

/// The two input indices and the Q11 weight of the second along an axis (int8 bilinear). The
/// source coordinate and its fraction are the f32 path's (IEEE operations, identical on every
/// ISA); `frac * 2^11` is exact in f32, and its rounding half away from zero is exact too.
pub fn linear_taps_q11(v: f32, len: usize) -> (usize, usize, i32) {
    let (i0, i1, frac) = linear_taps(v, len);
    let w = libm::roundf(frac * LINEAR_ONE as f32) as i32;
    (i0, i1, w.clamp(0, LINEAR_ONE))
}

/// Bilinear interpolation of four int8 codes with Q11 weights `wx`, `wy` (the second tap's):
/// exact i32 sums, one rounding half away from zero of `acc / 2^22`. The codes share one
/// quantization and the weights sum to `2^22`, so the zero point passes through unchanged.
#[inline(always)]
pub fn bilinear_i8(x00: i8, x01: i8, x10: i8, x11: i8, wx: i32, wy: i32) -> i8 {
    let top = x00 as i32 * (LINEAR_ONE - wx) + x01 as i32 * wx;
    let bottom = x10 as i32 * (LINEAR_ONE - wx) + x11 as i32 * wx;
    let acc = top * (LINEAR_ONE - wy) + bottom * wy;
    let half = 1i32 << (2 * LINEAR_BITS - 1);
    let q = if acc >= 0 { (acc + half) >> (2 * LINEAR_BITS) } else { -((-acc + half) >> (2 * LINEAR_BITS)) };
    q.clamp(-128, 127) as i8
}

/// The two input indices and the weight of the second for linear interpolation.
fn linear_taps(v: f32, len: usize) -> (usize, usize, f32) {
    let v = v.clamp(0.0, (len - 1) as f32);
    let i0 = libm::floorf(v) as usize;
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, v - i0 as f32)
}

impl<'a> Resize<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 1)?;
        let (x, y) = (d.input(o, 0), d.view.tensor(o.output(0)));
        if x.rank != 4 || y.rank != 4 || x.dims[..2] != y.dims[..2] {
            return Err(bad("resize takes [N, C, H, W] and keeps N and C"));
        }
        let p = &o.params;
        let mode = p[op::RESIZE_MODE];
        if !(0..=2).contains(&mode) {
            return Err(bad("unknown resize mode"));
        }
        let linear = mode == 1;
        let cubic = if mode == 2 {
            let a = o.param_f32(op::RESIZE_CUBIC_A);
            let exclude = match p[op::RESIZE_EXCLUDE_OUTSIDE] {
                0 => false,
                1 => true,
                _ => return Err(bad("exclude_outside must be 0 or 1")),
            };
            if !a.is_finite() {
                return Err(bad("the cubic coefficient must be finite"));
            }
            Some((a, exclude))
        } else {
            if p[op::RESIZE_CUBIC_A] != 0 || p[op::RESIZE_EXCLUDE_OUTSIDE] != 0 {
                return Err(bad("cubic parameters on a non-cubic resize"));
            }
            None
        };
        if x.dtype != y.dtype || !(x.dtype == DType::F32 || (x.dtype == DType::I8 && mode <= 1)) {
            return Err(bad("resize is f32, or int8 for nearest and linear"));
        }
        same_quant(o, &x, &y)?;
        let (coord, nearest) = (p[op::RESIZE_COORD], p[op::RESIZE_NEAREST]);
        if !(0..=5).contains(&coord) || !(0..=3).contains(&nearest) {
            return Err(bad("unknown coordinate transformation or nearest mode"));
        }
        let mut axes = [Axis { len_in: 0, len_out: 0, scale: 0.0 }; 2];
        for (k, slot) in [op::RESIZE_SCALE_H, op::RESIZE_SCALE_W].into_iter().enumerate() {
            let scale = o.param_f32(slot);
            if !(scale.is_finite() && scale > 0.0) {
                return Err(bad("resize scales must be positive and finite"));
            }
            axes[k] = Axis { len_in: x.dims[2 + k], len_out: y.dims[2 + k], scale };
        }
        Ok(Resize { x, y, linear, cubic, coord, nearest, axes })
    }

    pub fn kernel_name(&self) -> &'static str {
        if self.cubic.is_some() {
            "f32_resize_cubic_scalar"
        } else if self.linear && self.x.dtype == DType::I8 {
            "qs8_resize_linear_scalar"
        } else if self.linear {
            "f32_resize_linear_scalar"
        } else {
            "resize_nearest_scalar"
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 && self.linear {
            self.bilinear_q11(e.data::<i8>(x), e.out::<i8>(y))
        } else if x.dtype == DType::I8 {
            self.nearest_copy(e.data::<i8>(x), e.out::<i8>(y))
        } else if let Some((a, exclude)) = self.cubic {
            self.bicubic(e.data::<f32>(x), e.out::<f32>(y), a, exclude)
        } else if self.linear {
            self.bilinear(e.data::<f32>(x), e.out::<f32>(y))
        } else {
            self.nearest_copy(e.data::<f32>(x), e.out::<f32>(y))
        }
    }

    fn each_output(&self, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let (sx, sy) = (logical_strides(&self.x), logical_strides(&self.y));
        let d = &self.y.dims;
        for n in 0..d[0] {
            for c in 0..d[1] {
                for oy in 0..d[2] {
                    for ox in 0..d[3] {
                        let yo = n * sy[0] + c * sy[1] + oy * sy[2] + ox * sy[3];
                        f(n * sx[0] + c * sx[1], oy, ox, yo, 0);
                    }
                }
            }
        }
    }

    /// Nearest: the source row once per output row, the source column once per output pixel,
    /// then every batch and channel copied (one contiguous run per pixel in NHWC).
    fn nearest_copy<T: Copy>(&self, xd: &[T], yd: &mut [T]) {
        let (sx, sy) = (logical_strides(&self.x), logical_strides(&self.y));
        let [ah, aw] = &self.axes;
        let d = &self.y.dims;
        let c_all = d[1];
        for oy in 0..d[2] {
            let iy = nearest_index(self.nearest, source(self.coord, ah, oy), ah.len_in);
            for ox in 0..d[3] {
                let ix = nearest_index(self.nearest, source(self.coord, aw, ox), aw.len_in);
                for n in 0..d[0] {
                    let (xb, yb) = (n * sx[0] + iy * sx[2] + ix * sx[3], n * sy[0] + oy * sy[2] + ox * sy[3]);
                    if sx[1] == 1 && sy[1] == 1 {
                        yd[yb..yb + c_all].copy_from_slice(&xd[xb..xb + c_all]);
                    } else {
                        for c in 0..c_all {
                            yd[yb + c * sy[1]] = xd[xb + c * sx[1]];
                        }
                    }
                }
            }
        }
    }

    /// f32 bilinear: taps and weights once per output row and pixel, shared by every batch and
    /// channel.
    fn bilinear(&self, xd: &[f32], yd: &mut [f32]) {
        let (sx, sy) = (logical_strides(&self.x), logical_strides(&self.y));
        let [ah, aw] = &self.axes;
        let d = &self.y.dims;
        for oy in 0..d[2] {
            let (y0, y1, wy) = linear_taps(source(self.coord, ah, oy), ah.len_in);
            for ox in 0..d[3] {
                let (x0, x1, wx) = linear_taps(source(self.coord, aw, ox), aw.len_in);
                let (r0, r1, c0, c1) = (y0 * sx[2], y1 * sx[2], x0 * sx[3], x1 * sx[3]);
                for n in 0..d[0] {
                    for c in 0..d[1] {
                        let base = n * sx[0] + c * sx[1];
                        let at = |r: usize, col: usize| xd[base + r + col];
                        let top = at(r0, c0) + (at(r0, c1) - at(r0, c0)) * wx;
                        let bottom = at(r1, c0) + (at(r1, c1) - at(r1, c0)) * wx;
                        yd[n * sy[0] + c * sy[1] + oy * sy[2] + ox * sy[3]] = top + (bottom - top) * wy;
                    }
                }
            }
        }
    }

    /// int8 bilinear: the H taps and weights are computed once per output row, the W taps once
    /// per output column of that row and shared by every batch and channel (no table: the
    /// runtime does not allocate while running).
    fn bilinear_q11(&self, xd: &[i8], yd: &mut [i8]) {
        let (sx, sy) = (logical_strides(&self.x), logical_strides(&self.y));
        let [ah, aw] = &self.axes;
        let d = &self.y.dims;
        for oy in 0..d[2] {
            let (y0, y1, wy) = linear_taps_q11(source(self.coord, ah, oy), ah.len_in);
            for ox in 0..d[3] {
                let (x0, x1, wx) = linear_taps_q11(source(self.coord, aw, ox), aw.len_in);
                let (r0, r1) = (y0 * sx[2], y1 * sx[2]);
                let (c0, c1) = (x0 * sx[3], x1 * sx[3]);
                for n in 0..d[0] {
                    for c in 0..d[1] {
                        let base = n * sx[0] + c * sx[1];
                        let v = bilinear_i8(
                            xd[base + r0 + c0],
                            xd[base + r0 + c1],
                            xd[base + r1 + c0],
                            xd[base + r1 + c1],
                            wx,
                            wy,
                        );
                        yd[n * sy[0] + c * sy[1] + oy * sy[2] + ox * sy[3]] = v;
                    }
                }
            }
        }
    }

    fn bicubic(&self, xd: &[f32], yd: &mut [f32], a: f32, exclude: bool) {
        let sx = logical_strides(&self.x);
        let [ah, aw] = &self.axes;
        self.each_output(|base, oy, ox, yo, _| {
            let (ys, wy) = cubic_taps(source(self.coord, ah, oy), ah.len_in, a, exclude);
            let (xs, wx) = cubic_taps(source(self.coord, aw, ox), aw.len_in, a, exclude);
            let mut acc = 0.0;
            for (&iy, &cy) in ys.iter().zip(&wy) {
                let mut row = 0.0;
                for (&ix, &cx) in xs.iter().zip(&wx) {
                    row += cx * xd[base + iy * sx[2] + ix * sx[3]];
                }
                acc += cy * row;
            }
            yd[yo] = acc;
        });
    }
}

/// The four input indices (clamped: edge padding) and Keys' weights of cubic interpolation at
/// source coordinate `v`, as ONNX's reference computes them.
fn cubic_taps(v: f32, len: usize, a: f32, exclude: bool) -> ([usize; 4], [f32; 4]) {
    let mut i0 = libm::floorf(v);
    let mut t = v - i0;
    if t == 0.0 {
        // ONNX takes the four nearest inputs with ties to the lower index: a whole coordinate
        // is the third of its taps.
        t = 1.0;
        i0 -= 1.0;
    }
    let far = |d: f32| ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a;
    let near = |d: f32| ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0;
    let mut w = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
    let first = i0 as isize - 1;
    let mut idx = [0usize; 4];
    for k in 0..4 {
        let i = first + k as isize;
        if exclude && (i < 0 || i >= len as isize) {
            w[k] = 0.0;
        }
        idx[k] = i.clamp(0, len as isize - 1) as usize;
    }
    if exclude {
        let sum: f32 = w.iter().sum();
        for c in &mut w {
            *c /= sum;
        }
    }
    (idx, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Q11 kernel against the exact bilinear value of the same weights (f64, rounded half
    /// away from zero): equal on every weight pair of a sweep and on the code extremes; and
    /// within 0.63 codes of the value with the unrounded f32 fractions.
    #[test]
    fn bilinear_i8_rounds_the_exact_fixed_point_value_half_away_from_zero() {
        let codes = [(-128i8, 127i8, -128i8, 127i8), (5, -7, 100, -100), (-1, 0, 0, 0), (127, 127, 127, 127)];
        for &(a, b, c, d) in &codes {
            for wx in (0..=LINEAR_ONE).step_by(37).chain([0, 1, 1024, 2047, 2048]) {
                for wy in (0..=LINEAR_ONE).step_by(53).chain([0, 1, 1024, 2047, 2048]) {
                    let (fx, fy) = (wx as f64 / 2048.0, wy as f64 / 2048.0);
                    let top = a as f64 * (1.0 - fx) + b as f64 * fx;
                    let bottom = c as f64 * (1.0 - fx) + d as f64 * fx;
                    let exact = top * (1.0 - fy) + bottom * fy;
                    assert_eq!(bilinear_i8(a, b, c, d, wx, wy) as f64, exact.round(), "{a} {b} {c} {d} {wx} {wy}");
                }
            }
        }
        // A constant stays itself at any weights.
        assert!((0..=LINEAR_ONE).all(|w| bilinear_i8(-77, -77, -77, -77, w, LINEAR_ONE - w) == -77));
        // Weights from fractions: rounded half away from zero, in [0, 2048].
        assert_eq!(linear_taps_q11(0.25, 4), (0, 1, 512));
        assert_eq!(linear_taps_q11(2.5 + 1.0 / 4096.0, 4), (2, 3, 1025)); // 1024.5 -> 1025
        assert_eq!(linear_taps_q11(2.5 + 1.0 / 8192.0, 4), (2, 3, 1024)); // 1024.25
        assert_eq!(linear_taps_q11(-3.0, 4), (0, 1, 0));
        assert_eq!(linear_taps_q11(9.0, 4), (3, 3, 0));
        let v = 1.0 + 0.9999f32;
        let (_, _, w) = linear_taps_q11(v, 4);
        assert_eq!(w, 2048);
    }
}
