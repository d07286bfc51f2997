//! Structured channel pruning (`--prune-channels F`): whole channels are removed from the graph,
//! so the dense kernels simply get smaller layers.
//!
//! The prunable channels are those of *chains* `A -> D -> P`: a convolution `A` with one group
//! whose output feeds only a depthwise convolution `D`, whose output feeds only a convolution
//! `P` with one group (channel-wise nodes such as Relu, Clip and BatchNormalization may sit in
//! between). Removing channel `c` removes `A`'s output channel `c` (filter and bias), `D`'s
//! channel `c` (and its `group` count), any BatchNormalization parameters of `c` between them,
//! and `P`'s input channel `c`. This is MobileNet's inverted-residual expansion (and the stem
//! convolution feeding the first depthwise layer). The classifier head is a chain too: a
//! convolution whose output feeds only a GlobalAveragePool, an optional Flatten (or a Reshape
//! that does not spell out the channel count) and a fully-connected layer `P` (Gemm / MatMul),
//! which then loses input columns. Channels that reach a residual Add, a Concat or a graph
//! output are never removed by a chain.
//!
//! With `residual` (`--prune-channels-residual`), *residual groups* are pruned too, each as a
//! whole: the tensors tied together by Adds must keep the same channels, so the convolutions
//! writing any of them (the projections) lose those filters, with any BatchNormalization after
//! them, and the convolutions reading any of them (the next expansions) lose the matching inputs
//! and are re-fitted on the calibration data. A group written or read by anything else (the
//! graph input or output, a pool, a Concat) is left whole.
//!
//! With calibration data, a channel's importance is what removing it costs the consumer beyond
//! its mean (which `P`'s bias absorbs): the L2 norm of `P`'s weights on it times the standard
//! deviation of its activation. Without data, it is the L2 norm of its `A` filter times the L2
//! norm of its depthwise filter, if any (the imported weights, BatchNormalization folded). Each chain
//! loses `F` of its channels, rounded to a multiple of 16 (the SIMD tile width; none when that
//! is more than a quarter above `F`, and at most half the chain). With calibration data, `P`'s bias absorbs the mean contribution of the removed
//! channels (their mean activation times `P`'s weights).
//!
//! Like weight pruning, this rewrites the ONNX model before calibration, and the report compares
//! the result with the original float model.

use crate::error::{CompileError, Result};
use crate::ir::{Graph, Op};
use std::collections::HashMap;
use tract_onnx::pb;

/// What channel pruning did to one chain.
#[derive(Clone, Debug)]
pub struct ChainPruned {
    /// Names of the convolution, the depthwise convolution and the consumer.
    pub expand: String,
    /// `None` for a classifier head (conv -> global average pool -> fully-connected).
    pub depthwise: Option<String>,
    pub project: String,
    pub channels: usize,
    pub removed: usize,
    /// A residual group (tensors tied by Adds): `expand` names its first producer and `project`
    /// its first consumer.
    pub residual: bool,
}

/// A residual group of `g`: tensors tied together by Add nodes, which must keep the same
/// channels. `producers` are the convolutions (one group) writing a member, `consumers` the
/// convolutions (one group) reading one; any other producer or reader (the graph input or
/// output, a pool, a Concat, a depthwise layer) makes the group unprunable.
struct ResidualGroup {
    producers: Vec<usize>,
    consumers: Vec<usize>,
    channels: usize,
}

