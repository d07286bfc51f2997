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
//! Like weight pruning, this is a pass over the IR (weights, biases, group counts and tensor
//! shapes edited in place) before calibration, and the report compares the result with the
//! original float model.

use crate::error::{CompileError, Result};
use crate::ir::{Graph, Op};
use std::collections::HashMap;

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
    /// The tensors tied together.
    members: Vec<usize>,
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
        groups.push(ResidualGroup { producers, consumers, channels, members });
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

/// Keep the slices `keep` of axis `axis` of a tensor with `dims`.
fn select(v: &[f32], dims: &[usize], axis: usize, keep: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in keep {
            out.extend_from_slice(&v[(o * n + k) * inner..][..inner]);
        }
    }
    let mut d = dims.to_vec();
    d[axis] = keep.len();
    (out, d)
}

/// Keep the channels `keep` of axis `axis` of constant tensor `t` of `g`, which must have `c`
/// there.
fn slice(g: &mut Graph, t: usize, axis: usize, c: usize, keep: &[usize]) -> std::result::Result<(), String> {
    let tensor = &mut g.tensors[t];
    if tensor.shape.get(axis) != Some(&c) {
        return Err(format!("`{}` does not have {c} channels on axis {axis}", tensor.name));
    }
    let Some(v) = tensor.value.as_ref() else { return Err(format!("`{}` is not a constant", tensor.name)) };
    let (nv, nd) = select(v, &tensor.shape, axis, keep);
    tensor.value = Some(nv);
    tensor.shape = nd;
    Ok(())
}

/// Set the channel count (axis 1) of activation `t` of `g`, which must have `c` channels.
fn set_channels(g: &mut Graph, t: usize, c: usize, kept: usize) -> std::result::Result<(), String> {
    let tensor = &mut g.tensors[t];
    match tensor.shape.get_mut(1) {
        Some(d) if *d == c => {
            *d = kept;
            Ok(())
        }
        _ => Err(format!("`{}` {:?} does not have {c} channels on axis 1", tensor.name, tensor.shape)),
    }
}

/// Calibration statistics of the original model, per IR tensor name and channel.
pub struct ChannelStats<'a> {
    pub means: &'a HashMap<String, Vec<f32>>,
    pub rms: &'a HashMap<String, Vec<f32>>,
    /// Calibration samples: with them, each chain's consumer is re-fitted by least squares on
    /// the channels it keeps ([`super::reconstruct`]) instead of only its bias corrected.
    pub samples: Option<&'a [Vec<f32>]>,
}

