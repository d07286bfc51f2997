//! One importer function per ONNX operator, registered in [`OPS`] by op type. Each reads the
//! node's inputs and attributes, checks what sparq supports (naming the node and the reason when
//! it does not), infers the output shape and adds IR nodes or import-time constants.

use super::importer::{attr, attr_f, attr_i, attr_ints, broadcast, norm_axis, ImportFn, Importer, IntConst, NodeCx};
use super::tensor_ops as t;
use crate::error::Result;
use crate::ir::{Act, Op, Window};

/// The importer of each supported ONNX operator, by op type (ai.onnx domain). An op type not
/// listed here is an [`CompileError::UnsupportedOp`](crate::error::CompileError::UnsupportedOp).
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Abs", unary),
    ("Add", binary),
    ("And", t::compare_ints),
    ("ArgMax", t::arg_reduce),
    ("ArgMin", t::arg_reduce),
    ("AveragePool", pool),
    ("BatchNormalization", batch_norm),
    ("Cast", t::cast),
    ("Clip", clip),
    ("Concat", concat_or_ints),
    ("Constant", constant),
    ("ConstantOfShape", t::constant_of_shape),
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
    ("DepthToSpace", t::depth_space),
    ("Div", binary),
    ("Dropout", identity),
    ("Elu", unary),
    ("Equal", t::compare_ints),
    ("Erf", unary),
    ("Exp", unary),
    ("Expand", t::tile_expand),
    ("Flatten", flatten),
    ("GRU", t::recurrent),
    ("Gather", gather),
    ("Gelu", unary),
    ("Gemm", gemm),
    ("GlobalAveragePool", t::global_pool),
    ("GlobalMaxPool", t::global_pool),
    ("Greater", t::compare_ints),
    ("GreaterOrEqual", t::compare_ints),
    ("HardSigmoid", unary),
    ("HardSwish", unary),
    ("Identity", identity),
    ("If", t::if_node),
    ("InstanceNormalization", t::instance_norm),
    ("LSTM", t::recurrent),
    ("LayerNormalization", t::layer_norm),
    ("LeakyRelu", unary),
    ("Less", t::compare_ints),
    ("LessOrEqual", t::compare_ints),
    ("Log", unary),
    ("MatMul", matmul),
    ("Max", t::binary_fn),
    ("MaxPool", pool),
    ("Min", t::binary_fn),
    ("Mod", t::compare_ints),
    ("Mul", binary),
    ("Neg", unary),
    ("Not", t::not_ints),
    ("Or", t::compare_ints),
    ("Pad", pad),
    ("Pow", t::binary_fn),
    ("Range", t::range),
    ("Reciprocal", unary),
    ("ReduceL1", t::reduce),
    ("ReduceL2", t::reduce),
    ("ReduceLogSum", t::reduce),
    ("ReduceLogSumExp", t::reduce),
    ("ReduceMax", t::reduce),
    ("ReduceMean", t::reduce),
    ("ReduceMin", t::reduce),
    ("ReduceProd", t::reduce),
    ("ReduceSum", t::reduce),
    ("ReduceSumSquare", t::reduce),
    ("Relu", relu),
    ("Reshape", reshape),
    ("Resize", resize),
    ("Shape", shape),
    ("Sigmoid", unary),
    ("Size", size),
    ("Slice", slice),
    ("Softmax", softmax),
    ("Softplus", unary),
    ("SpaceToDepth", t::depth_space),
    ("Split", split),
    ("Sqrt", unary),
    ("Squeeze", squeeze_ints),
    ("Sub", binary),
    ("Tanh", unary),
    ("Tile", t::tile_expand),
    ("Transpose", transpose),
    ("Unsqueeze", squeeze_ints),
    ("Upsample", resize),
    ("Where", t::where_const),
];

/// Concat of integer constants folds; of float tensors, it is a node.
fn concat_or_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    if cx.inputs.iter().all(|i| im.ints.contains_key(*i)) {
        concat_ints(im, cx)
    } else {
        concat(im, cx)
    }
}

/// A constant: float values become IR constants, integers import-time constants.
fn constant(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let out_name = cx.out_name.clone();
    let a = attr(node, "value").and_then(|a| a.t.as_ref());
    if let Some(t) = a {
        let mut t = t.clone();
        t.name = out_name.clone();
        im.add_initializer(&t)?;
    } else if let Some(a) = attr(node, "value_float") {
        im.add_tensor(&out_name, vec![], Some(vec![a.f]));
    } else if let Some(a) = attr(node, "value_floats") {
        im.add_tensor(&out_name, vec![a.floats.len()], Some(a.floats.clone()));
    } else if let Some(a) = attr(node, "value_int") {
        im.ints.insert(out_name, IntConst { shape: vec![], data: vec![a.i] });
    } else if let Some(a) = attr(node, "value_ints") {
        im.ints.insert(out_name, IntConst { shape: vec![a.ints.len()], data: a.ints.clone() });
    } else {
        return Err(bad("Constant without a supported value attribute".into()));
    }
    Ok(())
}

/// Identity and Dropout (inference): the output names the input.
fn identity(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    if cx.node.op_type == "Dropout" {
        let training = match cx.inputs.get(2).filter(|s| !s.is_empty()) {
            Some(t) => im.ints_of(cx.node, t)?.data.iter().any(|&v| v != 0),
            None => attr_i(cx.node, "is_test", 1) == 0 && im.opset < 7,
        };
        // Training with a ratio of 0 drops nothing: the identity too.
        let ratio = match cx.inputs.get(1).filter(|s| !s.is_empty()) {
            Some(r) => {
                let t = im.tensor_of(cx.node, r)?;
                im.g.value(t).first().copied().unwrap_or(0.5)
            }
            None => attr_f(cx.node, "ratio", 0.5),
        };
        if training && ratio != 0.0 {
            return Err(bad("training_mode=true is not supported (inference only; random by definition)".into()));
        }
        if let Some(mask) = cx.node.output.get(1).filter(|m| !m.is_empty()) {
            // Nothing dropped: the mask is all true.
            let x = im.tensor_of(cx.node, input(0)?)?;
            let shape = im.g.tensors[x].shape.clone();
            let n = shape.iter().product();
            im.add_tensor(mask, shape, Some(vec![1.0; n]));
        }
    }
    let src = input(0)?;
    if let Some(&id) = im.names.get(src) {
        im.names.insert(out_name, id);
    } else if let Some(c) = im.ints.get(src).cloned() {
        im.ints.insert(out_name, c);
    } else {
        return Err(bad(format!("input '{src}' is not produced by any earlier node")));
    }
    Ok(())
}

/// Size of a static tensor (its element count): an integer scalar constant.
fn size(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let name = cx.input(0)?;
    let n = match im.ints.get(name) {
        Some(c) => c.data.len(),
        None => {
            let x = im.tensor_of(cx.node, name)?;
            im.g.tensors[x].elements()
        }
    };
    im.ints.insert(cx.out_name.clone(), IntConst { shape: vec![], data: vec![n as i64] });
    Ok(())
}

