//! Importers of the general tensor operators (format 1.4 and the movements built from 1.3 kinds):
//! MatMul and Gemm of activations, Sub/Div/Min/Max/Pow, reductions and ArgMax/ArgMin,
//! LayerNormalization and InstanceNormalization, Gather, DepthToSpace/SpaceToDepth, Tile and
//! Expand; and the folding of constant shape arithmetic (ConstantOfShape, Range, Equal, Where,
//! Cast to float) and of float math on constants.

use super::importer::{attr, attr_f, attr_i, attr_ints, attr_s, broadcast, norm_axis, Importer, IntConst, NodeCx};
use crate::error::Result;
use crate::ir::Op;
use sparq_format::layout::op::{binary as bf, reduce as rf};

/// Strides of a row-major shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Values of `v` (row-major `shape`) broadcast to `out` (numpy rules).
fn broadcast_values<T: Copy>(v: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    let n: usize = out.iter().product();
    let ost = strides(out);
    (0..n)
        .map(|i| {
            let mut src = 0;
            for a in 0..shape.len() {
                let idx = (i / ost[off + a]) % out[off + a];
                if shape[a] != 1 {
                    src += idx * st[a];
                }
            }
            v[src]
        })
        .collect()
}

/// MatMul of two tensors, at least one computed (numpy `matmul` shapes).
pub(super) fn matmul_activations(im: &mut Importer, cx: &NodeCx<'_>, a: usize, b: usize) -> Result<()> {
    let (sa, sb) = (im.g.tensors[a].shape.clone(), im.g.tensors[b].shape.clone());
    if sa.is_empty() || sb.is_empty() {
        return Err(cx.bad("MatMul of a scalar is not defined".into()));
    }
    let a2 = if sa.len() == 1 { vec![1, sa[0]] } else { sa.clone() };
    let b2 = if sb.len() == 1 { vec![sb[0], 1] } else { sb.clone() };
    let (ra, rb) = (a2.len(), b2.len());
    if a2[ra - 1] != b2[rb - 2] {
        return Err(cx.bad(format!("shapes {sa:?} and {sb:?} do not multiply")));
    }
    let mut out = broadcast(&a2[..ra - 2], &b2[..rb - 2])
        .ok_or_else(|| cx.bad(format!("batch axes of {sa:?} and {sb:?} do not broadcast")))?;
    if sa.len() > 1 {
        out.push(a2[ra - 2]);
    }
    if sb.len() > 1 {
        out.push(b2[rb - 1]);
    }
    if im.g.is_const(a) && im.g.is_const(b) {
        return Err(cx.bad("both operands are constants (fold the product before export)".into()));
    }
    im.push(cx.node, Op::MatMul { trans_a: false, trans_b: false, alpha: 1.0, beta: 0.0 }, vec![a, b], out)
}

