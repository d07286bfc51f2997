//! ONNX -> IR. Decodes the protobuf with prost (the types tract-onnx exposes), resolves static
//! shapes (with user overrides for dynamic dims), folds constant shape arithmetic, and maps each
//! supported operator to the IR with its importer in [`OPS`]. Anything else is an error naming
//! the node, op type and opset.

use super::importer::{Importer, NodeCx, FLOAT};
use super::ops::OPS;
use crate::error::{CompileError, Result};
use crate::ir::Graph;
use prost::Message;
use std::collections::HashMap;
use tract_onnx::pb;

/// ONNX models decoded so far in this process; a compile decodes one.
static DECODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many ONNX models this process has decoded.
pub fn decodes() -> usize {
    DECODES.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn decode(bytes: &[u8], what: &str) -> Result<pb::ModelProto> {
    DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    pb::ModelProto::decode(bytes).map_err(|e| CompileError::NotOnnx { what: what.to_string(), reason: e.to_string() })
}

/// Import a decoded model. `input_shapes` overrides (or fixes dynamic) input dims by name.
/// `onnx` with the inputs named in `values` made constants (`sparq compile --input-value`): an
/// input that only selects a branch or a mode (e.g. a sample rate) is then folded at compile time.
/// Each input's declared shape must be static (or given in `shapes`) and hold as many values as
/// given; its declared element type (float, int64, int32, bool) is kept. The tract reference and
/// the compiler both read the returned model.
pub fn freeze_inputs(
    onnx: &[u8],
    what: &str,
    values: &[(String, Vec<f64>)],
    shapes: &HashMap<String, Vec<usize>>,
) -> Result<Vec<u8>> {
    if values.is_empty() {
        return Ok(onnx.to_vec());
    }
    let mut model = decode(onnx, what)?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| CompileError::NotOnnx { what: what.to_string(), reason: "it has no graph".into() })?;
    for (name, v) in values {
        let err = |reason: String| CompileError::Input { name: name.clone(), reason };
        let pos = graph
            .input
            .iter()
            .position(|i| &i.name == name)
            .ok_or_else(|| err("--input-value names an input the model does not have".into()))?;
        let input = &graph.input[pos];
        let tt = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => t.clone(),
            _ => return Err(err("not a tensor input".into())),
        };
        let dims: Vec<usize> = match shapes.get(name) {
            Some(s) => s.clone(),
            None => tt
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect::<Option<Vec<usize>>>()
                })
                .unwrap_or(Some(Vec::new()))
                .ok_or_else(|| err("its shape has dynamic dimensions: give it with --input-shape too".into()))?,
        };
        let count: usize = dims.iter().product();
        if count != v.len() {
            return Err(err(format!("--input-value gives {} values for shape {dims:?} ({count} values)", v.len())));
        }
        let mut t = pb::TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: tt.elem_type,
            ..Default::default()
        };
        match tt.elem_type {
            FLOAT => t.float_data = v.iter().map(|&x| x as f32).collect(),
            7 => t.int64_data = v.iter().map(|&x| x as i64).collect(),
            6 | 9 => t.int32_data = v.iter().map(|&x| x as i32).collect(),
            other => {
                return Err(err(format!(
                    "--input-value: element type {other} is not supported (float, int64, int32, bool)"
                )))
            }
        }
        graph.initializer.push(t);
        graph.input.remove(pos);
    }
    Ok(model.encode_to_vec())
}

