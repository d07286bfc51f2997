//! `sparq inspect`: everything the file says, after full validation.

use anyhow::{anyhow, Result};
use sparq_format::crc32::crc32;
use sparq_format::error::section_name;
use sparq_format::layout::op;
use sparq_format::{DType, Storage};
use sparq_runtime::Model;
use std::path::Path;

fn shape(s: &[usize]) -> String {
    format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

pub fn inspect(path: &Path) -> Result<()> {
    let mapped = crate::open_model(path)?;
    let bytes = mapped.bytes();
    let model = Model::from_bytes(bytes)?;
    let v = model.view();
    println!(
        "{}: .sparq format {}.{}, {} bytes, model '{}'",
        path.display(),
        sparq_format::layout::VERSION_MAJOR,
        v.version_minor,
        bytes.len(),
        model.name()
    );
    println!("sections:");
    for i in 0..v.section_count as usize {
        let e = &bytes[64 + 32 * i..64 + 32 * (i + 1)];
        let kind = u32::from_le_bytes(e[0..4].try_into().unwrap());
        let off = u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize;
        let size = u64::from_le_bytes(e[16..24].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(e[24..28].try_into().unwrap());
        let ok = crc32(&bytes[off..off + size]) == crc;
        println!(
            "  {:<9} offset {:>9}  size {:>9}  crc32 {:08x} {}",
            section_name(kind),
            off,
            size,
            crc,
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    let describe = |t: &sparq_format::TensorInfo<'_>| {
        let q = if t.dtype == DType::I8 {
            format!(" scale {:.6} zero_point {}", t.scale, t.zero_point)
        } else {
            String::new()
        };
        format!("'{}' {} {} {:?}{q}", t.name, t.dtype.name(), shape(t.shape()), t.layout)
    };
    for i in 0..model.input_count() {
        let t = model.input(i).ok_or_else(|| anyhow!("missing input"))?;
        // An int8 input with zero point -128 takes uint8 frames (compile --input-dtype u8).
        let frames = if t.dtype == DType::I8 && t.zero_point == -128 {
            let s = t.shape();
            let (c, h, w) =
                (s.get(1).copied().unwrap_or(1), s.get(2).copied().unwrap_or(1), s.get(3).copied().unwrap_or(1));
            if t.layout == sparq_format::Layout::Nhwc {
                format!("  (uint8 frames, memory order H x W x C = {h} x {w} x {c})")
            } else {
                format!("  (uint8 frames, memory order C x H x W = {c} x {h} x {w})")
            }
        } else {
            String::new()
        };
        println!("input {i}:  {}{frames}", describe(&t));
    }
    for i in 0..model.output_count() {
        println!("output {i}: {}", describe(&model.output(i).ok_or_else(|| anyhow!("missing output"))?));
    }
    let mut weight_bytes = 0;
    let mut by_dtype = [0usize; 4];
    for i in 0..v.tensor_count() {
        let t = v.tensor(i);
        if t.storage == Storage::Constant {
            weight_bytes += t.data_size;
            by_dtype[t.dtype as usize] += t.data_size;
        }
    }
    println!(
        "tensors: {} ({} constant bytes: i8 {}, i32 {}, f32 {})",
        v.tensor_count(),
        weight_bytes,
        by_dtype[DType::I8 as usize],
        by_dtype[DType::I32 as usize],
        by_dtype[DType::F32 as usize]
    );
    let bound = liveness_bound(&model);
    let tensors = model.tensor_arena_size();
    println!(
        "arena: {} bytes for a session: tensors {} bytes + plan {} bytes ({} ops decoded once); tensors vs \
         liveness lower bound {} bytes (the most bytes of tensors live at once; {:.2}x)",
        model.arena_size(),
        tensors,
        model.plan_size(),
        model.op_count(),
        bound,
        tensors as f64 / bound.max(1) as f64
    );
    let limit = crate::max_arena();
    if model.arena_size() > limit {
        println!("  above the {limit}-byte arena limit: run and bench refuse this model unless --max-arena is raised");
    }
    let (path, features) = sparq_runtime::session::kernel_path()?;
    println!(
        "kernels: path {path} (this CPU{})",
        if std::env::var_os("SPARQ_KERNELS").is_some() { ", forced by SPARQ_KERNELS" } else { "" }
    );
    let total_macs: u64 = (0..model.op_count()).map(|i| model.op_macs(i)).sum();
    println!("ops: {} ({:.1} M MACs)", model.op_count(), total_macs as f64 / 1e6);
    println!("  {:>4}  {:<18} {:<5} {:<22} {:>10}  {:<30} name", "#", "op", "dtype", "output shape", "MACs", "kernel");
    for i in 0..model.op_count() {
        let o = model.op(i);
        let y = model.tensor(o.output(0));
        let x = model.tensor(o.input(0));
        println!(
            "  {:>4}  {:<18} {:<5} {:<22} {:>10}  {:<30} {}",
            i,
            op::name(o.kind),
            format!(
                "{}",
                if x.dtype == y.dtype {
                    y.dtype.name().to_string()
                } else {
                    format!("{}>{}", x.dtype.name(), y.dtype.name())
                }
            ),
            shape(y.shape()),
            model.op_macs(i),
            model.op_kernel(i, features).unwrap_or("-"),
            o.name
        );
    }
    Ok(())
}

/// The largest sum of arena tensors live at the same time (no arena can be smaller): a tensor is
/// live from the op that writes it (graph inputs: from the start) to the last op that reads it
/// (graph outputs: to the end).
pub fn liveness_bound(model: &sparq_runtime::Model<'_>) -> usize {
    let v = model.view();
    let ops = model.op_count();
    let mut first = vec![usize::MAX; v.tensor_count()];
    let mut last = vec![0usize; v.tensor_count()];
    for i in 0..model.input_count() {
        if let Some(t) = model.input(i) {
            first[t.index] = 0;
        }
    }
    for i in 0..ops {
        let o = model.op(i);
        for k in 0..o.input_count {
            let t = o.input(k);
            last[t] = last[t].max(i);
        }
        let y = o.output(0);
        first[y] = first[y].min(i);
        last[y] = last[y].max(i);
    }
    for i in 0..model.output_count() {
        if let Some(t) = model.output(i) {
            last[t.index] = ops;
        }
    }
    let mut delta = vec![0i64; ops + 2];
    for t in 0..v.tensor_count() {
        let info = v.tensor(t);
        if info.storage != Storage::Arena || first[t] == usize::MAX {
            continue;
        }
        delta[first[t]] += info.data_size as i64;
        delta[last[t] + 1] -= info.data_size as i64;
    }
    let (mut live, mut peak) = (0i64, 0i64);
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}