/// Gemm with a computed operand or transA: `alpha A' B' + beta C`.
pub(super) fn gemm_activations(im: &mut Importer, cx: &NodeCx<'_>, a: usize, b: usize) -> Result<()> {
    let node = cx.node;
    let (sa, sb) = (im.g.tensors[a].shape.clone(), im.g.tensors[b].shape.clone());
    if sa.len() != 2 || sb.len() != 2 {
        return Err(cx.bad(format!("A and B must be 2-d, got {sa:?} and {sb:?}")));
    }
    let (trans_a, trans_b) = (attr_i(node, "transA", 0) != 0, attr_i(node, "transB", 0) != 0);
    let (m, k) = if trans_a { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let (k2, n) = if trans_b { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
    if k != k2 {
        return Err(cx.bad(format!("A {sa:?} and B {sb:?} do not multiply (transA={trans_a}, transB={trans_b})")));
    }
    let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
    let mut inputs = vec![a, b];
    if let Some(cn) = cx.inputs.get(2).filter(|s| !s.is_empty()) {
        let c = im.tensor_of(node, cn)?;
        let sc = im.g.tensors[c].shape.clone();
        if broadcast(&sc, &[m, n]).as_deref() != Some(&[m, n][..]) {
            return Err(cx.bad(format!("C {sc:?} does not broadcast to [{m}, {n}]")));
        }
        if !im.g.is_const(c) && beta != 1.0 {
            return Err(cx.bad(format!("a computed C with beta={beta} is not supported (beta 1 is)")));
        }
        if beta != 0.0 {
            inputs.push(c);
        }
    }
    im.push(node, Op::MatMul { trans_a, trans_b, alpha, beta }, inputs, vec![m, n])
}

/// `f(a, b)` over two constants with numpy broadcasting.
fn fold_f32(im: &mut Importer, cx: &NodeCx<'_>, a: usize, b: usize, f: impl Fn(f32, f32) -> f32) -> Result<()> {
    let (sa, sb) = (im.g.tensors[a].shape.clone(), im.g.tensors[b].shape.clone());
    let out = broadcast(&sa, &sb).ok_or_else(|| cx.bad(format!("shapes {sa:?} and {sb:?} do not broadcast")))?;
    let va = broadcast_values(im.g.value(a), &sa, &out);
    let vb = broadcast_values(im.g.value(b), &sb, &out);
    let v = va.iter().zip(&vb).map(|(&x, &y)| f(x, y)).collect();
    im.add_tensor(&cx.out_name, out, Some(v));
    Ok(())
}

/// Add, Sub, Mul, Div, Pow, Min, Max of constants: computed now (the runtime's functions).
pub(super) fn fold_binary(im: &mut Importer, cx: &NodeCx<'_>, a: usize, b: usize) -> Result<()> {
    let code = match cx.node.op_type.as_str() {
        "Add" => return fold_f32(im, cx, a, b, |x, y| x + y),
        "Mul" => return fold_f32(im, cx, a, b, |x, y| x * y),
        "Sub" => bf::SUB,
        "Div" => bf::DIV,
        "Min" => bf::MIN,
        "Max" => bf::MAX,
        _ => bf::POW,
    };
    fold_f32(im, cx, a, b, |x, y| sparq_runtime::kernels::elementwise::binary_f32(code, x, y))
}

/// Sub and Div by a computed divisor, Pow, Min and Max (two or more inputs).
pub(super) fn binary_fn(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let ids = cx.inputs.iter().filter(|s| !s.is_empty()).map(|s| im.tensor_of(node, s)).collect::<Result<Vec<_>>>()?;
    let function = match node.op_type.as_str() {
        "Sub" => bf::SUB,
        "Div" => bf::DIV,
        "Min" => bf::MIN,
        "Max" => bf::MAX,
        _ => bf::POW,
    };
    if ids.is_empty() {
        return Err(cx.bad("no inputs".into()));
    }
    if ids.len() == 1 {
        im.names.insert(cx.out_name.clone(), ids[0]);
        return Ok(());
    }
    if ids.len() > 2 && !matches!(function, bf::MIN | bf::MAX) {
        return Err(cx.bad("takes two inputs".into()));
    }
    if ids.iter().all(|&t| im.g.is_const(t)) && ids.len() == 2 {
        return fold_binary(im, cx, ids[0], ids[1]);
    }
    let mut out = im.g.tensors[ids[0]].shape.clone();
    for &t in &ids[1..] {
        let s = &im.g.tensors[t].shape;
        out = broadcast(&out, s).ok_or_else(|| cx.bad(format!("shapes {out:?} and {s:?} do not broadcast")))?;
    }
    if function == bf::POW {
        // x^2 is x * x (int8-capable); x^0.5 a square root.
        let e = ids[1];
        if im.g.is_const(e) && im.g.tensors[e].elements() == 1 && out == im.g.tensors[ids[0]].shape {
            let v = im.g.value(e)[0];
            if v == 2.0 {
                return im.push(node, Op::Mul { act: crate::ir::Act::NONE }, vec![ids[0], ids[0]], out);
            }
            if v == 1.0 {
                im.names.insert(cx.out_name.clone(), ids[0]);
                return Ok(());
            }
        }
    }
    im.push(node, Op::Binary { function }, ids, out)
}

/// The axes of a reduction: the `axes` input (opset 18; ReduceSum 13) or attribute, normalized
/// and sorted; empty means all axes unless `noop_with_empty_axes`.
fn reduce_axes(im: &Importer, cx: &NodeCx<'_>, rank: usize) -> Result<Option<Vec<usize>>> {
    let node = cx.node;
    let axes = match cx.inputs.get(1).filter(|n| !n.is_empty()) {
        Some(n) => Some(im.ints_of(node, n)?.data),
        None => attr_ints(node, "axes"),
    };
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&v| norm_axis(v, rank).ok_or_else(|| cx.bad(format!("axis {v} out of range"))))
            .collect::<Result<_>>()?,
        _ if attr_i(node, "noop_with_empty_axes", 0) != 0 => return Ok(None),
        _ => (0..rank).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    Ok(Some(axes))
}

fn reduced_shape(s: &[usize], axes: &[usize], keep: bool) -> Vec<usize> {
    (0..s.len()).filter_map(|a| if axes.contains(&a) { keep.then_some(1) } else { Some(s[a]) }).collect()
}

/// ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp over any axes.
pub(super) fn reduce(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let function = match node.op_type.as_str() {
        "ReduceSum" => rf::SUM,
        "ReduceMean" => rf::MEAN,
        "ReduceMax" => rf::MAX,
        "ReduceMin" => rf::MIN,
        "ReduceProd" => rf::PROD,
        "ReduceL1" => rf::L1,
        "ReduceL2" => rf::L2,
        "ReduceSumSquare" => rf::SUM_SQUARE,
        "ReduceLogSum" => rf::LOG_SUM,
        _ => rf::LOG_SUM_EXP,
    };
    let Some(axes) = reduce_axes(im, cx, s.len())? else {
        im.names.insert(cx.out_name.clone(), x);
        return Ok(());
    };
    let keep = attr_i(node, "keepdims", 1) != 0;
    if function == rf::MEAN && s.len() == 4 && axes == [2, 3] {
        // A global average pool (int8-capable).
        let out = if keep { vec![s[0], s[1], 1, 1] } else { vec![s[0], s[1]] };
        return im.push(node, Op::GlobalAveragePool, vec![x], out);
    }
    let out = reduced_shape(&s, &axes, keep);
    im.push(node, Op::Reduce { function, axes, select_last: false }, vec![x], out)
}

/// ArgMax / ArgMin along one axis (the index as f32).
pub(super) fn arg_reduce(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let axis = norm_axis(attr_i(node, "axis", 0), s.len()).ok_or_else(|| cx.bad("axis out of range".into()))?;
    let function = if node.op_type == "ArgMax" { rf::ARGMAX } else { rf::ARGMIN };
    let out = reduced_shape(&s, &[axis], attr_i(node, "keepdims", 1) != 0);
    let select_last = attr_i(node, "select_last_index", 0) != 0;
    im.push(node, Op::Reduce { function, axes: vec![axis], select_last }, vec![x], out)
}

/// GlobalMaxPool (and GlobalAveragePool of other than rank 4): a reduction over the axes from 2.
pub(super) fn global_pool(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    if s.len() < 3 {
        return Err(cx.bad(format!("input {s:?} has no spatial axes")));
    }
    if node.op_type == "GlobalAveragePool" && s.len() == 4 {
        return im.push(node, Op::GlobalAveragePool, vec![x], vec![s[0], s[1], 1, 1]);
    }
    let function = if node.op_type == "GlobalMaxPool" { rf::MAX } else { rf::MEAN };
    let axes: Vec<usize> = (2..s.len()).collect();
    let out = reduced_shape(&s, &axes, true);
    im.push(node, Op::Reduce { function, axes, select_last: false }, vec![x], out)
}

/// A constant operand of a normalization broadcast to `shape` (row-major values).
fn const_to(im: &mut Importer, cx: &NodeCx<'_>, i: usize, shape: &[usize], default: f32) -> Result<Vec<f32>> {
    let n: usize = shape.iter().product();
    let Some(name) = cx.inputs.get(i).filter(|s| !s.is_empty()) else {
        return Ok(vec![default; n]);
    };
    let t = im.tensor_of(cx.node, name)?;
    let ts = &im.g.tensors[t].shape;
    if !im.g.is_const(t) || broadcast(ts, shape).as_deref() != Some(shape) {
        return Err(cx.bad(format!("input {i} must be a constant broadcasting to {shape:?}")));
    }
    Ok(broadcast_values(im.g.value(t), ts, shape))
}

/// LayerNormalization over the axes from `axis`, with constant scale and bias.
pub(super) fn layer_norm(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let axis = norm_axis(attr_i(node, "axis", -1), s.len()).ok_or_else(|| cx.bad("axis out of range".into()))?;
    let eps = attr_f(node, "epsilon", 1e-5);
    let inner = &s[axis..];
    let scale = const_to(im, cx, 1, inner, 1.0)?;
    let bias = const_to(im, cx, 2, inner, 0.0)?;
    let st = im.add_tensor(&format!("{}:scale", cx.out_name), inner.to_vec(), Some(scale));
    let bt = im.add_tensor(&format!("{}:bias", cx.out_name), inner.to_vec(), Some(bias));
    let y = im.add_tensor(&cx.out_name, s.clone(), None);
    let mut outputs = vec![y];
    let mut stats = [false; 2];
    // Mean and InvStdDev (training-time outputs, supported for completeness): keepdims shapes.
    let kept: Vec<usize> = (0..s.len()).map(|a| if a >= axis { 1 } else { s[a] }).collect();
    for (k, stat) in stats.iter_mut().enumerate() {
        if let Some(name) = node.output.get(k + 1).filter(|o| !o.is_empty()) {
            *stat = true;
            outputs.push(im.add_tensor(name, kept.clone(), None));
        }
    }
    let name = if node.name.is_empty() { cx.out_name.clone() } else { node.name.clone() };
    im.g.nodes.push(crate::ir::Node {
        name,
        onnx_op: node.op_type.clone(),
        op: Op::Normalize { axis, eps, per_channel: false, stats },
        inputs: vec![x, st, bt],
        outputs,
    });
    Ok(())
}

/// InstanceNormalization: normalization over the spatial axes, per-channel constant affine.
pub(super) fn instance_norm(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    if s.len() < 3 {
        return Err(cx.bad(format!("input {s:?} has no spatial axes")));
    }
    let scale = const_to(im, cx, 1, &[s[1]], 1.0)?;
    let bias = const_to(im, cx, 2, &[s[1]], 0.0)?;
    let st = im.add_tensor(&format!("{}:scale", cx.out_name), vec![s[1]], Some(scale));
    let bt = im.add_tensor(&format!("{}:bias", cx.out_name), vec![s[1]], Some(bias));
    let eps = attr_f(node, "epsilon", 1e-5);
    im.push(node, Op::Normalize { axis: 2, eps, per_channel: true, stats: [false; 2] }, vec![x, st, bt], s)
}

/// Gather along an axis with constant indices: folded when the data is constant too.
pub(super) fn gather(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let s = im.g.tensors[x].shape.clone();
    let axis = norm_axis(attr_i(node, "axis", 0), s.len()).ok_or_else(|| cx.bad("axis out of range".into()))?;
    let idx = im.ints_of(node, cx.input(1)?)?;
    let n = s[axis] as i64;
    let ids: Vec<usize> = idx
        .data
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(cx.bad(format!("index {i} out of range for axis {axis} of {s:?}")))
            }
        })
        .collect::<Result<_>>()?;
    let mut out = s[..axis].to_vec();
    out.extend(&idx.shape);
    out.extend(&s[axis + 1..]);
    if im.g.is_const(x) {
        let v = im.g.value(x);
        let (outer, inner): (usize, usize) = (s[..axis].iter().product(), s[axis + 1..].iter().product());
        let mut vals = Vec::with_capacity(outer * ids.len() * inner);
        for o in 0..outer {
            for &j in &ids {
                let src = (o * s[axis] + j) * inner;
                vals.extend_from_slice(&v[src..src + inner]);
            }
        }
        im.add_tensor(&cx.out_name, out, Some(vals));
        return Ok(());
    }
    let it = im.add_tensor(
        &format!("{}:indices", cx.out_name),
        idx.shape.clone(),
        Some(ids.iter().map(|&j| j as f32).collect()),
    );
    im.push(node, Op::Gather { axis }, vec![x, it], out)
}