fn residual_groups(g: &Graph) -> Vec<ResidualGroup> {
    let mut root: Vec<usize> = (0..g.tensors.len()).collect();
    fn find(root: &mut [usize], t: usize) -> usize {
        let mut r = t;
        while root[r] != r {
            r = root[r];
        }
        root[t] = r;
        r
    }
    let is_add = |n: &crate::ir::Node| matches!(n.op, Op::Add { .. }) && n.inputs.len() == 2;
    for n in g.nodes.iter().filter(|n| is_add(n)) {
        let same = n.inputs.iter().all(|&t| g.tensors[t].shape == g.tensors[n.outputs[0]].shape);
        if !same || n.inputs.iter().any(|&t| g.tensors[t].shape.len() != 4) {
            continue;
        }
        let o = find(&mut root, n.outputs[0]);
        for &t in &n.inputs {
            let r = find(&mut root, t);
            root[r] = o;
        }
    }
    let mut sets: HashMap<usize, Vec<usize>> = HashMap::new();
    for n in g.nodes.iter().filter(|n| is_add(n)) {
        for &t in n.inputs.iter().chain(&n.outputs) {
            let r = find(&mut root, t);
            let set = sets.entry(r).or_default();
            if !set.contains(&t) {
                set.push(t);
            }
        }
    }
    let mut groups: Vec<ResidualGroup> = Vec::new();
    'sets: for (_, mut members) in sets {
        if members.len() < 3 {
            continue;
        }
        members.sort_unstable();
        let in_group = |t: usize| members.binary_search(&t).is_ok();
        let (mut producers, mut consumers) = (Vec::new(), Vec::new());
        for &t in &members {
            if g.outputs.contains(&t) || g.inputs.contains(&t) {
                continue 'sets;
            }
            for (i, n) in g.nodes.iter().enumerate() {
                let conv = matches!(n.op, Op::Conv { group: 1, .. });
                if n.outputs.contains(&t) {
                    match () {
                        _ if is_add(n) && n.inputs.iter().all(|&x| in_group(x)) => {}
                        _ if conv => producers.push(i),
                        _ => continue 'sets,
                    }
                }
                if n.inputs.contains(&t) {
                    match () {
                        _ if is_add(n) && in_group(n.outputs[0]) => {}
                        _ if conv && n.inputs[0] == t && !n.inputs[1..].contains(&t) => consumers.push(i),
                        _ => continue 'sets,
                    }
                }
            }
        }
        if producers.is_empty() {
            continue;
        }
        let channels = g.tensors[members[0]].shape[1];
        producers.sort_unstable();
        consumers.sort_unstable();
        consumers.dedup();
        groups.push(ResidualGroup { producers, consumers, channels });
    }
    groups.sort_by_key(|gr| gr.producers[0]);
    groups
}

/// Channels to remove from a chain or group of `c`: a multiple of 16 near `fraction` of them,
/// never more than a quarter above it (a 32-channel chain keeps all its channels rather than
/// lose half) nor half of them.
fn removed_count(fraction: f64, c: usize) -> usize {
    let removed = ((fraction * c as f64) / 16.0).round() as usize * 16;
    if removed as f64 > 1.25 * fraction * c as f64 {
        0
    } else {
        removed.min(c / 2)
    }
}

/// The chains of `g` (IR node indices `A, D, P`) whose channels may be removed: conv ->
/// depthwise -> conv, and the classifier head conv -> global average pool -> (flatten) ->
/// fully-connected (no `D`).
fn chains(g: &Graph) -> Vec<(usize, Option<usize>, usize)> {
    let consumers =
        |t: usize| g.nodes.iter().enumerate().filter(move |(_, n)| n.inputs.contains(&t)).collect::<Vec<_>>();
    let mut out = Vec::new();
    for (ai, a) in g.nodes.iter().enumerate() {
        if !matches!(a.op, Op::Conv { group: 1, .. }) || g.outputs.contains(&a.outputs[0]) {
            continue;
        }
        let c = g.tensors[a.inputs[1]].shape[0];
        let after_a = consumers(a.outputs[0]);
        let [(di, d)] = after_a[..] else { continue };
        if matches!(d.op, Op::GlobalAveragePool) && !g.outputs.contains(&d.outputs[0]) {
            // The head: global pool, an optional flatten, then a fully-connected layer.
            let mut t = d.outputs[0];
            let mut next = consumers(t);
            if let [(_, r)] = next[..] {
                if matches!(r.op, Op::Reshape) && !g.outputs.contains(&r.outputs[0]) {
                    t = r.outputs[0];
                    next = consumers(t);
                }
            }
            if let [(pi, p)] = next[..] {
                if matches!(p.op, Op::Dense { .. }) && p.inputs[0] == t && g.tensors[p.inputs[1]].shape[1] == c {
                    out.push((ai, None, pi));
                }
            }
            continue;
        }
        if !matches!(d.op, Op::Conv { group, .. } if group == c && group > 1) || d.inputs[0] != a.outputs[0] {
            continue;
        }
        if g.tensors[d.inputs[1]].shape[0] != c || g.outputs.contains(&d.outputs[0]) {
            continue;
        }
        let after_d = consumers(d.outputs[0]);
        let [(pi, p)] = after_d[..] else { continue };
        if matches!(p.op, Op::Conv { group: 1, .. }) && p.inputs[0] == d.outputs[0] {
            out.push((ai, Some(di), pi));
        }
    }
    out
}

