//! Resize family: nearest or bilinear resampling of the two spatial axes of a rank-4
//! `[N, C, H, W]` tensor (any layout), with ONNX's coordinate transformations and nearest
//! rounding modes. f32 both ways; int8 nearest (a copy: same quantization). int8 bilinear runs in
//! f32 between a dequantize and a quantize (the compiler inserts them).

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
        if x.dtype != y.dtype || !(x.dtype == DType::F32 || (x.dtype == DType::I8 && mode == 0)) {
            return Err(bad("resize is f32, or int8 for nearest"));
        }
        same_quant(o, &x, &y)?;
        let (coord, nearest) = (p[op::RESIZE_COORD], p[op::RESIZE_NEAREST]);
        if !(0..=4).contains(&coord) || !(0..=3).contains(&nearest) {
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
        } else if self.linear {
            "f32_resize_linear_scalar"
        } else {
            "resize_nearest_scalar"
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 {
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

    fn nearest_copy<T: Copy>(&self, xd: &[T], yd: &mut [T]) {
        let sx = logical_strides(&self.x);
        let [ah, aw] = &self.axes;
        self.each_output(|base, oy, ox, yo, _| {
            let iy = nearest_index(self.nearest, source(self.coord, ah, oy), ah.len_in);
            let ix = nearest_index(self.nearest, source(self.coord, aw, ox), aw.len_in);
            yd[yo] = xd[base + iy * sx[2] + ix * sx[3]];
        });
    }

    fn bilinear(&self, xd: &[f32], yd: &mut [f32]) {
        let sx = logical_strides(&self.x);
        let [ah, aw] = &self.axes;
        self.each_output(|base, oy, ox, yo, _| {
            let (y0, y1, wy) = linear_taps(source(self.coord, ah, oy), ah.len_in);
            let (x0, x1, wx) = linear_taps(source(self.coord, aw, ox), aw.len_in);
            let at = |iy: usize, ix: usize| xd[base + iy * sx[2] + ix * sx[3]];
            let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * wx;
            let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * wx;
            yd[yo] = top + (bottom - top) * wy;
        });
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
