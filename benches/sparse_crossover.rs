//! The sparse/dense crossover of this CPU's best kernel set, the numbers the target profiles hold
//! (`compiler/src/target.rs`, `sparse_crossover` for 1x1 convolutions and fully-connected
//! layers, `sparse_crossover_spatial` for larger kernels): for each shape, the densest
//! 16x4-block matrix on which the block-sparse kernel is still faster than the dense kernel on
//! the same layer. Median of many runs per point, both kernels timed in the same run.
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
    // MobileNetV2's 1x1 shapes (spatial, in, out; kernel 1, stride 1).
    let pointwise = [
        (112, 16, 96, 1, 1),
        (56, 24, 144, 1, 1),
        (28, 32, 192, 1, 1),
        (14, 64, 384, 1, 1),
        (56, 144, 24, 1, 1),
        (28, 192, 32, 1, 1),
        (14, 384, 64, 1, 1),
        (14, 576, 96, 1, 1),
        (7, 960, 320, 1, 1),
        (7, 320, 1280, 1, 1),
    ];
    table(set, "sparse_crossover", &pointwise);
    // 3x3 convolutions with one group (the sparse kernels run them on im2col rows): an image
    // model's stem, and ResNet/VGG-like layers.
    let spatial =
        [(224, 3, 32, 3, 2), (56, 32, 32, 3, 1), (28, 64, 64, 3, 1), (28, 64, 128, 3, 2), (14, 128, 128, 3, 1)];
    table(set, "sparse_crossover_spatial", &spatial);
}

/// Times dense and sparse on each shape `(spatial, in, out, kernel, stride)` and prints the
/// crossover table: per reduction length, the densest block fraction where sparse wins.
fn table(set: registry::KernelSet, name: &str, shapes: &[(usize, usize, usize, usize, usize)]) {
    println!("{:>22}  {:>9}  sparse/dense at block sparsity 0..95%  crossover", "shape", "dense us");
    let mut table: Vec<(usize, f64)> = Vec::new();
    for &(hw, cin, cout, kernel, stride) in shapes {
        let geo = geometry(hw, cin, cout, kernel, stride, 1);
        let k = kernel * kernel * cin;
        let x = bytes(hw * hw * cin, 1);
        let p = params(cout);
        let r = rq(&p);
        let mut y = vec![0i8; geo.out_h * geo.out_w * cout];
        let w = bytes(cout * k, 2);
        let packed = SIMD_PACK.pack(cout, k, &w);
        let m = WeightMatrix { data: &packed, n: cout, k, pack: Some(SIMD_PACK) };
        let dense = median_us(|| set.qs8_gemm(&geo, &x, &m, &r, &mut y));
        let mut ratios = Vec::new();
        let mut crossover = 0.0f64;
        for sparsity in [0u32, 30, 50, 60, 70, 80, 90, 95] {
            let wz = block_sparse_weights(cout, k, sparsity);
            let enc = encode(KERNEL_BLOCK, cout, k, &wz);
            let store = sparq_runtime::AlignedBytes::from_slice(&enc);
            let s = BlockSparse::parse(store.as_slice(), cout, k, KERNEL_BLOCK).unwrap();
            let t = median_us(|| set.qs8_spgemm(&geo, &x, &s, &r, &mut y));
            let ratio = t / dense;
            ratios.push(format!("{ratio:.2}"));
            if ratio < 1.0 && crossover == 0.0 {
                crossover = s.density();
            }
        }
        let label = if kernel == 1 {
            format!("{hw}x{hw}_{cin}to{cout}")
        } else {
            format!("{hw}x{hw}_{cin}to{cout}_{kernel}x{kernel}s{stride}")
        };
        println!("{label:>22}  {dense:9.1}  {}  {crossover:.2}", ratios.join(" "));
        table.push((k, crossover));
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
    println!("{name} (reduction length, densest block fraction where sparse wins): &[{}]", entries.join(", "));
}