fn l2(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// Read a float32 initializer.
fn floats(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != 1 {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    })
}

/// Replace a float32 initializer's data and dims.
fn set_floats(t: &mut pb::TensorProto, v: &[f32], dims: &[i64]) {
    t.dims = dims.to_vec();
    if t.raw_data.is_empty() {
        t.float_data = v.to_vec();
    } else {
        t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    }
}

/// Keep the slices `keep` of axis `axis` of a tensor with `dims`.
fn select(v: &[f32], dims: &[i64], axis: usize, keep: &[usize]) -> (Vec<f32>, Vec<i64>) {
    let outer: usize = dims[..axis].iter().map(|&d| d as usize).product();
    let n = dims[axis] as usize;
    let inner: usize = dims[axis + 1..].iter().map(|&d| d as usize).product();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in keep {
            out.extend_from_slice(&v[(o * n + k) * inner..][..inner]);
        }
    }
    let mut d = dims.to_vec();
    d[axis] = keep.len() as i64;
    (out, d)
}

/// Calibration statistics of the original model, per IR tensor name and channel.
pub struct ChannelStats<'a> {
    pub means: &'a HashMap<String, Vec<f32>>,
    pub rms: &'a HashMap<String, Vec<f32>>,
    /// Calibration samples: with them, each chain's consumer is re-fitted by least squares on
    /// the channels it keeps ([`super::reconstruct`]) instead of only its bias corrected.
    pub samples: Option<&'a [Vec<f32>]>,
}