/// Shape of a static tensor: an integer constant.
fn shape(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let x = im.tensor_of(node, input(0)?)?;
    let s: Vec<i64> = im.g.tensors[x].shape.iter().map(|&d| d as i64).collect();
    // Opset 15: start and end (negative from the back, clamped).
    let r = s.len() as i64;
    let clampi = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let (a, b) = (clampi(attr_i(node, "start", 0)), clampi(attr_i(node, "end", r)));
    let s: Vec<i64> = if a < b { s[a as usize..b as usize].to_vec() } else { Vec::new() };
    im.ints.insert(out_name, IntConst { shape: vec![s.len()], data: s });
    Ok(())
}

/// Gather: from an integer constant (shape arithmetic) folded at import, else along an axis of a
/// float tensor with constant indices (see `tensor_ops::gather`).
fn gather(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    if im.ints.contains_key(cx.input(0)?) {
        gather_ints(im, cx)
    } else {
        t::gather(im, cx)
    }
}

/// Gather from an integer constant (shape arithmetic), folded at import.
fn gather_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let data = im.ints_of(node, input(0)?)?;
    let idx = im.ints_of(node, input(1)?)?;
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
    im.ints.insert(out_name, IntConst { shape: idx.shape.clone(), data: vals });
    Ok(())
}

/// Unsqueeze / Squeeze of an integer constant (shape arithmetic), folded at import.
fn squeeze_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let op_type = cx.node.op_type.as_str();
    if !im.ints.contains_key(input(0)?) {
        return squeeze(im, cx);
    }
    let c = im.ints_of(node, input(0)?)?;
    let n = c.data.len();
    im.ints.insert(
        out_name,
        IntConst { shape: if n == 1 && op_type == "Squeeze" { vec![] } else { vec![n] }, data: c.data },
    );
    Ok(())
}

/// Squeeze and Unsqueeze of a float tensor: a reshape (axes from the input, opset 13, or the
/// attribute); constants fold.
fn squeeze(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let axes = match cx.inputs.get(1).filter(|n| !n.is_empty()) {
        Some(n) => Some(im.ints_of(node, n)?.data),
        None => attr_ints(node, "axes"),
    };
    let out: Vec<usize> = if node.op_type == "Squeeze" {
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| norm_axis(v, s.len()).ok_or_else(|| cx.bad(format!("axis {v} out of range"))))
                .collect::<Result<_>>()?,
            None => (0..s.len()).filter(|&a| s[a] == 1).collect(),
        };
        if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
            return Err(cx.bad(format!("axis {a} of {s:?} is not 1")));
        }
        (0..s.len()).filter(|a| !axes.contains(a)).map(|a| s[a]).collect()
    } else {
        let a = axes.ok_or_else(|| cx.bad("axes are required".into()))?;
        let r = s.len() + a.len();
        let mut axes: Vec<usize> = a
            .iter()
            .map(|&v| norm_axis(v, r).ok_or_else(|| cx.bad(format!("axis {v} out of range"))))
            .collect::<Result<_>>()?;
        axes.sort_unstable();
        let mut rest = s.iter();
        (0..r).map(|i| if axes.contains(&i) { 1 } else { *rest.next().unwrap_or(&1) }).collect()
    };
    if im.g.is_const(x) {
        let v = im.g.value(x).to_vec();
        im.add_tensor(&cx.out_name, out, Some(v));
        return Ok(());
    }
    im.push(node, Op::Reshape, vec![x], out)
}

/// Concat of integer constants (shape arithmetic), folded at import.
fn concat_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let inputs = &cx.inputs;
    let out_name = cx.out_name.clone();
    let mut data = Vec::new();
    for i in inputs {
        data.extend(im.ints_of(node, i)?.data);
    }
    im.ints.insert(out_name, IntConst { shape: vec![data.len()], data });
    Ok(())
}

/// Conv with constant weights `[O, I/group, KH, KW]` and optional constant bias.
fn conv(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let inputs = &cx.inputs;
    let out_name = cx.out_name.clone();
    let x = im.tensor_of(cx.node, input(0)?)?;
    let mut w = im.tensor_of(cx.node, input(1)?)?;
    let one_d = im.g.tensors[x].shape.len() == 3;
    let node2d = one_d.then(|| as_2d(cx.node));
    let node = node2d.as_ref().unwrap_or(cx.node);
    if one_d {
        w = weights_2d(im, w, &out_name);
    }
    let [n, c, h, wd] = window_input(im, node, x)?;
    if !im.g.is_const(w) || im.g.tensors[w].shape.len() != 4 {
        return Err(bad("weights must be a constant [O, I/group, KH, KW] tensor".into()));
    }
    let ws = im.g.tensors[w].shape.clone();
    let group = attr_i(node, "group", 1).max(1) as usize;
    if c % group != 0 || !ws[0].is_multiple_of(group) || ws[1] * group != c {
        return Err(bad(format!("weights {ws:?} do not match {c} input channels in {group} groups")));
    }
    if let Some(k) = attr_ints(node, "kernel_shape") {
        if k.len() != 2 || k[0] as usize != ws[2] || k[1] as usize != ws[3] {
            return Err(bad("kernel_shape disagrees with the weights".into()));
        }
    }
    let window = im.window(node, [h, wd], [ws[2], ws[3]])?;
    let [oh, ow] = im.window_out(node, &window, [h, wd])?;
    let bias = match inputs.get(2).filter(|s| !s.is_empty()) {
        Some(b) => {
            let b = im.tensor_of(node, b)?;
            if !im.g.is_const(b) || im.g.tensors[b].elements() != ws[0] {
                return Err(bad("bias must be a constant with one value per output channel".into()));
            }
            b
        }
        None => im.add_tensor(&format!("{}:bias", out_name), vec![ws[0]], Some(vec![0.0; ws[0]])),
    };
    let out = if one_d { vec![n, ws[0], ow] } else { vec![n, ws[0], oh, ow] };
    im.push(node, Op::Conv { window, group, act: Act::NONE }, vec![x, w, bias], out)?;
    Ok(())
}

/// The `[N, C, H, W]` a window op reads: a rank-4 input, or a rank-3 `[N, C, L]` one (1-d
/// convolution and pooling) as `[N, C, 1, L]`.
fn window_input(im: &Importer, node: &tract_onnx::pb::NodeProto, x: usize) -> Result<[usize; 4]> {
    match im.g.tensors[x].shape[..] {
        [n, c, l] => Ok([n, c, 1, l]),
        _ => im.rank4(node, x),
    }
}

/// The constant weights `[A, B, K]` of a 1-d (transposed) convolution as `[A, B, 1, K]`, the 2-d
/// weights of a height-1 window; anything else unchanged (the caller checks it).
fn weights_2d(im: &mut Importer, w: usize, out_name: &str) -> usize {
    if !im.g.is_const(w) || im.g.tensors[w].shape.len() != 3 {
        return w;
    }
    let s = im.g.tensors[w].shape.clone();
    let v = im.g.value(w).to_vec();
    im.add_tensor(&format!("{out_name}:weights2d"), vec![s[0], s[1], 1, s[2]], Some(v))
}

