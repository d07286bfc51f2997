//! Transposed convolution (f32): every output pixel gathers the input pixels whose stride-spread
//! window covers it (`oy + pad_top - ky * dilation = iy * stride`), so each output is written once,
//! bias first, then clamped. int8 models run it in f32 between a dequantize and a quantize.

use super::{check_clamp_f32, check_constant, expect_inputs, invalid, Decoder, Exec, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::strided::logical_strides;
use sparq_format::layout::op::{self, window};
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

#[derive(Clone, Copy)]
pub struct ConvTranspose<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub w: &'a [f32],
    pub bias: &'a [f32],
    /// kernel h/w, stride h/w, pad top/left, dilation h/w, groups.
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub pad: [usize; 2],
    pub d: [usize; 2],
    pub groups: usize,
    pub lo: f32,
    pub hi: f32,
}

impl<'a> ConvTranspose<'a> {
    pub(crate) fn decode(dc: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 3)?;
        let (x, w, b, y) = (dc.input(o, 0), dc.input(o, 1), dc.input(o, 2), dc.view.tensor(o.output(0)));
        if x.dtype != DType::F32 || y.dtype != DType::F32 {
            return Err(bad("transposed convolution is f32"));
        }
        if x.storage != Storage::Arena || x.layout != Layout::Nhwc || y.layout != Layout::Nhwc {
            return Err(bad("input and output must be NHWC arena tensors"));
        }
        let p = &o.params;
        let val = |slot: usize, lo: i32, hi: i32| {
            if (lo..=hi).contains(&p[slot]) {
                Ok(p[slot] as usize)
            } else {
                Err(bad("window parameter out of range"))
            }
        };
        let big = 1 << 16;
        let k = [val(window::KERNEL_H, 1, big)?, val(window::KERNEL_W, 1, big)?];
        let s = [val(window::STRIDE_H, 1, big)?, val(window::STRIDE_W, 1, big)?];
        let d = [val(window::DILATION_H, 1, big)?, val(window::DILATION_W, 1, big)?];
        let pad = [val(window::PAD_TOP, 0, big)?, val(window::PAD_LEFT, 0, big)?];
        let pad_end = [val(window::PAD_BOTTOM, 0, big)?, val(window::PAD_RIGHT, 0, big)?];
        let groups = val(window::GROUPS, 1, big)?;
        let (cin, cout) = (x.dims[1], y.dims[1]);
        if cin % groups != 0 || cout % groups != 0 || x.dims[0] != y.dims[0] {
            return Err(bad("groups must divide input and output channels; batch kept"));
        }
        if w.storage != Storage::Constant || w.dtype != DType::F32 || w.shape() != [cin, cout / groups, k[0], k[1]] {
            return Err(bad("weights must be an f32 constant [C_in, C_out/groups, KH, KW]"));
        }
        if (cin / groups).saturating_mul(k[0] * k[1]) > MAX_REDUCTION {
            return Err(bad("reduction longer than 65536 taps"));
        }
        check_constant(o, &b, DType::F32, cout, "bias must be an f32 constant with one value per output channel")?;
        for a in 0..2 {
            // Full output: (in - 1) * stride + dilation * (k - 1) + 1, plus output padding, minus pads.
            let full = (x.dims[2 + a] - 1) as u64 * s[a] as u64 + d[a] as u64 * (k[a] - 1) as u64 + 1;
            let extra = (y.dims[2 + a] as u64 + pad[a] as u64 + pad_end[a] as u64).checked_sub(full);
            if extra.is_none_or(|e| e >= s[a].max(d[a]) as u64) {
                return Err(bad("output size does not match the window (and an output padding below the stride)"));
            }
        }
        check_clamp_f32(o)?;
        Ok(ConvTranspose {
            x,
            y,
            w: dc.constant(&w),
            bias: dc.constant(&b),
            k,
            s,
            pad,
            d,
            groups,
            lo: o.param_f32(op::ACT_MIN),
            hi: o.param_f32(op::ACT_MAX),
        })
    }

    pub fn kernel_name(&self) -> &'static str {
        "f32_conv_transpose_scalar"
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (xd, yd) = (e.data::<f32>(&self.x), e.out::<f32>(&self.y));
        let (sx, sy) = (logical_strides(&self.x), logical_strides(&self.y));
        let (xdim, ydim) = (&self.x.dims, &self.y.dims);
        let (cin_g, cout_g) = (xdim[1] / self.groups, ydim[1] / self.groups);
        // Input index along an axis for output index `o` and tap `t`, if it lands on one.
        let tap = |a: usize, o: usize, t: usize| -> Option<usize> {
            let v = (o + self.pad[a]).checked_sub(t * self.d[a])?;
            (v % self.s[a] == 0 && v / self.s[a] < xdim[2 + a]).then(|| v / self.s[a])
        };
        for n in 0..ydim[0] {
            for oy in 0..ydim[2] {
                for ox in 0..ydim[3] {
                    for co in 0..ydim[1] {
                        let (g, col) = (co / cout_g, co % cout_g);
                        let mut acc = self.bias[co];
                        for ky in 0..self.k[0] {
                            let Some(iy) = tap(0, oy, ky) else { continue };
                            for kx in 0..self.k[1] {
                                let Some(ix) = tap(1, ox, kx) else { continue };
                                let base = n * sx[0] + iy * sx[2] + ix * sx[3];
                                for ci in g * cin_g..(g + 1) * cin_g {
                                    let wv = self.w[((ci * cout_g + col) * self.k[0] + ky) * self.k[1] + kx];
                                    acc += xd[base + ci * sx[1]] * wv;
                                }
                            }
                        }
                        yd[n * sy[0] + co * sy[1] + oy * sy[2] + ox * sy[3]] = acc.clamp(self.lo, self.hi);
                    }
                }
            }
        }
    }
}