/// Remove `fraction` of the channels of every chain of `g` from the ONNX model `onnx`. With
/// `stats`, channels are ranked by what they carry and the consumers' biases absorb the removed
/// channels' means.
pub fn prune_channels_onnx(
    onnx: &[u8],
    what: &str,
    g: &Graph,
    fraction: f64,
    residual: bool,
    stats: Option<&ChannelStats<'_>>,
) -> Result<(Vec<u8>, Vec<ChainPruned>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(CompileError::ChannelFraction(fraction));
    }
    let mut model = crate::onnx::decode(onnx, what)?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| CompileError::NotOnnx { what: what.to_string(), reason: "it has no graph".into() })?;
    let mut done = Vec::new();
    let chains = chains(g);
    let groups = if residual { residual_groups(g) } else { Vec::new() };
    let moments = match stats.and_then(|s| s.samples).filter(|s| !s.is_empty()) {
        Some(samples) => {
            let consumers: Vec<&crate::ir::Node> = chains
                .iter()
                .map(|&(_, _, pi)| &g.nodes[pi])
                .chain(groups.iter().flat_map(|gr| gr.consumers.iter().map(|&ci| &g.nodes[ci])))
                .filter(|p| {
                    g.tensors[p.inputs[1]].shape[1..].iter().product::<usize>() <= super::reconstruct::MAX_REFIT_K
                })
                .collect();
            super::reconstruct::layer_moments(onnx, g, &consumers, samples)?
        }
        None => HashMap::new(),
    };
    for (ai, di, pi) in chains {
        let (a, d, p) = (&g.nodes[ai], di.map(|di| &g.nodes[di]), &g.nodes[pi]);
        let c = g.tensors[a.inputs[1]].shape[0];
        let removed = removed_count(fraction, c);
        if removed == 0 {
            continue;
        }
        // Importance per channel: with calibration data, what removing it costs the consumer
        // beyond the mean its bias absorbs, `||P[:, c]|| * std(activation c)`; without, the
        // filter norms `||A filter|| * ||depthwise filter||`.
        let (wa, wp) = (g.value(a.inputs[1]), g.value(p.inputs[1]));
        let wd = d.map_or(&[][..], |d| g.value(d.inputs[1]));
        let (ka, kd) = (wa.len() / c, wd.len() / c);
        let input = &g.tensors[p.inputs[0]].name;
        let spread = stats
            .and_then(|s| Some((s.means.get(input)?, s.rms.get(input)?)))
            .filter(|(m, r)| m.len() == c && r.len() == c);
        let per_in = wp.len() / (g.tensors[p.inputs[1]].shape[0] * c).max(1);
        let consumer_norm = |ch: usize| {
            let o = g.tensors[p.inputs[1]].shape[0];
            (0..o).map(|oc| l2(&wp[(oc * c + ch) * per_in..][..per_in]).powi(2)).sum::<f64>().sqrt()
        };
        let mut order: Vec<(f64, usize)> = (0..c)
            .map(|ch| {
                let score = match spread {
                    Some((m, r)) => {
                        let var = (r[ch] as f64).powi(2) - (m[ch] as f64).powi(2);
                        consumer_norm(ch) * var.max(0.0).sqrt()
                    }
                    None if kd == 0 => l2(&wa[ch * ka..][..ka]),
                    None => l2(&wa[ch * ka..][..ka]) * l2(&wd[ch * kd..][..kd]),
                };
                (score, ch)
            })
            .collect();
        order.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let mut drop: Vec<usize> = order[..removed].iter().map(|&(_, ch)| ch).collect();
        drop.sort_unstable();
        let keep: Vec<usize> = (0..c).filter(|ch| drop.binary_search(ch).is_err()).collect();
        let mut means = stats.and_then(|s| s.means.get(input)).filter(|m| m.len() == c);
        if let Some(mo) = moments.get(&p.name).filter(|mo| mo.k == c) {
            // The consumer's weights on the kept channels and its bias, re-fitted to the
            // original outputs (this subsumes the mean correction).
            let n = g.tensors[p.inputs[1]].shape[0];
            let (w, has_bias) = super::prune::read_onnx(graph, p, n, c, what)?;
            let b = if has_bias { super::prune::onnx_bias(graph, p, n, what)? } else { vec![0f32; n] };
            let zero: Vec<bool> = (0..n * c).map(|i| drop.binary_search(&(i % c)).is_ok()).collect();
            let set = super::reconstruct::WeightSet { w: &w, b };
            let (nw, db) = super::reconstruct::reconstruct(mo, n, &zero, &[set], has_bias).remove(0);
            super::prune::write_onnx(graph, p, n, c, &nw, Some(&db), what)?;
            means = None;
        }
        rewrite_chain(graph, &a.name, d.map(|d| d.name.as_str()), &p.name, c, &keep, &drop, means.map(Vec::as_slice))
            .map_err(|reason| CompileError::CannotPruneChannels {
            what: what.to_string(),
            unit: "the channels of",
            layer: a.name.clone(),
            reason,
        })?;
        done.push(ChainPruned {
            expand: a.name.clone(),
            depthwise: d.map(|d| d.name.clone()),
            project: p.name.clone(),
            channels: c,
            removed,
            residual: false,
        });
    }
    for grp in &groups {
        let c = grp.channels;
        let removed = removed_count(fraction, c);
        if removed == 0 {
            continue;
        }
        // Importance per channel: with calibration data, what removing it costs the consumers,
        // `sum ||W_cons[:, c]|| * std(their input, channel c)`; without, the producers' filter
        // norms `sum ||W_prod[c]||`.
        let score = |ch: usize| -> f64 {
            let from_data: Option<f64> = stats.and_then(|st| {
                let mut total = 0.0;
                for &ci in &grp.consumers {
                    let n = &g.nodes[ci];
                    let name = &g.tensors[n.inputs[0]].name;
                    let (m, r) = (st.means.get(name)?, st.rms.get(name)?);
                    if m.len() != c || r.len() != c {
                        return None;
                    }
                    let w = g.value(n.inputs[1]);
                    let o = g.tensors[n.inputs[1]].shape[0];
                    let per_in = w.len() / (o * c).max(1);
                    let norm = (0..o).map(|oc| l2(&w[(oc * c + ch) * per_in..][..per_in]).powi(2)).sum::<f64>().sqrt();
                    let var = (r[ch] as f64).powi(2) - (m[ch] as f64).powi(2);
                    total += norm * var.max(0.0).sqrt();
                }
                (!grp.consumers.is_empty()).then_some(total)
            });
            from_data.unwrap_or_else(|| {
                grp.producers
                    .iter()
                    .map(|&pi| {
                        let w = g.value(g.nodes[pi].inputs[1]);
                        let k = w.len() / c;
                        l2(&w[ch * k..][..k])
                    })
                    .sum()
            })
        };
        let mut order: Vec<(f64, usize)> = (0..c).map(|ch| (score(ch), ch)).collect();
        order.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let mut drop: Vec<usize> = order[..removed].iter().map(|&(_, ch)| ch).collect();
        drop.sort_unstable();
        let keep: Vec<usize> = (0..c).filter(|ch| drop.binary_search(ch).is_err()).collect();
        for &ci in &grp.consumers {
            let n = &g.nodes[ci];
            // The consumer may already have lost output channels as a chain's first layer.
            let rows = super::prune::onnx_rows(graph, n, what)?;
            let (w, has_bias) = super::prune::read_onnx(
                graph,
                n,
                rows,
                c * (g.value(n.inputs[1]).len() / (g.tensors[n.inputs[1]].shape[0] * c).max(1)),
                what,
            )?;
            let b = if has_bias { super::prune::onnx_bias(graph, n, rows, what)? } else { vec![0f32; rows] };
            let k = w.len() / rows.max(1);
            let per_in = k / c;
            let zero: Vec<bool> = (0..rows * k).map(|i| drop.binary_search(&((i % k) / per_in)).is_ok()).collect();
            if let Some(mo) = moments.get(&n.name).filter(|mo| mo.k == k) {
                // Re-fitted on the kept input channels against the original outputs.
                let set = super::reconstruct::WeightSet { w: &w, b };
                let (nw, db) = super::reconstruct::reconstruct(mo, rows, &zero, &[set], has_bias).remove(0);
                super::prune::write_onnx(graph, n, rows, k, &nw, Some(&db), what)?;
            } else if let Some(m) =
                stats.and_then(|st| st.means.get(&g.tensors[n.inputs[0]].name)).filter(|m| m.len() == c)
            {
                // The bias absorbs the removed channels' mean contribution.
                let mut nb = b.clone();
                for (o, bv) in nb.iter_mut().enumerate() {
                    for &ch in &drop {
                        let taps: f32 = w[o * k + ch * per_in..][..per_in].iter().sum();
                        *bv += taps * m[ch];
                    }
                }
                let db: Vec<f32> = nb.iter().zip(&b).map(|(x, y)| x - y).collect();
                super::prune::write_onnx(graph, n, rows, k, &w, Some(&db), what)?;
            }
        }
        rewrite_group(graph, g, grp, &keep).map_err(|reason| CompileError::CannotPruneChannels {
            what: what.to_string(),
            unit: "a residual group of",
            layer: g.nodes[grp.producers[0]].name.clone(),
            reason,
        })?;
        done.push(ChainPruned {
            expand: g.nodes[grp.producers[0]].name.clone(),
            depthwise: None,
            project: grp.consumers.first().map_or(String::new(), |&ci| g.nodes[ci].name.clone()),
            channels: c,
            removed,
            residual: true,
        });
    }
    // Shapes of intermediate values changed: let the importer infer them again.
    graph.value_info.clear();
    let mut bytes = Vec::new();
    prost::Message::encode(&model, &mut bytes)
        .map_err(|e| CompileError::Encode { what: "channel-pruned", reason: e.to_string() })?;
    Ok((bytes, done))
}