/// A 1-d window node's attributes as the 2-d ones of a height-1 window: kernel `[1, k]`, strides
/// `[1, s]`, dilations `[1, d]`, pads `[0, begin, 0, end]`.
fn as_2d(node: &tract_onnx::pb::NodeProto) -> tract_onnx::pb::NodeProto {
    let mut n = node.clone();
    for a in &mut n.attribute {
        match (a.name.as_str(), a.ints.len()) {
            ("kernel_shape" | "strides" | "dilations", 1) => a.ints.insert(0, 1),
            ("output_padding", 1) => a.ints.insert(0, 0),
            ("pads", 2) => a.ints = vec![0, a.ints[0], 0, a.ints[1]],
            _ => {}
        }
    }
    n
}

/// ConvTranspose with constant weights `[C_in, C_out/group, KH, KW]` (or `[C_in, C_out/group,
/// K]` for 1-d) and optional bias; explicit pads and output_padding, or an output_shape or SAME
/// auto_pad from which the pads follow (ONNX's equations; an output longer than the full one gets
/// the difference as output padding at the end).
fn conv_transpose(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    use super::importer::attr_s;
    let bad = |r: String| cx.bad(r);
    let x = im.tensor_of(cx.node, cx.input(0)?)?;
    let mut w = im.tensor_of(cx.node, cx.input(1)?)?;
    let one_d = im.g.tensors[x].shape.len() == 3;
    let node2d = one_d.then(|| as_2d(cx.node));
    let node = node2d.as_ref().unwrap_or(cx.node);
    if one_d {
        w = weights_2d(im, w, &cx.out_name);
    }
    let [n, c, h, wd] = window_input(im, node, x)?;
    if !im.g.is_const(w) || im.g.tensors[w].shape.len() != 4 {
        return Err(bad("weights must be a constant [C_in, C_out/group, KH, KW] tensor".into()));
    }
    let ws = im.g.tensors[w].shape.clone();
    let group = attr_i(node, "group", 1).max(1) as usize;
    if ws[0] != c || c % group != 0 {
        return Err(bad(format!("weights {ws:?} do not match {c} input channels in {group} groups")));
    }
    let auto_pad = attr_s(node, "auto_pad").unwrap_or_default();
    let same = matches!(auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
    if !matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") && !same {
        return Err(bad(format!("auto_pad {auto_pad} is not supported")));
    }
    // The window's strides and dilations (its pads are replaced below when the output is given).
    let mut plain = node.clone();
    plain.attribute.retain(|a| a.name != "auto_pad" && (a.name != "pads" || !same));
    let mut window = im.window(&plain, [h, wd], [ws[2], ws[3]])?;
    if auto_pad == "VALID" {
        window.pads = [0; 4];
    }
    let out_pad: Vec<usize> = match attr_ints(node, "output_padding") {
        None => vec![0, 0],
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => v.iter().map(|&x| x as usize).collect(),
        Some(_) => return Err(bad("output_padding must have one non-negative value per spatial axis".into())),
    };
    for (a, &pad) in out_pad.iter().enumerate() {
        if pad >= window.strides[a].max(window.dilations[a]) {
            return Err(bad("output_padding must be smaller than the stride or the dilation".into()));
        }
    }
    let full = |a: usize| ([h, wd][a] - 1) * window.strides[a] + window.dilations[a] * (ws[2 + a] - 1) + 1 + out_pad[a];
    // The requested spatial output: output_shape (its last spatial values), or SAME's in * stride.
    let wanted: Option<[usize; 2]> = match attr_ints(cx.node, "output_shape") {
        Some(v) if v.len() >= if one_d { 1 } else { 2 } && v.iter().all(|&x| x > 0) => {
            let v: Vec<usize> = v.iter().map(|&x| x as usize).collect();
            Some(if one_d { [1, v[v.len() - 1]] } else { [v[v.len() - 2], v[v.len() - 1]] })
        }
        Some(v) => return Err(bad(format!("output_shape {v:?} must give the spatial output sizes"))),
        None if same => Some([h * window.strides[0], wd * window.strides[1]]),
        None => None,
    };
    let mut out = [0usize; 2];
    for a in 0..2 {
        let f = full(a);
        if let Some(want) = wanted {
            let total = f as i64 - want[a] as i64;
            let total_pos = total.max(0) as usize;
            let (small, big) = (total_pos / 2, total_pos - total_pos / 2);
            let (begin, end) = if auto_pad == "SAME_UPPER" { (small, big) } else { (big, small) };
            window.pads[a] = begin;
            window.pads[a + 2] = end;
            if total < 0 {
                // Longer than the full output: the rest is output padding (bias only).
                let extra = (-total) as usize;
                if out_pad[a] + extra >= window.strides[a].max(window.dilations[a]) {
                    return Err(bad(format!(
                        "output_shape {} on axis {a} exceeds the full output {f} by the stride or more",
                        want[a]
                    )));
                }
            }
            out[a] = want[a];
        } else {
            out[a] = f
                .checked_sub(window.pads[a] + window.pads[a + 2])
                .filter(|&v| v > 0)
                .ok_or_else(|| bad(format!("pads {:?} leave no output", window.pads)))?;
        }
    }
    let cout = ws[1] * group;
    let bias = match cx.inputs.get(2).filter(|s| !s.is_empty()) {
        Some(b) => {
            let b = im.tensor_of(node, b)?;
            if !im.g.is_const(b) || im.g.tensors[b].elements() != cout {
                return Err(bad("bias must be a constant with one value per output channel".into()));
            }
            b
        }
        None => im.add_tensor(&format!("{}:bias", cx.out_name), vec![cout], Some(vec![0.0; cout])),
    };
    let shape = if one_d { vec![n, cout, out[1]] } else { vec![n, cout, out[0], out[1]] };
    im.push(cx.node, Op::ConvTranspose { window, group }, vec![x, w, bias], shape)?;
    Ok(())
}

/// Gemm `alpha * A B + beta * C` with constant B and C: a dense layer (weights `[N, K]`).
fn gemm(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let inputs = &cx.inputs;
    let out_name = cx.out_name.clone();
    let a = im.tensor_of(node, input(0)?)?;
    let b = im.tensor_of(node, input(1)?)?;
    let a_shape = im.g.tensors[a].shape.clone();
    if attr_i(node, "transA", 0) != 0 || !im.g.is_const(b) || a_shape.len() != 2 || im.g.tensors[b].shape.len() != 2 {
        // A product of activations (or a transposed A): MATMUL.
        return t::gemm_activations(im, cx, a, b);
    }
    let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
    let bs = im.g.tensors[b].shape.clone();
    let trans_b = attr_i(node, "transB", 0) != 0;
    let (k, n) = if trans_b { (bs[1], bs[0]) } else { (bs[0], bs[1]) };
    if a_shape[1] != k {
        return Err(bad(format!("A is {a_shape:?} but B needs K = {k}")));
    }
    let bv = im.g.value(b).to_vec();
    let mut w = vec![0f32; n * k];
    for r in 0..n {
        for c in 0..k {
            w[r * k + c] = alpha * if trans_b { bv[r * k + c] } else { bv[c * n + r] };
        }
    }
    let w = im.add_tensor(&format!("{}:weights", out_name), vec![n, k], Some(w));
    let mut bias = vec![0f32; n];
    if let Some(cn) = inputs.get(2).filter(|s| !s.is_empty()) {
        let ct = im.tensor_of(node, cn)?;
        let cv = im.g.value(ct).to_vec();
        if !im.g.is_const(ct) || !(cv.len() == n || cv.len() == 1) {
            return Err(bad("C must be a constant of N values (or one)".into()));
        }
        for (j, b) in bias.iter_mut().enumerate() {
            *b = beta * cv[if cv.len() == 1 { 0 } else { j }];
        }
    }
    let bias = im.add_tensor(&format!("{}:bias", out_name), vec![n], Some(bias));
    im.push(node, Op::Dense { act: Act::NONE }, vec![a, w, bias], vec![a_shape[0], n])?;
    Ok(())
}

