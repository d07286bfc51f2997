//! The importer's state (the IR built so far, ONNX names, import-time integer constants) and
//! what the per-operator importers share: attributes, tensor data, windows, shape checks.

use crate::error::{invalid, CompileError, Result};
use crate::ir::*;
use std::collections::HashMap;
use tract_onnx::pb;

/// Integer constants (shapes, axes) that exist only at import time.
#[derive(Clone, Debug)]
pub(super) struct IntConst {
    pub shape: Vec<usize>,
    pub data: Vec<i64>,
}

pub(super) struct Importer {
    pub g: Graph,
    pub opset: i64,
    /// ONNX tensor name -> IR tensor id.
    pub names: HashMap<String, usize>,
    pub ints: HashMap<String, IntConst>,
}

/// Data type codes of ONNX TensorProto.
pub(super) const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const UINT16: i32 = 4;
const INT16: i32 = 5;
const INT32: i32 = 6;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const UINT32: i32 = 12;
const UINT64: i32 = 13;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// IEEE half precision to f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let (sign, exp, frac) = ((h >> 15) as u32, ((h >> 10) & 0x1f) as u32, (h & 0x3ff) as u32);
    let bits = match (exp, frac) {
        (0, 0) => sign << 31,
        (0, f) => {
            // Subnormal: normalize.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign << 31 | (e as u32) << 23 | (f & 0x3ff) << 13
        }
        (0x1f, f) => sign << 31 | 0xff << 23 | f << 13,
        (e, f) => sign << 31 | (e + 127 - 15) << 23 | f << 13,
    };
    f32::from_bits(bits)
}

enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

fn tensor_data(t: &pb::TensorProto) -> Result<(Vec<usize>, ConstData)> {
    let err = |reason: String| CompileError::Tensor { name: t.name.clone(), reason };
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(err("external data is not supported (save the model with weights inside)".into()));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(format!("negative dimension {d}"))))
        .collect::<Result<_>>()?;
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err("too many elements".into()))?;
    let raw = &t.raw_data;
    let data = match t.data_type {
        FLOAT => {
            let v: Vec<f32> = if !raw.is_empty() {
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            } else {
                t.float_data.clone()
            };
            ConstData::F32(v)
        }
        DOUBLE => {
            let v: Vec<f32> = if !raw.is_empty() {
                raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect()
            } else {
                t.double_data.iter().map(|&d| d as f32).collect()
            };
            ConstData::F32(v)
        }
        INT64 => {
            let v: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                t.int64_data.clone()
            };
            ConstData::I64(v)
        }
        BOOL | INT8 | UINT8 | INT16 | UINT16 | UINT32 | UINT64 => {
            let size = match t.data_type {
                BOOL | INT8 | UINT8 => 1,
                INT16 | UINT16 => 2,
                UINT32 => 4,
                _ => 8,
            };
            let v: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(size)
                    .map(|c| match t.data_type {
                        INT8 => c[0] as i8 as i64,
                        BOOL | UINT8 => c[0] as i64,
                        INT16 => i16::from_le_bytes([c[0], c[1]]) as i64,
                        UINT16 => u16::from_le_bytes([c[0], c[1]]) as i64,
                        UINT32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                        _ => u64::from_le_bytes(c.try_into().unwrap()) as i64,
                    })
                    .collect()
            } else if !t.uint64_data.is_empty() {
                t.uint64_data.iter().map(|&d| d as i64).collect()
            } else {
                t.int32_data.iter().map(|&d| d as i64).collect()
            };
            ConstData::I64(v)
        }
        FLOAT16 => {
            let v: Vec<f32> = if !raw.is_empty() {
                raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
            } else {
                t.int32_data.iter().map(|&d| f16_to_f32(d as u16)).collect()
            };
            ConstData::F32(v)
        }
        INT32 => {
            let v: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            } else {
                t.int32_data.iter().map(|&d| d as i64).collect()
            };
            ConstData::I64(v)
        }
        other => {
            return Err(err(format!(
                "data type {other} is not supported (float, double, float16 and the integer and bool types are)"
            )))
        }
    };
    let len = match &data {
        ConstData::F32(v) => v.len(),
        ConstData::I64(v) => v.len(),
    };
    if len != n {
        return Err(err(format!("holds {len} values but its shape {shape:?} needs {n} (truncated file?)")));
    }
    Ok((shape, data))
}

