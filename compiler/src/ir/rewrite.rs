//! Graph rewrites before quantization: BatchNormalization folded into the preceding Conv/Dense,
//! ReLU/ReLU6/Clip fused into their producer (they become the output clamp), dead nodes removed.
//! Every rewrite keeps the name of the tensor the ONNX model computes last, so calibration
//! statistics taken from the float model apply to the rewritten graph.

use crate::ir::*;

/// A node's output may be absorbed by its consumer when nothing else reads it.
fn single_use(g: &Graph, t: usize) -> bool {
    !g.outputs.contains(&t) && g.consumers(t).len() == 1
}

pub fn fold_batchnorm(g: &mut Graph) -> usize {
    let mut folded = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|bn| {
            let Op::ChannelAffine { act } = g.nodes[bn].op else { return None };
            let x = g.nodes[bn].inputs[0];
            let p = g.producer(x)?;
            let ok = matches!(g.nodes[p].op, Op::Conv { act, .. } | Op::Dense { act } if act.is_none())
                && act.is_none()
                && single_use(g, x)
                && g.tensors[x].shape.len() >= 2;
            ok.then_some((bn, p))
        });
        let Some((bn, p)) = found else { break };
        let (scale, shift) = (g.value(g.nodes[bn].inputs[1]).to_vec(), g.value(g.nodes[bn].inputs[2]).to_vec());
        let (w, b) = (g.nodes[p].inputs[1], g.nodes[p].inputs[2]);
        let out_c = g.tensors[w].shape[0];
        if out_c != scale.len() {
            break;
        }
        let per = g.tensors[w].elements() / out_c;
        let wv = g.tensors[w].value.as_mut().expect("weights are constant");
        for (o, s) in scale.iter().enumerate() {
            for v in &mut wv[o * per..(o + 1) * per] {
                *v *= s;
            }
        }
        let bv = g.tensors[b].value.as_mut().expect("bias is constant");
        for o in 0..out_c {
            bv[o] = bv[o] * scale[o] + shift[o];
        }
        g.nodes[p].outputs[0] = g.nodes[bn].outputs[0];
        g.nodes.remove(bn);
        folded += 1;
    }
    folded
}

pub fn fuse_activations(g: &mut Graph) -> usize {
    let mut fused = 0;
    loop {
        let found = (0..g.nodes.len()).find_map(|c| {
            let Op::Clip { act } = g.nodes[c].op else {
                return None;
            };
            let x = g.nodes[c].inputs[0];
            let p = g.producer(x)?;
            (g.nodes[p].op.act().is_some() && single_use(g, x)).then_some((c, p, act))
        });
        let Some((c, p, act)) = found else { break };
        let a = g.nodes[p].op.act_mut().expect("checked");
        *a = a.then(act);
        g.nodes[p].outputs[0] = g.nodes[c].outputs[0];
        g.nodes.remove(c);
        fused += 1;
    }
    fused
}

pub fn remove_dead(g: &mut Graph) -> usize {
    let mut removed = 0;
    loop {
        let dead = (0..g.nodes.len())
            .find(|&n| g.nodes[n].outputs.iter().all(|&t| !g.outputs.contains(&t) && g.consumers(t).is_empty()));
        let Some(n) = dead else { break };
        g.nodes.remove(n);
        removed += 1;
    }
    removed
}

pub fn optimize(g: &mut Graph) {
    fold_batchnorm(g);
    fuse_activations(g);
    remove_dead(g);
}