/// MatMul by a constant 2-d matrix: a dense layer (weights `[N, K]`).
fn matmul(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let a = im.tensor_of(node, input(0)?)?;
    let b = im.tensor_of(node, input(1)?)?;
    let a_shape = im.g.tensors[a].shape.clone();
    let bs = im.g.tensors[b].shape.clone();
    if !im.g.is_const(b) || bs.len() != 2 || a_shape.len() < 2 {
        return t::matmul_activations(im, cx, a, b);
    }
    let (k, n) = (bs[0], bs[1]);
    if a_shape[a_shape.len() - 1] != k {
        return Err(bad(format!("A is {a_shape:?} but B is {bs:?}")));
    }
    let bv = im.g.value(b).to_vec();
    let w: Vec<f32> = (0..n * k).map(|i| bv[(i % k) * n + i / k]).collect();
    let w = im.add_tensor(&format!("{}:weights", out_name), vec![n, k], Some(w));
    let bias = im.add_tensor(&format!("{}:bias", out_name), vec![n], Some(vec![0.0; n]));
    let mut out = a_shape.clone();
    *out.last_mut().unwrap() = n;
    im.push(node, Op::Dense { act: Act::NONE }, vec![a, w, bias], out)?;
    Ok(())
}

/// Add and Mul (broadcasting); Sub and Div by a constant become Add and Mul.
fn binary(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let op_type = cx.node.op_type.as_str();
    if im.ints.contains_key(input(0)?) && im.ints.contains_key(input(1)?) {
        return binary_ints(im, cx);
    }
    let a = im.tensor_of(node, input(0)?)?;
    let mut b = im.tensor_of(node, input(1)?)?;
    let (sa, sb) = (im.g.tensors[a].shape.clone(), im.g.tensors[b].shape.clone());
    let out = broadcast(&sa, &sb).ok_or_else(|| bad(format!("shapes {sa:?} and {sb:?} do not broadcast")))?;
    if im.g.is_const(a) && im.g.is_const(b) {
        return t::fold_binary(im, cx, a, b);
    }
    if matches!(op_type, "Sub" | "Div") && !im.g.is_const(b) {
        return t::binary_fn(im, cx);
    }
    let op = match op_type {
        "Add" => Op::Add { act: Act::NONE },
        "Mul" => Op::Mul { act: Act::NONE },
        _ => {
            // x - c == x + (-c); x / c == x * (1/c) (a constant right operand).
            let v: Vec<f32> = if op_type == "Sub" {
                im.g.value(b).iter().map(|x| -x).collect()
            } else {
                im.g.value(b).iter().map(|x| 1.0 / x).collect()
            };
            b = im.add_tensor(&format!("{}:operand", out_name), sb.clone(), Some(v));
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
    im.push(node, op, vec![a, b], out)?;
    Ok(())
}

/// Element-wise functions: one IR `Unary` node (the runtime's UNARY op in f32, a lookup table
/// in int8). On a constant input the values are computed now, with the runtime's own function.
fn unary(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    use sparq_format::layout::op::unary as u;
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let (function, alpha, beta) = match node.op_type.as_str() {
        "Sigmoid" => (u::SIGMOID, 0.0, 0.0),
        "Tanh" => (u::TANH, 0.0, 0.0),
        "HardSigmoid" => (u::HARD_SIGMOID, attr_f(node, "alpha", 0.2), attr_f(node, "beta", 0.5)),
        "HardSwish" => (u::HARD_SWISH, 0.0, 0.0),
        "LeakyRelu" => (u::LEAKY_RELU, attr_f(node, "alpha", 0.01), 0.0),
        "Elu" => (u::ELU, attr_f(node, "alpha", 1.0), 0.0),
        "Softplus" => (u::SOFTPLUS, 0.0, 0.0),
        "Exp" => (u::EXP, 0.0, 0.0),
        "Log" => (u::LOG, 0.0, 0.0),
        "Sqrt" => (u::SQRT, 0.0, 0.0),
        "Reciprocal" => (u::RECIPROCAL, 0.0, 0.0),
        "Neg" => (u::NEG, 0.0, 0.0),
        "Abs" => (u::ABS, 0.0, 0.0),
        "Erf" => (u::ERF, 0.0, 0.0),
        "Gelu" => match super::importer::attr_s(node, "approximate").as_deref() {
            None | Some("none") => (u::GELU, 0.0, 0.0),
            Some("tanh") => (u::GELU_TANH, 0.0, 0.0),
            Some(other) => return Err(bad(format!("Gelu approximate={other} is not supported (none, tanh)"))),
        },
        other => return Err(bad(format!("{other} is not an element-wise function"))),
    };
    if !alpha.is_finite() || !beta.is_finite() {
        return Err(bad(format!("alpha {alpha} / beta {beta} must be finite")));
    }
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    if im.g.is_const(x) {
        let f = |v: f32| sparq_runtime::kernels::unary::apply(function, alpha, beta, v);
        let v: Vec<f32> = im.g.value(x).iter().map(|&v| f(v)).collect();
        im.add_tensor(&cx.out_name.clone(), s, Some(v));
        return Ok(());
    }
    im.push(node, Op::Unary { function, alpha, beta, post: [1.0, 0.0] }, vec![x], s)?;
    Ok(())
}

/// Row-major strides of `shape`.
fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        st[a] = st[a + 1] * shape[a + 1];
    }
    st
}

/// The values of a strided window of a row-major constant (`starts`, `steps` per axis, the
/// output `shape`).
fn window_values(v: &[f32], shape: &[usize], starts: &[usize], steps: &[i64], out: &[usize]) -> Vec<f32> {
    let st = strides_of(shape);
    let n: usize = out.iter().product();
    (0..n)
        .map(|mut i| {
            let mut off = 0i64;
            for a in (0..out.len()).rev() {
                let j = (i % out[a]) as i64;
                i /= out[a];
                off += (starts[a] as i64 + j * steps[a]) * st[a] as i64;
            }
            v[off as usize]
        })
        .collect()
}