pub(super) fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}
pub(super) fn attr_i(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}
pub(super) fn attr_f(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}
pub(super) fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}
pub(super) fn attr_s(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Numpy broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

pub(super) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl Importer {
    pub(super) fn add_tensor(&mut self, name: &str, shape: Vec<usize>, value: Option<Vec<f32>>) -> usize {
        let id = self.g.tensors.len();
        self.g.tensors.push(Tensor { name: name.to_string(), shape, value });
        self.names.insert(name.to_string(), id);
        id
    }

    pub(super) fn add_initializer(&mut self, t: &pb::TensorProto) -> Result<()> {
        let (shape, data) = tensor_data(t)?;
        match data {
            ConstData::F32(v) => {
                self.add_tensor(&t.name, shape, Some(v));
            }
            ConstData::I64(v) => {
                self.ints.insert(t.name.clone(), IntConst { shape, data: v });
            }
        }
        Ok(())
    }

    pub(super) fn ints_of(&self, node: &pb::NodeProto, name: &str) -> Result<IntConst> {
        if let Some(c) = self.ints.get(name) {
            return Ok(c.clone());
        }
        // A float constant used as integers (rare; some exporters).
        if let Some(&id) = self.names.get(name) {
            if let Some(v) = &self.g.tensors[id].value {
                return Ok(IntConst {
                    shape: self.g.tensors[id].shape.clone(),
                    data: v.iter().map(|&x| x as i64).collect(),
                });
            }
        }
        Err(invalid(&node.name, &node.op_type, format!("input '{name}' must be a constant integer tensor")))
    }

    /// The IR tensor of ONNX tensor `name`; an integer constant used as data becomes a float
    /// constant (exact for the small integers of shape arithmetic and test data).
    pub(super) fn tensor_of(&mut self, node: &pb::NodeProto, name: &str) -> Result<usize> {
        if let Some(&id) = self.names.get(name) {
            return Ok(id);
        }
        if let Some(c) = self.ints.get(name).cloned() {
            return Ok(self.add_tensor(name, c.shape, Some(c.data.iter().map(|&v| v as f32).collect())));
        }
        Err(invalid(&node.name, &node.op_type, format!("input '{name}' is not produced by any earlier node")))
    }

    pub(super) fn push(
        &mut self,
        node: &pb::NodeProto,
        op: Op,
        inputs: Vec<usize>,
        out_shape: Vec<usize>,
    ) -> Result<()> {
        let out_name = node.output.first().ok_or_else(|| invalid(&node.name, &node.op_type, "has no output"))?;
        if let Some(v) = self.fold(&op, &inputs, &out_shape) {
            self.add_tensor(out_name, out_shape, Some(v));
            return Ok(());
        }
        let out = self.add_tensor(out_name, out_shape, None);
        let name = if node.name.is_empty() { out_name.clone() } else { node.name.clone() };
        self.g.nodes.push(Node { name, onnx_op: node.op_type.clone(), op, inputs, outputs: vec![out] });
        Ok(())
    }

    /// A node of its own for output `k` of a multi-output ONNX node (named `node:k`).
    pub(super) fn push_output(
        &mut self,
        node: &pb::NodeProto,
        k: usize,
        op: Op,
        inputs: Vec<usize>,
        out_shape: Vec<usize>,
    ) -> Result<()> {
        let out_name = node.output.get(k).ok_or_else(|| invalid(&node.name, &node.op_type, "missing output"))?;
        if let Some(v) = self.fold(&op, &inputs, &out_shape) {
            self.add_tensor(out_name, out_shape, Some(v));
            return Ok(());
        }
        let out = self.add_tensor(out_name, out_shape, None);
        let base = if node.name.is_empty() { out_name.clone() } else { node.name.clone() };
        let name = if k == 0 { base } else { format!("{base}:{k}") };
        self.g.nodes.push(Node { name, onnx_op: node.op_type.clone(), op, inputs, outputs: vec![out] });
        Ok(())
    }

    /// The value of a data-movement op whose inputs are all constants (weights an exporter
    /// reorders with Slice, Concat, Transpose, Reshape or Unsqueeze, as PyTorch's LSTM export
    /// does): folded at import, so that the consumer sees a constant.
    fn fold(&self, op: &Op, inputs: &[usize], out_shape: &[usize]) -> Option<Vec<f32>> {
        if inputs.is_empty() || !inputs.iter().all(|&t| self.g.is_const(t)) {
            return None;
        }
        let x = inputs[0];
        let (xs, xv) = (&self.g.tensors[x].shape, self.g.value(x));
        let n: usize = out_shape.iter().product();
        // Row-major strides of the input.
        let strides = |s: &[usize]| -> Vec<usize> {
            let mut st = vec![1; s.len()];
            for a in (0..s.len().saturating_sub(1)).rev() {
                st[a] = st[a + 1] * s[a + 1];
            }
            st
        };
        let index = |mut i: usize, shape: &[usize]| -> Vec<usize> {
            let mut at = vec![0; shape.len()];
            for a in (0..shape.len()).rev() {
                at[a] = i % shape[a].max(1);
                i /= shape[a].max(1);
            }
            at
        };
        match op {
            Op::Reshape if xv.len() == n => Some(xv.to_vec()),
            Op::Transpose { perm } if perm.len() == xs.len() => {
                let st = strides(xs);
                Some(
                    (0..n)
                        .map(|i| {
                            let at = index(i, out_shape);
                            xv[at.iter().zip(perm).map(|(&j, &p)| j * st[p]).sum::<usize>()]
                        })
                        .collect(),
                )
            }
            Op::Slice { starts, steps } if starts.len() == xs.len() => {
                let st = strides(xs);
                Some(
                    (0..n)
                        .map(|i| {
                            let at = index(i, out_shape);
                            let off: i64 = (0..at.len())
                                .map(|a| (starts[a] as i64 + at[a] as i64 * steps[a]) * st[a] as i64)
                                .sum();
                            xv[off as usize]
                        })
                        .collect(),
                )
            }
            Op::Concat { axis } => {
                let outer: usize = out_shape[..*axis].iter().product();
                let mut v = Vec::with_capacity(n);
                for o in 0..outer {
                    for &t in inputs {
                        let s = &self.g.tensors[t].shape;
                        let inner: usize = s[*axis..].iter().product();
                        v.extend_from_slice(&self.g.value(t)[o * inner..(o + 1) * inner]);
                    }
                }
                (v.len() == n).then_some(v)
            }
            _ => None,
        }
    }

    pub(super) fn window(&self, node: &pb::NodeProto, in_hw: [usize; 2], kernel: [usize; 2]) -> Result<Window> {
        let bad = |r: &str| invalid(&node.name, &node.op_type, r);
        let pair = |name: &str| -> Result<[usize; 2]> {
            match attr_ints(node, name) {
                None => Ok([1, 1]),
                Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
                Some(_) => Err(bad(&format!("attribute {name} must be two positive values"))),
            }
        };
        let strides = pair("strides")?;
        let dilations = pair("dilations")?;
        let auto_pad = attr_s(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        let pads = match auto_pad.as_str() {
            "NOTSET" | "" => match attr_ints(node, "pads") {
                None => [0; 4],
                Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                    [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
                }
                Some(_) => return Err(bad("attribute pads must be four non-negative values")),
            },
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0usize; 4];
                for a in 0..2 {
                    let out = in_hw[a].div_ceil(strides[a]);
                    let span = (kernel[a] - 1) * dilations[a] + 1;
                    let total = ((out - 1) * strides[a] + span).saturating_sub(in_hw[a]);
                    let (small, big) = (total / 2, total - total / 2);
                    if auto_pad == "SAME_UPPER" {
                        p[a] = small;
                        p[a + 2] = big;
                    } else {
                        p[a] = big;
                        p[a + 2] = small;
                    }
                }
                p
            }
            other => return Err(bad(&format!("auto_pad {other} is not supported"))),
        };
        Ok(Window { kernel, strides, pads, dilations })
    }

    pub(super) fn window_out(&self, node: &pb::NodeProto, w: &Window, in_hw: [usize; 2]) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for a in 0..2 {
            let span = (w.kernel[a] - 1) * w.dilations[a] + 1;
            let padded = in_hw[a] + w.pads[a] + w.pads[a + 2];
            if padded < span {
                return Err(invalid(
                    &node.name,
                    &node.op_type,
                    format!("kernel extent {span} exceeds padded input {padded}"),
                ));
            }
            if w.pads[a] >= span || w.pads[a + 2] >= span {
                return Err(invalid(&node.name, &node.op_type, "padding as large as the kernel is not supported"));
            }
            out[a] = (padded - span) / w.strides[a] + 1;
        }
        Ok(out)
    }

    pub(super) fn rank4(&self, node: &pb::NodeProto, x: usize) -> Result<[usize; 4]> {
        let s = &self.g.tensors[x].shape;
        if s.len() != 4 {
            return Err(invalid(
                &node.name,
                &node.op_type,
                format!("only 2-d spatial (rank-4 NCHW) inputs are supported, got shape {s:?}"),
            ));
        }
        Ok([s[0], s[1], s[2], s[3]])
    }

    pub(super) fn unsupported(&self, node: &pb::NodeProto) -> CompileError {
        CompileError::UnsupportedOp { node: node.name.clone(), op_type: node.op_type.clone(), opset: self.opset }
    }
}

/// An importer function: adds the IR of one ONNX node (see `ops::OPS`).
pub(super) type ImportFn = fn(&mut Importer, &NodeCx<'_>) -> Result<()>;

/// The node being imported: its inputs' names (empty for an omitted optional input) and the
/// name of its first output.
pub(super) struct NodeCx<'a> {
    pub node: &'a pb::NodeProto,
    pub inputs: Vec<&'a str>,
    pub out_name: String,
}

impl<'a> NodeCx<'a> {
    /// An invalid-node error naming this node and its op type.
    pub fn bad(&self, reason: String) -> CompileError {
        invalid(&self.node.name, &self.node.op_type, reason)
    }
    /// The name of input `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a str> {
        self.inputs.get(i).copied().filter(|s| !s.is_empty()).ok_or_else(|| self.bad(format!("missing input {i}")))
    }
}