/// DepthToSpace (DCR and CRD) and SpaceToDepth as reshape, transpose, reshape.
pub(super) fn depth_space(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let x = im.tensor_of(node, cx.input(0)?)?;
    let [n, c, h, w] = im.rank4(node, x)?;
    let b = attr_i(node, "blocksize", 0);
    if b < 1 {
        return Err(cx.bad("blocksize must be positive".into()));
    }
    let b = b as usize;
    let (shape, perm, out) = if node.op_type == "DepthToSpace" {
        if c % (b * b) != 0 {
            return Err(cx.bad(format!("channels {c} are not a multiple of blocksize^2")));
        }
        let co = c / (b * b);
        match attr_s(node, "mode").as_deref().unwrap_or("DCR") {
            "DCR" => (vec![n, b, b, co, h, w], vec![0, 3, 4, 1, 5, 2], vec![n, co, h * b, w * b]),
            "CRD" => (vec![n, co, b, b, h, w], vec![0, 1, 4, 2, 5, 3], vec![n, co, h * b, w * b]),
            m => return Err(cx.bad(format!("mode={m} is not supported (DCR, CRD)"))),
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return Err(cx.bad(format!("spatial size {h}x{w} is not a multiple of blocksize {b}")));
        }
        (vec![n, c, h / b, b, w / b, b], vec![0, 3, 5, 1, 2, 4], vec![n, c * b * b, h / b, w / b])
    };
    im.push(node, Op::Shuffle { shape, perm }, vec![x], out)
}