/// Transpose by `perm` (default: reversed axes); a constant input is permuted now.
fn transpose(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let perm: Vec<usize> = match attr_ints(node, "perm") {
        None => (0..s.len()).rev().collect(),
        Some(p) => p.iter().map(|&a| a as usize).collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..s.len()).collect::<Vec<_>>() {
        return Err(bad(format!("perm {perm:?} is not a permutation of {} axes", s.len())));
    }
    if s.len() > 6 {
        return Err(bad(format!("rank {} is above 6", s.len())));
    }
    let out: Vec<usize> = perm.iter().map(|&a| s[a]).collect();
    if im.g.is_const(x) {
        let st = strides_of(&s);
        let v = im.g.value(x).to_vec();
        let n: usize = out.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|mut i| {
                let mut off = 0usize;
                for a in (0..out.len()).rev() {
                    off += (i % out[a]) * st[perm[a]];
                    i /= out[a];
                }
                v[off]
            })
            .collect();
        im.add_tensor(&cx.out_name.clone(), out, Some(vals));
        return Ok(());
    }
    im.push(node, Op::Transpose { perm }, vec![x], out)?;
    Ok(())
}

/// ONNX Slice semantics for one axis of size `n`: the first index and the count.
fn slice_axis(n: usize, start: i64, end: i64, step: i64) -> (usize, usize) {
    let n = n as i64;
    let norm = |v: i64| if v < 0 { v + n } else { v };
    let (s, e) = (norm(start), norm(end));
    if step > 0 {
        let (s, e) = (s.clamp(0, n), e.clamp(0, n));
        (s as usize, ((e - s).max(0) as usize).div_ceil(step as usize))
    } else {
        let (s, e) = (s.clamp(0, n - 1), e.clamp(-1, n - 1));
        (s.max(0) as usize, ((s - e).max(0) as usize).div_ceil((-step) as usize))
    }
}

/// Slice with constant starts, ends, axes and steps (inputs since opset 10, attributes before);
/// integer constants (shape arithmetic) and float constants fold, activations become a node.
fn slice(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let inputs = &cx.inputs;
    let opt = |i: usize| inputs.get(i).filter(|n| !n.is_empty()).copied();
    let get = |im: &Importer, i: usize| -> Result<Option<Vec<i64>>> {
        opt(i).map(|n| im.ints_of(node, n).map(|c| c.data)).transpose()
    };
    let (starts, ends, axes, steps) = if im.opset < 10 {
        (attr_ints(node, "starts"), attr_ints(node, "ends"), attr_ints(node, "axes"), None)
    } else {
        (get(im, 1)?, get(im, 2)?, get(im, 3)?, get(im, 4)?)
    };
    let (starts, ends) = match (starts, ends) {
        (Some(s), Some(e)) if s.len() == e.len() => (s, e),
        _ => return Err(bad("starts and ends must be constants of one length".into())),
    };
    let data = cx.input(0)?;
    let shape = if let Some(c) = im.ints.get(data) {
        c.shape.clone()
    } else {
        let t = im.tensor_of(node, data)?;
        im.g.tensors[t].shape.clone()
    };
    let rank = shape.len();
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(bad("axes and steps must match starts in length".into()));
    }
    let (mut first, mut step, mut out) = (vec![0usize; rank], vec![1i64; rank], shape.clone());
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], rank).ok_or_else(|| bad(format!("axis {} out of range", axes[k])))?;
        if steps[k] == 0 {
            return Err(bad("a step of 0".into()));
        }
        let (s, n) = slice_axis(shape[a], starts[k], ends[k], steps[k]);
        if n == 0 && !im.ints.contains_key(data) {
            // (An empty integer constant is fine: shape arithmetic, e.g. `shape[dim + 1:]`.)
            return Err(bad(format!("the slice of axis {a} is empty (zero-size tensors are not supported)")));
        }
        (first[a], step[a], out[a]) = (s, steps[k], n);
    }
    let out_name = cx.out_name.clone();
    if let Some(c) = im.ints.get(data).cloned() {
        let v: Vec<f32> = c.data.iter().map(|&x| x as f32).collect();
        let vals = window_values(&v, &c.shape, &first, &step, &out);
        im.ints.insert(out_name, IntConst { shape: out, data: vals.iter().map(|&x| x as i64).collect() });
        return Ok(());
    }
    let x = im.tensor_of(node, data)?;
    if im.g.is_const(x) {
        let vals = window_values(im.g.value(x), &shape, &first, &step, &out);
        im.add_tensor(&out_name, out, Some(vals));
        return Ok(());
    }
    if rank > 6 {
        return Err(bad(format!("rank {rank} is above 6")));
    }
    im.push(node, Op::Slice { starts: first, steps: step }, vec![x], out)?;
    Ok(())
}

/// Split along `axis` into the sizes of the `split` input (attribute before opset 13) or equal
/// parts: one Slice node per output.
fn split(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let x = im.tensor_of(node, cx.input(0)?)?;
    let shape = im.g.tensors[x].shape.clone();
    let axis = norm_axis(attr_i(node, "axis", 0), shape.len()).ok_or_else(|| bad("axis out of range".into()))?;
    let outputs = node.output.len();
    let sizes: Vec<usize> = match (im.opset >= 13, cx.inputs.get(1).filter(|n| !n.is_empty())) {
        (true, Some(n)) => im.ints_of(node, n)?.data.iter().map(|&v| v.max(0) as usize).collect(),
        (false, _) if attr_ints(node, "split").is_some() => {
            attr_ints(node, "split").unwrap_or_default().iter().map(|&v| v.max(0) as usize).collect()
        }
        _ => {
            let parts = outputs.max(1);
            let each = shape[axis].div_ceil(parts);
            (0..parts).map(|k| each.min(shape[axis].saturating_sub(k * each))).collect()
        }
    };
    if sizes.len() != outputs || sizes.iter().sum::<usize>() != shape[axis] || sizes.contains(&0) {
        return Err(bad(format!("split sizes {sizes:?} do not cut axis {axis} of {shape:?} into {outputs} parts")));
    }
    let mut at = 0;
    for (k, &n) in sizes.iter().enumerate() {
        let mut starts = vec![0usize; shape.len()];
        starts[axis] = at;
        let mut out = shape.clone();
        out[axis] = n;
        if node.output[k].is_empty() {
            at += n;
            continue;
        }
        im.push_output(node, k, Op::Slice { starts, steps: vec![1; shape.len()] }, vec![x], out)?;
        at += n;
    }
    Ok(())
}

