//! Layouts: weight reorderings from ONNX's `[O, I/g, KH, KW]` to the runtime's channel-last
//! forms, layout tags, and the variants of each IR tensor (dtype x layout) with the
//! Quantize / Dequantize / layout-conversion ops inserted where a consumer wants a variant its
//! producer did not write.

use super::state::Lowerer;
use super::write::{bytes_f32, bytes_i8};
use crate::error::{CompileError, Result};
use crate::ir::Range;
use crate::quant::{act_qparams, requant, QParams};
use sparq_format::layout::op as rop;
use sparq_format::layout::OP_PARAMS;
use sparq_format::{DType, Layout};
use sparq_runtime::quant::quantize_f32;

/// `[O, I/g, KH, KW]` -> `[O, KH, KW, I/g]`.
pub(super) fn ohwi<T: Copy + Default>(w: &[T], shape: &[usize]) -> Vec<T> {
    let (o, i, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![T::default(); w.len()];
    for a in 0..o {
        for b in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((a * kh + y) * kw + x) * i + b] = w[((a * i + b) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// Depthwise `[C, 1, KH, KW]` -> `[1, KH, KW, C]`.
pub(super) fn hwc(w: &[f32], shape: &[usize]) -> Vec<f32> {
    let (c, kh, kw) = (shape[0], shape[2], shape[3]);
    let mut out = vec![0f32; w.len()];
    for a in 0..c {
        for y in 0..kh {
            for x in 0..kw {
                out[(y * kw + x) * c + a] = w[(a * kh + y) * kw + x];
            }
        }
    }
    out
}

/// Transposed-convolution weights `[C_in, C_out/g, KH, KW]` (ONNX order) with their index in
/// output-channel order `[C_out, C_in/g, KH, KW]` (each output channel's taps contiguous, the
/// order `quantize_per_channel` reads): `(f(w) in channel order, channel-order index of each
/// ONNX-order element)`.
pub(super) fn conv_transpose_channel_order(w: &[f32], shape: &[usize], groups: usize) -> (Vec<f32>, Vec<usize>) {
    let (cin, cout_g, kk) = (shape[0], shape[1], shape[2] * shape[3]);
    let cin_g = cin / groups.max(1);
    let mut out = vec![0f32; w.len()];
    let mut index = vec![0usize; w.len()];
    for ci in 0..cin {
        let (g, i) = (ci / cin_g, ci % cin_g);
        for col in 0..cout_g {
            let co = g * cout_g + col;
            for t in 0..kk {
                let from = (ci * cout_g + col) * kk + t;
                let to = (co * cin_g + i) * kk + t;
                out[to] = w[from];
                index[from] = to;
            }
        }
    }
    (out, index)
}

/// Reorder per-channel int8 weights from `[C, taps]` (quantization order) to `[taps, C]`.
pub(super) fn transpose_i8(q: &[i8], c: usize) -> Vec<i8> {
    let taps = q.len() / c.max(1);
    let mut out = vec![0i8; q.len()];
    for a in 0..c {
        for t in 0..taps {
            out[t * c + a] = q[a * taps + t];
        }
    }
    out
}

/// The suffix of a converted tensor's name.
fn layout_tag(l: Layout) -> &'static str {
    match l {
        Layout::Nhwc => "nhwc",
        Layout::RowMajor => "rowmajor",
        Layout::Packed => "packed",
        Layout::BlockSparse => "blocksparse",
    }
}

impl Lowerer<'_> {
    /// Rank-4 activations are NHWC; everything else row-major.
    pub(super) fn default_layout(&self, t: usize) -> Layout {
        if self.g.tensors[t].shape.len() == 4 {
            Layout::Nhwc
        } else {
            Layout::RowMajor
        }
    }

    /// A variant of IR tensor `t` already written as `dtype`, in either layout.
    pub(super) fn existing(&self, t: usize, dtype: DType) -> Option<(u32, Layout)> {
        [Layout::Nhwc, Layout::RowMajor]
            .into_iter()
            .find_map(|l| self.variants.get(&(t, dtype as u8, l as u8)).map(|&id| (id, l)))
    }

    /// Runtime tensor holding IR tensor `t` as `dtype` in `layout` (any layout if `None`),
    /// converting from an existing variant when needed.
    pub(super) fn get(&mut self, t: usize, dtype: DType, layout: Option<Layout>) -> Result<u32> {
        let want_layout = |l: Layout| layout.is_none_or(|w| w == l);
        for l in [Layout::Nhwc, Layout::RowMajor] {
            if want_layout(l) {
                if let Some(&id) = self.variants.get(&(t, dtype as u8, l as u8)) {
                    return Ok(id);
                }
            }
        }
        let name = self.g.tensors[t].name.clone();
        let shape = self.g.tensors[t].shape.clone();
        if let Some(v) = self.g.tensors[t].value.clone() {
            // A constant operand: materialize it directly in the wanted dtype.
            let id = match dtype {
                DType::F32 => self.constant(&name, DType::F32, &shape, bytes_f32(&v), None),
                _ => {
                    let r = Range {
                        min: v.iter().copied().fold(f32::INFINITY, f32::min),
                        max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    };
                    let q = act_qparams(r);
                    let qv: Vec<i8> = v.iter().map(|&x| quantize_f32(x, q.scale, q.zero_point)).collect();
                    self.constant(&name, DType::I8, &shape, bytes_i8(&qv), Some(q))
                }
            };
            self.variants.insert((t, dtype as u8, Layout::RowMajor as u8), id);
            return Ok(id);
        }
        let target_layout = layout.unwrap_or_else(|| self.default_layout(t));
        let params = [0i32; OP_PARAMS];
        let missing = || CompileError::Tensor {
            name: name.clone(),
            reason: "internal: tensor used before it is computed".into(),
        };
        let id = if let Some((src, _)) = self.existing(t, dtype) {
            // Same dtype, other layout.
            let q = match dtype {
                DType::I8 => Some(self.qp(t)?),
                DType::I16 => Some(self.tensor_q(src)),
                _ => None,
            };
            let id = self.act(&format!("{name}:{}", layout_tag(target_layout)), dtype, &shape, target_layout, q);
            self.op(rop::RESHAPE, &format!("{name}:to_{}", layout_tag(target_layout)), vec![src], id, params);
            id
        } else if dtype == DType::I8 || dtype == DType::I16 {
            // From the other integer variant (the conversions around int16 layers, format 1.6),
            // else from f32.
            let (q, other, tag) =
                if dtype == DType::I8 { (self.qp(t)?, DType::I16, "q") } else { (self.qp16(t)?, DType::I8, "q16") };
            let id = self.act(&format!("{name}:{tag}"), dtype, &shape, target_layout, Some(q));
            if let Some((src, _)) = self.existing(t, other) {
                let m = requant::rescale(self.tensor_q(src), q);
                let mut rp = [0i32; OP_PARAMS];
                rp[rop::MULT_A] = m.mult;
                rp[rop::SHIFT] = m.shift;
                self.op(rop::REQUANTIZE, &format!("{name}:to_{}", dtype.name()), vec![src], id, rp);
            } else {
                let (src, _) = self.existing(t, DType::F32).ok_or_else(missing)?;
                let op_name =
                    if dtype == DType::I8 { format!("{name}:quantize") } else { format!("{name}:quantize16") };
                self.op(rop::QUANTIZE, &op_name, vec![src], id, params);
            }
            id
        } else {
            let (src, _) = self.existing(t, DType::I8).or_else(|| self.existing(t, DType::I16)).ok_or_else(missing)?;
            let id = self.act(&format!("{name}:f32"), DType::F32, &shape, target_layout, None);
            self.op(rop::DEQUANTIZE, &format!("{name}:dequantize"), vec![src], id, params);
            id
        };
        self.variants.insert((t, dtype as u8, target_layout as u8), id);
        Ok(id)
    }

    /// Create the runtime output tensor of IR tensor `t`.
    pub(super) fn output(&mut self, t: usize, dtype: DType, layout: Layout, q: Option<QParams>) -> u32 {
        let name = self.g.tensors[t].name.clone();
        let shape = self.g.tensors[t].shape.clone();
        match q {
            Some(q) if dtype == DType::I16 => {
                self.qparams16.insert(t, q);
            }
            Some(q) => {
                self.qparams.insert(t, q);
            }
            None => {}
        }
        let id = self.act(&name, dtype, &shape, layout, q);
        self.variants.insert((t, dtype as u8, layout as u8), id);
        id
    }
}