/// Tile (constant repeats) and Expand (constant shape): folded on constants.
pub(super) fn tile_expand(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let spec = im.ints_of(node, cx.input(1)?)?.data;
    let src = cx.input(0)?;
    if im.ints.contains_key(src) && node.op_type == "Expand" {
        let c = im.ints_of(node, src)?;
        let want: Vec<usize> = spec.iter().map(|&d| d.max(0) as usize).collect();
        let out = broadcast(&c.shape, &want).ok_or_else(|| cx.bad("shapes do not broadcast".into()))?;
        let data = broadcast_values(&c.data, &c.shape, &out);
        im.ints.insert(cx.out_name.clone(), IntConst { shape: out, data });
        return Ok(());
    }
    let x = im.tensor_of(node, src)?;
    let s = im.g.tensors[x].shape.clone();
    let out = if node.op_type == "Tile" {
        if spec.len() != s.len() || spec.iter().any(|&r| r < 1) {
            return Err(cx.bad(format!("repeats {spec:?} must be one positive value per axis of {s:?}")));
        }
        s.iter().zip(&spec).map(|(&d, &r)| d * r as usize).collect::<Vec<_>>()
    } else {
        if spec.iter().any(|&d| d < 0) {
            return Err(cx.bad(format!("invalid shape {spec:?}")));
        }
        let want: Vec<usize> = spec.iter().map(|&d| d as usize).collect();
        broadcast(&s, &want).ok_or_else(|| cx.bad(format!("{s:?} does not expand to {want:?}")))?
    };
    if im.g.is_const(x) {
        let v = im.g.value(x).to_vec();
        let vals = if node.op_type == "Tile" {
            let (ost, ist) = (strides(&out), strides(&s));
            (0..out.iter().product::<usize>())
                .map(|i| v[(0..s.len()).map(|a| (i / ost[a] % out[a]) % s[a] * ist[a]).sum::<usize>()])
                .collect()
        } else {
            broadcast_values(&v, &s, &out)
        };
        im.add_tensor(&cx.out_name, out, Some(vals));
        return Ok(());
    }
    if out == s {
        im.names.insert(cx.out_name.clone(), x);
        return Ok(());
    }
    im.push(node, Op::Tile, vec![x], out)
}