/// Add, Sub, Mul, Div of integer constants (shape arithmetic, e.g. a channel count halved for a
/// split), folded at import with numpy broadcasting; Div truncates toward zero as ONNX's integer
/// Div does.
fn binary_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let (a, b) = (im.ints_of(node, cx.input(0)?)?, im.ints_of(node, cx.input(1)?)?);
    let shape = broadcast(&a.shape, &b.shape)
        .ok_or_else(|| bad(format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape)))?;
    let n: usize = shape.iter().product();
    if !(a.data.len() == 1 || a.data.len() == n) || !(b.data.len() == 1 || b.data.len() == n) {
        return Err(bad("integer broadcasting beyond scalars is not supported".into()));
    }
    let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let data = (0..n)
        .map(|i| {
            let (x, y) = (at(&a.data, i), at(&b.data, i));
            match node.op_type.as_str() {
                "Add" => Ok(x.wrapping_add(y)),
                "Sub" => Ok(x.wrapping_sub(y)),
                "Mul" => Ok(x.wrapping_mul(y)),
                _ => x.checked_div(y).ok_or_else(|| bad("integer division by zero".into())),
            }
        })
        .collect::<Result<Vec<i64>>>()?;
    im.ints.insert(cx.out_name.clone(), IntConst { shape, data });
    Ok(())
}

/// Resize (opset 10+) and Upsample of the spatial axes of `[N, C, H, W]`: constant scales or
/// sizes (shape arithmetic folds to them), modes nearest and linear, every coordinate
/// transformation but tf_crop_and_resize (half_pixel_symmetric needs format 1.5), every nearest
/// rounding.
fn resize(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    use super::importer::attr_s;
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let x = im.tensor_of(node, cx.input(0)?)?;
    let [n, c, h, w] = im.rank4(node, x)?;
    let mode = attr_s(node, "mode").unwrap_or_else(|| "nearest".into());
    let (linear, cubic) = match mode.as_str() {
        "nearest" => (false, None),
        "linear" | "bilinear" => (true, None),
        "cubic" => (false, Some((attr_f(node, "cubic_coeff_a", -0.75), attr_i(node, "exclude_outside", 0) != 0))),
        other => return Err(bad(format!("mode={other} is not supported (nearest, linear, cubic)"))),
    };
    let coord_name = attr_s(node, "coordinate_transformation_mode").unwrap_or_else(|| {
        // Before opset 11 (and for Upsample) the transformation was asymmetric.
        if im.opset < 11 || node.op_type == "Upsample" {
            "asymmetric".into()
        } else {
            "half_pixel".into()
        }
    });
    let coord = match coord_name.as_str() {
        "half_pixel" => 0,
        "asymmetric" => 1,
        "align_corners" => 2,
        "pytorch_half_pixel" => 3,
        "tf_half_pixel_for_nn" => 4,
        "half_pixel_symmetric" => 5,
        other => return Err(bad(format!("coordinate_transformation_mode={other} is not supported"))),
    };
    if attr_i(node, "antialias", 0) != 0 {
        return Err(bad("antialias=1 is not supported".into()));
    }
    // Before opset 11 (and for Upsample), nearest took the floor of the source coordinate.
    let default_nearest = if im.opset < 11 || node.op_type == "Upsample" { "floor" } else { "round_prefer_floor" };
    let nearest = match attr_s(node, "nearest_mode").as_deref().unwrap_or(default_nearest) {
        "round_prefer_floor" => 0,
        "round_prefer_ceil" => 1,
        "floor" => 2,
        "ceil" => 3,
        other => return Err(bad(format!("nearest_mode={other} is not supported"))),
    };
    // Scales: input 1 (opset 9 Upsample, 10), input 2 (11+); sizes: input 3 (11+).
    let opt = |i: usize| cx.inputs.get(i).copied().filter(|s| !s.is_empty());
    let scales_input = if im.opset >= 11 && node.op_type == "Resize" { opt(2) } else { opt(1) };
    let sizes_input = if im.opset >= 11 { opt(3) } else { None };
    let floats = |im: &mut Importer, name: &str| -> Result<Vec<f32>> {
        let t = im.tensor_of(node, name)?;
        if !im.g.is_const(t) {
            return Err(bad("scales must be a constant".into()));
        }
        Ok(im.g.value(t).to_vec())
    };
    // Opset 18: scales or sizes for the listed axes only.
    let axes: Option<Vec<usize>> = match attr_ints(node, "axes") {
        None => None,
        Some(a) => Some(
            a.iter()
                .map(|&v| norm_axis(v, 4).ok_or_else(|| bad(format!("axis {v} out of range"))))
                .collect::<Result<_>>()?,
        ),
    };
    let widen = |v: Vec<f64>, fill: [f64; 4]| -> Result<Vec<f64>> {
        match &axes {
            None => Ok(v),
            Some(a) if a.len() == v.len() => {
                let mut full = fill.to_vec();
                for (&ax, x) in a.iter().zip(v) {
                    full[ax] = x;
                }
                Ok(full)
            }
            Some(a) => Err(bad(format!("{} values for axes {a:?}", v.len()))),
        }
    };
    let dims = [n as f64, c as f64, h as f64, w as f64];
    let (scales, out) = match (sizes_input, scales_input) {
        (Some(sz), _) => {
            let raw = im.ints_of(node, sz)?.data.iter().map(|&v| v as f64).collect();
            let mut full = widen(raw, dims)?;
            let policy = attr_s(node, "keep_aspect_ratio_policy").unwrap_or_else(|| "stretch".into());
            if policy != "stretch" && full.len() == 4 {
                // One scale for the resized axes: the smallest (not_larger) or largest (not_smaller).
                let listed: Vec<usize> = axes.clone().unwrap_or_else(|| (0..4).collect());
                let ratios = listed.iter().map(|&a| full[a] / dims[a]);
                let r = match policy.as_str() {
                    "not_larger" => ratios.fold(f64::INFINITY, f64::min),
                    "not_smaller" => ratios.fold(0.0, f64::max),
                    p => return Err(bad(format!("keep_aspect_ratio_policy={p} is not supported"))),
                };
                for &a in &listed {
                    full[a] = (dims[a] * r).round();
                }
            }
            let sizes: Vec<i64> = full.iter().map(|&v| v as i64).collect();
            if sizes.len() != 4 || sizes[0] != n as i64 || sizes[1] != c as i64 || sizes[2] < 1 || sizes[3] < 1 {
                return Err(bad(format!("sizes {sizes:?} must keep N and C and be positive")));
            }
            let (oh, ow) = (sizes[2] as usize, sizes[3] as usize);
            ([oh as f32 / h as f32, ow as f32 / w as f32], [oh, ow])
        }
        (None, Some(sc)) => {
            let raw: Vec<f64> = match im.ints.get(sc) {
                Some(c) => c.data.iter().map(|&v| v as f64).collect(),
                None => floats(im, sc)?.iter().map(|&v| v as f64).collect(),
            };
            let s: Vec<f32> = widen(raw, [1.0; 4])?.iter().map(|&v| v as f32).collect();
            if s.len() != 4 || s[0] != 1.0 || s[1] != 1.0 || !(s[2] > 0.0 && s[3] > 0.0) {
                return Err(bad(format!("scales {s:?} must be [1, 1, sh, sw] with positive sh, sw")));
            }
            let (oh, ow) = ((h as f32 * s[2]).floor() as usize, (w as f32 * s[3]).floor() as usize);
            ([s[2], s[3]], [oh, ow])
        }
        (None, None) => {
            // Upsample before opset 9: a `scales` attribute.
            let s: Vec<f32> = attr(node, "scales").map(|a| a.floats.clone()).unwrap_or_default();
            if s.len() != 4 || s[0] != 1.0 || s[1] != 1.0 || !(s[2] > 0.0 && s[3] > 0.0) {
                return Err(bad("needs constant scales or sizes".into()));
            }
            ([s[2], s[3]], [(h as f32 * s[2]).floor() as usize, (w as f32 * s[3]).floor() as usize])
        }
    };
    if out[0] == 0 || out[1] == 0 {
        return Err(bad("the output would be empty (zero-size tensors are not supported)".into()));
    }
    im.push(node, Op::Resize { linear, cubic, coord, nearest, scales }, vec![x], vec![n, c, out[0], out[1]])?;
    Ok(())
}

