//! ONNX -> IR. Decodes the protobuf with prost (the types tract-onnx exposes), resolves static
//! shapes (with user overrides for dynamic dims), folds constant shape arithmetic, and maps each
//! supported operator to the IR. Anything else is an error naming the node, op type and opset.

use crate::error::{invalid, CompileError, Result};
use crate::ir::*;
use prost::Message;
use std::collections::HashMap;
use tract_onnx::pb;

/// Integer constants (shapes, axes) that exist only at import time.
#[derive(Clone, Debug)]
struct IntConst {
    shape: Vec<usize>,
    data: Vec<i64>,
}

struct Importer {
    g: Graph,
    opset: i64,
    /// ONNX tensor name -> IR tensor id.
    names: HashMap<String, usize>,
    ints: HashMap<String, IntConst>,
}

/// Data type codes of ONNX TensorProto.
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

pub fn decode(bytes: &[u8], what: &str) -> Result<pb::ModelProto> {
    pb::ModelProto::decode(bytes).map_err(|e| CompileError::NotOnnx { what: what.to_string(), reason: e.to_string() })
}

/// Import a decoded model. `input_shapes` overrides (or fixes dynamic) input dims by name.
pub fn import(model: &pb::ModelProto, input_shapes: &HashMap<String, Vec<usize>>, what: &str) -> Result<Graph> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| CompileError::NotOnnx { what: what.to_string(), reason: "it has no graph".into() })?;
    if graph.node.is_empty() {
        return Err(CompileError::NotOnnx { what: what.to_string(), reason: "its graph has no nodes".into() });
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1);
    let mut im = Importer {
        g: Graph { name: graph.name.clone(), ..Default::default() },
        opset,
        names: HashMap::new(),
        ints: HashMap::new(),
    };
    for init in &graph.initializer {
        im.add_initializer(init)?;
    }
    for input in &graph.input {
        if im.names.contains_key(&input.name) || im.ints.contains_key(&input.name) {
            continue; // an initializer listed as input (older exporters)
        }
        let shape = input_shape(input, input_shapes)?;
        // Keep every size computation far from overflow: 2^31 elements is 8 GiB of f32.
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > 1 << 31) {
            return Err(CompileError::Input {
                name: input.name.clone(),
                reason: format!("shape {shape:?} is too large"),
            });
        }
        let id = im.add_tensor(&input.name, shape, None);
        im.g.inputs.push(id);
    }
    if let Some(unknown) = input_shapes.keys().find(|k| !graph.input.iter().any(|i| &&i.name == k)) {
        return Err(CompileError::Input {
            name: unknown.clone(),
            reason: "--input-shape names an input the model does not have".into(),
        });
    }
    if im.g.inputs.is_empty() {
        return Err(CompileError::NotOnnx { what: what.to_string(), reason: "it has no non-constant input".into() });
    }
    for node in &graph.node {
        im.node(node)?;
    }
    for out in &graph.output {
        let id = *im.names.get(&out.name).ok_or_else(|| CompileError::Tensor {
            name: out.name.clone(),
            reason: "graph output is not computed by any supported node (or is a constant)".into(),
        })?;
        if im.g.is_const(id) {
            return Err(CompileError::Tensor { name: out.name.clone(), reason: "graph output is a constant".into() });
        }
        im.g.outputs.push(id);
    }
    Ok(im.g)
}