/// ConstantOfShape: an integer or float constant of a constant shape.
pub(super) fn constant_of_shape(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let shape: Vec<usize> = im.ints_of(node, cx.input(0)?)?.data.iter().map(|&d| d.max(0) as usize).collect();
    let n: usize = shape.iter().product();
    match attr(node, "value").and_then(|a| a.t.as_ref()) {
        Some(t) => {
            let mut t = t.clone();
            t.name = format!("{}:value", cx.out_name);
            im.add_initializer(&t)?;
            if let Some(c) = im.ints.get(&t.name).cloned() {
                let v = *c.data.first().ok_or_else(|| cx.bad("empty value".into()))?;
                im.ints.insert(cx.out_name.clone(), IntConst { shape, data: vec![v; n] });
            } else {
                let id = im.names[&t.name];
                let v = *im.g.value(id).first().ok_or_else(|| cx.bad("empty value".into()))?;
                im.add_tensor(&cx.out_name, shape, Some(vec![v; n]));
            }
        }
        None => {
            im.add_tensor(&cx.out_name, shape, Some(vec![0.0; n]));
        }
    }
    Ok(())
}

/// Range of integer constants (float constants: a float range).
pub(super) fn range(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let names = [cx.input(0)?, cx.input(1)?, cx.input(2)?];
    if names.iter().all(|n| im.ints.contains_key(*n)) {
        let v: Vec<i64> = names.iter().map(|n| im.ints[*n].data.first().copied().unwrap_or(0)).collect::<Vec<_>>();
        let (start, limit, delta) = (v[0], v[1], v[2]);
        if delta == 0 {
            return Err(cx.bad("delta is 0".into()));
        }
        let count = ((limit - start) as f64 / delta as f64).ceil().max(0.0) as usize;
        let data: Vec<i64> = (0..count as i64).map(|i| start + i * delta).collect();
        im.ints.insert(cx.out_name.clone(), IntConst { shape: vec![count], data });
        return Ok(());
    }
    let ids = names.iter().map(|n| im.tensor_of(node, n)).collect::<Result<Vec<_>>>()?;
    if !ids.iter().all(|&t| im.g.is_const(t)) {
        return Err(cx.bad("start, limit and delta must be constants".into()));
    }
    let v: Vec<f32> = ids.iter().map(|&t| im.g.value(t).first().copied().unwrap_or(0.0)).collect();
    if v[2] == 0.0 {
        return Err(cx.bad("delta is 0".into()));
    }
    let count = ((v[1] - v[0]) / v[2]).ceil().max(0.0) as usize;
    im.add_tensor(&cx.out_name, vec![count], Some((0..count).map(|i| v[0] + i as f32 * v[2]).collect()));
    Ok(())
}