/// Pad with constant pads (input since opset 11, attribute before), modes constant (with a
/// constant value), reflect and edge. Negative pads (cropping) are not supported.
fn pad(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    use super::importer::attr_s;
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let x = im.tensor_of(node, cx.input(0)?)?;
    let shape = im.g.tensors[x].shape.clone();
    let rank = shape.len();
    let opt = |i: usize| cx.inputs.get(i).copied().filter(|s| !s.is_empty());
    let pads = if im.opset >= 11 {
        im.ints_of(node, opt(1).ok_or_else(|| bad("pads must be given".into()))?)?.data
    } else {
        attr_ints(node, "pads").or_else(|| attr_ints(node, "paddings")).unwrap_or_default()
    };
    // Opset 18: pads for the listed axes only (begins, then ends).
    let pads = match opt(3) {
        None => pads,
        Some(a) => {
            let axes = im.ints_of(node, a)?.data;
            if pads.len() != 2 * axes.len() {
                return Err(bad(format!("{} pads for {} axes", pads.len(), axes.len())));
            }
            let mut full = vec![0i64; 2 * rank];
            for (k, &ax) in axes.iter().enumerate() {
                let ax = norm_axis(ax, rank).ok_or_else(|| bad(format!("axis {ax} out of range")))?;
                full[ax] = pads[k];
                full[rank + ax] = pads[axes.len() + k];
            }
            full
        }
    };
    if pads.len() != 2 * rank || rank > 6 {
        return Err(bad(format!("{} pads for a rank-{rank} input", pads.len())));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(bad(format!("negative pads {pads:?} (cropping) are not supported")));
    }
    let mode = match attr_s(node, "mode").as_deref().unwrap_or("constant") {
        "constant" => 0,
        "reflect" => 1,
        "edge" => 2,
        other => return Err(bad(format!("mode={other} is not supported (constant, reflect, edge)"))),
    };
    let value = match (im.opset >= 11, opt(2)) {
        (true, Some(v)) => {
            let t = im.tensor_of(node, v)?;
            match im.g.tensors[t].value.as_deref() {
                Some([v]) => *v,
                _ => return Err(bad("constant_value must be a scalar constant".into())),
            }
        }
        (true, None) => 0.0,
        (false, _) => attr_f(node, "value", 0.0),
    };
    let (before, after): (Vec<usize>, Vec<usize>) =
        (pads[..rank].iter().map(|&p| p as usize).collect(), pads[rank..].iter().map(|&p| p as usize).collect());
    if mode == 1 && (0..rank).any(|a| before[a] >= shape[a] || after[a] >= shape[a]) {
        return Err(bad(format!("reflect pads {pads:?} must be smaller than the input's dims {shape:?}")));
    }
    let out: Vec<usize> = (0..rank).map(|a| shape[a] + before[a] + after[a]).collect();
    im.push(node, Op::Pad { before, after, mode, value }, vec![x], out)?;
    Ok(())
}

