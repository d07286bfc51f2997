//! The sparse/dense crossover of this CPU's best kernel set, the number the target profiles hold
//! (`compiler/src/target.rs`, `sparse_crossover`): for each of MobileNetV2's 1x1 shapes, the
//! densest 16x4-block matrix on which the block-sparse kernel is still faster than the dense
//! kernel on the same layer. Median of many runs per point, both kernels timed in the same run.
//!
//! `cargo bench --bench sparse_crossover` (`SPARQ_KERNELS=avx2 cargo bench ...` for another set)

mod common;

use common::{block_sparse_weights, bytes, geometry, params, rq};
use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
use sparq_runtime::kernels::gemm::{WeightMatrix, SIMD_PACK};
use sparq_runtime::kernels::registry;
use std::time::Instant;

fn median_us(mut f: impl FnMut()) -> f64 {
    for _ in 0..5 {
        f();
    }
    let mut t: Vec<f64> = (0..31)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    // The best set, or the one `SPARQ_KERNELS` names (e.g. `avx2`, for the `x86-64-avx2` profile).
    let force = std::env::var("SPARQ_KERNELS").ok();
    let set = registry::select(force.as_deref()).expect("SPARQ_KERNELS names a set this CPU runs");
    println!("kernel set {} ({} / {})", set.name(), set.gemm_name(), set.spgemm_name());
    let shapes = [
        (112, 16, 96),
        (56, 24, 144),
        (28, 32, 192),
        (14, 64, 384),
        (56, 144, 24),
        (28, 192, 32),
        (14, 384, 64),
        (14, 576, 96),
        (7, 960, 320),
        (7, 320, 1280),
    ];
    println!("{:>22}  {:>9}  sparse/dense at block sparsity 0..95%  crossover", "shape", "dense us");
    let mut table: Vec<(usize, f64)> = Vec::new();
    for (hw, cin, cout) in shapes {
        let geo = geometry(hw, cin, cout, 1, 1, 1);
        let x = bytes(hw * hw * cin, 1);
        let p = params(cout);
        let r = rq(&p);
        let mut y = vec![0i8; hw * hw * cout];
        let w = bytes(cout * cin, 2);
        let packed = SIMD_PACK.pack(cout, cin, &w);
        let m = WeightMatrix { data: &packed, n: cout, k: cin, pack: Some(SIMD_PACK) };
        let dense = median_us(|| set.qs8_gemm(&geo, &x, &m, &r, &mut y));
        let mut ratios = Vec::new();
        let mut crossover = 0.0f64;
        for sparsity in [0u32, 30, 50, 60, 70, 80, 90, 95] {
            let wz = block_sparse_weights(cout, cin, sparsity);
            let enc = encode(KERNEL_BLOCK, cout, cin, &wz);
            let store = sparq_runtime::AlignedBytes::from_slice(&enc);
            let s = BlockSparse::parse(store.as_slice(), cout, cin, KERNEL_BLOCK).unwrap();
            let t = median_us(|| set.qs8_spgemm(&geo, &x, &s, &r, &mut y));
            let ratio = t / dense;
            ratios.push(format!("{ratio:.2}"));
            if ratio < 1.0 && crossover == 0.0 {
                crossover = s.density();
            }
        }
        println!("{:>22}  {dense:9.1}  {}  {crossover:.2}", format!("{hw}x{hw}_{cin}to{cout}"), ratios.join(" "));
        table.push((cin, crossover));
    }
    // Per reduction length, the smallest crossover seen at that length or above (conservative).
    table.sort_by_key(|&(k, _)| k);
    let entries: Vec<String> = (0..table.len())
        .filter(|&i| i == 0 || table[i].0 != table[i - 1].0)
        .map(|i| {
            let k = table[i].0;
            let d = table.iter().filter(|&&(kk, _)| kk >= k).map(|&(_, d)| d).fold(1.0f64, f64::min);
            format!("({k}, {:.2})", (d * 20.0).floor() / 20.0)
        })
        .collect();
    println!(
        "sparse_crossover (reduction length, densest block fraction where sparse wins): &[{}]",
        entries.join(", ")
    );
}