/// Integer constants `a`, `b` broadcast, combined by `f` (comparisons give 0 or 1).
fn ints_binary(im: &mut Importer, cx: &NodeCx<'_>, f: impl Fn(i64, i64) -> i64) -> Result<()> {
    let (a, b) = (im.ints_of(cx.node, cx.input(0)?)?, im.ints_of(cx.node, cx.input(1)?)?);
    let out = broadcast(&a.shape, &b.shape).ok_or_else(|| cx.bad("shapes do not broadcast".into()))?;
    let (va, vb) = (broadcast_values(&a.data, &a.shape, &out), broadcast_values(&b.data, &b.shape, &out));
    let data = va.iter().zip(&vb).map(|(&x, &y)| f(x, y)).collect();
    im.ints.insert(cx.out_name.clone(), IntConst { shape: out, data });
    Ok(())
}

/// Equal, Less, Greater, And, Or, Mod of integer constants (shape arithmetic).
pub(super) fn compare_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    if !cx.inputs.iter().all(|n| im.ints.contains_key(*n)) {
        // Float comparisons: BINARY, 1.0 where true.
        let function = match cx.node.op_type.as_str() {
            "Equal" => bf::EQUAL,
            "Less" => bf::LESS,
            "Greater" => bf::GREATER,
            "LessOrEqual" => bf::LESS_OR_EQUAL,
            "GreaterOrEqual" => bf::GREATER_OR_EQUAL,
            // Booleans are 0.0 / 1.0: and, or are min, max.
            "And" => bf::MIN,
            "Or" => bf::MAX,
            _ => return Err(cx.bad("only constant integer operands are supported (shape arithmetic)".into())),
        };
        let (a, b) = (im.tensor_of(cx.node, cx.input(0)?)?, im.tensor_of(cx.node, cx.input(1)?)?);
        let (sa, sb) = (im.g.tensors[a].shape.clone(), im.g.tensors[b].shape.clone());
        let out = broadcast(&sa, &sb).ok_or_else(|| cx.bad(format!("shapes {sa:?} and {sb:?} do not broadcast")))?;
        if im.g.is_const(a) && im.g.is_const(b) {
            return fold_f32(im, cx, a, b, |x, y| sparq_runtime::kernels::elementwise::binary_f32(function, x, y));
        }
        return im.push(cx.node, Op::Binary { function }, vec![a, b], out);
    }
    match cx.node.op_type.as_str() {
        "Equal" => ints_binary(im, cx, |x, y| (x == y) as i64),
        "Less" => ints_binary(im, cx, |x, y| (x < y) as i64),
        "Greater" => ints_binary(im, cx, |x, y| (x > y) as i64),
        "LessOrEqual" => ints_binary(im, cx, |x, y| (x <= y) as i64),
        "GreaterOrEqual" => ints_binary(im, cx, |x, y| (x >= y) as i64),
        "And" => ints_binary(im, cx, |x, y| (x != 0 && y != 0) as i64),
        "Mod" if attr_i(cx.node, "fmod", 0) != 0 => ints_binary(im, cx, |x, y| if y == 0 { 0 } else { x % y }),
        "Mod" => ints_binary(im, cx, |x, y| {
            // The sign of the divisor (numpy's mod).
            let m = if y == 0 { 0 } else { x % y };
            if m != 0 && (m < 0) != (y < 0) {
                m + y
            } else {
                m
            }
        }),
        _ => ints_binary(im, cx, |x, y| (x != 0 || y != 0) as i64),
    }
}

/// Not of an integer constant, or of a computed boolean (0.0 / 1.0): `1 - x`.
pub(super) fn not_ints(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    if !im.ints.contains_key(cx.input(0)?) {
        let x = im.tensor_of(cx.node, cx.input(0)?)?;
        let s = im.g.tensors[x].shape.clone();
        let one = im.add_tensor(&format!("{}:one", cx.out_name), vec![], Some(vec![1.0]));
        return im.push(cx.node, Op::Binary { function: bf::SUB }, vec![one, x], s);
    }
    let c = im.ints_of(cx.node, cx.input(0)?)?;
    let data = c.data.iter().map(|&v| (v == 0) as i64).collect();
    im.ints.insert(cx.out_name.clone(), IntConst { shape: c.shape, data });
    Ok(())
}

/// Where of computed tensors (a condition from a comparison is 0.0 / 1.0): the WHERE op.
fn where_computed(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let ids = (0..3).map(|i| im.tensor_of(cx.node, cx.input(i)?)).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for &t in &ids {
        let s = &im.g.tensors[t].shape;
        out = broadcast(&out, s).ok_or_else(|| cx.bad(format!("shapes {out:?} and {s:?} do not broadcast")))?;
    }
    im.push(cx.node, Op::Where, ids, out)
}