/// The channel pruning pass: removes `fraction` of the channels of every chain of `graph` (and,
/// with `residual`, of every residual group) in place: the weights, biases, group counts and
/// tensor shapes of the layers involved. With `stats`, channels are ranked by what they carry and
/// the consumers are re-fitted (or their biases absorb the removed channels' means). Returns the
/// record the report prints.
pub fn prune_channels(
    graph: &mut Graph,
    fraction: f64,
    residual: bool,
    stats: Option<&ChannelStats<'_>>,
) -> Result<Vec<ChainPruned>> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(CompileError::ChannelFraction(fraction));
    }
    // The graph as it comes in: chains, groups, rankings and re-fitting targets are taken on it,
    // while `graph` is edited.
    let base = graph.clone();
    let g = &base;
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
            super::reconstruct::layer_moments(g, &consumers, samples, &indicatif::ProgressBar::hidden())?
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
        // The consumer's weights `[n, c, taps]` (IR layout) and bias as they stand.
        let n = graph.tensors[p.inputs[1]].shape[0];
        let w = graph.value(p.inputs[1]).to_vec();
        let b = graph.value(p.inputs[2]).to_vec();
        let k = w.len() / n.max(1);
        let (new_w, delta) = match moments.get(&p.name).filter(|mo| mo.k == k) {
            Some(mo) => {
                // The consumer's weights on the kept channels and its bias, re-fitted to the
                // original outputs (this subsumes the mean correction).
                let zero: Vec<bool> = (0..n * k).map(|i| drop.binary_search(&((i % k) / per_in)).is_ok()).collect();
                let set = super::reconstruct::WeightSet { w: &w, b: b.clone() };
                super::reconstruct::reconstruct(mo, n, &zero, &[set], true).remove(0)
            }
            None => {
                // The consumer's bias absorbs the removed channels' mean contribution.
                let mut delta = vec![0f32; n];
                if let Some(means) = stats.and_then(|s| s.means.get(input)).filter(|m| m.len() == c) {
                    for (oc, dv) in delta.iter_mut().enumerate() {
                        let mut bv = b[oc];
                        for &ch in &drop {
                            let taps: f32 = w[(oc * c + ch) * per_in..][..per_in].iter().sum();
                            bv += taps * means[ch];
                        }
                        *dv = bv - b[oc];
                    }
                }
                (w, delta)
            }
        };
        set_weights(graph, p, &new_w, &delta);
        rewrite_chain(graph, a, d, p, &g.nodes, c, &keep).map_err(|reason| CompileError::CannotPruneChannels {
            what: g.name.clone(),
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
            let rows = graph.tensors[n.inputs[1]].shape[0];
            let w = graph.value(n.inputs[1]).to_vec();
            let b = graph.value(n.inputs[2]).to_vec();
            let k = w.len() / rows.max(1);
            let per_in = k / c;
            let zero: Vec<bool> = (0..rows * k).map(|i| drop.binary_search(&((i % k) / per_in)).is_ok()).collect();
            if let Some(mo) = moments.get(&n.name).filter(|mo| mo.k == k) {
                // Re-fitted on the kept input channels against the original outputs.
                let set = super::reconstruct::WeightSet { w: &w, b };
                let (nw, db) = super::reconstruct::reconstruct(mo, rows, &zero, &[set], true).remove(0);
                set_weights(graph, n, &nw, &db);
            } else if let Some(m) =
                stats.and_then(|st| st.means.get(&g.tensors[n.inputs[0]].name)).filter(|m| m.len() == c)
            {
                // The bias absorbs the removed channels' mean contribution.
                let mut db = vec![0f32; rows];
                for (o, dv) in db.iter_mut().enumerate() {
                    let mut bv = b[o];
                    for &ch in &drop {
                        let taps: f32 = w[o * k + ch * per_in..][..per_in].iter().sum();
                        bv += taps * m[ch];
                    }
                    *dv = bv - b[o];
                }
                set_weights(graph, n, &w, &db);
            }
        }
        rewrite_group(graph, grp, &g.nodes, &keep).map_err(|reason| CompileError::CannotPruneChannels {
            what: g.name.clone(),
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
    Ok(done)
}

/// Replace layer `node`'s weights by `w` and add `bias_delta` to its bias.
fn set_weights(graph: &mut Graph, node: &crate::ir::Node, w: &[f32], bias_delta: &[f32]) {
    if let Some(v) = graph.tensors[node.inputs[1]].value.as_mut().filter(|v| v.len() == w.len()) {
        v.copy_from_slice(w);
    }
    if let Some(v) = graph.tensors[node.inputs[2]].value.as_mut().filter(|v| v.len() == bias_delta.len()) {
        for (x, d) in v.iter_mut().zip(bias_delta) {
            *x += d;
        }
    }
}

/// Apply one chain's channel selection to the graph: `A`'s filters and biases, `D`'s filters,
/// biases and group count, the head's pool and flatten shapes, `P`'s input channels, and the
/// shapes of the tensors between them. `nodes` are the graph's nodes (their indices are
/// unchanged by this pass).
fn rewrite_chain(
    graph: &mut Graph,
    a: &crate::ir::Node,
    d: Option<&crate::ir::Node>,
    p: &crate::ir::Node,
    nodes: &[crate::ir::Node],
    c: usize,
    keep: &[usize],
) -> std::result::Result<(), String> {
    let kept = keep.len();
    slice(graph, a.inputs[1], 0, c, keep)?;
    slice(graph, a.inputs[2], 0, c, keep)?;
    set_channels(graph, a.outputs[0], c, kept)?;
    match d {
        Some(d) => {
            slice(graph, d.inputs[1], 0, c, keep)?;
            slice(graph, d.inputs[2], 0, c, keep)?;
            set_channels(graph, d.outputs[0], c, kept)?;
            let di = nodes.iter().position(|n| n.name == d.name).expect("a node of the graph");
            match &mut graph.nodes[di].op {
                Op::Conv { group, .. } => *group = kept,
                other => return Err(format!("`{}` is a {}, not a depthwise Conv", d.name, other.type_name())),
            }
        }
        None => {
            // The head: the pool keeps the channel axis; a flatten / reshape `[N, C]` too.
            let mut t = a.outputs[0];
            while t != p.inputs[0] {
                let next = nodes.iter().find(|n| n.inputs.first() == Some(&t)).ok_or("the head chain is broken")?;
                t = next.outputs[0];
                let shape = &mut graph.tensors[t].shape;
                match (&next.op, shape.as_mut_slice()) {
                    (Op::GlobalAveragePool, [_, ch, ..]) if *ch == c => *ch = kept,
                    (Op::Reshape, [_, ch]) if *ch == c => *ch = kept,
                    (op, s) => return Err(format!("a {} with output {s:?} sits inside the chain", op.type_name())),
                }
            }
        }
    }
    slice(graph, p.inputs[1], 1, c, keep)?;
    Ok(())
}

/// Apply a residual group's channel selection to the graph: the producers lose output channels
/// (filters, biases), the consumers the matching input channels, and every tensor of the group
/// its channels.
fn rewrite_group(
    graph: &mut Graph,
    grp: &ResidualGroup,
    nodes: &[crate::ir::Node],
    keep: &[usize],
) -> std::result::Result<(), String> {
    let c = grp.channels;
    for &pi in &grp.producers {
        let n = &nodes[pi];
        slice(graph, n.inputs[1], 0, c, keep)?;
        slice(graph, n.inputs[2], 0, c, keep)?;
    }
    for &ci in &grp.consumers {
        slice(graph, nodes[ci].inputs[1], 1, c, keep)?;
    }
    for &t in &grp.members {
        set_channels(graph, t, c, keep.len())?;
    }
    Ok(())
}