/// Apply one chain's channel selection to the ONNX graph.
#[allow(clippy::too_many_arguments)]
fn rewrite_chain(
    graph: &mut pb::GraphProto,
    a: &str,
    d: Option<&str>,
    p: &str,
    c: usize,
    keep: &[usize],
    drop: &[usize],
    means: Option<&[f32]>,
) -> std::result::Result<(), String> {
    let node = |name: &str| graph.node.iter().position(|n| n.name == name).ok_or(format!("no ONNX node `{name}`"));
    let (na, np) = (node(a)?, node(p)?);
    let nd = d.map(node).transpose()?;
    for i in [Some(na), nd].into_iter().flatten() {
        if graph.node[i].op_type != "Conv" {
            return Err(format!("`{}` is a {}, not a Conv", graph.node[i].name, graph.node[i].op_type));
        }
    }
    // The consumer's weight axis of the chain's channels.
    let p_axis = match (graph.node[np].op_type.as_str(), nd) {
        ("Conv", Some(_)) => 1,
        ("Gemm", None) if graph.node[np].attribute.iter().any(|a| a.name == "transB" && a.i != 0) => 1,
        ("Gemm" | "MatMul", None) => 0,
        (other, _) => return Err(format!("the consumer `{p}` is a {other}")),
    };
    // A Reshape between the pool and the classifier must not spell out the channel count.
    let hardcodes_c = |graph: &pb::GraphProto, shape: &str| {
        let from_init = graph.initializer.iter().find(|t| t.name == shape).cloned();
        let from_node = graph
            .node
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.first().is_some_and(|o| o == shape))
            .and_then(|n| n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.clone()));
        match from_init.or(from_node) {
            Some(t) => {
                let dims: Vec<i64> = if t.raw_data.is_empty() {
                    t.int64_data.clone()
                } else {
                    t.raw_data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()
                };
                dims.contains(&(c as i64))
            }
            None => true,
        }
    };
    // Channel-wise nodes between A and D, and between D and P (one consumer each); for a head,
    // the global pool and a flatten between A and P.
    let between = |graph: &pb::GraphProto, from: usize, to: usize| -> std::result::Result<Vec<usize>, String> {
        let mut path = Vec::new();
        let mut t = graph.node[from].output[0].clone();
        loop {
            let users: Vec<usize> =
                graph.node.iter().enumerate().filter(|(_, n)| n.input.contains(&t)).map(|(i, _)| i).collect();
            let [u] = users[..] else { return Err(format!("`{t}` has {} consumers", users.len())) };
            if u == to {
                return Ok(path);
            }
            match graph.node[u].op_type.as_str() {
                "Relu" | "Clip" | "BatchNormalization" | "LeakyRelu" | "Sigmoid" | "HardSigmoid" | "HardSwish" => {}
                "GlobalAveragePool" | "Flatten" if nd.is_none() => {}
                "Reshape" if nd.is_none() && !hardcodes_c(graph, &graph.node[u].input[1]) => {}
                other => return Err(format!("a {other} node sits inside the chain")),
            }
            path.push(u);
            t = graph.node[u].output[0].clone();
        }
    };
    let mid = match nd {
        Some(nd) => [between(graph, na, nd)?, between(graph, nd, np)?].concat(),
        None => between(graph, na, np)?,
    };
    let init = |graph: &pb::GraphProto, name: &str| graph.initializer.iter().position(|t| t.name == name);
    let slice = |graph: &mut pb::GraphProto, name: &str, axis: usize, want: usize| -> std::result::Result<(), String> {
        let i = init(graph, name).ok_or(format!("`{name}` is not an initializer"))?;
        let t = &graph.initializer[i];
        let v = floats(t).ok_or(format!("`{name}` is not float32"))?;
        if t.dims.get(axis).map(|&x| x as usize) != Some(want) {
            return Err(format!("`{name}` does not have {want} channels on axis {axis}"));
        }
        let (nv, nd) = select(&v, &t.dims.clone(), axis, keep);
        set_floats(&mut graph.initializer[i], &nv, &nd);
        Ok(())
    };
    // The consumer's bias absorbs the removed channels' mean contribution.
    if let Some(means) = means {
        let wname = graph.node[np].input[1].clone();
        let bias = graph.node[np].input.get(2).filter(|b| !b.is_empty()).cloned();
        if let (Some(wi), Some(bi)) = (init(graph, &wname), bias.as_deref().and_then(|b| init(graph, b))) {
            let w = floats(&graph.initializer[wi]).ok_or("consumer weight not float32")?;
            let dims = graph.initializer[wi].dims.clone();
            let (o, per_in) = (dims[0] as usize, dims[2..].iter().map(|&x| x as usize).product::<usize>());
            let mut b = floats(&graph.initializer[bi]).ok_or("consumer bias not float32")?;
            if dims[1] as usize == c && b.len() == o {
                for (oc, bv) in b.iter_mut().enumerate() {
                    for &ch in drop {
                        let taps: f32 = w[(oc * c + ch) * per_in..][..per_in].iter().sum();
                        *bv += taps * means[ch];
                    }
                }
                let bd = graph.initializer[bi].dims.clone();
                set_floats(&mut graph.initializer[bi], &b, &bd);
            }
        }
    }
    let (wa, ba) = (graph.node[na].input[1].clone(), graph.node[na].input.get(2).cloned());
    slice(graph, &wa, 0, c)?;
    if let Some(b) = ba.filter(|b| !b.is_empty()) {
        slice(graph, &b, 0, c)?;
    }
    if let Some(nd) = nd {
        let (wd, bd) = (graph.node[nd].input[1].clone(), graph.node[nd].input.get(2).cloned());
        slice(graph, &wd, 0, c)?;
        if let Some(b) = bd.filter(|b| !b.is_empty()) {
            slice(graph, &b, 0, c)?;
        }
        for attr in graph.node[nd].attribute.iter_mut().filter(|x| x.name == "group") {
            attr.i = keep.len() as i64;
        }
    }
    let wp = graph.node[np].input[1].clone();
    slice(graph, &wp, p_axis, c)?;
    for &m in &mid {
        if graph.node[m].op_type == "BatchNormalization" {
            // Copied out: `slice` borrows the whole graph mutably.
            let params: Vec<String> = graph.node[m].input[1..].to_vec();
            for input in &params {
                slice(graph, input, 0, c)?;
            }
        }
    }
    Ok(())
}