/// Where: folded on constants (a constant condition; integer or float branches), else WHERE.
pub(super) fn where_const(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    if !im.ints.contains_key(cx.input(0)?) {
        return where_computed(im, cx);
    }
    let cond = im.ints_of(node, cx.input(0)?)?;
    let (xn, yn) = (cx.input(1)?, cx.input(2)?);
    if im.ints.contains_key(xn) && im.ints.contains_key(yn) {
        let (x, y) = (im.ints[xn].clone(), im.ints[yn].clone());
        let out = broadcast(&cond.shape, &x.shape)
            .and_then(|s| broadcast(&s, &y.shape))
            .ok_or_else(|| cx.bad("shapes do not broadcast".into()))?;
        let c = broadcast_values(&cond.data, &cond.shape, &out);
        let (vx, vy) = (broadcast_values(&x.data, &x.shape, &out), broadcast_values(&y.data, &y.shape, &out));
        let data = (0..c.len()).map(|i| if c[i] != 0 { vx[i] } else { vy[i] }).collect();
        im.ints.insert(cx.out_name.clone(), IntConst { shape: out, data });
        return Ok(());
    }
    let (x, y) = (im.tensor_of(node, xn)?, im.tensor_of(node, yn)?);
    if !im.g.is_const(x) || !im.g.is_const(y) {
        return where_computed(im, cx);
    }
    let (sx, sy) = (im.g.tensors[x].shape.clone(), im.g.tensors[y].shape.clone());
    let out = broadcast(&cond.shape, &sx)
        .and_then(|s| broadcast(&s, &sy))
        .ok_or_else(|| cx.bad("shapes do not broadcast".into()))?;
    let c = broadcast_values(&cond.data, &cond.shape, &out);
    let (vx, vy) = (broadcast_values(im.g.value(x), &sx, &out), broadcast_values(im.g.value(y), &sy, &out));
    let data = (0..c.len()).map(|i| if c[i] != 0 { vx[i] } else { vy[i] }).collect();
    im.add_tensor(&cx.out_name, out, Some(data));
    Ok(())
}

/// Cast: integer constants stay import-time integers, or become float constants (`to` =
/// FLOAT/DOUBLE/FLOAT16); float tensors cast to float are unchanged.
pub(super) fn cast(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let src = cx.input(0)?;
    let to = attr_i(node, "to", 0);
    let to_float = matches!(to, 1 | 10 | 11 | 16);
    if let Some(c) = im.ints.get(src).cloned() {
        if to_float {
            im.add_tensor(&cx.out_name, c.shape, Some(c.data.iter().map(|&v| v as f32).collect()));
        } else {
            im.ints.insert(cx.out_name.clone(), c);
        }
        return Ok(());
    }
    let x = im.tensor_of(node, src)?;
    if to_float {
        im.names.insert(cx.out_name.clone(), x);
        return Ok(());
    }
    if im.g.is_const(x) {
        let s = im.g.tensors[x].shape.clone();
        let data = im.g.value(x).iter().map(|&v| v as i64).collect();
        im.ints.insert(cx.out_name.clone(), IntConst { shape: s, data });
        return Ok(());
    }
    Err(cx
        .bad(format!("Cast of a computed tensor to type {to} is not supported (only float data flows through sparq)")))
}