/// `onnx` with the If nodes of `branches` (as the importer resolved them: name or first output,
/// then-branch taken) replaced by the taken branch's nodes and an Identity per output, nested Ifs
/// too: what the float reference runs, so that every tensor the compiler names exists in it.
pub fn inline_branches(onnx: &[u8], branches: &[(String, bool)]) -> Result<Vec<u8>> {
    fn splice(
        nodes: &[pb::NodeProto],
        choices: &HashMap<&str, bool>,
        out: &mut Vec<pb::NodeProto>,
        inits: &mut Vec<pb::TensorProto>,
    ) {
        for n in nodes {
            let key = if n.name.is_empty() { n.output.first().map_or("", |s| s.as_str()) } else { n.name.as_str() };
            let taken = (n.op_type == "If").then(|| choices.get(key)).flatten();
            let branch = taken.and_then(|&then| {
                let which = if then { "then_branch" } else { "else_branch" };
                n.attribute.iter().find(|a| a.name == which).and_then(|a| a.g.as_ref())
            });
            let Some(g) = branch else {
                out.push(n.clone());
                continue;
            };
            inits.extend(g.initializer.iter().cloned());
            splice(&g.node, choices, out, inits);
            for (o, b) in n.output.iter().zip(&g.output) {
                if !o.is_empty() {
                    out.push(pb::NodeProto {
                        op_type: "Identity".into(),
                        name: format!("{key}:{o}"),
                        input: vec![b.name.clone()],
                        output: vec![o.clone()],
                        ..Default::default()
                    });
                }
            }
        }
    }
    let mut model = decode(onnx, "the model")?;
    let choices: HashMap<&str, bool> = branches.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    if let Some(g) = model.graph.as_mut() {
        let (mut nodes, mut inits) = (Vec::new(), Vec::new());
        splice(&g.node, &choices, &mut nodes, &mut inits);
        g.node = nodes;
        g.initializer.extend(inits);
    }
    Ok(model.encode_to_vec())
}

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
        if let Some(d) = shape.iter().position(|&d| d == 0) {
            return Err(CompileError::Input {
                name: input.name.clone(),
                reason: format!("dimension {d} of {shape:?} is 0 (zero-size tensors are not supported)"),
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
    // Every node that cannot be imported is reported, not only the first: its outputs are
    // marked, and nodes reading them are skipped (their failure would only echo it).
    let mut failed = Vec::new();
    let mut unavailable: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for node in &graph.node {
        if node.input.iter().any(|i| unavailable.contains(i.as_str())) {
            unavailable.extend(node.output.iter().map(|o| o.as_str()));
            continue;
        }
        match import_node(&mut im, node) {
            Ok(()) => {}
            Err(e @ (CompileError::UnsupportedOp { .. } | CompileError::InvalidNode { .. })) => {
                failed.push(e);
                unavailable.extend(node.output.iter().map(|o| o.as_str()));
            }
            Err(e) => return Err(e),
        }
    }
    match failed.len() {
        0 => {}
        1 => return Err(failed.remove(0)),
        _ => return Err(CompileError::Nodes(failed)),
    }
    for out in &graph.output {
        // An integer constant output (a Shape of a static tensor) is written as f32 values.
        if let Some(c) = im.ints.get(&out.name).cloned() {
            im.add_tensor(&out.name, c.shape, Some(c.data.iter().map(|&v| v as f32).collect()));
        }
        let id = *im.names.get(&out.name).ok_or_else(|| CompileError::Tensor {
            name: out.name.clone(),
            reason: "graph output is not computed by any supported node".into(),
        })?;
        if im.g.tensors[id].shape.contains(&0) {
            return Err(CompileError::Tensor {
                name: out.name.clone(),
                reason: "graph output has a zero-size dimension (zero-size tensors are not supported)".into(),
            });
        }
        // An output reached through Identity (or an If's branch) keeps the graph output's name,
        // which is what users look it up by (tract knows both names for the same values).
        if im.g.tensors[id].name != out.name && !im.g.inputs.contains(&id) && !im.g.outputs.contains(&id) {
            im.g.tensors[id].name = out.name.clone();
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
        return Err(err(
            "only float32 inputs are supported (an integer input that selects a mode, such as a sample rate, \
             can be made a constant with --input-value NAME=VALUE)",
        ));
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
    let shape = tt
        .shape
        .as_ref()
        .ok_or_else(|| err(&format!("no shape in the model; give it with --input-shape {}=D1,D2,...", input.name)))?;
    // The flag to pass, with the fixed dims filled in and the open ones named.
    let example: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => v.to_string(),
            Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => p.to_uppercase(),
            _ => "N".into(),
        })
        .collect();
    shape
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => Ok(*v as usize),
            other => {
                let what = match other {
                    Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => format!(" ('{p}')"),
                    _ => String::new(),
                };
                Err(err(&format!(
                    "dimension {i}{what} is dynamic; fix it with --input-shape {}={}",
                    input.name,
                    example.join(",")
                )))
            }
        })
        .collect()
}

/// Import one node with the importer [`OPS`] registers for its op type.
pub(super) fn import_node(im: &mut Importer, node: &pb::NodeProto) -> Result<()> {
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(im.unsupported(node));
    }
    let Some(&(_, import_op)) = OPS.iter().find(|(op_type, _)| *op_type == node.op_type) else {
        return Err(im.unsupported(node));
    };
    let cx = NodeCx {
        node,
        inputs: node.input.iter().map(|s| s.as_str()).collect(),
        out_name: node.output.first().cloned().unwrap_or_default(),
    };
    import_op(im, &cx)
}
