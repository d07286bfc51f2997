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
        let linear = match p[op::RESIZE_MODE] {
            0 => false,
            1 => true,
            _ => return Err(bad("unknown resize mode")),
        };
        if x.dtype != y.dtype || !(x.dtype == DType::F32 || (x.dtype == DType::I8 && !linear)) {
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
        Ok(Resize { x, y, linear, coord, nearest, axes })
    }

    pub fn kernel_name(&self) -> &'static str {
        if self.linear {
            "f32_resize_linear_scalar"
        } else {
            "resize_nearest_scalar"
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (x, y) = (&self.x, &self.y);
        if x.dtype == DType::I8 {
            self.nearest_copy(e.data::<i8>(x), e.out::<i8>(y))
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
}