/// Apply a residual group's channel selection to the ONNX graph: the producers lose output
/// channels (filters, biases, and the parameters of any BatchNormalization between them and the
/// group's Adds), the consumers lose the matching input channels.
fn rewrite_group(
    graph: &mut pb::GraphProto,
    g: &Graph,
    grp: &ResidualGroup,
    keep: &[usize],
) -> std::result::Result<(), String> {
    let c = grp.channels;
    let node = |graph: &pb::GraphProto, name: &str| {
        graph.node.iter().position(|n| n.name == name).ok_or(format!("no ONNX node `{name}`"))
    };
    let init = |graph: &pb::GraphProto, name: &str| graph.initializer.iter().position(|t| t.name == name);
    let slice = |graph: &mut pb::GraphProto, name: &str, axis: usize| -> std::result::Result<(), String> {
        let i = init(graph, name).ok_or(format!("`{name}` is not an initializer"))?;
        let t = &graph.initializer[i];
        let v = floats(t).ok_or(format!("`{name}` is not float32"))?;
        if t.dims.get(axis).map(|&x| x as usize) != Some(c) {
            return Err(format!("`{name}` does not have {c} channels on axis {axis}"));
        }
        let (nv, nd) = select(&v, &t.dims.clone(), axis, keep);
        set_floats(&mut graph.initializer[i], &nv, &nd);
        Ok(())
    };
    for &pi in &grp.producers {
        let np = node(graph, &g.nodes[pi].name)?;
        if graph.node[np].op_type != "Conv" {
            return Err(format!("the producer `{}` is a {}", graph.node[np].name, graph.node[np].op_type));
        }
        let (w, b) = (graph.node[np].input[1].clone(), graph.node[np].input.get(2).cloned());
        slice(graph, &w, 0)?;
        if let Some(b) = b.filter(|b| !b.is_empty()) {
            slice(graph, &b, 0)?;
        }
        // Channel-wise nodes after the producer, up to the first tensor read by several nodes
        // or by anything else.
        let mut t = graph.node[np].output[0].clone();
        loop {
            let users: Vec<usize> =
                graph.node.iter().enumerate().filter(|(_, n)| n.input.contains(&t)).map(|(i, _)| i).collect();
            let [u] = users[..] else { break };
            match graph.node[u].op_type.as_str() {
                "BatchNormalization" => {
                    let params: Vec<String> = graph.node[u].input[1..].to_vec();
                    for p in &params {
                        slice(graph, p, 0)?;
                    }
                }
                "Relu" | "Clip" | "LeakyRelu" | "Sigmoid" | "HardSigmoid" | "HardSwish" => {}
                _ => break,
            }
            t = graph.node[u].output[0].clone();
        }
    }
    for &ci in &grp.consumers {
        let nc = node(graph, &g.nodes[ci].name)?;
        if graph.node[nc].op_type != "Conv" {
            return Err(format!("the consumer `{}` is a {}", graph.node[nc].name, graph.node[nc].op_type));
        }
        let w = graph.node[nc].input[1].clone();
        slice(graph, &w, 1)?;
    }
    Ok(())
}