fn input_shape(input: &pb::ValueInfoProto, overrides: &HashMap<String, Vec<usize>>) -> Result<Vec<usize>> {
    let err = |reason: &str| CompileError::Input { name: input.name.clone(), reason: reason.to_string() };
    let tt = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        _ => return Err(err("not a tensor input")),
    };
    if tt.elem_type != FLOAT {
        return Err(err("only float32 inputs are supported"));
    }
    if let Some(s) = overrides.get(&input.name) {
        if let Some(shape) = &tt.shape {
            if shape.dim.len() != s.len() {
                return Err(err(&format!(
                    "--input-shape gives rank {} but the model declares rank {}",
                    s.len(),
                    shape.dim.len()
                )));
            }
            for (d, &v) in shape.dim.iter().zip(s) {
                if let Some(pb::tensor_shape_proto::dimension::Value::DimValue(fixed)) = d.value {
                    if fixed > 0 && fixed as usize != v {
                        return Err(err(&format!("--input-shape {:?} contradicts the model's fixed dims", s)));
                    }
                }
            }
        }
        return Ok(s.clone());
    }
    let shape = tt.shape.as_ref().ok_or_else(|| err("no shape in the model; give --input-shape NAME=D1,D2,..."))?;
    shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => Ok(*v as usize),
            _ => Err(err("has a dynamic dimension; fix it with --input-shape NAME=D1,D2,...")),
        })
        .collect()
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
        INT32 => {
            let v: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect()
            } else {
                t.int32_data.iter().map(|&d| d as i64).collect()
            };
            ConstData::I64(v)
        }
        other => return Err(err(format!("data type {other} is not supported (float32, float64, int32, int64 are)"))),
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

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}
fn attr_i(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}
fn attr_f(node: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}
fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}
fn attr_s(node: &pb::NodeProto, name: &str) -> Option<String> {
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

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl Importer {
    fn add_tensor(&mut self, name: &str, shape: Vec<usize>, value: Option<Vec<f32>>) -> usize {
        let id = self.g.tensors.len();
        self.g.tensors.push(Tensor { name: name.to_string(), shape, value });
        self.names.insert(name.to_string(), id);
        id
    }

    fn add_initializer(&mut self, t: &pb::TensorProto) -> Result<()> {
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

    fn ints_of(&self, node: &pb::NodeProto, name: &str) -> Result<IntConst> {
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

    fn tensor_of(&self, node: &pb::NodeProto, name: &str) -> Result<usize> {
        self.names.get(name).copied().ok_or_else(|| {
            if self.ints.contains_key(name) {
                invalid(
                    &node.name,
                    &node.op_type,
                    format!("input '{name}' is an integer tensor; only float32 data flows through sparq"),
                )
            } else {
                invalid(&node.name, &node.op_type, format!("input '{name}' is not produced by any earlier node"))
            }
        })
    }

    fn push(&mut self, node: &pb::NodeProto, op: Op, inputs: Vec<usize>, out_shape: Vec<usize>) -> Result<()> {
        let out_name = node.output.first().ok_or_else(|| invalid(&node.name, &node.op_type, "has no output"))?;
        let out = self.add_tensor(out_name, out_shape, None);
        let name = if node.name.is_empty() { out_name.clone() } else { node.name.clone() };
        self.g.nodes.push(Node { name, onnx_op: node.op_type.clone(), op, inputs, outputs: vec![out] });
        Ok(())
    }

    fn window(&self, node: &pb::NodeProto, in_hw: [usize; 2], kernel: [usize; 2]) -> Result<Window> {
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

    fn window_out(&self, node: &pb::NodeProto, w: &Window, in_hw: [usize; 2]) -> Result<[usize; 2]> {
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

    fn rank4(&self, node: &pb::NodeProto, x: usize) -> Result<[usize; 4]> {
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

    fn node(&mut self, node: &pb::NodeProto) -> Result<()> {
        let op_type = node.op_type.as_str();
        let unsupported = || CompileError::UnsupportedOp {
            node: node.name.clone(),
            op_type: node.op_type.clone(),
            opset: self.opset,
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(unsupported());
        }
        let bad = |r: String| invalid(&node.name, &node.op_type, r);
        let inputs: Vec<&str> = node.input.iter().map(|s| s.as_str()).collect();
        let input = |i: usize| -> Result<&str> {
            inputs.get(i).copied().filter(|s| !s.is_empty()).ok_or_else(|| bad(format!("missing input {i}")))
        };
        let out_name = node.output.first().cloned().unwrap_or_default();
        match op_type {
            "Constant" => {
                let a = attr(node, "value").and_then(|a| a.t.as_ref());
                if let Some(t) = a {
                    let mut t = t.clone();
                    t.name = out_name.clone();
                    self.add_initializer(&t)?;
                } else if let Some(a) = attr(node, "value_float") {
                    self.add_tensor(&out_name, vec![], Some(vec![a.f]));
                } else if let Some(a) = attr(node, "value_floats") {
                    self.add_tensor(&out_name, vec![a.floats.len()], Some(a.floats.clone()));
                } else if let Some(a) = attr(node, "value_int") {
                    self.ints.insert(out_name, IntConst { shape: vec![], data: vec![a.i] });
                } else if let Some(a) = attr(node, "value_ints") {
                    self.ints.insert(out_name, IntConst { shape: vec![a.ints.len()], data: a.ints.clone() });
                } else {
                    return Err(bad("Constant without a supported value attribute".into()));
                }
            }
            "Identity" | "Dropout" => {
                let src = input(0)?;
                if let Some(&id) = self.names.get(src) {
                    self.names.insert(out_name, id);
                } else if let Some(c) = self.ints.get(src).cloned() {
                    self.ints.insert(out_name, c);
                } else {
                    return Err(bad(format!("input '{src}' is not produced by any earlier node")));
                }
            }
            "Shape" => {
                let x = self.tensor_of(node, input(0)?)?;
                let s: Vec<i64> = self.g.tensors[x].shape.iter().map(|&d| d as i64).collect();
                self.ints.insert(out_name, IntConst { shape: vec![s.len()], data: s });
            }
            "Gather" if self.ints.contains_key(input(0)?) => {
                let data = self.ints_of(node, input(0)?)?;
                let idx = self.ints_of(node, input(1)?)?;
                if data.shape.len() != 1 || attr_i(node, "axis", 0) != 0 {
                    return Err(bad("only gathering from a 1-d integer constant is supported".into()));
                }
                let n = data.data.len() as i64;
                let vals = idx
                    .data
                    .iter()
                    .map(|&i| {
                        let j = if i < 0 { i + n } else { i };
                        data.data.get(j as usize).copied().ok_or_else(|| bad(format!("index {i} out of range")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.ints.insert(out_name, IntConst { shape: idx.shape.clone(), data: vals });
            }
            "Unsqueeze" | "Squeeze" if self.ints.contains_key(input(0)?) => {
                let c = self.ints_of(node, input(0)?)?;
                let n = c.data.len();
                self.ints.insert(
                    out_name,
                    IntConst { shape: if n == 1 && op_type == "Squeeze" { vec![] } else { vec![n] }, data: c.data },
                );
            }
            "Cast" if self.ints.contains_key(input(0)?) => {
                let c = self.ints_of(node, input(0)?)?;
                self.ints.insert(out_name, c);
            }
            "Concat" if inputs.iter().all(|i| self.ints.contains_key(*i)) => {
                let mut data = Vec::new();
                for i in &inputs {
                    data.extend(self.ints_of(node, i)?.data);
                }
                self.ints.insert(out_name, IntConst { shape: vec![data.len()], data });
            }
            "Conv" => {
                let x = self.tensor_of(node, input(0)?)?;
                let w = self.tensor_of(node, input(1)?)?;
                let [n, c, h, wd] = self.rank4(node, x)?;
                if !self.g.is_const(w) || self.g.tensors[w].shape.len() != 4 {
                    return Err(bad("weights must be a constant [O, I/group, KH, KW] tensor".into()));
                }
                let ws = self.g.tensors[w].shape.clone();
                let group = attr_i(node, "group", 1).max(1) as usize;
                if c % group != 0 || !ws[0].is_multiple_of(group) || ws[1] * group != c {
                    return Err(bad(format!("weights {ws:?} do not match {c} input channels in {group} groups")));
                }
                if let Some(k) = attr_ints(node, "kernel_shape") {
                    if k.len() != 2 || k[0] as usize != ws[2] || k[1] as usize != ws[3] {
                        return Err(bad("kernel_shape disagrees with the weights".into()));
                    }
                }
                let window = self.window(node, [h, wd], [ws[2], ws[3]])?;
                let [oh, ow] = self.window_out(node, &window, [h, wd])?;
                let bias = match inputs.get(2).filter(|s| !s.is_empty()) {
                    Some(b) => {
                        let b = self.tensor_of(node, b)?;
                        if !self.g.is_const(b) || self.g.tensors[b].elements() != ws[0] {
                            return Err(bad("bias must be a constant with one value per output channel".into()));
                        }
                        b
                    }
                    None => self.add_tensor(&format!("{}:bias", out_name), vec![ws[0]], Some(vec![0.0; ws[0]])),
                };
                self.push(node, Op::Conv { window, group, act: Act::NONE }, vec![x, w, bias], vec![n, ws[0], oh, ow])?;
            }
            "Gemm" => {
                let a = self.tensor_of(node, input(0)?)?;
                let b = self.tensor_of(node, input(1)?)?;
                if attr_i(node, "transA", 0) != 0 {
                    return Err(bad("transA=1 is not supported".into()));
                }
                let a_shape = self.g.tensors[a].shape.clone();
                if a_shape.len() != 2 || !self.g.is_const(b) || self.g.tensors[b].shape.len() != 2 {
                    return Err(bad("supported form: A [M, K] times a constant B".into()));
                }
                let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
                let bs = self.g.tensors[b].shape.clone();
                let trans_b = attr_i(node, "transB", 0) != 0;
                let (k, n) = if trans_b { (bs[1], bs[0]) } else { (bs[0], bs[1]) };
                if a_shape[1] != k {
                    return Err(bad(format!("A is {a_shape:?} but B needs K = {k}")));
                }
                let bv = self.g.value(b).to_vec();
                let mut w = vec![0f32; n * k];
                for r in 0..n {
                    for c in 0..k {
                        w[r * k + c] = alpha * if trans_b { bv[r * k + c] } else { bv[c * n + r] };
                    }
                }
                let w = self.add_tensor(&format!("{}:weights", out_name), vec![n, k], Some(w));
                let mut bias = vec![0f32; n];
                if let Some(cn) = inputs.get(2).filter(|s| !s.is_empty()) {
                    let ct = self.tensor_of(node, cn)?;
                    let cv = self.g.value(ct).to_vec();
                    if !self.g.is_const(ct) || !(cv.len() == n || cv.len() == 1) {
                        return Err(bad("C must be a constant of N values (or one)".into()));
                    }
                    for (j, b) in bias.iter_mut().enumerate() {
                        *b = beta * cv[if cv.len() == 1 { 0 } else { j }];
                    }
                }
                let bias = self.add_tensor(&format!("{}:bias", out_name), vec![n], Some(bias));
                self.push(node, Op::Dense { act: Act::NONE }, vec![a, w, bias], vec![a_shape[0], n])?;
            }
            "MatMul" => {
                let a = self.tensor_of(node, input(0)?)?;
                let b = self.tensor_of(node, input(1)?)?;
                let a_shape = self.g.tensors[a].shape.clone();
                let bs = self.g.tensors[b].shape.clone();
                if !self.g.is_const(b) || bs.len() != 2 || a_shape.len() < 2 {
                    return Err(bad("supported form: A [..., K] times a constant 2-d B [K, N]".into()));
                }
                let (k, n) = (bs[0], bs[1]);
                if a_shape[a_shape.len() - 1] != k {
                    return Err(bad(format!("A is {a_shape:?} but B is {bs:?}")));
                }
                let bv = self.g.value(b).to_vec();
                let w: Vec<f32> = (0..n * k).map(|i| bv[(i % k) * n + i / k]).collect();
                let w = self.add_tensor(&format!("{}:weights", out_name), vec![n, k], Some(w));
                let bias = self.add_tensor(&format!("{}:bias", out_name), vec![n], Some(vec![0.0; n]));
                let mut out = a_shape.clone();
                *out.last_mut().unwrap() = n;
                self.push(node, Op::Dense { act: Act::NONE }, vec![a, w, bias], out)?;
            }
            "Add" | "Mul" | "Sub" | "Div" => {
                let a = self.tensor_of(node, input(0)?)?;
                let mut b = self.tensor_of(node, input(1)?)?;
                let (sa, sb) = (self.g.tensors[a].shape.clone(), self.g.tensors[b].shape.clone());
                let out =
                    broadcast(&sa, &sb).ok_or_else(|| bad(format!("shapes {sa:?} and {sb:?} do not broadcast")))?;
                if self.g.is_const(a) && self.g.is_const(b) {
                    return Err(bad(
                        "both operands are constants (constant folding of float math is not supported)".into()
                    ));
                }
                let op = match op_type {
                    "Add" => Op::Add { act: Act::NONE },
                    "Mul" => Op::Mul { act: Act::NONE },
                    _ => {
                        // x - c == x + (-c); x / c == x * (1/c): only with a constant right operand.
                        if !self.g.is_const(b) {
                            return Err(bad(format!("{op_type} needs a constant second operand")));
                        }
                        let v: Vec<f32> = if op_type == "Sub" {
                            self.g.value(b).iter().map(|x| -x).collect()
                        } else {
                            self.g.value(b).iter().map(|x| 1.0 / x).collect()
                        };
                        b = self.add_tensor(&format!("{}:operand", out_name), sb.clone(), Some(v));
                        if op_type == "Sub" {
                            Op::Add { act: Act::NONE }
                        } else {
                            Op::Mul { act: Act::NONE }
                        }
                    }
                };
                if out != sa && out != sb {
                    // Both operands broadcast: supported by the runtime as well.
                }
                self.push(node, op, vec![a, b], out)?;
            }
            "Relu" => {
                let x = self.tensor_of(node, input(0)?)?;
                let s = self.g.tensors[x].shape.clone();
                self.push(node, Op::Clip { act: Act { lo: 0.0, hi: f32::INFINITY } }, vec![x], s)?;
            }
            "Clip" => {
                let x = self.tensor_of(node, input(0)?)?;
                let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
                if self.opset < 11 {
                    lo = attr_f(node, "min", lo);
                    hi = attr_f(node, "max", hi);
                } else {
                    for (i, slot) in [(1usize, &mut lo), (2, &mut hi)] {
                        if let Some(nm) = inputs.get(i).filter(|s| !s.is_empty()) {
                            let t = self.tensor_of(node, nm)?;
                            let v = self.g.value(t);
                            if !self.g.is_const(t) || v.len() != 1 {
                                return Err(bad("min and max must be scalar constants".into()));
                            }
                            *slot = v[0];
                        }
                    }
                }
                if lo > hi {
                    return Err(bad(format!("min {lo} is above max {hi}")));
                }
                let s = self.g.tensors[x].shape.clone();
                self.push(node, Op::Clip { act: Act { lo, hi } }, vec![x], s)?;
            }
            "MaxPool" | "AveragePool" => {
                if node.output.len() > 1 && !node.output[1].is_empty() {
                    return Err(bad("the Indices output is not supported".into()));
                }
                let x = self.tensor_of(node, input(0)?)?;
                let [n, c, h, w] = self.rank4(node, x)?;
                if attr_i(node, "ceil_mode", 0) != 0 {
                    return Err(bad("ceil_mode=1 is not supported".into()));
                }
                let k = attr_ints(node, "kernel_shape").filter(|k| k.len() == 2 && k.iter().all(|&v| v >= 1));
                let k = k.ok_or_else(|| bad("kernel_shape must be two positive values".into()))?;
                let window = self.window(node, [h, w], [k[0] as usize, k[1] as usize])?;
                let [oh, ow] = self.window_out(node, &window, [h, w])?;
                let op = if op_type == "MaxPool" {
                    Op::MaxPool { window }
                } else {
                    if window.dilations != [1, 1] {
                        return Err(bad("dilated average pooling is not supported".into()));
                    }
                    Op::AveragePool { window, count_include_pad: attr_i(node, "count_include_pad", 0) != 0 }
                };
                self.push(node, op, vec![x], vec![n, c, oh, ow])?;
            }
            "GlobalAveragePool" => {
                let x = self.tensor_of(node, input(0)?)?;
                let [n, c, _, _] = self.rank4(node, x)?;
                self.push(node, Op::GlobalAveragePool, vec![x], vec![n, c, 1, 1])?;
            }
            "Flatten" => {
                let x = self.tensor_of(node, input(0)?)?;
                let s = self.g.tensors[x].shape.clone();
                let axis =
                    norm_axis(attr_i(node, "axis", 1), s.len() + 1).ok_or_else(|| bad("axis out of range".into()))?;
                let out = vec![s[..axis].iter().product(), s[axis..].iter().product()];
                self.push(node, Op::Reshape, vec![x], out)?;
            }
            "Reshape" => {
                let x = self.tensor_of(node, input(0)?)?;
                let spec = self.ints_of(node, input(1)?)?.data;
                let s = self.g.tensors[x].shape.clone();
                let total: usize = s.iter().product();
                let allow_zero = attr_i(node, "allowzero", 0) != 0;
                let mut out = Vec::with_capacity(spec.len());
                let mut infer = None;
                for (i, &d) in spec.iter().enumerate() {
                    match d {
                        -1 if infer.is_none() => {
                            infer = Some(i);
                            out.push(1);
                        }
                        0 if !allow_zero => {
                            out.push(*s.get(i).ok_or_else(|| bad("0 in shape refers past the input rank".into()))?)
                        }
                        d if d >= 0 => out.push(d as usize),
                        _ => return Err(bad(format!("invalid target shape {spec:?}"))),
                    }
                }
                let known: usize = out.iter().product();
                if let Some(i) = infer {
                    if known == 0 || !total.is_multiple_of(known) {
                        return Err(bad(format!("cannot reshape {s:?} to {spec:?}")));
                    }
                    out[i] = total / known;
                }
                if out.iter().product::<usize>() != total {
                    return Err(bad(format!("cannot reshape {s:?} ({total} values) to {out:?}")));
                }
                if self.g.is_const(x) {
                    let v = self.g.value(x).to_vec();
                    self.add_tensor(&out_name, out, Some(v));
                } else {
                    self.push(node, Op::Reshape, vec![x], out)?;
                }
            }
            "Concat" => {
                let ids = inputs
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| self.tensor_of(node, s))
                    .collect::<Result<Vec<_>>>()?;
                let Some(&first_id) = ids.first() else {
                    return Err(bad("Concat without inputs".into()));
                };
                let first = self.g.tensors[first_id].shape.clone();
                let axis =
                    norm_axis(attr_i(node, "axis", 0), first.len()).ok_or_else(|| bad("axis out of range".into()))?;
                let mut out = first.clone();
                out[axis] = 0;
                for &i in &ids {
                    let s = &self.g.tensors[i].shape;
                    if s.len() != first.len() || (0..s.len()).any(|d| d != axis && s[d] != first[d]) {
                        return Err(bad(format!("input shapes {first:?} and {s:?} differ outside axis {axis}")));
                    }
                    if self.g.is_const(i) {
                        return Err(bad("constant inputs to Concat are not supported".into()));
                    }
                    out[axis] += s[axis];
                }
                self.push(node, Op::Concat { axis }, ids, out)?;
            }
            "Softmax" => {
                let x = self.tensor_of(node, input(0)?)?;
                let s = self.g.tensors[x].shape.clone();
                let default = if self.opset < 13 { 1 } else { -1 };
                let axis =
                    norm_axis(attr_i(node, "axis", default), s.len()).ok_or_else(|| bad("axis out of range".into()))?;
                if self.opset < 13 && s[axis + 1..].iter().any(|&d| d != 1) {
                    return Err(bad("opset < 13 Softmax over several trailing axes is not supported".into()));
                }
                self.push(node, Op::Softmax { axis }, vec![x], s)?;
            }
            "BatchNormalization" => {
                let x = self.tensor_of(node, input(0)?)?;
                let s = self.g.tensors[x].shape.clone();
                if s.len() < 2 {
                    return Err(bad("input must have a channel axis".into()));
                }
                let c = s[1];
                let mut vals = Vec::new();
                for i in 1..5 {
                    let t = self.tensor_of(node, input(i)?)?;
                    if !self.g.is_const(t) || self.g.tensors[t].elements() != c {
                        return Err(bad(
                            "scale, bias, mean and variance must be constants with one value per channel".into()
                        ));
                    }
                    vals.push(self.g.value(t).to_vec());
                }
                let eps = attr_f(node, "epsilon", 1e-5);
                let scale: Vec<f32> = (0..c).map(|i| vals[0][i] / (vals[3][i] + eps).sqrt()).collect();
                let shift: Vec<f32> = (0..c).map(|i| vals[1][i] - vals[2][i] * scale[i]).collect();
                let st = self.add_tensor(&format!("{}:scale", out_name), vec![c], Some(scale));
                let sh = self.add_tensor(&format!("{}:shift", out_name), vec![c], Some(shift));
                self.push(node, Op::ChannelAffine { act: Act::NONE }, vec![x, st, sh], s)?;
            }
            _ => return Err(unsupported()),
        }
        Ok(())
    }
}