/// Relu: a clamp to `[0, inf]` (fused into its producer by the rewrites).
fn relu(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let input = |i: usize| cx.input(i);
    let x = im.tensor_of(node, input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    im.push(node, Op::Clip { act: Act { lo: 0.0, hi: f32::INFINITY } }, vec![x], s)?;
    Ok(())
}

/// Clip with constant bounds (attributes before opset 11, inputs after).
fn clip(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let inputs = &cx.inputs;
    let x = im.tensor_of(node, input(0)?)?;
    let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
    if im.opset < 11 {
        lo = attr_f(node, "min", lo);
        hi = attr_f(node, "max", hi);
    } else {
        for (i, slot) in [(1usize, &mut lo), (2, &mut hi)] {
            if let Some(nm) = inputs.get(i).filter(|s| !s.is_empty()) {
                let t = im.tensor_of(node, nm)?;
                let v = im.g.value(t);
                if !im.g.is_const(t) || v.len() != 1 {
                    return Err(bad("min and max must be scalar constants".into()));
                }
                *slot = v[0];
            }
        }
    }
    if lo > hi {
        return Err(bad(format!("min {lo} is above max {hi}")));
    }
    let s = im.g.tensors[x].shape.clone();
    im.push(node, Op::Clip { act: Act { lo, hi } }, vec![x], s)?;
    Ok(())
}

/// MaxPool and AveragePool over a 1-d, 2-d or 3-d window. A 3-d window is separable (the max of
/// a box is the max over depth of the max over height and width; so is the mean, as the box's tap
/// count is the product of its axes' counts): it becomes a depth window and a 2-d window, which
/// the lowering runs as two 2-d pooling passes.
fn pool(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    if node.output.len() > 1 && !node.output[1].is_empty() {
        return Err(bad("the Indices output is not supported".into()));
    }
    let x = im.tensor_of(node, cx.input(0)?)?;
    let shape = im.g.tensors[x].shape.clone();
    let count_include_pad = attr_i(node, "count_include_pad", 0) != 0;
    let (window, depth, out) = match shape[..] {
        [n, c, d, h, w] => {
            let (depth_node, hw_node) = split_3d(cx)?;
            let (dw, [od, _]) = pool_window(im, cx, &depth_node, [d, h * w], count_include_pad)?;
            let (window, [oh, ow]) = pool_window(im, cx, &hw_node, [h, w], count_include_pad)?;
            (window, Some(dw), vec![n, c, od, oh, ow])
        }
        _ => {
            let one_d = shape.len() == 3;
            let node2d = one_d.then(|| as_2d(node));
            let node = node2d.as_ref().unwrap_or(node);
            let [n, c, h, w] = window_input(im, node, x)?;
            let (window, [oh, ow]) = pool_window(im, cx, node, [h, w], count_include_pad)?;
            (window, None, if one_d { vec![n, c, ow] } else { vec![n, c, oh, ow] })
        }
    };
    let op = if node.op_type == "MaxPool" {
        Op::MaxPool { window, depth }
    } else {
        Op::AveragePool { window, depth, count_include_pad }
    };
    im.push(node, op, vec![x], out)?;
    Ok(())
}

/// The 2-d window of a pooling node (attributes as a 2-d node's) over an `in_hw` input, with
/// ceil_mode's last partial window, and the output extent.
fn pool_window(
    im: &Importer,
    cx: &NodeCx<'_>,
    node: &tract_onnx::pb::NodeProto,
    [h, w]: [usize; 2],
    count_include_pad: bool,
) -> Result<(Window, [usize; 2])> {
    let bad = |r: String| cx.bad(r);
    let k = attr_ints(node, "kernel_shape").filter(|k| k.len() == 2 && k.iter().all(|&v| v >= 1));
    let k = k.ok_or_else(|| bad("kernel_shape must have one positive value per spatial axis".into()))?;
    let mut window = im.window(node, [h, w], [k[0] as usize, k[1] as usize])?;
    let [mut oh, mut ow] = im.window_out(node, &window, [h, w])?;
    if attr_i(node, "ceil_mode", 0) != 0 {
        // ceil_mode: a last, partial window where the floor would drop it, unless it would start
        // past the input and the leading padding (as ONNX Runtime and PyTorch count). It reads
        // extra padding at the end, which pooling ignores (max) or leaves out of the divisor.
        for (a, out) in [&mut oh, &mut ow].into_iter().enumerate() {
            let (input, stride) = ([h, w][a], window.strides[a]);
            let span = (window.kernel[a] - 1) * window.dilations[a] + 1;
            let padded = input + window.pads[a] + window.pads[a + 2];
            let mut ceil = (padded - span).div_ceil(stride) + 1;
            if (ceil - 1) * stride >= input + window.pads[a] {
                ceil -= 1;
            }
            let extra = ((ceil - 1) * stride + span).saturating_sub(padded);
            if extra > 0 && node.op_type == "AveragePool" && count_include_pad {
                return Err(bad(
                    "ceil_mode=1 with count_include_pad=1 and a partial last window is not supported".into()
                ));
            }
            window.pads[a + 2] += extra;
            *out = ceil;
        }
    }
    Ok((window, [oh, ow]))
}

/// A 3-d window node's attributes as two 2-d nodes: the depth window (kernel `[kd, 1]` over
/// `[D, H*W]`) and the height-width window.
fn split_3d(cx: &NodeCx<'_>) -> Result<(tract_onnx::pb::NodeProto, tract_onnx::pb::NodeProto)> {
    let (mut depth, mut hw) = (cx.node.clone(), cx.node.clone());
    for (d, h) in depth.attribute.iter_mut().zip(&mut hw.attribute) {
        let v = d.ints.clone();
        match (d.name.as_str(), v.len()) {
            ("kernel_shape" | "strides" | "dilations", 3) => {
                d.ints = vec![v[0], 1];
                h.ints = vec![v[1], v[2]];
            }
            ("pads", 6) => {
                d.ints = vec![v[0], 0, v[3], 0];
                h.ints = vec![v[1], v[2], v[4], v[5]];
            }
            ("kernel_shape" | "strides" | "dilations" | "pads", n) => {
                return Err(cx.bad(format!("attribute {} has {n} values for 3 spatial axes", d.name)));
            }
            _ => {}
        }
    }
    Ok((depth, hw))
}

/// Flatten: a Reshape to two dimensions.
fn flatten(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let x = im.tensor_of(node, input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let a = attr_i(node, "axis", 1);
    let a = if a < 0 { a + s.len() as i64 } else { a };
    if !(0..=s.len() as i64).contains(&a) {
        return Err(bad(format!("axis {} out of range for rank {}", attr_i(node, "axis", 1), s.len())));
    }
    let axis = a as usize;
    let out = vec![s[..axis].iter().product(), s[axis..].iter().product()];
    im.push(node, Op::Reshape, vec![x], out)?;
    Ok(())
}

/// Reshape to a constant target shape (`0` copies, `-1` infers); a constant input folds.
fn reshape(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let x = im.tensor_of(node, input(0)?)?;
    let spec = im.ints_of(node, input(1)?)?.data;
    let s = im.g.tensors[x].shape.clone();
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
            0 if !allow_zero => out.push(*s.get(i).ok_or_else(|| bad("0 in shape refers past the input rank".into()))?),
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
    if im.g.is_const(x) {
        let v = im.g.value(x).to_vec();
        im.add_tensor(&out_name, out, Some(v));
    } else {
        im.push(node, Op::Reshape, vec![x], out)?;
    }
    Ok(())
}

/// Concat of float tensors (integer constants fold, see `concat_ints`).
fn concat(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let inputs = &cx.inputs;
    let ids = inputs.iter().filter(|s| !s.is_empty()).map(|s| im.tensor_of(node, s)).collect::<Result<Vec<_>>>()?;
    let Some(&first_id) = ids.first() else {
        return Err(bad("Concat without inputs".into()));
    };
    let first = im.g.tensors[first_id].shape.clone();
    let axis = norm_axis(attr_i(node, "axis", 0), first.len()).ok_or_else(|| bad("axis out of range".into()))?;
    let mut out = first.clone();
    out[axis] = 0;
    for &i in &ids {
        let s = &im.g.tensors[i].shape;
        if s.len() != first.len() || (0..s.len()).any(|d| d != axis && s[d] != first[d]) {
            return Err(bad(format!("input shapes {first:?} and {s:?} differ outside axis {axis}")));
        }
        out[axis] += s[axis];
    }
    im.push(node, Op::Concat { axis }, ids, out)?;
    Ok(())
}

/// Softmax over one axis.
fn softmax(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let x = im.tensor_of(node, input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let default = if im.opset < 13 { 1 } else { -1 };
    let axis = norm_axis(attr_i(node, "axis", default), s.len()).ok_or_else(|| bad("axis out of range".into()))?;
    if im.opset < 13 && s[axis + 1..].iter().any(|&d| d != 1) {
        return Err(bad("opset < 13 Softmax over several trailing axes is not supported".into()));
    }
    im.push(node, Op::Softmax { axis }, vec![x], s)?;
    Ok(())
}

/// Inference BatchNormalization: a per-channel affine (folded into its producer by the rewrites).
fn batch_norm(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let bad = |r: String| cx.bad(r);
    let input = |i: usize| cx.input(i);
    let out_name = cx.out_name.clone();
    let x = im.tensor_of(node, input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    if s.len() < 2 {
        return Err(bad("input must have a channel axis".into()));
    }
    let c = s[1];
    let mut vals = Vec::new();
    for i in 1..5 {
        let t = im.tensor_of(node, input(i)?)?;
        if !im.g.is_const(t) || im.g.tensors[t].elements() != c {
            return Err(bad("scale, bias, mean and variance must be constants with one value per channel".into()));
        }
        vals.push(im.g.value(t).to_vec());
    }
    let eps = attr_f(node, "epsilon", 1e-5);
    let scale: Vec<f32> = (0..c).map(|i| vals[0][i] / (vals[3][i] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..c).map(|i| vals[1][i] - vals[2][i] * scale[i]).collect();
    let st = im.add_tensor(&format!("{}:scale", out_name), vec![c], Some(scale));
    let sh = im.add_tensor(&format!("{}:shift", out_name), vec![c], Some(shift));
    im.push(node, Op::ChannelAffine { act: Act::NONE }, vec![x, st, sh], s)?;
    Ok(())
}
