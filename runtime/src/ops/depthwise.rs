//! Depthwise convolution family: one filter per channel, weights `[1, KH, KW, C]`, int8 or f32,
//! NHWC activations.

use super::conv::ConvKernel;
use super::{invalid, output_stage, window_geometry, Decoder, Exec, OutputStage, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::conv::ConvGeometry;
use crate::kernels::registry::{resolve, Query, F32_DWCONV, QS16_DWCONV, QS8_DWCONV};
use sparq_format::{DType, Layout, OpInfo, Storage, TensorInfo};

#[derive(Clone, Copy)]
pub struct Depthwise<'a> {
    pub x: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub geometry: ConvGeometry,
    pub kernel: ConvKernel<'a>,
}

impl<'a> Depthwise<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        let (x, w, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        let mut g = window_geometry(o, &x, &y)?;
        let (cin, cout) = (g.in_c, g.out_c);
        if cin == 0 || cout % cin != 0 {
            return Err(bad("groups must divide input and output channels"));
        }
        g.groups = cin;
        if cin != cout || w.shape() != [1, g.kernel_h, g.kernel_w, cin] {
            return Err(bad("depthwise weights must be [1, KH, KW, C] with C = input = output channels"));
        }
        if w.layout != Layout::RowMajor {
            return Err(bad(
                "weights must be row-major, or packed / block-sparse for an int8 convolution with one group",
            ));
        }
        if w.storage != Storage::Constant || (w.dtype != x.dtype && x.dtype != DType::I16) {
            return Err(bad("weights must be a constant of the input's dtype (int8 for an int16 input)"));
        }
        if g.kernel_h * g.kernel_w > MAX_REDUCTION {
            return Err(bad("reduction longer than 65536 taps (int32 accumulator could overflow)"));
        }
        let q = Query { geometry: g, pack: None, k: g.kernel_h * g.kernel_w };
        let kernel = match output_stage(d, o, &x, &y, cout)? {
            OutputStage::Int8(rq) => {
                let e = resolve(QS8_DWCONV, d.features, &q);
                ConvKernel::Direct { name: e.name, f: e.f, w: d.constant(&w), rq }
            }
            OutputStage::Int16(rq) => {
                let wv: &[i8] = d.constant(&w);
                if !crate::kernels::qs16::fits_i32(wv, rq.bias, cin, g.kernel_h * g.kernel_w, true) {
                    return Err(bad(super::QS16_OVERFLOW));
                }
                let e = resolve(QS16_DWCONV, d.features, &q);
                ConvKernel::Int16Dw { name: e.name, f: e.f, w: wv, rq }
            }
            OutputStage::F32 { bias, lo, hi } => {
                let e = resolve(F32_DWCONV, d.features, &q);
                ConvKernel::F32 { name: e.name, f: e.f, w: d.constant(&w), bias, lo, hi }
            }
        };
        Ok(Depthwise { x, y, geometry: g, kernel })
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        self.kernel.run(e, &self.geometry, &self.x, &self.y)
    }
}
