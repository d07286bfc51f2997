//! Memory plan: every activation gets an arena offset. Tensors are placed largest first at the
//! lowest 64-byte aligned offset that does not collide with an already placed tensor whose
//! lifetime overlaps (greedy by size, as in TensorFlow Lite's arena planner).

use sparq_format::writer::ModelSpec;

const ALIGN: usize = sparq_format::layout::ALIGN;

/// Lifetime of each arena tensor as `[first op writing it, last op reading it]`; graph inputs
/// start before op 0 and graph outputs live to the end.
fn lifetimes(spec: &ModelSpec) -> Vec<Option<(isize, isize)>> {
    let n_ops = spec.ops.len() as isize;
    let mut life: Vec<Option<(isize, isize)>> = vec![None; spec.tensors.len()];
    let mut touch = |t: u32, at: isize| {
        let e = life[t as usize].get_or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    };
    for &i in &spec.inputs {
        touch(i, -1);
    }
    for (k, op) in spec.ops.iter().enumerate() {
        for &t in op.inputs.iter().chain(&op.outputs) {
            touch(t, k as isize);
        }
    }
    for &o in &spec.outputs {
        touch(o, n_ops);
    }
    for (t, spec_t) in spec.tensors.iter().enumerate() {
        if spec_t.data.is_some() {
            life[t] = None;
        }
    }
    life
}

fn bytes_of(spec: &ModelSpec, t: usize) -> usize {
    let s = &spec.tensors[t];
    s.dims.iter().product::<usize>() * s.dtype.size()
}

/// Assign `arena_offset` to every activation and set `arena_size`. Returns the liveness lower
/// bound (largest sum of simultaneously live tensor sizes) for reporting.
pub fn plan_arena(spec: &mut ModelSpec) -> usize {
    let life = lifetimes(spec);
    let mut order: Vec<usize> = (0..spec.tensors.len()).filter(|&t| life[t].is_some()).collect();
    // Largest first; ties by index so the plan is deterministic.
    order.sort_by_key(|&t| (std::cmp::Reverse(bytes_of(spec, t)), t));
    let mut placed: Vec<(usize, usize, usize)> = Vec::new(); // (tensor, offset, size)
    let mut arena = 0usize;
    for &t in &order {
        let size = bytes_of(spec, t).max(1);
        let (a0, a1) = life[t].unwrap();
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(o, _, _)| {
                let (b0, b1) = life[o].unwrap();
                a0 <= b1 && b0 <= a1
            })
            .map(|&(_, off, sz)| (off, off + sz))
            .collect();
        conflicts.sort();
        let mut offset = 0usize;
        for (start, end) in conflicts {
            if offset + size <= start {
                break;
            }
            offset = offset.max(end.div_ceil(ALIGN) * ALIGN);
        }
        spec.tensors[t].arena_offset = offset;
        placed.push((t, offset, size));
        arena = arena.max(offset + size);
    }
    spec.arena_size = arena.div_ceil(ALIGN) * ALIGN;
    // Liveness lower bound.
    let n_ops = spec.ops.len() as isize;
    (-1..=n_ops)
        .map(|step| {
            (0..spec.tensors.len())
                .filter(|&t| life[t].is_some_and(|(a, b)| a <= step && step <= b))
                .map(|t| bytes_of(spec, t))
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}