/// LSTM and GRU (forward, reverse, bidirectional) with the default activations, constant
/// weights, optional constant bias and initial states (computed or constant; zeros when absent).
pub(super) fn recurrent(im: &mut Importer, cx: &NodeCx<'_>) -> Result<()> {
    let node = cx.node;
    let lstm = node.op_type == "LSTM";
    let gates = if lstm { 4 } else { 3 };
    let opt = |i: usize| cx.inputs.get(i).copied().filter(|s| !s.is_empty());
    let x = im.tensor_of(node, cx.input(0)?)?;
    let xs = im.g.tensors[x].shape.clone();
    let batch_first = match attr_i(node, "layout", 0) {
        0 => false,
        1 => true,
        l => return Err(cx.bad(format!("layout={l} is not supported (0 or 1)"))),
    };
    if xs.len() != 3 {
        let want = if batch_first { "[batch, seq, input]" } else { "[seq, batch, input]" };
        return Err(cx.bad(format!("X must be {want}, got {xs:?}")));
    }
    let (t, b, i) = if batch_first { (xs[1], xs[0], xs[2]) } else { (xs[0], xs[1], xs[2]) };
    let direction = match attr_s(node, "direction").as_deref().unwrap_or("forward") {
        "forward" => 0,
        "reverse" => 1,
        "bidirectional" => 2,
        d => return Err(cx.bad(format!("direction={d} is not supported"))),
    };
    let dirs = if direction == 2 { 2 } else { 1 };
    let defaults: &[&str] = if lstm { &["Sigmoid", "Tanh", "Tanh"] } else { &["Sigmoid", "Tanh"] };
    if let Some(a) = attr(node, "activations") {
        let acts: Vec<String> = a.strings.iter().map(|s| String::from_utf8_lossy(s).to_lowercase()).collect();
        let want: Vec<String> = (0..dirs).flat_map(|_| defaults.iter().map(|s| s.to_lowercase())).collect();
        if acts != want {
            return Err(cx.bad(format!("activations={acts:?} are not supported (the defaults {defaults:?} are)")));
        }
    }
    if lstm && attr_i(node, "input_forget", 0) != 0 {
        return Err(cx.bad("input_forget=1 is not supported".into()));
    }
    let w = im.tensor_of(node, cx.input(1)?)?;
    let r = im.tensor_of(node, cx.input(2)?)?;
    let ws = im.g.tensors[w].shape.clone();
    if !im.g.is_const(w) || !im.g.is_const(r) {
        return Err(cx.bad("W and R must be constants".into()));
    }
    if ws.len() != 3 || ws[0] != dirs || ws[2] != i || !ws[1].is_multiple_of(gates) {
        return Err(cx.bad(format!("W must be [{dirs}, {gates} * hidden, {i}], got {ws:?}")));
    }
    let h = ws[1] / gates;
    if im.g.tensors[r].shape != [dirs, gates * h, h] {
        return Err(cx.bad(format!("R must be [{dirs}, {}, {h}]", gates * h)));
    }
    if let Some(hs) = attr(node, "hidden_size").map(|a| a.i) {
        if hs as usize != h {
            return Err(cx.bad(format!("hidden_size={hs} but W gives {h}")));
        }
    }
    let bias = match opt(3) {
        Some(n) => {
            let bt = im.tensor_of(node, n)?;
            if !im.g.is_const(bt) || im.g.tensors[bt].shape != [dirs, 2 * gates * h] {
                return Err(cx.bad(format!("B must be a constant [{dirs}, {}]", 2 * gates * h)));
            }
            bt
        }
        None => im.add_tensor(
            &format!("{}:bias", cx.out_name),
            vec![dirs, 2 * gates * h],
            Some(vec![0.0; dirs * 2 * gates * h]),
        ),
    };
    if let Some(n) = opt(4) {
        let sl = im.ints_of(node, n)?;
        if sl.data.iter().any(|&v| v as usize != t) {
            return Err(cx.bad("sequence_lens other than the full sequence are not supported".into()));
        }
    }
    let state = if batch_first { vec![b, dirs, h] } else { vec![dirs, b, h] };
    let state_input = |im: &mut Importer, k: usize, tag: &str| -> Result<usize> {
        match opt(k) {
            Some(n) => {
                let s = im.tensor_of(node, n)?;
                if im.g.tensors[s].shape != state {
                    let got = im.g.tensors[s].shape.clone();
                    return Err(cx.bad(format!("{tag} must be {state:?}, got {got:?}")));
                }
                Ok(s)
            }
            None => Ok(im.add_tensor(&format!("{}:{tag}", cx.out_name), state.clone(), Some(vec![0.0; dirs * b * h]))),
        }
    };
    let h0 = state_input(im, 5, "initial_h")?;
    let mut inputs = vec![x, w, r, bias, h0];
    if lstm {
        inputs.push(state_input(im, 6, "initial_c")?);
        if let Some(n) = opt(7) {
            let p = im.tensor_of(node, n)?;
            if !im.g.is_const(p) || im.g.value(p).iter().any(|&v| v != 0.0) {
                return Err(cx.bad("peepholes (P) are not supported".into()));
            }
        }
    }
    let clip = attr_f(node, "clip", 0.0);
    if !(clip.is_finite() && clip >= 0.0) {
        return Err(cx.bad(format!("clip={clip} must be finite and non-negative")));
    }
    let linear_before_reset = !lstm && attr_i(node, "linear_before_reset", 0) != 0;
    let count = if lstm { 3 } else { 2 };
    let mut present = [false; 3];
    let mut outs = Vec::new();
    for (k, seen) in present.iter_mut().enumerate().take(count) {
        if let Some(name) = node.output.get(k).filter(|s| !s.is_empty()) {
            let shape = match (k, batch_first) {
                (0, false) => vec![t, dirs, b, h],
                (0, true) => vec![b, t, dirs, h],
                _ => state.clone(),
            };
            *seen = true;
            outs.push(im.add_tensor(name, shape, None));
        }
    }
    if outs.is_empty() {
        return Err(cx.bad("no output is used".into()));
    }
    let name = if node.name.is_empty() { cx.out_name.clone() } else { node.name.clone() };
    im.g.nodes.push(crate::ir::Node {
        name,
        onnx_op: node.op_type.clone(),
        op: Op::Recurrent { lstm, direction, clip, linear_before_reset, outputs: present, batch_first },
        inputs,
        outputs: outs,
    });
    Ok(())
}
