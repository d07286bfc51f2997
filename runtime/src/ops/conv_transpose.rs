//! Transposed convolution, f32 or int8 (format 1.5): every output pixel gathers the input pixels
//! whose stride-spread window covers it (`oy + pad_top - ky * dilation = iy * stride`), so each
//! output is written once: bias first, then the taps, then the clamp (f32) or CONV2D's
//! requantization with its per-channel multipliers (int8: `acc = bias + sum (x - zp_x) w` in
//! i32, `Requant::apply`).

use super::{invalid, output_stage, Decoder, Exec, OutputStage, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::conv::Requant;
use crate::kernels::strided::logical_strides;
use sparq_format::layout::op::window;
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

/// The weights and output stage: f32 (bias, clamp) or int8 (per-channel requantization).
#[derive(Clone, Copy)]
pub enum ConvTransposeKernel<'a> {
    F32 { w: &'a [f32], bias: &'a [f32], lo: f32, hi: f32 },
    Qs8 { w: &'a [i8], rq: Requant<'a> },
}

#[derive(Clone, Copy)]
pub struct ConvTranspose<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub kernel: ConvTransposeKernel<'a>,
    /// kernel h/w, stride h/w, pad top/left, dilation h/w, groups.
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub pad: [usize; 2],
    pub d: [usize; 2],
    pub groups: usize,
}

impl<'a> ConvTranspose<'a> {
    pub(crate) fn decode(dc: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let (x, w, y) = (dc.input(o, 0), dc.input(o, 1), dc.view.tensor(o.output(0)));
        if x.dtype != y.dtype || x.dtype == DType::I32 {
            return Err(bad("transposed convolution is f32 or int8, input and output alike"));
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
        if w.storage != Storage::Constant
            || w.dtype != x.dtype
            || w.layout != Layout::RowMajor
            || w.shape() != [cin, cout / groups, k[0], k[1]]
        {
            return Err(bad("weights must be a row-major constant [C_in, C_out/groups, KH, KW] of the input's dtype"));
        }
        if (cin / groups).saturating_mul(k[0] * k[1]) > MAX_REDUCTION {
            return Err(bad("reduction longer than 65536 taps"));
        }
        for a in 0..2 {
            // Full output: (in - 1) * stride + dilation * (k - 1) + 1, plus output padding, minus pads.
            let full = (x.dims[2 + a] - 1) as u64 * s[a] as u64 + d[a] as u64 * (k[a] - 1) as u64 + 1;
            let extra = (y.dims[2 + a] as u64 + pad[a] as u64 + pad_end[a] as u64).checked_sub(full);
            if extra.is_none_or(|e| e >= s[a].max(d[a]) as u64) {
                return Err(bad("output size does not match the window (and an output padding below the stride)"));
            }
        }
        // f32: x, w, bias and the f32 clamp; int8: x, w, bias, multipliers, shifts (CONV2D's).
        let kernel = match output_stage(dc, o, &x, &y, cout)? {
            OutputStage::F32 { bias, lo, hi } => ConvTransposeKernel::F32 { w: dc.constant(&w), bias, lo, hi },
            OutputStage::Int8(rq) => ConvTransposeKernel::Qs8 { w: dc.constant(&w), rq },
            OutputStage::Int16(_) => return Err(invalid(o, "ConvTranspose has no int16 form")),
        };
        Ok(ConvTranspose { x, y, kernel, k, s, pad, d, groups })
    }

    pub fn kernel_name(&self) -> &'static str {
        match self.kernel {
            ConvTransposeKernel::F32 { .. } => "f32_conv_transpose_scalar",
            ConvTransposeKernel::Qs8 { .. } => "qs8_conv_transpose_scalar",
        }
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        match self.kernel {
            ConvTransposeKernel::F32 { w, bias, lo, hi } => {
                let (xd, yd) = (e.data::<f32>(&self.x), e.out::<f32>(&self.y));
                self.gather(
                    |co| bias[co],
                    |acc, xi, wi| *acc += xd[xi] * w[wi],
                    |(_, at), acc| yd[at] = acc.clamp(lo, hi),
                );
            }
            ConvTransposeKernel::Qs8 { w, ref rq } => {
                let (xd, yd) = (e.data::<i8>(&self.x), e.out::<i8>(&self.y));
                let zp = rq.input_zero_point;
                // i32 sums wrap as CONV2D's kernels do (only reachable at the longest reductions).
                self.gather(
                    |co| rq.bias[co],
                    |acc, xi, wi| *acc = acc.wrapping_add((xd[xi] as i32 - zp) * w[wi] as i32),
                    |(co, at), acc| yd[at] = rq.apply(co, acc),
                );
            }
        }
    }

    /// The loop both element types share: for every output element, `init(co)`, then `add_tap(acc,
    /// x index, w index)` over the taps that land on an input, then `store((co, y index), acc)`.
    #[inline(always)]
    fn gather<A: Copy>(
        &self,
        init: impl Fn(usize) -> A,
        mut add_tap: impl FnMut(&mut A, usize, usize),
        mut store: impl FnMut((usize, usize), A),
    ) {
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
                        let mut acc = init(co);
                        for ky in 0..self.k[0] {
                            let Some(iy) = tap(0, oy, ky) else { continue };
                            for kx in 0..self.k[1] {
                                let Some(ix) = tap(1, ox, kx) else { continue };
                                let base = n * sx[0] + iy * sx[2] + ix * sx[3];
                                for ci in g * cin_g..(g + 1) * cin_g {
                                    let wi = ((ci * cout_g + col) * self.k[0] + ky) * self.k[1] + kx;
                                    add_tap(&mut acc, base + ci * sx[1], wi);
                                }
                            }
                        }
                        store((co, n * sy[0] + co * sy[1] + oy * sy[2] + ox * sy[3]), acc);
                    }
                }
            }
        }
    }
}
